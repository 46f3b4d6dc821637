//! REST routes of the SLA manager.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde_json::Value;
use slamon_domain::semantics::{breach_probability, future_violations, status_in_set, violations};
use slamon_domain::sla::validate_sla_set;
use slamon_domain::{
    DocKey, Document, Event, EventEnvelope, Labels, ReadModelStore, Sample, SlaEntry, SlaSamplesView, SlaSetDefined,
    SlaSetView, UnixMillis,
};
use slamon_events::Publisher;
use slamon_query_api::MetricItem;
use slamon_web::openapi::{DbUnavailable, ErrorBody, Guarded, TooManyRequests};
use slamon_web::{db, excerpt, ApiError, ApiResult};
use tokio::sync::Mutex;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod bodies;

use bodies::{
    ForecastScoresItem, FutureItem, FutureRun, HistoryItem, PutAnswer, SlaEntryBody, SlaEntryInput, StatusItem,
    ViolationsItem,
};

/// What the handlers share (the alert sender and the web page read it too).
#[derive(Clone)]
pub struct AppState {
    /// The read models.
    pub store: Arc<dyn ReadModelStore>,
    /// Appends `SlaSetDefined` to the event log.
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
    /// Whether the read model holds every event appended before this process started
    /// (the projector's committed positions reached the log's ends read at start): until
    /// then a PUT cannot know the last version given, by an earlier run included.
    pub caught_up: tokio::sync::watch::Receiver<bool>,
    /// Who may write (PUT) and read.
    pub access: slamon_web::auth::Access,
    /// PUTs allowed over time; `None`: no limit.
    pub put_rate: Option<Arc<governor::DefaultDirectRateLimiter>>,
    /// How long a PUT's body may take to arrive.
    pub body_read_timeout: Duration,
    /// Cancelled when the service stops: a PUT waiting for the read model to show its
    /// set answers `202` at once (the projector may be stopping too) rather than be cut
    /// off by the listener's grace period with no answer.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// The REST API of SPEC §6 (each route documented in the contract, [`openapi`]) and
/// `/openapi.json` (the document of a deployment that guards `guarded`).
fn api(guarded: Guarded) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_set, put_set))
        .routes(routes!(history))
        // the seed's client lists the metrics here too (SPEC §6)
        .routes(routes!(list_metrics))
        // the SLA state for Prometheus to scrape
        .routes(routes!(crate::exposition::prometheus_metrics))
        .routes(routes!(get_status))
        .routes(routes!(get_violations))
        .routes(routes!(get_future))
        .routes(routes!(get_forecast_scores))
        // the web page (HTML)
        .routes(routes!(crate::page::overview))
        .routes(routes!(crate::page::sla_page))
        .routes(routes!(crate::page::metrics_page))
        .routes(routes!(crate::page::metric_page))
        .routes(routes!(crate::page::history_page))
        .merge(slamon_web::openapi::document(move || openapi_for(guarded)))
}

/// The routes of the SLA manager's REST API: SPEC §6, `/openapi.json`, `/livez`,
/// `/readyz` and the web page; JSON 404 elsewhere.
pub fn router(state: AppState) -> Router {
    let (store, db_timeout, access) = (state.store.clone(), state.db_timeout, state.access.clone());
    slamon_web::service_router(api(Guarded::of(&access)), store, db_timeout, &access, state)
}

/// The SLA manager's OpenAPI 3.1 contract (its REST API), as checked in as
/// `openapi/sla-manager.json`: that of a deployment with read and write tokens.
pub fn openapi() -> Value {
    openapi_for(Guarded::ALL)
}

/// The SLA manager's OpenAPI 3.1 document for a deployment that guards `guarded`, as it
/// serves it at `GET /openapi.json`.
pub fn openapi_for(guarded: Guarded) -> Value {
    let mut doc = api(guarded).into_openapi();
    doc.merge(slamon_web::openapi::probe_paths());
    slamon_query_api::add_list_schemas(&mut doc);
    slamon_web::openapi::finish(
        doc,
        slamon_web::openapi::Info {
            title: "slamon SLA manager",
            version: env!("CARGO_PKG_VERSION"),
            description: "The SLA manager's REST API (port 5001, SLAMON_SLA_MANAGER_LISTEN): define the SLA set \
                (recorded as an `SlaSetDefined` event), and read its status, violations and future violations, \
                derived at query time from the read models; the SLA state in Prometheus's text format for a \
                Prometheus to scrape; and the web page (`/`, `/sla/{id}`, `/ui/...`: HTML with no script). Without a \
                write token it listens on loopback only.",
        },
        guarded,
    )
}

