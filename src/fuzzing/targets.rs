//! The target bodies. Each takes any bytes and panics only when an invariant breaks.

use std::sync::OnceLock;

use ed25519_dalek::{Signer as _, SigningKey};
use prost::Message;
use tonic::Code;

use super::{LOG_SEED, MEMBER_SEED, ORIGIN, WITNESS, WITNESS_SEED};
use crate::crypto::{self, PAYLOAD_TYPE};
use crate::entry::ParsedEntry;
use crate::error::ServiceError;
use crate::follow::Evidence;
use crate::log::checkpoint::{LogSigner, LogVerifier, TreeHead};
use crate::log::cosignature::{self, Cosigner, WitnessVerifier};
use crate::log::proof::Receipt;
use crate::log::tree::{self, Frontier, Hash, MemoryHashes, MAX_PROOF_HASHES};
use crate::log::{self as leaves, leaf_hash, StoredEntry};
use crate::pb;
use crate::pdq::index::PdqIndex;
use crate::pdq::Bits;
use crate::wire::{self, MAX_SIGNATURES_KEPT};

/// The fixed keys, made once.
struct Keys {
    log: LogSigner,
    verifier: LogVerifier,
    member: SigningKey,
    witness: Cosigner,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let log = LogSigner::new(ORIGIN, SigningKey::from_bytes(&LOG_SEED))
            .unwrap_or_else(|e| unreachable!("the dev origin is a key name: {e}"));
        Keys {
            verifier: log.verifier(),
            log,
            member: SigningKey::from_bytes(&MEMBER_SEED),
            witness: Cosigner::new(WITNESS, SigningKey::from_bytes(&WITNESS_SEED))
                .unwrap_or_else(|e| unreachable!("the witness name is a key name: {e}")),
        }
    })
}

/// The log key (for [`super::seeds`]).
pub(super) fn log_signer() -> &'static LogSigner {
    &keys().log
}

/// The witness (for [`super::seeds`]).
pub(super) fn witness() -> &'static Cosigner {
    &keys().witness
}

/// A refusal by a validator of client input: `INVALID_ARGUMENT`, with a reason and the field.
fn assert_invalid_argument(error: ServiceError) {
    assert!(error.reason().is_some(), "no reason: {error:?}");
    let field = match &error {
        ServiceError::Invalid { field, .. } | ServiceError::At { field, .. } => field,
        other => panic!("not an INVALID_ARGUMENT: {other:?}"),
    };
    assert!(!field.is_empty(), "no field: {error:?}");
    let described = format!("{error:?}");
    let status = tonic::Status::from(error);
    assert_eq!(status.code(), Code::InvalidArgument, "{described}");
}

/// An envelope as the generated type would keep it after our decoder: signatures past
/// [`MAX_SIGNATURES_KEPT`] dropped.
fn capped(mut envelope: pb::Envelope) -> pb::Envelope {
    envelope.signatures.truncate(MAX_SIGNATURES_KEPT);
    envelope
}

/// Parses an envelope as the server does at the door, and checks what an accepted one is.
fn parse_envelope(envelope: pb::Envelope) -> Option<ParsedEntry> {
    match ParsedEntry::parse(envelope.clone(), ORIGIN) {
        Err(e) => {
            assert_invalid_argument(e);
            None
        }
        Ok(entry) => {
            assert_eq!(entry.envelope, envelope);
            let statement = pb::Statement::decode(entry.payload().clone())
                .unwrap_or_else(|e| panic!("an accepted payload decodes: {e}"));
            assert_eq!(statement.encode_to_vec(), entry.payload()[..], "canonical");
            assert_eq!(statement.issued_at_unix_ms, entry.issued_at_unix_ms);
            assert_eq!(entry.signed, crypto::pae(PAYLOAD_TYPE, entry.payload()));
            assert_eq!(entry.digest.0, crypto::sha256(&entry.signed));
            // The leaf the sequencer would write reads back as this envelope.
            let leaf = leaves::leaf_bytes(&entry.leaf_prefix, 1_764_300_000_000, Some("admin"));
            let stored = StoredEntry::decode(&leaf)
                .unwrap_or_else(|e| panic!("an accepted entry's leaf decodes: {e}"));
            assert_eq!(stored.envelope, entry.envelope);
            assert_eq!(stored.statement, statement);
            assert_eq!(stored.relayed_by, "admin");
            Some(entry)
        }
    }
}

