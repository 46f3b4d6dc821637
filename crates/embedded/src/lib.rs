//! The embedded default: an event log and a read-model store in redb files, for the
//! one-process `slamon up`. They implement the same ports as Kafka and MongoDB.
//!
//! redb commits are durable (fsync) before they return, so an append that returned is
//! never lost by a `kill -9`, and committed consumer positions survive a restart.

mod log;
mod store;

pub use log::{EmbeddedConsumer, EmbeddedLog};
pub use store::EmbeddedStore;

use slamon_domain::PortError;

pub(crate) fn unavailable(e: impl std::fmt::Display) -> PortError {
    PortError::Unavailable(e.to_string())
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PortError> + Send + 'static,
) -> Result<T, PortError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| PortError::Other(format!("storage task failed: {e}")))?
}
