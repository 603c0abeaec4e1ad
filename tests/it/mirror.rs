//! A member's mirror through the CLI: `sync` makes a verified local copy, resumes it, and
//! refuses a rolled-back server with evidence that `verify` proves; `lookup --local` and
//! `match --local` answer exactly as the server does.

use crate::cli::{hf, json, ok};
use crate::harness::{sha256_value, signed, submission, submit_all, TestServer};
use hashforum::types::HashType;

const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
const NEAR: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b2d";

/// The last JSON line a `sync --json` printed (its summary).
fn summary(stdout: &str) -> serde_json::Value {
    let last = stdout.lines().last().expect("a summary line");
    serde_json::from_str(last).unwrap()
}

async fn submit_hashes(server: &TestServer, values: &[(HashType, String)]) {
    let alpha = server.identity("alpha");
    let envelopes = values
        .iter()
        .map(|(t, v)| signed(&alpha, &submission("alpha", *t, v)))
        .collect();
    submit_all(&mut server.client("alpha").await, envelopes)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_syncs_resumes_answers_like_the_server_and_refuses_a_rollback() {
    let mut server = TestServer::start(&["alpha"]).await;
    submit_hashes(
        &server,
        &[
            (HashType::Pdq, PDQ.into()),
            (HashType::Md5, "0123456789abcdef0123456789abcdef".into()),
        ],
    )
    .await;
    let mirror = tempfile::tempdir().unwrap();
    let out = mirror.path().join("copy");
    let out_s = out.to_str().unwrap();
    let vkey = server.dir().join("forum.vkey");

    // The first sync needs the verifier key, and keeps it.
    let first = ok(&hf(
        &server,
        "alpha",
        &[
            "sync",
            "--out",
            out_s,
            "--vkey",
            vkey.to_str().unwrap(),
            "--json",
        ],
        "",
    ));
    let first = summary(&first);
    assert_eq!(first["done"], true);
    let size = first["size"].as_u64().unwrap();
    assert_eq!(first["applied"].as_u64(), Some(size));

    // The copy answers as the server does, without it.
    for args in [
        vec![
            "lookup",
            "--type",
            "md5",
            "--value",
            "0123456789abcdef0123456789abcdef",
            "--json",
            "--envelopes",
        ],
        vec![
            "lookup",
            "--type",
            "sha256",
            "--value",
            &sha256_value(1),
            "--json",
        ],
        vec!["match", "--value", NEAR, "--json"],
    ] {
        let remote = hf(&server, "alpha", &args, "");
        let mut local_args = args.clone();
        local_args.extend(["--local", out_s]);
        let local = hf(&server, "alpha", &local_args, "");
        assert_eq!(
            local.status.code(),
            remote.status.code(),
            "{args:?}: {local:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&local.stdout),
            String::from_utf8_lossy(&remote.stdout),
            "{args:?}"
        );
    }
    let matched = json(&hf(
        &server,
        "alpha",
        &["match", "--value", NEAR, "--json", "--local", out_s],
        "",
    ));
    assert_eq!(matched[0]["matches"][0]["distance"], 4);

    // Back up the server's data, grow the log, and sync again: only the new entries.
    server.stop().await;
    let backup = tempfile::tempdir().unwrap();
    crate::replica::copy_dir(&server.data_dir(), backup.path());
    server.start_again();
    let more: Vec<_> = (0..50)
        .map(|n| (HashType::Sha256, sha256_value(n)))
        .collect();
    submit_hashes(&server, &more).await;
    let second = summary(&ok(&hf(
        &server,
        "alpha",
        &["sync", "--out", out_s, "--json"],
        "",
    )));
    assert_eq!(second["applied"].as_u64(), Some(50));
    let grown = second["size"].as_u64().unwrap();
    assert_eq!(grown, size + 50);

    // The server restored from the backup: the mirror refuses it and keeps the evidence.
    server.stop().await;
    std::fs::remove_dir_all(server.data_dir()).unwrap();
    crate::replica::copy_dir(backup.path(), &server.data_dir());
    server.start_again();
    let refused = hf(&server, "alpha", &["sync", "--out", out_s], "");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("rolled back"), "{stderr}");
    let kept = hashforum::follow::Evidence::kept(&out.join("evidence"));
    assert_eq!(kept.len(), 1);
    let verify_evidence = |file: &std::path::Path| {
        let args = ["verify", "--vkey", vkey.to_str().unwrap(), "--evidence"];
        let mut args: Vec<&str> = args.to_vec();
        args.push(file.to_str().unwrap());
        hf(&server, "alpha", &args, "")
    };
    let proven = ok(&verify_evidence(&kept[0]));
    assert!(proven.starts_with("reported: rollback"), "{proven}");
    // It stays refused, and the copy still answers from what it verified.
    let again = hf(&server, "alpha", &["sync", "--out", out_s], "");
    assert!(!again.status.success());
    let local = json(&hf(
        &server,
        "alpha",
        &[
            "lookup",
            "--type",
            "sha256",
            "--value",
            &sha256_value(7),
            "--json",
            "--local",
            out_s,
        ],
        "",
    ));
    assert_eq!(local["found"], true, "{local}");
    // A tampered evidence file proves nothing.
    let mut evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&kept[0]).unwrap()).unwrap();
    evidence["served"] = evidence["held"].clone();
    let forged = mirror.path().join("forged.json");
    std::fs::write(&forged, evidence.to_string()).unwrap();
    let out = verify_evidence(&forged);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("NOT verified"));
}
