//! `hashforum match`: near-duplicate matching of PDQ hashes, given or computed from local files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::input::{check_quality, read_input};
use super::output::{record_json, record_status_name};
use super::ClientOpts;
use crate::pb;
use crate::pdq::hasher::hash_file;
use crate::pdq::{Dihedral, DEFAULT_MAX_DISTANCE};
use crate::registry::{MAX_MATCH_BATCH, MAX_WIDE_MATCH_BATCH};
use crate::types::HashType;

/// `hashforum match --type pdq --value HEX`, `--batch FILE|-` or `--file FILE...`.
#[derive(Debug, Args)]
pub struct MatchArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// Hash type: pdq (the one type matched by distance).
    #[arg(long = "type", value_name = "TYPE", default_value = "pdq")]
    pub hash_type: String,
    /// The PDQ hash, 64 hex characters (typed in upper case, it is lowered).
    #[arg(long, value_parser = super::input::hex_arg, conflicts_with_all = ["batch", "files"])]
    pub value: Option<String>,
    /// Read PDQ hashes from FILE (`-` for stdin), one per line, bare or as `pdq:HEX`.
    #[arg(long, value_name = "FILE", conflicts_with = "files")]
    pub batch: Option<PathBuf>,
    /// Hash local image files (the content never leaves the machine) and match their PDQ.
    #[arg(long = "file", value_name = "FILE", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The largest Hamming distance that matches, 0-64 (the server's default: 31).
    #[arg(long, value_name = "D")]
    pub max_distance: Option<u32>,
    /// Also match retracted and withdrawn hashes.
    #[arg(long)]
    pub include_inactive: bool,
    /// Also match rotations and mirrors: with --file all 8 (hashed from the image); with a
    /// hash, its transposition (the one a hash alone determines).
    #[arg(long)]
    pub dihedral: bool,
    /// Match a file's PDQ hash even below quality 50 (such hashes match too much).
    #[arg(long)]
    pub allow_low_quality: bool,
    /// Ask a local copy (`hashforum sync --out DIR`) instead of the server: same answers, no
    /// network.
    #[arg(long, value_name = "DIR")]
    pub local: Option<PathBuf>,
}

/// One query: where it came from, its hash and which variant of the image it is.
struct Query {
    source: String,
    value: String,
    variant: Dihedral,
}

