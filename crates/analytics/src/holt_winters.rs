//! Holt-Winters exponential smoothing with an additive trend and additive or
//! multiplicative seasonality (and Holt's linear method without seasonality), in
//! statsmodels' `ExponentialSmoothing` component form:
//!
//! ```text
//! l_t = α (y_t − s_{t−m}) + (1 − α)(l_{t−1} + b_{t−1})        (÷ s_{t−m} when multiplicative)
//! b_t = β (l_t − l_{t−1}) + (1 − β) b_{t−1}
//! s_t = γ (y_t − l_{t−1} − b_{t−1}) + (1 − γ) s_{t−m}          (÷ (l_{t−1}+b_{t−1}) when multiplicative)
//! ```
//!
//! Like `ExponentialSmoothing(...).fit()` with `initialization_method="estimated"`,
//! every parameter — α, β, γ and the initial level, trend and seasonal states — is
//! estimated by minimising the sum of squared one-step errors: from heuristic starting
//! values (a coarse grid over α, β, γ; states from a classical decomposition of the first
//! cycles), by L-BFGS with the exact gradient of the SSE computed by a reverse (adjoint)
//! pass through the recursions. Bounds, as statsmodels: 0 ≤ α ≤ 1, 0 ≤ β ≤ α and 0 ≤ γ ≤ 1 − α,
//! enforced by smooth transforms.

use crate::optimize::{lbfgs, logit, sigmoid, Lbfgs};
use crate::seasonality::{decompose, Model};
use crate::StepErrors;

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
    /// The seasonal states for the next `period` steps, in order.
    season: Vec<f64>,
    /// The optimiser's parameter vector at the fit (its length is the number of
    /// parameters estimated).
    packed: Vec<f64>,
}

/// L-BFGS iterations of a fit.
const ITERATIONS: usize = 300;
/// Stop when three iterations in a row decrease the SSE by less than this, relatively.
const FTOL: f64 = 1e-8;

const NONE: u8 = 0;
const ADD: u8 = 1;
const MUL: u8 = 2;

/// The model's shape and data; evaluates the SSE and its gradient.
struct Problem<'a> {
    y: &'a [f64],
    seasonal: Seasonal,
    m: usize,
    /// Scale of the state parameters (the data's standard deviation).
    scale: f64,
    /// Heuristic initial states that the parameters are offsets from.
    l0: f64,
    b0: f64,
    s0: Vec<f64>,
    // work buffers of the forward pass, for the backward pass
    lv: Vec<f64>,
    bv: Vec<f64>,
    sv: Vec<f64>,
    /// Multiplicative model: `1 / base_t` and `1 / s_t`, so the backward pass needs no
    /// division.
    rb: Vec<f64>,
    rs: Vec<f64>,
}

/// Unpacked parameters.
struct Params {
    a: f64,
    b: f64,
    g: f64,
    l0: f64,
    b0: f64,
    s0: Vec<f64>,
}

impl<'a> Problem<'a> {
    fn new(y: &'a [f64], seasonal: Seasonal, m: usize, scale: f64, l0: f64, b0: f64, s0: Vec<f64>) -> Self {
        let n = y.len();
        let buf = || vec![0.0; n];
        Problem { y, seasonal, m, scale, l0, b0, s0, lv: buf(), bv: buf(), sv: buf(), rb: buf(), rs: buf() }
    }

    fn dim(&self) -> usize {
        5 + if self.seasonal == Seasonal::None { 0 } else { self.m }
    }

    /// Parameter vector layout: `[u_α, u_β, u_γ, v_l, v_b, v_s…]`.
    fn unpack(&self, p: &[f64]) -> Params {
        let a = sigmoid(p[0]);
        let b = a * sigmoid(p[1]);
        let g = (1.0 - a) * sigmoid(p[2]);
        let tscale = self.scale / self.y.len() as f64;
        let s0 = match self.seasonal {
            Seasonal::None => Vec::new(),
            Seasonal::Additive => self.s0.iter().zip(&p[5..]).map(|(s, v)| s + self.scale * v).collect(),
            Seasonal::Multiplicative => self.s0.iter().zip(&p[5..]).map(|(s, v)| s * (1.0 + v)).collect(),
        };
        Params { a, b, g, l0: self.l0 + self.scale * p[3], b0: self.b0 + tscale * p[4], s0 }
    }

