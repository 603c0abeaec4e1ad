//! hashforum: the shared hash registry of an industry forum.
//!
//! Member companies submit signed hashes of terrorist and violent-extremist content they
//! removed; every member can look them up, with provenance that anyone holding the public keys
//! can check. See `docs/architecture.md` for the whole picture.
//!
//! | module | scope |
//! |---|---|
//! | [`types`] | validated newtypes: member ids, roles, hash types and values |
//! | [`crypto`] | DSSE over Ed25519, key ids, leaf hashes, key files |
//! | [`entry`] | parsing signed envelopes at the door (admission rules) |
//! | [`statement`] | building and signing statements (CLI, bench, tests) |
//! | [`log`] | the log's leaves: exact bytes, hashes, reading them back |
//! | [`pdq`] | PDQ: hashing images on the member side, the near-duplicate matching index |
//! | [`state`] | `check` and `apply`: the views as a function of the log; the membership |
//! | [`storage`] | RocksDB: the only code that knows column families and keys |
//! | [`sequencer`] | the single writer: group commit |
//! | [`registry`] | submit and lookup, between adapters and sequencer |
//! | [`genesis`] | entry 0 |
//! | [`backup`] | backups: made online or offline, verified offline, restored with a guard |
//! | [`service`] | thin tonic adapters |
//! | [`wire`] | replies encoded straight from stored bytes; requests decoded with element caps |
//! | [`codec`] | the server's codec: a request that does not decode is `INVALID_ARGUMENT` |
//! | [`auth`] | who may call what: admission of every call before its body is read |
//! | [`server`] | TLS, limits, services, health, reflection, shutdown |
//! | [`config`], [`identity`], [`forum`], [`pki`] | files: server config, member identities, `init` |
//! | [`client`] | mTLS gRPC client |
//! | `fuzzing` | fuzz targets over every decoder of untrusted bytes (hidden; docs/fuzzing.md) |
//! | [`cli`] | the `hashforum` command |

pub mod auth;
pub mod backup;
pub mod cli;
pub mod client;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod entry;
pub mod error;
pub mod failpoint;
pub mod follow;
pub mod forum;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod genesis;
pub mod identity;
pub mod local;
pub mod log;
pub mod metrics;
pub mod pb;
pub mod pdq;
pub mod pki;
pub mod quota;
pub mod registry;
pub mod sequencer;
pub mod server;
pub mod service;
pub mod state;
pub mod statement;
pub mod storage;
pub mod types;
pub mod verify;
pub mod wire;
