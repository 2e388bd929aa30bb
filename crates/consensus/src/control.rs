//! `RoomControl`: the one object a room core consults for every action, vote and membership
//! change.
//!
//! Owns what holds in every mode: the roster and its roles, host succession with a grace
//! period, switching the policy live, and the bounded waits (play waits for ready members,
//! a buffering member may pause the room). Delegates "who may do what" to the active
//! [`Policy`]. Sans-IO in the shape of str0m's `Rtc`: inputs are method calls carrying the
//! current time, outputs are drained with [`RoomControl::poll_output`], timers are
//! [`RoomControl::poll_timeout`] / [`RoomControl::handle_timeout`].

use std::collections::VecDeque;

use lockstep_proto::message::{
    Action, HostChangeReason, MemberId, PolicyMode, Proposal, ProposalId, ResyncTarget, Role,
    RoomOptions,
};
use lockstep_proto::{ErrorCode, ServerTime, Timeline};

use crate::democratic::DemocraticPolicy;
use crate::host::HostPolicy;
use crate::policy::{Policy, PolicyEvent, Rejection, RoomView, Verdict};
use crate::roster::Roster;
use crate::snapshot::{ControlSnapshot, PendingPlaySnapshot, SnapshotError};

/// Why an action is applied now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A member with authority asked for it.
    Command,
    /// A proposal passed.
    Proposal(ProposalId),
    /// Play started after waiting for members to be ready (or the wait ran out).
    Ready,
    /// A member's buffering paused the room, or the room resumes after it.
    Buffering,
}

/// What the room core must do or announce. Drained with [`RoomControl::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Apply this action: schedule playback commands on the timeline (`resync` at
    /// [`RoomControl::resync_target`]), change the media, or remove a kicked member (already
    /// gone from the roster).
    Apply {
        /// The action.
        action: Action,
        /// Who asked, proposed, or caused it.
        by: Option<MemberId>,
        /// Why now.
        cause: Cause,
    },
    /// A play is accepted but waits until the members it waits for are ready, or `until`.
    WaitingForReady {
        /// When play starts regardless.
        until: ServerTime,
        /// Present members play still waits for.
        waiting_for: u32,
    },
    /// A proposal opened, changed or ended.
    Proposal(PolicyEvent),
    /// The room's policy mode changed.
    ModeChanged {
        /// The new mode.
        mode: PolicyMode,
        /// Who switched it (absent when a proposal passed).
        by: Option<MemberId>,
    },
    /// The host changed.
    HostChanged {
        /// The new host (absent: nobody is present to take over).
        host: Option<MemberId>,
        /// The previous host.
        previous: Option<MemberId>,
        /// Why.
        reason: HostChangeReason,
    },
    /// A member became a co-host or a plain member.
    RoleChanged {
        /// Who.
        member: MemberId,
        /// The new role.
        role: Role,
    },
}

#[derive(Debug, Clone, Copy)]
struct PendingPlay {
    by: Option<MemberId>,
    until: ServerTime,
}

/// A room's control state.
#[derive(Debug)]
pub struct RoomControl {
    roster: Roster,
    options: RoomOptions,
    policy: Box<dyn Policy>,
    paused: bool,
    pending_play: Option<PendingPlay>,
    buffering_hold: Option<ServerTime>,
    host_grace: Option<(MemberId, ServerTime)>,
    outputs: VecDeque<Output>,
}

fn policy_for(mode: PolicyMode, next_proposal: ProposalId) -> Box<dyn Policy> {
    match mode {
        PolicyMode::Host => Box::new(HostPolicy::new(next_proposal)),
        PolicyMode::Democratic => Box::new(DemocraticPolicy::new(next_proposal)),
    }
}

fn millis(ms: u32) -> i64 {
    i64::from(ms) * 1_000
}

/// Calls the active policy with a view of the room (a macro so the borrows of the roster,
/// the options and the policy stay disjoint).
macro_rules! with_policy {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        $self.policy.$method(
            RoomView { roster: &$self.roster, options: &$self.options },
            $($arg),*
        )
    };
}

impl RoomControl {
    /// A new room: `creator` is its host, playback is paused.
    pub fn new(
        creator: MemberId,
        creator_is_moderator: bool,
        mode: PolicyMode,
        options: RoomOptions,
    ) -> Self {
        let mut roster = Roster::new();
        roster.add(creator, creator_is_moderator);
        roster.set_host(creator);
        RoomControl {
            roster,
            options,
            policy: policy_for(mode, 1),
            paused: true,
            pending_play: None,
            buffering_hold: None,
            host_grace: None,
            outputs: VecDeque::new(),
        }
    }

    /// A room nobody has joined yet (created through an API): whoever joins first becomes
    /// its host.
    pub fn new_empty(mode: PolicyMode, options: RoomOptions) -> Self {
        RoomControl {
            roster: Roster::new(),
            options,
            policy: policy_for(mode, 1),
            paused: true,
            pending_play: None,
            buffering_hold: None,
            host_grace: None,
            outputs: VecDeque::new(),
        }
    }

    /// The room's control state as data (see [`crate::snapshot`]). Take it after the
    /// outputs were handled: queued outputs are not part of it.
    pub fn snapshot(&self) -> ControlSnapshot {
        ControlSnapshot {
            members: self.roster.in_join_order().cloned().collect(),
            next_join: self.roster.next_join(),
            host: self.roster.host(),
            options: self.options.clone(),
            mode: self.policy.mode(),
            next_proposal: self.policy.next_proposal_id(),
            proposals: self.policy.snapshot_proposals(),
            paused: self.paused,
            pending_play: self.pending_play.as_ref().map(|p| PendingPlaySnapshot {
                by: p.by,
                until: p.until,
            }),
            buffering_hold: self.buffering_hold,
            host_grace: self.host_grace,
        }
    }

