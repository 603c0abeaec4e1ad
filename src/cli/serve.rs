//! `hashforum serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::forum::{self, ForumSpec, DEV_ORIGIN};

/// The directory `serve --dev` uses, relative to the working directory.
pub const DEV_DIR: &str = "hashforum-dev";

/// `hashforum serve --config FILE [--listen ADDR]` or `hashforum serve --dev`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The server config written by `hashforum init`.
    #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
    pub config: Option<PathBuf>,
    /// Serve ./hashforum-dev on 127.0.0.1:50051, creating it (members alpha and beta) if missing.
    #[arg(long)]
    pub dev: bool,
    /// Listen here instead of the config's address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// Runs the server until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the config is invalid or the server fails to start.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // SIGHUP reloads the TLS files once the server serves; from now on it must never take the
    // default action (terminate), which a `systemctl reload` during a long start-up (a replica
    // catching up) would otherwise trigger. tokio keeps the handler for the process's life.
    #[cfg(unix)]
    let _hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let path = match (&args.config, args.dev) {
        (Some(path), _) => path.clone(),
        (None, _) => dev_config()?,
    };
    let mut config = Config::load(&path)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    eprintln!(
        "hashforum serving {} on {}",
        config.origin,
        listener.local_addr()?
    );
    crate::server::serve(config, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn dev_config() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(DEV_DIR);
    let config = dir.join("server/hashforum.toml");
    if !config.exists() {
        let spec = ForumSpec {
            dir: dir.clone(),
            listen: "127.0.0.1:50051".parse()?,
            origin: DEV_ORIGIN.into(),
        };
        forum::init_dev(&spec, &["alpha".into(), "beta".into()], 0)?;
        eprintln!(
            "created dev forum in ./{DEV_DIR} (identities: admin, alpha, beta in ./{DEV_DIR}/identities)"
        );
    }
    Ok(config)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
