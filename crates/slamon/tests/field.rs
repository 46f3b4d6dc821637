//! Field cases: inputs that production Prometheus servers produce every day, each one a
//! kind of fault slamon once had. The history is written as OpenMetrics relative to now,
//! backfilled with `promtool` into Debian's Prometheus, `slamon up` is pointed at it, and
//! every answer is compared with Prometheus's own verdict: `promtool test rules` runs an
//! alerting rule `value < min or value > max` with the same `for` over the same samples.
//! Then slamon is killed and started again on the same data dir, and it must answer the
//! same, take a new SLA set, and never answer 500.
//!
//! - non-finite samples: `50, NaN, 80` (a NaN does not violate and ends a run) and ±Inf
//!   (they violate), rendered as `"NaN"`, `"+Inf"`, `"-Inf"`;
//! - a gap longer than the lookback ends a run, a shorter one does not;
//! - a step-then-flat series (its ADF statistic is −∞);
//! - an SLA entry naming a label with an empty value;
//! - two label sets whose ids once collided (`{a="1",b="2"}` and `{a="1\nb=2"}`);
//! - a failed scrape (a staleness marker) in a live scrape, beside Prometheus's `ALERTS`;
//! - a metric name too big for one query under `--query.max-samples`;
//! - any label value in a selector, parsed by Prometheus.
//!
//! Needs `prometheus` and `promtool` on PATH. Without them the test is skipped locally
//! and fails in CI (`CI=true`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

mod support;

/// One SLA case: a series, its samples one a minute (`None`: no sample that minute), the
/// last at the common end; its range and `for`; the state slamon must report at the end
/// and whether Prometheus's rule fires there.
struct Case {
    name: &'static str,
    values: Vec<Option<f64>>,
    range: (f64, f64),
    for_minutes: u32,
    state: &'static str,
    fires: bool,
}

fn minutes(values: &[f64]) -> Vec<Option<f64>> {
    values.iter().map(|v| Some(*v)).collect()
}

fn with_gap(before: usize, gap: usize, after: usize) -> Vec<Option<f64>> {
    let mut v = vec![Some(50.0); before];
    v.extend(std::iter::repeat_n(None, gap));
    v.extend(std::iter::repeat_n(Some(50.0), after));
    v
}

fn cases() -> Vec<Case> {
    vec![
        // the example: NaN does not violate, so 80 starts a run of its own
        Case {
            name: "field_nan",
            values: minutes(&[50.0, f64::NAN, 80.0]),
            range: (30.0, 75.0),
            for_minutes: 1,
            state: "pending",
            fires: false,
        },
        // ±Inf violate: +Inf, +Inf, -Inf is one 2-minute run
        Case {
            name: "field_inf",
            values: minutes(&[50.0, 50.0, f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY]),
            range: (0.0, 100.0),
            for_minutes: 2,
            state: "firing",
            fires: true,
        },
        // violating 0-3, nothing for 7 minutes, violating 11-13: the gap ends the run
        Case {
            name: "field_gap",
            values: with_gap(4, 7, 3),
            range: (0.0, 10.0),
            for_minutes: 5,
            state: "pending",
            fires: false,
        },
        // a gap of 5 minutes between two samples (the lookback) does not end it
        Case {
            name: "field_joined",
            values: with_gap(4, 4, 3),
            range: (0.0, 10.0),
            for_minutes: 5,
            state: "firing",
            fires: true,
        },
        // a series that stopped changing: a step, then a flat tail
        Case {
            name: "field_step",
            values: minutes(&[50.0, 80.0, 80.0, 80.0]),
            range: (0.0, 100.0),
            for_minutes: 1,
            state: "inactive",
            fires: false,
        },
    ]
}

/// The longest case: every case ends at its last minute.
fn span(cases: &[Case]) -> usize {
    cases.iter().map(|c| c.values.len()).max().unwrap()
}

fn promtool_value(v: Option<f64>) -> String {
    match v {
        None => "_".into(),
        Some(v) if v.is_nan() => "NaN".into(),
        Some(v) if v == f64::INFINITY => "+Inf".into(),
        Some(v) if v == f64::NEG_INFINITY => "-Inf".into(),
        Some(v) => v.to_string(),
    }
}

