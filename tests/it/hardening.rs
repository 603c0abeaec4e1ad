//! The review's findings, each as the attack or mistake it describes, over real mTLS: a
//! statement replayed from another forum (H1), a record inflated by one member (H2), a lookup
//! reply forced to grow (H3), relays (M3), stale admin statements (M4), payloads carrying
//! extra bytes (M7), certificates rotated and never reused (M9), and resubmissions after a
//! key was revoked (L6).

use hashforum::statement::{admin, hash_submission, Signer};
use hashforum::types::{HashType, Role};
use hashforum::{crypto, pb};
use tonic::Code;

use crate::harness::{assert_invalid, assert_refused, lookup, sha256_value, submit, TestServer};

/// The index the next entry will get, found by submitting one: proves what was (not) written.
async fn next_index(server: &TestServer) -> u64 {
    let mut client = server.client("alpha").await;
    let probe = hash_submission(HashType::Sha256, &sha256_value(rand_u64()));
    submit(&mut client, server.signer("alpha").submit(probe))
        .await
        .unwrap()
        .log_index
}

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1 << 40);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn submit_all(
    server: &TestServer,
    member: &str,
    envelopes: Vec<pb::Envelope>,
) -> Result<Vec<pb::Receipt>, tonic::Status> {
    let mut client = server.client(member).await;
    client
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await
        .map(|r| r.into_inner().receipts)
}

/// H1: an envelope signed for a staging forum, with the same member id and key, is refused
/// in production and writes nothing.
#[tokio::test]
async fn a_statement_signed_for_another_forum_is_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let before = next_index(&server).await;
    let alpha = server.identity("alpha");
    let staging = Signer::new("hashforum.dev/staging", "alpha", alpha.signing_key.clone());
    let envelope = staging.submit(hash_submission(
        HashType::Md5,
        "d41d8cd98f00b204e9800998ecf8427e",
    ));
    let status = submit(&mut server.client("alpha").await, envelope)
        .await
        .unwrap_err();
    assert_invalid(&status, "envelope.payload.origin", "WRONG_ORIGIN");
    assert_eq!(
        next_index(&server).await,
        before + 1,
        "nothing was appended"
    );
}

/// M7: a signed payload carrying an unknown field (bytes that are not the statement) is
/// refused, although its signature is valid.
#[tokio::test]
async fn a_payload_with_extra_bytes_is_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let signer = server.signer("alpha");
    let statement = signer.statement(
        0,
        pb::statement::Body::HashSubmission(hash_submission(HashType::Sha256, &sha256_value(1))),
    );
    let mut payload = prost::Message::encode_to_vec(&statement);
    payload.extend_from_slice(&[0xfa, 0x3f, 4, b'j', b'u', b'n', b'k']); // field 1023
    let envelope = crypto::sign_payload(&server.identity("alpha").signing_key, payload.into());
    let status = submit(&mut server.client("alpha").await, envelope)
        .await
        .unwrap_err();
    assert_invalid(&status, "envelope.payload", "NON_CANONICAL_STATEMENT");
}

