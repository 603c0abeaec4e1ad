//! The in-memory PDQ matching index: every stored PDQ hash, found by Hamming distance, exactly.
//!
//! It is an LSM of immutable [`Segment`]s (each a multi-index over its hashes, see there for
//! why a query is exact) and a small tail that queries scan. The state code feeds it, through
//! the sequencer, every PDQ hash whose record a committed group changed, with the record's new
//! status ([`PdqIndex::apply`]): a new hash goes to the tail, so it is matchable before its
//! receipt is returned; a known hash gets its status set in place. Nothing is ever removed:
//! retracted and withdrawn hashes stay, and match only when a query asks for them.
//!
//! When the tail is full it becomes a segment. Segments of similar size are then merged, on
//! a background thread, into one (the logarithmic method: each hash is merged `O(log n)`
//! times, and there are `O(log n)` segments). Queries read a snapshot (segments and tail)
//! through an `ArcSwap`, so neither adding a hash nor a merge ever waits for a query, or
//! makes one wait.

mod kernel;
mod segment;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

pub use kernel::{level, Level};
use segment::{Hit, Quarters, Segment, Words};

use crate::pdq::Bits;

/// A committed change to a PDQ hash's record, as the state code reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdqChange {
    /// The hash.
    pub bits: Bits,
    /// Its record's new status (`pb::RecordStatus` as a byte).
    pub status: u8,
    /// Whether the record did not exist before (a first submission): the hash is not in the
    /// index yet, and is added without looking for it.
    pub new: bool,
}

/// A stored hash within the distance asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The stored hash.
    pub bits: Bits,
    /// Its distance to the query.
    pub distance: u32,
    /// Its record's status (`pb::RecordStatus` as a byte) when it was found.
    pub status: u8,
}

/// Tuning, for tests and benchmarks.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How many hashes the scanned tail holds before it becomes a segment.
    pub tail: usize,
    /// Merge segments on a background thread (otherwise in [`PdqIndex::apply`]).
    pub background_merges: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tail: 2048,
            background_merges: true,
        }
    }
}

/// What queries read: immutable, swapped whole.
#[derive(Default)]
struct Snapshot {
    segments: Vec<Arc<Segment>>,
    tail: Arc<Tail>,
}

/// The newest hashes, scanned.
#[derive(Default, Clone)]
struct Tail {
    hashes: Quarters,
    status: Vec<u8>,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    /// Held by whoever changes the snapshot: [`PdqIndex::apply`], and a merge when it swaps
    /// its result in. `true` while a merge runs.
    writer: Mutex<bool>,
    options: Options,
}

/// The PDQ matching index. Cheap to clone (shared).
#[derive(Clone)]
pub struct PdqIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PdqIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdqIndex")
            .field("len", &self.len())
            .field("segments", &self.segments())
            .finish()
    }
}

impl Default for PdqIndex {
    fn default() -> Self {
        Self::with_options(Vec::new(), Options::default())
    }
}

impl PdqIndex {
    /// An index over `hashes` (hash and record status; each hash once), built in parallel.
    pub fn build(hashes: Vec<(Bits, u8)>) -> Self {
        Self::with_options(hashes, Options::default())
    }

