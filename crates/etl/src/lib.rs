//! The ETL: every cycle (2 min by default) it computes the window statistics (1 h, 3 h,
//! 12 h) of every series of the source, fetches the SLA set from the SLA manager over
//! gRPC (retrying until answered), reads the new raw samples of each SLA metric, and
//! appends the results as events. Statistics are pushed down to the source (PromQL
//! `*_over_time`), one query per metric name and window, as many at once as an adaptive
//! limit ([`limit`]) allows under the configured maximum.
//!
//! A failed append is retried with backoff and never dropped silently. After a restart
//! the first cycle emits the whole SLA window again; the projection merges samples by
//! timestamp, so nothing is counted twice.
//!
//! On Kafka, several instances share the series ([`slots`]): each computes only the
//! series of the metric-id hash slots its consumer group assigns it. A slot that moves
//! to another instance has its SLA window emitted again by the new owner (merged, not
//! doubled), and the series that stopped reporting lately are learnt from a longer
//! series listing, so their removal is still announced.

pub mod analysis;
pub mod limit;
mod metrics;
mod sla_client;
pub mod slots;

pub use metrics::EtlMetrics;
pub use sla_client::SlaClient;
pub use slamon_web::{exporter, render};
pub use slots::{Owned, Ownership};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use futures::StreamExt;
use reqwest::Url;
use slamon_backends::{duration, http_url, Backends};
use slamon_domain::{
    now_ms, Event, EventEnvelope, Labels, MetricAggregatesComputed, MetricId, MetricRemoved, MetricSource, PortError,
    PortResult, Sample, SeriesList, SlaEntry, SlaSamplesObserved, Window, WindowAggregate,
};
use slamon_events::Publisher;
use slamon_prometheus::{Credentials, DemoSource, MultiSource, PrometheusSource, SourceConfig, TlsFiles};
use slamon_web::{TaskFailed, Tasks};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why the ETL, or one of its steps, failed. A step that fails for one series is
/// logged with this error and retried at the next cycle.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    /// The source cannot list its series.
    #[error("cannot list series: {0}")]
    ListSeries(#[source] PortError),
    /// The source cannot compute the statistics of a window.
    #[error("{window} statistics: {source}")]
    Statistics { window: &'static str, source: PortError },
    /// The source cannot give the input of an analysis.
    #[error("cannot read the input: {0}")]
    Input(#[source] PortError),
    /// No forecasting model could be fitted to the input (too little history), or the
    /// forecast was not finite.
    #[error("no forecast from {samples} samples: {reason}")]
    NoForecast { samples: usize, reason: &'static str },
    /// The analytics panicked (a bug): the message of the panic.
    #[error("the analytics panicked: {0}")]
    AnalyticsPanicked(String),
    /// A shutdown came while appends were being retried.
    #[error("shutdown before {0} events were appended")]
    ShutdownBeforeAppend(usize),

    /// A shutdown came while the cycle's series list or statistics queries were running:
    /// the names not answered yet (all of them while listing: 0 counted) have no
    /// statistics this cycle (the next run computes them again).
    #[error("shutdown during the series list or the statistics queries: {0} names left unanswered")]
    ShutdownDuringQueries(usize),
    /// The source client cannot be built.
    #[error("source: {0}")]
    Source(String),
    /// The SLA manager's endpoint is not usable.
    #[error("SLA manager endpoint: {0}")]
    SlaEndpoint(String),
    /// A backend or a listener cannot be opened.
    #[error(transparent)]
    Backend(#[from] slamon_backends::Error),
}

impl EtlError {
    fn panicked(e: tokio::task::JoinError) -> Self {
        let message = match e.try_into_panic() {
            Ok(payload) => payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into()),
            Err(e) => e.to_string(),
        };
        EtlError::AnalyticsPanicked(message)
    }
}

/// Where the ETL reads series: a Prometheus, the built-in demo, or both.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Source")]
pub struct SourceSettings {
    /// Run the built-in demo source (also the default when no Prometheus URL is given).
    #[arg(long, env = "SLAMON_DEMO")]
    pub demo: bool,
    /// Base URL of the Prometheus to monitor (the source), e.g. `http://prometheus:9090`.
    #[arg(long, env = "PROMETHEUS_URL", value_parser = optional_url, hide_env_values = true)]
    pub prometheus_url: Option<OptionalUrl>,
    /// Timeout of one request to Prometheus.
    #[arg(long, env = "SLAMON_PROMETHEUS_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub prometheus_timeout: Duration,
    /// The largest Prometheus answer read, in bytes: a larger one is treated as a query too
    /// big (split by time, then by series) instead of being held in memory.
    #[arg(long, env = "SLAMON_PROMETHEUS_MAX_ANSWER_BYTES", default_value_t = slamon_prometheus::DEFAULT_MAX_ANSWER_BYTES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..))]
    pub prometheus_max_answer_bytes: usize,
    /// A series is present when it has a sample in this lookback.
    #[arg(long, env = "SLAMON_SERIES_LOOKBACK", default_value = "10m", value_parser = duration)]
    pub series_lookback: Duration,
    /// PEM file of CA certificates trusted for an `https` Prometheus, beside the system's.
    #[arg(long, env = "SLAMON_PROMETHEUS_CA_FILE")]
    pub prometheus_ca_file: Option<PathBuf>,
    /// PEM file of the client certificate for a Prometheus that asks for one (mutual
    /// TLS); with --prometheus-key-file.
    #[arg(long, env = "SLAMON_PROMETHEUS_CERT_FILE")]
    pub prometheus_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[arg(long, env = "SLAMON_PROMETHEUS_KEY_FILE")]
    pub prometheus_key_file: Option<PathBuf>,
    /// File of the bearer token sent to Prometheus (read again on every request).
    #[arg(long, env = "SLAMON_PROMETHEUS_BEARER_TOKEN_FILE")]
    pub prometheus_bearer_token_file: Option<PathBuf>,
    /// User of Prometheus's basic authentication; the password is in
    /// --prometheus-password-file.
    #[arg(long, env = "SLAMON_PROMETHEUS_USERNAME")]
    pub prometheus_username: Option<String>,
    /// File of the basic-authentication password.
    #[arg(long, env = "SLAMON_PROMETHEUS_PASSWORD_FILE")]
    pub prometheus_password_file: Option<PathBuf>,
    /// Extra headers sent to Prometheus, `Name=value` separated by commas (e.g.
    /// `X-Scope-OrgID=team-a`); their values are never logged.
    #[arg(long, env = "SLAMON_PROMETHEUS_HEADERS", hide_env_values = true)]
    pub prometheus_headers: Option<String>,
}

/// An http(s) URL, or none for an empty value (`PROMETHEUS_URL=` means no Prometheus).
/// A password in it (`https://user:pass@host`) is used for basic authentication and
/// never shown: its `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct OptionalUrl(pub Option<Url>);

impl std::fmt::Debug for OptionalUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(url) => write!(f, "OptionalUrl({})", redacted(url)),
            None => f.write_str("OptionalUrl(None)"),
        }
    }
}

