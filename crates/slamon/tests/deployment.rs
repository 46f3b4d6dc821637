//! The deployments, checked offline (no container engine here):
//! - compose.yaml passes `docker-compose config` and the compose JSON schema, has every
//!   service SPEC §11 names on SPEC's ports, health checks everywhere, `init` before what
//!   needs the topic, and runs real subcommands with variables the binary reads;
//!   health checks that fit a small host (no JVM or mongosh under a short timeout), the
//!   demo node-exporter with the host mounts its documentation asks for, dual-stack
//!   listeners;
//! - kubernetes/ renders with `kubectl kustomize` (the README's steps: `kubectl apply -k`,
//!   the image the README builds, or the registry image `kustomize edit set image` names),
//!   passes `kubernetes-validate --strict`, and holds 3 KRaft brokers, the topic at 4
//!   partitions × RF 3 with min ISR 2, probes (TCP liveness and a startup probe for
//!   MongoDB) and resources everywhere, the NodePorts, one MongoDB password, and pods that
//!   meet the "restricted" Pod Security Standard;
//! - the Dockerfile is multi-stage, non-root, with a HEALTHCHECK the binary answers;
//! - `.env.example` documents every variable the binary and compose.yaml read, with the
//!   defaults compose uses.
//!
//! Needs docker-compose (Debian), check-jsonschema and kubernetes-validate (PyPI), kubectl;
//! skipped locally without them, failing in CI (`scripts/services.sh install` brings them).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;
use support::*;

