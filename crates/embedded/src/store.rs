//! The read models in redb: one table per collection, documents as JSON by id.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use slamon_domain::{
    Collection, DocKey, Document, MetricFilter, MetricView, PortError, PortResult, ReadModelStore, Rebuild,
    RebuildableStore,
};

use crate::{blocking, decode, encode, unavailable};

fn table(c: Collection) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(c.name())
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

impl EmbeddedStore {
    /// Opens (or creates) the store in the redb file at `path`.
    ///
    /// # Errors
    /// [`PortError::Other`] when the file cannot be opened, e.g. another process holds it.
    pub fn open(path: &Path) -> PortResult<Self> {
        let db = Database::create(path)
            .map_err(|e| PortError::Other(format!("cannot open store {}: {e}", path.display())))?;
        Ok(Self { db: Arc::new(db), path: path.to_owned(), undecodable: Arc::default() })
    }

    /// Replaces every collection of this store with `rebuilt`'s in one write transaction:
    /// readers see the old or the new read models, never a mix.
    async fn copy_from(&self, rebuilt: &EmbeddedStore) -> PortResult<()> {
        let (db, source) = (self.db.clone(), rebuilt.db.clone());
        blocking(move || {
            let read = source.begin_read().map_err(unavailable)?;
            let tx = db.begin_write().map_err(unavailable)?;
            for c in Collection::ALL {
                tx.delete_table(table(c)).map_err(unavailable)?;
                let from = match read.open_table(table(c)) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => continue,
                    Err(e) => return Err(unavailable(e)),
                };
                let mut to = tx.open_table(table(c)).map_err(unavailable)?;
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
        let all = self.all(Collection::Metrics).await?;
        let live: Vec<MetricView> = all
            .into_iter()
            .filter_map(|d| match d {
                Document::Metric(m) if !m.removed && filter.matches(&m.labels) => Some(m),
                _ => None,
            })
            .collect();
        Ok(filter.page(live))
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
