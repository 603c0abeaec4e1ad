//! The single writer: one thread owns every append.
//!
//! Request handlers parse and verify entries in parallel, then queue them here. The sequencer
//! drains the queue (group commit), re-checks each entry against the registry's state at its
//! place in the log (a key revoked or a member suspended meanwhile is caught here), assigns
//! indexes, stages the views and the tree with `state::Pending` and writes everything in one
//! synced RocksDB `WriteBatch`. Only then does it answer the waiting callers: an acknowledged
//! entry is never lost.
//!
//! Checkpoints are signed only over committed entries. Once a group's batch is durable, the
//! committer signs the checkpoint of the new tree and writes it with the next group's batch
//! (or alone, when no group is waiting); the group's callers get their receipts, which carry
//! that checkpoint, once it is durable too: at most one group commit after their entries. Every
//! signed checkpoint is kept, and the log signs only sizes larger than the last one it kept,
//! over entries already durable, so it never signs two roots for one size, crash or not.
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
//!
//! A full disk is the one exception. RocksDB keeps the failed batch out of its memtables, stops
//! writes, and once there is room again drops the write-ahead log that may hold the batch
//! before it takes another write ([`StorageError::is_no_space`]). The batch is then lost
//! unless the process crashes first, and in that case nothing was written after it. So the
//! log is where the last committed group left it, whatever happens, and the sequencer can go
//! back there. The committer fails the callers of the failed group, of every group staged on
//! top of it and of the committed group whose checkpoint was not yet kept (its entries stay,
//! unacknowledged: a resubmission gets their original receipt). Jobs are then refused at once
//! (`RESOURCE_EXHAUSTED`, `DISK_FULL`) until the committer's probe, which keeps the checkpoint
//! of the committed tree, commits. The writer rolls its staged state back to the committed one
//! before it stages the next group, and a group staged before that is never committed: every
//! group carries the writer's *epoch*, and the committer bumps its own each time it fails a
//! group. No index is handed out twice: the next group starts right after the committed log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::entry::ParsedEntry;
use crate::error::ServiceError;
use crate::log::checkpoint::{LogSigner, LogVerifier, SignedCheckpoint, TreeHead};
use crate::log::tree::{self, Frontier, MemoryHashes};
use crate::pdq::index::{PdqChange, PdqIndex};
use crate::state::{Appended, Directory, Finished, Overlay, Pending, Refusal, Step};
use crate::storage::{Batch, StorageError, Store};
use crate::types::MemberId;

/// The most entries one group commit takes from the queue.
const MAX_GROUP_ENTRIES: usize = 8_192;
/// A group's write batch is sized for this many bytes per payload byte, plus
/// [`BATCH_BYTES_PER_ENTRY`] per entry, so that it is not copied as it grows: each entry
/// writes its leaf (its envelope and the sequencing suffix), its hash record, its tree hashes
/// and a few small keys. Measured with `hashforum bench`: 637 bytes for an entry of 143
/// payload bytes, that is twice the payload and 351 bytes.
const BATCH_BYTES_PER_PAYLOAD_BYTE: usize = 2;
/// See [`BATCH_BYTES_PER_PAYLOAD_BYTE`]; with some room for records that grew.
const BATCH_BYTES_PER_ENTRY: usize = 512;
/// Queue depth, in jobs.
const QUEUE_JOBS: usize = 1024;
/// Most payload bytes queued or being committed at once. Callers wait for room: the queue
/// holds parsed entries (about three times their payload), so this bounds its memory.
pub const QUEUE_BYTES: usize = 64 << 20;
/// While the disk is full, how often the committer tries to commit again. RocksDB itself checks
/// for room every 5 seconds, so a shorter interval only shortens the wait after it recovers.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// The refusal of a write while the disk is full (or of one whose group could not be kept
/// for that reason).
fn disk_full() -> ServiceError {
    ServiceError::ResourceExhausted {
        reason: "DISK_FULL",
        message: "the server's disk is full, so this write was not acknowledged; retry later \
                  (an entry that is already in the log gets its original receipt)"
            .into(),
    }
}

