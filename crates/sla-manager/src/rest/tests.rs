use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use slamon_domain::*;
use slamon_embedded::{EmbeddedLog, EmbeddedStore};
use slamon_events::{EventCodec, Publisher};
use slamon_projector::{Projector, ProjectorConfig, ProjectorMetrics};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::*;

struct Harness {
    app: axum::Router,
    state: AppState,
    log: Arc<EmbeddedLog>,
    /// The projector, when the harness was made without one running.
    idle_projector: Option<Projector>,
    store: Arc<EmbeddedStore>,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn labels(i: usize) -> Labels {
    [("__name__", format!("m{i}")), ("job", "node".to_owned())].into_iter().collect()
}

struct BrokenLog;

#[async_trait]
impl EventLog for BrokenLog {
    async fn append(&self, _: &str, _: Vec<(String, Vec<u8>)>) -> PortResult<Vec<Position>> {
        Err(PortError::Unavailable("broker down".into()))
    }
    async fn consumer(&self, _: &str, _: &str) -> PortResult<Box<dyn LogConsumer>> {
        Err(PortError::Unavailable("broker down".into()))
    }
}

async fn harness(broken_log: bool) -> Harness {
    harness_with(broken_log, None, true).await
}

/// The SLA manager on the embedded log and store, with a projector when `project` (else
/// nothing ever shows a PUT, which then waits 300 ms for it).
async fn harness_with(
    broken_log: bool,
    put_rate: Option<Arc<governor::DefaultDirectRateLimiter>>,
    project: bool,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(slamon_registry::serve(dir.path().join("r.redb"), listener, cancel.clone()));
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log.redb")).unwrap());
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let codec = Arc::new(EventCodec::new(&url, TOPIC).unwrap());
    let projector = Projector::new(
        log.consumer("p", TOPIC).await.unwrap(),
        store.clone(),
        codec.clone(),
        log.clone(),
        ProjectorConfig { poll_wait: Duration::from_millis(50), ..Default::default() },
        ProjectorMetrics::unregistered(),
    );
    let idle_projector = if project {
        tokio::spawn(projector.run(cancel.clone()));
        None
    } else {
        Some(projector)
    };
    // five known series (and one more)
    let docs = (0..6)
        .map(|i| {
            let l = labels(i);
            Document::Metric(MetricView {
                id: l.id(),
                labels: l,
                removed: false,
                values: None,
                prediction: None,
                metadata: None,
                applied: Position::new(0, 0),
            })
        })
        .collect();
    store.write(docs).await.unwrap();
    let embedded = log.clone();
    let log: Arc<dyn EventLog> = if broken_log { Arc::new(BrokenLog) } else { log };
    let state = AppState {
        store: store.clone(),
        publisher: Publisher::new(codec, log),
        set_size: 5,
        db_timeout: Duration::from_secs(2),
        visibility_timeout: if project { Duration::from_secs(10) } else { Duration::from_millis(300) },
        absent_after: Duration::from_secs(600),
        lookback: slamon_domain::semantics::DEFAULT_LOOKBACK,
        max_body_bytes: 1 << 20,
        producer: "test".into(),
        put_lock: Arc::default(),
        caught_up: tokio::sync::watch::channel(true).1,
        access: slamon_web::auth::Access::open(),
        put_rate,
        body_read_timeout: Duration::from_secs(2),
        stopping: Default::default(),
    };
    Harness { app: router(state.clone()), state, log: embedded, idle_projector, store, cancel, _dir: dir }
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, Value, Option<String>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let version = res.headers().get("x-slaset-version").map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), version)
}

fn set(range_max: f64) -> Value {
    Value::Array((0..5).map(|i| json!({"name": labels(i), "range": {"min": 0, "max": range_max}, "for": 2})).collect())
}

async fn put(app: &axum::Router, body: &Value) -> (StatusCode, Value) {
    let (s, b, _) = call(app, "PUT", "/slaset", body.to_string().into_bytes()).await;
    (s, b)
}

