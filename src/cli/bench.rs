//! `hashforum bench`: ingest and lookup throughput through the real gRPC API, each beside its
//! ceiling measured in the same run, so that the ratios hold on machines of different speeds.
//!
//! Starts a dev forum's server in this process on 127.0.0.1:0 (RocksDB in a temporary
//! directory, real mTLS), then measures, client included:
//! (a) signed entries per second ingested durably through `SubmitEntries`, beside batch
//!     Ed25519 verification of the same entries alone on every core (what the server must do
//!     for each entry, and nothing else);
//! (b) after loading the store to `--records` hash records through the same API and settling
//!     it on disk (`bench_lookup`), exact lookups per second through `LookupHashes` at several
//!     hit rates, beside the same lookups through the registry's read path in process.
//! Each phase runs in rounds; the median round is the figure to quote.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use rayon::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::bench_lookup::{self, LookupFigures};
use crate::client::Client;
use crate::config::Config;
use crate::forum::{self, ForumSpec, DEV_ORIGIN};
use crate::identity::Identity;
use crate::pb;
use crate::registry::Registry;
use crate::statement::{hash_submission, Signer};
use crate::storage::LsmShape;
use crate::types::HashType;

/// Options of `hashforum bench`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Another benchmark than ingest and lookups.
    #[command(subcommand)]
    pub other: Option<OtherBench>,
    /// Signed entries to ingest in the measured rounds.
    #[arg(long, default_value_t = 300_000)]
    pub entries: usize,
    /// Hash records in the store for the lookups: the entries of the measured rounds, then
    /// more submitted through the same API (not timed), then flushed to SST files.
    #[arg(long, default_value_t = 2_000_000)]
    pub records: usize,
    /// Lookups per hit rate over all rounds (each through gRPC and again in process).
    #[arg(long, default_value_t = 3_000_000)]
    pub lookups: usize,
    /// The share of lookups that find a record, in percent: one lookup phase for each.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0u32, 1, 100])]
    pub hit_percents: Vec<u32>,
    /// Entries or hashes per call.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Rounds per phase (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// The random seed of the lookups.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Benchmarks other than ingest and lookups.
#[derive(Debug, clap::Subcommand)]
pub enum OtherBench {
    /// PDQ matching: the index against a brute-force scan, in process and through gRPC.
    Pdq(super::bench_pdq::PdqBenchArgs),
    /// Catch-up of a new replica and of `sync`, against in-process replay and verification.
    Sync(super::bench_sync::SyncBenchArgs),
}

/// Ingest rounds: through gRPC, and the verification ceiling over the same entries; as rates,
/// and as the process's CPU time per entry (client included), which other tenants of a shared
/// machine disturb much less than they disturb rates.
struct IngestFigures {
    grpc: Vec<f64>,
    verify: Vec<f64>,
    grpc_cpu_us: Vec<f64>,
    verify_cpu_us: Vec<f64>,
    /// CPU microseconds per entry over all gRPC rounds, by the kind of thread that spent it.
    by_thread: BTreeMap<&'static str, f64>,
}

/// Runs the benchmark.
///
/// # Errors
/// When an option is out of range, the server cannot start, a call fails, or a lookup finds
/// a record it should not (or misses one it should find).
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match &args.other {
        Some(OtherBench::Pdq(pdq)) => return super::bench_pdq::run(pdq).await,
        Some(OtherBench::Sync(sync)) => return super::bench_sync::run(sync).await,
        None => {}
    }
    anyhow::ensure!(
        args.rounds > 0 && args.batch > 0 && args.concurrency > 0 && args.entries > 0,
        "zero option"
    );
    anyhow::ensure!(
        args.batch <= crate::registry::MAX_LOOKUP_BATCH,
        "at most {} per call",
        crate::registry::MAX_LOOKUP_BATCH
    );
    anyhow::ensure!(
        args.records >= args.entries,
        "--records must be at least --entries"
    );
    anyhow::ensure!(
        args.hit_percents.iter().all(|&p| p <= 100),
        "a hit rate is a percentage"
    );
    let bench = BenchServer::start().await?;
    let ingest = ingest(&bench, &args).await?;
    let load = bench_lookup::load(
        &bench,
        args.entries,
        args.records,
        args.batch,
        args.concurrency,
    )
    .await?;
    let shape = bench_lookup::settle(bench.registry()).await?;
    let mut lookups = Vec::new();
    for &percent in &args.hit_percents {
        lookups.push(bench_lookup::measure(&bench, &args, percent).await?);
    }
    bench.stop().await?;
    report(&args, ingest, load, &shape, lookups);
    Ok(ExitCode::SUCCESS)
}

