//! How fast the SLA manager's web pages answer with many series in the store, against
//! the JSON answers of the same data in the same run (a benchmark, not a test):
//!
//!     cargo run --release -p slamon-sla-manager --example bench_page -- 10000
//!
//! The embedded store holds N series with window statistics, and an SLA set of 5 whose
//! series have 12 h of one-minute samples and a forecast each; every route is asked
//! REQUESTS times in turn through the router (no network), p50 and p99 printed with their
//! ratio to `GET /status` (the JSON of the SLA set's states, the same reads as `/`).
#![allow(clippy::print_stdout)] // a report printed for a person or a script

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use slamon_domain::*;
use slamon_sla_manager::router;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const REQUESTS: usize = 200;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let cancel = CancellationToken::new();
    let backends = support::Backends::open(dir.path(), &cancel).await?;
    let store = backends.store.clone();
    let now = UnixMillis::now().millis() / 60_000 * 60_000;

    // N series, the first five of which are the SLA set
    let labels = |i: usize| -> Labels {
        [("__name__", format!("bench_metric_{}", i % 100)), ("instance", format!("host-{i}:9100"))]
            .into_iter()
            .collect()
    };
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let docs = chunk
            .iter()
            .map(|&i| {
                let l = labels(i);
                let prediction = (i < 5).then(|| MetricForecastComputed {
                    labels: l.clone(),
                    computed_at_ms: now,
                    model: "holt_winters_add".into(),
                    rmse: 0.1,
                    candidates: vec![ForecastCandidate {
                        model: "holt_winters_add".into(),
                        rmse: Some(0.1),
                        note: None,
                    }],
                    points: (1..=10).map(|k| Sample::new(now + k * 60_000, 50.0 + k as f64)).collect(),
                    intervals: (1..=10)
                        .map(|k| {
                            let (v, s) = (50.0 + k as f64, (k as f64).sqrt());
                            PredictionInterval {
                                lower_80: v - 1.28 * s,
                                upper_80: v + 1.28 * s,
                                lower_95: v - 1.96 * s,
                                upper_95: v + 1.96 * s,
                            }
                        })
                        .collect(),
                    min: 51.0,
                    max: 60.0,
                    avg: 55.5,
                });
                Document::Metric(MetricView {
                    id: l.id(),
                    labels: l,
                    removed: false,
                    values: Some(ValuesView {
                        computed_at_ms: now,
                        windows: Window::ALL.into_iter().map(|w| support::window(w, i)).collect(),
                    }),
                    prediction,
                    metadata: None,
                    applied: Position::new(0, i as i64),
                })
            })
            .collect();
        store.write(docs).await?;
    }
    let entries: Vec<SlaEntry> = (0..5)
        .map(|i| SlaEntry { labels: labels(i), range: SlaRange { min: 0.0, max: 55.0 }, for_minutes: 5 })
        .collect();
    let mut docs = Vec::new();
    for e in &entries {
        let samples = (0..720).map(|k| Sample::new(now - (719 - k) * 60_000, 50.0 + (k as f64 / 30.0).sin() * 10.0));
        docs.push(Document::SlaSamples(SlaSamplesView {
            id: e.id(),
            labels: e.labels.clone(),
            samples: samples.collect(),
            scoring: Default::default(),
            applied: Position::new(0, 0),
        }));
    }
    let version = SlaSetVersion { version: 1, defined_at_ms: now, entries };
    docs.push(Document::SlaSetVersion(SlaSetVersionView { set: version.clone(), applied: Position::new(0, 0) }));
    docs.push(Document::SlaSet(SlaSetView {
        current: version,
        history: Vec::new(),
        applied: Position::new(0, 0),
        entered_at_ms: Vec::new(),
    }));
    store.write(docs).await?;
    println!("{n} series written in {:.1} s", started.elapsed().as_secs_f64());

    let state = backends.state(Duration::from_secs(10));
    let app = router(state);
    let id = labels(0).id();
    let routes = [
        "/status".to_owned(),
        "/".into(),
        format!("/sla/{id}"),
        "/ui/metrics".into(),
        "/ui/metrics?name=bench_metric_7".into(),
        format!("/ui/metrics/{id}"),
        "/ui/history".into(),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(REQUESTS); routes.len()];
    let mut sizes = vec![0usize; routes.len()];
    // in turn, so every route sees the same machine load
    for _ in 0..REQUESTS {
        for (k, route) in routes.iter().enumerate() {
            let started = Instant::now();
            let res = app.clone().oneshot(Request::get(route.as_str()).body(Body::empty())?).await?;
            let status = res.status();
            let body = res.into_body().collect().await?.to_bytes();
            times[k].push(started.elapsed());
            assert!(status.is_success(), "{route}: {status}");
            sizes[k] = body.len();
        }
    }
    let pct = |t: &mut Vec<Duration>, p: f64| {
        t.sort();
        t[((t.len() as f64 * p).ceil() as usize).saturating_sub(1)].as_secs_f64() * 1000.0
    };
    let mut baseline = times[0].clone();
    let (b50, b99) = (pct(&mut baseline, 0.5), pct(&mut baseline, 0.99));
    println!("{n} series, {REQUESTS} requests per route, in turn");
    println!("{:<36} {:>8} {:>8} {:>9} {:>9} {:>9}", "route", "p50 ms", "p99 ms", "p50/json", "p99/json", "bytes");
    let mut worst: f64 = 0.0;
    for (k, route) in routes.iter().enumerate() {
        let (p50, p99) = (pct(&mut times[k], 0.5), pct(&mut times[k], 0.99));
        if k > 0 {
            worst = worst.max(p99);
        }
        println!("{route:<36} {p50:>8.2} {p99:>8.2} {:>9.2} {:>9.2} {:>9}", p50 / b50, p99 / b99, sizes[k]);
    }
    println!("slowest page p99: {worst:.1} ms (target 200 ms: {})", if worst <= 200.0 { "met" } else { "NOT met" });
    cancel.cancel();
    Ok(())
}
