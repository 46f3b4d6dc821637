//! The projection: one pure function from an event to the documents it updates. The
//! projector, `replay` and the embedded default all call it, so they cannot disagree.

use crate::events::{Event, EventEnvelope};
use crate::ports::Position;
use crate::views::{
    DocKey, Document, MetricView, SlaSamplesView, SlaSetVersion, SlaSetVersionView, SlaSetView, ValuesView,
};
use crate::Sample;

/// The documents an event updates.
pub fn targets(event: &Event) -> Vec<DocKey> {
    match event {
        Event::MetricAggregatesComputed(e) => vec![DocKey::Metric(e.labels.id())],
        // the SLA samples view keeps the forecast to score it once its horizon has passed
        Event::MetricForecastComputed(e) => vec![DocKey::Metric(e.labels.id()), DocKey::SlaSamples(e.labels.id())],
        Event::MetricMetadataComputed(e) => vec![DocKey::Metric(e.labels.id())],
        Event::SlaSamplesObserved(e) => vec![DocKey::SlaSamples(e.labels.id())],
        Event::MetricRemoved(e) => vec![DocKey::Metric(e.labels.id()), DocKey::SlaSamples(e.labels.id())],
        Event::SlaSetDefined(e) => vec![DocKey::SlaSet, DocKey::SlaSetVersion(e.version)],
    }
}

/// What applying an event to a document did.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The document as it is now.
    Applied(Document),
    /// The event was at or before the document's last applied position: nothing changed.
    Skipped,
    /// The event does not create this document (e.g. removal of an unknown series).
    Nothing,
}

/// Applies one event, read at `position`, to the document `key` (currently `doc`): skips
/// a redelivered event (at or before the document's last applied position in the same
/// partition), then folds the event into the view the key names. A document of another
/// view under `key` counts as absent.
pub fn apply(key: &DocKey, doc: Option<Document>, envelope: &EventEnvelope, position: Position) -> Outcome {
    if let Some(d) = &doc {
        let last = d.applied();
        // a redelivery; unless the event holds facts the document lacks, which only an
        // event of a recreated log (its offsets starting again) can
        if last.partition == position.partition && position.offset <= last.offset && !holds_newer_facts(d, envelope) {
            return Outcome::Skipped;
        }
    }
    let folded = match key {
        DocKey::Metric(_) => {
            let doc = match doc {
                Some(Document::Metric(m)) => Some(m),
                _ => None,
            };
            fold_metric(doc, envelope, position).map(Document::Metric)
        }
        DocKey::SlaSamples(_) => {
            let doc = match doc {
                Some(Document::SlaSamples(s)) => Some(s),
                _ => None,
            };
            fold_sla_samples(doc, envelope, position).map(Document::SlaSamples)
        }
        DocKey::SlaSet => {
            let doc = match doc {
                Some(Document::SlaSet(s)) => Some(s),
                _ => None,
            };
            fold_sla_set(doc, envelope, position).map(Document::SlaSet)
        }
        DocKey::SlaSetVersion(_) => match &envelope.event {
            Event::SlaSetDefined(e) => Some(Document::SlaSetVersion(SlaSetVersionView {
                set: SlaSetVersion {
                    version: e.version,
                    defined_at_ms: envelope.occurred_at_ms,
                    entries: e.entries.clone(),
                },
                applied: position,
            })),
            _ => None,
        },
    };
    folded.map_or(Outcome::Nothing, Outcome::Applied)
}

/// Whether `envelope` holds facts `doc` does not have: a later computation, later
/// samples, a later SLA set version, a removal after the last statistics. An event
/// already applied never does (the document holds what it brought), so this tells an
/// event of a recreated topic or a deleted-and-recreated embedded log (whose offsets
/// start again) from a redelivery.
fn holds_newer_facts(doc: &Document, envelope: &EventEnvelope) -> bool {
    let last_sample = |s: &SlaSamplesView| s.samples.last().map(|x| x.ts_ms);
    match (doc, &envelope.event) {
        (Document::Metric(m), Event::MetricAggregatesComputed(e)) => {
            m.values.as_ref().is_none_or(|v| e.computed_at_ms > v.computed_at_ms)
        }
        (Document::Metric(m), Event::MetricForecastComputed(e)) => {
            m.prediction.as_ref().is_none_or(|p| e.computed_at_ms > p.computed_at_ms)
        }
        (Document::Metric(m), Event::MetricMetadataComputed(e)) => {
            m.metadata.as_ref().is_none_or(|x| e.computed_at_ms > x.computed_at_ms)
        }
        (Document::Metric(m), Event::MetricRemoved(e)) => {
            !m.removed && m.values.as_ref().is_none_or(|v| e.last_seen_ms >= v.computed_at_ms)
        }
        (Document::SlaSamples(s), Event::SlaSamplesObserved(e)) => e.samples.last().map(|x| x.ts_ms) > last_sample(s),
        (Document::SlaSamples(s), Event::MetricForecastComputed(e)) => {
            s.scoring.latest_forecast_ms().is_none_or(|t| e.computed_at_ms > t)
        }
        (Document::SlaSamples(s), Event::MetricRemoved(e)) => last_sample(s).is_some_and(|last| e.last_seen_ms >= last),
        (Document::SlaSet(s), Event::SlaSetDefined(e)) => e.version > s.current.version,
        _ => false,
    }
}

