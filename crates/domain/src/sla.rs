//! SLA entries and the validation of a PUT body (SPEC §6).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::labels::{Labels, MetricId};

/// The allowed range of an SLA metric, bounds included.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlaRange {
    /// Lower bound, inclusive, in the series' units.
    pub min: f64,
    /// Upper bound, inclusive, in the series' units.
    pub max: f64,
}

impl SlaRange {
    /// Whether a sample violates: it lies outside `[min, max]`, as Prometheus evaluates
    /// `value < min or value > max`. NaN compares false both ways, so a NaN sample does
    /// not violate (and ends a violating run); +Inf and -Inf violate.
    pub fn violated_by(&self, value: f64) -> bool {
        value < self.min || value > self.max
    }
}

/// One SLA: a series, its allowed range and how long a violation may last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaEntry {
    /// The series: its full label set, `__name__` included.
    pub labels: Labels,
    /// The allowed range of its samples.
    pub range: SlaRange,
    /// The rule's `for`, in whole minutes: how long a violation run must last to fire
    /// (1 to [`MAX_FOR_MINUTES`] once validated).
    pub for_minutes: u32,
}

impl SlaEntry {
    /// The metric id of the entry's series.
    pub fn id(&self) -> MetricId {
        self.labels.id()
    }
}

/// The longest `for` accepted, in minutes (one day).
pub const MAX_FOR_MINUTES: u64 = 24 * 60;

/// A rejected PUT body: every problem found, one line each, in the seed's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines.join("\n"))]
pub struct SlaSetRejected {
    /// One line per problem, in the order found: the set's size first, then entry by entry.
    pub lines: Vec<String>,
}

impl SlaSetRejected {
    fn one(line: impl Into<String>) -> Self {
        Self { lines: vec![line.into()] }
    }
}

/// Validates a PUT `/slaset` body and collects **all** problems. `expected_size` is the
/// required number of entries; `exists` tells whether a series is known to the metrics
/// read model.
///
/// Returns the entries in the order of the body.
///
/// # Errors
/// [`SlaSetRejected`] with every problem found when the body is not JSON or not an array (a single
/// line), has not `expected_size` entries, or any entry is invalid: not an object, a missing or bad
/// `name`, an unknown key, an unknown or duplicate series, a missing, non-numeric or inverted range,
/// a missing `for` or one that is not a whole number of minutes in 1..=[`MAX_FOR_MINUTES`].
pub fn validate_sla_set(
    body: &[u8],
    expected_size: usize,
    exists: impl Fn(&Labels) -> bool,
) -> Result<Vec<SlaEntry>, SlaSetRejected> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| SlaSetRejected::one(format!("Malformed JSON body: {e}")))?;
    let Value::Array(items) = value else {
        return Err(SlaSetRejected::one(format!(
            "SLA set must be a JSON array of SLA entries, got {}",
            json_kind(&value)
        )));
    };
    let mut lines = Vec::new();
    // a key given twice: serde keeps the last silently, while a reader sees the first
    for (path, key) in duplicate_keys(body) {
        lines.push(format!("- Duplicate key `{key}` in {};", describe(&path)));
    }
    if items.len() != expected_size {
        lines.push(format!("SLA set must consist of {expected_size} metrics. {} provided", items.len()));
    }
    let mut entries = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            lines.push(format!("- Entry {index} is not an object (got {});", json_kind(item)));
            continue;
        };
        let labels = match obj.get("name") {
            None | Some(Value::Null) => {
                lines.push(format!("- Metric name (name key) not provided for entry {index};"));
                None
            }
            Some(Value::Object(map)) => {
                let mut parsed = BTreeMap::new();
                let mut ok = true;
                for (k, v) in map {
                    match v {
                        Value::String(s) => {
                            parsed.insert(k.clone(), s.clone());
                        }
                        _ => ok = false,
                    }
                }
                // an empty value is no label (Prometheus drops empty labels)
                let parsed = Labels::new(parsed);
                if !ok || parsed.is_empty() {
                    lines.push(format!(
                        "- Invalid metric name provided for entry {index}: expected a non-empty object of string labels;"
                    ));
                    None
                } else {
                    Some(parsed)
                }
            }
            Some(other) => {
                lines.push(format!(
                    "- Invalid metric name provided for entry {index}: expected an object of labels, got {};",
                    json_kind(other)
                ));
                None
            }
        };
        let who = labels.as_ref().map(|l| l.to_string()).unwrap_or_else(|| format!("entry {index}"));
        let mut entry_ok = labels.is_some();

        for key in obj.keys() {
            if !matches!(key.as_str(), "name" | "range" | "for" | "_id") {
                lines.push(format!("- Unknown key `{key}` for {who};"));
                entry_ok = false;
            }
        }

        if let Some(l) = &labels {
            if !exists(l) {
                lines.push(format!("- The metric {l} does not exists;"));
                entry_ok = false;
            }
        }

        let range = match obj.get("range") {
            None | Some(Value::Null) => {
                lines.push(format!("- Range not provided for {who};"));
                None
            }
            Some(Value::Object(r)) => {
                let min = bound(r.get("min"), "Minimum", &who, &mut lines);
                let max = bound(r.get("max"), "Maximum", &who, &mut lines);
                // a misspelt bound (`"mx"`) is not silently ignored, as at the entry's level
                let unknown: Vec<&String> = r.keys().filter(|k| !matches!(k.as_str(), "min" | "max")).collect();
                for key in &unknown {
                    lines.push(format!("- Unknown key `{key}` in the range of {who};"));
                }
                match (min, max) {
                    _ if !unknown.is_empty() => None,
                    (Some(min), Some(max)) if min > max => {
                        lines.push(format!(
                            "- Invalid range provided [minimum given value ({}) is greater than maximum one ({})] for {who};",
                            fmt_num(min),
                            fmt_num(max)
                        ));
                        None
                    }
                    (Some(min), Some(max)) => Some(SlaRange { min, max }),
                    _ => None,
                }
            }
            Some(other) => {
                lines.push(format!(
                    "- Invalid range provided for {who}: expected an object with min and max, got {};",
                    json_kind(other)
                ));
                None
            }
        };
        entry_ok &= range.is_some();

        let for_minutes = match obj.get("for") {
            None | Some(Value::Null) => {
                lines.push(format!("- Duration (for key) not provided for {who};"));
                None
            }
            Some(v) => match positive_minutes(v) {
                Some(m) => Some(m),
                None => {
                    lines.push(format!("- Invalid duration (for key) provided for {who};"));
                    None
                }
            },
        };
        entry_ok &= for_minutes.is_some();

        if let Some(l) = &labels {
            if !seen.insert(l.clone()) {
                lines.push(format!("- Duplicate metric {l};"));
                entry_ok = false;
            }
        }

        if let (true, Some(labels), Some(range), Some(for_minutes)) = (entry_ok, labels, range, for_minutes) {
            entries.push(SlaEntry { labels, range, for_minutes });
        }
    }
    if lines.is_empty() {
        Ok(entries)
    } else {
        Err(SlaSetRejected { lines })
    }
}

