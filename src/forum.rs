//! Creating a forum: the files `hashforum init` writes.
//!
//! ```text
//! DIR/ca/ca.crt, ca.key                 the dev CA (dev forums only)
//! DIR/server/hashforum.toml             server config
//! DIR/server/tls.crt, tls.key, ca.crt   server certificate and the client CA
//! DIR/server/log.key, log.pub           the forum's Ed25519 log key
//! DIR/server/genesis.entry              entry 0, signed by the log key
//! DIR/identities/NAME/                  one identity per member (dev forums)
//! DIR/replica-N/hashforum.toml           a replica's config, certificate and key (dev, `--replicas`),
//! DIR/replica-N/cosigner.vkey            and the verifier key of its cosignatures
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use ed25519_dalek::VerifyingKey;

use crate::config::{
    DevFiles, FileConfig, Limits, LogFiles, MetricsConfig, QuotaConfig, ReplicaFiles, TlsFiles,
};
use crate::identity::{Identity, IdentityFile};
use crate::log::checkpoint::LogSigner;
use crate::pki::{self, Ca};
use crate::types::{MemberId, Role};
use crate::{crypto, fsutil, genesis};

/// The name of the admin identity `init --dev` creates.
pub const DEV_ADMIN: &str = "admin";
/// The file, in a forum's directory, holding the log's verifier key.
pub const VKEY_FILE: &str = "forum.vkey";

/// The default origin of dev forums.
pub const DEV_ORIGIN: &str = "hashforum.dev/forum";

/// What `init` needs besides the PKI.
pub struct ForumSpec {
    /// Where to write.
    pub dir: PathBuf,
    /// The server's listen address (also the identities' server address).
    pub listen: SocketAddr,
    /// The log's origin line.
    pub origin: String,
}

/// Creates a dev forum: CA, server certificate for `localhost` and `127.0.0.1`, log key,
/// an `admin` identity and one identity per member (contributor and reader), server config
/// and the genesis entry. With `replicas`, also `replica-1`..`replica-N`: members with the
/// `replica` role, each with a ready server directory listening on the ports after the
/// primary's.
///
/// # Errors
/// When `dir` already holds a forum, a member name is invalid or a file cannot be written.
pub fn init_dev(spec: &ForumSpec, members: &[String], replicas: u16) -> anyhow::Result<()> {
    let replica_names: Vec<String> = (1..=replicas).map(|i| format!("replica-{i}")).collect();
    let mut names = vec![DEV_ADMIN.to_owned()];
    for m in members {
        MemberId::parse(m).map_err(|e| anyhow::anyhow!("--member {m:?}: {e}"))?;
        if names.contains(m) {
            bail!("--member {m:?} given twice (or named like the admin)");
        }
        names.push(m.clone());
    }
    let server_dir = prepare(&spec.dir)?;
    let ca = Ca::new("hashforum dev CA")?;
    let ca_dir = spec.dir.join("ca");
    std::fs::create_dir_all(&ca_dir)?;
    std::fs::write(ca_dir.join("ca.crt"), &ca.certified.cert_pem)?;
    fsutil::write_private(&ca_dir.join("ca.key"), ca.certified.key_pem.as_bytes())?;
    let server_cert = ca.issue_server(&["localhost", "127.0.0.1"])?;
    let mut founders = Vec::new();
    for name in &replica_names {
        if names.contains(name) {
            bail!("--member {name:?} is the name of a replica");
        }
    }
    for name in names.iter().chain(&replica_names) {
        let dir = spec.dir.join("identities").join(name);
        let server = format!("https://{}", spec.listen);
        let (cert_der, key) = issue_identity(&ca, name, &server, &spec.origin, &dir)?;
        let roles = if name == DEV_ADMIN {
            vec![Role::Admin, Role::Reader]
        } else if replica_names.contains(name) {
            vec![Role::Replica]
        } else {
            vec![Role::Contributor, Role::Reader]
        };
        founders.push(genesis::Founder {
            member_id: name.clone(),
            display_name: name.clone(),
            roles,
            cert_der,
            signing_key: key,
        });
    }
    write_server(
        spec,
        &server_dir,
        &server_cert,
        &ca.certified.cert_pem,
        &founders,
        Some(dev_metrics(spec, 0)?),
    )?;
    let mut config = FileConfig::read(&server_dir.join("hashforum.toml"))?;
    config.dev = Some(DevFiles {
        ca_cert: "../ca/ca.crt".into(),
        ca_key: "../ca/ca.key".into(),
    });
    std::fs::write(server_dir.join("hashforum.toml"), render_config(&config))?;
    for (i, name) in (1u16..).zip(&replica_names) {
        write_dev_replica(spec, &ca, name, i)?;
    }
    Ok(())
}