    /// SSE and final states; fills the work buffers.
    fn forward(&mut self, p: &Params) -> (f64, f64, f64, Vec<f64>) {
        match self.seasonal {
            Seasonal::None => self.forward_k::<NONE>(p),
            Seasonal::Additive => self.forward_k::<ADD>(p),
            Seasonal::Multiplicative => self.forward_k::<MUL>(p),
        }
    }

    /// [`Self::forward`] for one kind of seasonality, known at compile time.
    fn forward_k<const K: u8>(&mut self, p: &Params) -> (f64, f64, f64, Vec<f64>) {
        let mut st = self.fwd_init(p);
        for t in 0..self.y.len() {
            self.fwd_step::<K>(&mut st, t);
        }
        self.fwd_finish(st)
    }

    fn fwd_init(&self, p: &Params) -> Fwd {
        Fwd { a: p.a, b: p.b, g: p.g, level: p.l0, trend: p.b0, season: p.s0.clone(), sse: 0.0, j: 0 }
    }

    /// One step of the forward pass at time `t`.
    #[inline(always)]
    fn fwd_step<const K: u8>(&mut self, st: &mut Fwd, t: usize) {
        let (a, b, g) = (st.a, st.b, st.g);
        let obs = self.y[t];
        let (level, trend) = (st.level, st.trend);
        self.lv[t] = level;
        self.bv[t] = trend;
        let base = level + trend;
        let j = st.j;
        let new_level = match K {
            NONE => {
                let e = obs - base;
                st.sse += e * e;
                a * obs + (1.0 - a) * base
            }
            ADD => {
                let s = st.season[j];
                self.sv[t] = s;
                let e = obs - base - s;
                st.sse += e * e;
                st.season[j] = g * (obs - base) + (1.0 - g) * s;
                a * (obs - s) + (1.0 - a) * base
            }
            _ => {
                let s = st.season[j];
                self.sv[t] = s;
                let e = obs - base * s;
                st.sse += e * e;
                let (ib, is) = (1.0 / base, 1.0 / s);
                self.rb[t] = ib;
                self.rs[t] = is;
                st.season[j] = g * obs * ib + (1.0 - g) * s;
                a * obs * is + (1.0 - a) * base
            }
        };
        st.j = if j + 1 == self.m.max(1) { 0 } else { j + 1 };
        st.trend = b * (new_level - level) + (1.0 - b) * trend;
        st.level = new_level;
    }

    fn fwd_finish(&self, st: Fwd) -> (f64, f64, f64, Vec<f64>) {
        let sse = if st.sse.is_finite() { st.sse } else { f64::INFINITY };
        let mut season = st.season;
        if self.seasonal != Seasonal::None {
            season.rotate_left(self.y.len() % self.m.max(1));
        }
        (sse, st.level, st.trend, season)
    }

    /// SSE and its gradient with respect to the packed parameters.
    fn value_and_gradient(&mut self, packed: &[f64], grad: &mut [f64]) -> f64 {
        match self.seasonal {
            Seasonal::None => self.value_and_gradient_k::<NONE>(packed, grad),
            Seasonal::Additive => self.value_and_gradient_k::<ADD>(packed, grad),
            Seasonal::Multiplicative => self.value_and_gradient_k::<MUL>(packed, grad),
        }
    }

    fn value_and_gradient_k<const K: u8>(&mut self, packed: &[f64], grad: &mut [f64]) -> f64 {
        let p = self.unpack(packed);
        let (sse, last_level, _, _) = self.forward_k::<K>(&p);
        grad.iter_mut().for_each(|g| *g = 0.0);
        if !sse.is_finite() {
            return f64::INFINITY;
        }
        let mut st = self.bwd_init(&p, last_level);
        for t in (0..self.y.len()).rev() {
            self.bwd_step::<K>(&mut st, t);
        }
        self.bwd_finish(&st, packed, grad);
        sse
    }

    fn bwd_init(&self, p: &Params, last_level: f64) -> Bwd {
        let m = self.m.max(1);
        let n = self.y.len();
        Bwd {
            a: p.a,
            b: p.b,
            g: p.g,
            l_bar: 0.0,
            b_bar: 0.0,
            s_bar: vec![0.0; if self.seasonal == Seasonal::None { 0 } else { m }],
            a_bar: 0.0,
            be_bar: 0.0,
            g_bar: 0.0,
            next_level: last_level,
            j: (n + m - 1) % m,
        }
    }