#[tokio::test]
async fn puts_over_the_rate_limit_get_429_with_retry_after_and_change_nothing() {
    // 6 a minute, in bursts of one
    let limiter = governor::RateLimiter::direct(
        governor::Quota::per_minute(std::num::NonZeroU32::new(6).unwrap()).allow_burst(std::num::NonZeroU32::MIN),
    );
    let h = harness_with(false, Some(Arc::new(limiter)), true).await;
    assert_eq!(put(&h.app, &set(10.0)).await.0, StatusCode::CREATED);
    let req = Request::builder()
        .method("PUT")
        .uri("/slaset")
        .header("content-type", "application/json")
        .body(Body::from(set(20.0).to_string()))
        .unwrap();
    let res = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    let (_, body, version) = call(&h.app, "GET", "/slaset", vec![]).await;
    assert_eq!((body[0]["range"]["max"].as_f64(), version.as_deref()), (Some(10.0), Some("1")));
}

#[tokio::test]
async fn a_body_declared_as_another_media_type_than_json_is_415_and_changes_nothing() {
    let h = harness(false).await;
    let put_as = |content_type: Option<&'static str>, body: Value| {
        let app = h.app.clone();
        async move {
            let mut req = Request::builder().method("PUT").uri("/slaset");
            if let Some(t) = content_type {
                req = req.header("content-type", t);
            }
            let res = app.oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };
    // what `curl -d` sends without -H, and other types or charsets
    for t in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/jsonx",
        "application/+json",
        "application/json; charset=latin1",
    ] {
        let (status, body) = put_as(Some(t), set(10.0)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{t}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("Unsupported Content-Type `{t}`")), "{error}");
        assert!(error.ends_with("the SLA set is sent as JSON (Content-Type: application/json)"), "{error}");
    }
    let (_, got, version) = call(&h.app, "GET", "/slaset", vec![]).await;
    assert_eq!((got, version.as_deref()), (json!([]), Some("0")), "nothing was recorded");
    // JSON however it is spelled, or no header at all
    let mut max = 10.0;
    for t in [
        Some("application/json"),
        Some("Application/JSON; charset=\"UTF-8\""),
        Some("application/vnd.slaset+json"),
        None,
    ] {
        max += 1.0;
        let (status, body) = put_as(t, set(max)).await;
        assert!(status.is_success(), "{t:?}: {status} {body}");
    }
}

