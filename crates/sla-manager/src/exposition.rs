//! The SLA state in the Prometheus text exposition format, `GET /metrics/prometheus` on
//! the SLA manager (the JSON `GET /metrics` of 5000 and 5001 keeps its path), for the
//! internal Prometheus to scrape: the same answers as `/status`, `/violations` and
//! `/future-violations`, evaluated at the scrape.
//!
//! Every sample carries the series' labels (its `__name__` as `sla_metric`, and the
//! metric id as `sla_id`); a series label that collides with one of ours is renamed
//! `exported_<name>`, as Prometheus does with `honor_labels: false`. Families (all
//! gauges, base units):
//! - `slamon_sla_state{state}`: 1 for the current state, 0 for the others, like
//!   Prometheus's own `ALERTS` series (`state` is inactive, pending, firing or absent);
//! - `slamon_sla_violation_seconds{window}` and `slamon_sla_violations{window}`: time in
//!   violation and runs that reached `for`, over 1h, 3h and 12h;
//! - `slamon_sla_last_value`, `slamon_sla_range_min`, `slamon_sla_range_max`,
//!   `slamon_sla_for_seconds`;
//! - `slamon_sla_next_violation_seconds{description}`: seconds from now to the start of
//!   the next predicted violation, only when one is predicted;
//! - `slamon_sla_forecast_value{horizon_seconds}`: the latest forecast, one sample per
//!   point, `horizon_seconds` after the minute it was computed in.
//!
//! Encoded by the `prometheus` crate's text encoder (escaping included).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use slamon_domain::semantics::{breach_probability, future_violations, status_in_set, violations, SlaState};
use slamon_domain::{SlaEntry, UnixMillis};
use slamon_web::{db, ApiError, ApiResult};

use crate::rest::{set_with_samples, AppState};

/// The labels slamon adds to samples and alerts (the same labels name alerts).
const OURS: [&str; 7] = ["sla_metric", "sla_id", "state", "window", "description", "horizon_seconds", "alertname"];

/// The states `slamon_sla_state` has a sample for, as `state` values.
const STATES: [(SlaState, &str); 4] = [
    (SlaState::Inactive, "inactive"),
    (SlaState::Pending, "pending"),
    (SlaState::Firing, "firing"),
    (SlaState::Absent, "absent"),
];

fn pair(name: &str, value: &str) -> LabelPair {
    let mut p = LabelPair::default();
    p.set_name(name.to_owned());
    p.set_value(value.to_owned());
    p
}

/// The labels of an entry's samples and alerts: its series' labels (`__name__` as
/// `sla_metric`, those that collide with ours renamed `exported_<name>`, prefixed again
/// while that is taken too, as a Prometheus scrape renames them) and `sla_id`.
pub(crate) fn entry_labels(entry: &SlaEntry) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    for (name, value) in entry.labels.iter() {
        if name == slamon_domain::NAME_LABEL {
            labels.push(("sla_metric".to_owned(), value.to_owned()));
        } else if OURS.contains(&name) {
            let mut renamed = format!("exported_{name}");
            while entry.labels.get(&renamed).is_some() || OURS.contains(&renamed.as_str()) {
                renamed.insert_str(0, "exported_");
            }
            labels.push((renamed, value.to_owned()));
        } else {
            labels.push((name.to_owned(), value.to_owned()));
        }
    }
    labels.push(("sla_id".to_owned(), entry.id().to_string()));
    labels
}

/// A family of gauges under construction.
struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str) -> Self {
        let mut f = MetricFamily::default();
        f.set_name(name.to_owned());
        f.set_help(help.to_owned());
        f.set_field_type(MetricType::GAUGE);
        Family(f)
    }

    fn add(&mut self, labels: &[LabelPair], extra: &[(&str, &str)], value: f64) {
        let mut all = labels.to_vec();
        all.extend(extra.iter().map(|(n, v)| pair(n, v)));
        all.sort_by(|a, b| a.name().cmp(b.name()));
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        let mut m = Metric::default();
        m.set_label(all);
        m.set_gauge(gauge);
        self.0.mut_metric().push(m);
    }
}

