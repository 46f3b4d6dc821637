//! The query API ("data retrieval", port 5000): the metric read models over REST
//! (SPEC §5). It reads only the read models.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::Value;
use slamon_backends::Backends;
use slamon_domain::{MetricFilter, MetricId, MetricView, ReadModelStore};
use slamon_web::openapi::{ErrorBody, Guarded};
use slamon_web::{db, ApiError, ApiResult, TaskFailed, Tasks};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod bodies;

pub use bodies::{
    ForecastScores, ForecastScoresBody, Metadata, MetadataBody, MetricItem, ModelScoreBody, Prediction, PredictionBody,
    ValuesBody,
};

/// Settings of the query API.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "query_api")]
#[command(next_help_heading = "Query API")]
pub struct Config {
    /// Address of the query API.
    #[arg(long, env = "SLAMON_QUERY_API_LISTEN", default_value = "[::]:5000")]
    pub query_api_listen: SocketAddr,
    /// Who may read ([`slamon_backends::AuthSettings`], given by the command).
    #[arg(skip)]
    pub access: slamon_web::auth::Access,
    /// TLS and limits ([`slamon_backends::ServeSettings`], given by the command).
    #[arg(skip)]
    pub serving: slamon_web::listener::Serving,
}

/// The query API, bound and ready to serve.
pub struct App {
    listener: TcpListener,
    router: Router,
    serving: slamon_web::listener::Serving,
}

impl App {
    /// Opens the read models and binds the listener.
    ///
    /// # Errors
    /// The store cannot be opened or the address is taken.
    pub async fn build(config: &Config, backends: &Backends) -> slamon_backends::Result<App> {
        let state = AppState {
            store: backends.store().await?,
            db_timeout: backends.settings().db_timeout,
            access: config.access.clone(),
        };
        let listener = slamon_backends::bind(config.query_api_listen, "query API").await?;
        Ok(App { listener, router: router(state), serving: config.serving.clone() })
    }

    /// Serves until `cancel`, then drains open requests for a bounded grace.
    ///
    /// # Errors
    /// The server failed.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), TaskFailed> {
        let mut tasks = Tasks::new(cancel);
        tasks.spawn_api("query-api", self.listener, self.router, self.serving.tls, self.serving.limits);
        tasks.wait().await
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The read models.
    pub store: Arc<dyn ReadModelStore>,
    /// The deadline of one read-model call (then `504 DB not available`).
    pub db_timeout: Duration,
    /// Who may read.
    pub access: slamon_web::auth::Access,
}

/// The routes of SPEC §5 (each documented in the contract, [`openapi`]) and
/// `/openapi.json` (the document of a deployment that guards `guarded`).
fn api(guarded: Guarded) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(values))
        .routes(routes!(metadata))
        .routes(routes!(prediction))
        .routes(routes!(forecast_scores))
        .merge(slamon_web::openapi::document(move || openapi_for(guarded)))
}

/// The routes of SPEC §5, `/livez`, `/readyz` and `/openapi.json`, behind the read
/// tokens of `state.access`; JSON 404 elsewhere.
pub fn router(state: AppState) -> Router {
    let (store, db_timeout, access) = (state.store.clone(), state.db_timeout, state.access.clone());
    slamon_web::service_router(api(Guarded::of(&access)), store, db_timeout, &access, state)
}

/// The query API's OpenAPI 3.1 contract, as checked in as `openapi/query-api.json`: that
/// of a deployment with read tokens (one without serves it with no token needed).
pub fn openapi() -> Value {
    openapi_for(Guarded::ALL)
}

