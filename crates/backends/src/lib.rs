//! What the services are composed from. [`Settings`] say, as typed values, where the
//! events and the read models are kept; [`Backends::open`] turns them (and the Schema
//! Registry's URL) into one handle that every service's `App::build` takes. Each backend
//! opens at its first use and is then shared, so a service opens only what it needs (the
//! query API never touches the event log) and `slamon up` opens each file once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{Args, ValueEnum};
use reqwest::Url;
use slamon_domain::{
    EventLog, PortError, ReadModelStore, RebuildableStore, DEFAULT_ETL_SLOTS, ETL_GROUP, PROJECTOR_GROUP, TOPIC,
};
use slamon_embedded::{EmbeddedLog, EmbeddedStore, LogRetention};
use slamon_events::{EventCodec, Publisher};
use slamon_registry::{Compatibility, Registry};
use tokio::net::TcpListener;

/// Why a backend or a listener could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data dir cannot be created.
    #[error("cannot create data dir {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    /// A backend refused to open.
    #[error("{what}: {source}")]
    Open { what: &'static str, source: PortError },
    /// A topic cannot be created (or Kafka cannot be reached).
    #[error("cannot create topic {topic} on {servers}: {source}")]
    Topic { topic: String, servers: String, source: PortError },
    /// A consumer group cannot be joined (or Kafka cannot be reached).
    #[error("cannot join consumer group {group} on {servers}: {source}")]
    Group { group: String, servers: String, source: PortError },
    /// The event codec cannot be built or the schemas cannot be registered.
    #[error("event codec: {0}")]
    Codec(#[from] slamon_events::Error),
    /// slamon's own Schema Registry cannot be opened.
    #[error("schema registry: {0}")]
    Registry(String),
    /// A token file cannot be used.
    #[error(transparent)]
    Auth(#[from] slamon_web::auth::TokenFileError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] slamon_web::listener::TlsError),
    /// Settings that do not fit together.
    #[error("{0}")]
    Settings(String),
    /// A secret file cannot be read.
    #[error("cannot read {what} from {path}: {source}")]
    Secret { what: &'static str, path: PathBuf, source: std::io::Error },
    /// A listen address is taken or not ours.
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
    /// A metric of a service cannot be registered (a name registered twice).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Error {
    /// Whether the error is a setting that cannot be used (a file it names, settings that
    /// do not fit together), as opposed to a backend that fails.
    pub fn is_bad_setting(&self) -> bool {
        matches!(self, Error::Auth(_) | Error::Tls(_) | Error::Settings(_) | Error::Secret { .. } | Error::Bind { .. })
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the events are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventLogKind {
    /// A durable log in the data dir (redb): one process.
    Embedded,
    /// Kafka (`KAFKA_BOOTSTRAP_SERVERS`).
    Kafka,
}

/// Where the read models are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// redb files in the data dir: one process.
    Embedded,
    /// MongoDB (`MONGODB_URI`).
    Mongodb,
}

/// A duration like `2m`, `30s` or `1h` (humantime).
///
/// # Errors
/// A message saying what was expected.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 2m, 30s or 1h: {e}"))
}

/// A retention: a duration of at least one second, or `off` (`None`: keep everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

/// A [`Retention`]: a duration of at least one second, or `off`.
///
/// # Errors
/// A message saying what was expected.
pub fn retention(s: &str) -> Result<Retention, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(Retention(None));
    }
    let d = duration(s.trim())?;
    if d < Duration::from_secs(1) {
        return Err(format!("`{s}` is shorter than a second; say `off` to keep every record"));
    }
    Ok(Retention(Some(d)))
}

/// An absolute `http` or `https` URL.
///
/// # Errors
/// A message saying what was expected.
pub fn http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("`{s}` is not a URL like http://host:port: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(format!("`{s}` is not an http(s) URL with a host, like http://host:port")),
    }
}