    /// A room's control carrying on from `snapshot`: the same inputs from here give the same
    /// outputs as the room the snapshot was taken of. Refuses an inconsistent snapshot.
    pub fn restore(snapshot: ControlSnapshot) -> Result<Self, SnapshotError> {
        let roster = Roster::restore(snapshot.members, snapshot.next_join, snapshot.host)?;
        let policy: Box<dyn Policy> = match snapshot.mode {
            PolicyMode::Host if snapshot.proposals.is_empty() => {
                Box::new(HostPolicy::new(snapshot.next_proposal))
            }
            PolicyMode::Host => {
                return Err(SnapshotError("proposals open in host mode".into()));
            }
            PolicyMode::Democratic => {
                for p in &snapshot.proposals {
                    if p.proposal.id >= snapshot.next_proposal {
                        return Err(SnapshotError(format!(
                            "proposal {} not below the next id {}",
                            p.proposal.id, snapshot.next_proposal
                        )));
                    }
                    if let Some((voter, _)) = p.votes.iter().find(|(v, _)| roster.get(*v).is_none())
                    {
                        return Err(SnapshotError(format!(
                            "proposal {} has a vote by {voter}, not a member",
                            p.proposal.id
                        )));
                    }
                }
                Box::new(DemocraticPolicy::restore(
                    snapshot.next_proposal,
                    snapshot.proposals,
                ))
            }
        };
        Ok(RoomControl {
            roster,
            options: snapshot.options,
            policy,
            paused: snapshot.paused,
            pending_play: snapshot.pending_play.map(|p| PendingPlay {
                by: p.by,
                until: p.until,
            }),
            buffering_hold: snapshot.buffering_hold,
            host_grace: snapshot.host_grace,
            outputs: VecDeque::new(),
        })
    }

    /// The active mode.
    pub fn mode(&self) -> PolicyMode {
        self.policy.mode()
    }

    /// The members.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The room's settings.
    pub fn options(&self) -> &RoomOptions {
        &self.options
    }

