//! Known-answer vector freezing the signed bytes. `docs/signed-bytes.md` walks through these
//! exact bytes; if this test changes, that document and every client must change with it.

use ed25519_dalek::SigningKey;

use super::*;
use crate::pb;

/// The documented example: member `alpha` of the forum `hashforum.example/forum` submits an
/// MD5 with labels and one tag.
fn example_statement() -> pb::Statement {
    pb::Statement {
        author: "alpha".into(),
        issued_at_unix_ms: 0,
        origin: "hashforum.example/forum".into(),
        body: Some(pb::statement::Body::HashSubmission(pb::HashSubmission {
            hash_type: pb::HashType::Md5 as i32,
            value: "d41d8cd98f00b204e9800998ecf8427e".into(),
            labels: Some(pb::Labels {
                entity: "e".into(),
                behaviour: "b".into(),
                content_type: "image".into(),
            }),
            tags: vec!["t".into()],
            quality: None,
            incident_id: String::new(),
        })),
    }
}

/// The documented key: the Ed25519 seed 0x07 repeated 32 times.
fn example_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

const PAYLOAD_HEX: &str = concat!(
    "0a05616c706861",                                     // 1: author "alpha"
    "1a1768617368666f72756d2e6578616d706c652f666f72756d", // 3: origin, 23 bytes
    "5a36",                                               // 11: hash_submission, 54 bytes
    "0802",                                               //   1: hash_type MD5 (2)
    "1220",
    "6434316438636439386630306232303465393830303939386563663834323765", // 2: value
    "1a0d",
    "0a0165",
    "120162",
    "1a05696d616765", //   3: labels e, b, image
    "220174",         //   4: tag "t"
);

#[test]
fn payload_encoding_is_frozen() {
    let payload = prost::Message::encode_to_vec(&example_statement());
    assert_eq!(hex::encode(&payload), PAYLOAD_HEX);
    assert_eq!(payload.len(), 88);
}

#[test]
fn pae_is_frozen() {
    let payload = hex::decode(PAYLOAD_HEX).unwrap();
    let pae = pae(PAYLOAD_TYPE, &payload);
    let mut want = b"DSSEv1 47 application/vnd.hashforum.statement.v1+protobuf 88 ".to_vec();
    want.extend_from_slice(&payload);
    assert_eq!(PAYLOAD_TYPE.len(), 47);
    assert_eq!(pae, want);
}

#[test]
fn signature_and_keyid_are_frozen() {
    let envelope = sign_statement(&example_key(), &example_statement());
    assert_eq!(envelope.payload_type, PAYLOAD_TYPE);
    assert_eq!(hex::encode(&envelope.payload), PAYLOAD_HEX);
    let sig = &envelope.signatures[0];
    assert_eq!(
        hex::encode(example_key().verifying_key().as_bytes()),
        EXPECTED_PUBLIC_KEY
    );
    assert_eq!(sig.keyid, EXPECTED_KEYID);
    assert_eq!(hex::encode(&sig.sig), EXPECTED_SIG);
    assert_eq!(
        hex::encode(statement_digest(PAYLOAD_TYPE, &envelope.payload)),
        EXPECTED_DIGEST
    );
}

#[test]
fn verify_all_finds_the_bad_signature() {
    // More than two batches of `verify_all`'s 1,024, so that bad signatures in several batches
    // are found in parallel and the first one by position is reported.
    let key = example_key();
    let n = 2_600;
    let owned: Vec<Vec<u8>> = (0..n).map(|i: u32| i.to_be_bytes().to_vec()).collect();
    let messages: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    let mut sigs: Vec<_> = messages.iter().map(|m| key.sign(m)).collect();
    let keys = vec![key.verifying_key(); n as usize];
    assert_eq!(verify_all(&messages, &sigs, &keys), Ok(()));
    sigs[2_517] = key.sign(b"something else");
    assert_eq!(verify_all(&messages, &sigs, &keys), Err(2_517));
    sigs[1_030] = key.sign(b"something else");
    assert_eq!(verify_all(&messages, &sigs, &keys), Err(1_030));
    sigs[3] = key.sign(b"something else");
    assert_eq!(verify_all(&messages, &sigs, &keys), Err(3));
}

// Computed independently with Python's `cryptography` (see docs/signed-bytes.md).
const EXPECTED_PUBLIC_KEY: &str =
    "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
const EXPECTED_KEYID: &str = "fe812c12f3ab4ce6ac5db69ac352f906";
const EXPECTED_SIG: &str = concat!(
    "080f096b98963d65204e9d6558048dc249d7e41690a72bea46347d2043cbf1a9",
    "13798a618827897760ede118209200d4dac8c215ff29b7da7513dd7035b51c06"
);
const EXPECTED_DIGEST: &str = "57083155c76ce619127aef12e2e4c79c65e86df347112b1f966302e65c514770";
