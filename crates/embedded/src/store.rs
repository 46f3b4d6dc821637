//! The read models in redb: one table per collection, documents as JSON by id.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use slamon_domain::{
    Collection, DocKey, Document, Labels, MetricFilter, MetricView, PortError, PortResult, ReadModelStore, Rebuild,
    RebuildableStore, SeriesItem,
};

use crate::{blocking, decode, encode, unavailable};

fn table(c: Collection) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(c.name())
}

/// `metric id → labels (CBOR)` of every live series: listings read this small table in
/// id order instead of decoding whole metric documents. Kept in the transaction that
/// writes the metric document.
const SERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("series_index");

/// Rows of a listing between two looks at whether its caller is still there.
const CHECK_EVERY: usize = 1024;

/// Set when the future of a listing is dropped (its client went away), so the blocking
/// scan behind it stops instead of running to the end.
struct Abandoned(Arc<AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn encode_labels(labels: &Labels) -> PortResult<Vec<u8>> {
    let mut bytes = Vec::new();
    ciborium::into_writer(labels, &mut bytes).map_err(|e| PortError::Invalid(format!("cannot encode labels: {e}")))?;
    Ok(bytes)
}

/// Builds the series index from the metric documents when the store has none yet (a
/// store written before the index existed, or a new one).
fn ensure_series_index(db: &Database, counter: &AtomicU64) -> PortResult<()> {
    let read = db.begin_read().map_err(unavailable)?;
    match read.open_table(SERIES) {
        Ok(_) => return Ok(()),
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(unavailable(e)),
    }
    drop(read);
    let tx = db.begin_write().map_err(unavailable)?;
    {
        let mut index = tx.open_table(SERIES).map_err(unavailable)?;
        let metrics = tx.open_table(table(Collection::Metrics)).map_err(unavailable)?;
        for item in metrics.iter().map_err(unavailable)? {
            let (k, v) = item.map_err(unavailable)?;
            match decode(v.value()) {
                Ok(Document::Metric(m)) if !m.removed => {
                    index.insert(k.value(), encode_labels(&m.labels)?.as_slice()).map_err(unavailable)?;
                }
                Ok(_) => {}
                Err(reason) => undecodable(counter, Collection::Metrics, k.value(), &reason),
            }
        }
    }
    tx.commit().map_err(unavailable)
}

/// Counts and logs a document that cannot be decoded.
fn undecodable(counter: &AtomicU64, collection: Collection, id: &str, reason: &str) {
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(collection = collection.name(), id, reason, "undecodable read-model document skipped");
}

/// The embedded read-model store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
    undecodable: Arc<AtomicU64>,
}

/// redb's page cache of the read models, in bytes (redb's default is 1 GiB, which the
/// process's memory would grow to with the series): the pages read most stay cached.
pub const STORE_CACHE_BYTES: usize = 64 << 20;

impl EmbeddedStore {
    /// Opens (or creates) the store in the redb file at `path`.
    ///
    /// # Errors
    /// [`PortError::Other`] when the file cannot be opened, e.g. another process holds it.
    pub fn open(path: &Path) -> PortResult<Self> {
        let db = redb::Builder::new()
            .set_cache_size(STORE_CACHE_BYTES)
            .create(path)
            .map_err(|e| PortError::Other(format!("cannot open store {}: {e}", path.display())))?;
        let undecodable = AtomicU64::default();
        ensure_series_index(&db, &undecodable)?;
        Ok(Self { db: Arc::new(db), path: path.to_owned(), undecodable: Arc::new(undecodable) })
    }

    /// The listing behind [`ReadModelStore::series`] and [`ReadModelStore::metrics`]:
    /// the series index from the cursor on, filtered, paged, stopped when the caller
    /// goes away.
    async fn list(&self, filter: &MetricFilter) -> PortResult<Vec<SeriesItem>> {
        if filter.limit == Some(0) {
            return Ok(Vec::new());
        }
        let (db, filter) = (self.db.clone(), filter.clone());
        let guard = Abandoned(Arc::new(AtomicBool::new(false)));
        let abandoned = guard.0.clone();
        let listed = blocking(move || {
            let tx = db.begin_read().map_err(unavailable)?;
            let index = match tx.open_table(SERIES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(unavailable(e)),
            };
            let after = filter.after.map(|a| a.to_string());
            let range = match &after {
                Some(a) => index.range::<&str>((std::ops::Bound::Excluded(a.as_str()), std::ops::Bound::Unbounded)),
                None => index.range::<&str>(..),
            }
            .map_err(unavailable)?;
            let (mut out, mut skip) = (Vec::new(), filter.offset);
            for (row, item) in range.enumerate() {
                if row % CHECK_EVERY == 0 && abandoned.load(Ordering::Relaxed) {
                    return Err(PortError::Other("the listing's caller went away".into()));
                }
                let (k, v) = item.map_err(unavailable)?;
                let Ok(labels) = ciborium::from_reader::<Labels, _>(v.value()) else { continue };
                if !filter.matches(&labels) {
                    continue;
                }
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let Ok(id) = k.value().parse() else { continue };
                out.push(SeriesItem { id, labels });
                if filter.limit.is_some_and(|l| out.len() >= l) {
                    break;
                }
            }
            Ok(out)
        })
        .await;
        drop(guard);
        listed
    }

