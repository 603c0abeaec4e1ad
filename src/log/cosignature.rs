//! Cosignatures: C2SP `tlog-cosignature` v1.0.1, the Ed25519 `cosignature/v1` type. A witness
//! (here, a read-only replica) that verified a checkpoint adds its own signature line to the
//! checkpoint note; members can require a quorum of them before trusting a checkpoint.
//!
//! ```text
//! key id  = SHA-256(<name> || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4]
//! vkey    = <name>+<hex8 key id>+<base64(0x04 || public key)>
//! signed  = "cosignature/v1\n" || "time " || <T, ASCII decimal, no leading zeros> || "\n"
//!           || <the checkpoint body: origin, size, root and any extension lines, final \n>
//! line    = — <name> <base64(key id (4) || T as u64 big-endian (8) || Ed25519 sig (64))>\n
//! ```
//!
//! `T` is the cosigning time in POSIX seconds, at most 2^63 − 1. The signed bytes do not name
//! the witness, so one public key is one witness: a quorum counts distinct keys.
//!
//! Pure: no storage, no network, no clock (callers pass the time). The note itself is parsed
//! by `signed_note` (UTF-8, no control characters but `\n`, at most 100 signature lines);
//! lines are matched on (name, key id), then verified, as C2SP `signed-note` says: lines of
//! other keys are ignored, a matching line that does not verify fails the whole check.

use std::collections::HashSet;

use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::Note;

use super::checkpoint::SignedCheckpoint;

/// Signature type byte of cosignature/v1 keys.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The most signature lines a note may carry: `signed_note` (like Go's `sumdb/note`) refuses
/// notes with more, so the log's line and its cosignatures together must stay within it.
pub const MAX_SIGNATURES: usize = 100;

/// The latest cosignature time the spec allows: 2^63 − 1 seconds.
pub const MAX_TIME: u64 = i64::MAX as u64;

/// The first line of every cosigned message (domain separation).
const HEADER: &str = "cosignature/v1\n";

/// Timestamp (8 bytes) and Ed25519 signature (64): a line's bytes after its key id.
const TIMESTAMPED_SIGNATURE_LEN: usize = 72;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a cosignature, a witness key or a quorum was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignatureError {
    /// The verifier key text is not a cosignature/v1 vkey (`name+id+base64(0x04 || key)`).
    #[error("not a cosignature/v1 verifier key (name+id+base64(0x04 || key)): {0}")]
    BadVerifierKey(String),
    /// The witness name cannot be a note key name.
    #[error("the witness name {0:?} cannot name a note key: it must be non-empty, without spaces or '+'")]
    BadName(String),
    /// Not a signed note, or a signature line that is not one, or a cosignature of the wrong
    /// length or with a time past 2^63 − 1.
    #[error("malformed cosignature: {0}")]
    Malformed(String),
    /// A line with the witness's name and key id does not verify, or a line given to
    /// [`WitnessVerifier::verify_line`] is another key's.
    #[error("cosignature: {0}")]
    Signature(String),
    /// Fewer than the required number of distinct witnesses cosigned.
    #[error(
        "{} of {witnesses} witnesses cosigned the checkpoint ({}), {required} required",
        cosigned.len(),
        if cosigned.is_empty() { "none".to_owned() } else { cosigned.join(", ") }
    )]
    Quorum {
        /// The names of the witnesses that did.
        cosigned: Vec<String>,
        /// How many were required.
        required: usize,
        /// How many distinct witnesses (keys) were given.
        witnesses: usize,
    },
}

/// The key id of a cosignature/v1 key: SHA-256(name || 0x0A || 0x04 || public key)[:4].
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    signed_note::key_id(name, &encoded(key))
}

fn encoded(key: &VerifyingKey) -> Vec<u8> {
    [&[ALG_COSIGNATURE_V1][..], key.as_bytes()].concat()
}

fn check_name(name: &str) -> Result<(), CosignatureError> {
    if signed_note::is_key_name_valid(name) {
        Ok(())
    } else {
        Err(CosignatureError::BadName(name.to_owned()))
    }
}

