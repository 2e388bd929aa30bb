//! Types shared by several messages: identifiers, roles, media, members, rooms, actions.
//!
//! Owns their wire shape and range rules; owns no behaviour.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::limits::{MAX_ID_BYTES, MAX_NAME_CHARS, MAX_TEXT_CHARS, MAX_URL_BYTES};
use crate::time::ServerTime;
use crate::validate::{self, Validate};

/// Largest integer every peer can represent exactly (JavaScript's `Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Correlates a client's request with the relay's `ack` or `error`. Chosen by the client.
pub type RequestId = u32;

/// A member of a room, unique on the relay for the life of the member's session (a resumed
/// session keeps it).
pub type MemberId = u32;

/// A proposal in a democratic room, unique within the room.
pub type ProposalId = u32;

/// A room's identifier: 1..=64 bytes of `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub String);

impl RoomId {
    /// Wraps a string (validated when a message holding it is encoded or decoded).
    pub fn new(id: impl Into<String>) -> Self {
        RoomId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Validate for RoomId {
    fn validate(&self) -> Result<(), FieldError> {
        validate::identifier("room", &self.0, MAX_ID_BYTES)
    }
}

pub(crate) fn server_time(field: &str, t: ServerTime) -> Result<(), FieldError> {
    if t.0 > MAX_SAFE_INTEGER {
        return Err(FieldError::new(field, "exceeds 2^53 - 1"));
    }
    Ok(())
}

pub(crate) fn safe_signed(field: &str, v: i64) -> Result<(), FieldError> {
    if v.unsigned_abs() > MAX_SAFE_INTEGER {
        return Err(FieldError::new(field, "exceeds +-(2^53 - 1)"));
    }
    Ok(())
}

/// What a member may do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Controls the room; one per room at most.
    Host,
    /// Controls the room alongside the host and takes over first when the host leaves.
    Cohost,
    /// Watches; controls only when the policy allows.
    Member,
}

/// How a member is connected to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// WebTransport over QUIC (datagrams for the fast path).
    Webtransport,
    /// The WebSocket fallback.
    Websocket,
}

/// Who decides what the room does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// The host and co-hosts control.
    #[default]
    Host,
    /// Members propose and vote.
    Democratic,
}

/// Which position a "resync everyone" moves the room to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResyncTarget {
    /// The median of members' reported positions: robust to one outlier.
    #[default]
    Median,
    /// The slowest member's position: nobody misses anything.
    Slowest,
}

/// What the room is watching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// Where to fetch it (checked against the relay's allowlist of hosts); absent for media each
    /// member brings (a local file, a Jellyfin item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What to show people, 1..=256 characters.
    pub title: String,
    /// Length in seconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// A Jellyfin item id (or another library's), 1..=64 bytes, when the media comes from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

impl Validate for Media {
    fn validate(&self) -> Result<(), FieldError> {
        if let Some(url) = &self.url {
            validate::token("url", url, MAX_URL_BYTES)?;
        }
        validate::name("title", &self.title, MAX_TEXT_CHARS)?;
        if let Some(d) = self.duration {
            validate::duration("duration", d)?;
        }
        if let Some(id) = &self.item_id {
            validate::token("item_id", id, MAX_ID_BYTES)?;
        }
        Ok(())
    }
}

/// One member as the rest of the room sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The member's id.
    pub id: MemberId,
    /// Display name, 1..=64 characters.
    pub name: String,
    /// The member's role.
    pub role: Role,
    /// How the member is connected.
    pub transport: Transport,
    /// Whether the member reported ready to play.
    pub ready: bool,
    /// Whether the member's player is buffering.
    pub buffering: bool,
    /// Whether play waits for this member (false when the member opted out).
    pub waited_for: bool,
}

impl Validate for Member {
    fn validate(&self) -> Result<(), FieldError> {
        validate::name("name", &self.name, MAX_NAME_CHARS)
    }
}

/// Per-room settings the host (or a moderator) may change; administration never goes to a
/// vote.
///
/// The defaults are what a room gets when `create_room` names none; a field missing on the
/// wire takes its default, so options added later do not break older senders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomOptions {
    /// Listed by `list_rooms`.
    pub public: bool,
    /// No new members may join.
    pub locked: bool,
    /// Host mode: everyone may control ("pass the remote").
    pub everyone_controls: bool,
    /// Democratic mode: any member's pause applies at once, without a vote.
    pub pause_without_vote: bool,
    /// Democratic mode: a proposal passes when yes votes exceed this percentage of the present
    /// voting members (0..=99; 50 is a strict majority).
    pub quorum_percent: u8,
    /// Democratic mode: at least this many yes votes are needed (at least 1; a relay counts at
    /// most the members present, so a small room is never stuck).
    pub min_voters: u32,
    /// Democratic mode: an undecided proposal expires after this long (1000..=600000 ms).
    pub proposal_timeout_ms: u32,
    /// Play waits at most this long for members to report ready (0..=120000 ms; 0: no wait).
    pub ready_timeout_ms: u32,
    /// A member who starts buffering pauses the room, for at most `ready_timeout_ms`.
    pub buffering_pauses_room: bool,
    /// The position "resync everyone" moves the room to.
    pub resync_target: ResyncTarget,
    /// After the host disconnects, control passes on after this long (0..=600000 ms).
    pub host_grace_ms: u32,
}

