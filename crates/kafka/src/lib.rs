//! The event log on Kafka (SPEC §3): the producer has `acks=all` and idempotence on,
//! keys every record by its aggregate, and returns only once the broker acknowledged
//! it; consumers belong to a group with `enable.auto.commit=false` and commit exactly
//! the positions they are told, after the read models are written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
mod slots;

pub use slots::{SlotAssignment, SlotGroup};

use slamon_domain::{EventLog, GroupProgress, LagProbe, LogConsumer, LogRecord, PortError, PortResult, Position};

/// How slamon reaches Kafka.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`
    pub bootstrap_servers: String,
    /// Bound of one produce (delivery timeout) and of metadata calls.
    pub timeout: Duration,
    /// A stable name of this process among the group's members (static membership),
    /// e.g. the pod name; `None` for dynamic membership.
    pub instance_id: Option<String>,
    /// A consumer that does not poll for this long leaves its group (librdkafka's
    /// `max.poll.interval.ms`); see [`LogConsumer::max_poll_interval`].
    pub max_poll_interval: Duration,
}

/// Kafka's default `max.poll.interval.ms`.
pub const DEFAULT_MAX_POLL_INTERVAL: Duration = Duration::from_secs(300);

fn unavailable(e: KafkaError) -> PortError {
    PortError::Unavailable(format!("kafka: {e}"))
}

/// The largest record the producer sends (Kafka's default `message.max.bytes`).
pub const MAX_RECORD_BYTES: usize = 1_000_000;

/// A failed delivery: permanent when the record itself is refused (too large, invalid),
/// retriable otherwise (a broker down, a timeout).
fn delivery_error(e: KafkaError) -> PortError {
    use RDKafkaErrorCode as Code;
    match e.rdkafka_error_code() {
        Some(
            Code::MessageSizeTooLarge
            | Code::InvalidMessageSize
            | Code::InvalidMessage
            | Code::InvalidRecord
            | Code::InvalidRequiredAcks,
        ) => PortError::Invalid(format!("kafka refused the record: {e}")),
        _ => unavailable(e),
    }
}

/// The Kafka event log: a shared idempotent producer; consumers on demand.
#[derive(Clone)]
pub struct KafkaLog {
    config: KafkaConfig,
    producer: FutureProducer,
}

impl KafkaLog {
    pub fn new(config: KafkaConfig) -> PortResult<Self> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("max.in.flight.requests.per.connection", "5")
            .set("message.timeout.ms", config.timeout.as_millis().to_string())
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            // Kafka's default record limit, stated: a larger record fails for good (the
            // ETL bounds its events below it)
            .set("message.max.bytes", MAX_RECORD_BYTES.to_string())
            .create()
            .map_err(|e| PortError::Other(format!("kafka producer: {e}")))?;
        Ok(Self { config, producer })
    }

    /// Waits for every queued record to be delivered (shutdown).
    pub fn flush(&self) -> PortResult<()> {
        self.producer.flush(self.config.timeout).map_err(unavailable)
    }

    /// A consumer of `group` that never subscribes, so it never joins the group: for
    /// asking offsets.
    fn probe(&self, group: &str) -> PortResult<BaseConsumer> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.config.bootstrap_servers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| PortError::Other(format!("kafka consumer: {e}")))
    }

    fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = member_config(&self.config, group);
        c.set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("max.poll.interval.ms", self.config.max_poll_interval.as_millis().to_string())
            .set("isolation.level", "read_committed");
        c
    }
}

/// A member of consumer group `group` that commits only when told, with a 10 s session
/// and, when the config names this process, static membership.
fn member_config(config: &KafkaConfig, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000");
    if let Some(instance) = &config.instance_id {
        // static membership: a restarted member takes its partitions back at once
        // instead of waiting for the dead one's session to expire
        c.set("group.instance.id", format!("{group}-{instance}"));
    }
    c
}

