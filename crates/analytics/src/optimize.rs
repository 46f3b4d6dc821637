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
    let mut opt = Lbfgs::new(x0, max_iter, ftol);
    let mut g = vec![0.0; x0.len()];
    while let Some(x) = opt.point() {
        let v = f(x, &mut g);
        opt.tell(v, &g);
    }
    opt.result()
}

/// [`lbfgs`] one evaluation at a time: it says where it wants the function next
/// ([`Lbfgs::point`]) and is told the value and gradient there ([`Lbfgs::tell`]), so
/// that a caller can evaluate several problems together.
pub struct Lbfgs {
    max_iter: usize,
    ftol: f64,
    x: Vec<f64>,
    g: Vec<f64>,
    fx: f64,
    s_hist: Vec<Vec<f64>>,
    y_hist: Vec<Vec<f64>>,
    /// The point asked for: `x0` first, then `x + step·d`.
    x_new: Vec<f64>,
    d: Vec<f64>,
    slope: f64,
    step: f64,
    iter: usize,
    stalls: usize,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Search,
    Done,
}

impl Lbfgs {
    const MEMORY: usize = 30;

    pub fn new(x0: &[f64], max_iter: usize, ftol: f64) -> Self {
        let n = x0.len();
        Lbfgs {
            max_iter,
            ftol,
            x: x0.to_vec(),
            g: vec![0.0; n],
            fx: f64::INFINITY,
            s_hist: Vec::new(),
            y_hist: Vec::new(),
            x_new: x0.to_vec(),
            d: vec![0.0; n],
            slope: 0.0,
            step: 1.0,
            iter: 0,
            stalls: 0,
            phase: Phase::Start,
        }
    }

    /// Where to evaluate next; `None` once finished.
    pub fn point(&self) -> Option<&[f64]> {
        (self.phase != Phase::Done).then_some(self.x_new.as_slice())
    }

    /// The value and gradient at [`Lbfgs::point`].
    pub fn tell(&mut self, f_new: f64, g_new: &[f64]) {
        match self.phase {
            Phase::Done => {}
            Phase::Start => {
                self.fx = f_new;
                self.g.copy_from_slice(g_new);
                if f_new.is_finite() {
                    self.begin_iteration();
                } else {
                    self.phase = Phase::Done;
                }
            }
            Phase::Search => {
                if f_new.is_finite() && f_new <= self.fx + 1e-4 * self.step * self.slope {
                    self.accept(f_new, g_new);
                } else {
                    self.step *= 0.5;
                    if self.step < 1e-12 {
                        self.phase = Phase::Done;
                    } else {
                        self.set_trial();
                    }
                }
            }
        }
    }

    /// The best point and its value.
    pub fn result(self) -> (Vec<f64>, f64) {
        (self.x, self.fx)
    }

    fn set_trial(&mut self) {
        for ((xn, x), d) in self.x_new.iter_mut().zip(&self.x).zip(&self.d) {
            *xn = x + self.step * d;
        }
    }

    /// The search direction from the two-loop recursion (`d = -H g`), then the first trial.
    fn begin_iteration(&mut self) {
        if self.iter >= self.max_iter {
            self.phase = Phase::Done;
            return;
        }
        let mut q = self.g.clone();
        let k = self.s_hist.len();
        let mut alphas = vec![0.0; k];
        for i in (0..k).rev() {
            let rho = 1.0 / dot(&self.y_hist[i], &self.s_hist[i]);
            alphas[i] = rho * dot(&self.s_hist[i], &q);
            for (qj, yj) in q.iter_mut().zip(&self.y_hist[i]) {
                *qj -= alphas[i] * yj;
            }
        }
        let gamma = if k > 0 {
            dot(&self.s_hist[k - 1], &self.y_hist[k - 1]) / dot(&self.y_hist[k - 1], &self.y_hist[k - 1])
        } else {
            1.0 / norm(&self.g).max(1e-300)
        };
        for qj in q.iter_mut() {
            *qj *= gamma;
        }
        for i in 0..k {
            let rho = 1.0 / dot(&self.y_hist[i], &self.s_hist[i]);
            let beta = rho * dot(&self.y_hist[i], &q);
            for (qj, sj) in q.iter_mut().zip(&self.s_hist[i]) {
                *qj += (alphas[i] - beta) * sj;
            }
        }
        for (d, q) in self.d.iter_mut().zip(&q) {
            *d = -q;
        }
        self.slope = dot(&self.g, &self.d);
        if self.slope >= 0.0 {
            // not a descent direction: restart with steepest descent
            self.s_hist.clear();
            self.y_hist.clear();
            let scale = 1.0 / norm(&self.g).max(1e-300);
            for (d, g) in self.d.iter_mut().zip(&self.g) {
                *d = -g * scale;
            }
            self.slope = dot(&self.g, &self.d);
            if self.slope >= 0.0 {
                self.phase = Phase::Done;
                return;
            }
        }
        self.step = 1.0;
        self.set_trial();
        self.phase = Phase::Search;
    }

    fn accept(&mut self, f_new: f64, g_new: &[f64]) {
        let s: Vec<f64> = self.x_new.iter().zip(&self.x).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = g_new.iter().zip(&self.g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        let decrease = (self.fx - f_new) / self.fx.abs().max(1e-300);
        self.x.copy_from_slice(&self.x_new);
        self.g.copy_from_slice(g_new);
        self.fx = f_new;
        if sy > 1e-12 * norm(&s) * norm(&yv) {
            if self.s_hist.len() == Self::MEMORY {
                self.s_hist.remove(0);
                self.y_hist.remove(0);
            }
            self.s_hist.push(s);
            self.y_hist.push(yv);
        }
        self.iter += 1;
        if decrease < self.ftol {
            self.stalls += 1;
            if self.stalls >= 3 {
                self.phase = Phase::Done;
                return;
            }
        } else {
            self.stalls = 0;
        }
        self.begin_iteration();
    }
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
