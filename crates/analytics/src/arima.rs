//! A small ARIMA(p, d, q) forecaster (p, q ≤ 2; d ∈ {0, 1}), fitted by conditional sum
//! of squares: d from the ADF test (difference when a unit root is not rejected at
//! 5 %), (p, q) by AIC among a few low orders, parameters by Nelder-Mead inside the
//! stationarity and invertibility regions.

use crate::optimize::nelder_mead;

/// The orders tried, `(p, q)`.
const ORDERS: [(usize, usize); 5] = [(1, 0), (0, 1), (1, 1), (2, 0), (0, 2)];

#[derive(Debug, Clone, PartialEq)]
pub struct Arima {
    pub p: usize,
    pub d: usize,
    pub q: usize,
    pub mean: f64,
    pub phi: Vec<f64>,
    pub theta: Vec<f64>,
    pub aic: f64,
    /// The last value of the series (to integrate a differenced forecast).
    last: f64,
    /// The last `p` values of the (differenced) series, oldest first.
    w_tail: Vec<f64>,
    /// The last `q` residuals, oldest first.
    e_tail: Vec<f64>,
}

/// Whether `1 − a₁z − a₂z²` has its roots outside the unit circle.
fn stable(a: &[f64]) -> bool {
    match a {
        [] => true,
        [a1] => a1.abs() < 1.0,
        [a1, a2] => a1 + a2 < 1.0 && a2 - a1 < 1.0 && a2.abs() < 1.0,
        _ => false,
    }
}

/// Conditional sum of squares, and the residuals, of `w` under the parameters.
fn css(w: &[f64], mean: f64, phi: &[f64], theta: &[f64], residuals: &mut Vec<f64>) -> f64 {
    let p = phi.len();
    residuals.clear();
    residuals.resize(w.len(), 0.0);
    let mut sum = 0.0;
    for t in p..w.len() {
        let mut pred = mean;
        for (i, f) in phi.iter().enumerate() {
            pred += f * (w[t - 1 - i] - mean);
        }
        for (j, th) in theta.iter().enumerate() {
            if t > j {
                pred += th * residuals[t - 1 - j];
            }
        }
        let e = w[t] - pred;
        residuals[t] = e;
        sum += e * e;
    }
    sum
}

impl Arima {
    /// Fits the best of the candidate orders. `None` for a series too short or flat.
    pub fn fit(y: &[f64]) -> Option<Arima> {
        if y.len() < 20 || crate::is_constant(y) {
            return None;
        }
        let d = match crate::adf::adfuller(y, None) {
            Some(r) if r.stationary() => 0,
            _ => 1,
        };
        Self::fit_order(y, d)
    }

    fn fit_order(y: &[f64], d: usize) -> Option<Arima> {
        let w: Vec<f64> = if d == 1 { y.windows(2).map(|v| v[1] - v[0]).collect() } else { y.to_vec() };
        if crate::is_constant(&w) {
            return None;
        }
        let mean0 = crate::mean(&w);
        let scale = (w.iter().map(|v| (v - mean0).powi(2)).sum::<f64>() / w.len() as f64).sqrt().max(1e-12);
        let mut best: Option<Arima> = None;
        let mut residuals = Vec::new();
        for (p, q) in ORDERS {
            let mut objective = |x: &[f64]| {
                let (phi, theta) = (&x[1..1 + p], &x[1 + p..]);
                let neg_theta: Vec<f64> = theta.iter().map(|t| -t).collect();
                if !stable(phi) || !stable(&neg_theta) {
                    return f64::INFINITY;
                }
                css(&w, mean0 + scale * x[0], phi, theta, &mut residuals)
            };
            let start = vec![0.0; 1 + p + q];
            let (x, value) = nelder_mead(&mut objective, &start, &vec![0.1; 1 + p + q], 200 * (1 + p + q), 1e-10);
            if !value.is_finite() {
                continue;
            }
            let n = (w.len() - p) as f64;
            let aic = n * (value / n).max(f64::MIN_POSITIVE).ln() + 2.0 * (1 + p + q) as f64;
            if best.as_ref().is_some_and(|b| b.aic <= aic) {
                continue;
            }
            let mean = mean0 + scale * x[0];
            let (phi, theta) = (x[1..1 + p].to_vec(), x[1 + p..].to_vec());
            css(&w, mean, &phi, &theta, &mut residuals);
            best = Some(Arima {
                p,
                d,
                q,
                mean,
                w_tail: w[w.len() - p..].to_vec(),
                e_tail: residuals[residuals.len() - q..].to_vec(),
                phi,
                theta,
                aic,
                last: *y.last()?,
            });
        }
        best
    }

    /// The same orders refitted on `y`.
    pub fn refit(&self, y: &[f64]) -> Option<Arima> {
        Self::fit_order(y, self.d)
    }