/// Creates `topic` with `partitions` and `replication` (and `config` entries) unless it
/// exists. Idempotent.
pub async fn ensure_topic(
    config: &KafkaConfig,
    topic: &str,
    partitions: i32,
    replication: i32,
    entries: &[(&str, &str)],
) -> PortResult<bool> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .create()
        .map_err(|e| PortError::Other(format!("kafka admin: {e}")))?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (k, v) in entries {
        new = new.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(config.timeout)).request_timeout(Some(config.timeout));
    let results = admin.create_topics([&new], &options).await.map_err(unavailable)?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((t, code))) => Err(PortError::Unavailable(format!("kafka: cannot create topic {t}: {code}"))),
        None => Err(PortError::Other("kafka: no answer to create topic".into())),
    }
}

/// The configuration the broker reports for `topic`: `(name, value)` of every entry
/// that has a value.
///
/// # Errors
/// [`PortError::Unavailable`] when the broker cannot be asked or cannot describe the
/// topic.
pub async fn topic_config(config: &KafkaConfig, topic: &str) -> PortResult<HashMap<String, String>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .create()
        .map_err(|e| PortError::Other(format!("kafka admin: {e}")))?;
    let options = AdminOptions::new().request_timeout(Some(config.timeout));
    let results = admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options).await.map_err(unavailable)?;
    match results.into_iter().next() {
        Some(Ok(resource)) => Ok(resource.entries.into_iter().filter_map(|e| e.value.map(|v| (e.name, v))).collect()),
        Some(Err(code)) => Err(PortError::Unavailable(format!("kafka: cannot describe topic {topic}: {code}"))),
        None => Err(PortError::Unavailable(format!("kafka: no answer describing topic {topic}"))),
    }
}

/// The topic configuration that keeps every record forever: the event log is replayed
/// from offset 0 by `slamon replay`, so a record deleted by retention or compaction is a
/// fact lost from every rebuilt read model.
pub const KEEP_FOREVER: [(&str, &str); 3] =
    [("retention.ms", "-1"), ("retention.bytes", "-1"), ("cleanup.policy", "delete")];

/// Why a topic with `config` would lose history, or `None` when it keeps every record
/// (no time or size retention, no compaction).
pub fn history_loss(config: &HashMap<String, String>) -> Option<String> {
    let get = |k: &str| config.get(k).map(String::as_str);
    let mut reasons = Vec::new();
    if let Some(policy) = get("cleanup.policy") {
        if policy.split(',').any(|p| p.trim() == "compact") {
            reasons.push(format!("cleanup.policy={policy} (compaction keeps only the latest record of each key)"));
        }
    }
    for key in ["retention.ms", "retention.bytes"] {
        match get(key) {
            Some(v) if v.trim() == "-1" => {}
            Some(v) => reasons.push(format!("{key}={v}")),
            // not reported: the broker's default applies (7 days for retention.ms)
            None if key == "retention.ms" => reasons.push(format!("{key} unset (the broker's default, 7 days)")),
            None => {}
        }
    }
    (!reasons.is_empty()).then(|| reasons.join(", "))
}

#[async_trait]
impl EventLog for KafkaLog {
    async fn append(&self, topic: &str, records: Vec<(String, Vec<u8>)>) -> PortResult<Vec<Position>> {
        // enqueue all, then await every delivery: the idempotent producer keeps the order
        // of each partition, and nothing is reported durable before the broker says so
        let deliveries: Vec<_> = records
            .iter()
            .map(|(key, value)| {
                let record = FutureRecord::to(topic).key(key.as_str()).payload(value.as_slice());
                self.producer.send(record, self.config.timeout)
            })
            .collect();
        let mut positions = Vec::with_capacity(deliveries.len());
        for d in futures::future::join_all(deliveries).await {
            match d {
                Ok(delivery) => positions.push(Position::new(delivery.partition, delivery.offset)),
                Err((e, _)) => return Err(delivery_error(e)),
            }
        }
        Ok(positions)
    }

