//! `hashforum verify`: check receipts and whole logs offline, with `forum.vkey` alone. Needs no
//! server and no member credentials. With `--witness`, a receipt's, a bundle's or a lone
//! checkpoint's note must also carry valid cosignatures (C2SP tlog-cosignature/v1) by a quorum
//! of the given witnesses.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use serde_json::json;

use super::output::format_ms;
use crate::entry::action_name;
use crate::follow::Evidence;
use crate::log::checkpoint::{LogVerifier, SignedCheckpoint};
use crate::log::cosignature::{self, CosignatureError, Cosigned, WitnessVerifier};
use crate::storage::Store;
use crate::verify::{self, Entry, LogError};

/// `hashforum verify --vkey FILE` and what to verify.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(true)
    .args(["receipt", "bundle", "data", "entries", "checkpoints", "evidence", "backup"]))]
pub struct VerifyArgs {
    /// The forum's verifier key (`forum.vkey`, written by `hashforum init`).
    #[arg(long, value_name = "FILE")]
    pub vkey: PathBuf,
    /// A receipt (`.tlog-proof`) to check against --entry.
    #[arg(long, value_name = "FILE", requires = "entry",
        conflicts_with_all = ["bundle", "data", "entries", "checkpoints"])]
    pub receipt: Option<PathBuf>,
    /// The exact bytes of the entry the receipt is for (`.entry`, as `submit --receipt` or
    /// `log entry N --raw` writes them).
    #[arg(long, value_name = "FILE")]
    pub entry: Option<PathBuf>,
    /// A provenance bundle (`hashforum provenance --out FILE`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data", "entries", "checkpoints"])]
    pub bundle: Option<PathBuf>,
    /// A server's data directory (stopped, a copy, or a running server's: read-only, as of
    /// the moment it is opened): replays its whole log and checks every checkpoint it kept.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["entries", "checkpoints"])]
    pub data: Option<PathBuf>,
    /// A backup (`hashforum backup --out DIR`): replays its whole log, checks every checkpoint
    /// it kept and that the latest covers it and is its manifest's; writes nothing into it.
    #[arg(long, value_name = "DIR",
        conflicts_with_all = ["receipt", "bundle", "data", "entries", "checkpoints", "witnesses",
            "evidence"])]
    pub backup: Option<PathBuf>,
    /// A file of exported entries (`hashforum log entries 0.. --json`), replayed from entry 0
    /// and checked against --checkpoint.
    #[arg(long, value_name = "FILE", requires = "checkpoints")]
    pub entries: Option<PathBuf>,
    /// A signed checkpoint (`hashforum log checkpoint`) the exported entries must match
    /// (repeatable); or, alone with --witness, one checkpoint whose cosignatures to check.
    #[arg(long = "checkpoint", value_name = "FILE")]
    pub checkpoints: Vec<PathBuf>,
    /// A witness whose cosignature the checkpoint must carry: its cosignature/v1 verifier key
    /// (`name+id+base64(0x04 || key)`) or a file holding one (repeatable).
    #[arg(long = "witness", value_name = "VKEY_OR_FILE", conflicts_with_all = ["data", "entries"])]
    pub witnesses: Vec<String>,
    /// How many distinct --witness must have cosigned (default: all of them).
    #[arg(long, value_name = "K", requires = "witnesses",
        value_parser = clap::value_parser!(u64).range(1..))]
    pub quorum: Option<u64>,
    /// Evidence a replica or `sync` kept against a log (a forked, rolled-back or tampered
    /// one): shows the contradiction, checked again with --vkey.
    #[arg(long, value_name = "FILE",
        conflicts_with_all = ["receipt", "bundle", "data", "entries", "checkpoints", "witnesses"])]
    pub evidence: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `verify`: exit 0 when everything verifies, 1 (with the reason) when not.
