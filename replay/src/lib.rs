//! The replay tool (SPEC §10): reads the topic from offset 0 with a fresh consumer
//! group and applies the projector's own projection (`slamon_domain::runner::project_batch`)
//! into fresh read models beside the live ones ([`RebuildableStore::begin_rebuild`]),
//! showing progress (a bar with rate and ETA on a terminal, plain lines otherwise); then
//! it swaps the rebuilt models in or, with `--dry-run`, [`diff`]s them against the live
//! ones and drops them. It runs beside the live services: it only reads the log and
//! writes the fresh models. It depends on no service.
//!
//! Run it as `slamon replay` (see `slamon replay --help`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use slamon_domain::runner::{project_batch, DocCache, CACHE_CAPACITY};
use slamon_domain::{
    Collection, Document, EventEnvelope, EventLog, PortError, Position, ReadModelStore, RebuildableStore,
};
use slamon_events::EventCodec;

/// What a rebuild did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub records: u64,
    pub applied: u64,
    pub skipped: u64,
    pub undecodable: u64,
    /// Documents per collection in the rebuilt models.
    pub documents: Vec<(String, usize)>,
    /// The log's snapshot the rebuild started from: the offset it covers up to and its
    /// documents (`None`: from offset 0).
    pub snapshot: Option<(i64, usize)>,
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((next, documents)) = self.snapshot {
            write!(f, "from the log's snapshot at offset {next} ({documents} documents), then ")?;
        }
        write!(
            f,
            "{} records: {} events applied, {} skipped, {} undecodable; documents:",
            self.records, self.applied, self.skipped, self.undecodable
        )?;
        for (c, n) in &self.documents {
            write!(f, " {c} {n}")?;
        }
        Ok(())
    }
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The event log or a store failed.
    #[error(transparent)]
    Port(PortError),
    /// The Schema Registry could not be asked for a writer schema.
    #[error("schema registry: {0}")]
    Registry(String),
    /// A shutdown came first; the live read models are as they were.
    #[error("cancelled before the rebuild finished")]
    Cancelled,
    /// Projectors are running: a swap would race them; nothing was changed.
    #[error(
        "{members} projector(s) are members of consumer group {group}: swapping the rebuilt read models in now would race them (what they apply between the rebuild's end and the swap would be lost, and their caches would write old documents back). Stop them (docker compose stop projector; kubectl -n slamon scale deployment projector --replicas=0), replay, then start them again; `slamon replay --dry-run` compares without swapping and may run beside them. Nothing was changed."
    )]
    LiveProjectors { group: String, members: usize },
}

/// How long a replay waits for the projector group to empty (a killed member with a
/// static id stays until its session times out, 10 s).
const LIVE_PROJECTORS_WAIT: Duration = Duration::from_secs(30);

/// How long a replay asks again a log that cannot list the group.
const GROUP_LIST_RETRY: Duration = Duration::from_secs(5);

/// Waits up to [`LIVE_PROJECTORS_WAIT`] for consumer group `group` to have no member.
/// A log that cannot say (a broker that does not describe groups) is asked again for
/// [`GROUP_LIST_RETRY`], then the replay goes on with a warning to stop them.
///
/// # Errors
/// [`ReplayError::LiveProjectors`] when members remain.
pub async fn no_live_projectors(log: &dyn EventLog, group: &str) -> Result<(), ReplayError> {
    let deadline = tokio::time::Instant::now() + LIVE_PROJECTORS_WAIT;
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        match log.group_members(group).await {
            Ok(None | Some(0)) => return Ok(()),
            Ok(Some(members)) if tokio::time::Instant::now() >= deadline => {
                return Err(ReplayError::LiveProjectors { group: group.to_owned(), members })
            }
            Ok(Some(members)) => {
                tracing::info!(group, members, "waiting for the projectors' group to empty before replaying");
            }
            Err(e) if failing_since.get_or_insert_with(tokio::time::Instant::now).elapsed() < GROUP_LIST_RETRY => {
                tracing::debug!(error = %e, "the projectors' group cannot be listed yet");
            }
            Err(e) => {
                tracing::warn!(group, error = %e, "cannot tell whether projectors of the group run: make sure they are stopped before a swap");
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Settings of a replay (`slamon replay`).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "replay")]
#[command(next_help_heading = "Replay")]
pub struct Config {
    /// Rebuild and compare with the live read models, change nothing; exits 1 when they differ.
    #[arg(long)]
    pub dry_run: bool,
    /// Records per poll and per bulk write.
    #[arg(long, env = "SLAMON_REPLAY_BATCH", default_value_t = 1000)]
    pub batch: usize,
}

/// What a replay ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The rebuilt read models replaced the live ones.
    SwappedIn(ReplayReport),
    /// A dry run: the rebuilt models were compared with the live ones (one line per
    /// differing document, empty when equal) and dropped.
    Compared(ReplayReport, Vec<String>),
}

