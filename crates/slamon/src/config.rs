//! Command-line and environment configuration: one documented name per setting
//! (`.env.example` lists them all).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 2m, 30s or 1h: {e}"))
}

#[derive(Debug, Parser)]
#[command(name = "slamon", version, about = "SLA monitor for applications that Prometheus already scrapes")]
pub struct Cli {
    /// Log format: `text` or `json`.
    #[arg(long, env = "SLAMON_LOG_FORMAT", default_value = "text", global = true, value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process: embedded event log and read models, schema registry,
    /// projector, ETL, query API, SLA manager (REST and gRPC) and exporter.
    Up(UpArgs),
    /// The ETL alone (statistics and SLA samples → events).
    Etl(EtlCmd),
    /// The projector alone (events → read models).
    Projector(ProjectorCmd),
    /// The query API alone (port 5000).
    QueryApi(QueryCmd),
    /// The SLA manager alone (REST 5001, gRPC 50052).
    SlaManager(SlaCmd),
    /// slamon's Confluent-compatible Schema Registry alone.
    Registry(RegistryCmd),
    /// Rebuilds the read models from offset 0 of the event log with the projector's
    /// projection into fresh collections, then swaps them in (or, with --dry-run, prints
    /// how they differ from the live ones).
    Replay(ReplayCmd),
    /// Creates the topics (`prometheusdata` and its dead-letter topic) if missing and
    /// registers the event schemas with BACKWARD_TRANSITIVE compatibility. Idempotent.
    Init(InitCmd),
    /// Exits 0 when a health endpoint answers 2xx in time, 1 otherwise: the container
    /// image's HEALTHCHECK (the runtime image has no curl).
    Healthcheck(HealthcheckCmd),
}

#[derive(Debug, Args, Clone)]
pub struct StorageArgs {
    /// Folder of the embedded event log, read models and registry.
    #[arg(long, env = "SLAMON_DATA_DIR", default_value = "slamon-data")]
    pub data_dir: PathBuf,
    /// Deadline of one read-model call (then `504 DB not available`).
    #[arg(long, env = "SLAMON_DB_TIMEOUT", default_value = "3s", value_parser = duration)]
    pub db_timeout: Duration,
    /// The topic of the events (its dead-letter topic is `<topic>.dlq`).
    #[arg(long, env = "SLAMON_TOPIC", default_value = "prometheusdata")]
    pub topic: String,
    /// The projector's consumer group.
    #[arg(long, env = "SLAMON_PROJECTOR_GROUP", default_value = "slamon-projector")]
    pub projector_group: String,
    /// Where events are kept: `embedded` (a log in the data dir) or `kafka`.
    #[arg(long, env = "SLAMON_EVENT_LOG", default_value = "embedded", value_parser = ["embedded", "kafka"])]
    pub event_log: String,
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
    /// Where the read models are kept: `embedded` (in the data dir) or `mongodb`.
    #[arg(long, env = "SLAMON_STORE", default_value = "embedded", value_parser = ["embedded", "mongodb"])]
    pub store: String,
    /// MongoDB connection string (with `--store mongodb`).
    #[arg(long, env = "MONGODB_URI", default_value = "mongodb://127.0.0.1:27017")]
    pub mongodb_uri: String,
    /// MongoDB database of the read models.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "slamon")]
    pub mongodb_database: String,
}

#[derive(Debug, Args, Clone)]
pub struct RegistryUrl {
    /// URL of the Confluent-compatible Schema Registry.
    #[arg(long, env = "SCHEMA_REGISTRY_URL", default_value = "http://127.0.0.1:8081")]
    pub schema_registry_url: String,
}

#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// Run the built-in demo source (also the default when no Prometheus URL is given).
    #[arg(long, env = "SLAMON_DEMO")]
    pub demo: bool,
    /// Base URL of the Prometheus to monitor (the source).
    #[arg(long, env = "PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Timeout of one request to Prometheus.
    #[arg(long, env = "SLAMON_PROMETHEUS_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub prometheus_timeout: Duration,
    /// A series is present when it has a sample in this lookback.
    #[arg(long, env = "SLAMON_SERIES_LOOKBACK", default_value = "10m", value_parser = duration)]
    pub series_lookback: Duration,
}

#[derive(Debug, Args, Clone)]
pub struct EtlArgs {
    /// Period of the statistics cycle.
    #[arg(long, env = "SLAMON_ETL_PERIOD", default_value = "2m", value_parser = duration)]
    pub etl_period: Duration,
    /// Metric names queried at once.
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
    /// History used to forecast an SLA metric (1-minute steps).
    #[arg(long, env = "SLAMON_FORECAST_WINDOW", default_value = "12h", value_parser = duration)]
    pub forecast_window: Duration,
    /// Autocorrelation lags computed for the metadata.
    #[arg(long, env = "SLAMON_ACF_LAGS", default_value_t = 40)]
    pub acf_lags: usize,
    /// Address of the ETL exporter (`/metrics`).
    #[arg(long, env = "SLAMON_EXPORTER_LISTEN", default_value = "0.0.0.0:8008")]
    pub exporter_listen: SocketAddr,
}

