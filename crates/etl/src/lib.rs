//! The ETL: every cycle (2 min by default) it computes the window statistics (1 h, 3 h,
//! 12 h) of every series of the source, fetches the SLA set from the SLA manager over
//! gRPC (retrying until answered), reads the new raw samples of each SLA metric, and
//! appends the results as events. Statistics are pushed down to the source (PromQL
//! `*_over_time`), one query per metric name and window, with bounded concurrency.
//!
//! A failed append is retried with backoff and never dropped silently. After a restart
//! the first cycle emits the whole SLA window again; the projection merges samples by
//! timestamp, so nothing is counted twice.

mod analysis;
mod metrics;
mod sla_client;

pub use metrics::{exporter, render, EtlMetrics};
pub use sla_client::SlaClient;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use slamon_domain::{
    now_ms, Event, EventEnvelope, Labels, MetricAggregatesComputed, MetricId, MetricRemoved, MetricSource, SlaEntry,
    SlaSamplesObserved, Window, WindowAggregate,
};
use slamon_events::Publisher;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct EtlConfig {
    /// Period of the statistics cycle.
    pub period: Duration,
    /// Metric names queried at once.
    pub concurrency: usize,
    /// A series absent from the source this long is announced as removed.
    pub removed_after: Duration,
    /// Extra history kept before `12 h + for` of each SLA metric.
    pub sla_margin: Duration,
    /// Events per append.
    pub publish_batch: usize,
    /// Name of this producer in event envelopes.
    pub producer: String,
    /// Period of the metadata cycle (stationarity, autocorrelation, seasonality).
    pub metadata_period: Duration,
    /// History used for the metadata of a series.
    pub metadata_window: Duration,
    /// History used for the forecast of an SLA metric.
    pub forecast_window: Duration,
    /// Autocorrelation lags computed.
    pub acf_lags: usize,
    /// How often the SLA set is asked for between cycles: a set that changed gets the
    /// SLA samples and forecasts of its metrics at once, not at the next cycle.
    pub sla_watch: Duration,
}

impl Default for EtlConfig {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(120),
            concurrency: 8,
            removed_after: Duration::from_secs(15 * 60),
            sla_margin: Duration::from_secs(5 * 60),
            publish_batch: 500,
            producer: "slamon-etl".into(),
            metadata_period: Duration::from_secs(3600),
            metadata_window: Duration::from_secs(24 * 3600),
            forecast_window: Duration::from_secs(12 * 3600),
            acf_lags: 40,
            sla_watch: Duration::from_secs(10),
        }
    }
}

/// What one cycle did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CycleReport {
    pub series: usize,
    pub aggregates: usize,
    pub sla_metrics: usize,
    pub samples: usize,
    pub removed: usize,
    pub failed_names: usize,
    pub forecasts: usize,
}

/// What one metadata cycle did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MetadataReport {
    pub series: usize,
    pub computed: usize,
    pub failed: usize,
}

/// Window statistics of the series of one metric name.
type StatsRows = Vec<(Labels, WindowAggregate)>;

pub struct Etl {
    source: Arc<dyn MetricSource>,
    publisher: Publisher,
    sla: SlaClient,
    config: EtlConfig,
    metrics: EtlMetrics,
    /// Last time each series was seen, for removals.
    last_seen: HashMap<MetricId, (Labels, i64)>,
    /// Timestamp of the last SLA sample emitted per SLA metric.
    cursors: HashMap<MetricId, i64>,
    /// Seasonal period (in 1-minute samples) of each series, from its last metadata.
    periods: HashMap<MetricId, Option<usize>>,
    /// The SLA set whose samples and forecasts were last published.
    sla_set: Option<Vec<SlaEntry>>,
}

impl Etl {
    pub fn new(
        source: Arc<dyn MetricSource>,
        publisher: Publisher,
        sla: SlaClient,
        config: EtlConfig,
        metrics: EtlMetrics,
    ) -> Self {
        Self {
            source,
            publisher,
            sla,
            config,
            metrics,
            last_seen: HashMap::new(),
            cursors: HashMap::new(),
            periods: HashMap::new(),
            sla_set: None,
        }
    }

