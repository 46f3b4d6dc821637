//! The forecast scorecard: every forecast of an SLA metric is kept until its horizon has
//! passed, then scored against the samples that arrived — its error, whether the values
//! fell inside its prediction intervals, and (at query time, against the current range)
//! whether the breach it predicted happened. Part of the SLA samples read model
//! ([`SlaSamplesView::scoring`](crate::views::SlaSamplesView)), whose samples are the
//! actual values; forecasts and samples of a series share its partition, so the projection
//! sees them in the order they were produced and a replay scores exactly the same.
//!
//! The actual value at a forecast point's time is what an instant query at that time
//! would give: the latest sample at or before it, at most the lookback (5 min) older; a
//! NaN sample, or none, leaves the point unscored.

use serde::{Deserialize, Serialize};

use crate::events::{MetricForecastComputed, PredictionInterval};
use crate::semantics::DEFAULT_LOOKBACK;
use crate::sla::SlaRange;
use crate::Sample;

/// Forecasts kept while their horizon has not passed; beyond this the oldest is dropped
/// unscored (a series whose samples stopped).
pub const MAX_PENDING: usize = 20;
/// Scored forecasts kept with their points (one hour at the ETL's 2-minute cycle), for the
/// breach scores computed against the current range.
pub const MAX_RECENT: usize = 30;

/// A forecast waiting for its horizon to pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingForecast {
    /// When it was computed, in milliseconds since the Unix epoch.
    pub computed_at_ms: i64,
    /// The model that made it.
    pub model: String,
    /// Its points, oldest first.
    pub points: Vec<Sample>,
    /// Their prediction intervals, one per point, or none.
    pub intervals: Vec<PredictionInterval>,
}

/// One forecast point against what happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredPoint {
    /// The time it predicted, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The forecast value.
    pub forecast: f64,
    /// The value observed at that time (see the module's doc); `None` when there was none.
    pub actual: Option<f64>,
    /// Its prediction interval, when the forecast had them.
    pub interval: Option<PredictionInterval>,
}

/// A forecast whose horizon has passed, point by point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredForecast {
    /// When it was computed, in milliseconds since the Unix epoch.
    pub computed_at_ms: i64,
    /// The model that made it.
    pub model: String,
    /// The value observed when it was made (the latest sample at or before `computed_at_ms`, within
    /// the lookback): a breach already under way is no prediction.
    #[serde(default)]
    pub at_origin: Option<f64>,
    /// Its points with the values observed.
    pub points: Vec<ScoredPoint>,
}

/// The totals of one model's scored forecasts of a series, since its first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelScore {
    /// The model.
    pub model: String,
    /// Forecasts scored.
    pub forecasts: u64,
    /// Points with an observed value.
    pub points: u64,
    /// Sum of squared errors over those points, in the series' units squared.
    pub sum_squared_error: f64,
    /// Points that had an interval.
    pub with_interval: u64,
    /// Of those, the ones whose value fell inside the 80 % interval.
    pub inside_80: u64,
    /// And inside the 95 % interval.
    pub inside_95: u64,
}

impl ModelScore {
    /// The RMSE over every scored point; `None` before the first.
    pub fn rmse(&self) -> Option<f64> {
        (self.points > 0).then(|| (self.sum_squared_error / self.points as f64).sqrt())
    }

    /// The share of values inside the 80 % and the 95 % intervals; `None` before any interval was scored.
    pub fn coverage(&self) -> Option<(f64, f64)> {
        let n = self.with_interval as f64;
        (self.with_interval > 0).then(|| (self.inside_80 as f64 / n, self.inside_95 as f64 / n))
    }

    /// The score of one forecast alone.
    pub fn of(f: &ScoredForecast) -> Self {
        let mut m = ModelScore { model: f.model.clone(), ..ModelScore::default() };
        m.add(f);
        m
    }