/// Where events and read models are kept (every service that reads or writes them).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Event log and read models")]
pub struct Settings {
    /// Folder of the embedded event log, read models and registry.
    #[arg(long, env = "SLAMON_DATA_DIR", default_value = "slamon-data")]
    pub data_dir: PathBuf,
    /// Deadline of one read-model call (then `504 DB not available`).
    #[arg(long, env = "SLAMON_DB_TIMEOUT", default_value = "3s", value_parser = duration)]
    pub db_timeout: Duration,
    /// The topic of the events (its dead-letter topic is `<topic>.dlq`).
    #[arg(long, env = "SLAMON_TOPIC", default_value = TOPIC)]
    pub topic: String,
    /// The projector's consumer group.
    #[arg(long, env = "SLAMON_PROJECTOR_GROUP", default_value = PROJECTOR_GROUP)]
    pub projector_group: String,
    /// The consumer group through which ETL instances share the series (with Kafka).
    #[arg(long, env = "SLAMON_ETL_GROUP", default_value = ETL_GROUP)]
    pub etl_group: String,
    /// Slots of the metric-id hash shared by the ETL instances: the partitions of the
    /// coordination topic `<topic>.etl-slots`, made by `init` (or by the first ETL), so
    /// at most this many ETL instances share the work. An existing topic keeps its count.
    #[arg(long, env = "SLAMON_ETL_SLOTS", default_value_t = DEFAULT_ETL_SLOTS,
        value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub etl_slots: u32,
    /// Where events are kept.
    #[arg(long, env = "SLAMON_EVENT_LOG", value_enum, default_value_t = EventLogKind::Embedded)]
    pub event_log: EventLogKind,
    /// Kafka brokers, `host:port[,host:port…]` (with `--event-log kafka`).
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    pub kafka_bootstrap_servers: String,
    /// A stable name of this process in its consumer groups (Kafka static membership, e.g.
    /// the pod name): after a crash the restarted process gets its partitions back at once.
    #[arg(long, env = "SLAMON_KAFKA_INSTANCE_ID")]
    pub kafka_instance_id: Option<String>,
    /// Bound of one Kafka produce or metadata call.
    #[arg(long, env = "SLAMON_KAFKA_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub kafka_timeout: Duration,
    /// A consumer that does not poll for this long leaves its group (Kafka's
    /// `max.poll.interval.ms`); a projector that cannot write a batch for 40 % of it gives
    /// the batch up and rejoins, so it is never dropped while it retries.
    #[arg(long, env = "SLAMON_KAFKA_MAX_POLL_INTERVAL", default_value = "5m", value_parser = duration)]
    pub kafka_max_poll_interval: Duration,
    /// Where the read models are kept.
    #[arg(long, env = "SLAMON_STORE", value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
    /// MongoDB connection string (with `--store mongodb`).
    #[arg(long, env = "MONGODB_URI", default_value = "mongodb://127.0.0.1:27017", hide_env_values = true)]
    pub mongodb_uri: String,
    /// MongoDB database of the read models.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "slamon")]
    pub mongodb_database: String,
    /// MongoDB user, authenticated with the password in `MONGODB_PASSWORD_FILE` against the
    /// URI's `authSource` (`admin` when it names none); unset: the URI's own credentials.
    #[arg(long, env = "MONGODB_USERNAME")]
    pub mongodb_username: Option<String>,
    /// File holding that user's password (a trailing newline is ignored): a Kubernetes
    /// Secret mounted as a file, so the password is written once and in no URI.
    #[arg(long, env = "MONGODB_PASSWORD_FILE")]
    pub mongodb_password_file: Option<PathBuf>,
}

impl Settings {
    /// The MongoDB user and the password read from its file, when a user is set.
    ///
    /// # Errors
    /// [`Error::Secret`] when the file cannot be read.
    fn mongodb_credential(&self) -> Result<Option<slamon_mongo::MongoCredential>> {
        let username = self.mongodb_username.as_deref().filter(|u| !u.is_empty());
        let path = given_path(&self.mongodb_password_file);
        let (username, path) = match (username, path) {
            (None, None) => return Ok(None),
            (Some(username), Some(path)) => (username, path),
            (Some(_), None) => {
                return Err(Error::Settings("MONGODB_USERNAME is set but MONGODB_PASSWORD_FILE is not".into()))
            }
            (None, Some(_)) => {
                return Err(Error::Settings("MONGODB_PASSWORD_FILE is set but MONGODB_USERNAME is not".into()))
            }
        };
        let password = read_password_file(&path).map_err(|source| Error::Secret {
            what: "the MongoDB password",
            path: path.clone(),
            source,
        })?;
        Ok(Some(slamon_mongo::MongoCredential { username: username.to_owned(), password }))
    }

