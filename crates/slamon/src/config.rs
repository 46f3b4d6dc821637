//! Command-line and environment configuration: one documented name per setting
//! (`.env.example` lists them all). Each service owns its settings (`Config` in its
//! crate); this file only puts them under subcommands. A bad setting prints every error
//! found, not only the first, and exits 2.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use reqwest::Url;
use slamon_backends::{duration, http_url, AuthSettings, RegistrySettings, ServeSettings, Settings};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (local runs).
    Text,
    /// One JSON object per line (containers).
    Json,
}

#[derive(Debug, Parser)]
#[command(name = "slamon", version, about = "SLA monitor for applications that Prometheus already scrapes")]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "SLAMON_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process: embedded event log and read models, schema registry,
    /// projector, ETL, query API, SLA manager (REST and gRPC) and exporter.
    Up(Box<UpCmd>),
    /// The ETL alone (statistics and SLA samples → events).
    Etl(Box<EtlCmd>),
    /// The projector alone (events → read models).
    Projector(ProjectorCmd),
    /// The query API alone (port 5000).
    QueryApi(QueryCmd),
    /// The SLA manager alone (REST 5001, gRPC 50052).
    SlaManager(Box<SlaCmd>),
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
    /// Writes a new random API token (256 bits, hex) to FILE, readable by its owner
    /// only, unless FILE already holds a token; prints the file's path, never the token.
    Token(TokenCmd),
}

#[derive(Debug, Args)]
pub struct UpCmd {
    #[command(flatten)]
    pub storage: Settings,
    #[command(flatten)]
    pub projector: slamon_projector::Config,
    #[command(flatten)]
    pub etl: slamon_etl::Config,
    #[command(flatten)]
    pub query: slamon_query_api::Config,
    #[command(flatten)]
    pub sla: slamon_sla_manager::Config,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub serve: ServeSettings,
    /// Address of the embedded Schema Registry.
    #[arg(long, env = "SLAMON_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    pub registry_listen: SocketAddr,
    /// Once the embedded log's oldest record is older than this, the read models as
    /// projected so far become the log's snapshot and the records they cover are deleted
    /// (a replay starts from the snapshot); `off` keeps every record. Kafka: unused.
    #[arg(long, env = "SLAMON_EMBEDDED_LOG_RETENTION", default_value = "24h", value_parser = slamon_backends::retention)]
    pub embedded_log_retention: slamon_backends::Retention,
}

#[derive(Debug, Args)]
pub struct EtlCmd {
    #[command(flatten)]
    pub storage: Settings,
    #[command(flatten)]
    pub registry: RegistrySettings,
    #[command(flatten)]
    pub etl: slamon_etl::Config,
}

