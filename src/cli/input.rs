//! Reading what the user typed or piped: hash lines, labels, roles, key files.

use std::path::Path;

use crate::entry::parse_public_key;
use crate::pb;
use crate::types::{HashType, Role};

/// A hash value as typed, lowered: hashes are hex, and the wire takes lowercase only, so
/// `ABCDEF` typed or pasted from another tool means `abcdef`. Anything else is left for the
/// server to refuse with its reason. (Also clap's value parser for every `--value`.)
pub(super) fn hex_value(typed: &str) -> String {
    typed.to_ascii_lowercase()
}

/// `hex_value` as a clap value parser.
pub(super) fn hex_arg(typed: &str) -> Result<String, std::convert::Infallible> {
    Ok(hex_value(typed))
}

/// Parses `type:value` lines (blank lines and `#` comments skipped).
///
/// # Errors
/// `INVALID_ARGUMENT` naming the line.
pub(super) fn parse_lines(text: &str) -> Result<Vec<(HashType, String)>, tonic::Status> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |msg: String| tonic::Status::invalid_argument(format!("line {}: {msg}", n + 1));
        let (t, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("expected type:value, got {line:?}")))?;
        let t = HashType::parse(t.trim()).map_err(|e| bad(e.0))?;
        out.push((t, hex_value(v.trim())));
    }
    if out.is_empty() {
        return Err(tonic::Status::invalid_argument(
            "no type:value lines in the input",
        ));
    }
    Ok(out)
}

/// Refuses a PDQ hash below quality 50 computed from `path`, unless `allow` (the user's
/// `--allow-low-quality`); `verb` says what the flag would do anyway ("matches", "submits").
///
/// # Errors
/// `INVALID_ARGUMENT` naming the file and its quality.
pub(super) fn check_quality(
    path: &Path,
    pdq: &crate::pdq::hasher::PdqHash,
    allow: bool,
    verb: &str,
) -> Result<(), tonic::Status> {
    use crate::pdq::hasher::MIN_QUALITY;
    if pdq.quality >= MIN_QUALITY || allow {
        return Ok(());
    }
    Err(tonic::Status::invalid_argument(format!(
        "{}: PDQ quality {} is below {MIN_QUALITY}: such a hash (a flat or featureless image) \
         matches unrelated images; --allow-low-quality {verb} it anyway",
        path.display(),
        pdq.quality
    )))
}

/// Reads a file, or stdin for `-`.
///
/// # Errors
/// When it cannot be read.
pub(super) fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        Ok(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        )
    }
}

/// Parses `--label KEY=VALUE` options into taxonomy labels.
///
/// # Errors
/// `INVALID_ARGUMENT` naming the option.
pub(super) fn parse_labels(labels: &[String]) -> Result<pb::Labels, tonic::Status> {
    let mut out = pb::Labels::default();
    for label in labels {
        let bad = || {
            tonic::Status::invalid_argument(format!(
                "--label {label:?}: expected entity=..., behaviour=... or content_type=..."
            ))
        };
        let (k, v) = label.split_once('=').ok_or_else(bad)?;
        let slot = match k {
            "entity" => &mut out.entity,
            "behaviour" | "behavior" => &mut out.behaviour,
            "content_type" => &mut out.content_type,
            _ => return Err(bad()),
        };
        v.clone_into(slot);
    }
    Ok(out)
}

/// Parses role names.
///
/// # Errors
/// `INVALID_ARGUMENT` for an unknown role.
pub(super) fn parse_roles(names: &[String]) -> Result<Vec<Role>, tonic::Status> {
    names
        .iter()
        .map(|n| {
            Role::parse(n.trim())
                .map_err(|e| tonic::Status::invalid_argument(format!("roles: {e}")))
        })
        .collect()
}

/// Reads an Ed25519 public key (SPKI PEM) that the forum would accept.
///
/// # Errors
/// When the file is missing or not such a key.
pub(super) fn read_public_key(path: &Path) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    let key = crate::crypto::read_public_key(path)?;
    parse_public_key(key.as_bytes()).map_err(|e| {
        tonic::Status::invalid_argument(format!("--public-key {}: {e}", path.display())).into()
    })
}

/// The SHA-256 fingerprint of a PEM certificate file.
///
/// # Errors
/// When the file is missing or not a PEM certificate.
pub(super) fn read_cert_fingerprint(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let der = crate::pki::pem_to_der(&pem)
        .map_err(|e| tonic::Status::invalid_argument(format!("--cert {}: {e}", path.display())))?;
    Ok(crate::crypto::cert_fingerprint(&der).as_bytes().to_vec())
}
