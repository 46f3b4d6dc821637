//! Holt-Winters exponential smoothing with an additive trend and additive or
//! multiplicative seasonality (and Holt's linear method without seasonality), in
//! statsmodels' `ExponentialSmoothing` form. Smoothing parameters and the initial level
//! and trend are estimated by minimising the sum of squared one-step errors; the
//! initial seasonal states come from a classical decomposition of the first cycles.

use crate::optimize::{logit, nelder_mead, sigmoid};
use crate::seasonality::{decompose, Model};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seasonal {
    None,
    Additive,
    Multiplicative,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HoltWinters {
    pub seasonal: Seasonal,
    pub period: usize,
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub sse: f64,
    /// States after the last observation.
    level: f64,
    trend: f64,
    /// The last `period` seasonal states, oldest first.
    season: Vec<f64>,
}

/// Runs the recursions; returns the SSE and the final states.
fn run(
    y: &[f64],
    seasonal: Seasonal,
    period: usize,
    a: f64,
    b: f64,
    g: f64,
    l0: f64,
    b0: f64,
    s0: &[f64],
) -> (f64, f64, f64, Vec<f64>) {
    let mut level = l0;
    let mut trend = b0;
    let mut season: Vec<f64> = s0.to_vec();
    let mut sse = 0.0;
    for (t, &obs) in y.iter().enumerate() {
        let base = level + trend;
        let (pred, s_old) = match seasonal {
            Seasonal::None => (base, 0.0),
            Seasonal::Additive => {
                let s = season[t % period];
                (base + s, s)
            }
            Seasonal::Multiplicative => {
                let s = season[t % period];
                (base * s, s)
            }
        };
        let e = obs - pred;
        sse += e * e;
        let new_level = match seasonal {
            Seasonal::None => a * obs + (1.0 - a) * base,
            Seasonal::Additive => a * (obs - s_old) + (1.0 - a) * base,
            Seasonal::Multiplicative => a * (obs / s_old) + (1.0 - a) * base,
        };
        match seasonal {
            Seasonal::None => {}
            Seasonal::Additive => season[t % period] = g * (obs - base) + (1.0 - g) * s_old,
            Seasonal::Multiplicative => season[t % period] = g * (obs / base) + (1.0 - g) * s_old,
        }
        trend = b * (new_level - level) + (1.0 - b) * trend;
        level = new_level;
        if !sse.is_finite() {
            return (f64::INFINITY, level, trend, season);
        }
    }
    // rotate so the states are ordered oldest first relative to the next time step
    let n = y.len();
    if seasonal != Seasonal::None {
        season.rotate_left(n % period);
    }
    (sse, level, trend, season)
}

/// Initial states: seasonal indices from a decomposition of the first (up to ten)
/// cycles, level and trend from a line through the deseasonalised start.
fn initial_states(y: &[f64], seasonal: Seasonal, period: usize) -> Option<(f64, f64, Vec<f64>)> {
    match seasonal {
        Seasonal::None => {
            let k = y.len().min(10);
            if k < 2 {
                return None;
            }
            let slope = (y[k - 1] - y[0]) / (k - 1) as f64;
            Some((y[0] - slope, slope, Vec::new()))
        }
        Seasonal::Additive | Seasonal::Multiplicative => {
            let cycles = (y.len() / period).min(10);
            if cycles < 2 {
                return None;
            }
            let head = &y[..cycles * period];
            let model = if seasonal == Seasonal::Additive { Model::Additive } else { Model::Multiplicative };
            let d = decompose(head, period, model)?;
            let points: Vec<(f64, f64)> =
                d.trend.iter().enumerate().filter_map(|(i, t)| t.map(|t| (i as f64, t))).collect();
            let n = points.len() as f64;
            let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
            let my = points.iter().map(|p| p.1).sum::<f64>() / n;
            let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
            let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
            let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            // the level "before" the first observation
            let l0 = my - slope * (mx + 1.0);
            Some((l0, slope, d.seasonal))
        }
    }
}

impl HoltWinters {
    /// Fits the model to `y`. `None` when there is too little data (two full cycles
    /// for a seasonal model) or a multiplicative model meets values ≤ 0.
    pub fn fit(y: &[f64], seasonal: Seasonal, period: usize) -> Option<Self> {
        if seasonal == Seasonal::Multiplicative && y.iter().any(|v| *v <= 0.0) {
            return None;
        }
        let period = if seasonal == Seasonal::None { 1 } else { period };
        let (l0, b0, s0) = initial_states(y, seasonal, period)?;
        let scale = {
            let m = crate::mean(y);
            (y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / y.len() as f64).sqrt().max(1e-12)
        };
        let tscale = scale / y.len() as f64;
        let unpack = |p: &[f64]| -> (f64, f64, f64, f64, f64) {
            let a = sigmoid(p[0]);
            let b = sigmoid(p[1]);
            let g = (1.0 - a) * sigmoid(p[2]);
            (a, b, g, l0 + scale * p[3], b0 + tscale * p[4])
        };
        let mut objective = |p: &[f64]| {
            let (a, b, g, l, t) = unpack(p);
            run(y, seasonal, period, a, b, g, l, t, &s0).0
        };
        let starts: [[f64; 3]; 3] = [[0.3, 0.05, 0.1], [0.8, 0.01, 0.3], [0.1, 0.2, 0.05]];
        let mut best: Option<(Vec<f64>, f64)> = None;
        for s in starts {
            let start = [logit(s[0]), logit(s[1]), logit(s[2] / (1.0 - s[0])), 0.0, 0.0];
            let (p, v) = nelder_mead(&mut objective, &start, &[1.0, 1.0, 1.0, 0.1, 0.1], 1500, 1e-10);
            if best.as_ref().is_none_or(|(_, bv)| v < *bv) {
                best = Some((p, v));
            }
        }
        let (p, _) = best?;
        let (a, b, g, l, t) = unpack(&p);
        let (sse, level, trend, season) = run(y, seasonal, period, a, b, g, l, t, &s0);
        if !sse.is_finite() {
            return None;
        }
        Some(HoltWinters {
            seasonal,
            period,
            alpha: a,
            beta: b,
            gamma: if seasonal == Seasonal::None { 0.0 } else { g },
            sse,
            level,
            trend,
            season,
        })
    }

    /// The next `h` values.
    pub fn forecast(&self, h: usize) -> Vec<f64> {
        (1..=h)
            .map(|k| {
                let base = self.level + k as f64 * self.trend;
                match self.seasonal {
                    Seasonal::None => base,
                    Seasonal::Additive => base + self.season[(k - 1) % self.period],
                    Seasonal::Multiplicative => base * self.season[(k - 1) % self.period],
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_seasonal_series_is_forecast_almost_exactly() {
        let f = |i: usize| 100.0 + 0.5 * i as f64 + 10.0 * (std::f64::consts::TAU * i as f64 / 12.0).sin();
        let y: Vec<f64> = (0..240).map(f).collect();
        for s in [Seasonal::Additive, Seasonal::Multiplicative] {
            let hw = HoltWinters::fit(&y, s, 12).unwrap();
            let fc = hw.forecast(12);
            for (k, v) in fc.iter().enumerate() {
                assert!((v - f(240 + k)).abs() < 1.5, "{s:?} h={k}: {v} vs {}", f(240 + k));
            }
        }
        let holt =
            HoltWinters::fit(&(0..50).map(|i| 3.0 + 2.0 * i as f64).collect::<Vec<_>>(), Seasonal::None, 1).unwrap();
        assert!((holt.forecast(1)[0] - 103.0).abs() < 1e-6);
    }

    #[test]
    fn refuses_what_it_cannot_fit() {
        let y: Vec<f64> = (0..30).map(|i| i as f64 - 5.0).collect();
        assert!(HoltWinters::fit(&y, Seasonal::Multiplicative, 5).is_none(), "values <= 0");
        assert!(HoltWinters::fit(&y[10..], Seasonal::Additive, 12).is_none(), "less than two cycles");
    }
}