async fn current(s: &AppState) -> ApiResult<Option<SlaSetView>> {
    db(s.db_timeout, s.store.sla_set()).await
}

/// `GET /slaset`: the current set.
#[utoipa::path(
    get,
    path = "/slaset",
    operation_id = "getSlaSet",
    tag = "slaset",
    responses(
        (status = 200, description = "The current set (`[]` when none is defined)", body = Vec<SlaEntryBody>,
            headers(
                ("X-Slaset-Version" = u64, description = "The set's version (0 when none is defined)"),
                ("ETag" = String, description = "The version quoted, `\"N\"`: send it back in `If-Match`"),
            )),
        (status = 504, response = DbUnavailable),
    ),
)]
async fn get_set(State(s): State<AppState>) -> ApiResult {
    let (body, version) = match current(&s).await? {
        Some(v) => (SlaEntryBody::set(&v.current), v.current.version),
        None => (Vec::new(), 0),
    };
    let mut res = Json(body).into_response();
    res.headers_mut().insert("X-Slaset-Version", HeaderValue::from(version));
    res.headers_mut().insert(header::ETAG, etag(version));
    Ok(res)
}

/// `GET /metrics`: every live series (the query API's list; the seed's client asks it here).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "listMetrics",
    tag = "metrics",
    params(
        ("name" = Option<String>, Query, description = "Only the series of this metric (`__name__`)"),
        ("match" = Option<Vec<slamon_query_api::Matcher>>, Query, style = Form, explode = true,
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
        (status = 400, description = "An unknown or malformed parameter", body = ErrorBody),
        (status = 504, response = DbUnavailable),
    ),
)]
async fn list_metrics(
    State(s): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
) -> ApiResult<axum::response::Response> {
    slamon_query_api::list_metrics(s.store.as_ref(), s.db_timeout, &params).await
}

/// `GET /slaset/history`: every version of the set.
#[utoipa::path(
    get,
    path = "/slaset/history",
    operation_id = "getSlaSetHistory",
    tag = "slaset",
    responses(
        (status = 200, description = "Every version, oldest first", body = Vec<HistoryItem>),
        (status = 504, response = DbUnavailable),
    ),
)]
async fn history(State(s): State<AppState>) -> ApiResult<Json<Vec<HistoryItem>>> {
    let versions = db(s.db_timeout, s.store.sla_set_history()).await?;
    Ok(Json(
        versions
            .iter()
            .map(|v| HistoryItem {
                version: v.version,
                defined_at: slamon_domain::rfc3339_ms(v.defined_at_ms),
                slaset: SlaEntryBody::set(v),
            })
            .collect(),
    ))
}

/// What an `If-Match` precondition (RFC 9110 §13.1.1) lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IfMatch {
    /// `*`: any defined set.
    any: bool,
    /// The versions listed as strong entity tags (`"3"`, or `3` as in X-Slaset-Version).
    versions: Vec<u64>,
    /// The header as sent (its first 60 characters), for the 412's message.
    text: String,
}

impl IfMatch {
    /// Whether the set at `current` (0: none defined) passes.
    fn passes(&self, current: u64) -> bool {
        (self.any && current > 0) || self.versions.contains(&current)
    }
}

/// The `If-Match` precondition of a request: every `If-Match` line, each a comma-separated
/// list of entity tags — `"3"` (the ETag), `3` (the X-Slaset-Version) or `W/"3"` — or `*`
/// alone.
/// If-Match compares strongly, so a weak tag is well-formed but never matches.
///
/// # Errors
/// [`ApiError::BadRequest`] for a member that is none of these.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<IfMatch>> {
    let lines: Vec<&str> = headers.get_all(header::IF_MATCH).iter().map(|v| v.to_str().unwrap_or("\u{fffd}")).collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let text = lines.join(", ");
    let mut precondition = IfMatch { any: false, versions: Vec::new(), text: excerpt(&text, 60) };
    let version = |digits: &str| {
        Some(digits).filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())).and_then(|d| d.parse().ok())
    };
    for member in text.split(',').map(str::trim) {
        let quoted = |t: &str| t.strip_prefix('"').and_then(|t| t.strip_suffix('"')).and_then(version);
        if member == "*" && text.trim() == "*" {
            precondition.any = true;
        } else if let Some(weak) = member.strip_prefix("W/") {
            quoted(weak).ok_or_else(|| malformed_if_match(&text))?;
        } else {
            let v = quoted(member).or_else(|| version(member)).ok_or_else(|| malformed_if_match(&text))?;
            precondition.versions.push(v);
        }
    }
    Ok(Some(precondition))
}

