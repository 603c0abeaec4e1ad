//! The gRPC server: TLS with required client certificates, admission, limits, services, health,
//! reflection and ordered, bounded shutdown.
//!
//! A client certificate that does not chain to the forum CA fails the TLS handshake. Every call
//! on an accepted connection passes `auth::AuthLayer` before any of its body is read: a valid
//! certificate bound to no active member gets `UNAUTHENTICATED`, a member without the method's
//! role `PERMISSION_DENIED`. `[limits]` in the config bounds connections, streams, calls, time
//! and therefore memory; `docs/operations.md` derives the worst case from them and from the
//! constants below.

pub mod control;
mod limits;
mod observe;
mod replica;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use self::limits::{BudgetLayer, Incoming};
use self::observe::ObserveLayer;
use self::tls::{Tls, TlsIncoming};
use crate::auth::AuthLayer;
use crate::config::{Config, Limits, Mode};
use crate::log::checkpoint::LogSigner;
use crate::pb::server::admin_service_server::AdminServiceServer;
use crate::pb::server::log_service_server::LogServiceServer;
use crate::pb::server::registry_service_server::RegistryServiceServer;
use crate::registry::{Policy, Registry};
use crate::service::{AdminApi, LogApi, RegistryApi};
use crate::storage::Store;
use crate::{genesis, pb};

/// Largest `RegistryService` request decoded. A full batch of 10,000 hash submissions is about
/// 3 MB; 16 MiB leaves room for larger entries (clients split batches to fit, see
/// `cli::submit`) while bounding what one call can make the server buffer. The element caps of
/// `wire` keep the decoded request within a small factor of this.
pub const MAX_REQUEST: usize = 16 << 20;
/// Largest `RegistryService` reply encoded. The registry stops a lookup reply at a byte budget
/// of about 16 MiB of records; the framing of up to 10,000 results adds well under 1 MiB, and
/// the rest is margin so that a reply within the budget is never refused by the encoder.
pub const MAX_REPLY: usize = crate::registry::MAX_REPLY_BYTES + (4 << 20);
/// Largest request decoded by every other service: admin reads, health and reflection requests
/// are a few hundred bytes. Health and reflection are open to any TLS peer and their streams
/// are not rationed, so this bounds what each of their open streams can make the server buffer.
pub const MAX_SMALL_REQUEST: usize = 64 << 10;
/// HTTP/2 flow-control window per stream. The default, 64 KiB, makes a batch call of a few
/// megabytes wait for dozens of window updates, one round trip each.
pub const WINDOW: u32 = 8 << 20;
/// HTTP/2 flow-control window per connection: a few batch calls in flight. It is also the most
/// request data a peer can make the server hold unread per connection (for calls waiting for a
/// permit, or refused before their body is read), a memory commitment per connection.
pub const CONNECTION_WINDOW: u32 = 32 << 20;
/// After the shutdown grace, how long connections get to end and release the registry before
/// the server gives up on closing it cleanly.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Opens the store, bootstraps it with the genesis entry if it is empty, and serves on
/// `listener` until `shutdown` completes. Then it marks itself `NOT_SERVING`, stops accepting,
/// gives open calls `limits.shutdown-grace` to finish, closes the connections that remain,
/// drains the sequencer and closes the database.
///
/// # Errors
/// When the store cannot be opened, the genesis entry is refused, or TLS setup fails.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_sharing(config, listener, shutdown, drop).await
}

