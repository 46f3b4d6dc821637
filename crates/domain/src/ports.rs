//! Ports: what the services need from the outside world. The embedded default, Kafka,
//! MongoDB, Prometheus and the demo source implement them.

use std::time::Duration;

use async_trait::async_trait;

use crate::events::{Window, WindowAggregate};
use crate::labels::{Labels, MetricId};
use crate::views::{Collection, DocKey, Document, MetricFilter, MetricView, SlaSamplesView, SlaSetView};
use crate::Sample;

/// Errors of a port. `Unavailable` is retryable (the backend is down or slow);
/// the others are not.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The backend is down, unreachable, overloaded (HTTP 5xx/429) or timed out: retryable.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Data that cannot be encoded or decoded, e.g. a corrupt stored document: not retryable.
    #[error("invalid data: {0}")]
    Invalid(String),
    /// Any other failure (a rejected query, a client that cannot be built): not retryable.
    #[error("{0}")]
    Other(String),
}

impl PortError {
    /// Whether a retry may succeed: true only for [`PortError::Unavailable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, PortError::Unavailable(_))
    }
}

/// The result of every port operation.
pub type PortResult<T> = Result<T, PortError>;

/// Where a record sits in its log: Kafka's `(partition, offset)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The Kafka partition (always 0 in the embedded log, which has one).
    pub partition: i32,
    /// The record's offset within its partition, from 0.
    pub offset: i64,
}

impl Position {
    /// The position `offset` in `partition`.
    pub fn new(partition: i32, offset: i64) -> Self {
        Self { partition, offset }
    }
}

/// One record read from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Where the record sits: its partition and offset.
    pub position: Position,
    /// The record key: the event's aggregate key (the metric id, or `sla`).
    pub key: String,
    /// The record value as produced: an encoded event (Confluent wire format: magic byte, schema id, Avro).
    pub value: Vec<u8>,
    /// The record's timestamp in the log, in milliseconds since the Unix epoch (0 when the broker gives none).
    pub timestamp_ms: i64,
}

/// The read models as projected up to a position of the log, kept by a log whose older
/// records were deleted (the embedded log's retention): a replay starts from these
/// documents and reads the log from `next` on.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSnapshot {
    /// The first position the snapshot does not cover (partition 0 of a one-partition
    /// log): every event before it is folded into `documents`, and events at or after it
    /// may be too (the projection skips them as redeliveries).
    pub next: Position,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub taken_at_ms: i64,
    /// Every document of every collection.
    pub documents: Vec<Document>,
}

/// Whether `committed` (a group's next positions) reaches every position of `ends`: the
/// group has consumed everything appended before `ends` was read.
pub fn reaches(committed: &[Position], ends: &[Position]) -> bool {
    ends.iter().all(|end| {
        let at = committed.iter().find(|c| c.partition == end.partition).map_or(0, |c| c.offset);
        at >= end.offset
    })
}

/// The positions to commit after `records`: per partition, one past the highest offset.
pub fn next_positions(records: &[LogRecord]) -> Vec<Position> {
    let mut by_partition = std::collections::BTreeMap::new();
    for r in records {
        let next = by_partition.entry(r.position.partition).or_insert(0);
        *next = (*next).max(r.position.offset + 1);
    }
    by_partition.into_iter().map(|(p, o)| Position::new(p, o)).collect()
}

/// The append side of the event log. An append returns only once the records are
/// durable (acks=all on Kafka, committed to disk in the embedded log).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends `records`, `(key, value)` pairs, to `topic` and returns their positions in the same order;
    /// records of one key land in one partition and keep their order.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the log does not acknowledge every record in time; some may have
    /// been written anyway, so a retry can duplicate them.
    async fn append(&self, topic: &str, records: Vec<(String, Vec<u8>)>) -> PortResult<Vec<Position>>;
    /// A consumer of `topic` in consumer group `group`, starting at the group's
    /// committed positions (offset 0 for a new group).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the log cannot be reached; [`PortError::Other`] when the consumer
    /// cannot be created (e.g. a bad configuration).
    async fn consumer(&self, group: &str, topic: &str) -> PortResult<Box<dyn LogConsumer>>;
    /// How many members consumer group `group` has now; `None` when the log has no
    /// groups shared between processes (the embedded log: one process holds it).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the log cannot say within its timeout.
    async fn group_members(&self, group: &str) -> PortResult<Option<usize>> {
        let _ = group;
        Ok(None)
    }
    /// Per partition of `topic`, the position the next appended record gets. Empty when
    /// the log cannot tell (then nobody waits on it).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the log cannot be reached.
    async fn end_positions(&self, topic: &str) -> PortResult<Vec<Position>> {
        let _ = topic;
        Ok(Vec::new())
    }
    /// Per partition of `topic`, the next position consumer group `group` reads (what it
    /// committed; a partition it never committed is absent). Asking joins no group.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the log cannot be reached.
    async fn committed_positions(&self, group: &str, topic: &str) -> PortResult<Vec<Position>> {
        let _ = (group, topic);
        Ok(Vec::new())
    }
    /// The snapshot that stands for the records of `topic` the log no longer holds;
    /// `None` when it holds every record from offset 0 (Kafka: the topic keeps them all).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the log cannot be read.
    async fn snapshot(&self, topic: &str) -> PortResult<Option<LogSnapshot>> {
        let _ = topic;
        Ok(None)
    }
}

