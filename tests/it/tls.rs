//! Certificates made outside hashforum, with `openssl` as `docs/operations.md` says, and the
//! server's certificate replaced while it serves (issue 11, item 4).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hashforum::client::Client;
use hashforum::identity::Identity;
use hashforum::pb;

use crate::cli::{hf_as, json, ok};
use crate::harness::{hashforum_bin, run_with_timeout, ServeProcess, CHILD_TIMEOUT};

/// Runs `openssl ARGS` in `dir`; fails the test if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A P-256 key and a certificate request for `cn`, as `NAME.key` and `NAME.csr`.
fn key_and_request(dir: &Path, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    set_private(&dir.join(format!("{name}.key")));
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Signs `NAME.csr` with the CA in `dir` into `NAME.crt`, with these extensions.
fn sign(dir: &Path, name: &str, extensions: &[&str]) {
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, extensions.join("\n") + "\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            ext.to_str().unwrap(),
        ],
    );
}

const SERVER_EXT: [&str; 3] = [
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "extendedKeyUsage=serverAuth",
    "keyUsage=critical,digitalSignature",
];

/// The SHA-256 fingerprint of the certificate the server at `addr` presents now, on a new
/// connection, as `openssl s_client` sees it (with the admin's client certificate).
fn served_fingerprint(pki: &Path, addr: &str, admin: &Path) -> String {
    let host = addr.trim_start_matches("https://");
    let script = format!(
        "openssl s_client -connect {host} -servername localhost -CAfile ca.crt \
         -cert {cert} -key {key} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        cert = admin.join("tls.crt").display(),
        key = admin.join("tls.key").display(),
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .current_dir(pki)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn file_fingerprint(pki: &Path, cert: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", cert])
        .current_dir(pki)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits until the server presents `want` to new connections.
fn wait_for_served(pki: &Path, addr: &str, admin: &Path, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let served = served_fingerprint(pki, addr, admin);
        if served == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server still presents {served:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Replaces the server's certificate and key files with `NAME.crt` and `KEY.key`.
fn install(pki: &Path, server_dir: &Path, cert: &str, key: &str) {
    std::fs::copy(pki.join(format!("{cert}.crt")), server_dir.join("tls.crt")).unwrap();
    std::fs::copy(pki.join(format!("{key}.key")), server_dir.join("tls.key")).unwrap();
    set_private(&server_dir.join("tls.key"));
}

/// A forum whose CA, server certificate and admin certificate are all made by `openssl`
/// serves; its server certificate is then replaced on `SIGHUP` and on a file change, without a
/// restart: open connections go on, new ones get the new certificate, and a key that does not
/// match its certificate is refused while the old pair stays in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_certificates_serve_and_rotate_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    openssl(
        &pki,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=Example Forum CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    for name in ["server-1", "server-2", "server-3"] {
        key_and_request(&pki, name, "localhost");
        sign(&pki, name, &SERVER_EXT);
    }

    // The admin makes its own keys; the CA signs its request with openssl.
    let admin: PathBuf = tmp.path().join("admin");
    let mut new_identity = hashforum_bin();
    new_identity
        .args(["identity", "new"])
        .arg(&admin)
        .args(["--name", "forum-admin"]);
    ok(&run_with_timeout(new_identity, b"", CHILD_TIMEOUT));
    std::fs::copy(admin.join("tls.csr"), pki.join("admin.csr")).unwrap();
    sign(
        &pki,
        "admin",
        &[
            "extendedKeyUsage=clientAuth",
            "keyUsage=critical,digitalSignature",
        ],
    );
    std::fs::copy(pki.join("admin.crt"), admin.join("tls.crt")).unwrap();
    std::fs::copy(pki.join("ca.crt"), admin.join("ca.crt")).unwrap();

    let forum = tmp.path().join("forum");
    let p = |name: &str| pki.join(name).to_str().unwrap().to_owned();
    let mut init = hashforum_bin();
    init.arg("init")
        .arg(&forum)
        .args(["--ca-cert", &p("ca.crt")])
        .args(["--server-cert", &p("server-1.crt")])
        .args(["--server-key", &p("server-1.key")])
        .args(["--admin-id", "forum-admin", "--admin-cert", &p("admin.crt")])
        .arg("--admin-public-key")
        .arg(admin.join("signing.pub"))
        .args(["--origin", "forum.example/hashes"]);
    ok(&run_with_timeout(init, b"", CHILD_TIMEOUT));
    let server_dir = forum.join("server");
    let server = ServeProcess::start(&server_dir.join("hashforum.toml"))
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    std::fs::write(
        admin.join("identity.toml"),
        format!(
            "member = \"forum-admin\"\norigin = \"forum.example/hashes\"\n\
             server = \"{}\"\nserver-name = \"localhost\"\n",
            server.addr
        ),
    )
    .unwrap();
    let members = |admin: &Path| json(&hf_as(admin, None, &["member", "list", "--json"], ""));
    assert_eq!(members(&admin)[0]["member_id"], "forum-admin");
    let first = file_fingerprint(&pki, "server-1.crt");
    assert_eq!(served_fingerprint(&pki, &server.addr, &admin), first);

    // A connection opened before the rotation.
    let identity = Identity::load(&admin).unwrap();
    let mut open = Client::connect(&identity, Some(&server.addr))
        .await
        .unwrap();

    // SIGHUP: new connections get the new certificate; the open one goes on.
    install(&pki, &server_dir, "server-2", "server-2");
    server.signal("HUP");
    let second = file_fingerprint(&pki, "server-2.crt");
    wait_for_served(&pki, &server.addr, &admin, &second, Duration::from_secs(10));
    assert!(server.wait_for_line("TLS certificate, key and client CA reloaded", CHILD_TIMEOUT));
    open.admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap();
    assert_eq!(members(&admin)[0]["member_id"], "forum-admin");

    // A certificate with another certificate's key: refused, the previous pair stays.
    install(&pki, &server_dir, "server-3", "server-2");
    server.signal("HUP");
    assert!(
        server.wait_for_line("TLS files refused", CHILD_TIMEOUT),
        "{}",
        server.stderr()
    );
    assert_eq!(served_fingerprint(&pki, &server.addr, &admin), second);
    assert_eq!(members(&admin)[0]["member_id"], "forum-admin");

    // Fixed, without a signal: the file change is noticed.
    install(&pki, &server_dir, "server-3", "server-3");
    let third = file_fingerprint(&pki, "server-3.crt");
    wait_for_served(&pki, &server.addr, &admin, &third, Duration::from_secs(30));
    assert_eq!(members(&admin)[0]["member_id"], "forum-admin");
    open.admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap();
}
