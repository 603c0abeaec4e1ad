//! The log as a transparency log, through the real server: receipts that verify with
//! `forum.vkey` alone, the Log API, checkpoints kept across a crash.

use hashforum::client::Client;
use hashforum::identity::Identity;
use hashforum::log::checkpoint::{LogVerifier, SignedCheckpoint};
use hashforum::log::proof::Receipt;
use hashforum::log::tree::{self, Frontier, Hash};
use hashforum::log::{leaf_hash, leaf_prefix};
use hashforum::pb;
use hashforum::statement::admin::set_roles;
use hashforum::statement::{hash_submission, Signer};
use hashforum::types::{HashType, LeafHash, Role};
use tonic::Code;

use crate::harness::{
    details, dev_forum, latest_checkpoint as latest, sha256_value, submit, submit_all,
    ServeProcess, TestServer, CHILD_TIMEOUT, DOMAIN,
};

fn verifier(dir: &std::path::Path) -> LogVerifier {
    let text = std::fs::read_to_string(dir.join("forum.vkey")).expect("init writes forum.vkey");
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{text:?}"
    );
    LogVerifier::from_vkey(&text).unwrap()
}

fn hashes(proof: &[Vec<u8>]) -> Vec<Hash> {
    proof
        .iter()
        .map(|h| Hash(h.as_slice().try_into().expect("32 bytes")))
        .collect()
}

/// Checks a receipt as its holder would, offline: rebuild the leaf from the envelope it signed
/// and the receipt's `extra`, then verify the proof and the checkpoint with the vkey alone.
fn check_receipt(
    verifier: &LogVerifier,
    envelope: &pb::Envelope,
    receipt: &pb::Receipt,
) -> (Vec<u8>, SignedCheckpoint) {
    let proof = Receipt::parse(&receipt.tlog_proof).expect("a tlog-proof");
    assert_eq!(proof.index, receipt.log_index);
    let leaf = proof.entry_for(envelope).expect("extra");
    assert_eq!(leaf_hash(&leaf).as_bytes(), receipt.entry_hash.as_slice());
    let checkpoint = proof.verify(verifier, leaf_hash(&leaf)).expect("verifies");
    assert!(checkpoint.head.size > receipt.log_index);
    (leaf, checkpoint)
}

async fn all_entries(client: &mut Client, start: u64, end: u64) -> Vec<Vec<u8>> {
    let mut stream = client
        .log
        .get_entries(pb::GetEntriesRequest { start, end })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        assert_eq!(chunk.start, start + out.len() as u64, "chunks in order");
        assert!(chunk.entries.len() <= 256);
        out.extend(chunk.entries);
    }
    out
}

fn root_of(entries: &[Vec<u8>]) -> Hash {
    let mut frontier = Frontier::default();
    for entry in entries {
        frontier.append(leaf_hash(entry));
    }
    frontier.root()
}

/// Every receipt, single, batched, relayed or resubmitted, verifies offline with `forum.vkey`,
/// and its leaf is exactly the stored entry.
#[tokio::test(flavor = "multi_thread")]
async fn receipts_verify_with_the_vkey_alone() {
    let server = TestServer::start(&["alpha"]).await;
    let verifier = verifier(server.dir());
    let mut alpha = server.client("alpha").await;
    let signer = server.signer("alpha");

    let one = signer.submit(hash_submission(HashType::Sha256, &sha256_value(1)));
    let receipt = submit(&mut alpha, one.clone()).await.unwrap();
    let (leaf, checkpoint) = check_receipt(&verifier, &one, &receipt);
    let stored = alpha
        .log
        .get_entry(pb::GetEntryRequest {
            index: receipt.log_index,
        })
        .await
        .unwrap()
        .into_inner()
        .entry;
    assert_eq!(stored, leaf, "the rebuilt leaf is the stored entry");
    assert!(checkpoint.head.size >= 2);

    let batch: Vec<pb::Envelope> = (2..300)
        .map(|n| signer.submit(hash_submission(HashType::Sha256, &sha256_value(n))))
        .collect();
    let receipts = submit_all(&mut alpha, batch.clone()).await.unwrap();
    for (envelope, receipt) in batch.iter().zip(&receipts) {
        check_receipt(&verifier, envelope, receipt);
    }

    // A resubmission gets the original's index, with a proof in a later tree.
    let again = submit(&mut alpha, one.clone()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.log_index, receipt.log_index);
    let (_, later) = check_receipt(&verifier, &one, &again);
    assert!(later.head.size >= 300);

    // An admin relaying a member's statement: the relayer is in the leaf, and the receipt.
    let mut admin = server.client("admin").await;
    let relayed = signer.submit(hash_submission(HashType::Sha256, &sha256_value(400)));
    let receipt = submit(&mut admin, relayed.clone()).await.unwrap();
    let (leaf, _) = check_receipt(&verifier, &relayed, &receipt);
    let stored = hashforum::log::StoredEntry::decode(&leaf).unwrap();
    assert_eq!(stored.relayed_by, "admin");

    // A receipt for another entry, or under a checkpoint signed by another key, fails.
    let other = signer.submit(hash_submission(HashType::Sha256, &sha256_value(2)));
    let proof = Receipt::parse(&receipt.tlog_proof).unwrap();
    let leaf = proof.entry_for(&other).unwrap();
    assert!(proof.verify(&verifier, leaf_hash(&leaf)).is_err());
    let stranger = LogVerifier::new(
        hashforum::forum::DEV_ORIGIN,
        &ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key(),
    )
    .unwrap();
    let leaf = LeafHash(receipt.entry_hash.as_slice().try_into().unwrap());
    assert!(proof.verify(&stranger, leaf).is_err());
}

