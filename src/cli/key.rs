//! `hashforum key ...`: members' signing keys. Rotation is `add`, then `revoke`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::admin::{get_member, submit_actions};
use super::input::read_public_key;
use super::output::{key_json, key_line};
use super::{connect, ClientOpts};
use crate::statement::admin;

/// `hashforum key ...`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List a member's signing keys.
    List {
        /// The member.
        name: String,
    },
    /// Register a signing key for a member (admin).
    Add {
        /// The member.
        name: String,
        /// The Ed25519 public key (PEM).
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
    /// Revoke a member's signing key (admin). Rotation is add, then revoke.
    Revoke {
        /// The member.
        name: String,
        /// The key id.
        key_id: String,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// Runs `key`.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn run(args: KeyArgs) -> anyhow::Result<ExitCode> {
    let opts = &args.client;
    let body = match args.command {
        KeyCommand::List { name } => {
            let member = get_member(&mut connect(opts).await?, &name).await?;
            if opts.json {
                println!(
                    "{}",
                    Value::Array(member.keys.iter().map(key_json).collect())
                );
            } else {
                for k in &member.keys {
                    println!("{}", key_line(k));
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        KeyCommand::Add { name, public_key } => {
            admin::register_key(&name, &read_public_key(&public_key)?)
        }
        KeyCommand::Revoke {
            name,
            key_id,
            reason,
        } => admin::revoke_key(&name, &key_id, &reason),
    };
    submit_actions(opts, vec![body]).await
}
