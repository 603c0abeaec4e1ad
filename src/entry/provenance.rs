//! Statements about hashes already shared, and incidents: opinions, retractions, withdrawals,
//! incident declarations and closures.
//!
//! Parsing checks form only. Whether the hash is in the registry, whether the author has a live
//! submission to retract, whether the hash is withdrawn or an incident open depends on the
//! registry's state and is decided by `state` (records and `Directory`), at the entry's place
//! in the log.

use super::text::check_text;
use super::{MAX_LABEL, MAX_REASON};
use crate::error::ServiceError;
use crate::pb;
use crate::types::{ContentHash, HashType, IncidentId};

/// A member's opinion of a hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Opinion {
    /// The hash.
    pub hash: ContentHash,
    /// What the member thinks.
    pub opinion: pb::OpinionKind,
    /// Why, possibly empty.
    pub reason: String,
}

/// A contributor retracts its own live submission of a hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Retraction {
    /// The hash.
    pub hash: ContentHash,
    /// Why, never empty.
    pub reason: String,
}

/// An admin withdraws a hash for every member.
#[derive(Debug, Clone, PartialEq)]
pub struct Withdrawal {
    /// The hash.
    pub hash: ContentHash,
    /// Why, never empty.
    pub reason: String,
}

/// An admin declares or closes an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentAction {
    /// Declares a new incident.
    Declare {
        /// Its id, never used before.
        id: IncidentId,
        /// What happened, never empty.
        title: String,
        /// Its level.
        level: pb::IncidentLevel,
    },
    /// Closes an open incident.
    Close {
        /// The incident.
        id: IncidentId,
        /// Why, possibly empty.
        reason: String,
    },
}

impl IncidentAction {
    /// The incident the action is about.
    pub fn id(&self) -> &IncidentId {
        match self {
            IncidentAction::Declare { id, .. } | IncidentAction::Close { id, .. } => id,
        }
    }
}

/// Parses an opinion. Fields are relative to the body (`hash_opinion`).
pub(super) fn parse_opinion(o: pb::HashOpinion) -> Result<Opinion, ServiceError> {
    let hash = parse_hash(o.hash_type, &o.value)?;
    let opinion = match pb::OpinionKind::try_from(o.opinion) {
        Ok(pb::OpinionKind::Unspecified) | Err(_) => {
            return Err(ServiceError::invalid(
                "opinion",
                "INVALID_OPINION",
                format!(
                    "opinion must be agree, disagree or false_positive, got {}",
                    o.opinion
                ),
            ))
        }
        Ok(kind) => kind,
    };
    reason(&o.reason, false)?;
    Ok(Opinion {
        hash,
        opinion,
        reason: o.reason,
    })
}

/// Parses a retraction. Fields are relative to the body (`hash_retraction`).
pub(super) fn parse_retraction(r: pb::HashRetraction) -> Result<Retraction, ServiceError> {
    let hash = parse_hash(r.hash_type, &r.value)?;
    reason(&r.reason, true)?;
    Ok(Retraction {
        hash,
        reason: r.reason,
    })
}

/// Parses a withdrawal. Fields are relative to the body (`hash_withdrawal`).
pub(super) fn parse_withdrawal(w: pb::HashWithdrawal) -> Result<Withdrawal, ServiceError> {
    let hash = parse_hash(w.hash_type, &w.value)?;
    reason(&w.reason, true)?;
    Ok(Withdrawal {
        hash,
        reason: w.reason,
    })
}

/// Parses an incident declaration. Fields are relative to the body (`incident_declared`).
pub(super) fn parse_declared(d: pb::IncidentDeclared) -> Result<IncidentAction, ServiceError> {
    let id = parse_incident_id("incident_id", &d.incident_id)?;
    if d.title.is_empty() {
        return Err(ServiceError::invalid(
            "title",
            "MISSING_FIELD",
            "an incident needs a title",
        ));
    }
    check_text(&d.title, MAX_LABEL)
        .map_err(|e| ServiceError::invalid("title", "INVALID_TITLE", e.0))?;
    let level = match pb::IncidentLevel::try_from(d.level) {
        Ok(pb::IncidentLevel::Unspecified) | Err(_) => {
            return Err(ServiceError::invalid(
                "level",
                "INVALID_INCIDENT_LEVEL",
                format!("unknown incident level {}", d.level),
            ))
        }
        Ok(level) => level,
    };
    Ok(IncidentAction::Declare {
        id,
        title: d.title,
        level,
    })
}

/// Parses an incident closure. Fields are relative to the body (`incident_closed`).
pub(super) fn parse_closed(c: pb::IncidentClosed) -> Result<IncidentAction, ServiceError> {
    let id = parse_incident_id("incident_id", &c.incident_id)?;
    reason(&c.reason, false)?;
    Ok(IncidentAction::Close {
        id,
        reason: c.reason,
    })
}

/// Parses an incident id named in `field`.
pub(super) fn parse_incident_id(field: &str, id: &str) -> Result<IncidentId, ServiceError> {
    IncidentId::parse(id).map_err(|e| ServiceError::invalid(field, "INVALID_INCIDENT_ID", e.0))
}

fn parse_hash(hash_type: i32, value: &str) -> Result<ContentHash, ServiceError> {
    let hash_type = HashType::from_pb(hash_type)
        .map_err(|e| ServiceError::invalid("hash_type", "UNKNOWN_HASH_TYPE", e.0))?;
    ContentHash::parse(hash_type, value)
        .map_err(|e| ServiceError::invalid("value", "INVALID_HASH", e.0))
}

/// Checks a reason: visible text of at most [`MAX_REASON`] bytes, non-empty if `required`.
fn reason(reason: &str, required: bool) -> Result<(), ServiceError> {
    if required && reason.is_empty() {
        return Err(ServiceError::invalid(
            "reason",
            "MISSING_FIELD",
            "a reason is required",
        ));
    }
    check_text(reason, MAX_REASON)
        .map_err(|e| ServiceError::invalid("reason", "INVALID_REASON", e.0))
}
