//! What gets into the log, at the edges: the payload size limit at its boundary, and the
//! documented order of checks (api.md, *Order of checks for a submission*): the first failure
//! in that order is the one reported, whatever the envelopes' positions.

use hashforum::pb;
use hashforum::statement::admin::{add_member, register_key, suspend};
use hashforum::statement::hash_submission;
use hashforum::types::{HashType, Role};
use prost::Message;
use tonic::Code;

use crate::harness::{
    assert_invalid, assert_refused, sha256_value, signed, submission, submission_with, submit,
    submit_all, TestServer,
};

/// The largest accepted statement payload (`entry::MAX_PAYLOAD`, api.md `PAYLOAD_TOO_LARGE`).
const MAX_PAYLOAD: usize = 8_192;

/// A hash submission by alpha whose payload is exactly `size` bytes, padded with an entity
/// label (which is then far over its own 256-byte limit).
fn padded(n: u64, size: usize) -> pb::Statement {
    let statement = |len: usize| {
        submission_with("alpha", HashType::Sha256, &sha256_value(n), |s| {
            s.labels.as_mut().unwrap().entity = "e".repeat(len);
        })
    };
    let base = statement(0).encoded_len();
    let len = (size.saturating_sub(base + 16)..size)
        .find(|&len| statement(len).encoded_len() == size)
        .expect("a label length that gives the size");
    statement(len)
}

/// A payload of 8,192 bytes passes the size check; one of 8,193 is refused and writes nothing.
#[tokio::test]
async fn the_payload_limit_is_exactly_8192_bytes() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;

    let at_limit = signed(&alpha, &padded(1, MAX_PAYLOAD));
    assert_eq!(at_limit.payload.len(), MAX_PAYLOAD);
    let status = submit(&mut a, at_limit).await.unwrap_err();
    assert_invalid(
        &status,
        "envelope.payload.hash_submission.labels.entity",
        "INVALID_LABEL",
    );

    let over = signed(&alpha, &padded(2, MAX_PAYLOAD + 1));
    assert_eq!(over.payload.len(), MAX_PAYLOAD + 1);
    let status = submit(&mut a, over.clone()).await.unwrap_err();
    assert_invalid(&status, "envelope.payload", "PAYLOAD_TOO_LARGE");
    let good = signed(
        &alpha,
        &submission("alpha", HashType::Sha256, &sha256_value(3)),
    );
    let status = submit_all(&mut a, vec![good.clone(), over])
        .await
        .unwrap_err();
    assert_invalid(&status, "envelopes[1].payload", "PAYLOAD_TOO_LARGE");

    // Every field at its limit: the largest hash submission that can be valid (2.7 KiB).
    let largest = signed(
        &alpha,
        &submission_with("alpha", HashType::Pdq, &"f".repeat(64), |s| {
            s.labels = Some(pb::Labels {
                entity: "e".repeat(256),
                behaviour: "b".repeat(256),
                content_type: "other".into(),
            });
            s.tags = (0..32).map(|i| format!("{i:z>64}")).collect();
            s.quality = Some(100);
        }),
    );
    assert!(largest.payload.len() > 2_700, "{}", largest.payload.len());
    let receipt = submit(&mut a, largest).await.unwrap();
    assert_eq!(receipt.log_index, 1, "the refused batch wrote nothing");
    let again = submit(&mut a, good).await.unwrap();
    assert_eq!((again.log_index, again.duplicate), (2, false));
}