    /// Runs the metadata cycle and the statistics cycle at once, then each every its
    /// period, and between cycles watches the SLA set for changes, until `cancel`.
    pub async fn run(mut self, cancel: CancellationToken) {
        tracing::info!(source = %self.source.describe(), period = ?self.config.period, metadata_period = ?self.config.metadata_period, "etl started");
        let mut ticker = tokio::time::interval(self.config.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut metadata_ticker = tokio::time::interval(self.config.metadata_period);
        metadata_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sla_ticker = tokio::time::interval(self.config.sla_watch);
        sla_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // the first metadata cycle runs first, so the first forecasts know the periods
        metadata_ticker.tick().await;
        self.run_metadata(&cancel).await;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = metadata_ticker.tick() => self.run_metadata(&cancel).await,
                _ = ticker.tick() => {
                    let started = Instant::now();
                    match self.cycle(&cancel).await {
                        Ok(report) => tracing::info!(?report, elapsed = ?started.elapsed(), "etl cycle done"),
                        Err(e) => {
                            self.metrics.cycle_failures.inc();
                            tracing::warn!(error = %e, "etl cycle failed");
                        }
                    }
                    self.metrics.cycles.inc();
                    self.metrics.cycle_seconds.observe(started.elapsed().as_secs_f64());
                }
                _ = sla_ticker.tick() => {
                    self.watch_sla_set(&cancel).await;
                }
            }
        }
        tracing::info!("etl stopped");
    }

    async fn run_metadata(&mut self, cancel: &CancellationToken) {
        let started = Instant::now();
        match self.metadata_cycle(cancel).await {
            Ok(report) => tracing::info!(?report, elapsed = ?started.elapsed(), "metadata cycle done"),
            Err(e) => tracing::warn!(error = %e, "metadata cycle failed"),
        }
    }

    /// Stationarity, autocorrelation and seasonality of every series.
    pub async fn metadata_cycle(&mut self, cancel: &CancellationToken) -> Result<MetadataReport, String> {
        let at = now_ms();
        let series = self.source.series().await.map_err(|e| format!("cannot list series: {e}"))?;
        let window = self.config.metadata_window.as_millis() as i64;
        let nlags = self.config.acf_lags;
        let mut report = MetadataReport { series: series.len(), ..Default::default() };
        let source = self.source.clone();
        let results: Vec<_> = futures::stream::iter(series)
            .map(|labels| {
                let source = source.clone();
                async move {
                    match analysis::input(source.as_ref(), &labels, at, window).await {
                        Ok(values) => analysis::metadata_event(labels.clone(), values, nlags, at)
                            .await
                            .ok_or((labels, "no result".to_owned())),
                        Err(e) => Err((labels, e)),
                    }
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut events = Vec::new();
        for r in results {
            match r {
                Ok((event, secs)) => {
                    self.metrics.executiontime_metadata.with_label_values(&[event.labels.name()]).set(secs);
                    let period = event.seasonality.as_ref().and_then(|s| s.add.as_ref().map(|f| f.period as usize));
                    self.periods.insert(event.labels.id(), period);
                    report.computed += 1;
                    events.push(self.envelope(Event::MetricMetadataComputed(event)));
                }
                Err((labels, e)) => {
                    report.failed += 1;
                    self.metrics.source_failures.inc();
                    tracing::warn!(series = %labels, error = %e, "no metadata this cycle");
                }
            }
        }
        self.publish(events, cancel).await?;
        Ok(report)
    }

    /// One cycle at the current time.
    pub async fn cycle(&mut self, cancel: &CancellationToken) -> Result<CycleReport, String> {
        let at = now_ms();
        let mut report = CycleReport::default();
        let series = self.source.series().await.map_err(|e| {
            self.metrics.source_failures.inc();
            format!("cannot list series: {e}")
        })?;
        report.series = series.len();
        self.metrics.series.set(series.len() as i64);

        let mut events = self.aggregates(&series, at, &mut report).await;
        events.extend(self.removals(&series, at, &mut report));
        self.publish(events, cancel).await?;

        let Some(entries) = self.sla.fetch_until_answered(cancel).await else { return Ok(report) };
        self.sla_pass(entries, at, &mut report, cancel).await?;
        Ok(report)
    }

    /// The new raw samples and the forecast of every SLA metric of `entries`, published.
    async fn sla_pass(
        &mut self,
        entries: Vec<SlaEntry>,
        at: i64,
        report: &mut CycleReport,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let (mut events, cursors) = self.sla_samples(&entries, at, report).await;
        events.extend(self.forecasts(&entries, at, report).await);
        self.publish(events, cancel).await?;
        self.cursors.retain(|id, _| entries.iter().any(|e| &e.id() == id));
        self.cursors.extend(cursors);
        self.sla_set = Some(entries);
        Ok(())
    }

    /// Between cycles: when the SLA set differs from the one last published for, the
    /// samples and forecasts of the new set, so a new SLA has its status and prediction
    /// within seconds instead of at the next cycle. Before the first cycle, and when the
    /// SLA manager does not answer, it leaves the work to the cycle.
    pub async fn watch_sla_set(&mut self, cancel: &CancellationToken) -> Option<CycleReport> {
        let known = self.sla_set.as_ref()?;
        let entries = match self.sla.fetch().await {
            Ok(entries) => entries,
            Err(status) => {
                tracing::debug!(code = ?status.code(), message = status.message(), "SLA set not watched this time");
                return None;
            }
        };
        if &entries == known {
            return None;
        }
        let mut report = CycleReport::default();
        let started = Instant::now();
        match self.sla_pass(entries, now_ms(), &mut report, cancel).await {
            Ok(()) => {
                tracing::info!(?report, elapsed = ?started.elapsed(), "SLA set changed: its samples and forecasts published");
                Some(report)
            }
            Err(e) => {
                tracing::warn!(error = %e, "SLA set changed, publishing its samples failed (the next cycle retries)");
                None
            }
        }
    }

    async fn aggregates(&self, series: &[Labels], at: i64, report: &mut CycleReport) -> Vec<EventEnvelope> {
        let mut names: Vec<String> = series.iter().map(|l| l.name().to_owned()).collect();
        names.sort();
        names.dedup();
        let results: Vec<(String, Result<StatsRows, String>)> = futures::stream::iter(names)
            .map(|name| async move {
                let mut rows = Vec::new();
                for w in Window::ALL {
                    let started = Instant::now();
                    match self.source.window_stats(&name, w, at).await {
                        Ok(r) => rows.extend(r),
                        Err(e) => return (name, Err(format!("{} statistics: {e}", w.label()))),
                    }
                    self.metrics
                        .window_gauge(w)
                        .with_label_values(&[name.as_str()])
                        .set(started.elapsed().as_secs_f64());
                }
                (name, Ok(rows))
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut by_series: BTreeMap<Labels, BTreeMap<Window, WindowAggregate>> = BTreeMap::new();
        for (name, result) in results {
            match result {
                Ok(rows) => {
                    for (labels, agg) in rows {
                        by_series.entry(labels).or_default().insert(agg.window, agg);
                    }
                }
                Err(e) => {
                    self.metrics.source_failures.inc();
                    report.failed_names += 1;
                    tracing::warn!(metric_name = %name, error = %e, "skipping metric name this cycle");
                }
            }
        }
        report.aggregates = by_series.len();
        by_series
            .into_iter()
            .map(|(labels, mut windows)| {
                let windows = Window::ALL
                    .into_iter()
                    .map(|w| {
                        windows.remove(&w).unwrap_or(WindowAggregate {
                            window: w,
                            min: None,
                            max: None,
                            avg: None,
                            std_dev: None,
                            samples: 0,
                        })
                    })
                    .collect();
                self.envelope(Event::MetricAggregatesComputed(MetricAggregatesComputed {
                    labels,
                    computed_at_ms: at,
                    windows,
                }))
            })
            .collect()
    }

    fn removals(&mut self, series: &[Labels], at: i64, report: &mut CycleReport) -> Vec<EventEnvelope> {
        for l in series {
            self.last_seen.insert(l.id(), (l.clone(), at));
        }
        let limit = self.config.removed_after.as_millis() as i64;
        let gone: Vec<MetricId> =
            self.last_seen.iter().filter(|(_, (_, seen))| at - seen > limit).map(|(id, _)| *id).collect();
        report.removed = gone.len();
        let removed: Vec<(Labels, i64)> = gone.into_iter().filter_map(|id| self.last_seen.remove(&id)).collect();
        removed
            .into_iter()
            .map(|(labels, seen)| self.envelope(Event::MetricRemoved(MetricRemoved { labels, last_seen_ms: seen })))
            .collect()
    }

    async fn sla_samples(
        &self,
        entries: &[SlaEntry],
        at: i64,
        report: &mut CycleReport,
    ) -> (Vec<EventEnvelope>, Vec<(MetricId, i64)>) {
        report.sla_metrics = entries.len();
        let margin = self.config.sla_margin.as_millis() as i64;
        let results: Vec<_> = futures::stream::iter(entries.iter().cloned())
            .map(|e| async move {
                let window_start = at - Window::H12.millis() - i64::from(e.for_minutes) * 60_000 - margin;
                let cursor = self.cursors.get(&e.id()).copied().filter(|c| *c >= window_start);
                let after = cursor.unwrap_or(window_start - 1);
                let samples = self.source.raw_samples(&e.labels, after, at).await;
                (e, window_start, cursor, samples)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut events = Vec::new();
        let mut cursors = Vec::new();
        for (e, window_start, cursor, samples) in results {
            match samples {
                Ok(samples) => {
                    if samples.is_empty() && cursor.is_some() {
                        continue;
                    }
                    report.samples += samples.len();
                    if let Some(last) = samples.last() {
                        cursors.push((e.id(), last.ts_ms));
                    }
                    events.push(self.envelope(Event::SlaSamplesObserved(SlaSamplesObserved {
                        labels: e.labels.clone(),
                        window_start_ms: window_start,
                        samples,
                    })));
                }
                Err(err) => {
                    self.metrics.source_failures.inc();
                    tracing::warn!(series = %e.labels, error = %err, "cannot read SLA samples this cycle");
                }
            }
        }
        (events, cursors)
    }

    /// The forecast of every SLA metric.
    async fn forecasts(&self, entries: &[SlaEntry], at: i64, report: &mut CycleReport) -> Vec<EventEnvelope> {
        let window = self.config.forecast_window.as_millis() as i64;
        let results: Vec<_> = futures::stream::iter(entries.iter().cloned())
            .map(|e| async move {
                let period = self.periods.get(&e.id()).copied().flatten();
                match analysis::input(self.source.as_ref(), &e.labels, at, window).await {
                    Ok(values) => analysis::forecast_event(e.labels.clone(), values, period, at)
                        .await
                        .ok_or((e.labels, "too little history".to_owned())),
                    Err(err) => Err((e.labels, err)),
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut events = Vec::new();
        for r in results {
            match r {
                Ok((event, secs)) => {
                    self.metrics.executiontime_prediction.with_label_values(&[event.labels.name()]).set(secs);
                    report.forecasts += 1;
                    events.push(self.envelope(Event::MetricForecastComputed(event)));
                }
                Err((labels, e)) => tracing::warn!(series = %labels, error = %e, "no forecast this cycle"),
            }
        }
        events
    }

    fn envelope(&self, event: Event) -> EventEnvelope {
        EventEnvelope::new(self.config.producer.clone(), event)
    }

    /// Appends events in batches; a failed append is retried with backoff until it
    /// succeeds. Only a shutdown stops the retries, and then it says what it dropped.
    async fn publish(&self, events: Vec<EventEnvelope>, cancel: &CancellationToken) -> Result<(), String> {
        for chunk in events.chunks(self.config.publish_batch.max(1)) {
            let mut backoff = Duration::from_millis(200);
            loop {
                match self.publisher.publish(chunk).await {
                    Ok(_) => {
                        for e in chunk {
                            self.metrics.events.with_label_values(&[e.event.event_type()]).inc();
                        }
                        break;
                    }
                    Err(e) => {
                        self.metrics.publish_retries.inc();
                        tracing::warn!(error = %e, events = chunk.len(), ?backoff, "append failed, retrying");
                        tokio::select! {
                            _ = cancel.cancelled() => {
                                tracing::error!(events = chunk.len(), "shutting down with events that could not be appended");
                                return Err("shutdown before the events were appended".into());
                            }
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
