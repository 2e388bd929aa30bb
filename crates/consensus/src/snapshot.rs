//! A room's control state as data: taken by the relay that holds the room, stored where the
//! others can read it, and restored by the relay that takes the room over when the first one
//! is gone.
//!
//! Owns what must survive a move: members in join order with their roles, presence and
//! readiness, the host, the settings, the mode, the open proposals with every vote, the
//! pending play, the buffering hold and the host's grace period. Not the queued outputs: a
//! snapshot is taken after they were handled. The counts the policies read are recomputed
//! on restore, never stored.

use lockstep_proto::ServerTime;
use lockstep_proto::message::{MemberId, PolicyMode, Proposal, ProposalId, RoomOptions};
use serde::{Deserialize, Serialize};

use crate::roster::MemberState;

/// Everything a room's control needs to carry on elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlSnapshot {
    /// The members, in join order.
    pub members: Vec<MemberState>,
    /// The join-order number the next member gets.
    pub next_join: u64,
    /// The host, if any.
    pub host: Option<MemberId>,
    /// The settings.
    pub options: RoomOptions,
    /// The active mode.
    pub mode: PolicyMode,
    /// The id the next proposal gets.
    pub next_proposal: ProposalId,
    /// Open proposals with their votes, in the order they opened (democratic mode).
    pub proposals: Vec<ProposalSnapshot>,
    /// Whether playback is paused as far as the applied actions go.
    pub paused: bool,
    /// A play waiting for ready members: who asked (none for a passed proposal's proposer
    /// already recorded) and until when it waits.
    pub pending_play: Option<PendingPlaySnapshot>,
    /// Until when the room is held for a buffering member.
    pub buffering_hold: Option<ServerTime>,
    /// A disconnected host keeping its role until then.
    pub host_grace: Option<(MemberId, ServerTime)>,
}

/// An open proposal and its votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalSnapshot {
    /// The proposal as last announced.
    pub proposal: Proposal,
    /// Every vote cast, by member id.
    pub votes: Vec<(MemberId, bool)>,
}

/// A play waiting for ready members.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PendingPlaySnapshot {
    /// Who asked.
    pub by: Option<MemberId>,
    /// Until when it waits.
    pub until: ServerTime,
}

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("room snapshot: {0}")]
pub struct SnapshotError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoomControl;
    use lockstep_proto::message::{Action, Role};

    fn t(ms: i64) -> ServerTime {
        ServerTime::from_micros(1_000_000).add_micros(ms * 1_000)
    }

    #[test]
    fn inconsistent_snapshots_are_refused() {
        let mut room = RoomControl::new(1, false, PolicyMode::Democratic, RoomOptions::default());
        room.join(2, false, t(0));
        room.join(3, false, t(0));
        room.request(2, Action::Seek { position: 30.0 }, t(1));
        let good = room.snapshot();
        assert_eq!(good.proposals.len(), 1, "{good:?}");
        assert!(RoomControl::restore(good.clone()).is_ok());

        let mut s = good.clone();
        s.host = Some(9);
        assert!(RoomControl::restore(s).is_err(), "host not a member");
        let mut s = good.clone();
        s.members[1].id = s.members[2].id;
        assert!(RoomControl::restore(s).is_err(), "the same member twice");
        let mut s = good.clone();
        s.members[1].role = Role::Host;
        assert!(RoomControl::restore(s).is_err(), "two hosts");
        let mut s = good.clone();
        s.next_join = 1;
        assert!(
            RoomControl::restore(s).is_err(),
            "join numbers past the next"
        );
        let mut s = good.clone();
        s.proposals[0].votes.push((42, true));
        assert!(RoomControl::restore(s).is_err(), "a stranger's vote");
        let mut s = good.clone();
        s.next_proposal = s.proposals[0].proposal.id;
        assert!(
            RoomControl::restore(s).is_err(),
            "a proposal id not yet given"
        );
        let mut s = good;
        s.mode = PolicyMode::Host;
        let e = RoomControl::restore(s).unwrap_err();
        assert!(e.to_string().contains("host mode"), "{e}");
    }
}
