//! Errors: the wire error codes every implementation shares, and this crate's own error types.
//!
//! `ErrorCode` is the one table of codes PROTOCOL.md documents; the Rust error types map onto
//! it so a relay can answer any decoding failure with the right code without guessing.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::message::RequestId;

macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, )*) => {
        /// The code carried by an `error` message. Serialized as its snake_case name.
        ///
        /// Unknown codes from a newer peer decode as [`ErrorCode::Other`] so an old client
        /// still shows the error's message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant, )*
            /// A code this implementation does not know (from a newer peer).
            #[serde(other)]
            Other,
        }

        impl ErrorCode {
            /// Every code this implementation knows, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code's wire name.
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                    ErrorCode::Other => "other",
                }
            }
        }
    };
}

error_codes! {
    /// The bytes are not a MessagePack or JSON map with a string `type`.
    Malformed = "malformed",
    /// The message or frame exceeds its size limit.
    TooLarge = "too_large",
    /// The `type` names no message this peer knows.
    UnknownType = "unknown_type",
    /// A field is missing, of the wrong type, or out of range.
    InvalidField = "invalid_field",
    /// The hello's protocol version is not one the relay speaks.
    UnsupportedVersion = "unsupported_version",
    /// The first message on a connection must be `hello`.
    HelloRequired = "hello_required",
    /// This relay requires a token and none was given.
    AuthRequired = "auth_required",
    /// The token is invalid, expired, not yet valid, or for another audience or issuer.
    AuthFailed = "auth_failed",
    /// The member may not do this (role, policy, or permission).
    Forbidden = "forbidden",
    /// The request needs a room and the member is in none.
    NotInRoom = "not_in_room",
    /// The member is already in a room and must leave it first.
    AlreadyInRoom = "already_in_room",
    /// No room has this id or invite code.
    RoomNotFound = "room_not_found",
    /// The room is at capacity.
    RoomFull = "room_full",
    /// The room is locked against new members.
    RoomLocked = "room_locked",
    /// The room password is missing or wrong.
    WrongPassword = "wrong_password",
    /// The member named does not exist in this room.
    MemberNotFound = "member_not_found",
    /// The request does not fit the room's current state.
    InvalidState = "invalid_state",
    /// The proposal does not exist or is already decided.
    ProposalClosed = "proposal_closed",
    /// A proposal of this kind is already open.
    ProposalPending = "proposal_pending",
    /// The media URL's host is not on the relay's allowlist.
    MediaNotAllowed = "media_not_allowed",
    /// Too many messages: a rate limit was hit.
    RateLimited = "rate_limited",
    /// The user owns as many rooms as allowed.
    TooManyRooms = "too_many_rooms",
    /// Too many connections from this address.
    TooManyConnections = "too_many_connections",
    /// The client did not read fast enough and its control queue overflowed.
    SlowConsumer = "slow_consumer",
    /// The relay failed; the request may be retried.
    Internal = "internal",
}

/// Why a field failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("field `{field}` {reason}")]
pub struct FieldError {
    /// Dotted path of the field, e.g. `timeline.rate`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A field error at `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with its path prefixed by `parent.`.
    pub fn within(self, parent: &str) -> Self {
        FieldError {
            field: format!("{parent}.{}", self.field),
            reason: self.reason,
        }
    }
}

/// Why bytes did not decode into a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input is longer than the limit; checked before any parsing.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// Not a well-formed map with a string `type` field.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A well-formed message of a type this implementation does not know.
    #[error("unknown message type `{name}`")]
    UnknownType {
        /// The type name as sent (at most 64 characters of it).
        name: String,
        /// The message's `req`, if it had a readable one.
        req: Option<RequestId>,
    },
    /// A known type whose fields are missing or of the wrong type.
    #[error("invalid `{kind}` message: {detail}")]
    InvalidFields {
        /// The message type.
        kind: &'static str,
        /// The parser's description.
        detail: String,
        /// The message's `req`, if it had a readable one.
        req: Option<RequestId>,
    },
    /// A known type whose fields parsed but are out of range.
    #[error("invalid `{kind}` message: {error}")]
    OutOfRange {
        /// The message type.
        kind: &'static str,
        /// The offending field.
        error: FieldError,
        /// The message's `req`.
        req: Option<RequestId>,
    },
}

impl DecodeError {
    /// The wire code a relay answers this failure with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
            DecodeError::Malformed(_) => ErrorCode::Malformed,
            DecodeError::UnknownType { .. } => ErrorCode::UnknownType,
            DecodeError::InvalidFields { .. } | DecodeError::OutOfRange { .. } => {
                ErrorCode::InvalidField
            }
        }
    }

    /// The `req` of the message that failed, when the map was readable and `req` a `u32`, so
    /// the relay's `error` can name the request it answers.
    pub fn req(&self) -> Option<RequestId> {
        match self {
            DecodeError::TooLarge { .. } | DecodeError::Malformed(_) => None,
            DecodeError::UnknownType { req, .. }
            | DecodeError::InvalidFields { req, .. }
            | DecodeError::OutOfRange { req, .. } => *req,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The message breaks a range rule; peers would reject it, so it is not sent.
    #[error("refusing to encode an invalid `{kind}` message: {error}")]
    Invalid {
        /// The message type.
        kind: &'static str,
        /// The offending field.
        error: FieldError,
    },
    /// The serializer failed (not expected for valid messages).
    #[error("serializer failed: {0}")]
    Serializer(String),
}

/// Why the stream framing failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The frame's declared length exceeds the limit. The decoder skips its payload and goes on.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared payload length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A frame declared a payload of zero bytes. The decoder goes on with the next frame.
    #[error("empty frame")]
    Empty,
}

impl FrameError {
    /// The wire code a relay answers this failure with.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::TooLarge,
            FrameError::Empty => ErrorCode::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.name()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn unknown_codes_decode_as_other() {
        let code: ErrorCode = serde_json::from_str("\"from_the_future\"").unwrap();
        assert_eq!(code, ErrorCode::Other);
    }
}
