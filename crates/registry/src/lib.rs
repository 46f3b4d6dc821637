//! A small Schema Registry that speaks Confluent's REST API, for the embedded default
//! and the tests (no Confluent registry can be installed on the build machines).
//!
//! Supported: Avro schemas; subjects and versions; global ids shared by identical
//! schemas; `/config` compatibility levels (global and per subject) enforced on
//! registration with Avro schema resolution (`BACKWARD`, `BACKWARD_TRANSITIVE`,
//! `FORWARD`, `FORWARD_TRANSITIVE`, `FULL`, `FULL_TRANSITIVE`, `NONE`); `/compatibility`
//! checks; lookups; soft deletes. State is kept in a redb file and written before any
//! reply, so a crash never loses an acknowledged registration.

mod api;
mod store;

pub use api::router;
pub use store::{Compatibility, Registry, RegistryError};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Serves `registry` on `listener` until `cancel`.
pub async fn serve_registry(
    registry: Arc<Registry>,
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(service = "schema-registry", %addr, "listening");
    axum::serve(listener, router(registry)).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}

/// Opens (or creates) the registry at `path` and serves it on `listener` until `cancel`.
pub async fn serve(path: PathBuf, listener: tokio::net::TcpListener, cancel: CancellationToken) -> std::io::Result<()> {
    let registry = Arc::new(Registry::open(&path).map_err(std::io::Error::other)?);
    serve_registry(registry, listener, cancel).await
}
