//! SLA semantics (SPEC §9): violation runs, status like a Prometheus alerting rule with
//! `for`, violations in the last 1 h / 3 h / 12 h, and future violations.

use std::time::Duration;

use serde::Serialize;

use crate::events::PredictionInterval;
use crate::events::Window;
use crate::sla::{fmt_num, SlaEntry};
use crate::time::UnixMillis;
use crate::Sample;

const MINUTE_MS: f64 = 60_000.0;

/// The `for` of an SLA entry (whole minutes) as a span.
fn for_span(for_minutes: u32) -> Duration {
    Duration::from_secs(60 * u64::from(for_minutes))
}

/// A maximal stretch of consecutive violating samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The timestamp of its first sample.
    pub start: UnixMillis,
    /// The timestamp of its last sample.
    pub end: UnixMillis,
    /// Samples in the run.
    pub count: usize,
    /// Mean, largest and smallest of its values.
    pub avg: f64,
    /// Largest value of the run.
    pub max: f64,
    /// Smallest value of the run.
    pub min: f64,
    /// Index of the first and last sample of the run in the input.
    pub first: usize,
    /// Index of the last sample of the run in the input.
    pub last: usize,
}

impl Run {
    /// `end − start`, in minutes: how long a Prometheus rule would have seen it hold.
    pub fn duration_minutes(&self) -> f64 {
        self.duration().as_millis() as f64 / MINUTE_MS
    }

    /// `end − start`.
    pub fn duration(&self) -> Duration {
        self.end.since(self.start)
    }

    /// Whether the run lasted at least `for`.
    pub fn reaches(&self, for_minutes: u32) -> bool {
        self.duration() >= for_span(for_minutes)
    }
}

/// Prometheus's default `--query.lookback-delta`: how long after its last sample a series
/// still has a value at an evaluation.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(5 * 60);

/// The violation runs of `samples` (sorted by time) against the entry's range. Like a
/// Prometheus rule evaluated between the samples, a run goes on across a gap of at most
/// `lookback` between two violating samples and ends at a longer one (the series had no
/// value in between, so `for` starts over).
pub fn violation_runs(entry: &SlaEntry, samples: &[Sample], lookback: Duration) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < samples.len() {
        if !entry.range.violated_by(samples[i].value) {
            i += 1;
            continue;
        }
        let first = i;
        while i + 1 < samples.len()
            && entry.range.violated_by(samples[i + 1].value)
            && samples[i + 1].at().since(samples[i].at()) <= lookback
        {
            i += 1;
        }
        let values = samples[first..=i].iter().map(|s| s.value);
        let (mut sum, mut max, mut min) = (0.0, f64::NEG_INFINITY, f64::INFINITY);
        for v in values {
            sum += v;
            max = max.max(v);
            min = min.min(v);
        }
        let count = i - first + 1;
        runs.push(Run {
            start: samples[first].at(),
            end: samples[i].at(),
            count,
            avg: sum / count as f64,
            max,
            min,
            first,
            last: i,
        });
        i += 1;
    }
    runs
}

/// The state of an SLA, like a Prometheus alerting rule's; serialized in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlaState {
    /// No fresh sample: the series is not reporting.
    Absent,
    /// The latest sample is within the range.
    Inactive,
    /// The latest sample violates, but its run has lasted less than `for`.
    Pending,
    /// The run of the latest sample has lasted at least `for`.
    Firing,
}

/// The status of one SLA at an instant (what [`status`] returns): one element of `GET /status`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// The state at the evaluation instant.
    pub state: SlaState,
    /// The description in the seed's wording (SPEC §9), numbers as [`fmt_num`] writes them.
    pub description: String,
    /// The values of the last three samples, oldest first; fewer when fewer samples exist.
    pub last_values: Vec<f64>,
    /// When pending or firing: the first sample of the violating run (Prometheus's
    /// `ActiveAt`); the SLA fired, or will fire, `for` after it. `None` otherwise.
    pub active_at: Option<UnixMillis>,
}

fn range_text(entry: &SlaEntry) -> String {
    format!("({}, {})", fmt_num(entry.range.min), fmt_num(entry.range.max))
}