fn is_slamon_image(image: &Value) -> bool {
    image.as_str().is_some_and(|i| i.split(['/', ':']).any(|part| part == "slamon"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

/// `host` of `scheme://host:port/...`, `host:port` or `a:1,b:2` (the first).
fn host_of(address: &str) -> &str {
    let rest = address.split("://").last().unwrap();
    let rest = rest.rsplit('@').next().unwrap();
    rest.split([',', '/', '?']).next().unwrap().split(':').next().unwrap()
}

fn port_of(address: &str) -> u16 {
    let rest = address.split("://").last().unwrap().rsplit('@').next().unwrap();
    let hostport = rest.split(['/', '?']).next().unwrap();
    hostport.rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("no port in {address}"))
}

/// Every variable the binary reads, over all its subcommands.
fn all_binary_vars() -> BTreeSet<String> {
    SUBCOMMANDS.iter().flat_map(|s| env_of(s).into_keys()).collect()
}

/// Read by the tracing subscriber, not by an option.
const LOGGING: &str = "RUST_LOG";
/// Read by an option that has no default on purpose (unset is meaningful).
const OPTIONAL: [&str; 22] = [
    "SLAMON_ALERTMANAGER_BEARER_TOKEN_FILE",
    "SLAMON_ALERTMANAGER_CA_FILE",
    "SLAMON_ALERTMANAGER_URL",
    "SLAMON_KAFKA_INSTANCE_ID",
    "SLAMON_DEMO",
    "SLAMON_TOPIC_MIN_INSYNC_REPLICAS",
    "MONGODB_USERNAME",
    "MONGODB_PASSWORD_FILE",
    "SLAMON_API_TOKEN_FILE",
    "SLAMON_READ_TOKEN_FILE",
    "SLAMON_ALLOW_UNAUTHENTICATED_WRITES",
    "SLAMON_SLA_MANAGER_TOKEN_FILE",
    "SLAMON_PROMETHEUS_CA_FILE",
    "SLAMON_PROMETHEUS_CERT_FILE",
    "SLAMON_PROMETHEUS_KEY_FILE",
    "SLAMON_PROMETHEUS_BEARER_TOKEN_FILE",
    "SLAMON_PROMETHEUS_USERNAME",
    "SLAMON_PROMETHEUS_PASSWORD_FILE",
    "SLAMON_PROMETHEUS_HEADERS",
    "SLAMON_TLS_CERT_FILE",
    "SLAMON_TLS_KEY_FILE",
    "SLAMON_TOPIC_ALLOW_LIMITED_RETENTION",
];

/// Seconds of a compose duration (`5s`, `1m30s`) or a Kubernetes probe field.
fn seconds(v: &Value) -> u64 {
    if let Some(n) = v.as_u64() {
        return n;
    }
    humantime::parse_duration(v.as_str().unwrap_or_else(|| panic!("not a duration: {v}"))).unwrap().as_secs()
}

/// A health check or probe command that starts a heavy runtime (a JVM tool, mongosh).
fn is_heavy(command: &[String]) -> bool {
    command.iter().any(|c| c.contains("mongosh") || c.contains("/opt/kafka/bin/") || c.contains("kafka-"))
}

#[test]
fn compose_validates_and_runs_real_commands_on_the_spec_ports() {
    if !tools(&["docker-compose", "check-jsonschema"]) {
        return;
    }
    output(Command::new("docker-compose").args(["-f", "compose.yaml", "config", "-q"]).current_dir(root()));
    output(
        Command::new("check-jsonschema")
            .args(["--builtin-schema", "vendor.compose-spec", "compose.yaml"])
            .current_dir(root()),
    );
    let config = compose_config(&[]);
    let services = config["services"].as_object().unwrap();
    for name in [
        "kafka",
        "schema-registry",
        "mongodb",
        "node-exporter",
        "source-prometheus",
        "prometheus",
        "init",
        "etl",
        "projector",
        "query-api",
        "sla-manager",
        "alertmanager",
        "grafana",
    ] {
        assert!(services.contains_key(name), "compose.yaml has no service {name}");
    }

    // Kafka in KRaft mode from the official image; Confluent's registry; MongoDB on a volume
    let kafka = &services["kafka"];
    assert!(kafka["image"].as_str().unwrap().starts_with("apache/kafka:"), "{}", kafka["image"]);
    assert!(kafka["environment"]["KAFKA_PROCESS_ROLES"].as_str().unwrap().contains("controller"));
    assert!(!services.keys().any(|k| k.contains("zookeeper")));
    assert!(services["schema-registry"]["image"].as_str().unwrap().starts_with("confluentinc/cp-schema-registry:"));
    let mongo_volumes = services["mongodb"]["volumes"].to_string();
    assert!(mongo_volumes.contains("/data/db"), "MongoDB keeps no volume: {mongo_volumes}");

    // SPEC's ports, published
    let published = |name: &str| -> BTreeSet<(u64, u64)> {
        services[name]["ports"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|p| {
                let n = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap();
                (n(&p["published"]), n(&p["target"]))
            })
            .collect()
    };
    assert!(published("query-api").contains(&(5000, 5000)));
    assert!(published("sla-manager").contains(&(5001, 5001)));
    assert!(published("sla-manager").contains(&(50052, 50052)));
    assert!(published("etl").contains(&(8008, 8008)));
    assert!(published("prometheus").contains(&(9098, 9098)));

    // a health check on every long-running service; init and token are one-shot jobs
    for (name, svc) in services {
        if name == "init" || name == "token" {
            // `disable: true`, which docker-compose resolves to `test: ["NONE"]`
            let off = svc["healthcheck"]["disable"] == true || strings(&svc["healthcheck"]["test"]) == ["NONE"];
            assert!(off, "init: {}", svc["healthcheck"]);
        } else {
            let test = strings(&svc["healthcheck"]["test"]);
            assert!(!test.is_empty(), "{name} has no health check");
            // a runtime that takes seconds to start gets the time to answer
            if is_heavy(&test) {
                assert!(seconds(&svc["healthcheck"]["timeout"]) >= 15, "{name}: {test:?} under a short timeout");
            }
        }
    }
    // Kafka: a TCP connect (a JVM tool under 5 s marked a slow broker unhealthy for good)
    let kafka_check = strings(&services["kafka"]["healthcheck"]["test"]);
    assert!(kafka_check.iter().any(|c| c.contains("/dev/tcp/127.0.0.1/9092")), "{kafka_check:?}");
    assert!(seconds(&services["kafka"]["healthcheck"]["start_period"]) >= 30);

    // the demo node-exporter sees the host: its root file system and process namespace
    let node = &services["node-exporter"];
    assert!(strings(&node["command"]).contains(&"--path.rootfs=/host".to_owned()), "{}", node["command"]);
    assert_eq!(node["pid"], "host");
    let host_root = node["volumes"].as_array().unwrap().iter().any(|v| {
        v["source"] == "/" && v["target"] == "/host" && v["read_only"] == true
            || v.as_str().is_some_and(|v| v.starts_with("/:/host:ro"))
    });
    assert!(host_root, "node-exporter: {}", node["volumes"]);
    // init first, for everything that needs the topic
    assert_eq!(strings(&services["init"]["command"]), ["init"]);
    for name in ["etl", "projector", "sla-manager"] {
        assert_eq!(
            services[name]["depends_on"]["init"]["condition"], "service_completed_successfully",
            "{name} must wait for init"
        );
    }

    let binary_vars = all_binary_vars();
    let healthcheck_vars = env_of("healthcheck");
    for (name, svc) in services.iter().filter(|(_, s)| is_slamon_image(&s["image"])) {
        // the command is a real subcommand of the binary
        let command = strings(&svc["command"]);
        assert!(!command.is_empty(), "{name} runs no command");
        assert_real_command(&command);
        let reads = env_of(&command[0]);
        let no_env = serde_json::Map::new();
        let env = svc["environment"].as_object().unwrap_or(&no_env);
        for var in env.keys() {
            assert!(
                reads.contains_key(var) || healthcheck_vars.contains_key(var) || var == LOGGING,
                "{name} sets {var}, which `slamon {}` does not read",
                command[0]
            );
            assert!(binary_vars.contains(var) || var == LOGGING);
        }
        for (var, has_default) in &reads {
            assert!(
                *has_default || env.contains_key(var) || OPTIONAL.contains(&var.as_str()),
                "{name}: `slamon {}` reads {var}, which has no default and compose does not set",
                command[0]
            );
        }
        // addresses of other containers name services of this file
        for var in ["KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "SCHEMA_REGISTRY_URL", "PROMETHEUS_URL"] {
            if let Some(v) = env.get(var).and_then(Value::as_str) {
                assert!(services.contains_key(host_of(v)), "{name}: {var}={v} names no service");
            }
        }
        if let Some(v) = env.get("SLAMON_SLA_MANAGER_GRPC_URL").and_then(Value::as_str) {
            assert_eq!(host_of(v), "sla-manager");
            assert_eq!(
                port_of(v),
                port_of(services["sla-manager"]["environment"]["SLAMON_GRPC_LISTEN"].as_str().unwrap())
            );
        }
        // every listener is dual-stack
        for (var, v) in env.iter().filter(|(k, _)| k.ends_with("_LISTEN")) {
            assert!(v.as_str().unwrap().starts_with("[::]:"), "{name}: {var}={v} is not dual-stack");
        }
        // the health check probes this service's own listener
        if name != "init" && name != "token" {
            let test = strings(&svc["healthcheck"]["test"]);
            assert_eq!(test[..2], ["CMD".to_owned(), "slamon".to_owned()], "{name}: {test:?}");
            assert_real_command(&test[2..]);
            let url = env["SLAMON_HEALTHCHECK_URL"].as_str().unwrap();
            let port = port_of(url);
            assert!(
                env.iter().any(|(k, v)| k.ends_with("_LISTEN") && v.as_str().is_some_and(|v| port_of(v) == port)),
                "{name}: the health check probes port {port}, which the service does not listen on"
            );
        }
    }

    // writes need the token the one-shot `token` service generates into a volume the SLA
    // manager reads; the Schema Registry's REST API is not published on the host
    assert_eq!(strings(&services["token"]["command"])[0], "token");
    let token_file = strings(&services["token"]["command"])[1].clone();
    let sla = &services["sla-manager"];
    assert_eq!(sla["environment"]["SLAMON_API_TOKEN_FILE"], token_file.as_str());
    assert_eq!(sla["depends_on"]["token"]["condition"], "service_completed_successfully");
    let (dir, _) = token_file.rsplit_once('/').unwrap();
    let shares = |svc: &Value, read_only: bool| {
        svc["volumes"].as_array().into_iter().flatten().any(|v| match v.as_str() {
            // docker-compose 1.x resolves volumes to the short syntax
            Some(short) => {
                let parts: Vec<&str> = short.split(':').collect();
                parts.get(1) == Some(&dir)
                    && !parts[0].starts_with('/')
                    && parts.get(2).is_some_and(|m| m.contains("ro")) == read_only
            }
            None => v["type"] == "volume" && v["target"] == dir && (v["read_only"] == true) == read_only,
        })
    };
    assert!(shares(&services["token"], false) && shares(sla, true), "the token volume");
    assert!(services["schema-registry"]["ports"].is_null(), "the registry is published on the host");

    // the Prometheus configurations scrape services of this file on the ports they listen on
    let root = root();
    let internal = std::fs::read_to_string(root.join("deploy/prometheus/internal.yml")).unwrap();
    let etl_port = port_of(services["etl"]["environment"]["SLAMON_EXPORTER_LISTEN"].as_str().unwrap());
    let admin_port = port_of(services["projector"]["environment"]["SLAMON_PROJECTOR_ADMIN_LISTEN"].as_str().unwrap());
    assert!(internal.contains(&format!("etl:{etl_port}")), "{internal}");
    assert!(internal.contains(&format!("projector:{admin_port}")), "{internal}");
    let sla_port = port_of(services["sla-manager"]["environment"]["SLAMON_SLA_MANAGER_LISTEN"].as_str().unwrap());
    assert!(
        internal.contains(&format!("sla-manager:{sla_port}")) && internal.contains("/metrics/prometheus"),
        "{internal}"
    );
    assert!(services["prometheus"]["volumes"].to_string().contains("deploy/prometheus/internal.yml"));
    let source = std::fs::read_to_string(root.join("deploy/prometheus/source.yml")).unwrap();
    assert!(source.contains("node-exporter:9100"), "{source}");
    assert!(services["source-prometheus"]["volumes"].to_string().contains("deploy/prometheus/source.yml"));
    assert_eq!(services["etl"]["environment"]["PROMETHEUS_URL"], "http://source-prometheus:9090");

    // the SLA manager sends its alerts to compose's Alertmanager, whose configuration
    // amtool accepts; Grafana reads the internal Prometheus and provisions the dashboard
    let am = &services["alertmanager"];
    let am_port = strings(&am["command"])
        .iter()
        .find_map(|a| a.strip_prefix("--web.listen-address=:").map(str::to_owned))
        .expect("Alertmanager's listen address");
    assert_eq!(sla["environment"]["SLAMON_ALERTMANAGER_URL"], format!("http://alertmanager:{am_port}").as_str());
    assert!(am["volumes"].to_string().contains("deploy/alertmanager/alertmanager.yml"), "{}", am["volumes"]);
    if tools(&["amtool"]) {
        output(
            Command::new("amtool").args(["check-config", "deploy/alertmanager/alertmanager.yml"]).current_dir(&root),
        );
    }
    let grafana = &services["grafana"];
    let mounts = grafana["volumes"].to_string();
    assert!(
        mounts.contains("deploy/grafana/provisioning:/etc/grafana/provisioning")
            && mounts.contains("deploy/grafana/dashboards:/var/lib/grafana/dashboards"),
        "{mounts}"
    );
    let datasource =
        std::fs::read_to_string(root.join("deploy/grafana/provisioning/datasources/prometheus.yml")).unwrap();
    let internal_port = strings(&services["prometheus"]["command"])
        .iter()
        .find_map(|a| a.strip_prefix("--web.listen-address=:").map(str::to_owned))
        .unwrap();
    assert!(datasource.contains(&format!("url: http://prometheus:{internal_port}")), "{datasource}");
    let provider = std::fs::read_to_string(root.join("deploy/grafana/provisioning/dashboards/slamon.yml")).unwrap();
    assert!(provider.contains("path: /var/lib/grafana/dashboards"), "{provider}");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("deploy/grafana/dashboards/slamon.json")).unwrap())
            .unwrap();
    let uid = datasource.lines().find_map(|l| l.trim().strip_prefix("uid: ")).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(panel["datasource"]["uid"], uid, "a panel on another data source: {}", panel["title"]);
    }
    assert!(grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer", "anonymous users only view");

    // the source is switchable to an external Prometheus
    let external = compose_config(&[("PROMETHEUS_URL", "http://prometheus.example:9090")]);
    assert_eq!(external["services"]["etl"]["environment"]["PROMETHEUS_URL"], "http://prometheus.example:9090");
}

