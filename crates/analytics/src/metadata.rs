//! The hourly metadata of one series: stationarity (ADF), autocorrelation (ACF with
//! Bartlett bands) and seasonality, or `constant` when the series is constant.

use crate::acf::acf;
use crate::adf::{adfuller, AdfResult};
use crate::seasonality::{seasonality, SeasonalityResult};

#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub constant: bool,
    pub stationarity: Option<AdfResult>,
    /// Lags whose 95 % interval excludes 0, with their autocorrelation.
    pub autocorrelation: Vec<(u32, f64)>,
    pub seasonality: Option<SeasonalityResult>,
}

/// Computes the metadata of `x` with autocorrelations up to `nlags`.
pub fn metadata(x: &[f64], nlags: usize) -> Metadata {
    if crate::is_constant(x) {
        return Metadata { constant: true, stationarity: None, autocorrelation: Vec::new(), seasonality: None };
    }
    Metadata {
        constant: false,
        stationarity: adfuller(x, None),
        autocorrelation: acf(x, nlags, 0.05).map(|a| a.significant()).unwrap_or_default(),
        seasonality: seasonality(x),
    }
}