    fn kafka(&self) -> slamon_kafka::KafkaConfig {
        slamon_kafka::KafkaConfig {
            bootstrap_servers: self.kafka_bootstrap_servers.clone(),
            timeout: self.kafka_timeout,
            instance_id: self.kafka_instance_id.clone().filter(|i| !i.is_empty()),
            max_poll_interval: self.kafka_max_poll_interval,
        }
    }
}

/// The Schema Registry the codec asks for schemas.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Schema Registry")]
pub struct RegistrySettings {
    /// URL of the Confluent-compatible Schema Registry.
    #[arg(long, env = "SCHEMA_REGISTRY_URL", default_value = "http://127.0.0.1:8081", value_parser = http_url)]
    pub schema_registry_url: Url,
}

/// A password file's content without its final line break (as `echo` and editors
/// leave one), every other byte kept.
///
/// # Errors
/// The file cannot be read.
pub fn read_password_file(path: &Path) -> std::io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// A path setting, unless unset or empty (`VAR=` in a `.env` file means unset).
pub fn given_path(path: &Option<PathBuf>) -> Option<PathBuf> {
    path.clone().filter(|p| !p.as_os_str().is_empty())
}

/// Who may use the APIs: bearer-token files (see [`slamon_web::auth`]).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "API access")]
pub struct AuthSettings {
    /// File of the tokens that may change the SLA set (one per line; read again when it
    /// changes). Unset: writes need no token, and the SLA manager's REST API listens on
    /// loopback only unless --allow-unauthenticated-writes.
    #[arg(long, env = "SLAMON_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// File of the tokens that may read (REST and gRPC); a write token reads too. Unset:
    /// reads need no token.
    #[arg(long, env = "SLAMON_READ_TOKEN_FILE")]
    pub read_token_file: Option<PathBuf>,
    /// Serve the SLA manager's REST API on a non-loopback address without a write token
    /// (anyone who reaches it can replace the SLA set).
    #[arg(long, env = "SLAMON_ALLOW_UNAUTHENTICATED_WRITES")]
    pub allow_unauthenticated_writes: bool,
}

impl AuthSettings {
    /// The token files, read.
    ///
    /// # Errors
    /// [`Error::Auth`] when a file cannot be read or holds no token.
    pub fn access(&self) -> Result<slamon_web::auth::Access> {
        let (write, read) = (given_path(&self.api_token_file), given_path(&self.read_token_file));
        Ok(slamon_web::auth::Access::from_files(write.as_deref(), read.as_deref())?)
    }
}

/// How the APIs (REST and gRPC) are served: TLS and the limits no client can exceed.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "API listeners")]
pub struct ServeSettings {
    /// PEM certificate chain of the APIs' TLS (REST and gRPC); with --tls-key-file.
    /// Read again when it changes. Unset: plain HTTP.
    #[arg(long, env = "SLAMON_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "SLAMON_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// A connection that has not sent a request's headers (or finished the TLS
    /// handshake) within this is closed.
    #[arg(long, env = "SLAMON_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub header_read_timeout: Duration,
    /// A request not answered within this (its body read included) gets 503.
    #[arg(long, env = "SLAMON_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub request_timeout: Duration,
    /// Requests served at once per listener; more get 503 with Retry-After.
    #[arg(long, env = "SLAMON_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,
}

impl ServeSettings {
    /// The TLS (when both files are given) and limits of the APIs.
    ///
    /// # Errors
    /// [`Error::Settings`] when only one file is given, [`Error::Tls`] when they cannot be
    /// used.
    pub fn serving(&self) -> Result<slamon_web::listener::Serving> {
        let tls = match (given_path(&self.tls_cert_file), given_path(&self.tls_key_file)) {
            (Some(cert), Some(key)) => Some(slamon_web::listener::Tls::from_files(&cert, &key)?),
            (None, None) => None,
            _ => return Err(Error::Settings("TLS needs both SLAMON_TLS_CERT_FILE and SLAMON_TLS_KEY_FILE".into())),
        };
        let limits = slamon_web::listener::Limits {
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            max_in_flight: self.max_in_flight,
        };
        Ok(slamon_web::listener::Serving { tls, limits })
    }
}

