//! Following a log with verification: what replicas and members' local copies (`sync`) run.
//!
//! A follower trusts nothing it receives. It takes the log one signed checkpoint at a time: the
//! checkpoint must verify with the forum's log key; the entries up to its size are replayed
//! with the same `state` code as the primary (each checked at its index: its author allowed
//! to say it, its key registered and not revoked there), every author signature is verified
//! (in batches, over both cores), and the tree of the entries must have the checkpoint's root.
//! Only then are the entries, their views and the checkpoint written, in one synced batch: the
//! store never holds an entry that no verified checkpoint covers, so whatever reads it serves
//! verified data only.
//!
//! A checkpoint that does not verify, a served history that contradicts the one already
//! verified (same size, other root; a smaller size with a root the verified tree does not have
//! there), a smaller latest checkpoint (a rolled-back primary), an entry that fails its checks
//! or a root that differs: the follower refuses, and the caller keeps the [`Evidence`] and
//! stops advancing.

mod evidence;
pub mod source;

use std::sync::Arc;

use arc_swap::ArcSwap;
use ed25519_dalek::{Signature, VerifyingKey};
use rayon::prelude::*;
use tokio::sync::watch;

use evidence::b64;
pub use evidence::{Evidence, EvidenceKind, Finding, EVIDENCE_FORMAT};

use crate::crypto;
use crate::entry::{Author, ParsedEntry};
use crate::genesis;
use crate::log::checkpoint::{LogVerifier, SignedCheckpoint, TreeHead};
use crate::log::tree::{self, Frontier};
use crate::log::StoredEntry;
use crate::pdq::index::PdqIndex;
use crate::state::{Directory, Effect, Pending};
use crate::storage::{StorageError, Store};

/// The most entries applied as one unit: a replica far behind asks the source for the largest
/// checkpoint it kept within this many entries of its own size. A unit is held in memory until
/// it verifies (its leaves, parsed entries and staged views: a few hundred bytes an entry).
pub const MAX_UNIT: u64 = 32_768;

/// The live views of a serving follower, updated after each verified unit is committed.
#[derive(Clone)]
pub struct Views {
    /// The membership snapshot the server authenticates callers with.
    pub directory: Arc<ArcSwap<Directory>>,
    /// The PDQ matching index.
    pub pdq: PdqIndex,
    /// The latest verified checkpoint, which bounds what the Log API serves.
    pub checkpoints: watch::Sender<Arc<SignedCheckpoint>>,
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The local store failed or is not a verified copy.
    #[error("local store: {0}")]
    Storage(#[from] StorageError),
    /// The source served something that does not verify or contradicts the verified log:
    /// keep the evidence and stop advancing.
    #[error("refused: {}", .0.reason)]
    Refused(Box<Evidence>),
    /// The source could not be reached or answered an error: try again later.
    #[error("source: {0}")]
    Source(String),
}

/// What a unit applied.
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    /// Entries appended.
    pub entries: u64,
    /// The verified tree head the log now has.
    pub head: TreeHead,
}

/// A verified local copy of a log, advanced one checkpoint at a time.
pub struct Follower {
    store: Store,
    verifier: LogVerifier,
    frontier: Frontier,
    directory: Directory,
    latest: Option<SignedCheckpoint>,
    last_ms: u64,
    views: Option<Views>,
    /// Where the entries come from, for evidence.
    source: String,
}

