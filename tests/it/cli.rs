//! The `hashforum` binary, as a user runs it.

use std::process::{Command, Output};

use crate::harness::TestServer;

fn hashforum(server: &TestServer, member: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hashforum"))
        .args(args)
        .env("HASHFORUM_IDENTITY", server.identity_dir(member))
        .env("HASHFORUM_SERVER", &server.addr)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// One member submits with the CLI, another looks up with `--json`; batch forms read
/// `type:value` lines; errors are one stderr line starting with the gRPC code name.
// Multi-threaded: the CLI runs as a blocking child process while the server runs on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_and_lookup_through_the_cli() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let out = hashforum(
        &server,
        "alpha",
        &[
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
            "--json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let receipt: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(receipt["log_index"], 1);

    let out = hashforum(
        &server,
        "beta",
        &["lookup", "--type", "md5", "--value", md5, "--json"],
    );
    assert!(out.status.success(), "{out:?}");
    let found: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(found["found"], true);
    assert_eq!(found["hash_type"], "md5");
    assert_eq!(found["value"], md5);
    assert_eq!(found["submitters"][0]["member"], "alpha");
    assert_eq!(found["submitters"][0]["log_index"], 1);
    assert_eq!(found["submitters"][0]["labels"]["behaviour"], "instruction");

    let absent = "0123456789abcdef0123456789abcdef";
    let out = hashforum(
        &server,
        "beta",
        &["lookup", "--type", "md5", "--value", absent, "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let missing: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(missing["found"], false);

    // Batch forms, from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hashes.txt");
    let sha1 = "a".repeat(40);
    std::fs::write(&file, format!("# removed today\nsha1:{sha1}\nmd5:{md5}\n")).unwrap();
    let out = hashforum(
        &server,
        "beta",
        &["submit", "--batch", file.to_str().unwrap(), "--json"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).lines().count(), 2);
    std::fs::write(&file, format!("sha1:{sha1}\nmd5:{absent}\nmd5:{md5}\n")).unwrap();
    let out = hashforum(
        &server,
        "alpha",
        &["lookup", "--batch", file.to_str().unwrap(), "--json"],
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let found: Vec<bool> = lines
        .iter()
        .map(|l| l["found"].as_bool().unwrap())
        .collect();
    assert_eq!(found, vec![true, false, true]);
    assert_eq!(
        lines[2]["submitters"].as_array().unwrap().len(),
        2,
        "beta corroborated"
    );

    // A bad hash: non-zero exit and one stderr line with the code name.
    let out = hashforum(
        &server,
        "alpha",
        &["submit", "--type", "pdq", "--value", "abc"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("INVALID_ARGUMENT: "), "{err}");
    assert!(err.contains("hash_submission.value"), "{err}");
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_str(&stdout(out)).unwrap()
}

/// An admin onboards, suspends and audits a member with the CLI; the new member uses the
/// identity directory the CLI wrote; a member makes its own keys with `identity new`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_administration_through_the_cli() {
    let server = TestServer::start(&["alpha"]).await;
    let carol_dir = server.identity_dir("carol");
    let carol = carol_dir.to_str().unwrap();
    let out = hashforum(
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
    );
    assert!(out.status.success(), "{out:?}");

    let md5 = "0cc175b9c0f1b6a831c399e269772661";
    let out = hashforum(
        &server,
        "carol",
        &["submit", "--type", "md5", "--value", md5],
    );
    assert!(out.status.success(), "{out:?}");

    let shown = json(&hashforum(
        &server,
        "alpha",
        &["member", "show", "carol", "--json"],
    ));
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["roles"], serde_json::json!(["contributor", "reader"]));
    assert_eq!(shown["keys"].as_array().unwrap().len(), 1);

    let out = hashforum(
        &server,
        "admin",
        &["member", "suspend", "carol", "--reason", "audit"],
    );
    assert!(out.status.success(), "{out:?}");
    let out = hashforum(
        &server,
        "carol",
        &["lookup", "--type", "md5", "--value", md5],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("UNAUTHENTICATED:"),
        "{out:?}"
    );

    let history = json(&hashforum(
        &server,
        "admin",
        &["member", "history", "carol", "--json"],
    ));
    let actions: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["author"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("added", "admin"),
            ("key_registered", "admin"),
            ("suspended", "admin")
        ]
    );
    let listed = json(&hashforum(&server, "admin", &["member", "list", "--json"]));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["admin", "alpha", "carol"]);

    // Rotation of alpha's key with `identity new` + `key add` + `key revoke`.
    let dave = server.dir().join("dave-keys");
    let out = hashforum(
        &server,
        "alpha",
        &["identity", "new", dave.to_str().unwrap(), "--name", "dave"],
    );
    assert!(out.status.success(), "{out:?}");
    for file in ["tls.key", "tls.csr", "signing.key", "signing.pub"] {
        assert!(dave.join(file).exists(), "{file}");
    }
    let pub_key = dave.join("signing.pub");
    let out = hashforum(
        &server,
        "admin",
        &[
            "key",
            "add",
            "alpha",
            "--public-key",
            pub_key.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let keys = json(&hashforum(
        &server,
        "admin",
        &["key", "list", "alpha", "--json"],
    ));
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let old = keys[0]["keyid"].as_str().unwrap().to_owned();
    let out = hashforum(&server, "admin", &["key", "revoke", "alpha", &old]);
    assert!(out.status.success(), "{out:?}");
    let keys = json(&hashforum(
        &server,
        "admin",
        &["key", "list", "alpha", "--json"],
    ));
    assert!(keys[0]["revoked_at_log_index"].is_u64(), "{keys}");

    // Refusals are one line with the code name.
    for (member, args, code) in [
        ("admin", vec!["member", "suspend", "nobody"], "NOT_FOUND:"),
        (
            "alpha",
            vec!["member", "suspend", "carol"],
            "PERMISSION_DENIED:",
        ),
        (
            "admin",
            vec!["member", "reinstate", "alpha"],
            "FAILED_PRECONDITION:",
        ),
        (
            "admin",
            vec!["member", "set-roles", "alpha", "boss"],
            "INVALID_ARGUMENT:",
        ),
    ] {
        let out = hashforum(&server, member, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(code), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