/// The Log API: the entries rebuild the checkpoint's root, proofs verify against signed
/// checkpoints, and impossible requests are refused with the field and reason.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_api_serves_what_checkpoints_sign() {
    let server = TestServer::start(&["alpha"]).await;
    let verifier = verifier(server.dir());
    let mut alpha = server.client("alpha").await;
    let signer = server.signer("alpha");
    let first = latest(&mut alpha, &verifier).await;
    assert_eq!(first.head.size, 1, "genesis alone");

    let mut sizes = vec![first.clone()];
    for round in 0..3u64 {
        let batch: Vec<pb::Envelope> = (0..200)
            .map(|n| {
                signer.submit(hash_submission(
                    HashType::Sha256,
                    &sha256_value(1000 * round + n),
                ))
            })
            .collect();
        submit_all(&mut alpha, batch).await.unwrap();
        sizes.push(latest(&mut alpha, &verifier).await);
    }
    let last = sizes.last().unwrap().clone();
    assert_eq!(last.head.size, 601);

    let entries = all_entries(&mut alpha, 0, last.head.size).await;
    assert_eq!(entries.len(), 601);
    assert_eq!(root_of(&entries), last.head.root);
    assert_eq!(all_entries(&mut alpha, 5, 5).await.len(), 0);

    for checkpoint in &sizes {
        // Every signed checkpoint is kept and served by size.
        let note = alpha
            .log
            .get_checkpoint(pb::GetCheckpointRequest {
                size: checkpoint.head.size,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .note;
        assert_eq!(note, checkpoint.note);
        assert_eq!(
            root_of(&entries[..checkpoint.head.size as usize]),
            checkpoint.head.root
        );
        // Consistency with the latest.
        let proof = alpha
            .log
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                old_size: checkpoint.head.size,
                new_size: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(proof.new_size, last.head.size);
        tree::verify_consistency(
            &hashes(&proof.hashes),
            checkpoint.head.size,
            checkpoint.head.root,
            last.head.size,
            last.head.root,
        )
        .unwrap();
    }
    for index in [0u64, 1, 255, 256, 600] {
        for checkpoint in sizes.iter().filter(|c| c.head.size > index) {
            let proof = alpha
                .log
                .get_inclusion_proof(pb::GetInclusionProofRequest {
                    index,
                    tree_size: checkpoint.head.size,
                })
                .await
                .unwrap()
                .into_inner();
            tree::verify_inclusion(
                &hashes(&proof.hashes),
                index,
                checkpoint.head.size,
                checkpoint.head.root,
                leaf_hash(&entries[index as usize]),
            )
            .unwrap();
        }
    }

    let size = last.head.size;
    let refusals = [
        (
            alpha
                .log
                .get_entry(pb::GetEntryRequest { index: size })
                .await
                .map(drop),
            Code::OutOfRange,
            "PAST_LATEST_CHECKPOINT",
        ),
        (
            alpha
                .log
                .get_entries(pb::GetEntriesRequest {
                    start: 0,
                    end: size + 1,
                })
                .await
                .map(drop),
            Code::OutOfRange,
            "PAST_LATEST_CHECKPOINT",
        ),
        (
            alpha
                .log
                .get_entries(pb::GetEntriesRequest { start: 9, end: 3 })
                .await
                .map(drop),
            Code::InvalidArgument,
            "EMPTY_RANGE",
        ),
        (
            alpha
                .log
                .get_inclusion_proof(pb::GetInclusionProofRequest {
                    index: 10,
                    tree_size: 10,
                })
                .await
                .map(drop),
            Code::InvalidArgument,
            "INDEX_NOT_IN_TREE",
        ),
        (
            alpha
                .log
                .get_inclusion_proof(pb::GetInclusionProofRequest {
                    index: 0,
                    tree_size: u64::MAX,
                })
                .await
                .map(drop),
            Code::OutOfRange,
            "PAST_LATEST_CHECKPOINT",
        ),
        (
            alpha
                .log
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    old_size: 300,
                    new_size: 200,
                })
                .await
                .map(drop),
            Code::InvalidArgument,
            "OLD_SIZE_TOO_LARGE",
        ),
        (
            alpha
                .log
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    old_size: 1,
                    new_size: size + 1,
                })
                .await
                .map(drop),
            Code::OutOfRange,
            "PAST_LATEST_CHECKPOINT",
        ),
        (
            alpha
                .log
                .get_checkpoint(pb::GetCheckpointRequest {
                    size: 2,
                    ..Default::default()
                })
                .await
                .map(drop),
            Code::NotFound,
            "NO_CHECKPOINT_AT_SIZE",
        ),
    ];
    for (result, code, reason) in refusals {
        let status = result.expect_err("refused");
        let got = details(&status);
        assert_eq!(
            (status.code(), got.reason.as_deref(), got.domain.as_deref()),
            (code, Some(reason), Some(DOMAIN)),
            "{status:?}"
        );
        if code == Code::InvalidArgument {
            assert_eq!(got.violations, Some(1), "names the field: {status:?}");
        }
    }
}

