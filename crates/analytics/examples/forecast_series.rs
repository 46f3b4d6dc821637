//! Forecasts each series read from standard input, one JSON object per line
//! (`{"x": [...], "period": p, "horizon": h}`; `period` may be null), with slamon's full
//! model selection (`forecast::forecast`, 10-point hold-out), and prints one JSON line per
//! series: `{"model", "values", "std_devs", "seconds"}` (`seconds`: the forecast alone).
//! `scripts/bench_forecast.py` runs it beside statsforecast.
//!
//!     cargo run --release -p slamon-analytics --example forecast_series < series.jsonl
#![allow(clippy::print_stdout)] // the results, for a script

use std::io::BufRead;
use std::time::Instant;

use slamon_analytics::forecast;

fn main() {
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON object per line");
        let x: Vec<f64> = v["x"].as_array().expect("x").iter().filter_map(|v| v.as_f64()).collect();
        let period = v["period"].as_u64().map(|p| p as usize);
        let horizon = v["horizon"].as_u64().unwrap_or(10) as usize;
        let started = Instant::now();
        let f = forecast::forecast(&x, period, 10, horizon);
        let seconds = started.elapsed().as_secs_f64();
        let out = match f {
            Some(f) => {
                serde_json::json!({"model": f.model, "values": f.values, "std_devs": f.std_devs, "seconds": seconds})
            }
            None => serde_json::json!({"model": null, "values": [], "std_devs": [], "seconds": seconds}),
        };
        println!("{out}");
    }
}
