//! The relay's core: sessions, rooms, and everything members say to each other, as one sans-IO
//! state machine.
//!
//! Owns the room behaviour of the relay: who is connected as which member, resume, rooms and
//! their timelines, commands through `lockstep-consensus`, the lead before a command takes
//! effect, coalescing, and every timer. It never touches a socket or reads a clock: the IO
//! shell (WebTransport, WebSocket) feeds it decoded messages with the current time and
//! delivers its outputs. Pings never reach it: the shells answer them on the spot, so clock
//! sync measures the network, not this machine's queue.

mod handoff;
pub mod media;
pub mod outgoing;
mod room;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use lockstep_consensus::{Cause, Output as ControlOutput, PolicyEvent, RoomControl, Verdict};
use lockstep_proto::limits::{self, MAX_CLIENT_FRAME, MAX_DATAGRAM_PAYLOAD, PROTOCOL_VERSION};
use lockstep_proto::message::{
    Ack, Action, Chat, ChatMessage, CloseReason, CreateRoom, Decision, Direction, ErrorMessage,
    GoingAway, Hello, HostChanged, JoinRoom, LeaveReason, MemberId, MemberLeft, MemberStat,
    MemberStats, ModeChanged, Participants, ProposalUpdate, React, Reaction, RequestId, RoomClosed,
    RoomId, RoomList, RoomState, RoomSummary, RoomUpdated, SessionLimits, StateUpdate, Stats,
    TimelineReason, Transport, Welcome,
};
use lockstep_proto::{ErrorCode, Message, PlaybackCommand, ServerTime, Timeline};
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::limits::TokenBucket;
use crate::metrics::Metrics;
pub use handoff::SessionHandoff;
pub use media::MediaAllowlist;
pub use outgoing::Outgoing;
use room::{Room, STATS_ENTRIES, STATS_EVERY_US};
pub use snapshot::{ImportError, RoomSnapshot, SessionSnapshot};

/// A transport connection, numbered by the shell.
pub type ConnId = u64;

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// How long a dropped member may come back with its resume token (µs).
    pub resume_window_us: i64,
    /// How long an empty room lives (µs).
    pub room_idle_expiry_us: i64,
    /// Default room capacity.
    pub room_capacity: u32,
    /// Rooms one user may own at once.
    pub rooms_per_user: u32,
    /// Hosts media URLs may point at.
    pub media_hosts: MediaAllowlist,
    /// Shortest lead between a command and its effect (µs).
    pub min_lead_us: i64,
    /// Longest lead (µs).
    pub max_lead_us: i64,
    /// Suggested ping interval once synchronised.
    pub ping_interval_ms: u32,
    /// Chat lines (and reactions) per member: rate per second and burst.
    pub chat_rate: (f64, f64),
    /// Protocol features the relay supports.
    pub features: Vec<String>,
    /// The member ids this relay hands out: `MEMBER_ID_BLOCK` of them from `block × block size`
    /// (block 0 starts at 1). Relays sharing rooms take different blocks, so a member id
    /// means the same member on every relay.
    pub member_id_block: u32,
}

/// Member ids per block (see `CoreConfig::member_id_block`): 4,096 blocks of 2^20.
pub const MEMBER_ID_BLOCK: u32 = 1 << 20;

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            resume_window_us: 90_000_000,
            room_idle_expiry_us: 600_000_000,
            room_capacity: lockstep_proto::limits::DEFAULT_ROOM_CAPACITY,
            rooms_per_user: 5,
            media_hosts: MediaAllowlist::default(),
            min_lead_us: 100_000,
            max_lead_us: 1_000_000,
            // One tiny datagram a second per client keeps the clock estimate fresh and gives
            // the minimum-delay filter enough samples on jittery paths.
            ping_interval_ms: 1_000,
            chat_rate: (0.5, 5.0),
            features: Vec::new(),
            member_id_block: 0,
        }
    }
}

/// Who a session is, as auth established it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionIdentity {
    /// The token's subject, when authenticated.
    pub user_id: Option<String>,
    /// The token's display name.
    pub name: Option<String>,
    /// May create rooms.
    pub may_create_rooms: bool,
    /// Holds the `moderate` permission.
    pub moderator: bool,
}

/// What the shell must do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send a message to a connection.
    Send {
        /// The connection.
        to: ConnId,
        /// The message, shared by every recipient of a broadcast.
        message: Arc<Outgoing>,
    },
    /// Close a connection (after sending what was queued for it).
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for logs and the close frame.
        reason: String,
    },
}

#[derive(Debug)]
struct Conn {
    transport: Transport,
    member: Option<MemberId>,
}

#[derive(Debug)]
struct MemberRecord {
    name: String,
    identity: SessionIdentity,
    conn: Option<ConnId>,
    transport: Transport,
    room: Option<RoomId>,
    resume_token: String,
    expires: Option<ServerTime>,
    chat: TokenBucket,
    stats: Option<Stats>,
}

/// The relay core.
#[derive(Debug)]
pub struct RelayCore {
    config: CoreConfig,
    rng: StdRng,
    conns: HashMap<ConnId, Conn>,
    members: HashMap<MemberId, MemberRecord>,
    resume: HashMap<String, MemberId>,
    rooms: HashMap<RoomId, Room>,
    invites: HashMap<String, RoomId>,
    room_timers: BTreeSet<(ServerTime, RoomId)>,
    room_scheduled: HashMap<RoomId, ServerTime>,
    member_expiry: BTreeSet<(ServerTime, MemberId)>,
    next_member: MemberId,
    outputs: VecDeque<Output>,
    metrics: Arc<Metrics>,
    shutting_down: bool,
    /// Rooms that may have changed since the shell last asked (to be stored elsewhere).
    touched: BTreeSet<RoomId>,
}

