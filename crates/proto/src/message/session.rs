//! Session messages: the handshake, acknowledgements, errors and shutdown notice.

use serde::{Deserialize, Serialize};

use super::common::{MemberId, ProposalId, RequestId, RoomId};
use crate::error::{ErrorCode, FieldError};
use crate::limits::{MAX_FEATURES, MAX_ID_BYTES, MAX_NAME_CHARS, MAX_TEXT_CHARS, MAX_TOKEN_BYTES};
use crate::time::ServerTime;
use crate::validate::{self, Validate};

/// First message of every connection: who the client is and what it speaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the client speaks.
    pub version: u16,
    /// Client software and version, e.g. `lockstep-web/0.1.0` (1..=64 bytes).
    pub client: String,
    /// Optional features the client supports (at most 32 names of 1..=64 bytes).
    #[serde(default)]
    pub features: Vec<String>,
    /// A JWT, when the relay requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Display name for anonymous clients (a token's name claim wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resume token from an earlier `welcome`, to get back identity, role and room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

impl Validate for Hello {
    fn validate(&self) -> Result<(), FieldError> {
        validate::token("client", &self.client, MAX_ID_BYTES)?;
        validate::count("features", &self.features, MAX_FEATURES)?;
        for (i, f) in self.features.iter().enumerate() {
            validate::token(&format!("features[{i}]"), f, MAX_ID_BYTES)?;
        }
        if let Some(t) = &self.token {
            validate::token("token", t, MAX_TOKEN_BYTES)?;
        }
        if let Some(n) = &self.name {
            validate::name("name", n, MAX_NAME_CHARS)?;
        }
        if let Some(r) = &self.resume {
            validate::token("resume", r, MAX_ID_BYTES)?;
        }
        Ok(())
    }
}

/// Limits the relay enforces on this connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionLimits {
    /// Largest control frame (or WebSocket message) the relay accepts, bytes.
    pub max_frame: u32,
    /// Largest datagram payload the relay accepts, bytes.
    pub max_datagram: u32,
    /// How often the client should ping once synchronised, milliseconds.
    pub ping_interval_ms: u32,
}

/// The relay's answer to a good `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// Protocol version in use.
    pub version: u16,
    /// The client's member id.
    pub you: MemberId,
    /// The display name the relay settled on.
    pub name: String,
    /// Token for `hello.resume` after a drop; valid for the relay's resume window.
    pub resume_token: String,
    /// Whether this connection resumed an earlier session (then `room_state` follows).
    pub resumed: bool,
    /// Relay time when the welcome was sent (a first, coarse clock estimate).
    pub server_time: ServerTime,
    /// Optional features both sides support.
    #[serde(default)]
    pub features: Vec<String>,
    /// Limits in force.
    pub limits: SessionLimits,
}

impl Validate for Welcome {
    fn validate(&self) -> Result<(), FieldError> {
        validate::name("name", &self.name, MAX_NAME_CHARS)?;
        validate::token("resume_token", &self.resume_token, MAX_ID_BYTES)?;
        super::common::server_time("server_time", self.server_time)?;
        validate::count("features", &self.features, MAX_FEATURES)?;
        for (i, f) in self.features.iter().enumerate() {
            validate::token(&format!("features[{i}]"), f, MAX_ID_BYTES)?;
        }
        Ok(())
    }
}

/// A request failed, or the client did something wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// The failed request's id, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// What went wrong, from the error table.
    pub code: ErrorCode,
    /// For people and logs (at most 256 characters).
    pub message: String,
    /// The relay closes the connection after this error.
    #[serde(default)]
    pub fatal: bool,
}

impl ErrorMessage {
    /// An error whose message is cut to the protocol's limit and cleaned of control characters,
    /// so that any text (a parser's description quoting the input, say) makes a valid message.
    pub fn new(
        req: Option<RequestId>,
        code: ErrorCode,
        message: impl AsRef<str>,
        fatal: bool,
    ) -> Self {
        let message = message
            .as_ref()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_TEXT_CHARS)
            .collect();
        ErrorMessage {
            req,
            code,
            message,
            fatal,
        }
    }
}

impl Validate for ErrorMessage {
    fn validate(&self) -> Result<(), FieldError> {
        if self.code == ErrorCode::Other {
            return Err(FieldError::new(
                "code",
                "`other` stands for codes unknown to the receiver; it is never sent",
            ));
        }
        validate::text("message", &self.message, MAX_TEXT_CHARS)
    }
}

/// A request succeeded (for requests whose effect is not itself a reply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The request's id.
    pub req: RequestId,
    /// When the request opened a proposal instead of applying at once, its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<ProposalId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecodeError, Encoding, Message, decode, encode};

    #[test]
    fn any_decode_error_makes_a_valid_error_message() {
        let huge = format!(
            r#"{{"type":"set_role","member":1,"role":"{}\n"}}"#,
            "x".repeat(5000)
        );
        let err: DecodeError = decode(huge.as_bytes(), Encoding::Json, 100_000).unwrap_err();
        let reply = Message::Error(ErrorMessage::new(
            Some(4),
            err.code(),
            err.to_string(),
            false,
        ));
        let bytes = encode(&reply, Encoding::MessagePack).unwrap();
        assert!(bytes.len() < 400);
    }
}

impl Validate for Ack {
    fn validate(&self) -> Result<(), FieldError> {
        Ok(())
    }
}

/// The relay is shutting down or moving the client; the connection closes next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoingAway {
    /// For people and logs.
    pub reason: String,
    /// Reconnect (with the resume token) after this many milliseconds.
    pub reconnect_after_ms: u32,
    /// The room the client was in, kept for resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomId>,
}

impl Validate for GoingAway {
    fn validate(&self) -> Result<(), FieldError> {
        validate::text("reason", &self.reason, MAX_TEXT_CHARS)?;
        self.room.validate()
    }
}
