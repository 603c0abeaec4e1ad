//! Submitting and looking up hashes: round trip, corroboration, idempotency, bad input,
//! durability.

use hashforum::types::HashType;
use hashforum::{crypto, pb};
use prost::Message;
use tonic::Code;

use crate::harness::{details, lookup, sha256_value, signed, submission, submit, TestServer};

const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

/// A member submits a signed PDQ hash and another member finds it with its provenance, and the
/// returned envelope still verifies against the submitter's registered key.
#[tokio::test]
async fn submitted_hash_is_found_by_another_member_with_provenance() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;
    let mut b = server.client("beta").await;

    let envelope = signed(&alpha, &submission("alpha", HashType::Pdq, PDQ));
    let receipt = submit(&mut a, envelope.clone()).await.unwrap();
    assert_eq!(receipt.log_index, 1, "entry 0 is the genesis entry");
    assert!(!receipt.duplicate);

    let record = lookup(&mut b, HashType::Pdq, PDQ, true).await.unwrap();
    assert_eq!(record.value, PDQ);
    assert_eq!(record.hash_type, pb::HashType::Pdq as i32);
    assert_eq!(record.submissions.len(), 1);
    let s = &record.submissions[0];
    assert_eq!(s.member_id, "alpha");
    assert_eq!(s.log_index, 1);
    assert_eq!(s.labels.as_ref().unwrap().behaviour, "glorification");
    assert_eq!(s.tags, vec!["incident-2026-11".to_owned()]);
    assert!(s.sequenced_at_unix_ms > 0);

    // The envelope comes back byte for byte, and its leaf hash is the receipt's entry hash.
    let got = s.envelope.clone().unwrap();
    assert_eq!(got, envelope);
    let leaf = pb::LogEntry {
        envelope: Some(got.clone()),
        sequenced_at_unix_ms: s.sequenced_at_unix_ms,
        relayed_by: String::new(),
    }
    .encode_to_vec();
    assert_eq!(
        hashforum::log::leaf_hash(&leaf).as_bytes().to_vec(),
        receipt.entry_hash
    );

    // Anyone holding the directory can re-check the signature.
    let members = b
        .admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap()
        .into_inner()
        .members;
    let alpha_member = members.iter().find(|m| m.member_id == "alpha").unwrap();
    let key = &alpha_member.keys[0];
    assert_eq!(key.keyid, got.signatures[0].keyid);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key.public_key.clone().try_into().unwrap())
        .unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&got.signatures[0].sig).unwrap();
    vk.verify_strict(&crypto::pae(&got.payload_type, &got.payload), &sig)
        .unwrap();

    // Without the flag, no envelopes.
    let record = lookup(&mut b, HashType::Pdq, PDQ, false).await.unwrap();
    assert!(record.submissions[0].envelope.is_none());
}

/// A second member submitting the same hash corroborates the record instead of duplicating it.
#[tokio::test]
async fn second_member_corroborates() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let value = sha256_value(7);
    let mut a = server.client("alpha").await;
    let mut b = server.client("beta").await;
    let ra = submit(
        &mut a,
        signed(
            &server.identity("alpha"),
            &submission("alpha", HashType::Sha256, &value),
        ),
    )
    .await
    .unwrap();
    let rb = submit(
        &mut b,
        signed(
            &server.identity("beta"),
            &submission("beta", HashType::Sha256, &value),
        ),
    )
    .await
    .unwrap();
    assert_ne!(ra.log_index, rb.log_index);
    let record = lookup(&mut a, HashType::Sha256, &value, false)
        .await
        .unwrap();
    let who: Vec<_> = record
        .submissions
        .iter()
        .map(|s| (s.member_id.as_str(), s.log_index))
        .collect();
    assert_eq!(who, vec![("alpha", ra.log_index), ("beta", rb.log_index)]);
}