/// A step of the path to a JSON value: an array index or an object key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Index(usize),
    Key(String),
}

/// Every key given more than once in an object of the JSON document `body`, with the path
/// of that object, in document order. Empty for a document that is not JSON.
fn duplicate_keys(body: &[u8]) -> Vec<(Vec<Step>, String)> {
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    struct Walk<'a> {
        path: Vec<Step>,
        found: &'a RefCell<Vec<(Vec<Step>, String)>>,
    }

    impl Walk<'_> {
        fn at(&self, step: Step) -> Self {
            let mut path = self.path.clone();
            path.push(step);
            Walk { path, found: self.found }
        }
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while seq.next_element_seed(self.at(Step::Index(i)))?.is_some() {
                i += 1;
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut keys = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if keys.contains(&key) {
                    self.found.borrow_mut().push((self.path.clone(), key.clone()));
                }
                map.next_value_seed(self.at(Step::Key(key.clone())))?;
                keys.insert(key);
            }
            Ok(())
        }
    }

    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    match (Walk { path: Vec::new(), found: &found }).deserialize(&mut de) {
        Ok(()) => found.into_inner(),
        Err(_) => Vec::new(),
    }
}

/// Where an object of the body is, in the words of the validation's messages: `entry 2`,
/// `the range of entry 2`, `the name of entry 2`, else a JSON pointer.
fn describe(path: &[Step]) -> String {
    match path {
        [] => "the body".to_owned(),
        [Step::Index(i)] => format!("entry {i}"),
        [Step::Index(i), Step::Key(k)] if k == "range" || k == "name" => format!("the {k} of entry {i}"),
        _ => {
            let pointer: Vec<String> = path
                .iter()
                .map(|s| match s {
                    Step::Index(i) => i.to_string(),
                    Step::Key(k) => k.replace('~', "~0").replace('/', "~1"),
                })
                .collect();
            format!("/{}", pointer.join("/"))
        }
    }
}

