//! A durable, single-partition event log per topic, with consumer-group positions.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use slamon_domain::{EventLog, LogConsumer, LogRecord, PortError, PortResult, Position};
use tokio::sync::watch;

use crate::{blocking, unavailable};

/// `offset → (timestamp ms, key, value)`.
type LogTable<'a> = TableDefinition<'a, u64, (i64, &'static str, &'static [u8])>;
/// `group/topic → next offset to read`.
const OFFSETS: TableDefinition<&str, u64> = TableDefinition::new("consumer_offsets");

fn table_name(topic: &str) -> String {
    format!("log/{topic}")
}

/// The embedded event log.
#[derive(Clone)]
pub struct EmbeddedLog {
    db: Arc<Database>,
    /// The end offset of each topic, for consumers waiting for new records.
    ends: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl EmbeddedLog {
    pub fn open(path: &Path) -> PortResult<Self> {
        let db = Database::create(path)
            .map_err(|e| PortError::Other(format!("cannot open event log {}: {e}", path.display())))?;
        Ok(Self { db: Arc::new(db), ends: Arc::default() })
    }

    fn end_sender(&self, topic: &str, end: u64) -> watch::Sender<u64> {
        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        ends.entry(topic.to_owned()).or_insert_with(|| watch::channel(end).0).clone()
    }

    /// The offset the next append to `topic` gets (= the number of records).
    pub async fn end_offset(&self, topic: &str) -> PortResult<u64> {
        let db = self.db.clone();
        let name = table_name(topic);
        blocking(move || end_offset(&db, &name)).await
    }
}

fn end_offset(db: &Database, name: &str) -> PortResult<u64> {
    let tx = db.begin_read().map_err(unavailable)?;
    let def: LogTable = TableDefinition::new(name);
    match tx.open_table(def) {
        Ok(t) => Ok(t.last().map_err(unavailable)?.map(|(k, _)| k.value() + 1).unwrap_or(0)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
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
        let name = table_name(topic);
        let now = slamon_domain::now_ms();
        let (first, end) = blocking(move || {
            let tx = db.begin_write().map_err(unavailable)?;
            let first;
            let end;
            {
                let def: LogTable = TableDefinition::new(&name);
                let mut t = tx.open_table(def).map_err(unavailable)?;
                first = t.last().map_err(unavailable)?.map(|(k, _)| k.value() + 1).unwrap_or(0);
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
        let (k, name) = (key.clone(), table_name(topic));
        let (next, end) = blocking(move || Ok((committed(&db, &k)?, end_offset(&db, &name)?))).await?;
        let ends = self.end_sender(topic, end).subscribe();
        Ok(Box::new(EmbeddedConsumer { db: self.db.clone(), table: table_name(topic), key, next, ends }))
    }
}

/// One consumer of a group on one topic of the embedded log.
pub struct EmbeddedConsumer {
    db: Arc<Database>,
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
        let (key, name) = (self.key.clone(), self.table.clone());
        blocking(move || Ok(end_offset(&db, &name)?.saturating_sub(committed(&db, &key)?))).await
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
