//! `hashforum bootstrap --config FILE --from DIR`: starts a replica's data directory from a
//! copy of another server's (a primary's or a replica's, stopped, or a RocksDB checkpoint of
//! one), instead of fetching every entry over the network. Nothing of the copy is trusted: its
//! entries are replayed unit by unit with the same checks as a replica makes on entries it
//! fetches, and only the views rebuilt from them are written.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::config::{Config, Mode};
use crate::follow::{FollowError, Follower};
use crate::storage::Store;

/// `hashforum bootstrap --config replica.toml --from COPY`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The replica's config (its data directory must be empty or missing).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The copied data directory to replay.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
}

/// Runs `bootstrap`: exits 0 when the copy verified and was replayed, 1 when it was refused
/// (the evidence is kept in the replica's evidence directory).
///
/// # Errors
/// When the config or either directory cannot be opened, or the data directory is not empty.
pub async fn run(args: BootstrapArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let Mode::Replica(replica) = &config.mode else {
        anyhow::bail!("{}: not a replica's config", args.config.display());
    };
    let copy = Store::open_read_only(&args.from)
        .with_context(|| format!("opening the copy {} read-only", args.from.display()))?;
    let store =
        Store::open(&config.data_dir).with_context(|| config.data_dir.display().to_string())?;
    if store.size()? > 0 {
        anyhow::bail!(
            "{} is not empty: bootstrap starts a new replica",
            config.data_dir.display()
        );
    }
    let source = format!("the copy {}", args.from.display());
    let mut follower = Follower::open(store, replica.verifier.clone(), &source, None)?;
    // Not the replica's own evidence directory: a bad copy says nothing against the primary,
    // and the replica may still catch up over the network.
    let evidence_dir = replica.evidence_dir.join("copies");
    let started = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut last = Instant::now();
        follower.replay_copy(&copy, |size, target| {
            if last.elapsed().as_secs() >= 2 {
                last = Instant::now();
                eprintln!("{size} of {target} entries verified");
            }
        })
    })
    .await?;
    match outcome {
        Ok(applied) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "replayed and verified {applied} entries in {secs:.1} s into {}; start the \
                 replica to follow the primary from there",
                config.data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(FollowError::Refused(evidence)) => {
            let path = evidence.keep(&evidence_dir)?;
            eprintln!(
                "error: the copy does not verify: {}\nevidence kept in {}",
                evidence.reason,
                path.display()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
