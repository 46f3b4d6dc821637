//! `slamon`: the one binary. `slamon up` runs the whole system in one process on the
//! embedded event log and read models; the other subcommands run one service each. Each
//! service composes itself (`Config` + `App::build(config, &Backends)` + `run(cancel)` in
//! its crate); this file only dispatches.

mod config;

use std::time::Duration;

use anyhow::{Context, Result};
use slamon_backends::{bind, local_url, Backends};
use slamon_web::Tasks;
use tokio_util::sync::CancellationToken;

use config::*;

/// Malloc arenas of glibc at most: by default it makes up to 8 per core, one per thread
/// that allocates, and each keeps what was freed in it; at 50 000 series that was a third
/// of `slamon up`'s peak RSS (BENCHMARKS.md). Two keep the allocations of the runtime's
/// threads from contending much.
const MALLOC_ARENAS: i32 = 2;

fn main() -> Result<()> {
    // before any thread starts; MALLOC_ARENA_MAX in the environment still wins
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of glibc's allocator, with no thread running yet
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
    let cli = config::parse();
    init_tracing(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(run(cli.command));
    // a setting that names a file that cannot be used is a bad setting: said once, exit 2
    if let Some(e) = result.as_ref().err().and_then(|e| e.downcast_ref::<slamon_backends::Error>()) {
        if e.is_bad_setting() {
            eprintln!("slamon cannot start: {e}");
            std::process::exit(2);
        }
    }
    result
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// A token cancelled on SIGINT or SIGTERM.
fn shutdown_token() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested");
        token.cancel();
    });
    cancel
}

async fn run(command: Command) -> Result<()> {
    let cancel = shutdown_token();
    let mut tasks = Tasks::new(cancel.clone());
    match command {
        Command::Up(args) => return up(*args, tasks).await,
        Command::Etl(a) => {
            let backends = Backends::open(a.storage, a.registry.schema_registry_url);
            tasks.spawn("etl", slamon_etl::App::build(&a.etl, &backends).await?.run(cancel));
        }
        Command::Projector(mut a) => {
            a.projector.admin_listen = Some(a.admin_listen);
            let backends = Backends::open(a.storage, a.registry.schema_registry_url);
            tasks.spawn("projector", slamon_projector::App::build(&a.projector, &backends).await?.run(cancel));
        }
        Command::QueryApi(mut a) => {
            a.query.access = a.auth.access()?;
            a.query.serving = a.serve.serving()?;
            // the query API reads only the read models: no registry is asked
            let backends = Backends::open(a.storage, local_url(([127, 0, 0, 1], 8081).into()));
            tasks.spawn("query-api", slamon_query_api::App::build(&a.query, &backends).await?.run(cancel));
        }
        Command::SlaManager(mut a) => {
            a.sla.access = a.auth.access()?;
            a.sla.serving = a.serve.serving()?;
            a.sla.allow_unauthenticated_writes = a.auth.allow_unauthenticated_writes;
            let backends = Backends::open(a.storage, a.registry.schema_registry_url);
            tasks.spawn("sla-manager", slamon_sla_manager::App::build(&a.sla, &backends).await?.run(cancel));
        }
        Command::Registry(a) => {
            let registry = slamon_backends::open_registry(&a.storage.data_dir)?;
            let listener = bind(a.registry_listen, "schema registry").await?;
            tasks.spawn("schema-registry", slamon_registry::serve_registry(registry, listener, cancel));
        }
        Command::Replay(a) => return replay(a, cancel).await,
        Command::Init(a) => return init(a).await,
        Command::Healthcheck(a) => return healthcheck(a).await,
        Command::Token(a) => return token(&a.file),
    }
    Ok(tasks.wait().await?)
}

