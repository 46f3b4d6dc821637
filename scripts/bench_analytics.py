#!/usr/bin/env python3
"""Benchmark: slamon-analytics against statsmodels on the same fixtures, same machine.

For every fixture of crates/analytics/tests/fixtures it times, per series:
  forecast step  statsmodels: ExponentialSmoothing(trend="add", seasonal="add") and
                 (when positive) seasonal="mul" fitted on all but the last 10 points,
                 both scored on them, the better refitted on all points, forecast 10;
                 slamon: forecast::holt_winters_step, the same. (slamon's full
                 selection, forecast::forecast, also tries MSTL, AutoETS, ARIMA, Holt
                 and persistence; its time is printed too.)
  metadata       statsmodels: adfuller(autolag="AIC") + acf(nlags=40, alpha=0.05) +
                 periodogram + seasonal_decompose (additive and multiplicative) for every
                 period slamon's refinement tries (3 peaks, +-20 %, at least 3 cycles);
                 slamon: metadata::metadata.
and prints the per-series times and the ratio statsmodels / slamon (medians of repeated
runs). The slamon side runs `cargo run --release -p slamon-analytics --example
bench_report` in the same script, so both are measured on the same machine and load.

    pip install -r scripts/requirements-fixtures.txt
    python3 scripts/bench_analytics.py
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
from statsmodels.tsa.holtwinters import ExponentialSmoothing
from statsmodels.tsa.seasonal import seasonal_decompose
from statsmodels.tsa.stattools import acf, adfuller

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
HOLDOUT = 10


def median_time(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def forecast_step(x, period):
    train, test = x[:-HOLDOUT], x[-HOLDOUT:]
    kinds = ["add"] + (["mul"] if (x > 0).all() else [])
    best = None
    for kind in kinds:
        fit = ExponentialSmoothing(train, trend="add", seasonal=kind, seasonal_periods=period).fit()
        rmse = np.sqrt(np.mean((fit.forecast(HOLDOUT) - test) ** 2))
        if best is None or rmse < best[1]:
            best = (kind, rmse)
    final = ExponentialSmoothing(x, trend="add", seasonal=best[0], seasonal_periods=period).fit()
    return final.forecast(10)


def candidate_periods(x, peaks=3, min_cycles=3):
    n = len(x)
    t = np.arange(n)
    b, a = np.polyfit(t, x, 1)
    power = np.abs(np.fft.fft(x - (a + b * t))[: n // 2 + 1]) ** 2
    js = [j for j in range(2, n // 2 + 1) if power[j] > 0 and power[j] >= power[j - 1] and (j + 1 > n // 2 or power[j] >= power[j + 1])]
    js.sort(key=lambda j: -power[j])
    out = []
    for j in js:
        p = min(max(int(round(n / j)), 2), n // 2)
        if p not in out:
            out.append(p)
        if len(out) == peaks:
            break
    periods = set()
    for p in out:
        spread = max(p // 5, 2)
        periods.update(range(max(p - spread, 2), min(p + spread, n // min_cycles) + 1))
    return sorted(periods)


def metadata(x):
    adfuller(x, autolag="AIC")
    acf(x, nlags=40, alpha=0.05)
    for p in candidate_periods(x):
        seasonal_decompose(x, period=p, model="additive")
        if (x > 0).all():
            seasonal_decompose(x, period=p, model="multiplicative")


def main():
    warnings.simplefilter("ignore")
    out = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "slamon-analytics", "--example", "bench_report"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    ours = {r["name"]: r for r in map(json.loads, out.splitlines())}
    rows = []
    for path in sorted(glob.glob(os.path.join(ROOT, "crates/analytics/tests/fixtures/*.json"))):
        f = json.load(open(path))
        x = np.asarray(f["x"], dtype=float)
        name, period = f["name"], f["period"]
        r = ours[name]
        md = median_time(lambda: metadata(x), 5)
        fc = median_time(lambda: forecast_step(x, period), 3) if period else None
        rows.append((name, len(x), period, fc, r["forecast_s"], md, r["metadata_s"], r["all_candidates_s"]))
    print(f"{'series':16} {'n':>4} {'period':>6} | {'forecast: statsmodels':>21} {'slamon':>9} {'ratio':>7} | {'metadata: statsmodels':>21} {'slamon':>9} {'ratio':>7} | {'all candidates':>14}")
    for name, n, period, fc, ofc, md, omd, alls in rows:
        fcs = f"{fc * 1e3:18.1f} ms {ofc * 1e3:6.2f} ms {fc / ofc:6.0f}x" if fc else f"{'-':>21} {'-':>9} {'-':>7}"
        print(f"{name:16} {n:4} {str(period or '-'):>6} | {fcs} | {md * 1e3:18.1f} ms {omd * 1e3:6.2f} ms {md / omd:6.0f}x | {alls * 1e3:11.2f} ms")
    fr = [r[3] / r[4] for r in rows if r[3]]
    mr = [r[5] / r[6] for r in rows]
    print(f"\nmedian ratio: forecast step {statistics.median(fr):.0f}x (target 300x), metadata {statistics.median(mr):.0f}x (target 100x)")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, statsmodels {__import__('statsmodels').__version__}")


if __name__ == "__main__":
    main()
