//! Admin actions as signed entries: members, roles, status and keys, over real mTLS.

use hashforum::identity::Identity;
use hashforum::pb::statement::Body;
use hashforum::types::{HashType, Role};
use hashforum::{crypto, pb};
use tonic::Code;

use crate::harness::{
    admin_statement, details, lookup, sha256_value, signed, submission, submit, TestServer,
};

fn roles(roles: &[Role]) -> Vec<i32> {
    roles.iter().map(|r| r.to_pb() as i32).collect()
}

fn add_member(id: &str, cert_sha256: Vec<u8>, member_roles: &[Role]) -> Body {
    Body::MemberAdded(pb::MemberAdded {
        member_id: id.into(),
        display_name: format!("{id} Inc."),
        roles: roles(member_roles),
        cert_sha256: vec![cert_sha256],
    })
}

fn register_key(id: &str, key: &ed25519_dalek::VerifyingKey) -> Body {
    Body::KeyRegistered(pb::KeyRegistered {
        member_id: id.into(),
        public_key: key.to_bytes().to_vec(),
    })
}

fn suspend(id: &str) -> Body {
    Body::MemberSuspended(pb::MemberSuspended {
        member_id: id.into(),
        reason: "test".into(),
    })
}

fn reinstate(id: &str) -> Body {
    Body::MemberReinstated(pb::MemberReinstated {
        member_id: id.into(),
        reason: "test".into(),
    })
}

fn remove(id: &str) -> Body {
    Body::MemberRemoved(pb::MemberRemoved {
        member_id: id.into(),
        reason: "test".into(),
    })
}

fn revoke_key(id: &str, keyid: &str) -> Body {
    Body::KeyRevoked(pb::KeyRevoked {
        member_id: id.into(),
        keyid: keyid.into(),
        reason: "test".into(),
    })
}

fn set_roles(id: &str, member_roles: &[Role]) -> Body {
    Body::RolesSet(pb::RolesSet {
        member_id: id.into(),
        roles: roles(member_roles),
    })
}

/// Signs `body` as `admin` and submits it.
async fn act(server: &TestServer, body: Body) -> Result<pb::Receipt, tonic::Status> {
    let admin = server.identity("admin");
    let mut client = server.client("admin").await;
    submit(&mut client, signed(&admin, &admin_statement("admin", body))).await
}

