//! Crash safety (issue 11): `hashforum serve`, the real binary, is killed with SIGKILL during
//! sustained concurrent ingest and restarted on the same data directory, round after round.
//! After each kill:
//!
//! - the data directory, as the crash left it, verifies as a whole with `hashforum verify
//!   --data` and the forum's vkey alone;
//! - every acknowledged entry is there: its receipt's inclusion proof verifies (offline, with
//!   the vkey) under a checkpoint that is consistent with the restarted server's latest one,
//!   and a lookup finds it at the receipt's index;
//! - every checkpoint a client saw before the kill is consistent with the new tree (no fork
//!   after a crash), and no size ever had two roots;
//! - every unacknowledged entry resubmits: it gets its original receipt if it was committed,
//!   a new one if not.
//!
//! CI runs [`CI_ROUNDS`] rounds; `HASHFORUM_CRASH_ROUNDS=100 cargo test --test it crash --
//! --nocapture` is the long run recorded in `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforum::client::Client;
use hashforum::identity::Identity;
use hashforum::log::checkpoint::{LogVerifier, SignedCheckpoint};
use hashforum::log::leaf_hash;
use hashforum::log::proof::Receipt;
use hashforum::log::tree::Hash;
use hashforum::pb;
use hashforum::statement::{hash_submission, Signer};
use hashforum::types::HashType;
use rand::Rng;
use tonic::Status;

use crate::harness::{
    assert_consistent, dev_forum, forum_verifier, hashforum_bin, latest_checkpoint as latest,
    lookup_sha256, run_with_timeout, sha256_value, ServeProcess, CHILD_TIMEOUT,
};

/// Rounds in CI; `HASHFORUM_CRASH_ROUNDS` sets another number.
const CI_ROUNDS: u64 = 3;
/// Concurrent writers: each member runs this many, each over its own connection.
const WRITERS_PER_MEMBER: u64 = 2;
const MEMBERS: [&str; 2] = ["alpha", "beta"];
/// Most entries per `SubmitEntries` call; a writer sends 1 (`SubmitEntry`) to this many.
const MAX_BATCH: u64 = 48;
/// How long `hashforum verify --data` may take: a debug build replays a few thousand entries a
/// second, and the long run's log passes 200,000.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(900);
/// How long ingest runs before the kill: a random time in this range, in milliseconds.
const KILL_AFTER_MS: std::ops::Range<u64> = 300..2_000;

/// One submitted entry: the envelope its author signed, and its receipt if it was
/// acknowledged.
struct Sent {
    member: usize,
    value: String,
    envelope: pb::Envelope,
    receipt: Option<pb::Receipt>,
}

