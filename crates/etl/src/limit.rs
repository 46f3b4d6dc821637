//! An adaptive limit on the statistics queries a cycle has in flight at Prometheus.
//!
//! The limit follows Prometheus's answer times the way Vector's adaptive request
//! concurrency does (additive increase, multiplicative decrease, driven by round-trip
//! times against their past; vector.dev, "Adaptive Request Concurrency", 2020), with one
//! change for queries whose costs differ by orders of magnitude (a name of 100 series
//! over 1 h, one of 20 000 over 12 h): each answer is compared with the past answer
//! times of **the same query** (metric name and window), which every cycle asks again.
//!
//! The answers are taken in rounds of `limit` answers (one round trip of the window of
//! queries in flight). At the end of a round:
//! - when an answer said Prometheus is overloaded or unreachable (5xx, 429, timeout:
//!   [`PortError::is_retryable`](slamon_domain::PortError::is_retryable)), the limit is
//!   halved;
//! - when the round's answers took more than [`SLOWER`] times their past (the sums of
//!   both, so a big query weighs as much as it costs), it is cut by a quarter;
//! - otherwise it grows by one, up to the configured maximum.
//!
//! The past of a query is an exponentially weighted mean of its answer times (weight
//! [`PAST_WEIGHT`] to the newest); a query not asked in a cycle is forgotten.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// A round whose answers took more than this many times their past decreases the limit.
pub const SLOWER: f64 = 1.5;
/// Weight of the newest answer time in a query's past (an exponentially weighted mean).
pub const PAST_WEIGHT: f64 = 0.3;
/// Factor of the limit after a round with an overloaded answer.
const OVERLOADED_FACTOR: f64 = 0.5;
/// Factor of the limit after a round of slow answers.
const SLOW_FACTOR: f64 = 0.75;

/// The adaptive limit on queries in flight, between 1 and `max`, keyed by query `K`.
pub struct QueryLimit<K> {
    max: usize,
    state: Mutex<State<K>>,
    freed: Notify,
}

struct State<K> {
    limit: usize,
    in_flight: usize,
    /// Per query, its past answer time in seconds and whether it was answered this cycle.
    past: HashMap<K, (f64, bool)>,
    round: Round,
}

#[derive(Default)]
struct Round {
    answers: usize,
    /// Seconds of the round's answers that have a past, and the sum of their pasts.
    elapsed: f64,
    past: f64,
    overloaded: bool,
}

impl<K: Hash + Eq> QueryLimit<K> {
    /// A limit that starts at `max` (at least 1) and adapts below it.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            max,
            state: Mutex::new(State { limit: max, in_flight: 0, past: HashMap::new(), round: Round::default() }),
            freed: Notify::new(),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// The configured maximum.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Waits until fewer than the limit are in flight; the permit counts as in flight
    /// until it is settled or dropped (a dropped permit is no answer: it says nothing of
    /// Prometheus).
    pub async fn acquire(&self) -> Permit<'_, K> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // registered before the check, so a permit freed in between is not missed
            freed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.in_flight < state.limit {
                    state.in_flight += 1;
                    return Permit { limit: self, settled: false };
                }
            }
            freed.await;
        }
    }

    /// Forgets the queries not answered since the last call (a metric name gone, a share
    /// that moved): call at the end of each cycle.
    pub fn end_cycle(&self) {
        let mut state = self.lock();
        state.past.retain(|_, (_, answered)| std::mem::take(answered));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // the state stays consistent whatever panicked while holding it
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn settle(&self, outcome: Option<(K, Duration)>, overloaded: bool) {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.in_flight -= 1;
        if let Some((key, elapsed)) = outcome {
            let secs = elapsed.as_secs_f64();
            match state.past.get_mut(&key) {
                Some((past, answered)) => {
                    state.round.elapsed += secs;
                    state.round.past += *past;
                    *past = PAST_WEIGHT * secs + (1.0 - PAST_WEIGHT) * *past;
                    *answered = true;
                }
                None => {
                    state.past.insert(key, (secs, true));
                }
            }
        }
        state.round.overloaded |= overloaded;
        state.round.answers += 1;
        if state.round.answers >= state.limit {
            let round = std::mem::take(&mut state.round);
            let shrink = |limit: usize, factor: f64| ((limit as f64 * factor).floor() as usize).max(1);
            state.limit = if round.overloaded {
                shrink(state.limit, OVERLOADED_FACTOR)
            } else if round.past > 0.0 && round.elapsed > SLOWER * round.past {
                shrink(state.limit, SLOW_FACTOR)
            } else {
                (state.limit + 1).min(self.max)
            };
        }
        drop(guard);
        self.freed.notify_waiters();
    }
}

