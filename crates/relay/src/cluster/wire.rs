//! What relays say to each other through the backplane: MessagePack maps with a `type`, like
//! the client protocol, so a relay of another version fails to read a message instead of
//! misreading it.

use bytes::Bytes;
use lockstep_proto::message::Transport;
use serde::{Deserialize, Serialize};

use crate::core::SessionHandoff;

/// How one relay is reached by clients, as it registers itself for the others (and for
/// clients that must move to another relay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayInfo {
    /// The relay's id.
    pub id: String,
    /// Its WebSocket URL.
    pub websocket: String,
    /// Its WebTransport URL.
    pub webtransport: String,
    /// SHA-256 hashes (standard base64) of the WebTransport certificates clients may pin.
    pub certificate_hashes: Vec<String>,
}

/// A message on a relay's channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PeerMessage {
    /// Sent by a relay to itself: the backplane's round trip.
    Echo {
        /// When it was sent (the sender's server time, µs).
        t0: u64,
    },
    /// A clock probe from `from`, sent at `t0` (its server time, µs).
    ClockProbe {
        /// The prober's id (where the reply goes).
        from: String,
        /// Sent at (the prober's clock).
        t0: u64,
    },
    /// The reply to a probe: received at `t1`, answered at `t2` (the replier's clock).
    ClockReply {
        /// The replier's id.
        from: String,
        /// The probe's `t0`.
        t0: u64,
        /// Probe received (the replier's clock).
        t1: u64,
        /// Reply sent (the replier's clock).
        t2: u64,
    },
    /// A member connected to `from` joins `room`, homed on the receiver: its session moves
    /// there; `message` is the `join_room` (MessagePack, times in the receiver's clock).
    TunnelJoin {
        /// The member's relay.
        from: String,
        /// The member's connection on that relay.
        conn: u64,
        /// The room.
        room: String,
        /// How the member is connected.
        transport: Transport,
        /// The session.
        session: SessionHandoff,
        /// The `join_room`.
        message: Bytes,
    },
    /// A member connected to `from` resumes a session held by the receiver; `message` is the
    /// `hello` (the receiver checks its token again).
    TunnelResume {
        /// The member's relay.
        from: String,
        /// The member's connection on that relay.
        conn: u64,
        /// The room the resume token belongs to.
        room: String,
        /// How the member is connected.
        transport: Transport,
        /// The `hello`.
        message: Bytes,
    },
    /// A later message of a tunnelled member (MessagePack, times in the receiver's clock).
    TunnelMessage {
        /// The member's relay.
        from: String,
        /// The member's connection on that relay.
        conn: u64,
        /// The message.
        message: Bytes,
    },
    /// A tunnelled member's connection closed.
    TunnelClosed {
        /// The member's relay.
        from: String,
        /// The member's connection on that relay.
        conn: u64,
    },
    /// The home closed a tunnelled member's session: close its connection.
    TunnelEnd {
        /// The member's connection on the receiving relay.
        conn: u64,
        /// Why, for logs and the close frame.
        reason: String,
    },
    /// A message for tunnelled members (MessagePack, times in the sender's clock); on a
    /// room's channel every subscribed relay takes its own targets.
    Deliver {
        /// The sender (the room's home), whose clock the times are in.
        from: String,
        /// Who gets it: relay id and connection there.
        targets: Vec<(String, u64)>,
        /// The message.
        message: Bytes,
    },
}

impl PeerMessage {
    /// MessagePack bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Plain maps of strings and integers always encode.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// From MessagePack bytes; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<PeerMessage> {
        rmp_serde::from_slice(bytes).ok()
    }
}

impl RelayInfo {
    /// MessagePack bytes.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// From MessagePack bytes; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<RelayInfo> {
        rmp_serde::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let m = PeerMessage::ClockReply {
            from: "r1".into(),
            t0: 1,
            t1: 2,
            t2: 3,
        };
        assert_eq!(PeerMessage::decode(&m.encode()), Some(m));
        assert_eq!(PeerMessage::decode(b"\x81\xa4type\xa4nope"), None);
        assert_eq!(PeerMessage::decode(b""), None);
        let info = RelayInfo {
            id: "r1".into(),
            websocket: "ws://127.0.0.1:1/ws".into(),
            webtransport: "https://127.0.0.1:2/lockstep".into(),
            certificate_hashes: vec!["AAAA".into()],
        };
        assert_eq!(RelayInfo::decode(&info.encode()), Some(info));
    }
}
