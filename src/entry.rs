//! Parsing signed entries at the door: a `pb::Envelope` becomes a [`ParsedEntry`] whose
//! statement is fully validated, or an `INVALID_ARGUMENT` naming the field.
//!
//! Parsing checks form only. Whether the key is registered and valid, whether the signature
//! verifies and whether the author may say this depend on the registry's state and are checked
//! by `state` and `ingest`.

use bytes::Bytes;
use ed25519_dalek::Signature;
use prost::Message;

use crate::crypto::{self, PAYLOAD_TYPE};
use crate::error::ServiceError;
use crate::pb;
use crate::types::{ContentHash, HashType, Invalid, MemberId, Role};

/// Largest accepted statement payload, so that every log entry fits a tlog-tiles entry bundle
/// (entries of at most 65,535 bytes).
pub const MAX_PAYLOAD: usize = 60 * 1024;
/// Most free tags on one submission.
pub const MAX_TAGS: usize = 32;
/// Content types of the forum taxonomy.
pub const CONTENT_TYPES: [&str; 7] = ["image", "video", "audio", "pdf", "text", "url", "other"];

impl std::fmt::Display for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Author::Forum => f.write_str(MemberId::FORUM),
            Author::Member(id) => id.fmt(f),
        }
    }
}

/// A well-formed envelope, not yet checked against the registry's state.
#[derive(Debug, Clone)]
pub struct ParsedEntry {
    /// The envelope exactly as received.
    pub envelope: pb::Envelope,
    /// The pre-authentication encoding of the payload: the bytes the signature covers.
    pub signed: Vec<u8>,
    /// SHA-256 of `signed`: equal digests, equal statements.
    pub digest: [u8; 32],
    /// The start of this entry's log leaf: a `LogEntry` holding only the envelope. Encoded here,
    /// in parallel, so that the sequencer only appends the sequencing time.
    pub leaf_prefix: Vec<u8>,
    /// The statement's author.
    pub author: Author,
    /// The DSSE key id of the one signature.
    pub keyid: String,
    /// The signature.
    pub signature: Signature,
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

/// What a statement says.
#[derive(Debug, Clone)]
pub enum Body {
    /// Creates the forum (entry 0).
    Genesis(pb::Genesis),
    /// Shares a hash.
    HashSubmission(HashSubmission),
    /// Changes membership or keys.
    Admin(AdminAction),
}

impl Body {
    /// The role the author needs to make this statement.
    pub fn required_role(&self) -> Option<Role> {
        match self {
            Body::Genesis(_) => None,
            Body::HashSubmission(_) => Some(Role::Contributor),
            Body::Admin(_) => Some(Role::Admin),
        }
    }
}

/// A validated admin action. Whether it makes sense now (the member exists, is suspended, the
/// key is not revoked yet, an admin remains) depends on the registry's state and is checked
/// by `state`.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminAction {
    /// Adds a member with its roles and certificate bindings.
    AddMember {
        /// The new member.
        member: MemberId,
        /// Its display name.
        display_name: String,
        /// Its roles.
        roles: Vec<Role>,
        /// SHA-256 fingerprints of its TLS client certificates.
        certs: Vec<[u8; 32]>,
    },
    /// Replaces a member's roles.
    SetRoles {
        /// The member.
        member: MemberId,
        /// Its new roles.
        roles: Vec<Role>,
    },
    /// Suspends an active member.
    Suspend {
        /// The member.
        member: MemberId,
    },
    /// Reinstates a suspended member.
    Reinstate {
        /// The member.
        member: MemberId,
    },
    /// Removes a member for good.
    Remove {
        /// The member.
        member: MemberId,
    },
    /// Registers a signing key.
    RegisterKey {
        /// The member.
        member: MemberId,
        /// The key.
        key: ed25519_dalek::VerifyingKey,
    },
    /// Revokes a signing key.
    RevokeKey {
        /// The member.
        member: MemberId,
        /// The key id.
        keyid: String,
    },
}

impl AdminAction {
    /// The member the action is about.
    pub fn member(&self) -> &MemberId {
        match self {
            AdminAction::AddMember { member, .. }
            | AdminAction::SetRoles { member, .. }
            | AdminAction::Suspend { member }
            | AdminAction::Reinstate { member }
            | AdminAction::Remove { member }
            | AdminAction::RegisterKey { member, .. }
            | AdminAction::RevokeKey { member, .. } => member,
        }
    }

