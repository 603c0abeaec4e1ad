//! Submitting and looking up hashes: round trip, corroboration, idempotency, bad input,
//! durability.

use hashforum::log::now_ms;
use hashforum::types::HashType;
use hashforum::{crypto, pb};
use prost::Message;
use tonic::Code;

use crate::harness::{
    assert_invalid, assert_refused, lookup, lookup_sha256, members, sha256_value, signed,
    submission, submission_with, submit, verify_with_directory, TestServer,
};

const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

/// A submitted hash is found by another member with its provenance and a verifying envelope.
#[tokio::test]
async fn submitted_hash_is_found_by_another_member_with_provenance() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;
    let mut b = server.client("beta").await;

    let envelope = signed(
        &alpha,
        &submission_with("alpha", HashType::Pdq, PDQ, |s| s.quality = Some(87)),
    );
    let before = now_ms();
    let receipt = submit(&mut a, envelope.clone()).await.unwrap();
    let after = now_ms();
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
    assert_eq!(s.quality, Some(87));
    assert!(
        (before..=after).contains(&s.sequenced_at_unix_ms),
        "sequenced at {} during the call [{before}, {after}]",
        s.sequenced_at_unix_ms
    );

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
    verify_with_directory(&members(&mut b).await, "alpha", &got);

    // Without the flag, no envelopes.
    let record = lookup(&mut b, HashType::Pdq, PDQ, false).await.unwrap();
    assert!(record.submissions[0].envelope.is_none());
}

/// A second member submitting the same hash is added to the record, after the first.
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
    assert!(!rb.duplicate, "another member's statement is a new entry");
    assert_eq!(rb.log_index, ra.log_index + 1);
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

/// A 10,000-entry batch is logged in one call, and found by one 10,000-query lookup.
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

    let values = (0..9_999).chain([99_999]).map(sha256_value);
    let results = lookup_sha256(&mut a, values).await;
    assert_eq!(results.len(), 10_000);
    for (i, r) in results[..9_999].iter().enumerate() {
        let record = r.record.as_ref().expect("found");
        assert!(r.found);
        assert_eq!(record.value, sha256_value(i as u64), "result {i}");
        assert_eq!(record.submissions[0].log_index, i as u64 + 1, "result {i}");
    }
    assert!(!results[9_999].found && results[9_999].record.is_none());
}