/// The ingest rounds: each round's entries are first verified alone (the ceiling), then
/// submitted through `SubmitEntries`.
async fn ingest(bench: &BenchServer, args: &BenchArgs) -> anyhow::Result<IngestFigures> {
    eprintln!("signing {} entries ...", args.entries);
    let envelopes = presign(&bench.identity, 0..args.entries);
    let key = bench.identity.signing_key.verifying_key();
    let per_round = args.entries.div_ceil(args.rounds);
    let mut figures = IngestFigures {
        grpc: Vec::new(),
        verify: Vec::new(),
        grpc_cpu_us: Vec::new(),
        verify_cpu_us: Vec::new(),
        by_thread: BTreeMap::new(),
    };
    // The client runs on threads of its own, so that the breakdown by thread tells its CPU
    // from the server's; they share the same cores.
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()?;
    let (identity, addr) = (bench.identity.clone(), bench.addr.clone());
    let client = client_runtime
        .spawn(async move { Client::connect(&identity, Some(&addr)).await })
        .await??;
    for (round, chunk) in envelopes.chunks(per_round).enumerate() {
        let verify = verify_only(chunk, key)?;
        let batches: Vec<Vec<pb::Envelope>> = chunk.chunks(args.batch).map(<[_]>::to_vec).collect();
        let threads = thread_cpu_seconds()?;
        let cpu = CpuClock::start()?;
        let start = Instant::now();
        let (client, concurrency) = (client.clone(), args.concurrency);
        client_runtime
            .spawn(async move { run_concurrent(&client, batches, concurrency, submit_batch).await })
            .await??;
        let rate = chunk.len() as f64 / start.elapsed().as_secs_f64();
        let cpu_us = cpu.micros_per(chunk.len())?;
        for (kind, seconds) in thread_cpu_seconds()? {
            let spent = seconds - threads.get(kind).copied().unwrap_or(0.0);
            *figures.by_thread.entry(kind).or_default() += spent * 1e6 / args.entries as f64;
        }
        eprintln!(
            "ingest round {}: {rate:.0} entries/s, {cpu_us:.1} µs CPU each; verification alone \
             {:.0}/s, {:.1} µs CPU each",
            round + 1,
            verify.rate,
            verify.cpu_us
        );
        figures.grpc.push(rate);
        figures.verify.push(verify.rate);
        figures.grpc_cpu_us.push(cpu_us);
        figures.verify_cpu_us.push(verify.cpu_us);
    }
    // Dropping a runtime may block, which an async context must not.
    client_runtime.shutdown_background();
    Ok(figures)
}