fn bound(v: Option<&Value>, which: &str, who: &str, lines: &mut Vec<String>) -> Option<f64> {
    match v {
        None | Some(Value::Null) => {
            lines.push(format!("- {which} value of range not provided for {who};"));
            None
        }
        Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite()).or_else(|| {
            lines.push(format!("- {which} value of range ({n}) is not a finite number for {who};"));
            None
        }),
        Some(other) => {
            lines.push(format!(
                "- {which} value of range must be a number, got {} ({other}) for {who};",
                json_kind(other)
            ));
            None
        }
    }
}

fn positive_minutes(v: &Value) -> Option<u32> {
    let n = match v {
        Value::Number(n) => n,
        _ => return None,
    };
    let minutes = if let Some(u) = n.as_u64() {
        u
    } else {
        let f = n.as_f64()?;
        if f.fract() != 0.0 || f < 0.0 {
            return None;
        }
        f as u64
    };
    (1..=MAX_FOR_MINUTES).contains(&minutes).then_some(minutes as u32)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A number as an operator wrote it: `5` not `5.0`, `0.25` as is; in scientific notation
/// from 10^21 on and below 10^-6 (`1.7976931348623157e308`, not 309 digits), where Go's
/// and JavaScript's shortest formats switch too.
pub fn fmt_num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.is_finite() && v != 0.0 && (v.abs() >= 1e21 || v.abs() < 1e-6) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(name: &str) -> Labels {
        [("__name__", name), ("job", "node")].into_iter().collect()
    }

    fn entry(name: &str, min: f64, max: f64, for_: u32) -> Value {
        json!({"name": labels(name), "range": {"min": min, "max": max}, "for": for_})
    }

    fn five() -> Vec<Value> {
        (0..5).map(|i| entry(&format!("m{i}"), 0.0, 10.0, 5)).collect()
    }

    fn check(body: &Value) -> Result<Vec<SlaEntry>, SlaSetRejected> {
        validate_sla_set(body.to_string().as_bytes(), 5, |l| l.name() != "ghost")
    }

    #[test]
    fn a_key_given_twice_is_refused_wherever_it_is() {
        // serde_json keeps the last of two equal keys: the reader of the body sees one value,
        // another would take effect
        // (written out: the order serde_json writes an object's keys in depends on its features)
        let entry =
            |i: usize| format!(r#"{{"name":{{"__name__":"m{i}","job":"node"}},"range":{{"min":0,"max":10}},"for":5}}"#);
        let mut entries: Vec<String> = (0..5).map(entry).collect();
        entries[0] = r#"{"for":5,"for":6,"name":{"__name__":"m0","job":"node","job":"other"},"range":{"min":0,"min":8,"max":10}}"#.into();
        entries[1] = r#"{"name":{"__name__":"m1","job":"node"},"range":{"min":0,"max":10,"min":1},"for":5}"#.into();
        let body = format!("[{}]", entries.join(","));
        let rejected = validate_sla_set(body.as_bytes(), 5, |_| true).unwrap_err();
        assert_eq!(
            rejected.lines,
            [
                "- Duplicate key `for` in entry 0;",
                "- Duplicate key `job` in the name of entry 0;",
                "- Duplicate key `min` in the range of entry 0;",
                "- Duplicate key `min` in the range of entry 1;",
            ]
        );
        // deeper, and at the top
        assert_eq!(describe(&[Step::Index(3), Step::Key("name".into()), Step::Key("a/b".into())]), "/3/name/a~1b");
        assert_eq!(duplicate_keys(br#"{"a": 1, "a": 2}"#), [(vec![], "a".to_owned())]);
        assert!(duplicate_keys(b"not json").is_empty());
    }

    #[test]
    fn very_large_and_very_small_numbers_are_written_in_scientific_notation() {
        assert_eq!(fmt_num(5.0), "5");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(-1e16), "-10000000000000000");
        assert_eq!(fmt_num(f64::MAX), "1.7976931348623157e308");
        assert_eq!(fmt_num(-5e-324), "-5e-324");
        assert_eq!(fmt_num(1e-6), "0.000001");
    }

    #[test]
    fn a_valid_set_is_accepted_in_order() {
        let set = check(&Value::Array(five())).unwrap();
        assert_eq!(set.len(), 5);
        assert_eq!(set[3].labels, labels("m3"));
        assert_eq!(set[3].range, SlaRange { min: 0.0, max: 10.0 });
        assert_eq!(set[3].for_minutes, 5);
    }

    #[test]
    fn every_seed_message_is_produced_and_collected() {
        let mut items = five();
        items[0] = entry("ghost", 0.0, 1.0, 1);
        items[1] = json!({"name": labels("m1"), "range": {"max": 3}, "for": 1});
        items[2] = json!({"name": labels("m2"), "range": {"min": 3}, "for": 0});
        items[3] = json!({"name": labels("m3"), "range": {"min": 9, "max": 3}});
        items[4] = json!({"name": labels("m4"), "for": 2});
        items.push(json!({"name": labels("m5"), "range": {"min": 1, "max": 2}, "for": "7"}));
        let err = check(&Value::Array(items)).unwrap_err();
        let l = |n: &str| labels(n).to_string();
        assert_eq!(
            err.lines,
            vec![
                "SLA set must consist of 5 metrics. 6 provided".to_owned(),
                format!("- The metric {} does not exists;", l("ghost")),
                format!("- Minimum value of range not provided for {};", l("m1")),
                format!("- Maximum value of range not provided for {};", l("m2")),
                format!("- Invalid duration (for key) provided for {};", l("m2")),
                format!(
                    "- Invalid range provided [minimum given value (9) is greater than maximum one (3)] for {};",
                    l("m3")
                ),
                format!("- Duration (for key) not provided for {};", l("m3")),
                format!("- Range not provided for {};", l("m4")),
                format!("- Invalid duration (for key) provided for {};", l("m5")),
            ]
        );
        assert_eq!(err.to_string(), err.lines.join("\n"));
    }

    #[test]
    fn malformed_bodies_get_a_clear_single_line() {
        let e = validate_sla_set(b"[{", 5, |_| true).unwrap_err();
        assert!(e.lines[0].starts_with("Malformed JSON body"), "{e}");
        let e = validate_sla_set(b"{\"a\":1}", 5, |_| true).unwrap_err();
        assert_eq!(e.lines, vec!["SLA set must be a JSON array of SLA entries, got an object"]);
    }

    #[test]
    fn strings_for_numbers_duplicates_and_unknown_keys_are_rejected() {
        let mut items = five();
        items[0] = json!({"name": labels("m0"), "range": {"min": "1", "max": 2}, "for": 1});
        items[1] = entry("m2", 0.0, 1.0, 1);
        items[3] = json!({"name": labels("m3"), "range": {"min": 1, "max": 2, "avg": 3}, "for": 1});
        items[4] = json!({"name": labels("m4"), "range": {"min": 1, "max": 2}, "for": 1, "fro": 3});
        let err = check(&Value::Array(items)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Minimum value of range must be a number, got a string (\"1\")"), "{text}");
        assert!(text.contains(&format!("- Duplicate metric {};", labels("m2"))), "{text}");
        assert!(text.contains("- Unknown key `fro`"), "{text}");
        assert!(text.contains(&format!("- Unknown key `avg` in the range of {};", labels("m3"))), "{text}");
        assert!(!text.contains("must consist"), "{text}");
    }

    #[test]
    fn an_empty_label_value_is_the_series_without_that_label() {
        let mut body = five();
        body[0]["name"]["instance"] = json!("");
        let entries = check(&Value::Array(body)).expect("accepted");
        assert_eq!(entries[0].labels, labels("m0"));
        assert_eq!(entries[0].id(), labels("m0").id());
        // the same series twice, once spelled with an empty label, is a duplicate
        let mut body = five();
        body[1]["name"] = json!({"__name__": "m0", "job": "node", "instance": ""});
        assert!(check(&Value::Array(body)).is_err());
        // nothing but empty values names no series
        let mut body = five();
        body[0]["name"] = json!({"instance": ""});
        assert!(check(&Value::Array(body)).is_err());
    }

    #[test]
    fn for_boundaries() {
        assert_eq!(positive_minutes(&json!(1)), Some(1));
        assert_eq!(positive_minutes(&json!(5.0)), Some(5));
        assert_eq!(positive_minutes(&json!(0)), None);
        assert_eq!(positive_minutes(&json!(-3)), None);
        assert_eq!(positive_minutes(&json!(2.5)), None);
        assert_eq!(positive_minutes(&json!(1440)), Some(1440));
        assert_eq!(positive_minutes(&json!(1441)), None);
        assert_eq!(positive_minutes(&json!(true)), None);
    }

    #[test]
    fn the_get_body_can_be_put_back() {
        let mut items = five();
        items[0]["_id"] = json!({"$oid": labels("m0").id().to_string()});
        assert!(check(&Value::Array(items)).is_ok());
    }

    #[test]
    fn numbers_are_printed_as_written() {
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(3289686016.0), "3289686016");
    }
}
