//! The batch runner of the projection: applies decoded events to the documents they
//! target and writes every changed document in one bulk write, reading from the store
//! only what its [`DocCache`] does not hold. The projector and `replay` both run it, so
//! a live projection and a rebuild cannot disagree. It needs only the
//! [`ReadModelStore`] port: no runtime.

use std::collections::{BTreeMap, HashMap};

use crate::events::EventEnvelope;
use crate::ports::{PortError, Position, ReadModelStore};
use crate::projection::{apply, targets, Outcome};
use crate::views::{DocKey, Document};

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events that changed at least one document.
    pub applied: u64,
    /// Events every target of which had already applied them (redelivered).
    pub skipped: u64,
    /// Records sent to the dead-letter topic (counted by the projector, 0 here).
    pub dead_lettered: u64,
}

/// Documents as this process last wrote them, so that a batch reads from the store only
/// the documents it has not written itself (reads cost a projector batch as much as its
/// write). Valid while this process is the only writer of them: every document is
/// written only from events of one key (its metric id, or the SLA set's), hence of one
/// partition, so the projector drops the cache whenever its partitions may have changed
/// ([`crate::LogConsumer::assignment_epoch`]); a replay owns its fresh collections outright.
/// Bounded: past `capacity` documents it starts over.
#[derive(Debug)]
pub struct DocCache {
    docs: HashMap<DocKey, Document>,
    capacity: usize,
    /// Every document of the store is here (a fresh store): a miss is an absent document.
    complete: bool,
}

/// Documents a cache holds by default (a metric document takes about 2 kB).
pub const CACHE_CAPACITY: usize = 20_000;

impl DocCache {
    /// A cache in front of a store that may already hold documents.
    pub fn new(capacity: usize) -> Self {
        Self { docs: HashMap::new(), capacity, complete: false }
    }

    /// A cache in front of an empty store that only this process writes.
    pub fn for_fresh_store(capacity: usize) -> Self {
        Self { complete: true, ..Self::new(capacity) }
    }

    /// Forgets everything (the store may have been written by someone else).
    pub fn clear(&mut self) {
        self.docs.clear();
        self.complete = false;
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether it holds no document.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    fn remember(&mut self, written: Vec<Document>) {
        if self.docs.len() + written.len() > self.capacity {
            self.clear();
        }
        if written.len() <= self.capacity {
            self.docs.extend(written.into_iter().map(|d| (d.key(), d)));
        }
    }
}

/// Applies decoded events, in order, to the documents they target and writes every
/// changed document in one bulk write; reads from the store only what `cache` does not
/// hold, and remembers what it wrote once the write succeeded. The projector and
/// `replay` both use it.
///
/// # Errors
/// The store's [`PortError`] when it cannot load or write; then nothing was written and
/// the cache is as before.
pub async fn project_batch(
    store: &dyn ReadModelStore,
    cache: &mut DocCache,
    events: &[(EventEnvelope, Position)],
) -> Result<BatchOutcome, PortError> {
    let mut keys: Vec<DocKey> = events.iter().flat_map(|(e, _)| targets(&e.event)).collect();
    keys.sort();
    keys.dedup();
    let mut docs: BTreeMap<DocKey, Option<Document>> = BTreeMap::new();
    let mut missing = Vec::new();
    for key in keys {
        match cache.docs.get(&key) {
            Some(doc) => {
                docs.insert(key, Some(doc.clone()));
            }
            None if cache.complete => {
                docs.insert(key, None);
            }
            None => missing.push(key),
        }
    }
    if !missing.is_empty() {
        let loaded = store.load(&missing).await?;
        docs.extend(missing.into_iter().zip(loaded));
    }
    let mut changed: BTreeMap<DocKey, Document> = BTreeMap::new();
    let mut outcome = BatchOutcome::default();
    for (env, position) in events {
        let mut any = false;
        let mut skipped = false;
        for key in targets(&env.event) {
            let current = docs.get(&key).cloned().flatten();
            match apply(&key, current, env, *position) {
                Outcome::Applied(doc) => {
                    docs.insert(key, Some(doc.clone()));
                    changed.insert(key, doc);
                    any = true;
                }
                Outcome::Skipped => skipped = true,
                Outcome::Nothing => {}
            }
        }
        if any {
            outcome.applied += 1;
        } else if skipped {
            outcome.skipped += 1;
        }
    }
    let written: Vec<Document> = changed.into_values().collect();
    store.write(written.clone()).await?;
    cache.remember(written);
    Ok(outcome)
}
