//! The ETL's own metrics, exported on 8008 (the seed's `etl_executiontime_*` gauges
//! with label `metric_name`, plus cycles, failures and events produced).

use prometheus::{GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct EtlMetrics {
    pub executiontime_1h: GaugeVec,
    pub executiontime_3h: GaugeVec,
    pub executiontime_12h: GaugeVec,
    pub executiontime_metadata: GaugeVec,
    pub executiontime_prediction: GaugeVec,
    pub cycles: IntCounter,
    pub cycle_failures: IntCounter,
    pub source_failures: IntCounter,
    pub publish_retries: IntCounter,
    /// Answers of the source that came with warnings (possibly partial).
    pub source_warnings: IntCounter,
    /// Queries split into smaller ones because an answer would have been too big.
    pub source_splits: IntCounter,
    /// Series lists that may have been partial: no series was removed in those cycles.
    pub partial_series_lists: IntCounter,
    pub events: IntCounterVec,
    /// Events that could never be appended (too large, refused), by type.
    pub events_dropped: IntCounterVec,
    pub cycle_seconds: Histogram,
    pub series: IntGauge,
    /// Series of this instance's slots at the last cycle.
    pub owned_series: IntGauge,
    /// Slots of the metric-id hash this instance owns (of `etl_slots`).
    pub owned_slots: IntGauge,
    /// Slots shared by the ETL instances (1 for a single instance).
    pub slots: IntGauge,
    /// Cycles skipped because the slots were being assigned (a rebalance).
    pub unassigned_cycles: IntCounter,
    /// Cycles in which the SLA manager did not answer (the last known SLA set was used).
    pub sla_set_unavailable: IntCounter,
    /// Metadata cycles cut off at their deadline (the period), with series left over.
    pub metadata_cut_off: IntCounter,
    /// Seconds the last metadata cycle took.
    pub metadata_cycle_seconds: prometheus::Gauge,
    /// Seconds each phase of the last statistics cycle took, by `phase`: `list` (the
    /// series, and those of the last 12 h of slots just acquired), `statistics` (the
    /// window queries, folded), `publish`, `sla` (the SLA samples and forecasts, published).
    pub cycle_phase_seconds: GaugeVec,
    /// Statistics queries allowed in flight at once now (adapts to Prometheus's answer
    /// times, at most `SLAMON_ETL_CONCURRENCY`).
    pub query_concurrency_limit: IntGauge,
}

impl EtlMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<GaugeVec> {
            let g = GaugeVec::new(Opts::new(name, help), &["metric_name"])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::with_opts(Opts::new(name, help))?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let events =
            IntCounterVec::new(Opts::new("etl_events_produced_total", "events appended to the log"), &["event_type"])?;
        registry.register(Box::new(events.clone()))?;
        let events_dropped = IntCounterVec::new(
            Opts::new(
                "etl_events_dropped_total",
                "events that could never be appended (too large, refused by the registry)",
            ),
            &["event_type"],
        )?;
        registry.register(Box::new(events_dropped.clone()))?;
        let cycle_seconds = Histogram::with_opts(
            HistogramOpts::new("etl_cycle_duration_seconds", "duration of one statistics cycle")
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
        )?;
        registry.register(Box::new(cycle_seconds.clone()))?;
        let series = IntGauge::with_opts(Opts::new("etl_series", "series seen in the source at the last cycle"))?;
        registry.register(Box::new(series.clone()))?;
        let int_gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let g = IntGauge::with_opts(Opts::new(name, help))?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let metadata_cycle_seconds = prometheus::Gauge::with_opts(Opts::new(
            "etl_metadata_cycle_duration_seconds",
            "seconds the last metadata cycle took (spread over half the metadata period)",
        ))?;
        registry.register(Box::new(metadata_cycle_seconds.clone()))?;
        let cycle_phase_seconds = GaugeVec::new(
            Opts::new("etl_cycle_phase_seconds", "seconds each phase of the last statistics cycle took"),
            &["phase"],
        )?;
        registry.register(Box::new(cycle_phase_seconds.clone()))?;
        Ok(Self {
            executiontime_1h: gauge("etl_executiontime_1h", "seconds to compute the 1 h statistics of a metric name")?,
            executiontime_3h: gauge("etl_executiontime_3h", "seconds to compute the 3 h statistics of a metric name")?,
            executiontime_12h: gauge(
                "etl_executiontime_12h",
                "seconds to compute the 12 h statistics of a metric name",
            )?,
            executiontime_metadata: gauge("etl_executiontime_metadata", "seconds to compute the metadata of a series")?,
            executiontime_prediction: gauge(
                "etl_executiontime_prediction",
                "seconds to fit, select and forecast an SLA metric",
            )?,
            cycles: counter("etl_cycles_total", "statistics cycles run")?,
            cycle_failures: counter("etl_cycle_failures_total", "cycles that failed as a whole")?,
            source_failures: counter("etl_source_failures_total", "failed queries to the source")?,
            publish_retries: counter("etl_publish_retries_total", "failed appends retried")?,
            source_warnings: counter(
                "etl_source_warnings_total",
                "answers of the source that came with warnings (possibly partial)",
            )?,
            source_splits: counter(
                "etl_source_query_splits_total",
                "queries split into smaller ones because the answer would have been too big (samples, points, time)",
            )?,
            partial_series_lists: counter(
                "etl_partial_series_lists_total",
                "series lists with warnings: no series was removed in those cycles",
            )?,
            events,
            events_dropped,
            cycle_seconds,
            series,
            owned_series: int_gauge(
                "etl_owned_series",
                "series of this instance's slots at the last cycle (all series for a single instance)",
            )?,
            owned_slots: int_gauge("etl_owned_slots", "slots of the metric-id hash this instance owns")?,
            slots: int_gauge("etl_slots", "slots of the metric-id hash shared by the ETL instances")?,
            unassigned_cycles: counter(
                "etl_cycles_unassigned_total",
                "cycles skipped because the ETL's slots were being assigned (a rebalance of its group)",
            )?,
            sla_set_unavailable: counter(
                "etl_sla_set_unavailable_total",
                "cycles in which the SLA manager did not answer: the last known SLA set was used",
            )?,
            metadata_cut_off: counter(
                "etl_metadata_cycles_cut_off_total",
                "metadata cycles stopped at their deadline (the metadata period) with series left over",
            )?,
            metadata_cycle_seconds,
            cycle_phase_seconds,
            query_concurrency_limit: int_gauge(
                "etl_query_concurrency_limit",
                "statistics queries allowed in flight at once (adapts to Prometheus's answer times, at most SLAMON_ETL_CONCURRENCY)",
            )?,
        })
    }

    pub fn window_gauge(&self, w: slamon_domain::Window) -> &GaugeVec {
        match w {
            slamon_domain::Window::H1 => &self.executiontime_1h,
            slamon_domain::Window::H3 => &self.executiontime_3h,
            slamon_domain::Window::H12 => &self.executiontime_12h,
        }
    }
}
