//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and tonic-prost-build, in two
//! passes:
//!
//! 1. the message types and the gRPC clients (`OUT_DIR/hashforum.v1.rs`, the `pb` module);
//! 2. the gRPC servers only (`OUT_DIR/server/hashforum.v1.rs`, `pb::server`), over the types of
//!    pass 1, except for hand-written types in `wire` with the same bytes on the wire:
//!    - `LookupHashes` answers with `wire::LookupHashesReply`, encoded straight from the stored
//!      records instead of decoded and re-encoded;
//!    - `SubmitEntry`, `SubmitEntries`, `LookupHashes` and `MatchHashes` requests are decoded
//!      into `wire::SubmitEntryRequest`, `wire::SubmitEntriesRequest`,
//!      `wire::LookupHashesRequest` and `wire::MatchHashesRequest`,
//!      which stop materialising elements past the batch caps, so a request of millions of
//!      empty elements costs no more memory than its bytes;
//!    - with `codec::ServerCodec`, which answers a request that does not decode
//!      `INVALID_ARGUMENT` instead of `INTERNAL`.
//!
//! The operator's control service (`proto/hashforum/control/v1`, `pb::control`) is compiled
//! apart, client and server: it is served only on the data directory's Unix socket, so it is
//! left out of the descriptor set that reflection serves on the network.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/hashforum/v1/entry.proto",
        "proto/hashforum/v1/registry.proto",
        "proto/hashforum/v1/admin.proto",
        "proto/hashforum/v1/log.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("hashforum_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .bytes(".hashforum.v1.Envelope.payload")
        .build_server(false)
        .compile_fds(fds.clone())?;
    let server_out = out.join("server");
    std::fs::create_dir_all(&server_out)?;
    tonic_prost_build::configure()
        .build_client(false)
        // Malformed requests are the client's error: INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::codec::ServerCodec")
        .extern_path(".hashforum.v1", "crate::pb")
        .extern_path(
            ".hashforum.v1.LookupHashesResponse",
            "crate::wire::LookupHashesReply",
        )
        .extern_path(
            ".hashforum.v1.SubmitEntryRequest",
            "crate::wire::SubmitEntryRequest",
        )
        .extern_path(
            ".hashforum.v1.SubmitEntriesRequest",
            "crate::wire::SubmitEntriesRequest",
        )
        .extern_path(
            ".hashforum.v1.LookupHashesRequest",
            "crate::wire::LookupHashesRequest",
        )
        .extern_path(
            ".hashforum.v1.MatchHashesRequest",
            "crate::wire::MatchHashesRequest",
        )
        .out_dir(server_out)
        .compile_fds(fds)?;
    let control = protox::compile(["proto/hashforum/control/v1/control.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(control)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