/// `SubmitEntries` and `SubmitEntry` request bodies: the capped decoders against the generated
/// ones, then every kept envelope through admission parsing.
pub fn submit_request(data: &[u8]) {
    let generated = pb::SubmitEntriesRequest::decode(data);
    let ours = wire::SubmitEntriesRequest::decode(data);
    match (&generated, &ours) {
        (Ok(g), Ok(o)) => {
            assert_eq!(o.len(), g.envelopes.len());
            let kept: Vec<_> = g
                .envelopes
                .iter()
                .take(wire::MAX_SUBMIT_BATCH)
                .cloned()
                .map(capped)
                .collect();
            assert_eq!(o.envelopes, kept);
        }
        (Ok(_), Err(e)) => panic!("the generated decoder accepts what ours refuses: {e}"),
        // Ours skips what lies past a cap without decoding it.
        (Err(_), Ok(o)) => assert!(
            o.skipped > 0
                || o.envelopes
                    .iter()
                    .any(|e| e.signatures.len() == MAX_SIGNATURES_KEPT),
            "ours accepts what the generated decoder refuses, with nothing skipped"
        ),
        (Err(_), Err(_)) => {}
    }
    match (
        pb::SubmitEntryRequest::decode(data),
        wire::SubmitEntryRequest::decode(data),
    ) {
        (Ok(g), Ok(o)) => assert_eq!(o.envelope, g.envelope.map(capped)),
        (Ok(_), Err(e)) => panic!("the generated decoder accepts what ours refuses: {e}"),
        (Err(_), Ok(o)) => assert!(
            o.envelope
                .is_some_and(|e| e.signatures.len() == MAX_SIGNATURES_KEPT),
            "ours accepts what the generated decoder refuses, with nothing skipped"
        ),
        (Err(_), Err(_)) => {}
    }
    if let Ok(request) = ours {
        for envelope in request.envelopes.into_iter().take(4) {
            parse_envelope(envelope);
        }
    }
}

/// A statement payload, signed by `alpha`'s key into a well-formed envelope: admission parsing
/// of every statement body.
pub fn statement(data: &[u8]) {
    let envelope = crypto::sign_payload(&keys().member, bytes::Bytes::copy_from_slice(data));
    if let Some(entry) = parse_envelope(envelope) {
        assert!(crypto::verify_one(
            &keys().member.verifying_key(),
            &entry.signed,
            &entry.signature
        ));
        assert_eq!(entry.keyid, crypto::key_id(&keys().member.verifying_key()));
    }
}

/// `LookupHashes` and `LookupHash` request bodies: the capped decoder against the generated
/// one, then every query through the server's query parsing.
pub fn lookup_request(data: &[u8]) {
    let ours = wire::LookupHashesRequest::decode(data);
    match (pb::LookupHashesRequest::decode(data), &ours) {
        (Ok(g), Ok(o)) => {
            assert_eq!(o.len(), g.queries.len());
            assert_eq!(
                o.queries[..],
                g.queries[..g.queries.len().min(wire::MAX_LOOKUP_BATCH)]
            );
            assert_eq!(o.include_envelopes, g.include_envelopes);
        }
        (Ok(_), Err(e)) => panic!("the generated decoder accepts what ours refuses: {e}"),
        (Err(_), Ok(o)) => assert!(o.skipped > 0, "accepted with nothing skipped"),
        (Err(_), Err(_)) => {}
    }
    let single = pb::LookupHashRequest::decode(data)
        .ok()
        .and_then(|r| r.query);
    let queries = ours.map(|r| r.queries).unwrap_or_default();
    for query in queries.iter().take(16).chain(single.as_ref()) {
        match crate::service::parse_query(query) {
            Err(e) => assert_invalid_argument(e),
            Ok(hash) => {
                // What the server keys and answers by: the canonical lowercase hex.
                assert_eq!(hash.to_hex(), query.value);
                assert_eq!(hash.hash_type().to_pb() as i32, query.hash_type);
                assert_eq!(hash.as_bytes().len(), hash.hash_type().byte_len());
            }
        }
    }
}

