//! The embedded log's retention. Replay starts at offset 0, so the log cannot simply drop
//! old records: once its oldest record is older than the retention, the read models as
//! the projector has committed them become the log's snapshot and the records they cover
//! are deleted, in one transaction ([`EmbeddedLog::compact`]). A replay then rebuilds from
//! the snapshot and the records after it, and the log's file stops growing (redb reuses
//! the pages of deleted records).
//!
//! The same trade-off as Kafka Streams' changelog snapshots: what the snapshot holds was
//! projected by the code that ran then, so a replay after a change of the projection
//! re-projects only the records after the snapshot.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, Registry};
use slamon_domain::{Collection, PortResult, ReadModelStore};
use tokio_util::sync::CancellationToken;

use crate::EmbeddedLog;

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// The offset the new snapshot covers up to (exclusive): the projector's committed position.
    pub next: u64,
    /// Documents in the snapshot.
    pub documents: usize,
    /// Records deleted.
    pub deleted: u64,
}

/// Keeps the embedded log of `topic` bounded while replay stays correct.
pub struct LogRetention {
    log: EmbeddedLog,
    store: Arc<dyn ReadModelStore>,
    topic: String,
    group: String,
    retention: Duration,
    snapshots: IntCounter,
    failures: IntCounter,
    deleted: IntCounter,
    records: IntGauge,
    oldest_age: IntGauge,
}

impl LogRetention {
    /// Retention of `topic` in `log`, whose records are projected into `store` by consumer
    /// group `group`; a record older than `retention` starts a compaction. Registers
    /// `slamon_embedded_log_*` in `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered.
    pub fn new(
        log: EmbeddedLog,
        store: Arc<dyn ReadModelStore>,
        topic: &str,
        group: &str,
        retention: Duration,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let snapshots = IntCounter::new(
            "slamon_embedded_log_snapshots_total",
            "Snapshots of the read models that replaced the embedded log's older records",
        )?;
        let failures = IntCounter::new(
            "slamon_embedded_log_snapshot_failures_total",
            "Compactions of the embedded log that failed",
        )?;
        let deleted = IntCounter::new(
            "slamon_embedded_log_records_deleted_total",
            "Records of the embedded log deleted after a snapshot covered them",
        )?;
        let records = IntGauge::new("slamon_embedded_log_records", "Records the embedded log holds")?;
        let oldest_age = IntGauge::new(
            "slamon_embedded_log_oldest_record_age_seconds",
            "Age of the oldest record the embedded log holds (0 when it holds none)",
        )?;
        for c in [&snapshots, &failures, &deleted] {
            registry.register(Box::new(c.clone()))?;
        }
        for g in [&records, &oldest_age] {
            registry.register(Box::new(g.clone()))?;
        }
        Ok(Self {
            log,
            store,
            topic: topic.to_owned(),
            group: group.to_owned(),
            retention,
            snapshots,
            failures,
            deleted,
            records,
            oldest_age,
        })
    }

    /// Compacts the log when its oldest record is older than the retention and the
    /// projector has committed past it; `None` when there was nothing to do.
    ///
    /// # Errors
    /// When the log or the store cannot be read or the log cannot be written; nothing
    /// changed then.
    pub async fn compact_if_due(&self) -> PortResult<Option<Compaction>> {
        let state = self.log.state(&self.topic).await?;
        self.records.set((state.end - state.first) as i64);
        let now = slamon_domain::now_ms();
        let age_ms = state.oldest_ms.map(|t| (now - t).max(0)).unwrap_or(0);
        self.oldest_age.set(age_ms / 1000);
        if state.oldest_ms.is_none() || Duration::from_millis(age_ms as u64) < self.retention {
            return Ok(None);
        }
        // the committed position first: every event before it is in the documents read after
        let next = self.log.committed(&self.group, &self.topic).await?.min(state.end);
        if next <= state.first {
            tracing::warn!(
                topic = self.topic,
                group = self.group,
                committed = next,
                "the embedded log is past its retention but the projector has not committed past its oldest record"
            );
            return Ok(None);
        }
        let mut documents = Vec::new();
        for c in Collection::ALL {
            documents.extend(self.store.all(c).await?);
        }
        let count = documents.len();
        let deleted = self.log.compact(&self.topic, next, documents).await?;
        self.snapshots.inc();
        self.deleted.inc_by(deleted);
        self.records.set((state.end - next) as i64);
        let state = self.log.state(&self.topic).await?;
        self.oldest_age.set(state.oldest_ms.map(|t| (slamon_domain::now_ms() - t).max(0) / 1000).unwrap_or(0));
        tracing::info!(topic = self.topic, next, documents = count, deleted, "embedded log compacted into a snapshot");
        Ok(Some(Compaction { next, documents: count, deleted }))
    }

    /// Checks every quarter of the retention (between 1 s and 10 min) until `cancel`; a
    /// failed compaction is logged, counted and tried again at the next check.
    pub async fn run(self, cancel: CancellationToken) {
        let every = (self.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.compact_if_due().await {
                self.failures.inc();
                tracing::warn!(topic = self.topic, error = %e, "cannot compact the embedded log now");
            }
        }
    }
}
