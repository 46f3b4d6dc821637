use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slamon_domain::*;
use slamon_embedded::EmbeddedLog;
use slamon_events::{EventCodec, Publisher};
use slamon_prometheus::DemoSource;
use slamon_proto::sla::v2::sla_service_server::{SlaService, SlaServiceServer};
use slamon_proto::sla::v2::{GetSlaSetRequest, GetSlaSetResponse, SlaEntry as WireEntry};
use tokio_util::sync::CancellationToken;

use super::slots::SlotAssignment;
use super::*;

/// A stand-in SLA manager that answers with a fixed set, or `unavailable` while its
/// second field is set.
#[derive(Clone, Default)]
struct FixedSla(Arc<Mutex<Vec<WireEntry>>>, Arc<std::sync::atomic::AtomicBool>);

#[tonic::async_trait]
impl SlaService for FixedSla {
    async fn get_sla_set(
        &self,
        _: tonic::Request<GetSlaSetRequest>,
    ) -> Result<tonic::Response<GetSlaSetResponse>, tonic::Status> {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(tonic::Status::unavailable("SLA manager down"));
        }
        let entries = self.0.lock().unwrap().clone();
        Ok(tonic::Response::new(GetSlaSetResponse { defined: !entries.is_empty(), version: 1, entries }))
    }
}

struct Harness {
    etl: Etl,
    log: Arc<EmbeddedLog>,
    codec: Arc<EventCodec>,
    sla: FixedSla,
    cancel: CancellationToken,
    registry: prometheus::Registry,
    _dir: tempfile::TempDir,
}

async fn harness(sla_up: bool) -> Harness {
    harness_with(sla_up, Arc::new(DemoSource::new()), EtlConfig::default()).await
}

async fn harness_with(sla_up: bool, source: Arc<dyn MetricSource>, config: EtlConfig) -> Harness {
    harness_limited(sla_up, source, config, usize::MAX).await
}

/// An event log that refuses, for good, every record over `max` bytes (Kafka's
/// `message.max.bytes`).
struct LimitedLog {
    inner: Arc<EmbeddedLog>,
    max: usize,
}

#[async_trait::async_trait]
impl EventLog for LimitedLog {
    async fn append(&self, topic: &str, records: Vec<(String, Vec<u8>)>) -> PortResult<Vec<Position>> {
        if let Some((_, big)) = records.iter().find(|(_, v)| v.len() > self.max) {
            return Err(PortError::Invalid(format!("record of {} bytes over the limit of {}", big.len(), self.max)));
        }
        self.inner.append(topic, records).await
    }
    async fn consumer(&self, group: &str, topic: &str) -> PortResult<Box<dyn LogConsumer>> {
        self.inner.consumer(group, topic).await
    }
}

async fn harness_limited(sla_up: bool, source: Arc<dyn MetricSource>, config: EtlConfig, max_record: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(slamon_registry::serve(dir.path().join("r.redb"), listener, cancel.clone()));
    let sla = FixedSla::default();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_url = format!("http://{}", grpc.local_addr().unwrap());
    if sla_up {
        let svc = SlaServiceServer::new(sla.clone());
        let c = cancel.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(grpc), c.cancelled_owned())
                .await
                .unwrap()
        });
    } else {
        drop(grpc);
    }
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log.redb")).unwrap());
    let codec = Arc::new(EventCodec::new(&url, TOPIC).unwrap());
    let registry = prometheus::Registry::new();
    let etl = Etl::new(
        source,
        Publisher::new(codec.clone(), Arc::new(LimitedLog { inner: log.clone(), max: max_record })),
        SlaClient::new(&grpc_url, None).unwrap(),
        config,
        EtlMetrics::new(&registry).unwrap(),
    );
    Harness { etl, log, codec, sla, cancel, registry, _dir: dir }
}

async fn read_all(h: &Harness, group: &str) -> Vec<EventEnvelope> {
    read_log(&h.log, &h.codec, group).await
}

/// Every event of the log, read by a new consumer group.
async fn read_log(log: &EmbeddedLog, codec: &EventCodec, group: &str) -> Vec<EventEnvelope> {
    let mut c = log.consumer(group, TOPIC).await.unwrap();
    let mut out = Vec::new();
    loop {
        let batch = c.poll(10_000, Duration::from_millis(50)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for r in batch {
            let env = codec.decode(&r.value).await.unwrap();
            assert_eq!(r.key, env.event.key(), "records are keyed by their aggregate");
            out.push(env);
        }
    }
    out
}

#[tokio::test]
async fn a_cycle_emits_the_statistics_of_every_series_and_exports_timings() {
    let mut h = harness(true).await;
    let report = h.etl.cycle(&h.cancel).await.unwrap();
    assert_eq!((report.series, report.aggregates, report.sla_metrics), (8, 8, 0));
    let events = read_all(&h, "a").await;
    assert_eq!(events.len(), 8);
    for e in &events {
        let Event::MetricAggregatesComputed(a) = &e.event else { panic!("{e:?}") };
        assert_eq!(a.windows.iter().map(|w| w.window).collect::<Vec<_>>(), Window::ALL.to_vec());
        assert_eq!(a.windows[2].samples, 12 * 240);
    }
    let text = render(&h.registry);
    assert!(text.contains("etl_executiontime_1h{metric_name=\"cpuTemp\"}"), "{text}");
    assert!(text.contains("etl_executiontime_12h{metric_name=\"node_filesystem_avail_bytes\"}"), "{text}");
    assert!(text.contains("etl_events_produced_total{event_type=\"MetricAggregatesComputed\"} 8"), "{text}");
    h.cancel.cancel();
}

/// The demo source with window statistics that misbehave: all refused as overloaded
/// (HTTP 503) after 20 ms when `overloaded`; else `cpuTemp`'s 12 h ones wait for `gate` and
/// `diskUsage`'s 3 h ones are rejected. Records the most statistics queries it had in
/// flight at once.
struct Misbehaving {
    inner: DemoSource,
    overloaded: bool,
    /// The series list never answers (a Prometheus that hangs until the client's timeout).
    hung_list: bool,
    gate: tokio::sync::Notify,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl Misbehaving {
    fn new(overloaded: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: DemoSource::new(),
            overloaded,
            hung_list: false,
            gate: tokio::sync::Notify::new(),
            in_flight: 0.into(),
            most: 0.into(),
        })
    }
}