    /// Replaces every collection of this store with `rebuilt`'s in one write transaction:
    /// readers see the old or the new read models, never a mix.
    async fn copy_from(&self, rebuilt: &EmbeddedStore) -> PortResult<()> {
        let (db, source) = (self.db.clone(), rebuilt.db.clone());
        blocking(move || {
            let read = source.begin_read().map_err(unavailable)?;
            let tx = db.begin_write().map_err(unavailable)?;
            let tables = Collection::ALL.iter().map(|c| table(*c)).chain([SERIES]);
            for t in tables {
                tx.delete_table(t).map_err(unavailable)?;
                let from = match read.open_table(t) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => continue,
                    Err(e) => return Err(unavailable(e)),
                };
                let mut to = tx.open_table(t).map_err(unavailable)?;
                for item in from.iter().map_err(unavailable)? {
                    let (k, v) = item.map_err(unavailable)?;
                    to.insert(k.value(), v.value()).map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }
}

/// A rebuild of an [`EmbeddedStore`] into `<file>.rebuild` beside it.
struct EmbeddedRebuild {
    live: EmbeddedStore,
    target: EmbeddedStore,
}

#[async_trait]
impl RebuildableStore for EmbeddedStore {
    async fn begin_rebuild(&self) -> PortResult<Box<dyn Rebuild>> {
        let mut path = self.path.clone().into_os_string();
        path.push(".rebuild");
        let path = PathBuf::from(path);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(PortError::Other(format!("cannot remove an earlier rebuild {}: {e}", path.display())))
            }
        }
        let target = EmbeddedStore::open(&path)?;
        Ok(Box::new(EmbeddedRebuild { live: self.clone(), target }))
    }
}

impl EmbeddedRebuild {
    fn remove_target(self) -> PortResult<()> {
        let path = self.target.path.clone();
        drop(self.target);
        std::fs::remove_file(&path)
            .map_err(|e| PortError::Other(format!("cannot remove the rebuild {}: {e}", path.display())))
    }
}

#[async_trait]
impl Rebuild for EmbeddedRebuild {
    fn target(&self) -> &dyn ReadModelStore {
        &self.target
    }

    async fn swap_in(self: Box<Self>) -> PortResult<()> {
        self.live.copy_from(&self.target).await?;
        self.remove_target()
    }

