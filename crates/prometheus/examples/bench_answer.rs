//! The memory one big Prometheus answer takes to read, against the first release's way in
//! the same run (a benchmark, not a test):
//!
//!     cargo run --release -p slamon-prometheus --example bench_answer -- 20000
//!
//! A fake Prometheus answers the window-statistics query of one metric name with N series
//! (five rows each: min, max, avg, stddev, count, as the ETL's query gives them). Read
//! through `PrometheusSource::query_vector` (the answer's bytes parsed straight into typed
//! rows), through `MetricSource::window_stats` (the rows folded per series while they are
//! read, as the ETL reads them), and the first release's way (the body as a `String`,
//! parsed into a `serde_json::Value`, its `result` cloned and converted into typed rows).
//! A counting allocator gives the peak heap above what was in use before each read, and
//! the time.
#![allow(clippy::print_stdout)] // a report printed for a person or a script

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::routing::post;
use slamon_domain::{MetricSource, Window};
use slamon_prometheus::{Credentials, PrometheusSource, SourceConfig, TlsFiles};

#[global_allocator]
static ALLOCATOR: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// Peak heap above the start (bytes) and time of `f`.
async fn measure<T>(f: impl std::future::Future<Output = T>) -> (usize, Duration, T) {
    let start = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let began = Instant::now();
    let out = f.await;
    (ALLOCATOR.peak_usage().saturating_sub(start), began.elapsed(), out)
}

#[derive(serde::Deserialize)]
struct FirstReleaseItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let mut rows = Vec::with_capacity(n * 5);
    for i in 0..n {
        for agg in ["min", "max", "avg", "stddev", "count"] {
            rows.push(serde_json::json!({
                "metric": {"__slamon_agg": agg, "instance": format!("10.0.{}.{}:9100", i / 250, i % 250),
                           "job": "kubernetes-pods", "namespace": "prod", "pod": format!("api-{i:06}")},
                "value": [1_700_000_000.5, format!("{}.25", i)],
            }));
        }
    }
    let answer = serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": rows}}).to_string();
    drop(rows);
    let bytes = answer.len();
    let body = bytes::Bytes::from(answer);
    let router =
        axum::Router::new().route("/api/v1/query", post(move || std::future::ready(body.clone()))).into_make_service();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let source = PrometheusSource::new(SourceConfig {
        url: url.clone(),
        timeout: Duration::from_secs(60),
        series_lookback: Duration::from_secs(600),
        credentials: Credentials::None,
        tls: TlsFiles::default(),
        headers: Vec::new(),
        max_answer_bytes: slamon_prometheus::DEFAULT_MAX_ANSWER_BYTES,
    })?;
    let http = reqwest::Client::new();
    // warm both paths once (connection pools, lazy statics)
    source.query_vector("m", 0).await?;
    http.post(format!("{url}/api/v1/query")).send().await?.text().await?;

    let (typed_peak, typed_time, typed) = measure(source.query_vector("m", 0)).await;
    let typed = typed?;
    let at = 1_700_000_000_000;
    let (folded_peak, folded_time, folded) = measure(source.window_stats("m", Window::H12, at)).await;
    assert_eq!(folded?.len(), n, "one aggregate per series");
    let (first_peak, first_time, first) = measure(async {
        let text = http.post(format!("{url}/api/v1/query")).send().await?.text().await?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        let items: Vec<FirstReleaseItem> = serde_json::from_value(value["data"]["result"].clone())?;
        let rows: Vec<(BTreeMap<String, String>, f64)> =
            items.into_iter().map(|i| (i.metric, i.value.1.parse().unwrap_or(f64::NAN))).collect();
        Ok::<_, Box<dyn std::error::Error>>(rows)
    })
    .await;
    let first = first?;
    assert_eq!(typed.len(), first.len());

    let mb = |b: usize| b as f64 / 1_048_576.0;
    println!("{n} series, {} rows, answer {:.1} MB", n * 5, mb(bytes));
    println!("| read | peak heap MB | peak / answer size | time ms |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| first release (String, Value, clone, typed) | {:.1} | {:.2} | {:.0} |",
        mb(first_peak),
        first_peak as f64 / bytes as f64,
        first_time.as_secs_f64() * 1000.0
    );
    println!(
        "| typed from the bytes | {:.1} | {:.2} | {:.0} |",
        mb(typed_peak),
        typed_peak as f64 / bytes as f64,
        typed_time.as_secs_f64() * 1000.0
    );
    println!(
        "| window statistics, rows folded per series as read | {:.1} | {:.2} | {:.0} |",
        mb(folded_peak),
        folded_peak as f64 / bytes as f64,
        folded_time.as_secs_f64() * 1000.0
    );
    println!(
        "typed / first release: peak heap {:.2}; folded / first release: {:.2}",
        typed_peak as f64 / first_peak as f64,
        folded_peak as f64 / first_peak as f64
    );
    Ok(())
}
