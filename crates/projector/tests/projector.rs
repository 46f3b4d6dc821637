//! The projector over the embedded log and store, with slamon's registry.

use std::sync::Arc;
use std::time::Duration;

use slamon_domain::projection::{project_all, targets};
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

/// The pure projection of `events` read at `positions`, sorted by key.
fn projected(events: &[EventEnvelope], position: impl Fn(usize) -> Position) -> Vec<Document> {
    let mut expected = std::collections::BTreeMap::new();
    let positioned: Vec<(&EventEnvelope, Position)> =
        events.iter().enumerate().map(|(i, e)| (e, position(i))).collect();
    project_all(&mut expected, positioned.iter().map(|(e, p)| (*e, *p)));
    let mut docs: Vec<Document> = expected.into_values().collect();
    docs.sort_by_key(|d| d.key());
    docs
}

/// The store's documents, sorted by key.
async fn stored(store: &EmbeddedStore) -> Vec<Document> {
    let mut docs = all_docs(store).await;
    docs.sort_by_key(|d| d.key());
    docs
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
    let want = projected(&evs, |i| Position::new(0, if i < 30 { i as i64 } else { i as i64 + 1 }));
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

    assert_eq!(stored(&e.store).await, projected(&evs, |i| Position::new(0, i as i64)));
    e.cancel.cancel();
}

/// A store that records which keys each `load` asked for.
struct Counting {
    inner: EmbeddedStore,
    loads: std::sync::Mutex<Vec<Vec<DocKey>>>,
}

#[async_trait::async_trait]
impl ReadModelStore for Counting {
    async fn metrics(&self, filter: &MetricFilter) -> PortResult<Vec<MetricView>> {
        self.inner.metrics(filter).await
    }
    async fn load(&self, keys: &[DocKey]) -> PortResult<Vec<Option<Document>>> {
        self.loads.lock().unwrap().push(keys.to_vec());
        self.inner.load(keys).await
    }
    async fn write(&self, docs: Vec<Document>) -> PortResult<()> {
        self.inner.write(docs).await
    }
    async fn all(&self, collection: Collection) -> PortResult<Vec<Document>> {
        self.inner.all(collection).await
    }
}

fn aggregates(series: &[usize], at: i64) -> Vec<(EventEnvelope, Position)> {
    series
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let labels: Labels = [("__name__", "c"), ("s", &*s.to_string())].into_iter().collect();
            let e = Event::MetricAggregatesComputed(MetricAggregatesComputed {
                labels,
                computed_at_ms: at,
                windows: vec![],
            });
            (EventEnvelope::new("test", e), Position::new(0, at + k as i64))
        })
        .collect()
}

#[tokio::test]
async fn a_batch_reads_only_what_it_has_not_written_itself() {
    use slamon_projector::{project_batch, DocCache};
    let dir = tempfile::tempdir().unwrap();
    let store = Counting { inner: EmbeddedStore::open(&dir.path().join("s.redb")).unwrap(), loads: Default::default() };

    // a store that may hold documents: the first batch reads its 3, the next only the new one
    let mut cache = DocCache::new(100);
    project_batch(&store, &mut cache, &aggregates(&[1, 2, 3], 0)).await.unwrap();
    project_batch(&store, &mut cache, &aggregates(&[1, 2, 3, 4], 10)).await.unwrap();
    let loads = store.loads.lock().unwrap().iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(loads, vec![3, 1]);

    // cached documents are the written ones: the same result as without a cache
    let mut uncached = DocCache::new(0);
    let other = EmbeddedStore::open(&dir.path().join("o.redb")).unwrap();
    project_batch(&other, &mut uncached, &aggregates(&[1, 2, 3], 0)).await.unwrap();
    project_batch(&other, &mut uncached, &aggregates(&[1, 2, 3, 4], 10)).await.unwrap();
    for c in Collection::ALL {
        assert_eq!(store.all(c).await.unwrap(), other.all(c).await.unwrap());
    }

    // a fresh store nobody else writes: nothing is ever read
    store.loads.lock().unwrap().clear();
    let fresh = Counting { inner: EmbeddedStore::open(&dir.path().join("f.redb")).unwrap(), loads: Default::default() };
    let mut cache = DocCache::for_fresh_store(100);
    project_batch(&fresh, &mut cache, &aggregates(&[1, 2], 0)).await.unwrap();
    project_batch(&fresh, &mut cache, &aggregates(&[2, 3], 10)).await.unwrap();
    assert!(fresh.loads.lock().unwrap().is_empty());

    // past its capacity a cache starts over and reads again
    let mut small = DocCache::for_fresh_store(2);
    project_batch(&fresh, &mut small, &aggregates(&[5, 6, 7], 20)).await.unwrap();
    assert!(small.is_empty());
    project_batch(&fresh, &mut small, &aggregates(&[5], 30)).await.unwrap();
    assert_eq!(fresh.loads.lock().unwrap().len(), 1, "a cache that forgot must read");
}

