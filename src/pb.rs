//! Generated protobuf and gRPC types for `hashforum.v1`, compiled from `proto/` at build time.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

tonic::include_proto!("hashforum.v1");

/// The gRPC servers (see `build.rs`).
pub mod server {
    include!(concat!(env!("OUT_DIR"), "/server/hashforum.v1.rs"));
}

/// The operator's control service, served on the data directory's Unix socket only
/// (`server::control`).
pub mod control {
    tonic::include_proto!("hashforum.control.v1");
}

/// The encoded `FileDescriptorSet` of `proto/`, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hashforum_descriptor.bin"));
