//! `slamon`: the one binary. `slamon up` runs the whole system in one process on the
//! embedded event log and read models; the other subcommands run one service each.

mod config;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use slamon_domain::{EventLog, MetricSource, ReadModelStore};
use slamon_embedded::{EmbeddedLog, EmbeddedStore};
use slamon_etl::{Etl, EtlConfig, EtlMetrics, SlaClient};
use slamon_events::{EventCodec, Publisher};
use slamon_projector::{Projector, ProjectorConfig, ProjectorMetrics};
use slamon_prometheus::{DemoSource, MultiSource, PrometheusSource, SourceConfig};
use slamon_registry::{Compatibility, Registry};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use config::*;

const GRACE: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli.command))
}

fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Named tasks; the first to end (or fail) cancels the others.
struct Tasks {
    set: JoinSet<(&'static str, Result<()>)>,
    cancel: CancellationToken,
}

impl Tasks {
    fn new() -> Self {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested");
            c.cancel();
        });
        Self { set: JoinSet::new(), cancel }
    }

    fn spawn(&mut self, name: &'static str, task: impl std::future::Future<Output = Result<()>> + Send + 'static) {
        self.set.spawn(async move { (name, task.await) });
    }

    async fn wait(mut self) -> Result<()> {
        let mut failure = None;
        while let Some(joined) = self.set.join_next().await {
            let (name, result) = joined.context("task panicked")?;
            match result {
                Err(e) => {
                    tracing::error!(task = name, error = format!("{e:#}"), "task failed, stopping");
                    failure.get_or_insert(e.context(format!("{name} failed")));
                }
                Ok(()) if !self.cancel.is_cancelled() => tracing::warn!(task = name, "task ended, stopping"),
                Ok(()) => {}
            }
            self.cancel.cancel();
        }
        failure.map_or(Ok(()), Err)
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for the {what}"))
}

/// The URL a local client uses to reach a listener (0.0.0.0 → 127.0.0.1).
fn local_url(listener: &TcpListener) -> Result<String> {
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(format!("http://{addr}"))
}

fn open_embedded_log(dir: &Path) -> Result<Arc<EmbeddedLog>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
    Ok(Arc::new(
        EmbeddedLog::open(&dir.join("log.redb"))
            .context("opening the event log (is another slamon using this data dir?)")?,
    ))
}

fn open_embedded_store(dir: &Path) -> Result<Arc<EmbeddedStore>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
    Ok(Arc::new(
        EmbeddedStore::open(&dir.join("store.redb"))
            .context("opening the read models (is another slamon using this data dir?)")?,
    ))
}

fn kafka_config(args: &StorageArgs) -> slamon_kafka::KafkaConfig {
    slamon_kafka::KafkaConfig {
        bootstrap_servers: args.kafka_bootstrap_servers.clone(),
        timeout: args.kafka_timeout,
        instance_id: args.kafka_instance_id.clone().filter(|i| !i.is_empty()),
    }
}

/// The event log chosen by `SLAMON_EVENT_LOG`.
fn open_log(args: &StorageArgs) -> Result<Arc<dyn EventLog>> {
    Ok(match args.event_log.as_str() {
        "kafka" => Arc::new(slamon_kafka::KafkaLog::new(kafka_config(args)).context("kafka producer")?),
        _ => open_embedded_log(&args.data_dir)?,
    })
}

/// The read-model store chosen by `SLAMON_STORE`.
async fn open_store(args: &StorageArgs) -> Result<Arc<dyn ReadModelStore>> {
    Ok(match args.store.as_str() {
        "mongodb" => {
            let config = slamon_mongo::MongoConfig {
                uri: args.mongodb_uri.clone(),
                database: args.mongodb_database.clone(),
                timeout: args.db_timeout,
            };
            let store = slamon_mongo::MongoStore::connect(&config).await.context("mongodb client")?;
            if let Err(e) = store.ensure_indexes().await {
                tracing::warn!(error = %e, "cannot create the MongoDB indexes now; the store retries on every call");
            }
            Arc::new(store)
        }
        _ => open_embedded_store(&args.data_dir)?,
    })
}

