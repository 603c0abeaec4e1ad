//! The stable driver: every target on its committed corpus, then on a fixed number of
//! mutations of it (bit flips, overwrites, insertions, deletions, truncation, splices with
//! another seed) and of random bytes. Proptest shrinks a failure to its smallest mutation.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::{seeds, TARGETS};

/// Mutated inputs per target: the whole set runs in a few seconds in a debug build.
const CASES: u32 = 4096;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The committed corpus of `target`, sorted by name.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// One change to an input; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// Replaces from the position with the same stretch of another seed.
    Splice(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        (
            any::<usize>(),
            prop_oneof![Just(0u8), Just(0xff), Just(0x80), any::<u8>()]
        )
            .prop_map(|(at, b)| Mutation::Set(at, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1..16usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>(), 1..64usize)
            .prop_map(|(s, at, n)| Mutation::Splice(s, at, n)),
    ]
}

fn apply(mut input: Vec<u8>, mutations: &[Mutation], seeds: &[Vec<u8>]) -> Vec<u8> {
    for m in mutations {
        let len = input.len();
        let at = |p: usize| if len == 0 { 0 } else { p % len };
        match m {
            Mutation::Flip(p, bit) if len > 0 => input[at(*p)] ^= 1 << bit,
            Mutation::Set(p, b) if len > 0 => input[at(*p)] = *b,
            Mutation::Insert(p, bytes) => {
                let p = at(*p);
                input.splice(p..p, bytes.iter().copied());
            }
            Mutation::Delete(p, n) if len > 0 => {
                let p = at(*p);
                input.drain(p..(p + n).min(len));
            }
            Mutation::Truncate(p) => input.truncate(at(*p)),
            Mutation::Splice(s, p, n) if len > 0 => {
                let other = &seeds[s % seeds.len()];
                let p = at(*p);
                let from = p.min(other.len());
                let piece = &other[from..(from + n).min(other.len())];
                let end = (p + piece.len()).min(len);
                input.splice(p..end, piece.iter().copied());
            }
            _ => {}
        }
    }
    input
}

fn run(name: &str, target: fn(&[u8])) {
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "{name}: no corpus");
    for seed in &seeds {
        target(seed);
    }
    let strategy = prop_oneof![
        4 => (0..seeds.len(), prop::collection::vec(mutation(), 1..6))
            .prop_map(|(i, m)| (Some(i), m)),
        1 => prop::collection::vec(mutation(), 1..6).prop_map(|m| (None, m)),
    ];
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(seed, mutations)| {
        let input = seed.map(|i| seeds[i].clone()).unwrap_or_default();
        target(&apply(input, &mutations, &seeds));
        Ok(())
    });
    if let Err(e) = result {
        panic!("fuzz target {name}: {e}");
    }
}

/// Every target has a corpus, and it holds exactly what [`seeds`] makes (so the corpus stays
/// valid as formats change: regenerate it with `write_fuzz_corpus`).
#[test]
fn every_target_has_its_corpus() {
    for (name, _) in TARGETS {
        let made = seeds(name);
        assert!(!made.is_empty(), "{name}: no seeds");
        for (file, bytes) in made {
            let path = corpus_dir(name).join(&file);
            let committed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run write_fuzz_corpus)", path.display()));
            assert!(committed == bytes, "{} is stale", path.display());
        }
    }
}

/// Writes the seeds into `fuzz/corpus/<target>/`.
#[test]
#[ignore = "writes the committed corpus"]
fn write_fuzz_corpus() {
    for (name, _) in TARGETS {
        let dir = corpus_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, bytes) in seeds(name) {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
    }
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name), super::$name);
            }
        )*

        /// The tests above cover every target.
        #[test]
        fn every_target_is_tested() {
            let tested = [$(stringify!($name)),*];
            let targets: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(tested[..], targets[..]);
        }
    };
}

