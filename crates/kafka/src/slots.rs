//! ETL instances share the series through a Kafka consumer group (SPEC §11): each joins
//! group `group` on a small coordination topic whose partitions are the slots of the
//! metric-id hash ([`slamon_domain::MetricId::slot`]). The partitions the group assigns a
//! member are the slots it owns; when members come and go, Kafka's rebalance moves them.
//! Nothing is written to the topic: the group's membership protocol (join, sync,
//! heartbeats, leave) is all that is used, so the work is split by the distributed
//! engine slamon already runs on, not by one of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::TopicPartitionList;
use slamon_domain::{PortError, PortResult};
use tokio::sync::watch;

use crate::{member_config, unavailable, KafkaConfig};

/// The slots a member of the group owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAssignment {
    /// Joining, or in a rebalance: the slots may be moving between members, so none is
    /// known to be this member's.
    Settling,
    /// The slots (partitions of the coordination topic) assigned to this member, sorted,
    /// possibly none (more members than slots), of `slots` in all.
    Owned { slots: u32, owned: Vec<u32> },
}

/// Publishes every assignment change of the member.
struct SlotContext {
    topic: String,
    /// The partitions of the topic (set before subscribing).
    slots: std::sync::atomic::AtomicU32,
    assignment: watch::Sender<SlotAssignment>,
    rebalances: Arc<AtomicU64>,
}

impl ClientContext for SlotContext {}

impl ConsumerContext for SlotContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            self.assignment.send_replace(SlotAssignment::Settling);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        let next = match rebalance {
            Rebalance::Assign(list) => {
                SlotAssignment::Owned { slots: self.slots.load(Ordering::SeqCst), owned: slots_in(list, &self.topic) }
            }
            Rebalance::Revoke(_) => SlotAssignment::Settling,
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "ETL slot group: rebalance failed, waiting for the next one");
                SlotAssignment::Settling
            }
        };
        tracing::info!(assignment = ?next, topic = self.topic, "ETL slots assigned");
        self.assignment.send_replace(next);
    }
}

fn slots_in(list: &TopicPartitionList, topic: &str) -> Vec<u32> {
    let mut slots: Vec<u32> = list
        .elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .filter_map(|e| u32::try_from(e.partition()).ok())
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// One member of the ETL's slot group. It stays in the group while it lives (a task
/// keeps polling, which serves the group's heartbeats and rebalances); dropping it
/// leaves the group at once, so the others take its slots without waiting for its
/// session to time out.
pub struct SlotGroup {
    slots: u32,
    assignment: watch::Receiver<SlotAssignment>,
    rebalances: Arc<AtomicU64>,
    consumer: Arc<StreamConsumer<SlotContext>>,
    poller: tokio::task::JoinHandle<()>,
}

impl SlotGroup {
    /// Joins consumer group `group` on `topic`, whose partition count is the number of
    /// slots. Returns before the first assignment (see [`SlotGroup::assignment`]).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when Kafka cannot be reached or the topic has no
    /// partitions (it does not exist); [`PortError::Other`] when the consumer cannot be
    /// made.
    pub async fn join(config: &KafkaConfig, group: &str, topic: &str) -> PortResult<SlotGroup> {
        let (tx, rx) = watch::channel(SlotAssignment::Settling);
        let rebalances = Arc::new(AtomicU64::new(0));
        let mut client = member_config(config, group);
        client
            .set("auto.offset.reset", "latest")
            .set("heartbeat.interval.ms", "3000")
            // an even split of one topic's partitions, the same on every member
            .set("partition.assignment.strategy", "range");
        let consumer: StreamConsumer<SlotContext> = client
            .create_with_context(SlotContext {
                topic: topic.to_owned(),
                slots: std::sync::atomic::AtomicU32::new(0),
                assignment: tx,
                rebalances: rebalances.clone(),
            })
            .map_err(|e| PortError::Other(format!("kafka consumer of the ETL slots: {e}")))?;
        let consumer = Arc::new(consumer);
        let slots = {
            let (consumer, topic, timeout) = (consumer.clone(), topic.to_owned(), config.timeout);
            tokio::task::spawn_blocking(move || {
                let metadata = consumer.fetch_metadata(Some(&topic), timeout).map_err(unavailable)?;
                Ok::<usize, PortError>(metadata.topics().iter().map(|t| t.partitions().len()).sum())
            })
            .await
            .map_err(|e| PortError::Other(format!("kafka metadata: {e}")))??
        };
        if slots == 0 {
            return Err(PortError::Unavailable(format!(
                "kafka: the ETL slots topic {topic} has no partitions (does it exist?)"
            )));
        }
        consumer.context().slots.store(slots as u32, Ordering::SeqCst);
        consumer.subscribe(&[topic]).map_err(unavailable)?;
        let poller = tokio::spawn(poll(consumer.clone()));
        Ok(SlotGroup { slots: slots as u32, assignment: rx, rebalances, consumer, poller })
    }

    /// The number of slots (the coordination topic's partitions).
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The member's assignment, updated at every rebalance.
    pub fn assignment(&self) -> watch::Receiver<SlotAssignment> {
        self.assignment.clone()
    }

    /// Rebalances this member has been through.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }
}

impl Drop for SlotGroup {
    fn drop(&mut self) {
        self.poller.abort();
        // leave the group now: the others get the slots at the next rebalance
        self.consumer.unsubscribe();
    }
}

/// Polls for as long as the member lives: the rebalance callbacks run inside the poll.
/// Nothing is written to the topic; a record that is (by mistake) is ignored.
async fn poll(consumer: Arc<StreamConsumer<SlotContext>>) {
    let mut warned: Option<std::time::Instant> = None;
    loop {
        match consumer.recv().await {
            Ok(_) => {}
            Err(KafkaError::MessageConsumptionFatal(e)) => {
                // owning nothing is safe; owning what another may own now is not
                consumer.context().assignment.send_replace(SlotAssignment::Settling);
                tracing::error!(error = %e, "ETL slot group: the consumer cannot go on");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    warned = Some(std::time::Instant::now());
                    tracing::warn!(error = %e, "ETL slot group: transient error, librdkafka retries");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_are_the_partitions_of_the_topic_sorted() {
        let mut list = TopicPartitionList::new();
        for p in [5, 1, 3] {
            list.add_partition("slots", p);
        }
        list.add_partition("other", 2);
        assert_eq!(slots_in(&list, "slots"), vec![1, 3, 5]);
    }
}
