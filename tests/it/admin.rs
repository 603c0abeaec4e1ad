//! Admin actions as signed entries: members, roles, status and keys, over real mTLS.

use hashforum::client::Client;
use hashforum::pb::statement::Body;
use hashforum::statement::admin::{
    add_member, register_key, reinstate, remove, revoke_key, set_roles, suspend,
};
use hashforum::statement::{hash_submission, Signer};
use hashforum::types::{HashType, Role};
use hashforum::{crypto, pb};
use tonic::{Code, Status};

use crate::harness::{
    assert_invalid, assert_refused, lookup, members, sha256_value, signed, submission, submit,
    submit_all, verify_with_directory, TestServer,
};

fn roles(roles: &[Role]) -> Vec<i32> {
    roles.iter().map(|r| r.to_pb() as i32).collect()
}

/// A member with one certificate.
fn add(id: &str, cert_sha256: Vec<u8>, member_roles: &[Role]) -> Body {
    add_member(id, &format!("{id} Inc."), member_roles, vec![cert_sha256])
}

/// Signs `body` as `admin` (issued now) and submits it through `client`.
async fn act(client: &mut Client, admin: &Signer, body: Body) -> Result<pb::Receipt, Status> {
    submit(client, admin.admin(body)).await
}

/// Signs each body as `admin` and submits them in one call.
async fn act_all(
    client: &mut Client,
    admin: &Signer,
    bodies: Vec<Body>,
) -> Result<Vec<pb::Receipt>, Status> {
    submit_all(client, bodies.into_iter().map(|b| admin.admin(b)).collect()).await
}

/// `GetMember`.
async fn member(client: &mut Client, id: &str) -> Result<pb::Member, Status> {
    client
        .admin
        .get_member(pb::GetMemberRequest {
            member_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().member.expect("a member"))
}

/// `GetMemberHistory`.
async fn history(client: &mut Client, id: &str) -> Result<Vec<pb::MemberEvent>, Status> {
    client
        .admin
        .get_member_history(pb::GetMemberHistoryRequest {
            member_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().events)
}

/// A fresh hash submission signed by `signer`.
fn hash(signer: &Signer, n: u64) -> pb::Envelope {
    signer.submit(hash_submission(HashType::Sha256, &sha256_value(n)))
}

/// A member added with its key in one call submits at once, and its history is admin-signed.
#[tokio::test]
async fn an_added_member_can_submit_at_once_and_its_history_is_signed() {
    let server = TestServer::start(&["alpha"]).await;
    let (carol, cert) = server.issue_identity("carol");
    let admin = server.signer("admin");
    let mut client = server.client("admin").await;
    // Added and given a key in one call: the key is checked after the member exists.
    let envelopes = vec![
        admin.admin(add("carol", cert, &[Role::Contributor, Role::Reader])),
        admin.admin(register_key("carol", &carol.signing_key.verifying_key())),
    ];
    let receipts = submit_all(&mut client, envelopes.clone()).await.unwrap();
    assert_eq!(receipts.len(), 2);
    assert_eq!(receipts[1].log_index, receipts[0].log_index + 1);
    // The same signed actions again: the original receipts, nothing appended.
    let again = submit_all(&mut client, envelopes).await.unwrap();
    for (first, second) in receipts.iter().zip(&again) {
        assert!(second.duplicate);
        assert_eq!(
            (first.log_index, &first.entry_hash),
            (second.log_index, &second.entry_hash)
        );
    }

    let mut carol_client = server.connect(&carol).await;
    let receipt = submit(&mut carol_client, hash(&Signer::of(&carol), 1))
        .await
        .unwrap();
    assert_eq!(receipt.log_index, receipts[1].log_index + 1);
    let record = lookup(
        &mut server.client("alpha").await,
        HashType::Sha256,
        &sha256_value(1),
        false,
    )
    .await
    .unwrap();
    assert_eq!(record.submissions[0].member_id, "carol");

    let carol_now = member(&mut client, "carol").await.unwrap();
    assert_eq!(carol_now.status, pb::MemberStatus::Active as i32);
    assert_eq!(carol_now.added_at_log_index, receipts[0].log_index);
    assert_eq!(carol_now.keys.len(), 1);
    assert_eq!(
        carol_now.keys[0].valid_from_log_index,
        receipts[1].log_index
    );

    let events = history(&mut client, "carol").await.unwrap();
    let actions: Vec<(&str, &str, u64)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.author.as_str(), e.log_index))
        .collect();
    assert_eq!(
        actions,
        [
            ("added", "admin", receipts[0].log_index),
            ("key_registered", "admin", receipts[1].log_index)
        ]
    );
    let directory = members(&mut client).await;
    for event in &events {
        verify_with_directory(&directory, "admin", event.envelope.as_ref().unwrap());
    }
    // Founding members' history starts at the genesis entry, authored by the forum.
    let alpha = history(&mut client, "alpha").await.unwrap();
    assert_eq!(
        (
            alpha[0].action.as_str(),
            alpha[0].author.as_str(),
            alpha[0].log_index
        ),
        ("added", "forum", 0)
    );
}