/// A watcher gets the latest checkpoint at once, then each new one.
#[tokio::test(flavor = "multi_thread")]
async fn watchers_see_each_new_checkpoint() {
    let server = TestServer::start(&["alpha"]).await;
    let verifier = verifier(server.dir());
    let mut alpha = server.client("alpha").await;
    let mut stream = alpha
        .log
        .watch_checkpoints(pb::WatchCheckpointsRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(verifier.verify(&first.note).unwrap().head.size, 1);
    let signer = server.signer("alpha");
    let receipt = submit(
        &mut alpha,
        signer.submit(hash_submission(HashType::Sha256, &sha256_value(7))),
    )
    .await
    .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
        .await
        .expect("a new checkpoint within 10 s")
        .unwrap()
        .unwrap();
    let next = verifier.verify(&next.note).unwrap();
    assert!(next.head.size > receipt.log_index);
}

/// An admin action appended to the log is in the tree like any entry: its receipt verifies.
#[tokio::test(flavor = "multi_thread")]
async fn admin_receipts_verify_too() {
    let server = TestServer::start(&["alpha"]).await;
    let verifier = verifier(server.dir());
    let mut admin = server.client("admin").await;
    let action = server
        .signer("admin")
        .admin(set_roles("alpha", &[Role::Contributor]));
    let receipt = submit(&mut admin, action.clone()).await.unwrap();
    check_receipt(&verifier, &action, &receipt);
}

/// A crash after a group's entries are durable and before its checkpoint is signed and kept:
/// after a restart the entries are there, the log signs their checkpoint once, and every kept
/// checkpoint is consistent with the next.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_commit_and_checkpoint_loses_nothing() {
    let dir = dev_forum(&["alpha"]);
    let config = dir.path().join("server/hashforum.toml");
    let verifier = verifier(dir.path());
    let identity = Identity::load(&dir.path().join("identities/alpha")).unwrap();
    let signer = Signer::of(&identity);
    let envelope = signer.submit(hash_submission(HashType::Sha256, &sha256_value(1)));

    let mut crashing =
        ServeProcess::start_with(&config, &[("HASHFORUM_FAILPOINT", "after-commit")])
            .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    let mut client = Client::connect(&identity, Some(&crashing.addr))
        .await
        .unwrap();
    let first = latest(&mut client, &verifier).await;
    assert_eq!(first.head.size, 1);
    let refused = submit(&mut client, envelope.clone()).await;
    assert!(refused.is_err(), "no receipt without a kept checkpoint");
    let status = tokio::task::block_in_place(|| crashing.wait(CHILD_TIMEOUT));
    assert!(!status.success());
    assert!(
        crashing.stderr().contains("failpoint after-commit"),
        "{}",
        crashing.stderr()
    );

    let serving = ServeProcess::start(&config)
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    let mut client = Client::connect(&identity, Some(&serving.addr))
        .await
        .unwrap();
    // The entry was committed before the crash: resubmitting it returns the original.
    let receipt = submit(&mut client, envelope.clone()).await.unwrap();
    assert!(receipt.duplicate, "the entry survived the crash");
    assert_eq!(receipt.log_index, 1);
    check_receipt(&verifier, &envelope, &receipt);
    let latest = latest(&mut client, &verifier).await;
    assert_eq!(latest.head.size, 2);
    let entries = all_entries(&mut client, 0, 2).await;
    assert_eq!(root_of(&entries), latest.head.root);
    let mut more = Vec::new();
    for n in 2..5 {
        let envelope = signer.submit(hash_submission(HashType::Sha256, &sha256_value(n)));
        more.push(submit(&mut client, envelope).await.unwrap());
    }
    // Kept checkpoints: sizes 1 (first start), 2 (signed at restart), then one per commit.
    let mut kept = Vec::new();
    for size in [1u64, 2, 3, 4, 5] {
        let note = client
            .log
            .get_checkpoint(pb::GetCheckpointRequest {
                size,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .note;
        kept.push(verifier.verify(&note).unwrap());
    }
    assert_eq!(
        kept[0].note, first.note,
        "the size-1 checkpoint, byte for byte"
    );
    for pair in kept.windows(2) {
        let proof = client
            .log
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                old_size: pair[0].head.size,
                new_size: pair[1].head.size,
            })
            .await
            .unwrap()
            .into_inner();
        tree::verify_consistency(
            &hashes(&proof.hashes),
            pair[0].head.size,
            pair[0].head.root,
            pair[1].head.size,
            pair[1].head.root,
        )
        .unwrap();
    }
    drop(serving);
}

