#!/usr/bin/env python3
"""Holt-Winters forecasts of slamon against statsmodels on a population of series.

The fixtures of scripts/statsmodels_fixtures.py compare one series per kind; a 10-point
hold-out RMSE of a single series is dominated by the noise of those 10 points, and both
optimisers stop in local optima of the same objective that are not always the same one.
This script draws many series per kind (`population()` of statsmodels_fixtures.py: the
fixtures' generators with other seeds, and windows of statsmodels' co2 and elnino data
ending at different months), fits
ExponentialSmoothing(trend="add", seasonal="add"|"mul").fit() and slamon's HoltWinters::fit
on all but the last 10 points, and prints per kind and fit: the geometric mean of
slamon's hold-out RMSE over statsmodels', how often slamon's is lower, how often it is
more than 2 % higher, and the same for the SSE (the objective both minimise).

    pip install -r scripts/requirements-fixtures.txt
    python3 scripts/holdout_study.py [--seeds 20]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from statsmodels_fixtures import HOLDOUT, holt_winters, population  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def statsmodels_step(x, period):
    """The seed's forecast step with statsmodels: add and mul fitted on all but the last
    20 points, the better on the 10 after refitted on all but the last 10, forecast 10."""
    forms = ("add", "mul") if np.all(x > 0) else ("add",)
    best = min(forms, key=lambda seasonal: holt_winters(x[:-HOLDOUT], period, seasonal)["holdout_rmse"])
    return holt_winters(x, period, best)["holdout_rmse"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    series = list(population(args.seeds))
    lines = "".join(json.dumps({"x": [float(v) for v in x], "period": p}) + "\n" for _, x, p, _ in series)
    out = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "slamon-analytics", "--example", "holdout_study"],
        input=lines, capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout.splitlines()
    ours = [json.loads(l) for l in out]
    rows = {}
    steps = {}
    for (kind, x, p, _), o in zip(series, ours):
        x = np.asarray(x, dtype=float)
        ref = statsmodels_step(x, p)
        steps.setdefault(kind, []).append((o["step_rmse"], o["forecast"]["rmse"], ref))
        for seasonal in ("add", "mul"):
            if o[seasonal] is None or (seasonal == "mul" and np.any(x[:-HOLDOUT] <= 0)):
                continue
            ref = holt_winters(x, p, seasonal)
            rows.setdefault((kind, seasonal), []).append((o[seasonal], ref))
    print(f"{'series':16s} fit  n  | hold-out RMSE slamon/statsmodels: geo-mean  lower  >2% higher |"
          " SSE: geo-mean  >0.1% lower  >0.1% higher | same optimum: n  worst RMSE ratio")
    allr = []
    for (kind, seasonal), rs in sorted(rows.items()):
        r = np.array([o["holdout_rmse"] / ref["holdout_rmse"] for o, ref in rs])
        s = np.array([o["sse"] / ref["sse"] for o, ref in rs])
        same = np.abs(s - 1) <= 1e-3
        allr.extend(r)
        print(
            f"{kind:16s} {seasonal:3s} {len(rs):3d} |"
            f" {np.exp(np.mean(np.log(r))):41.3f} {np.mean(r < 1):6.0%} {np.mean(r > 1.02):11.0%} |"
            f" {np.exp(np.mean(np.log(s))):12.4f} {np.mean(s < 0.999):12.0%} {np.mean(s > 1.001):12.0%} |"
            f" {np.sum(same):15d} {np.max(r[same], initial=0):18.3f}"
        )
    print()
    print("what a user gets, on the last 10 points: the forecast step (add or mul by an inner hold-out, refitted)")
    print(f"{'series':16s}  n  | step slamon/statsmodels: geo-mean  lower | all candidates slamon/statsmodels step: geo-mean  lower")
    for kind, rs in sorted(steps.items()):
        a = np.array([s / ref for s, _, ref in rs])
        b = np.array([f / ref for _, f, ref in rs])
        print(f"{kind:16s} {len(rs):3d} | {np.exp(np.mean(np.log(a))):32.3f} {np.mean(a < 1):6.0%} |"
              f" {np.exp(np.mean(np.log(b))):46.3f} {np.mean(b < 1):6.0%}")
    allr = np.array(allr)
    print(f"all: {len(allr)} fits, hold-out RMSE geo-mean ratio {np.exp(np.mean(np.log(allr))):.3f},"
          f" slamon lower on {np.mean(allr < 1):.0%}, more than 2 % higher on {np.mean(allr > 1.02):.0%}")


if __name__ == "__main__":
    sys.exit(main())
