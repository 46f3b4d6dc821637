//! A durable, single-partition event log per topic, with consumer-group positions.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use slamon_domain::{Document, EventLog, LogConsumer, LogRecord, LogSnapshot, PortError, PortResult, Position};
use tokio::sync::watch;

use crate::{blocking, decode, encode, unavailable};

/// `offset → (timestamp ms, key, value)`.
type LogTable<'a> = TableDefinition<'a, u64, (i64, &'static str, &'static [u8])>;
/// `group/topic → next offset to read`.
const OFFSETS: TableDefinition<&str, u64> = TableDefinition::new("consumer_offsets");

/// `topic → (next offset, taken at ms, documents)`: the snapshot that stands for the
/// topic's deleted records.
const SNAPSHOTS: TableDefinition<&str, (u64, i64, u64)> = TableDefinition::new("snapshots");

fn table_name(topic: &str) -> String {
    format!("log/{topic}")
}

/// `<collection>/<doc id> → document (CBOR)`: the documents of `topic`'s snapshot.
fn snapshot_table_name(topic: &str) -> String {
    format!("snapshot/{topic}")
}

/// Where a topic of the embedded log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicState {
    /// The offset of the oldest record kept (= `end` when none is).
    pub first: u64,
    /// The offset the next append gets.
    pub end: u64,
    /// The timestamp of the oldest record kept, in milliseconds since the Unix epoch.
    pub oldest_ms: Option<i64>,
    /// The offset the topic's snapshot covers up to (exclusive), if it has one.
    pub snapshot_next: Option<u64>,
}

/// The embedded event log.
#[derive(Clone)]
pub struct EmbeddedLog {
    db: Arc<Database>,
    /// The end offset of each topic, for consumers waiting for new records.
    ends: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

/// redb's page cache of the event log, in bytes (redb's default is 1 GiB, which the
/// process's memory would grow to as the log does): the projector reads what was just
/// appended, a replay reads each page once.
pub const LOG_CACHE_BYTES: usize = 32 << 20;

impl EmbeddedLog {
    pub fn open(path: &Path) -> PortResult<Self> {
        let db = redb::Builder::new()
            .set_cache_size(LOG_CACHE_BYTES)
            .create(path)
            .map_err(|e| PortError::Other(format!("cannot open event log {}: {e}", path.display())))?;
        Ok(Self { db: Arc::new(db), ends: Arc::default() })
    }

    fn end_sender(&self, topic: &str, end: u64) -> watch::Sender<u64> {
        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        ends.entry(topic.to_owned()).or_insert_with(|| watch::channel(end).0).clone()
    }

    /// The offset the next append to `topic` gets (= the number of records ever appended).
    pub async fn end_offset(&self, topic: &str) -> PortResult<u64> {
        let db = self.db.clone();
        let topic = topic.to_owned();
        blocking(move || end_offset(&db, &topic)).await
    }

    /// The next offset consumer group `group` reads from `topic` (0 for a new group).
    pub async fn committed(&self, group: &str, topic: &str) -> PortResult<u64> {
        let db = self.db.clone();
        let key = format!("{group}/{topic}");
        blocking(move || committed(&db, &key)).await
    }

