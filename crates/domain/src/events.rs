//! The events: facts about series and SLA sets, named in the past tense (SPEC §3).
//! These are the current domain types; wire versions live in the `events` crate.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::labels::{Labels, MetricId};
use crate::sla::SlaEntry;
use crate::{Sample, SLA_KEY};

/// One of the statistics windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Window {
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "3h")]
    H3,
    #[serde(rename = "12h")]
    H12,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::H1, Window::H3, Window::H12];

    pub fn label(self) -> &'static str {
        match self {
            Window::H1 => "1h",
            Window::H3 => "3h",
            Window::H12 => "12h",
        }
    }

    /// The window's length.
    pub fn span(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis() as u64)
    }

    /// The window's length in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            Window::H1 => 3_600_000,
            Window::H3 => 3 * 3_600_000,
            Window::H12 => 12 * 3_600_000,
        }
    }

    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.label() == s)
    }
}

/// Statistics of one window. `None` where the window had too few samples
/// (no samples at all; one sample for the standard deviation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowAggregate {
    pub window: Window,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
    /// Sample standard deviation (ddof = 1).
    pub std_dev: Option<f64>,
    pub samples: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricAggregatesComputed {
    pub labels: Labels,
    pub computed_at_ms: i64,
    pub windows: Vec<WindowAggregate>,
}

/// One forecasting model tried on the hold-out, with its RMSE, or why it was skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastCandidate {
    pub model: String,
    pub rmse: Option<f64>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricForecastComputed {
    pub labels: Labels,
    pub computed_at_ms: i64,
    pub model: String,
    pub rmse: f64,
    pub candidates: Vec<ForecastCandidate>,
    pub points: Vec<Sample>,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stationarity {
    pub adf_statistic: f64,
    pub p_value: f64,
    pub stationary: bool,
    pub used_lag: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeasonalFit {
    pub period: u32,
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
    pub labels: Labels,
    pub computed_at_ms: i64,
    pub constant: bool,
    pub stationarity: Option<Stationarity>,
    /// Lags whose 95 % interval excludes 0, with their autocorrelation.
    pub autocorrelation: Vec<(u32, f64)>,
    pub seasonality: Option<Seasonality>,
}

/// New raw samples of one SLA metric. The projection keeps samples at or after
/// `window_start_ms` and merges by timestamp, so a redelivered or overlapping event
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSamplesObserved {
    pub labels: Labels,
    pub window_start_ms: i64,
    pub samples: Vec<Sample>,
}

/// The whole SLA set after a PUT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSetDefined {
    pub version: u64,
    pub entries: Vec<SlaEntry>,
}

/// A series that disappeared from the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRemoved {
    pub labels: Labels,
    pub last_seen_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    MetricAggregatesComputed(MetricAggregatesComputed),
    MetricForecastComputed(MetricForecastComputed),
    MetricMetadataComputed(MetricMetadataComputed),
    SlaSamplesObserved(SlaSamplesObserved),
    SlaSetDefined(SlaSetDefined),
    MetricRemoved(MetricRemoved),
}

impl Event {
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::MetricAggregatesComputed(_) => "MetricAggregatesComputed",
            Event::MetricForecastComputed(_) => "MetricForecastComputed",
            Event::MetricMetadataComputed(_) => "MetricMetadataComputed",
            Event::SlaSamplesObserved(_) => "SlaSamplesObserved",
            Event::SlaSetDefined(_) => "SlaSetDefined",
            Event::MetricRemoved(_) => "MetricRemoved",
        }
    }

    /// The labels of the series the event is about (`None` for SLA set events).
    pub fn labels(&self) -> Option<&Labels> {
        match self {
            Event::MetricAggregatesComputed(e) => Some(&e.labels),
            Event::MetricForecastComputed(e) => Some(&e.labels),
            Event::MetricMetadataComputed(e) => Some(&e.labels),
            Event::SlaSamplesObserved(e) => Some(&e.labels),
            Event::MetricRemoved(e) => Some(&e.labels),
            Event::SlaSetDefined(_) => None,
        }
    }

    pub fn metric_id(&self) -> Option<MetricId> {
        self.labels().map(Labels::id)
    }

    /// The aggregate key: the metric id, or `sla` for SLA set events. It is the
    /// record key on the log, so all events of one aggregate stay in order.
    pub fn key(&self) -> String {
        match self.metric_id() {
            Some(id) => id.to_string(),
            None => SLA_KEY.to_owned(),
        }
    }
}

/// An event with its envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// UUIDv7.
    pub event_id: Uuid,
    pub occurred_at_ms: i64,
    pub producer: String,
    pub event: Event,
}

impl EventEnvelope {
    /// A new envelope with a fresh UUIDv7 and the current time.
    pub fn new(producer: impl Into<String>, event: Event) -> Self {
        Self { event_id: Uuid::now_v7(), occurred_at_ms: crate::now_ms(), producer: producer.into(), event }
    }
}
