//! The SLA manager: defines the SLA set (as an `SlaSetDefined` event), and answers
//! status, violations and future violations from the read models (SPEC §6, §7, §9).
//! REST on 5001; gRPC on 50052 (the seed's `sla.SlaService`, `sla.v2.SlaService`,
//! health and reflection).

pub mod alerting;
mod exposition;
pub mod grpc;
mod page;
mod rest;

pub use rest::{bodies, openapi, openapi_for, router, AppState};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use slamon_backends::{duration, Backends};
use slamon_web::{TaskFailed, Tasks};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A limiter of `per_minute` PUTs a minute: up to `per_minute` in a row, then one every
/// `60 s / per_minute` (a token bucket holding a minute's worth); none for 0.
fn put_rate(per_minute: u32) -> Option<Arc<governor::DefaultDirectRateLimiter>> {
    let per_minute = std::num::NonZeroU32::new(per_minute)?;
    Some(Arc::new(governor::RateLimiter::direct(governor::Quota::per_minute(per_minute))))
}

/// Reads the ends of the log once, then waits for the projector's group to commit past
/// them: from then on the read model holds every SLA set given before this process
/// started, and PUTs may number the next version from it.
pub(crate) struct CatchUp {
    pub(crate) log: Arc<dyn slamon_domain::EventLog>,
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) caught_up: tokio::sync::watch::Sender<bool>,
}

