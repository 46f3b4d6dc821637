//! What slamon's OpenAPI 3.1 contracts share: the JSON shapes every service answers
//! (the error body, numbers that may be non-finite), the probes `/livez` and `/readyz`,
//! the document itself at `GET /openapi.json`, and what the edge adds to every operation
//! (bearer tokens: 401 and 403; the listener's limits: 503).
//!
//! Each service documents its handlers with `#[utoipa::path]` and registers them with
//! `utoipa_axum::routes!`, so a route and its documentation are one declaration; its
//! `openapi()` then runs [`finish`] over what the routes declared. The document is
//! checked into `openapi/<service>.json` and a unit test keeps the two equal
//! ([`check_checked_in`]).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, LicenseBuilder, OpenApi, Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{db, ApiResult};

/// A number in a JSON body: a JSON number when finite; NaN, +Inf and -Inf as the strings
/// `"NaN"`, `"+Inf"` and `"-Inf"`, as Prometheus's own HTTP API spells them (JSON has no
/// non-finite numbers). `Option<Number>` is `null` where a value does not exist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number(pub f64);

impl From<f64> for Number {
    fn from(v: f64) -> Self {
        Number(v)
    }
}

impl Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("+Inf")
        } else {
            s.serialize_str("-Inf")
        }
    }
}

/// The strings of the non-finite numbers.
pub const NON_FINITE: [&str; 3] = ["NaN", "+Inf", "-Inf"];

impl PartialSchema for Number {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(NON_FINITE)))
            .description(Some(
                "A number; NaN, +Inf and -Inf are the strings \"NaN\", \"+Inf\" and \"-Inf\", as Prometheus's HTTP API writes them",
            ))
            .into()
    }
}

impl ToSchema for Number {}

/// The body of every error: `{"error": "<message>"}`; a rejected SLA set adds every
/// problem, one line each, in `details` (the lines of `error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, and what the client can do about it.
    pub error: String,
    /// Every problem found, one line each (a rejected SLA set only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub details: Option<Vec<String>>,
}

impl ErrorBody {
    /// `{"error": message}`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { error: message.into(), details: None }
    }
}

/// The name of the bearer security scheme in the documents.
pub const BEARER: &str = "bearer";

/// The content type of JSON bodies.
pub const JSON: &str = "application/json";

/// `GET /livez`: the process answers (`ok`, never a token: probes carry none), or 503
/// once a backend failed for good until a restart ([`slamon_domain::liveness`]).
#[utoipa::path(
    get,
    path = "/livez",
    operation_id = "livez",
    tag = "probes",
    responses(
        (status = 200, description = "The process answers", body = String, content_type = "text/plain", example = "ok"),
        (status = 503, description = "A backend failed for good (e.g. the embedded storage after an I/O error): restart the process",
            body = String, content_type = "text/plain"),
    ),
)]
pub async fn livez() -> Response {
    match slamon_domain::liveness::failure() {
        None => "ok".into_response(),
        Some(reason) => {
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("not live: {reason}; restart the process"))
                .into_response()
        }
    }
}

/// What `/readyz` asks.
#[derive(Clone)]
struct Readiness {
    store: Arc<dyn slamon_domain::ReadModelStore>,
    db_timeout: Duration,
}

/// `GET /readyz`: the read models answer within the deadline.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "probes",
    responses(
        (status = 200, description = "The read models answer", body = String, content_type = "text/plain", example = "ready"),
        (status = 504, response = DbUnavailable),
    ),
)]
async fn readyz(State(r): State<Readiness>) -> ApiResult<&'static str> {
    db(r.db_timeout, r.store.sla_set()).await.map(|_| "ready")
}

fn probes_api() -> OpenApiRouter<Readiness> {
    OpenApiRouter::new().routes(routes!(livez)).routes(routes!(readyz))
}

/// `/livez` and `/readyz` (the read models answer within `db_timeout`), documented.
pub fn probes<S: Clone + Send + Sync + 'static>(
    store: Arc<dyn slamon_domain::ReadModelStore>,
    db_timeout: Duration,
) -> OpenApiRouter<S> {
    probes_api().with_state(Readiness { store, db_timeout })
}

/// The documentation of [`probes`], for a service's document.
pub fn probe_paths() -> OpenApi {
    probes_api().into_openapi()
}

/// The document a service serves, made once at the first request.
#[derive(Clone)]
struct Document {
    make: Arc<dyn Fn() -> Value + Send + Sync>,
    text: Arc<OnceLock<String>>,
}

