//! The membership view: members, their roles, status, certificates and signing keys; and the
//! forum's incidents (see `incidents`), which submissions are checked against.
//!
//! Rebuilt from the `members` and `incidents` column families at start-up, and changed only by
//! admin actions through `Directory::apply` and `Incidents::apply` (called by `state::check`)
//! and by the genesis entry.
//! The sequencer publishes a fresh snapshot after every commit that changes it; request
//! handlers read the snapshot without locks, so a suspension takes effect on the next call,
//! also on connections opened before it.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::VerifyingKey;
use prost::Message;

use super::incidents::Incidents;
use crate::crypto;
use crate::entry::AdminAction;
use crate::error::ServiceError;
use crate::pb;
use crate::storage::{StorageError, Store};
use crate::types::{CertFingerprint, MemberId, Role};

/// The authenticated caller of an RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The member id.
    pub member_id: MemberId,
    /// Its roles.
    pub roles: Vec<Role>,
}

impl Caller {
    /// Whether the caller has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Requires one of `roles`.
    ///
    /// # Errors
    /// `PERMISSION_DENIED` (`MISSING_ROLE`) otherwise.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ServiceError> {
        if roles.iter().any(|r| self.has(*r)) {
            return Ok(());
        }
        let names: Vec<_> = roles.iter().map(|r| r.name()).collect();
        Err(ServiceError::denied(
            "MISSING_ROLE",
            format!(
                "member {} needs one of the roles: {}",
                self.member_id,
                names.join(", ")
            ),
        ))
    }
}

/// All members, indexed by id, certificate and key.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    members: BTreeMap<String, pb::Member>,
    /// Certificates that authenticate someone now: bound to a member that is not removed.
    by_cert: HashMap<CertFingerprint, String>,
    /// Every certificate ever bound, bound now or retired, and its member: a fingerprint is
    /// never bound to a second member.
    cert_owner: HashMap<CertFingerprint, String>,
    /// Parsed signing keys: member id → key id → key.
    keys: HashMap<String, HashMap<String, VerifyingKey>>,
    /// Every public key ever registered, and its member: a key belongs to one member.
    key_owner: HashMap<[u8; 32], String>,
    /// The forum's incidents.
    incidents: Incidents,
}

impl Directory {
    /// Loads the directory from the store.
    ///
    /// # Errors
    /// When the store fails or holds an undecodable member.
    pub fn load(store: &Store) -> Result<Self, StorageError> {
        let mut dir = Self::default();
        for value in store.members()? {
            let member =
                pb::Member::decode(value.as_slice()).map_err(|e| StorageError::Corrupt {
                    cf: "members",
                    reason: e.to_string(),
                })?;
            dir.upsert(member);
        }
        dir.incidents = Incidents::load(store)?;
        Ok(dir)
    }

    /// The forum's incidents.
    pub fn incidents(&self) -> &Incidents {
        &self.incidents
    }

    /// The forum's incidents, to change them.
    pub fn incidents_mut(&mut self) -> &mut Incidents {
        &mut self.incidents
    }

    /// Inserts or replaces a member and refreshes the indexes.
    pub fn upsert(&mut self, member: pb::Member) {
        let id = &member.member_id;
        let fingerprints = |m: &pb::Member| -> Vec<CertFingerprint> {
            m.cert_sha256
                .iter()
                .filter_map(|fp| CertFingerprint::from_slice(fp).ok())
                .collect()
        };
        if let Some(old) = self.members.get(id) {
            for fp in fingerprints(old) {
                self.by_cert.remove(&fp);
            }
        }
        // A removed member's certificates authenticate nobody.
        if member.status != pb::MemberStatus::Removed as i32 {
            for fp in fingerprints(&member) {
                self.by_cert.insert(fp, id.clone());
            }
        }
        for fp in member.cert_sha256.iter().chain(&member.retired_cert_sha256) {
            if let Ok(fp) = CertFingerprint::from_slice(fp) {
                self.cert_owner.insert(fp, id.clone());
            }
        }
        for key in &member.keys {
            let bytes: Option<[u8; 32]> = key.public_key.as_slice().try_into().ok();
            if let Some(vk) = bytes.and_then(|b| VerifyingKey::from_bytes(&b).ok()) {
                self.key_owner.insert(vk.to_bytes(), id.clone());
                self.keys
                    .entry(id.clone())
                    .or_default()
                    .insert(key.keyid.clone(), vk);
            }
        }
        self.members.insert(id.clone(), member);
    }

    /// A member by id.
    pub fn member(&self, id: &str) -> Option<&pb::Member> {
        self.members.get(id)
    }

    /// Every member, ordered by id.
    pub fn members(&self) -> impl Iterator<Item = &pb::Member> {
        self.members.values()
    }

