//! The SLA manager's gRPC contract: `sla` (the seed's proto, wire-compatible) and
//! `sla.v2`. prost types stay at the gRPC edge: services convert them to domain types.

#![allow(clippy::all, clippy::pedantic)]

/// The seed's service: one streamed message per SLA metric.
pub mod sla {
    tonic::include_proto!("sla");

    /// slamon's richer service.
    pub mod v2 {
        tonic::include_proto!("sla.v2");
    }
}

/// The encoded file descriptor set of every proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/slamon_descriptor.bin"));
