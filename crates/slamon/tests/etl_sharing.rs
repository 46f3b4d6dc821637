//! Two `slamon etl` processes share the series of a Prometheus through a Kafka consumer
//! group (Kafka-wire tansu): a Prometheus backfilled with `promtool` with 191 series in
//! three names, two ETL instances on one topic. At steady state every series gets its
//! statistics exactly once per cycle, from one instance, and the two shares cover every
//! series; when one instance stops, the other takes its slots and covers them all.
//!
//! Needs `prometheus` and `promtool` on PATH and Kafka on 127.0.0.1:9092
//! (`scripts/services.sh`); skipped locally without them, failing in CI.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slamon_domain::{Event, EventLog, Labels};
use slamon_events::EventCodec;
use slamon_kafka::{KafkaConfig, KafkaLog};
use support::*;

mod support;

/// The series of the backfill: 150 pods, 40 nodes and one lone series.
fn backfilled() -> Vec<Labels> {
    let mut out = Vec::new();
    for (name, label, n) in [("shard_pods", "pod", 150), ("shard_nodes", "node", 40), ("shard_one", "x", 1)] {
        for i in 0..n {
            // regular-expression metacharacters in values: a share is selected by them
            let value = if label == "pod" { format!("pod-{i}.(a|b)[c]{{2}}*+?^$\\") } else { format!("{label}-{i}") };
            out.push([("__name__", name.to_owned()), (label, value)].into_iter().collect());
        }
    }
    out
}

/// Two hours of one-minute samples of every series, the last one 20 s ago.
fn write_openmetrics(path: &std::path::Path, now_ms: i64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let last_s = now_ms / 1000 - 20;
    let mut by_name: BTreeMap<String, Vec<Labels>> = BTreeMap::new();
    for l in backfilled() {
        by_name.entry(l.name().to_owned()).or_default().push(l);
    }
    for (name, series) in by_name {
        writeln!(f, "# TYPE {name} gauge").unwrap();
        for (i, l) in series.iter().enumerate() {
            let (label, value) = l.iter().find(|(k, _)| *k != "__name__").unwrap();
            let value = value.replace('\\', "\\\\");
            for k in 0..120 {
                let t = last_s - (119 - k) * 60;
                writeln!(f, "{name}{{{label}=\"{value}\"}} {} {t}", (i as i64 + k) % 17).unwrap();
            }
        }
    }
    writeln!(f, "# EOF").unwrap();
}

fn ready() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let tools = which("prometheus").zip(which("promtool"));
    if tools.is_none() || !reachable(9092) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: prometheus, promtool and Kafka on 9092 are required (scripts/services.sh)"
        );
        eprintln!("SKIPPED: prometheus/promtool not on PATH or no Kafka on 9092");
        return None;
    }
    tools
}

