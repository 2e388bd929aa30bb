//! Every message of the protocol, with its wire name, direction and transport class.
//!
//! Owns the registry (`messages!` below): one line per message type is the single source the
//! enum, the type-name lookup, the direction and transport-class tables, and the decoder's
//! dispatch are generated from, so none of them can fall out of step with the others.

mod clock;
mod common;
mod control;
mod playback;
mod room;
mod session;
mod social;

pub use clock::{MemberStat, MemberStats, Ping, Pong, Stats};
pub use common::{
    Action, MAX_SAFE_INTEGER, Media, Member, MemberId, PolicyMode, Proposal, ProposalId, RequestId,
    ResyncTarget, Role, RoomId, RoomInfo, RoomOptions, RoomSummary, Transport,
};
pub use control::{
    Decision, HostChangeReason, HostChanged, ModeChanged, Outcome, ProposalUpdate, SetMode,
    SetRole, TransferHost, Vote,
};
pub use playback::{
    BufferingEnd, BufferingStart, Pause, Play, Ready, Resync, Seek, SetRate, StateUpdate,
    TimelineReason,
};
pub use room::{
    CloseReason, CreateRoom, JoinRoom, Kick, LeaveReason, LeaveRoom, ListRooms, MemberLeft,
    Participants, RoomClosed, RoomList, RoomState, RoomUpdated, SetMedia, SetPassword,
    SetRoomOptions,
};
pub use session::{Ack, ErrorMessage, GoingAway, Hello, SessionLimits, Welcome};
pub use social::{Chat, ChatMessage, React, Reaction};

use serde::Serialize;

use crate::error::FieldError;
use crate::time::ServerTime;
use crate::validate::Validate;

/// Implements `Validate` for messages whose fields have no range rules.
macro_rules! no_ranges {
    ($($ty:ty),* $(,)?) => {
        $(impl $crate::validate::Validate for $ty {
            fn validate(&self) -> Result<(), $crate::error::FieldError> {
                Ok(())
            }
        })*
    };
}
pub(crate) use no_ranges;

/// Who sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by clients; the relay acts on it.
    ClientToRelay,
    /// Sent by the relay; clients act on it.
    RelayToClient,
}

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportClass {
    /// On the reliable, ordered control stream (a WebSocket message on the fallback).
    Control,
    /// As an unreliable datagram (a WebSocket message on the fallback): may be lost or
    /// reordered, never retransmitted, so only messages a newer one replaces travel this way.
    Datagram,
}

/// Parses bytes into one concrete message struct; implemented per encoding by the codec.
pub(crate) trait Parse {
    fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String>;
}

macro_rules! messages {
    ($( $(#[doc = $doc:literal])* $variant:ident($ty:ty) = $name:literal, $dir:ident, $class:ident; )*) => {
        /// A protocol message. Serialized as a map whose `type` field holds the wire name,
        /// followed by the message's own fields.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "type")]
        pub enum Message {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant($ty), )*
        }

        /// The type of a message, without its fields.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum MessageType {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl MessageType {
            /// Every message type, in registry order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$variant,)*];

            /// The wire name carried in the `type` field.
            pub fn name(self) -> &'static str {
                match self { $(MessageType::$variant => $name,)* }
            }

            /// The type with this wire name, if any.
            pub fn from_name(name: &str) -> Option<MessageType> {
                match name {
                    $($name => Some(MessageType::$variant),)*
                    _ => None,
                }
            }

            /// Who sends it.
            pub fn direction(self) -> Direction {
                match self { $(MessageType::$variant => Direction::$dir,)* }
            }

            /// How it travels.
            pub fn class(self) -> TransportClass {
                match self { $(MessageType::$variant => TransportClass::$class,)* }
            }

            pub(crate) fn parse<P: Parse>(self, bytes: &[u8]) -> Result<Message, String> {
                match self {
                    $(MessageType::$variant => P::parse::<$ty>(bytes).map(Message::$variant),)*
                }
            }
        }

        impl Message {
            /// The message's type.
            pub fn kind(&self) -> MessageType {
                match self { $(Message::$variant(_) => MessageType::$variant,)* }
            }
        }

        impl Validate for Message {
            fn validate(&self) -> Result<(), FieldError> {
                match self { $(Message::$variant(m) => m.validate(),)* }
            }
        }

        $(
            impl From<$ty> for Message {
                fn from(m: $ty) -> Message {
                    Message::$variant(m)
                }
            }
        )*
    };
}

