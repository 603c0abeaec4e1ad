//! `hashforum member ...`: admin actions on members, signed by the admin's identity and
//! submitted as log entries, and the member directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::admin::{get_member, load_dev_ca, submit_actions};
use super::input::{parse_roles, read_cert_fingerprint, read_public_key};
use super::output::{event_json, event_line, member_json, member_line, member_text};
use super::{connect, ClientOpts};
use crate::identity::Identity;
use crate::statement::admin;
use crate::types::MemberId;
use crate::{forum, pb};

/// `hashforum member ...`.
#[derive(Debug, Args)]
pub struct MemberArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: MemberCommand,
}

/// Member subcommands.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member (admin).
    Add {
        /// The new member's id.
        name: String,
        /// Its roles, comma-separated: admin, contributor, reader, observer, replica.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Display name (default: the id).
        #[arg(long)]
        display_name: Option<String>,
        /// The member's TLS client certificate (PEM), made from its own key.
        #[arg(long, value_name = "PEM", required_unless_present = "issue_identity")]
        cert: Option<PathBuf>,
        /// The member's Ed25519 public key (PEM), registered with it.
        #[arg(long, value_name = "FILE", conflicts_with = "issue_identity")]
        public_key: Option<PathBuf>,
        /// Dev forums only: issue a certificate from the dev CA, generate the member's keys
        /// and write a ready identity directory to DIR.
        #[arg(long, value_name = "DIR", conflicts_with = "cert")]
        issue_identity: Option<PathBuf>,
        /// The dev CA directory (default: `ca/` of the forum the admin identity is in).
        #[arg(long, value_name = "DIR")]
        dev_ca: Option<PathBuf>,
    },
    /// List the members.
    List,
    /// Show one member.
    Show {
        /// The member.
        name: String,
    },
    /// Every entry that changed a member: who signed it, when, at which log index.
    History {
        /// The member.
        name: String,
    },
    /// Replace a member's roles (admin).
    SetRoles {
        /// The member.
        name: String,
        /// Its roles, comma-separated.
        #[arg(value_delimiter = ',', required = true)]
        roles: Vec<String>,
    },
    /// Suspend a member (admin): its calls are refused until reinstated.
    Suspend {
        /// The member.
        name: String,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reinstate a suspended member (admin).
    Reinstate {
        /// The member.
        name: String,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove a member for good (admin). Its entries stay in the log and still verify.
    Remove {
        /// The member.
        name: String,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Bind or unbind a member's TLS client certificates (admin).
    Cert {
        /// What to do.
        #[command(subcommand)]
        command: CertCommand,
    },
}

/// `member cert` subcommands. Rotation is `add` (the new certificate), then `remove` (the old).
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Bind a certificate to a member (admin).
    Add {
        /// The member.
        name: String,
        /// The certificate (PEM).
        #[arg(long, value_name = "PEM")]
        cert: PathBuf,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Unbind a certificate from a member (admin): it authenticates nobody from then on.
    Remove {
        /// The member.
        name: String,
        /// The certificate (PEM).
        #[arg(long, value_name = "PEM", required_unless_present = "sha256")]
        cert: Option<PathBuf>,
        /// Or its SHA-256 fingerprint, as `member show` prints it.
        #[arg(long, value_name = "HEX", conflicts_with = "cert")]
        sha256: Option<String>,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// Runs `member`.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn run(args: MemberArgs) -> anyhow::Result<ExitCode> {
    let opts = &args.client;
    let bodies = match args.command {
        MemberCommand::List => return list(opts).await,
        MemberCommand::Show { name } => {
            let member = get_member(&mut connect(opts).await?, &name).await?;
            if opts.json {
                println!("{}", member_json(&member));
            } else {
                print!("{}", member_text(&member));
            }
            return Ok(ExitCode::SUCCESS);
        }
        MemberCommand::History { name } => return history(opts, name).await,
        MemberCommand::Add {
            name,
            roles,
            display_name,
            cert,
            public_key,
            issue_identity,
            dev_ca,
        } => {
            let roles = parse_roles(&roles)?;
            MemberId::parse(&name)
                .map_err(|e| tonic::Status::invalid_argument(format!("member id: {e}")))?;
            let (fingerprint, key) = match (&cert, &issue_identity) {
                (Some(cert), _) => {
                    let key = public_key.as_deref().map(read_public_key).transpose()?;
                    (read_cert_fingerprint(cert)?, key)
                }
                (None, Some(dir)) => {
                    let ca = load_dev_ca(dev_ca.as_deref(), opts.identity_dir()?)?;
                    let admin = Identity::load(opts.identity_dir()?)?;
                    let (der, key) = forum::issue_identity(
                        &ca,
                        &name,
                        &admin.file.server,
                        &admin.file.origin,
                        dir,
                    )?;
                    (
                        crate::crypto::cert_fingerprint(&der).as_bytes().to_vec(),
                        Some(key),
                    )
                }
                (None, None) => anyhow::bail!("give --cert PEM or --issue-identity DIR"),
            };
            let display_name = display_name.unwrap_or_else(|| name.clone());
            let mut bodies = vec![admin::add_member(
                &name,
                &display_name,
                &roles,
                vec![fingerprint],
            )];
            bodies.extend(key.map(|key| admin::register_key(&name, &key)));
            bodies
        }
        MemberCommand::SetRoles { name, roles } => {
            vec![admin::set_roles(&name, &parse_roles(&roles)?)]
        }
        MemberCommand::Suspend { name, reason } => vec![admin::suspend(&name, &reason)],
        MemberCommand::Reinstate { name, reason } => vec![admin::reinstate(&name, &reason)],
        MemberCommand::Remove { name, reason } => vec![admin::remove(&name, &reason)],
        MemberCommand::Cert { command } => vec![cert_action(command)?],
    };
    submit_actions(opts, bodies).await
}

async fn list(opts: &ClientOpts) -> anyhow::Result<ExitCode> {
    let members = connect(opts)
        .await?
        .admin
        .list_members(pb::ListMembersRequest {})
        .await?
        .into_inner()
        .members;
    if opts.json {
        println!(
            "{}",
            Value::Array(members.iter().map(member_json).collect())
        );
    } else {
        for m in &members {
            println!("{}", member_line(m));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn history(opts: &ClientOpts, name: String) -> anyhow::Result<ExitCode> {
    let events = connect(opts)
        .await?
        .admin
        .get_member_history(pb::GetMemberHistoryRequest { member_id: name })
        .await?
        .into_inner()
        .events;
    if opts.json {
        println!("{}", Value::Array(events.iter().map(event_json).collect()));
    } else {
        for e in &events {
            println!("{}", event_line(e));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cert_action(command: CertCommand) -> anyhow::Result<pb::statement::Body> {
    Ok(match command {
        CertCommand::Add { name, cert, reason } => {
            admin::bind_cert(&name, &read_cert_fingerprint(&cert)?, &reason)
        }
        CertCommand::Remove {
            name,
            cert,
            sha256,
            reason,
        } => {
            let fingerprint = match (cert, sha256) {
                (Some(cert), _) => read_cert_fingerprint(&cert)?,
                (None, Some(hex)) => hex::decode(hex.trim()).map_err(|e| {
                    tonic::Status::invalid_argument(format!("--sha256: not hex ({e})"))
                })?,
                (None, None) => anyhow::bail!("give --cert PEM or --sha256 HEX"),
            };
            admin::unbind_cert(&name, &fingerprint, &reason)
        }
    })
}
