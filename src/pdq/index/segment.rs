//! One immutable part of the index: its hashes, their statuses, and a multi-index over them.
//!
//! # Why it is exact
//!
//! The 256 bits are cut into `m` disjoint chunks, and each chunk has a table from its value to
//! the hashes that have that value there. For a query at distance `d`, the plan gives each
//! chunk `i` a radius `t_i` (or skips it, `t_i = -1`) with `sum(t_i) >= d - m + 1`. If a stored
//! hash differed from the query in more than `t_i` bits in every chunk, it would differ in at
//! least `sum(t_i + 1) = sum(t_i) + m >= d + 1` bits in all. So every hash within `d` is, in
//! some chunk `i`, within `t_i` of the query's value there, and probing every value within
//! `t_i` of it in table `i` finds it (the generalised pigeonhole principle of multi-index
//! hashing, Norouzi et al., 2012). Each candidate is then checked on all 256 bits. Nothing is
//! approximate; the plan only chooses how the work is split, and a full scan when that is
//! cheaper.

use std::sync::atomic::{AtomicU8, Ordering};

use rayon::prelude::*;

use crate::pdq::{Bits, MAX_DISTANCE};

/// A hash as four 64-bit words, big-endian: word 0 is the hex form's first 16 digits.
pub(super) type Words = [u64; 4];

/// The hash's words.
pub(super) fn words(bits: &Bits) -> Words {
    let mut w = [0u64; 4];
    for (word, bytes) in w.iter_mut().zip(bits.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        *word = u64::from_be_bytes(b);
    }
    w
}

/// The hash's bytes.
pub(super) fn bits(words: &Words) -> Bits {
    let mut b = [0u8; 32];
    for (bytes, word) in b.chunks_exact_mut(8).zip(words) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    b
}

/// The Hamming distance of two hashes.
#[inline(always)]
pub(super) fn distance(a: &Words, b: &Words) -> u32 {
    (a[0] ^ b[0]).count_ones()
        + (a[1] ^ b[1]).count_ones()
        + (a[2] ^ b[2]).count_ones()
        + (a[3] ^ b[3]).count_ones()
}

/// Whether a hash with this stored status matches a query that did not ask for inactive ones:
/// not retracted (3) nor withdrawn (4) (`pb::RecordStatus`).
#[inline(always)]
pub(super) fn active(status: u8) -> bool {
    status != crate::pb::RecordStatus::Retracted as u8
        && status != crate::pb::RecordStatus::Withdrawn as u8
}

/// Hashes as four arrays of words, one per quarter of the hash, for scans: the compiler then
/// computes eight distances per AVX-512 instruction, where a scan of whole hashes computes one
/// at a time. The tail, the segments too small for tables, and the benchmark's brute force
/// scan these.
#[derive(Default, Clone)]
pub(super) struct Quarters([Vec<u64>; 4]);

impl Quarters {
    /// Hashes per block: a block's four quarters fit in the L1 cache, and a block without a
    /// match is read once.
    pub(super) const BLOCK: usize = 512;

    pub(super) fn from_words(hashes: &[Words]) -> Self {
        let mut q = Self::default();
        for part in &mut q.0 {
            part.reserve_exact(hashes.len());
        }
        for h in hashes {
            q.push(h);
        }
        q
    }

    pub(super) fn push(&mut self, h: &Words) {
        for (part, w) in self.0.iter_mut().zip(h) {
            part.push(*w);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.0[0].len()
    }

    pub(super) fn get(&self, i: usize) -> Words {
        [self.0[0][i], self.0[1][i], self.0[2][i], self.0[3][i]]
    }

    pub(super) fn to_words(&self) -> Vec<Words> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    pub(super) fn position(&self, q: &Words) -> Option<usize> {
        let mut hits = Vec::new();
        self.scan(q, 0, 0..self.len(), |_| true, &mut hits);
        hits.first().map(|&(i, _)| i as usize)
    }

    pub(super) fn capacity_bytes(&self) -> usize {
        self.0.iter().map(|p| p.capacity() * 8).sum()
    }

    /// The hashes `start..end`: four slices of one length, so that indexing them with a
    /// position below that length needs no bounds check and the loops vectorise.
    #[inline(always)]
    pub(super) fn block(&self, start: usize, end: usize) -> Block<'_> {
        let a = &self.0[0][start..end];
        let n = a.len();
        Block([
            a,
            &self.0[1][start..][..n],
            &self.0[2][start..][..n],
            &self.0[3][start..][..n],
        ])
    }

