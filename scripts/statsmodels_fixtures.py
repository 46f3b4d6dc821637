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
HOLDOUT = 10
NLAGS = 40


def synthetic():
    rng = np.random.default_rng(20261126)
    n = 720
    t = np.arange(n)
    yield "white_noise", rng.normal(0.0, 1.0, n), None, None
    yield "random_walk", np.cumsum(rng.normal(0.0, 1.0, n)) + 50.0, None, None
    trend_seasonal = 20.0 + 0.02 * t + 5.0 * np.sin(2 * np.pi * t / 60) + rng.normal(0, 0.8, n)
    yield "trend_seasonal", trend_seasonal, 60, "add"
    level = 50.0 + 0.05 * t
    yield "mul_seasonal", level * (1.0 + 0.3 * np.sin(2 * np.pi * t / 60)) + rng.normal(0, 0.5, n), 60, "mul"
    shift = np.where(t < 400, 10.0, 25.0)
    yield "level_shift", shift + 3.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1.0, n), 24, "add"


def real():
    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().ffill()
    yield "co2_monthly", co2.to_numpy(), 12, "unknown"
    el = sm.datasets.elnino.load_pandas().data.drop(columns=["YEAR"]).to_numpy().ravel()
    yield "elnino_monthly", el, 12, "unknown"


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


if __name__ == "__main__":
    main()
