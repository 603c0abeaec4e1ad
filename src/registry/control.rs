//! What the operator asks of a running server over its control socket: a backup made while it
//! serves, and the confirmation that lets a restored primary take writes again (`backup`).

use std::path::PathBuf;
use std::time::Duration;

use super::Registry;
use crate::backup::restore::{self, ConfirmError, Confirmation};
use crate::backup::{self, BackupError, Manifest};
use crate::error::ServiceError;
use crate::log::checkpoint::LogVerifier;

/// How long a backup waits for the log's checkpoint of the entries it copied. The sequencer
/// signs it right after their commit; a sequencer that stopped never does.
const COVER_WAIT: Duration = Duration::from_secs(10);

impl Registry {
    /// The log's verifier key.
    pub fn verifier(&self) -> &LogVerifier {
        &self.verifier
    }

    /// Writes a backup of the store into `out` (missing or empty) while the server serves:
    /// every entry acknowledged before the call is in it, and its latest checkpoint covers
    /// every entry in it (taken from this store when the copy caught a group between its commit
    /// and its checkpoint).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when `out` is not empty; `FAILED_PRECONDITION` (`BACKUP_FAILED`) when
    /// the copy or a write fails, with the reason (the caller is the operator).
    pub async fn backup(&self, out: PathBuf) -> Result<Manifest, ServiceError> {
        let store = self.store.clone();
        let dir = out.clone();
        let copied = spawn(move || backup::copy(&store, &dir)).await?;
        let cover = if copied.uncovered {
            match self.checkpoint_of(copied.size).await {
                Ok(note) => Some(note),
                Err(e) => {
                    tokio::task::spawn_blocking(move || copied.discard());
                    return Err(e);
                }
            }
        } else {
            None
        };
        let verifier = self.verifier.clone();
        spawn(move || copied.finish(&verifier, cover, "online")).await
    }

    /// The note of the checkpoint of exactly `size` entries, waiting (at most [`COVER_WAIT`])
    /// until the sequencer has kept it.
    async fn checkpoint_of(&self, size: u64) -> Result<Vec<u8>, ServiceError> {
        let mut latest = self.checkpoints();
        let kept = tokio::time::timeout(COVER_WAIT, latest.wait_for(|c| c.head.size >= size));
        if !matches!(kept.await, Ok(Ok(_))) {
            return Err(failed(format!(
                "the log kept no checkpoint of {size} entries within {COVER_WAIT:?}"
            )));
        }
        let store = self.store.clone();
        self.blocking(move || {
            store
                .checkpoint(size)?
                .ok_or_else(|| failed(format!("the log kept no checkpoint of {size} entries")))
        })
        .await
    }

    /// Confirms that the log key signed no checkpoint larger than this restored store, after
    /// which the primary takes writes. Returns the log's size and whether it was waiting for
    /// the confirmation.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` on a replica (`NOT_PRIMARY`), or when the checkpoint given is
    /// larger than the log (`NEWER_CHECKPOINT`) or has another root at its size (`LOG_FORKED`);
    /// `INVALID_ARGUMENT` when it does not verify.
    pub async fn confirm_restore(
        &self,
        confirmation: Confirmation,
    ) -> Result<(u64, bool), ServiceError> {
        if !self.is_primary() {
            return Err(ServiceError::FailedPrecondition {
                reason: "NOT_PRIMARY",
                message: "only a primary is restored; a replica is bootstrapped".into(),
            });
        }
        let store = self.store.clone();
        let verifier = self.verifier.clone();
        let confirmed = self
            .blocking(move || {
                let was = restore::confirm(&store, &verifier, &confirmation).map_err(refusal)?;
                Ok((store.size()?, was))
            })
            .await?;
        *self.restored_at() = None;
        if let Some(at) = confirmed.1 {
            tracing::info!(restored_at = at, "restore confirmed: taking writes");
        }
        Ok((confirmed.0, confirmed.1.is_some()))
    }

    /// Refuses writes on a restored store the operator has not confirmed.
    pub(super) fn check_confirmed(&self) -> Result<(), ServiceError> {
        match *self.restored_at() {
            None => Ok(()),
            Some(size) => Err(ServiceError::FailedPrecondition {
                reason: "RESTORED_UNCONFIRMED",
                message: format!(
                    "this primary's store was restored from a backup of {size} entries: it takes \
                     no writes until the operator confirms that the log key signed no larger \
                     checkpoint (`hashforum restore --confirm --latest-checkpoint FILE`, or \
                     `--no-newer-checkpoint`; docs/operations.md, \"Restore from a backup\")"
                ),
            }),
        }
    }

    pub(super) fn restored_at(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.restored.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs backup work on the blocking pool, outside the registry's work slots: a backup may copy
/// for minutes, and must not hold a slot of the calls meanwhile.
async fn spawn<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, ServiceError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(BackupError::Destination(why))) => {
            Err(ServiceError::invalid("out_dir", "BAD_OUT_DIR", why))
        }
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(e) => Err(ServiceError::Internal(format!(
            "the backup task failed: {e}"
        ))),
    }
}

fn failed(message: String) -> ServiceError {
    tracing::error!("backup failed: {message}");
    ServiceError::FailedPrecondition {
        reason: "BACKUP_FAILED",
        message,
    }
}

fn refusal(e: ConfirmError) -> ServiceError {
    match e {
        ConfirmError::BadCheckpoint(why) => {
            ServiceError::invalid("latest_checkpoint", "BAD_CHECKPOINT", why)
        }
        ConfirmError::Newer { .. } => ServiceError::FailedPrecondition {
            reason: "NEWER_CHECKPOINT",
            message: e.to_string(),
        },
        ConfirmError::Forked { .. } => ServiceError::FailedPrecondition {
            reason: "LOG_FORKED",
            message: e.to_string(),
        },
        ConfirmError::Storage(e) => ServiceError::Storage(e),
    }
}
