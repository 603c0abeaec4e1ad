//! M2: commit failures, through the real server.
//!
//! A full disk (issue 11) does not stop the server. The data directory sits on a small tmpfs
//! that a filler file fills up, so RocksDB's writes fail for real (`ENOSPC`) while concurrent
//! clients submit. The server must refuse writes cleanly (`RESOURCE_EXHAUSTED`, `DISK_FULL`,
//! never `INTERNAL`), lose no acknowledged entry, keep answering reads with health `SERVING`,
//! and take writes again once the filler is gone, without a restart; no index is handed out
//! twice, its checkpoints stay consistent and the log verifies. Mounting a tmpfs needs root
//! (CI runs as root); elsewhere that test says so loudly on stderr and passes without running.
//!
//! Any other failed commit stops the server: a file-size limit makes RocksDB's write fail
//! with an I/O error that is not a full disk, as any user can.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hashforum::client::Client;
use hashforum::config::Config;
use hashforum::identity::Identity;
use hashforum::pb;
use hashforum::statement::{hash_submission, Signer};
use hashforum::types::HashType;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};

use crate::harness::{
    assert_consistent, details, forum_verifier, hashforum_bin, latest_checkpoint as latest,
    run_with_timeout, sha256_value, status as get_status, submit_all, ServeProcess, CHILD_TIMEOUT,
};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(path.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the file system is full, or until `limit` bytes.
fn fill(path: &Path, limit: usize) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 64 << 10];
    let mut written = 0;
    while written < limit {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
    let _ = file.sync_all();
}

async fn start(
    config: Config,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("https://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(hashforum::server::serve(config, listener, async {
        let _ = rx.await;
    }));
    (addr, tx, task)
}

/// `count` signed submissions of fresh values from `from` on.
fn envelopes(signer: &Signer, from: u64, count: u64) -> Vec<(String, pb::Envelope)> {
    (from..from + count)
        .map(|n| {
            let value = sha256_value(n);
            let envelope = signer.submit(hash_submission(HashType::Sha256, &value));
            (value, envelope)
        })
        .collect()
}

/// Submits batches of 500 until one is refused; returns the values acknowledged and the
/// envelopes refused. Every refusal must be `DISK_FULL`.
async fn write_until_refused(
    mut client: Client,
    signer: Signer,
    from: u64,
) -> (Vec<(String, u64)>, Vec<pb::Envelope>) {
    let mut acknowledged = Vec::new();
    for round in 0.. {
        let batch = envelopes(&signer, from + round * 500, 500);
        let sent = batch.iter().map(|(_, e)| e.clone()).collect();
        match submit_all(&mut client, sent).await {
            Ok(receipts) => acknowledged.extend(
                batch
                    .into_iter()
                    .zip(receipts)
                    .map(|((value, _), r)| (value, r.log_index)),
            ),
            Err(status) => {
                assert_disk_full(&status);
                return (acknowledged, batch.into_iter().map(|(_, e)| e).collect());
            }
        }
    }
    unreachable!()
}

fn assert_disk_full(status: &tonic::Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(details(status).reason.as_deref(), Some("DISK_FULL"));
}

