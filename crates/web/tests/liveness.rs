//! `/livez` turns 503 once a backend failed for good (its own test process: the failure
//! is process-wide).

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

async fn livez(app: &axum::Router) -> (u16, String) {
    let res = app.clone().oneshot(Request::get("/livez").body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status().as_u16();
    let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn livez_fails_once_a_backend_failed_for_good() {
    let app: axum::Router = slamon_web::livez();
    assert_eq!(livez(&app).await, (200, "ok".to_owned()));
    assert!(slamon_domain::liveness::fail("the embedded storage failed for good: disk full"));
    assert!(!slamon_domain::liveness::fail("a second reason"), "the first reason is kept");
    let (status, body) = livez(&app).await;
    assert_eq!(status, 503);
    assert!(body.contains("disk full") && body.contains("restart"), "{body}");
}
