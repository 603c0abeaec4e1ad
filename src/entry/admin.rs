//! Admin statements: membership, roles, certificates and signing keys.
//!
//! Parsing checks form only. Whether an action makes sense now (the member exists, is
//! suspended, the key is not revoked yet, an admin remains) depends on the registry's state
//! and is decided by `state::Directory::apply`.

use super::text::check_text;
use super::{parse_public_key, MAX_LABEL, MAX_REASON};
use crate::error::ServiceError;
use crate::pb;
use crate::types::{CertFingerprint, MemberId, Role};

/// Most certificates bound to a member by one statement.
pub const MAX_CERTS: usize = 8;

/// A validated admin action.
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
        /// Fingerprints of its TLS client certificates.
        certs: Vec<CertFingerprint>,
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
    /// Binds a TLS client certificate.
    BindCert {
        /// The member.
        member: MemberId,
        /// The certificate's fingerprint.
        cert: CertFingerprint,
    },
    /// Unbinds a TLS client certificate.
    UnbindCert {
        /// The member.
        member: MemberId,
        /// The certificate's fingerprint.
        cert: CertFingerprint,
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
            | AdminAction::RevokeKey { member, .. }
            | AdminAction::BindCert { member, .. }
            | AdminAction::UnbindCert { member, .. } => member,
        }
    }
}

/// The action's name in audit listings, from the statement body as stored: readable for every
/// entry in the log, whatever today's admission rules.
pub fn action_name(body: &pb::statement::Body) -> &'static str {
    use pb::statement::Body as B;
    match body {
        B::Genesis(_) | B::MemberAdded(_) => "added",
        B::HashSubmission(_) => "hash_submission",
        B::RolesSet(_) => "roles_set",
        B::MemberSuspended(_) => "suspended",
        B::MemberReinstated(_) => "reinstated",
        B::MemberRemoved(_) => "removed",
        B::KeyRegistered(_) => "key_registered",
        B::KeyRevoked(_) => "key_revoked",
        B::CertBound(_) => "cert_bound",
        B::CertUnbound(_) => "cert_unbound",
        B::HashOpinion(_) => "hash_opinion",
        B::HashRetraction(_) => "hash_retraction",
        B::HashWithdrawal(_) => "hash_withdrawal",
        B::IncidentDeclared(_) => "incident_declared",
        B::IncidentClosed(_) => "incident_closed",
    }
}

/// Parses an admin body. Each arm names its fields relative to the statement.
pub(super) fn parse(body: pb::statement::Body) -> Result<AdminAction, ServiceError> {
    use pb::statement::Body as B;
    Ok(match body {
        B::MemberAdded(m) => parse_member_added("member_added", m)?,
        B::RolesSet(r) => AdminAction::SetRoles {
            member: member_id("roles_set", &r.member_id)?,
            roles: parse_roles("roles_set.roles", &r.roles)?,
        },
        B::MemberSuspended(m) => {
            reason("member_suspended", &m.reason)?;
            AdminAction::Suspend {
                member: member_id("member_suspended", &m.member_id)?,
            }
        }
        B::MemberReinstated(m) => {
            reason("member_reinstated", &m.reason)?;
            AdminAction::Reinstate {
                member: member_id("member_reinstated", &m.member_id)?,
            }
        }
        B::MemberRemoved(m) => {
            reason("member_removed", &m.reason)?;
            AdminAction::Remove {
                member: member_id("member_removed", &m.member_id)?,
            }
        }
        B::KeyRegistered(k) => AdminAction::RegisterKey {
            member: member_id("key_registered", &k.member_id)?,
            key: parse_public_key(&k.public_key).map_err(|msg| {
                ServiceError::invalid("key_registered.public_key", "INVALID_KEY", msg)
            })?,
        },
        B::KeyRevoked(k) => {
            reason("key_revoked", &k.reason)?;
            super::check_keyid(&k.keyid).map_err(|e| e.in_field("key_revoked"))?;
            AdminAction::RevokeKey {
                member: member_id("key_revoked", &k.member_id)?,
                keyid: k.keyid,
            }
        }
        B::CertBound(c) => {
            reason("cert_bound", &c.reason)?;
            AdminAction::BindCert {
                member: member_id("cert_bound", &c.member_id)?,
                cert: fingerprint("cert_bound.cert_sha256", &c.cert_sha256)?,
            }
        }
        B::CertUnbound(c) => {
            reason("cert_unbound", &c.reason)?;
            AdminAction::UnbindCert {
                member: member_id("cert_unbound", &c.member_id)?,
                cert: fingerprint("cert_unbound.cert_sha256", &c.cert_sha256)?,
            }
        }
        B::Genesis(_)
        | B::HashSubmission(_)
        | B::HashOpinion(_)
        | B::HashRetraction(_)
        | B::HashWithdrawal(_)
        | B::IncidentDeclared(_)
        | B::IncidentClosed(_) => {
            return Err(ServiceError::invalid(
                "body",
                "INVALID_STATEMENT",
                "not an admin action",
            ))
        }
    })
}

