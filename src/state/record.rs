//! The hash-record view: for each hash, the live submission of each member that submitted it,
//! each member's latest opinion, retractions, the withdrawal, and the aggregate status.
//!
//! A member has at most one submission and one opinion per hash: a later one supersedes its
//! earlier one in place (the log keeps both), so no member can grow a record that everyone
//! reads. A retraction marks the member's submission; a withdrawal marks the record. Nothing
//! is ever deleted. A record therefore holds at most one submission and one opinion per
//! member, each at most a few KiB.
//!
//! Every change goes through [`change`], which refuses what the record's state does not allow
//! and recomputes the derived fields (`status`, `tallies`): the sequencer's check and the
//! append run the same function, so what is checked is what is applied.

use prost::Message;

use crate::entry::{Author, Body, ParsedEntry};
use crate::error::ServiceError;
use crate::pb;
use crate::storage::StorageError;
use crate::types::ContentHash;

/// The stored value of a hash record.
///
/// Its fields carry the tags of `pb::HashRecord` on purpose: a stored record is exactly the
/// encoding of a `HashRecord` without its `hash_type` and `value` (fields 1 and 2, which the
/// key gives). A lookup writes those two fields and then copies the stored bytes into its
/// reply, without decoding them (see `wire`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredRecord {
    /// The submissions, without envelopes, in the order members first submitted the hash.
    #[prost(message, repeated, tag = "3")]
    pub submissions: Vec<pb::Submission>,
    /// The latest opinion of each member, in the order members first gave one.
    #[prost(message, repeated, tag = "4")]
    pub opinions: Vec<pb::Opinion>,
    /// The withdrawal, if an admin withdrew the hash.
    #[prost(message, optional, tag = "5")]
    pub withdrawal: Option<pb::Withdrawal>,
    /// The aggregate status ([`status`] of the rest).
    #[prost(enumeration = "pb::RecordStatus", tag = "6")]
    pub status: i32,
    /// The opinion tallies ([`tallies`] of `opinions`); absent while there are no opinions.
    #[prost(message, optional, tag = "7")]
    pub tallies: Option<pb::OpinionTallies>,
}

/// A change to one hash record, by one entry.
// Most changes are submissions, made and consumed at once: boxing would allocate for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// A member's submission: added, or in place of its earlier one (live again if retracted).
    Submit(pb::Submission),
    /// A member's opinion: added, or in place of its earlier one.
    Opinion(pb::Opinion),
    /// A member retracts its live submission.
    Retract {
        /// The member.
        member: String,
        /// When and why.
        retraction: pb::Retraction,
    },
    /// An admin withdraws the hash.
    Withdraw(pb::Withdrawal),
}

/// The hash a statement changes the record of, the change it makes at log index `index`
/// sequenced at `time_ms`, and the statement's field (for refusals); `None` for statements
/// about no hash.
pub(super) fn change_for(
    entry: &ParsedEntry,
    index: u64,
    time_ms: u64,
) -> Option<(&ContentHash, Change, &'static str)> {
    let Author::Member(author) = &entry.author else {
        return None;
    };
    let member_id = author.to_string();
    Some(match &entry.body {
        Body::HashSubmission(s) => {
            let submission = pb::Submission {
                member_id,
                log_index: index,
                sequenced_at_unix_ms: time_ms,
                labels: Some(s.labels.clone()),
                tags: s.tags.clone(),
                quality: s.quality,
                envelope: None,
                first_log_index: index,
                incident_id: s
                    .incident
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                retraction: None,
            };
            (
                &s.hash,
                Change::Submit(submission),
                "payload.hash_submission",
            )
        }
        Body::Opinion(o) => {
            let opinion = pb::Opinion {
                member_id,
                opinion: o.opinion as i32,
                reason: o.reason.clone(),
                log_index: index,
                sequenced_at_unix_ms: time_ms,
                first_log_index: index,
            };
            (&o.hash, Change::Opinion(opinion), "payload.hash_opinion")
        }
        Body::Retraction(r) => {
            let retraction = pb::Retraction {
                log_index: index,
                sequenced_at_unix_ms: time_ms,
                reason: r.reason.clone(),
            };
            let change = Change::Retract {
                member: member_id,
                retraction,
            };
            (&r.hash, change, "payload.hash_retraction")
        }
        Body::Withdrawal(w) => {
            let withdrawal = pb::Withdrawal {
                member_id,
                reason: w.reason.clone(),
                log_index: index,
                sequenced_at_unix_ms: time_ms,
            };
            (
                &w.hash,
                Change::Withdraw(withdrawal),
                "payload.hash_withdrawal",
            )
        }
        Body::Genesis(_) | Body::Admin(_) | Body::Incident(_) => return None,
    })
}

