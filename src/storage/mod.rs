//! RocksDB storage: column families, key layouts and the only code that touches RocksDB.
//!
//! Callers read and write typed things (log entries, records, members, receipts); column
//! families and keys never leave this module (see [`keys`]).
//!
//! Writes happen only in the sequencer, one synced `WriteBatch` per group commit, so a crash
//! leaves every entry of a group with all of its view updates, or none of them.
//! Integers in keys are big-endian so that iteration order is numeric order.

use std::path::Path;
use std::sync::Arc;

use crate::log::tree::{Hash, HashReader};
use crate::types::{ContentHash, HashType, LeafHash, StatementDigest};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch,
    WriteOptions, DB,
};

pub mod keys;

/// Log index → leaf bytes.
const CF_ENTRIES: &str = "entries";
/// Statement digest → where it landed: resubmission detection.
const CF_DEDUP: &str = "dedup";
/// Hash → `StoredRecord`: the hash-record view.
const CF_RECORDS: &str = "records";
/// Member id → `Member`: the membership view.
const CF_MEMBERS: &str = "members";
/// Single values, under the `keys::META_*` keys.
const CF_META: &str = "meta";
/// Member and log index → nothing: the entries that changed each member.
const CF_HISTORY: &str = "history";
/// Stored hash index → 32-byte hash: the Merkle tree (`log::tree`).
const CF_TREE: &str = "tree";
/// Tree size → signed checkpoint note: every checkpoint the log signed.
const CF_CHECKPOINTS: &str = "checkpoints";

/// Hash and log index → nothing: every entry about each hash (provenance).
const CF_ABOUT: &str = "about";
/// Incident id → `Incident`: the incident view.
const CF_INCIDENTS: &str = "incidents";
/// PDQ hash (32 bytes) → its record's status (1 byte): what the matching index loads.
const CF_PDQ: &str = "pdq";

/// Every column family; `keys` documents their layouts.
const ALL_CFS: [&str; 11] = [
    CF_ENTRIES,
    CF_DEDUP,
    CF_RECORDS,
    CF_MEMBERS,
    CF_META,
    CF_HISTORY,
    CF_TREE,
    CF_CHECKPOINTS,
    CF_INCIDENTS,
    CF_ABOUT,
    CF_PDQ,
];

