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

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use crate::entry::ParsedEntry;
use crate::error::ServiceError;
use crate::state::{Appended, Directory, Pending};
use crate::storage::{StorageError, Store};

/// The most entries one group commit takes from the queue.
const MAX_GROUP_ENTRIES: usize = 32_768;
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
        let mut writer = Writer {
            store,
            directory,
            size,
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

struct Writer {
    store: Store,
    directory: Arc<ArcSwap<Directory>>,
    size: u64,
    last_ms: u64,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Job>) {
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
            self.commit_group(jobs);
        }
        tracing::info!(size = self.size, "sequencer stopped");
    }

    fn commit_group(&mut self, jobs: Vec<Job>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_ms = self.last_ms.max(now);
        let dir = Directory::clone(&self.directory.load());
        let mut pending = Pending::new(&self.store, dir, self.size, self.last_ms);
        let all: Vec<&ParsedEntry> = jobs.iter().flat_map(|j| &j.entries).collect();
        let staged = pending.prefetch(&all).and_then(|()| {
            jobs.iter()
                .map(|job| stage_job(&mut pending, job))
                .collect::<Result<Vec<_>, StorageError>>()
        });
        let outcome = staged.and_then(|results| {
            let (batch, size, dir) = pending.finish();
            self.store.commit(batch)?;
            Ok((results, size, dir))
        });
        match outcome {
            Ok((results, size, dir)) => {
                self.size = size;
                if let Some(dir) = dir {
                    self.directory.store(Arc::new(dir));
                }
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "group commit failed; nothing was written");
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(SequencerError::whole(ServiceError::Internal(
                            err.to_string(),
                        ))));
                }
            }
        }
    }
}

/// Checks a whole job, then appends it. A refused job stages nothing.
fn stage_job(
    pending: &mut Pending<'_>,
    job: &Job,
) -> Result<Result<Vec<Appended>, SequencerError>, StorageError> {
    if let Err(e) = pending.directory().check_author(&job.caller, None) {
        return Ok(Err(SequencerError::whole(e)));
    }
    for (i, entry) in job.entries.iter().enumerate() {
        if let Err(error) = pending.check(entry) {
            return Ok(Err(SequencerError {
                position: Some(i),
                error,
            }));
        }
    }
    let mut out = Vec::with_capacity(job.entries.len());
    for entry in &job.entries {
        match pending.existing(entry)? {
            Some(original) => out.push(original),
            None => out.push(pending.append(entry)?),
        }
    }
    Ok(Ok(out))
}
