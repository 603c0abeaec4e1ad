//! Server configuration: `FileConfig` as written in `hashforum.toml`, validated into `Config`.
//!
//! Relative paths are relative to the config file's directory. Secrets are file paths, never
//! inline values. `deploy/hashforum.example.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// The log.
    pub log: LogFiles,
    /// Present for forums made by `init --dev`: where the dev CA lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<DevFiles>,
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
    /// The log key.
    pub log_key: SigningKey,
    /// Genesis entry bytes.
    pub genesis: Vec<u8>,
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
}

impl Config {
    /// Loads and validates a config file, reading every file it names.
    ///
    /// # Errors
    /// When the file or any file it names is missing or malformed.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = FileConfig::read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let read = |p: &Path| {
            let p = base.join(p);
            std::fs::read(&p).map_err(|source| ConfigError::Io { path: p, source })
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
            origin: file.log.origin.clone(),
            log_key: crypto::read_signing_key(&base.join(&file.log.signing_key))?,
            genesis: read(&file.log.genesis)?,
        })
    }
}
