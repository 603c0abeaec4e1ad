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

fn opinion(member: &str, index: u64, kind: pb::OpinionKind) -> Change {
    Change::Opinion(pb::Opinion {
        member_id: member.into(),
        opinion: kind as i32,
        log_index: index,
        first_log_index: index,
        ..Default::default()
    })
}

fn retract(member: &str, index: u64) -> Change {
    Change::Retract {
        member: member.into(),
        retraction: pb::Retraction {
            log_index: index,
            sequenced_at_unix_ms: 0,
            reason: "mistake".into(),
        },
    }
}

fn withdraw(index: u64) -> Change {
    Change::Withdraw(pb::Withdrawal {
        member_id: "admin".into(),
        reason: "appeal".into(),
        log_index: index,
        sequenced_at_unix_ms: 0,
    })
}

/// Applies a change that must be accepted.
fn ok(record: &mut Vec<u8>, c: Change) {
    change(record, c).unwrap().unwrap();
}

/// Applies a change that must be refused, and checks that the record is unchanged.
fn refused(record: &mut Vec<u8>, c: Change) -> &'static str {
    let before = record.clone();
    let err = change(record, c).unwrap().unwrap_err();
    assert_eq!(
        *record, before,
        "a refused change leaves the record as it was"
    );
    err.reason().unwrap()
}

fn status_of(record: &[u8]) -> pb::RecordStatus {
    let stored = decode_record(record).unwrap();
    assert_eq!(
        stored.status,
        status(&stored) as i32,
        "stored status is current"
    );
    status(&stored)
}

/// H2: however often one member submits a hash, its record holds one submission per member.
#[test]
fn a_member_supersedes_its_own_submission_in_place() {
    let mut record = Vec::new();
    ok(&mut record, Change::Submit(submission("alpha", 1, "a")));
    ok(&mut record, Change::Submit(submission("beta", 2, "b")));
    let size = record.len();
    for i in 3..1_000 {
        ok(&mut record, Change::Submit(submission("alpha", i, "z")));
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
    assert!(change(&mut record, Change::Submit(submission("alpha", 1, "a"))).is_err());
}

/// A stored record is a `HashRecord` without its first two fields: the lookup trick.
#[test]
fn a_stored_record_encodes_as_a_hash_record() {
    let mut record = Vec::new();
    ok(&mut record, Change::Submit(submission("alpha", 1, "a")));
    ok(&mut record, opinion("beta", 2, pb::OpinionKind::Disagree));
    ok(&mut record, retract("alpha", 3));
    ok(&mut record, withdraw(4));
    let stored = decode_record(&record).unwrap();
    let full = pb::HashRecord {
        hash_type: 0,
        value: String::new(),
        submissions: stored.submissions.clone(),
        opinions: stored.opinions.clone(),
        withdrawal: stored.withdrawal.clone(),
        status: stored.status,
        tallies: stored.tallies,
    };
    assert_eq!(full.encode_to_vec(), record);
    assert_eq!(pb::HashRecord::decode(record.as_slice()).unwrap(), full);
}

/// The status model: active → disputed (a negative opinion) → active again (the member
/// changes its mind) → retracted (every submitter retracted) → active (a submitter submits
/// again) → withdrawn (frozen).
#[test]
fn the_aggregate_status_follows_the_documented_rule() {
    use pb::OpinionKind::{Agree, Disagree, FalsePositive};
    use pb::RecordStatus::{Active, Disputed, Retracted, Withdrawn};
    let mut record = Vec::new();
    ok(&mut record, Change::Submit(submission("alpha", 1, "a")));
    assert_eq!(status_of(&record), Active);
    ok(&mut record, opinion("gamma", 2, Agree));
    assert_eq!(status_of(&record), Active, "positive and positive");
    ok(&mut record, opinion("delta", 3, FalsePositive));
    assert_eq!(status_of(&record), Disputed, "positive and negative");
    ok(&mut record, opinion("delta", 4, Agree));
    assert_eq!(status_of(&record), Active, "the latest opinion counts");
    ok(&mut record, opinion("gamma", 5, Disagree));
    assert_eq!(status_of(&record), Disputed);
    let stored = decode_record(&record).unwrap();
    let tallies = stored.tallies.unwrap();
    assert_eq!(
        (tallies.agree, tallies.disagree, tallies.false_positive),
        (1, 1, 0)
    );
    let firsts: Vec<_> = stored
        .opinions
        .iter()
        .map(|o| (o.member_id.as_str(), o.first_log_index, o.log_index))
        .collect();
    assert_eq!(firsts, [("gamma", 2, 5), ("delta", 3, 4)]);

    ok(&mut record, Change::Submit(submission("beta", 6, "b")));
    ok(&mut record, retract("alpha", 7));
    assert_eq!(status_of(&record), Disputed, "beta's submission is live");
    ok(&mut record, retract("beta", 8));
    assert_eq!(status_of(&record), Retracted, "whatever the opinions say");
    ok(&mut record, Change::Submit(submission("alpha", 9, "again")));
    assert_eq!(
        status_of(&record),
        Disputed,
        "a new submission is live again"
    );
    let alpha = &decode_record(&record).unwrap().submissions[0];
    assert_eq!(
        (alpha.first_log_index, alpha.retraction.as_ref()),
        (1, None)
    );
    ok(&mut record, withdraw(10));
    assert_eq!(status_of(&record), Withdrawn);
}

/// Every refusal of the record's state, each leaving the record unchanged.
#[test]
fn changes_the_record_does_not_allow_are_refused() {
    let mut record = Vec::new();
    assert_eq!(
        refused(&mut record, opinion("gamma", 1, pb::OpinionKind::Agree)),
        "HASH_NOT_FOUND"
    );
    assert_eq!(refused(&mut record, retract("alpha", 1)), "HASH_NOT_FOUND");
    assert_eq!(refused(&mut record, withdraw(1)), "HASH_NOT_FOUND");
    ok(&mut record, Change::Submit(submission("alpha", 1, "a")));
    assert_eq!(refused(&mut record, retract("beta", 2)), "NOT_SUBMITTED");
    ok(&mut record, retract("alpha", 2));
    assert_eq!(
        refused(&mut record, retract("alpha", 3)),
        "ALREADY_RETRACTED"
    );
    ok(&mut record, withdraw(3));
    assert_eq!(refused(&mut record, withdraw(4)), "ALREADY_WITHDRAWN");
    for c in [
        Change::Submit(submission("alpha", 4, "a")),
        Change::Submit(submission("beta", 4, "b")),
        opinion("gamma", 4, pb::OpinionKind::Agree),
        retract("alpha", 4),
    ] {
        assert_eq!(refused(&mut record, c), "HASH_WITHDRAWN");
    }
}

/// A record with no opinions carries no tallies, and a first submission stays small.
#[test]
fn a_fresh_record_is_a_submission_and_a_status() {
    let mut record = Vec::new();
    ok(&mut record, Change::Submit(submission("alpha", 1, "a")));
    let s = submission("alpha", 1, "a");
    let mut expected = Vec::new();
    prost::encoding::message::encode(3, &s, &mut expected);
    prost::encoding::int32::encode(6, &(pb::RecordStatus::Active as i32), &mut expected);
    assert_eq!(record, expected);
}
