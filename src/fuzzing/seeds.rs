//! Valid inputs for every target, made with the fixed keys: the committed corpus
//! (`fuzz/corpus/<target>/`) is what this writes (`cargo test --lib write_fuzz_corpus --
//! --ignored`). Deterministic: the same bytes every time.

use base64::Engine;
use ed25519_dalek::SigningKey;
use prost::Message;

use super::targets::{log_note, log_signer, witness};
use super::{MEMBER, MEMBER_SEED, ORIGIN};
use crate::follow::{Evidence, EvidenceKind, EVIDENCE_FORMAT};
use crate::genesis::{self, Founder};
use crate::log::checkpoint::TreeHead;
use crate::log::tree::{self, Frontier, Hash, MemoryHashes};
use crate::log::{leaf_bytes, leaf_hash, leaf_prefix, leaf_suffix, proof};
use crate::pb::{self, statement::Body};
use crate::statement::{admin, hash_submission, Signer};
use crate::types::{HashType, Role};
use crate::verify::{Bundle, BundleEntry, BUNDLE_FORMAT};

/// When the corpus's statements say they were made, and were sequenced.
const TIME_MS: u64 = 1_764_300_000_000;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn signer() -> Signer {
    Signer::new(ORIGIN, MEMBER, SigningKey::from_bytes(&MEMBER_SEED))
}

fn value(n: u8, hash_type: HashType) -> String {
    hex::encode(vec![n; hash_type.byte_len()])
}

/// One statement of every kind `alpha` might sign.
fn statements() -> Vec<(&'static str, pb::Statement)> {
    let s = signer();
    let mut full = hash_submission(HashType::Sha256, &value(0xab, HashType::Sha256));
    full.labels = Some(pb::Labels {
        entity: "entity".into(),
        behaviour: "glorification".into(),
        content_type: "video".into(),
    });
    full.tags = vec!["a".into(), "b-2".into()];
    full.incident_id = "christchurch".into();
    let mut pdq = hash_submission(HashType::Pdq, &value(0x5a, HashType::Pdq));
    pdq.quality = Some(90);
    let sha = crate::types::ContentHash::parse(HashType::Sha256, &value(1, HashType::Sha256))
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    let key = SigningKey::from_bytes(&[9; 32]).verifying_key();
    let bodies: Vec<(&str, Body)> = vec![
        ("submission_full", Body::HashSubmission(full)),
        ("submission_pdq", Body::HashSubmission(pdq)),
        (
            "submission_md5",
            Body::HashSubmission(hash_submission(HashType::Md5, &value(7, HashType::Md5))),
        ),
        (
            "opinion",
            Body::HashOpinion(pb::HashOpinion {
                hash_type: pb::HashType::Sha256 as i32,
                value: sha.to_hex(),
                opinion: pb::OpinionKind::FalsePositive as i32,
                reason: "a cat".into(),
            }),
        ),
        (
            "retraction",
            Body::HashRetraction(pb::HashRetraction {
                hash_type: pb::HashType::Sha256 as i32,
                value: sha.to_hex(),
                reason: "mistake".into(),
            }),
        ),
        ("withdrawal", admin::withdraw(&sha, "appeal")),
        (
            "member_added",
            admin::add_member(
                "beta",
                "Beta Inc.",
                &[Role::Reader, Role::Contributor],
                vec![vec![4; 32]],
            ),
        ),
        ("key_registered", admin::register_key("beta", &key)),
        (
            "key_revoked",
            admin::revoke_key("beta", &crate::crypto::key_id(&key), "lost"),
        ),
        ("roles_set", admin::set_roles("beta", &[Role::Observer])),
        ("suspended", admin::suspend("beta", "review")),
        ("reinstated", admin::reinstate("beta", "done")),
        ("removed", admin::remove("beta", "left")),
        ("cert_bound", admin::bind_cert("beta", &[5; 32], "rotation")),
        (
            "cert_unbound",
            admin::unbind_cert("beta", &[5; 32], "rotation"),
        ),
        (
            "incident_declared",
            admin::declare_incident(
                "christchurch",
                "Christchurch",
                pb::IncidentLevel::ContentIncident,
            ),
        ),
        (
            "incident_closed",
            admin::close_incident("christchurch", "over"),
        ),
    ];
    bodies
        .into_iter()
        .map(|(name, body)| (name, s.statement(TIME_MS, body)))
        .collect()
}

