//! Series identity: the full label set of a series and its stable 24-hex id (SPEC §2).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The label name that carries the metric name.
pub const NAME_LABEL: &str = "__name__";

/// The full label set of a series, `__name__` included, sorted by label name.
///
/// Held compactly, as Prometheus's own `stringlabels` do: one shared, immutable string of
/// the pairs in name order, each name and value written as its byte length in decimal, a
/// `:` and the bytes (`8:__name__2:up3:job4:node`). A set takes one allocation of about
/// the length of its names and values plus 16 bytes (a `BTreeMap<String, String>` of three
/// labels takes some 750 bytes over seven allocations), and a clone shares it. Equality
/// and hashing are those of the encoding, which is one per set; the order is that of the
/// `(name, value)` pairs, as a map's.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Labels(Arc<str>);

impl Default for Labels {
    fn default() -> Self {
        Self(Arc::from(""))
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Labels").field(&DebugMap(self)).finish()
    }
}

struct DebugMap<'a>(&'a Labels);

impl fmt::Debug for DebugMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl Serialize for Labels {
    /// A map of label names to values, in name order (a JSON object, an Avro map).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    /// A JSON object (or Avro map) of label names to values; empty values are dropped and
    /// of a name given twice the last value is kept. Names in order (as Prometheus writes
    /// them) are encoded as they are read, borrowed from the input when it has no escape.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of label names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut out = String::with_capacity(64);
                // the last name encoded, as a range of `out`
                let mut last = 0..0;
                // the pairs, once one came out of order, empty or twice
                let mut pairs: Option<Vec<(String, String)>> = None;
                while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
                    let Text(v) = map.next_value::<Text<'de>>()?;
                    if let Some(pairs) = pairs.as_mut() {
                        pairs.push((k.into_owned(), v.into_owned()));
                    } else if v.is_empty() || (!last.is_empty() && out[last.clone()] >= *k) {
                        let mut all: Vec<(String, String)> =
                            Pairs { rest: &out }.map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
                        all.push((k.into_owned(), v.into_owned()));
                        pairs = Some(all);
                    } else {
                        let start = push(&mut out, &k);
                        last = start..out.len();
                        push(&mut out, &v);
                    }
                }
                Ok(match pairs {
                    Some(pairs) => Labels::from_pairs(pairs),
                    None => Labels(Arc::from(out)),
                })
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// A string read borrowed from the input when it can be, owned when it has escapes.
struct Text<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// Appends `s` to an encoding (its byte length in decimal, `:`, its bytes); returns where
/// `s`'s bytes start.
fn push(out: &mut String, s: &str) -> usize {
    use fmt::Write as _;
    write!(out, "{}:", s.len()).expect("writing to a String");
    out.push_str(s);
    out.len() - s.len()
}

impl Labels {
    /// The label set of `map` (label name → value). A label with an empty value is
    /// dropped: Prometheus stores no empty label, so `{a="1",b=""}` is the series `{a="1"}`.
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Self::encode(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The label set of `pairs` in any order; of a name given twice the last value is
    /// kept, and empty values are dropped.
    fn from_pairs(mut pairs: Vec<(String, String)>) -> Self {
        // stable: the pairs of one name stay in their order, the last one wins
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let last_of_each =
            pairs.iter().enumerate().filter(|(i, (k, _))| pairs.get(i + 1).is_none_or(|next| &next.0 != k));
        Self::encode(last_of_each.map(|(_, (k, v))| (k.as_str(), v.as_str())))
    }

    /// The set of `pairs`, given sorted by name and without a name twice.
    fn encode<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = String::with_capacity(64);
        for (k, v) in pairs.filter(|(_, v)| !v.is_empty()) {
            push(&mut out, k);
            push(&mut out, v);
        }
        Self(Arc::from(out))
    }

    /// The value of `__name__`, or the empty string when the set has none.
    pub fn name(&self) -> &str {
        self.get(NAME_LABEL).unwrap_or("")
    }

