//! Backups with the real binary: `hashforum backup` while clients submit (the server makes it,
//! over its control socket) and while the server is stopped, `verify --backup` offline, and
//! `restore` into a new data directory, with the guard that keeps a restored primary from
//! signing a tree that conflicts with a checkpoint it signed before.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hashforum::client::Client;
use hashforum::identity::Identity;
use hashforum::pb;
use hashforum::storage::Store;
use hashforum::types::HashType;
use tonic::Code;

use crate::harness::{
    assert_refused, dev_forum, hashforum_bin, latest_note, lookup_sha256, run_with_timeout,
    sha256_value, signed, status, submission, submit, submit_all, ServeProcess, CHILD_TIMEOUT,
};

/// Entries per `SubmitEntries` call of the concurrent submitter.
const BATCH: u64 = 50;

/// Runs the binary with `args` to the end.
fn hf(args: &[&str]) -> Output {
    let mut cmd = hashforum_bin();
    cmd.args(args);
    tokio::task::block_in_place(|| run_with_timeout(cmd, b"", CHILD_TIMEOUT))
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn serve(config: &Path) -> ServeProcess {
    tokio::task::block_in_place(|| ServeProcess::start(config))
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"))
}

async fn stop(mut server: ServeProcess) {
    server.signal("TERM");
    let status = tokio::task::block_in_place(|| server.wait(CHILD_TIMEOUT));
    assert!(status.success(), "{}", server.stderr());
}

async fn alpha(forum: &Path, server: &ServeProcess) -> (Client, Identity) {
    let identity = Identity::load(&forum.join("identities/alpha")).unwrap();
    let client = Client::connect(&identity, Some(&server.addr))
        .await
        .unwrap();
    (client, identity)
}

fn envelope(identity: &Identity, n: u64) -> pb::Envelope {
    signed(
        identity,
        &submission("alpha", HashType::Sha256, &sha256_value(n)),
    )
}

/// Which of the hashes `values` the server finds.
async fn found(client: &mut Client, values: &[u64]) -> Vec<bool> {
    let mut out = Vec::new();
    for chunk in values.chunks(5_000) {
        let results = lookup_sha256(client, chunk.iter().map(|&n| sha256_value(n))).await;
        out.extend(results.iter().map(|r| r.found));
    }
    out
}

/// Every file of `dir` (recursively) with its length and modification time.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(listing(&entry.path()));
        } else {
            out.insert(entry.path(), (meta.len(), meta.modified().unwrap()));
        }
    }
    out
}

/// A copy of the forum's server config with another data directory, beside it (so that its
/// relative paths still resolve).
fn config_with_data(forum: &Path, name: &str, data: &Path) -> PathBuf {
    let config = forum.join("server/hashforum.toml");
    let mut file = hashforum::config::FileConfig::read(&config).unwrap();
    file.data_dir = data.to_owned();
    let path = forum.join(format!("server/{name}.toml"));
    std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
    path
}

