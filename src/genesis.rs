//! The genesis entry (index 0): the forum's first members and keys, signed by the log key.
//!
//! `hashforum init` makes it; the server appends it verbatim when it starts on an empty
//! database, after checking the log key's signature. Everything after is replayable from
//! entry 0 with only the forum's public key.

use ed25519_dalek::{SigningKey, VerifyingKey};
use prost::Message;

use crate::crypto;
use crate::entry::{Author, Body, ParsedEntry};
use crate::pb;
use crate::state::{validate_genesis, Directory, Pending};
use crate::storage::{StorageError, Store, CF_ENTRIES};
use crate::types::Role;

/// Why the genesis entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The genesis file is not a signed genesis entry.
    #[error("invalid genesis entry: {0}")]
    Invalid(String),
    /// The log key did not sign it.
    #[error("the genesis entry is not signed by this forum's log key")]
    BadSignature,
    /// The database already holds a different forum's log.
    #[error("the data directory holds a different forum (entry 0 differs from the genesis file)")]
    OtherForum,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One founding member.
#[derive(Debug, Clone)]
pub struct Founder {
    /// Member id.
    pub member_id: String,
    /// Display name.
    pub display_name: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// The member's TLS client certificate (DER), bound by fingerprint.
    pub cert_der: Vec<u8>,
    /// The member's Ed25519 signing key.
    pub signing_key: VerifyingKey,
}

/// Makes the signed genesis entry: the `LogEntry` bytes of index 0.
pub fn create(log_key: &SigningKey, origin: &str, founders: &[Founder], time_ms: u64) -> Vec<u8> {
    let genesis = pb::Genesis {
        origin: origin.to_owned(),
        members: founders
            .iter()
            .map(|f| pb::MemberAdded {
                member_id: f.member_id.clone(),
                display_name: f.display_name.clone(),
                roles: f.roles.iter().map(|r| r.to_pb() as i32).collect(),
                cert_sha256: vec![crypto::cert_fingerprint(&f.cert_der).to_vec()],
            })
            .collect(),
        keys: founders
            .iter()
            .map(|f| pb::KeyRegistered {
                member_id: f.member_id.clone(),
                public_key: f.signing_key.as_bytes().to_vec(),
            })
            .collect(),
    };
    let statement = pb::Statement {
        author: crate::types::MemberId::FORUM.to_owned(),
        issued_at_unix_ms: 0,
        body: Some(pb::statement::Body::Genesis(genesis)),
    };
    pb::LogEntry {
        envelope: Some(crypto::sign_statement(log_key, &statement)),
        sequenced_at_unix_ms: time_ms,
    }
    .encode_to_vec()
}

/// Appends the genesis entry to an empty store, or checks that a non-empty store starts with it.
///
/// # Errors
/// When the entry is malformed, not signed by `log_key`, names another origin, or the store
/// holds another forum.
pub fn bootstrap(
    store: &Store,
    leaf: &[u8],
    log_key: &VerifyingKey,
    origin: &str,
) -> Result<(), GenesisError> {
    let entry = parse(leaf, log_key)?;
    match &entry.body {
        Body::Genesis(g) if g.origin == origin => {}
        _ => {
            return Err(GenesisError::Invalid(format!(
                "the genesis entry is not for origin {origin:?}"
            )))
        }
    }
    if store.size()? > 0 {
        return match store.get(CF_ENTRIES, &0u64.to_be_bytes())? {
            Some(first) if first == leaf => Ok(()),
            _ => Err(GenesisError::OtherForum),
        };
    }
    let time_ms = pb::LogEntry::decode(leaf)
        .map_err(|e| GenesisError::Invalid(e.to_string()))?
        .sequenced_at_unix_ms;
    let mut pending = Pending::new(store, None, Directory::default(), 0, time_ms);
    pending.append_leaf(entry, leaf)?;
    store.commit(pending.finish().batch)?;
    Ok(())
}

/// Parses and verifies a genesis entry's bytes.
///
/// # Errors
/// When the bytes are not a genesis entry signed by `log_key`.
pub fn parse(leaf: &[u8], log_key: &VerifyingKey) -> Result<ParsedEntry, GenesisError> {
    let invalid = |e: &dyn std::fmt::Display| GenesisError::Invalid(e.to_string());
    let log_entry = pb::LogEntry::decode(leaf).map_err(|e| invalid(&e))?;
    let envelope = log_entry
        .envelope
        .ok_or_else(|| GenesisError::Invalid("no envelope".into()))?;
    let entry = ParsedEntry::parse(envelope).map_err(|e| invalid(&e))?;
    let Body::Genesis(g) = &entry.body else {
        return Err(GenesisError::Invalid(
            "entry 0 must be a genesis statement".into(),
        ));
    };
    validate_genesis(g).map_err(|e| invalid(&e))?;
    if entry.author != Author::Forum || entry.keyid != crypto::key_id(log_key) {
        return Err(GenesisError::BadSignature);
    }
    if !crypto::verify_one(log_key, &entry.signed, &entry.signature) {
        return Err(GenesisError::BadSignature);
    }
    Ok(entry)
}