/// The metric view after `envelope`: `None` when the event does not change it. Every
/// event type is named, so a new one does not compile until this view decides. A
/// computation older than the one the view holds never replaces it (a replay of another
/// partition's order, or an old log read after a new one, cannot roll the view back).
fn fold_metric(doc: Option<MetricView>, envelope: &EventEnvelope, position: Position) -> Option<MetricView> {
    let fresh = |labels: &crate::labels::Labels| MetricView {
        id: labels.id(),
        labels: labels.clone(),
        removed: false,
        values: None,
        prediction: None,
        metadata: None,
        applied: position,
    };
    let mut m = match &envelope.event {
        Event::MetricAggregatesComputed(e) => {
            if doc.as_ref().and_then(|m| m.values.as_ref()).is_some_and(|v| v.computed_at_ms > e.computed_at_ms) {
                return None;
            }
            let mut m = doc.unwrap_or_else(|| fresh(&e.labels));
            m.values = Some(ValuesView { computed_at_ms: e.computed_at_ms, windows: e.windows.clone() });
            m.removed = false;
            m
        }
        Event::MetricForecastComputed(e) => {
            if doc.as_ref().and_then(|m| m.prediction.as_ref()).is_some_and(|p| p.computed_at_ms > e.computed_at_ms) {
                return None;
            }
            let mut m = doc.unwrap_or_else(|| fresh(&e.labels));
            m.prediction = Some(e.clone());
            m.removed = false;
            m
        }
        Event::MetricMetadataComputed(e) => {
            if doc.as_ref().and_then(|m| m.metadata.as_ref()).is_some_and(|x| x.computed_at_ms > e.computed_at_ms) {
                return None;
            }
            let mut m = doc.unwrap_or_else(|| fresh(&e.labels));
            m.metadata = Some(e.clone());
            m.removed = false;
            m
        }
        // removing an unknown series creates nothing
        Event::MetricRemoved(_) => {
            let mut m = doc?;
            m.removed = true;
            m
        }
        Event::SlaSamplesObserved(_) | Event::SlaSetDefined(_) => return None,
    };
    m.applied = position;
    Some(m)
}

/// The SLA samples view after `envelope`: `None` when the event does not change it.
fn fold_sla_samples(
    doc: Option<SlaSamplesView>,
    envelope: &EventEnvelope,
    position: Position,
) -> Option<SlaSamplesView> {
    match &envelope.event {
        Event::SlaSamplesObserved(e) => {
            let (samples, mut scoring) = doc.map(|d| (d.samples, d.scoring)).unwrap_or_default();
            let samples = merge_samples(samples, &e.samples, e.window_start_ms);
            scoring.score(&samples);
            Some(SlaSamplesView { id: e.labels.id(), labels: e.labels.clone(), samples, scoring, applied: position })
        }
        // kept for the scorecard; a series with no samples yet (not an SLA metric) gets no document
        Event::MetricForecastComputed(e) => {
            let mut s = doc?;
            s.scoring.add_forecast(e);
            s.applied = position;
            Some(s)
        }
        Event::MetricRemoved(_) => {
            let mut s = doc?;
            s.samples.clear();
            s.applied = position;
            Some(s)
        }
        Event::MetricAggregatesComputed(_) | Event::MetricMetadataComputed(_) | Event::SlaSetDefined(_) => None,
    }
}

