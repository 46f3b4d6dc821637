//! The JSON bodies of the query API (SPEC §5), as types: the handlers answer them and
//! the OpenAPI contract describes them, so the two cannot differ. Numbers that may be
//! non-finite are [`Number`]s (`"NaN"`, `"+Inf"`, `"-Inf"`); times are RFC 3339 in UTC
//! with milliseconds.

use serde::Serialize;
use slamon_domain::{rfc3339_ms, Labels, MetricId};
use slamon_web::openapi::Number;
use utoipa::ToSchema;

/// The pattern of a metric id: 24 hex characters (12 bytes of SHA-256 of the label set).
pub const ID_PATTERN: &str = "^[0-9a-fA-F]{24}$";

/// A metric id as MongoDB's extended JSON writes an ObjectId: `{"$oid": "<id>"}` (the
/// seed's shape).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Oid {
    /// The metric id, 24 lowercase hex characters.
    #[serde(rename = "$oid")]
    #[schema(pattern = "^[0-9a-f]{24}$", example = "4d2a0ac1d0ba2cf5e6d37a1b")]
    pub oid: String,
}

/// One series of `GET /metrics`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricItem {
    /// The metric id, as the seed wrote it.
    #[serde(rename = "_id")]
    pub oid: Oid,
    /// The metric id: 24 lowercase hex characters, stable across deployments and replays.
    #[schema(pattern = "^[0-9a-f]{24}$", example = "4d2a0ac1d0ba2cf5e6d37a1b")]
    pub id: String,
    /// The series' full label set, `__name__` included.
    #[schema(value_type = std::collections::BTreeMap<String, String>, example = json!({"__name__": "up", "job": "node"}))]
    pub name: Labels,
}

impl MetricItem {
    /// The list item of a series.
    pub fn of(id: &MetricId, labels: &Labels) -> Self {
        let id = id.to_string();
        Self { oid: Oid { oid: id.clone() }, id, name: labels.clone() }
    }
}

/// `GET /metrics/{id}/values`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValuesBody {
    /// The statistics of each window.
    pub values: Windows,
    /// When they were computed.
    #[schema(format = DateTime)]
    pub computed_at: String,
}

/// The windows of the statistics (each present once computed; the ETL computes all three).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Windows {
    /// The last hour.
    #[serde(rename = "1h", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub h1: Option<WindowStats>,
    /// The last 3 hours.
    #[serde(rename = "3h", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub h3: Option<WindowStats>,
    /// The last 12 hours.
    #[serde(rename = "12h", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub h12: Option<WindowStats>,
}

/// The statistics of one window, in the series' units; `null` when the window has no
/// sample (and `std_dev` with fewer than two).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowStats {
    /// The smallest sample.
    #[schema(required = true)]
    pub min: Option<Number>,
    /// The largest sample.
    #[schema(required = true)]
    pub max: Option<Number>,
    /// The mean of the samples.
    #[schema(required = true)]
    pub avg: Option<Number>,
    /// The sample standard deviation (ddof = 1).
    #[schema(required = true)]
    pub std_dev: Option<Number>,
    /// How many samples the window holds.
    #[schema(minimum = 0)]
    pub samples: u64,
}

impl ValuesBody {
    /// The body of a series' statistics.
    pub fn of(v: &slamon_domain::ValuesView) -> Self {
        let mut windows = Windows::default();
        for w in &v.windows {
            let stats = WindowStats {
                min: w.min.map(Number),
                max: w.max.map(Number),
                avg: w.avg.map(Number),
                std_dev: w.std_dev.map(Number),
                samples: w.samples,
            };
            let slot = match w.window {
                slamon_domain::Window::H1 => &mut windows.h1,
                slamon_domain::Window::H3 => &mut windows.h3,
                slamon_domain::Window::H12 => &mut windows.h12,
            };
            *slot = Some(stats);
        }
        Self { values: windows, computed_at: rfc3339_ms(v.computed_at_ms) }
    }
}

/// `GET /metrics/{id}/metadata`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetadataBody {
    /// The metadata of the series.
    pub metadata: Metadata,
}

