//! The built-in demo source: deterministic synthetic series (a function of the series
//! and the timestamp), seasonal and noisy, with episodes out of range, sampled every
//! 15 s like a scrape. It includes the seed's five metric names.

use std::f64::consts::TAU;

use async_trait::async_trait;
use slamon_domain::{window_aggregate, Labels, MetricSource, PortResult, Sample, SeriesList, Window, WindowAggregate};

const STEP_MS: i64 = 15_000;
const HOUR: f64 = 3_600_000.0;

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Free bytes of a filesystem: a slow fill with a cleanup every 6 h.
    FilesystemAvail { base: f64 },
    /// A temperature with an hourly cycle and a 12-minute overheat every 3 h.
    CpuTemp,
    /// Percent of disk used with a daily cycle.
    DiskUsage,
    /// Bytes of memory with a 30-minute cycle and a 20-minute leak every 4 h.
    RealUsedMem,
    /// Bytes/s with a 20-minute cycle and a 6-minute outage every 2 h.
    NetworkThroughput,
    /// Load average: noise around a level.
    Load,
    /// A constant series (e.g. a build info gauge).
    Constant,
}

/// The demo source.
pub struct DemoSource {
    series: Vec<(Labels, Shape, u64)>,
}

impl Default for DemoSource {
    fn default() -> Self {
        Self::new()
    }
}