/// The address the SLA manager's REST API (the one that writes) listens on: `wanted`
/// when writes need a token or are allowed without one, otherwise the loopback address
/// of the same port, said in the log.
pub fn write_api_address(
    wanted: SocketAddr,
    access: &slamon_web::auth::Access,
    allow_unauthenticated: bool,
) -> SocketAddr {
    if access.protects_writes() || wanted.ip().is_loopback() {
        return wanted;
    }
    if allow_unauthenticated {
        tracing::warn!(
            %wanted,
            "the SLA manager serves writes without a token on a non-loopback address: anyone who reaches it can replace the SLA set"
        );
        return wanted;
    }
    let loopback = match wanted {
        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        SocketAddr::V6(_) if wanted.ip().is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    let local = SocketAddr::new(loopback, wanted.port());
    tracing::warn!(
        %wanted,
        listening = %local,
        "no API token (SLAMON_API_TOKEN_FILE): the SLA manager's REST API listens on loopback only; set a token file to serve others, or SLAMON_ALLOW_UNAUTHENTICATED_WRITES=true"
    );
    local
}

/// The read-model store, as the services and replay see it.
#[derive(Clone)]
struct StoreHandles {
    read: Arc<dyn ReadModelStore>,
    rebuild: Arc<dyn RebuildableStore>,
}

impl StoreHandles {
    fn of<S: RebuildableStore + 'static>(store: Arc<S>) -> Self {
        Self { read: store.clone(), rebuild: store }
    }
}

/// `slamon_store_undecodable_documents_total`: read at every scrape from the store.
struct UndecodableDocuments {
    store: Arc<dyn ReadModelStore>,
    counter: prometheus::IntCounter,
}

impl UndecodableDocuments {
    fn new(store: Arc<dyn ReadModelStore>) -> prometheus::Result<Self> {
        let counter = prometheus::IntCounter::new(
            "slamon_store_undecodable_documents_total",
            "Read-model documents that could not be decoded and were skipped (each is logged with its key)",
        )?;
        Ok(Self { store, counter })
    }
}

impl prometheus::core::Collector for UndecodableDocuments {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.counter.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let seen = self.store.undecodable_documents();
        self.counter.inc_by(seen.saturating_sub(self.counter.get()));
        self.counter.collect()
    }
}

/// The disk the data dir uses and has left: read at every scrape.
struct DataDirUsage {
    dir: PathBuf,
    files: prometheus::IntGaugeVec,
    available: prometheus::IntGauge,
}

impl DataDirUsage {
    fn new(dir: PathBuf) -> prometheus::Result<Self> {
        let files = prometheus::IntGaugeVec::new(
            prometheus::Opts::new("slamon_data_dir_bytes", "Size of each file of the data dir, in bytes"),
            &["file"],
        )?;
        let available = prometheus::IntGauge::new(
            "slamon_data_dir_available_bytes",
            "Bytes the data dir's file system has left for slamon (statvfs f_bavail × f_frsize)",
        )?;
        Ok(Self { dir, files, available })
    }
}

impl prometheus::core::Collector for DataDirUsage {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.files.desc().into_iter().chain(self.available.desc()).collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.files.reset();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_file() {
                    self.files
                        .with_label_values(&[entry.file_name().to_string_lossy().as_ref()])
                        .set(meta.len() as i64);
                }
            }
        }
        match rustix::fs::statvfs(&self.dir) {
            Ok(fs) => self.available.set(fs.f_bavail.saturating_mul(fs.f_frsize).min(i64::MAX as u64) as i64),
            Err(e) => tracing::debug!(error = %e, "cannot read the data dir's file system"),
        }
        self.files.collect().into_iter().chain(self.available.collect()).collect()
    }
}

/// One attempt to join the ETL's slot group ([`Backends::etl_slot_group_join`]).
pub type SlotGroupJoin = Box<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<slamon_kafka::SlotGroup>> + Send>>
        + Send
        + Sync,