/// Stationarity, autocorrelation and seasonality of a series, computed every hour.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Metadata {
    /// `true` when the series was constant: the analyses were skipped (only then present).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub constant: Option<bool>,
    /// The augmented Dickey-Fuller test; absent for a constant series or one too short.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub stationarity: Option<Stationarity>,
    /// The lags (in samples) whose 95 % interval excludes 0, with their autocorrelation,
    /// in ascending lag; absent for a constant series.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<std::collections::BTreeMap<String, Number>>)]
    pub autocorrelation: Option<Lags>,
    /// The seasonality; absent for a constant series or when the periodogram has no peak.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub seasonality: Option<Seasonality>,
    /// When it was computed.
    #[schema(format = DateTime)]
    pub computed_at: String,
}

/// `(lag, r)` pairs written as a JSON object `{"<lag>": r}` in their order.
#[derive(Debug, Clone)]
pub struct Lags(pub Vec<(u32, Number)>);

impl Serialize for Lags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (lag, r) in &self.0 {
            map.serialize_entry(&lag.to_string(), r)?;
        }
        map.end()
    }
}

/// The augmented Dickey-Fuller test (lag by AIC, MacKinnon p-value).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stationarity {
    /// `p_value < 0.05`.
    pub stationary: bool,
    /// The MacKinnon p-value.
    pub p_value: Number,
    /// The test statistic.
    pub adf_statistic: Number,
    /// The lag the AIC chose.
    #[schema(minimum = 0)]
    pub used_lag: u32,
}

/// The seasonal period, by periodogram peaks refined by decomposition, with additive and
/// multiplicative seasonality.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Seasonality {
    /// The additive fit; `null` when none.
    #[schema(required = true)]
    pub add: Option<SeasonalFit>,
    /// The multiplicative fit; `null` when none.
    #[schema(required = true)]
    pub mul: Option<SeasonalFit>,
    /// How the period was found.
    pub method: String,
}

/// One seasonal fit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeasonalFit {
    /// The period, in samples.
    #[schema(minimum = 0)]
    pub period: u32,
    /// The period, in seconds.
    pub period_seconds: Number,
    /// The residual error of the decomposition.
    pub error: Number,
}

impl Metadata {
    /// The body of a series' metadata.
    pub fn of(md: &slamon_domain::MetricMetadataComputed) -> Self {
        let fit = |f: &Option<slamon_domain::SeasonalFit>| {
            f.as_ref().map(|f| SeasonalFit {
                period: f.period,
                period_seconds: Number(f.period_seconds),
                error: Number(f.error),
            })
        };
        Self {
            constant: md.constant.then_some(true),
            stationarity: md.stationarity.as_ref().map(|st| Stationarity {
                stationary: st.stationary,
                p_value: Number(st.p_value),
                adf_statistic: Number(st.adf_statistic),
                used_lag: st.used_lag,
            }),
            autocorrelation: (!md.constant)
                .then(|| Lags(md.autocorrelation.iter().map(|(lag, r)| (*lag, Number(*r))).collect())),
            seasonality: md.seasonality.as_ref().map(|se| Seasonality {
                add: fit(&se.add),
                mul: fit(&se.mul),
                method: se.method.clone(),
            }),
            computed_at: rfc3339_ms(md.computed_at_ms),
        }
    }
}

/// `GET /metrics/{id}/prediction`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PredictionBody {
    /// The latest forecast of the series.
    pub prediction: Prediction,
}

/// The forecast of the next 10 minutes at 1-minute steps by the model with the lowest
/// RMSE on the held-out tail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Prediction {
    /// The smallest forecast value.
    pub min: Number,
    /// The largest forecast value.
    pub max: Number,
    /// The mean of the forecast values.
    pub avg: Number,
    /// The forecast points.
    pub values: Vec<Point>,
    /// The chosen model's RMSE on the held-out tail.
    pub rmse: Number,
    /// The chosen model.
    pub model: String,
    /// Every model tried, with its RMSE.
    pub candidates: Vec<Candidate>,
    /// When it was computed.
    #[schema(format = DateTime)]
    pub computed_at: String,
}

/// One forecast point.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Point {
    /// Its time.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// The forecast value.
    pub value: Number,
    /// Lower bound of the 80 % prediction interval; absent when the forecast has no intervals.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub lower_80: Option<Number>,
    /// Upper bound of the 80 % prediction interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub upper_80: Option<Number>,
    /// Lower bound of the 95 % prediction interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub lower_95: Option<Number>,
    /// Upper bound of the 95 % prediction interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub upper_95: Option<Number>,
}