/// A deterministic uniform number in [0, 1) of a seed and a time step (splitmix64).
fn uniform(seed: u64, step: i64) -> f64 {
    let mut z = seed.wrapping_add((step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Roughly standard normal noise (sum of four uniforms, rescaled).
fn noise(seed: u64, step: i64) -> f64 {
    let s: f64 = (0..4).map(|i| uniform(seed.wrapping_add(i * 7919), step)).sum();
    (s - 2.0) / (4.0f64 / 12.0).sqrt()
}

/// Whether `t` falls in the first `len_min` minutes of every `every_h` hours (shifted).
fn episode(t: i64, every_h: f64, len_min: f64, shift_min: f64) -> bool {
    let period = every_h * HOUR;
    let x = (t as f64 - shift_min * 60_000.0).rem_euclid(period);
    x < len_min * 60_000.0
}

impl Shape {
    fn value(self, seed: u64, t: i64) -> f64 {
        let step = t / STEP_MS;
        let n = noise(seed, step);
        let th = t as f64 / HOUR;
        match self {
            Shape::FilesystemAvail { base } => {
                let since_cleanup = (th % 6.0) / 6.0;
                base - 0.35 * base * since_cleanup + 0.002 * base * n
            }
            Shape::CpuTemp => {
                let v = 55.0 + 8.0 * (TAU * th).sin() + 1.2 * n;
                if episode(t, 3.0, 12.0, 40.0) {
                    v + 30.0
                } else {
                    v
                }
            }
            Shape::DiskUsage => 62.0 + 6.0 * (TAU * th / 24.0).sin() + 0.3 * n,
            Shape::RealUsedMem => {
                let v = 4.0e9 + 4.0e8 * (TAU * th * 2.0).sin() + 3.0e7 * n;
                if episode(t, 4.0, 20.0, 100.0) {
                    v + 3.0e9
                } else {
                    v
                }
            }
            Shape::NetworkThroughput => {
                if episode(t, 2.0, 6.0, 15.0) {
                    2.0e3 * (1.0 + 0.1 * n).abs()
                } else {
                    1.2e6 + 3.0e5 * (TAU * th * 3.0).sin() + 4.0e4 * n
                }
            }
            Shape::Load => (0.8 + 0.3 * (TAU * th).cos() + 0.15 * n).max(0.0),
            Shape::Constant => 1.0,
        }
    }
}

impl DemoSource {
    pub fn new() -> Self {
        let node = |name: &str, extra: &[(&str, &str)]| -> Labels {
            let mut l: Vec<(&str, &str)> = vec![("__name__", name), ("instance", "demo:9100"), ("job", "demo")];
            l.extend_from_slice(extra);
            l.into_iter().collect()
        };
        let series = vec![
            (
                node(
                    "node_filesystem_avail_bytes",
                    &[("device", "/dev/sda2"), ("fstype", "ext4"), ("mountpoint", "/")],
                ),
                Shape::FilesystemAvail { base: 1.2e10 },
            ),
            (
                node(
                    "node_filesystem_avail_bytes",
                    &[("device", "tmpfs"), ("fstype", "tmpfs"), ("mountpoint", "/run")],
                ),
                Shape::FilesystemAvail { base: 3.29e9 },
            ),
            (node("cpuTemp", &[("sensor", "package")]), Shape::CpuTemp),
            (node("diskUsage", &[("device", "/dev/sda2")]), Shape::DiskUsage),
            (node("realUsedMem", &[]), Shape::RealUsedMem),
            (node("networkThroughput", &[("interface", "eth0")]), Shape::NetworkThroughput),
            (node("node_load1", &[]), Shape::Load),
            (node("demo_build_info", &[("version", "1.0.0")]), Shape::Constant),
        ];
        let series =
            series.into_iter().enumerate().map(|(i, (l, s))| (l, s, 0x5EED_0000 + i as u64 * 1_000_003)).collect();
        Self { series }
    }

    /// The value of a demo series at `t` (any timestamp; samples are on a 15 s grid).
    pub fn value(&self, series: &Labels, t: i64) -> Option<f64> {
        self.series.iter().find(|(l, _, _)| l == series).map(|(_, shape, seed)| shape.value(*seed, t))
    }

    fn samples(&self, shape: Shape, seed: u64, after_ms: i64, at_ms: i64) -> Vec<Sample> {
        let first = after_ms.div_euclid(STEP_MS) + 1;
        let last = at_ms.div_euclid(STEP_MS);
        (first..=last).map(|k| k * STEP_MS).map(|t| Sample::new(t, shape.value(seed, t))).collect()
    }
}

#[async_trait]
impl MetricSource for DemoSource {
    async fn series(&self) -> PortResult<SeriesList> {
        let mut series: Vec<Labels> = self.series.iter().map(|(l, _, _)| l.clone()).collect();
        series.sort();
        Ok(SeriesList { series, partial: false })
    }

    async fn window_stats(
        &self,
        metric_name: &str,
        window: Window,
        at_ms: i64,
    ) -> PortResult<Vec<(Labels, WindowAggregate)>> {
        Ok(self
            .series
            .iter()
            .filter(|(l, _, _)| l.name() == metric_name)
            .map(|(l, shape, seed)| {
                let values: Vec<f64> =
                    self.samples(*shape, *seed, at_ms - window.millis(), at_ms).iter().map(|s| s.value).collect();
                (l.clone(), window_aggregate(window, &values))
            })
            .collect())
    }

    async fn raw_samples(&self, series: &Labels, after_ms: i64, at_ms: i64) -> PortResult<Vec<Sample>> {
        Ok(self
            .series
            .iter()
            .find(|(l, _, _)| l == series)
            .map(|(_, shape, seed)| self.samples(*shape, *seed, after_ms, at_ms))
            .unwrap_or_default())
    }

    async fn range(&self, series: &Labels, start_ms: i64, end_ms: i64, step_ms: i64) -> PortResult<Vec<Sample>> {
        let Some((_, shape, seed)) = self.series.iter().find(|(l, _, _)| l == series) else { return Ok(Vec::new()) };
        let step = step_ms.max(1);
        let mut out = Vec::new();
        let mut t = start_ms;
        while t <= end_ms {
            // like query_range: the latest sample at or before t
            let sample_t = t.div_euclid(STEP_MS) * STEP_MS;
            out.push(Sample::new(t, shape.value(*seed, sample_t)));
            t += step;
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        "the built-in demo source".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn has_the_seed_metric_names_and_is_deterministic() {
        let demo = DemoSource::new();
        let names: Vec<String> = demo.series().await.unwrap().series.iter().map(|l| l.name().to_owned()).collect();
        for n in ["node_filesystem_avail_bytes", "cpuTemp", "diskUsage", "realUsedMem", "networkThroughput"] {
            assert!(names.iter().any(|x| x == n), "{n} missing");
        }
        let cpu = demo.series().await.unwrap().series.into_iter().find(|l| l.name() == "cpuTemp").unwrap();
        let a = demo.raw_samples(&cpu, 1_700_000_000_000, 1_700_000_600_000).await.unwrap();
        let b = DemoSource::new().raw_samples(&cpu, 1_700_000_000_000, 1_700_000_600_000).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 40);
        assert!(a.iter().all(|s| s.ts_ms > 1_700_000_000_000 && s.ts_ms % STEP_MS == 0));
    }

    #[tokio::test]
    async fn window_stats_agree_with_the_raw_samples_and_show_episodes() {
        let demo = DemoSource::new();
        let at = 1_700_000_000_000;
        let rows = demo.window_stats("cpuTemp", Window::H12, at).await.unwrap();
        assert_eq!(rows.len(), 1);
        let (labels, agg) = &rows[0];
        let raw = demo.raw_samples(labels, at - Window::H12.millis(), at).await.unwrap();
        assert_eq!(agg.samples as usize, raw.len());
        assert_eq!(agg.samples, 12 * 240);
        // the overheat episodes put the 12 h max far above the normal range
        assert!(agg.max.unwrap() > 80.0, "{agg:?}");
        assert!(agg.min.unwrap() < 50.0, "{agg:?}");
    }
}
