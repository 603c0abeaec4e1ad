//! The server's gRPC codec: prost's, except that a request that does not decode is answered
//! `INVALID_ARGUMENT` (`MALFORMED_REQUEST`) naming the field, where `tonic_prost` answers
//! `INTERNAL` (its reading of the gRPC status code guide). A truncated message, a field of the
//! wrong wire type, invalid UTF-8 in a string or groups nested past prost's recursion limit are
//! the client's mistake, and an `INTERNAL` would page the operator for it.
//!
//! `build.rs` names [`ServerCodec`] for every generated server. Replies are encoded by prost
//! as before; clients keep `tonic_prost::ProstCodec`.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

use crate::error::ServiceError;

/// Prost encoding of `T` (replies), prost decoding of `U` (requests) with malformed requests
/// refused as the client's error.
#[derive(Debug, Clone)]
pub struct ServerCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ServerCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ServerCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

/// Decodes a request, refusing a malformed one with `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct RequestDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| malformed::<U>(&e).into())
    }
}

/// The refusal of a request of type `U` that does not decode.
fn malformed<U>(error: &prost::DecodeError) -> ServiceError {
    let (field, why) = describe(error);
    let field = if field.is_empty() {
        // The whole message: name it by its type (`GetEntryRequest`).
        let name = std::any::type_name::<U>();
        name.rsplit("::").next().unwrap_or(name).to_owned()
    } else {
        field
    };
    ServiceError::invalid(
        field,
        "MALFORMED_REQUEST",
        format!("not a valid protobuf encoding: {why}"),
    )
}

/// The field path (`envelope.payload_type`) and the reason of a decode error. Prost keeps the
/// path only in its text, innermost first: `failed to decode Protobuf message:
/// Envelope.payload_type: SubmitEntryRequest.envelope: invalid string value: ...`.
fn describe(error: &prost::DecodeError) -> (String, String) {
    let text = error.to_string();
    let mut rest = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let mut fields = Vec::new();
    while let Some((segment, tail)) = rest.split_once(": ") {
        match segment.split_once('.') {
            Some((message, field)) if ident(message) && ident(field) => {
                fields.push(field);
                rest = tail;
            }
            _ => break,
        }
    }
    fields.reverse();
    (fields.join("."), rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn refusal<U: Message + Default + std::fmt::Debug>(bytes: &[u8]) -> ServiceError {
        malformed::<U>(&U::decode(bytes).expect_err("malformed"))
    }

    #[test]
    fn decode_errors_name_the_field_and_the_reason() {
        // SubmitEntryRequest { envelope { payload_type: "\xff" } }
        let bad_utf8 = [0x0a, 0x03, 0x12, 0x01, 0xff];
        let e = refusal::<pb::SubmitEntryRequest>(&bad_utf8);
        assert_eq!(
            e.to_string(),
            "envelope.payload_type: not a valid protobuf encoding: invalid string value: data \
             is not UTF-8 encoded"
        );
        assert_eq!(e.reason(), Some("MALFORMED_REQUEST"));
        let status = Status::from(e);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);

        // A varint cut short: in a field, and in a key (the whole message).
        let e = refusal::<pb::GetEntryRequest>(&[0x08, 0x80]);
        assert_eq!(
            e.to_string(),
            "index: not a valid protobuf encoding: invalid varint"
        );
        let e = refusal::<pb::GetEntryRequest>(&[0x80]);
        assert_eq!(
            e.to_string(),
            "GetEntryRequest: not a valid protobuf encoding: invalid varint"
        );
        // Groups nested past prost's recursion limit, in an unknown field.
        let deep = [vec![0x7b; 200], vec![0x7c; 200]].concat();
        let e = refusal::<pb::GetEntryRequest>(&deep);
        assert!(e.to_string().ends_with("recursion limit reached"), "{e}");
    }
}
