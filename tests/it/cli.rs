//! The `hashforum` binary, as a user runs it. Every child process has a deadline.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use hashforum::crypto;

use crate::harness::{
    hashforum_bin, run_with_timeout, sha256_value, ServeProcess, TestServer, CHILD_TIMEOUT,
};

/// `hashforum ARGS` as `member` of `server`, fed `stdin`.
pub(crate) fn hf(server: &TestServer, member: &str, args: &[&str], stdin: &str) -> Output {
    hf_as(
        &server.identity_dir(member),
        Some(&server.addr),
        args,
        stdin,
    )
}

/// `hashforum ARGS` with the identity directory `identity` (and `server` overriding its
/// address), fed `stdin`.
pub(crate) fn hf_as(identity: &Path, server: Option<&str>, args: &[&str], stdin: &str) -> Output {
    let mut cmd: Command = hashforum_bin();
    cmd.args(args)
        .env("HASHFORUM_IDENTITY", identity)
        .env("RUST_LOG", "off");
    if let Some(server) = server {
        cmd.env("HASHFORUM_SERVER", server);
    }
    run_with_timeout(cmd, stdin.as_bytes(), CHILD_TIMEOUT)
}

/// The stdout of a successful run.
#[track_caller]
pub(crate) fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The JSON printed by a successful run.
#[track_caller]
pub(crate) fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// The JSON printed by a run that failed (exit 1) on purpose, such as a failed `verify`.
#[track_caller]
fn failed_json(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts a failed run that printed one line on stderr: `CODE: message [REASON]`, or without
/// the reason (`None`) for errors found before reaching the server. Returns the line.
#[track_caller]
fn refused(out: &Output, code: &str, reason: Option<&str>) -> String {
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    let line = err.strip_suffix('\n').unwrap_or(&err);
    assert!(!line.contains('\n'), "one line: {err}");
    assert!(line.starts_with(&format!("{code}: ")), "{err}");
    match reason {
        Some(reason) => assert!(line.ends_with(&format!(" [{reason}]")), "{err}"),
        None => assert!(!line.ends_with(']'), "{err}"),
    }
    line.to_owned()
}

/// Checks a DSSE envelope printed by the CLI (`payloadType`, base64 `payload` and `sig`)
/// against a key listed by `key list --json`.
#[track_caller]
fn verify_printed(envelope: &serde_json::Value, keys: &serde_json::Value) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = &envelope["signatures"][0];
    let key = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyid"] == sig["keyid"])
        .expect("the signing key is listed");
    let key = hex::decode(key["public_key"].as_str().unwrap()).unwrap();
    let vk = hashforum::entry::parse_public_key(&key).unwrap();
    let payload = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let sig = b64.decode(sig["sig"].as_str().unwrap()).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
    vk.verify_strict(
        &crypto::pae(envelope["payloadType"].as_str().unwrap(), &payload),
        &sig,
    )
    .expect("the printed envelope verifies");
}

