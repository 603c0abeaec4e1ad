//! `state::apply`: the registry's views as a deterministic function of the log.
//!
//! The sequencer (and, later, replicas) feed entries in log order through a [`Pending`] group
//! commit: each entry's leaf is appended and its effect on the views (hash records, members,
//! keys, resubmission index) is staged, and [`Pending::finish`] turns it all into one RocksDB
//! `WriteBatch`. Nothing here decides *when* to commit or signs anything.
//!
//! Invariant: after a commit, `entries` holds exactly indexes `0..size` and every view equals
//! the fold of `apply` over those entries.

mod directory;

use std::collections::{HashMap, HashSet};

use ed25519_dalek::VerifyingKey;
use prost::Message;

pub use directory::{roles, Caller, Directory};

use crate::crypto;
use crate::entry::{AdminAction, Author, Body, ParsedEntry};
use crate::error::ServiceError;
use crate::pb;
use crate::storage::{
    decode_u64, Batch, StorageError, Store, CF_DEDUP, CF_ENTRIES, CF_HISTORY, CF_MEMBERS, CF_META,
    CF_RECORDS, META_SIZE,
};
use crate::types::{MemberId, Role};

/// The stored value of a hash record: its submissions in log order.
///
/// Field 3 on purpose: a stored record is byte-compatible with the `submissions` field of
/// `pb::HashRecord`. Protobuf decodes concatenated messages as one, with repeated fields
/// concatenated, so the sequencer appends a submission by appending its encoding as field 3 to
/// the stored bytes, without decoding the record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredRecord {
    /// Every submission of the hash, in log order, without envelopes.
    #[prost(message, repeated, tag = "3")]
    pub submissions: Vec<pb::Submission>,
}

/// The field number of `StoredRecord::submissions` (and `pb::HashRecord::submissions`).
const RECORD_SUBMISSIONS_TAG: u32 = 3;

/// Where an entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its log index.
    pub index: u64,
    /// Its RFC 6962 leaf hash.
    pub leaf_hash: [u8; 32],
    /// Whether it was already in the log (then index and hash are the original's).
    pub duplicate: bool,
}

impl From<Appended> for pb::Receipt {
    fn from(a: Appended) -> Self {
        pb::Receipt {
            log_index: a.index,
            entry_hash: a.leaf_hash.to_vec(),
            duplicate: a.duplicate,
        }
    }
}

/// Maps keyed by hashes and digests: uniformly distributed keys, no need for SipHash.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a committing group wrote to the views the next group reads: its hash records and
/// resubmission index. The sequencer stages the next group while the previous one commits, and
/// reads through this until that commit is done.
#[derive(Debug, Default)]
pub struct Overlay {
    records: FastMap<Vec<u8>, Vec<u8>>,
    dedup: FastMap<[u8; 32], Appended>,
}

/// A staged group, ready to commit.
pub struct Finished {
    /// Every write of the group, to commit atomically.
    pub batch: Batch,
    /// The log size once committed.
    pub size: u64,
    /// The new membership, if the group changed it.
    pub directory: Option<Directory>,
    /// The group's view writes, for staging the next group before this one is committed.
    pub overlay: Overlay,
}

/// One group commit in the making.
pub struct Pending<'s> {
    store: &'s Store,
    /// The previous group, if it may not be committed yet.
    prev: Option<&'s Overlay>,
    batch: Batch,
    /// Hash records read or staged, as stored bytes, and whether this group changed them.
    records: FastMap<Vec<u8>, (Vec<u8>, bool)>,
    /// Receipts of statements in the log or staged, by statement digest.
    dedup: FastMap<[u8; 32], Appended>,
    /// Digests the prefetch found in neither the store nor the previous group.
    known_new: HashSet<[u8; 32], foldhash::fast::RandomState>,
    dir: Directory,
    dir_changed: bool,
    size: u64,
    time_ms: u64,
}

impl<'s> Pending<'s> {
    /// Starts a group at log size `size`, stamping entries with `time_ms`. `prev` is the
    /// previous group's overlay while it may still be committing.
    pub fn new(
        store: &'s Store,
        prev: Option<&'s Overlay>,
        dir: Directory,
        size: u64,
        time_ms: u64,
    ) -> Self {
        Self {
            store,
            prev,
            batch: store.batch(),
            records: FastMap::default(),
            dedup: FastMap::default(),
            known_new: HashSet::default(),
            dir,
            dir_changed: false,
            size,
            time_ms,
        }
    }