/// A replay, ready to run against the backends of the process.
pub struct App {
    config: Config,
    log: std::sync::Arc<dyn EventLog>,
    codec: std::sync::Arc<EventCodec>,
    topic: String,
    /// The live projectors' consumer group.
    projector_group: String,
    store: std::sync::Arc<dyn RebuildableStore>,
}

impl App {
    /// Opens the event log, the codec and the store.
    ///
    /// # Errors
    /// A backend cannot be opened.
    pub async fn build(config: &Config, backends: &slamon_backends::Backends) -> slamon_backends::Result<App> {
        Ok(App {
            config: config.clone(),
            log: backends.log()?,
            codec: backends.codec()?,
            topic: backends.settings().topic.clone(),
            projector_group: backends.settings().projector_group.clone(),
            store: backends.rebuildable_store().await?,
        })
    }

    /// Runs the replay ([`run`]) until it finishes or `cancel`; a cancelled replay
    /// leaves the live read models as they were.
    ///
    /// # Errors
    /// As [`run`]; [`ReplayError::Cancelled`].
    pub async fn run(self, cancel: tokio_util::sync::CancellationToken) -> Result<Finished, ReplayError> {
        tokio::select! {
            finished = run(&self.config, self.log.as_ref(), &self.codec, &self.topic, &self.projector_group, self.store.as_ref()) => finished,
            _ = cancel.cancelled() => Err(ReplayError::Cancelled),
        }
    }
}

/// Rebuilds `store`'s read models from offset 0 of `topic` beside the live ones, then
/// swaps them in, or with `config.dry_run` compares and drops them. A swap needs the
/// projectors of `projector_group` stopped ([`no_live_projectors`], asked before the
/// rebuild and again before the swap): with none running, the rebuild has every event
/// they applied, and when they start again they resume from their committed positions
/// and skip what the rebuild already holds.
///
/// # Errors
/// [`ReplayError`] when the log, a store or the registry fails, or projectors run; the
/// live read models are then as they were and the unfinished rebuild is dropped.
pub async fn run(
    config: &Config,
    log: &dyn EventLog,
    codec: &EventCodec,
    topic: &str,
    projector_group: &str,
    store: &dyn RebuildableStore,
) -> Result<Finished, ReplayError> {
    if !config.dry_run {
        no_live_projectors(log, projector_group).await?;
    }
    let rebuild = store.begin_rebuild().await?;
    let report = rebuild_into(log, codec, topic, rebuild.target(), config.batch).await?;
    if config.dry_run {
        let differences = diff(store, rebuild.target()).await?;
        rebuild.discard().await?;
        return Ok(Finished::Compared(report, differences));
    }
    if let Err(e) = no_live_projectors(log, projector_group).await {
        rebuild.discard().await?;
        return Err(e);
    }
    rebuild.swap_in().await?;
    Ok(Finished::SwappedIn(report))
}

impl From<PortError> for ReplayError {
    fn from(e: PortError) -> Self {
        ReplayError::Port(e)
    }
}