fn minutes_floor(span: Duration) -> String {
    fmt_num((span.as_millis() as f64 / MINUTE_MS).floor())
}

fn values_text(values: &[f64]) -> String {
    format!("[{}]", values.iter().map(|v| fmt_num(*v)).collect::<Vec<_>>().join(","))
}

/// [`status`] of an SLA that has been in the set since `entered_at`. A series with no
/// sample observed at all is `absent` only once `absent_after` has passed since then:
/// before, "no sample" is the ETL's delay in publishing a new SLA's samples (a cycle), not
/// the series' silence, so it is `inactive` — as a Prometheus alerting rule whose
/// expression has returned nothing yet — described `No samples observed yet for this
/// series (in the SLA set since …)`. With samples, the same as [`status`].
pub fn status_in_set(
    entry: &SlaEntry,
    samples: &[Sample],
    entered_at: UnixMillis,
    now: UnixMillis,
    lookback: Duration,
    absent_after: Duration,
) -> StatusReport {
    if samples.is_empty() && now.since(entered_at) <= absent_after {
        return StatusReport {
            state: SlaState::Inactive,
            description: format!(
                "No samples observed yet for this series (in the SLA set since {}; absent if none by {} min after)",
                crate::seed_time(entered_at.millis()),
                minutes_floor(absent_after)
            ),
            last_values: Vec::new(),
            active_at: None,
        };
    }
    status(entry, samples, now, lookback, absent_after)
}

/// The state of an SLA at `now`, like a Prometheus alerting rule `value < min or
/// value > max` with `for` evaluated at `now` with `lookback`. A series whose newest
/// sample is more than `absent_after` older than `now` is `absent`; one whose newest
/// sample is older than `lookback` has no value at `now`, so it is `inactive` (Prometheus
/// resolves the alert); runs split at gaps longer than `lookback`
/// ([`violation_runs`]).
pub fn status(
    entry: &SlaEntry,
    samples: &[Sample],
    now: UnixMillis,
    lookback: Duration,
    absent_after: Duration,
) -> StatusReport {
    let last_values: Vec<f64> = samples.iter().rev().take(3).rev().map(|s| s.value).collect();
    let Some(latest) = samples.last() else {
        return StatusReport {
            state: SlaState::Absent,
            description: "No samples observed for this series".into(),
            last_values,
            active_at: None,
        };
    };
    let silent = now.since(latest.at());
    // no recent sample: the state and the description's start say how recent
    let stale = match (silent > absent_after, silent > lookback) {
        (true, _) => Some((SlaState::Absent, format!("No sample for {} min", minutes_floor(silent)))),
        (false, true) => {
            Some((SlaState::Inactive, format!("No sample in the last {} min (lookback;", minutes_floor(lookback))))
        }
        (false, false) => None,
    };
    if let Some((state, head)) = stale {
        let sep = if state == SlaState::Absent { " (" } else { " " };
        return StatusReport {
            state,
            description: format!(
                "{head}{sep}last at {}), last three values {}",
                crate::seed_time(latest.ts_ms),
                values_text(&last_values)
            ),
            last_values,
            active_at: None,
        };
    }
    if !entry.range.violated_by(latest.value) {
        return StatusReport {
            state: SlaState::Inactive,
            description: format!("Actual value [{}] in {}", fmt_num(latest.value), range_text(entry)),
            last_values,
            active_at: None,
        };
    }
    let run = violation_runs(entry, samples, lookback).pop().expect("the latest sample violates, so a run ends there");
    if run.reaches(entry.for_minutes) {
        StatusReport {
            state: SlaState::Firing,
            description: format!(
                "Service level agreement violated for more than {} min, last three values {}, allowed range: {}",
                entry.for_minutes,
                values_text(&last_values),
                range_text(entry)
            ),
            last_values,
            active_at: Some(run.start),
        }
    } else {
        let x = run.duration_minutes();
        let p = x / f64::from(entry.for_minutes) * 100.0;
        StatusReport {
            state: SlaState::Pending,
            description: format!(
                "Service level agreement violated for {}/{} min ({}%), last three values {} not in {}",
                fmt_num((x * 100.0).round() / 100.0),
                entry.for_minutes,
                fmt_num(p.round()),
                values_text(&last_values),
                range_text(entry)
            ),
            last_values,
            active_at: Some(run.start),
        }
    }
}

