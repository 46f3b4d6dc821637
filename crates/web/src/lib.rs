//! What the services share at their edge: one table from error kinds to HTTP status
//! codes and gRPC codes ([`ServiceErrorCode`], quickwit's shape), the `{"error": "..."}`
//! body, read-model calls bounded in time (a down database answers `504 DB not
//! available` within seconds, never hangs), named tasks, and serving with a graceful,
//! bounded shutdown.

pub mod auth;
pub mod listener;
pub mod openapi;
pub mod query;

use std::future::Future;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use slamon_domain::PortError;
use tokio_util::sync::CancellationToken;

/// The error kinds of the APIs, each with its status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// 400 with every problem found, one line each (`details`).
    #[error("{}", .0.join("; "))]
    Rejected(Vec<String>),
    /// 404: no such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// 503: a dependency other than the database (e.g. the event log) is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 429: the client asks too often; answered with `Retry-After`.
    #[error("{0}")]
    TooManyRequests(String),
    /// 412: the request's precondition (`If-Match`) does not hold; nothing changed.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 415: the body is declared as a media type the operation does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 504: the read models cannot be reached in time.
    #[error("DB not available")]
    DbUnavailable,
    /// 500: a bug or a corrupt document; the client learns only that it failed.
    #[error("{0}")]
    Internal(String),
}

/// The message of [`ApiError::DbUnavailable`] (SPEC §5, §6).
pub const DB_NOT_AVAILABLE: &str = "DB not available";
/// What a client learns of an internal error; the cause is logged.
pub const INTERNAL_ERROR: &str = "Internal error";

/// The kinds of error a service answers, each with its HTTP status and its gRPC code:
/// the one table both edges use.
///
/// | kind | HTTP | gRPC |
/// | --- | --- | --- |
/// | `BadRequest` | 400 | `INVALID_ARGUMENT` |
/// | `NotFound` | 404 | `NOT_FOUND` |
/// | `Unavailable` (event log, registry) | 503 | `UNAVAILABLE` |
/// | `TooManyRequests` (a rate limit) | 429 | `RESOURCE_EXHAUSTED` |
/// | `PreconditionFailed` (`If-Match`) | 412 | `FAILED_PRECONDITION` |
/// | `UnsupportedMediaType` (`Content-Type`) | 415 | `INVALID_ARGUMENT` |
/// | `DbUnavailable` (read models down or late) | 504 | `UNAVAILABLE` |
/// | `Internal` | 500 | `INTERNAL` |
///
/// A read-model outage is 504 over HTTP (SPEC §5: the service is a gateway to the
/// database, which did not answer in time) and `UNAVAILABLE` over gRPC, the code gRPC
/// clients retry (`DEADLINE_EXCEEDED` means the caller's own deadline passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceErrorCode {
    BadRequest,
    NotFound,
    Unavailable,
    TooManyRequests,
    PreconditionFailed,
    UnsupportedMediaType,
    DbUnavailable,
    Internal,
}

impl ServiceErrorCode {
    /// The HTTP status of the kind.
    pub fn http_status(self) -> StatusCode {
        match self {
            ServiceErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ServiceErrorCode::NotFound => StatusCode::NOT_FOUND,
            ServiceErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ServiceErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ServiceErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ServiceErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServiceErrorCode::DbUnavailable => StatusCode::GATEWAY_TIMEOUT,
            ServiceErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC code of the kind.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ServiceErrorCode::BadRequest | ServiceErrorCode::UnsupportedMediaType => tonic::Code::InvalidArgument,
            ServiceErrorCode::NotFound => tonic::Code::NotFound,
            ServiceErrorCode::Unavailable | ServiceErrorCode::DbUnavailable => tonic::Code::Unavailable,
            ServiceErrorCode::TooManyRequests => tonic::Code::ResourceExhausted,
            ServiceErrorCode::PreconditionFailed => tonic::Code::FailedPrecondition,
            ServiceErrorCode::Internal => tonic::Code::Internal,
        }
    }
}

