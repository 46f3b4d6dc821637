//! Read models: what the projection builds and the APIs read (SPEC §4).

use serde::{Deserialize, Serialize};

use crate::events::{MetricForecastComputed, MetricMetadataComputed, WindowAggregate};
use crate::labels::{Labels, MetricId};
use crate::ports::Position;
use crate::sla::SlaEntry;
use crate::Sample;

/// Collection names, shared by every store.
pub const METRICS: &str = "metrics";
pub const SLA_SETS: &str = "sla_sets";
pub const SLA_SAMPLES: &str = "sla_samples";
/// The id of the one SLA set document.
pub const SLA_SET_DOC_ID: &str = "current";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Collection {
    Metrics,
    SlaSets,
    SlaSamples,
}

impl Collection {
    pub const ALL: [Collection; 3] = [Collection::Metrics, Collection::SlaSets, Collection::SlaSamples];

    pub fn name(self) -> &'static str {
        match self {
            Collection::Metrics => METRICS,
            Collection::SlaSets => SLA_SETS,
            Collection::SlaSamples => SLA_SAMPLES,
        }
    }
}

/// Which read-model document: the key of every load and write. Its collection and its
/// document id (the 24 hex digits of a [`MetricId`], or [`SLA_SET_DOC_ID`]) follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKey {
    /// The [`MetricView`] of one series, in [`METRICS`].
    Metric(MetricId),
    /// The [`SlaSamplesView`] of one SLA series, in [`SLA_SAMPLES`].
    SlaSamples(MetricId),
    /// The one [`SlaSetView`], in [`SLA_SETS`].
    SlaSet,
}

impl DocKey {
    /// The collection that holds the document.
    pub fn collection(self) -> Collection {
        match self {
            DocKey::Metric(_) => Collection::Metrics,
            DocKey::SlaSamples(_) => Collection::SlaSamples,
            DocKey::SlaSet => Collection::SlaSets,
        }
    }

    /// The document's id inside its collection: a metric id's 24 hex digits, or
    /// [`SLA_SET_DOC_ID`].
    pub fn doc_id(self) -> String {
        match self {
            DocKey::Metric(id) | DocKey::SlaSamples(id) => id.to_string(),
            DocKey::SlaSet => SLA_SET_DOC_ID.to_owned(),
        }
    }
}

impl std::fmt::Display for DocKey {
    /// `<collection>/<doc id>`, e.g. `metrics/2b60fd52f746a97626ce6d0f`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.collection().name(), self.doc_id())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValuesView {
    pub computed_at_ms: i64,
    pub windows: Vec<WindowAggregate>,
}

/// One series: its labels, latest window statistics, forecast and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricView {
    pub id: MetricId,
    pub labels: Labels,
    pub removed: bool,
    pub values: Option<ValuesView>,
    pub prediction: Option<MetricForecastComputed>,
    pub metadata: Option<MetricMetadataComputed>,
    /// The last event applied; a redelivered event at or before it is skipped.
    pub applied: Position,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSetVersion {
    pub version: u64,
    pub defined_at_ms: i64,
    pub entries: Vec<SlaEntry>,
}

/// The current SLA set and every earlier version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSetView {
    pub current: SlaSetVersion,
    /// Every version, oldest first (the current one last).
    pub history: Vec<SlaSetVersion>,
    pub applied: Position,
}

/// The recent raw samples of one SLA metric, oldest first, one per timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSamplesView {
    pub id: MetricId,
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub applied: Position,
}

/// One read-model document. (Variants differ in size; documents are built once per
/// event and written, so boxing would only add allocations.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Document {
    Metric(MetricView),
    SlaSet(SlaSetView),
    SlaSamples(SlaSamplesView),
}

impl Document {
    /// The key the document is stored under.
    pub fn key(&self) -> DocKey {
        match self {
            Document::Metric(m) => DocKey::Metric(m.id),
            Document::SlaSet(_) => DocKey::SlaSet,
            Document::SlaSamples(s) => DocKey::SlaSamples(s.id),
        }
    }

    pub fn applied(&self) -> Position {
        match self {
            Document::Metric(m) => m.applied,
            Document::SlaSet(s) => s.applied,
            Document::SlaSamples(s) => s.applied,
        }
    }
}

/// A filter on the metrics list (`GET /metrics?name=&match=&limit=&offset=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricFilter {
    pub name: Option<String>,
    pub matchers: Vec<(String, String)>,
    pub limit: Option<usize>,
    pub offset: usize,
}

impl MetricFilter {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.name.as_deref().is_none_or(|n| labels.name() == n)
            && self.matchers.iter().all(|(k, v)| labels.get(k) == Some(v.as_str()))
    }

    /// Applies `offset` and `limit` to an already filtered, sorted list.
    pub fn page<T>(&self, items: Vec<T>) -> Vec<T> {
        let it = items.into_iter().skip(self.offset);
        match self.limit {
            Some(l) => it.take(l).collect(),
            None => it.collect(),
        }
    }
}
