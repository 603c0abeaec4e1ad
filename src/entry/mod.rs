//! Parsing signed entries at the door: a `pb::Envelope` becomes a [`ParsedEntry`] whose
//! statement is fully validated, or an `INVALID_ARGUMENT` naming the field.
//!
//! Parsing checks form only: the envelope, that the payload is exactly the canonical encoding
//! of one `Statement` (nothing else can enter the permanent log), that the statement names this
//! forum's origin, and every field of its body. Whether the key is registered and valid,
//! whether the signature verifies and whether the author may say this depend on the registry's
//! state and are checked by `state::check` (at the entry's place in the log) and `registry`.
//!
//! These are admission rules, for new entries. Entries already in the log are read back with
//! [`crate::log::StoredEntry`], which does not re-apply them: tightening a limit here never
//! makes old entries unreadable.

mod admin;
mod genesis;
mod provenance;
pub mod text;

use bytes::Bytes;
use ed25519_dalek::Signature;
use prost::Message;

pub use admin::{action_name, AdminAction, MAX_CERTS};
pub use genesis::{check_origin, validate_genesis};
pub use provenance::{IncidentAction, Opinion, Retraction, Withdrawal};
pub use text::check_tag;

use crate::crypto::{self, PAYLOAD_TYPE};
use crate::error::ServiceError;
use crate::log;
use crate::pb;
use crate::types::{ContentHash, HashType, IncidentId, MemberId, Role, StatementDigest};

/// Largest accepted statement payload. The largest legitimate statement, a hash submission
/// with every label at its limit and 32 tags of 64 characters, is about 2.7 KiB.
pub const MAX_PAYLOAD: usize = 8 * 1024;
/// Most free tags on one submission.
pub const MAX_TAGS: usize = 32;
/// Longest label value, display name or origin, in bytes.
pub const MAX_LABEL: usize = 256;
/// Longest reason given for an admin action, in bytes.
pub const MAX_REASON: usize = 1024;
/// Content types of the forum taxonomy.
pub const CONTENT_TYPES: [&str; 7] = ["image", "video", "audio", "pdf", "text", "url", "other"];

/// A well-formed envelope, not yet checked against the registry's state.
#[derive(Debug, Clone)]
pub struct ParsedEntry {
    /// The envelope exactly as received.
    pub envelope: pb::Envelope,
    /// The pre-authentication encoding of the payload: the bytes the signature covers.
    pub signed: Vec<u8>,
    /// SHA-256 of `signed`: equal digests, equal statements.
    pub digest: StatementDigest,
    /// The start of this entry's log leaf (see [`log::leaf_prefix`]), encoded here, in
    /// parallel, so that the sequencer only appends the sequencing time.
    pub leaf_prefix: Vec<u8>,
    /// The statement's author.
    pub author: Author,
    /// The DSSE key id of the one signature.
    pub keyid: String,
    /// The signature.
    pub signature: Signature,
    /// When the author says it made the statement (`Statement.issued_at_unix_ms`).
    pub issued_at_unix_ms: u64,
    /// What the statement says.
    pub body: Body,
}

/// Who signed a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Author {
    /// The forum itself, through the log key: the genesis entry only.
    Forum,
    /// A member.
    Member(MemberId),
}

impl std::fmt::Display for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Author::Forum => f.write_str(MemberId::FORUM),
            Author::Member(id) => id.fmt(f),
        }
    }
}

/// What a statement says.
#[derive(Debug, Clone)]
pub enum Body {
    /// Creates the forum (entry 0); validated by [`validate_genesis`].
    Genesis(pb::Genesis),
    /// Shares a hash.
    HashSubmission(HashSubmission),
    /// Changes membership, certificates or keys.
    Admin(AdminAction),
    /// Says what a member thinks of a hash.
    Opinion(Opinion),
    /// Retracts the author's own submission of a hash.
    Retraction(Retraction),
    /// Withdraws a hash for every member (admin).
    Withdrawal(Withdrawal),
    /// Declares or closes an incident (admin).
    Incident(IncidentAction),
}

impl Body {
    /// The roles of which the author needs one to make this statement (none for the genesis
    /// entry): the one table of who may say what. An opinion is feedback from any member that
    /// reviews matches (a reader) or shares hashes (a contributor).
    pub fn required_roles(&self) -> &'static [Role] {
        match self {
            Body::Genesis(_) => &[],
            Body::HashSubmission(_) | Body::Retraction(_) => &[Role::Contributor],
            Body::Opinion(_) => &[Role::Reader, Role::Contributor],
            Body::Admin(_) | Body::Withdrawal(_) | Body::Incident(_) => &[Role::Admin],
        }
    }

    /// Whether this is an admin statement, accepted only with a fresh issue time.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Body::Admin(_) | Body::Withdrawal(_) | Body::Incident(_)
        )
    }

    /// The hash whose record the statement changes, if any.
    pub fn hash(&self) -> Option<&ContentHash> {
        match self {
            Body::HashSubmission(s) => Some(&s.hash),
            Body::Opinion(o) => Some(&o.hash),
            Body::Retraction(r) => Some(&r.hash),
            Body::Withdrawal(w) => Some(&w.hash),
            Body::Genesis(_) | Body::Admin(_) | Body::Incident(_) => None,
        }
    }
}