/// The violations of one SLA in one window: the `1h`, `3h` or `12h` object of `GET /violations`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowViolations {
    /// Number of runs that reached `for` and ended inside the window.
    pub n: usize,
    /// Minutes of violation inside the window.
    pub time: f64,
}

/// The violations of one SLA (what [`violations`] returns): one element of `GET /violations`.
#[derive(Debug, Clone, PartialEq)]
pub struct ViolationsReport {
    /// One entry per window, in [`Window::ALL`] order (1h, 3h, 12h).
    pub windows: Vec<(Window, WindowViolations)>,
    /// The runs that reached `for` and ended in the last 12 h.
    /// Oldest first; `first`/`last` index the samples given to [`violations`].
    pub list: Vec<Run>,
}

/// Runs that lasted at least `for` and ended in the last 1 h, 3 h, 12 h: their count
/// and the minutes of violation inside each window.
pub fn violations(entry: &SlaEntry, samples: &[Sample], now: UnixMillis, lookback: Duration) -> ViolationsReport {
    let runs: Vec<Run> =
        violation_runs(entry, samples, lookback).into_iter().filter(|r| r.reaches(entry.for_minutes)).collect();
    let windows = Window::ALL
        .into_iter()
        .map(|w| {
            let from = now - w.span();
            let inside: Vec<&Run> = runs.iter().filter(|r| r.end >= from).collect();
            let time =
                inside.iter().fold(0.0, |acc, r| acc + r.end.since(r.start.max(from)).as_millis() as f64 / MINUTE_MS);
            (w, WindowViolations { n: inside.len(), time })
        })
        .collect();
    let from12 = now - Window::H12.span();
    let list = runs.into_iter().filter(|r| r.end >= from12).collect();
    ViolationsReport { windows, list }
}

/// How a future violation run relates to what was observed; serialized as its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FutureKind {
    /// The observed part of the run has already lasted `for`: firing now, and forecast to go on.
    #[serde(rename = "Was already firing, continuing firing")]
    ContinuingFiring,
    /// The run started in the observed samples, short of `for`; with the forecast it reaches `for`.
    #[serde(rename = "Was pending, will fire")]
    PendingWillFire,
    /// The run starts in the forecast and lasts at least `for` there.
    #[serde(rename = "Will fire")]
    WillFire,
    /// The run, started in the observed samples or not, does not reach `for` within the forecast.
    #[serde(rename = "Will be pending")]
    WillBePending,
}

impl FutureKind {
    /// The seed's wording of the kind, e.g. `Will fire`: the same text it is serialized as.
    pub fn description(self) -> &'static str {
        match self {
            FutureKind::ContinuingFiring => "Was already firing, continuing firing",
            FutureKind::PendingWillFire => "Was pending, will fire",
            FutureKind::WillFire => "Will fire",
            FutureKind::WillBePending => "Will be pending",
        }
    }
}

/// A violation run that reaches into the forecast, and how it relates to the observed samples.
#[derive(Debug, Clone, PartialEq)]
pub struct FutureViolation {
    /// How the run relates to the observed samples.
    pub kind: FutureKind,
    /// The run over the observed samples followed by the forecast points after the last observed one;
    /// its `first`/`last` index that concatenation.
    pub run: Run,
}

/// The forecast appended to the observed samples; the runs that reach into the
/// forecast, each described from what was observed so far.
pub fn future_violations(
    entry: &SlaEntry,
    observed: &[Sample],
    forecast: &[Sample],
    lookback: Duration,
) -> Vec<FutureViolation> {
    let last_observed = observed.last().map(|s| s.ts_ms).unwrap_or(i64::MIN);
    let mut all: Vec<Sample> = observed.to_vec();
    all.extend(forecast.iter().filter(|s| s.ts_ms > last_observed));
    let n_observed = observed.len();
    violation_runs(entry, &all, lookback)
        .into_iter()
        .filter(|r| r.last >= n_observed)
        .map(|run| {
            let started_before = run.first < n_observed;
            let kind = if started_before {
                let observed_part = all[n_observed - 1].at().since(run.start);
                if observed_part >= for_span(entry.for_minutes) {
                    FutureKind::ContinuingFiring
                } else if run.reaches(entry.for_minutes) {
                    FutureKind::PendingWillFire
                } else {
                    FutureKind::WillBePending
                }
            } else if run.reaches(entry.for_minutes) {
                FutureKind::WillFire
            } else {
                FutureKind::WillBePending
            };
            FutureViolation { kind, run }
        })
        .collect()
}

