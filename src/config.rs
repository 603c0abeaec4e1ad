//! Server configuration: `FileConfig` as written in `hashforum.toml`, validated into `Config`.
//!
//! Relative paths are relative to the config file's directory. Secrets are file paths, never
//! inline values. `deploy/hashforum.example.toml` documents every key.
//!
//! Every key of `[limits]` has a default ([`Limits::default`]), so a config written before the
//! table existed still loads; [`Config::load`] refuses a zero limit at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::crypto;

/// Why a configuration was refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: toml::de::Error,
    },
    /// A key file is unusable.
    #[error(transparent)]
    Key(#[from] crypto::KeyFileError),
    /// The replica's identity is unusable.
    #[error("replica.identity: {0}")]
    Identity(String),
    /// A value is out of range, e.g. a zero limit.
    #[error("{path}: {key}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `limits.max-connections`.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Likewise, at a key named by the file's own contents (a role or member).
    #[error("{path}: {key}: {reason}")]
    InvalidAt {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `quotas.members.alpha.concurrent-calls`.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// `hashforum.toml`, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// Address to serve gRPC on.
    pub listen: SocketAddr,
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// TLS files.
    pub tls: TlsFiles,
    /// The log (the primary: it holds the log key). A replica has `[replica]` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogFiles>,
    /// A read replica: the primary it follows and the identity it follows it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaFiles>,
    /// The primary's options about its replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<PrimaryOptions>,
    /// Present for forums made by `init --dev`: where the dev CA lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<DevFiles>,
    /// Resource limits. Omitted (all defaults) in the files `init` writes.
    #[serde(default, skip_serializing_if = "Limits::is_default")]
    pub limits: Limits,
    /// Per-member quotas. Omitted: none.
    #[serde(default, skip_serializing_if = "QuotaConfig::is_empty")]
    pub quotas: QuotaConfig,
    /// The Prometheus endpoint. Omitted: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
}

/// `[metrics]`: where `/metrics` is served, over plain HTTP (keep it on loopback or a
/// management network; see `docs/operations.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsConfig {
    /// The address to serve on.
    pub listen: SocketAddr,
}

/// One member's allowance. A field left out sets no limit at this level (a broader level's,
/// if any, applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Quota {
    /// Entries submitted per second, on average. A call is admitted whenever the member is
    /// not in debt, whatever its size, and charged in full; the member's next calls wait until
    /// the debt is paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries_per_second: Option<u32>,
    /// Hashes looked up or matched per second, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookups_per_second: Option<u32>,
    /// `hashforum.v1` calls in progress at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrent_calls: Option<u32>,
}

impl Quota {
    fn zero(&self) -> Option<&'static str> {
        [
            ("entries-per-second", self.entries_per_second),
            ("lookups-per-second", self.lookups_per_second),
            ("concurrent-calls", self.concurrent_calls),
        ]
        .into_iter()
        .find_map(|(key, value)| (value == Some(0)).then_some(key))
    }
}

/// `[quotas]`: per-member allowances, so that one member's runaway pipeline cannot starve the
/// others. For each limit a member's own entry wins; else the most generous of its roles'
/// entries; else `default`; else none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuotaConfig {
    /// Every member.
    pub default: Quota,
    /// By role name (`admin`, `contributor`, `reader`, `observer`, `replica`).
    pub roles: std::collections::BTreeMap<String, Quota>,
    /// By member id.
    pub members: std::collections::BTreeMap<String, Quota>,
}

impl QuotaConfig {
    /// Whether no quota is set at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The first invalid key: a zero limit or an unknown role.
    pub(crate) fn invalid(&self) -> Option<(String, &'static str)> {
        if let Some(key) = self.default.zero() {
            return Some((format!("quotas.default.{key}"), ZERO_QUOTA));
        }
        for (role, quota) in &self.roles {
            if crate::types::Role::parse(role).is_err() {
                return Some((format!("quotas.roles.{role}"), "not a role"));
            }
            if let Some(key) = quota.zero() {
                return Some((format!("quotas.roles.{role}.{key}"), ZERO_QUOTA));
            }
        }
        for (member, quota) in &self.members {
            if let Some(key) = quota.zero() {
                return Some((format!("quotas.members.{member}.{key}"), ZERO_QUOTA));
            }
        }
        None
    }
}

