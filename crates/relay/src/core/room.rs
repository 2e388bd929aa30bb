//! One room inside the relay core: its settings, members, timeline, control, and the
//! schedules for repeating the timeline and coalescing announcements.
//!
//! Owns per-room bookkeeping and the building of room messages; the core decides when to
//! call what.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use lockstep_consensus::RoomControl;
use lockstep_proto::message::{
    Media, Member, MemberId, Proposal, ProposalId, RoomId, RoomInfo, RoomSummary, TimelineReason,
    Transport,
};
use lockstep_proto::{ServerTime, Timeline};

/// How long after a timeline change its copies follow (the first is sent at once).
pub(crate) const REPEATS_US: [i64; 2] = [50_000, 250_000];
/// The timeline is repeated at least this often while the room exists.
pub(crate) const HEARTBEAT_US: i64 = 1_000_000;
/// Joins and changes within this window go out as one `participants` message.
pub(crate) const PARTICIPANTS_COALESCE_US: i64 = 50_000;
/// The same window in a room too big to list whole in `room_state`: every `participants` goes
/// to every member, so during a join storm a 10,000-member room sent 20 of them a second to
/// all 10,000 (200k deliveries/s, which slowed the joins themselves to ~190/s).
pub(crate) const PARTICIPANTS_COALESCE_BIG_US: i64 = 1_000_000;
/// Tally changes of open proposals go out at most once per this window: in a room of N
/// voters each vote would otherwise reach all N members (O(N²) per decision). The first
/// change after a quiet window goes out at once, so small rooms see every vote immediately.
pub(crate) const TALLY_COALESCE_US: i64 = 50_000;
/// How often members' sync figures are shared.
pub(crate) const STATS_EVERY_US: i64 = 1_000_000;
/// Entries in one `member_stats` (12 always fit a datagram).
pub(crate) const STATS_ENTRIES: usize = 12;

/// A room.
#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) id: RoomId,
    pub(crate) name: String,
    pub(crate) invite: String,
    /// Argon2 PHC string; the password itself is never kept.
    pub(crate) password: Option<String>,
    pub(crate) capacity: u32,
    pub(crate) media: Option<Media>,
    pub(crate) control: RoomControl,
    pub(crate) timeline: Timeline,
    pub(crate) last_reason: TimelineReason,
    pub(crate) last_by: Option<MemberId>,
    /// Members in the room (connected or within their resume window).
    pub(crate) members: BTreeSet<MemberId>,
    /// Who created it, for the rooms-per-user limit.
    pub(crate) owner: String,
    pub(crate) repeats: VecDeque<ServerTime>,
    pub(crate) next_heartbeat: ServerTime,
    pub(crate) pending_participants: BTreeSet<MemberId>,
    pub(crate) participants_due: Option<ServerTime>,
    pub(crate) stats_due: Option<ServerTime>,
    pub(crate) empty_since: Option<ServerTime>,
    /// Kick reasons waiting for the kick to apply (it may go through a vote).
    pub(crate) kick_reasons: HashMap<MemberId, String>,
    /// Proposals opened, to count the metric once.
    pub(crate) proposals_seen: BTreeSet<ProposalId>,
    /// Tallies changed within the current window, newest per proposal, sent when it ends.
    pub(crate) pending_tallies: BTreeMap<ProposalId, Proposal>,
    /// End of the window in which tally changes are held back; `None`: send at once.
    pub(crate) tally_window_end: Option<ServerTime>,
    /// The `member_count` last sent in `participants` (rooms too big to list whole).
    pub(crate) count_announced: Option<u32>,
}