    /// The value of label `label`; `None` when the set has no such label.
    pub fn get(&self, label: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == label).map(|(_, v)| v)
    }

    /// The `(name, value)` pairs, sorted by label name.
    pub fn iter(&self) -> Pairs<'_> {
        Pairs { rest: &self.0 }
    }

    /// The labels as a map from label name to value (a copy).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    /// The labels as a map from label name to value, consuming the set.
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.to_map()
    }

    /// The set with label `label` set to `value` (added, or replaced when it has one; an
    /// empty value removes it).
    pub fn with(&self, label: &str, value: &str) -> Labels {
        let (at, end) = self.span(label);
        let mut out = String::with_capacity(self.0.len() + label.len() + value.len() + 8);
        out.push_str(&self.0[..at]);
        if !value.is_empty() {
            push(&mut out, label);
            push(&mut out, value);
        }
        out.push_str(&self.0[end..]);
        Self(Arc::from(out))
    }

    /// The set without label `label`.
    pub fn without(&self, label: &str) -> Labels {
        let (at, end) = self.span(label);
        if at == end {
            return self.clone();
        }
        Self(Arc::from([&self.0[..at], &self.0[end..]].concat()))
    }

    /// The byte range of the encoding that holds label `label`'s pair, or the empty range
    /// where it would go.
    fn span(&self, label: &str) -> (usize, usize) {
        let mut pairs = self.iter();
        loop {
            let at = self.0.len() - pairs.rest.len();
            match pairs.next() {
                Some((k, _)) if k == label => return (at, self.0.len() - pairs.rest.len()),
                Some((k, _)) if k < label => continue,
                _ => return (at, at),
            }
        }
    }

    /// Whether the set has no label at all, not even `__name__`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of labels, `__name__` included.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The stable id of this series (SPEC §2).
    pub fn id(&self) -> MetricId {
        MetricId::of(self)
    }

    /// A PromQL selector of this series' labels, e.g. `{__name__="up",job="node"}`: the
    /// name is always a `__name__` matcher (a metric name can be a PromQL keyword or
    /// number, e.g. `inf`, `bool`, `sum`) and every value a JSON-escaped string literal,
    /// which PromQL's lexer reads for any string (`\\`, `\"`, control characters as
    /// `\uXXXX`). It also matches series with more labels: filter the answer to this set.
    pub fn selector(&self) -> String {
        let matchers: Vec<String> = self.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
        format!("{{{}}}", matchers.join(","))
    }
}

/// The `(name, value)` pairs of a [`Labels`], in name order.
#[derive(Clone)]
pub struct Pairs<'a> {
    rest: &'a str,
}

/// The next length-prefixed string of an encoding, moving `rest` past it.
fn take<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let (len, tail) = rest.split_once(':')?;
    let (s, tail) = tail.split_at_checked(len.parse().ok()?)?;
    *rest = tail;
    Some(s)
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        Some((take(&mut self.rest)?, take(&mut self.rest)?))
    }
}