impl ApiError {
    /// The kind of the error in the table.
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Rejected(_) => ServiceErrorCode::BadRequest,
            ApiError::NotFound(_) => ServiceErrorCode::NotFound,
            ApiError::Unavailable(_) => ServiceErrorCode::Unavailable,
            ApiError::TooManyRequests(_) => ServiceErrorCode::TooManyRequests,
            ApiError::PreconditionFailed(_) => ServiceErrorCode::PreconditionFailed,
            ApiError::UnsupportedMediaType(_) => ServiceErrorCode::UnsupportedMediaType,
            ApiError::DbUnavailable => ServiceErrorCode::DbUnavailable,
            ApiError::Internal(_) => ServiceErrorCode::Internal,
        }
    }

    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        self.code().http_status()
    }

    /// What the client is told: the message, except for an internal error, whose cause
    /// is logged (with its chain) and not sent.
    fn client_message(self) -> (ServiceErrorCode, String, Option<Vec<String>>) {
        let code = self.code();
        match self {
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::Unavailable(m)
            | ApiError::TooManyRequests(m)
            | ApiError::PreconditionFailed(m)
            | ApiError::UnsupportedMediaType(m) => (code, m, None),
            ApiError::Rejected(lines) => (code, lines.join("\n"), Some(lines)),
            ApiError::DbUnavailable => (code, DB_NOT_AVAILABLE.to_owned(), None),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (code, INTERNAL_ERROR.to_owned(), None)
            }
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let (code, message, _) = e.client_message();
        tonic::Status::new(code.grpc_code(), message)
    }
}

impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::Unavailable(cause) => {
                tracing::warn!(%cause, "read models unavailable");
                ApiError::DbUnavailable
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, message, details) = self.client_message();
        let body = openapi::ErrorBody { error: message, details };
        let mut response = (code.http_status(), Json(body)).into_response();
        if code == ServiceErrorCode::TooManyRequests {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        }
        response
    }
}

/// The first `max_chars` characters of `text`, with `…` when there are more: a client's
/// input quoted in an error message without echoing megabytes back.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// A number in a JSON body. Finite numbers are JSON numbers; NaN, +Inf and -Inf are the
/// strings `"NaN"`, `"+Inf"` and `"-Inf"`, as Prometheus's own HTTP API spells them (JSON
/// has no non-finite numbers; never a silent `null`).
pub fn number(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::Value::from(v)
    } else if v.is_nan() {
        serde_json::Value::from("NaN")
    } else if v > 0.0 {
        serde_json::Value::from("+Inf")
    } else {
        serde_json::Value::from("-Inf")
    }
}

/// [`number`], or `null` for a value that does not exist (e.g. the standard deviation of
/// one sample).
pub fn optional_number(v: Option<f64>) -> serde_json::Value {
    v.map_or(serde_json::Value::Null, number)
}

/// `Result` of a handler.
pub type ApiResult<T = Response> = Result<T, ApiError>;

/// Runs a read-model call with a deadline: an unreachable or hung database is
/// `504 DB not available` after `limit`.
pub async fn db<T>(limit: Duration, call: impl Future<Output = Result<T, PortError>>) -> ApiResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => {
            tracing::warn!(?limit, "read-model call timed out");
            Err(ApiError::DbUnavailable)
        }
    }
}

/// The JSON 405 of a known route asked with a method it does not take.
pub async fn method_not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, Json(openapi::ErrorBody::new("Method not allowed on this route"))).into_response()
}

/// The JSON 404 of unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("No such route".into())
}

/// A REST service's router: `api` with the probes (`/livez`, `/readyz` on `store` within
/// `db_timeout`), JSON 404 and 405 elsewhere, every route behind `access`
/// ([`auth::require`]) and taking only the query parameters its document declares
/// ([`query::QueryContract`]), on `state`.
pub fn service_router<S: Clone + Send + Sync + 'static>(
    api: utoipa_axum::router::OpenApiRouter<S>,
    store: std::sync::Arc<dyn slamon_domain::ReadModelStore>,
    db_timeout: Duration,
    access: &auth::Access,
    state: S,
) -> axum::Router {
    let (api, doc) = api.merge(openapi::probes(store, db_timeout)).split_for_parts();
    let contract = query::QueryContract::of(&serde_json::to_value(&doc).unwrap_or_default());
    api.route_layer(axum::middleware::from_fn_with_state(contract, query::enforce))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(access.clone(), auth::require))
        .with_state(state)
}

/// `/livez`: the process answers.
pub fn livez<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new().route("/livez", axum::routing::get(openapi::livez))
}

/// `/livez`, and `/readyz`: the read models answer within `db_timeout` (the documented
/// [`openapi::probes`] without their documentation).
pub fn health_routes<S: Clone + Send + Sync + 'static>(
    store: std::sync::Arc<dyn slamon_domain::ReadModelStore>,
    db_timeout: Duration,
) -> axum::Router<S> {
    openapi::probes(store, db_timeout).split_for_parts().0
}

/// Why a task failed: any error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A task that failed: its name and why.
#[derive(Debug, thiserror::Error)]
#[error("{task} failed: {source}")]
pub struct TaskFailed {
    /// The task's name.
    pub task: &'static str,
    /// Why it failed.
    #[source]
    pub source: BoxError,
}