/// A validated hash submission.
#[derive(Debug, Clone)]
pub struct HashSubmission {
    /// The hash.
    pub hash: ContentHash,
    /// The taxonomy labels, validated.
    pub labels: pb::Labels,
    /// The free tags, validated.
    pub tags: Vec<String>,
    /// PDQ quality (0-100), PDQ only.
    pub quality: Option<u32>,
    /// The incident the content belongs to, which must be open when the entry is appended.
    pub incident: Option<IncidentId>,
}

impl ParsedEntry {
    /// Parses and validates an envelope for the forum whose origin line is `origin`.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT`, with the field relative to the envelope (e.g. `payload_type`,
    /// `signatures[0].sig`, `payload.origin`, `payload.hash_submission.value`).
    pub fn parse(envelope: pb::Envelope, origin: &str) -> Result<Self, ServiceError> {
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(ServiceError::invalid(
                "payload_type",
                "INVALID_ENVELOPE",
                format!("payload type must be {PAYLOAD_TYPE:?}"),
            ));
        }
        if envelope.payload.len() > MAX_PAYLOAD {
            return Err(ServiceError::invalid(
                "payload",
                "PAYLOAD_TOO_LARGE",
                format!(
                    "payload is {} bytes, at most {MAX_PAYLOAD}",
                    envelope.payload.len()
                ),
            ));
        }
        let [sig] = envelope.signatures.as_slice() else {
            return Err(ServiceError::invalid(
                "signatures",
                "INVALID_ENVELOPE",
                format!(
                    "exactly one signature required, got {}",
                    envelope.signatures.len()
                ),
            ));
        };
        let signature = Signature::from_slice(&sig.sig).map_err(|_| {
            ServiceError::invalid(
                "signatures[0].sig",
                "BAD_SIGNATURE",
                format!("an Ed25519 signature is 64 bytes, got {}", sig.sig.len()),
            )
        })?;
        check_keyid(&sig.keyid).map_err(|e| e.in_field("signatures[0]"))?;
        let keyid = sig.keyid.clone();
        // The payload arrives as a slice of the whole request's buffer: an owned copy (at most
        // MAX_PAYLOAD bytes) lets that buffer go, so that a queued entry holds only itself.
        let mut envelope = envelope;
        envelope.payload = Bytes::copy_from_slice(&envelope.payload);
        let statement = decode_exact(&envelope.payload).map_err(|e| e.in_field("payload"))?;
        let issued_at_unix_ms = statement.issued_at_unix_ms;
        let (author, body) =
            parse_statement(statement, origin).map_err(|e| e.in_field("payload"))?;
        let signed = crypto::pae(&envelope.payload_type, &envelope.payload);
        let leaf_prefix = log::leaf_prefix(&envelope);
        Ok(Self {
            digest: StatementDigest(crypto::sha256(&signed)),
            signed,
            leaf_prefix,
            envelope,
            author,
            keyid,
            signature,
            issued_at_unix_ms,
            body,
        })
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        &self.envelope.payload
    }
}

/// Decodes a statement and requires the payload to be exactly its canonical encoding: fields
/// in order, no unknown fields, no default values written out, nothing after the last field.
/// Protobuf decoders skip what they do not know, so without this a signed entry could carry
/// arbitrary bytes into the permanent log, and one statement could have many encodings.
fn decode_exact(payload: &Bytes) -> Result<pb::Statement, ServiceError> {
    let statement = pb::Statement::decode(payload.clone()).map_err(|e| {
        ServiceError::invalid("", "INVALID_STATEMENT", format!("not a Statement: {e}"))
    })?;
    if statement.encoded_len() != payload.len() || statement.encode_to_vec() != payload[..] {
        return Err(ServiceError::invalid(
            "",
            "NON_CANONICAL_STATEMENT",
            "the payload must be exactly the canonical protobuf encoding of one Statement \
             (fields in order, no unknown fields, no trailing bytes)",
        ));
    }
    Ok(statement)
}

/// Checks a DSSE key id: 32 lowercase hex characters (see [`crypto::key_id`]).
fn check_keyid(keyid: &str) -> Result<(), ServiceError> {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if keyid.len() == 32 && keyid.bytes().all(hex) {
        return Ok(());
    }
    Err(ServiceError::invalid(
        "keyid",
        "INVALID_KEY_ID",
        "a key id is 32 lowercase hex characters",
    ))
}

