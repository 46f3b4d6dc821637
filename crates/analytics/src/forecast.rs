//! Model selection on a held-out tail: every candidate is fitted on the series minus
//! its last `holdout` points and scored by RMSE there; the best is refitted on all data
//! and forecasts the next `horizon` points.

use crate::holt_winters::{HoltWinters, Seasonal};

/// One model tried on the hold-out.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub model: String,
    pub rmse: Option<f64>,
    /// Why it was skipped, or a remark (e.g. a fallback).
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub model: String,
    pub rmse: f64,
    pub candidates: Vec<Candidate>,
    pub values: Vec<f64>,
}

pub const HW_ADD: &str = "holt_winters_add";
pub const HW_MUL: &str = "holt_winters_mul";
pub const HOLT: &str = "holt_linear";
pub const PERSISTENCE: &str = "persistence";
pub const AUTO_ETS: &str = "auto_ets";
pub const MSTL: &str = "mstl_auto_ets";
pub const ARIMA: &str = "arima";

fn rmse(pred: &[f64], actual: &[f64]) -> f64 {
    (pred.iter().zip(actual).map(|(p, a)| (p - a).powi(2)).sum::<f64>() / actual.len() as f64).sqrt()
}

/// A candidate fitted on the training part.
enum Fitted {
    Hw(HoltWinters),
    Persistence(f64),
    /// augurs' non-seasonal AutoETS, with its point forecast.
    AutoEts(Vec<f64>),
    /// augurs' MSTL with an AutoETS trend, for a period, with its point forecast.
    Mstl(usize, Vec<f64>),
    Arima(crate::arima::Arima),
}

fn auto_ets(y: &[f64], h: usize) -> Option<Vec<f64>> {
    use augurs_core::{Fit, Predict};
    let fitted = augurs_ets::AutoETS::non_seasonal().fit(y).ok()?;
    fitted.predict(h, None).ok().map(|f| f.point)
}

fn mstl(y: &[f64], period: usize, h: usize) -> Option<Vec<f64>> {
    use augurs_core::{Fit, Predict};
    let trend = augurs_ets::trend::AutoETSTrendModel::from(augurs_ets::AutoETS::non_seasonal());
    let fitted = augurs_mstl::MSTLModel::new(vec![period], trend).fit(y).ok()?;
    fitted.predict(h, None).ok().map(|f| f.point)
}

impl Fitted {
    fn forecast(&self, h: usize) -> Vec<f64> {
        match self {
            Fitted::Hw(m) => m.forecast(h),
            Fitted::Persistence(v) => vec![*v; h],
            Fitted::AutoEts(points) | Fitted::Mstl(_, points) => points.iter().copied().take(h).collect(),
            Fitted::Arima(m) => m.forecast(h),
        }
    }

    /// The same model on the whole series (warm-started from the training fit where
    /// the model allows), ready to forecast `horizon` points.
    fn refit(&self, y: &[f64], horizon: usize) -> Option<Fitted> {
        match self {
            Fitted::Hw(m) => m.refit(y).map(Fitted::Hw),
            Fitted::Persistence(_) => y.last().map(|v| Fitted::Persistence(*v)),
            Fitted::AutoEts(_) => auto_ets(y, horizon).map(Fitted::AutoEts),
            Fitted::Mstl(period, _) => mstl(y, *period, horizon).map(|f| Fitted::Mstl(*period, f)),
            Fitted::Arima(m) => m.refit(y).map(Fitted::Arima),
        }
    }
}

