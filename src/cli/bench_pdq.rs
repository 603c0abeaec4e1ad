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

use crate::pdq::index::{level, BruteForce, Match, PdqIndex};
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
fn rate(index: &PdqIndex, queries: &[Bits], max: u32, threads: usize) -> (f64, usize) {
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

    // The brute-force scan over the same queries, two threads, several queries per pass.
    let scan = BruteForce::new(&stored);
    let start = Instant::now();
    let truth: Vec<Vec<(u32, u32)>> = std::thread::scope(|s| {
        let scan = &scan;
        let handles: Vec<_> = qs
            .chunks(qs.len().div_ceil(2))
            .map(|part| {
                s.spawn(move || {
                    part.chunks(BruteForce::PER_PASS)
                        .flat_map(|pass| scan.pass(pass, max))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let brute_rate = qs.len() as f64 / start.elapsed().as_secs_f64();
    eprintln!("  brute-force scan, 2 threads: {brute_rate:.0} queries/s");

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
        let (r1, _) = rate(&index, &qs, max, 1);
        let (r2, _) = rate(&index, &qs, max, 2);
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
        index.apply(&[(*b, 1)]);
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
    let (after, _) = rate(&index, &qs, max, 2);
    eprintln!(
        "  add one hash: median {:.1} µs, p99 {:.1} µs, max {:.1} µs; {} segments after {} adds, \
         2-thread rate then {after:.0} queries/s",
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
