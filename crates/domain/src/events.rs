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
    /// The last hour (3 600 000 ms); `1h` on the wire and in the API.
    #[serde(rename = "1h")]
    H1,
    /// The last 3 hours; `3h` on the wire and in the API.
    #[serde(rename = "3h")]
    H3,
    /// The last 12 hours; `12h` on the wire and in the API, and the longest window of `/violations`.
    #[serde(rename = "12h")]
    H12,
}

impl Window {
    /// Every window, shortest first: the order of [`MetricAggregatesComputed::windows`] and of the API's keys.
    pub const ALL: [Window; 3] = [Window::H1, Window::H3, Window::H12];

    /// The window's name on the wire and in the API: `1h`, `3h` or `12h`.
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

    /// The window named `s` exactly as [`Window::label`] writes it (`1h`, `3h`, `12h`); `None` for any other
    /// text.
    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.label() == s)
    }
}

/// Statistics of one window. `None` where the window had too few samples
/// (no samples at all; one sample for the standard deviation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowAggregate {
    /// The window these statistics cover: the span of that length ending at the event's `computed_at_ms`.
    pub window: Window,
    /// Smallest sample value in the window; `None` when it held no sample (the Prometheus source also gives
    /// `None` for a result that is not finite).
    pub min: Option<f64>,
    /// Largest sample value in the window; `None` as for `min`.
    pub max: Option<f64>,
    /// Arithmetic mean of the sample values in the window; `None` as for `min`.
    pub avg: Option<f64>,
    /// Sample standard deviation (ddof = 1).
    pub std_dev: Option<f64>,
    /// Number of raw samples in the window (PromQL `count_over_time`); 0 when it held none.
    pub samples: u64,
}

/// Fact: the window statistics of one series over the last 1 h, 3 h and 12 h were computed.
/// Emitted by the ETL every cycle (2 min by default) for every series of the source, keyed by the
/// series' metric id; the projector sets the `values` of the series' [`MetricView`](crate::views::MetricView)
/// in the `metrics` read model (and clears its `removed` flag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricAggregatesComputed {
    /// Full label set of the series, `__name__` included; its [`MetricId`] is the record key.
    pub labels: Labels,
    /// The evaluation time the windows end at (the ETL cycle's time), in milliseconds since the Unix epoch.
    pub computed_at_ms: i64,
    /// One aggregate per window in [`Window::ALL`] order (1h, 3h, 12h), as the ETL emits them; a window
    /// without samples has `samples: 0` and `None` statistics.
    pub windows: Vec<WindowAggregate>,
}

/// One forecasting model tried on the hold-out, with its RMSE, or why it was skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastCandidate {
    /// The model's name: `holt_winters_add`, `holt_winters_mul`, `mstl_auto_ets`, `mstl_arima`,
    /// `decomposition_auto_ets`, `decomposition_arima`, `auto_ets`, `arima`, `holt_linear`,
    /// `persistence`, or `combination(a,b…)` for the mean of several.
    pub model: String,
    /// Root mean square error of its forecast over the hold-out (the last 10 one-minute points of the
    /// input), in the series' units; `None` when the model was skipped or its fit failed.
    pub rmse: Option<f64>,
    /// Why it was skipped or failed, or a remark (e.g. `constant series`); `None` for a plain fit.
    pub note: Option<String>,
}

/// The central prediction intervals of one forecast point, in the series' units: the value is expected
/// in `[lower_80, upper_80]` with probability 0.8 and in `[lower_95, upper_95]` with probability 0.95.
/// From a normal forecast error whose standard deviation the ETL measures per step (see
/// `slamon_analytics::forecast::Forecast::std_devs`), so both are symmetric about the point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredictionInterval {
    /// Lower bound of the 80 % interval (the forecast error's 10th percentile added to the point).
    pub lower_80: f64,
    /// Upper bound of the 80 % interval (90th percentile).
    pub upper_80: f64,
    /// Lower bound of the 95 % interval (2.5th percentile).
    pub lower_95: f64,
    /// Upper bound of the 95 % interval (97.5th percentile).
    pub upper_95: f64,
}

impl PredictionInterval {
    /// The standard normal quantile of 0.975: the 95 % interval is the point ± this many standard deviations.
    pub const Z95: f64 = 1.959_963_984_540_054;