    /// Whether playback is paused, as far as the actions this control applied go.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The proposals open now.
    pub fn open_proposals(&self) -> Vec<Proposal> {
        self.policy.open_proposals()
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Whether `member` may change the room's settings, password and roles: the host, or a
    /// moderator. (Administration is not playback: it never goes to a vote.)
    pub fn may_administer(&self, member: MemberId) -> bool {
        self.roster
            .get(member)
            .is_some_and(|m| m.connected && (m.role == Role::Host || m.moderator))
    }

    // --- Membership --------------------------------------------------------------------------

    /// A member joined. False when it is already in the room.
    pub fn join(&mut self, member: MemberId, moderator: bool, now: ServerTime) -> bool {
        if !self.roster.add(member, moderator) {
            return false;
        }
        self.ensure_host(now);
        with_policy!(self.membership_changed(None, now));
        self.drain(now);
        true
    }

    /// A member left (or its resume window ran out). Control passes on at once if it was the
    /// host.
    pub fn leave(&mut self, member: MemberId, now: ServerTime) {
        let was_host = self.roster.host() == Some(member);
        if self.roster.remove(member).is_none() {
            return;
        }
        if self.host_grace.is_some_and(|(h, _)| h == member) {
            self.host_grace = None;
        }
        if was_host {
            self.succeed(Some(member));
        }
        with_policy!(self.membership_changed(Some(member), now));
        self.drain(now);
        self.settle_waits(now);
    }

    /// A member's connection dropped; it may come back within the resume window. A host keeps
    /// the role for `host_grace_ms`.
    pub fn disconnect(&mut self, member: MemberId, now: ServerTime) {
        if !self.roster.is_present(member) {
            return;
        }
        self.roster.update(member, |m| m.connected = false);
        if self.roster.host() == Some(member) {
            if self.options.host_grace_ms == 0 {
                self.succeed(Some(member));
            } else {
                self.host_grace =
                    Some((member, now.add_micros(millis(self.options.host_grace_ms))));
            }
        }
        with_policy!(self.membership_changed(Some(member), now));
        self.drain(now);
        self.settle_waits(now);
    }

    /// A disconnected member came back (resumed).
    pub fn reconnect(&mut self, member: MemberId, now: ServerTime) {
        if self.roster.get(member).is_none_or(|m| m.connected) {
            return;
        }
        self.roster.update(member, |m| m.connected = true);
        if self.host_grace.is_some_and(|(h, _)| h == member) {
            self.host_grace = None;
        }
        self.ensure_host(now);
        with_policy!(self.membership_changed(None, now));
        self.drain(now);
    }

    /// Passes the host role on from `previous` (gone or timed out).
    fn succeed(&mut self, previous: Option<MemberId>) {
        match self.roster.successor(previous) {
            Some(next) => {
                self.roster.set_host(next);
                self.outputs.push_back(Output::HostChanged {
                    host: Some(next),
                    previous,
                    reason: HostChangeReason::HostLeft,
                });
            }
            None if previous.is_some() && self.roster.host().is_some() => {
                // Nobody present to take over: the room has no host until someone is.
                self.roster.clear_host();
                self.outputs.push_back(Output::HostChanged {
                    host: None,
                    previous,
                    reason: HostChangeReason::HostLeft,
                });
            }
            None => {}
        }
    }

    /// A room with members present always has a host (unless its host is within its grace).
    fn ensure_host(&mut self, _now: ServerTime) {
        match self.roster.host() {
            None => self.succeed(None),
            Some(h) if !self.roster.is_present(h) && self.host_grace.is_none() => {
                self.succeed(Some(h));
            }
            Some(_) => {}
        }
    }

    // --- Requests and votes ------------------------------------------------------------------

    /// `from` asks for `action`. The verdict says whether it applies now (see the outputs),
    /// opened a proposal, or is refused.
    pub fn request(&mut self, from: MemberId, action: Action, now: ServerTime) -> Verdict {
        if !self.roster.is_present(from) {
            return Verdict::Reject(Rejection::new(ErrorCode::NotInRoom, "not in this room"));
        }
        if let Err(rejection) = self.check_target(from, &action) {
            return Verdict::Reject(rejection);
        }
        let verdict = with_policy!(self.request(from, &action, now));
        if verdict == Verdict::Apply {
            self.apply(action, Some(from), Cause::Command, now);
        }
        self.drain(now);
        verdict
    }

    fn check_target(&self, from: MemberId, action: &Action) -> Result<(), Rejection> {
        match action {
            Action::Kick { member } if *member == from => Err(Rejection::new(
                ErrorCode::InvalidState,
                "use leave_room to leave; members cannot kick themselves",
            )),
            Action::TransferHost { to } if Some(*to) == self.roster.host() => Err(Rejection::new(
                ErrorCode::InvalidState,
                "that member is already the host",
            )),
            Action::Kick { member } if self.roster.get(*member).is_none() => Err(Rejection::new(
                ErrorCode::MemberNotFound,
                "no such member in this room",
            )),
            Action::TransferHost { to } if !self.roster.is_present(*to) => Err(Rejection::new(
                ErrorCode::MemberNotFound,
                "no such member present in this room",
            )),
            _ => Ok(()),
        }
    }

    /// `from` votes on a proposal. A vote from a member not present is refused (`forbidden`),
    /// one on a closed or unknown proposal too (`proposal_closed`); a repeated identical vote
    /// is accepted and changes nothing.
    pub fn vote(
        &mut self,
        from: MemberId,
        proposal: ProposalId,
        yes: bool,
        now: ServerTime,
    ) -> Result<(), Rejection> {
        let result = with_policy!(self.vote(from, proposal, yes, now));
        self.drain(now);
        result
    }

    /// Changes the room's settings (host or moderator only). Quorums are re-counted and waits
    /// re-checked under the new settings.
    pub fn set_options(
        &mut self,
        by: MemberId,
        options: RoomOptions,
        now: ServerTime,
    ) -> Result<(), Rejection> {
        if !self.may_administer(by) {
            return Err(Rejection::new(
                ErrorCode::Forbidden,
                "only the host may change the room's settings",
            ));
        }
        self.options = options;
        with_policy!(self.membership_changed(None, now));
        self.drain(now);
        self.settle_waits(now);
        Ok(())
    }

    /// Makes `member` a co-host or a plain member (host or moderator only).
    pub fn set_role(
        &mut self,
        by: MemberId,
        member: MemberId,
        role: Role,
        _now: ServerTime,
    ) -> Result<(), Rejection> {
        if !self.may_administer(by) {
            return Err(Rejection::new(
                ErrorCode::Forbidden,
                "only the host may change roles",
            ));
        }
        if role == Role::Host || self.roster.host() == Some(member) {
            return Err(Rejection::new(
                ErrorCode::InvalidState,
                "the host role changes only by transfer_host",
            ));
        }
        if !self.roster.set_role(member, role) {
            return Err(Rejection::new(
                ErrorCode::MemberNotFound,
                "no such member in this room",
            ));
        }
        self.outputs.push_back(Output::RoleChanged { member, role });
        Ok(())
    }

    // --- Readiness, buffering, positions ----------------------------------------------------

    /// A member reports whether its player is ready, and whether play should wait for it.
    pub fn set_ready(&mut self, member: MemberId, ready: bool, wait_for_me: bool, now: ServerTime) {
        self.roster.update(member, |m| {
            m.ready = ready;
            m.wait_for_me = wait_for_me;
        });
        self.settle_waits(now);
    }

    /// A member's player started or stopped buffering.
    pub fn set_buffering(&mut self, member: MemberId, buffering: bool, now: ServerTime) {
        let changed = self
            .roster
            .get(member)
            .is_some_and(|m| m.buffering != buffering);
        self.roster.update(member, |m| {
            m.buffering = buffering;
            if !buffering {
                m.released = false;
            }
        });
        if changed && buffering {
            let bound = self.options.ready_timeout_ms;
            if self.options.buffering_pauses_room
                && bound > 0
                && !self.paused
                && self.pending_play.is_none()
                && self.buffering_hold.is_none()
                && self.roster.holding_buffering() > 0
            {
                self.paused = true;
                self.buffering_hold = Some(now.add_micros(millis(bound)));
                self.outputs.push_back(Output::Apply {
                    action: Action::Pause,
                    by: Some(member),
                    cause: Cause::Buffering,
                });
            }
        }
        self.settle_waits(now);
    }

    /// A member's player was at `position` seconds at server time `at` (from its stats).
    pub fn report_position(&mut self, member: MemberId, position: f64, at: ServerTime) {
        if position.is_finite() && position >= 0.0 {
            self.roster
                .update(member, |m| m.position = Some((position, at)));
        }
    }

    /// Where "resync everyone" should move the room: the median, or the slowest, of present
    /// members' reported positions brought forward to `now` along `timeline`. `None` when no
    /// member reported a position.
    pub fn resync_target(&self, timeline: &Timeline, now: ServerTime) -> Option<f64> {
        let mut positions: Vec<f64> = self
            .roster
            .iter()
            .filter(|m| m.connected)
            .filter_map(|m| m.position)
            .map(|(position, at)| {
                if timeline.paused {
                    position
                } else {
                    (position + now.seconds_since(at) * timeline.rate).max(0.0)
                }
            })
            .collect();
        if positions.is_empty() {
            return None;
        }
        positions.sort_by(f64::total_cmp);
        Some(match self.options.resync_target {
            ResyncTarget::Slowest => positions[0],
            ResyncTarget::Median => {
                let mid = positions.len() / 2;
                if positions.len() % 2 == 1 {
                    positions[mid]
                } else {
                    (positions[mid - 1] + positions[mid]) / 2.0
                }
            }
        })
    }

    // --- Time --------------------------------------------------------------------------------

    /// The next time `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<ServerTime> {
        [
            self.policy.poll_timeout(),
            self.pending_play.map(|p| p.until),
            self.buffering_hold,
            self.host_grace.map(|(_, t)| t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Lets time pass up to `now`: proposals expire, waits run out, a disconnected host's
    /// grace ends.
    pub fn handle_timeout(&mut self, now: ServerTime) {
        with_policy!(self.handle_timeout(now));
        self.drain(now);
        if let Some(pending) = self.pending_play
            && pending.until <= now
        {
            self.start_play(pending.by, Cause::Ready);
        }
        if self.buffering_hold.is_some_and(|until| until <= now) {
            self.roster.release_buffering();
            self.resume_after_buffering();
        }
        if let Some((host, until)) = self.host_grace
            && until <= now
        {
            self.host_grace = None;
            if self.roster.host() == Some(host) && !self.roster.is_present(host) {
                self.succeed(Some(host));
            }
        }
    }

    // --- Applying ----------------------------------------------------------------------------

    /// Carries out an action that has authority.
    fn apply(&mut self, action: Action, by: Option<MemberId>, cause: Cause, now: ServerTime) {
        match action {
            Action::SetMode { mode } => self.switch_mode(mode, by, cause, now),
            Action::TransferHost { to } => {
                if self.roster.is_present(to) && self.roster.host() != Some(to) {
                    let previous = self.roster.host();
                    self.roster.set_host(to);
                    self.host_grace = None;
                    self.outputs.push_back(Output::HostChanged {
                        host: Some(to),
                        previous,
                        reason: HostChangeReason::Transferred,
                    });
                }
            }
            Action::Kick { member } => {
                if self.roster.get(member).is_some() {
                    self.outputs.push_back(Output::Apply {
                        action: Action::Kick { member },
                        by,
                        cause,
                    });
                    self.leave(member, now);
                }
            }
            Action::Play => {
                let bound = self.options.ready_timeout_ms;
                // Waiting only makes sense when starting from a pause.
                if self.paused && bound > 0 && self.roster.holding_play() > 0 {
                    let until = match self.pending_play {
                        // A repeated play keeps the first deadline: the wait stays bounded.
                        Some(p) => p.until,
                        None => now.add_micros(millis(bound)),
                    };
                    self.pending_play = Some(PendingPlay { by, until });
                    self.outputs.push_back(Output::WaitingForReady {
                        until,
                        waiting_for: self.roster.holding_play(),
                    });
                } else {
                    self.buffering_hold = None;
                    self.paused = false;
                    self.outputs.push_back(Output::Apply {
                        action: Action::Play,
                        by,
                        cause,
                    });
                }
            }
            Action::Pause => {
                self.pending_play = None;
                self.buffering_hold = None;
                self.paused = true;
                self.outputs.push_back(Output::Apply { action, by, cause });
            }
            Action::SetMedia { .. } => {
                self.pending_play = None;
                self.buffering_hold = None;
                self.paused = true;
                // Everyone has new media to load.
                let ids: Vec<MemberId> = self.roster.iter().map(|m| m.id).collect();
                for id in ids {
                    self.roster.update(id, |m| {
                        m.ready = false;
                        m.position = None;
                    });
                }
                self.outputs.push_back(Output::Apply { action, by, cause });
            }
            Action::Seek { .. } | Action::SetRate { .. } | Action::Resync => {
                self.outputs.push_back(Output::Apply { action, by, cause });
            }
        }
    }

    fn switch_mode(
        &mut self,
        mode: PolicyMode,
        by: Option<MemberId>,
        cause: Cause,
        now: ServerTime,
    ) {
        if self.policy.mode() == mode {
            return;
        }
        self.policy.withdraw_all();
        // The old policy's last events (what was still queued, then the withdrawals) go out
        // before the switch; proposals that passed in the same batch are applied first.
        self.drain(now);
        // The new policy continues the old one's count: ids are unique for the room's life.
        let next = self.policy.next_proposal_id();
        self.policy = policy_for(mode, next);
        let by = match cause {
            Cause::Proposal(_) => None,
            _ => by,
        };
        self.outputs.push_back(Output::ModeChanged { mode, by });
    }

    /// Moves the policy's events to the outputs, applying passed proposals.
    ///
    /// Events are taken from the policy one at a time, never in a batch: applying a passed
    /// proposal can switch the policy (withdrawing the others) or remove a member (a kick,
    /// which re-counts the others), and that drains the policy again, nested. Events that
    /// work causes queue behind the ones still waiting, so each proposal's events go out in
    /// the order they happened, and none is announced after its decision. (Taking a batch
    /// first let a queued `Updated` follow the decision a nested drain had already sent.)
    fn drain(&mut self, now: ServerTime) {
        while let Some(event) = self.policy.poll_event() {
            let passed = match &event {
                PolicyEvent::Decided {
                    proposal,
                    outcome: lockstep_proto::message::Outcome::Passed,
                } => Some(proposal.clone()),
                _ => None,
            };
            self.outputs.push_back(Output::Proposal(event));
            if let Some(p) = passed {
                let target_gone = match &p.action {
                    Action::Kick { member } => self.roster.get(*member).is_none(),
                    Action::TransferHost { to } => !self.roster.is_present(*to),
                    _ => false,
                };
                if !target_gone {
                    self.apply(p.action, Some(p.proposer), Cause::Proposal(p.id), now);
                }
            }
        }
    }

    /// Starts a pending play once nobody holds it, and resumes a buffering pause once nobody
    /// buffers.
    fn settle_waits(&mut self, _now: ServerTime) {
        if let Some(pending) = self.pending_play
            && (self.roster.holding_play() == 0 || self.options.ready_timeout_ms == 0)
        {
            self.start_play(pending.by, Cause::Ready);
        }
        if self.buffering_hold.is_some() && self.roster.holding_buffering() == 0 {
            self.resume_after_buffering();
        }
    }

    fn start_play(&mut self, by: Option<MemberId>, cause: Cause) {
        self.pending_play = None;
        self.buffering_hold = None;
        self.paused = false;
        self.outputs.push_back(Output::Apply {
            action: Action::Play,
            by,
            cause,
        });
    }

    fn resume_after_buffering(&mut self) {
        self.buffering_hold = None;
        self.paused = false;
        self.outputs.push_back(Output::Apply {
            action: Action::Play,
            by: None,
            cause: Cause::Buffering,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_proto::message::Outcome;

    const S: i64 = 1_000_000;

    fn t(seconds: i64) -> ServerTime {
        ServerTime::from_micros(1_000_000_000).add_micros(seconds * S)
    }

    /// A room with members 1..=n (1 the host), all ready.
    fn room(mode: PolicyMode, n: MemberId, options: RoomOptions) -> RoomControl {
        let mut r = RoomControl::new(1, false, mode, options);
        for id in 1..=n {
            r.join(id, false, t(0));
            r.set_ready(id, true, true, t(0));
        }
        drain(&mut r);
        r
    }

    fn drain(r: &mut RoomControl) -> Vec<Output> {
        std::iter::from_fn(|| r.poll_output()).collect()
    }

    fn applied(outputs: &[Output]) -> Vec<(Action, Cause)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Apply { action, cause, .. } => Some((action.clone(), *cause)),
                _ => None,
            })
            .collect()
    }

    fn decisions(outputs: &[Output]) -> Vec<(ProposalId, Outcome)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Proposal(PolicyEvent::Decided { proposal, outcome }) => {
                    Some((proposal.id, *outcome))
                }
                _ => None,
            })
            .collect()
    }