impl Follower {
    /// Opens a follower over `store`, which must be empty or a verified copy: its entries are
    /// exactly those its latest checkpoint covers, and that checkpoint verifies with
    /// `verifier` and has the stored tree's root. `source` names where entries come from (in
    /// evidence). `views`, when serving, are updated after each unit.
    ///
    /// # Errors
    /// When the store fails or is not a verified copy of this log.
    pub fn open(
        store: Store,
        verifier: LogVerifier,
        source: &str,
        views: Option<Views>,
    ) -> Result<Self, FollowError> {
        let size = store.size()?;
        if size > 0 && !store.verified_copy()? {
            return Err(corrupt(
                "the store was not written by a follower, so its views were never verified \
                 (a copied data directory): replay it into an empty one with `hashforum \
                 bootstrap --from DIR`",
            ));
        }
        let frontier = Frontier::load(size, &store).map_err(|e| corrupt(&e.to_string()))?;
        let latest = match store.latest_checkpoint()? {
            None if size == 0 => None,
            None => {
                return Err(corrupt(&format!(
                    "the store holds {size} entries but no checkpoint: it is not a verified copy"
                )))
            }
            Some((at, note)) => {
                let checkpoint = verifier.verify(&note).map_err(|e| {
                    corrupt(&format!("the latest kept checkpoint (size {at}): {e}"))
                })?;
                if checkpoint.head.size != size || checkpoint.head.root != frontier.root() {
                    return Err(corrupt(&format!(
                        "the latest kept checkpoint (size {at}) does not cover exactly the {size} \
                         stored entries: this is not a verified copy"
                    )));
                }
                Some(checkpoint)
            }
        };
        let directory = Directory::load(&store)?;
        let last_ms = match size.checked_sub(1) {
            None => 0,
            Some(last) => {
                let leaf = store
                    .entry(last)?
                    .ok_or_else(|| corrupt(&format!("entry {last} is missing")))?;
                StoredEntry::decode(&leaf)
                    .map_err(|e| corrupt(&e.to_string()))?
                    .sequenced_at_unix_ms
            }
        };
        Ok(Self {
            store,
            verifier,
            frontier,
            directory,
            latest,
            last_ms,
            views,
            source: source.to_owned(),
        })
    }

    /// The number of verified entries held.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The latest verified checkpoint, if any.
    pub fn latest(&self) -> Option<&SignedCheckpoint> {
        self.latest.as_ref()
    }

