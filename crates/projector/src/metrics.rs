//! The projector's metrics.

use prometheus::{Gauge, IntCounter, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct ProjectorMetrics {
    pub consumed: IntCounter,
    pub applied: IntCounter,
    pub skipped: IntCounter,
    pub dead_lettered: IntCounter,
    pub retries: IntCounter,
    pub resubscribed: IntCounter,
    pub lag: IntGauge,
    /// Seconds since the last committed batch while records wait (0 when caught up).
    pub commit_age: Gauge,
}

impl ProjectorMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::with_opts(Opts::new(name, help))?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let lag = IntGauge::with_opts(Opts::new("projector_lag_records", "records after the committed positions"))?;
        registry.register(Box::new(lag.clone()))?;
        let commit_age = Gauge::with_opts(Opts::new(
            "projector_commit_age_seconds",
            "seconds since the projector last committed a batch while records wait (0 when caught up)",
        ))?;
        registry.register(Box::new(commit_age.clone()))?;
        Ok(Self {
            consumed: counter("projector_records_consumed_total", "records read from the event log")?,
            applied: counter("projector_events_applied_total", "events applied to the read models")?,
            skipped: counter("projector_events_skipped_total", "redelivered events skipped (already applied)")?,
            dead_lettered: counter(
                "projector_records_dead_lettered_total",
                "records sent to the dead-letter topic: undecodable, or refused for good by the read-model store",
            )?,
            retries: counter("projector_batch_retries_total", "batches retried because a backend was unavailable")?,
            resubscribed: counter(
                "projector_consumer_replaced_total",
                "consumers replaced because the group committed nothing while records waited",
            )?,
            lag,
            commit_age,
        })
    }

    /// Metrics registered nowhere (tests).
    pub fn unregistered() -> Self {
        Self::new(&Registry::new()).expect("fresh registry")
    }
}
