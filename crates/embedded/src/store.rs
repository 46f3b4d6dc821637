//! The read models in redb: one table per collection, documents as JSON by id.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use slamon_domain::{Collection, DocKey, Document, MetricFilter, MetricView, PortError, PortResult, ReadModelStore};

use crate::{blocking, unavailable};

fn table(c: Collection) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(c.name())
}

fn decode(bytes: &[u8]) -> PortResult<Document> {
    serde_json::from_slice(bytes).map_err(|e| PortError::Invalid(format!("corrupt read-model document: {e}")))
}

/// The embedded read-model store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    pub fn open(path: &Path) -> PortResult<Self> {
        let db = Database::create(path)
            .map_err(|e| PortError::Other(format!("cannot open store {}: {e}", path.display())))?;
        Ok(Self { db: Arc::new(db) })
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
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = match tx.open_table(table(collection)) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(unavailable(e)),
            };
            let mut out = Vec::new();
            for item in t.iter().map_err(unavailable)? {
                let (_, v) = item.map_err(unavailable)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn load(&self, keys: &[DocKey]) -> PortResult<Vec<Option<Document>>> {
        let db = self.db.clone();
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
                out.push(match t.get(key.doc_id().as_str()).map_err(unavailable)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                });
            }
            Ok(out)
        })
        .await
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
                let bytes = serde_json::to_vec(&doc).map_err(|e| PortError::Invalid(e.to_string()))?;
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

    #[tokio::test]
    async fn passes_the_read_model_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        slamon_domain::suite::read_model_store(&store).await;
    }
}
