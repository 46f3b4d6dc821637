//! A client of the Prometheus HTTP API: `/api/v1/series`, `/api/v1/query` and
//! `/api/v1/query_range`. Window statistics are pushed to Prometheus
//! (`min_over_time` & co.), one query per metric name and segment of its nested windows
//! (the last hour, the 2 h before, the 9 h before those), merged per window.
//!
//! A query too big for Prometheus (too many samples for `--query.max-samples`, a timeout,
//! more points than `query_range` returns) is split instead of given up: window
//! statistics by series, in batches bisected down to one series; `query_range` by time,
//! in consecutive chunks. [`PrometheusSource::splits`] counts the splits.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Deserialize;
use slamon_domain::{
    Labels, MetricSource, PortError, PortResult, Sample, SeriesList, Window, WindowAggregate, NAME_LABEL,
};

/// The aggregations of a window, in the order they are queried.
const AGGREGATIONS: [&str; 5] = ["min", "max", "avg", "stddev", "count"];
/// The label that tags each row of a window-statistics answer with its aggregation.
const AGG_LABEL: &str = "__slamon_agg";
/// Most series in one batch when the window statistics of a metric name are split by series.
const MAX_BATCH_SERIES: usize = 256;
/// Most label values in one set selector (`pod=~"a|b|…"`) of a share of a name's series.
const MAX_SET_VALUES: usize = 2000;
/// Batch queries of one metric name in flight at once.
const BATCH_CONCURRENCY: usize = 4;
/// Most points per series in one `query_range` chunk: below Prometheus's hard limit of 11 000.
const MAX_RANGE_POINTS: i64 = 10_000;

/// How the client talks to Prometheus.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Base URL, e.g. `http://prometheus:9090` or `https://prometheus.example:9090`;
    /// credentials in it (`user:pass@`) are refused: give them in `credentials`.
    pub url: String,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// A series counts as present when it has a sample in this lookback.
    pub series_lookback: Duration,
    /// Who the client says it is.
    pub credentials: Credentials,
    /// Whom it trusts, and its own certificate, for `https`.
    pub tls: TlsFiles,
    /// Extra headers sent with every request (e.g. `X-Scope-OrgID` of a multi-tenant
    /// Prometheus-compatible server); their values are never logged.
    pub headers: Vec<(String, String)>,
    /// The largest answer read, in bytes: a larger one is refused as too big (a query
    /// that can be split is split, by time then by series) instead of held in memory.
    pub max_answer_bytes: usize,
}

/// [`SourceConfig::max_answer_bytes`] by default: 128 MiB, several times the series list
/// of 100 000 series or a vector answer of as many.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 128 << 20;

/// How the client authenticates to Prometheus (its `--web.config.file`, or a proxy in
/// front of it).
#[derive(Clone, Default)]
pub enum Credentials {
    /// None.
    #[default]
    None,
    /// `Authorization: Bearer <token>`, the token being the first line of the file, read
    /// again for every request (a rotated service-account token is picked up), as
    /// Prometheus's own `authorization.credentials_file`.
    BearerFile(std::path::PathBuf),
    /// HTTP basic authentication.
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::BearerFile(path) => f.debug_tuple("BearerFile").field(path).finish(),
            Credentials::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"<redacted>").finish()
            }
        }
    }
}

impl Credentials {
    /// `request` with these credentials: the `Authorization` header (marked sensitive, so
    /// never logged), the bearer token read from its file now.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the token file cannot be read (it may be being
    /// rotated); [`PortError::Other`] when its token is not a header value.
    pub fn authorize(&self, request: reqwest::RequestBuilder) -> PortResult<reqwest::RequestBuilder> {
        Ok(match self {
            Credentials::None => request,
            Credentials::Basic { username, password } => request.basic_auth(username, Some(password)),
            Credentials::BearerFile(path) => {
                let token = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| t.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned))
                    .ok_or_else(|| {
                        PortError::Unavailable(format!("cannot read a bearer token from {}", path.display()))
                    })?;
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| PortError::Other(format!("the token in {} is not a header value", path.display())))?;
                value.set_sensitive(true);
                request.header(reqwest::header::AUTHORIZATION, value)
            }
        })
    }
}

/// The `user:password@` of `url`, percent-decoded, as basic-authentication credentials,
/// taken out of `url`; `None` when it holds none.
pub fn credentials_in_url(url: &mut reqwest::Url) -> Option<Credentials> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let credentials = Credentials::Basic {
        username: decode(url.username()),
        password: url.password().map(decode).unwrap_or_default(),
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(credentials)
}

/// PEM files for `https`: extra trusted CAs (beside the system's roots) and a client
/// certificate with its key (mutual TLS).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// CA certificates trusted beside the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// The client's certificate (chain) and its private key.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// An error and its causes, `a: b: c` (reqwest's own text leaves out why: refused,
/// DNS, TLS).
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The `https` client configuration (rustls, the platform's roots): the CA file and the
/// client certificate added.
///
/// # Errors
/// [`PortError::Other`] naming the file that cannot be read or parsed.
pub fn tls_builder(mut builder: reqwest::ClientBuilder, tls: &TlsFiles) -> PortResult<reqwest::ClientBuilder> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| PortError::Other(format!("cannot read the {what} {}: {e}", path.display())))
    };
    if let Some(ca) = &tls.ca_file {
        let certs = reqwest::Certificate::from_pem_bundle(&read(ca, "CA file")?)
            .map_err(|e| PortError::Other(format!("the CA file {} holds no PEM certificate: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(PortError::Other(format!("the CA file {} holds no PEM certificate", ca.display())));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some((cert, key)) = &tls.client_cert {
        let mut pem = read(cert, "client certificate")?;
        pem.push(b'\n');
        pem.extend(read(key, "client key")?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            PortError::Other(format!(
                "the client certificate {} or key {} is not PEM: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

/// The [`MetricSource`] of a Prometheus server, read through its HTTP API.
pub struct PrometheusSource {
    http: reqwest::Client,
    config: SourceConfig,
    /// Answers that came with `warnings`.
    warnings: AtomicU64,
    /// Queries too big for Prometheus that were split into smaller ones.
    splits: AtomicU64,
    /// The answers of the segments of the cycle's window statistics, shared by the windows
    /// that read them (see [`PrometheusSource::window_stats_by_segments`]).
    segments: std::sync::Mutex<HashMap<SegmentKey, SegmentSlot>>,
}

/// A segment of a name's windows at a time: (metric name, segment, `at_ms`).
type SegmentKey = (String, usize, i64);

/// One segment's answer, once it is in, and how many windows will still read it.
struct SegmentSlot {
    answer: Arc<tokio::sync::OnceCell<SegmentAnswer>>,
    readers_left: usize,
}

/// A segment's statistics per series, or why it failed.
type SegmentAnswer = Result<Arc<Vec<(Labels, PartStats)>>, SegmentFailure>;

/// A failed segment query, kept to be told to every window that reads the segment.
#[derive(Debug, Clone)]
struct SegmentFailure {
    /// Too big for Prometheus: the window is then queried on its own, split as it needs.
    too_big: bool,
    retryable: bool,
    message: String,
}

impl SegmentFailure {
    fn of(e: CallError) -> Self {
        let too_big = matches!(e, CallError::TooBig { .. });
        let e = PortError::from(e);
        let message = match &e {
            PortError::Unavailable(m) | PortError::Invalid(m) | PortError::Other(m) => m.clone(),
        };
        SegmentFailure { too_big, retryable: e.is_retryable(), message }
    }

    fn error(&self) -> PortError {
        if self.retryable {
            PortError::Unavailable(self.message.clone())
        } else {
            PortError::Other(self.message.clone())
        }
    }
}

/// The part of the windows segment `i` covers, `(span_ms, offset_ms)`: the samples in
/// `(at − offset − span, at − offset]` — the 1 h window, then what the 3 h window adds to
/// it, then what the 12 h window adds to that: (at − 1 h, at], (at − 3 h, at − 1 h],
/// (at − 12 h, at − 3 h]. The window [`Window::ALL`]`[i]` is segments `0..=i` merged.
fn segment_span(i: usize) -> (i64, i64) {
    let offset = if i == 0 { 0 } else { Window::ALL[i - 1].millis() };
    (Window::ALL[i].millis() - offset, offset)
}

/// Why Prometheus (or this client's timeout) refused a query for its size: a smaller query may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// "query processing would load too many samples into memory in query execution": errorType
    /// `execution`, HTTP 422 (`--query.max-samples`).
    Samples,
    /// errorType `timeout` (HTTP 503, `--query.timeout`), or this client's own request timeout.
    Timeout,
    /// "exceeded maximum resolution of 11,000 points per timeseries": `query_range`'s HTTP 400 `bad_data`.
    Resolution,
    /// The answer is larger than [`SourceConfig::max_answer_bytes`] (this client's own limit).
    AnswerSize,
}

impl Limit {
    /// The limit behind a Prometheus error answer (its HTTP status, `errorType` and `error`);
    /// `None` when the error is not about the query's size.
    fn of(status: u16, error_type: &str, error: &str) -> Option<Limit> {
        if error_type == "timeout" {
            Some(Limit::Timeout)
        } else if error.contains("too many samples") && (error_type == "execution" || status == 422) {
            Some(Limit::Samples)
        } else if error.contains("exceeded maximum resolution") {
            Some(Limit::Resolution)
        } else {
            None
        }
    }

    /// A short name for logs.
    fn describe(self) -> &'static str {
        match self {
            Limit::Samples => "too many samples",
            Limit::Timeout => "timeout",
            Limit::Resolution => "maximum resolution",
            Limit::AnswerSize => "answer size",
        }
    }
}

/// A failed call, as the client tells errors apart inside itself; callers outside see a
/// [`PortError`] (`From`).
#[derive(Debug)]
enum CallError {
    /// The query was too big (see [`Limit`]); `error` is what the port reports when nothing smaller is tried
    /// (the same as before the split existed: `Other` for a 4xx, `Unavailable` for a 5xx or a timeout).
    TooBig { limit: Limit, error: PortError },
    /// Any other failure.
    Port(PortError),
}

impl From<PortError> for CallError {
    fn from(e: PortError) -> Self {
        CallError::Port(e)
    }
}

impl From<CallError> for PortError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::TooBig { error, .. } | CallError::Port(error) => error,
        }
    }
}

/// A Prometheus API answer, its `data` parsed straight into the type the endpoint gives
/// (no `serde_json::Value` tree in between).
#[derive(Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
struct ApiResponse<T> {
    status: String,
    #[serde(default = "Option::default")]
    data: Option<T>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    /// Set when the answer may be partial (e.g. a remote-read backend failed).
    #[serde(default)]
    warnings: Vec<String>,
}

/// The `data` of `/api/v1/query` and `/api/v1/query_range`: `result` as `R` when
/// `resultType` is the one asked for.
#[derive(Deserialize)]
struct QueryData<R> {
    #[serde(rename = "resultType")]
    result_type: String,
    result: R,
}

/// Only the `resultType` of an answer whose `result` did not parse as asked.
#[derive(Deserialize)]
struct KindOnly {
    data: Option<KindOnlyData>,
}

#[derive(Deserialize)]
struct KindOnlyData {
    #[serde(rename = "resultType")]
    result_type: String,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: Labels,
    value: (f64, PromValue),
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: Labels,
    values: Vec<(f64, PromValue)>,
}

/// A sample value as Prometheus writes it, a string (`"1.5"`, `"NaN"`, `"+Inf"`), read
/// into its `f64` without keeping the string.
struct PromValue(f64);

impl<'de> Deserialize<'de> for PromValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = PromValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sample value as a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PromValue, E> {
                Ok(PromValue(parse_value(v)))
            }
        }
        d.deserialize_str(Visit)
    }
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

