//! REST routes of the SLA manager.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use slamon_domain::semantics::{future_violations, status, violations};
use slamon_domain::sla::validate_sla_set;
use slamon_domain::{
    seed_time, Event, EventEnvelope, Labels, MetricFilter, ReadModelStore, Sample, SlaEntry, SlaSetDefined,
    SlaSetVersion, SlaSetView, UnixMillis,
};
use slamon_events::Publisher;
use slamon_web::{db, ApiError, ApiResult};
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn ReadModelStore>,
    pub publisher: Publisher,
    /// The number of entries an SLA set must have.
    pub set_size: usize,
    /// The deadline of one read-model call.
    pub db_timeout: Duration,
    /// How long a PUT waits for the projection to show the new set.
    pub visibility_timeout: Duration,
    /// A series with no sample for this long is `absent`.
    pub absent_after: Duration,
    /// Prometheus's lookback delta (see [`slamon_domain::semantics::status`]).
    pub lookback: Duration,
    /// The largest PUT body accepted.
    pub max_body_bytes: usize,
    /// The name of this producer in event envelopes.
    pub producer: String,
    /// PUTs are serialised so versions stay monotonic; it holds the last version this
    /// process gave, so a version is never given twice while the read model lags.
    pub put_lock: Arc<Mutex<u64>>,
    /// Who may write (PUT) and read.
    pub access: slamon_web::auth::Access,
    /// PUTs allowed over time; `None`: no limit.
    pub put_rate: Option<Arc<governor::DefaultDirectRateLimiter>>,
    /// How long a PUT's body may take to arrive.
    pub body_read_timeout: Duration,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/slaset", get(get_set).put(put_set))
        .route("/slaset/history", get(history))
        // the seed's client lists the metrics here too (SPEC §6)
        .route("/metrics", get(list_metrics))
        // the SLA state for Prometheus to scrape
        .route("/metrics/prometheus", get(crate::exposition::prometheus_metrics))
        .route("/status", get(get_status))
        .route("/violations", get(get_violations))
        .route("/future-violations", get(get_future))
        // the web page (HTML)
        .merge(crate::page::routes())
        .merge(slamon_web::health_routes(state.store.clone(), state.db_timeout))
        .fallback(slamon_web::not_found)
        .method_not_allowed_fallback(slamon_web::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.access.clone(), slamon_web::auth::require))
        .with_state(state)
}

fn entry_json(e: &SlaEntry) -> Value {
    json!({
        "_id": {"$oid": e.id().to_string()},
        "name": e.labels,
        "range": {"min": e.range.min, "max": e.range.max},
        "for": e.for_minutes,
    })
}

fn set_json(v: &SlaSetVersion) -> Value {
    Value::Array(v.entries.iter().map(entry_json).collect())
}

async fn current(s: &AppState) -> ApiResult<Option<SlaSetView>> {
    db(s.db_timeout, s.store.sla_set()).await
}

async fn get_set(State(s): State<AppState>) -> ApiResult {
    let (body, version) = match current(&s).await? {
        Some(v) => (set_json(&v.current), v.current.version),
        None => (json!([]), 0),
    };
    let mut res = Json(body).into_response();
    res.headers_mut().insert("X-Slaset-Version", HeaderValue::from(version));
    res.headers_mut().insert(header::ETAG, etag(version));
    Ok(res)
}

async fn list_metrics(
    State(s): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
) -> ApiResult<Json<Vec<slamon_query_api::MetricItem>>> {
    slamon_query_api::list_metrics(s.store.as_ref(), s.db_timeout, &params).await
}

async fn history(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let versions = db(s.db_timeout, s.store.sla_set_history()).await?;
    Ok(Json(Value::Array(
        versions
            .iter()
            .map(|v| json!({"version": v.version, "defined_at": slamon_domain::rfc3339_ms(v.defined_at_ms), "slaset": set_json(v)}))
            .collect(),
    )))
}

/// The version an `If-Match` header asks for: `3`, `"3"` or `W/"3"`; `*` (any
/// existing set) is `Some(None)`.
///
/// # Errors
/// [`ApiError::BadRequest`] for another value.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<Option<u64>>> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(Some(None));
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse::<u64>().map(|v| Some(Some(v))).map_err(|_| {
        ApiError::BadRequest(format!(
            "If-Match must be an SLA set version (as in X-Slaset-Version or ETag), not `{text}`"
        ))
    })
}

/// The entries of a set in a canonical order, to tell an identical set.
fn canonical(entries: &[SlaEntry]) -> Vec<&SlaEntry> {
    let mut sorted: Vec<&SlaEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
    sorted
}

