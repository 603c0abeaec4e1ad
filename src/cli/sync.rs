//! `hashforum sync --out DIR`: a member's verified local copy of the log and its views.
//!
//! The copy is a RocksDB database in `DIR/db`, written by the same follower as a replica's:
//! every entry is replayed with the registry's own `state` code and its author's signature
//! verified with the key valid at its index, and the rebuilt tree must have the root of a
//! checkpoint signed by the log key before anything is written. A run picks up where the last
//! verified checkpoint left off, whatever interrupted it. `lookup --local DIR` and
//! `match --local DIR` then answer from the copy, and `export --local DIR` writes its hashes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{connect, ClientOpts};
use crate::follow::source::{self, FollowStatus, Options};
use crate::follow::{Evidence, FollowError, Follower};
use crate::forum::VKEY_FILE;
use crate::log::checkpoint::LogVerifier;
use crate::storage::Store;

/// `hashforum sync --out DIR [--vkey forum.vkey] [--follow]`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// The local copy's directory (made if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The forum's verifier key; required the first time, then kept as DIR/forum.vkey.
    #[arg(long, value_name = "FILE")]
    pub vkey: Option<PathBuf>,
    /// Keep following the log once caught up (until Ctrl-C).
    #[arg(long)]
    pub follow: bool,
}

/// Runs `sync`: exits 0 once the copy holds the server's latest checkpoint; 1 when the
/// server's log was refused (the evidence is kept in DIR/evidence and named).
///
/// # Errors
/// When the copy cannot be opened or the server reached.
pub async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let verifier = vkey(&args)?;
    let evidence_dir = args.out.join("evidence");
    let kept = Evidence::kept(&evidence_dir);
    if let Some(first) = kept.first() {
        anyhow::bail!(
            "{} holds evidence against the server's log ({}): check it with `hashforum verify \
             --evidence FILE`; sync resumes once it is moved away",
            evidence_dir.display(),
            first.display()
        );
    }
    let db = args.out.join("db");
    let store = Store::open(&db).with_context(|| db.display().to_string())?;
    let client = connect(&args.client).await?;
    let source_name = args
        .client
        .server
        .clone()
        .unwrap_or_else(|| "the identity's server".into());
    let follower = Follower::open(store, verifier, &source_name, None)
        .with_context(|| format!("{}: not a verified copy", db.display()))?;
    let start_size = follower.size();
    let (status, status_rx) = watch::channel(FollowStatus {
        size: start_size,
        ..FollowStatus::default()
    });
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
    }
    let progress = tokio::spawn(report(status_rx, args.client.json));
    let started = Instant::now();
    let options = Options {
        follow: args.follow,
        retry: args.follow,
        poll: Duration::from_secs(2),
        cosign: None,
    };
    let outcome = source::run(follower, client, options, status, stop.clone()).await;
    let _ = progress.await;
    let secs = started.elapsed().as_secs_f64();
    match outcome {
        Ok(follower) if stop.is_cancelled() => {
            eprintln!(
                "interrupted: {} verified entries are kept in {}; run sync again to resume",
                follower.size(),
                args.out.display()
            );
            Ok(ExitCode::from(130))
        }
        Ok(follower) => {
            let size = follower.size();
            let applied = size - start_size;
            let rate = applied as f64 / secs.max(1e-9);
            if args.client.json {
                println!(
                    "{}",
                    json!({"done": true, "size": size, "applied": applied, "seconds": secs, "entries_per_second": rate.round()})
                );
            } else {
                println!(
                    "{}: {size} verified entries ({applied} new in {secs:.1} s, {rate:.0}/s)",
                    args.out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(FollowError::Refused(evidence)) => {
            let path = evidence.keep(&evidence_dir)?;
            eprintln!(
                "error: refused the server's log: {}\nevidence kept in {} (check it with \
                 `hashforum verify --vkey FILE --evidence {}`)",
                evidence.reason,
                path.display(),
                path.display()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// The verifier key: `--vkey`, kept as DIR/forum.vkey; or the one kept there.
fn vkey(args: &SyncArgs) -> anyhow::Result<LogVerifier> {
    let kept = args.out.join(VKEY_FILE);
    let text = match &args.vkey {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--vkey {}", path.display()))?;
            if let Ok(old) = std::fs::read_to_string(&kept) {
                if old.trim() != text.trim() {
                    anyhow::bail!(
                        "--vkey {} is not the key this copy was made with ({})",
                        path.display(),
                        kept.display()
                    );
                }
            }
            text
        }
        None => std::fs::read_to_string(&kept).with_context(|| {
            format!(
                "{}: give --vkey FILE (the forum's forum.vkey) the first time",
                kept.display()
            )
        })?,
    };
    let verifier = LogVerifier::from_vkey(&text).context("the verifier key")?;
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    if !kept.exists() {
        std::fs::write(&kept, format!("{}\n", text.trim()))?;
    }
    Ok(verifier)
}

/// Shows progress until the status channel closes: a bar on a terminal, JSON lines with
/// `json`, nothing otherwise.
async fn report(mut status: watch::Receiver<FollowStatus>, json: bool) {
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} entries, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = Instant::now();
    let mut last_json = Instant::now() - Duration::from_secs(1);
    while status.changed().await.is_ok() {
        let s = status.borrow_and_update().clone();
        if let Some(bar) = &bar {
            bar.set_length(s.primary_size.max(s.size));
            bar.set_position(s.size);
        }
        if json && last_json.elapsed() >= Duration::from_millis(500) {
            last_json = Instant::now();
            println!(
                "{}",
                json!({"size": s.size, "target": s.primary_size.max(s.size), "seconds": started.elapsed().as_secs_f64()})
            );
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