    /// The log's verifier.
    pub fn verifier(&self) -> &LogVerifier {
        &self.verifier
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Examines a checkpoint the source serves as its latest. Returns it when it is larger
    /// than the verified log (the entries up to it are to be fetched), `None` when it is the
    /// verified one.
    ///
    /// # Errors
    /// `Refused` when it does not verify, has the verified size with another root, or is
    /// smaller than the verified log (a rolled-back log, or a fork when the verified tree has
    /// another root at its size); `Storage` when the store fails.
    pub fn examine_latest(&self, note: &[u8]) -> Result<Option<SignedCheckpoint>, FollowError> {
        let served = self.verify_note(note)?;
        let size = self.size();
        let Some(held) = &self.latest else {
            return Ok((served.head.size > 0).then_some(served));
        };
        if served.head.size > size {
            return Ok(Some(served));
        }
        if served.head.size == size {
            if served.head.root == held.head.root {
                return Ok(None);
            }
            return Err(self.refuse(
                EvidenceKind::Fork,
                format!(
                    "the log signed two different roots for size {size}: the source's \
                     checkpoint contradicts the verified one"
                ),
                Evidence {
                    served: text(note),
                    ..Evidence::default()
                },
            ));
        }
        // Smaller: what does the verified tree say at that size?
        let at = served.head.size;
        let ours = tree::root(at, &self.store).map_err(|e| corrupt(&e.to_string()))?;
        let proof =
            tree::consistency_proof(at, size, &self.store).map_err(|e| corrupt(&e.to_string()))?;
        let evidence = Evidence {
            served: text(note),
            prefix_root: Some(b64(&ours.0)),
            consistency_proof: proof.iter().map(|h| b64(&h.0)).collect(),
            ..Evidence::default()
        };
        if ours == served.head.root {
            Err(self.refuse(
                EvidenceKind::Rollback,
                format!(
                    "the source's latest checkpoint has {at} entries, but the log already \
                     signed {size}: the source's log was rolled back (restored from an older \
                     copy?)"
                ),
                evidence,
            ))
        } else {
            Err(self.refuse(
                EvidenceKind::Fork,
                format!(
                    "the source's checkpoint of size {at} has a root that the verified log of \
                     {size} entries does not have at that size: the log forked"
                ),
                evidence,
            ))
        }
    }

    /// Checks a consistency proof the source gave from the verified checkpoint to a larger
    /// `target` it served: when the proof leads to the target's root but implies another root
    /// for the verified size, the log key signed two histories, and the proof shows it.
    ///
    /// # Errors
    /// `Refused` with that proof (`fork`). A proof that does not lead to the target's root
    /// proves nothing either way and is not an error: the entries are checked anyway.
    pub fn examine_consistency(
        &self,
        target: &SignedCheckpoint,
        proof: &[tree::Hash],
    ) -> Result<(), FollowError> {
        let Some(held) = &self.latest else {
            return Ok(());
        };
        let (old, new) = (held.head.size, target.head.size);
        match tree::consistency_prefix_root(proof, old, new, target.head.root) {
            Some(prefix) if prefix != held.head.root => Err(self.refuse(
                EvidenceKind::Fork,
                format!(
                    "the source's checkpoint of size {new} has, by its own consistency proof, \
                     a first {old} entries other than the verified ones: the log forked"
                ),
                Evidence {
                    served: target.text().to_owned(),
                    prefix_root: Some(b64(&prefix.0)),
                    consistency_proof: proof.iter().map(|h| b64(&h.0)).collect(),
                    ..Evidence::default()
                },
            )),
            _ => Ok(()),
        }
    }

    /// Verifies a checkpoint the source served for a unit (at most its latest).
    ///
    /// # Errors
    /// `Refused` when it does not verify.
    pub fn examine_unit(&self, note: &[u8]) -> Result<SignedCheckpoint, FollowError> {
        self.verify_note(note)
    }

    fn verify_note(&self, note: &[u8]) -> Result<SignedCheckpoint, FollowError> {
        self.verifier.verify(note).map_err(|e| {
            self.refuse(
                EvidenceKind::BadCheckpoint,
                format!("a checkpoint from the source does not verify: {e}"),
                Evidence {
                    served: text(note),
                    ..Evidence::default()
                },
            )
        })
    }

    /// Applies the entries from the verified size up to `checkpoint`'s (`leaves`, in order),
    /// all or nothing: each entry is replayed and its signature verified, the tree must have
    /// the checkpoint's root, and then everything is committed with the checkpoint in one
    /// synced batch and the views are updated.
    ///
    /// # Errors
    /// `Refused`, with the evidence, when an entry or the root does not verify; `Storage`
    /// when the store fails. Nothing is written then.
    pub fn apply(
        &mut self,
        checkpoint: &SignedCheckpoint,
        leaves: Vec<Vec<u8>>,
    ) -> Result<Applied, FollowError> {
        let first = self.size();
        let count = leaves.len() as u64;
        if checkpoint.head.size != first + count {
            return Err(FollowError::Source(format!(
                "{count} entries from {first} do not reach the checkpoint's size {}",
                checkpoint.head.size
            )));
        }
        let origin = self.verifier.origin().to_owned();
        let started = std::time::Instant::now();
        // Parse in parallel; an error names its index.
        let parsed: Vec<Result<(StoredEntry, ParsedEntry), String>> = leaves
            .par_iter()
            .enumerate()
            .map(|(i, leaf)| {
                let stored = StoredEntry::decode(leaf).map_err(|e| e.to_string())?;
                let entry = if first + i as u64 == 0 {
                    genesis::parse(leaf, self.verifier.key(), &origin)
                        .map_err(|e| format!("not this forum's genesis: {e}"))?
                } else {
                    ParsedEntry::parse(stored.envelope.clone(), &origin)
                        .map_err(|e| e.to_string())?
                };
                Ok((stored, entry))
            })
            .collect();
        let mut entries = Vec::with_capacity(parsed.len());
        for (i, p) in parsed.into_iter().enumerate() {
            match p {
                Ok(e) => entries.push(e),
                Err(reason) => return Err(self.bad_entry(first + i as u64, reason, &leaves, None)),
            }
        }

        let parsed_at = started.elapsed();
        let mut pending = Pending::new(
            &self.store,
            None,
            self.directory.clone(),
            self.frontier.clone(),
            self.last_ms,
        );
        let refs: Vec<&ParsedEntry> = entries.iter().map(|(_, e)| e).collect();
        pending.prefetch(&refs)?;
        let prefetched_at = started.elapsed();
        // Signatures are verified on the other cores while the replay goes on: each chunk as
        // soon as the replay has found the keys valid at its entries' indexes.
        let failed = std::sync::Mutex::new(None);
        let replayed = rayon::scope(|scope| {
            let mut chunk = Signatures::default();
            let spawn = |chunk: Signatures| {
                let failed = &failed;
                scope.spawn(move |_| chunk.verify(failed));
            };
            let mut last_ms = self.last_ms;
            for (i, ((stored, entry), leaf)) in entries.into_iter().zip(&leaves).enumerate() {
                let index = first + i as u64;
                let time_ms = stored.sequenced_at_unix_ms;
                if time_ms < last_ms {
                    let reason = format!(
                        "sequenced at {time_ms} ms, before the entry before it ({last_ms} ms)"
                    );
                    return Err(self.bad_entry(index, reason, &leaves, None));
                }
                last_ms = time_ms;
                if index == 0 {
                    pending.append_leaf(entry, Effect::Genesis, leaf)?;
                    continue;
                }
                let caller = match caller(&entry, &stored.relayed_by) {
                    Ok(caller) => caller,
                    Err(reason) => return Err(self.bad_entry(index, reason, &leaves, None)),
                };
                let message = entry.signed.clone();
                let signature = entry.signature;
                match pending.replay(entry, &caller, leaf, time_ms) {
                    Ok(Ok(key)) => chunk.push(i, key, message, signature),
                    Ok(Err(refused)) => {
                        return Err(self.bad_entry(index, refused.to_string(), &leaves, None))
                    }
                    // What the state code finds inconsistent in a replayed entry (a change its
                    // record cannot take) is the entry's fault here, not the store's.
                    Err(StorageError::Corrupt { reason, .. }) => {
                        return Err(self.bad_entry(index, reason, &leaves, None))
                    }
                    Err(e) => return Err(e.into()),
                }
                if chunk.at.len() == VERIFY_CHUNK {
                    spawn(std::mem::take(&mut chunk));
                }
            }
            spawn(chunk);
            Ok(last_ms)
        });
        let last_ms = replayed?;
        let replayed_at = started.elapsed();
        if let Some((i, key)) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            let reason = format!(
                "the signature does not verify with the author's key {}",
                crypto::key_id(&key)
            );
            return Err(self.bad_entry(first + i as u64, reason, &leaves, Some(&key)));
        }
        let mut finished = pending.finish();
        if finished.head.root != checkpoint.head.root {
            let reason = format!(
                "the entries {first}..{} do not have the root of the log's checkpoint of that \
                 size: the source served entries other than those the log signed",
                checkpoint.head.size
            );
            let evidence = Evidence {
                served: checkpoint.text().to_owned(),
                first_index: first,
                entries: leaves.iter().map(|l| b64(l)).collect(),
                frontier: self.frontier.stored().map(|(_, h)| b64(&h.0)).collect(),
                ..Evidence::default()
            };
            return Err(self.refuse(EvidenceKind::RootMismatch, reason, evidence));
        }
        finished
            .batch
            .put_checkpoint(checkpoint.head.size, &checkpoint.note);
        // A follower's store is built from entry 0 by this code, PDQ view included.
        finished.batch.put_verified_copy();
        finished.batch.put_pdq_view_filled();
        let finished_at = started.elapsed();
        self.store.commit(finished.batch)?;
        let metrics = crate::metrics::global();
        metrics.entries_appended.inc_by(count);
        metrics
            .commit_seconds
            .observe((started.elapsed() - finished_at).as_secs_f64());
        tracing::debug!(
            entries = count,
            parse = ?parsed_at,
            prefetch = ?(prefetched_at - parsed_at),
            replay_and_verify = ?(replayed_at - prefetched_at),
            finish = ?(finished_at - replayed_at),
            commit = ?(started.elapsed() - finished_at),
            "unit applied"
        );
        self.frontier = finished.frontier;
        self.last_ms = last_ms;
        if let Some(dir) = finished.directory {
            self.directory = dir;
            if let Some(views) = &self.views {
                views.directory.store(Arc::new(self.directory.clone()));
            }
        }
        if let Some(views) = &self.views {
            if !finished.pdq.is_empty() {
                views.pdq.apply(&finished.pdq);
            }
            views.checkpoints.send_replace(Arc::new(checkpoint.clone()));
        }
        self.latest = Some(checkpoint.clone());
        Ok(Applied {
            entries: count,
            head: checkpoint.head,
        })
    }

