//! The single writer: one thread owns every append.
//!
//! Request handlers parse and verify entries in parallel, then queue them here. The sequencer
//! drains the queue (group commit), re-checks each entry against the registry's state at its
//! place in the log (a key revoked or a member suspended meanwhile is caught here), assigns
//! indexes, stages the views with `state::Pending` and writes everything in one synced RocksDB
//! `WriteBatch`. Only then does it answer the waiting callers: an acknowledged entry is never
//! lost.
//!
//! A job (one `SubmitEntries` call) is all or nothing: if one entry is refused, none of the
//! job's entries is appended, and other jobs in the same group are unaffected. The job is
//! checked with `state::Pending::check_job` and then appended with the effects that check
//! computed, so the check sees exactly what the append does.
//!
//! A failed commit is fatal. After a synced write fails, RocksDB may or may not hold the batch
//! in its write-ahead log, and it refuses later writes; reusing the indexes of the failed group
//! could fork the log. The sequencer then fails every waiting caller, stops taking jobs, and
//! cancels [`Sequencer::failed`], on which the server stops serving and exits non-zero.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::entry::ParsedEntry;
use crate::error::ServiceError;
use crate::state::{Appended, Directory, Finished, Overlay, Pending, Refusal, Step};
use crate::storage::{Batch, StorageError, Store};
use crate::types::MemberId;

/// The most entries one group commit takes from the queue.
const MAX_GROUP_ENTRIES: usize = 8_192;
/// Queue depth, in jobs.
const QUEUE_JOBS: usize = 1024;
/// Most payload bytes queued or being committed at once. Callers wait for room: the queue
/// holds parsed entries (about three times their payload), so this bounds its memory.
pub const QUEUE_BYTES: usize = 64 << 20;

/// Where a job's outcome goes, holding the job's share of [`QUEUE_BYTES`] until it is sent.
struct Reply {
    tx: oneshot::Sender<Outcome>,
    _room: OwnedSemaphorePermit,
}

impl Reply {
    fn send(self, outcome: Outcome) {
        // The caller may have gone (deadline, cancellation); its entries stay committed.
        let _ = self.tx.send(outcome);
    }
}

struct Job {
    caller: MemberId,
    entries: Vec<ParsedEntry>,
    reply: Reply,
}

/// Handle to the sequencer thread.
pub struct Sequencer {
    tx: mpsc::Sender<Job>,
    room: Arc<Semaphore>,
    failed: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl Sequencer {
    /// Starts the sequencer over `store`, publishing membership changes to `directory`.
    ///
    /// # Errors
    /// When the log size cannot be read.
    pub fn start(store: Store, directory: Arc<ArcSwap<Directory>>) -> std::io::Result<Self> {
        let size = store.size().map_err(std::io::Error::other)?;
        let last_ms = last_time(&store, size).map_err(std::io::Error::other)?;
        let (tx, rx) = mpsc::channel(QUEUE_JOBS);
        let dir = Directory::clone(&directory.load());
        let failed = CancellationToken::new();
        let mut writer = Writer {
            store,
            directory,
            size,
            dir,
            last_ms,
            failed: failed.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            tx,
            room: Arc::new(Semaphore::new(QUEUE_BYTES)),
            failed,
            thread,
        })
    }

    /// Cancelled when a commit failed and the sequencer stopped for good.
    pub fn failed(&self) -> &CancellationToken {
        &self.failed
    }

