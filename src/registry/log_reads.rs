//! Reading the log: checkpoints, entries and proofs, for the Log API. Only what a signed
//! checkpoint covers is served: an index or size past the latest checkpoint is `OUT_OF_RANGE`.

use std::sync::Arc;

use super::Registry;
use crate::error::ServiceError;
use crate::log::checkpoint::SignedCheckpoint;
use crate::log::tree::{self, Hash, ProofError};

/// The most entries in one chunk of a range read: a tile's width.
pub const ENTRY_CHUNK: u64 = 256;

impl Registry {
    /// The latest durable signed checkpoint.
    pub fn latest_checkpoint(&self) -> Arc<SignedCheckpoint> {
        self.checkpoints().borrow().clone()
    }

    /// The checkpoint signed at tree size `size`, or the latest when `size` is 0. With
    /// `at_most`, the largest one kept at a size of at most `size`.
    ///
    /// # Errors
    /// `NOT_FOUND` when no checkpoint was kept at that size (the log signs one per group
    /// commit, not one per entry); `OUT_OF_RANGE` past the latest checkpoint, without
    /// `at_most`.
    pub async fn checkpoint(&self, size: u64, at_most: bool) -> Result<Vec<u8>, ServiceError> {
        let latest = self.latest_checkpoint();
        if size == 0 || size == latest.head.size || (at_most && size >= latest.head.size) {
            return Ok(self.cosigned(latest.head.size, &latest.note));
        }
        within("size", size, latest.head.size)?;
        let store = self.store.clone();
        let (size, note) = self
            .blocking(move || {
                let found = if at_most {
                    store.checkpoint_at_most(size)?
                } else {
                    store.checkpoint(size)?.map(|note| (size, note))
                };
                found.ok_or_else(|| ServiceError::NotFound {
                    reason: "NO_CHECKPOINT_AT_SIZE",
                    message: format!("the log kept no checkpoint at size {size}"),
                })
            })
            .await?;
        Ok(self.cosigned(size, &note))
    }

    /// The exact bytes of the entries `start..end` (at most [`ENTRY_CHUNK`] of them).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when `start > end`; `OUT_OF_RANGE` when `end` is past the latest
    /// checkpoint.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, ServiceError> {
        check_range(start, end, self.latest_checkpoint().head.size)?;
        let end = end.min(start.saturating_add(ENTRY_CHUNK));
        let store = self.store.clone();
        self.blocking(move || {
            let entries = store.entry_range(start, end)?;
            if entries.len() as u64 != end - start {
                return Err(ServiceError::Internal(format!(
                    "entries {start}..{end}: only {} are stored",
                    entries.len()
                )));
            }
            Ok(entries)
        })
        .await
    }

    /// The exact bytes of the entry at `index`.
    ///
    /// # Errors
    /// `OUT_OF_RANGE` when the latest checkpoint does not cover it.
    pub async fn entry(&self, index: u64) -> Result<Vec<u8>, ServiceError> {
        let size = self.latest_checkpoint().head.size;
        if index >= size {
            return Err(out_of_range(
                "index",
                format!("the latest checkpoint covers entries 0..{size}"),
            ));
        }
        let mut entries = self.entries(index, index + 1).await?;
        entries
            .pop()
            .ok_or_else(|| ServiceError::Internal(format!("entry {index} is missing")))
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries (0: the latest
    /// checkpoint's). Returns the size and the proof.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when `index >= size`; `OUT_OF_RANGE` past the latest checkpoint.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<(u64, Vec<Hash>), ServiceError> {
        let latest = self.latest_checkpoint().head.size;
        if size == 0 && index >= latest {
            // Not in the latest tree yet: it may be later.
            return Err(out_of_range(
                "index",
                format!("the latest checkpoint covers entries 0..{latest}"),
            ));
        }
        let size = if size == 0 { latest } else { size };
        within("tree_size", size, latest)?;
        if index >= size {
            return Err(ServiceError::invalid(
                "index",
                "INDEX_NOT_IN_TREE",
                format!("index {index} is not in a tree of {size} entries"),
            ));
        }
        let store = self.store.clone();
        self.blocking(move || proof_result(tree::inclusion_proof(index, size, &store)))
            .await
            .map(|proof| (size, proof))
    }

    /// The consistency proof from the tree of `old` entries to the tree of `new` (0: the
    /// latest checkpoint's). Returns the new size and the proof.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when `old > new`; `OUT_OF_RANGE` past the latest checkpoint.
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<(u64, Vec<Hash>), ServiceError> {
        let latest = self.latest_checkpoint().head.size;
        let new = if new == 0 { latest } else { new };
        within("new_size", new, latest)?;
        if old > new {
            return Err(ServiceError::invalid(
                "old_size",
                "OLD_SIZE_TOO_LARGE",
                format!("the old size {old} is larger than the new size {new}"),
            ));
        }
        let store = self.store.clone();
        self.blocking(move || proof_result(tree::consistency_proof(old, new, &store)))
            .await
            .map(|proof| (new, proof))
    }
}

/// Checks an entry range against the latest checkpoint's size.
///
/// # Errors
/// `INVALID_ARGUMENT` when `start > end`; `OUT_OF_RANGE` when `end > size`.
pub fn check_range(start: u64, end: u64, size: u64) -> Result<(), ServiceError> {
    if start > end {
        return Err(ServiceError::invalid(
            "start",
            "EMPTY_RANGE",
            format!("start {start} is after end {end}"),
        ));
    }
    within("end", end, size)
}

fn within(field: &str, size: u64, latest: u64) -> Result<(), ServiceError> {
    if size > latest {
        return Err(out_of_range(
            field,
            format!("{size} is past the latest checkpoint, of size {latest}"),
        ));
    }
    Ok(())
}

fn out_of_range(field: &str, message: String) -> ServiceError {
    ServiceError::OutOfRange {
        field: field.to_owned(),
        reason: "PAST_LATEST_CHECKPOINT",
        message,
    }
}

fn proof_result(proof: Result<Vec<Hash>, ProofError>) -> Result<Vec<Hash>, ServiceError> {
    proof.map_err(|e| ServiceError::Internal(format!("proof: {e}")))
}
