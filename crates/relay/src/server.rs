//! The core actor and what every connection shares.
//!
//! Owns the one task that owns the [`RelayCore`]: connections send it events over a bounded
//! channel, it feeds them to the core with the time, and hands the core's outputs to the
//! clients' queues without ever waiting on a client. Timers are the core's `poll_timeout`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lockstep_proto::message::{Hello, RequestId, RoomSummary, Transport};
use lockstep_proto::{ErrorCode, Message};
use tokio::sync::{mpsc, oneshot};

use crate::auth::AuthConfig;
use crate::clock::ServerClock;
use crate::core::{ConnId, Output, RelayCore, SessionIdentity};
use crate::metrics::Metrics;
use crate::queue::ClientQueue;

/// Events from connections (and the HTTP API) to the core.
#[derive(Debug)]
pub enum CoreEvent {
    /// A connection opened.
    Open {
        /// Its id.
        conn: ConnId,
        /// Its transport.
        transport: Transport,
        /// Where its messages go.
        queue: Arc<ClientQueue>,
    },
    /// A `hello`, authenticated by the shell.
    Hello {
        /// The connection.
        conn: ConnId,
        /// The message.
        hello: Hello,
        /// What auth made of its token.
        identity: Result<SessionIdentity, (ErrorCode, String)>,
    },
    /// Any other message.
    Message {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: Message,
    },
    /// Input that did not decode, or broke a limit.
    BadInput {
        /// The connection.
        conn: ConnId,
        /// The wire code.
        code: ErrorCode,
        /// For people.
        message: String,
        /// The request's id, if readable.
        req: Option<RequestId>,
    },
    /// A connection closed.
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// The public rooms (HTTP API).
    Rooms(oneshot::Sender<Vec<RoomSummary>>),
    /// One public room (HTTP API).
    Room(String, oneshot::Sender<Option<RoomSummary>>),
    /// Create a room nobody is in yet (HTTP API).
    CreateRoom {
        /// Who owns it, for the rooms-per-user limit.
        owner: String,
        /// The room.
        request: lockstep_proto::message::CreateRoom,
        /// The room id and invite code, or why not.
        reply: oneshot::Sender<CreatedRoom>,
    },
    /// Whether a resume token is a session here.
    KnowsResume(String, oneshot::Sender<bool>),
    /// Another relay holds this room now: let it go.
    Evict(lockstep_proto::message::RoomId),
    /// Take over a room another relay held (it is gone).
    Import {
        /// The room.
        snapshot: Box<crate::core::RoomSnapshot>,
        /// The snapshot's clock minus ours, µs.
        offset_us: i64,
        /// The room's id, or why not.
        reply: oneshot::Sender<Result<lockstep_proto::message::RoomId, crate::core::ImportError>>,
    },
    /// Give up the session on a connection: it moves to another relay's core.
    Export {
        /// The connection.
        conn: ConnId,
        /// The session, if it could move.
        reply: oneshot::Sender<Option<crate::core::SessionHandoff>>,
    },
    /// A member connected to another relay reaches this one's core through a tunnel.
    OpenRemote {
        /// The id the core knows it by.
        conn: ConnId,
        /// How the member is connected.
        transport: Transport,
        /// Where its messages go.
        route: crate::tunnel::RemoteRoute,
    },
    /// The session of a tunnelled member, handed over by its relay.
    Adopt {
        /// The tunnelled connection.
        conn: ConnId,
        /// How the member is connected.
        transport: Transport,
        /// The session.
        session: crate::core::SessionHandoff,
    },
    /// A message from a room's home (on another relay) for members connected here.
    Deliver {
        /// Their connections.
        conns: Vec<ConnId>,
        /// The message, in this relay's clock.
        message: Arc<crate::core::Outgoing>,
    },
    /// Attach a connection here to the member with this resume token (its room was just
    /// taken over by this relay); the client is not asked to reconnect.
    Reattach {
        /// The connection.
        conn: ConnId,
        /// The member's resume token.
        token: String,
    },
    /// Close a connection here once what was queued for it is sent.
    CloseConn {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: String,
    },
    /// Tell every client to go away; reply when done.
    Shutdown {
        /// The reconnect hint.
        reconnect_after_ms: u32,
        /// Signalled when the going-away messages are queued.
        done: oneshot::Sender<()>,
    },
}

