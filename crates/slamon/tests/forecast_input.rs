//! The forecast's time grid against Debian's Prometheus, on series backfilled with
//! `promtool`: a 20-minute scrape gap keeps its place (the points after it are not moved
//! earlier, so a seasonal phase stays right) and a series whose last sample is 3 minutes
//! old ends its input at that sample (no repeated tail), and its forecast starts one
//! step after it. Skipped locally without `prometheus` and `promtool`, failing in CI.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use slamon_domain::Labels;
use slamon_prometheus::{Credentials, PrometheusSource, SourceConfig, TlsFiles};
use support::*;

const MIN: i64 = 60_000;
/// A cycle of 30 minutes.
fn wave(ts_ms: i64) -> f64 {
    50.0 + 10.0 * (2.0 * std::f64::consts::PI * ts_ms as f64 / (30.0 * MIN as f64)).sin()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_gap_keeps_its_place_and_a_stale_series_has_no_repeated_tail() {
    if !tools(&["prometheus", "promtool"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let start = now - 120 * MIN;
    // a sample every 15 s: `gap` misses 20 minutes from 60 to 40 minutes ago and
    // reports until 20 s ago; `stale` stopped 3 minutes ago
    let gap_hole = (now - 60 * MIN, now - 40 * MIN);
    let om = dir.path().join("grid.om");
    let mut f = std::fs::File::create(&om).unwrap();
    writeln!(f, "# TYPE grid_case gauge").unwrap();
    for (case, last) in [("gap", now - 20_000), ("stale", now - 3 * MIN)] {
        let mut t = start;
        while t <= last {
            if case != "gap" || t < gap_hole.0 || t >= gap_hole.1 {
                writeln!(f, "grid_case{{case=\"{case}\"}} {} {}.{:03}", wave(t), t / 1000, t % 1000).unwrap();
            }
            t += 15_000;
        }
    }
    writeln!(f, "# EOF").unwrap();
    drop(f);
    let tsdb = dir.path().join("tsdb");
    let out = Command::new("promtool").args(["tsdb", "create-blocks-from", "openmetrics"]).arg(&om).arg(&tsdb).output();
    let out = out.unwrap();
    assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
    let config = "global:\n  scrape_interval: 1m\nscrape_configs: []\n";
    let (url, _prom) = start_prometheus(
        &which("prometheus").unwrap(),
        dir.path(),
        config,
        &tsdb,
        &["--storage.tsdb.retention.time=30d"],
    )
    .await;
    let source = PrometheusSource::new(SourceConfig {
        url,
        timeout: Duration::from_secs(20),
        series_lookback: Duration::from_secs(600),
        credentials: Credentials::None,
        tls: TlsFiles::default(),
        headers: Vec::new(),
        max_answer_bytes: slamon_prometheus::DEFAULT_MAX_ANSWER_BYTES,
    })
    .unwrap();
    let labels = |case: &str| -> Labels { [("__name__", "grid_case"), ("case", case)].into_iter().collect() };
    let window = 100 * MIN;
    let grid_end = now.div_euclid(MIN) * MIN;
    let grid_start = grid_end - window;

    // the gap: 20 minutes interpolated in place, every later point where it belongs
    let gap = slamon_etl::analysis::input(&source, &labels("gap"), now, window, true).await.unwrap();
    assert_eq!(gap.values.len(), 101, "one value a minute over 100 minutes");
    assert!((19..=21).contains(&gap.imputed), "{} interpolated", gap.imputed);
    assert_eq!(gap.last_ms, grid_end);
    for (k, v) in gap.values.iter().enumerate() {
        let t = grid_start + k as i64 * MIN;
        let inside = t > gap_hole.0 && t <= gap_hole.1;
        if !inside {
            // the last sample of the minute ending at t: within 15 s of t
            assert!((v - wave(t)).abs() < 3.5, "minute {k} ({t}): {v} is not the wave's {}", wave(t));
        }
    }
    // what the first release did: query_range's values with the holes dropped, so the
    // points after the gap moved 15 minutes earlier (the lookback filled 5 of the 20)
    let old: Vec<f64> = slamon_domain::MetricSource::range(&source, &labels("gap"), grid_start, grid_end, MIN)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.value)
        .filter(|v| v.is_finite())
        .collect();
    assert!(old.len() <= 86, "the old input was {} long", old.len());

    // the stale series: its input ends with its last sample, no flat tail
    let stale = slamon_etl::analysis::input(&source, &labels("stale"), now, window, true).await.unwrap();
    let last_sample = start + (now - 3 * MIN - start) / 15_000 * 15_000;
    let expected_last = (last_sample + MIN - 1).div_euclid(MIN) * MIN;
    assert_eq!(stale.last_ms, expected_last, "the grid ends at the minute of the last sample");
    assert!((stale.values.last().unwrap() - wave(last_sample)).abs() < 1e-9);
    let tail = stale.values.iter().rev().take_while(|v| **v == *stale.values.last().unwrap()).count();
    assert_eq!(tail, 1, "no repeated tail");
    // the forecast starts one step after it and says which minutes it predicts
    let (event, _) = slamon_etl::analysis::forecast_event(labels("stale"), stale, None, now).await.unwrap();
    assert_eq!(event.points[0].ts_ms, expected_last + MIN);
    assert_eq!(event.points.len(), 10);
    assert!(event.points.windows(2).all(|w| w[1].ts_ms - w[0].ts_ms == MIN));
}
