//! The lookup half of `hashforum bench`: loads the store to the records the lookups run
//! over, settles it on disk, and measures lookups at a hit rate through `LookupHashes` and,
//! on the same store with the same batches and concurrency, through the registry's read path
//! in process (`Registry::lookup`, what the handler calls: no TLS, HTTP/2 or protobuf).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::bench::{hash_value, presign, run_concurrent, submit_batch, BenchArgs, BenchServer};
use crate::client::Client;
use crate::pb;
use crate::registry::Registry;
use crate::storage::LsmShape;
use crate::types::{ContentHash, HashType};

/// Signed entries made at a time while loading: signing all of them first would hold
/// gigabytes of envelopes.
const LOAD_CHUNK: usize = 100_000;

/// The lookup rounds at one hit rate.
pub(super) struct LookupFigures {
    /// Lookups that find a record, in percent.
    pub(super) hit_percent: u32,
    /// Lookups per second through `LookupHashes`, client included, each round.
    pub(super) grpc: Vec<f64>,
    /// Lookups per second through `Registry::lookup` in process, each round.
    pub(super) in_process: Vec<f64>,
}

/// Submits the benchmark records `from..to` through `SubmitEntries`, signing them chunk by
/// chunk between submissions: the same path, and so the same store, as any member's
/// submissions. Returns entries per second while submitting (signing not counted).
pub(super) async fn load(
    bench: &BenchServer,
    from: usize,
    to: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    if from >= to {
        return Ok(0.0);
    }
    eprintln!("loading records {from}..{to} through SubmitEntries ...");
    let mut submitting = Duration::ZERO;
    for start in (from..to).step_by(LOAD_CHUNK) {
        let envelopes = presign(&bench.identity, start..(start + LOAD_CHUNK).min(to));
        let batches: Vec<Vec<pb::Envelope>> = envelopes.chunks(batch).map(<[_]>::to_vec).collect();
        let started = Instant::now();
        run_concurrent(&bench.client, batches, concurrency, submit_batch).await?;
        submitting += started.elapsed();
    }
    let rate = (to - from) as f64 / submitting.as_secs_f64();
    eprintln!(
        "  loaded in {:.1} s of submitting: {rate:.0} entries/s",
        submitting.as_secs_f64()
    );
    Ok(rate)
}

/// Flushes the server's memtables to SST files and waits for compactions to end, so that the
/// lookups read SST files (through the block cache) and no background work runs beside
/// them; returns where the hash records then are.
///
/// # Errors
/// When RocksDB fails or records are still in a memtable.
pub(super) async fn settle(registry: &Registry) -> anyhow::Result<LsmShape> {
    let store = registry.store().clone();
    let started = Instant::now();
    let shape = tokio::task::spawn_blocking(move || {
        store.settle(Duration::from_secs(600))?;
        store.records_shape()
    })
    .await??;
    anyhow::ensure!(
        shape.memtable_entries == 0,
        "{} records still in memtables after the flush",
        shape.memtable_entries
    );
    eprintln!(
        "  flushed and compacted in {:.1} s; records in SST files per level {:?}, {} MB",
        started.elapsed().as_secs_f64(),
        shape.files_per_level,
        shape.sst_bytes >> 20
    );
    Ok(shape)
}

/// Whether compaction ran on the hash records: flushes write level 0 only.
pub(super) fn compacted(shape: &LsmShape) -> bool {
    shape.files_per_level.iter().skip(1).any(|&files| files > 0)
}

/// The lookup rounds at `hit_percent`: each round makes new lookups, then runs them through
/// gRPC and in process, alternating which goes first so that neither always finds the cache
/// warmed by the other.
///
/// # Errors
/// When a call fails, or a lookup finds a record it should not or misses one it should find.
pub(super) async fn measure(
    bench: &BenchServer,
    args: &BenchArgs,
    hit_percent: u32,
) -> anyhow::Result<LookupFigures> {
    let per_round = args.lookups.div_ceil(args.rounds);
    let mut figures = LookupFigures {
        hit_percent,
        grpc: Vec::new(),
        in_process: Vec::new(),
    };
    for round in 0..args.rounds {
        let seed = args.seed ^ (u64::from(hit_percent) << 32) ^ round as u64;
        let lookups = queries(args.records, per_round, hit_percent, seed);
        let (grpc, local) = if round % 2 == 0 {
            let grpc = over_grpc(&bench.client, &lookups, args).await?;
            (grpc, in_process(bench.registry(), &lookups, args).await?)
        } else {
            let local = in_process(bench.registry(), &lookups, args).await?;
            (over_grpc(&bench.client, &lookups, args).await?, local)
        };
        eprintln!(
            "lookups, {hit_percent}% hits, round {}: {grpc:.0}/s through gRPC, {local:.0}/s in \
             process",
            round + 1
        );
        figures.grpc.push(grpc);
        figures.in_process.push(local);
    }
    Ok(figures)
}

