#!/usr/bin/env python3
"""slamon's forecast against statsforecast's on the same series, in one run.

Three groups of series:
  - population: the 50 series of crates/analytics/tests/population/holt_winters.json
    (ten of each synthetic kind and windows of co2 and elnino);
  - real: series that ship in packages — statsmodels' data sets (the 12 quarterly US
    macroeconomic series in two windows, the Danish money demand and the German interest
    and inflation series, sunspots, weekly Mauna Loa CO2, the fertility rate of 20
    countries) and statsforecast's AirPassengers;
  - daily_1min: synthetic infrastructure series at one-minute steps with a daily cycle
    (traffic, CPU, latency; 3 days of history, period 1440), as examples/daily_season.

With more than one group, the geometric mean over every forecast of every group follows.

For each series (window) and each of ORIGINS origins at its end (10 points apart; 30 for
the one-minute series), every method forecasts the next 10 points from what precedes the
origin; the score is the RMSE on those 10 points. Prints, per group and reference
method, the geometric mean of slamon's RMSE over the method's (overall and per kind) and
both times per forecast. slamon runs through the example binary `forecast_series` (built
in release first) with the series' known period, as the ETL passes the detected one.

    pip install statsforecast
    python3 scripts/bench_forecast.py [ORIGINS] [GROUP ...]
    METHODS=AutoETS python3 scripts/bench_forecast.py 10 daily_1min
"""
import json
import math
import os
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
        # statsforecast's ETS fits seasonal states for the periods of the population and
        # the real series (up to 60), but on the one-minute series' 1440 it searches for
        # minutes and then raises "Parameters out of range": above 240 (the longest period
        # slamon's own Holt-Winters takes), its non-seasonal AutoETS, as R's ets() drops
        # seasonality it cannot fit; MSTL is statsforecast's answer there
        "AutoETS": lambda p: AutoETS(season_length=p if p <= 240 else 1),
        "AutoTheta": lambda p: AutoTheta(season_length=p),
        "MSTL": lambda p: MSTL(season_length=p, trend_forecaster=AutoETS(model="ZZN")),
    }


def population():
    """(kind, values, period) of the checked-in population."""
    for s in json.loads(POPULATION.read_text())["series"]:
        yield s["name"], np.array(s["x"], dtype=float), s["period"]


