//! The provenance of a hash: every entry about it, with inclusion proofs against one signed
//! checkpoint, and the entries that registered (and revoked) the keys that signed them. An
//! outsider checks it with `forum.vkey` alone (`verify::bundle`).

use std::collections::BTreeSet;

use super::Registry;
use crate::error::ServiceError;
use crate::log::tree;
use crate::log::StoredEntry;
use crate::pb;
use crate::state::Directory;
use crate::storage::Store;
use crate::types::ContentHash;

/// The most entries about a hash in one page: with 8 KiB payloads and their proofs, a page
/// stays well inside the reply limit.
pub const PROVENANCE_PAGE: usize = 512;

impl Registry {
    /// One page of the provenance of `hash`: the entries about it from log index `from` on,
    /// proved against the checkpoint signed at `tree_size` (0: the latest).
    ///
    /// # Errors
    /// `OUT_OF_RANGE` past the latest checkpoint; `NOT_FOUND` when the log signed no
    /// checkpoint at that size, or no entry below it is about the hash.
    pub async fn provenance(
        &self,
        hash: ContentHash,
        tree_size: u64,
        from: u64,
    ) -> Result<pb::GetProvenanceResponse, ServiceError> {
        let (size, checkpoint) = if tree_size == 0 {
            let latest = self.latest_checkpoint();
            (latest.head.size, latest.note.clone())
        } else {
            (tree_size, self.checkpoint(tree_size, false).await?)
        };
        let store = self.store.clone();
        let directory = self.directory();
        self.blocking(move || {
            let mut page = page(&store, &directory, &hash, size, from)?;
            page.checkpoint = checkpoint;
            Ok(page)
        })
        .await
    }
}

fn page(
    store: &Store,
    directory: &Directory,
    hash: &ContentHash,
    size: u64,
    from: u64,
) -> Result<pb::GetProvenanceResponse, ServiceError> {
    let mut indexes = store.about(hash, from, size, PROVENANCE_PAGE + 1)?;
    let next_index = if indexes.len() > PROVENANCE_PAGE {
        indexes.truncate(PROVENANCE_PAGE);
        indexes.last().map_or(0, |last| last + 1)
    } else {
        0
    };
    if indexes.is_empty() && from == 0 {
        return Err(ServiceError::NotFound {
            reason: "HASH_NOT_FOUND",
            message: format!(
                "no entry of the log of {size} entries is about {}:{}",
                hash.hash_type().name(),
                hex::encode(hash.as_bytes())
            ),
        });
    }
    let entries = proven(store, &indexes, size)?;
    // The keys that signed them: registered at `valid_from_log_index` (0: the genesis), and
    // revoked before the checkpoint, if they were.
    let mut keys = BTreeSet::new();
    for entry in &entries {
        let stored = StoredEntry::decode(&entry.entry)
            .map_err(|e| ServiceError::Internal(format!("entry {}: {e}", entry.log_index)))?;
        let keyid = stored
            .envelope
            .signatures
            .first()
            .map(|s| s.keyid.as_str())
            .unwrap_or_default();
        let key = directory
            .member(&stored.statement.author)
            .and_then(|m| m.keys.iter().find(|k| k.keyid == keyid))
            .ok_or_else(|| {
                ServiceError::Internal(format!(
                    "entry {}: key {keyid} of {} is not in the directory",
                    entry.log_index, stored.statement.author
                ))
            })?;
        keys.insert(key.valid_from_log_index);
        if let Some(revoked) = key.revoked_at_log_index.filter(|&r| r < size) {
            keys.insert(revoked);
        }
    }
    let keys: Vec<u64> = keys.into_iter().collect();
    Ok(pb::GetProvenanceResponse {
        checkpoint: Vec::new(),
        tree_size: size,
        entries,
        keys: proven(store, &keys, size)?,
        next_index,
    })
}

/// The entries at `indexes` with their inclusion proofs in the tree of `size`.
fn proven(store: &Store, indexes: &[u64], size: u64) -> Result<Vec<pb::ProvenEntry>, ServiceError> {
    let internal = |e: tree::ProofError| ServiceError::Internal(format!("proof: {e}"));
    let prover = tree::Prover::new(size, store).map_err(internal)?;
    let leaves = store.entries(indexes)?;
    indexes
        .iter()
        .zip(leaves)
        .map(|(&index, leaf)| {
            let entry =
                leaf.ok_or_else(|| ServiceError::Internal(format!("entry {index} is missing")))?;
            let proof = prover.prove(index).map_err(internal)?;
            Ok(pb::ProvenEntry {
                log_index: index,
                entry,
                inclusion_proof: proof.iter().map(|h| h.0.to_vec()).collect(),
            })
        })
        .collect()
}
