//! The index against a brute-force scan: same matches, at every distance, through adds,
//! status changes and merges.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use super::*;
use crate::pdq::{distance, MAX_DISTANCE};

const ACTIVE: u8 = crate::pb::RecordStatus::Active as u8;
const RETRACTED: u8 = crate::pb::RecordStatus::Retracted as u8;
const WITHDRAWN: u8 = crate::pb::RecordStatus::Withdrawn as u8;

/// Every stored hash within `max` of `q`, by a scan, in the index's order.
fn brute(stored: &[(Bits, u8)], q: &Bits, max: u32, inactive: bool) -> Vec<Match> {
    let mut out: Vec<Match> = stored
        .iter()
        .filter(|(b, s)| distance(b, q) <= max && (inactive || segment::active(*s)))
        .map(|(b, s)| Match {
            bits: *b,
            distance: distance(b, q),
            status: *s,
        })
        .collect();
    out.sort_unstable_by_key(|m| (m.distance, m.bits));
    out
}

fn new(bits: Bits, status: u8) -> PdqChange {
    PdqChange {
        bits,
        status,
        new: true,
    }
}

fn known(bits: Bits, status: u8) -> PdqChange {
    PdqChange {
        bits,
        status,
        new: false,
    }
}

fn flip(rng: &mut impl Rng, b: &Bits, n: u32) -> Bits {
    let mut out = *b;
    let mut flipped = std::collections::HashSet::new();
    while flipped.len() < n as usize {
        let bit: usize = rng.gen_range(0..256);
        if flipped.insert(bit) {
            out[bit / 8] ^= 1 << (bit % 8);
        }
    }
    out
}

fn random(rng: &mut impl Rng) -> Bits {
    let mut b = [0u8; 32];
    rng.fill(&mut b[..]);
    b
}

fn matches(index: &PdqIndex, q: &Bits, max: u32, inactive: bool) -> Vec<Match> {
    let mut out = Vec::new();
    index.query(q, max, inactive, &mut out);
    out
}

/// Stored hashes in clusters (so that many lie near each query and near each other), queries
/// at 0 to 40 bits from a stored hash or random, every distance.
fn check_against_brute(seed: u64, n: usize, options: Options, adds: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let centres: Vec<Bits> = (0..8).map(|_| random(&mut rng)).collect();
    let mut all: Vec<(Bits, u8)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while all.len() < n + adds {
        let b = if rng.gen_bool(0.5) {
            let c = &centres[rng.gen_range(0..centres.len())];
            let k = rng.gen_range(0..48);
            flip(&mut rng, c, k)
        } else {
            random(&mut rng)
        };
        if seen.insert(b) {
            let s = if rng.gen_bool(0.2) { RETRACTED } else { ACTIVE };
            all.push((b, s));
        }
    }
    let index = PdqIndex::with_options(all[..n].to_vec(), options);
    for chunk in all[n..].chunks(7) {
        let changes: Vec<PdqChange> = chunk.iter().map(|&(b, s)| new(b, s)).collect();
        index.apply(&changes);
    }
    // Status changes of hashes in every part of the index: base, merged segments, tail.
    for i in (0..all.len()).step_by(17) {
        all[i].1 = if all[i].1 == ACTIVE {
            WITHDRAWN
        } else {
            ACTIVE
        };
        index.apply(&[known(all[i].0, all[i].1)]);
    }
    index.wait_for_merges();
    assert_eq!(index.len(), all.len());
    // The tables, not only scans, are what is checked.
    let probed = index
        .inner
        .snapshot
        .load()
        .segments
        .iter()
        .any(|s| s.has_tables());
    assert!(probed || n + adds < 10_000, "no segment has tables");
    for _ in 0..40 {
        let base = &all[rng.gen_range(0..all.len())].0;
        let q = if rng.gen_bool(0.8) {
            let k = rng.gen_range(0..=40);
            flip(&mut rng, base, k)
        } else {
            random(&mut rng)
        };
        for max in [0, 1, 5, 15, 30, 31, 32, 40, 47, 64, MAX_DISTANCE] {
            for inactive in [false, true] {
                assert_eq!(
                    matches(&index, &q, max, inactive),
                    brute(&all, &q, max, inactive),
                    "seed {seed} max {max} inactive {inactive}"
                );
            }
        }
    }
}

#[test]
fn one_segment_equals_a_scan() {
    check_against_brute(1, 20_000, Options::default(), 0);
}

#[test]
fn tail_and_merged_segments_equal_a_scan() {
    let options = Options {
        tail: 64,
        background_merges: false,
    };
    check_against_brute(2, 12_000, options, 12_000);
    check_against_brute(3, 0, options, 14_000);
}

#[test]
fn background_merges_equal_a_scan() {
    let options = Options {
        tail: 32,
        background_merges: true,
    };
    check_against_brute(4, 2_000, options, 24_000);
}

