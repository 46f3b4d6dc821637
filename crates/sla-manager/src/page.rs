//! The SLA manager's web page: server-rendered HTML with SVG charts, no script, no
//! external resource (works with JavaScript off and offline). Read-only; the same read
//! rules as the JSON API. Pages:
//!
//! - `/`: the SLA set, each entry's state, description and first forecast violation, and
//!   a chart of its last 12 h (samples, allowed range, violation runs, forecast);
//! - `/sla/{id}`: one SLA: state, violations per window and their runs, future
//!   violations, the forecast and its model, a larger chart (the link alerts carry);
//! - `/ui/metrics`: the metrics browser (filter by name and label, 100 a page);
//! - `/ui/metrics/{id}`: a series' window statistics, metadata and forecast;
//! - `/ui/history`: every version of the SLA set.
//!
//! HTML by `maud` (escaping by construction), charts by `plotters`' SVG backend. Every
//! page is served with a Content-Security-Policy that allows no script and nothing from
//! another origin ([`CSP`]), so a browser runs none even if some were injected.

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use plotters::prelude::*;
use slamon_domain::scorecard::ForecastScoring;
use slamon_domain::semantics::{
    breach_probability, future_violations, status_in_set, violation_runs, violations, Run, SlaState,
};
use slamon_domain::sla::fmt_num;
use slamon_domain::{
    seed_time, Labels, MetricFilter, MetricId, MetricView, PredictionInterval, Sample, SlaEntry, UnixMillis,
};
use slamon_web::{db, ApiError};

use crate::rest::AppState;

