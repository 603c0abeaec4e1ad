//! `hashforum verify`: check receipts and whole logs offline, with `forum.vkey` alone. Needs no
//! server and no member credentials.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use serde_json::json;

use super::output::format_ms;
use crate::entry::action_name;
use crate::follow::Evidence;
use crate::log::checkpoint::LogVerifier;
use crate::storage::Store;
use crate::verify::{self, Entry, LogError};

/// `hashforum verify --vkey FILE` and what to verify.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["receipt", "bundle", "data", "entries", "evidence"]))]
pub struct VerifyArgs {
    /// The forum's verifier key (`forum.vkey`, written by `hashforum init`).
    #[arg(long, value_name = "FILE")]
    pub vkey: PathBuf,
    /// A receipt (`.tlog-proof`) to check against --entry.
    #[arg(long, value_name = "FILE", requires = "entry")]
    pub receipt: Option<PathBuf>,
    /// The exact bytes of the entry the receipt is for (`.entry`, as `submit --receipt` or
    /// `log entry N --raw` writes them).
    #[arg(long, value_name = "FILE")]
    pub entry: Option<PathBuf>,
    /// A provenance bundle (`hashforum provenance --out FILE`).
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// A server's data directory (stopped, or a copy): replays its whole log and checks every
    /// checkpoint it kept.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A file of exported entries (`hashforum log entries 0.. --json`), replayed from entry 0
    /// and checked against --checkpoint.
    #[arg(long, value_name = "FILE", requires = "checkpoints")]
    pub entries: Option<PathBuf>,
    /// A signed checkpoint (`hashforum log checkpoint`) the exported entries must match
    /// (repeatable).
    #[arg(long = "checkpoint", value_name = "FILE")]
    pub checkpoints: Vec<PathBuf>,
    /// Evidence a replica or `sync` kept against a log (a forked, rolled-back or tampered
    /// one): shows the contradiction, checked again with --vkey.
    #[arg(long, value_name = "FILE")]
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
    if let (Some(receipt), Some(entry)) = (&args.receipt, &args.entry) {
        let receipt = read(receipt)?;
        let entry = read(entry)?;
        return Ok(
            match verify::receipt(&verifier, &receipt, Entry::Leaf(&entry)) {
                Ok(ok) => {
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
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => failed(args.json, &e.to_string(), None),
            },
        );
    }
    if let Some(path) = &args.bundle {
        let bundle: verify::Bundle = serde_json::from_str(&read_text(path)?)
            .with_context(|| format!("{} is not a provenance bundle", path.display()))?;
        return Ok(match verify::bundle(&verifier, &bundle) {
            Ok((head, facts)) => {
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
            Ok(proven) => {
                if args.json {
                    println!(
                        "{}",
                        json!({
                            "proven": true,
                            "kind": evidence.kind.name(),
                            "what": proven,
                            "reason": evidence.reason,
                            "source": evidence.source,
                            "found_at_unix_ms": evidence.found_at_unix_ms,
                        })
                    );
                } else {
                    println!("proven: {proven}");
                    println!(
                        "  kept by a follower of {} at {}: {}",
                        evidence.source,
                        format_ms(evidence.found_at_unix_ms),
                        evidence.reason
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(
                args.json,
                &format!("the evidence proves nothing: {e}"),
                None,
            ),
        });
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
        anyhow::bail!("give --receipt and --entry, --data DIR, or --entries FILE");
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

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

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