/// The hashes in the index that [`match_request`] searches.
fn match_index() -> &'static (PdqIndex, Vec<Bits>) {
    static INDEX: OnceLock<(PdqIndex, Vec<Bits>)> = OnceLock::new();
    INDEX.get_or_init(|| {
        // Spread over every distance from zero: hash i has its first i bits set.
        let hashes: Vec<Bits> = (0..=256usize)
            .step_by(4)
            .map(|n| {
                let mut bits = [0u8; 32];
                for bit in 0..n {
                    bits[bit / 8] |= 1 << (bit % 8);
                }
                bits
            })
            .collect();
        let index = PdqIndex::build(hashes.iter().map(|&h| (h, 0)).collect());
        (index, hashes)
    })
}

/// `MatchHashes` request bodies: the capped decoder against the generated one, the server's
/// match parsing, and each accepted query against the index and a linear scan.
pub fn match_request(data: &[u8]) {
    let ours = wire::MatchHashesRequest::decode(data);
    match (pb::MatchHashesRequest::decode(data), &ours) {
        (Ok(g), Ok(o)) => {
            assert_eq!(o.len(), g.queries.len());
            assert_eq!(
                o.queries[..],
                g.queries[..g.queries.len().min(wire::MAX_MATCH_BATCH)]
            );
            assert_eq!(
                (o.hash_type, o.max_distance, o.include_inactive, o.dihedral),
                (g.hash_type, g.max_distance, g.include_inactive, g.dihedral)
            );
        }
        (Ok(_), Err(e)) => panic!("the generated decoder accepts what ours refuses: {e}"),
        (Err(_), Ok(o)) => assert!(o.skipped > 0, "accepted with nothing skipped"),
        (Err(_), Err(_)) => {}
    }
    let Ok(request) = ours else { return };
    let (queries, options) = match crate::service::parse_match(&request) {
        Err(e) => return assert_invalid_argument(e),
        Ok(parsed) => parsed,
    };
    assert!(options.max_distance <= crate::pdq::MAX_DISTANCE);
    assert_eq!(queries.len(), request.queries.len());
    let (index, hashes) = match_index();
    for (bits, _) in queries.iter().take(8) {
        let mut found = Vec::new();
        index.query(bits, options.max_distance, true, &mut found);
        let mut expected: Vec<(u32, Bits)> = hashes
            .iter()
            .map(|h| (crate::pdq::distance(bits, h), *h))
            .filter(|(d, _)| *d <= options.max_distance)
            .collect();
        expected.sort_unstable();
        let found: Vec<(u32, Bits)> = found.iter().map(|m| (m.distance, m.bits)).collect();
        assert_eq!(found, expected, "the index finds what a scan finds");
    }
}

/// A log leaf as a replica or `verify` receives it: decoded without admission rules, then as
/// the genesis (entry 0, with the log key) and as a later entry.
pub fn log_leaf(data: &[u8]) {
    let Ok(stored) = StoredEntry::decode(data) else {
        return;
    };
    assert_eq!(
        pb::Statement::decode(stored.envelope.payload.clone()).ok(),
        Some(stored.statement.clone())
    );
    if let Ok(genesis) = crate::genesis::parse(data, keys().verifier.key(), ORIGIN) {
        assert!(matches!(genesis.body, crate::entry::Body::Genesis(_)));
        assert!(crypto::verify_one(
            keys().verifier.key(),
            &genesis.signed,
            &genesis.signature
        ));
    }
    parse_envelope(stored.envelope);
    // The suffix check receipts use: what it accepts rebuilds the same bytes.
    if leaves::check_suffix(data).is_ok() {
        let entry = pb::LogEntry::decode(data).unwrap_or_else(|e| panic!("checked: {e}"));
        assert_eq!(
            leaves::leaf_suffix(entry.sequenced_at_unix_ms, Some(&entry.relayed_by)),
            data
        );
    }
}

