//! The server as a process: `hashforum serve` killed with SIGKILL keeps every acknowledged
//! entry; under SIGTERM it exits 0 and keeps everything; it refuses to start over another
//! forum's data or a bad genesis entry. Every child process has a deadline.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hashforum::client::Client;
use hashforum::identity::Identity;
use hashforum::pb;
use hashforum::statement::{hash_submission, Signer};
use hashforum::types::HashType;
use tokio::sync::mpsc;

use crate::harness::{
    hashforum_bin, run_with_timeout, sha256_value, submit, submit_all, ServeProcess, CHILD_TIMEOUT,
};

/// `hashforum init --dev DIR --member ...` in a new temporary directory.
fn init_dev(members: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hashforum_bin();
    // Port 0: the metrics endpoint too takes any free port (a dev forum's is 9464).
    cmd.args(["init", "--dev", "--listen", "127.0.0.1:0"])
        .arg(dir.path().join("forum"));
    for m in members {
        cmd.args(["--member", m]);
    }
    let out = run_with_timeout(cmd, b"", CHILD_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    dir
}

fn forum(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("forum")
}

fn config(dir: &tempfile::TempDir) -> PathBuf {
    forum(dir).join("server/hashforum.toml")
}

/// Starts `serve`, failing the test if it does not come up.
fn serve(config: &Path) -> ServeProcess {
    ServeProcess::start(config)
        .unwrap_or_else(|(status, stderr)| panic!("hashforum serve exited with {status}: {stderr}"))
}

/// Waits for the process to exit, off the runtime's worker.
fn exit(process: &mut ServeProcess) -> ExitStatus {
    tokio::task::block_in_place(|| process.wait(CHILD_TIMEOUT))
}

/// Runs `serve` until it exits by itself: its exit status and stderr.
fn serve_until_it_exits(config: &Path) -> (ExitStatus, String) {
    match ServeProcess::start(config) {
        Err(exited) => exited,
        Ok(mut process) => {
            let status = tokio::task::block_in_place(|| process.wait(CHILD_TIMEOUT));
            (status, process.stderr())
        }
    }
}

async fn connect(dir: &tempfile::TempDir, member: &str, addr: &str) -> (Client, Signer) {
    let identity = Identity::load(&forum(dir).join("identities").join(member)).unwrap();
    let client = Client::connect(&identity, Some(addr)).await.unwrap();
    (client, Signer::of(&identity))
}

/// Looks values up: each one's (log index, time), if found.
async fn find(client: &mut Client, values: &[String]) -> Vec<Option<(u64, u64)>> {
    let results = client
        .registry
        .lookup_hashes(pb::LookupHashesRequest {
            queries: values
                .iter()
                .map(|v| pb::HashQuery {
                    hash_type: pb::HashType::Sha256 as i32,
                    value: v.clone(),
                })
                .collect(),
            include_envelopes: false,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    results
        .into_iter()
        .map(|r| {
            r.record.map(|rec| {
                let s = &rec.submissions[0];
                (s.log_index, s.sequenced_at_unix_ms)
            })
        })
        .collect()
}

/// SIGKILL in the middle of concurrent submissions loses no acknowledged entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_keeps_every_acknowledged_entry() {
    let dir = init_dev(&["alpha", "beta"]);
    let mut server = serve(&config(&dir));
    let next = Arc::new(AtomicU64::new(0));
    let (acked_tx, mut acked_rx) = mpsc::unbounded_channel::<(String, u64)>();
    let mut tasks = Vec::new();
    for member in ["alpha", "beta", "alpha", "beta"] {
        let (mut client, signer) = connect(&dir, member, &server.addr).await;
        let next = next.clone();
        let acked = acked_tx.clone();
        tasks.push(tokio::spawn(async move {
            // Submit batches until the server is gone.
            loop {
                let first = next.fetch_add(25, Ordering::Relaxed);
                let values: Vec<String> = (first..first + 25).map(sha256_value).collect();
                let batch = values
                    .iter()
                    .map(|v| signer.submit(hash_submission(HashType::Sha256, v)))
                    .collect();
                match submit_all(&mut client, batch).await {
                    Ok(receipts) => {
                        for (v, r) in values.into_iter().zip(receipts) {
                            let _ = acked.send((v, r.log_index));
                        }
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    drop(acked_tx);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 1_000 {
        acknowledged.push(acked_rx.recv().await.expect("submissions go on"));
    }
    server.signal("KILL");
    let status = exit(&mut server);
    assert_eq!(status.signal(), Some(9), "{status}");
    for task in tasks {
        task.await.unwrap();
    }
    // Receipts that arrived before the kill took effect were acknowledged too.
    while let Some(ack) = acked_rx.recv().await {
        acknowledged.push(ack);
    }

    let mut server = serve(&config(&dir));
    let (mut client, signer) = connect(&dir, "alpha", &server.addr).await;
    let values: Vec<String> = acknowledged.iter().map(|(v, _)| v.clone()).collect();
    let mut last = (0, 0);
    for (chunk, acks) in values.chunks(5_000).zip(acknowledged.chunks(5_000)) {
        for ((value, index), found) in acks.iter().zip(find(&mut client, chunk).await) {
            let (at, time) = found.unwrap_or_else(|| panic!("acknowledged {value} is lost"));
            assert_eq!(at, *index, "{value}");
            last = last.max((at, time));
        }
    }
    let receipt = submit(
        &mut client,
        signer.submit(hash_submission(HashType::Sha256, &sha256_value(1 << 40))),
    )
    .await
    .unwrap();
    assert!(
        receipt.log_index > last.0,
        "the log goes on after the last acknowledged entry"
    );
    let (_, time) = find(&mut client, &[sha256_value(1 << 40)]).await[0].unwrap();
    assert!(time >= last.1, "time went backwards across the crash");
    drop(client);
    server.signal("TERM");
    assert!(exit(&mut server).success());
}

/// Under SIGTERM, `serve` exits 0, and a restart finds every entry and goes on after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly() {
    let dir = init_dev(&["alpha"]);
    let mut server = serve(&config(&dir));
    let (mut client, signer) = connect(&dir, "alpha", &server.addr).await;
    let values: Vec<String> = (0..50).map(sha256_value).collect();
    let receipts = submit_all(
        &mut client,
        values
            .iter()
            .map(|v| signer.submit(hash_submission(HashType::Sha256, v)))
            .collect(),
    )
    .await
    .unwrap();
    server.signal("TERM");
    let status = exit(&mut server);
    assert!(status.success(), "{status}: {}", server.stderr());
    assert!(server.stderr().contains("stopped"), "{}", server.stderr());
    drop(client);

    let mut server = serve(&config(&dir));
    let (mut client, signer) = connect(&dir, "alpha", &server.addr).await;
    let found = find(&mut client, &values).await;
    for (r, f) in receipts.iter().zip(found) {
        assert_eq!(f.map(|(i, _)| i), Some(r.log_index));
    }
    let next = submit(
        &mut client,
        signer.submit(hash_submission(HashType::Sha256, &sha256_value(99))),
    )
    .await
    .unwrap();
    assert_eq!(next.log_index, receipts.last().unwrap().log_index + 1);
    drop(client);
    server.signal("TERM");
    assert!(exit(&mut server).success());
}

/// `serve` refuses another forum's or a malformed genesis entry at start, data intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_genesis_entry_is_refused_at_start() {
    let ours = init_dev(&["alpha"]);
    let theirs = init_dev(&["mallory"]);
    let genesis = forum(&ours).join("server/genesis.entry");
    let original = std::fs::read(&genesis).unwrap();
    let mut server = serve(&config(&ours));
    let (mut client, signer) = connect(&ours, "alpha", &server.addr).await;
    let receipt = submit(
        &mut client,
        signer.submit(hash_submission(HashType::Sha256, &sha256_value(1))),
    )
    .await
    .unwrap();
    drop(client);
    server.signal("TERM");
    assert!(exit(&mut server).success());

    std::fs::copy(forum(&theirs).join("server/genesis.entry"), &genesis).unwrap();
    let (status, stderr) = serve_until_it_exits(&config(&ours));
    assert!(!status.success(), "{status}");
    assert!(
        stderr.contains("the data directory holds a different forum"),
        "{stderr}"
    );

    // On an empty data directory: another forum's entry 0, and bytes that are no entry.
    let fresh = init_dev(&["alpha"]);
    let fresh_genesis = forum(&fresh).join("server/genesis.entry");
    std::fs::copy(forum(&theirs).join("server/genesis.entry"), &fresh_genesis).unwrap();
    let (status, stderr) = serve_until_it_exits(&config(&fresh));
    assert!(!status.success(), "{status}");
    assert!(
        stderr.contains("not signed by this forum's log key"),
        "{stderr}"
    );
    std::fs::write(&fresh_genesis, b"not a log entry").unwrap();
    let (status, stderr) = serve_until_it_exits(&config(&fresh));
    assert!(!status.success(), "{status}");
    assert!(stderr.contains("invalid genesis entry"), "{stderr}");

    // Our data is untouched: with its own genesis entry back, the forum serves it.
    std::fs::write(&genesis, original).unwrap();
    let mut server = serve(&config(&ours));
    let (mut client, _) = connect(&ours, "alpha", &server.addr).await;
    let found = find(&mut client, &[sha256_value(1)]).await;
    assert_eq!(found[0].map(|(i, _)| i), Some(receipt.log_index));
    drop(client);
    server.signal("TERM");
    assert!(exit(&mut server).success());
}