    /// The root-mean-square error of its `k`-step-ahead forecasts, `k = 1..=horizon`,
    /// made from every origin of `y` after the first 10 points with this fit's
    /// parameters held fixed (`y` is the series it was fitted to): see
    /// [`crate::holt_winters::HoltWinters::step_errors`]. `None` when too few origins.
    pub fn step_errors(&self, y: &[f64], horizon: usize) -> Option<Vec<f64>> {
        let w: Vec<f64> = if self.d == 1 { y.windows(2).map(|v| v[1] - v[0]).collect() } else { y.to_vec() };
        let mut residuals = Vec::new();
        css(&w, self.mean, &self.phi, &self.theta, &mut residuals);
        let burn = 10.max(self.p);
        let mut errors = crate::StepErrors::new(horizon);
        // an origin `t` has seen `w[..t]`, that is `y[..t + d]`
        for t in burn..w.len() {
            let at = Arima {
                w_tail: w[t - self.p..t].to_vec(),
                e_tail: residuals[t.saturating_sub(self.q)..t].to_vec(),
                last: y[t + self.d - 1],
                ..self.clone()
            };
            if at.e_tail.len() < self.q {
                continue;
            }
            let ahead = &y[t + self.d..];
            for (k, (pred, actual)) in at.forecast(horizon.min(ahead.len())).iter().zip(ahead).enumerate() {
                errors.add(k + 1, actual - pred);
            }
        }
        errors.rms(1 + self.p + self.q)
    }

    /// The next `h` values.
    pub fn forecast(&self, h: usize) -> Vec<f64> {
        let mut w = self.w_tail.clone();
        let mut e = self.e_tail.clone();
        let mut out = Vec::with_capacity(h);
        let mut level = self.last;
        for _ in 0..h {
            let mut next = self.mean;
            for (i, f) in self.phi.iter().enumerate() {
                next += f * (w[w.len() - 1 - i] - self.mean);
            }
            for (j, th) in self.theta.iter().enumerate() {
                next += th * e[e.len() - 1 - j];
            }
            if !w.is_empty() {
                w.remove(0);
                w.push(next);
            }
            if !e.is_empty() {
                e.remove(0);
                e.push(0.0);
            }
            if self.d == 1 {
                level += next;
                out.push(level);
            } else {
                out.push(next);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;

    #[test]
    fn the_step_errors_of_an_ar1_follow_its_theoretical_forecast_variance() {
        // y_t = 0.7 y_{t-1} + e_t, e ~ (0, 1): the h-step forecast error has variance
        // (1 − 0.7^{2h}) / (1 − 0.7²) (Box & Jenkins, §5.1)
        let mut e = noise(7);
        let mut y = vec![0.0];
        for t in 1..3000 {
            y.push(0.7 * y[t - 1] + e());
        }
        let m = Arima::fit(&y).unwrap();
        assert_eq!((m.p, m.d, m.q), (1, 0, 0));
        let sd = m.step_errors(&y, 10).unwrap();
        for (k, s) in sd.iter().enumerate() {
            let h = (k + 1) as i32;
            let theory = ((1.0 - 0.49f64.powi(h)) / (1.0 - 0.49)).sqrt();
            assert!((s / theory - 1.0).abs() < 0.06, "step {h}: {s} against {theory}");
        }
    }

    #[test]
    fn recovers_an_ar1_and_forecasts_its_decay() {
        // y_t = 10 + 0.7 (y_{t-1} - 10) + e_t with a deterministic noise
        let mut e = noise(1);
        let mut y = vec![10.0];
        for t in 1..600 {
            y.push(10.0 + 0.7 * (y[t - 1] - 10.0) + 0.3 * e());
        }
        let m = Arima::fit(&y).unwrap();
        assert_eq!(m.d, 0);
        assert!(m.p >= 1, "{m:?}");
        assert!((m.phi[0] - 0.7).abs() < 0.1, "{m:?}");
        let fc = m.forecast(50);
        assert!((fc[49] - 10.0).abs() < 0.2, "decays to the mean: {}", fc[49]);
    }

    #[test]
    fn differences_a_random_walk_with_drift() {
        let mut e = noise(2);
        let mut y = vec![0.0];
        for t in 1..400 {
            y.push(y[t - 1] + 0.5 + e());
        }
        let m = Arima::fit(&y).unwrap();
        assert_eq!(m.d, 1);
        let fc = m.forecast(10);
        // keeps drifting about 0.5 a step
        assert!((fc[9] - fc[0] - 4.5).abs() < 1.5, "{fc:?}");
    }

    #[test]
    fn the_stability_regions() {
        assert!(stable(&[0.5]) && !stable(&[1.0]));
        assert!(stable(&[0.5, 0.3]) && !stable(&[0.8, 0.3]) && !stable(&[0.1, -1.0]));
    }
}