const ZERO_QUOTA: &str = "must be greater than zero (leave it out for no limit)";

/// `[limits]`: what one server commits to its peers. Each bounds memory, file descriptors or
/// time that a client (authenticated or not) could otherwise hold; `docs/operations.md` derives
/// the worst-case memory from them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// TCP connections held at once, including those still in their TLS handshake. Further
    /// connections wait in the kernel's accept queue until one closes.
    pub max_connections: usize,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: open calls per connection, streaming ones
    /// (health `Watch`, reflection) included.
    pub max_streams_per_connection: u32,
    /// Calls per connection whose handler runs at once; the others wait, unread.
    pub max_requests_per_connection: usize,
    /// `hashforum.v1` calls in progress at once over all connections, from admission (after
    /// authentication) until the last byte of the reply is sent. The others wait, unread.
    pub max_requests: usize,
    /// A call, from arrival to the last byte of its reply; a client's shorter `grpc-timeout`
    /// applies too. Health `Watch` and reflection streams are exempt.
    #[serde(with = "human_duration")]
    pub request_timeout: Duration,
    /// How long an admitted call waits for one of the `max-requests` slots before it is
    /// refused `UNAVAILABLE` (`OVERLOADED`, with a `RetryInfo`): past the machine's capacity,
    /// callers learn so quickly instead of queueing until their deadline.
    #[serde(with = "human_duration")]
    pub max_queue_wait: Duration,
    /// The TLS handshake, from TCP accept.
    #[serde(with = "human_duration")]
    pub tls_handshake_timeout: Duration,
    /// Interval of HTTP/2 PINGs on a connection.
    #[serde(with = "human_duration")]
    pub http2_keepalive_interval: Duration,
    /// A connection whose peer does not answer a PING within this is closed.
    #[serde(with = "human_duration")]
    pub http2_keepalive_timeout: Duration,
    /// Idle time before TCP keepalive probes start (`SO_KEEPALIVE`, `TCP_KEEPIDLE`).
    #[serde(with = "human_duration")]
    pub tcp_keepalive: Duration,
    /// At shutdown, how long open calls get to finish before their connections are closed.
    #[serde(with = "human_duration")]
    pub shutdown_grace: Duration,
    /// How far an admin statement's `issued_at_unix_ms` may be from the server's clock, either
    /// way, when it is first submitted: an admin action signed but never delivered cannot be
    /// replayed later than this.
    #[serde(with = "human_duration")]
    pub admin_statement_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            max_streams_per_connection: 16,
            max_requests_per_connection: 8,
            max_requests: 16,
            request_timeout: Duration::from_secs(60),
            max_queue_wait: Duration::from_secs(2),
            tls_handshake_timeout: Duration::from_secs(10),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(20),
            tcp_keepalive: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            admin_statement_window: crate::registry::ADMIN_FRESHNESS,
        }
    }
}

impl Limits {
    /// Whether every limit has its default value.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The first limit that is zero, by its config key. A zero count would accept nothing and
    /// a zero duration would fail every call.
    fn zero(&self) -> Option<&'static str> {
        let counts = [
            ("limits.max-connections", self.max_connections),
            (
                "limits.max-streams-per-connection",
                self.max_streams_per_connection as usize,
            ),
            (
                "limits.max-requests-per-connection",
                self.max_requests_per_connection,
            ),
            ("limits.max-requests", self.max_requests),
        ];
        let durations = [
            ("limits.request-timeout", self.request_timeout),
            ("limits.tls-handshake-timeout", self.tls_handshake_timeout),
            (
                "limits.http2-keepalive-interval",
                self.http2_keepalive_interval,
            ),
            (
                "limits.http2-keepalive-timeout",
                self.http2_keepalive_timeout,
            ),
            ("limits.tcp-keepalive", self.tcp_keepalive),
            ("limits.shutdown-grace", self.shutdown_grace),
            ("limits.admin-statement-window", self.admin_statement_window),
            ("limits.max-queue-wait", self.max_queue_wait),
        ];
        counts
            .into_iter()
            .find(|(_, n)| *n == 0)
            .map(|(key, _)| key)
            .or_else(|| {
                durations
                    .into_iter()
                    .find(|(_, d)| d.is_zero())
                    .map(|(key, _)| key)
            })
    }
}

