//! Several sources as one (e.g. a Prometheus and the demo).

use std::sync::Arc;

use async_trait::async_trait;
use slamon_domain::{Labels, MetricSource, PortResult, Sample, SeriesList, Window, WindowAggregate};

pub struct MultiSource {
    sources: Vec<Arc<dyn MetricSource>>,
}

impl MultiSource {
    pub fn new(sources: Vec<Arc<dyn MetricSource>>) -> Self {
        Self { sources }
    }
}

/// The series of every list once, sorted; partial when any list is.
fn merged(lists: Vec<SeriesList>) -> SeriesList {
    let mut out = SeriesList::default();
    for list in lists {
        out.series.extend(list.series);
        out.partial |= list.partial;
    }
    out.series.sort();
    out.series.dedup();
    out
}

#[async_trait]
impl MetricSource for MultiSource {
    async fn series(&self) -> PortResult<SeriesList> {
        let mut lists = Vec::new();
        for s in &self.sources {
            lists.push(s.series().await?);
        }
        Ok(merged(lists))
    }

    async fn series_since(&self, start_ms: i64) -> PortResult<SeriesList> {
        let mut lists = Vec::new();
        for s in &self.sources {
            lists.push(s.series_since(start_ms).await?);
        }
        Ok(merged(lists))
    }

    fn warnings(&self) -> u64 {
        self.sources.iter().map(|s| s.warnings()).sum()
    }

    fn splits(&self) -> u64 {
        self.sources.iter().map(|s| s.splits()).sum()
    }

    async fn window_stats(
        &self,
        metric_name: &str,
        window: Window,
        at_ms: i64,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        let mut out = Vec::new();
        for s in &self.sources {
            out.extend(s.window_stats(metric_name, window, at_ms).await?);
        }
        Ok(out)
    }

    async fn window_stats_of(
        &self,
        metric_name: &str,
        series: &[Labels],
        window: Window,
        at_ms: i64,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        let mut out = Vec::new();
        for s in &self.sources {
            out.extend(s.window_stats_of(metric_name, series, window, at_ms).await?);
        }
        Ok(out)
    }

    async fn raw_samples(&self, series: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>> {
        for s in &self.sources {
            let samples = s.raw_samples(series, after_ms, at_ms).await?;
            if !samples.is_empty() {
                return Ok(samples);
            }
        }
        Ok(Vec::new())
    }

    async fn range(&self, series: &Labels, start_ms: i64, end_ms: i64, step_ms: i64) -> PortResult<Vec<Sample>> {
        for s in &self.sources {
            let samples = s.range(series, start_ms, end_ms, step_ms).await?;
            if !samples.is_empty() {
                return Ok(samples);
            }
        }
        Ok(Vec::new())
    }

    fn describe(&self) -> String {
        self.sources.iter().map(|s| s.describe()).collect::<Vec<_>>().join(" + ")
    }
}
