//! Opinions, retractions, withdrawals and incidents through the real server: each accepted
//! statement and the record a lookup then shows (status, tallies, opinions, retractions,
//! withdrawal, incident), and each refusal with its code, reason and field, appending nothing.

use hashforum::client::Client;
use hashforum::pb;
use hashforum::statement::admin::{
    add_member, close_incident, declare_incident, register_key, withdraw,
};
use hashforum::statement::{fresh_ms, hash_submission, Signer};
use hashforum::types::{ContentHash, HashType, Role};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::harness::{assert_invalid, assert_refused, lookup, sha256_value, submit, TestServer};

fn hash(n: u64) -> ContentHash {
    ContentHash::parse(HashType::Sha256, &sha256_value(n)).unwrap()
}

/// A submission of hash `n` by `signer`, tagged `tag` (so that two differ).
fn submission(signer: &Signer, n: u64, tag: &str) -> pb::Envelope {
    signer.submit(pb::HashSubmission {
        tags: vec![tag.into()],
        ..hash_submission(HashType::Sha256, &sha256_value(n))
    })
}

/// A submission of hash `n` naming `incident`.
fn under_incident(signer: &Signer, n: u64, incident: &str) -> pb::Envelope {
    signer.submit(pb::HashSubmission {
        incident_id: incident.into(),
        ..hash_submission(HashType::Sha256, &sha256_value(n))
    })
}

async fn record(client: &mut Client, n: u64) -> pb::HashRecord {
    lookup(client, HashType::Sha256, &sha256_value(n), false)
        .await
        .unwrap()
}

fn record_status(record: &pb::HashRecord) -> pb::RecordStatus {
    pb::RecordStatus::try_from(record.status).unwrap()
}

fn tallies(record: &pb::HashRecord) -> (u32, u32, u32) {
    let t = record.tallies.unwrap_or_default();
    (t.agree, t.disagree, t.false_positive)
}

/// The `field` of a refusal's `ErrorInfo` metadata (refusals other than `INVALID_ARGUMENT`).
fn field(status: &Status) -> String {
    status
        .get_details_error_info()
        .and_then(|i| i.metadata.get("field").cloned())
        .unwrap_or_default()
}

/// Asserts a refusal with `code`, `reason` and the element path `path`.
#[track_caller]
fn assert_refused_at(status: &Status, code: Code, reason: &str, path: &str) {
    assert_refused(status, code, reason);
    assert_eq!(field(status), path, "{status:?}");
}

/// Adds a member with `roles` and a signing key; returns its client and signer.
async fn member(server: &TestServer, id: &str, roles: &[Role]) -> (Client, Signer) {
    let (identity, cert) = server.issue_identity(id);
    let admin = server.signer("admin");
    let mut client = server.client("admin").await;
    for body in [
        add_member(id, id, roles, vec![cert]),
        register_key(id, &identity.signing_key.verifying_key()),
    ] {
        submit(&mut client, admin.admin(body)).await.unwrap();
    }
    (server.connect(&identity).await, Signer::of(&identity))
}

/// The next log index: appends a fresh submission by alpha and returns its index. Each check
/// of "nothing was appended" compares it with the index expected.
async fn next_index(server: &TestServer) -> u64 {
    let alpha = server.signer("alpha");
    let mut client = server.client("alpha").await;
    let n = 1_000_000 + fresh_ms();
    submit(&mut client, submission(&alpha, n, "probe"))
        .await
        .unwrap()
        .log_index
}

