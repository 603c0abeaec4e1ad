//! The log's leaves: their exact bytes, their hashes, and reading them back.
//!
//! A leaf is the protobuf encoding of `hashforum.v1.LogEntry`, written once by the sequencer
//! and never re-encoded (docs/signed-bytes.md §5):
//!
//! ```text
//! leaf      = LogEntry { envelope = 1 (verbatim), sequenced_at_unix_ms = 2, relayed_by = 3 }
//! leaf hash = SHA-256(0x00 || leaf)                                       (RFC 6962 §2.1)
//! ```
//!
//! Pure: no storage, no I/O. Beside it, also pure and shared by the server, the CLI's `verify`
//! and replicas: the Merkle tree ([`tree`]), checkpoints ([`checkpoint`]), witnesses'
//! cosignatures of them ([`cosignature`]) and receipts ([`proof`]).

pub mod checkpoint;
pub mod cosignature;
pub mod proof;
pub mod tree;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::pb;
use crate::types::LeafHash;

/// Milliseconds since the Unix epoch by this machine's clock: what entries are stamped with
/// (the sequencer never lets the log's time go backwards) and admin statements are judged by.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The start of a leaf: a `LogEntry` with only its `envelope` field (1), which protobuf
/// encodes first. [`leaf_bytes`] appends the rest.
pub fn leaf_prefix(envelope: &pb::Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(envelope.encoded_len() + 4);
    prost::encoding::message::encode(1, envelope, &mut out);
    out
}

/// The leaf: exactly the protobuf encoding of
/// `LogEntry { envelope, sequenced_at_unix_ms: time_ms, relayed_by }`, from the envelope's
/// [`leaf_prefix`]. `relayed_by` is the admin that submitted another member's statement.
pub fn leaf_bytes(prefix: &[u8], time_ms: u64, relayed_by: Option<&str>) -> Vec<u8> {
    let relayer_len = relayed_by.map_or(0, |r| r.len() + 2);
    let mut leaf = Vec::with_capacity(prefix.len() + 11 + relayer_len);
    leaf.extend_from_slice(prefix);
    push_suffix(&mut leaf, time_ms, relayed_by);
    leaf
}

/// The leaf's bytes after its envelope: `leaf = leaf_prefix(envelope) ++ suffix`. Receipts
/// carry it, so that the holder of the envelope can rebuild the exact leaf.
pub fn leaf_suffix(time_ms: u64, relayed_by: Option<&str>) -> Vec<u8> {
    let mut suffix = Vec::with_capacity(16);
    push_suffix(&mut suffix, time_ms, relayed_by);
    suffix
}

/// The part of a leaf's bytes after its envelope, if it is one: fields 2 and 3 only.
///
/// # Errors
/// When the bytes are not the encoding of `LogEntry` fields after the envelope.
pub fn check_suffix(suffix: &[u8]) -> Result<(), CorruptEntry> {
    let entry = pb::LogEntry::decode(suffix).map_err(|e| CorruptEntry(e.to_string()))?;
    if entry.envelope.is_some()
        || leaf_suffix(entry.sequenced_at_unix_ms, Some(&entry.relayed_by)) != suffix
    {
        return Err(CorruptEntry(
            "not the canonical encoding of a LogEntry's fields 2 and 3".into(),
        ));
    }
    Ok(())
}

fn push_suffix(leaf: &mut Vec<u8>, time_ms: u64, relayed_by: Option<&str>) {
    if time_ms != 0 {
        prost::encoding::uint64::encode(2, &time_ms, leaf);
    }
    if let Some(relayer) = relayed_by.filter(|r| !r.is_empty()) {
        prost::encoding::string::encode(3, &relayer.to_owned(), leaf);
    }
}

/// RFC 6962 leaf hash: SHA-256(0x00 || leaf bytes).
pub fn leaf_hash(leaf: &[u8]) -> LeafHash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    LeafHash(h.finalize().into())
}

/// A leaf read back from the log, decoded without today's admission rules: whatever was
/// admitted when it was appended stays readable.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// The author's envelope, as stored.
    pub envelope: pb::Envelope,
    /// When the sequencer accepted it.
    pub sequenced_at_unix_ms: u64,
    /// The admin that relayed it, or empty.
    pub relayed_by: String,
    /// The envelope's statement.
    pub statement: pb::Statement,
}

/// A stored leaf that does not decode: the database is corrupt.
#[derive(Debug, thiserror::Error)]
#[error("stored log entry does not decode: {0}")]
pub struct CorruptEntry(pub String);

impl StoredEntry {
    /// Decodes a stored leaf and its statement.
    ///
    /// # Errors
    /// When the bytes are not a `LogEntry` holding an envelope of a `Statement`.
    pub fn decode(leaf: &[u8]) -> Result<Self, CorruptEntry> {
        let entry = pb::LogEntry::decode(leaf).map_err(|e| CorruptEntry(e.to_string()))?;
        let envelope = entry
            .envelope
            .ok_or_else(|| CorruptEntry("no envelope".into()))?;
        let statement = pb::Statement::decode(envelope.payload.clone())
            .map_err(|e| CorruptEntry(format!("payload: {e}")))?;
        Ok(Self {
            envelope,
            sequenced_at_unix_ms: entry.sequenced_at_unix_ms,
            relayed_by: entry.relayed_by,
            statement,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> pb::Envelope {
        pb::Envelope {
            payload: vec![0x0a, 0x01, b'a'].into(),
            payload_type: "t".into(),
            signatures: vec![pb::Signature {
                sig: vec![7; 64],
                keyid: "k".into(),
            }],
        }
    }

    #[test]
    fn leaf_is_the_protobuf_encoding_of_the_log_entry() {
        let envelope = envelope();
        let prefix = leaf_prefix(&envelope);
        for time_ms in [0, 1, 127, 128, 1_764_300_000_000, u64::MAX] {
            for relayer in [None, Some("admin"), Some("")] {
                let expected = pb::LogEntry {
                    envelope: Some(envelope.clone()),
                    sequenced_at_unix_ms: time_ms,
                    relayed_by: relayer.unwrap_or_default().to_owned(),
                }
                .encode_to_vec();
                assert_eq!(
                    leaf_bytes(&prefix, time_ms, relayer),
                    expected,
                    "{time_ms} {relayer:?}"
                );
            }
        }
    }

    #[test]
    fn leaf_hash_uses_the_rfc6962_prefix() {
        // RFC 6962 test vector: the leaf hash of the empty entry.
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn stored_entries_decode_without_admission_rules() {
        let leaf = pb::LogEntry {
            envelope: Some(envelope()),
            sequenced_at_unix_ms: 5,
            relayed_by: String::new(),
        }
        .encode_to_vec();
        let stored = StoredEntry::decode(&leaf).unwrap();
        assert_eq!(stored.statement.author, "a");
        assert_eq!(stored.sequenced_at_unix_ms, 5);
        assert!(StoredEntry::decode(&[0xff]).is_err());
        let no_envelope = pb::LogEntry::default().encode_to_vec();
        assert!(StoredEntry::decode(&no_envelope).is_err());
    }
}