    /// The action's name in audit listings.
    pub fn name(&self) -> &'static str {
        match self {
            AdminAction::AddMember { .. } => "added",
            AdminAction::SetRoles { .. } => "roles_set",
            AdminAction::Suspend { .. } => "suspended",
            AdminAction::Reinstate { .. } => "reinstated",
            AdminAction::Remove { .. } => "removed",
            AdminAction::RegisterKey { .. } => "key_registered",
            AdminAction::RevokeKey { .. } => "key_revoked",
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
}

impl ParsedEntry {
    /// Parses and validates an envelope.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT`, with the field relative to the envelope (e.g. `payload_type`,
    /// `signatures[0].sig`, `payload.hash_submission.value`).
    pub fn parse(envelope: pb::Envelope) -> Result<Self, ServiceError> {
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
        let keyid = sig.keyid.clone();
        let statement = pb::Statement::decode(envelope.payload.clone()).map_err(|e| {
            ServiceError::invalid(
                "payload",
                "INVALID_STATEMENT",
                format!("not a Statement: {e}"),
            )
        })?;
        let (author, body) = parse_statement(statement).map_err(|e| e.in_field("payload"))?;
        let signed = crypto::pae(&envelope.payload_type, &envelope.payload);
        let leaf_prefix = crate::state::leaf_prefix(&envelope);
        Ok(Self {
            digest: crypto::sha256(&signed),
            signed,
            leaf_prefix,
            envelope,
            author,
            keyid,
            signature,
            body,
        })
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        &self.envelope.payload
    }
}

fn parse_statement(statement: pb::Statement) -> Result<(Author, Body), ServiceError> {
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
        Some(pb::statement::Body::Genesis(g)) => Body::Genesis(g),
        Some(pb::statement::Body::HashSubmission(s)) => {
            Body::HashSubmission(parse_submission(s).map_err(|e| e.in_field("hash_submission"))?)
        }
        Some(admin) => Body::Admin(parse_admin(admin)?),
    };
    match (&author, &body) {
        (Author::Forum, Body::Genesis(_))
        | (Author::Member(_), Body::HashSubmission(_) | Body::Admin(_)) => Ok((author, body)),
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
    }
}

fn parse_admin(body: pb::statement::Body) -> Result<AdminAction, ServiceError> {
    use pb::statement::Body as B;
    let member = |field: &str, id: &str| {
        MemberId::parse(id).map_err(|e| {
            ServiceError::invalid(format!("{field}.member_id"), "INVALID_MEMBER_ID", e.0)
        })
    };
    Ok(match body {
        B::MemberAdded(m) => {
            let field = "member_added";
            if m.display_name.len() > 256 || m.display_name.chars().any(char::is_control) {
                return Err(ServiceError::invalid(
                    format!("{field}.display_name"),
                    "INVALID_DISPLAY_NAME",
                    "display names are at most 256 bytes, without control characters",
                ));
            }
            if m.cert_sha256.is_empty() {
                return Err(ServiceError::invalid(
                    format!("{field}.cert_sha256"),
                    "MISSING_FIELD",
                    "a member needs at least one certificate fingerprint",
                ));
            }
            let certs = m
                .cert_sha256
                .iter()
                .enumerate()
                .map(|(i, fp)| {
                    <[u8; 32]>::try_from(fp.as_slice()).map_err(|_| {
                        ServiceError::invalid(
                            format!("{field}.cert_sha256[{i}]"),
                            "INVALID_FINGERPRINT",
                            format!("a SHA-256 fingerprint is 32 bytes, got {}", fp.len()),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            AdminAction::AddMember {
                member: member(field, &m.member_id)?,
                display_name: m.display_name,
                roles: parse_roles(&format!("{field}.roles"), &m.roles)?,
                certs,
            }
        }
        B::RolesSet(r) => AdminAction::SetRoles {
            member: member("roles_set", &r.member_id)?,
            roles: parse_roles("roles_set.roles", &r.roles)?,
        },
        B::MemberSuspended(m) => AdminAction::Suspend {
            member: member("member_suspended", &m.member_id)?,
        },
        B::MemberReinstated(m) => AdminAction::Reinstate {
            member: member("member_reinstated", &m.member_id)?,
        },
        B::MemberRemoved(m) => AdminAction::Remove {
            member: member("member_removed", &m.member_id)?,
        },
        B::KeyRegistered(k) => AdminAction::RegisterKey {
            member: member("key_registered", &k.member_id)?,
            key: parse_public_key(&k.public_key).map_err(|msg| {
                ServiceError::invalid("key_registered.public_key", "INVALID_KEY", msg)
            })?,
        },
        B::KeyRevoked(k) => AdminAction::RevokeKey {
            member: member("key_revoked", &k.member_id)?,
            keyid: k.keyid,
        },
        B::Genesis(_) | B::HashSubmission(_) => {
            return Err(ServiceError::invalid(
                "body",
                "INVALID_STATEMENT",
                "not an admin action",
            ))
        }
    })
}

fn parse_roles(field: &str, roles: &[i32]) -> Result<Vec<Role>, ServiceError> {
    if roles.is_empty() {
        return Err(ServiceError::invalid(
            field,
            "INVALID_ROLE",
            "at least one role is required",
        ));
    }
    let mut out = roles
        .iter()
        .map(|r| Role::from_pb(*r).map_err(|e| ServiceError::invalid(field, "INVALID_ROLE", e.0)))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
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
    check_label("labels.entity", &labels.entity)?;
    check_label("labels.behaviour", &labels.behaviour)?;
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
        }),
    }
}

fn check_label(field: &str, value: &str) -> Result<(), ServiceError> {
    if value.len() > 256 || value.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            field,
            "INVALID_LABEL",
            "labels are at most 256 bytes, without control characters",
        ));
    }
    Ok(())
}

/// Checks one free tag: 1-64 characters of `[a-z0-9._:-]`.
///
/// # Errors
/// When the tag is empty, too long or uses other characters.
pub fn check_tag(tag: &str) -> Result<(), Invalid> {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._:-".contains(c);
    if tag.is_empty() || tag.len() > 64 || !tag.chars().all(ok) {
        return Err(Invalid(format!(
            "tag {tag:?} must be 1-64 characters of [a-z0-9._:-]"
        )));
    }
    Ok(())
}
