//! The registry core, between the thin gRPC adapters and the sequencer and store.
//!
//! Submissions are parsed, authorized against the current membership snapshot and signature
//! checked here, in parallel and outside the single writer; the sequencer then re-checks state
//! at each entry's place in the log and commits. Lookups read RocksDB directly.

use std::sync::Arc;

use arc_swap::ArcSwap;
use prost::Message;

use crate::crypto;
use crate::entry::{Author, Body, ParsedEntry};
use crate::error::ServiceError;
use crate::pb;
use crate::sequencer::Sequencer;
use crate::state::{self, decode_record, Appended, Caller, Directory};
use crate::storage::{StorageError, Store, CF_ENTRIES, CF_HISTORY, CF_RECORDS};
use crate::types::{ContentHash, Role};
use crate::wire::RawRecord;

/// Most envelopes in one `SubmitEntries` call.
pub const MAX_SUBMIT_BATCH: usize = 10_000;
/// Most hashes in one `LookupHashes` call.
pub const MAX_LOOKUP_BATCH: usize = 10_000;

/// The registry: store, membership snapshot and sequencer.
pub struct Registry {
    store: Store,
    directory: Arc<ArcSwap<Directory>>,
    sequencer: Sequencer,
}

impl Registry {
    /// Opens the registry over a bootstrapped store and starts its sequencer.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn start(store: Store) -> Result<Self, StorageError> {
        let directory = Arc::new(ArcSwap::from_pointee(Directory::load(&store)?));
        let sequencer = Sequencer::start(store.clone(), directory.clone())?;
        Ok(Self {
            store,
            directory,
            sequencer,
        })
    }

    /// The current membership snapshot.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.load_full()
    }

    /// The caller holding the certificate with this SHA-256 fingerprint.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when it is bound to no active member.
    pub fn caller(&self, cert_sha256: &[u8; 32]) -> Result<Caller, ServiceError> {
        self.directory.load().caller(cert_sha256)
    }

    /// Verifies and appends envelopes, all or none. `field(i)` names envelope `i` in errors
    /// (`envelope` or `envelopes[i]`).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a malformed envelope, an unknown or revoked key or a bad
    /// signature; `PERMISSION_DENIED` when the caller may not submit for the author.
    pub async fn submit(
        &self,
        caller: &Caller,
        envelopes: Vec<pb::Envelope>,
        field: impl Fn(usize) -> String,
    ) -> Result<Vec<Appended>, ServiceError> {
        caller.require_any(&[Role::Contributor, Role::Admin])?;
        let dir = self.directory.load_full();
        let mut entries = Vec::with_capacity(envelopes.len());
        let mut keys = Vec::with_capacity(envelopes.len());
        for (i, envelope) in envelopes.into_iter().enumerate() {
            let entry = ParsedEntry::parse(envelope).map_err(|e| e.in_field(&field(i)))?;
            keys.push(authorize(&dir, caller, &entry).map_err(|e| e.in_field(&field(i)))?);
            entries.push(entry);
        }
        let entries = verify(entries, keys).await?.map_err(|i| {
            ServiceError::invalid(
                format!("{}.signatures[0].sig", field(i)),
                "BAD_SIGNATURE",
                "the signature does not verify over the envelope's payload",
            )
        })?;
        self.sequencer
            .submit(&caller.member_id, entries)
            .await
            .map_err(|e| match e.position {
                Some(i) => e.error.in_field(&field(i)),
                None => e.error,
            })
    }

    /// Looks hashes up. Each result is `None` when the hash is not in the registry; a found
    /// record keeps its submissions encoded as stored (with envelopes attached on request).
    ///
    /// # Errors
    /// When the store fails.
    pub fn lookup(
        &self,
        hashes: &[ContentHash],
        include_envelopes: bool,
    ) -> Result<Vec<Option<RawRecord>>, ServiceError> {
        // Read in key order (RocksDB then skips its own sort), answer in query order.
        let keys: Vec<Vec<u8>> = hashes.iter().map(ContentHash::key).collect();
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]));
        let sorted: Vec<&[u8]> = order.iter().map(|&i| keys[i].as_slice()).collect();
        let stored = self.store.multi_get_sorted(CF_RECORDS, &sorted)?;
        let mut found = vec![None; keys.len()];
        for (i, record) in order.into_iter().zip(stored) {
            found[i] = record;
        }
        let mut out = Vec::with_capacity(hashes.len());
        for (hash, stored) in hashes.iter().zip(found) {
            let Some(mut submissions) = stored else {
                out.push(None);
                continue;
            };
            if include_envelopes {
                let mut decoded = decode_record(&submissions)?.submissions;
                self.attach_envelopes(&mut decoded)?;
                submissions = RawRecord::encode_submissions(&decoded);
            }
            out.push(Some(RawRecord {
                hash_type: hash.hash_type().to_pb() as i32,
                value: hash.to_hex(),
                submissions,
            }));
        }
        Ok(out)
    }

    fn attach_envelopes(&self, submissions: &mut [pb::Submission]) -> Result<(), ServiceError> {
        let keys: Vec<[u8; 8]> = submissions
            .iter()
            .map(|s| s.log_index.to_be_bytes())
            .collect();
        for (s, leaf) in submissions
            .iter_mut()
            .zip(self.store.multi_get(CF_ENTRIES, &keys)?)
        {
            let leaf = leaf.ok_or_else(|| {
                ServiceError::Internal(format!("log entry {} is missing", s.log_index))
            })?;
            let entry = pb::LogEntry::decode(leaf.as_slice()).map_err(|e| {
                ServiceError::Internal(format!("log entry {} does not decode: {e}", s.log_index))
            })?;
            s.envelope = entry.envelope;
        }
        Ok(())
    }

    /// Every entry that changed `member`, oldest first.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown member; `INTERNAL` when the store fails.
    pub fn member_history(&self, member: &str) -> Result<Vec<pb::MemberEvent>, ServiceError> {
        if self.directory().member(member).is_none() {
            return Err(ServiceError::NotFound {
                reason: "UNKNOWN_MEMBER",
                message: format!("no member {member}"),
            });
        }
        let prefix = state::history_prefix(member);
        let indexes: Vec<[u8; 8]> = self
            .store
            .keys_with_prefix(CF_HISTORY, &prefix)?
            .iter()
            .map(|key| <[u8; 8]>::try_from(&key[prefix.len()..]))
            .collect::<Result<_, _>>()
            .map_err(|_| ServiceError::Internal(format!("malformed history key of {member}")))?;
        let leaves = self.store.multi_get_sorted(CF_ENTRIES, &indexes)?;
        indexes
            .iter()
            .zip(leaves)
            .map(|(index, leaf)| {
                let index = u64::from_be_bytes(*index);
                let corrupt = |why: String| {
                    ServiceError::Internal(format!(
                        "log entry {index} (history of {member}): {why}"
                    ))
                };
                let leaf = leaf.ok_or_else(|| corrupt("missing".into()))?;
                let log_entry =
                    pb::LogEntry::decode(leaf.as_slice()).map_err(|e| corrupt(e.to_string()))?;
                let envelope = log_entry
                    .envelope
                    .ok_or_else(|| corrupt("no envelope".into()))?;
                let entry =
                    ParsedEntry::parse(envelope.clone()).map_err(|e| corrupt(e.to_string()))?;
                let (author, action) = match (&entry.author, &entry.body) {
                    (_, Body::Admin(action)) => (entry.author.to_string(), action.name()),
                    (_, Body::Genesis(_)) => (entry.author.to_string(), "added"),
                    (_, Body::HashSubmission(_)) => {
                        return Err(corrupt("a hash submission in a member's history".into()))
                    }
                };
                Ok(pb::MemberEvent {
                    log_index: index,
                    sequenced_at_unix_ms: log_entry.sequenced_at_unix_ms,
                    author,
                    action: action.into(),
                    envelope: Some(envelope),
                })
            })
            .collect()
    }

    /// Stops the sequencer after it has committed everything queued.
    pub async fn close(self) {
        self.sequencer.close().await;
    }
}

