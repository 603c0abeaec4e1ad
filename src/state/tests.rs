use ed25519_dalek::SigningKey;

use super::*;
use crate::crypto;
use crate::statement::{hash_submission, Signer};
use crate::types::HashType;

const ORIGIN: &str = "test.example/forum";
const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn submission(key: &SigningKey, author: &str, value: &str) -> ParsedEntry {
    let envelope = Signer::new(ORIGIN, author, key.clone()).submit(pb::HashSubmission {
        labels: Some(pb::Labels {
            entity: "example".into(),
            behaviour: String::new(),
            content_type: "video".into(),
        }),
        tags: vec!["t1".into()],
        ..hash_submission(HashType::Sha256, value)
    });
    ParsedEntry::parse(envelope, ORIGIN).expect("well-formed")
}

fn hash(value: &str) -> ContentHash {
    ContentHash::parse(HashType::Sha256, value).expect("valid hash")
}

#[test]
fn a_group_staged_before_the_previous_one_commits_sees_its_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let (alpha, beta) = (crypto::generate_key(), crypto::generate_key());
    let first = submission(&alpha, "alpha", HASH);

    let mut group1 = Pending::new(
        &store,
        None,
        Directory::default(),
        Frontier::default(),
        1_000,
    );
    group1.prefetch(&[&first]).expect("prefetch");
    assert_eq!(group1.existing(&first).expect("read"), None);
    let receipt = group1
        .append(first.clone(), Effect::Submission, "alpha")
        .expect("append");
    let group1 = group1.finish();

    // Staged on top of group 1, which has not been committed.
    let corroboration = submission(&beta, "beta", HASH);
    let mut group2 = Pending::new(
        &store,
        Some(&group1.overlay),
        Directory::default(),
        group1.frontier.clone(),
        2_000,
    );
    group2
        .prefetch(&[&first, &corroboration])
        .expect("prefetch");
    assert_eq!(
        group2.existing(&first).expect("read"),
        Some(Appended {
            duplicate: true,
            ..receipt
        }),
        "a resubmission of an entry still committing gets its receipt"
    );
    assert_eq!(group2.existing(&corroboration).expect("read"), None);
    let second = group2
        .append(corroboration, Effect::Submission, "beta")
        .expect("append");
    assert_eq!(second.index, 1);
    let group2 = group2.finish();

    store.commit(group1.batch).expect("commit 1");
    store.commit(group2.batch).expect("commit 2");
    assert_eq!(store.size().expect("size"), 2);
    let stored = store
        .records(&[&hash(HASH)])
        .expect("read")
        .pop()
        .flatten()
        .expect("record exists");
    let submissions = decode_record(&stored).expect("decodes").submissions;
    let got: Vec<(&str, u64, u64)> = submissions
        .iter()
        .map(|s| (s.member_id.as_str(), s.log_index, s.sequenced_at_unix_ms))
        .collect();
    assert_eq!(got, [("alpha", 0, 1_000), ("beta", 1, 2_000)]);
    assert_eq!(submissions[1].tags, ["t1"]);
}

/// A relayed entry's leaf names the relaying admin; an entry its author sent names nobody.
#[test]
fn a_relayed_entry_records_its_relayer_in_the_leaf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let key = crypto::generate_key();
    let own = submission(&key, "alpha", HASH);
    let relayed = submission(&key, "alpha", &"ab".repeat(32));
    let mut group = Pending::new(&store, None, Directory::default(), Frontier::default(), 7);
    group
        .append(own, Effect::Submission, "alpha")
        .expect("append");
    group
        .append(relayed, Effect::Submission, "admin")
        .expect("append");
    store.commit(group.finish().batch).expect("commit");
    let relayers: Vec<String> = store
        .entries(&[0, 1])
        .expect("read")
        .into_iter()
        .map(|leaf| {
            crate::log::StoredEntry::decode(&leaf.expect("stored"))
                .expect("decodes")
                .relayed_by
        })
        .collect();
    assert_eq!(relayers, ["", "admin"]);
}

/// A database written before the PDQ view existed (records, no view) gets it filled from
/// its records at start-up, with each record's status; then it is marked filled.
#[test]
fn the_pdq_view_is_filled_from_the_records_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // The status is derived from the record (records written before statuses were stored
    // say UNSPECIFIED): a withdrawal makes it withdrawn.
    let stored = |status: pb::RecordStatus| {
        let record = StoredRecord {
            submissions: vec![pb::Submission {
                member_id: "alpha".into(),
                ..Default::default()
            }],
            withdrawal: (status == pb::RecordStatus::Withdrawn).then(|| pb::Withdrawal {
                member_id: "admin".into(),
                ..Default::default()
            }),
            status: pb::RecordStatus::Unspecified as i32,
            ..Default::default()
        };
        prost::Message::encode_to_vec(&record)
    };
    let a = ContentHash::parse(HashType::Pdq, &"a1".repeat(32)).unwrap();
    let b = ContentHash::parse(HashType::Pdq, &"b2".repeat(32)).unwrap();
    let md5 = ContentHash::parse(HashType::Md5, &"c3".repeat(16)).unwrap();
    let mut batch = store.batch();
    batch.put_record(&a, &stored(pb::RecordStatus::Active));
    batch.put_record(&b, &stored(pb::RecordStatus::Withdrawn));
    batch.put_record(&md5, &stored(pb::RecordStatus::Active));
    store.commit(batch).unwrap();
    assert!(store.pdq_view_missing().unwrap());
    let view = pdq_view(&store).unwrap();
    assert_eq!(
        view,
        vec![
            ([0xa1; 32], pb::RecordStatus::Active as u8),
            ([0xb2; 32], pb::RecordStatus::Withdrawn as u8),
        ]
    );
    assert!(!store.pdq_view_missing().unwrap());
    assert_eq!(pdq_view(&store).unwrap(), view, "filled once, read after");
}
