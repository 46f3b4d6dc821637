//! The wire contract of slamon's events.
//!
//! Every event is an Avro record in the Confluent wire format (magic byte, 4-byte schema
//! id, Avro datum) whose schema is registered under `TopicRecordNameStrategy`
//! (`prometheusdata-io.slamon.events.<Record>`). Schema files live in
//! `schemas/<event>/vN.avsc`; released versions are never edited. Writing uses the
//! latest version; reading resolves any released writer version to the latest reader
//! schema (Avro schema resolution fills defaults), then converts to the domain types,
//! so the rest of the code sees only current domain events.

pub mod codec;
pub mod schemas;
pub mod wire;

pub use codec::{EventCodec, Publisher};
pub use schemas::{SchemaFile, NAMESPACE, SCHEMAS};

use slamon_domain::EventEnvelope;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot encode event: {0}")]
    Encode(String),
    #[error("cannot decode event: {0}")]
    Decode(String),
    #[error("unknown event record `{0}`")]
    UnknownRecord(String),
    #[error("schema registry: {message}")]
    Registry { message: String, retriable: bool },
    #[error("event log: {0}")]
    Log(#[from] slamon_domain::PortError),
}

impl Error {
    /// Whether trying again later may succeed (registry or log unreachable), as opposed
    /// to a record that will never decode (poison).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Registry { retriable, .. } => *retriable,
            Error::Log(e) => e.is_retryable(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The Avro datum (no framing) of an event, written with the latest schema.
pub fn encode_datum(env: &EventEnvelope) -> Result<Vec<u8>> {
    let file = schemas::latest(env.event.event_type())
        .ok_or_else(|| Error::UnknownRecord(env.event.event_type().to_owned()))?;
    let value = wire::to_avro(env)?;
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(file.parsed())
        .build()
        .map_err(|e| Error::Encode(e.to_string()))?;
    writer.write_value_to_vec(value).map_err(|e| Error::Encode(e.to_string()))
}

/// Reads an Avro datum written with `writer` (any released version of the record)
/// into the current domain event.
pub fn decode_datum(writer: &SchemaFile, mut bytes: &[u8]) -> Result<EventEnvelope> {
    let reader =
        schemas::latest(writer.event_type).ok_or_else(|| Error::UnknownRecord(writer.event_type.to_owned()))?;
    let datum_reader = apache_avro::reader::datum::GenericDatumReader::builder(writer.parsed())
        .reader_schema(reader.parsed())
        .build()
        .map_err(|e| Error::Decode(e.to_string()))?;
    let value = datum_reader.read_value(&mut bytes).map_err(|e| Error::Decode(e.to_string()))?;
    if !bytes.is_empty() {
        return Err(Error::Decode(format!("{} trailing bytes after the record", bytes.len())));
    }
    wire::from_avro(writer.event_type, &value)
}

#[cfg(test)]
mod tests;
