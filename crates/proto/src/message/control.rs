//! Control messages: who may control the room, and the democratic mode's proposals and votes.

use serde::{Deserialize, Serialize};

use super::common::{Action, MemberId, PolicyMode, Proposal, ProposalId, RequestId, Role, RoomId};
use crate::error::FieldError;
use crate::validate::Validate;

/// Switch the room's policy mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetMode {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// The new mode.
    pub mode: PolicyMode,
}

/// The room's policy mode changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeChanged {
    /// The room.
    pub room: RoomId,
    /// The new mode.
    pub mode: PolicyMode,
    /// Who switched it (absent when a proposal passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<MemberId>,
}

impl Validate for ModeChanged {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()
    }
}

/// Make another member the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferHost {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// The new host.
    pub to: MemberId,
}

/// Make a member a co-host, or a plain member again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRole {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// Who.
    pub member: MemberId,
    /// `cohost` or `member` (`host` goes through `transfer_host`).
    pub role: Role,
}

impl Validate for SetRole {
    fn validate(&self) -> Result<(), FieldError> {
        if self.role == Role::Host {
            return Err(FieldError::new(
                "role",
                "must be cohost or member; use transfer_host",
            ));
        }
        Ok(())
    }
}

/// Why the host changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostChangeReason {
    /// The host (or a passed proposal) handed over.
    Transferred,
    /// The host left, was kicked, or stayed disconnected past the grace period.
    HostLeft,
}

/// The room has a new host (or none, in democratic mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostChanged {
    /// The room.
    pub room: RoomId,
    /// The new host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<MemberId>,
    /// The previous host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<MemberId>,
    /// Why.
    pub reason: HostChangeReason,
}

impl Validate for HostChanged {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()
    }
}

/// A proposal opened, or its tally changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalUpdate {
    /// The room.
    pub room: RoomId,
    /// The proposal with its tally now.
    pub proposal: Proposal,
}

impl Validate for ProposalUpdate {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()?;
        self.proposal.validate().map_err(|e| e.within("proposal"))
    }
}

/// Vote on an open proposal. A member's later vote replaces its earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// Request id, echoed in the `ack` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<RequestId>,
    /// The proposal.
    pub proposal: ProposalId,
    /// For or against.
    pub yes: bool,
}

/// How a proposal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Reached quorum; the action is applied.
    Passed,
    /// Can no longer reach quorum.
    Rejected,
    /// The deadline passed undecided.
    Expired,
    /// A newer proposal of the same kind replaced it.
    Superseded,
    /// The proposer left or disconnected, the member the action is about left the room, or
    /// the mode changed.
    Withdrawn,
}

/// A proposal was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The room.
    pub room: RoomId,
    /// The proposal.
    pub proposal: ProposalId,
    /// How it ended.
    pub outcome: Outcome,
    /// What it proposed.
    pub action: Action,
}

impl Validate for Decision {
    fn validate(&self) -> Result<(), FieldError> {
        self.room.validate()?;
        self.action.validate().map_err(|e| e.within("action"))
    }
}

super::no_ranges!(SetMode, TransferHost, Vote);