/// What a bad-input case must get.
enum Expect {
    /// `INVALID_ARGUMENT` naming this field, with this reason.
    Invalid(&'static str, &'static str),
    /// This code and reason, with no field.
    Refused(Code, &'static str),
}

/// One bad-input case: what to send, and what it must get.
struct Case {
    name: &'static str,
    envelopes: Vec<pb::Envelope>,
    expect: Expect,
}

/// Every malformed submission gets its documented code, field and reason, and writes nothing.
#[tokio::test]
async fn bad_submissions_are_refused_and_write_nothing() {
    use Expect::{Invalid, Refused};
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;
    let sub = |t: HashType, v: &str| submission("alpha", t, v);
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    // A valid MD5 submission of alpha's, changed by `edit`, signed.
    let edited = |edit: &dyn Fn(&mut pb::HashSubmission)| {
        signed(&alpha, &submission_with("alpha", HashType::Md5, md5, edit))
    };
    let statement = |edit: &dyn Fn(&mut pb::Statement)| {
        let mut s = sub(HashType::Md5, md5);
        edit(&mut s);
        signed(&alpha, &s)
    };
    let envelope = |edit: &dyn Fn(&mut pb::Envelope)| {
        let mut e = signed(&alpha, &sub(HashType::Md5, md5));
        edit(&mut e);
        e
    };
    let stranger_key = crypto::generate_key();
    let unknown_key =
        crypto::sign_statement(&stranger_key, &sub(HashType::Sha256, &sha256_value(2)));
    let not_a_statement = crypto::sign_payload(&alpha.signing_key, vec![0xff, 0xff, 0xff].into());
    let good = |n| signed(&alpha, &sub(HashType::Sha256, &sha256_value(n)));
    let value = "envelopes[0].payload.hash_submission.value";
    let cases = vec![
        Case {
            name: "short md5",
            envelopes: vec![signed(&alpha, &sub(HashType::Md5, "d41d8cd9"))],
            expect: Invalid(value, "INVALID_HASH"),
        },
        Case {
            name: "long sha1",
            envelopes: vec![signed(&alpha, &sub(HashType::Sha1, &"a".repeat(41)))],
            expect: Invalid(value, "INVALID_HASH"),
        },
        Case {
            name: "short sha256",
            envelopes: vec![signed(&alpha, &sub(HashType::Sha256, &"a".repeat(63)))],
            expect: Invalid(value, "INVALID_HASH"),
        },
        Case {
            name: "long url-md5",
            envelopes: vec![signed(&alpha, &sub(HashType::UrlMd5, &"a".repeat(33)))],
            expect: Invalid(value, "INVALID_HASH"),
        },
        Case {
            name: "short pdq",
            envelopes: vec![signed(&alpha, &sub(HashType::Pdq, &PDQ[..62]))],
            expect: Invalid(value, "INVALID_HASH"),
        },
        Case {
            name: "bad hex",
            envelopes: vec![signed(
                &alpha,
                &sub(HashType::Md5, "z41d8cd98f00b204e9800998ecf8427e"),
            )],
            expect: Invalid(value, "INVALID_HASH"),
        },
        Case {
            name: "uppercase hex",
            envelopes: vec![signed(
                &alpha,
                &sub(HashType::Md5, "D41D8CD98F00B204E9800998ECF8427E"),
            )],
            expect: Invalid(value, "INVALID_HASH"),
        },
        Case {
            name: "all-zero pdq",
            envelopes: vec![signed(&alpha, &sub(HashType::Pdq, &"0".repeat(64)))],
            expect: Invalid(value, "INVALID_HASH"),
        },
        Case {
            name: "unknown type",
            envelopes: vec![edited(&|s| s.hash_type = 42)],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.hash_type",
                "UNKNOWN_HASH_TYPE",
            ),
        },
        Case {
            name: "unspecified type",
            envelopes: vec![edited(&|s| s.hash_type = 0)],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.hash_type",
                "UNKNOWN_HASH_TYPE",
            ),
        },
        Case {
            name: "entity over 256 bytes",
            envelopes: vec![edited(&|s| {
                s.labels.as_mut().unwrap().entity = "e".repeat(257);
            })],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.labels.entity",
                "INVALID_LABEL",
            ),
        },
        Case {
            name: "behaviour with a right-to-left override",
            envelopes: vec![edited(&|s| {
                s.labels.as_mut().unwrap().behaviour = "glori\u{202E}fication".into();
            })],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.labels.behaviour",
                "INVALID_LABEL",
            ),
        },
        Case {
            name: "behaviour with a newline",
            envelopes: vec![edited(&|s| {
                s.labels.as_mut().unwrap().behaviour = "two\nlines".into();
            })],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.labels.behaviour",
                "INVALID_LABEL",
            ),
        },
        Case {
            name: "content type outside the taxonomy",
            envelopes: vec![edited(&|s| {
                s.labels.as_mut().unwrap().content_type = "gif".into();
            })],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.labels.content_type",
                "INVALID_LABEL",
            ),
        },
        Case {
            name: "33 tags",
            envelopes: vec![edited(&|s| {
                s.tags = (0..33).map(|i| format!("t{i}")).collect();
            })],
            expect: Invalid("envelopes[0].payload.hash_submission.tags", "INVALID_TAG"),
        },
        Case {
            name: "uppercase tag",
            envelopes: vec![edited(&|s| {
                s.tags = vec!["ok".into(), "Not-Ok".into()];
            })],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.tags[1]",
                "INVALID_TAG",
            ),
        },
        Case {
            name: "empty tag",
            envelopes: vec![edited(&|s| s.tags = vec![String::new()])],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.tags[0]",
                "INVALID_TAG",
            ),
        },
        Case {
            name: "65-character tag",
            envelopes: vec![edited(&|s| s.tags = vec!["a".repeat(65)])],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.tags[0]",
                "INVALID_TAG",
            ),
        },
        Case {
            name: "pdq quality 101",
            envelopes: vec![signed(
                &alpha,
                &submission_with("alpha", HashType::Pdq, PDQ, |s| s.quality = Some(101)),
            )],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.quality",
                "INVALID_QUALITY",
            ),
        },
        Case {
            name: "quality on an md5",
            envelopes: vec![edited(&|s| s.quality = Some(50))],
            expect: Invalid(
                "envelopes[0].payload.hash_submission.quality",
                "INVALID_QUALITY",
            ),
        },
        Case {
            name: "empty batch",
            envelopes: vec![],
            expect: Invalid("envelopes", "EMPTY_BATCH"),
        },
        Case {
            name: "oversized batch",
            envelopes: vec![good(4); 10_001],
            expect: Invalid("envelopes", "BATCH_TOO_LARGE"),
        },
        Case {
            name: "bad signature",
            envelopes: vec![envelope(&|e| e.signatures[0].sig[0] ^= 1)],
            expect: Invalid("envelopes[0].signatures[0].sig", "BAD_SIGNATURE"),
        },
        Case {
            name: "63-byte signature",
            envelopes: vec![envelope(&|e| {
                e.signatures[0].sig.pop();
            })],
            expect: Invalid("envelopes[0].signatures[0].sig", "BAD_SIGNATURE"),
        },
        Case {
            name: "no signature",
            envelopes: vec![envelope(&|e| e.signatures.clear())],
            expect: Invalid("envelopes[0].signatures", "INVALID_ENVELOPE"),
        },
        Case {
            name: "two signatures",
            envelopes: vec![envelope(&|e| {
                let again = e.signatures[0].clone();
                e.signatures.push(again);
            })],
            expect: Invalid("envelopes[0].signatures", "INVALID_ENVELOPE"),
        },
        Case {
            name: "uppercase key id",
            envelopes: vec![envelope(&|e| {
                e.signatures[0].keyid = e.signatures[0].keyid.to_uppercase();
            })],
            expect: Invalid("envelopes[0].signatures[0].keyid", "INVALID_KEY_ID"),
        },
        Case {
            name: "unknown key",
            envelopes: vec![unknown_key],
            expect: Invalid("envelopes[0].signatures[0].keyid", "UNKNOWN_KEY"),
        },
        Case {
            name: "payload type",
            envelopes: vec![envelope(&|e| e.payload_type = "application/json".into())],
            expect: Invalid("envelopes[0].payload_type", "INVALID_ENVELOPE"),
        },
        Case {
            name: "not a statement",
            envelopes: vec![not_a_statement],
            expect: Invalid("envelopes[0].payload", "INVALID_STATEMENT"),
        },
        Case {
            name: "no body",
            envelopes: vec![statement(&|s| s.body = None)],
            expect: Invalid("envelopes[0].payload.body", "INVALID_STATEMENT"),
        },
        Case {
            name: "authored by the forum",
            envelopes: vec![statement(&|s| s.author = "forum".into())],
            expect: Invalid("envelopes[0].payload.author", "INVALID_STATEMENT"),
        },
        Case {
            name: "malformed author",
            envelopes: vec![statement(&|s| s.author = "Alpha!".into())],
            expect: Invalid("envelopes[0].payload.author", "INVALID_MEMBER_ID"),
        },
        Case {
            name: "no origin",
            envelopes: vec![statement(&|s| s.origin.clear())],
            expect: Invalid("envelopes[0].payload.origin", "WRONG_ORIGIN"),
        },
        Case {
            name: "bad entry inside a good batch",
            envelopes: vec![
                good(5),
                good(6),
                signed(&alpha, &sub(HashType::Md5, "xyz")),
                good(7),
            ],
            expect: Invalid("envelopes[2].payload.hash_submission.value", "INVALID_HASH"),
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
            expect: Refused(Code::PermissionDenied, "AUTHOR_MISMATCH"),
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
        match case.expect {
            Invalid(field, reason) => assert_invalid(&err, field, reason),
            Refused(code, reason) => assert_refused(&err, code, reason),
        }
    }
    // The single-entry RPC names the field from `envelope`, and refuses a missing one.
    let err = submit(&mut a, signed(&alpha, &sub(HashType::Md5, "d41d")))
        .await
        .unwrap_err();
    assert_invalid(
        &err,
        "envelope.payload.hash_submission.value",
        "INVALID_HASH",
    );
    let err = a
        .registry
        .submit_entry(pb::SubmitEntryRequest { envelope: None })
        .await
        .unwrap_err();
    assert_invalid(&err, "envelope", "MISSING_FIELD");

    // Nothing was written: the good entries of the refused batches are absent, and the next
    // entry lands right after the genesis entry.
    for n in 1..=9 {
        let err = lookup(&mut a, HashType::Sha256, &sha256_value(n), false)
            .await
            .unwrap_err();
        assert_refused(&err, Code::NotFound, "HASH_NOT_FOUND");
    }
    let receipt = submit(&mut a, good(100)).await.unwrap();
    assert_eq!(receipt.log_index, 1);
}