    async fn group_members(&self, group: &str) -> PortResult<Option<usize>> {
        let (client, group, timeout) = (self.producer.clone(), group.to_owned(), self.config.timeout);
        tokio::task::spawn_blocking(move || {
            let list = client.client().fetch_group_list(Some(&group), timeout).map_err(unavailable)?;
            Ok(Some(list.groups().iter().filter(|g| g.name() == group).map(|g| g.members().len()).sum()))
        })
        .await
        .map_err(|e| PortError::Other(format!("kafka group list: {e}")))?
    }

    async fn end_positions(&self, topic: &str) -> PortResult<Vec<Position>> {
        let probe = self.probe("slamon-probe")?;
        let (topic, timeout) = (topic.to_owned(), self.config.timeout);
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for p in partitions(&probe, &topic, timeout)? {
                let (_, high) = probe.fetch_watermarks(&topic, p, timeout).map_err(unavailable)?;
                out.push(Position::new(p, high));
            }
            Ok(out)
        })
        .await
        .map_err(|e| PortError::Other(format!("kafka watermarks: {e}")))?
    }

    async fn committed_positions(&self, group: &str, topic: &str) -> PortResult<Vec<Position>> {
        let probe = self.probe(group)?;
        let (topic, timeout) = (topic.to_owned(), self.config.timeout);
        tokio::task::spawn_blocking(move || {
            let mut list = TopicPartitionList::new();
            for p in partitions(&probe, &topic, timeout)? {
                list.add_partition(&topic, p);
            }
            let committed = probe.committed_offsets(list, timeout).map_err(unavailable)?;
            Ok(committed
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(Position::new(e.partition(), o)),
                    _ => None,
                })
                .collect())
        })
        .await
        .map_err(|e| PortError::Other(format!("kafka committed offsets: {e}")))?
    }

    async fn consumer(&self, group: &str, topic: &str) -> PortResult<Box<dyn LogConsumer>> {
        let epoch = Arc::new(AtomicU64::new(0));
        let consumer: StreamConsumer<EpochContext> = self
            .consumer_config(group)
            .create_with_context(EpochContext(epoch.clone()))
            .map_err(|e| PortError::Other(format!("kafka consumer: {e}")))?;
        consumer.subscribe(&[topic]).map_err(unavailable)?;
        Ok(Box::new(KafkaConsumer {
            consumer: Arc::new(consumer),
            topic: topic.to_owned(),
            timeout: self.config.timeout,
            warned: None,
            epoch,
            max_poll_interval: self.config.max_poll_interval,
        }))
    }
}

/// At most one warning this often about transient consumer errors (the rest at debug).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Counts rebalances: before and after each, the consumer's partitions may change.
struct EpochContext(Arc<AtomicU64>);

impl ClientContext for EpochContext {}