/// Submitting and looking up with the CLI prints log indexes, records, envelopes and errors.
// Multi-threaded: the CLI runs as a blocking child process while the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_and_lookup_through_the_cli() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let single = [
        "submit",
        "--type",
        "md5",
        "--value",
        md5,
        "--label",
        "behaviour=instruction",
        "--label",
        "content_type=pdf",
        "--tag",
        "manifesto",
    ];
    let receipt = json(&hf(
        &server,
        "alpha",
        &[&single[..], &["--json"]].concat(),
        "",
    ));
    assert_eq!(receipt["log_index"], 1);
    assert_eq!(receipt["duplicate"], false);
    // The same statement again: the original receipt, in text.
    let again = ok(&hf(&server, "alpha", &single, ""));
    assert_eq!(again, format!("md5:{md5} already submitted: log index 1\n"));

    let found = json(&hf(
        &server,
        "beta",
        &["lookup", "--type", "md5", "--value", md5, "--json"],
        "",
    ));
    assert_eq!(found["found"], true);
    assert_eq!(found["hash_type"], "md5");
    assert_eq!(found["value"], md5);
    assert_eq!(found["first_submitter"], "alpha");
    assert_eq!(found["submitters"][0]["member"], "alpha");
    assert_eq!(found["submitters"][0]["log_index"], 1);
    assert_eq!(found["submitters"][0]["labels"]["behaviour"], "instruction");
    assert_eq!(
        found["submitters"][0]["tags"],
        serde_json::json!(["manifesto"])
    );

    let absent = "0123456789abcdef0123456789abcdef";
    let out = hf(
        &server,
        "beta",
        &["lookup", "--type", "md5", "--value", absent, "--json"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let missing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(missing["found"], false);

    // A batch from a file, with labels and a tag for every line: one receipt per line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hashes.txt");
    let sha1 = "a".repeat(40);
    std::fs::write(
        &file,
        format!("# removed today\nsha1:{sha1}\n\nmd5:{md5}\n"),
    )
    .unwrap();
    let batch = [
        "submit",
        "--batch",
        file.to_str().unwrap(),
        "--label",
        "entity=un-qde.115",
        "--tag",
        "incident-7",
    ];
    let out = ok(&hf(&server, "beta", &batch, ""));
    assert_eq!(
        out,
        format!("sha1:{sha1} submitted: log index 2\nmd5:{md5} submitted: log index 3\n")
    );
    // A batch from stdin, in JSON.
    let sha256 = sha256_value(1);
    let out = ok(&hf(
        &server,
        "alpha",
        &["submit", "--batch", "-", "--json"],
        &format!("sha256:{sha256}\nsha1:{sha1}\n"),
    ));
    let receipts: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(&str, u64)> = receipts
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap(),
                r["log_index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [(sha256.as_str(), 4), (sha1.as_str(), 5)]);

    // A batch lookup from stdin with envelopes: one line per query, in order, each envelope
    // verifying with its submitter's listed key.
    let out = ok(&hf(
        &server,
        "alpha",
        &["lookup", "--batch", "-", "--envelopes", "--json"],
        &format!("sha1:{sha1}\nmd5:{absent}\nmd5:{md5}\n"),
    ));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let found: Vec<bool> = lines
        .iter()
        .map(|l| l["found"].as_bool().unwrap())
        .collect();
    assert_eq!(found, vec![true, false, true]);
    let sha1_subs: Vec<(&str, u64, &str)> = lines[0]["submitters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["member"].as_str().unwrap(),
                s["log_index"].as_u64().unwrap(),
                s["labels"]["entity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sha1_subs,
        [("beta", 2, "un-qde.115"), ("alpha", 5, "")],
        "the batch's label is on each of its entries"
    );
    assert_eq!(
        lines[0]["submitters"][0]["tags"],
        serde_json::json!(["incident-7"])
    );
    for line in [&lines[0], &lines[2]] {
        for s in line["submitters"].as_array().unwrap() {
            let member = s["member"].as_str().unwrap();
            let keys = json(&hf(
                &server,
                "admin",
                &["key", "list", member, "--json"],
                "",
            ));
            verify_printed(&s["envelope"], &keys);
        }
    }

    // Text: who submitted first, then one line per submitter.
    let out = ok(&hf(
        &server,
        "alpha",
        &["lookup", "--type", "md5", "--value", md5],
        "",
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("md5:{md5} found (active): submitted by 2 member(s), first by alpha")
    );
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].trim_start().starts_with("alpha"), "{out}");
    assert!(lines[1].contains("log index 1 "), "{out}");
    assert!(lines[2].trim_start().starts_with("beta"), "{out}");
    assert!(lines[2].contains("log index 3 "), "{out}");
    let out = ok(&hf(
        &server,
        "alpha",
        &["lookup", "--batch", "-"],
        &format!("md5:{absent}\n"),
    ));
    assert_eq!(out, format!("md5:{absent} not found\n"));

    // Refusals by the server: one line with the code and the reason.
    let line = refused(
        &hf(
            &server,
            "alpha",
            &["submit", "--type", "pdq", "--value", "abc"],
            "",
        ),
        "INVALID_ARGUMENT",
        Some("INVALID_HASH"),
    );
    assert!(line.contains("hash_submission.value"), "{line}");
    refused(
        &hf(
            &server,
            "alpha",
            &[
                "submit", "--type", "md5", "--value", md5, "--tag", "Bad Tag",
            ],
            "",
        ),
        "INVALID_ARGUMENT",
        Some("INVALID_TAG"),
    );
    refused(
        &hf(&server, "alpha", &["member", "show", "nobody"], ""),
        "NOT_FOUND",
        Some("UNKNOWN_MEMBER"),
    );

    // Input errors, found before anything is sent: one line, no reason.
    for (stdin, says) in [
        (
            format!("md5:{md5}\nsha1 abc\n"),
            "line 2: expected type:value",
        ),
        ("sha3:abc\n".into(), "line 1: "),
        ("# only a comment\n\n".into(), "no type:value lines"),
    ] {
        let line = refused(
            &hf(&server, "alpha", &["submit", "--batch", "-"], &stdin),
            "INVALID_ARGUMENT",
            None,
        );
        assert!(line.contains(says), "{line}");
    }
    let line = refused(
        &hf(
            &server,
            "alpha",
            &[
                "submit",
                "--type",
                "md5",
                "--value",
                md5,
                "--label",
                "colour=red",
            ],
            "",
        ),
        "INVALID_ARGUMENT",
        None,
    );
    assert!(line.contains("--label"), "{line}");
    let line = refused(
        &hf(
            &server,
            "alpha",
            &["submit", "--type", "sha3", "--value", md5],
            "",
        ),
        "INVALID_ARGUMENT",
        None,
    );
    assert!(line.contains("--type"), "{line}");
    // Nothing of the refused input was logged: the next entry is 6.
    let out = ok(&hf(
        &server,
        "alpha",
        &["submit", "--type", "sha256", "--value", &sha256_value(2)],
        "",
    ));
    assert_eq!(
        out,
        format!("sha256:{} submitted: log index 6\n", sha256_value(2))
    );
}

/// Member and key administration with the CLI prints each change's log index, or the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_administration_through_the_cli() {
    let server = TestServer::start(&["alpha"]).await;
    let carol_dir = server.identity_dir("carol");
    let carol = carol_dir.to_str().unwrap();
    let out = ok(&hf(
        &server,
        "admin",
        &[
            "member",
            "add",
            "carol",
            "--roles",
            "contributor,reader",
            "--issue-identity",
            carol,
        ],
        "",
    ));
    assert_eq!(out, "logged at index 1\nlogged at index 2\n");

    let md5 = "0cc175b9c0f1b6a831c399e269772661";
    let out = ok(&hf(
        &server,
        "carol",
        &["submit", "--type", "md5", "--value", md5],
        "",
    ));
    assert_eq!(out, format!("md5:{md5} submitted: log index 3\n"));

    let shown = json(&hf(
        &server,
        "alpha",
        &["member", "show", "carol", "--json"],
        "",
    ));
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["roles"], serde_json::json!(["contributor", "reader"]));
    assert_eq!(shown["added_at_log_index"], 1);
    assert_eq!(shown["keys"][0]["valid_from_log_index"], 2);

    let out = ok(&hf(
        &server,
        "admin",
        &["member", "suspend", "carol", "--reason", "audit"],
        "",
    ));
    assert_eq!(out, "logged at index 4\n");
    refused(
        &hf(
            &server,
            "carol",
            &["lookup", "--type", "md5", "--value", md5],
            "",
        ),
        "UNAUTHENTICATED",
        Some("MEMBER_NOT_ACTIVE"),
    );
    let out = ok(&hf(
        &server,
        "admin",
        &["member", "set-roles", "carol", "reader", "--json"],
        "",
    ));
    let receipt: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&receipt["log_index"], &receipt["duplicate"]),
        (&serde_json::json!(5), &serde_json::json!(false))
    );

    let history = json(&hf(
        &server,
        "admin",
        &["member", "history", "carol", "--json"],
        "",
    ));
    let actions: Vec<(&str, &str, u64)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["author"].as_str().unwrap(),
                e["log_index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("added", "admin", 1),
            ("key_registered", "admin", 2),
            ("suspended", "admin", 4),
            ("roles_set", "admin", 5)
        ]
    );
    let listed = json(&hf(&server, "admin", &["member", "list", "--json"], ""));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["admin", "alpha", "carol"]);

    // Rotation of alpha's key with `identity new` + `key add` + `key revoke`.
    let dave = server.dir().join("dave-keys");
    let out = ok(&hf(
        &server,
        "alpha",
        &["identity", "new", dave.to_str().unwrap(), "--name", "dave"],
        "",
    ));
    for file in ["tls.key", "tls.csr", "signing.key", "signing.pub"] {
        assert!(dave.join(file).exists(), "{file}");
    }
    let new_key = crypto::read_public_key(&dave.join("signing.pub")).unwrap();
    assert!(out.contains(&crypto::key_id(&new_key)), "{out}");
    let pub_key = dave.join("signing.pub");
    let out = ok(&hf(
        &server,
        "admin",
        &[
            "key",
            "add",
            "alpha",
            "--public-key",
            pub_key.to_str().unwrap(),
        ],
        "",
    ));
    assert_eq!(out, "logged at index 6\n");
    let keys = json(&hf(
        &server,
        "admin",
        &["key", "list", "alpha", "--json"],
        "",
    ));
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert_eq!(keys[1]["keyid"], crypto::key_id(&new_key));
    assert_eq!(keys[1]["valid_from_log_index"], 6);
    let old = keys[0]["keyid"].as_str().unwrap().to_owned();
    let out = ok(&hf(&server, "admin", &["key", "revoke", "alpha", &old], ""));
    assert_eq!(out, "logged at index 7\n");
    let keys = json(&hf(
        &server,
        "admin",
        &["key", "list", "alpha", "--json"],
        "",
    ));
    assert_eq!(keys[0]["revoked_at_log_index"], 7, "{keys}");

    // Refusals are one line with the code name and, from the server, the reason.
    for (member, args, code, reason) in [
        (
            "admin",
            vec!["member", "suspend", "nobody"],
            "NOT_FOUND",
            Some("UNKNOWN_MEMBER"),
        ),
        (
            "alpha",
            vec!["member", "suspend", "carol"],
            "PERMISSION_DENIED",
            Some("MISSING_ROLE"),
        ),
        (
            "admin",
            vec!["member", "reinstate", "alpha"],
            "FAILED_PRECONDITION",
            Some("NOT_SUSPENDED"),
        ),
        (
            "admin",
            vec!["key", "revoke", "alpha", &old],
            "FAILED_PRECONDITION",
            Some("KEY_REVOKED"),
        ),
        (
            "admin",
            vec!["member", "set-roles", "alpha", "boss"],
            "INVALID_ARGUMENT",
            None,
        ),
    ] {
        refused(&hf(&server, member, &args, ""), code, reason);
    }
}