async fn put_set(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult {
    if let Some(limiter) = &s.put_rate {
        if limiter.check().is_err() {
            return Err(ApiError::TooManyRequests("Too many SLA set changes; retry in a few seconds".into()));
        }
    }
    let too_large =
        || ApiError::BadRequest(format!("Request body too large: an SLA set is at most {} bytes", s.max_body_bytes));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_body_bytes as u64) {
        return Err(too_large());
    }
    // a client that sends its body slowly holds a request slot: it gets the header-read
    // deadline to send it, not the whole request deadline
    let bytes = match tokio::time::timeout(s.body_read_timeout, to_bytes(body, s.max_body_bytes)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(too_large()),
        Err(_) => {
            return Err(ApiError::BadRequest(format!(
                "The request body did not arrive within {:?}",
                s.body_read_timeout
            )))
        }
    };
    let known: HashSet<Labels> =
        db(s.db_timeout, s.store.metrics(&MetricFilter::default())).await?.into_iter().map(|m| m.labels).collect();
    let entries =
        validate_sla_set(&bytes, s.set_size, |l| known.contains(l)).map_err(|r| ApiError::Rejected(r.lines))?;

    let wanted = if_match(&headers)?;
    let mut last_issued = s.put_lock.lock().await;
    let shown = current(&s).await?;
    // the read model may lag behind what this process appended: never give a version twice
    let shown_version = shown.as_ref().map_or(0, |v| v.current.version);
    let current_version = shown_version.max(*last_issued);
    match wanted {
        Some(Some(v)) if v != current_version => {
            return Err(ApiError::PreconditionFailed(format!(
                "The SLA set is at version {current_version}, not {v}: read it again and retry"
            )))
        }
        Some(None) if current_version == 0 => {
            return Err(ApiError::PreconditionFailed("No SLA set is defined yet (If-Match: *)".into()))
        }
        _ => {}
    }
    if let Some(view) = shown.as_ref().filter(|v| v.current.version == current_version) {
        if canonical(&view.current.entries) == canonical(&entries) {
            return Ok(version_answer(StatusCode::OK, "SLA set unchanged", current_version));
        }
    }
    let version = current_version + 1;
    let event = EventEnvelope::new(s.producer.clone(), Event::SlaSetDefined(SlaSetDefined { version, entries }));
    s.publisher.publish(&[event]).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot append SlaSetDefined");
        ApiError::Unavailable(format!("Event log not available, the SLA set was not changed: {e}"))
    })?;
    *last_issued = version;
    // read-your-writes: answer once the projection shows the new version
    let deadline = Instant::now() + s.visibility_timeout;
    loop {
        if let Ok(Some(v)) = db(s.db_timeout, s.store.sla_set()).await {
            if v.current.version >= version {
                break;
            }
        }
        if Instant::now() >= deadline {
            // durable, so changed: 202, not a 503 that would say nothing changed
            return Ok(version_answer(
                StatusCode::ACCEPTED,
                "SLA set accepted: it is recorded, the read model does not show it yet",
                version,
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, message) = match current_version {
        0 => (StatusCode::CREATED, "SLA set created"),
        _ => (StatusCode::OK, "SLA set updated"),
    };
    Ok(version_answer(status, message, version))
}

/// `{"message", "version"}` with the version in `X-Slaset-Version` and `ETag`.
fn version_answer(status: StatusCode, message: &str, version: u64) -> axum::response::Response {
    let mut res = (status, Json(json!({"message": message, "version": version}))).into_response();
    res.headers_mut().insert("X-Slaset-Version", HeaderValue::from(version));
    res.headers_mut().insert(header::ETAG, etag(version));
    res
}

/// The `ETag` of a version: `"N"`.
fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes")
}

/// The current set and, for each entry, its recent samples.
pub(crate) async fn set_with_samples(s: &AppState) -> ApiResult<Vec<(SlaEntry, Vec<Sample>)>> {
    let set = current(s).await?.ok_or_else(|| ApiError::BadRequest("SLA set not defined".into()))?;
    let mut out = Vec::with_capacity(set.current.entries.len());
    for e in set.current.entries {
        let samples = db(s.db_timeout, s.store.sla_samples(&e.id())).await?.map(|v| v.samples).unwrap_or_default();
        out.push((e, samples));
    }
    Ok(out)
}

use slamon_web::number as num;

async fn get_status(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let now = UnixMillis::now();
    let items = set_with_samples(&s)
        .await?
        .into_iter()
        .map(|(e, samples)| {
            let st = status(&e, &samples, now, s.lookback, s.absent_after);
            json!({
                "name": e.labels,
                "status": st.state,
                "description": st.description,
                "last-values": st.last_values.iter().map(|v| num(*v)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(Value::Array(items)))
}

fn run_json(r: &slamon_domain::semantics::Run) -> Value {
    json!({
        "start_time": seed_time(r.start.millis()),
        "end_time": seed_time(r.end.millis()),
        "duration": r.duration_minutes(),
        "avg_value": num(r.avg),
        "max_value": num(r.max),
        "min_value": num(r.min),
    })
}

async fn get_violations(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let now = UnixMillis::now();
    let items = set_with_samples(&s)
        .await?
        .into_iter()
        .map(|(e, samples)| {
            let r = violations(&e, &samples, now, s.lookback);
            let mut o = json!({"name": e.labels});
            for (w, v) in &r.windows {
                o[w.label()] = json!({"n": v.n, "time": v.time});
            }
            o["violation_list"] = Value::Array(r.list.iter().map(run_json).collect());
            o
        })
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn get_future(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let mut items = Vec::new();
    for (e, samples) in set_with_samples(&s).await? {
        let metric = db(s.db_timeout, s.store.metric(&e.id())).await?;
        let Some(prediction) = metric.and_then(|m| m.prediction) else {
            items.push(json!({"name": e.labels, "error": "Prediction not available"}));
            continue;
        };
        let list: Vec<Value> = future_violations(&e, &samples, &prediction.points, s.lookback)
            .iter()
            .map(|v| {
                let mut o = run_json(&v.run);
                o["description"] = json!(v.kind.description());
                o
            })
            .collect();
        items.push(json!({"name": e.labels, "violations": list, "prediction_rmse": num(prediction.rmse)}));
    }
    Ok(Json(Value::Array(items)))
}

#[cfg(test)]
mod tests;
