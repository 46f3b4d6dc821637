//! The JSON bodies of the SLA manager's REST API (SPEC §6), as types: the handlers
//! answer them and the OpenAPI contract describes them. Numbers that may be non-finite
//! are [`Number`]s (`"NaN"`, `"+Inf"`, `"-Inf"`); `start_time` and `end_time` are the
//! seed's `YYYY-MM-DD HH:MM:SS` (UTC); durations and times in violation are minutes.

use serde::{Deserialize, Serialize};
use slamon_domain::semantics::{FutureKind, Run, SlaState, StatusReport, ViolationsReport};
use slamon_domain::{seed_time, Labels, SlaEntry, SlaSetVersion, Window};
use slamon_query_api::bodies::Oid;
use slamon_web::openapi::Number;
use utoipa::ToSchema;

/// One SLA of a set, as `GET /slaset` answers it (and a PUT takes it back).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlaEntryBody {
    /// The series' metric id.
    #[serde(rename = "_id")]
    pub oid: Oid,
    /// The series' full label set, `__name__` included.
    #[schema(value_type = std::collections::BTreeMap<String, String>, example = json!({"__name__": "cpuTemp", "instance": "demo:9100", "job": "demo", "sensor": "package"}))]
    pub name: Labels,
    /// The allowed range, bounds included.
    pub range: RangeBody,
    /// How long a violation lasts before the SLA fires, in minutes.
    #[serde(rename = "for")]
    pub for_minutes: u32,
}

/// The allowed range of an SLA, in the series' units, bounds included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RangeBody {
    /// The lower bound.
    pub min: f64,
    /// The upper bound (at least `min`).
    pub max: f64,
}

impl SlaEntryBody {
    /// The body of an entry.
    pub fn of(e: &SlaEntry) -> Self {
        Self {
            oid: Oid { oid: e.id().to_string() },
            name: e.labels.clone(),
            range: RangeBody { min: e.range.min, max: e.range.max },
            for_minutes: e.for_minutes,
        }
    }

    /// The body of a set.
    pub fn set(v: &SlaSetVersion) -> Vec<Self> {
        v.entries.iter().map(Self::of).collect()
    }
}

/// One SLA of a `PUT /slaset` body. The set must have SLAMON_SLA_SET_SIZE entries (5 by
/// default), each naming a series the metrics read model lists, at most once.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaEntryInput {
    /// The series' full label set, `__name__` included (a label with an empty value is no
    /// label, as in Prometheus).
    #[schema(schema_with = label_set_input)]
    pub name: Labels,
    /// The allowed range, bounds included.
    pub range: RangeInput,
    /// How long a violation lasts before the SLA fires, in whole minutes (1 to 1440).
    #[serde(rename = "for")]
    #[schema(minimum = 1, maximum = 1440)]
    pub for_minutes: u64,
    /// Ignored, whatever its value (what `GET /slaset` answers can be PUT back).
    #[serde(rename = "_id", default)]
    #[schema(schema_with = any_value)]
    pub oid: Option<serde_json::Value>,
}

/// The schema of any JSON value.
fn any_value() -> utoipa::openapi::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
        .description(Some("Ignored, whatever its value (what `GET /slaset` answers can be PUT back)"))
        .build()
}

/// The schema of a label set in a PUT: an object of string label values, not empty.
fn label_set_input() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(ObjectBuilder::new().schema_type(Type::String).into())))
        .min_properties(Some(1))
        .description(Some(
            "The series' full label set, `__name__` included (a label with an empty value is no label, as in Prometheus)",
        ))
        .build()
}

/// The allowed range of an SLA in a PUT: finite numbers, `min` at most `max`, no other key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeInput {
    /// The lower bound.
    pub min: f64,
    /// The upper bound.
    pub max: f64,
}

/// A PUT's answer: what happened and the version of the set now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PutAnswer {
    /// `SLA set created`, `SLA set updated`, `SLA set unchanged`, or (202) that it is
    /// recorded and not yet visible.
    #[schema(example = "SLA set created")]
    pub message: String,
    /// The version of the set now (also in `X-Slaset-Version` and `ETag`).
    #[schema(minimum = 1)]
    pub version: u64,
}

/// One version of `GET /slaset/history`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryItem {
    /// The version.
    #[schema(minimum = 1)]
    pub version: u64,
    /// When it was defined.
    #[schema(format = DateTime)]
    pub defined_at: String,
    /// The set.
    pub slaset: Vec<SlaEntryBody>,
}

