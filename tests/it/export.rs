//! `hashforum export --local DIR --format pytx` over a stopped server's data directory: the
//! exact lines, and python-threatexchange itself loading them and matching through its own PDQ
//! index (`tests/interop/pytx_match.py`, in the virtual environment that
//! `deploy/setup.sh --test` makes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hashforum::pb;
use hashforum::statement::{admin, hash_submission};
use hashforum::types::{ContentHash, HashType};

use crate::harness::{
    hashforum_bin, pyenv_python, run_with_timeout, sha256_value, submit_all, TestServer,
    CHILD_TIMEOUT,
};

/// A PDQ hash of pdq/data/bridge-mods, and one of its variants at distance 16.
const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
const PDQ_NEAR: &str = "d0f8f1ccc0f4a84d0a370a3a228f67f0b36e2ed5b6623e1d33e6339c4e9c9b22";
/// Other images' PDQ hashes (pdq/data/misc-images, GitHub's octocat): far from `PDQ`.
const PDQ_RETRACTED: &str = "e64cc9d91c623882f8d1f1d9a398e78c9f199b3bd83924f2b7e11e0bf861b064";
const PDQ_WITHDRAWN: &str = "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d";
const PDQ_UNRELATED: &str = "62c9789627838f69f23cf98c29e37836d61c87c31c59587c4b49a783f496725c";
const MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
const MD5_IMAGE: &str = "cab08b36195edb1a1231d2d09fa450e0";
const URL_MD5: &str = "8d777f385d3dfec8815d20f7496026dc";

/// A stopped server whose registry holds one hash of every kind an export treats differently:
/// live PDQ, unlabelled MD5, video SHA-256 and disputed URL-MD5 (written); an image's MD5 and a
/// SHA-1 (no pytx signal type); a retracted and a withdrawn PDQ (not live).
async fn stopped_registry() -> TestServer {
    let mut server = TestServer::start(&["alpha", "beta"]).await;
    let (alpha, beta) = (server.signer("alpha"), server.signer("beta"));
    let labelled = |t: HashType, value: &str, content_type: &str| {
        let mut s = hash_submission(t, value);
        s.labels = Some(pb::Labels {
            content_type: content_type.into(),
            ..Default::default()
        });
        alpha.submit(s)
    };
    let hash = |t: HashType, value: &str| ContentHash::parse(t, value).unwrap();
    let submissions = vec![
        labelled(HashType::Pdq, PDQ, "image"),
        labelled(HashType::Pdq, PDQ_RETRACTED, "image"),
        labelled(HashType::Pdq, PDQ_WITHDRAWN, "image"),
        labelled(HashType::Md5, MD5, ""),
        labelled(HashType::Md5, MD5_IMAGE, "image"),
        labelled(HashType::Sha256, &sha256_value(1), "video"),
        labelled(HashType::Sha1, &"a".repeat(40), "video"),
        labelled(HashType::UrlMd5, URL_MD5, "url"),
    ];
    let mut client = server.client("alpha").await;
    submit_all(&mut client, submissions).await.unwrap();
    let retraction = alpha.retract(&hash(HashType::Pdq, PDQ_RETRACTED), "mistake");
    submit_all(&mut client, vec![retraction]).await.unwrap();
    let dispute = beta.opinion(
        &hash(HashType::UrlMd5, URL_MD5),
        pb::OpinionKind::FalsePositive,
        "a news site",
    );
    submit_all(&mut server.client("beta").await, vec![dispute])
        .await
        .unwrap();
    let withdrawal = admin::withdraw(&hash(HashType::Pdq, PDQ_WITHDRAWN), "not in scope");
    let withdrawal = server.signer("admin").admin(withdrawal);
    submit_all(&mut server.client("admin").await, vec![withdrawal])
        .await
        .unwrap();
    server.stop().await;
    server
}

/// `hashforum export --local DATA --format pytx ARGS`.
fn export(server: &TestServer, args: &[&Path]) -> Output {
    let mut cmd: Command = hashforum_bin();
    cmd.args(["export", "--format", "pytx", "--local"])
        .arg(server.dir().join("server/data"))
        .args(args)
        .env("RUST_LOG", "off");
    let out = run_with_timeout(cmd, b"", CHILD_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    out
}

/// What the export of [`stopped_registry`] must be: live hashes only, under pytx's names, in
/// byte order.
fn expected_lines() -> String {
    format!(
        "pdq {PDQ}\nurl_md5 {URL_MD5}\nvideo_md5 {MD5}\nvideo_sha256 {}\n",
        sha256_value(1)
    )
}

/// The export holds exactly the live hashes of types pytx has, mapped to its signal types and
/// sorted; the summary counts what was left out; `--out` writes the same bytes.
#[tokio::test(flavor = "multi_thread")]
async fn export_writes_live_hashes_as_pytx_lines() {
    let server = stopped_registry().await;
    let out = export(&server, &[]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected_lines());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "exported 4 hashes (1 disputed); skipped, no pytx signal type: 1 md5, 1 sha1; \
         not exported: 1 retracted, 1 withdrawn\n"
    );

    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("hashforum.txt");
    let out = export(&server, &[Path::new("--out"), &file, Path::new("--json")]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({
            "written": 4,
            "disputed": 1,
            "skipped": {"md5": 1, "sha1": 1},
            "inactive": {"retracted": 1, "withdrawn": 1},
        })
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected_lines());
}

/// python-threatexchange loads the export through its local file exchange, validates every
/// line with its own signal types, and its PDQ index matches a variant of the exported hash at
/// distance 16 but neither an unrelated image nor the retracted hash; MD5 matches exactly.
#[tokio::test(flavor = "multi_thread")]
async fn python_threatexchange_loads_and_matches_the_export() {
    let python = pyenv_python();
    let server = stopped_registry().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("hashforum.txt");
    export(&server, &[Path::new("--out"), &file]);
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pytx_match.py");
    let queries = [
        format!("pdq:{PDQ_NEAR}"),
        format!("pdq:{PDQ_UNRELATED}"),
        format!("pdq:{PDQ_RETRACTED}"),
        format!("video_md5:{MD5}"),
        format!("video_md5:{MD5_IMAGE}"),
    ];
    let mut cmd = Command::new(&python);
    cmd.arg(&script).arg(&file).args(&queries);
    let out = run_with_timeout(cmd, b"", CHILD_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["threatexchange"], "1.2.17");
    assert_eq!(v["lines"], 4);
    assert_eq!(
        v["signals"],
        serde_json::json!({"pdq": 1, "url_md5": 1, "video_md5": 1, "video_sha256": 1})
    );
    let matches = &v["matches"];
    assert_eq!(matches[&queries[0]], serde_json::json!([[PDQ, 16]]));
    for q in &queries[1..3] {
        assert_eq!(matches[q], serde_json::json!([]), "{q}");
    }
    assert_eq!(matches[&queries[3]], serde_json::json!([[MD5, null]]));
    assert_eq!(matches[&queries[4]], serde_json::json!([]));
}
