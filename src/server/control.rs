//! The control socket: `ControlService` on a Unix domain socket in the data directory
//! (`DATA/control.sock`), never on the network listener, for `hashforum backup` and
//! `hashforum restore --confirm` run on the server's machine.
//!
//! Authorization is the file system's, as for Docker's or containerd's socket: the socket is
//! mode 0600, and a peer whose user id (`SO_PEERCRED`) is neither the socket's owner nor root
//! is disconnected before anything is read (which also covers a peer that connected in the
//! moment between `bind` and `chmod`). A stale socket left by a killed server is replaced at
//! start (the store's lock, taken before, means no other server runs here); the socket is
//! removed when the server stops.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::pb::control::control_service_server::ControlServiceServer;
use crate::registry::Registry;
use crate::service::ControlApi;

/// The socket's file name in the data directory.
pub const SOCKET: &str = "control.sock";

/// How long the control server gets to end its calls at shutdown (a backup in progress goes on
/// in its blocking task and finishes or fails on its own).
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The path of the control socket of the data directory `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// The control server while it runs; [`Control::stop`] ends it and removes the socket.
pub(super) struct Control {
    path: PathBuf,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Binds the control socket of `data_dir` and serves `registry` on it.
///
/// # Errors
/// When the socket cannot be bound (for example a path longer than the 107 bytes a Unix
/// socket address holds) or its mode set.
pub(super) fn start(data_dir: &Path, registry: Arc<Registry>) -> std::io::Result<Control> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "replaced a stale control socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let owner = std::fs::metadata(&path)?.uid();
    let incoming = UnixListenerStream::new(listener).filter(move |conn| match conn {
        Ok(stream) => {
            let uid = stream.peer_cred().map(|c| c.uid()).ok();
            let allowed = uid.is_some_and(|uid| uid == owner || uid == 0);
            if !allowed {
                tracing::warn!(?uid, "refused a control connection from another user");
            }
            allowed
        }
        Err(_) => true,
    });
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let service = ControlServiceServer::new(ControlApi::new(registry));
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move { stopped.cancelled().await }),
    );
    tracing::info!(path = %path.display(), "control socket");
    Ok(Control { path, stop, task })
}

impl Control {
    /// Stops serving and removes the socket.
    pub(super) async fn stop(mut self) {
        self.stop.cancel();
        if tokio::time::timeout(STOP_WAIT, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(error = %e, path = %self.path.display(), "removing the control socket");
        }
    }
}