#[test]
fn every_variable_is_documented_in_env_example() {
    let documented: BTreeSet<String> = documented_vars().into_iter().collect();
    for var in all_binary_vars() {
        assert!(documented.contains(&var), ".env.example does not document {var}");
    }
    let compose = std::fs::read_to_string(root().join("compose.yaml")).unwrap();
    // copied to `.env`, the file changes nothing: each value is compose's default (or
    // empty, which `${VAR:-default}` also reads as the default)
    let values: BTreeMap<String, String> = std::fs::read_to_string(root().join(".env.example"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .collect();
    for part in compose.split("${").skip(1) {
        let var: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        assert!(documented.contains(&var), ".env.example does not document {var} (compose.yaml)");
        let rest = &part[var.len()..];
        let default = rest.strip_prefix(":-").map(|r| &r[..r.find('}').unwrap()]);
        let value = values[&var].as_str();
        assert!(
            value.is_empty() || Some(value) == default,
            ".env.example sets {var}={value}, but compose's default is {default:?}: copying it to .env changes compose"
        );
    }
}

#[test]
fn the_image_is_multi_stage_non_root_with_a_healthcheck() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let stages: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| l.starts_with("FROM ")).map(|(i, _)| i).collect();
    assert!(stages.len() >= 3, "multi-stage: {} FROM lines", stages.len());
    // dependencies cooked before the sources are copied in
    let cook = lines.iter().position(|l| l.contains("cargo chef cook")).expect("a dependency layer");
    let build = lines.iter().position(|l| l.contains("cargo build --release")).expect("a release build");
    assert!(cook < build);
    assert!(lines[cook..build].iter().any(|l| l.starts_with("COPY . .")));
    let runtime = &lines[*stages.last().unwrap()..];
    assert!(runtime[0].contains("-slim"), "a small runtime image: {}", runtime[0]);
    let user = runtime.iter().find(|l| l.starts_with("USER ")).expect("a USER in the runtime stage");
    let uid = user[5..].split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "{user}");
    let health = runtime.iter().position(|l| l.starts_with("HEALTHCHECK")).expect("a HEALTHCHECK");
    assert!(runtime[health + 1].contains(r#"CMD ["slamon", "healthcheck"]"#), "{}", runtime[health + 1]);
    assert_real_command(&["healthcheck".to_owned()]);
    assert!(runtime.contains(&r#"ENTRYPOINT ["slamon"]"#));
    let exposed: BTreeSet<&str> =
        runtime.iter().filter(|l| l.starts_with("EXPOSE ")).flat_map(|l| l[7..].split_whitespace()).collect();
    for port in ["5000", "5001", "50052", "8008"] {
        assert!(exposed.contains(port), "EXPOSE {port}");
    }
}

fn kind_name(doc: &Value) -> (String, String) {
    (doc["kind"].as_str().unwrap().to_owned(), doc["metadata"]["name"].as_str().unwrap().to_owned())
}

fn pod_containers(pod: &Value) -> Vec<&Value> {
    let mut all: Vec<&Value> = pod["containers"].as_array().unwrap().iter().collect();
    all.extend(pod["initContainers"].as_array().into_iter().flatten());
    all
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

#[test]
fn kubernetes_renders_validates_and_holds_the_spec() {
    if !tools(&["kubectl", "kubernetes-validate"]) {
        return;
    }
    let rendered = render_kubernetes(None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    output(Command::new("kubernetes-validate").arg("--strict").arg(&file));
    let docs = yaml_documents(&rendered);
    let by_name: BTreeMap<(String, String), &Value> = docs.iter().map(|d| (kind_name(d), d)).collect();
    let get = |kind: &str, name: &str| -> &Value {
        by_name.get(&(kind.to_owned(), name.to_owned())).unwrap_or_else(|| panic!("no {kind} {name}"))
    };

    // Kafka: 3 brokers in KRaft mode, 3 voters, replication 3 and min ISR 2 by default
    let kafka = get("StatefulSet", "kafka");
    assert_eq!(kafka["spec"]["replicas"], 3);
    assert_eq!(kafka["spec"]["podManagementPolicy"], "Parallel");
    assert!(!kafka["spec"]["volumeClaimTemplates"].as_array().unwrap().is_empty());
    let broker = &kafka["spec"]["template"]["spec"]["containers"][0];
    assert!(broker["image"].as_str().unwrap().starts_with("apache/kafka:"));
    assert!(env_value(broker, "KAFKA_PROCESS_ROLES").unwrap().contains("controller"));
    assert_eq!(env_value(broker, "KAFKA_CONTROLLER_QUORUM_VOTERS").unwrap().split(',').count(), 3);
    assert_eq!(env_value(broker, "KAFKA_DEFAULT_REPLICATION_FACTOR"), Some("3"));
    assert_eq!(env_value(broker, "KAFKA_MIN_INSYNC_REPLICAS"), Some("2"));
    assert_eq!(env_value(broker, "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"), Some("3"));

    // the topic: `slamon init` with 4 partitions, replication 3, min ISR 2
    let config = &get("ConfigMap", "slamon-config")["data"];
    assert_eq!(config["SLAMON_TOPIC_PARTITIONS"], "4");
    assert_eq!(config["SLAMON_TOPIC_REPLICATION"], "3");
    assert_eq!(config["SLAMON_TOPIC_MIN_INSYNC_REPLICAS"], "2");
    let bootstrap = config["KAFKA_BOOTSTRAP_SERVERS"].as_str().unwrap();
    assert_eq!(bootstrap.split(',').count(), 3, "{bootstrap}");
    let binary_vars = all_binary_vars();
    for key in config.as_object().unwrap().keys() {
        assert!(
            binary_vars.contains(key) || key == LOGGING,
            "slamon-config sets {key}, which the binary does not read"
        );
    }
    for name in ["etl", "projector", "sla-manager"] {
        let pod = &get("Deployment", name)["spec"]["template"]["spec"];
        let init = pod["initContainers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| strings(&c["args"]) == ["init"]))
            .unwrap_or_else(|| panic!("{name}: no init container running `slamon init`"));
        assert!(is_slamon_image(&init["image"]));
        assert_eq!(init["envFrom"][0]["configMapRef"]["name"], "slamon-config");
    }

    // MongoDB on a volume claim; Confluent's registry
    let mongo = get("StatefulSet", "mongodb");
    assert!(!mongo["spec"]["volumeClaimTemplates"].as_array().unwrap().is_empty());
    assert!(mongo["spec"]["template"]["spec"]["containers"][0]["volumeMounts"].to_string().contains("/data/db"));
    let registry = &get("Deployment", "schema-registry")["spec"]["template"]["spec"]["containers"][0];
    assert!(registry["image"].as_str().unwrap().starts_with("confluentinc/cp-schema-registry:"));

    // probes and resources on every workload; slamon containers run real commands and
    // probe the port they listen on
    for doc in docs.iter().filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet") {
        let (kind, name) = kind_name(doc);
        let pod = &doc["spec"]["template"]["spec"];
        for c in pod["containers"].as_array().unwrap() {
            assert!(c["readinessProbe"].is_object(), "{kind} {name}: no readiness probe");
            assert!(c["livenessProbe"].is_object(), "{kind} {name}: no liveness probe");
        }
        for c in pod_containers(pod) {
            for bound in ["requests", "limits"] {
                for r in ["cpu", "memory"] {
                    assert!(c["resources"][bound][r].is_string(), "{kind} {name}/{}: no {bound}.{r}", c["name"]);
                }
            }
            if !is_slamon_image(&c["image"]) {
                continue;
            }
            let args = strings(&c["args"]);
            assert_real_command(&args);
            let reads = env_of(&args[0]);
            for e in c["env"].as_array().into_iter().flatten() {
                let var = e["name"].as_str().unwrap();
                assert!(reads.contains_key(var), "{name}: sets {var}, which `slamon {}` does not read", args[0]);
            }
            if args[0] == "init" {
                continue;
            }
            // the MongoDB password: the Secret's one value, read from a file
            assert_eq!(env_value(c, "MONGODB_PASSWORD_FILE"), Some(MONGODB_PASSWORD_FILE), "{name}");
            assert!(mounts_password(pod, c), "{name}: the password file is not the Secret's");
            for probe in ["readinessProbe", "livenessProbe"] {
                let port_name = c[probe]["httpGet"]["port"].as_str().unwrap();
                let number = c["ports"].as_array().unwrap().iter().find(|p| p["name"] == port_name).unwrap()
                    ["containerPort"]
                    .as_u64()
                    .unwrap();
                let listens = c["env"].as_array().unwrap().iter().any(|e| {
                    e["name"].as_str().unwrap().ends_with("_LISTEN")
                        && e["value"].as_str().is_some_and(|v| u64::from(port_of(v)) == number)
                });
                assert!(listens, "{name}: {probe} on port {number}, which it does not listen on");
            }
        }
    }

    // NodePorts 31000, 31001, 31052 onto the pods of the right Deployment
    for (service, port, node_port) in
        [("query-api", 5000, 31000), ("sla-manager", 5001, 31001), ("sla-manager", 50052, 31052)]
    {
        let svc = get("Service", service);
        assert_eq!(svc["spec"]["type"], "NodePort");
        let p = svc["spec"]["ports"].as_array().unwrap().iter().find(|p| p["port"] == port).unwrap();
        assert_eq!(p["nodePort"], node_port, "{service}:{port}");
        let labels = &get("Deployment", service)["spec"]["template"]["metadata"]["labels"];
        for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "{service}: the selector misses the pods");
        }
    }

    // several ETL replicas sharing the series through one consumer group, each scraped
    let etl = get("Deployment", "etl");
    assert!(etl["spec"]["replicas"].as_u64().unwrap() >= 2);
    assert!(config["SLAMON_ETL_GROUP"].is_string());
    let c = &etl["spec"]["template"]["spec"]["containers"][0];
    assert!(env_value(c, "SLAMON_ETL_GROUP").is_none(), "one group for every replica");
    assert_eq!(get("Service", "etl")["spec"]["clusterIP"], "None", "each ETL replica's exporter is scraped");

    // several projectors in one consumer group
    let projector = get("Deployment", "projector");
    assert!(projector["spec"]["replicas"].as_u64().unwrap() >= 2);
    assert!(config["SLAMON_PROJECTOR_GROUP"].is_string());
    let c = &projector["spec"]["template"]["spec"]["containers"][0];
    assert!(env_value(c, "SLAMON_PROJECTOR_GROUP").is_none(), "one group for every replica");

    // one MongoDB password: the generated Secret holds nothing else, the root user and the
    // slamon pods read it from the same file, the user from one ConfigMap key, and no
    // credential is written in any object
    let secret = |prefix: &str| -> &Value {
        let found: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "Secret" && d["metadata"]["name"].as_str().unwrap().starts_with(prefix))
            .collect();
        assert_eq!(found.len(), 1, "one Secret {prefix}*");
        found[0]
    };
    assert_eq!(docs.iter().filter(|d| d["kind"] == "Secret").count(), 2, "the MongoDB password and the API token");
    let mongodb_secret = secret("slamon-mongodb-");
    assert_eq!(mongodb_secret["data"].as_object().unwrap().keys().collect::<Vec<_>>(), ["password"]);
    // writes need the API token, mounted in the SLA manager from its generated Secret
    assert_eq!(secret("slamon-api-token-")["data"].as_object().unwrap().keys().collect::<Vec<_>>(), ["tokens"]);
    let sla_pod = &get("Deployment", "sla-manager")["spec"]["template"]["spec"];
    let sla_container = &sla_pod["containers"][0];
    let token_file = env_value(sla_container, "SLAMON_API_TOKEN_FILE").expect("the SLA manager needs a write token");
    let (token_dir, token_name) = token_file.rsplit_once('/').unwrap();
    let mounted =
        sla_container["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == token_dir).unwrap();
    let volume = sla_pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mounted["name"]).unwrap();
    assert!(volume["secret"]["secretName"].as_str().unwrap().starts_with("slamon-api-token-"));
    assert_eq!(volume["secret"]["items"][0]["path"], token_name);
    let mongo_pod = &mongo["spec"]["template"]["spec"];
    let mongod = &mongo_pod["containers"][0];
    assert_eq!(env_value(mongod, "MONGO_INITDB_ROOT_PASSWORD_FILE"), Some(MONGODB_PASSWORD_FILE));
    assert!(mounts_password(mongo_pod, mongod));
    let user = mongod["env"].as_array().unwrap().iter().find(|e| e["name"] == "MONGO_INITDB_ROOT_USERNAME").unwrap();
    assert_eq!(user["valueFrom"]["configMapKeyRef"]["key"], "MONGODB_USERNAME");
    assert!(config["MONGODB_USERNAME"].is_string());
    let uri = config["MONGODB_URI"].as_str().unwrap();
    assert!(host_of(uri).starts_with("mongodb-0.mongodb") && !uri.contains('@'), "{uri}");
    assert!(!rendered.contains("change-me") && !rendered.contains("MONGO_INITDB_ROOT_PASSWORD:"));

    // MongoDB: a started mongod is not restarted because mongosh is slow to start
    assert_eq!(mongod["livenessProbe"]["tcpSocket"]["port"], "mongodb", "{}", mongod["livenessProbe"]);
    assert!(mongod["startupProbe"]["tcpSocket"].is_object(), "no startup probe");
    let startup = &mongod["startupProbe"];
    assert!(seconds(&startup["periodSeconds"]) * seconds(&startup["failureThreshold"]) >= 300);
    for doc in docs.iter().filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet") {
        for c in doc["spec"]["template"]["spec"]["containers"].as_array().unwrap() {
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                let command = strings(&c[probe]["exec"]["command"]);
                if is_heavy(&command) {
                    assert_ne!(probe, "livenessProbe", "{}: a heavy liveness probe", c["name"]);
                    assert!(seconds(&c[probe]["timeoutSeconds"]) >= 15, "{}: {probe} {command:?}", c["name"]);
                }
            }
        }
    }

    // the "restricted" Pod Security Standard, enforced on the namespace and met by every pod
    let ns = get("Namespace", "slamon");
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
    for doc in docs.iter().filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet") {
        let (kind, name) = kind_name(doc);
        let pod = &doc["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{kind} {name}");
        assert_ne!(pod["securityContext"]["runAsUser"], 0, "{kind} {name}");
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{kind} {name}");
        assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null(), "{kind} {name}");
        for v in pod["volumes"].as_array().into_iter().flatten() {
            assert!(v["hostPath"].is_null(), "{kind} {name}: a hostPath volume");
        }
        for c in pod_containers(pod) {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{kind} {name}/{}", c["name"]);
            assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{kind} {name}/{}", c["name"]);
            assert!(sc["capabilities"]["add"].is_null(), "{kind} {name}/{}", c["name"]);
            assert!(sc["privileged"] != true && sc["runAsUser"] != 0, "{kind} {name}/{}", c["name"]);
        }
        // slamon's listeners are dual-stack (probes come from the node, maybe over IPv6)
        for c in pod_containers(pod).into_iter().filter(|c| is_slamon_image(&c["image"])) {
            for e in
                c["env"].as_array().into_iter().flatten().filter(|e| e["name"].as_str().unwrap().ends_with("_LISTEN"))
            {
                assert!(e["value"].as_str().unwrap().starts_with("[::]:"), "{name}: {e}");
            }
        }
    }
}

