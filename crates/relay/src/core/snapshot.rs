//! A room as data, with its members' sessions: what the relay holding a room stores after
//! every change that matters, and what the relay taking it over restores.
//!
//! Owns the rules of a move: every time in a snapshot is in the clock of the relay that took
//! it, and is shifted into the importer's clock by the offset between the two; every member
//! comes back disconnected (the relay it was connected to is gone), with the resume window
//! starting at the import, so members reconnect with their resume tokens and find their role,
//! the room and its timeline as they were.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use lockstep_consensus::{ControlSnapshot, RoomControl, SnapshotError};
use lockstep_proto::message::{GoingAway, Media, MemberId, RoomId, TimelineReason, Transport};
use lockstep_proto::{ServerTime, Timeline};
use serde::{Deserialize, Serialize};

use super::room::{self, Room};
use super::{MemberRecord, RelayCore, SessionIdentity};
use crate::limits::TokenBucket;

/// A room and its members' sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSnapshot {
    /// The room's id.
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// Its invite code.
    pub invite: String,
    /// The password's Argon2 PHC string (never the password).
    pub password: Option<String>,
    /// Most members.
    pub capacity: u32,
    /// What it plays.
    pub media: Option<Media>,
    /// Playback now.
    pub timeline: Timeline,
    /// Why the timeline last changed, and who changed it.
    pub last_reason: TimelineReason,
    /// Who changed it last.
    pub last_by: Option<MemberId>,
    /// Who created it (for the rooms-per-user limit).
    pub owner: String,
    /// Who controls what.
    pub control: ControlSnapshot,
    /// The members' sessions, in id order.
    pub members: Vec<SessionSnapshot>,
}

/// One member's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    /// The member's id.
    pub id: MemberId,
    /// Its display name.
    pub name: String,
    /// Its token's subject, when authenticated.
    pub user_id: Option<String>,
    /// Its token's display name.
    pub token_name: Option<String>,
    /// May create rooms.
    pub may_create_rooms: bool,
    /// Holds the `moderate` permission.
    pub moderator: bool,
    /// Its last transport.
    pub transport: Transport,
    /// The token it resumes with.
    pub resume_token: String,
}

/// Why a snapshot was not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The room (or its invite code) is here already.
    #[error("room {0} is already on this relay")]
    AlreadyHere(String),
    /// A member of the snapshot is a session here already (ids must be unique across relays).
    #[error("member {0} is already a session on this relay")]
    MemberHere(MemberId),
    /// The snapshot is inconsistent.
    #[error(transparent)]
    Inconsistent(#[from] SnapshotError),
}

impl RelayCore {
    /// The room `id` as data, if it is here.
    pub fn room_snapshot(&self, id: &RoomId) -> Option<RoomSnapshot> {
        let room = self.rooms.get(id)?;
        let members = room
            .members
            .iter()
            .filter_map(|m| {
                let r = self.members.get(m)?;
                Some(SessionSnapshot {
                    id: *m,
                    name: r.name.clone(),
                    user_id: r.identity.user_id.clone(),
                    token_name: r.identity.name.clone(),
                    may_create_rooms: r.identity.may_create_rooms,
                    moderator: r.identity.moderator,
                    transport: r.transport,
                    resume_token: r.resume_token.clone(),
                })
            })
            .collect();
        Some(RoomSnapshot {
            id: room.id.clone(),
            name: room.name.clone(),
            invite: room.invite.clone(),
            password: room.password.clone(),
            capacity: room.capacity,
            media: room.media.clone(),
            timeline: room.timeline,
            last_reason: room.last_reason,
            last_by: room.last_by,
            owner: room.owner.clone(),
            control: room.control.snapshot(),
            members,
        })
    }

