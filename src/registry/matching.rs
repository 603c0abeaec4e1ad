//! PDQ matching: the index's matches of each query, with their records.

use std::collections::HashMap;

use prost::Message;
use rayon::prelude::*;

use super::{Registry, MAX_REPLY_BYTES};
use crate::error::ServiceError;
use crate::pb;
use crate::pdq::index::Match;
use crate::pdq::{transposed, Bits, Dihedral};
use crate::state::decode_record;
use crate::storage::Store;
use crate::types::{ContentHash, HashType};

/// Most matches returned for one query, the closest: a cluster of near-identical hashes
/// cannot make a reply unbounded.
pub const MAX_MATCHES: usize = 1_000;

/// How to match.
#[derive(Debug, Clone, Copy)]
pub struct MatchOptions {
    /// The largest distance that matches (at most `pdq::MAX_DISTANCE`).
    pub max_distance: u32,
    /// Also retracted and withdrawn hashes.
    pub include_inactive: bool,
    /// Also each query's transposition.
    pub dihedral: bool,
}

impl Registry {
    /// The matches of each query (a hash and which variant of the member's image it is of),
    /// in order, with their records.
    ///
    /// # Errors
    /// `RESOURCE_EXHAUSTED` (`REPLY_TOO_LARGE`) when the records would not fit in a reply;
    /// `INTERNAL` when the store fails.
    pub async fn match_pdq(
        &self,
        queries: Vec<(Bits, Dihedral)>,
        options: MatchOptions,
    ) -> Result<Vec<pb::MatchResult>, ServiceError> {
        let index = self.pdq.clone();
        let store = self.store.clone();
        self.blocking(move || {
            let found: Vec<(Vec<(Match, Dihedral)>, bool)> = queries
                .par_iter()
                .with_min_len(64)
                .map(|(bits, variant)| one_query(&index, bits, *variant, options))
                .collect();
            with_records(&store, found)
        })
        .await
    }
}

/// The matches of one query and, on request, of its transposition: each stored hash once, at
/// its smaller distance; closest first; at most [`MAX_MATCHES`] (then `true`).
fn one_query(
    index: &crate::pdq::index::PdqIndex,
    bits: &Bits,
    variant: Dihedral,
    options: MatchOptions,
) -> (Vec<(Match, Dihedral)>, bool) {
    let mut out = Vec::new();
    index.query(
        bits,
        options.max_distance,
        options.include_inactive,
        &mut out,
    );
    let mut found: Vec<(Match, Dihedral)> = out.drain(..).map(|m| (m, variant)).collect();
    if options.dihedral && variant == Dihedral::Original {
        let t = transposed(bits);
        if t != *bits {
            index.query(&t, options.max_distance, options.include_inactive, &mut out);
            found.extend(out.into_iter().map(|m| (m, Dihedral::FlipPlus1)));
            found.sort_unstable_by_key(|(m, _)| (m.bits, m.distance));
            found.dedup_by(|(later, _), (kept, _)| later.bits == kept.bits);
            found.sort_unstable_by_key(|(m, _)| (m.distance, m.bits));
        }
    }
    let truncated = found.len() > MAX_MATCHES;
    found.truncate(MAX_MATCHES);
    (found, truncated)
}

/// Reads the record of every matched hash once and builds the results.
fn with_records(
    store: &Store,
    found: Vec<(Vec<(Match, Dihedral)>, bool)>,
) -> Result<Vec<pb::MatchResult>, ServiceError> {
    let mut hashes: Vec<Bits> = found
        .iter()
        .flat_map(|(ms, _)| ms.iter().map(|(m, _)| m.bits))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    let keys: Vec<ContentHash> = hashes
        .iter()
        .map(|b| ContentHash::parse(HashType::Pdq, &hex::encode(b)))
        .collect::<Result<_, _>>()
        .map_err(|e| ServiceError::Internal(format!("a stored PDQ hash: {e}")))?;
    let refs: Vec<&ContentHash> = keys.iter().collect();
    let mut records: HashMap<Bits, pb::HashRecord> = HashMap::with_capacity(hashes.len());
    let mut reply_bytes = 0usize;
    for ((bits, key), stored) in hashes.iter().zip(&keys).zip(store.records(&refs)?) {
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
        records.insert(*bits, record);
    }
    // Each match repeats its record: count them all before building anything.
    let total: usize = found
        .iter()
        .flat_map(|(ms, _)| ms.iter())
        .map(|(m, _)| records.get(&m.bits).map_or(0, Message::encoded_len) + 16)
        .sum();
    if total.max(reply_bytes) > MAX_REPLY_BYTES {
        return Err(ServiceError::ResourceExhausted {
            reason: "REPLY_TOO_LARGE",
            message: format!(
                "the matches' records take {total} bytes, over the {MAX_REPLY_BYTES}-byte \
                 reply limit: send fewer queries per call, or a smaller max_distance"
            ),
        });
    }
    Ok(found
        .into_iter()
        .map(|(ms, truncated)| pb::MatchResult {
            matches: ms
                .into_iter()
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