    /// The standard deviation of the forecast error the 95 % interval implies (0 for a degenerate one).
    pub fn std_dev(&self) -> f64 {
        ((self.upper_95 - self.lower_95) / (2.0 * Self::Z95)).max(0.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// Fact: the forecast of one SLA metric was computed: the model that won on the hold-out and its
/// next points. Emitted by the ETL every cycle for every series of the current SLA set, keyed by
/// metric id; the projector stores it whole as the `prediction` of the series'
/// [`MetricView`](crate::views::MetricView) (the latest wins), which `/prediction` and `/future-violations` read.
pub struct MetricForecastComputed {
    /// Full label set of the series, `__name__` included; its [`MetricId`] is the record key.
    pub labels: Labels,
    /// When it was computed (the ETL cycle's time), in milliseconds since the Unix epoch.
    pub computed_at_ms: i64,
    /// Name of the chosen model: the candidate with the lowest hold-out RMSE, refitted on all the data.
    pub model: String,
    /// The chosen model's RMSE on the hold-out, in the series' units; 0 for a constant series (persistence).
    pub rmse: f64,
    /// Every model considered, skipped ones included, in the order they were tried (not sorted by RMSE).
    pub candidates: Vec<ForecastCandidate>,
    /// The forecast over the horizon (10 points by default) on the 1-minute grid, oldest first; the first
    /// point is one step after the input's last sample, each at the time it predicts. Timestamps in ms since
    /// the Unix epoch.
    pub points: Vec<Sample>,
    /// The 80 % and 95 % prediction intervals of `points`, one per point in the same order; empty when the
    /// forecast has none (the input left too few origins to measure its error, or an event of schema v1).
    #[serde(default)]
    pub intervals: Vec<PredictionInterval>,
    /// Smallest forecast value over `points`.
    pub min: f64,
    /// Largest forecast value over `points`.
    pub max: f64,
    /// Mean of the forecast values over `points`.
    pub avg: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// The Augmented Dickey-Fuller test of a series (as statsmodels `adfuller`: lag by AIC, MacKinnon
/// p-value), run on its values on the 1-minute grid.
pub struct Stationarity {
    /// The ADF test statistic; the more negative, the stronger the evidence against a unit root.
    pub adf_statistic: f64,
    /// MacKinnon's approximate p-value of the statistic.
    pub p_value: f64,
    /// `p_value < 0.05`: the unit-root hypothesis is rejected at 5 %.
    pub stationary: bool,
    /// Number of lagged differences in the test regression, chosen by AIC.
    pub used_lag: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// A classical seasonal decomposition of a series at one period (additive or multiplicative).
pub struct SeasonalFit {
    /// Season length in samples of the 1-minute analysis grid.
    pub period: u32,
    /// The same season length in seconds (`period` × the grid step of 60 s).
    pub period_seconds: f64,
    /// Root mean square of the residual: in the series' units for the additive model, of `residual − 1`
    /// (a relative error) for the multiplicative one.
    pub error: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// The seasonality of a series: periodogram (FFT) peaks refined by seasonal decomposition.
pub struct Seasonality {
    /// How the period was found, for humans; it names the FFT peak in samples.
    pub method: String,
    /// The chosen additive decomposition; `None` when none could be fitted (e.g. too few cycles).
    pub add: Option<SeasonalFit>,
    /// The chosen multiplicative decomposition; `None` when none could be fitted (e.g. a value ≤ 0).
    pub mul: Option<SeasonalFit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// Fact: the metadata of one series (stationarity, autocorrelation, seasonality) was computed.
/// Emitted by the ETL every hour for every series of the source, keyed by metric id; the projector
/// stores it whole as the `metadata` of the series' [`MetricView`](crate::views::MetricView), which
/// `/metadata` and the gRPC SLA service (for the seasonality) read.
pub struct MetricMetadataComputed {
    /// Full label set of the series, `__name__` included; its [`MetricId`] is the record key.
    pub labels: Labels,
    /// When it was computed (the ETL cycle's time), in milliseconds since the Unix epoch; the input is
    /// the series on the 1-minute grid before it.
    pub computed_at_ms: i64,
    /// The series was constant over its input: the analyses were skipped, `stationarity` and
    /// `seasonality` are `None` and `autocorrelation` is empty.
    pub constant: bool,
    /// The ADF test; `None` for a constant series or one too short for the test regression.
    pub stationarity: Option<Stationarity>,
    /// Lags whose 95 % interval excludes 0, with their autocorrelation.
    /// `(lag in samples, r)` pairs in ascending lag up to a configurable maximum, lag 0 (r = 1) included.
    pub autocorrelation: Vec<(u32, f64)>,
    /// The seasonality; `None` for a constant series or when the periodogram has no peak.
    pub seasonality: Option<Seasonality>,
}

/// New raw samples of one SLA metric. The projection keeps samples at or after
/// `window_start_ms` and merges by timestamp, so a redelivered or overlapping event
/// changes nothing.
///
/// Fact: raw samples of one SLA metric were observed in the source. Emitted by the ETL every cycle
/// for every series of the current SLA set, keyed by metric id; the projector merges them into the
/// series' [`SlaSamplesView`](crate::views::SlaSamplesView) in the `sla_samples` read model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSamplesObserved {
    /// Full label set of the series, `__name__` included; its [`MetricId`] is the record key.
    pub labels: Labels,
    /// Start of the window the read model keeps, in milliseconds since the Unix epoch: the cycle's time
    /// − 12 h − the entry's `for` − a margin. Samples before it are dropped from the read model.
    pub window_start_ms: i64,
    /// Raw samples as Prometheus stored them (their own timestamps, no lookback fill), oldest first: those
    /// after the last one already sent, or the whole window the first time. May be empty.
    pub samples: Vec<Sample>,
}

/// The whole SLA set after a PUT.
///
/// Fact: an operator replaced the SLA set. Emitted by the SLA manager on a valid PUT `/slaset`, keyed
/// `sla`; the projector makes it the current version of the [`SlaSetView`](crate::views::SlaSetView)
/// in the `sla_sets` read model and appends it to the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSetDefined {
    /// The set's version, from 1 and increasing: one more than the version the SLA manager last saw
    /// in the projection.
    pub version: u64,
    /// Every SLA of the set, in the order of the PUT body; at most one per series.
    pub entries: Vec<SlaEntry>,
}

/// A series that disappeared from the source.
///
/// Fact: the source has not listed the series for longer than the configured removal time. Emitted by
/// the ETL, keyed by metric id; the projector marks the series' [`MetricView`](crate::views::MetricView)
/// `removed` (a later event of the series revives it) and empties its
/// [`SlaSamplesView`](crate::views::SlaSamplesView).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRemoved {
    /// Full label set of the series, `__name__` included; its [`MetricId`] is the record key.
    pub labels: Labels,
    /// The ETL cycle time at which the source last listed the series, in milliseconds since the Unix
    /// epoch (not the timestamp of its last sample).
    pub last_seen_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// Every fact on the log (SPEC §3), one variant per event type; the variant's name is the
/// `event_type` and the Avro record name.
pub enum Event {
    /// Window statistics of a series (ETL, every cycle) → `metrics`.
    MetricAggregatesComputed(MetricAggregatesComputed),
    /// Forecast of an SLA series (ETL, every cycle) → `metrics`.
    MetricForecastComputed(MetricForecastComputed),
    /// Metadata of a series (ETL, hourly) → `metrics`.
    MetricMetadataComputed(MetricMetadataComputed),
    /// New raw samples of an SLA series (ETL, every cycle) → `sla_samples`.
    SlaSamplesObserved(SlaSamplesObserved),
    /// A new SLA set (SLA manager, on PUT) → `sla_sets`.
    SlaSetDefined(SlaSetDefined),
    /// A series gone from the source (ETL) → `metrics` and `sla_samples`.
    MetricRemoved(MetricRemoved),
}

impl Event {
    /// The event type: the variant's name, e.g. `MetricAggregatesComputed`.
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

    /// The metric id of the series the event is about (its record key); `None` for SLA set events.
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
    /// When the event was produced, in milliseconds since the Unix epoch (`occurred_at` on the wire).
    pub occurred_at_ms: i64,
    /// The component that produced it, `<service>@<host>`, e.g. `etl@node-1`.
    pub producer: String,
    /// The fact itself.
    pub event: Event,
}

impl EventEnvelope {
    /// A new envelope with a fresh UUIDv7 and the current time.
    pub fn new(producer: impl Into<String>, event: Event) -> Self {
        Self { event_id: Uuid::now_v7(), occurred_at_ms: crate::now_ms(), producer: producer.into(), event }
    }
}
