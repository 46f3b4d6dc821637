//! The registry against the real Confluent client library we use
//! (schema_registry_converter) and its REST rules.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use slamon_domain::{Event, EventEnvelope, Labels, MetricRemoved, SlaEntry, SlaRange, SlaSetDefined};
use slamon_events::EventCodec;
use slamon_registry::{router, Registry};
use tower::ServiceExt;

async fn call(app: &axum::Router, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(if body.is_null() { Body::empty() } else { Body::from(body.to_string()) })
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn schema(fields: Value) -> String {
    json!({"type": "record", "name": "R", "namespace": "t", "fields": fields}).to_string()
}

#[tokio::test]
async fn subjects_versions_ids_and_compatibility_follow_confluent() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(Arc::new(Registry::open(&dir.path().join("r.redb")).unwrap()));
    let v1 = schema(json!([{"name": "a", "type": "long"}]));
    let v2 = schema(json!([{"name": "a", "type": "long"}, {"name": "b", "type": "string", "default": "x"}]));
    let bad = schema(json!([{"name": "a", "type": "long"}, {"name": "c", "type": "string"}]));

    assert_eq!(call(&app, "GET", "/subjects", Value::Null).await, (StatusCode::OK, json!([])));
    assert_eq!(call(&app, "PUT", "/config", json!({"compatibility": "BACKWARD_TRANSITIVE"})).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/config", Value::Null).await.1, json!({"compatibilityLevel": "BACKWARD_TRANSITIVE"}));

    assert_eq!(
        call(&app, "POST", "/subjects/s-t.R/versions", json!({"schema": v1})).await,
        (StatusCode::OK, json!({"id": 1}))
    );
    // the same schema again: same id, no new version
    assert_eq!(call(&app, "POST", "/subjects/s-t.R/versions", json!({"schema": v1})).await.1, json!({"id": 1}));
    assert_eq!(call(&app, "POST", "/subjects/s-t.R/versions", json!({"schema": v2})).await.1, json!({"id": 2}));
    // a field without default cannot read old data: refused under BACKWARD_TRANSITIVE
    let (status, body) = call(&app, "POST", "/subjects/s-t.R/versions", json!({"schema": bad})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error_code"], 409);
    let (status, body) =
        call(&app, "POST", "/compatibility/subjects/s-t.R/versions/latest", json!({"schema": bad})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"is_compatible": false})));
    assert_eq!(call(&app, "GET", "/subjects/s-t.R/versions", Value::Null).await.1, json!([1, 2]));
    let (_, latest) = call(&app, "GET", "/subjects/s-t.R/versions/latest", Value::Null).await;
    assert_eq!((latest["version"].clone(), latest["id"].clone()), (json!(2), json!(2)));
    assert_eq!(call(&app, "GET", "/schemas/ids/1?deleted=true", Value::Null).await.1, json!({"schema": v1}));
    // another subject reuses the global id of an identical schema
    assert_eq!(call(&app, "POST", "/subjects/other/versions", json!({"schema": v1})).await.1, json!({"id": 1}));
    let (status, found) = call(&app, "POST", "/subjects/s-t.R", json!({"schema": v2})).await;
    assert_eq!((status, found["version"].clone()), (StatusCode::OK, json!(2)));

    // errors carry Confluent's codes
    assert_eq!(call(&app, "GET", "/subjects/nope/versions", Value::Null).await.1["error_code"], 40401);
    assert_eq!(call(&app, "GET", "/subjects/s-t.R/versions/9", Value::Null).await.1["error_code"], 40402);
    assert_eq!(call(&app, "GET", "/schemas/ids/77", Value::Null).await.1["error_code"], 40403);
    assert_eq!(call(&app, "POST", "/subjects/x/versions", json!({"schema": "{nope"})).await.1["error_code"], 42201);
    assert_eq!(call(&app, "PUT", "/config", json!({"compatibility": "SIDEWAYS"})).await.1["error_code"], 42203);
}

#[tokio::test]
async fn registrations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    {
        let r = Registry::open(&path).unwrap();
        r.set_compatibility(None, slamon_registry::Compatibility::BackwardTransitive).unwrap();
        assert_eq!(r.register("a", &schema(json!([{"name": "a", "type": "int"}]))).unwrap(), 1);
    }
    let r = Registry::open(&path).unwrap();
    assert_eq!(r.versions("a").unwrap(), vec![1]);
    assert_eq!(r.compatibility(None).unwrap(), slamon_registry::Compatibility::BackwardTransitive);
    assert_eq!(r.register("b", &schema(json!([{"name": "b", "type": "int"}]))).unwrap(), 2);
}

#[tokio::test]
async fn the_event_codec_round_trips_through_the_served_registry() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(slamon_registry::serve(dir.path().join("r.redb"), listener, cancel.clone()));

    let codec = EventCodec::new(&url, "prometheusdata").unwrap();
    let labels: Labels = [("__name__", "up"), ("job", "x")].into_iter().collect();
    let events = [
        EventEnvelope::new("test", Event::MetricRemoved(MetricRemoved { labels: labels.clone(), last_seen_ms: 5 })),
        EventEnvelope::new(
            "test",
            Event::SlaSetDefined(SlaSetDefined {
                version: 1,
                entries: vec![SlaEntry { labels, range: SlaRange { min: 1.0, max: 2.0 }, for_minutes: 3 }],
            }),
        ),
    ];
    for env in &events {
        let bytes = codec.encode(env).await.unwrap();
        assert_eq!(bytes[0], 0, "magic byte");
        assert_eq!(&codec.decode(&bytes).await.unwrap(), env);
    }
    codec.register_all().await.unwrap();
    // a fresh codec (another process) decodes by schema id alone
    let other = EventCodec::new(&url, "prometheusdata").unwrap();
    let bytes = codec.encode(&events[0]).await.unwrap();
    assert_eq!(other.decode(&bytes).await.unwrap(), events[0]);
    // poison: unknown schema id, not the wire format
    let mut unknown = bytes.clone();
    unknown[1..5].copy_from_slice(&999u32.to_be_bytes());
    assert!(other.decode(&unknown).await.is_err());
    assert!(other.decode(b"{\"json\": true}").await.is_err());

    let subjects: Vec<String> = reqwest_get(&format!("{url}/subjects")).await;
    assert_eq!(subjects.len(), 6, "{subjects:?}");
    assert!(subjects.contains(&"prometheusdata-io.slamon.events.SlaSetDefined".to_owned()));
    cancel.cancel();
    server.await.unwrap().unwrap();
}

async fn reqwest_get<T: serde::de::DeserializeOwned>(url: &str) -> T {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}
