//! The ETL's client of the SLA manager's gRPC (`sla.v2.SlaService/GetSlaSet`).

use crate::EtlError;
use std::time::Duration;

use slamon_domain::{Labels, SlaEntry, SlaRange};
use slamon_proto::sla::v2::sla_service_client::SlaServiceClient;
use slamon_proto::sla::v2::GetSlaSetRequest;
use tonic::transport::{Channel, Endpoint};

/// Where the ETL reads the SLA set: the SLA manager's gRPC, or (in `slamon up`, one
/// process) the SLA set read model that gRPC itself answers from.
#[derive(Clone)]
pub struct SlaClient {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Grpc {
        client: SlaServiceClient<Channel>,
        endpoint: String,
        /// `Bearer <token>` sent with every call, when the SLA manager wants one.
        authorization: Option<tonic::metadata::AsciiMetadataValue>,
    },
    Local {
        store: std::sync::Arc<dyn slamon_domain::ReadModelStore>,
        timeout: Duration,
    },
}

impl SlaClient {
    /// A client of the SLA manager at `endpoint` (e.g. `http://127.0.0.1:50052`),
    /// connected lazily, sending `token` as a bearer token when given.
    ///
    /// # Errors
    /// [`EtlError::SlaEndpoint`] when `endpoint` is not a usable URI or the token cannot
    /// be sent in a header.
    pub fn new(endpoint: &str, token: Option<&str>) -> Result<Self, EtlError> {
        let authorization = token
            .map(|t| format!("Bearer {t}").parse())
            .transpose()
            .map_err(|_| EtlError::SlaEndpoint("the SLA manager token is not a valid header value".into()))?;
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| EtlError::SlaEndpoint(format!("invalid SLA manager endpoint `{endpoint}`: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(Self {
            inner: Inner::Grpc { client: SlaServiceClient::new(channel), endpoint: endpoint.to_owned(), authorization },
        })
    }

    /// Where it reads the set: the gRPC endpoint, or the local read model.
    pub fn describe(&self) -> &str {
        match &self.inner {
            Inner::Grpc { endpoint, .. } => endpoint,
            Inner::Local { .. } => "the SLA set read model",
        }
    }

    /// The SLA set read model of this process (what the SLA manager's gRPC answers from),
    /// each read bounded by `timeout`.
    pub fn local(store: std::sync::Arc<dyn slamon_domain::ReadModelStore>, timeout: Duration) -> Self {
        Self { inner: Inner::Local { store, timeout } }
    }

    /// The current SLA set (empty when none is defined).
    pub async fn fetch(&self) -> Result<Vec<SlaEntry>, tonic::Status> {
        let (client, authorization) = match &self.inner {
            Inner::Grpc { client, authorization, .. } => (client, authorization),
            Inner::Local { store, timeout } => {
                return match tokio::time::timeout(*timeout, store.sla_set()).await {
                    Ok(Ok(set)) => Ok(set.map(|s| s.current.entries).unwrap_or_default()),
                    Ok(Err(e)) => Err(tonic::Status::unavailable(e.to_string())),
                    Err(_) => Err(tonic::Status::unavailable("the SLA set read model did not answer in time")),
                };
            }
        };
        let mut request = tonic::Request::new(GetSlaSetRequest {});
        if let Some(value) = authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        let reply = client.clone().get_sla_set(request).await?.into_inner();
        Ok(reply
            .entries
            .into_iter()
            .map(|e| SlaEntry {
                labels: e.metric.into_iter().collect::<Labels>(),
                range: SlaRange { min: e.min, max: e.max },
                for_minutes: e.for_minutes,
            })
            .collect())
    }
}
