//! Throughput on the distributed path, measured in one run on the same servers:
//! the raw MongoDB bulk-upsert rate (the limit), the projector's events/s and replay's
//! events/s over the same events. A benchmark, not a test.
//!
//!     scripts/services.sh start
//!     cargo run --release -p slamon --example throughput -- 200000
//!
//! Needs Kafka on 127.0.0.1:9092 and MongoDB on 127.0.0.1:27017.
#![allow(clippy::print_stdout)] // a report printed for a person or a script

use std::sync::Arc;
use std::time::{Duration, Instant};

use slamon_domain::{
    Document, Event, EventEnvelope, EventLog, Labels, MetricAggregatesComputed, MetricView, Position, ReadModelStore,
    ValuesView, Window, WindowAggregate,
};
use slamon_events::{EventCodec, Publisher};
use slamon_kafka::{KafkaConfig, KafkaLog};
use slamon_mongo::{MongoConfig, MongoStore};
use slamon_projector::{Projector, ProjectorConfig, ProjectorMetrics};

const SERIES: usize = 5000;
const BATCH: usize = 1000;

fn labels(i: usize) -> Labels {
    [("__name__", "bench_metric"), ("series", &*(i % SERIES).to_string())].into_iter().collect()
}

fn aggregate(i: usize) -> WindowAggregate {
    WindowAggregate {
        window: Window::H1,
        min: Some(i as f64),
        max: Some(i as f64),
        avg: Some(i as f64),
        std_dev: None,
        samples: 1,
    }
}

#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(200_000);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mongo = MongoStore::connect(&MongoConfig {
        uri: std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into()),
        database: format!("bench_{run}"),
        timeout: Duration::from_secs(30),
        credential: None,
    })
    .await?;
    mongo.ensure_indexes().await?;

    // 1. the limit: raw bulk upserts of metric documents, BATCH per bulk write
    let raw = mongo.with_prefix("raw_");
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(BATCH) {
        let docs = chunk
            .iter()
            .map(|&i| {
                let l = labels(i);
                Document::Metric(MetricView {
                    id: l.id(),
                    labels: l,
                    removed: false,
                    values: Some(ValuesView { computed_at_ms: i as i64, windows: vec![aggregate(i)] }),
                    prediction: None,
                    metadata: None,
                    applied: Position::new(0, i as i64),
                })
            })
            .collect();
        raw.write(docs).await?;
    }
    let raw_rate = n as f64 / started.elapsed().as_secs_f64();

    // the same number of events on a topic of its own
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let registry = format!("http://{}", listener.local_addr()?);
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(slamon_registry::serve(dir.path().join("registry.redb"), listener, cancel.clone()));
    let config = KafkaConfig {
        bootstrap_servers: std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        timeout: Duration::from_secs(60),
        instance_id: None,
        max_poll_interval: slamon_kafka::DEFAULT_MAX_POLL_INTERVAL,
    };
    let topic = format!("bench-{run}");
    slamon_kafka::ensure_topic(&config, &topic, 4, 1, &[]).await?;
    let log = Arc::new(KafkaLog::new(config)?);
    let codec = Arc::new(EventCodec::new(&registry, &topic)?);
    let publisher = Publisher::new(codec.clone(), log.clone());
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(BATCH) {
        let events: Vec<EventEnvelope> = chunk
            .iter()
            .map(|&i| {
                EventEnvelope::new(
                    "bench",
                    Event::MetricAggregatesComputed(MetricAggregatesComputed {
                        labels: labels(i),
                        computed_at_ms: i as i64,
                        windows: vec![aggregate(i)],
                    }),
                )
            })
            .collect();
        publisher.publish(&events).await?;
    }
    let produce_rate = n as f64 / started.elapsed().as_secs_f64();

    // the first reader of the topic pays the broker's cold reads: THROUGHPUT_ORDER=replay
    // measures replay first
    let replay_first = std::env::var("THROUGHPUT_ORDER").as_deref() == Ok("replay");
    let mut projector_rate = 0.0;
    let mut replay_rate = 0.0;
    for step in if replay_first { ["replay", "projector"] } else { ["projector", "replay"] } {
        if step == "projector" {
            // 2. the projector, as it runs in production, from offset 0 until it consumed all
            let live = mongo.with_prefix("live_");
            let metrics = ProjectorMetrics::unregistered();
            let projector = Projector::new(
                log.consumer(&format!("bench-projector-{run}"), &topic).await?,
                Arc::new(live),
                codec.clone(),
                log.clone(),
                ProjectorConfig { batch: BATCH, ..ProjectorConfig::default() },
                metrics.clone(),
            );
            let stop = tokio_util::sync::CancellationToken::new();
            let started = Instant::now();
            let running = tokio::spawn(projector.run(stop.clone()));
            while metrics.consumed.get() < n as u64 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            projector_rate = n as f64 / started.elapsed().as_secs_f64();
            stop.cancel();
            running.await?;
        } else {
            // 3. replay: a fresh group from offset 0 into fresh collections
            let rebuilt = mongo.with_prefix("rebuild_");
            let started = Instant::now();
            let report = slamon_replay::rebuild_into(log.as_ref(), &codec, &topic, &rebuilt, BATCH).await?;
            replay_rate = report.records as f64 / started.elapsed().as_secs_f64();
        }
    }

    println!("{n} events over {SERIES} series, {BATCH} per batch (Kafka: tansu, MongoDB: SecantusDB)");
    println!("{:<32} {:>10}", "", "per second");
    println!("{:<32} {:>10.0}", "raw MongoDB bulk upserts", raw_rate);
    println!("{:<32} {:>10.0}", "produce (acks=all)", produce_rate);
    println!("{:<32} {:>10.0}  ({:.0} % of raw)", "projector", projector_rate, projector_rate / raw_rate * 100.0);
    println!("{:<32} {:>10.0}  ({:.0} % of raw)", "replay", replay_rate, replay_rate / raw_rate * 100.0);
    mongo.drop_database().await?;
    cancel.cancel();
    Ok(())
}
