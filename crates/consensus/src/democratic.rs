//! Democratic-quorum policy: members propose, the room votes.
//!
//! Owns the open proposals and their tallies. One proposal per kind of action is open at a
//! time (a newer seek supersedes an older one; other kinds are refused while one is open). A
//! vote costs O(1) whatever the room's size: tallies are kept as counts and votes in a hash
//! map, and the members present are counted by the roster.

use std::collections::{HashMap, VecDeque};

use lockstep_proto::message::{Action, MemberId, Outcome, PolicyMode, Proposal, ProposalId, Role};
use lockstep_proto::{ErrorCode, ServerTime};

use crate::policy::{Policy, PolicyEvent, Rejection, RoomView, Verdict};
use crate::quorum::{Quorum, Standing};
use crate::roster::FixedState;
use crate::snapshot::ProposalSnapshot;

/// The kinds of action; one proposal per kind may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// `play`
    Play,
    /// `pause`
    Pause,
    /// `seek`
    Seek,
    /// `set_rate`
    SetRate,
    /// `resync`
    Resync,
    /// `set_mode`
    SetMode,
    /// `kick`
    Kick,
    /// `transfer_host`
    TransferHost,
    /// `set_media`
    SetMedia,
}

impl ActionKind {
    /// The kind of an action.
    pub fn of(action: &Action) -> ActionKind {
        match action {
            Action::Play => ActionKind::Play,
            Action::Pause => ActionKind::Pause,
            Action::Seek { .. } => ActionKind::Seek,
            Action::SetRate { .. } => ActionKind::SetRate,
            Action::Resync => ActionKind::Resync,
            Action::SetMode { .. } => ActionKind::SetMode,
            Action::Kick { .. } => ActionKind::Kick,
            Action::TransferHost { .. } => ActionKind::TransferHost,
            Action::SetMedia { .. } => ActionKind::SetMedia,
        }
    }
}

#[derive(Debug, Clone)]
struct Open {
    proposal: Proposal,
    kind: ActionKind,
    votes: HashMap<MemberId, bool, FixedState>,
}

/// The democratic-quorum policy.
#[derive(Debug, Clone, Default)]
pub struct DemocraticPolicy {
    /// At most one per kind, in the order they opened.
    open: Vec<Open>,
    next_id: ProposalId,
    events: VecDeque<PolicyEvent>,
}

impl DemocraticPolicy {
    /// A democratic policy whose first proposal gets id `next_proposal`.
    pub fn new(next_proposal: ProposalId) -> Self {
        DemocraticPolicy {
            open: Vec::new(),
            next_id: next_proposal,
            events: VecDeque::new(),
        }
    }

    /// A democratic policy carrying on with these open proposals (from a snapshot).
    pub fn restore(next_proposal: ProposalId, proposals: Vec<ProposalSnapshot>) -> Self {
        DemocraticPolicy {
            open: proposals
                .into_iter()
                .map(|p| Open {
                    kind: ActionKind::of(&p.proposal.action),
                    votes: p.votes.into_iter().collect(),
                    proposal: p.proposal,
                })
                .collect(),
            next_id: next_proposal,
            events: VecDeque::new(),
        }
    }

    /// Ends the proposal at `index` with `outcome`.
    fn decide(&mut self, index: usize, outcome: Outcome) {
        let open = self.open.remove(index);
        self.events.push_back(PolicyEvent::Decided {
            proposal: open.proposal,
            outcome,
        });
    }

    /// Re-counts the proposal at `index` against the members present; decides it when it
    /// passed or can no longer pass. Returns whether it is still open.
    fn settle(&mut self, index: usize, room: RoomView<'_>, announce_change: bool) -> bool {
        let quorum = Quorum::from_options(room.options);
        let voters = room.roster.present();
        let open = &mut self.open[index];
        let needed = quorum.needed(voters);
        let changed = open.proposal.needed != needed;
        open.proposal.needed = needed;
        match quorum.standing(open.proposal.yes, open.proposal.no, voters) {
            Standing::Passed => {
                self.decide(index, Outcome::Passed);
                false
            }
            Standing::Rejected => {
                self.decide(index, Outcome::Rejected);
                false
            }
            Standing::Open => {
                if announce_change || changed {
                    self.events
                        .push_back(PolicyEvent::Updated(open.proposal.clone()));
                }
                true
            }
        }
    }
}

/// The member an action is aimed at, if any: a proposal about a member who left is moot.
fn target(action: &Action) -> Option<MemberId> {
    match action {
        Action::Kick { member } => Some(*member),
        Action::TransferHost { to } => Some(*to),
        _ => None,
    }
}

impl Policy for DemocraticPolicy {
    fn mode(&self) -> PolicyMode {
        PolicyMode::Democratic
    }