/// Argon2id with small parameters: a room password guards a watch party, not a bank, and the
/// core hashes on its own thread.
fn argon2() -> Argon2<'static> {
    let params = Params::new(4_096, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl RelayCore {
    /// A core. `seed` feeds the generator of room ids, invite codes, resume tokens and salts:
    /// the shell passes fresh OS randomness; tests pass a fixed seed.
    pub fn new(config: CoreConfig, seed: [u8; 32], metrics: Arc<Metrics>) -> Self {
        RelayCore {
            config,
            rng: StdRng::from_seed(seed),
            conns: HashMap::new(),
            members: HashMap::new(),
            resume: HashMap::new(),
            rooms: HashMap::new(),
            invites: HashMap::new(),
            room_timers: BTreeSet::new(),
            room_scheduled: HashMap::new(),
            member_expiry: BTreeSet::new(),
            next_member: 0,
            outputs: VecDeque::new(),
            metrics,
            shutting_down: false,
            touched: BTreeSet::new(),
        }
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Rooms that exist.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Members that exist (connected or within their resume window).
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The public rooms, for `list_rooms` and `GET /api/rooms`.
    pub fn public_rooms(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .values()
            .filter(|r| r.control.options().public)
            .map(Room::summary)
            .collect();
        rooms.sort_by(|a, b| a.id.cmp(&b.id));
        rooms
    }

    /// A member id from this relay's block not in use here (ids wrap within the block).
    fn next_member_id(&mut self) -> MemberId {
        let base = (self.config.member_id_block % (u32::MAX / MEMBER_ID_BLOCK))
            .saturating_mul(MEMBER_ID_BLOCK);
        for _ in 0..MEMBER_ID_BLOCK {
            let offset = self.next_member % MEMBER_ID_BLOCK;
            self.next_member = self.next_member.wrapping_add(1);
            let id = base + offset;
            if id != 0 && !self.members.contains_key(&id) {
                return id;
            }
        }
        // A block's worth of sessions at once: reuse is the lesser evil than a panic.
        base.max(1)
    }

    /// Whether `token` resumes a session here.
    pub fn knows_resume(&self, token: &str) -> bool {
        self.resume.contains_key(token)
    }

    /// One room by id, for `GET /api/rooms/{id}` (public rooms only).
    pub fn public_room(&self, id: &str) -> Option<RoomSummary> {
        self.rooms
            .get(&RoomId::new(id))
            .filter(|r| r.control.options().public)
            .map(Room::summary)
    }

    // --- Connections and sessions ------------------------------------------------------------

    /// A transport connection opened; its first message must be `hello`.
    pub fn open(&mut self, conn: ConnId, transport: Transport) {
        self.conns.insert(
            conn,
            Conn {
                transport,
                member: None,
            },
        );
    }

    /// A `hello`, with what auth made of its token.
    pub fn hello(
        &mut self,
        conn: ConnId,
        hello: Hello,
        identity: Result<SessionIdentity, (ErrorCode, String)>,
        now: ServerTime,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.member.is_some() {
            self.error(
                conn,
                None,
                ErrorCode::InvalidState,
                "hello was already sent",
                false,
            );
            return;
        }
        let transport = c.transport;
        if self.shutting_down {
            self.error(
                conn,
                None,
                ErrorCode::Internal,
                "the relay is shutting down",
                true,
            );
            return;
        }
        if hello.version != PROTOCOL_VERSION {
            self.error(
                conn,
                None,
                ErrorCode::UnsupportedVersion,
                format!(
                    "this relay speaks protocol version {PROTOCOL_VERSION} only; the client sent {}",
                    hello.version
                ),
                true,
            );
            return;
        }
        let identity = match identity {
            Ok(identity) => identity,
            Err((code, message)) => {
                self.metrics.auth_failure();
                self.error(conn, None, code, message, true);
                return;
            }
        };

        // Resume: the same member, role and room, if the token is known and (when
        // authenticated) belongs to the same user.
        let resumed = hello
            .resume
            .as_ref()
            .and_then(|token| self.resume.get(token).copied())
            .filter(|id| {
                self.members
                    .get(id)
                    .is_some_and(|m| m.identity.user_id == identity.user_id)
            });
        let (id, was_resumed) = match resumed {
            Some(id) => {
                let old = self.members.get(&id).and_then(|m| m.conn);
                if let Some(old) = old {
                    // The old connection may not know it is dead yet; the new one wins.
                    self.close(old, "replaced by a resumed connection");
                }
                if let Some(record) = self.members.get_mut(&id) {
                    if let Some(expires) = record.expires.take() {
                        self.member_expiry.remove(&(expires, id));
                    }
                    record.conn = Some(conn);
                    record.transport = transport;
                }
                (id, true)
            }
            None => {
                let id = self.next_member_id();
                let name = identity
                    .name
                    .clone()
                    .or_else(|| hello.name.clone())
                    .unwrap_or_else(|| format!("Guest {id}"));
                let resume_token = format!("r_{}", self.random_string(32));
                self.resume.insert(resume_token.clone(), id);
                self.members.insert(
                    id,
                    MemberRecord {
                        name,
                        identity,
                        conn: Some(conn),
                        transport,
                        room: None,
                        resume_token,
                        expires: None,
                        chat: TokenBucket::new(self.config.chat_rate.0, self.config.chat_rate.1),
                        stats: None,
                    },
                );
                (id, false)
            }
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.member = Some(id);
        }
        let Some(record) = self.members.get(&id) else {
            return;
        };
        let features = hello
            .features
            .iter()
            .filter(|f| self.config.features.contains(f))
            .cloned()
            .collect();
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            you: id,
            name: record.name.clone(),
            resume_token: record.resume_token.clone(),
            resumed: was_resumed,
            server_time: now,
            features,
            limits: SessionLimits {
                max_frame: MAX_CLIENT_FRAME as u32,
                max_datagram: MAX_DATAGRAM_PAYLOAD as u32,
                ping_interval_ms: self.config.ping_interval_ms,
            },
        };
        let room = record.room.clone();
        self.send(conn, welcome.into());
        if was_resumed && let Some(room_id) = room {
            if let Some(room) = self.rooms.get_mut(&room_id) {
                room.control.reconnect(id, now);
                room.announce([id], now);
            }
            self.send_room_state(id, &room_id, None);
            self.after_room_change(&room_id, now);
        }
    }

    /// Something the shell could not turn into a message (or a limit it enforced).
    pub fn bad_input(
        &mut self,
        conn: ConnId,
        code: ErrorCode,
        message: String,
        req: Option<RequestId>,
    ) {
        self.metrics.decode_error(code);
        let welcomed = self.conns.get(&conn).is_some_and(|c| c.member.is_some());
        // Before the welcome every error is fatal: there is no session to keep.
        self.error(conn, req, code, message, !welcomed);
    }

    /// A decoded message from a connection (`hello` goes to [`RelayCore::hello`]).
    pub fn message(&mut self, conn: ConnId, message: Message, now: ServerTime) {
        self.metrics.message_in(message.kind());
        let Some(member) = self.conns.get(&conn).and_then(|c| c.member) else {
            if matches!(message, Message::Hello(_)) {
                return;
            }
            self.error(
                conn,
                None,
                ErrorCode::HelloRequired,
                "the first message must be hello",
                true,
            );
            return;
        };
        if message.kind().direction() == Direction::RelayToClient {
            self.error(
                conn,
                request_id(&message),
                ErrorCode::UnknownType,
                format!("`{}` is a relay-to-client message", message.kind().name()),
                false,
            );
            return;
        }
        match message {
            Message::Hello(_) => self.error(
                conn,
                None,
                ErrorCode::InvalidState,
                "hello was already sent",
                false,
            ),
            Message::CreateRoom(m) => self.create_room(conn, member, m, now),
            Message::JoinRoom(m) => self.join_room(conn, member, m, now),
            Message::LeaveRoom(m) => {
                if self.member_room(member).is_some() {
                    self.leave_room(member, LeaveReason::Left, None, now);
                    self.ack(conn, m.req, None);
                } else {
                    self.error(conn, m.req, ErrorCode::NotInRoom, "not in a room", false);
                }
            }
            Message::ListRooms(m) => {
                let rooms = self.public_rooms();
                self.send(conn, RoomList { req: m.req, rooms }.into());
            }
            Message::Play(m) => self.action(conn, member, m.req, Action::Play, now),
            Message::Pause(m) => self.action(conn, member, m.req, Action::Pause, now),
            Message::Seek(m) => self.action(
                conn,
                member,
                m.req,
                Action::Seek {
                    position: m.position,
                },
                now,
            ),
            Message::SetRate(m) => {
                self.action(conn, member, m.req, Action::SetRate { rate: m.rate }, now)
            }
            Message::Resync(m) => self.action(conn, member, m.req, Action::Resync, now),
            Message::SetMode(m) => {
                self.action(conn, member, m.req, Action::SetMode { mode: m.mode }, now)
            }
            Message::TransferHost(m) => {
                self.action(conn, member, m.req, Action::TransferHost { to: m.to }, now)
            }
            Message::Kick(m) => {
                if let (Some(reason), Some(room)) = (m.reason.clone(), self.member_room_mut(member))
                {
                    room.kick_reasons.insert(m.member, reason);
                }
                self.action(conn, member, m.req, Action::Kick { member: m.member }, now)
            }
            Message::SetMedia(m) => {
                if let Some(url) = &m.media.url
                    && !self.config.media_hosts.allows(url)
                {
                    self.error(
                        conn,
                        m.req,
                        ErrorCode::MediaNotAllowed,
                        "the media URL's host is not on this relay's allowlist",
                        false,
                    );
                    return;
                }
                self.action(
                    conn,
                    member,
                    m.req,
                    Action::SetMedia { media: m.media },
                    now,
                )
            }
            Message::SetRoomOptions(m) => {
                let room = self.room_request(conn, member, m.req, now, |control| {
                    control.set_options(member, m.options, now)
                });
                if let Some(room_id) = room {
                    self.broadcast_room_updated(&room_id);
                }
            }
            Message::SetPassword(m) => {
                let Some(room_id) = self.member_room(member) else {
                    return self.error(conn, m.req, ErrorCode::NotInRoom, "not in a room", false);
                };
                let allowed = self
                    .rooms
                    .get(&room_id)
                    .is_some_and(|r| r.control.may_administer(member));
                if !allowed {
                    return self.error(
                        conn,
                        m.req,
                        ErrorCode::Forbidden,
                        "only the host may change the password",
                        false,
                    );
                }
                let hash = match &m.password {
                    Some(p) => match self.hash_password(p) {
                        Some(h) => Some(h),
                        None => {
                            return self.error(
                                conn,
                                m.req,
                                ErrorCode::Internal,
                                "could not hash the password",
                                false,
                            );
                        }
                    },
                    None => None,
                };
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.password = hash;
                }
                self.ack(conn, m.req, None);
                self.broadcast_room_updated(&room_id);
            }
            Message::SetRole(m) => {
                self.room_request(conn, member, m.req, now, |control| {
                    control.set_role(member, m.member, m.role, now)
                });
            }
            Message::Vote(m) => {
                self.metrics.vote();
                self.room_request(conn, member, m.req, now, |control| {
                    control.vote(member, m.proposal, m.yes, now)
                });
            }
            Message::Ready(m) => {
                self.member_update(conn, member, m.req, now, |room| {
                    room.control.set_ready(member, m.ready, m.wait_for_me, now)
                });
            }
            Message::BufferingStart(m) => {
                self.member_update(conn, member, m.req, now, |room| {
                    room.control.set_buffering(member, true, now)
                });
            }
            Message::BufferingEnd(m) => {
                self.member_update(conn, member, m.req, now, |room| {
                    room.control.set_buffering(member, false, now)
                });
            }
            Message::Chat(m) => self.chat(conn, member, m, now),
            Message::React(m) => self.react(conn, member, m, now),
            Message::Stats(s) => self.stats(member, s, now),
            // Answered by the shell; a stray one needs nothing.
            Message::Ping(_) => {}
            // Relay-to-client types were refused above.
            Message::Welcome(_)
            | Message::Error(_)
            | Message::Ack(_)
            | Message::GoingAway(_)
            | Message::RoomList(_)
            | Message::RoomState(_)
            | Message::RoomUpdated(_)
            | Message::Participants(_)
            | Message::MemberLeft(_)
            | Message::RoomClosed(_)
            | Message::StateUpdate(_)
            | Message::ModeChanged(_)
            | Message::HostChanged(_)
            | Message::Proposal(_)
            | Message::Decision(_)
            | Message::ChatMessage(_)
            | Message::Reaction(_)
            | Message::Pong(_)
            | Message::MemberStats(_) => {}
        }
    }

    /// A connection closed. Its member stays for the resume window.
    pub fn closed(&mut self, conn: ConnId, now: ServerTime) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let Some(id) = c.member else {
            return;
        };
        let expires = now.add_micros(self.config.resume_window_us);
        let room_id = match self.members.get_mut(&id) {
            // A resumed member has moved to another connection already.
            Some(record) if record.conn == Some(conn) => {
                record.conn = None;
                record.expires = Some(expires);
                record.room.clone()
            }
            _ => return,
        };
        self.member_expiry.insert((expires, id));
        if let Some(room_id) = room_id {
            if let Some(room) = self.rooms.get_mut(&room_id) {
                room.control.disconnect(id, now);
            }
            self.after_room_change(&room_id, now);
        }
    }

    /// The relay is shutting down: every client is told to come back later.
    pub fn shutdown(&mut self, reconnect_after_ms: u32) {
        self.shutting_down = true;
        let conns: Vec<(ConnId, Option<RoomId>)> = self
            .conns
            .iter()
            .map(|(id, c)| {
                let room = c
                    .member
                    .and_then(|m| self.members.get(&m))
                    .and_then(|m| m.room.clone());
                (*id, room)
            })
            .collect();
        for (conn, room) in conns {
            self.send(
                conn,
                GoingAway {
                    reason: "the relay is shutting down".into(),
                    reconnect_after_ms,
                    room,
                }
                .into(),
            );
            self.close(conn, "relay shutting down");
        }
    }

    // --- Timers ------------------------------------------------------------------------------

    /// The next time `handle_timeout` must run.
    pub fn poll_timeout(&self) -> Option<ServerTime> {
        let room = self.room_timers.first().map(|(t, _)| *t);
        let member = self.member_expiry.first().map(|(t, _)| *t);
        room.into_iter().chain(member).min()
    }

    /// Lets time pass up to `now`.
    pub fn handle_timeout(&mut self, now: ServerTime) {
        while let Some((t, id)) = self.member_expiry.first().cloned() {
            if t > now {
                break;
            }
            self.member_expiry.remove(&(t, id));
            self.expire_member(id, now);
        }
        let due: Vec<RoomId> = self
            .room_timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| id.clone())
            .collect();
        for id in due {
            self.room_tick(&id, now);
        }
    }

    fn expire_member(&mut self, id: MemberId, now: ServerTime) {
        let Some(record) = self.members.get(&id) else {
            return;
        };
        if record.conn.is_some() {
            return;
        }
        if record.room.is_some() {
            self.leave_room(id, LeaveReason::Disconnected, None, now);
        }
        if let Some(record) = self.members.remove(&id) {
            self.resume.remove(&record.resume_token);
        }
    }

    fn room_tick(&mut self, id: &RoomId, now: ServerTime) {
        let idle = self.config.room_idle_expiry_us;
        let Some(room) = self.rooms.get_mut(id) else {
            self.unschedule(id);
            return;
        };
        if room.members.is_empty() && room.empty_since.is_some_and(|t| t.add_micros(idle) <= now) {
            self.remove_room(id);
            return;
        }
        room.control.handle_timeout(now);
        let mut repeat = false;
        while room.repeats.front().is_some_and(|t| *t <= now) {
            room.repeats.pop_front();
            repeat = true;
        }
        if room.next_heartbeat <= now {
            room.next_heartbeat = now.add_micros(room::HEARTBEAT_US);
            repeat = true;
        }
        if repeat {
            let update = StateUpdate {
                room: id.clone(),
                timeline: room.timeline,
                reason: TimelineReason::Repeat,
                by: None,
            };
            self.broadcast(id, update.into());
        }
        self.flush_participants(id, now);
        self.flush_tallies(id, now);
        self.flush_stats(id, now);
        // A heartbeat changes nothing worth storing; what the control's timers decided does.
        if self.apply_control_outputs(id, now) {
            self.touched.insert(id.clone());
        }
    }

    // --- Rooms -------------------------------------------------------------------------------

    fn create_room(&mut self, conn: ConnId, member: MemberId, m: CreateRoom, now: ServerTime) {
        let Some(record) = self.members.get(&member) else {
            return;
        };
        if record.room.is_some() {
            return self.error(
                conn,
                m.req,
                ErrorCode::AlreadyInRoom,
                "leave your room first",
                false,
            );
        }
        if !record.identity.may_create_rooms {
            return self.error(
                conn,
                m.req,
                ErrorCode::Forbidden,
                "you may not create rooms",
                false,
            );
        }
        let owner = owner_key(member, &record.identity);
        let moderator = record.identity.moderator;
        let req = m.req;
        match self.new_room(owner, Some((member, moderator)), m, now) {
            Ok((id, _)) => {
                if let Some(record) = self.members.get_mut(&member) {
                    record.room = Some(id.clone());
                }
                self.update_gauges();
                self.send_room_state(member, &id, req);
                self.after_room_change(&id, now);
            }
            Err((code, message)) => self.error(conn, req, code, message, false),
        }
    }

    /// Creates a room nobody is in yet (the HTTP API): the first to join hosts it. `owner`
    /// names the creator for the rooms-per-user limit. Returns the room id and invite code.
    pub fn create_room_via_api(
        &mut self,
        owner: String,
        m: CreateRoom,
        now: ServerTime,
    ) -> Result<(RoomId, String), (ErrorCode, String)> {
        use lockstep_proto::Validate;
        m.validate()
            .map_err(|e| (ErrorCode::InvalidField, e.to_string()))?;
        let created = self.new_room(owner, None, m, now)?;
        self.after_room_change(&created.0, now);
        Ok(created)
    }

    fn new_room(
        &mut self,
        owner: String,
        creator: Option<(MemberId, bool)>,
        m: CreateRoom,
        now: ServerTime,
    ) -> Result<(RoomId, String), (ErrorCode, String)> {
        let owned = self.rooms.values().filter(|r| r.owner == owner).count();
        if owned >= self.config.rooms_per_user as usize {
            return Err((
                ErrorCode::TooManyRooms,
                format!("you already own {owned} rooms"),
            ));
        }
        if let Some(url) = m.media.as_ref().and_then(|media| media.url.as_ref())
            && !self.config.media_hosts.allows(url)
        {
            return Err((
                ErrorCode::MediaNotAllowed,
                "the media URL's host is not on this relay's allowlist".into(),
            ));
        }
        let password = match &m.password {
            Some(p) => Some(self.hash_password(p).ok_or((
                ErrorCode::Internal,
                "could not hash the password".to_string(),
            ))?),
            None => None,
        };
        let id = RoomId::new(self.random_string(10));
        let invite = self.random_string(12);
        let options = m.options.unwrap_or_default();
        let (control, members, empty_since) = match creator {
            Some((member, moderator)) => {
                let mut control = RoomControl::new(member, moderator, m.mode, options);
                control.set_ready(member, false, true, now);
                while control.poll_output().is_some() {}
                (control, BTreeSet::from([member]), None)
            }
            None => (
                RoomControl::new_empty(m.mode, options),
                BTreeSet::new(),
                Some(now),
            ),
        };
        let room = Room {
            id: id.clone(),
            name: m.name,
            invite: invite.clone(),
            password,
            capacity: self.config.room_capacity,
            media: m.media,
            control,
            timeline: Timeline::new(now),
            last_reason: TimelineReason::Repeat,
            last_by: None,
            members,
            owner,
            repeats: VecDeque::new(),
            next_heartbeat: now.add_micros(room::HEARTBEAT_US),
            pending_participants: BTreeSet::new(),
            participants_due: None,
            stats_due: None,
            empty_since,
            kick_reasons: HashMap::new(),
            proposals_seen: BTreeSet::new(),
            pending_tallies: BTreeMap::new(),
            tally_window_end: None,
            count_announced: None,
        };
        self.rooms.insert(id.clone(), room);
        self.invites.insert(invite.clone(), id.clone());
        self.update_gauges();
        Ok((id, invite))
    }

    fn join_room(&mut self, conn: ConnId, member: MemberId, m: JoinRoom, now: ServerTime) {
        let Some(record) = self.members.get(&member) else {
            return;
        };
        if record.room.is_some() {
            return self.error(
                conn,
                m.req,
                ErrorCode::AlreadyInRoom,
                "leave your room first",
                false,
            );
        }
        let moderator = record.identity.moderator;
        let room_id = RoomId::new(m.room.clone());
        let room_id = if self.rooms.contains_key(&room_id) {
            room_id
        } else if let Some(id) = self.invites.get(&m.room) {
            id.clone()
        } else {
            return self.error(
                conn,
                m.req,
                ErrorCode::RoomNotFound,
                "no room has this id or invite code",
                false,
            );
        };
        let Some(room) = self.rooms.get(&room_id) else {
            return;
        };
        // A moderator may enter locked and full rooms, but still needs the password.
        if room.control.options().locked && !moderator {
            return self.error(
                conn,
                m.req,
                ErrorCode::RoomLocked,
                "the room is locked",
                false,
            );
        }
        if room.members.len() >= room.capacity as usize && !moderator {
            return self.error(conn, m.req, ErrorCode::RoomFull, "the room is full", false);
        }
        if let Some(hash) = &room.password {
            let ok = m
                .password
                .as_deref()
                .is_some_and(|p| verify_password(hash, p));
            if !ok {
                return self.error(
                    conn,
                    m.req,
                    ErrorCode::WrongPassword,
                    "the room password is missing or wrong",
                    false,
                );
            }
        }
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        room.members.insert(member);
        room.empty_since = None;
        room.control.join(member, moderator, now);
        room.announce([member], now);
        if let Some(record) = self.members.get_mut(&member) {
            record.room = Some(room_id.clone());
        }
        self.update_gauges();
        self.send_room_state(member, &room_id, m.req);
        self.after_room_change(&room_id, now);
    }

    fn leave_room(
        &mut self,
        member: MemberId,
        reason: LeaveReason,
        message: Option<String>,
        now: ServerTime,
    ) {
        let Some(room_id) = self.member_room(member) else {
            return;
        };
        if let Some(record) = self.members.get_mut(&member) {
            record.room = None;
            record.stats = None;
        }
        let notice: Message = MemberLeft {
            room: room_id.clone(),
            member,
            reason,
            message,
        }
        .into();
        // The member who leaves learns it too (a kicked member must).
        if let Some(conn) = self.members.get(&member).and_then(|r| r.conn) {
            self.send(conn, notice.clone());
        }
        if let Some(room) = self.rooms.get_mut(&room_id) {
            room.members.remove(&member);
            room.pending_participants.remove(&member);
            room.control.leave(member, now);
            if room.members.is_empty() {
                room.empty_since = Some(now);
            }
        }
        self.broadcast(&room_id, notice);
        self.update_gauges();
        self.after_room_change(&room_id, now);
    }

    fn remove_room(&mut self, id: &RoomId) {
        let Some(room) = self.rooms.remove(id) else {
            return;
        };
        self.touched.insert(id.clone());
        self.invites.remove(&room.invite);
        self.unschedule(id);
        for member in &room.members {
            if let Some(record) = self.members.get_mut(member) {
                record.room = None;
                if let Some(conn) = record.conn {
                    self.outputs.push_back(Output::Send {
                        to: conn,
                        message: Arc::new(Outgoing::new(
                            RoomClosed {
                                room: id.clone(),
                                reason: CloseReason::Expired,
                            }
                            .into(),
                        )),
                    });
                }
            }
        }
        self.update_gauges();
    }

    // --- Actions -----------------------------------------------------------------------------

    fn action(
        &mut self,
        conn: ConnId,
        member: MemberId,
        req: Option<RequestId>,
        action: Action,
        now: ServerTime,
    ) {
        let Some(room_id) = self.member_room(member) else {
            return self.error(conn, req, ErrorCode::NotInRoom, "not in a room", false);
        };
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        match room.control.request(member, action, now) {
            Verdict::Apply => self.ack(conn, req, None),
            Verdict::Propose(id) => self.ack(conn, req, Some(id)),
            Verdict::Reject(r) => self.error(conn, req, r.code, r.message, false),
        }
        self.after_room_change(&room_id, now);
    }

    /// Every room here.
    pub fn room_ids(&self) -> Vec<RoomId> {
        self.rooms.keys().cloned().collect()
    }

    /// The rooms that may have changed since the last call (removed ones included): the shell
    /// stores those that did, for another relay to take over.
    pub fn take_touched_rooms(&mut self) -> BTreeSet<RoomId> {
        std::mem::take(&mut self.touched)
    }

    /// Carries out what the room's control decided, then re-arms the room's timer.
    fn after_room_change(&mut self, room_id: &RoomId, now: ServerTime) {
        self.touched.insert(room_id.clone());
        self.apply_control_outputs(room_id, now);
    }

    /// Carries out what the room's control decided and re-arms the room's timer; whether it
    /// had decided anything.
    fn apply_control_outputs(&mut self, room_id: &RoomId, now: ServerTime) -> bool {
        let mut outputs = Vec::new();
        if let Some(room) = self.rooms.get_mut(room_id) {
            while let Some(o) = room.control.poll_output() {
                outputs.push(o);
            }
        }
        let decided = !outputs.is_empty();
        for output in outputs {
            self.apply_control(room_id, output, now);
        }
        self.reschedule(room_id);
        decided
    }

    fn apply_control(&mut self, room_id: &RoomId, output: ControlOutput, now: ServerTime) {
        match output {
            ControlOutput::Apply { action, by, cause } => {
                self.apply_action(room_id, action, by, cause, now)
            }
            ControlOutput::WaitingForReady { .. } => {}
            ControlOutput::Proposal(event) => {
                let message: Message = match event {
                    PolicyEvent::Opened(proposal) => {
                        if let Some(room) = self.rooms.get_mut(room_id) {
                            if room.proposals_seen.insert(proposal.id) {
                                self.metrics.proposal();
                            }
                            // Opening is always announced at once; it starts a tally window.
                            room.pending_tallies.remove(&proposal.id);
                            let _ = room.tally_changed(proposal.clone(), now);
                        }
                        ProposalUpdate {
                            room: room_id.clone(),
                            proposal,
                        }
                        .into()
                    }
                    PolicyEvent::Updated(proposal) => {
                        let Some(proposal) = self
                            .rooms
                            .get_mut(room_id)
                            .and_then(|room| room.tally_changed(proposal, now))
                        else {
                            return;
                        };
                        ProposalUpdate {
                            room: room_id.clone(),
                            proposal,
                        }
                        .into()
                    }
                    PolicyEvent::Decided { proposal, outcome } => {
                        if let Some(room) = self.rooms.get_mut(room_id) {
                            room.proposals_seen.remove(&proposal.id);
                            // The decision supersedes any tally still held back.
                            room.pending_tallies.remove(&proposal.id);
                        }
                        Decision {
                            room: room_id.clone(),
                            proposal: proposal.id,
                            outcome,
                            action: proposal.action,
                        }
                        .into()
                    }
                };
                self.broadcast(room_id, message);
            }
            ControlOutput::ModeChanged { mode, by } => {
                self.broadcast(
                    room_id,
                    ModeChanged {
                        room: room_id.clone(),
                        mode,
                        by,
                    }
                    .into(),
                );
            }
            ControlOutput::HostChanged {
                host,
                previous,
                reason,
            } => {
                self.broadcast(
                    room_id,
                    HostChanged {
                        room: room_id.clone(),
                        host,
                        previous,
                        reason,
                    }
                    .into(),
                );
                if let Some(room) = self.rooms.get_mut(room_id) {
                    room.announce(host.into_iter().chain(previous), now);
                }
                // The invite code is for hosts: the new host's view of the room changes.
                if let Some(host) = host {
                    self.send_room_updated_to(room_id, host);
                }
            }
            ControlOutput::RoleChanged { member, .. } => {
                if let Some(room) = self.rooms.get_mut(room_id) {
                    room.announce([member], now);
                }
                self.send_room_updated_to(room_id, member);
            }
        }
    }

    fn apply_action(
        &mut self,
        room_id: &RoomId,
        action: Action,
        by: Option<MemberId>,
        cause: Cause,
        now: ServerTime,
    ) {
        let lead = self.lead(room_id);
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        // Never before the previous timeline's effect time: effects stay in order.
        let at = now.add_micros(lead).max(room.timeline.at);
        let (command, reason) = match action {
            Action::Play => (PlaybackCommand::Play, TimelineReason::Play),
            Action::Pause => (PlaybackCommand::Pause, TimelineReason::Pause),
            Action::Seek { position } => {
                self.metrics.seek();
                (PlaybackCommand::Seek(position), TimelineReason::Seek)
            }
            Action::SetRate { rate } => {
                self.metrics.rate_change();
                (PlaybackCommand::SetRate(rate), TimelineReason::Rate)
            }
            Action::Resync => {
                self.metrics.seek();
                let target_now = room
                    .control
                    .resync_target(&room.timeline, now)
                    .unwrap_or_else(|| room.timeline.position_at(now));
                // The target is where members are now; by the effect time they have moved on.
                let moved = if room.timeline.paused {
                    0.0
                } else {
                    at.seconds_since(now) * room.timeline.rate
                };
                (
                    PlaybackCommand::Seek((target_now + moved).max(0.0)),
                    TimelineReason::Resync,
                )
            }
            Action::SetMedia { media } => {
                room.media = Some(media);
                room.timeline = Timeline {
                    position: 0.0,
                    rate: room.timeline.rate,
                    paused: true,
                    at,
                    seq: room.timeline.seq + 1,
                };
                self.finish_timeline_change(room_id, TimelineReason::Media, by, now);
                self.broadcast_room_updated(room_id);
                return;
            }
            Action::Kick { member } => {
                let message = room.kick_reasons.remove(&member);
                // The control already removed the member from its roster.
                self.leave_room(member, LeaveReason::Kicked, message, now);
                return;
            }
            // Handled inside the control; never emitted as Apply.
            Action::SetMode { .. } | Action::TransferHost { .. } => return,
        };
        let reason = match cause {
            Cause::Ready => TimelineReason::Ready,
            Cause::Buffering => TimelineReason::Buffering,
            Cause::Command | Cause::Proposal(_) => reason,
        };
        room.timeline = room.timeline.apply(command, at);
        self.finish_timeline_change(room_id, reason, by, now);
    }

    fn finish_timeline_change(
        &mut self,
        room_id: &RoomId,
        reason: TimelineReason,
        by: Option<MemberId>,
        now: ServerTime,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        room.last_reason = reason;
        room.last_by = by;
        room.schedule_repeats(now);
        let update = StateUpdate {
            room: room_id.clone(),
            timeline: room.timeline,
            reason,
            by,
        };
        self.broadcast(room_id, update.into());
    }

    /// How far ahead a command takes effect: twice the slowest member's round trip plus 20 ms,
    /// so the new timeline reaches everyone (with one datagram repeat to spare) first; within
    /// `min_lead_us..=max_lead_us`.
    fn lead(&self, room_id: &RoomId) -> i64 {
        let max_rtt = self
            .rooms
            .get(room_id)
            .map(|room| {
                room.members
                    .iter()
                    .filter_map(|m| self.members.get(m))
                    .filter(|r| r.conn.is_some())
                    .filter_map(|r| r.stats.as_ref().map(|s| i64::from(s.rtt_us)))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        (2 * max_rtt + 20_000).clamp(self.config.min_lead_us, self.config.max_lead_us)
    }

    /// Runs a request on the member's room control and answers it: `ack` on success, the
    /// rejection as an `error` otherwise. Returns the room when the request succeeded.
    fn room_request(
        &mut self,
        conn: ConnId,
        member: MemberId,
        req: Option<RequestId>,
        now: ServerTime,
        f: impl FnOnce(&mut RoomControl) -> Result<(), lockstep_consensus::Rejection>,
    ) -> Option<RoomId> {
        let Some(room_id) = self.member_room(member) else {
            self.error(conn, req, ErrorCode::NotInRoom, "not in a room", false);
            return None;
        };
        let result = self.rooms.get_mut(&room_id).map(|r| f(&mut r.control))?;
        let ok = match result {
            Ok(()) => {
                self.ack(conn, req, None);
                true
            }
            Err(r) => {
                self.error(conn, req, r.code, r.message, false);
                false
            }
        };
        self.after_room_change(&room_id, now);
        ok.then_some(room_id)
    }

    fn member_update(
        &mut self,
        conn: ConnId,
        member: MemberId,
        req: Option<RequestId>,
        now: ServerTime,
        f: impl FnOnce(&mut Room),
    ) {
        let Some(room_id) = self.member_room(member) else {
            return self.error(conn, req, ErrorCode::NotInRoom, "not in a room", false);
        };
        if let Some(room) = self.rooms.get_mut(&room_id) {
            f(room);
            room.announce([member], now);
        }
        if req.is_some() {
            self.ack(conn, req, None);
        }
        self.after_room_change(&room_id, now);
    }

    // --- Chat, reactions, stats --------------------------------------------------------------

    /// The room and display name of a member who may speak now; the error goes out otherwise
    /// (not in a room, or past the chat rate, which reactions share).
    fn may_speak(
        &mut self,
        conn: ConnId,
        member: MemberId,
        req: Option<RequestId>,
        now: ServerTime,
        too_many: &str,
    ) -> Option<(RoomId, String)> {
        let Some(room_id) = self.member_room(member) else {
            self.error(conn, req, ErrorCode::NotInRoom, "not in a room", false);
            return None;
        };
        let record = self.members.get_mut(&member)?;
        if !record.chat.try_take(now) {
            self.metrics.rate_limited(crate::metrics::LimitClass::Chat);
            self.error(conn, req, ErrorCode::RateLimited, too_many, false);
            return None;
        }
        Some((room_id, record.name.clone()))
    }

    fn chat(&mut self, conn: ConnId, member: MemberId, m: Chat, now: ServerTime) {
        let Some((room_id, name)) =
            self.may_speak(conn, member, m.req, now, "slow down: too many chat lines")
        else {
            return;
        };
        self.ack(conn, m.req, None);
        let line = ChatMessage {
            room: room_id.clone(),
            from: member,
            name,
            text: m.text,
            at: now,
        };
        self.broadcast(&room_id, line.into());
    }

    fn react(&mut self, conn: ConnId, member: MemberId, m: React, now: ServerTime) {
        let Some((room_id, _)) =
            self.may_speak(conn, member, m.req, now, "slow down: too many reactions")
        else {
            return;
        };
        self.ack(conn, m.req, None);
        let reaction = Reaction {
            room: room_id.clone(),
            from: member,
            reaction: m.reaction,
            at: now,
        };
        self.broadcast(&room_id, reaction.into());
    }

    fn stats(&mut self, member: MemberId, s: Stats, now: ServerTime) {
        self.metrics.observe_rtt_us(u64::from(s.rtt_us));
        self.metrics
            .observe_clock_offset_error_us(u64::from(s.offset_error_us));
        self.metrics.observe_drift_us(s.drift_us);
        let room_id = self.member_room(member);
        if let (Some(position), Some(at), Some(room_id)) = (s.position, s.at, &room_id)
            && let Some(room) = self.rooms.get_mut(room_id)
        {
            room.control.report_position(member, position, at);
        }
        if let Some(record) = self.members.get_mut(&member) {
            record.stats = Some(s);
        }
        if let Some(room_id) = room_id
            && let Some(room) = self.rooms.get_mut(&room_id)
            && room.stats_due.is_none()
        {
            room.stats_due = Some(now.add_micros(STATS_EVERY_US));
            self.reschedule(&room_id);
        }
    }

    fn flush_stats(&mut self, room_id: &RoomId, now: ServerTime) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        if room.stats_due.is_none_or(|t| t > now) {
            return;
        }
        // The members drifting most: who is lagging is what people want to see.
        let mut stats: Vec<MemberStat> = room
            .members
            .iter()
            .filter_map(|id| {
                let record = self.members.get(id)?;
                let s = record.stats.as_ref()?;
                record.conn?;
                Some(MemberStat {
                    member: *id,
                    rtt_us: s.rtt_us,
                    offset_us: s.offset_us,
                    offset_error_us: s.offset_error_us,
                    drift_us: s.drift_us,
                })
            })
            .collect();
        stats.sort_by_key(|s| std::cmp::Reverse(s.drift_us.unsigned_abs()));
        stats.truncate(STATS_ENTRIES);
        let any = !stats.is_empty();
        if let Some(room) = self.rooms.get_mut(room_id) {
            room.stats_due = any.then(|| now.add_micros(STATS_EVERY_US));
        }
        if any {
            self.broadcast(
                room_id,
                MemberStats {
                    room: room_id.clone(),
                    members: stats,
                }
                .into(),
            );
        }
    }

    fn flush_participants(&mut self, room_id: &RoomId, now: ServerTime) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if room.participants_due.is_none_or(|t| t > now) {
            return;
        }
        room.participants_due = None;
        let ids = std::mem::take(&mut room.pending_participants);
        // A room too big to list whole in `room_state` announces its size, and by name only
        // its hosts, co-hosts and moderators. Listing every viewer's join or readiness to every
        // viewer is N² bytes for a room of N (a join storm into a 3,000-member room queued
        // 166 KB `participants` to every member: 400 MB in the WebSocket write buffers).
        let big = room.members.len() > limits::ROOM_STATE_MEMBERS;
        let member_count = big.then(|| u32::try_from(room.members.len()).unwrap_or(u32::MAX));
        let count_changed = big && room.count_announced != member_count;
        room.count_announced = member_count;
        let room = &self.rooms[room_id];
        let members: Vec<_> = ids
            .into_iter()
            .filter_map(|id| {
                let record = self.members.get(&id)?;
                room.member(id, &record.name, record.transport)
            })
            .filter(|m| !big || room.is_privileged(m.id))
            .collect();
        if !members.is_empty() || count_changed {
            self.broadcast(
                room_id,
                Participants {
                    room: room_id.clone(),
                    members,
                    member_count,
                }
                .into(),
            );
        }
    }

    fn flush_tallies(&mut self, room_id: &RoomId, now: ServerTime) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        for proposal in room.take_due_tallies(now) {
            self.broadcast(
                room_id,
                ProposalUpdate {
                    room: room_id.clone(),
                    proposal,
                }
                .into(),
            );
        }
    }

    // --- Sending -----------------------------------------------------------------------------

    fn send(&mut self, conn: ConnId, message: Message) {
        self.metrics.message_out(message.kind(), 1);
        self.outputs.push_back(Output::Send {
            to: conn,
            message: Arc::new(Outgoing::new(message)),
        });
    }

    /// Sends one message to every connected member of a room, encoded once.
    fn broadcast(&mut self, room_id: &RoomId, message: Message) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let kind = message.kind();
        let shared = Arc::new(Outgoing::new(message));
        let mut copies = 0;
        for id in &room.members {
            if let Some(conn) = self.members.get(id).and_then(|r| r.conn) {
                copies += 1;
                self.outputs.push_back(Output::Send {
                    to: conn,
                    message: shared.clone(),
                });
            }
        }
        self.metrics.message_out(kind, copies);
    }

    fn broadcast_room_updated(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        // Each member's view differs only in the invite code: two encodings, not one per member.
        let plain = Arc::new(Outgoing::new(
            RoomUpdated {
                room: room.info(None),
            }
            .into(),
        ));
        let mut privileged: Option<Arc<Outgoing>> = None;
        let mut sends = Vec::new();
        for id in &room.members {
            let Some(conn) = self.members.get(id).and_then(|r| r.conn) else {
                continue;
            };
            let view = room.info(Some(*id));
            let message = if view.invite.is_some() {
                privileged
                    .get_or_insert_with(|| {
                        Arc::new(Outgoing::new(RoomUpdated { room: view }.into()))
                    })
                    .clone()
            } else {
                plain.clone()
            };
            sends.push(Output::Send { to: conn, message });
        }
        self.metrics
            .message_out(lockstep_proto::MessageType::RoomUpdated, sends.len() as u64);
        self.outputs.extend(sends);
    }

    fn send_room_updated_to(&mut self, room_id: &RoomId, member: MemberId) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let info = room.info(Some(member));
        if let Some(conn) = self.members.get(&member).and_then(|r| r.conn) {
            self.send(conn, RoomUpdated { room: info }.into());
        }
    }

    fn send_room_state(&mut self, member: MemberId, room_id: &RoomId, req: Option<RequestId>) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let Some(conn) = self.members.get(&member).and_then(|r| r.conn) else {
            return;
        };
        let listed = room.listed_members(member, limits::ROOM_STATE_MEMBERS);
        let member_count = (listed.len() < room.members.len())
            .then(|| u32::try_from(room.members.len()).unwrap_or(u32::MAX));
        let members = listed
            .into_iter()
            .filter_map(|id| {
                let record = self.members.get(&id)?;
                room.member(id, &record.name, record.transport)
            })
            .collect();
        let state = RoomState {
            req,
            room: room.info(Some(member)),
            you: member,
            members,
            timeline: room.timeline,
            proposals: room.control.open_proposals(),
            member_count,
        };
        self.send(conn, state.into());
    }

    fn ack(&mut self, conn: ConnId, req: Option<RequestId>, proposal: Option<u32>) {
        if let Some(req) = req {
            self.send(conn, Ack { req, proposal }.into());
        }
    }

    fn error(
        &mut self,
        conn: ConnId,
        req: Option<RequestId>,
        code: ErrorCode,
        message: impl AsRef<str>,
        fatal: bool,
    ) {
        self.send(
            conn,
            Message::Error(ErrorMessage::new(req, code, message, fatal)),
        );
        if fatal {
            self.close(conn, message_for_close(code));
        }
    }

    fn close(&mut self, conn: ConnId, reason: &str) {
        self.outputs.push_back(Output::Close {
            conn,
            reason: reason.to_string(),
        });
    }

    // --- Helpers -----------------------------------------------------------------------------

    fn member_room(&self, member: MemberId) -> Option<RoomId> {
        self.members.get(&member).and_then(|r| r.room.clone())
    }

    fn member_room_mut(&mut self, member: MemberId) -> Option<&mut Room> {
        let id = self.member_room(member)?;
        self.rooms.get_mut(&id)
    }

    fn reschedule(&mut self, room_id: &RoomId) {
        let next = self
            .rooms
            .get(room_id)
            .and_then(|r| r.next_deadline(self.config.room_idle_expiry_us));
        let current = self.room_scheduled.get(room_id).copied();
        if next == current {
            return;
        }
        if let Some(t) = current {
            self.room_timers.remove(&(t, room_id.clone()));
            self.room_scheduled.remove(room_id);
        }
        if let Some(t) = next {
            self.room_timers.insert((t, room_id.clone()));
            self.room_scheduled.insert(room_id.clone(), t);
        }
    }

    fn unschedule(&mut self, room_id: &RoomId) {
        if let Some(t) = self.room_scheduled.remove(room_id) {
            self.room_timers.remove(&(t, room_id.clone()));
        }
    }

    fn update_gauges(&self) {
        self.metrics.set_rooms(self.rooms.len() as u64);
        let in_rooms = self.rooms.values().map(|r| r.members.len()).sum::<usize>();
        self.metrics.set_members(in_rooms as u64);
    }

    fn random_string(&mut self, len: usize) -> String {
        (&mut self.rng)
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from)
            .collect()
    }

    fn hash_password(&mut self, password: &str) -> Option<String> {
        let salt_bytes: [u8; 16] = self.rng.random();
        let salt = SaltString::encode_b64(&salt_bytes).ok()?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .ok()
            .map(|h| h.to_string())
    }
}

fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Who owns a room, for the rooms-per-user limit: the token's user, else the member.
fn owner_key(member: MemberId, identity: &SessionIdentity) -> String {
    match &identity.user_id {
        Some(user) => format!("user:{user}"),
        None => format!("member:{member}"),
    }
}

fn message_for_close(code: ErrorCode) -> &'static str {
    code.name()
}

/// The `req` of a client request, if it has one.
pub fn request_id(message: &Message) -> Option<RequestId> {
    match message {
        Message::CreateRoom(m) => m.req,
        Message::JoinRoom(m) => m.req,
        Message::LeaveRoom(m) => m.req,
        Message::ListRooms(m) => m.req,
        Message::SetMedia(m) => m.req,
        Message::SetRoomOptions(m) => m.req,
        Message::SetPassword(m) => m.req,
        Message::Kick(m) => m.req,
        Message::Play(m) => m.req,
        Message::Pause(m) => m.req,
        Message::Seek(m) => m.req,
        Message::SetRate(m) => m.req,
        Message::Resync(m) => m.req,
        Message::Ready(m) => m.req,
        Message::BufferingStart(m) => m.req,
        Message::BufferingEnd(m) => m.req,
        Message::SetMode(m) => m.req,
        Message::TransferHost(m) => m.req,
        Message::SetRole(m) => m.req,
        Message::Vote(m) => m.req,
        Message::Chat(m) => m.req,
        Message::React(m) => m.req,
        _ => None,
    }
}