/// The result of creating a room through the API.
pub type CreatedRoom = Result<(lockstep_proto::message::RoomId, String), (ErrorCode, String)>;

/// Capacity of the channel into the core: connections wait (backpressure) when it is full.
pub const CORE_CHANNEL: usize = 16_384;

/// Per-connection message limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Control messages per second and burst.
    pub control: (f64, f64),
    /// Datagram-class messages per second and burst.
    pub datagram: (f64, f64),
    /// Connections one IP address may hold.
    pub per_ip: u32,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            control: (20.0, 40.0),
            datagram: (60.0, 120.0),
            per_ip: 32,
        }
    }
}

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Server time.
    pub clock: ServerClock,
    /// How tokens are checked.
    pub auth: AuthConfig,
    /// Into the core.
    pub core: mpsc::Sender<CoreEvent>,
    /// Message limits.
    pub limits: ConnLimits,
    /// Origins browsers may connect from (empty: any).
    pub allowed_origins: Vec<String>,
    next_conn: AtomicU64,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Rooms of relays that are gone, taken over when their members resume here (with Redis).
    pub takeover: std::sync::OnceLock<Arc<crate::takeover::Takeover>>,
    /// Members of rooms homed on other relays (with Redis).
    pub tunnels: std::sync::OnceLock<Arc<crate::tunnel::Tunnels>>,
}

impl Shared {
    /// Shared state around a core channel.
    pub fn new(
        metrics: Arc<Metrics>,
        clock: ServerClock,
        auth: AuthConfig,
        core: mpsc::Sender<CoreEvent>,
        limits: ConnLimits,
        allowed_origins: Vec<String>,
    ) -> Self {
        Shared {
            metrics,
            clock,
            auth,
            core,
            limits,
            allowed_origins,
            next_conn: AtomicU64::new(1),
            per_ip: Mutex::new(HashMap::new()),
            takeover: std::sync::OnceLock::new(),
            tunnels: std::sync::OnceLock::new(),
        }
    }

    /// A fresh connection id.
    pub fn next_conn(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether a browser page from `origin` may connect. Non-browser clients send no origin.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(o) => {
                self.allowed_origins.is_empty()
                    || self
                        .allowed_origins
                        .iter()
                        .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
            }
        }
    }

    /// Counts a connection from `ip`; `None` when the address holds too many already.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut map = self.per_ip.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= self.limits.per_ip {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            shared: self.clone(),
            ip,
        })
    }
}

/// One admitted connection from an address; released when dropped.
#[derive(Debug)]
pub struct IpSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.shared.per_ip.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Runs the core until every sender of `events` is gone.
pub async fn run_core(
    mut core: RelayCore,
    mut events: mpsc::Receiver<CoreEvent>,
    clock: ServerClock,
    mut snapshots: Option<crate::persist::Snapshotter>,
    shared: Arc<Shared>,
) {
    let mut queues = Sinks::default();
    let mut hold = snapshots
        .as_ref()
        .map(|s| HeldAcks::new(s.pending().clone()));
    let mut stored = snapshots.as_ref().map(|s| s.pending().watch_stored());
    loop {
        let timer = core.poll_timeout().map(|t| clock.instant(t));
        let held_until = hold.as_ref().and_then(HeldAcks::deadline);
        let wake = match (timer, held_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let waiting = hold.as_ref().is_some_and(|h| !h.queue.is_empty());
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(e) => Some(e),
                None => break,
            },
            () = sleep_until(wake) => None,
            // A generation stored (or writes failing): held acks may go.
            _ = changed(&mut stored), if waiting => None,
        };
        let now = clock.now();
        if let Some(event) = event {
            handle(&mut core, &mut queues, event, now);
            // Take what else is waiting before dispatching: one pass of outputs per batch.
            for _ in 0..256 {
                match events.try_recv() {
                    Ok(event) => handle(&mut core, &mut queues, event, now),
                    Err(_) => break,
                }
            }
        }
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        // Messages first (snapshotting and storing must not delay them), then the snapshot;
        // this pass's acks wait for the generation that snapshot made.
        dispatch(
            &mut core,
            &mut queues,
            shared.tunnels.get(),
            now,
            hold.as_mut(),
        );
        after_pass(&mut snapshots, &mut core);
        if let (Some(h), Some(s)) = (&mut hold, &snapshots) {
            h.seal(s.pending().generation());
            // Acks whose pass changed nothing stored go now.
            dispatch(
                &mut core,
                &mut queues,
                shared.tunnels.get(),
                now,
                hold.as_mut(),
            );
        }
    }
}

