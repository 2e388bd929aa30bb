//! Members of one room on several relays.
//!
//! A room lives on one relay, its *home*, whose core holds the room and every member's
//! session. A member whose client connected to another relay is *tunnelled*: that relay
//! (the member's relay) keeps the connection, answers its clock pings itself, and carries
//! everything else through the backplane:
//!
//! - member → home: the member's relay hands the session to the home with the `join_room`
//!   (or the `hello` of a resume), then forwards each later message on the home's channel,
//!   in order, with its times restamped in the home's clock;
//! - home → members: the home publishes what its core sends to tunnelled members once per
//!   message on the room's channel (`lockstep:room:{id}:broadcast`), naming the targets;
//!   each relay subscribes to that channel only while it carries members of the room, takes
//!   its own targets and restamps the times in its own clock before queueing the message.
//!
//! Times: clients synchronise with the relay they are connected to, so every relay time in a
//! message is shifted by the offset between the two relays' clocks (estimated NTP-style by
//! [`crate::cluster::peer_clock`], error ≤ half the best probe's round trip, ~50 µs on one
//! Redis). A command stamped by the home then takes effect at the same instant everywhere.
//!
//! Failure: when the home is no longer listed or the backplane was lost even briefly (pub/sub
//! does not replay what was missed), the member's relay tells its tunnelled members to come
//! back at once (`going_away`, 0 ms); their resume finds the room wherever it is then: on its
//! old home, or taken over by a survivor. The home likewise lets go of members whose relay
//! vanished: they enter the resume window like any dropped member.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use lockstep_proto::message::{GoingAway, Hello, RoomId, Transport};
use lockstep_proto::{Encoding, Message, decode};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backplane::{AnyBackplane, Backplane};
use crate::cluster::wire::PeerMessage;
use crate::cluster::{Cluster, LISTING_TTL, NAMESPACE};
use crate::core::{ConnId, Outgoing, SessionHandoff};
use crate::queue::ClientQueue;
use crate::server::{CoreEvent, Shared};

/// Messages waiting to be published; a relay whose backplane falls this far behind closes
/// the tunnels that overflow (their members resume and get the room afresh).
const OUTBOX: usize = 16_384;

/// Most messages published in one round trip.
const PIPELINE: usize = 256;

/// How often tunnels are checked (their relays listed, the backplane still there).
const CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// Biggest message carried through a tunnel (a `room_state` of a big room is the largest).
const MAX_TUNNELLED: usize = 1 << 20;

/// A connection here, as a tunnel from it is opened.
#[derive(Debug, Clone)]
pub struct Member {
    /// The connection.
    pub conn: ConnId,
    /// Its outgoing queue.
    pub queue: Arc<ClientQueue>,
}

/// Where a tunnelled member's messages go, as the home sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRoute {
    /// The member's relay.
    pub relay: String,
    /// The member's connection there.
    pub conn: ConnId,
    /// The room the tunnel was opened for (names the channel deliveries go on).
    pub room: RoomId,
}

/// A member connected here whose session is on another relay.
#[derive(Debug, Clone)]
struct Away {
    home: String,
    room: RoomId,
    /// The member's resume token: if this relay takes the room over, the connection is
    /// attached to its member here, without the client reconnecting.
    token: String,
    /// The connection's queue: the room's messages go straight in, not through this relay's
    /// core (one task hop less on the way).
    queue: Arc<ClientQueue>,
}

#[derive(Debug, Default)]
struct State {
    /// Member side: connections here whose session lives on another relay.
    away: HashMap<ConnId, Away>,
    /// Member side: tunnelled connections per room (the room's channel is wanted while > 0).
    per_room: HashMap<RoomId, usize>,
    /// Home side: (member's relay, its connection) → the connection id the core knows, and
    /// when the tunnel opened.
    routes: HashMap<(String, ConnId), (ConnId, Instant)>,
    /// The backplane's disconnect count when last looked at.
    disconnects: u64,
}

