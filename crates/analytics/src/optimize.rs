//! Nelder-Mead minimisation (unconstrained; callers map bounded parameters through a
//! smooth transform).

/// Minimises `f` from `start` with initial steps `step`; returns the best point and
/// value after at most `max_evals` evaluations.
pub fn nelder_mead(
    f: &mut impl FnMut(&[f64]) -> f64,
    start: &[f64],
    step: &[f64],
    max_evals: usize,
    ftol: f64,
) -> (Vec<f64>, f64) {
    let n = start.len();
    let mut simplex: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
    simplex.push(start.to_vec());
    for i in 0..n {
        let mut p = start.to_vec();
        p[i] += step[i];
        simplex.push(p);
    }
    let mut values: Vec<f64> = simplex.iter().map(|p| sanitize(f(p))).collect();
    let mut evals = n + 1;
    while evals < max_evals {
        // order
        let mut idx: Vec<usize> = (0..=n).collect();
        idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        simplex = idx.iter().map(|&i| simplex[i].clone()).collect();
        values = idx.iter().map(|&i| values[i]).collect();
        let (best, worst) = (values[0], values[n]);
        if (worst - best).abs() <= ftol * (best.abs() + worst.abs()) + 1e-300 {
            break;
        }
        let centroid: Vec<f64> = (0..n).map(|j| simplex[..n].iter().map(|p| p[j]).sum::<f64>() / n as f64).collect();
        let towards =
            |t: f64| -> Vec<f64> { (0..n).map(|j| centroid[j] + t * (simplex[n][j] - centroid[j])).collect() };
        let reflected = towards(-1.0);
        let fr = sanitize(f(&reflected));
        evals += 1;
        if fr < values[0] {
            let expanded = towards(-2.0);
            let fe = sanitize(f(&expanded));
            evals += 1;
            if fe < fr {
                simplex[n] = expanded;
                values[n] = fe;
            } else {
                simplex[n] = reflected;
                values[n] = fr;
            }
        } else if fr < values[n - 1] {
            simplex[n] = reflected;
            values[n] = fr;
        } else {
            let (contracted, fc) = if fr < values[n] {
                let c = towards(-0.5);
                let fc = sanitize(f(&c));
                (c, fc)
            } else {
                let c = towards(0.5);
                let fc = sanitize(f(&c));
                (c, fc)
            };
            evals += 1;
            if fc < values[n].min(fr) {
                simplex[n] = contracted;
                values[n] = fc;
            } else {
                // shrink towards the best
                let best = simplex[0].clone();
                for i in 1..=n {
                    for (v, b) in simplex[i].iter_mut().zip(&best) {
                        *v = b + 0.5 * (*v - b);
                    }
                    values[i] = sanitize(f(&simplex[i]));
                }
                evals += n;
            }
        }
    }
    let best = (0..=n).min_by(|&a, &b| values[a].total_cmp(&values[b])).unwrap_or(0);
    (simplex[best].clone(), values[best])
}

/// Minimises `f` (which returns the value and writes the gradient) by limited-memory
/// BFGS with a backtracking (Armijo) line search, from `x0`, for at most `max_iter`
/// iterations or until the relative decrease stays below `ftol`.
pub fn lbfgs(f: &mut impl FnMut(&[f64], &mut [f64]) -> f64, x0: &[f64], max_iter: usize, ftol: f64) -> (Vec<f64>, f64) {
    const MEMORY: usize = 30;
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    if !fx.is_finite() {
        return (x, fx);
    }
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut stalls = 0;
    for _ in 0..max_iter {
        // two-loop recursion: d = -H g
        let mut q = g.clone();
        let k = s_hist.len();
        let mut alphas = vec![0.0; k];
        for i in (0..k).rev() {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            alphas[i] = rho * dot(&s_hist[i], &q);
            for (qj, yj) in q.iter_mut().zip(&y_hist[i]) {
                *qj -= alphas[i] * yj;
            }
        }
        let gamma = if k > 0 {
            dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1])
        } else {
            1.0 / norm(&g).max(1e-300)
        };
        for qj in q.iter_mut() {
            *qj *= gamma;
        }
        for i in 0..k {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            let beta = rho * dot(&y_hist[i], &q);
            for (qj, sj) in q.iter_mut().zip(&s_hist[i]) {
                *qj += (alphas[i] - beta) * sj;
            }
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // not a descent direction: restart with steepest descent
            s_hist.clear();
            y_hist.clear();
            let scale = 1.0 / norm(&g).max(1e-300);
            d = g.iter().map(|v| -v * scale).collect();
            slope = dot(&g, &d);
            if slope >= 0.0 {
                break;
            }
        }
        // backtracking line search
        let mut step = 1.0;
        let mut f_new;
        loop {
            for j in 0..n {
                x_new[j] = x[j] + step * d[j];
            }
            f_new = f(&x_new, &mut g_new);
            if f_new.is_finite() && f_new <= fx + 1e-4 * step * slope {
                break;
            }
            step *= 0.5;
            if step < 1e-12 {
                return (x, fx);
            }
        }
        let s: Vec<f64> = (0..n).map(|j| x_new[j] - x[j]).collect();
        let yv: Vec<f64> = (0..n).map(|j| g_new[j] - g[j]).collect();
        let sy = dot(&s, &yv);
        let decrease = (fx - f_new) / fx.abs().max(1e-300);
        x.copy_from_slice(&x_new);
        g.copy_from_slice(&g_new);
        fx = f_new;
        if sy > 1e-12 * norm(&s) * norm(&yv) {
            if s_hist.len() == MEMORY {
                s_hist.remove(0);
                y_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(yv);
        }
        if decrease < ftol {
            stalls += 1;
            if stalls >= 3 {
                break;
            }
        } else {
            stalls = 0;
        }
    }
    (x, fx)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn sanitize(v: f64) -> f64 {
    if v.is_nan() {
        f64::INFINITY
    } else {
        v
    }
}

/// The logistic function, mapping ℝ onto (0, 1).
pub fn sigmoid(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

/// The inverse of [`sigmoid`] for `p` in (0, 1).
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lbfgs_minimises_the_rosenbrock_function() {
        let mut f = |p: &[f64], g: &mut [f64]| {
            g[0] = -2.0 * (1.0 - p[0]) - 400.0 * p[0] * (p[1] - p[0] * p[0]);
            g[1] = 200.0 * (p[1] - p[0] * p[0]);
            (1.0 - p[0]).powi(2) + 100.0 * (p[1] - p[0] * p[0]).powi(2)
        };
        let (x, v) = lbfgs(&mut f, &[-1.2, 1.0], 500, 1e-16);
        assert!(v < 1e-10, "{v} at {x:?}");
    }

    #[test]
    fn minimises_the_rosenbrock_function() {
        let mut f = |p: &[f64]| (1.0 - p[0]).powi(2) + 100.0 * (p[1] - p[0] * p[0]).powi(2);
        let (x, v) = nelder_mead(&mut f, &[-1.2, 1.0], &[0.5, 0.5], 5000, 1e-14);
        assert!(v < 1e-8, "{v} at {x:?}");
        assert!((x[0] - 1.0).abs() < 1e-3 && (x[1] - 1.0).abs() < 1e-3);
    }
}
