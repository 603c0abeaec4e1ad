//! Offline verification, with the forum's verifier key (`forum.vkey`) alone: receipts, and
//! whole logs replayed from entry 0.
//!
//! Replaying a log checks what the primary checked when it appended each entry, with the same
//! `state` code: entry 0 is the genesis signed by the log key; every later entry is well
//! formed, authored by a member allowed to say it at that index, and signed by a key that
//! member had registered and not revoked at that index; and the tree of the entries has, at
//! each signed checkpoint's size, that checkpoint's root. The first bad index is reported.
//! Views are rebuilt in a scratch database, which is thrown away.

use crate::crypto;
use crate::entry::{Author, ParsedEntry};
use crate::genesis;
use crate::log::checkpoint::{LogVerifier, SignedCheckpoint, TreeHead};
use crate::log::proof::{Receipt, ReceiptError};
use crate::log::tree::{Frontier, Hash};
use crate::log::{leaf_hash, StoredEntry};
use crate::pb;
use crate::state::{Directory, Pending};
use crate::storage::{StorageError, Store};

/// Entries replayed per scratch commit.
const REPLAY_GROUP: u64 = 4096;

/// What a receipt is checked against: the entry it is for.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// The exact leaf bytes (`hashforum log entry N --raw`).
    Leaf(&'a [u8]),
    /// The signed envelope (protobuf): the leaf is rebuilt with the receipt's `extra`.
    Envelope(&'a pb::Envelope),
}

/// A verified receipt: the entry's index and leaf, and the checkpoint that covers it.
#[derive(Debug)]
pub struct VerifiedReceipt {
    /// The entry's log index.
    pub index: u64,
    /// The entry as stored in the log.
    pub entry: StoredEntry,
    /// The checkpoint the proof leads to.
    pub checkpoint: SignedCheckpoint,
}

/// Verifies a `tlog-proof` receipt for `entry` with the log's verifier.
///
/// # Errors
/// When the receipt is malformed, its checkpoint is not signed by the log key, the leaf
/// cannot be rebuilt, or the proof does not lead to the checkpoint's root.
pub fn receipt(
    verifier: &LogVerifier,
    receipt: &[u8],
    entry: Entry<'_>,
) -> Result<VerifiedReceipt, ReceiptError> {
    let parsed = Receipt::parse(receipt)?;
    let leaf = match entry {
        Entry::Leaf(leaf) => leaf.to_vec(),
        Entry::Envelope(envelope) => parsed.entry_for(envelope)?,
    };
    let stored = StoredEntry::decode(&leaf)
        .map_err(|e| ReceiptError::Malformed(format!("the entry: {e}")))?;
    let checkpoint = parsed.verify(verifier, leaf_hash(&leaf))?;
    Ok(VerifiedReceipt {
        index: parsed.index,
        entry: stored,
        checkpoint,
    })
}

/// What a verified log holds.
#[derive(Debug)]
pub struct LogReport {
    /// How many entries were replayed.
    pub entries: u64,
    /// The signed checkpoints checked against the replayed tree, by size.
    pub checkpoints: Vec<TreeHead>,
}

/// Why a log does not verify.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An entry could not be at its index.
    #[error("entry {index}: {reason}")]
    Entry {
        /// The first bad index.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint does not verify, or does not match the replayed tree.
    #[error("checkpoint of size {size}: {reason}")]
    Checkpoint {
        /// The checkpoint's size, or 0 when it could not be read.
        size: u64,
        /// What is wrong.
        reason: String,
    },
    /// The source could not be read.
    #[error("{0}")]
    Source(String),
}

impl From<StorageError> for LogError {
    fn from(e: StorageError) -> Self {
        LogError::Source(e.to_string())
    }
}

/// A leaf to replay, with the hash its source recorded for it, if any.
pub type LogItem = Result<(Vec<u8>, Option<Hash>), LogError>;

/// Replays a log from entry 0 and checks it against signed checkpoints (notes). `entries`
/// gives the leaves in index order, each with the leaf hash its source recorded, if any (a
/// data directory's tree), which must match. At least one checkpoint is required: without
/// one, nothing ties the entries to the log key beyond entry 0.
///
/// # Errors
/// The first bad entry or checkpoint, or a source failure.
pub fn log(
    verifier: &LogVerifier,
    entries: impl Iterator<Item = LogItem>,
    checkpoints: &[Vec<u8>],
) -> Result<LogReport, LogError> {
    let mut signed: Vec<TreeHead> = checkpoints
        .iter()
        .map(|note| {
            verifier
                .verify(note)
                .map(|c| c.head)
                .map_err(|e| LogError::Checkpoint {
                    size: 0,
                    reason: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    if signed.is_empty() {
        return Err(LogError::Checkpoint {
            size: 0,
            reason: "no signed checkpoint to check the entries against".into(),
        });
    }
    signed.sort_by_key(|h| h.size);
    signed.dedup_by(|a, b| a.size == b.size && a.root == b.root);
    if let Some(w) = signed.windows(2).find(|w| w[0].size == w[1].size) {
        return Err(LogError::Checkpoint {
            size: w[0].size,
            reason: "two signed checkpoints of this size have different roots".into(),
        });
    }
    let scratch = tempfile::tempdir().map_err(|e| LogError::Source(e.to_string()))?;
    let store = Store::open(scratch.path())?;
    let mut frontier = Frontier::default();
    let mut pending: Option<Pending<'_>> = None;
    let mut next_checkpoint = signed.iter().peekable();
    while next_checkpoint.peek().is_some_and(|h| h.size == 0) {
        next_checkpoint.next();
    }
    let mut last_ms = 0;
    for (index, item) in (0u64..).zip(entries) {
        let (leaf, recorded) = item?;
        let bad = |reason: String| LogError::Entry { index, reason };
        let stored = StoredEntry::decode(&leaf).map_err(|e| bad(e.to_string()))?;
        let time_ms = stored.sequenced_at_unix_ms;
        if time_ms < last_ms {
            return Err(bad(format!(
                "sequenced at {time_ms} ms, before the entry before it ({last_ms} ms)"
            )));
        }
        last_ms = time_ms;
        let hash = leaf_hash(&leaf);
        if recorded.is_some_and(|r| r.0 != hash.0) {
            return Err(bad(
                "its bytes do not have the hash recorded in the tree".into()
            ));
        }
        if index == 0 {
            genesis::bootstrap(&store, &leaf, verifier.key(), verifier.origin())
                .map_err(|e| bad(format!("not this forum's genesis: {e}")))?;
        } else {
            let group = match &mut pending {
                Some(group) => group,
                None => pending.insert(Pending::new(
                    &store,
                    None,
                    Directory::load(&store)?,
                    Frontier::load(index, &store)
                        .map_err(|e| LogError::Source(format!("scratch tree: {e}")))?,
                    0,
                )),
            };
            replay_one(group, verifier.origin(), stored, &leaf).map_err(bad)?;
            if (index + 1) % REPLAY_GROUP == 0 {
                if let Some(group) = pending.take() {
                    store.commit(group.finish().batch)?;
                }
            }
        }
        frontier.append(hash);
        while let Some(head) = next_checkpoint.next_if(|h| h.size == index + 1) {
            if head.root != frontier.root() {
                return Err(LogError::Checkpoint {
                    size: head.size,
                    reason: format!(
                        "its root differs from the tree of the entries (a bad entry below \
                         index {})",
                        head.size
                    ),
                });
            }
        }
    }
    if let Some(group) = pending.take() {
        store.commit(group.finish().batch)?;
    }
    if let Some(head) = next_checkpoint.next() {
        return Err(LogError::Checkpoint {
            size: head.size,
            reason: format!("the log has only {} entries", frontier.size()),
        });
    }
    let covered = signed.last().map_or(0, |h| h.size);
    if frontier.size() > covered {
        return Err(LogError::Entry {
            index: covered,
            reason: format!(
                "entries from {covered} on are covered by no signed checkpoint (a server \
                 signs its latest one when it starts)"
            ),
        });
    }
    Ok(LogReport {
        entries: frontier.size(),
        checkpoints: signed,
    })
}

/// Replays one stored leaf (not entry 0, `stored` decoded from `leaf`) on `pending`: checks it at its index as
/// the primary did, and verifies its author's signature with the key valid there.
fn replay_one(
    pending: &mut Pending<'_>,
    origin: &str,
    stored: StoredEntry,
    leaf: &[u8],
) -> Result<(), String> {
    let entry = ParsedEntry::parse(stored.envelope, origin).map_err(|e| e.to_string())?;
    let caller = match (&entry.author, stored.relayed_by.as_str()) {
        (Author::Member(author), "") => author.as_str().to_owned(),
        (Author::Member(author), relayer) if relayer == author.as_str() => {
            return Err("relayed by its own author: the log records no relayer then".into())
        }
        (Author::Member(_), relayer) => relayer.to_owned(),
        (Author::Forum, _) => return Err("only entry 0 is authored by the forum".into()),
    };
    let (signed, signature) = (entry.signed.clone(), entry.signature);
    let key = pending
        .replay(entry, &caller, leaf, stored.sequenced_at_unix_ms)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if !crypto::verify_one(&key, &signed, &signature) {
        return Err(format!(
            "the signature does not verify with the author's key {}",
            crypto::key_id(&key)
        ));
    }
    Ok(())
}

/// The entries and recorded leaf hashes of a data directory, in index order.
///
/// # Errors
/// Each item fails when the store does.
pub fn stored_entries(store: &Store) -> Result<impl Iterator<Item = LogItem> + '_, LogError> {
    let size = store.size()?;
    let chunks = (0..size).step_by(4096).map(move |start| {
        let end = (start + 4096).min(size);
        let leaves = store.entry_range(start, end)?;
        if leaves.len() as u64 != end - start {
            return Err(LogError::Entry {
                index: start + leaves.len() as u64,
                reason: "missing from the data directory".into(),
            });
        }
        let indexes: Vec<u64> = (start..end)
            .map(|i| crate::log::tree::stored_hash_index(0, i))
            .collect();
        let recorded = store.tree_hashes(&indexes)?;
        Ok(leaves
            .into_iter()
            .zip(recorded)
            .map(|(leaf, hash)| Ok((leaf, Some(hash))))
            .collect::<Vec<_>>())
    });
    Ok(chunks.flat_map(|chunk| match chunk {
        Ok(items) => items,
        Err(e) => vec![Err(e)],
    }))
}

/// A provenance bundle: every entry about one hash, each with its inclusion proof against one
/// signed checkpoint, and the entries that registered (and revoked) the keys that signed them.
/// `hashforum provenance --out FILE` writes it as JSON; binary fields are standard base64.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// The hash's type name (`pdq`, `md5`, ...).
    pub hash_type: String,
    /// The hash, lowercase hex.
    pub value: String,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
    /// The entries about the hash, in log order.
    pub entries: Vec<BundleEntry>,
    /// The key registrations and revocations.
    pub keys: Vec<BundleEntry>,
}

/// The `format` of a [`Bundle`].
pub const BUNDLE_FORMAT: &str = "hashforum-provenance/v1";

/// One entry of a bundle.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BundleEntry {
    /// Its log index.
    pub log_index: u64,
    /// Its exact bytes, base64.
    pub entry: String,
    /// Its inclusion proof, base64 hashes.
    pub inclusion_proof: Vec<String>,
}

/// An entry of a verified bundle.
#[derive(Debug)]
pub struct Fact {
    /// Its log index.
    pub index: u64,
    /// The entry, decoded.
    pub entry: StoredEntry,
}

/// Verifies a provenance bundle with the log's verifier: the checkpoint is signed by the log
/// key; every entry is in its tree; every entry is about the bundle's hash, for this forum,
/// and signed by its author with a key that an entry before it registered for that author and
/// that no entry in the bundle revoked before it. Returns the entries, in log order.
///
/// What a bundle cannot prove: that it holds *every* entry about the hash, or that a key was
/// not revoked by an entry it leaves out (a log proves inclusion, not absence); and key
/// registrations other than the genesis are taken as logged (their admin signatures are not
/// re-checked here). Replaying the whole log (`hashforum verify --data` or `--entries`)
/// checks all of it.
///
/// # Errors
/// The first thing that does not verify.
pub fn bundle(verifier: &LogVerifier, bundle: &Bundle) -> Result<(TreeHead, Vec<Fact>), String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    if bundle.format != BUNDLE_FORMAT {
        return Err(format!("format {:?} is not {BUNDLE_FORMAT}", bundle.format));
    }
    let hash_type =
        crate::types::HashType::parse(&bundle.hash_type).map_err(|e| format!("hash_type: {e}"))?;
    let hash = crate::types::ContentHash::parse(hash_type, &bundle.value)
        .map_err(|e| format!("value: {e}"))?;
    let head = verifier
        .verify(bundle.checkpoint.as_bytes())
        .map_err(|e| format!("checkpoint: {e}"))?
        .head;
    let open = |e: &BundleEntry| -> Result<(Vec<u8>, StoredEntry), String> {
        let bad = |why: String| format!("entry {}: {why}", e.log_index);
        let leaf = b64.decode(&e.entry).map_err(|_| bad("not base64".into()))?;
        let proof = e
            .inclusion_proof
            .iter()
            .map(|h| {
                b64.decode(h)
                    .ok()
                    .and_then(|h| <[u8; 32]>::try_from(h).ok())
                    .map(Hash)
                    .ok_or_else(|| bad("a proof hash is not base64 of 32 bytes".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::log::tree::verify_inclusion(
            &proof,
            e.log_index,
            head.size,
            head.root,
            leaf_hash(&leaf),
        )
        .map_err(|err| bad(format!("not in the checkpoint's tree: {err}")))?;
        let stored = StoredEntry::decode(&leaf).map_err(|err| bad(err.to_string()))?;
        Ok((leaf, stored))
    };

    // Keys: (member, key id) → (registered at, public key); revocations: (member, key id) → at.
    let mut registered = std::collections::HashMap::new();
    let mut revoked = std::collections::HashMap::new();
    for e in &bundle.keys {
        let (_, stored) = open(e)?;
        match &stored.statement.body {
            Some(pb::statement::Body::Genesis(g)) if e.log_index == 0 => {
                let genesis = ParsedEntry::parse(stored.envelope.clone(), verifier.origin())
                    .map_err(|err| format!("entry 0: {err}"))?;
                if !crypto::verify_one(verifier.key(), &genesis.signed, &genesis.signature) {
                    return Err("entry 0 is not signed by the log key".into());
                }
                for k in &g.keys {
                    let key = crate::entry::parse_public_key(&k.public_key)
                        .map_err(|err| format!("entry 0: {err}"))?;
                    registered.insert((k.member_id.clone(), crypto::key_id(&key)), (0, key));
                }
            }
            Some(pb::statement::Body::KeyRegistered(k)) => {
                let key = crate::entry::parse_public_key(&k.public_key)
                    .map_err(|err| format!("entry {}: {err}", e.log_index))?;
                registered.insert(
                    (k.member_id.clone(), crypto::key_id(&key)),
                    (e.log_index, key),
                );
            }
            Some(pb::statement::Body::KeyRevoked(k)) => {
                revoked.insert((k.member_id.clone(), k.keyid.clone()), e.log_index);
            }
            _ => {
                return Err(format!(
                    "entry {} is listed as a key entry but registers or revokes no key",
                    e.log_index
                ))
            }
        }
    }

    let mut facts = Vec::with_capacity(bundle.entries.len());
    let mut last = None;
    for e in &bundle.entries {
        let bad = |why: String| format!("entry {}: {why}", e.log_index);
        if last.is_some_and(|l| l >= e.log_index) {
            return Err(bad("the entries are not in log order".into()));
        }
        last = Some(e.log_index);
        let (_, stored) = open(e)?;
        let entry = ParsedEntry::parse(stored.envelope.clone(), verifier.origin())
            .map_err(|err| bad(err.to_string()))?;
        if entry.body.hash() != Some(&hash) {
            return Err(bad(format!(
                "it is not about {}:{}",
                bundle.hash_type, bundle.value
            )));
        }
        let Author::Member(author) = &entry.author else {
            return Err(bad("authored by the forum".into()));
        };
        let id = (author.to_string(), entry.keyid.clone());
        let (from, key) = registered.get(&id).ok_or_else(|| {
            bad(format!(
                "no entry in the bundle registers key {} for {author}",
                entry.keyid
            ))
        })?;
        if *from >= e.log_index {
            return Err(bad(format!(
                "key {} was registered only at {from}",
                entry.keyid
            )));
        }
        if let Some(at) = revoked.get(&id).filter(|&&at| at <= e.log_index) {
            return Err(bad(format!("key {} was revoked at {at}", entry.keyid)));
        }
        if !crypto::verify_one(key, &entry.signed, &entry.signature) {
            return Err(bad(format!(
                "the signature does not verify with key {}",
                entry.keyid
            )));
        }
        facts.push(Fact {
            index: e.log_index,
            entry: stored,
        });
    }
    Ok((head, facts))
}