    /// Replays a copied data directory (a primary's or a replica's, stopped, or a RocksDB
    /// checkpoint of one) into this follower, unit by unit, each ending at a checkpoint the
    /// copy kept: the same checks as for entries from the network, so nothing of the copy is
    /// trusted. Calls `progress(size, target)` after each unit. Returns the entries applied.
    ///
    /// # Errors
    /// `Refused` with the evidence; `Storage` when either store fails.
    pub fn replay_copy(
        &mut self,
        copy: &Store,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64, FollowError> {
        let start = self.size();
        let Some((target, _)) = copy.latest_checkpoint()? else {
            return Ok(0);
        };
        while self.size() < target {
            let size = self.size();
            // The largest checkpoint the copy kept within a unit: units stay bounded.
            let kept = copy.checkpoint_at_most(size + MAX_UNIT)?;
            let Some((at, note)) = kept.filter(|(at, _)| *at > size) else {
                return Err(corrupt(&format!(
                    "the copy kept no checkpoint between {size} and {} entries",
                    size + MAX_UNIT
                )));
            };
            let checkpoint = self.examine_unit(&note)?;
            if checkpoint.head.size != at {
                return Err(self.refuse(
                    EvidenceKind::BadCheckpoint,
                    format!(
                        "the copy keeps a checkpoint of size {} under size {at}",
                        checkpoint.head.size
                    ),
                    Evidence {
                        served: text(&note),
                        ..Evidence::default()
                    },
                ));
            }
            let leaves = copy.entry_range(size, at)?;
            if leaves.len() as u64 != at - size {
                return Err(corrupt(&format!(
                    "the copy holds {} of the entries {size}..{at}",
                    leaves.len()
                )));
            }
            self.apply(&checkpoint, leaves)?;
            progress(self.size(), target);
        }
        Ok(self.size() - start)
    }

    /// Evidence of an entry that could not be at its index.
    fn bad_entry(
        &self,
        index: u64,
        reason: String,
        leaves: &[Vec<u8>],
        key: Option<&VerifyingKey>,
    ) -> FollowError {
        let first = self.size();
        let at = (index - first) as usize;
        let evidence = Evidence {
            bad_index: Some(index),
            first_index: index,
            entries: leaves.get(at).map(|l| vec![b64(l)]).unwrap_or_default(),
            key: key.map(|k| b64(k.as_bytes())),
            ..Evidence::default()
        };
        self.refuse(
            EvidenceKind::BadEntry,
            format!("entry {index}: {reason}"),
            evidence,
        )
    }

    fn refuse(&self, kind: EvidenceKind, reason: String, evidence: Evidence) -> FollowError {
        FollowError::Refused(Box::new(Evidence {
            format: EVIDENCE_FORMAT.into(),
            kind,
            origin: self.verifier.origin().to_owned(),
            vkey: self.verifier.vkey().to_owned(),
            reason,
            found_at_unix_ms: crate::log::now_ms(),
            source: self.source.clone(),
            held: self.latest.as_ref().map(|c| c.text().to_owned()),
            ..evidence
        }))
    }
}

/// Signatures verified per task.
const VERIFY_CHUNK: usize = 2048;

/// A chunk of a unit's signatures, with the keys the replay found valid for them.
#[derive(Default)]
struct Signatures {
    /// Each one's position in the unit.
    at: Vec<usize>,
    keys: Vec<VerifyingKey>,
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
}

impl Signatures {
    fn push(&mut self, at: usize, key: VerifyingKey, message: Vec<u8>, signature: Signature) {
        self.at.push(at);
        self.keys.push(key);
        self.messages.push(message);
        self.signatures.push(signature);
    }