/// Named tasks of one service; the first to end (or fail) cancels the others (a
/// `JoinSet` under one `CancellationToken`).
pub struct Tasks {
    set: tokio::task::JoinSet<(&'static str, Result<(), BoxError>)>,
    cancel: CancellationToken,
}

impl Tasks {
    /// Tasks cancelled with `cancel` (and cancelling it when one ends).
    pub fn new(cancel: CancellationToken) -> Self {
        Self { set: tokio::task::JoinSet::new(), cancel }
    }

    /// The token the tasks stop on.
    pub fn cancel(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Runs `task` under `name`.
    pub fn spawn<E>(&mut self, name: &'static str, task: impl Future<Output = Result<(), E>> + Send + 'static)
    where
        E: Into<BoxError> + 'static,
    {
        self.set.spawn(async move { (name, task.await.map_err(Into::into)) });
    }

    /// Serves `router` on `listener` as the task `name` (plain HTTP, default
    /// [`listener::Limits`]), draining for at most `GRACE` on cancellation: the
    /// exporter and the admin endpoints.
    pub fn spawn_http(&mut self, name: &'static str, listener: tokio::net::TcpListener, router: axum::Router) {
        self.spawn_api(name, listener, router, None, listener::Limits::default());
    }

    /// Serves an API: [`Tasks::spawn_http`] with its TLS and limits.
    pub fn spawn_api(
        &mut self,
        name: &'static str,
        listener: tokio::net::TcpListener,
        router: axum::Router,
        tls: Option<listener::Tls>,
        limits: listener::Limits,
    ) {
        let cancel = self.cancel.clone();
        self.spawn(name, listener::serve(name, listener, router, tls, limits, cancel, GRACE));
    }

    /// Waits for every task; the first that ends cancels the rest.
    ///
    /// # Errors
    /// The first task that failed (or panicked).
    pub async fn wait(mut self) -> Result<(), TaskFailed> {
        let mut failure = None;
        while let Some(joined) = self.set.join_next().await {
            let (name, result) = match joined {
                Ok(done) => done,
                Err(e) => ("task", Err(format!("panicked: {e}").into())),
            };
            match result {
                Err(source) => {
                    tracing::error!(task = name, error = %source, "task failed, stopping");
                    failure.get_or_insert(TaskFailed { task: name, source });
                }
                Ok(()) if !self.cancel.is_cancelled() => tracing::warn!(task = name, "task ended, stopping"),
                Ok(()) => {}
            }
            self.cancel.cancel();
        }
        failure.map_or(Ok(()), Err)
    }
}

/// How long listeners drain open requests on shutdown.
pub const GRACE: Duration = Duration::from_secs(10);

/// The Prometheus text exposition of a registry.
pub fn render(registry: &prometheus::Registry) -> String {
    let mut buf = Vec::new();
    use prometheus::Encoder;
    let _ = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// The exporter: `GET /metrics` in the Prometheus text format.
pub fn exporter(registry: prometheus::Registry) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let r = registry.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], render(&r)) }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_finite_numbers_are_spelled_as_prometheus_does() {
        let body = json!([number(1.5), number(f64::NAN), number(f64::INFINITY), number(f64::NEG_INFINITY)]);
        assert_eq!(body.to_string(), r#"[1.5,"NaN","+Inf","-Inf"]"#);
        assert_eq!(optional_number(None), serde_json::Value::Null);
    }

    #[test]
    fn one_table_for_http_and_grpc() {
        let cases = [
            (ApiError::BadRequest("bad".into()), 400, tonic::Code::InvalidArgument, "bad"),
            (ApiError::NotFound("no".into()), 404, tonic::Code::NotFound, "no"),
            (ApiError::Unavailable("log down".into()), 503, tonic::Code::Unavailable, "log down"),
            (ApiError::DbUnavailable, 504, tonic::Code::Unavailable, DB_NOT_AVAILABLE),
            (ApiError::TooManyRequests("slow down".into()), 429, tonic::Code::ResourceExhausted, "slow down"),
            (ApiError::PreconditionFailed("stale".into()), 412, tonic::Code::FailedPrecondition, "stale"),
            (ApiError::Internal("secret cause".into()), 500, tonic::Code::Internal, INTERNAL_ERROR),
        ];
        for (error, http, grpc, message) in cases {
            assert_eq!(error.status().as_u16(), http);
            let status = tonic::Status::from(error);
            assert_eq!((status.code(), status.message()), (grpc, message), "the same kind and text over gRPC");
        }
    }
}
