//! Admission rules, one refusal at a time: each case changes one thing in a valid envelope and
//! expects the field and reason that name it.

use ed25519_dalek::SigningKey;

use super::*;
use crate::statement::{admin, hash_submission, Signer};

const ORIGIN: &str = "hashforum.example/forum";
const MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn signer() -> Signer {
    Signer::new(ORIGIN, "alpha", key())
}

fn valid() -> pb::Statement {
    signer().statement(
        0,
        pb::statement::Body::HashSubmission(hash_submission(HashType::Md5, MD5)),
    )
}

/// Signs raw payload bytes, as a client that does not use prost could.
fn envelope_of(payload: Vec<u8>) -> pb::Envelope {
    crypto::sign_payload(&key(), payload.into())
}

fn refusal(envelope: pb::Envelope) -> (String, &'static str) {
    match ParsedEntry::parse(envelope, ORIGIN) {
        Ok(_) => panic!("accepted"),
        Err(ServiceError::Invalid { field, reason, .. }) => (field, reason),
        Err(other) => panic!("not INVALID_ARGUMENT: {other:?}"),
    }
}

#[test]
fn a_valid_submission_parses() {
    let entry = ParsedEntry::parse(signer().sign(&valid()), ORIGIN).unwrap();
    assert_eq!(
        entry.author,
        Author::Member(MemberId::parse("alpha").unwrap())
    );
    assert!(matches!(entry.body, Body::HashSubmission(_)));
}

/// H1: a statement signed for another forum (say staging) is refused here.
#[test]
fn a_statement_for_another_forum_is_refused() {
    let staging = Signer::new("hashforum.example/staging", "alpha", key());
    let envelope = staging.sign(&staging.statement(
        0,
        pb::statement::Body::HashSubmission(hash_submission(HashType::Md5, MD5)),
    ));
    assert_eq!(
        refusal(envelope.clone()),
        ("payload.origin".into(), "WRONG_ORIGIN")
    );
    assert!(ParsedEntry::parse(envelope, "hashforum.example/staging").is_ok());
    let mut no_origin = valid();
    no_origin.origin.clear();
    assert_eq!(
        refusal(signer().sign(&no_origin)),
        ("payload.origin".into(), "WRONG_ORIGIN")
    );
}

/// M7: nothing but the canonical encoding of the statement enters the log.
#[test]
fn payload_bytes_beyond_the_statement_are_refused() {
    let canonical = prost::Message::encode_to_vec(&valid());
    assert!(ParsedEntry::parse(envelope_of(canonical.clone()), ORIGIN).is_ok());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // An unknown field (99, length-delimited) carrying arbitrary bytes.
        (
            "unknown field",
            [canonical.clone(), vec![0x9a, 0x06, 3, b'x', b'y', b'z']].concat(),
        ),
        // The same field twice: protobuf keeps the last, so the bytes say more than the value.
        (
            "repeated scalar",
            [
                canonical.clone(),
                vec![0x0a, 5, b'a', b'l', b'p', b'h', b'a'],
            ]
            .concat(),
        ),
        // A default value written out: `issued_at_unix_ms = 0`.
        (
            "explicit default",
            [vec![0x10, 0x00], canonical.clone()].concat(),
        ),
        // Fields out of order: origin before author.
        ("out of order", {
            let author = canonical[..7].to_vec();
            let origin_len = 2 + ORIGIN.len();
            let origin = canonical[7..7 + origin_len].to_vec();
            [origin, author, canonical[7 + origin_len..].to_vec()].concat()
        }),
        // A varint with a redundant continuation byte (hash_type = 2 as 0x82 0x00).
        ("long varint", {
            let mut bytes = canonical.clone();
            let pos = bytes.windows(2).position(|w| w == [0x08, 0x02]).unwrap();
            bytes.splice(pos + 1..pos + 2, [0x82, 0x00]);
            let len_pos = bytes.iter().position(|&b| b == 0x5a).unwrap() + 1;
            bytes[len_pos] += 1;
            bytes
        }),
    ];
    for (name, payload) in cases {
        assert_ne!(payload, canonical, "{name}");
        let got = refusal(envelope_of(payload));
        assert_eq!(got, ("payload".into(), "NON_CANONICAL_STATEMENT"), "{name}");
    }
    assert_eq!(
        refusal(envelope_of(vec![0xff, 0xff])),
        ("payload".into(), "INVALID_STATEMENT")
    );
}