/// `member cert add|remove` rotates a member's TLS certificate: the new one works at once,
/// the old one stops, and the last one cannot be unbound.
#[tokio::test]
async fn certificates_rotate_through_the_cli() {
    let server = TestServer::start(&["alpha"]).await;
    let (_, new_fingerprint) = server.issue_identity("alpha-2027");
    let new_cert = server.identity_dir("alpha-2027").join("tls.crt");
    let old_cert = server.identity_dir("alpha").join("tls.crt");
    let out = ok(&hf(
        &server,
        "admin",
        &[
            "member",
            "cert",
            "add",
            "alpha",
            "--cert",
            new_cert.to_str().unwrap(),
        ],
        "",
    ));
    assert_eq!(out, "logged at index 1\n");
    // The new certificate speaks for alpha at once.
    let shown = json(&hf(
        &server,
        "alpha-2027",
        &["member", "show", "alpha", "--json"],
        "",
    ));
    assert_eq!(shown["cert_sha256"].as_array().unwrap().len(), 2);

    let out = ok(&hf(
        &server,
        "admin",
        &[
            "member",
            "cert",
            "remove",
            "alpha",
            "--cert",
            old_cert.to_str().unwrap(),
        ],
        "",
    ));
    assert_eq!(out, "logged at index 2\n");
    refused(
        &hf(&server, "alpha", &["member", "list"], ""),
        "UNAUTHENTICATED",
        Some("UNKNOWN_CERTIFICATE"),
    );
    let shown = json(&hf(
        &server,
        "alpha-2027",
        &["member", "show", "alpha", "--json"],
        "",
    ));
    assert_eq!(
        shown["cert_sha256"],
        serde_json::json!([hex::encode(&new_fingerprint)])
    );
    assert_eq!(shown["retired_cert_sha256"].as_array().unwrap().len(), 1);

    let fingerprint = hex::encode(&new_fingerprint);
    refused(
        &hf(
            &server,
            "admin",
            &[
                "member",
                "cert",
                "remove",
                "alpha",
                "--sha256",
                &fingerprint,
            ],
            "",
        ),
        "FAILED_PRECONDITION",
        Some("LAST_CERTIFICATE"),
    );
}

/// Signs a PEM certificate signing request with a CA: what the forum's CA does outside
/// hashforum.
fn sign_csr(ca: &hashforum::pki::Ca, csr_pem: &str) -> String {
    let key = rcgen::KeyPair::from_pem(&ca.certified.key_pem).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.certified.cert_pem, key).unwrap();
    rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .unwrap()
        .signed_by(&issuer)
        .unwrap()
        .pem()
}

/// Completes a directory made by `identity new` (and holding its signed `tls.crt`) into an
/// identity: the forum CA and `identity.toml`.
fn complete_identity(
    dir: &Path,
    ca: &hashforum::pki::Ca,
    member: &str,
    origin: &str,
    server: &str,
) {
    std::fs::write(dir.join("ca.crt"), &ca.certified.cert_pem).unwrap();
    std::fs::write(
        dir.join("identity.toml"),
        format!(
            "member = \"{member}\"\norigin = \"{origin}\"\nserver = \"{server}\"\n\
             server-name = \"localhost\"\n"
        ),
    )
    .unwrap();
}