/// One model tried.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Candidate {
    /// The model.
    pub model: String,
    /// Its RMSE on the held-out tail; `null` when it could not be fitted.
    #[schema(required = true)]
    pub rmse: Option<Number>,
    /// Why it could not be fitted, or another remark.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub note: Option<String>,
}

impl Prediction {
    /// The body of a series' forecast.
    pub fn of(p: &slamon_domain::MetricForecastComputed) -> Self {
        Self {
            min: Number(p.min),
            max: Number(p.max),
            avg: Number(p.avg),
            values: p
                .points
                .iter()
                .enumerate()
                .map(|(k, pt)| {
                    // an interval per point, or none at all (events of schema v1)
                    let i = p.intervals.get(k).filter(|_| p.intervals.len() == p.points.len());
                    Point {
                        timestamp: rfc3339_ms(pt.ts_ms),
                        value: Number(pt.value),
                        lower_80: i.map(|i| Number(i.lower_80)),
                        upper_80: i.map(|i| Number(i.upper_80)),
                        lower_95: i.map(|i| Number(i.lower_95)),
                        upper_95: i.map(|i| Number(i.upper_95)),
                    }
                })
                .collect(),
            rmse: Number(p.rmse),
            model: p.model.clone(),
            candidates: p
                .candidates
                .iter()
                .map(|c| Candidate { model: c.model.clone(), rmse: c.rmse.map(Number), note: c.note.clone() })
                .collect(),
            computed_at: rfc3339_ms(p.computed_at_ms),
        }
    }
}

/// `GET /metrics/{id}/forecast-scores`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastScoresBody {
    /// The series' forecasts scored against the samples that arrived once their horizon had passed.
    pub forecast_scores: ForecastScores,
}

/// The forecast scorecard of one SLA metric.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastScores {
    /// Per model, every forecast scored since the first.
    pub models: Vec<ModelScoreBody>,
    /// The latest scored forecasts (at most 30), oldest first.
    pub recent: Vec<ScoredForecastBody>,
    /// Forecasts whose horizon has not passed yet.
    pub pending: usize,
    /// Forecasts dropped unscored (no sample came after their horizon while 20 newer ones did).
    pub dropped: u64,
}

impl ForecastScores {
    /// The body of a series' scorecard.
    pub fn of(s: &slamon_domain::scorecard::ForecastScoring) -> Self {
        Self {
            models: s.models.iter().map(ModelScoreBody::of).collect(),
            recent: s
                .recent
                .iter()
                .map(|f| ScoredForecastBody {
                    computed_at: rfc3339_ms(f.computed_at_ms),
                    score: ModelScoreBody::of(&slamon_domain::scorecard::ModelScore::of(f)),
                })
                .collect(),
            pending: s.pending.len(),
            dropped: s.dropped,
        }
    }
}

/// The scores of one model's forecasts (or of one forecast).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelScoreBody {
    /// The model.
    pub model: String,
    /// Forecasts scored.
    pub forecasts: u64,
    /// Forecast points with an observed value (the latest sample at or before the point, within 5 min).
    pub points: u64,
    /// Root-mean-square error over those points, in the series' units; `null` before any.
    #[schema(required = true)]
    pub rmse: Option<Number>,
    /// Share of the observed values inside the 80 % prediction interval (nominal 0.8); `null` without intervals.
    #[schema(required = true, minimum = 0, maximum = 1)]
    pub coverage_80: Option<f64>,
    /// Share inside the 95 % interval (nominal 0.95).
    #[schema(required = true, minimum = 0, maximum = 1)]
    pub coverage_95: Option<f64>,
}

impl ModelScoreBody {
    /// The body of a model's scores.
    pub fn of(m: &slamon_domain::scorecard::ModelScore) -> Self {
        let coverage = m.coverage();
        Self {
            model: m.model.clone(),
            forecasts: m.forecasts,
            points: m.points,
            rmse: m.rmse().map(Number),
            coverage_80: coverage.map(|c| c.0),
            coverage_95: coverage.map(|c| c.1),
        }
    }
}

/// One scored forecast.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScoredForecastBody {
    /// When it was computed.
    #[schema(format = DateTime)]
    pub computed_at: String,
    /// Its scores (`forecasts` is 1).
    #[serde(flatten)]
    pub score: ModelScoreBody,
}