>;

/// The opened backends, shared by the services of one process. Cheap to share by
/// reference; each backend opens at its first use.
pub struct Backends {
    settings: Settings,
    registry_url: Url,
    metrics: prometheus::Registry,
    log: OnceLock<Arc<dyn EventLog>>,
    /// The same log as `log` when it is the embedded one (its retention needs it).
    embedded_log: OnceLock<EmbeddedLog>,
    store: tokio::sync::OnceCell<StoreHandles>,
    codec: OnceLock<Arc<EventCodec>>,
}

impl Backends {
    /// The backends `settings` name, with the Schema Registry at `registry_url`. Opens
    /// nothing yet: see [`Backends::log`], [`Backends::store`], [`Backends::codec`].
    pub fn open(settings: Settings, registry_url: Url) -> Self {
        Self {
            settings,
            registry_url,
            metrics: prometheus::Registry::new(),
            log: OnceLock::new(),
            embedded_log: OnceLock::new(),
            store: tokio::sync::OnceCell::new(),
            codec: OnceLock::new(),
        }
    }

    /// The settings the backends were opened from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The Prometheus registry every service of this process registers its metrics in
    /// (served by the exporter or the projector's admin endpoint).
    pub fn metrics(&self) -> &prometheus::Registry {
        &self.metrics
    }

    /// The event log: Kafka's producer, or the embedded log in the data dir.
    ///
    /// # Errors
    /// [`Error::Open`] when the producer cannot be made or the log file is held by
    /// another process; [`Error::DataDir`].
    pub fn log(&self) -> Result<Arc<dyn EventLog>> {
        if let Some(log) = self.log.get() {
            return Ok(log.clone());
        }
        let log: Arc<dyn EventLog> = match self.settings.event_log {
            EventLogKind::Kafka => Arc::new(
                slamon_kafka::KafkaLog::new(self.settings.kafka())
                    .map_err(|source| Error::Open { what: "kafka producer", source })?,
            ),
            EventLogKind::Embedded => {
                let log =
                    EmbeddedLog::open(&data_dir(&self.settings.data_dir)?.join("log.redb")).map_err(|source| {
                        Error::Open { what: "opening the event log (is another slamon using this data dir?)", source }
                    })?;
                Arc::new(self.embedded_log.get_or_init(|| log).clone())
            }
        };
        Ok(self.log.get_or_init(|| log).clone())
    }

    /// The embedded log's retention ([`LogRetention`]): once its oldest record of the
    /// topic is older than `retention`, the read models the projector group committed
    /// become the log's snapshot and the records they cover are deleted. `None` with
    /// Kafka (the topic's own retention applies; `init` makes it unlimited).
    ///
    /// # Errors
    /// As [`Backends::log`] and [`Backends::store`]; [`Error::Metrics`] when its metrics
    /// are registered twice.
    pub async fn log_retention(&self, retention: Duration) -> Result<Option<LogRetention>> {
        self.log()?;
        let Some(log) = self.embedded_log.get() else { return Ok(None) };
        let store = self.store().await?;
        let s = &self.settings;
        Ok(Some(LogRetention::new(log.clone(), store, &s.topic, &s.projector_group, retention, &self.metrics)?))
    }

    /// Registers `slamon_data_dir_bytes{file}` (the size of each file of the data dir)
    /// and `slamon_data_dir_available_bytes` (what its file system has left for this
    /// user), read at every scrape.
    ///
    /// # Errors
    /// [`Error::Metrics`] when registered twice.
    pub fn register_data_dir_usage(&self) -> Result<()> {
        self.metrics.register(Box::new(DataDirUsage::new(self.settings.data_dir.clone())?))?;
        Ok(())
    }

    async fn stores(&self) -> Result<StoreHandles> {
        self.store
            .get_or_try_init(|| async {
                let handles = self.open_store().await?;
                self.metrics.register(Box::new(UndecodableDocuments::new(handles.read.clone())?))?;
                Ok(handles)
            })
            .await
            .cloned()
    }

