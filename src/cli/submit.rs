//! `hashforum submit`: sign hash submissions with the identity's key and submit them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::input::{check_quality, parse_labels, parse_lines, read_input};
use super::{connect, ClientOpts};
use crate::identity::Identity;
use crate::log::leaf_hash;
use crate::log::proof::Receipt;
use crate::pb;
use crate::pdq::hasher::hash_file;
use crate::registry::MAX_SUBMIT_BATCH;
use crate::statement::{fresh_ms, hash_submission, Signer};
use crate::types::HashType;

/// `hashforum submit --type T --value V [--label K=V]... [--tag T]... [--incident ID]`, or
/// `--batch FILE`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// Hash type: pdq, md5, sha1, sha256 or url_md5.
    #[arg(long = "type", value_name = "TYPE", required_unless_present_any = ["batch", "files"])]
    pub hash_type: Option<String>,
    /// The hash, hex (typed in upper case, it is lowered).
    #[arg(long, value_parser = super::input::hex_arg, required_unless_present_any = ["batch", "files"], conflicts_with_all = ["batch", "files"])]
    pub value: Option<String>,
    /// Read `type:value` lines from FILE (`-` for stdin) and submit them all.
    #[arg(long, value_name = "FILE", conflicts_with = "files")]
    pub batch: Option<PathBuf>,
    /// Hash local files and submit their hashes: MD5 and SHA-256 of each, and PDQ (with its
    /// quality) of each image. The content never leaves the machine.
    #[arg(long = "file", value_name = "FILE", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Submit an image's PDQ hash even below quality 50 (such hashes match too much).
    #[arg(long)]
    pub allow_low_quality: bool,
    /// A taxonomy label: entity=..., behaviour=... or content_type=... (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// A free tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// PDQ quality, 0-100.
    #[arg(long)]
    pub quality: Option<u32>,
    /// Write each receipt: for one hash, FILE (a C2SP tlog-proof) and, beside it, the exact
    /// entry with extension `.entry`; for --batch, a directory of `INDEX.tlog-proof` and
    /// `INDEX.entry` files. `hashforum verify --receipt R --entry E` checks them offline.
    #[arg(long, value_name = "PATH")]
    pub receipt: Option<PathBuf>,
    /// The open incident the content belongs to (see `hashforum incident list`).
    #[arg(long, value_name = "ID")]
    pub incident: Option<String>,
    /// Sign with the current time, so that a statement identical to one already in the log
    /// is a new entry, not a resubmission: to make a retracted submission live again.
    #[arg(long)]
    pub reissue: bool,
}