/// Checks that `caller` may submit `entry` now and returns the author's key. Members submit
/// their own statements; an admin may relay another member's.
fn authorize(
    dir: &Directory,
    caller: &Caller,
    entry: &ParsedEntry,
) -> Result<ed25519_dalek::VerifyingKey, ServiceError> {
    let Author::Member(author) = &entry.author else {
        return Err(ServiceError::invalid(
            "payload.author",
            "INVALID_STATEMENT",
            "only entry 0 is authored by the forum",
        ));
    };
    if author.as_str() != caller.member_id && !caller.has(Role::Admin) {
        return Err(ServiceError::denied(
            "AUTHOR_MISMATCH",
            format!(
                "the statement is authored by {author} but the caller is {}",
                caller.member_id
            ),
        ));
    }
    dir.check_author(author.as_str(), entry.body.required_role())?;
    dir.active_key(author.as_str(), &entry.keyid)
}

/// Verifies every entry's signature on the blocking pool. Returns the entries, or the position
/// of the first bad signature.
async fn verify(
    entries: Vec<ParsedEntry>,
    keys: Vec<ed25519_dalek::VerifyingKey>,
) -> Result<Result<Vec<ParsedEntry>, usize>, ServiceError> {
    tokio::task::spawn_blocking(move || {
        let messages: Vec<&[u8]> = entries.iter().map(|e| e.signed.as_slice()).collect();
        let sigs: Vec<_> = entries.iter().map(|e| e.signature).collect();
        crypto::verify_all(&messages, &sigs, &keys).map(|()| entries)
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("signature verification task: {e}")))
}