    /// Verifies them; keeps in `failed` the first in the unit that does not verify.
    fn verify(self, failed: &std::sync::Mutex<Option<(usize, VerifyingKey)>>) {
        let messages: Vec<&[u8]> = self.messages.iter().map(Vec::as_slice).collect();
        if let Err(bad) = crypto::verify_all(&messages, &self.signatures, &self.keys) {
            let found = (self.at[bad], self.keys[bad]);
            let mut first = failed.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none_or(|(at, _)| found.0 < at) {
                *first = Some(found);
            }
        }
    }
}

/// Who submitted a replayed entry: its relayer or its author.
fn caller(entry: &ParsedEntry, relayed_by: &str) -> Result<String, String> {
    match (&entry.author, relayed_by) {
        (Author::Member(author), "") => Ok(author.as_str().to_owned()),
        (Author::Member(author), relayer) if relayer == author.as_str() => {
            Err("relayed by its own author: the log records no relayer then".into())
        }
        (Author::Member(_), relayer) => Ok(relayer.to_owned()),
        (Author::Forum, _) => Err("only entry 0 is authored by the forum".into()),
    }
}

fn corrupt(reason: &str) -> FollowError {
    FollowError::Storage(StorageError::Corrupt {
        cf: "-",
        reason: reason.to_owned(),
    })
}

fn text(note: &[u8]) -> String {
    String::from_utf8_lossy(note).into_owned()
}

#[cfg(test)]
mod tests;