/// Every hash type, and labels, tags and quality at their limits, are accepted as sent.
#[tokio::test]
async fn submissions_at_the_limits_are_accepted() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;
    let full = |s: &mut pb::HashSubmission| {
        s.labels = Some(pb::Labels {
            entity: "é".repeat(128),
            behaviour: "b".repeat(256),
            content_type: "url".into(),
        });
        s.tags = (0..32).map(|i| format!("{i:0>64}")).collect();
    };
    let value = sha256_value(1);
    submit(
        &mut a,
        signed(
            &alpha,
            &submission_with("alpha", HashType::Sha256, &value, full),
        ),
    )
    .await
    .unwrap();
    let record = lookup(&mut a, HashType::Sha256, &value, false)
        .await
        .unwrap();
    let s = &record.submissions[0];
    let mut want = pb::HashSubmission::default();
    full(&mut want);
    assert_eq!(s.labels, want.labels);
    assert_eq!(s.tags, want.tags);

    // Every hash type at its length; MD5 and URL-MD5 of the same hex are two hashes.
    for (t, len) in [
        (HashType::Md5, 32),
        (HashType::UrlMd5, 32),
        (HashType::Sha1, 40),
        (HashType::Sha256, 64),
    ] {
        let v = "ab".repeat(len / 2);
        let receipt = submit(&mut a, signed(&alpha, &submission("alpha", t, &v)))
            .await
            .unwrap();
        let record = lookup(&mut a, t, &v, false).await.unwrap();
        assert_eq!(record.hash_type, t.to_pb() as i32);
        assert_eq!(record.submissions.len(), 1, "{t}");
        assert_eq!(record.submissions[0].log_index, receipt.log_index);
    }
    for (n, quality) in [(1u8, 0), (2, 100)] {
        let pdq = format!("{n:02x}{}", &PDQ[2..]);
        submit(
            &mut a,
            signed(
                &alpha,
                &submission_with("alpha", HashType::Pdq, &pdq, |s| s.quality = Some(quality)),
            ),
        )
        .await
        .unwrap();
        let record = lookup(&mut a, HashType::Pdq, &pdq, false).await.unwrap();
        assert_eq!(record.submissions[0].quality, Some(quality));
    }
}

