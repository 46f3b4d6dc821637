//! The ETL's analytics: forecasts of the SLA metrics (every cycle) and metadata of every
//! series (hourly), turned into events. The numbers come from `slamon-analytics`; this
//! module fetches the inputs, runs the CPU work off the async runtime, and builds events.

use std::time::Instant;

use crate::EtlError;
use slamon_analytics::forecast::forecast;
use slamon_analytics::metadata::metadata;
use slamon_domain::{
    ForecastCandidate, Labels, MetricForecastComputed, MetricMetadataComputed, MetricSource, PredictionInterval,
    Sample, SeasonalFit, Seasonality, Stationarity,
};

/// The grid of the analytics inputs (and of the forecast).
pub const STEP_MS: i64 = 60_000;
/// Forecast horizon and hold-out, in steps.
pub const HORIZON: usize = 10;
pub const HOLDOUT: usize = 10;

/// The analytics input of one series: its values on the 1-minute grid, gaps kept in
/// place, and the grid time of the last value.
#[derive(Debug, Clone, PartialEq)]
pub struct GridInput {
    /// One value per minute, oldest first, without holes: a missing or non-finite point
    /// between two values is interpolated linearly (so every later point keeps its place
    /// and a seasonal phase stays right); leading and trailing missing points are left
    /// out.
    pub values: Vec<f64>,
    /// The grid time of the last value, in ms since the Unix epoch: the forecast's
    /// origin (its first point is one step after it).
    pub last_ms: i64,
    /// How many of `values` were interpolated.
    pub imputed: usize,
}

/// Values of `series` on the 1-minute grid over `window_ms` before `at_ms` ([`grid`]).
///
/// With `raw` (the forecasts of the SLA metrics), the grid is made from the raw samples:
/// a point has the last sample of the minute it ends, or none. Without (the hourly
/// metadata of every series, one cheaper query each), it is `query_range`'s answer,
/// which repeats a series' last value for the lookback (5 min by default) into a gap and
/// after the series stops.
///
/// # Errors
/// [`EtlError::Input`] when the source fails.
pub async fn input(
    source: &dyn MetricSource,
    series: &Labels,
    at_ms: i64,
    window_ms: i64,
    raw: bool,
) -> Result<GridInput, EtlError> {
    let end = at_ms.div_euclid(STEP_MS) * STEP_MS;
    let start = end - window_ms;
    let samples = if raw {
        let raw = source.raw_samples(series, start - STEP_MS, end).await.map_err(EtlError::Input)?;
        resample(&raw, start, end)
    } else {
        source.range(series, start, end, STEP_MS).await.map_err(EtlError::Input)?
    };
    Ok(grid(&samples, start, end))
}

/// Raw samples (sorted by time) on the grid from `start_ms` to `end_ms`: a point at `g`
/// takes the last sample in `(g − STEP_MS, g]`; a minute without a sample has no point.
pub fn resample(raw: &[Sample], start_ms: i64, end_ms: i64) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::new();
    for s in raw.iter().filter(|s| s.ts_ms > start_ms - STEP_MS && s.ts_ms <= end_ms) {
        // the grid point whose minute holds it
        let g = (s.ts_ms + STEP_MS - 1).div_euclid(STEP_MS) * STEP_MS;
        match out.last_mut() {
            Some(last) if last.ts_ms == g => last.value = s.value,
            _ => out.push(Sample::new(g, s.value)),
        }
    }
    out
}

/// The 1-minute grid from `start_ms` to `end_ms` (multiples of [`STEP_MS`]) filled from
/// `samples` (points on that grid): leading and trailing gaps dropped, inner gaps and
/// non-finite values interpolated linearly between their neighbours.
pub fn grid(samples: &[Sample], start_ms: i64, end_ms: i64) -> GridInput {
    let end = end_ms;
    let n = if end >= start_ms { ((end - start_ms) / STEP_MS + 1) as usize } else { 0 };
    let mut slots = vec![f64::NAN; n];
    for s in samples {
        if s.ts_ms >= start_ms && s.ts_ms <= end && (s.ts_ms - start_ms) % STEP_MS == 0 {
            slots[((s.ts_ms - start_ms) / STEP_MS) as usize] = s.value;
        }
    }
    let (Some(first), Some(last)) =
        (slots.iter().position(|v| v.is_finite()), slots.iter().rposition(|v| v.is_finite()))
    else {
        return GridInput { values: Vec::new(), last_ms: end, imputed: 0 };
    };
    let mut values = slots[first..=last].to_vec();
    let mut imputed = 0;
    let mut i = 0;
    while i < values.len() {
        if values[i].is_finite() {
            i += 1;
            continue;
        }
        // a run of holes between two finite values (the ends are finite)
        let j = i + values[i..].iter().position(|v| v.is_finite()).expect("the last value is finite");
        let (a, b) = (values[i - 1], values[j]);
        let width = (j - i + 1) as f64;
        for (k, v) in values[i..j].iter_mut().enumerate() {
            *v = a + (b - a) * (k + 1) as f64 / width;
        }
        imputed += j - i;
        i = j;
    }
    GridInput { values, last_ms: start_ms + last as i64 * STEP_MS, imputed }
}