/// The genesis entry of the fuzz forum: `admin` and `alpha`, `alpha`'s key registered.
fn genesis_leaf() -> Vec<u8> {
    let founders = [
        Founder {
            member_id: "admin".into(),
            display_name: "Admin".into(),
            roles: vec![Role::Admin],
            cert_der: vec![1; 40],
            signing_key: SigningKey::from_bytes(&[8; 32]).verifying_key(),
        },
        Founder {
            member_id: MEMBER.into(),
            display_name: "Alpha".into(),
            roles: vec![Role::Contributor, Role::Reader],
            cert_der: vec![2; 40],
            signing_key: SigningKey::from_bytes(&MEMBER_SEED).verifying_key(),
        },
    ];
    genesis::create(
        &SigningKey::from_bytes(&super::LOG_SEED),
        ORIGIN,
        &founders,
        TIME_MS,
    )
}

/// A small log: the genesis, then `alpha`'s statements, as leaves; its tree and checkpoint.
struct SmallLog {
    leaves: Vec<Vec<u8>>,
    hashes: MemoryHashes,
    head: TreeHead,
    note: Vec<u8>,
}

fn small_log() -> SmallLog {
    let s = signer();
    let mut leaves = vec![genesis_leaf()];
    for (i, (_, statement)) in statements().into_iter().take(5).enumerate() {
        let relayer = (i == 2).then_some("admin");
        leaves.push(leaf_bytes(
            &leaf_prefix(&s.sign(&statement)),
            TIME_MS + i as u64,
            relayer,
        ));
    }
    let mut frontier = Frontier::default();
    let mut hashes = MemoryHashes::default();
    for leaf in &leaves {
        let start = tree::stored_hash_index(0, frontier.size());
        hashes.extend((start..).zip(frontier.append(leaf_hash(leaf))));
    }
    let head = TreeHead {
        size: frontier.size(),
        root: frontier.root(),
    };
    let note = log_signer().sign(head).note;
    SmallLog {
        leaves,
        hashes,
        head,
        note,
    }
}

fn proof_of(log: &SmallLog, index: u64) -> Vec<Hash> {
    tree::inclusion_proof(index, log.head.size, &log.hashes).unwrap_or_else(|e| unreachable!("{e}"))
}

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_else(|e| unreachable!("{e}"))
}

