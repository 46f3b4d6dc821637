//! Confluent-framed encode/decode through a Schema Registry (schema_registry_converter),
//! and a publisher that appends encoded events to the event log.

use std::sync::Arc;
use std::time::Duration;

use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use slamon_domain::{EventEnvelope, EventLog, Position};

use crate::schemas::{self, SchemaFile};
use crate::{wire, Error, Result};

/// The HTTP status of a registry answer that `schema_registry_converter` reported, if any.
fn http_status(e: &SRCError) -> Option<u16> {
    let text = e.to_string();
    let at = text.find("failed with status ")? + "failed with status ".len();
    text[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// A registry error, retriable unless the registry gave an answer that will not change:
/// `schema_registry_converter` takes every status but 502 and 503 (500, 504, 429, …) for
/// permanent. `permanent` lists the statuses that are (404 when decoding: the schema id
/// does not exist; 409 and 422 when registering: the schema is refused); transport
/// errors and timeouts keep the converter's verdict (retriable).
fn registry_error(e: SRCError, permanent: &[u16]) -> Error {
    let retriable = match http_status(&e) {
        Some(status) => !permanent.contains(&status),
        None => e.retriable,
    };
    Error::Registry { message: e.to_string(), retriable }
}

/// Statuses that mean a schema id will never be found.
const DECODE_PERMANENT: &[u16] = &[404];
/// Statuses that mean a schema will never be accepted.
const ENCODE_PERMANENT: &[u16] = &[409, 422];

/// Encodes and decodes events in the Confluent wire format for one topic.
pub struct EventCodec {
    topic: String,
    encoder: AvroEncoder,
    decoder: AvroDecoder,
}

impl EventCodec {
    pub fn new(registry_url: &str, topic: &str) -> Result<Self> {
        let settings = || {
            SrSettings::new_builder(registry_url.trim_end_matches('/').to_owned())
                .set_timeout(Duration::from_secs(5))
                .no_proxy()
                .build()
                .map_err(|e| registry_error(e, &[]))
        };
        Ok(Self {
            topic: topic.to_owned(),
            encoder: AvroEncoder::new(settings()?),
            decoder: AvroDecoder::new(settings()?),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn strategy(&self, file: &SchemaFile) -> SubjectNameStrategy {
        SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
            self.topic.clone(),
            SuppliedSchema::new(Some(file.full_name()), SchemaType::Avro, file.text.to_owned()),
        )
    }

    /// The subject of an event type under `TopicRecordNameStrategy`.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}-{}.{}", self.topic, schemas::NAMESPACE, event_type)
    }

    /// Frames an event: registers (or finds) the latest schema of its type and encodes.
    pub async fn encode(&self, env: &EventEnvelope) -> Result<Vec<u8>> {
        let file = schemas::latest(env.event.event_type())
            .ok_or_else(|| Error::UnknownRecord(env.event.event_type().to_owned()))?;
        let value = wire::to_avro(env)?;
        self.encoder.encode_value(value, &self.strategy(file)).await.map_err(|e| {
            let e = registry_error(e, ENCODE_PERMANENT);
            if e.is_retryable() {
                // the converter caches errors: the next try must ask the registry again
                self.encoder.remove_errors_from_cache();
            }
            e
        })
    }

    /// Decodes a framed record written with any registered version of a known record.
    pub async fn decode(&self, bytes: &[u8]) -> Result<EventEnvelope> {
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(Error::Decode("not in the Confluent wire format (magic byte 0 and a schema id)".into()));
        }
        let result = self.decoder.decode(Some(bytes)).await.map_err(|e| {
            // a schema the registry does not have will never decode; an outage will pass
            let e = registry_error(e, DECODE_PERMANENT);
            if e.is_retryable() {
                // the converter caches errors: the next try must ask the registry again
                self.decoder.remove_errors_from_cache();
            }
            e
        })?;
        let name = result.name.ok_or_else(|| Error::Decode("the writer schema is not a named record".into()))?;
        if name.namespace() != Some(schemas::NAMESPACE) {
            return Err(Error::UnknownRecord(name.fullname(None)));
        }
        let reader = schemas::latest(name.name()).ok_or_else(|| Error::UnknownRecord(name.fullname(None)))?;
        let value = result
            .value
            .resolve(reader.parsed())
            .map_err(|e| Error::Decode(format!("cannot resolve to the current {} schema: {e}", name.name())))?;
        wire::from_avro(reader.event_type, &value)
    }

    /// Registers the latest schema of every event type (what `slamon init` does).
    pub async fn register_all(&self) -> Result<()> {
        for file in schemas::latest_all() {
            self.encoder
                .get_schema_and_id(&self.subject(file.event_type), self.strategy(file))
                .await
                .map_err(|e| registry_error(e, ENCODE_PERMANENT))?;
        }
        Ok(())
    }
}

/// Encodes events and appends them to the log, keyed by their aggregate.
#[derive(Clone)]
pub struct Publisher {
    codec: Arc<EventCodec>,
    log: Arc<dyn EventLog>,
}

impl Publisher {
    pub fn new(codec: Arc<EventCodec>, log: Arc<dyn EventLog>) -> Self {
        Self { codec, log }
    }

    pub fn codec(&self) -> &Arc<EventCodec> {
        &self.codec
    }

    /// Appends the events in order; returns once they are durable.
    pub async fn publish(&self, events: &[EventEnvelope]) -> Result<Vec<Position>> {
        let mut records = Vec::with_capacity(events.len());
        for env in events {
            records.push((env.event.key(), self.codec.encode(env).await?));
        }
        Ok(self.log.append(self.codec.topic(), records).await?)
    }
}
