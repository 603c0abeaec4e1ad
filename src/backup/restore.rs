//! Restoring a backup into a new data directory, and the guard that keeps a restored primary
//! from signing a tree that conflicts with a checkpoint it signed before.
//!
//! A backup holds the log up to some size `N`. If the primary signed a checkpoint larger than
//! `N` before it was lost (and someone holds it: a replica, a member's mirror, a receipt), a
//! primary restored from the backup and written to would sign a second, different tree of that
//! size: a fork, which replicas refuse with proof (docs/replicas.md). So a restored store is
//! marked restored at `N` (`meta/restored`), and a primary over it refuses writes until the
//! operator confirms that no checkpoint larger than `N` was published: by giving the latest one
//! the forum's replicas or members hold (larger than `N`: refused, bootstrap from a replica
//! instead), or by their word (`--no-newer-checkpoint`).
//!
//! Invariant: a restored data directory appears whole (its files are copied into a sibling
//! directory, synced and marked, then renamed into place) or not at all.

use std::path::{Path, PathBuf};

use super::{io, sync_dir, sync_dir_files, BackupError, Verified, DB};
use crate::log::checkpoint::{LogVerifier, TreeHead};
use crate::log::tree;
use crate::storage::{StorageError, Store};

/// How the operator confirms, at restore time or later, that the log key signed no checkpoint
/// larger than the restored store.
#[derive(Debug, Clone)]
pub enum Confirmation {
    /// The latest checkpoint the forum's replicas or members hold (a signed note).
    LatestCheckpoint(Vec<u8>),
    /// The operator's word.
    NoNewerCheckpoint,
}

/// Why a confirmation is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    /// The checkpoint given does not verify with the log key.
    #[error("the checkpoint given does not verify with the log key: {0}")]
    BadCheckpoint(String),
    /// The log key signed a checkpoint larger than the store: the store is older than the
    /// published log.
    #[error(
        "the log key signed a checkpoint of {theirs} entries, more than the {ours} of this \
         store: the backup is older than the published log, and a primary restored from it \
         would sign a tree that conflicts with that checkpoint. Start a replica's data instead \
         (docs/operations.md, \"Recover a rolled-back primary\": bootstrap from or promote an \
         up-to-date replica)"
    )]
    Newer {
        /// The checkpoint's size.
        theirs: u64,
        /// The store's size.
        ours: u64,
    },
    /// The checkpoint given has another root than the store's tree at its size.
    #[error(
        "the log key signed a checkpoint of {size} entries whose root is not this store's at \
         that size: the store holds another history than the published log"
    )]
    Forked {
        /// The checkpoint's size.
        size: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Checks `note`, the latest checkpoint others hold, against `store` of `size` entries: it
/// verifies with the log key, is no larger than the store, and has the store's root at its size.
///
/// # Errors
/// [`ConfirmError`] saying which.
pub fn check_latest(
    verifier: &LogVerifier,
    note: &[u8],
    size: u64,
    store: &Store,
) -> Result<TreeHead, ConfirmError> {
    let head = verifier
        .verify(note)
        .map_err(|e| ConfirmError::BadCheckpoint(e.to_string()))?
        .head;
    if head.size > size {
        return Err(ConfirmError::Newer {
            theirs: head.size,
            ours: size,
        });
    }
    let root = tree::root(head.size, store).map_err(|e| {
        ConfirmError::Storage(StorageError::Corrupt {
            cf: "tree",
            reason: e.to_string(),
        })
    })?;
    if root != head.root {
        return Err(ConfirmError::Forked { size: head.size });
    }
    Ok(head)
}

/// Confirms a restored store: checks `confirmation` and removes the mark. Returns the size it
/// was restored at, or `None` when it was not waiting for a confirmation.
///
/// # Errors
/// When the confirmation is refused (the mark stays) or the store fails.
pub fn confirm(
    store: &Store,
    verifier: &LogVerifier,
    confirmation: &Confirmation,
) -> Result<Option<u64>, ConfirmError> {
    let Some(restored) = store.restored()? else {
        return Ok(None);
    };
    if let Confirmation::LatestCheckpoint(note) = confirmation {
        check_latest(verifier, note, store.size()?, store)?;
    }
    let mut batch = store.batch();
    batch.clear_restored();
    store.commit(batch)?;
    Ok(Some(restored))
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// The backup, as verified.
    pub verified: Verified,
    /// Whether the restored store waits for a confirmation (none was given).
    pub unconfirmed: bool,
}

/// Verifies the backup in `from`, checks `confirmation` against it, and restores it into
/// `data_dir`, which must be missing or empty. Without a confirmation the store is marked
/// restored: a primary over it takes no writes until [`confirm`].
///
/// # Errors
/// When the backup does not verify, the confirmation is refused, `data_dir` is not empty, or
/// a copy fails. Then `data_dir` is as it was.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    verifier: &LogVerifier,
    confirmation: Option<&Confirmation>,
) -> Result<Restored, BackupError> {
    // The destination is checked before the replay, which takes a while, and again when the
    // copy is put in place.
    let empty = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(io(data_dir)(e)),
    };
    if !empty {
        return Err(BackupError::Destination(format!(
            "{} is not empty: restore into a new data directory",
            data_dir.display()
        )));
    }
    let staging = staging(data_dir);
    if staging.exists() {
        return Err(BackupError::Destination(format!(
            "{} exists (left by an interrupted restore?): remove it first",
            staging.display()
        )));
    }
    let verified = super::verify(from, verifier)?;
    if let Some(Confirmation::LatestCheckpoint(note)) = confirmation {
        let backup = Store::open_read_only(&from.join(DB))?;
        check_latest(verifier, note, verified.manifest.size, &backup)
            .map_err(|e| BackupError::Refused(e.to_string()))?;
    }
    let unconfirmed = confirmation.is_none();
    let staged = stage(
        &from.join(DB),
        &staging,
        verified.manifest.size,
        unconfirmed,
    );
    if let Err(e) = staged {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let placed = (|| {
        if data_dir.exists() {
            // Fails unless it is still empty.
            std::fs::remove_dir(data_dir)?;
        }
        std::fs::rename(&staging, data_dir)
    })();
    if let Err(e) = placed {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io(data_dir)(e));
    }
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(Restored {
        verified,
        unconfirmed,
    })
}