/// Bad lookups get `INVALID_ARGUMENT` naming the field; a batch holds 1 to 10,000 queries.
#[tokio::test]
async fn bad_lookups_are_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let mut a = server.client("alpha").await;
    let err = lookup(&mut a, HashType::Pdq, "abc", false)
        .await
        .unwrap_err();
    assert_invalid(&err, "query.value", "INVALID_HASH");
    let err = lookup(&mut a, HashType::Sha1, &"a".repeat(40), false)
        .await
        .unwrap_err();
    assert_refused(&err, Code::NotFound, "HASH_NOT_FOUND");
    let err = a
        .registry
        .lookup_hash(pb::LookupHashRequest {
            query: None,
            include_envelopes: false,
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "query.hash_type", "UNKNOWN_HASH_TYPE");

    let md5 = || pb::HashQuery {
        hash_type: pb::HashType::Md5 as i32,
        value: "d41d8cd98f00b204e9800998ecf8427e".into(),
    };
    let batch = |queries| pb::LookupHashesRequest {
        queries,
        include_envelopes: false,
    };
    let bad_type = pb::HashQuery {
        hash_type: 17,
        ..md5()
    };
    let err = a
        .registry
        .lookup_hashes(batch(vec![md5(), bad_type]))
        .await
        .unwrap_err();
    assert_invalid(&err, "queries[1].hash_type", "UNKNOWN_HASH_TYPE");
    let err = a
        .registry
        .lookup_hashes(batch(vec![md5(), pb::HashQuery::default()]))
        .await
        .unwrap_err();
    assert_invalid(&err, "queries[1].hash_type", "UNKNOWN_HASH_TYPE");
    let err = a.registry.lookup_hashes(batch(vec![])).await.unwrap_err();
    assert_invalid(&err, "queries", "EMPTY_BATCH");
    let err = a
        .registry
        .lookup_hashes(batch(vec![md5(); 10_001]))
        .await
        .unwrap_err();
    assert_invalid(&err, "queries", "BATCH_TOO_LARGE");
    let results = a
        .registry
        .lookup_hashes(batch(vec![md5(); 10_000]))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 10_000);
    assert!(results.iter().all(|r| !r.found));
}

