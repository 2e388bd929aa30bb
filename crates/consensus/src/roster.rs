//! The members of a room as the policies see them: roles, join order, presence, readiness.
//!
//! Owns membership bookkeeping and the counts the policies need in O(1) (members present,
//! members that play must wait for, members whose buffering holds the room). Owns no rules
//! about who may do what.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use lockstep_proto::ServerTime;
use lockstep_proto::message::{MemberId, Role};

/// A hasher with fixed keys: iteration never leaks into outputs, but fixed keys keep the whole
/// machine reproducible for the same inputs. Member ids are chosen by the relay, not by
/// clients, so a fixed key offers no collision attack.
pub(crate) type FixedState = BuildHasherDefault<DefaultHasher>;

/// One member's state (also as a room's snapshot stores it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberState {
    /// The member's id.
    pub id: MemberId,
    /// Host, co-host or member.
    pub role: Role,
    /// Position in join order (smaller joined earlier).
    pub joined: u64,
    /// Connected now; a disconnected member is kept for the resume window but is not present.
    pub connected: bool,
    /// Holds the `moderate` permission (from the relay's auth): may switch a democratic room
    /// back to host mode and administer any room.
    pub moderator: bool,
    /// Reported ready to play.
    pub ready: bool,
    /// Reported buffering.
    pub buffering: bool,
    /// Play waits for this member (it did not opt out).
    pub wait_for_me: bool,
    /// Buffering past the room's bound: no longer holds the room until it stops buffering.
    pub released: bool,
    /// Last reported player position (seconds) and the server time it was measured at.
    pub position: Option<(f64, ServerTime)>,
}

impl MemberState {
    fn new(id: MemberId, joined: u64, moderator: bool) -> Self {
        MemberState {
            id,
            role: Role::Member,
            joined,
            connected: true,
            moderator,
            ready: false,
            buffering: false,
            wait_for_me: true,
            released: false,
            position: None,
        }
    }

    /// Present and waited for, but not ready: holds a pending play.
    fn holds_play(&self) -> bool {
        self.connected && self.wait_for_me && !self.ready
    }

    /// Present, waited for and buffering (not released): holds a buffering pause.
    fn holds_buffering(&self) -> bool {
        self.connected && self.wait_for_me && self.buffering && !self.released
    }
}

/// The room's members.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    members: HashMap<MemberId, MemberState, FixedState>,
    order: BTreeMap<u64, MemberId>,
    next_join: u64,
    host: Option<MemberId>,
    present: u32,
    holding_play: u32,
    holding_buffering: u32,
}

impl Roster {
    /// An empty roster.
    pub fn new() -> Self {
        Roster::default()
    }

    /// Adds a connected member with role `member`; false when the id is already in the room.
    pub fn add(&mut self, id: MemberId, moderator: bool) -> bool {
        if self.members.contains_key(&id) {
            return false;
        }
        let member = MemberState::new(id, self.next_join, moderator);
        self.order.insert(self.next_join, id);
        self.next_join += 1;
        self.count(&member, 1);
        self.members.insert(id, member);
        true
    }

    /// Removes a member (left or kicked), returning its last state.
    pub fn remove(&mut self, id: MemberId) -> Option<MemberState> {
        let member = self.members.remove(&id)?;
        self.count(&member, -1);
        self.order.remove(&member.joined);
        if self.host == Some(id) {
            self.host = None;
        }
        Some(member)
    }

    /// Changes a member through `f`, keeping the counts right. False for an unknown member.
    pub fn update(&mut self, id: MemberId, f: impl FnOnce(&mut MemberState)) -> bool {
        let Some(mut member) = self.members.remove(&id) else {
            return false;
        };
        self.count(&member, -1);
        f(&mut member);
        // Role and order are the roster's to keep consistent; `set_role`/`set_host` change them.
        self.count(&member, 1);
        self.members.insert(id, member);
        true
    }

    fn count(&mut self, m: &MemberState, sign: i32) {
        let apply = |n: &mut u32, on: bool| {
            if on {
                *n = n.saturating_add_signed(sign);
            }
        };
        apply(&mut self.present, m.connected);
        apply(&mut self.holding_play, m.holds_play());
        apply(&mut self.holding_buffering, m.holds_buffering());
    }

    /// The members in join order.
    pub fn in_join_order(&self) -> impl Iterator<Item = &MemberState> {
        self.order.values().filter_map(|id| self.members.get(id))
    }

    /// The join-order number the next member gets.
    pub fn next_join(&self) -> u64 {
        self.next_join
    }

    /// A roster of these members (each with its own join-order number), with `host`; the
    /// counts are recomputed. Refuses duplicate ids or join numbers, a join number not below
    /// `next_join`, and a host that is not a member or roles that disagree with it.
    pub(crate) fn restore(
        members: Vec<MemberState>,
        next_join: u64,
        host: Option<MemberId>,
    ) -> Result<Roster, crate::snapshot::SnapshotError> {
        let bad = |m: String| Err(crate::snapshot::SnapshotError(m));
        let mut roster = Roster {
            next_join,
            ..Roster::default()
        };
        for m in members {
            if m.joined >= next_join {
                return bad(format!(
                    "member {} joined at {} ≥ next {next_join}",
                    m.id, m.joined
                ));
            }
            if (m.role == Role::Host) != (host == Some(m.id)) {
                return bad(format!(
                    "member {}'s role {:?} disagrees with the host",
                    m.id, m.role
                ));
            }
            if roster.members.contains_key(&m.id) || roster.order.contains_key(&m.joined) {
                return bad(format!("member {} or join number {} twice", m.id, m.joined));
            }
            roster.order.insert(m.joined, m.id);
            roster.count(&m, 1);
            roster.members.insert(m.id, m);
        }
        if let Some(h) = host
            && !roster.members.contains_key(&h)
        {
            return bad(format!("host {h} is not a member"));
        }
        roster.host = host;
        Ok(roster)
    }

