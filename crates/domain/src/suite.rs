//! Behaviour suites that every implementation of a port runs (quickwit's
//! `metastore_test_suite!` idea): the embedded log and Kafka, the embedded store and
//! MongoDB. Each promise is one public function that panics when the promise is broken,
//! and [`read_model_store_suite!`](crate::read_model_store_suite) and
//! [`event_log_suite!`](crate::event_log_suite) turn each into a test of its own named
//! after the promise, so a failure names the broken promise and the backend (the module
//! the macro is called in).

use std::time::Duration;

use crate::ports::LogConsumer;
use crate::ports::LogRecord;

/// A name no other test uses: `<prefix>-<uuid v7>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

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

/// The promises of an event log ([`crate::EventLog`]). Each function gets a topic and a
/// consumer group of its own.
pub mod log {
    use super::drain;
    use crate::ports::{next_positions, EventLog};

    fn records(n: usize) -> Vec<(String, Vec<u8>)> {
        (0..n).map(|i| (format!("k{}", i % 3), format!("v{i}").into_bytes())).collect()
    }

    /// Every appended record is read, and the records of one key keep their order.
    pub async fn reads_every_record_in_key_order(log: &dyn EventLog, topic: &str, group: &str) {
        let records = records(20);
        let positions = log.append(topic, records.clone()).await.expect("append");
        assert_eq!(positions.len(), 20, "one position per appended record");
        let mut c = log.consumer(group, topic).await.expect("consumer");
        let got = drain(&mut c, 20).await;
        assert_eq!(got.len(), 20, "every appended record is read");
        for key in ["k0", "k1", "k2"] {
            let sent: Vec<&Vec<u8>> = records.iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect();
            let read: Vec<&Vec<u8>> = got.iter().filter(|r| r.key == key).map(|r| &r.value).collect();
            assert_eq!(sent, read, "records of one key keep their order");
        }
    }

    /// A new consumer of a group resumes after the group's committed positions: nothing
    /// lost, nothing doubled; after committing everything its lag is 0.
    pub async fn resumes_after_committed_positions(log: &dyn EventLog, topic: &str, group: &str) {
        log.append(topic, records(20)).await.expect("append");
        let mut c = log.consumer(group, topic).await.expect("consumer");
        let got = drain(&mut c, 20).await;
        assert_eq!(got.len(), 20);
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
        assert_eq!(actual, expected, "a restarted consumer resumes after its committed positions");
        again.commit(&next_positions(&rest)).await.expect("commit");
        assert_eq!(again.lag().await.expect("lag"), 0, "nothing left after committing everything");
        assert!(again.poll(10, std::time::Duration::from_millis(100)).await.expect("poll").is_empty());
    }

    /// A group that never committed reads from offset 0.
    pub async fn a_new_group_reads_from_offset_zero(log: &dyn EventLog, topic: &str, group: &str) {
        log.append(topic, records(20)).await.expect("append");
        let mut first = log.consumer(group, topic).await.expect("consumer");
        let got = drain(&mut first, 20).await;
        first.commit(&next_positions(&got)).await.expect("commit");
        let mut fresh = log.consumer(&format!("{group}-fresh"), topic).await.expect("consumer");
        assert_eq!(drain(&mut fresh, 20).await.len(), 20, "a new group reads from offset 0");
    }
}

/// The promises of a read-model store ([`crate::ReadModelStore`], and
/// [`crate::RebuildableStore`] for the rebuild). Each function gets an empty store.
pub mod store {
    use crate::events::{Window, WindowAggregate};
    use crate::labels::{Labels, MetricId};
    use crate::ports::{Position, ReadModelStore, RebuildableStore};
    use crate::views::{
        DocKey, Document, MetricFilter, MetricView, SlaSamplesView, SlaSetVersion, SlaSetVersionView, SlaSetView,
        ValuesView,
    };
    use crate::Sample;

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

    /// A written document reads back unchanged by id; writing it again replaces it.
    pub async fn upserts_and_reads_back_by_id(store: &dyn ReadModelStore) {
        let a = metric("up", "a", 1);
        store.write(vec![Document::Metric(a.clone())]).await.expect("write");
        assert_eq!(store.metric(&a.id).await.expect("read").as_ref(), Some(&a));
        let mut a2 = a.clone();
        a2.applied = Position::new(0, 9);
        store.write(vec![Document::Metric(a2.clone())]).await.expect("write");
        assert_eq!(store.metric(&a.id).await.expect("read"), Some(a2), "upsert replaces");
    }

