//! The `hashforum` command: one function per subcommand.

mod admin;
pub mod backup;
pub mod bench;
mod bench_lookup;
pub mod bench_pdq;
pub mod bench_sync;
pub mod bootstrap;
pub mod export;
pub mod feedback;
pub mod hash;
pub mod identity;
pub mod incident;
pub mod init;
mod input;
pub mod key;
pub mod log;
pub mod lookup;
pub mod matching;
pub mod member;
pub mod output;
pub mod provenance;
pub mod restore;
pub mod serve;
pub mod status;
pub mod submit;
pub mod sync;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use output::report_error;

/// hashforum: a shared, signed, verifiable hash registry.
#[derive(Debug, Parser)]
#[command(
    name = "hashforum",
    version,
    about,
    after_help = "Client options (--identity, --server, --json) may also come before the subcommand."
)]
pub struct Cli {
    /// How log lines (stderr) are written: `text` for people, `json` (one object a line)
    /// for log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "HASHFORUM_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line: time, level, target, message, fields and spans.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a forum: PKI (dev), log key, server config and the genesis entry.
    Init(init::InitArgs),
    /// Run the registry server.
    Serve(serve::ServeArgs),
    /// Sign and submit hashes (one, or a batch of `type:value` lines).
    Submit(submit::SubmitArgs),
    /// Look hashes up (one, or a batch of `type:value` lines).
    Lookup(lookup::LookupArgs),
    /// Find stored PDQ hashes within a Hamming distance: of a hash, a batch, or local images.
    Match(matching::MatchArgs),
    /// Hash local files (PDQ with quality, MD5, SHA-256); content never leaves the machine.
    Hash(hash::HashArgs),
    /// Say what you think of a hash in the registry (reader or contributor).
    Opinion(feedback::OpinionArgs),
    /// Retract your own submission of a hash (contributor).
    Retract(feedback::RetractArgs),
    /// Withdraw a hash for every member (admin).
    Withdraw(feedback::WithdrawArgs),
    /// Declare and close incidents (admin), and list them.
    Incident(incident::IncidentArgs),
    /// Manage members (admin) and read the member directory.
    Member(member::MemberArgs),
    /// Manage members' signing keys (admin) and list them.
    Key(key::KeyArgs),
    /// Make your own keys and certificate request, as a member.
    Identity(identity::IdentityArgs),
    /// Every entry about a hash, with proofs; --out writes a bundle anyone can verify.
    Provenance(provenance::ProvenanceArgs),
    /// Read the transparency log: checkpoints, entries, proofs.
    Log(log::LogArgs),
    /// Check receipts and whole logs offline, with the forum's verifier key alone.
    Verify(verify::VerifyArgs),
    /// Keep a verified local copy of the log and its views (reader), for `--local` queries.
    Sync(sync::SyncArgs),
    /// What a server is and how far its log is; for a replica, its lag behind the primary.
    Status(status::StatusArgs),
    /// Back up a server's data directory, while it serves or while it is stopped.
    Backup(backup::BackupArgs),
    /// Restore a primary's data directory from a backup, or confirm a restored one.
    Restore(restore::RestoreArgs),
    /// Start a new replica from a copied data directory, replayed and verified.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Write the live hashes of a local copy of the registry for another matcher (pytx).
    Export(export::ExportArgs),
    /// Measure ingest and lookup throughput against an in-process server.
    Bench(bench::BenchArgs),
}

impl Cli {
    /// Parses the process's command line, taking client options written before the
    /// subcommand too (see [`hoist_client_options`]). Exits with clap's message on an error.
    pub fn parse_args() -> Self {
        Self::parse_from(hoist_client_options(std::env::args_os().collect()))
    }
}

/// Moves [`ClientOpts`] written before the subcommand (`hashforum --identity DIR submit ...`)
/// to just after it, where the subcommand's parser takes them (they are `global` below it, so
/// `hashforum member --json list` works as well). Anything else before the subcommand is
/// left where it is, for clap to judge; a subcommand without client options refuses them.
pub fn hoist_client_options(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const WITH_VALUE: [&str; 2] = ["--identity", "--server"];
    const FLAGS: [&str; 1] = ["--json"];
    let mut rest = args.into_iter();
    let mut out: Vec<std::ffi::OsString> = rest.next().into_iter().collect();
    let mut hoisted = Vec::new();
    while let Some(arg) = rest.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            break;
        };
        let name = text.split_once('=').map_or(text, |(name, _)| name);
        if name == "--log-format" {
            // The top level's own option: it stays where it is, with its value.
            let inline = text.contains('=');
            out.push(arg);
            if !inline {
                out.extend(rest.next());
            }
        } else if WITH_VALUE.contains(&name) {
            let inline = text.contains('=');
            hoisted.push(arg);
            if !inline {
                hoisted.extend(rest.next());
            }
        } else if FLAGS.contains(&text) {
            hoisted.push(arg);
        } else {
            // The subcommand (or an option clap handles itself, like --help): client options
            // go right after it.
            let subcommand = !text.starts_with('-');
            out.push(arg);
            if subcommand {
                out.append(&mut hoisted);
            }
            break;
        }
    }
    out.append(&mut hoisted);
    out.extend(rest);
    out
}