/// Suspension, reinstatement and removal apply to open connections and survive a restart.
#[tokio::test]
async fn a_suspension_applies_to_a_connection_opened_before_it() {
    let mut server = TestServer::start(&["alpha"]).await;
    let alpha = server.signer("alpha");
    let admin = server.signer("admin");
    let mut client = server.client("admin").await;
    let mut open = server.client("alpha").await;
    submit(&mut open, hash(&alpha, 1)).await.unwrap();

    act(&mut client, &admin, suspend("alpha", "test"))
        .await
        .unwrap();
    for status in [
        submit(&mut open, hash(&alpha, 2)).await.unwrap_err(),
        lookup(&mut open, HashType::Sha256, &sha256_value(1), false)
            .await
            .unwrap_err(),
    ] {
        assert_refused(&status, Code::Unauthenticated, "MEMBER_NOT_ACTIVE");
    }
    assert_eq!(
        member(&mut client, "alpha").await.unwrap().status,
        pb::MemberStatus::Suspended as i32
    );

    act(&mut client, &admin, reinstate("alpha", "test"))
        .await
        .unwrap();
    submit(&mut open, hash(&alpha, 2)).await.unwrap();
    // Suspending again is a new statement, not a resubmission of the first suspension.
    let again = act(&mut client, &admin, suspend("alpha", "test"))
        .await
        .unwrap();
    assert!(!again.duplicate);
    let actions: Vec<String> = history(&mut client, "alpha")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["added", "suspended", "reinstated", "suspended"]);

    act(&mut client, &admin, remove("alpha", "test"))
        .await
        .unwrap();
    let status = submit(&mut open, hash(&alpha, 3)).await.unwrap_err();
    assert_refused(&status, Code::Unauthenticated, "UNKNOWN_CERTIFICATE");
    let status = act(&mut client, &admin, reinstate("alpha", "test"))
        .await
        .unwrap_err();
    assert_refused(&status, Code::FailedPrecondition, "MEMBER_REMOVED");

    // Membership is a view of the log: it is all there after a restart.
    server.restart().await;
    let mut client = server.client("admin").await;
    assert_eq!(
        member(&mut client, "alpha").await.unwrap().status,
        pb::MemberStatus::Removed as i32
    );
    assert_eq!(history(&mut client, "alpha").await.unwrap().len(), 5);
    let status = submit(&mut server.client("alpha").await, hash(&alpha, 4))
        .await
        .unwrap_err();
    assert_refused(&status, Code::Unauthenticated, "UNKNOWN_CERTIFICATE");
}