/// Where a job's outcome goes, holding the job's share of [`QUEUE_BYTES`] until it is sent.
struct Reply {
    tx: oneshot::Sender<Result<Committed, Refusal>>,
    _room: OwnedSemaphorePermit,
}

impl Reply {
    fn send(self, outcome: Result<Committed, Refusal>) {
        // The caller may have gone (deadline, cancellation); its entries stay committed.
        let _ = self.tx.send(outcome);
    }

    fn fail(self, error: Refusal) {
        self.send(Err(error));
    }
}

struct Job {
    caller: MemberId,
    entries: Vec<ParsedEntry>,
    reply: Reply,
}

/// A job's entries, committed and covered by a durable signed checkpoint.
#[derive(Debug)]
pub struct Committed {
    /// Where each entry landed, in job order.
    pub appended: Vec<Appended>,
    /// The sequencing time of the job's new entries.
    pub time_ms: u64,
    /// The checkpoint that covers them.
    pub checkpoint: Arc<SignedCheckpoint>,
    /// The tree hashes of the group that appended them, at the checkpoint's size.
    hashes: Arc<MemoryHashes>,
}

impl Committed {
    /// Runs `f` with a prover of inclusion in the checkpoint's tree, reading the group's
    /// hashes in memory and `store` only for older entries (resubmissions).
    ///
    /// # Errors
    /// When the store fails.
    pub fn with_prover<T>(
        &self,
        store: &Store,
        f: impl FnOnce(&tree::Prover<'_, tree::Layered<'_, Store>>) -> T,
    ) -> Result<T, tree::ProofError> {
        let hashes = self.hashes.over(store);
        let prover = tree::Prover::new(self.checkpoint.head.size, &hashes)?;
        Ok(f(&prover))
    }

    /// The inclusion proofs of the entries at `indexes` in the checkpoint's tree.
    ///
    /// # Errors
    /// When an index is not covered by the checkpoint or the store fails.
    pub fn inclusion_proofs(
        &self,
        indexes: impl IntoIterator<Item = u64>,
        store: &Store,
    ) -> Result<Vec<Vec<tree::Hash>>, tree::ProofError> {
        self.with_prover(store, |prover| {
            indexes.into_iter().map(|i| prover.prove(i)).collect()
        })?
    }
}

/// Handle to the sequencer thread.
pub struct Sequencer {
    tx: mpsc::Sender<Job>,
    room: Arc<Semaphore>,
    failed: CancellationToken,
    /// Set while the disk is full: jobs are refused at once.
    full: Arc<AtomicBool>,
    checkpoints: watch::Receiver<Arc<SignedCheckpoint>>,
    thread: std::thread::JoinHandle<()>,
}