    /// [`build`](Self::build) with `options`.
    pub fn with_options(hashes: Vec<(Bits, u8)>, options: Options) -> Self {
        let mut snapshot = Snapshot::default();
        if !hashes.is_empty() {
            let (words, status): (Vec<Words>, Vec<u8>) =
                hashes.iter().map(|(b, s)| (segment::words(b), *s)).unzip();
            snapshot
                .segments
                .push(Arc::new(Segment::build(words, status)));
        }
        Self {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(snapshot),
                writer: Mutex::new(false),
                options: Options {
                    tail: options.tail.max(1),
                    ..options
                },
            }),
        }
    }

    /// How many hashes it holds.
    pub fn len(&self) -> usize {
        let snap = self.inner.snapshot.load();
        snap.segments.iter().map(|s| s.len()).sum::<usize>() + snap.tail.hashes.len()
    }

    /// Whether it holds no hash.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many segments it has (besides the tail).
    pub fn segments(&self) -> usize {
        self.inner.snapshot.load().segments.len()
    }

    /// Bytes of memory its hashes, statuses and tables take.
    pub fn memory_bytes(&self) -> usize {
        let snap = self.inner.snapshot.load();
        snap.segments.iter().map(|s| s.memory()).sum::<usize>()
            + snap.tail.hashes.capacity_bytes()
            + snap.tail.status.capacity()
    }

    /// Every stored hash within `max` bits of `query`, closest first (then by value);
    /// retracted and withdrawn ones only if `inactive`. Appends to `out`.
    pub fn query(&self, query: &Bits, max: u32, inactive: bool, out: &mut Vec<Match>) {
        let q = segment::words(query);
        let snap = self.inner.snapshot.load();
        let from = out.len();
        let mut hits: Vec<Hit> = Vec::new();
        for seg in &snap.segments {
            hits.clear();
            kernel::run(
                #[inline(always)]
                || seg.query(&q, max, inactive, &mut hits),
            );
            out.extend(hits.iter().map(|&(id, distance)| Match {
                bits: segment::bits(seg.hash(id)),
                distance,
                status: seg.status(id),
            }));
        }
        let tail = &snap.tail;
        hits.clear();
        let keep = |i: u32| inactive || segment::active(tail.status[i as usize]);
        kernel::run(
            #[inline(always)]
            || {
                tail.hashes
                    .scan(&q, max, 0..tail.hashes.len(), keep, &mut hits)
            },
        );
        out.extend(hits.iter().map(|&(i, distance)| Match {
            bits: segment::bits(&tail.hashes.get(i as usize)),
            distance,
            status: tail.status[i as usize],
        }));
        out[from..].sort_unstable_by_key(|m| (m.distance, m.bits));
    }

    /// Records each change: a new hash is added, matchable as soon as this returns; a known
    /// one gets its status set in place (a "known" hash that is not found is added too).
    /// Called with each committed group's PDQ changes, in log order.
    pub fn apply(&self, updates: &[PdqChange]) {
        let merge = {
            let mut merging = self
                .inner
                .writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let snap = self.inner.snapshot.load_full();
            let mut tail: Option<Tail> = None;
            for change in updates {
                let q = segment::words(&change.bits);
                let status = change.status;
                if !change.new {
                    let current = tail.as_ref().unwrap_or(&snap.tail);
                    if let Some(i) = current.hashes.position(&q) {
                        tail.get_or_insert_with(|| Tail::clone(&snap.tail)).status[i] = status;
                        continue;
                    }
                    if let Some((seg, id)) = snap
                        .segments
                        .iter()
                        .find_map(|s| s.find(&q).map(|id| (s, id)))
                    {
                        seg.set_status(id, status);
                        continue;
                    }
                }
                let t = tail.get_or_insert_with(|| Tail::clone(&snap.tail));
                t.hashes.push(&q);
                t.status.push(status);
            }
            let Some(mut tail) = tail else { return };
            let mut segments = snap.segments.clone();
            if tail.hashes.len() >= self.inner.options.tail {
                let full = std::mem::take(&mut tail);
                segments.push(Arc::new(Segment::build(
                    full.hashes.to_words(),
                    full.status,
                )));
            }
            self.inner.snapshot.store(Arc::new(Snapshot {
                segments,
                tail: Arc::new(tail),
            }));
            self.inner.next_merge(&mut merging)
        };
        if let Some(parts) = merge {
            if self.inner.options.background_merges {
                let inner = self.inner.clone();
                let spawned = std::thread::Builder::new()
                    .name("pdq-merge".into())
                    .spawn(move || inner.merge_or_stop(parts));
                if let Err(err) = spawned {
                    tracing::warn!(%err, "cannot start a PDQ index merge; will retry");
                    *self
                        .inner
                        .writer
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = false;
                }
            } else {
                self.inner.merge_or_stop(parts);
            }
        }
    }

    /// Waits until no merge runs (tests and benchmarks).
    pub fn wait_for_merges(&self) {
        while *self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

impl Inner {
    /// The segments to merge next, if any and no merge runs: the newest ones, walking back
    /// while the next older one is at most twice what is gathered.
    fn next_merge(&self, merging: &mut bool) -> Option<Vec<Arc<Segment>>> {
        if *merging {
            return None;
        }
        let snap = self.snapshot.load();
        let segs = &snap.segments;
        let mut start = segs.len().checked_sub(1)?;
        let mut gathered = segs[start].len();
        while start > 0 && segs[start - 1].len() <= 2 * gathered {
            start -= 1;
            gathered += segs[start].len();
        }
        if start + 1 == segs.len() {
            return None;
        }
        *merging = true;
        Some(segs[start..].to_vec())
    }

    /// [`merge`](Self::merge), and if it panics (an allocation failure), an error in the log
    /// and the merge flag cleared: the index stays exact, with more segments, and the next
    /// tail tries again.
    fn merge_or_stop(&self, parts: Vec<Arc<Segment>>) {
        let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.merge(parts)));
        if merged.is_err() {
            tracing::error!("a PDQ index merge failed; the index keeps its segments unmerged");
            *self.writer.lock().unwrap_or_else(PoisonError::into_inner) = false;
        }
    }

    /// Builds one segment of `parts` (a run of the snapshot's segments), swaps it in, and goes
    /// on while another merge is due.
    fn merge(&self, mut parts: Vec<Arc<Segment>>) {
        loop {
            let total = parts.iter().map(|s| s.len()).sum();
            let mut hashes = Vec::with_capacity(total);
            for part in &parts {
                hashes.extend_from_slice(part.hashes());
            }
            let merged = Segment::build(hashes, vec![0; total]);
            let mut merging = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            // Statuses may have changed while the merge ran: copy them now, under the lock.
            let mut id = 0u32;
            for part in &parts {
                for status in part.statuses() {
                    merged.set_status(id, status);
                    id += 1;
                }
            }
            let snap = self.snapshot.load_full();
            let Some(start) = snap.segments.iter().position(|s| Arc::ptr_eq(s, &parts[0])) else {
                // Only merges remove segments, one at a time: this cannot happen.
                tracing::error!("PDQ index merge lost its segments");
                *merging = false;
                return;
            };
            let mut segments = snap.segments[..start].to_vec();
            segments.push(Arc::new(merged));
            segments.extend(snap.segments[start + parts.len()..].iter().cloned());
            self.snapshot.store(Arc::new(Snapshot {
                segments,
                tail: snap.tail.clone(),
            }));
            *merging = false;
            match self.next_merge(&mut merging) {
                Some(next) => parts = next,
                None => return,
            }
        }
    }
}

