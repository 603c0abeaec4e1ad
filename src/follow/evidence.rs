//! Evidence of a log that forked, was rolled back or was tampered with: what a follower keeps
//! on disk when it refuses a source, and what `hashforum verify --evidence` checks again.
//!
//! An evidence file is JSON (`hashforum-evidence/v1`); binary fields are standard base64 and
//! notes are their exact text. What it proves depends on its kind:
//!
//! Only a fork is *proven* to anyone holding the log's verifier key: two notes the log key
//! signed that no append-only log can both have. The other kinds are *reported*: `check`
//! confirms that the file is consistent with what the follower says it was served (the notes
//! verify, the entries do not lead to the signed root, the signature does not verify with the
//! key named), but nothing in the file shows that the source, rather than whoever wrote the
//! file, served it.
//!
//! | kind | holds | `check` |
//! |---|---|---|
//! | `fork` | two signed notes (`held`, `served`) | proven: same size, two roots; or a smaller `served` whose root is not the prefix of `held` (`prefix_root` and a consistency proof to `held`); or a larger `served` whose own consistency proof gives it another prefix than `held` |
//! | `rollback` | two signed notes | reported: a smaller tree than one the log signed, served as the latest |
//! | `root-mismatch` | a signed note, the entries, the verified frontier | reported: the entries from the verified size do not lead to the signed root |
//! | `bad-entry` | the entry | reported: it could not be at its index (the reason; a failing signature is checked again with `key`) |
//! | `bad-checkpoint` | a note | reported: it does not verify with the log key |

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::log::checkpoint::LogVerifier;
use crate::log::tree::{self, Frontier, Hash};
use crate::log::{leaf_hash, StoredEntry};

/// The `format` of an evidence file.
pub const EVIDENCE_FORMAT: &str = "hashforum-evidence/v1";

/// What a follower refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceKind {
    /// Two signed checkpoints that cannot both be of one append-only log.
    #[default]
    Fork,
    /// A latest checkpoint smaller than one the log already signed.
    Rollback,
    /// Entries that do not have the root of the checkpoint they were served for.
    RootMismatch,
    /// An entry that could not be at its index.
    BadEntry,
    /// A checkpoint that does not verify.
    BadCheckpoint,
}

impl EvidenceKind {
    /// The kind's name, as written.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fork => "fork",
            Self::Rollback => "rollback",
            Self::RootMismatch => "root-mismatch",
            Self::BadEntry => "bad-entry",
            Self::BadCheckpoint => "bad-checkpoint",
        }
    }
}

/// What a kept evidence file shows, checked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Proven with the log's verifier key alone (a fork); otherwise consistent with the
    /// follower's report, which the file alone cannot attribute to the source.
    pub proven: bool,
    /// What, in words.
    pub what: String,
}

