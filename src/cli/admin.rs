//! What `member` and `key` share: signing admin actions with the admin's identity and
//! submitting them, and reading the member directory.

use std::path::Path;
use std::process::ExitCode;

use super::output::print_receipts;
use super::{connect, ClientOpts};
use crate::client::Client;
use crate::identity::Identity;
use crate::pb;
use crate::pki;
use crate::statement::Signer;

/// Signs each action with the admin identity (issued now) and submits them in one call, all
/// or none; prints each one's log index.
///
/// # Errors
/// Whatever the identity or the server answers.
pub(super) async fn submit_actions(
    opts: &ClientOpts,
    bodies: Vec<pb::statement::Body>,
) -> anyhow::Result<ExitCode> {
    let admin = Signer::of(&Identity::load(opts.identity_dir()?)?);
    let envelopes = bodies.into_iter().map(|body| admin.admin(body)).collect();
    let mut client = connect(opts).await?;
    let receipts = client
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await?
        .into_inner()
        .receipts;
    print_receipts(&receipts, opts.json);
    Ok(ExitCode::SUCCESS)
}

/// One member from the directory.
///
/// # Errors
/// `NOT_FOUND` from the server for an unknown member.
pub(super) async fn get_member(client: &mut Client, name: &str) -> anyhow::Result<pb::Member> {
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

/// The dev CA: `--dev-ca DIR`, or `ca/` of the forum holding the admin identity
/// (`FORUM/identities/NAME`).
///
/// # Errors
/// When it cannot be found or read.
pub(super) fn load_dev_ca(dir: Option<&Path>, identity: &Path) -> anyhow::Result<pki::Ca> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => identity
            .parent()
            .and_then(Path::parent)
            .map(|forum| forum.join("ca"))
            .ok_or_else(|| anyhow::anyhow!("cannot find the dev CA; give --dev-ca DIR"))?,
    };
    let hint = "(--issue-identity needs the dev CA of a forum made by `init --dev`)";
    let cert = dir.join("ca.crt");
    let cert = std::fs::read_to_string(&cert)
        .map_err(|e| anyhow::anyhow!("{}: {e} {hint}", cert.display()))?;
    let key = dir.join("ca.key");
    let key = crate::fsutil::read_private(&key)
        .map_err(|e| anyhow::anyhow!("{}: {e} {hint}", key.display()))?;
    Ok(pki::Ca::load(&cert, &String::from_utf8(key)?)?)
}
