//! Fits Holt-Winters (additive trend; additive and multiplicative seasonality) to each
//! series read from standard input, one JSON object per line (`{"x": [...], "period": p}`),
//! holding out the last 10 points, and prints one JSON line per series with the hold-out
//! RMSE, the SSE and the smoothing parameters of each fit; and the RMSE on those last 10
//! points of the forecast step (`forecast::holt_winters_step`: both fits on all but the
//! last 20, the better on the 10 after refitted) and of the full selection
//! (`forecast::forecast`, every candidate), both given all but the last 10 points.
//! `scripts/holdout_study.py`
//! runs it beside statsmodels on a population of series.
//!
//!     cargo run --release -p slamon-analytics --example holdout_study < series.jsonl
#![allow(clippy::print_stdout)] // a report printed for a person or a script

use std::io::BufRead;

use slamon_analytics::forecast;
use slamon_analytics::holt_winters::{HoltWinters, Seasonal};

const HOLDOUT: usize = 10;

fn main() {
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON object per line");
        let x: Vec<f64> = v["x"].as_array().expect("x").iter().filter_map(|v| v.as_f64()).collect();
        let period = v["period"].as_u64().expect("period") as usize;
        let (train, test) = x.split_at(x.len() - HOLDOUT);
        let score =
            |pred: &[f64]| (pred.iter().zip(test).map(|(p, a)| (p - a).powi(2)).sum::<f64>() / HOLDOUT as f64).sqrt();
        let step = forecast::holt_winters_step(train, period, HOLDOUT, HOLDOUT).map(|v| score(&v));
        let full = forecast::forecast(train, Some(period), HOLDOUT, HOLDOUT).map(|f| (score(&f.values), f.model));
        let fit = |kind| {
            HoltWinters::fit(train, kind, period).map(|m| {
                let pred = m.forecast(HOLDOUT);
                serde_json::json!({
                    "holdout_rmse": score(&pred),
                    "sse": m.sse,
                    "params": [m.alpha, m.beta, m.gamma],
                })
            })
        };
        println!(
            "{}",
            serde_json::json!({
                "add": fit(Seasonal::Additive),
                "mul": fit(Seasonal::Multiplicative),
                "step_rmse": step,
                "forecast": full.map(|(r, m)| serde_json::json!({"rmse": r, "model": m})),
            })
        );
    }
}
