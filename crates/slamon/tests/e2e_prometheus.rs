//! End to end against Debian's real Prometheus: a deterministic 13 h history is
//! backfilled with `promtool`, `slamon up` is pointed at it, an SLA set is PUT, and
//! every API is checked against what this test computes on its own from the same data.
//! Then slamon is killed with SIGKILL, started again on the same data dir, and nothing
//! acknowledged may be missing.
//!
//! Needs `prometheus` and `promtool` on PATH (`apt-get install prometheus`). Without
//! them the test is skipped locally and fails in CI (`CI=true`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

mod support;

const STEP_S: i64 = 60;
const N: i64 = 13 * 60;

/// The values of the test series: sample k of N at `t0 + k*60 + 0.5` seconds.
/// The value of sample k.
type Shape = Box<dyn Fn(i64) -> f64>;

fn series() -> Vec<(&'static str, &'static str, Shape)> {
    vec![
        // last 6 samples out of range (5 minutes) with for=3: firing
        ("e2e_firing", "a", Box::new(|k| if k >= N - 6 { 95.0 } else { 50.0 + 5.0 * (k as f64 / 10.0).sin() })),
        // last 2 samples below min (1 minute) with for=3: pending
        ("e2e_pending", "b", Box::new(|k| if k >= N - 2 { 5.0 } else { 40.0 + (k % 7) as f64 })),
        // 10 samples (9 min) ending 120 min before the end: counts (for=5);
        // 3 samples (2 min) 300 min before the end: too short
        (
            "e2e_past",
            "c",
            Box::new(|k| {
                let from_end = N - 1 - k;
                if (120..130).contains(&from_end) {
                    200.0 + from_end as f64
                } else if (300..303).contains(&from_end) {
                    300.0
                } else {
                    100.0 + (k % 13) as f64 * 0.5
                }
            }),
        ),
        ("e2e_ok", "d", Box::new(|k| 1.0 + (k as f64 * 0.37).cos())),
        ("e2e_big", "e", Box::new(|k| 1.0e10 + 1.0e6 * (k as f64 / 33.0).sin())),
        ("e2e_extra", "f", Box::new(|k| (k % 5) as f64)),
    ]
}

fn labels(name: &str, instance: &str) -> Value {
    json!({"__name__": name, "instance": instance, "job": "e2e"})
}

fn write_openmetrics(path: &Path, t0_ms: i64) {
    let mut f = std::fs::File::create(path).unwrap();
    for (name, instance, value) in series() {
        writeln!(f, "# TYPE {name} gauge").unwrap();
        for k in 0..N {
            let ts_ms = t0_ms + k * STEP_S * 1000;
            writeln!(
                f,
                "{name}{{instance=\"{instance}\",job=\"e2e\"}} {} {}.{:03}",
                value(k),
                ts_ms / 1000,
                ts_ms % 1000
            )
            .unwrap();
        }
    }
    writeln!(f, "# EOF").unwrap();
}

/// Min, max, mean, sample std and count of the samples in the window ending at `at_ms`.
fn expected_window(
    value: &dyn Fn(i64) -> f64,
    t0_ms: i64,
    at_ms: i64,
    window_ms: i64,
) -> (f64, f64, f64, Option<f64>, usize) {
    let v: Vec<f64> = (0..N)
        .filter(|k| {
            let ts = t0_ms + k * STEP_S * 1000;
            ts >= at_ms - window_ms && ts <= at_ms
        })
        .map(value)
        .collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.len() > 1).then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        mean,
        std,
        v.len(),
    )
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slamon_up_against_a_real_prometheus() {
    scenario(&[]).await;
}

/// The same scenario on the distributed path: ETL → Kafka → projector → MongoDB → APIs
/// (Kafka-wire tansu and MongoDB-wire SecantusDB from `scripts/services.sh start`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_distributed_path_against_kafka_and_mongodb() {
    let kafka = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mongo = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    if !(reachable(9092) && reachable(27017)) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: Kafka and MongoDB must be running (scripts/services.sh start)"
        );
        eprintln!("SKIPPED: no Kafka on 9092 or MongoDB on 27017 (scripts/services.sh start)");
        return;
    }
    let run = uuid::Uuid::now_v7().simple().to_string();
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    scenario(&[
        env("SLAMON_EVENT_LOG", "kafka"),
        env("KAFKA_BOOTSTRAP_SERVERS", &kafka),
        env("SLAMON_TOPIC", &format!("prometheusdata-{run}")),
        env("SLAMON_PROJECTOR_GROUP", &format!("projector-{run}")),
        env("SLAMON_ETL_GROUP", &format!("etl-{run}")),
        env("SLAMON_STORE", "mongodb"),
        env("MONGODB_URI", &mongo),
        env("MONGODB_DATABASE", &format!("slamon_{run}")),
    ])
    .await;
}

