//! `slamon init` against a Kafka-wire broker and slamon's registry, then the wire
//! contract seen by a real Confluent client: Python `confluent-kafka` with its
//! `SchemaRegistryClient` and `AvroDeserializer` decodes the records slamon produced.
//!
//! Needs Kafka on 127.0.0.1:9092 (`scripts/services.sh start`) and the Python module
//! `confluent_kafka` (`scripts/services.sh install`); skipped locally without them,
//! failing in CI.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use slamon_domain::{Event, EventEnvelope, Labels, MetricRemoved, SlaEntry, SlaRange, SlaSetDefined};
use slamon_events::{EventCodec, Publisher};
use slamon_kafka::{KafkaConfig, KafkaLog};

fn ready() -> bool {
    let kafka = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], 9092).into(), Duration::from_secs(1)).is_ok();
    let python = Command::new("python3")
        .args(["-c", "import confluent_kafka.schema_registry.avro"])
        .status()
        .is_ok_and(|s| s.success());
    if !(kafka && python) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: Kafka on 9092 and python3 confluent_kafka are required (scripts/services.sh)"
        );
        eprintln!("SKIPPED: Kafka on 9092 or python3 confluent_kafka missing");
    }
    kafka && python
}

fn init(topic: &str, registry: &str, servers: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_slamon"))
        .arg("init")
        .env("SLAMON_EVENT_LOG", "kafka")
        .env("KAFKA_BOOTSTRAP_SERVERS", servers)
        .env("SLAMON_KAFKA_TIMEOUT", "5s")
        .env("SLAMON_TOPIC", topic)
        .env("SLAMON_TOPIC_PARTITIONS", "4")
        .env("SCHEMA_REGISTRY_URL", registry)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_then_a_confluent_python_client_decodes_our_records() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry = format!("http://{}", listener.local_addr().unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(slamon_registry::serve(dir.path().join("registry.redb"), listener, cancel.clone()));
    let topic = format!("wire-{}", uuid::Uuid::now_v7().simple());

    // init creates the topics and registers the schemas, and can run again
    for round in 0..2 {
        let out = init(&topic, &registry, "127.0.0.1:9092");
        assert!(out.status.success(), "init round {round}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let subjects: Vec<String> = reqwest::get(format!("{registry}/subjects")).await.unwrap().json().await.unwrap();
    assert_eq!(subjects.len(), slamon_events::schemas::latest_all().count(), "{subjects:?}");
    let subject = format!("{topic}-io.slamon.events.SlaSetDefined");
    let config: serde_json::Value =
        reqwest::get(format!("{registry}/config/{subject}")).await.unwrap().json().await.unwrap();
    assert_eq!(config["compatibilityLevel"], "BACKWARD_TRANSITIVE");

    // the topic keeps every record: replay starts at offset 0
    let config = KafkaConfig {
        bootstrap_servers: "127.0.0.1:9092".into(),
        timeout: Duration::from_secs(10),
        instance_id: None,
        max_poll_interval: slamon_kafka::DEFAULT_MAX_POLL_INTERVAL,
    };
    let described = slamon_kafka::topic_config(&config, &topic).await.unwrap();
    assert_eq!(slamon_kafka::history_loss(&described), None, "{described:?}");

    // an existing topic that deletes records after a week is refused, saying how to fix it
    let weekly = format!("wire-weekly-{}", uuid::Uuid::now_v7().simple());
    slamon_kafka::ensure_topic(&config, &weekly, 4, 1, &[("retention.ms", "604800000")]).await.unwrap();
    let out = init(&weekly, &registry, "127.0.0.1:9092");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "init accepted a topic that loses history");
    assert!(stderr.contains("retention.ms=604800000") && stderr.contains("kafka-configs.sh"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_slamon"))
        .arg("init")
        .env("SLAMON_EVENT_LOG", "kafka")
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        .env("SLAMON_TOPIC", &weekly)
        .env("SCHEMA_REGISTRY_URL", &registry)
        .env("SLAMON_TOPIC_ALLOW_LIMITED_RETENTION", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // an unreachable broker is a clear failure, not a hang
    let out = init(&topic, &registry, "127.0.0.1:1");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot create topic"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let log = Arc::new(
        KafkaLog::new(KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            timeout: Duration::from_secs(10),
            instance_id: None,
            max_poll_interval: slamon_kafka::DEFAULT_MAX_POLL_INTERVAL,
        })
        .unwrap(),
    );
    let publisher = Publisher::new(Arc::new(EventCodec::new(&registry, &topic).unwrap()), log);
    let labels: Labels = [("__name__", "up"), ("job", "wire")].into_iter().collect();
    let events = vec![
        EventEnvelope::new("test", Event::MetricRemoved(MetricRemoved { labels: labels.clone(), last_seen_ms: 1 })),
        EventEnvelope::new(
            "test",
            Event::SlaSetDefined(SlaSetDefined {
                version: 1,
                entries: vec![SlaEntry { labels, range: SlaRange { min: 0.0, max: 1.0 }, for_minutes: 2 }],
            }),
        ),
    ];
    publisher.publish(&events).await.unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/wire_compat.py");
    let out = Command::new("python3").args([script, "127.0.0.1:9092", &registry, &topic, "2"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let decoded: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut types: Vec<&str> = decoded.iter().map(|d| d["event_type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, vec!["MetricRemoved", "SlaSetDefined"]);
    for (d, e) in decoded.iter().zip(&events) {
        if d["event_type"] == e.event.event_type() {
            assert_eq!(d["event_id"], e.event_id.to_string());
            assert_eq!(d["key"], e.event.key());
        }
    }
    cancel.cancel();
}
