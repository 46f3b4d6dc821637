//! The SLA manager: defines the SLA set (as an `SlaSetDefined` event), and answers
//! status, violations and future violations from the read models (SPEC §6, §7, §9).
//! REST on 5001; gRPC on 50052 (the seed's `sla.SlaService`, `sla.v2.SlaService`,
//! health and reflection).

pub mod grpc;
mod rest;

pub use rest::{router, AppState};
