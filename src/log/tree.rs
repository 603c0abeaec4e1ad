//! The log's RFC 6962 Merkle tree: appending leaves, roots, and inclusion and consistency proofs.
//!
//! The math is `tlog_tiles` (Cloudflare's port of Go's `golang.org/x/mod/sumdb/tlog`); this
//! module adds where the hashes come from and the checks a verifier of untrusted proofs needs.
//!
//! Hashes are kept as Go's *stored hashes*: every complete subtree's hash, numbered by
//! [`stored_hash_index`] (about two per leaf). Any root and any proof is computed from at most
//! `O(log n)` of them, read through a [`HashReader`]: the store on the server, a
//! [`MemoryHashes`] for the group being committed, a [`Frontier`] while appending.

use std::collections::HashMap;

use tlog_tiles::{
    prove_record, prove_tree, split_stored_hash_index, stored_hashes_for_record_hash,
};
pub use tlog_tiles::{stored_hash_index, Hash, HashReader, EMPTY_HASH};

use crate::types::LeafHash;

/// The most hashes a proof may have: C2SP tlog-witness caps consistency proofs at 63 lines,
/// and no tree with fewer than 2^63 leaves needs more for either kind of proof.
pub const MAX_PROOF_HASHES: usize = 63;

/// The largest tree whose root is computed: `tlog_tiles` overflows past 2^63 leaves. Only a
/// size from outside (an evidence file's frontier) can be larger; such a tree is refused.
pub const MAX_TREE_SIZE: u64 = 1 << 63;

/// Why a proof or a tree read failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The sizes or the index make no proof: an index at or past the tree size, a proof
    /// from a larger tree to a smaller one, an inclusion proof in the empty tree.
    #[error("{0}")]
    Impossible(String),
    /// The proof has too many hashes.
    #[error("the proof has {0} hashes; at most {MAX_PROOF_HASHES} are allowed")]
    TooLong(usize),
    /// The proof does not lead to the claimed root.
    #[error("the proof does not verify")]
    Invalid,
    /// A stored hash is missing or could not be read.
    #[error("tree hashes: {0}")]
    Read(String),
}

impl From<tlog_tiles::Error> for ProofError {
    fn from(e: tlog_tiles::Error) -> Self {
        match e {
            tlog_tiles::Error::InvalidProof => Self::Invalid,
            other => Self::Read(other.to_string()),
        }
    }
}

impl From<LeafHash> for Hash {
    fn from(h: LeafHash) -> Self {
        Hash(h.0)
    }
}

/// The right edge of the tree: the most recently completed subtree at each level. Enough to
/// append leaves and to compute the root without reading anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frontier {
    size: u64,
    /// `last[l]`: the hash of node `(size >> l) - 1` at level `l`, for every level with a
    /// complete node.
    last: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the tree of `size` leaves, read from its stored hashes.
    ///
    /// # Errors
    /// When `hashes` fails.
    pub fn load(size: u64, hashes: &impl HashReader) -> Result<Self, ProofError> {
        let levels = u64::BITS - size.leading_zeros();
        let indexes: Vec<u64> = (0..levels)
            .map(|l| stored_hash_index(level(l), (size >> l) - 1))
            .collect();
        let last = read(hashes, &indexes)?;
        Ok(Self { size, last })
    }

    /// The frontier of the tree of `size` leaves from its hashes, as [`stored`](Self::stored)
    /// lists them; `None` when their number does not fit the size, or the size is past
    /// [`MAX_TREE_SIZE`] (so that appending cannot pass it either).
    pub fn from_hashes(size: u64, last: Vec<Hash>) -> Option<Self> {
        (size < MAX_TREE_SIZE && last.len() as u32 == u64::BITS - size.leading_zeros())
            .then_some(Self { size, last })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf. Returns the stored hashes it completes: they are stored at consecutive
    /// indexes from `stored_hash_index(0, n)`, `n` being the leaf's index.
    pub fn append(&mut self, leaf: LeafHash) -> Vec<Hash> {
        let new = stored_hashes_for_record_hash(self.size, leaf.into(), &*self)
            .expect("the frontier holds every hash that appending reads");
        // Leaf n completes nodes (n >> l) at levels 0..new.len(): the last ones at their level.
        for (l, hash) in new.iter().enumerate() {
            match self.last.get_mut(l) {
                Some(slot) => *slot = *hash,
                None => self.last.push(*hash),
            }
        }
        self.size += 1;
        new
    }

    /// The tree's root hash.
    pub fn root(&self) -> Hash {
        tlog_tiles::tree_hash(self.size, self)
            .expect("the frontier holds every hash that the root reads")
    }

    /// The frontier's hashes with their stored indexes: what a proof at this size may need
    /// from the part of the tree before it (see [`MemoryHashes`]).
    pub fn stored(&self) -> impl Iterator<Item = (u64, Hash)> + '_ {
        self.last
            .iter()
            .enumerate()
            .map(|(l, h)| (stored_hash_index(level_of(l), (self.size >> l) - 1), *h))
    }
}