impl Room {
    /// The next time the room needs the core's attention.
    pub(crate) fn next_deadline(&self, idle_expiry_us: i64) -> Option<ServerTime> {
        [
            self.repeats.front().copied(),
            Some(self.next_heartbeat),
            self.participants_due,
            self.tally_window_end,
            self.stats_due,
            self.control.poll_timeout(),
            self.empty_since.map(|t| t.add_micros(idle_expiry_us)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The timeline changed: send it now (the caller does) and again shortly.
    pub(crate) fn schedule_repeats(&mut self, now: ServerTime) {
        self.repeats = REPEATS_US.iter().map(|d| now.add_micros(*d)).collect();
        self.next_heartbeat = now.add_micros(HEARTBEAT_US);
    }

    /// Host, co-host or moderator: sees the invite code, listed first in a big room.
    pub(crate) fn is_privileged(&self, id: MemberId) -> bool {
        self.control.roster().get(id).is_some_and(|m| {
            matches!(
                m.role,
                lockstep_proto::message::Role::Host | lockstep_proto::message::Role::Cohost
            ) || m.moderator
        })
    }

    /// The room as `viewer` may see it (the invite code only for the host and co-hosts).
    pub(crate) fn info(&self, viewer: Option<MemberId>) -> RoomInfo {
        let privileged = viewer.is_some_and(|v| self.is_privileged(v));
        RoomInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            invite: privileged.then(|| self.invite.clone()),
            mode: self.control.mode(),
            host: self.control.roster().host(),
            has_password: self.password.is_some(),
            capacity: self.capacity,
            media: self.media.clone(),
            options: self.control.options().clone(),
        }
    }

    /// A line of the public room list.
    pub(crate) fn summary(&self) -> RoomSummary {
        RoomSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            members: u32::try_from(self.members.len()).unwrap_or(u32::MAX),
            capacity: self.capacity,
            mode: self.control.mode(),
            has_password: self.password.is_some(),
            media_title: self.media.as_ref().map(|m| m.title.clone()),
        }
    }

    /// One member as the room sees it.
    pub(crate) fn member(&self, id: MemberId, name: &str, transport: Transport) -> Option<Member> {
        let state = self.control.roster().get(id)?;
        Some(Member {
            id,
            name: name.to_string(),
            role: state.role,
            transport,
            ready: state.ready,
            buffering: state.buffering,
            waited_for: state.wait_for_me,
        })
    }

    /// A proposal opened or its tally changed at `now`: returns it when it is to be sent now,
    /// or holds it (replacing an older tally of the same proposal) until the window ends.
    pub(crate) fn tally_changed(
        &mut self,
        proposal: Proposal,
        now: ServerTime,
    ) -> Option<Proposal> {
        if self.tally_window_end.is_some_and(|end| end > now) {
            self.pending_tallies.insert(proposal.id, proposal);
            return None;
        }
        self.tally_window_end = Some(now.add_micros(TALLY_COALESCE_US));
        Some(proposal)
    }

    /// The tallies held back, once their window has ended; a new window starts if any are sent.
    pub(crate) fn take_due_tallies(&mut self, now: ServerTime) -> Vec<Proposal> {
        if self.tally_window_end.is_none_or(|end| end > now) {
            return Vec::new();
        }
        let due: Vec<Proposal> = std::mem::take(&mut self.pending_tallies)
            .into_values()
            .collect();
        self.tally_window_end = (!due.is_empty()).then(|| now.add_micros(TALLY_COALESCE_US));
        due
    }

    /// The members a `room_state` for `viewer` lists: all of them, or in a room of more than
    /// `cap`, the viewer and the room's hosts, co-hosts and moderators first, then the others
    /// in id order, `cap` in all.
    pub(crate) fn listed_members(&self, viewer: MemberId, cap: usize) -> Vec<MemberId> {
        if self.members.len() <= cap {
            return self.members.iter().copied().collect();
        }
        let privileged = |id: &MemberId| self.is_privileged(*id);
        let mut listed: Vec<MemberId> = Vec::with_capacity(cap);
        if self.members.contains(&viewer) {
            listed.push(viewer);
        }
        let first = self
            .members
            .iter()
            .filter(|id| **id != viewer && privileged(id));
        let rest = self
            .members
            .iter()
            .filter(|id| **id != viewer && !privileged(id));
        listed.extend(
            first
                .chain(rest)
                .take(cap.saturating_sub(listed.len()))
                .copied(),
        );
        listed
    }

    /// Queues members for the next coalesced `participants` message.
    pub(crate) fn announce(&mut self, ids: impl IntoIterator<Item = MemberId>, now: ServerTime) {
        self.pending_participants.extend(ids);
        if self.participants_due.is_none() && !self.pending_participants.is_empty() {
            let window = if self.members.len() > lockstep_proto::limits::ROOM_STATE_MEMBERS {
                PARTICIPANTS_COALESCE_BIG_US
            } else {
                PARTICIPANTS_COALESCE_US
            };
            self.participants_due = Some(now.add_micros(window));
        }
    }
}