/// [`serve`], handing `share` the registry once it is open, before the first call is
/// accepted: `hashforum bench` reads the same store in process beside the server, for the
/// in-process figures its gRPC figures are compared with. Whoever holds the registry must
/// drop it before `shutdown` completes, or the server cannot close it cleanly.
///
/// # Errors
/// As [`serve`].
pub async fn serve_sharing(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    share: impl FnOnce(Arc<Registry>) + Send,
) -> anyhow::Result<()> {
    // Shutdown is a token from here on: a replica's first catch-up waits on it too.
    let shutting = CancellationToken::new();
    {
        let shutting = shutting.clone();
        tokio::spawn(async move {
            shutdown.await;
            shutting.cancel();
        });
    }
    let store = Store::open(&config.data_dir)
        .with_context(|| format!("opening {}", config.data_dir.display()))?;
    let policy = Policy {
        origin: config.origin.clone(),
        admin_freshness: config.limits.admin_statement_window,
        max_blocking: config.limits.max_requests,
        write_quorum: 0,
        cosignature_timeout: Duration::ZERO,
    };
    let policy = match &config.mode {
        Mode::Primary { options, .. } => Policy {
            write_quorum: options.write_quorum,
            cosignature_timeout: options.cosignature_timeout,
            ..policy
        },
        Mode::Replica(_) => policy,
    };
    let (registry, follower) = match &config.mode {
        Mode::Primary {
            log_key, genesis, ..
        } => {
            genesis::bootstrap(&store, genesis, &log_key.verifying_key(), &config.origin)?;
            let signer = LogSigner::new(&config.origin, log_key.clone())?;
            tracing::info!(vkey = %signer.vkey(), "the log's verifier key (forum.vkey)");
            (Arc::new(Registry::start(store, policy, signer)?), None)
        }
        Mode::Replica(replica) => match replica::open(store, policy, replica, &shutting).await? {
            Some((registry, follower)) => (Arc::new(registry), Some(follower)),
            None => return Ok(()),
        },
    };
    share(registry.clone());
    let addr: SocketAddr = listener.local_addr()?;
    let limits = config.limits.clone();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<RegistryServiceServer<RegistryApi>>()
        .await;
    health.set_serving::<AdminServiceServer<AdminApi>>().await;
    health.set_serving::<LogServiceServer<LogApi>>().await;
    let following = follower.map(|f| f.spawn(registry.failed().clone(), health.clone()));
    // Reflection v1, and v1alpha for the tools that still speak only it (Python's
    // grpcio-reflection client, several GUI clients).
    let reflection_v1 = reflection()
        .build_v1()?
        .max_decoding_message_size(MAX_SMALL_REQUEST);
    let reflection_v1alpha = reflection()
        .build_v1alpha()?
        .max_decoding_message_size(MAX_SMALL_REQUEST);
    let health_service = health_service.max_decoding_message_size(MAX_SMALL_REQUEST);
    let registry_svc = RegistryServiceServer::new(RegistryApi::new(registry.clone()))
        .max_decoding_message_size(MAX_REQUEST)
        .max_encoding_message_size(MAX_REPLY);
    let admin_svc = AdminServiceServer::new(AdminApi::new(registry.clone()))
        .max_decoding_message_size(MAX_SMALL_REQUEST);
    let log_svc = LogServiceServer::new(LogApi::new(registry.clone()))
        .max_decoding_message_size(MAX_SMALL_REQUEST);

    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let tls = Tls::load(config.tls_files.clone())?;
    tls.watch(stop.clone());
    let incoming = TlsIncoming::new(
        Incoming::new(
            TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(limits.tcp_keepalive)),
            limits.max_connections,
            abort.clone(),
        ),
        tls,
        limits.tls_handshake_timeout,
    );
    if let Some(listen) = config.metrics {
        let metrics = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the metrics address {listen}"))?;
        let at = crate::metrics::spawn(metrics, &registry, stop.clone())?;
        tracing::info!(addr = %at, "metrics on http://{at}/metrics");
    }
    let router = builder(&limits)
        .layer(ObserveLayer)
        .layer(AuthLayer::new(registry.clone()))
        .layer(BudgetLayer::new(
            limits.max_requests,
            limits.request_timeout,
            limits.max_queue_wait,
            crate::quota::Quotas::new(config.quotas.clone()),
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(registry_svc)
        .add_service(admin_svc)
        .add_service(log_svc);
    // Without its control socket the server still serves; `hashforum backup` then says where
    // to look.
    let control = control::start(&config.data_dir, registry.clone())
        .inspect_err(|e| {
            tracing::error!(error = %e, "no control socket: `hashforum backup` cannot reach this server");
        })
        .ok();
    tracing::info!(%addr, origin = %config.origin, primary = registry.primary(), "serving");
    let stopped = stop.clone();
    let mut server = tokio::spawn(
        router.serve_with_incoming_shutdown(incoming, async move { stopped.cancelled().await }),
    );

    let failed = registry.failed().clone();
    let (ended, store_failed) = tokio::select! {
        () = shutting.cancelled() => (None, false),
        () = failed.cancelled() => (None, true),
        // The server ends by itself only on an error: report it after closing the registry.
        ended = &mut server => (Some(ended), false),
    };
    tracing::info!(store_failed, "shutting down");
    not_serving(&health).await;
    stop.cancel();
    if let Some(control) = control {
        control.stop().await;
    }
    if let Some(following) = following {
        following.stop().await;
    }
    let served = match ended {
        Some(ended) => joined(ended),
        None => drain(server, &abort, limits.shutdown_grace).await,
    };
    // Whatever is still connected now is past its grace.
    abort.cancel();
    let is_primary = registry.is_primary();
    close(registry).await;
    tracing::info!("stopped");
    if store_failed {
        if is_primary {
            anyhow::bail!(
                "a group commit failed, so the server stopped (see the log for the cause)"
            );
        }
        anyhow::bail!("the replica's store failed, so it stopped (see the log for the cause)");
    }
    served
}

/// Server reflection describing `hashforum.v1` and health.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

type Served = Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>;

/// The outcome of the server task.
fn joined(ended: Served) -> anyhow::Result<()> {
    match ended {
        Ok(served) => Ok(served?),
        Err(join) => Err(anyhow::anyhow!("the server task failed: {join}")),
    }
}

/// Marks every health name `NOT_SERVING`, so that balancers and `Watch` clients learn of the
/// shutdown first, while the server still answers.
async fn not_serving(health: &tonic_health::server::HealthReporter) {
    for name in [
        <RegistryServiceServer<RegistryApi> as tonic::server::NamedService>::NAME,
        <AdminServiceServer<AdminApi> as tonic::server::NamedService>::NAME,
        "",
    ] {
        health
            .set_service_status(name, tonic_health::ServingStatus::NotServing)
            .await;
    }
}

/// The transport settings from `[limits]` (TLS is `tls`'s, on the incoming connections).
fn builder(limits: &Limits) -> Server {
    Server::builder()
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(limits.max_streams_per_connection)
        .concurrency_limit_per_connection(limits.max_requests_per_connection)
        .timeout(limits.request_timeout)
        .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout))
        .trace_fn(|req| {
            tracing::info_span!("rpc", path = %req.uri().path(), member = tracing::field::Empty)
        })
}