    /// Queues verified entries from `caller` and waits until they are durably committed.
    ///
    /// # Errors
    /// The first refused entry's error (its field relative to its envelope), a storage
    /// failure, or `UNAVAILABLE` when shutting down.
    pub async fn submit(
        &self,
        caller: &MemberId,
        entries: Vec<ParsedEntry>,
    ) -> Result<Vec<Appended>, Refusal> {
        let shutting_down = || Refusal::whole(ServiceError::ShuttingDown);
        if self.failed.is_cancelled() {
            return Err(shutting_down());
        }
        let bytes: usize = entries.iter().map(|e| e.payload().len()).sum();
        // A job larger than the whole budget still goes through, alone.
        let permits = u32::try_from(bytes.clamp(1, QUEUE_BYTES)).unwrap_or(u32::MAX);
        let room = self
            .room
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| shutting_down())?;
        let (tx, rx) = oneshot::channel();
        let job = Job {
            caller: caller.clone(),
            entries,
            reply: Reply { tx, _room: room },
        };
        self.tx.send(job).await.map_err(|_| shutting_down())?;
        rx.await.map_err(|_| shutting_down())?
    }

    /// Stops taking jobs, finishes the queued ones and waits for the thread to end.
    pub async fn close(self) {
        drop(self.tx);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// What a group's callers get back, once the group is committed.
type Outcome = Result<Vec<Appended>, Refusal>;

/// A staged group and each job's outcome, in job order.
type StagedGroup = (Finished, Vec<Outcome>);

/// A staged group on its way to the committer thread.
struct Staged {
    batch: Batch,
    directory: Option<Directory>,
    replies: Vec<(Reply, Outcome)>,
}

struct Writer {
    store: Store,
    /// The published membership: as of the last committed group.
    directory: Arc<ArcSwap<Directory>>,
    /// The log size and membership as of the last staged group, committed or not.
    size: u64,
    dir: Directory,
    /// The sequencing time of the last staged group: the log's time never goes backwards,
    /// also across restarts and clock steps.
    last_ms: u64,
    failed: CancellationToken,
}

impl Writer {
    /// Stages groups on this thread and commits them on a second one, so that staging a group
    /// overlaps with committing the previous one (memtable inserts and the WAL fsync). At most
    /// one group commits at a time; the next is staged on top of it through its overlay, and is
    /// sent only once it is known to be committed. After a failed commit, nothing more is
    /// committed: every queued job is failed and the loop ends.
    fn run(&mut self, mut rx: mpsc::Receiver<Job>) {
        // A panic on this thread must stop the server like a failed commit: nothing could
        // append any more, and health would still say SERVING.
        let _guard = FailOnPanic(self.failed.clone());
        let (to_committer, staged_rx) = std::sync::mpsc::sync_channel::<Staged>(1);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<bool>();
        let committer = {
            let store = self.store.clone();
            let directory = self.directory.clone();
            let failed = self.failed.clone();
            std::thread::Builder::new()
                .name("committer".into())
                .spawn(move || commit_loop(&store, &directory, &failed, &staged_rx, &done_tx))
        };
        let committer = match committer {
            Ok(handle) => handle,
            Err(e) => {
                self.fail(&format!("cannot start the committer thread: {e}"));
                rx.close();
                drain(&mut rx);
                return;
            }
        };
        // The overlay of the group being committed, if any.
        let mut in_flight: Option<Overlay> = None;
        let mut ok = true;
        while let Some(first) = rx.blocking_recv() {
            let mut count = first.entries.len();
            let mut jobs = vec![first];
            while count < MAX_GROUP_ENTRIES {
                match rx.try_recv() {
                    Ok(job) => {
                        count += job.entries.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            let (replies, staged) = self.stage(jobs, in_flight.as_ref());
            if in_flight.take().is_some() && !done_rx.recv().unwrap_or(false) {
                // This group was staged on top of one that failed to commit.
                fail_all(replies, ServiceError::ShuttingDown);
                ok = false;
                break;
            }
            let (finished, outcomes) = match staged {
                Ok(staged) => staged,
                Err(err) => {
                    // A read failed: nothing of this group was written, and the previous
                    // group is committed, so the next group starts from the committed state.
                    tracing::error!(error = %err, "staging failed; nothing was written");
                    self.reset();
                    fail_all(replies, ServiceError::Internal(err.to_string()));
                    continue;
                }
            };
            let group = Staged {
                batch: finished.batch,
                directory: finished.directory,
                replies: replies.into_iter().zip(outcomes).collect(),
            };
            if to_committer.send(group).is_err() {
                ok = false;
                break;
            }
            in_flight = Some(finished.overlay);
        }
        if in_flight.is_some() && !done_rx.recv().unwrap_or(false) {
            ok = false;
        }
        drop(to_committer);
        let _ = committer.join();
        if !ok {
            self.fail("a group commit failed");
            rx.close();
            drain(&mut rx);
        }
        tracing::info!(size = self.size, "sequencer stopped");
    }

    /// Marks the sequencer failed for good.
    fn fail(&self, why: &str) {
        tracing::error!(
            why,
            "the sequencer stopped: no more entries will be appended"
        );
        self.failed.cancel();
    }

    /// Starts the next group from the committed state.
    fn reset(&mut self) {
        self.dir = Directory::clone(&self.directory.load());
        if let Ok(size) = self.store.size() {
            self.size = size;
        }
    }

    /// Stages a group: checks and appends each job on top of everything staged before.
    /// Returns the jobs' replies, and the staged group with each job's outcome in the same
    /// order (or the storage failure that stopped staging).
    fn stage(
        &mut self,
        jobs: Vec<Job>,
        prev: Option<&Overlay>,
    ) -> (Vec<Reply>, Result<StagedGroup, StorageError>) {
        self.last_ms = self.last_ms.max(crate::log::now_ms());
        let (replies, work): (Vec<Reply>, Vec<(MemberId, Vec<ParsedEntry>)>) = jobs
            .into_iter()
            .map(|job| (job.reply, (job.caller, job.entries)))
            .unzip();
        let mut pending =
            Pending::new(&self.store, prev, self.dir.clone(), self.size, self.last_ms);
        let all: Vec<&ParsedEntry> = work.iter().flat_map(|(_, entries)| entries).collect();
        let staged = pending.prefetch(&all).and_then(|()| {
            work.into_iter()
                .map(|(caller, entries)| stage_job(&mut pending, &caller, entries))
                .collect::<Result<Vec<_>, StorageError>>()
        });
        let outcomes = match staged {
            Ok(outcomes) => outcomes,
            Err(err) => return (replies, Err(err)),
        };
        let finished = pending.finish();
        self.size = finished.size;
        if let Some(dir) = &finished.directory {
            self.dir = dir.clone();
        }
        (replies, Ok((finished, outcomes)))
    }
}

/// Cancels the sequencer's `failed` token when the thread holding it unwinds from a panic.
struct FailOnPanic(CancellationToken);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the sequencer thread panicked; no more entries will be appended");
            self.0.cancel();
        }
    }
}

/// Commits staged groups in order; answers their callers once durable, publishes membership
/// changes, and tells the writer whether each commit succeeded. Stops at the first failure.
fn commit_loop(
    store: &Store,
    directory: &ArcSwap<Directory>,
    failed: &CancellationToken,
    staged: &std::sync::mpsc::Receiver<Staged>,
    done: &std::sync::mpsc::Sender<bool>,
) {
    for group in staged {
        if let Err(err) = store.commit(group.batch) {
            tracing::error!(error = %err, "group commit failed; stopping the sequencer");
            failed.cancel();
            // The batch may or may not be durable: its callers learn nothing either way.
            let replies = group.replies.into_iter().map(|(reply, _)| reply).collect();
            fail_all(
                replies,
                ServiceError::Internal(format!("commit failed: {err}")),
            );
            let _ = done.send(false);
            return;
        }
        if let Some(dir) = group.directory {
            directory.store(Arc::new(dir));
        }
        for (reply, outcome) in group.replies {
            reply.send(outcome);
        }
        if done.send(true).is_err() {
            return;
        }
    }
}

fn fail_all(replies: Vec<Reply>, error: ServiceError) {
    for reply in replies {
        let error = match &error {
            ServiceError::Internal(why) => ServiceError::Internal(why.clone()),
            _ => ServiceError::ShuttingDown,
        };
        reply.send(Err(Refusal::whole(error)));
    }
}

/// Answers every job still queued with `UNAVAILABLE`.
fn drain(rx: &mut mpsc::Receiver<Job>) {
    while let Some(job) = rx.blocking_recv() {
        job.reply
            .send(Err(Refusal::whole(ServiceError::ShuttingDown)));
    }
}

/// The sequencing time of the last entry in the log, so that the log's time never goes
/// backwards across a restart.
fn last_time(store: &Store, size: u64) -> Result<u64, StorageError> {
    let Some(last) = size.checked_sub(1) else {
        return Ok(0);
    };
    let leaf = store.entry(last)?.ok_or_else(|| StorageError::Corrupt {
        cf: "entries",
        reason: format!("entry {last} is missing"),
    })?;
    crate::log::StoredEntry::decode(&leaf)
        .map(|e| e.sequenced_at_unix_ms)
        .map_err(|e| StorageError::Corrupt {
            cf: "entries",
            reason: e.to_string(),
        })
}

/// Checks a whole job with `Pending::check_job`, then appends it with the effects the check
/// computed. A refused job stages nothing.
fn stage_job(
    pending: &mut Pending<'_>,
    caller: &MemberId,
    entries: Vec<ParsedEntry>,
) -> Result<Outcome, StorageError> {
    let plan = pending.check_job(caller.as_str(), &entries)?;
    let (directory, steps) = match plan {
        Ok(plan) => (
            match plan.directory {
                std::borrow::Cow::Owned(dir) => Some(dir),
                std::borrow::Cow::Borrowed(_) => None,
            },
            plan.steps,
        ),
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Some(dir) = directory {
        pending.set_directory(dir);
    }
    let mut out = Vec::with_capacity(entries.len());
    for (entry, step) in entries.into_iter().zip(steps) {
        out.push(match step {
            Step::New { effect, .. } => pending.append(entry, effect, caller.as_str())?,
            // Already in the log, or appended earlier in this job.
            Step::Duplicate => pending
                .existing(&entry)?
                .ok_or_else(|| StorageError::Corrupt {
                    cf: "dedup",
                    reason: "a statement checked as a duplicate was not found".into(),
                })?,
        });
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests;
