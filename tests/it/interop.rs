//! Stock verifiers accept the log unmodified: Go's `golang.org/x/mod/sumdb/note` and
//! `sumdb/tlog` (Debian's `golang-go` and `golang-golang-x-mod-dev`, installed by
//! `deploy/setup.sh --test`) check our checkpoints, receipts and consistency proofs, and refuse
//! tampered ones. The Go program is `tests/interop/sumdb_verify.go`. A Python client built
//! from `proto/` alone (`tests/interop/grpc_client.py`) calls the server over mTLS, and
//! Python's stock `cryptography` checks our cosignatures (`tests/interop/cosignature_verify.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use hashforum::log::proof::Receipt;
use hashforum::pb;
use hashforum::statement::hash_submission;
use hashforum::types::HashType;

use crate::harness::{
    pyenv_python, run_with_timeout, sha256_value, submit_all, TestServer, CHILD_TIMEOUT,
};

/// Builds the Go verifier against the Debian packages' sources (GOPATH mode, offline).
fn build_go_verifier(out: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/sumdb_verify.go");
    let binary = out.join("sumdb_verify");
    let mut cmd = Command::new("go");
    cmd.arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", out.join("gocache"))
        .env("GOFLAGS", "");
    let built = match cmd.output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run `go` ({e}): run `bash deploy/setup.sh --test` first"),
    };
    assert!(
        built.status.success(),
        "go build failed (is golang-golang-x-mod-dev installed? `bash deploy/setup.sh --test`): {}",
        String::from_utf8_lossy(&built.stderr)
    );
    binary
}

