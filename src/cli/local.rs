//! A local copy of the registry, for commands that read it offline (`export --local DIR`):
//! the database that `hashforum sync --out DIR` keeps in `DIR/db`, or a server's data
//! directory, stopped or copied.
//!
//! Read-only: nothing here writes to the copy, so a copy on read-only media works, and so does
//! a data directory beside the server that is still running on it (RocksDB's read-only mode
//! takes no lock; it reads what was written when it opened).

use std::path::Path;

use anyhow::Context;

use crate::storage::Store;

/// Opens a local copy of the registry read-only: `dir/db` when that directory exists, else
/// `dir` itself (a server's data directory).
///
/// # Errors
/// When the directory does not exist, holds no RocksDB database, or holds one that is not a
/// registry's or that RocksDB cannot open; each message names the path.
pub fn open_local(dir: &Path) -> anyhow::Result<Store> {
    let nested = dir.join("db");
    let db = if nested.is_dir() {
        nested
    } else {
        dir.to_owned()
    };
    if !db.is_dir() {
        anyhow::bail!("{}: no such directory", db.display());
    }
    // RocksDB's marker file: without it the directory is empty or something else.
    if !db.join("CURRENT").is_file() {
        anyhow::bail!(
            "{} holds no registry database (expected DIR/db, as `hashforum sync --out DIR` \
             writes it, or a server's data directory)",
            db.display()
        );
    }
    Store::open_read_only(&db).with_context(|| format!("opening {} read-only", db.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(dir: &Path) -> String {
        format!("{:#}", open_local(dir).err().expect("refused"))
    }

    /// A missing or empty directory, or a foreign RocksDB database, is refused with its path.
    #[test]
    fn refuses_what_is_not_a_registry_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nowhere");
        assert_eq!(
            error(&missing),
            format!("{}: no such directory", missing.display())
        );
        let empty = error(tmp.path());
        assert!(
            empty.starts_with(&format!(
                "{} holds no registry database",
                tmp.path().display()
            )),
            "{empty}"
        );
        let foreign = tmp.path().join("foreign");
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        drop(rocksdb::DB::open(&opts, &foreign).unwrap());
        let msg = error(&foreign);
        assert!(
            msg.starts_with(&format!("opening {} read-only: ", foreign.display()))
                && msg.contains("not a registry database"),
            "{msg}"
        );
    }

    /// `DIR/db` is preferred to `DIR`; a data directory itself opens too.
    #[test]
    fn opens_dir_db_or_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        drop(Store::open(&data).unwrap());
        assert_eq!(open_local(&data).unwrap().size().unwrap(), 0);
        drop(Store::open(&tmp.path().join("db")).unwrap());
        assert_eq!(open_local(tmp.path()).unwrap().size().unwrap(), 0);
    }
}
