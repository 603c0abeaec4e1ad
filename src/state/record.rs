//! The hash-record view: for each hash, the live submission of each member that submitted it.
//!
//! A member has at most one live submission per hash: a later one supersedes its earlier one
//! in place (the log keeps both), so no member can grow a record that everyone reads. A record
//! therefore holds at most one submission per member, each at most a few KiB.

use prost::Message;

use crate::pb;
use crate::storage::StorageError;

/// The stored value of a hash record: one submission per member, in the order members first
/// submitted the hash.
///
/// Field 3 on purpose: a stored record is byte-compatible with the `submissions` field of
/// `pb::HashRecord`. Protobuf decodes concatenated messages as one, with repeated fields
/// concatenated, so a first submission by a member is appended as its encoding as field 3,
/// without decoding the record, and a lookup copies the stored bytes into its reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredRecord {
    /// The live submissions, without envelopes.
    #[prost(message, repeated, tag = "3")]
    pub submissions: Vec<pb::Submission>,
}

/// The field number of `StoredRecord::submissions` (and `pb::HashRecord::submissions`).
const SUBMISSIONS_TAG: u32 = 3;

/// Adds `submission` to the stored `record`: appended when its member has none yet (the
/// common case, without decoding), or in place of the member's earlier one, keeping that one's
/// `first_log_index`.
///
/// # Errors
/// When the stored record does not decode.
pub(super) fn add_submission(
    record: &mut Vec<u8>,
    mut submission: pb::Submission,
) -> Result<(), StorageError> {
    if !record.is_empty() {
        let mut stored = decode_record(record)?;
        if let Some(earlier) = stored
            .submissions
            .iter_mut()
            .find(|s| s.member_id == submission.member_id)
        {
            submission.first_log_index = earlier.first_log_index;
            *earlier = submission;
            *record = stored.encode_to_vec();
            return Ok(());
        }
    }
    prost::encoding::message::encode(SUBMISSIONS_TAG, &submission, record);
    Ok(())
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
mod tests {
    use super::*;

    fn submission(member: &str, index: u64, tag: &str) -> pb::Submission {
        pb::Submission {
            member_id: member.into(),
            log_index: index,
            first_log_index: index,
            tags: vec![tag.into()],
            ..Default::default()
        }
    }

    /// H2: however often one member submits a hash, its record holds one submission per member.
    #[test]
    fn a_member_supersedes_its_own_submission_in_place() {
        let mut record = Vec::new();
        add_submission(&mut record, submission("alpha", 1, "a")).unwrap();
        add_submission(&mut record, submission("beta", 2, "b")).unwrap();
        let size = record.len();
        for i in 3..1_000 {
            add_submission(&mut record, submission("alpha", i, "z")).unwrap();
        }
        assert!(record.len() < size + 8, "one live submission per member");
        let got = decode_record(&record).unwrap().submissions;
        let view: Vec<_> = got
            .iter()
            .map(|s| {
                (
                    s.member_id.as_str(),
                    s.first_log_index,
                    s.log_index,
                    s.tags[0].as_str(),
                )
            })
            .collect();
        assert_eq!(view, [("alpha", 1, 999, "z"), ("beta", 2, 2, "b")]);
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        let mut record = vec![0x1a, 0x05, 0x01];
        assert!(add_submission(&mut record, submission("alpha", 1, "a")).is_err());
    }
}
