//! `hashforum opinion`, `retract` and `withdraw`: statements about a hash already shared,
//! signed with the identity's key (issued now) and submitted as log entries.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::output::print_receipts;
use super::{connect, ClientOpts};
use crate::identity::Identity;
use crate::pb;
use crate::statement::{admin, Signer};
use crate::types::{ContentHash, HashType};

/// The hash a statement is about.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Hash type: pdq, md5, sha1, sha256 or url_md5.
    #[arg(long = "type", value_name = "TYPE")]
    pub hash_type: String,
    /// The hash, hex (typed in upper case, it is lowered).
    #[arg(long, value_parser = super::input::hex_arg)]
    pub value: String,
}

impl HashArgs {
    fn parse(&self) -> Result<ContentHash, tonic::Status> {
        let t = HashType::parse(&self.hash_type)
            .map_err(|e| tonic::Status::invalid_argument(format!("--type: {e}")))?;
        ContentHash::parse(t, &self.value)
            .map_err(|e| tonic::Status::invalid_argument(format!("--value: {e}")))
    }
}

/// What a member thinks of a hash.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OpinionArg {
    /// The hash is correctly labelled and belongs in the registry.
    Agree,
    /// The labels or the inclusion criteria do not fit.
    Disagree,
    /// The hash matched content that does not belong in the registry.
    FalsePositive,
}

impl OpinionArg {
    fn to_pb(self) -> pb::OpinionKind {
        match self {
            OpinionArg::Agree => pb::OpinionKind::Agree,
            OpinionArg::Disagree => pb::OpinionKind::Disagree,
            OpinionArg::FalsePositive => pb::OpinionKind::FalsePositive,
        }
    }
}

/// `hashforum opinion agree|disagree|false-positive --type T --value V [--reason R]`.
#[derive(Debug, Args)]
pub struct OpinionArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// What you think of the hash; your latest opinion replaces your earlier one.
    pub opinion: OpinionArg,
    #[command(flatten)]
    pub hash: HashArgs,
    /// Why (optional).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// `hashforum retract --type T --value V --reason R`.
#[derive(Debug, Args)]
pub struct RetractArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(flatten)]
    pub hash: HashArgs,
    /// Why you retract your submission.
    #[arg(long)]
    pub reason: String,
}

/// `hashforum withdraw --type T --value V --reason R` (admin).
#[derive(Debug, Args)]
pub struct WithdrawArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(flatten)]
    pub hash: HashArgs,
    /// Why the hash is withdrawn (e.g. the appeal that decided it).
    #[arg(long)]
    pub reason: String,
}

/// Runs `opinion`.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn opinion(args: OpinionArgs) -> anyhow::Result<ExitCode> {
    let hash = args.hash.parse()?;
    let signer = Signer::of(&Identity::load(args.client.identity_dir()?)?);
    let envelope = signer.opinion(&hash, args.opinion.to_pb(), &args.reason);
    submit(&args.client, envelope).await
}

/// Runs `retract`.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn retract(args: RetractArgs) -> anyhow::Result<ExitCode> {
    let hash = args.hash.parse()?;
    let signer = Signer::of(&Identity::load(args.client.identity_dir()?)?);
    submit(&args.client, signer.retract(&hash, &args.reason)).await
}

/// Runs `withdraw`.
///
/// # Errors
/// Local input errors as `INVALID_ARGUMENT`, and whatever the server answers.
pub async fn withdraw(args: WithdrawArgs) -> anyhow::Result<ExitCode> {
    let hash = args.hash.parse()?;
    let signer = Signer::of(&Identity::load(args.client.identity_dir()?)?);
    submit(
        &args.client,
        signer.admin(admin::withdraw(&hash, &args.reason)),
    )
    .await
}

/// Submits one signed entry and prints its receipt.
async fn submit(opts: &ClientOpts, envelope: pb::Envelope) -> anyhow::Result<ExitCode> {
    let mut client = connect(opts).await?;
    let receipt = client
        .registry
        .submit_entry(pb::SubmitEntryRequest {
            envelope: Some(envelope),
        })
        .await?
        .into_inner()
        .receipt;
    print_receipts(receipt.as_slice(), opts.json);
    Ok(ExitCode::SUCCESS)
}