/// The seed inputs of `target`, by file name.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let named = |items: Vec<(&str, Vec<u8>)>| {
        items
            .into_iter()
            .map(|(n, b)| (n.to_owned(), b))
            .collect::<Vec<_>>()
    };
    let s = signer();
    let log = small_log();
    match target {
        "submit_request" => {
            let envelopes: Vec<pb::Envelope> =
                statements().iter().map(|(_, st)| s.sign(st)).collect();
            let mut two = envelopes[0].clone();
            two.signatures.push(two.signatures[0].clone());
            named(vec![
                (
                    "batch",
                    pb::SubmitEntriesRequest {
                        envelopes: envelopes[..4].to_vec(),
                    }
                    .encode_to_vec(),
                ),
                (
                    "one",
                    pb::SubmitEntryRequest {
                        envelope: Some(envelopes[6].clone()),
                    }
                    .encode_to_vec(),
                ),
                (
                    "two_signatures",
                    pb::SubmitEntryRequest {
                        envelope: Some(two),
                    }
                    .encode_to_vec(),
                ),
                ("empty_elements", [0x0a, 0x00].repeat(8)),
            ])
        }
        "statement" => statements()
            .into_iter()
            .map(|(n, st)| (n.to_owned(), st.encode_to_vec()))
            .collect(),
        "lookup_request" => {
            let query = |t: HashType, n| pb::HashQuery {
                hash_type: t.to_pb() as i32,
                value: value(n, t),
            };
            named(vec![
                (
                    "batch",
                    pb::LookupHashesRequest {
                        queries: vec![
                            query(HashType::Sha256, 1),
                            query(HashType::Md5, 2),
                            query(HashType::Pdq, 3),
                            pb::HashQuery::default(),
                        ],
                        include_envelopes: true,
                    }
                    .encode_to_vec(),
                ),
                (
                    "one",
                    pb::LookupHashRequest {
                        query: Some(query(HashType::Sha256, 0xcd)),
                        include_envelopes: false,
                    }
                    .encode_to_vec(),
                ),
            ])
        }
        "match_request" => {
            let q = |n: u8, variant: i32| pb::MatchQuery {
                value: value(n, HashType::Pdq),
                variant,
            };
            named(vec![
                (
                    "wide",
                    pb::MatchHashesRequest {
                        hash_type: pb::HashType::Pdq as i32,
                        queries: vec![q(0x01, 0), q(0xfe, 3), q(0x0f, 8)],
                        max_distance: Some(64),
                        include_inactive: true,
                        dihedral: true,
                    }
                    .encode_to_vec(),
                ),
                (
                    "default",
                    pb::MatchHashesRequest {
                        hash_type: pb::HashType::Pdq as i32,
                        queries: vec![q(0x01, 0)],
                        max_distance: None,
                        include_inactive: false,
                        dihedral: false,
                    }
                    .encode_to_vec(),
                ),
            ])
        }
        "log_leaf" => log
            .leaves
            .iter()
            .enumerate()
            .map(|(i, leaf)| (format!("entry_{i}"), leaf.clone()))
            .chain([("suffix".to_owned(), leaf_suffix(TIME_MS, Some("admin")))])
            .collect(),
        "checkpoint" => {
            let empty = log_signer().sign(TreeHead {
                size: 0,
                root: tree::EMPTY_HASH,
            });
            let cosigned = crate::log::cosignature::with_lines(
                &log.note,
                &[witness().cosign(&log_signer().sign(log.head), 1_764_300_000)],
            );
            named(vec![
                ("size_6", log.note.clone()),
                ("empty", empty.note),
                ("cosigned", cosigned),
                ("not_a_checkpoint", log_note("hello\n")),
            ])
        }
        "cosignature" => {
            let checkpoint = log_signer().sign(log.head);
            let line = witness().cosign(&checkpoint, 1_764_300_000);
            named(vec![
                (
                    "cosigned",
                    crate::log::cosignature::with_lines(&log.note, &[line]),
                ),
                ("uncosigned", log.note.clone()),
            ])
        }
        "receipt" => (0..log.head.size)
            .map(|i| {
                let leaf = &log.leaves[i as usize];
                let prefix_len = pb::LogEntry::decode(leaf.as_slice())
                    .ok()
                    .and_then(|e| e.envelope)
                    .map_or(0, |e| leaf_prefix(&e).len());
                let bytes =
                    proof::encode(Some(&leaf[prefix_len..]), i, &proof_of(&log, i), &log.note);
                (format!("entry_{i}"), bytes)
            })
            .collect(),
        "proof" => {
            let mut out = Vec::new();
            for (index, size) in [(0u64, 1u64), (3, 6), (5, 6), (1, 2)] {
                let mut bytes = index.to_le_bytes().to_vec();
                bytes.extend_from_slice(&size.to_le_bytes());
                bytes.extend_from_slice(&log.head.root.0);
                for h in proof_of(&log, index.min(log.head.size - 1)) {
                    bytes.extend_from_slice(&h.0);
                }
                out.push((format!("inclusion_{index}_{size}"), bytes));
            }
            let old = 3u64;
            let mut bytes = old.to_le_bytes().to_vec();
            bytes.extend_from_slice(&log.head.size.to_le_bytes());
            bytes.extend_from_slice(&log.head.root.0);
            for h in tree::consistency_proof(old, log.head.size, &log.hashes)
                .unwrap_or_else(|e| unreachable!("{e}"))
            {
                bytes.extend_from_slice(&h.0);
            }
            out.push(("consistency_3_6".to_owned(), bytes));
            out
        }
        "vkey" => named(vec![
            ("log", log_signer().vkey().into_bytes()),
            ("witness", witness().vkey().into_bytes()),
        ]),
        "evidence" => {
            let base = Evidence {
                format: EVIDENCE_FORMAT.into(),
                origin: ORIGIN.into(),
                vkey: log_signer().vkey(),
                reason: "seed".into(),
                found_at_unix_ms: TIME_MS,
                source: "https://127.0.0.1:50051".into(),
                ..Evidence::default()
            };
            let other = log_signer().sign(TreeHead {
                size: log.head.size,
                root: Hash([7; 32]),
            });
            let smaller = log_signer().sign(TreeHead {
                size: 3,
                root: tree::root(3, &log.hashes).unwrap_or_else(|e| unreachable!("{e}")),
            });
            let text = |note: &[u8]| String::from_utf8_lossy(note).into_owned();
            let consistency: Vec<String> = tree::consistency_proof(3, log.head.size, &log.hashes)
                .unwrap_or_else(|e| unreachable!("{e}"))
                .iter()
                .map(|h| B64.encode(h.0))
                .collect();
            let fork = Evidence {
                kind: EvidenceKind::Fork,
                held: Some(text(&log.note)),
                served: text(&other.note),
                ..base.clone()
            };
            let rollback = Evidence {
                kind: EvidenceKind::Rollback,
                held: Some(text(&log.note)),
                served: text(&smaller.note),
                prefix_root: Some(B64.encode(smaller.head.root.0)),
                consistency_proof: consistency,
                ..base.clone()
            };
            let mismatch = Evidence {
                kind: EvidenceKind::RootMismatch,
                served: text(&other.note),
                first_index: 0,
                entries: log.leaves.iter().map(|l| B64.encode(l)).collect(),
                ..base.clone()
            };
            let bad_entry = Evidence {
                kind: EvidenceKind::BadEntry,
                first_index: 1,
                entries: vec![B64.encode(&log.leaves[1])],
                bad_index: Some(1),
                // Not the author's key: the signature does not verify with it.
                key: Some(B64.encode(SigningKey::from_bytes(&[8; 32]).verifying_key())),
                ..base.clone()
            };
            let bad_checkpoint = Evidence {
                kind: EvidenceKind::BadCheckpoint,
                served: text(&log.note).replacen('6', "7", 1),
                ..base
            };
            named(vec![
                ("fork", json(&fork)),
                ("rollback", json(&rollback)),
                ("root_mismatch", json(&mismatch)),
                ("bad_entry", json(&bad_entry)),
                ("bad_checkpoint", json(&bad_checkpoint)),
            ])
        }
        "bundle" => {
            let entry = |i: u64| BundleEntry {
                log_index: i,
                entry: B64.encode(&log.leaves[i as usize]),
                inclusion_proof: proof_of(&log, i).iter().map(|h| B64.encode(h.0)).collect(),
            };
            let bundle = Bundle {
                format: BUNDLE_FORMAT.into(),
                hash_type: "sha256".into(),
                value: value(1, HashType::Sha256),
                checkpoint: String::from_utf8_lossy(&log.note).into_owned(),
                entries: vec![entry(4), entry(5)],
                keys: vec![entry(0)],
            };
            named(vec![("opinion_and_retraction", json(&bundle))])
        }
        "config" => {
            let example = include_str!("../../deploy/hashforum.example.toml");
            let replica = "listen = \"127.0.0.1:50052\"\ndata-dir = \"data\"\n\
                [tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\nclient-ca = \"ca.crt\"\n\
                [replica]\nprimary = \"https://127.0.0.1:50051\"\nforum-vkey = \"forum.vkey\"\n\
                identity = \"identity\"\npoll = \"2s\"\n\
                [limits]\nmax-connections = 64\nrequest-timeout = \"1m 30s\"\n";
            named(vec![
                ("example", example.as_bytes().to_vec()),
                ("replica", replica.as_bytes().to_vec()),
            ])
        }
        "image" => {
            // A 32x24 gradient with a square, in every format the hasher reads.
            let picture = image::RgbImage::from_fn(32, 24, |x, y| {
                let inside = (8..20).contains(&x) && (6..16).contains(&y);
                let v = if inside { 255 } else { (x * 8) as u8 };
                image::Rgb([v, (y * 10) as u8, 128])
            });
            let picture = image::DynamicImage::ImageRgb8(picture);
            [
                ("png", image::ImageFormat::Png),
                ("jpeg", image::ImageFormat::Jpeg),
                ("gif", image::ImageFormat::Gif),
                ("bmp", image::ImageFormat::Bmp),
                ("webp", image::ImageFormat::WebP),
            ]
            .into_iter()
            .map(|(name, format)| {
                let mut bytes = std::io::Cursor::new(Vec::new());
                picture
                    .write_to(&mut bytes, format)
                    .unwrap_or_else(|e| unreachable!("{name}: {e}"));
                (name.to_owned(), bytes.into_inner())
            })
            .collect()
        }
        _ => Vec::new(),
    }
}
