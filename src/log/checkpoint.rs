//! Checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` form, signed with the
//! forum's Ed25519 log key, whose key name is the log's origin.
//!
//! ```text
//! <origin>\n<size>\n<base64 root>\n          the checkpoint body: what is signed
//! \n
//! — <origin> <base64(key id (4) || Ed25519 signature (64))>\n
//! ```
//!
//! The note format, the key id and the verifier key text (`<name>+<hex id>+<base64(0x01 ||
//! public key)>`) are Go's `golang.org/x/mod/sumdb/note`, through the `signed_note` crate.

use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, StandardVerifier, VerifierList};

use super::tree::Hash;

/// Signed-note algorithm byte of Ed25519 keys.
const ALG_ED25519: u8 = 0x01;

/// A tree head: what a checkpoint says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeHead {
    /// The number of entries.
    pub size: u64,
    /// The RFC 6962 root hash of those entries.
    pub root: Hash,
}

/// A checkpoint the log signed: the note exactly as signed and served, and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCheckpoint {
    /// Size and root.
    pub head: TreeHead,
    /// The signed note, byte for byte.
    pub note: Vec<u8>,
}

impl SignedCheckpoint {
    /// The note as text (notes are UTF-8 by construction).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.note).unwrap_or_default()
    }
}

/// Why a checkpoint or a verifier key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The verifier key text is not a signed-note Ed25519 vkey.
    #[error("not a signed-note Ed25519 verifier key (name+id+key): {0}")]
    BadVerifierKey(String),
    /// The origin cannot be a note key name.
    #[error(
        "the origin {0:?} cannot name a note key: it must be non-empty, without spaces or '+'"
    )]
    BadOrigin(String),
    /// Not a signed note, or its text not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// The note carries no valid signature by the log key, or a bad one.
    #[error("checkpoint signature: {0}")]
    Signature(String),
    /// The checkpoint is another log's.
    #[error("the checkpoint is for origin {found:?}, not {expected:?}")]
    WrongOrigin {
        /// This log's origin.
        expected: String,
        /// The checkpoint's.
        found: String,
    },
}

/// The checkpoint body for a tree head: `<origin>\n<size>\n<base64 root>\n`.
pub fn body(origin: &str, head: &TreeHead) -> String {
    let root = base64::engine::general_purpose::STANDARD.encode(head.root.0);
    format!("{origin}\n{}\n{root}\n", head.size)
}

/// The signed-note key id of an Ed25519 key: the first four bytes of
/// SHA-256(name || 0x0A || 0x01 || public key).
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    signed_note::key_id(name, &encoded(key))
}

fn encoded(key: &VerifyingKey) -> Vec<u8> {
    [&[ALG_ED25519][..], key.as_bytes()].concat()
}

/// The forum's log key, signing checkpoints under the origin's name.
pub struct LogSigner {
    origin: String,
    key: SigningKey,
    id: u32,
}

impl LogSigner {
    /// The signer for the log named `origin`.
    ///
    /// # Errors
    /// When the origin cannot be a note key name.
    pub fn new(origin: &str, key: SigningKey) -> Result<Self, CheckpointError> {
        check_origin(origin)?;
        let id = key_id(origin, &key.verifying_key());
        Ok(Self {
            origin: origin.to_owned(),
            key,
            id,
        })
    }

    /// The verifier key text that checks this log's checkpoints: what `forum.vkey` holds.
    pub fn vkey(&self) -> String {
        vkey(&self.origin, &self.key.verifying_key())
    }

    /// The verifier of this log's checkpoints.
    pub fn verifier(&self) -> LogVerifier {
        LogVerifier::new(&self.origin, &self.key.verifying_key())
            .expect("the origin was checked when the signer was made")
    }

    /// Signs the checkpoint of a tree head.
    pub fn sign(&self, head: TreeHead) -> SignedCheckpoint {
        SignedCheckpoint {
            head,
            note: self.note(&body(&self.origin, &head)).into_bytes(),
        }
    }

