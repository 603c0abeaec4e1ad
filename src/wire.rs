//! Messages hand-coded for the server, byte-compatible with the generated types.
//!
//! Replies: a batch lookup answers with up to 10,000 hash records. Each is stored as the encoding
//! of a `HashRecord` without its first two fields (see `state::StoredRecord`), so the server
//! writes `hash_type` and `value` and copies the stored bytes into the reply instead of decoding
//! them (submissions, opinions, withdrawal, status, tallies) and encoding them again.
//! Clients see an ordinary `LookupHashesResponse`: the encoding is the one prost would produce.
//!
//! Requests: the generated decoders materialise every repeated element, so a 16 MiB message of
//! empty elements (`0a 00`, two bytes each) would become 8 million structs, 16 to 40 times its
//! size on the wire. The request types here decode like the generated ones up to a cap and only
//! count what lies past it, without allocating:
//!
//! - [`SubmitEntriesRequest`] keeps at most `MAX_SUBMIT_BATCH` envelopes and
//!   [`LookupHashesRequest`] at most `MAX_LOOKUP_BATCH` queries; `len()` is the number in the
//!   message, so the handler still answers `BATCH_TOO_LARGE` with the true count.
//! - Every envelope (also in [`SubmitEntryRequest`]) keeps at most [`MAX_SIGNATURES_KEPT`]
//!   signatures: an envelope needs exactly one, so one with more is refused either way.
//!
//! Invariant: below the caps, the decoded values equal the generated types' (unit-tested on the
//! same bytes). Above them, elements past the cap are skipped as opaque length-delimited fields
//! (not checked to be well-formed), which only ever happens to a request that is refused.

use bytes::{Buf, BufMut};
use prost::encoding::{
    self, encode_key, encode_varint, encoded_len_varint, key_len, DecodeContext, WireType,
};
use prost::{DecodeError, Message};

use crate::pb;
/// Most envelopes in one `SubmitEntries` call.
pub const MAX_SUBMIT_BATCH: usize = 10_000;
/// Most hashes in one `LookupHashes` call.
pub const MAX_LOOKUP_BATCH: usize = 10_000;

/// Signatures kept per decoded envelope. Valid envelopes have exactly one; keeping a second
/// lets the parser refuse an envelope with more (`INVALID_ENVELOPE`, whose message then says 2)
/// without storing thousands of empty signatures.
pub const MAX_SIGNATURES_KEPT: usize = 2;

/// Field numbers, from `registry.proto` and `entry.proto`.
const RESULTS: u32 = 1; // LookupHashesResponse.results
const FOUND: u32 = 1; // LookupResult.found
const RECORD: u32 = 2; // LookupResult.record
const HASH_TYPE: u32 = 1; // HashRecord.hash_type
const VALUE: u32 = 2; // HashRecord.value
const ENVELOPE: u32 = 1; // SubmitEntryRequest.envelope
const ENVELOPES: u32 = 1; // SubmitEntriesRequest.envelopes
const QUERIES: u32 = 1; // LookupHashesRequest.queries
const INCLUDE_ENVELOPES: u32 = 2; // LookupHashesRequest.include_envelopes
const SIGNATURES: u32 = 3; // Envelope.signatures

/// Adds a field to a decode error's path, as the generated decoders do: the server's refusal
/// of a malformed request names the field (`crate::codec`).
fn at(message: &'static str, field: &'static str) -> impl FnOnce(DecodeError) -> DecodeError {
    move |mut error| {
        error.push(message, field);
        error
    }
}

/// `hashforum.v1.LookupHashesResponse`, as the server sends it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LookupHashesReply {
    /// One per query, in query order: the record, or `None` when not found.
    pub results: Vec<Option<RawRecord>>,
}

/// `hashforum.v1.HashRecord` with every field after `value` still encoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRecord {
    /// `HashRecord.hash_type`.
    pub hash_type: i32,
    /// `HashRecord.value`.
    pub value: String,
    /// The other fields of the `HashRecord` (submissions, opinions, withdrawal, status,
    /// tallies), encoded, in field order. A stored record is exactly this.
    pub rest: Vec<u8>,
}

