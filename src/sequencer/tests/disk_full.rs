//! The sequencer on a full disk, over real RocksDB on a small tmpfs: a job whose commit fails
//! for want of room is refused with `DISK_FULL` and leaves no trace (no index, no membership
//! change, no resubmission marker), later jobs are refused at once, and once there is room
//! again the log goes on right after the committed entries, without a restart.
//!
//! Mounting a tmpfs needs root (CI runs as root); elsewhere the test says so loudly on stderr
//! and passes without running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

/// A tmpfs of `size` mounted on `path` for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self(path.to_owned()))
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
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0x5a_u8; 64 << 10];
    let mut written = 0;
    while written < limit {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
    // A full file system may refuse to flush the last bytes; what was written is enough.
    let _ = file.sync_all();
}

fn refused_reason(outcome: Result<Committed, Refusal>) -> Option<&'static str> {
    outcome.expect_err("refused").error.reason()
}

/// M2 (issue 11): a full disk fails the group it hit and rolls the sequencer back to the
/// committed log; writes resume by themselves once there is room again.
#[test]
fn a_full_disk_refuses_writes_rolls_back_and_recovers() {
    let dir = tempfile::tempdir().expect("dir");
    // RocksDB takes writes again once its largest write buffer (64 MiB) is free.
    let Some(_disk) = Tmpfs::mount(&dir.path().join("disk"), "128m") else {
        eprintln!(
            "SKIPPED a_full_disk_refuses_writes_rolls_back_and_recovers: mounting a tmpfs \
             needs root"
        );
        return;
    };
    // Most of the disk is taken before the store opens, so that RocksDB cannot preallocate
    // its write-ahead log (70 MiB): its appends then meet the full disk at once.
    let taken = dir.path().join("disk/taken");
    fill(&taken, 100 << 20);
    let store = open_forum(&dir.path().join("disk/db"));
    let directory = Arc::new(ArcSwap::from_pointee(Directory::load(&store).expect("dir")));
    let admin = Signer::new(ORIGIN, "admin", member_key(0, 0));
    let alpha = Signer::new(ORIGIN, "alpha", member_key(1, 0));
    let beta = Signer::new(ORIGIN, "beta", member_key(2, 0));
    let id = |m: &str| crate::types::MemberId::parse(m).expect("id");
    // One job: beta loses its contributor role, then 1,000 of alpha's submissions (relayed
    // by the admin), about 300 KB: far more than a page of the full disk.
    let demote_beta = admin.admin(admin::set_roles("beta", &[Role::Reader]));
    let mut big: Vec<pb::Envelope> = vec![demote_beta];
    big.extend((0..1_000).map(|h| alpha.submit(hash_submission(HashType::Sha256, &hash_value(h)))));
    let beta_submits = beta.submit(hash_submission(HashType::Sha256, &hash_value(5_000)));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sequencer = Sequencer::start(
            store.clone(),
            directory.clone(),
            crate::pdq::index::PdqIndex::default(),
            signer(),
        )
        .expect("start");
        let first = parse(&[alpha.submit(hash_submission(HashType::Sha256, &hash_value(9_999)))]);
        let first = sequencer
            .submit(&id("alpha"), first)
            .await
            .expect("room yet");
        let committed_size = first.checkpoint.head.size;
        assert_eq!(committed_size, 2);

        fill(&dir.path().join("disk/rest"), usize::MAX);
        let outcome = sequencer.submit(&id("admin"), parse(&big)).await;
        assert_eq!(refused_reason(outcome), Some("DISK_FULL"));
        assert!(sequencer.disk_full());
        // Refused at once while the disk is full; the store holds the committed log only.
        let outcome = sequencer
            .submit(&id("beta"), parse(std::slice::from_ref(&beta_submits)))
            .await;
        assert_eq!(refused_reason(outcome), Some("DISK_FULL"));
        assert_eq!(store.size().expect("size"), committed_size);
        let contributor = vec![Role::Contributor.to_pb() as i32];
        assert!(directory
            .load()
            .member("beta")
            .is_some_and(|m| m.roles == contributor));

        // Room again: RocksDB recovers (it looks every 5 seconds), a probe commits, and the
        // log goes on right after the committed entries. Beta is still a contributor: the
        // failed job's role change went with it.
        std::fs::remove_file(dir.path().join("disk/rest")).expect("rm");
        std::fs::remove_file(&taken).expect("rm");
        let deadline = Instant::now() + Duration::from_secs(30);
        while sequencer.disk_full() {
            assert!(Instant::now() < deadline, "writes did not resume");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let outcome = sequencer.submit(&id("beta"), parse(&[beta_submits])).await;
        assert_eq!(
            committed(&store, outcome),
            Ok(vec![(committed_size, false)])
        );
        // The failed job was never appended: it is not a resubmission.
        let outcome = sequencer.submit(&id("admin"), parse(&big)).await;
        let expected: Vec<(u64, bool)> = (committed_size + 1..committed_size + 1_002)
            .map(|i| (i, false))
            .collect();
        assert_eq!(committed(&store, outcome), Ok(expected));
        sequencer.close().await;
    });
    check_tree(&store);
    assert_eq!(store.size().expect("size"), 1_004);
    let leaf = store.entry(3).expect("read").expect("the role change");
    let entry = crate::log::StoredEntry::decode(&leaf).expect("decodes");
    assert_eq!(entry.envelope.payload, big[0].payload);
}