/// A backup taken with `hashforum backup` while a client submits holds every entry
/// acknowledged before it began; `verify --backup` checks it and writes nothing into it.
/// Restored into a new data directory, the primary serves every one of those entries, refuses
/// writes until the restore is confirmed (a checkpoint newer than the backup is refused, at
/// restore time and later), then appends after them, and its log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_every_acknowledged_entry() {
    let forum = dev_forum(&["alpha"]);
    let forum = forum.path();
    let config = forum.join("server/hashforum.toml");
    let vkey = forum.join("forum.vkey");
    let server = serve(&config).await;
    let socket = forum.join("server/data/control.sock");
    // `serve` says where it listens before it opens the store; the socket comes after.
    let deadline = std::time::Instant::now() + CHILD_TIMEOUT;
    while !socket.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the control socket is the owner's only"
    );

    // One client submits batches for as long as the test lets it, noting what was acknowledged.
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let (mut client, identity) = alpha(forum, &server).await;
    let submitter = {
        let (acked, done, identity) = (acked.clone(), done.clone(), identity.clone());
        let mut client = client.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let batch = (n..n + BATCH).map(|i| envelope(&identity, i)).collect();
                submit_all(&mut client, batch).await.unwrap();
                acked.lock().unwrap().extend(n..n + BATCH);
                n += BATCH;
            }
        })
    };
    let acked_len = || acked.lock().unwrap().len();
    while acked_len() < 500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: Vec<u64> = acked.lock().unwrap().clone();
    let out = forum.join("backups/first");
    let made = hf(&["backup", "--config", s(&config), "--out", s(&out), "--json"]);
    assert!(made.status.success(), "{}", text(&made));
    let manifest: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(manifest["taken"], "online", "{manifest}");
    assert_eq!(manifest["format"], "hashforum-backup/v1");
    let size = manifest["size"].as_u64().unwrap();
    // The genesis, then at least every submission acknowledged before the backup.
    assert!(size > before.len() as u64, "{size} entries");
    let more = before.len() + 500;
    while acked_len() < more {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done.store(true, Ordering::Relaxed);
    submitter.await.unwrap();
    let newer = forum.join("newer.checkpoint");
    std::fs::write(&newer, latest_note(&mut client).await).unwrap();
    let ours = forum.join("backup.checkpoint");
    std::fs::write(&ours, manifest["checkpoint"].as_str().unwrap()).unwrap();

    // Verified offline, with nothing written into it.
    let files = listing(&out);
    let verified = hf(&["verify", "--vkey", s(&vkey), "--backup", s(&out)]);
    assert!(verified.status.success(), "{}", text(&verified));
    let says = String::from_utf8_lossy(&verified.stdout);
    assert!(
        says.contains(&format!("backup of {size} entries")),
        "{says}"
    );
    assert_eq!(listing(&out), files, "verify wrote into the backup");
    stop(server).await;
    assert!(
        !socket.exists(),
        "the control socket is removed at shutdown"
    );

    // Restored into a new data directory: refused with a newer checkpoint, then unconfirmed.
    let data = forum.join("restored-data");
    let restored = config_with_data(forum, "restored", &data);
    let refused = hf(&[
        "restore",
        "--config",
        s(&restored),
        "--from",
        s(&out),
        "--latest-checkpoint",
        s(&newer),
    ]);
    assert!(!refused.status.success(), "{}", text(&refused));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains(&format!("more than the {size}")) && why.contains("replica"),
        "{why}"
    );
    assert!(!data.exists(), "a refused restore writes nothing");
    let done = hf(&["restore", "--config", s(&restored), "--from", s(&out)]);
    assert!(done.status.success(), "{}", text(&done));

    let server = serve(&restored).await;
    let (mut client, identity) = alpha(forum, &server).await;
    let present = found(&mut client, &before).await;
    let lost: Vec<u64> = before
        .iter()
        .zip(&present)
        .filter(|(_, found)| !**found)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged before the backup, lost: {lost:?}"
    );
    let next = envelope(&identity, 1_000_000);
    let err = submit(&mut client, next.clone()).await.unwrap_err();
    assert_refused(&err, Code::FailedPrecondition, "RESTORED_UNCONFIRMED");
    assert_eq!(
        status(&mut client).await.restored_unconfirmed_size,
        size,
        "GetStatus says so"
    );
    assert!(
        err.message().contains("restore --confirm"),
        "{}",
        err.message()
    );

    // Confirmed over the control socket: a newer checkpoint is refused, the backup's own is
    // the latest published here (the newer one was never), and writes resume after it.
    let confirm = |checkpoint: &Path| {
        hf(&[
            "restore",
            "--config",
            s(&restored),
            "--confirm",
            "--latest-checkpoint",
            s(checkpoint),
        ])
    };
    let refused = confirm(&newer);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("NEWER_CHECKPOINT")
            || String::from_utf8_lossy(&refused.stderr).contains("more than"),
        "{}",
        text(&refused)
    );
    let err = submit(&mut client, next.clone()).await.unwrap_err();
    assert_refused(&err, Code::FailedPrecondition, "RESTORED_UNCONFIRMED");
    let confirmed = confirm(&ours);
    assert!(confirmed.status.success(), "{}", text(&confirmed));
    assert_eq!(
        status(&mut client).await.restored_unconfirmed_size,
        0,
        "confirmed"
    );
    let receipt = submit(&mut client, next).await.unwrap();
    assert_eq!(receipt.log_index, size, "appended right after the backup");
    stop(server).await;
    let whole = hf(&["verify", "--vkey", s(&vkey), "--data", s(&data)]);
    assert!(whole.status.success(), "{}", text(&whole));
}

