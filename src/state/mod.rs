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

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use prost::Message;

pub use directory::{roles, Caller, Directory};

use crate::crypto;
use crate::entry::{Author, Body, ParsedEntry};
use crate::error::ServiceError;
use crate::pb;
use crate::storage::{
    decode_u64, Batch, StorageError, Store, CF_DEDUP, CF_ENTRIES, CF_MEMBERS, CF_META, CF_RECORDS,
    META_SIZE,
};
use crate::types::{MemberId, Role};

/// The stored value of a hash record: its submissions in log order.
///
/// Field 3 on purpose: a stored record is byte-compatible with the `submissions` field of
/// `pb::HashRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredRecord {
    /// Every submission of the hash, in log order, without envelopes.
    #[prost(message, repeated, tag = "3")]
    pub submissions: Vec<pb::Submission>,
}

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

/// One group commit in the making.
pub struct Pending<'s> {
    store: &'s Store,
    batch: Batch<'s>,
    records: HashMap<Vec<u8>, (StoredRecord, bool)>,
    dedup: HashMap<[u8; 32], Appended>,
    /// Digests whose absence from the store the prefetch already established.
    known_new: std::collections::HashSet<[u8; 32]>,
    dir: Directory,
    dir_changed: bool,
    size: u64,
    time_ms: u64,
}