    /// Takes over a room from its snapshot. `offset_us` is the snapshot's clock minus this
    /// relay's (from the peer clock estimate; 0 when unknown: relays anchor their clocks to
    /// UNIX time). Every member is disconnected, with the resume window starting `now`.
    pub fn import_room(
        &mut self,
        snapshot: RoomSnapshot,
        offset_us: i64,
        now: ServerTime,
    ) -> Result<RoomId, ImportError> {
        if self.rooms.contains_key(&snapshot.id) || self.invites.contains_key(&snapshot.invite) {
            return Err(ImportError::AlreadyHere(snapshot.id.0.clone()));
        }
        if let Some(m) = snapshot
            .members
            .iter()
            .find(|m| self.members.contains_key(&m.id))
        {
            return Err(ImportError::MemberHere(m.id));
        }
        let shift = |t: ServerTime| shift(t, offset_us);
        let mut control_snapshot = snapshot.control;
        shift_control(&mut control_snapshot, offset_us);
        let mut control = RoomControl::restore(control_snapshot)?;
        let mut timeline = snapshot.timeline;
        timeline.at = shift(timeline.at);

        let expires = now.add_micros(self.config.resume_window_us);
        let mut members = BTreeSet::new();
        for s in snapshot.members {
            control.disconnect(s.id, now);
            members.insert(s.id);
            self.resume.insert(s.resume_token.clone(), s.id);
            self.member_expiry.insert((expires, s.id));
            self.members.insert(
                s.id,
                MemberRecord {
                    name: s.name,
                    identity: SessionIdentity {
                        user_id: s.user_id,
                        name: s.token_name,
                        may_create_rooms: s.may_create_rooms,
                        moderator: s.moderator,
                    },
                    conn: None,
                    transport: s.transport,
                    room: Some(snapshot.id.clone()),
                    resume_token: s.resume_token,
                    expires: Some(expires),
                    chat: TokenBucket::new(self.config.chat_rate.0, self.config.chat_rate.1),
                    stats: None,
                },
            );
        }
        // What the disconnects decided (a host's grace period) plays out from here.
        while control.poll_output().is_some() {}
        let id = snapshot.id;
        let room = Room {
            id: id.clone(),
            name: snapshot.name,
            invite: snapshot.invite.clone(),
            password: snapshot.password,
            capacity: snapshot.capacity,
            media: snapshot.media,
            control,
            timeline,
            last_reason: snapshot.last_reason,
            last_by: snapshot.last_by,
            empty_since: None,
            members,
            owner: snapshot.owner,
            repeats: VecDeque::new(),
            next_heartbeat: now.add_micros(room::HEARTBEAT_US),
            pending_participants: BTreeSet::new(),
            participants_due: None,
            stats_due: None,
            kick_reasons: HashMap::new(),
            proposals_seen: BTreeSet::new(),
            pending_tallies: BTreeMap::new(),
            tally_window_end: None,
            count_announced: None,
        };
        self.invites.insert(snapshot.invite, id.clone());
        self.rooms.insert(id.clone(), room);
        self.update_gauges();
        self.reschedule(&id);
        Ok(id)
    }
}

impl RelayCore {
    /// Another relay holds the room now (it took it over while this one was cut off): the
    /// room and its members' sessions leave this relay, and each connected member is told
    /// to come back at once, to resume on a relay that has the room. Not a removal: nothing
    /// is deleted from the backplane.
    pub fn evict_room(&mut self, id: &RoomId) {
        let Some(room) = self.rooms.remove(id) else {
            return;
        };
        self.invites.remove(&room.invite);
        self.unschedule(id);
        for m in &room.members {
            let Some(record) = self.members.remove(m) else {
                continue;
            };
            self.resume.remove(&record.resume_token);
            if let Some(expires) = record.expires {
                self.member_expiry.remove(&(expires, *m));
            }
            if let Some(conn) = record.conn {
                self.send(
                    conn,
                    GoingAway {
                        reason: "the room moved to another relay".into(),
                        reconnect_after_ms: 0,
                        room: Some(id.clone()),
                    }
                    .into(),
                );
                self.close(conn, "room moved to another relay");
            }
        }
        self.update_gauges();
    }
}

fn shift(t: ServerTime, offset_us: i64) -> ServerTime {
    let us = i64::try_from(t.as_micros()).unwrap_or(i64::MAX);
    ServerTime::from_micros(u64::try_from(us.saturating_sub(offset_us)).unwrap_or(0))
}

fn shift_control(c: &mut ControlSnapshot, offset_us: i64) {
    for m in &mut c.members {
        if let Some((_, at)) = &mut m.position {
            *at = shift(*at, offset_us);
        }
    }
    for p in &mut c.proposals {
        p.proposal.deadline = shift(p.proposal.deadline, offset_us);
    }
    if let Some(p) = &mut c.pending_play {
        p.until = shift(p.until, offset_us);
    }
    if let Some(t) = &mut c.buffering_hold {
        *t = shift(*t, offset_us);
    }
    if let Some((_, t)) = &mut c.host_grace {
        *t = shift(*t, offset_us);
    }
}