/// Durations as humantime strings in the config: `"10s"`, `"1m 30s"`, `"500ms"`.
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// TLS files (PEM).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// The CA that issues member client certificates.
    pub client_ca: PathBuf,
}

/// The log's files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogFiles {
    /// The log's origin line, e.g. `hashforum.example/forum`.
    pub origin: String,
    /// The forum's Ed25519 log key (PKCS#8 PEM).
    pub signing_key: PathBuf,
    /// The genesis entry made by `hashforum init`.
    pub genesis: PathBuf,
}

/// `[replica]`: what a read replica follows, and as whom.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReplicaFiles {
    /// The primary's address, `https://host:port`.
    pub primary: String,
    /// The forum's verifier key (`forum.vkey`): the only thing the replica trusts.
    pub forum_vkey: PathBuf,
    /// The replica's member identity (a directory made by `identity new` or `init`, with the
    /// `replica` role): it connects to the primary with its certificate and cosigns with its
    /// signing key.
    pub identity: PathBuf,
    /// Where evidence of a forked, rolled-back or tampered primary is kept.
    #[serde(default = "default_evidence")]
    pub evidence_dir: PathBuf,
    /// How long the primary's checkpoint stream may stay silent before it is polled.
    #[serde(default = "default_poll", with = "human_duration")]
    pub poll: Duration,
}

fn default_evidence() -> PathBuf {
    "evidence".into()
}

fn default_poll() -> Duration {
    Duration::from_secs(2)
}

/// `[primary]`: the primary's options about its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrimaryOptions {
    /// Answer a write only once this many replicas cosigned a checkpoint that covers it (0:
    /// answer once it is durable here). With 1 or more, a primary lost with its disk loses no
    /// acknowledged entry.
    pub write_quorum: usize,
    /// How long a write waits for that quorum before it is answered `UNAVAILABLE` (its
    /// entries stay appended; resubmitting returns their receipts).
    #[serde(with = "human_duration")]
    pub cosignature_timeout: Duration,
}

impl Default for PrimaryOptions {
    fn default() -> Self {
        Self {
            write_quorum: 0,
            cosignature_timeout: Duration::from_secs(5),
        }
    }
}

/// The dev CA, for `member add --issue-identity`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DevFiles {
    /// CA certificate.
    pub ca_cert: PathBuf,
    /// CA private key.
    pub ca_key: PathBuf,
}

/// A validated configuration, with its files read.
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// Server certificate chain, PEM.
    pub tls_cert: Vec<u8>,
    /// Server key, PEM.
    pub tls_key: Vec<u8>,
    /// Client CA, PEM.
    pub client_ca: Vec<u8>,
    /// Log origin.
    pub origin: String,
    /// The TLS files' paths, for reloading them (`tls_cert`, `tls_key` and `client_ca` are
    /// what they held at start).
    pub tls_files: TlsFiles,
    /// Primary or replica, with what each needs.
    pub mode: Mode,
    /// Resource limits, none of them zero.
    pub limits: Limits,
    /// Per-member quotas, none of them zero.
    pub quotas: QuotaConfig,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: Option<SocketAddr>,
}

/// What a server is.
// One per server, made once at start-up: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Mode {
    /// The primary: the single writer, holding the log key.
    Primary {
        /// The log key.
        log_key: SigningKey,
        /// Genesis entry bytes.
        genesis: Vec<u8>,
        /// Options about its replicas.
        options: PrimaryOptions,
    },
    /// A read replica.
    Replica(ReplicaConfig),
}