/// Opinions: a reader or contributor's latest opinion counts, one per member; a negative one
/// disputes the record; tallies and the opinions list follow; a batch lookup returns the same
/// record (the stored bytes copied into the reply).
#[tokio::test(flavor = "multi_thread")]
async fn latest_opinions_count_and_a_negative_one_disputes() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let (mut reader, reader_signer) = member(&server, "reader", &[Role::Reader]).await;
    let mut alpha = server.client("alpha").await;
    let receipt = submit(&mut alpha, submission(&server.signer("alpha"), 1, "a"))
        .await
        .unwrap();
    let r = record(&mut alpha, 1).await;
    assert_eq!(
        (record_status(&r), tallies(&r)),
        (pb::RecordStatus::Active, (0, 0, 0))
    );
    assert!(r.opinions.is_empty());

    let mut beta = server.client("beta").await;
    let beta_signer = server.signer("beta");
    let agree = submit(
        &mut beta,
        beta_signer.opinion(&hash(1), pb::OpinionKind::Agree, "seen it too"),
    )
    .await
    .unwrap();
    assert_eq!(agree.log_index, receipt.log_index + 1);
    let negative = reader_signer.opinion(&hash(1), pb::OpinionKind::FalsePositive, "a cat video");
    let fp = submit(&mut reader, negative).await.unwrap();
    let r = record(&mut alpha, 1).await;
    assert_eq!(
        (record_status(&r), tallies(&r)),
        (pb::RecordStatus::Disputed, (1, 0, 1))
    );
    let opinions: Vec<(&str, i32, &str, u64)> = r
        .opinions
        .iter()
        .map(|o| {
            (
                o.member_id.as_str(),
                o.opinion,
                o.reason.as_str(),
                o.log_index,
            )
        })
        .collect();
    assert_eq!(
        opinions,
        [
            (
                "beta",
                pb::OpinionKind::Agree as i32,
                "seen it too",
                agree.log_index
            ),
            (
                "reader",
                pb::OpinionKind::FalsePositive as i32,
                "a cat video",
                fp.log_index
            ),
        ]
    );
    assert!(r.opinions.iter().all(|o| o.sequenced_at_unix_ms > 0));

    // The reader changes its mind: its latest opinion replaces the earlier one in place.
    let changed = submit(
        &mut reader,
        reader_signer.opinion(&hash(1), pb::OpinionKind::Agree, ""),
    )
    .await
    .unwrap();
    let r = record(&mut alpha, 1).await;
    assert_eq!(
        (record_status(&r), tallies(&r)),
        (pb::RecordStatus::Active, (2, 0, 0))
    );
    assert_eq!(r.opinions.len(), 2);
    assert_eq!(
        (r.opinions[1].log_index, r.opinions[1].first_log_index),
        (changed.log_index, fp.log_index)
    );
    submit(
        &mut beta,
        beta_signer.opinion(&hash(1), pb::OpinionKind::Disagree, "wrong entity"),
    )
    .await
    .unwrap();
    let r = record(&mut alpha, 1).await;
    assert_eq!(
        (record_status(&r), tallies(&r)),
        (pb::RecordStatus::Disputed, (1, 1, 0))
    );

    let batch = alpha
        .registry
        .lookup_hashes(pb::LookupHashesRequest {
            queries: vec![pb::HashQuery {
                hash_type: HashType::Sha256.to_pb() as i32,
                value: sha256_value(1),
            }],
            include_envelopes: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.results[0].record.as_ref(), Some(&r));
    let with_envelopes = lookup(&mut alpha, HashType::Sha256, &sha256_value(1), true)
        .await
        .unwrap();
    assert_eq!(with_envelopes.opinions, r.opinions);
    assert_eq!(with_envelopes.status, r.status);
    assert!(with_envelopes.submissions[0].envelope.is_some());
}

/// Retractions: a contributor retracts its own submission, which stays in the record marked
/// with the retraction's index and reason; when every submitter has retracted the record is
/// `retracted`; a later (new) submission by the member makes it live again.
#[tokio::test(flavor = "multi_thread")]
async fn retractions_mark_submissions_and_a_new_submission_revives_one() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let (alpha_signer, beta_signer) = (server.signer("alpha"), server.signer("beta"));
    let mut alpha = server.client("alpha").await;
    let mut beta = server.client("beta").await;
    let first = submit(&mut alpha, submission(&alpha_signer, 2, "a"))
        .await
        .unwrap();
    submit(&mut beta, submission(&beta_signer, 2, "b"))
        .await
        .unwrap();
    let retraction = submit(&mut alpha, alpha_signer.retract(&hash(2), "mislabelled"))
        .await
        .unwrap();
    let r = record(&mut alpha, 2).await;
    assert_eq!(
        record_status(&r),
        pb::RecordStatus::Active,
        "beta's is live"
    );
    let marked = r.submissions[0].retraction.clone().expect("marked");
    assert_eq!(
        (marked.log_index, marked.reason.as_str()),
        (retraction.log_index, "mislabelled")
    );
    assert_eq!(
        r.submissions[0].log_index, first.log_index,
        "kept, not deleted"
    );
    assert_eq!(r.submissions[1].retraction, None);

    submit(&mut beta, beta_signer.retract(&hash(2), "appeal upheld"))
        .await
        .unwrap();
    assert_eq!(
        record_status(&record(&mut alpha, 2).await),
        pb::RecordStatus::Retracted
    );

    // The same submission again is a resubmission: the original receipt, still retracted.
    let again = submit(&mut alpha, submission(&alpha_signer, 2, "a"))
        .await
        .unwrap();
    assert_eq!((again.log_index, again.duplicate), (first.log_index, true));
    assert_eq!(
        record_status(&record(&mut alpha, 2).await),
        pb::RecordStatus::Retracted
    );
    // A new statement (here reissued with a time, as `submit --reissue` does) revives it.
    let body = pb::statement::Body::HashSubmission(pb::HashSubmission {
        tags: vec!["a".into()],
        ..hash_submission(HashType::Sha256, &sha256_value(2))
    });
    let revived = submit(
        &mut alpha,
        alpha_signer.sign(&alpha_signer.statement(fresh_ms(), body)),
    )
    .await
    .unwrap();
    let r = record(&mut alpha, 2).await;
    assert_eq!(record_status(&r), pb::RecordStatus::Active);
    assert_eq!(
        (
            r.submissions[0].log_index,
            r.submissions[0].first_log_index,
            r.submissions[0].retraction.as_ref()
        ),
        (revived.log_index, first.log_index, None)
    );
    // And it can be retracted again, with the same reason: a new statement (issued now).
    submit(&mut alpha, alpha_signer.retract(&hash(2), "mislabelled"))
        .await
        .unwrap();
    assert_eq!(
        record_status(&record(&mut alpha, 2).await),
        pb::RecordStatus::Retracted
    );
}