/// Prometheus's verdict: one alerting rule per case over the same samples, evaluated
/// every minute, and the alerts that fire at the last minute. Panics when Prometheus
/// disagrees with `fires`.
fn promtool_oracle(promtool: &Path, dir: &Path, cases: &[Case]) {
    let n = span(cases);
    let mut rules = String::from("groups:\n  - name: field\n    interval: 1m\n    rules:\n");
    let mut series = String::new();
    let mut alerts = String::new();
    for c in cases {
        rules += &format!(
            "      - alert: {name}\n        expr: {name} < {min} or {name} > {max}\n        for: {f}m\n",
            name = c.name,
            min = c.range.0,
            max = c.range.1,
            f = c.for_minutes
        );
        let padded = std::iter::repeat_n(None, n - c.values.len()).chain(c.values.iter().copied());
        let values: Vec<String> = padded.map(promtool_value).collect();
        series += &format!("      - series: '{}{{job=\"field\"}}'\n        values: '{}'\n", c.name, values.join(" "));
        let expected = if c.fires { "\n          - exp_labels: {job: field}" } else { " []" };
        alerts +=
            &format!("      - eval_time: {}m\n        alertname: {}\n        exp_alerts:{expected}\n", n - 1, c.name);
    }
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
    let test = format!(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n{alerts}"
    );
    std::fs::write(dir.join("rules_test.yml"), test).unwrap();
    let out = Command::new(promtool).args(["test", "rules", "rules_test.yml"]).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "Prometheus disagrees with the expected verdicts:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openmetrics_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// The cases and the label sets whose ids once collided, one sample a minute ending at
/// `end_ms`.
fn write_openmetrics(path: &Path, cases: &[Case], end_ms: i64) {
    let mut f = std::fs::File::create(path).unwrap();
    let at = |k: usize, len: usize| end_ms - (len - 1 - k) as i64 * 60_000;
    let stamp = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    for c in cases {
        writeln!(f, "# TYPE {} gauge", c.name).unwrap();
        for (k, v) in c.values.iter().enumerate() {
            if let Some(v) = v {
                let ts = stamp(at(k, c.values.len()));
                writeln!(f, "{}{{job=\"field\"}} {} {ts}", c.name, openmetrics_value(*v)).unwrap();
            }
        }
    }
    writeln!(f, "# TYPE field_labels gauge").unwrap();
    for k in 0..3 {
        let ts = stamp(at(k, 3));
        writeln!(f, "field_labels{{a=\"1\",b=\"2\",job=\"field\"}} 1 {ts}").unwrap();
        writeln!(f, "field_labels{{a=\"1\\nb=2\",job=\"field\"}} 2 {ts}").unwrap();
    }
    writeln!(f, "# EOF").unwrap();
}

/// The setting of the SLA set's size.
fn set_size(n: usize) -> Vec<(String, String)> {
    vec![("SLAMON_SLA_SET_SIZE".to_owned(), n.to_string())]
}

/// A GET that must not fail on the server's side.
async fn get_ok(url: &str) -> Value {
    let (status, body) = get(url).await.unwrap_or_else(|| panic!("{url} did not answer"));
    assert!(status < 500, "{url} answered {status}: {body}");
    body
}

fn sla_set(cases: &[Case]) -> Value {
    let entries: Vec<Value> = cases
        .iter()
        .map(|c| {
            let mut name = json!({"__name__": c.name, "job": "field"});
            if c.name == "field_step" {
                // Prometheus drops empty labels: this is the same series
                name["instance"] = json!("");
            }
            json!({"name": name, "range": {"min": c.range.0, "max": c.range.1}, "for": c.for_minutes})
        })
        .collect();
    Value::Array(entries)
}

/// Every answer a user can ask for, none a 500, and the states of the cases.
async fn check_answers(s: &Slamon, cases: &[Case], ids: &BTreeMap<String, String>) {
    let status = eventually("every SLA with its samples", Duration::from_secs(90), async || {
        get(&format!("{}/status", s.sla))
            .await
            .filter(|(code, b)| {
                *code == 200
                    && b.as_array().is_some_and(|a| {
                        a.len() == cases.len()
                            && a.iter().all(|x| x["last-values"].as_array().is_some_and(|v| !v.is_empty()))
                    })
            })
            .map(|(_, b)| b)
    })
    .await;
    for (c, st) in cases.iter().zip(status.as_array().unwrap()) {
        assert_eq!(st["name"]["__name__"], c.name, "{status}");
        assert_eq!(st["status"], c.state, "{}: {st}", c.name);
    }
    assert_eq!(status[0]["last-values"], json!([50.0, "NaN", 80.0]), "non-finite values as Prometheus spells them");
    assert_eq!(status[1]["last-values"], json!(["+Inf", "+Inf", "-Inf"]));
    assert_eq!(status[4]["name"], json!({"__name__": "field_step", "job": "field"}), "the empty label is dropped");

    let violations = get_ok(&format!("{}/violations", s.sla)).await;
    let gap = &violations[2];
    assert_eq!(gap["violation_list"], json!([]), "no run of field_gap lasted 5 minutes: {gap}");
    assert_eq!(violations[3]["violation_list"].as_array().map(Vec::len), Some(1), "{violations}");
    get_ok(&format!("{}/future-violations", s.sla)).await;
    get_ok(&format!("{}/slaset", s.sla)).await;

    for id in ids.values() {
        for what in ["values", "metadata", "prediction"] {
            get_ok(&format!("{}/metrics/{id}/{what}", s.query)).await;
        }
    }
    let inf = get_ok(&format!("{}/metrics/{}/values", s.query, ids["field_inf"])).await;
    let h1 = &inf["values"]["1h"];
    assert_eq!((&h1["max"], &h1["min"], &h1["avg"]), (&json!("+Inf"), &json!("-Inf"), &json!("NaN")), "{inf}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_cases_agree_with_prometheus_and_survive_a_restart() {
    if !tools(&["prometheus", "promtool"]) {
        return;
    }
    let (prometheus, promtool) = (which("prometheus").unwrap(), which("promtool").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    promtool_oracle(&promtool, dir.path(), &cases);

    // the last sample 20.5 s ago
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let end_ms = (now_ms / 1000 - 20) * 1000 + 500;
    let om = dir.path().join("field.om");
    write_openmetrics(&om, &cases, end_ms);
    let tsdb = dir.path().join("tsdb");
    let out = Command::new(&promtool).args(["tsdb", "create-blocks-from", "openmetrics"]).arg(&om).arg(&tsdb).output();
    let out = out.unwrap();
    assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
    let config = "global:\n  scrape_interval: 1m\nscrape_configs: []\n";
    let retention = ["--storage.tsdb.retention.time=30d"];
    let (prom_url, _prom) = start_prometheus(&prometheus, dir.path(), config, &tsdb, &retention).await;

    let data = dir.path().join("slamon-data");
    let log = dir.path().join("slamon.log");
    let s = start_slamon(&data, &prom_url, &log, &set_size(cases.len()));
    // every series listed, the two label sets that once collided with two ids
    let metrics = eventually("seven series in /metrics", Duration::from_secs(90), async || {
        get(&format!("{}/metrics?match=job=field", s.query))
            .await
            .filter(|(code, b)| *code == 200 && b.as_array().is_some_and(|a| a.len() == 7))
            .map(|(_, b)| b)
    })
    .await;
    let mut ids = BTreeMap::new();
    for m in metrics.as_array().unwrap() {
        let name = m["name"]["__name__"].as_str().unwrap();
        let key = if name == "field_labels" { format!("{name}{}", m["name"]["a"]) } else { name.to_owned() };
        ids.insert(key, m["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 7, "distinct ids for {{a=\"1\",b=\"2\"}} and {{a=\"1\\nb=2\"}}: {metrics}");

    let http = reqwest::Client::new();
    let put = http.put(format!("{}/slaset", s.sla)).json(&sla_set(&cases)).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 201, "{:?}", put.text().await);
    check_answers(&s, &cases, &ids).await;

    // killed and started again on the same data dir: the same answers, and it takes a PUT
    drop(s);
    let s = start_slamon(&data, &prom_url, &log, &set_size(cases.len()));
    eventually("slamon up again", Duration::from_secs(60), async || {
        get(&format!("{}/readyz", s.query)).await.filter(|(code, _)| *code == 200)
    })
    .await;
    check_answers(&s, &cases, &ids).await;
    let mut set = sla_set(&cases);
    set[0]["range"]["max"] = json!(90);
    let put = http.put(format!("{}/slaset", s.sla)).json(&set).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 200, "{:?}", put.text().await);
    let status = get_ok(&format!("{}/status", s.sla)).await;
    assert_eq!(status[0]["status"], "inactive", "80 is in the new range: {status}");
}

/// A scrape target of one series, `field_live{job="live"} 50`, whose scrapes fail (HTTP
/// 500) while `failing` is set.
async fn serve_target(failing: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use axum::http::StatusCode;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let failing = failing.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if failing {
                    (StatusCode::INTERNAL_SERVER_ERROR, "scrape failed\n".to_owned())
                } else {
                    (StatusCode::OK, "# TYPE field_live gauge\nfield_live 50\n".to_owned())
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// A target that fails its scrapes for a few seconds: Prometheus writes staleness markers,
/// which range selectors do not return, and restarts the rule's `for` there. slamon must
/// agree with Prometheus's own `ALERTS` (pending, not firing, a minute after the series
/// appeared), and fire when Prometheus fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_scrape_restarts_for_as_in_prometheus() {
    if !tools(&["prometheus"]) {
        return;
    }
    let prometheus = which("prometheus").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let target = serve_target(failing.clone()).await;
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: live\n    rules:\n      - alert: LiveViolation\n        expr: field_live < 0 or field_live > 10\n        for: 1m\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: live\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .unwrap();
    let config = std::fs::read_to_string(dir.path().join("prometheus.yml")).unwrap();
    let (prom_url, _prom) = start_prometheus(&prometheus, dir.path(), &config, &dir.path().join("tsdb"), &[]).await;
    let query = |q: &'static str| {
        let url = format!("{prom_url}/api/v1/query");
        async move {
            let res = reqwest::Client::new().post(url).form(&[("query", q)]).send().await.ok()?;
            let body: Value = res.json().await.ok()?;
            Some(body["data"]["result"].as_array()?.clone())
        }
    };
    // the first sample
    eventually("the first scrape", Duration::from_secs(60), async || {
        query("field_live").await.filter(|r| !r.is_empty())
    })
    .await;
    let first = std::time::Instant::now();

    let s = start_slamon(&dir.path().join("slamon-data"), &prom_url, &dir.path().join("slamon.log"), &set_size(1));
    eventually("the live series in /metrics", Duration::from_secs(60), async || {
        get(&format!("{}/metrics?name=field_live", s.query))
            .await
            .filter(|(code, b)| *code == 200 && b.as_array().is_some_and(|a| a.len() == 1))
    })
    .await;
    let set = json!([{"name": {"__name__": "field_live", "instance": format!("127.0.0.1:{target}"), "job": "live"},
                      "range": {"min": 0, "max": 10}, "for": 1}]);
    let put = reqwest::Client::new().put(format!("{}/slaset", s.sla)).json(&set).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 201, "{:?}", put.text().await);

    // 30 s after the first sample, the scrapes fail for 6 s
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(first.elapsed())).await;
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(6)).await;
    failing.store(false, std::sync::atomic::Ordering::SeqCst);

    // 75 s after the first sample: more than the minute of `for` since the series began,
    // less since the failed scrapes
    tokio::time::sleep(Duration::from_secs(75).saturating_sub(first.elapsed())).await;
    let alerts = query("ALERTS{alertname=\"LiveViolation\"}").await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["metric"]["alertstate"], "pending", "Prometheus restarted `for` at the stale marker");
    let status = eventually("slamon's status from a cycle after the failure", Duration::from_secs(10), async || {
        get(&format!("{}/status", s.sla)).await.filter(|(code, _)| *code == 200).map(|(_, b)| b)
    })
    .await;
    assert_eq!(status[0]["status"], "pending", "as Prometheus: {status}");

    // and when Prometheus fires, slamon fires
    eventually("Prometheus fires", Duration::from_secs(60), async || {
        query("ALERTS{alertname=\"LiveViolation\",alertstate=\"firing\"}").await.filter(|r| r.len() == 1)
    })
    .await;
    eventually("slamon fires", Duration::from_secs(20), async || {
        get(&format!("{}/status", s.sla)).await.filter(|(_, b)| b[0]["status"] == "firing")
    })
    .await;
}

/// Every selector slamon sends parses in Prometheus, whatever the metric name and label
/// values (quotes, backslashes, newlines, control characters, PromQL keywords and numbers
/// as names, any Unicode): 300 generated label sets, each asked of a real Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_label_value_makes_a_selector_prometheus_parses() {
    use proptest::strategy::{Strategy, ValueTree};
    if !tools(&["prometheus"]) {
        return;
    }
    let prometheus = which("prometheus").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, _prom) =
        start_prometheus(&prometheus, dir.path(), "scrape_configs: []\n", &dir.path().join("tsdb"), &[]).await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let names = proptest::prop_oneof![
        proptest::strategy::Just("inf".to_owned()),
        proptest::strategy::Just("bool".to_owned()),
        proptest::strategy::Just("sum".to_owned()),
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,8}",
        "\\PC{1,8}",
    ];
    let values = "(\\\\|\"|\\n|\\r|\\t|\\x00|\\x7f|'|`|\\{|\\}|=|~|\\PC){1,12}";
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let name = names.new_tree(&mut runner).unwrap().current();
        let value = values.new_tree(&mut runner).unwrap().current();
        let labels: slamon_domain::Labels = [("__name__", name.as_str()), ("a", value.as_str())].into_iter().collect();
        let selector = labels.selector();
        let res = http.post(format!("{url}/api/v1/query")).form(&[("query", &selector)]).send().await.unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(status.is_success(), "{selector:?} for {labels}: {status} {body}");
    }
}