fn open_registry(dir: &Path) -> Result<Arc<Registry>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let registry = Registry::open(&dir.join("registry.redb")).context("opening the schema registry")?;
    // the log is replayed from offset 0 forever: every new schema must read every old one
    if registry.compatibility(None).ok() != Some(Compatibility::BackwardTransitive) {
        registry
            .set_compatibility(None, Compatibility::BackwardTransitive)
            .context("configuring the schema registry")?;
    }
    Ok(Arc::new(registry))
}

fn source(args: &SourceArgs) -> Result<Arc<dyn MetricSource>> {
    let prometheus = match &args.prometheus_url {
        Some(url) if !url.trim().is_empty() => Some(Arc::new(
            PrometheusSource::new(SourceConfig {
                url: url.clone(),
                timeout: args.prometheus_timeout,
                series_lookback: args.series_lookback,
            })
            .context("prometheus client")?,
        ) as Arc<dyn MetricSource>),
        _ => None,
    };
    Ok(match (prometheus, args.demo) {
        (Some(p), false) => p,
        (Some(p), true) => Arc::new(MultiSource::new(vec![p, Arc::new(DemoSource::new())])),
        (None, _) => {
            tracing::info!("no PROMETHEUS_URL given: running the built-in demo source");
            Arc::new(DemoSource::new())
        }
    })
}

fn etl_config(args: &EtlArgs, producer: &str) -> EtlConfig {
    EtlConfig {
        period: args.etl_period,
        concurrency: args.etl_concurrency,
        removed_after: args.removed_after,
        producer: producer.to_owned(),
        metadata_period: args.metadata_period,
        metadata_window: args.metadata_window,
        forecast_window: args.forecast_window,
        acf_lags: args.acf_lags,
        ..EtlConfig::default()
    }
}

fn producer(service: &str) -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "local".into());
    format!("{service}@{host}")
}

fn sla_state(
    store: Arc<dyn ReadModelStore>,
    publisher: Publisher,
    storage: &StorageArgs,
    sla: &SlaArgs,
) -> slamon_sla_manager::AppState {
    slamon_sla_manager::AppState {
        store,
        publisher,
        set_size: sla.sla_set_size,
        db_timeout: storage.db_timeout,
        visibility_timeout: sla.put_visibility_timeout,
        absent_after: sla.absent_after,
        max_body_bytes: 1 << 20,
        producer: producer("sla-manager"),
        put_lock: Arc::default(),
    }
}

fn spawn_http(tasks: &mut Tasks, name: &'static str, listener: TcpListener, router: axum::Router) {
    let cancel = tasks.cancel.clone();
    tasks
        .spawn(name, async move { slamon_web::serve(name, listener, router, cancel, GRACE).await.map_err(Into::into) });
}

fn spawn_grpc(tasks: &mut Tasks, listener: TcpListener, store: Arc<dyn ReadModelStore>, db_timeout: Duration) {
    let cancel = tasks.cancel.clone();
    let service = slamon_sla_manager::grpc::SlaGrpc { store, db_timeout };
    tasks.spawn("sla-manager-grpc", async move {
        slamon_sla_manager::grpc::serve(listener, service, cancel).await.map_err(|e| anyhow::anyhow!("{e}"))
    });
}

fn spawn_projector(tasks: &mut Tasks, projector: Projector) {
    let cancel = tasks.cancel.clone();
    tasks.spawn("projector", async move {
        projector.run(cancel).await;
        Ok(())
    });
}

fn spawn_etl(tasks: &mut Tasks, etl: Etl) {
    let cancel = tasks.cancel.clone();
    tasks.spawn("etl", async move {
        etl.run(cancel).await;
        Ok(())
    });
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Up(args) => up(args).await,
        Command::Etl(args) => etl(args).await,
        Command::Projector(args) => projector(args).await,
        Command::QueryApi(args) => query_api(args).await,
        Command::SlaManager(args) => sla_manager(args).await,
        Command::Registry(args) => registry(args).await,
        Command::Init(args) => init(args).await,
        Command::Replay(args) => replay(args).await,
        Command::Healthcheck(args) => healthcheck(args).await,
    }
}