    fn add(&mut self, f: &ScoredForecast) {
        self.forecasts += 1;
        for p in &f.points {
            let Some(actual) = p.actual else { continue };
            let error = actual - p.forecast;
            if !error.is_finite() {
                continue;
            }
            self.points += 1;
            self.sum_squared_error += error * error;
            if let Some(i) = p.interval {
                self.with_interval += 1;
                self.inside_80 += u64::from(i.lower_80 <= actual && actual <= i.upper_80);
                self.inside_95 += u64::from(i.lower_95 <= actual && actual <= i.upper_95);
            }
        }
    }
}

/// The scorecard state of one series.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ForecastScoring {
    /// Forecasts whose horizon has not passed yet, oldest first.
    pub pending: Vec<PendingForecast>,
    /// The latest scored forecasts, oldest first, at most [`MAX_RECENT`].
    pub recent: Vec<ScoredForecast>,
    /// Totals per model, since the first scored forecast, in the order the models first appeared.
    pub models: Vec<ModelScore>,
    /// Forecasts dropped unscored: their horizon never got a sample after it while [`MAX_PENDING`] newer ones came.
    pub dropped: u64,
}

impl ForecastScoring {
    /// The newest forecast it knows, pending or scored (to tell a redelivered forecast from a new one).
    pub fn latest_forecast_ms(&self) -> Option<i64> {
        let pending = self.pending.iter().map(|p| p.computed_at_ms);
        pending.chain(self.recent.iter().map(|r| r.computed_at_ms)).max()
    }

    /// Keeps a new forecast until its horizon has passed. One already known (same or older computation
    /// time) is ignored.
    pub fn add_forecast(&mut self, f: &MetricForecastComputed) {
        if f.points.is_empty() || self.latest_forecast_ms().is_some_and(|t| t >= f.computed_at_ms) {
            return;
        }
        self.pending.push(PendingForecast {
            computed_at_ms: f.computed_at_ms,
            model: f.model.clone(),
            points: f.points.clone(),
            intervals: if f.intervals.len() == f.points.len() { f.intervals.clone() } else { Vec::new() },
        });
        if self.pending.len() > MAX_PENDING {
            self.pending.remove(0);
            self.dropped += 1;
        }
    }

    /// Scores every pending forecast whose last point is at or before the last of `samples` (sorted by
    /// time, the series' samples as the read model holds them).
    pub fn score(&mut self, samples: &[Sample]) {
        let Some(last) = samples.last().map(|s| s.ts_ms) else { return };
        let lookback = DEFAULT_LOOKBACK.as_millis() as i64;
        let (due, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.points.last().is_some_and(|x| x.ts_ms <= last));
        self.pending = pending;
        // the value an instant query would give at `ts`
        let observed = |ts: i64| {
            let at = samples.partition_point(|s| s.ts_ms <= ts);
            at.checked_sub(1)
                .map(|i| samples[i])
                .filter(|s| ts - s.ts_ms <= lookback && !s.value.is_nan())
                .map(|s| s.value)
        };
        for p in due {
            let points = p
                .points
                .iter()
                .enumerate()
                .map(|(k, pt)| ScoredPoint {
                    ts_ms: pt.ts_ms,
                    forecast: pt.value,
                    actual: observed(pt.ts_ms),
                    interval: p.intervals.get(k).copied(),
                })
                .collect();
            let at_origin = observed(p.computed_at_ms);
            let scored = ScoredForecast { computed_at_ms: p.computed_at_ms, model: p.model, at_origin, points };
            match self.models.iter_mut().find(|m| m.model == scored.model) {
                Some(m) => m.add(&scored),
                None => self.models.push(ModelScore::of(&scored)),
            }
            self.recent.push(scored);
        }
        let excess = self.recent.len().saturating_sub(MAX_RECENT);
        self.recent.drain(..excess);
    }
}