/// A dev forum's server in this process on 127.0.0.1:0, and a client of its member `bench`.
pub(super) struct BenchServer {
    dir: tempfile::TempDir,
    /// The server's address.
    pub(super) addr: String,
    /// A client of `bench` (a contributor and reader).
    pub(super) client: Client,
    /// `bench`'s identity.
    pub(super) identity: Identity,
    /// The server's registry, for reading its store in process beside it.
    registry: Arc<Registry>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl BenchServer {
    /// Creates the forum in a temporary directory and starts its server.
    pub(super) async fn start() -> anyhow::Result<Self> {
        Self::start_with_replicas(0).await
    }

    /// The same, with the replica members (and configs) `replica-1`..`replica-N`.
    pub(super) async fn start_with_replicas(replicas: u16) -> anyhow::Result<Self> {
        let tmp = tempfile::tempdir()?;
        let spec = ForumSpec {
            dir: tmp.path().to_owned(),
            listen: "127.0.0.1:0".parse()?,
            origin: DEV_ORIGIN.into(),
        };
        forum::init_dev(&spec, &["bench".into()], replicas)?;
        let config = Config::load(&tmp.path().join("server/hashforum.toml"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = format!("https://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (shared, registry) = tokio::sync::oneshot::channel::<Arc<Registry>>();
        let server = tokio::spawn(crate::server::serve_sharing(
            config,
            listener,
            async {
                let _ = stopped.await;
            },
            |registry| {
                let _ = shared.send(registry);
            },
        ));
        let Ok(registry) = registry.await else {
            // The server stopped before it opened the registry: its error says why.
            server.await??;
            anyhow::bail!("the server stopped before it served");
        };
        let identity = Identity::load(&tmp.path().join("identities/bench"))?;
        let client = Client::connect(&identity, Some(&addr)).await?;
        Ok(Self {
            dir: tmp,
            addr,
            client,
            identity,
            registry,
            stop,
            server,
        })
    }

    /// The server's registry (the same store, membership and caches the server uses).
    pub(super) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The forum's directory.
    pub(super) fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server; its data directory is kept until `keep` is dropped.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        self.stop_keeping().await.map(drop)
    }

    /// Stops the server and returns its forum directory (with the server's data).
    pub(super) async fn stop_keeping(self) -> anyhow::Result<tempfile::TempDir> {
        // The server closes the registry once nobody else holds it.
        drop(self.registry);
        let _ = self.stop.send(());
        self.server.await??;
        Ok(self.dir)
    }
}

/// The SHA-256 value of the `i`th benchmark record (lowercase hex). The store holds those of
/// `0..records`; any `i` from `records` on names a hash that is not there.
pub(super) fn hash_value(i: u64) -> String {
    hex::encode(Sha256::digest(i.to_be_bytes()))
}

/// Signed submissions of the benchmark records `range`, signed on every core.
pub(super) fn presign(identity: &Identity, range: std::ops::Range<usize>) -> Vec<pb::Envelope> {
    let signer = Signer::of(identity);
    range
        .into_par_iter()
        .map(|i| {
            signer.submit(pb::HashSubmission {
                labels: Some(pb::Labels {
                    entity: "bench-entity".into(),
                    behaviour: "glorification".into(),
                    content_type: "video".into(),
                }),
                tags: vec!["bench".into()],
                ..hash_submission(HashType::Sha256, &hash_value(i as u64))
            })
        })
        .collect()
}

/// The process's CPU time (user and system, every thread) since a start.
struct CpuClock(f64);

impl CpuClock {
    fn start() -> anyhow::Result<Self> {
        Ok(Self(process_cpu_seconds()?))
    }

    /// Microseconds of CPU since the start per one of `n` items.
    fn micros_per(&self, n: usize) -> anyhow::Result<f64> {
        Ok((process_cpu_seconds()? - self.0) * 1e6 / n.max(1) as f64)
    }
}

/// This process's CPU time so far, from `/proc/self/stat` (`utime` and `stime`, in the
/// kernel's fixed `USER_HZ` of 100 ticks a second): 10 ms resolution, fine for rounds of
/// seconds on every core.
fn process_cpu_seconds() -> anyhow::Result<f64> {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat")?)
}

/// The CPU seconds in a `/proc/.../stat` line.
fn stat_cpu_seconds(stat: &str) -> anyhow::Result<f64> {
    const USER_HZ: f64 = 100.0;
    // The command name, in parentheses, may hold spaces; the fields after it are plain.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `after` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i - 3)
            .ok_or_else(|| anyhow::anyhow!("short /proc/self/stat"))?
            .parse::<u64>()? as f64)
    };
    Ok((ticks(14)? + ticks(15)?) / USER_HZ)
}

/// The name of the ingest client's threads.
const CLIENT_THREADS: &str = "bench-client";

/// The CPU time of this process's live threads so far, by kind of thread (their names): the
/// signature checks on rayon's pool; the benchmark's client; the server's async runtime
/// (gRPC, TLS, admission, receipts); the sequencer and committer (the single writer);
/// RocksDB's background flushes and compactions; the rest.
fn thread_cpu_seconds() -> anyhow::Result<BTreeMap<&'static str, f64>> {
    let mut by_kind = BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        // A thread that ended meanwhile is skipped (its time is lost to the figure).
        let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map_or("", |(name, _)| name);
        let kind = match name {
            n if n.starts_with("rayon") => "signature checks (rayon)",
            n if n.starts_with(CLIENT_THREADS) => "the benchmark's client (gRPC, TLS)",
            n if n.starts_with("tokio") => "server: gRPC, TLS, admission, receipts (tokio)",
            "sequencer" => "sequencer (checks, staging)",
            "committer" => "committer (RocksDB write, fsync)",
            n if n.starts_with("rocksdb") => "RocksDB flushes and compactions",
            _ => "other",
        };
        *by_kind.entry(kind).or_default() += stat_cpu_seconds(&stat)?;
    }
    Ok(by_kind)
}