/// `verify` replays every kind of entry with the server's own rules: admin actions, a key
/// registered then revoked, a relayed submission, a suspension and reinstatement. Then a
/// log whose entry was signed by a key revoked before it is refused at that index.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_of_every_kind_of_entry_replays() {
    use hashforum::statement::admin::{register_key, reinstate, revoke_key, suspend};
    let mut server = TestServer::start(&["alpha"]).await;
    let verifier = verifier(server.dir());
    let mut admin = server.client("admin").await;
    let mut alpha = server.client("alpha").await;
    let admin_signer = server.signer("admin");
    let alpha_id = server.identity("alpha");
    let new_key = hashforum::crypto::generate_key();
    let new_signer = Signer::new(hashforum::forum::DEV_ORIGIN, "alpha", new_key.clone());
    let old_keyid = hashforum::crypto::key_id(&alpha_id.signing_key.verifying_key());

    let hash = |n| hash_submission(HashType::Sha256, &sha256_value(n));
    submit(&mut alpha, Signer::of(&alpha_id).submit(hash(1)))
        .await
        .unwrap();
    submit(
        &mut admin,
        admin_signer.admin(register_key("alpha", &new_key.verifying_key())),
    )
    .await
    .unwrap();
    submit(&mut alpha, new_signer.submit(hash(2)))
        .await
        .unwrap();
    submit(
        &mut admin,
        admin_signer.admin(revoke_key("alpha", &old_keyid, "rotated")),
    )
    .await
    .unwrap();
    // Relayed by the admin.
    submit(&mut admin, new_signer.submit(hash(3)))
        .await
        .unwrap();
    submit(&mut admin, admin_signer.admin(suspend("alpha", "review")))
        .await
        .unwrap();
    submit(&mut admin, admin_signer.admin(reinstate("alpha", "done")))
        .await
        .unwrap();
    submit(&mut alpha, new_signer.submit(hash(4)))
        .await
        .unwrap();
    server.stop().await;

    let data = server.dir().join("server/data");
    let store = hashforum::storage::Store::open_read_only(&data).unwrap();
    let notes: Vec<Vec<u8>> = store
        .checkpoints(0)
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    let report = hashforum::verify::log(
        &verifier,
        hashforum::verify::stored_entries(&store).unwrap(),
        &notes,
    )
    .unwrap();
    assert_eq!(report.entries, 9);
    assert!(report.checkpoints.len() >= 9, "one per commit, kept");

    // The same log with one more entry, signed with the revoked key: refused at index 9.
    let mut leaves: Vec<Vec<u8>> = hashforum::verify::stored_entries(&store)
        .unwrap()
        .map(|e| e.unwrap().0)
        .collect();
    let revoked = Signer::of(&alpha_id).submit(hash(5));
    leaves.push(hashforum::log::leaf_bytes(
        &leaf_prefix(&revoked),
        hashforum::log::now_ms(),
        None,
    ));
    let mut frontier = Frontier::default();
    for leaf in &leaves {
        frontier.append(leaf_hash(leaf));
    }
    let hashforum::config::Mode::Primary { log_key, .. } =
        hashforum::config::Config::load(&server.dir().join("server/hashforum.toml"))
            .unwrap()
            .mode
    else {
        panic!("the dev server is a primary")
    };
    let signer =
        hashforum::log::checkpoint::LogSigner::new(hashforum::forum::DEV_ORIGIN, log_key).unwrap();
    let forged = signer.sign(hashforum::log::checkpoint::TreeHead {
        size: 10,
        root: frontier.root(),
    });
    let err = hashforum::verify::log(
        &verifier,
        leaves.into_iter().map(|l| Ok((l, None))),
        &[forged.note],
    )
    .unwrap_err();
    match err {
        hashforum::verify::LogError::Entry { index, reason } => {
            assert_eq!(index, 9);
            assert!(reason.contains("revoked"), "{reason}");
        }
        other => panic!("{other}"),
    }

    // An entry signed for another forum (staging) by a key valid here: refused at its index.
    let mut leaves: Vec<Vec<u8>> = hashforum::verify::stored_entries(&store)
        .unwrap()
        .map(|e| e.unwrap().0)
        .collect();
    let staging = Signer::new("hashforum.dev/staging", "alpha", new_key.clone()).submit(hash(6));
    leaves.push(hashforum::log::leaf_bytes(
        &leaf_prefix(&staging),
        hashforum::log::now_ms(),
        None,
    ));
    let mut frontier = Frontier::default();
    for leaf in &leaves {
        frontier.append(leaf_hash(leaf));
    }
    let forged = signer.sign(hashforum::log::checkpoint::TreeHead {
        size: 10,
        root: frontier.root(),
    });
    match hashforum::verify::log(
        &verifier,
        leaves.into_iter().map(|l| Ok((l, None))),
        &[forged.note],
    )
    .unwrap_err()
    {
        hashforum::verify::LogError::Entry { index, reason } => {
            assert_eq!(index, 9);
            assert!(reason.contains("origin"), "{reason}");
        }
        other => panic!("{other}"),
    }
}