/// `GET /openapi.json`: this document (with read and write tokens configured, the same
/// text as the checked-in file).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "contract",
    responses((status = 200, description = "The OpenAPI 3.1 document of this service", body = Object, content_type = "application/json")),
)]
async fn openapi_json(State(d): State<Document>) -> Response {
    let text = d.text.get_or_init(|| render(&(d.make)()));
    ([(header::CONTENT_TYPE, JSON)], text.clone()).into_response()
}

/// The route of `GET /openapi.json`, serving what `make` returns (made at the first
/// request).
pub fn document<S: Clone + Send + Sync + 'static>(
    make: impl Fn() -> Value + Send + Sync + 'static,
) -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .with_state(Document { make: Arc::new(make), text: Arc::default() })
}

/// Which operations of a deployment need a bearer token: what its
/// [`Access`](crate::auth::Access) guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guarded {
    /// Reads (GET) need a read or a write token (SLAMON_READ_TOKEN_FILE is set).
    pub reads: bool,
    /// Writes (PUT) need a write token (SLAMON_API_TOKEN_FILE is set).
    pub writes: bool,
}

impl Guarded {
    /// Both guarded: the contract as checked in (`openapi/*.json`).
    pub const ALL: Guarded = Guarded { reads: true, writes: true };

    /// What `access` guards.
    pub fn of(access: &crate::auth::Access) -> Self {
        Guarded { reads: access.protects_reads(), writes: access.protects_writes() }
    }
}

/// The text of a document: pretty JSON and a final newline (as checked in).
pub fn render(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// A response component of [`finish`]: its name, the JSON error body, a description and
/// headers (name, description).
fn error_response(description: &str, headers: &[(&str, &str)]) -> RefOr<utoipa::openapi::Response> {
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content(JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorBody::name()))).build());
    for (name, text) in headers {
        builder = builder.header(*name, HeaderBuilder::new().schema(String::schema()).description(Some(*text)).build());
    }
    builder.build().into()
}

/// Declares a response component, a `$ref` to one of those [`finish`] adds.
macro_rules! response_component {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                let (_, response) = $crate::openapi::shared_responses().into_iter().find(|(n, _)| *n == stringify!($name)).expect("declared below");
                (stringify!($name), response)
            }
        }
    };
}

response_component!(
    /// 504 `DB not available`: the read models did not answer within `SLAMON_DB_TIMEOUT`.
    DbUnavailable
);
response_component!(
    /// 401: a token is needed and is missing or wrong.
    Unauthorized
);
response_component!(
    /// 403: a read token on a write.
    Forbidden
);
response_component!(
    /// 503: over the listener's limits.
    Overloaded
);
response_component!(
    /// 429: over the PUT rate limit.
    TooManyRequests
);

/// The shared response components, by name.
fn shared_responses() -> Vec<(&'static str, RefOr<utoipa::openapi::Response>)> {
    vec![
        (
            "DbUnavailable",
            error_response(
                "`{\"error\": \"DB not available\"}`: the read models did not answer within SLAMON_DB_TIMEOUT",
                &[],
            ),
        ),
        (
            "Unauthorized",
            error_response(
                "A bearer token is needed (SLAMON_READ_TOKEN_FILE for reads, SLAMON_API_TOKEN_FILE for writes) and is missing or wrong",
                &[("WWW-Authenticate", "`Bearer realm=\"slamon\"`, with `error=\"invalid_token\"` for a wrong token")],
            ),
        ),
        (
            "Forbidden",
            error_response(
                "A read token on a write (`insufficient_scope`): writes need a token of SLAMON_API_TOKEN_FILE",
                &[("WWW-Authenticate", "`Bearer realm=\"slamon\", error=\"insufficient_scope\"`")],
            ),
        ),
        (
            "Overloaded",
            error_response(
                "More than SLAMON_MAX_IN_FLIGHT requests at once on this listener (with Retry-After), or not answered within SLAMON_REQUEST_TIMEOUT",
                &[("Retry-After", "Seconds to wait before retrying (when over the in-flight limit)")],
            ),
        ),
        (
            "BadQuery",
            error_response(
                "A query parameter the operation does not list, or one that is not a list given more than once",
                &[],
            ),
        ),
        (
            "TooManyRequests",
            error_response(
                "More than SLAMON_PUT_RATE_LIMIT SLA set changes a minute; nothing changed",
                &[("Retry-After", "Seconds to wait before retrying")],
            ),
        ),
    ]
}