/// Writes `DIR/<name>/`: a replica's server config, certificate and key, listening on the
/// primary's port + `i`, following the primary as the member `name`.
fn write_dev_replica(spec: &ForumSpec, ca: &Ca, name: &str, i: u16) -> anyhow::Result<()> {
    let dir = spec.dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let cert = ca.issue_server(&["localhost", "127.0.0.1"])?;
    std::fs::write(dir.join("tls.crt"), &cert.cert_pem)?;
    fsutil::write_private(&dir.join("tls.key"), cert.key_pem.as_bytes())?;
    std::fs::write(dir.join("ca.crt"), &ca.certified.cert_pem)?;
    let port = spec
        .listen
        .port()
        .checked_add(i)
        .context("the replicas' ports would pass 65535")?;
    let config = FileConfig {
        listen: SocketAddr::new(spec.listen.ip(), port),
        data_dir: "data".into(),
        tls: TlsFiles {
            cert: "tls.crt".into(),
            key: "tls.key".into(),
            client_ca: "ca.crt".into(),
        },
        log: None,
        replica: Some(ReplicaFiles {
            primary: format!("https://{}", spec.listen),
            forum_vkey: format!("../{VKEY_FILE}").into(),
            identity: format!("../identities/{name}").into(),
            evidence_dir: "evidence".into(),
            poll: std::time::Duration::from_secs(2),
        }),
        primary: None,
        dev: None,
        limits: Limits::default(),
        quotas: QuotaConfig::default(),
        metrics: Some(dev_metrics(spec, i)?),
    };
    std::fs::write(dir.join("hashforum.toml"), render_config(&config))?;
    // What members pass to `verify --witness` to require this replica's cosignature.
    let key = Identity::load(&spec.dir.join("identities").join(name))?
        .signing_key
        .verifying_key();
    let vkey = crate::log::cosignature::WitnessVerifier::new(name, &key)
        .map_err(|e| anyhow::anyhow!("{name}'s cosigner key: {e}"))?
        .vkey();
    std::fs::write(dir.join("cosigner.vkey"), format!("{vkey}\n"))?;
    Ok(())
}

/// Issues a member identity from a (dev) CA into `dir`: a TLS client certificate and key, a new
/// Ed25519 signing key, the CA certificate, the forum's origin and the server address. Returns the certificate's
/// DER (its SHA-256 binds it to the member) and the public signing key.
///
/// # Errors
/// When the certificate cannot be made or a file cannot be written.
pub fn issue_identity(
    ca: &Ca,
    member: &str,
    server: &str,
    origin: &str,
    dir: &Path,
) -> anyhow::Result<(Vec<u8>, ed25519_dalek::VerifyingKey)> {
    let cert = ca.issue_client(member)?;
    let key = crypto::generate_key();
    let file = IdentityFile {
        member: member.to_owned(),
        origin: origin.to_owned(),
        server: server.to_owned(),
        server_name: "localhost".into(),
    };
    Identity::write(
        dir,
        &file,
        &cert.cert_pem,
        &cert.key_pem,
        &ca.certified.cert_pem,
        &key,
    )?;
    Ok((cert.cert_der, key.verifying_key()))
}

/// The production `init`: an existing CA and server certificate, and the first admin's client
/// certificate and Ed25519 public key (made by the admin, whose private keys never leave them).
pub struct ProductionSpec {
    /// CA certificate (PEM) that issues member client certificates.
    pub ca_cert: PathBuf,
    /// Server certificate chain (PEM).
    pub server_cert: PathBuf,
    /// Server private key (PEM).
    pub server_key: PathBuf,
    /// The first admin's member id.
    pub admin_id: String,
    /// The first admin's TLS client certificate (PEM).
    pub admin_cert: PathBuf,
    /// The first admin's Ed25519 public key (SPKI PEM).
    pub admin_public_key: PathBuf,
}