/// Runs `submit`.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn run(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let labels = parse_labels(&args.labels)?;
    let (hashes, qualities) = if args.files.is_empty() {
        let hashes = match (&args.batch, &args.hash_type, &args.value) {
            (Some(path), _, _) => parse_lines(&read_input(path)?)?,
            (None, Some(t), Some(v)) => vec![(
                HashType::parse(t)
                    .map_err(|e| tonic::Status::invalid_argument(format!("--type: {e}")))?,
                v.clone(),
            )],
            _ => anyhow::bail!("give --type and --value, --batch FILE or --file FILE..."),
        };
        let qualities = vec![args.quality; hashes.len()];
        (hashes, qualities)
    } else {
        hash_files(&args.files, args.allow_low_quality)?
    };
    let signer = Signer::of(&Identity::load(args.client.identity_dir()?)?);
    let envelopes: Vec<pb::Envelope> = hashes
        .iter()
        .zip(&qualities)
        .map(|((t, v), quality)| {
            let submission = pb::HashSubmission {
                labels: Some(labels.clone()),
                tags: args.tags.clone(),
                quality: *quality,
                incident_id: args.incident.clone().unwrap_or_default(),
                ..hash_submission(*t, v)
            };
            if args.reissue {
                let body = pb::statement::Body::HashSubmission(submission);
                signer.sign(&signer.statement(fresh_ms(), body))
            } else {
                signer.submit(submission)
            }
        })
        .collect();
    let mut client = connect(&args.client).await?;
    let single = args.batch.is_none() && args.files.is_empty();
    let sent = if args.receipt.is_some() {
        envelopes.clone()
    } else {
        Vec::new()
    };
    let mut receipts = Vec::with_capacity(envelopes.len());
    if single {
        let envelope = envelopes.into_iter().next();
        let reply = client
            .registry
            .submit_entry(pb::SubmitEntryRequest { envelope })
            .await?
            .into_inner();
        receipts.extend(reply.receipt);
    } else {
        for envelopes in crate::client::batches(envelopes, MAX_SUBMIT_BATCH) {
            let reply = client
                .registry
                .submit_entries(pb::SubmitEntriesRequest { envelopes })
                .await?
                .into_inner();
            receipts.extend(reply.receipts);
        }
    }
    if let Some(path) = &args.receipt {
        write_receipts(path, single, &sent, &receipts)?;
    }
    for ((t, v), r) in hashes.iter().zip(&receipts) {
        if args.client.json {
            println!(
                "{}",
                json!({
                    "hash_type": t.name(),
                    "value": v,
                    "log_index": r.log_index,
                    "entry_hash": hex::encode(&r.entry_hash),
                    "duplicate": r.duplicate,
                })
            );
        } else if r.duplicate {
            println!("{t}:{v} already submitted: log index {}", r.log_index);
        } else {
            println!("{t}:{v} submitted: log index {}", r.log_index);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Hashes to submit, and the PDQ quality of each.
type Hashes = (Vec<(HashType, String)>, Vec<Option<u32>>);

/// The hashes of local files, with their PDQ qualities: MD5 and SHA-256 of each file, and the
/// PDQ hash of each image, refused below quality 50 unless `allow_low_quality`.
///
/// # Errors
/// `INVALID_ARGUMENT` for a low-quality PDQ hash; a file that cannot be read.
fn hash_files(files: &[PathBuf], allow_low_quality: bool) -> anyhow::Result<Hashes> {
    let mut hashes = Vec::new();
    let mut qualities = Vec::new();
    for path in files {
        let h = hash_file(path)?;
        hashes.push((HashType::Md5, hex::encode(h.md5)));
        hashes.push((HashType::Sha256, hex::encode(h.sha256)));
        qualities.extend([None, None]);
        match h.pdq {
            Ok(pdq) => {
                check_quality(path, &pdq, allow_low_quality, "submits")?;
                hashes.push((HashType::Pdq, pdq.hex()));
                qualities.push(Some(u32::from(pdq.quality)));
            }
            Err(why) => eprintln!(
                "{}: no PDQ hash ({why}); MD5 and SHA-256 only",
                path.display()
            ),
        }
    }
    Ok((hashes, qualities))
}

/// Writes receipts and their entries (see [`SubmitArgs::receipt`]). Each entry is rebuilt from
/// the envelope signed here and the receipt's `extra` line, and checked against the receipt's
/// entry hash before it is written.
fn write_receipts(
    path: &Path,
    single: bool,
    envelopes: &[pb::Envelope],
    receipts: &[pb::Receipt],
) -> anyhow::Result<()> {
    if single && path.extension().is_some_and(|e| e == "entry") {
        anyhow::bail!("--receipt {}: the entry is written beside the receipt with extension .entry; name the receipt otherwise (e.g. .tlog-proof)", path.display());
    }
    if !single {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    }
    for (envelope, receipt) in envelopes.iter().zip(receipts) {
        let entry = Receipt::parse(&receipt.tlog_proof)?.entry_for(envelope)?;
        let rebuilt = leaf_hash(&entry).as_bytes() == receipt.entry_hash.as_slice();
        if !rebuilt && !receipt.duplicate {
            anyhow::bail!(
                "the receipt for log index {} is not for the entry sent",
                receipt.log_index
            );
        }
        let (proof_file, entry_file) = if single {
            (path.to_owned(), path.with_extension("entry"))
        } else {
            let index = receipt.log_index;
            (
                path.join(format!("{index}.tlog-proof")),
                path.join(format!("{index}.entry")),
            )
        };
        std::fs::write(&proof_file, &receipt.tlog_proof)
            .with_context(|| format!("writing {}", proof_file.display()))?;
        if rebuilt {
            std::fs::write(&entry_file, &entry)
                .with_context(|| format!("writing {}", entry_file.display()))?;
        } else {
            // The log holds the same statement, signed with another signature (another key):
            // its receipt is the original's, whose entry is not this envelope's.
            eprintln!(
                "note: log index {} holds this statement signed otherwise; its entry is \
                 `hashforum log entry {} --raw`",
                receipt.log_index, receipt.log_index
            );
        }
    }
    Ok(())
}