    async fn discard(self: Box<Self>) -> PortResult<()> {
        self.remove_target()
    }
}

#[async_trait]
impl ReadModelStore for EmbeddedStore {
    async fn metrics(&self, filter: &MetricFilter) -> PortResult<Vec<MetricView>> {
        // the page's ids from the index, then only their documents
        let keys: Vec<DocKey> = self.list(filter).await?.into_iter().map(|s| DocKey::Metric(s.id)).collect();
        let docs = self.load(&keys).await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| match d {
                Some(Document::Metric(m)) if !m.removed => Some(m),
                _ => None,
            })
            .collect())
    }

    async fn series(&self, filter: &MetricFilter) -> PortResult<Vec<SeriesItem>> {
        self.list(filter).await
    }

    /// Every document of a collection, in id order.
    async fn all(&self, collection: Collection) -> PortResult<Vec<Document>> {
        let (db, counter) = (self.db.clone(), self.undecodable.clone());
        blocking(move || {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = match tx.open_table(table(collection)) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(unavailable(e)),
            };
            let mut out = Vec::new();
            for item in t.iter().map_err(unavailable)? {
                let (k, v) = item.map_err(unavailable)?;
                match decode(v.value()) {
                    Ok(doc) => out.push(doc),
                    Err(reason) => undecodable(&counter, collection, k.value(), &reason),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn load(&self, keys: &[DocKey]) -> PortResult<Vec<Option<Document>>> {
        let (db, counter) = (self.db.clone(), self.undecodable.clone());
        let keys = keys.to_vec();
        blocking(move || {
            let tx = db.begin_read().map_err(unavailable)?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let t = match tx.open_table(table(key.collection())) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => {
                        out.push(None);
                        continue;
                    }
                    Err(e) => return Err(unavailable(e)),
                };
                let id = key.doc_id();
                out.push(match t.get(id.as_str()).map_err(unavailable)? {
                    Some(v) => match decode(v.value()) {
                        Ok(doc) => Some(doc),
                        Err(reason) => {
                            undecodable(&counter, key.collection(), &id, &reason);
                            None
                        }
                    },
                    None => None,
                });
            }
            Ok(out)
        })
        .await
    }

    fn undecodable_documents(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }

    async fn write(&self, docs: Vec<Document>) -> PortResult<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_write().map_err(unavailable)?;
            for doc in docs {
                let key = doc.key();
                let bytes = encode(&doc)?;
                let mut t = tx.open_table(table(key.collection())).map_err(unavailable)?;
                t.insert(key.doc_id().as_str(), bytes.as_slice()).map_err(unavailable)?;
                if let Document::Metric(m) = &doc {
                    let mut index = tx.open_table(SERIES).map_err(unavailable)?;
                    let id = key.doc_id();
                    if m.removed {
                        index.remove(id.as_str()).map_err(unavailable)?;
                    } else {
                        index.insert(id.as_str(), encode_labels(&m.labels)?.as_slice()).map_err(unavailable)?;
                    }
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Option<(tempfile::TempDir, EmbeddedStore)> {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        Some((dir, store))
    }

    mod suite {
        use super::*;
        slamon_domain::read_model_store_suite!(store());
    }

    #[tokio::test]
    async fn documents_of_the_first_release_still_read_and_a_corrupt_one_is_skipped() {
        let (_dir, store) = store().unwrap();
        let labels: slamon_domain::Labels = [("__name__", "up")].into_iter().collect();
        let view = slamon_domain::SlaSamplesView {
            id: labels.id(),
            labels: labels.clone(),
            samples: vec![slamon_domain::Sample::new(1, 2.0)],
            scoring: Default::default(),
            applied: slamon_domain::Position::new(0, 1),
        };
        let json = serde_json::to_vec(&Document::SlaSamples(view.clone())).unwrap();
        let bad = [("__name__", "bad")].into_iter().collect::<slamon_domain::Labels>().id();
        // what the first release wrote for a NaN sample: JSON null where a number belongs
        let corrupt = br#"{"SlaSamples":{"samples":[{"ts_ms":1,"value":null}]}}"#.to_vec();
        let db = store.db.clone();
        blocking(move || {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut t = tx.open_table(table(Collection::SlaSamples)).map_err(unavailable)?;
                t.insert(labels.id().to_string().as_str(), json.as_slice()).map_err(unavailable)?;
                t.insert(bad.to_string().as_str(), corrupt.as_slice()).map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
        .unwrap();
        assert_eq!(store.sla_samples(&view.id).await.unwrap(), Some(view.clone()), "JSON of the first release reads");
        assert_eq!(store.sla_samples(&bad).await.unwrap(), None, "a corrupt document is absent, not an error");
        assert_eq!(store.all(Collection::SlaSamples).await.unwrap(), vec![Document::SlaSamples(view)]);
        assert_eq!(store.undecodable_documents(), 2, "each skip is counted");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Every `f64` a sample can hold reads back as written (NaN as a NaN).
        #[test]
        fn every_number_round_trips(values in proptest::collection::vec(proptest::num::f64::ANY, 1..20)) {
            let (_dir, store) = store().unwrap();
            let labels: slamon_domain::Labels = [("__name__", "x")].into_iter().collect();
            let samples: Vec<slamon_domain::Sample> =
                values.iter().enumerate().map(|(i, v)| slamon_domain::Sample::new(i as i64, *v)).collect();
            let view = slamon_domain::SlaSamplesView {
                id: labels.id(),
                labels,
                samples,
                scoring: Default::default(),
                applied: slamon_domain::Position::new(0, 1),
            };
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let read = runtime.block_on(async {
                store.write(vec![Document::SlaSamples(view.clone())]).await.unwrap();
                store.sla_samples(&view.id).await.unwrap().unwrap()
            });
            for (a, b) in view.samples.iter().zip(&read.samples) {
                proptest::prop_assert!(a.value.to_bits() == b.value.to_bits() || (a.value.is_nan() && b.value.is_nan()), "{} read as {}", a.value, b.value);
            }
            proptest::prop_assert_eq!(read.samples.len(), view.samples.len());
        }
    }

    #[tokio::test]
    async fn a_finished_rebuild_leaves_no_file_behind() {
        let (dir, store) = store().unwrap();
        store.begin_rebuild().await.unwrap().swap_in().await.unwrap();
        store.begin_rebuild().await.unwrap().discard().await.unwrap();
        assert!(!dir.path().join("store.redb.rebuild").exists());
    }
}
