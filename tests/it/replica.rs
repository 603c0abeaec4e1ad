//! Replicas on loopback: a primary and replicas made by `init --dev --replicas`, each a real
//! server over its own RocksDB, following the primary over mTLS and verifying what it gets.

use std::time::{Duration, Instant};

use hashforum::client::Client;
use hashforum::follow::{Evidence, EvidenceKind};
use hashforum::log::checkpoint::LogVerifier;
use hashforum::log::cosignature::WitnessVerifier;
use hashforum::pb;
use hashforum::pb::get_status_response::Mode;
use hashforum::storage::Store;
use hashforum::types::HashType;
use tonic::Code;

use crate::harness::{
    assert_refused, lookup, sha256_value, signed, status, submission, submit, submit_all,
    ServeProcess, TestServer, CHILD_TIMEOUT,
};

/// How long a replica may take to show what the primary committed.
const FOLLOW_WITHIN: Duration = Duration::from_secs(1);
/// How long a catch-up of many entries may take before the test fails.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(120);

/// Waits until `replica`'s verified log has `size` entries; returns how long it took.
async fn wait_for_size(client: &mut Client, size: u64, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let s = status(client).await;
        if s.size >= size {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the replica has {} of {size} entries after {within:?} (halted: {:?})",
            s.size,
            s.halted
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the replica reports it stopped on evidence; returns the status.
async fn wait_for_halt(client: &mut Client) -> pb::GetStatusResponse {
    let started = Instant::now();
    loop {
        let s = status(client).await;
        if !s.halted.is_empty() {
            return s;
        }
        assert!(
            started.elapsed() < CATCH_UP_WITHIN,
            "the replica did not halt"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Submits `count` SHA-256 hashes numbered from `first`, as alpha, in calls of 5,000.
async fn submit_many(client: &mut Client, server: &TestServer, first: u64, count: u64) {
    let alpha = server.identity("alpha");
    let mut n = first;
    while n < first + count {
        let end = (n + 5_000).min(first + count);
        let envelopes = (n..end)
            .map(|i| {
                signed(
                    &alpha,
                    &submission("alpha", HashType::Sha256, &sha256_value(i)),
                )
            })
            .collect();
        submit_all(client, envelopes).await.unwrap();
        n = end;
    }
}

fn pdq_submission(value: &str) -> pb::Statement {
    submission("alpha", HashType::Pdq, value)
}

async fn match_pdq(client: &mut Client, value: &str) -> pb::MatchHashesResponse {
    client
        .registry
        .match_hashes(pb::MatchHashesRequest {
            hash_type: HashType::Pdq.to_pb() as i32,
            queries: vec![pb::MatchQuery {
                value: value.into(),
                variant: 0,
            }],
            max_distance: Some(31),
            include_inactive: false,
            dihedral: false,
        })
        .await
        .unwrap()
        .into_inner()
}

/// A primary and two replicas: a submission shows on both within a second; their lookups,
/// matches and checkpoints equal the primary's; writes are refused naming the primary; both
/// cosign, and the primary serves the cosignatures on its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_within_a_second_and_answer_like_the_primary() {
    let primary = TestServer::start_with_replicas(&["alpha"], 2).await;
    let mut p = primary.client("alpha").await;
    let replicas = [primary.start_replica(1), primary.start_replica(2)];
    let mut clients = Vec::new();
    for r in &replicas {
        clients.push(r.client("alpha").await);
    }

    let pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    let near = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b2d";
    let alpha = primary.identity("alpha");
    let receipt = submit(&mut p, signed(&alpha, &pdq_submission(pdq)))
        .await
        .unwrap();
    let size = receipt.log_index + 1;
    for c in &mut clients {
        let took = wait_for_size(c, size, FOLLOW_WITHIN).await;
        assert!(took < FOLLOW_WITHIN, "{took:?}");
    }

    let on_primary = lookup(&mut p, HashType::Pdq, pdq, true).await.unwrap();
    let matched = match_pdq(&mut p, near).await;
    assert_eq!(matched.results[0].matches.len(), 1);
    for c in &mut clients {
        assert_eq!(
            lookup(c, HashType::Pdq, pdq, true).await.unwrap(),
            on_primary
        );
        assert_eq!(match_pdq(c, near).await, matched);
        let missing = lookup(c, HashType::Sha256, &sha256_value(7), false).await;
        assert_eq!(missing.unwrap_err().code(), Code::NotFound);
        let s = status(c).await;
        assert_eq!(s.mode(), Mode::Replica);
        assert_eq!((s.lag_entries, s.halted.as_str()), (0, ""));
        assert_eq!(s.primary, primary.addr);

        let write = submit(c, signed(&alpha, &pdq_submission(near))).await;
        let err = write.unwrap_err();
        assert_refused(&err, Code::FailedPrecondition, "READ_ONLY_REPLICA");
        assert!(err.message().contains(&primary.addr), "{}", err.message());
    }

    // Both replicas cosign the checkpoint they verified; the primary serves it cosigned.
    let verifier = crate::harness::forum_verifier(primary.dir());
    let witnesses: Vec<WitnessVerifier> = ["replica-1", "replica-2"]
        .iter()
        .map(|name| {
            let key = primary.identity(name).signing_key.verifying_key();
            WitnessVerifier::new(name, &key).unwrap()
        })
        .collect();
    let started = Instant::now();
    let note = loop {
        let note = crate::harness::latest_note(&mut p).await;
        if hashforum::log::cosignature::quorum(&note, &witnesses, 2).is_ok() {
            break note;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not cosigned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(verifier.verify(&note).unwrap().head.size, size);
    assert_eq!(
        status(&mut p).await.cosigned_by,
        vec!["replica-1".to_owned(), "replica-2".to_owned()]
    );
    drop(replicas);
}

/// A replica started after 100,000 entries catches up from entry 0; one killed in the middle
/// of a catch-up starts again from what it verified; both follow the primary across its
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_catch_up_from_zero_resume_and_survive_a_primary_restart() {
    let mut primary = TestServer::start_with_replicas(&["alpha"], 2).await;
    let mut p = primary.client("alpha").await;
    submit_many(&mut p, &primary, 0, 100_000).await;
    let size = status(&mut p).await.size;
    assert!(size > 100_000);

    // Replica 2 runs as a process of its own, killed (SIGKILL) in the middle of its catch-up.
    let config = primary.dir().join("replica-2/hashforum.toml");
    let mut file = hashforum::config::FileConfig::read(&config).unwrap();
    file.replica.as_mut().unwrap().primary = primary.addr.clone();
    std::fs::write(&config, toml::to_string(&file).unwrap()).unwrap();
    let mut process = ServeProcess::start(&config).unwrap();
    // Killed once it has verified and written a unit, before it is done.
    let applied =
        tokio::task::block_in_place(|| process.wait_for_line("unit verified", CATCH_UP_WITHIN));
    assert!(applied, "{}", process.stderr());
    process.signal("KILL");
    tokio::task::block_in_place(|| process.wait(CHILD_TIMEOUT));
    let held = Store::open(&primary.dir().join("replica-2/data"))
        .unwrap()
        .size()
        .unwrap();
    assert!(held > 0 && held < size, "held {held} of {size}");

    let fresh = primary.start_replica(1);
    let mut f = fresh.client("alpha").await;
    wait_for_size(&mut f, size, CATCH_UP_WITHIN).await;
    // The replica's tree is the primary's: same checkpoint.
    let theirs = status(&mut f).await.checkpoint;
    let ours = status(&mut p).await.checkpoint;
    assert_eq!(checkpoint_body(&theirs), checkpoint_body(&ours));

    // Started again (in process here), it resumes from what it verified.
    let interrupted = primary.start_replica(2);
    let mut i = interrupted.client("alpha").await;
    assert!(status(&mut i).await.size >= held);
    wait_for_size(&mut i, size, CATCH_UP_WITHIN).await;

    // The primary restarts on its port; the replicas follow what it appends next.
    primary.restart_in_place().await;
    let mut p = primary.client("alpha").await;
    submit_many(&mut p, &primary, 100_000, 10).await;
    let size = status(&mut p).await.size;
    wait_for_size(&mut f, size, Duration::from_secs(15)).await;
    wait_for_size(&mut i, size, Duration::from_secs(15)).await;
    drop((fresh, interrupted));
}

/// The checkpoint body (without signature lines).
fn checkpoint_body(note: &[u8]) -> String {
    let text = String::from_utf8_lossy(note);
    text.split("\n\n").next().unwrap().to_owned()
}

/// A primary restored from an older copy of its data: its replica refuses the smaller log and
/// keeps the evidence, which `verify` checks; told by the replica, the primary refuses writes,
/// also after a restart. Then the older copy, restored again, grows a different history past
/// the replica's size: the replica refuses it, with the primary's own consistency proof as
/// proof of the fork, and the primary, told, stops taking writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_or_forked_primary_is_refused_with_evidence() {
    let mut primary = TestServer::start_with_replicas(&["alpha"], 1).await;
    let mut p = primary.client("alpha").await;
    submit_many(&mut p, &primary, 0, 5).await;
    primary.stop().await;
    let backup = tempfile::tempdir().unwrap();
    copy_dir(&primary.data_dir(), backup.path());
    primary.start_again();
    let mut p = primary.client("alpha").await;
    submit_many(&mut p, &primary, 5, 5).await;
    let size = status(&mut p).await.size;

    let mut replica = primary.start_replica(1);
    let mut r = replica.client("alpha").await;
    wait_for_size(&mut r, size, CATCH_UP_WITHIN).await;

    // Restore the older copy.
    primary.stop().await;
    std::fs::remove_dir_all(primary.data_dir()).unwrap();
    copy_dir(backup.path(), &primary.data_dir());
    primary.start_again();
    let s = wait_for_halt(&mut r).await;
    assert!(s.halted.contains("rolled back"), "{}", s.halted);
    assert_eq!(s.evidence.len(), 1);
    assert_eq!(s.size, size, "the replica keeps serving what it verified");
    let evidence: Evidence =
        serde_json::from_slice(&std::fs::read(&s.evidence[0]).unwrap()).unwrap();
    assert_eq!(evidence.kind, EvidenceKind::Rollback);
    let verifier = LogVerifier::from_vkey(&evidence.vkey).unwrap();
    let finding = evidence.check(&verifier).unwrap();
    assert!(finding.what.starts_with("rollback"), "{finding:?}");

    // The replica told the primary: it refuses writes and says how to recover.
    let mut p = primary.client("alpha").await;
    let alpha = primary.identity("alpha");
    let started = Instant::now();
    let refused = loop {
        let write = submit(
            &mut p,
            signed(
                &alpha,
                &submission("alpha", HashType::Sha256, &sha256_value(99)),
            ),
        )
        .await;
        match write {
            Err(e) if e.code() == Code::FailedPrecondition => break e,
            _ if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("the rolled-back primary took a write: {other:?}"),
        }
    };
    assert_refused(&refused, Code::FailedPrecondition, "LOG_ROLLED_BACK");
    assert!(
        refused.message().contains("replica"),
        "{}",
        refused.message()
    );
    assert!(!status(&mut p).await.halted.is_empty());
    // The halt is kept in the store: a restart does not undo it.
    primary.restart_in_place().await;
    let mut p = primary.client("alpha").await;
    let again = submit(
        &mut p,
        signed(
            &alpha,
            &submission("alpha", HashType::Sha256, &sha256_value(98)),
        ),
    )
    .await;
    assert_refused(
        &again.unwrap_err(),
        Code::FailedPrecondition,
        "LOG_ROLLED_BACK",
    );

    // A forked history: the older copy, restored again (without the halt), takes other
    // entries past the replica's size before any replica looks. The replica, its evidence
    // moved away, checks again: the primary's consistency proof from the replica's size shows
    // another prefix. It tells the primary, which stops taking writes.
    replica.stop().await;
    primary.stop().await;
    std::fs::remove_dir_all(primary.data_dir()).unwrap();
    copy_dir(backup.path(), &primary.data_dir());
    primary.start_again();
    let mut p = primary.client("alpha").await;
    submit_many(&mut p, &primary, 1_000, 20).await;
    assert!(status(&mut p).await.size > size);
    let moved = tempfile::tempdir().unwrap();
    std::fs::rename(&s.evidence[0], moved.path().join("rollback.json")).unwrap();
    replica.start_again();
    let mut r = replica.client("alpha").await;
    let s = wait_for_halt(&mut r).await;
    assert_eq!(s.size, size);
    let evidence: Evidence =
        serde_json::from_slice(&std::fs::read(&s.evidence[0]).unwrap()).unwrap();
    // The forked primary's own consistency proof from the replica's size proves the fork.
    assert_eq!(evidence.kind, EvidenceKind::Fork, "{}", evidence.reason);
    let finding = evidence.check(&verifier).unwrap();
    assert!(
        finding.proven && finding.what.starts_with("fork"),
        "{finding:?}"
    );
    let started = Instant::now();
    loop {
        let write = submit(
            &mut p,
            signed(
                &alpha,
                &submission("alpha", HashType::Sha256, &sha256_value(97)),
            ),
        )
        .await;
        match write {
            Err(e) => {
                assert_refused(&e, Code::FailedPrecondition, "LOG_FORKED");
                break;
            }
            Ok(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => panic!("the forked primary still takes writes"),
        }
    }
    drop(replica);
}

/// A primary serving an entry whose bytes were changed on its disk: a new replica refuses it
/// and keeps the entry as evidence; nothing of the unit is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_entry_is_refused_and_kept() {
    let mut primary = TestServer::start_with_replicas(&["alpha"], 1).await;
    let mut p = primary.client("alpha").await;
    submit_many(&mut p, &primary, 0, 10).await;
    primary.stop().await;
    {
        // Change a signature byte of entry 5, as stored; its tree hashes stay.
        let store = Store::open(&primary.data_dir()).unwrap();
        let leaf = store.entry(5).unwrap().unwrap();
        let mut entry = hashforum::log::StoredEntry::decode(&leaf).unwrap();
        entry.envelope.signatures[0].sig[0] ^= 1;
        let tampered = prost::Message::encode_to_vec(&pb::LogEntry {
            envelope: Some(entry.envelope),
            sequenced_at_unix_ms: entry.sequenced_at_unix_ms,
            relayed_by: entry.relayed_by,
        });
        let mut batch = store.batch();
        batch.put_entry(5, &tampered);
        store.commit(batch).unwrap();
    }
    primary.start_again();
    let mut replica = primary.start_replica(1);
    // An empty replica refuses before serving: its server stops with the reason.
    let err = replica.stopped_with_error().await;
    assert!(err.contains("entry 5"), "{err}");
    let kept = Evidence::kept(&primary.dir().join("replica-1/evidence"));
    assert_eq!(kept.len(), 1);
    let evidence: Evidence = serde_json::from_slice(&std::fs::read(&kept[0]).unwrap()).unwrap();
    assert_eq!(evidence.kind, EvidenceKind::BadEntry);
    assert_eq!(evidence.bad_index, Some(5));
    let verifier = LogVerifier::from_vkey(&evidence.vkey).unwrap();
    let finding = evidence.check(&verifier).unwrap();
    assert!(finding.what.contains("does not verify"), "{finding:?}");
    assert_eq!(Store::open(&replica.data_dir()).unwrap().size().unwrap(), 0);
}

pub(crate) fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// With `[primary] write-quorum = 2`, a write is answered only once both replicas hold it,
/// and its receipt's checkpoint carries both cosignatures. Without replicas it times out as
/// `UNAVAILABLE`, appended all the same: resubmitted later, it gets its original receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_quorum_waits_for_the_replicas_and_receipts_carry_their_cosignatures() {
    let mut primary = TestServer::start_with_replicas(&["alpha"], 2).await;
    primary.stop().await;
    let config = primary.dir().join("server/hashforum.toml");
    let mut file = hashforum::config::FileConfig::read(&config).unwrap();
    file.primary = Some(hashforum::config::PrimaryOptions {
        write_quorum: 2,
        cosignature_timeout: Duration::from_secs(1),
    });
    std::fs::write(&config, toml::to_string(&file).unwrap()).unwrap();
    primary.start_again();
    let mut p = primary.client("alpha").await;
    let alpha = primary.identity("alpha");
    let first = signed(
        &alpha,
        &submission("alpha", HashType::Sha256, &sha256_value(1)),
    );
    let err = submit(&mut p, first.clone()).await.unwrap_err();
    assert_refused(&err, Code::Unavailable, "COSIGNATURE_TIMEOUT");

    let replicas = [primary.start_replica(1), primary.start_replica(2)];
    let witnesses: Vec<WitnessVerifier> = ["replica-1", "replica-2"]
        .iter()
        .map(|name| {
            let vkey = std::fs::read_to_string(primary.dir().join(name).join("cosigner.vkey"));
            WitnessVerifier::from_vkey(&vkey.unwrap()).unwrap()
        })
        .collect();
    let started = Instant::now();
    let receipt = loop {
        match submit(&mut p, first.clone()).await {
            Ok(receipt) => break receipt,
            Err(e) if e.code() == Code::Unavailable && started.elapsed() < CATCH_UP_WITHIN => {}
            Err(e) => panic!("{e:?}"),
        }
    };
    assert!(receipt.duplicate, "appended once, by the first call");
    let cosigned = |receipt: &pb::Receipt| {
        let parsed = hashforum::log::proof::Receipt::parse(&receipt.tlog_proof).unwrap();
        hashforum::log::cosignature::quorum(&parsed.checkpoint, &witnesses, 2)
    };
    assert_eq!(cosigned(&receipt).unwrap().len(), 2);

    let second = signed(
        &alpha,
        &submission("alpha", HashType::Sha256, &sha256_value(2)),
    );
    let receipt = submit(&mut p, second).await.unwrap();
    assert!(!receipt.duplicate);
    assert_eq!(cosigned(&receipt).unwrap().len(), 2);
    drop(replicas);
}