/// Paths every probe reaches without a token and past the in-flight limit.
fn is_probe(path: &str) -> bool {
    path == "/livez" || path == "/readyz"
}

/// What the title, version and description of a service's document say.
pub struct Info<'a> {
    /// The document's title.
    pub title: &'a str,
    /// The service's version (its crate's).
    pub version: &'a str,
    /// What the service is, in Markdown; the shared rules are appended.
    pub description: &'a str,
}

/// The shared rules, appended to every document's description.
const RULES: &str = "\
Errors are JSON, `{\"error\": \"...\"}`, with the status of each operation below; an unknown route is \
`404 {\"error\": \"No such route\"}` and a method a route does not take is `405` (JSON, with `Allow`). \
An operation takes only the query parameters it lists: another one, or one that is not a list given more \
than once, is `400` (web pages, answering HTML, ignore what they do not use).

Numbers that are not finite (NaN, +Inf, -Inf) are the strings `\"NaN\"`, `\"+Inf\"` and `\"-Inf\"`, as \
Prometheus's HTTP API writes them (the `Number` schema); `null` means only that a value does not exist.

Tokens: when SLAMON_READ_TOKEN_FILE names a file of tokens, every read needs `Authorization: Bearer <token>` \
(a read or a write token, else `401`); when SLAMON_API_TOKEN_FILE does, every write needs a write token \
(`401`; a read token is `403`). Without them the operations are open. `/livez` and `/readyz` never need one. \
The operations below that name the `bearer` scheme are those that need a token in the deployment that serves \
this document at `/openapi.json`; the checked-in contract (`openapi/*.json`) is that of a deployment with both \
files.

Limits: at most SLAMON_MAX_IN_FLIGHT requests run at once and each is answered within SLAMON_REQUEST_TIMEOUT, \
else `503`.";

/// Completes a service's document made from its routes: title, version and description,
/// the bearer scheme, the shared response components and schemas, and on every
/// operation what the edge adds: the bearer requirement and 401 where `guarded` says a
/// token is needed (and 403 on writes when reads are guarded too: a read token on a
/// write); 503 over the listener's limits, except on `/livez`. Returns the document as
/// JSON, every response header marked `required` where it is always sent (all but 503's
/// `Retry-After`).
pub fn finish(mut doc: OpenApi, info: Info<'_>, guarded: Guarded) -> Value {
    doc.info = InfoBuilder::new()
        .title(info.title)
        .version(info.version)
        .description(Some(format!("{}\n\n{RULES}", info.description)))
        .license(Some(LicenseBuilder::new().name("Apache-2.0").identifier(Some("Apache-2.0")).build()))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.to_owned(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A token of SLAMON_READ_TOKEN_FILE (reads) or SLAMON_API_TOKEN_FILE (reads and writes)",
                ))
                .build(),
        ),
    );
    for (name, response) in shared_responses() {
        components.responses.insert(name.to_owned(), response);
    }
    components.schemas.insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    components.schemas.insert(Number::name().into_owned(), Number::schema());

    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (HttpMethod::Get, &mut item.get),
            (HttpMethod::Put, &mut item.put),
            (HttpMethod::Post, &mut item.post),
            (HttpMethod::Delete, &mut item.delete),
            (HttpMethod::Patch, &mut item.patch),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                edge(path, &method, operation, guarded);
            }
        }
    }
    let mut value = serde_json::to_value(&doc).expect("an OpenAPI document serializes");
    mark_required_headers(&mut value);
    value
}

/// What the edge adds to one operation.
fn edge(path: &str, method: &HttpMethod, operation: &mut Operation, guarded: Guarded) {
    let page = match operation.responses.responses.get("200") {
        Some(RefOr::T(ok)) => ok.content.contains_key("text/html"),
        _ => false,
    };
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, name: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| Ref::from_response_name(name).into());
    };
    if path != "/livez" {
        add("503", "Overloaded");
    }
    // every operation but a web page's takes only the query parameters it lists (`crate::query`)
    if !page {
        add("400", "BadQuery");
    }
    // the same rule as `auth::Operation::of`
    let write = !matches!(method, HttpMethod::Get | HttpMethod::Head | HttpMethod::Options);
    let needs_token = if write { guarded.writes } else { guarded.reads };
    if needs_token && !is_probe(path) {
        add("401", "Unauthorized");
        if write && guarded.reads {
            add("403", "Forbidden");
        }
        operation.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
    }
}