/// A revoked key signs nothing new, yet the entries it signed before still verify with it.
#[tokio::test]
async fn a_revoked_key_signs_nothing_new_and_its_old_entries_still_verify() {
    let server = TestServer::start(&["alpha"]).await;
    let admin = server.signer("admin");
    let mut client = server.client("admin").await;
    let alpha = server.identity("alpha");
    let mut a = server.client("alpha").await;
    let old_keyid = crypto::key_id(&alpha.signing_key.verifying_key());
    let old = submit(&mut a, hash(&Signer::of(&alpha), 1)).await.unwrap();

    // Rotation: register the new key, then revoke the old one.
    let new_key = crypto::generate_key();
    act(
        &mut client,
        &admin,
        register_key("alpha", &new_key.verifying_key()),
    )
    .await
    .unwrap();
    let revoked = act(&mut client, &admin, revoke_key("alpha", &old_keyid, "test"))
        .await
        .unwrap();

    let status = submit(&mut a, hash(&Signer::of(&alpha), 2))
        .await
        .unwrap_err();
    assert_invalid(&status, "envelope.signatures[0].keyid", "REVOKED_KEY");
    let rotated = Signer::new(alpha.file.origin.clone(), "alpha", new_key);
    submit(&mut a, hash(&rotated, 2)).await.unwrap();

    // The entry made before the revocation still verifies with the old key, which the
    // directory lists as revoked at the revocation's index.
    let record = lookup(&mut a, HashType::Sha256, &sha256_value(1), true)
        .await
        .unwrap();
    assert_eq!(record.submissions[0].log_index, old.log_index);
    let envelope = record.submissions[0].envelope.as_ref().unwrap();
    assert_eq!(envelope.signatures[0].keyid, old_keyid);
    let directory = members(&mut a).await;
    let key = directory
        .iter()
        .find(|m| m.member_id == "alpha")
        .unwrap()
        .keys
        .iter()
        .find(|k| k.keyid == old_keyid)
        .unwrap();
    assert_eq!(key.revoked_at_log_index, Some(revoked.log_index));
    verify_with_directory(&directory, "alpha", envelope);

    let status = act(&mut client, &admin, revoke_key("alpha", &old_keyid, "test"))
        .await
        .unwrap_err();
    assert_refused(&status, Code::FailedPrecondition, "KEY_REVOKED");
}

/// A member without the admin role is refused every admin action, and nothing is written.
#[tokio::test]
async fn a_non_admin_is_refused_every_admin_action_and_nothing_is_written() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha = server.signer("alpha");
    let admin = server.signer("admin");
    let mut admin_client = server.client("admin").await;
    let (_, cert) = server.issue_identity("mallory");
    let beta_keyid = crypto::key_id(&server.identity("beta").signing_key.verifying_key());
    let before = act(
        &mut admin_client,
        &admin,
        set_roles("beta", &[Role::Contributor, Role::Reader]),
    )
    .await
    .unwrap();
    let beta_before = member(&mut admin_client, "beta").await.unwrap();
    let actions = [
        add("mallory", cert, &[Role::Admin]),
        set_roles("alpha", &[Role::Admin]),
        suspend("beta", ""),
        reinstate("beta", ""),
        remove("beta", ""),
        register_key("alpha", &crypto::generate_key().verifying_key()),
        revoke_key("beta", &beta_keyid, ""),
    ];
    let mut client = server.client("alpha").await;
    for body in actions {
        let status = act(&mut client, &alpha, body).await.unwrap_err();
        assert_refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    }
    assert_eq!(
        member(&mut admin_client, "beta").await.unwrap(),
        beta_before
    );
    let status = member(&mut admin_client, "mallory").await.unwrap_err();
    assert_refused(&status, Code::NotFound, "UNKNOWN_MEMBER");
    let after = act(
        &mut admin_client,
        &admin,
        set_roles("beta", &[Role::Reader]),
    )
    .await
    .unwrap();
    assert_eq!(
        after.log_index,
        before.log_index + 1,
        "nothing was appended"
    );
}

