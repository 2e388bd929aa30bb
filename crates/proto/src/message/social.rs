//! Social messages: chat and reactions.

use serde::{Deserialize, Serialize};

use super::common::{MemberId, RequestId, RoomId, server_time};
use crate::error::FieldError;
use crate::limits::{MAX_CHAT_CHARS, MAX_NAME_CHARS, MAX_REACTION_CHARS};
use crate::time::ServerTime;
use crate::validate::{self, Validate};

/// Say something to the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// 1..=500 characters.
    pub text: String,
}

impl Validate for Chat {
    fn validate(&self) -> Result<(), FieldError> {
        chat_text(&self.text)
    }
}

fn chat_text(text: &str) -> Result<(), FieldError> {
    if text.trim().is_empty() {
        return Err(FieldError::new("text", "is empty"));
    }
    validate::text("text", text, MAX_CHAT_CHARS)
}

/// Someone said something in the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The room.
    pub room: RoomId,
    /// Who said it.
    pub from: MemberId,
    /// Their display name when they said it.
    pub name: String,
    /// What they said.
    pub text: String,
    /// When the relay received it.
    pub at: ServerTime,
}

impl Validate for ChatMessage {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()?;
        validate::name("name", &self.name, MAX_NAME_CHARS)?;
        chat_text(&self.text)?;
        server_time("at", self.at)
    }
}

/// React (an emoji or a short word).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct React {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// 1..=16 characters.
    pub reaction: String,
}

impl Validate for React {
    fn validate(&self) -> Result<(), FieldError> {
        validate::name("reaction", &self.reaction, MAX_REACTION_CHARS)
    }
}

/// Someone reacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    /// The room.
    pub room: RoomId,
    /// Who reacted.
    pub from: MemberId,
    /// The reaction.
    pub reaction: String,
    /// When the relay received it.
    pub at: ServerTime,
}

impl Validate for Reaction {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()?;
        validate::name("reaction", &self.reaction, MAX_REACTION_CHARS)?;
        server_time("at", self.at)
    }
}
