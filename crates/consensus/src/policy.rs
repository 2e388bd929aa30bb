//! The interface every consensus policy implements, and what it answers.
//!
//! Owns the contract between the room core and a policy: a request gets an immediate verdict;
//! votes, membership changes and time go in; proposal events come out through `poll_event`.
//! Implementations are plain state machines: no IO, no clock reads, deterministic.

use std::borrow::Cow;

use lockstep_proto::ErrorCode;
use lockstep_proto::ServerTime;
use lockstep_proto::message::{
    Action, MemberId, Outcome, PolicyMode, Proposal, ProposalId, RoomOptions,
};
use thiserror::Error;

use crate::roster::Roster;

/// What a policy sees of the room: its members and its settings.
#[derive(Debug, Clone, Copy)]
pub struct RoomView<'a> {
    /// The members.
    pub roster: &'a Roster,
    /// The room's settings.
    pub options: &'a RoomOptions,
}

/// A policy's answer to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The action has authority: apply it.
    Apply,
    /// The action is refused.
    Reject(Rejection),
    /// A proposal was opened for the action (it may already be decided: see the events).
    Propose(ProposalId),
}

/// Why a request or vote was refused: a wire error code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} ({code:?})")]
pub struct Rejection {
    /// The protocol's error code.
    pub code: ErrorCode,
    /// For people.
    pub message: Cow<'static, str>,
}

impl Rejection {
    /// A rejection with a fixed message.
    pub fn new(code: ErrorCode, message: &'static str) -> Self {
        Rejection {
            code,
            message: Cow::Borrowed(message),
        }
    }
}

/// What a policy reports about its proposals.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyEvent {
    /// A proposal opened.
    Opened(Proposal),
    /// An open proposal's tally changed (votes, or members present).
    Updated(Proposal),
    /// A proposal ended. When `outcome` is `Passed`, the action has authority: apply it.
    Decided {
        /// The proposal as it ended, with its final tally.
        proposal: Proposal,
        /// How.
        outcome: Outcome,
    },
}

/// A way of deciding who may do what in a room.
pub trait Policy: std::fmt::Debug + Send {
    /// The mode this policy implements.
    fn mode(&self) -> PolicyMode;

    /// Decides about `from`'s request for `action`. `from` is a present member and the
    /// action's targets exist (the room core checks both first).
    fn request(
        &mut self,
        room: RoomView<'_>,
        from: MemberId,
        action: &Action,
        now: ServerTime,
    ) -> Verdict;

    /// Takes `from`'s vote on a proposal.
    fn vote(
        &mut self,
        room: RoomView<'_>,
        from: MemberId,
        proposal: ProposalId,
        yes: bool,
        now: ServerTime,
    ) -> Result<(), Rejection>;

    /// Members joined, left, connected or disconnected, or the settings changed; `gone` is a
    /// member no longer present (its votes no longer count).
    fn membership_changed(&mut self, room: RoomView<'_>, gone: Option<MemberId>, now: ServerTime);

    /// The next time `handle_timeout` must be called, if any.
    fn poll_timeout(&self) -> Option<ServerTime>;

    /// Lets time pass up to `now`.
    fn handle_timeout(&mut self, room: RoomView<'_>, now: ServerTime);

    /// The next event, if any.
    fn poll_event(&mut self) -> Option<PolicyEvent>;

    /// The proposals open now.
    fn open_proposals(&self) -> Vec<Proposal>;

    /// Ends every open proposal as withdrawn (the room switches away from this policy).
    fn withdraw_all(&mut self);

    /// The id the next proposal gets, so ids stay unique across mode switches.
    fn next_proposal_id(&self) -> ProposalId;

    /// The open proposals with every vote, for a snapshot of the room.
    fn snapshot_proposals(&self) -> Vec<crate::snapshot::ProposalSnapshot> {
        Vec::new()
    }
}

/// Whether an action is a playback command ("the remote").
pub fn is_playback(action: &Action) -> bool {
    matches!(
        action,
        Action::Play
            | Action::Pause
            | Action::Seek { .. }
            | Action::SetRate { .. }
            | Action::Resync
    )
}