/// One query in flight; settle it with its outcome.
pub struct Permit<'a, K: Hash + Eq> {
    limit: &'a QueryLimit<K>,
    settled: bool,
}

impl<K: Hash + Eq> Permit<'_, K> {
    /// The query `key` was answered after `elapsed`.
    pub fn answered(mut self, key: K, elapsed: Duration) {
        self.settled = true;
        self.limit.settle(Some((key, elapsed)), false);
    }

    /// Prometheus was overloaded, unreachable or timed out.
    pub fn overloaded(mut self) {
        self.settled = true;
        self.limit.settle(None, true);
    }
}

impl<K: Hash + Eq> Drop for Permit<'_, K> {
    fn drop(&mut self) {
        if !self.settled {
            let mut state = self.limit.lock();
            state.in_flight -= 1;
            drop(state);
            self.limit.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `n` answers of query `key` in `elapsed`, one at a time.
    async fn answer(limit: &QueryLimit<u32>, keys: std::ops::Range<u32>, elapsed: Duration) {
        for key in keys {
            limit.acquire().await.answered(key, elapsed);
        }
    }

    #[tokio::test]
    async fn answers_as_fast_as_their_past_keep_the_limit_at_its_maximum() {
        let limit = QueryLimit::new(8);
        answer(&limit, 0..100, ms(100)).await;
        limit.end_cycle();
        answer(&limit, 0..100, ms(110)).await;
        assert_eq!(limit.limit(), 8);
    }

    #[tokio::test]
    async fn answers_slower_than_their_past_lower_the_limit_and_it_recovers() {
        let limit = QueryLimit::new(8);
        // each query's past: a big one (1 s) and small ones (10 ms)
        limit.acquire().await.answered(1000, ms(1000));
        answer(&limit, 0..50, ms(10)).await;
        limit.end_cycle();
        // the small ones as fast as before, the big one 3x slower: the round's total is
        // dominated by what it costs
        limit.acquire().await.answered(1000, ms(3000));
        answer(&limit, 0..7, ms(10)).await;
        assert_eq!(limit.limit(), 6, "8 x 0.75");
        // twenty times slower: down to 1 and not below
        answer(&limit, 0..50, ms(200)).await;
        assert_eq!(limit.limit(), 1);
        // back to what it was: grows by one a round (1 + 2 + … + 7 answers), up to the maximum
        answer(&limit, 0..50, ms(10)).await;
        assert_eq!(limit.limit(), 8);
    }

    #[tokio::test]
    async fn an_overloaded_answer_halves_the_limit() {
        let limit: QueryLimit<u32> = QueryLimit::new(8);
        limit.acquire().await.overloaded();
        answer(&limit, 0..7, ms(10)).await;
        assert_eq!(limit.limit(), 4);
        limit.acquire().await.overloaded();
        answer(&limit, 0..3, ms(10)).await;
        assert_eq!(limit.limit(), 2);
    }

    #[tokio::test]
    async fn queries_never_asked_before_say_nothing_of_answer_times() {
        let limit = QueryLimit::new(4);
        answer(&limit, 0..4, ms(10)).await;
        limit.end_cycle();
        // new queries, however slow, have no past to be slower than
        answer(&limit, 100..200, ms(5000)).await;
        assert_eq!(limit.limit(), 4);
        // the first ones not asked in the last cycle are forgotten
        limit.end_cycle();
        answer(&limit, 0..4, ms(5000)).await;
        assert_eq!(limit.limit(), 4);
    }

    #[tokio::test]
    async fn no_more_than_the_limit_are_in_flight_and_a_dropped_permit_frees_its_place() {
        let limit: QueryLimit<u32> = QueryLimit::new(2);
        let a = limit.acquire().await;
        let b = limit.acquire().await;
        let third = limit.acquire();
        tokio::pin!(third);
        assert!(futures::poll!(third.as_mut()).is_pending());
        drop(a);
        let c = third.await;
        drop((b, c));
        // nothing was answered: the limit is unchanged
        assert_eq!(limit.limit(), 2);
    }
}