/// Runs `match`. Exits 0 when some query matched, 1 when none did.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT` (a file that is not an image, a PDQ hash below
/// quality 50), and whatever the server answers.
pub async fn run(args: MatchArgs) -> anyhow::Result<ExitCode> {
    let hash_type = HashType::parse(&args.hash_type)
        .map_err(|e| tonic::Status::invalid_argument(format!("--type: {e}")))?;
    let queries = queries(&args)?;
    let mut client = super::connect_or_local(&args.client, args.local.as_deref()).await?;
    let mut any = false;
    let mut all = Vec::new();
    // Above the default distance the server takes at most 100 queries a call; and smaller
    // calls keep each reply well under its size limit.
    let per_call = if args.max_distance.is_some_and(|d| d > DEFAULT_MAX_DISTANCE) {
        MAX_WIDE_MATCH_BATCH
    } else {
        1_000.min(MAX_MATCH_BATCH)
    };
    for chunk in queries.chunks(per_call) {
        let req = pb::MatchHashesRequest {
            hash_type: hash_type.to_pb() as i32,
            queries: chunk
                .iter()
                .map(|q| pb::MatchQuery {
                    value: q.value.clone(),
                    variant: q.variant.to_pb() as i32,
                })
                .collect(),
            max_distance: args.max_distance,
            include_inactive: args.include_inactive,
            dihedral: args.dihedral && args.files.is_empty(),
        };
        let results = client
            .registry
            .match_hashes(req)
            .await?
            .into_inner()
            .results;
        for (q, r) in chunk.iter().zip(results) {
            any |= !r.matches.is_empty();
            if args.client.json {
                all.push(result_json(q, &r));
            } else {
                print!("{}", result_text(q, &r));
            }
        }
    }
    if args.client.json {
        println!("{:#}", Value::Array(all));
    }
    Ok(if any {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn queries(args: &MatchArgs) -> anyhow::Result<Vec<Query>> {
    let bad = |msg: String| anyhow::Error::from(tonic::Status::invalid_argument(msg));
    if let Some(value) = &args.value {
        return Ok(vec![Query {
            source: "--value".into(),
            value: value.clone(),
            variant: Dihedral::Original,
        }]);
    }
    if let Some(path) = &args.batch {
        let text = read_input(path)?;
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let value = super::input::hex_value(line.strip_prefix("pdq:").unwrap_or(line));
            out.push(Query {
                source: format!("{}:{}", path.display(), n + 1),
                value,
                variant: Dihedral::Original,
            });
        }
        if out.is_empty() {
            return Err(bad(format!("{}: no PDQ hashes", path.display())));
        }
        return Ok(out);
    }
    if args.files.is_empty() {
        return Err(bad(
            "give --value HEX, --batch FILE or --file FILE...".into()
        ));
    }
    let mut out = Vec::new();
    for path in &args.files {
        let hashes = hash_file(path)?;
        let pdq = hashes
            .pdq
            .map_err(|e| bad(format!("{}: no PDQ hash: {e}", path.display())))?;
        check_quality(path, &pdq, args.allow_low_quality, "matches")?;
        let variants = match (args.dihedral, hashes.dihedral) {
            (true, Some(all)) => all.to_vec(),
            _ => vec![(Dihedral::Original, pdq)],
        };
        for (variant, h) in variants {
            out.push(Query {
                source: path.display().to_string(),
                value: h.hex(),
                variant,
            });
        }
    }
    Ok(out)
}

fn match_json(m: &pb::PdqMatch) -> Value {
    let variant = Dihedral::from_pb(m.variant).map_or("?", Dihedral::name);
    let mut record = record_json("pdq", "", m.record.as_ref());
    if let Some(obj) = record.as_object_mut() {
        obj.remove("found");
    }
    json!({
        "value": m.record.as_ref().map(|r| r.value.clone()),
        "distance": m.distance,
        "variant": variant,
        "record": record,
    })
}

fn result_json(q: &Query, r: &pb::MatchResult) -> Value {
    json!({
        "source": q.source,
        "query": q.value,
        "variant": q.variant.name(),
        "matches": r.matches.iter().map(match_json).collect::<Vec<_>>(),
        "truncated": r.truncated,
    })
}

fn result_text(q: &Query, r: &pb::MatchResult) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let variant = if q.variant == Dihedral::Original {
        String::new()
    } else {
        format!(" ({})", q.variant.name())
    };
    if r.matches.is_empty() {
        let _ = writeln!(s, "{} pdq:{}{variant}: no match", q.source, q.value);
        return s;
    }
    let _ = writeln!(
        s,
        "{} pdq:{}{variant}: {} match{}{}",
        q.source,
        q.value,
        r.matches.len(),
        if r.matches.len() == 1 { "" } else { "es" },
        if r.truncated { " (truncated)" } else { "" }
    );
    for m in &r.matches {
        let Some(record) = &m.record else { continue };
        let submitters: Vec<&str> = record
            .submissions
            .iter()
            .map(|s| s.member_id.as_str())
            .collect();
        let incidents: Vec<&str> = record
            .submissions
            .iter()
            .map(|s| s.incident_id.as_str())
            .filter(|i| !i.is_empty())
            .collect();
        let labels: Vec<String> = record
            .submissions
            .iter()
            .filter_map(|s| s.labels.as_ref())
            .flat_map(|l| [&l.entity, &l.behaviour, &l.content_type])
            .filter(|v| !v.is_empty())
            .map(ToString::to_string)
            .collect();
        let via = Dihedral::from_pb(m.variant)
            .ok()
            .filter(|v| *v != q.variant)
            .map(|v| format!(" via {}", v.name()))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  distance {:>2}{via}  pdq:{}  {}  submitted by {}{}{}",
            m.distance,
            record.value,
            record_status_name(record.status),
            submitters.join(", "),
            if labels.is_empty() {
                String::new()
            } else {
                format!("  labels {}", labels.join(", "))
            },
            if incidents.is_empty() {
                String::new()
            } else {
                format!("  incident {}", incidents.join(", "))
            },
        );
    }
    s
}
