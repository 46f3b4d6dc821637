#!/usr/bin/env python3
"""slamon's forecast against statsforecast's on the same series, in one run.

For every series of crates/analytics/tests/population/holt_winters.json (50 series, ten
of each kind) and each of ORIGINS origins 10 points apart at its end, every method
forecasts the next 10 points from what precedes the origin; the score is the RMSE on
those 10 points. Prints, per reference method, the geometric mean of slamon's RMSE over
the method's (overall and per kind) and both times per series. slamon runs through the
example binary `forecast_series` (built in release first).

    pip install statsforecast
    python3 scripts/bench_forecast.py [ORIGINS]
"""
import json
import math
import pathlib
import subprocess
import sys
import time
import warnings
from collections import defaultdict

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
POPULATION = ROOT / "crates/analytics/tests/population/holt_winters.json"
H = 10


def slamon(jobs):
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "slamon-analytics", "--example", "forecast_series"],
                   cwd=ROOT, check=True)
    binary = ROOT / "target/release/examples/forecast_series"
    stdin = "".join(json.dumps({"x": list(x), "period": p, "horizon": H}) + "\n" for x, p in jobs)
    out = subprocess.run([str(binary)], input=stdin, capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    return [np.array(r["values"]) for r in rows], [r["seconds"] for r in rows], [r["model"] for r in rows]


def statsforecast_methods():
    from statsforecast.models import AutoETS, AutoTheta, MSTL
    return {
        "AutoETS": lambda p: AutoETS(season_length=p),
        "AutoTheta": lambda p: AutoTheta(season_length=p),
        "MSTL": lambda p: MSTL(season_length=p, trend_forecaster=AutoETS(model="ZZN")),
    }


def main():
    origins = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    series = json.loads(POPULATION.read_text())["series"]
    jobs, actuals, kinds = [], [], []
    for s in series:
        x = np.array(s["x"], dtype=float)
        for i in range(origins):
            origin = len(x) - H - 10 * i
            jobs.append((x[:origin].tolist(), s["period"]))
            actuals.append(x[origin:origin + H])
            kinds.append(s["name"])
    rmse = lambda f, a: math.sqrt(float(np.mean((np.asarray(f) - a) ** 2)))
    ours, our_secs, our_models = slamon(jobs)
    our_rmse = [rmse(f, a) for f, a in zip(ours, actuals)]
    print(f"{len(jobs)} forecasts ({len(series)} series × {origins} origins), horizon {H}")
    print(f"slamon: {1000 * sum(our_secs) / len(jobs):.1f} ms per forecast")
    print()
    print("| against | its ms per forecast | slamon RMSE / its RMSE (geometric mean) | per kind |")
    print("| --- | --- | --- | --- |")
    warnings.filterwarnings("ignore")
    # the references' results do not change between runs: kept to compare slamon's changes quickly
    cache_file = ROOT / f"target/bench_forecast_statsforecast_{origins}.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    for name, make in statsforecast_methods().items():
        if name not in cache:
            results = []
            for (x, p), a in zip(jobs, actuals):
                started = time.perf_counter()
                try:
                    f = make(p).forecast(y=np.array(x), h=H)["mean"]
                    results.append((rmse(f, a), time.perf_counter() - started))
                except Exception as e:  # a method that cannot fit this series is left out
                    print(f"{name}: {e}", file=sys.stderr)
                    results.append(None)
            cache[name] = results
            cache_file.write_text(json.dumps(cache))
        logs, per_kind, secs = [], defaultdict(list), 0.0
        for result, kind, ours_r in zip(cache[name], kinds, our_rmse):
            if result is None:
                continue
            r, sec = result
            secs += sec
            logs.append(math.log(max(ours_r, 1e-12) / max(r, 1e-12)))
            per_kind[kind].append(logs[-1])
        geo = lambda l: math.exp(sum(l) / len(l))
        kinds_text = ", ".join(f"{k} {geo(v):.2f}" for k, v in sorted(per_kind.items()))
        print(f"| {name} | {1000 * secs / max(len(logs), 1):.0f} | {geo(logs):.3f} | {kinds_text} |")
    chosen = defaultdict(int)
    for m in our_models:
        chosen[m] += 1
    print()
    print("slamon's chosen models:", ", ".join(f"{m} ×{n}" for m, n in sorted(chosen.items())))


if __name__ == "__main__":
    main()