async fn scenario(backend: &[(String, String)]) {
    let (Some(prometheus), Some(promtool)) = (which("prometheus"), which("promtool")) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: prometheus and promtool must be installed (scripts/services.sh install)"
        );
        eprintln!("SKIPPED: prometheus/promtool not on PATH (apt-get install prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let now_ms = chrono_now_ms();
    // the last sample 20.5 s ago; each sample at half a second past a whole second
    let t0_ms = (now_ms / 1000 - 20 - (N - 1) * STEP_S) * 1000 + 500;
    let om = dir.path().join("history.om");
    write_openmetrics(&om, t0_ms);
    let tsdb = dir.path().join("tsdb");
    let status = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(status.status.success(), "promtool: {}", String::from_utf8_lossy(&status.stderr));
    let config = "global:\n  scrape_interval: 1m\nscrape_configs: []\n";
    let retention = ["--storage.tsdb.retention.time=30d"];
    let (prom_url, _prom) = start_prometheus(&prometheus, dir.path(), config, &tsdb, &retention).await;

    let data = dir.path().join("slamon-data");
    let log = dir.path().join("slamon.log");
    let s = start_slamon(&data, &prom_url, &log, backend);
    let names: BTreeMap<String, Shape> = series().into_iter().map(|(n, _, f)| (n.to_owned(), f)).collect();

    // every series is listed, with the id of SPEC §2
    let metrics = eventually("six series in /metrics", Duration::from_secs(90), async || {
        get(&format!("{}/metrics?match=job=e2e", s.query))
            .await
            .filter(|(_, b)| b.as_array().is_some_and(|a| a.len() == 6))
            .map(|(_, b)| b)
    })
    .await;
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for m in metrics.as_array().unwrap() {
        assert_eq!(m["_id"]["$oid"], m["id"]);
        ids.insert(m["name"]["__name__"].as_str().unwrap().to_owned(), m["id"].as_str().unwrap().to_owned());
    }

    // window statistics agree with an independent computation over the same samples
    for (name, id) in &ids {
        // the metadata cycle may list a series before its first statistics are in
        let body = eventually("window statistics", Duration::from_secs(60), async || {
            get(&format!("{}/metrics/{id}/values", s.query)).await.filter(|(status, _)| *status == 200).map(|(_, b)| b)
        })
        .await;
        let at = chrono_parse_ms(body["computed_at"].as_str().unwrap());
        for (w, ms) in [("1h", 3_600_000), ("3h", 3 * 3_600_000), ("12h", 12 * 3_600_000)] {
            let (min, max, avg, std, n) = expected_window(names[name].as_ref(), t0_ms, at, ms);
            let got = &body["values"][w];
            let ctx = format!("{name} {w}: {got} vs min {min} max {max} avg {avg} std {std:?} n {n}");
            assert_eq!(got["samples"].as_u64().unwrap() as usize, n, "{ctx}");
            assert!(close(got["min"].as_f64().unwrap(), min, 1e-12), "{ctx}");
            assert!(close(got["max"].as_f64().unwrap(), max, 1e-12), "{ctx}");
            // PromQL sums in another order: within 1e-9 relative
            assert!(close(got["avg"].as_f64().unwrap(), avg, 1e-9), "{ctx}");
            assert!(close(got["std_dev"].as_f64().unwrap(), std.unwrap(), 1e-6), "{ctx}");
        }
    }

    // an SLA set of five
    let set = json!([
        {"name": labels("e2e_firing", "a"), "range": {"min": 0, "max": 80}, "for": 3},
        {"name": labels("e2e_pending", "b"), "range": {"min": 10, "max": 80}, "for": 3},
        {"name": labels("e2e_past", "c"), "range": {"min": 0, "max": 150}, "for": 5},
        {"name": labels("e2e_ok", "d"), "range": {"min": -1, "max": 3}, "for": 1},
        {"name": labels("e2e_big", "e"), "range": {"min": 0, "max": 2e10}, "for": 2},
    ]);
    let http = reqwest::Client::new();
    let res = http.put(format!("{}/slaset", s.sla)).json(&set).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"message": "SLA set created", "version": 1}));
    let (_, got_set) = get(&format!("{}/slaset", s.sla)).await.unwrap();
    assert_eq!(got_set.as_array().unwrap().len(), 5, "read-your-writes: {got_set}");

    // the samples of the five SLA metrics travel on different partitions: wait until
    // every one is projected (each has samples) and the firing one fires
    let status = eventually("the firing SLA to fire, every SLA with samples", Duration::from_secs(90), async || {
        get(&format!("{}/status", s.sla))
            .await
            .filter(|(_, b)| {
                b[0]["status"] == "firing"
                    && b.as_array()
                        .is_some_and(|a| a.iter().all(|x| x["last-values"].as_array().is_some_and(|v| !v.is_empty())))
            })
            .map(|(_, b)| b)
    })
    .await;
    let states: Vec<&str> = status.as_array().unwrap().iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["firing", "pending", "inactive", "inactive", "inactive"], "{status}");
    assert_eq!(
        status[0]["description"],
        "Service level agreement violated for more than 3 min, last three values [95,95,95], allowed range: (0, 80)"
    );
    assert_eq!(
        status[1]["description"],
        "Service level agreement violated for 1/3 min (33%), last three values [40,5,5] not in (10, 80)"
    ); // 40 + (777 % 7)
    assert_eq!(status[0]["name"], labels("e2e_firing", "a"));

    let (_, v) = get(&format!("{}/violations", s.sla)).await.unwrap();
    assert_eq!(v[0]["1h"], json!({"n": 1, "time": 5.0}), "{v}");
    assert_eq!(v[0]["violation_list"][0]["duration"], 5.0);
    assert_eq!(v[0]["violation_list"][0]["avg_value"], 95.0);
    assert_eq!(v[1]["12h"], json!({"n": 0, "time": 0.0}), "pending is not a violation");
    assert_eq!(v[2]["1h"], json!({"n": 0, "time": 0.0}));
    assert_eq!(v[2]["3h"], json!({"n": 1, "time": 9.0}));
    assert_eq!(v[2]["12h"], json!({"n": 1, "time": 9.0}), "the 2-minute run is too short to count");
    let past = &v[2]["violation_list"][0];
    assert_eq!(
        (past["max_value"].clone(), past["min_value"].clone(), past["avg_value"].clone()),
        (json!(329.0), json!(320.0), json!(324.5))
    );
    assert_eq!(v[3]["12h"], json!({"n": 0, "time": 0.0}));
    // forecasts: every SLA metric has one, with every candidate's RMSE
    let fv = eventually("forecasts of every SLA metric", Duration::from_secs(60), async || {
        get(&format!("{}/future-violations", s.sla))
            .await
            .filter(|(_, b)| b.as_array().is_some_and(|a| a.iter().all(|x| x["prediction_rmse"].is_number())))
            .map(|(_, b)| b)
    })
    .await;
    let descriptions =
        ["Was already firing, continuing firing", "Was pending, will fire", "Will fire", "Will be pending"];
    for item in fv.as_array().unwrap() {
        // the probability that the series leaves its range within the forecast
        let probability = item["breach_probability"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&probability), "{item}");
        for v in item["violations"].as_array().unwrap() {
            assert!(descriptions.contains(&v["description"].as_str().unwrap()), "{v}");
            assert_eq!(v["probability"], item["breach_probability"], "{v}");
        }
    }
    let (status, p) = get(&format!("{}/metrics/{}/prediction", s.query, ids["e2e_firing"])).await.unwrap();
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["prediction"]["values"].as_array().unwrap().len(), 10);
    // each point with its 80 % and 95 % prediction intervals, nested around it
    for pt in p["prediction"]["values"].as_array().unwrap() {
        let n = |k: &str| pt[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {pt}"));
        let bounds = [n("lower_95"), n("lower_80"), n("value"), n("upper_80"), n("upper_95")];
        assert!(bounds.windows(2).all(|w| w[0] <= w[1]), "{pt}");
    }
    assert!(p["prediction"]["candidates"].as_array().unwrap().len() >= 3, "{p}");
    // metadata of every series (computed when the ETL starts)
    let (status, md) = get(&format!("{}/metrics/{}/metadata", s.query, ids["e2e_ok"])).await.unwrap();
    assert_eq!(status, 200, "{md}");
    assert!(md["metadata"]["stationarity"]["p_value"].is_number(), "{md}");
    assert_eq!(md["metadata"]["autocorrelation"]["0"], 1.0, "{md}");

    // the seed's gRPC stream: one message per SLA metric
    let mut client = slamon_proto::sla::sla_service_client::SlaServiceClient::connect(s.grpc.clone()).await.unwrap();
    let mut stream = client.get_sla_set(slamon_proto::sla::SlaRequest {}).await.unwrap().into_inner();
    let mut streamed = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        streamed.push(m.metric.get("__name__").cloned().unwrap());
    }
    assert_eq!(streamed, vec!["e2e_firing", "e2e_pending", "e2e_past", "e2e_ok", "e2e_big"]);

    // gRPC health and reflection are served
    let channel = tonic::transport::Endpoint::from_shared(s.grpc.clone()).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest { service: "sla.SlaService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse, ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in ["sla.SlaService", "sla.v2.SlaService", "grpc.health.v1.Health"] {
        assert!(services.iter().any(|s| s == name), "reflection lacks {name}: {services:?}");
    }

    // the exporter
    let text = reqwest::get(format!("{}/metrics", s.exporter)).await.unwrap().text().await.unwrap();
    for needle in [
        "etl_executiontime_1h{metric_name=\"e2e_firing\"}",
        "etl_executiontime_12h{metric_name=\"e2e_big\"}",
        "etl_cycles_total",
        "projector_events_applied_total",
    ] {
        assert!(text.contains(needle), "exporter lacks {needle}");
    }

    // kill -9 and start again on the same data dir: nothing acknowledged is lost
    let before_set = get(&format!("{}/slaset", s.sla)).await.unwrap();
    let before_history = get(&format!("{}/slaset/history", s.sla)).await.unwrap();
    let before_violations = get(&format!("{}/violations", s.sla)).await.unwrap();
    drop(s.proc);
    // a port picked free can be taken before slamon binds it: a process that exits is
    // started again on other ports; a timeout says what its log said
    let mut attempts = 0;
    let (s2, after_set) = 'started: loop {
        attempts += 1;
        let mut s2 = start_slamon(&data, &prom_url, &log, backend);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = s2.proc.0.try_wait() {
                assert!(
                    attempts < 3,
                    "slamon exited ({status}) three times: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue 'started;
            }
            if let Some(answer) = get(&format!("{}/slaset", s2.sla)).await {
                break 'started (s2, answer);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("timed out waiting for slamon back up: {}", std::fs::read_to_string(&log).unwrap_or_default());
    };
    assert_eq!(after_set, before_set);
    assert_eq!(get(&format!("{}/slaset/history", s2.sla)).await.unwrap(), before_history);
    let (_, after_metrics) = get(&format!("{}/metrics?match=job=e2e", s2.query)).await.unwrap();
    assert_eq!(after_metrics, metrics);
    assert_eq!(get(&format!("{}/violations", s2.sla)).await.unwrap(), before_violations);
    // the same set again changes nothing; a changed one is the next version
    let res = http.put(format!("{}/slaset", s2.sla)).json(&set).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"message": "SLA set unchanged", "version": 1}));
    let mut changed = set.clone();
    changed[3]["range"]["max"] = json!(4);
    let res = http.put(format!("{}/slaset", s2.sla)).json(&changed).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"message": "SLA set updated", "version": 2}));
    drop(s2.proc);

    if backend.iter().any(|(k, v)| k == "SLAMON_STORE" && v == "mongodb") {
        replay_rebuilds_what_the_projector_built(&data, backend, &ids).await;
    }
}

