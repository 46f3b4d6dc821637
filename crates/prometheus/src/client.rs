//! A client of the Prometheus HTTP API: `/api/v1/series`, `/api/v1/query` and
//! `/api/v1/query_range`. Window statistics are pushed to Prometheus
//! (`min_over_time` & co.), one query per metric name and window.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use slamon_domain::{
    Labels, MetricSource, PortError, PortResult, Sample, SeriesList, Window, WindowAggregate, NAME_LABEL,
};

/// How the client talks to Prometheus.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Base URL, e.g. `http://prometheus:9090`.
    pub url: String,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// A series counts as present when it has a sample in this lookback.
    pub series_lookback: Duration,
}

pub struct PrometheusSource {
    http: reqwest::Client,
    config: SourceConfig,
    /// Answers that came with `warnings`.
    warnings: AtomicU64,
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    data: Option<Value>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    /// Set when the answer may be partial (e.g. a remote-read backend failed).
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        s => s.parse().unwrap_or(f64::NAN),
    }
}

fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn to_ms(ts: f64) -> i64 {
    (ts * 1000.0).round() as i64
}

/// The PromQL string literal of a value.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl PrometheusSource {
    pub fn new(config: SourceConfig) -> PortResult<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .no_proxy()
            .build()
            .map_err(|e| PortError::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, config, warnings: AtomicU64::new(0) })
    }

    /// One API call: its `data`, and whether the answer came with `warnings` (then it may
    /// be partial; the warnings are logged and counted).
    async fn call(&self, path: &str, params: &[(&str, String)]) -> PortResult<(Value, bool)> {
        let url = format!("{}/api/v1/{path}", self.config.url.trim_end_matches('/'));
        let res = self.http.post(&url).form(params).send().await.map_err(|e| {
            if e.is_timeout() {
                PortError::Unavailable(format!(
                    "prometheus at {} timed out after {:?} ({path})",
                    self.config.url, self.config.timeout
                ))
            } else {
                PortError::Unavailable(format!("prometheus at {} unreachable: {e}", self.config.url))
            }
        })?;
        let status = res.status();
        let body = res
            .text()
            .await
            .map_err(|e| PortError::Unavailable(format!("prometheus {path}: reading the answer: {e}")))?;
        let parsed: ApiResponse = serde_json::from_str(&body).map_err(|_| {
            let snippet: String = body.chars().take(200).collect();
            let e = format!("prometheus {path}: HTTP {status} with a body that is not the Prometheus API: {snippet}");
            if status.is_server_error() {
                PortError::Unavailable(e)
            } else {
                PortError::Other(e)
            }
        })?;
        if parsed.status != "success" {
            let e = format!(
                "prometheus {path}: {} error: {}",
                parsed.error_type.unwrap_or_else(|| "unknown".into()),
                parsed.error.unwrap_or_default()
            );
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                PortError::Unavailable(e)
            } else {
                PortError::Other(e)
            });
        }
        let partial = !parsed.warnings.is_empty();
        if partial {
            self.warnings.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path, warnings = ?parsed.warnings, "prometheus answered with warnings: the answer may be partial");
        }
        let data = parsed.data.ok_or_else(|| PortError::Other(format!("prometheus {path}: answer without data")))?;
        Ok((data, partial))
    }

    /// `/api/v1/query` of an expression whose result is an instant vector.
    pub async fn query_vector(&self, expr: &str, at_ms: i64) -> PortResult<Vec<(Labels, f64)>> {
        let (data, _) = self.call("query", &[("query", expr.to_owned()), ("time", secs(at_ms))]).await?;
        let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("");
        if kind != "vector" {
            return Err(PortError::Other(format!("query `{expr}` returned a {kind}, not a vector")));
        }
        let items: Vec<VectorItem> = serde_json::from_value(data["result"].clone())
            .map_err(|e| PortError::Other(format!("query `{expr}`: {e}")))?;
        Ok(items.into_iter().map(|i| (Labels::new(i.metric), parse_value(&i.value.1))).collect())
    }

    /// `/api/v1/query` of a range-vector selector: the raw samples as stored.
    pub async fn query_matrix(&self, expr: &str, at_ms: i64) -> PortResult<Vec<(Labels, Vec<Sample>)>> {
        let (data, _) = self.call("query", &[("query", expr.to_owned()), ("time", secs(at_ms))]).await?;
        matrix(expr, data)
    }

    /// `/api/v1/query_range`.
    pub async fn query_range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> PortResult<Vec<(Labels, Vec<Sample>)>> {
        let params = [
            ("query", expr.to_owned()),
            ("start", secs(start_ms)),
            ("end", secs(end_ms)),
            ("step", secs(step_ms.max(1))),
        ];
        let (data, _) = self.call("query_range", &params).await?;
        matrix(expr, data)
    }
}