    fn code(v: Verdict) -> ErrorCode {
        match v {
            Verdict::Reject(r) => r.code,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn proposed(v: Verdict) -> ProposalId {
        match v {
            Verdict::Propose(id) => id,
            other => panic!("expected a proposal, got {other:?}"),
        }
    }

    // --- Host mode ---------------------------------------------------------------------------

    #[test]
    fn host_and_cohosts_control_others_are_refused() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        r.set_role(1, 2, Role::Cohost, t(0)).unwrap();
        assert_eq!(r.request(1, Action::Play, t(1)), Verdict::Apply);
        assert_eq!(
            r.request(2, Action::Seek { position: 5.0 }, t(1)),
            Verdict::Apply
        );
        assert_eq!(
            code(r.request(3, Action::Pause, t(1))),
            ErrorCode::Forbidden
        );
        let out = drain(&mut r);
        assert_eq!(
            applied(&out),
            [
                (Action::Play, Cause::Command),
                (Action::Seek { position: 5.0 }, Cause::Command)
            ]
        );
    }

    #[test]
    fn passing_the_remote_lets_everyone_control_playback_only() {
        let options = RoomOptions {
            everyone_controls: true,
            ..RoomOptions::default()
        };
        let mut r = room(PolicyMode::Host, 3, options);
        assert_eq!(
            r.request(3, Action::SetRate { rate: 1.5 }, t(1)),
            Verdict::Apply
        );
        assert_eq!(
            code(r.request(3, Action::Kick { member: 2 }, t(1))),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(r.request(
                3,
                Action::SetMode {
                    mode: PolicyMode::Democratic
                },
                t(1)
            )),
            ErrorCode::Forbidden
        );
        // The host takes the remote back.
        let mut back = r.options().clone();
        back.everyone_controls = false;
        r.set_options(1, back, t(2)).unwrap();
        assert_eq!(code(r.request(3, Action::Play, t(3))), ErrorCode::Forbidden);
    }

    #[test]
    fn only_admins_change_settings_and_roles() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        assert_eq!(
            r.set_options(2, RoomOptions::default(), t(1))
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            r.set_role(2, 3, Role::Cohost, t(1)).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            r.set_role(1, 1, Role::Member, t(1)).unwrap_err().code,
            ErrorCode::InvalidState
        );
        assert_eq!(
            r.set_role(1, 9, Role::Cohost, t(1)).unwrap_err().code,
            ErrorCode::MemberNotFound
        );
        r.set_role(1, 3, Role::Cohost, t(1)).unwrap();
        assert_eq!(
            drain(&mut r),
            [Output::RoleChanged {
                member: 3,
                role: Role::Cohost
            }]
        );
    }

