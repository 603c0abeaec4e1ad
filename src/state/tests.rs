use ed25519_dalek::SigningKey;
use prost::Message;

use super::*;
use crate::types::HashType;

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn submission(key: &SigningKey, author: &str, value: &str) -> ParsedEntry {
    let statement = pb::Statement {
        author: author.into(),
        issued_at_unix_ms: 0,
        body: Some(pb::statement::Body::HashSubmission(pb::HashSubmission {
            hash_type: HashType::Sha256.to_pb() as i32,
            value: value.into(),
            labels: Some(pb::Labels {
                entity: "example".into(),
                behaviour: String::new(),
                content_type: "video".into(),
            }),
            tags: vec!["t1".into()],
            quality: None,
        })),
    };
    ParsedEntry::parse(crypto::sign_statement(key, &statement)).expect("well-formed")
}

fn record_key(value: &str) -> Vec<u8> {
    crate::types::ContentHash::parse(HashType::Sha256, value)
        .expect("valid hash")
        .key()
}

#[test]
fn leaf_is_the_protobuf_encoding_of_the_log_entry() {
    let entry = submission(&crypto::generate_key(), "alpha", HASH);
    for time_ms in [0, 1, 127, 128, 1_764_300_000_000, u64::MAX] {
        let expected = pb::LogEntry {
            envelope: Some(entry.envelope.clone()),
            sequenced_at_unix_ms: time_ms,
        }
        .encode_to_vec();
        assert_eq!(
            leaf_bytes(&entry.leaf_prefix, time_ms),
            expected,
            "{time_ms}"
        );
    }
}

#[test]
fn a_group_staged_before_the_previous_one_commits_sees_its_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let (alpha, beta) = (crypto::generate_key(), crypto::generate_key());
    let first = submission(&alpha, "alpha", HASH);

    let mut group1 = Pending::new(&store, None, Directory::default(), 0, 1_000);
    group1.prefetch(&[&first]).expect("prefetch");
    assert_eq!(group1.existing(&first).expect("read"), None);
    let receipt = group1.append(first.clone()).expect("append");
    let group1 = group1.finish();

    // Staged on top of group 1, which has not been committed.
    let corroboration = submission(&beta, "beta", HASH);
    let mut group2 = Pending::new(
        &store,
        Some(&group1.overlay),
        Directory::default(),
        1,
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
    let second = group2.append(corroboration).expect("append");
    assert_eq!(second.index, 1);
    let group2 = group2.finish();

    store.commit(group1.batch).expect("commit 1");
    store.commit(group2.batch).expect("commit 2");
    assert_eq!(store.size().expect("size"), 2);
    let stored = store
        .get(CF_RECORDS, &record_key(HASH))
        .expect("read")
        .expect("record exists");
    let submissions = decode_record(&stored).expect("decodes").submissions;
    let got: Vec<(&str, u64, u64)> = submissions
        .iter()
        .map(|s| (s.member_id.as_str(), s.log_index, s.sequenced_at_unix_ms))
        .collect();
    assert_eq!(got, [("alpha", 0, 1_000), ("beta", 1, 2_000)]);
    assert_eq!(submissions[1].tags, ["t1"]);
}