    async fn open_store(&self) -> Result<StoreHandles> {
        Ok(match self.settings.store {
            StoreKind::Mongodb => {
                let config = slamon_mongo::MongoConfig {
                    uri: self.settings.mongodb_uri.clone(),
                    database: self.settings.mongodb_database.clone(),
                    timeout: self.settings.db_timeout,
                    credential: self.settings.mongodb_credential()?,
                };
                let store = slamon_mongo::MongoStore::connect(&config)
                    .await
                    .map_err(|source| Error::Open { what: "mongodb client", source })?;
                match store.check_server().await {
                    Ok(wire) => tracing::info!(wire_version = wire, "MongoDB server supported"),
                    // an old server is refused at start, not retried forever
                    Err(source @ PortError::Other(_)) => return Err(Error::Open { what: "mongodb server", source }),
                    Err(e) => tracing::warn!(error = %e, "cannot ask the MongoDB server its version now"),
                }
                if let Err(e) = store.ensure_indexes().await {
                    tracing::warn!(error = %e, "cannot create the MongoDB indexes now; the store retries on every call");
                }
                StoreHandles::of(Arc::new(store))
            }
            StoreKind::Embedded => StoreHandles::of(Arc::new(
                EmbeddedStore::open(&data_dir(&self.settings.data_dir)?.join("store.redb")).map_err(|source| {
                    Error::Open { what: "opening the read models (is another slamon using this data dir?)", source }
                })?,
            )),
        })
    }

    /// The read-model store: MongoDB, or the embedded store in the data dir.
    ///
    /// # Errors
    /// [`Error::Open`] when the client cannot be made or the file is held by another
    /// process; [`Error::DataDir`].
    pub async fn store(&self) -> Result<Arc<dyn ReadModelStore>> {
        Ok(self.stores().await?.read)
    }

    /// The same store as [`Backends::store`], seen by a rebuild (replay).
    ///
    /// # Errors
    /// As [`Backends::store`].
    pub async fn rebuildable_store(&self) -> Result<Arc<dyn RebuildableStore>> {
        Ok(self.stores().await?.rebuild)
    }

    /// The event codec (Avro, Confluent wire format) of the topic, asking the Schema
    /// Registry for schemas.
    ///
    /// # Errors
    /// [`Error::Codec`] when the client cannot be built.
    pub fn codec(&self) -> Result<Arc<EventCodec>> {
        if let Some(codec) = self.codec.get() {
            return Ok(codec.clone());
        }
        let url = self.registry_url.as_str().trim_end_matches('/');
        let codec = Arc::new(EventCodec::new(url, &self.settings.topic)?);
        Ok(self.codec.get_or_init(|| codec).clone())
    }

    /// The URL of the Schema Registry.
    pub fn registry_url(&self) -> &Url {
        &self.registry_url
    }

    /// Encodes and appends events: [`Backends::codec`] over [`Backends::log`].
    ///
    /// # Errors
    /// As [`Backends::codec`] and [`Backends::log`].
    pub fn publisher(&self) -> Result<Publisher> {
        Ok(Publisher::new(self.codec()?, self.log()?))
    }

    /// Creates the topic and its dead-letter topic on Kafka unless they exist (nothing
    /// to do for the embedded log): the topic with no retention and no compaction
    /// ([`slamon_kafka::KEEP_FOREVER`]), since replay starts at offset 0. An existing
    /// topic that would lose history is refused unless `allow_limited_retention` (then
    /// it is only said).
    ///
    /// # Errors
    /// [`Error::Topic`] when Kafka refuses or cannot be reached; [`Error::Settings`] when
    /// the topic would lose history and that is not allowed.
    pub async fn ensure_topics(
        &self,
        partitions: i32,
        replication: i32,
        min_insync_replicas: Option<u32>,
        allow_limited_retention: bool,
    ) -> Result<()> {
        if self.settings.event_log != EventLogKind::Kafka {
            return Ok(());
        }
        let config = self.settings.kafka();
        let min_isr = min_insync_replicas.map(|m| m.to_string());
        let entries: Vec<(&str, &str)> =
            min_isr.as_deref().map(|m| vec![("min.insync.replicas", m)]).unwrap_or_default();
        let topic = &self.settings.topic;
        // the event log keeps every record: replay starts at offset 0; the dead-letter
        // topic keeps the broker's retention
        let mut forever = entries.clone();
        forever.extend(slamon_kafka::KEEP_FOREVER);
        for (topic, entries) in [(topic.clone(), &forever), (slamon_domain::dlq_topic(topic), &entries)] {
            let created = slamon_kafka::ensure_topic(&config, &topic, partitions, replication, entries).await.map_err(
                |source| Error::Topic { topic: topic.clone(), servers: config.bootstrap_servers.clone(), source },
            )?;
            tracing::info!(topic, created, partitions, replication, "topic ready");
        }
        ensure_etl_slots_topic(&self.settings, &config, replication).await?;
        self.check_retention(&config, topic, allow_limited_retention).await
    }