/// Options every client command takes (before or after a subcommand).
#[derive(Debug, Args)]
pub struct ClientOpts {
    /// The identity directory (TLS certificate and key, signing key, CA, server address).
    #[arg(long, env = "HASHFORUM_IDENTITY", global = true)]
    pub identity: Option<PathBuf>,
    /// The server address, `host:port` or `https://host:port` (default: the identity's).
    #[arg(long, env = "HASHFORUM_SERVER", global = true)]
    pub server: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ClientOpts {
    /// The identity directory.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when neither `--identity` nor `HASHFORUM_IDENTITY` gives one.
    pub fn identity_dir(&self) -> Result<&std::path::Path, tonic::Status> {
        self.identity.as_deref().ok_or_else(|| {
            tonic::Status::invalid_argument("give --identity DIR or set HASHFORUM_IDENTITY")
        })
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the subcommand failed with; [`report_error`] prints it.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Serve(args) => serve::run(args).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Lookup(args) => lookup::run(args).await,
        Command::Match(args) => matching::run(args).await,
        Command::Hash(args) => hash::run(&args),
        Command::Opinion(args) => feedback::opinion(args).await,
        Command::Retract(args) => feedback::retract(args).await,
        Command::Withdraw(args) => feedback::withdraw(args).await,
        Command::Incident(args) => incident::run(args).await,
        Command::Member(args) => member::run(args).await,
        Command::Key(args) => key::run(args).await,
        Command::Identity(args) => identity::run(args),
        Command::Provenance(args) => provenance::run(args).await,
        Command::Log(args) => log::run(args).await,
        Command::Verify(args) => verify::run(&args),
        Command::Sync(args) => sync::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Backup(args) => backup::run(args).await,
        Command::Restore(args) => restore::run(args).await,
        Command::Bootstrap(args) => bootstrap::run(args).await,
        Command::Export(args) => export::run(&args),
        Command::Bench(args) => bench::run(args).await,
    }
}

/// A client of the local copy in `local`, or of the server.
async fn connect_or_local(
    opts: &ClientOpts,
    local: Option<&std::path::Path>,
) -> anyhow::Result<crate::client::Client> {
    match local {
        Some(dir) => crate::local::open(dir).await,
        None => connect(opts).await,
    }
}

async fn connect(opts: &ClientOpts) -> anyhow::Result<crate::client::Client> {
    let identity = crate::identity::Identity::load(opts.identity_dir()?)?;
    Ok(crate::client::Client::connect(&identity, opts.server.as_deref()).await?)
}

#[cfg(test)]
mod tests {
    use super::hoist_client_options;

    fn hoist(line: &str) -> String {
        let args = line.split(' ').map(Into::into).collect();
        let out: Vec<String> = hoist_client_options(args)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        out.join(" ")
    }

    #[test]
    fn client_options_before_the_subcommand_move_after_it() {
        assert_eq!(
            hoist("hashforum --identity D --json submit sha256:ab"),
            "hashforum submit --identity D --json sha256:ab"
        );
        assert_eq!(
            hoist("hashforum --server=h:1 member list"),
            "hashforum member --server=h:1 list"
        );
        // The top level's --log-format stays before the subcommand, with its value.
        assert_eq!(
            hoist("hashforum --identity D --log-format json submit x"),
            "hashforum --log-format json submit --identity D x"
        );
        assert_eq!(
            hoist("hashforum --log-format=json --json status"),
            "hashforum --log-format=json status --json"
        );
        // Already after: unchanged.
        assert_eq!(
            hoist("hashforum lookup --identity D sha256:ab"),
            "hashforum lookup --identity D sha256:ab"
        );
        // Other options before the subcommand are clap's to judge.
        assert_eq!(hoist("hashforum --help"), "hashforum --help");
        assert_eq!(
            hoist("hashforum --json --version"),
            "hashforum --version --json"
        );
        // Nothing after them: left for clap to refuse.
        assert_eq!(hoist("hashforum --identity"), "hashforum --identity");
    }
}