/// The last admin cannot suspend, remove or demote itself, or revoke its last key.
#[tokio::test]
async fn the_last_admin_cannot_lock_the_forum_out() {
    let server = TestServer::start(&["alpha"]).await;
    let admin = server.signer("admin");
    let mut client = server.client("admin").await;
    let admin_keyid = crypto::key_id(&server.identity("admin").signing_key.verifying_key());
    for body in [
        suspend("admin", ""),
        remove("admin", ""),
        set_roles("admin", &[Role::Reader]),
        revoke_key("admin", &admin_keyid, ""),
    ] {
        let status = act(&mut client, &admin, body).await.unwrap_err();
        assert_refused(&status, Code::FailedPrecondition, "LAST_ADMIN");
    }
    // With a second admin, the first may step down.
    act(
        &mut client,
        &admin,
        set_roles("alpha", &[Role::Admin, Role::Contributor]),
    )
    .await
    .unwrap();
    act(&mut client, &admin, set_roles("admin", &[Role::Reader]))
        .await
        .unwrap();
    assert_eq!(
        member(&mut client, "admin").await.unwrap().roles,
        roles(&[Role::Reader])
    );
}

/// Every impossible admin action gets its own code, reason and field, and writes nothing.
#[tokio::test]
async fn impossible_actions_get_their_own_codes() {
    let server = TestServer::start(&["alpha", "gone"]).await;
    let admin = server.signer("admin");
    let mut client = server.client("admin").await;
    let (_, cert) = server.issue_identity("dave");
    let alpha_cert = member(&mut client, "alpha").await.unwrap().cert_sha256[0].clone();
    let alpha_key = server.identity("alpha").signing_key.verifying_key();
    act(&mut client, &admin, suspend("alpha", ""))
        .await
        .unwrap();
    act(&mut client, &admin, remove("gone", "")).await.unwrap();
    let unknown_keyid = crypto::key_id(&crypto::generate_key().verifying_key());
    let history_before = history(&mut client, "alpha").await.unwrap().len();
    let last = act(&mut client, &admin, reinstate("alpha", ""))
        .await
        .unwrap()
        .log_index;
    act(&mut client, &admin, suspend("alpha", ""))
        .await
        .unwrap();
    let refused = |code, reason| (code, reason, None);
    let invalid = |field, reason| (Code::InvalidArgument, reason, Some(field));
    let cases = [
        (
            suspend("alpha", ""),
            refused(Code::FailedPrecondition, "NOT_ACTIVE"),
        ),
        (
            reinstate("gone", ""),
            refused(Code::FailedPrecondition, "MEMBER_REMOVED"),
        ),
        (
            set_roles("gone", &[Role::Reader]),
            refused(Code::FailedPrecondition, "MEMBER_REMOVED"),
        ),
        (
            Body::KeyRegistered(pb::KeyRegistered {
                member_id: "alpha".into(),
                public_key: vec![1; 31],
            }),
            invalid("envelope.payload.key_registered.public_key", "INVALID_KEY"),
        ),
        (
            suspend("nobody", ""),
            refused(Code::NotFound, "UNKNOWN_MEMBER"),
        ),
        (
            reinstate("admin", ""),
            refused(Code::FailedPrecondition, "NOT_SUSPENDED"),
        ),
        (
            add("alpha", cert.clone(), &[Role::Reader]),
            refused(Code::AlreadyExists, "MEMBER_EXISTS"),
        ),
        (
            add("dave", alpha_cert, &[Role::Reader]),
            refused(Code::AlreadyExists, "CERTIFICATE_IN_USE"),
        ),
        (
            register_key("alpha", &alpha_key),
            refused(Code::AlreadyExists, "KEY_EXISTS"),
        ),
        (
            revoke_key("alpha", "00", ""),
            invalid("envelope.payload.key_revoked.keyid", "INVALID_KEY_ID"),
        ),
        (
            revoke_key("alpha", &unknown_keyid, ""),
            refused(Code::NotFound, "KEY_NOT_FOUND"),
        ),
        (
            set_roles("alpha", &[]),
            invalid("envelope.payload.roles_set.roles", "INVALID_ROLE"),
        ),
        (
            add("Dave!", cert.clone(), &[Role::Reader]),
            invalid(
                "envelope.payload.member_added.member_id",
                "INVALID_MEMBER_ID",
            ),
        ),
        (
            add_member("dave", "Dave", &[Role::Reader], vec![]),
            invalid("envelope.payload.member_added.cert_sha256", "MISSING_FIELD"),
        ),
    ];
    for (body, (code, reason, field)) in cases {
        let status = act(&mut client, &admin, body).await.unwrap_err();
        match field {
            Some(field) => assert_invalid(&status, field, reason),
            None => assert_refused(&status, code, reason),
        }
    }
    // Nothing was written: the next entry comes right after the last accepted one, no
    // member's history grew, and dave does not exist.
    let next = act(&mut client, &admin, reinstate("alpha", ""))
        .await
        .unwrap()
        .log_index;
    assert_eq!(next, last + 2);
    assert_eq!(
        history(&mut client, "alpha").await.unwrap().len(),
        history_before + 3
    );
    let status = member(&mut client, "dave").await.unwrap_err();
    assert_refused(&status, Code::NotFound, "UNKNOWN_MEMBER");
}

