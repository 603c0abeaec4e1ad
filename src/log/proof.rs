//! Receipts: C2SP `tlog-proof@v1`, an offline-verifiable proof that an entry is in the log.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the leaf's bytes after its envelope>     (ours; unauthenticated)
//! index <log index>
//! <base64 inclusion proof hash>                             zero or more, leaf's sibling first
//!
//! <the checkpoint note, verbatim>
//! ```
//!
//! The `extra` line carries what a submitter needs, besides the envelope it signed, to rebuild
//! the exact leaf: the protobuf encoding of the `LogEntry` fields after the envelope (sequencing
//! time, relaying admin). Nothing in it is trusted: the rebuilt leaf's hash must verify.

use base64::Engine;

use super::checkpoint::{CheckpointError, LogVerifier, SignedCheckpoint};
use super::tree::{self, Hash, ProofError, MAX_PROOF_HASHES};
use crate::types::LeafHash;

/// The first line of every receipt.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The most bytes of a receipt we read: 63 proof lines and a checkpoint with a hundred
/// cosignatures fit in a few KiB.
const MAX_RECEIPT_BYTES: usize = 64 << 10;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A parsed `tlog-proof@v1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The unauthenticated extra data, if any.
    pub extra: Option<Vec<u8>>,
    /// The entry's log index.
    pub index: u64,
    /// The inclusion proof in the checkpoint's tree.
    pub proof: Vec<Hash>,
    /// The checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Why a receipt was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    /// Not a `tlog-proof@v1`.
    #[error("malformed tlog-proof: {0}")]
    Malformed(String),
    /// The checkpoint does not verify.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not verify.
    #[error("inclusion proof of entry {index} in the tree of {size}: {error}")]
    Inclusion {
        /// The entry's index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
        /// What failed.
        error: ProofError,
    },
}

/// Writes a receipt.
pub fn encode(extra: Option<&[u8]>, index: u64, proof: &[Hash], checkpoint: &[u8]) -> Vec<u8> {
    let extra_len = extra.map_or(0, |e| e.len().div_ceil(3) * 4 + 7);
    let mut out = String::with_capacity(48 + extra_len + proof.len() * 45 + checkpoint.len());
    out.push_str(HEADER);
    out.push('\n');
    if let Some(extra) = extra {
        out.push_str("extra ");
        B64.encode_string(extra, &mut out);
        out.push('\n');
    }
    out.push_str("index ");
    out.push_str(&index.to_string());
    out.push('\n');
    for hash in proof {
        B64.encode_string(hash.0, &mut out);
        out.push('\n');
    }
    out.push('\n');
    let mut out = out.into_bytes();
    out.extend_from_slice(checkpoint);
    out
}

impl Receipt {
    /// Writes the receipt.
    pub fn encode(&self) -> Vec<u8> {
        encode(
            self.extra.as_deref(),
            self.index,
            &self.proof,
            &self.checkpoint,
        )
    }

    /// Parses a receipt. Strict: canonical decimals, 32-byte hashes, at most 63 of them.
    ///
    /// # Errors
    /// [`ReceiptError::Malformed`], saying which line is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let bad = |why: &str| ReceiptError::Malformed(why.to_owned());
        if bytes.len() > MAX_RECEIPT_BYTES {
            return Err(bad("larger than 64 KiB"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad("the first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(B64.decode(b64).map_err(|_| bad("extra is not base64"))?);
            line = lines.next().ok_or_else(|| bad("no index line"))?;
        }
        let index = line
            .strip_prefix("index ")
            .ok_or_else(|| bad("no index line"))?;
        let index = parse_decimal(index).ok_or_else(|| bad("the index is not a decimal"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == MAX_PROOF_HASHES {
                return Err(bad("more than 63 proof hashes"));
            }
            let hash = B64
                .decode(line)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .ok_or_else(|| bad("a proof line is not a base64 SHA-256 hash"))?;
            proof.push(Hash(hash));
        }
        Ok(Self {
            extra,
            index,
            proof,
            checkpoint: checkpoint.as_bytes().to_vec(),
        })
    }

    /// The entry this receipt is for, rebuilt from the envelope its holder signed and the
    /// `extra` line: `leaf_prefix(envelope) ++ extra`. Nothing is trusted: the result's leaf
    /// hash is what [`Receipt::verify`] checks.
    ///
    /// # Errors
    /// When there is no `extra` line, or it is not the canonical encoding of a `LogEntry`'s
    /// fields after the envelope.
    pub fn entry_for(&self, envelope: &crate::pb::Envelope) -> Result<Vec<u8>, ReceiptError> {
        let extra = self.extra.as_deref().ok_or_else(|| {
            ReceiptError::Malformed("no extra line to rebuild the entry with".into())
        })?;
        super::check_suffix(extra).map_err(|e| ReceiptError::Malformed(format!("extra: {e}")))?;
        Ok([super::leaf_prefix(envelope).as_slice(), extra].concat())
    }

    /// Verifies that the entry whose leaf hash is `leaf` is in the log: the checkpoint is
    /// signed by the log key of `verifier`, and the proof leads from `leaf` at `index` to its
    /// root. Returns the checkpoint.
    ///
    /// # Errors
    /// As [`ReceiptError`].
    pub fn verify(
        &self,
        verifier: &LogVerifier,
        leaf: LeafHash,
    ) -> Result<SignedCheckpoint, ReceiptError> {
        let checkpoint = verifier.verify(&self.checkpoint)?;
        let head = checkpoint.head;
        tree::verify_inclusion(&self.proof, self.index, head.size, head.root, leaf).map_err(
            |error| ReceiptError::Inclusion {
                index: self.index,
                size: head.size,
                error,
            },
        )?;
        Ok(checkpoint)
    }
}

/// An ASCII decimal without leading zeros (`0` itself excepted).
pub fn parse_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::log::checkpoint::{LogSigner, TreeHead};
    use crate::log::leaf_hash;
    use crate::log::tree::{Frontier, MemoryHashes};

    fn log(n: u32) -> (Vec<LeafHash>, MemoryHashes, Frontier) {
        let mut frontier = Frontier::default();
        let mut memory = MemoryHashes::default();
        let leaves: Vec<LeafHash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for (i, leaf) in leaves.iter().enumerate() {
            let first = tree::stored_hash_index(0, i as u64);
            memory.extend((first..).zip(frontier.append(*leaf)));
        }
        (leaves, memory, frontier)
    }

    #[test]
    fn receipts_round_trip_and_verify() {
        let signer =
            LogSigner::new("hashforum.test/forum", SigningKey::from_bytes(&[9; 32])).unwrap();
        let verifier = signer.verifier();
        let (leaves, memory, frontier) = log(11);
        let checkpoint = signer.sign(TreeHead {
            size: 11,
            root: frontier.root(),
        });
        for index in 0..11u64 {
            let proof = tree::inclusion_proof(index, 11, &memory).unwrap();
            let bytes = encode(Some(b"\x10\x05"), index, &proof, &checkpoint.note);
            let receipt = Receipt::parse(&bytes).unwrap();
            assert_eq!(receipt.encode(), bytes);
            assert_eq!(receipt.extra.as_deref(), Some(&b"\x10\x05"[..]));
            let leaf = leaves[usize::try_from(index).unwrap()];
            assert_eq!(receipt.verify(&verifier, leaf).unwrap(), checkpoint);
            let other = leaves[usize::try_from((index + 1) % 11).unwrap()];
            assert!(matches!(
                receipt.verify(&verifier, other),
                Err(ReceiptError::Inclusion { .. })
            ));
        }
        let text = String::from_utf8(encode(None, 3, &[], &checkpoint.note)).unwrap();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 3\n\nhashforum.test/forum\n11\n"));
    }

    #[test]
    fn malformed_receipts_are_refused_with_the_reason() {
        let hash = B64.encode([1u8; 32]);
        let cases = [
            ("c2sp.org/tlog-proof@v2\nindex 1\n\nx", "first line"),
            ("c2sp.org/tlog-proof@v1\nindex 01\n\nx", "decimal"),
            ("c2sp.org/tlog-proof@v1\nindex -1\n\nx", "decimal"),
            ("c2sp.org/tlog-proof@v1\nindex 1", "blank line"),
            ("c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\nx", "extra"),
            ("c2sp.org/tlog-proof@v1\n\nx", "index"),
            ("c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx", "SHA-256"),
        ];
        for (text, reason) in cases {
            match Receipt::parse(text.as_bytes()) {
                Err(ReceiptError::Malformed(why)) => assert!(why.contains(reason), "{text}: {why}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let long = format!(
            "c2sp.org/tlog-proof@v1\nindex 1\n{}\nx",
            format!("{hash}\n").repeat(64)
        );
        assert!(Receipt::parse(long.as_bytes()).is_err());
        assert!(Receipt::parse(&vec![b'a'; MAX_RECEIPT_BYTES + 1]).is_err());
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal("18446744073709551616"), None);
        assert_eq!(parse_decimal("+1"), None);
    }
}

/// The worked example of docs/transparency.md, byte for byte: change one, change the other.
#[cfg(test)]
mod worked_example {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::log::checkpoint::{LogSigner, TreeHead};
    use crate::log::tree::{inclusion_proof, stored_hash_index, Frontier, MemoryHashes};

    pub(super) fn example() -> (String, String, String) {
        let signer =
            LogSigner::new("forum.example/log", SigningKey::from_bytes(&[1; 32])).expect("origin");
        let leaves: [&[u8]; 3] = [b"entry zero", b"entry one", b"entry two"];
        let mut frontier = Frontier::default();
        let mut memory = MemoryHashes::default();
        for (i, leaf) in leaves.iter().enumerate() {
            let first = stored_hash_index(0, i as u64);
            memory.extend((first..).zip(frontier.append(crate::log::leaf_hash(leaf))));
        }
        let checkpoint = signer.sign(TreeHead {
            size: 3,
            root: frontier.root(),
        });
        let proof = inclusion_proof(1, 3, &memory).expect("proof");
        let receipt = encode(Some(b"\x10\xe8\x07"), 1, &proof, &checkpoint.note);
        (
            signer.vkey(),
            checkpoint.text().to_owned(),
            String::from_utf8(receipt).expect("text"),
        )
    }

    #[test]
    fn the_documented_example_is_what_the_code_writes() {
        let (vkey, note, receipt) = example();
        let docs = include_str!("../../docs/transparency.md");
        for (what, text) in [
            ("vkey", &vkey),
            ("checkpoint", &note),
            ("receipt", &receipt),
        ] {
            assert!(
                docs.contains(text.as_str()),
                "docs/transparency.md lacks the {what}:\n{text}"
            );
        }
    }

    #[test]
    #[ignore = "prints the example for the docs"]
    fn print_the_example() {
        let (vkey, note, receipt) = example();
        println!("{vkey}\n---\n{note}---\n{receipt}---");
    }
}
