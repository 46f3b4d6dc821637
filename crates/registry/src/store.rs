//! The registry's state and rules, persisted in redb.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("registry_state");
const STATE_KEY: &str = "state";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {details}"
    )]
    Incompatible { subject: String, details: String },
    #[error("Error in the backend data store: {0}")]
    Storage(String),
}

impl RegistryError {
    /// Confluent's `(HTTP status, error_code)` of the error.
    pub fn codes(&self) -> (u16, u32) {
        match self {
            RegistryError::SubjectNotFound(_) => (404, 40401),
            RegistryError::VersionNotFound(_) => (404, 40402),
            RegistryError::SchemaNotFound => (404, 40403),
            RegistryError::SubjectConfigNotFound(_) => (404, 40408),
            RegistryError::InvalidSchema(_) => (422, 42201),
            RegistryError::InvalidVersion(_) => (422, 42202),
            RegistryError::InvalidCompatibility => (422, 42203),
            RegistryError::Incompatible { .. } => (409, 409),
            RegistryError::Storage(_) => (500, 50001),
        }
    }
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SubjectVersion {
    version: u32,
    id: u32,
    deleted: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    /// Global schema ids → schema text, as first registered.
    schemas: BTreeMap<u32, String>,
    subjects: BTreeMap<String, Vec<SubjectVersion>>,
    global: Option<Compatibility>,
    per_subject: BTreeMap<String, Compatibility>,
}

/// A registered version as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

pub struct Registry {
    db: Database,
    state: RwLock<State>,
}

fn storage(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Storage(e.to_string())
}

fn parse(text: &str) -> Result<Schema> {
    Schema::parse_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))
}

/// Two schema texts are the same schema when they are the same JSON.
fn same(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

impl Registry {
    /// The default compatibility when none is configured (Confluent's default).
    pub const DEFAULT_COMPATIBILITY: Compatibility = Compatibility::Backward;

    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(storage)?;
        let state = {
            let tx = db.begin_read().map_err(storage)?;
            match tx.open_table(STATE) {
                Ok(t) => match t.get(STATE_KEY).map_err(storage)? {
                    Some(v) => serde_json::from_slice(v.value()).map_err(storage)?,
                    None => State::default(),
                },
                Err(redb::TableError::TableDoesNotExist(_)) => State::default(),
                Err(e) => return Err(storage(e)),
            }
        };
        Ok(Self { db, state: RwLock::new(state) })
    }

    fn persist(&self, state: &State) -> Result<()> {
        let bytes = serde_json::to_vec(state).map_err(storage)?;
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut t = tx.open_table(STATE).map_err(storage)?;
            t.insert(STATE_KEY, bytes.as_slice()).map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    /// Applies a change to a copy of the state, persists it, then makes it visible.
    fn mutate<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut next = guard.clone();
        let out = f(&mut next)?;
        self.persist(&next)?;
        *guard = next;
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> Result<T>) -> Result<T> {
        let guard = self.state.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        self.read(|s| {
            Ok(s.subjects
                .iter()
                .filter(|(_, v)| v.iter().any(|x| deleted || !x.deleted))
                .map(|(k, _)| k.clone())
                .collect())
        })
        .unwrap_or_default()
    }

    pub fn versions(&self, subject: &str) -> Result<Vec<u32>> {
        self.read(|s| {
            let v: Vec<u32> = live(s, subject)?.iter().map(|x| x.version).collect();
            Ok(v)
        })
    }

    pub fn schema_by_id(&self, id: u32) -> Result<String> {
        self.read(|s| s.schemas.get(&id).cloned().ok_or(RegistryError::SchemaNotFound))
    }

    /// Subjects and versions that use a schema id.
    pub fn id_versions(&self, id: u32) -> Result<Vec<(String, u32)>> {
        self.read(|s| {
            if !s.schemas.contains_key(&id) {
                return Err(RegistryError::SchemaNotFound);
            }
            Ok(s.subjects
                .iter()
                .flat_map(|(subj, vs)| {
                    vs.iter().filter(|v| v.id == id && !v.deleted).map(move |v| (subj.clone(), v.version))
                })
                .collect())
        })
    }

    pub fn version(&self, subject: &str, version: &str) -> Result<Registered> {
        self.read(|s| {
            let v = pick(live(s, subject)?, version)?;
            Ok(Registered {
                subject: subject.to_owned(),
                version: v.version,
                id: v.id,
                schema: s.schemas[&v.id].clone(),
            })
        })
    }

    pub fn compatibility(&self, subject: Option<&str>) -> Result<Compatibility> {
        self.read(|s| match subject {
            None => Ok(s.global.unwrap_or(Self::DEFAULT_COMPATIBILITY)),
            Some(subj) => {
                s.per_subject.get(subj).copied().ok_or_else(|| RegistryError::SubjectConfigNotFound(subj.to_owned()))
            }
        })
    }

    pub fn effective_compatibility(&self, subject: &str) -> Compatibility {
        self.read(|s| Ok(effective(s, subject))).unwrap_or(Self::DEFAULT_COMPATIBILITY)
    }

    pub fn set_compatibility(&self, subject: Option<&str>, level: Compatibility) -> Result<()> {
        self.mutate(|s| {
            match subject {
                None => s.global = Some(level),
                Some(subj) => {
                    s.per_subject.insert(subj.to_owned(), level);
                }
            }
            Ok(())
        })
    }

    pub fn delete_compatibility(&self, subject: &str) -> Result<Compatibility> {
        self.mutate(|s| {
            s.per_subject.remove(subject).ok_or_else(|| RegistryError::SubjectConfigNotFound(subject.to_owned()))
        })
    }

    /// Registers `schema` under `subject`: the existing id when it is already there,
    /// else a new version after the compatibility check.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32> {
        let parsed = parse(schema)?;
        if let Ok(found) = self.lookup(subject, schema) {
            return Ok(found.id);
        }
        self.mutate(|s| {
            check(s, subject, &parsed, None)?;
            let id = match s.schemas.iter().find(|(_, t)| same(t, schema)) {
                Some((id, _)) => *id,
                None => {
                    let id = s.schemas.keys().next_back().copied().unwrap_or(0) + 1;
                    s.schemas.insert(id, schema.to_owned());
                    id
                }
            };
            let versions = s.subjects.entry(subject.to_owned()).or_default();
            let version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
            versions.push(SubjectVersion { version, id, deleted: false });
            Ok(id)
        })
    }

    /// The version of `subject` that holds `schema`.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<Registered> {
        parse(schema)?;
        self.read(|s| {
            let versions = live(s, subject)?;
            versions
                .iter()
                .find(|v| same(&s.schemas[&v.id], schema))
                .map(|v| Registered {
                    subject: subject.to_owned(),
                    version: v.version,
                    id: v.id,
                    schema: s.schemas[&v.id].clone(),
                })
                .ok_or(RegistryError::SchemaNotFound)
        })
    }

    /// Whether `schema` could be registered under `subject` against `version`
    /// (`None`: against what the subject's compatibility level requires).
    pub fn is_compatible(
        &self,
        subject: &str,
        schema: &str,
        version: Option<&str>,
    ) -> Result<std::result::Result<(), String>> {
        let parsed = parse(schema)?;
        self.read(|s| match check(s, subject, &parsed, version) {
            Ok(()) => Ok(Ok(())),
            Err(RegistryError::Incompatible { details, .. }) => Ok(Err(details)),
            Err(e) => Err(e),
        })
    }

    /// Soft-deletes a subject; returns the versions deleted.
    pub fn delete_subject(&self, subject: &str) -> Result<Vec<u32>> {
        self.mutate(|s| {
            let versions =
                s.subjects.get_mut(subject).ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
            let deleted: Vec<u32> = versions
                .iter_mut()
                .filter(|v| !v.deleted)
                .map(|v| {
                    v.deleted = true;
                    v.version
                })
                .collect();
            if deleted.is_empty() {
                return Err(RegistryError::SubjectNotFound(subject.to_owned()));
            }
            Ok(deleted)
        })
    }
}

