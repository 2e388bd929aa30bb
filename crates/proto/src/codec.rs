//! MessagePack and JSON encoding of messages, with checked decoding.
//!
//! Owns the bytes <-> `Message` step. Decoding is two passes over the input: the first reads
//! only the `type` (and proves the input is exactly one well-formed map), the second parses the
//! named type's fields directly, so an unknown type, a malformed map and a bad field each get
//! their own error code, and no intermediate tree is built. The size limit is checked before
//! either pass, and range rules after the second.

use std::fmt;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::error::{DecodeError, EncodeError};
use crate::message::{Message, MessageType, Parse, RequestId};
use crate::validate::Validate;

/// Deepest nesting a message may have; ours need five levels, so this only stops abuse.
const MAX_DEPTH: usize = 32;

/// How a message is written as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// MessagePack maps with field names (datagrams, the control stream, binary WebSocket frames).
    MessagePack,
    /// JSON objects with the same fields (text WebSocket frames).
    Json,
}

/// Encodes a message after checking its ranges, appending to `out`.
pub fn encode_into(
    message: &Message,
    encoding: Encoding,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    message.validate().map_err(|error| EncodeError::Invalid {
        kind: message.kind().name(),
        error,
    })?;
    match encoding {
        Encoding::MessagePack => {
            let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
            message
                .serialize(&mut ser)
                .map_err(|e| EncodeError::Serializer(e.to_string()))
        }
        Encoding::Json => {
            serde_json::to_writer(out, message).map_err(|e| EncodeError::Serializer(e.to_string()))
        }
    }
}

/// Encodes a message after checking its ranges.
pub fn encode(message: &Message, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(96);
    encode_into(message, encoding, &mut out)?;
    Ok(out)
}

/// Decodes one message, refusing input longer than `max_len` before parsing it.
///
/// Unknown fields are ignored (forward compatibility); an unknown `type` is
/// [`DecodeError::UnknownType`]. Never panics, whatever the bytes.
pub fn decode(bytes: &[u8], encoding: Encoding, max_len: usize) -> Result<Message, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let Head { kind, req } = match encoding {
        Encoding::MessagePack => msgpack_head(bytes)?,
        Encoding::Json => json_head(bytes)?,
    };
    let kind = kind.map_err(|name| DecodeError::UnknownType { name, req })?;
    let message = match encoding {
        Encoding::MessagePack => kind.parse::<MsgPack>(bytes),
        Encoding::Json => kind.parse::<Json>(bytes),
    }
    .map_err(|detail| DecodeError::InvalidFields {
        kind: kind.name(),
        detail,
        req,
    })?;
    message
        .validate()
        .map_err(|error| DecodeError::OutOfRange {
            kind: kind.name(),
            error,
            req,
        })?;
    Ok(message)
}

/// The first pass over MessagePack: exactly one map, with a string `type`.
fn msgpack_head(bytes: &[u8]) -> Result<Head, DecodeError> {
    let mut rest = bytes;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    de.set_max_depth(MAX_DEPTH);
    let tag = de
        .deserialize_map(TagVisitor)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    drop(de);
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} bytes after the message",
            rest.len()
        )));
    }
    Ok(tag)
}

/// The first pass over JSON: exactly one object, with a string `type`.
fn json_head(bytes: &[u8]) -> Result<Head, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let tag = de
        .deserialize_map(TagVisitor)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    de.end()
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(tag)
}

struct MsgPack;

impl Parse for MsgPack {
    fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
        de.set_max_depth(MAX_DEPTH);
        T::deserialize(&mut de).map_err(|e| e.to_string())
    }
}

struct Json;

impl Parse for Json {
    fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// The `type` of a message: known, or the unknown name (shortened for error messages).
type TypeTag = Result<MessageType, String>;

/// What the first pass learns: the type, and the `req` to echo if the second pass fails.
struct Head {
    kind: TypeTag,
    req: Option<RequestId>,
}

struct TagVisitor;

impl<'de> Visitor<'de> for TagVisitor {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with a string `type` field")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut kind = None;
        let mut req = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type if kind.is_some() => return Err(de::Error::duplicate_field("type")),
                Key::Type => kind = Some(map.next_value::<TypeName>()?.0),
                // Only remembered; whether it is valid is the second pass's business.
                Key::Req => req = map.next_value::<LenientReq>()?.0,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        Ok(Head { kind, req })
    }
}