async fn healthcheck(args: HealthcheckCmd) -> Result<()> {
    let client = reqwest::Client::builder().timeout(args.timeout).build()?;
    let response = client
        .get(&args.url)
        .send()
        .await
        .with_context(|| format!("{} did not answer within {:?}", args.url, args.timeout))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{} answered {status}", args.url);
    println!("{} answered {status}", args.url);
    Ok(())
}

async fn up(mut args: UpArgs) -> Result<()> {
    // one process is the group's only member: static membership lets it take its
    // partitions back at once after a crash
    args.storage.kafka_instance_id.get_or_insert_with(|| "slamon-up".to_owned());
    let mut tasks = Tasks::new();
    let dir = &args.storage.data_dir;
    let log = open_log(&args.storage)?;
    let store = open_store(&args.storage).await?;
    let registry = open_registry(dir)?;
    let source = source(&args.source)?;

    // bind everything first: a port in use is a clear error before anything runs
    let registry_listener = bind(args.registry_listen, "schema registry").await?;
    let query_listener = bind(args.query.query_api_listen, "query API").await?;
    let sla_listener = bind(args.sla.sla_manager_listen, "SLA manager").await?;
    let grpc_listener = bind(args.sla.grpc_listen, "SLA manager gRPC").await?;
    let exporter_listener = bind(args.etl.exporter_listen, "exporter").await?;
    let registry_url = local_url(&registry_listener)?;
    let grpc_url = local_url(&grpc_listener)?;
    if args.storage.event_log == "kafka" {
        ensure_topics(&args.storage, 1, 1, None).await?;
    }

    let cancel = tasks.cancel.clone();
    tasks.spawn("schema-registry", async move {
        slamon_registry::serve_registry(registry, registry_listener, cancel).await.map_err(Into::into)
    });
    let codec = Arc::new(EventCodec::new(&registry_url, &args.storage.topic)?);
    codec.register_all().await.context("registering the event schemas")?;

    let metrics = prometheus::Registry::new();
    let consumer = log.consumer(&args.storage.projector_group, &args.storage.topic).await?;
    let projector = Projector::new(
        consumer,
        store.clone(),
        codec.clone(),
        log.clone(),
        ProjectorConfig { cache_capacity: args.projector.projector_cache, ..ProjectorConfig::default() },
        ProjectorMetrics::new(&metrics)?,
    )
    .resubscribing(log.clone(), &args.storage.projector_group, &args.storage.topic);
    spawn_projector(&mut tasks, projector);

    let publisher = Publisher::new(codec.clone(), log.clone());
    let store_dyn: Arc<dyn ReadModelStore> = store.clone();
    spawn_http(
        &mut tasks,
        "query-api",
        query_listener,
        slamon_query_api::router(slamon_query_api::AppState {
            store: store_dyn.clone(),
            db_timeout: args.storage.db_timeout,
        }),
    );
    spawn_http(
        &mut tasks,
        "sla-manager",
        sla_listener,
        slamon_sla_manager::router(sla_state(store_dyn.clone(), publisher.clone(), &args.storage, &args.sla)),
    );
    spawn_grpc(&mut tasks, grpc_listener, store_dyn, args.storage.db_timeout);

    let etl = Etl::new(
        source,
        publisher,
        SlaClient::new(&grpc_url).map_err(anyhow::Error::msg)?,
        etl_config(&args.etl, &producer("etl")),
        EtlMetrics::new(&metrics)?,
    );
    spawn_http(&mut tasks, "exporter", exporter_listener, slamon_etl::exporter(metrics).merge(slamon_web::livez()));
    spawn_etl(&mut tasks, etl);
    tracing::info!(data_dir = %dir.display(), "slamon is up");
    tasks.wait().await
}