/// Submitting an identical envelope again returns the original receipt and appends nothing.
#[tokio::test]
async fn identical_resubmission_returns_the_original_receipt() {
    let server = TestServer::start(&["alpha"]).await;
    let mut a = server.client("alpha").await;
    let alpha = server.identity("alpha");
    let envelope = signed(
        &alpha,
        &submission("alpha", HashType::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
    );
    let first = submit(&mut a, envelope.clone()).await.unwrap();
    let again = submit(&mut a, envelope.clone()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.log_index, &again.entry_hash),
        (first.log_index, &first.entry_hash)
    );

    // Also inside one batch, and mixed with a new entry.
    let fresh = signed(
        &alpha,
        &submission("alpha", HashType::Md5, "0123456789abcdef0123456789abcdef"),
    );
    let receipts = a
        .registry
        .submit_entries(pb::SubmitEntriesRequest {
            envelopes: vec![envelope, fresh.clone(), fresh],
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    assert!(receipts[0].duplicate && receipts[0].log_index == first.log_index);
    assert!(!receipts[1].duplicate);
    assert_eq!(
        receipts[1].log_index,
        first.log_index + 1,
        "nothing else was appended"
    );
    assert!(receipts[2].duplicate && receipts[2].log_index == receipts[1].log_index);
    let record = lookup(
        &mut a,
        HashType::Md5,
        "d41d8cd98f00b204e9800998ecf8427e",
        false,
    )
    .await
    .unwrap();
    assert_eq!(record.submissions.len(), 1);
}

/// A batch of 10,000 entries is accepted in one call and every entry is then found in one
/// batch lookup, which also reports hashes that are absent.
#[tokio::test]
async fn batches_of_ten_thousand() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;
    let envelopes: Vec<_> = (0..10_000)
        .map(|i| {
            signed(
                &alpha,
                &submission("alpha", HashType::Sha256, &sha256_value(i)),
            )
        })
        .collect();
    let receipts = a
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    assert_eq!(receipts.len(), 10_000);
    let indexes: Vec<u64> = receipts.iter().map(|r| r.log_index).collect();
    assert_eq!(indexes, (1..=10_000).collect::<Vec<_>>());

    let mut queries: Vec<_> = (0..9_999)
        .map(|i| pb::HashQuery {
            hash_type: pb::HashType::Sha256 as i32,
            value: sha256_value(i),
        })
        .collect();
    queries.push(pb::HashQuery {
        hash_type: pb::HashType::Sha256 as i32,
        value: sha256_value(99_999),
    });
    let results = a
        .registry
        .lookup_hashes(pb::LookupHashesRequest {
            queries,
            include_envelopes: false,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 10_000);
    assert!(results[..9_999].iter().all(|r| r.found));
    assert_eq!(
        results[5].record.as_ref().unwrap().submissions[0].log_index,
        6
    );
    assert!(!results[9_999].found && results[9_999].record.is_none());
}

/// One bad-input case: what to send, and the code, field and reason expected.
struct Case {
    name: &'static str,
    envelopes: Vec<pb::Envelope>,
    code: Code,
    field: &'static str,
    reason: &'static str,
}

/// Every kind of bad submission gets the right code, field and reason, and writes nothing.
#[tokio::test]
async fn bad_submissions_are_refused_and_write_nothing() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;
    let sub = |t: HashType, v: &str| submission("alpha", t, v);
    let with_type = |t: i32| {
        let mut s = sub(HashType::Md5, "d41d8cd98f00b204e9800998ecf8427e");
        if let Some(pb::statement::Body::HashSubmission(h)) = &mut s.body {
            h.hash_type = t;
        }
        s
    };
    let mut bad_sig = signed(&alpha, &sub(HashType::Sha256, &sha256_value(1)));
    bad_sig.signatures[0].sig[0] ^= 1;
    let stranger_key = crypto::generate_key();
    let unknown_key =
        crypto::sign_statement(&stranger_key, &sub(HashType::Sha256, &sha256_value(2)));
    let mut wrong_type = signed(&alpha, &sub(HashType::Sha256, &sha256_value(3)));
    wrong_type.payload_type = "application/json".into();
    let not_a_statement = crypto::sign_payload(&alpha.signing_key, vec![0xff, 0xff, 0xff].into());
    let good = |n| signed(&alpha, &sub(HashType::Sha256, &sha256_value(n)));
    let cases = vec![
        Case {
            name: "short md5",
            envelopes: vec![signed(&alpha, &sub(HashType::Md5, "d41d8cd9"))],
            code: Code::InvalidArgument,
            field: "envelopes[0].payload.hash_submission.value",
            reason: "INVALID_HASH",
        },
        Case {
            name: "long sha1",
            envelopes: vec![signed(&alpha, &sub(HashType::Sha1, &"a".repeat(41)))],
            code: Code::InvalidArgument,
            field: "envelopes[0].payload.hash_submission.value",
            reason: "INVALID_HASH",
        },
        Case {
            name: "bad hex",
            envelopes: vec![signed(
                &alpha,
                &sub(HashType::Md5, "z41d8cd98f00b204e9800998ecf8427e"),
            )],
            code: Code::InvalidArgument,
            field: "envelopes[0].payload.hash_submission.value",
            reason: "INVALID_HASH",
        },
        Case {
            name: "uppercase hex",
            envelopes: vec![signed(
                &alpha,
                &sub(HashType::Md5, "D41D8CD98F00B204E9800998ECF8427E"),
            )],
            code: Code::InvalidArgument,
            field: "envelopes[0].payload.hash_submission.value",
            reason: "INVALID_HASH",
        },
        Case {
            name: "all-zero pdq",
            envelopes: vec![signed(&alpha, &sub(HashType::Pdq, &"0".repeat(64)))],
            code: Code::InvalidArgument,
            field: "envelopes[0].payload.hash_submission.value",
            reason: "INVALID_HASH",
        },
        Case {
            name: "unknown type",
            envelopes: vec![signed(&alpha, &with_type(42))],
            code: Code::InvalidArgument,
            field: "envelopes[0].payload.hash_submission.hash_type",
            reason: "UNKNOWN_HASH_TYPE",
        },
        Case {
            name: "unspecified type",
            envelopes: vec![signed(&alpha, &with_type(0))],
            code: Code::InvalidArgument,
            field: "envelopes[0].payload.hash_submission.hash_type",
            reason: "UNKNOWN_HASH_TYPE",
        },
        Case {
            name: "empty batch",
            envelopes: vec![],
            code: Code::InvalidArgument,
            field: "envelopes",
            reason: "EMPTY_BATCH",
        },
        Case {
            name: "oversized batch",
            envelopes: vec![good(4); 10_001],
            code: Code::InvalidArgument,
            field: "envelopes",
            reason: "BATCH_TOO_LARGE",
        },
        Case {
            name: "bad signature",
            envelopes: vec![bad_sig],
            code: Code::InvalidArgument,
            field: "envelopes[0].signatures[0].sig",
            reason: "BAD_SIGNATURE",
        },
        Case {
            name: "unknown key",
            envelopes: vec![unknown_key],
            code: Code::InvalidArgument,
            field: "envelopes[0].signatures[0].keyid",
            reason: "UNKNOWN_KEY",
        },
        Case {
            name: "payload type",
            envelopes: vec![wrong_type],
            code: Code::InvalidArgument,
            field: "envelopes[0].payload_type",
            reason: "INVALID_ENVELOPE",
        },
        Case {
            name: "not a statement",
            envelopes: vec![not_a_statement],
            code: Code::InvalidArgument,
            field: "envelopes[0].payload",
            reason: "INVALID_STATEMENT",
        },
        Case {
            name: "bad entry inside a good batch",
            envelopes: vec![
                good(5),
                good(6),
                signed(&alpha, &sub(HashType::Md5, "xyz")),
                good(7),
            ],
            code: Code::InvalidArgument,
            field: "envelopes[2].payload.hash_submission.value",
            reason: "INVALID_HASH",
        },
        Case {
            name: "signed by another member",
            envelopes: vec![
                good(8),
                signed(
                    &server.identity("beta"),
                    &submission("beta", HashType::Sha256, &sha256_value(9)),
                ),
            ],
            code: Code::PermissionDenied,
            field: "",
            reason: "AUTHOR_MISMATCH",
        },
    ];
    for case in cases {
        let err = a
            .registry
            .submit_entries(pb::SubmitEntriesRequest {
                envelopes: case.envelopes,
            })
            .await
            .expect_err(case.name);
        assert_eq!(err.code(), case.code, "{}: {err:?}", case.name);
        assert_eq!(
            details(&err),
            (case.field.to_owned(), case.reason.to_owned()),
            "{}",
            case.name
        );
    }
    // The single-entry RPC names the field from `envelope`.
    let err = submit(&mut a, signed(&alpha, &sub(HashType::Md5, "d41d")))
        .await
        .unwrap_err();
    assert_eq!(
        details(&err),
        (
            "envelope.payload.hash_submission.value".into(),
            "INVALID_HASH".into()
        )
    );

    // Nothing was written: the good entries of the refused batches are absent, and the next
    // entry lands right after the genesis entry.
    for n in 1..=9 {
        let err = lookup(&mut a, HashType::Sha256, &sha256_value(n), false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "sha256_value({n})");
    }
    let receipt = submit(&mut a, good(100)).await.unwrap();
    assert_eq!(receipt.log_index, 1);
}

/// Bad lookups get INVALID_ARGUMENT naming the field; a missing hash gets NOT_FOUND.
#[tokio::test]
async fn bad_lookups_are_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let mut a = server.client("alpha").await;
    let err = lookup(&mut a, HashType::Pdq, "abc", false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err), ("query.value".into(), "INVALID_HASH".into()));
    let err = lookup(&mut a, HashType::Sha1, &"a".repeat(40), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(details(&err).1, "HASH_NOT_FOUND");
    let bad_batch = pb::LookupHashesRequest {
        queries: vec![
            pb::HashQuery {
                hash_type: pb::HashType::Md5 as i32,
                value: "d41d8cd98f00b204e9800998ecf8427e".into(),
            },
            pb::HashQuery {
                hash_type: 17,
                value: "d41d8cd98f00b204e9800998ecf8427e".into(),
            },
        ],
        include_envelopes: false,
    };
    let err = a.registry.lookup_hashes(bad_batch).await.unwrap_err();
    assert_eq!(
        details(&err),
        ("queries[1].hash_type".into(), "UNKNOWN_HASH_TYPE".into())
    );
    let empty = pb::LookupHashesRequest {
        queries: vec![],
        include_envelopes: false,
    };
    let err = a.registry.lookup_hashes(empty).await.unwrap_err();
    assert_eq!(details(&err), ("queries".into(), "EMPTY_BATCH".into()));
}

/// An acknowledged entry is still there after the server is stopped and started again, and
/// the log continues where it was.
#[tokio::test]
async fn acknowledged_entries_survive_a_restart() {
    let mut server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;
    let first = submit(
        &mut a,
        signed(&alpha, &submission("alpha", HashType::Pdq, PDQ)),
    )
    .await
    .unwrap();
    server.restart().await;
    let mut a = server.client("alpha").await;
    let record = lookup(&mut a, HashType::Pdq, PDQ, true).await.unwrap();
    assert_eq!(record.submissions[0].log_index, first.log_index);
    let next = submit(
        &mut a,
        signed(
            &alpha,
            &submission("alpha", HashType::Md5, "0123456789abcdef0123456789abcdef"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(next.log_index, first.log_index + 1);
    // The resubmission index survives too.
    let again = submit(
        &mut a,
        signed(&alpha, &submission("alpha", HashType::Pdq, PDQ)),
    )
    .await
    .unwrap();
    assert!(again.duplicate && again.log_index == first.log_index);
}
