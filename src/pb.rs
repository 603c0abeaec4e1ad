//! Generated protobuf and gRPC types for `hashforum.v1`, compiled from `proto/` at build time.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

tonic::include_proto!("hashforum.v1");

/// The encoded `FileDescriptorSet` of `proto/`, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hashforum_descriptor.bin"));
