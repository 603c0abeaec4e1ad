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
//! job's entries is appended, and other jobs in the same group are unaffected.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use crate::entry::ParsedEntry;
use crate::error::ServiceError;
use crate::state::{self, Appended, Directory, Finished, Overlay, Pending};
use crate::storage::{Batch, StorageError, Store};

/// The most entries one group commit takes from the queue.
const MAX_GROUP_ENTRIES: usize = 8_192;
/// Queue depth, in jobs.
const QUEUE_JOBS: usize = 1024;

type Reply = oneshot::Sender<Result<Vec<Appended>, SequencerError>>;

struct Job {
    caller: String,
    entries: Vec<ParsedEntry>,
    reply: Reply,
}

/// Handle to the sequencer thread.
pub struct Sequencer {
    tx: mpsc::Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

impl Sequencer {
    /// Starts the sequencer over `store`, publishing membership changes to `directory`.
    ///
    /// # Errors
    /// When the log size cannot be read.
    pub fn start(store: Store, directory: Arc<ArcSwap<Directory>>) -> Result<Self, StorageError> {
        let size = store.size()?;
        let (tx, rx) = mpsc::channel(QUEUE_JOBS);
        let dir = Directory::clone(&directory.load());
        let mut writer = Writer {
            store,
            directory,
            size,
            dir,
            committed_size: size,
            last_ms: 0,
        };
        let thread = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageError::Corrupt {
                cf: "-",
                reason: format!("cannot start the sequencer thread: {e}"),
            })?;
        Ok(Self { tx, thread })
    }

    /// Queues verified entries from `caller` and waits until they are durably committed.
    ///
    /// # Errors
    /// The first refused entry's error (its field relative to its envelope), a storage
    /// failure, or `UNAVAILABLE` when shutting down.
    pub async fn submit(
        &self,
        caller: &str,
        entries: Vec<ParsedEntry>,
    ) -> Result<Vec<Appended>, SequencerError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            caller: caller.to_owned(),
            entries,
            reply,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| SequencerError::whole(ServiceError::ShuttingDown))?;
        rx.await
            .map_err(|_| SequencerError::whole(ServiceError::ShuttingDown))?
    }

    /// Stops taking jobs, finishes the queued ones and waits for the thread to end.
    pub async fn close(self) {
        drop(self.tx);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// A refused job: which entry (if one in particular) and why.
#[derive(Debug)]
pub struct SequencerError {
    /// Position of the refused entry in the job, if the error is about one entry.
    pub position: Option<usize>,
    /// The error.
    pub error: ServiceError,
}

impl SequencerError {
    fn whole(error: ServiceError) -> Self {
        Self {
            position: None,
            error,
        }
    }
}

/// What a group's callers get back, once the group is committed.
type Outcome = Result<Vec<Appended>, SequencerError>;

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
    /// The log size as of the last committed group.
    committed_size: u64,
    last_ms: u64,
}