/// The state of an SLA, like a Prometheus alerting rule's.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No fresh sample: the series is not reporting.
    Absent,
    /// The latest sample is within the range.
    Inactive,
    /// The latest sample violates, for less than `for`.
    Pending,
    /// The latest sample's violation has lasted at least `for`.
    Firing,
}

impl From<SlaState> for State {
    fn from(s: SlaState) -> Self {
        match s {
            SlaState::Absent => State::Absent,
            SlaState::Inactive => State::Inactive,
            SlaState::Pending => State::Pending,
            SlaState::Firing => State::Firing,
        }
    }
}

/// One SLA of `GET /status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusItem {
    /// The series' full label set.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub name: Labels,
    /// Its state now.
    pub status: State,
    /// The state in the seed's words.
    #[schema(example = "Actual value [41.5] in (30, 75)")]
    pub description: String,
    /// The last three sample values, oldest first (fewer when fewer exist).
    #[serde(rename = "last-values")]
    #[schema(max_items = 3)]
    pub last_values: Vec<Number>,
}

impl StatusItem {
    /// The body of an SLA's status.
    pub fn of(e: &SlaEntry, st: StatusReport) -> Self {
        Self {
            name: e.labels.clone(),
            status: st.state.into(),
            description: st.description,
            last_values: st.last_values.into_iter().map(Number).collect(),
        }
    }
}

/// The violations of one window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowViolations {
    /// Runs that reached `for` and ended in the window.
    #[schema(minimum = 0)]
    pub n: u64,
    /// Minutes in violation in the window.
    #[schema(minimum = 0)]
    pub time: f64,
}

/// One violation run: consecutive violating samples (its duration is end − start).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunBody {
    /// Its first sample (`YYYY-MM-DD HH:MM:SS`, UTC).
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$", example = "2024-05-01 12:00:00")]
    pub start_time: String,
    /// Its last sample (`YYYY-MM-DD HH:MM:SS`, UTC).
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$", example = "2024-05-01 12:07:00")]
    pub end_time: String,
    /// End − start, in minutes.
    #[schema(minimum = 0)]
    pub duration: f64,
    /// The mean of its samples.
    pub avg_value: Number,
    /// The largest of its samples.
    pub max_value: Number,
    /// The smallest of its samples.
    pub min_value: Number,
}

impl RunBody {
    /// The body of a run.
    pub fn of(r: &Run) -> Self {
        Self {
            start_time: seed_time(r.start.millis()),
            end_time: seed_time(r.end.millis()),
            duration: r.duration_minutes(),
            avg_value: Number(r.avg),
            max_value: Number(r.max),
            min_value: Number(r.min),
        }
    }
}

/// One SLA of `GET /violations`: the runs that lasted at least `for`, over 1h, 3h and 12h.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ViolationsItem {
    /// The series' full label set.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub name: Labels,
    /// The last hour.
    #[serde(rename = "1h")]
    pub h1: WindowViolations,
    /// The last 3 hours.
    #[serde(rename = "3h")]
    pub h3: WindowViolations,
    /// The last 12 hours.
    #[serde(rename = "12h")]
    pub h12: WindowViolations,
    /// The violations that ended in the last 12 hours.
    pub violation_list: Vec<RunBody>,
}

impl ViolationsItem {
    /// The body of an SLA's violations.
    pub fn of(e: &SlaEntry, r: &ViolationsReport) -> Self {
        let window = |w: Window| {
            r.windows
                .iter()
                .find(|(x, _)| *x == w)
                .map(|(_, v)| WindowViolations { n: v.n as u64, time: v.time })
                .unwrap_or(WindowViolations { n: 0, time: 0.0 })
        };
        Self {
            name: e.labels.clone(),
            h1: window(Window::H1),
            h3: window(Window::H3),
            h12: window(Window::H12),
            violation_list: r.list.iter().map(RunBody::of).collect(),
        }
    }
}

/// How a predicted violation relates to what was observed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum Outlook {
    /// Firing now, and forecast to go on.
    #[serde(rename = "Was already firing, continuing firing")]
    ContinuingFiring,
    /// Violating now, short of `for`; with the forecast it reaches `for`.
    #[serde(rename = "Was pending, will fire")]
    PendingWillFire,
    /// Starts in the forecast and lasts at least `for` there.
    #[serde(rename = "Will fire")]
    WillFire,
    /// Does not reach `for` within the forecast.
    #[serde(rename = "Will be pending")]
    WillBePending,
}