#[derive(Debug, Args)]
pub struct ProjectorCmd {
    #[command(flatten)]
    pub storage: Settings,
    #[command(flatten)]
    pub registry: RegistrySettings,
    #[command(flatten)]
    pub projector: slamon_projector::Config,
    /// Address of the projector's admin endpoint (`/metrics`, `/livez`, `/readyz`).
    #[arg(long, env = "SLAMON_PROJECTOR_ADMIN_LISTEN", default_value = "[::]:8010")]
    pub admin_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct QueryCmd {
    #[command(flatten)]
    pub storage: Settings,
    #[command(flatten)]
    pub query: slamon_query_api::Config,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub serve: ServeSettings,
}

#[derive(Debug, Args)]
pub struct SlaCmd {
    #[command(flatten)]
    pub storage: Settings,
    #[command(flatten)]
    pub registry: RegistrySettings,
    #[command(flatten)]
    pub sla: slamon_sla_manager::Config,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub serve: ServeSettings,
}

#[derive(Debug, Args)]
pub struct RegistryCmd {
    #[command(flatten)]
    pub storage: Settings,
    /// Address of the Schema Registry.
    #[arg(long, env = "SLAMON_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    pub registry_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct InitCmd {
    #[command(flatten)]
    pub storage: Settings,
    #[command(flatten)]
    pub registry: RegistrySettings,
    /// Partitions of `prometheusdata` (4 in Kubernetes).
    #[arg(long, env = "SLAMON_TOPIC_PARTITIONS", default_value_t = 1)]
    pub partitions: i32,
    /// Replication factor of the topics (3 in Kubernetes).
    #[arg(long, env = "SLAMON_TOPIC_REPLICATION", default_value_t = 1)]
    pub replication: i32,
    /// `min.insync.replicas` of the topics (2 in Kubernetes; unset or empty: the broker's
    /// default).
    #[arg(long, env = "SLAMON_TOPIC_MIN_INSYNC_REPLICAS", value_parser = unset_or_count, default_value = "")]
    pub min_insync_replicas: UnsetOr,
    /// Accept an existing topic that deletes or compacts records (replay then rebuilds
    /// without them); otherwise init refuses it and says how to fix it.
    #[arg(long, env = "SLAMON_TOPIC_ALLOW_LIMITED_RETENTION")]
    pub allow_limited_retention: bool,
}

/// A count that may be left unset; an empty value, as `.env` files write one, is unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnsetOr(pub Option<u32>);

fn unset_or_count(s: &str) -> Result<UnsetOr, String> {
    match s.trim() {
        "" => Ok(UnsetOr(None)),
        n => n.parse().map(|n| UnsetOr(Some(n))).map_err(|e| format!("not a count: {e}")),
    }
}

#[derive(Debug, Args)]
pub struct ReplayCmd {
    #[command(flatten)]
    pub storage: Settings,
    #[command(flatten)]
    pub registry: RegistrySettings,
    #[command(flatten)]
    pub replay: slamon_replay::Config,
}

#[derive(Debug, Args)]
pub struct TokenCmd {
    /// The token file to create (e.g. the value of SLAMON_API_TOKEN_FILE).
    pub file: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct HealthcheckCmd {
    /// The endpoint to probe: `/readyz` of the query API or SLA manager, `/livez` of the
    /// projector's admin port, `/metrics` of the ETL exporter.
    #[arg(env = "SLAMON_HEALTHCHECK_URL", default_value = "http://127.0.0.1:5000/readyz", value_parser = http_url)]
    pub url: Url,
    /// Longest wait for the answer.
    #[arg(long, env = "SLAMON_HEALTHCHECK_TIMEOUT", default_value = "3s", value_parser = duration)]
    pub timeout: Duration,
}

/// Parses the command line and the environment. On a bad setting it prints every bad
/// setting of the chosen subcommand (clap stops at the first) and exits 2.
pub fn parse() -> Cli {
    let args: Vec<OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e)
            if matches!(e.kind(), clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue) =>
        {
            let first = e.to_string();
            let mut errors = env_errors(&args, &first);
            errors.insert(0, first);
            eprintln!("slamon cannot start: {} bad setting(s)", errors.len());
            for error in errors.iter().map(|e| hide_secret_values(e)) {
                let lines = error.lines().filter(|l| !l.is_empty() && !l.starts_with("For more information"));
                eprintln!("{}", lines.collect::<Vec<_>>().join("\n"));
            }
            eprintln!("see `slamon help` for every setting");
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    }
}

/// `error` with the values of the settings whose values are hidden (URLs that may hold
/// a password, header values) replaced by `<hidden>`, from the environment or the
/// command line: an error message never shows a credential.
fn hide_secret_values(error: &str) -> String {
    let mut root = Cli::command();
    root.build();
    let mut hidden: Vec<String> = Vec::new();
    let mut commands = vec![&root];
    while let Some(c) = commands.pop() {
        for arg in c.get_arguments().filter(|a| a.is_hide_env_values_set()) {
            hidden.extend(arg.get_env().and_then(std::env::var_os).map(|v| v.to_string_lossy().into_owned()));
            if let Some(long) = arg.get_long() {
                let words: Vec<String> = std::env::args().collect();
                let flag = format!("--{long}");
                for (i, w) in words.iter().enumerate() {
                    if w == &flag {
                        hidden.extend(words.get(i + 1).cloned());
                    } else if let Some(v) = w.strip_prefix(&format!("{flag}=")) {
                        hidden.push(v.to_owned());
                    }
                }
            }
        }
        commands.extend(c.get_subcommands());
    }
    hidden.retain(|v| !v.is_empty());
    hidden.iter().fold(error.to_owned(), |e, v| e.replace(v.as_str(), "<hidden>"))
}

/// The errors of every setting of the chosen subcommand that comes from an environment
/// variable (and is not overridden on the command line), each parsed on its own, but
/// the one `reported` already names.
fn env_errors(args: &[OsString], reported: &str) -> Vec<String> {
    let mut root = Cli::command();
    root.build();
    let words: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let Some(sub) = root.get_subcommands().find(|s| words.iter().any(|w| w == s.get_name())) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for arg in sub.get_arguments().chain(root.get_arguments()) {
        let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else { continue };
        let flag = format!("--{long}");
        let on_command_line = words.iter().any(|w| w == &flag || w.starts_with(&format!("{flag}=")));
        if reported.contains(&format!("'{flag} ")) || reported.contains(&format!("'{flag}'")) {
            continue;
        }
        let Some(value) = std::env::var_os(var).filter(|_| !on_command_line) else { continue };
        // a command of this one setting reads it from the environment and parses it
        let probe = clap::Command::new("slamon").arg(arg.clone().required(false));
        if let Err(e) = probe.try_get_matches_from(["slamon"]) {
            let reason = e.to_string();
            let reason = reason.lines().next().unwrap_or_default().trim_start_matches("error: ");
            let shown = if arg.is_hide_env_values_set() { "value hidden".into() } else { value.to_string_lossy() };
            errors.push(format!("error: {} ({shown}): {reason}", var.to_string_lossy()));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_refused_at_start() {
        for (args, what) in [
            (&["slamon", "up", "--prometheus-url", "not-a-url"][..], "a URL"),
            (&["slamon", "up", "--query-api-listen", "nope"][..], "an address"),
            (&["slamon", "up", "--event-log", "foo"][..], "an event log"),
            (&["slamon", "up", "--etl-period", "often"][..], "a duration"),
            (&["slamon", "etl", "--schema-registry-url", "ftp://x"][..], "an http URL"),
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{what}: {args:?} was accepted");
        }
        let cli = Cli::try_parse_from(["slamon", "up", "--prometheus-url", "http://p:9090", "--store", "mongodb"])
            .expect("good values");
        let Command::Up(up) = cli.command else { panic!("up") };
        assert_eq!(up.storage.store, slamon_backends::StoreKind::Mongodb);
        assert_eq!(
            up.etl.source.prometheus_url.and_then(|u| u.0).map(|u| u.to_string()),
            Some("http://p:9090/".into())
        );
    }
}