/// The 400 of an `If-Match` that is not a list of versions.
fn malformed_if_match(text: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "If-Match must be `*` or SLA set versions (as in X-Slaset-Version or ETag), comma-separated, not `{}`",
        excerpt(text, 60)
    ))
}

/// Checks a PUT's `Content-Type`, when it has one: the SLA set is JSON, so the media type
/// is `application/json` or a structured `application/…+json` (as RFC 6839 names them),
/// in UTF-8 if a charset is given (RFC 8259 §8.1). No header is taken as JSON: the body
/// then parses or is a 400 that says why.
///
/// # Errors
/// 415 naming the media type given (`curl -d` without `-H` sends a form,
/// `application/x-www-form-urlencoded`).
fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let unsupported = |what: &str| {
        ApiError::UnsupportedMediaType(format!(
            "Unsupported Content-Type `{}`{what}: the SLA set is sent as JSON (Content-Type: application/json)",
            slamon_web::excerpt(&String::from_utf8_lossy(value.as_bytes()), 100)
        ))
    };
    let text = value.to_str().map_err(|_| unsupported(""))?;
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = essence == "application/json"
        || essence.strip_prefix("application/").is_some_and(|sub| sub.len() > "+json".len() && sub.ends_with("+json"));
    if !json {
        return Err(unsupported(""));
    }
    for param in parts {
        let (name, charset) = param.split_once('=').unwrap_or((param, ""));
        let charset = charset.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset") && !charset.eq_ignore_ascii_case("utf-8") {
            return Err(unsupported(" (JSON is UTF-8)"));
        }
    }
    Ok(())
}

/// Whether reading a body failed because it is longer than the limit (rather than, say,
/// a malformed chunk).
fn is_over_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The entries of a set in a canonical order, to tell an identical set.
fn canonical(entries: &[SlaEntry]) -> Vec<&SlaEntry> {
    let mut sorted: Vec<&SlaEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
    sorted
}

