//! The pure domain of slamon.
//!
//! It owns metric identity ([`MetricId`]), SLA sets and their validation, the events
//! (facts, past tense), the read models and the one projection function that turns
//! events into read models, the SLA semantics (status, violation runs, future
//! violations) and the ports (traits) that the adapters implement. It knows no
//! runtime, broker, database or web framework.

#![deny(missing_docs)]

pub mod events;
pub mod labels;
pub mod liveness;
pub mod ports;
pub mod projection;
pub mod runner;
pub mod scorecard;
pub mod semantics;
pub mod sla;
pub mod time;
pub mod views;

pub use events::*;
pub use labels::{InvalidMetricId, Labels, MetricId, NAME_LABEL};
pub use ports::*;
pub use sla::{SlaEntry, SlaRange, SlaSetRejected};
pub use time::UnixMillis;
pub use views::*;

/// The Kafka topic (and embedded log) that holds every event.
pub const TOPIC: &str = "prometheusdata";
/// The consumer group of the live projector.
pub const PROJECTOR_GROUP: &str = "slamon-projector";
/// Where undecodable records go, with their offset and the reason.
pub const DLQ_TOPIC: &str = "prometheusdata.dlq";

/// The dead-letter topic of a topic: `<topic>.dlq`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}
/// The consumer group through which ETL instances share the series (SPEC §11).
pub const ETL_GROUP: &str = "slamon-etl";
/// Slots of the metric-id hash by default: the partitions of the ETL's coordination
/// topic, so at most this many ETL instances share the work.
pub const DEFAULT_ETL_SLOTS: u32 = 16;

/// The ETL's coordination topic of a topic: `<topic>.etl-slots` (its partitions are the
/// slots; nothing is written to it).
pub fn etl_slots_topic(topic: &str) -> String {
    format!("{topic}.etl-slots")
}

/// The aggregate key of SLA set events.
pub const SLA_KEY: &str = "sla";

/// One sample of a series: a timestamp in milliseconds since the epoch and a value
/// (any `f64`, NaN and ±Inf included, as Prometheus stores them).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The sample value.
    pub value: f64,
}

impl Sample {
    /// A sample at `ts_ms` (milliseconds since the epoch).
    pub fn new(ts_ms: i64, value: f64) -> Self {
        Self { ts_ms, value }
    }

    /// Its timestamp as an instant.
    pub fn at(&self) -> UnixMillis {
        UnixMillis(self.ts_ms)
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 text (UTC, milliseconds) of a timestamp in milliseconds.
pub fn rfc3339_ms(ts_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The seed's `YYYY-MM-DD HH:MM:SS` (UTC) text of a timestamp in milliseconds.
pub fn seed_time(ts_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts_ms).unwrap_or_default().format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(feature = "suite")]
pub mod suite;

/// Milliseconds of an RFC 3339 time.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}
