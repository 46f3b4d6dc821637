//! The projector ("data storage"): reads the event log with a consumer group, applies
//! [`slamon_domain::projection::apply`] to the read models in one batch per poll, and
//! commits the log positions only after the write succeeded.
//!
//! Guarantees: a backend that is down (store, registry) is retried with backoff and
//! the positions do not advance (and `/readyz` says so after a minute); a record that
//! can never decode, or an event the store refuses for good (found by bisecting the
//! batch), goes to the dead-letter topic with its offset and the reason, is counted, and
//! never stops the projector;
//! every document records the last position applied, so a batch redelivered after a
//! crash changes nothing.

mod metrics;

pub use metrics::ProjectorMetrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use slamon_backends::Backends;
use slamon_web::{TaskFailed, Tasks};
use tokio::net::TcpListener;

pub use slamon_domain::runner::{project_batch, BatchOutcome, DocCache, CACHE_CAPACITY};
use slamon_domain::{
    EventEnvelope, EventLog, GroupProgress, LogConsumer, LogRecord, PortError, Position, ReadModelStore,
};
use slamon_events::EventCodec;
use tokio_util::sync::CancellationToken;

/// The consumer group of the live projector.
pub const GROUP: &str = slamon_domain::PROJECTOR_GROUP;

/// Settings of the projector (alone or in `slamon up`).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "projector")]
#[command(next_help_heading = "Projector")]
pub struct Config {
    /// Documents the projector keeps of what it wrote, so it need not read them back
    /// (about 2 kB each; 0 turns the cache off).
    #[arg(long, env = "SLAMON_PROJECTOR_CACHE", default_value_t = CACHE_CAPACITY)]
    pub projector_cache: usize,
    /// Address of the projector's admin endpoint (`/metrics`, `/livez`, `/readyz`); none
    /// in `slamon up`, whose exporter serves the projector's metrics.
    #[arg(skip)]
    pub admin_listen: Option<SocketAddr>,
}

/// The projector, subscribed and ready to run.
pub struct App {
    projector: Projector,
    admin: Option<(TcpListener, axum::Router)>,
}

impl App {
    /// Opens the event log, the store and the codec, joins the consumer group, registers
    /// the metrics and binds the admin endpoint.
    ///
    /// # Errors
    /// A backend cannot be opened, the group cannot be joined or the address is taken.
    pub async fn build(config: &Config, backends: &Backends) -> slamon_backends::Result<App> {
        let settings = backends.settings();
        let (log, store) = (backends.log()?, backends.store().await?);
        let (group, topic) = (&settings.projector_group, &settings.topic);
        let consumer = log
            .consumer(group, topic)
            .await
            .map_err(|source| slamon_backends::Error::Open { what: "joining the consumer group", source })?;
        let projector = Projector::new(
            consumer,
            store.clone(),
            backends.codec()?,
            log.clone(),
            ProjectorConfig { cache_capacity: config.projector_cache, ..ProjectorConfig::default() },
            ProjectorMetrics::new(backends.metrics())?,
        )
        .resubscribing(log, group, topic);
        let admin = match config.admin_listen {
            Some(addr) => {
                let listener = slamon_backends::bind(addr, "projector admin endpoint").await?;
                // ready when the read models answer and the projector commits
                let router = slamon_web::exporter(backends.metrics().clone()).merge(health_routes(
                    store,
                    settings.db_timeout,
                    projector.health(),
                ));
                Some((listener, router))
            }
            None => None,
        };
        Ok(App { projector, admin })
    }

    /// Projects until `cancel`, then finishes the batch in hand and commits.
    ///
    /// # Errors
    /// The admin endpoint failed.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), TaskFailed> {
        let mut tasks = Tasks::new(cancel);
        let projector_cancel = tasks.cancel();
        let projector = self.projector;
        tasks.spawn("projector", async move {
            projector.run(projector_cancel).await;
            Ok::<(), TaskFailed>(())
        });
        if let Some((listener, router)) = self.admin {
            tasks.spawn_http("projector-admin", listener, router);
        }
        tasks.wait().await
    }
}

/// Whether the projector keeps up, shared with its `/readyz`: when it last committed a
/// batch or found nothing waiting, and since when (and why) its batches fail.
#[derive(Debug, Clone)]
pub struct ProjectorHealth {
    inner: Arc<std::sync::Mutex<HealthState>>,
    /// Records wait and none was committed for this long: not ready.
    unready_after: Duration,
}

#[derive(Debug)]
struct HealthState {
    progressed: std::time::Instant,
    failing: Option<String>,
}