/// `GET /metrics/prometheus`: the SLA state in the text exposition format (empty when
/// no SLA set is defined).
#[utoipa::path(
    get,
    path = "/metrics/prometheus",
    operation_id = "getSlaMetrics",
    tag = "sla",
    responses(
        (status = 200, description = "The SLA state in Prometheus's text exposition format (version 0.0.4): \
            slamon_sla_state{state}, slamon_sla_violation_seconds{window}, slamon_sla_violations{window}, \
            slamon_sla_last_value, slamon_sla_range_min, slamon_sla_range_max, slamon_sla_for_seconds, \
            slamon_sla_next_violation_seconds{description}, slamon_sla_forecast_value{horizon_seconds}, each with \
            the series' labels (its `__name__` as `sla_metric`) and `sla_id`; empty when no SLA set is defined",
            body = String, content_type = "text/plain",
            example = "# HELP slamon_sla_range_max the upper bound of the allowed range\n# TYPE slamon_sla_range_max gauge\nslamon_sla_range_max{instance=\"demo:9100\",job=\"demo\",sensor=\"package\",sla_id=\"39a4aba385c3e67aaa9964aa\",sla_metric=\"cpuTemp\"} 75\n"),
        (status = 504, response = slamon_web::openapi::DbUnavailable),
    ),
)]
pub async fn prometheus_metrics(State(s): State<AppState>) -> ApiResult<Response> {
    let now = UnixMillis::now();
    let entries = match set_with_samples(&s).await {
        Ok(e) => e,
        // no set yet: nothing to expose, which is not an error for a scrape
        Err(ApiError::BadRequest(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut state = Family::new("slamon_sla_state", "1 for the SLA's current state, 0 for the others (as ALERTS)");
    let mut violation_seconds =
        Family::new("slamon_sla_violation_seconds", "seconds in violation over the window (runs that reached for)");
    let mut violation_count =
        Family::new("slamon_sla_violations", "violations (runs that reached for) ended in the window");
    let mut last = Family::new("slamon_sla_last_value", "the latest sample of the SLA's series");
    let mut min = Family::new("slamon_sla_range_min", "the lower bound of the allowed range");
    let mut max = Family::new("slamon_sla_range_max", "the upper bound of the allowed range");
    let mut for_seconds = Family::new("slamon_sla_for_seconds", "how long a violation lasts before the SLA fires");
    let mut next = Family::new(
        "slamon_sla_next_violation_seconds",
        "seconds from now to the start of the next predicted violation (only when one is predicted)",
    );
    let mut forecast = Family::new(
        "slamon_sla_forecast_value",
        "the latest forecast of the SLA's series, horizon_seconds after the minute it was computed in",
    );
    let mut breach = Family::new(
        "slamon_sla_breach_probability",
        "probability (0-1) that the SLA's series leaves its range within the forecast horizon (only when the forecast has prediction intervals)",
    );
    for (entry, entered, samples) in &entries {
        let labels: Vec<LabelPair> = entry_labels(entry).iter().map(|(n, v)| pair(n, v)).collect();
        let st = status_in_set(entry, samples, *entered, now, s.lookback, s.absent_after);
        for (kind, name) in STATES {
            state.add(&labels, &[("state", name)], if st.state == kind { 1.0 } else { 0.0 });
        }
        let report = violations(entry, samples, now, s.lookback);
        for (window, v) in &report.windows {
            violation_seconds.add(&labels, &[("window", window.label())], v.time * 60.0);
            violation_count.add(&labels, &[("window", window.label())], v.n as f64);
        }
        if let Some(sample) = samples.last() {
            last.add(&labels, &[], sample.value);
        }
        min.add(&labels, &[], entry.range.min);
        max.add(&labels, &[], entry.range.max);
        for_seconds.add(&labels, &[], f64::from(entry.for_minutes) * 60.0);
        let metric = db(s.db_timeout, s.store.metric(&entry.id())).await?;
        if let Some(prediction) = metric.and_then(|m| m.prediction) {
            let origin = prediction.computed_at_ms.div_euclid(60_000) * 60_000;
            for p in &prediction.points {
                forecast.add(&labels, &[("horizon_seconds", &((p.ts_ms - origin) / 1000).to_string())], p.value);
            }
            if let Some(p) = breach_probability(entry, samples, &prediction.points, &prediction.intervals) {
                breach.add(&labels, &[], p);
            }
            let upcoming = future_violations(entry, samples, &prediction.points, s.lookback);
            if let Some(v) = upcoming.iter().min_by_key(|v| v.run.start.0) {
                let seconds = ((v.run.start.0 - now.0) as f64 / 1000.0).max(0.0);
                next.add(&labels, &[("description", v.kind.description())], seconds);
            }
        }
    }
    let families: Vec<MetricFamily> =
        [state, violation_seconds, violation_count, last, min, max, for_seconds, next, forecast, breach]
            .into_iter()
            .map(|f| f.0)
            .filter(|f| !f.get_metric().is_empty())
            .collect();
    let mut body = Vec::new();
    prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &families, &mut body)
        .map_err(|e| ApiError::Internal(format!("encoding the SLA metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_that_collides_with_ours_is_renamed_until_its_name_is_free() {
        let labels = [("__name__", "up"), ("state", "a"), ("exported_state", "b"), ("job", "j")];
        let entry = SlaEntry {
            labels: labels.into_iter().collect(),
            range: slamon_domain::SlaRange { min: 0.0, max: 1.0 },
            for_minutes: 1,
        };
        let out = entry_labels(&entry);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let value = |n: &str| out.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            (value("exported_exported_state"), value("exported_state"), value("sla_metric")),
            (Some("a"), Some("b"), Some("up"))
        );
    }
}
