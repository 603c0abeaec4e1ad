//! Backups of a server's data directory: made while it serves (by the server, over its control
//! socket) or while it is stopped, checked offline with the forum's verifier key alone, and
//! restored into a new data directory ([`restore`]).
//!
//! A backup is a directory:
//!
//! ```text
//! OUT/db/            a RocksDB checkpoint of the store: SST files hard-linked when OUT is on
//!                    the data directory's file system, copied otherwise
//! OUT/manifest.json  hashforum-backup/v1: origin, size, root, the latest signed checkpoint
//! ```
//!
//! Invariant: the latest checkpoint kept in `OUT/db` covers every entry in it (the log signs
//! the tree of every group it commits; a backup taken between a group's commit and its
//! checkpoint gets that checkpoint from the live store), and the manifest repeats it. The
//! manifest is written last, so a directory without one is not a backup.
//!
//! Not here: deciding whether a restored primary may sign again ([`restore::confirm`]).

pub mod restore;

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::log::checkpoint::{LogVerifier, TreeHead};
use crate::log::{now_ms, tree};
use crate::storage::{StorageError, Store};
use crate::verify::{self, LogError, LogReport};

/// The manifest's `format`: its name and version.
pub const FORMAT: &str = "hashforum-backup/v1";
/// The manifest's file name in a backup.
pub const MANIFEST: &str = "manifest.json";
/// The store's directory in a backup.
pub const DB: &str = "db";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What a backup holds, written beside the store copy as `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The log's origin.
    pub origin: String,
    /// The number of entries in the backup.
    pub size: u64,
    /// The tree's root at `size`, base64 (as in the checkpoint).
    pub root: String,
    /// The latest signed checkpoint in the backup (of `size` entries), the note verbatim.
    pub checkpoint: String,
    /// When the backup was made, in ms since 1970.
    pub created_unix_ms: u64,
    /// The same, RFC 3339.
    pub created_at: String,
    /// The version of hashforum that made it.
    pub hashforum_version: String,
    /// `online` (made by the serving server) or `offline` (the store opened while stopped).
    pub taken: String,
}

/// Why a backup could not be made, verified or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The destination is not fit: a directory that is not empty.
    #[error("{0}")]
    Destination(String),
    /// The source is not fit: a log not yet covered by a signed checkpoint, a checkpoint
    /// that is not its tree's, a confirmation refused.
    #[error("{0}")]
    Refused(String),
    /// The backup's log does not verify: its first bad entry or checkpoint.
    #[error("the backup does not verify: {0}")]
    Log(#[from] LogError),
    /// The manifest is missing, malformed or does not match the store.
    #[error("manifest: {0}")]
    Manifest(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A store copied into a backup directory, its manifest not yet written.
pub struct Copied {
    out: PathBuf,
    /// The copy's size.
    pub size: u64,
    /// Set when the copy's latest checkpoint is older than its size (the copy was taken
    /// between a group's commit and its checkpoint): the checkpoint of `size` must be added.
    pub uncovered: bool,
}

/// Copies `store` into `out` (missing or an empty directory): the first half of a backup.
///
/// # Errors
/// When `out` is not empty, or the copy fails; then nothing of it is left in `out`.
pub fn copy(store: &Store, out: &Path) -> Result<Copied, BackupError> {
    prepare(out)?;
    let copied = (|| -> Result<Copied, BackupError> {
        let db = out.join(DB);
        store.copy_to(&db)?;
        let copy = Store::open_read_only(&db)?;
        let size = copy.size()?;
        let latest = copy.latest_checkpoint()?.map_or(0, |(s, _)| s);
        Ok(Copied {
            out: out.to_owned(),
            size,
            uncovered: latest < size,
        })
    })();
    if copied.is_err() {
        discard(out);
    }
    copied
}

impl Copied {
    /// Abandons the backup: removes what was copied.
    pub fn discard(self) {
        discard(&self.out);
    }

    /// Finishes the backup: keeps `cover` (the log's signed checkpoint of exactly the copy's
    /// size, when [`Copied::uncovered`]) in the copy, checks the latest checkpoint against the
    /// copy's tree, writes the manifest and syncs everything.
    ///
    /// # Errors
    /// When `cover` is missing or wrong, or a write fails; then nothing is left in `out`.
    pub fn finish(
        self,
        verifier: &LogVerifier,
        cover: Option<Vec<u8>>,
        taken: &str,
    ) -> Result<Manifest, BackupError> {
        let out = self.out.clone();
        let done = self.write(verifier, cover, taken);
        if done.is_err() {
            discard(&out);
        }
        done
    }

    fn write(
        self,
        verifier: &LogVerifier,
        cover: Option<Vec<u8>>,
        taken: &str,
    ) -> Result<Manifest, BackupError> {
        let db = self.out.join(DB);
        if self.uncovered {
            let note = cover.ok_or_else(|| {
                BackupError::Refused(format!(
                    "the log's last entries (up to {}) are not covered by a signed checkpoint \
                     yet: the server stopped between a commit and its checkpoint. Start it \
                     once (it signs that checkpoint when it starts), or back up while it serves",
                    self.size
                ))
            })?;
            let copy = Store::open(&db)?;
            let mut batch = copy.batch();
            batch.put_checkpoint(self.size, &note);
            copy.commit(batch)?;
        }
        let copy = Store::open_read_only(&db)?;
        let (size, note) = copy
            .latest_checkpoint()?
            .ok_or_else(|| BackupError::Refused("the store holds no signed checkpoint".into()))?;
        let head = verifier
            .verify(&note)
            .map_err(|e| BackupError::Refused(format!("the latest checkpoint: {e}")))?
            .head;
        let root = tree::root(size, &copy)
            .map_err(|e| BackupError::Refused(format!("the copy's tree: {e}")))?;
        if head.size != self.size || size != self.size || head.root != root {
            return Err(BackupError::Refused(format!(
                "the latest checkpoint (size {}) is not the copy's tree (size {})",
                head.size, self.size
            )));
        }
        drop(copy);
        let created = now_ms();
        let manifest = Manifest {
            format: FORMAT.into(),
            origin: verifier.origin().to_owned(),
            size,
            root: B64.encode(head.root.0),
            checkpoint: String::from_utf8_lossy(&note).into_owned(),
            created_unix_ms: created,
            created_at: humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(created),
            )
            .to_string(),
            hashforum_version: env!("CARGO_PKG_VERSION").into(),
            taken: taken.into(),
        };
        sync_dir_files(&db)?;
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BackupError::Manifest(e.to_string()))?;
        let path = self.out.join(MANIFEST);
        crate::fsutil::write_synced(&path, &text).map_err(io(&path))?;
        if let Some(parent) = self.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(manifest)
    }
}

/// What [`verify`] found.
#[derive(Debug)]
pub struct Verified {
    /// The backup's manifest, which matches its store.
    pub manifest: Manifest,
    /// The replayed log.
    pub report: LogReport,
    /// The latest checkpoint's tree head.
    pub head: TreeHead,
}

/// Checks a backup offline: the manifest names this forum; every entry in the copy is
/// replayed and every author signature checked; every kept checkpoint verifies with the log
/// key and has the root of the replayed tree at its size; the latest one covers every entry
/// and is the manifest's. Opens the copy read-only and writes nothing into it.
///
/// # Errors
/// The first thing that does not verify ([`BackupError::Log`] names a bad entry's index).
pub fn verify(dir: &Path, verifier: &LogVerifier) -> Result<Verified, BackupError> {
    let manifest = read_manifest(dir)?;
    if manifest.origin != verifier.origin() {
        return Err(BackupError::Manifest(format!(
            "the backup is of {:?}, not of {:?}",
            manifest.origin,
            verifier.origin()
        )));
    }
    let store = Store::open_read_only(&dir.join(DB))?;
    let notes: Vec<Vec<u8>> = store
        .checkpoints(0)?
        .into_iter()
        .map(|(_, note)| note)
        .collect();
    let report = verify::log(verifier, verify::stored_entries(&store)?, &notes)?;
    let (size, note) = store
        .latest_checkpoint()?
        .ok_or_else(|| BackupError::Manifest("the store holds no checkpoint".into()))?;
    let head = verifier
        .verify(&note)
        .map_err(|e| BackupError::Manifest(format!("the latest checkpoint: {e}")))?
        .head;
    let matches = note == manifest.checkpoint.as_bytes()
        && size == manifest.size
        && report.entries == manifest.size
        && B64.encode(head.root.0) == manifest.root;
    if !matches {
        return Err(BackupError::Manifest(format!(
            "it says {} entries with root {}, the store holds {} entries and its latest \
             checkpoint is of size {size} with root {}",
            manifest.size,
            manifest.root,
            report.entries,
            B64.encode(head.root.0)
        )));
    }
    Ok(Verified {
        manifest,
        report,
        head,
    })
}

/// Reads a backup's manifest and checks its format.
///
/// # Errors
/// When it is missing, malformed or of another format.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(|e| {
        BackupError::Manifest(format!(
            "{}: {e} (a backup that was not finished has none)",
            path.display()
        ))
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| BackupError::Manifest(format!("{}: {e}", path.display())))?;
    if manifest.format != FORMAT {
        return Err(BackupError::Manifest(format!(
            "format {:?}, not {FORMAT}",
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Makes `out` an empty directory, creating it (and its parents) when missing.
fn prepare(out: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Destination(format!(
                    "{} is not empty: a backup goes into a new directory",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(io(out))
        }
        Err(e) => Err(io(out)(e)),
    }
}

/// Removes what a failed backup wrote into `out` (best effort: the failure is what matters).
fn discard(out: &Path) {
    for name in [MANIFEST, DB] {
        let path = out.join(name);
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// Syncs every file in `dir` (not recursive) and `dir` itself, so that a backup or a restored
/// store survives a crash once it is reported done.
pub(crate) fn sync_dir_files(dir: &Path) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}