/// A consumer whose partitions "move" when the test says so.
struct Rebalancing {
    inner: Box<dyn LogConsumer>,
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait::async_trait]
impl LogConsumer for Rebalancing {
    async fn poll(&mut self, max: usize, wait: Duration) -> PortResult<Vec<LogRecord>> {
        self.inner.poll(max, wait).await
    }
    fn assignment_epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn commit(&mut self, next: &[Position]) -> PortResult<()> {
        self.inner.commit(next).await
    }
    async fn lag(&mut self) -> PortResult<u64> {
        self.inner.lag().await
    }
}

#[tokio::test]
async fn after_a_rebalance_the_projector_reads_what_another_member_wrote() {
    let e = env().await;
    let publisher = Publisher::new(e.codec.clone(), e.log.clone());
    let epoch = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let consumer = Rebalancing { inner: e.log.consumer("g", TOPIC).await.unwrap(), epoch: epoch.clone() };
    let mut p = Projector::new(
        Box::new(consumer),
        e.store.clone(),
        e.codec.clone(),
        e.log.clone(),
        ProjectorConfig::default(),
        ProjectorMetrics::unregistered(),
    );
    let first = aggregates(&[1], 100).remove(0).0;
    publisher.publish(std::slice::from_ref(&first)).await.unwrap();
    let mut c = e.log.consumer("g2", TOPIC).await.unwrap();
    let records = c.poll(10, Duration::from_secs(1)).await.unwrap();
    p.process(&records).await.unwrap();

    // meanwhile the partition was another member's, which applied a later position
    let key = targets(&first.event).remove(0);
    let Some(Document::Metric(mut theirs)) = e.store.load(std::slice::from_ref(&key)).await.unwrap().remove(0) else {
        panic!("the projector wrote the document")
    };
    theirs.applied = Position::new(0, 1_000);
    theirs.values.as_mut().unwrap().computed_at_ms = 999;
    e.store.write(vec![Document::Metric(theirs.clone())]).await.unwrap();
    epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);

    // an event at an earlier position than theirs: skipped, their document stays
    let second = aggregates(&[1], 500).remove(0).0;
    publisher.publish(std::slice::from_ref(&second)).await.unwrap();
    let records = c.poll(10, Duration::from_secs(1)).await.unwrap();
    let outcome = p.process(&records).await.unwrap();
    assert_eq!(outcome.skipped, 1, "{outcome:?}");
    assert_eq!(e.store.load(&[key]).await.unwrap().remove(0), Some(Document::Metric(theirs)));
}

/// A member whose group never forms again: it gets nothing, while records wait.
struct Stuck;

#[async_trait::async_trait]
impl LogConsumer for Stuck {
    async fn poll(&mut self, _: usize, wait: Duration) -> PortResult<Vec<LogRecord>> {
        tokio::time::sleep(wait).await;
        Ok(Vec::new())
    }
    async fn commit(&mut self, _: &[Position]) -> PortResult<()> {
        Ok(())
    }
    async fn lag(&mut self) -> PortResult<u64> {
        Ok(1)
    }
    fn lag_probe(&self) -> Option<LagProbe> {
        Some(Box::pin(async { Ok(GroupProgress { lag: 1, committed: 0 }) }))
    }
}

