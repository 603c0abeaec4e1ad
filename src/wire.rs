//! Messages hand-coded for the server, byte-compatible with the generated types.
//!
//! Replies: a batch lookup answers with up to 10,000 hash records. Each is stored as the encoded
//! `submissions` of a `HashRecord` (see `state::StoredRecord`), so the server copies those bytes
//! into the reply instead of decoding them into `pb::Submission`s and encoding them again.
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
use crate::registry::{MAX_LOOKUP_BATCH, MAX_SUBMIT_BATCH};

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
const SUBMISSIONS: u32 = 3; // HashRecord.submissions
const ENVELOPE: u32 = 1; // SubmitEntryRequest.envelope
const ENVELOPES: u32 = 1; // SubmitEntriesRequest.envelopes
const QUERIES: u32 = 1; // LookupHashesRequest.queries
const INCLUDE_ENVELOPES: u32 = 2; // LookupHashesRequest.include_envelopes
const SIGNATURES: u32 = 3; // Envelope.signatures

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
        self.envelope = Some(merge_envelope(envelope, wire_type, buf, ctx)?);
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
            encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
            self.skipped = self.skipped.saturating_add(1);
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        let envelope = merge_envelope(pb::Envelope::default(), wire_type, buf, ctx)?;
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
            QUERIES if self.queries.len() >= MAX_LOOKUP_BATCH => {
                encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
                self.skipped = self.skipped.saturating_add(1);
                encoding::skip_field(wire_type, tag, buf, ctx)
            }
            QUERIES => encoding::message::merge_repeated(wire_type, &mut self.queries, buf, ctx),
            INCLUDE_ENVELOPES => {
                encoding::bool::merge(wire_type, &mut self.include_envelopes, buf, ctx)
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

#[cfg(test)]
mod tests;