impl HashReader for Frontier {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&index| {
                let (l, n) = split_stored_hash_index(index);
                let l = usize::from(l);
                match self.last.get(l) {
                    Some(hash) if (self.size >> l) - 1 == n => Ok(*hash),
                    _ => Err(tlog_tiles::Error::IndexesNotInTree),
                }
            })
            .collect()
    }
}

/// Stored hashes held in memory: a group's new hashes and the frontier it started from, so
/// that its receipts' proofs need no reads, with a fallback for the rest of the tree.
#[derive(Debug, Default)]
pub struct MemoryHashes {
    hashes: HashMap<u64, Hash, foldhash::fast::RandomState>,
}

impl MemoryHashes {
    /// Adds hashes by stored index.
    pub fn extend(&mut self, hashes: impl IntoIterator<Item = (u64, Hash)>) {
        self.hashes.extend(hashes);
    }

    /// Makes room for `additional` more hashes.
    pub fn reserve(&mut self, additional: usize) {
        self.hashes.reserve(additional);
    }

    /// Reads from memory, and the hashes not held here from `rest`.
    pub fn over<'a, R: HashReader>(&'a self, rest: &'a R) -> Layered<'a, R> {
        Layered { memory: self, rest }
    }
}

impl HashReader for MemoryHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                self.hashes
                    .get(i)
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// [`MemoryHashes`] in front of another reader.
pub struct Layered<'a, R> {
    memory: &'a MemoryHashes,
    rest: &'a R,
}

impl<R: HashReader> HashReader for Layered<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        // The common case, a group's own entries: everything is in memory.
        if let Ok(all) = self.memory.read_hashes(indexes) {
            return Ok(all);
        }
        let mut out: Vec<Option<Hash>> = indexes
            .iter()
            .map(|i| self.memory.hashes.get(i).copied())
            .collect();
        let missing: Vec<u64> = indexes
            .iter()
            .zip(&out)
            .filter(|(_, h)| h.is_none())
            .map(|(i, _)| *i)
            .collect();
        if !missing.is_empty() {
            let mut read = self.rest.read_hashes(&missing)?.into_iter();
            for slot in out.iter_mut().filter(|h| h.is_none()) {
                *slot = read.next();
            }
        }
        out.into_iter()
            .map(|h| h.ok_or(tlog_tiles::Error::IndexesNotInTree))
            .collect()
    }
}

/// The root of the tree of `size` leaves.
///
/// # Errors
/// When `hashes` fails; [`ProofError::Impossible`] past [`MAX_TREE_SIZE`].
pub fn root(size: u64, hashes: &impl HashReader) -> Result<Hash, ProofError> {
    if size > MAX_TREE_SIZE {
        return Err(ProofError::Impossible(format!(
            "a tree of {size} leaves is past 2^63"
        )));
    }
    Ok(tlog_tiles::tree_hash(size, hashes)?)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 6962 §2.1.1).
///
/// # Errors
/// [`ProofError::Impossible`] when `index >= size`; [`ProofError::Read`] when `hashes` fails.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    hashes: &impl HashReader,
) -> Result<Vec<Hash>, ProofError> {
    check_inclusion_bounds(index, size)?;
    Ok(prove_record(size, index, hashes)?)
}