/// How far back the charts look.
const CHART_SPAN: Duration = Duration::from_secs(12 * 3600);
/// The span of the SLA page's close-up chart (with the forecast after it).
const RECENT_SPAN: Duration = Duration::from_secs(3600);
/// Series a page of the metrics browser lists.
const PAGE_SIZE: usize = 100;

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.5rem;align-items:baseline}
header a{color:#cfe3ff;text-decoration:none}header strong{font-size:1.2rem}
main{padding:1rem 1.2rem;max-width:1300px;overflow-wrap:break-word}
table{border-collapse:collapse;background:#fff;margin:.5rem 0 1rem;max-width:100%}
td{overflow-wrap:anywhere}svg{max-width:100%;height:auto}
th,td{border:1px solid #d8dce3;padding:.3rem .55rem;text-align:left;vertical-align:top;font-size:.92rem}
th{background:#eef0f4}
.state{font-weight:600;padding:.1rem .45rem;border-radius:.3rem;color:#fff;white-space:nowrap}
.inactive{background:#2e8540}.pending{background:#d97a00}.firing{background:#c62828}.absent{background:#6a1b9a}
.card{background:#fff;border:1px solid #d8dce3;border-radius:.4rem;padding:.6rem .9rem;margin:0 0 1rem}
.labels code{background:#eef0f4;padding:0 .25rem;margin-right:.25rem;border-radius:.2rem}
.legend span{margin-right:1rem;font-size:.85rem}.sw{display:inline-block;width:.9rem;height:.6rem;margin-right:.3rem}
footer{color:#667;font-size:.8rem;padding:1rem 1.2rem}
form input{padding:.25rem}
";

/// The pages' Content-Security-Policy: no script, no plugin, nothing from elsewhere;
/// only their own inline style, and forms posted back here.
pub const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `markup` as an HTML answer with `status` and the pages' security headers.
fn html_response(status: axum::http::StatusCode, markup: Markup) -> Response {
    let headers = [
        (axum::http::header::CONTENT_SECURITY_POLICY, CSP),
        (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (axum::http::header::REFERRER_POLICY, "no-referrer"),
    ];
    (status, headers, Html(markup.into_string())).into_response()
}

/// A whole page around `body`.
fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · slamon" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "slamon" }
                    a href="/" { "SLAs" }
                    a href="/ui/metrics" { "Metrics" }
                    a href="/ui/history" { "SLA set history" }
                }
                main { h1 { (title) } (body) }
                footer {
                    "Rendered at " (UnixMillis::now()) " (UTC). JSON: "
                    a href="/status" { "/status" } ", " a href="/violations" { "/violations" } ", "
                    a href="/future-violations" { "/future-violations" } ", "
                    a href="/metrics/prometheus" { "/metrics/prometheus" } "."
                }
            }
        }
    }
}

/// An error as a page with its status (a missing read model is 504, as in the API).
fn error_page(e: ApiError) -> Response {
    let status = e.status();
    let text = match &e {
        ApiError::BadRequest(m) | ApiError::NotFound(m) => m.clone(),
        _ => e.to_string(),
    };
    html_response(status, layout("Not available", html! { p { (text) } }))
}

fn page(title: &str, body: Markup) -> Response {
    html_response(axum::http::StatusCode::OK, layout(title, body))
}

fn num(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        v if v == f64::INFINITY => "+Inf".into(),
        v if v == f64::NEG_INFINITY => "-Inf".into(),
        v if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) => {
            // four significant digits, trailing zeros dropped: 1e9, 2.575e9
            let text = format!("{v:.3e}");
            let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
            let mantissa =
                if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
            format!("{mantissa}e{exponent}")
        }
        v => fmt_num((v * 1e4).round() / 1e4),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "–".into())
}

fn state_text(s: SlaState) -> &'static str {
    match s {
        SlaState::Inactive => "inactive",
        SlaState::Pending => "pending",
        SlaState::Firing => "firing",
        SlaState::Absent => "absent",
    }
}

/// The labels of a series, `__name__` first, as code chips.
fn labels_markup(labels: &Labels) -> Markup {
    html! {
        span.labels {
            strong { (labels.name()) }
            " "
            @for (k, v) in labels.iter().filter(|(k, _)| *k != slamon_domain::NAME_LABEL) {
                code { (k) "=\"" (v) "\"" }
            }
        }
    }
}

fn range_text(e: &SlaEntry) -> String {
    format!("[{}, {}]", num(e.range.min), num(e.range.max))
}

/// The chart of an SLA: its samples of the last `span`, the allowed range (green band),
/// violation runs (red when they reached `for`, orange otherwise), the forecast (dashed
/// orange) with its 95 % and 80 % prediction intervals (light and lighter orange bands,
/// when `intervals` has one per forecast point). Non-finite samples and gaps longer than
/// `lookback` break the line.
#[allow(clippy::too_many_arguments)] // one chart's inputs; a struct would only rename them
fn chart(
    entry: &SlaEntry,
    samples: &[Sample],
    forecast: &[Sample],
    intervals: &[PredictionInterval],
    now: UnixMillis,
    lookback: Duration,
    span: Duration,
    size: (u32, u32),
) -> String {
    let from = (now - span).millis();
    let shown: Vec<Sample> = samples.iter().copied().filter(|s| s.ts_ms >= from).collect();
    let last_ts = shown.last().map(|s| s.ts_ms).unwrap_or(i64::MIN);
    let ahead: Vec<Sample> = forecast.iter().copied().filter(|s| s.ts_ms > last_ts).collect();
    let bands: Vec<(i64, PredictionInterval)> = if intervals.len() == forecast.len() {
        let finite =
            |i: &PredictionInterval| [i.lower_95, i.upper_95, i.lower_80, i.upper_80].iter().all(|v| v.is_finite());
        forecast
            .iter()
            .zip(intervals)
            .filter(|(s, i)| s.ts_ms > last_ts && finite(i))
            .map(|(s, i)| (s.ts_ms, *i))
            .collect()
    } else {
        Vec::new()
    };
    let to = ahead.last().map(|s| s.ts_ms).unwrap_or(now.millis()).max(now.millis()).max(from + 60_000);
    let band_bounds = bands.iter().flat_map(|(_, i)| [i.lower_95, i.upper_95]);
    let finite = shown.iter().chain(&ahead).map(|s| s.value).chain(band_bounds).filter(|v| v.is_finite());
    let (mut lo, mut hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    // the range's bounds when they are near the data (an SLA of `max: 1e300` would
    // flatten everything)
    let spread = (hi - lo).max(hi.abs() * 0.1).max(1e-9);
    for bound in [entry.range.min, entry.range.max] {
        if bound.is_finite() && bound > lo - spread && bound < hi + spread {
            lo = lo.min(bound);
            hi = hi.max(bound);
        }
    }
    let pad = ((hi - lo) * 0.08).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(from..to, lo..hi)?;
        c.configure_mesh()
            .x_labels(7)
            .y_labels(6)
            .x_label_formatter(&|ms| {
                chrono::DateTime::from_timestamp_millis(*ms).map(|t| t.format("%H:%M").to_string()).unwrap_or_default()
            })
            .y_label_formatter(&|v| num(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let band = (entry.range.min.max(lo), entry.range.max.min(hi));
        if band.0 < band.1 {
            c.draw_series(std::iter::once(Rectangle::new([(from, band.0), (to, band.1)], GREEN.mix(0.10).filled())))?;
        }
        for bound in [entry.range.min, entry.range.max] {
            if bound > lo && bound < hi {
                c.draw_series(LineSeries::new([(from, bound), (to, bound)], GREEN.mix(0.8).stroke_width(1)))?;
            }
        }
        let runs: Vec<Run> = violation_runs(entry, &shown, lookback);
        c.draw_series(runs.iter().map(|r| {
            let colour = if r.reaches(entry.for_minutes) { RED.mix(0.22) } else { RGBColor(230, 140, 0).mix(0.22) };
            Rectangle::new(
                [(r.start.millis(), lo), (r.end.millis().max(r.start.millis() + 30_000), hi)],
                colour.filled(),
            )
        }))?;
        let gap = lookback.as_millis() as i64;
        let mut segment: Vec<(i64, f64)> = Vec::new();
        let blue = RGBColor(25, 90, 190);
        for s in &shown {
            let breaks = !s.value.is_finite() || segment.last().is_some_and(|(t, _)| s.ts_ms - t > gap);
            if breaks && !segment.is_empty() {
                c.draw_series(LineSeries::new(std::mem::take(&mut segment), blue.stroke_width(2)))?;
            }
            if s.value.is_finite() {
                segment.push((s.ts_ms, s.value));
            }
        }
        let joint = segment.last().copied();
        if !segment.is_empty() {
            c.draw_series(LineSeries::new(segment, blue.stroke_width(2)))?;
        }
        let predicted: Vec<(i64, f64)> =
            joint.into_iter().chain(ahead.iter().filter(|s| s.value.is_finite()).map(|s| (s.ts_ms, s.value))).collect();
        let orange = RGBColor(230, 120, 0);
        if bands.len() > 1 {
            for (level, alpha) in [(95, 0.10), (80, 0.18)] {
                let bound = |(t, i): &(i64, PredictionInterval), upper: bool| match (level, upper) {
                    (95, true) => (*t, i.upper_95),
                    (95, false) => (*t, i.lower_95),
                    (_, true) => (*t, i.upper_80),
                    (_, false) => (*t, i.lower_80),
                };
                // along the upper bound, back along the lower one
                let outline: Vec<(i64, f64)> =
                    bands.iter().map(|b| bound(b, true)).chain(bands.iter().rev().map(|b| bound(b, false))).collect();
                c.draw_series(std::iter::once(Polygon::new(outline, orange.mix(alpha).filled())))?;
            }
        }
        if predicted.len() > 1 {
            c.draw_series(DashedLineSeries::new(predicted, 6, 4, orange.stroke_width(2)))?;
        }
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => svg.replacen(
            "<svg ",
            &format!(
                "<svg role=\"img\" aria-label=\"{} over the last {}\" ",
                entry.labels.name(),
                humantime::format_duration(span)
            ),
            1,
        ),
        Err(e) => format!("<p>chart not available: {e}</p>"),
    }
}

fn legend() -> Markup {
    html! {
        div.legend {
            span { i.sw style="background:#195abe" {} "samples" }
            span { i.sw style="background:#e67800" {} "forecast" }
            span { i.sw style="background:rgba(230,120,0,.25)" {} "80 % and 95 % prediction intervals" }
            span { i.sw style="background:rgba(0,255,0,.25)" {} "allowed range" }
            span { i.sw style="background:rgba(255,0,0,.3)" {} "violation (reached for)" }
            span { i.sw style="background:rgba(230,140,0,.3)" {} "violation (shorter than for)" }
        }
    }
}

/// An SLA of the current set with what its pages show.
struct Entry {
    sla: SlaEntry,
    /// When it entered the set.
    entered: UnixMillis,
    samples: Vec<Sample>,
    /// Its forecast's points and their intervals (empty without a forecast).
    forecast: Vec<Sample>,
    intervals: Vec<PredictionInterval>,
    scoring: ForecastScoring,
    /// Its series' read model.
    metric: Option<MetricView>,
}

/// The current set's entries with their samples, forecasts and scorecards; `None` without a set.
async fn entries(s: &AppState) -> Result<Option<Vec<Entry>>, ApiError> {
    let set = match crate::rest::set_with_views(s).await {
        Ok(set) => set,
        Err(ApiError::BadRequest(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(set.len());
    for (sla, entered, view) in set {
        let metric = db(s.db_timeout, s.store.metric(&sla.id())).await?;
        let (forecast, intervals) = metric
            .as_ref()
            .and_then(|m| m.prediction.as_ref())
            .map(|p| (p.points.clone(), p.intervals.clone()))
            .unwrap_or_default();
        let (samples, scoring) = view.map(|v| (v.samples, v.scoring)).unwrap_or_default();
        out.push(Entry { sla, entered, samples, forecast, intervals, scoring, metric });
    }
    Ok(Some(out))
}

#[utoipa::path(
    get,
    path = "/",
    operation_id = "pageSlas",
    tag = "page",
    responses(
        (status = 200, description = "The SLA set: each entry's state, description, first forecast violation and a chart of its last 12 h (or how to define a set)", body = String, content_type = "text/html"),
        (status = 504, description = "The read models did not answer in time (an HTML page saying so)", body = String, content_type = "text/html"),
    ),
)]
pub(crate) async fn overview(State(s): State<AppState>) -> Response {
    let now = UnixMillis::now();
    let set = match entries(&s).await {
        Ok(set) => set,
        Err(e) => return error_page(e),
    };
    let Some(set) = set else {
        return page(
            "SLAs",
            html! {
                p { "No SLA set is defined yet. Define one with " code { "PUT /slaset" } " (see the README), then its SLAs show here." }
                p { a href="/ui/metrics" { "Browse the metrics" } " to pick the series." }
            },
        );
    };
    let reports: Vec<_> =
        set.iter().map(|x| status_in_set(&x.sla, &x.samples, x.entered, now, s.lookback, s.absent_after)).collect();
    let outlooks: Vec<String> = set.iter().map(|x| outlook(x, s.lookback)).collect();
    page(
        "SLAs",
        html! {
            table {
                tr { th { "SLA" } th { "allowed range" } th { "for" } th { "state" } th { "description" } th { "forecast" } }
                @for ((e, st), outlook) in set.iter().map(|x| &x.sla).zip(&reports).zip(&outlooks) {
                    tr {
                        td { a href={ "/sla/" (e.id()) } { (labels_markup(&e.labels)) } }
                        td { (range_text(e)) }
                        td { (e.for_minutes) " min" }
                        td { span class={ "state " (state_text(st.state)) } { (state_text(st.state)) } }
                        td { (st.description) }
                        td { (outlook) }
                    }
                }
            }
            (legend())
            @for (x, st) in set.iter().zip(&reports) {
                section.card {
                    h2 {
                        a href={ "/sla/" (x.sla.id()) } { (labels_markup(&x.sla.labels)) } " "
                        span class={ "state " (state_text(st.state)) } { (state_text(st.state)) }
                    }
                    (PreEscaped(chart(&x.sla, &x.samples, &x.forecast, &x.intervals, now, s.lookback, CHART_SPAN, (1100, 260))))
                }
            }
        },
    )
}

#[utoipa::path(
    get,
    path = "/sla/{id}",
    operation_id = "pageSla",
    tag = "page",
    params(("id" = String, Path, description = "The metric id of the series")),
    responses(
        (status = 200, description = "One SLA: state, violations, forecast, charts", body = String, content_type = "text/html"),
        (status = 404, description = "No SLA of the current set has this id (an HTML page saying so)", body = String, content_type = "text/html"),
        (status = 504, description = "The read models did not answer in time (an HTML page saying so)", body = String, content_type = "text/html"),
    ),
)]
pub(crate) async fn sla_page(State(s): State<AppState>, id: Result<Path<String>, PathRejection>) -> Response {
    // an id that is not even UTF-8 is no SLA's
    let Ok(Path(id)) = id else {
        return error_page(ApiError::NotFound("No SLA with this id in the current SLA set".into()));
    };
    let id = id.to_ascii_lowercase();
    let now = UnixMillis::now();
    let set = match entries(&s).await {
        Ok(set) => set.unwrap_or_default(),
        Err(e) => return error_page(e),
    };
    let Some(Entry { sla: e, entered, samples, forecast, intervals, scoring, metric }) =
        set.into_iter().find(|x| x.sla.id().to_string() == id)
    else {
        return error_page(ApiError::NotFound(format!("No SLA with id {id} in the current SLA set")));
    };
    let st = status_in_set(&e, &samples, entered, now, s.lookback, s.absent_after);
    let report = violations(&e, &samples, now, s.lookback);
    let future = future_violations(&e, &samples, &forecast, s.lookback);
    let probability = breach_probability(&e, &samples, &forecast, &intervals);
    let prediction = metric.as_ref().and_then(|m| m.prediction.as_ref());
    let breaches = slamon_domain::scorecard::breach_scores(&scoring.recent, &e.range);
    page(
        &format!("SLA of {}", e.labels.name()),
        html! {
            p { (labels_markup(&e.labels)) }
            p {
                span class={ "state " (state_text(st.state)) } { (state_text(st.state)) } " "
                (st.description)
            }
            p { "Allowed range " (range_text(&e)) ", for " (e.for_minutes) " min. "
                a href={ "/ui/metrics/" (e.id()) } { "Window statistics and metadata of the series" } }
            (legend())
            h2 { "Last 12 hours" }
            (PreEscaped(chart(&e, &samples, &forecast, &intervals, now, s.lookback, CHART_SPAN, (1200, 320))))
            h2 { "Last hour and the forecast" }
            (PreEscaped(chart(&e, &samples, &forecast, &intervals, now, s.lookback, RECENT_SPAN, (1200, 320))))
            h2 { "Violations" }
            table {
                tr { th { "window" } th { "violations" } th { "minutes in violation" } }
                @for (w, v) in &report.windows {
                    tr { td { (w.label()) } td { (v.n) } td { (num(v.time)) } }
                }
            }
            @if report.list.is_empty() {
                p { "No violation reached " (e.for_minutes) " min in the last 12 h." }
            } @else {
                table {
                    tr { th { "start" } th { "end" } th { "minutes" } th { "avg" } th { "min" } th { "max" } }
                    @for r in &report.list {
                        tr { td { (seed_time(r.start.millis())) } td { (seed_time(r.end.millis())) }
                             td { (num(r.duration_minutes())) } td { (num(r.avg)) } td { (num(r.min)) } td { (num(r.max)) } }
                    }
                }
            }
            h2 { "Forecast" }
            @match prediction {
                None => p { "Prediction not available yet." },
                Some(p) => {
                    p { "Model " strong { (p.model) } " (hold-out RMSE " (num(p.rmse)) "), computed at "
                        (seed_time(p.computed_at_ms)) "." }
                    @if let Some(pr) = probability {
                        p { "Probability that the series leaves the allowed range within the forecast: "
                            strong { (percent(pr)) } "." }
                    }
                    @if future.is_empty() {
                        p { "No violation is forecast." }
                    } @else {
                        table {
                            tr { th { "forecast violation" } th { "start" } th { "end" } th { "minutes" } th { "probability" } }
                            @for v in &future {
                                tr { td { (v.kind.description()) } td { (seed_time(v.run.start.millis())) }
                                     td { (seed_time(v.run.end.millis())) } td { (num(v.run.duration_minutes())) }
                                     td { (probability.map(percent).unwrap_or_else(|| "unknown".into())) } }
                            }
                        }
                    }
                }
            }
            h2 { "Forecast scorecard" }
            @if scoring.models.is_empty() {
                p { "No forecast has been scored yet: each is, once its 10 minutes have passed." }
            } @else {
                table {
                    tr { th { "model" } th { "forecasts" } th { "points" } th { "RMSE" } th { "inside 80 %" } th { "inside 95 %" } }
                    @for m in &scoring.models {
                        tr { td { (m.model) } td { (m.forecasts) } td { (m.points) }
                             td { (m.rmse().map(num).unwrap_or_default()) }
                             td { (m.coverage().map(|c| percent(c.0)).unwrap_or_default()) }
                             td { (m.coverage().map(|c| percent(c.1)).unwrap_or_default()) } }
                    }
                }
                p { "Breaches of " (range_text(&e)) " in the last " (breaches.forecasts) " scored forecasts: "
                    (breaches.ongoing) " made while already out of the range, "
                    (breaches.hits) " predicted and observed, " (breaches.false_alarms) " false alarms, "
                    (breaches.misses) " missed, " (breaches.quiet) " quiet"
                    @if let Some(lead) = breaches.mean_lead_minutes { "; predicted " (num(lead)) " min ahead on average" }
                    "." }
            }
        },
    )
}

#[utoipa::path(
    get,
    path = "/ui/metrics",
    operation_id = "pageMetrics",
    tag = "page",
    params(
        ("name" = Option<String>, Query, description = "Only the series of this metric (`__name__`)"),
        ("match" = Option<String>, Query, pattern = "^$|^[^=]+=",
            description = "Only the series with this label value, `<label>=<value>`"),
        ("offset" = Option<u64>, Query, maximum = 9223372036854775807_u64, description = "Series to skip (pages of 100)"),
    ),
    responses(
        (status = 200, description = "The metrics browser: 100 series a page with their 1 h statistics", body = String, content_type = "text/html"),
        (status = 400, description = "A `match` that is not `<label>=<value>`, or an offset that is not an integer from 0 to 2^63 − 1 (an HTML page saying so)", body = String, content_type = "text/html"),
        (status = 504, description = "The read models did not answer in time (an HTML page saying so)", body = String, content_type = "text/html"),
    ),
)]
pub(crate) async fn metrics_page(State(s): State<AppState>, Query(params): Query<Vec<(String, String)>>) -> Response {
    // as the query API reads them: the last `name`, every `match`; an empty field (as the
    // form sends it) is no filter
    let given = |k: &'static str| params.iter().filter(move |(n, v)| n == k && !v.is_empty()).map(|(_, v)| v.clone());
    let name = given("name").next_back();
    let matchers: Vec<String> = given("match").collect();
    let offset: usize = match params.iter().find(|(n, _)| n == "offset").map(|(_, v)| v) {
        None => 0,
        // MongoDB's skip is a signed 64-bit number
        Some(o) => match o.parse::<i64>().ok().filter(|n| *n >= 0).and_then(|n| usize::try_from(n).ok()) {
            Some(n) => n,
            None => {
                return error_page(ApiError::BadRequest(format!(
                    "Invalid offset `{o}`: expected an integer from 0 to 9223372036854775807"
                )))
            }
        },
    };
    let mut filter = MetricFilter { name: name.clone(), offset, limit: Some(PAGE_SIZE + 1), ..MetricFilter::default() };
    for m in &matchers {
        match m.split_once('=') {
            Some((l, v)) if !l.is_empty() => filter.matchers.push((l.to_owned(), v.to_owned())),
            _ => return error_page(ApiError::BadRequest(format!("Invalid match `{m}`: expected <label>=<value>"))),
        }
    }
    let mut listed = match db(s.db_timeout, s.store.metrics(&filter)).await {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let more = listed.len() > PAGE_SIZE;
    listed.truncate(PAGE_SIZE);
    let link = |offset: usize| {
        let mut pairs = vec![("name", name.as_deref())];
        pairs.extend(matchers.iter().map(|m| ("match", Some(m.as_str()))));
        let mut q = url_query(&pairs);
        q.push_str(&format!("{}offset={offset}", if q.is_empty() { "?" } else { "&" }));
        format!("/ui/metrics{q}")
    };
    page(
        "Metrics",
        html! {
            form method="get" action="/ui/metrics" {
                label { "name " input name="name" value=(name.clone().unwrap_or_default()) placeholder="node_load1"; }
                " "
                label { "label " input name="match" value=(matchers.first().cloned().unwrap_or_default()) placeholder="job=node"; }
                " " button type="submit" { "Filter" }
            }
            @if listed.is_empty() {
                p { @if offset > 0 { "No series past " (offset) "." } @else { "No series match." } }
            } @else {
                p { "Series " (offset + 1) "–" (offset + listed.len()) }
            }
            table {
                tr { th { "series" } th { "1h avg" } th { "1h min" } th { "1h max" } th { "samples (1h)" } }
                @for m in &listed {
                    @let w = m.values.as_ref().and_then(|v| v.windows.first());
                    tr {
                        td { a href={ "/ui/metrics/" (m.id) } { (labels_markup(&m.labels)) } }
                        td { (opt(w.and_then(|w| w.avg))) } td { (opt(w.and_then(|w| w.min))) }
                        td { (opt(w.and_then(|w| w.max))) } td { (w.map(|w| w.samples).unwrap_or(0)) }
                    }
                }
            }
            p {
                @if offset > 0 { a href=(link(offset.saturating_sub(PAGE_SIZE))) { "← previous" } " " }
                @if more { a href=(link(offset + PAGE_SIZE)) { "next →" } }
            }
        },
    )
}

/// `?k=v&…` of the given parameters, percent-encoded; empty when none is set.
fn url_query(params: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| {
            v.map(|v| format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[utoipa::path(
    get,
    path = "/ui/metrics/{id}",
    operation_id = "pageMetric",
    tag = "page",
    params(("id" = String, Path, description = "The metric id of the series")),
    responses(
        (status = 200, description = "A series: window statistics, metadata and forecast", body = String, content_type = "text/html"),
        (status = 404, description = "No series has this id (an HTML page saying so)", body = String, content_type = "text/html"),
        (status = 504, description = "The read models did not answer in time (an HTML page saying so)", body = String, content_type = "text/html"),
    ),
)]
pub(crate) async fn metric_page(State(s): State<AppState>, id: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else {
        return error_page(ApiError::NotFound("No series with this id".into()));
    };
    let missing = || ApiError::NotFound(format!("No series with id {id}"));
    let Ok(metric_id) = id.parse::<MetricId>() else {
        return error_page(missing());
    };
    let m = match db(s.db_timeout, s.store.metric(&metric_id)).await {
        Ok(Some(m)) => m,
        Ok(None) => return error_page(missing()),
        Err(e) => return error_page(e),
    };
    page(
        &format!("Series {}", m.labels.name()),
        html! {
            p { (labels_markup(&m.labels)) @if m.removed { " — " strong { "removed" } " (no longer reported)" } }
            h2 { "Window statistics" }
            @match &m.values {
                None => p { "Not computed yet." },
                Some(v) => {
                    table {
                        tr { th { "window" } th { "avg" } th { "min" } th { "max" } th { "std dev" } th { "samples" } }
                        @for w in &v.windows {
                            tr { td { (w.window.label()) } td { (opt(w.avg)) } td { (opt(w.min)) } td { (opt(w.max)) }
                                 td { (opt(w.std_dev)) } td { (w.samples) } }
                        }
                    }
                    p { "Computed at " (seed_time(v.computed_at_ms)) "." }
                }
            }
            h2 { "Metadata" }
            @match &m.metadata {
                None => p { "Not computed yet (hourly)." },
                Some(md) => {
                    @if md.constant { p { "The series is constant." } }
                    @if let Some(st) = &md.stationarity {
                        p { "Stationarity (ADF): " strong { @if st.stationary { "stationary" } @else { "not stationary" } }
                            ", statistic " (num(st.adf_statistic)) ", p-value " (num(st.p_value)) ", lag " (st.used_lag) "." }
                    }
                    @if let Some(se) = &md.seasonality {
                        p { "Seasonality (" (se.method) "): "
                            @for (kind, fit) in [("additive", &se.add), ("multiplicative", &se.mul)] {
                                @if let Some(f) = fit { (kind) " period " (f.period) " (" (num(f.period_seconds)) " s), error " (num(f.error)) "; " }
                            }
                        }
                    }
                    @if !md.autocorrelation.is_empty() {
                        table {
                            tr { th { "lag" } @for (lag, _) in md.autocorrelation.iter().take(20) { th { (lag) } } }
                            tr { th { "ACF" } @for (_, v) in md.autocorrelation.iter().take(20) { td { (num(*v)) } } }
                        }
                    }
                    p { "Computed at " (seed_time(md.computed_at_ms)) "." }
                }
            }
            h2 { "Forecast" }
            @match &m.prediction {
                None => p { "None: the series is not an SLA metric, or has too little history." },
                Some(p) => {
                    p { "Model " strong { (p.model) } ", hold-out RMSE " (num(p.rmse)) ", computed at " (seed_time(p.computed_at_ms)) "." }
                    table {
                        tr { th { "time" } @for pt in &p.points { th { (seed_time(pt.ts_ms).get(11..16).unwrap_or_default()) } } }
                        tr { th { "value" } @for pt in &p.points { td { (num(pt.value)) } } }
                        @if p.intervals.len() == p.points.len() && !p.intervals.is_empty() {
                            tr { th { "80 % interval" } @for i in &p.intervals { td { (num(i.lower_80)) " – " (num(i.upper_80)) } } }
                            tr { th { "95 % interval" } @for i in &p.intervals { td { (num(i.lower_95)) " – " (num(i.upper_95)) } } }
                        }
                    }
                }
            }
        },
    )
}

#[utoipa::path(
    get,
    path = "/ui/history",
    operation_id = "pageHistory",
    tag = "page",
    responses(
        (status = 200, description = "Every version of the SLA set, newest first", body = String, content_type = "text/html"),
        (status = 504, description = "The read models did not answer in time (an HTML page saying so)", body = String, content_type = "text/html"),
    ),
)]
pub(crate) async fn history_page(State(s): State<AppState>) -> Response {
    let mut versions = match db(s.db_timeout, s.store.sla_set_history()).await {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    page(
        "SLA set history",
        html! {
            @if versions.is_empty() { p { "No SLA set has been defined." } }
            @for v in &versions {
                section.card {
                    h2 { "Version " (v.version) }
                    p { "Defined at " (seed_time(v.defined_at_ms)) " (UTC)." }
                    table {
                        tr { th { "SLA" } th { "allowed range" } th { "for" } }
                        @for e in &v.entries {
                            tr { td { (labels_markup(&e.labels)) } td { (range_text(e)) } td { (e.for_minutes) " min" } }
                        }
                    }
                }
            }
        },
    )
}

/// What the forecast says of an SLA, for the overview: its first forecast violation, as
/// `/future-violations` describes it, with when it starts and its probability of breach
/// when the forecast has intervals (`Will fire from 2026-12-02 02:15:00, 99.2 %`), else
/// `No violation forecast`, or `No forecast yet`.
fn outlook(x: &Entry, lookback: std::time::Duration) -> String {
    if x.forecast.is_empty() {
        return "No forecast yet".into();
    }
    let Some(first) = future_violations(&x.sla, &x.samples, &x.forecast, lookback).into_iter().next() else {
        return "No violation forecast".into();
    };
    let probability = breach_probability(&x.sla, &x.samples, &x.forecast, &x.intervals)
        .map(|p| format!(", {}", percent(p)))
        .unwrap_or_default();
    format!("{} from {}{probability}", first.kind.description(), seed_time(first.run.start.millis()))
}

/// A probability as a percentage with one decimal, e.g. `97.3 %`.
fn percent(p: f64) -> String {
    format!("{:.1} %", 100.0 * p)
}