fn parse_statement(statement: pb::Statement, origin: &str) -> Result<(Author, Body), ServiceError> {
    if statement.origin != origin {
        return Err(ServiceError::invalid(
            "origin",
            "WRONG_ORIGIN",
            format!(
                "the statement is for forum {:?}, this is {origin:?}",
                text::truncate(&statement.origin, MAX_LABEL)
            ),
        ));
    }
    let author = if statement.author == MemberId::FORUM {
        Author::Forum
    } else {
        let id = MemberId::parse(&statement.author)
            .map_err(|e| ServiceError::invalid("author", "INVALID_MEMBER_ID", e.0))?;
        Author::Member(id)
    };
    let body = match statement.body {
        None => {
            return Err(ServiceError::invalid(
                "body",
                "INVALID_STATEMENT",
                "statement has no body",
            ))
        }
        Some(pb::statement::Body::Genesis(g)) => {
            validate_genesis(&g).map_err(|e| e.in_field("genesis"))?;
            Body::Genesis(g)
        }
        Some(pb::statement::Body::HashSubmission(s)) => {
            Body::HashSubmission(parse_submission(s).map_err(|e| e.in_field("hash_submission"))?)
        }
        Some(pb::statement::Body::HashOpinion(o)) => {
            Body::Opinion(provenance::parse_opinion(o).map_err(|e| e.in_field("hash_opinion"))?)
        }
        Some(pb::statement::Body::HashRetraction(r)) => Body::Retraction(
            provenance::parse_retraction(r).map_err(|e| e.in_field("hash_retraction"))?,
        ),
        Some(pb::statement::Body::HashWithdrawal(w)) => Body::Withdrawal(
            provenance::parse_withdrawal(w).map_err(|e| e.in_field("hash_withdrawal"))?,
        ),
        Some(pb::statement::Body::IncidentDeclared(d)) => Body::Incident(
            provenance::parse_declared(d).map_err(|e| e.in_field("incident_declared"))?,
        ),
        Some(pb::statement::Body::IncidentClosed(c)) => {
            Body::Incident(provenance::parse_closed(c).map_err(|e| e.in_field("incident_closed"))?)
        }
        Some(other) => Body::Admin(admin::parse(other)?),
    };
    match (&author, &body) {
        (Author::Forum, Body::Genesis(_)) => Ok((author, body)),
        (Author::Forum, _) => Err(ServiceError::invalid(
            "author",
            "INVALID_STATEMENT",
            "only the genesis entry is authored by the forum",
        )),
        (Author::Member(_), Body::Genesis(_)) => Err(ServiceError::invalid(
            "genesis",
            "INVALID_STATEMENT",
            "a genesis statement is authored by the forum",
        )),
        (Author::Member(_), _) => Ok((author, body)),
    }
}

/// Parses a 32-byte Ed25519 public key, refusing small-order ("weak") keys.
///
/// # Errors
/// Why the bytes are not an acceptable key.
pub fn parse_public_key(bytes: &[u8]) -> Result<ed25519_dalek::VerifyingKey, String> {
    let arr = <[u8; 32]>::try_from(bytes)
        .map_err(|_| format!("an Ed25519 public key is 32 bytes, got {}", bytes.len()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&arr)
        .map_err(|_| "not an Ed25519 public key".to_owned())?;
    if key.is_weak() {
        return Err("a small-order key cannot be registered".into());
    }
    Ok(key)
}

fn parse_submission(s: pb::HashSubmission) -> Result<HashSubmission, ServiceError> {
    let hash_type = HashType::from_pb(s.hash_type)
        .map_err(|e| ServiceError::invalid("hash_type", "UNKNOWN_HASH_TYPE", e.0))?;
    let hash = ContentHash::parse(hash_type, &s.value)
        .map_err(|e| ServiceError::invalid("value", "INVALID_HASH", e.0))?;
    let labels = s.labels.unwrap_or_default();
    let label = |field: &str, value: &str| {
        text::check_text(value, MAX_LABEL)
            .map_err(|e| ServiceError::invalid(field, "INVALID_LABEL", e.0))
    };
    label("labels.entity", &labels.entity)?;
    label("labels.behaviour", &labels.behaviour)?;
    if !labels.content_type.is_empty() && !CONTENT_TYPES.contains(&labels.content_type.as_str()) {
        return Err(ServiceError::invalid(
            "labels.content_type",
            "INVALID_LABEL",
            format!("content type must be one of {}", CONTENT_TYPES.join(", ")),
        ));
    }
    if s.tags.len() > MAX_TAGS {
        return Err(ServiceError::invalid(
            "tags",
            "INVALID_TAG",
            format!("at most {MAX_TAGS} tags, got {}", s.tags.len()),
        ));
    }
    for (i, tag) in s.tags.iter().enumerate() {
        check_tag(tag)
            .map_err(|e| ServiceError::invalid(format!("tags[{i}]"), "INVALID_TAG", e.0))?;
    }
    match (hash_type, s.quality) {
        (HashType::Pdq, Some(q)) if q > 100 => Err(ServiceError::invalid(
            "quality",
            "INVALID_QUALITY",
            format!("PDQ quality is 0-100, got {q}"),
        )),
        (t, Some(_)) if t != HashType::Pdq => Err(ServiceError::invalid(
            "quality",
            "INVALID_QUALITY",
            "quality is only for PDQ hashes",
        )),
        _ => Ok(HashSubmission {
            hash,
            labels,
            tags: s.tags,
            quality: s.quality,
            incident: match s.incident_id.as_str() {
                "" => None,
                id => Some(provenance::parse_incident_id("incident_id", id)?),
            },
        }),
    }
}

#[cfg(test)]
mod tests;