/// An admin call is all or nothing, each action judged after the call's earlier ones.
#[tokio::test]
async fn admin_batches_are_all_or_nothing_in_order() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let admin = server.signer("admin");
    let mut client = server.client("admin").await;
    let (carol, carol_cert) = server.issue_identity("carol");
    let (dave, dave_cert) = server.issue_identity("dave");

    let receipts = act_all(
        &mut client,
        &admin,
        vec![
            add("carol", carol_cert, &[Role::Contributor]),
            register_key("carol", &carol.signing_key.verifying_key()),
            suspend("carol", ""),
            reinstate("carol", ""),
        ],
    )
    .await
    .unwrap();
    let indexes: Vec<u64> = receipts.iter().map(|r| r.log_index).collect();
    let first = indexes[0];
    assert_eq!(indexes, [first, first + 1, first + 2, first + 3]);
    let actions: Vec<(String, u64)> = history(&mut client, "carol")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.log_index))
        .collect();
    assert_eq!(
        actions,
        [
            ("added".into(), first),
            ("key_registered".into(), first + 1),
            ("suspended".into(), first + 2),
            ("reinstated".into(), first + 3)
        ]
    );

    // Each refused call: its first action that is impossible after the others is refused.
    let calls: [(Vec<Body>, Code, &str); 4] = [
        (
            vec![
                add("dave", dave_cert.clone(), &[Role::Reader]),
                register_key("dave", &dave.signing_key.verifying_key()),
                suspend("nobody", ""),
            ],
            Code::NotFound,
            "UNKNOWN_MEMBER",
        ),
        (
            vec![suspend("alpha", ""), suspend("alpha", "")],
            Code::FailedPrecondition,
            "NOT_ACTIVE",
        ),
        (
            vec![remove("beta", ""), set_roles("beta", &[Role::Reader])],
            Code::FailedPrecondition,
            "MEMBER_REMOVED",
        ),
        (
            vec![
                add("dave", dave_cert.clone(), &[Role::Reader]),
                add("dave", dave_cert, &[Role::Reader]),
            ],
            Code::AlreadyExists,
            "MEMBER_EXISTS",
        ),
    ];
    for (bodies, code, reason) in calls {
        let status = act_all(&mut client, &admin, bodies).await.unwrap_err();
        assert_refused(&status, code, reason);
    }
    // None of them wrote anything.
    let status = member(&mut client, "dave").await.unwrap_err();
    assert_refused(&status, Code::NotFound, "UNKNOWN_MEMBER");
    for id in ["alpha", "beta"] {
        let m = member(&mut client, id).await.unwrap();
        assert_eq!(m.status, pb::MemberStatus::Active as i32, "{id}");
        assert_eq!(history(&mut client, id).await.unwrap().len(), 1, "{id}");
    }
    let next = act(&mut client, &admin, suspend("alpha", ""))
        .await
        .unwrap();
    assert_eq!(next.log_index, first + 4, "nothing was appended");
}

