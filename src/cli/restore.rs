//! `hashforum restore`: restores a primary's data directory from a backup, and confirms a
//! restored store so that the primary takes writes again (`backup::restore` says why it waits).
//!
//! ```text
//! hashforum restore --config FILE --from BACKUP [--latest-checkpoint FILE | --no-newer-checkpoint]
//! hashforum restore --config FILE --confirm (--latest-checkpoint FILE | --no-newer-checkpoint)
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::backup::{control, open_stopped, verifier};
use crate::backup::restore::{self, Confirmation};
use crate::config::{Config, Mode};
use crate::pb::control::ConfirmRestoreRequest;

/// `hashforum restore --config FILE (--from BACKUP | --confirm)`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The primary's config: the backup is restored into its data directory (missing or
    /// empty), and checked with its log key.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The backup to restore (`hashforum backup --out DIR`).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "confirm",
        conflicts_with = "confirm"
    )]
    pub from: Option<PathBuf>,
    /// Confirm a restored store (the server running on it, or stopped), so that the primary
    /// takes writes again; give --latest-checkpoint or --no-newer-checkpoint.
    #[arg(long)]
    pub confirm: bool,
    /// The latest checkpoint the forum's replicas or members hold (`hashforum log checkpoint`
    /// against a replica, or a mirror's): refused when it is larger than the backup.
    #[arg(long, value_name = "FILE", conflicts_with = "no_newer_checkpoint")]
    pub latest_checkpoint: Option<PathBuf>,
    /// Your word that the log key signed no checkpoint larger than the backup (the primary
    /// was lost with nothing published since the backup).
    #[arg(long)]
    pub no_newer_checkpoint: bool,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `restore`.
///
/// # Errors
/// When the backup does not verify, the confirmation is refused, the data directory is not
/// empty, or a file cannot be read or written.
pub async fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    if !matches!(config.mode, Mode::Primary { .. }) {
        anyhow::bail!(
            "{} is a replica's config: start a replica with `hashforum bootstrap` or let it \
             catch up; `restore` is for a primary",
            args.config.display()
        );
    }
    let confirmation = match (&args.latest_checkpoint, args.no_newer_checkpoint) {
        (Some(path), _) => Some(Confirmation::LatestCheckpoint(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )),
        (None, true) => Some(Confirmation::NoNewerCheckpoint),
        (None, false) => None,
    };
    match (&args.from, confirmation) {
        (Some(from), confirmation) => restore_from(&args, &config, from, confirmation).await,
        (None, Some(confirmation)) => confirm(&args, &config, confirmation).await,
        (None, None) => {
            anyhow::bail!("--confirm needs --latest-checkpoint FILE or --no-newer-checkpoint")
        }
    }
}

async fn restore_from(
    args: &RestoreArgs,
    config: &Config,
    from: &std::path::Path,
    confirmation: Option<Confirmation>,
) -> anyhow::Result<ExitCode> {
    let verifier = verifier(config)?;
    let (from, data_dir) = (from.to_owned(), config.data_dir.clone());
    let restored = tokio::task::spawn_blocking(move || {
        restore::restore(&from, &data_dir, &verifier, confirmation.as_ref())
    })
    .await??;
    let manifest = &restored.verified.manifest;
    if args.json {
        println!(
            "{}",
            json!({
                "restored": true,
                "size": manifest.size,
                "root": manifest.root,
                "created_at": manifest.created_at,
                "confirmed": !restored.unconfirmed,
            })
        );
    } else {
        println!(
            "restored {} entries (backup of {}) into {}",
            manifest.size,
            manifest.created_at,
            config.data_dir.display()
        );
        if restored.unconfirmed {
            println!(
                "the primary takes no writes until you confirm that the log key signed no \
                 checkpoint larger than {}: hashforum restore --config {} --confirm \
                 --latest-checkpoint FILE (or --no-newer-checkpoint)",
                manifest.size,
                args.config.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Confirms through the running server's control socket, or in the stopped server's store.
async fn confirm(
    args: &RestoreArgs,
    config: &Config,
    confirmation: Confirmation,
) -> anyhow::Result<ExitCode> {
    let (size, was_restored) = match control(&config.data_dir).await {
        Some(mut client) => {
            let (latest_checkpoint, no_newer_checkpoint) = match confirmation {
                Confirmation::LatestCheckpoint(note) => (note, false),
                Confirmation::NoNewerCheckpoint => (Vec::new(), true),
            };
            let reply = client
                .confirm_restore(ConfirmRestoreRequest {
                    latest_checkpoint,
                    no_newer_checkpoint,
                })
                .await?
                .into_inner();
            (reply.size, reply.was_restored)
        }
        None => {
            let verifier = verifier(config)?;
            let data_dir = config.data_dir.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, bool)> {
                let store = open_stopped(&data_dir)?;
                let was = restore::confirm(&store, &verifier, &confirmation)?;
                Ok((store.size()?, was.is_some()))
            })
            .await??
        }
    };
    if args.json {
        println!(
            "{}",
            json!({ "confirmed": true, "size": size, "was_restored": was_restored })
        );
    } else if was_restored {
        println!("confirmed: the primary takes writes again, from {size} entries");
    } else {
        println!(
            "nothing to confirm: the store was not waiting for a confirmation ({size} entries)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
