//! The projector over the embedded log and store, with slamon's registry.

use std::sync::Arc;
use std::time::Duration;

use slamon_domain::projection::project_all;
use slamon_domain::*;
use slamon_embedded::{EmbeddedLog, EmbeddedStore};
use slamon_events::{EventCodec, Publisher};
use slamon_projector::{Projector, ProjectorConfig, ProjectorMetrics};
use tokio_util::sync::CancellationToken;

struct Env {
    _dir: tempfile::TempDir,
    log: Arc<EmbeddedLog>,
    store: Arc<EmbeddedStore>,
    codec: Arc<EventCodec>,
    cancel: CancellationToken,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    tokio::spawn(slamon_registry::serve(dir.path().join("registry.redb"), listener, cancel.clone()));
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log.redb")).unwrap());
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let codec = Arc::new(EventCodec::new(&url, TOPIC).unwrap());
    Env { _dir: dir, log, store, codec, cancel }
}

fn events(n: usize) -> Vec<EventEnvelope> {
    (0..n)
        .map(|i| {
            let labels: Labels = [("__name__", "m"), ("i", &*(i % 7).to_string())].into_iter().collect();
            let event = if i % 3 == 0 {
                Event::SlaSamplesObserved(SlaSamplesObserved {
                    labels,
                    window_start_ms: 0,
                    samples: vec![Sample::new(i as i64 * 1000, i as f64)],
                })
            } else {
                Event::MetricAggregatesComputed(MetricAggregatesComputed {
                    labels,
                    computed_at_ms: i as i64,
                    windows: vec![],
                })
            };
            EventEnvelope::new("test", event)
        })
        .collect()
}

async fn projector(e: &Env, group: &str) -> Projector {
    let consumer = e.log.consumer(group, TOPIC).await.unwrap();
    Projector::new(
        consumer,
        e.store.clone(),
        e.codec.clone(),
        e.log.clone(),
        ProjectorConfig::default(),
        ProjectorMetrics::unregistered(),
    )
}

async fn all_docs(store: &EmbeddedStore) -> Vec<Document> {
    let mut out = Vec::new();
    for c in Collection::ALL {
        out.extend(store.all(c).await.unwrap());
    }
    out
}

#[tokio::test]
async fn projects_skips_redeliveries_and_dead_letters_poison() {
    let e = env().await;
    let evs = events(60);
    let publisher = Publisher::new(e.codec.clone(), e.log.clone());
    publisher.publish(&evs[..30]).await.unwrap();
    // a record that is not in the wire format at all
    e.log.append(TOPIC, vec![("junk".into(), b"not avro".to_vec())]).await.unwrap();
    publisher.publish(&evs[30..]).await.unwrap();

    let mut p = projector(&e, "g").await;
    let mut consumer = e.log.consumer("peek", TOPIC).await.unwrap();
    let records = consumer.poll(1000, Duration::from_millis(100)).await.unwrap();
    assert_eq!(records.len(), 61);
    let out = p.process(&records).await.unwrap();
    assert_eq!((out.applied, out.skipped, out.dead_lettered), (60, 0, 1));

    // the same records again (a crash before the commit): nothing changes
    let before = all_docs(&e.store).await;
    let out = p.process(&records).await.unwrap();
    assert_eq!((out.applied, out.skipped), (0, 60));
    assert_eq!(all_docs(&e.store).await, before);

    // the store equals the pure projection of the same events at the same positions
    let mut expected = std::collections::BTreeMap::new();
    let positioned: Vec<(EventEnvelope, Position)> = evs
        .iter()
        .enumerate()
        .map(|(i, ev)| (ev.clone(), Position::new(0, if i < 30 { i as i64 } else { i as i64 + 1 })))
        .collect();
    project_all(&mut expected, positioned.iter().map(|(e, p)| (e, *p)));
    let mut want: Vec<Document> = expected.into_values().collect();
    want.sort_by_key(|d| d.key());
    let mut got = before;
    got.sort_by_key(|d| d.key());
    assert_eq!(got, want);

    let mut dlq = e.log.consumer("dlq-reader", DLQ_TOPIC).await.unwrap();
    let dead = dlq.poll(10, Duration::from_millis(100)).await.unwrap();
    // the dead-letter topic is at-least-once: the redelivered batch sent it again
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].value, dead[1].value);
    let body: serde_json::Value = serde_json::from_slice(&dead[0].value).unwrap();
    assert_eq!(body["offset"], 30);
    assert!(body["reason"].as_str().unwrap().contains("wire format"), "{body}");
    e.cancel.cancel();
}

#[tokio::test]
async fn a_projector_stopped_mid_stream_resumes_without_loss_or_double_counting() {
    let e = env().await;
    let evs = events(200);
    let publisher = Publisher::new(e.codec.clone(), e.log.clone());
    publisher.publish(&evs).await.unwrap();

    // run a projector briefly with small batches, stop it, start another of the same group
    for _ in 0..3 {
        let mut p = projector(&e, "live").await;
        let mut consumer = e.log.consumer("live", TOPIC).await.unwrap();
        let batch = consumer.poll(37, Duration::from_millis(50)).await.unwrap();
        drop(consumer);
        if !batch.is_empty() {
            p.process(&batch).await.unwrap();
        }
    }
    let cancel = CancellationToken::new();
    let p = projector(&e, "live").await;
    let handle = tokio::spawn(p.run(cancel.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = e.log.consumer("live", TOPIC).await.unwrap();
        if c.lag().await.unwrap() == 0 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    handle.await.unwrap();

    let mut expected = std::collections::BTreeMap::new();
    let positioned: Vec<(EventEnvelope, Position)> =
        evs.iter().enumerate().map(|(i, ev)| (ev.clone(), Position::new(0, i as i64))).collect();
    project_all(&mut expected, positioned.iter().map(|(e, p)| (e, *p)));
    let mut want: Vec<Document> = expected.into_values().collect();
    want.sort_by_key(|d| d.key());
    let mut got = all_docs(&e.store).await;
    got.sort_by_key(|d| d.key());
    assert_eq!(got, want);
    e.cancel.cancel();
}
