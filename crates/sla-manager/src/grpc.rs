//! gRPC on 50052: the seed's `sla.SlaService/GetSLASet` (one streamed message per SLA
//! metric, with the seasonality from its metadata), `sla.v2.SlaService/GetSlaSet`,
//! gRPC health and reflection.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use slamon_domain::{PortError, ReadModelStore};
use slamon_proto::sla::sla_service_server::{SlaService, SlaServiceServer};
use slamon_proto::sla::v2::sla_service_server::{SlaService as SlaServiceV2, SlaServiceServer as SlaServiceV2Server};
use slamon_proto::sla::{self, sla_set_response, v2};
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct SlaGrpc {
    pub store: Arc<dyn ReadModelStore>,
    pub db_timeout: Duration,
}

/// A read-model call bounded by `limit`, its errors mapped by the one table of
/// [`slamon_web::ServiceErrorCode`] (the same kinds and texts as over HTTP).
async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, PortError>>,
) -> Result<T, Status> {
    slamon_web::db(limit, call).await.map_err(Status::from)
}

type SetStream = Pin<Box<dyn Stream<Item = Result<sla::SlaSetResponse, Status>> + Send>>;

#[tonic::async_trait]
impl SlaService for SlaGrpc {
    type GetSLASetStream = SetStream;

    async fn get_sla_set(&self, _request: Request<sla::SlaRequest>) -> Result<Response<Self::GetSLASetStream>, Status> {
        let set = bounded(self.db_timeout, self.store.sla_set()).await?;
        let mut messages = Vec::new();
        for entry in set.map(|s| s.current.entries).unwrap_or_default() {
            let metric = bounded(self.db_timeout, self.store.metric(&entry.id())).await?;
            let seasonality = metric.and_then(|m| m.metadata).and_then(|md| md.seasonality).and_then(|s| {
                let add = s.add.map(|f| f.period).unwrap_or(0);
                let mul = s.mul.map(|f| f.period).unwrap_or(0);
                (add > 0 || mul > 0).then_some(sla_set_response::Seasonality { add, mul })
            });
            messages
                .push(Ok(sla::SlaSetResponse { metric: entry.labels.into_map().into_iter().collect(), seasonality }));
        }
        Ok(Response::new(Box::pin(futures::stream::iter(messages))))
    }
}

#[tonic::async_trait]
impl SlaServiceV2 for SlaGrpc {
    async fn get_sla_set(
        &self,
        _request: Request<v2::GetSlaSetRequest>,
    ) -> Result<Response<v2::GetSlaSetResponse>, Status> {
        let set = bounded(self.db_timeout, self.store.sla_set()).await?;
        Ok(Response::new(match set {
            None => v2::GetSlaSetResponse { defined: false, version: 0, entries: vec![] },
            Some(s) => v2::GetSlaSetResponse {
                defined: true,
                version: s.current.version,
                entries: s
                    .current
                    .entries
                    .into_iter()
                    .map(|e| v2::SlaEntry {
                        metric_id: e.id().to_string(),
                        metric: e.labels.into_map().into_iter().collect(),
                        min: e.range.min,
                        max: e.range.max,
                        for_minutes: e.for_minutes,
                    })
                    .collect(),
            },
        }))
    }
}

/// Serves the gRPC services on `listener` until `cancel`.
/// The interceptor of the SLA services: every call reads, so it needs a read (or write)
/// token in the `authorization` metadata when read tokens are configured; health and
/// reflection stay open, like `/livez` and `/readyz`.
fn reader(
    access: slamon_web::auth::Access,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |request: tonic::Request<()>| {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(slamon_web::auth::bearer_token);
        access.check_token(slamon_web::auth::Operation::Read, token)?;
        Ok(request)
    }
}

/// The largest gRPC request decoded (the SLA services' requests are empty).
const MAX_REQUEST_BYTES: usize = 64 << 10;

/// The gRPC services (`sla.SlaService`, `sla.v2.SlaService`, health, reflection) as one
/// router, served like the REST APIs ([`slamon_web::listener`]: TLS, timeouts, limits).
///
/// # Errors
/// The reflection service cannot be built.
pub async fn router(
    service: SlaGrpc,
    access: slamon_web::auth::Access,
) -> Result<axum::Router, Box<dyn std::error::Error + Send + Sync>> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<SlaServiceServer<SlaGrpc>>().await;
    reporter.set_serving::<SlaServiceV2Server<SlaGrpc>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(slamon_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1 = SlaServiceServer::new(service.clone()).max_decoding_message_size(MAX_REQUEST_BYTES);
    let v2 = SlaServiceV2Server::new(service).max_decoding_message_size(MAX_REQUEST_BYTES);
    let routes = tonic::service::Routes::new(health)
        .add_service(reflection)
        .add_service(tonic::service::interceptor::InterceptedService::new(v1, reader(access.clone())))
        .add_service(tonic::service::interceptor::InterceptedService::new(v2, reader(access)));
    Ok(routes.into_axum_router())
}