/// The forecast event of one SLA metric, computed at `at_ms` from `input` (its values on
/// the 1-minute grid, [`input`]), with `period` (in samples) when known, and the seconds
/// it took. The forecast starts one step after the input's last value
/// ([`GridInput::last_ms`]): each point carries the time it predicts.
///
/// # Errors
/// [`EtlError::NoForecast`] when no model could be fitted (too little history);
/// [`EtlError::AnalyticsPanicked`] when the computation panicked.
pub async fn forecast_event(
    labels: Labels,
    input: GridInput,
    period: Option<usize>,
    at_ms: i64,
) -> Result<(MetricForecastComputed, f64), EtlError> {
    let GridInput { values, last_ms: origin, imputed } = input;
    if imputed > 0 {
        tracing::debug!(series = %labels, imputed, "gaps in the forecast input interpolated");
    }
    let n = values.len();
    let started = Instant::now();
    let period = match period {
        Some(p) => Some(p),
        None => {
            // no metadata yet: the period of the same input
            let v = values.clone();
            tokio::task::spawn_blocking(move || {
                slamon_analytics::seasonality::seasonality(&v).and_then(|s| s.additive.map(|d| d.period))
            })
            .await
            .map_err(EtlError::panicked)?
        }
    };
    let fc = tokio::task::spawn_blocking(move || forecast(&values, period, HOLDOUT, HORIZON))
        .await
        .map_err(EtlError::panicked)?
        .ok_or(EtlError::NoForecast { samples: n, reason: "too little history" })?;
    if fc.values.is_empty() || !fc.rmse.is_finite() || fc.values.iter().any(|v| !v.is_finite()) {
        return Err(EtlError::NoForecast { samples: n, reason: "the forecast or its hold-out error is not finite" });
    }
    let points: Vec<Sample> =
        fc.values.iter().enumerate().map(|(k, v)| Sample::new(origin + (k as i64 + 1) * STEP_MS, *v)).collect();
    let intervals: Vec<PredictionInterval> = fc
        .interval(0.8)
        .into_iter()
        .zip(fc.interval(0.95))
        .map(|((lower_80, upper_80), (lower_95, upper_95))| PredictionInterval {
            lower_80,
            upper_80,
            lower_95,
            upper_95,
        })
        .filter(|i| [i.lower_80, i.upper_80, i.lower_95, i.upper_95].iter().all(|v| v.is_finite()))
        .collect();
    // all or none: a point without its interval would be read as another point's
    let intervals = if intervals.len() == points.len() { intervals } else { Vec::new() };
    let n = points.len().max(1) as f64;
    let min = fc.values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = fc.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let event = MetricForecastComputed {
        labels,
        computed_at_ms: at_ms,
        model: fc.model,
        rmse: fc.rmse,
        candidates: fc
            .candidates
            .into_iter()
            .map(|c| ForecastCandidate { model: c.model, rmse: c.rmse, note: c.note })
            .collect(),
        min,
        max,
        // the rounded sum of equal values can end a unit in the last place outside them
        avg: (fc.values.iter().sum::<f64>() / n).clamp(min, max),
        points,
        intervals,
    };
    Ok((event, started.elapsed().as_secs_f64()))
}