/// The query API's OpenAPI 3.1 document for a deployment that guards `guarded`, as it
/// serves it at `GET /openapi.json`.
pub fn openapi_for(guarded: Guarded) -> Value {
    let mut doc = api(guarded).into_openapi();
    doc.merge(slamon_web::openapi::probe_paths());
    add_list_schemas(&mut doc);
    slamon_web::openapi::finish(
        doc,
        slamon_web::openapi::Info {
            title: "slamon query API",
            version: env!("CARGO_PKG_VERSION"),
            description: "The metric read models over REST (port 5000, SLAMON_QUERY_API_LISTEN): every series \
                Prometheus lists, with its window statistics, forecast and metadata. Read only; a read model \
                that cannot be reached answers `504 DB not available` within SLAMON_DB_TIMEOUT.",
        },
        guarded,
    )
}

/// The largest `offset` (MongoDB's skip is signed 64-bit).
const MAX_PAGE: u64 = i64::MAX as u64;

/// Series in a page of `GET /metrics` when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 1000;

/// The largest `limit` of `GET /metrics`: a longer list is read page by page (`after`).
pub const MAX_LIMIT: usize = 10_000;

fn page_number(name: &str, v: &str) -> ApiResult<usize> {
    v.parse::<u64>().ok().filter(|n| *n <= MAX_PAGE).and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
        ApiError::BadRequest(format!("Invalid {name} `{v}`: expected a non-negative integer up to {MAX_PAGE}"))
    })
}

fn parse_filter(params: &[(String, String)]) -> ApiResult<MetricFilter> {
    let mut f = MetricFilter::default();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in params {
        // only `match` repeats: a second `limit` is a mistake, not a choice of the last one
        if k != "match" && !seen.insert(k.as_str()) {
            return Err(ApiError::BadRequest(format!("Query parameter `{k}` given more than once")));
        }
        match k.as_str() {
            "name" => f.name = Some(v.clone()),
            "match" => {
                let (label, value) = v
                    .split_once('=')
                    .filter(|(l, _)| !l.is_empty())
                    .ok_or_else(|| ApiError::BadRequest(format!("Invalid match `{v}`: expected <label>=<value>")))?;
                f.matchers.push((label.to_owned(), value.to_owned()));
            }
            "limit" => {
                let limit = v.parse::<usize>().ok().filter(|n| *n <= MAX_LIMIT).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "Invalid limit `{v}`: expected an integer from 0 to {MAX_LIMIT} (read further pages with after)"
                    ))
                })?;
                f.limit = Some(limit);
            }
            "offset" => f.offset = page_number("offset", v)?,
            "after" => {
                let id = v.parse::<MetricId>().map_err(|_| {
                    ApiError::BadRequest(format!("Invalid after `{v}`: expected a metric id (24 hex digits)"))
                })?;
                f.after = Some(id);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Unknown query parameter `{other}` (known: name, match, limit, after, offset)"
                )))
            }
        }
    }
    f.limit.get_or_insert(DEFAULT_LIMIT);
    Ok(f)
}

/// A `match` selector, `<label>=<value>`, as a schema.
pub struct Matcher;

