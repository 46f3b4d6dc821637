//! The SLA state in the Prometheus exposition format: `promtool check metrics` accepts
//! it, and Debian's Prometheus scraping it answers PromQL about the SLAs (a firing SLA is
//! `slamon_sla_state{state="firing"} == 1`). Against `slamon up --demo`; needs Debian's
//! `prometheus` and `promtool` (skipped locally without them, failing in CI).

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_sla_state_and_promtool_accepts_it() {
    if !tools(&["prometheus", "promtool"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start_slamon(&dir.path().join("data"), "", &dir.path().join("slamon.log"), &[]);
    let listed = eventually("the demo series", Duration::from_secs(60), async || {
        get(&format!("{}/metrics", s.query))
            .await
            .filter(|(c, b)| *c == 200 && b.as_array().is_some_and(|a| a.len() >= 5))
    })
    .await
    .1;
    // every value is below the range: violating since the first sample, so firing
    let set: Vec<Value> = listed.as_array().unwrap()[..5]
        .iter()
        .map(|m| json!({"name": m["name"], "range": {"min": 1e300, "max": 1e301}, "for": 1}))
        .collect();
    let put = reqwest::Client::new().put(format!("{}/slaset", s.sla)).json(&set).send().await.unwrap();
    assert_eq!(put.status(), 201);
    let url = format!("{}/metrics/prometheus", s.sla);
    let text = eventually("the SLAs firing in the exposition", Duration::from_secs(60), async || {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        (text.matches("state=\"firing\"} 1").count() == 5).then_some(text)
    })
    .await;
    assert!(text.contains("# TYPE slamon_sla_state gauge"), "{text}");
    assert!(text.contains("slamon_sla_violation_seconds{") && text.contains("window=\"12h\""), "{text}");
    assert!(text.contains("slamon_sla_range_min{") && text.contains("sla_metric=\""), "{text}");

    // promtool's linter
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // a real Prometheus scrapes it; PromQL sees the firing SLAs and their bounds
    let target = s.sla.trim_start_matches("http://").to_owned();
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: slamon\n    metrics_path: /metrics/prometheus\n    static_configs: [{{targets: ['{target}']}}]\n"
    );
    let (prom, _proc) =
        start_prometheus(&which("prometheus").unwrap(), dir.path(), &config, &dir.path().join("tsdb"), &[]).await;
    let query = |q: &str| {
        let url = format!("{prom}/api/v1/query");
        let q = q.to_owned();
        async move {
            let r: Value =
                reqwest::Client::new().get(url).query(&[("query", q)]).send().await.ok()?.json().await.ok()?;
            r["data"]["result"].as_array().cloned()
        }
    };
    let firing = eventually("firing SLAs in Prometheus", Duration::from_secs(60), async || {
        query("slamon_sla_state{state=\"firing\"} == 1").await.filter(|r| r.len() == 5)
    })
    .await;
    let ids: Vec<&str> = firing.iter().map(|r| r["metric"]["sla_id"].as_str().unwrap()).collect();
    for m in &listed.as_array().unwrap()[..5] {
        assert!(ids.contains(&m["id"].as_str().unwrap()), "{} not firing in {ids:?}", m["id"]);
    }
    let bounds = query("slamon_sla_range_min == 1e300").await.unwrap();
    assert_eq!(bounds.len(), 5, "{bounds:?}");
    let pending = query("slamon_sla_state{state=\"pending\"} == 1").await.unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}