impl<'s> Pending<'s> {
    /// Starts a group at log size `size`, stamping entries with `time_ms`.
    pub fn new(store: &'s Store, dir: Directory, size: u64, time_ms: u64) -> Self {
        Self {
            store,
            batch: store.batch(),
            records: HashMap::new(),
            dedup: HashMap::new(),
            known_new: std::collections::HashSet::new(),
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

    /// Loads, in two multi-gets, the resubmission index and hash records the entries touch.
    ///
    /// # Errors
    /// When the store fails.
    pub fn prefetch(&mut self, entries: &[&ParsedEntry]) -> Result<(), StorageError> {
        let digests: Vec<[u8; 32]> = entries.iter().map(|e| e.digest).collect();
        for (digest, value) in digests
            .iter()
            .zip(self.store.multi_get(CF_DEDUP, &digests)?)
        {
            match value {
                Some(v) => {
                    self.dedup.insert(*digest, decode_dedup(&v)?);
                }
                None => {
                    self.known_new.insert(*digest);
                }
            }
        }
        let keys: Vec<Vec<u8>> = entries
            .iter()
            .filter_map(|e| match &e.body {
                Body::HashSubmission(s) => Some(s.hash.key()),
                Body::Genesis(_) => None,
            })
            .filter(|k| !self.records.contains_key(k))
            .collect();
        for (key, value) in keys.iter().zip(self.store.multi_get(CF_RECORDS, &keys)?) {
            self.cache_record(key, value.as_deref())?;
        }
        Ok(())
    }

    /// Keeps a record as read from the store (empty when absent), not yet changed.
    fn cache_record(&mut self, key: &[u8], stored: Option<&[u8]>) -> Result<(), StorageError> {
        let record = stored.map(decode_record).transpose()?.unwrap_or_default();
        self.records.insert(key.to_vec(), (record, false));
        Ok(())
    }

    /// The original receipt if this statement is already in the log (or staged).
    ///
    /// # Errors
    /// When the store fails.
    pub fn existing(&mut self, entry: &ParsedEntry) -> Result<Option<Appended>, StorageError> {
        if let Some(found) = self.dedup.get(&entry.digest) {
            return Ok(Some(Appended {
                duplicate: true,
                ..*found
            }));
        }
        if self.known_new.contains(&entry.digest) {
            return Ok(None);
        }
        match self.store.get(CF_DEDUP, &entry.digest)? {
            Some(v) => {
                let found = decode_dedup(&v)?;
                self.dedup.insert(entry.digest, found);
                Ok(Some(Appended {
                    duplicate: true,
                    ..found
                }))
            }
            None => Ok(None),
        }
    }

    /// Checks that the entry may be appended now: its author is active with the needed role and
    /// its key is registered and valid at this point of the log.
    ///
    /// # Errors
    /// `PERMISSION_DENIED` or `INVALID_ARGUMENT` as [`Directory::check_author`] and
    /// [`Directory::active_key`].
    pub fn check(&self, entry: &ParsedEntry) -> Result<VerifyingKey, ServiceError> {
        match &entry.author {
            Author::Forum => Err(ServiceError::invalid(
                "payload.author",
                "INVALID_STATEMENT",
                "only entry 0 is authored by the forum",
            )),
            Author::Member(id) => {
                self.dir
                    .check_author(id.as_str(), entry.body.required_role())?;
                self.dir.active_key(id.as_str(), &entry.keyid)
            }
        }
    }

    /// Appends a checked, verified, new entry and stages its effect on the views.
    ///
    /// # Errors
    /// When the store fails.
    pub fn append(&mut self, entry: &ParsedEntry) -> Result<Appended, StorageError> {
        let leaf = pb::LogEntry {
            envelope: Some(entry.envelope.clone()),
            sequenced_at_unix_ms: self.time_ms,
        }
        .encode_to_vec();
        self.append_leaf(entry, &leaf)
    }

    /// Appends an entry whose leaf bytes were made elsewhere (the genesis entry, made by
    /// `init`, or entries a replica received), stored verbatim.
    ///
    /// # Errors
    /// When the store fails.
    pub fn append_leaf(
        &mut self,
        entry: &ParsedEntry,
        leaf: &[u8],
    ) -> Result<Appended, StorageError> {
        let index = self.size;
        let appended = Appended {
            index,
            leaf_hash: crypto::leaf_hash(leaf),
            duplicate: false,
        };
        self.batch.put(CF_ENTRIES, &index.to_be_bytes(), leaf);
        let mut dedup_value = index.to_be_bytes().to_vec();
        dedup_value.extend_from_slice(&appended.leaf_hash);
        self.batch.put(CF_DEDUP, &entry.digest, &dedup_value);
        self.dedup.insert(entry.digest, appended);
        self.size += 1;
        match (&entry.author, &entry.body) {
            (Author::Member(author), Body::HashSubmission(s)) => {
                self.apply_submission(author, s, index)?;
            }
            (_, Body::Genesis(g)) => self.apply_genesis(g),
            (Author::Forum, Body::HashSubmission(_)) => {}
        }
        Ok(appended)
    }

    fn apply_submission(
        &mut self,
        author: &MemberId,
        s: &crate::entry::HashSubmission,
        index: u64,
    ) -> Result<(), StorageError> {
        let key = s.hash.key();
        if !self.records.contains_key(&key) {
            let stored = self.store.get(CF_RECORDS, &key)?;
            self.cache_record(&key, stored.as_deref())?;
        }
        let (record, dirty) = self.records.get_mut(&key).expect("inserted above");
        record.submissions.push(pb::Submission {
            member_id: author.to_string(),
            log_index: index,
            sequenced_at_unix_ms: self.time_ms,
            labels: Some(s.labels.clone()),
            tags: s.tags.clone(),
            quality: s.quality,
            envelope: None,
        });
        *dirty = true;
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
            self.dir.upsert(member);
        }
        self.dir_changed = true;
    }

    /// Finishes the group: the batch to commit, the new size, and the new directory if the
    /// group changed it.
    pub fn finish(mut self) -> (Batch<'s>, u64, Option<Directory>) {
        for (key, (record, dirty)) in &self.records {
            if *dirty {
                self.batch.put(CF_RECORDS, key, &record.encode_to_vec());
            }
        }
        self.batch.put(CF_META, META_SIZE, &self.size.to_be_bytes());
        let dir = self.dir_changed.then_some(self.dir);
        (self.batch, self.size, dir)
    }
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