/// A `slamon etl` process named `host` (its producer is `etl@host`), its exporter's URL.
fn etl(env: &[(String, String)], host: &str, dir: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let log = std::fs::File::create(dir.join(format!("etl-{host}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_slamon"))
        .arg("etl")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("HOSTNAME", host)
        .env("SLAMON_EXPORTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (Proc(child), format!("http://127.0.0.1:{port}/metrics"))
}

/// The statistics cycles read from the topic so far: per producer, per cycle time, the
/// series and how many events each got.
type Cycles = BTreeMap<String, BTreeMap<i64, BTreeMap<Labels, usize>>>;

async fn read_cycles(consumer: &mut Box<dyn slamon_domain::LogConsumer>, codec: &EventCodec, cycles: &mut Cycles) {
    loop {
        let batch = consumer.poll(10_000, Duration::from_millis(500)).await.unwrap();
        if batch.is_empty() {
            return;
        }
        for r in batch {
            let e = codec.decode(&r.value).await.unwrap();
            if let Event::MetricAggregatesComputed(a) = e.event {
                *cycles
                    .entry(e.producer)
                    .or_default()
                    .entry(a.computed_at_ms)
                    .or_default()
                    .entry(a.labels)
                    .or_default() += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_etl_processes_share_the_series_once_each_and_one_takes_over_when_the_other_stops() {
    let Some((prometheus, promtool)) = ready() else { return };
    let dir = tempfile::tempdir().unwrap();
    let om = dir.path().join("history.om");
    write_openmetrics(&om, slamon_domain::now_ms());
    let tsdb = dir.path().join("tsdb");
    let out = Command::new(&promtool).args(["tsdb", "create-blocks-from", "openmetrics"]).arg(&om).arg(&tsdb).output();
    let out = out.unwrap();
    assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
    let config = "global:\n  scrape_interval: 1m\nscrape_configs: []\n";
    let (prom_url, _prom) =
        start_prometheus(&prometheus, dir.path(), config, &tsdb, &["--storage.tsdb.retention.time=30d"]).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry = format!("http://{}", listener.local_addr().unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(slamon_registry::serve(dir.path().join("registry.redb"), listener, cancel.clone()));
    let run = uuid::Uuid::now_v7().simple().to_string();
    let topic = format!("sharing-{run}");
    let env: Vec<(String, String)> = [
        ("SLAMON_EVENT_LOG", "kafka"),
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        ("SLAMON_TOPIC", topic.as_str()),
        ("SLAMON_ETL_GROUP", &format!("etl-{run}")),
        ("SLAMON_ETL_SLOTS", "8"),
        ("SLAMON_TOPIC_PARTITIONS", "4"),
        ("SCHEMA_REGISTRY_URL", registry.as_str()),
        ("PROMETHEUS_URL", prom_url.as_str()),
        ("SLAMON_ETL_PERIOD", "4s"),
        // no SLA manager: the statistics go on without an SLA set
        ("SLAMON_SLA_MANAGER_GRPC_URL", "http://127.0.0.1:1"),
        ("SLAMON_DATA_DIR", &dir.path().join("data").display().to_string()),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let init = Command::new(env!("CARGO_BIN_EXE_slamon"))
        .arg("init")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(init.status.success(), "init: {}", String::from_utf8_lossy(&init.stderr));

    let (a, a_metrics) = etl(&env, "a", dir.path());
    let owned_slots = async |url: &str| -> Option<u64> {
        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix("etl_owned_slots ")).and_then(|v| v.trim().parse().ok())
    };
    eventually("the first instance to own every slot", Duration::from_secs(60), async || {
        (owned_slots(&a_metrics).await == Some(8)).then_some(())
    })
    .await;
    let (b, b_metrics) = etl(&env, "b", dir.path());
    eventually("the two instances to own 4 slots each", Duration::from_secs(90), async || {
        (owned_slots(&a_metrics).await == Some(4) && owned_slots(&b_metrics).await == Some(4)).then_some(())
    })
    .await;
    let settled_ms = slamon_domain::now_ms();

    let kafka = KafkaLog::new(KafkaConfig {
        bootstrap_servers: "127.0.0.1:9092".into(),
        timeout: Duration::from_secs(30),
        instance_id: None,
        max_poll_interval: slamon_kafka::DEFAULT_MAX_POLL_INTERVAL,
    })
    .unwrap();
    let codec = EventCodec::new(&registry, &topic).unwrap();
    let mut consumer = kafka.consumer(&format!("reader-{run}"), &topic).await.unwrap();
    let mut cycles = Cycles::new();
    let all: BTreeSet<Labels> = backfilled().into_iter().collect();
    let (pa, pb) = ("etl@a".to_owned(), "etl@b".to_owned());
    // three whole cycles of each after both owned their slots (the first may be cut by
    // the rebalance)
    let steady = |cycles: &Cycles, producer: &str| -> Vec<BTreeMap<Labels, usize>> {
        cycles.get(producer).map(|c| c.range(settled_ms + 1..).map(|(_, s)| s.clone()).collect()).unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while steady(&cycles, &pa).len() < 4 || steady(&cycles, &pb).len() < 4 {
        assert!(Instant::now() < deadline, "no steady cycles: {:?}", cycles.keys().collect::<Vec<_>>());
        read_cycles(&mut consumer, &codec, &mut cycles).await;
    }
    let (sa, sb) = (steady(&cycles, &pa), steady(&cycles, &pb));
    let share_a: BTreeSet<Labels> = sa[1].keys().cloned().collect();
    let share_b: BTreeSet<Labels> = sb[1].keys().cloned().collect();
    eprintln!("split of {} series: a {} (4 of 8 slots), b {}", all.len(), share_a.len(), share_b.len());
    assert!(share_a.is_disjoint(&share_b), "a series computed by both");
    assert_eq!(share_a.union(&share_b).cloned().collect::<BTreeSet<_>>(), all, "a series computed by neither");
    for (share, cycles) in [(&share_a, &sa[1..]), (&share_b, &sb[1..])] {
        for cycle in cycles {
            assert_eq!(&cycle.keys().cloned().collect::<BTreeSet<_>>(), share, "the same share every cycle");
            assert!(cycle.values().all(|n| *n == 1), "a series twice in one cycle");
        }
    }
    assert!(share_a.len() > 40 && share_b.len() > 40, "an even split: {} and {}", share_a.len(), share_b.len());

    // `b` stops (SIGTERM: it leaves the group) and `a` takes every slot
    let _ = Command::new("kill").arg(b.0.id().to_string()).status();
    let stopped_ms = slamon_domain::now_ms();
    eventually("the remaining instance to own every slot", Duration::from_secs(60), async || {
        (owned_slots(&a_metrics).await == Some(8)).then_some(())
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        read_cycles(&mut consumer, &codec, &mut cycles).await;
        let whole = cycles[&pa].range(stopped_ms + 1..).any(|(_, s)| s.keys().cloned().collect::<BTreeSet<_>>() == all);
        if whole {
            break;
        }
        assert!(Instant::now() < deadline, "the remaining instance never covered every series");
    }
    drop((a, b));
    cancel.cancel();
}