/// `DATA.restoring`, beside the data directory (so that the rename stays on one file system).
fn staging(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.file_name().unwrap_or_default().to_owned();
    name.push(".restoring");
    data_dir.with_file_name(name)
}

/// Copies the backup's store into `staging`, checks its size, marks it restored (when
/// `unconfirmed`) and syncs it.
fn stage(db: &Path, staging: &Path, size: u64, unconfirmed: bool) -> Result<(), BackupError> {
    std::fs::create_dir_all(staging).map_err(io(staging))?;
    for entry in std::fs::read_dir(db).map_err(io(db))? {
        let path = entry.map_err(io(db))?.path();
        if path.is_file() {
            let to = staging.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &to).map_err(io(&to))?;
        }
    }
    let store = Store::open(staging)?;
    if store.size()? != size {
        return Err(BackupError::Refused(format!(
            "the copied store holds {} entries, not the backup's {size}",
            store.size()?
        )));
    }
    if unconfirmed {
        let mut batch = store.batch();
        batch.put_restored(size);
        store.commit(batch)?;
    }
    drop(store);
    sync_dir_files(staging)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::genesis::{self, Founder};
    use crate::log::checkpoint::LogSigner;
    use crate::log::tree::Hash;
    use crate::types::Role;

    const ORIGIN: &str = "restore.test/forum";

    /// A store holding the genesis alone (size 1), marked restored, and the log's signer.
    fn restored() -> (tempfile::TempDir, Store, LogSigner) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let founder = Founder {
            member_id: "alpha".into(),
            display_name: "alpha".into(),
            roles: vec![Role::Admin],
            cert_der: vec![1],
            signing_key: SigningKey::from_bytes(&[9; 32]).verifying_key(),
        };
        let leaf = genesis::create(&key, ORIGIN, &[founder], 1);
        genesis::bootstrap(&store, &leaf, &key.verifying_key(), ORIGIN).unwrap();
        let mut batch = store.batch();
        batch.put_restored(1);
        store.commit(batch).unwrap();
        (dir, store, LogSigner::new(ORIGIN, key).unwrap())
    }

    /// A checkpoint larger than the store, one with another root at its size and one the log
    /// key did not sign are refused, and the store stays marked; a checkpoint of the store's
    /// own tree confirms it, after which there is nothing left to confirm.
    #[test]
    fn only_a_checkpoint_of_the_stores_own_tree_confirms_it() {
        let (_dir, store, signer) = restored();
        let verifier = signer.verifier();
        let root = tree::root(1, &store).unwrap();
        let given = |head: TreeHead| Confirmation::LatestCheckpoint(signer.sign(head).note);

        let newer = confirm(&store, &verifier, &given(TreeHead { size: 2, root }));
        assert!(matches!(
            newer,
            Err(ConfirmError::Newer { theirs: 2, ours: 1 })
        ));
        let other = TreeHead {
            size: 1,
            root: Hash([1; 32]),
        };
        let forked = confirm(&store, &verifier, &given(other));
        assert!(matches!(forked, Err(ConfirmError::Forked { size: 1 })));
        let stranger = LogSigner::new(ORIGIN, SigningKey::from_bytes(&[8; 32])).unwrap();
        let note = stranger.sign(TreeHead { size: 1, root }).note;
        let unsigned = confirm(&store, &verifier, &Confirmation::LatestCheckpoint(note));
        assert!(matches!(unsigned, Err(ConfirmError::BadCheckpoint(_))));
        assert_eq!(store.restored().unwrap(), Some(1), "refusals keep the mark");

        let ours = confirm(&store, &verifier, &given(TreeHead { size: 1, root }));
        assert_eq!(ours.unwrap(), Some(1));
        assert_eq!(store.restored().unwrap(), None);
        let again = confirm(&store, &verifier, &Confirmation::NoNewerCheckpoint);
        assert_eq!(again.unwrap(), None, "nothing left to confirm");
    }
}
