//! PDQ matching through the real server: refusals naming the field, matches that follow the
//! records' statuses, the index after a restart, the reference images, and the CLI.

use std::path::{Path, PathBuf};

use hashforum::client::Client;
use hashforum::pb;
use hashforum::pdq::hasher::hash_file;
use hashforum::pdq::{transposed, Bits};
use hashforum::statement::admin::withdraw;
use hashforum::statement::{fresh_ms, hash_submission, Signer};
use hashforum::types::{ContentHash, HashType};
use rand::{Rng, SeedableRng};
use tonic::Status;

use crate::harness::{
    assert_invalid, hashforum_bin, run_with_timeout, submit, TestServer, CHILD_TIMEOUT,
};

fn pdq_data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pdq/data")
        .join(path)
}

fn random_bits(rng: &mut impl Rng) -> Bits {
    let mut b = [0u8; 32];
    rng.fill(&mut b[..]);
    b
}

/// `bits` with the first `n` bits of byte `from` on flipped.
fn flip(bits: &Bits, from: usize, n: usize) -> Bits {
    let mut out = *bits;
    for k in 0..n {
        out[from + k / 8] ^= 1 << (k % 8);
    }
    out
}

fn pdq(bits: &Bits) -> ContentHash {
    ContentHash::parse(HashType::Pdq, &hex::encode(bits)).unwrap()
}

fn submission(signer: &Signer, bits: &Bits, entity: &str, incident: &str) -> pb::Envelope {
    signer.submit(pb::HashSubmission {
        labels: Some(pb::Labels {
            entity: entity.into(),
            behaviour: "glorification".into(),
            content_type: "image".into(),
        }),
        quality: Some(90),
        incident_id: incident.into(),
        ..hash_submission(HashType::Pdq, &hex::encode(bits))
    })
}

fn request(values: &[&Bits], max: Option<u32>, inactive: bool) -> pb::MatchHashesRequest {
    pb::MatchHashesRequest {
        hash_type: pb::HashType::Pdq as i32,
        queries: values
            .iter()
            .map(|b| pb::MatchQuery {
                value: hex::encode(b),
                variant: 0,
            })
            .collect(),
        max_distance: max,
        include_inactive: inactive,
        dihedral: false,
    }
}

async fn match_raw(
    client: &mut Client,
    req: pb::MatchHashesRequest,
) -> Result<Vec<pb::MatchResult>, Status> {
    client
        .registry
        .match_hashes(req)
        .await
        .map(|r| r.into_inner().results)
}

/// (stored value, distance, status) of each match of one query.
async fn matches(
    client: &mut Client,
    q: &Bits,
    max: Option<u32>,
    inactive: bool,
) -> Vec<(String, u32, pb::RecordStatus)> {
    let results = match_raw(client, request(&[q], max, inactive))
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    results[0]
        .matches
        .iter()
        .map(|m| {
            let r = m.record.as_ref().unwrap();
            (
                r.value.clone(),
                m.distance,
                pb::RecordStatus::try_from(r.status).unwrap(),
            )
        })
        .collect()
}

