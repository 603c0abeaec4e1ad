//! The follower against a primary's store, without a network: what it applies, and what it
//! refuses with which evidence, each checked again by `Evidence::check`.

use ed25519_dalek::SigningKey;

use super::*;
use crate::genesis::{self, Founder};
use crate::log::checkpoint::LogSigner;
use crate::registry::{Policy, Registry, ADMIN_FRESHNESS};
use crate::state::Caller;
use crate::statement::{hash_submission, Signer};
use crate::types::{HashType, MemberId, Role};

const ORIGIN: &str = "follow.test/forum";

fn log_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn verifier() -> LogVerifier {
    LogVerifier::new(ORIGIN, &log_key().verifying_key()).unwrap()
}

/// A primary's store with the genesis and `count` SHA-256 submissions by `alpha`, in batches
/// of 100 (one checkpoint each).
async fn primary(count: u64) -> (tempfile::TempDir, Store) {
    primary_of(count, 0).await
}

/// The same, with the hashes numbered from `first`: another history for another `first`.
async fn primary_of(count: u64, first: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let alpha = SigningKey::from_bytes(&[9; 32]);
    let founder = Founder {
        member_id: "alpha".into(),
        display_name: "alpha".into(),
        roles: vec![Role::Admin, Role::Contributor, Role::Reader],
        cert_der: vec![1],
        signing_key: alpha.verifying_key(),
    };
    let leaf = genesis::create(&log_key(), ORIGIN, &[founder], 1);
    genesis::bootstrap(&store, &leaf, &log_key().verifying_key(), ORIGIN).unwrap();
    let policy = Policy {
        origin: ORIGIN.into(),
        admin_freshness: ADMIN_FRESHNESS,
        max_blocking: 2,
        write_quorum: 0,
        cosignature_timeout: std::time::Duration::ZERO,
    };
    let registry = Registry::start(
        store.clone(),
        policy,
        LogSigner::new(ORIGIN, log_key()).unwrap(),
    )
    .unwrap();
    let signer = Signer::new(ORIGIN, "alpha", alpha);
    let caller = Caller {
        member_id: MemberId::parse("alpha").unwrap(),
        roles: vec![Role::Admin, Role::Contributor, Role::Reader],
    };
    let values: Vec<String> = (first..first + count)
        .map(|n| hex::encode(crate::crypto::sha256(&n.to_be_bytes())))
        .collect();
    for chunk in values.chunks(100) {
        let envelopes = chunk
            .iter()
            .map(|v| signer.submit(hash_submission(HashType::Sha256, v)))
            .collect();
        registry
            .submit(&caller, envelopes, |i| format!("envelopes[{i}]"))
            .await
            .unwrap();
    }
    registry.close().await;
    (dir, store)
}

fn follower() -> (tempfile::TempDir, Follower) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (
        dir,
        Follower::open(store, verifier(), "test", None).unwrap(),
    )
}

