//! The seed's client keeps working: slamon's Postman collection
//! (`tests/postman/slamon.postman_collection.json`: every request of the seed's
//! `DSBD.postman_collection.json` and slamon's own, each with its tests) passes under
//! `newman` against `slamon up --demo`. Needs `newman` (npm; skipped locally without it,
//! failing in CI).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_postman_collection_passes_against_the_demo() {
    if !tools(&["newman"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("slamon.log");
    let s = start_slamon(&dir.path().join("data"), "", &log, &[]);
    // the collection waits for the data the SLA set brings (samples, forecasts); the
    // series must be listed before it builds the set from them
    eventually("the demo series", Duration::from_secs(60), async || {
        get(&format!("{}/metrics", s.query))
            .await
            .filter(|(c, b)| *c == 200 && b.as_array().is_some_and(|a| a.len() >= 5))
    })
    .await;

    let collection = root().join("tests/postman/slamon.postman_collection.json");
    let report = dir.path().join("newman.json");
    let run = tokio::process::Command::new("newman")
        .arg("run")
        .arg(&collection)
        .args(["--env-var", &format!("query={}", s.query)])
        .args(["--env-var", &format!("sla={}", s.sla)])
        .args(["--env-var", "set_size=5", "--env-var", "wait_seconds=60"])
        .args(["--color", "off", "--disable-unicode", "--timeout-request", "30000", "--timeout", "300000"])
        .args(["--reporters", "cli,json", "--reporter-json-export"])
        .arg(&report)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(330), run)
        .await
        .expect("newman did not finish in 330 s")
        .unwrap_or_else(|e| panic!("newman: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "newman run {} failed ({}):\n{stdout}\n{}\nslamon's log:\n{}",
        collection.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // every request of the collection ran and its tests asserted something
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let run = &report["run"];
    let names = request_names(&serde_json::from_str(&std::fs::read_to_string(&collection).unwrap()).unwrap());
    assert!(names.len() >= 30, "{names:?}");
    assert_eq!(run["stats"]["items"]["total"], names.len(), "{stdout}");
    for stat in ["items", "requests", "testScripts", "prerequestScripts", "assertions"] {
        assert_eq!(run["stats"][stat]["failed"], 0, "{stat}: {stdout}");
    }
    assert_eq!(run["failures"].as_array().map(Vec::len), Some(0), "{stdout}");
    let tested: BTreeSet<&str> = run["executions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["assertions"].as_array().is_some_and(|a| !a.is_empty()))
        .filter_map(|e| e["item"]["name"].as_str())
        .collect();
    let untested: Vec<&String> = names.iter().filter(|n| !tested.contains(n.as_str())).collect();
    assert!(untested.is_empty(), "requests without a passing test: {untested:?}\n{stdout}");
}

/// The names of the requests of a Postman collection, folders walked.
fn request_names(collection: &Value) -> Vec<String> {
    fn walk(items: &Value, out: &mut Vec<String>) {
        for item in items.as_array().into_iter().flatten() {
            if item.get("item").is_some() {
                walk(&item["item"], out);
            } else {
                out.push(item["name"].as_str().unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&collection["item"], &mut out);
    out
}