#[tokio::test]
async fn a_stuck_group_gets_a_new_consumer_that_resumes() {
    let e = env().await;
    let publisher = Publisher::new(e.codec.clone(), e.log.clone());
    publisher.publish(&events(3)).await.unwrap();
    let metrics = ProjectorMetrics::unregistered();
    let config = ProjectorConfig {
        poll_wait: Duration::from_millis(20),
        lag_refresh: Duration::from_millis(20),
        stall_after: Duration::from_millis(300),
        ..Default::default()
    };
    let p = Projector::new(Box::new(Stuck), e.store.clone(), e.codec.clone(), e.log.clone(), config, metrics.clone())
        .resubscribing(e.log.clone(), "g", TOPIC);
    let stop = CancellationToken::new();
    let running = tokio::spawn(p.run(stop.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metrics.applied.get() < 3 {
        assert!(std::time::Instant::now() < deadline, "the stuck consumer was never replaced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    running.await.unwrap();
    assert_eq!(metrics.resubscribed.get(), 1);
    // the new member resumed from the committed positions: the same models as one pass
    assert_eq!(stored(&e.store).await, projected(&events(3), |i| Position::new(0, i as i64)));
}

/// A store whose writes fail while `down` is set.
struct Failing {
    inner: Arc<EmbeddedStore>,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ReadModelStore for Failing {
    async fn metrics(&self, filter: &MetricFilter) -> PortResult<Vec<MetricView>> {
        self.inner.metrics(filter).await
    }
    async fn load(&self, keys: &[DocKey]) -> PortResult<Vec<Option<Document>>> {
        self.inner.load(keys).await
    }
    async fn write(&self, docs: Vec<Document>) -> PortResult<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::Unavailable("store down".into()));
        }
        self.inner.write(docs).await
    }
    async fn all(&self, collection: Collection) -> PortResult<Vec<Document>> {
        self.inner.all(collection).await
    }
}

#[tokio::test]
async fn a_projector_that_cannot_write_says_so_on_readyz_and_in_its_commit_age() {
    let e = env().await;
    let store = Arc::new(Failing { inner: e.store.clone(), down: true.into() });
    let registry = prometheus::Registry::new();
    let config = ProjectorConfig {
        unready_after: Duration::from_millis(400),
        backoff_max: Duration::from_millis(100),
        ..ProjectorConfig::default()
    };
    let consumer = e.log.consumer("g", TOPIC).await.unwrap();
    let p = Projector::new(
        consumer,
        store.clone(),
        e.codec.clone(),
        e.log.clone(),
        config,
        ProjectorMetrics::new(&registry).unwrap(),
    );
    let health = p.health();
    let readyz = slamon_projector::health_routes(store.clone(), Duration::from_secs(1), health.clone());
    let status = |router: axum::Router| async move {
        use tower::ServiceExt;
        let request = axum::http::Request::get("/readyz").body(axum::body::Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(p.run(cancel.clone()));
    // caught up with nothing to do: ready
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(status(readyz.clone()).await.0, 200);

    Publisher::new(e.codec.clone(), e.log.clone()).publish(&events(5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (code, body) = status(readyz.clone()).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("committed nothing") && body.contains("store down"), "{body}");
    let age = registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "projector_commit_age_seconds")
        .map(|f| f.get_metric()[0].get_gauge().get_value())
        .unwrap();
    assert!(age >= 0.4, "commit age {age}");

    // the store is back: the batch is written, ready again
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status(readyz.clone()).await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored(&e.store).await.len(), projected(&events(5), |i| Position::new(0, i as i64)).len());
    cancel.cancel();
    handle.await.unwrap();
    e.cancel.cancel();
}

/// A group member that the group drops after `interval` without a poll (as Kafka does
/// with `max.poll.interval.ms`); it records the longest time it went without one, until
/// it is dropped or replaced.
struct Evictable {
    inner: Box<dyn LogConsumer>,
    interval: Duration,
    last_poll: std::time::Instant,
    worst: Arc<std::sync::Mutex<Duration>>,
}

impl Evictable {
    fn gap(&mut self) {
        let gap = self.last_poll.elapsed();
        let mut worst = self.worst.lock().unwrap();
        *worst = (*worst).max(gap);
    }
}

impl Drop for Evictable {
    fn drop(&mut self) {
        self.gap();
    }
}

#[async_trait::async_trait]
impl LogConsumer for Evictable {
    async fn poll(&mut self, max: usize, wait: Duration) -> PortResult<Vec<LogRecord>> {
        self.gap();
        let records = self.inner.poll(max, wait).await;
        self.last_poll = std::time::Instant::now();
        records
    }
    fn max_poll_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }
    async fn commit(&mut self, next: &[Position]) -> PortResult<()> {
        self.inner.commit(next).await
    }
    async fn lag(&mut self) -> PortResult<u64> {
        self.inner.lag().await
    }
}

#[tokio::test]
async fn a_store_outage_longer_than_the_max_poll_interval_never_gets_the_projector_dropped() {
    let e = env().await;
    let store = Arc::new(Failing { inner: e.store.clone(), down: true.into() });
    let worst = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let interval = Duration::from_millis(1000);
    let consumer = Evictable {
        inner: e.log.consumer("g", TOPIC).await.unwrap(),
        interval,
        last_poll: std::time::Instant::now(),
        worst: worst.clone(),
    };
    let metrics = ProjectorMetrics::unregistered();
    let config = ProjectorConfig { backoff_max: Duration::from_millis(100), ..ProjectorConfig::default() };
    let p = Projector::new(Box::new(consumer), store.clone(), e.codec.clone(), e.log.clone(), config, metrics.clone())
        .resubscribing(e.log.clone(), "g", TOPIC);
    Publisher::new(e.codec.clone(), e.log.clone()).publish(&events(5)).await.unwrap();
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(p.run(cancel.clone()));
    // the store is down for three max poll intervals
    tokio::time::sleep(interval * 3).await;
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metrics.applied.get() < 5 {
        assert!(std::time::Instant::now() < deadline, "the events were never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    handle.await.unwrap();
    let worst = *worst.lock().unwrap();
    assert!(worst < interval, "the member went {worst:?} without polling: the group would have dropped it");
    assert!(metrics.resubscribed.get() >= 1, "the batch was given up and the consumer replaced");
    // the new member resumed from the committed positions: the same models as one pass
    assert_eq!(stored(&e.store).await, projected(&events(5), |i| Position::new(0, i as i64)));
    e.cancel.cancel();
}

/// A store that refuses for good every write holding the document of `refused`.
struct Refusing {
    inner: Arc<EmbeddedStore>,
    refused: DocKey,
}

#[async_trait::async_trait]
impl ReadModelStore for Refusing {
    async fn metrics(&self, filter: &MetricFilter) -> PortResult<Vec<MetricView>> {
        self.inner.metrics(filter).await
    }
    async fn load(&self, keys: &[DocKey]) -> PortResult<Vec<Option<Document>>> {
        self.inner.load(keys).await
    }
    async fn write(&self, docs: Vec<Document>) -> PortResult<()> {
        if docs.iter().any(|d| d.key() == self.refused) {
            return Err(PortError::Invalid("document over the size limit".into()));
        }
        self.inner.write(docs).await
    }
    async fn all(&self, collection: Collection) -> PortResult<Vec<Document>> {
        self.inner.all(collection).await
    }
}

#[tokio::test]
async fn an_event_the_store_refuses_for_good_is_dead_lettered_and_the_rest_projected() {
    let e = env().await;
    let evs = events(40);
    Publisher::new(e.codec.clone(), e.log.clone()).publish(&evs).await.unwrap();
    // the samples document of series i=3 (events 3, 24 and 45 — 3 and 24 here)
    let refused_labels: Labels = [("__name__", "m"), ("i", "3")].into_iter().collect();
    let store = Arc::new(Refusing { inner: e.store.clone(), refused: DocKey::SlaSamples(refused_labels.id()) });
    let mut p = Projector::new(
        e.log.consumer("g", TOPIC).await.unwrap(),
        store.clone(),
        e.codec.clone(),
        e.log.clone(),
        ProjectorConfig::default(),
        ProjectorMetrics::unregistered(),
    );
    let mut consumer = e.log.consumer("peek", TOPIC).await.unwrap();
    let records = consumer.poll(1000, Duration::from_millis(100)).await.unwrap();
    let out = p.process(&records).await.expect("a permanent refusal does not stop the batch");
    let refused: Vec<usize> = (0..40).filter(|i| i % 3 == 0 && i % 7 == 3).collect();
    assert_eq!(refused, vec![3, 24]);
    assert_eq!((out.applied, out.dead_lettered), (40 - 2, 2));

    // everything else is in the store, as the projection of the other events
    let kept: Vec<EventEnvelope> =
        evs.iter().enumerate().filter(|(i, _)| !refused.contains(i)).map(|(_, e)| e.clone()).collect();
    let positions: Vec<i64> = (0..40).filter(|i| !refused.contains(&(*i as usize))).collect();
    assert_eq!(stored(&e.store).await, projected(&kept, |i| Position::new(0, positions[i])));

    // the refused ones are in the dead-letter topic with their offsets and the reason
    let mut dlq = e.log.consumer("dlq-reader", DLQ_TOPIC).await.unwrap();
    let dead = dlq.poll(10, Duration::from_millis(100)).await.unwrap();
    let bodies: Vec<serde_json::Value> = dead.iter().map(|d| serde_json::from_slice(&d.value).unwrap()).collect();
    assert_eq!(bodies.iter().map(|b| b["offset"].as_i64().unwrap()).collect::<Vec<_>>(), vec![3, 24]);
    assert!(bodies[0]["reason"].as_str().unwrap().contains("size limit"), "{}", bodies[0]);
    e.cancel.cancel();
}
