//! `hashforum export --local DIR --format pytx`: the registry's live hashes, read from a local
//! copy of its database, as a file that another matcher loads unchanged.
//!
//! `pytx` is the signal file of Meta's python-threatexchange (PyPI `threatexchange`, read at
//! 1.2.17), which Hasher-Matcher-Actioner builds on: `LocalFileSignalExchangeAPI`
//! (`threatexchange/exchanges/impl/file_api.py`) reads one signal a line, the signal type's
//! name (`SignalType.get_name()`), one space, then the signal. The hash types map to pytx's
//! signal types as in [`PYTX_TYPES`]. pytx's one MD5 and one SHA-256 signal type are for videos
//! (`VideoMD5Signal`, `VideoSHA256Signal`, content type `VideoContent`), and its own
//! exchanges import MD5s only for videos (ThreatExchange's `HASH_MD5` with `media_type_video`,
//! TAT's MD5 of video files, NCMEC's video entries); so an MD5 or SHA-256 is written when its
//! live submissions label it `video` or leave the content type empty, and skipped when they
//! name only other content types (an image's MD5 would never be matched there). SHA-1 has no
//! pytx signal type and is skipped.
//!
//! Live means what matching means by default: not retracted and not withdrawn (a disputed hash
//! is written; the summary counts them). Lines are sorted bytewise (types in name order, values
//! in hex order) and depend only on the records, so two exports of one log are identical.
//! Records are streamed from RocksDB one at a time, and lines written through a buffer.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::local::open_store;
use crate::pb;
use crate::state::{decode_record, status, StoredRecord};
use crate::storage::Store;
use crate::types::HashType;

/// `hashforum export --local DIR --format FORMAT [--out FILE]`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A local copy of the registry: `DIR/db` if it exists (`hashforum sync --out DIR`), else
    /// `DIR` itself, a server's data directory (stopped, or a copy).
    #[arg(long, value_name = "DIR")]
    pub local: PathBuf,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Write to FILE (replaced whole once complete) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON, `{"written", "disputed", "skipped", "inactive"}`: on stdout
    /// with --out, else on stderr (stdout carries the export).
    #[arg(long)]
    pub json: bool,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// python-threatexchange's signal file: `SIGNAL_TYPE VALUE` lines.
    Pytx,
}

/// Each hash type with the pytx signal type it is written as, in the order of those names
/// (which sorts the lines); then the types pytx has no signal type for.
pub const PYTX_TYPES: [(HashType, Option<&str>); 5] = [
    // PdqSignal
    (HashType::Pdq, Some("pdq")),
    // UrlMD5Signal: pytx hashes the URL lowercased, without its scheme.
    (HashType::UrlMd5, Some("url_md5")),
    // VideoMD5Signal, for video or unlabelled content (see the module header).
    (HashType::Md5, Some("video_md5")),
    // VideoSHA256Signal, likewise.
    (HashType::Sha256, Some("video_sha256")),
    (HashType::Sha1, None),
];

/// What an export wrote and left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines written: one per live hash of a type the format has.
    pub written: u64,
    /// How many of those are disputed (a member's latest opinion is negative).
    pub disputed: u64,
    /// Live hashes the format has no type for, by hash type.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Hashes not written because they are retracted or withdrawn, by status.
    pub inactive: BTreeMap<&'static str, u64>,
}

/// Runs `export`: writes the file, then the summary.
///
/// # Errors
/// When the copy cannot be opened or read, or the output cannot be written.
pub fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.local)?;
    let summary = match &args.out {
        None => {
            let stdout = std::io::stdout().lock();
            let mut out = BufWriter::new(stdout);
            let summary = write_pytx(&store, &mut out)?;
            out.flush().context("writing to stdout")?;
            summary
        }
        Some(path) => write_file(&store, path)?,
    };
    let line = if args.json {
        summary_json(&summary).to_string()
    } else {
        summary_text(&summary)
    };
    if args.out.is_some() && args.json {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the export to a temporary file beside `path`, then renames it over `path`: a reader
/// never sees half an export. The file gets the mode a new file gets (0666 less the umask),
/// not a temporary file's 0600, since another service (the matcher) reads it.
fn write_file(store: &Store, path: &Path) -> anyhow::Result<Summary> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let context = || format!("writing {}", path.display());
    let mut builder = tempfile::Builder::new();
    builder.prefix(".hashforum-export");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let tmp = builder.tempfile_in(parent).with_context(context)?;
    let mut out = BufWriter::new(tmp);
    let summary = write_pytx(store, &mut out)?;
    let tmp = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(context)?;
    tmp.as_file().sync_all().with_context(context)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(context)?;
    Ok(summary)
}