/// The bytes a cosignature signs: `cosignature/v1\ntime <time>\n` followed by the checkpoint
/// body (`<origin>\n<size>\n<root>\n` and any extension lines).
pub fn signed_message(body: &[u8], time_secs: u64) -> Vec<u8> {
    let mut message = format!("{HEADER}time {time_secs}\n").into_bytes();
    message.extend_from_slice(body);
    message
}

/// The body of a note: everything before its last blank line, the final newline included.
/// A text without a blank line is all body.
fn note_body(note: &[u8]) -> &[u8] {
    match note.windows(2).rposition(|w| w == b"\n\n") {
        Some(at) => &note[..=at],
        None => note,
    }
}

/// The signature lines of a note (after its last blank line), without their newlines.
fn signature_lines(note: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = note_body(note).len();
    note.get(body + 1..)
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
}

/// A witness's signing key: cosigns checkpoints under its name.
pub struct Cosigner {
    name: String,
    key: SigningKey,
    id: u32,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosigner")
            .field("vkey", &self.vkey())
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// The cosigner named `name` (a note key name, such as `replica1.forum.example/witness`).
    ///
    /// # Errors
    /// [`CosignatureError::BadName`] when the name is empty or has whitespace or a `+`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, CosignatureError> {
        check_name(name)?;
        let id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id: the first four bytes of SHA-256(name || 0x0A || 0x04 || public key).
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// `<name>+<hex8 key id>+<base64(0x04 || pubkey)>`
    pub fn vkey(&self) -> String {
        vkey(&self.name, self.id, &self.key.verifying_key())
    }

    /// The verifier of this witness's cosignatures.
    pub fn verifier(&self) -> WitnessVerifier {
        WitnessVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            id: self.id,
        }
    }

    /// The note signature line (`— <name> <base64(keyid(4) || time u64 BE(8) || sig(64))>\n`,
    /// with the trailing newline) cosigning the checkpoint whose note is `checkpoint` (the body
    /// is everything up to the blank line; any existing signature lines are ignored), at POSIX
    /// time `time_secs`. Times past 2^63 − 1, which the spec forbids, are cosigned as
    /// 2^63 − 1.
    ///
    /// The cosigner's promise is that, as of that time, this is the largest tree it has seen
    /// for the origin and it is consistent with all it saw before: check that first.
    pub fn cosign(&self, checkpoint: &SignedCheckpoint, time_secs: u64) -> String {
        let time = time_secs.min(MAX_TIME);
        let body = note_body(&checkpoint.note);
        let signature = self.key.sign(&signed_message(body, time));
        let mut payload = Vec::with_capacity(4 + TIMESTAMPED_SIGNATURE_LEN);
        payload.extend_from_slice(&self.id.to_be_bytes());
        payload.extend_from_slice(&time.to_be_bytes());
        payload.extend_from_slice(&signature.to_bytes());
        format!("\u{2014} {} {}\n", self.name, B64.encode(payload))
    }
}

fn vkey(name: &str, id: u32, key: &VerifyingKey) -> String {
    format!("{name}+{id:08x}+{}", B64.encode(encoded(key)))
}

/// Checks one witness's cosignatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessVerifier {
    name: String,
    key: VerifyingKey,
    id: u32,
}

