//! The nearest this machine gets to `docker compose up` (no container engine here): the
//! services of compose.yaml, as `docker-compose config` resolves them, started on loopback
//! in compose's order (`depends_on` conditions: healthy, completed successfully), each
//! with its compose environment and command, container addresses mapped to loopback:
//! - slamon services: the binary with the service's command and environment;
//! - kafka → tansu, schema-registry → `slamon registry` (Confluent-compatible),
//!   mongodb → SecantusDB, node-exporter and both Prometheus → Debian's, with the
//!   configuration files compose mounts.
//!
//! Then the APIs answer on compose's ports: the query API lists the demo source's real
//! series (node-exporter → Prometheus → ETL → Kafka → projector → MongoDB), the SLA manager
//! takes an SLA set and reports its status, the internal Prometheus on 9098 scrapes the
//! ETL and the projector.
//!
//! Needs docker-compose, tansu, secantusd-py, prometheus and prometheus-node-exporter
//! (`scripts/services.sh install`); skipped locally without them, failing in CI. Uses
//! compose's fixed ports (5000, 5001, 50052, 8008, 8010, 9098): they must be free.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// What runs for one compose service, and how its health is judged.
struct Running {
    proc: Proc,
    /// A URL answering 2xx when healthy, or a port accepting connections.
    health: Health,
}

enum Health {
    Url(String),
    Port(u16),
    /// The compose health check of a slamon service: `slamon healthcheck` with its env.
    Slamon(Vec<(String, String)>),
}