/// Applies `change` to the stored `record` (empty when the hash is not in the registry), or
/// refuses it and leaves the record as it was.
///
/// # Errors
/// The outer error when the stored record does not decode. The inner one when the record's
/// state refuses the change: `NOT_FOUND` (`HASH_NOT_FOUND`) for an opinion, retraction or
/// withdrawal of a hash not in the registry; `FAILED_PRECONDITION` with `HASH_WITHDRAWN` for
/// any change to a withdrawn hash but a withdrawal, `ALREADY_WITHDRAWN` for that one,
/// `NOT_SUBMITTED` for a retraction by a member without a submission and `ALREADY_RETRACTED`
/// for one whose submission is retracted.
pub(super) fn change(
    record: &mut Vec<u8>,
    change: Change,
) -> Result<Result<pb::RecordStatus, ServiceError>, StorageError> {
    let mut stored = if record.is_empty() {
        StoredRecord::default()
    } else {
        decode_record(record)?
    };
    if let Err(refused) = change_decoded(&mut stored, change) {
        return Ok(Err(refused));
    }
    stored.tallies = tallies(&stored.opinions);
    let status = status(&stored);
    stored.status = status as i32;
    *record = stored.encode_to_vec();
    Ok(Ok(status))
}

fn change_decoded(stored: &mut StoredRecord, change: Change) -> Result<(), ServiceError> {
    if stored.submissions.is_empty() && !matches!(change, Change::Submit(_)) {
        return Err(ServiceError::NotFound {
            reason: "HASH_NOT_FOUND",
            message: "the hash is not in the registry".into(),
        });
    }
    if stored.withdrawal.is_some() {
        let reason = match change {
            Change::Withdraw(_) => "ALREADY_WITHDRAWN",
            _ => "HASH_WITHDRAWN",
        };
        return precondition(reason, "the hash was withdrawn by an admin");
    }
    match change {
        Change::Submit(mut submission) => {
            match stored
                .submissions
                .iter_mut()
                .find(|s| s.member_id == submission.member_id)
            {
                Some(earlier) => {
                    submission.first_log_index = earlier.first_log_index;
                    *earlier = submission;
                }
                None => stored.submissions.push(submission),
            }
        }
        Change::Opinion(mut opinion) => {
            match stored
                .opinions
                .iter_mut()
                .find(|o| o.member_id == opinion.member_id)
            {
                Some(earlier) => {
                    opinion.first_log_index = earlier.first_log_index;
                    *earlier = opinion;
                }
                None => stored.opinions.push(opinion),
            }
        }
        Change::Retract { member, retraction } => {
            let Some(own) = stored
                .submissions
                .iter_mut()
                .find(|s| s.member_id == member)
            else {
                return precondition(
                    "NOT_SUBMITTED",
                    &format!("{member} has no submission of this hash to retract"),
                );
            };
            if own.retraction.is_some() {
                return precondition(
                    "ALREADY_RETRACTED",
                    &format!("{member} already retracted its submission of this hash"),
                );
            }
            own.retraction = Some(retraction);
        }
        Change::Withdraw(withdrawal) => stored.withdrawal = Some(withdrawal),
    }
    Ok(())
}

fn precondition(reason: &'static str, message: &str) -> Result<(), ServiceError> {
    Err(ServiceError::FailedPrecondition {
        reason,
        message: message.to_owned(),
    })
}

/// The aggregate status of a record (docs/provenance.md, "Status model"), in this order:
///
/// 1. `WITHDRAWN` when an admin withdrew the hash;
/// 2. `RETRACTED` when every submission is retracted (nothing positive is left from the
///    members who shared it, whatever the opinions say);
/// 3. `DISPUTED` when there is at least one negative opinion (`disagree`, `false_positive`):
///    a live submission is positive, so positive and negative are both present;
/// 4. `ACTIVE` otherwise: live submissions, with only `agree` opinions or none.
///
/// As in python-threatexchange's aggregation: the strongest class wins unless positive and
/// negative meet, which is `DISPUTED`.
pub fn status(record: &StoredRecord) -> pb::RecordStatus {
    let negative = |o: &pb::Opinion| {
        o.opinion == pb::OpinionKind::Disagree as i32
            || o.opinion == pb::OpinionKind::FalsePositive as i32
    };
    if record.withdrawal.is_some() {
        pb::RecordStatus::Withdrawn
    } else if record.submissions.iter().all(|s| s.retraction.is_some()) {
        pb::RecordStatus::Retracted
    } else if record.opinions.iter().any(negative) {
        pb::RecordStatus::Disputed
    } else {
        pb::RecordStatus::Active
    }
}

/// Counts the opinions by kind; `None` when there are none.
pub fn tallies(opinions: &[pb::Opinion]) -> Option<pb::OpinionTallies> {
    if opinions.is_empty() {
        return None;
    }
    let mut t = pb::OpinionTallies::default();
    for o in opinions {
        match pb::OpinionKind::try_from(o.opinion) {
            Ok(pb::OpinionKind::Agree) => t.agree += 1,
            Ok(pb::OpinionKind::Disagree) => t.disagree += 1,
            Ok(pb::OpinionKind::FalsePositive) => t.false_positive += 1,
            Ok(pb::OpinionKind::Unspecified) | Err(_) => {}
        }
    }
    Some(t)
}

/// Decodes a stored hash record.
///
/// # Errors
/// When the bytes are not a record.
pub fn decode_record(v: &[u8]) -> Result<StoredRecord, StorageError> {
    StoredRecord::decode(v).map_err(|e| StorageError::Corrupt {
        cf: "records",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