async fn etl(args: EtlCmd) -> Result<()> {
    let mut tasks = Tasks::new();
    let log = open_log(&args.storage)?;
    let codec = Arc::new(EventCodec::new(&args.registry.schema_registry_url, &args.storage.topic)?);
    let metrics = prometheus::Registry::new();
    let exporter_listener = bind(args.etl.exporter_listen, "exporter").await?;
    let etl = Etl::new(
        source(&args.source)?,
        Publisher::new(codec, log),
        SlaClient::new(&args.sla_manager_grpc_url).map_err(anyhow::Error::msg)?,
        etl_config(&args.etl, &producer("etl")),
        EtlMetrics::new(&metrics)?,
    );
    spawn_http(&mut tasks, "exporter", exporter_listener, slamon_etl::exporter(metrics).merge(slamon_web::livez()));
    spawn_etl(&mut tasks, etl);
    tasks.wait().await
}

async fn projector(args: ProjectorCmd) -> Result<()> {
    let mut tasks = Tasks::new();
    let log = open_log(&args.storage)?;
    let store = open_store(&args.storage).await?;
    let codec = Arc::new(EventCodec::new(&args.registry.schema_registry_url, &args.storage.topic)?);
    let metrics = prometheus::Registry::new();
    let admin = bind(args.admin_listen, "projector admin endpoint").await?;
    let consumer = log.consumer(&args.storage.projector_group, &args.storage.topic).await?;
    let probe = store.clone();
    let db_timeout = args.storage.db_timeout;
    spawn_projector(
        &mut tasks,
        Projector::new(
            consumer,
            store,
            codec,
            log.clone(),
            ProjectorConfig { cache_capacity: args.projector.projector_cache, ..ProjectorConfig::default() },
            ProjectorMetrics::new(&metrics)?,
        )
        .resubscribing(log, &args.storage.projector_group, &args.storage.topic),
    );
    // ready when the read models answer: the projector can write
    let admin_router = slamon_etl::exporter(metrics).merge(slamon_web::health_routes(probe, db_timeout));
    spawn_http(&mut tasks, "projector-admin", admin, admin_router);
    tasks.wait().await
}

async fn query_api(args: QueryCmd) -> Result<()> {
    let mut tasks = Tasks::new();
    let store = open_store(&args.storage).await?;
    let listener = bind(args.query.query_api_listen, "query API").await?;
    spawn_http(
        &mut tasks,
        "query-api",
        listener,
        slamon_query_api::router(slamon_query_api::AppState { store, db_timeout: args.storage.db_timeout }),
    );
    tasks.wait().await
}

async fn sla_manager(args: SlaCmd) -> Result<()> {
    let mut tasks = Tasks::new();
    let log = open_log(&args.storage)?;
    let store = open_store(&args.storage).await?;
    let codec = Arc::new(EventCodec::new(&args.registry.schema_registry_url, &args.storage.topic)?);
    let rest = bind(args.sla.sla_manager_listen, "SLA manager").await?;
    let grpc = bind(args.sla.grpc_listen, "SLA manager gRPC").await?;
    let store: Arc<dyn ReadModelStore> = store;
    spawn_http(
        &mut tasks,
        "sla-manager",
        rest,
        slamon_sla_manager::router(sla_state(store.clone(), Publisher::new(codec, log), &args.storage, &args.sla)),
    );
    spawn_grpc(&mut tasks, grpc, store, args.storage.db_timeout);
    tasks.wait().await
}

async fn registry(args: RegistryCmd) -> Result<()> {
    let mut tasks = Tasks::new();
    let registry = open_registry(&args.storage.data_dir)?;
    let listener = bind(args.registry_listen, "schema registry").await?;
    let cancel = tasks.cancel.clone();
    tasks.spawn("schema-registry", async move {
        slamon_registry::serve_registry(registry, listener, cancel).await.map_err(Into::into)
    });
    tasks.wait().await
}

