//! Identity directories: everything a member's client needs, in one folder.
//!
//! ```text
//! DIR/identity.toml   member id, forum origin, server address, TLS server name
//! DIR/tls.crt         the member's TLS client certificate (PEM)
//! DIR/tls.key         its private key (PEM, mode 0600)
//! DIR/ca.crt          the forum CA, to authenticate the server
//! DIR/signing.key     the member's Ed25519 signing key (PKCS#8 PEM, mode 0600)
//! DIR/signing.pub     its public key (SPKI PEM)
//! ```

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::fsutil;

/// `identity.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IdentityFile {
    /// The member id.
    pub member: String,
    /// The origin line of the forum: every statement this identity signs names it.
    pub origin: String,
    /// The server's gRPC address, e.g. `https://127.0.0.1:50051`.
    pub server: String,
    /// The name the server's certificate is checked against.
    pub server_name: String,
}

/// A loaded identity.
#[derive(Clone)]
pub struct Identity {
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// `identity.toml`.
    pub file: IdentityFile,
    /// Client certificate, PEM.
    pub tls_cert: Vec<u8>,
    /// Client key, PEM.
    pub tls_key: Vec<u8>,
    /// Forum CA, PEM.
    pub ca_cert: Vec<u8>,
    /// Signing key.
    pub signing_key: SigningKey,
}

/// Failure to read or write an identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `identity.toml` is malformed.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: toml::de::Error,
    },
    /// The signing key is unusable.
    #[error(transparent)]
    Key(#[from] crypto::KeyFileError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Identity {
    /// Loads the identity in `dir`.
    ///
    /// # Errors
    /// When a file is missing or malformed.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(io(&p))
        };
        let toml_path = dir.join("identity.toml");
        let text = std::fs::read_to_string(&toml_path).map_err(io(&toml_path))?;
        let file = toml::from_str(&text).map_err(|source| IdentityError::Parse {
            path: toml_path.clone(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            file,
            tls_cert: read("tls.crt")?,
            tls_key: {
                let p = dir.join("tls.key");
                fsutil::read_private(&p).map_err(io(&p))?
            },
            ca_cert: read("ca.crt")?,
            signing_key: crypto::read_signing_key(&dir.join("signing.key"))?,
        })
    }

    /// Writes an identity directory (creating it).
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn write(
        dir: &Path,
        file: &IdentityFile,
        tls_cert: &str,
        tls_key: &str,
        ca_cert: &str,
        signing_key: &SigningKey,
    ) -> Result<(), IdentityError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let write = |name: &str, data: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, data).map_err(io(&p))
        };
        let text = toml::to_string(file).expect("identity file serializes");
        write("identity.toml", text.as_bytes())?;
        write("tls.crt", tls_cert.as_bytes())?;
        let key_path = dir.join("tls.key");
        fsutil::write_private(&key_path, tls_key.as_bytes()).map_err(io(&key_path))?;
        write("ca.crt", ca_cert.as_bytes())?;
        crypto::write_signing_key(&dir.join("signing.key"), signing_key)?;
        crypto::write_public_key(&dir.join("signing.pub"), &signing_key.verifying_key())?;
        Ok(())
    }
}