#[async_trait::async_trait]
impl MetricSource for Misbehaving {
    async fn series(&self) -> PortResult<SeriesList> {
        if self.hung_list {
            std::future::pending::<()>().await;
        }
        self.inner.series().await
    }
    async fn window_stats(&self, name: &str, w: Window, at_ms: i64) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        let answer = if self.overloaded {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(PortError::Unavailable("prometheus answered 503: too many queries".into()))
        } else {
            match (name, w) {
                ("diskUsage", Window::H3) => Err(PortError::Other("query rejected".into())),
                ("cpuTemp", Window::H12) => {
                    self.gate.notified().await;
                    self.inner.window_stats(name, w, at_ms).await
                }
                _ => self.inner.window_stats(name, w, at_ms).await,
            }
        };
        self.in_flight.fetch_sub(1, SeqCst);
        answer
    }
    async fn raw_samples(&self, series: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>> {
        self.inner.raw_samples(series, after_ms, at_ms).await
    }
    async fn range(&self, series: &Labels, start_ms: i64, end_ms: i64, step_ms: i64) -> PortResult<Vec<Sample>> {
        self.inner.range(series, start_ms, end_ms, step_ms).await
    }
    fn describe(&self) -> String {
        "misbehaving".into()
    }
}

#[tokio::test]
async fn an_overloaded_prometheus_gets_fewer_queries_at_once() {
    let source = Misbehaving::new(true);
    let config = EtlConfig { concurrency: 4, ..EtlConfig::default() };
    let mut h = harness_with(true, source.clone(), config).await;
    let gauge = |h: &Harness| {
        let text = render(&h.registry);
        let line = text.lines().find(|l| l.starts_with("etl_query_concurrency_limit ")).expect("the gauge");
        line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
    };
    assert_eq!(gauge(&h), 4.0, "the configured maximum at start");
    let report = h.etl.cycle(&h.cancel).await.unwrap();
    assert!(report.failed_names > 0, "{report:?}");
    assert_eq!(source.most.load(std::sync::atomic::Ordering::SeqCst), 4, "the maximum, at first");
    // every round of answers said overloaded: halved each round, down to one at a time
    assert_eq!(gauge(&h), 1.0);
    source.most.store(0, std::sync::atomic::Ordering::SeqCst);
    h.etl.cycle(&h.cancel).await.unwrap();
    assert_eq!(source.most.load(std::sync::atomic::Ordering::SeqCst), 1, "one query at a time while overloaded");
    h.cancel.cancel();
}