/// Where a consumer group stands: records after its committed positions, and the sum of
/// those positions (it moves whenever any member commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupProgress {
    /// Records after the group's committed positions, summed over the topic's partitions (0 when caught up).
    pub lag: u64,
    /// Sum of the group's committed positions (next offsets to read) over the topic's partitions.
    pub committed: u64,
}

/// A measurement of the group that runs on its own (see [`LogConsumer::lag_probe`]).
pub type LagProbe = std::pin::Pin<Box<dyn std::future::Future<Output = PortResult<GroupProgress>> + Send + 'static>>;

/// The read side of the event log: one consumer of a group. Positions are committed
/// explicitly (the next position to read, per partition).
#[async_trait]
pub trait LogConsumer: Send {
    /// Up to `max` records, waiting at most `wait` for the first. An empty batch is no
    /// failure; an error means this consumer cannot go on without help (a log that is
    /// briefly unreachable is waited for, not reported).
    ///
    /// # Errors
    /// Any [`PortError`] when the consumer cannot go on (see above); the caller recreates it.
    async fn poll(&mut self, max: usize, wait: Duration) -> PortResult<Vec<LogRecord>>;

    /// A number that changes whenever the partitions of this consumer may have changed
    /// (a rebalance): what it cached about the documents of its partitions is then no
    /// longer known to be current. A sole consumer keeps it at 0.
    fn assignment_epoch(&self) -> u64 {
        0
    }
    /// How long the consumer may go without polling before the group drops it (Kafka's
    /// `max.poll.interval.ms`: its partitions go to other members, which then write the
    /// same documents); `None` when nothing drops it (a sole consumer). A caller that
    /// cannot finish a batch in about half of it gives the batch up and polls again.
    fn max_poll_interval(&self) -> Option<Duration> {
        None
    }
    /// Commits `next` for the group: per partition, the next offset to read (see [`next_positions`]).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the log cannot be reached or refuses the commit (e.g. the partition
    /// was reassigned by a rebalance); the records after the last commit are then read again.
    async fn commit(&mut self, next: &[Position]) -> PortResult<()>;
    /// How many records remain after the committed positions (0 when caught up).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the log cannot be reached or cannot say within its timeout;
    /// [`PortError::Other`] when the measurement itself fails.
    async fn lag(&mut self) -> PortResult<u64>;
    /// [`LogConsumer::lag`], with the group's committed positions, as a future that does
    /// not borrow the consumer, so it can run while the consumer goes on (asking a broker
    /// can take seconds); `None` when the log cannot measure it apart: then call `lag`.
    fn lag_probe(&self) -> Option<LagProbe> {
        None
    }
}

/// The read models.
///
/// The `metrics`, `sla_sets` and `sla_samples` collections (SPEC §4), in MongoDB or the embedded
/// store. Documents are upserted whole under their [`DocKey`].
#[async_trait]
pub trait ReadModelStore: Send + Sync {
    /// Live (not removed) metrics matching the filter, sorted by id.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached or times out; a document that cannot be decoded is
    /// left out (see [`ReadModelStore::undecodable_documents`]).
    async fn metrics(&self, filter: &MetricFilter) -> PortResult<Vec<MetricView>>;
    /// The ids and labels of the live series `filter` selects, sorted by id: a listing
    /// that decodes no statistics, forecast or metadata (stores override the default,
    /// which lists whole documents).
    ///
    /// # Errors
    /// As [`ReadModelStore::metrics`].
    async fn series(&self, filter: &MetricFilter) -> PortResult<Vec<crate::views::SeriesItem>> {
        let metrics = self.metrics(filter).await?;
        Ok(metrics.into_iter().map(|m| crate::views::SeriesItem { id: m.id, labels: m.labels }).collect())
    }
    /// Documents by key, for the projector.
    /// One entry per key, in the order of `keys`; `None` where the document does not exist.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached or times out; a document that cannot be decoded is
    /// left out (see [`ReadModelStore::undecodable_documents`]).
    async fn load(&self, keys: &[DocKey]) -> PortResult<Vec<Option<Document>>>;
    /// Upsert documents in one batch.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached or times out; [`PortError::Invalid`]
    /// when a document cannot be encoded. Then none, or only some, of the documents may be written.
    async fn write(&self, docs: Vec<Document>) -> PortResult<()>;
    /// Every document of a collection, in id order (replay's diff, tests).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached or times out.
    async fn all(&self, collection: Collection) -> PortResult<Vec<Document>>;