/// A checkpoint note as a replica or mirror receives it; and the same bytes as a note's text,
/// signed by the log key, which must verify exactly when the text is a checkpoint of this log.
pub fn checkpoint(data: &[u8]) {
    let verifier = &keys().verifier;
    if let Ok(checkpoint) = verifier.verify(data) {
        assert_eq!(checkpoint.note, data);
        // A verified note's text is exactly the body we would sign for its head.
        let body = crate::log::checkpoint::body(ORIGIN, &checkpoint.head);
        assert!(checkpoint.text().starts_with(&body), "{body:?}");
    }
    // Size and root from the input: signing and verifying round-trips any head.
    if data.len() >= 40 {
        let size = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
        let root = Hash(data[8..40].try_into().unwrap_or_default());
        let head = TreeHead { size, root };
        let signed = keys().log.sign(head);
        match verifier.verify(&signed.note) {
            Ok(back) => assert_eq!(back.head, head),
            // Only the empty tree has a fixed root.
            Err(_) => assert!(size == 0 && root != tree::EMPTY_HASH),
        }
    }
}

/// A checkpoint note carrying cosignatures, as the primary receives one from a replica
/// (`AddCosignature`) or a mirror checks one: the witness's lines, and quorums.
pub fn cosignature(data: &[u8]) {
    let witness = keys().witness.verifier();
    let verified = witness.verify(data);
    if let Ok(Some(time)) = verified {
        assert!(time <= i64::MAX as u64);
        let found = cosignature::cosigned(data, std::slice::from_ref(&witness))
            .unwrap_or_else(|e| panic!("verified, then refused: {e}"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].time, time);
        assert!(cosignature::quorum(data, std::slice::from_ref(&witness), 1).is_ok());
    }
    // The last line given on its own, as AddCosignature carries it.
    let text = String::from_utf8_lossy(data);
    if let Some((note, line)) = text.rsplit_once("\n\u{2014} ") {
        let note = format!("{note}\n");
        if let Ok(time) = witness.verify_line(note.as_bytes(), &format!("\u{2014} {line}")) {
            assert!(time <= i64::MAX as u64);
        }
    }
    // A valid cosignature of a checkpoint signed here, whatever its head, verifies.
    if let Ok(checkpoint) = keys().verifier.verify(data) {
        let time = data.len() as u64;
        let line = keys().witness.cosign(&checkpoint, time);
        assert_eq!(witness.verify_line(data, &line), Ok(time));
    }
}

/// A `tlog-proof@v1` receipt: parsing is strict enough that what parses writes back the same
/// bytes; verification never panics; a receipt whose entry is rebuilt from an envelope has the
/// envelope's leaf prefix.
pub fn receipt(data: &[u8]) {
    let Ok(receipt) = Receipt::parse(data) else {
        return;
    };
    assert_eq!(
        receipt.encode(),
        data,
        "a parsed receipt re-encodes exactly"
    );
    assert!(receipt.proof.len() <= MAX_PROOF_HASHES);
    let envelope = pb::Envelope {
        payload: bytes::Bytes::from_static(b"\x0a\x05alpha"),
        payload_type: PAYLOAD_TYPE.into(),
        signatures: vec![],
    };
    if let Ok(leaf) = receipt.entry_for(&envelope) {
        assert!(leaf.starts_with(&leaves::leaf_prefix(&envelope)));
        let _ = crate::verify::receipt(
            &keys().verifier,
            data,
            crate::verify::Entry::Envelope(&envelope),
        );
    }
    let _ = receipt.verify(&keys().verifier, leaf_hash(b"fuzz"));
    let _ = crate::verify::receipt(&keys().verifier, data, crate::verify::Entry::Leaf(data));
}

/// Reads a little-endian u64 from `data` at `at`, zero-padded.
fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    for (i, b) in data.iter().skip(at).take(8).enumerate() {
        word[i] = *b;
    }
    u64::from_le_bytes(word)
}