/// A PromQL string literal of `s`: JSON's escapes (a subset of PromQL's), and U+FFFD as
/// `\ufffd`, because PromQL's lexer takes that character, valid in a label value, for an
/// invalid UTF-8 sequence and rejects the query.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes").replace('\u{FFFD}', "\\ufffd")
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self::new(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// Rendered as a JSON object, the way every message of the API names a series.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

/// The canonical form of SPEC §2: `name=value` pairs sorted by name, joined by a newline,
/// with `\` written `\\` and a newline written `\n` in values, empty values left out.
fn canonical(labels: &Labels) -> String {
    let mut canonical = String::new();
    for (k, v) in labels.iter().filter(|(_, v)| !v.is_empty()) {
        if !canonical.is_empty() {
            canonical.push('\n');
        }
        canonical.push_str(k);
        canonical.push('=');
        for c in v.chars() {
            match c {
                '\\' => canonical.push_str("\\\\"),
                '\n' => canonical.push_str("\\n"),
                c => canonical.push(c),
            }
        }
    }
    canonical
}

/// The id of a series: the first 12 bytes of SHA-256 over the canonical label set,
/// as 24 lowercase hex characters (a valid ObjectId string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricId([u8; 12]);

impl MetricId {
    /// The id of `labels` (SPEC §2): the first 12 bytes of SHA-256 over its `name=value` pairs
    /// sorted by name and joined by a newline, with `\` written `\\` and a newline written
    /// `\n` in values, and labels with an empty value left out (Prometheus drops them). Label
    /// sets without a backslash or newline keep the ids of the first release.
    pub fn of(labels: &Labels) -> Self {
        let canonical = canonical(labels);
        let digest = Sha256::digest(canonical.as_bytes());
        let mut id = [0u8; 12];
        id.copy_from_slice(&digest[..12]);
        Self(id)
    }

    /// The id whose 12 bytes are `bytes` (an ObjectId's, as MongoDB stores it).
    pub fn from_bytes(bytes: [u8; 12]) -> Self {
        Self(bytes)
    }

    /// The 12 bytes of the id (those of the ObjectId).
    pub fn bytes(&self) -> [u8; 12] {
        self.0
    }

    /// The slot of the series among `slots` (`0..slots`) when ETL instances share the
    /// series (SPEC §9): the first 8 bytes of the id, big-endian, modulo `slots`. The id
    /// is a SHA-256 prefix, so the slots get even shares of any set of series.
    ///
    /// # Panics
    /// When `slots` is 0.
    pub fn slot(&self, slots: u32) -> u32 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        (u64::from_be_bytes(head) % u64::from(slots)) as u32
    }
}

impl fmt::Display for MetricId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A string that is not 24 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid metric id `{0}`: expected 24 hex characters")]
pub struct InvalidMetricId(pub String);

impl FromStr for MetricId {
    type Err = InvalidMetricId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 24 {
            return Err(InvalidMetricId(s.to_owned()));
        }
        let bytes = hex::decode(s.to_ascii_lowercase()).map_err(|_| InvalidMetricId(s.to_owned()))?;
        let mut id = [0u8; 12];
        id.copy_from_slice(&bytes);
        Ok(Self(id))
    }
}