    /// Documents this store could not decode since it was opened. Such a document never
    /// fails a call: lists leave it out and loads answer it as absent (the projection
    /// then rebuilds it from the next events, a replay from all of them); each one is
    /// logged with its key.
    fn undecodable_documents(&self) -> u64 {
        0
    }

    /// The [`MetricView`] of series `id`, removed or not; `None` when there is none.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached or times out; a document that cannot be decoded is
    /// left out (see [`ReadModelStore::undecodable_documents`]).
    async fn metric(&self, id: &MetricId) -> PortResult<Option<MetricView>> {
        match self.load(&[DocKey::Metric(*id)]).await?.pop().flatten() {
            Some(Document::Metric(m)) => Ok(Some(m)),
            _ => Ok(None),
        }
    }

    /// The SLA set with its history; `None` before the first
    /// [`SlaSetDefined`](crate::events::SlaSetDefined).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached or times out; a document that cannot be decoded is
    /// left out (see [`ReadModelStore::undecodable_documents`]).
    async fn sla_set(&self) -> PortResult<Option<SlaSetView>> {
        match self.load(&[DocKey::SlaSet]).await?.pop().flatten() {
            Some(Document::SlaSet(s)) => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    /// Every version of the SLA set, oldest first: the version documents, and the
    /// history a first-release current document still holds.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached or times out.
    async fn sla_set_history(&self) -> PortResult<Vec<crate::views::SlaSetVersion>> {
        let mut versions: std::collections::BTreeMap<u64, crate::views::SlaSetVersion> = Default::default();
        for doc in self.all(crate::views::Collection::SlaSets).await? {
            match doc {
                Document::SlaSetVersion(v) => {
                    versions.insert(v.set.version, v.set);
                }
                Document::SlaSet(s) => {
                    for v in s.history.into_iter().chain([s.current]) {
                        versions.entry(v.version).or_insert(v);
                    }
                }
                _ => {}
            }
        }
        Ok(versions.into_values().collect())
    }

    /// The recent raw samples of SLA series `id`; `None` when none were ever observed.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached or times out; a document that cannot be decoded is
    /// left out (see [`ReadModelStore::undecodable_documents`]).
    async fn sla_samples(&self, id: &MetricId) -> PortResult<Option<SlaSamplesView>> {
        match self.load(&[DocKey::SlaSamples(*id)]).await?.pop().flatten() {
            Some(Document::SlaSamples(s)) => Ok(Some(s)),
            _ => Ok(None),
        }
    }
}

/// Read models that can be rebuilt beside the live ones and then swapped in: what
/// `replay` needs of a store. MongoDB rebuilds into prefixed collections and renames
/// them over the live ones; the embedded store rebuilds into a file beside its own and
/// copies it in one write transaction.
#[async_trait]
pub trait RebuildableStore: ReadModelStore {
    /// Fresh, empty read models beside these; what an earlier unfinished rebuild left is
    /// dropped first.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the backend cannot be reached.
    async fn begin_rebuild(&self) -> PortResult<Box<dyn Rebuild>>;
}

/// A rebuild in progress (see [`RebuildableStore`]).
#[async_trait]
pub trait Rebuild: Send + Sync {
    /// The fresh read models the rebuild writes.
    fn target(&self) -> &dyn ReadModelStore;
    /// Replaces the live read models with the target's (readers see the old or the new
    /// models per collection, never a mix inside one) and drops the target.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached; collections swapped before the
    /// failure may stay swapped.
    async fn swap_in(self: Box<Self>) -> PortResult<()>;
    /// Drops the target; the live read models stay as they are.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached; the next
    /// [`RebuildableStore::begin_rebuild`] drops what is left.
    async fn discard(self: Box<Self>) -> PortResult<()>;
}

/// The series a source lists now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesList {
    /// Every series listed, sorted, without duplicates.
    pub series: Vec<Labels>,
    /// The source warned that the answer may be incomplete (Prometheus's `warnings`, e.g.
    /// from a remote-read or federated backend that failed): use what it lists, but a
    /// series missing from it is not gone.
    pub partial: bool,
}

/// A source of series: Prometheus, or the built-in demo.
#[async_trait]
pub trait MetricSource: Send + Sync {
    /// Every series the source has now.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the source is unreachable or answers 5xx/429; [`PortError::Other`]
    /// when it rejects the query or answers something that is not the Prometheus HTTP API.
    async fn series(&self) -> PortResult<SeriesList>;
    /// Every series with a sample since `start_ms` (milliseconds since the epoch): a
    /// longer lookback than [`MetricSource::series`], to know the series that stopped
    /// reporting lately. By default the same as `series`.
    ///
    /// # Errors
    /// As [`MetricSource::series`].
    async fn series_since(&self, start_ms: i64) -> PortResult<SeriesList> {
        let _ = start_ms;
        self.series().await
    }
    /// Window statistics at `at_ms` of every series named `metric_name`.
    /// One `(labels, aggregate)` per series with a sample in the window ending at `at_ms` (milliseconds
    /// since the Unix epoch).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the source is unreachable or answers 5xx/429; [`PortError::Other`]
    /// when it rejects the query or answers something that is not the Prometheus HTTP API.
    async fn window_stats(
        &self,
        metric_name: &str,
        window: Window,
        at_ms: i64,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>>;
    /// Window statistics at `at_ms` of `series`, all named `metric_name` (the share of
    /// the name's series one ETL instance owns): a row for each of them with a sample in
    /// the window; rows of other series of the name may come too (the caller keeps the
    /// ones it asked for). By default [`MetricSource::window_stats`] of the whole name,
    /// filtered.
    ///
    /// # Errors
    /// As [`MetricSource::window_stats`].
    async fn window_stats_of(
        &self,
        metric_name: &str,
        series: &[Labels],
        window: Window,
        at_ms: i64,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        let wanted: std::collections::HashSet<&Labels> = series.iter().collect();
        let mut rows = self.window_stats(metric_name, window, at_ms).await?;
        rows.retain(|(labels, _)| wanted.contains(labels));
        Ok(rows)
    }
    /// Raw samples of one series with timestamps in `(after_ms, at_ms]`, oldest first.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the source is unreachable or answers 5xx/429; [`PortError::Other`]
    /// when it rejects the query or answers something that is not the Prometheus HTTP API.
    async fn raw_samples(&self, series: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>>;
    /// Values of one series on a regular grid `start..=end` every `step_ms` (the
    /// evaluation of `query_range`), for the forecasting and metadata computations.
    /// Oldest first; a grid point with no sample within the lookback is left out, as `query_range` does.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the source is unreachable or answers 5xx/429; [`PortError::Other`]
    /// when it rejects the query or answers something that is not the Prometheus HTTP API.
    async fn range(&self, series: &Labels, start_ms: i64, end_ms: i64, step_ms: i64) -> PortResult<Vec<Sample>>;
    /// A short human name for logs.
    fn describe(&self) -> String;
    /// Answers of the source that came with warnings (possibly partial), since it was
    /// made: the ETL exports them.
    fn warnings(&self) -> u64 {
        0
    }

    /// Queries the source split into smaller ones since it was made, because an answer
    /// would have been too big (too many samples, too many points, a timeout): the ETL
    /// exports them.
    fn splits(&self) -> u64 {
        0
    }
}

/// Statistics of a window over raw samples: min, max, mean, sample std (ddof=1).
pub fn window_aggregate(window: Window, values: &[f64]) -> WindowAggregate {
    let n = values.len();
    if n == 0 {
        return WindowAggregate { window, min: None, max: None, avg: None, std_dev: None, samples: 0 };
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let avg = values.iter().sum::<f64>() / n as f64;
    let std_dev = (n > 1).then(|| {
        let ss: f64 = values.iter().map(|v| (v - avg) * (v - avg)).sum();
        (ss / (n as f64 - 1.0)).sqrt()
    });
    WindowAggregate { window, min: Some(min), max: Some(max), avg: Some(avg), std_dev, samples: n as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_aggregate_uses_sample_std() {
        // numpy.std([1,2,3,4], ddof=1) = 1.2909944487358056
        let a = window_aggregate(Window::H1, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(a.min, Some(1.0));
        assert_eq!(a.max, Some(4.0));
        assert_eq!(a.avg, Some(2.5));
        assert!((a.std_dev.unwrap() - 1.2909944487358056).abs() < 1e-15);
        assert_eq!(a.samples, 4);
        let one = window_aggregate(Window::H1, &[7.0]);
        assert_eq!(one.std_dev, None);
        assert_eq!(window_aggregate(Window::H3, &[]).samples, 0);
    }
}
