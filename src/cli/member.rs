//! `hashforum member ...` and `hashforum key ...`: admin actions, signed by the admin's
//! identity and submitted as log entries, and the member directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::output::format_ms;
use super::{connect, ClientOpts};
use crate::client::Client;
use crate::entry::parse_public_key;
use crate::identity::Identity;
use crate::pb::statement::Body;
use crate::types::{MemberId, Role};
use crate::{crypto, forum, pb, pki};

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
}

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

/// Runs `member`.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn run_member(args: MemberArgs) -> anyhow::Result<ExitCode> {
    let opts = &args.client;
    let mut client = connect(opts).await?;
    let body = match args.command {
        MemberCommand::List => {
            let members = client
                .admin
                .list_members(pb::ListMembersRequest {})
                .await?
                .into_inner()
                .members;
            if opts.json {
                let list: Vec<Value> = members.iter().map(member_json).collect();
                println!("{}", Value::Array(list));
            } else {
                for m in &members {
                    println!(
                        "{}\t{}\t{}\t{}",
                        m.member_id,
                        status_name(m.status),
                        role_names(&m.roles).join(","),
                        m.display_name
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        MemberCommand::Show { name } => {
            let member = get_member(&mut client, &name).await?;
            if opts.json {
                println!("{}", member_json(&member));
            } else {
                print_member(&member);
            }
            return Ok(ExitCode::SUCCESS);
        }
        MemberCommand::History { name } => {
            let events = client
                .admin
                .get_member_history(pb::GetMemberHistoryRequest { member_id: name })
                .await?
                .into_inner()
                .events;
            if opts.json {
                let list: Vec<Value> = events
                    .iter()
                    .map(|e| {
                        json!({
                            "log_index": e.log_index,
                            "sequenced_at_unix_ms": e.sequenced_at_unix_ms,
                            "author": e.author,
                            "action": e.action,
                            "keyid": e.envelope.as_ref()
                                .and_then(|env| env.signatures.first())
                                .map(|s| s.keyid.clone()),
                        })
                    })
                    .collect();
                println!("{}", Value::Array(list));
            } else {
                for e in &events {
                    println!(
                        "{}\t{}\t{}\tby {}",
                        e.log_index,
                        format_ms(e.sequenced_at_unix_ms),
                        e.action,
                        e.author
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
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
            let (cert_der, key) = match (&cert, &issue_identity) {
                (Some(cert), _) => {
                    let pem = std::fs::read_to_string(cert)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
                    let der = pki::pem_to_der(&pem).map_err(|e| {
                        tonic::Status::invalid_argument(format!("--cert {}: {e}", cert.display()))
                    })?;
                    let key = public_key.as_deref().map(read_public_key).transpose()?;
                    (der, key)
                }
                (None, Some(dir)) => {
                    let ca = load_dev_ca(dev_ca.as_deref(), opts.identity_dir()?)?;
                    let admin = Identity::load(opts.identity_dir()?)?;
                    let (der, key) = forum::issue_identity(&ca, &name, &admin.file.server, dir)?;
                    (der, Some(key))
                }
                (None, None) => anyhow::bail!("give --cert PEM or --issue-identity DIR"),
            };
            let mut bodies = vec![Body::MemberAdded(pb::MemberAdded {
                member_id: name.clone(),
                display_name: display_name.unwrap_or_else(|| name.clone()),
                roles: roles.iter().map(|r| r.to_pb() as i32).collect(),
                cert_sha256: vec![crypto::cert_fingerprint(&cert_der).to_vec()],
            })];
            if let Some(key) = key {
                bodies.push(Body::KeyRegistered(pb::KeyRegistered {
                    member_id: name.clone(),
                    public_key: key.to_bytes().to_vec(),
                }));
            }
            return submit_actions(&mut client, opts, bodies).await;
        }
        MemberCommand::SetRoles { name, roles } => Body::RolesSet(pb::RolesSet {
            member_id: name,
            roles: parse_roles(&roles)?
                .iter()
                .map(|r| r.to_pb() as i32)
                .collect(),
        }),
        MemberCommand::Suspend { name, reason } => Body::MemberSuspended(pb::MemberSuspended {
            member_id: name,
            reason,
        }),
        MemberCommand::Reinstate { name, reason } => Body::MemberReinstated(pb::MemberReinstated {
            member_id: name,
            reason,
        }),
        MemberCommand::Remove { name, reason } => Body::MemberRemoved(pb::MemberRemoved {
            member_id: name,
            reason,
        }),
    };
    submit_actions(&mut client, opts, vec![body]).await
}

/// Runs `key`.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn run_key(args: KeyArgs) -> anyhow::Result<ExitCode> {
    let opts = &args.client;
    let mut client = connect(opts).await?;
    let body = match args.command {
        KeyCommand::List { name } => {
            let member = get_member(&mut client, &name).await?;
            if opts.json {
                println!("{}", member_json(&member)["keys"]);
            } else {
                for k in &member.keys {
                    println!("{}", key_line(k));
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        KeyCommand::Add { name, public_key } => Body::KeyRegistered(pb::KeyRegistered {
            member_id: name,
            public_key: read_public_key(&public_key)?.to_bytes().to_vec(),
        }),
        KeyCommand::Revoke {
            name,
            key_id,
            reason,
        } => Body::KeyRevoked(pb::KeyRevoked {
            member_id: name,
            keyid: key_id,
            reason,
        }),
    };
    submit_actions(&mut client, opts, vec![body]).await
}

/// Signs each action with the admin identity and submits them in one call (all or none).
async fn submit_actions(
    client: &mut Client,
    opts: &ClientOpts,
    bodies: Vec<Body>,
) -> anyhow::Result<ExitCode> {
    let admin = Identity::load(opts.identity_dir()?)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let envelopes = bodies
        .into_iter()
        .map(|body| {
            let statement = pb::Statement {
                author: admin.file.member.clone(),
                issued_at_unix_ms: now,
                body: Some(body),
            };
            crypto::sign_statement(&admin.signing_key, &statement)
        })
        .collect();
    let receipts = client
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await?
        .into_inner()
        .receipts;
    for r in &receipts {
        if opts.json {
            println!(
                "{}",
                json!({
                    "log_index": r.log_index,
                    "entry_hash": hex::encode(&r.entry_hash),
                    "duplicate": r.duplicate,
                })
            );
        } else {
            println!("logged at index {}", r.log_index);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn get_member(client: &mut Client, name: &str) -> anyhow::Result<pb::Member> {
    let member = client
        .admin
        .get_member(pb::GetMemberRequest {
            member_id: name.to_owned(),
        })
        .await?
        .into_inner()
        .member
        .ok_or_else(|| anyhow::anyhow!("the server sent no member"))?;
    Ok(member)
}

fn parse_roles(names: &[String]) -> Result<Vec<Role>, tonic::Status> {
    names
        .iter()
        .map(|n| {
            Role::parse(n.trim())
                .map_err(|e| tonic::Status::invalid_argument(format!("roles: {e}")))
        })
        .collect()
}

fn read_public_key(path: &Path) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    let key = crypto::read_public_key(path)?;
    parse_public_key(key.as_bytes()).map_err(|e| {
        tonic::Status::invalid_argument(format!("--public-key {}: {e}", path.display())).into()
    })
}

/// The dev CA: `--dev-ca DIR`, or `ca/` of the forum holding the admin identity
/// (`FORUM/identities/NAME`).
fn load_dev_ca(dir: Option<&Path>, identity: &Path) -> anyhow::Result<pki::Ca> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => identity
            .parent()
            .and_then(Path::parent)
            .map(|forum| forum.join("ca"))
            .ok_or_else(|| anyhow::anyhow!("cannot find the dev CA; give --dev-ca DIR"))?,
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (--issue-identity needs the dev CA of a forum made by `init --dev`)",
                path.display()
            )
        })
    };
    Ok(pki::Ca::load(&read("ca.crt")?, &read("ca.key")?)?)
}

fn status_name(status: i32) -> &'static str {
    match pb::MemberStatus::try_from(status) {
        Ok(pb::MemberStatus::Active) => "active",
        Ok(pb::MemberStatus::Suspended) => "suspended",
        Ok(pb::MemberStatus::Removed) => "removed",
        _ => "unknown",
    }
}

fn role_names(roles: &[i32]) -> Vec<&'static str> {
    roles
        .iter()
        .map(|r| Role::from_pb(*r).map_or("unknown", Role::name))
        .collect()
}

fn key_line(k: &pb::SigningKey) -> String {
    let revoked = k
        .revoked_at_log_index
        .map_or(String::new(), |i| format!(", revoked at {i}"));
    format!(
        "{}\tvalid from {}{revoked}",
        k.keyid, k.valid_from_log_index
    )
}

fn member_json(m: &pb::Member) -> Value {
    json!({
        "member_id": m.member_id,
        "display_name": m.display_name,
        "roles": role_names(&m.roles),
        "status": status_name(m.status),
        "added_at_log_index": m.added_at_log_index,
        "cert_sha256": m.cert_sha256.iter().map(hex::encode).collect::<Vec<_>>(),
        "keys": m.keys.iter().map(|k| json!({
            "keyid": k.keyid,
            "public_key": hex::encode(&k.public_key),
            "valid_from_log_index": k.valid_from_log_index,
            "revoked_at_log_index": k.revoked_at_log_index,
        })).collect::<Vec<_>>(),
    })
}

fn print_member(m: &pb::Member) {
    println!("member:   {}", m.member_id);
    println!("name:     {}", m.display_name);
    println!("status:   {}", status_name(m.status));
    println!("roles:    {}", role_names(&m.roles).join(", "));
    println!("added at: log index {}", m.added_at_log_index);
    for fp in &m.cert_sha256 {
        println!("cert:     sha256 {}", hex::encode(fp));
    }
    for k in &m.keys {
        println!("key:      {}", key_line(k));
    }
}