/// Retractions the record does not allow are refused and append nothing: a hash not in the
/// registry, someone else's submission, retracting twice; in a batch, all or none.
#[tokio::test(flavor = "multi_thread")]
async fn bad_retractions_are_refused_and_append_nothing() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let (alpha_signer, beta_signer) = (server.signer("alpha"), server.signer("beta"));
    let mut alpha = server.client("alpha").await;
    let mut beta = server.client("beta").await;
    submit(&mut alpha, submission(&alpha_signer, 3, "a"))
        .await
        .unwrap();
    let before = next_index(&server).await;

    let status = submit(&mut alpha, alpha_signer.retract(&hash(99), "x"))
        .await
        .unwrap_err();
    assert_refused_at(
        &status,
        Code::NotFound,
        "HASH_NOT_FOUND",
        "envelope.payload.hash_retraction",
    );
    let status = submit(&mut beta, beta_signer.retract(&hash(3), "not mine"))
        .await
        .unwrap_err();
    assert_refused_at(
        &status,
        Code::FailedPrecondition,
        "NOT_SUBMITTED",
        "envelope.payload.hash_retraction",
    );
    submit(&mut alpha, alpha_signer.retract(&hash(3), "once"))
        .await
        .unwrap();
    let status = submit(&mut alpha, alpha_signer.retract(&hash(3), "twice"))
        .await
        .unwrap_err();
    assert_refused_at(
        &status,
        Code::FailedPrecondition,
        "ALREADY_RETRACTED",
        "envelope.payload.hash_retraction",
    );
    // A batch: submit, retract, retract again. The third is refused, so none is appended.
    let batch = vec![
        submission(&alpha_signer, 4, "a"),
        alpha_signer.retract(&hash(4), "first"),
        alpha_signer.retract(&hash(4), "second"),
    ];
    let status = alpha
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes: batch })
        .await
        .unwrap_err();
    assert_refused_at(
        &status,
        Code::FailedPrecondition,
        "ALREADY_RETRACTED",
        "envelopes[2].payload.hash_retraction",
    );
    let status = submit(&mut alpha, alpha_signer.retract(&hash(3), ""))
        .await
        .unwrap_err();
    assert_invalid(
        &status,
        "envelope.payload.hash_retraction.reason",
        "MISSING_FIELD",
    );
    // Only the one good retraction was appended.
    assert_eq!(next_index(&server).await, before + 2);
    // Submitting and retracting in one batch checks the retraction against the submission.
    let batch = vec![
        submission(&alpha_signer, 5, "a"),
        alpha_signer.retract(&hash(5), "in the same batch"),
    ];
    alpha
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes: batch })
        .await
        .unwrap();
    assert_eq!(status_of(&mut alpha, 5).await, pb::RecordStatus::Retracted);
}

async fn status_of(client: &mut Client, n: u64) -> pb::RecordStatus {
    record_status(&record(client, n).await)
}

