//! Which series this ETL instance computes. Alone (the embedded log) it computes every
//! series; on Kafka the instances share the series by slots of the metric-id hash, the
//! partitions a consumer group assigns each (see [`slamon_kafka::SlotGroup`]).

use std::sync::Arc;
use std::time::Duration;

use slamon_domain::MetricId;
pub use slamon_kafka::SlotAssignment;
use tokio::sync::watch;

/// Where the ETL learns its share of the series. Cloned by the metadata task.
#[derive(Clone)]
pub enum Ownership {
    /// Every series: a single instance.
    All,
    /// The series of the slots assigned to this member of the group.
    Shared {
        /// The member's assignment.
        assignment: watch::Receiver<SlotAssignment>,
        /// The membership (the last clone dropped leaves the group); `None` when the
        /// assignment comes from elsewhere (tests).
        membership: Option<Arc<Membership>>,
    },
}

/// Keeps the task that joins the group and holds the membership; dropping it ends the
/// task, which leaves the group.
pub struct Membership(tokio::task::AbortHandle);

impl Drop for Membership {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The first wait before joining the group again after a failure; it doubles up to
/// [`MAX_JOIN_BACKOFF`].
const JOIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_JOIN_BACKOFF: Duration = Duration::from_secs(30);

impl Ownership {
    /// The share of a member of a group joined by `join` in a task of its own, again and
    /// again (backoff 1 s doubling to 30 s) while it fails: an ETL started while Kafka is
    /// unreachable runs and computes nothing (the slots are settling) until it has
    /// joined, instead of exiting. `join` gives what keeps the membership alive and its
    /// assignment.
    pub fn joining<G, F, Fut, E>(join: F) -> Self
    where
        G: Send + 'static,
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(G, watch::Receiver<SlotAssignment>), E>> + Send,
        E: std::fmt::Display,
    {
        let (tx, rx) = watch::channel(SlotAssignment::Settling);
        let task = tokio::spawn(async move {
            let mut backoff = JOIN_BACKOFF;
            let (_member, mut assignment) = loop {
                match join().await {
                    Ok(joined) => break joined,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "cannot join the ETL slot group yet: no series is computed until it is joined")
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_JOIN_BACKOFF);
            };
            loop {
                tx.send_replace(assignment.borrow_and_update().clone());
                if assignment.changed().await.is_err() {
                    tx.send_replace(SlotAssignment::Settling);
                    return;
                }
            }
        });
        Ownership::Shared { assignment: rx, membership: Some(Arc::new(Membership(task.abort_handle()))) }
    }

    /// What is owned now; `None` while the slots are being assigned.
    pub fn current(&self) -> Option<Owned> {
        match self {
            Ownership::All => Some(Owned::all()),
            Ownership::Shared { assignment, .. } => match &*assignment.borrow() {
                SlotAssignment::Settling => None,
                SlotAssignment::Owned { slots, owned } => Some(Owned::slots(*slots, owned)),
            },
        }
    }

    /// What is owned once the assignment has settled, waiting at most `wait` for it;
    /// `None` when it has not settled by then.
    pub async fn settled(&self, wait: Duration) -> Option<Owned> {
        if let Some(owned) = self.current() {
            return Some(owned);
        }
        let Ownership::Shared { assignment, .. } = self else { return Some(Owned::all()) };
        let mut assignment = assignment.clone();
        let settled =
            tokio::time::timeout(wait, assignment.wait_for(|a| matches!(a, SlotAssignment::Owned { .. }))).await;
        match settled {
            Ok(Ok(_)) => self.current(),
            _ => None,
        }
    }
}

/// The slots owned at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    slots: u32,
    /// Per slot, whether it is owned; `None`: every series.
    owned: Option<Vec<bool>>,
}

impl Owned {
    /// Every series.
    pub fn all() -> Self {
        Owned { slots: 1, owned: None }
    }

    /// No series (before the first assignment; any slot count: the first assignment
    /// counts as acquiring every slot it owns).
    pub fn none(slots: u32) -> Self {
        Owned { slots: slots.max(1), owned: Some(vec![false; slots.max(1) as usize]) }
    }

    /// `owned` of `slots` slots (slots out of range are ignored).
    pub fn slots(slots: u32, owned: &[u32]) -> Self {
        let mut flags = vec![false; slots.max(1) as usize];
        for s in owned {
            if let Some(f) = flags.get_mut(*s as usize) {
                *f = true;
            }
        }
        Owned { slots: slots.max(1), owned: Some(flags) }
    }