def real():
    """(kind, values, period) of real series that ship in statsmodels and statsforecast."""
    import statsmodels.api as sm
    from statsforecast.utils import AirPassengers
    macro = sm.datasets.macrodata.load_pandas().data
    for column in macro.columns.drop(["year", "quarter"]):
        x = macro[column].to_numpy(dtype=float)
        # the whole series and the one that ended 10 years earlier
        yield "us_macro_quarterly", x, 4
        yield "us_macro_quarterly", x[:-40], 4
    for column, x in sm.datasets.danish_data.load_pandas().data.items():
        yield "danish_quarterly", x.to_numpy(dtype=float), 4
    for column in ["Dp", "R"]:
        yield "danish_quarterly", sm.datasets.interest_inflation.load_pandas().data[column].to_numpy(dtype=float), 4
    sun = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=float)
    yield "sunspots_yearly", sun, 11
    yield "sunspots_yearly", sun[:-55], 11
    co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate().to_numpy(dtype=float)
    yield "co2_weekly", co2[-520:], 52
    yield "co2_weekly", co2[-1040:-520], 52
    air = np.asarray(AirPassengers, dtype=float)
    yield "air_passengers", air, 12
    yield "air_passengers", air[:-24], 12
    fertility = sm.datasets.fertility.load_pandas().data
    years = [str(y) for y in range(1960, 2012)]
    rows = fertility.dropna(subset=years)
    for _, row in rows.iloc[:: max(1, len(rows) // 20)].head(20).iterrows():
        yield "fertility_yearly", row[years].to_numpy(dtype=float), None


def daily_1min():
    """(kind, values, period, noise-free values) of one-minute infrastructure series with
    a daily cycle: 3 days of history and the points the origins forecast."""
    day, n = 1440, 3 * 1440 + 300
    t = np.arange(n)
    x = (t % day) / day
    shape = np.clip(0.8 * (0.5 - 0.5 * np.cos(2 * np.pi * x)) + 0.2 * np.exp(-(((x - 0.52) / 0.03) ** 2)), 0, 1)
    for seed in range(5):
        rng = np.random.default_rng(2000 + seed)
        phase = rng.integers(0, day)
        s = np.roll(shape, phase)
        yield "traffic", 200 + 800 * s + 25 * rng.standard_normal(n), day, 200 + 800 * s
        yield "cpu", (10 + 60 * s) * (1 + 0.04 * rng.standard_normal(n)), day, 10 + 60 * s
        spikes = np.where((t + phase) % 397 < 3, 40.0, 0.0)
        yield "latency", 50 + 30 * s + spikes + 3 * rng.standard_normal(n), day, 50 + 30 * s + spikes


GROUPS = {"population": (population, 10), "real": (real, 10), "daily_1min": (daily_1min, 30)}


def main():
    origins = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    groups = sys.argv[2:] or list(GROUPS)
    warnings.filterwarnings("ignore")
    every = defaultdict(list)
    for group in groups:
        for name, logs in run_group(group, origins).items():
            every[name] += logs
        print()
    if len(groups) > 1:
        print(f"## every group: {', '.join(groups)}")
        for name, logs in every.items():
            print(f"slamon RMSE / {name} RMSE (geometric mean over {len(logs)} forecasts): "
                  f"{math.exp(sum(logs) / len(logs)):.3f}")


def run_group(group, origins):
    make_series, step = GROUPS[group]
    jobs, actuals, kinds, truths, windows = [], [], [], [], 0
    # a synthetic series may come with its noise-free values: what a forecast that knew
    # the signal exactly would score, the floor the noise leaves
    for kind, x, period, *truth in make_series():
        windows += 1
        # enough history before each origin: two periods, or 30 points without one
        least = max(2 * (period or 0), 30)
        for i in range(origins):
            origin = len(x) - H - step * i
            if origin < least:
                continue
            jobs.append((x[:origin].tolist(), period))
            actuals.append(x[origin:origin + H])
            kinds.append(kind)
            truths.append(truth[0][origin:origin + H] if truth else None)
    rmse = lambda f, a: math.sqrt(float(np.mean((np.asarray(f) - a) ** 2)))
    ours, our_secs, our_models = slamon(jobs)
    our_rmse = [rmse(f, a) if len(f) == H else float("nan") for f, a in zip(ours, actuals)]
    print(f"## {group}: {len(jobs)} forecasts ({windows} series × up to {origins} origins), horizon {H}")
    print(f"slamon: {1000 * sum(our_secs) / len(jobs):.1f} ms per forecast")
    print()
    print("| against | its ms per forecast | slamon RMSE / its RMSE (geometric mean) | per kind |")
    print("| --- | --- | --- | --- |")
    # the references' results do not change between runs: kept to compare slamon's changes quickly
    cache_file = ROOT / f"target/bench_forecast_statsforecast_{group}_{origins}.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    # METHODS=AutoETS,MSTL: only those (statsforecast's AutoTheta and MSTL take seconds
    # per forecast on the 4 320-point one-minute series)
    only = [m for m in os.environ.get("METHODS", "").split(",") if m]
    every = {}
    for name, make in statsforecast_methods().items():
        if only and name not in only:
            continue
        if name not in cache:
            results = []
            for (x, p), a in zip(jobs, actuals):
                started = time.perf_counter()
                try:
                    # a series without a period (yearly fertility rates): season_length 1,
                    # statsforecast's "no seasonality"
                    f = make(p or 1).forecast(y=np.array(x), h=H)["mean"]
                    results.append((rmse(f, a), time.perf_counter() - started))
                except Exception as e:  # a method that cannot fit this series is left out
                    print(f"{name}: {e}", file=sys.stderr)
                    results.append(None)
            cache[name] = results
            cache_file.write_text(json.dumps(cache))
        logs, per_kind, floor, secs = [], defaultdict(list), defaultdict(list), 0.0
        for result, kind, ours_r, truth, actual in zip(cache[name], kinds, our_rmse, truths, actuals):
            if result is None or math.isnan(ours_r):
                continue
            r, sec = result
            secs += sec
            logs.append(math.log(max(ours_r, 1e-12) / max(r, 1e-12)))
            per_kind[kind].append(logs[-1])
            if truth is not None:
                floor[kind].append(math.log(max(rmse(truth, actual), 1e-12) / max(r, 1e-12)))
        geo = lambda l: math.exp(sum(l) / len(l))
        every[name] = logs
        kinds_text = ", ".join(f"{k} {geo(v):.2f}" for k, v in sorted(per_kind.items()))
        print(f"| {name} | {1000 * secs / max(len(logs), 1):.0f} | {geo(logs):.3f} | {kinds_text} |")
        if floor:
            kinds_text = ", ".join(f"{k} {geo(v):.2f}" for k, v in sorted(floor.items()))
            print(f"| (the noise-free signal) / {name} | | {geo(sum(floor.values(), [])):.3f} | {kinds_text} |")
    chosen = defaultdict(int)
    for m in our_models:
        chosen[m] += 1
    print()
    print("slamon's chosen models:", ", ".join(f"{m} ×{n}" for m, n in sorted(chosen.items())))
    return every


if __name__ == "__main__":
    main()