/// Progress on stderr: a bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
    started: Instant,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  ETA {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Self { bar, last_line: Instant::now(), started: Instant::now(), total }
    }

    fn advance(&mut self, done: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if self.last_line.elapsed() >= Duration::from_secs(2) => {
                let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                tracing::info!(done, total = self.total, rate = format!("{rate:.0}/s"), "replaying");
                self.last_line = Instant::now();
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Reads `topic` from offset 0 (a fresh consumer group) and projects every event into
/// `target` (empty, written by nothing else meanwhile), until the group has caught up
/// with the end of the log.
///
/// # Errors
/// [`ReplayError`] when the log, the store or the registry fails.
pub async fn rebuild_into(
    log: &dyn EventLog,
    codec: &EventCodec,
    topic: &str,
    target: &dyn ReadModelStore,
    batch: usize,
) -> Result<ReplayReport, ReplayError> {
    let group = format!("slamon-replay-{}", uuid::Uuid::now_v7().simple());
    let mut report = ReplayReport::default();
    // a log that deleted its older records (the embedded log's retention) keeps a
    // snapshot of the read models in their place: the rebuild starts from it
    let snapshot = log.snapshot(topic).await?;
    let mut cache = match &snapshot {
        Some(s) => {
            for chunk in s.documents.chunks(batch.max(1)) {
                target.write(chunk.to_vec()).await?;
            }
            report.snapshot = Some((s.next.offset, s.documents.len()));
            DocCache::new(CACHE_CAPACITY)
        }
        // `target` is fresh and only this replay writes it: what it has not written is absent
        None => DocCache::for_fresh_store(CACHE_CAPACITY),
    };
    let mut consumer = log.consumer(&group, topic).await?;
    let mut progress: Option<Progress> = None;
    let mut idle = 0;
    loop {
        let records = consumer.poll(batch, Duration::from_millis(500)).await?;
        if records.is_empty() {
            // caught up when nothing comes and nothing is left after our positions (a
            // broker that cannot say yet, e.g. while the group forms, is asked again)
            match consumer.lag().await {
                Ok(0) => {
                    idle += 1;
                    if idle >= 2 {
                        break;
                    }
                }
                Ok(_) => idle = 0,
                Err(e) => tracing::debug!(error = %e, "lag unknown yet"),
            }
            continue;
        }
        idle = 0;
        if let (Some(s), 0) = (&snapshot, report.records) {
            // the records right after the snapshot, or the log was compacted again meanwhile
            let first = records.iter().filter(|r| r.position.partition == s.next.partition).map(|r| r.position.offset);
            if let Some(first) = first.min().filter(|&o| o > s.next.offset) {
                return Err(ReplayError::Port(PortError::Unavailable(format!(
                    "the log was compacted during the replay (snapshot at offset {}, first record at {first}); run it again",
                    s.next.offset
                ))));
            }
        }
        let mut decoded: Vec<(EventEnvelope, Position)> = Vec::with_capacity(records.len());
        for r in &records {
            match codec.decode(&r.value).await {
                Ok(env) => decoded.push((env, r.position)),
                Err(e) if e.is_retryable() => return Err(ReplayError::Registry(e.to_string())),
                Err(e) => {
                    tracing::warn!(offset = r.position.offset, partition = r.position.partition, reason = %e, "undecodable record skipped");
                    report.undecodable += 1;
                }
            }
        }
        let outcome = project_batch(target, &mut cache, &decoded).await?;
        report.records += records.len() as u64;
        report.applied += outcome.applied;
        report.skipped += outcome.skipped;
        consumer.commit(&slamon_domain::next_positions(&records)).await?;
        let p = match progress.as_mut() {
            Some(p) => p,
            None => progress.insert(Progress::new(report.records + consumer.lag().await.unwrap_or(0))),
        };
        p.advance(report.records);
    }
    if let Some(p) = progress {
        p.finish();
    }
    for c in Collection::ALL {
        report.documents.push((c.name().to_owned(), target.all(c).await?.len()));
    }
    Ok(report)
}

/// The documents that differ between the live and the rebuilt models: one line each.
///
/// # Errors
/// [`ReplayError::Port`] when a store cannot be read.
pub async fn diff(live: &dyn ReadModelStore, rebuilt: &dyn ReadModelStore) -> Result<Vec<String>, ReplayError> {
    let mut out = Vec::new();
    for c in Collection::ALL {
        let key = |d: &Document| d.key().doc_id();
        let mut a = live.all(c).await?;
        let mut b = rebuilt.all(c).await?;
        a.sort_by_key(key);
        b.sort_by_key(key);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if key(x) == key(y) => {
                    if x != y {
                        out.push(format!("{}/{}: differs in {}", c.name(), key(x), differing_fields(x, y)));
                    }
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if key(x) < key(y) => {
                    out.push(format!("{}/{}: only live", c.name(), key(x)));
                    i += 1;
                }
                (Some(x), None) => {
                    out.push(format!("{}/{}: only live", c.name(), key(x)));
                    i += 1;
                }
                (_, Some(y)) => {
                    out.push(format!("{}/{}: only rebuilt", c.name(), key(y)));
                    j += 1;
                }
                (None, None) => break,
            }
        }
    }
    Ok(out)
}

/// The fields (dotted paths, down to the first difference) where two documents differ.
fn differing_fields(a: &Document, b: &Document) -> String {
    fn walk(path: String, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let (va, vb) =
                        (x.get(k).unwrap_or(&serde_json::Value::Null), y.get(k).unwrap_or(&serde_json::Value::Null));
                    if va != vb {
                        walk(if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, va, vb, out);
                    }
                }
            }
            _ => out.push(format!("{path} ({a} vs {b})")),
        }
    }
    let (Ok(x), Ok(y)) = (serde_json::to_value(a), serde_json::to_value(b)) else { return "?".into() };
    let mut out = Vec::new();
    walk(String::new(), &x, &y, &mut out);
    if out.is_empty() {
        // equal as JSON: a NaN somewhere (NaN is never equal to itself)
        return "a NaN value".into();
    }
    out.into_iter().take(3).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use slamon_domain::*;
    use slamon_embedded::{EmbeddedLog, EmbeddedStore};
    use slamon_events::Publisher;
    use std::sync::Arc;

    /// A Schema Registry in `dir`, its URL, and what stops it.
    async fn registry(dir: &std::path::Path) -> (String, tokio_util::sync::CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cancel = tokio_util::sync::CancellationToken::new();
        tokio::spawn(slamon_registry::serve(dir.join("r.redb"), listener, cancel.clone()));
        (url, cancel)
    }

    #[tokio::test]
    async fn a_rebuild_equals_the_live_projection_and_diff_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (url, cancel) = registry(dir.path()).await;
        let log = Arc::new(EmbeddedLog::open(&dir.path().join("log.redb")).unwrap());
        let codec = Arc::new(EventCodec::new(&url, TOPIC).unwrap());
        let publisher = Publisher::new(codec.clone(), log.clone());
        let events: Vec<EventEnvelope> = (0..300)
            .map(|i| {
                let labels: Labels = [("__name__", "m"), ("i", &*(i % 11).to_string())].into_iter().collect();
                EventEnvelope::new(
                    "t",
                    Event::MetricAggregatesComputed(MetricAggregatesComputed {
                        labels,
                        computed_at_ms: i,
                        windows: vec![],
                    }),
                )
            })
            .collect();
        publisher.publish(&events).await.unwrap();
        log.append(TOPIC, vec![("junk".into(), b"junk".to_vec())]).await.unwrap();

        let live = EmbeddedStore::open(&dir.path().join("live.redb")).unwrap();
        let first = rebuild_into(log.as_ref(), &codec, TOPIC, &live, 64).await.unwrap();
        assert_eq!((first.records, first.applied, first.undecodable), (301, 300, 1));
        assert_eq!(first.documents[0], ("metrics".to_owned(), 11));

        let rebuilt = EmbeddedStore::open(&dir.path().join("rebuilt.redb")).unwrap();
        rebuild_into(log.as_ref(), &codec, TOPIC, &rebuilt, 37).await.unwrap();
        assert!(diff(&live, &rebuilt).await.unwrap().is_empty(), "same log, same projection, same models");

        // a document the log does not explain is reported
        let mut doc = rebuilt.all(Collection::Metrics).await.unwrap().remove(0);
        if let Document::Metric(m) = &mut doc {
            m.removed = true;
        }
        rebuilt.write(vec![doc]).await.unwrap();
        assert_eq!(diff(&live, &rebuilt).await.unwrap().len(), 1);

        // run: a dry run finds the difference and changes nothing; a real one repairs it
        let dry = Config { dry_run: true, batch: 50 };
        let Finished::Compared(_, differences) =
            run(&dry, log.as_ref(), &codec, TOPIC, "projectors", &rebuilt).await.unwrap()
        else {
            panic!("a dry run compares")
        };
        assert_eq!(differences.len(), 1);
        assert_eq!(diff(&live, &rebuilt).await.unwrap().len(), 1, "a dry run changes nothing");
        let real = Config { dry_run: false, batch: 50 };
        assert!(matches!(
            run(&real, log.as_ref(), &codec, TOPIC, "projectors", &rebuilt).await.unwrap(),
            Finished::SwappedIn(_)
        ));
        assert!(diff(&live, &rebuilt).await.unwrap().is_empty(), "the swapped-in rebuild equals the projection");
        cancel.cancel();
    }

    /// The projector's loop in small: reads group `group` from its committed position,
    /// projects into `store` and commits, until caught up.
    async fn project(log: &EmbeddedLog, codec: &EventCodec, group: &str, store: &dyn ReadModelStore) {
        let mut consumer = log.consumer(group, TOPIC).await.unwrap();
        let mut cache = DocCache::new(CACHE_CAPACITY);
        loop {
            let records = consumer.poll(40, std::time::Duration::from_millis(10)).await.unwrap();
            if records.is_empty() {
                return;
            }
            let mut decoded = Vec::new();
            for r in &records {
                decoded.push((codec.decode(&r.value).await.unwrap(), r.position));
            }
            project_batch(store, &mut cache, &decoded).await.unwrap();
            consumer.commit(&next_positions(&records)).await.unwrap();
        }
    }

    fn mixed_events(from: i64, to: i64) -> Vec<EventEnvelope> {
        (from..to)
            .map(|i| {
                let labels: Labels = [("__name__", "m"), ("i", &*(i % 7).to_string())].into_iter().collect();
                let event = match i % 50 {
                    0 => Event::SlaSetDefined(SlaSetDefined { version: 1 + i as u64 / 50, entries: vec![] }),
                    n if n % 3 == 0 => Event::SlaSamplesObserved(SlaSamplesObserved {
                        labels,
                        window_start_ms: (i - 10) * 1000,
                        samples: vec![Sample { ts_ms: i * 1000, value: i as f64 }],
                    }),
                    _ => Event::MetricAggregatesComputed(MetricAggregatesComputed {
                        labels,
                        computed_at_ms: i,
                        windows: vec![],
                    }),
                };
                EventEnvelope::new("t", event)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_log_compacted_into_a_snapshot_rebuilds_the_same_read_models() {
        let dir = tempfile::tempdir().unwrap();
        let (url, cancel) = registry(dir.path()).await;
        let log = EmbeddedLog::open(&dir.path().join("log.redb")).unwrap();
        let codec = Arc::new(EventCodec::new(&url, TOPIC).unwrap());
        let publisher = Publisher::new(codec.clone(), Arc::new(log.clone()));
        let live: Arc<dyn ReadModelStore> = Arc::new(EmbeddedStore::open(&dir.path().join("live.redb")).unwrap());

        publisher.publish(&mixed_events(0, 160)).await.unwrap();
        project(&log, &codec, "projectors", live.as_ref()).await;
        let registry = prometheus::Registry::new();
        let retention = slamon_embedded::LogRetention::new(
            log.clone(),
            live.clone(),
            TOPIC,
            "projectors",
            std::time::Duration::from_secs(3600),
            &registry,
        )
        .unwrap();
        assert_eq!(retention.compact_if_due().await.unwrap(), None, "no record is an hour old");
        let retention = slamon_embedded::LogRetention::new(
            log.clone(),
            live.clone(),
            TOPIC,
            "projectors",
            Duration::ZERO,
            &prometheus::Registry::new(),
        )
        .unwrap();
        let compaction = retention.compact_if_due().await.unwrap().expect("due");
        assert_eq!((compaction.next, compaction.deleted), (160, 160));
        assert_eq!(log.state(TOPIC).await.unwrap().first, 160);

        // the log goes on; a second compaction replaces the first snapshot
        publisher.publish(&mixed_events(160, 260)).await.unwrap();
        project(&log, &codec, "projectors", live.as_ref()).await;
        assert_eq!(retention.compact_if_due().await.unwrap().expect("due").deleted, 100);
        publisher.publish(&mixed_events(260, 330)).await.unwrap();
        project(&log, &codec, "projectors", live.as_ref()).await;

        let rebuilt = EmbeddedStore::open(&dir.path().join("rebuilt.redb")).unwrap();
        let report = rebuild_into(&log, &codec, TOPIC, &rebuilt, 32).await.unwrap();
        assert_eq!(report.snapshot.map(|(next, _)| next), Some(260));
        assert_eq!(report.records, 70, "only the records after the snapshot are read");
        assert!(diff(live.as_ref(), &rebuilt).await.unwrap().is_empty(), "{report}");
        // every SLA set version is still in the history
        let history = rebuilt.sla_set_history().await.unwrap();
        assert_eq!(history.iter().map(|v| v.version).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
        cancel.cancel();
    }

    /// A log whose projector group has `members` (counted down by one each time it is
    /// asked, to 0, when `leaving`), or cannot be listed.
    struct Groups {
        members: std::sync::Mutex<Option<usize>>,
        leaving: bool,
    }

    #[async_trait::async_trait]
    impl EventLog for Groups {
        async fn append(&self, _: &str, _: Vec<(String, Vec<u8>)>) -> Result<Vec<Position>, PortError> {
            unreachable!("a replay never appends")
        }
        async fn consumer(&self, _: &str, _: &str) -> Result<Box<dyn slamon_domain::LogConsumer>, PortError> {
            unreachable!("not consumed here")
        }
        async fn group_members(&self, _: &str) -> Result<Option<usize>, PortError> {
            let mut m = self.members.lock().unwrap();
            match *m {
                None => Err(PortError::Unavailable("the broker does not describe groups".into())),
                Some(n) => {
                    if self.leaving && n > 0 {
                        *m = Some(n - 1);
                    }
                    Ok(Some(n))
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_swap_waits_for_the_projectors_to_go_and_refuses_while_they_run() {
        let running = Groups { members: Some(2).into(), leaving: false };
        let started = tokio::time::Instant::now();
        match no_live_projectors(&running, "slamon-projector").await {
            Err(ReplayError::LiveProjectors { group, members }) => {
                assert_eq!((group.as_str(), members), ("slamon-projector", 2))
            }
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() >= LIVE_PROJECTORS_WAIT, "it waited for them first");
        // members that leave (a killed one whose session times out): the swap goes on
        let leaving = Groups { members: Some(3).into(), leaving: true };
        no_live_projectors(&leaving, "g").await.unwrap();
        assert_eq!(*leaving.members.lock().unwrap(), Some(0));
        // a log that cannot say: asked again for a while, then a warning, not a refusal
        let unknown = Groups { members: None.into(), leaving: false };
        let started = tokio::time::Instant::now();
        no_live_projectors(&unknown, "g").await.unwrap();
        assert!(started.elapsed() >= GROUP_LIST_RETRY);
    }
}
