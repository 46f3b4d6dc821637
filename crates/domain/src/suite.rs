//! Behaviour suites that every implementation of a port runs (quickwit's
//! `metastore_test_suite!` idea): the embedded log and Kafka, the embedded store and
//! MongoDB. Each function panics on the first broken promise.

use std::time::Duration;

use crate::events::{Window, WindowAggregate};
use crate::labels::Labels;
use crate::ports::{next_positions, EventLog, LogConsumer, LogRecord, Position, ReadModelStore};
use crate::views::{DocKey, Document, MetricFilter, MetricView, SlaSamplesView, SlaSetVersion, SlaSetView, ValuesView};
use crate::Sample;

async fn drain(c: &mut Box<dyn LogConsumer>, want: usize) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for _ in 0..100 {
        if out.len() >= want {
            break;
        }
        out.extend(c.poll(want - out.len(), Duration::from_millis(200)).await.expect("poll"));
    }
    out
}

/// The event log: appends are read back in order per key, committed positions survive
/// a new consumer of the same group, a new group starts from the beginning.
pub async fn event_log(log: &dyn EventLog, topic: &str, group: &str) {
    let records: Vec<(String, Vec<u8>)> =
        (0..20).map(|i| (format!("k{}", i % 3), format!("v{i}").into_bytes())).collect();
    let positions = log.append(topic, records.clone()).await.expect("append");
    assert_eq!(positions.len(), 20);

    let mut c = log.consumer(group, topic).await.expect("consumer");
    let got = drain(&mut c, 20).await;
    assert_eq!(got.len(), 20, "every appended record is read");
    for key in ["k0", "k1", "k2"] {
        let sent: Vec<&Vec<u8>> = records.iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect();
        let read: Vec<&Vec<u8>> = got.iter().filter(|r| r.key == key).map(|r| &r.value).collect();
        assert_eq!(sent, read, "records of one key keep their order");
    }
    // commit the first 10 only, as if we crashed after applying them
    c.commit(&next_positions(&got[..10])).await.expect("commit");
    drop(c);
    let mut again = log.consumer(group, topic).await.expect("consumer");
    let rest = drain(&mut again, 10).await;
    assert_eq!(rest.len(), 10);
    let mut expected: Vec<_> = got[10..].iter().map(|r| r.value.clone()).collect();
    let mut actual: Vec<_> = rest.iter().map(|r| r.value.clone()).collect();
    expected.sort();
    actual.sort();
    assert_eq!(actual, expected, "a restarted consumer resumes after its committed positions, nothing lost or doubled");
    again.commit(&next_positions(&rest)).await.expect("commit");
    assert_eq!(again.lag().await.expect("lag"), 0);
    assert!(again.poll(10, Duration::from_millis(100)).await.expect("poll").is_empty());

    let mut fresh = log.consumer(&format!("{group}-fresh"), topic).await.expect("consumer");
    assert_eq!(drain(&mut fresh, 20).await.len(), 20, "a new group reads from offset 0");
}

fn metric(name: &str, job: &str, offset: i64) -> MetricView {
    let labels: Labels = [("__name__", name), ("job", job)].into_iter().collect();
    MetricView {
        id: labels.id(),
        labels,
        removed: false,
        values: Some(ValuesView {
            computed_at_ms: 1,
            windows: vec![WindowAggregate {
                window: Window::H1,
                min: Some(1.0),
                max: Some(2.0),
                avg: Some(1.5),
                std_dev: None,
                samples: 2,
            }],
        }),
        prediction: None,
        metadata: None,
        applied: Position::new(0, offset),
    }
}

/// The read-model store: upserts, reads by id, filters and pages, documents of every
/// collection round-trip unchanged.
pub async fn read_model_store(store: &dyn ReadModelStore) {
    let a = metric("up", "a", 1);
    let b = metric("up", "b", 2);
    let mut c = metric("load", "a", 3);
    c.removed = true;
    store
        .write(vec![Document::Metric(a.clone()), Document::Metric(b.clone()), Document::Metric(c.clone())])
        .await
        .expect("write");
    assert_eq!(store.metric(&a.id).await.expect("read").as_ref(), Some(&a));
    assert_eq!(store.metric(&c.id).await.expect("read").as_ref(), Some(&c), "removed documents are kept as tombstones");
    let all = store.metrics(&MetricFilter::default()).await.expect("list");
    let mut ids = vec![a.id, b.id];
    ids.sort();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), ids, "live metrics sorted by id");
    let f = MetricFilter { matchers: vec![("job".into(), "b".into())], ..Default::default() };
    assert_eq!(store.metrics(&f).await.expect("list"), vec![b.clone()]);
    let f = MetricFilter { name: Some("up".into()), limit: Some(1), offset: 1, ..Default::default() };
    assert_eq!(store.metrics(&f).await.expect("list").len(), 1);

    // upsert replaces
    let mut a2 = a.clone();
    a2.applied = Position::new(0, 9);
    store.write(vec![Document::Metric(a2.clone())]).await.expect("write");
    assert_eq!(store.metric(&a.id).await.expect("read"), Some(a2.clone()));

    let set = SlaSetVersion { version: 1, defined_at_ms: 5, entries: vec![] };
    let view = SlaSetView { current: set.clone(), history: vec![set], applied: Position::new(0, 4) };
    let samples = SlaSamplesView {
        id: a.id,
        labels: a.labels.clone(),
        samples: vec![Sample::new(1, 1.0), Sample::new(2, f64::MAX)],
        applied: Position::new(0, 7),
    };
    store.write(vec![Document::SlaSet(view.clone()), Document::SlaSamples(samples.clone())]).await.expect("write");
    assert_eq!(store.sla_set().await.expect("read"), Some(view.clone()));
    assert_eq!(store.sla_samples(&a.id).await.expect("read"), Some(samples.clone()));
    let keys = vec![
        Document::SlaSet(view.clone()).key(),
        Document::Metric(b.clone()).key(),
        Document::Metric(metric("x", "y", 0)).key(),
    ];
    let loaded = store.load(&keys).await.expect("load");
    assert_eq!(loaded, vec![Some(Document::SlaSet(view)), Some(Document::Metric(b)), None]);

    // a batch-sized load: hundreds of keys, present and absent interleaved, answered in order
    let many: Vec<MetricView> = (0..300).map(|i| metric("many", &i.to_string(), i)).collect();
    store.write(many.iter().step_by(2).cloned().map(Document::Metric).collect()).await.expect("write");
    let keys: Vec<DocKey> = many.iter().map(|m| Document::Metric(m.clone()).key()).collect();
    let loaded = store.load(&keys).await.expect("load");
    let expected: Vec<Option<Document>> =
        many.iter().enumerate().map(|(i, m)| (i % 2 == 0).then(|| Document::Metric(m.clone()))).collect();
    assert_eq!(loaded, expected);
}
