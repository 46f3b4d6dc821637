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

/// Cross products of the ADF design on the last `nobs` observations with columns
/// `[const, level, dlag_1..dlag_lags]` (`G = X'X`, `c = X'y`, `y'y`).
fn cross_products(x: &[f64], dx: &[f64], lags: usize, nobs: usize) -> (Vec<Vec<f64>>, Vec<f64>, f64) {
    let nd = dx.len();
    let (lo, hi) = (nd - nobs, nd);
    debug_assert!(lo >= lags, "the sample leaves room for every lag");
    let k = lags + 2;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let lagged = |l: usize| &dx[lo - l..hi - l];
    let level = &x[lo..hi];
    // the lagged differences are shifts of one series: s[i][j] = Σ dx[t−i]·dx[t−j] over
    // the sample needs one dot product per distance |i − j|, then each diagonal follows
    // from its predecessor by adding the row that enters the window and removing the one
    // that leaves it: O(n·k) instead of O(n·k²)
    let mut s = vec![vec![0.0; lags + 1]; lags + 1];
    for d in 0..=lags {
        s[0][d] = dot(lagged(0), lagged(d));
        s[d][0] = s[0][d];
    }
    for i in 0..lags {
        for j in i..lags {
            let v = s[i][j] + dx[lo - 1 - i] * dx[lo - 1 - j] - dx[hi - 1 - i] * dx[hi - 1 - j];
            s[i + 1][j + 1] = v;
            s[j + 1][i + 1] = v;
        }
    }
    // columns: [const, level x_t, dx_{t−1} … dx_{t−lags}]; target dx_t
    let mut g = vec![vec![0.0; k]; k];
    let mut c = vec![0.0; k];
    g[0][0] = nobs as f64;
    g[1][0] = level.iter().sum();
    g[1][1] = dot(level, level);
    c[0] = lagged(0).iter().sum();
    c[1] = dot(level, lagged(0));
    for l in 1..=lags {
        let j = l + 1;
        g[j][0] = lagged(l).iter().sum();
        g[j][1] = dot(level, lagged(l));
        c[j] = s[0][l];
        for l2 in 1..=l {
            g[j][l2 + 1] = s[l][l2];
        }
    }
    for i in 0..k {
        for j in 0..i {
            g[j][i] = g[i][j];
        }
    }
    (g, c, s[0][0])
}

