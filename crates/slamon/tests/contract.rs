//! The OpenAPI 3.1 contracts of the two REST services hold against the running system:
//! `openapi-spec-validator` accepts the checked-in documents (`openapi/*.json`), each
//! service serves its own at `/openapi.json` (with the read rules: a token when read
//! tokens are on), and schemathesis fuzzes every operation of both services of
//! `slamon up --demo` (tokens on, an SLA set defined) with a few thousand generated
//! requests, `--checks all`: no 5xx, every status, header, content type and body as
//! documented, auth enforced where declared. Needs `openapi-spec-validator` and
//! `schemathesis` (PyPI; `scripts/services.sh install`): skipped locally without them,
//! failing in CI.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// Generated test cases per operation (schemathesis `--max-examples`), with the
/// deterministic generation: about 4200 requests over both services in about 70 s on two
/// cores (operations without parameters take only a few).
const MAX_EXAMPLES: &str = "300";

const WRITE_TOKEN: &str = "contract-test-write-token";
const READ_TOKEN: &str = "contract-test-read-token";

async fn get_with(url: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut request = reqwest::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let res = request.send().await.ok()?;
    Some((res.status().as_u16(), res.text().await.ok()?))
}

/// The documented operations of a document: `(METHOD, path template)`.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// Whether a request path matches a path template (`{x}` is one segment).
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// What schemathesis sent (its HAR report): requests per documented operation, and
/// statuses.
fn tally(
    har: &Path,
    base: &str,
    documented: &BTreeSet<(String, String)>,
) -> (BTreeMap<String, usize>, BTreeMap<u16, usize>) {
    let har: Value = serde_json::from_str(&std::fs::read_to_string(har).unwrap()).unwrap();
    let (mut per_operation, mut statuses) = (BTreeMap::new(), BTreeMap::new());
    for entry in har["log"]["entries"].as_array().unwrap() {
        let method = entry["request"]["method"].as_str().unwrap().to_owned();
        let url = entry["request"]["url"].as_str().unwrap();
        let path = url.strip_prefix(base).unwrap_or(url).split('?').next().unwrap().to_owned();
        let operation = documented
            .iter()
            .find(|(m, t)| *m == method && matches(t, &path))
            .map(|(m, t)| format!("{m} {t}"))
            .unwrap_or_else(|| "other (undocumented methods and paths)".to_owned());
        *per_operation.entry(operation).or_insert(0) += 1;
        *statuses.entry(entry["response"]["status"].as_u64().unwrap() as u16).or_insert(0) += 1;
    }
    (per_operation, statuses)
}

