//! Read models: what the projection builds and the APIs read (SPEC §4).

use serde::{Deserialize, Serialize};

use crate::events::{MetricForecastComputed, MetricMetadataComputed, WindowAggregate};
use crate::labels::{Labels, MetricId};
use crate::ports::Position;
use crate::sla::SlaEntry;
use crate::time::UnixMillis;
use crate::Sample;

/// Collection names, shared by every store.
pub const METRICS: &str = "metrics";
/// The collection of the one [`SlaSetView`].
pub const SLA_SETS: &str = "sla_sets";
/// The collection of the [`SlaSamplesView`]s, one per SLA series.
pub const SLA_SAMPLES: &str = "sla_samples";
/// The id of the one SLA set document.
pub const SLA_SET_DOC_ID: &str = "current";
/// The document id of an SLA set version starts with this.
pub const SLA_SET_VERSION_ID_PREFIX: &str = "version-";

/// A read-model collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Collection {
    /// `metrics`: one [`MetricView`] per series.
    Metrics,
    /// `sla_sets`: the one [`SlaSetView`].
    SlaSets,
    /// `sla_samples`: one [`SlaSamplesView`] per SLA series.
    SlaSamples,
}

impl Collection {
    /// Every collection.
    pub const ALL: [Collection; 3] = [Collection::Metrics, Collection::SlaSets, Collection::SlaSamples];

    /// The collection's name in the store, e.g. `metrics`.
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
    /// One version of the SLA set ([`SlaSetVersionView`]), in [`SLA_SETS`] beside the
    /// current one: the history, a document per version, so no document grows with it.
    SlaSetVersion(u64),
}

impl DocKey {
    /// The collection that holds the document.
    pub fn collection(self) -> Collection {
        match self {
            DocKey::Metric(_) => Collection::Metrics,
            DocKey::SlaSamples(_) => Collection::SlaSamples,
            DocKey::SlaSet | DocKey::SlaSetVersion(_) => Collection::SlaSets,
        }
    }

    /// The document's id inside its collection: a metric id's 24 hex digits,
    /// [`SLA_SET_DOC_ID`], or `version-` and the version in 20 digits (so ids sort as
    /// versions do).
    pub fn doc_id(self) -> String {
        match self {
            DocKey::Metric(id) | DocKey::SlaSamples(id) => id.to_string(),
            DocKey::SlaSet => SLA_SET_DOC_ID.to_owned(),
            DocKey::SlaSetVersion(v) => format!("{SLA_SET_VERSION_ID_PREFIX}{v:020}"),
        }
    }
}

impl std::fmt::Display for DocKey {
    /// `<collection>/<doc id>`, e.g. `metrics/2b60fd52f746a97626ce6d0f`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.collection().name(), self.doc_id())
    }
}

/// The latest window statistics of a series, from its last
/// [`MetricAggregatesComputed`](crate::events::MetricAggregatesComputed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValuesView {
    /// When they were computed, in milliseconds since the Unix epoch.
    pub computed_at_ms: i64,
    /// One aggregate per window, as the event carried them (1h, 3h, 12h).
    pub windows: Vec<WindowAggregate>,
}

/// One series: its labels, latest window statistics, forecast and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricView {
    /// The series' metric id, also the document id.
    pub id: MetricId,
    /// Full label set of the series, `__name__` included.
    pub labels: Labels,
    /// The series disappeared from the source ([`MetricRemoved`](crate::events::MetricRemoved)); any later
    /// event of the series clears it. Removed series are left out of the metrics list.
    pub removed: bool,
    /// The latest window statistics; `None` until the first
    /// [`MetricAggregatesComputed`](crate::events::MetricAggregatesComputed).
    pub values: Option<ValuesView>,
    /// The latest forecast; `None` unless the series is, or was, an SLA metric with enough history.
    pub prediction: Option<MetricForecastComputed>,
    /// The latest metadata; `None` until the first hourly [`MetricMetadataComputed`].
    pub metadata: Option<MetricMetadataComputed>,
    /// The last event applied; a redelivered event at or before it is skipped.
    pub applied: Position,
}

/// One version of the SLA set, from one [`SlaSetDefined`](crate::events::SlaSetDefined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSetVersion {
    /// Its version number, from 1.
    pub version: u64,
    /// When its event was produced (`occurred_at`), in milliseconds since the Unix epoch.
    pub defined_at_ms: i64,
    /// Its SLAs, in the order they were defined.
    pub entries: Vec<SlaEntry>,
}