impl Serialize for MetricId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for MetricId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn slots_are_the_id_head_modulo_and_evenly_shared() {
        let id: MetricId = "0000000000000103ffffffff".parse().unwrap();
        assert_eq!(id.slot(16), 0x103 % 16);
        assert_eq!(id.slot(1), 0);
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[labels(&[("__name__", "m"), ("i", &i.to_string())]).id().slot(16) as usize] += 1;
        }
        // 1 000 expected per slot: a binomial's σ is about 31
        assert!(counts.iter().all(|c| (850..1150).contains(c)), "{counts:?}");
    }

    #[test]
    fn id_is_sha256_prefix_of_canonical_label_set() {
        let l = labels(&[("job", "node"), ("__name__", "up"), ("instance", "a:9100")]);
        // canonical: "__name__=up\ninstance=a:9100\njob=node"
        let digest = Sha256::digest(b"__name__=up\ninstance=a:9100\njob=node");
        assert_eq!(l.id().to_string(), hex::encode(&digest[..12]));
        assert_eq!(l.id().to_string().len(), 24);
    }

    #[test]
    fn id_does_not_depend_on_insertion_order_and_separates_label_sets() {
        let a = labels(&[("a", "1"), ("b", "2")]);
        let b = labels(&[("b", "2"), ("a", "1")]);
        assert_eq!(a.id(), b.id());
        // "a=1\nb=2" must not collide with a single label whose value contains the separator
        let c = labels(&[("a", "1\nb=2")]);
        assert_ne!(a.id(), c.id(), "a newline in a value is escaped");
        // nor an escaped newline with a backslash followed by n
        assert_ne!(labels(&[("a", "x\ny")]).id(), labels(&[("a", "x\\ny")]).id());
        let d = labels(&[("a", "1"), ("b", "3")]);
        assert_ne!(a.id(), d.id());
    }

    #[test]
    fn empty_values_are_no_label() {
        let with_empty = labels(&[("__name__", "up"), ("instance", "")]);
        assert_eq!(with_empty, labels(&[("__name__", "up")]));
        let parsed: Labels = serde_json::from_str(r#"{"__name__":"up","instance":""}"#).unwrap();
        assert_eq!(parsed, with_empty);
        assert_eq!(parsed.selector(), r#"{__name__="up"}"#);
    }

    /// The label set a canonical form was made from (its inverse: the encoding is injective).
    fn decode(canonical: &str) -> Labels {
        canonical
            .split('\n')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("name=value");
                let mut value = String::new();
                let mut chars = v.chars();
                while let Some(c) = chars.next() {
                    value.push(match (c, c == '\\') {
                        (_, true) => match chars.next() {
                            Some('n') => '\n',
                            Some(other) => other,
                            None => panic!("a dangling escape"),
                        },
                        (c, false) => c,
                    });
                }
                (k.to_owned(), value)
            })
            .collect()
    }

    #[test]
    fn the_compact_set_reads_back_every_pair() {
        // lengths, colons and digits in names and values do not confuse the encoding
        let map: BTreeMap<String, String> = [("__name__", "m"), ("a:1", "10:x"), ("b", "é:\n\u{0}"), ("c", "12")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let l = Labels::new(map.clone());
        assert_eq!(l.to_map(), map);
        assert_eq!(l.get("a:1"), Some("10:x"));
        assert_eq!(l.get("b"), Some("é:\n\u{0}"));
        assert_eq!(l.get("1"), None);
        assert_eq!(l.name(), "m");
        assert_eq!(l.len(), 4);
        assert_eq!(l.without("a:1").to_map().len(), 3);
        assert_eq!(l.with("d", "4").get("d"), Some("4"));
        assert_eq!(l.with("a:1", "").get("a:1"), None, "an empty value removes the label");
        assert_eq!(format!("{l:?}"), r#"Labels({"__name__": "m", "a:1": "10:x", "b": "é:\n\0", "c": "12"})"#);
        assert!(Labels::default().is_empty());
        assert_eq!(Labels::default().len(), 0);
    }

    #[test]
    fn a_name_given_twice_keeps_its_last_value_as_a_map_would() {
        let parsed: Labels = serde_json::from_str(r#"{"b":"1","a":"x","b":"2","c":""}"#).unwrap();
        let as_map: BTreeMap<String, String> = serde_json::from_str(r#"{"b":"1","a":"x","b":"2","c":""}"#).unwrap();
        assert_eq!(parsed, Labels::new(as_map));
        assert_eq!(parsed.get("b"), Some("2"));
        assert_eq!(serde_json::to_string(&parsed).unwrap(), r#"{"a":"x","b":"2"}"#);
        assert_eq!(parsed.to_string(), r#"{"a":"x","b":"2"}"#);
        // in order, as Prometheus writes them: an escaped value, an empty one, a repeated name
        for (json, expected) in [
            (r#"{"__name__":"m","a":"x\"y\n","b":""}"#, vec![("__name__", "m"), ("a", "x\"y\n")]),
            (r#"{"a":"1","a":"2","b":"3"}"#, vec![("a", "2"), ("b", "3")]),
            (r#"{"a":"","b":"3"}"#, vec![("b", "3")]),
            (r#"{}"#, vec![]),
        ] {
            let parsed: Labels = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, labels(&expected), "{json}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_compact_set_is_the_map_it_was_made_of(
            a in proptest::collection::btree_map("[a-c:0-9_]{0,3}", "[:0-9b\\PC]{0,4}", 0..5),
            b in proptest::collection::btree_map("[a-c:0-9_]{0,3}", "[:0-9b\\PC]{0,4}", 0..5),
        ) {
            let drop_empty = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
                m.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect()
            };
            let (la, lb) = (Labels::new(a.clone()), Labels::new(b.clone()));
            let (ma, mb) = (drop_empty(&a), drop_empty(&b));
            proptest::prop_assert_eq!(la.to_map(), ma.clone());
            // the order and equality of the maps they hold, as the map type had them
            proptest::prop_assert_eq!(la.cmp(&lb), ma.cmp(&mb));
            proptest::prop_assert_eq!(la == lb, ma == mb);
            let json = serde_json::to_string(&la).unwrap();
            proptest::prop_assert_eq!(&json, &serde_json::to_string(&ma).unwrap());
            proptest::prop_assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), la.clone());
            // a label set, replaced or removed, as a map's insert and remove do
            for (k, v) in b.iter() {
                let mut with = ma.clone();
                with.insert(k.clone(), v.clone());
                proptest::prop_assert_eq!(la.with(k, v).to_map(), drop_empty(&with));
                let mut without = ma.clone();
                without.remove(k);
                proptest::prop_assert_eq!(la.without(k).to_map(), without);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_canonical_form_is_injective(
            map in proptest::collection::btree_map("[a-z_]{1,6}", "(\\\\|\n|=|n|a|\\PC)*", 0..6)
        ) {
            let labels = Labels::new(map);
            proptest::prop_assert_eq!(decode(&canonical(&labels)), labels);
        }

        #[test]
        fn ids_differ_when_label_sets_differ(
            a in proptest::collection::btree_map("[ab]", "(\\\\|\n|=|b|1)*", 0..3),
            b in proptest::collection::btree_map("[ab]", "(\\\\|\n|=|b|1)*", 0..3),
        ) {
            let (a, b) = (Labels::new(a), Labels::new(b));
            proptest::prop_assert_eq!(a.id() == b.id(), a == b);
        }
    }

    #[test]
    fn golden_ids() {
        // ids of the first release stay as they were for label sets without `\` or a newline
        let m = labels(&[("__name__", "m"), ("a", "1"), ("b", "2")]);
        assert_eq!(m.id().to_string(), "2b60fd52f746a97626ce6d0f");
        // the collision of the issue: m{a="1\nb=2"} had that id too
        assert_ne!(labels(&[("__name__", "m"), ("a", "1\nb=2")]).id().to_string(), "2b60fd52f746a97626ce6d0f");
        assert_eq!(
            labels(&[("__name__", "up"), ("instance", "localhost:9090"), ("job", "prometheus")]).id().to_string(),
            sha_id("__name__=up\ninstance=localhost:9090\njob=prometheus")
        );
        // SPEC §2: `\` written `\\`, a newline written `\n`, empty values dropped
        assert_eq!(labels(&[("a", "1\nb=2")]).id().to_string(), sha_id("a=1\\nb=2"));
        assert_eq!(labels(&[("a", "c:\\x")]).id().to_string(), sha_id("a=c:\\\\x"));
        assert_eq!(labels(&[("a", "1"), ("instance", "")]).id(), labels(&[("a", "1")]).id());
    }

    /// The first 12 bytes of SHA-256 of `canonical`, in hex: SPEC §2 written out.
    fn sha_id(canonical: &str) -> String {
        hex::encode(&Sha256::digest(canonical.as_bytes())[..12])
    }

    #[test]
    fn id_parses_back_and_rejects_garbage() {
        let id = labels(&[("__name__", "x")]).id();
        assert_eq!(id.to_string().parse::<MetricId>().unwrap(), id);
        assert_eq!(id.to_string().to_uppercase().parse::<MetricId>().unwrap(), id);
        assert!("zz".parse::<MetricId>().is_err());
        assert!("0123456789abcdef0123456g".parse::<MetricId>().is_err());
        assert!("0123456789abcdef01234567a".parse::<MetricId>().is_err());
    }

    #[test]
    fn selector_quotes_and_escapes() {
        let l = labels(&[("__name__", "node_fs"), ("mount", "/run \"x\"\\")]);
        assert_eq!(l.selector(), r#"{__name__="node_fs",mount="/run \"x\"\\"}"#);
        let odd = labels(&[("__name__", "9bad"), ("a", "tab\there\u{1}")]);
        assert_eq!(odd.selector(), r#"{__name__="9bad",a="tab\there\u0001"}"#);
        let replacement = labels(&[("__name__", "m"), ("a", "\u{FFFD}")]);
        assert_eq!(replacement.selector(), r#"{__name__="m",a="\ufffd"}"#);
    }
}