/// `url` without its password (`user:<redacted>@host`).
pub fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("redacted"));
    }
    shown.to_string()
}

fn optional_url(s: &str) -> Result<OptionalUrl, String> {
    if s.trim().is_empty() {
        return Ok(OptionalUrl(None));
    }
    match http_url(s) {
        Ok(url) if url.query().is_some() || url.fragment().is_some() => Err(
            "a Prometheus base URL takes no query string or fragment (the API paths are appended to it; give headers with SLAMON_PROMETHEUS_HEADERS)".into(),
        ),
        Ok(url) => Ok(OptionalUrl(Some(url))),
        // the setting errors quote the value: never one that may hold a password
        Err(_) if s.contains('@') => {
            Err("not an http(s) URL with a host (its value is not shown: it may hold a password)".into())
        }
        Err(e) => Err(e),
    }
}

impl SourceSettings {
    /// The credentials for Prometheus: a bearer token file, or a user and its password
    /// file (read now), or the user and password of `url` (taken out of it), or none.
    ///
    /// # Errors
    /// [`EtlError::Source`] when two kinds are given, a user has no password file (or
    /// the reverse), or the password file cannot be read.
    fn credentials(&self, url: &mut Url) -> Result<Credentials, EtlError> {
        let username = self.prometheus_username.clone().filter(|u| !u.is_empty());
        let password = slamon_backends::given_path(&self.prometheus_password_file);
        let bearer = slamon_backends::given_path(&self.prometheus_bearer_token_file);
        let source = |m: &str| EtlError::Source(m.to_owned());
        if let Some(in_url) = slamon_prometheus::credentials_in_url(url) {
            if bearer.is_some() || username.is_some() || password.is_some() {
                return Err(source(
                    "the Prometheus URL holds a user and password, and other credentials are given too",
                ));
            }
            return Ok(in_url);
        }
        match (bearer, username, password) {
            (None, None, None) => Ok(Credentials::None),
            (Some(file), None, None) => Ok(Credentials::BearerFile(file)),
            (None, Some(username), Some(file)) => {
                let password = slamon_backends::read_password_file(&file).map_err(|e| {
                    EtlError::Source(format!("cannot read the Prometheus password file {}: {e}", file.display()))
                })?;
                Ok(Credentials::Basic { username, password })
            }
            (Some(_), _, _) => {
                Err(source("give Prometheus either a bearer token file or a user and password file, not both"))
            }
            (None, Some(_), None) => Err(source("SLAMON_PROMETHEUS_USERNAME needs SLAMON_PROMETHEUS_PASSWORD_FILE")),
            (None, None, Some(_)) => Err(source("SLAMON_PROMETHEUS_PASSWORD_FILE needs SLAMON_PROMETHEUS_USERNAME")),
        }
    }

    /// The extra headers, `Name=value` separated by commas.
    ///
    /// # Errors
    /// [`EtlError::Source`] naming an item without `=` (not its value).
    fn headers(&self) -> Result<Vec<(String, String)>, EtlError> {
        let Some(list) = self.prometheus_headers.as_deref().filter(|h| !h.trim().is_empty()) else {
            return Ok(Vec::new());
        };
        list.split(',')
            .map(|item| {
                let (name, value) = item.split_once('=').ok_or_else(|| {
                    EtlError::Source("SLAMON_PROMETHEUS_HEADERS: each item is Name=value, separated by commas".into())
                })?;
                Ok((name.trim().to_owned(), value.trim().to_owned()))
            })
            .collect()
    }

    /// The source these settings name.
    ///
    /// # Errors
    /// The Prometheus client cannot be built.
    pub fn open(&self) -> Result<Arc<dyn MetricSource>, EtlError> {
        let prometheus = match self.prometheus_url.clone().and_then(|u| u.0) {
            Some(mut url) => Some(Arc::new(
                PrometheusSource::new(SourceConfig {
                    credentials: self.credentials(&mut url)?,
                    url: url.as_str().trim_end_matches('/').to_owned(),
                    timeout: self.prometheus_timeout,
                    series_lookback: self.series_lookback,
                    tls: TlsFiles {
                        ca_file: slamon_backends::given_path(&self.prometheus_ca_file),
                        client_cert: match (slamon_backends::given_path(&self.prometheus_cert_file), slamon_backends::given_path(&self.prometheus_key_file)) {
                            (Some(cert), Some(key)) => Some((cert, key)),
                            (None, None) => None,
                            _ => {
                                return Err(EtlError::Source(
                                    "a client certificate needs both SLAMON_PROMETHEUS_CERT_FILE and SLAMON_PROMETHEUS_KEY_FILE".into(),
                                ))
                            }
                        },
                    },
                    headers: self.headers()?,
                    max_answer_bytes: self.prometheus_max_answer_bytes,
                })
                .map_err(|e| EtlError::Source(e.to_string()))?,
            ) as Arc<dyn MetricSource>),
            None => None,
        };
        Ok(match (prometheus, self.demo) {
            (Some(p), false) => p,
            (Some(p), true) => Arc::new(MultiSource::new(vec![p, Arc::new(DemoSource::new())])),
            (None, _) => {
                tracing::info!("no PROMETHEUS_URL given: running the built-in demo source");
                Arc::new(DemoSource::new())
            }
        })
    }
}

/// The most samples one `SlaSamplesObserved` carries: about 300 kB of Avro, well under
/// Kafka's default 1 MB record limit.
pub const MAX_SAMPLES_PER_EVENT: usize = 20_000;