/// The provenance of a hash: every entry about it (superseded submissions, corroboration,
/// opinions, retraction, withdrawal), paged past 512, proved against one checkpoint; the
/// bundle verifies with `forum.vkey` alone, and a tampered one does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_provenance_bundle_verifies_with_the_vkey_alone() {
    use base64::Engine;
    use hashforum::statement::admin::{register_key, withdraw};
    use hashforum::types::ContentHash;
    use hashforum::verify::{bundle, Bundle};

    let server = TestServer::start(&["alpha", "beta"]).await;
    let verifier = verifier(server.dir());
    let (mut alpha, mut beta) = (server.client("alpha").await, server.client("beta").await);
    let mut admin = server.client("admin").await;
    let value = sha256_value(42);
    let hash = ContentHash::parse(HashType::Sha256, &value).unwrap();
    let alpha_signer = server.signer("alpha");
    let beta_signer = server.signer("beta");

    // alpha submits the hash 600 times with different tags (each supersedes the last).
    let batch: Vec<pb::Envelope> = (0..600)
        .map(|n| {
            let mut s = hash_submission(HashType::Sha256, &value);
            s.tags = vec![format!("t{n}")];
            alpha_signer.submit(s)
        })
        .collect();
    submit_all(&mut alpha, batch).await.unwrap();
    // beta rotates its key, then corroborates with the new one.
    let beta_key = hashforum::crypto::generate_key();
    submit(
        &mut admin,
        server
            .signer("admin")
            .admin(register_key("beta", &beta_key.verifying_key())),
    )
    .await
    .unwrap();
    let beta_new = Signer::new(hashforum::forum::DEV_ORIGIN, "beta", beta_key);
    submit(
        &mut beta,
        beta_new.submit(hash_submission(HashType::Sha256, &value)),
    )
    .await
    .unwrap();
    submit(
        &mut beta,
        beta_signer.opinion(&hash, pb::OpinionKind::Disagree, "not ours"),
    )
    .await
    .unwrap();
    submit(&mut alpha, alpha_signer.retract(&hash, "mistaken"))
        .await
        .unwrap();
    submit(
        &mut admin,
        server
            .signer("admin")
            .admin(withdraw(&hash, "appeal upheld")),
    )
    .await
    .unwrap();
    // Something else, not about the hash.
    submit(
        &mut alpha,
        alpha_signer.submit(hash_submission(HashType::Sha256, &sha256_value(43))),
    )
    .await
    .unwrap();

    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("bundle.json");
    let cli = crate::harness::hashforum_bin()
        .args([
            "provenance",
            "--type",
            "sha256",
            "--value",
            &value,
            "--json",
            "--out",
        ])
        .arg(&path)
        .env("HASHFORUM_IDENTITY", server.identity_dir("beta"))
        .env("HASHFORUM_SERVER", &server.addr)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let listed: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    let actions: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.len(),
        604,
        "every entry about the hash, over two pages"
    );
    assert_eq!(
        actions[600..],
        [
            "hash_submission",
            "hash_opinion",
            "hash_retraction",
            "hash_withdrawal"
        ]
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let good: Bundle = serde_json::from_str(&text).unwrap();
    let (head, facts) = bundle(&verifier, &good).unwrap();
    assert_eq!(facts.len(), 604);
    assert_eq!(head.size, 607);
    // Two keys signed them (alpha's and beta's new one, and beta's first for the opinion):
    // genesis (index 0) and beta's registration.
    let key_indexes: Vec<u64> = good.keys.iter().map(|k| k.log_index).collect();
    assert_eq!(key_indexes, [0, 601]);

    // Tampering: a changed byte in an entry, a missing key registration, an entry about
    // another hash, another forum's key.
    let mut flipped = good.clone();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut bytes = b64.decode(&flipped.entries[3].entry).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 1;
    flipped.entries[3].entry = b64.encode(bytes);
    assert!(bundle(&verifier, &flipped)
        .unwrap_err()
        .starts_with("entry "));
    let mut no_key = good.clone();
    no_key.keys.retain(|k| k.log_index != 601);
    assert!(bundle(&verifier, &no_key)
        .unwrap_err()
        .contains("no entry in the bundle registers key"));
    let mut other = good.clone();
    other.value = sha256_value(43);
    assert!(bundle(&verifier, &other).unwrap_err().contains("not about"));
    let stranger = LogVerifier::new(
        hashforum::forum::DEV_ORIGIN,
        &hashforum::crypto::generate_key().verifying_key(),
    )
    .unwrap();
    assert!(bundle(&stranger, &good)
        .unwrap_err()
        .starts_with("checkpoint"));

    // The CLI's verify agrees.
    let vkey = server.dir().join("forum.vkey");
    let verified = crate::harness::hashforum_bin()
        .args(["verify", "--vkey"])
        .arg(&vkey)
        .arg("--bundle")
        .arg(&path)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
    let stdout = String::from_utf8(verified.stdout).unwrap();
    assert!(
        stdout.starts_with("verified: 604 entries about sha256:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hash_withdrawal by admin appeal upheld"),
        "{stdout}"
    );

    // A hash nothing is about.
    let missing = alpha
        .registry
        .get_provenance(pb::GetProvenanceRequest {
            query: Some(pb::HashQuery {
                hash_type: HashType::Sha256.to_pb() as i32,
                value: sha256_value(44),
            }),
            tree_size: 0,
            from_index: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(details(&missing).reason.as_deref(), Some("HASH_NOT_FOUND"));
}