impl WitnessVerifier {
    /// The verifier of the witness `name` with public key `key`.
    ///
    /// # Errors
    /// [`CosignatureError::BadName`] for a name that cannot be a note key name;
    /// [`CosignatureError::BadVerifierKey`] for a weak (small-order) key.
    pub fn new(name: &str, key: &VerifyingKey) -> Result<Self, CosignatureError> {
        check_name(name)?;
        if key.is_weak() {
            return Err(CosignatureError::BadVerifierKey(format!(
                "{name}: a small-order public key"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            key: *key,
            id: key_id(name, key),
        })
    }

    /// Reads verifier key text, `<name>+<hex8 key id>+<base64(0x04 || public key)>`
    /// (surrounding whitespace ignored). The key id must be the one the name and key give.
    ///
    /// # Errors
    /// [`CosignatureError::BadVerifierKey`] when the text is not such a key (an Ed25519 log
    /// key, type 0x01, is refused too); [`CosignatureError::BadName`] for a bad name.
    pub fn from_vkey(text: &str) -> Result<Self, CosignatureError> {
        let text = text.trim();
        let bad = |why: &str| CosignatureError::BadVerifierKey(format!("{why}: {text:?}"));
        // Names have no '+'; base64 may.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not name+id+key"));
        };
        check_name(name)?;
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the key id is not 8 hex digits"));
        }
        let key = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        match key.first() {
            Some(&ALG_COSIGNATURE_V1) => {}
            Some(&alg) => {
                return Err(bad(&format!(
                    "the key type is 0x{alg:02x}, not 0x04 (cosignature/v1)"
                )))
            }
            None => return Err(bad("no key")),
        }
        let key = <[u8; 32]>::try_from(&key[1..])
            .ok()
            .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
            .ok_or_else(|| bad("not a 32-byte Ed25519 public key"))?;
        let verifier = Self::new(name, &key)?;
        // Parsed as hex digits above, so this cannot fail.
        if u32::from_str_radix(id, 16).ok() != Some(verifier.id) {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(verifier)
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The witness's Ed25519 public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The key id: the first four bytes of SHA-256(name || 0x0A || 0x04 || public key).
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The verifier key text, `<name>+<hex8 key id>+<base64(0x04 || public key)>`.
    pub fn vkey(&self) -> String {
        vkey(&self.name, self.id, &self.key)
    }

    /// This witness's cosignature time on the note, if the note carries a valid one; Err when
    /// a line with its name and key id does not verify (or is malformed). Lines of other keys
    /// are ignored. With several valid lines by this witness, the latest time.
    ///
    /// # Errors
    /// [`CosignatureError::Malformed`] when the note is not a signed note or a line of this
    /// witness is not a cosignature; [`CosignatureError::Signature`] when one does not verify.
    pub fn verify(&self, note: &[u8]) -> Result<Option<u64>, CosignatureError> {
        let body = parse(note)?;
        let mut latest = None;
        for line in signature_lines(note) {
            let signature = signature(line)?;
            if self.matches(&signature) {
                let time = self.check(body, signature.signature())?;
                latest = latest.max(Some(time));
            }
        }
        Ok(latest)
    }

    /// Verifies one signature line (as [`Cosigner::cosign`] returns it, the trailing newline
    /// optional) against the checkpoint note's body; returns the time.
    ///
    /// # Errors
    /// [`CosignatureError::Malformed`] when the note or line is malformed;
    /// [`CosignatureError::Signature`] when the line is another key's or does not verify.
    pub fn verify_line(&self, note: &[u8], line: &str) -> Result<u64, CosignatureError> {
        let body = parse(note)?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let signature = signature(line.as_bytes())?;
        if !self.matches(&signature) {
            return Err(CosignatureError::Signature(format!(
                "the line is by {}+{:08x}, not {}+{:08x}",
                signature.name(),
                signature.id(),
                self.name,
                self.id
            )));
        }
        self.check(body, signature.signature())
    }

    fn matches(&self, signature: &signed_note::Signature) -> bool {
        signature.name() == self.name && signature.id() == self.id
    }

    /// Checks a timestamped signature (a line's bytes after the key id) over `body`.
    fn check(&self, body: &[u8], timestamped: &[u8]) -> Result<u64, CosignatureError> {
        let (Ok(time), Ok(signature)) = (
            <[u8; 8]>::try_from(timestamped.get(..8).unwrap_or_default()),
            <[u8; 64]>::try_from(timestamped.get(8..).unwrap_or_default()),
        ) else {
            return Err(CosignatureError::Malformed(format!(
                "{}'s signature is {} bytes after its key id, not 8 + 64",
                self.name,
                timestamped.len()
            )));
        };
        let time = u64::from_be_bytes(time);
        if time > MAX_TIME {
            return Err(CosignatureError::Malformed(format!(
                "{}'s cosignature time {time} is past 2^63 - 1",
                self.name
            )));
        }
        let signature = ed25519_dalek::Signature::from_bytes(&signature);
        self.key
            .verify_strict(&signed_message(body, time), &signature)
            .map_err(|_| {
                CosignatureError::Signature(format!(
                    "{}+{:08x}'s cosignature at time {time} does not verify",
                    self.name, self.id
                ))
            })?;
        Ok(time)
    }
}

/// A [`WitnessVerifier`] is a `signed_note` verifier too, for a `VerifierList` beside the
/// log's: it accepts a valid cosignature at any time.
impl signed_note::Verifier for WitnessVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.check(msg, sig).is_ok()
    }
}

