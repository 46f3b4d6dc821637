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
    /// Why a part is missing although the series is not constant: an output that was not
    /// finite (statsmodels raises on such input; we leave the part out and say why).
    pub skipped: Vec<String>,
}

/// Computes the metadata of `x` with autocorrelations up to `nlags`. Every number in the
/// result is finite: a part whose computation gives a NaN or an infinity (a short
/// step-then-flat series makes the ADF regression exact, its statistic −∞) is left out and
/// the reason is in [`Metadata::skipped`].
pub fn metadata(x: &[f64], nlags: usize) -> Metadata {
    if crate::is_constant(x) {
        return Metadata {
            constant: true,
            stationarity: None,
            autocorrelation: Vec::new(),
            seasonality: None,
            skipped: Vec::new(),
        };
    }
    let mut skipped = Vec::new();
    let stationarity = adfuller(x, None).filter(|a| {
        let finite = a.statistic.is_finite() && a.p_value.is_finite();
        if !finite {
            skipped.push(format!(
                "stationarity: the ADF statistic is {} (p-value {}) on {} observations",
                a.statistic, a.p_value, a.nobs
            ));
        }
        finite
    });
    let mut autocorrelation = acf(x, nlags, 0.05).map(|a| a.significant()).unwrap_or_default();
    let lags = autocorrelation.len();
    autocorrelation.retain(|(_, v)| v.is_finite());
    if autocorrelation.len() < lags {
        skipped.push(format!("autocorrelation: {} lags were not finite", lags - autocorrelation.len()));
    }
    let seasonality = seasonality(x).map(|mut s| {
        for (name, part) in [("additive", &mut s.additive), ("multiplicative", &mut s.multiplicative)] {
            if part.as_ref().is_some_and(|d| !d.error.is_finite() || !d.strength.is_finite()) {
                skipped.push(format!("seasonality: the {name} decomposition's error is not finite"));
                *part = None;
            }
        }
        s
    });
    Metadata { constant: false, stationarity, autocorrelation, seasonality, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_input_gives_finite_numbers_or_a_reason() {
        // a series that stopped reporting: a step, then a flat tail; and huge opposite values
        for x in [vec![50.0, 80.0, 80.0, 80.0], vec![0.0, 0.0, 0.0, 1e308, -1e308, 0.0]] {
            let md = metadata(&x, 40);
            assert!(!md.constant);
            assert!(md.stationarity.is_none(), "{x:?}: {:?}", md.stationarity);
            assert!(!md.skipped.is_empty(), "{x:?}: the reason is given");
            assert!(md.autocorrelation.iter().all(|(_, v)| v.is_finite()));
        }
    }
}