/// `PUT /slaset`: replaces the whole set.
#[utoipa::path(
    put,
    path = "/slaset",
    operation_id = "putSlaSet",
    tag = "slaset",
    params(
        ("If-Match" = Option<String>, Header, nullable = false,
            pattern = r#"^(\*|(W/"[0-9]{1,19}"|"[0-9]{1,19}"|[0-9]{1,19})( *, *(W/"[0-9]{1,19}"|"[0-9]{1,19}"|[0-9]{1,19}))*)$"#,
            description = "Change the set only if it is at one of these versions (`\"N\"` as in ETag or `N` as in \
                X-Slaset-Version, comma-separated; `*`: only if one is defined), else 412. As RFC 9110 says, \
                If-Match compares strongly: a weak `W/\"N\"` never matches"),
    ),
    request_body(
        content = Vec<SlaEntryInput>, content_type = "application/json",
        description = "The whole set: SLAMON_SLA_SET_SIZE entries (5 by default), each a series the metrics read \
            model lists, at most once; at most SLAMON_MAX_BODY_BYTES (1 MiB), sent within SLAMON_HEADER_READ_TIMEOUT",
        example = json!([
            {"name": {"__name__": "cpuTemp", "instance": "demo:9100", "job": "demo", "sensor": "package"}, "range": {"min": 30, "max": 75}, "for": 5},
            {"name": {"__name__": "diskUsage", "device": "/dev/sda2", "instance": "demo:9100", "job": "demo"}, "range": {"min": 0, "max": 66}, "for": 10},
            {"name": {"__name__": "realUsedMem", "instance": "demo:9100", "job": "demo"}, "range": {"min": 0, "max": 5000000000_u64}, "for": 10},
            {"name": {"__name__": "networkThroughput", "instance": "demo:9100", "interface": "eth0", "job": "demo"}, "range": {"min": 100000, "max": 3000000}, "for": 3},
            {"name": {"__name__": "node_filesystem_avail_bytes", "device": "/dev/sda2", "fstype": "ext4", "instance": "demo:9100", "job": "demo", "mountpoint": "/"}, "range": {"min": 8500000000_u64, "max": 13000000000_u64}, "for": 15}
        ]),
    ),
    responses(
        (status = 200, description = "`SLA set updated` (a new version) or `SLA set unchanged` (the same set: nothing \
            recorded); a GET now shows it", body = PutAnswer, headers(
                ("X-Slaset-Version" = u64, description = "The set's version now"),
                ("ETag" = String, description = "The version quoted, `\"N\"`"),
            )),
        (status = 201, description = "`SLA set created`: the first set; a GET now shows it", body = PutAnswer, headers(
                ("X-Slaset-Version" = u64, description = "The set's version now"),
                ("ETag" = String, description = "The version quoted, `\"N\"`"),
            )),
        (status = 202, description = "Recorded in the event log, not yet shown by the read model within \
            SLAMON_PUT_VISIBILITY_TIMEOUT", body = PutAnswer, headers(
                ("X-Slaset-Version" = u64, description = "The set's version now"),
                ("ETag" = String, description = "The version quoted, `\"N\"`"),
            )),
        (status = 400, description = "Rejected, nothing changed: malformed JSON, not an array, a bad entry (every \
            problem in `details`, one line each), a body too large or too slow, or a malformed If-Match", body = ErrorBody,
            example = json!({"error": "SLA set must consist of 5 metrics. 4 provided", "details": ["SLA set must consist of 5 metrics. 4 provided"]})),
        (status = 412, description = "If-Match names another version than the current one; nothing changed", body = ErrorBody,
            example = json!({"error": "The SLA set is at version 3, not 2: read it again and retry"})),
        (status = 415, description = "The body is declared as another media type than JSON (a Content-Type other \
            than `application/json` or `application/…+json`, or a charset other than UTF-8); nothing changed. \
            Without a Content-Type the body is read as JSON", body = ErrorBody,
            example = json!({"error": "Unsupported Content-Type `application/x-www-form-urlencoded`: the SLA set is sent as JSON (Content-Type: application/json)"})),
        (status = 429, response = TooManyRequests),
        (status = 503, description = "The event log cannot take the change, or the read model has not yet caught \
            up with the log since the SLA manager started (nothing changed either way), or over the listener's \
            limits", body = ErrorBody,
            example = json!({"error": "Event log not available, the SLA set was not changed: broker down"})),
        (status = 504, response = DbUnavailable),
    ),
)]
async fn put_set(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult {
    if let Some(limiter) = &s.put_rate {
        if limiter.check().is_err() {
            return Err(ApiError::TooManyRequests("Too many SLA set changes; retry in a few seconds".into()));
        }
    }
    json_content_type(&headers)?;
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
        Ok(Err(e)) if is_over_limit(&e) => return Err(too_large()),
        Ok(Err(e)) => return Err(ApiError::BadRequest(format!("The request body could not be read: {e}"))),
        Err(_) => {
            return Err(ApiError::BadRequest(format!(
                "The request body did not arrive within {:?}",
                s.body_read_timeout
            )))
        }
    };
    // load only the series the body names (a first pass collects them), not every one
    let named = std::cell::RefCell::new(Vec::new());
    let _ = validate_sla_set(&bytes, s.set_size, |l| {
        named.borrow_mut().push(DocKey::Metric(l.id()));
        true
    });
    let named = named.into_inner();
    let known: HashSet<Labels> = db(s.db_timeout, s.store.load(&named))
        .await?
        .into_iter()
        .filter_map(|d| match d {
            Some(Document::Metric(m)) if !m.removed => Some(m.labels),
            _ => None,
        })
        .collect();
    let entries =
        validate_sla_set(&bytes, s.set_size, |l| known.contains(l)).map_err(|r| ApiError::Rejected(r.lines))?;
    // the read model must hold every set given before this process started, or the
    // version below could be one given already
    wait_caught_up(&s).await?;

    let wanted = if_match(&headers)?;
    let mut last_issued = s.put_lock.lock().await;
    let shown = current(&s).await?;
    // the read model may lag behind what this process appended: never give a version twice
    let shown_version = shown.as_ref().map_or(0, |v| v.current.version);
    let current_version = shown_version.max(*last_issued);
    if let Some(wanted) = wanted.filter(|w| !w.passes(current_version)) {
        let message = if current_version == 0 {
            format!("No SLA set is defined yet (If-Match: {})", wanted.text)
        } else {
            // a weak tag never matches (RFC 9110: If-Match compares strongly)
            let weak = if wanted.text.contains("W/") { " (a weak W/ tag never matches)" } else { "" };
            format!("The SLA set is at version {current_version}, not {}{weak}: read it again and retry", wanted.text)
        };
        return Err(ApiError::PreconditionFailed(message));
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
        if Instant::now() >= deadline || s.stopping.is_cancelled() {
            // durable, so changed: 202, not a 503 that would say nothing changed
            return Ok(version_answer(
                StatusCode::ACCEPTED,
                "SLA set accepted: it is recorded, the read model does not show it yet",
                version,
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = s.stopping.cancelled() => {}
        }
    }
    let (status, message) = match current_version {
        0 => (StatusCode::CREATED, "SLA set created"),
        _ => (StatusCode::OK, "SLA set updated"),
    };
    Ok(version_answer(status, message, version))
}

/// Waits up to the visibility timeout for the read model to hold every event appended
/// before this process started ([`AppState::caught_up`]).
///
/// # Errors
/// [`ApiError::Unavailable`] (503, nothing changed) when it does not in time.
async fn wait_caught_up(s: &AppState) -> Result<(), ApiError> {
    let mut caught_up = s.caught_up.clone();
    let reached = matches!(tokio::time::timeout(s.visibility_timeout, caught_up.wait_for(|c| *c)).await, Ok(Ok(_)));
    if reached {
        return Ok(());
    }
    Err(ApiError::Unavailable(
        "The read model is still catching up with the event log since the SLA manager started (is the projector \
         running?); the SLA set was not changed, retry shortly"
            .into(),
    ))
}

/// `{"message", "version"}` with the version in `X-Slaset-Version` and `ETag`.
fn version_answer(status: StatusCode, message: &str, version: u64) -> axum::response::Response {
    let mut res = (status, Json(PutAnswer { message: message.to_owned(), version })).into_response();
    res.headers_mut().insert("X-Slaset-Version", HeaderValue::from(version));
    res.headers_mut().insert(header::ETAG, etag(version));
    res
}

/// The `ETag` of a version: `"N"`.
fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes")
}

/// The current set and, for each entry, when it entered the set and its recent samples.
pub(crate) async fn set_with_samples(s: &AppState) -> ApiResult<Vec<(SlaEntry, UnixMillis, Vec<Sample>)>> {
    let set = set_with_views(s).await?;
    Ok(set.into_iter().map(|(e, entered, view)| (e, entered, view.map(|v| v.samples).unwrap_or_default())).collect())
}

/// The current set's entries, each with when it entered the set
/// ([`SlaSetView::entered_at`]) and its SLA samples document (samples and forecast
/// scorecard), `None` when the projection has none yet.
///
/// # Errors
/// 400 `SLA set not defined`; the store's errors.
pub(crate) async fn set_with_views(s: &AppState) -> ApiResult<Vec<(SlaEntry, UnixMillis, Option<SlaSamplesView>)>> {
    let set = current(s).await?.ok_or_else(|| ApiError::BadRequest("SLA set not defined".into()))?;
    let mut out = Vec::with_capacity(set.current.entries.len());
    for (i, e) in set.current.entries.iter().enumerate() {
        let view = db(s.db_timeout, s.store.sla_samples(&e.id())).await?;
        out.push((e.clone(), set.entered_at(i), view));
    }
    Ok(out)
}

/// `GET /status`: the state of every SLA now.
#[utoipa::path(
    get,
    path = "/status",
    operation_id = "getStatus",
    tag = "sla",
    responses(
        (status = 200, description = "One item per SLA, in the set's order", body = Vec<StatusItem>),
        (status = 400, description = "No SLA set is defined", body = ErrorBody, example = json!({"error": "SLA set not defined"})),
        (status = 504, response = DbUnavailable),
    ),
)]
async fn get_status(State(s): State<AppState>) -> ApiResult<Json<Vec<StatusItem>>> {
    let now = UnixMillis::now();
    let items = set_with_samples(&s)
        .await?
        .into_iter()
        .map(|(e, entered, samples)| {
            let st = status_in_set(&e, &samples, entered, now, s.lookback, s.absent_after);
            StatusItem::of(&e, st)
        })
        .collect();
    Ok(Json(items))
}