    /// How this ETL instance joins the group that shares the series among ETL instances
    /// (SPEC §11): `None` with the embedded log (one process, every series). Each call of
    /// the function made is one attempt: it makes the coordination topic when `init` did
    /// not (replication 1) and joins the group.
    ///
    /// An attempt fails with [`Error::Topic`] or [`Error::Group`] when Kafka cannot be
    /// reached or refuses the topic or the group.
    pub fn etl_slot_group_join(&self) -> Option<SlotGroupJoin> {
        if self.settings.event_log != EventLogKind::Kafka {
            return None;
        }
        let settings = Arc::new(self.settings.clone());
        Some(Box::new(move || {
            let settings = settings.clone();
            Box::pin(async move {
                let config = settings.kafka();
                ensure_etl_slots_topic(&settings, &config, 1).await?;
                let topic = slamon_domain::etl_slots_topic(&settings.topic);
                let group =
                    slamon_kafka::SlotGroup::join(&config, &settings.etl_group, &topic).await.map_err(|source| {
                        Error::Group {
                            group: settings.etl_group.clone(),
                            servers: config.bootstrap_servers.clone(),
                            source,
                        }
                    })?;
                if group.slots() != settings.etl_slots {
                    tracing::warn!(
                        topic,
                        slots = group.slots(),
                        configured = settings.etl_slots,
                        "the ETL slots topic has another partition count than SLAMON_ETL_SLOTS: its own count is used"
                    );
                }
                Ok(group)
            })
        }))
    }

    /// Says, and refuses unless `allow`, when the event topic would lose history.
    async fn check_retention(&self, config: &slamon_kafka::KafkaConfig, topic: &str, allow: bool) -> Result<()> {
        let described = match slamon_kafka::topic_config(config, topic).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic, error = %e, "cannot read the topic's configuration to check its retention");
                return Ok(());
            }
        };
        let Some(loss) = slamon_kafka::history_loss(&described) else {
            tracing::info!(topic, "the topic keeps every record (no retention, no compaction)");
            return Ok(());
        };
        let message = format!(
            "topic {topic} does not keep every record ({loss}): `slamon replay` would rebuild the read models without the events it deleted, the SLA set among them. Set retention.ms=-1, retention.bytes=-1 and cleanup.policy=delete on it (kafka-configs.sh --alter --entity-type topics --entity-name {topic} --add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete), or accept the loss with SLAMON_TOPIC_ALLOW_LIMITED_RETENTION=true"
        );
        if allow {
            tracing::warn!(topic, %loss, "{message}");
            return Ok(());
        }
        Err(Error::Settings(message))
    }

    /// The name of a producer in event envelopes: `<service>@<HOSTNAME>`.
    pub fn producer(service: &str) -> String {
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "local".into());
        format!("{service}@{host}")
    }
}

/// Creates the ETL's coordination topic with [`Settings::etl_slots`] partitions
/// unless it exists (its own retention: nothing is written to it).
async fn ensure_etl_slots_topic(
    settings: &Settings,
    config: &slamon_kafka::KafkaConfig,
    replication: i32,
) -> Result<()> {
    let topic = slamon_domain::etl_slots_topic(&settings.topic);
    let slots = settings.etl_slots;
    let created = slamon_kafka::ensure_topic(config, &topic, slots as i32, replication, &[])
        .await
        .map_err(|source| Error::Topic { topic: topic.clone(), servers: config.bootstrap_servers.clone(), source })?;
    tracing::info!(topic, created, slots, replication, "ETL slots topic ready");
    Ok(())
}

