//! Room messages: creating, finding, joining and leaving rooms, and what members learn of them.

use serde::{Deserialize, Serialize};

use super::common::{
    Media, Member, MemberId, PolicyMode, Proposal, RequestId, RoomId, RoomInfo, RoomOptions,
    RoomSummary,
};
use crate::error::FieldError;
use crate::limits::{MAX_ID_BYTES, MAX_NAME_CHARS, MAX_PASSWORD_BYTES, MAX_TEXT_CHARS};
use crate::timeline::Timeline;
use crate::validate::{self, Validate};

/// Create a room and join it as its host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRoom {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// Display name, 1..=64 characters.
    pub name: String,
    /// Password needed to join (stored hashed by the relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// What the room watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// Who decides (default `host`).
    #[serde(default)]
    pub mode: PolicyMode,
    /// Settings (defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<RoomOptions>,
}

impl Validate for CreateRoom {
    fn validate(&self) -> Result<(), FieldError> {
        validate::name("name", &self.name, MAX_NAME_CHARS)?;
        if let Some(p) = &self.password {
            validate::secret("password", p, MAX_PASSWORD_BYTES)?;
        }
        self.media.validate().map_err(|e| e.within("media"))?;
        self.options.validate().map_err(|e| e.within("options"))
    }
}

/// Join a room by id or invite code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRoom {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// Room id or invite code.
    pub room: String,
    /// The room's password, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl Validate for JoinRoom {
    fn validate(&self) -> Result<(), FieldError> {
        validate::identifier("room", &self.room, MAX_ID_BYTES)?;
        if let Some(p) = &self.password {
            validate::secret("password", p, MAX_PASSWORD_BYTES)?;
        }
        Ok(())
    }
}

/// Leave the current room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaveRoom {
    /// Request id, echoed in the `ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
}

/// Ask for the public rooms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListRooms {
    /// Request id, echoed in the `room_list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
}

/// The public rooms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomList {
    /// The `list_rooms` request's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// One entry per public room.
    pub rooms: Vec<RoomSummary>,
}

impl Validate for RoomList {
    fn validate(&self) -> Result<(), FieldError> {
        validate::each("rooms", &self.rooms)
    }
}

/// Everything a member needs to take part: sent on create, join and resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomState {
    /// The create or join request's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// The room.
    pub room: RoomInfo,
    /// The receiving member's id.
    pub you: MemberId,
    /// Everyone present, the receiver included; in a room of more than
    /// [`crate::limits::ROOM_STATE_MEMBERS`], that many of them.
    pub members: Vec<Member>,
    /// Current playback.
    pub timeline: Timeline,
    /// Open proposals.
    #[serde(default)]
    pub proposals: Vec<Proposal>,
    /// How many members the room has, when `members` does not list them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<u32>,
}

impl Validate for RoomState {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate().map_err(|e| e.within("room"))?;
        validate::each("members", &self.members)?;
        member_count(self.member_count, self.members.len())?;
        super::playback::timeline("timeline", &self.timeline)?;
        validate::each("proposals", &self.proposals)
    }
}

/// The room's name, mode, host, media or settings changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomUpdated {
    /// The room as it is now.
    pub room: RoomInfo,
}

impl Validate for RoomUpdated {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate().map_err(|e| e.within("room"))
    }
}

/// Change what the room watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetMedia {
    /// Request id, echoed in the `ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// The new media.
    pub media: Media,
}

impl Validate for SetMedia {
    fn validate(&self) -> Result<(), FieldError> {
        self.media.validate().map_err(|e| e.within("media"))
    }
}

/// Replace the room's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRoomOptions {
    /// Request id, echoed in the `ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// The new settings, all of them.
    pub options: RoomOptions,
}

impl Validate for SetRoomOptions {
    fn validate(&self) -> Result<(), FieldError> {
        self.options.validate().map_err(|e| e.within("options"))
    }
}

/// Set or clear the room's password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetPassword {
    /// Request id, echoed in the `ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// The new password; absent clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl Validate for SetPassword {
    fn validate(&self) -> Result<(), FieldError> {
        if let Some(p) = &self.password {
            validate::secret("password", p, MAX_PASSWORD_BYTES)?;
        }
        Ok(())
    }
}

/// Members who joined or changed (role, readiness, buffering, transport), coalesced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participants {
    /// The room.
    pub room: RoomId,
    /// Each member that joined or changed, as it is now.
    pub members: Vec<Member>,
    /// How many members the room has now; sent in rooms whose `room_state` lists only some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<u32>,
}

impl Validate for Participants {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()?;
        validate::each("members", &self.members)?;
        member_count(self.member_count, self.members.len())
    }
}

/// A member count is at least the number of members listed beside it.
fn member_count(count: Option<u32>, listed: usize) -> Result<(), FieldError> {
    match count {
        Some(n) if (n as usize) < listed => Err(FieldError::new(
            "member_count",
            "is smaller than the number of members listed",
        )),
        _ => Ok(()),
    }
}

/// Why a member is no longer in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The member left.
    Left,
    /// The connection dropped and the resume window passed.
    Disconnected,
    /// A host, co-host or vote removed the member.
    Kicked,
}

/// A member left the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberLeft {
    /// The room.
    pub room: RoomId,
    /// Who left.
    pub member: MemberId,
    /// Why.
    pub reason: LeaveReason,
    /// The kicker's stated reason, shown to people (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Validate for MemberLeft {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()?;
        if let Some(m) = &self.message {
            validate::text("message", m, MAX_TEXT_CHARS)?;
        }
        Ok(())
    }
}

/// Why a room closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// A moderator closed it.
    Closed,
    /// It stayed empty or idle past the relay's expiry.
    Expired,
    /// The relay is shutting down and keeps no state.
    Shutdown,
}

/// The room is gone; its members are in no room now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomClosed {
    /// The room.
    pub room: RoomId,
    /// Why.
    pub reason: CloseReason,
}

impl Validate for RoomClosed {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()
    }
}

/// Remove a member from the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kick {
    /// Request id, echoed in the `ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// Who.
    pub member: MemberId,
    /// Shown to the room in `member_left.message`, at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Validate for Kick {
    fn validate(&self) -> Result<(), FieldError> {
        if let Some(r) = &self.reason {
            validate::text("reason", r, MAX_TEXT_CHARS)?;
        }
        Ok(())
    }
}

super::no_ranges!(LeaveRoom, ListRooms);