    /// One step of the backward (adjoint) pass at time `t`, from the last to the first.
    #[inline(always)]
    fn bwd_step<const K: u8>(&self, st: &mut Bwd, t: usize) {
        let (a, b, g) = (st.a, st.b, st.g);
        let j = st.j;
        let obs = self.y[t];
        let level = self.lv[t];
        let trend = self.bv[t];
        let base = level + trend;
        let new_level = st.next_level;
        // b' = b (l' − l) + (1 − b) trend
        let bp_bar = st.b_bar;
        let lp_bar = st.l_bar + b * bp_bar;
        let mut lvl_bar = -b * bp_bar;
        let mut trd_bar = (1.0 - b) * bp_bar;
        st.be_bar += (new_level - level - trend) * bp_bar;
        let mut base_bar = 0.0;
        match K {
            NONE => {
                // l' = a y + (1 − a) base
                st.a_bar += (obs - base) * lp_bar;
                base_bar += (1.0 - a) * lp_bar;
                let e = obs - base;
                base_bar += -2.0 * e;
            }
            ADD => {
                let s = self.sv[t];
                let snew_bar = st.s_bar[j];
                // s_new = g (y − base) + (1 − g) s
                base_bar += -g * snew_bar;
                let mut s_old_bar = (1.0 - g) * snew_bar;
                st.g_bar += (obs - base - s) * snew_bar;
                // l' = a (y − s) + (1 − a) base
                s_old_bar += -a * lp_bar;
                base_bar += (1.0 - a) * lp_bar;
                st.a_bar += (obs - s - base) * lp_bar;
                let e = obs - base - s;
                base_bar += -2.0 * e;
                s_old_bar += -2.0 * e;
                st.s_bar[j] = s_old_bar;
            }
            _ => {
                let s = self.sv[t];
                let snew_bar = st.s_bar[j];
                // s_new = g y / base + (1 − g) s
                let (ib, is) = (self.rb[t], self.rs[t]);
                let (rb, rs) = (obs * ib, obs * is);
                base_bar += -g * rb * ib * snew_bar;
                let mut s_old_bar = (1.0 - g) * snew_bar;
                st.g_bar += (rb - s) * snew_bar;
                // l' = a y / s + (1 − a) base
                s_old_bar += -a * rs * is * lp_bar;
                base_bar += (1.0 - a) * lp_bar;
                st.a_bar += (rs - base) * lp_bar;
                let e = obs - base * s;
                base_bar += -2.0 * e * s;
                s_old_bar += -2.0 * e * base;
                st.s_bar[j] = s_old_bar;
            }
        }
        lvl_bar += base_bar;
        trd_bar += base_bar;
        st.l_bar = lvl_bar;
        st.b_bar = trd_bar;
        st.next_level = level;
        st.j = if j == 0 { self.m.max(1) - 1 } else { j - 1 };
    }

    /// The gradient with respect to the packed parameters (chain rule through the transforms).
    fn bwd_finish(&self, st: &Bwd, packed: &[f64], grad: &mut [f64]) {
        let (a, n) = (st.a, self.y.len());
        let sb = sigmoid(packed[1]);
        let sg = sigmoid(packed[2]);
        let da = a * (1.0 - a);
        grad[0] = st.a_bar * da + st.be_bar * sb * da + st.g_bar * (-sg) * da;
        grad[1] = st.be_bar * a * sb * (1.0 - sb);
        grad[2] = st.g_bar * (1.0 - a) * sg * (1.0 - sg);
        grad[3] = st.l_bar * self.scale;
        grad[4] = st.b_bar * self.scale / n as f64;
        match self.seasonal {
            Seasonal::None => {}
            Seasonal::Additive => {
                for (gj, sb) in grad[5..].iter_mut().zip(&st.s_bar) {
                    *gj = sb * self.scale;
                }
            }
            Seasonal::Multiplicative => {
                for ((gj, sb), s0) in grad[5..].iter_mut().zip(&st.s_bar).zip(&self.s0) {
                    *gj = sb * s0;
                }
            }
        }
    }
}