/// Batch verification alone: signatures per second, and CPU microseconds per signature.
pub(super) struct VerifyFigure {
    pub(super) rate: f64,
    pub(super) cpu_us: f64,
}

/// Batch Ed25519 verification of `envelopes` alone, on every core, with the server's verifier
/// (`crypto::verify_all`); the signed messages (PAE) are built before the clock starts. All
/// benchmark entries share one key, which batch verification multiplies once per batch, as
/// the server's verification of them does.
///
/// # Errors
/// When a signature does not verify (then the figure would be a bug's).
pub(super) fn verify_only(
    envelopes: &[pb::Envelope],
    key: ed25519_dalek::VerifyingKey,
) -> anyhow::Result<VerifyFigure> {
    let (messages, signatures): (Vec<Vec<u8>>, Vec<ed25519_dalek::Signature>) = envelopes
        .iter()
        .filter_map(|e| {
            let sig = ed25519_dalek::Signature::from_slice(&e.signatures.first()?.sig).ok()?;
            Some((crate::crypto::pae(&e.payload_type, &e.payload), sig))
        })
        .unzip();
    anyhow::ensure!(messages.len() == envelopes.len(), "an envelope is unsigned");
    let keys = vec![key; messages.len()];
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let cpu = CpuClock::start()?;
    let started = Instant::now();
    let verified = crate::crypto::verify_all(&refs, &signatures, &keys);
    let rate = refs.len() as f64 / started.elapsed().as_secs_f64();
    let cpu_us = cpu.micros_per(refs.len())?;
    anyhow::ensure!(
        verified.is_ok(),
        "a presigned signature did not verify: {verified:?}"
    );
    Ok(VerifyFigure { rate, cpu_us })
}

pub(super) async fn submit_batch(
    mut client: Client,
    envelopes: Vec<pb::Envelope>,
) -> anyhow::Result<()> {
    let n = envelopes.len();
    let reply = client
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await?
        .into_inner();
    anyhow::ensure!(reply.receipts.len() == n, "short reply");
    Ok(())
}

