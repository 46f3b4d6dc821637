//! Sources of series behind the [`MetricSource`](slamon_domain::MetricSource) port:
//! a client of the Prometheus HTTP API ([`PrometheusSource`]) and a built-in demo
//! ([`DemoSource`]) of synthetic, seasonal, noisy series with episodes out of range, so
//! the system shows real output with no Prometheus at all.

mod client;
mod demo;
mod multi;
mod staleness;

pub use client::{
    credentials_in_url, tls_builder, with_causes, Credentials, PrometheusSource, SourceConfig, TlsFiles,
    DEFAULT_MAX_ANSWER_BYTES,
};
pub use demo::DemoSource;
pub use multi::MultiSource;
