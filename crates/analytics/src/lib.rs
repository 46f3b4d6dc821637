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

/// Sums of squared `k`-step-ahead forecast errors, `k = 1..=horizon`, over many origins.
pub(crate) struct StepErrors {
    sum_sq: Vec<f64>,
    count: Vec<usize>,
}

impl StepErrors {
    pub(crate) fn new(horizon: usize) -> Self {
        Self { sum_sq: vec![0.0; horizon], count: vec![0; horizon] }
    }

    /// One `k`-step error (`k ≥ 1`); a non-finite one is not counted.
    pub(crate) fn add(&mut self, k: usize, error: f64) {
        if error.is_finite() {
            self.sum_sq[k - 1] += error * error;
            self.count[k - 1] += 1;
        }
    }

    /// The root-mean-square error at each step, its mean square divided by `n − k`
    /// rather than `n` for a model of `k` fitted parameters (in-sample errors understate
    /// the error of a forecast as the residual sum of squares does the noise variance),
    /// and made non-decreasing (an error further ahead is never assumed smaller). `None`
    /// unless every step has more than `k + 10` errors.
    pub(crate) fn rms(&self, k: usize) -> Option<Vec<f64>> {
        let mut out = Vec::with_capacity(self.sum_sq.len());
        let mut floor = 0.0f64;
        for (s, n) in self.sum_sq.iter().zip(&self.count) {
            if *n < k + 10 {
                return None;
            }
            floor = floor.max((s / (n - k) as f64).sqrt());
            out.push(floor);
        }
        Some(out)
    }
}

/// What the unit tests of several modules and the examples share (not part of the API).
#[doc(hidden)]
pub mod testing {
    /// Deterministic, roughly standard normal noise (splitmix64, sum of 4 uniforms).
    pub fn noise(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            let mut sum = 0.0;
            for _ in 0..4 {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                sum += ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
            }
            (sum - 2.0) * 3.0f64.sqrt()
        }
    }
}