    /// The directory as of the entries staged so far.
    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    /// The log size as of the entries staged so far: the index of the next entry.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Loads, in two multi-gets, the resubmission index and hash records the entries touch.
    ///
    /// # Errors
    /// When the store fails.
    pub fn prefetch(&mut self, entries: &[&ParsedEntry]) -> Result<(), StorageError> {
        let mut digests = Vec::with_capacity(entries.len());
        for entry in entries {
            let d = entry.digest;
            if self.dedup.contains_key(&d) || self.known_new.contains(&d) {
                continue;
            }
            match self.prev.and_then(|p| p.dedup.get(&d)) {
                Some(found) => {
                    let found = Appended {
                        duplicate: true,
                        ..*found
                    };
                    self.dedup.insert(d, found);
                }
                None => digests.push(d),
            }
        }
        digests.sort_unstable();
        digests.dedup();
        let values = self.store.multi_get_sorted(CF_DEDUP, &digests)?;
        for (digest, value) in digests.into_iter().zip(values) {
            match value {
                Some(v) => {
                    self.dedup.insert(digest, decode_dedup(&v)?);
                }
                None => {
                    self.known_new.insert(digest);
                }
            }
        }
        let mut keys = Vec::with_capacity(entries.len());
        for entry in entries {
            let Body::HashSubmission(s) = &entry.body else {
                continue;
            };
            let key = s.hash.key();
            if self.records.contains_key(&key) {
                continue;
            }
            match self.prev.and_then(|p| p.records.get(&key)) {
                Some(record) => {
                    self.records.insert(key, (record.clone(), false));
                }
                None => keys.push(key),
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let values = self.store.multi_get_sorted(CF_RECORDS, &keys)?;
        for (key, value) in keys.into_iter().zip(values) {
            self.records.insert(key, (value.unwrap_or_default(), false));
        }
        Ok(())
    }

    /// The original receipt if this statement is already in the log (or staged).
    ///
    /// # Errors
    /// When the store fails.
    pub fn existing(&mut self, entry: &ParsedEntry) -> Result<Option<Appended>, StorageError> {
        if !self.dedup.contains_key(&entry.digest) && !self.known_new.contains(&entry.digest) {
            self.prefetch(&[entry])?;
        }
        Ok(self.dedup.get(&entry.digest).map(|found| Appended {
            duplicate: true,
            ..*found
        }))
    }

    /// Appends a checked, verified, new entry and stages its effect on the views.
    ///
    /// # Errors
    /// When the store fails.
    pub fn append(&mut self, entry: ParsedEntry) -> Result<Appended, StorageError> {
        let leaf = leaf_bytes(&entry.leaf_prefix, self.time_ms);
        self.append_leaf(entry, &leaf)
    }

    /// Appends an entry whose leaf bytes were made elsewhere (the genesis entry, made by
    /// `init`, or entries a replica received), stored verbatim.
    ///
    /// # Errors
    /// When the store fails.
    pub fn append_leaf(
        &mut self,
        entry: ParsedEntry,
        leaf: &[u8],
    ) -> Result<Appended, StorageError> {
        let index = self.size;
        let appended = Appended {
            index,
            leaf_hash: crypto::leaf_hash(leaf),
            duplicate: false,
        };
        self.batch.put(CF_ENTRIES, &index.to_be_bytes(), leaf);
        self.dedup.insert(entry.digest, appended);
        self.size += 1;
        match (entry.author, entry.body) {
            (Author::Member(author), Body::HashSubmission(s)) => {
                self.apply_submission(author, s, index)?;
            }
            (_, Body::Genesis(g)) => self.apply_genesis(&g),
            (_, Body::Admin(action)) => self.apply_admin(&action, index)?,
            (Author::Forum, Body::HashSubmission(_)) => {}
        }
        Ok(appended)
    }

    fn apply_submission(
        &mut self,
        author: MemberId,
        s: crate::entry::HashSubmission,
        index: u64,
    ) -> Result<(), StorageError> {
        let key = s.hash.key();
        if !self.records.contains_key(&key) {
            let stored = match self.prev.and_then(|p| p.records.get(&key)) {
                Some(record) => Some(record.clone()),
                None => self.store.get(CF_RECORDS, &key)?,
            };
            self.records
                .insert(key.clone(), (stored.unwrap_or_default(), false));
        }
        let (record, dirty) = self.records.get_mut(&key).expect("inserted above");
        let submission = pb::Submission {
            member_id: author.into_string(),
            log_index: index,
            sequenced_at_unix_ms: self.time_ms,
            labels: Some(s.labels),
            tags: s.tags,
            quality: s.quality,
            envelope: None,
        };
        prost::encoding::message::encode(RECORD_SUBMISSIONS_TAG, &submission, record);
        *dirty = true;
        Ok(())
    }

    fn apply_admin(&mut self, action: &AdminAction, index: u64) -> Result<(), StorageError> {
        // `check` applied the same action to the same state, so this cannot fail.
        let member = self
            .dir
            .apply(action, index)
            .map_err(|e| StorageError::Corrupt {
                cf: CF_MEMBERS,
                reason: format!("admin action failed after its check: {e}"),
            })?;
        self.batch.put(
            CF_MEMBERS,
            member.member_id.as_bytes(),
            &member.encode_to_vec(),
        );
        self.batch
            .put(CF_HISTORY, &history_key(&member.member_id, index), &[]);
        self.dir_changed = true;
        Ok(())
    }

    fn apply_genesis(&mut self, genesis: &pb::Genesis) {
        for added in &genesis.members {
            let keys = genesis
                .keys
                .iter()
                .filter(|k| k.member_id == added.member_id)
                .map(|k| registered_key(k, 0))
                .collect();
            let member = pb::Member {
                member_id: added.member_id.clone(),
                display_name: added.display_name.clone(),
                roles: added.roles.clone(),
                status: pb::MemberStatus::Active as i32,
                keys,
                added_at_log_index: 0,
                cert_sha256: added.cert_sha256.clone(),
            };
            self.batch.put(
                CF_MEMBERS,
                member.member_id.as_bytes(),
                &member.encode_to_vec(),
            );
            self.batch
                .put(CF_HISTORY, &history_key(&member.member_id, 0), &[]);
            self.dir.upsert(member);
        }
        self.dir_changed = true;
    }

    /// Finishes the group: its batch, the new size and directory, and the overlay the next
    /// group reads through until this one is committed.
    ///
    /// Keys are written in sorted order within each column family: consecutive memtable
    /// inserts then land next to each other, which RocksDB's skip list does much faster than
    /// inserts at random places.
    pub fn finish(mut self) -> Finished {
        let overlay = Overlay {
            dedup: self
                .dedup
                .into_iter()
                .filter(|(_, a)| !a.duplicate)
                .collect(),
            records: self
                .records
                .into_iter()
                .filter(|(_, (_, dirty))| *dirty)
                .map(|(key, (record, _))| (key, record))
                .collect(),
        };
        let mut new: Vec<(&[u8; 32], &Appended)> = overlay.dedup.iter().collect();
        new.sort_unstable_by_key(|(digest, _)| *digest);
        for (digest, appended) in new {
            let mut value = [0u8; 40];
            value[..8].copy_from_slice(&appended.index.to_be_bytes());
            value[8..].copy_from_slice(&appended.leaf_hash);
            self.batch.put(CF_DEDUP, digest, &value);
        }
        let mut dirty: Vec<(&Vec<u8>, &Vec<u8>)> = overlay.records.iter().collect();
        dirty.sort_unstable_by_key(|(key, _)| *key);
        for (key, record) in dirty {
            self.batch.put(CF_RECORDS, key, record);
        }
        self.batch.put(CF_META, META_SIZE, &self.size.to_be_bytes());
        Finished {
            batch: self.batch,
            size: self.size,
            directory: self.dir_changed.then_some(self.dir),
            overlay,
        }
    }
}

/// Checks that `entry` may be appended now, at log index `index`, against `dir`: its author is
/// an active member with the needed role and signs with a registered, unrevoked key, and an
/// admin action makes sense in this state. An admin action is then applied to `dir`, so that
/// the next entry of the same job is checked after it.
///
/// # Errors
/// `PERMISSION_DENIED` or `INVALID_ARGUMENT` as [`Directory::check_author`] and
/// [`Directory::active_key`]; for admin actions, as [`Directory::apply`].
pub fn check(
    dir: &mut std::borrow::Cow<'_, Directory>,
    entry: &ParsedEntry,
    index: u64,
) -> Result<VerifyingKey, ServiceError> {
    let Author::Member(id) = &entry.author else {
        return Err(ServiceError::invalid(
            "payload.author",
            "INVALID_STATEMENT",
            "only entry 0 is authored by the forum",
        ));
    };
    dir.check_author(id.as_str(), entry.body.required_role())?;
    let key = dir.active_key(id.as_str(), &entry.keyid)?;
    if let Body::Admin(action) = &entry.body {
        dir.to_mut()
            .apply(action, index)
            .map_err(|e| e.in_field("payload"))?;
    }
    Ok(key)
}

/// The `history` key of the entry at `index` that changed `member`.
pub fn history_key(member: &str, index: u64) -> Vec<u8> {
    let mut key = history_prefix(member);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The prefix of every `history` key of `member`.
pub fn history_prefix(member: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(member.len() + 9);
    key.extend_from_slice(member.as_bytes());
    key.push(0);
    key
}

/// The start of a log leaf: a `LogEntry` with only its `envelope` field (1), which protobuf
/// encodes first. [`leaf_bytes`] appends the sequencing time (field 2).
pub fn leaf_prefix(envelope: &pb::Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(envelope.encoded_len() + 4);
    prost::encoding::message::encode(1, envelope, &mut out);
    out
}

/// The log leaf: exactly the protobuf encoding of
/// `LogEntry { envelope, sequenced_at_unix_ms: time_ms }`.
fn leaf_bytes(prefix: &[u8], time_ms: u64) -> Vec<u8> {
    let mut leaf = Vec::with_capacity(prefix.len() + 11);
    leaf.extend_from_slice(prefix);
    if time_ms != 0 {
        prost::encoding::uint64::encode(2, &time_ms, &mut leaf);
    }
    leaf
}

fn registered_key(k: &pb::KeyRegistered, index: u64) -> pb::SigningKey {
    let keyid = <[u8; 32]>::try_from(k.public_key.as_slice())
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .map(|vk| crypto::key_id(&vk))
        .unwrap_or_default();
    pb::SigningKey {
        keyid,
        public_key: k.public_key.clone(),
        valid_from_log_index: index,
        revoked_at_log_index: None,
    }
}

/// Validates a genesis statement: member ids, roles, at least one admin with a key, and keys
/// that are valid Ed25519 points belonging to listed members.
///
/// # Errors
/// `INVALID_ARGUMENT` naming the genesis field.
pub fn validate_genesis(g: &pb::Genesis) -> Result<(), ServiceError> {
    let bad = |field: String, msg: String| ServiceError::invalid(field, "INVALID_GENESIS", msg);
    if g.origin.is_empty() || g.origin.contains(char::is_whitespace) {
        return Err(bad(
            "origin".into(),
            "origin must be non-empty without spaces".into(),
        ));
    }
    for (i, m) in g.members.iter().enumerate() {
        MemberId::parse(&m.member_id).map_err(|e| bad(format!("members[{i}].member_id"), e.0))?;
        for r in &m.roles {
            Role::from_pb(*r).map_err(|e| bad(format!("members[{i}].roles"), e.0))?;
        }
        if m.cert_sha256.iter().any(|c| c.len() != 32) {
            return Err(bad(
                format!("members[{i}].cert_sha256"),
                "fingerprints are 32 bytes".into(),
            ));
        }
    }
    for (i, k) in g.keys.iter().enumerate() {
        if !g.members.iter().any(|m| m.member_id == k.member_id) {
            return Err(bad(
                format!("keys[{i}].member_id"),
                "key for an unlisted member".into(),
            ));
        }
        let point = <[u8; 32]>::try_from(k.public_key.as_slice())
            .ok()
            .and_then(|b| VerifyingKey::from_bytes(&b).ok());
        if point.is_none_or(|vk| vk.is_weak()) {
            return Err(bad(
                format!("keys[{i}].public_key"),
                "not a valid Ed25519 key".into(),
            ));
        }
    }
    let admin_with_key = g.members.iter().any(|m| {
        m.roles.contains(&(pb::Role::Admin as i32))
            && g.keys.iter().any(|k| k.member_id == m.member_id)
    });
    if !admin_with_key {
        return Err(bad(
            "members".into(),
            "genesis needs an admin with a signing key".into(),
        ));
    }
    Ok(())
}

/// Decodes a stored hash record.
///
/// # Errors
/// When the bytes are not a record.
pub fn decode_record(v: &[u8]) -> Result<StoredRecord, StorageError> {
    StoredRecord::decode(v).map_err(|e| StorageError::Corrupt {
        cf: CF_RECORDS,
        reason: e.to_string(),
    })
}

fn decode_dedup(v: &[u8]) -> Result<Appended, StorageError> {
    if v.len() != 40 {
        return Err(StorageError::Corrupt {
            cf: CF_DEDUP,
            reason: format!("expected 40 bytes, got {}", v.len()),
        });
    }
    let mut leaf_hash = [0u8; 32];
    leaf_hash.copy_from_slice(&v[8..]);
    Ok(Appended {
        index: decode_u64(CF_DEDUP, &v[..8])?,
        leaf_hash,
        duplicate: true,
    })
}

#[cfg(test)]
mod tests;