/// A full disk refuses writes cleanly, keeps reads and what was acknowledged, and recovers
/// by itself once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_writes_and_recovers_without_a_restart() {
    let dir = crate::harness::dev_forum(&["alpha"]);
    let disk_dir = dir.path().join("server/disk");
    // RocksDB takes writes again once its largest write buffer (64 MiB) is free.
    let Some(_disk) = Tmpfs::mount(&disk_dir, "128m") else {
        eprintln!(
            "SKIPPED a_full_disk_refuses_writes_and_recovers_without_a_restart: mounting a \
             tmpfs needs root"
        );
        return;
    };
    // Taken before the store opens, so that RocksDB cannot preallocate its write-ahead log:
    // its appends meet the full disk at once.
    fill(&disk_dir.join("taken"), 100 << 20);
    let mut config = Config::load(&dir.path().join("server/hashforum.toml")).unwrap();
    config.data_dir = disk_dir.join("data");
    let (addr, stop, task) = start(config).await;
    let verifier = forum_verifier(dir.path());
    let alpha = Identity::load(&dir.path().join("identities/alpha")).unwrap();
    let signer = Signer::of(&alpha);
    let mut client = Client::connect(&alpha, Some(&addr)).await.unwrap();
    let mut acknowledged: Vec<(String, u64)> = Vec::new();
    for (value, envelope) in envelopes(&signer, 0, 20) {
        let receipts = submit_all(&mut client, vec![envelope]).await.unwrap();
        acknowledged.push((value, receipts[0].log_index));
    }
    let before = latest(&mut client, &verifier).await;

    // The disk fills up under three concurrent writers: each is refused with DISK_FULL.
    fill(&disk_dir.join("rest"), usize::MAX);
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let client = Client::connect(&alpha, Some(&addr)).await.unwrap();
        writers.push(tokio::spawn(write_until_refused(
            client,
            Signer::of(&alpha),
            1_000_000 * (w + 1),
        )));
    }
    let mut refused = Vec::new();
    for writer in writers {
        let (acked, failed) = writer.await.unwrap();
        acknowledged.extend(acked);
        refused.extend(failed);
    }

    // Refused at once while it is full; reads, checkpoints and health keep working, and
    // every acknowledged entry is there.
    let again = submit_all(&mut client, vec![refused[0].clone()]).await;
    assert_disk_full(&again.unwrap_err());
    let mut health = HealthClient::new(client.channel());
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    assert!(
        get_status(&mut client).await.disk_full,
        "GetStatus says the disk is full"
    );
    assert_found(&mut client, &acknowledged).await;
    let during = latest(&mut client, &verifier).await;
    assert!(during.head.size >= before.head.size);

    // Room again: writes resume without a restart (RocksDB looks every 5 seconds).
    std::fs::remove_file(disk_dir.join("rest")).unwrap();
    std::fs::remove_file(disk_dir.join("taken")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        match submit_all(&mut client, vec![refused[0].clone()]).await {
            Ok(receipts) => break receipts[0].clone(),
            Err(status) => assert_disk_full(&status),
        }
        assert!(Instant::now() < deadline, "writes did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!get_status(&mut client).await.disk_full, "no longer full");
    // Every refused entry is taken now, right after the log as it was: no index twice.
    let mut receipts = vec![first];
    for chunk in refused[1..].chunks(1_000) {
        receipts.extend(submit_all(&mut client, chunk.to_vec()).await.unwrap());
    }
    let mut indexes: Vec<u64> = acknowledged.iter().map(|(_, i)| *i).collect();
    indexes.extend(receipts.iter().map(|r| r.log_index));
    indexes.sort_unstable();
    let size = indexes.len() as u64 + 1;
    assert_eq!(indexes, (1..size).collect::<Vec<u64>>(), "one index each");
    let after = latest(&mut client, &verifier).await;
    assert_eq!(after.head.size, size);
    for old in [&before, &during] {
        assert_consistent(&mut client, old.head.size, old.head.root, &after.head).await;
    }
    assert_found(&mut client, &acknowledged).await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();

    // The whole log replays with the vkey.
    let mut verify = hashforum_bin();
    verify
        .args(["verify", "--json", "--vkey"])
        .arg(dir.path().join("forum.vkey"))
        .arg("--data")
        .arg(disk_dir.join("data"))
        .env("RUST_LOG", "off");
    let output = tokio::task::block_in_place(|| run_with_timeout(verify, b"", CHILD_TIMEOUT));
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["entries"], size, "{report}");
}

/// Each value is found, first submitted at its index.
async fn assert_found(client: &mut Client, entries: &[(String, u64)]) {
    for (value, index) in entries {
        let record = crate::harness::lookup(client, HashType::Sha256, value, false)
            .await
            .unwrap_or_else(|e| panic!("acknowledged entry {index} is lost: {e:?}"));
        assert_eq!(record.submissions[0].log_index, *index);
    }
}