/// Opinions that are refused append nothing: a hash not in the registry, an observer (no
/// role for it), a reason with a control or invisible character, no opinion.
#[tokio::test(flavor = "multi_thread")]
async fn bad_opinions_are_refused_and_append_nothing() {
    let server = TestServer::start(&["alpha"]).await;
    let (mut observer, observer_signer) = member(&server, "watcher", &[Role::Observer]).await;
    let alpha_signer = server.signer("alpha");
    let mut alpha = server.client("alpha").await;
    submit(&mut alpha, submission(&alpha_signer, 6, "a"))
        .await
        .unwrap();
    let before = next_index(&server).await;

    let status = submit(
        &mut alpha,
        alpha_signer.opinion(&hash(98), pb::OpinionKind::Agree, ""),
    )
    .await
    .unwrap_err();
    assert_refused_at(
        &status,
        Code::NotFound,
        "HASH_NOT_FOUND",
        "envelope.payload.hash_opinion",
    );
    let status = submit(
        &mut observer,
        observer_signer.opinion(&hash(6), pb::OpinionKind::Disagree, ""),
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    // Relayed by the admin, the observer's opinion is refused by its author's roles.
    let status = submit(
        &mut server.client("admin").await,
        observer_signer.opinion(&hash(6), pb::OpinionKind::Disagree, ""),
    )
    .await
    .unwrap_err();
    assert_refused_at(&status, Code::PermissionDenied, "MISSING_ROLE", "envelope");
    for bad in ["right\u{202E}left", "line\nbreak", &"x".repeat(1025)] {
        let status = submit(
            &mut alpha,
            alpha_signer.opinion(&hash(6), pb::OpinionKind::Agree, bad),
        )
        .await
        .unwrap_err();
        assert_invalid(
            &status,
            "envelope.payload.hash_opinion.reason",
            "INVALID_REASON",
        );
    }
    let status = submit(
        &mut alpha,
        alpha_signer.opinion(&hash(6), pb::OpinionKind::Unspecified, ""),
    )
    .await
    .unwrap_err();
    assert_invalid(
        &status,
        "envelope.payload.hash_opinion.opinion",
        "INVALID_OPINION",
    );
    assert_eq!(next_index(&server).await, before + 1, "nothing appended");
}

/// Withdrawal: admins only; the record shows it and is frozen (no submission, opinion,
/// retraction or second withdrawal); refusals append nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawal_freezes_the_record() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha_signer = server.signer("alpha");
    let mut alpha = server.client("alpha").await;
    let mut admin = server.client("admin").await;
    let admin_signer = server.signer("admin");
    submit(&mut alpha, submission(&alpha_signer, 7, "a"))
        .await
        .unwrap();
    let before = next_index(&server).await;

    let beta_signer = server.signer("beta");
    let status = submit(
        &mut server.client("beta").await,
        beta_signer.admin(withdraw(&hash(7), "I say so")),
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    let status = submit(&mut admin, admin_signer.admin(withdraw(&hash(97), "x")))
        .await
        .unwrap_err();
    assert_refused_at(
        &status,
        Code::NotFound,
        "HASH_NOT_FOUND",
        "envelope.payload.hash_withdrawal",
    );
    let stale = admin_signer.sign(&admin_signer.statement(1, withdraw(&hash(7), "old")));
    let status = submit(&mut admin, stale).await.unwrap_err();
    assert_invalid(
        &status,
        "envelope.payload.issued_at_unix_ms",
        "STALE_STATEMENT",
    );
    assert_eq!(next_index(&server).await, before + 1, "nothing appended");

    let withdrawal = submit(
        &mut admin,
        admin_signer.admin(withdraw(&hash(7), "appeal #12")),
    )
    .await
    .unwrap();
    let r = record(&mut alpha, 7).await;
    assert_eq!(record_status(&r), pb::RecordStatus::Withdrawn);
    let w = r.withdrawal.expect("withdrawal");
    assert_eq!(
        (w.member_id.as_str(), w.reason.as_str(), w.log_index),
        ("admin", "appeal #12", withdrawal.log_index)
    );
    assert_eq!(r.submissions.len(), 1, "nothing deleted");

    let refusals = [
        submit(&mut alpha, submission(&alpha_signer, 7, "again")).await,
        submit(
            &mut alpha,
            alpha_signer.opinion(&hash(7), pb::OpinionKind::Agree, ""),
        )
        .await,
        submit(&mut alpha, alpha_signer.retract(&hash(7), "late")).await,
    ];
    let paths = ["hash_submission", "hash_opinion", "hash_retraction"];
    for (result, path) in refusals.into_iter().zip(paths) {
        assert_refused_at(
            &result.unwrap_err(),
            Code::FailedPrecondition,
            "HASH_WITHDRAWN",
            &format!("envelope.payload.{path}"),
        );
    }
    let status = submit(&mut admin, admin_signer.admin(withdraw(&hash(7), "twice")))
        .await
        .unwrap_err();
    assert_refused(&status, Code::FailedPrecondition, "ALREADY_WITHDRAWN");
    assert_eq!(
        next_index(&server).await,
        withdrawal.log_index + 1,
        "nothing appended"
    );
}

/// Incidents: declared and closed by admins, listed for every member (also after a restart),
/// named by submissions while open; every bad form refused with its code and field.
#[tokio::test(flavor = "multi_thread")]
async fn incidents_are_declared_named_closed_and_listed() {
    let mut server = TestServer::start(&["alpha"]).await;
    let alpha_signer = server.signer("alpha");
    let admin_signer = server.signer("admin");
    let mut admin = server.client("admin").await;
    let mut alpha = server.client("alpha").await;
    let level = pb::IncidentLevel::ContentIncidentProtocol;
    let declared = submit(
        &mut admin,
        admin_signer.admin(declare_incident("buffalo-2022", "Buffalo attack", level)),
    )
    .await
    .unwrap();
    let status = submit(
        &mut alpha,
        alpha_signer.admin(declare_incident("halle-2019", "Halle", level)),
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "MISSING_ROLE");

    let named = submit(&mut alpha, under_incident(&alpha_signer, 8, "buffalo-2022"))
        .await
        .unwrap();
    let r = record(&mut alpha, 8).await;
    assert_eq!(r.submissions[0].incident_id, "buffalo-2022");
    let before = next_index(&server).await;
    assert_eq!(before, named.log_index + 1);

    let refusals = [
        (
            submit(
                &mut admin,
                admin_signer.admin(declare_incident("buffalo-2022", "again", level)),
            )
            .await,
            Code::AlreadyExists,
            "INCIDENT_EXISTS",
            "envelope.payload.incident_declared.incident_id",
        ),
        (
            submit(
                &mut admin,
                admin_signer.admin(close_incident("nowhere", "")),
            )
            .await,
            Code::NotFound,
            "UNKNOWN_INCIDENT",
            "envelope.payload.incident_closed.incident_id",
        ),
        (
            submit(&mut alpha, under_incident(&alpha_signer, 9, "nowhere")).await,
            Code::NotFound,
            "UNKNOWN_INCIDENT",
            "envelope.payload.hash_submission.incident_id",
        ),
    ];
    for (result, code, reason, path) in refusals {
        assert_refused_at(&result.unwrap_err(), code, reason, path);
    }
    let status = submit(&mut alpha, under_incident(&alpha_signer, 9, "Bad Id"))
        .await
        .unwrap_err();
    assert_invalid(
        &status,
        "envelope.payload.hash_submission.incident_id",
        "INVALID_INCIDENT_ID",
    );
    let status = submit(
        &mut admin,
        admin_signer.admin(declare_incident("untitled", "", level)),
    )
    .await
    .unwrap_err();
    assert_invalid(
        &status,
        "envelope.payload.incident_declared.title",
        "MISSING_FIELD",
    );
    assert_eq!(next_index(&server).await, before + 1, "nothing appended");

    let closed = submit(
        &mut admin,
        admin_signer.admin(close_incident("buffalo-2022", "response over")),
    )
    .await
    .unwrap();
    let status = submit(
        &mut admin,
        admin_signer.admin(close_incident("buffalo-2022", "")),
    )
    .await
    .unwrap_err();
    assert_refused_at(
        &status,
        Code::FailedPrecondition,
        "INCIDENT_CLOSED",
        "envelope.payload.incident_closed.incident_id",
    );
    let status = submit(&mut alpha, under_incident(&alpha_signer, 9, "buffalo-2022"))
        .await
        .unwrap_err();
    assert_refused_at(
        &status,
        Code::FailedPrecondition,
        "INCIDENT_CLOSED",
        "envelope.payload.hash_submission.incident_id",
    );
    assert_eq!(next_index(&server).await, closed.log_index + 1);

    // Listed for any member, also once the server has restarted (loaded from the store).
    server.restart().await;
    let mut alpha = server.client("alpha").await;
    let incidents = alpha
        .registry
        .list_incidents(pb::ListIncidentsRequest {})
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(incidents.len(), 1);
    let i = &incidents[0];
    assert_eq!(
        (
            i.incident_id.as_str(),
            i.title.as_str(),
            i.level,
            i.declared_by.as_str(),
            i.declared_at_log_index
        ),
        (
            "buffalo-2022",
            "Buffalo attack",
            level as i32,
            "admin",
            declared.log_index
        )
    );
    let closure = i.closure.as_ref().expect("closed");
    assert_eq!(
        (
            closure.closed_by.as_str(),
            closure.reason.as_str(),
            closure.log_index
        ),
        ("admin", "response over", closed.log_index)
    );
}