    /// Appends the position and distance of every hash in `range` within `max` of `q` whose
    /// position `keep` accepts, in position order. Each block's smallest distance is found
    /// first (vectorised); only a block with a match is walked again.
    #[inline(always)]
    pub(super) fn scan(
        &self,
        q: &Words,
        max: u32,
        range: std::ops::Range<usize>,
        keep: impl Fn(u32) -> bool,
        hits: &mut Vec<Hit>,
    ) {
        let limit = u64::from(max);
        for start in range.clone().step_by(Self::BLOCK) {
            let block = self.block(start, range.end.min(start + Self::BLOCK));
            let near = (0..block.len()).fold(u64::MAX, |m, i| m.min(block.distance(i, q)));
            if near <= limit {
                for i in 0..block.len() {
                    let d = block.distance(i, q);
                    let id = (start + i) as u32;
                    if d <= limit && keep(id) {
                        hits.push((id, d as u32));
                    }
                }
            }
        }
    }
}

/// A block of hashes by quarters (see [`Quarters::block`]).
pub(super) struct Block<'a>([&'a [u64]; 4]);

impl Block<'_> {
    /// How many hashes.
    #[inline(always)]
    pub(super) fn len(&self) -> usize {
        self.0[0].len()
    }

    /// The distance of hash `i` to `q`, in a 64-bit lane.
    #[inline(always)]
    pub(super) fn distance(&self, i: usize, q: &Words) -> u64 {
        let [a, b, c, d] = &self.0;
        u64::from((a[i] ^ q[0]).count_ones())
            + u64::from((b[i] ^ q[1]).count_ones())
            + u64::from((c[i] ^ q[2]).count_ones())
            + u64::from((d[i] ^ q[3]).count_ones())
    }
}

/// A hit in a segment: the hash's position there and its distance.
pub(super) type Hit = (u32, u32);

/// The widest chunk a table indexes: its offsets take `4 << WIDEST` bytes (64 MiB).
const WIDEST: u32 = 24;

/// Relative costs of the query plan's steps, measured with `hashforum bench pdq`: probing
/// one table value (a random read of its offsets, then of its bucket), checking one
/// candidate (a random read of its 32 bytes), and scanning one hash (a sequential read).
const PROBE_COST: f64 = 2.0;
const CANDIDATE_COST: f64 = 1.0;
const SCAN_COST: f64 = 0.06;

/// `width` bits of the hash starting at bit `start` (bit 0 is the most significant bit of
/// word 0), as a table key.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    start: u32,
    width: u32,
}

impl Chunk {
    #[inline(always)]
    fn key(self, w: &Words) -> u32 {
        let word = (self.start / 64) as usize;
        let hi = u128::from(w[word]) << 64 | u128::from(w.get(word + 1).copied().unwrap_or(0));
        ((hi << (self.start % 64)) >> (128 - self.width)) as u32
    }
}

/// The chunks of an `m`-way split: widths differ by at most one bit.
fn chunks(m: u32) -> Vec<Chunk> {
    let (q, r) = (256 / m, 256 % m);
    let mut start = 0;
    (0..m)
        .map(|i| {
            let width = q + u32::from(i < r);
            let c = Chunk { start, width };
            start += width;
            c
        })
        .collect()
}

/// One chunk's table: for each value of the chunk, the positions of the hashes with that
/// value (compressed sparse rows: `ids[offsets[v]..offsets[v + 1]]`).
struct Table {
    chunk: Chunk,
    offsets: Box<[u32]>,
    ids: Box<[u32]>,
}

impl Table {
    fn build(chunk: Chunk, hashes: &[Words]) -> Self {
        let mut offsets = vec![0u32; (1usize << chunk.width) + 1];
        for h in hashes {
            offsets[chunk.key(h) as usize + 1] += 1;
        }
        for v in 1..offsets.len() {
            offsets[v] += offsets[v - 1];
        }
        let mut next = offsets.clone();
        let mut ids = vec![0u32; hashes.len()];
        for (id, h) in (0u32..).zip(hashes) {
            let slot = &mut next[chunk.key(h) as usize];
            ids[*slot as usize] = id;
            *slot += 1;
        }
        Self {
            chunk,
            offsets: offsets.into_boxed_slice(),
            ids: ids.into_boxed_slice(),
        }
    }
}

/// How to answer a query at one distance.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// Read every hash.
    Scan,
    /// Probe each table within its radius (`-1`: not at all).
    Probe(Box<[i8]>),
}

/// How many values lie within `radius` bits of one value of `width` bits.
fn ball(width: u32, radius: i32) -> f64 {
    let mut sum = 0.0;
    let mut term = 1.0;
    for k in 0..=radius {
        if k > 0 {
            term = term * f64::from(width + 1 - k as u32) / f64::from(k as u32);
        }
        sum += term;
    }
    sum
}