impl utoipa::PartialSchema for Matcher {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^[^=]+="))
            .description(Some(
                "`<label>=<value>`: series whose label has exactly this value; `<label>=` (empty): series without \
                 the label, as Prometheus's `label=\"\"`",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Matcher {}

/// Adds the schemas the parameters of `GET /metrics` refer to (utoipa collects those of
/// bodies only) to a document that has the operation.
pub fn add_list_schemas(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::{PartialSchema, ToSchema};
    doc.components.get_or_insert_with(Default::default).schemas.insert(Matcher::name().into_owned(), Matcher::schema());
}

/// `GET /metrics`: every live series, filtered and paged.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "listMetrics",
    tag = "metrics",
    params(
        ("name" = Option<String>, Query, description = "Only the series of this metric (`__name__`)"),
        ("match" = Option<Vec<Matcher>>, Query, style = Form, explode = true,
            description = "Only the series with this label value, `<label>=<value>`; repeat for several"),
        ("limit" = Option<u64>, Query, minimum = 0, maximum = 10000,
            description = "At most this many series (default 1000)"),
        ("after" = Option<String>, Query, pattern = "^[0-9a-fA-F]{24}$",
            description = "Only the series after this id: the last id of the previous page (the `next` link)"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807_u64,
            description = "Skip this many series first (in id order); `after` stays right while series come and go"),
    ),
    responses(
        (status = 200, description = "The series, in id order; a full page links the next one", body = Vec<MetricItem>,
            headers(("Link" = String, description = "`</metrics?…&after=<last id>>; rel=\"next\"` when the page is full"))),
        (status = 400, description = "An unknown or malformed parameter", body = ErrorBody,
            example = json!({"error": "Invalid limit `x`: expected an integer from 0 to 10000 (read further pages with after)"})),
        (status = 504, response = slamon_web::openapi::DbUnavailable),
    ),
)]
pub async fn list(State(s): State<AppState>, Query(params): Query<Vec<(String, String)>>) -> ApiResult<Response> {
    list_metrics(s.store.as_ref(), s.db_timeout, &params).await
}

/// `GET /metrics` (SPEC §5, and the SLA manager's own, §6): the live series
/// `[{"_id": {"$oid": id}, "id": id, "name": {labels}}, …]` in id order, filtered by
/// `name` and `match=<label>=<value>`, a page of `limit` ([`DEFAULT_LIMIT`], at most
/// [`MAX_LIMIT`]) from the cursor `after` (or `offset`). A full page carries
/// `Link: </metrics?…&after=<its last id>>; rel="next"` (RFC 8288). Reads ids and labels
/// only ([`ReadModelStore::series`](slamon_domain::ReadModelStore::series)).
///
/// # Errors
/// [`ApiError::BadRequest`] for an unknown or malformed parameter; the store's errors.
pub async fn list_metrics(
    store: &dyn slamon_domain::ReadModelStore,
    db_timeout: Duration,
    params: &[(String, String)],
) -> ApiResult<Response> {
    let filter = parse_filter(params)?;
    let series = db(db_timeout, store.series(&filter)).await?;
    let next = match (series.last(), filter.limit) {
        (Some(last), Some(limit)) if series.len() >= limit && limit > 0 => Some(next_link(params, &last.id)),
        _ => None,
    };
    let items: Vec<MetricItem> = series.iter().map(|s| MetricItem::of(&s.id, &s.labels)).collect();
    let mut res = Json(items).into_response();
    if let Some(link) = next.and_then(|l| HeaderValue::from_str(&l).ok()) {
        res.headers_mut().insert(axum::http::header::LINK, link);
    }
    Ok(res)
}

/// The `Link` of the page after the one that ends at `last`: the same parameters, with
/// `after=<last>` in place of `after` and `offset`.
fn next_link(params: &[(String, String)], last: &MetricId) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(k, _)| k != "after" && k != "offset") {
        query.append_pair(k, v);
    }
    query.append_pair("after", &last.to_string());
    format!("</metrics?{}>; rel=\"next\"", query.finish())
}

/// The series of `id` (a path segment axum could not decode, such as invalid UTF-8, is
/// no id: the same JSON 400, not axum's plain-text rejection).
async fn find(s: &AppState, id: Result<Path<String>, PathRejection>, what: &str) -> ApiResult<MetricView> {
    let id = metric_id(id, what)?;
    match db(s.db_timeout, s.store.metric(&id)).await? {
        Some(m) if !m.removed => Ok(m),
        _ => Err(missing(what)),
    }
}

/// The seed's 400 for an id with no `what`: `Invalid metric id or no {what} found for given id`.
fn missing(what: &str) -> ApiError {
    ApiError::BadRequest(format!("Invalid metric id or no {what} found for given id"))
}

/// The metric id of the path; [`missing`] when it is none (not UTF-8, not 24 hex digits).
fn metric_id(id: Result<Path<String>, PathRejection>, what: &str) -> ApiResult<MetricId> {
    let Ok(Path(id)) = id else { return Err(missing(what)) };
    id.parse().map_err(|_| missing(what))
}

