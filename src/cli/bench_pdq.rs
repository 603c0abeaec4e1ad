//! `hashforum bench pdq`: the PDQ matching index against a brute-force scan, in one run.
//!
//! For each size: random stored hashes; queries half near a stored hash (1 to 31 random bits
//! flipped), half random. It reports the index's build time and memory per hash, queries per
//! second on one thread and on two, a brute-force scan's rate over the same queries on two
//! threads (several queries per pass, the fastest scan there is), the recall of the index
//! against that scan, and the cost of adding one hash to the built index.

use std::time::{Duration, Instant};

use clap::Args;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde_json::json;

use crate::pdq::index::{level, BruteForce, Match, PdqChange, PdqIndex};
use crate::pdq::{Bits, DEFAULT_MAX_DISTANCE};

/// Options of `hashforum bench pdq`.
#[derive(Debug, Args)]
pub struct PdqBenchArgs {
    /// Stored hashes, one run per size (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1_000_000usize])]
    pub hashes: Vec<usize>,
    /// Queries per run: half near a stored hash, half random.
    #[arg(long, default_value_t = 10_000)]
    pub queries: usize,
    /// The matching threshold.
    #[arg(long, default_value_t = DEFAULT_MAX_DISTANCE)]
    pub max_distance: u32,
    /// Rounds of the index's queries (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Hashes added one at a time to the built index, to time an add.
    #[arg(long, default_value_t = 10_000)]
    pub adds: usize,
    /// The random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also through the gRPC batch API, client included: this many hashes submitted (signed)
    /// to a server in this process, then the same kind of queries in `MatchHashes` batches,
    /// beside the in-process index over the same hashes (0: skip).
    #[arg(long, default_value_t = 0)]
    pub grpc: usize,
    /// Queries per `MatchHashes` call.
    #[arg(long, default_value_t = 1_000)]
    pub grpc_batch: usize,
    /// `MatchHashes` calls in flight at once.
    #[arg(long, default_value_t = 4)]
    pub grpc_concurrency: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
///
/// # Errors
/// When an option is zero, or the index disagrees with the scan (then it is a bug).
pub async fn run(args: &PdqBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(args.queries > 0 && args.rounds > 0, "zero option");
    anyhow::ensure!(
        args.max_distance <= crate::pdq::MAX_DISTANCE,
        "distance past 64"
    );
    eprintln!("kernel: {}", level().name());
    let mut runs = Vec::new();
    for &n in &args.hashes {
        runs.push(one_size(args, n)?);
    }
    if args.grpc > 0 {
        runs.push(grpc(args).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn random_hashes(n: usize, seed: u64) -> Vec<Bits> {
    (0..n.div_ceil(65_536))
        .into_par_iter()
        .flat_map_iter(|chunk| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (chunk as u64) << 20);
            let len = 65_536.min(n - chunk * 65_536);
            (0..len).map(move |_| {
                let mut b = [0u8; 32];
                rng.fill(&mut b[..]);
                b
            })
        })
        .collect()
}

fn queries(stored: &[Bits], n: usize, seed: u64) -> Vec<Bits> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(7));
    (0..n)
        .map(|i| {
            if i % 2 == 1 || stored.is_empty() {
                let mut b = [0u8; 32];
                rng.fill(&mut b[..]);
                return b;
            }
            let mut q = stored[rng.gen_range(0..stored.len())];
            // 1 to 31 distinct bits flipped.
            let flips = rng.gen_range(1..=31);
            let mut flipped = [false; 256];
            let mut left = flips;
            while left > 0 {
                let bit = rng.gen_range(0..256usize);
                if !flipped[bit] {
                    flipped[bit] = true;
                    q[bit / 8] ^= 1 << (bit % 8);
                    left -= 1;
                }
            }
            q
        })
        .collect()
}