fn refused(result: Result<impl std::fmt::Debug, FollowError>) -> Evidence {
    match result {
        Err(FollowError::Refused(evidence)) => *evidence,
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_replays_into_the_same_log_and_views() {
    let (_p, primary) = primary(1_000).await;
    let (_f, mut follower) = follower();
    let mut seen = Vec::new();
    let applied = follower
        .replay_copy(&primary, |size, _| seen.push(size))
        .unwrap();
    assert_eq!(applied, primary.size().unwrap());
    // Every kept checkpoint of the primary is within one unit, so the units end at its last.
    assert_eq!(seen.last(), Some(&primary.size().unwrap()));
    let (_, note) = primary.latest_checkpoint().unwrap().unwrap();
    assert_eq!(follower.latest().unwrap().note, note);
    let value = hex::encode(crate::crypto::sha256(&7u64.to_be_bytes()));
    let hash = crate::types::ContentHash::parse(HashType::Sha256, &value).unwrap();
    assert_eq!(
        follower.store().records(&[&hash]).unwrap(),
        primary.records(&[&hash]).unwrap()
    );
    // Examining the same checkpoint again asks for nothing.
    assert!(follower.examine_latest(&note).unwrap().is_none());
    // A reopened follower resumes from the verified size.
    let store = follower.store().clone();
    drop(follower);
    let reopened = Follower::open(store, verifier(), "test", None).unwrap();
    assert_eq!(reopened.size(), applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_entry_or_root_is_refused_and_nothing_is_written() {
    let (_p, primary) = primary(300).await;
    let (_f, mut follower) = follower();
    let latest = verifier()
        .verify(&primary.latest_checkpoint().unwrap().unwrap().1)
        .unwrap();
    let mut leaves = primary.entry_range(0, latest.head.size).unwrap();

    // A signature byte changed: the entry is refused, with the key it failed.
    let mut entry = StoredEntry::decode(&leaves[42]).unwrap();
    entry.envelope.signatures[0].sig[3] ^= 0x10;
    let good = std::mem::replace(
        &mut leaves[42],
        prost::Message::encode_to_vec(&crate::pb::LogEntry {
            envelope: Some(entry.envelope),
            sequenced_at_unix_ms: entry.sequenced_at_unix_ms,
            relayed_by: entry.relayed_by,
        }),
    );
    let evidence = refused(follower.apply(&latest, leaves.clone()));
    assert_eq!(
        (evidence.kind, evidence.bad_index),
        (EvidenceKind::BadEntry, Some(42))
    );
    let finding = evidence.check(&verifier()).unwrap();
    assert!(
        !finding.proven && finding.what.contains("does not verify"),
        "{finding:?}"
    );
    assert_eq!(follower.store().size().unwrap(), 0, "nothing written");

    // Two entries of one group swapped: each verifies, but the tree is not the signed one.
    leaves[42] = good;
    leaves.swap(50, 51);
    let evidence = refused(follower.apply(&latest, leaves.clone()));
    assert_eq!(evidence.kind, EvidenceKind::RootMismatch);
    let finding = evidence.check(&verifier()).unwrap();
    assert!(
        !finding.proven && finding.what.starts_with("root mismatch"),
        "{finding:?}"
    );
    leaves.swap(50, 51);
    follower.apply(&latest, leaves).unwrap();
    assert_eq!(follower.size(), latest.head.size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_rollbacks_and_bad_checkpoints_are_refused_with_evidence() {
    let (_p, primary) = primary(300).await;
    let (_f, mut follower) = follower();
    follower.replay_copy(&primary, |_, _| {}).unwrap();
    let size = follower.size();
    let signer = LogSigner::new(ORIGIN, log_key()).unwrap();

    // Same size, another root: the log key signed two histories.
    let other = signer.sign(TreeHead {
        size,
        root: crate::log::tree::Hash([1; 32]),
    });
    let evidence = refused(follower.examine_latest(&other.note));
    assert_eq!(evidence.kind, EvidenceKind::Fork);
    let finding = evidence.check(&verifier()).unwrap();
    assert!(
        finding.proven && finding.what.starts_with("fork"),
        "{finding:?}"
    );

    // Smaller, and a prefix of the verified log: rolled back.
    let (at, older) = primary.checkpoint_at_most(size - 1).unwrap().unwrap();
    assert!(at < size);
    let evidence = refused(follower.examine_latest(&older));
    assert_eq!(evidence.kind, EvidenceKind::Rollback);
    let finding = evidence.check(&verifier()).unwrap();
    assert!(
        !finding.proven && finding.what.starts_with("rollback"),
        "{finding:?}"
    );

    // Smaller, with a root the verified log does not have there: a fork.
    let forked = signer.sign(TreeHead {
        size: at,
        root: crate::log::tree::Hash([2; 32]),
    });
    let evidence = refused(follower.examine_latest(&forked.note));
    assert_eq!(evidence.kind, EvidenceKind::Fork);
    let finding = evidence.check(&verifier()).unwrap();
    assert!(
        finding.proven && finding.what.contains("also a checkpoint"),
        "{finding:?}"
    );

    // Signed by another key.
    let stranger = LogSigner::new(ORIGIN, SigningKey::from_bytes(&[8; 32])).unwrap();
    let bad = stranger.sign(TreeHead {
        size: size + 5,
        root: crate::log::tree::Hash([3; 32]),
    });
    let evidence = refused(follower.examine_latest(&bad.note));
    assert_eq!(evidence.kind, EvidenceKind::BadCheckpoint);
    assert!(!evidence.check(&verifier()).unwrap().proven);
    // Evidence kept for another log is refused, whatever it holds.
    let other_key = SigningKey::from_bytes(&[8; 32]).verifying_key();
    let other = LogVerifier::new(ORIGIN, &other_key).unwrap();
    assert!(evidence.check(&other).is_err());

    // Evidence that proves nothing is refused by `check`: a rollback note that is the
    // held one.
    let mut forged = refused(follower.examine_latest(&older));
    forged.served = follower.latest().unwrap().text().to_owned();
    assert!(forged.check(&verifier()).is_err());
    assert_eq!(follower.size(), size, "nothing changed");
}

/// Entries that the log could not hold are refused at their index, before anything is
/// written: a sequencing time before the entry before it, and a relayer that is the author.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_the_log_could_not_hold_are_refused_at_their_index() {
    let (_p, primary) = primary(150).await;
    let (_f, mut follower) = follower();
    let latest = verifier()
        .verify(&primary.latest_checkpoint().unwrap().unwrap().1)
        .unwrap();
    let leaves = primary.entry_range(0, latest.head.size).unwrap();
    let changed = |i: usize, change: &dyn Fn(&mut crate::pb::LogEntry)| {
        let mut leaves = leaves.clone();
        let stored = StoredEntry::decode(&leaves[i]).unwrap();
        let mut entry = crate::pb::LogEntry {
            envelope: Some(stored.envelope),
            sequenced_at_unix_ms: stored.sequenced_at_unix_ms,
            relayed_by: stored.relayed_by,
        };
        change(&mut entry);
        leaves[i] = prost::Message::encode_to_vec(&entry);
        leaves
    };
    let backwards = changed(120, &|e| e.sequenced_at_unix_ms = 1);
    let evidence = refused(follower.apply(&latest, backwards));
    assert_eq!(evidence.bad_index, Some(120));
    assert!(
        evidence.reason.contains("before the entry before it"),
        "{}",
        evidence.reason
    );

    let self_relayed = changed(7, &|e| e.relayed_by = "alpha".into());
    let evidence = refused(follower.apply(&latest, self_relayed));
    assert_eq!(evidence.bad_index, Some(7));
    assert!(
        evidence.reason.contains("its own author"),
        "{}",
        evidence.reason
    );

    let relayed_by_nobody = changed(9, &|e| e.relayed_by = "mallory".into());
    let evidence = refused(follower.apply(&latest, relayed_by_nobody));
    assert_eq!(evidence.bad_index, Some(9));
    assert_eq!(follower.store().size().unwrap(), 0, "nothing written");
    follower.apply(&latest, leaves).unwrap();
}

/// A larger checkpoint of another history, signed by the same log key: the source's own
/// consistency proof from the verified size shows another prefix, which proves the fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_fork_is_proven_by_its_own_consistency_proof() {
    let (_p, primary) = primary(300).await;
    let (_f, mut follower) = follower();
    follower.replay_copy(&primary, |_, _| {}).unwrap();
    let held = follower.latest().unwrap().head;
    let (_o, other) = primary_of(400, 1_000_000).await;
    let (_, note) = other.latest_checkpoint().unwrap().unwrap();
    let target = follower.examine_latest(&note).unwrap().expect("larger");
    let proof = crate::log::tree::consistency_proof(held.size, target.head.size, &other).unwrap();
    let evidence = refused(follower.examine_consistency(&target, &proof));
    assert_eq!(evidence.kind, EvidenceKind::Fork);
    let finding = evidence.check(&verifier()).unwrap();
    assert!(
        finding.proven && finding.what.starts_with("fork"),
        "{finding:?}"
    );
    // The honest log's proof shows nothing wrong.
    let (_, ours) = primary.latest_checkpoint().unwrap().unwrap();
    assert!(follower.examine_latest(&ours).unwrap().is_none());
    let mut tampered = evidence.clone();
    tampered.prefix_root = Some(b64(&held.root.0));
    assert!(tampered.check(&verifier()).is_err());
}
