//! Alerts to Alertmanager, against Debian's `prometheus-alertmanager` (0.25) and
//! `slamon up --demo`: while Alertmanager is down slamon retries and keeps serving; once
//! it is up the firing SLAs arrive with their labels and annotations, are re-sent (their
//! `endsAt` moves on), are grouped by `sla_metric` as the route says, and are resolved
//! when the SLA set no longer makes them fire. Skipped locally without the binary,
//! failing in CI.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const ALERTMANAGER: &str = "prometheus-alertmanager";

/// Debian's Alertmanager on 127.0.0.1:`port`, grouping by `sla_metric` with short waits,
/// its data in `dir`.
fn start_alertmanager(dir: &std::path::Path, port: u16) -> Proc {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: nobody\n  group_by: [sla_metric]\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: nobody\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    Proc(
        Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

async fn json_get(url: &str) -> Option<Value> {
    let res = reqwest::get(url).await.ok()?;
    res.status().is_success().then_some(())?;
    res.json().await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn firing_slas_reach_alertmanager_are_resent_grouped_and_resolved() {
    if !tools(&[ALERTMANAGER]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let am_port = free_port();
    let am = format!("http://127.0.0.1:{am_port}");
    let settings = [
        ("SLAMON_ALERTMANAGER_URL", am.clone()),
        ("SLAMON_ALERT_EVALUATION_INTERVAL", "1s".into()),
        ("SLAMON_ALERT_RESEND_DELAY", "2s".into()),
        ("SLAMON_EXTERNAL_URL", "https://slamon.example".into()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let s = start_slamon(&dir.path().join("data"), "", &dir.path().join("slamon.log"), &settings);
    let listed = demo_series(&s).await;
    let picked = &listed.as_array().unwrap()[..5];
    // every value is below the range: violating since the first sample, so firing
    let set: Vec<Value> =
        picked.iter().map(|m| json!({"name": m["name"], "range": {"min": 1e300, "max": 1e301}, "for": 1})).collect();
    let put = reqwest::Client::new().put(format!("{}/slaset", s.sla)).json(&set).send().await.unwrap();
    assert_eq!(put.status(), 201);

    // Alertmanager is down: the sends fail and are retried, and the APIs keep answering
    eventually("failed sends to the absent Alertmanager", Duration::from_secs(60), async || {
        (counter(&s.exporter, "sla_manager_notifications_errors_total").await >= 2.0).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let (code, status) = get(&format!("{}/status", s.sla)).await.unwrap();
    assert_eq!(code, 200, "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let _am = start_alertmanager(dir.path(), am_port);
    let violated = format!("{am}/api/v2/alerts?filter=alertname%3D%22SlamonSlaViolated%22");
    let alerts = eventually("5 firing alerts in Alertmanager", Duration::from_secs(60), async || {
        json_get(&violated).await.and_then(|v| v.as_array().cloned()).filter(|a| a.len() == 5)
    })
    .await;
    for m in picked {
        let id = m["id"].as_str().unwrap();
        let alert = alerts.iter().find(|a| a["labels"]["sla_id"] == id).unwrap_or_else(|| panic!("{id}: {alerts:?}"));
        assert_eq!(alert["labels"]["sla_metric"], m["name"]["__name__"], "{alert}");
        for (label, value) in m["name"].as_object().unwrap() {
            if label != "__name__" {
                assert_eq!(&alert["labels"][label], value, "{label} of {alert}");
            }
        }
        assert_eq!(alert["status"]["state"], "active", "{alert}");
        let description = alert["annotations"]["description"].as_str().unwrap();
        assert!(description.starts_with("Service level agreement violated for more than 1 min"), "{alert}");
        assert_eq!(alert["generatorURL"], format!("https://slamon.example/sla/{id}"));
    }

    // re-sent while it fires: each send moves endsAt on (evaluation + 4 × 2 s)
    let ends_at = |a: &Value| chrono::DateTime::parse_from_rfc3339(a["endsAt"].as_str().unwrap()).unwrap();
    let first = ends_at(&alerts[0]);
    let id = alerts[0]["labels"]["sla_id"].clone();
    eventually("a re-send extending endsAt", Duration::from_secs(30), async || {
        let now = json_get(&violated).await?;
        let a = now.as_array()?.iter().find(|a| a["labels"]["sla_id"] == id)?.clone();
        (ends_at(&a) > first + chrono::Duration::seconds(1)).then_some(())
    })
    .await;
    assert!(counter(&s.exporter, "sla_manager_notifications_sent_total").await >= 10.0);

    // grouped as the route says: one group per metric name, holding its SLAs' alerts
    let groups = json_get(&format!("{am}/api/v2/alerts/groups")).await.unwrap();
    let mut by_name = std::collections::BTreeMap::<String, usize>::new();
    for m in picked {
        *by_name.entry(m["name"]["__name__"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let seen: std::collections::BTreeMap<String, usize> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let keys: Vec<&String> = g["labels"].as_object().unwrap().keys().collect();
            assert_eq!(keys, ["sla_metric"], "{g}");
            (g["labels"]["sla_metric"].as_str().unwrap().to_owned(), g["alerts"].as_array().unwrap().len())
        })
        .collect();
    assert_eq!(seen, by_name, "{groups}");

    // a range every value is in: the SLAs stop firing and the alerts are resolved
    let set: Vec<Value> =
        picked.iter().map(|m| json!({"name": m["name"], "range": {"min": -1e301, "max": 1e301}, "for": 1})).collect();
    let put = reqwest::Client::new().put(format!("{}/slaset", s.sla)).json(&set).send().await.unwrap();
    assert_eq!(put.status(), 200);
    eventually("the alerts resolved", Duration::from_secs(60), async || {
        json_get(&violated).await.and_then(|v| v.as_array().cloned()).filter(|a| a.is_empty())
    })
    .await;
    let every = json_get(&format!("{am}/api/v2/alerts?active=false&silenced=false&inhibited=false&unprocessed=false"))
        .await
        .unwrap();
    assert!(every.as_array().unwrap().iter().all(|a| a["status"]["state"] != "active"), "{every}");
}

#[test]
fn a_bad_alertmanager_url_stops_slamon_before_anything_starts() {
    for bad in ["http://[::1", "ftp://alertmanager:9093", "http://user:secretpw@am:9093/?x=1", "not-a-url"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = Command::new(env!("CARGO_BIN_EXE_slamon"))
            .arg("up")
            .env("SLAMON_ALERTMANAGER_URL", bad)
            .env("SLAMON_DATA_DIR", &data)
            .env("SLAMON_REGISTRY_LISTEN", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--alertmanager-url") && !stderr.contains("secretpw"), "{bad}: {stderr}");
        assert!(!data.exists(), "{bad}: the data dir was written before the setting was refused");
    }
}
