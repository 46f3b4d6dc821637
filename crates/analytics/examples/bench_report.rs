//! Times slamon's forecast step and metadata on the statsmodels fixtures and prints one
//! JSON line per fixture (median of repeated runs, in seconds). `scripts/bench_analytics.py`
//! runs it beside statsmodels on the same machine and prints the ratios.
//!
//!     cargo run --release -p slamon-analytics --example bench_report
#![allow(clippy::print_stdout)] // a report printed for a script

use std::time::Instant;

use slamon_analytics::{forecast, metadata};

fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(dir).expect("fixtures").map(|e| e.expect("entry").path()).collect();
    paths.sort();
    for path in paths {
        let f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let x: Vec<f64> = f["x"].as_array().expect("x").iter().filter_map(|v| v.as_f64()).collect();
        let period = f["period"].as_u64().map(|p| p as usize);
        let fc = period.map(|p| {
            median_secs(21, || {
                std::hint::black_box(forecast::holt_winters_step(std::hint::black_box(&x), p, 10, 10));
            })
        });
        let all = median_secs(11, || {
            std::hint::black_box(forecast::forecast(std::hint::black_box(&x), period, 10, 10));
        });
        let md = median_secs(21, || {
            std::hint::black_box(metadata::metadata(std::hint::black_box(&x), 40));
        });
        println!(
            "{}",
            serde_json::json!({"name": f["name"], "n": x.len(), "period": period, "forecast_s": fc, "all_candidates_s": all, "metadata_s": md})
        );
    }
}