#[derive(Debug, Args, Clone)]
pub struct QueryArgs {
    /// Address of the query API.
    #[arg(long, env = "SLAMON_QUERY_API_LISTEN", default_value = "0.0.0.0:5000")]
    pub query_api_listen: SocketAddr,
}

#[derive(Debug, Args, Clone)]
pub struct SlaArgs {
    /// Address of the SLA manager's REST API.
    #[arg(long, env = "SLAMON_SLA_MANAGER_LISTEN", default_value = "0.0.0.0:5001")]
    pub sla_manager_listen: SocketAddr,
    /// Address of the SLA manager's gRPC API.
    #[arg(long, env = "SLAMON_GRPC_LISTEN", default_value = "0.0.0.0:50052")]
    pub grpc_listen: SocketAddr,
    /// Number of entries an SLA set must have.
    #[arg(long, env = "SLAMON_SLA_SET_SIZE", default_value_t = 5)]
    pub sla_set_size: usize,
    /// An SLA metric with no sample for this long is `absent`.
    #[arg(long, env = "SLAMON_ABSENT_AFTER", default_value = "10m", value_parser = duration)]
    pub absent_after: Duration,
    /// How long a PUT /slaset waits for the read model to show the new set.
    #[arg(long, env = "SLAMON_PUT_VISIBILITY_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub put_visibility_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub etl: EtlArgs,
    #[command(flatten)]
    pub query: QueryArgs,
    #[command(flatten)]
    pub sla: SlaArgs,
    /// Address of the embedded Schema Registry.
    #[arg(long, env = "SLAMON_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    pub registry_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct EtlCmd {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub registry: RegistryUrl,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub etl: EtlArgs,
    /// gRPC endpoint of the SLA manager.
    #[arg(long, env = "SLAMON_SLA_MANAGER_GRPC_URL", default_value = "http://127.0.0.1:50052")]
    pub sla_manager_grpc_url: String,
}

/// Settings of the projector (alone or in `up`).
#[derive(Debug, Args, Clone)]
pub struct ProjectorArgs {
    /// Documents the projector keeps of what it wrote, so it need not read them back
    /// (about 2 kB each; 0 turns the cache off).
    #[arg(long, env = "SLAMON_PROJECTOR_CACHE", default_value_t = 20_000)]
    pub projector_cache: usize,
}

#[derive(Debug, Args)]
pub struct ProjectorCmd {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub registry: RegistryUrl,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    /// Address of the projector's admin endpoint (`/metrics`, `/livez`, `/readyz`).
    #[arg(long, env = "SLAMON_PROJECTOR_ADMIN_LISTEN", default_value = "0.0.0.0:8010")]
    pub admin_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct QueryCmd {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub query: QueryArgs,
}

#[derive(Debug, Args)]
pub struct SlaCmd {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub registry: RegistryUrl,
    #[command(flatten)]
    pub sla: SlaArgs,
}

#[derive(Debug, Args)]
pub struct RegistryCmd {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address of the Schema Registry.
    #[arg(long, env = "SLAMON_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    pub registry_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct InitCmd {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub registry: RegistryUrl,
    /// Partitions of `prometheusdata` (4 in Kubernetes).
    #[arg(long, env = "SLAMON_TOPIC_PARTITIONS", default_value_t = 1)]
    pub partitions: i32,
    /// Replication factor of the topics (3 in Kubernetes).
    #[arg(long, env = "SLAMON_TOPIC_REPLICATION", default_value_t = 1)]
    pub replication: i32,
    /// `min.insync.replicas` of the topics (2 in Kubernetes; unset: the broker's default).
    #[arg(long, env = "SLAMON_TOPIC_MIN_INSYNC_REPLICAS")]
    pub min_insync_replicas: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ReplayCmd {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub registry: RegistryUrl,
    /// Rebuild and compare with the live read models, change nothing; exits 1 when they differ.
    #[arg(long)]
    pub dry_run: bool,
    /// Records per poll and per bulk write.
    #[arg(long, env = "SLAMON_REPLAY_BATCH", default_value_t = 1000)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct HealthcheckCmd {
    /// The endpoint to probe: `/readyz` of the query API or SLA manager, `/livez` of the
    /// projector's admin port, `/metrics` of the ETL exporter.
    #[arg(env = "SLAMON_HEALTHCHECK_URL", default_value = "http://127.0.0.1:5000/readyz")]
    pub url: String,
    /// Longest wait for the answer.
    #[arg(long, env = "SLAMON_HEALTHCHECK_TIMEOUT", default_value = "3s", value_parser = duration)]
    pub timeout: Duration,
}