impl ProjectorHealth {
    /// A projector that has just started; not ready once it fails to commit for
    /// `unready_after` while records wait.
    pub fn new(unready_after: Duration) -> Self {
        let state = HealthState { progressed: std::time::Instant::now(), failing: None };
        Self { inner: Arc::new(std::sync::Mutex::new(state)), unready_after }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A batch was committed, or nothing waits.
    fn progressed(&self) {
        let mut state = self.state();
        state.progressed = std::time::Instant::now();
        state.failing = None;
    }

    /// A batch could not be written or committed.
    fn failed(&self, error: &PortError) {
        self.state().failing = Some(error.to_string());
    }

    /// Seconds since the last commit, or since nothing waited (0 while caught up).
    pub fn commit_age(&self) -> Duration {
        self.state().progressed.elapsed()
    }

    /// `Err(why)` when batches have failed for longer than `unready_after`: the projector
    /// cannot write, and what it should project waits.
    pub fn check(&self) -> Result<(), String> {
        let state = self.state();
        match &state.failing {
            Some(error) if state.progressed.elapsed() >= self.unready_after => Err(format!(
                "the projector has committed nothing for {}s while records wait: {error}",
                state.progressed.elapsed().as_secs()
            )),
            _ => Ok(()),
        }
    }
}

/// `/readyz` of the projector's admin endpoint: the read models answer within
/// `db_timeout` and the projector commits ([`ProjectorHealth::check`]); otherwise 503
/// with the reason.
pub fn health_routes(store: Arc<dyn ReadModelStore>, db_timeout: Duration, health: ProjectorHealth) -> axum::Router {
    slamon_web::livez().route(
        "/readyz",
        axum::routing::get(move || {
            let (store, health) = (store.clone(), health.clone());
            async move {
                slamon_web::db(db_timeout, store.sla_set()).await?;
                health.check().map_err(slamon_web::ApiError::Unavailable)?;
                Ok::<_, slamon_web::ApiError>("ready")
            }
        }),
    )
}

/// How the projector works (batches, waits, backoff, cache, watchdog).
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Records per poll (and per bulk write).
    pub batch: usize,
    /// The longest wait of one poll.
    pub poll_wait: Duration,
    /// First and longest backoff while a backend is unavailable.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Documents kept of what the projector wrote ([`DocCache`]).
    pub cache_capacity: usize,
    /// How often the lag gauge is refreshed.
    pub lag_refresh: Duration,
    /// Records wait and no member of the group has committed for this long: the group is
    /// stuck (a coordinator that never completes a rejoin, seen with a restarted broker),
    /// and the projector replaces its consumer (see [`Projector::resubscribing`]).
    pub stall_after: Duration,
    /// Batches fail this long while records wait: `/readyz` says not ready.
    pub unready_after: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            poll_wait: Duration::from_millis(500),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            cache_capacity: CACHE_CAPACITY,
            lag_refresh: Duration::from_secs(5),
            stall_after: Duration::from_secs(60),
            unready_after: Duration::from_secs(60),
        }
    }
}

pub struct Projector {
    consumer: Box<dyn LogConsumer>,
    store: Arc<dyn ReadModelStore>,
    codec: Arc<EventCodec>,
    dlq: Arc<dyn EventLog>,
    config: ProjectorConfig,
    metrics: ProjectorMetrics,
    lag_checked: Option<std::time::Instant>,
    cache: DocCache,
    /// The consumer's assignment epoch the cache belongs to.
    cache_epoch: u64,
    lag_task: Option<tokio::task::JoinHandle<Result<GroupProgress, PortError>>>,
    /// Where to subscribe again when the group is stuck: the log, group and topic.
    resubscribe: Option<(Arc<dyn EventLog>, String, String)>,
    /// The group's committed positions as last measured, and since when they are so.
    committed: Option<(u64, std::time::Instant)>,
    /// When records last arrived, and when the group could last be measured.
    received: std::time::Instant,
    measured: std::time::Instant,
    health: ProjectorHealth,
}

impl Projector {
    pub fn new(
        consumer: Box<dyn LogConsumer>,
        store: Arc<dyn ReadModelStore>,
        codec: Arc<EventCodec>,
        dlq: Arc<dyn EventLog>,
        config: ProjectorConfig,
        metrics: ProjectorMetrics,
    ) -> Self {
        let cache_epoch = consumer.assignment_epoch();
        let cache = DocCache::new(config.cache_capacity);
        let health = ProjectorHealth::new(config.unready_after);
        Self {
            consumer,
            store,
            codec,
            dlq,
            config,
            metrics,
            lag_checked: None,
            cache,
            cache_epoch,
            lag_task: None,
            resubscribe: None,
            committed: None,
            received: std::time::Instant::now(),
            measured: std::time::Instant::now(),
            health,
        }
    }

    /// Its health, for `/readyz`.
    pub fn health(&self) -> ProjectorHealth {
        self.health.clone()
    }