/// A relay is refused when its author is suspended or no member, and nothing is written.
#[tokio::test]
async fn relayed_statements_need_an_active_author() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let admin = server.signer("admin");
    let mut client = server.client("admin").await;
    let signed_before = hash(&server.signer("alpha"), 1);
    act(&mut client, &admin, suspend("alpha", ""))
        .await
        .unwrap();
    let status = submit(&mut client, signed_before).await.unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "MEMBER_NOT_ACTIVE");

    let ghost = signed(
        &server.identity("beta"),
        &submission("ghost", HashType::Sha256, &sha256_value(2)),
    );
    let status = submit(&mut client, ghost).await.unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "UNKNOWN_AUTHOR");
    let ghost = signed(
        &server.identity("beta"),
        &submission("ghost", HashType::Sha256, &sha256_value(4)),
    );
    let status = submit_all(&mut client, vec![hash(&server.signer("beta"), 3), ghost])
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "UNKNOWN_AUTHOR");

    let mut beta = server.client("beta").await;
    for n in 1..=4 {
        let status = lookup(&mut beta, HashType::Sha256, &sha256_value(n), false)
            .await
            .unwrap_err();
        assert_refused(&status, Code::NotFound, "HASH_NOT_FOUND");
    }
    // A relay for an active member goes through, and is the next entry.
    let relayed = submit(&mut client, hash(&server.signer("beta"), 5))
        .await
        .unwrap();
    let record = lookup(&mut beta, HashType::Sha256, &sha256_value(5), false)
        .await
        .unwrap();
    assert_eq!(
        (
            record.submissions[0].member_id.as_str(),
            record.submissions[0].log_index
        ),
        ("beta", relayed.log_index)
    );
}

/// `GetMember` and `GetMemberHistory` of an unknown id answer `NOT_FOUND` `UNKNOWN_MEMBER`.
#[tokio::test]
async fn unknown_members_are_not_found() {
    let server = TestServer::start(&["alpha"]).await;
    let mut client = server.client("alpha").await;
    let status = member(&mut client, "nobody").await.unwrap_err();
    assert_refused(&status, Code::NotFound, "UNKNOWN_MEMBER");
    let status = history(&mut client, "nobody").await.unwrap_err();
    assert_refused(&status, Code::NotFound, "UNKNOWN_MEMBER");
    assert_eq!(
        member(&mut client, "alpha").await.unwrap().member_id,
        "alpha"
    );
    // L1: a malformed id is refused as such and never echoed back.
    let hostile = format!("{}\u{202e}", "x".repeat(10_000));
    for status in [
        member(&mut client, &hostile).await.unwrap_err(),
        history(&mut client, &hostile).await.unwrap_err(),
    ] {
        crate::harness::assert_invalid(&status, "member_id", "INVALID_MEMBER_ID");
        assert!(status.message().len() < 200, "{}", status.message());
    }
}

/// A batch refused for the state of one envelope names that envelope (api.md, Atomicity).
#[tokio::test]
async fn a_refused_batch_names_the_offending_envelope() {
    // INVALID_ARGUMENT names it in the BadRequest field; a state refusal (NOT_FOUND,
    // FAILED_PRECONDITION, ALREADY_EXISTS, PERMISSION_DENIED) in the ErrorInfo metadata
    // `field` and the message.
    let server = TestServer::start(&["alpha"]).await;
    let admin = server.signer("admin");
    let mut client = server.client("admin").await;
    let status = act_all(
        &mut client,
        &admin,
        vec![
            set_roles("alpha", &[Role::Contributor]),
            set_roles("alpha", &[Role::Reader]),
            suspend("nobody", ""),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let info = tonic_types::StatusExt::get_details_error_info(&status).expect("ErrorInfo");
    assert_eq!(info.reason, "UNKNOWN_MEMBER");
    assert_eq!(
        info.metadata.get("field").map(String::as_str),
        Some("envelopes[2].payload"),
        "which envelope? {status:?}"
    );
    assert!(
        status.message().starts_with("envelopes[2].payload: "),
        "{status:?}"
    );
}
