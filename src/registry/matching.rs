//! PDQ matching: the index's matches of each query, with their records.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message;
use rayon::prelude::*;

use super::{Registry, MAX_REPLY_BYTES};
use crate::error::ServiceError;
use crate::pb;
use crate::pdq::index::{Match, PdqIndex};
use crate::pdq::{transposed, Bits, Dihedral};
use crate::state::decode_record;
use crate::storage::Store;
use crate::types::{ContentHash, HashType};

/// Most matches returned for one query, the closest: a cluster of near-identical hashes
/// cannot make a reply unbounded.
pub const MAX_MATCHES: usize = 1_000;

/// Most queries in one call above the default distance: past it the work per query grows
/// steeply (up to a scan of the index), so wide searches come in small batches.
pub const MAX_WIDE_MATCH_BATCH: usize = 100;

/// Most matches in one reply, whatever their records: each match takes at least this share
/// of the reply limit, so a call with more is refused before its records are read.
const MAX_REPLY_MATCHES: usize = MAX_REPLY_BYTES / 64;

/// How to match.
#[derive(Debug, Clone, Copy)]
pub struct MatchOptions {
    /// The largest distance that matches (at most `pdq::MAX_DISTANCE`).
    pub max_distance: u32,
    /// Also retracted and withdrawn hashes.
    pub include_inactive: bool,
    /// Also the transposition of each query given as the image as it is.
    pub dihedral: bool,
}

/// The matches of one query, and whether there were more.
type Found = (Vec<(Match, Dihedral)>, bool);

impl Registry {
    /// The matches of each query (a hash and which variant of the member's image it is of),
    /// in order, with their records.
    ///
    /// # Errors
    /// `RESOURCE_EXHAUSTED` (`REPLY_TOO_LARGE`) when the matches or their records would not
    /// fit in a reply, found before the reply is built; `INTERNAL` when the store fails.
    pub async fn match_pdq(
        &self,
        queries: Vec<(Bits, Dihedral)>,
        options: MatchOptions,
    ) -> Result<Vec<pb::MatchResult>, ServiceError> {
        let index = self.pdq.clone();
        let store = self.store.clone();
        self.blocking(move || {
            let total = AtomicUsize::new(0);
            let found: Vec<Found> = queries
                .par_iter()
                .with_min_len(64)
                .map(|(bits, variant)| {
                    // Once the reply is sure to be too large, the other queries are skipped.
                    if total.load(Ordering::Relaxed) > MAX_REPLY_MATCHES {
                        return (Vec::new(), false);
                    }
                    let found = one_query(&index, bits, *variant, options);
                    total.fetch_add(found.0.len(), Ordering::Relaxed);
                    found
                })
                .collect();
            if total.load(Ordering::Relaxed) > MAX_REPLY_MATCHES {
                return Err(too_large(format!("more than {MAX_REPLY_MATCHES} matches")));
            }
            with_records(&store, found, options.include_inactive)
        })
        .await
    }
}

/// The matches of one query and, on request, of its transposition: each stored hash once, at
/// its smaller distance (at equal distances, as the query was given); closest first; at most
/// [`MAX_MATCHES`] (then `true`).
fn one_query(index: &PdqIndex, bits: &Bits, variant: Dihedral, options: MatchOptions) -> Found {
    let (max, inactive) = (options.max_distance, options.include_inactive);
    let mut out = Vec::new();
    index.query(bits, max, inactive, &mut out);
    out.truncate(MAX_MATCHES + 1);
    let mut found: Vec<(Match, Dihedral)> = out.drain(..).map(|m| (m, variant)).collect();
    if options.dihedral && variant == Dihedral::Original {
        let t = transposed(bits);
        if t != *bits {
            index.query(&t, max, inactive, &mut out);
            out.truncate(MAX_MATCHES + 1);
            found.extend(out.into_iter().map(|m| (m, Dihedral::FlipPlus1)));
            found.sort_unstable_by_key(|(m, v)| (m.bits, m.distance, *v != variant));
            found.dedup_by(|(later, _), (kept, _)| later.bits == kept.bits);
            found.sort_unstable_by_key(|(m, _)| (m.distance, m.bits));
        }
    }
    let truncated = found.len() > MAX_MATCHES;
    found.truncate(MAX_MATCHES);
    (found, truncated)
}

fn too_large(what: String) -> ServiceError {
    ServiceError::ResourceExhausted {
        reason: "REPLY_TOO_LARGE",
        message: format!(
            "{what}: over the {MAX_REPLY_BYTES}-byte reply limit; send fewer queries per call, \
             or a smaller max_distance"
        ),
    }
}

/// Reads the record of every matched hash once (in chunks, stopping as soon as the reply
/// would be too large) and builds the results. Unless `inactive`, a match whose record was
/// retracted or withdrawn after the index was read is dropped.
fn with_records(
    store: &Store,
    found: Vec<Found>,
    inactive: bool,
) -> Result<Vec<pb::MatchResult>, ServiceError> {
    let mut hashes: Vec<Bits> = found
        .iter()
        .flat_map(|(ms, _)| ms.iter().map(|(m, _)| m.bits))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut records: HashMap<Bits, pb::HashRecord> = HashMap::with_capacity(hashes.len());
    let mut reply_bytes = 0usize;
    for chunk in hashes.chunks(512) {
        let keys: Vec<ContentHash> = chunk
            .iter()
            .map(ContentHash::pdq)
            .collect::<Result<_, _>>()
            .map_err(|e| ServiceError::Internal(format!("a stored PDQ hash: {e}")))?;
        let refs: Vec<&ContentHash> = keys.iter().collect();
        for ((bits, key), stored) in chunk.iter().zip(&keys).zip(store.records(&refs)?) {
            let Some(stored) = stored else {
                // Indexed once its record was committed, and records are never deleted.
                return Err(ServiceError::Internal(format!(
                    "PDQ hash {} is indexed but has no record",
                    key.to_hex()
                )));
            };
            let stored = decode_record(&stored)?;
            let record = pb::HashRecord {
                hash_type: HashType::Pdq.to_pb() as i32,
                value: key.to_hex(),
                submissions: stored.submissions,
                opinions: stored.opinions,
                withdrawal: stored.withdrawal,
                status: stored.status,
                tallies: stored.tallies,
            };
            reply_bytes += record.encoded_len();
            if reply_bytes > MAX_REPLY_BYTES {
                return Err(too_large("the matches' records".into()));
            }
            records.insert(*bits, record);
        }
    }
    let retired = |m: &Match| {
        records.get(&m.bits).is_some_and(|r| {
            r.status == pb::RecordStatus::Retracted as i32
                || r.status == pb::RecordStatus::Withdrawn as i32
        })
    };
    // Each match repeats its record: count them all before building anything.
    let mut total = 0usize;
    for (ms, _) in &found {
        for (m, _) in ms {
            if inactive || !retired(m) {
                total += records.get(&m.bits).map_or(0, Message::encoded_len) + 16;
            }
        }
    }
    if total > MAX_REPLY_BYTES {
        return Err(too_large(format!(
            "the matches' records take {total} bytes"
        )));
    }
    Ok(found
        .into_iter()
        .map(|(ms, truncated)| pb::MatchResult {
            matches: ms
                .into_iter()
                .filter(|(m, _)| inactive || !retired(m))
                .map(|(m, variant)| pb::PdqMatch {
                    record: records.get(&m.bits).cloned(),
                    distance: m.distance,
                    variant: variant.to_pb() as i32,
                })
                .collect(),
            truncated,
        })
        .collect())
}