/// Settings of the ETL (alone or in `slamon up`).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "etl")]
#[command(next_help_heading = "ETL")]
pub struct Config {
    #[command(flatten)]
    pub source: SourceSettings,
    /// Period of the statistics cycle.
    #[arg(long, env = "SLAMON_ETL_PERIOD", default_value = "2m", value_parser = duration)]
    pub etl_period: Duration,
    /// Most queries in flight at once at the source: the statistics queries (one per
    /// metric name and window) stay under a limit that adapts to Prometheus's answer times
    /// ([`limit`]) below it.
    #[arg(long, env = "SLAMON_ETL_CONCURRENCY", default_value_t = 8)]
    pub etl_concurrency: usize,
    /// A series absent from the source this long is announced as removed.
    #[arg(long, env = "SLAMON_REMOVED_AFTER", default_value = "15m", value_parser = duration)]
    pub removed_after: Duration,
    /// Period of the metadata cycle (stationarity, autocorrelation, seasonality of every series).
    #[arg(long, env = "SLAMON_METADATA_PERIOD", default_value = "1h", value_parser = duration)]
    pub metadata_period: Duration,
    /// History analysed for the metadata of a series (1-minute steps).
    #[arg(long, env = "SLAMON_METADATA_WINDOW", default_value = "24h", value_parser = duration)]
    pub metadata_window: Duration,
    /// History used to forecast an SLA metric (1-minute steps); longer for a series whose
    /// seasonal period needs it (two periods plus 40 minutes, at most the metadata window).
    #[arg(long, env = "SLAMON_FORECAST_WINDOW", default_value = "12h", value_parser = duration)]
    pub forecast_window: Duration,
    /// Autocorrelation lags computed for the metadata.
    #[arg(long, env = "SLAMON_ACF_LAGS", default_value_t = 40)]
    pub acf_lags: usize,
    /// Address of the ETL exporter (`/metrics`).
    #[arg(long, env = "SLAMON_EXPORTER_LISTEN", default_value = "[::]:8008")]
    pub exporter_listen: SocketAddr,
    /// gRPC endpoint of the SLA manager (in `slamon up`: its own).
    #[arg(long, env = "SLAMON_SLA_MANAGER_GRPC_URL", default_value = "http://127.0.0.1:50052", value_parser = http_url)]
    pub sla_manager_grpc_url: Url,
    /// File whose first token the ETL sends to the SLA manager's gRPC (when that wants
    /// a read token).
    #[arg(long, env = "SLAMON_SLA_MANAGER_TOKEN_FILE")]
    pub sla_manager_token_file: Option<std::path::PathBuf>,
    /// Read the SLA set from this process's read models instead of the SLA manager's
    /// gRPC (`slamon up`: one process).
    #[arg(skip)]
    pub sla_set_from_store: bool,
}

impl Config {
    fn etl_config(&self) -> EtlConfig {
        EtlConfig {
            period: self.etl_period,
            concurrency: self.etl_concurrency,
            removed_after: self.removed_after,
            producer: Backends::producer("etl"),
            metadata_period: self.metadata_period,
            metadata_window: self.metadata_window,
            forecast_window: self.forecast_window,
            acf_lags: self.acf_lags,
            ..EtlConfig::default()
        }
    }
}

/// The ETL with its exporter, ready to run.
pub struct App {
    etl: Etl,
    exporter: TcpListener,
    metrics: prometheus::Registry,
}

impl App {
    /// Opens the source and the publisher, registers the metrics and binds the exporter
    /// (which serves every metric of `backends`, the projector's too in `slamon up`).
    ///
    /// # Errors
    /// A backend or the source cannot be opened, or the address is taken.
    pub async fn build(config: &Config, backends: &Backends) -> Result<App, EtlError> {
        let exporter = slamon_backends::bind(config.exporter_listen, "exporter").await?;
        let sla = if config.sla_set_from_store {
            SlaClient::local(backends.store().await?, backends.settings().db_timeout)
        } else {
            let token = match slamon_backends::given_path(&config.sla_manager_token_file) {
                Some(path) => Some(slamon_web::auth::first_token(&path).map_err(slamon_backends::Error::from)?),
                None => None,
            };
            SlaClient::new(config.sla_manager_grpc_url.as_str().trim_end_matches('/'), token.as_deref())?
        };
        let ownership = match backends.etl_slot_group_join() {
            Some(join) => Ownership::joining(move || {
                let joining = join();
                async move {
                    let group = joining.await?;
                    tracing::info!(
                        slots = group.slots(),
                        "sharing the series with the other ETL instances of the group"
                    );
                    let assignment = group.assignment();
                    Ok::<_, slamon_backends::Error>((group, assignment))
                }
            }),
            None => Ownership::All,
        };
        let etl = Etl::new(
            config.source.open()?,
            backends.publisher()?,
            sla,
            config.etl_config(),
            EtlMetrics::new(backends.metrics()).map_err(slamon_backends::Error::from)?,
        )
        .with_ownership(ownership);
        Ok(App { etl, exporter, metrics: backends.metrics().clone() })
    }

    /// Runs the cycles and serves the exporter until `cancel`.
    ///
    /// # Errors
    /// The exporter failed.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), TaskFailed> {
        let mut tasks = Tasks::new(cancel);
        tasks.spawn_http("exporter", self.exporter, exporter(self.metrics).merge(slamon_web::livez()));
        let (etl, etl_cancel) = (self.etl, tasks.cancel());
        tasks.spawn("etl", async move {
            etl.run(etl_cancel).await;
            Ok::<(), TaskFailed>(())
        });
        tasks.wait().await
    }
}

#[derive(Debug, Clone)]
pub struct EtlConfig {
    /// Period of the statistics cycle.
    pub period: Duration,
    /// Metric names queried at once.
    pub concurrency: usize,
    /// A series absent from the source this long is announced as removed.
    pub removed_after: Duration,
    /// Extra history kept before `12 h + for` of each SLA metric.
    pub sla_margin: Duration,
    /// Events per append.
    pub publish_batch: usize,
    /// Name of this producer in event envelopes.
    pub producer: String,
    /// Period of the metadata cycle (stationarity, autocorrelation, seasonality).
    pub metadata_period: Duration,
    /// History used for the metadata of a series.
    pub metadata_window: Duration,
    /// History used for the forecast of an SLA metric (at least; see [`forecast_window_ms`]).
    pub forecast_window: Duration,
    /// Autocorrelation lags computed.
    pub acf_lags: usize,
    /// How often the SLA set is asked for between cycles: a set that changed gets the
    /// SLA samples and forecasts of its metrics at once, not at the next cycle.
    pub sla_watch: Duration,
    /// The time of a cycle, in milliseconds since the epoch: the system clock, or a fixed
    /// instant in tests.
    pub clock: fn() -> i64,
}

impl Default for EtlConfig {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(120),
            concurrency: 8,
            removed_after: Duration::from_secs(15 * 60),
            sla_margin: Duration::from_secs(5 * 60),
            publish_batch: 500,
            producer: "slamon-etl".into(),
            metadata_period: Duration::from_secs(3600),
            metadata_window: Duration::from_secs(24 * 3600),
            forecast_window: Duration::from_secs(12 * 3600),
            acf_lags: 40,
            sla_watch: Duration::from_secs(10),
            clock: now_ms,
        }
    }
}