/// A replica's validated `[replica]` section.
pub struct ReplicaConfig {
    /// The primary's address.
    pub primary: String,
    /// The forum's verifier.
    pub verifier: crate::log::checkpoint::LogVerifier,
    /// The replica's member identity.
    pub identity: crate::identity::Identity,
    /// Where evidence is kept.
    pub evidence_dir: PathBuf,
    /// Poll interval when the checkpoint stream is silent.
    pub poll: Duration,
}

impl FileConfig {
    /// Reads a config file.
    ///
    /// # Errors
    /// When it cannot be read or parsed.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// The first value that cannot be right whatever the files it names hold, as its key and
    /// why: a zero limit, a zero poll, `[primary]` options on a replica, a write quorum without
    /// a timeout, or neither or both of `[log]` and `[replica]`. [`Config::load`] checks this
    /// before it reads any other file.
    ///
    /// # Errors
    /// The key and the reason.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if let Some(key) = self.limits.zero() {
            return Err((key, "must be greater than zero"));
        }
        if self.replica.as_ref().is_some_and(|r| r.poll.is_zero()) {
            return Err(("replica.poll", "must be greater than zero"));
        }
        if let Some(primary) = &self.primary {
            if self.replica.is_some() {
                return Err(("primary", "a replica has no [primary] options"));
            }
            if primary.write_quorum > 0 && primary.cosignature_timeout.is_zero() {
                return Err((
                    "primary.cosignature-timeout",
                    "must be greater than zero with a write quorum",
                ));
            }
        }
        match (&self.log, &self.replica) {
            (Some(_), Some(_)) => Err((
                "replica",
                "a server is a primary ([log]) or a replica ([replica]), not both",
            )),
            (None, None) => Err(("log", "missing: a primary needs [log], a replica [replica]")),
            _ => Ok(()),
        }
    }
}

