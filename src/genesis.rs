//! The genesis entry (index 0): the forum's first members and keys, signed by the log key.
//!
//! `hashforum init` makes it; the server appends it verbatim when it starts on an empty
//! database, after checking the log key's signature. Everything after is replayable from
//! entry 0 with only the forum's public key.

use ed25519_dalek::{SigningKey, VerifyingKey};
use prost::Message;

use crate::crypto;
use crate::entry::{Author, Body, ParsedEntry};
use crate::log::tree::Frontier;
use crate::pb;
use crate::state::{Directory, Effect, Pending};
use crate::storage::{StorageError, Store};
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
                cert_sha256: vec![crypto::cert_fingerprint(&f.cert_der).as_bytes().to_vec()],
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
        issued_at_unix_ms: time_ms,
        origin: origin.to_owned(),
        body: Some(pb::statement::Body::Genesis(genesis)),
    };
    pb::LogEntry {
        envelope: Some(crypto::sign_statement(log_key, &statement)),
        sequenced_at_unix_ms: time_ms,
        relayed_by: String::new(),
    }
    .encode_to_vec()
}

/// Appends the genesis entry to an empty store, or checks that a non-empty store starts with
/// exactly these bytes. The entry is parsed and verified only on an empty store: a store that
/// holds it accepted it then, and it is not re-judged by later admission rules.
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
    if store.size()? > 0 {
        return match store.entry(0)? {
            Some(first) if first == leaf => check_stored(&first, log_key, origin),
            _ => Err(GenesisError::OtherForum),
        };
    }
    let entry = parse(leaf, log_key, origin)?;
    let time_ms = pb::LogEntry::decode(leaf)
        .map_err(|e| GenesisError::Invalid(e.to_string()))?
        .sequenced_at_unix_ms;
    let mut pending = Pending::new(
        store,
        None,
        Directory::default(),
        Frontier::default(),
        time_ms,
    );
    pending.append_leaf(entry, Effect::Genesis, leaf)?;
    store.commit(pending.finish().batch)?;
    Ok(())
}

/// Checks a stored entry 0 against this server's forum: its origin and its log key. It is read
/// as stored, not judged again by today's admission rules; but a data directory served with
/// another origin would accept that forum's statements, and another log key would sign
/// checkpoints no one can check.
fn check_stored(leaf: &[u8], log_key: &VerifyingKey, origin: &str) -> Result<(), GenesisError> {
    let stored =
        crate::log::StoredEntry::decode(leaf).map_err(|e| GenesisError::Invalid(e.to_string()))?;
    let genesis_origin = match &stored.statement.body {
        Some(pb::statement::Body::Genesis(g)) => g.origin.as_str(),
        _ => {
            return Err(GenesisError::Invalid(
                "entry 0 is not a genesis statement".into(),
            ))
        }
    };
    if stored.statement.origin != origin || genesis_origin != origin {
        return Err(GenesisError::Invalid(format!(
            "the data directory is forum {genesis_origin:?}, the config says {origin:?}"
        )));
    }
    let [sig] = stored.envelope.signatures.as_slice() else {
        return Err(GenesisError::BadSignature);
    };
    let signature =
        ed25519_dalek::Signature::from_slice(&sig.sig).map_err(|_| GenesisError::BadSignature)?;
    let signed = crypto::pae(&stored.envelope.payload_type, &stored.envelope.payload);
    if sig.keyid != crypto::key_id(log_key) || !crypto::verify_one(log_key, &signed, &signature) {
        return Err(GenesisError::BadSignature);
    }
    Ok(())
}

/// Parses and verifies a genesis entry's bytes for the forum `origin`.
///
/// # Errors
/// When the bytes are not a genesis entry of `origin` signed by `log_key`.
pub fn parse(
    leaf: &[u8],
    log_key: &VerifyingKey,
    origin: &str,
) -> Result<ParsedEntry, GenesisError> {
    let invalid = |e: &dyn std::fmt::Display| GenesisError::Invalid(e.to_string());
    let log_entry = pb::LogEntry::decode(leaf).map_err(|e| invalid(&e))?;
    let envelope = log_entry
        .envelope
        .ok_or_else(|| GenesisError::Invalid("no envelope".into()))?;
    let entry = ParsedEntry::parse(envelope, origin).map_err(|e| invalid(&e))?;
    match &entry.body {
        Body::Genesis(g) if g.origin == origin => {}
        Body::Genesis(_) => {
            return Err(GenesisError::Invalid(format!(
                "the genesis entry is not for origin {origin:?}"
            )))
        }
        _ => {
            return Err(GenesisError::Invalid(
                "entry 0 must be a genesis statement".into(),
            ))
        }
    }
    if entry.author != Author::Forum || entry.keyid != crypto::key_id(log_key) {
        return Err(GenesisError::BadSignature);
    }
    if !crypto::verify_one(log_key, &entry.signed, &entry.signature) {
        return Err(GenesisError::BadSignature);
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data directory keeps the forum it began with: restarted with its own genesis file but
    /// another origin or another log key in the config, the server refuses to start.
    #[test]
    fn a_stored_forum_is_checked_against_the_configured_origin_and_log_key() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        let log_key = SigningKey::from_bytes(&[5; 32]);
        let founder = Founder {
            member_id: "admin".into(),
            display_name: "admin".into(),
            roles: vec![Role::Admin],
            cert_der: vec![1],
            signing_key: SigningKey::from_bytes(&[6; 32]).verifying_key(),
        };
        let origin = "prod.example/forum";
        let leaf = create(&log_key, origin, &[founder], 1);
        let vk = log_key.verifying_key();
        bootstrap(&store, &leaf, &vk, origin).expect("first start");
        bootstrap(&store, &leaf, &vk, origin).expect("restart");
        assert!(matches!(
            bootstrap(&store, &leaf, &vk, "staging.example/forum"),
            Err(GenesisError::Invalid(why)) if why.contains("staging.example/forum")
        ));
        let other = SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert!(matches!(
            bootstrap(&store, &leaf, &other, origin),
            Err(GenesisError::BadSignature)
        ));
    }
}