/// Each malformed request is refused with `INVALID_ARGUMENT`, its reason and the field.
#[tokio::test(flavor = "multi_thread")]
async fn bad_match_requests_name_the_field() {
    let server = TestServer::start(&["alpha"]).await;
    let mut client = server.client("alpha").await;
    let good = [7u8; 32];
    let with_value = |value: String| pb::MatchHashesRequest {
        queries: vec![
            pb::MatchQuery {
                value: hex::encode(good),
                variant: 0,
            },
            pb::MatchQuery { value, variant: 0 },
        ],
        ..request(&[], None, false)
    };
    for (value, why) in [
        ("ab".repeat(31), "short"),
        ("ab".repeat(33), "long"),
        ("AB".repeat(32), "upper case"),
        ("0".repeat(64), "all zero"),
        ("zz".repeat(32), "not hex"),
    ] {
        let err = match_raw(&mut client, with_value(value)).await.unwrap_err();
        assert_invalid(&err, "queries[1].value", "INVALID_HASH");
        assert!(!err.message().is_empty(), "{why}");
    }
    let err = match_raw(&mut client, request(&[&good], Some(65), false))
        .await
        .unwrap_err();
    assert_invalid(&err, "max_distance", "DISTANCE_OUT_OF_RANGE");
    assert!(err.message().contains("0 to 64"), "{err:?}");
    let err = match_raw(&mut client, request(&[], None, false))
        .await
        .unwrap_err();
    assert_invalid(&err, "queries", "EMPTY_BATCH");
    let many: Vec<&Bits> = std::iter::repeat_n(&good, 10_001).collect();
    let err = match_raw(&mut client, request(&many, None, false))
        .await
        .unwrap_err();
    assert_invalid(&err, "queries", "BATCH_TOO_LARGE");
    let sha = pb::MatchHashesRequest {
        hash_type: pb::HashType::Sha256 as i32,
        ..request(&[&good], None, false)
    };
    let err = match_raw(&mut client, sha).await.unwrap_err();
    assert_invalid(&err, "hash_type", "NOT_MATCHABLE");
    let unknown = pb::MatchHashesRequest {
        hash_type: 0,
        ..request(&[&good], None, false)
    };
    let err = match_raw(&mut client, unknown).await.unwrap_err();
    assert_invalid(&err, "hash_type", "UNKNOWN_HASH_TYPE");
    let mut variant = request(&[&good], None, false);
    variant.queries[0].variant = 99;
    let err = match_raw(&mut client, variant).await.unwrap_err();
    assert_invalid(&err, "queries[0].variant", "UNKNOWN_VARIANT");
    // 10,000 queries at 31 are fine; above 31, at most 100 (each may scan the index).
    let full: Vec<&Bits> = std::iter::repeat_n(&good, 10_000).collect();
    assert_eq!(
        match_raw(&mut client, request(&full, Some(31), false))
            .await
            .unwrap()
            .len(),
        10_000
    );
    let err = match_raw(&mut client, request(&full[..101], Some(32), false))
        .await
        .unwrap_err();
    assert_invalid(&err, "queries", "BATCH_TOO_LARGE");
    assert!(err.message().contains("at most 100"), "{err:?}");
    assert_eq!(
        match_raw(&mut client, request(&full[..100], Some(64), false))
            .await
            .unwrap()
            .len(),
        100
    );
    assert!(match_raw(&mut client, request(&[&good], Some(0), false))
        .await
        .is_ok());
}

/// A hash matches as soon as its receipt is back, with its record; a retracted one follows its
/// record's status; a withdrawn one stops matching; both match on request with their status.
#[tokio::test(flavor = "multi_thread")]
async fn matches_follow_submissions_retractions_and_withdrawals() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let (alpha, beta) = (server.signer("alpha"), server.signer("beta"));
    let (mut a, mut b) = (server.client("alpha").await, server.client("beta").await);
    let admin = server.signer("admin");
    let mut admin_client = server.client("admin").await;

    let stored = random_bits(&mut rng);
    let near = flip(&stored, 0, 5);
    let far = flip(&stored, 0, 40);
    let query = flip(&stored, 8, 3);
    assert!(matches(&mut b, &query, None, false).await.is_empty());
    submit(&mut a, submission(&alpha, &stored, "entity-a", ""))
        .await
        .unwrap();
    submit(&mut b, submission(&beta, &near, "entity-b", ""))
        .await
        .unwrap();
    submit(&mut b, submission(&beta, &far, "entity-b", ""))
        .await
        .unwrap();
    let active = pb::RecordStatus::Active;
    assert_eq!(
        matches(&mut a, &query, None, false).await,
        [
            (hex::encode(stored), 3, active),
            (hex::encode(near), 8, active)
        ]
    );
    // The match carries the whole record: submitters, labels, quality.
    let results = match_raw(&mut a, request(&[&query], None, false))
        .await
        .unwrap();
    let record = results[0].matches[0].record.as_ref().unwrap();
    assert_eq!(record.submissions[0].member_id, "alpha");
    assert_eq!(
        record.submissions[0].labels.as_ref().unwrap().entity,
        "entity-a"
    );
    assert_eq!(record.submissions[0].quality, Some(90));
    assert_eq!(results[0].matches[0].variant, pb::Dihedral::Original as i32);
    // Distances: 2 finds nothing, 43 finds the far one too.
    assert!(matches(&mut a, &query, Some(2), false).await.is_empty());
    assert_eq!(matches(&mut a, &query, Some(43), false).await.len(), 3);

    // beta retracts `near`: its only submission, so the record is retracted.
    submit(&mut b, beta.retract(&pdq(&near), "mistake"))
        .await
        .unwrap();
    assert_eq!(
        matches(&mut a, &query, None, false).await,
        [(hex::encode(stored), 3, active)]
    );
    assert_eq!(
        matches(&mut a, &query, None, true).await,
        [
            (hex::encode(stored), 3, active),
            (hex::encode(near), 8, pb::RecordStatus::Retracted)
        ]
    );
    // alpha submits `near` too: live again.
    submit(&mut a, submission(&alpha, &near, "entity-a", ""))
        .await
        .unwrap();
    assert_eq!(matches(&mut a, &query, None, false).await.len(), 2);
    // An admin withdraws `stored`: it stops matching.
    submit(
        &mut admin_client,
        admin.admin(withdraw(&pdq(&stored), "not terrorist content")),
    )
    .await
    .unwrap();
    assert_eq!(
        matches(&mut a, &query, None, false).await,
        [(hex::encode(near), 8, active)]
    );
    assert_eq!(
        matches(&mut a, &query, None, true).await[0],
        (hex::encode(stored), 3, pb::RecordStatus::Withdrawn)
    );
}