async fn put_with(app: &axum::Router, body: &Value, if_match: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("PUT")
        .uri("/slaset")
        .header("content-type", "application/json")
        .header("if-match", if_match)
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_identical_put_changes_nothing_and_if_match_guards_against_lost_updates() {
    let h = harness(false).await;
    assert_eq!(put(&h.app, &set(10.0)).await.0, StatusCode::CREATED);
    // the same set, in another order: nothing appended, the current version answered
    let mut reordered = set(10.0);
    reordered.as_array_mut().unwrap().reverse();
    assert_eq!(put(&h.app, &reordered).await, (StatusCode::OK, json!({"message": "SLA set unchanged", "version": 1})));
    let (_, hist, _) = call(&h.app, "GET", "/slaset/history", vec![]).await;
    assert_eq!(hist.as_array().unwrap().len(), 1, "an identical PUT made a version");

    // a client that read version 1 updates it; another that read it too is refused
    assert_eq!(put_with(&h.app, &set(20.0), "\"1\"").await.1["version"], 2);
    let (status, body) = put_with(&h.app, &set(30.0), "1").await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert!(body["error"].as_str().unwrap().contains("version 2"), "{body}");
    let (_, current, version) = call(&h.app, "GET", "/slaset", vec![]).await;
    assert_eq!((current[0]["range"]["max"].as_f64(), version.as_deref()), (Some(20.0), Some("2")));
    // If-Match compares strongly (RFC 9110 §13.1.1): a weak tag never matches
    let (status, body) = put_with(&h.app, &set(30.0), "W/\"2\"").await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert!(body["error"].as_str().unwrap().contains("weak"), "{body}");
    // a list passes when any member matches, on one line or several
    assert_eq!(put_with(&h.app, &set(30.0), "\"7\", \"2\"").await.1["version"], 3);
    for (lines, max) in [(["\"3\"", "1"], 35.0), (["1", "\"4\""], 36.0)] {
        let mut req = Request::builder().method("PUT").uri("/slaset");
        for line in lines {
            req = req.header("if-match", line);
        }
        let res = h.app.clone().oneshot(req.body(Body::from(set(max).to_string())).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{lines:?}");
    }
    assert_eq!(put_with(&h.app, &set(40.0), "*").await.0, StatusCode::OK);
    for malformed in ["two", "\"2", "W/2", "*, \"6\"", "\"6\",,\"7\"", ""] {
        let (status, body) = put_with(&h.app, &set(50.0), malformed).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed}: {body}");
    }
    let (_, current, version) = call(&h.app, "GET", "/slaset", vec![]).await;
    assert_eq!((current[0]["range"]["max"].as_f64(), version.as_deref()), (Some(40.0), Some("6")));
}

#[tokio::test]
async fn a_durable_put_the_read_model_does_not_show_yet_is_202_and_versions_are_never_given_twice() {
    let h = harness_with(false, None, false).await;
    let (status, body) = put(&h.app, &set(10.0)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["version"], 1);
    // the read model still shows nothing: the next version is still a new one
    let (status, body) = put(&h.app, &set(20.0)).await;
    assert_eq!((status, body["version"].as_u64()), (StatusCode::ACCEPTED, Some(2)));
}

#[tokio::test]
async fn a_put_waiting_for_the_read_model_when_the_service_stops_answers_202_at_once() {
    // nothing projects here, and the wait for the read model would last 30 s; the service
    // stops (its projector with it) 200 ms into the PUT
    let h = harness_with(false, None, false).await;
    let stopping = CancellationToken::new();
    let app =
        router(AppState { visibility_timeout: Duration::from_secs(30), stopping: stopping.clone(), ..h.state.clone() });
    let started = std::time::Instant::now();
    let put = tokio::spawn(async move { put(&app, &set(10.0)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stopping.cancel();
    let (status, body) = tokio::time::timeout(Duration::from_secs(2), put).await.expect("an answer").unwrap();
    // recorded, so 202 with its version: not cut off without an answer by the listener's grace
    assert_eq!((status, body["version"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_restarted_sla_manager_numbers_versions_only_once_the_read_model_caught_up() {
    let mut h = harness_with(false, None, false).await;
    let (status, body) = put(&h.app, &set(10.0)).await;
    assert_eq!((status, body["version"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "durable, not shown");
    // the SLA manager restarts: it forgets the versions it gave, the read model still lags
    let (caught_up, watch) = tokio::sync::watch::channel(false);
    let restarted = AppState { put_lock: Arc::default(), caught_up: watch, ..h.state.clone() };
    let catch_up = crate::CatchUp { log: h.log.clone(), topic: TOPIC.into(), group: "p".into(), caught_up };
    tokio::spawn(catch_up.run(h.cancel.clone()));
    let app = router(restarted);
    let (status, body) = put(&app, &set(20.0)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "it could give version 1 again: {body}");
    assert!(body["error"].as_str().unwrap().contains("catching up"), "{body}");
    assert_eq!(h.store.sla_set().await.unwrap(), None, "nothing changed");
    // the projector runs: the read model shows version 1, the next PUT is version 2
    tokio::spawn(h.idle_projector.take().unwrap().run(h.cancel.clone()));
    let (status, body) = put(&app, &set(30.0)).await;
    assert_eq!((status, body["version"].as_u64()), (StatusCode::OK, Some(2)), "{body}");
    assert_eq!(h.store.sla_set_history().await.unwrap().len(), 2);
}

/// A store that refuses to list: every read must name its documents.
struct NoScans(Arc<EmbeddedStore>);

#[async_trait]
impl ReadModelStore for NoScans {
    async fn metrics(&self, _: &MetricFilter) -> PortResult<Vec<MetricView>> {
        Err(PortError::Other("a listing of every series".into()))
    }
    async fn load(&self, keys: &[DocKey]) -> PortResult<Vec<Option<Document>>> {
        self.0.load(keys).await
    }
    async fn write(&self, docs: Vec<Document>) -> PortResult<()> {
        self.0.write(docs).await
    }
    async fn all(&self, _: Collection) -> PortResult<Vec<Document>> {
        Err(PortError::Other("a scan of a collection".into()))
    }
}

#[tokio::test]
async fn validation_reads_only_the_series_the_set_names() {
    let h = harness(false).await;
    let app = router(AppState { store: Arc::new(NoScans(h.store.clone())), ..h.state.clone() });
    // a sixth series nobody names, removed: the set naming it is refused as unknown
    let mut gone = match h.store.metric(&labels(5).id()).await.unwrap() {
        Some(m) => m,
        None => panic!("the harness writes six series"),
    };
    gone.removed = true;
    h.store.write(vec![Document::Metric(gone)]).await.unwrap();
    let mut body = set(10.0);
    body[4]["name"] = json!(labels(5));
    let (status, answer) = put(&app, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer.to_string().contains("does not exists"), "{answer}");
    let (status, answer) = put(&app, &set(10.0)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

#[tokio::test]
async fn a_body_that_is_too_large_or_too_slow_is_refused_without_holding_the_request() {
    let h = harness(false).await;
    // a declared length over the limit: refused before any byte of the body is read
    let req = Request::builder()
        .method("PUT")
        .uri("/slaset")
        .header("content-length", "5000000")
        .body(Body::from_stream(futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>()))
        .unwrap();
    let started = std::time::Instant::now();
    let res = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(started.elapsed() < Duration::from_secs(1));
    // a body that never comes: refused at the body deadline
    let req = Request::builder()
        .method("PUT")
        .uri("/slaset")
        .body(Body::from_stream(futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>()))
        .unwrap();
    let res = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("did not arrive"), "{body:?}");
    // a streamed body over the limit (no length declared) is too large; one the
    // connection fails to deliver (a malformed chunk) is said to be unreadable, not large
    let chunk = || Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1 << 16]));
    for (stream, says) in [
        (futures::stream::iter((0..20).map(|_| chunk()).collect::<Vec<_>>()), "too large"),
        (futures::stream::iter(vec![chunk(), Err(std::io::Error::other("invalid chunk size"))]), "could not be read"),
    ] {
        let req = Request::builder().method("PUT").uri("/slaset").body(Body::from_stream(stream)).unwrap();
        let res = h.app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(says), "{says}: {body:?}");
    }
    // and a method a route does not take is a JSON 405
    let (status, body, _) = call(&h.app, "DELETE", "/slaset", vec![]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn a_route_refuses_query_parameters_it_does_not_declare_but_a_web_page_ignores_them() {
    let h = harness(false).await;
    assert_eq!(put(&h.app, &set(10.0)).await.0, StatusCode::CREATED);
    for uri in [
        "/status?foo=1",
        "/violations?x",
        "/slaset?foo=bar",
        "/slaset/history?limit=1",
        "/forecast-scores?x=1",
        "/metrics/prometheus?x=1",
        "/future-violations?min_probabilty=0.5",
        "/metrics?limit=1&limit=2",
        "/livez?x=1",
    ] {
        let (status, body, _) = call(&h.app, "GET", uri, vec![]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("Unknown query parameter") || error.contains("more than once"), "{uri}: {body}");
    }
    let (_, body, _) = call(&h.app, "GET", "/future-violations?min_probabilty=0.5", vec![]).await;
    assert_eq!(body["error"], "Unknown query parameter `min_probabilty` (known: min_probability)");
    // what a route declares passes, a list parameter repeated too
    for uri in ["/status", "/future-violations?min_probability=0.5", "/metrics?match=job=a&match=instance=b"] {
        assert_eq!(call(&h.app, "GET", uri, vec![]).await.0, StatusCode::OK, "{uri}");
    }
    // a web page ignores what it does not use (links carry their own parameters)
    let req = Request::builder().uri("/ui/metrics?utm_source=mail").body(Body::empty()).unwrap();
    assert_eq!(h.app.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn the_seeds_get_metrics_lists_the_series_here_too() {
    let h = harness(false).await;
    let (status, body, _) = call(&h.app, "GET", "/metrics", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    let listed = body.as_array().unwrap();
    assert_eq!(listed.len(), 6, "{body}");
    assert_eq!(listed[0]["_id"]["$oid"], listed[0]["id"]);
    assert!(listed.iter().any(|m| m["name"] == json!(labels(0))), "{body}");
    let (status, body, _) = call(&h.app, "GET", "/metrics?limit=2", vec![]).await;
    assert_eq!((status, body.as_array().unwrap().len()), (StatusCode::OK, 2));
    assert_eq!(call(&h.app, "GET", "/metrics?limit=x", vec![]).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn put_creates_then_updates_and_get_reads_its_own_write() {
    let h = harness(false).await;
    let (_, body, version) = call(&h.app, "GET", "/slaset", vec![]).await;
    assert_eq!((body, version.as_deref()), (json!([]), Some("0")));

    assert_eq!(
        put(&h.app, &set(10.0)).await,
        (StatusCode::CREATED, json!({"message": "SLA set created", "version": 1}))
    );
    let (status, body, version) = call(&h.app, "GET", "/slaset", vec![]).await;
    assert_eq!((status, version.as_deref()), (StatusCode::OK, Some("1")));
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["_id"]["$oid"], labels(0).id().to_string());
    assert_eq!(items[0]["name"], json!(labels(0)));
    assert_eq!(items[0]["range"], json!({"min": 0.0, "max": 10.0}));
    assert_eq!(items[0]["for"], 2);

    // what GET returns can be PUT back (the same set: nothing changes)
    assert_eq!(put(&h.app, &body).await, (StatusCode::OK, json!({"message": "SLA set unchanged", "version": 1})));
    assert_eq!(put(&h.app, &set(15.0)).await, (StatusCode::OK, json!({"message": "SLA set updated", "version": 2})));
    assert_eq!(put(&h.app, &set(20.0)).await.1["version"], 3);
    let (_, hist, _) = call(&h.app, "GET", "/slaset/history", vec![]).await;
    let versions: Vec<u64> = hist.as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert_eq!(hist[2]["slaset"][0]["range"]["max"], 20.0);
}

#[tokio::test]
async fn every_bad_input_is_a_clear_400_and_changes_nothing() {
    let h = harness(false).await;
    assert_eq!(put(&h.app, &set(10.0)).await.0, StatusCode::CREATED);
    let before = call(&h.app, "GET", "/slaset", vec![]).await;

    let ghost: Labels = [("__name__", "ghost")].into_iter().collect();
    let mut unknown = set(10.0);
    unknown[0]["name"] = json!(ghost);
    let mut strings = set(10.0);
    strings[1]["range"]["min"] = json!("0");
    let mut dup = set(10.0);
    dup[4] = dup[3].clone();
    let mut bad_range = set(10.0);
    bad_range[2]["range"] = json!({"min": 5, "max": 1});
    let mut no_for = set(10.0);
    no_for[3].as_object_mut().unwrap().remove("for");
    let mut bad_for = set(10.0);
    bad_for[3]["for"] = json!(-1);
    let mut no_range = set(10.0);
    no_range[0].as_object_mut().unwrap().remove("range");
    let mut no_min = set(10.0);
    no_min[0]["range"].as_object_mut().unwrap().remove("min");
    let mut no_max = set(10.0);
    no_max[0]["range"].as_object_mut().unwrap().remove("max");
    let four = Value::Array(set(10.0).as_array().unwrap()[..4].to_vec());

    let cases: Vec<(Vec<u8>, String)> = vec![
        (b"[{\"name\":".to_vec(), "Malformed JSON body".into()),
        (b"{\"not\": \"an array\"}".to_vec(), "SLA set must be a JSON array of SLA entries, got an object".into()),
        (four.to_string().into_bytes(), "SLA set must consist of 5 metrics. 4 provided".into()),
        (unknown.to_string().into_bytes(), format!("- The metric {ghost} does not exists;")),
        (strings.to_string().into_bytes(), "Minimum value of range must be a number, got a string".into()),
        (dup.to_string().into_bytes(), format!("- Duplicate metric {};", labels(3))),
        (bad_range.to_string().into_bytes(), "is greater than maximum one (1)".into()),
        (no_for.to_string().into_bytes(), "- Duration (for key) not provided for".into()),
        (bad_for.to_string().into_bytes(), "- Invalid duration (for key) provided for".into()),
        (no_range.to_string().into_bytes(), "- Range not provided for".into()),
        (no_min.to_string().into_bytes(), "- Minimum value of range not provided for".into()),
        (no_max.to_string().into_bytes(), "- Maximum value of range not provided for".into()),
        (vec![b' '; 10 * 1024 * 1024], "Request body too large".into()),
    ];
    for (body, expected) in cases {
        let (status, reply, _) = call(&h.app, "PUT", "/slaset", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{expected}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(&expected), "expected `{expected}` in `{error}`");
    }
    assert_eq!(call(&h.app, "GET", "/slaset", vec![]).await, before, "rejected PUTs changed nothing");
}

#[tokio::test]
async fn a_down_event_log_is_a_503_and_changes_nothing() {
    let h = harness(true).await;
    let (status, body) = put(&h.app, &set(10.0)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().starts_with("Event log not available"), "{body}");
    assert_eq!(call(&h.app, "GET", "/slaset", vec![]).await.1, json!([]));
}

#[tokio::test]
async fn sla_reads_need_a_set() {
    let h = harness(false).await;
    for uri in ["/status", "/violations", "/future-violations", "/forecast-scores"] {
        assert_eq!(call(&h.app, "GET", uri, vec![]).await.1, json!({"error": "SLA set not defined"}), "{uri}");
    }
}

#[tokio::test]
async fn status_violations_and_future_violations_from_the_read_models() {
    let h = harness(false).await;
    assert_eq!(put(&h.app, &set(10.0)).await.0, StatusCode::CREATED);
    let now = now_ms() / 60_000 * 60_000;
    // m0: firing (last 4 minutes out of range, for=2); m1: pending; m2: fine with a
    // past 5-minute violation; m3: no samples at all; m4: a forecast that will fire
    let minutes = |values: &[f64]| -> Vec<Sample> {
        let n = values.len() as i64;
        values.iter().enumerate().map(|(i, v)| Sample::new(now - (n - 1 - i as i64) * 60_000, *v)).collect()
    };
    let mut past = vec![5.0; 30];
    for v in &mut past[10..16] {
        *v = 50.0;
    }
    let docs = vec![
        (0, minutes(&[5.0, 5.0, 11.0, 12.0, 13.0, 14.0])),
        (1, minutes(&[5.0, 5.0, 5.0, 5.0, 11.0, 12.0])),
        (2, minutes(&past)),
        (4, minutes(&[5.0, 5.0, 5.0])),
    ];
    let mut writes: Vec<Document> = docs
        .into_iter()
        .map(|(i, samples)| {
            let mut scoring = slamon_domain::scorecard::ForecastScoring::default();
            if i == 2 {
                // made at minute 9 of m2's past, it predicted the violation that began a minute later
                let at = samples[9].ts_ms;
                scoring.add_forecast(&MetricForecastComputed {
                    labels: labels(2),
                    computed_at_ms: at,
                    model: "arima".into(),
                    rmse: 1.0,
                    candidates: vec![],
                    points: (1..=3).map(|k| Sample::new(at + k * 60_000, 40.0)).collect(),
                    intervals: vec![],
                    min: 40.0,
                    max: 40.0,
                    avg: 40.0,
                });
                scoring.score(&samples);
            }
            Document::SlaSamples(SlaSamplesView {
                id: labels(i).id(),
                labels: labels(i),
                samples,
                scoring,
                applied: Position::new(0, 0),
            })
        })
        .collect();
    let forecast: Vec<Sample> =
        (1..=10).map(|k| Sample::new(now + k * 60_000, if k >= 2 { 99.0 } else { 5.0 })).collect();
    writes.push(Document::Metric(MetricView {
        id: labels(4).id(),
        labels: labels(4),
        removed: false,
        values: None,
        prediction: Some(MetricForecastComputed {
            labels: labels(4),
            computed_at_ms: now,
            model: "test".into(),
            rmse: 0.5,
            candidates: vec![],
            intervals: forecast
                .iter()
                .map(|p| PredictionInterval {
                    lower_80: p.value - 1.28,
                    upper_80: p.value + 1.28,
                    lower_95: p.value - 1.96,
                    upper_95: p.value + 1.96,
                })
                .collect(),
            points: forecast.clone(),
            min: 5.0,
            max: 99.0,
            avg: 89.6,
        }),
        metadata: None,
        applied: Position::new(0, 1),
    }));
    h.store.write(writes).await.unwrap();

    let (_, status, _) = call(&h.app, "GET", "/status", vec![]).await;
    let states: Vec<&str> = status.as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    // m3 has no sample yet, but its SLA entered the set just now: not absent before
    // SLAMON_ABSENT_AFTER (the ETL publishes a new SLA's samples within a cycle)
    assert_eq!(states, vec!["firing", "pending", "inactive", "inactive", "inactive"]);
    let m3 = status[3]["description"].as_str().unwrap();
    assert!(m3.starts_with("No samples observed yet for this series (in the SLA set since "), "{m3}");
    assert_eq!(status[0]["name"]["__name__"], "m0");
    assert_eq!(status[0]["last-values"], json!([12.0, 13.0, 14.0]));
    assert_eq!(
        status[0]["description"],
        "Service level agreement violated for more than 2 min, last three values [12,13,14], allowed range: (0, 10)"
    );
    assert_eq!(
        status[1]["description"],
        "Service level agreement violated for 1/2 min (50%), last three values [5,11,12] not in (0, 10)"
    );
    assert_eq!(status[2]["description"], "Actual value [5] in (0, 10)");

    let (_, v, _) = call(&h.app, "GET", "/violations", vec![]).await;
    assert_eq!(v[0]["1h"], json!({"n": 1, "time": 3.0}));
    assert_eq!(v[1]["12h"], json!({"n": 0, "time": 0.0}), "a pending run is not a violation");
    assert_eq!(v[2]["12h"], json!({"n": 1, "time": 5.0}));
    let list = &v[2]["violation_list"][0];
    assert_eq!((list["duration"].clone(), list["avg_value"].clone()), (json!(5.0), json!(50.0)));
    assert_eq!(list["start_time"], seed_time(now - 19 * 60_000));

    // the scorecard: m2's forecast predicted the breach, observed a minute after it was made
    let (_, sc, _) = call(&h.app, "GET", "/forecast-scores", vec![]).await;
    assert_eq!(sc.as_array().unwrap().len(), 5);
    assert_eq!(sc[0]["models"], json!([]));
    assert_eq!(
        sc[2]["breaches"],
        json!({"forecasts": 1, "ongoing": 0, "hits": 1, "false_alarms": 0, "misses": 0, "quiet": 0, "mean_lead_minutes": 1.0})
    );
    assert_eq!(sc[2]["models"][0]["rmse"], 10.0, "errors of 10 at each point");

    let (_, f, _) = call(&h.app, "GET", "/future-violations", vec![]).await;
    assert_eq!(f[0], json!({"name": labels(0), "error": "Prediction not available"}));
    assert_eq!(f[4]["prediction_rmse"], 0.5);
    let fv = &f[4]["violations"][0];
    assert_eq!((fv["description"].clone(), fv["duration"].clone()), (json!("Will fire"), json!(8.0)));
    // 99 against a maximum of 10 with σ 1: a near-certain breach
    assert!(fv["probability"].as_f64().unwrap() > 0.999, "{fv}");
    assert_eq!(f[4]["breach_probability"], fv["probability"]);
    // the overview page says the same in its forecast column
    let res = h.app.clone().oneshot(Request::builder().uri("/").body(Body::empty()).unwrap()).await.unwrap();
    let page = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let rows: Vec<&str> = page.split("<tr>").skip(2).take(5).collect();
    assert!(rows[0].contains("<td>No forecast yet</td>"), "{}", rows[0]);
    let will_fire = format!("<td>Will fire from {}, 100.0 %</td>", seed_time(now + 2 * 60_000));
    assert!(rows[4].contains(&will_fire), "{will_fire} not in {}", rows[4]);
    let (_, kept, _) = call(&h.app, "GET", "/future-violations?min_probability=0.999", vec![]).await;
    assert_eq!(kept[4]["violations"].as_array().unwrap().len(), 1);
    let long = format!("min_probability={}", "9".repeat(5000));
    for bad in [
        "min_probability=1.5",
        "min_probability=abc",
        "min_probability=0.1&min_probability=0.2",
        "limit=3",
        "min_probability=%200.5%20",
        "min_probability=%E2%80%890.5",
        long.as_str(),
    ] {
        let (status, body, _) = call(&h.app, "GET", &format!("/future-violations?{bad}"), vec![]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("min_probability") && error.len() < 200, "{bad}: {body}");
    }
    // a forecast without intervals (schema v1) has no probability: kept unfiltered, left out by a filter
    writes_without_intervals(&h, now, forecast).await;
    let (_, f, _) = call(&h.app, "GET", "/future-violations", vec![]).await;
    assert_eq!(
        (f[4]["violations"][0]["probability"].clone(), f[4]["breach_probability"].clone()),
        (json!(null), json!(null))
    );
    let (_, f, _) = call(&h.app, "GET", "/future-violations?min_probability=0", vec![]).await;
    assert_eq!(f[4]["violations"], json!([]));
}

async fn writes_without_intervals(h: &Harness, now: i64, forecast: Vec<Sample>) {
    let mut m = h.store.metric(&labels(4).id()).await.unwrap().unwrap();
    if let Some(p) = m.prediction.as_mut() {
        p.intervals.clear();
        p.points = forecast;
        p.computed_at_ms = now;
    }
    m.applied = Position::new(0, 2);
    h.store.write(vec![Document::Metric(m)]).await.unwrap();
}

#[test]
fn the_checked_in_openapi_contract_is_what_the_code_generates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/sla-manager.json");
    slamon_web::openapi::check_checked_in(&openapi(), &path, "slamon-sla-manager");
}

#[tokio::test]
async fn the_contract_is_served_at_openapi_json_and_its_put_example_is_a_valid_set() {
    let h = harness(false).await;
    let (status, body, _) = call(&h.app, "GET", "/openapi.json", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    // no tokens here: no operation takes one
    assert_eq!(body, openapi_for(Guarded { reads: false, writes: false }));
    assert!(body["paths"]["/slaset"]["put"]["security"].is_null());
    // the documented example is what the validation takes
    let example = &body["paths"]["/slaset"]["put"]["requestBody"]["content"]["application/json"]["example"];
    let entries: Vec<bodies::SlaEntryInput> = serde_json::from_value(example.clone()).unwrap();
    assert_eq!(entries.len(), 5);
    let set = slamon_domain::sla::validate_sla_set(example.to_string().as_bytes(), 5, |_| true).unwrap();
    assert_eq!(set.len(), 5);
}

#[test]
fn the_served_document_names_the_tokens_the_deployment_needs() {
    // write tokens only (compose's default): reads take none, a PUT one, and no 403
    let doc = openapi_for(Guarded { reads: false, writes: true });
    let (get, put) = (&doc["paths"]["/slaset"]["get"], &doc["paths"]["/slaset"]["put"]);
    assert!(get["security"].is_null() && get["responses"]["401"].is_null(), "{get}");
    assert_eq!(put["security"], json!([{"bearer": []}]));
    assert!(put["responses"]["401"].is_object() && put["responses"]["403"].is_null(), "{put}");
    // both: the checked-in contract, where a read token on a PUT is 403
    let contract = openapi();
    assert_eq!(contract["paths"]["/status"]["get"]["security"], json!([{"bearer": []}]));
    assert_eq!(contract["paths"]["/slaset"]["put"]["responses"]["403"]["$ref"], "#/components/responses/Forbidden");
    assert!(contract["paths"]["/livez"]["get"]["security"].is_null());
}

#[test]
fn if_match_takes_versions_and_etags_a_weak_etag_matching_none_and_nothing_else() {
    let header = |v: &str| {
        let mut h = axum::http::HeaderMap::new();
        h.insert("if-match", v.parse().unwrap());
        if_match(&h)
    };
    let at = |v: &str, current: u64| header(v).unwrap().unwrap().passes(current);
    for (value, version) in [("3", 3), ("\"3\"", 3), ("\"1\", 3", 3), ("2 ,\"3\"", 3)] {
        assert!(at(value, version) && !at(value, version + 1), "{value}");
    }
    assert!(!at("W/\"3\"", 3) && at("W/\"3\", \"4\"", 4));
    assert!(at("*", 1) && !at("*", 0));
    for bad in ["two", "\"3", "3\"", "W/3", "W/W/\"3\"", "+3", "\"\"", "99999999999999999999", "*, 3", "3,", ""] {
        assert!(header(bad).is_err(), "{bad} was taken");
    }
    assert_eq!(if_match(&axum::http::HeaderMap::new()).unwrap(), None);
}