/// A follower's evidence against its source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// Always [`EVIDENCE_FORMAT`].
    pub format: String,
    /// What was refused.
    pub kind: EvidenceKind,
    /// The log's origin.
    pub origin: String,
    /// The log's verifier key.
    pub vkey: String,
    /// What was wrong, in words.
    pub reason: String,
    /// When it was found (Unix ms, the follower's clock).
    pub found_at_unix_ms: u64,
    /// Where it came from (the primary's address).
    pub source: String,
    /// The latest checkpoint the follower had verified, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The checkpoint the source served.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub served: String,
    /// For a smaller `served`: the root of the verified tree at its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_root: Option<String>,
    /// For a smaller `served`: the consistency proof from `prefix_root` to `held`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency_proof: Vec<String>,
    /// The index of the first entry in `entries`.
    #[serde(default)]
    pub first_index: u64,
    /// Entries the source served (their exact bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<String>,
    /// For `root-mismatch`: the verified tree's frontier at `first_index`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frontier: Vec<String>,
    /// For `bad-entry`: its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_index: Option<u64>,
    /// For a signature that fails: the author's key the follower checked it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Evidence {
    /// Writes the evidence into `dir` (made if missing) as `<time>-<kind>.json`, synced, and
    /// returns its path.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn keep(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let stem = format!("{}-{}", self.found_at_unix_ms, self.kind.name());
        let mut path = dir.join(format!("{stem}.json"));
        let mut n = 1u32;
        while path.exists() {
            path = dir.join(format!("{stem}-{n}.json"));
            n += 1;
        }
        crate::fsutil::write_synced(&path, &json)?;
        Ok(path)
    }

    /// The evidence files kept in `dir`, oldest first (none when it does not exist).
    pub fn kept(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Checks the evidence again with the log's verifier (not the key it names): what it
    /// proves (a fork) or is consistent with (the other kinds), in words.
    ///
    /// # Errors
    /// When it shows nothing: malformed, or its notes or entries do not show what it claims.
    pub fn check(&self, verifier: &LogVerifier) -> Result<Finding, String> {
        let what = self.what(verifier)?;
        let proven = match self.kind {
            EvidenceKind::Fork => true,
            // Two signed roots for one size are a fork, whatever the file calls them.
            EvidenceKind::Rollback => what.starts_with("fork"),
            _ => false,
        };
        Ok(Finding { proven, what })
    }

    fn what(&self, verifier: &LogVerifier) -> Result<String, String> {
        if self.format != EVIDENCE_FORMAT {
            return Err(format!("format {:?} is not {EVIDENCE_FORMAT}", self.format));
        }
        let named = LogVerifier::from_vkey(&self.vkey).map_err(|e| format!("vkey: {e}"))?;
        if named.vkey() != verifier.vkey() {
            return Err("it was kept for another log (its vkey is not the one given)".into());
        }
        let note = |name: &str, text: &str| {
            verifier
                .verify(text.as_bytes())
                .map_err(|e| format!("{name}: {e}"))
        };
        let held = || {
            self.held
                .as_deref()
                .ok_or_else(|| "no held checkpoint".to_owned())
                .and_then(|h| note("held", h))
        };
        match self.kind {
            EvidenceKind::BadCheckpoint => match verifier.verify(self.served.as_bytes()) {
                Ok(_) => Err("the served checkpoint verifies: nothing is proven".into()),
                Err(e) => Ok(format!(
                    "the served checkpoint does not verify with the log key: {e}"
                )),
            },
            EvidenceKind::Fork | EvidenceKind::Rollback => {
                let (held, served) = (held()?, note("served", &self.served)?);
                let (h, s) = (held.head, served.head);
                if h.size == s.size {
                    return if h.root == s.root {
                        Err("both checkpoints have the same root: no fork".into())
                    } else {
                        Ok(format!(
                            "fork: the log key signed two roots for size {}: {} and {}",
                            h.size,
                            b64(&h.root.0),
                            b64(&s.root.0)
                        ))
                    };
                }
                let prefix = hash(self.prefix_root.as_deref().unwrap_or_default())
                    .map_err(|e| format!("prefix_root: {e}"))?;
                let proof = self
                    .consistency_proof
                    .iter()
                    .map(|p| hash(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("consistency_proof: {e}"))?;
                if s.size > h.size {
                    // The served tree's own proof gives it another prefix than the held tree.
                    tree::verify_consistency(&proof, h.size, prefix, s.size, s.root).map_err(
                        |e| {
                            format!(
                                "the consistency proof does not lead to the served checkpoint: {e}"
                            )
                        },
                    )?;
                    if prefix == h.root {
                        return Err("the served tree has the held one as its prefix".into());
                    }
                    return Ok(format!(
                        "fork: the log signed {} entries with root {}, and {} entries whose \
                         first {} have root {}",
                        h.size,
                        b64(&h.root.0),
                        s.size,
                        h.size,
                        b64(&prefix.0)
                    ));
                }
                tree::verify_consistency(&proof, s.size, prefix, h.size, h.root).map_err(|e| {
                    format!("the consistency proof does not lead to the held checkpoint: {e}")
                })?;
                if prefix == s.root {
                    Ok(format!(
                        "rollback: the log signed {} entries, then served {} as its latest (a \
                         prefix of the same history)",
                        h.size, s.size
                    ))
                } else {
                    Ok(format!(
                        "fork: the log signed {} entries whose first {} have root {}, and also \
                         a checkpoint of size {} with root {}",
                        h.size,
                        s.size,
                        b64(&prefix.0),
                        s.size,
                        b64(&s.root.0)
                    ))
                }
            }
            EvidenceKind::RootMismatch => {
                let served = note("served", &self.served)?;
                let last = self
                    .frontier
                    .iter()
                    .map(|h| hash(h))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("frontier: {e}"))?;
                let mut frontier = Frontier::from_hashes(self.first_index, last)
                    .ok_or("the frontier does not fit first_index")?;
                // From entry 0 the frontier is empty; past it, it must be the held tree's.
                if self.first_index > 0 {
                    let held = held()?;
                    if held.head.size != self.first_index || frontier.root() != held.head.root {
                        return Err("the frontier is not the held checkpoint's tree".into());
                    }
                }
                for e in &self.entries {
                    let leaf = B64.decode(e).map_err(|_| "an entry is not base64")?;
                    frontier.append(leaf_hash(&leaf));
                }
                if frontier.size() != served.head.size {
                    return Err(format!(
                        "the entries reach size {}, not the served checkpoint's {}",
                        frontier.size(),
                        served.head.size
                    ));
                }
                if frontier.root() == served.head.root {
                    return Err("the entries have the served root: nothing is proven".into());
                }
                Ok(format!(
                    "root mismatch: the {} entries served after size {} have root {}, but the \
                     log signed {} for size {}",
                    self.entries.len(),
                    self.first_index,
                    b64(&frontier.root().0),
                    b64(&served.head.root.0),
                    served.head.size
                ))
            }
            EvidenceKind::BadEntry => {
                let index = self.bad_index.ok_or("no bad_index")?;
                let leaf = self
                    .entries
                    .first()
                    .ok_or("no entry")
                    .and_then(|e| B64.decode(e).map_err(|_| "the entry is not base64"))?;
                let Some(key) = &self.key else {
                    return Ok(format!("entry {index} was refused: {}", self.reason));
                };
                let key = B64
                    .decode(key)
                    .ok()
                    .and_then(|k| <[u8; 32]>::try_from(k).ok())
                    .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
                    .ok_or("key is not a base64 Ed25519 public key")?;
                let stored = StoredEntry::decode(&leaf).map_err(|e| e.to_string())?;
                let envelope = &stored.envelope;
                let signed = crate::crypto::pae(&envelope.payload_type, &envelope.payload);
                let good = envelope.signatures.iter().any(|s| {
                    ed25519_dalek::Signature::from_slice(&s.sig)
                        .is_ok_and(|sig| crate::crypto::verify_one(&key, &signed, &sig))
                });
                if good {
                    Err(format!(
                        "entry {index}'s signature verifies with key {}: nothing is proven",
                        crate::crypto::key_id(&key)
                    ))
                } else {
                    Ok(format!(
                        "entry {index}: its signature does not verify with its author's key {} \
                         (the key is as the follower's verified log registered it)",
                        crate::crypto::key_id(&key)
                    ))
                }
            }
        }
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Standard base64, as evidence files hold binary fields.
pub(super) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn hash(text: &str) -> Result<Hash, String> {
    B64.decode(text)
        .ok()
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .map(Hash)
        .ok_or_else(|| "not base64 of 32 bytes".to_owned())
}
