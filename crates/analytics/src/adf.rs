//! The Augmented Dickey-Fuller test with a constant, lag order chosen by AIC, and
//! MacKinnon (1994, 2010) approximate p-values: statsmodels
//! `adfuller(x, regression="c", autolag="AIC")`.

use statrs::distribution::{ContinuousCDF, Normal};

use crate::linalg::Ols;

#[derive(Debug, Clone, PartialEq)]
pub struct AdfResult {
    pub statistic: f64,
    pub p_value: f64,
    pub used_lag: usize,
    pub nobs: usize,
}

impl AdfResult {
    /// Stationary at 5 %.
    pub fn stationary(&self) -> bool {
        self.p_value < 0.05
    }
}

/// statsmodels' default maximum lag: `ceil(12 (n/100)^(1/4))`, at most `n/2 - 2`.
pub fn default_maxlag(n: usize) -> Option<usize> {
    let m = (12.0 * (n as f64 / 100.0).powf(0.25)).ceil() as i64;
    let m = m.min(n as i64 / 2 - 2);
    (m >= 0).then_some(m as usize)
}

/// The design of the ADF regression with `lags` lagged differences on the last `nobs`
/// observations: columns `[level, dlag_1..dlag_lags, const]` and the target `dx`.
fn design(x: &[f64], lags: usize, nobs: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let dx: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let nd = dx.len();
    let y = dx[nd - nobs..].to_vec();
    let mut cols = Vec::with_capacity(lags + 2);
    // level x_{t-1} for the target dx_t (dx_t = x_{t+1} - x_t in 0-based diff indexing)
    cols.push((nd - nobs..nd).map(|t| x[t]).collect());
    for l in 1..=lags {
        cols.push((nd - nobs..nd).map(|t| dx[t - l]).collect());
    }
    cols.push(vec![1.0; nobs]);
    (cols, y)
}

/// Runs the test. `None` for a constant series or one too short for the regression.
pub fn adfuller(x: &[f64], maxlag: Option<usize>) -> Option<AdfResult> {
    if crate::is_constant(x) {
        return None;
    }
    let n = x.len();
    let maxlag = match maxlag {
        Some(m) if (m as i64) <= n as i64 / 2 - 2 => m,
        Some(_) => return None,
        None => default_maxlag(n)?,
    };
    // lag search on a common sample so the AICs compare
    let nobs_search = n - 1 - maxlag;
    let mut best: Option<(f64, usize)> = None;
    for lags in 0..=maxlag {
        let (cols, y) = design(x, lags, nobs_search);
        let ols = Ols::fit(&cols, &y)?;
        let aic = ols.aic();
        if best.is_none_or(|(b, _)| aic < b) {
            best = Some((aic, lags));
        }
    }
    let (_, used_lag) = best?;
    // re-estimate with the chosen lag on every observation it allows
    let nobs = n - 1 - used_lag;
    let (cols, y) = design(x, used_lag, nobs);
    let ols = Ols::fit(&cols, &y)?;
    let statistic = ols.tvalue(0);
    Some(AdfResult { statistic, p_value: mackinnon_p(statistic), used_lag, nobs })
}

/// MacKinnon's approximate p-value of a tau statistic, regression with a constant, one
/// series (statsmodels `mackinnonp(stat, "c", N=1)`).
pub fn mackinnon_p(stat: f64) -> f64 {
    const TAU_MAX: f64 = 2.74;
    const TAU_MIN: f64 = -18.83;
    const TAU_STAR: f64 = -1.61;
    const SMALL: [f64; 3] = [2.1659, 1.4412, 3.8269e-2];
    const LARGE: [f64; 4] = [1.7339, 9.3202e-1, -1.2745e-1, -1.0368e-2];
    if stat > TAU_MAX {
        return 1.0;
    }
    if stat < TAU_MIN {
        return 0.0;
    }
    let coef: &[f64] = if stat <= TAU_STAR { &SMALL } else { &LARGE };
    let poly = coef.iter().rev().fold(0.0, |acc, c| acc * stat + c);
    Normal::new(0.0, 1.0).map(|n| n.cdf(poly)).unwrap_or(f64::NAN)
}