/// Where the slamon pods and MongoDB read the password.
const MONGODB_PASSWORD_FILE: &str = "/run/secrets/mongodb/password";

/// The container mounts the generated Secret's `password` at [`MONGODB_PASSWORD_FILE`].
fn mounts_password(pod: &Value, container: &Value) -> bool {
    let (dir, file) = MONGODB_PASSWORD_FILE.rsplit_once('/').unwrap();
    container["volumeMounts"].as_array().into_iter().flatten().filter(|m| m["mountPath"] == dir).any(|m| {
        pod["volumes"].as_array().into_iter().flatten().filter(|v| v["name"] == m["name"]).any(|v| {
            v["secret"]["secretName"].as_str().is_some_and(|n| n.starts_with("slamon-mongodb-"))
                && v["secret"]["items"]
                    .as_array()
                    .is_some_and(|i| i.iter().any(|i| i["key"] == "password" && i["path"] == file))
        })
    })
}

/// `kubectl kustomize` of a copy of kubernetes/ as a user has it after the README's
/// steps: the MongoDB password written, and `image` (`kustomize edit set image
/// slamon=IMAGE`) when given.
fn render_kubernetes(image: Option<(&str, &str)>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("kubernetes");
    std::fs::create_dir_all(copy.join("secrets")).unwrap();
    for entry in std::fs::read_dir(root().join("kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(copy.join("secrets/mongodb-password"), "s3cret-from-the-user\n").unwrap();
    std::fs::write(copy.join("secrets/api-token"), "t0ken-from-the-user\n").unwrap();
    if let Some((name, tag)) = image {
        // what `kustomize edit set image slamon=NAME:TAG` writes
        let file = copy.join("kustomization.yaml");
        let mut k: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let images = k["images"].as_sequence_mut().unwrap();
        let entry = images.iter_mut().find(|i| i["name"] == "slamon").expect("an images entry for slamon");
        entry["newName"] = name.into();
        entry["newTag"] = tag.into();
        std::fs::write(&file, serde_yaml_ng::to_string(&k).unwrap()).unwrap();
    }
    let rendered = output(Command::new("kubectl").args(["kustomize"]).arg(&copy));
    assert!(!rendered.contains("s3cret-from-the-user"), "the password in clear text");
    assert!(!rendered.contains("t0ken-from-the-user"), "the token in clear text");
    rendered
}

/// The images of slamon's containers in a rendering.
fn slamon_images(rendered: &str) -> BTreeSet<String> {
    let docs = yaml_documents(rendered);
    docs.iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
        .flat_map(|d| {
            pod_containers(&d["spec"]["template"]["spec"]).into_iter().map(|c| c["image"].clone()).collect::<Vec<_>>()
        })
        .filter(is_slamon_image)
        .map(|i| i.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_readmes_kubernetes_steps_deploy_the_image_they_build() {
    if !tools(&["kubectl"]) {
        return;
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## Deployment: Kubernetes").expect("a Kubernetes section")..];
    let steps = &section[section.find("```sh").unwrap()..];
    let steps = &steps[..steps[5..].find("```").unwrap() + 5];
    // `kubectl apply -k` (kubectl reads kustomization.yaml); `-f` would skip it
    assert!(steps.contains("kubectl apply -k kubernetes"), "{steps}");
    assert!(!steps.contains("kubectl apply -f"), "{steps}");
    assert!(steps.contains("secrets/mongodb-password"), "the steps write MongoDB's password: {steps}");
    assert!(steps.contains("secrets/api-token"), "the steps write the API token: {steps}");
    let word_after = |marker: &str| -> String {
        let at = steps.find(marker).unwrap_or_else(|| panic!("no `{marker}` in {steps}")) + marker.len();
        let word = steps[at..].split_whitespace().next().unwrap();
        word.trim_end_matches([')', ';']).to_owned()
    };
    // as is, the manifests run the image the README builds and kind loads
    let built = word_after("docker build -t ");
    assert_eq!(word_after("kind load docker-image "), built);
    assert_eq!(slamon_images(&render_kubernetes(None)), BTreeSet::from([built.clone()]));
    // pushed to a registry, `kustomize edit set image` points every container at it
    let set = word_after("kustomize edit set image slamon=");
    let pushed = word_after("docker push ");
    assert_eq!(set, pushed);
    let (name, tag) = pushed.rsplit_once(':').unwrap();
    let real = format!("registry.example.com/team/slamon:{tag}");
    let rendered = render_kubernetes(Some(("registry.example.com/team/slamon", tag)));
    assert!(name.ends_with("/slamon"), "{pushed}");
    assert_eq!(slamon_images(&rendered), BTreeSet::from([real]));
}
