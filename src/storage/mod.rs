//! RocksDB storage: column families, key layouts and the only code that touches RocksDB.
//!
//! Writes happen only in the sequencer, one synced `WriteBatch` per group commit, so a crash
//! leaves every entry of a group with all of its view updates, or none of them.
//! Integers in keys are big-endian so that iteration order is numeric order.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch,
    WriteOptions, DB,
};

/// `u64 BE log index` → `LogEntry` bytes, exactly as hashed into the log.
pub const CF_ENTRIES: &str = "entries";
/// `statement digest (32)` → `u64 BE log index ++ leaf hash (32)`: resubmission detection.
pub const CF_DEDUP: &str = "dedup";
/// `hash type tag (1) ++ hash bytes` → `StoredRecord` (protobuf): the hash-record view.
pub const CF_RECORDS: &str = "records";
/// `member id` → `Member` (protobuf): the membership view.
pub const CF_MEMBERS: &str = "members";
/// Single values, under the `META_*` keys.
pub const CF_META: &str = "meta";
/// `member id ++ 0x00 ++ u64 BE log index` → empty: the entries that changed each member.
pub const CF_HISTORY: &str = "history";

/// `meta` key of the log size (number of entries), `u64 BE`.
pub const META_SIZE: &[u8] = b"size";

const ALL_CFS: [&str; 6] = [
    CF_ENTRIES, CF_DEDUP, CF_RECORDS, CF_MEMBERS, CF_META, CF_HISTORY,
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

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

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

    fn cf(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        // Every name in ALL_CFS is created by `open`, and only those names are passed here.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// Reads one value.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Reads many values at once, in the order of `keys`.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn multi_get<K: AsRef<[u8]>>(
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

    /// [`Store::multi_get`] for keys already in ascending byte order, which spares RocksDB its
    /// own sort.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn multi_get_sorted<K: AsRef<[u8]>>(
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

    /// All key/value pairs of a (small) column family, in key order.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn scan(&self, cf: &'static str) -> Result<Vec<KeyValue>, StorageError> {
        self.db
            .iterator_cf(self.cf(cf), rocksdb::IteratorMode::Start)
            .map(|r| {
                let (k, v) = r?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    /// The keys of a column family that start with `prefix`, in key order.
    ///
    /// # Errors
    /// When RocksDB fails.
    pub fn keys_with_prefix(
        &self,
        cf: &'static str,
        prefix: &[u8],
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let mode = rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf), mode) {
            let (key, _) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push(key.to_vec());
        }
        Ok(out)
    }

    /// The number of entries in the log.
    ///
    /// # Errors
    /// When RocksDB fails or the stored size is malformed.
    pub fn size(&self) -> Result<u64, StorageError> {
        match self.get(CF_META, META_SIZE)? {
            None => Ok(0),
            Some(v) => decode_u64(CF_META, &v),
        }
    }

    /// Starts a batch of writes, committed atomically by [`Store::commit`].
    pub fn batch(&self) -> Batch {
        Batch {
            store: self.clone(),
            batch: WriteBatch::default(),
        }
    }

    /// Writes a batch atomically and durably (fsync of the write-ahead log).
    ///
    /// # Errors
    /// When RocksDB fails; then nothing of the batch was written.
    pub fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        Ok(self.db.write_opt(batch.batch, &wo)?)
    }
}

/// Writes collected for one atomic commit.
pub struct Batch {
    store: Store,
    batch: WriteBatch,
}

impl Batch {
    /// Adds a put.
    pub fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]) {
        self.batch.put_cf(self.store.cf(cf), key, value);
    }
}

/// Decodes a big-endian `u64` value.
///
/// # Errors
/// When the value is not 8 bytes.
pub fn decode_u64(cf: &'static str, v: &[u8]) -> Result<u64, StorageError> {
    let arr: [u8; 8] = v.try_into().map_err(|_| StorageError::Corrupt {
        cf,
        reason: format!("expected 8 bytes, got {}", v.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}