fn data_dir(dir: &Path) -> Result<&Path> {
    std::fs::create_dir_all(dir).map_err(|source| Error::DataDir { path: dir.to_owned(), source })?;
    Ok(dir)
}

/// slamon's own Schema Registry in `<dir>/registry.redb`, with BACKWARD_TRANSITIVE
/// compatibility (the log is replayed from offset 0 forever: every new schema must read
/// every old one).
///
/// # Errors
/// [`Error::DataDir`], or [`Error::Registry`] when the file cannot be opened.
pub fn open_registry(dir: &Path) -> Result<Arc<Registry>> {
    let registry = Registry::open(&data_dir(dir)?.join("registry.redb")).map_err(|e| {
        let e = e.to_string();
        if e.contains("already open") {
            Error::Settings(format!(
                "the data dir {} is in use by another slamon process (with the embedded log and store, one process owns it)",
                dir.display()
            ))
        } else {
            Error::Registry(e)
        }
    })?;
    if registry.compatibility(None).ok() != Some(Compatibility::BackwardTransitive) {
        registry
            .set_compatibility(None, Compatibility::BackwardTransitive)
            .map_err(|e| Error::Registry(format!("configuring the compatibility: {e}")))?;
    }
    Ok(Arc::new(registry))
}

/// Binds a listener: a port in use is a clear error before anything runs.
///
/// `[::]:PORT` listens dual-stack (IPv6 and IPv4, `IPV6_V6ONLY` off whatever the host's
/// `net.ipv6.bindv6only` says), so probes reach it on IPv6-only and IPv4-only networks;
/// on a host without IPv6 it falls back to `0.0.0.0:PORT` and says so.
///
/// # Errors
/// [`Error::Bind`].
pub async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener> {
    let bound = match listen(addr) {
        Err(e) if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED && !refused_by_port(&e) => {
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            tracing::warn!(%addr, error = %e, fallback = %v4, what, "no IPv6 here: listening on IPv4 only");
            listen(v4)
        }
        r => r,
    };
    bound.map_err(|source| Error::Bind { what, addr, source })
}

/// A port taken or privileged: the same on IPv4, no reason to fall back.
fn refused_by_port(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied)
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    // as std and tokio do on Unix: a restarted service need not wait out TIME_WAIT
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// The URL a local client uses to reach a listener (0.0.0.0 → 127.0.0.1).
pub fn local_url(addr: SocketAddr) -> Url {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Url::parse(&format!("http://{addr}")).expect("a socket address makes a URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_write_token_the_write_api_moves_to_loopback_unless_allowed() {
        let dir = std::env::temp_dir().join(format!("slamon-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(&file, "t\n").unwrap();
        let protected = slamon_web::auth::Access::from_files(Some(&file), None).unwrap();
        let open = slamon_web::auth::Access::open();
        let addr = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert_eq!(write_api_address(addr("[::]:5001"), &open, false), addr("127.0.0.1:5001"));
        assert_eq!(write_api_address(addr("0.0.0.0:5001"), &open, false), addr("127.0.0.1:5001"));
        assert_eq!(write_api_address(addr("10.1.2.3:5001"), &open, false), addr("127.0.0.1:5001"));
        assert_eq!(write_api_address(addr("[fd00::1]:5001"), &open, false), addr("[::1]:5001"));
        assert_eq!(write_api_address(addr("127.0.0.1:5001"), &open, false), addr("127.0.0.1:5001"));
        assert_eq!(write_api_address(addr("[::]:5001"), &open, true), addr("[::]:5001"));
        assert_eq!(write_api_address(addr("[::]:5001"), &protected, false), addr("[::]:5001"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_unspecified_ipv6_address_listens_on_both_families() {
        let listener = bind("[::]:0".parse().unwrap(), "test").await.unwrap();
        let local = listener.local_addr().unwrap();
        let port = local.port();
        let accept = tokio::spawn(async move {
            for _ in 0..2 {
                let _ = listener.accept().await;
            }
        });
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("IPv4 reaches [::]");
        if local.is_ipv6() {
            tokio::net::TcpStream::connect(("::1", port)).await.expect("IPv6 reaches [::]");
        }
        accept.abort();
    }
}