    /// Lets the projector replace its consumer with a new member of `group` on `topic`
    /// when the group is stuck ([`ProjectorConfig::stall_after`]); it resumes from the
    /// committed positions, so nothing is lost or applied twice.
    pub fn resubscribing(mut self, log: Arc<dyn EventLog>, group: &str, topic: &str) -> Self {
        self.resubscribe = Some((log, group.to_owned(), topic.to_owned()));
        self
    }

    /// Runs until `cancel`; finishes the batch in hand and commits before returning.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = self.config.backoff_min;
        while !cancel.is_cancelled() {
            let records = tokio::select! {
                _ = cancel.cancelled() => break,
                r = self.consumer.poll(self.config.batch, self.config.poll_wait) => r,
            };
            let records = match records {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "poll failed, retrying");
                    sleep_or_cancel(&cancel, &mut backoff, self.config.backoff_max).await;
                    continue;
                }
            };
            if records.is_empty() {
                self.health.progressed();
                self.metrics.commit_age.set(0.0);
                self.update_lag().await;
                continue;
            }
            self.metrics.consumed.inc_by(records.len() as u64);
            self.received = std::time::Instant::now();
            // the same batch is retried until it is written: positions never advance past
            // an event that was not applied. A consumer that stops polling is dropped from
            // its group, and its partitions go to another projector that writes the same
            // documents: before that, the batch is given up and the consumer replaced; the
            // new member resumes from the committed positions.
            let hold = self.consumer.max_poll_interval().map(|m| m * 2 / 5);
            let failing_since = std::time::Instant::now();
            loop {
                match self.process(&records).await {
                    Ok(outcome) => {
                        self.health.progressed();
                        self.metrics.commit_age.set(0.0);
                        backoff = self.config.backoff_min;
                        tracing::debug!(?outcome, "batch projected");
                        break;
                    }
                    Err(e) => {
                        self.health.failed(&e);
                        self.metrics.commit_age.set(self.health.commit_age().as_secs_f64());
                        self.metrics.retries.inc();
                        tracing::warn!(error = %e, records = records.len(), "cannot project batch, retrying with backoff");
                        if cancel.is_cancelled() {
                            return;
                        }
                        if hold.is_some_and(|h| failing_since.elapsed() >= h) && self.resubscribe.is_some() {
                            self.replace_consumer("a batch failed for 40 % of the group's max poll interval: giving it up and rejoining before the group drops this member").await;
                            break;
                        }
                        sleep_or_cancel(&cancel, &mut backoff, self.config.backoff_max).await;
                    }
                }
            }
            self.update_lag().await;
        }
        tracing::info!("projector stopped");
    }

    /// Refreshes the lag gauge, at most every few seconds. Asking a broker can take
    /// seconds: where the log can, the measurement runs beside the projection instead of
    /// holding it up, and its result lands on a later call.
    async fn update_lag(&mut self) {
        if let Some(task) = self.lag_task.take_if(|t| t.is_finished()) {
            match task.await {
                Ok(Ok(progress)) => {
                    self.measured = std::time::Instant::now();
                    self.metrics.lag.set(progress.lag as i64);
                    self.watch(Some(progress)).await;
                }
                _ => self.watch(None).await,
            }
        }
        if self.lag_task.is_some() || self.lag_checked.is_some_and(|t| t.elapsed() < self.config.lag_refresh) {
            return;
        }
        self.lag_checked = Some(std::time::Instant::now());
        match self.consumer.lag_probe() {
            Some(probe) => self.lag_task = Some(tokio::spawn(probe)),
            None => {
                if let Ok(lag) = self.consumer.lag().await {
                    self.metrics.lag.set(lag as i64);
                }
            }
        }
    }

    /// Replaces the consumer when nothing arrived for [`ProjectorConfig::stall_after`]
    /// and either records wait while the group's committed positions have not moved for
    /// as long, or the group could not be measured for as long.
    async fn watch(&mut self, progress: Option<GroupProgress>) {
        let now = std::time::Instant::now();
        let stall = self.config.stall_after;
        let stuck = match progress {
            Some(progress) => {
                let since = match self.committed {
                    Some((c, since)) if c == progress.committed => since,
                    _ => {
                        self.committed = Some((progress.committed, now));
                        now
                    }
                };
                progress.lag > 0 && now.duration_since(since) >= stall
            }
            None => now.duration_since(self.measured) >= stall,
        };
        if !stuck || now.duration_since(self.received) < stall {
            return;
        }
        tracing::warn!(lag = progress.map(|p| p.lag), idle = ?now.duration_since(self.received), "the group makes no progress");
        self.replace_consumer("the group makes no progress").await;
    }

    /// Replaces the consumer with a new member of the group (see
    /// [`Projector::resubscribing`]), which resumes from the committed positions; forgets
    /// the documents it cached. Keeps the old one when a new one cannot be made.
    async fn replace_consumer(&mut self, why: &str) {
        let Some((log, group, topic)) = &self.resubscribe else { return };
        tracing::warn!(reason = why, "replacing the consumer");
        match log.consumer(group, topic).await {
            Ok(consumer) => {
                let now = std::time::Instant::now();
                self.consumer = consumer;
                self.cache.clear();
                self.cache_epoch = self.consumer.assignment_epoch();
                self.committed = None;
                (self.received, self.measured) = (now, now);
                self.metrics.resubscribed.inc();
            }
            Err(e) => tracing::warn!(error = %e, "cannot create a new consumer; keeping the old one"),
        }
    }

    /// Decodes, applies and writes one batch, then commits it.
    pub async fn process(&mut self, records: &[LogRecord]) -> Result<BatchOutcome, PortError> {
        let mut decoded: Vec<(EventEnvelope, Position)> = Vec::with_capacity(records.len());
        let mut poison = Vec::new();
        for r in records {
            match self.codec.decode(&r.value).await {
                Ok(env) => decoded.push((env, r.position)),
                Err(e) if e.is_retryable() => return Err(PortError::Unavailable(e.to_string())),
                Err(e) => poison.push((r, e.to_string())),
            }
        }
        // partitions may have moved since the cache was filled: another projector may
        // have written their documents meanwhile
        let epoch = self.consumer.assignment_epoch();
        if epoch != self.cache_epoch {
            self.cache.clear();
            self.cache_epoch = epoch;
        }
        let (outcome, refused) = project_isolating(self.store.as_ref(), &mut self.cache, &decoded).await?;
        for (position, reason) in refused {
            if let Some(r) = records.iter().find(|r| r.position == position) {
                poison.push((r, format!("the read-model store refused the event for good: {reason}")));
            }
        }
        if !poison.is_empty() {
            let dead: Vec<(String, Vec<u8>)> = poison
                .iter()
                .map(|(r, reason)| {
                    tracing::warn!(offset = r.position.offset, partition = r.position.partition, %reason, "record sent to the dead-letter topic");
                    let body = serde_json::json!({
                        "topic": self.codec.topic(),
                        "partition": r.position.partition,
                        "offset": r.position.offset,
                        "key": r.key,
                        "reason": reason,
                        "value_hex": r.value.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    });
                    (r.key.clone(), body.to_string().into_bytes())
                })
                .collect();
            self.dlq.append(&slamon_domain::dlq_topic(self.codec.topic()), dead).await?;
        }
        self.consumer.commit(&slamon_domain::next_positions(records)).await?;
        self.metrics.applied.inc_by(outcome.applied);
        self.metrics.skipped.inc_by(outcome.skipped);
        self.metrics.dead_lettered.inc_by(poison.len() as u64);
        Ok(BatchOutcome { dead_lettered: poison.len() as u64, ..outcome })
    }
}

