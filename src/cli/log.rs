//! `hashforum log`: read the transparency log — checkpoints, entries and proofs — as its exact
//! bytes, for stock tools and for `hashforum verify`.

use std::io::Write;
use std::process::ExitCode;

use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::output::{envelope_json, format_ms};
use super::{connect, ClientOpts};
use crate::entry::action_name;

/// What an entry does, in a word: its action, `genesis` for entry 0.
fn action(statement: &pb::Statement) -> &'static str {
    match &statement.body {
        Some(pb::statement::Body::Genesis(_)) => "genesis",
        Some(body) => action_name(body),
        None => "unknown",
    }
}
use crate::log::{leaf_hash, StoredEntry};
use crate::pb;

/// `hashforum log ...`.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// What to read.
    #[command(subcommand)]
    pub command: LogCommand,
}

/// `hashforum log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print the latest signed checkpoint (or the one signed at --size), byte for byte.
    Checkpoint {
        /// A tree size the log signed a checkpoint at.
        #[arg(long)]
        size: Option<u64>,
    },
    /// Show one entry; with --raw, write its exact stored bytes to stdout.
    Entry {
        /// The log index.
        index: u64,
        /// The exact leaf bytes (a `LogEntry` encoding), nothing else.
        #[arg(long)]
        raw: bool,
    },
    /// List entries FROM..TO (TO excluded; `FROM..` up to the latest checkpoint), one per
    /// line. With --json, each line carries the exact bytes in base64 (`entry`): the export
    /// that `hashforum verify --entries` replays.
    Entries {
        /// The range, e.g. `0..100` or `0..`.
        range: String,
    },
    /// Print a proof as base64 hashes, one per line (RFC 6962 order).
    Proof {
        /// Which proof.
        #[command(subcommand)]
        kind: ProofKind,
    },
}

/// The proofs `hashforum log proof` prints.
#[derive(Debug, Subcommand)]
pub enum ProofKind {
    /// The inclusion proof of an entry in a tree.
    Inclusion {
        /// The entry's log index.
        #[arg(long)]
        index: u64,
        /// The tree size (default: the latest checkpoint's).
        #[arg(long)]
        size: Option<u64>,
    },
    /// The consistency proof between two tree sizes.
    Consistency {
        /// The older, smaller tree size.
        #[arg(long)]
        old: u64,
        /// The newer tree size (default: the latest checkpoint's).
        #[arg(long)]
        new: Option<u64>,
    },
}

/// Runs `log`.
///
/// # Errors
/// Bad ranges as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn run(args: LogArgs) -> anyhow::Result<ExitCode> {
    let json_out = args.client.json;
    let mut client = connect(&args.client).await?;
    let mut stdout = std::io::stdout().lock();
    match args.command {
        LogCommand::Checkpoint { size } => {
            let note = client
                .log
                .get_checkpoint(pb::GetCheckpointRequest {
                    size: size.unwrap_or(0),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .note;
            stdout.write_all(&note)?;
        }
        LogCommand::Entry { index, raw } => {
            let entry = client
                .log
                .get_entry(pb::GetEntryRequest { index })
                .await?
                .into_inner()
                .entry;
            if raw {
                stdout.write_all(&entry)?;
            } else {
                writeln!(stdout, "{}", describe(index, &entry, json_out))?;
            }
        }
        LogCommand::Entries { range } => {
            let (start, end) = parse_range(&range)?;
            let end = match end {
                Some(end) => end,
                None => latest_size(&mut client).await?,
            };
            let mut stream = client
                .log
                .get_entries(pb::GetEntriesRequest { start, end })
                .await?
                .into_inner();
            while let Some(chunk) = stream.message().await? {
                for (index, entry) in (chunk.start..).zip(&chunk.entries) {
                    writeln!(stdout, "{}", describe(index, entry, json_out))?;
                }
            }
        }
        LogCommand::Proof { kind } => {
            let (size, hashes) = match kind {
                ProofKind::Inclusion { index, size } => {
                    let reply = client
                        .log
                        .get_inclusion_proof(pb::GetInclusionProofRequest {
                            index,
                            tree_size: size.unwrap_or(0),
                        })
                        .await?
                        .into_inner();
                    (reply.tree_size, reply.hashes)
                }
                ProofKind::Consistency { old, new } => {
                    let reply = client
                        .log
                        .get_consistency_proof(pb::GetConsistencyProofRequest {
                            old_size: old,
                            new_size: new.unwrap_or(0),
                        })
                        .await?
                        .into_inner();
                    (reply.new_size, reply.hashes)
                }
            };
            let b64: Vec<String> = hashes.iter().map(|h| B64.encode(h)).collect();
            if json_out {
                writeln!(stdout, "{}", json!({ "tree_size": size, "hashes": b64 }))?;
            } else {
                for line in b64 {
                    writeln!(stdout, "{line}")?;
                }
            }
        }
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn latest_size(client: &mut crate::client::Client) -> anyhow::Result<u64> {
    let note = client
        .log
        .get_checkpoint(pb::GetCheckpointRequest {
            size: 0,
            ..Default::default()
        })
        .await?
        .into_inner()
        .note;
    // The size is the checkpoint's second line; the note is checked by `verify`, not here.
    let text = String::from_utf8_lossy(&note);
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("the server's checkpoint has no size line"))
}

/// Parses `FROM..TO` or `FROM..`.
fn parse_range(range: &str) -> anyhow::Result<(u64, Option<u64>)> {
    let bad = || {
        tonic::Status::invalid_argument(format!(
            "range {range:?}: expected FROM..TO or FROM.. (decimal log indexes)"
        ))
    };
    let (from, to) = range.split_once("..").ok_or_else(bad)?;
    let from = from.parse().map_err(|_| bad())?;
    let to = if to.is_empty() {
        None
    } else {
        Some(to.parse().map_err(|_| bad())?)
    };
    Ok((from, to))
}

/// One entry as a line: text, or JSON with its exact bytes in base64.
fn describe(index: u64, entry: &[u8], json_out: bool) -> String {
    let hash = leaf_hash(entry).to_hex();
    let decoded = StoredEntry::decode(entry);
    if json_out {
        let mut line = json!({
            "index": index,
            "leaf_hash": hash,
            "entry": B64.encode(entry),
        });
        if let Ok(e) = &decoded {
            let fields: Value = json!({
                "author": e.statement.author,
                "action": action(&e.statement),
                "sequenced_at_unix_ms": e.sequenced_at_unix_ms,
                "relayed_by": e.relayed_by,
                "envelope": envelope_json(&e.envelope),
            });
            if let (Value::Object(line), Value::Object(fields)) = (&mut line, fields) {
                line.extend(fields);
            }
        }
        return line.to_string();
    }
    match decoded {
        Ok(e) => {
            let relayed = if e.relayed_by.is_empty() {
                String::new()
            } else {
                format!(" relayed by {}", e.relayed_by)
            };
            format!(
                "{index} {} {} by {}{relayed} {hash}",
                format_ms(e.sequenced_at_unix_ms),
                action(&e.statement),
                e.statement.author,
            )
        }
        Err(e) => format!("{index} undecodable ({e}) {hash}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_or_are_refused() {
        assert_eq!(parse_range("0..10").unwrap(), (0, Some(10)));
        assert_eq!(parse_range("5..").unwrap(), (5, None));
        for bad in ["", "5", "..5", "a..b", "1...3", "-1..2"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