impl From<FutureKind> for Outlook {
    fn from(k: FutureKind) -> Self {
        match k {
            FutureKind::ContinuingFiring => Outlook::ContinuingFiring,
            FutureKind::PendingWillFire => Outlook::PendingWillFire,
            FutureKind::WillFire => Outlook::WillFire,
            FutureKind::WillBePending => Outlook::WillBePending,
        }
    }
}

/// A violation run that reaches into the forecast.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FutureRun {
    /// Its first sample, observed or forecast (`YYYY-MM-DD HH:MM:SS`, UTC).
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")]
    pub start_time: String,
    /// Its last sample (`YYYY-MM-DD HH:MM:SS`, UTC).
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")]
    pub end_time: String,
    /// End − start, in minutes.
    #[schema(minimum = 0)]
    pub duration: f64,
    /// The mean of its samples.
    pub avg_value: Number,
    /// The largest of its samples.
    pub max_value: Number,
    /// The smallest of its samples.
    pub min_value: Number,
    /// How it relates to what was observed.
    pub description: Outlook,
    /// The probability, from the forecast's distribution, that the series leaves the range at one
    /// of the forecast points (`semantics::breach_probability`); `null` when the forecast has no
    /// prediction intervals.
    #[schema(required = true, minimum = 0, maximum = 1)]
    pub probability: Option<f64>,
}

impl FutureRun {
    /// The body of a predicted run, with the probability of the breach when known.
    pub fn of(r: &Run, kind: FutureKind, probability: Option<f64>) -> Self {
        let run = RunBody::of(r);
        Self {
            start_time: run.start_time,
            end_time: run.end_time,
            duration: run.duration,
            avg_value: run.avg_value,
            max_value: run.max_value,
            min_value: run.min_value,
            description: kind.into(),
            probability,
        }
    }
}

/// One SLA of `GET /future-violations`: its predicted violations, or why there are none.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum FutureItem {
    /// The series has a forecast.
    Predicted {
        /// The series' full label set.
        #[schema(value_type = std::collections::BTreeMap<String, String>)]
        name: Labels,
        /// The violation runs that end after now.
        violations: Vec<FutureRun>,
        /// The forecast's RMSE on its held-out tail.
        prediction_rmse: Number,
        /// The probability that the series leaves the range at one of the forecast points, whether
        /// or not the point forecast does; `null` when the forecast has no prediction intervals.
        #[schema(required = true, minimum = 0, maximum = 1)]
        breach_probability: Option<f64>,
    },
    /// The series has no forecast yet.
    Unavailable {
        /// The series' full label set.
        #[schema(value_type = std::collections::BTreeMap<String, String>)]
        name: Labels,
        /// `Prediction not available`.
        #[schema(example = "Prediction not available")]
        error: String,
    },
}

/// One SLA of `GET /forecast-scores`: how its series' forecasts fared once their horizon had passed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastScoresItem {
    /// The series' full label set.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub name: Labels,
    /// Per model, every forecast scored since the first: RMSE and interval coverage.
    pub models: Vec<slamon_query_api::ModelScoreBody>,
    /// The breaches the latest scored forecasts (at most 30) predicted against the ones observed, for the
    /// SLA's current range.
    pub breaches: BreachScoresBody,
}

/// Predicted against observed breaches of the range (a forecast predicts one when a point is outside the
/// range; one is observed when a value observed at a forecast point is).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BreachScoresBody {
    /// Forecasts scored.
    pub forecasts: u64,
    /// Made while the series was already outside the range (in none of the counts below).
    pub ongoing: u64,
    /// Predicted and observed.
    pub hits: u64,
    /// Predicted, not observed.
    pub false_alarms: u64,
    /// Observed, not predicted.
    pub misses: u64,
    /// Neither.
    pub quiet: u64,
    /// Of the hits, the mean minutes from the forecast to the first value observed outside the range;
    /// `null` without hits.
    #[schema(required = true)]
    pub mean_lead_minutes: Option<f64>,
}

impl From<slamon_domain::scorecard::BreachScores> for BreachScoresBody {
    fn from(b: slamon_domain::scorecard::BreachScores) -> Self {
        Self {
            forecasts: b.forecasts,
            ongoing: b.ongoing,
            hits: b.hits,
            false_alarms: b.false_alarms,
            misses: b.misses,
            quiet: b.quiet,
            mean_lead_minutes: b.mean_lead_minutes,
        }
    }
}