/// Every query's answer is the same after a restart (the index rebuilt from the stored PDQ
/// view) as before it.
#[tokio::test(flavor = "multi_thread")]
async fn the_index_answers_the_same_after_a_restart() {
    let mut server = TestServer::start(&["alpha"]).await;
    let alpha = server.signer("alpha");
    let admin = server.signer("admin");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let centres: Vec<Bits> = (0..4).map(|_| random_bits(&mut rng)).collect();
    let mut stored = Vec::new();
    for i in 0..120 {
        let c = &centres[i % centres.len()];
        stored.push(flip(c, (i * 7) % 24, (i * 5) % 60));
    }
    stored.sort_unstable();
    stored.dedup();
    {
        let mut client = server.client("alpha").await;
        let envelopes: Vec<pb::Envelope> = stored
            .iter()
            .map(|b| submission(&alpha, b, "e", ""))
            .collect();
        crate::harness::submit_all(&mut client, envelopes)
            .await
            .unwrap();
        for b in stored.iter().step_by(9) {
            submit(&mut client, alpha.retract(&pdq(b), "r"))
                .await
                .unwrap();
        }
        let mut admin_client = server.client("admin").await;
        for b in stored.iter().skip(4).step_by(13) {
            let _ = fresh_ms();
            submit(&mut admin_client, admin.admin(withdraw(&pdq(b), "w")))
                .await
                .unwrap();
        }
    }
    let queries: Vec<Bits> = centres
        .iter()
        .chain(stored.iter().take(10))
        .map(|b| flip(b, 3, 2))
        .collect();
    let answers = |mut client: Client, queries: Vec<Bits>| async move {
        let mut out = Vec::new();
        for max in [0, 10, 31, 64] {
            for inactive in [false, true] {
                let refs: Vec<&Bits> = queries.iter().collect();
                out.push(
                    match_raw(&mut client, request(&refs, Some(max), inactive))
                        .await
                        .unwrap(),
                );
            }
        }
        out
    };
    let before = answers(server.client("alpha").await, queries.clone()).await;
    assert!(
        before.iter().flatten().any(|r| r.matches.len() > 3),
        "the queries find clusters"
    );
    server.restart().await;
    let after = answers(server.client("alpha").await, queries).await;
    assert_eq!(before, after);
}

/// The reference images: `aaa-orig.jpg` hashed on the member's side and submitted; each of its
/// blurred, resized, re-encoded and edited variants hashed and found within 31. A rotated
/// image is not (PDQ is not rotation invariant), but its transposition is found with
/// `dihedral`, named `FLIP_PLUS1`.
#[tokio::test(flavor = "multi_thread")]
async fn reference_variants_match_the_original() {
    let server = TestServer::start(&["alpha"]).await;
    let mut client = server.client("alpha").await;
    let orig = hash_file(&pdq_data("bridge-mods/aaa-orig.jpg"))
        .unwrap()
        .pdq
        .unwrap();
    submit(
        &mut client,
        submission(&server.signer("alpha"), &orig.bits, "e", ""),
    )
    .await
    .unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(pdq_data("bridge-mods")).unwrap() {
        let path = entry.unwrap().path();
        let h = hash_file(&path).unwrap().pdq.unwrap();
        let found = matches(&mut client, &h.bits, None, false).await;
        assert_eq!(found.len(), 1, "{}: {found:?}", path.display());
        assert_eq!(found[0].0, orig.hex(), "{}", path.display());
        assert!(found[0].1 <= 31);
        checked += 1;
    }
    assert_eq!(checked, 12, "every image in bridge-mods");

    let transposed_file = hash_file(&pdq_data("reg-test-input/dih/bridge-7-flip-plus-1.jpg"))
        .unwrap()
        .pdq
        .unwrap();
    assert!(matches(&mut client, &transposed_file.bits, None, false)
        .await
        .is_empty());
    let req = pb::MatchHashesRequest {
        dihedral: true,
        ..request(&[&transposed_file.bits], None, false)
    };
    let results = match_raw(&mut client, req).await.unwrap();
    let m = &results[0].matches;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].record.as_ref().unwrap().value, orig.hex());
    assert_eq!(m[0].variant, pb::Dihedral::FlipPlus1 as i32);
    assert_eq!(
        m[0].distance,
        hashforum::pdq::distance(&transposed(&transposed_file.bits), &orig.bits)
    );
}