/// The metric names with statistics in the log once there are five of them (within 20 s:
/// the cycle is held by `Misbehaving`'s gated query meanwhile).
async fn five_names_appended(log: &EmbeddedLog, codec: &EventCodec) -> std::collections::BTreeSet<String> {
    let started = std::time::Instant::now();
    let mut group = 0;
    loop {
        group += 1;
        let events = read_log(log, codec, &format!("g{group}")).await;
        let names: std::collections::BTreeSet<String> =
            labels_of(&events, |e| matches!(e, Event::MetricAggregatesComputed(_)))
                .iter()
                .map(|l| l.name().to_owned())
                .collect();
        if names.len() >= 5 {
            return names;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "nothing appended before the slowest query: {names:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn each_name_is_appended_when_its_windows_are_in_not_after_the_slowest() {
    let source = Misbehaving::new(false);
    let Harness { mut etl, log, codec, cancel, _dir, .. } =
        harness_with(true, source.clone(), EtlConfig::default()).await;
    let cycle = tokio::spawn({
        let cancel = cancel.clone();
        async move { etl.cycle(&cancel).await.unwrap() }
    });
    // while cpuTemp's 12 h query is still running, the names whose windows are all in are
    // already in the log (all but cpuTemp and diskUsage, whose 3 h window failed)
    let names = five_names_appended(&log, &codec).await;
    assert!(!names.contains("cpuTemp") && !names.contains("diskUsage"), "{names:?}");
    assert!(!cycle.is_finished());
    source.gate.notify_one();
    let report = cycle.await.unwrap();
    assert_eq!((report.aggregates, report.failed_names), (7, 1), "{report:?}");
    let events = read_log(&log, &codec, "all").await;
    let names: Vec<String> = labels_of(&events, |e| matches!(e, Event::MetricAggregatesComputed(_)))
        .iter()
        .map(|l| l.name().to_owned())
        .collect();
    assert_eq!(names.iter().filter(|n| *n == "cpuTemp").count(), 1);
    assert_eq!(names.iter().filter(|n| *n == "diskUsage").count(), 0, "a name with a failed window has none");
    cancel.cancel();
}

#[tokio::test]
async fn a_shutdown_stops_the_statistics_queries_still_running() {
    let source = Misbehaving::new(false);
    let Harness { mut etl, log, codec, cancel, _dir, .. } =
        harness_with(true, source.clone(), EtlConfig::default()).await;
    let cycle = tokio::spawn({
        let cancel = cancel.clone();
        async move { etl.cycle(&cancel).await }
    });
    // the other names are in while cpuTemp's 12 h query waits (as long as a big name's can)
    five_names_appended(&log, &codec).await;
    cancel.cancel();
    // the cycle ends without its answer, and says what it left
    let ended = tokio::time::timeout(Duration::from_secs(5), cycle).await;
    let result = ended.expect("the cycle ends at the shutdown, not when the query answers").unwrap();
    assert!(matches!(result, Err(EtlError::ShutdownDuringQueries(1))), "{result:?}");

    // and while the series list hangs
    let mut hung = Misbehaving::new(false);
    Arc::get_mut(&mut hung).expect("not shared yet").hung_list = true;
    let Harness { mut etl, cancel, _dir, .. } = harness_with(true, hung, EtlConfig::default()).await;
    let cycle = tokio::spawn({
        let cancel = cancel.clone();
        async move { etl.cycle(&cancel).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!cycle.is_finished());
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), cycle).await.expect("the cycle ends at the shutdown");
    assert!(matches!(result.unwrap(), Err(EtlError::ShutdownDuringQueries(0))));
}

#[tokio::test]
async fn sla_samples_are_the_whole_window_first_then_only_new_samples() {
    let mut h = harness(true).await;
    let cpu = cpu().await;
    h.sla.0.lock().unwrap().push(entry(&cpu));
    let first = h.etl.cycle(&h.cancel).await.unwrap();
    assert_eq!(first.sla_metrics, 1);
    // 12 h + for (5 min) + margin (5 min) of 15 s samples
    assert!((2919..=2921).contains(&first.samples), "{first:?}");
    let events = read_all(&h, "a").await;
    let samples: Vec<&SlaSamplesObserved> = events
        .iter()
        .filter_map(|e| if let Event::SlaSamplesObserved(s) = &e.event { Some(s) } else { None })
        .collect();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].labels, cpu);
    assert!(samples[0].samples.windows(2).all(|w| w[0].ts_ms < w[1].ts_ms));

    // and a forecast of the next 10 minutes, every candidate reported
    let forecasts: Vec<&MetricForecastComputed> = events
        .iter()
        .filter_map(|e| if let Event::MetricForecastComputed(f) = &e.event { Some(f) } else { None })
        .collect();
    assert_eq!(forecasts.len(), 1);
    assert_eq!(forecasts[0].points.len(), 10);
    assert!(forecasts[0].points.windows(2).all(|w| w[1].ts_ms - w[0].ts_ms == 60_000));
    assert!(forecasts[0].candidates.len() >= 3, "{:?}", forecasts[0].candidates);
    assert!(forecasts[0].min <= forecasts[0].avg && forecasts[0].avg <= forecasts[0].max);
    // with its 80 % and 95 % intervals, nested around each point
    assert_eq!(forecasts[0].intervals.len(), 10, "{:?}", forecasts[0].model);
    for (p, i) in forecasts[0].points.iter().zip(&forecasts[0].intervals) {
        assert!(i.lower_95 <= i.lower_80 && i.lower_80 <= p.value && p.value <= i.upper_80 && i.upper_80 <= i.upper_95);
    }

    // the next cycle only reads what is new
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = h.etl.cycle(&h.cancel).await.unwrap();
    assert!(second.samples <= 1, "{second:?}");
    h.cancel.cancel();
}

/// The demo CPU temperature series.
async fn cpu() -> Labels {
    DemoSource::new().series().await.unwrap().series.into_iter().find(|l| l.name() == "cpuTemp").unwrap()
}

/// An SLA on `series`: range 0–80, for 5 minutes.
fn entry(series: &Labels) -> WireEntry {
    WireEntry {
        metric: series.to_map().into_iter().collect(),
        metric_id: series.id().to_string(),
        min: 0.0,
        max: 80.0,
        for_minutes: 5,
    }
}

fn count(events: &[EventEnvelope], kind: fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| kind(&e.event)).count()
}

#[tokio::test]
async fn a_changed_sla_set_gets_its_samples_and_forecast_before_the_next_cycle() {
    let mut h = harness(true).await;
    // the first set seen (empty here) is taken at once, before any cycle
    let first = h.etl.watch_sla_set(&h.cancel).await.expect("the first set known");
    assert_eq!((first.sla_metrics, first.samples), (0, 0));
    assert_eq!(h.etl.cycle(&h.cancel).await.unwrap().sla_metrics, 0);
    // the same (empty) set: nothing to do
    assert_eq!(h.etl.watch_sla_set(&h.cancel).await, None);
    assert_eq!(read_all(&h, "a").await.len(), 8, "only the statistics of the cycle");

    let cpu = entry(&cpu().await);
    h.sla.0.lock().unwrap().push(cpu);
    let report = h.etl.watch_sla_set(&h.cancel).await.expect("the changed set is published at once");
    assert_eq!((report.sla_metrics, report.forecasts, report.aggregates), (1, 1, 0), "{report:?}");
    let events = read_all(&h, "b").await;
    assert_eq!(count(&events, |e| matches!(e, Event::SlaSamplesObserved(_))), 1);
    assert_eq!(count(&events, |e| matches!(e, Event::MetricForecastComputed(_))), 1);

    // published once: the next watch does nothing, the next cycle reads only what is new
    assert_eq!(h.etl.watch_sla_set(&h.cancel).await, None);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(h.etl.cycle(&h.cancel).await.unwrap().samples <= 1);
    h.cancel.cancel();
}