impl RawRecord {
    /// The encoded fields after `value` of a decoded record (for example with envelopes
    /// attached): its encoding without `hash_type` and `value`.
    pub fn encode_rest(record: &pb::HashRecord) -> Vec<u8> {
        pb::HashRecord {
            hash_type: 0,
            value: String::new(),
            ..record.clone()
        }
        .encode_to_vec()
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
        hash_type + value + self.rest.len()
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
            buf.put_slice(&record.rest);
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
                rest: RawRecord::encode_rest(&r),
                value: r.value,
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

/// An envelope being decoded, with its signatures capped at [`MAX_SIGNATURES_KEPT`]. Every other
/// field goes to the generated `pb::Envelope::merge_field`.
#[derive(Debug, Default)]
struct CappedEnvelope(pb::Envelope);

impl Message for CappedEnvelope {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.0.encode_raw(buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == SIGNATURES && self.0.signatures.len() >= MAX_SIGNATURES_KEPT {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        self.0.merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Merges one length-delimited envelope into `envelope` (a repeated occurrence of a singular
/// field merges into the same message, as prost does), with its signatures capped.
fn merge_envelope(
    envelope: pb::Envelope,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<pb::Envelope, DecodeError> {
    let mut capped = CappedEnvelope(envelope);
    encoding::message::merge(wire_type, &mut capped, buf, ctx)?;
    Ok(capped.0)
}

/// `hashforum.v1.SubmitEntryRequest`, as the server decodes it: its envelope's signatures are
/// capped (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmitEntryRequest {
    /// `SubmitEntryRequest.envelope`.
    pub envelope: Option<pb::Envelope>,
}

impl Message for SubmitEntryRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(envelope) = &self.envelope {
            encoding::message::encode(ENVELOPE, envelope, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag != ENVELOPE {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        let envelope = self.envelope.take().unwrap_or_default();
        let envelope = merge_envelope(envelope, wire_type, buf, ctx)
            .map_err(at("SubmitEntryRequest", "envelope"))?;
        self.envelope = Some(envelope);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.envelope
            .as_ref()
            .map_or(0, |e| encoding::message::encoded_len(ENVELOPE, e))
    }

    fn clear(&mut self) {
        self.envelope = None;
    }
}

/// Skips one element of a capped repeated field undecoded (it must be length-delimited, as a
/// message is), counting it in `skipped`.
fn skip_counted(
    skipped: &mut usize,
    tag: u32,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
    *skipped = skipped.saturating_add(1);
    encoding::skip_field(wire_type, tag, buf, ctx)
}

/// Decodes one element of a repeated message field into `kept` while it holds fewer than
/// `cap`; past that, skips it undecoded and counts it in `skipped`.
fn merge_capped<M: Message + Default>(
    kept: &mut Vec<M>,
    skipped: &mut usize,
    cap: usize,
    (tag, wire_type): (u32, WireType),
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    if kept.len() >= cap {
        skip_counted(skipped, tag, wire_type, buf, ctx)
    } else {
        encoding::message::merge_repeated(wire_type, kept, buf, ctx)
    }
}

/// `hashforum.v1.SubmitEntriesRequest`, as the server decodes it: at most `MAX_SUBMIT_BATCH`
/// envelopes are kept, the rest only counted (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmitEntriesRequest {
    /// The first `MAX_SUBMIT_BATCH` envelopes, in request order.
    pub envelopes: Vec<pb::Envelope>,
    /// Envelopes in the message past `envelopes`, skipped undecoded.
    pub skipped: usize,
}

impl SubmitEntriesRequest {
    /// How many envelopes the message held.
    pub fn len(&self) -> usize {
        self.envelopes.len().saturating_add(self.skipped)
    }

    /// Whether the message held none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Message for SubmitEntriesRequest {
    /// Encodes the kept envelopes only (the server never encodes a request).
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::message::encode_repeated(ENVELOPES, &self.envelopes, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag != ENVELOPES {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        if self.envelopes.len() >= MAX_SUBMIT_BATCH {
            return skip_counted(&mut self.skipped, tag, wire_type, buf, ctx)
                .map_err(at("SubmitEntriesRequest", "envelopes"));
        }
        let envelope = merge_envelope(pb::Envelope::default(), wire_type, buf, ctx)
            .map_err(at("SubmitEntriesRequest", "envelopes"))?;
        self.envelopes.push(envelope);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        encoding::message::encoded_len_repeated(ENVELOPES, &self.envelopes)
    }

    fn clear(&mut self) {
        self.envelopes.clear();
        self.skipped = 0;
    }
}

/// `hashforum.v1.LookupHashesRequest`, as the server decodes it: at most `MAX_LOOKUP_BATCH`
/// queries are kept, the rest only counted (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LookupHashesRequest {
    /// The first `MAX_LOOKUP_BATCH` queries, in request order.
    pub queries: Vec<pb::HashQuery>,
    /// Queries in the message past `queries`, skipped undecoded.
    pub skipped: usize,
    /// `LookupHashesRequest.include_envelopes`.
    pub include_envelopes: bool,
}

impl LookupHashesRequest {
    /// How many queries the message held.
    pub fn len(&self) -> usize {
        self.queries.len().saturating_add(self.skipped)
    }

    /// Whether the message held none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Message for LookupHashesRequest {
    /// Encodes the kept queries only (the server never encodes a request).
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::message::encode_repeated(QUERIES, &self.queries, buf);
        if self.include_envelopes {
            encoding::bool::encode(INCLUDE_ENVELOPES, &self.include_envelopes, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            QUERIES => merge_capped(
                &mut self.queries,
                &mut self.skipped,
                MAX_LOOKUP_BATCH,
                (tag, wire_type),
                buf,
                ctx,
            )
            .map_err(at("LookupHashesRequest", "queries")),
            INCLUDE_ENVELOPES => {
                encoding::bool::merge(wire_type, &mut self.include_envelopes, buf, ctx)
                    .map_err(at("LookupHashesRequest", "include_envelopes"))
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let include = if self.include_envelopes {
            encoding::bool::encoded_len(INCLUDE_ENVELOPES, &self.include_envelopes)
        } else {
            0
        };
        encoding::message::encoded_len_repeated(QUERIES, &self.queries) + include
    }

    fn clear(&mut self) {
        self.queries.clear();
        self.skipped = 0;
        self.include_envelopes = false;
    }
}

/// Most queries in one `MatchHashes` call.
pub const MAX_MATCH_BATCH: usize = 10_000;

/// `hashforum.v1.MatchHashesRequest`, as the server decodes it: at most `MAX_MATCH_BATCH`
/// queries are kept, the rest only counted (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchHashesRequest {
    /// `MatchHashesRequest.hash_type`.
    pub hash_type: i32,
    /// The first `MAX_MATCH_BATCH` queries, in request order.
    pub queries: Vec<pb::MatchQuery>,
    /// Queries in the message past `queries`, skipped undecoded.
    pub skipped: usize,
    /// `MatchHashesRequest.max_distance`.
    pub max_distance: Option<u32>,
    /// `MatchHashesRequest.include_inactive`.
    pub include_inactive: bool,
    /// `MatchHashesRequest.dihedral`.
    pub dihedral: bool,
}

impl MatchHashesRequest {
    /// How many queries the message held.
    pub fn len(&self) -> usize {
        self.queries.len().saturating_add(self.skipped)
    }

    /// Whether the message held none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const M_HASH_TYPE: u32 = 1;
const M_QUERIES: u32 = 2;
const M_MAX_DISTANCE: u32 = 3;
const M_INCLUDE_INACTIVE: u32 = 4;
const M_DIHEDRAL: u32 = 5;

impl Message for MatchHashesRequest {
    /// Encodes the kept queries only (the server never encodes a request).
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.hash_type != 0 {
            encoding::int32::encode(M_HASH_TYPE, &self.hash_type, buf);
        }
        encoding::message::encode_repeated(M_QUERIES, &self.queries, buf);
        if let Some(d) = &self.max_distance {
            encoding::uint32::encode(M_MAX_DISTANCE, d, buf);
        }
        if self.include_inactive {
            encoding::bool::encode(M_INCLUDE_INACTIVE, &self.include_inactive, buf);
        }
        if self.dihedral {
            encoding::bool::encode(M_DIHEDRAL, &self.dihedral, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            M_HASH_TYPE => encoding::int32::merge(wire_type, &mut self.hash_type, buf, ctx)
                .map_err(at("MatchHashesRequest", "hash_type")),
            M_QUERIES => merge_capped(
                &mut self.queries,
                &mut self.skipped,
                MAX_MATCH_BATCH,
                (tag, wire_type),
                buf,
                ctx,
            )
            .map_err(at("MatchHashesRequest", "queries")),
            M_MAX_DISTANCE => {
                encoding::uint32::merge(wire_type, self.max_distance.get_or_insert(0), buf, ctx)
                    .map_err(at("MatchHashesRequest", "max_distance"))
            }
            M_INCLUDE_INACTIVE => {
                encoding::bool::merge(wire_type, &mut self.include_inactive, buf, ctx)
                    .map_err(at("MatchHashesRequest", "include_inactive"))
            }
            M_DIHEDRAL => encoding::bool::merge(wire_type, &mut self.dihedral, buf, ctx)
                .map_err(at("MatchHashesRequest", "dihedral")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        (if self.hash_type != 0 {
            encoding::int32::encoded_len(M_HASH_TYPE, &self.hash_type)
        } else {
            0
        }) + encoding::message::encoded_len_repeated(M_QUERIES, &self.queries)
            + self
                .max_distance
                .as_ref()
                .map_or(0, |d| encoding::uint32::encoded_len(M_MAX_DISTANCE, d))
            + if self.include_inactive {
                encoding::bool::encoded_len(M_INCLUDE_INACTIVE, &self.include_inactive)
            } else {
                0
            }
            + if self.dihedral {
                encoding::bool::encoded_len(M_DIHEDRAL, &self.dihedral)
            } else {
                0
            }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_request_decodes_as_the_generated_type_and_caps_queries() {
        let generated = pb::MatchHashesRequest {
            hash_type: pb::HashType::Pdq as i32,
            queries: (0..MAX_MATCH_BATCH + 5)
                .map(|i| pb::MatchQuery {
                    value: format!("{i:064x}"),
                    variant: (i % 9) as i32,
                })
                .collect(),
            max_distance: Some(0),
            include_inactive: true,
            dihedral: true,
        };
        let bytes = generated.encode_to_vec();
        let ours = MatchHashesRequest::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(ours.len(), MAX_MATCH_BATCH + 5);
        assert_eq!(ours.skipped, 5);
        assert_eq!(ours.queries[..], generated.queries[..MAX_MATCH_BATCH]);
        assert_eq!(ours.max_distance, Some(0), "an explicit 0 is kept");
        assert!(ours.include_inactive && ours.dihedral);
        assert_eq!(ours.hash_type, pb::HashType::Pdq as i32);
        let mut kept = generated.clone();
        kept.queries.truncate(MAX_MATCH_BATCH);
        assert_eq!(ours.encode_to_vec(), kept.encode_to_vec());
        let absent = pb::MatchHashesRequest {
            max_distance: None,
            ..kept
        };
        let ours = MatchHashesRequest::decode(absent.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(ours.max_distance, None);
    }

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
            incident_id: if index % 3 == 0 {
                "christchurch".into()
            } else {
                String::new()
            },
            retraction: (index % 5 == 0).then(|| pb::Retraction {
                log_index: index + 1,
                sequenced_at_unix_ms: 7,
                reason: "mistake".into(),
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
                opinions: vec![pb::Opinion {
                    member_id: "gamma".into(),
                    opinion: pb::OpinionKind::FalsePositive as i32,
                    reason: "a cat".into(),
                    log_index: 301,
                    sequenced_at_unix_ms: 9,
                    first_log_index: 2,
                }],
                withdrawal: Some(pb::Withdrawal {
                    member_id: "admin".into(),
                    reason: "appeal".into(),
                    log_index: 302,
                    sequenced_at_unix_ms: 10,
                }),
                status: pb::RecordStatus::Withdrawn as i32,
                tallies: Some(pb::OpinionTallies {
                    agree: 0,
                    disagree: 0,
                    false_positive: 1,
                }),
            }),
            None,
            Some(pb::HashRecord {
                hash_type: pb::HashType::Md5 as i32,
                value: "cd".repeat(16),
                submissions: vec![submission("gamma", 70_000, false)],
                status: pb::RecordStatus::Active as i32,
                ..Default::default()
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
                        rest: RawRecord::encode_rest(r),
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
}