    /// A signed note of `text` (which ends in a newline): the text, a blank line, and the
    /// signature line `— <origin> <base64(key id || signature)>`.
    fn note(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut line = Vec::with_capacity(68);
        line.extend_from_slice(&self.id.to_be_bytes());
        line.extend_from_slice(&signature.to_bytes());
        let line = base64::engine::general_purpose::STANDARD.encode(line);
        format!("{text}\n\u{2014} {} {line}\n", self.origin)
    }
}

/// The signed-note verifier key text of an Ed25519 key named `name`.
pub fn vkey(name: &str, key: &VerifyingKey) -> String {
    signed_note::new_ed25519_verifier_key(name, key)
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if signed_note::is_key_name_valid(origin) {
        Ok(())
    } else {
        Err(CheckpointError::BadOrigin(origin.to_owned()))
    }
}

/// Checks checkpoints with the log's verifier key alone.
#[derive(Clone)]
pub struct LogVerifier {
    origin: String,
    vkey: String,
    key: VerifyingKey,
    verifier: StandardVerifier,
}

impl LogVerifier {
    /// The verifier of the log `origin` with public key `key`.
    ///
    /// # Errors
    /// When the origin cannot be a note key name.
    pub fn new(origin: &str, key: &VerifyingKey) -> Result<Self, CheckpointError> {
        check_origin(origin)?;
        Self::from_vkey(&vkey(origin, key))
    }

