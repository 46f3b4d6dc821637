use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use slamon_domain::*;
use slamon_embedded::EmbeddedStore;
use tower::ServiceExt;

use super::*;
use serde_json::json;

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let res = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn labels(name: &str, job: &str) -> Labels {
    [("__name__", name), ("job", job)].into_iter().collect()
}

fn view(name: &str, job: &str) -> MetricView {
    let l = labels(name, job);
    MetricView {
        id: l.id(),
        labels: l,
        removed: false,
        values: Some(ValuesView {
            computed_at_ms: 1_700_000_000_000,
            windows: vec![
                WindowAggregate {
                    window: Window::H1,
                    min: Some(1.0),
                    max: Some(3.0),
                    avg: Some(2.0),
                    std_dev: Some(1.0),
                    samples: 3,
                },
                WindowAggregate {
                    window: Window::H3,
                    min: Some(1.0),
                    max: Some(3.0),
                    avg: Some(2.0),
                    std_dev: None,
                    samples: 1,
                },
                WindowAggregate { window: Window::H12, min: None, max: None, avg: None, std_dev: None, samples: 0 },
            ],
        }),
        prediction: None,
        metadata: None,
        applied: Position::new(0, 1),
    }
}

async fn app_with(docs: Vec<MetricView>) -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    store.write(docs.into_iter().map(Document::Metric).collect()).await.unwrap();
    (
        router(AppState {
            store: Arc::new(store),
            db_timeout: Duration::from_secs(2),
            access: slamon_web::auth::Access::open(),
        }),
        dir,
    )
}

