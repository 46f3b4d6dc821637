//! A Schema Registry that answers 500, 504 or 429 for a while (a restart, an overloaded
//! proxy) must not make a valid record poison: the codec reports such errors as
//! retriable and asks the registry again on the next try, while a schema id the registry
//! does not have stays poison. A proxy in front of slamon's registry fails its first
//! requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use slamon_domain::{Event, EventEnvelope, Labels, MetricRemoved};
use slamon_events::EventCodec;
use tokio_util::sync::CancellationToken;

struct Proxy {
    upstream: String,
    /// Requests still to fail, and with which status.
    failures: AtomicUsize,
    status: StatusCode,
    http: reqwest::Client,
}

async fn forward(State(p): State<Arc<Proxy>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let failing = p.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if failing {
        let body = r#"{"error_code":50001,"message":"the registry is restarting"}"#;
        return (p.status, [("content-type", "application/vnd.schemaregistry.v1+json")], body).into_response();
    }
    let url = format!("{}{}", p.upstream, uri.path_and_query().map(|x| x.as_str()).unwrap_or("/"));
    let res = p
        .http
        .request(method, url)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    (status, [("content-type", "application/vnd.schemaregistry.v1+json")], res.bytes().await.unwrap()).into_response()
}

/// slamon's registry, and a proxy in front of it that fails its first `failures`
/// requests with `status`; the proxy's URL.
async fn registry_behind_proxy(
    dir: &std::path::Path,
    status: StatusCode,
    failures: usize,
    cancel: &CancellationToken,
) -> (String, Arc<Proxy>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(slamon_registry::serve(dir.join("r.redb"), listener, cancel.clone()));
    let proxy =
        Arc::new(Proxy { upstream, failures: AtomicUsize::new(failures), status, http: reqwest::Client::new() });
    let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, proxy)
}

fn event() -> EventEnvelope {
    let labels: Labels = [("__name__", "up"), ("job", "a")].into_iter().collect();
    EventEnvelope::new("test", Event::MetricRemoved(MetricRemoved { labels, last_seen_ms: 1 }))
}

/// Tries `f` up to 5 times; every failure must be retriable. The number of failures.
async fn until_ok<T, F: std::future::Future<Output = slamon_events::Result<T>>>(
    mut f: impl FnMut() -> F,
) -> (T, usize) {
    for failures in 0..5 {
        match f().await {
            Ok(v) => return (v, failures),
            Err(e) => assert!(e.is_retryable(), "a registry outage is not poison: {e}"),
        }
    }
    panic!("still failing after the registry came back (an error cached for good?)");
}

#[tokio::test]
async fn a_registry_outage_is_retried_not_poison() {
    for status in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::GATEWAY_TIMEOUT, StatusCode::TOO_MANY_REQUESTS] {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let (url, proxy) = registry_behind_proxy(dir.path(), status, 2, &cancel).await;
        // encoding (registering the schema) through the outage
        let writer = EventCodec::new(&url, "t").unwrap();
        let sent = event();
        let (bytes, failures) = until_ok(|| writer.encode(&sent)).await;
        assert!(failures > 0, "{status}: the proxy failed the first requests");

        // decoding with a codec that never saw the schema, through another outage
        proxy.failures.store(2, Ordering::SeqCst);
        let reader = EventCodec::new(&url, "t").unwrap();
        let (decoded, failures) = until_ok(|| reader.decode(&bytes)).await;
        assert!(failures > 0, "{status}: the proxy failed the first lookups");
        assert_eq!(decoded.event, sent.event, "{status}");
        cancel.cancel();
    }
}

#[tokio::test]
async fn a_schema_id_the_registry_does_not_have_is_poison() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let (url, _) = registry_behind_proxy(dir.path(), StatusCode::OK, 0, &cancel).await;
    let reader = EventCodec::new(&url, "t").unwrap();
    // magic byte 0, schema id 9999, a body
    let record = [0u8, 0, 0, 0x27, 0x0f, 2, 4, 6];
    let err = reader.decode(&record).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    cancel.cancel();
}