/// How the breaches a series' recent forecasts predicted compare with what happened, against a range.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct BreachScores {
    /// Forecasts scored.
    pub forecasts: u64,
    /// Made while the series was already outside the range: no prediction to score (in none of the
    /// counts below).
    pub ongoing: u64,
    /// Predicted a value outside the range, and one was observed within the horizon.
    pub hits: u64,
    /// Predicted one, and none was observed.
    pub false_alarms: u64,
    /// Predicted none, and one was observed.
    pub misses: u64,
    /// Predicted none, and none was observed.
    pub quiet: u64,
    /// Of the hits, the mean time from the forecast to the first observed value outside the range,
    /// in minutes; `None` without hits.
    pub mean_lead_minutes: Option<f64>,
}

/// The breach scores of `forecasts` against `range`: a forecast predicts a breach when one of its points
/// is outside the range; a breach happened when one of the values observed at its points is. A forecast
/// made while the series was already outside the range is counted as `ongoing` only.
pub fn breach_scores(forecasts: &[ScoredForecast], range: &SlaRange) -> BreachScores {
    let mut out = BreachScores::default();
    let mut lead_sum = 0.0;
    for f in forecasts {
        out.forecasts += 1;
        if f.at_origin.is_some_and(|v| range.violated_by(v)) {
            out.ongoing += 1;
            continue;
        }
        let predicted = f.points.iter().any(|p| range.violated_by(p.forecast));
        let first_breach = f.points.iter().find(|p| p.actual.is_some_and(|a| range.violated_by(a)));
        match (predicted, first_breach) {
            (true, Some(p)) => {
                out.hits += 1;
                lead_sum += (p.ts_ms - f.computed_at_ms) as f64 / 60_000.0;
            }
            (true, None) => out.false_alarms += 1,
            (false, Some(_)) => out.misses += 1,
            (false, None) => out.quiet += 1,
        }
    }
    out.mean_lead_minutes = (out.hits > 0).then(|| lead_sum / out.hits as f64);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    const M: i64 = 60_000;

    fn forecast(at: i64, model: &str, values: &[f64], sd: f64) -> MetricForecastComputed {
        let points: Vec<Sample> =
            values.iter().enumerate().map(|(k, v)| Sample::new(at + (k as i64 + 1) * M, *v)).collect();
        let intervals = points
            .iter()
            .map(|p| PredictionInterval {
                lower_80: p.value - 1.2816 * sd,
                upper_80: p.value + 1.2816 * sd,
                lower_95: p.value - 1.96 * sd,
                upper_95: p.value + 1.96 * sd,
            })
            .collect();
        MetricForecastComputed {
            labels: Labels::default(),
            computed_at_ms: at,
            model: model.into(),
            rmse: 0.0,
            candidates: vec![],
            points,
            intervals,
            min: 0.0,
            max: 0.0,
            avg: 0.0,
        }
    }

    /// One sample every 15 s from `from` to `to` (inclusive) with value `f(ts)`.
    fn scrape(from: i64, to: i64, f: impl Fn(i64) -> f64) -> Vec<Sample> {
        (0..).map(|k| from + k * 15_000).take_while(|t| *t <= to).map(|t| Sample::new(t, f(t))).collect()
    }

    #[test]
    fn a_forecast_is_scored_once_its_horizon_has_passed() {
        let mut s = ForecastScoring::default();
        s.add_forecast(&forecast(0, "holt_linear", &[10.0, 10.0, 10.0], 1.0));
        // samples up to minute 2: the horizon (minute 3) has not passed
        s.score(&scrape(0, 2 * M, |_| 11.0));
        assert_eq!((s.pending.len(), s.recent.len()), (1, 0));
        // up to minute 3: scored; every actual is 11, one above the forecast
        s.score(&scrape(0, 3 * M, |_| 11.0));
        assert_eq!((s.pending.len(), s.recent.len()), (0, 1));
        let m = &s.models[0];
        assert_eq!((m.model.as_str(), m.forecasts, m.points), ("holt_linear", 1, 3));
        assert!((m.rmse().unwrap() - 1.0).abs() < 1e-12);
        // |error| = 1σ: inside the 80 % (±1.28σ) and 95 % intervals
        assert_eq!(m.coverage(), Some((1.0, 1.0)));
        // scoring again changes nothing; a redelivered forecast is not kept twice
        let before = s.clone();
        s.score(&scrape(0, 4 * M, |_| 11.0));
        s.add_forecast(&forecast(0, "holt_linear", &[10.0, 10.0, 10.0], 1.0));
        assert_eq!(s, before);
    }

    #[test]
    fn the_actual_value_is_the_latest_sample_within_the_lookback() {
        let mut s = ForecastScoring::default();
        s.add_forecast(&forecast(0, "arima", &[0.0; 10], 1.0));
        // samples stop after minute 2 and come back at minute 9: minutes 3..7 see the sample of
        // minute 2 (within 5 min), minute 8 sees none; minute 5's NaN sample leaves it unscored
        let mut samples = scrape(0, 2 * M, |_| 3.0);
        samples.push(Sample::new(5 * M, f64::NAN));
        samples.extend(scrape(9 * M, 10 * M, |_| 3.0));
        s.score(&samples);
        let actual: Vec<Option<f64>> = s.recent[0].points.iter().map(|p| p.actual).collect();
        let three = Some(3.0);
        assert_eq!(actual, vec![three, three, three, three, None, None, None, None, three, three]);
        // the 95 % interval is ±1.96: a miss of 3 is outside both
        assert_eq!(s.models[0].coverage(), Some((0.0, 0.0)));
        assert_eq!(s.models[0].points, 6);
    }

    #[test]
    fn breaches_predicted_and_observed_are_hits_misses_and_false_alarms() {
        let range = SlaRange { min: 0.0, max: 10.0 };
        let mut s = ForecastScoring::default();
        // hit: predicted at minute 2, observed at minute 3 (lead 3 min)
        s.add_forecast(&forecast(0, "a", &[5.0, 12.0, 12.0], 1.0));
        // false alarm: predicted, never observed
        s.add_forecast(&forecast(10 * M, "a", &[5.0, 12.0, 5.0], 1.0));
        // miss: observed at minute 22, not predicted
        s.add_forecast(&forecast(20 * M, "a", &[5.0, 5.0, 5.0], 1.0));
        // quiet
        s.add_forecast(&forecast(30 * M, "a", &[5.0, 5.0, 5.0], 1.0));
        let value = |t: i64| if (3 * M..=3 * M + 30_000).contains(&t) || t == 22 * M { 20.0 } else { 5.0 };
        s.score(&scrape(0, 40 * M, value));
        assert_eq!(s.recent.len(), 4);
        let b = breach_scores(&s.recent, &range);
        assert_eq!((b.forecasts, b.hits, b.false_alarms, b.misses, b.quiet), (4, 1, 1, 1, 1));
        assert_eq!(b.mean_lead_minutes, Some(3.0));
        // made while the series was out of the range: ongoing, no lead time
        let mut s = ForecastScoring::default();
        s.add_forecast(&forecast(10 * M, "a", &[20.0, 20.0], 1.0));
        s.score(&scrape(0, 20 * M, |_| 20.0));
        let b = breach_scores(&s.recent, &range);
        assert_eq!((b.forecasts, b.ongoing, b.hits, b.mean_lead_minutes), (1, 1, 0, None));
    }

    #[test]
    fn pending_and_recent_forecasts_are_bounded() {
        let mut s = ForecastScoring::default();
        for k in 0..(MAX_PENDING as i64 + 5) {
            s.add_forecast(&forecast(k * M, "a", &[1.0], 1.0));
        }
        assert_eq!((s.pending.len(), s.dropped), (MAX_PENDING, 5));
        s.score(&scrape(0, 100 * M, |_| 1.0));
        assert_eq!(s.recent.len(), MAX_PENDING.min(MAX_RECENT));
        assert_eq!(s.models[0].forecasts, MAX_PENDING as u64);
        for k in 0..(MAX_RECENT as i64 + 5) {
            s.add_forecast(&forecast(200 * M + k * M, "a", &[1.0], 1.0));
            s.score(&scrape(0, 300 * M, |_| 1.0));
        }
        assert_eq!(s.recent.len(), MAX_RECENT);
    }
}