fn live<'a>(s: &'a State, subject: &str) -> Result<Vec<&'a SubjectVersion>> {
    let v: Vec<&SubjectVersion> =
        s.subjects.get(subject).map(|v| v.iter().filter(|x| !x.deleted).collect()).unwrap_or_default();
    if v.is_empty() {
        Err(RegistryError::SubjectNotFound(subject.to_owned()))
    } else {
        Ok(v)
    }
}

fn pick<'a>(versions: Vec<&'a SubjectVersion>, version: &str) -> Result<&'a SubjectVersion> {
    if version == "latest" || version == "-1" {
        return versions.last().copied().ok_or_else(|| RegistryError::VersionNotFound(version.to_owned()));
    }
    let n: u32 =
        version.parse().ok().filter(|n| *n >= 1).ok_or_else(|| RegistryError::InvalidVersion(version.to_owned()))?;
    versions.into_iter().find(|v| v.version == n).ok_or_else(|| RegistryError::VersionNotFound(version.to_owned()))
}

fn effective(s: &State, subject: &str) -> Compatibility {
    s.per_subject.get(subject).copied().or(s.global).unwrap_or(Registry::DEFAULT_COMPATIBILITY)
}

fn check(s: &State, subject: &str, new: &Schema, version: Option<&str>) -> Result<()> {
    let versions = match live(s, subject) {
        Ok(v) => v,
        Err(_) if version.is_none() => return Ok(()),
        Err(e) => return Err(e),
    };
    let level = effective(s, subject);
    let against: Vec<&SubjectVersion> = match version {
        Some(v) => vec![pick(versions, v)?],
        None => match level {
            Compatibility::None => vec![],
            Compatibility::Backward | Compatibility::Forward | Compatibility::Full => {
                versions.last().copied().into_iter().collect()
            }
            _ => versions,
        },
    };
    let (backward, forward) = match level {
        Compatibility::None if version.is_some() => (true, false),
        Compatibility::None => (false, false),
        Compatibility::Backward | Compatibility::BackwardTransitive => (true, false),
        Compatibility::Forward | Compatibility::ForwardTransitive => (false, true),
        Compatibility::Full | Compatibility::FullTransitive => (true, true),
    };
    for v in against {
        let old = parse(&s.schemas[&v.id]).map_err(|e| RegistryError::Storage(e.to_string()))?;
        if backward {
            SchemaCompatibility::can_read(&old, new).map_err(|e| RegistryError::Incompatible {
                subject: subject.to_owned(),
                details: format!("the new schema cannot read version {}: {e}", v.version),
            })?;
        }
        if forward {
            SchemaCompatibility::can_read(new, &old).map_err(|e| RegistryError::Incompatible {
                subject: subject.to_owned(),
                details: format!("version {} cannot read the new schema: {e}", v.version),
            })?;
        }
    }
    Ok(())
}
