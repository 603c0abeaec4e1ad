//! `hashforum bench sync`: how fast a new replica and a member's `sync` catch up, with full
//! verification, over the real Log API; beside, from the same run, the ceilings: the same
//! replay from the primary's store in process (no network), and batch signature verification
//! of the same entries alone on all cores.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::bench::{median, presign, run_concurrent, submit_batch, verify_only, BenchServer};
use crate::client::Client;
use crate::follow::source::{self, FollowStatus, Options};
use crate::follow::Follower;
use crate::identity::Identity;
use crate::log::checkpoint::LogVerifier;
use crate::storage::Store;

/// Options of `hashforum bench sync`.
#[derive(Debug, Args)]
pub struct SyncBenchArgs {
    /// Entries in the primary's log to catch up with.
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: usize,
    /// Rounds of each catch-up (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
///
/// # Errors
/// When the server cannot start, a call fails, or a catch-up does not reach the primary's
/// size.
pub async fn run(args: &SyncBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.rounds > 0 && args.entries > 0, "zero option");
    let bench = BenchServer::start_with_replicas(1).await?;
    let vkey = std::fs::read_to_string(bench.dir().join(crate::forum::VKEY_FILE))?;
    let verifier = LogVerifier::from_vkey(&vkey)?;
    eprintln!("signing {} entries ...", args.entries);
    let envelopes = presign(&bench.identity, 0..args.entries);
    let ceiling_verify = verify_only(&envelopes, bench.identity.signing_key.verifying_key())?.rate;
    eprintln!("ingesting ...");
    let batches: Vec<Vec<_>> = envelopes.chunks(5_000).map(<[_]>::to_vec).collect();
    run_concurrent(&bench.client, batches, 4, submit_batch).await?;
    drop(envelopes);
    let size = {
        let mut client = bench.client.clone();
        let note = client
            .log
            .get_checkpoint(crate::pb::GetCheckpointRequest::default())
            .await?
            .into_inner()
            .note;
        verifier.verify(&note)?.head.size
    };
    let replica = Identity::load(&bench.dir().join("identities/replica-1"))?;
    let (mut as_replica, mut as_member, mut in_process) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let rate = catch_up(&replica, &bench.addr, &verifier, size).await?;
        eprintln!("round {round}: replica catch-up {rate:.0} entries/s");
        as_replica.push(rate);
        let rate = catch_up(&bench.identity, &bench.addr, &verifier, size).await?;
        eprintln!("round {round}: member sync {rate:.0} entries/s");
        as_member.push(rate);
    }
    let dir = bench.stop_keeping().await?;
    let primary = Store::open_read_only(&dir.path().join("server/data"))?;
    for round in 1..=args.rounds {
        let scratch = tempfile::tempdir()?;
        let mut follower = Follower::open(
            Store::open(scratch.path())?,
            verifier.clone(),
            "bench",
            None,
        )?;
        let started = Instant::now();
        let applied = follower.replay_copy(&primary, |_, _| {})?;
        anyhow::ensure!(applied == size, "replayed {applied} of {size}");
        let rate = size as f64 / started.elapsed().as_secs_f64();
        eprintln!("round {round}: in-process replay {rate:.0} entries/s");
        in_process.push(rate);
    }
    let (r, m, p) = (
        median(&mut as_replica),
        median(&mut as_member),
        median(&mut in_process),
    );
    if args.json {
        println!(
            "{}",
            json!({
                "entries": size,
                "rounds": args.rounds,
                "replica_catch_up_per_s": { "median": r, "rounds": as_replica },
                "member_sync_per_s": { "median": m, "rounds": as_member },
                "in_process_replay_per_s": { "median": p, "rounds": in_process },
                "batch_verify_only_per_s": ceiling_verify,
                "replica_vs_verify": r / ceiling_verify,
                "replica_vs_in_process": r / p,
            })
        );
    } else {
        println!(
            "catch-up of {size} entries, full verification (medians of {}):",
            args.rounds
        );
        println!("  new replica, over the Log API:        {r:>9.0} entries/s");
        println!("  member sync, over the Log API:        {m:>9.0} entries/s");
        println!(
            "  in process from the primary's store:  {p:>9.0} entries/s  (replica/in-process {:.2})",
            r / p
        );
        println!(
            "  batch signature verification alone:   {ceiling_verify:>9.0} entries/s  (replica/verify {:.2})",
            r / ceiling_verify
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh follower of the server at `addr` as `identity`, until it holds `size` entries:
/// entries per second.
async fn catch_up(
    identity: &Identity,
    addr: &str,
    verifier: &LogVerifier,
    size: u64,
) -> anyhow::Result<f64> {
    let scratch = tempfile::tempdir()?;
    let store = Store::open(scratch.path())?;
    let follower = Follower::open(store, verifier.clone(), addr, None)?;
    let client = Client::connect(identity, Some(addr)).await?;
    let (status, _) = watch::channel(FollowStatus::default());
    let options = Options {
        follow: false,
        retry: false,
        poll: std::time::Duration::from_secs(1),
        cosign: None,
    };
    let started = Instant::now();
    let follower = source::run(follower, client, options, status, CancellationToken::new()).await?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        follower.size() == size,
        "caught up to {} of {size}",
        follower.size()
    );
    Ok(size as f64 / secs)
}