struct Stack {
    dir: tempfile::TempDir,
    /// `service:port` of compose → `127.0.0.1:port` here.
    addresses: Vec<(String, String)>,
    running: BTreeMap<String, Running>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in self.running.keys() {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("--- {name} (last lines)");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Stack {
    fn map(&self, value: &str) -> String {
        let mut v = value.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "127.0.0.1:");
        // the volume of the generated token: a folder here
        v = v.replace("/run/slamon", &self.dir.path().join("run-slamon").display().to_string());
        for (from, to) in &self.addresses {
            v = v.replace(from, to);
        }
        v
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap()
    }

    fn port(&self, service_port: &str) -> u16 {
        let to = &self.addresses.iter().find(|(f, _)| f == service_port).unwrap().1;
        to.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The compose environment of a service, mapped to loopback.
    fn env(&self, service: &Value, name: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = service["environment"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), self.map(v.as_str().unwrap()))).collect())
            .unwrap_or_default();
        env.push(("SLAMON_DATA_DIR".into(), self.dir.path().join(name).display().to_string()));
        env
    }

    fn start(&mut self, name: &str, service: &Value) {
        let log = self.log(name);
        let running = if service["image"].as_str().is_some_and(|i| i.starts_with("slamon")) {
            let env = self.env(service, name);
            let command: Vec<String> =
                service["command"].as_array().unwrap().iter().map(|a| self.map(a.as_str().unwrap())).collect();
            let child = Command::new(env!("CARGO_BIN_EXE_slamon"))
                .args(&command)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            Running { proc: Proc(child), health: Health::Slamon(env) }
        } else {
            match name {
                "kafka" => {
                    let port = self.port("kafka:9092");
                    let data = self.dir.path().join("kafka");
                    std::fs::create_dir_all(&data).unwrap();
                    let child = tansu_broker(port, &data).stderr(log).spawn().unwrap();
                    Running { proc: Proc(child), health: Health::Port(port) }
                }
                "schema-registry" => {
                    let port = self.port("schema-registry:8081");
                    let child = Command::new(env!("CARGO_BIN_EXE_slamon"))
                        .arg("registry")
                        .env("SLAMON_REGISTRY_LISTEN", format!("127.0.0.1:{port}"))
                        .env("SLAMON_DATA_DIR", self.dir.path().join(name))
                        .stdout(Stdio::null())
                        .stderr(log)
                        .spawn()
                        .unwrap();
                    Running { proc: Proc(child), health: Health::Url(format!("http://127.0.0.1:{port}/subjects")) }
                }
                "mongodb" => {
                    let port = self.port("mongodb:27017");
                    let child = secantus(port, &self.dir.path().join(name)).stderr(log).spawn().unwrap();
                    Running { proc: Proc(child), health: Health::Port(port) }
                }
                "node-exporter" => {
                    let port = self.port("node-exporter:9100");
                    let child = Command::new("prometheus-node-exporter")
                        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                        .stdout(Stdio::null())
                        .stderr(log)
                        .spawn()
                        .unwrap();
                    Running { proc: Proc(child), health: Health::Url(format!("http://127.0.0.1:{port}/metrics")) }
                }
                "source-prometheus" | "prometheus" => self.prometheus(name, service, log),
                "alertmanager" => self.alertmanager(service, log),
                other => panic!("compose.yaml has a service {other} this test has no stand-in for"),
            }
        };
        self.running.insert(name.to_owned(), running);
    }

    /// Debian's Prometheus with the compose command and the configuration file compose
    /// mounts, its addresses mapped to loopback.
    fn prometheus(&self, name: &str, service: &Value, log: std::fs::File) -> Running {
        let mounted = service["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .find(|v| v.contains(":/etc/prometheus/prometheus.yml"))
            .expect("a mounted prometheus.yml");
        let host_file = mounted.split(':').next().unwrap();
        let config = self.dir.path().join(format!("{name}.yml"));
        std::fs::write(&config, self.map(&std::fs::read_to_string(host_file).unwrap())).unwrap();
        let mut args = Vec::new();
        let mut listen = String::new();
        for a in service["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()) {
            if let Some(addr) = a.strip_prefix("--web.listen-address=") {
                // `:port` inside the container: where this service's address maps to
                let port = addr.trim_start_matches(':');
                listen = [format!("{name}:{port}"), format!("localhost:{port}")]
                    .iter()
                    .map(|a| self.map(a))
                    .find(|m| m.starts_with("127.0.0.1:"))
                    .unwrap_or_else(|| format!("127.0.0.1:{port}"));
                args.push(format!("--web.listen-address={listen}"));
            } else if a.starts_with("--config.file=") {
                args.push(format!("--config.file={}", config.display()));
            } else if a.starts_with("--storage.tsdb.path=") {
                args.push(format!("--storage.tsdb.path={}", self.dir.path().join(format!("{name}-tsdb")).display()));
            } else {
                args.push(a.to_owned());
            }
        }
        let child = Command::new("prometheus").args(&args).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        Running { proc: Proc(child), health: Health::Url(format!("http://{listen}/-/ready")) }
    }

    /// Debian's Alertmanager with the compose command and the configuration file compose
    /// mounts.
    fn alertmanager(&self, service: &Value, log: std::fs::File) -> Running {
        let listen = self.map("alertmanager:9093");
        let mut args = Vec::new();
        for a in service["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()) {
            if let Some(file) = a.strip_prefix("--config.file=") {
                let mounted = service["volumes"].to_string();
                assert!(mounted.contains(&format!(":{file}")), "the configuration is not mounted: {mounted}");
                args.push(format!("--config.file={}", root().join("deploy/alertmanager/alertmanager.yml").display()));
            } else if a.starts_with("--storage.path=") {
                args.push(format!("--storage.path={}", self.dir.path().join("alertmanager").display()));
            } else if a.starts_with("--web.listen-address=") {
                args.push(format!("--web.listen-address={listen}"));
            } else {
                args.push(a.to_owned());
            }
        }
        let child =
            Command::new("prometheus-alertmanager").args(&args).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        Running { proc: Proc(child), health: Health::Url(format!("http://{listen}/-/ready")) }
    }

    fn healthy(&mut self, name: &str) -> bool {
        let r = self.running.get_mut(name).unwrap();
        if let Ok(Some(status)) = r.proc.0.try_wait() {
            panic!("{name} exited ({status}) instead of becoming healthy");
        }
        match &r.health {
            Health::Port(p) => reachable(*p),
            Health::Url(u) => Command::new("curl")
                .args(["-fsS", "-o", "/dev/null", "--max-time", "3", u])
                .status()
                .is_ok_and(|s| s.success()),
            Health::Slamon(env) => Command::new(env!("CARGO_BIN_EXE_slamon"))
                .arg("healthcheck")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        }
    }

    fn wait(&mut self, name: &str, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let done = match condition {
                "service_started" => true,
                "service_healthy" => self.healthy(name),
                "service_completed_successfully" => {
                    let r = self.running.get_mut(name).unwrap();
                    match r.proc.0.try_wait().unwrap() {
                        Some(status) => {
                            assert!(status.success(), "{name} exited with {status}");
                            true
                        }
                        None => false,
                    }
                }
                other => panic!("depends_on condition {other} unknown"),
            };
            if done {
                return;
            }
            assert!(Instant::now() < deadline, "{name} not {condition} within 120 s");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Compose's start order: every service after what it depends on.
fn start_order(services: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut placed = BTreeSet::new();
    while order.len() < services.len() {
        let before = order.len();
        for (name, svc) in services {
            let deps: Vec<&String> = svc["depends_on"].as_object().map(|d| d.keys().collect()).unwrap_or_default();
            if !placed.contains(name) && deps.iter().all(|d| placed.contains(*d)) {
                placed.insert(name.clone());
                order.push(name.clone());
            }
        }
        assert!(order.len() > before, "depends_on has a cycle");
    }
    order
}

async fn get(url: &str) -> Option<Value> {
    let r = reqwest::get(url).await.ok()?;
    r.status().is_success().then_some(())?;
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compose_services_answer_on_loopback() {
    if !tools(&[
        "docker-compose",
        "secantusd-py",
        "prometheus",
        "prometheus-node-exporter",
        "prometheus-alertmanager",
        "curl",
    ]) {
        return;
    }
    if !tansu().exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: tansu required at {}", tansu().display());
        eprintln!("SKIPPED: no tansu at {}", tansu().display());
        return;
    }
    for port in [5000, 5001, 50052, 8008, 8010, 9098] {
        assert!(!reachable(port), "port {port} of compose.yaml is in use; this test needs it");
    }
    // a user tunes compose through its variables; a short ETL period keeps the test short
    let config = compose_config(&[("SLAMON_ETL_PERIOD", "10s"), ("SLAMON_LOG_FORMAT", "text")]);
    let services = config["services"].as_object().unwrap().clone();
    let mut addresses: Vec<(String, String)> =
        ["kafka:9092", "schema-registry:8081", "mongodb:27017", "node-exporter:9100", "alertmanager:9093"]
            .iter()
            .map(|s| (s.to_string(), format!("127.0.0.1:{}", free_port())))
            .collect();
    let source = free_port();
    addresses.push(("source-prometheus:9090".into(), format!("127.0.0.1:{source}")));
    // inside source-prometheus's own container
    addresses.push(("localhost:9090".into(), format!("127.0.0.1:{source}")));
    // the slamon services and the internal Prometheus keep compose's ports
    for s in ["sla-manager:50052", "sla-manager:5001", "etl:8008", "projector:8010", "localhost:9098"] {
        addresses.push((s.into(), format!("127.0.0.1:{}", s.rsplit(':').next().unwrap())));
    }
    let mut stack = Stack { dir: tempfile::tempdir().unwrap(), addresses, running: BTreeMap::new() };

    // Grafana has no package here (Debian, PyPI, npm): its dashboard's queries are checked
    // against a real Prometheus in exposition.rs, its provisioning in deployment.rs
    let services: serde_json::Map<String, Value> = services.into_iter().filter(|(n, _)| n != "grafana").collect();
    for name in start_order(&services) {
        let svc = &services[&name];
        if let Some(deps) = svc["depends_on"].as_object() {
            for (dep, cond) in deps {
                stack.wait(dep, cond["condition"].as_str().unwrap_or("service_started"));
            }
        }
        stack.start(&name, svc);
    }
    for name in services.keys().filter(|n| *n != "init" && *n != "token").cloned().collect::<Vec<_>>() {
        stack.wait(&name, "service_healthy");
    }

    // the demo source's real series reach the query API on 5000
    let metrics = eventually("node-exporter series in the query API", Duration::from_secs(180), async || {
        get("http://127.0.0.1:5000/metrics?match=job=node").await.filter(|m| m.as_array().is_some_and(|a| a.len() >= 5))
    })
    .await;
    let picked: Vec<&Value> = metrics.as_array().unwrap().iter().take(5).collect();
    let id = picked[0]["id"].as_str().unwrap();
    let values = eventually("window statistics", Duration::from_secs(60), async || {
        get(&format!("http://127.0.0.1:5000/metrics/{id}/values")).await
    })
    .await;
    assert!(values["values"]["1h"]["avg"].is_number(), "{values}");

    // an SLA set on 5001: created, visible, evaluated by the ETL through gRPC (50052); the
    // first SLA's range holds no value, so it fires
    let mut set: Vec<Value> =
        picked.iter().map(|m| json!({"name": m["name"], "range": {"min": -1e300, "max": 1e300}, "for": 1})).collect();
    set[0]["range"] = json!({"min": 1e300, "max": 1e301});
    // writes need the token the `token` service generated
    let refused = reqwest::Client::new().put("http://127.0.0.1:5001/slaset").json(&set).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401, "{:?}", refused.text().await);
    let token = std::fs::read_to_string(stack.dir.path().join("run-slamon/api-token")).unwrap();
    let put = reqwest::Client::new()
        .put("http://127.0.0.1:5001/slaset")
        .bearer_auth(token.trim())
        .json(&set)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "{:?}", put.text().await);
    let current = get("http://127.0.0.1:5001/slaset").await.unwrap();
    assert_eq!(current.as_array().unwrap().len(), 5, "{current}");
    let status = eventually("SLA status from the ETL's samples", Duration::from_secs(90), async || {
        get("http://127.0.0.1:5001/status").await.filter(|s| {
            s.as_array().is_some_and(|a| {
                a.len() == 5 && a.iter().all(|e| e["last-values"].as_array().is_some_and(|v| !v.is_empty()))
            })
        })
    })
    .await;
    for s in &status.as_array().unwrap()[1..] {
        assert_eq!(s["status"], "inactive", "{s}");
    }
    assert_ne!(status[0]["status"], "inactive", "{status}");

    // the firing SLA reaches compose's Alertmanager without a rule written
    let am = stack.map("http://alertmanager:9093");
    let firing = eventually("the firing SLA in Alertmanager", Duration::from_secs(180), async || {
        let alerts = get(&format!("{am}/api/v2/alerts?filter=alertname%3D%22SlamonSlaViolated%22")).await?;
        alerts.as_array().filter(|a| a.len() == 1).cloned()
    })
    .await;
    assert_eq!(firing[0]["labels"]["sla_id"], picked[0]["id"], "{firing:?}");
    assert_eq!(firing[0]["labels"]["sla_metric"], picked[0]["name"]["__name__"], "{firing:?}");

    // the internal Prometheus (9098) scrapes the ETL exporter and the projector
    eventually("the internal Prometheus scraping slamon", Duration::from_secs(60), async || {
        let r = get("http://127.0.0.1:9098/api/v1/query?query=up").await?;
        let up: BTreeSet<String> = r["data"]["result"]
            .as_array()?
            .iter()
            .filter(|s| s["value"][1] == "1")
            .map(|s| s["metric"]["job"].as_str().unwrap_or_default().to_owned())
            .collect();
        (up.contains("slamon-etl") && up.contains("slamon-projector") && up.contains("slamon-sla")).then_some(())
    })
    .await;
    // the SLA state, as Prometheus sees it: four of the SLAs above inactive, one firing
    eventually("slamon_sla_state in the internal Prometheus", Duration::from_secs(60), async || {
        let r =
            get("http://127.0.0.1:9098/api/v1/query?query=slamon_sla_state%7Bstate%3D%22inactive%22%7D%3D%3D1").await?;
        (r["data"]["result"].as_array()?.len() == 4).then_some(())
    })
    .await;
    // and, from the scrape after the ETL's first cycle on, its execution times
    eventually("etl_executiontime_1h in the internal Prometheus", Duration::from_secs(60), async || {
        let r = get("http://127.0.0.1:9098/api/v1/query?query=etl_executiontime_1h").await?;
        r["data"]["result"].as_array().is_some_and(|a| !a.is_empty()).then_some(())
    })
    .await;
}