/// `hashforum submit --file` hashes locally and submits MD5, SHA-256 and PDQ; `hashforum match
/// --file` finds the re-encoded copy, and `--dihedral` a rotated one through its variants.
#[tokio::test(flavor = "multi_thread")]
async fn cli_submits_and_matches_local_files() {
    let server = TestServer::start(&["alpha"]).await;
    let run = |args: Vec<String>| {
        let mut cmd = hashforum_bin();
        cmd.args(args)
            .env("HASHFORUM_IDENTITY", server.identity_dir("alpha"))
            .env("HASHFORUM_SERVER", &server.addr)
            .env("RUST_LOG", "off");
        run_with_timeout(cmd, b"", CHILD_TIMEOUT)
    };
    let orig = pdq_data("bridge-mods/aaa-orig.jpg");
    let out = run(vec![
        "submit".into(),
        "--file".into(),
        orig.display().to_string(),
        "--label".into(),
        "content_type=image".into(),
        "--json".into(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = lines
        .iter()
        .map(|l| l["hash_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["md5", "sha256", "pdq"]);
    let local = hash_file(&orig).unwrap();
    assert_eq!(lines[2]["value"], local.pdq.as_ref().unwrap().hex());
    assert_eq!(lines[1]["value"], hex::encode(local.sha256));

    let copy = pdq_data("bridge-mods/shrink-a-lot.jpg");
    let out = run(vec![
        "match".into(),
        "--file".into(),
        copy.display().to_string(),
        "--json".into(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v[0]["matches"][0]["value"],
        local.pdq.as_ref().unwrap().hex()
    );
    assert_eq!(
        v[0]["matches"][0]["record"]["submitters"][0]["member"],
        "alpha"
    );

    // A rotated copy: no match as it is; with --dihedral, its r270 variant (the rotation back)
    // matches, and the result names it.
    let rotated = pdq_data("reg-test-input/dih/bridge-2-rotate-90.jpg");
    let out = run(vec![
        "match".into(),
        "--file".into(),
        rotated.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run(vec![
        "match".into(),
        "--file".into(),
        rotated.display().to_string(),
        "--dihedral".into(),
        "--json".into(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let matched: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| !q["matches"].as_array().unwrap().is_empty())
        .map(|q| q["variant"].as_str().unwrap())
        .collect();
    assert_eq!(matched, ["r270"], "{v:#}");

    // --batch: bare and `pdq:` lines from stdin, comments skipped, one result per line.
    let lines = format!(
        "# uploads\n{}\npdq:{}\n",
        local.pdq.as_ref().unwrap().hex(),
        "ab".repeat(32)
    );
    let mut cmd = hashforum_bin();
    cmd.args(["match", "--batch", "-", "--json"])
        .env("HASHFORUM_IDENTITY", server.identity_dir("alpha"))
        .env("HASHFORUM_SERVER", &server.addr)
        .env("RUST_LOG", "off");
    let out = run_with_timeout(cmd, lines.as_bytes(), CHILD_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["matches"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [1, 0]);
    assert_eq!(v[0]["matches"][0]["distance"], 0);

    // A flat image (PDQ quality 2 or 3, by decoder) is refused before anything is sent, naming the file and
    // its quality; --allow-low-quality sends it (and nothing matches).
    let flat = pdq_data("reg-test-input/labelme-subset/q0003.jpg");
    let out = run(vec![
        "match".into(),
        "--file".into(),
        flat.display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("q0003.jpg") && err.contains("below 50"),
        "{err}"
    );
    let out = run(vec![
        "submit".into(),
        "--file".into(),
        flat.display().to_string(),
    ]);
    assert!(!out.status.success(), "submit refuses it too");
    let out = run(vec![
        "match".into(),
        "--file".into(),
        flat.display().to_string(),
        "--allow-low-quality".into(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A bad value (not hex; upper case would be lowered) is refused by the server with the
    // field.
    let out = run(vec!["match".into(), "--value".into(), "zz".repeat(32)]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("queries[0].value"),
        "{err}"
    );
}