    /// A removed metric is kept (a tombstone) but left out of the list.
    pub async fn keeps_removed_metrics_as_tombstones(store: &dyn ReadModelStore) {
        let a = metric("up", "a", 1);
        let mut c = metric("load", "a", 3);
        c.removed = true;
        store.write(vec![Document::Metric(a.clone()), Document::Metric(c.clone())]).await.expect("write");
        assert_eq!(store.metric(&c.id).await.expect("read").as_ref(), Some(&c), "removed documents are kept");
        let all = store.metrics(&MetricFilter::default()).await.expect("list");
        assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a.id], "the list has live metrics only");
    }

    /// The list has the live metrics sorted by id, filtered by name and labels, paged.
    pub async fn lists_metrics_sorted_filtered_and_paged(store: &dyn ReadModelStore) {
        let (a, b, c) = (metric("up", "a", 1), metric("up", "b", 2), metric("load", "a", 3));
        store
            .write(vec![Document::Metric(a.clone()), Document::Metric(b.clone()), Document::Metric(c.clone())])
            .await
            .expect("write");
        let all = store.metrics(&MetricFilter::default()).await.expect("list");
        let mut ids = vec![a.id, b.id, c.id];
        ids.sort();
        assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), ids, "live metrics sorted by id");
        let f = MetricFilter { matchers: vec![("job".into(), "b".into())], ..Default::default() };
        assert_eq!(store.metrics(&f).await.expect("list"), vec![b.clone()], "filtered by a label");
        // an empty value selects the series without the label, as Prometheus's `label=""`
        let f = MetricFilter { matchers: vec![("instance".into(), String::new())], ..Default::default() };
        assert_eq!(store.metrics(&f).await.expect("list").len(), 3, "no series has an instance label");
        let f = MetricFilter { matchers: vec![("job".into(), String::new())], ..Default::default() };
        assert_eq!(store.metrics(&f).await.expect("list"), vec![], "every series has a job label");
        let f = MetricFilter { name: Some("up".into()), limit: Some(1), offset: 1, ..Default::default() };
        let mut up = [a.id, b.id];
        up.sort();
        let page = store.metrics(&f).await.expect("list");
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), vec![up[1]], "by name, then offset and limit");
    }

    /// `series` lists ids and labels of the live metrics; pages read with the `after`
    /// cursor return every id once, in order, whatever the page size.
    pub async fn pages_by_cursor_return_every_series_once(store: &dyn ReadModelStore) {
        let metrics: Vec<MetricView> = (0..23).map(|i| metric("up", &format!("i{i}"), i)).collect();
        let mut gone = metric("up", "gone", 99);
        gone.removed = true;
        let mut docs: Vec<Document> = metrics.iter().cloned().map(Document::Metric).collect();
        docs.push(Document::Metric(gone.clone()));
        store.write(docs).await.expect("write");
        let mut ids: Vec<MetricId> = metrics.iter().map(|m| m.id).collect();
        ids.sort();
        for limit in [1, 5, 23, 100] {
            let (mut seen, mut after) = (Vec::new(), None);
            loop {
                let f = MetricFilter { limit: Some(limit), after, ..Default::default() };
                let page = store.series(&f).await.expect("series");
                assert!(page.len() <= limit);
                for item in &page {
                    let m = metrics.iter().find(|m| m.id == item.id).expect("a live series");
                    assert_eq!(item.labels, m.labels);
                }
                seen.extend(page.iter().map(|s| s.id));
                match page.last() {
                    Some(last) if page.len() == limit => after = Some(last.id),
                    _ => break,
                }
            }
            assert_eq!(seen, ids, "limit {limit}: every live id once, in order");
        }
        let f = MetricFilter { after: Some(ids[20]), ..Default::default() };
        let tail = store.metrics(&f).await.expect("list");
        assert_eq!(tail.iter().map(|m| m.id).collect::<Vec<_>>(), ids[21..].to_vec(), "metrics honours after");
        // a removed series leaves the listing, a revived one comes back
        let mut back = gone.clone();
        back.removed = false;
        store.write(vec![Document::Metric(back)]).await.expect("write");
        assert_eq!(store.series(&MetricFilter::default()).await.expect("series").len(), 24);
        let mut again = metrics[0].clone();
        again.removed = true;
        store.write(vec![Document::Metric(again)]).await.expect("write");
        let listed = store.series(&MetricFilter::default()).await.expect("series");
        assert!(listed.iter().all(|s| s.id != metrics[0].id) && listed.len() == 23);
    }

    /// Documents of every collection round-trip unchanged.
    pub async fn round_trips_every_collection(store: &dyn ReadModelStore) {
        let a = metric("up", "a", 1);
        let set = SlaSetVersion { version: 1, defined_at_ms: 5, entries: vec![] };
        let view = SlaSetView {
            current: set.clone(),
            history: vec![set],
            applied: Position::new(0, 4),
            entered_at_ms: vec![],
        };
        let samples = SlaSamplesView {
            id: a.id,
            labels: a.labels.clone(),
            samples: vec![Sample::new(1, 1.0), Sample::new(2, f64::MAX)],
            scoring: Default::default(),
            applied: Position::new(0, 7),
        };
        store
            .write(vec![
                Document::Metric(a.clone()),
                Document::SlaSet(view.clone()),
                Document::SlaSamples(samples.clone()),
            ])
            .await
            .expect("write");
        assert_eq!(store.sla_set().await.expect("read"), Some(view));
        assert_eq!(store.sla_samples(&a.id).await.expect("read"), Some(samples));
        assert_eq!(store.metric(&a.id).await.expect("read"), Some(a));

        // SLA set versions are documents of their own beside the current one; the
        // history merges them with what a first-release current document holds
        let version = |v: u64| SlaSetVersionView {
            set: SlaSetVersion { version: v, defined_at_ms: v as i64 * 10, entries: vec![] },
            applied: Position::new(0, v as i64),
        };
        store
            .write(vec![Document::SlaSetVersion(version(2)), Document::SlaSetVersion(version(3))])
            .await
            .expect("write");
        let loaded = store.load(&[DocKey::SlaSetVersion(3), DocKey::SlaSetVersion(9)]).await.expect("load");
        assert_eq!(loaded, vec![Some(Document::SlaSetVersion(version(3))), None]);
        let history = store.sla_set_history().await.expect("history");
        assert_eq!(history.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(history[2], version(3).set);
        assert_eq!(store.sla_set().await.expect("read").expect("current").current.version, 1);
    }

    /// NaN, +Inf and -Inf round-trip exactly in every kind of number a document holds
    /// (Prometheus stores them; JSON cannot write them).
    pub async fn round_trips_non_finite_numbers(store: &dyn ReadModelStore) {
        let mut m = metric("ratio", "a", 1);
        if let Some(v) = m.values.as_mut() {
            v.windows[0].min = Some(f64::NEG_INFINITY);
            v.windows[0].max = Some(f64::INFINITY);
            v.windows[0].avg = Some(f64::NAN);
        }
        let samples = SlaSamplesView {
            id: m.id,
            labels: m.labels.clone(),
            samples: vec![Sample::new(1, f64::NAN), Sample::new(2, f64::INFINITY), Sample::new(3, f64::NEG_INFINITY)],
            scoring: Default::default(),
            applied: Position::new(0, 7),
        };
        store.write(vec![Document::Metric(m.clone()), Document::SlaSamples(samples.clone())]).await.expect("write");
        // NaN != NaN: compare what the numbers print as, which tells NaN, +Inf and -Inf apart
        let read = store.sla_samples(&m.id).await.expect("read").expect("written");
        assert_eq!(format!("{read:?}"), format!("{samples:?}"));
        let read = store.metric(&m.id).await.expect("read").expect("written");
        assert_eq!(format!("{read:?}"), format!("{m:?}"));
        let listed = store.metrics(&MetricFilter::default()).await.expect("a list with non-finite numbers");
        assert_eq!(format!("{listed:?}"), format!("{:?}", vec![m]));
    }

    /// A load of hundreds of keys, present and absent interleaved and of several
    /// collections, answers in the order of the keys.
    pub async fn loads_a_batch_in_key_order(store: &dyn ReadModelStore) {
        let set = SlaSetVersion { version: 1, defined_at_ms: 5, entries: vec![] };
        let view = SlaSetView {
            current: set.clone(),
            history: vec![set],
            applied: Position::new(0, 4),
            entered_at_ms: vec![],
        };
        let b = metric("up", "b", 2);
        store.write(vec![Document::SlaSet(view.clone()), Document::Metric(b.clone())]).await.expect("write");
        let keys = vec![DocKey::SlaSet, DocKey::Metric(b.id), DocKey::Metric(metric("x", "y", 0).id)];
        let loaded = store.load(&keys).await.expect("load");
        assert_eq!(loaded, vec![Some(Document::SlaSet(view)), Some(Document::Metric(b)), None]);

        let many: Vec<MetricView> = (0..300).map(|i| metric("many", &i.to_string(), i)).collect();
        store.write(many.iter().step_by(2).cloned().map(Document::Metric).collect()).await.expect("write");
        let keys: Vec<DocKey> = many.iter().map(|m| DocKey::Metric(m.id)).collect();
        let loaded = store.load(&keys).await.expect("load");
        let expected: Vec<Option<Document>> =
            many.iter().enumerate().map(|(i, m)| (i % 2 == 0).then(|| Document::Metric(m.clone()))).collect();
        assert_eq!(loaded, expected);
    }

    /// A rebuild starts empty, leaves the live models alone until it is swapped in, then
    /// replaces them whole (documents only the live models had are gone).
    pub async fn a_swapped_rebuild_replaces_the_live_models(store: &dyn RebuildableStore) {
        let (old, kept) = (metric("old", "a", 1), metric("kept", "a", 2));
        store.write(vec![Document::Metric(old.clone()), Document::Metric(kept.clone())]).await.expect("write");
        let rebuild = store.begin_rebuild().await.expect("begin");
        assert!(rebuild.target().metrics(&MetricFilter::default()).await.expect("list").is_empty(), "starts empty");
        let mut rebuilt = kept.clone();
        rebuilt.applied = Position::new(0, 5);
        rebuild.target().write(vec![Document::Metric(rebuilt.clone())]).await.expect("write");
        assert_eq!(store.metric(&kept.id).await.expect("read"), Some(kept), "live until swapped");
        rebuild.swap_in().await.expect("swap");
        assert_eq!(store.metric(&rebuilt.id).await.expect("read"), Some(rebuilt));
        assert_eq!(store.metric(&old.id).await.expect("read"), None, "what the rebuild lacks is gone");
    }

    /// A discarded rebuild leaves the live models as they were, and the next rebuild
    /// starts empty again.
    pub async fn a_discarded_rebuild_changes_nothing(store: &dyn RebuildableStore) {
        let a = metric("up", "a", 1);
        store.write(vec![Document::Metric(a.clone())]).await.expect("write");
        let rebuild = store.begin_rebuild().await.expect("begin");
        rebuild.target().write(vec![Document::Metric(metric("other", "b", 3))]).await.expect("write");
        rebuild.discard().await.expect("discard");
        assert_eq!(store.metrics(&MetricFilter::default()).await.expect("list"), vec![a]);
        let again = store.begin_rebuild().await.expect("begin");
        assert!(again.target().metrics(&MetricFilter::default()).await.expect("list").is_empty(), "starts empty");
        again.discard().await.expect("discard");
    }
}