/// The cheapest radii for distance `d` (greedy on the marginal cost), and their cost.
fn probe_plan(n: usize, chunks: &[Chunk], d: u32) -> (Vec<i8>, f64) {
    let cost = |c: &Chunk, r: i32| {
        let probes = ball(c.width, r);
        probes * PROBE_COST + probes * n as f64 / f64::from(1u32 << c.width) * CANDIDATE_COST
    };
    let need = d as i32 - chunks.len() as i32 + 1;
    let mut radii = vec![-1i32; chunks.len()];
    // The cost of widening each table by one more bit of radius (infinite once it covers
    // every value); only the widened table's changes.
    let step = |i: usize, r: i32| {
        if r >= chunks[i].width as i32 {
            f64::INFINITY
        } else {
            cost(&chunks[i], r + 1) - cost(&chunks[i], r)
        }
    };
    let mut marginal: Vec<f64> = (0..chunks.len()).map(|i| step(i, -1)).collect();
    let mut sum = -(chunks.len() as i32);
    while sum < need {
        let Some((i, &m)) = marginal
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
        else {
            return (Vec::new(), f64::INFINITY);
        };
        if m.is_infinite() {
            // Every table probed in full: no better than a scan.
            return (Vec::new(), f64::INFINITY);
        }
        radii[i] += 1;
        sum += 1;
        marginal[i] = step(i, radii[i]);
    }
    let total = chunks.iter().zip(&radii).map(|(c, &r)| cost(c, r)).sum();
    (radii.into_iter().map(|r| r as i8).collect(), total)
}

/// The plan for distance `d`: probing, or a scan when that is cheaper.
fn plan(n: usize, chunks: &[Chunk], d: u32) -> Plan {
    let (radii, cost) = probe_plan(n, chunks, d);
    if chunks.is_empty() || cost >= n as f64 * SCAN_COST {
        Plan::Scan
    } else {
        Plan::Probe(radii.into_boxed_slice())
    }
}

/// The split for `n` hashes: the number of chunks whose plan at the default distance is
/// cheapest, with tables of at most [`WIDEST`] bits and offsets of at most 80 bytes a hash.
/// None when scanning is cheaper (small segments).
fn layout(n: usize) -> Vec<Chunk> {
    let mut best: Option<(f64, Vec<Chunk>)> = None;
    for m in 8..=40 {
        let split = chunks(m);
        if split.iter().any(|c| c.width > WIDEST) {
            continue;
        }
        let offsets: f64 = split.iter().map(|c| f64::from(1u32 << c.width) * 4.0).sum();
        if offsets > 80.0 * (n.max(4096) as f64) {
            continue;
        }
        let (_, cost) = probe_plan(n, &split, crate::pdq::DEFAULT_MAX_DISTANCE);
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, split));
        }
    }
    match best {
        Some((cost, split)) if cost < n as f64 * SCAN_COST => split,
        _ => Vec::new(),
    }
}

/// An immutable set of hashes with their (mutable) statuses and tables.
pub(super) struct Segment {
    hashes: Box<[Words]>,
    /// The hashes again, by quarters, when the segment has no tables (scanned).
    quarters: Option<Quarters>,
    status: Box<[AtomicU8]>,
    tables: Box<[Table]>,
    /// The plan for each distance `0..=MAX_DISTANCE`.
    plans: Box<[Plan]>,
}

impl Segment {
    /// Builds the tables over `hashes` (in parallel), with their statuses.
    pub(super) fn build(hashes: Vec<Words>, status: Vec<u8>) -> Self {
        debug_assert_eq!(hashes.len(), status.len());
        let split = layout(hashes.len());
        let tables: Vec<Table> = split
            .par_iter()
            .map(|&c| Table::build(c, &hashes))
            .collect();
        let plans = (0..=MAX_DISTANCE)
            .map(|d| plan(hashes.len(), &split, d))
            .collect();
        let quarters = tables.is_empty().then(|| Quarters::from_words(&hashes));
        Self {
            hashes: hashes.into_boxed_slice(),
            quarters,
            status: status.into_iter().map(AtomicU8::new).collect(),
            tables: tables.into_boxed_slice(),
            plans,
        }
    }

    /// How many hashes it holds.
    pub(super) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The hash at `id`.
    pub(super) fn hash(&self, id: u32) -> &Words {
        &self.hashes[id as usize]
    }

    /// The status of the hash at `id`.
    pub(super) fn status(&self, id: u32) -> u8 {
        self.status[id as usize].load(Ordering::Relaxed)
    }

    /// Sets the status of the hash at `id`.
    pub(super) fn set_status(&self, id: u32, status: u8) {
        self.status[id as usize].store(status, Ordering::Relaxed);
    }