impl Writer {
    /// Stages groups on this thread and commits them on a second one, so that staging a group
    /// overlaps with committing the previous one (memtable inserts and the WAL fsync). At most
    /// one group commits at a time; the next is staged on top of it through its overlay, and is
    /// sent only once it is known to be committed.
    fn run(&mut self, mut rx: mpsc::Receiver<Job>) {
        let (to_committer, staged_rx) = std::sync::mpsc::sync_channel::<Staged>(1);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<bool>();
        let committer = {
            let store = self.store.clone();
            let directory = self.directory.clone();
            std::thread::Builder::new()
                .name("committer".into())
                .spawn(move || commit_loop(&store, &directory, &staged_rx, &done_tx))
        };
        let committer = match committer {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the committer thread");
                return;
            }
        };
        // The overlay and size of the group being committed, if any.
        let mut in_flight: Option<(Overlay, u64)> = None;
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
            let (replies, staged) =
                self.stage(jobs, in_flight.as_ref().map(|(overlay, _)| overlay));
            if let Some((_, size)) = in_flight.take() {
                if done_rx.recv().unwrap_or(false) {
                    self.committed_size = size;
                } else {
                    // This group was staged on top of one that failed to commit.
                    self.size = self.committed_size;
                    self.dir = Directory::clone(&self.directory.load());
                    fail_all(replies, "an earlier group failed to commit");
                    continue;
                }
            }
            let (finished, outcomes) = match staged {
                Ok(staged) => staged,
                Err(err) => {
                    tracing::error!(error = %err, "staging failed; nothing was written");
                    fail_all(replies, &err.to_string());
                    continue;
                }
            };
            let group = Staged {
                batch: finished.batch,
                directory: finished.directory,
                replies: replies.into_iter().zip(outcomes).collect(),
            };
            if to_committer.send(group).is_err() {
                tracing::error!("the committer thread stopped");
                break;
            }
            in_flight = Some((finished.overlay, self.size));
        }
        if in_flight.is_some() {
            let _ = done_rx.recv();
        }
        drop(to_committer);
        let _ = committer.join();
        tracing::info!(size = self.size, "sequencer stopped");
    }

    /// Stages a group: checks and appends each job on top of everything staged before.
    /// Returns the jobs' reply channels, and the staged group with each job's outcome in the
    /// same order (or the storage failure that stopped staging).
    fn stage(
        &mut self,
        jobs: Vec<Job>,
        prev: Option<&Overlay>,
    ) -> (Vec<Reply>, Result<StagedGroup, StorageError>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_ms = self.last_ms.max(now);
        let (replies, work): (Vec<Reply>, Vec<(String, Vec<ParsedEntry>)>) = jobs
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

/// Commits staged groups in order; answers their callers once durable, publishes membership
/// changes, and tells the writer whether each commit succeeded.
fn commit_loop(
    store: &Store,
    directory: &ArcSwap<Directory>,
    staged: &std::sync::mpsc::Receiver<Staged>,
    done: &std::sync::mpsc::Sender<bool>,
) {
    for group in staged {
        let ok = match store.commit(group.batch) {
            Ok(()) => {
                if let Some(dir) = group.directory {
                    directory.store(Arc::new(dir));
                }
                for (reply, outcome) in group.replies {
                    let _ = reply.send(outcome);
                }
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "group commit failed; nothing was written");
                let replies = group.replies.into_iter().map(|(reply, _)| reply).collect();
                fail_all(replies, &err.to_string());
                false
            }
        };
        if done.send(ok).is_err() {
            return;
        }
    }
}

fn fail_all(replies: Vec<Reply>, reason: &str) {
    for reply in replies {
        let _ = reply.send(Err(SequencerError::whole(ServiceError::Internal(
            reason.to_owned(),
        ))));
    }
}

/// Checks a whole job, then appends it. A refused job stages nothing.
fn stage_job(
    pending: &mut Pending<'_>,
    caller: &str,
    entries: Vec<ParsedEntry>,
) -> Result<Result<Vec<Appended>, SequencerError>, StorageError> {
    if let Err(e) = pending.directory().check_author(caller, None) {
        return Ok(Err(SequencerError::whole(e)));
    }
    // Resubmissions get their original receipt and are not checked again.
    let originals = entries
        .iter()
        .map(|entry| pending.existing(entry))
        .collect::<Result<Vec<_>, _>>()?;
    // Admin actions change the directory the job's later entries are checked against; a
    // scratch copy is made on the first one, so that a refused job leaves no trace.
    let mut dir = Cow::Borrowed(pending.directory());
    let base = pending.size();
    for (i, entry) in entries.iter().enumerate() {
        if originals[i].is_some() {
            continue;
        }
        if let Err(error) = state::check(&mut dir, entry, base + i as u64) {
            return Ok(Err(SequencerError {
                position: Some(i),
                error,
            }));
        }
    }
    let mut out = Vec::with_capacity(entries.len());
    for (entry, original) in entries.into_iter().zip(originals) {
        // An entry new to the log may still repeat an earlier entry of this job.
        let original = match original {
            Some(original) => Some(original),
            None => pending.existing(&entry)?,
        };
        out.push(match original {
            Some(original) => original,
            None => pending.append(entry)?,
        });
    }
    Ok(Ok(out))
}
