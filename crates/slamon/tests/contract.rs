//! The OpenAPI 3.1 contracts of the two REST services hold against the running system:
//! `openapi-spec-validator` accepts the checked-in documents (`openapi/*.json`), each
//! service serves its document at `/openapi.json` (with the read rules: a token when read
//! tokens are on), and schemathesis fuzzes every operation of both services of
//! `slamon up --demo` (an SLA set defined) with `--checks all`: no 5xx, every status,
//! header, content type and body as documented, tokens enforced where declared. First
//! with read and write tokens (the checked-in contract), a few thousand requests; then
//! with write tokens only (compose's default: reads open), a shorter run of the document
//! that deployment serves. Needs `openapi-spec-validator` and `schemathesis` (PyPI;
//! `scripts/services.sh install`): skipped locally without them, failing in CI.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use slamon_web::openapi::Guarded;
use support::*;

/// Generated test cases per operation (schemathesis `--max-examples`), with the
/// deterministic generation: about 4200 requests over both services in about 60 s on two
/// cores (operations without parameters take only a few).
const MAX_EXAMPLES: &str = "300";
/// The same for the deployment with write tokens only.
const MAX_EXAMPLES_OPEN_READS: &str = "40";

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
    for file in ["openapi/query-api.json", "openapi/sla-manager.json"] {
        output(Command::new("openapi-spec-validator").arg(root.join(file)));
    }
    let (all, all_figures) = fuzz_deployment(Guarded::ALL, MAX_EXAMPLES).await;
    assert!(all >= 2000, "only {all} requests: {all_figures:?}");
    let open_reads = Guarded { reads: false, writes: true };
    let (open, open_figures) = fuzz_deployment(open_reads, MAX_EXAMPLES_OPEN_READS).await;
    eprintln!(
        "contract fuzzing, read and write tokens: {all} requests, 0 failures\n  {}\n\
         write tokens only: {open} requests, 0 failures\n  {}\n(whole test {:.0} s)",
        all_figures.join("\n  "),
        open_figures.join("\n  "),
        started.elapsed().as_secs_f64()
    );
}

/// Runs `slamon up --demo` guarding `guarded`, defines the demo SLA set, checks the
/// documents it serves, and fuzzes both services with `max_examples`: the requests made,
/// and a line of figures per service.
async fn fuzz_deployment(guarded: Guarded, max_examples: &str) -> (usize, Vec<String>) {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let (write, read) = (dir.path().join("write-tokens"), dir.path().join("read-tokens"));
    std::fs::write(&write, format!("{WRITE_TOKEN}\n")).unwrap();
    std::fs::write(&read, format!("{READ_TOKEN}\n")).unwrap();
    let setting = |k: &str, v: &Path| (k.to_owned(), v.display().to_string());
    let mut extra = vec![
        // fuzzed PUTs would otherwise be mostly 429s after the first minute's worth
        ("SLAMON_PUT_RATE_LIMIT".to_owned(), "0".to_owned()),
        // one ETL cycle at start is what the answers need; fewer leave the CPU to the fuzzing
        ("SLAMON_ETL_PERIOD".to_owned(), "60s".to_owned()),
    ];
    if guarded.writes {
        extra.push(setting("SLAMON_API_TOKEN_FILE", &write));
    }
    if guarded.reads {
        extra.push(setting("SLAMON_READ_TOKEN_FILE", &read));
    }
    let log = dir.path().join("slamon.log");
    let s = start_slamon(&dir.path().join("data"), "", &log, &extra);

    eventually("the demo series", Duration::from_secs(60), async || {
        let (status, body) = get_with(&format!("{}/metrics", s.query), Some(READ_TOKEN)).await?;
        let list: Value = serde_json::from_str(&body).ok()?;
        (status == 200 && list.as_array().is_some_and(|a| a.len() >= 5)).then_some(())
    })
    .await;

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

    // each serves the document of this deployment (with both tokens, the checked-in one),
    // to readers only
    let documents = [
        ("query-api", &s.query, slamon_query_api::openapi_for(guarded), "openapi/query-api.json"),
        ("sla-manager", &s.sla, slamon_sla_manager::openapi_for(guarded), "openapi/sla-manager.json"),
    ];
    for (_, base, doc, file) in &documents {
        let url = format!("{base}/openapi.json");
        let served = get_with(&url, Some(READ_TOKEN)).await.unwrap();
        assert_eq!(served, (200, slamon_web::openapi::render(doc)), "{url}");
        if guarded == Guarded::ALL {
            assert_eq!(served.1, std::fs::read_to_string(root.join(file)).unwrap(), "{url}");
        }
        let anonymous = get_with(&url, None).await.unwrap().0;
        assert_eq!(anonymous, if guarded.reads { 401 } else { 200 }, "{url} without a token");
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
            .args(["--checks", "all", "--max-examples", max_examples, "--generation-deterministic"])
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
        (har, child)
    };
    let runs: Vec<_> = documents.iter().map(|(name, base, doc, _)| (*name, *base, doc, fuzz(name, base))).collect();
    let fuzz_started = Instant::now();
    let (mut figures, mut total) = (Vec::new(), 0);
    for (name, base, doc, (har, mut child)) in runs {
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(dir.path().join(format!("{name}.txt"))).unwrap();
        assert!(
            status.success(),
            "schemathesis found the {name} breaking its contract ({status}, {guarded:?}):\n{text}\n\
             --- slamon log (tail) ---\n{}",
            std::fs::read_to_string(&log).unwrap_or_default().lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
        let documented = operations(doc);
        let (per_operation, statuses) = tally(&har, base, &documented);
        let requests: usize = per_operation.values().sum();
        total += requests;
        let server_errors: usize = statuses.iter().filter(|(s, _)| **s >= 500).map(|(_, n)| n).sum();
        assert_eq!(server_errors, 0, "{name}: 5xx answers {statuses:?}\n{text}");
        // every documented operation was fuzzed (schemathesis leaves out the one that
        // served it the document, compared above)
        for (method, path) in &documented {
            let key = format!("{method} {path}");
            assert!(
                per_operation.contains_key(&key) || path == "/openapi.json",
                "{name}: {key} was never requested: {per_operation:?}"
            );
        }
        let summary = text.lines().rev().find(|l| l.contains(" generated, ")).unwrap_or_default().trim().to_owned();
        figures.push(format!(
            "{name}: {requests} requests over {} documented operations ({summary}); statuses {statuses:?}; \
             per operation {per_operation:?}",
            documented.len()
        ));
    }
    figures.push(format!("fuzzing {:.0} s", fuzz_started.elapsed().as_secs_f64()));
    (total, figures)
}
