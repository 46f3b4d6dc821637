//! A Prometheus that requires TLS and basic authentication (its `--web.config.file`,
//! Debian's Prometheus): slamon reads it with a CA file and a password file, or with the
//! user and password in the URL; with a wrong password the ETL says why and the exporter
//! counts the failures; no password reaches the log, an error or `--help`.
//!
//! The test CA and the server certificate are made here (rcgen), the password hash too
//! (bcrypt). Needs Debian's `prometheus`; skipped locally without it, failing in CI.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const PASSWORD: &str = "c0rrect horse:b@ttery/staple";
const WRONG: &str = "wrong-password-7b1d";

/// Debian's Prometheus on `port`, serving only TLS with basic auth, scraping itself the
/// same way; ready when this returns.
async fn secured_prometheus(dir: &Path, port: u16) -> Proc {
    let (ca, cert, key) = test_ca();
    for (name, text) in [("ca.pem", &ca), ("server.pem", &cert), ("server-key.pem", &key)] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(dir.join("scrape-password"), PASSWORD).unwrap();
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  slamon: '{hash}'\n",
        dir.join("server.pem").display(),
        dir.join("server-key.pem").display()
    );
    std::fs::write(dir.join("web.yml"), web).unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: self\n    scheme: https\n    tls_config: {{ca_file: {ca}}}\n    basic_auth: {{username: slamon, password_file: {pw}}}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n",
        ca = dir.join("ca.pem").display(),
        pw = dir.join("scrape-password").display(),
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let proc = Proc(
        Command::new(which("prometheus").unwrap())
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.config.file={}", dir.join("web.yml").display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !reachable(port) {
        assert!(std::time::Instant::now() < deadline, "prometheus never listened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proc
}

/// The value of a counter in an exposition text (0 when absent).
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Waits until the exporter counts `at_least` failed source queries; the log otherwise.
async fn failures_counted(exporter: &str, at_least: f64, log: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = match reqwest::get(format!("{exporter}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if counter(&text, "etl_source_failures_total") >= at_least {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "source failures not counted:\n{text}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slamon_reads_a_prometheus_behind_tls_and_basic_auth_and_says_why_when_refused() {
    if !tools(&["prometheus"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _prometheus = secured_prometheus(dir.path(), port).await;
    let url = format!("https://127.0.0.1:{port}");
    let ca = dir.path().join("ca.pem").display().to_string();
    std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(dir.path().join("wrong-password"), WRONG).unwrap();
    let secured = |password_file: &str| {
        vec![
            ("SLAMON_PROMETHEUS_CA_FILE".to_owned(), ca.clone()),
            ("SLAMON_PROMETHEUS_USERNAME".to_owned(), "slamon".to_owned()),
            ("SLAMON_PROMETHEUS_PASSWORD_FILE".to_owned(), dir.path().join(password_file).display().to_string()),
        ]
    };

    // the right password: Prometheus's own series reach the query API
    let log = dir.path().join("good.log");
    let s = start_slamon(&dir.path().join("good"), &url, &log, &secured("password"));
    eventually("series of the secured Prometheus", Duration::from_secs(90), async || {
        get(&format!("{}/metrics?name=up", s.query))
            .await
            .filter(|(code, body)| *code == 200 && body.as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    drop(s);

    // the user and password in the URL (percent-encoded) work too, and are never shown
    let encoded = "c0rrect%20horse%3Ab%40ttery%2Fstaple";
    let with_user = format!("https://slamon:{encoded}@127.0.0.1:{port}");
    let log_url = dir.path().join("url.log");
    let env = [("SLAMON_PROMETHEUS_CA_FILE".to_owned(), ca.clone())];
    let s = start_slamon(&dir.path().join("url"), &with_user, &log_url, &env);
    eventually("series through the URL's credentials", Duration::from_secs(90), async || {
        get(&format!("{}/metrics?name=up", s.query))
            .await
            .filter(|(code, body)| *code == 200 && body.as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    drop(s);

    // a wrong password: a clear error in the log, counted by the exporter, retried
    let log_wrong = dir.path().join("wrong.log");
    let s = start_slamon(&dir.path().join("wrong"), &url, &log_wrong, &secured("wrong-password"));
    failures_counted(&s.exporter, 2.0, &log_wrong).await;
    drop(s);
    let wrong = std::fs::read_to_string(&log_wrong).unwrap();
    assert!(wrong.contains("401") && wrong.contains("check its credentials"), "no clear error:\n{wrong}");

    // without the CA the server is not trusted: said, not ignored
    let log_untrusted = dir.path().join("untrusted.log");
    let s = start_slamon(&dir.path().join("untrusted"), &url, &log_untrusted, &secured("password")[1..]);
    failures_counted(&s.exporter, 1.0, &log_untrusted).await;
    drop(s);

    // no credential in any log, nor in --help with them in the environment
    for log in [&log, &log_url, &log_wrong, &log_untrusted] {
        let text = std::fs::read_to_string(log).unwrap();
        for secret in [PASSWORD, WRONG, encoded] {
            assert!(!text.contains(secret), "{} shows a password", log.display());
        }
    }
    let help = Command::new(env!("CARGO_BIN_EXE_slamon"))
        .args(["up", "--help"])
        .env("PROMETHEUS_URL", &with_user)
        .env("MONGODB_URI", format!("mongodb://slamon:{encoded}@db:27017"))
        .env("SLAMON_PROMETHEUS_HEADERS", "X-Scope-OrgID=tenant-secret-42")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--prometheus-url"), "{help}");
    for secret in [encoded, "tenant-secret-42"] {
        assert!(!help.contains(secret), "--help shows a secret");
    }
}