/// `GET /violations`: every SLA's violations over 1h, 3h and 12h.
#[utoipa::path(
    get,
    path = "/violations",
    operation_id = "getViolations",
    tag = "sla",
    responses(
        (status = 200, description = "One item per SLA, in the set's order", body = Vec<ViolationsItem>),
        (status = 400, description = "No SLA set is defined", body = ErrorBody, example = json!({"error": "SLA set not defined"})),
        (status = 504, response = DbUnavailable),
    ),
)]
async fn get_violations(State(s): State<AppState>) -> ApiResult<Json<Vec<ViolationsItem>>> {
    let now = UnixMillis::now();
    let items = set_with_samples(&s)
        .await?
        .into_iter()
        .map(|(e, _, samples)| ViolationsItem::of(&e, &violations(&e, &samples, now, s.lookback)))
        .collect();
    Ok(Json(items))
}

/// `GET /future-violations`: every SLA's predicted violations (its forecast appended to
/// its recent samples).
#[utoipa::path(
    get,
    path = "/future-violations",
    operation_id = "getFutureViolations",
    tag = "sla",
    params(
        ("min_probability" = Option<f64>, Query, minimum = 0, maximum = 1,
            description = "Only the violations whose probability of breach is at least this (those without one are left out)"),
    ),
    responses(
        (status = 200, description = "One item per SLA, in the set's order", body = Vec<FutureItem>),
        (status = 400, description = "No SLA set is defined, or an unknown or malformed parameter", body = ErrorBody,
            example = json!({"error": "SLA set not defined"})),
        (status = 504, response = DbUnavailable),
    ),
)]
async fn get_future(
    State(s): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
) -> ApiResult<Json<Vec<FutureItem>>> {
    let min_probability = min_probability(&params)?;
    let mut items = Vec::new();
    for (e, _, samples) in set_with_samples(&s).await? {
        let metric = db(s.db_timeout, s.store.metric(&e.id())).await?;
        let Some(prediction) = metric.and_then(|m| m.prediction) else {
            items.push(FutureItem::Unavailable { name: e.labels, error: "Prediction not available".into() });
            continue;
        };
        let probability = breach_probability(&e, &samples, &prediction.points, &prediction.intervals);
        let violations = future_violations(&e, &samples, &prediction.points, s.lookback)
            .iter()
            .filter(|_| min_probability.is_none_or(|min| probability.is_some_and(|p| p >= min)))
            .map(|v| FutureRun::of(&v.run, v.kind, probability))
            .collect();
        items.push(FutureItem::Predicted {
            name: e.labels,
            violations,
            prediction_rmse: slamon_web::openapi::Number(prediction.rmse),
            breach_probability: probability,
        });
    }
    Ok(Json(items))
}

