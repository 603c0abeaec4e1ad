//! The genesis statement (entry 0), validated as strictly as the admin actions it stands for:
//! every founding member is a `MemberAdded` and every key a `KeyRegistered`, with the same
//! rules, plus what only a list can break (repeated ids, keys or certificates).

use std::collections::HashSet;

use super::admin::{check_display_name, parse_certs, parse_roles};
use super::parse_public_key;
use crate::error::ServiceError;
use crate::pb;
use crate::types::{MemberId, Role};

/// Validates a genesis statement: the origin, each founding member as an added member would
/// be, distinct ids, certificates and keys, keys only for listed members, and at least one
/// admin with a signing key.
///
/// # Errors
/// `INVALID_ARGUMENT` (`INVALID_GENESIS`) naming the genesis field.
pub fn validate_genesis(g: &pb::Genesis) -> Result<(), ServiceError> {
    let bad = |field: String, msg: String| ServiceError::invalid(field, "INVALID_GENESIS", msg);
    check_origin(&g.origin).map_err(|msg| bad("origin".into(), msg))?;
    let mut ids = HashSet::new();
    let mut certs = HashSet::new();
    let mut admins = HashSet::new();
    for (i, m) in g.members.iter().enumerate() {
        let field = format!("members[{i}]");
        let regenesis = |e: ServiceError| bad(field.clone(), e.to_string());
        let id =
            MemberId::parse(&m.member_id).map_err(|e| bad(format!("{field}.member_id"), e.0))?;
        check_display_name("display_name", &m.display_name).map_err(regenesis)?;
        let roles = parse_roles("roles", &m.roles).map_err(regenesis)?;
        if !ids.insert(id.clone()) {
            return Err(bad(
                format!("{field}.member_id"),
                format!("{id} is listed twice"),
            ));
        }
        for fp in parse_certs("cert_sha256", &m.cert_sha256).map_err(regenesis)? {
            if !certs.insert(fp) {
                return Err(bad(
                    format!("{field}.cert_sha256"),
                    "a certificate is bound to two founding members".into(),
                ));
            }
        }
        if roles.contains(&Role::Admin) {
            admins.insert(id);
        }
    }
    let mut keys = HashSet::new();
    let mut admin_with_key = false;
    for (i, k) in g.keys.iter().enumerate() {
        let field = format!("keys[{i}]");
        let owner = MemberId::parse(&k.member_id)
            .ok()
            .filter(|id| ids.contains(id))
            .ok_or_else(|| {
                bad(
                    format!("{field}.member_id"),
                    "key for an unlisted member".into(),
                )
            })?;
        let key = parse_public_key(&k.public_key)
            .map_err(|msg| bad(format!("{field}.public_key"), msg))?;
        if !keys.insert(key.to_bytes()) {
            return Err(bad(
                format!("{field}.public_key"),
                "the same key is registered twice".into(),
            ));
        }
        admin_with_key |= admins.contains(&owner);
    }
    if !admin_with_key {
        return Err(bad(
            "members".into(),
            "genesis needs an admin with a signing key".into(),
        ));
    }
    Ok(())
}

/// Checks an origin line (C2SP tlog-checkpoint): 1-256 bytes of printable ASCII without spaces,
/// such as `hashforum.example/forum`.
///
/// # Errors
/// Why the origin is refused.
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin.is_empty() || origin.len() > super::MAX_LABEL {
        return Err("the origin must be 1-256 bytes".into());
    }
    if !origin.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the origin must be printable ASCII without spaces".into());
    }
    Ok(())
}