/// The metadata event of one series from `values` on the 1-minute grid (gaps
/// interpolated, [`grid`]), and the seconds it took.
///
/// # Errors
/// [`EtlError::AnalyticsPanicked`] when the computation panicked.
pub async fn metadata_event(
    labels: Labels,
    values: Vec<f64>,
    nlags: usize,
    at_ms: i64,
) -> Result<(MetricMetadataComputed, f64), EtlError> {
    let started = Instant::now();
    let md = tokio::task::spawn_blocking(move || metadata(&values, nlags)).await.map_err(EtlError::panicked)?;
    if !md.skipped.is_empty() {
        tracing::info!(series = %labels, skipped = ?md.skipped, "metadata parts left out");
    }
    let step_s = STEP_MS as f64 / 1000.0;
    let fit = |d: &slamon_analytics::seasonality::Decomposition| SeasonalFit {
        period: d.period as u32,
        period_seconds: d.period as f64 * step_s,
        error: d.error,
    };
    let event = MetricMetadataComputed {
        labels,
        computed_at_ms: at_ms,
        constant: md.constant,
        stationarity: md.stationarity.map(|a| Stationarity {
            adf_statistic: a.statistic,
            p_value: a.p_value,
            stationary: a.stationary(),
            used_lag: a.used_lag as u32,
        }),
        autocorrelation: md.autocorrelation,
        seasonality: md.seasonality.map(|s| Seasonality {
            method: format!("fft peaks refined by classical decomposition (fft peak {} samples)", s.fft_period),
            add: s.additive.as_ref().map(fit),
            mul: s.multiplicative.as_ref().map(fit),
        }),
    };
    Ok((event, started.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod grid_tests {
    use super::*;

    const M: i64 = STEP_MS;

    /// A `query_range` answer: `values[i]` at minute `i`, `None` where Prometheus returned
    /// no point.
    fn answer(values: &[Option<f64>]) -> Vec<Sample> {
        values.iter().enumerate().filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * M, v))).collect()
    }

    #[test]
    fn a_gap_keeps_its_place_and_is_interpolated() {
        // minutes 0-4, a 20-minute gap (no points), minutes 25-29
        let mut v: Vec<Option<f64>> = (0..30).map(|i| Some(i as f64)).collect();
        for slot in &mut v[5..25] {
            *slot = None;
        }
        let g = grid(&answer(&v), 0, 29 * M);
        assert_eq!(g.values.len(), 30, "every minute keeps its place");
        assert_eq!(g.imputed, 20);
        // a straight line between 4 and 25 is the line itself
        for (i, x) in g.values.iter().enumerate() {
            assert!((x - i as f64).abs() < 1e-9, "minute {i}: {x}");
        }
        assert_eq!(g.last_ms, 29 * M);
    }

    #[test]
    fn raw_samples_make_a_grid_without_repeats_that_ends_with_the_last_sample() {
        // a sample every 15 s from 0 to 26.5 min, then nothing (stale for 3.5 min)
        let raw: Vec<Sample> = (0..=106).map(|k| Sample::new(k * 15_000, k as f64)).collect();
        let points = resample(&raw, 0, 30 * M);
        assert_eq!(points.len(), 28, "minutes 0..=27: the last one holds the sample at 26.5");
        assert_eq!(points[1], Sample::new(M, 4.0), "the last sample of (0, 1 min]");
        assert_eq!(points[27], Sample::new(27 * M, 106.0));
        let g = grid(&points, 0, 30 * M);
        assert_eq!((g.last_ms, g.values.len(), g.imputed), (27 * M, 28, 0), "no repeated tail");
        // a 2-minute scrape interval: every other minute is interpolated, none moves
        let sparse: Vec<Sample> = (0..10).map(|k| Sample::new(k * 2 * M, k as f64)).collect();
        let g = grid(&resample(&sparse, 0, 18 * M), 0, 18 * M);
        assert_eq!((g.values.len(), g.imputed), (19, 9));
        assert_eq!(g.values[3], 1.5);
    }

    #[test]
    fn leading_and_trailing_holes_and_non_finite_values() {
        let v = [None, None, Some(1.0), Some(f64::NAN), Some(3.0), Some(f64::INFINITY), None];
        let g = grid(&answer(&v), 0, 6 * M);
        assert_eq!(g.values, vec![1.0, 2.0, 3.0]);
        assert_eq!((g.imputed, g.last_ms), (1, 4 * M));
        assert!(grid(&answer(&[None, Some(f64::NAN)]), 0, M).values.is_empty());
    }
}