/// Creates a production forum in `spec.dir`: log key, server config and genesis entry.
///
/// # Errors
/// When a file is missing or malformed, or `dir` already holds a forum.
pub fn init_production(spec: &ForumSpec, prod: &ProductionSpec) -> anyhow::Result<()> {
    MemberId::parse(&prod.admin_id).map_err(|e| anyhow::anyhow!("--admin-id: {e}"))?;
    let read = |p: &Path| std::fs::read_to_string(p).with_context(|| p.display().to_string());
    let ca_pem = read(&prod.ca_cert)?;
    let admin_pem = read(&prod.admin_cert)?;
    let admin_der = pki::pem_to_der(&admin_pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", prod.admin_cert.display()))?;
    let admin_key: VerifyingKey = crypto::read_public_key(&prod.admin_public_key)?;
    let server_cert = pki::CertifiedKey {
        cert_pem: read(&prod.server_cert)?,
        key_pem: read(&prod.server_key)?,
        cert_der: Vec::new(),
    };
    let server_dir = prepare(&spec.dir)?;
    let founder = genesis::Founder {
        member_id: prod.admin_id.clone(),
        display_name: prod.admin_id.clone(),
        roles: vec![Role::Admin, Role::Reader],
        cert_der: admin_der,
        signing_key: admin_key,
    };
    write_server(spec, &server_dir, &server_cert, &ca_pem, &[founder], None)
}

fn prepare(dir: &Path) -> anyhow::Result<PathBuf> {
    let server_dir = dir.join("server");
    if server_dir.join("hashforum.toml").exists() {
        bail!("{} already holds a forum", dir.display());
    }
    std::fs::create_dir_all(&server_dir)
        .with_context(|| format!("creating {}", server_dir.display()))?;
    Ok(server_dir)
}

fn write_server(
    spec: &ForumSpec,
    server_dir: &Path,
    cert: &pki::CertifiedKey,
    ca_pem: &str,
    founders: &[genesis::Founder],
    metrics: Option<MetricsConfig>,
) -> anyhow::Result<()> {
    std::fs::write(server_dir.join("tls.crt"), &cert.cert_pem)?;
    fsutil::write_private(&server_dir.join("tls.key"), cert.key_pem.as_bytes())?;
    std::fs::write(server_dir.join("ca.crt"), ca_pem)?;
    let log_key = crypto::generate_key();
    crypto::write_signing_key(&server_dir.join("log.key"), &log_key)?;
    crypto::write_public_key(&server_dir.join("log.pub"), &log_key.verifying_key())?;
    // The log's signed-note verifier key: all anyone needs to check checkpoints and receipts.
    let vkey = LogSigner::new(&spec.origin, log_key.clone())?.vkey();
    std::fs::write(spec.dir.join(VKEY_FILE), format!("{vkey}\n"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let entry = genesis::create(&log_key, &spec.origin, founders, u64::try_from(now)?);
    std::fs::write(server_dir.join("genesis.entry"), entry)?;
    let config = FileConfig {
        listen: spec.listen,
        data_dir: "data".into(),
        tls: TlsFiles {
            cert: "tls.crt".into(),
            key: "tls.key".into(),
            client_ca: "ca.crt".into(),
        },
        log: Some(LogFiles {
            origin: spec.origin.clone(),
            signing_key: "log.key".into(),
            genesis: "genesis.entry".into(),
        }),
        replica: None,
        primary: None,
        dev: None,
        limits: Limits::default(),
        quotas: QuotaConfig::default(),
        metrics,
    };
    std::fs::write(server_dir.join("hashforum.toml"), render_config(&config))?;
    Ok(())
}

/// The first metrics port of a dev forum: the primary's; replica `i` has this + `i`.
pub const DEV_METRICS_PORT: u16 = 9464;

/// A dev server's `[metrics]`: on the forum's loopback address, at [`DEV_METRICS_PORT`] + `i`
/// (`i` = 0 for the primary); at any free port when the forum's own port is (tests).
fn dev_metrics(spec: &ForumSpec, i: u16) -> anyhow::Result<MetricsConfig> {
    let port = if spec.listen.port() == 0 {
        0
    } else {
        DEV_METRICS_PORT
            .checked_add(i)
            .context("the replicas' metrics ports would pass 65535")?
    };
    Ok(MetricsConfig {
        listen: SocketAddr::new(spec.listen.ip(), port),
    })
}

fn render_config(config: &FileConfig) -> String {
    let body = toml::to_string(config).expect("config serializes");
    format!(
        "# hashforum server configuration, written by `hashforum init`.\n\
         # Relative paths are relative to this file. See deploy/hashforum.example.toml.\n\n{body}"
    )
}
