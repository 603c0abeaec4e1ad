//! Building and signing statements: what the CLI, the bench and the tests submit.
//!
//! A [`Signer`] is a member of one forum with its signing key. Every statement it makes names
//! the forum's origin and its author; admin statements carry a fresh issue time (the server
//! refuses stale ones), hash submissions none, so that submitting the same hash with the same
//! labels again is a resubmission and gets the original receipt. Opinions and retractions
//! carry their issue time too (not held to a window): a member may retract, submit again and
//! retract again with the same reason, and each is a new statement, not a resubmission.

use std::sync::atomic::{AtomicU64, Ordering};

use ed25519_dalek::SigningKey;

use crate::crypto;
use crate::log::now_ms;
use crate::pb;
use crate::types::{ContentHash, HashType, Role};

/// A member of one forum, signing with one key.
#[derive(Clone)]
pub struct Signer {
    origin: String,
    author: String,
    key: SigningKey,
}

impl Signer {
    /// A signer for `author` in the forum `origin`.
    pub fn new(origin: impl Into<String>, author: impl Into<String>, key: SigningKey) -> Self {
        Self {
            origin: origin.into(),
            author: author.into(),
            key,
        }
    }

    /// The signer of an identity directory.
    pub fn of(identity: &crate::identity::Identity) -> Self {
        Self::new(
            identity.file.origin.clone(),
            identity.file.member.clone(),
            identity.signing_key.clone(),
        )
    }

    /// The author's member id.
    pub fn author(&self) -> &str {
        &self.author
    }

    /// A statement by this author with `body`, issued at `issued_at_unix_ms`.
    pub fn statement(&self, issued_at_unix_ms: u64, body: pb::statement::Body) -> pb::Statement {
        pb::Statement {
            author: self.author.clone(),
            issued_at_unix_ms,
            origin: self.origin.clone(),
            body: Some(body),
        }
    }

    /// Signs a statement into a DSSE envelope.
    pub fn sign(&self, statement: &pb::Statement) -> pb::Envelope {
        crypto::sign_statement(&self.key, statement)
    }

    /// A signed hash submission.
    pub fn submit(&self, submission: pb::HashSubmission) -> pb::Envelope {
        self.sign(&self.statement(0, pb::statement::Body::HashSubmission(submission)))
    }

    /// A signed admin statement, issued now.
    pub fn admin(&self, body: pb::statement::Body) -> pb::Envelope {
        self.sign(&self.statement(fresh_ms(), body))
    }

    /// A signed opinion of a hash, issued now.
    pub fn opinion(
        &self,
        hash: &ContentHash,
        opinion: pb::OpinionKind,
        reason: &str,
    ) -> pb::Envelope {
        let body = pb::statement::Body::HashOpinion(pb::HashOpinion {
            hash_type: hash.hash_type().to_pb() as i32,
            value: hash.to_hex(),
            opinion: opinion as i32,
            reason: reason.to_owned(),
        });
        self.sign(&self.statement(fresh_ms(), body))
    }

    /// A signed retraction of the author's submission of a hash, issued now.
    pub fn retract(&self, hash: &ContentHash, reason: &str) -> pb::Envelope {
        let body = pb::statement::Body::HashRetraction(pb::HashRetraction {
            hash_type: hash.hash_type().to_pb() as i32,
            value: hash.to_hex(),
            reason: reason.to_owned(),
        });
        self.sign(&self.statement(fresh_ms(), body))
    }
}

/// The current time in milliseconds, strictly increasing within this process: two admin
/// statements made in the same millisecond (suspend, then reinstate) are still different
/// statements.
pub fn fresh_ms() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(last.saturating_add(1).max(now))
        })
        .unwrap_or(now);
    prev.saturating_add(1).max(now)
}

/// A hash submission without labels; set its fields as needed.
pub fn hash_submission(hash_type: HashType, value: &str) -> pb::HashSubmission {
    pb::HashSubmission {
        hash_type: hash_type.to_pb() as i32,
        value: value.to_owned(),
        ..Default::default()
    }
}

/// A hash submission of a validated hash.
pub fn submission_of(hash: &ContentHash) -> pb::HashSubmission {
    hash_submission(hash.hash_type(), &hash.to_hex())
}