/// `GET /forecast-scores`: every SLA's forecast scorecard (see `/metrics/{id}/forecast-scores` on the
/// query API for the latest forecasts one by one).
#[utoipa::path(
    get,
    path = "/forecast-scores",
    operation_id = "getForecastScores",
    tag = "sla",
    responses(
        (status = 200, description = "One item per SLA, in the set's order", body = Vec<ForecastScoresItem>),
        (status = 400, description = "No SLA set is defined", body = ErrorBody, example = json!({"error": "SLA set not defined"})),
        (status = 504, response = DbUnavailable),
    ),
)]
async fn get_forecast_scores(State(s): State<AppState>) -> ApiResult<Json<Vec<ForecastScoresItem>>> {
    let mut items = Vec::new();
    for (e, _, view) in set_with_views(&s).await? {
        let scoring = view.map(|v| v.scoring).unwrap_or_default();
        items.push(ForecastScoresItem {
            models: scoring.models.iter().map(slamon_query_api::ModelScoreBody::of).collect(),
            breaches: slamon_domain::scorecard::breach_scores(&scoring.recent, &e.range).into(),
            name: e.labels,
        });
    }
    Ok(Json(items))
}

/// The `min_probability` of `GET /future-violations`: a number in `[0, 1]`, at most once.
///
/// # Errors
/// [`ApiError::BadRequest`] for another parameter, a repeated one or a value that is not such a number.
fn min_probability(params: &[(String, String)]) -> ApiResult<Option<f64>> {
    let mut min = None;
    for (name, value) in params {
        if name != "min_probability" {
            return Err(ApiError::BadRequest(format!(
                "unknown parameter `{name}`: /future-violations takes only min_probability"
            )));
        }
        if min.is_some() {
            return Err(ApiError::BadRequest("min_probability given more than once".into()));
        }
        // as written: no trimming, so a value padded with (Unicode) spaces is refused, not guessed at
        let p = value.parse::<f64>().ok().filter(|p| (0.0..=1.0).contains(p)).ok_or_else(|| {
            ApiError::BadRequest(format!("min_probability must be a number from 0 to 1, not `{}`", excerpt(value, 40)))
        })?;
        min = Some(p);
    }
    Ok(min)
}

#[cfg(test)]
mod tests;