/// The states of a forward pass.
struct Fwd {
    a: f64,
    b: f64,
    g: f64,
    level: f64,
    trend: f64,
    season: Vec<f64>,
    sse: f64,
    j: usize,
}

/// The adjoints of a backward pass.
struct Bwd {
    a: f64,
    b: f64,
    g: f64,
    l_bar: f64,
    b_bar: f64,
    s_bar: Vec<f64>,
    a_bar: f64,
    be_bar: f64,
    g_bar: f64,
    next_level: f64,
    j: usize,
}

/// The SSE of the additive and the multiplicative problem at the same packed parameters,
/// in one loop (see [`value_and_gradient_pair`]).
fn forward_pair(add: &mut Problem<'_>, mul: &mut Problem<'_>, x: &[f64]) -> (f64, f64) {
    let (pa, pm) = (add.unpack(x), mul.unpack(x));
    let (mut fa, mut fm) = (add.fwd_init(&pa), mul.fwd_init(&pm));
    for t in 0..add.y.len() {
        add.fwd_step::<ADD>(&mut fa, t);
        mul.fwd_step::<MUL>(&mut fm, t);
    }
    (add.fwd_finish(fa).0, mul.fwd_finish(fm).0)
}

/// The SSE and gradient of the additive and the multiplicative problem of one series in
/// the same loops: each step of each is the same arithmetic as alone (so the results are
/// identical), but the two recursions are independent, and the processor overlaps their
/// latencies instead of waiting on one chain of dependent operations.
fn value_and_gradient_pair(
    add: &mut Problem<'_>,
    xa: &[f64],
    ga: &mut [f64],
    mul: &mut Problem<'_>,
    xm: &[f64],
    gm: &mut [f64],
) -> (f64, f64) {
    let n = add.y.len();
    let (pa, pm) = (add.unpack(xa), mul.unpack(xm));
    let (mut fa, mut fm) = (add.fwd_init(&pa), mul.fwd_init(&pm));
    for t in 0..n {
        add.fwd_step::<ADD>(&mut fa, t);
        mul.fwd_step::<MUL>(&mut fm, t);
    }
    let (sa, la, _, _) = add.fwd_finish(fa);
    let (sm, lm, _, _) = mul.fwd_finish(fm);
    ga.iter_mut().for_each(|g| *g = 0.0);
    gm.iter_mut().for_each(|g| *g = 0.0);
    match (sa.is_finite(), sm.is_finite()) {
        (true, true) => {
            let (mut ba, mut bm) = (add.bwd_init(&pa, la), mul.bwd_init(&pm, lm));
            for t in (0..n).rev() {
                add.bwd_step::<ADD>(&mut ba, t);
                mul.bwd_step::<MUL>(&mut bm, t);
            }
            add.bwd_finish(&ba, xa, ga);
            mul.bwd_finish(&bm, xm, gm);
        }
        (true, false) => {
            let mut ba = add.bwd_init(&pa, la);
            for t in (0..n).rev() {
                add.bwd_step::<ADD>(&mut ba, t);
            }
            add.bwd_finish(&ba, xa, ga);
        }
        (false, true) => {
            let mut bm = mul.bwd_init(&pm, lm);
            for t in (0..n).rev() {
                mul.bwd_step::<MUL>(&mut bm, t);
            }
            mul.bwd_finish(&bm, xm, gm);
        }
        (false, false) => {}
    }
    (sa, sm)
}

/// Initial states: seasonal indices from a decomposition of the first (up to ten)
/// cycles, level and trend from a line through the trend component.
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

/// A fit ready for its optimiser: the problem and the starting point.
struct Prepared<'a> {
    problem: Problem<'a>,
    start: Vec<f64>,
    /// The SSE at `start`.
    best: f64,
    seasonal: Seasonal,
    m: usize,
}

/// The coarse grid of smoothing parameters a cold fit starts from (statsmodels' "brute"
/// start), as packed vectors of `dim` parameters.
fn start_grid(seasonal: Seasonal, dim: usize) -> Vec<Vec<f64>> {
    let grid_g: &[f64] = if seasonal == Seasonal::None { &[0.5] } else { &[0.05, 0.3, 0.6] };
    let mut out = Vec::new();
    for a in [0.1, 0.3, 0.6, 0.9] {
        for b in [0.01, 0.1] {
            for &gf in grid_g {
                let mut c = vec![0.0; dim];
                c[0] = logit(a);
                c[1] = logit((b / a).min(0.99));
                c[2] = logit(gf);
                out.push(c);
            }
        }
    }
    out
}