/// Inclusion proofs of many leaves in one tree, at one hash read per proof hash: the hashes of
/// the tree's right edge (its incomplete subtrees) are computed once, where
/// [`inclusion_proof`] recomputes them for every proof. Receipts use it: a group's proofs all
/// share its tree. The proofs are RFC 6962's (a property test checks them against
/// [`inclusion_proof`]).
///
/// A leaf's proof lists, level by level from the leaf up, the sibling of the node on its path,
/// skipping levels where the sibling lies past the tree's end. A sibling is either a complete
/// subtree (a stored hash) or the tree's rightmost node at its level, whose hash covers the
/// leaves of that subtree that exist.
pub struct Prover<'a, R> {
    size: u64,
    hashes: &'a R,
    /// `rightmost[l]`: the hash of node `(size - 1) >> l` at level `l`, over the leaves it has.
    rightmost: Vec<Hash>,
}

impl<'a, R: HashReader> Prover<'a, R> {
    /// A prover for the tree of `size` leaves (not empty).
    ///
    /// # Errors
    /// When the tree is empty or `hashes` fails.
    pub fn new(size: u64, hashes: &'a R) -> Result<Self, ProofError> {
        let last = size
            .checked_sub(1)
            .ok_or_else(|| ProofError::Impossible("the empty tree has no leaves".into()))?;
        let levels = u64::BITS - last.leading_zeros();
        // The complete left halves of the right edge's nodes, and the last leaf.
        let mut indexes = vec![stored_hash_index(0, last)];
        for l in 1..=levels {
            let k = last >> l;
            if (last >> (l - 1)) & 1 == 1 {
                indexes.push(stored_hash_index(level(l - 1), 2 * k));
            }
        }
        let read = read(hashes, &indexes)?;
        let mut read = read.into_iter();
        let mut rightmost = Vec::with_capacity(levels as usize + 1);
        let mut hash = read.next().ok_or(ProofError::Read("no last leaf".into()))?;
        rightmost.push(hash);
        for l in 1..=levels {
            if (last >> (l - 1)) & 1 == 1 {
                let left = read.next().ok_or(ProofError::Read("short read".into()))?;
                hash = tlog_tiles::node_hash(left, hash);
            }
            rightmost.push(hash);
        }
        Ok(Self {
            size,
            hashes,
            rightmost,
        })
    }