fn matrix(expr: &str, data: Value) -> PortResult<Vec<(Labels, Vec<Sample>)>> {
    let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    if kind != "matrix" {
        return Err(PortError::Other(format!("query `{expr}` returned a {kind}, not a matrix")));
    }
    let items: Vec<MatrixItem> =
        serde_json::from_value(data["result"].clone()).map_err(|e| PortError::Other(format!("query `{expr}`: {e}")))?;
    Ok(items
        .into_iter()
        .map(|i| {
            (Labels::new(i.metric), i.values.into_iter().map(|(t, v)| Sample::new(to_ms(t), parse_value(&v))).collect())
        })
        .collect())
}

#[async_trait]
impl MetricSource for PrometheusSource {
    async fn series(&self) -> PortResult<SeriesList> {
        let now = slamon_domain::now_ms();
        let start = now - self.config.series_lookback.as_millis() as i64;
        let (data, partial) = self
            .call("series", &[("match[]", "{__name__=~\".+\"}".to_owned()), ("start", secs(start)), ("end", secs(now))])
            .await?;
        let items: Vec<BTreeMap<String, String>> =
            serde_json::from_value(data).map_err(|e| PortError::Other(format!("series: {e}")))?;
        let mut series: Vec<Labels> = items.into_iter().map(Labels::new).collect();
        series.sort();
        series.dedup();
        Ok(SeriesList { series, partial })
    }

    async fn window_stats(
        &self,
        metric_name: &str,
        window: Window,
        at_ms: i64,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        let sel = format!("{{__name__={}}}[{}]", quote(metric_name), window.label());
        // one round trip: each aggregation tagged with a label of its own
        let expr = ["min", "max", "avg", "stddev", "count"]
            .iter()
            .map(|agg| format!("label_replace({agg}_over_time({sel}), \"__slamon_agg\", \"{agg}\", \"\", \"\")"))
            .collect::<Vec<_>>()
            .join(" or ");
        let rows = self.query_vector(&expr, at_ms).await?;
        let mut by_series: BTreeMap<Labels, BTreeMap<String, f64>> = BTreeMap::new();
        for (labels, value) in rows {
            let mut map = labels.into_map();
            let agg = map.remove("__slamon_agg").unwrap_or_default();
            map.insert(NAME_LABEL.to_owned(), metric_name.to_owned());
            by_series.entry(Labels::new(map)).or_default().insert(agg, value);
        }
        Ok(by_series
            .into_iter()
            .map(|(labels, aggs)| {
                let n = aggs.get("count").copied().unwrap_or(0.0);
                let finite = |k: &str| aggs.get(k).copied().filter(|v| !v.is_nan());
                // PromQL's stddev is the population one; ours is the sample one (ddof=1)
                let std_dev = finite("stddev").filter(|_| n > 1.0).map(|s| s * (n / (n - 1.0)).sqrt());
                let agg = WindowAggregate {
                    window,
                    min: finite("min"),
                    max: finite("max"),
                    avg: finite("avg"),
                    std_dev,
                    samples: n as u64,
                };
                (labels, agg)
            })
            .collect())
    }