/// What the long run reports.
#[derive(Default)]
struct Totals {
    acknowledged: u64,
    unacknowledged_present: u64,
    unacknowledged_absent: u64,
    checkpoints_checked: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_ingest_loses_no_acknowledged_entry() {
    let rounds = std::env::var("HASHFORUM_CRASH_ROUNDS")
        .ok()
        .map_or(CI_ROUNDS, |n| {
            n.parse().expect("HASHFORUM_CRASH_ROUNDS: a number")
        });
    let started = Instant::now();
    let dir = dev_forum(&MEMBERS);
    let config = dir.path().join("server/hashforum.toml");
    let verifier = forum_verifier(dir.path());
    let identities: Vec<Identity> = MEMBERS
        .iter()
        .map(|m| Identity::load(&dir.path().join("identities").join(m)).unwrap())
        .collect();
    let mut totals = Totals::default();
    // Every acknowledged entry so far: value and log index.
    let mut all: Vec<(String, u64)> = Vec::new();
    // The tree heads seen so far, by size: a size never gets a second root.
    let mut heads: BTreeMap<u64, Hash> = BTreeMap::new();
    // The restarted server's latest checkpoint, last round.
    let mut previous: Option<SignedCheckpoint> = None;
    // Replaying the whole log costs more each round: the long run does it every 25th round
    // and at the end (consistency proofs tie every round to the next one).
    let verify_every = if rounds <= 10 { 1 } else { 25 };
    let mut size = 0;
    // The server that takes the next round's ingest, if it is still running.
    let mut running = None;
    for round in 0..rounds {
        let mut killed = running.take().unwrap_or_else(|| start(&config));
        let (sent, seen) = ingest_until_killed(round, &mut killed, &identities, &verifier).await;
        // Restarted on the same data directory, the server signs a checkpoint of the log as
        // the crash left it before it answers.
        let mut server = start(&config);
        let mut client = Client::connect(&identities[0], Some(&server.addr))
            .await
            .unwrap();
        let latest = latest(&mut client, &verifier).await;

        // Receipts verify offline; their checkpoints and those the watcher saw are consistent
        // with the new tree.
        let mut checkpoints = seen;
        for s in sent.iter().filter(|s| s.receipt.is_some()) {
            checkpoints.push(check_receipt(&verifier, s));
        }
        checkpoints.extend(previous.replace(latest.clone()));
        let mut round_heads = BTreeMap::new();
        for checkpoint in &checkpoints {
            let root = heads
                .entry(checkpoint.head.size)
                .or_insert(checkpoint.head.root);
            assert_eq!(*root, checkpoint.head.root, "two roots for one size");
            round_heads.insert(checkpoint.head.size, checkpoint.head.root);
        }
        // Those of earlier rounds are consistent with the previous round's latest, which is
        // one of these.
        totals.checkpoints_checked += check_consistent(&mut client, &round_heads, &latest).await;

        // Every acknowledged entry is found at its receipt's index.
        let acked: Vec<(String, u64)> = sent
            .iter()
            .filter_map(|s| Some((s.value.clone(), s.receipt.as_ref()?.log_index)))
            .collect();
        assert_found(&mut client, &acked).await;
        totals.acknowledged += acked.len() as u64;
        all.extend(acked);

        // Unacknowledged entries resubmit: the original receipt if they were committed.
        let (present, absent) = resubmit(&identities, &server.addr, &sent, &mut all).await;
        totals.unacknowledged_present += present;
        totals.unacknowledged_absent += absent;
        if round + 1 == rounds {
            // Nothing acknowledged in any round went missing in a later one.
            assert_found(&mut client, &all).await;
        }

        let verified = if (round + 1) % verify_every == 0 || round + 1 == rounds {
            // Stopped cleanly, the whole log replays offline with the vkey.
            server.signal("TERM");
            let status = tokio::task::block_in_place(|| server.wait(CHILD_TIMEOUT));
            assert!(status.success(), "{}", server.stderr());
            size = verify_data_dir(dir.path());
            assert_eq!(size, latest.head.size + absent);
            "; the whole log verified"
        } else {
            size = latest.head.size + absent;
            running = Some(server);
            ""
        };
        eprintln!(
            "crash round {}/{rounds}: {} sent, {} acknowledged, {present} unacknowledged but \
             committed, {absent} not committed; log of {} entries after the crash{verified}",
            round + 1,
            sent.len(),
            sent.iter().filter(|s| s.receipt.is_some()).count(),
            latest.head.size,
        );
    }
    // The log holds genesis and each entry sent, once.
    assert_eq!(size, all.len() as u64 + 1);
    eprintln!(
        "crash summary: {rounds} rounds of SIGKILL during ingest; {} entries acknowledged, 0 \
         lost; {} unacknowledged (committed {}, not {}) resubmitted; {} checkpoints \
         consistent; final log {size} entries, verified; {:.0?}",
        totals.acknowledged,
        totals.unacknowledged_present + totals.unacknowledged_absent,
        totals.unacknowledged_present,
        totals.unacknowledged_absent,
        totals.checkpoints_checked,
        started.elapsed(),
    );
}

fn start(config: &Path) -> ServeProcess {
    ServeProcess::start(config)
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"))
}

/// Runs the writers and a checkpoint watcher against `server`, kills it with SIGKILL after a
/// random time, and returns everything sent and every checkpoint the watcher saw.
async fn ingest_until_killed(
    round: u64,
    server: &mut ServeProcess,
    identities: &[Identity],
    verifier: &LogVerifier,
) -> (Vec<Sent>, Vec<SignedCheckpoint>) {
    let killed = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (member, identity) in identities.iter().enumerate() {
        for w in 0..WRITERS_PER_MEMBER {
            let client = Client::connect(identity, Some(&server.addr)).await.unwrap();
            let signer = Signer::of(identity);
            let seed = (round << 32) | ((member as u64 * WRITERS_PER_MEMBER + w) << 24);
            writers.push(tokio::spawn(write(
                client,
                signer,
                member,
                seed,
                killed.clone(),
            )));
        }
    }
    let watcher = {
        let client = Client::connect(&identities[0], Some(&server.addr))
            .await
            .unwrap();
        tokio::spawn(watch(client, verifier.clone(), killed.clone()))
    };
    let delay = rand::thread_rng().gen_range(KILL_AFTER_MS);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    // Raised first, so that a call failing from here on is known to fail from the kill. The
    // writers look at it only between calls: theirs are in flight when the signal lands.
    killed.store(true, Ordering::SeqCst);
    server.signal("KILL");
    let status = tokio::task::block_in_place(|| server.wait(CHILD_TIMEOUT));
    assert!(!status.success(), "killed: {status}");
    let mut sent = Vec::new();
    for writer in writers {
        sent.extend(writer.await.unwrap());
    }
    (sent, watcher.await.unwrap())
}

/// One writer: batches of random size, until the server is gone.
async fn write(
    mut client: Client,
    signer: Signer,
    member: usize,
    seed: u64,
    killed: Arc<AtomicBool>,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut n = seed;
    while !killed.load(Ordering::SeqCst) {
        let size = rand::thread_rng().gen_range(1..=MAX_BATCH);
        let batch: Vec<(String, pb::Envelope)> = (0..size)
            .map(|_| {
                n += 1;
                let value = sha256_value(n);
                let envelope = signer.submit(hash_submission(HashType::Sha256, &value));
                (value, envelope)
            })
            .collect();
        let envelopes = batch.iter().map(|(_, e)| e.clone()).collect();
        let receipts = submit(&mut client, envelopes).await;
        let receipts: Vec<Option<pb::Receipt>> = match receipts {
            Ok(receipts) => receipts.into_iter().map(Some).collect(),
            Err(status) => {
                // Before the kill, nothing may be refused: these are valid entries.
                assert!(
                    killed.load(Ordering::SeqCst),
                    "refused while the server ran: {status:?}"
                );
                vec![None; batch.len()]
            }
        };
        for ((value, envelope), receipt) in batch.into_iter().zip(receipts) {
            sent.push(Sent {
                member,
                value,
                envelope,
                receipt,
            });
        }
    }
    sent
}

/// `SubmitEntry` for one envelope, `SubmitEntries` for more.
async fn submit(
    client: &mut Client,
    envelopes: Vec<pb::Envelope>,
) -> Result<Vec<pb::Receipt>, Status> {
    if envelopes.len() == 1 {
        let envelope = envelopes.into_iter().next();
        let reply = client
            .registry
            .submit_entry(pb::SubmitEntryRequest { envelope })
            .await?;
        return Ok(reply.into_inner().receipt.into_iter().collect());
    }
    let reply = client
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await?;
    Ok(reply.into_inner().receipts)
}

/// The checkpoints a client sees while ingest runs, until the server is gone.
async fn watch(
    mut client: Client,
    verifier: LogVerifier,
    killed: Arc<AtomicBool>,
) -> Vec<SignedCheckpoint> {
    let mut seen = Vec::new();
    while !killed.load(Ordering::SeqCst) {
        let reply = client
            .log
            .get_checkpoint(pb::GetCheckpointRequest::default())
            .await;
        match reply {
            Ok(reply) => seen.push(verifier.verify(&reply.into_inner().note).unwrap()),
            Err(status) => assert!(killed.load(Ordering::SeqCst), "{status:?}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    seen
}

/// Runs `hashforum verify --data` on the data directory of the stopped server: the whole log
/// replays with the forum's vkey, up to the latest checkpoint, which must cover all of it.
/// Returns its size.
fn verify_data_dir(forum: &Path) -> u64 {
    let mut cmd = hashforum_bin();
    cmd.args(["verify", "--json", "--vkey"])
        .arg(forum.join("forum.vkey"))
        .arg("--data")
        .arg(forum.join("server/data"))
        .env("RUST_LOG", "off");
    let output = tokio::task::block_in_place(|| run_with_timeout(cmd, b"", VERIFY_TIMEOUT));
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verified"], true, "{report}");
    report["entries"].as_u64().expect("entries")
}

/// Checks a receipt as its holder would, offline: the leaf rebuilt from the signed envelope
/// and the receipt's `extra`, its inclusion proof and its checkpoint's signature. Returns the
/// checkpoint.
fn check_receipt(verifier: &LogVerifier, sent: &Sent) -> SignedCheckpoint {
    let receipt = sent.receipt.as_ref().expect("acknowledged");
    let proof = Receipt::parse(&receipt.tlog_proof).expect("a tlog-proof");
    assert_eq!(proof.index, receipt.log_index);
    let leaf = proof.entry_for(&sent.envelope).expect("extra");
    assert_eq!(leaf_hash(&leaf).as_bytes(), receipt.entry_hash.as_slice());
    proof
        .verify(verifier, leaf_hash(&leaf))
        .expect("the receipt verifies")
}

/// Checks that every tree head in `heads` is consistent with `latest` (a consistency proof
/// from the server, verified here). Returns how many were checked.
async fn check_consistent(
    client: &mut Client,
    heads: &BTreeMap<u64, Hash>,
    latest: &SignedCheckpoint,
) -> u64 {
    let mut checked = 0;
    for (&size, &root) in heads.range(1..latest.head.size) {
        assert_consistent(client, size, root, &latest.head).await;
        checked += 1;
    }
    checked
}

/// Looks every value up (in batches): each is found, first submitted at its index.
async fn assert_found(client: &mut Client, entries: &[(String, u64)]) {
    for chunk in entries.chunks(10_000) {
        let results = lookup_sha256(client, chunk.iter().map(|(value, _)| value.clone())).await;
        for ((value, index), result) in chunk.iter().zip(results) {
            let record = result
                .record
                .filter(|_| result.found)
                .unwrap_or_else(|| panic!("acknowledged entry {index} ({value}) is lost"));
            assert_eq!(record.submissions[0].log_index, *index, "{value}");
        }
    }
}

/// Resubmits every unacknowledged entry as its author: each is accepted, with its original
/// receipt (`duplicate`) if it was committed before the crash. Adds them to `all`; returns
/// how many were committed and how many were not.
async fn resubmit(
    identities: &[Identity],
    addr: &str,
    sent: &[Sent],
    all: &mut Vec<(String, u64)>,
) -> (u64, u64) {
    let (mut present, mut absent) = (0, 0);
    for (member, identity) in identities.iter().enumerate() {
        let mut client = Client::connect(identity, Some(addr)).await.unwrap();
        let unacked: Vec<&Sent> = sent
            .iter()
            .filter(|s| s.member == member && s.receipt.is_none())
            .collect();
        for chunk in unacked.chunks(1_000) {
            let envelopes = chunk.iter().map(|s| s.envelope.clone()).collect();
            let receipts = submit(&mut client, envelopes)
                .await
                .expect("a resubmission is accepted");
            for (s, receipt) in chunk.iter().zip(receipts) {
                if receipt.duplicate {
                    present += 1;
                } else {
                    absent += 1;
                }
                all.push((s.value.clone(), receipt.log_index));
            }
        }
    }
    (present, absent)
}
