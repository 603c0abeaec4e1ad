//! `hashforum identity new`: a member makes its own keys, which never leave its machine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::types::MemberId;
use crate::{crypto, fsutil, pki};

/// `hashforum identity ...`.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: IdentityCommand,
}

/// Identity subcommands.
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Generate a signing key and a TLS key with a certificate signing request in DIR.
    New {
        /// The directory to create.
        dir: PathBuf,
        /// The member id the forum will know you by.
        #[arg(long)]
        name: String,
    },
}

/// Runs `identity`.
///
/// # Errors
/// An invalid name, an existing directory, or a file that cannot be written.
pub fn run(args: IdentityArgs) -> anyhow::Result<ExitCode> {
    let IdentityCommand::New { dir, name } = args.command;
    MemberId::parse(&name).map_err(|e| tonic::Status::invalid_argument(format!("--name: {e}")))?;
    if dir.exists() {
        anyhow::bail!("{} already exists", dir.display());
    }
    std::fs::create_dir_all(&dir)?;
    let (tls_key, csr) = pki::client_csr(&name)?;
    fsutil::write_private(&dir.join("tls.key"), tls_key.as_bytes())?;
    std::fs::write(dir.join("tls.csr"), csr)?;
    let signing_key = crypto::generate_key();
    crypto::write_signing_key(&dir.join("signing.key"), &signing_key)?;
    crypto::write_public_key(&dir.join("signing.pub"), &signing_key.verifying_key())?;
    println!(
        "Wrote {dir}/tls.key, tls.csr, signing.key and signing.pub (key id {keyid}).\n\
         Send tls.csr and signing.pub to a forum admin; keep the .key files here. With the\n\
         signed certificate (tls.crt), the forum CA (ca.crt) and an identity.toml naming the\n\
         server, this directory becomes your --identity.",
        dir = dir.display(),
        keyid = crypto::key_id(&signing_key.verifying_key()),
    );
    Ok(ExitCode::SUCCESS)
}