/// A storage failure. Never the caller's fault: mapped to `INTERNAL` and logged.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored value did not decode: the database is corrupt or from another version.
    #[error("corrupt value in {cf}: {reason}")]
    Corrupt {
        /// The column family.
        cf: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl StorageError {
    /// Whether the file system ran out of space (`ENOSPC`, or RocksDB's own space limit).
    ///
    /// RocksDB then keeps the database stopped for writes (a "hard error") and recovers it by
    /// itself once there is room again: it checks the free space every 5 seconds, waits until
    /// at least its largest write buffer (64 MiB) is free, flushes its memtables and switches
    /// to a new write-ahead log. A failed write never reached the memtables, so after that
    /// recovery it is gone; only a crash before it can bring it back, from the old log, and
    /// then nothing was written after it. The sequencer relies on this to survive a full disk
    /// (`sequencer`, *A full disk*).
    pub fn is_no_space(&self) -> bool {
        // RocksDB's C API gives only the status text: "IO error: No space left on device..."
        // for the `kNoSpace` subcode, whatever the file system's own wording.
        matches!(self, Self::Rocks(e) if e.as_ref().contains("No space left on device"))
    }
}

/// The registry's RocksDB database.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    ///
    /// # Errors
    /// When RocksDB cannot open it, for example because another process holds its lock.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let cache = Cache::new_lru_cache(256 << 20);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_compression_type(DBCompressionType::Lz4);
        let cfs = ALL_CFS.map(|name| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            table.set_cache_index_and_filter_blocks(true);
            let mut cf_opts = Options::default();
            cf_opts.set_compression_type(DBCompressionType::Lz4);
            cf_opts.set_block_based_table_factory(&table);
            if name == CF_RECORDS || name == CF_DEDUP {
                // Point lookups dominate; a memtable bloom filter speeds up misses.
                cf_opts.set_memtable_prefix_bloom_ratio(0.1);
                cf_opts.set_memtable_whole_key_filtering(true);
            }
            ColumnFamilyDescriptor::new(name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Opens an existing database for reading only, beside a running server or on a copy:
    /// what offline verification reads.
    ///
    /// # Errors
    /// When there is no database in `dir`, RocksDB cannot open it, or it is not a registry's
    /// (it lacks one of the column families that every version has).
    pub fn open_read_only(dir: &Path) -> Result<Self, StorageError> {
        let mut opts = Options::default();
        // Every table file is opened at open and held (RocksDB's default, said here because
        // reading beside a server relies on it: a file compaction deletes stays readable).
        opts.set_max_open_files(-1);
        // A database written by an earlier version lacks the newest views (`pdq`), which a
        // server creates when it next opens it; what reads them needs a writable store.
        let present = DB::list_cf(&opts, dir)?;
        // Every version has these: a database without one is not a registry's (and `cf` would
        // panic at the first read of it).
        let first = [CF_ENTRIES, CF_DEDUP, CF_RECORDS, CF_MEMBERS, CF_META];
        if let Some(missing) = first.iter().find(|cf| !present.iter().any(|p| p == *cf)) {
            return Err(corrupt(
                missing,
                "not a registry database: no such column family",
            ));
        }
        let cfs: Vec<&str> = ALL_CFS
            .into_iter()
            .filter(|cf| present.iter().any(|p| p == cf))
            .collect();
        // Beside a running server, a write-ahead log or SST file listed in the MANIFEST can
        // be deleted (after a flush or a compaction) before this open reaches it. Once open,
        // every file is held open (`max_open_files` is -1), so reads are safe; the open
        // itself is retried from a fresh MANIFEST.
        let mut attempt = 0;
        loop {
            match DB::open_cf_for_read_only(&opts, dir, &cfs, false) {
                Ok(db) => return Ok(Self { db: Arc::new(db) }),
                Err(e) if attempt < READ_ONLY_OPEN_RETRIES && vanished(&e) => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// RocksDB's key figures, for metrics: `(property, column family, value)`, the column
    /// family empty for database-wide figures. Properties RocksDB does not report are left out.
    pub fn figures(&self) -> Vec<(&'static str, &'static str, u64)> {
        // Per column family: memory, disk, and how far compaction is behind.
        const PER_CF: [&str; 6] = [
            "cur-size-all-mem-tables",
            "num-immutable-mem-table",
            "estimate-num-keys",
            "total-sst-files-size",
            "estimate-pending-compaction-bytes",
            "num-files-at-level0",
        ];
        // Shared by every column family (one block cache, one set of background jobs).
        const WIDE: [&str; 5] = [
            "block-cache-usage",
            "block-cache-pinned-usage",
            "num-running-compactions",
            "num-running-flushes",
            "background-errors",
        ];
        let mut figures = Vec::new();
        let mut read =
            |cf: &'static str, handle: &rocksdb::ColumnFamily, property: &'static str| {
                let name = format!("rocksdb.{property}");
                if let Ok(Some(value)) = self.db.property_int_value_cf(handle, name.as_str()) {
                    figures.push((property, cf, value));
                }
            };
        for cf in ALL_CFS {
            if let Some(handle) = self.db.cf_handle(cf) {
                for property in PER_CF {
                    read(cf, handle, property);
                }
            }
        }
        if let Some(handle) = self.db.cf_handle(CF_META) {
            for property in WIDE {
                read("", handle, property);
            }
        }
        figures
    }

    fn cf(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        // Every name in ALL_CFS is created by `open`, and only those names are passed here. A
        // read-only store of an older version may lack the newest (`pdq`): only the server,
        // on a writable store, reads those.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// The number of entries in the log.
    ///
    /// # Errors
    /// When RocksDB fails or the stored size is malformed.
    pub fn size(&self) -> Result<u64, StorageError> {
        match self.db.get_cf(self.cf(CF_META), keys::META_SIZE)? {
            None => Ok(0),
            Some(v) => keys::decode_u64(&v).ok_or_else(|| corrupt(CF_META, "size is not 8 bytes")),
        }
    }

    /// The leaf bytes of the entry at `index`.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(CF_ENTRIES), keys::entry(index))?)
    }

    /// The leaf bytes of the entries at `indexes`, in that order.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn entries(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let keys: Vec<[u8; 8]> = indexes.iter().map(|&i| keys::entry(i)).collect();
        self.multi_get(CF_ENTRIES, &keys)
    }

    /// Where each statement landed, by digest, in the order of `digests` (which must be
    /// sorted: the caller sorts once for the reads and the writes).
    ///
    /// # Errors
    /// When RocksDB fails or a value is malformed.
    pub fn landed(
        &self,
        digests: &[StatementDigest],
    ) -> Result<Vec<Option<(u64, LeafHash)>>, StorageError> {
        let keys: Vec<&[u8; 32]> = digests.iter().map(StatementDigest::as_bytes).collect();
        self.multi_get_sorted(CF_DEDUP, &keys)?
            .into_iter()
            .map(|v| match v {
                None => Ok(None),
                Some(v) => keys::decode_dedup_value(&v)
                    .map(Some)
                    .ok_or_else(|| corrupt(CF_DEDUP, "a value is not 40 bytes")),
            })
            .collect()
    }

    /// The stored records of `hashes`, in that order. Keys are read in sorted order, which
    /// spares RocksDB its own sort.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn records(&self, hashes: &[&ContentHash]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let keys: Vec<Vec<u8>> = hashes.iter().map(|h| keys::record(h)).collect();
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]));
        let sorted: Vec<&[u8]> = order.iter().map(|&i| keys[i].as_slice()).collect();
        let mut out = vec![None; keys.len()];
        for (i, value) in order
            .into_iter()
            .zip(self.multi_get_sorted(CF_RECORDS, &sorted)?)
        {
            out[i] = value;
        }
        Ok(out)
    }

    /// Every stored member, in id order.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn members(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        self.db
            .iterator_cf(self.cf(CF_MEMBERS), rocksdb::IteratorMode::Start)
            .map(|r| Ok(r?.1.to_vec()))
            .collect()
    }

    /// Every stored incident, in id order.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn incidents(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        self.db
            .iterator_cf(self.cf(CF_INCIDENTS), rocksdb::IteratorMode::Start)
            .map(|r| Ok(r?.1.to_vec()))
            .collect()
    }

    /// Every PDQ hash with its record's status (`pb::RecordStatus` as a byte), in hash order:
    /// what the matching index is built from. Read in two halves on two threads.
    ///
    /// # Errors
    /// When RocksDB fails or a value is malformed.
    pub fn pdq_view(&self) -> Result<Vec<([u8; 32], u8)>, StorageError> {
        let half = |from: &[u8], below: Option<&[u8]>| {
            let mode = rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward);
            let mut out = Vec::new();
            for item in self.db.iterator_cf(self.cf(CF_PDQ), mode) {
                let (key, value) = item?;
                if below.is_some_and(|b| key.as_ref() >= b) {
                    break;
                }
                let (Ok(bits), [status]) = (<[u8; 32]>::try_from(key.as_ref()), value.as_ref())
                else {
                    return Err(corrupt(CF_PDQ, "not a 32-byte hash and a status byte"));
                };
                out.push((bits, *status));
            }
            Ok(out)
        };
        let (low, high) = rayon::join(|| half(&[], Some(&[0x80])), || half(&[0x80], None));
        let mut all = low?;
        all.extend(high?);
        Ok(all)
    }

    /// Whether the PDQ view must be filled from the hash records: it has not been filled in
    /// this database yet (one written before the view existed, or never served).
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn pdq_view_missing(&self) -> Result<bool, StorageError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_META), keys::META_PDQ_VIEW)?
            .is_none())
    }

    /// Why a primary over this store stopped taking writes, if it did: its reason code and
    /// message. Kept until the data directory is replaced (docs/replicas.md).
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn halted(&self) -> Result<Option<(String, String)>, StorageError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_META), keys::META_HALTED)?
            .map(|v| {
                let text = String::from_utf8_lossy(&v).into_owned();
                match text.split_once('\n') {
                    Some((reason, message)) => (reason.to_owned(), message.to_owned()),
                    None => (text, String::new()),
                }
            }))
    }

    /// The size this store had when it was restored from a backup, while the operator has not
    /// yet confirmed that the log key signed no larger checkpoint (docs/operations.md).
    ///
    /// # Errors
    /// When RocksDB fails or the value is malformed.
    pub fn restored(&self) -> Result<Option<u64>, StorageError> {
        match self.db.get_cf(self.cf(CF_META), keys::META_RESTORED)? {
            None => Ok(None),
            Some(v) => keys::decode_u64(&v)
                .map(Some)
                .ok_or_else(|| corrupt(CF_META, "restored is not 8 bytes")),
        }
    }

    /// Writes a consistent copy of the database to `dir`, which must not exist (RocksDB's
    /// checkpoint): the write-ahead log is synced and the memtables flushed first, so the copy
    /// holds every committed batch. SST files are hard-linked when `dir` is on the same file
    /// system, copied otherwise.
    ///
    /// # Errors
    /// When RocksDB fails, for example because `dir` exists.
    pub fn copy_to(&self, dir: &Path) -> Result<(), StorageError> {
        self.db.flush_wal(true)?;
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// Whether a follower verified every entry this store holds: its own writes, or a full
    /// replay of a copied data directory.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn verified_copy(&self) -> Result<bool, StorageError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_META), keys::META_VERIFIED_COPY)?
            .is_some())
    }

    /// Calls `each` with every PDQ hash record (hash, stored record bytes), in hash order: for
    /// filling the PDQ view.
    ///
    /// # Errors
    /// When RocksDB fails, a key is malformed, or `each` fails.
    pub fn each_pdq_record(
        &self,
        mut each: impl FnMut(&[u8; 32], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.each_record_of(HashType::Pdq, |bits, record| {
            // `each_record_of` checked the length: a PDQ key holds 32 bytes.
            let bits = <[u8; 32]>::try_from(bits)
                .map_err(|_| corrupt(CF_RECORDS, "a PDQ key is not 32 bytes"))?;
            each(&bits, record)
        })
    }

    /// Calls `each` with every hash record of `hash_type` (the hash's raw bytes, the stored
    /// record bytes), in hash order, one at a time from a RocksDB iterator: nothing is
    /// collected. Called for each type of `HashType::ALL` in turn, it visits every record in
    /// key order.
    ///
    /// # Errors
    /// When RocksDB fails, a key is not as long as the type's hashes, or `each` fails.
    pub fn each_record_of<E: From<StorageError>>(
        &self,
        hash_type: HashType,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let tag = [hash_type.tag()];
        let mode = rocksdb::IteratorMode::From(&tag, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(self.cf(CF_RECORDS), mode) {
            let (key, value) = item.map_err(StorageError::from)?;
            let Some(bytes) = key.strip_prefix(&tag) else {
                break;
            };
            if bytes.len() != hash_type.byte_len() {
                let reason = format!("a {hash_type} key is not {} bytes", hash_type.byte_len());
                return Err(corrupt(CF_RECORDS, &reason).into());
            }
            each(bytes, &value)?;
        }
        Ok(())
    }

    /// The indexes of the entries about `hash` from index `from` on and below `below`, in log
    /// order, at most `limit` of them.
    ///
    /// # Errors
    /// When RocksDB fails or a key is malformed.
    pub fn about(
        &self,
        hash: &ContentHash,
        from: u64,
        below: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StorageError> {
        let prefix = keys::record(hash);
        let start = keys::about(hash, from);
        let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_ABOUT), mode) {
            let (key, _) = item?;
            let Some(index) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let index = keys::decode_u64(index)
                .ok_or_else(|| corrupt(CF_ABOUT, "a key does not end in a log index"))?;
            if index >= below || out.len() == limit {
                break;
            }
            out.push(index);
        }
        Ok(out)
    }

    /// The indexes of the entries that changed `member`, in log order.
    ///
    /// # Errors
    /// When RocksDB fails or a key is malformed.
    pub fn history(&self, member: &str) -> Result<Vec<u64>, StorageError> {
        let prefix = keys::history_prefix(member);
        let mode = rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_HISTORY), mode) {
            let (key, _) = item?;
            let Some(index) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            out.push(
                keys::decode_u64(index)
                    .ok_or_else(|| corrupt(CF_HISTORY, "a key does not end in a log index"))?,
            );
        }
        Ok(out)
    }

    /// The leaf bytes of the entries `from..to`, in order; stops early at a missing entry.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn entry_range(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        let start = keys::entry(from);
        let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for (next, item) in (from..to).zip(self.db.iterator_cf(self.cf(CF_ENTRIES), mode)) {
            let (key, value) = item?;
            if keys::decode_u64(&key) != Some(next) {
                break;
            }
            out.push(value.to_vec());
        }
        Ok(out)
    }

    /// The tree's stored hashes at `indexes` (see `log::tree`), in that order.
    ///
    /// # Errors
    /// When RocksDB fails, or a hash is missing or not 32 bytes.
    pub fn tree_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StorageError> {
        let keys: Vec<[u8; 8]> = indexes.iter().map(|i| i.to_be_bytes()).collect();
        let sorted = keys.windows(2).all(|w| w[0] <= w[1]);
        let values = if sorted {
            self.multi_get_sorted(CF_TREE, &keys)?
        } else {
            self.multi_get(CF_TREE, &keys)?
        };
        values
            .into_iter()
            .zip(indexes)
            .map(|(v, i)| {
                v.and_then(|v| <[u8; 32]>::try_from(v).ok())
                    .map(Hash)
                    .ok_or_else(|| corrupt(CF_TREE, &format!("stored hash {i} is missing")))
            })
            .collect()
    }

    /// The checkpoint signed at tree size `size`, if one was.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_CHECKPOINTS), size.to_be_bytes())?)
    }

    /// The checkpoint of the largest size of at most `size` that the log kept, and its size.
    ///
    /// # Errors
    /// When RocksDB fails or a key is malformed.
    pub fn checkpoint_at_most(&self, size: u64) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let start = size.to_be_bytes();
        let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Reverse);
        let mut iter = self.db.iterator_cf(self.cf(CF_CHECKPOINTS), mode);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (key, note) = item?;
                let size = keys::decode_u64(&key)
                    .ok_or_else(|| corrupt(CF_CHECKPOINTS, "a key is not 8 bytes"))?;
                Ok(Some((size, note.to_vec())))
            }
        }
    }

    /// The latest signed checkpoint and its size.
    ///
    /// # Errors
    /// When RocksDB fails or a key is malformed.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        self.checkpoint_at_most(u64::MAX)
    }

    /// Every signed checkpoint of size `from` or more, in size order.
    ///
    /// # Errors
    /// When RocksDB fails or a key is malformed.
    pub fn checkpoints(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let start = from.to_be_bytes();
        let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
        self.db
            .iterator_cf(self.cf(CF_CHECKPOINTS), mode)
            .map(|item| {
                let (key, note) = item?;
                let size = keys::decode_u64(&key)
                    .ok_or_else(|| corrupt(CF_CHECKPOINTS, "a key is not 8 bytes"))?;
                Ok((size, note.to_vec()))
            })
            .collect()
    }

    /// Flushes every memtable to SST files and waits until no flush or compaction is running
    /// or queued, at most `timeout`: afterwards reads come from SST files (through the block
    /// cache) and no background work competes with them. For benchmarks, with no writes
    /// meanwhile (new writes would keep it waiting).
    ///
    /// # Errors
    /// When RocksDB fails or the timeout passes.
    pub fn settle(&self, timeout: std::time::Duration) -> Result<(), StorageError> {
        let mut opts = rocksdb::WaitForCompactOptions::default();
        opts.set_flush(true);
        opts.set_timeout(u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX));
        Ok(self.db.wait_for_compact(&opts)?)
    }

    /// Where the hash records are: SST files per level and entries still in memtables.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn records_shape(&self) -> Result<LsmShape, StorageError> {
        let cf = self.cf(CF_RECORDS);
        let int = |name: &str| -> Result<u64, StorageError> {
            Ok(self.db.property_int_value_cf(cf, name)?.unwrap_or(0))
        };
        let files_per_level = (0..7)
            .map(|level| int(&format!("rocksdb.num-files-at-level{level}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LsmShape {
            files_per_level,
            sst_bytes: int("rocksdb.total-sst-files-size")?,
            memtable_entries: int("rocksdb.num-entries-active-mem-table")?
                + int("rocksdb.num-entries-imm-mem-tables")?,
            block_cache_bytes: int("rocksdb.block-cache-capacity")?,
        })
    }

    /// Reads many values at once, in the order of `keys`.
    fn multi_get<K: AsRef<[u8]>>(
        &self,
        cf: &'static str,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.db
            .batched_multi_get_cf(self.cf(cf), keys.iter().map(AsRef::as_ref), false)
            .into_iter()
            .map(|r| Ok(r?.map(|v| v.to_vec())))
            .collect()
    }

    /// [`Store::multi_get`] for keys already in ascending byte order.
    fn multi_get_sorted<K: AsRef<[u8]>>(
        &self,
        cf: &'static str,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        debug_assert!(keys.windows(2).all(|w| w[0].as_ref() <= w[1].as_ref()));
        self.db
            .batched_multi_get_cf(self.cf(cf), keys.iter().map(AsRef::as_ref), true)
            .into_iter()
            .map(|r| Ok(r?.map(|v| v.to_vec())))
            .collect()
    }

    /// Starts a batch of writes, committed atomically by [`Store::commit`].
    pub fn batch(&self) -> Batch {
        self.batch_with_capacity(0)
    }

    /// Starts a batch whose buffer holds `bytes` before it must grow: a group commit's batch
    /// runs to megabytes, and each doubling copies all of it.
    pub fn batch_with_capacity(&self, bytes: usize) -> Batch {
        Batch {
            store: self.clone(),
            batch: WriteBatch::with_capacity_bytes(bytes),
        }
    }

    /// Writes a batch atomically and durably (fsync of the write-ahead log).
    ///
    /// # Errors
    /// When RocksDB fails. Then the batch may or may not be in the write-ahead log, and
    /// RocksDB refuses further writes: the caller must stop writing (see `sequencer`), unless
    /// the disk is full ([`StorageError::is_no_space`]).
    pub fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        Ok(self.db.write_opt(batch.batch, &wo)?)
    }
}