/// `GET /metrics/{id}/values`: the window statistics of a series.
#[utoipa::path(
    get,
    path = "/metrics/{id}/values",
    operation_id = "getValues",
    tag = "metrics",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$", description = "The metric id")),
    responses(
        (status = 200, description = "The statistics over 1h, 3h and 12h", body = ValuesBody),
        (status = 400, description = "Not a metric id, no such series, or no statistics yet", body = ErrorBody,
            example = json!({"error": "Invalid metric id or no values found for given id"})),
        (status = 504, response = slamon_web::openapi::DbUnavailable),
    ),
)]
pub async fn values(State(s): State<AppState>, id: Result<Path<String>, PathRejection>) -> ApiResult<Json<ValuesBody>> {
    let m = find(&s, id, "values").await?;
    let v = m.values.ok_or_else(|| missing("values"))?;
    Ok(Json(ValuesBody::of(&v)))
}

/// `GET /metrics/{id}/metadata`: stationarity, autocorrelation and seasonality.
#[utoipa::path(
    get,
    path = "/metrics/{id}/metadata",
    operation_id = "getMetadata",
    tag = "metrics",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$", description = "The metric id")),
    responses(
        (status = 200, description = "The metadata, computed every hour", body = MetadataBody),
        (status = 400, description = "Not a metric id, no such series, or no metadata yet", body = ErrorBody,
            example = json!({"error": "Invalid metric id or no metadata found for given id"})),
        (status = 504, response = slamon_web::openapi::DbUnavailable),
    ),
)]
pub async fn metadata(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<MetadataBody>> {
    let m = find(&s, id, "metadata").await?;
    let md = m.metadata.ok_or_else(|| missing("metadata"))?;
    Ok(Json(MetadataBody { metadata: Metadata::of(&md) }))
}

/// `GET /metrics/{id}/prediction`: the latest forecast of an SLA metric.
#[utoipa::path(
    get,
    path = "/metrics/{id}/prediction",
    operation_id = "getPrediction",
    tag = "metrics",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$", description = "The metric id")),
    responses(
        (status = 200, description = "The forecast of the next 10 minutes", body = PredictionBody),
        (status = 400, description = "Not a metric id, no such series, or no forecast (only SLA metrics have one)",
            body = ErrorBody, example = json!({"error": "Invalid metric id or no prediction found for given id"})),
        (status = 504, response = slamon_web::openapi::DbUnavailable),
    ),
)]
pub async fn prediction(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<PredictionBody>> {
    let m = find(&s, id, "prediction").await?;
    let p = m.prediction.ok_or_else(|| missing("prediction"))?;
    Ok(Json(PredictionBody { prediction: Prediction::of(&p) }))
}

/// `GET /metrics/{id}/forecast-scores`: the SLA metric's forecasts scored against what happened.
#[utoipa::path(
    get,
    path = "/metrics/{id}/forecast-scores",
    operation_id = "getForecastScores",
    tag = "metrics",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$", description = "The metric id")),
    responses(
        (status = 200, description = "The forecast scorecard: per model and the latest forecasts", body = ForecastScoresBody),
        (status = 400, description = "Not a metric id, or no such SLA metric (only SLA metrics have forecasts)",
            body = ErrorBody, example = json!({"error": "Invalid metric id or no forecast scores found for given id"})),
        (status = 504, response = slamon_web::openapi::DbUnavailable),
    ),
)]
pub async fn forecast_scores(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<ForecastScoresBody>> {
    let what = "forecast scores";
    let id = metric_id(id, what)?;
    let samples = db(s.db_timeout, s.store.sla_samples(&id)).await?.ok_or_else(|| missing(what))?;
    Ok(Json(ForecastScoresBody { forecast_scores: ForecastScores::of(&samples.scoring) }))
}

#[cfg(test)]
mod tests;