    /// The caller holding the certificate with this fingerprint.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when the certificate is bound to no member, or its member is not
    /// active.
    pub fn caller(&self, cert_sha256: &CertFingerprint) -> Result<Caller, ServiceError> {
        let member = self
            .by_cert
            .get(cert_sha256)
            .and_then(|id| self.members.get(id))
            .ok_or_else(|| ServiceError::Unauthenticated {
                reason: "UNKNOWN_CERTIFICATE",
                message: "the client certificate is not bound to any member".into(),
            })?;
        Self::active(member).map_err(|_| ServiceError::Unauthenticated {
            reason: "MEMBER_NOT_ACTIVE",
            message: format!("member {} is not active", member.member_id),
        })?;
        let member_id = MemberId::parse(&member.member_id).map_err(|e| {
            ServiceError::Internal(format!("stored member id {:?}: {e}", member.member_id))
        })?;
        Ok(Caller {
            member_id,
            roles: roles(member),
        })
    }

    /// Checks that `author` is an active member that may make a statement needing one of
    /// `needed` (any member when empty).
    ///
    /// # Errors
    /// `PERMISSION_DENIED` when the author is unknown, not active or lacks the roles.
    pub fn check_author(&self, author: &str, needed: &[Role]) -> Result<(), ServiceError> {
        let member = self.members.get(author).ok_or_else(|| {
            ServiceError::denied("UNKNOWN_AUTHOR", format!("{author} is not a member"))
        })?;
        Self::active(member)?;
        let has = roles(member);
        if needed.is_empty() || needed.iter().any(|r| has.contains(r)) {
            return Ok(());
        }
        let names: Vec<&str> = needed.iter().map(|r| r.name()).collect();
        Err(ServiceError::denied(
            "MISSING_ROLE",
            match names.as_slice() {
                [one] => format!("member {author} needs the {one} role"),
                _ => format!(
                    "member {author} needs one of the roles: {}",
                    names.join(", ")
                ),
            },
        ))
    }

    /// The key `keyid` of `member`, if registered and not revoked.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` on `signatures[0].keyid`: `UNKNOWN_KEY` or `REVOKED_KEY`.
    pub fn active_key(&self, member: &str, keyid: &str) -> Result<VerifyingKey, ServiceError> {
        let field = "signatures[0].keyid";
        let record = self
            .members
            .get(member)
            .and_then(|m| m.keys.iter().find(|k| k.keyid == keyid));
        let vk = self.keys.get(member).and_then(|keys| keys.get(keyid));
        match (record, vk) {
            (Some(k), Some(vk)) if k.revoked_at_log_index.is_none() => Ok(*vk),
            (Some(_), Some(_)) => Err(ServiceError::invalid(
                field,
                "REVOKED_KEY",
                format!("key {keyid} of {member} is revoked"),
            )),
            _ => Err(ServiceError::invalid(
                field,
                "UNKNOWN_KEY",
                format!("no key {keyid:?} is registered for {member}"),
            )),
        }
    }

    /// Applies an admin action made at log index `index`, returning the changed member.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown member, key or certificate; `ALREADY_EXISTS` for a member id,
    /// certificate or key already registered (a certificate or key once bound to a member
    /// stays its own); `FAILED_PRECONDITION` when the member's status does not allow the
    /// action, when it would leave a member without a certificate, or when no active admin
    /// with a valid key would remain. On error the directory is unchanged.
    pub fn apply(&mut self, action: &AdminAction, index: u64) -> Result<pb::Member, ServiceError> {
        let id = action.member().as_str();
        let mut member = match (action, self.members.get(id)) {
            (AdminAction::AddMember { .. }, Some(_)) => {
                return Err(ServiceError::AlreadyExists {
                    reason: "MEMBER_EXISTS",
                    message: format!("member {id} already exists"),
                })
            }
            (AdminAction::AddMember { .. }, None) => pb::Member::default(),
            (_, Some(m)) => m.clone(),
            (_, None) => {
                return Err(ServiceError::NotFound {
                    reason: "UNKNOWN_MEMBER",
                    message: format!("no member {id}"),
                })
            }
        };
        if member.status == pb::MemberStatus::Removed as i32 {
            return precondition("MEMBER_REMOVED", format!("member {id} was removed"));
        }
        self.change(&mut member, action, index)?;
        let admin_remains = is_working_admin(&member)
            || self
                .members
                .values()
                .any(|m| m.member_id != member.member_id && is_working_admin(m));
        if !admin_remains {
            return precondition(
                "LAST_ADMIN",
                "the forum needs at least one active admin with a valid signing key".into(),
            );
        }
        self.upsert(member.clone());
        Ok(member)
    }