impl Sequencer {
    /// Starts the sequencer over `store`, publishing membership changes to `directory` and
    /// signing checkpoints with `signer`. First makes sure the log's latest checkpoint is
    /// signed and kept (after a crash between a commit and its checkpoint, it is not).
    ///
    /// # Errors
    /// When the store cannot be read or written, or its latest checkpoint does not verify
    /// or does not match the stored tree.
    pub fn start(
        store: Store,
        directory: Arc<ArcSwap<Directory>>,
        pdq: PdqIndex,
        signer: LogSigner,
    ) -> std::io::Result<Self> {
        let size = store.size().map_err(std::io::Error::other)?;
        let last_ms = last_time(&store, size).map_err(std::io::Error::other)?;
        let frontier = Frontier::load(size, &store).map_err(std::io::Error::other)?;
        let latest = latest_checkpoint(&store, &signer, &frontier)?;
        let (checkpoints_tx, checkpoints) = watch::channel(Arc::new(latest));
        let (tx, rx) = mpsc::channel(QUEUE_JOBS);
        let dir = Directory::clone(&directory.load());
        let failed = CancellationToken::new();
        let full = Arc::new(AtomicBool::new(false));
        let mut writer = Writer {
            store,
            directory,
            pdq,
            frontier,
            dir,
            last_ms,
            failed: failed.clone(),
            full: full.clone(),
            epoch: 0,
        };
        let thread = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || writer.run(rx, signer, checkpoints_tx))?;
        Ok(Self {
            tx,
            room: Arc::new(Semaphore::new(QUEUE_BYTES)),
            failed,
            full,
            checkpoints,
            thread,
        })
    }

    /// The latest durable signed checkpoint, updated as the log grows.
    pub fn checkpoints(&self) -> watch::Receiver<Arc<SignedCheckpoint>> {
        self.checkpoints.clone()
    }

    /// Submissions queued or being committed, and their payload bytes.
    pub fn queued(&self) -> (usize, usize) {
        let jobs = self.tx.max_capacity() - self.tx.capacity();
        let bytes = QUEUE_BYTES.saturating_sub(self.room.available_permits());
        (jobs, bytes)
    }

    /// Cancelled when a commit failed and the sequencer stopped for good.
    pub fn failed(&self) -> &CancellationToken {
        &self.failed
    }

    /// Whether writes are refused because the disk is full.
    pub fn disk_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Queues verified entries from `caller` and waits until they are durably committed and
    /// covered by a durable signed checkpoint.
    ///
    /// # Errors
    /// The first refused entry's error (its field relative to its envelope), a storage
    /// failure, `RESOURCE_EXHAUSTED` (`DISK_FULL`) while the disk is full, or `UNAVAILABLE`
    /// when shutting down.
    pub async fn submit(
        &self,
        caller: &MemberId,
        entries: Vec<ParsedEntry>,
    ) -> Result<Committed, Refusal> {
        let shutting_down = || Refusal::whole(ServiceError::ShuttingDown);
        if self.failed.is_cancelled() {
            return Err(shutting_down());
        }
        if self.disk_full() {
            return Err(Refusal::whole(disk_full()));
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
        let (tx, rx) = oneshot::channel::<Result<Committed, Refusal>>();
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

/// What a job gets from staging: where its entries land, or why it was refused.
type Outcome = Result<Vec<Appended>, Refusal>;

/// A staged group and each job's outcome, in job order.
type StagedGroup = (Finished, Vec<Outcome>);

/// What the committer tells the writer of each group it was sent, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    /// The group is committed.
    Committed,
    /// The group was not committed for want of room, or because it was staged on top of such
    /// a group: the writer must go back to the committed state and stage from there with this
    /// epoch.
    Full(u64),
    /// A commit failed otherwise: the sequencer stops for good.
    Failed,
}

impl Done {
    /// The worse of two answers: `Failed`, then `Full` (the later epoch), then `Committed`.
    fn worse(self, other: Done) -> Done {
        match (self, other) {
            (Done::Failed, _) | (_, Done::Failed) => Done::Failed,
            (Done::Full(a), Done::Full(b)) => Done::Full(a.max(b)),
            (Done::Full(e), Done::Committed) | (Done::Committed, Done::Full(e)) => Done::Full(e),
            (Done::Committed, Done::Committed) => Done::Committed,
        }
    }
}

/// A staged group on its way to the committer thread.
struct Staged {
    batch: Batch,
    directory: Option<Directory>,
    pdq: Vec<PdqChange>,
    group: Group,
    /// The writer's epoch when it staged the group: the committer commits it only if no group
    /// failed since the writer last went back to the committed state.
    epoch: u64,
}

/// What the committer keeps of a group once its batch is written: what its callers need.
struct Group {
    replies: Vec<(Reply, Outcome)>,
    /// The tree once the group is committed.
    head: TreeHead,
    time_ms: u64,
    hashes: MemoryHashes,
}

struct Writer {
    store: Store,
    /// The published membership: as of the last committed group.
    directory: Arc<ArcSwap<Directory>>,
    /// The PDQ matching index: as of the last committed group.
    pdq: PdqIndex,
    /// The tree (and so the log size) and membership as of the last staged group, committed
    /// or not.
    frontier: Frontier,
    dir: Directory,
    /// The sequencing time of the last staged group: the log's time never goes backwards,
    /// also across restarts and clock steps.
    last_ms: u64,
    failed: CancellationToken,
    /// Set while the disk is full (see [`Sequencer::disk_full`]), by the committer.
    full: Arc<AtomicBool>,
    /// The committer's epoch as of the last time the writer went back to the committed state.
    epoch: u64,
}

impl Writer {
    /// Stages groups on this thread and commits them on a second one, so that staging a group
    /// overlaps with committing the previous one (memtable inserts and the WAL fsync). A group
    /// is handed to the committer as soon as it is staged, so that the committer finds it
    /// waiting and writes the previous group's checkpoint with it. The next group is staged on
    /// top of the last one through its overlay, once every group before that one is known to
    /// be committed. When a group was not committed for want of room, the writer goes back to
    /// the committed state ([`Writer::settle`]) before it stages anything more. After any
    /// other failed commit, nothing more is committed: every queued job is failed and the loop
    /// ends.
    fn run(
        &mut self,
        mut rx: mpsc::Receiver<Job>,
        signer: LogSigner,
        checkpoints: watch::Sender<Arc<SignedCheckpoint>>,
    ) {
        // A panic on this thread must stop the server like a failed commit: nothing could
        // append any more, and health would still say SERVING.
        let _guard = FailOnPanic(self.failed.clone());
        let (to_committer, staged_rx) = std::sync::mpsc::sync_channel::<Box<Staged>>(1);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Done>();
        let committer = {
            let size = checkpoints.borrow().head.size;
            let committer = Committer {
                store: self.store.clone(),
                directory: self.directory.clone(),
                pdq: self.pdq.clone(),
                failed: self.failed.clone(),
                signer,
                size,
                checkpoints,
                signing: None,
                full: self.full.clone(),
                epoch: 0,
            };
            std::thread::Builder::new()
                .name("committer".into())
                .spawn(move || committer.run(&staged_rx, &done_tx))
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
        let mut link = Link {
            staged: to_committer,
            done: done_rx,
            unconfirmed: 0,
        };
        // The overlay of the last group sent, when the groups before it are committed.
        let mut in_flight: Option<Overlay> = None;
        let mut ok = true;
        while let Some(first) = rx.blocking_recv() {
            // A group sent earlier may have failed for want of room meanwhile: go back to the
            // committed state before staging anything on top of it.
            let polled = link.poll();
            if polled != Done::Committed {
                in_flight = None;
                if !self.settle(&mut link, polled) {
                    ok = false;
                    break;
                }
            }
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
            let (finished, outcomes) = match staged {
                Ok(staged) => staged,
                Err(err) => {
                    // A read failed: nothing of this group was written. The next group starts
                    // from the committed state, once every group sent is answered.
                    tracing::error!(error = %err, "staging failed; nothing was written");
                    fail_all(replies, || ServiceError::Internal(err.to_string()));
                    in_flight = None;
                    let confirmed = link.confirm(0);
                    if !self.settle(&mut link, confirmed) {
                        ok = false;
                        break;
                    }
                    continue;
                }
            };
            let group = Staged {
                batch: finished.batch,
                directory: finished.directory,
                pdq: finished.pdq,
                group: Group {
                    replies: replies.into_iter().zip(outcomes).collect(),
                    head: finished.head,
                    time_ms: finished.time_ms,
                    hashes: finished.hashes,
                },
                epoch: self.epoch,
            };
            if link.staged.send(Box::new(group)).is_err() {
                ok = false;
                break;
            }
            link.unconfirmed += 1;
            // The next group reads through this group's overlay only: the ones before it must
            // be committed.
            match link.confirm(1) {
                Done::Committed => in_flight = Some(finished.overlay),
                failed => {
                    in_flight = None;
                    if !self.settle(&mut link, failed) {
                        ok = false;
                        break;
                    }
                }
            }
        }
        // Shutting down with the disk full leaves nothing to undo.
        if ok && link.confirm(0) == Done::Failed {
            ok = false;
        }
        drop(link);
        let _ = committer.join();
        if !ok {
            self.fail("a group commit failed");
            rx.close();
            drain(&mut rx);
        }
        tracing::info!(size = self.frontier.size(), "sequencer stopped");
    }

    /// After `done`, the answer to some of the groups sent: unless they were all committed,
    /// waits until every group sent is answered and goes back to the committed state (the
    /// published membership and the stored tree), taking the committer's latest epoch.
    /// Returns false when the sequencer must stop for good.
    fn settle(&mut self, link: &mut Link, done: Done) -> bool {
        let epoch = match done.worse(link.confirm(0)) {
            Done::Failed => return false,
            Done::Committed => self.epoch,
            Done::Full(epoch) => epoch,
        };
        if !self.reset() {
            return false;
        }
        if epoch != self.epoch {
            tracing::warn!(
                size = self.frontier.size(),
                "groups were not committed for want of room: staging again after the \
                 committed log"
            );
        }
        self.epoch = epoch;
        true
    }

    /// Marks the sequencer failed for good.
    fn fail(&self, why: &str) {
        tracing::error!(
            why,
            "the sequencer stopped: no more entries will be appended"
        );
        self.failed.cancel();
    }

    /// Starts the next group from the committed state: the published membership and the
    /// stored tree. False (and the sequencer failed) when the store cannot be read.
    fn reset(&mut self) -> bool {
        self.dir = Directory::clone(&self.directory.load());
        let frontier = self.store.size().and_then(|size| {
            Frontier::load(size, &self.store).map_err(|e| StorageError::Corrupt {
                cf: "tree",
                reason: e.to_string(),
            })
        });
        match frontier {
            Ok(frontier) => {
                self.frontier = frontier;
                true
            }
            Err(err) => {
                self.fail(&format!("cannot read the committed state: {err}"));
                false
            }
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
        let all: Vec<&ParsedEntry> = work.iter().flat_map(|(_, entries)| entries).collect();
        let payload: usize = all.iter().map(|e| e.payload().len()).sum();
        let mut pending = Pending::new(
            &self.store,
            prev,
            self.dir.clone(),
            self.frontier.clone(),
            self.last_ms,
        )
        .with_capacity(
            all.len(),
            BATCH_BYTES_PER_PAYLOAD_BYTE * payload + BATCH_BYTES_PER_ENTRY * all.len(),
        );
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
        self.frontier = finished.frontier.clone();
        if let Some(dir) = &finished.directory {
            self.dir = dir.clone();
        }
        (replies, Ok((finished, outcomes)))
    }
}

/// The writer's end of the channels to the committer.
struct Link {
    staged: std::sync::mpsc::SyncSender<Box<Staged>>,
    done: std::sync::mpsc::Receiver<Done>,
    /// Groups sent and not yet answered: at most two (the one committing and the one waiting
    /// for it).
    unconfirmed: usize,
}

impl Link {
    /// Waits until at most `keep` groups sent are unanswered; returns the worst answer read.
    fn confirm(&mut self, keep: usize) -> Done {
        let mut worst = Done::Committed;
        while self.unconfirmed > keep && worst != Done::Failed {
            // The committer is gone only after it failed (or panicked).
            worst = worst.worse(self.done.recv().unwrap_or(Done::Failed));
            self.unconfirmed -= 1;
        }
        worst
    }

    /// Reads the answers already sent, without waiting; returns the worst.
    fn poll(&mut self) -> Done {
        let mut worst = Done::Committed;
        while self.unconfirmed > 0 && worst != Done::Failed {
            match self.done.try_recv() {
                Ok(done) => worst = worst.worse(done),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => worst = Done::Failed,
            }
            self.unconfirmed -= 1;
        }
        worst
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

/// Committed groups whose checkpoint is signed but not yet durable.
struct Signing {
    checkpoint: Arc<SignedCheckpoint>,
    groups: Vec<Group>,
}

/// The committer thread: commits staged groups in order, signs their checkpoints and answers
/// their callers once those are durable.
struct Committer {
    store: Store,
    directory: Arc<ArcSwap<Directory>>,
    pdq: PdqIndex,
    failed: CancellationToken,
    signer: LogSigner,
    checkpoints: watch::Sender<Arc<SignedCheckpoint>>,
    signing: Option<Signing>,
    /// The log's size after the last committed group, for metrics.
    size: u64,
    /// Set when a commit failed for want of room, before its callers learn of it, until a
    /// probe commits. The same flag makes [`Sequencer::submit`] refuse jobs at once.
    full: Arc<AtomicBool>,
    /// Bumped each time a group is not committed: a group staged with an earlier epoch may
    /// sit on top of a group that is not in the log, and is not committed either.
    epoch: u64,
}

impl Committer {
    /// Commits each group (with the previous group's checkpoint, if that is not durable yet),
    /// publishes its membership and PDQ index changes, tells the writer it is committed, then
    /// signs its checkpoint. When no group is waiting, a signed checkpoint is committed alone.
    /// A full disk fails the callers held and every group until a probe commits (tried every
    /// [`PROBE_INTERVAL`]); any other failure stops the committer, failing every caller it
    /// holds.
    fn run(
        mut self,
        staged: &std::sync::mpsc::Receiver<Box<Staged>>,
        done: &std::sync::mpsc::Sender<Done>,
    ) {
        use std::sync::mpsc::RecvTimeoutError;
        let _guard = FailOnPanic(self.failed.clone());
        loop {
            let next = if self.full.load(Ordering::Relaxed) {
                match staged.recv_timeout(PROBE_INTERVAL) {
                    Ok(group) => Some(group),
                    Err(RecvTimeoutError::Timeout) => {
                        if !self.probe() {
                            return;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else if self.signing.is_some() {
                // Empty or disconnected: the checkpoint is written alone.
                staged.try_recv().ok()
            } else {
                match staged.recv() {
                    Ok(group) => Some(group),
                    Err(_) => return,
                }
            };
            let Some(staged) = next else {
                // Nothing to write the checkpoint with: write it alone. No group is lost if
                // the disk is full: the groups it covers are committed.
                if let Err(err) = self.commit(self.store.batch()) {
                    if !err.is_no_space() {
                        self.stop(&err, Vec::new());
                        return;
                    }
                    self.disk_full(&err, Vec::new());
                }
                continue;
            };
            let Staged {
                batch,
                directory,
                pdq,
                group,
                epoch,
            } = *staged;
            if self.full.load(Ordering::Relaxed) || epoch != self.epoch {
                // Refused while the disk is full, or staged on top of a group that failed.
                if epoch == self.epoch {
                    self.epoch += 1;
                }
                fail_all(group.replies.into_iter().map(|(r, _)| r), disk_full);
                let _ = done.send(Done::Full(self.epoch));
                continue;
            }
            if let Err(err) = self.commit(batch) {
                if err.is_no_space() {
                    self.epoch += 1;
                    self.disk_full(&err, group.replies);
                    let _ = done.send(Done::Full(self.epoch));
                    continue;
                }
                self.stop(&err, group.replies);
                let _ = done.send(Done::Failed);
                return;
            }
            if group.head.size > self.checkpoints.borrow().head.size {
                crate::failpoint::hit("after-commit");
            }
            self.count(group.head.size);
            if let Some(dir) = directory {
                self.directory.store(Arc::new(dir));
            }
            // Before any caller is answered: a hash is matchable once its receipt is out.
            if !pdq.is_empty() {
                self.pdq.apply(&pdq);
            }
            // The writer may be gone; the group is committed and is answered all the same.
            let _ = done.send(Done::Committed);
            self.sign(group);
        }
    }

    /// Counts a committed group that grew the log to `size`.
    fn count(&mut self, size: u64) {
        let appended = size.saturating_sub(self.size);
        self.size = self.size.max(size);
        if appended > 0 {
            let metrics = crate::metrics::global();
            metrics.entries_appended.inc_by(appended);
            #[allow(clippy::cast_precision_loss)] // a group is at most a few thousand entries
            metrics.group_entries.observe(appended as f64);
        }
    }

    /// Commits `batch` with the waiting checkpoint and answers its callers.
    fn commit(&mut self, mut batch: Batch) -> Result<(), StorageError> {
        if let Some(signing) = &self.signing {
            let checkpoint = &signing.checkpoint;
            batch.put_checkpoint(checkpoint.head.size, &checkpoint.note);
        }
        let started = std::time::Instant::now();
        self.store.commit(batch)?;
        crate::metrics::global()
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Some(signing) = self.signing.take() {
            self.checkpoints.send_replace(signing.checkpoint.clone());
            for group in signing.groups {
                answer(group, &signing.checkpoint);
            }
        }
        Ok(())
    }

    /// Signs the checkpoint of a committed group's tree; or, when the group did not grow the
    /// log, answers it with the latest checkpoint, which covers all of it.
    fn sign(&mut self, group: Group) {
        let latest = self.checkpoints.borrow().clone();
        if group.head.size <= latest.head.size {
            answer(group, &latest);
            return;
        }
        let checkpoint = Arc::new(self.signer.sign(group.head));
        self.signing = Some(Signing {
            checkpoint,
            groups: vec![group],
        });
    }

    /// After a commit failed for want of room: fails the callers of the group (`replies`) and
    /// of the committed groups whose checkpoint is not kept yet, and refuses groups until a
    /// probe commits.
    ///
    /// The signed checkpoint that was waiting is dropped unreleased: the probe signs the same
    /// tree head again (the committed tree is exactly the one it covered).
    fn disk_full(&mut self, err: &StorageError, replies: Vec<(Reply, Outcome)>) {
        tracing::error!(
            error = %err,
            "commit failed: the disk is full; writes are refused until there is room again"
        );
        self.full.store(true, Ordering::Relaxed);
        let mut all: Vec<Reply> = replies.into_iter().map(|(reply, _)| reply).collect();
        if let Some(signing) = self.signing.take() {
            for group in signing.groups {
                all.extend(group.replies.into_iter().map(|(reply, _)| reply));
            }
        }
        fail_all(all, disk_full);
    }

    /// While the disk is full: keeps the checkpoint of the committed tree (signed now if the
    /// log grew after the latest kept one), which also tells whether RocksDB takes writes
    /// again; if it does, jobs are taken again. False when the sequencer must stop for good.
    fn probe(&mut self) -> bool {
        match self.keep_latest() {
            Ok(()) => {
                self.full.store(false, Ordering::Relaxed);
                tracing::info!(
                    size = self.checkpoints.borrow().head.size,
                    "there is room on the disk again: writes resume"
                );
                true
            }
            Err(err) if err.is_no_space() => true,
            Err(err) => {
                self.stop(&err, Vec::new());
                false
            }
        }
    }

    /// Commits the checkpoint of the committed tree and publishes it. Only a size larger than
    /// the latest kept checkpoint's is signed, over entries already durable, so this never
    /// signs a second root for a size.
    fn keep_latest(&mut self) -> Result<(), StorageError> {
        let size = self.store.size()?;
        let latest = self.checkpoints.borrow().clone();
        let checkpoint = if latest.head.size >= size {
            latest
        } else {
            let frontier =
                Frontier::load(size, &self.store).map_err(|e| StorageError::Corrupt {
                    cf: "tree",
                    reason: e.to_string(),
                })?;
            Arc::new(self.signer.sign(TreeHead {
                size,
                root: frontier.root(),
            }))
        };
        let mut batch = self.store.batch();
        batch.put_checkpoint(checkpoint.head.size, &checkpoint.note);
        self.store.commit(batch)?;
        // Watchers see each checkpoint once.
        self.checkpoints.send_if_modified(|latest| {
            let newer = latest.head.size < checkpoint.head.size;
            if newer {
                *latest = checkpoint;
            }
            newer
        });
        Ok(())
    }

    /// After a failed commit: fails the callers held, and stops the sequencer.
    fn stop(&mut self, err: &StorageError, replies: Vec<(Reply, Outcome)>) {
        tracing::error!(error = %err, "commit failed; stopping the sequencer");
        self.failed.cancel();
        // The batch may or may not be durable: its callers learn nothing either way.
        let error = format!("commit failed: {err}");
        let mut all: Vec<Reply> = replies.into_iter().map(|(reply, _)| reply).collect();
        if let Some(signing) = self.signing.take() {
            for group in signing.groups {
                all.extend(group.replies.into_iter().map(|(reply, _)| reply));
            }
        }
        fail_all(all, || ServiceError::Internal(error.clone()));
    }
}

/// Answers a committed group's callers: receipts under `checkpoint`, or their refusals.
fn answer(group: Group, checkpoint: &Arc<SignedCheckpoint>) {
    let hashes = Arc::new(group.hashes);
    for (reply, outcome) in group.replies {
        reply.send(outcome.map(|appended| Committed {
            appended,
            time_ms: group.time_ms,
            checkpoint: checkpoint.clone(),
            hashes: hashes.clone(),
        }));
    }
}

/// Fails every caller with `error()`.
fn fail_all(replies: impl IntoIterator<Item = Reply>, error: impl Fn() -> ServiceError) {
    for reply in replies {
        reply.fail(Refusal::whole(error()));
    }
}

/// Answers every job still queued with `UNAVAILABLE`.
fn drain(rx: &mut mpsc::Receiver<Job>) {
    while let Some(job) = rx.blocking_recv() {
        job.reply.fail(Refusal::whole(ServiceError::ShuttingDown));
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

/// The log's latest checkpoint, checked against the stored tree; signed and kept first when
/// the log grew since the last one (a crash between a commit and its checkpoint).
///
/// # Errors
/// When the store fails, or the latest kept checkpoint is not signed by `signer`'s key or
/// does not have the stored tree's root at its size: then the data directory is corrupt or
/// belongs to another log, and nothing must be signed.
fn latest_checkpoint(
    store: &Store,
    signer: &LogSigner,
    frontier: &Frontier,
) -> std::io::Result<SignedCheckpoint> {
    let verifier: LogVerifier = signer.verifier();
    if let Some((size, note)) = store.latest_checkpoint().map_err(std::io::Error::other)? {
        let kept = verifier.verify(&note).map_err(|e| {
            std::io::Error::other(format!("the latest kept checkpoint (size {size}): {e}"))
        })?;
        let root = tree::root(kept.head.size, store).map_err(std::io::Error::other)?;
        if kept.head.size != size || kept.head.size > frontier.size() || kept.head.root != root {
            return Err(std::io::Error::other(format!(
                "the latest kept checkpoint (size {size}) does not match the stored log of {} \
                 entries: refusing to sign anything",
                frontier.size()
            )));
        }
        if kept.head.size == frontier.size() {
            return Ok(kept);
        }
    }
    let checkpoint = signer.sign(TreeHead {
        size: frontier.size(),
        root: frontier.root(),
    });
    let mut batch = store.batch();
    batch.put_checkpoint(checkpoint.head.size, &checkpoint.note);
    store.commit(batch).map_err(std::io::Error::other)?;
    tracing::info!(
        size = checkpoint.head.size,
        "signed the log's latest checkpoint"
    );
    Ok(checkpoint)
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
