//! Integration tests: the real server on 127.0.0.1:0, RocksDB in a temporary directory, a PKI
//! made at test time, and real gRPC clients over mTLS.

mod admin;
mod admission;
mod backup;
mod cli;
mod concurrency;
mod crash;
mod export;
mod failure;
mod hardening;
mod harness;
mod interop;
mod lifecycle;
mod limits;
mod matching;
mod mirror;
mod mtls;
mod observability;
mod pdq_hash;
mod registry;
mod replica;
mod roles;
mod shutdown;
mod statements;
mod tls;
mod transparency;
