//! Byte-compatibility of the hand-written messages with the generated ones, and their caps.

use super::*;

fn submission(member: &str, index: u64, envelope: bool) -> pb::Submission {
    pb::Submission {
        member_id: member.into(),
        log_index: index,
        sequenced_at_unix_ms: 1_764_300_000_000 + index,
        labels: Some(pb::Labels {
            entity: "entity".into(),
            behaviour: String::new(),
            content_type: "video".into(),
        }),
        tags: vec!["a".into(), "b".into()],
        quality: (index % 2 == 0).then_some(90),
        envelope: envelope.then(|| pb::Envelope {
            payload: vec![1, 2, 3].into(),
            payload_type: "t".into(),
            signatures: vec![],
        }),
    }
}

#[test]
fn encodes_exactly_as_the_generated_type() {
    let records = [
        Some(pb::HashRecord {
            hash_type: pb::HashType::Sha256 as i32,
            value: "ab".repeat(32),
            submissions: vec![submission("alpha", 1, false), submission("beta", 300, true)],
        }),
        None,
        Some(pb::HashRecord {
            hash_type: pb::HashType::Md5 as i32,
            value: "cd".repeat(16),
            submissions: vec![submission("gamma", 70_000, false)],
        }),
        Some(pb::HashRecord::default()),
    ];
    let generated = pb::LookupHashesResponse {
        results: records
            .iter()
            .map(|record| pb::LookupResult {
                found: record.is_some(),
                record: record.clone(),
            })
            .collect(),
    };
    let reply = LookupHashesReply {
        results: records
            .iter()
            .map(|record| {
                record.as_ref().map(|r| RawRecord {
                    hash_type: r.hash_type,
                    value: r.value.clone(),
                    submissions: RawRecord::encode_submissions(&r.submissions),
                })
            })
            .collect(),
    };
    let bytes = reply.encode_to_vec();
    assert_eq!(bytes, generated.encode_to_vec());
    assert_eq!(reply.encoded_len(), bytes.len());
    assert_eq!(LookupHashesReply::decode(bytes.as_slice()), Ok(reply));
}

fn envelope(n: u8, signatures: usize) -> pb::Envelope {
    pb::Envelope {
        payload: vec![n; usize::from(n) * 7].into(),
        payload_type: "application/vnd.hashforum.statement.v1+protobuf".into(),
        signatures: (0..signatures)
            .map(|i| pb::Signature {
                sig: vec![n; 64],
                keyid: format!("{i:032x}"),
            })
            .collect(),
    }
}

fn query(n: u64) -> pb::HashQuery {
    pb::HashQuery {
        hash_type: pb::HashType::Sha256 as i32,
        value: format!("{n:064x}"),
    }
}

/// `n` empty elements of field 1: `0a 00` each, the C1 request's payload.
fn empty_elements(n: usize) -> Vec<u8> {
    [0x0a, 0x00].repeat(n)
}

/// An unknown field (number 15, varint) that every decoder must skip.
const UNKNOWN: [u8; 2] = [0x78, 0x01];

#[test]
fn requests_decode_exactly_as_the_generated_types() {
    let generated = pb::SubmitEntriesRequest {
        envelopes: vec![envelope(1, 1), envelope(0, 0), envelope(200, 2)],
    };
    let mut bytes = generated.encode_to_vec();
    let ours = SubmitEntriesRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(ours.envelopes, generated.envelopes);
    assert_eq!((ours.len(), ours.skipped), (3, 0));
    assert_eq!(ours.encode_to_vec(), bytes);
    assert_eq!(ours.encoded_len(), bytes.len());
    bytes.extend(UNKNOWN);
    let generated = pb::SubmitEntriesRequest::decode(bytes.as_slice()).unwrap();
    let ours = SubmitEntriesRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(ours.envelopes, generated.envelopes);

    // A singular message field that occurs twice is merged: signatures accumulate.
    let first = pb::SubmitEntryRequest {
        envelope: Some(envelope(3, 1)),
    };
    let second = pb::SubmitEntryRequest {
        envelope: Some(pb::Envelope {
            payload_type: "other".into(),
            ..envelope(4, 1)
        }),
    };
    for bytes in [
        first.encode_to_vec(),
        [
            first.encode_to_vec(),
            second.encode_to_vec(),
            UNKNOWN.to_vec(),
        ]
        .concat(),
        Vec::new(),
    ] {
        let generated = pb::SubmitEntryRequest::decode(bytes.as_slice()).unwrap();
        let ours = SubmitEntryRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(ours.envelope, generated.envelope);
    }
    assert_eq!(
        SubmitEntryRequest::decode(first.encode_to_vec().as_slice())
            .unwrap()
            .encode_to_vec(),
        first.encode_to_vec()
    );

    for include_envelopes in [false, true] {
        let generated = pb::LookupHashesRequest {
            queries: vec![query(1), pb::HashQuery::default(), query(u64::MAX)],
            include_envelopes,
        };
        let bytes = generated.encode_to_vec();
        let ours = LookupHashesRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(ours.queries, generated.queries);
        assert_eq!(ours.include_envelopes, include_envelopes);
        assert_eq!((ours.len(), ours.skipped), (3, 0));
        assert_eq!(ours.encode_to_vec(), bytes);
        assert_eq!(ours.encoded_len(), bytes.len());
    }
    // Fields in any order, repeated scalars (last wins) and unknown fields.
    let bytes = [
        vec![0x10, 0x01],
        pb::LookupHashesRequest {
            queries: vec![query(7)],
            include_envelopes: false,
        }
        .encode_to_vec(),
        vec![0x10, 0x00],
        UNKNOWN.to_vec(),
        empty_elements(2),
    ]
    .concat();
    let generated = pb::LookupHashesRequest::decode(bytes.as_slice()).unwrap();
    let ours = LookupHashesRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(ours.queries, generated.queries);
    assert_eq!(ours.include_envelopes, generated.include_envelopes);
}

