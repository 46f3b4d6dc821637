//! What the SLA manager's benchmarks share: an embedded log and store with a Schema
//! Registry beside them, and the state of an SLA manager over them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use slamon_domain::{Window, WindowAggregate};
use slamon_embedded::{EmbeddedLog, EmbeddedStore};
use slamon_events::{EventCodec, Publisher};
use slamon_sla_manager::AppState;
use tokio_util::sync::CancellationToken;

/// Window statistics of a series numbered `i`: min `i`, max `i + 1`, 60 samples.
pub fn window(w: Window, i: usize) -> WindowAggregate {
    let v = i as f64;
    WindowAggregate { window: w, min: Some(v), max: Some(v + 1.0), avg: Some(v + 0.5), std_dev: Some(0.3), samples: 60 }
}

/// The embedded backends of a benchmark in `dir`, a registry served until `cancel`.
pub struct Backends {
    pub log: Arc<EmbeddedLog>,
    pub store: Arc<EmbeddedStore>,
    pub codec: Arc<EventCodec>,
}

impl Backends {
    pub async fn open(dir: &Path, cancel: &CancellationToken) -> Result<Self, Box<dyn std::error::Error>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let registry = format!("http://{}", listener.local_addr()?);
        tokio::spawn(slamon_registry::serve(dir.join("registry.redb"), listener, cancel.clone()));
        Ok(Self {
            log: Arc::new(EmbeddedLog::open(&dir.join("log.redb"))?),
            store: Arc::new(EmbeddedStore::open(&dir.join("store.redb"))?),
            codec: Arc::new(EventCodec::new(&registry, "prometheusdata")?),
        })
    }

    /// An SLA manager over these backends: sets of 5, open access, no rate limit, the
    /// read model caught up, `timeout` for the store and for a PUT to become visible.
    pub fn state(&self, timeout: Duration) -> AppState {
        AppState {
            store: self.store.clone(),
            publisher: Publisher::new(self.codec.clone(), self.log.clone()),
            set_size: 5,
            db_timeout: timeout,
            visibility_timeout: timeout,
            absent_after: Duration::from_secs(600),
            lookback: slamon_domain::semantics::DEFAULT_LOOKBACK,
            max_body_bytes: 1 << 20,
            producer: "bench".into(),
            put_lock: Arc::default(),
            caught_up: tokio::sync::watch::channel(true).1,
            access: slamon_web::auth::Access::open(),
            put_rate: None,
            body_read_timeout: Duration::from_secs(10),
            stopping: Default::default(),
        }
    }
}