fn slamon(args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slamon"));
    c.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Every answer of the read side, for equality checks.
async fn snapshot(query: &str, sla: &str, ids: &BTreeMap<String, String>) -> Vec<Value> {
    let mut out = Vec::new();
    for path in ["/metrics?match=job=e2e"] {
        out.push(get(&format!("{query}{path}")).await.unwrap().1);
    }
    for path in ["/slaset", "/slaset/history", "/violations", "/future-violations"] {
        out.push(get(&format!("{sla}{path}")).await.unwrap().1);
    }
    for id in ids.values() {
        for what in ["values", "metadata", "prediction"] {
            out.push(get(&format!("{query}/metrics/{id}/{what}")).await.unwrap().1);
        }
    }
    out
}

/// SPEC §10 on the distributed path: with the writers stopped, drop the read models,
/// replay the topic from offset 0, and every API answer is what it was.
async fn replay_rebuilds_what_the_projector_built(
    data: &Path,
    backend: &[(String, String)],
    ids: &BTreeMap<String, String>,
) {
    let (r, q, s) = (free_port(), free_port(), free_port());
    let mut env: Vec<(String, String)> = backend.to_vec();
    env.push(("SLAMON_DATA_DIR".into(), data.display().to_string()));
    env.push(("SLAMON_REGISTRY_LISTEN".into(), format!("127.0.0.1:{r}")));
    env.push(("SCHEMA_REGISTRY_URL".into(), format!("http://127.0.0.1:{r}")));
    env.push(("SLAMON_QUERY_API_LISTEN".into(), format!("127.0.0.1:{q}")));
    env.push(("SLAMON_SLA_MANAGER_LISTEN".into(), format!("127.0.0.1:{s}")));
    env.push(("SLAMON_GRPC_LISTEN".into(), format!("127.0.0.1:{}", free_port())));
    // the registry of `slamon up` (same data dir), and the read side alone: nothing writes
    let _registry = Proc(slamon(&["registry"], &env).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    // the killed `up` may have left events in the log that its projector had not applied:
    // a projector alone, taking the dead one's place in the group, catches up
    let mut projector_env = env.clone();
    projector_env.push(("SLAMON_PROJECTOR_ADMIN_LISTEN".into(), format!("127.0.0.1:{}", free_port())));
    projector_env.push(("SLAMON_KAFKA_INSTANCE_ID".into(), "slamon-up".into()));
    let projector =
        Proc(slamon(&["projector"], &projector_env).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let _query = Proc(slamon(&["query-api"], &env).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let _sla = Proc(slamon(&["sla-manager"], &env).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let (query, sla) = (format!("http://127.0.0.1:{q}"), format!("http://127.0.0.1:{s}"));
    eventually("the read side alone", Duration::from_secs(30), async || {
        get(&format!("{sla}/slaset")).await.filter(|(st, _)| *st == 200)
    })
    .await;
    eventually("the registry", Duration::from_secs(30), async || {
        get(&format!("http://127.0.0.1:{r}/subjects")).await.filter(|(st, _)| *st == 200)
    })
    .await;
    // the dry run rebuilds from offset 0 and diffs: equal once the projector caught up
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = slamon(&["replay", "--dry-run"], &env).output().unwrap();
        let last = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() && last.contains("equal the live ones") {
            break;
        }
        assert!(Instant::now() < deadline, "the projector never caught up with the log: {last}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(projector);
    let before = snapshot(&query, &sla, ids).await;

    // drop the database: the read side is empty
    let database = backend.iter().find(|(k, _)| k == "MONGODB_DATABASE").map(|(_, v)| v.clone()).unwrap();
    let uri = backend.iter().find(|(k, _)| k == "MONGODB_URI").map(|(_, v)| v.clone()).unwrap();
    let store = slamon_mongo::MongoStore::connect(&slamon_mongo::MongoConfig {
        uri,
        database,
        timeout: Duration::from_secs(5),
        credential: None,
    })
    .await
    .unwrap();
    store.drop_database().await.unwrap();
    assert_eq!(get(&format!("{sla}/slaset")).await.unwrap().1, json!([]));

    let out = slamon(&["replay"], &env).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "replay: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("swapped the rebuilt read models in"), "{stdout}");
    let after = snapshot(&query, &sla, ids).await;
    assert_eq!(after.len(), before.len());
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a, b, "an API answer changed after the replay");
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Milliseconds of an RFC 3339 UTC time with milliseconds (`2023-11-14T22:13:20.000Z`).
fn chrono_parse_ms(s: &str) -> i64 {
    slamon_domain::parse_rfc3339_ms(s).unwrap_or_else(|| panic!("not an RFC 3339 time: {s}"))
}