/// `LookupHashes` answers every query in order, repeats too, with envelopes that verify.
#[tokio::test]
async fn batch_lookups_answer_every_query_in_order() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let mut a = server.client("alpha").await;
    let mut b = server.client("beta").await;
    let (x, y, absent) = (sha256_value(1), sha256_value(2), sha256_value(3));
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let mut sent = Vec::new();
    for (member, t, v) in [
        ("alpha", HashType::Sha256, x.as_str()),
        ("beta", HashType::Sha256, y.as_str()),
        ("alpha", HashType::Sha256, y.as_str()),
        ("beta", HashType::Md5, md5),
    ] {
        let client = if member == "alpha" { &mut a } else { &mut b };
        let envelope = signed(&server.identity(member), &submission(member, t, v));
        let receipt = submit(client, envelope.clone()).await.unwrap();
        sent.push((member, t, v.to_owned(), receipt.log_index, envelope));
    }
    let query = |t: HashType, v: &str| pb::HashQuery {
        hash_type: t.to_pb() as i32,
        value: v.into(),
    };
    let asked = [
        (HashType::Sha256, y.as_str()),
        (HashType::Sha256, absent.as_str()),
        (HashType::Sha256, x.as_str()),
        (HashType::Md5, md5),
        (HashType::Sha256, y.as_str()),
        (HashType::Sha256, x.as_str()),
        // The same hex as a URL-MD5 is another hash.
        (HashType::UrlMd5, md5),
    ];
    let directory = members(&mut a).await;
    for include_envelopes in [false, true] {
        let results = b
            .registry
            .lookup_hashes(pb::LookupHashesRequest {
                queries: asked.iter().map(|(t, v)| query(*t, v)).collect(),
                include_envelopes,
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_eq!(results.len(), asked.len());
        for ((t, v), result) in asked.iter().zip(&results) {
            let want: Vec<_> = sent
                .iter()
                .filter(|(_, st, sv, _, _)| st == t && sv == v)
                .collect();
            assert_eq!(result.found, !want.is_empty(), "{t}:{v}");
            let Some(record) = &result.record else {
                assert!(want.is_empty(), "{t}:{v}");
                continue;
            };
            assert_eq!(
                (record.hash_type, record.value.as_str()),
                (t.to_pb() as i32, *v)
            );
            let got: Vec<_> = record
                .submissions
                .iter()
                .map(|s| (s.member_id.as_str(), s.log_index))
                .collect();
            let expected: Vec<_> = want.iter().map(|(m, _, _, i, _)| (*m, *i)).collect();
            assert_eq!(got, expected, "{t}:{v}");
            for (s, (member, _, _, _, envelope)) in record.submissions.iter().zip(&want) {
                if include_envelopes {
                    let got = s.envelope.as_ref().expect("an envelope");
                    assert_eq!(got, envelope);
                    verify_with_directory(&directory, member, got);
                } else {
                    assert!(s.envelope.is_none());
                }
            }
        }
    }
}

/// Entries survive a restart with their envelopes, and the log goes on after them.
#[tokio::test]
async fn acknowledged_entries_survive_a_restart() {
    let mut server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;
    let envelope = signed(&alpha, &submission("alpha", HashType::Pdq, PDQ));
    let first = submit(&mut a, envelope.clone()).await.unwrap();
    server.restart().await;
    let mut a = server.client("alpha").await;
    let record = lookup(&mut a, HashType::Pdq, PDQ, true).await.unwrap();
    assert_eq!(record.submissions[0].log_index, first.log_index);
    let stored = record.submissions[0].envelope.as_ref().expect("envelope");
    assert_eq!(stored, &envelope);
    verify_with_directory(&members(&mut a).await, "alpha", stored);
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
    let again = submit(&mut a, envelope).await.unwrap();
    assert!(again.duplicate && again.log_index == first.log_index);
    assert_eq!(again.entry_hash, first.entry_hash);
}