/// Inclusion and consistency proofs as a replica or mirror receives them. The input gives the
/// sizes, the index and the proof hashes, checked against any root; and a small real tree
/// (size from the input), whose honest proofs must verify and whose altered ones must not.
pub fn proof(data: &[u8]) {
    let (a, b) = (u64_at(data, 0), u64_at(data, 8));
    let hashes: Vec<Hash> = data
        .get(16..)
        .unwrap_or_default()
        .chunks_exact(32)
        .map(|c| Hash(c.try_into().unwrap_or_default()))
        .collect();
    let root = hashes.first().copied().unwrap_or(Hash([0; 32]));
    let leaf = crate::types::LeafHash(root.0);
    let proof = hashes.get(1..).unwrap_or_default();
    let _ = tree::verify_inclusion(proof, a, b, root, leaf);
    let _ = tree::verify_consistency(proof, a, root, b, root);
    if let Some(prefix) = tree::consistency_prefix_root(proof, a, b, root) {
        // The root the proof implies for the old size passes the full check.
        assert_eq!(
            tree::verify_consistency(proof, a, prefix, b, root),
            Ok(()),
            "prefix root of {a} in {b}"
        );
    }

    // A frontier from outside (an evidence file's): any size it accepts has a root, and
    // appending to it never fails.
    let levels = (u64::BITS - a.leading_zeros()) as usize;
    let last = (0..levels)
        .map(|l| hashes.get(l).copied().unwrap_or(root))
        .collect();
    if let Some(mut outside) = Frontier::from_hashes(a, last) {
        outside.root();
        outside.append(leaf);
        outside.root();
    }

    // A real tree of 1..=64 leaves.
    let size = a % 64 + 1;
    let mut frontier = Frontier::default();
    let mut stored = MemoryHashes::default();
    for i in 0..size {
        let start = tree::stored_hash_index(0, i);
        stored.extend((start..).zip(frontier.append(leaf_hash(&i.to_le_bytes()))));
    }
    let real_root = frontier.root();
    let index = b % size;
    let honest = tree::inclusion_proof(index, size, &stored)
        .unwrap_or_else(|e| panic!("inclusion proof of {index} in {size}: {e}"));
    let leaf = leaf_hash(&index.to_le_bytes());
    assert_eq!(
        tree::verify_inclusion(&honest, index, size, real_root, leaf),
        Ok(())
    );
    let old = b % (size + 1);
    let old_root = tree::root(old, &stored).unwrap_or_else(|e| panic!("root of {old}: {e}"));
    let consistency = tree::consistency_proof(old, size, &stored)
        .unwrap_or_else(|e| panic!("consistency {old}..{size}: {e}"));
    assert_eq!(
        tree::verify_consistency(&consistency, old, old_root, size, real_root),
        Ok(())
    );
    if let Some(prefix) = tree::consistency_prefix_root(&consistency, old, size, real_root) {
        assert_eq!(prefix, old_root);
    }
    // The same proofs with one hash replaced by the input's: they verify only unchanged.
    if let (Some(&h), false) = (hashes.first(), honest.is_empty()) {
        let mut altered = honest.clone();
        let at = usize::try_from(a >> 8).unwrap_or(0) % altered.len();
        altered[at] = h;
        let verifies = tree::verify_inclusion(&altered, index, size, real_root, leaf).is_ok();
        assert_eq!(verifies, altered == honest);
    }
}

/// Verifier key text, as `forum.vkey` and witness keys in a config or mirror: what parses
/// names a key whose vkey text is the input's.
pub fn vkey(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The key id may be written in upper case: the text kept is the canonical one, which
    // reads back as the same key, and differs from the input by case alone.
    let same_but_case = |canonical: &str| {
        assert_eq!(canonical.len(), text.trim().len());
        assert!(canonical.eq_ignore_ascii_case(text.trim()));
    };
    if let Ok(verifier) = LogVerifier::from_vkey(text) {
        let canonical = crate::log::checkpoint::vkey(verifier.origin(), verifier.key());
        assert_eq!(verifier.vkey(), canonical);
        same_but_case(&canonical);
        let again =
            LogVerifier::from_vkey(&canonical).unwrap_or_else(|e| panic!("its own vkey: {e}"));
        assert_eq!(
            (again.origin(), again.key()),
            (verifier.origin(), verifier.key())
        );
    }
    if let Ok(witness) = WitnessVerifier::from_vkey(text) {
        same_but_case(&witness.vkey());
        let again = WitnessVerifier::from_vkey(&witness.vkey())
            .unwrap_or_else(|e| panic!("its own vkey: {e}"));
        assert_eq!(
            (again.key_id(), again.key(), again.name()),
            (witness.key_id(), witness.key(), witness.name())
        );
    }
}