    fn request(
        &mut self,
        room: RoomView<'_>,
        from: MemberId,
        action: &Action,
        now: ServerTime,
    ) -> Verdict {
        let Some(member) = room.roster.get(from) else {
            return Verdict::Reject(Rejection::new(ErrorCode::NotInRoom, "not in this room"));
        };
        match action {
            Action::SetMode {
                mode: PolicyMode::Democratic,
            } => {
                return Verdict::Reject(Rejection::new(
                    ErrorCode::InvalidState,
                    "the room is already democratic",
                ));
            }
            // A moderator may end a democratic room's vote at once.
            Action::SetMode { .. } if member.moderator => return Verdict::Apply,
            // The host may hand over at any time, whatever the mode.
            Action::TransferHost { .. } if member.role == Role::Host || member.moderator => {
                return Verdict::Apply;
            }
            // Someone has to step away: pausing needs no vote unless the room says so.
            Action::Pause if room.options.pause_without_vote => return Verdict::Apply,
            _ => {}
        }
        let kind = ActionKind::of(action);
        if let Some(index) = self.open.iter().position(|o| o.kind == kind) {
            if kind != ActionKind::Seek {
                return Verdict::Reject(Rejection::new(
                    ErrorCode::ProposalPending,
                    "a proposal of this kind is already open; vote on it first",
                ));
            }
            self.decide(index, Outcome::Superseded);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let timeout = i64::from(room.options.proposal_timeout_ms) * 1_000;
        let mut votes = HashMap::default();
        votes.insert(from, true);
        let proposal = Proposal {
            id,
            proposer: from,
            action: action.clone(),
            deadline: now.add_micros(timeout),
            yes: 1,
            no: 0,
            needed: Quorum::from_options(room.options).needed(room.roster.present()),
        };
        self.events.push_back(PolicyEvent::Opened(proposal.clone()));
        self.open.push(Open {
            proposal,
            kind,
            votes,
        });
        // A room of one (or a low quorum) decides at once.
        self.settle(self.open.len() - 1, room, false);
        Verdict::Propose(id)
    }

    fn vote(
        &mut self,
        room: RoomView<'_>,
        from: MemberId,
        proposal: ProposalId,
        yes: bool,
        _now: ServerTime,
    ) -> Result<(), Rejection> {
        let Some(index) = self.open.iter().position(|o| o.proposal.id == proposal) else {
            return Err(Rejection::new(
                ErrorCode::ProposalClosed,
                "no open proposal has this id",
            ));
        };
        if !room.roster.is_present(from) {
            return Err(Rejection::new(
                ErrorCode::Forbidden,
                "only members present in the room may vote",
            ));
        }
        let open = &mut self.open[index];
        match open.votes.insert(from, yes) {
            Some(previous) if previous == yes => return Ok(()),
            Some(previous) => {
                let (was, now_count) = if previous {
                    (&mut open.proposal.yes, &mut open.proposal.no)
                } else {
                    (&mut open.proposal.no, &mut open.proposal.yes)
                };
                *was = was.saturating_sub(1);
                *now_count = now_count.saturating_add(1);
            }
            None => {
                let count = if yes {
                    &mut open.proposal.yes
                } else {
                    &mut open.proposal.no
                };
                *count = count.saturating_add(1);
            }
        }
        self.settle(index, room, true);
        Ok(())
    }

    fn membership_changed(&mut self, room: RoomView<'_>, gone: Option<MemberId>, _now: ServerTime) {
        let mut index = 0;
        while index < self.open.len() {
            if let Some(gone) = gone {
                let open = &mut self.open[index];
                // The proposer gone, or the member the action is about has left the room (not
                // merely dropped: a brief disconnect must not dodge a kick vote).
                let target_left = target(&open.proposal.action)
                    .is_some_and(|t| t == gone && room.roster.get(t).is_none());
                if open.proposal.proposer == gone || target_left {
                    self.decide(index, Outcome::Withdrawn);
                    continue;
                }
                let changed = match open.votes.remove(&gone) {
                    Some(true) => {
                        open.proposal.yes = open.proposal.yes.saturating_sub(1);
                        true
                    }
                    Some(false) => {
                        open.proposal.no = open.proposal.no.saturating_sub(1);
                        true
                    }
                    None => false,
                };
                if self.settle(index, room, changed) {
                    index += 1;
                }
            } else if self.settle(index, room, false) {
                index += 1;
            }
        }
    }

    fn poll_timeout(&self) -> Option<ServerTime> {
        self.open.iter().map(|o| o.proposal.deadline).min()
    }

    fn handle_timeout(&mut self, _room: RoomView<'_>, now: ServerTime) {
        let mut index = 0;
        while index < self.open.len() {
            if self.open[index].proposal.deadline <= now {
                self.decide(index, Outcome::Expired);
            } else {
                index += 1;
            }
        }
    }

    fn poll_event(&mut self) -> Option<PolicyEvent> {
        self.events.pop_front()
    }

    fn open_proposals(&self) -> Vec<Proposal> {
        self.open.iter().map(|o| o.proposal.clone()).collect()
    }

    fn withdraw_all(&mut self) {
        while !self.open.is_empty() {
            self.decide(0, Outcome::Withdrawn);
        }
    }

    fn next_proposal_id(&self) -> ProposalId {
        self.next_id
    }

    fn snapshot_proposals(&self) -> Vec<ProposalSnapshot> {
        self.open
            .iter()
            .map(|o| {
                let mut votes: Vec<(MemberId, bool)> =
                    o.votes.iter().map(|(m, y)| (*m, *y)).collect();
                votes.sort_unstable();
                ProposalSnapshot {
                    proposal: o.proposal.clone(),
                    votes,
                }
            })
            .collect()
    }
}