/// Runs the Go verifier: `Ok(stdout)` when it says ok, `Err(stdout)` when it refuses.
fn go(binary: &Path, args: &[&Path]) -> Result<String, String> {
    let mut cmd = Command::new(binary);
    cmd.args(args);
    let out = run_with_timeout(cmd, b"", CHILD_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && stdout.starts_with("ok ") {
        Ok(stdout)
    } else {
        assert!(stdout.starts_with("FAIL "), "{out:?}");
        Err(stdout)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn go_sumdb_verifies_checkpoints_receipts_and_proofs() {
    let work = tempfile::tempdir().unwrap();
    let binary = build_go_verifier(work.path());
    let file = |name: &str, bytes: &[u8]| {
        let path = work.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };

    let server = TestServer::start(&["alpha"]).await;
    let vkey = server.dir().join("forum.vkey");
    let mut alpha = server.client("alpha").await;
    let signer = server.signer("alpha");
    let old = alpha
        .log
        .get_checkpoint(pb::GetCheckpointRequest {
            size: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .note;
    let envelopes: Vec<pb::Envelope> = (0..300)
        .map(|n| signer.submit(hash_submission(HashType::Sha256, &sha256_value(n))))
        .collect();
    let receipts = submit_all(&mut alpha, envelopes.clone()).await.unwrap();
    let new = alpha
        .log
        .get_checkpoint(pb::GetCheckpointRequest {
            size: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .note;

    // The checkpoint: Go's note package opens it with our vkey; its body parses.
    let new_note = file("new.note", &new);
    let ok = go(&binary, &[Path::new("checkpoint"), &vkey, &new_note]).unwrap();
    let head = server_head(&new);
    assert_eq!(
        ok.trim(),
        format!("ok {} {} {}", hashforum::forum::DEV_ORIGIN, head.0, head.1)
    );

    // Receipts: Go's tlog.CheckRecord accepts each entry's proof under the checkpoint.
    for i in [0usize, 1, 127, 255, 256, 299] {
        let proof = Receipt::parse(&receipts[i].tlog_proof).unwrap();
        let entry = proof.entry_for(&envelopes[i]).unwrap();
        let receipt_file = file(&format!("{i}.tlog-proof"), &receipts[i].tlog_proof);
        let entry_file = file(&format!("{i}.entry"), &entry);
        let ok = go(
            &binary,
            &[Path::new("receipt"), &vkey, &receipt_file, &entry_file],
        )
        .unwrap();
        assert!(
            ok.starts_with(&format!("ok {} ", receipts[i].log_index)),
            "{ok}"
        );
        // Another entry's bytes do not verify under this receipt.
        let other = file("other.entry", &[entry.as_slice(), b"x"].concat());
        assert!(go(
            &binary,
            &[Path::new("receipt"), &vkey, &receipt_file, &other]
        )
        .is_err());
    }

    // Consistency from the genesis checkpoint to the new one: Go's tlog.CheckTree.
    let old_size = server_head(&old).0;
    let proof = alpha
        .log
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size,
            new_size: head.0,
        })
        .await
        .unwrap()
        .into_inner()
        .hashes;
    let b64 = base64::engine::general_purpose::STANDARD;
    let lines: String = proof.iter().map(|h| b64.encode(h) + "\n").collect();
    let old_note = file("old.note", &old);
    let proof_file = file("consistency", lines.as_bytes());
    go(
        &binary,
        &[
            Path::new("consistency"),
            &vkey,
            &old_note,
            &new_note,
            &proof_file,
        ],
    )
    .unwrap();

    // Refusals: a tampered note, another log's key, a wrong proof.
    let tampered = String::from_utf8(new.clone()).unwrap().replacen(
        &format!("\n{}\n", head.0),
        &format!("\n{}\n", head.0 + 1),
        1,
    );
    let tampered = file("tampered.note", tampered.as_bytes());
    assert!(go(&binary, &[Path::new("checkpoint"), &vkey, &tampered]).is_err());
    let stranger = file(
        "stranger.vkey",
        hashforum::log::checkpoint::vkey(
            hashforum::forum::DEV_ORIGIN,
            &hashforum::crypto::generate_key().verifying_key(),
        )
        .as_bytes(),
    );
    assert!(go(&binary, &[Path::new("checkpoint"), &stranger, &new_note]).is_err());
    let mut bad = proof.clone();
    bad[0][0] ^= 1;
    let bad: String = bad.iter().map(|h| b64.encode(h) + "\n").collect();
    let wrong = file("wrong", bad.as_bytes());
    assert!(go(
        &binary,
        &[
            Path::new("consistency"),
            &vkey,
            &old_note,
            &new_note,
            &wrong
        ]
    )
    .is_err());
}

/// A checkpoint note's size and base64 root (its second and third lines).
fn server_head(note: &[u8]) -> (u64, String) {
    let text = String::from_utf8(note.to_vec()).unwrap();
    let mut lines = text.lines().skip(1);
    (
        lines.next().unwrap().parse().unwrap(),
        lines.next().unwrap().to_owned(),
    )
}

/// A member's Python client built from `proto/` alone (grpcio-tools' protoc, grpcio over
/// mTLS; installed by `deploy/setup.sh --test` in `/var/tmp/hashforum-pyenv`, or
/// `HASHFORUM_PYENV`): `MatchHashes` finds a stored PDQ hash from a near one, `LookupHash`
/// returns its record, and a bad value is refused with the field in the message.
#[tokio::test(flavor = "multi_thread")]
async fn python_grpcio_matches_and_looks_up_from_the_protos() {
    let python = pyenv_python();
    let server = TestServer::start(&["alpha"]).await;
    let mut client = server.client("alpha").await;
    let stored = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    let near = "d0f8f1ccc0f4a84d0a370a3a228f67f0b36e2ed5b6623e1d33e6339c4e9c9b22";
    submit_all(
        &mut client,
        vec![server
            .signer("alpha")
            .submit(hash_submission(HashType::Pdq, stored))],
    )
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = server.addr.rsplit(':').next().unwrap();
    let mut cmd = Command::new(&python);
    cmd.arg(root.join("tests/interop/grpc_client.py"))
        .arg(root.join("proto"))
        .arg(work.path())
        .arg(server.identity_dir("alpha"))
        .arg(format!("localhost:{port}"))
        .arg(stored)
        .arg(near);
    let out = run_with_timeout(cmd, b"", CHILD_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["matches"],
        serde_json::json!([{
            "value": stored,
            "distance": 16,
            "variant": "DIHEDRAL_ORIGINAL",
            "submitter": "alpha",
            "status": "RECORD_STATUS_ACTIVE",
        }])
    );
    assert_eq!(v["lookup"]["value"], stored);
    assert_eq!(v["lookup"]["submitters"], serde_json::json!(["alpha"]));
    assert_eq!(v["refused"]["code"], "INVALID_ARGUMENT");
    let details = v["refused"]["details"].as_str().unwrap();
    assert!(details.starts_with("queries[0].value: "), "{details}");
}

/// Cosignatures of a real checkpoint, made with `Cosigner`, verify with Python's stock
/// `cryptography` Ed25519 and a reading of C2SP tlog-cosignature alone
/// (`tests/interop/cosignature_verify.py`), which recomputes the key id from the vkey; a
/// changed body, a changed time, another key and a wrong key id in the vkey are refused.
#[tokio::test(flavor = "multi_thread")]
async fn python_cryptography_verifies_our_cosignatures() {
    use hashforum::log::checkpoint::LogVerifier;
    use hashforum::log::cosignature::{with_lines, Cosigner};

    let python = pyenv_python();
    let server = TestServer::start(&["alpha"]).await;
    let vkey = std::fs::read_to_string(server.dir().join("forum.vkey")).unwrap();
    let mut alpha = server.client("alpha").await;
    let note = crate::harness::latest_note(&mut alpha).await;
    let checkpoint = LogVerifier::from_vkey(&vkey)
        .unwrap()
        .verify(&note)
        .unwrap();
    let name = "replica1.forum.example/witness";
    let witness = Cosigner::new(name, hashforum::crypto::generate_key()).unwrap();
    let other = Cosigner::new(
        "replica2.forum.example/witness",
        hashforum::crypto::generate_key(),
    )
    .unwrap();
    let time = 1_764_300_000;
    let line = witness.cosign(&checkpoint, time);
    let cosigned = with_lines(&note, &[other.cosign(&checkpoint, time + 1), line.clone()]);

    let work = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = work.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/cosignature_verify.py");
    let check = |vkey: &Path, note: &Path| -> Result<String, String> {
        let mut cmd = Command::new(&python);
        cmd.arg(&script).arg(vkey).arg(note);
        let out = run_with_timeout(cmd, b"", CHILD_TIMEOUT);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            assert!(stdout.starts_with("FAIL "), "{out:?}");
            Err(stdout)
        }
    };
    let witness_vkey = file("witness.vkey", witness.vkey().as_bytes());
    let ok = check(&witness_vkey, &file("cosigned.note", &cosigned)).unwrap();
    assert_eq!(ok, format!("ok {name} {time}\n"));

    // Another body (the size changed), a changed time, another key, a wrong key id.
    let text = String::from_utf8(cosigned.clone()).unwrap();
    let size = checkpoint.head.size;
    let resized = text.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1);
    assert!(check(&witness_vkey, &file("resized.note", resized.as_bytes())).is_err());
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut payload = b64
        .decode(line.trim_end().rsplit(' ').next().unwrap())
        .unwrap();
    payload[11] ^= 1;
    let retimed = with_lines(
        &note,
        &[format!("\u{2014} {name} {}\n", b64.encode(payload))],
    );
    let err = check(&witness_vkey, &file("retimed.note", &retimed)).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
    let stranger = Cosigner::new(name, hashforum::crypto::generate_key()).unwrap();
    let err = check(
        &file("stranger.vkey", stranger.vkey().as_bytes()),
        &file("cosigned2.note", &cosigned),
    )
    .unwrap_err();
    assert!(err.contains("no cosignature"), "{err}");
    let vkey = witness.vkey();
    let mut parts = vkey.splitn(3, '+');
    let (name_part, _, key) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    let wrong_id = format!("{name_part}+00000000+{key}");
    let err = check(
        &file("wrong-id.vkey", wrong_id.as_bytes()),
        &file("cosigned3.note", &cosigned),
    )
    .unwrap_err();
    assert!(err.contains("key id"), "{err}");
}

/// Every key file `init` and `identity new` write opens in OpenSSL 3 (`openssl pkey`), which
/// refuses PKCS#8 v2 Ed25519 keys: they are RFC 8410 (PKCS#8 v1), and their public halves
/// are the ones hashforum derives.
#[test]
fn openssl_reads_every_key_file_hashforum_writes() {
    let forum = crate::harness::dev_forum(&["alpha"]);
    let made = tempfile::tempdir().unwrap();
    let mine = made.path().join("me");
    let mut cmd = crate::harness::hashforum_bin();
    cmd.args(["identity", "new"])
        .arg(&mine)
        .args(["--name", "gamma"]);
    let out = run_with_timeout(cmd, b"", CHILD_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    let keys = [
        forum.path().join("server/log.key"),
        forum.path().join("identities/admin/signing.key"),
        forum.path().join("identities/alpha/signing.key"),
        mine.join("signing.key"),
    ];
    for key in &keys {
        let mut cmd = std::process::Command::new("openssl");
        cmd.args(["pkey", "-pubout", "-in"]).arg(key);
        let out = run_with_timeout(cmd, b"", CHILD_TIMEOUT);
        assert!(out.status.success(), "{}: {out:?}", key.display());
        let theirs = String::from_utf8(out.stdout).unwrap();
        let ours = hashforum::crypto::read_signing_key(key)
            .unwrap()
            .verifying_key();
        let ours =
            ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_pem(&ours, Default::default())
                .unwrap();
        assert_eq!(theirs, ours, "{}", key.display());
    }
}