/// Admin bodies.
pub mod admin {
    use super::{pb, Role};

    /// Adds a member with its roles and certificate fingerprints.
    pub fn add_member(
        member_id: &str,
        display_name: &str,
        roles: &[Role],
        cert_sha256: Vec<Vec<u8>>,
    ) -> pb::statement::Body {
        pb::statement::Body::MemberAdded(pb::MemberAdded {
            member_id: member_id.into(),
            display_name: display_name.into(),
            roles: roles.iter().map(|r| r.to_pb() as i32).collect(),
            cert_sha256,
        })
    }

    /// Registers a signing key.
    pub fn register_key(member_id: &str, key: &ed25519_dalek::VerifyingKey) -> pb::statement::Body {
        pb::statement::Body::KeyRegistered(pb::KeyRegistered {
            member_id: member_id.into(),
            public_key: key.to_bytes().to_vec(),
        })
    }

    /// Revokes a signing key.
    pub fn revoke_key(member_id: &str, keyid: &str, reason: &str) -> pb::statement::Body {
        pb::statement::Body::KeyRevoked(pb::KeyRevoked {
            member_id: member_id.into(),
            keyid: keyid.into(),
            reason: reason.into(),
        })
    }

    /// Replaces a member's roles.
    pub fn set_roles(member_id: &str, roles: &[Role]) -> pb::statement::Body {
        pb::statement::Body::RolesSet(pb::RolesSet {
            member_id: member_id.into(),
            roles: roles.iter().map(|r| r.to_pb() as i32).collect(),
        })
    }

    /// Suspends a member.
    pub fn suspend(member_id: &str, reason: &str) -> pb::statement::Body {
        pb::statement::Body::MemberSuspended(pb::MemberSuspended {
            member_id: member_id.into(),
            reason: reason.into(),
        })
    }

    /// Reinstates a member.
    pub fn reinstate(member_id: &str, reason: &str) -> pb::statement::Body {
        pb::statement::Body::MemberReinstated(pb::MemberReinstated {
            member_id: member_id.into(),
            reason: reason.into(),
        })
    }

    /// Removes a member.
    pub fn remove(member_id: &str, reason: &str) -> pb::statement::Body {
        pb::statement::Body::MemberRemoved(pb::MemberRemoved {
            member_id: member_id.into(),
            reason: reason.into(),
        })
    }

    /// Binds a certificate.
    pub fn bind_cert(member_id: &str, cert_sha256: &[u8], reason: &str) -> pb::statement::Body {
        pb::statement::Body::CertBound(pb::CertBound {
            member_id: member_id.into(),
            cert_sha256: cert_sha256.to_vec(),
            reason: reason.into(),
        })
    }

    /// Withdraws a hash for every member.
    pub fn withdraw(hash: &super::ContentHash, reason: &str) -> pb::statement::Body {
        pb::statement::Body::HashWithdrawal(pb::HashWithdrawal {
            hash_type: hash.hash_type().to_pb() as i32,
            value: hash.to_hex(),
            reason: reason.into(),
        })
    }

    /// Declares an incident.
    pub fn declare_incident(
        incident_id: &str,
        title: &str,
        level: pb::IncidentLevel,
    ) -> pb::statement::Body {
        pb::statement::Body::IncidentDeclared(pb::IncidentDeclared {
            incident_id: incident_id.into(),
            title: title.into(),
            level: level as i32,
        })
    }

    /// Closes an incident.
    pub fn close_incident(incident_id: &str, reason: &str) -> pb::statement::Body {
        pb::statement::Body::IncidentClosed(pb::IncidentClosed {
            incident_id: incident_id.into(),
            reason: reason.into(),
        })
    }

    /// Unbinds a certificate.
    pub fn unbind_cert(member_id: &str, cert_sha256: &[u8], reason: &str) -> pb::statement::Body {
        pb::statement::Body::CertUnbound(pb::CertUnbound {
            member_id: member_id.into(),
            cert_sha256: cert_sha256.to_vec(),
            reason: reason.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_times_strictly_increase() {
        let times: Vec<u64> = (0..1_000).map(|_| fresh_ms()).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert!(times[0] + 5_000 > now_ms(), "close to the clock");
    }
}