/// The first failure in the documented order of checks is reported, whatever its position.
#[tokio::test]
async fn the_first_failure_in_the_documented_order_is_reported() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha = server.identity("alpha");
    let admin = server.signer("admin");
    let mut a = server.client("alpha").await;
    let mut admin_client = server.client("admin").await;
    // A member who may only read.
    let (rita, cert) = server.issue_identity("rita");
    submit_all(
        &mut admin_client,
        vec![
            admin.admin(add_member("rita", "Rita", &[Role::Observer], vec![cert])),
            admin.admin(register_key("rita", &rita.signing_key.verifying_key())),
        ],
    )
    .await
    .unwrap();
    let first_free = 3;

    let good = |n: u64| {
        signed(
            &alpha,
            &submission("alpha", HashType::Sha256, &sha256_value(n)),
        )
    };
    let bad_form = |n: u64| {
        signed(
            &alpha,
            &submission_with("alpha", HashType::Sha256, &sha256_value(n), |s| {
                s.tags = vec!["Not A Tag".into()];
            }),
        )
    };
    let bad_sig = |n: u64| {
        let mut e = good(n);
        e.signatures[0].sig[7] ^= 0x40;
        e
    };
    let unknown_key = |n: u64| {
        hashforum::crypto::sign_statement(
            &hashforum::crypto::generate_key(),
            &submission("alpha", HashType::Sha256, &sha256_value(n)),
        )
    };
    let betas = |n: u64| {
        signed(
            &server.identity("beta"),
            &submission("beta", HashType::Sha256, &sha256_value(n)),
        )
    };
    let tag_field = |i: usize| format!("envelopes[{i}].payload.hash_submission.tags[0]");

    // The observer is refused for its role, whatever its batch holds.
    let mut r = server.connect(&rita).await;
    let status = submit_all(&mut r, vec![good(0)]).await.unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "MISSING_ROLE");

    // Batch size before form.
    let mut too_many = vec![good(1); 10_001];
    too_many[0] = bad_form(2);
    let status = submit_all(&mut a, too_many).await.unwrap_err();
    assert_invalid(&status, "envelopes", "BATCH_TOO_LARGE");

    // Form (of every envelope) before signatures, keys and authorization at earlier positions.
    for first in [bad_sig(10), unknown_key(11), betas(12)] {
        let status = submit_all(&mut a, vec![first, good(13), bad_form(14)])
            .await
            .unwrap_err();
        assert_invalid(&status, &tag_field(2), "INVALID_TAG");
    }

    // Freshness before authorization: the admin may not submit a hash as itself (no
    // contributor role), but the stale action after it is reported first.
    let own_hash = admin.submit(hash_submission(HashType::Sha256, &sha256_value(20)));
    let stale =
        admin.sign(&admin.statement(hashforum::log::now_ms() - 11 * 60_000, suspend("beta", "")));
    let status = submit_all(&mut admin_client, vec![own_hash.clone(), stale.clone()])
        .await
        .unwrap_err();
    assert_invalid(
        &status,
        "envelopes[1].payload.issued_at_unix_ms",
        "STALE_STATEMENT",
    );
    // ... and form before freshness.
    let status = submit_all(&mut admin_client, vec![stale, bad_form(21)])
        .await
        .unwrap_err();
    assert_invalid(&status, &tag_field(1), "INVALID_TAG");

    // Authorization and keys before signatures.
    let status = submit_all(&mut a, vec![bad_sig(30), betas(31)])
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "AUTHOR_MISMATCH");
    let status = submit_all(&mut a, vec![bad_sig(32), unknown_key(33)])
        .await
        .unwrap_err();
    assert_invalid(&status, "envelopes[1].signatures[0].keyid", "UNKNOWN_KEY");
    let status = submit_all(&mut admin_client, vec![bad_sig(34), own_hash])
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "MISSING_ROLE");

    // The first bad signature in batch order, also when it is not in the first chunk of the
    // batch verification and a later chunk holds another one.
    let mut batch: Vec<pb::Envelope> = (0..2_100).map(|i| good(1_000 + i)).collect();
    batch[2_050] = bad_sig(5_000);
    batch[1_500] = bad_sig(5_001);
    batch[1_900] = bad_sig(5_002);
    let status = submit_all(&mut a, batch).await.unwrap_err();
    assert_invalid(
        &status,
        "envelopes[1500].signatures[0].sig",
        "BAD_SIGNATURE",
    );
    let status = submit_all(&mut a, vec![good(40), bad_sig(41), bad_sig(42)])
        .await
        .unwrap_err();
    assert_invalid(&status, "envelopes[1].signatures[0].sig", "BAD_SIGNATURE");

    // Nothing was written by any of these calls.
    let receipt = submit(&mut a, good(99)).await.unwrap();
    assert_eq!(receipt.log_index, first_free);
}

/// A caller without the RPC's role is refused before its batch size is looked at (api.md:
/// the role is checked from the request head, before the body is read).
#[tokio::test]
async fn the_callers_role_is_checked_before_the_batch_size() {
    let server = TestServer::start(&["alpha"]).await;
    let admin = server.signer("admin");
    let (rita, cert) = server.issue_identity("rita");
    submit_all(
        &mut server.client("admin").await,
        vec![
            admin.admin(add_member("rita", "Rita", &[Role::Observer], vec![cert])),
            admin.admin(register_key("rita", &rita.signing_key.verifying_key())),
        ],
    )
    .await
    .unwrap();
    let mut r = server.connect(&rita).await;
    let status = submit_all(&mut r, vec![]).await.unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "MISSING_ROLE");
}
