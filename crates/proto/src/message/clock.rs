//! Clock and statistics messages: the four-timestamp exchange and members' sync figures.
//!
//! These are datagram-class: lost ones are simply not answered or replaced by the next.

use serde::{Deserialize, Serialize};

use super::common::{MemberId, RoomId, safe_signed, server_time};
use crate::error::FieldError;
use crate::time::ServerTime;
use crate::validate::{self, Validate};

/// Clock probe from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    /// Chosen by the client to match the pong.
    pub seq: u32,
    /// Client monotonic time at sending, microseconds.
    pub t0: u64,
}

impl Validate for Ping {
    fn validate(&self) -> Result<(), FieldError> {
        server_time("t0", ServerTime(self.t0))
    }
}

/// The relay's answer to a ping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's `seq`.
    pub seq: u32,
    /// The ping's `t0`, echoed.
    pub t0: u64,
    /// Relay time the ping arrived.
    pub t1: ServerTime,
    /// Relay time the pong left.
    pub t2: ServerTime,
}

impl Validate for Pong {
    fn validate(&self) -> Result<(), FieldError> {
        server_time("t0", ServerTime(self.t0))?;
        server_time("t1", self.t1)?;
        server_time("t2", self.t2)
    }
}

/// A member's own sync figures, reported periodically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Best recent round-trip time, microseconds.
    pub rtt_us: u32,
    /// Estimated `server - client` clock offset, microseconds.
    pub offset_us: i64,
    /// Bound on the offset's error (half the best sample's RTT), microseconds.
    pub offset_error_us: u32,
    /// Player position minus where the timeline says it should be, microseconds (positive:
    /// ahead).
    pub drift_us: i64,
    /// The player's position, seconds, measured at `at` (used to pick a resync target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<f64>,
    /// Server time (as the client estimates it) at which `position` was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<ServerTime>,
}

impl Validate for Stats {
    fn validate(&self) -> Result<(), FieldError> {
        safe_signed("offset_us", self.offset_us)?;
        safe_signed("drift_us", self.drift_us)?;
        if let Some(p) = self.position {
            validate::position("position", p)?;
        }
        if let Some(at) = self.at {
            server_time("at", at)?;
        }
        if self.position.is_some() != self.at.is_some() {
            return Err(FieldError::new("position", "and `at` come together"));
        }
        Ok(())
    }
}

/// One member's figures as the room sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStat {
    /// The member.
    pub member: MemberId,
    /// Best recent round-trip time, microseconds.
    pub rtt_us: u32,
    /// Estimated clock offset, microseconds.
    pub offset_us: i64,
    /// Bound on the offset's error, microseconds.
    pub offset_error_us: u32,
    /// Player drift from the timeline, microseconds (positive: ahead).
    pub drift_us: i64,
}

impl Validate for MemberStat {
    fn validate(&self) -> Result<(), FieldError> {
        safe_signed("offset_us", self.offset_us)?;
        safe_signed("drift_us", self.drift_us)
    }
}

/// Members' sync figures, so clients can show who is lagging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStats {
    /// The room.
    pub room: RoomId,
    /// One entry per member with fresh figures.
    pub members: Vec<MemberStat>,
}

impl Validate for MemberStats {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()?;
        validate::each("members", &self.members)
    }
}