#[test]
fn plans_probe_at_the_default_distance_and_scan_far() {
    // A large segment answers 31 by probing, with radii whose sum passes the pigeonhole bound.
    let radii = segment::plan_radii(10_000_000, 31).expect("probes");
    let sum: i32 = radii.iter().map(|&r| i32::from(r)).sum();
    assert!(sum > 31 - radii.len() as i32, "{radii:?}");
    // Exact matches probe one table.
    let radii = segment::plan_radii(10_000_000, 0).expect("probes");
    assert_eq!(radii.iter().filter(|&&r| r >= 0).count(), 1, "{radii:?}");
    // Far matches on a small segment scan.
    assert_eq!(segment::plan_radii(5_000, 64), None);
}

#[test]
fn statuses_change_in_place_and_filter() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let a = random(&mut rng);
    let near = flip(&mut rng, &a, 3);
    let options = Options {
        tail: 4,
        background_merges: false,
    };
    let index = PdqIndex::with_options(vec![(a, ACTIVE)], options);
    index.apply(&[new(near, ACTIVE)]);
    assert_eq!(matches(&index, &a, 31, false).len(), 2);
    // Withdrawn in the segment, retracted in the tail: neither matches unless asked for.
    index.apply(&[known(a, WITHDRAWN), known(near, RETRACTED)]);
    assert_eq!(index.len(), 2, "a status change adds nothing");
    assert!(matches(&index, &a, 31, false).is_empty());
    let all = matches(&index, &a, 31, true);
    assert_eq!(
        all.iter()
            .map(|m| (m.distance, m.status))
            .collect::<Vec<_>>(),
        vec![(0, WITHDRAWN), (3, RETRACTED)]
    );
    // A retracted hash submitted again is active again.
    index.apply(&[known(near, ACTIVE)]);
    assert_eq!(matches(&index, &a, 31, false).len(), 1);
    // Statuses survive merges.
    for _ in 0..20 {
        index.apply(&[new(random(&mut rng), ACTIVE)]);
    }
    assert!(index.segments() >= 1);
    assert_eq!(
        matches(&index, &a, 31, true)
            .iter()
            .map(|m| m.status)
            .collect::<Vec<_>>(),
        vec![WITHDRAWN, ACTIVE]
    );
}

#[test]
fn an_empty_index_matches_nothing() {
    let index = PdqIndex::default();
    assert!(index.is_empty());
    assert!(matches(&index, &[7; 32], MAX_DISTANCE, true).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Near the threshold: hashes exactly `max - 1`, `max` and `max + 1` bits from the query.
    #[test]
    fn the_threshold_is_exact(
        seed in any::<u64>(),
        max in 0u32..=MAX_DISTANCE,
        fill in prop_oneof![0usize..3_000, 12_000usize..20_000],
    ) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let q = random(&mut rng);
        let mut stored: Vec<(Bits, u8)> = (0..fill).map(|_| (random(&mut rng), ACTIVE)).collect();
        for k in [max.saturating_sub(1), max, max + 1] {
            for _ in 0..3 {
                stored.push((flip(&mut rng, &q, k), ACTIVE));
            }
        }
        stored.sort_unstable();
        stored.dedup_by_key(|(b, _)| *b);
        let index = PdqIndex::build(stored.clone());
        prop_assert_eq!(matches(&index, &q, max, false), brute(&stored, &q, max, false));
    }
}

/// The benchmark's scan agrees with the plain distance, for passes of 1 to 8 queries and
/// lengths that are not a multiple of its block.
#[test]
fn brute_force_scan_is_the_plain_distance() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let centre = random(&mut rng);
    let stored: Vec<Bits> = (0..1_300)
        .map(|i| {
            if i % 3 == 0 {
                flip(&mut rng, &centre, i % 50)
            } else {
                random(&mut rng)
            }
        })
        .collect();
    let scan = BruteForce::new(&stored);
    for n in 1..=BruteForce::PER_PASS {
        let qs: Vec<Bits> = (0..n)
            .map(|k| flip(&mut rng, &centre, k as u32 * 3))
            .collect();
        for max in [0, 20, 31, 64] {
            let got = scan.pass(&qs, max);
            for (q, got) in qs.iter().zip(&got) {
                let want: Vec<(u32, u32)> = (0u32..)
                    .zip(&stored)
                    .map(|(i, b)| (i, distance(b, q)))
                    .filter(|&(_, d)| d <= max)
                    .collect();
                assert_eq!(got, &want, "{n} queries, max {max}");
            }
        }
    }
}

/// Both halves of a shared pass give the same hits as one pass.
#[test]
fn a_pass_on_two_cores_is_one_pass() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let centre = random(&mut rng);
    let stored: Vec<Bits> = (0..5_000u32)
        .map(|i| flip(&mut rng, &centre, i % 70))
        .collect();
    let scan = BruteForce::new(&stored);
    let qs: Vec<Bits> = (0..8).map(|k| flip(&mut rng, &centre, k * 4)).collect();
    assert_eq!(scan.pass_on_two_cores(&qs, 31), scan.pass(&qs, 31));
    assert!(scan.pass(&qs, 31).iter().all(|h| !h.is_empty()));
}