/// Forecasts `horizon` points after `y`, choosing among the candidates by RMSE on the
/// last `holdout` points. `period` is the seasonal period in samples, when known.
pub fn forecast(y: &[f64], period: Option<usize>, holdout: usize, horizon: usize) -> Option<Forecast> {
    if y.is_empty() {
        return None;
    }
    if crate::is_constant(y) {
        let last = *y.last()?;
        return Some(Forecast {
            model: PERSISTENCE.into(),
            rmse: 0.0,
            candidates: vec![Candidate {
                model: PERSISTENCE.into(),
                rmse: Some(0.0),
                note: Some("constant series".into()),
            }],
            values: vec![last; horizon],
        });
    }
    if y.len() <= holdout + 2 {
        return None;
    }
    let (train, test) = y.split_at(y.len() - holdout);
    let mut candidates = Vec::new();
    let mut fits: Vec<(&str, Option<Fitted>)> = Vec::new();
    match period {
        Some(p) if p >= 2 && train.len() >= 2 * p => {
            if y.iter().all(|v| *v > 0.0) {
                let (add, mul) = HoltWinters::fit_seasonal_pair(train, p);
                fits.push((HW_ADD, add.map(Fitted::Hw)));
                fits.push((HW_MUL, mul.map(Fitted::Hw)));
            } else {
                fits.push((HW_ADD, HoltWinters::fit(train, Seasonal::Additive, p).map(Fitted::Hw)));
                candidates.push(Candidate {
                    model: HW_MUL.into(),
                    rmse: None,
                    note: Some("skipped: multiplicative seasonality needs values > 0".into()),
                });
            }
        }
        Some(p) => {
            let note =
                format!("skipped: {} points are fewer than two periods of {p}; non-seasonal models only", train.len());
            candidates.push(Candidate { model: HW_ADD.into(), rmse: None, note: Some(note.clone()) });
            candidates.push(Candidate { model: HW_MUL.into(), rmse: None, note: Some(note) });
        }
        None => {
            let note = "skipped: no seasonal period known".to_owned();
            candidates.push(Candidate { model: HW_ADD.into(), rmse: None, note: Some(note.clone()) });
            candidates.push(Candidate { model: HW_MUL.into(), rmse: None, note: Some(note) });
        }
    }
    if let Some(p) = period.filter(|p| *p >= 2 && train.len() >= 2 * p) {
        fits.push((MSTL, mstl(train, p, holdout).map(|f| Fitted::Mstl(p, f))));
    }
    fits.push((AUTO_ETS, auto_ets(train, holdout).map(Fitted::AutoEts)));
    fits.push((ARIMA, crate::arima::Arima::fit(train).map(Fitted::Arima)));
    fits.push((HOLT, HoltWinters::fit(train, Seasonal::None, 1).map(Fitted::Hw)));
    fits.push((PERSISTENCE, train.last().map(|v| Fitted::Persistence(*v))));

    let mut best: Option<(&str, Fitted, f64)> = None;
    for (name, fitted) in fits {
        let scored = fitted.map(|f| (f.forecast(holdout), f)).filter(|(pred, _)| pred.iter().all(|v| v.is_finite()));
        match scored {
            Some((pred, f)) => {
                let score = rmse(&pred, test);
                candidates.push(Candidate { model: name.into(), rmse: Some(score), note: None });
                if best.as_ref().is_none_or(|b| score < b.2) {
                    best = Some((name, f, score));
                }
            }
            None => candidates.push(Candidate { model: name.into(), rmse: None, note: Some("fit failed".into()) }),
        }
    }
    let (name, fitted, score) = best?;
    let values = fitted.refit(y, horizon)?.forecast(horizon);
    Some(Forecast { model: name.into(), rmse: score, candidates, values })
}

/// The seed's forecast step alone: additive and (for positive series) multiplicative
/// Holt-Winters fitted on all but the last `holdout` points, the one with the lower
/// hold-out RMSE refitted on every point, `horizon` points forecast. This is what the
/// benchmark compares with statsmodels; [`forecast`] adds more candidates.
pub fn holt_winters_step(y: &[f64], period: usize, holdout: usize, horizon: usize) -> Option<Vec<f64>> {
    let (train, test) = y.split_at(y.len().checked_sub(holdout)?);
    let mut best: Option<(HoltWinters, f64)> = None;
    let (add, mul) = HoltWinters::fit_seasonal_pair(train, period);
    for m in [add, mul].into_iter().flatten() {
        let score = rmse(&m.forecast(holdout), test);
        if best.as_ref().is_none_or(|b| score < b.1) {
            best = Some((m, score));
        }
    }
    Some(best?.0.refit(y)?.forecast(horizon))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_series_get_a_persistence_forecast_with_zero_rmse() {
        let f = forecast(&[4.0; 100], Some(12), 10, 10).unwrap();
        assert_eq!((f.model.as_str(), f.rmse, f.values), (PERSISTENCE, 0.0, vec![4.0; 10]));
    }

    #[test]
    fn multiplicative_is_skipped_with_a_reason_on_non_positive_series() {
        let y: Vec<f64> = (0..200).map(|i| (std::f64::consts::TAU * i as f64 / 20.0).sin() * 5.0).collect();
        let f = forecast(&y, Some(20), 10, 10).unwrap();
        let mul = f.candidates.iter().find(|c| c.model == HW_MUL).unwrap();
        assert_eq!(mul.rmse, None);
        assert!(mul.note.as_deref().unwrap().contains("values > 0"));
        assert_eq!(f.model, HW_ADD);
        assert!(f.values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn too_little_history_falls_back_to_non_seasonal_and_says_so() {
        let y: Vec<f64> = (0..50).map(|i| 10.0 + i as f64 * 0.1).collect();
        let f = forecast(&y, Some(60), 10, 10).unwrap();
        assert!(f.candidates.iter().any(|c| c.note.as_deref().is_some_and(|n| n.contains("fewer than two periods"))));
        assert!(f.model == HOLT || f.model == PERSISTENCE);
    }
}
