//! The SLA manager's web page in Debian's headless Chromium, against `slamon up --demo`.
//! The pages carry no script and their Content-Security-Policy forbids any, so what
//! Chromium shows is what a browser with JavaScript off shows (Chromium's own
//! `scriptEnabled=false` also disables its `--dump-dom` and `--screenshot`): every page loads and shows what a person looks for (the SLAs with
//! their states, descriptions and charts; an SLA's violations and forecast; the metrics
//! browser and a series' statistics; the SLA set history), and a screenshot of each is
//! kept in `target/tmp/page-screenshots/`. Skipped locally without Chromium, failing in
//! CI.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// Chromium's binary: Debian's launcher script (`chromium`) fails on some machines
/// before starting it, so the binary it starts when present.
fn chromium() -> PathBuf {
    let direct = Path::new("/usr/lib/chromium/chromium");
    if direct.exists() {
        direct.to_owned()
    } else {
        which("chromium").unwrap()
    }
}

/// Headless Chromium with a profile in `profile` and `args`.
fn headless(profile: &Path, args: &[String]) -> std::process::Output {
    Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap()
}

/// The DOM Chromium built from `url`.
fn dom(profile: &Path, url: &str) -> String {
    let out = headless(profile, &["--dump-dom".into(), url.into()]);
    assert!(out.status.success(), "chromium --dump-dom {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A screenshot of `url` in `file` (1280 px wide).
fn screenshot(profile: &Path, url: &str, file: &Path) {
    let out =
        headless(profile, &["--window-size=1280,2200".into(), format!("--screenshot={}", file.display()), url.into()]);
    assert!(out.status.success(), "chromium --screenshot {url}: {}", String::from_utf8_lossy(&out.stderr));
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "{} is {size} bytes: {}", file.display(), String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_shows_its_content_in_chromium_without_javascript() {
    if !tools(&["chromium"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("chromium");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("page-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let s = start_slamon(&dir.path().join("data"), "", &dir.path().join("slamon.log"), &[]);
    let listed = demo_series(&s).await;
    let picked: Vec<Value> = listed.as_array().unwrap()[..5].to_vec();

    // no set yet: the page says how to define one
    let empty = dom(&profile, &format!("{}/", s.sla));
    assert!(empty.contains("No SLA set is defined yet"), "{empty}");

    // three SLAs fire (no value is in their range), two do not
    let set: Vec<Value> = picked
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let range = if i < 3 { json!({"min": 1e300, "max": 1e301}) } else { json!({"min": -1e301, "max": 1e301}) };
            json!({"name": m["name"], "range": range, "for": 1})
        })
        .collect();
    let client = reqwest::Client::new();
    assert_eq!(client.put(format!("{}/slaset", s.sla)).json(&set).send().await.unwrap().status(), 201);
    eventually("three firing SLAs", Duration::from_secs(60), async || {
        let (_, status) = get(&format!("{}/status", s.sla)).await?;
        (status.as_array()?.iter().filter(|e| e["status"] == "firing").count() == 3).then_some(())
    })
    .await;

    // the SLA set: each entry, its state and description, a chart each; no script, and
    // a policy that runs none
    let res = client.get(format!("{}/", s.sla)).send().await.unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
    let served = res.text().await.unwrap();
    for banned in ["<script", " onload=", "src=\"http", "href=\"http", "href=\"//", "src=\"//"] {
        assert!(!served.contains(banned), "{banned} in {served}");
    }
    let home = dom(&profile, &format!("{}/", s.sla));
    for m in &picked {
        let name = m["name"]["__name__"].as_str().unwrap();
        assert!(home.contains(name), "{name} missing from the SLA page");
        assert!(home.contains(&format!("href=\"/sla/{}\"", m["id"].as_str().unwrap())), "no link to {}", m["id"]);
    }
    assert_eq!(home.matches("class=\"state firing\"").count(), 6, "3 firing, in the table and on their charts");
    assert_eq!(home.matches("class=\"state inactive\"").count(), 4);
    assert!(home.contains("Service level agreement violated for more than 1 min"));
    assert_eq!(home.matches("<svg").count(), 5, "a chart per SLA");
    assert!(home.contains("over the last 12h"), "charts say what they show");
    screenshot(&profile, &format!("{}/", s.sla), &shots.join("slas.png"));

    // one SLA: its state, violations per window, forecast, charts
    let id = picked[0]["id"].as_str().unwrap();
    let sla = dom(&profile, &format!("{}/sla/{id}", s.sla));
    assert!(sla.contains("class=\"state firing\""), "{sla}");
    for text in
        ["Violations", "1h", "3h", "12h", "Forecast", "Last hour and the forecast", "Allowed range [1e300, 1e301]"]
    {
        assert!(sla.contains(text), "the SLA page lacks {text:?}");
    }
    assert_eq!(sla.matches("<svg").count(), 2);
    screenshot(&profile, &format!("{}/sla/{id}", s.sla), &shots.join("sla.png"));
    let unknown = dom(&profile, &format!("{}/sla/000000000000000000000000", s.sla));
    assert!(unknown.contains("No SLA with id 000000000000000000000000"), "{unknown}");
    // an id in capitals is the same SLA; one that is not even UTF-8 is an HTML 404
    let upper = client.get(format!("{}/sla/{}", s.sla, id.to_ascii_uppercase())).send().await.unwrap();
    assert_eq!(upper.status(), 200);
    for path in ["/sla/%ff%fe", "/ui/metrics/%ff%fe"] {
        let res = client.get(format!("{}{path}", s.sla)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
    }

    // the metrics browser: every demo series, a filter by name, a series' statistics
    let browser = dom(&profile, &format!("{}/ui/metrics", s.sla));
    for m in listed.as_array().unwrap() {
        assert!(browser.contains(&format!("/ui/metrics/{}", m["id"].as_str().unwrap())), "{} not listed", m["id"]);
    }
    let name = picked[0]["name"]["__name__"].as_str().unwrap();
    let filtered = dom(&profile, &format!("{}/ui/metrics?name={name}", s.sla));
    let same_name = listed.as_array().unwrap().iter().filter(|m| m["name"]["__name__"] == name).count();
    assert_eq!(filtered.matches("href=\"/ui/metrics/").count(), same_name, "{filtered}");
    // every label filter applies, as in the query API; nothing left says so
    let job = picked[0]["name"]["job"].as_str().unwrap();
    let both = dom(&profile, &format!("{}/ui/metrics?match=job={job}&match=job=nope", s.sla));
    assert!(both.contains("No series match.") && !both.contains("href=\"/ui/metrics/"), "{both}");
    let past = dom(&profile, &format!("{}/ui/metrics?offset=100000", s.sla));
    assert!(past.contains("No series past 100000."), "{past}");
    screenshot(&profile, &format!("{}/ui/metrics", s.sla), &shots.join("metrics.png"));
    let series = eventually("window statistics on the series page", Duration::from_secs(60), async || {
        let page = dom(&profile, &format!("{}/ui/metrics/{id}", s.sla));
        (!page.contains("Not computed yet.")).then_some(page)
    })
    .await;
    for text in ["Window statistics", "std dev", "Metadata", "Forecast"] {
        assert!(series.contains(text), "the series page lacks {text:?}");
    }
    screenshot(&profile, &format!("{}/ui/metrics/{id}", s.sla), &shots.join("series.png"));

    // the history: both versions, newest first
    let mut changed = set.clone();
    changed[4]["for"] = json!(5);
    assert_eq!(client.put(format!("{}/slaset", s.sla)).json(&changed).send().await.unwrap().status(), 200);
    let history = dom(&profile, &format!("{}/ui/history", s.sla));
    let (v2, v1) = (history.find("Version 2").unwrap(), history.find("Version 1").unwrap());
    assert!(v2 < v1, "newest first");
    assert!(history[v2..v1].contains("5 min") && !history[v1..].contains("5 min"), "{history}");
    screenshot(&profile, &format!("{}/ui/history", s.sla), &shots.join("history.png"));
}
