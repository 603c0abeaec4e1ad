//! Cosignatures: replicas cosign the checkpoints they verified (C2SP `tlog-cosignature/v1`),
//! and the primary keeps the latest ones and serves them on its checkpoint. A cosignature on a
//! checkpoint larger than the primary's own log means the primary was rolled back (restored
//! from an older copy): it stops taking writes, and so signs nothing more.

use super::Registry;
use crate::error::ServiceError;
use crate::log::checkpoint::SignedCheckpoint;
use crate::log::cosignature::{self, WitnessVerifier};
use crate::log::tree;
use crate::state::Caller;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Sizes whose cosignatures are kept: the latest few, enough for receipts waiting on them.
const KEPT_SIZES: usize = 256;

/// The cosignatures held, by checkpoint size, then by replica member id.
#[derive(Default)]
pub(super) struct Cosignatures {
    by_size: BTreeMap<u64, BTreeMap<String, String>>,
    /// The largest size each replica cosigned: it holds every entry below it.
    held: BTreeMap<String, u64>,
}

impl Cosignatures {
    fn add(&mut self, size: u64, member: &str, line: String) {
        let on = self.by_size.entry(size).or_default();
        // A note has at most MAX_SIGNATURES lines, the log's own included: more would make
        // every verifier refuse it.
        if on.contains_key(member) || on.len() + 1 < cosignature::MAX_SIGNATURES {
            on.insert(member.to_owned(), line);
        }
        while self.by_size.len() > KEPT_SIZES {
            self.by_size.pop_first();
        }
        let held = self.held.entry(member.to_owned()).or_default();
        *held = (*held).max(size);
    }

