//! TLS with client certificates, and its files reloaded without a restart.
//!
//! The server does its own TLS handshakes (tonic then serves HTTP/2 over the finished
//! streams, and still sees the peer's certificates through `TlsConnectInfo`), so that the
//! certificate, key and client CA can be replaced while it serves: on `SIGHUP`, and when one
//! of the files' modification time changes (checked every [`WATCH_EVERY`]). A new
//! configuration applies to connections accepted from then on; open ones keep the one they
//! were made with. Files that do not load (a key that does not match its certificate, a
//! half-written PEM) are refused and logged, and the configuration in use stays: a bad
//! rotation never takes the server down.
//!
//! Handshakes run concurrently, each within `limits.tls-handshake-timeout`, while the
//! connection holds its `max-connections` permit (see `limits`).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::task::JoinSet;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;

use super::limits::Conn;
use crate::config::TlsFiles;

/// How often the files' modification times are checked.
pub(super) const WATCH_EVERY: Duration = Duration::from_secs(10);

/// The TLS configuration in use, and where it comes from.
pub(super) struct Tls {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
}

impl Tls {
    /// Loads the files.
    ///
    /// # Errors
    /// When a file cannot be read or parsed, or the key does not match the certificate.
    pub(super) fn load(files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        let config = server_config(&files)?;
        Ok(Arc::new(Self {
            files,
            current: ArcSwap::from(config),
        }))
    }

    /// Loads the files again and uses them for new connections; on failure keeps the
    /// configuration in use.
    ///
    /// # Errors
    /// Why the files were refused.
    pub(super) fn reload(&self) -> anyhow::Result<()> {
        let config = server_config(&self.files)?;
        self.current.store(config);
        Ok(())
    }

    /// Reloads on `SIGHUP` and when a file changes, until `stop`. After a refused reload the
    /// files are tried again at each check once they change again (contents, mode or owner),
    /// so fixing them is enough.
    pub(super) fn watch(self: &Arc<Self>, stop: CancellationToken) {
        let tls = self.clone();
        let mut hangups = hangups();
        tokio::spawn(async move {
            // The files as last loaded, and as last refused.
            let mut loaded = tls.state();
            let mut refused = None;
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let why = tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {
                        let now = tls.state();
                        if now == loaded || Some(&now) == refused.as_ref() {
                            continue;
                        }
                        "a TLS file changed"
                    }
                    Some(()) = next_hangup(&mut hangups) => "SIGHUP",
                };
                let state = tls.state();
                match tls.reload() {
                    Ok(()) => {
                        loaded = state;
                        refused = None;
                        tracing::info!(why, "TLS certificate, key and client CA reloaded");
                    }
                    Err(err) => {
                        refused = Some(state);
                        tracing::error!(
                            why,
                            error = format!("{err:#}"),
                            "TLS files refused; still using the previous ones"
                        );
                    }
                }
            }
        });
    }

    /// What the watch compares: each file's modification and change times and length (`None`
    /// for a file that cannot be read now). The change time covers `chmod` and `chown`.
    fn state(&self) -> [Option<(SystemTime, i64, u64)>; 3] {
        let at = |p: &PathBuf| {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(p).ok()?;
            Some((
                meta.modified().ok()?,
                meta.ctime_nsec() + meta.ctime() * 1_000_000_000,
                meta.len(),
            ))
        };
        [
            at(&self.files.cert),
            at(&self.files.key),
            at(&self.files.client_ca),
        ]
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangups() -> Hangups {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(err) => {
            tracing::error!(%err, "no SIGHUP handler: TLS files reload only when they change");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangups() -> Hangups {}

#[cfg(unix)]
async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    match hangups {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangups) -> Option<()> {
    std::future::pending().await
}

/// A rustls server configuration from the files: the certificate chain and key, client
/// certificates required and verified against the client CA, HTTP/2 only.
fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let read =
        |path: &PathBuf| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let chain = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", files.cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{}: no certificate in the file",
        files.cert.display()
    );
    let key_pem = crate::fsutil::read_private(&files.key)
        .with_context(|| format!("reading {}", files.key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("{}: not a PEM private key", files.key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(&files.client_ca)?) {
        let ca =
            ca.with_context(|| format!("{}: not PEM certificates", files.client_ca.display()))?;
        roots.add(ca).with_context(|| {
            format!("{}: not a usable CA certificate", files.client_ca.display())
        })?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .with_context(|| format!("{}: no client CA", files.client_ca.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "{} and {} do not make a usable certificate and key",
                files.cert.display(),
                files.key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepted connections after their TLS handshake, made with the configuration current when
/// each was accepted.
pub(super) struct TlsIncoming<S> {
    inner: S,
    inner_done: bool,
    tls: Arc<Tls>,
    timeout: Duration,
    handshakes: JoinSet<Option<TlsStream<Conn>>>,
}

impl<S> TlsIncoming<S> {
    pub(super) fn new(inner: S, tls: Arc<Tls>, timeout: Duration) -> Self {
        Self {
            inner,
            inner_done: false,
            tls,
            timeout,
            handshakes: JoinSet::new(),
        }
    }
}

impl<S> Stream for TlsIncoming<S>
where
    S: Stream<Item = io::Result<Conn>> + Unpin,
{
    type Item = io::Result<TlsStream<Conn>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Start a handshake for every connection accepted meanwhile.
        while !this.inner_done {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(conn))) => {
                    let accept = this.tls.acceptor().accept(conn);
                    let timeout = this.timeout;
                    this.handshakes.spawn(async move {
                        match tokio::time::timeout(timeout, accept).await {
                            Ok(Ok(stream)) => Some(stream),
                            Ok(Err(err)) => {
                                tracing::debug!(%err, "TLS handshake failed");
                                None
                            }
                            Err(_) => {
                                tracing::debug!(?timeout, "TLS handshake timed out");
                                None
                            }
                        }
                    });
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => this.inner_done = true,
                Poll::Pending => break,
            }
        }
        loop {
            match this.handshakes.poll_join_next(cx) {
                Poll::Ready(Some(Ok(Some(stream)))) => return Poll::Ready(Some(Ok(stream))),
                // A failed handshake, or its task panicked: that connection only.
                Poll::Ready(Some(Ok(None) | Err(_))) => {}
                Poll::Ready(None) if this.inner_done => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}