    /// Reads verifier key text (`name+id+key`, surrounding whitespace ignored). The key name
    /// is the log's origin.
    ///
    /// # Errors
    /// When the text is not an Ed25519 signed-note verifier key.
    pub fn from_vkey(text: &str) -> Result<Self, CheckpointError> {
        let text = text.trim();
        let verifier = StandardVerifier::new(text)
            .map_err(|e| CheckpointError::BadVerifierKey(format!("{e}: {text:?}")))?;
        let origin = signed_note::Verifier::name(&verifier).to_owned();
        // `StandardVerifier` accepted `name+id+base64(0x01 || key)`; names have no `+`, but
        // base64 may.
        let key = text
            .splitn(3, '+')
            .nth(2)
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.get(1..)?).ok())
            .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
            .ok_or_else(|| CheckpointError::BadVerifierKey(text.to_owned()))?;
        // The id may be written in upper case (as Go's sumdb/note reads it too): keep the
        // canonical text, so that two spellings of one key compare equal.
        Ok(Self {
            vkey: vkey(&origin, &key),
            origin,
            key,
            verifier,
        })
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's Ed25519 public key: it also signs the genesis entry.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The verifier key text, canonical (the key id in lower case).
    pub fn vkey(&self) -> &str {
        &self.vkey
    }

    /// Verifies a signed checkpoint note: well formed, signed by the log key (signatures by
    /// other keys, such as cosigners', are ignored; a bad one by the log key is refused), and
    /// for this log's origin.
    ///
    /// # Errors
    /// As [`CheckpointError`].
    pub fn verify(&self, note: &[u8]) -> Result<SignedCheckpoint, CheckpointError> {
        let parsed =
            Note::from_bytes(note).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let known = VerifierList::new(vec![Box::new(self.verifier.clone())]);
        parsed
            .verify(&known)
            .map_err(|e| CheckpointError::Signature(e.to_string()))?;
        let checkpoint = tlog_tiles::Checkpoint::from_bytes(parsed.text())
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        if checkpoint.origin() != self.origin {
            return Err(CheckpointError::WrongOrigin {
                expected: self.origin.clone(),
                found: checkpoint.origin().to_owned(),
            });
        }
        if checkpoint.size() == 0 && *checkpoint.hash() != super::tree::EMPTY_HASH {
            return Err(CheckpointError::Malformed(
                "a checkpoint of size 0 must carry the empty tree's root".into(),
            ));
        }
        Ok(SignedCheckpoint {
            head: TreeHead {
                size: checkpoint.size(),
                root: *checkpoint.hash(),
            },
            note: note.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C2SP signed-note's example: the vkey verifies the example note, and its key id is the
    /// one the spec gives.
    #[test]
    fn the_c2sp_signed_note_example_verifies() {
        let vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
        let verifier = LogVerifier::from_vkey(vkey).unwrap();
        assert_eq!(verifier.origin(), "example.com/foo");
        let note = "This is an example message.\n\n\u{2014} example.com/foo \
            Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        let parsed = Note::from_bytes(note.as_bytes()).unwrap();
        let known = VerifierList::new(vec![Box::new(verifier.verifier.clone())]);
        parsed.verify(&known).unwrap();
        // It is a signed note but not a checkpoint.
        assert!(matches!(
            verifier.verify(note.as_bytes()),
            Err(CheckpointError::Malformed(_))
        ));
    }

    /// Go's `sumdb/note` example key: our key id and vkey text equal Go's.
    #[test]
    fn vkeys_match_go_sumdb_note() {
        let skey = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let seed = base64::engine::general_purpose::STANDARD
            .decode(skey)
            .unwrap();
        let key = SigningKey::from_bytes(&seed[1..].try_into().unwrap());
        let signer = LogSigner::new("PeterNeumann", key).unwrap();
        assert_eq!(
            signer.vkey(),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
        // The signed example in sumdb/note's documentation, byte for byte.
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        assert_eq!(
            signer.note(text),
            format!(
                "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            )
        );
    }

    #[test]
    fn checkpoints_round_trip_and_bad_ones_are_refused() {
        let signer =
            LogSigner::new("hashforum.test/forum", SigningKey::from_bytes(&[3; 32])).unwrap();
        let head = TreeHead {
            size: 1234,
            root: Hash([7; 32]),
        };
        let signed = signer.sign(head);
        let text = signed.text();
        assert!(text.starts_with(
            "hashforum.test/forum\n1234\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n\u{2014} hashforum.test/forum "
        ));
        let verifier = LogVerifier::from_vkey(&format!("{}\n", signer.vkey())).unwrap();
        assert_eq!(verifier.verify(&signed.note).unwrap(), signed);
        assert_eq!(
            verifier.key(),
            &SigningKey::from_bytes(&[3; 32]).verifying_key()
        );

        // A changed size, a changed root, a \r, a missing signature, another key, another origin.
        let other =
            LogSigner::new("hashforum.test/forum", SigningKey::from_bytes(&[4; 32])).unwrap();
        let staging =
            LogSigner::new("hashforum.test/staging", SigningKey::from_bytes(&[3; 32])).unwrap();
        let bad: Vec<Vec<u8>> = vec![
            text.replacen("1234", "1235", 1).into_bytes(),
            text.replacen("BwcH", "BwcI", 1).into_bytes(),
            text.replacen("\n1234", "\r\n1234", 1).into_bytes(),
            text.split("\n\n").next().unwrap().as_bytes().to_vec(),
            other.sign(head).note,
            staging.sign(head).note,
            b"\xff\xfe".to_vec(),
            Vec::new(),
        ];
        for note in bad {
            assert!(
                verifier.verify(&note).is_err(),
                "{:?}",
                String::from_utf8_lossy(&note)
            );
        }
        // A cosignature by an unknown key is ignored.
        let mut cosigned = signed.note.clone();
        cosigned.extend_from_slice(
            format!("\u{2014} witness.example {}\n", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").as_bytes(),
        );
        assert_eq!(verifier.verify(&cosigned).unwrap().head, head);
        assert!(LogSigner::new("has space", SigningKey::from_bytes(&[3; 32])).is_err());
        assert!(LogSigner::new("a+b", SigningKey::from_bytes(&[3; 32])).is_err());
        assert!(LogVerifier::from_vkey("nonsense").is_err());
        // Base64 keys with '+' in them (found by a test that made random keys).
        let vkey = "hashforum.dev/forum+e6069cc1+AfOgQUVMdCrgNLmQkXbJaFarkj5+iA0G6s+opu3BHITW";
        let verifier = LogVerifier::from_vkey(vkey).unwrap();
        assert_eq!(self::vkey(verifier.origin(), verifier.key()), vkey);
    }
}