    /// A member's state.
    pub fn get(&self, id: MemberId) -> Option<&MemberState> {
        self.members.get(&id)
    }

    /// Whether the member is in the room and connected.
    pub fn is_present(&self, id: MemberId) -> bool {
        self.members.get(&id).is_some_and(|m| m.connected)
    }

    /// Members in the room, connected or not.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the room has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members connected now: the voters of a democratic room.
    pub fn present(&self) -> u32 {
        self.present
    }

    /// Present members play waits for that are not ready.
    pub fn holding_play(&self) -> u32 {
        self.holding_play
    }

    /// Present members whose buffering holds the room.
    pub fn holding_buffering(&self) -> u32 {
        self.holding_buffering
    }

    /// The host, if any.
    pub fn host(&self) -> Option<MemberId> {
        self.host
    }

    /// Makes `id` the host (the previous host becomes a plain member). False for an unknown id.
    pub fn set_host(&mut self, id: MemberId) -> bool {
        if !self.members.contains_key(&id) {
            return false;
        }
        if let Some(old) = self.host.take()
            && let Some(m) = self.members.get_mut(&old)
        {
            m.role = Role::Member;
        }
        if let Some(m) = self.members.get_mut(&id) {
            m.role = Role::Host;
        }
        self.host = Some(id);
        true
    }

    /// Drops the host role without a successor (the host stays a member).
    pub fn clear_host(&mut self) {
        if let Some(old) = self.host.take()
            && let Some(m) = self.members.get_mut(&old)
        {
            m.role = Role::Member;
        }
    }

    /// Makes a member a co-host or a plain member (not the host: see `set_host`).
    pub fn set_role(&mut self, id: MemberId, role: Role) -> bool {
        if role == Role::Host || self.host == Some(id) {
            return false;
        }
        match self.members.get_mut(&id) {
            Some(m) => {
                m.role = role;
                true
            }
            None => false,
        }
    }

    /// Who takes over from the host: the earliest-joined present co-host, else the
    /// earliest-joined present member, never `excluding`.
    pub fn successor(&self, excluding: Option<MemberId>) -> Option<MemberId> {
        let candidates = || {
            self.order
                .values()
                .filter(move |id| Some(**id) != excluding)
                .filter_map(|id| self.members.get(id))
                .filter(|m| m.connected)
        };
        candidates()
            .find(|m| m.role == Role::Cohost)
            .or_else(|| candidates().next())
            .map(|m| m.id)
    }

    /// Members in join order.
    pub fn iter(&self) -> impl Iterator<Item = &MemberState> {
        self.order.values().filter_map(|id| self.members.get(id))
    }

    /// Releases every buffering member from holding the room (its bound passed).
    pub fn release_buffering(&mut self) {
        let ids: Vec<MemberId> = self
            .iter()
            .filter(|m| m.holds_buffering())
            .map(|m| m.id)
            .collect();
        for id in ids {
            self.update(id, |m| m.released = true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_every_change() {
        let mut r = Roster::new();
        assert!(r.add(1, false));
        assert!(r.add(2, false));
        assert!(!r.add(2, false));
        assert_eq!((r.present(), r.holding_play()), (2, 2));
        r.update(1, |m| m.ready = true);
        assert_eq!(r.holding_play(), 1);
        r.update(2, |m| m.wait_for_me = false);
        assert_eq!(r.holding_play(), 0);
        r.update(1, |m| m.buffering = true);
        assert_eq!(r.holding_buffering(), 1);
        r.update(1, |m| m.connected = false);
        assert_eq!((r.present(), r.holding_buffering()), (1, 0));
        r.remove(1);
        r.remove(2);
        assert_eq!(
            (r.present(), r.holding_play(), r.holding_buffering()),
            (0, 0, 0)
        );
        assert!(r.is_empty());
    }

    #[test]
    fn succession_prefers_cohosts_then_seniority() {
        let mut r = Roster::new();
        for id in [10, 11, 12, 13] {
            r.add(id, false);
        }
        r.set_host(10);
        assert_eq!(r.successor(Some(10)), Some(11));
        r.set_role(13, Role::Cohost);
        assert_eq!(r.successor(Some(10)), Some(13));
        r.update(13, |m| m.connected = false);
        assert_eq!(r.successor(Some(10)), Some(11));
    }

    #[test]
    fn one_host_at_a_time() {
        let mut r = Roster::new();
        r.add(1, false);
        r.add(2, false);
        r.set_host(1);
        r.set_host(2);
        assert_eq!(r.get(1).map(|m| m.role), Some(Role::Member));
        assert_eq!(r.get(2).map(|m| m.role), Some(Role::Host));
        assert!(
            !r.set_role(2, Role::Member),
            "the host's role changes by transfer only"
        );
        r.remove(2);
        assert_eq!(r.host(), None);
    }
}