    /// The oldest and next offsets of `topic`, the age of its oldest record and its snapshot.
    pub async fn state(&self, topic: &str) -> PortResult<TopicState> {
        let db = self.db.clone();
        let topic = topic.to_owned();
        blocking(move || {
            let tx = db.begin_read().map_err(unavailable)?;
            let name = table_name(&topic);
            let def: LogTable = TableDefinition::new(&name);
            let (first, end, oldest_ms) = match tx.open_table(def) {
                Ok(t) => {
                    let first = t.first().map_err(unavailable)?.map(|(k, v)| (k.value(), v.value().0));
                    let end = t.last().map_err(unavailable)?.map(|(k, _)| k.value() + 1);
                    match (first, end) {
                        (Some((first, ts)), Some(end)) => (first, end, Some(ts)),
                        _ => {
                            let next = snapshot_meta(&tx, &topic)?.map(|(next, _, _)| next).unwrap_or(0);
                            (next, next, None)
                        }
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => (0, 0, None),
                Err(e) => return Err(unavailable(e)),
            };
            let snapshot_next = snapshot_meta(&tx, &topic)?.map(|(next, _, _)| next);
            Ok(TopicState { first, end, oldest_ms, snapshot_next })
        })
        .await
    }

    /// Makes `documents` — the read models with every event of `topic` before offset
    /// `next` applied — the topic's snapshot, replacing the one it had, and deletes the
    /// records before `next`, in one transaction: a replay then starts from the snapshot
    /// ([`EventLog::snapshot`]). Returns how many records were deleted.
    ///
    /// # Errors
    /// [`PortError::Invalid`] when `next` lies beyond the end of the topic or before its
    /// snapshot; [`PortError::Unavailable`] when the log cannot be written (nothing changed).
    pub async fn compact(&self, topic: &str, next: u64, documents: Vec<Document>) -> PortResult<u64> {
        let encoded: Vec<(String, Vec<u8>)> =
            documents.iter().map(|d| Ok((d.key().to_string(), encode(d)?))).collect::<PortResult<_>>()?;
        let db = self.db.clone();
        let topic = topic.to_owned();
        let now = slamon_domain::now_ms();
        let last = self.end_offset(&topic).await?;
        if next > last {
            return Err(PortError::Invalid(format!(
                "a snapshot at offset {next} lies beyond the end ({last}) of {topic}"
            )));
        }
        blocking(move || {
            let tx = db.begin_write().map_err(unavailable)?;
            if let Some((earlier, _, _)) = snapshot_meta_mut(&tx, &topic)? {
                if next < earlier {
                    return Err(PortError::Invalid(format!(
                        "a snapshot at offset {next} would go back before the snapshot at {earlier} of {topic}"
                    )));
                }
            }
            let deleted;
            {
                let log_name = table_name(&topic);
                let def: LogTable = TableDefinition::new(&log_name);
                let mut log = tx.open_table(def).map_err(unavailable)?;
                let before = log.len().map_err(unavailable)?;
                log.retain_in(..next, |_, _| false).map_err(unavailable)?;
                deleted = before - log.len().map_err(unavailable)?;
                let name = snapshot_table_name(&topic);
                tx.delete_table(TableDefinition::<&str, &[u8]>::new(&name)).map_err(unavailable)?;
                let mut docs = tx.open_table(TableDefinition::<&str, &[u8]>::new(&name)).map_err(unavailable)?;
                for (key, bytes) in &encoded {
                    docs.insert(key.as_str(), bytes.as_slice()).map_err(unavailable)?;
                }
                let mut meta = tx.open_table(SNAPSHOTS).map_err(unavailable)?;
                meta.insert(topic.as_str(), (next, now, encoded.len() as u64)).map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(deleted)
        })
        .await
    }
}

fn snapshot_meta(tx: &redb::ReadTransaction, topic: &str) -> PortResult<Option<(u64, i64, u64)>> {
    match tx.open_table(SNAPSHOTS) {
        Ok(t) => Ok(t.get(topic).map_err(unavailable)?.map(|v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

fn snapshot_meta_mut(tx: &redb::WriteTransaction, topic: &str) -> PortResult<Option<(u64, i64, u64)>> {
    let t = tx.open_table(SNAPSHOTS).map_err(unavailable)?;
    let meta = t.get(topic).map_err(unavailable)?.map(|v| v.value());
    Ok(meta)
}

/// The offset the next append to `topic` gets: one past its last record, or, when a
/// snapshot deleted every record, the offset the snapshot covers up to (offsets never
/// start again, or consumers' committed positions would skip the new records).
fn end_offset(db: &Database, topic: &str) -> PortResult<u64> {
    let tx = db.begin_read().map_err(unavailable)?;
    let name = table_name(topic);
    let def: LogTable = TableDefinition::new(&name);
    let last = match tx.open_table(def) {
        Ok(t) => t.last().map_err(unavailable)?.map(|(k, _)| k.value() + 1),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(unavailable(e)),
    };
    let snapshot = snapshot_meta(&tx, topic)?.map(|(next, _, _)| next);
    Ok(last.unwrap_or(0).max(snapshot.unwrap_or(0)))
}

fn first_offset(db: &Database, name: &str) -> PortResult<Option<u64>> {
    let tx = db.begin_read().map_err(unavailable)?;
    let def: LogTable = TableDefinition::new(name);
    match tx.open_table(def) {
        Ok(t) => Ok(t.first().map_err(unavailable)?.map(|(k, _)| k.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

fn committed(db: &Database, key: &str) -> PortResult<u64> {
    let tx = db.begin_read().map_err(unavailable)?;
    match tx.open_table(OFFSETS) {
        Ok(t) => Ok(t.get(key).map_err(unavailable)?.map(|v| v.value()).unwrap_or(0)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(unavailable(e)),
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, topic: &str, records: Vec<(String, Vec<u8>)>) -> PortResult<Vec<Position>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let db = self.db.clone();
        let (name, topic_name) = (table_name(topic), topic.to_owned());
        let now = slamon_domain::now_ms();
        let (first, end) = blocking(move || {
            let tx = db.begin_write().map_err(unavailable)?;
            let first;
            let end;
            {
                let snapshot = snapshot_meta_mut(&tx, &topic_name)?.map(|(next, _, _)| next).unwrap_or(0);
                let def: LogTable = TableDefinition::new(&name);
                let mut t = tx.open_table(def).map_err(unavailable)?;
                first = t.last().map_err(unavailable)?.map(|(k, _)| k.value() + 1).unwrap_or(0).max(snapshot);
                let mut offset = first;
                for (key, value) in &records {
                    t.insert(offset, (now, key.as_str(), value.as_slice())).map_err(unavailable)?;
                    offset += 1;
                }
                end = offset;
            }
            tx.commit().map_err(unavailable)?;
            Ok((first, end))
        })
        .await?;
        self.end_sender(topic, end).send_replace(end);
        Ok((first..end).map(|o| Position::new(0, o as i64)).collect())
    }

    async fn consumer(&self, group: &str, topic: &str) -> PortResult<Box<dyn LogConsumer>> {
        let key = format!("{group}/{topic}");
        let db = self.db.clone();
        let (k, t) = (key.clone(), topic.to_owned());
        let (next, end) = blocking(move || Ok((committed(&db, &k)?, end_offset(&db, &t)?))).await?;
        let ends = self.end_sender(topic, end).subscribe();
        Ok(Box::new(EmbeddedConsumer {
            db: self.db.clone(),
            topic: topic.to_owned(),
            table: table_name(topic),
            key,
            next,
            ends,
        }))
    }

    async fn end_positions(&self, topic: &str) -> PortResult<Vec<Position>> {
        Ok(vec![Position::new(0, self.end_offset(topic).await? as i64)])
    }

    async fn committed_positions(&self, group: &str, topic: &str) -> PortResult<Vec<Position>> {
        Ok(vec![Position::new(0, self.committed(group, topic).await? as i64)])
    }

    async fn snapshot(&self, topic: &str) -> PortResult<Option<LogSnapshot>> {
        let db = self.db.clone();
        let topic = topic.to_owned();
        blocking(move || {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some((next, taken_at_ms, _)) = snapshot_meta(&tx, &topic)? else { return Ok(None) };
            let mut documents = Vec::new();
            match tx.open_table(TableDefinition::<&str, &[u8]>::new(&snapshot_table_name(&topic))) {
                Ok(t) => {
                    for item in t.iter().map_err(unavailable)? {
                        let (k, v) = item.map_err(unavailable)?;
                        let doc = decode(v.value()).map_err(|e| {
                            PortError::Other(format!("the snapshot of {topic} holds an undecodable {}: {e}", k.value()))
                        })?;
                        documents.push(doc);
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(unavailable(e)),
            }
            Ok(Some(LogSnapshot { next: Position::new(0, next as i64), taken_at_ms, documents }))
        })
        .await
    }
}

/// One consumer of a group on one topic of the embedded log.
pub struct EmbeddedConsumer {
    db: Arc<Database>,
    topic: String,
    table: String,
    key: String,
    /// The next offset this consumer reads (not necessarily committed).
    next: u64,
    ends: watch::Receiver<u64>,
}

impl EmbeddedConsumer {
    async fn read(&self, max: usize) -> PortResult<Vec<LogRecord>> {
        let db = self.db.clone();
        let name = self.table.clone();
        let from = self.next;
        blocking(move || {
            let tx = db.begin_read().map_err(unavailable)?;
            let def: LogTable = TableDefinition::new(&name);
            let t = match tx.open_table(def) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(unavailable(e)),
            };
            let mut out = Vec::new();
            for item in t.range(from..).map_err(unavailable)?.take(max) {
                let (k, v) = item.map_err(unavailable)?;
                let (ts, key, value) = v.value();
                out.push(LogRecord {
                    position: Position::new(0, k.value() as i64),
                    key: key.to_owned(),
                    value: value.to_vec(),
                    timestamp_ms: ts,
                });
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl LogConsumer for EmbeddedConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> PortResult<Vec<LogRecord>> {
        if *self.ends.borrow_and_update() <= self.next {
            // nothing new: wait for an append or the deadline
            let _ = tokio::time::timeout(wait, self.ends.changed()).await;
        }
        let records = self.read(max.max(1)).await?;
        if let Some(last) = records.last() {
            self.next = last.position.offset as u64 + 1;
        }
        Ok(records)
    }

    async fn commit(&mut self, next: &[Position]) -> PortResult<()> {
        let Some(pos) = next.iter().find(|p| p.partition == 0) else { return Ok(()) };
        let offset = pos.offset.max(0) as u64;
        let db = self.db.clone();
        let key = self.key.clone();
        blocking(move || {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut t = tx.open_table(OFFSETS).map_err(unavailable)?;
                t.insert(key.as_str(), offset).map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn lag(&mut self) -> PortResult<u64> {
        let db = self.db.clone();
        let (key, topic, name) = (self.key.clone(), self.topic.clone(), self.table.clone());
        blocking(move || {
            let end = end_offset(&db, &topic)?;
            // records a snapshot deleted are not waiting for anyone
            let first = first_offset(&db, &name)?.unwrap_or(end);
            Ok(end.saturating_sub(committed(&db, &key)?.max(first)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod suite {
        use super::*;
        slamon_domain::event_log_suite!(|_topic: String| async {
            let dir = tempfile::tempdir().unwrap();
            let log = EmbeddedLog::open(&dir.path().join("log.redb")).unwrap();
            Some((dir, log))
        });
    }

    #[tokio::test]
    async fn records_and_positions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.redb");
        {
            let log = EmbeddedLog::open(&path).unwrap();
            log.append("t", vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]).await.unwrap();
            let mut c = log.consumer("g", "t").await.unwrap();
            let got = c.poll(1, Duration::from_millis(10)).await.unwrap();
            assert_eq!(got[0].value, b"1");
            c.commit(&[Position::new(0, 1)]).await.unwrap();
        }
        let log = EmbeddedLog::open(&path).unwrap();
        assert_eq!(log.end_offset("t").await.unwrap(), 2);
        let mut c = log.consumer("g", "t").await.unwrap();
        let got = c.poll(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].key.as_str(), got[0].position), ("b", Position::new(0, 1)));
        assert_eq!(log.append("t", vec![("c".into(), vec![])]).await.unwrap(), vec![Position::new(0, 2)]);
    }

    #[tokio::test]
    async fn a_compaction_keeps_offsets_going_and_its_snapshot_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.redb");
        let doc = Document::SlaSetVersion(slamon_domain::SlaSetVersionView {
            set: slamon_domain::SlaSetVersion { version: 1, defined_at_ms: 5, entries: vec![] },
            applied: Position::new(0, 2),
        });
        {
            let log = EmbeddedLog::open(&path).unwrap();
            let records = (0..3).map(|i| (format!("k{i}"), vec![i as u8])).collect();
            log.append("t", records).await.unwrap();
            assert_eq!(log.snapshot("t").await.unwrap(), None);
            assert_eq!(log.compact("t", 3, vec![doc.clone()]).await.unwrap(), 3, "every record deleted");
            let err = log.compact("t", 2, vec![]).await.unwrap_err();
            assert!(matches!(err, PortError::Invalid(_)), "a snapshot never goes back: {err}");
            assert!(matches!(log.compact("t", 9, vec![]).await.unwrap_err(), PortError::Invalid(_)));
        }
        let log = EmbeddedLog::open(&path).unwrap();
        let snapshot = log.snapshot("t").await.unwrap().expect("kept");
        assert_eq!((snapshot.next, snapshot.documents), (Position::new(0, 3), vec![doc]));
        // offsets go on from the snapshot, so a committed position 3 reads the new record
        assert_eq!(log.end_offset("t").await.unwrap(), 3);
        assert_eq!(log.append("t", vec![("k".into(), vec![9])]).await.unwrap(), vec![Position::new(0, 3)]);
        let mut fresh = log.consumer("new", "t").await.unwrap();
        assert_eq!(fresh.lag().await.unwrap(), 1, "deleted records are not lag");
        let got = fresh.poll(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(got.iter().map(|r| r.position.offset).collect::<Vec<_>>(), vec![3]);
        let state = log.state("t").await.unwrap();
        assert_eq!((state.first, state.end, state.snapshot_next), (3, 4, Some(3)));
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log.redb")).unwrap();
        let mut c = log.consumer("g", "t").await.unwrap();
        let writer = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer.append("t", vec![("k".into(), b"x".to_vec())]).await.unwrap();
        });
        let started = std::time::Instant::now();
        let got = c.poll(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