async fn member(server: &TestServer, id: &str) -> pb::Member {
    let mut client = server.client("admin").await;
    client
        .admin
        .get_member(pb::GetMemberRequest {
            member_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
}

async fn history(server: &TestServer, id: &str) -> Vec<pb::MemberEvent> {
    let mut client = server.client("admin").await;
    client
        .admin
        .get_member_history(pb::GetMemberHistoryRequest {
            member_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

/// Submits a fresh hash as `identity`.
async fn submit_hash(
    server: &TestServer,
    identity: &Identity,
    n: u64,
) -> Result<pb::Receipt, tonic::Status> {
    let mut client = hashforum::client::Client::connect(identity, Some(&server.addr))
        .await
        .unwrap();
    let statement = submission(&identity.file.member, HashType::Sha256, &sha256_value(n));
    submit(&mut client, signed(identity, &statement)).await
}

#[tokio::test]
async fn an_added_member_can_submit_at_once_and_its_history_is_signed() {
    let server = TestServer::start(&["alpha"]).await;
    let (carol, cert) = server.issue_identity("carol");
    let admin = server.identity("admin");
    let mut client = server.client("admin").await;
    // Added and given a key in one call: the key is checked after the member exists.
    let envelopes = vec![
        signed(
            &admin,
            &admin_statement(
                "admin",
                add_member("carol", cert, &[Role::Contributor, Role::Reader]),
            ),
        ),
        signed(
            &admin,
            &admin_statement(
                "admin",
                register_key("carol", &carol.signing_key.verifying_key()),
            ),
        ),
    ];
    let receipts = client
        .registry
        .submit_entries(pb::SubmitEntriesRequest {
            envelopes: envelopes.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    assert_eq!(receipts.len(), 2);
    // The same signed actions again: the original receipts, nothing appended.
    let again = client
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    for (first, second) in receipts.iter().zip(&again) {
        assert!(second.duplicate);
        assert_eq!(
            (first.log_index, &first.entry_hash),
            (second.log_index, &second.entry_hash)
        );
    }

    let receipt = submit_hash(&server, &carol, 1).await.unwrap();
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

    let carol_now = member(&server, "carol").await;
    assert_eq!(carol_now.status, pb::MemberStatus::Active as i32);
    assert_eq!(carol_now.added_at_log_index, receipts[0].log_index);
    assert_eq!(carol_now.keys.len(), 1);
    assert_eq!(
        carol_now.keys[0].valid_from_log_index,
        receipts[1].log_index
    );

    let events = history(&server, "carol").await;
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
    let admin_key = admin.signing_key.verifying_key();
    for event in &events {
        let envelope = event.envelope.as_ref().unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&envelope.signatures[0].sig).unwrap();
        admin_key
            .verify_strict(
                &crypto::pae(&envelope.payload_type, &envelope.payload),
                &sig,
            )
            .expect("history entries carry the admin's signature");
    }
    // Founding members' history starts at the genesis entry, authored by the forum.
    let alpha = history(&server, "alpha").await;
    assert_eq!(
        (
            alpha[0].action.as_str(),
            alpha[0].author.as_str(),
            alpha[0].log_index
        ),
        ("added", "forum", 0)
    );
}

#[tokio::test]
async fn a_suspension_applies_to_a_connection_opened_before_it() {
    let mut server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let mut open = server.client("alpha").await;
    let hash = |n| {
        signed(
            &alpha,
            &submission("alpha", HashType::Sha256, &sha256_value(n)),
        )
    };
    submit(&mut open, hash(1)).await.unwrap();

    act(&server, suspend("alpha")).await.unwrap();
    for status in [
        submit(&mut open, hash(2)).await.unwrap_err(),
        lookup(&mut open, HashType::Sha256, &sha256_value(1), false)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(details(&status).1, "MEMBER_NOT_ACTIVE");
    }
    assert_eq!(
        member(&server, "alpha").await.status,
        pb::MemberStatus::Suspended as i32
    );

    act(&server, reinstate("alpha")).await.unwrap();
    submit(&mut open, hash(2)).await.unwrap();
    // Suspending again is a new statement, not a resubmission of the first suspension.
    let again = act(&server, suspend("alpha")).await.unwrap();
    assert!(!again.duplicate);
    let actions: Vec<String> = history(&server, "alpha")
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["added", "suspended", "reinstated", "suspended"]);

    act(&server, remove("alpha")).await.unwrap();
    let status = submit(&mut open, hash(3)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = act(&server, reinstate("alpha")).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(details(&status).1, "MEMBER_REMOVED");

    // Membership is a view of the log: it is all there after a restart.
    server.restart().await;
    assert_eq!(
        member(&server, "alpha").await.status,
        pb::MemberStatus::Removed as i32
    );
    assert_eq!(history(&server, "alpha").await.len(), 5);
    let status = submit_hash(&server, &alpha, 4).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_revoked_key_signs_nothing_new_and_its_old_entries_still_verify() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let old_keyid = crypto::key_id(&alpha.signing_key.verifying_key());
    let old = submit_hash(&server, &alpha, 1).await.unwrap();

    // Rotation: register the new key, then revoke the old one.
    let new_key = crypto::generate_key();
    act(&server, register_key("alpha", &new_key.verifying_key()))
        .await
        .unwrap();
    let revoked = act(&server, revoke_key("alpha", &old_keyid)).await.unwrap();

    let status = submit_hash(&server, &alpha, 2).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        details(&status),
        ("envelope.signatures[0].keyid".into(), "REVOKED_KEY".into())
    );
    let mut rotated = server.identity("alpha");
    rotated.signing_key = new_key;
    submit_hash(&server, &rotated, 2).await.unwrap();

    // The old entry still verifies with the old key, which was valid at its index.
    let record = lookup(
        &mut server.client("alpha").await,
        HashType::Sha256,
        &sha256_value(1),
        true,
    )
    .await
    .unwrap();
    let envelope = record.submissions[0].envelope.as_ref().unwrap();
    let key = member(&server, "alpha")
        .await
        .keys
        .into_iter()
        .find(|k| k.keyid == old_keyid)
        .unwrap();
    assert_eq!(key.revoked_at_log_index, Some(revoked.log_index));
    assert!(old.log_index < revoked.log_index);
    let vk = hashforum::entry::parse_public_key(&key.public_key).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&envelope.signatures[0].sig).unwrap();
    assert!(crypto::verify_one(
        &vk,
        &crypto::pae(&envelope.payload_type, &envelope.payload),
        &sig
    ));

    let status = act(&server, revoke_key("alpha", &old_keyid))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(details(&status).1, "KEY_REVOKED");
}

#[tokio::test]
async fn a_non_admin_is_refused_every_admin_action_and_nothing_is_written() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha = server.identity("alpha");
    let (_, cert) = server.issue_identity("mallory");
    let beta_keyid = crypto::key_id(&server.identity("beta").signing_key.verifying_key());
    let before = act(
        &server,
        set_roles("beta", &[Role::Contributor, Role::Reader]),
    )
    .await
    .unwrap();
    let members_before = member(&server, "beta").await;
    let actions = [
        add_member("mallory", cert, &[Role::Admin]),
        set_roles("alpha", &[Role::Admin]),
        suspend("beta"),
        reinstate("beta"),
        remove("beta"),
        register_key("alpha", &crypto::generate_key().verifying_key()),
        revoke_key("beta", &beta_keyid),
    ];
    let mut client = server.client("alpha").await;
    for body in actions {
        let envelope = signed(&alpha, &admin_statement("alpha", body.clone()));
        let status = submit(&mut client, envelope).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{body:?}: {status:?}"
        );
        assert_eq!(details(&status).1, "MISSING_ROLE", "{body:?}");
    }
    assert_eq!(member(&server, "beta").await, members_before);
    let after = act(&server, set_roles("beta", &[Role::Reader]))
        .await
        .unwrap();
    assert_eq!(
        after.log_index,
        before.log_index + 1,
        "nothing was appended"
    );
}

#[tokio::test]
async fn the_last_admin_cannot_lock_the_forum_out() {
    let server = TestServer::start(&["alpha"]).await;
    let admin_keyid = crypto::key_id(&server.identity("admin").signing_key.verifying_key());
    for body in [
        suspend("admin"),
        remove("admin"),
        set_roles("admin", &[Role::Reader]),
        revoke_key("admin", &admin_keyid),
    ] {
        let status = act(&server, body.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{body:?}");
        assert_eq!(details(&status).1, "LAST_ADMIN", "{body:?}");
    }
    // With a second admin, the first may step down.
    act(
        &server,
        set_roles("alpha", &[Role::Admin, Role::Contributor]),
    )
    .await
    .unwrap();
    act(&server, set_roles("admin", &[Role::Reader]))
        .await
        .unwrap();
    assert_eq!(member(&server, "admin").await.roles, roles(&[Role::Reader]));
}

/// Every impossible action gets its own code and reason, and none of them writes anything.
#[tokio::test]
async fn impossible_actions_get_their_own_codes() {
    let server = TestServer::start(&["alpha", "gone"]).await;
    let (_, cert) = server.issue_identity("dave");
    let alpha_cert = member(&server, "alpha").await.cert_sha256[0].clone();
    let alpha_key = server.identity("alpha").signing_key.verifying_key();
    act(&server, suspend("alpha")).await.unwrap();
    act(&server, remove("gone")).await.unwrap();
    let unknown_keyid = crypto::key_id(&crypto::generate_key().verifying_key());
    let before = history(&server, "alpha").await.len() + 2;
    let size_probe = act(&server, reinstate("alpha")).await.unwrap().log_index;
    act(&server, suspend("alpha")).await.unwrap();
    let cases = [
        (suspend("alpha"), Code::FailedPrecondition, "NOT_ACTIVE"),
        (
            reinstate("gone"),
            Code::FailedPrecondition,
            "MEMBER_REMOVED",
        ),
        (
            Body::KeyRegistered(pb::KeyRegistered {
                member_id: "alpha".into(),
                public_key: vec![1; 31],
            }),
            Code::InvalidArgument,
            "INVALID_KEY",
        ),
        (suspend("nobody"), Code::NotFound, "UNKNOWN_MEMBER"),
        (
            reinstate("admin"),
            Code::FailedPrecondition,
            "NOT_SUSPENDED",
        ),
        (
            add_member("alpha", cert.clone(), &[Role::Reader]),
            Code::AlreadyExists,
            "MEMBER_EXISTS",
        ),
        (
            add_member("dave", alpha_cert, &[Role::Reader]),
            Code::AlreadyExists,
            "CERTIFICATE_IN_USE",
        ),
        (
            register_key("alpha", &alpha_key),
            Code::AlreadyExists,
            "KEY_EXISTS",
        ),
        (
            revoke_key("alpha", "00"),
            Code::InvalidArgument,
            "INVALID_KEY_ID",
        ),
        (
            revoke_key("alpha", &unknown_keyid),
            Code::NotFound,
            "KEY_NOT_FOUND",
        ),
        (
            set_roles("alpha", &[]),
            Code::InvalidArgument,
            "INVALID_ROLE",
        ),
        (
            add_member("Dave!", cert, &[Role::Reader]),
            Code::InvalidArgument,
            "INVALID_MEMBER_ID",
        ),
    ];
    for (body, code, reason) in cases {
        let status = act(&server, body.clone()).await.unwrap_err();
        assert_eq!(
            (status.code(), details(&status).1.as_str()),
            (code, reason),
            "{body:?}: {status:?}"
        );
    }
    // Nothing was written: the next entry comes right after the last accepted one, and no
    // member's history grew.
    let next = act(&server, reinstate("alpha")).await.unwrap().log_index;
    assert_eq!(next, size_probe + 2);
    assert_eq!(history(&server, "alpha").await.len(), before + 1);
}