/// A `req` value if it is a `u32`, nothing otherwise (never an error).
struct LenientReq(Option<RequestId>);

impl<'de> de::Deserialize<'de> for LenientReq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LenientReq, D::Error> {
        d.deserialize_any(LenientReqVisitor)
    }
}

struct LenientReqVisitor;

impl<'de> Visitor<'de> for LenientReqVisitor {
    type Value = LenientReq;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<LenientReq, E> {
        Ok(LenientReq(RequestId::try_from(v).ok()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<LenientReq, E> {
        Ok(LenientReq(RequestId::try_from(v).ok()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<LenientReq, E> {
        Ok(LenientReq(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<LenientReq, E> {
        Ok(LenientReq(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<LenientReq, E> {
        Ok(LenientReq(None))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<LenientReq, E> {
        Ok(LenientReq(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<LenientReq, E> {
        Ok(LenientReq(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<LenientReq, E> {
        Ok(LenientReq(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<LenientReq, D::Error> {
        d.deserialize_any(LenientReqVisitor)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<LenientReq, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(LenientReq(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LenientReq, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(LenientReq(None))
    }
}

/// A map key: `type` or another field's name. Keys must be strings: MessagePack allows keys of
/// any type, but serde's derived field matching would take an integer key `1` for "the second
/// field", an encoding the spec does not have, so non-string keys are malformed.
enum Key {
    Type,
    Req,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string map key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "type" => Key::Type,
            "req" => Key::Req,
            _ => Key::Other,
        })
    }
}

struct TypeName(TypeTag);

impl<'de> de::Deserialize<'de> for TypeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TypeName, D::Error> {
        d.deserialize_str(TypeNameVisitor)
    }
}

struct TypeNameVisitor;

impl<'de> Visitor<'de> for TypeNameVisitor {
    type Value = TypeName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message type name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeName, E> {
        Ok(TypeName(
            MessageType::from_name(v).ok_or_else(|| v.chars().take(64).collect::<String>()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_CLIENT_FRAME;
    use crate::message::{Ping, Seek};

    fn ping() -> Message {
        Message::Ping(Ping {
            seq: 7,
            t0: 123_456,
        })
    }

    #[test]
    fn both_encodings_round_trip() {
        for enc in [Encoding::MessagePack, Encoding::Json] {
            let bytes = encode(&ping(), enc).unwrap();
            assert_eq!(decode(&bytes, enc, MAX_CLIENT_FRAME).unwrap(), ping());
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let json = String::from_utf8(encode(&ping(), Encoding::Json).unwrap()).unwrap();
        assert_eq!(json, r#"{"type":"ping","seq":7,"t0":123456}"#);
    }

    #[test]
    fn size_is_checked_before_parsing() {
        let bytes = vec![0xff_u8; 100];
        assert_eq!(
            decode(&bytes, Encoding::MessagePack, 99),
            Err(DecodeError::TooLarge { len: 100, max: 99 })
        );
    }

    #[test]
    fn unknown_fields_are_ignored_and_order_does_not_matter() {
        let json = br#"{"t0":5,"future":{"a":[1,2]},"seq":1,"type":"ping"}"#;
        assert_eq!(
            decode(json, Encoding::Json, 1000).unwrap(),
            Message::Ping(Ping { seq: 1, t0: 5 })
        );
    }

    #[test]
    fn each_failure_gets_its_own_error() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "malformed"),
            (b"[1,2]", "malformed"),
            (br#"{"seq":1}"#, "malformed"),
            (br#"{"type":7}"#, "malformed"),
            (
                br#"{"type":"ping","type":"ping","seq":1,"t0":1}"#,
                "malformed",
            ),
            (br#"{"type":"ping","seq":1,"t0":1} x"#, "malformed"),
            (br#"{"type":"teleport"}"#, "unknown_type"),
            (br#"{"type":"ping","seq":1}"#, "invalid_field"),
            (br#"{"type":"ping","seq":-1,"t0":1}"#, "invalid_field"),
            (br#"{"type":"seek","position":-3}"#, "invalid_field"),
            (br#"{"type":"seek","position":1e400}"#, "invalid_field"),
            (br#"{"type":"set_rate","rate":0}"#, "invalid_field"),
        ];
        for (input, code) in cases {
            let err = decode(input, Encoding::Json, 1000).unwrap_err();
            assert_eq!(
                err.code().name(),
                *code,
                "{} -> {err}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn msgpack_keys_must_be_strings() {
        // {"type":"seek", 1: 3.5}: an integer key, which serde would take for field index 1.
        let mut bytes = vec![0x82, 0xa4];
        bytes.extend_from_slice(b"type");
        bytes.push(0xa4);
        bytes.extend_from_slice(b"seek");
        bytes.push(0x01);
        bytes.push(0xcb);
        bytes.extend_from_slice(&3.5f64.to_be_bytes());
        let err = decode(&bytes, Encoding::MessagePack, 1000).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
        // A key that is binary rather than a string, or a string that is not UTF-8.
        for key in [
            &[0xc4, 0x04, b't', b'y', b'p', b'e'][..],
            &[0xa2, 0xff, 0xfe][..],
        ] {
            let mut bytes = vec![0x81];
            bytes.extend_from_slice(key);
            bytes.push(0xc0);
            let err = decode(&bytes, Encoding::MessagePack, 1000).unwrap_err();
            assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
        }
    }

    #[test]
    fn errors_after_the_first_pass_carry_the_req() {
        let cases: &[(&[u8], Option<u32>)] = &[
            (br#"{"type":"seek","req":9,"position":-1}"#, Some(9)),
            (br#"{"req":10,"type":"seek"}"#, Some(10)),
            (br#"{"type":"warp","req":11}"#, Some(11)),
            (br#"{"type":"seek","req":"12","position":1}"#, None),
            (br#"{"type":"seek","req":[{"a":1}],"position":1}"#, None),
            (br#"{"type":"seek","req":4294967296,"position":1}"#, None),
            (br#"{"type":"seek","req":13,"position":1"#, None),
        ];
        for (input, req) in cases {
            let err = decode(input, Encoding::Json, 1000).unwrap_err();
            assert_eq!(err.req(), *req, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn msgpack_trailing_bytes_are_rejected() {
        let mut bytes = encode(&ping(), Encoding::MessagePack).unwrap();
        bytes.push(0xc0);
        assert!(matches!(
            decode(&bytes, Encoding::MessagePack, 1000),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn msgpack_nan_is_out_of_range() {
        // {"type":"seek","position":NaN}
        let mut bytes = vec![0x82, 0xa4];
        bytes.extend_from_slice(b"type");
        bytes.push(0xa4);
        bytes.extend_from_slice(b"seek");
        bytes.push(0xa8);
        bytes.extend_from_slice(b"position");
        bytes.push(0xcb);
        bytes.extend_from_slice(&f64::NAN.to_be_bytes());
        let err = decode(&bytes, Encoding::MessagePack, 1000).unwrap_err();
        assert!(
            matches!(err, DecodeError::OutOfRange { kind: "seek", .. }),
            "{err}"
        );
    }

    #[test]
    fn integers_are_accepted_for_float_fields() {
        // JavaScript encoders write 12.0 as the integer 12.
        let msg = decode(br#"{"type":"seek","position":12}"#, Encoding::Json, 1000).unwrap();
        assert_eq!(
            msg,
            Message::Seek(Seek {
                req: None,
                position: 12.0
            })
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        for enc in [Encoding::MessagePack, Encoding::Json] {
            let bytes = match enc {
                Encoding::MessagePack => {
                    let mut b = vec![0x82, 0xa4];
                    b.extend_from_slice(b"type");
                    b.push(0xa4);
                    b.extend_from_slice(b"ping");
                    b.extend(std::iter::repeat_n(0x91, 100_000));
                    b.push(0xc0);
                    b
                }
                Encoding::Json => {
                    let mut s = String::from(r#"{"type":"ping","x":"#);
                    s.push_str(&"[".repeat(100_000));
                    s.push_str(&"]".repeat(100_000));
                    s.push('}');
                    s.into_bytes()
                }
            };
            // MessagePack hits the depth limit; serde_json skips ignored values without
            // recursing, so it fails later on the missing fields. Neither may overflow.
            let err = decode(&bytes, enc, usize::MAX).unwrap_err();
            let expected = match enc {
                Encoding::MessagePack => "malformed",
                Encoding::Json => "invalid_field",
            };
            assert_eq!(err.code().name(), expected, "{err}");
        }
    }

    #[test]
    fn invalid_messages_are_not_encoded() {
        let bad = Message::Seek(Seek {
            req: None,
            position: f64::NAN,
        });
        assert!(matches!(
            encode(&bad, Encoding::Json),
            Err(EncodeError::Invalid { kind: "seek", .. })
        ));
    }
}