/// A metric name whose 12 h window is more than `--query.max-samples` lets one query load
/// for one series (Prometheus answers 422) while its 1 h and 3 h windows fit: slamon
/// computes the 12 h statistics from shorter sub-windows, and every series gets them,
/// equal to an independent computation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_too_big_for_one_query_gets_statistics_for_every_series() {
    if !tools(&["prometheus", "promtool"]) {
        return;
    }
    let (prometheus, promtool) = (which("prometheus").unwrap(), which("promtool").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let end_ms = (now_ms / 60_000 - 1) * 60_000;
    // 10 series of 13 h of one-minute samples: 720 samples of each in a 12 h window
    let mut om = String::from("# TYPE field_big gauge\n");
    for k in (0..13 * 60).rev() {
        let ts = end_ms - k * 60_000;
        for i in 0..10 {
            om += &format!("field_big{{i=\"{i}\",job=\"big\"}} {} {}\n", i * 1000 + k % 7, ts / 1000);
        }
    }
    om += "# EOF\n";
    std::fs::write(dir.path().join("big.om"), om).unwrap();
    let tsdb = dir.path().join("tsdb");
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(dir.path().join("big.om"))
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
    let args = ["--storage.tsdb.retention.time=30d", "--query.max-samples=500"];
    let (url, _prom) = start_prometheus(&prometheus, dir.path(), "scrape_configs: []\n", &tsdb, &args).await;
    // the fault itself: the whole name's 12 h window is refused
    let res = reqwest::Client::new()
        .post(format!("{url}/api/v1/query"))
        .form(&[("query", "min_over_time({__name__=\"field_big\"}[12h])")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422, "{:?}", res.text().await);

    let s = start_slamon(&dir.path().join("slamon-data"), &url, &dir.path().join("slamon.log"), &set_size(5));
    let metrics = eventually("ten series in /metrics", Duration::from_secs(90), async || {
        get(&format!("{}/metrics?name=field_big", s.query))
            .await
            .filter(|(code, b)| *code == 200 && b.as_array().is_some_and(|a| a.len() == 10))
            .map(|(_, b)| b)
    })
    .await;
    for m in metrics.as_array().unwrap() {
        let values = eventually("12 h statistics", Duration::from_secs(60), async || {
            get(&format!("{}/metrics/{}/values", s.query, m["id"].as_str().unwrap()))
                .await
                .filter(|(code, b)| *code == 200 && b["values"]["12h"]["samples"].as_u64().is_some_and(|n| n > 700))
                .map(|(_, b)| b)
        })
        .await;
        let i: i64 = m["name"]["i"].as_str().unwrap().parse().unwrap();
        // the samples of the window, as written above
        let at = slamon_domain::parse_rfc3339_ms(values["computed_at"].as_str().unwrap()).unwrap();
        let window: Vec<f64> = (0..13 * 60)
            .filter(|k| (at - 12 * 3_600_000..=at).contains(&(end_ms - k * 60_000)))
            .map(|k| (i * 1000 + k % 7) as f64)
            .collect();
        let n = window.len() as f64;
        let mean = window.iter().sum::<f64>() / n;
        let std = (window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let got = &values["values"]["12h"];
        assert_eq!(got["samples"], json!(window.len()), "{values}");
        assert_eq!(got["min"], json!((i * 1000) as f64), "{values}");
        assert_eq!(got["max"], json!((i * 1000 + 6) as f64), "{values}");
        assert!((got["avg"].as_f64().unwrap() - mean).abs() < 1e-9 * mean.abs().max(1.0), "{values} vs {mean}");
        assert!((got["std_dev"].as_f64().unwrap() - std).abs() < 1e-6, "{values} vs {std}");
    }
    let exported = reqwest::get(format!("{}/metrics", s.exporter)).await.unwrap().text().await.unwrap();
    let splits: f64 = exported
        .lines()
        .find_map(|l| l.strip_prefix("etl_source_query_splits_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(splits >= 1.0, "the splits are counted: {exported}");
}