/// Sets `required: true` on every response header (utoipa's header has no such field),
/// except 503's `Retry-After`, sent only over the in-flight limit, and `Link`, sent only
/// when there is a next page.
fn mark_required_headers(doc: &mut Value) {
    let mark = |status: &str, headers: &mut Value| {
        if let Some(headers) = headers.as_object_mut() {
            for (name, header) in headers.iter_mut() {
                let optional =
                    (status == "503" && name.eq_ignore_ascii_case("retry-after")) || name.eq_ignore_ascii_case("link");
                header["required"] = Value::Bool(!optional);
            }
        }
    };
    if let Some(responses) = doc.pointer_mut("/components/responses").and_then(Value::as_object_mut) {
        for (status_or_name, response) in responses.iter_mut() {
            let status = if status_or_name == "Overloaded" { "503" } else { status_or_name.as_str() };
            if let Some(h) = response.get_mut("headers") {
                mark(status, h);
            }
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for operation in item.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
                let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
                for (status, response) in responses.iter_mut() {
                    if let Some(h) = response.get_mut("headers") {
                        mark(status, h);
                    }
                }
            }
        }
    }
}

/// The environment variable that makes [`check_checked_in`] rewrite the file.
pub const UPDATE_ENV: &str = "SLAMON_UPDATE_OPENAPI";

/// Compares `doc` with the checked-in file `path` (for a unit test), or writes it when
/// `SLAMON_UPDATE_OPENAPI=1`.
///
/// # Panics
/// When the file differs (or is missing), with the command that regenerates it.
pub fn check_checked_in(doc: &Value, path: &Path, package: &str) {
    let generated = render(doc);
    if std::env::var(UPDATE_ENV).as_deref() == Ok("1") {
        std::fs::write(path, &generated).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    if checked_in != generated {
        let line = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()));
        panic!(
            "{} is not what the code generates (first difference at line {}): regenerate it with\n    \
             {UPDATE_ENV}=1 cargo test -p {package} openapi\nand commit it",
            path.display(),
            line + 1
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_serialize_as_prometheus_writes_them_and_their_schema_says_so() {
        let body =
            serde_json::to_string(&[Number(1.5), Number(f64::NAN), Number(f64::INFINITY), Number(-f64::INFINITY)])
                .unwrap();
        assert_eq!(body, r#"[1.5,"NaN","+Inf","-Inf"]"#);
        let schema = serde_json::to_value(Number::schema()).unwrap();
        assert_eq!(schema["oneOf"][0]["type"], "number");
        assert_eq!(schema["oneOf"][1]["enum"], serde_json::json!(NON_FINITE));
    }

    #[test]
    fn the_edge_adds_tokens_and_limits_to_every_operation_but_the_probes() {
        let mut doc = document::<()>(|| Value::Null).into_openapi();
        doc.merge(probe_paths());
        let open =
            finish(doc.clone(), Info { title: "t", version: "1", description: "d" }, Guarded::of(&Default::default()));
        let contract = &open["paths"]["/openapi.json"]["get"];
        assert!(contract["security"].is_null() && contract["responses"]["401"].is_null(), "open reads: {contract}");
        let doc = finish(doc, Info { title: "t", version: "1", description: "d" }, Guarded::ALL);
        assert_eq!(doc["openapi"], "3.1.0");
        let livez = &doc["paths"]["/livez"]["get"];
        // the edge's 503 (its limits) is not added to a probe; /livez has its own
        assert!(livez["security"].is_null() && livez["responses"]["503"]["$ref"].is_null(), "{livez}");
        let readyz = &doc["paths"]["/readyz"]["get"];
        assert!(readyz["security"].is_null(), "{readyz}");
        assert_eq!(readyz["responses"]["504"]["$ref"], "#/components/responses/DbUnavailable");
        let contract = &doc["paths"]["/openapi.json"]["get"];
        assert_eq!(contract["security"], serde_json::json!([{"bearer": []}]));
        assert_eq!(contract["responses"]["401"]["$ref"], "#/components/responses/Unauthorized");
        assert!(contract["responses"]["403"].is_null(), "a read is never 403");
        let unauthorized = &doc["components"]["responses"]["Unauthorized"];
        assert_eq!(unauthorized["headers"]["WWW-Authenticate"]["required"], true);
        assert_eq!(doc["components"]["responses"]["Overloaded"]["headers"]["Retry-After"]["required"], false);
    }
}