impl Config {
    /// Loads and validates a config file, reading every file it names.
    ///
    /// # Errors
    /// When the file or any file it names is missing or malformed.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = FileConfig::read(path)?;
        file.check().map_err(|(key, reason)| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            reason,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let read = |p: &Path| {
            let p = base.join(p);
            std::fs::read(&p).map_err(|source| ConfigError::Io { path: p, source })
        };
        // Keys named by the file's own contents (a role or member): not `check`'s fixed keys.
        if let Some((key, reason)) = file.quotas.invalid() {
            return Err(ConfigError::InvalidAt {
                path: path.to_owned(),
                key,
                reason,
            });
        }
        let (origin, mode) = match (&file.log, &file.replica) {
            (Some(log), None) => (
                log.origin.clone(),
                Mode::Primary {
                    log_key: crypto::read_signing_key(&base.join(&log.signing_key))?,
                    genesis: read(&log.genesis)?,
                    options: file.primary.clone().unwrap_or_default(),
                },
            ),
            (None, Some(replica)) => {
                let vkey_path = base.join(&replica.forum_vkey);
                let vkey =
                    std::fs::read_to_string(&vkey_path).map_err(|source| ConfigError::Io {
                        path: vkey_path.clone(),
                        source,
                    })?;
                let verifier =
                    crate::log::checkpoint::LogVerifier::from_vkey(&vkey).map_err(|_| {
                        ConfigError::Invalid {
                            path: path.to_owned(),
                            key: "replica.forum-vkey",
                            reason: "not a signed-note Ed25519 verifier key",
                        }
                    })?;
                let identity = crate::identity::Identity::load(&base.join(&replica.identity))
                    .map_err(|e| ConfigError::Identity(e.to_string()))?;
                (
                    verifier.origin().to_owned(),
                    Mode::Replica(ReplicaConfig {
                        primary: replica.primary.clone(),
                        verifier,
                        identity,
                        evidence_dir: base.join(&replica.evidence_dir),
                        poll: replica.poll,
                    }),
                )
            }
            // `check` refused both and neither.
            (Some(_), Some(_)) | (None, None) => {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    key: "log",
                    reason: "missing: a primary needs [log], a replica [replica]",
                })
            }
        };
        Ok(Self {
            listen: file.listen,
            data_dir: base.join(&file.data_dir),
            tls_cert: read(&file.tls.cert)?,
            tls_key: {
                let p = base.join(&file.tls.key);
                crate::fsutil::read_private(&p)
                    .map_err(|source| ConfigError::Io { path: p, source })?
            },
            client_ca: read(&file.tls.client_ca)?,
            tls_files: TlsFiles {
                cert: base.join(&file.tls.cert),
                key: base.join(&file.tls.key),
                client_ca: base.join(&file.tls.client_ca),
            },
            origin,
            mode,
            limits: file.limits,
            quotas: file.quotas,
            metrics: file.metrics.map(|m| m.listen),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
listen = "127.0.0.1:50051"
data-dir = "data"
[tls]
cert = "tls.crt"
key = "tls.key"
client-ca = "ca.crt"
[log]
origin = "hashforum.dev/forum"
signing-key = "log.key"
genesis = "genesis.entry"
"#;

    #[test]
    fn limits_default_when_absent_and_parse_humantime() {
        let file: FileConfig = toml::from_str(MINIMAL).unwrap();
        assert!(file.limits.is_default());
        let text = format!("{MINIMAL}[limits]\nmax-connections = 8\nshutdown-grace = \"1m 30s\"\n");
        let file: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(file.limits.max_connections, 8);
        assert_eq!(file.limits.shutdown_grace, Duration::from_secs(90));
        assert_eq!(file.limits.max_requests, Limits::default().max_requests);
        assert_eq!(file.limits.zero(), None);
    }

    #[test]
    fn limits_refuse_unknown_keys_and_zeroes() {
        let typo = format!("{MINIMAL}[limits]\nmax-conections = 8\n");
        assert!(toml::from_str::<FileConfig>(&typo).is_err());
        let zero = format!("{MINIMAL}[limits]\nrequest-timeout = \"0s\"\n");
        let file: FileConfig = toml::from_str(&zero).unwrap();
        assert_eq!(file.limits.zero(), Some("limits.request-timeout"));
    }

    #[test]
    fn default_limits_are_not_written_and_others_round_trip() {
        let mut file: FileConfig = toml::from_str(MINIMAL).unwrap();
        assert!(!toml::to_string(&file).unwrap().contains("[limits]"));
        file.limits.tls_handshake_timeout = Duration::from_millis(2500);
        let text = toml::to_string(&file).unwrap();
        let back: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.limits, file.limits);
    }

    /// `deploy/hashforum.example.toml` documents every key: it loads as a primary's file, and
    /// its commented `[replica]` table, uncommented in place of `[log]`, as a replica's.
    #[test]
    fn the_example_config_parses_as_a_primary_and_as_a_replica() {
        let text = include_str!("../deploy/hashforum.example.toml");
        let primary: FileConfig = toml::from_str(text).unwrap();
        assert!(primary.log.is_some() && primary.replica.is_none());
        assert_eq!(primary.primary, Some(PrimaryOptions::default()));
        assert_eq!(primary.limits, Limits::default());
        assert!(primary.quotas.invalid().is_none());
        assert_eq!(primary.quotas.default.concurrent_calls, Some(4));
        assert_eq!(
            primary.quotas.members["bigplatform"].entries_per_second,
            Some(10_000)
        );
        assert!(primary.metrics.is_some());
        let head = &text[..text.find("\n[log]").unwrap()];
        let table: String = text[text.find("# [replica]").unwrap()..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
            .collect();
        let replica: FileConfig = toml::from_str(&format!("{head}\n{table}")).unwrap();
        let files = replica.replica.unwrap();
        assert_eq!(files.primary, "https://primary.forum.example:50051");
        assert_eq!(files.poll, default_poll());
        assert_eq!(files.evidence_dir, default_evidence());
        assert!(replica.log.is_none());
    }
}