#[tokio::test]
async fn the_running_etl_watches_the_sla_set_between_cycles() {
    let Harness { mut etl, log, codec, sla, cancel, _dir, .. } = harness(true).await;
    etl.config.period = Duration::from_secs(3600);
    etl.config.sla_watch = Duration::from_millis(100);
    let run = tokio::spawn(etl.run(cancel.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // the first cycle (after the first metadata cycle) publishes the statistics
    let mut group = 0;
    loop {
        group += 1;
        let events = read_log(&log, &codec, &format!("g{group}")).await;
        if count(&events, |e| matches!(e, Event::MetricAggregatesComputed(_))) == 8 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no first cycle");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = entry(&cpu().await);
    sla.0.lock().unwrap().push(cpu);
    // an hour before the next cycle, the new SLA's samples and forecast arrive
    loop {
        group += 1;
        let events = read_log(&log, &codec, &format!("g{group}")).await;
        if count(&events, |e| matches!(e, Event::MetricForecastComputed(_))) == 1 {
            assert_eq!(count(&events, |e| matches!(e, Event::SlaSamplesObserved(_))), 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the changed SLA set was not published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    run.await.unwrap();
}

#[tokio::test]
async fn a_down_sla_manager_holds_up_nothing_and_the_last_known_set_is_kept() {
    // never answering from the start: the statistics go out, the SLA part waits for a set
    let mut h = harness(false).await;
    let report = h.etl.cycle(&h.cancel).await.unwrap();
    assert_eq!((report.aggregates, report.sla_metrics), (8, 0));
    assert_eq!(read_all(&h, "a").await.len(), 8);
    h.cancel.cancel();

    // answering, then down: the cycles go on with the set they last had
    let mut h = harness(true).await;
    let cpu_entry = entry(&cpu().await);
    h.sla.0.lock().unwrap().push(cpu_entry);
    assert_eq!(h.etl.cycle(&h.cancel).await.unwrap().sla_metrics, 1);
    h.sla.1.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let report = h.etl.cycle(&h.cancel).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "the cycle waited for the SLA manager");
    assert_eq!((report.aggregates, report.sla_metrics, report.forecasts), (8, 1, 1), "{report:?}");
    let forecasts =
        read_all(&h, "f").await.into_iter().filter(|e| matches!(e.event, Event::MetricForecastComputed(_))).count();
    assert_eq!(forecasts, 2, "a forecast in each cycle");
    let unavailable = h.registry.gather().into_iter().find(|f| f.name() == "etl_sla_set_unavailable_total").unwrap();
    assert_eq!(unavailable.get_metric()[0].get_counter().get_value(), 1.0);
    h.cancel.cancel();
}

/// A source whose `range` queries (the metadata's input) take `delay` each.
struct SlowRange {
    inner: DemoSource,
    delay: Duration,
}

#[async_trait::async_trait]
impl MetricSource for SlowRange {
    async fn series(&self) -> PortResult<SeriesList> {
        self.inner.series().await
    }
    async fn window_stats(&self, name: &str, w: Window, at_ms: i64) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        self.inner.window_stats(name, w, at_ms).await
    }
    async fn raw_samples(&self, series: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>> {
        self.inner.raw_samples(series, after_ms, at_ms).await
    }
    async fn range(&self, series: &Labels, start_ms: i64, end_ms: i64, step_ms: i64) -> PortResult<Vec<Sample>> {
        tokio::time::sleep(self.delay).await;
        self.inner.range(series, start_ms, end_ms, step_ms).await
    }
    fn describe(&self) -> String {
        "slow range".into()
    }
}

#[tokio::test]
async fn a_slow_metadata_cycle_never_delays_the_sla_samples() {
    // every metadata input takes 2 s: the 8 series' metadata take far longer than the
    // statistics period, which used to wait for them
    let source = Arc::new(SlowRange { inner: DemoSource::new(), delay: Duration::from_secs(2) });
    let config = EtlConfig {
        period: Duration::from_millis(300),
        concurrency: 1,
        sla_watch: Duration::from_secs(3600),
        ..EtlConfig::default()
    };
    let Harness { etl, log, codec, sla, cancel, registry, _dir } = harness_with(true, source, config).await;
    let cpu_entry = entry(&cpu().await);
    sla.0.lock().unwrap().push(cpu_entry);
    let started = std::time::Instant::now();
    let run = tokio::spawn(etl.run(cancel.clone()));
    let mut group = 0;
    loop {
        group += 1;
        let events = read_log(&log, &codec, &format!("s{group}")).await;
        if count(&events, |e| matches!(e, Event::SlaSamplesObserved(_))) >= 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no SLA samples");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = started.elapsed();
    let events = read_log(&log, &codec, "all").await;
    assert_eq!(count(&events, |e| matches!(e, Event::MetricMetadataComputed(_))), 0, "the metadata is still running");
    assert!(waited < Duration::from_secs(8), "the SLA samples waited {waited:?} for the metadata");
    cancel.cancel();
    run.await.unwrap();
    let _ = registry;
}

/// 2026-11-30T10:00:00Z.
const AT_MS: i64 = 1_796_032_800_000;

/// The demo source, recording the span of every raw-sample query per series name.
struct SpanRecorder {
    inner: DemoSource,
    spans: Mutex<Vec<(String, i64)>>,
}

#[async_trait::async_trait]
impl MetricSource for SpanRecorder {
    async fn series(&self) -> PortResult<SeriesList> {
        self.inner.series().await
    }
    async fn window_stats(&self, name: &str, window: Window, at_ms: i64) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        self.inner.window_stats(name, window, at_ms).await
    }
    async fn raw_samples(&self, series: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>> {
        self.spans.lock().unwrap().push((series.name().to_owned(), at_ms - after_ms));
        self.inner.raw_samples(series, after_ms, at_ms).await
    }
    async fn range(&self, series: &Labels, start_ms: i64, end_ms: i64, step_ms: i64) -> PortResult<Vec<Sample>> {
        self.inner.range(series, start_ms, end_ms, step_ms).await
    }
    fn describe(&self) -> String {
        "span recorder".into()
    }
}

#[tokio::test]
async fn a_forecast_reads_two_seasonal_periods_when_its_window_is_shorter() {
    // the forecast window is 2 h, and the metadata finds cpuTemp's period of 180 minutes:
    // the forecast reads 2 × 180 + 10 + 30 minutes, and Holt-Winters is fitted
    let source = Arc::new(SpanRecorder { inner: DemoSource::new(), spans: Mutex::new(Vec::new()) });
    let config = EtlConfig { forecast_window: Duration::from_secs(2 * 3600), ..EtlConfig::default() };
    let mut h = harness_with(true, source.clone(), config).await;
    h.etl.set_clock(|| AT_MS);
    h.etl.metadata_cycle(&h.cancel).await.unwrap();
    let cpu = entry(&cpu().await);
    h.sla.0.lock().unwrap().push(cpu);
    let report = h.etl.watch_sla_set(&h.cancel).await.expect("the set is published at once");
    assert_eq!(report.forecasts, 1, "{report:?}");
    let minutes: Vec<i64> =
        source.spans.lock().unwrap().iter().filter(|(n, _)| n == "cpuTemp").map(|(_, span)| span / 60_000).collect();
    // (the SLA samples read 12 h plus the margin; the forecast one minute before its window)
    assert!(minutes.contains(&(2 * 180 + 10 + 30 + 1)), "{minutes:?}");
    assert!(!minutes.contains(&121), "the configured window alone: {minutes:?}");
    let events = read_all(&h, "f").await;
    let forecast = events
        .iter()
        .find_map(|e| if let Event::MetricForecastComputed(f) = &e.event { Some(f) } else { None })
        .unwrap();
    let hw = forecast.candidates.iter().find(|c| c.model == "holt_winters_add").unwrap();
    assert!(hw.rmse.is_some(), "{:?}", forecast.candidates);
    // the window is never shorter than configured, nor longer than the metadata's for a
    // period
    let (hour, day) = (3_600_000, 24 * 3_600_000);
    assert_eq!(forecast_window_ms(12 * hour, None, day), 12 * hour);
    assert_eq!(forecast_window_ms(12 * hour, Some(60), day), 12 * hour);
    assert_eq!(forecast_window_ms(12 * hour, Some(360), day), (720 + 40) * 60_000);
    assert_eq!(forecast_window_ms(12 * hour, Some(720), day), day);
    assert_eq!(forecast_window_ms(3 * day, Some(1440), 3 * day), 3 * day);
    h.cancel.cancel();
}

#[tokio::test]
async fn the_metadata_cycle_describes_every_series() {
    let mut h = harness(true).await;
    // the demo's shapes are fixed in time: detect them at one instant, not whenever the
    // test runs (at some hours, e.g. 11:00, the 2-hourly outage falls so in the 24 h
    // window that the network's period is found as 60, not 120)
    h.etl.set_clock(|| AT_MS);
    let report = h.etl.metadata_cycle(&h.cancel).await.unwrap();
    assert_eq!((report.series, report.computed, report.failed), (8, 8, 0));
    let events = read_all(&h, "m").await;
    let meta: Vec<&MetricMetadataComputed> = events
        .iter()
        .filter_map(|e| if let Event::MetricMetadataComputed(m) = &e.event { Some(m) } else { None })
        .collect();
    assert_eq!(meta.len(), 8);
    let constant = meta.iter().find(|m| m.labels.name() == "demo_build_info").unwrap();
    assert!(constant.constant && constant.stationarity.is_none());
    // the demo CPU temperature has an hourly cycle and an overheat every 3 hours: the
    // whole pattern repeats every 180 one-minute samples
    let cpu = meta.iter().find(|m| m.labels.name() == "cpuTemp").unwrap();
    let season = cpu.seasonality.as_ref().unwrap();
    assert_eq!(season.add.as_ref().unwrap().period, 180, "{season:?}");
    assert_eq!(season.add.as_ref().unwrap().period_seconds, 10800.0);
    // the network throughput cycles every 20 minutes, with an outage every 2 hours
    let net = meta.iter().find(|m| m.labels.name() == "networkThroughput").unwrap();
    assert_eq!(net.seasonality.as_ref().unwrap().add.as_ref().unwrap().period, 120, "{:?}", net.seasonality);
    assert!(cpu.autocorrelation.first() == Some(&(0, 1.0)));
    assert!(cpu.stationarity.is_some());
    let text = render(&h.registry);
    assert!(text.contains("etl_executiontime_metadata{metric_name=\"cpuTemp\"}"), "{text}");
    h.cancel.cancel();
}

/// A source whose listed series are set by the test; its 12 h window statistics also
/// hold a series that stopped reporting (`ghost`), as Prometheus's do; every series has
/// one sample a minute until `stopped_at`.
struct ChurningSource {
    listed: Mutex<Vec<Labels>>,
    stopped_at: Mutex<i64>,
    /// The list comes with a warning (a partial answer).
    partial: Mutex<bool>,
    /// The scrape interval of its samples, in ms.
    step_ms: i64,
}

fn series(name: &str) -> Labels {
    [("__name__", "churn"), ("instance", name)].into_iter().collect()
}

#[async_trait::async_trait]
impl MetricSource for ChurningSource {
    async fn series(&self) -> PortResult<SeriesList> {
        Ok(SeriesList { series: self.listed.lock().unwrap().clone(), partial: *self.partial.lock().unwrap() })
    }
    fn warnings(&self) -> u64 {
        u64::from(*self.partial.lock().unwrap())
    }
    async fn window_stats(&self, _: &str, window: Window, _: i64) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        Ok(["a", "ghost"].iter().map(|n| (series(n), window_aggregate(window, &[1.0, 2.0]))).collect())
    }
    async fn raw_samples(&self, _: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>> {
        let last = at_ms.min(*self.stopped_at.lock().unwrap());
        let first = (after_ms / self.step_ms + 1) * self.step_ms;
        Ok((first..=last).step_by(self.step_ms as usize).map(|t| Sample::new(t, 50.0)).collect())
    }
    async fn range(&self, _: &Labels, _: i64, _: i64, _: i64) -> PortResult<Vec<Sample>> {
        Ok(Vec::new())
    }
    fn describe(&self) -> String {
        "churning".into()
    }
}

/// The test clock of the churn test, in ms.
static CHURN_NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(AT_MS);

/// The SLA samples of `labels` after projecting every event of the log.
async fn projected_samples(h: &Harness, group: &str, labels: &Labels) -> Vec<Sample> {
    let events = read_all(h, group).await;
    let mut docs = std::collections::BTreeMap::new();
    slamon_domain::projection::project_all(
        &mut docs,
        events.iter().enumerate().map(|(i, e)| (e, Position::new(0, i as i64))),
    );
    match docs.get(&DocKey::SlaSamples(labels.id())) {
        Some(Document::SlaSamples(s)) => s.samples.clone(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn a_series_that_stopped_gets_no_statistics_and_keeps_its_sla_history() {
    let source = Arc::new(ChurningSource {
        listed: Mutex::new(vec![series("a")]),
        stopped_at: Mutex::new(i64::MAX),
        partial: Mutex::new(false),
        step_ms: 60_000,
    });
    let clock = || CHURN_NOW.load(std::sync::atomic::Ordering::SeqCst);
    let config = EtlConfig { removed_after: Duration::from_secs(15 * 60), clock, ..EtlConfig::default() };
    let mut h = harness_with(true, source.clone(), config).await;
    h.sla.0.lock().unwrap().push(WireEntry {
        metric_id: series("a").id().to_string(),
        metric: series("a").into_map().into_iter().collect(),
        min: 0.0,
        max: 10.0,
        for_minutes: 5,
    });
    let first = h.etl.cycle(&h.cancel).await.unwrap();
    // the ghost is in the 12 h statistics but not listed: no statistics for it
    assert_eq!(first.aggregates, 1, "{first:?}");
    let history = projected_samples(&h, "c1", &series("a")).await;
    assert!(history.len() > 700, "the first cycle emits the whole window: {}", history.len());

    // the target stops and is hidden for 16 minutes: removed, but its violations stay
    *source.stopped_at.lock().unwrap() = clock();
    *source.listed.lock().unwrap() = vec![];
    CHURN_NOW.fetch_add(16 * 60_000, std::sync::atomic::Ordering::SeqCst);
    let hidden = h.etl.cycle(&h.cancel).await.unwrap();
    assert_eq!((hidden.aggregates, hidden.removed), (0, 1), "{hidden:?}");
    let kept = projected_samples(&h, "c2", &series("a")).await;
    // the removal does not erase the SLA metric's history: all of it but the 16 minutes
    // the window moved on
    assert_eq!(kept.last(), history.last());
    assert_eq!(kept.len() + 16, history.len());

    // back: statistics again, and the new samples join the history
    *source.stopped_at.lock().unwrap() = i64::MAX;
    *source.listed.lock().unwrap() = vec![series("a")];
    CHURN_NOW.fetch_add(2 * 60_000, std::sync::atomic::Ordering::SeqCst);
    let back = h.etl.cycle(&h.cancel).await.unwrap();
    assert_eq!(back.aggregates, 1);
    let now = projected_samples(&h, "c3", &series("a")).await;
    assert!(now.last().unwrap().ts_ms > history.last().unwrap().ts_ms, "new samples join the history");
    let events = read_all(&h, "churn").await;
    let ghosts = events.iter().filter(|e| e.event.labels() == Some(&series("ghost"))).count();
    assert_eq!(ghosts, 0, "no event ever names the series that stopped");
    h.cancel.cancel();
}

#[tokio::test]
async fn a_partial_series_list_is_used_but_removes_nothing() {
    let source = Arc::new(ChurningSource {
        listed: Mutex::new(vec![series("a"), series("b")]),
        stopped_at: Mutex::new(i64::MAX),
        partial: Mutex::new(false),
        step_ms: 60_000,
    });
    static NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(AT_MS);
    let tick = || NOW.fetch_add(60_000, std::sync::atomic::Ordering::SeqCst);
    let config = EtlConfig { removed_after: Duration::ZERO, clock: tick, ..EtlConfig::default() };
    let mut h = harness_with(true, source.clone(), config).await;
    h.etl.cycle(&h.cancel).await.unwrap();
    // a remote-read backend fails: Prometheus answers with a warning and without `b`
    *source.listed.lock().unwrap() = vec![series("a")];
    *source.partial.lock().unwrap() = true;
    let partial = h.etl.cycle(&h.cancel).await.unwrap();
    assert_eq!((partial.aggregates, partial.removed), (1, 0), "{partial:?}");
    let text = render(&h.registry);
    assert!(text.contains("etl_partial_series_lists_total 1"), "{text}");
    assert!(text.contains("etl_source_warnings_total 1"), "{text}");
    // a complete answer without `b`: now it is gone
    *source.partial.lock().unwrap() = false;
    let complete = h.etl.cycle(&h.cancel).await.unwrap();
    assert_eq!(complete.removed, 1, "{complete:?}");
    h.cancel.cancel();
}

fn one_second_source() -> Arc<ChurningSource> {
    Arc::new(ChurningSource {
        listed: Mutex::new(vec![series("a")]),
        stopped_at: Mutex::new(i64::MAX),
        partial: Mutex::new(false),
        step_ms: 1000,
    })
}

fn long_for_entry() -> WireEntry {
    // a 1-second scrape with for: 1440 — 36 h of samples, about 1.8 MB in one event
    WireEntry {
        metric_id: series("a").id().to_string(),
        metric: series("a").into_map().into_iter().collect(),
        min: 0.0,
        max: 10.0,
        for_minutes: 1440,
    }
}

#[tokio::test]
async fn a_long_window_of_fast_samples_is_split_into_events_under_the_record_limit() {
    let config = EtlConfig { clock: || AT_MS, ..EtlConfig::default() };
    let mut h = harness_limited(true, one_second_source(), config, 1_000_000).await;
    h.sla.0.lock().unwrap().push(long_for_entry());
    let report = h.etl.cycle(&h.cancel).await.unwrap();
    assert!(report.samples > 129_000, "{report:?}");
    let events = read_all(&h, "split").await;
    let chunks: Vec<usize> = events
        .iter()
        .filter_map(|e| if let Event::SlaSamplesObserved(s) = &e.event { Some(s.samples.len()) } else { None })
        .collect();
    assert!(chunks.len() > 1 && chunks.iter().all(|n| *n <= MAX_SAMPLES_PER_EVENT), "{chunks:?}");
    assert_eq!(chunks.iter().sum::<usize>(), report.samples);
    assert_eq!(projected_samples(&h, "split-p", &series("a")).await.len(), report.samples, "the projection joins them");
    h.cancel.cancel();
}

#[tokio::test]
async fn an_event_that_can_never_be_appended_is_dropped_and_counted_not_retried_forever() {
    let config = EtlConfig { clock: || AT_MS, ..EtlConfig::default() };
    // a log whose limit even one chunk of samples exceeds
    let mut h = harness_limited(true, one_second_source(), config, 100_000).await;
    h.sla.0.lock().unwrap().push(long_for_entry());
    let cycle = tokio::time::timeout(Duration::from_secs(60), h.etl.cycle(&h.cancel)).await;
    cycle.expect("the cycle ends").unwrap();
    let text = render(&h.registry);
    assert!(text.contains("etl_events_dropped_total{event_type=\"SlaSamplesObserved\"}"), "{text}");
    let events = read_all(&h, "dropped").await;
    assert!(events.iter().any(|e| matches!(e.event, Event::MetricAggregatesComputed(_))), "the rest is appended");
    h.cancel.cancel();
}

/// A source of `listed` series (named `shared`), one sample a minute each; `since` are
/// also listed by [`MetricSource::series_since`] (series that stopped lately).
struct SharedSource {
    listed: Mutex<Vec<Labels>>,
    since: Mutex<Vec<Labels>>,
    /// Names asked for whole by `window_stats`, and series asked for by `window_stats_of`.
    whole_names: Mutex<usize>,
    shares: Mutex<usize>,
}

fn shared(i: usize) -> Labels {
    [("__name__", "shared".to_owned()), ("instance", format!("s{i}"))].into_iter().collect()
}

impl SharedSource {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(SharedSource {
            listed: Mutex::new((0..n).map(shared).collect()),
            since: Mutex::new(Vec::new()),
            whole_names: Mutex::new(0),
            shares: Mutex::new(0),
        })
    }
}

#[async_trait::async_trait]
impl MetricSource for SharedSource {
    async fn series(&self) -> PortResult<SeriesList> {
        Ok(SeriesList { series: self.listed.lock().unwrap().clone(), partial: false })
    }
    async fn series_since(&self, _: i64) -> PortResult<SeriesList> {
        let mut series = self.listed.lock().unwrap().clone();
        series.extend(self.since.lock().unwrap().iter().cloned());
        Ok(SeriesList { series, partial: false })
    }
    async fn window_stats(&self, _: &str, window: Window, _: i64) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        *self.whole_names.lock().unwrap() += 1;
        Ok(self.listed.lock().unwrap().iter().map(|l| (l.clone(), window_aggregate(window, &[1.0]))).collect())
    }
    async fn window_stats_of(
        &self,
        _: &str,
        series: &[Labels],
        window: Window,
        _: i64,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        *self.shares.lock().unwrap() += 1;
        Ok(series.iter().map(|l| (l.clone(), window_aggregate(window, &[1.0]))).collect())
    }
    async fn raw_samples(&self, _: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>> {
        let first = (after_ms / 60_000 + 1) * 60_000;
        Ok((first..=at_ms).step_by(60_000).map(|t| Sample::new(t, 5.0)).collect())
    }
    async fn range(&self, _: &Labels, _: i64, _: i64, _: i64) -> PortResult<Vec<Sample>> {
        Ok(Vec::new())
    }
    fn describe(&self) -> String {
        "shared".into()
    }
}

/// An SLA on `series`: range 0–10, for 5 minutes.
fn sla_on(series: &Labels) -> WireEntry {
    WireEntry {
        metric_id: series.id().to_string(),
        metric: series.to_map().into_iter().collect(),
        min: 0.0,
        max: 10.0,
        for_minutes: 5,
    }
}

/// An ETL of `source` owning what `assignment` says among 16 slots.
async fn member(
    source: Arc<SharedSource>,
    clock: fn() -> i64,
    assignment: tokio::sync::watch::Receiver<SlotAssignment>,
) -> Harness {
    let config = EtlConfig { clock, period: Duration::from_millis(100), ..EtlConfig::default() };
    let mut h = harness_with(true, source, config).await;
    let etl = std::mem::replace(
        &mut h.etl,
        Etl::new(
            Arc::new(DemoSource::new()),
            Publisher::new(h.codec.clone(), h.log.clone()),
            SlaClient::new("http://127.0.0.1:1", None).unwrap(),
            EtlConfig::default(),
            EtlMetrics::new(&prometheus::Registry::new()).unwrap(),
        ),
    );
    h.etl = etl.with_ownership(Ownership::Shared { assignment, membership: None });
    h
}

fn labels_of(events: &[EventEnvelope], kind: fn(&Event) -> bool) -> Vec<Labels> {
    let mut out: Vec<Labels> =
        events.iter().filter(|e| kind(&e.event)).filter_map(|e| e.event.labels().cloned()).collect();
    out.sort();
    out
}

/// Slots `owned` of 16.
fn owned16(owned: Vec<u32>) -> SlotAssignment {
    SlotAssignment::Owned { slots: 16, owned }
}

static SHARED_NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(AT_MS);

#[tokio::test]
async fn two_instances_share_the_series_once_each_and_a_moved_slot_leaves_no_gap() {
    use std::sync::atomic::Ordering::SeqCst;
    let source = SharedSource::new(64);
    let clock = || SHARED_NOW.load(std::sync::atomic::Ordering::SeqCst);
    let (to_a, for_a) = tokio::sync::watch::channel(SlotAssignment::Settling);
    let (to_b, for_b) = tokio::sync::watch::channel(SlotAssignment::Settling);
    let mut a = member(source.clone(), clock, for_a).await;
    let mut b = member(source.clone(), clock, for_b).await;
    let slas: Vec<Labels> = (0..64).step_by(4).map(shared).collect();
    for h in [&a, &b] {
        h.sla.0.lock().unwrap().extend(slas.iter().map(sla_on));
    }

    // while the group has not assigned the slots, nothing is computed
    let waiting = a.etl.cycle(&a.cancel).await.unwrap();
    assert_eq!(waiting, CycleReport::default());
    assert!(render(&a.registry).contains("etl_cycles_unassigned_total 1"));

    to_a.send_replace(owned16((0..8).collect()));
    to_b.send_replace(owned16((8..16).collect()));
    let (ra, rb) = (a.etl.cycle(&a.cancel).await.unwrap(), b.etl.cycle(&b.cancel).await.unwrap());
    assert_eq!(ra.owned_series + rb.owned_series, 64, "{ra:?} {rb:?}");
    assert!(ra.owned_series > 16 && rb.owned_series > 16, "an even share: {ra:?} {rb:?}");
    assert_eq!(*source.whole_names.lock().unwrap(), 0, "a share is asked for by its series, not the whole name");
    let mut both = read_all(&a, "a1").await;
    both.extend(read_all(&b, "b1").await);
    let aggregates = labels_of(&both, |e| matches!(e, Event::MetricAggregatesComputed(_)));
    assert_eq!(
        aggregates,
        (0..64).map(shared).collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>()
    );
    let mut sla_sorted = slas.clone();
    sla_sorted.sort();
    assert_eq!(labels_of(&both, |e| matches!(e, Event::SlaSamplesObserved(_))), sla_sorted, "each SLA metric once");

    // the slot of an SLA metric of `a` moves to `b`
    let moved = slas.iter().find(|l| l.id().slot(16) < 8).unwrap().clone();
    let slot = moved.id().slot(16);
    to_a.send_replace(owned16((0..8).filter(|s| *s != slot).collect()));
    to_b.send_replace(owned16((8..16).chain([slot]).collect()));
    SHARED_NOW.fetch_add(2 * 60_000, SeqCst);
    let (ra2, rb2) = (a.etl.cycle(&a.cancel).await.unwrap(), b.etl.cycle(&b.cancel).await.unwrap());
    assert_eq!(ra2.owned_series + rb2.owned_series, 64);
    let mut after = read_all(&a, "a2").await;
    after.extend(read_all(&b, "b2").await);
    let after: Vec<EventEnvelope> = after.into_iter().skip(both.len()).collect();
    let moved_events: Vec<&EventEnvelope> = after.iter().filter(|e| e.event.labels() == Some(&moved)).collect();
    assert!(!moved_events.is_empty() && moved_events.iter().all(|e| b.etl.owned.owns(&e.event.labels().unwrap().id())));

    // projected together, the moved SLA metric's samples run on without a gap
    let mut docs = BTreeMap::new();
    slamon_domain::projection::project_all(
        &mut docs,
        both.iter().chain(&after).enumerate().map(|(i, e)| (e, Position::new(0, i as i64))),
    );
    let Some(Document::SlaSamples(view)) = docs.get(&DocKey::SlaSamples(moved.id())) else { panic!("no samples") };
    assert!(view.samples.windows(2).all(|w| w[1].ts_ms - w[0].ts_ms == 60_000), "a gap in the samples");
    assert_eq!(view.samples.last().unwrap().ts_ms, clock() / 60_000 * 60_000);
    a.cancel.cancel();
    b.cancel.cancel();
}

static HANDOVER_NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(AT_MS);

#[tokio::test]
async fn a_series_that_stopped_before_its_slot_moved_is_still_announced_removed() {
    use std::sync::atomic::Ordering::SeqCst;
    let source = SharedSource::new(8);
    let clock = || HANDOVER_NOW.load(std::sync::atomic::Ordering::SeqCst);
    let (to_a, for_a) = tokio::sync::watch::channel(owned16((0..16).collect()));
    let (to_b, for_b) = tokio::sync::watch::channel(SlotAssignment::Settling);
    let mut a = member(source.clone(), clock, for_a).await;
    let mut b = member(source.clone(), clock, for_b).await;
    a.etl.cycle(&a.cancel).await.unwrap();

    // series 3 stops; before `a` would announce it, its slot goes to `b`
    let gone = shared(3);
    source.listed.lock().unwrap().retain(|l| *l != gone);
    source.since.lock().unwrap().push(gone.clone());
    let slot = gone.id().slot(16);
    to_a.send_replace(owned16((0..16).filter(|s| *s != slot).collect()));
    to_b.send_replace(owned16(vec![slot]));
    HANDOVER_NOW.fetch_add(5 * 60_000, SeqCst);
    a.etl.cycle(&a.cancel).await.unwrap();
    b.etl.cycle(&b.cancel).await.unwrap();
    HANDOVER_NOW.fetch_add(16 * 60_000, SeqCst);
    let ra = a.etl.cycle(&a.cancel).await.unwrap();
    let rb = b.etl.cycle(&b.cancel).await.unwrap();
    assert_eq!((ra.removed, rb.removed), (0, 1), "the new owner announces it, the old one does not");
    let removed: Vec<Labels> = read_all(&b, "b")
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            Event::MetricRemoved(r) => Some(r.labels),
            _ => None,
        })
        .collect();
    assert_eq!(removed, vec![gone]);
    assert!(!read_all(&a, "a").await.iter().any(|e| matches!(e.event, Event::MetricRemoved(_))));
    a.cancel.cancel();
    b.cancel.cancel();
}