impl<'a> Prepared<'a> {
    /// Starts from the best point of the grid. `None` when there is too little data or a
    /// multiplicative model meets values ≤ 0.
    fn new(y: &'a [f64], seasonal: Seasonal, period: usize) -> Option<Self> {
        let mut prep = Self::bare(y, seasonal, period)?;
        for c in start_grid(seasonal, prep.start.len()) {
            let p = prep.problem.unpack(&c);
            let sse = prep.problem.forward(&p).0;
            prep.keep(&c, sse);
        }
        Some(prep)
    }

    /// The problem, with no starting point chosen yet.
    fn bare(y: &'a [f64], seasonal: Seasonal, period: usize) -> Option<Self> {
        if seasonal == Seasonal::Multiplicative && y.iter().any(|v| *v <= 0.0) {
            return None;
        }
        let m = if seasonal == Seasonal::None { 1 } else { period };
        let (l0, b0, s0) = initial_states(y, seasonal, m)?;
        let mean = crate::mean(y);
        let scale = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / y.len() as f64).sqrt().max(1e-12);
        let problem = Problem::new(y, seasonal, m, scale, l0, b0, s0);
        let start = vec![0.0; problem.dim()];
        Some(Prepared { problem, start, best: f64::INFINITY, seasonal, m })
    }

    /// Starts from `candidate` if it is better than the start so far.
    fn keep(&mut self, candidate: &[f64], sse: f64) {
        if sse < self.best {
            self.best = sse;
            self.start = candidate.to_vec();
        }
    }

    /// The fitted model at the optimiser's result.
    fn finish(mut self, packed: Vec<f64>) -> Option<HoltWinters> {
        let p = self.problem.unpack(&packed);
        let (sse, level, trend, season) = self.problem.forward(&p);
        if !sse.is_finite() {
            return None;
        }
        Some(HoltWinters {
            seasonal: self.seasonal,
            period: self.m,
            alpha: p.a,
            beta: p.b,
            gamma: if self.seasonal == Seasonal::None { 0.0 } else { p.g },
            sse,
            level,
            trend,
            season,
            packed,
        })
    }
}

impl HoltWinters {
    /// Fits the model to `y`. `None` when there is too little data (two full cycles
    /// for a seasonal model) or a multiplicative model meets values ≤ 0.
    pub fn fit(y: &[f64], seasonal: Seasonal, period: usize) -> Option<Self> {
        let mut prep = Prepared::new(y, seasonal, period)?;
        let (packed, _) =
            lbfgs(&mut |x: &[f64], g: &mut [f64]| prep.problem.value_and_gradient(x, g), &prep.start, ITERATIONS, FTOL);
        prep.finish(packed)
    }

    /// The same model (trend and seasonality) fitted to `y`, e.g. the whole series after
    /// a fit on all but its hold-out: a fit of its own from the start grid, as
    /// statsmodels' `ExponentialSmoothing(...).fit()` on the whole series would be. Not
    /// warm-started from this fit: a smoothing parameter this fit left at a bound (β = 0
    /// on a trend that was steady in the training part) sits where its transform is flat,
    /// so an optimiser started there keeps it, although the points added since call for
    /// another. (The Danish price deflator of `scripts/bench_forecast.py`, whose growth
    /// slowed from 0.038 to 0.013 a quarter: started from its training fit, β stayed 0 and
    /// the forecast carried the whole series' 0.0225 forward, 3.0× the RMSE of
    /// statsforecast's AutoETS; fitted anew, it follows the recent growth.)
    pub fn refit(&self, y: &[f64]) -> Option<Self> {
        Self::fit(y, self.seasonal, self.period)
    }

