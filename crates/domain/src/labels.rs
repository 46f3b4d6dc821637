//! Series identity: the full label set of a series and its stable 24-hex id (SPEC §2).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The label name that carries the metric name.
pub const NAME_LABEL: &str = "__name__";

/// The full label set of a series, `__name__` included, sorted by label name.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Labels {
    /// A JSON object (or Avro map) of label names to values; empty values are dropped.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(Labels::new)
    }
}

impl Labels {
    /// The label set of `map` (label name → value). A label with an empty value is
    /// dropped: Prometheus stores no empty label, so `{a="1",b=""}` is the series `{a="1"}`.
    pub fn new(mut map: BTreeMap<String, String>) -> Self {
        map.retain(|_, v| !v.is_empty());
        Self(map)
    }

    /// The value of `__name__`, or the empty string when the set has none.
    pub fn name(&self) -> &str {
        self.0.get(NAME_LABEL).map(String::as_str).unwrap_or("")
    }

    /// The value of label `label`; `None` when the set has no such label.
    pub fn get(&self, label: &str) -> Option<&str> {
        self.0.get(label).map(String::as_str)
    }

    /// The `(name, value)` pairs, sorted by label name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// The labels as a map from label name to value.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The labels as a map from label name to value, consuming the set.
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }

    /// Whether the set has no label at all, not even `__name__`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
        let matchers: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
        format!("{{{}}}", matchers.join(","))
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
        let json = serde_json::to_string(&self.0).map_err(|_| fmt::Error)?;
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