fn after_pass(snapshots: &mut Option<crate::persist::Snapshotter>, core: &mut RelayCore) {
    match snapshots {
        Some(s) => s.after_pass(core),
        None => {
            core.take_touched_rooms();
        }
    }
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn changed(stored: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match stored {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Longest an `ack` waits for its change to be stored (Redis slow, not failing).
const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(1);
/// Most acks waiting at once (a second of 20 requests/s from 3,000 clients).
const MAX_HELD: usize = 65_536;

/// Acks waiting until the changes they confirm are stored in Redis: a member told "done"
/// keeps what it did if this relay dies the next moment.
#[derive(Debug)]
struct HeldAcks {
    pending: Arc<crate::persist::Pending>,
    /// Acks of this pass: they wait for the generation of the snapshot taken after it.
    unsealed: usize,
    queue:
        std::collections::VecDeque<(u64, std::time::Instant, ConnId, Arc<crate::core::Outgoing>)>,
}

impl HeldAcks {
    fn new(pending: Arc<crate::persist::Pending>) -> Self {
        HeldAcks {
            pending,
            unsealed: 0,
            queue: std::collections::VecDeque::new(),
        }
    }

    /// Holds an ack of the current pass.
    fn hold(&mut self, to: ConnId, message: Arc<crate::core::Outgoing>) {
        self.queue
            .push_back((u64::MAX, std::time::Instant::now(), to, message));
        self.unsealed += 1;
    }

    /// The current pass's snapshot made `generation`: its acks wait for that.
    fn seal(&mut self, generation: u64) {
        let n = self.unsealed.min(self.queue.len());
        for held in self.queue.iter_mut().rev().take(n) {
            held.0 = generation;
        }
        self.unsealed = 0;
    }

    fn deadline(&self) -> Option<std::time::Instant> {
        self.queue.front().map(|(_, at, _, _)| *at + MAX_HOLD)
    }

    /// The acks that may go now, oldest first.
    fn release(&mut self) -> Vec<(ConnId, Arc<crate::core::Outgoing>)> {
        let mut out = Vec::new();
        while let Some((g, at, _, _)) = self.queue.front() {
            if !(self.pending.settled(*g) || at.elapsed() >= MAX_HOLD) {
                break;
            }
            if let Some((_, _, to, m)) = self.queue.pop_front() {
                out.push((to, m));
            }
        }
        out
    }
}

/// Where the core's messages go: local clients' queues, and members tunnelled from other
/// relays.
#[derive(Debug, Default)]
struct Sinks {
    local: HashMap<ConnId, Arc<ClientQueue>>,
    remote: HashMap<ConnId, crate::tunnel::RemoteRoute>,
}

type RemoteBatch = Vec<(crate::tunnel::RemoteRoute, Arc<crate::core::Outgoing>)>;

fn deliver(
    sinks: &mut Sinks,
    to: ConnId,
    message: Arc<crate::core::Outgoing>,
    remote: &mut RemoteBatch,
) {
    if let Some(q) = sinks.local.get(&to) {
        if !q.push(message) {
            // Overflowed: the queue closes the client; forget it here.
            sinks.local.remove(&to);
        }
    } else if let Some(route) = sinks.remote.get(&to) {
        remote.push((route.clone(), message));
    }
}

/// Hands the core's outputs to the queues (and the tunnels), acks through `hold` when the
/// relay stores rooms; a tunnelled member whose route closes or overflows is closed in the
/// core, which may say more: bounded rounds.
fn dispatch(
    core: &mut RelayCore,
    sinks: &mut Sinks,
    tunnels: Option<&Arc<crate::tunnel::Tunnels>>,
    now: lockstep_proto::ServerTime,
    mut hold: Option<&mut HeldAcks>,
) {
    for round in 0..4 {
        let mut remote = Vec::new();
        let mut ended = Vec::new();
        if round == 0
            && let Some(h) = hold.as_deref_mut()
        {
            for (to, message) in h.release() {
                deliver(sinks, to, message, &mut remote);
            }
        }
        while let Some(output) = core.poll_output() {
            match output {
                Output::Send { to, message } => match hold.as_deref_mut() {
                    Some(h) if message.kind() == lockstep_proto::MessageType::Ack => {
                        if h.queue.len() >= MAX_HELD
                            && let Some((_, _, to, m)) = h.queue.pop_front()
                        {
                            // Bounded: the oldest goes unconfirmed rather than memory growing.
                            deliver(sinks, to, m, &mut remote);
                        }
                        h.hold(to, message);
                    }
                    _ => deliver(sinks, to, message, &mut remote),
                },
                Output::Close { conn, reason } => {
                    if let Some(q) = sinks.local.remove(&conn) {
                        q.close(reason);
                    } else if let Some(route) = sinks.remote.remove(&conn) {
                        if let Some(t) = tunnels {
                            t.end_remote(&route, &reason);
                        }
                        ended.push(conn);
                    }
                }
            }
        }
        if let Some(h) = hold.as_deref_mut() {
            // Acks whose change was stored already (or that changed nothing) go at once.
            for (to, message) in h.release() {
                deliver(sinks, to, message, &mut remote);
            }
        }
        if let Some(t) = tunnels
            && !remote.is_empty()
        {
            for route in t.deliver_remote(remote) {
                let conn = sinks
                    .remote
                    .iter()
                    .find(|(_, r)| **r == route)
                    .map(|(c, _)| *c);
                if let Some(conn) = conn {
                    sinks.remote.remove(&conn);
                    t.end_remote(&route, "slow_consumer: the relays fell behind");
                    ended.push(conn);
                }
            }
        }
        if ended.is_empty() {
            return;
        }
        for conn in ended {
            core.closed(conn, now);
        }
    }
}

fn handle(
    core: &mut RelayCore,
    queues: &mut Sinks,
    event: CoreEvent,
    now: lockstep_proto::ServerTime,
) {
    match event {
        CoreEvent::Open {
            conn,
            transport,
            queue,
        } => {
            queues.local.insert(conn, queue);
            core.open(conn, transport);
        }
        CoreEvent::OpenRemote {
            conn,
            transport,
            route,
        } => {
            queues.remote.insert(conn, route);
            core.open(conn, transport);
        }
        CoreEvent::Adopt {
            conn,
            transport,
            session,
        } => core.adopt_session(conn, transport, session, now),
        CoreEvent::Export { conn, reply } => {
            let _ = reply.send(core.export_session(conn));
        }
        CoreEvent::Deliver { conns, message } => {
            for conn in conns {
                if let Some(q) = queues.local.get(&conn)
                    && !q.push(message.clone())
                {
                    queues.local.remove(&conn);
                }
            }
        }
        CoreEvent::Reattach { conn, token } => core.reattach(conn, &token, now),
        CoreEvent::CloseConn { conn, reason } => {
            if let Some(q) = queues.local.remove(&conn) {
                q.close(reason);
            }
        }
        CoreEvent::Hello {
            conn,
            hello,
            identity,
        } => core.hello(conn, hello, identity, now),
        CoreEvent::Message { conn, message } => core.message(conn, message, now),
        CoreEvent::BadInput {
            conn,
            code,
            message,
            req,
        } => core.bad_input(conn, code, message, req),
        CoreEvent::Closed { conn } => {
            queues.local.remove(&conn);
            queues.remote.remove(&conn);
            core.closed(conn, now);
        }
        CoreEvent::Rooms(reply) => {
            let _ = reply.send(core.public_rooms());
        }
        CoreEvent::Room(id, reply) => {
            let _ = reply.send(core.public_room(&id));
        }
        CoreEvent::CreateRoom {
            owner,
            request,
            reply,
        } => {
            let _ = reply.send(core.create_room_via_api(owner, request, now));
        }
        CoreEvent::Evict(room) => core.evict_room(&room),
        CoreEvent::KnowsResume(token, reply) => {
            let _ = reply.send(core.knows_resume(&token));
        }
        CoreEvent::Import {
            snapshot,
            offset_us,
            reply,
        } => {
            let _ = reply.send(core.import_room(*snapshot, offset_us, now));
        }
        CoreEvent::Shutdown {
            reconnect_after_ms,
            done,
        } => {
            core.shutdown(reconnect_after_ms);
            let _ = done.send(());
        }
    }
}