    /// The statuses, in order.
    pub(super) fn statuses(&self) -> impl Iterator<Item = u8> + '_ {
        self.status.iter().map(|s| s.load(Ordering::Relaxed))
    }

    /// The hashes, in order.
    pub(super) fn hashes(&self) -> &[Words] {
        &self.hashes
    }

    /// Bytes of memory it holds.
    pub(super) fn memory(&self) -> usize {
        self.hashes.len() * (size_of::<Words>() + 1)
            + self.quarters.as_ref().map_or(0, Quarters::capacity_bytes)
            + self
                .tables
                .iter()
                .map(|t| (t.offsets.len() + t.ids.len()) * 4)
                .sum::<usize>()
    }

    /// Whether it has tables (large enough to probe rather than scan).
    #[cfg(test)]
    pub(super) fn has_tables(&self) -> bool {
        !self.tables.is_empty()
    }

    /// The position of `q`, if held.
    pub(super) fn find(&self, q: &Words) -> Option<u32> {
        let mut hits = Vec::new();
        self.query(q, 0, true, &mut hits);
        hits.first().map(|&(id, _)| id)
    }

    /// Appends every hash within `max` of `q` (only active ones unless `inactive`) to `hits`,
    /// each once, in no order.
    #[inline(always)]
    pub(super) fn query(&self, q: &Words, max: u32, inactive: bool, hits: &mut Vec<Hit>) {
        let from = hits.len();
        match self.plans.get(max as usize) {
            Some(Plan::Probe(radii)) => {
                for (table, &radius) in self.tables.iter().zip(radii.iter()) {
                    if radius >= 0 {
                        self.probe(table, q, radius, max, inactive, hits);
                    }
                }
                // A hash close in several chunks was found in several tables.
                if hits.len() - from > 1 {
                    hits[from..].sort_unstable();
                    let mut kept = from;
                    for i in from..hits.len() {
                        if i == from || hits[i].0 != hits[kept - 1].0 {
                            hits[kept] = hits[i];
                            kept += 1;
                        }
                    }
                    hits.truncate(kept);
                }
            }
            Some(Plan::Scan) | None => self.scan(q, max, inactive, hits),
        }
    }

    /// Probes every value within `radius` of `q`'s value in `table`: the value itself, then
    /// its values at each distance `1..=radius`, enumerated as bit masks with that many bits
    /// set (Gosper's next-combination step, with a shift in place of its division).
    #[inline(always)]
    fn probe(
        &self,
        table: &Table,
        q: &Words,
        radius: i8,
        max: u32,
        inactive: bool,
        hits: &mut Vec<Hit>,
    ) {
        let key = table.chunk.key(q);
        let width = table.chunk.width;
        self.bucket(table, key, q, max, inactive, hits);
        for r in 1..=u32::from(radius.unsigned_abs()) {
            let mut mask: u64 = (1u64 << r) - 1;
            while mask >> width == 0 {
                self.bucket(table, key ^ mask as u32, q, max, inactive, hits);
                let low = mask & mask.wrapping_neg();
                let ripple = mask + low;
                mask = (((ripple ^ mask) >> 2) >> low.trailing_zeros()) | ripple;
            }
        }
    }

    #[inline(always)]
    fn bucket(
        &self,
        table: &Table,
        key: u32,
        q: &Words,
        max: u32,
        inactive: bool,
        hits: &mut Vec<Hit>,
    ) {
        let (lo, hi) = (
            table.offsets[key as usize] as usize,
            table.offsets[key as usize + 1] as usize,
        );
        for &id in &table.ids[lo..hi] {
            let d = distance(&self.hashes[id as usize], q);
            if d <= max && (inactive || active(self.status(id))) {
                hits.push((id, d));
            }
        }
    }

    /// Checks every hash.
    #[inline(always)]
    fn scan(&self, q: &Words, max: u32, inactive: bool, hits: &mut Vec<Hit>) {
        if let Some(quarters) = &self.quarters {
            let keep = |id: u32| inactive || active(self.status(id));
            quarters.scan(q, max, 0..quarters.len(), keep, hits);
            return;
        }
        for (id, h) in (0u32..).zip(self.hashes.iter()) {
            let d = distance(h, q);
            if d <= max && (inactive || active(self.status(id))) {
                hits.push((id, d));
            }
        }
    }
}

#[cfg(test)]
pub(super) fn plan_radii(n: usize, d: u32) -> Option<Vec<i8>> {
    let split = layout(n);
    match plan(n, &split, d) {
        Plan::Scan => None,
        Plan::Probe(r) => Some(r.into_vec()),
    }
}