    async fn raw_samples(&self, series: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>> {
        let span_s = ((at_ms - after_ms).max(1000) + 999) / 1000;
        let expr = format!("{}[{span_s}s]", series.selector());
        let result = self.query_matrix(&expr, at_ms).await?;
        let mut samples: Vec<Sample> = result
            .into_iter()
            .filter(|(l, _)| l == series || l.get(NAME_LABEL).is_none())
            .flat_map(|(_, s)| s)
            .filter(|s| s.ts_ms > after_ms && s.ts_ms <= at_ms)
            .collect();
        samples.sort_by_key(|s| s.ts_ms);
        Ok(samples)
    }

    async fn range(&self, series: &Labels, start_ms: i64, end_ms: i64, step_ms: i64) -> PortResult<Vec<Sample>> {
        let result = self.query_range(&series.selector(), start_ms, end_ms, step_ms).await?;
        // the selector also matches series with more labels: keep the one asked for
        Ok(result.into_iter().find(|(labels, _)| labels == series).map(|(_, s)| s).unwrap_or_default())
    }

    fn describe(&self) -> String {
        format!("prometheus at {}", self.config.url)
    }

    fn warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    fn source(url: String) -> PrometheusSource {
        PrometheusSource::new(SourceConfig {
            url,
            timeout: Duration::from_millis(500),
            series_lookback: Duration::from_secs(600),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn prometheus_errors_are_surfaced_with_their_type_and_message() {
        let url = serve(Router::new().route(
            "/api/v1/query",
            post(|| async {
                (
                    axum::http::StatusCode::BAD_REQUEST,
                    r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
                )
            }),
        ))
        .await;
        let err = source(url).query_vector("x{", 0).await.unwrap_err();
        assert_eq!(err.to_string(), "prometheus query: bad_data error: parse error at char 3");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn timeouts_and_unreachable_servers_are_retryable_and_say_so() {
        let url = serve(Router::new().route(
            "/api/v1/query",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "{}"
            }),
        ))
        .await;
        let err = source(url).query_vector("up", 0).await.unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("timed out"), "{err}");
        let err = source("http://127.0.0.1:9".into()).series().await.unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("unreachable"), "{err}");
    }

    #[tokio::test]
    async fn window_stats_turn_promql_population_std_into_sample_std() {
        let url = serve(Router::new().route(
            "/api/v1/query",
            post(|| async {
                let row = |agg: &str, v: &str| {
                    format!(r#"{{"metric":{{"job":"a","__slamon_agg":"{agg}"}},"value":[1.5,"{v}"]}}"#)
                };
                let rows = [
                    row("min", "1"),
                    row("max", "4"),
                    row("avg", "2.5"),
                    row("stddev", "1.118033988749895"),
                    row("count", "4"),
                ];
                format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#, rows.join(","))
            }),
        ))
        .await;
        let rows = source(url).window_stats("m", Window::H1, 1500).await.unwrap();
        assert_eq!(rows.len(), 1);
        let (labels, agg) = &rows[0];
        assert_eq!(labels, &[("__name__", "m"), ("job", "a")].into_iter().collect::<Labels>());
        assert_eq!((agg.min, agg.max, agg.avg, agg.samples), (Some(1.0), Some(4.0), Some(2.5), 4));
        // numpy.std([1,2,3,4], ddof=1)
        assert!((agg.std_dev.unwrap() - 1.2909944487358056).abs() < 1e-12);
    }

    #[tokio::test]
    async fn range_keeps_only_the_series_asked_for() {
        // `m{job="a"}` also matches `m{job="a",pod="x"}`, which Prometheus may list first
        let url = serve(Router::new().route(
            "/api/v1/query_range",
            post(|| async {
                r#"{"status":"success","data":{"resultType":"matrix","result":[
                    {"metric":{"__name__":"m","job":"a","pod":"x"},"values":[[60,"99"]]},
                    {"metric":{"__name__":"m","job":"a"},"values":[[60,"1"],[120,"NaN"],[180,"+Inf"]]}]}}"#
            }),
        ))
        .await;
        let series: Labels = [("__name__", "m"), ("job", "a")].into_iter().collect();
        let got = source(url.clone()).range(&series, 60_000, 180_000, 60_000).await.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].value, got[2].value), (1.0, f64::INFINITY));
        assert!(got[1].value.is_nan(), "non-finite samples are kept as they are");
        let other: Labels = [("__name__", "m"), ("job", "b")].into_iter().collect();
        assert!(source(url).range(&other, 60_000, 180_000, 60_000).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_series_list_with_warnings_is_used_and_marked_partial() {
        let url = serve(Router::new().route(
            "/api/v1/series",
            post(|| async {
                r#"{"status":"success","data":[{"__name__":"up","job":"a"}],
                    "warnings":["remote read: connection refused"]}"#
            }),
        ))
        .await;
        let prometheus = source(url);
        let list = prometheus.series().await.unwrap();
        assert_eq!(list.series.len(), 1, "the data is used");
        assert!(list.partial, "and said to be partial");
        assert_eq!(prometheus.warnings(), 1, "and counted");
    }

    #[test]
    fn times_are_sent_in_seconds_with_millis() {
        assert_eq!(secs(1_700_000_000_123), "1700000000.123");
        assert_eq!(secs(-1), "-0.001");
        assert_eq!(to_ms(1700000000.123), 1_700_000_000_123);
        assert!(parse_value("NaN").is_nan());
        assert_eq!(parse_value("+Inf"), f64::INFINITY);
    }
}
