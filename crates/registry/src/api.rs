//! Confluent's REST API over [`Registry`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::store::{Compatibility, Registry, RegistryError};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Shared = Arc<Registry>;

struct ApiError(RegistryError);

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        Self(e)
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.0.codes();
        if status >= 500 {
            tracing::error!(error = %self.0, "schema registry failure");
        }
        reply(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({"error_code": code, "message": self.0.to_string()}),
        )
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(body: Value) -> ApiResult {
    Ok(reply(StatusCode::OK, body))
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn schema_body(bytes: &Bytes) -> Result<String, ApiError> {
    let body: SchemaBody = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::InvalidSchema(format!("malformed request body: {e}")))?;
    if let Some(t) = body.schema_type.as_deref() {
        if !t.eq_ignore_ascii_case("AVRO") {
            return Err(RegistryError::InvalidSchema(format!(
                "schemaType {t} is not supported: this registry stores AVRO schemas only"
            ))
            .into());
        }
    }
    if !body.references.is_empty() {
        return Err(RegistryError::InvalidSchema("schema references are not supported".into()).into());
    }
    Ok(body.schema)
}

pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(StatusCode::OK, json!({})) }))
        .route("/schemas/types", get(|| async { reply(StatusCode::OK, json!(["AVRO"])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route("/subjects/{subject}/versions/{version}/schema", get(raw_schema))
        .route("/config", get(get_global).put(put_global))
        .route("/config/{subject}", get(get_subject_config).put(put_subject_config).delete(delete_subject_config))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility))
        .route("/compatibility/subjects/{subject}/versions", post(compatibility_all))
        .with_state(registry)
}

fn parse_id(id: &str) -> Result<u32, ApiError> {
    id.parse().map_err(|_| RegistryError::SchemaNotFound.into())
}

async fn schema_by_id(State(r): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(json!({"schema": r.schema_by_id(parse_id(&id)?)?}))
}

async fn raw_schema_by_id(State(r): State<Shared>, Path(id): Path<String>) -> ApiResult {
    Ok(reply(StatusCode::OK, serde_json::from_str(&r.schema_by_id(parse_id(&id)?)?).unwrap_or(Value::Null)))
}

async fn id_versions(State(r): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let v: Vec<Value> =
        r.id_versions(parse_id(&id)?)?.into_iter().map(|(s, v)| json!({"subject": s, "version": v})).collect();
    ok(json!(v))
}

async fn subjects(State(r): State<Shared>, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    ok(json!(r.subjects(q.get("deleted").is_some_and(|d| d == "true"))))
}

async fn versions(State(r): State<Shared>, Path(subject): Path<String>) -> ApiResult {
    ok(json!(r.versions(&subject)?))
}

fn registered(reg: crate::store::Registered) -> Value {
    json!({"subject": reg.subject, "version": reg.version, "id": reg.id, "schema": reg.schema})
}

async fn version(State(r): State<Shared>, Path((subject, version)): Path<(String, String)>) -> ApiResult {
    ok(registered(r.version(&subject, &version)?))
}

async fn raw_schema(State(r): State<Shared>, Path((subject, version)): Path<(String, String)>) -> ApiResult {
    let reg = r.version(&subject, &version)?;
    Ok(reply(StatusCode::OK, serde_json::from_str(&reg.schema).unwrap_or(Value::Null)))
}

async fn register(State(r): State<Shared>, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let schema = schema_body(&body)?;
    let id = r.register(&subject, &schema)?;
    tracing::debug!(subject, id, "schema registered");
    ok(json!({"id": id}))
}

async fn lookup(State(r): State<Shared>, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let schema = schema_body(&body)?;
    ok(registered(r.lookup(&subject, &schema)?))
}

async fn delete_subject(State(r): State<Shared>, Path(subject): Path<String>) -> ApiResult {
    ok(json!(r.delete_subject(&subject)?))
}

fn level_body(bytes: &Bytes) -> Result<Compatibility, ApiError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| RegistryError::InvalidCompatibility)?;
    v.get("compatibility")
        .or_else(|| v.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .and_then(Compatibility::parse)
        .ok_or_else(|| RegistryError::InvalidCompatibility.into())
}

async fn get_global(State(r): State<Shared>) -> ApiResult {
    ok(json!({"compatibilityLevel": r.compatibility(None)?.as_str()}))
}

async fn put_global(State(r): State<Shared>, body: Bytes) -> ApiResult {
    let level = level_body(&body)?;
    r.set_compatibility(None, level)?;
    ok(json!({"compatibility": level.as_str()}))
}

async fn get_subject_config(
    State(r): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let level = if q.get("defaultToGlobal").is_some_and(|d| d == "true") {
        r.effective_compatibility(&subject)
    } else {
        r.compatibility(Some(&subject))?
    };
    ok(json!({"compatibilityLevel": level.as_str()}))
}

async fn put_subject_config(State(r): State<Shared>, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let level = level_body(&body)?;
    r.set_compatibility(Some(&subject), level)?;
    ok(json!({"compatibility": level.as_str()}))
}

async fn delete_subject_config(State(r): State<Shared>, Path(subject): Path<String>) -> ApiResult {
    ok(json!({"compatibilityLevel": r.delete_compatibility(&subject)?.as_str()}))
}

fn compat_reply(result: Result<(), String>, verbose: bool) -> ApiResult {
    match (result, verbose) {
        (Ok(()), _) => ok(json!({"is_compatible": true})),
        (Err(d), true) => ok(json!({"is_compatible": false, "messages": [d]})),
        (Err(_), false) => ok(json!({"is_compatible": false})),
    }
}

async fn compatibility(
    State(r): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let schema = schema_body(&body)?;
    compat_reply(r.is_compatible(&subject, &schema, Some(&version))?, q.get("verbose").is_some_and(|v| v == "true"))
}

async fn compatibility_all(
    State(r): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let schema = schema_body(&body)?;
    compat_reply(r.is_compatible(&subject, &schema, None)?, q.get("verbose").is_some_and(|v| v == "true"))
}