/// The production path: external CA, `init` without `--dev`, members' own keys, a submission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_forum_from_an_external_ca() {
    let origin = "forum.example/hashes";
    let tmp = tempfile::tempdir().unwrap();
    let path = |p: &str| tmp.path().join(p);
    let ca = hashforum::pki::Ca::new("Example Forum CA").unwrap();
    let server_cert = ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
    std::fs::write(path("ca.crt"), &ca.certified.cert_pem).unwrap();
    std::fs::write(path("server.crt"), &server_cert.cert_pem).unwrap();
    std::fs::write(path("server.key"), &server_cert.key_pem).unwrap();

    let run = |args: &[&str]| {
        let mut cmd = hashforum_bin();
        cmd.args(args).env("RUST_LOG", "off");
        run_with_timeout(cmd, b"", CHILD_TIMEOUT)
    };
    let admin_dir = path("admin");
    ok(&run(&[
        "identity",
        "new",
        admin_dir.to_str().unwrap(),
        "--name",
        "forum-admin",
    ]));
    let csr = std::fs::read_to_string(admin_dir.join("tls.csr")).unwrap();
    std::fs::write(admin_dir.join("tls.crt"), sign_csr(&ca, &csr)).unwrap();
    let forum = path("forum");
    let out = ok(&run(&[
        "init",
        forum.to_str().unwrap(),
        "--ca-cert",
        path("ca.crt").to_str().unwrap(),
        "--server-cert",
        path("server.crt").to_str().unwrap(),
        "--server-key",
        path("server.key").to_str().unwrap(),
        "--admin-id",
        "forum-admin",
        "--admin-cert",
        admin_dir.join("tls.crt").to_str().unwrap(),
        "--admin-public-key",
        admin_dir.join("signing.pub").to_str().unwrap(),
        "--origin",
        origin,
    ]));
    assert!(out.starts_with("created forum in "), "{out}");
    assert!(
        !forum.join("ca").exists(),
        "no dev CA in a production forum"
    );
    assert!(forum.join("server/log.pub").exists());

    let mut server = ServeProcess::start(&forum.join("server/hashforum.toml"))
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    complete_identity(&admin_dir, &ca, "forum-admin", origin, &server.addr);
    let admin = |args: &[&str]| hf_as(&admin_dir, None, args, "");
    let shown = json(&admin(&["member", "show", "forum-admin", "--json"]));
    assert_eq!(shown["roles"], serde_json::json!(["admin", "reader"]));
    assert_eq!(shown["added_at_log_index"], 0);

    // The member makes its keys; the forum's CA signs its request; the admin adds it.
    let acme_dir = path("acme");
    ok(&run(&[
        "identity",
        "new",
        acme_dir.to_str().unwrap(),
        "--name",
        "acme",
    ]));
    let csr = std::fs::read_to_string(acme_dir.join("tls.csr")).unwrap();
    std::fs::write(path("acme.crt"), sign_csr(&ca, &csr)).unwrap();
    let out = ok(&admin(&[
        "member",
        "add",
        "acme",
        "--roles",
        "contributor,reader",
        "--display-name",
        "Acme Video",
        "--cert",
        path("acme.crt").to_str().unwrap(),
        "--public-key",
        acme_dir.join("signing.pub").to_str().unwrap(),
    ]));
    assert_eq!(out, "logged at index 1\nlogged at index 2\n");
    std::fs::copy(path("acme.crt"), acme_dir.join("tls.crt")).unwrap();
    complete_identity(&acme_dir, &ca, "acme", origin, &server.addr);

    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let out = ok(&hf_as(
        &acme_dir,
        None,
        &["submit", "--type", "md5", "--value", md5],
        "",
    ));
    assert_eq!(out, format!("md5:{md5} submitted: log index 3\n"));
    let found = json(&admin(&[
        "lookup", "--type", "md5", "--value", md5, "--json",
    ]));
    assert_eq!(found["first_submitter"], "acme");
    // The admin has no contributor role: it may not submit as itself.
    refused(
        &admin(&["submit", "--type", "md5", "--value", md5]),
        "PERMISSION_DENIED",
        Some("MISSING_ROLE"),
    );
    // `--issue-identity` needs a dev CA, which a production forum does not have.
    let out = admin(&[
        "member",
        "add",
        "bob",
        "--roles",
        "reader",
        "--issue-identity",
        path("bob").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dev CA"),
        "{out:?}"
    );

    server.signal("TERM");
    let status = tokio::task::block_in_place(|| server.wait(CHILD_TIMEOUT));
    assert!(status.success(), "{status}: {}", server.stderr());
}

/// `hashforum bench` runs a small benchmark end to end: ingest beside its verification ceiling,
/// and lookups at 0, 1 and 100% hits over records flushed to SST files, beside in process.
#[test]
fn bench_runs_and_prints_its_figures() {
    let mut cmd = hashforum_bin();
    cmd.args([
        "bench",
        "--entries",
        "2000",
        "--records",
        "5000",
        "--lookups",
        "3000",
        "--rounds",
        "1",
        "--json",
    ])
    .env("RUST_LOG", "off");
    let out = ok(&run_with_timeout(cmd, b"", CHILD_TIMEOUT));
    let report: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let median = |v: &serde_json::Value| v["median"].as_f64().expect(&out);
    assert!(median(&report["ingest_entries_per_s"]) > 0.0, "{out}");
    assert!(median(&report["verify_only_per_s"]) > 0.0, "{out}");
    assert!(
        report["ingest_vs_verify"].as_f64().expect(&out) > 0.0,
        "{out}"
    );
    // Every record was flushed to SST files before the lookups.
    assert_eq!(report["store"]["records_in_memtables"], 0, "{out}");
    let files: u64 = report["store"]["records_sst_files_per_level"]
        .as_array()
        .expect(&out)
        .iter()
        .map(|n| n.as_u64().expect(&out))
        .sum();
    assert!(files > 0, "{out}");
    let phases = report["lookups_per_s"].as_array().expect(&out);
    let hits: Vec<u64> = phases
        .iter()
        .map(|p| p["hit_percent"].as_u64().expect(&out))
        .collect();
    assert_eq!(hits, [0, 1, 100], "{out}");
    for phase in phases {
        assert!(median(&phase["grpc_lookups_per_s"]) > 0.0, "{out}");
        assert!(median(&phase["in_process_lookups_per_s"]) > 0.0, "{out}");
    }
}