    /// The additive and the multiplicative model of the same series, fitted together:
    /// the same fits as [`HoltWinters::fit`] gives (each optimiser sees the same values
    /// and gradients as alone), in less time, because the two problems are evaluated in
    /// the same loops.
    pub fn fit_seasonal_pair(y: &[f64], period: usize) -> (Option<Self>, Option<Self>) {
        let add = Prepared::bare(y, Seasonal::Additive, period);
        let mul = Prepared::bare(y, Seasonal::Multiplicative, period);
        let (Some(mut add), Some(mut mul)) = (add, mul) else {
            return (Self::fit(y, Seasonal::Additive, period), Self::fit(y, Seasonal::Multiplicative, period));
        };
        for c in start_grid(Seasonal::Additive, add.start.len()) {
            let (sa, sm) = forward_pair(&mut add.problem, &mut mul.problem, &c);
            add.keep(&c, sa);
            mul.keep(&c, sm);
        }
        let mut oa = Lbfgs::new(&add.start, ITERATIONS, FTOL);
        let mut om = Lbfgs::new(&mul.start, ITERATIONS, FTOL);
        let mut ga = vec![0.0; add.start.len()];
        let mut gm = vec![0.0; mul.start.len()];
        loop {
            match (oa.point(), om.point()) {
                (Some(xa), Some(xm)) => {
                    let (fa, fm) =
                        value_and_gradient_pair(&mut add.problem, xa, &mut ga, &mut mul.problem, xm, &mut gm);
                    oa.tell(fa, &ga);
                    om.tell(fm, &gm);
                }
                (Some(xa), None) => {
                    let fa = add.problem.value_and_gradient(xa, &mut ga);
                    oa.tell(fa, &ga);
                }
                (None, Some(xm)) => {
                    let fm = mul.problem.value_and_gradient(xm, &mut gm);
                    om.tell(fm, &gm);
                }
                (None, None) => break,
            }
        }
        (add.finish(oa.result().0), mul.finish(om.result().0))
    }

