//! Every key and small stored value, built in one place. Integers are big-endian, so that
//! iteration order is numeric order. Pure: no RocksDB.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `entries` | `u64 BE log index` | `LogEntry` bytes, exactly as hashed into the log |
//! | `dedup` | statement digest (32) | `u64 BE log index ++ leaf hash (32)` |
//! | `records` | hash type tag (1) `++` hash bytes | `StoredRecord` (protobuf) |
//! | `members` | member id | `Member` (protobuf) |
//! | `history` | member id `++ 0x00 ++ u64 BE log index` | empty |
//! | `incidents` | incident id | `Incident` (protobuf) |
//! | `meta` | `size` | `u64 BE` number of entries |
//! | `meta` | `pdq_view` | `1` once the `pdq` view was filled from the records |
//! | `meta` | `halted` | why a primary stopped taking writes: `REASON\nmessage` |
//! | `meta` | `verified_copy` | `1` when a follower verified every entry held |
//! | `meta` | `restored` | `u64 BE` size of a restored store, until confirmed |
//! | `about` | `records` key `++ u64 BE` log index | empty: every entry about a hash |
//! | `tree` | `u64 BE` stored hash index (Go `sumdb/tlog` numbering) | 32-byte hash |
//! | `checkpoints` | `u64 BE` tree size | the signed checkpoint note, verbatim |
//! | `pdq` | PDQ hash (32) | its record's status, `pb::RecordStatus` as one byte |

use crate::types::{ContentHash, LeafHash};

/// `meta` key of the log size (number of entries), `u64 BE`.
pub(super) const META_SIZE: &[u8] = b"size";

/// `meta` key set once the `pdq` view has been filled from the records (value `1`).
pub(super) const META_PDQ_VIEW: &[u8] = b"pdq_view";
/// `meta`: present once a follower verified every entry the store holds (a replica's or a
/// sync copy's own writes; a copied data directory has it only after a full replay).
pub(super) const META_VERIFIED_COPY: &[u8] = b"verified_copy";
/// `meta`: why a primary stopped taking writes (its log contradicts a checkpoint its key
/// signed): `REASON\nmessage`. Kept until the data directory is replaced.
pub(super) const META_HALTED: &[u8] = b"halted";
/// `meta`: the size of a store restored from a backup (`u64 BE`), until the operator confirmed
/// that the log key signed no larger checkpoint; a primary over it takes no writes meanwhile.
pub(super) const META_RESTORED: &[u8] = b"restored";

/// The `entries` key of a log index.
pub fn entry(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The `records` key of a hash: its type's tag byte (fixed forever, see `HashType::tag`)
/// followed by the raw bytes.
pub fn record(hash: &ContentHash) -> Vec<u8> {
    let bytes = hash.as_bytes();
    let mut key = Vec::with_capacity(1 + bytes.len());
    key.push(hash.hash_type().tag());
    key.extend_from_slice(bytes);
    key
}

/// The `about` key of the entry at `index` about `hash`: the hash's `records` key, then the
/// index. Record keys of one type have one length, so one hash's keys are never a prefix of
/// another's.
pub fn about(hash: &ContentHash, index: u64) -> Vec<u8> {
    let mut key = record(hash);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The `history` key of the entry at `index` that changed `member`.
pub fn history(member: &str, index: u64) -> Vec<u8> {
    let mut key = history_prefix(member);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The prefix of every `history` key of `member`. Member ids never contain `0x00`, so one
/// member's prefix is never the start of another's key.
pub fn history_prefix(member: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(member.len() + 9);
    key.extend_from_slice(member.as_bytes());
    key.push(0);
    key
}

/// The `dedup` value: where a statement landed.
pub fn dedup_value(index: u64, leaf_hash: &LeafHash) -> [u8; 40] {
    let mut value = [0u8; 40];
    value[..8].copy_from_slice(&index.to_be_bytes());
    value[8..].copy_from_slice(leaf_hash.as_bytes());
    value
}

/// Decodes a `dedup` value, or `None` when it is not 40 bytes.
pub fn decode_dedup_value(v: &[u8]) -> Option<(u64, LeafHash)> {
    let (index, hash) = v.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*index), LeafHash(hash.try_into().ok()?)))
}

/// Decodes a big-endian `u64`, or `None` when it is not 8 bytes.
pub fn decode_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::HashType;

    /// The on-disk tags are frozen: a changed tag would orphan every stored record.
    #[test]
    fn record_keys_are_frozen() {
        let cases = [
            (HashType::Pdq, "f".repeat(64), 1u8),
            (HashType::Md5, "d41d8cd98f00b204e9800998ecf8427e".into(), 2),
            (HashType::Sha1, "a".repeat(40), 3),
            (HashType::Sha256, "b".repeat(64), 4),
            (HashType::UrlMd5, "c".repeat(32), 5),
        ];
        for (t, value, tag) in cases {
            let key = record(&ContentHash::parse(t, &value).unwrap());
            assert_eq!(key[0], tag, "{t}");
            assert_eq!(hex::encode(&key[1..]), value, "{t}");
        }
    }

    #[test]
    fn history_keys_sort_by_index_within_a_member() {
        assert!(history("a", 2) < history("a", 256));
        assert!(history("a", u64::MAX) < history("a.", 0));
        assert!(history("a", 5).starts_with(&history_prefix("a")));
        assert!(!history("ab", 5).starts_with(&history_prefix("a")));
    }

    #[test]
    fn dedup_values_round_trip() {
        let hash = LeafHash([9; 32]);
        let v = dedup_value(300, &hash);
        assert_eq!(decode_dedup_value(&v), Some((300, hash)));
        assert_eq!(decode_dedup_value(&v[..39]), None);
        assert_eq!(decode_dedup_value(&[v.as_slice(), &[0]].concat()), None);
    }
}