/// A brute-force scan over a fixed set of hashes: the reference the index is measured and
/// tested against, as fast as a scan gets. The hashes are stored as four arrays of words (one
/// per quarter of the hash), so that the compiler computes eight distances per AVX-512
/// instruction; and several queries share each pass over the hashes, so that each block of
/// hashes is read from memory once for all of them.
pub struct BruteForce {
    hashes: Quarters,
}

impl BruteForce {
    /// How many queries share a pass.
    pub const PER_PASS: usize = 8;

    /// A scan over `hashes`.
    pub fn new(hashes: &[Bits]) -> Self {
        let words: Vec<Words> = hashes.iter().map(segment::words).collect();
        Self {
            hashes: Quarters::from_words(&words),
        }
    }

    /// For each query, the positions and distances of the hashes within `max`, in position
    /// order. Pass at most [`PER_PASS`](Self::PER_PASS) queries for the best rate.
    ///
    /// Per block of hashes, two queries at a time share the loads; the distances are summed
    /// in 64-bit lanes (no narrowing) and only the block's smallest is compared with `max`, so
    /// the inner loop is four XORs, four popcounts and three adds per hash and query, eight
    /// hashes per instruction. A block with a match is walked again to collect it.
    pub fn pass(&self, queries: &[Bits], max: u32) -> Vec<Vec<(u32, u32)>> {
        let qs: Vec<Words> = queries.iter().map(segment::words).collect();
        self.scan(&qs, max, 0..self.hashes.len())
    }

    /// [`pass`](Self::pass) on both halves of the hashes at once, on two threads (rayon's
    /// pool): the two cores share each pass, so each hash is read from memory once per pass
    /// rather than once per core.
    pub fn pass_on_two_cores(&self, queries: &[Bits], max: u32) -> Vec<Vec<(u32, u32)>> {
        let qs: Vec<Words> = queries.iter().map(segment::words).collect();
        let n = self.hashes.len();
        let half = (n / 2).next_multiple_of(Quarters::BLOCK).min(n);
        let (mut low, high) = rayon::join(
            || self.scan(&qs, max, 0..half),
            || self.scan(&qs, max, half..n),
        );
        for (l, h) in low.iter_mut().zip(high) {
            l.extend(h);
        }
        low
    }

    fn scan(&self, qs: &[Words], max: u32, range: std::ops::Range<usize>) -> Vec<Vec<(u32, u32)>> {
        let mut out = vec![Vec::new(); qs.len()];
        let limit = u64::from(max);
        let h = &self.hashes;
        kernel::run(
            #[inline(always)]
            || {
                for start in range.clone().step_by(Quarters::BLOCK) {
                    let block = h.block(start, range.end.min(start + Quarters::BLOCK));
                    for (pair, hits) in qs.chunks(2).zip(out.chunks_mut(2)) {
                        let (p, q) = (&pair[0], pair.get(1).unwrap_or(&pair[0]));
                        let mut near = false;
                        for i in 0..block.len() {
                            near |= block.distance(i, p).min(block.distance(i, q)) <= limit;
                        }
                        if near {
                            for (q, hits) in pair.iter().zip(hits.iter_mut()) {
                                for i in 0..block.len() {
                                    let x = block.distance(i, q);
                                    if x <= limit {
                                        hits.push(((start + i) as u32, x as u32));
                                    }
                                }
                            }
                        }
                    }
                }
            },
        );
        out
    }
}