#[test]
fn malformed_requests_are_refused_like_the_generated_types() {
    let good = pb::SubmitEntriesRequest {
        envelopes: vec![envelope(9, 1)],
    }
    .encode_to_vec();
    let cases = [
        good[..good.len() - 1].to_vec(), // truncated
        vec![0x08, 0x01],                // field 1 as a varint
        vec![0x0a, 0x02, 0x1a],          // length past the end
    ];
    for bytes in &cases {
        assert!(pb::SubmitEntriesRequest::decode(bytes.as_slice()).is_err());
        assert!(SubmitEntriesRequest::decode(bytes.as_slice()).is_err());
        assert!(pb::SubmitEntryRequest::decode(bytes.as_slice()).is_err());
        assert!(SubmitEntryRequest::decode(bytes.as_slice()).is_err());
        assert!(pb::LookupHashesRequest::decode(bytes.as_slice()).is_err());
        assert!(LookupHashesRequest::decode(bytes.as_slice()).is_err());
    }
}

#[test]
fn batches_past_the_cap_are_counted_not_decoded() {
    // One past the cap: the first MAX are exactly the generated ones, the last is counted.
    let generated = pb::SubmitEntriesRequest {
        envelopes: (0..=MAX_SUBMIT_BATCH)
            .map(|i| envelope(u8::try_from(i % 7).unwrap(), 1))
            .collect(),
    };
    let ours = SubmitEntriesRequest::decode(generated.encode_to_vec().as_slice()).unwrap();
    assert_eq!(ours.len(), MAX_SUBMIT_BATCH + 1);
    assert_eq!(ours.skipped, 1);
    assert_eq!(ours.envelopes, generated.envelopes[..MAX_SUBMIT_BATCH]);

    // The C1 shape: a million empty envelopes (2 MB) keep 10,000 structs, not a million.
    let n = 1_000_000;
    let ours = SubmitEntriesRequest::decode(empty_elements(n).as_slice()).unwrap();
    assert_eq!(ours.len(), n);
    assert_eq!(ours.envelopes.len(), MAX_SUBMIT_BATCH);
    assert!(ours.envelopes.capacity() <= 2 * MAX_SUBMIT_BATCH);
    assert!(ours.envelopes.iter().all(|e| *e == pb::Envelope::default()));

    let ours = LookupHashesRequest::decode(empty_elements(n).as_slice()).unwrap();
    assert_eq!(ours.len(), n);
    assert_eq!(ours.skipped, n - MAX_LOOKUP_BATCH);
    assert!(ours.queries.capacity() <= 2 * MAX_LOOKUP_BATCH);

    let empty = SubmitEntriesRequest::decode(&[][..]).unwrap();
    assert!(empty.is_empty());
    assert!(LookupHashesRequest::decode(&[][..]).unwrap().is_empty());
}

#[test]
fn signatures_past_the_second_are_skipped() {
    let many = pb::SubmitEntriesRequest {
        envelopes: vec![envelope(5, 1000), envelope(6, 2)],
    };
    let ours = SubmitEntriesRequest::decode(many.encode_to_vec().as_slice()).unwrap();
    assert_eq!(
        ours.envelopes[0].signatures,
        many.envelopes[0].signatures[..2]
    );
    assert_eq!(ours.envelopes[1], many.envelopes[1]);

    // `0a 02 1a 00` repeated: one envelope, merged 100,000 times, each adding a signature.
    let merged = [0x0a, 0x02, 0x1a, 0x00].repeat(100_000);
    let generated = pb::SubmitEntryRequest::decode(merged.as_slice()).unwrap();
    assert_eq!(generated.envelope.unwrap().signatures.len(), 100_000);
    let ours = SubmitEntryRequest::decode(merged.as_slice()).unwrap();
    assert_eq!(ours.envelope.unwrap().signatures.len(), MAX_SIGNATURES_KEPT);
}