impl CatchUp {
    pub(crate) async fn run(self, cancel: CancellationToken) {
        let every = Duration::from_millis(500);
        let ends = loop {
            match self.log.end_positions(&self.topic).await {
                Ok(ends) => break ends,
                Err(e) => tracing::debug!(error = %e, "the log's ends are unknown yet"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        };
        let started = std::time::Instant::now();
        let mut warned = false;
        loop {
            match self.log.committed_positions(&self.group, &self.topic).await {
                Ok(committed) if slamon_domain::reaches(&committed, &ends) => {
                    tracing::info!(group = self.group, "the read model holds the log as it was at start");
                    self.caught_up.send_replace(true);
                    // a task of the service: it ends with the service, not before
                    cancel.cancelled().await;
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "the projector's positions are unknown now"),
            }
            if !warned && started.elapsed() > Duration::from_secs(60) {
                tracing::warn!(
                    group = self.group,
                    "the projector has not caught up with the log for a minute: PUT /slaset answers 503 meanwhile"
                );
                warned = true;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// Settings of the SLA manager.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "sla_manager")]
#[command(next_help_heading = "SLA manager")]
pub struct Config {
    /// Address of the SLA manager's REST API.
    #[arg(long, env = "SLAMON_SLA_MANAGER_LISTEN", default_value = "[::]:5001")]
    pub sla_manager_listen: SocketAddr,
    /// Address of the SLA manager's gRPC API.
    #[arg(long, env = "SLAMON_GRPC_LISTEN", default_value = "[::]:50052")]
    pub grpc_listen: SocketAddr,
    /// Number of entries an SLA set must have.
    #[arg(long, env = "SLAMON_SLA_SET_SIZE", default_value_t = 5)]
    pub sla_set_size: usize,
    /// An SLA metric with no sample for this long is `absent`.
    #[arg(long, env = "SLAMON_ABSENT_AFTER", default_value = "10m", value_parser = duration)]
    pub absent_after: Duration,
    /// How long after its last sample a series still has a value, as Prometheus's
    /// `--query.lookback-delta`: a violating run goes on across a shorter gap and ends at
    /// a longer one, and without a sample this recent an SLA is not violating.
    #[arg(long, env = "SLAMON_LOOKBACK_DELTA", default_value = "5m", value_parser = duration)]
    pub lookback_delta: Duration,
    /// How long a PUT /slaset waits for the read model to show the new set.
    #[arg(long, env = "SLAMON_PUT_VISIBILITY_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub put_visibility_timeout: Duration,
    /// Who may write and read ([`slamon_backends::AuthSettings`], given by the command).
    #[arg(skip)]
    pub access: slamon_web::auth::Access,
    /// Serve writes without a token on a non-loopback address.
    #[arg(skip)]
    pub allow_unauthenticated_writes: bool,
    /// TLS and limits of both listeners ([`slamon_backends::ServeSettings`]).
    #[arg(skip)]
    pub serving: slamon_web::listener::Serving,
    /// The largest PUT /slaset body accepted, in bytes (more: 400).
    #[arg(long, env = "SLAMON_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// PUT /slaset accepted per minute, all clients together (up to that many in a row,
    /// then one every 60 s / N); more: 429 with Retry-After. 0: no limit.
    #[arg(long, env = "SLAMON_PUT_RATE_LIMIT", default_value_t = 60)]
    pub put_rate_limit: u32,
    /// Alerts to Alertmanager.
    #[command(flatten)]
    pub alerting: alerting::Settings,
}

/// The SLA manager, bound and ready to serve REST and gRPC.
pub struct App {
    rest: TcpListener,
    grpc: TcpListener,
    state: AppState,
    /// Watches the projector catch up with the log as it was at start (runs until the
    /// service stops: a task that ends stops the process).
    catch_up: CatchUp,
    serving: slamon_web::listener::Serving,
    /// The alert sender, when an Alertmanager is configured, with its cadence and the
    /// external URL of links.
    alerts: Option<(alerting::Notifier, alerting::Cadence, String)>,
}

impl App {
    /// Opens the read models and the publisher of SLA set events and binds both listeners.
    ///
    /// # Errors
    /// A backend cannot be opened or an address is taken.
    pub async fn build(config: &Config, backends: &Backends) -> slamon_backends::Result<App> {
        let (caught_up, watch) = tokio::sync::watch::channel(false);
        let catch_up = CatchUp {
            log: backends.log()?,
            topic: backends.settings().topic.clone(),
            group: backends.settings().projector_group.clone(),
            caught_up,
        };
        let state = AppState {
            caught_up: watch,
            store: backends.store().await?,
            publisher: backends.publisher()?,
            set_size: config.sla_set_size,
            db_timeout: backends.settings().db_timeout,
            visibility_timeout: config.put_visibility_timeout,
            absent_after: config.absent_after,
            lookback: config.lookback_delta,
            max_body_bytes: config.max_body_bytes,
            put_rate: put_rate(config.put_rate_limit),
            body_read_timeout: config.serving.limits.header_read_timeout,
            // (the token `run` is given)
            stopping: CancellationToken::new(),
            producer: Backends::producer("sla-manager"),
            put_lock: Arc::default(),
            access: config.access.clone(),
        };
        let listen = slamon_backends::write_api_address(
            config.sla_manager_listen,
            &config.access,
            config.allow_unauthenticated_writes,
        );
        let rest = slamon_backends::bind(listen, "SLA manager").await?;
        let grpc = slamon_backends::bind(config.grpc_listen, "SLA manager gRPC").await?;
        let settings = &config.alerting;
        let metrics = alerting::NotifierMetrics::new(backends.metrics())?;
        let alerts =
            alerting::Notifier::new(settings, metrics).map_err(slamon_backends::Error::Settings)?.map(|notifier| {
                let cadence = alerting::Cadence {
                    interval: settings.alert_evaluation_interval,
                    resend_delay: settings.alert_resend_delay,
                };
                let external = settings.external_url.clone().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| {
                    alerting::default_external_url(rest.local_addr().map(|a| a.port()).unwrap_or(5001))
                });
                (notifier, cadence, external)
            });
        Ok(App { rest, grpc, state, catch_up, serving: config.serving.clone(), alerts })
    }

    /// The address the gRPC service listens on (the ETL of `slamon up` calls it).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("a bound listener has an address")
    }

    /// Serves REST and gRPC until `cancel`.
    ///
    /// # Errors
    /// A server failed.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), TaskFailed> {
        let mut tasks = Tasks::new(cancel);
        let cancel = tasks.cancel();
        let state = AppState { stopping: cancel.clone(), ..self.state };
        tasks.spawn("sla-manager-catch-up", async move {
            self.catch_up.run(cancel).await;
            Ok::<(), std::convert::Infallible>(())
        });
        let service = grpc::SlaGrpc { store: state.store.clone(), db_timeout: state.db_timeout };
        let grpc = grpc::router(service, state.access.clone())
            .await
            .map_err(|source| TaskFailed { task: "sla-manager-grpc", source })?;
        let (tls, limits) = (self.serving.tls.clone(), self.serving.limits);
        tasks.spawn_api("sla-manager-grpc", self.grpc, grpc, tls.clone(), limits);
        if let Some((notifier, cadence, external)) = self.alerts {
            let (state, cancel) = (state.clone(), tasks.cancel());
            tasks.spawn("sla-manager-alerts", async move {
                alerting::run(state, notifier, cadence, external, cancel).await;
                Ok::<(), std::convert::Infallible>(())
            });
        }
        tasks.spawn_api("sla-manager", self.rest, router(state), tls, limits);
        tasks.wait().await
    }
}
