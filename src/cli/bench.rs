//! `hashforum bench`: ingest and lookup throughput through the real gRPC API.
//!
//! Starts a dev forum's server in this process on 127.0.0.1:0 (RocksDB in a temporary
//! directory, real mTLS), pre-signs every entry, then measures, client included:
//! (a) signed entries per second ingested durably through `SubmitEntries`, and
//! (b) exact lookups per second through `LookupHashes`.
//! Each phase runs in rounds; the median round is the figure to quote.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use rayon::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::config::Config;
use crate::forum::{self, ForumSpec, DEV_ORIGIN};
use crate::identity::Identity;
use crate::pb;
use crate::statement::{hash_submission, Signer};
use crate::types::HashType;

/// Options of `hashforum bench`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Another benchmark than ingest and lookups.
    #[command(subcommand)]
    pub other: Option<OtherBench>,
    /// Signed entries to ingest in all.
    #[arg(long, default_value_t = 300_000)]
    pub entries: usize,
    /// Lookups to run in all.
    #[arg(long, default_value_t = 3_000_000)]
    pub lookups: usize,
    /// Entries or hashes per call.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Rounds per phase (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
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

/// Runs the benchmark.
///
/// # Errors
/// When the server cannot start or a call fails.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match &args.other {
        Some(OtherBench::Pdq(pdq)) => return super::bench_pdq::run(pdq).await,
        Some(OtherBench::Sync(sync)) => return super::bench_sync::run(sync).await,
        None => {}
    }
    anyhow::ensure!(
        args.rounds > 0 && args.batch > 0 && args.concurrency > 0,
        "zero option"
    );
    let bench = BenchServer::start().await?;
    let (client, identity) = (bench.client.clone(), &bench.identity);
    eprintln!("signing {} entries ...", args.entries);
    let envelopes = presign(identity, args.entries);
    let per_round = args.entries.div_ceil(args.rounds);
    let mut ingest = Vec::new();
    for (round, chunk) in envelopes.chunks(per_round).enumerate() {
        let batches: Vec<Vec<pb::Envelope>> = chunk.chunks(args.batch).map(<[_]>::to_vec).collect();
        let start = Instant::now();
        run_concurrent(&client, batches, args.concurrency, submit_batch).await?;
        let rate = chunk.len() as f64 / start.elapsed().as_secs_f64();
        eprintln!("ingest round {}: {:.0} entries/s", round + 1, rate);
        ingest.push(rate);
    }

    let queries: Vec<pb::HashQuery> = (0..args.entries.min(args.lookups))
        .map(|i| pb::HashQuery {
            hash_type: HashType::Sha256.to_pb() as i32,
            value: hash_value(i),
        })
        .collect();
    let per_round = args.lookups.div_ceil(args.rounds);
    let mut lookup = Vec::new();
    for round in 0..args.rounds {
        let batches: Vec<Vec<pb::HashQuery>> = queries
            .iter()
            .cycle()
            .take(per_round)
            .cloned()
            .collect::<Vec<_>>()
            .chunks(args.batch)
            .map(<[_]>::to_vec)
            .collect();
        let start = Instant::now();
        run_concurrent(&client, batches, args.concurrency, lookup_batch).await?;
        let rate = per_round as f64 / start.elapsed().as_secs_f64();
        eprintln!("lookup round {}: {:.0} lookups/s", round + 1, rate);
        lookup.push(rate);
    }
    bench.stop().await?;
    report(&args, &mut ingest, &mut lookup);
    Ok(ExitCode::SUCCESS)
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
        let server = tokio::spawn(crate::server::serve(config, listener, async {
            let _ = stopped.await;
        }));
        let identity = Identity::load(&tmp.path().join("identities/bench"))?;
        let client = Client::connect(&identity, Some(&addr)).await?;
        Ok(Self {
            dir: tmp,
            addr,
            client,
            identity,
            stop,
            server,
        })
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
        let _ = self.stop.send(());
        self.server.await??;
        Ok(self.dir)
    }
}

fn hash_value(i: usize) -> String {
    hex::encode(Sha256::digest((i as u64).to_be_bytes()))
}

pub(super) fn presign(identity: &Identity, n: usize) -> Vec<pb::Envelope> {
    let signer = Signer::of(identity);
    (0..n)
        .into_par_iter()
        .map(|i| {
            signer.submit(pb::HashSubmission {
                labels: Some(pb::Labels {
                    entity: "bench-entity".into(),
                    behaviour: "glorification".into(),
                    content_type: "video".into(),
                }),
                tags: vec!["bench".into()],
                ..hash_submission(HashType::Sha256, &hash_value(i))
            })
        })
        .collect()
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

async fn lookup_batch(mut client: Client, queries: Vec<pb::HashQuery>) -> anyhow::Result<()> {
    let n = queries.len();
    let reply = client
        .registry
        .lookup_hashes(pb::LookupHashesRequest {
            queries,
            include_envelopes: false,
        })
        .await?
        .into_inner();
    anyhow::ensure!(reply.results.len() == n, "short reply");
    anyhow::ensure!(
        reply.results.iter().all(|r| r.found),
        "a submitted hash was not found"
    );
    Ok(())
}

pub(super) async fn run_concurrent<T, F, Fut>(
    client: &Client,
    batches: Vec<T>,
    concurrency: usize,
    call: F,
) -> anyhow::Result<()>
where
    T: Send + 'static,
    F: Fn(Client, T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let queue = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let call = Arc::new(call);
    let mut tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let client = client.clone();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue lock").next();
                let Some(batch) = next else { return Ok(()) };
                call(client.clone(), batch).await?;
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

fn report(args: &BenchArgs, ingest: &mut [f64], lookup: &mut [f64]) {
    let (ingest_med, lookup_med) = (median(ingest), median(lookup));
    if args.json {
        println!(
            "{}",
            json!({
                "entries": args.entries, "lookups": args.lookups, "batch": args.batch,
                "concurrency": args.concurrency, "rounds": args.rounds,
                "ingest_entries_per_s": { "median": ingest_med, "rounds": ingest },
                "lookups_per_s": { "median": lookup_med, "rounds": lookup },
            })
        );
    } else {
        println!("ingest (signed entries/s, durable, via SubmitEntries): median {ingest_med:.0}");
        println!("lookup (exact lookups/s, via LookupHashes):             median {lookup_med:.0}");
    }
}