/// Writes every live hash as a pytx line to `out`, in sorted order.
///
/// # Errors
/// When the store fails, a record does not decode, or `out` fails.
pub fn write_pytx(store: &Store, out: &mut impl Write) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    for (hash_type, name) in PYTX_TYPES {
        store.each_record_of(hash_type, |bytes, value| -> anyhow::Result<()> {
            let record = decode_record(value)?;
            let status = status(&record);
            if matches!(
                status,
                pb::RecordStatus::Retracted | pb::RecordStatus::Withdrawn
            ) {
                *summary.inactive.entry(status_name(status)).or_default() += 1;
                return Ok(());
            }
            match name.filter(|_| pytx_has(hash_type, &record)) {
                Some(name) => {
                    writeln!(out, "{name} {}", hex::encode(bytes))?;
                    summary.written += 1;
                    summary.disputed += u64::from(status == pb::RecordStatus::Disputed);
                }
                None => *summary.skipped.entry(hash_type.name()).or_default() += 1,
            }
            Ok(())
        })?;
    }
    Ok(summary)
}

/// Whether pytx has a signal type for this live record of a type it maps: MD5 and SHA-256
/// only for video, or content of no stated type (see the module header).
fn pytx_has(hash_type: HashType, record: &StoredRecord) -> bool {
    if !matches!(hash_type, HashType::Md5 | HashType::Sha256) {
        return true;
    }
    let mut stated = record
        .submissions
        .iter()
        .filter(|s| s.retraction.is_none())
        .filter_map(|s| s.labels.as_ref().map(|l| l.content_type.as_str()))
        .filter(|t| !t.is_empty())
        .peekable();
    stated.peek().is_none() || stated.any(|t| t == "video")
}

fn status_name(status: pb::RecordStatus) -> &'static str {
    super::output::record_status_name(status as i32)
}

fn summary_json(s: &Summary) -> serde_json::Value {
    json!({
        "written": s.written,
        "disputed": s.disputed,
        "skipped": s.skipped,
        "inactive": s.inactive,
    })
}

fn summary_text(s: &Summary) -> String {
    let counts = |m: &BTreeMap<&str, u64>| {
        m.iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut line = format!("exported {} hashes ({} disputed)", s.written, s.disputed);
    if !s.skipped.is_empty() {
        line += &format!("; skipped, no pytx signal type: {}", counts(&s.skipped));
    }
    if !s.inactive.is_empty() {
        line += &format!("; not exported: {}", counts(&s.inactive));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every hash type is listed once, and the names are in order, so the lines are sorted.
    #[test]
    fn pytx_types_cover_every_type_in_name_order() {
        let mut types: Vec<HashType> = PYTX_TYPES.iter().map(|(t, _)| *t).collect();
        types.sort();
        assert_eq!(types, HashType::ALL);
        let names: Vec<&str> = PYTX_TYPES.iter().filter_map(|(_, n)| *n).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        assert!(PYTX_TYPES
            .iter()
            .skip_while(|(_, n)| n.is_some())
            .all(|(_, n)| n.is_none()));
    }

    fn record(content_types: &[(&str, bool)]) -> StoredRecord {
        let submissions = content_types
            .iter()
            .map(|(content_type, retracted)| pb::Submission {
                labels: Some(pb::Labels {
                    content_type: (*content_type).into(),
                    ..Default::default()
                }),
                retraction: retracted.then(pb::Retraction::default),
                ..Default::default()
            })
            .collect();
        StoredRecord {
            submissions,
            ..Default::default()
        }
    }

    /// MD5 and SHA-256 go to pytx's video types unless live labels name only other content.
    #[test]
    fn md5_and_sha256_are_video_or_unlabelled() {
        for t in [HashType::Md5, HashType::Sha256] {
            assert!(pytx_has(t, &record(&[("", false)])));
            assert!(pytx_has(t, &record(&[("video", false)])));
            assert!(pytx_has(t, &record(&[("image", false), ("video", false)])));
            assert!(!pytx_has(t, &record(&[("image", false)])));
            assert!(!pytx_has(t, &record(&[("image", false), ("video", true)])));
        }
        assert!(pytx_has(HashType::Pdq, &record(&[("image", false)])));
    }
}