#[tokio::test]
async fn lists_metrics_in_the_seed_shape_with_filters() {
    let mut gone = view("old", "x");
    gone.removed = true;
    let (app, _d) = app_with(vec![view("up", "a"), view("up", "b"), view("load", "a"), gone]).await;
    let (status, body) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 3, "removed series are not listed");
    let first = &items[0];
    assert_eq!(first["_id"]["$oid"], first["id"]);
    assert_eq!(first["id"].as_str().unwrap().len(), 24);
    assert!(first["name"]["__name__"].is_string());

    assert_eq!(get(&app, "/metrics?name=up").await.1.as_array().unwrap().len(), 2);
    let (_, b) = get(&app, "/metrics?name=up&match=job=b").await;
    assert_eq!(b[0]["name"], json!({"__name__": "up", "job": "b"}));
    assert_eq!(get(&app, "/metrics?limit=1&offset=2").await.1.as_array().unwrap().len(), 1);
    let (status, body) = get(&app, "/metrics?limit=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().starts_with("Invalid limit"));
    assert_eq!(get(&app, "/metrics?match=nolabel").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(get(&app, "/metrics?colour=red").await.0, StatusCode::BAD_REQUEST);
    // `match` repeats, the others do not
    assert_eq!(get(&app, "/metrics?match=job=b&match=__name__=up").await.0, StatusCode::OK);
    let (status, body) = get(&app, "/metrics?limit=1&limit=2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "Query parameter `limit` given more than once");
}

#[tokio::test]
async fn the_list_is_paged_by_cursor_with_a_next_link_and_a_bounded_page() {
    let views: Vec<MetricView> = (0..2500).map(|i| view("up", &format!("j{i}"))).collect();
    let mut ids: Vec<String> = views.iter().map(|v| v.id.to_string()).collect();
    ids.sort();
    let (app, _d) = app_with(views).await;
    // the default page is DEFAULT_LIMIT series, and links the next one
    let mut uri = "/metrics?name=up".to_owned();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let res = app.clone().oneshot(Request::get(uri.as_str()).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let link = res.headers().get("link").map(|l| l.to_str().unwrap().to_owned());
        let body: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let page: Vec<String> = body.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
        assert!(page.len() <= DEFAULT_LIMIT);
        seen.extend(page);
        pages += 1;
        let Some(link) = link else { break };
        let target = link.strip_prefix('<').and_then(|l| l.split_once(">; rel=\"next\"")).expect("a next link").0;
        assert!(target.starts_with("/metrics?name=up&") && target.contains("after="), "{target}");
        uri = target.to_owned();
    }
    assert_eq!((pages, seen.len()), (3, 2500));
    assert_eq!(seen, ids, "every series once, in id order");
    // a page that is not full has no next link; limits are bounded
    let res = app.clone().oneshot(Request::get("/metrics?limit=5000").body(Body::empty()).unwrap()).await.unwrap();
    assert!(res.headers().get("link").is_none());
    let (status, body) = get(&app, &format!("/metrics?limit={}", MAX_LIMIT + 1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = get(&app, "/metrics?after=nothex").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("after"), "{body}");
    let (status, body) = get(&app, &format!("/metrics?limit=2&after={}", ids[2497])).await;
    assert_eq!((status, body.as_array().map(Vec::len)), (StatusCode::OK, Some(2)));
}

#[tokio::test]
async fn values_have_the_spec_shape_and_errors_the_spec_messages() {
    let v = view("up", "a");
    let id = v.id.to_string();
    let (app, _d) = app_with(vec![v]).await;
    let (status, body) = get(&app, &format!("/metrics/{id}/values")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["values"]["1h"], json!({"min": 1.0, "max": 3.0, "avg": 2.0, "std_dev": 1.0, "samples": 3}));
    assert_eq!(body["values"]["3h"]["std_dev"], Value::Null);
    assert_eq!(body["values"]["12h"]["samples"], 0);
    assert_eq!(body["computed_at"], "2023-11-14T22:13:20.000Z");

    for (uri, what) in [
        (format!("/metrics/{id}/metadata"), "metadata"),
        (format!("/metrics/{id}/prediction"), "prediction"),
        ("/metrics/nothex/values".to_owned(), "values"),
        ("/metrics/0123456789abcdef01234567/values".to_owned(), "values"),
    ] {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body, json!({"error": format!("Invalid metric id or no {what} found for given id")}), "{uri}");
    }
    // a segment that is not UTF-8 is no id either: the same JSON 400, not axum's text rejection
    for what in ["values", "metadata", "prediction"] {
        let (status, body) = get(&app, &format!("/metrics/%FF/{what}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": format!("Invalid metric id or no {what} found for given id")}));
    }
    let (status, body) = get(&app, "/nope").await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"error": "No such route"})));
}

#[tokio::test]
async fn forecast_scores_of_an_sla_metric_and_the_errors() {
    use slamon_domain::scorecard::ForecastScoring;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    let l = labels("up", "a");
    let m = 60_000;
    // a forecast of 1, 2, 3 at minutes 1..3 against samples of 1, 2, 5: errors 0, 0, 2
    let mut scoring = ForecastScoring::default();
    let points = (1..=3).map(|k| Sample::new(k * m, k as f64)).collect();
    scoring.add_forecast(&slamon_domain::MetricForecastComputed {
        labels: l.clone(),
        computed_at_ms: 0,
        model: "holt_linear".into(),
        rmse: 0.5,
        candidates: vec![],
        points,
        intervals: vec![],
        min: 1.0,
        max: 3.0,
        avg: 2.0,
    });
    let samples = vec![Sample::new(m, 1.0), Sample::new(2 * m, 2.0), Sample::new(3 * m, 5.0)];
    scoring.score(&samples);
    let doc = SlaSamplesView { id: l.id(), labels: l.clone(), samples, scoring, applied: Position::new(0, 1) };
    store.write(vec![Document::SlaSamples(doc)]).await.unwrap();
    let app = router(AppState {
        store: Arc::new(store),
        db_timeout: Duration::from_secs(2),
        access: slamon_web::auth::Access::open(),
    });
    let (status, body) = get(&app, &format!("/metrics/{}/forecast-scores", l.id())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let s = &body["forecast_scores"];
    let rmse = (4.0f64 / 3.0).sqrt();
    let mut model = s["models"][0].clone();
    assert!((model["rmse"].as_f64().unwrap() - rmse).abs() < 1e-12, "{model}");
    model["rmse"] = json!(null);
    let expected = json!({"model": "holt_linear", "forecasts": 1, "points": 3, "rmse": null, "coverage_80": null, "coverage_95": null});
    assert_eq!((s["models"].as_array().unwrap().len(), model), (1, expected));
    assert_eq!((s["pending"].clone(), s["dropped"].clone()), (json!(0), json!(0)));
    assert_eq!(s["recent"][0]["computed_at"], "1970-01-01T00:00:00.000Z");
    assert!((s["recent"][0]["rmse"].as_f64().unwrap() - rmse).abs() < 1e-12);
    for uri in [
        "/metrics/0123456789abcdef01234567/forecast-scores",
        "/metrics/nothex/forecast-scores",
        "/metrics/%FF/forecast-scores",
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body, json!({"error": "Invalid metric id or no forecast scores found for given id"}), "{uri}");
    }
}

