//! Handing a session to another relay's core: a member connected here joins a room whose
//! home is another relay, and from then on that relay's core holds the session (its id, name,
//! identity and resume token) while this relay only carries its bytes.

use lockstep_proto::ServerTime;
use lockstep_proto::message::{MemberId, Transport};
use serde::{Deserialize, Serialize};

use lockstep_proto::message::GoingAway;

use super::{Conn, ConnId, MemberRecord, RelayCore, SessionIdentity};
use crate::limits::TokenBucket;

/// A session as it moves between cores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHandoff {
    /// The member's id (unique across relays: each relay hands out its own block).
    pub id: MemberId,
    /// Its display name.
    pub name: String,
    /// Who auth said it is.
    pub identity: SessionIdentity,
    /// Its resume token.
    pub resume_token: String,
}

impl RelayCore {
    /// Gives up the session on `conn` so another core can hold it; the connection stays open
    /// here (its bytes now go elsewhere). `None` when there is no session, or it is in a room
    /// here (leaving that is the member's own decision).
    pub fn export_session(&mut self, conn: ConnId) -> Option<SessionHandoff> {
        let id = self.conns.get(&conn)?.member?;
        let record = self.members.get(&id)?;
        if record.room.is_some() || record.conn != Some(conn) {
            return None;
        }
        let record = self.members.remove(&id)?;
        self.resume.remove(&record.resume_token);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.member = None;
        }
        self.update_gauges();
        Some(SessionHandoff {
            id,
            name: record.name,
            identity: record.identity,
            resume_token: record.resume_token,
        })
    }

    /// Takes over a session another relay's core gave up, on `conn` (which carries it through
    /// that relay). A session already here under that id is replaced: it can only be this
    /// one's earlier self.
    pub fn adopt_session(
        &mut self,
        conn: ConnId,
        transport: Transport,
        session: SessionHandoff,
        _now: ServerTime,
    ) {
        let mut room = None;
        if let Some(old) = self.members.get(&session.id) {
            self.resume.remove(&old.resume_token);
            if let Some(expires) = old.expires {
                self.member_expiry.remove(&(expires, session.id));
            }
            room = old.room.clone();
        }
        self.resume.insert(session.resume_token.clone(), session.id);
        self.members.insert(
            session.id,
            MemberRecord {
                name: session.name,
                identity: session.identity,
                conn: Some(conn),
                transport,
                room,
                resume_token: session.resume_token,
                expires: None,
                chat: TokenBucket::new(self.config.chat_rate.0, self.config.chat_rate.1),
                stats: None,
            },
        );
        self.conns.insert(
            conn,
            Conn {
                transport,
                member: Some(session.id),
            },
        );
        self.update_gauges();
    }

    /// Attaches `conn` (open here, its session was on the room's old home) to the member
    /// holding `token`, as a resume would, without a new `welcome`: the member gets the room
    /// afresh (`room_state`) and carries on. A token not known here: the client is told to
    /// reconnect and resume wherever its session is.
    pub fn reattach(&mut self, conn: ConnId, token: &str, now: ServerTime) {
        let Some((transport, member)) = self.conns.get(&conn).map(|c| (c.transport, c.member))
        else {
            return;
        };
        let found = self
            .resume
            .get(token)
            .copied()
            .filter(|id| self.members.get(id).is_some_and(|m| m.room.is_some()));
        let (Some(id), None) = (found, member) else {
            self.send(
                conn,
                GoingAway {
                    reason: "the room's relay is gone".into(),
                    reconnect_after_ms: 0,
                    room: None,
                }
                .into(),
            );
            self.close(conn, "room's relay gone");
            return;
        };
        let old = self.members.get(&id).and_then(|m| m.conn);
        if let Some(old) = old {
            self.close(old, "replaced by a reattached connection");
        }
        let Some(record) = self.members.get_mut(&id) else {
            return;
        };
        if let Some(expires) = record.expires.take() {
            self.member_expiry.remove(&(expires, id));
        }
        record.conn = Some(conn);
        record.transport = transport;
        let room_id = record.room.clone();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.member = Some(id);
        }
        if let Some(room_id) = room_id {
            if let Some(room) = self.rooms.get_mut(&room_id) {
                room.control.reconnect(id, now);
                room.announce([id], now);
            }
            self.send_room_state(id, &room_id, None);
            self.after_room_change(&room_id, now);
        }
    }
}
