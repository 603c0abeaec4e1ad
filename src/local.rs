//! A local copy of the log, served in process: what `lookup --local DIR` and
//! `match --local DIR` ask, with the same code and the same answers as a server.
//!
//! `DIR` is what `hashforum sync --out DIR` keeps (`DIR/db`, `DIR/forum.vkey`), or a replica's
//! or a stopped primary's data directory with the forum's `forum.vkey` copied beside its files.
//! The copy is opened read-only; its latest checkpoint must verify with the verifier key and
//! cover exactly its entries (a sync copy always does). The registry's services then run over
//! an in-memory connection, as a reader: no network, no certificates.

use std::path::{Path, PathBuf};

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

/// The directory holding a local copy's database: `DIR/db` when it exists, else `DIR`.
pub fn database(dir: &Path) -> PathBuf {
    let db = dir.join("db");
    if db.is_dir() {
        db
    } else {
        dir.to_owned()
    }
}

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

/// Opens the local copy in `dir` and serves it in process; returns a client of it. The server
/// runs on the current runtime until the client and its clones are dropped.
///
/// # Errors
/// When `dir` holds no verified copy of the log.
pub async fn open(dir: &Path) -> anyhow::Result<Client> {
    let verifier = verifier(dir)?;
    let db = database(dir);
    if !db.join("CURRENT").is_file() {
        anyhow::bail!(
            "{}: no local copy here (make one with `hashforum sync --out {}`)",
            db.display(),
            dir.display()
        );
    }
    let store = Store::open_read_only(&db).with_context(|| db.display().to_string())?;
    let latest = {
        let follower = Follower::open(store.clone(), verifier.clone(), "local", None)
            .with_context(|| format!("{}: not a verified copy", db.display()))?;
        follower.latest().cloned().with_context(|| {
            format!(
                "{}: the copy holds no verified checkpoint yet",
                db.display()
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