/// L1: key ids are validated before anything echoes them.
#[test]
fn key_ids_are_32_lowercase_hex_characters() {
    for bad in [
        "",
        "00",
        &"A".repeat(32),
        &"g".repeat(32),
        &"a".repeat(33),
        &"\u{202e}".repeat(8),
    ] {
        let mut envelope = signer().sign(&valid());
        envelope.signatures[0].keyid = bad.to_owned();
        assert_eq!(
            refusal(envelope),
            ("signatures[0].keyid".into(), "INVALID_KEY_ID"),
            "{bad:?}"
        );
    }
    let body = admin::revoke_key("alpha", "not-a-key-id", "");
    assert_eq!(
        refusal(signer().admin(body)),
        ("payload.key_revoked.keyid".into(), "INVALID_KEY_ID")
    );
}

/// L7: labels, display names and reasons refuse control, bidi and zero-width characters.
#[test]
fn invisible_characters_are_refused_in_free_text() {
    let mut s = hash_submission(HashType::Md5, MD5);
    s.labels = Some(pb::Labels {
        entity: "isis\u{202E}".into(),
        ..Default::default()
    });
    assert_eq!(
        refusal(signer().submit(s)),
        (
            "payload.hash_submission.labels.entity".into(),
            "INVALID_LABEL"
        )
    );
    let body = admin::add_member(
        "gamma",
        "Gamma\u{200B}Inc",
        &[Role::Reader],
        vec![vec![1; 32]],
    );
    assert_eq!(
        refusal(signer().admin(body)),
        (
            "payload.member_added.display_name".into(),
            "INVALID_DISPLAY_NAME"
        )
    );
    let body = admin::suspend("gamma", "see\u{2066}ticket");
    assert_eq!(
        refusal(signer().admin(body)),
        ("payload.member_suspended.reason".into(), "INVALID_REASON")
    );
}

/// The size check comes before decoding: a payload one byte over the limit is refused as too
/// large, whatever it holds.
#[test]
fn the_payload_limit_is_checked_first() {
    let mut over = prost::Message::encode_to_vec(&valid());
    over.resize(MAX_PAYLOAD + 1, 0);
    assert_eq!(
        refusal(envelope_of(over)),
        ("payload".into(), "PAYLOAD_TOO_LARGE")
    );
}