/// Projects `events` like [`project_batch`]; when the store refuses the batch for good
/// (a document over the store's size limit, a key it rejects: not
/// [`PortError::is_retryable`]), finds the events it refuses by bisecting the batch and
/// projects the others. Returns the outcome and each refused event's position with the
/// reason. Halves already written are not written twice (positions are recorded in the
/// documents), and the cache is cleared after any failure.
///
/// # Errors
/// A retryable failure of the store: the caller retries the whole batch.
async fn project_isolating(
    store: &dyn ReadModelStore,
    cache: &mut DocCache,
    events: &[(EventEnvelope, Position)],
) -> Result<(BatchOutcome, Vec<(Position, String)>), PortError> {
    match project_batch(store, cache, events).await {
        Ok(outcome) => Ok((outcome, Vec::new())),
        Err(e) => {
            // a write that failed may have been partly done: start from the store again
            cache.clear();
            if e.is_retryable() || events.is_empty() {
                return Err(e);
            }
            if let [(_, position)] = events {
                return Ok((BatchOutcome::default(), vec![(*position, e.to_string())]));
            }
            let (left, right) = events.split_at(events.len() / 2);
            let (a, mut refused) = Box::pin(project_isolating(store, cache, left)).await?;
            let (b, more) = Box::pin(project_isolating(store, cache, right)).await?;
            refused.extend(more);
            let outcome =
                BatchOutcome { applied: a.applied + b.applied, skipped: a.skipped + b.skipped, dead_lettered: 0 };
            Ok((outcome, refused))
        }
    }
}

async fn sleep_or_cancel(cancel: &CancellationToken, backoff: &mut Duration, max: Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(*backoff) => {}
    }
    *backoff = (*backoff * 2).min(max);
}