/// The current SLA set (every version is a document of its own,
/// [`SlaSetVersionView`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSetView {
    /// The latest version.
    pub current: SlaSetVersion,
    /// The versions the first release kept in this document, oldest first; empty in
    /// documents written since (read on, so no history is lost before a replay).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<SlaSetVersion>,
    /// The last event applied; a redelivered event at or before it is skipped.
    pub applied: Position,
    /// When each entry of `current` (same index) entered the set, in milliseconds since the
    /// Unix epoch: the definition time of the first of the versions in a row that held an
    /// SLA of its series. Empty in documents written before it was kept
    /// ([`SlaSetView::entered_at`] then gives the version's own time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entered_at_ms: Vec<i64>,
}

impl SlaSetView {
    /// When the `i`-th entry of the current version entered the set; the version's
    /// definition time when the document does not say.
    pub fn entered_at(&self, i: usize) -> UnixMillis {
        UnixMillis(self.entered_at_ms.get(i).copied().unwrap_or(self.current.defined_at_ms))
    }
}

/// One version of the SLA set, a document of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSetVersionView {
    /// The version.
    pub set: SlaSetVersion,
    /// The event that defined it.
    pub applied: Position,
}

/// The recent raw samples of one SLA metric, oldest first, one per timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSamplesView {
    /// The series' metric id, also the document id.
    pub id: MetricId,
    /// Full label set of the series, `__name__` included.
    pub labels: Labels,
    /// Raw samples from the last event's `window_start_ms` on, sorted by timestamp, one per timestamp
    /// (a later value replaces an earlier one); empty after [`MetricRemoved`](crate::events::MetricRemoved).
    pub samples: Vec<Sample>,
    /// The series' forecasts, kept until their horizon has passed and then scored against these
    /// samples (the forecast scorecard); empty in documents of the first releases.
    #[serde(default)]
    pub scoring: crate::scorecard::ForecastScoring,
    /// The last event applied; a redelivered event at or before it is skipped.
    pub applied: Position,
}

/// One read-model document. (Variants differ in size; documents are built once per
/// event and written, so boxing would only add allocations.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Document {
    /// A series' view, in `metrics`.
    Metric(MetricView),
    /// The SLA set, in `sla_sets`.
    SlaSet(SlaSetView),
    /// An SLA series' samples, in `sla_samples`.
    SlaSamples(SlaSamplesView),
    /// One version of the SLA set, in `sla_sets`.
    SlaSetVersion(SlaSetVersionView),
}

impl Document {
    /// The key the document is stored under.
    pub fn key(&self) -> DocKey {
        match self {
            Document::Metric(m) => DocKey::Metric(m.id),
            Document::SlaSet(_) => DocKey::SlaSet,
            Document::SlaSamples(s) => DocKey::SlaSamples(s.id),
            Document::SlaSetVersion(v) => DocKey::SlaSetVersion(v.set.version),
        }
    }

    /// The position of the last event applied to the document.
    pub fn applied(&self) -> Position {
        match self {
            Document::Metric(m) => m.applied,
            Document::SlaSet(s) => s.applied,
            Document::SlaSamples(s) => s.applied,
            Document::SlaSetVersion(v) => v.applied,
        }
    }
}

/// One series of a listing: what `GET /metrics` shows, without its statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesItem {
    /// The series' metric id.
    pub id: MetricId,
    /// Its full label set, `__name__` included.
    pub labels: Labels,
}

/// A filter on the metrics list (`GET /metrics?name=&match=&after=&limit=&offset=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricFilter {
    /// Keep only series whose `__name__` equals this (`?name=`); `None` for any name.
    pub name: Option<String>,
    /// `(label, value)` pairs a series must all have, exact match (`?match=<label>=<value>`);
    /// an empty value matches the series without the label, as Prometheus's `label=""`
    /// (a label with an empty value is no label).
    pub matchers: Vec<(String, String)>,
    /// At most this many items after `offset` (`?limit=`); `None` for no limit.
    pub limit: Option<usize>,
    /// Items to skip first (`?offset=`).
    pub offset: usize,
    /// Only series whose id sorts after this one (`?after=`: the last id of the previous
    /// page, a cursor that stays right while series come and go).
    pub after: Option<MetricId>,
}

impl MetricFilter {
    /// Whether `labels` satisfy `name` and every matcher; paging is [`MetricFilter::page`]'s.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.name.as_deref().is_none_or(|n| labels.name() == n)
            && self.matchers.iter().all(|(k, v)| labels.get(k).unwrap_or_default() == v)
    }

    /// Whether the series `id` with `labels` is after the cursor and [`MetricFilter::matches`].
    pub fn selects(&self, id: &MetricId, labels: &Labels) -> bool {
        self.after.is_none_or(|after| *id > after) && self.matches(labels)
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