    /// Whether the series `id` is computed here.
    pub fn owns(&self, id: &MetricId) -> bool {
        match &self.owned {
            None => true,
            Some(flags) => flags[id.slot(self.slots) as usize],
        }
    }

    /// Whether every series is (one instance, or every slot assigned here).
    pub fn is_all(&self) -> bool {
        self.owned.as_ref().is_none_or(|flags| flags.iter().all(|f| *f))
    }

    /// How many slots are owned (of [`Owned::slot_count`]).
    pub fn count(&self) -> u32 {
        match &self.owned {
            None => self.slots,
            Some(flags) => flags.iter().filter(|f| **f).count() as u32,
        }
    }

    /// The number of slots.
    pub fn slot_count(&self) -> u32 {
        self.slots
    }

    /// The slots owned here and not in `before`: what was just acquired (everything when
    /// `before` counts other slots).
    pub fn acquired_since(&self, before: &Owned) -> Owned {
        if before.slots != self.slots {
            return self.clone();
        }
        match (&self.owned, &before.owned) {
            (_, None) => Owned::none(self.slots),
            (None, Some(old)) => Owned { slots: self.slots, owned: Some(old.iter().map(|o| !o).collect()) },
            (Some(now), Some(old)) => {
                Owned { slots: self.slots, owned: Some(now.iter().zip(old).map(|(n, o)| *n && !o).collect()) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slamon_domain::Labels;

    fn id(i: usize) -> MetricId {
        Labels::from_iter([("__name__", "m".to_owned()), ("i", i.to_string())]).id()
    }

    #[test]
    fn the_shares_of_the_members_cover_every_series_once() {
        let a = Owned::slots(16, &(0..8).collect::<Vec<_>>());
        let b = Owned::slots(16, &(8..16).collect::<Vec<_>>());
        for i in 0..1000 {
            assert!(a.owns(&id(i)) ^ b.owns(&id(i)), "series {i}");
        }
        assert!(!a.is_all());
        assert!(Owned::slots(4, &[0, 1, 2, 3]).is_all());
        assert!(Owned::all().owns(&id(3)));
    }

    #[test]
    fn acquired_slots_are_the_new_ones() {
        let before = Owned::slots(4, &[0, 1]);
        let now = Owned::slots(4, &[1, 2]);
        assert_eq!(now.acquired_since(&before), Owned::slots(4, &[2]));
        assert_eq!(now.acquired_since(&Owned::none(4)), now);
        assert_eq!(Owned::all().acquired_since(&Owned::all()).count(), 0);
        assert_eq!(Owned::all().acquired_since(&Owned::none(1)).count(), 1);
    }

    #[tokio::test]
    async fn settling_is_waited_for_and_then_owned() {
        let (tx, rx) = watch::channel(SlotAssignment::Settling);
        let ownership = Ownership::Shared { assignment: rx, membership: None };
        assert_eq!(ownership.current(), None);
        assert_eq!(ownership.settled(Duration::from_millis(20)).await, None);
        let waiting = tokio::spawn({
            let o = ownership.clone();
            async move { o.settled(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send_replace(SlotAssignment::Owned { slots: 4, owned: vec![3] });
        assert_eq!(waiting.await.unwrap(), Some(Owned::slots(4, &[3])));
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_that_cannot_be_joined_yet_is_joined_again_and_nothing_is_owned_meanwhile() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let attempts = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = watch::channel(SlotAssignment::Owned { slots: 8, owned: vec![1, 2] });
        let ownership = Ownership::joining({
            let attempts = attempts.clone();
            move || {
                let (n, rx) = (attempts.fetch_add(1, Ordering::SeqCst), rx.clone());
                async move {
                    if n < 3 {
                        Err("kafka unreachable")
                    } else {
                        Ok(((), rx))
                    }
                }
            }
        });
        assert_eq!(ownership.current(), None, "nothing is owned before the group is joined");
        // three failures: 1 + 2 + 4 s of backoff
        assert_eq!(ownership.settled(Duration::from_secs(6)).await, None);
        assert_eq!(ownership.settled(Duration::from_secs(2)).await, Some(Owned::slots(8, &[1, 2])));
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        // a rebalance is forwarded; the last clone dropped ends the membership
        tx.send_replace(SlotAssignment::Settling);
        tokio::task::yield_now().await;
        assert_eq!(ownership.current(), None);
        drop(ownership);
    }
}