/// Queries per second of `queries` split over `threads` threads.
fn rate_of(index: &PdqIndex, queries: &[Bits], max: u32, threads: usize) -> (f64, usize) {
    let start = Instant::now();
    let found: usize = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(queries.len().div_ceil(threads))
            .map(|part| {
                s.spawn(move || {
                    let mut out: Vec<Match> = Vec::new();
                    let mut found = 0;
                    for q in part {
                        out.clear();
                        index.query(q, max, false, &mut out);
                        found += out.len();
                    }
                    found
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    (queries.len() as f64 / start.elapsed().as_secs_f64(), found)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn one_size(args: &PdqBenchArgs, n: usize) -> anyhow::Result<serde_json::Value> {
    let max = args.max_distance;
    eprintln!("{n} hashes: generating ...");
    let stored = random_hashes(n, args.seed);
    let qs = queries(&stored, args.queries, args.seed);

    let start = Instant::now();
    let index = PdqIndex::build(stored.iter().map(|b| (*b, 1)).collect());
    let build = start.elapsed();
    let per_hash = index.memory_bytes() as f64 / n.max(1) as f64;
    eprintln!(
        "  built in {:.2} s, {per_hash:.0} bytes a hash",
        build.as_secs_f64()
    );

    // The brute-force scan over the same queries: several queries per pass, each pass shared
    // by the two cores (each scans half of the hashes).
    let scan = BruteForce::new(&stored);
    let start = Instant::now();
    let truth: Vec<Vec<(u32, u32)>> = qs
        .chunks(BruteForce::PER_PASS)
        .flat_map(|pass| scan.pass_on_two_cores(pass, max))
        .collect();
    let brute_rate = qs.len() as f64 / start.elapsed().as_secs_f64();
    eprintln!(
        "  brute-force scan, 2 threads, {} queries a pass: {brute_rate:.0} queries/s",
        BruteForce::PER_PASS
    );

    // Recall and exactness against the scan.
    let mut expected = 0usize;
    let mut found = 0usize;
    let mut extra = 0usize;
    let mut out = Vec::new();
    for (q, truth) in qs.iter().zip(&truth) {
        out.clear();
        index.query(q, max, false, &mut out);
        let mut want: Vec<(Bits, u32)> = truth
            .iter()
            .map(|&(id, d)| (stored[id as usize], d))
            .collect();
        want.sort_unstable();
        let mut got: Vec<(Bits, u32)> = out.iter().map(|m| (m.bits, m.distance)).collect();
        got.sort_unstable();
        expected += want.len();
        found += got.iter().filter(|g| want.binary_search(g).is_ok()).count();
        extra += got
            .iter()
            .filter(|g| want.binary_search(g).is_err())
            .count();
    }
    let recall = if expected == 0 {
        1.0
    } else {
        found as f64 / expected as f64
    };
    anyhow::ensure!(
        extra == 0,
        "the index returned {extra} hashes the scan did not"
    );
    eprintln!("  recall {recall} ({found} of {expected} matches)");

    let mut one = Vec::new();
    let mut two = Vec::new();
    for round in 0..args.rounds {
        let (r1, _) = rate_of(&index, &qs, max, 1);
        let (r2, _) = rate_of(&index, &qs, max, 2);
        eprintln!(
            "  round {}: {r1:.0} queries/s on 1 thread, {r2:.0} on 2",
            round + 1
        );
        one.push(r1);
        two.push(r2);
    }
    let (one, two) = (median(&mut one), median(&mut two));

    // Adding hashes one at a time (each one a new tail snapshot; tails become segments and
    // merge in the background).
    let adds = random_hashes(args.adds, args.seed ^ 0xadd);
    let mut times: Vec<Duration> = Vec::with_capacity(adds.len());
    for b in &adds {
        let start = Instant::now();
        index.apply(&[PdqChange {
            bits: *b,
            status: 1,
            new: true,
        }]);
        times.push(start.elapsed());
    }
    let start = Instant::now();
    index.wait_for_merges();
    let merge_wait = start.elapsed();
    times.sort_unstable();
    let add_median = times.get(times.len() / 2).copied().unwrap_or_default();
    let add_p99 = times
        .get(times.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    let add_max = times.last().copied().unwrap_or_default();
    // The same queries over the index as the adds left it (tail and small segments), same
    // rounds.
    let mut after: Vec<f64> = (0..args.rounds)
        .map(|_| rate_of(&index, &qs, max, 2).0)
        .collect();
    let after = median(&mut after);
    eprintln!(
        "  add one hash: median {:.1} µs, p99 {:.1} µs, max {:.1} µs; {} segments after {} adds, \
         2-thread rate then {after:.0} queries/s (median)",
        add_median.as_secs_f64() * 1e6,
        add_p99.as_secs_f64() * 1e6,
        add_max.as_secs_f64() * 1e6,
        index.segments(),
        adds.len(),
    );
    let result = json!({
        "hashes": n,
        "queries": qs.len(),
        "max_distance": max,
        "kernel": level().name(),
        "build_seconds": build.as_secs_f64(),
        "bytes_per_hash": per_hash,
        "queries_per_second_1_thread": one,
        "queries_per_second_2_threads": two,
        "brute_force_queries_per_second_2_threads": brute_rate,
        "speedup_over_brute_force_2_threads": two / brute_rate,
        "recall": recall,
        "matches": expected,
        "add_median_us": add_median.as_secs_f64() * 1e6,
        "add_p99_us": add_p99.as_secs_f64() * 1e6,
        "add_max_us": add_max.as_secs_f64() * 1e6,
        "merge_wait_seconds": merge_wait.as_secs_f64(),
        "queries_per_second_2_threads_after_adds": after,
    });
    if !args.json {
        println!(
            "{n} hashes, d <= {max}: {one:.0} queries/s on 1 thread, {two:.0} on 2 \
             (brute force {brute_rate:.0} on 2: {:.1}x); recall {recall}; built in {:.2} s; \
             {per_hash:.0} bytes a hash; add {:.1} µs (median)",
            two / brute_rate,
            build.as_secs_f64(),
            add_median.as_secs_f64() * 1e6,
        );
    }
    Ok(result)
}

/// Matching through a real server, client included, beside the in-process index over the same
/// hashes.
async fn grpc(args: &PdqBenchArgs) -> anyhow::Result<serde_json::Value> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::bench::{run_concurrent, BenchServer};
    use crate::pb;
    use crate::statement::{hash_submission, Signer};
    use crate::types::HashType;

    anyhow::ensure!(
        args.grpc_batch > 0 && args.grpc_concurrency > 0,
        "zero option"
    );
    let n = args.grpc;
    let max = args.max_distance;
    let bench = BenchServer::start().await?;
    let stored = random_hashes(n, args.seed ^ 0x9f);
    eprintln!("gRPC: signing {n} PDQ submissions ...");
    let signer = Signer::of(&bench.identity);
    let envelopes: Vec<pb::Envelope> = stored
        .par_iter()
        .map(|b| {
            signer.submit(pb::HashSubmission {
                quality: Some(100),
                ..hash_submission(HashType::Pdq, &hex::encode(b))
            })
        })
        .collect();
    let start = Instant::now();
    let batches: Vec<Vec<pb::Envelope>> = envelopes.chunks(10_000).map(<[_]>::to_vec).collect();
    drop(envelopes);
    run_concurrent(
        &bench.client,
        batches,
        4,
        |mut client, envelopes| async move {
            client
                .registry
                .submit_entries(pb::SubmitEntriesRequest { envelopes })
                .await?;
            Ok(())
        },
    )
    .await?;
    eprintln!("  submitted in {:.1} s", start.elapsed().as_secs_f64());
    let qs = queries(&stored, args.queries, args.seed);
    let truth: usize = {
        let scan = BruteForce::new(&stored);
        qs.par_chunks(BruteForce::PER_PASS)
            .map(|pass| scan.pass(pass, max).iter().map(Vec::len).sum::<usize>())
            .sum()
    };
    let index = PdqIndex::build(stored.iter().map(|b| (*b, 1)).collect());
    let mut over_grpc = Vec::new();
    let mut in_process = Vec::new();
    for round in 0..args.rounds {
        let batches: Vec<Vec<pb::MatchQuery>> = qs
            .chunks(args.grpc_batch)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|b| pb::MatchQuery {
                        value: hex::encode(b),
                        variant: 0,
                    })
                    .collect()
            })
            .collect();
        let found = Arc::new(AtomicUsize::new(0));
        let counted = found.clone();
        let start = Instant::now();
        run_concurrent(
            &bench.client,
            batches,
            args.grpc_concurrency,
            move |mut client, queries| {
                let found = counted.clone();
                async move {
                    let results = client
                        .registry
                        .match_hashes(pb::MatchHashesRequest {
                            hash_type: pb::HashType::Pdq as i32,
                            queries,
                            max_distance: Some(max),
                            include_inactive: false,
                            dihedral: false,
                        })
                        .await?
                        .into_inner()
                        .results;
                    let matches: usize = results.iter().map(|r| r.matches.len()).sum();
                    found.fetch_add(matches, Ordering::Relaxed);
                    Ok(())
                }
            },
        )
        .await?;
        let rate = qs.len() as f64 / start.elapsed().as_secs_f64();
        anyhow::ensure!(
            found.load(Ordering::Relaxed) == truth,
            "gRPC found {} matches, the scan {truth}",
            found.load(Ordering::Relaxed)
        );
        let (local, _) = rate_of(&index, &qs, max, 2);
        eprintln!(
            "  round {}: {rate:.0} queries/s through gRPC, {local:.0} in process (2 threads)",
            round + 1
        );
        over_grpc.push(rate);
        in_process.push(local);
    }
    // Start-up: what the server does before serving, on the data it now holds.
    let dir = bench.stop_keeping().await?;
    let config = crate::config::Config::load(&dir.path().join("server/hashforum.toml"))?;
    let store = crate::storage::Store::open(&config.data_dir)?;
    let start = Instant::now();
    let view = crate::state::pdq_view(&store)?;
    let read = start.elapsed();
    let rebuilt = PdqIndex::build(view);
    let startup = start.elapsed();
    anyhow::ensure!(
        rebuilt.len() == n,
        "the PDQ view holds {} hashes",
        rebuilt.len()
    );
    eprintln!(
        "  start-up: PDQ view read in {:.2} s, index built: {:.2} s in all",
        read.as_secs_f64(),
        startup.as_secs_f64()
    );
    let (g, l) = (median(&mut over_grpc), median(&mut in_process));
    if !args.json {
        println!(
            "{n} hashes through gRPC (MatchHashes, {} per call, {} in flight, client included): \
             {g:.0} queries/s; in process, 2 threads: {l:.0} ({:.2} of it); {truth} matches, as the scan; \
             start-up (read the PDQ view, build) {:.2} s",
            args.grpc_batch,
            args.grpc_concurrency,
            g / l,
            startup.as_secs_f64()
        );
    }
    Ok(json!({
        "grpc_hashes": n,
        "queries": qs.len(),
        "grpc_batch": args.grpc_batch,
        "grpc_concurrency": args.grpc_concurrency,
        "grpc_queries_per_second": g,
        "in_process_queries_per_second_2_threads": l,
        "matches": truth,
        "startup_read_seconds": read.as_secs_f64(),
        "startup_seconds": startup.as_secs_f64(),
    }))
}
