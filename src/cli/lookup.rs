//! `hashforum lookup`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::input::{parse_lines, read_input};
use super::output::{record_json, record_text};
use super::ClientOpts;
use crate::pb;
use crate::registry::MAX_LOOKUP_BATCH;
use crate::types::HashType;

/// `hashforum lookup --type T --value V`, or `--batch FILE`.
#[derive(Debug, Args)]
pub struct LookupArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// Hash type: pdq, md5, sha1, sha256 or url_md5.
    #[arg(long = "type", value_name = "TYPE", required_unless_present = "batch")]
    pub hash_type: Option<String>,
    /// The hash, hex (typed in upper case, it is lowered).
    #[arg(long, value_parser = super::input::hex_arg, required_unless_present = "batch", conflicts_with = "batch")]
    pub value: Option<String>,
    /// Read `type:value` lines from FILE (`-` for stdin); prints one result per line.
    #[arg(long, value_name = "FILE")]
    pub batch: Option<PathBuf>,
    /// Include each submission's signed envelope (DSSE JSON) in the output.
    #[arg(long)]
    pub envelopes: bool,
    /// Ask a local copy (`hashforum sync --out DIR`) instead of the server: same answers, no
    /// network.
    #[arg(long, value_name = "DIR")]
    pub local: Option<PathBuf>,
}

/// Runs `lookup`. A single lookup exits 0 when found and 1 when not; a batch exits 0 and says
/// per line.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn run(args: LookupArgs) -> anyhow::Result<ExitCode> {
    let mut client = super::connect_or_local(&args.client, args.local.as_deref()).await?;
    if let Some(path) = &args.batch {
        let queries = parse_lines(&read_input(path)?)?;
        for chunk in queries.chunks(MAX_LOOKUP_BATCH) {
            let req = pb::LookupHashesRequest {
                queries: chunk.iter().map(|(t, v)| query(*t, v)).collect(),
                include_envelopes: args.envelopes,
            };
            let results = client
                .registry
                .lookup_hashes(req)
                .await?
                .into_inner()
                .results;
            for ((t, v), r) in chunk.iter().zip(&results) {
                print(&args, t.name(), v, r.record.as_ref(), true);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(t), Some(v)) = (&args.hash_type, &args.value) else {
        anyhow::bail!("give --type and --value, or --batch FILE");
    };
    let t =
        HashType::parse(t).map_err(|e| tonic::Status::invalid_argument(format!("--type: {e}")))?;
    let req = pb::LookupHashRequest {
        query: Some(query(t, v)),
        include_envelopes: args.envelopes,
    };
    match client.registry.lookup_hash(req).await {
        Ok(reply) => {
            print(
                &args,
                t.name(),
                v,
                reply.into_inner().record.as_ref(),
                false,
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(status) if status.code() == tonic::Code::NotFound && args.client.json => {
            print(&args, t.name(), v, None, false);
            Ok(ExitCode::from(1))
        }
        Err(status) => Err(status.into()),
    }
}

fn query(t: HashType, v: &str) -> pb::HashQuery {
    pb::HashQuery {
        hash_type: t.to_pb() as i32,
        value: v.to_owned(),
    }
}

fn print(args: &LookupArgs, t: &str, v: &str, record: Option<&pb::HashRecord>, compact: bool) {
    if args.client.json {
        let value = record_json(t, v, record);
        if compact {
            println!("{value}");
        } else {
            println!("{value:#}");
        }
    } else {
        print!("{}", record_text(t, v, record));
    }
}