fuzz_tests!(
    submit_request,
    statement,
    lookup_request,
    match_request,
    log_leaf,
    checkpoint,
    cosignature,
    receipt,
    proof,
    vkey,
    evidence,
    bundle,
    config,
    image,
);

/// The seeds get past the signature and format checks, so that mutations of them reach the
/// code behind those checks.
#[test]
fn the_seeds_are_valid() {
    use prost::Message;

    use crate::crypto::sign_payload;
    use crate::entry::ParsedEntry;
    use crate::log::proof::Receipt;

    let verifier = super::targets::log_signer().verifier();
    for (name, payload) in seeds("statement") {
        let key = ed25519_dalek::SigningKey::from_bytes(&super::MEMBER_SEED);
        let envelope = sign_payload(&key, payload.into());
        if let Err(e) = ParsedEntry::parse(envelope, super::ORIGIN) {
            panic!("statement {name}: {e}");
        }
    }
    for (name, note) in seeds("checkpoint") {
        assert_eq!(
            verifier.verify(&note).is_ok(),
            name != "not_a_checkpoint",
            "{name}"
        );
    }
    let witness = super::targets::witness().verifier();
    let cosigned = &seeds("cosignature")[0].1;
    assert_eq!(witness.verify(cosigned), Ok(Some(1_764_300_000)));
    for (name, leaf) in seeds("log_leaf").into_iter().filter(|(n, _)| n != "suffix") {
        let stored = crate::log::StoredEntry::decode(&leaf).unwrap();
        let parsed = if name == "entry_0" {
            crate::genesis::parse(&leaf, verifier.key(), super::ORIGIN).map_err(|e| e.to_string())
        } else {
            ParsedEntry::parse(stored.envelope, super::ORIGIN).map_err(|e| e.to_string())
        };
        parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, receipt) in seeds("receipt") {
        let receipt = Receipt::parse(&receipt).unwrap();
        let leaf = &seeds("log_leaf")[receipt.index as usize].1;
        receipt
            .verify(&verifier, crate::log::leaf_hash(leaf))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, json) in seeds("evidence") {
        let evidence: crate::follow::Evidence = serde_json::from_slice(&json).unwrap();
        let finding = evidence.check(&verifier);
        assert!(finding.is_ok(), "{name}: {finding:?}");
    }
    let bundle: crate::verify::Bundle = serde_json::from_slice(&seeds("bundle")[0].1).unwrap();
    crate::verify::bundle(&verifier, &bundle).unwrap();
    for (name, toml) in seeds("config") {
        let file: crate::config::FileConfig =
            toml::from_str(std::str::from_utf8(&toml).unwrap()).unwrap();
        assert_eq!(file.check(), Ok(()), "{name}");
    }
    let request = crate::wire::MatchHashesRequest::decode(&seeds("match_request")[0].1[..]);
    if let Err(e) = crate::service::parse_match(&request.unwrap()) {
        panic!("match_request: {e}");
    }
}

/// Found in the hardening audit: `tlog_tiles` overflows computing the root of
/// a tree past 2^63 leaves, which an evidence file's `first_index` could claim.
#[test]
fn frontiers_past_2_63_leaves_are_refused() {
    use crate::log::tree::{Frontier, Hash, MAX_TREE_SIZE};
    for size in [MAX_TREE_SIZE, MAX_TREE_SIZE + 1, u64::MAX] {
        let hashes = vec![Hash([1; 32]); (u64::BITS - size.leading_zeros()) as usize];
        assert!(Frontier::from_hashes(size, hashes).is_none(), "{size}");
    }
    let mut last = Frontier::from_hashes(MAX_TREE_SIZE - 1, vec![Hash([1; 32]); 63]).unwrap();
    last.root();
    last.append(crate::types::LeafHash([2; 32]));
    last.root();
    super::proof(&[&u64::MAX.to_le_bytes()[..], &[0; 8], &[1; 64]].concat());
}
