//! The tree against RFC 6962 itself: its test vectors, and a naive recursive implementation of
//! §2.1 (MTH, PATH, PROOF) for random sizes.

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;
use crate::log::leaf_hash;

/// The RFC 6962 test leaves (also transparency-dev/merkle's).
const RFC_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

fn rfc_leaf_hashes() -> Vec<LeafHash> {
    RFC_LEAVES
        .iter()
        .map(|l| leaf_hash(&hex::decode(l).unwrap()))
        .collect()
}

fn h(x: &Hash) -> String {
    hex::encode(x.0)
}

/// Stored hashes by index, written as the sequencer writes them.
#[derive(Default)]
struct Stored(Vec<Hash>);

impl HashReader for Stored {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                self.0
                    .get(usize::try_from(i).unwrap())
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

fn build(leaves: &[LeafHash]) -> (Frontier, Stored) {
    let mut frontier = Frontier::default();
    let mut stored = Stored::default();
    for (n, leaf) in leaves.iter().enumerate() {
        let start = stored_hash_index(0, n as u64);
        assert_eq!(start, stored.0.len() as u64, "stored hashes are contiguous");
        stored.0.extend(frontier.append(*leaf));
    }
    (frontier, stored)
}

// RFC 6962 §2.1, written as plainly as the RFC.

fn node(l: &Hash, r: &Hash) -> Hash {
    let mut s = Sha256::new();
    s.update([1u8]);
    s.update(l.0);
    s.update(r.0);
    Hash(s.finalize().into())
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => EMPTY_HASH,
        1 => d[0],
        n => {
            let k = split(n);
            node(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn hashes(leaves: &[LeafHash]) -> Vec<Hash> {
    leaves.iter().map(|l| Hash::from(*l)).collect()
}

#[test]
fn roots_match_the_rfc_6962_vectors() {
    let leaves = rfc_leaf_hashes();
    let expected = [
        (
            1,
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        ),
        (
            2,
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        ),
        (
            3,
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        ),
        (
            7,
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        ),
        (
            8,
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ),
    ];
    for (n, root_hex) in expected {
        let (frontier, stored) = build(&leaves[..n]);
        assert_eq!(h(&frontier.root()), root_hex, "frontier root of {n}");
        assert_eq!(
            h(&root(n as u64, &stored).unwrap()),
            root_hex,
            "stored root of {n}"
        );
    }
    assert_eq!(
        h(&Frontier::default().root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

/// RFC 6962 §2.1.3: the seven-leaf example's audit path and consistency proofs, by name.
#[test]
fn proofs_match_the_rfc_6962_worked_example() {
    let leaves = rfc_leaf_hashes();
    let (_, stored) = build(&leaves[..7]);
    let d = hashes(&leaves[..7]);
    // Node names as in the RFC: a..f leaves' parents and so on.
    let (a, b, c, dd, e, f, j) = (d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    let g = node(&a, &b);
    let hh = node(&c, &dd);
    let i = node(&e, &f);
    let k = node(&g, &hh);
    let l = node(&i, &j);
    assert_eq!(inclusion_proof(0, 7, &stored).unwrap(), [b, hh, l]);
    assert_eq!(inclusion_proof(3, 7, &stored).unwrap(), [c, g, l]);
    assert_eq!(inclusion_proof(4, 7, &stored).unwrap(), [f, j, k]);
    assert_eq!(inclusion_proof(6, 7, &stored).unwrap(), [i, k]);
    assert_eq!(consistency_proof(3, 7, &stored).unwrap(), [c, dd, g, l]);
    assert_eq!(consistency_proof(4, 7, &stored).unwrap(), [l]);
    assert_eq!(consistency_proof(6, 7, &stored).unwrap(), [i, j, k]);
}

#[test]
fn verifiers_refuse_impossible_and_oversized_input_without_panicking() {
    let leaves = rfc_leaf_hashes();
    let (frontier, stored) = build(&leaves);
    let root8 = frontier.root();
    let proof = inclusion_proof(2, 8, &stored).unwrap();
    verify_inclusion(&proof, 2, 8, root8, leaves[2]).unwrap();
    for (index, size) in [(8, 8), (0, 0), (u64::MAX, u64::MAX), (u64::MAX, 8)] {
        assert!(matches!(
            verify_inclusion(&proof, index, size, root8, leaves[2]),
            Err(ProofError::Impossible(_))
        ));
    }
    // Huge sizes are not impossible, only wrong.
    assert_eq!(
        verify_inclusion(&proof, 2, u64::MAX, root8, leaves[2]),
        Err(ProofError::Invalid)
    );
    assert_eq!(
        verify_inclusion(&vec![root8; 64], 2, u64::MAX, root8, leaves[2]),
        Err(ProofError::TooLong(64))
    );
    assert_eq!(
        verify_inclusion(&proof, 3, 8, root8, leaves[2]),
        Err(ProofError::Invalid)
    );
    let mut longer = proof.clone();
    longer.push(root8);
    assert_eq!(
        verify_inclusion(&longer, 2, 8, root8, leaves[2]),
        Err(ProofError::Invalid)
    );
    assert_eq!(
        verify_inclusion(&proof[..2], 2, 8, root8, leaves[2]),
        Err(ProofError::Invalid)
    );

    let root3 = root(3, &stored).unwrap();
    let c = consistency_proof(3, 8, &stored).unwrap();
    verify_consistency(&c, 3, root3, 8, root8).unwrap();
    assert!(matches!(
        verify_consistency(&c, 9, root3, 8, root8),
        Err(ProofError::Impossible(_))
    ));
    assert!(verify_consistency(&c, 3, root8, 8, root8).is_err());
    assert!(verify_consistency(&c, 3, root3, u64::MAX, root8).is_err());
    assert_eq!(
        verify_consistency(&vec![root8; 64], 3, root3, u64::MAX, root8),
        Err(ProofError::TooLong(64))
    );
    // The C2SP tlog-witness edge rules.
    verify_consistency(&[], 0, EMPTY_HASH, 8, root8).unwrap();
    assert!(verify_consistency(&[], 0, root3, 8, root8).is_err());
    assert!(verify_consistency(&[root3], 0, EMPTY_HASH, 8, root8).is_err());
    verify_consistency(&[], 8, root8, 8, root8).unwrap();
    assert!(verify_consistency(&[], 8, root3, 8, root8).is_err());
    assert!(verify_consistency(&[root8], 8, root8, 8, root8).is_err());
    assert!(consistency_proof(9, 8, &stored).is_err());
    assert!(inclusion_proof(8, 8, &stored).is_err());
}

/// The prover agrees with `inclusion_proof` for every leaf of every tree up to 300 leaves.
#[test]
fn the_prover_agrees_with_rfc_6962_for_every_small_tree() {
    let leaves: Vec<LeafHash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let (_, stored) = build(&leaves);
    for size in 1..=300u64 {
        let prover = Prover::new(size, &stored).unwrap();
        for index in 0..size {
            assert_eq!(
                prover.prove(index).unwrap(),
                inclusion_proof(index, size, &stored).unwrap(),
                "{index} in {size}"
            );
        }
        assert!(prover.prove(size).is_err());
    }
    assert!(Prover::new(0, &stored).is_err());
}

#[test]
fn a_frontier_loads_from_stored_hashes() {
    let leaves: Vec<LeafHash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let (_, stored) = build(&leaves);
    for size in [0u64, 1, 2, 3, 255, 256, 257, 299, 300] {
        let (expected, _) = build(&leaves[..size as usize]);
        assert_eq!(Frontier::load(size, &stored).unwrap(), expected, "{size}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every root, inclusion proof and consistency proof equals the RFC's own definition,
    /// verifies, and fails for a wrong leaf or root; proofs built from a group's hashes in
    /// memory (the receipts' path) equal proofs built from the store.
    #[test]
    fn proofs_match_a_naive_tree(
        size in 1usize..600,
        picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 8),
        group_start in any::<prop::sample::Index>(),
    ) {
        let leaves: Vec<LeafHash> = (0..size as u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let d = hashes(&leaves);
        let (frontier, stored) = build(&leaves);
        prop_assert_eq!(frontier.root(), mth(&d));

        // A group appended from `start` to `size`, its hashes held in memory.
        let start = group_start.index(size);
        let mut group = Frontier::load(start as u64, &stored).unwrap();
        let mut memory = MemoryHashes::default();
        memory.extend(group.stored());
        for (n, leaf) in leaves.iter().enumerate().skip(start) {
            let first = stored_hash_index(0, n as u64);
            memory.extend((first..).zip(group.append(*leaf)));
        }
        prop_assert_eq!(group.root(), mth(&d));

        let prover = Prover::new(size as u64, &stored).unwrap();
        let group_prover = Prover::new(size as u64, &memory).unwrap();
        for (m, old) in &picks {
            let m = m.index(size);
            let proof = inclusion_proof(m as u64, size as u64, &stored).unwrap();
            prop_assert_eq!(&proof, &path(m, &d));
            prop_assert_eq!(&prover.prove(m as u64).unwrap(), &proof);
            if m >= start {
                prop_assert_eq!(&group_prover.prove(m as u64).unwrap(), &proof);
            }
            verify_inclusion(&proof, m as u64, size as u64, mth(&d), leaves[m]).unwrap();
            let wrong = leaves[(m + 1) % size];
            if size > 1 {
                prop_assert!(verify_inclusion(&proof, m as u64, size as u64, mth(&d), wrong).is_err());
            }
            if m >= start {
                let from_memory = inclusion_proof(m as u64, size as u64, &memory).unwrap();
                prop_assert_eq!(&from_memory, &proof);
            }
            let layered = inclusion_proof(m as u64, size as u64, &memory.over(&stored)).unwrap();
            prop_assert_eq!(&layered, &proof);

            let old = old.index(size + 1);
            let c = consistency_proof(old as u64, size as u64, &stored).unwrap();
            let expected = if old == 0 { vec![] } else { subproof(old, &d, true) };
            prop_assert_eq!(&c, &expected);
            verify_consistency(&c, old as u64, mth(&d[..old]), size as u64, mth(&d)).unwrap();
            if old > 0 && old < size {
                prop_assert!(verify_consistency(&c, old as u64, mth(&d[..old - 1]), size as u64, mth(&d)).is_err());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The prefix root a consistency proof implies is the old tree's root when the proof is
    /// of the same tree; for a tree whose first `old` leaves differ, it is that tree's prefix
    /// root, which is not the old tree's: the proof shows the fork.
    #[test]
    fn consistency_proofs_imply_the_prefix_root(old in 1u64..300, extra in 1u64..300, changed in any::<prop::sample::Index>()) {
        let new = old + extra;
        let leaves: Vec<LeafHash> = (0..new as u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let (frontier, stored) = build(&leaves);
        let (old_frontier, _) = build(&leaves[..old as usize]);
        let proof = consistency_proof(old, new, &stored).unwrap();
        let implied = consistency_prefix_root(&proof, old, new, frontier.root());
        if old.is_power_of_two() {
            prop_assert_eq!(implied, None);
        } else {
            prop_assert_eq!(implied, Some(old_frontier.root()));
            prop_assert_eq!(consistency_prefix_root(&proof, old, new, Hash([9; 32])), None);
            // Another history: one of the first `old` leaves differs.
            let mut forked = leaves.clone();
            forked[changed.index(old as usize)] = leaf_hash(b"another entry");
            let (fork_frontier, fork_stored) = build(&forked);
            let (fork_old, _) = build(&forked[..old as usize]);
            let fork_proof = consistency_proof(old, new, &fork_stored).unwrap();
            let implied = consistency_prefix_root(&fork_proof, old, new, fork_frontier.root());
            prop_assert_eq!(implied, Some(fork_old.root()));
            prop_assert_ne!(implied, Some(old_frontier.root()));
        }
    }
}