/// H2: one member resubmitting a hash 10,000 times with a different tag each time supersedes
/// its own submission: the record keeps one submission per member, with the latest labels
/// and the index of the first, and the log keeps all 10,000 entries.
#[tokio::test]
async fn one_member_cannot_inflate_a_record() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let value = sha256_value(42);
    let beta = submit(
        &mut server.client("beta").await,
        server
            .signer("beta")
            .submit(hash_submission(HashType::Sha256, &value)),
    )
    .await
    .unwrap();
    let alpha = server.signer("alpha");
    let envelopes: Vec<pb::Envelope> = (0..10_000)
        .map(|i| {
            let mut s = hash_submission(HashType::Sha256, &value);
            s.tags = vec![format!("variant-{i}")];
            alpha.submit(s)
        })
        .collect();
    let receipts = submit_all(&server, "alpha", envelopes).await.unwrap();
    assert!(receipts.iter().all(|r| !r.duplicate));
    let (first, last) = (receipts[0].log_index, receipts[9_999].log_index);
    assert_eq!(last - first, 9_999, "every statement is in the log");

    let record = lookup(
        &mut server.client("beta").await,
        HashType::Sha256,
        &value,
        false,
    )
    .await
    .unwrap();
    let view: Vec<_> = record
        .submissions
        .iter()
        .map(|s| {
            (
                s.member_id.as_str(),
                s.first_log_index,
                s.log_index,
                s.tags.clone(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("beta", beta.log_index, beta.log_index, vec![]),
            ("alpha", first, last, vec!["variant-9999".to_owned()]),
        ]
    );
}

/// H3: a lookup asking 10,000 times for one large record, with envelopes, is refused with
/// `RESOURCE_EXHAUSTED` instead of building a reply of hundreds of megabytes; a reasonable
/// batch with repeats is answered in query order.
#[tokio::test]
async fn a_lookup_reply_is_bounded() {
    let members = ["alpha", "beta", "gamma"];
    let server = TestServer::start(&members).await;
    let value = sha256_value(7);
    for m in members {
        // Labels and tags at their limits: about 3 KiB per submission.
        let mut s = hash_submission(HashType::Sha256, &value);
        s.labels = Some(pb::Labels {
            entity: "e".repeat(256),
            behaviour: "b".repeat(256),
            content_type: "video".into(),
        });
        s.tags = (0..32).map(|i| format!("{i:0>64}")).collect();
        submit(&mut server.client(m).await, server.signer(m).submit(s))
            .await
            .unwrap();
    }
    let query = |v: &str| pb::HashQuery {
        hash_type: pb::HashType::Sha256 as i32,
        value: v.into(),
    };
    let mut client = server.client("alpha").await;
    let huge = pb::LookupHashesRequest {
        queries: vec![query(&value); 10_000],
        include_envelopes: true,
    };
    let started = std::time::Instant::now();
    let status = client.registry.lookup_hashes(huge).await.unwrap_err();
    assert_refused(&status, Code::ResourceExhausted, "REPLY_TOO_LARGE");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    let absent = sha256_value(8);
    let queries = [&value, &absent, &value, &value, &absent]
        .map(|v| query(v))
        .to_vec();
    let results = client
        .registry
        .lookup_hashes(pb::LookupHashesRequest {
            queries,
            include_envelopes: true,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let found: Vec<bool> = results.iter().map(|r| r.found).collect();
    assert_eq!(found, [true, false, true, true, false]);
    for r in results.iter().filter(|r| r.found) {
        let record = r.record.as_ref().unwrap();
        assert_eq!(record.submissions.len(), 3);
        assert!(record.submissions.iter().all(|s| s.envelope.is_some()));
    }
}

/// M4: an admin action signed 11 minutes ago and never delivered is refused; one signed now
/// goes through; once logged, resending the old-but-logged envelope returns its receipt.
#[tokio::test]
async fn stale_admin_statements_are_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let admin_signer = server.signer("admin");
    let now = hashforum::log::now_ms();
    for issued in [now - 11 * 60_000, now + 11 * 60_000] {
        let stale = admin_signer.sign(&admin_signer.statement(issued, admin::suspend("alpha", "")));
        let status = submit(&mut server.client("admin").await, stale)
            .await
            .unwrap_err();
        assert_invalid(
            &status,
            "envelope.payload.issued_at_unix_ms",
            "STALE_STATEMENT",
        );
    }
    let fresh =
        admin_signer.sign(&admin_signer.statement(now - 60_000, admin::suspend("alpha", "")));
    let first = submit(&mut server.client("admin").await, fresh.clone())
        .await
        .unwrap();
    let again = submit(&mut server.client("admin").await, fresh)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.log_index, first.log_index);
}

/// L6: after a key is revoked, resubmitting an envelope it signed before gets the original
/// receipt, not `REVOKED_KEY`: the statement is in the log, and saying so reveals nothing.
#[tokio::test]
async fn a_resubmission_gets_its_receipt_after_the_key_is_revoked() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let envelope = server
        .signer("alpha")
        .submit(hash_submission(HashType::Sha256, &sha256_value(3)));
    let original = submit(&mut server.client("alpha").await, envelope.clone())
        .await
        .unwrap();
    let admin_signer = server.signer("admin");
    let new_key = crypto::generate_key();
    let keyid = crypto::key_id(&alpha.signing_key.verifying_key());
    submit_all(
        &server,
        "admin",
        vec![
            admin_signer.admin(admin::register_key("alpha", &new_key.verifying_key())),
            admin_signer.admin(admin::revoke_key("alpha", &keyid, "rotated")),
        ],
    )
    .await
    .unwrap();
    let again = submit(&mut server.client("alpha").await, envelope)
        .await
        .unwrap();
    assert_eq!(
        (again.log_index, again.duplicate),
        (original.log_index, true)
    );
    assert_eq!(again.entry_hash, original.entry_hash);
}

