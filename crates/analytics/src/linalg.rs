//! Ordinary least squares by Householder QR: coefficients, residual sum of squares,
//! and the standard error of one coefficient.

/// The fit of `y = X b + e`.
pub struct Ols {
    pub coef: Vec<f64>,
    pub ssr: f64,
    pub nobs: usize,
    /// `(X'X)^-1` diagonal.
    pub xtx_inv_diag: Vec<f64>,
}

impl Ols {
    /// Columns of `X` given column-major (`cols[j][i]`).
    pub fn fit(cols: &[Vec<f64>], y: &[f64]) -> Option<Ols> {
        let n = y.len();
        let k = cols.len();
        if k == 0 || n < k {
            return None;
        }
        // copy into a column-major matrix we can transform
        let mut a: Vec<Vec<f64>> = cols.to_vec();
        let mut qty = y.to_vec();
        let mut r = vec![vec![0.0; k]; k];
        for j in 0..k {
            // Householder vector for column j below the diagonal
            let norm = a[j][j..].iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm == 0.0 {
                return None;
            }
            let alpha = if a[j][j] > 0.0 { -norm } else { norm };
            let mut v: Vec<f64> = a[j][j..].to_vec();
            v[0] -= alpha;
            let vnorm2: f64 = v.iter().map(|x| x * x).sum();
            if vnorm2 == 0.0 {
                return None;
            }
            for col in a.iter_mut().skip(j) {
                let dot: f64 = v.iter().zip(&col[j..]).map(|(a, b)| a * b).sum();
                let f = 2.0 * dot / vnorm2;
                for (c, vi) in col[j..].iter_mut().zip(&v) {
                    *c -= f * vi;
                }
            }
            let dot: f64 = v.iter().zip(&qty[j..]).map(|(a, b)| a * b).sum();
            let f = 2.0 * dot / vnorm2;
            for (c, vi) in qty[j..].iter_mut().zip(&v) {
                *c -= f * vi;
            }
            for (i, row) in r.iter_mut().enumerate().take(j + 1) {
                row[j] = a[j][i];
            }
        }
        // back substitution R b = Q'y
        let mut coef = vec![0.0; k];
        for i in (0..k).rev() {
            let s: f64 = (i + 1..k).map(|j| r[i][j] * coef[j]).sum();
            if r[i][i] == 0.0 {
                return None;
            }
            coef[i] = (qty[i] - s) / r[i][i];
        }
        let ssr: f64 = (0..n)
            .map(|i| {
                let fit: f64 = (0..k).map(|j| cols[j][i] * coef[j]).sum();
                (y[i] - fit).powi(2)
            })
            .sum();
        // R^-1 (upper triangular), then diag((R'R)^-1) = row norms of R^-1
        let mut rinv = vec![vec![0.0; k]; k];
        for i in 0..k {
            rinv[i][i] = 1.0 / r[i][i];
            for j in (i + 1)..k {
                let s: f64 = (i..j).map(|m| rinv[i][m] * r[m][j]).sum();
                rinv[i][j] = -s / r[j][j];
            }
        }
        let xtx_inv_diag = (0..k).map(|i| (i..k).map(|j| rinv[i][j].powi(2)).sum()).collect();
        Some(Ols { coef, ssr, nobs: n, xtx_inv_diag })
    }

    /// The t statistic of coefficient `j`.
    pub fn tvalue(&self, j: usize) -> f64 {
        let k = self.coef.len();
        let sigma2 = self.ssr / (self.nobs - k) as f64;
        self.coef[j] / (sigma2 * self.xtx_inv_diag[j]).sqrt()
    }

    /// statsmodels' AIC: `-2 llf + 2 k`, with the Gaussian log-likelihood.
    pub fn aic(&self) -> f64 {
        let n = self.nobs as f64;
        let llf = -n / 2.0 * ((2.0 * std::f64::consts::PI).ln() + (self.ssr / n).ln() + 1.0);
        -2.0 * llf + 2.0 * self.coef.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_line_and_its_standard_errors() {
        // y = 2 + 3x + e with e = [0.1, -0.1, 0.05, -0.05, 0]
        let x = [0.0, 1.0, 2.0, 3.0, 4.0];
        let e = [0.1, -0.1, 0.05, -0.05, 0.0];
        let y: Vec<f64> = x.iter().zip(e).map(|(x, e)| 2.0 + 3.0 * x + e).collect();
        let ols = Ols::fit(&[vec![1.0; 5], x.to_vec()], &y).unwrap();
        // numpy.polyfit / statsmodels OLS: intercept 2.03, slope 2.985, ssr 0.02275
        assert!((ols.coef[0] - 2.03).abs() < 1e-12, "{:?}", ols.coef);
        assert!((ols.coef[1] - 2.985).abs() < 1e-12);
        assert!((ols.ssr - 0.02275).abs() < 1e-12, "{}", ols.ssr);
        // var(slope) = sigma2 / Sxx = (0.0175/3) / 10
        let se = (0.02275 / 3.0 / 10.0f64).sqrt();
        assert!((ols.tvalue(1) - 2.985 / se).abs() < 1e-9);
    }
}
