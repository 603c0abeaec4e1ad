//! `hashforum hash FILE...`: PDQ (with quality), MD5 and SHA-256 of local files.
//!
//! Local only: no identity, no server, and the content never leaves the machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::output::report_error;
use crate::pdq::hasher::{hash_file, FileHashes, PdqHash, MIN_QUALITY};

/// `hashforum hash FILE... [--json] [--dihedral]`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// The files to hash. Every file gets MD5 and SHA-256; images (JPEG, PNG, GIF, WebP, BMP,
    /// told by content) also get PDQ.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print a JSON array, one object per file hashed.
    #[arg(long)]
    pub json: bool,
    /// Also print the PDQ hashes of the image's 8 rotations and mirrors.
    #[arg(long)]
    pub dihedral: bool,
}

/// Runs `hash`. Each file is reported, in order; a file that cannot be read is reported on
/// stderr, naming it, and makes the exit code 1 once the others are done. A file that is not an
/// image is not an error: it has no PDQ hash, and says why.
///
/// # Errors
/// None of its own: unreadable files are reported and counted, not returned.
pub fn run(args: &HashArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let mut objects = Vec::new();
    for path in &args.files {
        match hash_file(path) {
            Ok(hashes) if args.json => objects.push(file_json(path, &hashes, args.dihedral)),
            Ok(hashes) => print!("{}", file_text(path, &hashes, args.dihedral)),
            Err(err) => {
                report_error(&err.into());
                failed = true;
            }
        }
    }
    if args.json {
        println!("{:#}", Value::Array(objects));
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The JSON of one file: `{"file", "md5", "sha256", "pdq": {"value", "quality"} | null}`, with
/// `"pdq_error"` when there is no PDQ hash and `"dihedral"` when asked for.
pub fn file_json(path: &Path, hashes: &FileHashes, dihedral: bool) -> Value {
    let mut v = json!({
        "file": path.display().to_string(),
        "md5": hex::encode(hashes.md5),
        "sha256": hex::encode(hashes.sha256),
        "pdq": hashes.pdq.as_ref().ok().map(pdq_json),
    });
    if let Err(err) = &hashes.pdq {
        v["pdq_error"] = json!(err.to_string());
    }
    if dihedral {
        let variants = hashes.dihedral.iter().flatten().map(|(variant, hash)| {
            let mut h = pdq_json(hash);
            h["variant"] = json!(variant.name());
            h
        });
        v["dihedral"] = Value::Array(variants.collect());
    }
    v
}

fn pdq_json(hash: &PdqHash) -> Value {
    json!({ "value": hash.hex(), "quality": hash.quality })
}

/// One block of text per file: the name, then a line per hash.
pub fn file_text(path: &Path, hashes: &FileHashes, dihedral: bool) -> String {
    let mut out = format!(
        "{}\n  md5     {}\n  sha256  {}\n",
        path.display(),
        hex::encode(hashes.md5),
        hex::encode(hashes.sha256)
    );
    match &hashes.pdq {
        Ok(hash) => out.push_str(&format!("  pdq     {}\n", pdq_text(hash))),
        Err(err) => out.push_str(&format!("  pdq     none: {err}\n")),
    }
    if dihedral {
        for (variant, hash) in hashes.dihedral.iter().flatten() {
            out.push_str(&format!("  {:<7} {}\n", variant.name(), pdq_text(hash)));
        }
    }
    out.push('\n');
    out
}

fn pdq_text(hash: &PdqHash) -> String {
    let low = if hash.quality < MIN_QUALITY {
        format!(" (below {MIN_QUALITY}: refused by default)")
    } else {
        String::new()
    };
    format!("{} quality {}{low}", hash.hex(), hash.quality)
}
