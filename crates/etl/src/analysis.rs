//! The ETL's analytics: forecasts of the SLA metrics (every cycle) and metadata of every
//! series (hourly), turned into events. The numbers come from `slamon-analytics`; this
//! module fetches the inputs, runs the CPU work off the async runtime, and builds events.

use std::time::Instant;

use crate::EtlError;
use slamon_analytics::forecast::forecast;
use slamon_analytics::metadata::metadata;
use slamon_domain::{
    ForecastCandidate, Labels, MetricForecastComputed, MetricMetadataComputed, MetricSource, Sample, SeasonalFit,
    Seasonality, Stationarity,
};

/// The grid of the analytics inputs (and of the forecast).
pub const STEP_MS: i64 = 60_000;
/// Forecast horizon and hold-out, in steps.
pub const HORIZON: usize = 10;
pub const HOLDOUT: usize = 10;

/// Values of `series` on the 1-minute grid over `window_ms` before `at_ms`, with gaps
/// (NaN) dropped.
///
/// # Errors
/// [`EtlError::Input`] when the source fails.
pub async fn input(
    source: &dyn MetricSource,
    series: &Labels,
    at_ms: i64,
    window_ms: i64,
) -> Result<Vec<f64>, EtlError> {
    let end = at_ms.div_euclid(STEP_MS) * STEP_MS;
    let samples = source.range(series, end - window_ms, end, STEP_MS).await.map_err(EtlError::Input)?;
    Ok(samples.into_iter().map(|s| s.value).filter(|v| v.is_finite()).collect())
}

/// The forecast event of one SLA metric, computed from `values` (the last samples on the
/// 1-minute grid ending at `at_ms`), with `period` (in samples) when known, and the
/// seconds it took.
///
/// # Errors
/// [`EtlError::NoForecast`] when no model could be fitted (too little history);
/// [`EtlError::AnalyticsPanicked`] when the computation panicked.
pub async fn forecast_event(
    labels: Labels,
    values: Vec<f64>,
    period: Option<usize>,
    at_ms: i64,
) -> Result<(MetricForecastComputed, f64), EtlError> {
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
    let end = at_ms.div_euclid(STEP_MS) * STEP_MS;
    let points: Vec<Sample> =
        fc.values.iter().enumerate().map(|(k, v)| Sample::new(end + (k as i64 + 1) * STEP_MS, *v)).collect();
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
    };
    Ok((event, started.elapsed().as_secs_f64()))
}

/// The metadata event of one series from `values` on the 1-minute grid, and the seconds
/// it took.
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