/// M3: an admin may relay a member's signed entry, and the log records who relayed it; an
/// admin demoted earlier in the same call may not.
#[tokio::test]
async fn relays_are_recorded_and_rechecked_when_sequenced() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha = server.signer("alpha");
    let relayed = alpha.submit(hash_submission(HashType::Sha256, &sha256_value(11)));
    let receipt = submit(&mut server.client("admin").await, relayed)
        .await
        .unwrap();
    let record = lookup(
        &mut server.client("beta").await,
        HashType::Sha256,
        &sha256_value(11),
        false,
    )
    .await
    .unwrap();
    assert_eq!(record.submissions[0].member_id, "alpha");
    assert_eq!(record.submissions[0].log_index, receipt.log_index);

    // Promote beta so that the forum keeps an admin, then the admin demotes itself and tries
    // to relay in the same call: the relay is judged after the demotion.
    let admin_signer = server.signer("admin");
    submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::set_roles("beta", &[Role::Admin, Role::Contributor]))],
    )
    .await
    .unwrap();
    let before = next_index(&server).await;
    let status = submit_all(
        &server,
        "admin",
        vec![
            admin_signer.admin(admin::set_roles("admin", &[Role::Reader])),
            alpha.submit(hash_submission(HashType::Sha256, &sha256_value(12))),
        ],
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "AUTHOR_MISMATCH");
    assert_eq!(
        next_index(&server).await,
        before + 1,
        "the call wrote nothing"
    );
}

/// M9: a member's certificate is rotated without suspending it (bind the new one, unbind the
/// old one, which then authenticates nobody), and a fingerprint once bound is never bound to
/// another member, also after its member is removed.
#[tokio::test]
async fn certificates_rotate_and_are_never_reused() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let admin_signer = server.signer("admin");
    let old = crypto::cert_fingerprint(
        &hashforum::pki::pem_to_der(&String::from_utf8(server.identity("alpha").tls_cert).unwrap())
            .unwrap(),
    );
    let (new_identity, new_cert) = server.issue_identity("alpha-2027");
    let mut old_client = server.client("alpha").await;

    submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::bind_cert("alpha", &new_cert, "rotation"))],
    )
    .await
    .unwrap();
    let mut new_client = server.connect(&new_identity).await;
    // The new certificate speaks for alpha (the identity directory's member id is alpha-2027,
    // but the certificate is what the server goes by).
    let members = new_client
        .admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap();
    assert!(!members.into_inner().members.is_empty());

    let unbind = admin::unbind_cert("alpha", old.as_bytes(), "rotation");
    submit_all(&server, "admin", vec![admin_signer.admin(unbind)])
        .await
        .unwrap();
    let status = old_client
        .admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap_err();
    // An open connection is refused too.
    assert_refused(&status, Code::Unauthenticated, "UNKNOWN_CERTIFICATE");

    // The last certificate cannot be unbound; a retired one cannot go to another member.
    let status = submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::unbind_cert("alpha", &new_cert, ""))],
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::FailedPrecondition, "LAST_CERTIFICATE");
    let status = submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::bind_cert("beta", old.as_bytes(), ""))],
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::AlreadyExists, "CERTIFICATE_IN_USE");

    // Removal retires beta's certificate; adding a new member with it is refused.
    let beta_cert = crypto::cert_fingerprint(
        &hashforum::pki::pem_to_der(&String::from_utf8(server.identity("beta").tls_cert).unwrap())
            .unwrap(),
    );
    submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::remove("beta", "left"))],
    )
    .await
    .unwrap();
    let add = admin::add_member(
        "mallory",
        "Mallory",
        &[Role::Reader],
        vec![beta_cert.as_bytes().to_vec()],
    );
    let status = submit_all(&server, "admin", vec![admin_signer.admin(add)])
        .await
        .unwrap_err();
    assert_refused(&status, Code::AlreadyExists, "CERTIFICATE_IN_USE");
}