#[tokio::test(flavor = "multi_thread")]
async fn both_rest_services_keep_their_openapi_contract_under_fuzzing() {
    if !tools(&["openapi-spec-validator", "schemathesis"]) {
        return;
    }
    let started = Instant::now();
    let root = root();
    let documents = [("query API", "openapi/query-api.json"), ("SLA manager", "openapi/sla-manager.json")];
    for (_, file) in documents {
        output(Command::new("openapi-spec-validator").arg(root.join(file)));
    }

    let dir = tempfile::tempdir().unwrap();
    let (write, read) = (dir.path().join("write-tokens"), dir.path().join("read-tokens"));
    std::fs::write(&write, format!("{WRITE_TOKEN}\n")).unwrap();
    std::fs::write(&read, format!("{READ_TOKEN}\n")).unwrap();
    let setting = |k: &str, v: &Path| (k.to_owned(), v.display().to_string());
    let extra = [
        setting("SLAMON_API_TOKEN_FILE", &write),
        setting("SLAMON_READ_TOKEN_FILE", &read),
        // fuzzed PUTs would otherwise be mostly 429s after the first minute's worth
        ("SLAMON_PUT_RATE_LIMIT".to_owned(), "0".to_owned()),
        // one ETL cycle at start is what the answers need; fewer leave the CPU to the fuzzing
        ("SLAMON_ETL_PERIOD".to_owned(), "60s".to_owned()),
    ];
    let log = dir.path().join("slamon.log");
    let s = start_slamon(&dir.path().join("data"), "", &log, &extra);

    let listed = eventually("the demo series", Duration::from_secs(60), async || {
        let (status, body) = get_with(&format!("{}/metrics", s.query), Some(READ_TOKEN)).await?;
        let list: Value = serde_json::from_str(&body).ok()?;
        (status == 200 && list.as_array().is_some_and(|a| a.len() >= 5)).then_some(list)
    })
    .await;
    assert!(!listed.as_array().unwrap().is_empty());

    // the README's SLA set of the demo series: the SLA reads answer 200 while fuzzed
    let set = std::fs::read_to_string(root.join("examples/demo-slaset.json")).unwrap();
    let put = reqwest::Client::new()
        .put(format!("{}/slaset", s.sla))
        .bearer_auth(WRITE_TOKEN)
        .header("content-type", "application/json")
        .body(set)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "{}", put.text().await.unwrap());
    // and a forecast to answer /future-violations with
    eventually("a forecast of an SLA metric", Duration::from_secs(90), async || {
        let (status, body) = get_with(&format!("{}/future-violations", s.sla), Some(READ_TOKEN)).await?;
        (status == 200 && body.contains("prediction_rmse")).then_some(())
    })
    .await;

    // each serves its checked-in document, to readers only
    for ((_, file), base) in documents.iter().zip([&s.query, &s.sla]) {
        let url = format!("{base}/openapi.json");
        let served = get_with(&url, Some(READ_TOKEN)).await.unwrap();
        assert_eq!(served, (200, std::fs::read_to_string(root.join(file)).unwrap()), "{url}");
        assert_eq!(get_with(&url, None).await.unwrap().0, 401, "{url} without a token");
    }

    // schemathesis on both at once (each with two workers); the write token reads too
    let config = root.join("openapi/schemathesis.toml");
    let fuzz = |name: &str, base: &str| {
        let har = dir.path().join(format!("{name}.har"));
        let out = std::fs::File::create(dir.path().join(format!("{name}.txt"))).unwrap();
        let child = Command::new("schemathesis")
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--generation-deterministic"])
            .args(["--workers", "2", "--request-timeout", "10"])
            // generation speed depends on the machine's load, not on the API
            .args(["--suppress-health-check", "too_slow"])
            .args(["--header", &format!("Authorization: Bearer {WRITE_TOKEN}"), "--no-color"])
            .args(["--report", "har", "--report-dir"])
            .arg(dir.path())
            .arg("--report-har-path")
            .arg(&har)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        (name.to_owned(), base.to_owned(), har, child)
    };
    let runs = [fuzz("query-api", &s.query), fuzz("sla-manager", &s.sla)];
    let fuzz_started = Instant::now();
    let (mut figures, mut total) = (Vec::new(), 0);
    for ((name, base, har, mut child), (_, file)) in runs.into_iter().zip(documents) {
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(dir.path().join(format!("{name}.txt"))).unwrap();
        assert!(
            status.success(),
            "schemathesis found the {name} breaking its contract ({status}):\n{text}\n--- slamon log (tail) ---\n{}",
            std::fs::read_to_string(&log).unwrap_or_default().lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
        let documented = operations(&serde_json::from_str(&std::fs::read_to_string(root.join(file)).unwrap()).unwrap());
        let (per_operation, statuses) = tally(&har, &base, &documented);
        let requests: usize = per_operation.values().sum();
        total += requests;
        let server_errors: usize = statuses.iter().filter(|(s, _)| **s >= 500).map(|(_, n)| n).sum();
        assert_eq!(server_errors, 0, "{name}: 5xx answers {statuses:?}\n{text}");
        // every documented operation was fuzzed (schemathesis loads /openapi.json itself)
        for (method, path) in &documented {
            let key = format!("{method} {path}");
            assert!(
                per_operation.contains_key(&key) || path == "/openapi.json",
                "{name}: {key} was never requested: {per_operation:?}"
            );
        }
        let summary = text.lines().rev().find(|l| l.contains(" generated, ")).unwrap_or_default().trim().to_owned();
        figures.push(format!(
            "{name}: {requests} requests over {} documented operations ({summary}); statuses {statuses:?}; per operation {per_operation:?}",
            documented.len()
        ));
    }
    assert!(total >= 2000, "only {total} requests: {figures:?}");
    eprintln!(
        "contract fuzzing: {total} requests, 0 failures\n  {}\n(fuzzing {:.0} s, whole test {:.0} s)",
        figures.join("\n  "),
        fuzz_started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
