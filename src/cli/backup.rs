//! `hashforum backup --config FILE --out DIR`: a consistent backup of a server's data
//! directory. While the server runs (it holds the store's lock) the server makes it, asked over
//! its control socket; while it is stopped, this command opens the store and makes the same
//! copy. Either way the backup holds every entry acknowledged before it began, and a signed
//! checkpoint that covers all of it (`backup`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::backup::{self, Manifest};
use crate::config::{Config, Mode};
use crate::log::checkpoint::{LogSigner, LogVerifier};
use crate::pb::control::control_service_client::ControlServiceClient;
use crate::pb::control::CreateBackupRequest;
use crate::server::control::socket_path;
use crate::storage::Store;

/// `hashforum backup --config FILE --out DIR`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The server's config (its data directory is backed up).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The directory to write the backup into: missing or empty.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `backup`.
///
/// # Errors
/// When the config cannot be read, `--out` is not empty, or the backup fails.
pub async fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let out =
        std::path::absolute(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    let manifest = match control(&config.data_dir).await {
        Some(mut client) => {
            let reply = client
                .create_backup(CreateBackupRequest {
                    out_dir: out.to_string_lossy().into_owned(),
                })
                .await?
                .into_inner();
            serde_json::from_str(&reply.manifest_json)
                .context("the server's manifest is not JSON")?
        }
        None => offline(&config, &out).await?,
    };
    print(&manifest, &out, args.json);
    Ok(ExitCode::SUCCESS)
}

/// A client of the control socket of the server running on `data_dir`, if one answers there.
pub(super) async fn control(
    data_dir: &Path,
) -> Option<ControlServiceClient<tonic::transport::Channel>> {
    let path = socket_path(data_dir);
    if !path.exists() {
        return None;
    }
    // The URI is required but unused: the connector dials the socket.
    let endpoint = tonic::transport::Endpoint::from_static("http://control.sock");
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .ok()?;
    Some(ControlServiceClient::new(channel))
}

/// Opens the store of a stopped server, failing clearly when a server holds it.
pub(super) fn open_stopped(data_dir: &Path) -> anyhow::Result<Store> {
    if !data_dir.join("CURRENT").exists() {
        anyhow::bail!("{} holds no store", data_dir.display());
    }
    Store::open(data_dir).with_context(|| {
        format!(
            "opening {}: a server holds its store, but its control socket {} does not answer \
             (see the server's log)",
            data_dir.display(),
            socket_path(data_dir).display()
        )
    })
}

/// The log's verifier key, from a primary's log key or a replica's `forum-vkey`.
pub(super) fn verifier(config: &Config) -> anyhow::Result<LogVerifier> {
    Ok(match &config.mode {
        Mode::Primary { log_key, .. } => {
            LogSigner::new(&config.origin, log_key.clone())?.verifier()
        }
        Mode::Replica(replica) => replica.verifier.clone(),
    })
}

/// The backup of a stopped server's store, made by this process.
async fn offline(config: &Config, out: &Path) -> anyhow::Result<Manifest> {
    let verifier = verifier(config)?;
    let data_dir = config.data_dir.clone();
    let out = out.to_owned();
    tokio::task::spawn_blocking(move || {
        let store = open_stopped(&data_dir)?;
        let copied = backup::copy(&store, &out)?;
        drop(store);
        Ok(copied.finish(&verifier, None, "offline")?)
    })
    .await?
}

fn print(manifest: &Manifest, out: &Path, json: bool) {
    if json {
        println!("{}", serde_json::to_string(manifest).unwrap_or_default());
    } else {
        println!(
            "backup of {} entries of {} ({}, root {}) written to {}",
            manifest.size,
            manifest.origin,
            manifest.taken,
            manifest.root,
            out.display()
        );
    }
}
