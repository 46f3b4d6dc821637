//! The seasonal period: the periodogram peak (FFT), refined by searching the periods
//! near it for the one whose classical seasonal decomposition leaves the smallest
//! residual (the seed's unfinished idea), for additive and multiplicative models.

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

/// Which decomposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Additive,
    Multiplicative,
}

/// A decomposition with a given period.
#[derive(Debug, Clone, PartialEq)]
pub struct Decomposition {
    pub period: usize,
    pub trend: Vec<Option<f64>>,
    /// One value per position in the cycle (sums to 0, or averages 1).
    pub seasonal: Vec<f64>,
    /// Root mean square of the residual (for the multiplicative model, of `resid - 1`).
    pub error: f64,
    /// `1 - var(resid) / var(resid + seasonal)`, clipped to [0, 1] (Hyndman's strength).
    pub strength: f64,
    /// The strength with the residual variance adjusted for the `p` seasonal indices
    /// fitted (`SSR / (N − p)` against `SST / (N − 1)`): a short period, whose moving
    /// average absorbs the signal, and a long one, whose indices memorise the data,
    /// both score low.
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalityResult {
    /// The periodogram peak, in samples.
    pub fft_period: usize,
    pub additive: Option<Decomposition>,
    /// `None` when the series has values ≤ 0.
    pub multiplicative: Option<Decomposition>,
}

/// The period (in samples) of the largest periodogram ordinate, among periods in
/// `[2, n/2]`. `None` when the series is too short or flat.
pub fn fft_period(x: &[f64]) -> Option<usize> {
    fft_peaks(x, 1).into_iter().next()
}

/// The periods of the `k` largest local maxima of the periodogram (strongest first),
/// after removing the mean and a linear trend.
pub fn fft_peaks(x: &[f64], k: usize) -> Vec<usize> {
    let n = x.len();
    if n < 8 {
        return Vec::new();
    }
    let (a, b) = linear_fit(x);
    let mut buf: Vec<Complex<f64>> =
        x.iter().enumerate().map(|(i, v)| Complex::new(v - (a + b * i as f64), 0.0)).collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    let power: Vec<f64> = buf[..=n / 2].iter().map(|c| c.norm_sqr()).collect();
    // frequencies j with period n/j in [2, n/2]  =>  j in [2, n/2]
    let mut peaks: Vec<(usize, f64)> = (2..=n / 2)
        .filter(|&j| power[j] > 0.0 && power[j] >= power[j - 1] && (j + 1 > n / 2 || power[j] >= power[j + 1]))
        .map(|j| (j, power[j]))
        .collect();
    peaks.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut periods: Vec<usize> = Vec::new();
    for (j, _) in peaks {
        let p = ((n as f64 / j as f64).round() as usize).clamp(2, n / 2);
        if !periods.contains(&p) {
            periods.push(p);
        }
        if periods.len() == k {
            break;
        }
    }
    periods
}

fn linear_fit(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = crate::mean(x);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, v) in x.iter().enumerate() {
        let dx = i as f64 - mx;
        sxy += dx * (v - my);
        sxx += dx * dx;
    }
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

/// statsmodels' centred moving average of `seasonal_decompose`: a `2 x p` MA for an
/// even period, a `p` MA for an odd one; `None` at the ends.
fn centred_ma(x: &[f64], p: usize) -> Vec<Option<f64>> {
    let n = x.len();
    let mut out = vec![None; n];
    if p % 2 == 1 {
        let h = p / 2;
        if n < p {
            return out;
        }
        let mut s: f64 = x[..p].iter().sum();
        for c in h..n - h {
            if c > h {
                s += x[c + h] - x[c - h - 1];
            }
            out[c] = Some(s / p as f64);
        }
    } else {
        let h = p / 2;
        if n < p + 1 {
            return out;
        }
        // weights 1/2p at both ends, 1/p inside, over p+1 points
        let mut s: f64 = x[..=p].iter().sum::<f64>() - 0.5 * (x[0] + x[p]);
        for c in h..n - h {
            if c > h {
                // window [c-h, c+h]: drop half of x[c-h-1] and half of x[c-h], add half of x[c+h-1] and x[c+h]
                s += 0.5 * (x[c + h - 1] + x[c + h]) - 0.5 * (x[c - h - 1] + x[c - h]);
            }
            out[c] = Some(s / p as f64);
        }
    }
    out
}

/// A classical decomposition of `x` with period `p`.
pub fn decompose(x: &[f64], p: usize, model: Model) -> Option<Decomposition> {
    let n = x.len();
    if p < 2 || n < 2 * p {
        return None;
    }
    if model == Model::Multiplicative && x.iter().any(|v| *v <= 0.0) {
        return None;
    }
    let trend = centred_ma(x, p);
    let detrended: Vec<Option<f64>> = x
        .iter()
        .zip(&trend)
        .map(|(v, t)| {
            t.map(|t| match model {
                Model::Additive => v - t,
                Model::Multiplicative => v / t,
            })
        })
        .collect();
    let mut sums = vec![0.0; p];
    let mut counts = vec![0usize; p];
    for (i, d) in detrended.iter().enumerate() {
        if let Some(d) = d {
            sums[i % p] += d;
            counts[i % p] += 1;
        }
    }
    if counts.contains(&0) {
        return None;
    }
    let mut seasonal: Vec<f64> = sums.iter().zip(&counts).map(|(s, c)| s / *c as f64).collect();
    let centre = crate::mean(&seasonal);
    for s in &mut seasonal {
        match model {
            Model::Additive => *s -= centre,
            Model::Multiplicative => *s /= centre,
        }
    }
    let mut resid = Vec::new();
    let mut deseason = Vec::new();
    for (i, d) in detrended.iter().enumerate() {
        if let Some(d) = d {
            let s = seasonal[i % p];
            match model {
                Model::Additive => {
                    resid.push(d - s);
                    deseason.push(*d);
                }
                Model::Multiplicative => {
                    resid.push(d / s - 1.0);
                    deseason.push(d - 1.0);
                }
            }
        }
    }
    let error = (resid.iter().map(|r| r * r).sum::<f64>() / resid.len() as f64).sqrt();
    let var = |v: &[f64]| {
        let m = crate::mean(v);
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64
    };
    let total = var(&deseason);
    let strength = if total > 0.0 { (1.0 - var(&resid) / total).clamp(0.0, 1.0) } else { 0.0 };
    let nv = resid.len() as f64;
    let ssr: f64 = resid.iter().map(|r| r * r).sum();
    let sst = var(&deseason) * nv;
    let score = if nv > p as f64 + 1.0 && sst > 0.0 {
        1.0 - (ssr / (nv - p as f64)) / (sst / (nv - 1.0))
    } else {
        f64::NEG_INFINITY
    };
    Some(Decomposition { period: p, trend, seasonal, error, strength, score })
}

/// The search statistics of one period for one model (see [`Decomposition`]).
#[derive(Debug, Clone, Copy)]
struct Stats {
    period: usize,
    score: f64,
}

/// Scores period `p` for both models with one moving average and no allocation but
/// the reused buffers: `(additive, multiplicative)` adjusted strengths.
fn score_both(
    x: &[f64],
    p: usize,
    trend: &mut Vec<Option<f64>>,
    sums: &mut Vec<[f64; 2]>,
) -> (Option<f64>, Option<f64>) {
    let n = x.len();
    if p < 2 || n < 2 * p {
        return (None, None);
    }
    *trend = centred_ma(x, p);
    let positive = x.iter().all(|v| *v > 0.0);
    sums.clear();
    sums.resize(p, [0.0; 2]);
    let mut counts = vec![0usize; p];
    for (i, (v, t)) in x.iter().zip(trend.iter()).enumerate() {
        if let Some(t) = t {
            sums[i % p][0] += v - t;
            if positive {
                sums[i % p][1] += v / t;
            }
            counts[i % p] += 1;
        }
    }
    if counts.contains(&0) {
        return (None, None);
    }
    let mut idx = [vec![0.0; p], vec![0.0; p]];
    for m in 0..2 {
        for j in 0..p {
            idx[m][j] = sums[j][m] / counts[j] as f64;
        }
        let c = crate::mean(&idx[m]);
        for v in idx[m].iter_mut() {
            if m == 0 {
                *v -= c;
            } else {
                *v /= c;
            }
        }
    }
    // one pass: residual and deseasonalised sums for both models
    let (mut nv, mut r2, mut d1, mut d2) = (0.0, [0.0; 2], [0.0; 2], [0.0; 2]);
    for (i, (v, t)) in x.iter().zip(trend.iter()).enumerate() {
        if let Some(t) = t {
            nv += 1.0;
            let da = v - t;
            let ra = da - idx[0][i % p];
            r2[0] += ra * ra;
            d1[0] += da;
            d2[0] += da * da;
            if positive {
                let dm = v / t;
                let rm = dm / idx[1][i % p] - 1.0;
                r2[1] += rm * rm;
                d1[1] += dm - 1.0;
                d2[1] += (dm - 1.0) * (dm - 1.0);
            }
        }
    }
    let score = |m: usize| {
        let sst = d2[m] - d1[m] * d1[m] / nv;
        if nv > p as f64 + 1.0 && sst > 0.0 {
            1.0 - (r2[m] / (nv - p as f64)) / (sst / (nv - 1.0))
        } else {
            f64::NEG_INFINITY
        }
    };
    (Some(score(0)), positive.then(|| score(1)))
}

/// The periods near `around` (±20 %, at least ±2, at most `n / MIN_CYCLES`) with the
/// best adjusted strength for each model: the smallest residual, adjusted for the
/// seasonal indices fitted.
fn refine_both(x: &[f64], around: usize) -> (Option<Stats>, Option<Stats>) {
    let n = x.len();
    let spread = (around / 5).max(2);
    let lo = around.saturating_sub(spread).max(2);
    let hi = (around + spread).min(n / MIN_CYCLES);
    let (mut trend, mut sums) = (Vec::new(), Vec::new());
    let mut best: [Option<Stats>; 2] = [None, None];
    for p in lo..=hi {
        let (a, m) = score_both(x, p, &mut trend, &mut sums);
        for (slot, score) in best.iter_mut().zip([a, m]) {
            if let Some(score) = score {
                if slot.is_none_or(|b| score > b.score) {
                    *slot = Some(Stats { period: p, score });
                }
            }
        }
    }
    (best[0], best[1])
}

/// The period near `around` (±20 %, at least ±2) whose decomposition leaves the
/// smallest residual, adjusted for the indices fitted (the best `score`).
pub fn refine(x: &[f64], around: usize, model: Model) -> Option<Decomposition> {
    let (a, m) = refine_both(x, around);
    let best = if model == Model::Additive { a } else { m }?;
    decompose(x, best.period, model)
}

/// A period is only considered when the series holds at least this many cycles of it:
/// with fewer, the seasonal indices memorise the data instead of measuring a cycle.
pub const MIN_CYCLES: usize = 3;

/// A shorter period whose multiple is the best one wins when its score is this close.
pub const HARMONIC_TOLERANCE: f64 = 0.05;

/// Whether `long` is within ±2 samples of a multiple (≥ 2) of `short`.
fn is_multiple(long: usize, short: usize) -> bool {
    let k = (long as f64 / short as f64).round() as usize;
    k >= 2 && (long as i64 - (k * short) as i64).abs() <= 2
}

/// How many periodogram peaks are refined and compared.
pub const PEAKS: usize = 3;

/// The seasonality of `x`: the strongest periodogram peaks, each refined by the
/// decomposition residual; of those, the one with the best adjusted strength (a level
/// shift or a trend also makes low-frequency peaks, whose long "periods" only memorise
/// the data).
pub fn seasonality(x: &[f64]) -> Option<SeasonalityResult> {
    if crate::is_constant(x) {
        return None;
    }
    let peaks = fft_peaks(x, PEAKS);
    let fft_period = *peaks.first()?;
    let refined: Vec<(Option<Stats>, Option<Stats>)> = peaks.iter().map(|&p| refine_both(x, p)).collect();
    let pick = |model: Model| {
        let candidates: Vec<Stats> =
            refined.iter().filter_map(|(a, m)| if model == Model::Additive { *a } else { *m }).collect();
        let best = candidates.iter().max_by(|a, b| a.score.total_cmp(&b.score))?;
        // a multiple of the true period fits about as well: prefer the fundamental
        let chosen = candidates
            .iter()
            .filter(|c| {
                c.period < best.period
                    && c.score >= best.score - HARMONIC_TOLERANCE
                    && is_multiple(best.period, c.period)
            })
            .min_by_key(|c| c.period)
            .unwrap_or(best);
        decompose(x, chosen.period, model)
    };
    Some(SeasonalityResult { fft_period, additive: pick(Model::Additive), multiplicative: pick(Model::Multiplicative) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seasonal(n: usize, p: f64, noise: f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                10.0 + 0.01 * i as f64
                    + 3.0 * (std::f64::consts::TAU * i as f64 / p).sin()
                    + noise * ((i * 7919) % 101) as f64 / 101.0
            })
            .collect()
    }

    #[test]
    fn finds_the_true_period_of_a_noisy_seasonal_series() {
        for p in [12usize, 24, 60] {
            let x = seasonal(720, p as f64, 0.5);
            let s = seasonality(&x).unwrap();
            assert_eq!(s.additive.as_ref().unwrap().period, p, "additive, true period {p}, fft {}", s.fft_period);
            assert_eq!(s.multiplicative.as_ref().unwrap().period, p, "multiplicative, true period {p}");
            assert!(s.additive.unwrap().strength > 0.9);
        }
    }

    #[test]
    fn moving_average_matches_the_definition() {
        let x: Vec<f64> = (0..10).map(|i| (i * i) as f64).collect();
        let even = centred_ma(&x, 4);
        // centre 2: (x0/2 + x1 + x2 + x3 + x4/2) / 4
        assert_eq!(even[2], Some((0.0 / 2.0 + 1.0 + 4.0 + 9.0 + 16.0 / 2.0) / 4.0));
        assert_eq!(even[5], Some((9.0 / 2.0 + 16.0 + 25.0 + 36.0 + 49.0 / 2.0) / 4.0));
        assert_eq!((even[1], even[8]), (None, None));
        let odd = centred_ma(&x, 3);
        assert_eq!(odd[4], Some((9.0 + 16.0 + 25.0) / 3.0));
        assert_eq!(odd[8], Some((49.0 + 64.0 + 81.0) / 3.0));
    }

    #[test]
    fn multiplicative_needs_positive_values() {
        let mut x = seasonal(200, 10.0, 0.1);
        x[3] = -1.0;
        assert!(decompose(&x, 10, Model::Multiplicative).is_none());
        assert!(decompose(&x, 10, Model::Additive).is_some());
    }
}
