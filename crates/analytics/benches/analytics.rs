//! Criterion benchmarks of the analytics on the statsmodels fixtures (the same inputs
//! `scripts/bench_analytics.py` times against statsmodels).
//!
//!     cargo bench -p slamon-analytics

use criterion::{criterion_group, criterion_main, Criterion};
use slamon_analytics::{forecast, metadata};

fn fixture(name: &str) -> (Vec<f64>, Option<usize>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.json"));
    let f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let x = f["x"].as_array().expect("x").iter().filter_map(|v| v.as_f64()).collect();
    (x, f["period"].as_u64().map(|p| p as usize))
}

fn benches(c: &mut Criterion) {
    for name in ["trend_seasonal", "mul_seasonal", "co2_monthly"] {
        let (x, period) = fixture(name);
        let p = period.expect("seasonal fixture");
        c.bench_function(&format!("holt_winters_step/{name}"), |b| {
            b.iter(|| forecast::holt_winters_step(std::hint::black_box(&x), p, 10, 10))
        });
        c.bench_function(&format!("forecast_all_candidates/{name}"), |b| {
            b.iter(|| forecast::forecast(std::hint::black_box(&x), period, 10, 10))
        });
        c.bench_function(&format!("metadata/{name}"), |b| b.iter(|| metadata::metadata(std::hint::black_box(&x), 40)));
    }
}

criterion_group! {
    name = analytics;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(analytics);
