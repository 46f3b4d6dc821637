//! The SLA state in the Prometheus exposition format: `promtool check metrics` accepts
//! it, and Debian's Prometheus scraping it answers PromQL about the SLAs (a firing SLA is
//! `slamon_sla_state{state="firing"} == 1`), and every query of the Grafana dashboard
//! (`deploy/grafana/dashboards/slamon.json`) parses (`promtool check rules`), reads only
//! series slamon exports and answers. Against `slamon up --demo`; needs Debian's
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
    let listed = demo_series(&s).await;
    // every value is below the range: violating since the first sample, so firing
    let set: Vec<Value> = listed.as_array().unwrap()[..5]
        .iter()
        .map(|m| json!({"name": m["name"], "range": {"min": 1e300, "max": 1e301}, "for": 1}))
        .collect();
    let put = reqwest::Client::new().put(format!("{}/slaset", s.sla)).json(&set).send().await.unwrap();
    assert_eq!(put.status(), 201);
    let url = format!("{}/metrics/prometheus", s.sla);
    let text =
        eventually("the SLAs firing, and their forecasts, in the exposition", Duration::from_secs(60), async || {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            (text.matches("state=\"firing\"} 1").count() == 5 && text.contains("slamon_sla_forecast_value{"))
                .then_some(text)
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

    // the Grafana dashboard: every query parses, reads only what slamon exports, answers
    let queries = dashboard_queries();
    assert!(queries.len() >= 8, "{queries:?}");
    let rules: String = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            format!("      - record: slamon_dashboard_query_{i}\n        expr: '{}'\n", q.replace('\'', "''"))
        })
        .collect();
    let file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, format!("groups:\n  - name: dashboard\n    rules:\n{rules}")).unwrap();
    let out = Command::new("promtool").args(["check", "rules"]).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: std::collections::BTreeSet<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    for q in &queries {
        for name in metric_names(q) {
            assert!(exported.contains(name.as_str()), "the dashboard reads {name}, which slamon does not export ({q})");
        }
        let answer = eventually(&format!("an answer to {q}"), Duration::from_secs(30), async || {
            query(q).await.filter(|r| !r.is_empty())
        })
        .await;
        assert!(!answer.is_empty(), "{q}");
    }
}

/// Every PromQL expression of the dashboard (its panels' targets and the `label_values`
/// of its variables as the series they read), the variable `$sla` as "every SLA".
fn dashboard_queries() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(expr)) = o.get("expr") {
                    out.push(expr.replace("$sla", ".+"));
                }
                if let Some(Value::String(q)) = o.get("definition") {
                    let inner = q.strip_prefix("label_values(").and_then(|r| r.split(',').next()).unwrap();
                    out.push(inner.to_owned());
                }
                o.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(root().join("deploy/grafana/dashboards/slamon.json")).unwrap();
    let mut out = Vec::new();
    walk(&serde_json::from_str(&text).unwrap(), &mut out);
    out.sort();
    out.dedup();
    out
}

/// The `slamon_…` metric names a PromQL expression reads.
fn metric_names(q: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = q;
    while let Some(i) = rest.find("slamon_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        names.push(name);
    }
    names
}