/// The tunnels of this relay, both sides.
pub struct Tunnels {
    relay_id: String,
    /// This relay's own channel (compared with every message that arrives).
    own_channel: String,
    backplane: Arc<AnyBackplane>,
    cluster: Arc<Cluster>,
    shared: Weak<Shared>,
    core: mpsc::Sender<CoreEvent>,
    outbox: mpsc::Sender<(String, Bytes)>,
    state: Mutex<State>,
    /// Room channels subscribed now; held across (un)subscribing so the two cannot interleave.
    subscribed: tokio::sync::Mutex<HashSet<RoomId>>,
}

impl std::fmt::Debug for Tunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnels")
            .field("relay_id", &self.relay_id)
            .finish_non_exhaustive()
    }
}

/// The channel a room's deliveries to other relays go on.
pub fn room_channel(room: &RoomId) -> String {
    format!("{NAMESPACE}:room:{}:broadcast", room.as_str())
}

/// Whether `channel` is a room's channel.
pub fn is_room_channel(channel: &str) -> bool {
    channel
        .strip_prefix(NAMESPACE)
        .and_then(|c| c.strip_prefix(":room:"))
        .is_some_and(|c| c.ends_with(":broadcast"))
}

impl Tunnels {
    /// Tunnels of the relay `cluster` describes; spawns the task that publishes in order.
    pub fn start(
        cluster: Arc<Cluster>,
        backplane: Arc<AnyBackplane>,
        shared: &Arc<Shared>,
    ) -> Arc<Tunnels> {
        let (outbox, mut queued) = mpsc::channel::<(String, Bytes)>(OUTBOX);
        let publisher = backplane.clone();
        // One task publishes everything, one message after the other: Redis delivers the
        // messages of one connection in the order it executed them, so each member gets its
        // messages in the order the core sent them, whichever channel each took.
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(PIPELINE);
            // What queued up while the last batch was on its way goes in one pipeline.
            while queued.recv_many(&mut batch, PIPELINE).await > 0 {
                let n = batch.len();
                if let Err(e) = publisher.publish_many(std::mem::take(&mut batch)).await {
                    tracing::debug!(error = %e, n, "tunnelled messages not published");
                }
            }
        });
        let tunnels = Arc::new(Tunnels {
            relay_id: cluster.relay_id().to_string(),
            own_channel: Cluster::channel_of(cluster.relay_id()),
            backplane,
            cluster,
            shared: Arc::downgrade(shared),
            core: shared.core.clone(),
            outbox,
            state: Mutex::new(State::default()),
            subscribed: tokio::sync::Mutex::new(HashSet::new()),
        });
        // A room's messages for members here are handled as they come off the connection.
        let weak = Arc::downgrade(&tunnels);
        tunnels.backplane.set_fast_path(Box::new(move |envelope| {
            weak.upgrade().is_some_and(|t| t.fast_deliver(envelope))
        }));
        // Its own timer: the cluster's rounds wait on Redis, which is what may be gone.
        let weak = Arc::downgrade(&tunnels);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CHECK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(tunnels) = weak.upgrade() else {
                    return;
                };
                tunnels.tick().await;
            }
        });
        tunnels
    }

    fn post(&self, to: &str, message: &PeerMessage) -> bool {
        self.outbox
            .try_send((Cluster::channel_of(to), Bytes::from(message.encode())))
            .is_ok()
    }

    /// The home's clock minus ours, µs (0 before the first estimate).
    fn offset_to(&self, home: &str) -> i64 {
        self.cluster.peer_clock(home).map_or(0, |e| e.offset_us)
    }

    // --- Member side ---------------------------------------------------------------------

    /// Counts a tunnelled member of `room` here and makes sure its channel is subscribed;
    /// `false` (and not counted) when it cannot be.
    async fn want_room(&self, room: &RoomId) -> bool {
        let mut subscribed = self.subscribed.lock().await;
        if let Ok(mut state) = self.state.lock() {
            *state.per_room.entry(room.clone()).or_default() += 1;
        }
        if subscribed.contains(room) {
            return true;
        }
        match self.backplane.subscribe(&room_channel(room)).await {
            Ok(()) => {
                subscribed.insert(room.clone());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, room = room.as_str(), "room channel not subscribed");
                self.release_room(room);
                false
            }
        }
    }

    /// What opening a tunnel from `to` to `home` for `room` takes, whichever way it opens:
    /// the room's channel, the connection registered as away (with the member's resume
    /// token), and the first message restamped for the home. `None`: it cannot open.
    async fn begin(
        &self,
        to: &Member,
        home: &str,
        room: &RoomId,
        token: String,
        first: Message,
    ) -> Option<Bytes> {
        if !self.want_room(room).await {
            return None;
        }
        let Some(first) = self.encode_for(home, first) else {
            self.release_room(room);
            return None;
        };
        if let Ok(mut state) = self.state.lock() {
            state.away.insert(
                to.conn,
                Away {
                    home: home.to_string(),
                    room: room.clone(),
                    token,
                    queue: to.queue.clone(),
                },
            );
        }
        Some(first)
    }

    /// Sends the session on `to` with its `join_room` for `room` (which may name it by its
    /// invite code) to `home`. `false`: it could not go (the member is told by the caller).
    pub async fn open_join(
        &self,
        to: &Member,
        transport: Transport,
        home: &str,
        room: &RoomId,
        session: SessionHandoff,
        join: Message,
    ) -> bool {
        let token = session.resume_token.clone();
        let Some(message) = self.begin(to, home, room, token, join).await else {
            return false;
        };
        let open = PeerMessage::TunnelJoin {
            from: self.relay_id.clone(),
            conn: to.conn,
            room: room.as_str().to_string(),
            transport,
            session,
            message,
        };
        self.post(home, &open)
    }

    /// Sends the `hello` of a member resuming a session that `home` holds (for `room`).
    pub async fn open_resume(
        &self,
        to: &Member,
        transport: Transport,
        home: &str,
        room: &RoomId,
        hello: Hello,
    ) -> bool {
        let token = hello.resume.clone().unwrap_or_default();
        let Some(message) = self.begin(to, home, room, token, hello.into()).await else {
            return false;
        };
        let open = PeerMessage::TunnelResume {
            from: self.relay_id.clone(),
            conn: to.conn,
            room: room.as_str().to_string(),
            transport,
            message,
        };
        self.post(home, &open)
    }

    fn encode_for(&self, home: &str, mut message: Message) -> Option<Bytes> {
        message.shift_times(self.offset_to(home));
        lockstep_proto::encode(&message, Encoding::MessagePack)
            .ok()
            .map(Bytes::from)
    }

    /// A later message of a tunnelled member; waits while the outbox is full (the member's
    /// own backpressure). `false` when `conn` is not tunnelled (any more).
    pub async fn forward(&self, conn: ConnId, message: &Message) -> bool {
        let Some(home) = self.home_of_conn(conn) else {
            return false;
        };
        let Some(message) = self.encode_for(&home, message.clone()) else {
            return true;
        };
        let forward = PeerMessage::TunnelMessage {
            from: self.relay_id.clone(),
            conn,
            message,
        };
        let _ = self
            .outbox
            .send((Cluster::channel_of(&home), Bytes::from(forward.encode())))
            .await;
        true
    }

    fn home_of_conn(&self, conn: ConnId) -> Option<String> {
        let state = self.state.lock().ok()?;
        state.away.get(&conn).map(|a| a.home.clone())
    }

    /// A tunnelled member's connection closed here: tell its home.
    pub fn member_closed(&self, conn: ConnId) {
        if let Some(away) = self.take_away(conn) {
            let closed = PeerMessage::TunnelClosed {
                from: self.relay_id.clone(),
                conn,
            };
            if !self.post(&away.home, &closed) {
                tracing::warn!(
                    conn,
                    "outbox full: the home learns of the close from its listing"
                );
            }
        }
    }

    /// Forgets that `conn` is tunnelled (and counts it out of its room).
    fn take_away(&self, conn: ConnId) -> Option<Away> {
        let away = self.state.lock().ok()?.away.remove(&conn)?;
        self.release_room(&away.room);
        Some(away)
    }

    fn release_room(&self, room: &RoomId) {
        if let Ok(mut state) = self.state.lock()
            && let Some(n) = state.per_room.get_mut(room)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.per_room.remove(room);
            }
        }
    }

    /// A message from a room's home for members here.
    fn on_deliver(&self, from: &str, targets: Vec<(String, u64)>, message: &[u8]) {
        let queues: Vec<Arc<ClientQueue>> = match self.state.lock() {
            Ok(state) => targets
                .into_iter()
                .filter(|(relay, _)| *relay == self.relay_id)
                .filter_map(|(_, conn)| state.away.get(&conn))
                .filter(|a| a.home == from)
                .map(|a| a.queue.clone())
                .collect(),
            Err(_) => return,
        };
        if queues.is_empty() {
            return;
        }
        let mut message = match decode(message, Encoding::MessagePack, MAX_TUNNELLED) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, from, "unreadable message from a room's home");
                return;
            }
        };
        message.shift_times(-self.offset_to(from));
        let message = Arc::new(Outgoing::new(message));
        for queue in queues {
            // A queue that overflows closes its client; its tunnel ends when it is dropped.
            queue.push(message.clone());
        }
    }

    /// A `deliver` for members here, taken off the connection: `true` when it was one.
    fn fast_deliver(&self, envelope: &crate::backplane::Envelope) -> bool {
        if envelope.channel != self.own_channel && !is_room_channel(&envelope.channel) {
            return false;
        }
        match PeerMessage::decode(&envelope.payload) {
            Some(PeerMessage::Deliver {
                from,
                targets,
                message,
            }) => {
                self.on_deliver(&from, targets, &message);
                true
            }
            _ => false,
        }
    }

    /// Ends a tunnel from this side: the member is told to come back at once.
    async fn end_here(&self, conn: ConnId, room: RoomId, reason: &str) {
        self.take_away(conn);
        let going = Message::GoingAway(GoingAway {
            reason: reason.to_string(),
            reconnect_after_ms: 0,
            room: Some(room),
        });
        let _ = self
            .core
            .send(CoreEvent::Deliver {
                conns: vec![conn],
                message: Arc::new(Outgoing::new(going)),
            })
            .await;
        let _ = self
            .core
            .send(CoreEvent::CloseConn {
                conn,
                reason: reason.to_string(),
            })
            .await;
    }

    // --- Home side -----------------------------------------------------------------------

    async fn open_remote(
        &self,
        from: String,
        conn: u64,
        room: String,
        transport: Transport,
    ) -> Option<ConnId> {
        let shared = self.shared.upgrade()?;
        let local = shared.next_conn();
        if let Ok(mut state) = self.state.lock() {
            state
                .routes
                .insert((from.clone(), conn), (local, Instant::now()));
        }
        let route = RemoteRoute {
            relay: from,
            conn,
            room: RoomId::new(room),
        };
        self.core
            .send(CoreEvent::OpenRemote {
                conn: local,
                transport,
                route,
            })
            .await
            .ok()?;
        Some(local)
    }

    fn route(&self, from: &str, conn: u64) -> Option<ConnId> {
        let state = self.state.lock().ok()?;
        state.routes.get(&(from.to_string(), conn)).map(|r| r.0)
    }

    fn decode_from(&self, from: &str, message: &[u8]) -> Option<Message> {
        match decode(
            message,
            Encoding::MessagePack,
            lockstep_proto::limits::MAX_CLIENT_FRAME,
        ) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, from, "unreadable tunnelled message");
                None
            }
        }
    }

    /// The core closed a tunnelled member's connection (the route is gone there already).
    pub fn end_remote(&self, route: &RemoteRoute, reason: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.routes.remove(&(route.relay.clone(), route.conn));
        }
        let end = PeerMessage::TunnelEnd {
            conn: route.conn,
            reason: reason.to_string(),
        };
        self.post(&route.relay, &end);
    }

    /// Publishes what the core sent tunnelled members in one pass, one publish per message
    /// (not per member). Returns the routes whose message could not be queued (the outbox is
    /// full): the caller closes them.
    pub fn deliver_remote(&self, batch: Vec<(RemoteRoute, Arc<Outgoing>)>) -> Vec<RemoteRoute> {
        let mut failed = Vec::new();
        let mut i = 0;
        while i < batch.len() {
            let message = batch[i].1.clone();
            let mut j = i;
            while j < batch.len() && Arc::ptr_eq(&batch[j].1, &message) {
                j += 1;
            }
            let group = &batch[i..j];
            i = j;
            let Some(bytes) = message.shared_bytes(Encoding::MessagePack).cloned() else {
                continue;
            };
            let room = &group[0].0.room;
            let channels: Vec<(String, Vec<(String, u64)>)> =
                if group.iter().all(|(r, _)| r.room == *room) {
                    vec![(
                        room_channel(room),
                        group
                            .iter()
                            .map(|(r, _)| (r.relay.clone(), r.conn))
                            .collect(),
                    )]
                } else {
                    let mut per_relay: HashMap<&str, Vec<(String, u64)>> = HashMap::new();
                    for (r, _) in group {
                        per_relay
                            .entry(r.relay.as_str())
                            .or_default()
                            .push((r.relay.clone(), r.conn));
                    }
                    per_relay
                        .into_iter()
                        .map(|(relay, t)| (Cluster::channel_of(relay), t))
                        .collect()
                };
            for (channel, targets) in channels {
                let deliver = PeerMessage::Deliver {
                    from: self.relay_id.clone(),
                    targets,
                    message: bytes.clone(),
                };
                if self
                    .outbox
                    .try_send((channel, Bytes::from(deliver.encode())))
                    .is_err()
                {
                    failed.extend(group.iter().map(|(r, _)| r.clone()));
                }
            }
        }
        failed
    }

    // --- Both ----------------------------------------------------------------------------

    /// A tunnel message from another relay.
    pub async fn on_message(&self, message: PeerMessage) {
        match message {
            PeerMessage::TunnelJoin {
                from,
                conn,
                room,
                transport,
                session,
                message,
            } => {
                let Some(join) = self.decode_from(&from, &message) else {
                    return;
                };
                let Some(local) = self.open_remote(from, conn, room, transport).await else {
                    return;
                };
                let _ = self
                    .core
                    .send(CoreEvent::Adopt {
                        conn: local,
                        transport,
                        session,
                    })
                    .await;
                let _ = self
                    .core
                    .send(CoreEvent::Message {
                        conn: local,
                        message: join,
                    })
                    .await;
            }
            PeerMessage::TunnelResume {
                from,
                conn,
                room,
                transport,
                message,
            } => {
                let Some(Message::Hello(hello)) = self.decode_from(&from, &message) else {
                    return;
                };
                let Some(shared) = self.shared.upgrade() else {
                    return;
                };
                let Some(local) = self.open_remote(from, conn, room, transport).await else {
                    return;
                };
                let identity = crate::session::authenticate(&shared, hello.token.as_deref());
                let _ = self
                    .core
                    .send(CoreEvent::Hello {
                        conn: local,
                        hello,
                        identity,
                    })
                    .await;
            }
            PeerMessage::TunnelMessage {
                from,
                conn,
                message,
            } => {
                let Some(local) = self.route(&from, conn) else {
                    // The session ended here; the member's relay must not keep waiting.
                    self.post(
                        &from,
                        &PeerMessage::TunnelEnd {
                            conn,
                            reason: "the session is no longer on its room's relay".into(),
                        },
                    );
                    return;
                };
                if let Some(message) = self.decode_from(&from, &message) {
                    let _ = self
                        .core
                        .send(CoreEvent::Message {
                            conn: local,
                            message,
                        })
                        .await;
                }
            }
            PeerMessage::TunnelClosed { from, conn } => {
                let local = match self.state.lock() {
                    Ok(mut state) => state.routes.remove(&(from, conn)).map(|r| r.0),
                    Err(_) => None,
                };
                if let Some(local) = local {
                    let _ = self.core.send(CoreEvent::Closed { conn: local }).await;
                }
            }
            PeerMessage::TunnelEnd { conn, reason } => {
                // The home said what it had to say (`going_away`, an error) before closing.
                if self.take_away(conn).is_some() {
                    let _ = self.core.send(CoreEvent::CloseConn { conn, reason }).await;
                }
            }
            PeerMessage::Deliver {
                from,
                targets,
                message,
            } => self.on_deliver(&from, targets, &message),
            PeerMessage::Echo { .. }
            | PeerMessage::ClockProbe { .. }
            | PeerMessage::ClockReply { .. } => {}
        }
    }

    /// Four times a second: ends tunnels whose other side is gone (or whose messages may have been
    /// lost with the backplane), and leaves room channels no longer needed.
    pub async fn tick(&self) {
        let health = self.backplane.health();
        // Member side: while the backplane is away, or once it was lost even briefly, what
        // the home sent may be missing: members come back and get the room afresh. Home side:
        // the same members' relays are told once the backplane is back (they could not hear
        // it before); routes of relays no longer listed just close.
        let (away_lost, routes_lost) = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let changed = health.disconnects != state.disconnects;
            if health.connected {
                state.disconnects = health.disconnects;
            }
            (!health.connected || changed, health.connected && changed)
        };
        let (ends, orphans, closes) = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let ends: Vec<(ConnId, RoomId)> = state
                .away
                .iter()
                .filter(|_| away_lost)
                .map(|(c, a)| (*c, a.room.clone()))
                .collect();
            // Rooms whose home is no longer listed: this relay takes them over and keeps its
            // members' connections.
            let mut orphans: HashMap<RoomId, Vec<(ConnId, String)>> = HashMap::new();
            if !away_lost {
                for (c, a) in &state.away {
                    if !self.cluster.is_listed(&a.home) {
                        orphans
                            .entry(a.room.clone())
                            .or_default()
                            .push((*c, a.token.clone()));
                    }
                }
            }
            // A relay that just started may tunnel before this relay has read its listing.
            let gone: Vec<(String, ConnId)> = state
                .routes
                .iter()
                .filter(|((relay, _), (_, opened))| {
                    routes_lost
                        || (opened.elapsed() > 2 * LISTING_TTL && !self.cluster.is_listed(relay))
                })
                .map(|(k, _)| k.clone())
                .collect();
            let closes: Vec<(String, ConnId, ConnId)> = gone
                .into_iter()
                .filter_map(|(relay, theirs)| {
                    let ours = state.routes.remove(&(relay.clone(), theirs))?.0;
                    Some((relay, theirs, ours))
                })
                .collect();
            (ends, orphans, closes)
        };
        for (conn, room) in ends {
            self.end_here(conn, room, "the room's relay cannot be reached")
                .await;
        }
        for (room, members) in orphans {
            self.adopt_orphan(room, members).await;
        }
        for (relay, theirs, ours) in closes {
            if routes_lost {
                self.post(
                    &relay,
                    &PeerMessage::TunnelEnd {
                        conn: theirs,
                        reason: "the room's relay lost touch with the others".into(),
                    },
                );
            }
            let _ = self.core.send(CoreEvent::Closed { conn: ours }).await;
        }
        if !health.connected {
            return;
        }
        let mut subscribed = self.subscribed.lock().await;
        let unwanted: Vec<RoomId> = match self.state.lock() {
            Ok(state) => subscribed
                .iter()
                .filter(|r| !state.per_room.contains_key(*r))
                .cloned()
                .collect(),
            Err(_) => return,
        };
        for room in unwanted {
            if self
                .backplane
                .unsubscribe(&room_channel(&room))
                .await
                .is_ok()
            {
                subscribed.remove(&room);
            }
        }
    }

    /// The home of a room with members here died: take the room over and attach their
    /// connections to their members here (they keep playing; no reconnect). If another relay
    /// took it first, or it cannot be taken, they are sent to resume wherever it is.
    async fn adopt_orphan(&self, room: RoomId, members: Vec<(ConnId, String)>) {
        let here = match self
            .shared
            .upgrade()
            .and_then(|s| s.takeover.get().cloned())
        {
            Some(takeover) => takeover.take_orphan(&room).await,
            None => false,
        };
        for (conn, token) in members {
            if !here {
                // Not ours: the member resumes where the room went.
                self.end_here(conn, room.clone(), "the room's relay is gone")
                    .await;
                continue;
            }
            if self.take_away(conn).is_some() {
                let _ = self.core.send(CoreEvent::Reattach { conn, token }).await;
            }
        }
    }

    /// (members here whose rooms are elsewhere, members elsewhere of rooms here), for
    /// `/health`.
    pub fn counts(&self) -> (usize, usize) {
        self.state
            .lock()
            .map_or((0, 0), |s| (s.away.len(), s.routes.len()))
    }
}