/// The SLA set view after `envelope`: the defined set becomes current, unless the view
/// already shows that version or a later one (a log recreated or replayed from another
/// incarnation cannot roll the set back); `None` for every other event. A first-release
/// document's history is kept as it is; new versions are documents of their own.
fn fold_sla_set(doc: Option<SlaSetView>, envelope: &EventEnvelope, position: Position) -> Option<SlaSetView> {
    match &envelope.event {
        Event::SlaSetDefined(e) => {
            if doc.as_ref().is_some_and(|d| d.current.version >= e.version) {
                return None;
            }
            let version = SlaSetVersion {
                version: e.version,
                defined_at_ms: envelope.occurred_at_ms,
                entries: e.entries.clone(),
            };
            // an SLA of a series the set already held keeps the time it entered; a series
            // new to the set enters now
            let entered_at_ms = version
                .entries
                .iter()
                .map(|entry| {
                    doc.as_ref()
                        .and_then(|d| {
                            let i = d.current.entries.iter().position(|held| held.id() == entry.id())?;
                            Some(d.entered_at(i).millis())
                        })
                        .unwrap_or(envelope.occurred_at_ms)
                })
                .collect();
            let history = doc.map(|d| d.history).unwrap_or_default();
            Some(SlaSetView { current: version, history, applied: position, entered_at_ms })
        }
        Event::MetricAggregatesComputed(_)
        | Event::MetricForecastComputed(_)
        | Event::MetricMetadataComputed(_)
        | Event::SlaSamplesObserved(_)
        | Event::MetricRemoved(_) => None,
    }
}

/// Merges new samples into a sorted list by timestamp (a new value replaces one at the
/// same timestamp) and drops samples before `window_start_ms`.
pub fn merge_samples(mut current: Vec<Sample>, new: &[Sample], window_start_ms: i64) -> Vec<Sample> {
    current.extend_from_slice(new);
    // stable sort keeps the newest write last among equal timestamps
    current.sort_by_key(|s| s.ts_ms);
    let mut out: Vec<Sample> = Vec::with_capacity(current.len());
    for s in current {
        if s.ts_ms < window_start_ms {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.ts_ms == s.ts_ms => *last = s,
            _ => out.push(s),
        }
    }
    out
}

