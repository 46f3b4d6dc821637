//! The autocorrelation function with Bartlett 95 % bands, as statsmodels
//! `acf(x, nlags, alpha=0.05)` (biased autocovariance, `adjusted=False`).

use statrs::distribution::{ContinuousCDF, Normal};

/// Autocorrelations `r_0..=r_nlags` and their confidence intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Acf {
    pub values: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

impl Acf {
    /// Lags whose interval excludes 0, with their autocorrelation (lag 0 included).
    pub fn significant(&self) -> Vec<(u32, f64)> {
        (0..self.values.len())
            .filter(|&k| self.lower[k] > 0.0 || self.upper[k] < 0.0)
            .map(|k| (k as u32, self.values[k]))
            .collect()
    }
}

/// statsmodels' default number of lags: `min(10 log10(n), n - 1)`.
pub fn default_nlags(n: usize) -> usize {
    ((10.0 * (n as f64).log10()) as usize).min(n.saturating_sub(1))
}

/// The ACF of `x` up to `nlags` with `1 - alpha` Bartlett bands. `None` for a constant
/// or too short series.
pub fn acf(x: &[f64], nlags: usize, alpha: f64) -> Option<Acf> {
    let n = x.len();
    if n < 2 {
        return None;
    }
    let nlags = nlags.min(n - 1);
    let m = crate::mean(x);
    let d: Vec<f64> = x.iter().map(|v| v - m).collect();
    let c0: f64 = d.iter().map(|v| v * v).sum::<f64>() / n as f64;
    if c0 == 0.0 {
        return None;
    }
    let values: Vec<f64> =
        (0..=nlags).map(|k| d[..n - k].iter().zip(&d[k..]).map(|(a, b)| a * b).sum::<f64>() / n as f64 / c0).collect();
    let z = Normal::new(0.0, 1.0).ok()?.inverse_cdf(1.0 - alpha / 2.0);
    let mut lower = Vec::with_capacity(values.len());
    let mut upper = Vec::with_capacity(values.len());
    let mut cum = 0.0;
    for k in 0..values.len() {
        let var = match k {
            0 => 0.0,
            1 => 1.0 / n as f64,
            _ => {
                cum += values[k - 1].powi(2);
                (1.0 + 2.0 * cum) / n as f64
            }
        };
        let half = z * var.sqrt();
        lower.push(values[k] - half);
        upper.push(values[k] + half);
    }
    Some(Acf { values, lower, upper })
}
