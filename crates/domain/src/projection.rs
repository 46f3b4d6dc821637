//! The projection: one pure function from an event to the documents it updates. The
//! projector, `replay` and the embedded default all call it, so they cannot disagree.

use crate::events::{Event, EventEnvelope};
use crate::labels::MetricId;
use crate::ports::Position;
use crate::views::{
    Collection, DocKey, Document, MetricView, SlaSamplesView, SlaSetVersion, SlaSetView, ValuesView, SLA_SET_DOC_ID,
};
use crate::Sample;

/// The documents an event updates.
pub fn targets(event: &Event) -> Vec<DocKey> {
    let metric = |id: MetricId| DocKey { collection: Collection::Metrics, id: id.to_string() };
    let samples = |id: MetricId| DocKey { collection: Collection::SlaSamples, id: id.to_string() };
    match event {
        Event::MetricAggregatesComputed(e) => vec![metric(e.labels.id())],
        Event::MetricForecastComputed(e) => vec![metric(e.labels.id())],
        Event::MetricMetadataComputed(e) => vec![metric(e.labels.id())],
        Event::SlaSamplesObserved(e) => vec![samples(e.labels.id())],
        Event::MetricRemoved(e) => vec![metric(e.labels.id()), samples(e.labels.id())],
        Event::SlaSetDefined(_) => vec![DocKey { collection: Collection::SlaSets, id: SLA_SET_DOC_ID.to_owned() }],
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

/// Applies one event, read at `position`, to the document `key` (currently `doc`).
pub fn apply(key: &DocKey, doc: Option<Document>, envelope: &EventEnvelope, position: Position) -> Outcome {
    if let Some(d) = &doc {
        let last = d.applied();
        if last.partition == position.partition && position.offset <= last.offset {
            return Outcome::Skipped;
        }
    }
    match (&envelope.event, key.collection) {
        (Event::SlaSetDefined(e), Collection::SlaSets) => {
            let version = SlaSetVersion {
                version: e.version,
                defined_at_ms: envelope.occurred_at_ms,
                entries: e.entries.clone(),
            };
            let mut history = match doc {
                Some(Document::SlaSet(s)) => s.history,
                _ => Vec::new(),
            };
            history.push(version.clone());
            Outcome::Applied(Document::SlaSet(SlaSetView { current: version, history, applied: position }))
        }
        (Event::SlaSamplesObserved(e), Collection::SlaSamples) => {
            let mut samples = match doc {
                Some(Document::SlaSamples(s)) => s.samples,
                _ => Vec::new(),
            };
            samples = merge_samples(samples, &e.samples, e.window_start_ms);
            Outcome::Applied(Document::SlaSamples(SlaSamplesView {
                id: e.labels.id(),
                labels: e.labels.clone(),
                samples,
                applied: position,
            }))
        }
        (Event::MetricRemoved(_), Collection::SlaSamples) => match doc {
            Some(Document::SlaSamples(mut s)) => {
                s.samples.clear();
                s.applied = position;
                Outcome::Applied(Document::SlaSamples(s))
            }
            _ => Outcome::Nothing,
        },
        (Event::MetricRemoved(_), Collection::Metrics) => match doc {
            Some(Document::Metric(mut m)) => {
                m.removed = true;
                m.applied = position;
                Outcome::Applied(Document::Metric(m))
            }
            _ => Outcome::Nothing,
        },
        (event, Collection::Metrics) => {
            let Some(labels) = event.labels() else {
                return Outcome::Nothing;
            };
            let mut m = match doc {
                Some(Document::Metric(m)) => m,
                _ => MetricView {
                    id: labels.id(),
                    labels: labels.clone(),
                    removed: false,
                    values: None,
                    prediction: None,
                    metadata: None,
                    applied: position,
                },
            };
            m.removed = false;
            m.applied = position;
            match event {
                Event::MetricAggregatesComputed(e) => {
                    m.values = Some(ValuesView { computed_at_ms: e.computed_at_ms, windows: e.windows.clone() })
                }
                Event::MetricForecastComputed(e) => m.prediction = Some(e.clone()),
                Event::MetricMetadataComputed(e) => m.metadata = Some(e.clone()),
                _ => return Outcome::Nothing,
            }
            Outcome::Applied(Document::Metric(m))
        }
        _ => Outcome::Nothing,
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
        match &docs[&DocKey { collection: Collection::Metrics, id: labels(name).id().to_string() }] {
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
        let Document::SlaSamples(s) =
            &docs[&DocKey { collection: Collection::SlaSamples, id: labels("a").id().to_string() }]
        else {
            panic!()
        };
        assert_eq!(s.samples, vec![Sample::new(2000, 2.5), Sample::new(3000, 3.0), Sample::new(4000, 4.0)]);
    }

    #[test]
    fn sla_sets_keep_their_history() {
        let docs = run(&[(sla_set(1), 100), (sla_set(2), 200)]);
        let Document::SlaSet(s) = &docs[&DocKey { collection: Collection::SlaSets, id: SLA_SET_DOC_ID.into() }] else {
            panic!()
        };
        assert_eq!(s.current.version, 2);
        assert_eq!(s.current.defined_at_ms, 200);
        assert_eq!(s.history.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2]);
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
