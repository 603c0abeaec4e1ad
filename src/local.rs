//! A local copy of the log, served in process: what `lookup --local DIR` and
//! `match --local DIR` ask, with the same code and the same answers as a server.
//!
//! `DIR` is what `hashforum sync --out DIR` keeps (`DIR/db`, `DIR/forum.vkey`), or a replica's
//! data directory with the forum's `forum.vkey` copied beside its files: a store a follower
//! wrote (a primary's is refused by [`open`], though [`open_store`] reads it for `export`).
//! The copy is opened read-only; its latest checkpoint must verify with the verifier key and
//! cover exactly its entries (a follower's store always does). The registry's services then run over
//! an in-memory connection, as a reader: no network, no certificates.

use std::path::Path;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Server};

use crate::client::Client;
use crate::follow::Follower;
use crate::forum::VKEY_FILE;
use crate::log::checkpoint::LogVerifier;
use crate::pb::server::log_service_server::LogServiceServer;
use crate::pb::server::registry_service_server::RegistryServiceServer;
use crate::registry::{Policy, Registry, ADMIN_FRESHNESS};
use crate::service::{LogApi, RegistryApi};
use crate::state::Caller;
use crate::storage::Store;
use crate::types::{MemberId, Role};

/// The verifier key of a local copy: `DIR/forum.vkey`.
///
/// # Errors
/// When it is missing or malformed.
pub fn verifier(dir: &Path) -> anyhow::Result<LogVerifier> {
    let path = dir.join(VKEY_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: the forum's verifier key (a copy made by `hashforum sync` has it; beside a \
             data directory, copy the forum's {VKEY_FILE} there)",
            path.display()
        )
    })?;
    LogVerifier::from_vkey(&text).with_context(|| path.display().to_string())
}

/// Opens a local copy of the registry read-only: `dir/db` when that directory exists, else
/// `dir` itself (a server's data directory).
///
/// # Errors
/// When the directory does not exist, holds no RocksDB database, or holds one that is not a
/// registry's or that RocksDB cannot open; each message names the path.
pub fn open_store(dir: &Path) -> anyhow::Result<Store> {
    let nested = dir.join("db");
    let db = if nested.is_dir() {
        nested
    } else {
        dir.to_owned()
    };
    if !db.is_dir() {
        anyhow::bail!("{}: no such directory", db.display());
    }
    // RocksDB's marker file: without it the directory is empty or something else.
    if !db.join("CURRENT").is_file() {
        anyhow::bail!(
            "{} holds no registry database (expected DIR/db, as `hashforum sync --out DIR` \
             writes it, or a server's data directory)",
            db.display()
        );
    }
    Store::open_read_only(&db).with_context(|| format!("opening {} read-only", db.display()))
}

/// Opens the local copy in `dir` and serves it in process; returns a client of it. The server
/// runs on the current runtime until the client and its clones are dropped.
///
/// # Errors
/// When `dir` holds no verified copy of the log.
pub async fn open(dir: &Path) -> anyhow::Result<Client> {
    let verifier = verifier(dir)?;
    let store = open_store(dir)?;
    let latest = {
        let follower = Follower::open(store.clone(), verifier.clone(), "local", None)
            .with_context(|| format!("{}: not a verified copy", dir.display()))?;
        follower.latest().cloned().with_context(|| {
            format!(
                "{}: the copy holds no verified checkpoint yet",
                dir.display()
            )
        })?
    };
    let policy = Policy {
        origin: verifier.origin().to_owned(),
        admin_freshness: ADMIN_FRESHNESS,
        max_blocking: 4,
        write_quorum: 0,
        cosignature_timeout: std::time::Duration::ZERO,
    };
    let (registry, _views) = Registry::read_only(store, policy, verifier, latest, None, None)?;
    let registry = std::sync::Arc::new(registry);
    let caller = Caller {
        member_id: MemberId::parse("local").map_err(|e| anyhow::anyhow!("{}", e.0))?,
        roles: vec![Role::Reader],
    };
    let router = Server::builder()
        .layer(tower::util::MapRequestLayer::new(
            move |mut req: http::Request<tonic::body::Body>| {
                req.extensions_mut().insert(caller.clone());
                req
            },
        ))
        .add_service(
            RegistryServiceServer::new(RegistryApi::new(registry.clone()))
                .max_decoding_message_size(crate::server::MAX_REQUEST)
                .max_encoding_message_size(crate::server::MAX_REPLY),
        )
        .add_service(LogServiceServer::new(LogApi::new(registry)));
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let incoming = tokio_stream::once(Ok::<_, std::io::Error>(server_io));
        if let Err(e) = router.serve_with_incoming(incoming).await {
            tracing::debug!(error = %e, "the local copy's in-process server ended");
        }
    });
    let mut client_io = Some(client_io);
    let channel = Endpoint::try_from("http://local.copy")?
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let io = client_io.take();
            async move {
                io.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("the local copy is connected once"))
            }
        }))
        .await?;
    Ok(Client::from_channel(channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(dir: &Path) -> String {
        format!("{:#}", open_store(dir).err().expect("refused"))
    }

    /// A missing or empty directory, or a foreign RocksDB database, is refused with its path.
    #[test]
    fn refuses_what_is_not_a_registry_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nowhere");
        assert_eq!(
            error(&missing),
            format!("{}: no such directory", missing.display())
        );
        let empty = error(tmp.path());
        assert!(
            empty.starts_with(&format!(
                "{} holds no registry database",
                tmp.path().display()
            )),
            "{empty}"
        );
        let foreign = tmp.path().join("foreign");
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        drop(rocksdb::DB::open(&opts, &foreign).unwrap());
        let msg = error(&foreign);
        assert!(
            msg.starts_with(&format!("opening {} read-only: ", foreign.display()))
                && msg.contains("not a registry database"),
            "{msg}"
        );
    }

    /// `DIR/db` is preferred to `DIR`; a data directory itself opens too.
    #[test]
    fn opens_dir_db_or_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        drop(Store::open(&data).unwrap());
        assert_eq!(open_store(&data).unwrap().size().unwrap(), 0);
        drop(Store::open(&tmp.path().join("db")).unwrap());
        assert_eq!(open_store(tmp.path()).unwrap().size().unwrap(), 0);
    }
}