    /// The largest size that at least `k` of the replicas `counts` accepts hold.
    fn held_by(&self, k: usize, counts: impl Fn(&str) -> bool) -> u64 {
        let mut sizes: Vec<u64> = self
            .held
            .iter()
            .filter(|(member, _)| counts(member))
            .map(|(_, size)| *size)
            .collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        k.checked_sub(1)
            .and_then(|i| sizes.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// The largest size of at least `at` with at least `k` cosignatures on its checkpoint.
    fn cosigned_from(&self, at: u64, k: usize) -> Option<u64> {
        self.by_size
            .range(at..)
            .rev()
            .find(|(_, on)| on.len() >= k)
            .map(|(size, _)| *size)
    }

    /// The lines held on the checkpoint of `size`, by member.
    pub(super) fn on(&self, size: u64) -> Option<&BTreeMap<String, String>> {
        self.by_size.get(&size)
    }
}

impl Registry {
    /// Takes a replica's cosignature on a checkpoint of this log. Returns the log's size.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` on a replica (`NOT_PRIMARY`); for a checkpoint signed by the log
    /// key that is larger than the log (`LOG_ROLLED_BACK`) or has another root at its size
    /// (`LOG_FORKED`), after which the primary refuses writes (the log key's signature is the
    /// proof: the cosignature need not verify); `INVALID_ARGUMENT` when the checkpoint does
    /// not verify, or the cosignature does not with a key the caller registered.
    pub async fn add_cosignature(
        &self,
        caller: &Caller,
        note: &[u8],
        line: &str,
    ) -> Result<u64, ServiceError> {
        if !self.is_primary() {
            return Err(ServiceError::FailedPrecondition {
                reason: "NOT_PRIMARY",
                message: "cosignatures go to the primary".into(),
            });
        }
        let checkpoint = self
            .verifier
            .verify(note)
            .map_err(|e| ServiceError::invalid("checkpoint", "BAD_CHECKPOINT", e.to_string()))?;
        let latest = self.latest_checkpoint();
        let size = checkpoint.head.size;
        if size > latest.head.size {
            let why = format!(
                "replica {} holds a checkpoint of {size} entries signed by this log, but this \
                 server's log has only {}: its data was rolled back (restored from an older \
                 copy). It takes no more writes, so it signs nothing more. Recover by \
                 replacing its data directory with an up-to-date replica's (docs/operations.md, \
                 \"Recover a rolled-back primary\")",
                caller.member_id, latest.head.size
            );
            return Err(self.halt("LOG_ROLLED_BACK", why).await);
        }
        let store = self.store.clone();
        let root = self
            .blocking(move || {
                tree::root(size, &store).map_err(|e| ServiceError::Internal(e.to_string()))
            })
            .await?;
        if root != checkpoint.head.root {
            let why = format!(
                "replica {} holds a checkpoint of size {size} signed by this log whose root is \
                 not this server's log's at that size: this server's log forked from what its \
                 key signed (restored from an older copy, then written to). It takes no more \
                 writes. Recover by replacing its data directory with an up-to-date replica's \
                 (docs/operations.md, \"Recover a rolled-back primary\")",
                caller.member_id
            );
            return Err(self.halt("LOG_FORKED", why).await);
        }
        let member = self.member(caller.member_id.as_str())?;
        let time = member
            .keys
            .iter()
            .filter(|k| k.revoked_at_log_index.is_none())
            .filter_map(|k| crate::entry::parse_public_key(&k.public_key).ok())
            .find_map(|key| {
                WitnessVerifier::new(caller.member_id.as_str(), &key)
                    .ok()?
                    .verify_line(note, line)
                    .ok()
            });
        if time.is_none() {
            return Err(ServiceError::invalid(
                "cosignature",
                "BAD_COSIGNATURE",
                format!(
                    "not a tlog-cosignature/v1 line by {} on this checkpoint, with a key it \
                     registered",
                    caller.member_id
                ),
            ));
        }
        let line = if line.ends_with('\n') {
            line.to_owned()
        } else {
            format!("{line}\n")
        };
        self.held().add(size, caller.member_id.as_str(), line);
        self.cosigned_sizes.send_replace(());
        Ok(latest.head.size)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Cosignatures> {
        self.cosigned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `policy.write_quorum` replicas hold the entries `checkpoint` covers; returns
    /// the checkpoint to answer with: the largest one at least as large with that many
    /// cosignatures on it, if any, else `checkpoint` with those it has.
    ///
    /// # Errors
    /// `UNAVAILABLE` (`COSIGNATURE_TIMEOUT`) when the quorum is not reached in
    /// `policy.cosignature_timeout`: the entries stay appended, and resubmitting them returns
    /// their receipts.
    pub(super) async fn wait_for_quorum(
        &self,
        checkpoint: &Arc<SignedCheckpoint>,
    ) -> Result<Arc<SignedCheckpoint>, ServiceError> {
        let k = self.policy.write_quorum;
        let needed = checkpoint.head.size;
        let mut told = self.cosigned_sizes.subscribe();
        let deadline = tokio::time::Instant::now() + self.policy.cosignature_timeout;
        // Once k replicas hold the entries, wait a little more for k cosignatures on one
        // checkpoint (replicas that cosigned different sizes converge on the next one).
        let mut settle: Option<tokio::time::Instant> = None;
        loop {
            // Only members that are active replicas now count: a removed or suspended one
            // holds nothing the forum can rely on.
            let directory = self.directory();
            let counts = |member: &str| {
                directory.member(member).is_some_and(|m| {
                    m.status == crate::pb::MemberStatus::Active as i32
                        && crate::state::roles(m).contains(&crate::types::Role::Replica)
                })
            };
            let (held, common) = {
                let held = self.held();
                (
                    held.held_by(k, counts),
                    held.cosigned_from(needed, k).is_some(),
                )
            };
            if common {
                break;
            }
            if held >= needed {
                let until = *settle.get_or_insert_with(|| {
                    tokio::time::Instant::now() + std::time::Duration::from_millis(200)
                });
                tokio::select! {
                    changed = told.changed() => if changed.is_err() { break },
                    () = tokio::time::sleep_until(until.min(deadline)) => break,
                }
                continue;
            }
            tokio::select! {
                changed = told.changed() => if changed.is_err() { break },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(ServiceError::Unavailable {
                        reason: "COSIGNATURE_TIMEOUT",
                        message: format!(
                            "the entries are appended (the log has {needed} entries), but fewer \
                             than {k} replicas confirmed them within {:?}; resubmit the same \
                             envelopes to get their receipts",
                            self.policy.cosignature_timeout
                        ),
                    })
                }
            }
        }
        let cosigned = self.held().cosigned_from(needed, k);
        let Some(size) = cosigned.filter(|&s| s > needed) else {
            let note = self.cosigned(needed, &checkpoint.note);
            return Ok(Arc::new(SignedCheckpoint {
                head: checkpoint.head,
                note,
            }));
        };
        let store = self.store.clone();
        let note = self
            .blocking(move || {
                store.checkpoint(size)?.ok_or_else(|| {
                    ServiceError::Internal(format!("the checkpoint of size {size} is missing"))
                })
            })
            .await?;
        let head = self
            .verifier
            .verify(&note)
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .head;
        Ok(Arc::new(SignedCheckpoint {
            head,
            note: self.cosigned(size, &note),
        }))
    }

    /// The note of the checkpoint of `size` with the cosignatures held on it.
    pub fn cosigned(&self, size: u64, note: &[u8]) -> Vec<u8> {
        let held = self.held();
        match held.on(size) {
            Some(lines) if !lines.is_empty() => {
                let lines: Vec<String> = lines.values().cloned().collect();
                cosignature::with_lines(note, &lines)
            }
            _ => note.to_vec(),
        }
    }

    /// The replicas whose cosignature is held on the checkpoint of `size`.
    pub fn cosigners(&self, size: u64) -> Vec<String> {
        self.held()
            .on(size)
            .map(|on| on.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Why this primary stopped taking writes, if a replica showed it that its log
    /// contradicts a checkpoint its key signed.
    pub fn halted(&self) -> Option<&str> {
        self.halted.get().map(|(_, why)| why.as_str())
    }

    /// Stops taking writes for good (kept in the store, so a restart does not undo it), and
    /// returns the refusal to answer with.
    async fn halt(&self, reason: &'static str, why: String) -> ServiceError {
        if self.halted.set((reason, why.clone())).is_ok() {
            tracing::error!(reason, "{why}");
            let store = self.store.clone();
            let (r, w) = (reason, why.clone());
            let kept = self
                .blocking(move || {
                    let mut batch = store.batch();
                    batch.put_halted(r, &w);
                    store.commit(batch).map_err(ServiceError::from)
                })
                .await;
            if let Err(e) = kept {
                tracing::error!(error = %e, "could not keep the halt in the store");
            }
        }
        ServiceError::FailedPrecondition {
            reason,
            message: why,
        }
    }
}

/// The reason code of a halt kept in the store.
pub(super) fn halt_reason(kept: &str) -> &'static str {
    match kept {
        "LOG_FORKED" => "LOG_FORKED",
        _ => "LOG_ROLLED_BACK",
    }
}
