//! The gRPC server: TLS with required client certificates, services, health, reflection and
//! ordered shutdown.
//!
//! A client certificate that does not chain to the forum CA fails the TLS handshake, so it never
//! reaches a handler. Every call on an accepted connection passes `auth::AuthLayer` before any
//! of its body is read: a valid certificate bound to no active member gets `UNAUTHENTICATED`, a
//! member without the method's role `PERMISSION_DENIED`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::auth::AuthLayer;
use crate::config::Config;
use crate::pb::server::admin_service_server::AdminServiceServer;
use crate::pb::server::registry_service_server::RegistryServiceServer;
use crate::registry::Registry;
use crate::service::{AdminApi, RegistryApi};
use crate::storage::Store;
use crate::{genesis, pb};

/// Largest gRPC message, either way: a 10,000-entry batch is about 3 MB.
pub const MAX_MESSAGE: usize = 64 << 20;
/// HTTP/2 flow-control window per stream. The default, 64 KiB, makes a batch call of a few
/// megabytes wait for dozens of window updates, one round trip each.
pub const WINDOW: u32 = 8 << 20;
/// HTTP/2 flow-control window per connection: a few batch calls in flight.
pub const CONNECTION_WINDOW: u32 = 32 << 20;

/// Opens the store, bootstraps it with the genesis entry if it is empty, and serves on
/// `listener` until `shutdown` completes. Then it stops accepting, lets in-flight calls finish,
/// drains the sequencer and closes the database.
///
/// # Errors
/// When the store cannot be opened, the genesis entry is refused, or TLS setup fails.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::open(&config.data_dir)
        .with_context(|| format!("opening {}", config.data_dir.display()))?;
    genesis::bootstrap(
        &store,
        &config.genesis,
        &config.log_key.verifying_key(),
        &config.origin,
    )?;
    let registry = Arc::new(Registry::start(store)?);
    let addr: SocketAddr = listener.local_addr()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<RegistryServiceServer<RegistryApi>>()
        .await;
    health.set_serving::<AdminServiceServer<AdminApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&config.tls_cert, &config.tls_key))
        .client_ca_root(Certificate::from_pem(&config.client_ca));
    let registry_svc = RegistryServiceServer::new(RegistryApi::new(registry.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let admin_svc = AdminServiceServer::new(AdminApi::new(registry.clone()));
    tracing::info!(%addr, origin = %config.origin, "serving");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = Server::builder()
        .tls_config(tls)?
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .trace_fn(|req| {
            tracing::info_span!("rpc", path = %req.uri().path(), member = tracing::field::Empty)
        })
        .layer(AuthLayer::new(registry.clone()))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(registry_svc)
        .add_service(admin_svc)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    let server = tokio::spawn(server);
    shutdown.await;
    tracing::info!("shutting down");
    health
        .set_not_serving::<RegistryServiceServer<RegistryApi>>()
        .await;
    health
        .set_not_serving::<AdminServiceServer<AdminApi>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let _ = stop_tx.send(());
    server.await??;
    match Arc::try_unwrap(registry) {
        Ok(registry) => registry.close().await,
        Err(_) => tracing::warn!("registry still referenced at shutdown"),
    }
    tracing::info!("stopped");
    Ok(())
}