impl ConsumerContext for EpochContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// One member of a consumer group.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<EpochContext>>,
    topic: String,
    timeout: Duration,
    warned: Option<std::time::Instant>,
    epoch: Arc<AtomicU64>,
    max_poll_interval: Duration,
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> PortResult<Vec<LogRecord>> {
        let mut out = Vec::new();
        let mut deadline = tokio::time::Instant::now() + wait;
        while out.len() < max.max(1) {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(unavailable(e)),
                // librdkafka reports broker and transport trouble (a broker down, a
                // coordinator moving) as events while it recovers by itself: they are
                // news, not failures. Backing off on each of them would drain a queue of
                // dozens of such events one backoff at a time, long after the broker is back.
                Ok(Err(e)) => {
                    if self.warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        self.warned = Some(std::time::Instant::now());
                        tracing::warn!(error = %e, "kafka consumer: transient error, librdkafka retries");
                    } else {
                        tracing::debug!(error = %e, "kafka consumer: transient error");
                    }
                    if !out.is_empty() {
                        break;
                    }
                }
                Ok(Ok(m)) => {
                    out.push(record(&m));
                    // once something arrived, take only what follows right away
                    deadline = deadline.min(tokio::time::Instant::now() + Duration::from_millis(20));
                }
            }
        }
        Ok(out)
    }

    fn assignment_epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn max_poll_interval(&self) -> Option<Duration> {
        Some(self.max_poll_interval)
    }

    async fn commit(&mut self, next: &[Position]) -> PortResult<()> {
        let mut list = TopicPartitionList::new();
        for p in next {
            list.add_partition_offset(&self.topic, p.partition, Offset::Offset(p.offset)).map_err(unavailable)?;
        }
        tokio::task::block_in_place(|| self.consumer.commit(&list, CommitMode::Sync)).map_err(unavailable)
    }

    /// The group's lag over every partition of the topic (not only those assigned to
    /// this member, which are none until the group has formed).
    async fn lag(&mut self) -> PortResult<u64> {
        // librdkafka's metadata and offset calls block: keep them off the async workers
        tokio::task::block_in_place(|| group_progress(&self.consumer, &self.topic, self.timeout)).map(|p| p.lag)
    }

    fn lag_probe(&self) -> Option<LagProbe> {
        let (consumer, topic, timeout) = (self.consumer.clone(), self.topic.clone(), self.timeout);
        Some(Box::pin(async move {
            tokio::task::spawn_blocking(move || group_progress(&consumer, &topic, timeout))
                .await
                .map_err(|e| PortError::Other(format!("kafka lag: {e}")))?
        }))
    }
}

/// The partitions of `topic`.
fn partitions<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, timeout: Duration) -> PortResult<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(unavailable)?;
    Ok(metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect())
}

/// The committed positions of the consumer's group against the end of every partition
/// of `topic`. Short bounds, so a group that is rebalancing never stalls the caller long.
fn group_progress(
    consumer: &StreamConsumer<EpochContext>,
    topic: &str,
    timeout: Duration,
) -> PortResult<GroupProgress> {
    let timeout = timeout.min(Duration::from_secs(5));
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(unavailable)?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut list = TopicPartitionList::new();
    for p in &partitions {
        list.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(list, timeout).map_err(unavailable)?;
    let by_partition: HashMap<i32, i64> = committed
        .elements()
        .iter()
        .filter_map(|e| if let Offset::Offset(o) = e.offset() { Some((e.partition(), o)) } else { None })
        .collect();
    let (mut lag, mut committed) = (0u64, 0u64);
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout).map_err(unavailable)?;
        let at = by_partition.get(&p).copied().unwrap_or(low).max(low);
        lag += (high - at).max(0) as u64;
        committed += by_partition.get(&p).copied().unwrap_or(0).max(0) as u64;
    }
    Ok(GroupProgress { lag, committed })
}