/// Calls `call(with, batch)` for every batch, `concurrency` calls at a time, each task taking
/// the next batch as its call ends. `with` is a client, or the registry for in-process calls.
pub(super) async fn run_concurrent<C, T, F, Fut>(
    with: &C,
    batches: Vec<T>,
    concurrency: usize,
    call: F,
) -> anyhow::Result<()>
where
    C: Clone + Send + 'static,
    T: Send + 'static,
    F: Fn(C, T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let queue = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let call = Arc::new(call);
    let mut tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let with = with.clone();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue lock").next();
                let Some(batch) = next else { return Ok(()) };
                call(with.clone(), batch).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

pub(super) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of `rounds` and the rounds, for JSON.
fn figure(rounds: &[f64]) -> serde_json::Value {
    let mut sorted = rounds.to_vec();
    json!({ "median": median(&mut sorted), "rounds": rounds })
}

fn report(
    args: &BenchArgs,
    ingest: IngestFigures,
    load: f64,
    shape: &LsmShape,
    lookups: Vec<LookupFigures>,
) {
    let (grpc, verify) = (
        median(&mut ingest.grpc.clone()),
        median(&mut ingest.verify.clone()),
    );
    let (grpc_cpu, verify_cpu) = (
        median(&mut ingest.grpc_cpu_us.clone()),
        median(&mut ingest.verify_cpu_us.clone()),
    );
    let compacted = bench_lookup::compacted(shape);
    let lookups: Vec<(LookupFigures, f64, f64)> = lookups
        .into_iter()
        .map(|l| {
            let (g, p) = (
                median(&mut l.grpc.clone()),
                median(&mut l.in_process.clone()),
            );
            (l, g, p)
        })
        .collect();
    if args.json {
        let phases: Vec<serde_json::Value> = lookups
            .iter()
            .map(|(l, g, p)| {
                json!({
                    "hit_percent": l.hit_percent,
                    "grpc_lookups_per_s": figure(&l.grpc),
                    "in_process_lookups_per_s": figure(&l.in_process),
                    "grpc_vs_in_process": g / p,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "entries": args.entries, "records": args.records, "lookups": args.lookups,
                "batch": args.batch, "concurrency": args.concurrency, "rounds": args.rounds,
                "seed": args.seed,
                "ingest_entries_per_s": figure(&ingest.grpc),
                "verify_only_per_s": figure(&ingest.verify),
                "ingest_vs_verify": grpc / verify,
                "ingest_cpu_us_per_entry": figure(&ingest.grpc_cpu_us),
                "verify_cpu_us_per_entry": figure(&ingest.verify_cpu_us),
                "verify_vs_ingest_cpu": verify_cpu / grpc_cpu,
                "ingest_cpu_us_per_entry_by_thread": ingest.by_thread,
                "load_entries_per_s": load,
                "store": {
                    "records_sst_files_per_level": shape.files_per_level,
                    "records_sst_bytes": shape.sst_bytes,
                    "records_in_memtables": shape.memtable_entries,
                    "compaction_ran": compacted,
                    "block_cache_bytes": shape.block_cache_bytes,
                },
                "lookups_per_s": phases,
            })
        );
        return;
    }
    let (batch, flight) = (args.batch, args.concurrency);
    println!(
        "ingest, signed entries/s, durable, via SubmitEntries ({batch} a call, {flight} in \
         flight), median of {}:",
        args.rounds
    );
    println!("  through gRPC, client included:             {grpc:>9.0}");
    println!(
        "  ceiling, Ed25519 batch verification alone: {verify:>9.0}   ratio {:.2}",
        grpc / verify
    );
    println!(
        "  CPU µs per entry (process, client included): {grpc_cpu:.1}; verification alone \
         {verify_cpu:.1}; ratio {:.2}",
        verify_cpu / grpc_cpu
    );
    println!("  CPU µs per entry by thread, over all rounds:");
    for (kind, us) in &ingest.by_thread {
        println!("    {us:>5.1}  {kind}");
    }
    println!(
        "store: {} hash records, {} MB of SST files, files per level {:?} (compaction {}), \
         none in memtables; block cache {} MB",
        args.records,
        shape.sst_bytes >> 20,
        shape.files_per_level,
        if compacted { "ran" } else { "did not run" },
        shape.block_cache_bytes >> 20,
    );
    println!(
        "lookups/s, via LookupHashes ({batch} a call, {flight} in flight), median of {}:",
        args.rounds
    );
    println!("  hits   through gRPC   in process   ratio");
    for (l, g, p) in &lookups {
        println!(
            "  {:>3}%   {g:>12.0}   {p:>10.0}   {:.2}",
            l.hit_percent,
            g / p
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// utime and stime are the 14th and 15th fields, counted after a command name that may
    /// hold spaces and parentheses; a short line is an error, not a zero.
    #[test]
    fn cpu_seconds_are_read_past_any_thread_name() {
        let line = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(stat_cpu_seconds(line).unwrap(), 3.0);
        assert!(stat_cpu_seconds("4242 (x) S 1 2").is_err());
        assert!(stat_cpu_seconds("no parenthesis").is_err());
    }

    /// This thread's time is counted under its kind: the test harness names threads after the
    /// test, which is none of ours, so "other".
    #[test]
    fn live_threads_are_grouped_by_name() {
        let spin = Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        let by_kind = thread_cpu_seconds().unwrap();
        assert!(by_kind.contains_key("other"), "{by_kind:?}");
        assert!(by_kind.values().all(|s| *s >= 0.0));
    }
}