/// The transparency log through the CLI: receipts written by `submit --receipt` and the whole
/// log verify offline with `forum.vkey` alone; a flipped byte is found at its index.
#[tokio::test(flavor = "multi_thread")]
async fn receipts_and_logs_verify_offline_through_the_cli() {
    let mut server = TestServer::start(&["alpha"]).await;
    let dir = server.dir().to_owned();
    let vkey = dir.join("forum.vkey");
    let vkey = vkey.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = |name: &str| out.path().join(name).to_str().unwrap().to_owned();
    let offline = |args: &[&str]| {
        let mut cmd = hashforum_bin();
        cmd.args(args).env("RUST_LOG", "off");
        run_with_timeout(cmd, b"", CHILD_TIMEOUT)
    };

    // One hash, its receipt and entry; then a batch into a directory.
    let receipt = path("one.tlog-proof");
    let value = sha256_value(1);
    ok(&hf(
        &server,
        "alpha",
        &[
            "submit",
            "--type",
            "sha256",
            "--value",
            &value,
            "--receipt",
            &receipt,
        ],
        "",
    ));
    let entry = path("one.entry");
    let verified = json(&offline(&[
        "verify",
        "--vkey",
        vkey,
        "--receipt",
        &receipt,
        "--entry",
        &entry,
        "--json",
    ]));
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["log_index"], 1);
    assert_eq!(verified["author"], "alpha");
    assert_eq!(verified["action"], "hash_submission");
    let batch: String = (2..40)
        .map(|n| format!("sha256:{}\n", sha256_value(n)))
        .collect();
    let receipts = path("receipts");
    ok(&hf(
        &server,
        "alpha",
        &["submit", "--batch", "-", "--receipt", &receipts],
        &batch,
    ));
    for index in 2..40 {
        let r = format!("{receipts}/{index}.tlog-proof");
        let e = format!("{receipts}/{index}.entry");
        ok(&offline(&[
            "verify",
            "--vkey",
            vkey,
            "--receipt",
            &r,
            "--entry",
            &e,
        ]));
    }
    // The receipt is not for another entry, and a changed entry does not verify.
    let other = format!("{receipts}/2.entry");
    let out2 = offline(&[
        "verify",
        "--vkey",
        vkey,
        "--receipt",
        &receipt,
        "--entry",
        &other,
    ]);
    assert!(!out2.status.success(), "{out2:?}");
    assert!(String::from_utf8_lossy(&out2.stdout).starts_with("NOT verified: "));

    // The log's bytes, exactly: the checkpoint note and one entry.
    let note = hf(&server, "alpha", &["log", "checkpoint"], "").stdout;
    let mut client = server.client("alpha").await;
    let served = client
        .log
        .get_checkpoint(hashforum::pb::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner()
        .note;
    assert_eq!(note, served);
    let raw = hf(&server, "alpha", &["log", "entry", "1", "--raw"], "").stdout;
    assert_eq!(raw, std::fs::read(&entry).unwrap());
    let text = ok(&hf(&server, "alpha", &["log", "entries", "0..3"], ""));
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .contains("hash_submission by alpha"),
        "{text}"
    );
    let proof = ok(&hf(
        &server,
        "alpha",
        &["log", "proof", "inclusion", "--index", "1"],
        "",
    ));
    assert!(proof.lines().count() >= 5, "{proof}");
    ok(&hf(
        &server,
        "alpha",
        &["log", "proof", "consistency", "--old", "2"],
        "",
    ));

    // An export of every entry replays and matches the checkpoint.
    let export = ok(&hf(
        &server,
        "alpha",
        &["log", "entries", "0..", "--json"],
        "",
    ));
    assert_eq!(export.lines().count(), 40);
    std::fs::write(path("log.jsonl"), &export).unwrap();
    std::fs::write(path("checkpoint"), &note).unwrap();
    let verified = json(&offline(&[
        "verify",
        "--vkey",
        vkey,
        "--entries",
        &path("log.jsonl"),
        "--checkpoint",
        &path("checkpoint"),
        "--json",
    ]));
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["entries"], 40);
    // Reordered entries are refused: at the first out-of-place index; or, with their index
    // labels kept, because their tree is not the one the checkpoint signed.
    let mut lines: Vec<String> = export.lines().map(str::to_owned).collect();
    lines.swap(5, 6);
    std::fs::write(path("swapped.jsonl"), lines.join("\n")).unwrap();
    let relabel = |line: &str, index: u64| {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["index"] = index.into();
        v.to_string()
    };
    lines[5] = relabel(&lines[5], 5);
    lines[6] = relabel(&lines[6], 6);
    std::fs::write(path("relabelled.jsonl"), lines.join("\n")).unwrap();
    let relabelled = failed_json(&offline(&[
        "verify",
        "--vkey",
        vkey,
        "--entries",
        &path("relabelled.jsonl"),
        "--checkpoint",
        &path("checkpoint"),
        "--json",
    ]));
    assert!(
        relabelled["reason"]
            .as_str()
            .unwrap()
            .contains("root differs"),
        "{relabelled}"
    );
    let swapped = failed_json(&offline(&[
        "verify",
        "--vkey",
        vkey,
        "--entries",
        &path("swapped.jsonl"),
        "--checkpoint",
        &path("checkpoint"),
        "--json",
    ]));
    assert_eq!(swapped["verified"], false);
    assert_eq!(swapped["first_bad_index"], 5, "{swapped}");

    // The data directory, server stopped: verified; then one flipped byte in entry 17's
    // stored bytes is found at index 17.
    server.stop().await;
    let data = dir.join("server/data");
    let data = data.to_str().unwrap();
    let verified = json(&offline(&[
        "verify", "--vkey", vkey, "--data", data, "--json",
    ]));
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["entries"], 40);
    {
        let store = hashforum::storage::Store::open(std::path::Path::new(data)).unwrap();
        let mut leaf = store.entry(17).unwrap().unwrap();
        let at = leaf.len() / 2;
        leaf[at] ^= 0x01;
        let mut batch = store.batch();
        batch.put_entry(17, &leaf);
        store.commit(batch).unwrap();
    }
    let tampered = failed_json(&offline(&[
        "verify", "--vkey", vkey, "--data", data, "--json",
    ]));
    assert_eq!(tampered["first_bad_index"], 17, "{tampered}");
    // A change that leaves the author's signature valid (the sequencing time of entry 39, the last), with
    // its tree hash rewritten to match: the signed checkpoints still catch it.
    {
        use prost::Message;
        let store = hashforum::storage::Store::open(std::path::Path::new(data)).unwrap();
        let mut batch = store.batch();
        batch.put_entry(17, &std::fs::read(format!("{receipts}/17.entry")).unwrap());
        let stored = store.entry(39).unwrap().unwrap();
        let mut entry = hashforum::pb::LogEntry::decode(stored.as_slice()).unwrap();
        entry.sequenced_at_unix_ms += 1;
        let leaf = entry.encode_to_vec();
        batch.put_entry(39, &leaf);
        batch.put_tree_hashes(
            hashforum::log::tree::stored_hash_index(0, 39),
            &[hashforum::log::leaf_hash(&leaf).into()],
        );
        store.commit(batch).unwrap();
    }
    let tampered = failed_json(&offline(&[
        "verify", "--vkey", vkey, "--data", data, "--json",
    ]));
    let reason = tampered["reason"].as_str().unwrap();
    assert!(reason.contains("root differs"), "{tampered}");
    // A vkey of another key verifies nothing.
    std::fs::write(
        path("other.vkey"),
        hashforum::log::checkpoint::vkey(
            hashforum::forum::DEV_ORIGIN,
            &crypto::generate_key().verifying_key(),
        ),
    )
    .unwrap();
    let other = offline(&[
        "verify",
        "--vkey",
        &path("other.vkey"),
        "--receipt",
        &receipt,
        "--entry",
        &entry,
    ]);
    assert!(!other.status.success());
}