async fn init(args: InitCmd) -> Result<()> {
    if args.storage.event_log == "kafka" {
        ensure_topics(&args.storage, args.partitions, args.replication, args.min_insync_replicas).await?;
    } else {
        open_embedded_log(&args.storage.data_dir)?;
        tracing::info!(data_dir = %args.storage.data_dir.display(), "embedded event log ready");
    }
    let url = args.registry.schema_registry_url.trim_end_matches('/');
    let codec = EventCodec::new(url, &args.storage.topic)?;
    // the log is replayed from offset 0 forever: every new schema must read every old one
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build()?;
    for file in slamon_events::SCHEMAS.iter() {
        let subject = codec.subject(file.event_type);
        let res = http
            .put(format!("{url}/config/{subject}"))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .body(r#"{"compatibility":"BACKWARD_TRANSITIVE"}"#)
            .send()
            .await
            .with_context(|| format!("schema registry at {url} unreachable"))?;
        anyhow::ensure!(
            res.status().is_success(),
            "schema registry refused the compatibility of {subject}: {}",
            res.status()
        );
    }
    codec.register_all().await.with_context(|| format!("registering the event schemas at {url}"))?;
    tracing::info!(registry = url, schemas = slamon_events::SCHEMAS.len(), "schemas registered");
    Ok(())
}

/// Creates the topic and its dead-letter topic on Kafka unless they exist.
async fn ensure_topics(
    storage: &StorageArgs,
    partitions: i32,
    replication: i32,
    min_insync_replicas: Option<u32>,
) -> Result<()> {
    let config = kafka_config(storage);
    let min_isr = min_insync_replicas.map(|m| m.to_string());
    let entries: Vec<(&str, &str)> = min_isr.as_deref().map(|m| vec![("min.insync.replicas", m)]).unwrap_or_default();
    for topic in [storage.topic.clone(), slamon_domain::dlq_topic(&storage.topic)] {
        let created = slamon_kafka::ensure_topic(&config, &topic, partitions, replication, &entries)
            .await
            .with_context(|| format!("cannot create topic {topic} on {}", config.bootstrap_servers))?;
        tracing::info!(topic, created, partitions, replication, "topic ready");
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn replay(args: ReplayCmd) -> Result<()> {
    let log = open_log(&args.storage)?;
    let codec = EventCodec::new(&args.registry.schema_registry_url, &args.storage.topic)?;
    let started = std::time::Instant::now();
    if args.storage.store == "mongodb" {
        let config = slamon_mongo::MongoConfig {
            uri: args.storage.mongodb_uri.clone(),
            database: args.storage.mongodb_database.clone(),
            timeout: args.storage.db_timeout,
        };
        let live = slamon_mongo::MongoStore::connect(&config).await.context("mongodb client")?;
        let rebuilt = live.with_prefix("rebuild_");
        rebuilt.drop_collections().await.context("dropping an earlier rebuild")?;
        let report = slamon_replay::rebuild(log.as_ref(), &codec, &args.storage.topic, &rebuilt, args.batch).await?;
        println!("rebuilt in {:.1} s: {report}", started.elapsed().as_secs_f64());
        if args.dry_run {
            let differences = slamon_replay::diff(&live, &rebuilt).await?;
            rebuilt.drop_collections().await?;
            return report_diff(&differences);
        }
        live.swap_in(&rebuilt).await.context("swapping the rebuilt collections in")?;
        println!("swapped the rebuilt read models in ({})", config.database);
    } else {
        let dir = &args.storage.data_dir;
        let path = dir.join("store.rebuild.redb");
        let _ = std::fs::remove_file(&path);
        let report = {
            let rebuilt = EmbeddedStore::open(&path)?;
            slamon_replay::rebuild(log.as_ref(), &codec, &args.storage.topic, &rebuilt, args.batch).await?
        };
        println!("rebuilt in {:.1} s: {report}", started.elapsed().as_secs_f64());
        if args.dry_run {
            let differences = {
                let live = open_embedded_store(dir)?;
                let rebuilt = EmbeddedStore::open(&path)?;
                slamon_replay::diff(live.as_ref(), &rebuilt).await?
            };
            std::fs::remove_file(&path)?;
            return report_diff(&differences);
        }
        std::fs::rename(&path, dir.join("store.redb")).context("swapping the rebuilt read models in")?;
        println!("swapped the rebuilt read models in ({})", dir.join("store.redb").display());
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn report_diff(differences: &[String]) -> Result<()> {
    if differences.is_empty() {
        println!("dry run: the rebuilt read models equal the live ones");
        return Ok(());
    }
    println!("dry run: {} documents differ", differences.len());
    for line in differences.iter().take(50) {
        println!("  {line}");
    }
    std::process::exit(1);
}