messages! {
    // Session
    /// Opens a session (first message on every connection).
    Hello(Hello) = "hello", ClientToRelay, Control;
    /// Accepts a session.
    Welcome(Welcome) = "welcome", RelayToClient, Control;
    /// Reports a failed request or a client error.
    Error(ErrorMessage) = "error", RelayToClient, Control;
    /// Confirms a request.
    Ack(Ack) = "ack", RelayToClient, Control;
    /// Announces that the relay closes the connection.
    GoingAway(GoingAway) = "going_away", RelayToClient, Control;
    // Rooms
    /// Creates a room.
    CreateRoom(CreateRoom) = "create_room", ClientToRelay, Control;
    /// Joins a room.
    JoinRoom(JoinRoom) = "join_room", ClientToRelay, Control;
    /// Leaves the room.
    LeaveRoom(LeaveRoom) = "leave_room", ClientToRelay, Control;
    /// Asks for the public rooms.
    ListRooms(ListRooms) = "list_rooms", ClientToRelay, Control;
    /// Lists the public rooms.
    RoomList(RoomList) = "room_list", RelayToClient, Control;
    /// Gives a member the whole room.
    RoomState(RoomState) = "room_state", RelayToClient, Control;
    /// Announces changed room settings.
    RoomUpdated(RoomUpdated) = "room_updated", RelayToClient, Control;
    /// Changes the media.
    SetMedia(SetMedia) = "set_media", ClientToRelay, Control;
    /// Changes the room's settings.
    SetRoomOptions(SetRoomOptions) = "set_room_options", ClientToRelay, Control;
    /// Sets or clears the password.
    SetPassword(SetPassword) = "set_password", ClientToRelay, Control;
    /// Announces members who joined or changed.
    Participants(Participants) = "participants", RelayToClient, Control;
    /// Announces a member who left.
    MemberLeft(MemberLeft) = "member_left", RelayToClient, Control;
    /// Announces that the room closed.
    RoomClosed(RoomClosed) = "room_closed", RelayToClient, Control;
    /// Removes a member.
    Kick(Kick) = "kick", ClientToRelay, Control;
    // Playback
    /// Starts playback.
    Play(Play) = "play", ClientToRelay, Control;
    /// Pauses playback.
    Pause(Pause) = "pause", ClientToRelay, Control;
    /// Seeks.
    Seek(Seek) = "seek", ClientToRelay, Control;
    /// Changes the rate.
    SetRate(SetRate) = "set_rate", ClientToRelay, Control;
    /// Resyncs everyone.
    Resync(Resync) = "resync", ClientToRelay, Control;
    /// Carries the room's timeline.
    StateUpdate(StateUpdate) = "state_update", RelayToClient, Datagram;
    /// Reports readiness.
    Ready(Ready) = "ready", ClientToRelay, Control;
    /// Reports that buffering started.
    BufferingStart(BufferingStart) = "buffering_start", ClientToRelay, Control;
    /// Reports that buffering ended.
    BufferingEnd(BufferingEnd) = "buffering_end", ClientToRelay, Control;
    // Control
    /// Switches the policy mode.
    SetMode(SetMode) = "set_mode", ClientToRelay, Control;
    /// Announces a mode switch.
    ModeChanged(ModeChanged) = "mode_changed", RelayToClient, Control;
    /// Hands the host role over.
    TransferHost(TransferHost) = "transfer_host", ClientToRelay, Control;
    /// Makes a member a co-host or a plain member.
    SetRole(SetRole) = "set_role", ClientToRelay, Control;
    /// Announces a new host.
    HostChanged(HostChanged) = "host_changed", RelayToClient, Control;
    /// Announces a proposal or its new tally.
    Proposal(ProposalUpdate) = "proposal", RelayToClient, Control;
    /// Votes on a proposal.
    Vote(Vote) = "vote", ClientToRelay, Control;
    /// Announces how a proposal ended.
    Decision(Decision) = "decision", RelayToClient, Control;
    // Social
    /// Sends a chat line.
    Chat(Chat) = "chat", ClientToRelay, Control;
    /// Delivers a chat line.
    ChatMessage(ChatMessage) = "chat_message", RelayToClient, Control;
    /// Sends a reaction.
    React(React) = "react", ClientToRelay, Control;
    /// Delivers a reaction.
    Reaction(Reaction) = "reaction", RelayToClient, Control;
    // Clock and statistics
    /// Probes the clock.
    Ping(Ping) = "ping", ClientToRelay, Datagram;
    /// Answers a clock probe.
    Pong(Pong) = "pong", RelayToClient, Datagram;
    /// Reports a member's own sync figures.
    Stats(Stats) = "stats", ClientToRelay, Datagram;
    /// Shares members' sync figures.
    MemberStats(MemberStats) = "member_stats", RelayToClient, Datagram;
}

impl Message {
    /// Moves every relay time in the message by `micros`: a message stamped in one relay's
    /// clock, passed to a client that synchronised with another relay, is restamped in that
    /// relay's clock (the offset between the two is the relays' own estimate). Pings and pongs
    /// never cross relays and are left alone.
    pub fn shift_times(&mut self, micros: i64) {
        let shift = |t: &mut ServerTime| *t = t.add_micros(micros);
        match self {
            Message::Welcome(m) => shift(&mut m.server_time),
            Message::RoomState(m) => {
                shift(&mut m.timeline.at);
                for p in &mut m.proposals {
                    shift(&mut p.deadline);
                }
            }
            Message::StateUpdate(m) => shift(&mut m.timeline.at),
            Message::Proposal(m) => shift(&mut m.proposal.deadline),
            Message::ChatMessage(m) => shift(&mut m.at),
            Message::Reaction(m) => shift(&mut m.at),
            Message::Stats(m) => {
                if let Some(at) = &mut m.at {
                    shift(at);
                }
            }
            _ => {}
        }
    }
}