/// The history a forecast reads, in milliseconds: the configured `window_ms`, or, when
/// the series' seasonal `period` (in one-minute samples, from its metadata) needs more,
/// two periods plus the hold-out and half an hour (for the repeated tail dropped and a
/// gap or two), so that the seasonal models get the two periods of training points they
/// need; never more than `cap_ms`, the metadata window the period was found in. With the
/// defaults (12 h, 24 h) a 6-hour cycle is read over 12 h 40 min instead of being left to
/// the non-seasonal models for want of 10 minutes.
pub fn forecast_window_ms(window_ms: i64, period: Option<usize>, cap_ms: i64) -> i64 {
    let needed = period.map_or(0, |p| (2 * p as i64 + analysis::HOLDOUT as i64 + 30) * analysis::STEP_MS);
    window_ms.max(needed.min(cap_ms))
}

/// What one cycle did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CycleReport {
    pub series: usize,
    /// Series of this instance's slots (all of `series` for a single instance).
    pub owned_series: usize,
    pub aggregates: usize,
    pub sla_metrics: usize,
    pub samples: usize,
    pub removed: usize,
    pub failed_names: usize,
    pub forecasts: usize,
}

/// What one metadata cycle did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MetadataReport {
    pub series: usize,
    pub computed: usize,
    pub failed: usize,
}

/// One statistics query: a metric name, the share of its series asked for (`None`: the
/// whole name), the window.
type StatsQuery = (Arc<str>, Option<Arc<[Labels]>>, Window);

/// What a metric name's window queries answered so far in a cycle.
#[derive(Default)]
struct PendingName {
    /// Windows answered (or failed).
    answered: usize,
    /// Per series, its aggregate of each window in the order of `Window::ALL`.
    series: BTreeMap<Labels, [Option<WindowAggregate>; Window::ALL.len()]>,
    /// The first window that failed: no statistics of the name this cycle.
    failed: Option<EtlError>,
}

pub struct Etl {
    source: Arc<dyn MetricSource>,
    publisher: Publisher,
    sla: SlaClient,
    config: EtlConfig,
    metrics: EtlMetrics,
    /// Last time each series was seen, for removals.
    last_seen: HashMap<MetricId, (Labels, i64)>,
    /// Timestamp of the last SLA sample emitted per SLA metric.
    cursors: HashMap<MetricId, i64>,
    /// Seasonal period (in 1-minute samples) of each series, from its last metadata
    /// (written by the metadata task, read by the forecasts).
    periods: Arc<std::sync::Mutex<HashMap<MetricId, Option<usize>>>>,
    /// The SLA set whose samples and forecasts were last published: the one the cycles
    /// keep using while the SLA manager does not answer.
    sla_set: Option<Vec<SlaEntry>>,
    /// Where this instance learns its share of the series.
    ownership: Ownership,
    /// The slots this instance's state (`last_seen`, `cursors`, `periods`, `sla_set`) is of.
    owned: Owned,
    /// Statistics queries in flight, adapted to Prometheus's answer times (under
    /// `concurrency`), keyed by metric name and window.
    limit: limit::QueryLimit<(Arc<str>, Window)>,
}

impl Etl {
    pub fn new(
        source: Arc<dyn MetricSource>,
        publisher: Publisher,
        sla: SlaClient,
        config: EtlConfig,
        metrics: EtlMetrics,
    ) -> Self {
        let limit = limit::QueryLimit::new(config.concurrency);
        metrics.query_concurrency_limit.set(limit.max() as i64);
        Self {
            limit,
            source,
            publisher,
            sla,
            config,
            metrics,
            last_seen: HashMap::new(),
            cursors: HashMap::new(),
            periods: Arc::default(),
            sla_set: None,
            ownership: Ownership::All,
            owned: Owned::none(1),
        }
    }

    /// Computes only the series `ownership` gives this instance (by default every one).
    pub fn with_ownership(mut self, ownership: Ownership) -> Self {
        self.owned = Owned::none(1);
        self.ownership = ownership;
        self
    }

    /// Replaces the clock of the cycles (tests).
    pub fn set_clock(&mut self, clock: fn() -> i64) {
        self.config.clock = clock;
    }

