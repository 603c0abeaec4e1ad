//! `hashforum hash`, the real binary on the reference images: no identity, no server.

use std::path::{Path, PathBuf};
use std::process::Output;

use hashforum::pdq::hasher::hash_file;
use serde_json::Value;

use crate::harness::{hashforum_bin, run_with_timeout, CHILD_TIMEOUT};

fn pdq_data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pdq/data")
        .join(path)
}

/// `hashforum hash ARGS`, with neither identity nor server in the environment.
fn hash(args: &[&Path]) -> Output {
    let mut cmd = hashforum_bin();
    cmd.arg("hash").args(args).env("RUST_LOG", "off");
    run_with_timeout(cmd, b"", CHILD_TIMEOUT)
}

/// The JSON object the library's own hashes of `path` make.
fn expected(path: &Path, dihedral: bool) -> Value {
    hashforum::cli::hash::file_json(path, &hash_file(path).unwrap(), dihedral)
}

/// `--json --dihedral` on two images and a text file: the values are the library's, the text
/// file has MD5 and SHA-256 and says why it has no PDQ hash, and a missing file is named on
/// stderr, fails the run, and does not stop the others.
#[test]
fn hash_prints_the_library_values_and_names_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "abc").unwrap();
    let missing = dir.path().join("missing.jpg");
    let bridge = pdq_data("reg-test-input/dih/bridge-1-original.jpg");
    let coaster = pdq_data("reg-test-input/pen-and-coaster.png");
    let files = [
        bridge.as_path(),
        missing.as_path(),
        coaster.as_path(),
        text.as_path(),
    ];
    let mut args: Vec<&Path> = vec![Path::new("--json"), Path::new("--dihedral")];
    args.extend(files);
    let out = hash(&args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("missing.jpg"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let printed = printed.as_array().unwrap();
    assert_eq!(printed.len(), 3, "{printed:#?}");
    for (object, path) in printed.iter().zip([&bridge, &coaster, &text]) {
        assert_eq!(*object, expected(path, true));
    }
    let image = &printed[0];
    assert_eq!(image["file"], bridge.display().to_string());
    assert_eq!(
        image["pdq"]["value"],
        "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    );
    assert_eq!(image["pdq"]["quality"], 100);
    assert!(image.get("pdq_error").is_none());
    let variants: Vec<&str> = image["dihedral"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["variant"].as_str().unwrap())
        .collect();
    assert_eq!(
        variants,
        ["orig", "r090", "r180", "r270", "flpx", "flpy", "flpp", "flpm"]
    );
    assert_eq!(image["dihedral"][0]["value"], image["pdq"]["value"]);

    let text = &printed[2];
    assert_eq!(text["md5"], "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(
        text["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(text["pdq"].is_null());
    assert!(text["pdq_error"].as_str().unwrap().contains("not an image"));
    assert_eq!(text["dihedral"], Value::Array(vec![]));
}

/// Text output: one block per file with each hash, and exit 0 when every file was read.
#[test]
fn hash_prints_a_block_per_file() {
    let coaster = pdq_data("reg-test-input/pen-and-coaster.png");
    let small = pdq_data("misc-images/small.jpg");
    let out = hash(&[&coaster, &small]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let blocks: Vec<&str> = stdout.trim_end().split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{stdout}");
    let coaster_hashes = hash_file(&coaster).unwrap();
    assert!(blocks[0].starts_with(&format!("{}\n", coaster.display())));
    assert!(blocks[0].contains(&format!("md5     {}", hex::encode(coaster_hashes.md5))));
    assert!(blocks[0].contains(&format!(
        "pdq     1f811b9d267fbc6693c0c7f30e041f9df49b836303e10f067fcdfc12c02d01f9 quality {}",
        coaster_hashes.pdq.unwrap().quality
    )));
    // small.jpg is a gradient: quality 0, which submission refuses by default.
    assert!(
        blocks[1].contains("quality 0 (below 50: refused by default)"),
        "{stdout}"
    );
}