/// A store that is down: either refuses at once or never answers.
struct DownStore {
    hang: bool,
}

#[async_trait]
impl ReadModelStore for DownStore {
    async fn metric(&self, _: &MetricId) -> PortResult<Option<MetricView>> {
        self.fail().await
    }
    async fn metrics(&self, _: &MetricFilter) -> PortResult<Vec<MetricView>> {
        self.fail().await
    }
    async fn sla_set(&self) -> PortResult<Option<SlaSetView>> {
        self.fail().await
    }
    async fn sla_samples(&self, _: &MetricId) -> PortResult<Option<SlaSamplesView>> {
        self.fail().await
    }
    async fn load(&self, _: &[DocKey]) -> PortResult<Vec<Option<Document>>> {
        self.fail().await
    }
    async fn write(&self, _: Vec<Document>) -> PortResult<()> {
        self.fail().await
    }
    async fn all(&self, _: Collection) -> PortResult<Vec<Document>> {
        self.fail().await
    }
}

impl DownStore {
    async fn fail<T>(&self) -> PortResult<T> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(PortError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn a_down_database_is_a_504_within_the_deadline() {
    for hang in [false, true] {
        let app = router(AppState {
            store: Arc::new(DownStore { hang }),
            db_timeout: Duration::from_millis(300),
            access: slamon_web::auth::Access::open(),
        });
        let id = labels("up", "a").id();
        for uri in ["/metrics".to_owned(), format!("/metrics/{id}/values"), "/readyz".to_owned()] {
            let (status, body) =
                tokio::time::timeout(Duration::from_secs(5), get(&app, &uri)).await.expect("answers in time");
            assert_eq!((status, body), (StatusCode::GATEWAY_TIMEOUT, json!({"error": "DB not available"})), "{uri}");
        }
    }
}

#[test]
fn the_checked_in_openapi_contract_is_what_the_code_generates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/query-api.json");
    slamon_web::openapi::check_checked_in(&openapi(), &path, "slamon-query-api");
}

#[tokio::test]
async fn the_contract_is_served_at_openapi_json_naming_only_the_tokens_this_deployment_needs() {
    let (app, _d) = app_with(vec![]).await;
    let (status, body) = get(&app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // no read tokens here: no operation takes one, none answers 401
    assert_eq!(body, openapi_for(Guarded { reads: false, writes: false }));
    let values = &body["paths"]["/metrics/{id}/values"]["get"];
    assert!(values["security"].is_null() && values["responses"]["401"].is_null(), "{values}");
    // the checked-in contract is that of a deployment with read tokens
    let contract = openapi();
    let values = &contract["paths"]["/metrics/{id}/values"]["get"];
    assert_eq!(values["security"], json!([{"bearer": []}]));
    assert_eq!(values["responses"]["401"]["$ref"], "#/components/responses/Unauthorized");
}
