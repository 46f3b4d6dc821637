//! The reads behind `GET /metrics?limit=100` and `PUT /slaset` with many series, against
//! the listing of the first release (decode every metric document, then filter and page)
//! in the same run (a benchmark, not a test):
//!
//!     cargo run --release -p slamon-sla-manager --example bench_reads -- 100000
//!
//! The embedded store holds N series (with window statistics and, for one in ten, a
//! forecast, as the ETL writes them) and a projector runs on the embedded log, so each PUT
//! appends its event and waits until the read model shows it, as in `slamon up`. Pages
//! start at random cursors; PUTs name five random series with new ranges. p50 and p99 of
//! each, and the first release's full listing (what its PUT validation and `GET /metrics`
//! did per request) as the baseline.
#![allow(clippy::print_stdout)] // a report printed for a person or a script

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use slamon_domain::*;
use slamon_projector::{Projector, ProjectorConfig, ProjectorMetrics};
use slamon_sla_manager::router;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const PAGES: usize = 300;
const PUTS: usize = 100;
const BASELINE_RUNS: usize = 5;

/// A small deterministic generator (xorshift), so runs pick the same cursors and series.
struct Picks(u64);

impl Picks {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

fn percentile(times: &mut [Duration], p: f64) -> f64 {
    times.sort();
    let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
    times[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let cancel = CancellationToken::new();
    let backends = support::Backends::open(dir.path(), &cancel).await?;
    let (log, store, codec) = (backends.log.clone(), backends.store.clone(), backends.codec.clone());
    let now = UnixMillis::now().millis() / 60_000 * 60_000;

    // 20 000 series under one name, the rest over 100 names
    let labels = |i: usize| -> Labels {
        let name = if i < n / 5 { "bench_pod_metric".to_owned() } else { format!("bench_metric_{}", i % 100) };
        [("__name__", name), ("instance", format!("host-{i}:9100"))].into_iter().collect()
    };
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let docs = chunk
            .iter()
            .map(|&i| {
                let l = labels(i);
                let prediction = (i % 10 == 0).then(|| MetricForecastComputed {
                    labels: l.clone(),
                    computed_at_ms: now,
                    model: "holt_winters_add".into(),
                    rmse: 0.1,
                    candidates: vec![],
                    points: (1..=10).map(|k| Sample::new(now + k * 60_000, i as f64)).collect(),
                    intervals: vec![],
                    min: i as f64,
                    max: i as f64,
                    avg: i as f64,
                });
                Document::Metric(MetricView {
                    id: l.id(),
                    labels: l.clone(),
                    removed: false,
                    values: Some(ValuesView {
                        computed_at_ms: now,
                        windows: vec![
                            support::window(Window::H1, i),
                            support::window(Window::H3, i),
                            support::window(Window::H12, i),
                        ],
                    }),
                    prediction,
                    metadata: None,
                    applied: Position::new(0, 0),
                })
            })
            .collect();
        store.write(docs).await?;
    }
    println!("{n} series written in {:.1} s", started.elapsed().as_secs_f64());

    let projector = Projector::new(
        log.consumer("projector", "prometheusdata").await?,
        store.clone(),
        codec.clone(),
        log.clone(),
        ProjectorConfig { poll_wait: Duration::from_millis(5), ..Default::default() },
        ProjectorMetrics::unregistered(),
    );
    tokio::spawn(projector.run(cancel.clone()));
    let state = backends.state(Duration::from_secs(30));
    let app = router(state);
    let mut picks = Picks(0x9e37_79b9_7f4a_7c15);
    let mut ids: Vec<MetricId> = (0..n).map(|i| labels(i).id()).collect();
    ids.sort();

    // a page of 100 from a random cursor
    let mut pages = Vec::with_capacity(PAGES);
    for _ in 0..PAGES {
        let after = ids[picks.next(n)];
        let started = Instant::now();
        let uri = format!("/metrics?limit=100&after={after}");
        let res = app.clone().oneshot(Request::get(uri.as_str()).body(Body::empty())?).await?;
        let status = res.status();
        res.into_body().collect().await?;
        pages.push(started.elapsed());
        assert!(status.is_success(), "{uri}: {status}");
    }
    // the same page of the one name with 20 000 series
    let mut named = Vec::with_capacity(PAGES);
    for _ in 0..PAGES {
        let started = Instant::now();
        let res =
            app.clone().oneshot(Request::get("/metrics?name=bench_pod_metric&limit=100").body(Body::empty())?).await?;
        res.into_body().collect().await?;
        named.push(started.elapsed());
    }
    // PUTs of five random series with new ranges: validation, append, projection
    let mut puts = Vec::with_capacity(PUTS);
    for k in 0..PUTS {
        // five different series (a set names each at most once)
        let mut chosen = std::collections::BTreeSet::new();
        while chosen.len() < 5 {
            chosen.insert(picks.next(n));
        }
        let set: Vec<serde_json::Value> = chosen
            .into_iter()
            .map(|i| serde_json::json!({"name": labels(i), "range": {"min": 0, "max": 100 + k}, "for": 5}))
            .collect();
        let body = serde_json::to_vec(&set)?;
        let started = Instant::now();
        let req = Request::put("/slaset").header("content-type", "application/json").body(Body::from(body))?;
        let res = app.clone().oneshot(req).await?;
        let status = res.status();
        res.into_body().collect().await?;
        puts.push(started.elapsed());
        assert!(status.is_success() && status.as_u16() != 202, "PUT: {status}");
    }
    // the first release: every metric document decoded, then filtered and paged
    let mut baseline = Vec::with_capacity(BASELINE_RUNS);
    for _ in 0..BASELINE_RUNS {
        let started = Instant::now();
        let all = store.all(Collection::Metrics).await?;
        let live: Vec<&Document> = all.iter().filter(|d| matches!(d, Document::Metric(m) if !m.removed)).collect();
        std::hint::black_box(live.iter().take(100).count());
        baseline.push(started.elapsed());
    }
    cancel.cancel();

    let base = percentile(&mut baseline, 0.5);
    println!("| read, {n} series | p50 ms | p99 ms | p50 / first release's listing ({base:.1} ms) |");
    println!("| --- | --- | --- | --- |");
    for (what, times) in [
        ("GET /metrics?limit=100&after=<random>", &mut pages),
        ("GET /metrics?name=<20 000 series>&limit=100", &mut named),
        ("PUT /slaset (5 random series, to visible)", &mut puts),
    ] {
        let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
        println!("| {what} | {p50:.2} | {p99:.2} | {:.4} |", p50 / base);
    }
    Ok(())
}