/// An evidence file (JSON), as `hashforum verify --evidence` reads one: checking never panics,
/// and a file written back from what was read checks the same.
pub fn evidence(data: &[u8]) {
    let Ok(evidence) = serde_json::from_slice::<Evidence>(data) else {
        return;
    };
    let finding = evidence.check(&keys().verifier);
    if let Ok(f) = &finding {
        assert!(!f.what.is_empty());
    }
    let json = serde_json::to_vec(&evidence).unwrap_or_else(|e| panic!("serialises: {e}"));
    let again: Evidence =
        serde_json::from_slice(&json).unwrap_or_else(|e| panic!("reads back: {e}"));
    assert_eq!(again.check(&keys().verifier), finding);
}

/// A provenance bundle (JSON), as `hashforum verify --bundle` reads one.
pub fn bundle(data: &[u8]) {
    let Ok(bundle) = serde_json::from_slice::<crate::verify::Bundle>(data) else {
        return;
    };
    if let Ok((head, facts)) = crate::verify::bundle(&keys().verifier, &bundle) {
        assert!(facts.iter().all(|f| f.index < head.size));
        assert!(facts.windows(2).all(|w| w[0].index < w[1].index));
    }
}

/// A server config file (TOML): what parses and passes the checks writes back to text that
/// parses and checks the same.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = toml::from_str::<crate::config::FileConfig>(text) else {
        return;
    };
    let checked = file.check();
    let written = toml::to_string(&file).unwrap_or_else(|e| panic!("writes: {e}"));
    let again: crate::config::FileConfig =
        toml::from_str(&written).unwrap_or_else(|e| panic!("reads back {written:?}: {e}"));
    assert_eq!(again.check(), checked);
    assert_eq!(again.quotas.invalid(), file.quotas.invalid());
    assert_eq!(
        toml::to_string(&again).unwrap_or_else(|e| panic!("writes: {e}")),
        written
    );
}

/// Signs `text` as a note with the log key: for [`super::seeds`], notes that are not
/// checkpoints.
pub(super) fn log_note(text: &str) -> Vec<u8> {
    let key = SigningKey::from_bytes(&LOG_SEED);
    let id = signed_note::key_id(
        ORIGIN,
        &[&[1u8][..], key.verifying_key().as_bytes()].concat(),
    );
    let signature = key.sign(text.as_bytes());
    let mut sig = id.to_be_bytes().to_vec();
    sig.extend_from_slice(&signature.to_bytes());
    use base64::Engine;
    format!(
        "{text}\n\u{2014} {ORIGIN} {}\n",
        base64::engine::general_purpose::STANDARD.encode(sig)
    )
    .into_bytes()
}

/// An image file, as `hashforum hash` reads one: decoding within the limits never panics, and
/// the first of the eight dihedral hashes is the image's own. Images of more than a megapixel
/// (by their header) are skipped: hashing them is only slower, and the decode limits are the
/// `pdq_hash` integration tests' subject.
pub fn image(data: &[u8]) {
    let dimensions = image::ImageReader::new(std::io::Cursor::new(data))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_dimensions().ok());
    if dimensions.is_none_or(|(w, h)| u64::from(w) * u64::from(h) > 1 << 20) {
        return;
    }
    let Ok(decoded) = crate::pdq::hasher::decode(data) else {
        return;
    };
    let hash = crate::pdq::hasher::hash_image(&decoded);
    assert!(hash.quality <= 100);
    let all = crate::pdq::hasher::hash_dihedral(&decoded);
    assert_eq!(all[0].1, hash);
}