    #[test]
    fn host_leaving_passes_control_to_the_first_cohost_at_once() {
        let mut r = room(PolicyMode::Host, 4, RoomOptions::default());
        r.set_role(1, 4, Role::Cohost, t(0)).unwrap();
        drain(&mut r);
        r.leave(1, t(1));
        assert_eq!(
            drain(&mut r),
            [Output::HostChanged {
                host: Some(4),
                previous: Some(1),
                reason: HostChangeReason::HostLeft
            }]
        );
        assert_eq!(r.request(4, Action::Play, t(2)), Verdict::Apply);
    }

    #[test]
    fn the_first_to_join_an_empty_room_is_its_host() {
        let mut r = RoomControl::new_empty(PolicyMode::Host, RoomOptions::default());
        assert_eq!(r.roster().host(), None);
        r.join(5, false, t(0));
        r.join(6, false, t(0));
        assert_eq!(r.roster().host(), Some(5));
        assert_eq!(
            drain(&mut r),
            [Output::HostChanged {
                host: Some(5),
                previous: None,
                reason: HostChangeReason::HostLeft
            }]
        );
    }

    #[test]
    fn without_cohosts_the_earliest_joined_member_takes_over() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        r.leave(1, t(1));
        assert_eq!(r.roster().host(), Some(2));
        r.leave(2, t(2));
        assert_eq!(r.roster().host(), Some(3));
        // A room with members is never left without a host.
        r.join(7, false, t(3));
        r.leave(3, t(4));
        assert_eq!(r.roster().host(), Some(7));
    }

    #[test]
    fn a_disconnected_host_keeps_the_role_for_the_grace_period() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        r.disconnect(1, t(10));
        assert_eq!(r.roster().host(), Some(1));
        assert_eq!(r.poll_timeout(), Some(t(40)));
        // Back in time: nothing changes.
        r.reconnect(1, t(20));
        r.handle_timeout(t(40));
        assert_eq!(r.roster().host(), Some(1));
        // Gone for longer than the grace: member 2 takes over.
        r.disconnect(1, t(50));
        r.handle_timeout(t(79));
        assert_eq!(r.roster().host(), Some(1));
        r.handle_timeout(t(80));
        assert_eq!(r.roster().host(), Some(2));
        // The old host comes back as a member.
        r.reconnect(1, t(81));
        assert_eq!(r.roster().get(1).map(|m| m.role), Some(Role::Member));
        assert_eq!(
            code(r.request(1, Action::Play, t(82))),
            ErrorCode::Forbidden
        );
    }

    #[test]
    fn explicit_transfer_and_its_checks() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        assert_eq!(
            code(r.request(2, Action::TransferHost { to: 3 }, t(1))),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(r.request(1, Action::TransferHost { to: 9 }, t(1))),
            ErrorCode::MemberNotFound
        );
        assert_eq!(
            code(r.request(1, Action::TransferHost { to: 1 }, t(1))),
            ErrorCode::InvalidState
        );
        assert_eq!(
            r.request(1, Action::TransferHost { to: 3 }, t(1)),
            Verdict::Apply
        );
        assert_eq!(
            drain(&mut r),
            [Output::HostChanged {
                host: Some(3),
                previous: Some(1),
                reason: HostChangeReason::Transferred
            }]
        );
    }

    #[test]
    fn only_a_moderator_may_kick_the_host() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        r.set_role(1, 2, Role::Cohost, t(0)).unwrap();
        r.join(9, true, t(0));
        assert_eq!(
            code(r.request(2, Action::Kick { member: 1 }, t(1))),
            ErrorCode::Forbidden
        );
        assert_eq!(
            r.request(2, Action::Kick { member: 3 }, t(1)),
            Verdict::Apply
        );
        assert_eq!(
            r.request(9, Action::Kick { member: 1 }, t(2)),
            Verdict::Apply
        );
        assert!(r.roster().get(1).is_none());
        assert_eq!(r.roster().host(), Some(2), "the co-host takes over");
        assert_eq!(
            code(r.request(2, Action::Kick { member: 2 }, t(3))),
            ErrorCode::InvalidState
        );
    }

    // --- Democratic mode ---------------------------------------------------------------------

    #[test]
    fn a_proposal_passes_at_a_strict_majority_and_is_applied() {
        let mut r = room(PolicyMode::Democratic, 4, RoomOptions::default());
        let id = proposed(r.request(2, Action::Seek { position: 90.0 }, t(1)));
        r.vote(3, id, true, t(2)).unwrap();
        assert!(
            applied(&drain(&mut r)).is_empty(),
            "2 of 4 is not a strict majority"
        );
        r.vote(4, id, true, t(3)).unwrap();
        let out = drain(&mut r);
        assert_eq!(decisions(&out), [(id, Outcome::Passed)]);
        assert_eq!(
            applied(&out),
            [(Action::Seek { position: 90.0 }, Cause::Proposal(id))]
        );
    }

    #[test]
    fn a_room_of_one_decides_at_once() {
        let mut r = room(PolicyMode::Democratic, 1, RoomOptions::default());
        let id = proposed(r.request(1, Action::SetRate { rate: 1.25 }, t(1)));
        let out = drain(&mut r);
        assert_eq!(decisions(&out), [(id, Outcome::Passed)]);
        assert_eq!(
            applied(&out),
            [(Action::SetRate { rate: 1.25 }, Cause::Proposal(id))]
        );
    }

    #[test]
    fn rejected_when_it_cannot_pass_and_expired_at_its_deadline() {
        let mut r = room(PolicyMode::Democratic, 3, RoomOptions::default());
        let id = proposed(r.request(1, Action::Resync, t(1)));
        r.vote(2, id, false, t(2)).unwrap();
        r.vote(3, id, false, t(2)).unwrap();
        assert_eq!(decisions(&drain(&mut r)), [(id, Outcome::Rejected)]);

        let id = proposed(r.request(1, Action::Resync, t(3)));
        assert_eq!(r.poll_timeout(), Some(t(33)));
        r.handle_timeout(t(32));
        assert!(decisions(&drain(&mut r)).is_empty());
        r.handle_timeout(t(33));
        assert_eq!(decisions(&drain(&mut r)), [(id, Outcome::Expired)]);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn one_open_proposal_per_kind_and_a_newer_seek_supersedes() {
        let mut r = room(PolicyMode::Democratic, 5, RoomOptions::default());
        let play = proposed(r.request(1, Action::Play, t(1)));
        assert_eq!(
            code(r.request(2, Action::Play, t(1))),
            ErrorCode::ProposalPending
        );
        let seek1 = proposed(r.request(2, Action::Seek { position: 10.0 }, t(1)));
        let seek2 = proposed(r.request(3, Action::Seek { position: 20.0 }, t(2)));
        assert_eq!(decisions(&drain(&mut r)), [(seek1, Outcome::Superseded)]);
        let open: Vec<_> = r.open_proposals().iter().map(|p| p.id).collect();
        assert_eq!(open, [play, seek2]);
        assert_eq!(
            r.vote(4, seek1, true, t(3)).unwrap_err().code,
            ErrorCode::ProposalClosed
        );
    }

    #[test]
    fn leaving_members_change_the_quorum_at_once() {
        let mut r = room(PolicyMode::Democratic, 4, RoomOptions::default());
        let id = proposed(r.request(1, Action::Play, t(1)));
        r.vote(2, id, true, t(1)).unwrap();
        drain(&mut r);
        // 2 yes of 4 present: needs 3. Member 4 leaves: 2 of 3 is a strict majority.
        r.leave(4, t(2));
        let out = drain(&mut r);
        assert_eq!(decisions(&out), [(id, Outcome::Passed)]);
        assert_eq!(applied(&out), [(Action::Play, Cause::Proposal(id))]);
    }

    #[test]
    fn a_disconnected_voters_vote_no_longer_counts() {
        let mut r = room(PolicyMode::Democratic, 5, RoomOptions::default());
        let id = proposed(r.request(1, Action::Play, t(1)));
        r.vote(2, id, true, t(1)).unwrap();
        r.disconnect(2, t(2));
        let p = r.open_proposals().pop().unwrap();
        assert_eq!(
            (p.yes, p.needed),
            (1, 3),
            "4 present need 3; member 2's yes is gone"
        );
    }

    #[test]
    fn the_proposer_leaving_withdraws_the_proposal() {
        let mut r = room(PolicyMode::Democratic, 3, RoomOptions::default());
        let id = proposed(r.request(2, Action::Play, t(1)));
        r.leave(2, t(2));
        assert_eq!(decisions(&drain(&mut r)), [(id, Outcome::Withdrawn)]);
    }

    #[test]
    fn a_brief_disconnect_does_not_dodge_a_kick_vote() {
        let mut r = room(PolicyMode::Democratic, 4, RoomOptions::default());
        let id = proposed(r.request(1, Action::Kick { member: 4 }, t(1)));
        r.disconnect(4, t(2));
        r.reconnect(4, t(3));
        assert!(decisions(&drain(&mut r)).is_empty(), "still open");
        r.vote(2, id, true, t(4)).unwrap();
        r.vote(3, id, true, t(4)).unwrap();
        let out = drain(&mut r);
        assert_eq!(decisions(&out), [(id, Outcome::Passed)]);
        assert!(r.roster().get(4).is_none(), "kicked");
        // But a target who leaves the room withdraws the proposal.
        let id = proposed(r.request(1, Action::Kick { member: 3 }, t(5)));
        r.leave(3, t(6));
        assert_eq!(decisions(&drain(&mut r)), [(id, Outcome::Withdrawn)]);
    }

    #[test]
    fn a_second_disconnect_does_not_extend_the_hosts_grace() {
        let mut r = room(PolicyMode::Host, 2, RoomOptions::default());
        r.disconnect(1, t(0));
        r.disconnect(1, t(20));
        assert_eq!(r.poll_timeout(), Some(t(30)));
    }

    #[test]
    fn play_while_playing_does_not_wait() {
        let mut r = room(PolicyMode::Host, 2, RoomOptions::default());
        r.request(1, Action::Play, t(1));
        drain(&mut r);
        r.join(5, false, t(2)); // not ready
        r.request(1, Action::Play, t(3));
        assert_eq!(applied(&drain(&mut r)), [(Action::Play, Cause::Command)]);
    }

    #[test]
    fn pause_is_a_fast_path_unless_the_room_says_otherwise() {
        let mut r = room(PolicyMode::Democratic, 3, RoomOptions::default());
        assert_eq!(r.request(3, Action::Pause, t(1)), Verdict::Apply);
        let mut options = r.options().clone();
        options.pause_without_vote = false;
        r.set_options(1, options, t(2)).unwrap();
        proposed(r.request(3, Action::Pause, t(3)));
    }

    #[test]
    fn duplicate_and_foreign_votes_change_nothing() {
        let mut r = room(PolicyMode::Democratic, 5, RoomOptions::default());
        let id = proposed(r.request(1, Action::Play, t(1)));
        r.vote(2, id, true, t(1)).unwrap();
        drain(&mut r);
        r.vote(2, id, true, t(2)).unwrap();
        r.vote(1, id, true, t(2)).unwrap();
        assert!(drain(&mut r).is_empty(), "repeated votes announce nothing");
        assert_eq!(
            r.vote(99, id, true, t(2)).unwrap_err().code,
            ErrorCode::Forbidden
        );
        let p = r.open_proposals().pop().unwrap();
        assert_eq!((p.yes, p.no), (2, 0));
        // Changing one's mind moves the vote.
        r.vote(2, id, false, t(3)).unwrap();
        let p = r.open_proposals().pop().unwrap();
        assert_eq!((p.yes, p.no), (1, 1));
    }

    #[test]
    fn minimum_voters_holds_a_proposal_open() {
        let options = RoomOptions {
            quorum_percent: 0,
            min_voters: 3,
            ..RoomOptions::default()
        };
        let mut r = room(PolicyMode::Democratic, 5, options);
        let id = proposed(r.request(1, Action::Play, t(1)));
        r.vote(2, id, true, t(1)).unwrap();
        assert!(decisions(&drain(&mut r)).is_empty());
        r.vote(3, id, true, t(1)).unwrap();
        assert_eq!(decisions(&drain(&mut r)), [(id, Outcome::Passed)]);
    }

    // --- Switching mode ----------------------------------------------------------------------

    #[test]
    fn the_host_switches_to_democratic_at_once() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        assert_eq!(
            r.request(
                1,
                Action::SetMode {
                    mode: PolicyMode::Democratic
                },
                t(1)
            ),
            Verdict::Apply
        );
        assert_eq!(
            drain(&mut r),
            [Output::ModeChanged {
                mode: PolicyMode::Democratic,
                by: Some(1)
            }]
        );
        assert_eq!(r.mode(), PolicyMode::Democratic);
        // Now even the host proposes playback.
        proposed(r.request(1, Action::Play, t(2)));
    }

    #[test]
    fn back_to_host_mode_needs_a_vote_or_a_moderator() {
        let mut r = room(PolicyMode::Democratic, 3, RoomOptions::default());
        let id = proposed(r.request(
            1,
            Action::SetMode {
                mode: PolicyMode::Host,
            },
            t(1),
        ));
        let play = proposed(r.request(3, Action::Play, t(1)));
        drain(&mut r);
        r.vote(2, id, true, t(2)).unwrap();
        let out = drain(&mut r);
        assert_eq!(
            decisions(&out),
            [(id, Outcome::Passed), (play, Outcome::Withdrawn)]
        );
        assert!(out.contains(&Output::ModeChanged {
            mode: PolicyMode::Host,
            by: None
        }));
        assert_eq!(r.mode(), PolicyMode::Host);

        let mut r = room(PolicyMode::Democratic, 3, RoomOptions::default());
        r.join(9, true, t(0));
        let first = proposed(r.request(1, Action::Play, t(1)));
        assert_eq!(
            r.request(
                9,
                Action::SetMode {
                    mode: PolicyMode::Host
                },
                t(1)
            ),
            Verdict::Apply
        );
        assert_eq!(r.mode(), PolicyMode::Host);
        // Proposal ids stay unique across switches.
        r.request(
            1,
            Action::SetMode {
                mode: PolicyMode::Democratic,
            },
            t(2),
        );
        let next = proposed(r.request(2, Action::Play, t(3)));
        assert!(next > first, "{next} reuses an earlier proposal's id");
    }

    /// Fails when an `Opened` or `Updated` proposal follows that proposal's decision in
    /// `outputs`, or when a proposal is decided twice.
    fn assert_never_reannounced(outputs: &[Output]) {
        let mut decided = Vec::new();
        for o in outputs {
            match o {
                Output::Proposal(PolicyEvent::Opened(p) | PolicyEvent::Updated(p)) => {
                    assert!(
                        !decided.contains(&p.id),
                        "proposal {} announced after its decision: {outputs:#?}",
                        p.id
                    );
                }
                Output::Proposal(PolicyEvent::Decided { proposal, .. }) => {
                    assert!(
                        !decided.contains(&proposal.id),
                        "proposal {} decided twice: {outputs:#?}",
                        proposal.id
                    );
                    decided.push(proposal.id);
                }
                _ => {}
            }
        }
    }

    /// Regression (found by the property test with random seeds): a settings change passes a
    /// `set_mode` proposal and re-counts another open proposal in the same batch. Switching
    /// mode withdrew the other proposal, and then its stale `Updated` (queued before the
    /// switch) went out after its `withdrawn` decision: a decided proposal reopened.
    #[test]
    fn a_switch_by_vote_never_reannounces_a_withdrawn_proposal() {
        let mut r = RoomControl::new(1, false, PolicyMode::Host, RoomOptions::default());
        let mut out = Vec::new();
        r.join(3, false, t(0));
        r.join(2, false, t(0));
        r.join(4, true, t(0));
        let democratic = Action::SetMode {
            mode: PolicyMode::Democratic,
        };
        assert_eq!(r.request(4, democratic, t(1)), Verdict::Apply);
        let back = proposed(r.request(
            2,
            Action::SetMode {
                mode: PolicyMode::Host,
            },
            t(2),
        ));
        let transfer = proposed(r.request(2, Action::TransferHost { to: 2 }, t(3)));
        r.vote(3, back, true, t(4)).unwrap();
        out.extend(drain(&mut r));
        // 4 present: 30 % needs 2 yes. `back` has 2 and passes; `transfer` has 1 and stays
        // open with a new `needed`, until the switch withdraws it.
        let options = RoomOptions {
            quorum_percent: 30,
            min_voters: 1,
            ..RoomOptions::default()
        };
        r.set_options(4, options, t(5)).unwrap();
        let batch = drain(&mut r);
        out.extend(batch.iter().cloned());
        assert_never_reannounced(&out);
        assert_eq!(
            decisions(&batch),
            [(back, Outcome::Passed), (transfer, Outcome::Withdrawn)]
        );
        assert!(batch.contains(&Output::ModeChanged {
            mode: PolicyMode::Host,
            by: None
        }));
        assert_eq!(r.mode(), PolicyMode::Host);
        assert!(r.open_proposals().is_empty());
        assert_eq!(
            r.roster().host(),
            Some(1),
            "the withdrawn transfer did nothing"
        );
    }

    /// Regression, same family: a passed kick removes its target, and the re-count that
    /// follows decides another proposal whose `Updated` was queued in the same batch. The
    /// stale `Updated` must not follow that decision.
    #[test]
    fn a_kick_by_vote_never_reannounces_a_proposal_it_decides() {
        let options = RoomOptions {
            min_voters: 4,
            ..RoomOptions::default()
        };
        let mut r = room(PolicyMode::Democratic, 5, options);
        let mut out = Vec::new();
        let kick = proposed(r.request(1, Action::Kick { member: 5 }, t(1)));
        r.vote(2, kick, true, t(1)).unwrap();
        r.vote(3, kick, true, t(1)).unwrap();
        let play = proposed(r.request(4, Action::Play, t(2)));
        r.vote(3, play, true, t(2)).unwrap();
        out.extend(drain(&mut r));
        // 5 present at 40 %, at least 1: needs 3. The kick (3 yes) passes; the play (2 yes)
        // is re-counted (needed 4 -> 3). With member 5 gone, 2 of 4 pass the play.
        let options = RoomOptions {
            quorum_percent: 40,
            min_voters: 1,
            ..RoomOptions::default()
        };
        r.set_options(1, options, t(3)).unwrap();
        let batch = drain(&mut r);
        out.extend(batch.iter().cloned());
        assert_never_reannounced(&out);
        assert_eq!(
            decisions(&batch),
            [(kick, Outcome::Passed), (play, Outcome::Passed)]
        );
        assert!(r.roster().get(5).is_none(), "kicked");
        assert!(r.open_proposals().is_empty());
    }

    // --- Waiting for members -----------------------------------------------------------------

    #[test]
    fn play_waits_for_ready_members_then_starts() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        r.set_ready(3, false, true, t(0));
        assert_eq!(r.request(1, Action::Play, t(1)), Verdict::Apply);
        assert_eq!(
            drain(&mut r),
            [Output::WaitingForReady {
                until: t(6),
                waiting_for: 1
            }]
        );
        assert!(r.is_paused());
        r.set_ready(3, true, true, t(2));
        assert_eq!(applied(&drain(&mut r)), [(Action::Play, Cause::Ready)]);
        assert!(!r.is_paused());
    }

    #[test]
    fn the_wait_is_bounded() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        r.set_ready(2, false, true, t(0));
        r.request(1, Action::Play, t(1));
        drain(&mut r);
        assert_eq!(r.poll_timeout(), Some(t(6)));
        r.handle_timeout(t(6));
        assert_eq!(applied(&drain(&mut r)), [(Action::Play, Cause::Ready)]);
    }

    #[test]
    fn members_may_opt_out_of_being_waited_for() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        r.set_ready(2, false, false, t(0));
        r.request(1, Action::Play, t(1));
        assert_eq!(applied(&drain(&mut r)), [(Action::Play, Cause::Command)]);
    }

    #[test]
    fn pause_cancels_a_waiting_play() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        r.set_ready(2, false, true, t(0));
        r.request(1, Action::Play, t(1));
        r.request(1, Action::Pause, t(2));
        drain(&mut r);
        r.handle_timeout(t(10));
        assert!(drain(&mut r).is_empty());
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn buffering_does_not_freeze_the_room_by_default() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        r.request(1, Action::Play, t(1));
        drain(&mut r);
        r.set_buffering(3, true, t(2));
        assert!(drain(&mut r).is_empty());
        assert!(!r.is_paused());
    }

    #[test]
    fn buffering_may_pause_the_room_but_only_for_a_bounded_time() {
        let options = RoomOptions {
            buffering_pauses_room: true,
            ..RoomOptions::default()
        };
        let mut r = room(PolicyMode::Host, 3, options);
        r.request(1, Action::Play, t(1));
        drain(&mut r);
        r.set_buffering(3, true, t(2));
        assert_eq!(applied(&drain(&mut r)), [(Action::Pause, Cause::Buffering)]);
        r.set_buffering(3, false, t(3));
        assert_eq!(applied(&drain(&mut r)), [(Action::Play, Cause::Buffering)]);

        // A member that stays stuck is let go after the bound.
        r.set_buffering(2, true, t(10));
        drain(&mut r);
        assert_eq!(r.poll_timeout(), Some(t(15)));
        r.handle_timeout(t(15));
        assert_eq!(applied(&drain(&mut r)), [(Action::Play, Cause::Buffering)]);
        // Member 2 is still buffering but released: its buffering holds nothing any more, and
        // reporting it again changes nothing until it stops.
        r.set_buffering(2, true, t(16));
        assert!(drain(&mut r).is_empty());
        assert!(!r.is_paused());
        // Once it stops and buffers anew, it may pause the room again.
        r.set_buffering(2, false, t(17));
        r.set_buffering(2, true, t(18));
        assert_eq!(applied(&drain(&mut r)), [(Action::Pause, Cause::Buffering)]);
    }

    // --- Resync target -----------------------------------------------------------------------

    #[test]
    fn resync_target_is_the_median_or_the_slowest() {
        let mut r = room(PolicyMode::Host, 3, RoomOptions::default());
        let timeline = Timeline {
            position: 0.0,
            rate: 1.0,
            paused: false,
            at: t(0),
            seq: 1,
        };
        assert_eq!(r.resync_target(&timeline, t(10)), None);
        r.report_position(1, 100.0, t(10));
        r.report_position(2, 101.0, t(10));
        r.report_position(3, 5_000.0, t(9)); // an outlier, and measured a second earlier
        assert_eq!(r.resync_target(&timeline, t(12)), Some(103.0));
        let mut options = r.options().clone();
        options.resync_target = ResyncTarget::Slowest;
        r.set_options(1, options, t(12)).unwrap();
        assert_eq!(r.resync_target(&timeline, t(12)), Some(102.0));
        // Non-finite reports are ignored.
        r.report_position(2, f64::NAN, t(12));
        assert_eq!(r.resync_target(&timeline, t(12)), Some(102.0));
    }
}
