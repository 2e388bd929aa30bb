//! Host-authoritative policy: the host and co-hosts control, as in a living room with one
//! remote.
//!
//! Owns the authority table of host mode. Host succession and grace periods are the room
//! control's (they apply in every mode); this policy only answers who may act.

use lockstep_proto::message::{Action, MemberId, PolicyMode, Proposal, ProposalId, Role};
use lockstep_proto::{ErrorCode, ServerTime};

use crate::policy::{Policy, PolicyEvent, Rejection, RoomView, Verdict, is_playback};

/// The host-authoritative policy.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    next_proposal: ProposalId,
}

impl HostPolicy {
    /// A host policy; `next_proposal` keeps proposal ids unique across mode switches.
    pub fn new(next_proposal: ProposalId) -> Self {
        HostPolicy { next_proposal }
    }
}

impl Policy for HostPolicy {
    fn mode(&self) -> PolicyMode {
        PolicyMode::Host
    }

    fn request(
        &mut self,
        room: RoomView<'_>,
        from: MemberId,
        action: &Action,
        _now: ServerTime,
    ) -> Verdict {
        let Some(member) = room.roster.get(from) else {
            return Verdict::Reject(Rejection::new(ErrorCode::NotInRoom, "not in this room"));
        };
        let host = member.role == Role::Host || member.moderator;
        let controller = host || member.role == Role::Cohost;
        let allowed = match action {
            Action::SetMode {
                mode: PolicyMode::Host,
            } => {
                return Verdict::Reject(Rejection::new(
                    ErrorCode::InvalidState,
                    "the room is already in host mode",
                ));
            }
            // Switching to democratic and handing over are the host's own decisions.
            Action::SetMode { .. } | Action::TransferHost { .. } => host,
            // Only a moderator removes the host.
            Action::Kick { member: target } if Some(*target) == room.roster.host() => {
                member.moderator
            }
            Action::Kick { .. } | Action::SetMedia { .. } => controller,
            a if is_playback(a) => controller || room.options.everyone_controls,
            _ => controller,
        };
        if allowed {
            Verdict::Apply
        } else if is_playback(action) {
            Verdict::Reject(Rejection::new(
                ErrorCode::Forbidden,
                "only the host and co-hosts control playback in this room; ask the host to pass the remote",
            ))
        } else {
            Verdict::Reject(Rejection::new(
                ErrorCode::Forbidden,
                "only the host may do this in a host-mode room",
            ))
        }
    }

    fn vote(
        &mut self,
        _room: RoomView<'_>,
        _from: MemberId,
        _proposal: ProposalId,
        _yes: bool,
        _now: ServerTime,
    ) -> Result<(), Rejection> {
        Err(Rejection::new(
            ErrorCode::ProposalClosed,
            "host-mode rooms have no proposals",
        ))
    }

    fn membership_changed(&mut self, _: RoomView<'_>, _: Option<MemberId>, _: ServerTime) {}

    fn poll_timeout(&self) -> Option<ServerTime> {
        None
    }

    fn handle_timeout(&mut self, _: RoomView<'_>, _: ServerTime) {}

    fn poll_event(&mut self) -> Option<PolicyEvent> {
        None
    }

    fn open_proposals(&self) -> Vec<Proposal> {
        Vec::new()
    }

    fn withdraw_all(&mut self) {}

    fn next_proposal_id(&self) -> ProposalId {
        self.next_proposal
    }
}