/// Applies a sequence of `(event, position)` to an in-memory set of documents: the
/// reference behaviour every store-backed projector must match.
pub fn project_all<'a>(
    docs: &mut std::collections::BTreeMap<DocKey, Document>,
    events: impl IntoIterator<Item = (&'a EventEnvelope, Position)>,
) {
    for (envelope, position) in events {
        for key in targets(&envelope.event) {
            let current = docs.get(&key).cloned();
            if let Outcome::Applied(doc) = apply(&key, current, envelope, position) {
                docs.insert(key, doc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::*;
    use crate::labels::Labels;
    use crate::sla::{SlaEntry, SlaRange};
    use std::collections::BTreeMap;

    fn labels(name: &str) -> Labels {
        [("__name__", name), ("instance", "a")].into_iter().collect()
    }

    fn env(event: Event, at: i64) -> EventEnvelope {
        EventEnvelope { event_id: uuid::Uuid::nil(), occurred_at_ms: at, producer: "test".into(), event }
    }

    fn aggregates(name: &str, at: i64, avg: f64) -> Event {
        Event::MetricAggregatesComputed(MetricAggregatesComputed {
            labels: labels(name),
            computed_at_ms: at,
            windows: vec![WindowAggregate {
                window: Window::H1,
                min: Some(avg),
                max: Some(avg),
                avg: Some(avg),
                std_dev: None,
                samples: 1,
            }],
        })
    }

    fn samples(name: &str, start: i64, s: &[(i64, f64)]) -> Event {
        Event::SlaSamplesObserved(SlaSamplesObserved {
            labels: labels(name),
            window_start_ms: start,
            samples: s.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
        })
    }

    fn forecast(name: &str, at: i64, values: &[f64]) -> Event {
        Event::MetricForecastComputed(MetricForecastComputed {
            labels: labels(name),
            computed_at_ms: at,
            model: "holt_linear".into(),
            rmse: 0.5,
            candidates: vec![],
            points: values.iter().enumerate().map(|(k, v)| Sample::new(at + (k as i64 + 1) * 60_000, *v)).collect(),
            intervals: vec![],
            min: 0.0,
            max: 0.0,
            avg: 0.0,
        })
    }

    #[test]
    fn forecasts_are_scored_by_the_samples_that_arrive_after_their_horizon() {
        let m = 60_000;
        let docs = run(&[
            // no samples yet: the forecast makes no samples document
            (forecast("b", 0, &[1.0]), 0),
            (samples("a", 0, &[(0, 1.0)]), 1),
            (forecast("a", 0, &[2.0, 4.0]), 2),
            // its horizon is minute 2: the samples to minute 1 do not score it
            (samples("a", 0, &[(m, 2.0)]), 3),
            (samples("a", 0, &[(2 * m, 2.0)]), 4),
            (forecast("a", 2 * m, &[2.0, 2.0]), 5),
        ]);
        assert!(!docs.contains_key(&DocKey::SlaSamples(labels("b").id())));
        let Document::SlaSamples(s) = &docs[&DocKey::SlaSamples(labels("a").id())] else { panic!() };
        assert_eq!((s.scoring.recent.len(), s.scoring.pending.len()), (1, 1));
        let model = &s.scoring.models[0];
        // errors 0 and −2: RMSE √2
        assert_eq!((model.forecasts, model.points), (1, 2));
        assert!((model.rmse().unwrap() - 2f64.sqrt()).abs() < 1e-12);
        // the metric view still holds the latest forecast
        assert_eq!(metric(&docs, "a").prediction.as_ref().map(|p| p.computed_at_ms), Some(2 * m));
    }

    fn sla_set(version: u64) -> Event {
        Event::SlaSetDefined(SlaSetDefined {
            version,
            entries: vec![SlaEntry { labels: labels("a"), range: SlaRange { min: 0.0, max: 1.0 }, for_minutes: 2 }],
        })
    }

    fn run(events: &[(Event, i64)]) -> BTreeMap<DocKey, Document> {
        let envs: Vec<_> =
            events.iter().enumerate().map(|(i, (e, at))| (env(e.clone(), *at), Position::new(0, i as i64))).collect();
        let mut docs = BTreeMap::new();
        project_all(&mut docs, envs.iter().map(|(e, p)| (e, *p)));
        docs
    }

    fn metric<'a>(docs: &'a BTreeMap<DocKey, Document>, name: &str) -> &'a MetricView {
        match &docs[&DocKey::Metric(labels(name).id())] {
            Document::Metric(m) => m,
            other => panic!("not a metric: {other:?}"),
        }
    }

    #[test]
    fn aggregates_upsert_the_metric_and_the_latest_wins() {
        let docs =
            run(&[(aggregates("a", 10, 1.0), 10), (aggregates("b", 10, 5.0), 10), (aggregates("a", 20, 2.0), 20)]);
        assert_eq!(docs.len(), 2);
        let a = metric(&docs, "a");
        let v = a.values.as_ref().unwrap();
        assert_eq!(v.computed_at_ms, 20);
        assert_eq!(v.windows[0].avg, Some(2.0));
        assert_eq!(a.applied, Position::new(0, 2));
    }

    #[test]
    fn a_redelivered_event_changes_nothing() {
        let e1 = env(aggregates("a", 10, 1.0), 10);
        let e2 = env(aggregates("a", 20, 2.0), 20);
        let mut docs = BTreeMap::new();
        project_all(&mut docs, [(&e1, Position::new(0, 0)), (&e2, Position::new(0, 1))]);
        let before = docs.clone();
        // the consumer crashed before committing and reads both again
        project_all(&mut docs, [(&e1, Position::new(0, 0)), (&e2, Position::new(0, 1))]);
        assert_eq!(docs, before);
    }

    #[test]
    fn samples_merge_by_timestamp_and_trim_to_the_window() {
        let docs = run(&[
            (samples("a", 0, &[(1000, 1.0), (2000, 2.0)]), 0),
            (samples("a", 0, &[(2000, 2.5), (3000, 3.0)]), 0),
            (samples("a", 1500, &[(4000, 4.0)]), 0),
        ]);
        let Document::SlaSamples(s) = &docs[&DocKey::SlaSamples(labels("a").id())] else { panic!() };
        assert_eq!(s.samples, vec![Sample::new(2000, 2.5), Sample::new(3000, 3.0), Sample::new(4000, 4.0)]);
    }

    #[test]
    fn sla_sets_keep_their_history_a_document_per_version() {
        let docs = run(&[(sla_set(1), 100), (sla_set(2), 200)]);
        let Document::SlaSet(s) = &docs[&DocKey::SlaSet] else { panic!() };
        assert_eq!(s.current.version, 2);
        assert_eq!(s.current.defined_at_ms, 200);
        assert!(s.history.is_empty(), "the current document does not grow with the history");
        for (v, at) in [(1, 100), (2, 200)] {
            let Document::SlaSetVersion(d) = &docs[&DocKey::SlaSetVersion(v)] else { panic!() };
            assert_eq!((d.set.version, d.set.defined_at_ms), (v, at));
        }
    }

    #[test]
    fn an_sla_keeps_the_time_its_series_entered_the_set_until_it_leaves() {
        let set = |version: u64, series: &[&str]| {
            Event::SlaSetDefined(SlaSetDefined {
                version,
                entries: series
                    .iter()
                    .map(|n| SlaEntry {
                        labels: labels(n),
                        range: SlaRange { min: 0.0, max: version as f64 },
                        for_minutes: 2,
                    })
                    .collect(),
            })
        };
        let entered = |events: &[(Event, i64)]| {
            let docs = run(events);
            let Document::SlaSet(s) = &docs[&DocKey::SlaSet] else { panic!() };
            (0..s.current.entries.len()).map(|i| s.entered_at(i).millis()).collect::<Vec<_>>()
        };
        let v1 = (set(1, &["a", "b"]), 100);
        // b's range changes: it stays; c is new; a leaves
        let v2 = (set(2, &["c", "b"]), 200);
        // a comes back: it enters again
        let v3 = (set(3, &["b", "a", "c"]), 300);
        assert_eq!(entered(std::slice::from_ref(&v1)), vec![100, 100]);
        assert_eq!(entered(&[v1.clone(), v2.clone()]), vec![200, 100]);
        assert_eq!(entered(&[v1, v2, v3]), vec![100, 300, 200]);
        // a document written before the times were kept: the version's own time
        let view = SlaSetView {
            current: SlaSetVersion { version: 1, defined_at_ms: 7, entries: vec![] },
            history: vec![],
            applied: Position::new(0, 0),
            entered_at_ms: vec![],
        };
        assert_eq!(view.entered_at(0).millis(), 7);
    }

    /// `events` applied in order at the given positions (partition 0).
    fn run_at(events: &[(Event, i64, i64)]) -> BTreeMap<DocKey, Document> {
        let envs: Vec<_> =
            events.iter().map(|(e, at, offset)| (env(e.clone(), *at), Position::new(0, *offset))).collect();
        let mut docs = BTreeMap::new();
        project_all(&mut docs, envs.iter().map(|(e, p)| (e, *p)));
        docs
    }

    #[test]
    fn a_recreated_log_is_projected_although_its_offsets_start_again() {
        // offsets 0..=2 of the first log, then the topic is recreated: offsets 0 and 1 again
        let docs = run_at(&[
            (aggregates("a", 10, 1.0), 10, 0),
            (samples("a", 0, &[(1000, 1.0)]), 10, 1),
            (sla_set(1), 10, 2),
            (aggregates("a", 20, 2.0), 20, 0),
            (samples("a", 0, &[(2000, 2.0)]), 20, 1),
            (sla_set(2), 20, 1),
        ]);
        assert_eq!(metric(&docs, "a").values.as_ref().unwrap().computed_at_ms, 20);
        let Document::SlaSamples(s) = &docs[&DocKey::SlaSamples(labels("a").id())] else { panic!() };
        assert_eq!(s.samples.last().unwrap().ts_ms, 2000);
        let Document::SlaSet(set) = &docs[&DocKey::SlaSet] else { panic!() };
        assert_eq!(set.current.version, 2);
        // while a plain redelivery is still skipped
        let docs = run_at(&[
            (aggregates("a", 10, 1.0), 10, 0),
            (aggregates("a", 20, 2.0), 20, 1),
            (aggregates("a", 10, 1.0), 10, 0),
        ]);
        assert_eq!(metric(&docs, "a").values.as_ref().unwrap().computed_at_ms, 20);
    }

    #[test]
    fn an_older_computation_never_rolls_a_metric_back() {
        // a higher offset with an older computation (another partition's order replayed)
        let docs = run_at(&[(aggregates("a", 20, 2.0), 20, 0), (aggregates("a", 10, 1.0), 10, 5)]);
        let m = metric(&docs, "a");
        assert_eq!(m.values.as_ref().unwrap().computed_at_ms, 20);
    }

    #[test]
    fn an_older_sla_set_version_never_replaces_a_newer_one() {
        // a recreated topic (new positions) replaying version 1 after version 2
        let docs = run(&[(sla_set(2), 200), (sla_set(1), 300)]);
        let Document::SlaSet(s) = &docs[&DocKey::SlaSet] else { panic!() };
        assert_eq!(s.current.version, 2);
    }

    #[test]
    fn removal_hides_the_metric_until_it_comes_back() {
        let removed = Event::MetricRemoved(MetricRemoved { labels: labels("a"), last_seen_ms: 5 });
        let docs = run(&[(aggregates("a", 1, 1.0), 1), (samples("a", 0, &[(1, 1.0)]), 1), (removed.clone(), 9)]);
        assert!(metric(&docs, "a").removed);
        let docs = run(&[(aggregates("a", 1, 1.0), 1), (removed.clone(), 9), (aggregates("a", 20, 1.0), 20)]);
        assert!(!metric(&docs, "a").removed);
        // removing an unknown series creates nothing
        assert!(run(&[(removed, 9)]).is_empty());
    }
}