/// Waits up to `grace` for tonic's graceful drain (every connection closed), then aborts what
/// remains: the accept loop is dropped and every connection's I/O fails, which ends the
/// connection tasks and the calls on them.
async fn drain(
    mut server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    abort: &CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    match tokio::time::timeout(grace, &mut server).await {
        Ok(ended) => joined(ended),
        Err(_) => {
            tracing::warn!(
                ?grace,
                "shutdown grace is over; closing the remaining connections"
            );
            abort.cancel();
            server.abort();
            // The task is aborted: whatever it says now (cancelled) is expected.
            let _ = server.await;
            Ok(())
        }
    }
}

/// Takes the registry back once every connection has let go of it, and closes it: the
/// sequencer commits what is queued and the database is closed. If something still holds it
/// after [`RELEASE_WAIT`], the server logs it and stops anyway: queued jobs then commit when
/// the last holder drops it, and nothing acknowledged is at risk.
async fn close(mut registry: Arc<Registry>) {
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    loop {
        match Arc::try_unwrap(registry) {
            Ok(registry) => return registry.close().await,
            Err(shared) if tokio::time::Instant::now() < deadline => {
                registry = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(shared) => {
                tracing::error!(
                    holders = Arc::strong_count(&shared) - 1,
                    "the registry is still in use after shutdown; not closing it cleanly"
                );
                return;
            }
        }
    }
}
