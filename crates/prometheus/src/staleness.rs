//! Staleness markers, seen from outside. When a scrape fails or a series leaves a target,
//! Prometheus appends a staleness marker; an instant query has no value for the series
//! from that marker until its next sample, and an alerting rule's `for` starts over. Range
//! selectors (`x[13h]`) do not return markers, so the raw samples alone join the two
//! sides. A `query_range` of the series at the scrape interval shows the marker as steps
//! without a value between two samples; [`mark_stale`] puts a NaN sample at the first such
//! step (Prometheus stores its marker as a NaN too), which ends a violating run as a
//! staleness marker does.

use slamon_domain::Sample;

/// The step of the presence query over `samples` (sorted by time): their median interval
/// (the scrape interval), at least 1 s and at least `span / max_points`.
pub fn presence_step(samples: &[Sample], max_points: i64) -> Option<i64> {
    let mut gaps: Vec<i64> = samples.windows(2).map(|w| w[1].ts_ms - w[0].ts_ms).filter(|g| *g > 0).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    let span = samples.last()?.ts_ms - samples.first()?.ts_ms;
    Some(gaps[gaps.len() / 2].max(1000).max(span / max_points.max(1) + 1))
}

/// `samples` with a NaN sample at the first step of every stretch between two samples
/// where `present` (the timestamps at which an instant query had a value, sorted) has no
/// step, i.e. where the series was stale. `steps` are every step evaluated, sorted.
pub fn mark_stale(samples: Vec<Sample>, steps: &[i64], present: &[i64]) -> Vec<Sample> {
    let mut out = Vec::with_capacity(samples.len());
    let mut step = 0;
    let mut seen = 0;
    for pair in samples.windows(2) {
        let (a, b) = (pair[0].ts_ms, pair[1].ts_ms);
        out.push(pair[0]);
        while step < steps.len() && steps[step] <= a {
            step += 1;
        }
        while seen < present.len() && present[seen] <= a {
            seen += 1;
        }
        // the first step strictly between the two samples without a value
        let mut s = step;
        while s < steps.len() && steps[s] < b {
            while seen < present.len() && present[seen] < steps[s] {
                seen += 1;
            }
            if present.get(seen) != Some(&steps[s]) {
                out.push(Sample::new(steps[s], f64::NAN));
                break;
            }
            s += 1;
        }
    }
    out.extend(samples.last().copied());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: &[i64]) -> Vec<Sample> {
        ts.iter().map(|t| Sample::new(*t, 50.0)).collect()
    }

    #[test]
    fn a_step_without_a_value_between_two_samples_is_a_nan_sample() {
        // scrapes every 2 s; the ones at 6 and 8 failed: stale from 6 to 10
        let samples = at(&[0, 2000, 4000, 10_000, 12_000]);
        let steps: Vec<i64> = (0..=6).map(|k| k * 2000).collect();
        let present = [0, 2000, 4000, 10_000, 12_000];
        let out = mark_stale(samples, &steps, &present);
        let ts: Vec<i64> = out.iter().map(|s| s.ts_ms).collect();
        assert_eq!(ts, vec![0, 2000, 4000, 6000, 10_000, 12_000], "one NaN at the first stale step");
        assert!(out[3].value.is_nan());
        // no stale step: unchanged
        let out = mark_stale(at(&[0, 2000, 4000]), &[0, 2000, 4000], &[0, 2000, 4000]);
        assert!(out.iter().all(|s| s.value == 50.0) && out.len() == 3);
        // a gap shorter than the lookback without a marker keeps its value at every step
        let out = mark_stale(at(&[0, 8000]), &[0, 2000, 4000, 6000, 8000], &[0, 2000, 4000, 6000, 8000]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn the_step_is_the_scrape_interval() {
        assert_eq!(presence_step(&at(&[0, 15_000, 30_000, 45_000, 90_000]), 11_000), Some(15_000));
        assert_eq!(presence_step(&at(&[0, 10, 20]), 11_000), Some(1000), "at least a second");
        assert_eq!(presence_step(&at(&[0]), 11_000), None);
        let day = at(&[0, 1000, 86_400_000]);
        assert!(presence_step(&day, 11_000).unwrap() * 11_000 > 86_400_000, "within the point limit");
    }
}
