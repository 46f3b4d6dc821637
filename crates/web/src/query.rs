//! The query parameters a route takes, as its OpenAPI document declares them, enforced
//! for every API route alike: a parameter the route does not take, or one given twice
//! that is not a list, answers `400` with the JSON error body instead of being ignored (a
//! misspelt `min_probabilty` would otherwise silently filter nothing). Web pages (routes
//! answering `text/html`) are left alone: links to them carry parameters of their own
//! (`utm_source`, …) and a browser shows their own error pages.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::{excerpt, ApiError};

/// For each documented path (`/metrics/{id}/prediction`), its query parameters in the
/// order documented, each with whether it may repeat (its schema is an array).
#[derive(Debug, Clone, Default)]
pub struct QueryContract(Arc<BTreeMap<String, Vec<(String, bool)>>>);

impl QueryContract {
    /// The query parameters of every operation of every path of `doc` (an OpenAPI 3.1
    /// document as JSON) but web pages (a `GET` answering `text/html`); a path's
    /// operations share one list.
    pub fn of(doc: &Value) -> Self {
        let mut paths = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            if item["get"]["responses"]["200"]["content"].get("text/html").is_some() {
                continue;
            }
            let mut params: Vec<(String, bool)> = Vec::new();
            let operations = item.as_object().into_iter().flatten().map(|(_, op)| op).chain([item]);
            for param in operations.filter_map(|op| op["parameters"].as_array()).flatten() {
                let Some(name) = param["in"].as_str().filter(|i| *i == "query").and(param["name"].as_str()) else {
                    continue;
                };
                let schema_type = &param["schema"]["type"];
                let list = schema_type == "array"
                    || schema_type.as_array().is_some_and(|types| types.iter().any(|t| t == "array"));
                if !params.iter().any(|(n, _)| n == name) {
                    params.push((name.to_owned(), list));
                }
            }
            paths.insert(path.clone(), params);
        }
        QueryContract(Arc::new(paths))
    }

    /// Why the query string `query` does not fit what `path` takes, if it does not:
    /// an unknown parameter, a repeated one that is not a list, or a malformed query.
    /// An undocumented path is not checked.
    pub fn check(&self, path: &str, query: Option<&str>) -> Result<(), String> {
        let (Some(params), Some(query)) = (self.0.get(path), query) else { return Ok(()) };
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| format!("Malformed query string: {e}"))?;
        let mut seen = HashSet::new();
        for (name, _) in &pairs {
            match params.iter().find(|(n, _)| n == name) {
                None if params.is_empty() => {
                    return Err(format!("Unknown query parameter `{}`: {path} takes none", excerpt(name, 40)))
                }
                None => {
                    let known: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(format!(
                        "Unknown query parameter `{}` (known: {})",
                        excerpt(name, 40),
                        known.join(", ")
                    ));
                }
                Some((_, false)) if !seen.insert(name.as_str()) => {
                    return Err(format!("Query parameter `{}` given more than once", excerpt(name, 40)))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The middleware of [`QueryContract`]: a request whose query does not fit its route's
/// declared parameters is answered `400` before its handler runs.
pub async fn enforce(State(contract): State<QueryContract>, request: Request, next: Next) -> Response {
    let path = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    if let Some(path) = path {
        if let Err(message) = contract.check(&path, request.uri().query()) {
            return ApiError::BadRequest(message).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract() -> QueryContract {
        QueryContract::of(&json!({"paths": {
            "/metrics": {"get": {"parameters": [
                {"name": "name", "in": "query", "schema": {"type": "string"}},
                {"name": "match", "in": "query", "schema": {"type": ["array", "null"], "items": {"type": "string"}}},
            ]}},
            "/metrics/{id}/prediction": {"get": {"parameters": [
                {"name": "id", "in": "path", "schema": {"type": "string"}},
            ]}},
            "/ui/metrics": {"get": {
                "parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"content": {"text/html": {}}}},
            }},
        }}))
    }

    #[test]
    fn a_route_takes_only_the_parameters_it_documents() {
        let c = contract();
        assert_eq!(c.check("/metrics", Some("name=up&match=a=b&match=c=d")), Ok(()));
        assert_eq!(c.check("/metrics", None), Ok(()));
        assert_eq!(
            c.check("/metrics", Some("nme=up")),
            Err("Unknown query parameter `nme` (known: name, match)".into())
        );
        assert_eq!(
            c.check("/metrics", Some("name=a&name=b")),
            Err("Query parameter `name` given more than once".into())
        );
        // a path parameter is not a query parameter
        assert_eq!(
            c.check("/metrics/{id}/prediction", Some("id=1")),
            Err("Unknown query parameter `id`: /metrics/{id}/prediction takes none".into())
        );
        // an undocumented path and a web page are left to their handlers
        assert_eq!(c.check("/elsewhere", Some("x=1")), Ok(()));
        assert_eq!(c.check("/ui/metrics", Some("utm_source=mail")), Ok(()));
        // a long name is quoted in part
        let long = format!("{}=1", "x".repeat(5000));
        let error = c.check("/metrics", Some(&long)).unwrap_err();
        assert!(error.len() < 120 && error.contains(&format!("`{}…`", "x".repeat(40))), "{error}");
        assert_eq!(crate::excerpt("ab", 2), "ab");
    }
}