/// One test per promise of [`store`] for a read-model store. `$make` is an expression
/// (awaited inside each test) giving `Option<(guard, store)>`: `None` skips the test
/// (a server that is missing outside CI), the guard lives as long as the test (e.g. a
/// temporary directory). `$cleanup` (optional) is an async closure given the store at
/// the end.
#[macro_export]
macro_rules! read_model_store_suite {
    ($make:expr) => {
        $crate::read_model_store_suite!($make, |_store| async {});
    };
    ($make:expr, $cleanup:expr) => {
        $crate::__store_promises!($make, $cleanup;
            upserts_and_reads_back_by_id,
            keeps_removed_metrics_as_tombstones,
            lists_metrics_sorted_filtered_and_paged,
            pages_by_cursor_return_every_series_once,
            round_trips_every_collection,
            round_trips_non_finite_numbers,
            loads_a_batch_in_key_order,
            a_swapped_rebuild_replaces_the_live_models,
            a_discarded_rebuild_changes_nothing
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_promises {
    ($make:expr, $cleanup:expr; $($promise:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $promise() {
            let Some((guard, store)) = $make else { return };
            $crate::suite::store::$promise(&store).await;
            ($cleanup)(store).await;
            drop(guard);
        }
    )*};
}

/// One test per promise of [`log`] for an event log. `$make` is a closure from a fresh
/// topic name to a future of `Option<(guard, log)>` (`None` skips the test).
#[macro_export]
macro_rules! event_log_suite {
    ($make:expr) => {
        $crate::__log_promises!($make;
            reads_every_record_in_key_order,
            resumes_after_committed_positions,
            a_new_group_reads_from_offset_zero
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_promises {
    ($make:expr; $($promise:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $promise() {
            let topic = $crate::suite::unique("suite");
            let Some((guard, log)) = ($make)(topic.clone()).await else { return };
            $crate::suite::log::$promise(&log, &topic, &format!("group-{topic}")).await;
            drop(guard);
        }
    )*};
}
