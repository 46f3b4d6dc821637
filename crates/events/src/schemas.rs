//! The schema files, compiled in: `schemas/<event>/vN.avsc`.

use std::sync::OnceLock;

use apache_avro::Schema;

pub const NAMESPACE: &str = "io.slamon.events";

/// One released version of one event's schema.
#[derive(Debug)]
pub struct SchemaFile {
    pub event_type: &'static str,
    pub dir: &'static str,
    pub version: u32,
    pub text: &'static str,
    parsed: OnceLock<Schema>,
}

impl SchemaFile {
    const fn new(event_type: &'static str, dir: &'static str, version: u32, text: &'static str) -> Self {
        Self { event_type, dir, version, text, parsed: OnceLock::new() }
    }

    /// The parsed schema. The files are checked by the tests, so a parse failure here
    /// is a bug in a released schema file.
    pub fn parsed(&self) -> &Schema {
        self.parsed.get_or_init(|| {
            Schema::parse_str(self.text).unwrap_or_else(|e| panic!("schemas/{}/v{}.avsc: {e}", self.dir, self.version))
        })
    }

    /// `io.slamon.events.<EventType>`: the record's full name.
    pub fn full_name(&self) -> String {
        format!("{NAMESPACE}.{}", self.event_type)
    }
}

macro_rules! schema {
    ($ty:literal, $dir:literal, $v:literal) => {
        SchemaFile::new($ty, $dir, $v, include_str!(concat!("../../../schemas/", $dir, "/v", $v, ".avsc")))
    };
}

/// Every released schema version, oldest first within each event.
pub static SCHEMAS: [SchemaFile; 7] = [
    schema!("MetricAggregatesComputed", "metric_aggregates_computed", 1),
    schema!("MetricForecastComputed", "metric_forecast_computed", 1),
    schema!("MetricForecastComputed", "metric_forecast_computed", 2),
    schema!("MetricMetadataComputed", "metric_metadata_computed", 1),
    schema!("SlaSamplesObserved", "sla_samples_observed", 1),
    schema!("SlaSetDefined", "sla_set_defined", 1),
    schema!("MetricRemoved", "metric_removed", 1),
];

/// The latest version of an event's schema: the one written.
pub fn latest(event_type: &str) -> Option<&'static SchemaFile> {
    SCHEMAS.iter().filter(|s| s.event_type == event_type).max_by_key(|s| s.version)
}

/// A released version of an event's schema.
pub fn version(event_type: &str, version: u32) -> Option<&'static SchemaFile> {
    SCHEMAS.iter().find(|s| s.event_type == event_type && s.version == version)
}

/// The latest schema of every event type, one per type (one subject each in the registry).
pub fn latest_all() -> impl Iterator<Item = &'static SchemaFile> {
    SCHEMAS.iter().filter(|s| latest(s.event_type).is_some_and(|l| l.version == s.version))
}
