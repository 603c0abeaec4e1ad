//! `hashforum status`: what a server is, how far its log is, and a replica's lag.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{connect, ClientOpts};
use crate::pb;
use crate::pb::get_status_response::Mode;

/// `hashforum status [--json]`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Runs `status`: exits 0, or 1 when the server stopped advancing its log (`halted`).
///
/// # Errors
/// Whatever the server answers.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.client).await?;
    let s = client
        .log
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner();
    let mode = match s.mode() {
        Mode::Primary => "primary",
        Mode::Replica => "replica",
        Mode::Unspecified => "unknown",
    };
    if args.client.json {
        println!(
            "{:#}",
            json!({
                "mode": mode,
                "size": s.size,
                "checkpoint": String::from_utf8_lossy(&s.checkpoint),
                "primary": s.primary,
                "primary_size": s.primary_size,
                "lag_entries": s.lag_entries,
                "lag_seconds": s.lag_seconds,
                "halted": s.halted,
                "evidence": s.evidence,
                "cosigned_by": s.cosigned_by,
                "disk_full": s.disk_full,
                "restored_unconfirmed_size": s.restored_unconfirmed_size,
            })
        );
    } else {
        println!("{mode}, {} entries", s.size);
        if s.mode() == Mode::Replica {
            println!(
                "primary {}: {} entries, {} behind ({} s)",
                s.primary, s.primary_size, s.lag_entries, s.lag_seconds
            );
        }
        if !s.cosigned_by.is_empty() {
            println!("latest checkpoint cosigned by {}", s.cosigned_by.join(", "));
        }
        if s.disk_full {
            println!("DISK FULL: writes are refused until there is room again");
        }
        if s.restored_unconfirmed_size > 0 {
            println!(
                "RESTORED from a backup of {} entries: writes are refused until the restore is \
                 confirmed (`hashforum restore --confirm`)",
                s.restored_unconfirmed_size
            );
        }
        if !s.halted.is_empty() {
            println!("HALTED: {}", s.halted);
        }
        for e in &s.evidence {
            println!("evidence: {e}");
        }
    }
    Ok(if s.halted.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