/// `verify --witness --quorum`: a real receipt whose checkpoint carries two cosignatures
/// (made here with `Cosigner`) verifies with a quorum of them and lists who cosigned and when;
/// an unmet quorum, a bad cosignature or none at all fail with exit 1 and the count; a
/// checkpoint alone is checked the same way.
#[tokio::test(flavor = "multi_thread")]
async fn witness_quorums_verify_through_the_cli() {
    use hashforum::log::checkpoint::LogVerifier;
    use hashforum::log::cosignature::{with_lines, Cosigner};
    use hashforum::log::proof::Receipt;

    let server = TestServer::start(&["alpha"]).await;
    let vkey = server.dir().join("forum.vkey");
    let out = tempfile::tempdir().unwrap();
    let path = |name: &str| out.path().join(name).to_str().unwrap().to_owned();
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(path(name), bytes).unwrap();
        path(name)
    };
    let receipt = path("one.tlog-proof");
    ok(&hf(
        &server,
        "alpha",
        &[
            "submit",
            "--type",
            "sha256",
            "--value",
            &sha256_value(1),
            "--receipt",
            &receipt,
        ],
        "",
    ));
    let entry = path("one.entry");
    let mut parsed = Receipt::parse(&std::fs::read(&receipt).unwrap()).unwrap();
    let checkpoint = LogVerifier::from_vkey(&std::fs::read_to_string(&vkey).unwrap())
        .unwrap()
        .verify(&parsed.checkpoint)
        .unwrap();
    let witness = |n: u8| {
        Cosigner::new(
            &format!("replica{n}.forum.example/witness"),
            ed25519_dalek::SigningKey::from_bytes(&[n; 32]),
        )
        .unwrap()
    };
    let (w1, w2, w3) = (witness(1), witness(2), witness(3));
    let note = with_lines(
        &parsed.checkpoint,
        &[
            w1.cosign(&checkpoint, 1_764_300_000),
            w2.cosign(&checkpoint, 1_764_300_060),
        ],
    );
    parsed.checkpoint.clone_from(&note);
    let cosigned = write("cosigned.tlog-proof", &parsed.encode());
    let note_file = write("cosigned.note", &note);
    let w1_file = write("w1.vkey", format!("{}\n", w1.vkey()).as_bytes());
    let w3_file = write("w3.vkey", w3.vkey().as_bytes());
    let w2_text = w2.vkey();
    let verify = |what: &[&str], extra: &[&str]| {
        let mut cmd = hashforum_bin();
        cmd.args(["verify", "--vkey", vkey.to_str().unwrap()])
            .args(what)
            .args(extra)
            .env("RUST_LOG", "off");
        run_with_timeout(cmd, b"", CHILD_TIMEOUT)
    };
    let with_receipt = ["--receipt", cosigned.as_str(), "--entry", entry.as_str()];
    let all = [
        "--witness",
        w1_file.as_str(),
        "--witness",
        w2_text.as_str(),
        "--witness",
        w3_file.as_str(),
    ];

    // Two of three, with --quorum 2: verified, and who cosigned when.
    let two_of_three = [&all[..], &["--quorum", "2"]].concat();
    let text = ok(&verify(&with_receipt, &two_of_three));
    let mut lines = text.lines();
    assert!(
        lines.next().unwrap().starts_with("verified: entry 1 "),
        "{text}"
    );
    assert_eq!(
        lines.next().unwrap(),
        "cosigned by 2 of 3 witnesses (2 required): replica1.forum.example/witness at \
         2025-11-28T03:20:00Z, replica2.forum.example/witness at 2025-11-28T03:21:00Z"
    );
    let v = json(&verify(
        &with_receipt,
        &[&two_of_three[..], &["--json"]].concat(),
    ));
    assert_eq!(v["verified"], true);
    assert_eq!(v["log_index"], 1);
    assert_eq!(v["witnesses"]["required"], 2);
    assert_eq!(v["witnesses"]["given"], 3);
    assert_eq!(
        v["witnesses"]["cosigned"],
        serde_json::json!([
            {"name": "replica1.forum.example/witness", "time": 1_764_300_000u64, "at": "2025-11-28T03:20:00Z"},
            {"name": "replica2.forum.example/witness", "time": 1_764_300_060u64, "at": "2025-11-28T03:21:00Z"},
        ])
    );
    // Without --witness the cosigned receipt verifies as before; --witness once and a repeat of
    // one witness need that one.
    let v = json(&verify(&with_receipt, &["--json"]));
    assert_eq!(v["verified"], true);
    assert!(v["witnesses"].is_null());
    ok(&verify(
        &with_receipt,
        &["--witness", &w2_text, "--witness", &w2_text],
    ));

    // All three (the default quorum), or --quorum 3: not verified, exit 1, with the count.
    let missing = verify(&with_receipt, &all);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert_eq!(
        String::from_utf8_lossy(&missing.stdout),
        "NOT verified: checkpoint cosignatures: 2 of 3 witnesses cosigned the checkpoint \
         (replica1.forum.example/witness, replica2.forum.example/witness), 3 required\n"
    );
    let v = failed_json(&verify(
        &with_receipt,
        &[&all[..], &["--quorum", "3", "--json"]].concat(),
    ));
    assert_eq!(v["verified"], false);
    assert!(v["reason"].as_str().unwrap().contains("2 of 3"), "{v}");
    // The receipt as the server wrote it carries no cosignature.
    let plain = verify(
        &["--receipt", &receipt, "--entry", &entry],
        &["--witness", &w1_file],
    );
    assert_eq!(plain.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&plain.stdout).contains("0 of 1 witnesses"));
    // A cosignature by witness 3 of another checkpoint fails the receipt, whatever the quorum.
    let other = hashforum::log::checkpoint::SignedCheckpoint {
        head: checkpoint.head,
        note: String::from_utf8(checkpoint.note.clone())
            .unwrap()
            .replacen('\n', "x\n", 1)
            .into_bytes(),
    };
    parsed.checkpoint = with_lines(&note, &[w3.cosign(&other, 1_764_300_000)]);
    let bad = write("bad.tlog-proof", &parsed.encode());
    let out3 = verify(
        &["--receipt", &bad, "--entry", &entry],
        &[&all[..], &["--quorum", "1"]].concat(),
    );
    assert_eq!(out3.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out3.stdout).contains("does not verify"),
        "{out3:?}"
    );

    // A checkpoint alone.
    let text = ok(&verify(
        &["--checkpoint", &note_file],
        &["--witness", &w1_file, "--witness", &w2_text],
    ));
    assert!(
        text.starts_with("verified: the checkpoint of hashforum.dev/forum at tree size "),
        "{text}"
    );
    assert!(
        text.contains("cosigned by 2 of 2 witnesses (2 required)"),
        "{text}"
    );
    let v = failed_json(&verify(
        &["--checkpoint", &note_file],
        &["--witness", &w3_file, "--json"],
    ));
    assert_eq!(
        v["reason"],
        "checkpoint cosignatures: 0 of 1 witnesses cosigned the checkpoint (none), 1 required"
    );

    // Usage errors: a quorum above the witnesses given, a bad vkey, --checkpoint alone without
    // --witness, --witness with a log replay.
    for (what, extra, expected) in [
        (
            &with_receipt[..],
            &["--witness", w1_file.as_str(), "--quorum", "2"][..],
            "--quorum 2",
        ),
        (
            &with_receipt[..],
            &["--witness", "nonsense"][..],
            "--witness nonsense",
        ),
        (
            &with_receipt[..],
            &["--witness", vkey.to_str().unwrap()][..],
            "0x01",
        ),
        (
            &["--checkpoint", note_file.as_str()][..],
            &[][..],
            "--witness",
        ),
        (
            &["--data", note_file.as_str()][..],
            &["--witness", w1_file.as_str()][..],
            "--witness",
        ),
    ] {
        let out = verify(what, extra);
        assert!(!out.status.success(), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

/// Opinions, retractions, withdrawals and incidents with the CLI: each prints its log index,
/// lookups show status, tallies, opinions, retractions, withdrawal and incident, refusals are
/// one line with the code and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_and_incidents_through_the_cli() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let md5 = "0123456789abcdef0123456789abcdef";
    let hash = ["--type", "md5", "--value", md5];
    let declared = json(&hf(
        &server,
        "admin",
        &[
            "incident",
            "declare",
            "--id",
            "buffalo-2022",
            "--title",
            "Buffalo",
            "--level",
            "cip",
            "--json",
        ],
        "",
    ));
    assert_eq!(declared["log_index"], 1);
    ok(&hf(
        &server,
        "alpha",
        &[&["submit"], &hash[..], &["--incident", "buffalo-2022"]].concat(),
        "",
    ));
    let opinion = json(&hf(
        &server,
        "beta",
        &[
            &["opinion", "false-positive"],
            &hash[..],
            &["--reason", "a cat", "--json"],
        ]
        .concat(),
        "",
    ));
    assert_eq!(opinion["log_index"], 3);
    let record = json(&hf(
        &server,
        "alpha",
        &[&["lookup"], &hash[..], &["--json"]].concat(),
        "",
    ));
    assert_eq!(record["status"], "disputed");
    assert_eq!(record["tallies"]["false_positive"], 1);
    assert_eq!(record["opinions"][0]["member"], "beta");
    assert_eq!(record["opinions"][0]["opinion"], "false_positive");
    assert_eq!(record["opinions"][0]["reason"], "a cat");
    assert_eq!(record["submitters"][0]["incident"], "buffalo-2022");
    assert_eq!(record["submitters"][0]["retracted"], false);

    ok(&hf(
        &server,
        "alpha",
        &[&["retract"], &hash[..], &["--reason", "mislabelled"]].concat(),
        "",
    ));
    let text = ok(&hf(
        &server,
        "alpha",
        &[&["lookup"], &hash[..]].concat(),
        "",
    ));
    assert!(
        text.starts_with(&format!(
            "md5:{md5} found (retracted): submitted by 1 member(s)"
        )),
        "{text}"
    );
    assert!(text.contains("retracted at log index 4"), "{text}");
    assert!(text.contains("incident buffalo-2022"), "{text}");
    assert!(text.contains("false_positive"), "{text}");

    refused(
        &hf(
            &server,
            "beta",
            &[&["withdraw"], &hash[..], &["--reason", "mine"]].concat(),
            "",
        ),
        "PERMISSION_DENIED",
        Some("MISSING_ROLE"),
    );
    ok(&hf(
        &server,
        "admin",
        &[&["withdraw"], &hash[..], &["--reason", "appeal 12"]].concat(),
        "",
    ));
    let record = json(&hf(
        &server,
        "alpha",
        &[&["lookup"], &hash[..], &["--json"]].concat(),
        "",
    ));
    assert_eq!(record["status"], "withdrawn");
    assert_eq!(record["withdrawal"]["member"], "admin");
    assert_eq!(record["withdrawal"]["reason"], "appeal 12");
    assert_eq!(
        record["submitters"][0]["retraction"]["reason"],
        "mislabelled"
    );

    let listed = json(&hf(&server, "alpha", &["incident", "list", "--json"], ""));
    assert_eq!(
        (&listed["incident_id"], &listed["level"], &listed["open"]),
        (&"buffalo-2022".into(), &"cip".into(), &true.into())
    );
    ok(&hf(
        &server,
        "admin",
        &[
            "incident",
            "close",
            "--id",
            "buffalo-2022",
            "--reason",
            "over",
        ],
        "",
    ));
    let line = ok(&hf(&server, "beta", &["incident", "list"], ""));
    assert!(line.starts_with("buffalo-2022\tclosed at "), "{line}");
    refused(
        &hf(
            &server,
            "alpha",
            &[
                "submit",
                "--type",
                "md5",
                "--value",
                &"e".repeat(32),
                "--incident",
                "buffalo-2022",
            ],
            "",
        ),
        "FAILED_PRECONDITION",
        Some("INCIDENT_CLOSED"),
    );
    refused(
        &hf(
            &server,
            "alpha",
            &[&["opinion", "agree"], &hash[..]].concat(),
            "",
        ),
        "FAILED_PRECONDITION",
        Some("HASH_WITHDRAWN"),
    );
}

/// `--server host:port`, as people type it, without the scheme: the same server over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_address_without_a_scheme_is_taken() {
    let server = TestServer::start(&["alpha"]).await;
    let bare = server.addr.strip_prefix("https://").unwrap();
    let out = hf_as(
        &server.identity_dir("alpha"),
        Some(bare),
        &["status", "--json"],
        "",
    );
    let status: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(status["mode"], "primary");
}