/// `n` lookups of benchmark records (`bench::hash_value`), each with whether it must be found
/// in a store of `records`: `hit_percent` of them are of stored records chosen at random, the
/// rest of hashes never stored. Hits are spread evenly: any 100 consecutive lookups hold
/// exactly `hit_percent` of them.
pub(super) fn queries(
    records: usize,
    n: usize,
    hit_percent: u32,
    seed: u64,
) -> Vec<(String, bool)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let p = u64::from(hit_percent.min(100));
    (0..n as u64)
        .map(|k| {
            let hit = (k + 1) * p / 100 > k * p / 100 && records > 0;
            let i = if hit {
                rng.gen_range(0..records as u64)
            } else {
                rng.gen_range(records as u64..u64::MAX)
            };
            (hash_value(i), hit)
        })
        .collect()
}

/// Lookups per second of `lookups` through `LookupHashes`, client included.
async fn over_grpc(
    client: &Client,
    lookups: &[(String, bool)],
    args: &BenchArgs,
) -> anyhow::Result<f64> {
    let batches: Vec<(Vec<pb::HashQuery>, Vec<bool>)> = lookups
        .chunks(args.batch)
        .map(|chunk| {
            chunk
                .iter()
                .map(|(value, hit)| {
                    let query = pb::HashQuery {
                        hash_type: HashType::Sha256.to_pb() as i32,
                        value: value.clone(),
                    };
                    (query, *hit)
                })
                .unzip()
        })
        .collect();
    let started = Instant::now();
    run_concurrent(
        client,
        batches,
        args.concurrency,
        |mut client, (queries, hits): (Vec<pb::HashQuery>, Vec<bool>)| async move {
            let reply = client
                .registry
                .lookup_hashes(pb::LookupHashesRequest {
                    queries,
                    include_envelopes: false,
                })
                .await?
                .into_inner();
            let found: Vec<bool> = reply.results.iter().map(|r| r.found).collect();
            check(&found, &hits)
        },
    )
    .await?;
    Ok(lookups.len() as f64 / started.elapsed().as_secs_f64())
}

/// Lookups per second of `lookups` through `Registry::lookup` in process: parsed beforehand
/// (the handler parses the hex values; this ceiling does not), then the same batches with the
/// same concurrency, on the server's blocking pool and work slots as the handler's calls.
async fn in_process(
    registry: &Arc<Registry>,
    lookups: &[(String, bool)],
    args: &BenchArgs,
) -> anyhow::Result<f64> {
    let batches = lookups
        .chunks(args.batch)
        .map(|chunk| {
            chunk
                .iter()
                .map(|(value, hit)| Ok((ContentHash::parse(HashType::Sha256, value)?, *hit)))
                .collect::<anyhow::Result<(Vec<ContentHash>, Vec<bool>)>>()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    run_concurrent(
        registry,
        batches,
        args.concurrency,
        |registry, (hashes, hits): (Vec<ContentHash>, Vec<bool>)| async move {
            let results = registry.lookup(hashes, false).await?;
            let found: Vec<bool> = results.iter().map(Option::is_some).collect();
            check(&found, &hits)
        },
    )
    .await?;
    Ok(lookups.len() as f64 / started.elapsed().as_secs_f64())
}

/// That each lookup found a record exactly when it should have.
fn check(found: &[bool], hits: &[bool]) -> anyhow::Result<()> {
    anyhow::ensure!(
        found.len() == hits.len(),
        "{} results for {} lookups",
        found.len(),
        hits.len()
    );
    if let Some(i) = found.iter().zip(hits).position(|(f, h)| f != h) {
        anyhow::bail!(
            "lookup {i} of a batch: found {}, but the record is {}in the store",
            found[i],
            if hits[i] { "" } else { "not " }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn queries_hit_stored_records_at_the_rate_asked() {
        let records = 1_000;
        let stored: HashSet<String> = (0..records as u64).map(hash_value).collect();
        for percent in [0, 1, 37, 100] {
            let lookups = queries(records, 10_000, percent, 7);
            assert_eq!(lookups.len(), 10_000);
            for window in lookups.chunks(100) {
                let hits = window.iter().filter(|(_, hit)| *hit).count();
                assert_eq!(hits, percent as usize, "{percent}% in a window of 100");
            }
            for (value, hit) in &lookups {
                assert_eq!(stored.contains(value), *hit, "{value} at {percent}%");
            }
        }
    }

    #[test]
    fn queries_differ_by_seed_and_repeat_with_it() {
        assert_eq!(queries(1_000, 500, 50, 1), queries(1_000, 500, 50, 1));
        assert_ne!(queries(1_000, 500, 50, 1), queries(1_000, 500, 50, 2));
    }

    #[test]
    fn check_names_the_wrong_lookup() {
        assert!(check(&[true, false], &[true, false]).is_ok());
        let err = check(&[true, true], &[true, false]).unwrap_err();
        assert!(err.to_string().contains("lookup 1"), "{err}");
        assert!(check(&[true], &[true, false]).is_err());
    }
}