fn record(m: &rdkafka::message::BorrowedMessage<'_>) -> LogRecord {
    LogRecord {
        position: Position::new(m.partition(), m.offset()),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka (or tansu) at `KAFKA_BOOTSTRAP_SERVERS`, default `127.0.0.1:9092`. Without
    /// one the test is skipped locally and fails in CI.
    async fn log(topic: &str) -> Option<KafkaLog> {
        let servers = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
        let config = KafkaConfig {
            bootstrap_servers: servers.clone(),
            timeout: Duration::from_secs(10),
            instance_id: None,
            max_poll_interval: DEFAULT_MAX_POLL_INTERVAL,
        };
        match ensure_topic(&config, topic, 4, 1, &[]).await {
            Ok(_) => Some(KafkaLog::new(config).expect("producer")),
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("SKIPPED: no Kafka at {servers}: {e}");
                None
            }
            Err(e) => panic!("CI=true: Kafka must be running at {servers} (scripts/services.sh start): {e}"),
        }
    }

    mod suite {
        use super::*;
        slamon_domain::event_log_suite!(|topic: String| async move { log(&topic).await.map(|log| ((), log)) });
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_groups_committed_positions_and_the_ends_are_read_without_joining_it() {
        let topic = format!("slamon-test-{}", uuid::Uuid::now_v7().simple());
        let Some(log) = log(&topic).await else { return };
        let records: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("k{i}"), vec![i as u8])).collect();
        log.append(&topic, records).await.unwrap();
        let mut ends = log.end_positions(&topic).await.unwrap();
        ends.sort_by_key(|p| p.partition);
        assert_eq!(ends.len(), 4);
        assert_eq!(ends.iter().map(|p| p.offset).sum::<i64>(), 20);
        assert_eq!(log.committed_positions("g", &topic).await.unwrap(), vec![], "nothing committed yet");
        assert!(!slamon_domain::reaches(&[], &ends));
        // a member reads everything and commits
        let mut c = log.consumer("g", &topic).await.unwrap();
        let mut read = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while read.len() < 20 && std::time::Instant::now() < deadline {
            read.extend(c.poll(100, Duration::from_millis(500)).await.unwrap());
        }
        c.commit(&slamon_domain::next_positions(&read)).await.unwrap();
        let committed = log.committed_positions("g", &topic).await.unwrap();
        assert!(slamon_domain::reaches(&committed, &ends), "{committed:?} vs {ends:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_record_over_the_limit_is_refused_for_good() {
        let topic = format!("slamon-test-{}", uuid::Uuid::now_v7().simple());
        let Some(log) = log(&topic).await else { return };
        let err = log.append(&topic, vec![("k".into(), vec![7u8; MAX_RECORD_BYTES + 1])]).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert_eq!(log.append(&topic, vec![("k".into(), vec![7u8; 1000])]).await.unwrap().len(), 1);
    }

    #[test]
    fn a_topic_that_deletes_or_compacts_loses_history() {
        let config = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        assert_eq!(history_loss(&config(&KEEP_FOREVER)), None);
        let week = config(&[("retention.ms", "604800000"), ("retention.bytes", "-1"), ("cleanup.policy", "delete")]);
        assert!(history_loss(&week).unwrap().contains("retention.ms=604800000"));
        let sized = config(&[("retention.ms", "-1"), ("retention.bytes", "1073741824"), ("cleanup.policy", "delete")]);
        assert!(history_loss(&sized).unwrap().contains("retention.bytes"));
        let compacted =
            config(&[("retention.ms", "-1"), ("retention.bytes", "-1"), ("cleanup.policy", "compact,delete")]);
        assert!(history_loss(&compacted).unwrap().contains("compact"));
        assert!(history_loss(&config(&[])).unwrap().contains("broker's default"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_topic_created_to_keep_everything_is_described_so() {
        let topic = format!("slamon-test-{}", uuid::Uuid::now_v7().simple());
        let Some(log) = log(&format!("{topic}-probe")).await else { return };
        assert!(ensure_topic(&log.config, &topic, 1, 1, &KEEP_FOREVER).await.unwrap());
        let described = topic_config(&log.config, &topic).await.unwrap();
        assert_eq!(history_loss(&described), None, "{described:?}");
        let limited = format!("{topic}-week");
        assert!(ensure_topic(&log.config, &limited, 1, 1, &[("retention.ms", "604800000")]).await.unwrap());
        let described = topic_config(&log.config, &limited).await.unwrap();
        assert!(history_loss(&described).unwrap().contains("retention.ms=604800000"), "{described:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn creating_a_topic_twice_is_fine() {
        let topic = format!("slamon-test-{}", uuid::Uuid::now_v7().simple());
        let Some(log) = log(&topic).await else { return };
        assert!(!ensure_topic(&log.config, &topic, 4, 1, &[]).await.unwrap(), "already there");
    }
}