/// The lower Cholesky factor of a symmetric positive definite matrix.
fn cholesky(g: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let k = g.len();
    let mut l = vec![vec![0.0; k]; k];
    for i in 0..k {
        for j in 0..=i {
            let s: f64 = (0..j).map(|m| l[i][m] * l[j][m]).sum();
            if i == j {
                let d = g[i][i] - s;
                if d <= 0.0 {
                    return None;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (g[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
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
    let dx: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    // lag search on a common sample so the AICs compare. Every candidate model is a
    // leading block of the largest design, so one Cholesky factor of X'X gives the SSR
    // of all of them: SSR_k = y'y − |L_k⁻¹ c_k|².
    let nobs_search = n - 1 - maxlag;
    let (g, c, yy) = cross_products(x, &dx, maxlag, nobs_search);
    let used_lag = match cholesky(&g) {
        Some(l) => {
            let k = maxlag + 2;
            let mut z = vec![0.0; k];
            for i in 0..k {
                let s: f64 = (0..i).map(|m| l[i][m] * z[m]).sum();
                z[i] = (c[i] - s) / l[i][i];
            }
            let nf = nobs_search as f64;
            let mut best: Option<(f64, usize)> = None;
            let mut explained = z[0] * z[0] + z[1] * z[1];
            for lags in 0..=maxlag {
                if lags > 0 {
                    explained += z[lags + 1] * z[lags + 1];
                }
                let ssr = (yy - explained).max(f64::MIN_POSITIVE);
                let aic = nf * ((2.0 * std::f64::consts::PI).ln() + (ssr / nf).ln() + 1.0) + 2.0 * (lags + 2) as f64;
                if best.is_none_or(|(b, _)| aic < b) {
                    best = Some((aic, lags));
                }
            }
            best?.1
        }
        // a rank-deficient design: search with QR, one regression per lag
        None => {
            let mut best: Option<(f64, usize)> = None;
            for lags in 0..=maxlag {
                let (cols, y) = design(x, &dx, lags, nobs_search);
                let aic = Ols::fit(&cols, &y)?.aic();
                if best.is_none_or(|(b, _)| aic < b) {
                    best = Some((aic, lags));
                }
            }
            best?.1
        }
    };
    // re-estimate with the chosen lag on every observation it allows
    let nobs = n - 1 - used_lag;
    let statistic = level_tvalue(x, &dx, used_lag, nobs).or_else(|| {
        let (cols, y) = design(x, &dx, used_lag, nobs);
        Some(Ols::fit(&cols, &y)?.tvalue(0))
    })?;
    Some(AdfResult { statistic, p_value: mackinnon_p(statistic), used_lag, nobs })
}

/// The t statistic of the level coefficient, from the Cholesky factor of `X'X`.
fn level_tvalue(x: &[f64], dx: &[f64], lags: usize, nobs: usize) -> Option<f64> {
    let (g, c, yy) = cross_products(x, dx, lags, nobs);
    let l = cholesky(&g)?;
    let k = lags + 2;
    let forward = |rhs: &[f64]| {
        let mut z = vec![0.0; k];
        for i in 0..k {
            let s: f64 = (0..i).map(|m| l[i][m] * z[m]).sum();
            z[i] = (rhs[i] - s) / l[i][i];
        }
        z
    };
    let z = forward(&c);
    // β = L⁻ᵀ z
    let mut beta = vec![0.0; k];
    for i in (0..k).rev() {
        let s: f64 = (i + 1..k).map(|m| l[m][i] * beta[m]).sum();
        beta[i] = (z[i] - s) / l[i][i];
    }
    let ssr = yy - z.iter().map(|v| v * v).sum::<f64>();
    if ssr <= 0.0 {
        return None;
    }
    // (X'X)⁻¹ at the level column (index 1) = |L⁻¹ e₁|²
    let mut e1 = vec![0.0; k];
    e1[1] = 1.0;
    let w = forward(&e1);
    let var = ssr / (nobs - k) as f64 * w.iter().map(|v| v * v).sum::<f64>();
    Some(beta[1] / var.sqrt())
}

/// The design of the ADF regression with `lags` lagged differences on the last `nobs`
/// observations: columns `[level, dlag_1..dlag_lags, const]` and the target `dx`.
fn design(x: &[f64], dx: &[f64], lags: usize, nobs: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let nd = dx.len();
    let y = dx[nd - nobs..].to_vec();
    let mut cols = Vec::with_capacity(lags + 2);
    // level x_t for the target dx_t = x_{t+1} - x_t
    cols.push((nd - nobs..nd).map(|t| x[t]).collect());
    for l in 1..=lags {
        cols.push((nd - nobs..nd).map(|t| dx[t - l]).collect());
    }
    cols.push(vec![1.0; nobs]);
    (cols, y)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The cross products straight from the design, row by row.
    fn naive(x: &[f64], dx: &[f64], lags: usize, nobs: usize) -> (Vec<Vec<f64>>, Vec<f64>, f64) {
        let nd = dx.len();
        let k = lags + 2;
        let mut g = vec![vec![0.0; k]; k];
        let mut c = vec![0.0; k];
        let mut yy = 0.0;
        for t in nd - nobs..nd {
            let row: Vec<f64> = (0..k)
                .map(|j| {
                    if j == 0 {
                        1.0
                    } else if j == 1 {
                        x[t]
                    } else {
                        dx[t - (j - 1)]
                    }
                })
                .collect();
            yy += dx[t] * dx[t];
            for i in 0..k {
                c[i] += row[i] * dx[t];
                for j in 0..k {
                    g[i][j] += row[i] * row[j];
                }
            }
        }
        (g, c, yy)
    }

    #[test]
    fn cross_products_by_diagonals_equal_the_direct_sums() {
        let x: Vec<f64> = (0..300).map(|i| ((i * 7919) % 101) as f64 * 0.37 + (i as f64 * 0.1).sin() * 5.0).collect();
        let dx: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
        for (lags, nobs) in [(0, 299), (5, 299 - 5), (15, 299 - 15), (3, 299 - 15)] {
            let (g, c, yy) = cross_products(&x, &dx, lags, nobs);
            let (g2, c2, yy2) = naive(&x, &dx, lags, nobs);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
            assert!(close(yy, yy2));
            for i in 0..lags + 2 {
                assert!(close(c[i], c2[i]), "c[{i}] {} vs {}", c[i], c2[i]);
                for j in 0..lags + 2 {
                    assert!(close(g[i][j], g2[i][j]), "lags {lags} g[{i}][{j}] {} vs {}", g[i][j], g2[i][j]);
                }
            }
        }
    }
}