impl Default for RoomOptions {
    fn default() -> Self {
        RoomOptions {
            public: false,
            locked: false,
            everyone_controls: false,
            pause_without_vote: true,
            quorum_percent: 50,
            min_voters: 1,
            proposal_timeout_ms: 30_000,
            ready_timeout_ms: 5_000,
            buffering_pauses_room: false,
            resync_target: ResyncTarget::Median,
            host_grace_ms: 30_000,
        }
    }
}

impl Validate for RoomOptions {
    fn validate(&self) -> Result<(), FieldError> {
        if self.quorum_percent > 99 {
            return Err(FieldError::new("quorum_percent", "must be within 0..=99"));
        }
        if self.min_voters == 0 {
            return Err(FieldError::new("min_voters", "must be at least 1"));
        }
        if !(1_000..=600_000).contains(&self.proposal_timeout_ms) {
            return Err(FieldError::new(
                "proposal_timeout_ms",
                "must be within 1000..=600000",
            ));
        }
        if self.ready_timeout_ms > 120_000 {
            return Err(FieldError::new(
                "ready_timeout_ms",
                "must be within 0..=120000",
            ));
        }
        if self.host_grace_ms > 600_000 {
            return Err(FieldError::new(
                "host_grace_ms",
                "must be within 0..=600000",
            ));
        }
        Ok(())
    }
}

/// A room as its members see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// The room's id.
    pub id: RoomId,
    /// Display name, 1..=64 characters.
    pub name: String,
    /// Invite code that joins the room (sent to the host and co-hosts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
    /// Who decides.
    pub mode: PolicyMode,
    /// The host, if the room has one right now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<MemberId>,
    /// Whether joining needs a password.
    pub has_password: bool,
    /// Most members the room admits.
    pub capacity: u32,
    /// What the room is watching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// The room's settings.
    pub options: RoomOptions,
}

impl Validate for RoomInfo {
    fn validate(&self) -> Result<(), FieldError> {
        validate::identifier("id", self.id.as_str(), MAX_ID_BYTES)?;
        validate::name("name", &self.name, MAX_NAME_CHARS)?;
        if let Some(invite) = &self.invite {
            validate::identifier("invite", invite, MAX_ID_BYTES)?;
        }
        self.media.validate().map_err(|e| e.within("media"))?;
        self.options.validate().map_err(|e| e.within("options"))
    }
}

/// One line of the public room list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// The room's id.
    pub id: RoomId,
    /// Display name.
    pub name: String,
    /// Members present.
    pub members: u32,
    /// Most members the room admits.
    pub capacity: u32,
    /// Who decides.
    pub mode: PolicyMode,
    /// Whether joining needs a password.
    pub has_password: bool,
    /// Title of the media, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_title: Option<String>,
}

impl Validate for RoomSummary {
    fn validate(&self) -> Result<(), FieldError> {
        validate::identifier("id", self.id.as_str(), MAX_ID_BYTES)?;
        validate::name("name", &self.name, MAX_NAME_CHARS)?;
        if let Some(t) = &self.media_title {
            validate::name("media_title", t, MAX_TEXT_CHARS)?;
        }
        Ok(())
    }
}

/// Something a member asks the room to do; what a proposal proposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Start playback.
    Play,
    /// Pause playback.
    Pause,
    /// Jump to a position.
    Seek {
        /// Seconds.
        position: f64,
    },
    /// Change the group playback rate.
    SetRate {
        /// 0.25..=4.0.
        rate: f64,
    },
    /// Move every member back onto one position ("resync everyone").
    Resync,
    /// Switch the room's policy mode.
    SetMode {
        /// The new mode.
        mode: PolicyMode,
    },
    /// Remove a member.
    Kick {
        /// Who.
        member: MemberId,
    },
    /// Make another member the host.
    TransferHost {
        /// Who.
        to: MemberId,
    },
    /// Change what the room watches.
    SetMedia {
        /// The new media.
        media: Media,
    },
}

impl Validate for Action {
    fn validate(&self) -> Result<(), FieldError> {
        match self {
            Action::Seek { position } => validate::position("position", *position),
            Action::SetRate { rate } => validate::rate("rate", *rate),
            Action::SetMedia { media } => media.validate().map_err(|e| e.within("media")),
            Action::Play
            | Action::Pause
            | Action::Resync
            | Action::SetMode { .. }
            | Action::Kick { .. }
            | Action::TransferHost { .. } => Ok(()),
        }
    }
}

/// An open proposal in a democratic room, with its tally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposal's id.
    pub id: ProposalId,
    /// Who proposed it (counted as a yes vote).
    pub proposer: MemberId,
    /// What it would do.
    pub action: Action,
    /// Server time at which it expires undecided.
    pub deadline: ServerTime,
    /// Yes votes so far.
    pub yes: u32,
    /// No votes so far.
    pub no: u32,
    /// Yes votes needed to pass, with the members present now.
    pub needed: u32,
}

impl Validate for Proposal {
    fn validate(&self) -> Result<(), FieldError> {
        self.action.validate().map_err(|e| e.within("action"))?;
        server_time("deadline", self.deadline)
    }
}