/// Where one column family's data is (see [`Store::records_shape`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsmShape {
    /// SST files at each level, L0 first. Flushes write L0; only compaction writes the levels
    /// below it, so files there mean that compaction ran.
    pub files_per_level: Vec<u64>,
    /// The SST files' total size.
    pub sst_bytes: u64,
    /// Entries in memtables, not yet flushed.
    pub memtable_entries: u64,
    /// The block cache's capacity (shared by every column family).
    pub block_cache_bytes: u64,
}

/// Writes collected for one atomic commit. Callers write keys in ascending order within each
/// column family where they can: consecutive memtable inserts then land next to each other,
/// which RocksDB's skip list does much faster than inserts at random places.
pub struct Batch {
    store: Store,
    batch: WriteBatch,
}

impl Batch {
    fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]) {
        self.batch.put_cf(self.store.cf(cf), key, value);
    }

    /// Appends the leaf at `index`.
    pub fn put_entry(&mut self, index: u64, leaf: &[u8]) {
        self.put(CF_ENTRIES, &keys::entry(index), leaf);
    }

    /// Records where a statement landed.
    pub fn put_landed(&mut self, digest: &StatementDigest, index: u64, leaf_hash: &LeafHash) {
        self.put(
            CF_DEDUP,
            digest.as_bytes(),
            &keys::dedup_value(index, leaf_hash),
        );
    }

    /// Writes a hash record.
    pub fn put_record(&mut self, hash: &ContentHash, record: &[u8]) {
        self.put(CF_RECORDS, &keys::record(hash), record);
    }

    /// Writes a member and notes the entry at `index` in its history.
    pub fn put_member(&mut self, member_id: &str, member: &[u8], index: u64) {
        self.put(CF_MEMBERS, member_id.as_bytes(), member);
        self.put(CF_HISTORY, &keys::history(member_id, index), &[]);
    }

    /// Writes the tree's stored hashes from stored index `first` on (see `log::tree`).
    pub fn put_tree_hashes(&mut self, first: u64, hashes: &[Hash]) {
        for (index, hash) in (first..).zip(hashes) {
            self.put(CF_TREE, &index.to_be_bytes(), &hash.0);
        }
    }

    /// Keeps a signed checkpoint.
    pub fn put_checkpoint(&mut self, size: u64, note: &[u8]) {
        self.put(CF_CHECKPOINTS, &size.to_be_bytes(), note);
    }

    /// Notes that the entry at `index` is about `hash`.
    pub fn put_about(&mut self, hash: &ContentHash, index: u64) {
        self.put(CF_ABOUT, &keys::about(hash, index), &[]);
    }

    /// Writes an incident.
    pub fn put_incident(&mut self, incident_id: &str, incident: &[u8]) {
        self.put(CF_INCIDENTS, incident_id.as_bytes(), incident);
    }

    /// Notes that the PDQ view has been filled from the hash records (the last batch of the
    /// filling), after which the sequencer keeps it current.
    pub fn put_pdq_view_filled(&mut self) {
        self.put(CF_META, keys::META_PDQ_VIEW, &[1]);
    }

    /// Records why the primary stopped taking writes (see [`Store::halted`]).
    pub fn put_halted(&mut self, reason: &str, message: &str) {
        self.put(
            CF_META,
            keys::META_HALTED,
            format!("{reason}\n{message}").as_bytes(),
        );
    }

    /// Marks the store restored at `size` (see [`Store::restored`]).
    pub fn put_restored(&mut self, size: u64) {
        self.put(CF_META, keys::META_RESTORED, &size.to_be_bytes());
    }

    /// Unmarks a restored store: the operator confirmed it.
    pub fn clear_restored(&mut self) {
        self.batch
            .delete_cf(self.store.cf(CF_META), keys::META_RESTORED);
    }

    /// Unmarks a verified copy: a primary's own writes were not made by a follower.
    pub fn clear_verified_copy(&mut self) {
        self.batch
            .delete_cf(self.store.cf(CF_META), keys::META_VERIFIED_COPY);
    }

    /// Marks the store a verified copy (see [`Store::verified_copy`]).
    pub fn put_verified_copy(&mut self) {
        self.put(CF_META, keys::META_VERIFIED_COPY, &[1]);
    }

    /// Sets the status of a PDQ hash in the PDQ view.
    pub fn put_pdq(&mut self, bits: &[u8; 32], status: u8) {
        self.put(CF_PDQ, bits, &[status]);
    }

    /// Sets the log size.
    pub fn put_size(&mut self, size: u64) {
        self.put(CF_META, keys::META_SIZE, &size.to_be_bytes());
    }
}

