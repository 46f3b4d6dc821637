//! Wire records of the latest version of each event's schema (`schemas/<event>/vN.avsc`,
//! the highest N), and their conversion to and from the domain types. Older versions are
//! read by Avro schema resolution into these records (a field a version lacks takes its
//! default), so they need no records of their own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slamon_domain as d;

use crate::{Error, Result};

/// The version written for `event_type`: its latest schema's.
fn version(event_type: &str) -> i32 {
    crate::schemas::latest(event_type).map_or(1, |s| s.version as i32)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub ts: i64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowAggregate {
    pub window: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
    pub std_dev: Option<f64>,
    pub samples: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricAggregatesComputed {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: i64,
    pub producer: String,
    pub metric_id: String,
    pub labels: BTreeMap<String, String>,
    pub computed_at: i64,
    pub windows: Vec<WindowAggregate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastCandidate {
    pub model: String,
    pub rmse: Option<f64>,
    pub note: Option<String>,
}

/// Since v2 of `MetricForecastComputed`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredictionInterval {
    pub lower_80: f64,
    pub upper_80: f64,
    pub lower_95: f64,
    pub upper_95: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricForecastComputed {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: i64,
    pub producer: String,
    pub metric_id: String,
    pub labels: BTreeMap<String, String>,
    pub computed_at: i64,
    pub model: String,
    pub rmse: f64,
    pub candidates: Vec<ForecastCandidate>,
    pub points: Vec<Sample>,
    #[serde(default)]
    pub intervals: Vec<PredictionInterval>,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stationarity {
    pub adf_statistic: f64,
    pub p_value: f64,
    pub stationary: bool,
    pub used_lag: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autocorrelation {
    pub lag: i32,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeasonalFit {
    pub period: i32,
    pub period_seconds: f64,
    pub error: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seasonality {
    pub method: String,
    pub add: Option<SeasonalFit>,
    pub mul: Option<SeasonalFit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricMetadataComputed {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: i64,
    pub producer: String,
    pub metric_id: String,
    pub labels: BTreeMap<String, String>,
    pub computed_at: i64,
    pub constant: bool,
    pub stationarity: Option<Stationarity>,
    pub autocorrelation: Vec<Autocorrelation>,
    pub seasonality: Option<Seasonality>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSamplesObserved {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: i64,
    pub producer: String,
    pub metric_id: String,
    pub labels: BTreeMap<String, String>,
    pub window_start: i64,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaEntry {
    pub metric_id: String,
    pub labels: BTreeMap<String, String>,
    pub min: f64,
    pub max: f64,
    pub for_minutes: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSetDefined {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: i64,
    pub producer: String,
    pub sla: String,
    pub version: i64,
    pub entries: Vec<SlaEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRemoved {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: i64,
    pub producer: String,
    pub metric_id: String,
    pub labels: BTreeMap<String, String>,
    pub last_seen: i64,
}

fn samples_out(s: &[d::Sample]) -> Vec<Sample> {
    s.iter().map(|s| Sample { ts: s.ts_ms, value: s.value }).collect()
}

fn samples_in(s: Vec<Sample>) -> Vec<d::Sample> {
    s.into_iter().map(|s| d::Sample::new(s.ts, s.value)).collect()
}

/// Builds the Avro value of a domain event in its latest schema.
pub fn to_avro(env: &d::EventEnvelope) -> Result<apache_avro::types::Value> {
    let id = env.event_id.to_string();
    let t = env.event.event_type().to_owned();
    let v = version(&t);
    let key = env.event.key();
    let p = env.producer.clone();
    let at = env.occurred_at_ms;
    let value = match &env.event {
        d::Event::MetricAggregatesComputed(e) => apache_avro::to_value(MetricAggregatesComputed {
            event_id: id,
            event_type: t,
            schema_version: v,
            occurred_at: at,
            producer: p,
            metric_id: key,
            labels: e.labels.to_map(),
            computed_at: e.computed_at_ms,
            windows: e
                .windows
                .iter()
                .map(|w| WindowAggregate {
                    window: w.window.label().to_owned(),
                    min: w.min,
                    max: w.max,
                    avg: w.avg,
                    std_dev: w.std_dev,
                    samples: w.samples as i64,
                })
                .collect(),
        }),
        d::Event::MetricForecastComputed(e) => apache_avro::to_value(MetricForecastComputed {
            event_id: id,
            event_type: t,
            schema_version: v,
            occurred_at: at,
            producer: p,
            metric_id: key,
            labels: e.labels.to_map(),
            computed_at: e.computed_at_ms,
            model: e.model.clone(),
            rmse: e.rmse,
            candidates: e
                .candidates
                .iter()
                .map(|c| ForecastCandidate { model: c.model.clone(), rmse: c.rmse, note: c.note.clone() })
                .collect(),
            points: samples_out(&e.points),
            intervals: e
                .intervals
                .iter()
                .map(|i| PredictionInterval {
                    lower_80: i.lower_80,
                    upper_80: i.upper_80,
                    lower_95: i.lower_95,
                    upper_95: i.upper_95,
                })
                .collect(),
            min: e.min,
            max: e.max,
            avg: e.avg,
        }),
        d::Event::MetricMetadataComputed(e) => apache_avro::to_value(MetricMetadataComputed {
            event_id: id,
            event_type: t,
            schema_version: v,
            occurred_at: at,
            producer: p,
            metric_id: key,
            labels: e.labels.to_map(),
            computed_at: e.computed_at_ms,
            constant: e.constant,
            stationarity: e.stationarity.as_ref().map(|s| Stationarity {
                adf_statistic: s.adf_statistic,
                p_value: s.p_value,
                stationary: s.stationary,
                used_lag: s.used_lag as i32,
            }),
            autocorrelation: e
                .autocorrelation
                .iter()
                .map(|(lag, value)| Autocorrelation { lag: *lag as i32, value: *value })
                .collect(),
            seasonality: e.seasonality.as_ref().map(|s| {
                let fit = |f: &d::SeasonalFit| SeasonalFit {
                    period: f.period as i32,
                    period_seconds: f.period_seconds,
                    error: f.error,
                };
                Seasonality { method: s.method.clone(), add: s.add.as_ref().map(fit), mul: s.mul.as_ref().map(fit) }
            }),
        }),
        d::Event::SlaSamplesObserved(e) => apache_avro::to_value(SlaSamplesObserved {
            event_id: id,
            event_type: t,
            schema_version: v,
            occurred_at: at,
            producer: p,
            metric_id: key,
            labels: e.labels.to_map(),
            window_start: e.window_start_ms,
            samples: samples_out(&e.samples),
        }),
        d::Event::SlaSetDefined(e) => apache_avro::to_value(SlaSetDefined {
            event_id: id,
            event_type: t,
            schema_version: v,
            occurred_at: at,
            producer: p,
            sla: key,
            version: e.version as i64,
            entries: e
                .entries
                .iter()
                .map(|x| SlaEntry {
                    metric_id: x.id().to_string(),
                    labels: x.labels.to_map(),
                    min: x.range.min,
                    max: x.range.max,
                    for_minutes: x.for_minutes as i32,
                })
                .collect(),
        }),
        d::Event::MetricRemoved(e) => apache_avro::to_value(MetricRemoved {
            event_id: id,
            event_type: t,
            schema_version: v,
            occurred_at: at,
            producer: p,
            metric_id: key,
            labels: e.labels.to_map(),
            last_seen: e.last_seen_ms,
        }),
    };
    value.map_err(|e| Error::Encode(e.to_string()))
}

fn envelope(event_id: &str, occurred_at: i64, producer: String, event: d::Event) -> Result<d::EventEnvelope> {
    let event_id = event_id.parse().map_err(|e| Error::Decode(format!("invalid event_id `{event_id}`: {e}")))?;
    Ok(d::EventEnvelope { event_id, occurred_at_ms: occurred_at, producer, event })
}

fn labels(map: BTreeMap<String, String>, metric_id: &str) -> Result<d::Labels> {
    let labels = d::Labels::new(map);
    let id = labels.id().to_string();
    if id != metric_id {
        return Err(Error::Decode(format!("metric_id {metric_id} does not match the labels (their id is {id})")));
    }
    Ok(labels)
}

fn from<T: serde::de::DeserializeOwned>(value: &apache_avro::types::Value) -> Result<T> {
    apache_avro::from_value(value).map_err(|e| Error::Decode(e.to_string()))
}

/// Reads a v1 Avro value (already resolved to the v1 reader schema) of the named record.
pub fn from_avro(record: &str, value: &apache_avro::types::Value) -> Result<d::EventEnvelope> {
    match record {
        "MetricAggregatesComputed" => {
            let w: MetricAggregatesComputed = from(value)?;
            let windows = w
                .windows
                .into_iter()
                .map(|a| {
                    let window = d::Window::parse(&a.window)
                        .ok_or_else(|| Error::Decode(format!("unknown window `{}`", a.window)))?;
                    Ok(d::WindowAggregate {
                        window,
                        min: a.min,
                        max: a.max,
                        avg: a.avg,
                        std_dev: a.std_dev,
                        samples: a.samples.max(0) as u64,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let labels = labels(w.labels, &w.metric_id)?;
            envelope(
                &w.event_id,
                w.occurred_at,
                w.producer,
                d::Event::MetricAggregatesComputed(d::MetricAggregatesComputed {
                    labels,
                    computed_at_ms: w.computed_at,
                    windows,
                }),
            )
        }
        "MetricForecastComputed" => {
            let w: MetricForecastComputed = from(value)?;
            let labels = labels(w.labels, &w.metric_id)?;
            envelope(
                &w.event_id,
                w.occurred_at,
                w.producer,
                d::Event::MetricForecastComputed(d::MetricForecastComputed {
                    labels,
                    computed_at_ms: w.computed_at,
                    model: w.model,
                    rmse: w.rmse,
                    candidates: w
                        .candidates
                        .into_iter()
                        .map(|c| d::ForecastCandidate { model: c.model, rmse: c.rmse, note: c.note })
                        .collect(),
                    points: samples_in(w.points),
                    intervals: w
                        .intervals
                        .into_iter()
                        .map(|i| d::PredictionInterval {
                            lower_80: i.lower_80,
                            upper_80: i.upper_80,
                            lower_95: i.lower_95,
                            upper_95: i.upper_95,
                        })
                        .collect(),
                    min: w.min,
                    max: w.max,
                    avg: w.avg,
                }),
            )
        }
        "MetricMetadataComputed" => {
            let w: MetricMetadataComputed = from(value)?;
            let labels = labels(w.labels, &w.metric_id)?;
            let fit = |f: SeasonalFit| d::SeasonalFit {
                period: f.period.max(0) as u32,
                period_seconds: f.period_seconds,
                error: f.error,
            };
            envelope(
                &w.event_id,
                w.occurred_at,
                w.producer,
                d::Event::MetricMetadataComputed(d::MetricMetadataComputed {
                    labels,
                    computed_at_ms: w.computed_at,
                    constant: w.constant,
                    stationarity: w.stationarity.map(|s| d::Stationarity {
                        adf_statistic: s.adf_statistic,
                        p_value: s.p_value,
                        stationary: s.stationary,
                        used_lag: s.used_lag.max(0) as u32,
                    }),
                    autocorrelation: w.autocorrelation.into_iter().map(|a| (a.lag.max(0) as u32, a.value)).collect(),
                    seasonality: w.seasonality.map(|s| d::Seasonality {
                        method: s.method,
                        add: s.add.map(fit),
                        mul: s.mul.map(fit),
                    }),
                }),
            )
        }
        "SlaSamplesObserved" => {
            let w: SlaSamplesObserved = from(value)?;
            let labels = labels(w.labels, &w.metric_id)?;
            envelope(
                &w.event_id,
                w.occurred_at,
                w.producer,
                d::Event::SlaSamplesObserved(d::SlaSamplesObserved {
                    labels,
                    window_start_ms: w.window_start,
                    samples: samples_in(w.samples),
                }),
            )
        }
        "SlaSetDefined" => {
            let w: SlaSetDefined = from(value)?;
            let entries = w
                .entries
                .into_iter()
                .map(|e| {
                    Ok(d::SlaEntry {
                        labels: labels(e.labels, &e.metric_id)?,
                        range: d::SlaRange { min: e.min, max: e.max },
                        for_minutes: u32::try_from(e.for_minutes)
                            .map_err(|_| Error::Decode(format!("negative for_minutes {}", e.for_minutes)))?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let version =
                u64::try_from(w.version).map_err(|_| Error::Decode(format!("negative version {}", w.version)))?;
            envelope(
                &w.event_id,
                w.occurred_at,
                w.producer,
                d::Event::SlaSetDefined(d::SlaSetDefined { version, entries }),
            )
        }
        "MetricRemoved" => {
            let w: MetricRemoved = from(value)?;
            let labels = labels(w.labels, &w.metric_id)?;
            envelope(
                &w.event_id,
                w.occurred_at,
                w.producer,
                d::Event::MetricRemoved(d::MetricRemoved { labels, last_seen_ms: w.last_seen }),
            )
        }
        other => Err(Error::UnknownRecord(other.to_owned())),
    }
}