/// With the server stopped, `hashforum backup` opens the store and makes the same backup (not
/// of a log whose last entries no signed checkpoint covers yet); a backup into a directory
/// that is not empty is refused; an entry changed in a backup is
/// found by `verify --backup`, which names it, and `restore` refuses that backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_backup_verifies_and_a_tampered_one_is_refused() {
    let forum = dev_forum(&["alpha"]);
    let forum = forum.path();
    let config = forum.join("server/hashforum.toml");
    let vkey = forum.join("forum.vkey");

    // A server that crashed between a commit and its checkpoint left entries no signed
    // checkpoint covers yet: an offline backup is refused until a server signs one at start.
    let mut crashing = tokio::task::block_in_place(|| {
        ServeProcess::start_with(&config, &[("HASHFORUM_FAILPOINT", "after-commit")])
    })
    .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    let (mut client, identity) = alpha(forum, &crashing).await;
    assert!(submit(&mut client, envelope(&identity, 100)).await.is_err());
    drop(client);
    let crashed = tokio::task::block_in_place(|| crashing.wait(CHILD_TIMEOUT));
    assert!(!crashed.success(), "{}", crashing.stderr());
    let early = forum.join("early");
    let refused = hf(&["backup", "--config", s(&config), "--out", s(&early)]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not covered by a signed checkpoint"),
        "{}",
        text(&refused)
    );
    assert!(
        !early.join("manifest.json").exists() && !early.join("db").exists(),
        "a refused backup leaves nothing"
    );

    let server = serve(&config).await;
    let (mut client, identity) = alpha(forum, &server).await;
    let batch = (0..5).map(|n| envelope(&identity, n)).collect();
    submit_all(&mut client, batch).await.unwrap();
    drop(client);
    stop(server).await;

    let busy = forum.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("something"), b"kept").unwrap();
    let refused = hf(&["backup", "--config", s(&config), "--out", s(&busy)]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    assert_eq!(std::fs::read(busy.join("something")).unwrap(), b"kept");

    let out = forum.join("offline");
    let made = hf(&["backup", "--config", s(&config), "--out", s(&out)]);
    assert!(made.status.success(), "{}", text(&made));
    assert!(String::from_utf8_lossy(&made.stdout).contains("offline"));
    let verified = hf(&["verify", "--vkey", s(&vkey), "--backup", s(&out)]);
    assert!(verified.status.success(), "{}", text(&verified));

    // Entry 3 changed by one byte in the backup's store.
    {
        let db = Store::open(&out.join("db")).unwrap();
        let mut leaf = db.entry(3).unwrap().unwrap();
        *leaf.last_mut().unwrap() ^= 1;
        let mut batch = db.batch();
        batch.put_entry(3, &leaf);
        db.commit(batch).unwrap();
    }
    let tampered = hf(&["verify", "--vkey", s(&vkey), "--backup", s(&out), "--json"]);
    assert!(!tampered.status.success(), "{}", text(&tampered));
    let report: serde_json::Value = serde_json::from_slice(&tampered.stdout).unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(report["first_bad_index"], 3, "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("entry 3"),
        "{report}"
    );

    let data = forum.join("restored-data");
    let restored = config_with_data(forum, "restored", &data);
    let refused = hf(&[
        "restore",
        "--config",
        s(&restored),
        "--from",
        s(&out),
        "--no-newer-checkpoint",
    ]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("entry 3"));
    assert!(!data.exists(), "a refused restore writes nothing");
}
