//! The embedded default: an event log and a read-model store in redb files, for the
//! one-process `slamon up`. They implement the same ports as Kafka and MongoDB.
//!
//! redb commits are durable (fsync) before they return, so an append that returned is
//! never lost by a `kill -9`, and committed consumer positions survive a restart.

mod log;
mod retention;
mod store;

pub use log::{EmbeddedConsumer, EmbeddedLog, TopicState};
pub use retention::{Compaction, LogRetention};
pub use store::EmbeddedStore;

use slamon_domain::{Document, PortError, PortResult};

/// redb's answer to every call after an I/O error on commit (a full disk, a failing
/// device): it stays so until the database is reopened.
const LATCHED: &str = "Previous I/O error occurred";

/// A storage error as a port error; redb's latched I/O failure also marks the process as
/// no longer live ([`slamon_domain::liveness`]).
pub(crate) fn unavailable(e: impl std::fmt::Display) -> PortError {
    let text = e.to_string();
    if text.contains(LATCHED) && slamon_domain::liveness::fail(format!("the embedded storage failed for good: {text}"))
    {
        tracing::error!(error = %text, "the embedded storage failed for good: /livez answers 503 until slamon restarts");
    }
    PortError::Unavailable(text)
}

/// A document as stored: CBOR (RFC 8949), which keeps every `f64` exactly, NaN and ±Inf
/// included (JSON has no non-finite numbers).
pub(crate) fn encode(doc: &Document) -> PortResult<Vec<u8>> {
    let mut bytes = Vec::new();
    ciborium::into_writer(doc, &mut bytes)
        .map_err(|e| PortError::Invalid(format!("cannot encode {}: {e}", doc.key())))?;
    Ok(bytes)
}

/// A stored document: CBOR, or the JSON of the first release (a JSON object starts with
/// `{`; a CBOR map never does).
pub(crate) fn decode(bytes: &[u8]) -> Result<Document, String> {
    if bytes.first() == Some(&b'{') {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    } else {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PortError> + Send + 'static,
) -> Result<T, PortError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| PortError::Other(format!("storage task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_latched_io_failure_marks_the_process_as_not_live() {
        let busy = super::unavailable("Database already open. Cannot acquire lock.");
        assert!(matches!(busy, slamon_domain::PortError::Unavailable(_)));
        assert_eq!(slamon_domain::liveness::failure(), None, "an ordinary failure is not fatal");
        let latched = super::unavailable(redb::StorageError::PreviousIo);
        assert!(matches!(latched, slamon_domain::PortError::Unavailable(_)));
        let reason = slamon_domain::liveness::failure().expect("marked");
        assert!(reason.contains("Previous I/O error"), "{reason}");
    }
}