/// L2: genesis is validated as strictly as the admin actions it stands for.
#[test]
fn genesis_refuses_what_admin_actions_refuse() {
    let key = key().verifying_key();
    let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
    let member = |id: &str, cert: u8, roles: &[Role]| pb::MemberAdded {
        member_id: id.into(),
        display_name: id.into(),
        roles: roles.iter().map(|r| r.to_pb() as i32).collect(),
        cert_sha256: vec![vec![cert; 32]],
    };
    let reg = |id: &str, k: &ed25519_dalek::VerifyingKey| pb::KeyRegistered {
        member_id: id.into(),
        public_key: k.to_bytes().to_vec(),
    };
    let good = pb::Genesis {
        origin: ORIGIN.into(),
        members: vec![
            member("admin", 1, &[Role::Admin]),
            member("alpha", 2, &[Role::Reader]),
        ],
        keys: vec![reg("admin", &key), reg("alpha", &other)],
    };
    assert!(validate_genesis(&good).is_ok());
    let cases: Vec<(&str, pb::Genesis)> = vec![
        (
            "duplicate id",
            pb::Genesis {
                members: vec![
                    member("admin", 1, &[Role::Admin]),
                    member("admin", 2, &[Role::Reader]),
                ],
                ..good.clone()
            },
        ),
        (
            "duplicate cert",
            pb::Genesis {
                members: vec![
                    member("admin", 1, &[Role::Admin]),
                    member("alpha", 1, &[Role::Reader]),
                ],
                ..good.clone()
            },
        ),
        (
            "duplicate key",
            pb::Genesis {
                keys: vec![reg("admin", &key), reg("alpha", &key)],
                ..good.clone()
            },
        ),
        (
            "no certificate",
            pb::Genesis {
                members: vec![pb::MemberAdded {
                    cert_sha256: vec![],
                    ..member("admin", 1, &[Role::Admin])
                }],
                keys: vec![reg("admin", &key)],
                ..good.clone()
            },
        ),
        (
            "no roles",
            pb::Genesis {
                members: vec![member("admin", 1, &[Role::Admin]), member("alpha", 2, &[])],
                ..good.clone()
            },
        ),
        (
            "bidi display name",
            pb::Genesis {
                members: vec![pb::MemberAdded {
                    display_name: "a\u{202E}".into(),
                    ..member("admin", 1, &[Role::Admin])
                }],
                keys: vec![reg("admin", &key)],
                ..good.clone()
            },
        ),
        (
            "unlisted key owner",
            pb::Genesis {
                keys: vec![reg("admin", &key), reg("beta", &other)],
                ..good.clone()
            },
        ),
        (
            "no admin key",
            pb::Genesis {
                keys: vec![reg("alpha", &other)],
                ..good.clone()
            },
        ),
        (
            "origin with a space",
            pb::Genesis {
                origin: "a b".into(),
                ..good.clone()
            },
        ),
    ];
    for (name, genesis) in cases {
        match validate_genesis(&genesis) {
            Err(ServiceError::Invalid { reason, .. }) => {
                assert_eq!(reason, "INVALID_GENESIS", "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// The example in docs/signed-bytes.md (*The other bodies*): an opinion's bytes.
#[test]
fn the_documented_opinion_bytes() {
    let statement = pb::Statement {
        author: "alpha".into(),
        issued_at_unix_ms: 1_764_300_000_000,
        origin: "hashforum.example/forum".into(),
        body: Some(pb::statement::Body::HashOpinion(pb::HashOpinion {
            hash_type: pb::HashType::Md5 as i32,
            value: "d41d8cd98f00b204e9800998ecf8427e".into(),
            opinion: pb::OpinionKind::FalsePositive as i32,
            reason: "cat".into(),
        })),
    };
    let hex = hex::encode(prost::Message::encode_to_vec(&statement));
    let origin = hex::encode("hashforum.example/forum");
    let value = hex::encode("d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(
        hex,
        format!("0a05616c706861108096e6c3ac331a17{origin}aa012b08021220{value}18032203636174")
    );
}

/// Opinions, retractions, withdrawals and incidents: each malformed field is named.
#[test]
fn new_statements_name_their_malformed_fields() {
    let hash = ContentHash::parse(HashType::Md5, MD5).unwrap();
    let s = signer();
    let body = |b: pb::statement::Body| s.sign(&s.statement(1, b));
    let cases: Vec<(pb::statement::Body, &str, &str)> = vec![
        (
            pb::statement::Body::HashOpinion(pb::HashOpinion {
                hash_type: HashType::Md5.to_pb() as i32,
                value: MD5.into(),
                opinion: 0,
                reason: String::new(),
            }),
            "payload.hash_opinion.opinion",
            "INVALID_OPINION",
        ),
        (
            pb::statement::Body::HashOpinion(pb::HashOpinion {
                hash_type: HashType::Md5.to_pb() as i32,
                value: "D41D".into(),
                opinion: 1,
                reason: String::new(),
            }),
            "payload.hash_opinion.value",
            "INVALID_HASH",
        ),
        (
            pb::statement::Body::HashRetraction(pb::HashRetraction {
                hash_type: HashType::Md5.to_pb() as i32,
                value: MD5.into(),
                reason: String::new(),
            }),
            "payload.hash_retraction.reason",
            "MISSING_FIELD",
        ),
        (
            admin::withdraw(&hash, "a\u{200B}b"),
            "payload.hash_withdrawal.reason",
            "INVALID_REASON",
        ),
        (
            admin::declare_incident("halle", "Halle", pb::IncidentLevel::Unspecified),
            "payload.incident_declared.level",
            "INVALID_INCIDENT_LEVEL",
        ),
        (
            admin::declare_incident("halle", "Hal\u{202E}le", pb::IncidentLevel::Incident),
            "payload.incident_declared.title",
            "INVALID_TITLE",
        ),
        (
            admin::declare_incident("-halle", "Halle", pb::IncidentLevel::Incident),
            "payload.incident_declared.incident_id",
            "INVALID_INCIDENT_ID",
        ),
        (
            admin::close_incident("", ""),
            "payload.incident_closed.incident_id",
            "INVALID_INCIDENT_ID",
        ),
        (
            pb::statement::Body::HashSubmission(pb::HashSubmission {
                incident_id: "A".into(),
                ..hash_submission(HashType::Md5, MD5)
            }),
            "payload.hash_submission.incident_id",
            "INVALID_INCIDENT_ID",
        ),
    ];
    for (b, field, reason) in cases {
        assert_eq!(refusal(body(b)), (field.to_owned(), reason), "{field}");
    }
    let ok = ParsedEntry::parse(s.opinion(&hash, pb::OpinionKind::Agree, "seen"), ORIGIN).unwrap();
    assert_eq!(ok.body.required_roles(), [Role::Reader, Role::Contributor]);
    assert!(!ok.body.is_admin());
    let ok = ParsedEntry::parse(body(admin::withdraw(&hash, "appeal")), ORIGIN).unwrap();
    assert_eq!(ok.body.required_roles(), [Role::Admin]);
    assert!(ok.body.is_admin());
}
