//! The embedded log's retention on `slamon up`: with a short retention the log is
//! compacted into snapshots of the read models again and again while the demo runs and
//! SLA sets change, and a replay afterwards (from the last snapshot and the records
//! after it) rebuilds read models equal to the live ones, every SLA set version included.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

mod support;

/// `slamon replay ARGS` on the data dir, alone (it serves the data dir's registry itself).
fn replay(data: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slamon"))
        .arg("replay")
        .args(args)
        .env("SLAMON_DATA_DIR", data)
        // nothing answers here: the embedded default must not need it
        .env("SCHEMA_REGISTRY_URL", format!("http://127.0.0.1:{}", free_port()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_embedded_log_still_replays_every_read_model() {
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("slamon.log"));
    let retention = [("SLAMON_EMBEDDED_LOG_RETENTION".to_owned(), "2s".to_owned())];
    let s = start_slamon(&data, "", &log, &retention);
    let listed = demo_series(&s).await;
    let client = reqwest::Client::new();
    let set = |max: f64| -> Vec<Value> {
        listed.as_array().unwrap()[..5]
            .iter()
            .map(|m| json!({"name": m["name"], "range": {"min": -1e9, "max": max}, "for": 1}))
            .collect()
    };
    let snapshots = async || counter(&s.exporter, "slamon_embedded_log_snapshots_total").await;
    for (max, status) in [(1e9, 201), (5.0, 200)] {
        let before = snapshots().await;
        let res = client.put(format!("{}/slaset", s.sla)).json(&set(max)).send().await.unwrap();
        assert_eq!(res.status(), status, "{}", res.text().await.unwrap());
        // a snapshot after each change: the set's event is gone from the log afterwards
        eventually("a snapshot after the PUT", Duration::from_secs(60), async || {
            (snapshots().await > before + 1.0).then_some(())
        })
        .await;
    }
    assert!(counter(&s.exporter, "slamon_embedded_log_records_deleted_total").await > 0.0);
    assert!(counter(&s.exporter, "slamon_data_dir_bytes").await > 0.0);
    assert!(counter(&s.exporter, "slamon_data_dir_available_bytes").await > 0.0);
    let history = get(&format!("{}/slaset/history", s.sla)).await.unwrap().1;
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");
    // a data dir with no log (a typo) is refused, and nothing is created there
    let typo = dir.path().join("dta");
    let (ok, missing) = replay(&typo, &["--dry-run"]);
    assert!(!ok && missing.contains("no embedded event log"), "{missing}");
    assert!(!typo.exists(), "nothing created");
    // beside a running `slamon up`, a replay says why it cannot run and changes nothing
    let (ok, beside) = replay(&data, &["--dry-run"]);
    assert!(!ok && beside.contains("another slamon"), "{beside}");
    drop(s.proc);

    let (ok, dry) = replay(&data, &["--dry-run"]);
    assert!(ok, "{dry}");
    assert!(dry.contains("from the log's snapshot at offset"), "{dry}");
    assert!(dry.contains("the rebuilt read models equal the live ones"), "{dry}");
    let (ok, real) = replay(&data, &[]);
    assert!(ok && real.contains("swapped the rebuilt read models in"), "{real}");

    // the replayed models serve the same history
    let s = start_slamon(&data, "", &log, &[("SLAMON_EMBEDDED_LOG_RETENTION".to_owned(), "off".to_owned())]);
    let again = eventually("slamon back up", Duration::from_secs(60), async || {
        get(&format!("{}/slaset/history", s.sla)).await.filter(|(c, _)| *c == 200).map(|(_, b)| b)
    })
    .await;
    assert_eq!(again, history);
}
