//! Who may change the SLA set and who may read, through `slamon up` with the demo source
//! (no server needed): the token matrix over REST (query API and SLA manager) and gRPC,
//! the token files read again when they change, the ETL of the same process still
//! reading the SLA set, and no token in the log.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const WRITE: &str = "write-token-5f0c2a9d81e34b7a";
const WRITE_2: &str = "write-token-second-77aa01";
const READ: &str = "read-token-c3d9e1f0a2b4";
const ADDED: &str = "write-token-added-later-19f2";

/// Status, `WWW-Authenticate` and JSON body of a request with `token`.
async fn call(method: reqwest::Method, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, String, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge =
        response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, challenge, response.json().await.unwrap_or(Value::Null))
}

async fn grpc_get(url: &str, token: Option<&str>) -> Result<usize, tonic::Code> {
    let mut client =
        slamon_proto::sla::v2::sla_service_client::SlaServiceClient::connect(url.to_owned()).await.unwrap();
    let mut request = tonic::Request::new(slamon_proto::sla::v2::GetSlaSetRequest {});
    if let Some(t) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    client.get_sla_set(request).await.map(|r| r.into_inner().entries.len()).map_err(|s| s.code())
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_need_a_write_token_reads_a_read_token_over_rest_and_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let (write_file, read_file) = (dir.path().join("api-tokens"), dir.path().join("read-tokens"));
    std::fs::write(&write_file, format!("# who may change the SLA set\n{WRITE}\n{WRITE_2}\n")).unwrap();
    std::fs::write(&read_file, format!("{READ}\n")).unwrap();
    let log = dir.path().join("slamon.log");
    let env = [
        ("SLAMON_API_TOKEN_FILE".to_owned(), write_file.display().to_string()),
        ("SLAMON_READ_TOKEN_FILE".to_owned(), read_file.display().to_string()),
    ];
    let s = start_slamon(&dir.path().join("data"), "", &log, &env);

    // probes need no token
    eventually("the SLA manager ready", Duration::from_secs(60), async || {
        get(&format!("{}/readyz", s.sla)).await.filter(|(code, _)| *code == 200)
    })
    .await;
    assert_eq!(get(&format!("{}/livez", s.query)).await.unwrap().0, 200);

    // reads: none or a wrong token is refused with a challenge; a read or write token reads
    let metrics = format!("{}/metrics", s.query);
    let (code, challenge, body) = call(reqwest::Method::GET, &metrics, None, None).await;
    assert_eq!((code, challenge.as_str()), (401, "Bearer realm=\"slamon\""), "{body}");
    assert!(body["error"].as_str().unwrap().contains("bearer token"), "{body}");
    let (code, challenge, _) = call(reqwest::Method::GET, &metrics, Some("nope"), None).await;
    assert_eq!(code, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let listed = eventually("the demo series", Duration::from_secs(60), async || {
        let (code, _, body) = call(reqwest::Method::GET, &metrics, Some(READ), None).await;
        (code == 200 && body.as_array().is_some_and(|a| a.len() >= 5)).then_some(body)
    })
    .await;
    assert_eq!(call(reqwest::Method::GET, &metrics, Some(WRITE), None).await.0, 200);
    let slaset = format!("{}/slaset", s.sla);
    assert_eq!(call(reqwest::Method::GET, &slaset, None, None).await.0, 401);
    assert_eq!(call(reqwest::Method::GET, &slaset, Some(READ), None).await.0, 200);

    // writes: only a write token; a refused PUT changes nothing
    let set: Vec<Value> = listed.as_array().unwrap()[..5]
        .iter()
        .map(|m| json!({"name": m["name"], "range": {"min": -1e300, "max": 1e300}, "for": 1}))
        .collect();
    let set = Value::Array(set);
    for (token, status) in [(None, 401), (Some("nope"), 401), (Some(READ), 403)] {
        let (code, challenge, body) = call(reqwest::Method::PUT, &slaset, token, Some(&set)).await;
        assert_eq!(code, status, "{token:?}: {body}");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    let (_, _, current) = call(reqwest::Method::GET, &slaset, Some(READ), None).await;
    assert_eq!(current, json!([]), "a refused PUT changed the set");
    let (code, _, body) = call(reqwest::Method::PUT, &slaset, Some(WRITE_2), Some(&set)).await;
    assert_eq!(code, 201, "{body}");

    // gRPC: the same read rule; health stays open
    assert_eq!(grpc_get(&s.grpc, None).await, Err(tonic::Code::Unauthenticated));
    assert_eq!(grpc_get(&s.grpc, Some("nope")).await, Err(tonic::Code::Unauthenticated));
    assert_eq!(grpc_get(&s.grpc, Some(READ)).await, Ok(5));
    assert_eq!(grpc_get(&s.grpc, Some(WRITE)).await, Ok(5));
    let channel = tonic::transport::Endpoint::from_shared(s.grpc.clone()).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(serving.into_inner().status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // the ETL of this process reads the set (from the read model, not over gRPC): samples arrive
    eventually("SLA samples from the ETL", Duration::from_secs(60), async || {
        let (code, _, status) = call(reqwest::Method::GET, &format!("{}/status", s.sla), Some(READ), None).await;
        (code == 200
            && status.as_array().is_some_and(|a| {
                a.len() == 5 && a.iter().all(|e| e["last-values"].as_array().is_some_and(|v| !v.is_empty()))
            }))
        .then_some(())
    })
    .await;

    // a token added to the file works without a restart; a removed one stops working
    std::fs::write(&write_file, format!("{WRITE}\n{ADDED}\n")).unwrap();
    eventually("the new token accepted", Duration::from_secs(10), async || {
        let (code, _, _) = call(reqwest::Method::PUT, &slaset, Some(ADDED), Some(&set)).await;
        (code == 200).then_some(())
    })
    .await;
    assert_eq!(call(reqwest::Method::PUT, &slaset, Some(WRITE_2), Some(&set)).await.0, 401);

    // no token is ever written to the log
    drop(s);
    let text = std::fs::read_to_string(&log).unwrap();
    for token in [WRITE, WRITE_2, READ, ADDED] {
        assert!(!text.contains(token), "the log holds a token");
    }
}

#[test]
fn without_a_token_the_write_api_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("slamon.log");
    let port = free_port();
    let env = [("SLAMON_SLA_MANAGER_LISTEN".to_owned(), format!("[::]:{port}"))];
    let s = start_slamon(&dir.path().join("data"), "", &log, &env);
    // the port is bound before the serving task logs that it listens: wait for both
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let listening_logged = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("listening") && l.contains("sla-manager\""))
    };
    while !(reachable(port) && listening_logged()) {
        assert!(std::time::Instant::now() < deadline, "the SLA manager never listened");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(s);
    let text = std::fs::read_to_string(&log).unwrap();
    let said = text.lines().find(|l| l.contains("listens on loopback only")).expect("a start message saying so");
    assert!(said.contains(&format!("127.0.0.1:{port}")), "{said}");
    let listening = text.lines().find(|l| l.contains("listening") && l.contains("sla-manager\"")).unwrap();
    assert!(listening.contains(&format!("127.0.0.1:{port}")), "{listening}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_and_grpc_are_served_over_tls_with_a_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca();
    let (cert_file, key_file) = (dir.path().join("tls.pem"), dir.path().join("tls-key.pem"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let env = [
        ("SLAMON_TLS_CERT_FILE".to_owned(), cert_file.display().to_string()),
        ("SLAMON_TLS_KEY_FILE".to_owned(), key_file.display().to_string()),
    ];
    let log = dir.path().join("slamon.log");
    let https = |url: &str| url.replacen("http://", "https://", 1);
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    // a port picked free can be taken before slamon binds it (another test's outgoing
    // connection): a process that exits is started again on other ports
    let mut attempts = 0;
    let (s, metrics) = 'started: loop {
        attempts += 1;
        let mut s = start_slamon(&dir.path().join(format!("data-{attempts}")), "", &log, &env);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = s.proc.0.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(attempts < 3, "slamon exited ({status}) three times: {text}");
                continue 'started;
            }
            let answer = async {
                let r = client.get(format!("{}/metrics", https(&s.query))).send().await.ok()?;
                let body: Value = r.json().await.ok()?;
                body.as_array().is_some_and(|a| !a.is_empty()).then_some(body)
            };
            if let Some(body) = answer.await {
                break 'started (s, body);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("timed out waiting for the query API over TLS: {}", std::fs::read_to_string(&log).unwrap_or_default());
    };
    assert!(metrics.as_array().unwrap()[0]["id"].is_string(), "{metrics}");
    let ready = client.get(format!("{}/readyz", https(&s.sla))).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // plain HTTP is not answered on a TLS listener
    assert!(reqwest::get(format!("{}/metrics", s.query)).await.is_err());

    // gRPC over TLS, with the CA
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(https(&s.grpc))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut sla = slamon_proto::sla::v2::sla_service_client::SlaServiceClient::new(channel);
    let reply = sla.get_sla_set(slamon_proto::sla::v2::GetSlaSetRequest {}).await.unwrap();
    assert!(reply.into_inner().entries.is_empty());
}

#[test]
fn a_setting_naming_a_file_that_cannot_be_used_is_said_once_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_slamon"))
            .arg("up")
            .env("SLAMON_DATA_DIR", dir.path().join("data"))
            .env("SLAMON_QUERY_API_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("SLAMON_SLA_MANAGER_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("SLAMON_GRPC_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("SLAMON_EXPORTER_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("SLAMON_REGISTRY_LISTEN", format!("127.0.0.1:{}", free_port()))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for env in [
        &[("SLAMON_TLS_CERT_FILE", "/nonexistent/cert.pem")][..],
        &[("SLAMON_TLS_CERT_FILE", "/nonexistent/cert.pem"), ("SLAMON_TLS_KEY_FILE", "/nonexistent/key.pem")][..],
        &[("SLAMON_API_TOKEN_FILE", "/nonexistent/tokens")][..],
    ] {
        let (code, stderr) = run(env);
        assert_eq!(code, Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains("slamon cannot start") && !stderr.contains("Caused by"), "{stderr}");
    }
    // a Prometheus URL with a query string is refused as a setting, its value hidden
    let (code, stderr) = run(&[("PROMETHEUS_URL", "https://127.0.0.1:9/prom?token=s3cret-query")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no query string") && !stderr.contains("s3cret-query"), "{stderr}");
}