use slamon_domain::labels::quote;

/// The selector of every series named `name`, e.g. `{__name__="up"}`.
fn name_selector(name: &str) -> String {
    format!("{{__name__={}}}", quote(name))
}

/// A selector of exactly `series` among series whose label names are at most `label_names`:
/// [`Labels::selector`] plus `label=""` for each of `label_names` that `series` lacks, so that
/// `m{job="a"}` does not also match `m{job="a",pod="x"}`.
fn exact_selector(series: &Labels, label_names: &BTreeSet<&str>) -> String {
    let mut sel = series.selector();
    sel.pop(); // the closing brace
    for name in label_names.iter().filter(|n| **n != NAME_LABEL && series.get(n).is_none()) {
        if !sel.ends_with('{') {
            sel.push(',');
        }
        sel.push_str(name);
        sel.push_str("=\"\"");
    }
    sel.push('}');
    sel
}

/// One query of the window statistics of the series `selectors` match: per aggregation, the
/// `or` of `<agg>_over_time(<selector><range>)`, tagged with [`AGG_LABEL`] (one round trip);
/// the aggregations joined with `or`. `range` is the range and any offset, e.g. `[12h]`.
fn stats_expr_over(selectors: &[String], range: &str) -> String {
    AGGREGATIONS
        .iter()
        .map(|agg| {
            let per_selector =
                selectors.iter().map(|sel| format!("{agg}_over_time({sel}{range})")).collect::<Vec<_>>().join(" or ");
            format!("label_replace({per_selector}, \"{AGG_LABEL}\", \"{agg}\", \"\", \"\")")
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The label of `series` (not the name) with the most distinct values, and its values
/// sorted (`""` for a series without it); `None` when they have no other label.
fn telling_label(series: &[Labels]) -> Option<(&str, Vec<String>)> {
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in series {
        for (k, v) in s.iter() {
            if k != NAME_LABEL {
                values.entry(k).or_default().insert(v);
            }
        }
    }
    let (label, _) = values.iter().max_by_key(|(k, v)| (v.len(), std::cmp::Reverse(*k)))?;
    let label: &str = label;
    let set: BTreeSet<&str> = series.iter().map(|s| s.get(label).unwrap_or("")).collect();
    Some((label, set.into_iter().map(str::to_owned).collect()))
}

/// A regular expression matching exactly the literal `values` (RE2 metacharacters
/// escaped), the form Prometheus looks up in its index as a set of equalities.
fn set_regex(values: &[String]) -> String {
    let escape = |v: &String| {
        let mut out = String::with_capacity(v.len());
        for c in v.chars() {
            if "\\.+*?()|[]{}^$".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    values.iter().map(escape).collect::<Vec<_>>().join("|")
}

/// [`stats_expr_over`] the whole window.
fn stats_expr(selectors: &[String], window: Window) -> String {
    stats_expr_over(selectors, &format!("[{}]", window.label()))
}

/// [`stats_expr_over`] the sub-window `[span_ms - 1 ms] offset offset_ms` of every series
/// named `metric_name`: the samples in `(at − offset − span, at − offset]` (1 ms less at the
/// old end, so that consecutive sub-windows never share a sample).
fn stats_expr_part(metric_name: &str, span_ms: i64, offset_ms: i64) -> String {
    // PromQL refuses `offset 0ms`
    let offset = if offset_ms > 0 { format!(" offset {offset_ms}ms") } else { String::new() };
    stats_expr_over(&[name_selector(metric_name)], &format!("[{}ms]{offset}", span_ms - 1))
}

/// Count, min, max, mean and population variance of one series in one sub-window.
#[derive(Debug, Clone, Copy)]
struct PartStats {
    n: f64,
    min: f64,
    max: f64,
    mean: f64,
    /// The sum of squared deviations from the mean (`n · σ²`).
    m2: f64,
}

impl PartStats {
    /// The statistics of `agg` as a part to merge; `None` for one without samples or
    /// without its minimum, maximum or mean.
    fn of(agg: &WindowAggregate) -> Option<PartStats> {
        let n = agg.samples as f64;
        let (Some(min), Some(max), Some(mean)) = (agg.min, agg.max, agg.avg) else { return None };
        if n == 0.0 {
            return None;
        }
        // back from the sample std of `aggregates` to the sum of squared deviations
        let m2 = agg.std_dev.map_or(0.0, |s| s * s * (n - 1.0));
        Some(PartStats { n, min, max, mean, m2 })
    }

    /// The merged parts as the statistics of `window`.
    fn aggregate(self, window: Window) -> WindowAggregate {
        WindowAggregate {
            window,
            min: Some(self.min),
            max: Some(self.max),
            avg: Some(self.mean),
            std_dev: (self.n > 1.0).then(|| (self.m2 / (self.n - 1.0)).sqrt()),
            samples: self.n as u64,
        }
    }

    /// The two parts as one (Chan, Golub & LeVeque's pairwise update of the mean and the
    /// sum of squared deviations).
    fn merge(self, o: PartStats) -> PartStats {
        let n = self.n + o.n;
        let delta = o.mean - self.mean;
        PartStats {
            n,
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            mean: self.mean + delta * o.n / n,
            m2: self.m2 + o.m2 + delta * delta * self.n * o.n / n,
        }
    }
}

/// The rows of [`stats_expr`] answers folded per series while they are read: the label
/// set of each series (without `__name__` and the aggregation label) and its values in the
/// order of [`AGGREGATIONS`]. A series' five rows come apart in the answer (one block per
/// aggregation); folding them as they come keeps one label set per series in memory
/// instead of one per row.
#[derive(Default)]
struct StatsRows(HashMap<Labels, [Option<f64>; AGGREGATIONS.len()]>);

impl StatsRows {
    fn add(&mut self, metric: Labels, value: f64) {
        let agg = metric.get(AGG_LABEL).and_then(|a| AGGREGATIONS.iter().position(|x| *x == a));
        if let Some(i) = agg {
            self.0.entry(metric.without(AGG_LABEL)).or_default()[i] = Some(value);
        }
    }

    fn extend(&mut self, other: StatsRows) {
        for (metric, values) in other.0 {
            let kept = self.0.entry(metric).or_default();
            for (k, v) in kept.iter_mut().zip(values) {
                if v.is_some() {
                    *k = v;
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for StatsRows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = StatsRows;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an instant vector")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<StatsRows, A::Error> {
                let mut rows = StatsRows::default();
                while let Some(item) = seq.next_element::<VectorItem>()? {
                    rows.add(item.metric, item.value.1 .0);
                }
                Ok(rows)
            }
        }
        d.deserialize_seq(Visit)
    }
}

/// The window aggregates of folded [`stats_expr`] rows, one per series named
/// `metric_name`, sorted by label set.
fn aggregates(metric_name: &str, window: Window, rows: StatsRows) -> Vec<(Labels, WindowAggregate)> {
    let index = |name: &str| AGGREGATIONS.iter().position(|a| *a == name).unwrap_or(0);
    let mut out: Vec<(Labels, WindowAggregate)> = rows
        .0
        .into_iter()
        .map(|(labels, values)| {
            let stat = |k: &str| values[index(k)];
            let n = stat("count").unwrap_or(0.0);
            // as Prometheus computed them: NaN and ±Inf included (the average of +Inf and
            // -Inf is NaN); a statistic it did not answer is None
            // PromQL's stddev is the population one; ours is the sample one (ddof=1)
            let std_dev = stat("stddev").filter(|_| n > 1.0).map(|s| s * (n / (n - 1.0)).sqrt());
            let agg = WindowAggregate {
                window,
                min: stat("min"),
                max: stat("max"),
                avg: stat("avg"),
                std_dev,
                samples: n as u64,
            };
            (labels.with(NAME_LABEL, metric_name), agg)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The label sets of a `/api/v1/series` answer, sorted, without duplicates.
fn label_sets(mut series: Vec<Labels>) -> PortResult<Vec<Labels>> {
    series.sort();
    series.dedup();
    Ok(series)
}

/// The grid points `first..=last` (indexes, inclusive) of a `query_range` that was too big, cut
/// into consecutive pieces: of [`MAX_RANGE_POINTS`] points when it has more, else in two halves.
fn range_pieces(first: i64, last: i64) -> Vec<(i64, i64)> {
    let points = last - first + 1;
    let size = if points > MAX_RANGE_POINTS { MAX_RANGE_POINTS } else { (points + 1) / 2 };
    (first..=last).step_by(size as usize).map(|a| (a, (a + size - 1).min(last))).collect()
}

impl PrometheusSource {
    /// A client of the Prometheus at `config.url`.
    ///
    /// # Errors
    /// [`PortError::Other`] when the HTTP client cannot be built.
    pub fn new(config: SourceConfig) -> PortResult<Self> {
        if config.url.contains('@') {
            return Err(PortError::Other(
                "the Prometheus URL holds credentials: give them as a password or token file instead".into(),
            ));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PortError::Other(format!("`{name}` is not an HTTP header name")))?;
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| PortError::Other(format!("the value of header {name} is not a valid header value")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let builder = reqwest::Client::builder().timeout(config.timeout).no_proxy().default_headers(headers);
        let http = tls_builder(builder, &config.tls)?
            .build()
            .map_err(|e| PortError::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, config, warnings: AtomicU64::new(0), splits: AtomicU64::new(0), segments: Default::default() })
    }

    /// How many times, since this source was made, a query was too big for Prometheus (too many
    /// samples, a timeout, more than `query_range`'s maximum resolution) and was split into smaller
    /// ones: the window statistics of a metric name split into batches of series, a batch bisected,
    /// a `query_range` cut into chunks of time, a chunk halved. Each split counts once, however many
    /// queries it makes. Never decreases (a counter, for the exporter).
    pub fn splits(&self) -> u64 {
        self.splits.load(Ordering::Relaxed)
    }

    /// One API call: its `data` parsed as `T`, and whether the answer came with `warnings`
    /// (then it may be partial; the warnings are logged and counted). The answer is read
    /// up to [`SourceConfig::max_answer_bytes`] and parsed from its bytes into `T` at once.
    ///
    /// `query` names, for a query endpoint, the expression and the `resultType` asked for,
    /// so an answer of another type is said as such.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
        query: Option<(&str, &str)>,
    ) -> Result<(T, bool), CallError> {
        let url = format!("{}/api/v1/{path}", self.config.url.trim_end_matches('/'));
        let timed_out = || CallError::TooBig {
            limit: Limit::Timeout,
            error: PortError::Unavailable(format!(
                "prometheus at {} timed out after {:?} ({path})",
                self.config.url, self.config.timeout
            )),
        };
        let request = self.config.credentials.authorize(self.http.post(&url).form(params))?;
        let res = request.send().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else {
                PortError::Unavailable(format!("prometheus at {} unreachable: {}", self.config.url, with_causes(&e)))
                    .into()
            }
        })?;
        let status = res.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            // a wrong or missing credential: retried each cycle (it may be rotated), and said
            return Err(PortError::Unavailable(format!(
                "prometheus at {} refused the request ({path}): HTTP {status}; check its credentials (SLAMON_PROMETHEUS_BEARER_TOKEN_FILE, SLAMON_PROMETHEUS_USERNAME and SLAMON_PROMETHEUS_PASSWORD_FILE, or the user:password of PROMETHEUS_URL)",
                self.config.url
            ))
            .into());
        }
        let max = self.config.max_answer_bytes;
        let too_big = || CallError::TooBig {
            limit: Limit::AnswerSize,
            error: PortError::Other(format!(
                "prometheus {path}: the answer is larger than {max} bytes (SLAMON_PROMETHEUS_MAX_ANSWER_BYTES)"
            )),
        };
        if res.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_big());
        }
        let mut res = res;
        let mut body: Vec<u8> = Vec::new();
        loop {
            match res.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > max {
                        return Err(too_big());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(timed_out()),
                Err(e) => {
                    return Err(PortError::Unavailable(format!("prometheus {path}: reading the answer: {e}")).into())
                }
            }
        }
        let not_the_api = |body: &[u8]| {
            let snippet: String = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            let e = format!("prometheus {path}: HTTP {status} with a body that is not the Prometheus API: {snippet}");
            if status.is_server_error() {
                PortError::Unavailable(e)
            } else {
                PortError::Other(e)
            }
        };
        let parsed: ApiResponse<T> = match serde_json::from_slice(&body) {
            Ok(parsed) => parsed,
            Err(e) => {
                // the API's shape with another result than asked: say which
                return Err(match (serde_json::from_slice::<KindOnly>(&body), query) {
                    (Ok(KindOnly { data: Some(d) }), Some((expr, wanted))) if d.result_type != wanted => {
                        PortError::Other(format!("query `{expr}` returned a {}, not a {wanted}", d.result_type))
                    }
                    (Ok(KindOnly { data: Some(_) }), _) => {
                        PortError::Other(format!("prometheus {path}: an answer that does not parse: {e}"))
                    }
                    _ => not_the_api(&body),
                }
                .into());
            }
        };
        drop(body);
        if parsed.status != "success" {
            let error_type = parsed.error_type.unwrap_or_else(|| "unknown".into());
            let message = parsed.error.unwrap_or_default();
            let e = format!("prometheus {path}: {error_type} error: {message}");
            let error = if status.is_server_error() || status.as_u16() == 429 {
                PortError::Unavailable(e)
            } else {
                PortError::Other(e)
            };
            return Err(match Limit::of(status.as_u16(), &error_type, &message) {
                Some(limit) => CallError::TooBig { limit, error },
                None => CallError::Port(error),
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

    /// `/api/v1/query` of an expression whose result is an instant vector: one `(labels, value)` per
    /// element, as Prometheus answers it (no split).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when Prometheus is unreachable, times out or answers 5xx/429;
    /// [`PortError::Other`] when it rejects the query or the result is not a vector.
    pub async fn query_vector(&self, expr: &str, at_ms: i64) -> PortResult<Vec<(Labels, f64)>> {
        Ok(self.vector(expr, at_ms).await?)
    }

    /// [`PrometheusSource::query_vector`], telling a query too big apart.
    async fn vector(&self, expr: &str, at_ms: i64) -> Result<Vec<(Labels, f64)>, CallError> {
        let params = [("query", expr.to_owned()), ("time", secs(at_ms))];
        let (data, _): (QueryData<Vec<VectorItem>>, _) = self.call("query", &params, Some((expr, "vector"))).await?;
        if data.result_type != "vector" {
            let kind = data.result_type;
            return Err(PortError::Other(format!("query `{expr}` returned a {kind}, not a vector")).into());
        }
        Ok(data.result.into_iter().map(|i| (i.metric, i.value.1 .0)).collect())
    }

    /// `/api/v1/query` of a [`stats_expr`]: its rows folded per series as they are read.
    async fn stats_rows(&self, expr: &str, at_ms: i64) -> Result<StatsRows, CallError> {
        let params = [("query", expr.to_owned()), ("time", secs(at_ms))];
        let (data, _): (QueryData<StatsRows>, _) = self.call("query", &params, Some((expr, "vector"))).await?;
        if data.result_type != "vector" {
            let kind = data.result_type;
            return Err(PortError::Other(format!("query `{expr}` returned a {kind}, not a vector")).into());
        }
        Ok(data.result)
    }

    /// `/api/v1/query` of a range-vector selector: the raw samples as stored.
    ///
    /// # Errors
    /// As [`PrometheusSource::query_vector`], the result having to be a matrix.
    pub async fn query_matrix(&self, expr: &str, at_ms: i64) -> PortResult<Vec<(Labels, Vec<Sample>)>> {
        let params = [("query", expr.to_owned()), ("time", secs(at_ms))];
        let (data, _) = self.call("query", &params, Some((expr, "matrix"))).await?;
        matrix(expr, data)
    }

    /// `/api/v1/query_range` of `expr` on the grid `start_ms, start_ms + step_ms, …` up to `end_ms`
    /// (milliseconds since the Unix epoch; a step below 1 ms is 1 ms): per series, its samples oldest
    /// first.
    ///
    /// When Prometheus finds the query too big (more than its maximum resolution of 11 000 points per
    /// series, too many samples, a timeout), the grid is cut into consecutive chunks of at most
    /// 10 000 points (or halved when it is not longer than that), each chunk cut again while it is too
    /// big, and the chunks' samples concatenated in order, per series, with no sample twice.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when Prometheus is unreachable, times out or answers 5xx/429;
    /// [`PortError::Other`] when it rejects the query or the result is not a matrix. A chunk of a single
    /// point still too big fails the whole call with its error.
    pub async fn query_range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> PortResult<Vec<(Labels, Vec<Sample>)>> {
        let step = step_ms.max(1);
        let (limit, error) = match self.range_once(expr, start_ms, end_ms, step).await {
            Ok(result) => return Ok(result),
            Err(CallError::TooBig { limit, error }) => (limit, error),
            Err(CallError::Port(e)) => return Err(e),
        };
        let points = if end_ms >= start_ms { (end_ms - start_ms) / step + 1 } else { 0 };
        if points <= 1 {
            return Err(error);
        }
        tracing::info!(expr, points, limit = limit.describe(), "query_range too big for one query: split by time");
        self.splits.fetch_add(1, Ordering::Relaxed);
        let mut todo: VecDeque<(i64, i64)> = range_pieces(0, points - 1).into();
        let mut merged: Vec<(Labels, Vec<Sample>)> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        while let Some((first, last)) = todo.pop_front() {
            let from = start_ms + first * step;
            let to = if last == points - 1 { end_ms } else { start_ms + last * step };
            match self.range_once(expr, from, to, step).await {
                Ok(chunk) => {
                    for (labels, samples) in chunk {
                        let i = *index.entry(labels.clone()).or_insert_with(|| {
                            merged.push((labels, Vec::new()));
                            merged.len() - 1
                        });
                        let kept = &mut merged[i].1;
                        for s in samples {
                            // the edge of two chunks, should Prometheus answer it twice
                            if kept.last().is_none_or(|k| s.ts_ms > k.ts_ms) {
                                kept.push(s);
                            }
                        }
                    }
                }
                Err(CallError::TooBig { limit, error }) => {
                    if first == last {
                        return Err(error);
                    }
                    tracing::debug!(
                        expr,
                        points = last - first + 1,
                        limit = limit.describe(),
                        "query_range chunk too big: split again"
                    );
                    self.splits.fetch_add(1, Ordering::Relaxed);
                    for piece in range_pieces(first, last).into_iter().rev() {
                        todo.push_front(piece);
                    }
                }
                Err(CallError::Port(e)) => return Err(e),
            }
        }
        Ok(merged)
    }

    /// One `/api/v1/query_range` call, no split; `step_ms` at least 1.
    async fn range_once(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<(Labels, Vec<Sample>)>, CallError> {
        let params =
            [("query", expr.to_owned()), ("start", secs(start_ms)), ("end", secs(end_ms)), ("step", secs(step_ms))];
        let (data, _) = self.call("query_range", &params, Some((expr, "matrix"))).await?;
        Ok(matrix(expr, data)?)
    }

    /// The series named `name` with samples in `[start_ms, end_ms]` (`/api/v1/series`), sorted,
    /// without duplicates.
    async fn series_named(&self, name: &str, start_ms: i64, end_ms: i64) -> PortResult<Vec<Labels>> {
        let params = [("match[]", name_selector(name)), ("start", secs(start_ms)), ("end", secs(end_ms))];
        let (data, _): (Vec<Labels>, _) = self.call("series", &params, None).await?;
        label_sets(data)
    }

    /// The window statistics of `metric_name` from `parts` consecutive sub-windows of
    /// `window`, one query each, combined exactly: counts add, min and max of the parts, the
    /// mean weighted by the counts, the variance from the parts' sums of squared deviations
    /// ([`PartStats::merge`]). Counted as one split.
    async fn window_stats_by_time(
        &self,
        metric_name: &str,
        window: Window,
        at_ms: i64,
        parts: i64,
    ) -> Result<Vec<(Labels, WindowAggregate)>, CallError> {
        tracing::info!(
            metric_name,
            window = window.label(),
            parts,
            "window statistics too big for one query: split in time"
        );
        self.splits.fetch_add(1, Ordering::Relaxed);
        let span_ms = window.millis() / parts;
        let mut merged: BTreeMap<Labels, PartStats> = BTreeMap::new();
        for part in 0..parts {
            let rows = self.stats_rows(&stats_expr_part(metric_name, span_ms, part * span_ms), at_ms).await?;
            for (labels, agg) in aggregates(metric_name, window, rows) {
                let Some(stats) = PartStats::of(&agg) else { continue };
                merged.entry(labels).and_modify(|m| *m = m.merge(stats)).or_insert(stats);
            }
        }
        Ok(merged.into_iter().map(|(labels, p)| (labels, p.aggregate(window))).collect())
    }

    /// The statistics of `window` from the segments it is made of ([`segment_span`]): one
    /// query per segment, each answered once and read by every window that contains it,
    /// so the three windows of a name read its 12 hours of samples once (1 h + 2 h + 9 h)
    /// instead of 16 hours (1 h + 3 h + 12 h). A window waits for the segments another
    /// window's call is reading and queries the ones nobody asked yet (the ETL asks a
    /// name's three windows at once); the answers are forgotten once every window read them,
    /// or at the next cycle's `at_ms`.
    ///
    /// # Errors
    /// The failure of a segment (`too_big`: the caller queries the window on its own).
    async fn window_stats_by_segments(
        &self,
        metric_name: &str,
        window: Window,
        at_ms: i64,
    ) -> Result<Vec<(Labels, WindowAggregate)>, SegmentFailure> {
        let last = Window::ALL.iter().position(|w| *w == window).unwrap_or(Window::ALL.len() - 1);
        let key = |i: usize| (metric_name.to_owned(), i, at_ms);
        let cells: Vec<Arc<tokio::sync::OnceCell<SegmentAnswer>>> = {
            let mut memo = self.segments.lock().unwrap_or_else(|e| e.into_inner());
            // what an earlier cycle left (a window that failed before reading its segments)
            memo.retain(|(_, _, at), _| *at >= at_ms);
            (0..=last)
                .map(|i| {
                    let slot = memo.entry(key(i)).or_insert_with(|| SegmentSlot {
                        answer: Default::default(),
                        readers_left: Window::ALL.len() - i,
                    });
                    slot.answer.clone()
                })
                .collect()
        };
        let answers = futures::future::join_all(
            cells.iter().enumerate().map(|(i, cell)| cell.get_or_init(move || self.segment(metric_name, i, at_ms))),
        )
        .await;
        let answers: Vec<SegmentAnswer> = answers.into_iter().cloned().collect();
        {
            let mut memo = self.segments.lock().unwrap_or_else(|e| e.into_inner());
            for i in 0..=last {
                if let Some(slot) = memo.get_mut(&key(i)) {
                    slot.readers_left = slot.readers_left.saturating_sub(1);
                    if slot.readers_left == 0 {
                        memo.remove(&key(i));
                    }
                }
            }
        }
        let mut merged: HashMap<Labels, PartStats> = HashMap::new();
        for answer in answers {
            for (labels, stats) in answer?.iter() {
                merged.entry(labels.clone()).and_modify(|m| *m = m.merge(*stats)).or_insert(*stats);
            }
        }
        let mut out: Vec<(Labels, WindowAggregate)> =
            merged.into_iter().map(|(labels, p)| (labels, p.aggregate(window))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// One segment's statistics per series ([`segment_span`]).
    async fn segment(&self, metric_name: &str, i: usize, at_ms: i64) -> SegmentAnswer {
        let (span_ms, offset_ms) = segment_span(i);
        let rows = self
            .stats_rows(&stats_expr_part(metric_name, span_ms, offset_ms), at_ms)
            .await
            .map_err(SegmentFailure::of)?;
        let parts = aggregates(metric_name, Window::ALL[i], rows)
            .into_iter()
            .filter_map(|(labels, agg)| Some((labels, PartStats::of(&agg)?)))
            .collect();
        Ok(Arc::new(parts))
    }

    /// The window statistics of `metric_name` when the query of the whole name was too big (`limit`;
    /// `error` is what that refusal reports): its series listed over the window, queried by
    /// [`PrometheusSource::stats_in_batches`].
    ///
    /// # Errors
    /// `error` when no batch succeeds (nothing listed, or every series too big on its own); the error of
    /// the listing or of a batch that fails for any reason but its size (Prometheus down: the next cycle
    /// retries).
    async fn window_stats_by_series(
        &self,
        metric_name: &str,
        window: Window,
        at_ms: i64,
        limit: Limit,
        error: PortError,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        let series = self.series_named(metric_name, at_ms - window.millis(), at_ms).await?;
        let batches = series.len().div_ceil(MAX_BATCH_SERIES).max(2).min(series.len());
        tracing::info!(
            metric_name,
            window = window.label(),
            limit = limit.describe(),
            series = series.len(),
            batches,
            "window statistics too big for one query: split by series"
        );
        self.splits.fetch_add(1, Ordering::Relaxed);
        match self.stats_in_batches(metric_name, window, at_ms, &series, batches).await? {
            Some(rows) => Ok(rows),
            None => Err(error),
        }
    }

    /// The window statistics of `series` (all named `metric_name`), in `batches` queries of
    /// exact selectors, [`BATCH_CONCURRENCY`] at a time; a batch too big is bisected, down to
    /// one series. The rows of every batch that succeeded are kept; a series too big on its
    /// own is left out this cycle and logged. A selector is exact among `series` only: rows of
    /// other series with more labels may come too.
    ///
    /// `None` when no batch succeeded (no series, or every one too big on its own).
    ///
    /// # Errors
    /// The error of a batch that fails for any reason but its size (Prometheus down: the next
    /// cycle retries).
    async fn stats_in_batches(
        &self,
        metric_name: &str,
        window: Window,
        at_ms: i64,
        series: &[Labels],
        batches: usize,
    ) -> PortResult<Option<Vec<(Labels, WindowAggregate)>>> {
        let label_names: BTreeSet<&str> = series.iter().flat_map(|s| s.iter().map(|(k, _)| k)).collect();
        let selectors: Vec<String> = series.iter().map(|s| exact_selector(s, &label_names)).collect();
        let n = selectors.len();
        // ranges of `selectors`, the next one to query last
        let mut todo: Vec<Range<usize>> = Vec::new();
        if n > 0 {
            let size = n.div_ceil(batches.clamp(1, n));
            todo.extend((0..n).step_by(size).map(|a| a..(a + size).min(n)).rev());
        }
        let mut running = FuturesUnordered::new();
        let mut rows = StatsRows::default();
        let mut answered = false;
        loop {
            while running.len() < BATCH_CONCURRENCY {
                let Some(batch) = todo.pop() else { break };
                let expr = stats_expr(&selectors[batch.clone()], window);
                running.push(async move { (batch, self.stats_rows(&expr, at_ms).await) });
            }
            let Some((batch, result)) = running.next().await else { break };
            match result {
                Ok(batch_rows) => {
                    rows.extend(batch_rows);
                    answered = true;
                }
                Err(CallError::TooBig { limit, .. }) if batch.len() > 1 => {
                    tracing::debug!(
                        metric_name,
                        window = window.label(),
                        limit = limit.describe(),
                        series = batch.len(),
                        "batch of window statistics too big: bisected"
                    );
                    self.splits.fetch_add(1, Ordering::Relaxed);
                    let mid = batch.start + batch.len() / 2;
                    todo.push(mid..batch.end);
                    todo.push(batch.start..mid);
                }
                Err(CallError::TooBig { limit, error }) => {
                    tracing::warn!(
                        metric_name,
                        window = window.label(),
                        series = %series[batch.start],
                        limit = limit.describe(),
                        error = %error,
                        "series too big on its own: left out of the window statistics this cycle"
                    );
                }
                Err(CallError::Port(e)) => return Err(e),
            }
        }
        Ok(answered.then(|| aggregates(metric_name, window, rows)))
    }

    /// `samples` with a NaN sample where the series was stale between two of them (see
    /// [`crate::staleness`]): a `query_range` of the series every `step` (its scrape
    /// interval) over their span shows the steps without a value.
    async fn with_staleness(&self, series: &Labels, samples: Vec<Sample>, step: i64) -> PortResult<Vec<Sample>> {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else { return Ok(samples) };
        let (start, end) = (first.ts_ms, last.ts_ms);
        if end - start < 2 * step {
            return Ok(samples);
        }
        let result = self.query_range(&series.selector(), start, end, step).await?;
        let present: Vec<i64> = result
            .into_iter()
            .find(|(labels, _)| labels == series)
            .map(|(_, points)| points.into_iter().map(|p| p.ts_ms).collect())
            .unwrap_or_default();
        let steps: Vec<i64> = (0..).map(|k| start + k * step).take_while(|t| *t <= end).collect();
        Ok(crate::staleness::mark_stale(samples, &steps, &present))
    }
}

/// History read before the asked window to tell a series' scrape interval (ms).
const STALENESS_CONTEXT_MS: i64 = 5 * 60_000;

fn matrix(expr: &str, data: QueryData<Vec<MatrixItem>>) -> PortResult<Vec<(Labels, Vec<Sample>)>> {
    if data.result_type != "matrix" {
        return Err(PortError::Other(format!("query `{expr}` returned a {}, not a matrix", data.result_type)));
    }
    Ok(data
        .result
        .into_iter()
        .map(|i| (i.metric, i.values.into_iter().map(|(t, v)| Sample::new(to_ms(t), v.0)).collect()))
        .collect())
}

#[async_trait]
impl MetricSource for PrometheusSource {
    async fn series(&self) -> PortResult<SeriesList> {
        let now = slamon_domain::now_ms();
        self.series_since(now - self.config.series_lookback.as_millis() as i64).await
    }

    async fn series_since(&self, start_ms: i64) -> PortResult<SeriesList> {
        let now = slamon_domain::now_ms();
        let params =
            [("match[]", "{__name__=~\".+\"}".to_owned()), ("start", secs(start_ms.min(now))), ("end", secs(now))];
        let (data, partial): (Vec<Labels>, _) = self.call("series", &params, None).await?;
        Ok(SeriesList { series: label_sets(data)?, partial })
    }

    /// The window merged from the segments of the whole name it holds (`{__name__="m"}[…] offset …`
    /// under each aggregation, each segment asked once for the name's three windows: see
    /// `window_stats_by_segments`). When a segment is too big for Prometheus, the window is asked
    /// whole, then in time parts, then split by series (see `window_stats_by_series`): every series
    /// that fits in a query gets its statistics, one too big on its own is left out this cycle.
    async fn window_stats(
        &self,
        metric_name: &str,
        window: Window,
        at_ms: i64,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        match self.window_stats_by_segments(metric_name, window, at_ms).await {
            Ok(rows) => return Ok(rows),
            Err(failure) if !failure.too_big => return Err(failure.error()),
            // a segment too big for Prometheus: the window on its own, split as it needs
            Err(_) => {}
        }
        let expr = stats_expr(&[name_selector(metric_name)], window);
        match self.stats_rows(&expr, at_ms).await {
            Ok(rows) => Ok(aggregates(metric_name, window, rows)),
            Err(CallError::TooBig { limit, error }) => {
                // Prometheus limits the samples one series loads at once: shorter
                // sub-windows combined give the same statistics; else fewer series at once
                for parts in [4, 12] {
                    match self.window_stats_by_time(metric_name, window, at_ms, parts).await {
                        Ok(rows) => return Ok(rows),
                        Err(CallError::TooBig { .. }) => continue,
                        Err(CallError::Port(e)) => return Err(e),
                    }
                }
                self.window_stats_by_series(metric_name, window, at_ms, limit, error).await
            }
            Err(CallError::Port(e)) => Err(e),
        }
    }

    /// A share of a name's series by the values of the label that tells most of them
    /// apart (`instance`, `pod`…): one selector per [`MAX_SET_VALUES`] values,
    /// `{__name__="m",pod=~"a|b|…"}`, an alternation of literals that Prometheus answers
    /// from its index like equality matchers. It may match series of the name beyond
    /// `series` (the caller keeps its own). A set too big for one query is split by
    /// series ([`PrometheusSource::stats_in_batches`]); a name whose series have no label
    /// but their name is asked whole.
    async fn window_stats_of(
        &self,
        metric_name: &str,
        series: &[Labels],
        window: Window,
        at_ms: i64,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let Some((label, values)) = telling_label(series) else {
            return self.window_stats(metric_name, window, at_ms).await;
        };
        // each set's values, and the query of their statistics
        let queries: Vec<(Vec<String>, String)> = values
            .chunks(MAX_SET_VALUES)
            .map(|set| {
                let selector = format!("{{__name__={},{label}=~{}}}", quote(metric_name), quote(&set_regex(set)));
                (set.to_vec(), stats_expr(&[selector], window))
            })
            .collect();
        let mut running = futures::stream::iter(queries)
            .map(|(set, expr)| async move { (set, self.stats_rows(&expr, at_ms).await) })
            .buffer_unordered(BATCH_CONCURRENCY);
        let mut out = Vec::new();
        while let Some((set, result)) = running.next().await {
            match result {
                Ok(rows) => out.extend(aggregates(metric_name, window, rows)),
                Err(CallError::TooBig { limit, error }) => {
                    self.splits.fetch_add(1, Ordering::Relaxed);
                    let wanted: BTreeSet<&str> = set.iter().map(String::as_str).collect();
                    let part: Vec<Labels> =
                        series.iter().filter(|s| wanted.contains(s.get(label).unwrap_or(""))).cloned().collect();
                    tracing::info!(
                        metric_name,
                        window = window.label(),
                        limit = limit.describe(),
                        series = part.len(),
                        "window statistics of a share too big for one query: split by series"
                    );
                    let batches = part.len().div_ceil(MAX_BATCH_SERIES).max(2);
                    match self.stats_in_batches(metric_name, window, at_ms, &part, batches).await? {
                        Some(rows) => out.extend(rows),
                        None => {
                            tracing::warn!(metric_name, error = %error, "a share of the series left out this cycle")
                        }
                    }
                }
                Err(CallError::Port(e)) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn raw_samples(&self, series: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>> {
        // five minutes more than asked: the samples before `after_ms` tell the scrape
        // interval, the step at which staleness is looked for
        let from_ms = after_ms - STALENESS_CONTEXT_MS;
        let span_s = ((at_ms - from_ms).max(1000) + 999) / 1000;
        let expr = format!("{}[{span_s}s]", series.selector());
        let result = self.query_matrix(&expr, at_ms).await?;
        let mut samples: Vec<Sample> = result
            .into_iter()
            .filter(|(l, _)| l == series || l.get(NAME_LABEL).is_none())
            .flat_map(|(_, s)| s)
            .filter(|s| s.ts_ms <= at_ms)
            .collect();
        samples.sort_by_key(|s| s.ts_ms);
        let Some(step) = crate::staleness::presence_step(&samples, 10_000) else {
            samples.retain(|s| s.ts_ms > after_ms);
            return Ok(samples);
        };
        // from the caller's last sample (at `after_ms`) on: a marker right after it counts
        samples.retain(|s| s.ts_ms >= after_ms);
        let mut samples = self.with_staleness(series, samples, step).await?;
        samples.retain(|s| s.ts_ms > after_ms);
        Ok(samples)
    }

    /// `query_range` of the series' selector, split by time when too big (see
    /// [`PrometheusSource::query_range`]).
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

    fn splits(&self) -> u64 {
        PrometheusSource::splits(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::Router;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_share_is_selected_by_the_label_telling_most_series_apart_with_literal_values() {
        let l = |pod: &str, job: &str| -> Labels {
            [("__name__", "m"), ("pod", pod), ("job", job)].into_iter().filter(|(_, v)| !v.is_empty()).collect()
        };
        let series = [l("a.b", "x"), l("(c|d)", "x"), l("", "x")];
        let (label, values) = telling_label(&series).unwrap();
        assert_eq!((label, values.clone()), ("pod", vec![String::new(), "(c|d)".into(), "a.b".into()]));
        assert_eq!(set_regex(&values), r"|\(c\|d\)|a\.b");
        assert_eq!(set_regex(&[r"x\y^$[]{}*+?".to_owned()]), r"x\\y\^\$\[\]\{\}\*\+\?");
        assert!(telling_label(&[Labels::from_iter([("__name__", "m")])]).is_none());
    }

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    fn source(url: String) -> PrometheusSource {
        PrometheusSource::new(SourceConfig {
            credentials: Credentials::None,
            tls: TlsFiles::default(),
            headers: Vec::new(),
            url,
            timeout: Duration::from_millis(500),
            series_lookback: Duration::from_secs(600),
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
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

    /// The form fields of a request to a fake Prometheus.
    type Fields = axum::Form<Vec<(String, String)>>;

    fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    fn too_many_samples() -> (StatusCode, String) {
        let error = "query processing would load too many samples into memory in query execution";
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"status": "error", "errorType": "execution", "error": error}).to_string(),
        )
    }

    /// The five series of `m` a fake Prometheus holds; the last one has a label the others lack.
    fn five_series() -> Vec<Labels> {
        (0..5)
            .map(|i| {
                let mut labels =
                    vec![("__name__", "m".to_owned()), ("job", "a".to_owned()), ("instance", format!("i{i}"))];
                if i == 4 {
                    labels.push(("pod", "p".to_owned()));
                }
                labels.into_iter().collect()
            })
            .collect()
    }

    /// A fake Prometheus holding [`five_series`] whose `--query.max-samples` lets one window-statistics
    /// query cover at most `max_series` of them (the query of the whole name covers all five), and
    /// that refuses every query covering series `i{poisoned}`. Series `iK` has min K, max K+10, avg K+5,
    /// population stddev 2 and 4 samples. Returns its URL and the `match[]`, `start`, `end` of each
    /// `/api/v1/series` call.
    async fn limited_prometheus(max_series: usize, poisoned: Option<usize>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listings = Arc::new(Mutex::new(Vec::new()));
        let seen = listings.clone();
        let router = Router::new()
            .route(
                "/api/v1/series",
                post(move |axum::Form(f): Fields| {
                    let seen = seen.clone();
                    async move {
                        let listing = format!("{} {} {}", field(&f, "match[]"), field(&f, "start"), field(&f, "end"));
                        seen.lock().unwrap().push(listing);
                        json!({"status": "success", "data": five_series()}).to_string()
                    }
                }),
            )
            .route(
                "/api/v1/query",
                post(move |axum::Form(f): Fields| async move {
                    let query = field(&f, "query");
                    let covered: Vec<usize> = if query.contains(r#"{__name__="m"}"#) {
                        (0..5).collect()
                    } else {
                        (0..5).filter(|i| query.contains(&format!("instance=\"i{i}\""))).collect()
                    };
                    if covered.len() > max_series || poisoned.is_some_and(|p| covered.contains(&p)) {
                        return too_many_samples().into_response();
                    }
                    let series = five_series();
                    let mut rows = Vec::new();
                    for i in covered {
                        let mut metric = series[i].clone().into_map();
                        metric.remove(NAME_LABEL);
                        for (agg, v) in [("min", i), ("max", i + 10), ("avg", i + 5), ("stddev", 2), ("count", 4)] {
                            metric.insert(AGG_LABEL.to_owned(), agg.to_owned());
                            rows.push(json!({"metric": metric, "value": [1.5, v.to_string()]}));
                        }
                    }
                    let data = json!({"resultType": "vector", "result": rows});
                    json!({"status": "success", "data": data}).to_string().into_response()
                }),
            );
        (serve(router).await, listings)
    }

    fn assert_stats_of(rows: &[(Labels, WindowAggregate)], instances: &[usize]) {
        let series = five_series();
        let got: Vec<&Labels> = rows.iter().map(|(l, _)| l).collect();
        let want: Vec<&Labels> = instances.iter().map(|i| &series[*i]).collect();
        assert_eq!(got, want);
        for ((_, agg), i) in rows.iter().zip(instances) {
            let i = *i as f64;
            assert_eq!(agg.window, Window::H12);
            assert_eq!((agg.min, agg.max, agg.avg, agg.samples), (Some(i), Some(i + 10.0), Some(i + 5.0), 4));
            // population std 2 over 4 samples is sample std 2 * sqrt(4/3)
            assert!((agg.std_dev.unwrap() - 2.0 * (4.0f64 / 3.0).sqrt()).abs() < 1e-12);
        }
    }

    /// A fake Prometheus whose series `m{job="a"}` has the samples [1, 2, 3, 4] in the last
    /// hour, [10, 20] in the two before and [5] in the nine before those: it answers the
    /// segment queries and the whole 12 h window, and records every query. `failing`:
    /// the segment (by its range text) answered with `status` instead.
    async fn segmented_prometheus(failing: Option<(&'static str, StatusCode)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let queries = Arc::new(Mutex::new(Vec::new()));
        let seen = queries.clone();
        let router = Router::new().route(
            "/api/v1/query",
            post(move |axum::Form(f): Fields| async move {
                let query = field(&f, "query").to_owned();
                seen.lock().unwrap().push(query.clone());
                if let Some((range, status)) = failing.filter(|(range, _)| query.contains(range)) {
                    if status == StatusCode::UNPROCESSABLE_ENTITY {
                        return too_many_samples().into_response();
                    }
                    return (
                        status,
                        json!({"status": "error", "errorType": "unavailable", "error": range}).to_string(),
                    )
                        .into_response();
                }
                let values: Vec<f64> = if query.contains("[3599999ms])") {
                    vec![1.0, 2.0, 3.0, 4.0]
                } else if query.contains("[7199999ms] offset 3600000ms") {
                    vec![10.0, 20.0]
                } else if query.contains("[32399999ms] offset 10800000ms") {
                    vec![5.0]
                } else if query.contains("[12h]") {
                    vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 5.0]
                } else {
                    return (StatusCode::BAD_REQUEST, format!("unexpected query {query}")).into_response();
                };
                let n = values.len() as f64;
                let mean = values.iter().sum::<f64>() / n;
                let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
                let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let rows: Vec<_> = [("min", min), ("max", max), ("avg", mean), ("stddev", std), ("count", n)]
                    .into_iter()
                    .map(|(agg, v)| json!({"metric": {"job": "a", AGG_LABEL: agg}, "value": [1.5, v.to_string()]}))
                    .collect();
                json!({"status": "success", "data": {"resultType": "vector", "result": rows}})
                    .to_string()
                    .into_response()
            }),
        );
        (serve(router).await, queries)
    }

    /// Count, mean and sample standard deviation of `v`.
    fn described(v: &[f64]) -> (u64, f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        (v.len() as u64, mean, (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
    }

    type Stats = PortResult<Vec<(Labels, WindowAggregate)>>;

    /// The 1 h, 3 h and 12 h statistics of `m`, asked at once as the ETL asks them.
    async fn three_windows(prometheus: &PrometheusSource, at: i64) -> (Stats, Stats, Stats) {
        tokio::join!(
            prometheus.window_stats("m", Window::H1, at),
            prometheus.window_stats("m", Window::H3, at),
            prometheus.window_stats("m", Window::H12, at),
        )
    }

    #[tokio::test]
    async fn the_three_windows_of_a_name_read_each_segment_of_it_once() {
        let (url, queries) = segmented_prometheus(None).await;
        let prometheus = source(url);
        let at = 1_700_000_000_000;
        let (h1, h3, h12) = three_windows(&prometheus, at).await;
        let one = |rows: Stats| {
            let rows = rows.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].0, [("__name__", "m"), ("job", "a")].into_iter().collect::<Labels>());
            rows[0].1.clone()
        };
        for (agg, window, values) in [
            (one(h1), Window::H1, &[1.0, 2.0, 3.0, 4.0][..]),
            (one(h3), Window::H3, &[1.0, 2.0, 3.0, 4.0, 10.0, 20.0][..]),
            (one(h12), Window::H12, &[1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 5.0][..]),
        ] {
            let (n, mean, std) = described(values);
            assert_eq!(
                (agg.window, agg.samples, agg.min, agg.max),
                (window, n, Some(1.0), Some(if n > 4 { 20.0 } else { 4.0 }))
            );
            assert!((agg.avg.unwrap() - mean).abs() < 1e-12 && (agg.std_dev.unwrap() - std).abs() < 1e-12, "{agg:?}");
        }
        // one query per segment, 12 hours of samples read, not 16
        let mut asked = queries.lock().unwrap().clone();
        asked.sort();
        assert_eq!(asked.len(), 3, "{asked:#?}");
        assert!(asked.iter().all(|q| !q.contains("[1h]") && !q.contains("[3h]") && !q.contains("[12h]")), "{asked:#?}");
        assert!(prometheus.segments.lock().unwrap().is_empty(), "every answer forgotten once read");
    }

    #[tokio::test]
    async fn a_failed_segment_fails_the_windows_that_contain_it_and_a_too_big_one_is_queried_whole() {
        // Prometheus down for the 2 h segment: the 1 h window has its statistics, the 3 h and
        // 12 h windows fail with a retryable error
        let (url, _) = segmented_prometheus(Some(("offset 3600000ms", StatusCode::SERVICE_UNAVAILABLE))).await;
        let prometheus = source(url);
        let at = 1_700_000_000_000;
        let (h1, h3, h12) = three_windows(&prometheus, at).await;
        assert_eq!(h1.unwrap()[0].1.samples, 4);
        assert!(h3.unwrap_err().is_retryable());
        assert!(h12.unwrap_err().is_retryable());
        // the 9 h segment too big for Prometheus: the 12 h window is asked whole instead
        let (url, queries) = segmented_prometheus(Some(("offset 10800000ms", StatusCode::UNPROCESSABLE_ENTITY))).await;
        let prometheus = source(url);
        let h12 = prometheus.window_stats("m", Window::H12, at).await.unwrap();
        let (n, mean, _) = described(&[1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 5.0]);
        assert_eq!(h12[0].1.samples, n);
        assert!((h12[0].1.avg.unwrap() - mean).abs() < 1e-12);
        assert!(queries.lock().unwrap().iter().any(|q| q.contains("[12h]")));
    }

    #[test]
    fn sub_windows_partition_the_window_and_merge_exactly() {
        assert!(!stats_expr_part("m", 3_600_000, 0).contains("offset"), "PromQL refuses offset 0");
        assert!(stats_expr_part("m", 3_600_000, 7_200_000)
            .contains(r#"min_over_time({__name__="m"}[3599999ms] offset 7200000ms)"#));
        // numpy: x = [1, 2, 3, 4, 10, 20]; mean 6.666…, sum of squared deviations 263.333…
        let part = |v: &[f64]| {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let m2 = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
            PartStats {
                n,
                min: v.iter().copied().fold(f64::INFINITY, f64::min),
                max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                mean,
                m2,
            }
        };
        let merged = part(&[1.0, 2.0, 3.0]).merge(part(&[4.0])).merge(part(&[10.0, 20.0]));
        assert_eq!((merged.n, merged.min, merged.max), (6.0, 1.0, 20.0));
        assert!((merged.mean - 40.0 / 6.0).abs() < 1e-12);
        assert!((merged.m2 - 263.333_333_333_333_3).abs() < 1e-9, "{}", merged.m2);
    }

    #[tokio::test]
    async fn window_stats_too_big_for_one_query_are_split_by_series() {
        let (url, listings) = limited_prometheus(2, None).await;
        let prometheus = source(url);
        let at = 1_700_000_000_000;
        let rows = prometheus.window_stats("m", Window::H12, at).await.unwrap();
        assert_stats_of(&rows, &[0, 1, 2, 3, 4]);
        assert!(prometheus.splits() > 0);
        assert_eq!(
            listings.lock().unwrap().as_slice(),
            [format!(r#"{{__name__="m"}} {} {}"#, secs(at - 12 * 3_600_000), secs(at))],
            "the series of the name over the window, listed once"
        );
    }

    #[tokio::test]
    async fn an_answer_over_the_size_cap_is_never_held_and_the_name_is_split_by_series() {
        // Prometheus answers the whole name, but that answer is over this client's cap
        let (url, _) = limited_prometheus(5, None).await;
        let mut config = source(url.clone()).config;
        config.max_answer_bytes = 1000;
        let capped = PrometheusSource::new(config).unwrap();
        let rows = capped.window_stats("m", Window::H12, 1_700_000_000_000).await.unwrap();
        assert_stats_of(&rows, &[0, 1, 2, 3, 4]);
        assert!(capped.splits() > 0, "split, not read whole");
        // an answer nothing can split says which setting to raise
        let mut config = source(url).config;
        config.max_answer_bytes = 100;
        let tiny = PrometheusSource::new(config).unwrap();
        let err = tiny.series().await.unwrap_err().to_string();
        assert!(err.contains("SLAMON_PROMETHEUS_MAX_ANSWER_BYTES"), "{err}");
    }

    #[tokio::test]
    async fn a_series_too_big_on_its_own_is_left_out_and_the_others_get_their_statistics() {
        let (url, _) = limited_prometheus(2, Some(3)).await;
        let prometheus = source(url);
        let rows = prometheus.window_stats("m", Window::H12, 1_700_000_000_000).await.unwrap();
        assert_stats_of(&rows, &[0, 1, 2, 4]);
        assert!(prometheus.splits() > 0);
    }

    #[tokio::test]
    async fn window_stats_fail_with_the_original_error_when_no_series_fits() {
        let (url, listings) = limited_prometheus(0, None).await;
        let prometheus = source(url);
        let err = prometheus.window_stats("m", Window::H12, 1_700_000_000_000).await.unwrap_err();
        assert!(err.to_string().contains("too many samples"), "{err}");
        assert!(!err.is_retryable());
        assert_eq!(listings.lock().unwrap().len(), 1, "after a split was tried");
        assert!(prometheus.splits() > 0);
    }

    /// A fake `/api/v1/query_range` with Prometheus's maximum resolution (`(end - start) / step` above
    /// 11 000 fails) and a `--query.max-samples` that lets at most 4 000 points through. The series
    /// `m{job="a"}` has the value t at each time t (seconds). Records the `(start, end)` of every
    /// request, in milliseconds.
    async fn range_with_limits(asked: Arc<Mutex<Vec<(i64, i64)>>>, fields: Vec<(String, String)>) -> Response {
        let ms = |k: &str| to_ms(field(&fields, k).parse::<f64>().unwrap());
        let (start, end, step) = (ms("start"), ms("end"), ms("step"));
        asked.lock().unwrap().push((start, end));
        if (end - start) / step > 11_000 {
            let error = "exceeded maximum resolution of 11,000 points per timeseries. \
                         Try decreasing the query resolution (?step=XX)";
            let body = json!({"status": "error", "errorType": "bad_data", "error": error});
            return (StatusCode::BAD_REQUEST, body.to_string()).into_response();
        }
        if (end - start) / step + 1 > 4_000 {
            return too_many_samples().into_response();
        }
        let values: Vec<(f64, String)> =
            (start..=end).step_by(step as usize).map(|t| (t as f64 / 1000.0, (t / 1000).to_string())).collect();
        let result = json!([{"metric": {"__name__": "m", "job": "a"}, "values": values}]);
        json!({"status": "success", "data": {"resultType": "matrix", "result": result}}).to_string().into_response()
    }

    #[tokio::test]
    async fn a_query_range_beyond_the_maximum_resolution_is_split_into_chunks() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let url = serve(Router::new().route(
            "/api/v1/query_range",
            post(move |axum::Form(fields): Fields| range_with_limits(seen.clone(), fields)),
        ))
        .await;
        let prometheus = source(url);
        let series: Labels = [("__name__", "m"), ("job", "a")].into_iter().collect();
        let start = 1_700_000_000_000;
        // 25 000 points one second apart; the end is not on the grid
        let got = prometheus.range(&series, start, start + 24_999_500, 1_000).await.unwrap();
        let want: Vec<i64> = (0..25_000).map(|i| start + i * 1_000).collect();
        assert_eq!(got.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), want, "complete, in order, no duplicates");
        assert!(got.iter().all(|s| s.value == (s.ts_ms / 1000) as f64));
        assert!(prometheus.splits() > 0);
        assert_eq!(asked.lock().unwrap()[0], (start, start + 24_999_500), "the whole range is asked first");
    }

    #[test]
    fn errors_of_a_query_too_big_are_told_apart() {
        let samples = "query processing would load too many samples into memory in query execution";
        assert_eq!(Limit::of(422, "execution", samples), Some(Limit::Samples));
        assert_eq!(Limit::of(503, "timeout", "query timed out in expression evaluation"), Some(Limit::Timeout));
        let resolution =
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution";
        assert_eq!(Limit::of(400, "bad_data", resolution), Some(Limit::Resolution));
        assert_eq!(Limit::of(400, "bad_data", "parse error at char 3"), None);
        assert_eq!(Limit::of(422, "execution", "vector cannot contain metrics with the same labelset"), None);
        assert_eq!(Limit::of(503, "unavailable", "too many samples"), None);
    }

    #[test]
    fn selectors_of_one_series_match_no_series_with_more_labels() {
        let names: BTreeSet<&str> = ["__name__", "job", "pod"].into_iter().collect();
        let a: Labels = [("__name__", "m"), ("job", "a")].into_iter().collect();
        assert_eq!(exact_selector(&a, &names), r#"{__name__="m",job="a",pod=""}"#);
        let bare: Labels = [("__name__", "m")].into_iter().collect();
        assert_eq!(exact_selector(&bare, &names), r#"{__name__="m",job="",pod=""}"#);
        let odd: Labels = [("__name__", "a.b"), ("job", "x")].into_iter().collect();
        assert_eq!(exact_selector(&odd, &names), r#"{__name__="a.b",job="x",pod=""}"#);
    }

    #[test]
    fn range_pieces_are_consecutive_and_cover_the_grid() {
        assert_eq!(range_pieces(0, 24_999), [(0, 9_999), (10_000, 19_999), (20_000, 24_999)]);
        assert_eq!(range_pieces(10, 14), [(10, 12), (13, 14)]);
        assert_eq!(range_pieces(3, 4), [(3, 3), (4, 4)]);
    }
}
