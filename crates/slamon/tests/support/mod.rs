//! Helpers shared by the binary's integration tests: processes, ports, the tools they
//! need, waiting, the compose file as `docker-compose config` resolves it, and what the
//! binary reads.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn reachable(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(bin)).find(|p| p.is_file()))
}

/// Where `scripts/services.sh install` keeps the tansu broker.
pub fn tansu() -> PathBuf {
    let tools = std::env::var("SLAMON_TOOLS_DIR").unwrap_or_else(|_| "/opt/slamon-tools".into());
    Path::new(&tools).join("tansu/bin/tansu")
}

/// A tansu broker on 127.0.0.1:`port` with its sqlite storage in `dir` (tansu takes
/// the sqlite path relative to its working directory); stdout discarded.
pub fn tansu_broker(port: u16, dir: &Path) -> Command {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(tansu());
    cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "sqlite://tansu.db"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null());
    cmd
}

/// A SecantusDB (MongoDB wire) server on 127.0.0.1:`port` keeping its data in `dir`;
/// stdout discarded.
pub fn secantus(port: u16, dir: &Path) -> Command {
    let mut cmd = Command::new("secantusd-py");
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--storage-path"])
        .arg(dir)
        .stdout(std::process::Stdio::null());
    cmd
}

/// Polls `f` until it gives a value, failing the test after `limit`.
pub async fn eventually<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// True when every tool is there; otherwise false (the test skips) locally, a failure
/// with CI=true.
pub fn tools(names: &[&str]) -> bool {
    let missing: Vec<&str> = names.iter().copied().filter(|t| which(t).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: {missing:?} required (scripts/services.sh install)"
    );
    eprintln!("SKIPPED: {missing:?} missing (scripts/services.sh install)");
    false
}

/// Runs a command and returns its stdout, failing the test with its stderr otherwise.
pub fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every YAML document of a text, as JSON values.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// compose.yaml as `docker-compose config` resolves it (anchors merged, `${VAR:-default}`
/// interpolated) with only `vars` set in the environment.
pub fn compose_config(vars: &[(&str, &str)]) -> Value {
    let text = output(
        Command::new("docker-compose")
            .args(["-f", "compose.yaml", "config"])
            .current_dir(root())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().copied()),
    );
    yaml_documents(&text).remove(0)
}

/// The environment variables a subcommand reads: name → has a default.
pub fn env_of(subcommand: &str) -> BTreeMap<String, bool> {
    let help = output(Command::new(env!("CARGO_BIN_EXE_slamon")).args([subcommand, "--help"]));
    // one block per option or argument: its header line (`  -x, --name`, `      --name`,
    // `  [URL]`) and its description
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if (trimmed.starts_with('-') && indent <= 6) || (indent == 2 && trimmed.starts_with(['[', '<'])) {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    let mut vars = BTreeMap::new();
    for b in blocks {
        if let Some(at) = b.find("[env: ") {
            // `[env: NAME=value]`, or `[env: NAME]` when its value is hidden
            let name = b[at + 6..].split(['=', ']']).next().unwrap().to_owned();
            vars.insert(name, b.contains("[default: "));
        }
    }
    vars
}

/// Every subcommand of the binary.
pub const SUBCOMMANDS: [&str; 10] =
    ["up", "etl", "projector", "query-api", "sla-manager", "registry", "init", "replay", "healthcheck", "token"];

/// `slamon ARGS --help` succeeds: ARGS name a real subcommand with options it accepts.
pub fn assert_real_command(args: &[String]) {
    let out = Command::new(env!("CARGO_BIN_EXE_slamon")).args(args).arg("--help").output().unwrap();
    assert!(
        out.status.success(),
        "`slamon {}` is not a command of the binary: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The names `.env.example` documents.
pub fn documented_vars() -> Vec<String> {
    std::fs::read_to_string(root().join(".env.example"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            (!l.starts_with('#') && l.contains('=')).then(|| l.split('=').next().unwrap().trim().to_owned())
        })
        .collect()
}

/// A `slamon up` of a test, its URLs.
pub struct Slamon {
    pub proc: Proc,
    pub query: String,
    pub sla: String,
    pub grpc: String,
    pub exporter: String,
}

/// `slamon up` against `prometheus_url` on free ports, logging to `log`, with a 3 s ETL
/// period and `extra` settings (a backend, a set size) on top.
pub fn start_slamon(data_dir: &Path, prometheus_url: &str, log: &Path, extra: &[(String, String)]) -> Slamon {
    let (q, s, g, e, r) = (free_port(), free_port(), free_port(), free_port(), free_port());
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_slamon"))
        .arg("up")
        .env("PROMETHEUS_URL", prometheus_url)
        .env("SLAMON_DATA_DIR", data_dir)
        .env("SLAMON_QUERY_API_LISTEN", format!("127.0.0.1:{q}"))
        .env("SLAMON_SLA_MANAGER_LISTEN", format!("127.0.0.1:{s}"))
        .env("SLAMON_GRPC_LISTEN", format!("127.0.0.1:{g}"))
        .env("SLAMON_EXPORTER_LISTEN", format!("127.0.0.1:{e}"))
        .env("SLAMON_REGISTRY_LISTEN", format!("127.0.0.1:{r}"))
        .env("SLAMON_ETL_PERIOD", "3s")
        .env("SLAMON_ABSENT_AFTER", "2h")
        .env("SLAMON_SERIES_LOOKBACK", "2h")
        .env("SLAMON_PUT_VISIBILITY_TIMEOUT", "40s")
        .envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap();
    Slamon {
        proc: Proc(child),
        query: format!("http://127.0.0.1:{q}"),
        sla: format!("http://127.0.0.1:{s}"),
        grpc: format!("http://127.0.0.1:{g}"),
        exporter: format!("http://127.0.0.1:{e}"),
    }
}

/// The series `slamon up --demo` (`s`) lists, once there are at least five.
pub async fn demo_series(s: &Slamon) -> Value {
    eventually("the demo series", Duration::from_secs(60), async || {
        get(&format!("{}/metrics", s.query))
            .await
            .filter(|(c, b)| *c == 200 && b.as_array().is_some_and(|a| a.len() >= 5))
    })
    .await
    .1
}

/// A metric of the exporter at `exporter`, summed over its label sets.
pub async fn counter(exporter: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{exporter}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Status and JSON body of a GET (`null` when the body is not JSON); `None` when nothing answers.
pub async fn get(url: &str) -> Option<(u16, Value)> {
    let res = reqwest::get(url).await.ok()?;
    let status = res.status().as_u16();
    Some((status, res.json().await.unwrap_or(Value::Null)))
}

/// Debian's `prometheus` on a free port with `config` (YAML text) and the TSDB at `tsdb`,
/// plus `args`; ready when this returns. Its URL, and the process.
pub async fn start_prometheus(bin: &Path, dir: &Path, config: &str, tsdb: &Path, args: &[&str]) -> (String, Proc) {
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let proc = Proc(
        Command::new(bin)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    eventually("prometheus ready", Duration::from_secs(60), async || {
        reqwest::get(format!("{url}/-/ready")).await.ok().filter(|r| r.status().is_success())
    })
    .await;
    (url, proc)
}

/// A test CA made here (rcgen) and a certificate for 127.0.0.1 and localhost signed by it: the CA's PEM, the
/// server's certificate and key PEMs.
pub fn test_ca() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "slamon test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}