    /// Runs the statistics cycle at once and then every period, and between cycles watches
    /// the SLA set for changes, until `cancel`. The metadata cycle runs in a task of its
    /// own ([`Etl::metadata_task`]), started when the first statistics cycle is done:
    /// however long it takes, it never delays the SLA samples and forecasts.
    pub async fn run(mut self, cancel: CancellationToken) {
        tracing::info!(source = %self.source.describe(), period = ?self.config.period, metadata_period = ?self.config.metadata_period, "etl started");
        // the metadata task starts once the first statistics cycle is done: the two do not
        // compete for the source, the cores and memory at start
        let mut metadata: Option<tokio::task::JoinHandle<()>> = None;
        let mut ticker = tokio::time::interval(self.config.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sla_ticker = tokio::time::interval(self.config.sla_watch);
        sla_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => {
                    let started = Instant::now();
                    match self.cycle(&cancel).await {
                        Ok(report) => tracing::info!(?report, elapsed = ?started.elapsed(), "etl cycle done"),
                        // not a failure: the process is stopping
                        Err(e @ EtlError::ShutdownDuringQueries(_)) => {
                            tracing::info!(error = %e, "etl cycle stopped by the shutdown");
                            break;
                        }
                        Err(e) => {
                            self.metrics.cycle_failures.inc();
                            tracing::warn!(error = %e, "etl cycle failed");
                        }
                    }
                    self.metrics.cycles.inc();
                    self.metrics.cycle_seconds.observe(started.elapsed().as_secs_f64());
                    if metadata.is_none() {
                        metadata = Some(tokio::spawn(self.metadata_task().run(cancel.clone())));
                    }
                }
                _ = sla_ticker.tick() => {
                    self.watch_sla_set(&cancel).await;
                }
            }
        }
        if let Some(metadata) = metadata {
            let _ = metadata.await;
        }
        tracing::info!("etl stopped");
    }

    /// The metadata cycle as a task of its own, sharing this ETL's source, log, metrics
    /// and seasonal periods.
    pub fn metadata_task(&self) -> MetadataTask {
        MetadataTask {
            source: self.source.clone(),
            appender: self.appender(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            periods: self.periods.clone(),
            ownership: self.ownership.clone(),
        }
    }

    fn appender(&self) -> Appender {
        Appender { publisher: self.publisher.clone(), metrics: self.metrics.clone(), batch: self.config.publish_batch }
    }

    /// Stationarity, autocorrelation and seasonality of every series, at once (no
    /// spreading, no deadline: [`MetadataTask::cycle`]).
    pub async fn metadata_cycle(&mut self, cancel: &CancellationToken) -> Result<MetadataReport, EtlError> {
        self.metadata_task().cycle(cancel, None).await
    }

    /// One cycle at the current time.
    pub async fn cycle(&mut self, cancel: &CancellationToken) -> Result<CycleReport, EtlError> {
        let mut report = CycleReport::default();
        // a rebalance moves slots within seconds: wait for it rather than skip the cycle
        let Some(owned) = self.ownership.settled(self.config.period / 2).await else {
            self.metrics.unassigned_cycles.inc();
            tracing::warn!("the ETL's slots are being assigned (a rebalance of its group): no series this cycle");
            return Ok(report);
        };
        let at = (self.config.clock)();
        let phases = self.metrics.cycle_phase_seconds.clone();
        let phase = move |name: &str, started: Instant| {
            let secs = started.elapsed().as_secs_f64();
            phases.with_label_values(&[name]).set(secs);
            tracing::debug!(phase = name, secs, "etl cycle phase done");
        };
        let started = Instant::now();
        // the series of the slots just acquired (every slot at the first cycle) are listed
        // beside the series of this cycle, not before them
        let acquired = self.change_ownership(owned);
        let since = at - Window::H12.millis();
        let listing = futures::future::join(
            async {
                if acquired.is_some() {
                    Some(self.source.series_since(since).await)
                } else {
                    None
                }
            },
            self.source.series(),
        );
        // a shutdown does not wait for the lists (a Prometheus that does not answer holds
        // them until the client's timeout)
        let (seen, listed) = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(EtlError::ShutdownDuringQueries(0)),
            lists = listing => lists,
        };
        if let (Some(acquired), Some(seen)) = (acquired, seen) {
            self.seed_acquired(&acquired, seen, at);
        }
        let SeriesList { series, partial } = listed.map_err(|e| {
            self.metrics.source_failures.inc();
            EtlError::ListSeries(e)
        })?;
        phase("list", started);
        report.series = series.len();
        self.metrics.series.set(series.len() as i64);
        if partial {
            // use what it lists, but what it leaves out is not gone
            self.metrics.partial_series_lists.inc();
            tracing::warn!(series = series.len(), "the series list may be partial: no series is removed this cycle");
        }
        let mut listed_per_name: HashMap<String, usize> = HashMap::new();
        for l in &series {
            *listed_per_name.entry(l.name().to_owned()).or_default() += 1;
        }
        // the listed series this instance computes (moved, not copied: a list can be large)
        let owned: Vec<Labels> = if self.owned.is_all() {
            series
        } else {
            series.into_iter().filter(|l| self.owned.owns(&l.id())).collect()
        };
        report.owned_series = owned.len();
        self.metrics.owned_series.set(owned.len() as i64);

        // each name's statistics are appended as soon as its windows are in, beside the
        // queries still running (the channel holds a few names: the queries wait for the
        // log rather than the events piling up)
        let started = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<EventEnvelope>>(4);
        let appender = self.appender();
        let publishing = async {
            while let Some(events) = rx.recv().await {
                appender.publish(events, cancel).await?;
            }
            Ok::<(), EtlError>(())
        };
        let computing = async {
            let unanswered = self.aggregates(&listed_per_name, &owned, at, &mut report, &tx, cancel).await;
            phase("statistics", started);
            drop(tx);
            unanswered
        };
        let (unanswered, published) = tokio::join!(computing, publishing);
        published?;
        if let Some(names) = unanswered {
            return Err(EtlError::ShutdownDuringQueries(names));
        }
        let started = Instant::now();
        let removals = self.removals(&owned, partial, at, &mut report);
        self.publish(removals, cancel).await?;
        phase("publish", started);

        self.export_source_counters();

        let entries = match self.sla.fetch().await {
            Ok(entries) => entries,
            Err(status) => {
                self.metrics.sla_set_unavailable.inc();
                match &self.sla_set {
                    Some(known) => {
                        tracing::warn!(endpoint = self.sla.describe(), code = ?status.code(), message = status.message(), "the SLA manager did not answer: the samples and forecasts of the last known SLA set");
                        known.clone()
                    }
                    None => {
                        tracing::warn!(endpoint = self.sla.describe(), code = ?status.code(), message = status.message(), "the SLA manager did not answer and no SLA set is known yet: no SLA samples this cycle");
                        return Ok(report);
                    }
                }
            }
        };
        let started = Instant::now();
        self.sla_pass(entries, at, &mut report, cancel).await?;
        phase("sla", started);
        self.export_source_counters();
        Ok(report)
    }

    /// The source's own counters (warnings, splits) as the exporter's.
    fn export_source_counters(&self) {
        for (counter, total) in [
            (&self.metrics.source_warnings, self.source.warnings()),
            (&self.metrics.source_splits, self.source.splits()),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// The new raw samples and the forecast of every SLA metric of `entries` this
    /// instance owns, published.
    async fn sla_pass(
        &mut self,
        entries: Vec<SlaEntry>,
        at: i64,
        report: &mut CycleReport,
        cancel: &CancellationToken,
    ) -> Result<(), EtlError> {
        let mine: Vec<SlaEntry> = entries.iter().filter(|e| self.owned.owns(&e.id())).cloned().collect();
        let (mut events, cursors) = self.sla_samples(&mine, at, report).await;
        events.extend(self.forecasts(&mine, at, report).await);
        self.publish(events, cancel).await?;
        self.cursors.retain(|id, _| mine.iter().any(|e| &e.id() == id));
        self.cursors.extend(cursors);
        self.sla_set = Some(entries);
        Ok(())
    }

    /// Makes `owned` the slots of this instance's state: what it kept of the slots it no
    /// longer owns is forgotten (their new owner computes them; a slot that comes back
    /// has its SLA window emitted again, which the projection merges), and for the slots
    /// it acquires, every series with a sample in the last 12 h counts as seen now, so a
    /// series that stopped reporting before this instance listed it is still announced
    /// as removed, `removed_after` from now. That includes every slot at the first
    /// cycle: after a restart too.
    async fn take_ownership(&mut self, owned: Owned, at: i64) {
        if let Some(acquired) = self.change_ownership(owned) {
            let seen = self.source.series_since(at - Window::H12.millis()).await;
            self.seed_acquired(&acquired, seen, at);
        }
    }

    /// The state-only part of [`Etl::take_ownership`]: the slots acquired, when there are
    /// any, whose series of the last 12 h are to be listed and given to
    /// [`Etl::seed_acquired`].
    fn change_ownership(&mut self, owned: Owned) -> Option<Owned> {
        if owned == self.owned {
            return None;
        }
        let acquired = owned.acquired_since(&self.owned);
        tracing::info!(
            owned = owned.count(),
            slots = owned.slot_count(),
            acquired = acquired.count(),
            "ETL slots taken"
        );
        self.metrics.owned_slots.set(i64::from(owned.count()));
        self.metrics.slots.set(i64::from(owned.slot_count()));
        self.last_seen.retain(|id, _| owned.owns(id));
        self.cursors.retain(|id, _| owned.owns(id));
        self.periods.lock().expect("periods lock").retain(|id, _| owned.owns(id));
        self.owned = owned;
        (acquired.count() > 0).then_some(acquired)
    }

    /// Every series of the `acquired` slots in `seen` (the series of the last 12 h) counts
    /// as seen at `at`, unless it already was.
    fn seed_acquired(&mut self, acquired: &Owned, seen: PortResult<SeriesList>, at: i64) {
        match seen {
            Ok(list) => {
                let mut seeded = 0;
                for labels in list.series {
                    let id = labels.id();
                    if acquired.owns(&id) && !self.last_seen.contains_key(&id) {
                        self.last_seen.insert(id, (labels, at));
                        seeded += 1;
                    }
                }
                tracing::debug!(seeded, "series of the acquired slots seen in the last 12 h");
            }
            Err(e) => {
                self.metrics.source_failures.inc();
                tracing::warn!(error = %e, "cannot list the series of the last 12 h: a series of the acquired slots that stopped reporting before this cycle is not announced as removed");
            }
        }
    }

    /// Between cycles: when the SLA set differs from the one last published for, the
    /// samples and forecasts of the new set, so a new SLA has its status and prediction
    /// within seconds instead of at the next cycle; also the first set known, when the SLA
    /// manager answers again after the cycles had none. When it does not answer, it
    /// leaves the work to the cycle.
    pub async fn watch_sla_set(&mut self, cancel: &CancellationToken) -> Option<CycleReport> {
        let entries = match self.sla.fetch().await {
            Ok(entries) => entries,
            Err(status) => {
                tracing::debug!(code = ?status.code(), message = status.message(), "SLA set not watched this time");
                return None;
            }
        };
        // the slots as they are now: an SLA metric of a slot just acquired is computed at once
        let owned = self.ownership.current()?;
        if self.sla_set.as_ref() == Some(&entries) && owned == self.owned {
            return None;
        }
        self.take_ownership(owned, (self.config.clock)()).await;
        let mut report = CycleReport::default();
        let started = Instant::now();
        match self.sla_pass(entries, (self.config.clock)(), &mut report, cancel).await {
            Ok(()) => {
                tracing::info!(?report, elapsed = ?started.elapsed(), "SLA set changed: its samples and forecasts published");
                Some(report)
            }
            Err(e) => {
                tracing::warn!(error = %e, "SLA set changed, publishing its samples failed (the next cycle retries)");
                None
            }
        }
    }

    /// The window statistics of the `owned` series (of `listed_per_name` series listed per
    /// name): one query per name and window when every series of the name is owned here,
    /// else the owned ones as a share ([`MetricSource::window_stats_of`]). Each name's
    /// events go to `publish` as soon as its windows are answered; a name with a window
    /// that failed has none this cycle. A `cancel` stops the queries still running (a
    /// big name's can take most of a minute) and gives the number of names left
    /// unanswered.
    async fn aggregates(
        &self,
        listed_per_name: &HashMap<String, usize>,
        owned: &[Labels],
        at: i64,
        report: &mut CycleReport,
        publish: &tokio::sync::mpsc::Sender<Vec<EventEnvelope>>,
        cancel: &CancellationToken,
    ) -> Option<usize> {
        // per name: the series owned here, copied only for a name not owned whole
        let mut owned_per_name: BTreeMap<&str, usize> = BTreeMap::new();
        for l in owned {
            *owned_per_name.entry(l.name()).or_default() += 1;
        }
        let mut shares: HashMap<&str, Vec<Labels>> = HashMap::new();
        for l in owned {
            if listed_per_name.get(l.name()).copied() != owned_per_name.get(l.name()).copied() {
                shares.entry(l.name()).or_default().push(l.clone());
            }
        }
        let work: Vec<(String, Option<Vec<Labels>>)> =
            owned_per_name.into_keys().map(|name| (name.to_owned(), shares.remove(name))).collect();
        // per name, what its windows answered so far
        let mut pending: HashMap<Arc<str>, PendingName> = HashMap::new();
        // every (name, window) query on its own, as many at once as the adaptive limit allows
        // (at most `concurrency`), as Prometheus's own rule evaluation would run them; rows
        // folded per series as they come
        // owned, not borrowed: the futures of a stream cannot borrow from its items
        let jobs: Vec<StatsQuery> = work
            .into_iter()
            .flat_map(|(name, share)| {
                let (name, share): (Arc<str>, Option<Arc<[Labels]>>) = (name.into(), share.map(Into::into));
                pending.insert(name.clone(), PendingName::default());
                Window::ALL.map(|w| (name.clone(), share.clone(), w))
            })
            .collect();
        let mut answers = futures::stream::iter(jobs)
            .map(|(name, share, w)| async move {
                let permit = self.limit.acquire().await;
                let started = Instant::now();
                let answer = match &share {
                    None => self.source.window_stats(&name, w, at).await,
                    Some(share) => self.source.window_stats_of(&name, share, w, at).await,
                };
                let elapsed = started.elapsed();
                match &answer {
                    Ok(_) => {
                        self.metrics.window_gauge(w).with_label_values(&[&*name]).set(elapsed.as_secs_f64());
                        permit.answered((name.clone(), w), elapsed);
                    }
                    Err(e) if e.is_retryable() => permit.overloaded(),
                    Err(_) => drop(permit),
                }
                self.metrics.query_concurrency_limit.set(self.limit.limit() as i64);
                (name, w, answer)
            })
            .buffer_unordered(self.limit.max());
        // the 12 h window still holds series that stopped reporting: statistics only for the
        // series the source lists now, so a removed series stays removed until it reports again
        let listed: HashSet<&Labels> = owned.iter().collect();
        let mut cancelled = false;
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    cancelled = true;
                    break;
                }
                next = answers.next() => next,
            };
            let Some((name, w, answer)) = next else { break };
            let Some(state) = pending.get_mut(&name) else { continue };
            state.answered += 1;
            match answer {
                Ok(rows) => {
                    let i = Window::ALL.iter().position(|x| *x == w).expect("a window of Window::ALL");
                    for (labels, agg) in rows {
                        // the listed set, shared, rather than the answer's copy of it
                        if let Some(listed) = listed.get(&labels) {
                            state.series.entry((*listed).clone()).or_default()[i] = Some(agg);
                        }
                    }
                }
                Err(source) => {
                    state.failed.get_or_insert(EtlError::Statistics { window: w.label(), source });
                }
            }
            if state.answered < Window::ALL.len() {
                continue;
            }
            let PendingName { series, failed, .. } = pending.remove(&name).expect("the name just answered");
            if let Some(e) = failed {
                self.metrics.source_failures.inc();
                report.failed_names += 1;
                tracing::warn!(metric_name = %name, error = %e, "skipping metric name this cycle");
                continue;
            }
            report.aggregates += series.len();
            let events = series
                .into_iter()
                .map(|(labels, windows)| {
                    let windows = Window::ALL
                        .into_iter()
                        .zip(windows)
                        .map(|(w, agg)| {
                            agg.unwrap_or(WindowAggregate {
                                window: w,
                                min: None,
                                max: None,
                                avg: None,
                                std_dev: None,
                                samples: 0,
                            })
                        })
                        .collect();
                    self.envelope(Event::MetricAggregatesComputed(MetricAggregatesComputed {
                        labels,
                        computed_at_ms: at,
                        windows,
                    }))
                })
                .collect();
            // a closed channel: the publishing stopped (a shutdown), which the cycle reports
            let _ = publish.send(events).await;
        }
        drop(answers);
        self.limit.end_cycle();
        cancelled.then_some(pending.len())
    }

    /// `MetricRemoved` for the series not listed for `removed_after`; none when the list
    /// may be `partial`.
    fn removals(&mut self, series: &[Labels], partial: bool, at: i64, report: &mut CycleReport) -> Vec<EventEnvelope> {
        for l in series {
            // the labels are copied once, when the series is first seen
            self.last_seen.entry(l.id()).and_modify(|seen| seen.1 = at).or_insert_with(|| (l.clone(), at));
        }
        if partial {
            return Vec::new();
        }
        let limit = self.config.removed_after.as_millis() as i64;
        let gone: Vec<MetricId> =
            self.last_seen.iter().filter(|(_, (_, seen))| at - seen > limit).map(|(id, _)| *id).collect();
        report.removed = gone.len();
        let removed: Vec<(Labels, i64)> = gone.into_iter().filter_map(|id| self.last_seen.remove(&id)).collect();
        for (labels, _) in &removed {
            // the removal empties the series' SLA samples in the projection: when it reports
            // again, its whole window is emitted again, not only what came after the cursor
            self.cursors.remove(&labels.id());
        }
        removed
            .into_iter()
            .map(|(labels, seen)| self.envelope(Event::MetricRemoved(MetricRemoved { labels, last_seen_ms: seen })))
            .collect()
    }

    async fn sla_samples(
        &self,
        entries: &[SlaEntry],
        at: i64,
        report: &mut CycleReport,
    ) -> (Vec<EventEnvelope>, Vec<(MetricId, i64)>) {
        report.sla_metrics = entries.len();
        let margin = self.config.sla_margin.as_millis() as i64;
        let results: Vec<_> = futures::stream::iter(entries.iter().cloned())
            .map(|e| async move {
                let window_start = at - Window::H12.millis() - i64::from(e.for_minutes) * 60_000 - margin;
                let cursor = self.cursors.get(&e.id()).copied().filter(|c| *c >= window_start);
                let after = cursor.unwrap_or(window_start - 1);
                let samples = self.source.raw_samples(&e.labels, after, at).await;
                (e, window_start, cursor, samples)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut events = Vec::new();
        let mut cursors = Vec::new();
        for (e, window_start, cursor, samples) in results {
            match samples {
                Ok(samples) => {
                    if samples.is_empty() && cursor.is_some() {
                        continue;
                    }
                    report.samples += samples.len();
                    if let Some(last) = samples.last() {
                        cursors.push((e.id(), last.ts_ms));
                    }
                    // bounded events (a 1 s scrape with a long `for` is megabytes): the
                    // projection merges them by timestamp
                    let chunks: Vec<Vec<Sample>> = if samples.is_empty() {
                        vec![Vec::new()]
                    } else {
                        samples.chunks(MAX_SAMPLES_PER_EVENT).map(<[Sample]>::to_vec).collect()
                    };
                    for samples in chunks {
                        events.push(self.envelope(Event::SlaSamplesObserved(SlaSamplesObserved {
                            labels: e.labels.clone(),
                            window_start_ms: window_start,
                            samples,
                        })));
                    }
                }
                Err(err) => {
                    self.metrics.source_failures.inc();
                    tracing::warn!(series = %e.labels, error = %err, "cannot read SLA samples this cycle");
                }
            }
        }
        (events, cursors)
    }

    /// The forecast of every SLA metric.
    async fn forecasts(&self, entries: &[SlaEntry], at: i64, report: &mut CycleReport) -> Vec<EventEnvelope> {
        let window = self.config.forecast_window.as_millis() as i64;
        let cap = self.config.metadata_window.as_millis() as i64;
        let results: Vec<_> = futures::stream::iter(entries.iter().cloned())
            .map(|e| async move {
                let period = self.periods.lock().expect("periods lock").get(&e.id()).copied().flatten();
                let window = forecast_window_ms(window, period, cap);
                match analysis::input(self.source.as_ref(), &e.labels, at, window, true).await {
                    Ok(input) => analysis::forecast_event(e.labels.clone(), input, period, at)
                        .await
                        .map_err(|err| (e.labels, err)),
                    Err(err) => Err((e.labels, err)),
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut events = Vec::new();
        for r in results {
            match r {
                Ok((event, secs)) => {
                    self.metrics.executiontime_prediction.with_label_values(&[event.labels.name()]).set(secs);
                    report.forecasts += 1;
                    events.push(self.envelope(Event::MetricForecastComputed(event)));
                }
                Err((labels, e)) => tracing::warn!(series = %labels, error = %e, "no forecast this cycle"),
            }
        }
        events
    }

    fn envelope(&self, event: Event) -> EventEnvelope {
        EventEnvelope::new(self.config.producer.clone(), event)
    }

    async fn publish(&self, events: Vec<EventEnvelope>, cancel: &CancellationToken) -> Result<(), EtlError> {
        self.appender().publish(events, cancel).await
    }
}

#[cfg(test)]
mod tests;

/// Appends events for the ETL's cycles and its metadata task.
#[derive(Clone)]
struct Appender {
    publisher: Publisher,
    metrics: EtlMetrics,
    /// Events per append.
    batch: usize,
}

impl Appender {
    /// Appends events in batches; a failed append is retried with backoff until it
    /// succeeds. Only a shutdown stops the retries, and then it says what it dropped. A
    /// batch refused for good (an event too large, refused by the registry) is appended
    /// one event at a time: the event that can never be appended is logged, counted
    /// (`etl_events_dropped_total`) and dropped. An event appended twice is harmless: the
    /// projection is idempotent.
    async fn publish(&self, events: Vec<EventEnvelope>, cancel: &CancellationToken) -> Result<(), EtlError> {
        for chunk in events.chunks(self.batch.max(1)) {
            let Err(e) = self.append(chunk, cancel).await? else { continue };
            tracing::warn!(error = %e, events = chunk.len(), "append refused for good: appending one by one");
            for event in chunk {
                if let Err(e) = self.append(std::slice::from_ref(event), cancel).await? {
                    self.metrics.events_dropped.with_label_values(&[event.event.event_type()]).inc();
                    tracing::error!(error = %e, event_type = event.event.event_type(), key = %event.event.key(), "event dropped: it can never be appended");
                }
            }
        }
        Ok(())
    }

    /// Appends `events`, retrying with backoff while the failure may pass; the inner
    /// error is one that never will. Counts what was appended.
    ///
    /// # Errors
    /// [`EtlError::ShutdownBeforeAppend`] when `cancel` comes while retrying.
    async fn append(
        &self,
        events: &[EventEnvelope],
        cancel: &CancellationToken,
    ) -> Result<Result<(), slamon_events::Error>, EtlError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.publisher.publish(events).await {
                Ok(_) => {
                    for e in events {
                        self.metrics.events.with_label_values(&[e.event.event_type()]).inc();
                    }
                    return Ok(Ok(()));
                }
                Err(e) if !e.is_retryable() => return Ok(Err(e)),
                Err(e) => {
                    self.metrics.publish_retries.inc();
                    tracing::warn!(error = %e, events = events.len(), ?backoff, "append failed, retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => {
                            tracing::error!(events = events.len(), "shutting down with events that could not be appended");
                            return Err(EtlError::ShutdownBeforeAppend(events.len()));
                        }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// The metadata cycle (stationarity, autocorrelation and seasonality of every series) as
/// a task of its own beside the ETL's cycles ([`Etl::metadata_task`]).
pub struct MetadataTask {
    source: Arc<dyn MetricSource>,
    appender: Appender,
    config: EtlConfig,
    metrics: EtlMetrics,
    periods: Arc<std::sync::Mutex<HashMap<MetricId, Option<usize>>>>,
    ownership: Ownership,
}

impl MetadataTask {
    /// A cycle at once (the first forecasts learn the periods soon), then one every
    /// metadata period, each spread over half the period, until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let period = self.config.metadata_period;
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let spread = (!first).then_some(period / 2);
            first = false;
            let started = Instant::now();
            match self.cycle(&cancel, spread).await {
                Ok(report) => tracing::info!(?report, elapsed = ?started.elapsed(), "metadata cycle done"),
                Err(e) => tracing::warn!(error = %e, "metadata cycle failed"),
            }
            self.metrics.metadata_cycle_seconds.set(started.elapsed().as_secs_f64());
        }
    }

    /// One metadata cycle. With `spread`, the series start evenly over that span (a
    /// name of many series does not load the source at once) and the cycle stops at the
    /// metadata period, publishing what it computed and counting the cut-off
    /// (`etl_metadata_cycles_cut_off_total`); a shutdown stops it too. Events are
    /// published as they are computed, in batches.
    ///
    /// # Errors
    /// [`EtlError::ListSeries`] when the source cannot list the series; a shutdown while
    /// appending.
    pub async fn cycle(
        &self,
        cancel: &CancellationToken,
        spread: Option<Duration>,
    ) -> Result<MetadataReport, EtlError> {
        // the metadata of the series this instance owns: wait for the group to say which
        let owned = tokio::select! {
            owned = self.ownership.settled(self.config.metadata_period) => owned,
            _ = cancel.cancelled() => None,
        };
        let Some(owned) = owned else {
            tracing::warn!("the ETL's slots were not assigned within the metadata period: no metadata this cycle");
            return Ok(MetadataReport::default());
        };
        let at = (self.config.clock)();
        let mut series = self
            .source
            .series()
            .await
            .map_err(|e| {
                self.metrics.source_failures.inc();
                EtlError::ListSeries(e)
            })?
            .series;
        series.retain(|l| owned.owns(&l.id()));
        let window = self.config.metadata_window.as_millis() as i64;
        let nlags = self.config.acf_lags;
        let mut report = MetadataReport { series: series.len(), ..Default::default() };
        let gap = spread.map(|s| s / series.len().max(1) as u32).filter(|g| !g.is_zero());
        let deadline =
            tokio::time::sleep(if spread.is_some() { self.config.metadata_period } else { Duration::MAX / 4 });
        let source = self.source.clone();
        let mut results = futures::stream::iter(series)
            .then(|labels| async move {
                if let Some(gap) = gap {
                    tokio::time::sleep(gap).await;
                }
                labels
            })
            .map(|labels| {
                let source = source.clone();
                async move {
                    // the hourly input of every series: query_range, gaps interpolated
                    match analysis::input(source.as_ref(), &labels, at, window, false).await {
                        Ok(input) => analysis::metadata_event(labels.clone(), input.values, nlags, at)
                            .await
                            .map_err(|e| (labels, e)),
                        Err(e) => Err((labels, e)),
                    }
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .take_until(cancel.cancelled())
            .take_until(deadline)
            .boxed();
        let mut events = Vec::new();
        let mut done = 0;
        while let Some(r) = results.next().await {
            done += 1;
            match r {
                Ok((event, secs)) => {
                    self.metrics.executiontime_metadata.with_label_values(&[event.labels.name()]).set(secs);
                    let period = event.seasonality.as_ref().and_then(|s| s.add.as_ref().map(|f| f.period as usize));
                    self.periods.lock().expect("periods lock").insert(event.labels.id(), period);
                    report.computed += 1;
                    events.push(EventEnvelope::new(self.config.producer.clone(), Event::MetricMetadataComputed(event)));
                }
                Err((labels, e)) => {
                    report.failed += 1;
                    self.metrics.source_failures.inc();
                    tracing::warn!(series = %labels, error = %e, "no metadata this cycle");
                }
            }
            if events.len() >= self.appender.batch.max(1) {
                self.appender.publish(std::mem::take(&mut events), cancel).await?;
            }
        }
        drop(results);
        if done < report.series && !cancel.is_cancelled() {
            self.metrics.metadata_cut_off.inc();
            tracing::warn!(
                series = report.series,
                done,
                "metadata cycle stopped at its deadline (the metadata period)"
            );
        }
        self.appender.publish(events, cancel).await?;
        Ok(report)
    }
}
