//! Handing a session to another relay's core: a member connected here joins a room whose
//! home is another relay, and from then on that relay's core holds the session (its id, name,
//! identity and resume token) while this relay only carries its bytes.

use lockstep_proto::ServerTime;
use lockstep_proto::message::{MemberId, Transport};
use serde::{Deserialize, Serialize};

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
}