/// Checks that `note` is a signed note (as `signed_note` parses them) and returns its body.
fn parse(note: &[u8]) -> Result<&[u8], CosignatureError> {
    Note::from_bytes(note).map_err(|e| CosignatureError::Malformed(format!("the note: {e}")))?;
    Ok(note_body(note))
}

fn signature(line: &[u8]) -> Result<signed_note::Signature, CosignatureError> {
    signed_note::Signature::from_bytes(line).map_err(|e| {
        CosignatureError::Malformed(format!(
            "signature line {:?}: {e}",
            String::from_utf8_lossy(line)
        ))
    })
}

/// The note with extra signature lines appended after its existing ones (lines already
/// present are not repeated); the body and existing signatures stay byte for byte. Lines may
/// come with or without their trailing newline. Nothing is verified here, and callers keep the
/// note within [`MAX_SIGNATURES`] lines.
pub fn with_lines(note: &[u8], lines: &[String]) -> Vec<u8> {
    let mut out = note.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let mut present: HashSet<Vec<u8>> = signature_lines(note).map(<[u8]>::to_vec).collect();
    for line in lines {
        let line = line.strip_suffix('\n').unwrap_or(line).as_bytes();
        if !line.is_empty() && present.insert(line.to_vec()) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    out
}

/// A valid cosignature found on a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's name.
    pub name: String,
    /// Its cosignature time, POSIX seconds (the latest, if it cosigned more than once).
    pub time: u64,
}

/// The distinct `witnesses` (by public key, the first name given for a key) whose valid
/// cosignature the note carries, in the order given, with their times.
///
/// # Errors
/// As [`WitnessVerifier::verify`]: a malformed note, or a line by one of `witnesses` that
/// does not verify (C2SP `signed-note`: a known key's bad signature fails the note).
pub fn cosigned(
    note: &[u8],
    witnesses: &[WitnessVerifier],
) -> Result<Vec<Cosigned>, CosignatureError> {
    let mut keys = HashSet::new();
    let mut found = Vec::new();
    for witness in witnesses {
        if let Some(time) = witness.verify(note)? {
            if keys.insert(witness.key.to_bytes()) {
                found.push(Cosigned {
                    name: witness.name.clone(),
                    time,
                });
            }
        }
    }
    Ok(found)
}

/// The names of the distinct `witnesses` whose valid cosignature the note carries;
/// Err(Quorum) naming how many of how many when fewer than `k`. Witnesses are distinct by
/// public key: the signed bytes do not name the witness, so one key under two names counts
/// once.
///
/// # Errors
/// [`CosignatureError::Quorum`] when fewer than `k` cosigned; otherwise as [`cosigned`].
pub fn quorum(
    note: &[u8],
    witnesses: &[WitnessVerifier],
    k: usize,
) -> Result<Vec<String>, CosignatureError> {
    let names: Vec<String> = cosigned(note, witnesses)?
        .into_iter()
        .map(|c| c.name)
        .collect();
    if names.len() < k {
        let distinct: HashSet<[u8; 32]> = witnesses.iter().map(|w| w.key.to_bytes()).collect();
        return Err(CosignatureError::Quorum {
            cosigned: names,
            required: k,
            witnesses: distinct.len(),
        });
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
