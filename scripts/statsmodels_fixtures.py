#!/usr/bin/env python3
"""Reference fixtures for slamon-analytics, computed by statsmodels.

Writes crates/analytics/tests/fixtures/<name>.json with the input series and what
statsmodels gives for it: adfuller(autolag="AIC"), acf(alpha=0.05), and
ExponentialSmoothing(trend="add", seasonal="add"|"mul") fitted on all but the last 10
points (hold-out RMSE, SSE, forecast). The Rust tests compare against these with the
tolerances written beside each assertion.

    pip install -r scripts/requirements-fixtures.txt
    python3 scripts/statsmodels_fixtures.py
"""
import json
import os
import sys
import warnings

import numpy as np
import statsmodels
import statsmodels.api as sm
from statsmodels.tsa.holtwinters import ExponentialSmoothing
from statsmodels.tsa.stattools import acf, adfuller

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "analytics", "tests", "fixtures")
POPULATION = os.path.join(os.path.dirname(__file__), "..", "crates", "analytics", "tests", "population")
POPULATION_SEEDS = 10
HOLDOUT = 10
NLAGS = 40


def seasonal_series(rng, n=720):
    """The synthetic seasonal series: name, values, period, how the seasonality is built."""
    t = np.arange(n)
    trend_seasonal = 20.0 + 0.02 * t + 5.0 * np.sin(2 * np.pi * t / 60) + rng.normal(0, 0.8, n)
    yield "trend_seasonal", trend_seasonal, 60, "add"
    level = 50.0 + 0.05 * t
    yield "mul_seasonal", level * (1.0 + 0.3 * np.sin(2 * np.pi * t / 60)) + rng.normal(0, 0.5, n), 60, "mul"
    shift = np.where(t < 400, 10.0, 25.0)
    yield "level_shift", shift + 3.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1.0, n), 24, "add"


def synthetic():
    rng = np.random.default_rng(20261126)
    n = 720
    yield "white_noise", rng.normal(0.0, 1.0, n), None, None
    yield "random_walk", np.cumsum(rng.normal(0.0, 1.0, n)) + 50.0, None, None
    yield from seasonal_series(rng, n)


def co2_monthly():
    return sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().ffill().to_numpy()


def elnino_monthly():
    return sm.datasets.elnino.load_pandas().data.drop(columns=["YEAR"]).to_numpy().ravel()


def real():
    yield "co2_monthly", co2_monthly(), 12, "unknown"
    yield "elnino_monthly", elnino_monthly(), 12, "unknown"


def population(seeds):
    """Many series per kind: the synthetic generators with seeds 1000, 1001, … (values
    rounded to 6 decimals, so a fixture holds exactly what was fitted), and windows of
    co2 and elnino ending 3 months apart."""
    co2, el = co2_monthly(), elnino_monthly()
    for seed in range(seeds):
        for name, x, period, form in seasonal_series(np.random.default_rng(1000 + seed)):
            yield name, np.round(x, 6), period, form
        yield "co2_monthly", co2[: len(co2) - 3 * seed], 12, "unknown"
        yield "elnino_monthly", el[: len(el) - 3 * seed], 12, "unknown"


def holt_winters(x, period, seasonal):
    train, test = x[:-HOLDOUT], x[-HOLDOUT:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(train, trend="add", seasonal=seasonal, seasonal_periods=period).fit()
    pred = fit.forecast(HOLDOUT)
    return {
        "holdout_rmse": float(np.sqrt(np.mean((pred - test) ** 2))),
        "sse": float(fit.sse),
        "forecast": [float(v) for v in pred],
        "params": {k: float(fit.params[k]) for k in ("smoothing_level", "smoothing_trend", "smoothing_seasonal")},
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, x, period, form in list(synthetic()) + list(real()):
        x = np.asarray(x, dtype=float)
        stat, p, usedlag, nobs, _crit, _ic = adfuller(x, autolag="AIC", result_object=False)
        values, confint = acf(x, nlags=NLAGS, alpha=0.05, result_object=False)
        fixture = {
            "name": name,
            "generator": f"statsmodels {statsmodels.__version__}, numpy {np.__version__}",
            "x": [float(v) for v in x],
            "period": period,
            # how the seasonality was built: "add" or "mul" (synthetic series), "unknown"
            # (real data: either form is plausible), null (none)
            "seasonal_form": form,
            "adf": {"statistic": float(stat), "p_value": float(p), "used_lag": int(usedlag), "nobs": int(nobs)},
            "acf": {
                "nlags": NLAGS,
                "values": [float(v) for v in values],
                "lower": [float(v) for v in confint[:, 0]],
                "upper": [float(v) for v in confint[:, 1]],
            },
        }
        if period:
            fixture["hw_add"] = holt_winters(x, period, "add")
            if (x > 0).all():
                fixture["hw_mul"] = holt_winters(x, period, "mul")
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(fixture, f, indent=1)
            f.write("\n")
        print(f"{name}: n={len(x)} adf={stat:.4f} p={p:.4f} lag={usedlag}", file=sys.stderr)
    write_population(POPULATION_SEEDS)


def write_population(seeds):
    """tests/population/holt_winters.json: statsmodels' Holt-Winters fits of many series
    per kind, for the test that compares over a population (one series' 10-point
    hold-out is dominated by the noise of those 10 points)."""
    series = []
    for name, x, period, form in population(seeds):
        x = np.asarray(x, dtype=float)
        entry = {"name": name, "seasonal_form": form, "period": period, "x": [float(v) for v in x]}
        for seasonal in ("add", "mul"):
            if seasonal == "mul" and not (x > 0).all():
                continue
            fit = holt_winters(x, period, seasonal)
            entry[f"hw_{seasonal}"] = {"holdout_rmse": fit["holdout_rmse"], "sse": fit["sse"]}
        series.append(entry)
    out = os.path.join(POPULATION, "holt_winters.json")
    os.makedirs(POPULATION, exist_ok=True)
    with open(out, "w") as f:
        json.dump({"generator": f"statsmodels {statsmodels.__version__}, numpy {np.__version__}", "series": series}, f)
        f.write("\n")
    print(f"population: {len(series)} series", file=sys.stderr)


if __name__ == "__main__":
    main()
