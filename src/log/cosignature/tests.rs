//! Cosignatures against the C2SP spec's example, and round trips, refusals and quorums with
//! keys made here.

use sha2::{Digest, Sha256};
use signed_note::VerifierList;

use super::*;
use crate::log::checkpoint::{LogSigner, TreeHead};
use crate::log::tree::Hash;

const ORIGIN: &str = "hashforum.test/forum";
const TIME: u64 = 1_764_300_000;

fn log() -> LogSigner {
    LogSigner::new(ORIGIN, SigningKey::from_bytes(&[3; 32])).unwrap()
}

fn checkpoint(size: u64) -> SignedCheckpoint {
    log().sign(TreeHead {
        size,
        root: Hash([u8::try_from(size % 256).unwrap(); 32]),
    })
}

fn witness(n: u8) -> Cosigner {
    Cosigner::new(
        &format!("witness{n}.example/w"),
        SigningKey::from_bytes(&[n; 32]),
    )
    .unwrap()
}

/// The example of C2SP tlog-cosignature (v1.0.1, unchanged since): its line decodes to the key
/// id and time the spec gives, and our signed message for that time and body is the one the
/// spec shows. The spec publishes no public key for `witness.example.com/w1`, so its signature
/// cannot be checked; its bytes are the `timestamped-checkpoint:v0` signature of the Sigsum
/// proposal the example came from (key hash `8d66cf3f…`, signature `119307c1…`), not a
/// cosignature/v1 one.
#[test]
fn the_spec_example_decodes_to_its_key_id_time_and_message() {
    let note = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
        \n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
        \u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";
    let lines: Vec<&[u8]> = signature_lines(note.as_bytes()).collect();
    assert_eq!(lines.len(), 2);
    let line = signature(lines[1]).unwrap();
    assert_eq!(line.name(), "witness.example.com/w1");
    assert_eq!(line.id(), 0x8d66_cf3f);
    assert_eq!(line.signature().len(), TIMESTAMPED_SIGNATURE_LEN);
    let time = u64::from_be_bytes(line.signature()[..8].try_into().unwrap());
    assert_eq!(time, 1_679_315_147);
    assert_eq!(hex::encode(&line.signature()[8..12]), "119307c1");
    assert_eq!(
        signed_message(note_body(note.as_bytes()), time),
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n\
          CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
    // A verifier of that name with another key has another key id: the line is ignored.
    let verifier = Cosigner::new("witness.example.com/w1", SigningKey::from_bytes(&[1; 32]))
        .unwrap()
        .verifier();
    assert_eq!(verifier.verify(note.as_bytes()), Ok(None));
    assert_eq!(cosigned(note.as_bytes(), &[verifier]), Ok(vec![]));
}

/// The example of docs/transparency.md, byte for byte: the worked example's checkpoint
/// cosigned by the seed `02 02 … 02` as `witness.example/w1` at 1764300000.
#[test]
fn the_documented_example_is_what_the_code_writes() {
    let log = LogSigner::new("forum.example/log", SigningKey::from_bytes(&[1; 32])).unwrap();
    let root = B64
        .decode("SdDz3Q6ZSGOtgtutlWMH4ZaPgaxR+dL1xjG96U6SXpA=")
        .unwrap();
    let checkpoint = log.sign(TreeHead {
        size: 3,
        root: Hash(root.try_into().unwrap()),
    });
    let witness = Cosigner::new("witness.example/w1", SigningKey::from_bytes(&[2; 32])).unwrap();
    let line = witness.cosign(&checkpoint, 1_764_300_000);
    let note = String::from_utf8(with_lines(&checkpoint.note, &[line])).unwrap();
    let docs = include_str!("../../../docs/transparency.md");
    for (what, text) in [("vkey", witness.vkey()), ("cosigned note", note.clone())] {
        assert!(
            docs.contains(&text),
            "docs/transparency.md lacks the {what}:\n{text}"
        );
    }
    assert!(docs.contains(
        "`cosignature/v1\\ntime 1764300000\\nforum.example/log\\n3\\nSdDz3Q6ZSGOtgtutlWMH4ZaPgaxR+dL1xjG96U6SXpA=\\n`"
    ));
    assert_eq!(
        witness.verifier().verify(note.as_bytes()),
        Ok(Some(1_764_300_000))
    );
}

/// A cosignature made here: its exact shape, key id and vkey, and it verifies as a line, on
/// the note, and through `signed_note`.
#[test]
fn cosignatures_round_trip() {
    let checkpoint = checkpoint(1234);
    let cosigner = witness(1);
    let line = cosigner.cosign(&checkpoint, TIME);
    let payload = line
        .strip_prefix("\u{2014} witness1.example/w ")
        .and_then(|l| l.strip_suffix('\n'))
        .and_then(|b64| B64.decode(b64).ok())
        .unwrap();
    assert_eq!(payload.len(), 76);
    let public = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let digest = Sha256::new()
        .chain_update(b"witness1.example/w\n\x04")
        .chain_update(public.as_bytes())
        .finalize();
    assert_eq!(payload[..4], digest[..4]);
    assert_eq!(payload[4..12], TIME.to_be_bytes());
    let message = format!("cosignature/v1\ntime {TIME}\n{ORIGIN}\n1234\n");
    assert!(signed_message(note_body(&checkpoint.note), TIME).starts_with(message.as_bytes()));
    public
        .verify_strict(
            &signed_message(note_body(&checkpoint.note), TIME),
            &ed25519_dalek::Signature::from_bytes(&payload[12..].try_into().unwrap()),
        )
        .unwrap();

    let vkey = cosigner.vkey();
    assert_eq!(
        vkey,
        format!(
            "witness1.example/w+{}+{}",
            hex::encode(&digest[..4]),
            B64.encode([&[4u8][..], public.as_bytes()].concat())
        )
    );
    let verifier = WitnessVerifier::from_vkey(&format!(" {vkey}\n")).unwrap();
    assert_eq!(verifier, cosigner.verifier());
    assert_eq!(
        verifier,
        WitnessVerifier::new("witness1.example/w", &public).unwrap()
    );
    assert_eq!(verifier.vkey(), vkey);
    assert_eq!(verifier.name(), "witness1.example/w");
    assert_eq!(verifier.key(), &public);
    assert_eq!(verifier.key_id(), cosigner.key_id());

    assert_eq!(verifier.verify_line(&checkpoint.note, &line), Ok(TIME));
    assert_eq!(
        verifier.verify_line(&checkpoint.note, line.trim_end()),
        Ok(TIME)
    );
    let cosigned_note = with_lines(&checkpoint.note, std::slice::from_ref(&line));
    assert_eq!(verifier.verify(&cosigned_note), Ok(Some(TIME)));
    assert_eq!(verifier.verify(&checkpoint.note), Ok(None));
    // Cosigning a cosigned note signs the same body.
    assert_eq!(
        cosigner.cosign(
            &SignedCheckpoint {
                head: checkpoint.head,
                note: cosigned_note.clone()
            },
            TIME
        ),
        line
    );
    // signed_note's own verification, with our verifier in its list.
    let note = Note::from_bytes(&cosigned_note).unwrap();
    let (verified, unverified) = note
        .verify(&VerifierList::new(vec![Box::new(verifier.clone())]))
        .unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(unverified.len(), 1, "the log's own line");
}

/// The log's own verifier still accepts its checkpoint with cosignatures appended, and a
/// receipt whose checkpoint carries them parses and verifies.
#[test]
fn the_log_verifier_and_receipts_ignore_cosignatures() {
    let leaf = crate::log::leaf_hash(b"the only entry");
    let checkpoint = log().sign(TreeHead {
        size: 1,
        root: Hash(leaf.0),
    });
    let lines: Vec<String> = (1..=5)
        .map(|n| witness(n).cosign(&checkpoint, TIME))
        .collect();
    let note = with_lines(&checkpoint.note, &lines);
    let verified = log().verifier().verify(&note).unwrap();
    assert_eq!(verified.head, checkpoint.head);
    assert_eq!(verified.note, note);

    let bytes = crate::log::proof::encode(None, 0, &[], &note);
    let receipt = crate::log::proof::Receipt::parse(&bytes).unwrap();
    assert_eq!(receipt.checkpoint, note);
    assert_eq!(receipt.verify(&log().verifier(), leaf).unwrap().note, note);
    assert_eq!(
        quorum(&receipt.checkpoint, &[witness(3).verifier()], 1).unwrap(),
        ["witness3.example/w"]
    );
}

/// Lines whose name and key id match must verify: another key, another body, a changed time
/// or signature are refused; lines of other keys or names are ignored.
#[test]
fn bad_cosignatures_are_refused_and_others_ignored() {
    let checkpoint = checkpoint(1234);
    let cosigner = witness(1);
    let verifier = cosigner.verifier();
    let line = cosigner.cosign(&checkpoint, TIME);
    let payload = |line: &str| {
        B64.decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap()
    };
    let relabel = |payload: &[u8]| format!("\u{2014} witness1.example/w {}\n", B64.encode(payload));

    // Another key under the same name has another key id: ignored on the note, refused alone.
    let impostor = Cosigner::new("witness1.example/w", SigningKey::from_bytes(&[9; 32])).unwrap();
    let other_line = impostor.cosign(&checkpoint, TIME);
    let note = with_lines(&checkpoint.note, std::slice::from_ref(&other_line));
    assert_eq!(verifier.verify(&note), Ok(None));
    assert!(matches!(
        verifier.verify_line(&checkpoint.note, &other_line),
        Err(CosignatureError::Signature(_))
    ));
    // ... and with this witness's key id put on it, it does not verify.
    let mut forged = payload(&other_line);
    forged[..4].copy_from_slice(&cosigner.key_id().to_be_bytes());
    let forged = relabel(&forged);
    for bad in [
        forged,
        // Another checkpoint's cosignature: other size, other root.
        cosigner.cosign(&self::checkpoint(1235), TIME),
        cosigner.cosign(
            &log().sign(TreeHead {
                size: 1234,
                root: Hash([0; 32]),
            }),
            TIME,
        ),
        // The time changed, or one signature bit.
        {
            let mut p = payload(&line);
            p[11] ^= 1;
            relabel(&p)
        },
        {
            let mut p = payload(&line);
            p[75] ^= 0x10;
            relabel(&p)
        },
    ] {
        let note = with_lines(&checkpoint.note, std::slice::from_ref(&bad));
        assert!(
            matches!(verifier.verify(&note), Err(CosignatureError::Signature(_))),
            "{bad}"
        );
        assert!(matches!(
            verifier.verify_line(&checkpoint.note, &bad),
            Err(CosignatureError::Signature(_))
        ));
        // A bad line fails the note even beside a good one.
        let both = with_lines(&checkpoint.note, &[line.clone(), bad]);
        assert!(verifier.verify(&both).is_err());
    }

    // The same key and line under another name: another key id, ignored.
    let renamed = line.replacen("witness1.example/w", "witness2.example/w", 1);
    let note = with_lines(&checkpoint.note, std::slice::from_ref(&renamed));
    assert_eq!(verifier.verify(&note), Ok(None));
    assert!(verifier.verify_line(&note, &renamed).is_err());
    // Other witnesses' lines are ignored beside ours; the latest of two of ours is reported.
    let later = cosigner.cosign(&checkpoint, TIME + 60);
    let note = with_lines(
        &checkpoint.note,
        &[witness(2).cosign(&checkpoint, 1), line.clone(), later],
    );
    assert_eq!(verifier.verify(&note), Ok(Some(TIME + 60)));
}

/// Malformed lines, notes and times are refused as malformed; times past 2^63 − 1 are never
/// made.
#[test]
fn malformed_cosignatures_are_refused() {
    let checkpoint = checkpoint(7);
    let cosigner = witness(1);
    let verifier = cosigner.verifier();
    let id = cosigner.key_id().to_be_bytes();
    let line = |payload: &[u8]| format!("\u{2014} witness1.example/w {}\n", B64.encode(payload));
    // The log's signature shape (no time) and a truncated one, under this witness's key id.
    for payload in [
        [&id[..], &[0; 64]].concat(),
        [&id[..], &[0; 71]].concat(),
        [&id[..], &[0; 73]].concat(),
        id.to_vec(),
    ] {
        let bad = line(&payload);
        let expected = if payload.len() < 5 {
            "the note"
        } else {
            "not 8 + 64"
        };
        match verifier.verify(&with_lines(&checkpoint.note, std::slice::from_ref(&bad))) {
            Err(CosignatureError::Malformed(why)) => assert!(why.contains(expected), "{why}"),
            other => panic!("{bad}: {other:?}"),
        }
        assert!(matches!(
            verifier.verify_line(&checkpoint.note, &bad),
            Err(CosignatureError::Malformed(_))
        ));
    }
    // A time past 2^63 - 1, validly signed.
    let key = SigningKey::from_bytes(&[1; 32]);
    let time = MAX_TIME + 1;
    let signature = key.sign(&signed_message(note_body(&checkpoint.note), time));
    let bad = line(&[&id[..], &time.to_be_bytes(), &signature.to_bytes()].concat());
    match verifier.verify_line(&checkpoint.note, &bad) {
        Err(CosignatureError::Malformed(why)) => assert!(why.contains("2^63"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        verifier.verify_line(&checkpoint.note, &cosigner.cosign(&checkpoint, u64::MAX)),
        Ok(MAX_TIME)
    );
    // Lines and notes that are not signed-note ones.
    for bad in [
        "",
        "nonsense",
        "\u{2014} witness1.example/w !!!",
        "- witness1.example/w AAAAAAAA",
    ] {
        assert!(
            matches!(
                verifier.verify_line(&checkpoint.note, bad),
                Err(CosignatureError::Malformed(_))
            ),
            "{bad:?}"
        );
    }
    let good = cosigner.cosign(&checkpoint, TIME);
    for note in [
        &b""[..],
        b"\xff",
        b"no blank line\n",
        b"a\r\nb\n\n\xe2\x80\x94 x AAAAAAAA\n",
    ] {
        assert!(matches!(
            verifier.verify(note),
            Err(CosignatureError::Malformed(_))
        ));
        assert!(verifier.verify_line(note, &good).is_err());
    }
    let garbage = with_lines(&checkpoint.note, &["\u{2014} someone else".to_owned()]);
    assert!(matches!(
        verifier.verify(&garbage),
        Err(CosignatureError::Malformed(_))
    ));
}

/// Names and verifier keys: bad names, log keys (type 0x01), wrong key ids and small-order
/// keys are refused.
#[test]
fn names_and_verifier_keys_are_checked() {
    let key = SigningKey::from_bytes(&[1; 32]);
    for name in ["", "has space", "a+b", "tab\there"] {
        assert_eq!(
            Cosigner::new(name, key.clone()).unwrap_err(),
            CosignatureError::BadName(name.to_owned())
        );
        assert!(WitnessVerifier::new(name, &key.verifying_key()).is_err());
    }
    let vkey = witness(1).vkey();
    let (name_id, b64) = vkey.rsplit_once('+').unwrap();
    let mut log_type = B64.decode(b64).unwrap();
    log_type[0] = 0x01;
    let bad = [
        "nonsense".to_owned(),
        log().vkey(),
        format!("{name_id}+{}", B64.encode(&log_type)),
        vkey.replacen("witness1", "witness2", 1),
        vkey.replacen('+', "+0", 1),
        format!("{name_id}+{}", &b64[..b64.len() - 4]),
        format!("{name_id}+!!"),
    ];
    for text in &bad {
        assert!(
            matches!(
                WitnessVerifier::from_vkey(text),
                Err(CosignatureError::BadVerifierKey(_))
            ),
            "{text}"
        );
    }
    assert!(matches!(
        WitnessVerifier::from_vkey(&vkey.replacen("witness1.example/w", "has space", 1)),
        Err(CosignatureError::BadName(_))
    ));
    // The identity point is a valid encoding but a small-order key.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = VerifyingKey::from_bytes(&identity).unwrap();
    assert!(matches!(
        WitnessVerifier::new("w", &weak),
        Err(CosignatureError::BadVerifierKey(_))
    ));
    // Base64 keys with '+' in them parse.
    for n in 0..=255u8 {
        let cosigner = Cosigner::new("w.example", SigningKey::from_bytes(&[n; 32])).unwrap();
        let verifier = WitnessVerifier::from_vkey(&cosigner.vkey()).unwrap();
        assert_eq!(verifier, cosigner.verifier());
    }
}

/// Lines are appended after the existing ones, once; the rest stays byte for byte.
#[test]
fn lines_are_appended_once() {
    let checkpoint = checkpoint(3);
    let one = witness(1).cosign(&checkpoint, TIME);
    let two = witness(2).cosign(&checkpoint, TIME);
    let note = with_lines(&checkpoint.note, &[one.clone(), one.trim_end().to_owned()]);
    assert_eq!(note, [checkpoint.note.as_slice(), one.as_bytes()].concat());
    let again = with_lines(&note, &[two.clone(), one.clone(), String::new()]);
    assert_eq!(
        again,
        [checkpoint.note.as_slice(), one.as_bytes(), two.as_bytes()].concat()
    );
    assert_eq!(with_lines(&again, &[]), again);
}

/// Quorums count distinct witnesses (by key) with valid cosignatures, whatever the order and
/// repeats.
#[test]
fn quorums_count_distinct_witnesses() {
    let checkpoint = checkpoint(42);
    let witnesses: Vec<WitnessVerifier> = (1..=3).map(|n| witness(n).verifier()).collect();
    let note = with_lines(
        &checkpoint.note,
        &[
            witness(1).cosign(&checkpoint, TIME),
            witness(3).cosign(&checkpoint, TIME + 1),
            witness(1).cosign(&checkpoint, TIME + 2),
            witness(7).cosign(&checkpoint, TIME),
        ],
    );
    assert_eq!(
        quorum(&note, &witnesses, 2).unwrap(),
        ["witness1.example/w", "witness3.example/w"]
    );
    assert_eq!(quorum(&note, &witnesses, 0).unwrap().len(), 2);
    assert_eq!(
        cosigned(&note, &witnesses).unwrap(),
        [
            Cosigned {
                name: "witness1.example/w".into(),
                time: TIME + 2
            },
            Cosigned {
                name: "witness3.example/w".into(),
                time: TIME + 1
            },
        ]
    );
    let err = quorum(&note, &witnesses, 3).unwrap_err();
    assert_eq!(
        err,
        CosignatureError::Quorum {
            cosigned: vec!["witness1.example/w".into(), "witness3.example/w".into()],
            required: 3,
            witnesses: 3,
        }
    );
    assert_eq!(
        err.to_string(),
        "2 of 3 witnesses cosigned the checkpoint (witness1.example/w, witness3.example/w), 3 required"
    );
    // One witness given three times, and its key under another name, count once.
    let w1 = witness(1).verifier();
    let alias = WitnessVerifier::new("alias.example/w", w1.key()).unwrap();
    let alias_line =
        witness(1)
            .cosign(&checkpoint, TIME)
            .replacen("witness1.example/w", "alias.example/w", 1);
    let alias_line = {
        // Re-keyed for the alias's name: the same signature under the alias's key id.
        let mut payload = B64
            .decode(alias_line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        payload[..4].copy_from_slice(&alias.key_id().to_be_bytes());
        format!("\u{2014} alias.example/w {}\n", B64.encode(payload))
    };
    let aliased = with_lines(&note, &[alias_line]);
    assert_eq!(alias.verify(&aliased), Ok(Some(TIME)));
    let repeated = [w1.clone(), w1.clone(), alias, w1];
    assert_eq!(
        quorum(&aliased, &repeated, 1).unwrap(),
        ["witness1.example/w"]
    );
    assert_eq!(
        quorum(&aliased, &repeated, 2).unwrap_err(),
        CosignatureError::Quorum {
            cosigned: vec!["witness1.example/w".into()],
            required: 2,
            witnesses: 1,
        }
    );
    assert_eq!(
        quorum(&checkpoint.note, &witnesses, 1)
            .unwrap_err()
            .to_string(),
        "0 of 3 witnesses cosigned the checkpoint (none), 1 required"
    );
    // A bad line by a listed witness fails the quorum, as signed-note says.
    let tampered = with_lines(
        &checkpoint.note,
        &[witness(2).cosign(&self::checkpoint(43), TIME)],
    );
    assert!(matches!(
        quorum(&tampered, &witnesses, 0),
        Err(CosignatureError::Signature(_))
    ));
}
