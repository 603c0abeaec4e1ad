//! `hashforum provenance`: every entry about a hash, proved against one signed checkpoint;
//! `--out` writes the bundle that `hashforum verify --bundle` checks with `forum.vkey` alone.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use serde_json::{json, Value};

use super::output::{envelope_json, format_ms, opinion_name};
use super::{connect, ClientOpts};
use crate::entry::action_name;
use crate::log::StoredEntry;
use crate::pb;
use crate::types::HashType;
use crate::verify::{Bundle, BundleEntry, BUNDLE_FORMAT};

/// `hashforum provenance --type T --value V [--out BUNDLE]`.
#[derive(Debug, Args)]
pub struct ProvenanceArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// Hash type: pdq, md5, sha1, sha256 or url_md5.
    #[arg(long = "type", value_name = "TYPE")]
    pub hash_type: String,
    /// The hash, hex (typed in upper case, it is lowered).
    #[arg(long, value_parser = super::input::hex_arg)]
    pub value: String,
    /// Write the provenance bundle (JSON) to FILE, for `hashforum verify --bundle`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs `provenance`.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers (`NOT_FOUND`
/// when no entry is about the hash).
pub async fn run(args: ProvenanceArgs) -> anyhow::Result<ExitCode> {
    let hash_type = HashType::parse(&args.hash_type)
        .map_err(|e| tonic::Status::invalid_argument(format!("--type: {e}")))?;
    let mut client = connect(&args.client).await?;
    let query = pb::HashQuery {
        hash_type: hash_type.to_pb() as i32,
        value: args.value.clone(),
    };
    // Every page against the checkpoint of the first.
    let (mut tree_size, mut from_index) = (0, 0);
    let (mut entries, mut keys) = (Vec::new(), Vec::new());
    let checkpoint = loop {
        let page = client
            .registry
            .get_provenance(pb::GetProvenanceRequest {
                query: Some(query.clone()),
                tree_size,
                from_index,
            })
            .await?
            .into_inner();
        tree_size = page.tree_size;
        entries.extend(page.entries);
        for key in page.keys {
            if !keys
                .iter()
                .any(|k: &pb::ProvenEntry| k.log_index == key.log_index)
            {
                keys.push(key);
            }
        }
        if page.next_index == 0 {
            break page.checkpoint;
        }
        from_index = page.next_index;
    };
    keys.sort_by_key(|k| k.log_index);
    let bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        hash_type: hash_type.name().into(),
        value: args.value.clone(),
        checkpoint: String::from_utf8(checkpoint)
            .map_err(|_| anyhow::anyhow!("the server's checkpoint is not UTF-8"))?,
        entries: entries.iter().map(bundle_entry).collect(),
        keys: keys.iter().map(bundle_entry).collect(),
    };
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&bundle)?;
        std::fs::write(out, text + "\n").with_context(|| format!("writing {}", out.display()))?;
    }
    let decoded: Vec<(u64, StoredEntry)> = entries
        .iter()
        .filter_map(|e| Some((e.log_index, StoredEntry::decode(&e.entry).ok()?)))
        .collect();
    if args.client.json {
        let list: Vec<Value> = decoded.iter().map(|(i, e)| fact_json(*i, e)).collect();
        println!(
            "{}",
            json!({
                "hash_type": hash_type.name(),
                "value": args.value,
                "tree_size": tree_size,
                "entries": list,
            })
        );
    } else {
        println!(
            "{}:{} — {} entries, proved against the checkpoint of size {tree_size}",
            hash_type.name(),
            args.value,
            decoded.len()
        );
        for (index, entry) in &decoded {
            println!("{}", fact_line(*index, entry));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bundle_entry(e: &pb::ProvenEntry) -> BundleEntry {
    let b64 = base64::engine::general_purpose::STANDARD;
    BundleEntry {
        log_index: e.log_index,
        entry: b64.encode(&e.entry),
        inclusion_proof: e.inclusion_proof.iter().map(|h| b64.encode(h)).collect(),
    }
}

/// What an entry about a hash says, in a few words.
fn detail(statement: &pb::Statement) -> String {
    use pb::statement::Body as B;
    match &statement.body {
        Some(B::HashSubmission(s)) => {
            let mut parts = Vec::new();
            if let Some(l) = &s.labels {
                for (k, v) in [
                    ("entity", &l.entity),
                    ("behaviour", &l.behaviour),
                    ("content_type", &l.content_type),
                ] {
                    if !v.is_empty() {
                        parts.push(format!("{k}={v}"));
                    }
                }
            }
            if !s.tags.is_empty() {
                parts.push(format!("tags={}", s.tags.join(",")));
            }
            if !s.incident_id.is_empty() {
                parts.push(format!("incident={}", s.incident_id));
            }
            parts.join(" ")
        }
        Some(B::HashOpinion(o)) if o.reason.is_empty() => opinion_name(o.opinion).to_owned(),
        Some(B::HashOpinion(o)) => format!("{}: {}", opinion_name(o.opinion), o.reason),
        Some(B::HashRetraction(r)) => r.reason.clone(),
        Some(B::HashWithdrawal(w)) => w.reason.clone(),
        _ => String::new(),
    }
}

/// One line per entry: index, time, action, author, relayer, detail.
pub fn fact_line(index: u64, e: &StoredEntry) -> String {
    let action = e.statement.body.as_ref().map_or("unknown", action_name);
    let relayed = if e.relayed_by.is_empty() {
        String::new()
    } else {
        format!(" (relayed by {})", e.relayed_by)
    };
    format!(
        "{index} {} {action} by {}{relayed} {}",
        format_ms(e.sequenced_at_unix_ms),
        e.statement.author,
        detail(&e.statement)
    )
    .trim_end()
    .to_owned()
}

/// An entry as JSON, with its signed envelope.
pub fn fact_json(index: u64, e: &StoredEntry) -> Value {
    json!({
        "log_index": index,
        "sequenced_at_unix_ms": e.sequenced_at_unix_ms,
        "author": e.statement.author,
        "action": e.statement.body.as_ref().map_or("unknown", action_name),
        "relayed_by": e.relayed_by,
        "detail": detail(&e.statement),
        "envelope": envelope_json(&e.envelope),
    })
}