    /// The root-mean-square error of its `k`-step-ahead forecasts, `k = 1..=horizon`,
    /// made from every origin of `y` after a burn-in of one cycle (or 10 points), with
    /// this fit's parameters and initial states held fixed: `y` must be the series it was
    /// fitted to. These in-sample multi-step errors give the spread of the forecast error
    /// at each step, as in Williams & Goodman (1971), "A simple method for the
    /// construction of empirical confidence limits for economic forecasts", JASA 66.
    /// `None` when `y` is not the series fitted or leaves too few origins.
    pub fn step_errors(&self, y: &[f64], horizon: usize) -> Option<Vec<f64>> {
        let prep = Prepared::bare(y, self.seasonal, self.period)?;
        if prep.start.len() != self.packed.len() {
            return None;
        }
        let p = prep.problem.unpack(&self.packed);
        let m = self.period.max(1);
        let (mut level, mut trend, mut season, mut j) = (p.l0, p.b0, p.s0, 0usize);
        let burn = m.max(10);
        let mut errors = StepErrors::new(horizon);
        for (t, &obs) in y.iter().enumerate() {
            if t >= burn {
                for k in 1..=horizon.min(y.len() - t) {
                    let base = level + k as f64 * trend;
                    let pred = match self.seasonal {
                        Seasonal::None => base,
                        Seasonal::Additive => base + season[(j + k - 1) % m],
                        Seasonal::Multiplicative => base * season[(j + k - 1) % m],
                    };
                    errors.add(k, y[t + k - 1] - pred);
                }
            }
            let base = level + trend;
            let new_level = match self.seasonal {
                Seasonal::None => p.a * obs + (1.0 - p.a) * base,
                Seasonal::Additive => {
                    let s = season[j];
                    season[j] = p.g * (obs - base) + (1.0 - p.g) * s;
                    p.a * (obs - s) + (1.0 - p.a) * base
                }
                Seasonal::Multiplicative => {
                    let s = season[j];
                    season[j] = p.g * obs / base + (1.0 - p.g) * s;
                    p.a * obs / s + (1.0 - p.a) * base
                }
            };
            j = (j + 1) % m;
            trend = p.b * (new_level - level) + (1.0 - p.b) * trend;
            level = new_level;
        }
        errors.rms(self.packed.len())
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
    use crate::testing::noise;

    #[test]
    fn a_refit_follows_a_trend_that_changed_after_the_training_part() {
        // a steady slope of 1 for 60 points (β = 0 fits it best), then a slope of 0.3
        let mut e = noise(11);
        let mut y = Vec::new();
        let mut level = 0.0;
        for t in 0..90 {
            level += if t < 60 { 1.0 } else { 0.3 };
            y.push(level + 0.2 * e());
        }
        let train = HoltWinters::fit(&y[..60], Seasonal::None, 1).unwrap();
        assert!(train.beta < 0.01, "{train:?}");
        let whole = train.refit(&y).unwrap();
        let fc = whole.forecast(10);
        let slope = (fc[9] - fc[0]) / 9.0;
        assert!((slope - 0.3).abs() < 0.2, "the refit's slope {slope}: {whole:?}");
        assert_eq!(whole, HoltWinters::fit(&y, Seasonal::None, 1).unwrap());
    }

    #[test]
    fn the_pair_fits_exactly_what_the_single_fits_give() {
        let y: Vec<f64> = (0..400)
            .map(|i| {
                let t = i as f64;
                (50.0 + 0.05 * t) * (1.0 + 0.2 * (std::f64::consts::TAU * t / 24.0).sin())
                    + ((i * 7919) % 13) as f64 * 0.3
            })
            .collect();
        let (add, mul) = HoltWinters::fit_seasonal_pair(&y, 24);
        assert_eq!(add, HoltWinters::fit(&y, Seasonal::Additive, 24));
        assert_eq!(mul, HoltWinters::fit(&y, Seasonal::Multiplicative, 24));
        assert!(add.is_some() && mul.is_some());
        // a series with values ≤ 0: no multiplicative model, the additive one alone
        let shifted: Vec<f64> = y.iter().map(|v| v - 60.0).collect();
        let (add, mul) = HoltWinters::fit_seasonal_pair(&shifted, 24);
        assert_eq!(add, HoltWinters::fit(&shifted, Seasonal::Additive, 24));
        assert_eq!(mul, None);
    }

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
    fn the_adjoint_gradient_matches_finite_differences() {
        let y: Vec<f64> = (0..120)
            .map(|i| 50.0 + 0.3 * i as f64 + 8.0 * (i as f64 / 1.9).sin() + ((i * 37) % 11) as f64 * 0.3)
            .collect();
        for seasonal in [Seasonal::None, Seasonal::Additive, Seasonal::Multiplicative] {
            let m = if seasonal == Seasonal::None { 1 } else { 12 };
            let (l0, b0, s0) = initial_states(&y, seasonal, m).unwrap();
            let mut pr = Problem::new(&y, seasonal, m, 5.0, l0, b0, s0);
            let dim = pr.dim();
            let x: Vec<f64> = (0..dim).map(|i| 0.1 * ((i * 7) % 5) as f64 - 0.2).collect();
            let mut g = vec![0.0; dim];
            pr.value_and_gradient(&x, &mut g);
            for i in 0..dim {
                let h = 1e-6;
                let mut xp = x.clone();
                xp[i] += h;
                let mut xm = x.clone();
                xm[i] -= h;
                let mut dummy = vec![0.0; dim];
                let fd = (pr.value_and_gradient(&xp, &mut dummy) - pr.value_and_gradient(&xm, &mut dummy)) / (2.0 * h);
                assert!(
                    (fd - g[i]).abs() <= 1e-4 * fd.abs().max(1.0),
                    "{seasonal:?} param {i}: adjoint {} vs finite difference {fd}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn a_long_period_still_leaves_origins_to_measure_the_step_errors() {
        // period 240 in 720 points (a 4-hour cycle in 12 hours at one-minute steps): 245
        // parameters, so more than 255 origins are needed after the burn-in
        let y: Vec<f64> = (0..720)
            .map(|t| 100.0 + 10.0 * (std::f64::consts::TAU * t as f64 / 240.0).sin() + (t % 7) as f64)
            .collect();
        let m = HoltWinters::fit(&y, Seasonal::Additive, 240).unwrap();
        let sd = m.step_errors(&y, 10).expect("step errors of a 240-period fit");
        assert_eq!(sd.len(), 10);
        assert!(sd.iter().all(|s| s.is_finite() && *s > 0.0), "{sd:?}");
    }

    #[test]
    fn refuses_what_it_cannot_fit() {
        let y: Vec<f64> = (0..30).map(|i| i as f64 - 5.0).collect();
        assert!(HoltWinters::fit(&y, Seasonal::Multiplicative, 5).is_none(), "values <= 0");
        assert!(HoltWinters::fit(&y[10..], Seasonal::Additive, 12).is_none(), "less than two cycles");
    }
}