    /// The change an action makes to `member` (a copy), or why it cannot be made.
    fn change(
        &self,
        member: &mut pb::Member,
        action: &AdminAction,
        index: u64,
    ) -> Result<(), ServiceError> {
        let id = action.member().as_str();
        let status = member.status;
        match action {
            AdminAction::AddMember {
                member: new,
                display_name,
                roles,
                certs,
            } => {
                for fp in certs {
                    self.check_cert_free(fp, id)?;
                }
                *member = pb::Member {
                    member_id: new.to_string(),
                    display_name: display_name.clone(),
                    roles: roles.iter().map(|r| r.to_pb() as i32).collect(),
                    status: pb::MemberStatus::Active as i32,
                    keys: Vec::new(),
                    added_at_log_index: index,
                    cert_sha256: certs.iter().map(|fp| fp.as_bytes().to_vec()).collect(),
                    retired_cert_sha256: Vec::new(),
                };
            }
            AdminAction::SetRoles { roles, .. } => {
                member.roles = roles.iter().map(|r| r.to_pb() as i32).collect();
            }
            AdminAction::Suspend { .. } => {
                if status != pb::MemberStatus::Active as i32 {
                    return precondition("NOT_ACTIVE", format!("member {id} is not active"));
                }
                member.status = pb::MemberStatus::Suspended as i32;
            }
            AdminAction::Reinstate { .. } => {
                if status != pb::MemberStatus::Suspended as i32 {
                    return precondition("NOT_SUSPENDED", format!("member {id} is not suspended"));
                }
                member.status = pb::MemberStatus::Active as i32;
            }
            AdminAction::Remove { .. } => {
                member.status = pb::MemberStatus::Removed as i32;
                let certs = std::mem::take(&mut member.cert_sha256);
                member.retired_cert_sha256.extend(certs);
            }
            AdminAction::RegisterKey { key, .. } => {
                let keyid = crypto::key_id(key);
                if let Some(owner) = self.key_owner.get(key.as_bytes()) {
                    return Err(ServiceError::AlreadyExists {
                        reason: "KEY_EXISTS",
                        message: format!("key {keyid} is already registered for {owner}"),
                    });
                }
                member.keys.push(pb::SigningKey {
                    keyid,
                    public_key: key.to_bytes().to_vec(),
                    valid_from_log_index: index,
                    revoked_at_log_index: None,
                });
            }
            AdminAction::RevokeKey { keyid, .. } => {
                let Some(key) = member.keys.iter_mut().find(|k| &k.keyid == keyid) else {
                    return Err(ServiceError::NotFound {
                        reason: "KEY_NOT_FOUND",
                        message: format!("no key {keyid} is registered for {id}"),
                    });
                };
                if key.revoked_at_log_index.is_some() {
                    return precondition("KEY_REVOKED", format!("key {keyid} is already revoked"));
                }
                key.revoked_at_log_index = Some(index);
            }
            AdminAction::BindCert { cert, .. } => {
                self.check_cert_free(cert, id)?;
                let fp = cert.as_bytes().to_vec();
                if member.cert_sha256.contains(&fp) {
                    return Err(ServiceError::AlreadyExists {
                        reason: "CERTIFICATE_BOUND",
                        message: format!("the certificate is already bound to {id}"),
                    });
                }
                if member.cert_sha256.len() >= crate::entry::MAX_CERTS {
                    return precondition(
                        "TOO_MANY_CERTIFICATES",
                        format!("{id} has {} certificates bound", member.cert_sha256.len()),
                    );
                }
                member.retired_cert_sha256.retain(|c| *c != fp);
                member.cert_sha256.push(fp);
            }
            AdminAction::UnbindCert { cert, .. } => {
                let fp = cert.as_bytes().to_vec();
                let Some(pos) = member.cert_sha256.iter().position(|c| *c == fp) else {
                    return Err(ServiceError::NotFound {
                        reason: "CERTIFICATE_NOT_BOUND",
                        message: format!("the certificate is not bound to {id}"),
                    });
                };
                if member.cert_sha256.len() == 1 {
                    return precondition(
                        "LAST_CERTIFICATE",
                        format!(
                            "{id} would have no certificate left (suspend or remove it instead)"
                        ),
                    );
                }
                member.cert_sha256.remove(pos);
                member.retired_cert_sha256.push(fp);
            }
        }
        Ok(())
    }

    /// Refuses a certificate bound, now or once, to a member other than `id`.
    fn check_cert_free(&self, fp: &CertFingerprint, id: &str) -> Result<(), ServiceError> {
        match self.cert_owner.get(fp) {
            Some(holder) if holder != id => Err(ServiceError::AlreadyExists {
                reason: "CERTIFICATE_IN_USE",
                message: format!("the certificate is, or was, bound to member {holder}"),
            }),
            _ => Ok(()),
        }
    }

    fn active(member: &pb::Member) -> Result<(), ServiceError> {
        if member.status == pb::MemberStatus::Active as i32 {
            Ok(())
        } else {
            Err(ServiceError::denied(
                "MEMBER_NOT_ACTIVE",
                format!("member {} is not active", member.member_id),
            ))
        }
    }
}

/// Whether `member` is an active admin holding an unrevoked signing key.
fn is_working_admin(member: &pb::Member) -> bool {
    member.status == pb::MemberStatus::Active as i32
        && roles(member).contains(&Role::Admin)
        && member.keys.iter().any(|k| k.revoked_at_log_index.is_none())
}

fn precondition<T>(reason: &'static str, message: String) -> Result<T, ServiceError> {
    Err(ServiceError::FailedPrecondition { reason, message })
}

/// A member's roles, skipping any unknown numbers.
pub fn roles(member: &pb::Member) -> Vec<Role> {
    member
        .roles
        .iter()
        .filter_map(|r| Role::from_pb(*r).ok())
        .collect()
}