async fn up(mut a: UpCmd, mut tasks: Tasks) -> Result<()> {
    // one process is the group's only member: static membership lets it take its
    // partitions back at once after a crash
    a.storage.kafka_instance_id.get_or_insert_with(|| "slamon-up".to_owned());
    let access = a.auth.access()?;
    (a.query.access, a.sla.access) = (access.clone(), access);
    let serving = a.serve.serving()?;
    (a.query.serving, a.sla.serving) = (serving.clone(), serving);
    a.sla.allow_unauthenticated_writes = a.auth.allow_unauthenticated_writes;
    // one process: the ETL reads the SLA set where the SLA manager's gRPC would
    a.etl.sla_set_from_store = true;
    let registry = slamon_backends::open_registry(&a.storage.data_dir)?;
    let registry_listener = bind(a.registry_listen, "schema registry").await?;
    let data_dir = a.storage.data_dir.clone();
    let backends = Backends::open(a.storage, local_url(registry_listener.local_addr()?));
    tasks.spawn("schema-registry", slamon_registry::serve_registry(registry, registry_listener, tasks.cancel()));
    backends.ensure_topics(1, 1, None, false).await?;
    backends.codec()?.register_all().await.context("registering the event schemas")?;

    // build everything first: a port in use is a clear error before anything runs
    let projector = slamon_projector::App::build(&a.projector, &backends).await?;
    let query = slamon_query_api::App::build(&a.query, &backends).await?;
    let sla = slamon_sla_manager::App::build(&a.sla, &backends).await?;
    let etl = slamon_etl::App::build(&a.etl, &backends).await?;
    tasks.spawn("projector", projector.run(tasks.cancel()));
    tasks.spawn("query-api", query.run(tasks.cancel()));
    tasks.spawn("sla-manager", sla.run(tasks.cancel()));
    tasks.spawn("etl", etl.run(tasks.cancel()));
    backends.register_data_dir_usage()?;
    if let Some(retention) = a.embedded_log_retention.0 {
        if let Some(retention) = backends.log_retention(retention).await? {
            let cancel = tasks.cancel();
            tasks.spawn("embedded-log-retention", async move {
                retention.run(cancel).await;
                Ok::<(), std::convert::Infallible>(())
            });
        }
    }
    tracing::info!(data_dir = %data_dir.display(), "slamon is up");
    Ok(tasks.wait().await?)
}

#[allow(clippy::print_stdout)]
async fn replay(a: ReplayCmd, cancel: CancellationToken) -> Result<()> {
    // the embedded default's schemas are in the data dir's registry, which only `slamon up`
    // serves: with `up` stopped (as a replay of it needs), this replay serves it itself
    let registry_url = match a.storage.event_log {
        slamon_backends::EventLogKind::Embedded => {
            // a mistyped or unset data dir is no empty log to replay: say so, create nothing
            let log = a.storage.data_dir.join("log.redb");
            anyhow::ensure!(
                log.is_file(),
                "no embedded event log at {} (is SLAMON_DATA_DIR right?): nothing to replay, nothing changed",
                log.display()
            );
            let registry = slamon_backends::open_registry(&a.storage.data_dir)?;
            let listener = bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), "schema registry").await?;
            let url = local_url(listener.local_addr()?);
            tokio::spawn(slamon_registry::serve_registry(registry, listener, cancel.clone()));
            url
        }
        slamon_backends::EventLogKind::Kafka => a.registry.schema_registry_url,
    };
    let backends = Backends::open(a.storage, registry_url);
    let started = std::time::Instant::now();
    let finished = slamon_replay::App::build(&a.replay, &backends).await?.run(cancel).await?;
    let elapsed = started.elapsed().as_secs_f64();
    match finished {
        slamon_replay::Finished::SwappedIn(report) => {
            println!("rebuilt in {elapsed:.1} s: {report}");
            println!("swapped the rebuilt read models in");
        }
        slamon_replay::Finished::Compared(report, differences) => {
            println!("rebuilt in {elapsed:.1} s: {report}");
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
    }
    Ok(())
}

/// `slamon token FILE`: a new random token in FILE (mode 0600) unless it holds one.
#[allow(clippy::print_stdout)]
fn token(file: &std::path::Path) -> Result<()> {
    if slamon_web::auth::first_token(file).is_ok() {
        println!("{} already holds a token; kept", file.display());
        return Ok(());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(file).with_context(|| format!("creating {}", file.display()))?;
    std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())
        .with_context(|| format!("writing {}", file.display()))?;
    println!("wrote a new API token to {}", file.display());
    Ok(())
}

async fn init(a: InitCmd) -> Result<()> {
    let backends = Backends::open(a.storage, a.registry.schema_registry_url);
    backends.ensure_topics(a.partitions, a.replication, a.min_insync_replicas.0, a.allow_limited_retention).await?;
    backends.log()?;
    let codec = backends.codec()?;
    let url = backends.registry_url().as_str().trim_end_matches('/');
    // the log is replayed from offset 0 forever: every new schema must read every old one
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build()?;
    for file in slamon_events::schemas::latest_all() {
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
    tracing::info!(registry = url, schemas = slamon_events::schemas::latest_all().count(), "schemas registered");
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn healthcheck(a: HealthcheckCmd) -> Result<()> {
    let client = reqwest::Client::builder().timeout(a.timeout).build()?;
    let response = client
        .get(a.url.clone())
        .send()
        .await
        .with_context(|| format!("{} did not answer within {:?}", a.url, a.timeout))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{} answered {status}", a.url);
    println!("{} answered {status}", a.url);
    Ok(())
}