/// Hex typed or pasted in upper case is lowered by the CLI (the wire takes lowercase only):
/// as `--value`, and in batch lines.
#[tokio::test(flavor = "multi_thread")]
async fn hex_in_upper_case_is_lowered() {
    let server = TestServer::start(&["alpha"]).await;
    let upper = "0123456789ABCDEF0123456789ABCDEF";
    let lower = upper.to_ascii_lowercase();
    ok(&hf(
        &server,
        "alpha",
        &["submit", "--type", "md5", "--value", upper],
        "",
    ));
    let found = json(&hf(
        &server,
        "alpha",
        &["lookup", "--type", "md5", "--value", &lower, "--json"],
        "",
    ));
    assert_eq!(found["found"], true, "{found}");
    assert_eq!(found["value"], lower.as_str());
    let batch = ok(&hf(
        &server,
        "alpha",
        &["lookup", "--batch", "-", "--json"],
        &format!("md5:{upper}\n"),
    ));
    let line: serde_json::Value = serde_json::from_str(batch.trim()).unwrap();
    assert_eq!(
        (line["found"].as_bool(), line["value"].as_str()),
        (Some(true), Some(lower.as_str()))
    );
}

/// Client options work before the subcommand as well as after it, and override the
/// environment either way.
#[tokio::test(flavor = "multi_thread")]
async fn client_options_before_the_subcommand_are_taken() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity_dir("alpha");
    let alpha = alpha.to_str().unwrap();
    let value = "ab".repeat(32);
    // The environment names no server that answers; --server before the subcommand does.
    let mut cmd: Command = hashforum_bin();
    cmd.args([
        "--identity",
        alpha,
        "--server",
        &server.addr,
        "--json",
        "submit",
        "--type",
        "sha256",
        "--value",
        &value,
    ])
    .env("HASHFORUM_SERVER", "127.0.0.1:1")
    .env_remove("HASHFORUM_IDENTITY")
    .env("RUST_LOG", "off");
    let out = ok(&run_with_timeout(cmd, b"", CHILD_TIMEOUT));
    let receipt: serde_json::Value = serde_json::from_str(out.trim()).expect("--json took");
    assert!(receipt.is_object(), "{receipt}");
    let mut cmd: Command = hashforum_bin();
    cmd.args([
        &format!("--server={}", server.addr),
        "lookup",
        "--identity",
        alpha,
        "--type",
        "sha256",
        "--value",
        &value,
        "--json",
    ])
    .env("HASHFORUM_SERVER", "127.0.0.1:1")
    .env("RUST_LOG", "off");
    let found = json(&run_with_timeout(cmd, b"", CHILD_TIMEOUT));
    assert_eq!(found["found"], true, "{found}");
    // A subcommand that takes no client options refuses them before it too.
    let mut cmd: Command = hashforum_bin();
    cmd.args(["--identity", alpha, "hash", "Cargo.toml"]);
    let out = run_with_timeout(cmd, b"", CHILD_TIMEOUT);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--identity"),
        "{out:?}"
    );
}
