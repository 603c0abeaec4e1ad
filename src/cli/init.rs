//! `hashforum init`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::forum::{self, ForumSpec, ProductionSpec, DEV_ORIGIN};

/// `hashforum init --dev DIR [--member NAME]...`, or the production form with an existing CA.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create the forum.
    pub dir: PathBuf,
    /// Create a development forum with its own CA and identities for every member.
    #[arg(long)]
    pub dev: bool,
    /// A member company to create (dev only; repeatable). Members get contributor and reader.
    #[arg(long = "member", value_name = "NAME", requires = "dev")]
    pub members: Vec<String>,
    /// Also create N read replicas (dev only): members `replica-1`.. with the `replica` role,
    /// each with a server config in DIR/replica-N listening on the ports after --listen's.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "dev")]
    pub replicas: u16,
    /// The address the server will listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// The log's origin: a unique, never reused name such as `forum.example/hashes`.
    #[arg(long, default_value = DEV_ORIGIN)]
    pub origin: String,
    /// Production: the CA certificate (PEM) that issues member client certificates.
    #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
    pub ca_cert: Option<PathBuf>,
    /// Production: the server's certificate chain (PEM).
    #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
    pub server_cert: Option<PathBuf>,
    /// Production: the server's private key (PEM).
    #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
    pub server_key: Option<PathBuf>,
    /// Production: the first admin's member id.
    #[arg(long, default_value = "admin", conflicts_with = "dev")]
    pub admin_id: String,
    /// Production: the first admin's TLS client certificate (PEM).
    #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
    pub admin_cert: Option<PathBuf>,
    /// Production: the first admin's Ed25519 public key (SPKI PEM).
    #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
    pub admin_public_key: Option<PathBuf>,
}

/// Runs `init`.
///
/// # Errors
/// When the forum cannot be created.
pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let spec = ForumSpec {
        dir: args.dir.clone(),
        listen: args.listen,
        origin: args.origin,
    };
    if args.dev {
        forum::init_dev(&spec, &args.members, args.replicas)?;
        println!("created dev forum in {}", args.dir.display());
        println!(
            "  server config: {}",
            args.dir.join("server/hashforum.toml").display()
        );
        for i in 1..=args.replicas {
            println!(
                "  replica {i}:     {}",
                args.dir
                    .join(format!("replica-{i}/hashforum.toml"))
                    .display()
            );
        }
        println!("  identities:    {}", args.dir.join("identities").display());
    } else {
        // clap's `required_unless_present` guarantees these are set without --dev.
        let need = |p: Option<PathBuf>, flag: &str| {
            p.ok_or_else(|| anyhow::anyhow!("{flag} is required without --dev"))
        };
        let prod = ProductionSpec {
            ca_cert: need(args.ca_cert, "--ca-cert")?,
            server_cert: need(args.server_cert, "--server-cert")?,
            server_key: need(args.server_key, "--server-key")?,
            admin_id: args.admin_id,
            admin_cert: need(args.admin_cert, "--admin-cert")?,
            admin_public_key: need(args.admin_public_key, "--admin-public-key")?,
        };
        forum::init_production(&spec, &prod)?;
        println!("created forum in {}", args.dir.display());
        println!(
            "  server config: {}",
            args.dir.join("server/hashforum.toml").display()
        );
        println!(
            "  log public key: {}",
            args.dir.join("server/log.pub").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