    /// The inclusion proof of leaf `index`.
    ///
    /// # Errors
    /// When `index` is not in the tree or `hashes` fails.
    pub fn prove(&self, index: u64) -> Result<Vec<Hash>, ProofError> {
        check_inclusion_bounds(index, self.size)?;
        let last = self.size - 1;
        // Per level: the sibling's stored index, or `None` for the rightmost node.
        let mut wanted: Vec<Option<u64>> = Vec::with_capacity(self.rightmost.len());
        for l in 0..self.rightmost.len() - 1 {
            let sibling = (index >> l) ^ 1;
            let edge = last >> l;
            if sibling < edge {
                wanted.push(Some(stored_hash_index(level_of(l), sibling)));
            } else if sibling == edge {
                wanted.push(None);
            }
        }
        let indexes: Vec<u64> = wanted.iter().flatten().copied().collect();
        let mut stored = read(self.hashes, &indexes)?.into_iter();
        let mut proof = Vec::with_capacity(wanted.len());
        let mut l = 0;
        for w in &wanted {
            // Levels without a sibling are skipped: find this one's level for the edge.
            while (index >> l) ^ 1 > last >> l {
                l += 1;
            }
            proof.push(match w {
                Some(_) => stored.next().ok_or(ProofError::Read("short read".into()))?,
                None => self.rightmost[l],
            });
            l += 1;
        }
        Ok(proof)
    }
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves (RFC 6962
/// §2.1.2). Empty when `old` is 0 or equal to `new`.
///
/// # Errors
/// [`ProofError::Impossible`] when `old > new`; [`ProofError::Read`] when `hashes` fails.
pub fn consistency_proof(
    old: u64,
    new: u64,
    hashes: &impl HashReader,
) -> Result<Vec<Hash>, ProofError> {
    if old > new {
        return Err(ProofError::Impossible(format!(
            "the old size {old} is larger than the new size {new}"
        )));
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    Ok(prove_tree(new, old, hashes)?)
}

/// Checks that `proof` shows leaf `leaf` at `index` in the tree of `size` leaves with root
/// `root`. Never panics, whatever the input.
///
/// # Errors
/// [`ProofError::Impossible`], [`ProofError::TooLong`] or [`ProofError::Invalid`].
pub fn verify_inclusion(
    proof: &[Hash],
    index: u64,
    size: u64,
    root: Hash,
    leaf: LeafHash,
) -> Result<(), ProofError> {
    check_inclusion_bounds(index, size)?;
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooLong(proof.len()));
    }
    Ok(tlog_tiles::check_record(
        &proof.to_vec(),
        size,
        root,
        index,
        leaf.into(),
    )?)
}

/// Checks that `proof` shows the tree of `old` leaves with root `old_root` to be a prefix of
/// the tree of `new` leaves with root `new_root`. Follows C2SP tlog-witness: from the empty
/// tree (whose root must be SHA-256 of nothing) and between equal sizes the proof is empty.
/// Never panics, whatever the input.
///
/// # Errors
/// [`ProofError::Impossible`], [`ProofError::TooLong`] or [`ProofError::Invalid`].
pub fn verify_consistency(
    proof: &[Hash],
    old: u64,
    old_root: Hash,
    new: u64,
    new_root: Hash,
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::Impossible(format!(
            "the old size {old} is larger than the new size {new}"
        )));
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooLong(proof.len()));
    }
    if old == 0 {
        return if proof.is_empty() && old_root == EMPTY_HASH {
            Ok(())
        } else {
            Err(ProofError::Invalid)
        };
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Invalid)
        };
    }
    Ok(tlog_tiles::check_tree(
        &proof.to_vec(),
        new,
        new_root,
        old,
        old_root,
    )?)
}

/// The root of the first `old` leaves that a consistency proof from `old` to `new` implies,
/// when the proof leads to `new_root` (RFC 9162 §2.1.4.2, run without the old root): what the
/// tree the proof is about has as its prefix. `None` when the proof does not lead to
/// `new_root`, or cannot say (`old` is 0, equal to `new`, or a power of two: then the old root
/// is a node the proof leaves out).
pub fn consistency_prefix_root(proof: &[Hash], old: u64, new: u64, new_root: Hash) -> Option<Hash> {
    if old == 0 || old >= new || old.is_power_of_two() || proof.len() > MAX_PROOF_HASHES {
        return None;
    }
    let (first, rest) = proof.split_first()?;
    let (mut f, mut n) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if n == 0 {
            return None;
        }
        if f & 1 == 1 || f == n {
            fr = tlog_tiles::node_hash(*c, fr);
            sr = tlog_tiles::node_hash(*c, sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                n >>= 1;
            }
        } else {
            sr = tlog_tiles::node_hash(sr, *c);
        }
        f >>= 1;
        n >>= 1;
    }
    (n == 0 && sr == new_root).then_some(fr)
}

fn check_inclusion_bounds(index: u64, size: u64) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Impossible(format!(
            "index {index} is not in a tree of {size} entries"
        )));
    }
    Ok(())
}

fn read(hashes: &impl HashReader, indexes: &[u64]) -> Result<Vec<Hash>, ProofError> {
    let read = hashes.read_hashes(indexes)?;
    if read.len() != indexes.len() {
        return Err(ProofError::Read(format!(
            "asked for {} hashes, got {}",
            indexes.len(),
            read.len()
        )));
    }
    Ok(read)
}

fn level(l: u32) -> u8 {
    u8::try_from(l).expect("a tree has at most 64 levels")
}

fn level_of(l: usize) -> u8 {
    u8::try_from(l).expect("a tree has at most 64 levels")
}

#[cfg(test)]
mod tests;
