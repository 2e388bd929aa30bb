//! Playback messages: the commands members issue, the timeline the relay announces, and
//! readiness and buffering reports.

use serde::{Deserialize, Serialize};

use super::common::{MemberId, RequestId, RoomId, server_time};
use crate::error::FieldError;
use crate::timeline::Timeline;
use crate::validate::{self, Validate};

pub(crate) fn timeline(field: &str, t: &Timeline) -> Result<(), FieldError> {
    let inner = || -> Result<(), FieldError> {
        validate::position("position", t.position)?;
        validate::rate("rate", t.rate)?;
        server_time("at", t.at)?;
        if t.seq > super::common::MAX_SAFE_INTEGER {
            return Err(FieldError::new("seq", "exceeds 2^53 - 1"));
        }
        Ok(())
    };
    inner().map_err(|e| e.within(field))
}

/// Start playback for the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Play {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
}

/// Pause playback for the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
}

/// Move the room to a position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seek {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// Seconds, 0..=10000000.
    pub position: f64,
}

impl Validate for Seek {
    fn validate(&self) -> Result<(), FieldError> {
        validate::position("position", self.position)
    }
}

/// Change the room's playback rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRate {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// 0.25..=4.0.
    pub rate: f64,
}

impl Validate for SetRate {
    fn validate(&self) -> Result<(), FieldError> {
        validate::rate("rate", self.rate)
    }
}

/// Move everyone back onto one position ("resync everyone").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resync {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
}

/// Why the timeline in a `state_update` is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineReason {
    /// A play command.
    Play,
    /// A pause command.
    Pause,
    /// A seek command.
    Seek,
    /// A rate change.
    Rate,
    /// A resync.
    Resync,
    /// Play began after waiting for members to be ready (or the wait timed out).
    Ready,
    /// A member's buffering paused or resumed the room.
    Buffering,
    /// The media changed: a new timeline, paused at zero.
    Media,
    /// Nothing changed: the relay repeats the current timeline.
    Repeat,
}

/// The room's timeline: sent on every change and repeated periodically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateUpdate {
    /// The room.
    pub room: RoomId,
    /// The timeline; `at` is when it takes effect.
    pub timeline: Timeline,
    /// Why it changed.
    pub reason: TimelineReason,
    /// The member whose command or state caused it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<MemberId>,
}

impl Validate for StateUpdate {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()?;
        timeline("timeline", &self.timeline)
    }
}

/// The member's player is (or is no longer) ready to play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// Ready or not.
    pub ready: bool,
    /// Whether play should wait for this member (default true).
    #[serde(default = "yes")]
    pub wait_for_me: bool,
}

fn yes() -> bool {
    true
}

/// The member's player started buffering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferingStart {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// Where the player stands, seconds.
    pub position: f64,
}

impl Validate for BufferingStart {
    fn validate(&self) -> Result<(), FieldError> {
        validate::position("position", self.position)
    }
}

/// The member's player stopped buffering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferingEnd {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// Where the player stands, seconds.
    pub position: f64,
}

impl Validate for BufferingEnd {
    fn validate(&self) -> Result<(), FieldError> {
        validate::position("position", self.position)
    }
}

super::no_ranges!(Play, Pause, Resync, Ready);
