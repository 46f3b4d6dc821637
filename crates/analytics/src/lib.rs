//! Pure compute for slamon (SPEC §8): the Augmented Dickey-Fuller test with lag order
//! by AIC and MacKinnon p-values, the autocorrelation function with Bartlett bands, the
//! seasonal period by periodogram peak refined by seasonal decomposition, Holt-Winters
//! forecasting with parameters fitted by minimising one-step squared errors, and
//! hold-out model selection. Numbers are checked against statsmodels (fixtures in
//! `tests/fixtures`, produced by `scripts/statsmodels_fixtures.py`).

// Index loops mirror the formulas they implement (matrix and recursion indices).
#![allow(clippy::needless_range_loop)]

pub mod acf;
pub mod adf;
pub mod arima;
pub mod forecast;
pub mod holt_winters;
mod linalg;
pub mod metadata;
pub mod optimize;
pub mod seasonality;

/// Whether every value is the same (within a relative 1e-12): such a series skips all
/// of the analysis.
pub fn is_constant(x: &[f64]) -> bool {
    let Some(first) = x.first() else { return true };
    let scale = first.abs().max(1e-300);
    x.iter().all(|v| ((v - first).abs() / scale) < 1e-12 || (v - first).abs() < 1e-300)
}

pub(crate) fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}
