//! The query API ("data retrieval", port 5000): the metric read models over REST
//! (SPEC §5). It reads only the read models.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use slamon_backends::Backends;
use slamon_domain::{rfc3339_ms, MetricFilter, MetricId, MetricView, ReadModelStore};
use slamon_web::{db, ApiError, ApiResult, TaskFailed, Tasks};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
        let state = AppState { store: backends.store().await?, db_timeout: backends.settings().db_timeout };
        let listener = slamon_backends::bind(config.query_api_listen, "query API").await?;
        let router =
            router(state).layer(axum::middleware::from_fn_with_state(config.access.clone(), slamon_web::auth::require));
        Ok(App { listener, router, serving: config.serving.clone() })
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
}

/// The routes of SPEC §5, `/livez` and `/readyz`; JSON 404 elsewhere.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(list))
        .route("/metrics/{id}/values", get(values))
        .route("/metrics/{id}/metadata", get(metadata))
        .route("/metrics/{id}/prediction", get(prediction))
        .merge(slamon_web::health_routes(state.store.clone(), state.db_timeout))
        .fallback(slamon_web::not_found)
        .method_not_allowed_fallback(slamon_web::method_not_allowed)
        .with_state(state)
}

fn parse_filter(params: &[(String, String)]) -> ApiResult<MetricFilter> {
    let mut f = MetricFilter::default();
    for (k, v) in params {
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
                f.limit = Some(v.parse().map_err(|_| {
                    ApiError::BadRequest(format!("Invalid limit `{v}`: expected a non-negative integer"))
                })?)
            }
            "offset" => {
                f.offset = v.parse().map_err(|_| {
                    ApiError::BadRequest(format!("Invalid offset `{v}`: expected a non-negative integer"))
                })?
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Unknown query parameter `{other}` (known: name, match, limit, offset)"
                )))
            }
        }
    }
    Ok(f)
}

async fn list(State(s): State<AppState>, Query(params): Query<Vec<(String, String)>>) -> ApiResult<Json<Value>> {
    list_metrics(s.store.as_ref(), s.db_timeout, &params).await
}

/// `GET /metrics` (SPEC §5, and the SLA manager's own, §6): every live series
/// `[{"_id": {"$oid": id}, "id": id, "name": {labels}}, …]`, filtered and paged by
/// `name`, `match=<label>=<value>`, `limit` and `offset`.
///
/// # Errors
/// [`ApiError::BadRequest`] for an unknown or malformed parameter; the store's errors.
pub async fn list_metrics(
    store: &dyn slamon_domain::ReadModelStore,
    db_timeout: Duration,
    params: &[(String, String)],
) -> ApiResult<Json<Value>> {
    let filter = parse_filter(params)?;
    let metrics = db(db_timeout, store.metrics(&filter)).await?;
    Ok(Json(Value::Array(
        metrics
            .iter()
            .map(|m| json!({"_id": {"$oid": m.id.to_string()}, "id": m.id.to_string(), "name": m.labels}))
            .collect(),
    )))
}

async fn find(s: &AppState, id: &str, what: &str) -> ApiResult<MetricView> {
    let missing = || ApiError::BadRequest(format!("Invalid metric id or no {what} found for given id"));
    let id: MetricId = id.parse().map_err(|_| missing())?;
    match db(s.db_timeout, s.store.metric(&id)).await? {
        Some(m) if !m.removed => Ok(m),
        _ => Err(missing()),
    }
}

use slamon_web::optional_number as num;

async fn values(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let m = find(&s, &id, "values").await?;
    let v = m.values.ok_or_else(|| ApiError::BadRequest("Invalid metric id or no values found for given id".into()))?;
    let mut windows = Map::new();
    for w in &v.windows {
        windows.insert(
            w.window.label().to_owned(),
            json!({"min": num(w.min), "max": num(w.max), "avg": num(w.avg), "std_dev": num(w.std_dev), "samples": w.samples}),
        );
    }
    Ok(Json(json!({"values": windows, "computed_at": rfc3339_ms(v.computed_at_ms)})))
}

async fn metadata(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let m = find(&s, &id, "metadata").await?;
    let md =
        m.metadata.ok_or_else(|| ApiError::BadRequest("Invalid metric id or no metadata found for given id".into()))?;
    let mut out = Map::new();
    if md.constant {
        out.insert("constant".into(), json!(true));
    }
    if let Some(st) = &md.stationarity {
        out.insert(
            "stationarity".into(),
            json!({"stationary": st.stationary, "p_value": num(Some(st.p_value)), "adf_statistic": num(Some(st.adf_statistic)), "used_lag": st.used_lag}),
        );
    }
    if !md.constant {
        let acf: Map<String, Value> =
            md.autocorrelation.iter().map(|(lag, v)| (lag.to_string(), num(Some(*v)))).collect();
        out.insert("autocorrelation".into(), Value::Object(acf));
    }
    if let Some(se) = &md.seasonality {
        let fit = |f: &Option<slamon_domain::SeasonalFit>| match f {
            Some(f) => {
                json!({"period": f.period, "period_seconds": num(Some(f.period_seconds)), "error": num(Some(f.error))})
            }
            None => Value::Null,
        };
        out.insert("seasonality".into(), json!({"add": fit(&se.add), "mul": fit(&se.mul), "method": se.method}));
    }
    out.insert("computed_at".into(), json!(rfc3339_ms(md.computed_at_ms)));
    Ok(Json(json!({ "metadata": out })))
}

async fn prediction(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = find(&s, &id, "prediction").await?;
    let p = m
        .prediction
        .ok_or_else(|| ApiError::BadRequest("Invalid metric id or no prediction found for given id".into()))?;
    let values: Vec<Value> =
        p.points.iter().map(|pt| json!({"timestamp": rfc3339_ms(pt.ts_ms), "value": num(Some(pt.value))})).collect();
    let candidates: Vec<Value> = p
        .candidates
        .iter()
        .map(|c| {
            let mut o = json!({"model": c.model, "rmse": num(c.rmse)});
            if let Some(note) = &c.note {
                o["note"] = json!(note);
            }
            o
        })
        .collect();
    Ok(Json(json!({"prediction": {
        "min": num(Some(p.min)), "max": num(Some(p.max)), "avg": num(Some(p.avg)),
        "values": values, "rmse": num(Some(p.rmse)), "model": p.model, "candidates": candidates,
        "computed_at": rfc3339_ms(p.computed_at_ms),
    }}))
    .into_response())
}

#[cfg(test)]
mod tests;