/// The probability, in `[0, 1]`, that the series is outside `entry`'s range at one or more of the
/// forecast points after the last of the `observed` samples (as [`future_violations`]), under the forecast's
/// distribution: point `k` is normal with mean `forecast[k].value` and the standard deviation its
/// 95 % interval implies ([`PredictionInterval::std_dev`]).
///
/// Multi-step forecast errors are strongly correlated (they share the error of the level the
/// forecast starts from), so they are taken as one standard normal draw `z` scaled per point
/// (comonotone): point `k` is `value_k + z σ_k`. It is above the range when `z > (max − value_k) / σ_k`
/// and below when `z < (min − value_k) / σ_k`, so the path leaves the range unless
/// `max_k (min − value_k)/σ_k ≤ z ≤ min_k (max − value_k)/σ_k`, and the probability is one minus that
/// interval's normal mass. It is never below the largest single-point probability, as any joint
/// distribution's is not. A point with `σ = 0` is certain (inside or out), a NaN point never violates
/// (as a NaN sample), a ±Inf one always does.
///
/// `None` when the forecast has no intervals (`intervals.len() != forecast.len()`) or no point after
/// the observed samples.
pub fn breach_probability(
    entry: &SlaEntry,
    observed: &[Sample],
    forecast: &[Sample],
    intervals: &[PredictionInterval],
) -> Option<f64> {
    use statrs::distribution::{ContinuousCDF, Normal};
    if intervals.len() != forecast.len() {
        return None;
    }
    let observed_until_ms = observed.last().map_or(i64::MIN, |s| s.ts_ms);
    let (min, max) = (entry.range.min, entry.range.max);
    // z must stay in [low, high] for the path to stay inside
    let (mut low, mut high) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut any = false;
    for (point, interval) in forecast.iter().zip(intervals).filter(|(p, _)| p.ts_ms > observed_until_ms) {
        any = true;
        let (v, sd) = (point.value, interval.std_dev());
        if v.is_nan() {
            continue;
        }
        if sd > 0.0 && sd.is_finite() && v.is_finite() {
            low = low.max((min - v) / sd);
            high = high.min((max - v) / sd);
        } else if entry.range.violated_by(v) {
            return Some(1.0);
        }
    }
    if !any {
        return None;
    }
    let normal = Normal::standard();
    let inside = if low < high { normal.cdf(high) - normal.cdf(low) } else { 0.0 };
    Some((1.0 - inside).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::sla::SlaRange;

    const M: i64 = 60_000;

    const LB: Duration = DEFAULT_LOOKBACK;

    fn at(ms: i64) -> UnixMillis {
        UnixMillis(ms)
    }

    fn mins(n: u64) -> Duration {
        Duration::from_secs(60 * n)
    }

    fn entry(for_minutes: u32) -> SlaEntry {
        SlaEntry { labels: Labels::default(), range: SlaRange { min: 0.0, max: 10.0 }, for_minutes }
    }

    /// One sample a minute starting at minute 0.
    fn minutes(values: &[f64]) -> Vec<Sample> {
        values.iter().enumerate().map(|(i, v)| Sample::new(i as i64 * M, *v)).collect()
    }

    /// Intervals of a normal forecast error with these standard deviations around `points`.
    fn normal(points: &[Sample], sd: &[f64]) -> Vec<PredictionInterval> {
        let z80 = 1.281_551_565_545;
        points
            .iter()
            .zip(sd)
            .map(|(p, s)| PredictionInterval {
                lower_80: p.value - z80 * s,
                upper_80: p.value + z80 * s,
                lower_95: p.value - PredictionInterval::Z95 * s,
                upper_95: p.value + PredictionInterval::Z95 * s,
            })
            .collect()
    }

    #[test]
    fn the_probability_of_breach_at_its_boundaries() {
        let e = entry(2); // range [0, 10]
        let p = |values: &[f64], sd: &[f64]| {
            let f = minutes(values);
            breach_probability(&e, &[], &f, &normal(&f, sd)).unwrap()
        };
        // far inside: near 0; far outside: near 1; on the bound: one half
        assert!(p(&[5.0, 5.0, 5.0], &[0.1, 0.2, 0.3]) < 1e-9);
        assert!(p(&[5.0, 5.0, 30.0], &[0.1, 0.2, 0.3]) > 1.0 - 1e-9);
        assert!(p(&[-20.0, 5.0], &[1.0, 1.0]) > 1.0 - 1e-9);
        assert!((p(&[5.0, 10.0], &[0.1, 1.0]) - 0.5).abs() < 1e-9);
        // one standard deviation below the top at one point: P(z > 1) = 0.1587
        assert!((p(&[9.0], &[1.0]) - 0.158_655).abs() < 1e-5);
        // comonotone: the points share the draw, so two points at the same distance in
        // σ are not two chances; the probability is the worst point's, not more
        assert!((p(&[9.0, 8.0], &[1.0, 2.0]) - 0.158_655).abs() < 1e-4);
        // both sides: P(z > 1) + P(z < −1)
        assert!((p(&[9.0, 1.0], &[1.0, 1.0]) - 2.0 * 0.158_655).abs() < 1e-5);
        // an uncertain point cannot make it less likely than a sure one
        assert!(p(&[9.0, 9.5], &[1.0, 5.0]) >= p(&[9.0], &[1.0]));
        // σ = 0: certain either way; NaN never violates; +Inf always does
        assert_eq!(p(&[5.0, 5.0], &[0.0, 0.0]), 0.0);
        assert_eq!(p(&[5.0, 11.0], &[0.0, 0.0]), 1.0);
        assert!(p(&[f64::NAN, 5.0], &[1.0, 0.1]) < 1e-9);
        assert_eq!(p(&[f64::INFINITY, 5.0], &[1.0, 0.1]), 1.0);
    }

    #[test]
    fn the_probability_of_breach_needs_intervals_and_points_after_the_observed() {
        let e = entry(2);
        let f = minutes(&[20.0, 5.0]);
        let i = normal(&f, &[1.0, 1.0]);
        assert_eq!(breach_probability(&e, &[], &f, &[]), None, "a forecast of schema v1 has none");
        assert_eq!(breach_probability(&e, &[Sample::new(M, 5.0)], &f, &i), None, "nothing after the observed");
        // the first point is already observed: only the second counts
        assert!(breach_probability(&e, &[Sample::new(0, 5.0)], &f, &i).unwrap() < 1e-5);
    }

    #[test]
    fn runs_are_maximal_and_last_end_minus_start() {
        let s = minutes(&[1.0, 11.0, 12.0, 5.0, -1.0, 20.0, 30.0, 1.0]);
        let runs = violation_runs(&entry(1), &s, LB);
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].start, runs[0].end, runs[0].count), (at(M), at(2 * M), 2));
        assert_eq!(runs[0].duration_minutes(), 1.0);
        assert_eq!((runs[1].start, runs[1].end, runs[1].count), (at(4 * M), at(6 * M), 3));
        assert_eq!((runs[1].avg, runs[1].max, runs[1].min), (49.0 / 3.0, 30.0, -1.0));
        // the bounds are allowed
        assert!(violation_runs(&entry(1), &minutes(&[0.0, 10.0]), LB).is_empty());
    }

    #[test]
    fn status_at_the_exact_for_boundary() {
        // for: 2 with one sample a minute: three violating samples fire, two are pending
        let e = entry(2);
        let absent_after = mins(10);
        let pending = minutes(&[1.0, 11.0, 12.0]);
        let st = status(&e, &pending, at(2 * M), LB, absent_after);
        assert_eq!(st.state, SlaState::Pending);
        assert_eq!(
            st.description,
            "Service level agreement violated for 1/2 min (50%), last three values [1,11,12] not in (0, 10)"
        );
        let firing = minutes(&[11.0, 12.0, 13.0]);
        let st = status(&e, &firing, at(2 * M), LB, absent_after);
        assert_eq!(st.state, SlaState::Firing);
        assert_eq!(st.description, "Service level agreement violated for more than 2 min, last three values [11,12,13], allowed range: (0, 10)");
        assert_eq!(st.last_values, vec![11.0, 12.0, 13.0]);
        // a single violating sample lasts 0 minutes
        let st = status(&entry(1), &minutes(&[1.0, 11.0]), at(M), LB, absent_after);
        assert_eq!(st.state, SlaState::Pending);
        assert!(st.description.starts_with("Service level agreement violated for 0/1 min (0%)"), "{}", st.description);
        // back in range
        let st = status(&e, &minutes(&[11.0, 12.0, 13.0, 4.5]), at(3 * M), LB, absent_after);
        assert_eq!(st.state, SlaState::Inactive);
        assert_eq!(st.description, "Actual value [4.5] in (0, 10)");
    }

    #[test]
    fn nan_does_not_violate_and_ends_a_run_infinities_violate() {
        // Prometheus: `x < 30 or x > 75` is false for NaN (the 50, NaN, 80)
        let e = SlaEntry { labels: Labels::default(), range: SlaRange { min: 30.0, max: 75.0 }, for_minutes: 1 };
        let s = minutes(&[80.0, f64::NAN, 80.0]);
        let runs = violation_runs(&e, &s, LB);
        assert_eq!(runs.len(), 2, "the NaN sample ends the first run");
        assert!(runs.iter().all(|r| r.count == 1 && r.avg == 80.0));
        let st = status(&e, &minutes(&[50.0, f64::NAN, 80.0]), at(2 * M), LB, mins(10));
        assert_eq!(st.state, SlaState::Pending, "one violating sample after the NaN");
        assert_eq!(status(&e, &minutes(&[80.0, f64::NAN]), at(M), LB, mins(10)).state, SlaState::Inactive);
        let inf = minutes(&[f64::INFINITY, f64::NEG_INFINITY]);
        assert_eq!(violation_runs(&e, &inf, LB).len(), 1, "both infinities violate, in one run");
        assert_eq!(status(&e, &inf, at(M), LB, mins(10)).state, SlaState::Firing);
    }

    /// One-minute samples at the given minutes, all `value`.
    fn at_minutes(minutes: &[i64], value: f64) -> Vec<Sample> {
        minutes.iter().map(|m| Sample::new(m * M, value)).collect()
    }

    #[test]
    fn a_gap_longer_than_the_lookback_ends_a_run_a_shorter_one_does_not() {
        let e = entry(5);
        // violating at minutes 0-3, nothing for 7 minutes, violating at 11-13 (the issue's
        // case): Prometheus says pending 2/5 and no run lasted 5 minutes
        let s = at_minutes(&[0, 1, 2, 3, 11, 12, 13], 50.0);
        let runs = violation_runs(&e, &s, LB);
        assert_eq!(
            runs.iter().map(|r| (r.start, r.end)).collect::<Vec<_>>(),
            vec![(at(0), at(3 * M)), (at(11 * M), at(13 * M))]
        );
        let st = status(&e, &s, at(13 * M), LB, mins(10));
        assert_eq!(st.state, SlaState::Pending);
        assert!(st.description.starts_with("Service level agreement violated for 2/5 min"), "{}", st.description);
        assert!(violations(&e, &s, at(13 * M), LB).list.is_empty());
        // a gap of exactly the lookback (5 min) does not end it: 0-3 and 8-9 make 9 minutes
        let s = at_minutes(&[0, 1, 2, 3, 8, 9], 50.0);
        assert_eq!(violation_runs(&e, &s, LB).len(), 1);
        assert_eq!(status(&e, &s, at(9 * M), LB, mins(10)).state, SlaState::Firing);
        // the lookback is a setting
        assert_eq!(violation_runs(&e, &s, Duration::from_secs(4 * 60)).len(), 2);
    }

    proptest::proptest! {
        /// Runs are the maximal stretches of violating samples no two of which are more than
        /// the lookback apart, whatever the values (NaN and ±Inf among them) and the gaps.
        #[test]
        fn runs_follow_the_gap_and_nan_rules(
            points in proptest::collection::vec(
                (1i64..12 * 60_000, proptest::prop_oneof![
                    -20.0..30.0f64,
                    proptest::strategy::Just(f64::NAN),
                    proptest::strategy::Just(f64::INFINITY),
                    proptest::strategy::Just(f64::NEG_INFINITY),
                ]),
                0..60,
            )
        ) {
            let mut t = 0;
            let samples: Vec<Sample> = points.iter().map(|(gap, v)| { t += gap; Sample::new(t, *v) }).collect();
            let e = entry(1);
            let runs = violation_runs(&e, &samples, LB);
            let mut covered = vec![false; samples.len()];
            for r in &runs {
                for k in r.first..=r.last {
                    proptest::prop_assert!(e.range.violated_by(samples[k].value), "only violating samples");
                    proptest::prop_assert!(!samples[k].value.is_nan());
                    proptest::prop_assert!(!covered[k], "in one run only");
                    covered[k] = true;
                    if k > r.first {
                        proptest::prop_assert!(samples[k].at().since(samples[k - 1].at()) <= LB, "no gap beyond the lookback inside");
                    }
                }
                // maximal: the samples around it do not continue it
                if r.first > 0 {
                    let prev = &samples[r.first - 1];
                    proptest::prop_assert!(!e.range.violated_by(prev.value) || samples[r.first].at().since(prev.at()) > LB);
                }
                if let Some(next) = samples.get(r.last + 1) {
                    proptest::prop_assert!(!e.range.violated_by(next.value) || next.at().since(samples[r.last].at()) > LB);
                }
            }
            for (k, s) in samples.iter().enumerate() {
                proptest::prop_assert_eq!(covered[k], e.range.violated_by(s.value), "every violating sample is in a run");
            }
        }
    }

    #[test]
    fn without_a_sample_in_the_lookback_the_rule_has_no_value() {
        let e = entry(1);
        let s = at_minutes(&[0, 1, 2, 3], 50.0);
        assert_eq!(status(&e, &s, at(8 * M), LB, mins(10)).state, SlaState::Firing, "5 minutes: still a value");
        let st = status(&e, &s, at(8 * M + 1), LB, mins(10));
        assert_eq!(st.state, SlaState::Inactive, "Prometheus resolves the alert");
        assert!(st.description.starts_with("No sample in the last 5 min"), "{}", st.description);
        assert_eq!(status(&e, &s, at(13 * M + 1), LB, mins(10)).state, SlaState::Absent);
    }

    #[test]
    fn a_series_new_to_the_set_is_absent_only_absent_after_it_entered_without_samples() {
        let e = entry(2);
        let entered = at(M);
        let st = status_in_set(&e, &[], entered, at(M + 10 * M), LB, mins(10));
        assert_eq!(st.state, SlaState::Inactive, "{}", st.description);
        assert!(
            st.description.starts_with("No samples observed yet for this series (in the SLA set since "),
            "{}",
            st.description
        );
        assert!(st.description.ends_with("; absent if none by 10 min after)"), "{}", st.description);
        assert!(st.last_values.is_empty() && st.active_at.is_none());
        let st = status_in_set(&e, &[], entered, at(M + 10 * M + 1), LB, mins(10));
        assert_eq!(st.state, SlaState::Absent, "{}", st.description);
        assert_eq!(st.description, "No samples observed for this series");
        // entered in the future of the clock that reads it (another host's): not yet absent
        assert_eq!(status_in_set(&e, &[], at(5 * M), at(M), LB, mins(1)).state, SlaState::Inactive);
        // with samples, whenever it entered: the rule as it is
        let s = minutes(&[1.0, 2.0]);
        for now in [at(M + 5 * M), at(M + 5 * M + 1), at(30 * M)] {
            assert_eq!(status_in_set(&e, &s, now, now, LB, mins(5)), status(&e, &s, now, LB, mins(5)));
        }
    }

    #[test]
    fn status_is_absent_without_fresh_samples() {
        let e = entry(2);
        assert_eq!(status(&e, &[], at(0), LB, mins(1)).state, SlaState::Absent);
        let s = minutes(&[1.0, 2.0]);
        assert_eq!(status(&e, &s, at(M + 5 * M), LB, mins(5)).state, SlaState::Inactive);
        assert_eq!(status(&e, &s, at(M + 5 * M + 1), LB, mins(5)).state, SlaState::Absent);
    }

    #[test]
    fn violations_count_runs_that_reach_for_and_clip_time_to_the_window() {
        let e = entry(5);
        let mut values = vec![1.0; 13 * 60];
        // a run of 10 samples (9 min) ending 2 h before the end: counts
        for v in &mut values[13 * 60 - 130..13 * 60 - 120] {
            *v = 50.0;
        }
        // a run of 3 samples (2 min) 5 h before the end: too short
        for v in &mut values[13 * 60 - 300..13 * 60 - 297] {
            *v = 50.0;
        }
        // a run of 71 samples (70 min) at the end: counts, 1 h of it inside the last hour
        for v in &mut values[13 * 60 - 71..] {
            *v = -5.0;
        }
        let s = minutes(&values);
        let now = s.last().unwrap().at();
        let r = violations(&e, &s, now, LB);
        let w: Vec<_> = r.windows.iter().map(|(w, v)| (w.label(), v.n, v.time)).collect();
        assert_eq!(w, vec![("1h", 1, 60.0), ("3h", 2, 79.0), ("12h", 2, 79.0)]);
        // no violation is 0 minutes, not -0 (an empty float sum is -0.0 in Rust)
        let none = violations(&e, &minutes(&[1.0, 2.0]), now, LB);
        assert!(none.windows.iter().all(|(_, v)| v.n == 0 && v.time.to_bits() == 0f64.to_bits()));
        assert_eq!(r.list.len(), 2);
        assert_eq!(r.list[0].duration_minutes(), 9.0);
        assert_eq!(r.list[1].duration_minutes(), 70.0);
        assert_eq!((r.list[1].min, r.list[1].max), (-5.0, -5.0));
    }

    #[test]
    fn future_violation_descriptions_at_their_boundaries() {
        let e = entry(3);
        let obs = |v: &[f64]| minutes(v);
        let fc = |start: usize, v: &[f64]| -> Vec<Sample> {
            v.iter().enumerate().map(|(i, x)| Sample::new((start + i) as i64 * M, *x)).collect()
        };
        let kinds = |o: &[Sample], f: &[Sample]| {
            future_violations(&e, o, f, LB).into_iter().map(|v| v.kind).collect::<Vec<_>>()
        };

        // firing for exactly `for` (3 min observed) and continuing
        let o = obs(&[1.0, 20.0, 20.0, 20.0, 20.0]);
        assert_eq!(kinds(&o, &fc(5, &[20.0])), vec![FutureKind::ContinuingFiring]);
        // observed for 2 min (pending), one more forecast minute reaches for=3
        let o = obs(&[1.0, 1.0, 20.0, 20.0, 20.0]);
        assert_eq!(kinds(&o, &fc(5, &[20.0])), vec![FutureKind::PendingWillFire]);
        // pending and the forecast goes back in range after 0 more minutes: no future run
        assert!(kinds(&o, &fc(5, &[1.0])).is_empty());
        // pending, forecast adds less than needed
        let o = obs(&[1.0, 1.0, 1.0, 20.0, 20.0]);
        assert_eq!(kinds(&o, &fc(5, &[1.0, 20.0])), vec![FutureKind::WillBePending]);
        // starts in the future and lasts exactly for
        let o = obs(&[1.0, 1.0]);
        assert_eq!(kinds(&o, &fc(2, &[20.0, 20.0, 20.0, 20.0, 1.0])), vec![FutureKind::WillFire]);
        // starts in the future, one minute short
        assert_eq!(kinds(&o, &fc(2, &[20.0, 20.0, 20.0, 1.0])), vec![FutureKind::WillBePending]);
        // forecast points at or before the last observed sample are ignored
        assert!(kinds(&o, &fc(1, &[20.0])).is_empty());
    }
}
