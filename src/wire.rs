//! Replies encoded by hand from stored bytes, byte-compatible with the generated types.
//!
//! A batch lookup answers with up to 10,000 hash records. Each is stored as the encoded
//! `submissions` of a `HashRecord` (see `state::StoredRecord`), so the server copies those bytes
//! into the reply instead of decoding them into `pb::Submission`s and encoding them again.
//! Clients see an ordinary `LookupHashesResponse`: the encoding is the one prost would produce.

use bytes::{Buf, BufMut};
use prost::encoding::{
    self, encode_key, encode_varint, encoded_len_varint, key_len, DecodeContext, WireType,
};
use prost::{DecodeError, Message};

use crate::pb;

/// Field numbers, from `registry.proto`.
const RESULTS: u32 = 1; // LookupHashesResponse.results
const FOUND: u32 = 1; // LookupResult.found
const RECORD: u32 = 2; // LookupResult.record
const HASH_TYPE: u32 = 1; // HashRecord.hash_type
const VALUE: u32 = 2; // HashRecord.value
const SUBMISSIONS: u32 = 3; // HashRecord.submissions

/// `hashforum.v1.LookupHashesResponse`, as the server sends it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LookupHashesReply {
    /// One per query, in query order: the record, or `None` when not found.
    pub results: Vec<Option<RawRecord>>,
}

/// `hashforum.v1.HashRecord` with its submissions still encoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRecord {
    /// `HashRecord.hash_type`.
    pub hash_type: i32,
    /// `HashRecord.value`.
    pub value: String,
    /// `HashRecord.submissions`, encoded: each one as field 3, in log order. A stored record
    /// is exactly this.
    pub submissions: Vec<u8>,
}

impl RawRecord {
    /// Encodes decoded submissions (for example with envelopes attached).
    pub fn encode_submissions(submissions: &[pb::Submission]) -> Vec<u8> {
        let mut out = Vec::new();
        encoding::message::encode_repeated(SUBMISSIONS, submissions, &mut out);
        out
    }

    fn body_len(&self) -> usize {
        let hash_type = if self.hash_type == 0 {
            0
        } else {
            encoding::int32::encoded_len(HASH_TYPE, &self.hash_type)
        };
        let value = if self.value.is_empty() {
            0
        } else {
            encoding::string::encoded_len(VALUE, &self.value)
        };
        hash_type + value + self.submissions.len()
    }
}

/// Length of a `LookupResult` body.
fn result_len(result: Option<&RawRecord>) -> usize {
    result.map_or(0, |record| {
        let body = record.body_len();
        encoding::bool::encoded_len(FOUND, &true)
            + key_len(RECORD)
            + encoded_len_varint(body as u64)
            + body
    })
}

impl Message for LookupHashesReply {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for result in &self.results {
            encode_key(RESULTS, WireType::LengthDelimited, buf);
            encode_varint(result_len(result.as_ref()) as u64, buf);
            let Some(record) = result else { continue };
            encoding::bool::encode(FOUND, &true, buf);
            encode_key(RECORD, WireType::LengthDelimited, buf);
            encode_varint(record.body_len() as u64, buf);
            if record.hash_type != 0 {
                encoding::int32::encode(HASH_TYPE, &record.hash_type, buf);
            }
            if !record.value.is_empty() {
                encoding::string::encode(VALUE, &record.value, buf);
            }
            buf.put_slice(&record.submissions);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag != RESULTS {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        let mut result = pb::LookupResult::default();
        encoding::message::merge(wire_type, &mut result, buf, ctx)?;
        self.results
            .push(result.record.filter(|_| result.found).map(|r| RawRecord {
                hash_type: r.hash_type,
                value: r.value,
                submissions: RawRecord::encode_submissions(&r.submissions),
            }));
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.results
            .iter()
            .map(|result| {
                let len = result_len(result.as_ref());
                key_len(RESULTS) + encoded_len_varint(len as u64) + len
            })
            .sum()
    }

    fn clear(&mut self) {
        self.results.clear();
    }
}

#[cfg(test)]
mod tests {
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
            first_log_index: index / 2,
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
}