/// The store's tree hashes, for roots and proofs.
impl HashReader for Store {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.tree_hashes(indexes).map_err(|e| {
            tracing::error!(error = %e, "reading tree hashes");
            tlog_tiles::Error::IndexesNotInTree
        })
    }
}

/// How often a read-only open is tried again after a file vanished under it.
const READ_ONLY_OPEN_RETRIES: u64 = 10;

/// Whether RocksDB failed because a file it was opening was deleted meanwhile.
fn vanished(e: &rocksdb::Error) -> bool {
    e.kind() == rocksdb::ErrorKind::IOError && e.as_ref().contains("No such file or directory")
}

fn corrupt(cf: &'static str, reason: &str) -> StorageError {
    StorageError::Corrupt {
        cf,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `verify --data` beside a live server: a read-only store opened while the server writes,
    /// flushes and compacts opens, and reads everything it saw at open, although compaction
    /// deletes the SST files it opened from.
    #[test]
    fn a_read_only_store_opens_and_reads_beside_a_writer_that_compacts() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut index = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut batch = store.batch();
                    for _ in 0..500 {
                        batch.put_entry(index, &[7u8; 200]);
                        index += 1;
                    }
                    store.commit(batch).expect("commit");
                    if index % 2_500 == 0 {
                        let cf = store.cf(CF_ENTRIES);
                        store.db.flush_cf(cf).expect("flush");
                        if index % 5_000 == 0 {
                            store.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
                        }
                    }
                }
                index
            })
        };
        let mut opened = 0;
        let mut failures = Vec::new();
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(4) {
            match Store::open_read_only(dir.path()) {
                Ok(ro) => {
                    opened += 1;
                    let cf = ro.cf(CF_ENTRIES);
                    let mut n = 0u64;
                    for item in ro.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
                        match item {
                            Ok(_) => n += 1,
                            Err(e) => {
                                failures.push(format!("read after {n}: {e}"));
                                break;
                            }
                        }
                    }
                }
                Err(e) => failures.push(format!("open: {e}")),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.join().expect("writer");
        assert!(written > 10_000, "the writer wrote {written}");
        assert!(opened > 5, "opened {opened} times");
        assert!(
            failures.is_empty(),
            "{} of {} failed: {:?}",
            failures.len(),
            opened + failures.len(),
            &failures[..failures.len().min(5)]
        );
    }
}