fn parse_member_added(field: &str, m: pb::MemberAdded) -> Result<AdminAction, ServiceError> {
    check_display_name(&format!("{field}.display_name"), &m.display_name)?;
    let certs = parse_certs(&format!("{field}.cert_sha256"), &m.cert_sha256)?;
    Ok(AdminAction::AddMember {
        member: member_id(field, &m.member_id)?,
        display_name: m.display_name,
        roles: parse_roles(&format!("{field}.roles"), &m.roles)?,
        certs,
    })
}

/// Checks a member's display name.
pub(super) fn check_display_name(field: &str, name: &str) -> Result<(), ServiceError> {
    check_text(name, MAX_LABEL)
        .map_err(|e| ServiceError::invalid(field, "INVALID_DISPLAY_NAME", e.0))
}

/// Parses a member's certificate fingerprints: 1 to [`MAX_CERTS`], distinct.
pub(super) fn parse_certs(
    field: &str,
    certs: &[Vec<u8>],
) -> Result<Vec<CertFingerprint>, ServiceError> {
    if certs.is_empty() {
        return Err(ServiceError::invalid(
            field,
            "MISSING_FIELD",
            "a member needs at least one certificate fingerprint",
        ));
    }
    if certs.len() > MAX_CERTS {
        return Err(ServiceError::invalid(
            field,
            "INVALID_FINGERPRINT",
            format!("at most {MAX_CERTS} certificates, got {}", certs.len()),
        ));
    }
    let mut out: Vec<CertFingerprint> = Vec::with_capacity(certs.len());
    for (i, fp) in certs.iter().enumerate() {
        let fp = fingerprint(&format!("{field}[{i}]"), fp)?;
        if out.contains(&fp) {
            return Err(ServiceError::invalid(
                format!("{field}[{i}]"),
                "INVALID_FINGERPRINT",
                "the same certificate is listed twice",
            ));
        }
        out.push(fp);
    }
    Ok(out)
}

fn fingerprint(field: &str, bytes: &[u8]) -> Result<CertFingerprint, ServiceError> {
    CertFingerprint::from_slice(bytes).map_err(|_| {
        ServiceError::invalid(
            field,
            "INVALID_FINGERPRINT",
            format!("a SHA-256 fingerprint is 32 bytes, got {}", bytes.len()),
        )
    })
}

fn member_id(field: &str, id: &str) -> Result<MemberId, ServiceError> {
    MemberId::parse(id)
        .map_err(|e| ServiceError::invalid(format!("{field}.member_id"), "INVALID_MEMBER_ID", e.0))
}

fn reason(field: &str, reason: &str) -> Result<(), ServiceError> {
    check_text(reason, MAX_REASON)
        .map_err(|e| ServiceError::invalid(format!("{field}.reason"), "INVALID_REASON", e.0))
}

/// Parses a non-empty list of roles, sorted and without repeats.
pub(super) fn parse_roles(field: &str, roles: &[i32]) -> Result<Vec<Role>, ServiceError> {
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