/// M2: any other failed commit is fatal. `hashforum serve` runs under a file-size limit
/// (`ulimit -f`, with `SIGXFSZ` ignored): once the write-ahead log reaches it, RocksDB's write
/// fails with `EFBIG`, an I/O error that is not a full disk. The call gets `INTERNAL`, the
/// server exits non-zero, and restarted without the limit it has every acknowledged entry,
/// the failed batch whole or not at all, and goes on right after the log as it is on disk.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_commit_other_than_a_full_disk_stops_the_server() {
    let dir = crate::harness::dev_forum(&["alpha"]);
    let config = dir.path().join("server/hashforum.toml");
    let mut limited = Command::new("bash");
    limited
        .args(["-c", "trap '' XFSZ; ulimit -f 3072; exec \"$@\"", "bash"])
        .arg(env!("CARGO_BIN_EXE_hashforum"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("HASHFORUM_IDENTITY")
        .env_remove("HASHFORUM_SERVER");
    let mut server = ServeProcess::spawn(limited)
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    let alpha = Identity::load(&dir.path().join("identities/alpha")).unwrap();
    let signer = Signer::of(&alpha);
    let mut client = Client::connect(&alpha, Some(&server.addr)).await.unwrap();
    let mut acknowledged = Vec::new();
    for (value, envelope) in envelopes(&signer, 0, 20) {
        let receipts = submit_all(&mut client, vec![envelope]).await.unwrap();
        acknowledged.push((value, receipts[0].log_index));
    }
    // Batches of about 3.5 MB pass the 3 MiB limit: a commit fails.
    let mut failed = None;
    for round in 1..5u64 {
        let batch: Vec<(String, pb::Envelope)> = (0..10_000u64)
            .map(|i| {
                let value = sha256_value(1_000_000 * round + i);
                let mut statement = hash_submission(HashType::Sha256, &value);
                statement.tags = vec!["x".repeat(64), "y".repeat(64), "z".repeat(64)];
                (value, signer.submit(statement))
            })
            .collect();
        let sent = batch.iter().map(|(_, e)| e.clone()).collect();
        match submit_all(&mut client, sent).await {
            Ok(receipts) => {
                acknowledged.push((batch[0].0.clone(), receipts[0].log_index));
                acknowledged.push((batch[9_999].0.clone(), receipts[9_999].log_index));
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Internal, "{status:?}");
                failed = Some([batch[0].0.clone(), batch[9_999].0.clone()]);
                break;
            }
        }
    }
    let failed = failed.expect("a batch past the file-size limit failed");
    // The server stops by itself, with an error.
    let status = tokio::task::block_in_place(|| server.wait(CHILD_TIMEOUT));
    assert!(!status.success(), "{status}");
    assert!(
        server.stderr().contains("a group commit failed"),
        "{}",
        server.stderr()
    );

    // Without the limit, the store reopens: every acknowledged entry is there, the failed
    // batch whole or not at all, and the next entry comes right after the stored log.
    let server = ServeProcess::start(&config)
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    let mut client = Client::connect(&alpha, Some(&server.addr)).await.unwrap();
    assert_found(&mut client, &acknowledged).await;
    let mut present = Vec::new();
    for value in &failed {
        present.push(
            crate::harness::lookup(&mut client, HashType::Sha256, value, false)
                .await
                .ok(),
        );
    }
    let last = acknowledged.iter().map(|(_, i)| *i).max().unwrap();
    let (_, next) = envelopes(&signer, 99, 1).remove(0);
    let next = submit_all(&mut client, vec![next]).await.unwrap()[0].log_index;
    match (&present[0], &present[1]) {
        (None, None) => assert_eq!(next, last + 1),
        (Some(first), Some(end)) => {
            assert_eq!(first.submissions[0].log_index, last + 1);
            assert_eq!(end.submissions[0].log_index, last + 10_000);
            assert_eq!(next, last + 10_001);
        }
        partial => panic!("half of a failed batch is in the store: {partial:?}"),
    }
}