///
/// # Errors
/// When a file cannot be read.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let vkey = read_text(&args.vkey)?;
    let verifier = LogVerifier::from_vkey(&vkey).map_err(|e| anyhow::anyhow!("--vkey: {e}"))?;
    let witnesses = Witnesses::from_args(args)?;
    if let (Some(receipt), Some(entry)) = (&args.receipt, &args.entry) {
        let receipt = read(receipt)?;
        let entry = read(entry)?;
        let verified = verify::receipt(&verifier, &receipt, Entry::Leaf(&entry))
            .map_err(|e| e.to_string())
            .and_then(|ok| {
                let cosigned = witnesses.check(&ok.checkpoint.note)?;
                Ok((ok, cosigned))
            });
        return Ok(match verified {
            Ok((ok, cosigned)) => {
                let head = ok.checkpoint.head;
                let action = ok
                    .entry
                    .statement
                    .body
                    .as_ref()
                    .map_or("unknown", action_name);
                if args.json {
                    println!(
                        "{}",
                        json!({
                            "verified": true,
                            "origin": verifier.origin(),
                            "log_index": ok.index,
                            "tree_size": head.size,
                            "root": B64.encode(head.root.0),
                            "author": ok.entry.statement.author,
                            "action": action,
                            "sequenced_at_unix_ms": ok.entry.sequenced_at_unix_ms,
                            "witnesses": witnesses.json(&cosigned),
                        })
                    );
                } else {
                    println!(
                        "verified: entry {} ({action} by {}, {}) is in {} at tree size {}",
                        ok.index,
                        ok.entry.statement.author,
                        format_ms(ok.entry.sequenced_at_unix_ms),
                        verifier.origin(),
                        head.size
                    );
                    witnesses.print(&cosigned);
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(args.json, &e, None),
        });
    }
    if args.entries.is_none() && !args.checkpoints.is_empty() {
        return checkpoint_alone(args, &verifier, &witnesses);
    }
    if let Some(path) = &args.bundle {
        let bundle: verify::Bundle = serde_json::from_str(&read_text(path)?)
            .with_context(|| format!("{} is not a provenance bundle", path.display()))?;
        let verified = verify::bundle(&verifier, &bundle).and_then(|(head, facts)| {
            let cosigned = witnesses.check(bundle.checkpoint.as_bytes())?;
            Ok((head, facts, cosigned))
        });
        return Ok(match verified {
            Ok((head, facts, cosigned)) => {
                if args.json {
                    let entries: Vec<_> = facts
                        .iter()
                        .map(|f| super::provenance::fact_json(f.index, &f.entry))
                        .collect();
                    println!(
                        "{}",
                        json!({
                            "verified": true,
                            "origin": verifier.origin(),
                            "hash_type": bundle.hash_type,
                            "value": bundle.value,
                            "tree_size": head.size,
                            "entries": entries,
                            "witnesses": witnesses.json(&cosigned),
                        })
                    );
                } else {
                    println!(
                        "verified: {} entries about {}:{} in {} at tree size {}",
                        facts.len(),
                        bundle.hash_type,
                        bundle.value,
                        verifier.origin(),
                        head.size
                    );
                    for f in &facts {
                        println!("{}", super::provenance::fact_line(f.index, &f.entry));
                    }
                    witnesses.print(&cosigned);
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(args.json, &e, None),
        });
    }
    if let Some(path) = &args.evidence {
        let evidence: Evidence = serde_json::from_str(&read_text(path)?)
            .with_context(|| format!("{} is not an evidence file", path.display()))?;
        return Ok(match evidence.check(&verifier) {
            Ok(finding) => {
                if args.json {
                    println!(
                        "{}",
                        json!({
                            "proven": finding.proven,
                            "kind": evidence.kind.name(),
                            "what": finding.what,
                            "reason": evidence.reason,
                            "source": evidence.source,
                            "found_at_unix_ms": evidence.found_at_unix_ms,
                        })
                    );
                } else {
                    // Only a fork is proven by the log's key alone; the rest is what the
                    // follower reports it was served, consistent with the file.
                    let how = if finding.proven { "proven" } else { "reported" };
                    println!("{how}: {}", finding.what);
                    println!(
                        "  kept by a follower of {} at {}: {}",
                        evidence.source,
                        format_ms(evidence.found_at_unix_ms),
                        evidence.reason
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(args.json, &format!("the evidence shows nothing: {e}"), None),
        });
    }
    if let Some(dir) = &args.backup {
        return Ok(backup(dir, &verifier, args.json));
    }
    let report = if let Some(dir) = &args.data {
        let store = Store::open_read_only(dir)
            .with_context(|| format!("opening {} read-only", dir.display()))?;
        let checkpoints: Vec<Vec<u8>> = store
            .checkpoints(0)?
            .into_iter()
            .map(|(_, note)| note)
            .collect();
        let report = match verify::stored_entries(&store) {
            Ok(entries) => verify::log(&verifier, entries, &checkpoints),
            Err(e) => Err(e),
        };
        report
    } else if let Some(file) = &args.entries {
        let checkpoints = args
            .checkpoints
            .iter()
            .map(|p| read(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let text = read_text(file)?;
        verify::log(&verifier, exported(&text), &checkpoints)
    } else {
        anyhow::bail!(
            "give --receipt and --entry, --bundle FILE, --data DIR, --entries FILE with \
             --checkpoint, or --checkpoint with --witness"
        );
    };
    Ok(match report {
        Ok(report) => {
            let last = report.checkpoints.last().map_or(0, |h| h.size);
            if args.json {
                println!(
                    "{}",
                    json!({
                        "verified": true,
                        "origin": verifier.origin(),
                        "entries": report.entries,
                        "checkpoints": report.checkpoints.len(),
                        "latest_checkpoint_size": last,
                    })
                );
            } else {
                println!(
                    "verified: {} entries of {}, {} signed checkpoints (the latest at size {last})",
                    report.entries,
                    verifier.origin(),
                    report.checkpoints.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let index = match &e {
                LogError::Entry { index, .. } => Some(*index),
                _ => None,
            };
            failed(args.json, &e.to_string(), index)
        }
    })
}

/// `--backup DIR`: the backup verifies and matches its manifest.
fn backup(dir: &Path, verifier: &LogVerifier, json_out: bool) -> ExitCode {
    match crate::backup::verify(dir, verifier) {
        Ok(ok) => {
            let m = &ok.manifest;
            if json_out {
                println!(
                    "{}",
                    json!({
                        "verified": true,
                        "origin": verifier.origin(),
                        "entries": ok.report.entries,
                        "checkpoints": ok.report.checkpoints.len(),
                        "size": m.size,
                        "root": m.root,
                        "created_at": m.created_at,
                        "taken": m.taken,
                    })
                );
            } else {
                println!(
                    "verified: backup of {} entries of {} ({}, {}), {} signed checkpoints, the \
                     latest at size {} with root {}",
                    ok.report.entries,
                    verifier.origin(),
                    m.taken,
                    m.created_at,
                    ok.report.checkpoints.len(),
                    ok.head.size,
                    m.root
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let index = match &e {
                crate::backup::BackupError::Log(LogError::Entry { index, .. }) => Some(*index),
                _ => None,
            };
            failed(json_out, &e.to_string(), index)
        }
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `--checkpoint FILE --witness ...`: the checkpoint is signed by the log key and carries a
/// quorum of cosignatures.
fn checkpoint_alone(
    args: &VerifyArgs,
    verifier: &LogVerifier,
    witnesses: &Witnesses,
) -> anyhow::Result<ExitCode> {
    let [path] = args.checkpoints.as_slice() else {
        anyhow::bail!("--witness checks one --checkpoint at a time");
    };
    if witnesses.verifiers.is_empty() {
        anyhow::bail!(
            "--checkpoint alone checks a checkpoint's cosignatures: give --witness (or --entries \
             to replay a log against it)"
        );
    }
    let note = read(path)?;
    let verified = verifier
        .verify(&note)
        .map_err(|e| e.to_string())
        .and_then(|checkpoint: SignedCheckpoint| Ok((checkpoint.head, witnesses.check(&note)?)));
    Ok(match verified {
        Ok((head, cosigned)) => {
            if args.json {
                println!(
                    "{}",
                    json!({
                        "verified": true,
                        "origin": verifier.origin(),
                        "tree_size": head.size,
                        "root": B64.encode(head.root.0),
                        "witnesses": witnesses.json(&cosigned),
                    })
                );
            } else {
                println!(
                    "verified: the checkpoint of {} at tree size {} (root {})",
                    verifier.origin(),
                    head.size,
                    B64.encode(head.root.0)
                );
                witnesses.print(&cosigned);
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(args.json, &e, None),
    })
}

/// The witnesses of `--witness`, distinct by key, and how many must have cosigned.
struct Witnesses {
    verifiers: Vec<WitnessVerifier>,
    required: usize,
}

impl Witnesses {
    /// Reads `--witness` (vkey text, or a file holding it) and `--quorum` (default: all).
    fn from_args(args: &VerifyArgs) -> anyhow::Result<Self> {
        let mut verifiers: Vec<WitnessVerifier> = Vec::new();
        for given in &args.witnesses {
            let witness = witness_vkey(given)?;
            if verifiers.iter().all(|w| w.key() != witness.key()) {
                verifiers.push(witness);
            }
        }
        let required = match args.quorum {
            None => verifiers.len(),
            Some(k) => usize::try_from(k).unwrap_or(usize::MAX),
        };
        if required > verifiers.len() {
            anyhow::bail!(
                "--quorum {required} is more than the {} distinct --witness keys given",
                verifiers.len()
            );
        }
        Ok(Self {
            verifiers,
            required,
        })
    }

    /// The valid cosignatures on `note`, if they make the quorum (none needed without
    /// --witness).
    fn check(&self, note: &[u8]) -> Result<Vec<Cosigned>, String> {
        let why = |e: CosignatureError| format!("checkpoint cosignatures: {e}");
        let cosigned = cosignature::cosigned(note, &self.verifiers).map_err(why)?;
        if cosigned.len() < self.required {
            return Err(why(CosignatureError::Quorum {
                cosigned: cosigned.into_iter().map(|c| c.name).collect(),
                required: self.required,
                witnesses: self.verifiers.len(),
            }));
        }
        Ok(cosigned)
    }

    /// The `witnesses` field of `--json`: null without --witness.
    fn json(&self, cosigned: &[Cosigned]) -> serde_json::Value {
        if self.verifiers.is_empty() {
            return serde_json::Value::Null;
        }
        let list: Vec<_> = cosigned
            .iter()
            .map(|c| json!({ "name": c.name, "time": c.time, "at": format_secs(c.time) }))
            .collect();
        json!({ "required": self.required, "given": self.verifiers.len(), "cosigned": list })
    }

    /// The line after `verified: ...`: who cosigned and when (nothing without --witness).
    fn print(&self, cosigned: &[Cosigned]) {
        if self.verifiers.is_empty() {
            return;
        }
        let list: Vec<String> = cosigned
            .iter()
            .map(|c| format!("{} at {}", c.name, format_secs(c.time)))
            .collect();
        println!(
            "cosigned by {} of {} witnesses ({} required): {}",
            cosigned.len(),
            self.verifiers.len(),
            self.required,
            list.join(", ")
        );
    }
}

/// A `--witness` value: a file holding a vkey, or the vkey text itself.
fn witness_vkey(given: &str) -> anyhow::Result<WitnessVerifier> {
    let path = Path::new(given);
    let text = if path.is_file() {
        read_text(path)?
    } else {
        given.to_owned()
    };
    WitnessVerifier::from_vkey(&text).map_err(|e| {
        anyhow::anyhow!("--witness {given}: neither a file nor a witness verifier key: {e}")
    })
}

/// POSIX seconds as RFC 3339, or as seconds past the year 9999.
fn format_secs(secs: u64) -> String {
    if secs < 253_402_300_800 {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string()
    } else {
        format!("{secs} s after 1970")
    }
}

fn failed(json_out: bool, reason: &str, index: Option<u64>) -> ExitCode {
    if json_out {
        println!(
            "{}",
            json!({ "verified": false, "reason": reason, "first_bad_index": index })
        );
    } else {
        println!("NOT verified: {reason}");
    }
    ExitCode::FAILURE
}

/// The entries of a `log entries --json` export, checked to run from 0 without gaps.
fn exported(text: &str) -> impl Iterator<Item = verify::LogItem> + '_ {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .zip(0u64..)
        .map(|(line, expected)| {
            let bad = |reason: String| LogError::Entry {
                index: expected,
                reason,
            };
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
            if value["index"].as_u64() != Some(expected) {
                return Err(bad(format!(
                    "the export is not in order from 0: found index {}",
                    value["index"]
                )));
            }
            let entry = value["entry"]
                .as_str()
                .and_then(|b64| B64.decode(b64).ok())
                .ok_or_else(|| bad("no base64 `entry`".into()))?;
            Ok((entry, None))
        })
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
