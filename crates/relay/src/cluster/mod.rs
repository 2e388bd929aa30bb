//! This relay's place among relays: its id, the backplane it shares with the others, the
//! directory of relays alive, and each peer's clock.
//!
//! Twice a second the relay
//! - lists itself in the directory (`lockstep:relays`, lapsing after 1.5 s unless renewed) with
//!   the URLs and certificate hashes clients reach it by, and learns who else is listed;
//! - sends itself an echo through the backplane: the whole pub/sub path works (not only a
//!   ping to Redis), the subscription came back after a reconnect, and the round trip is
//!   what `/health` reports;
//! - probes every peer's clock ([`peer_clock`]): commands stamped in one relay's time take
//!   effect at the same instant for members on another.
//!
//! - [`wire`]: what relays say to each other.

pub mod peer_clock;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use lockstep_proto::ServerTime;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backplane::{AnyBackplane, Backplane, BackplaneHealth, Envelope};
use crate::clock::ServerClock;
use peer_clock::{ClockEstimate, PeerClock};
use wire::{PeerMessage, RelayInfo};

/// How often the relay registers, echoes and probes.
const TICK: Duration = Duration::from_millis(500);
/// A relay that has not renewed its listing for this long is gone: its rooms may be taken
/// over (within 2 s of its death with the 500 ms renewal).
pub const LISTING_TTL: Duration = Duration::from_millis(1_500);
/// The prefix of every key and channel lockstep uses in Redis.
pub const NAMESPACE: &str = "lockstep";

/// This relay among relays.
pub struct Cluster {
    relay_id: String,
    backplane: Arc<AnyBackplane>,
    clock: ServerClock,
    info: Box<dyn Fn() -> RelayInfo + Send + Sync>,
    state: Mutex<State>,
    tunnels: std::sync::OnceLock<Arc<crate::tunnel::Tunnels>>,
    /// Woken by every clock reply (for `answers`).
    replied: tokio::sync::Notify,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("relay_id", &self.relay_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    echo: Option<Echo>,
    peers: HashMap<String, Peer>,
    /// Clocks of relays no longer listed: a room taken over from one of them needs its times
    /// shifted by the last offset measured to it.
    departed: HashMap<String, PeerClock>,
}

/// Clocks of departed relays kept.
const DEPARTED_KEPT: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Echo {
    received: Instant,
    round_trip: Duration,
}

#[derive(Debug)]
struct Peer {
    info: RelayInfo,
    clock: PeerClock,
    /// When its last clock reply arrived: a relay that answers is alive, listed or not.
    last_heard: Option<Instant>,
}

/// The cluster part of `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterHealth {
    /// This relay's id among relays.
    pub relay_id: String,
    /// Whether the backplane can be used.
    pub backplane: BackplaneHealth,
    /// The last echo's round trip through the backplane, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_ms: Option<f64>,
    /// Seconds since the last echo came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_age_secs: Option<u64>,
    /// The other relays listed, and their clocks.
    pub peers: Vec<PeerHealth>,
    /// Members connected here whose rooms are on other relays.
    pub tunnelled_out: usize,
    /// Members of rooms here connected to other relays.
    pub tunnelled_in: usize,
}

/// One other relay as `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerHealth {
    /// Its id.
    pub relay_id: String,
    /// Its server clock minus ours, µs (none before the first probe came back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_us: Option<i64>,
    /// The most `offset_us` can be wrong by, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_error_us: Option<i64>,
    /// The round trip of the probe the estimate comes from, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<i64>,
}

impl Cluster {
    /// This relay, known to the others as `relay_id`, on `backplane`; `info` says how clients
    /// reach it now (certificate hashes rotate).
    pub fn new(
        relay_id: String,
        backplane: Arc<AnyBackplane>,
        clock: ServerClock,
        info: impl Fn() -> RelayInfo + Send + Sync + 'static,
    ) -> Self {
        Cluster {
            relay_id,
            backplane,
            clock,
            info: Box::new(info),
            state: Mutex::new(State::default()),
            tunnels: std::sync::OnceLock::new(),
            replied: tokio::sync::Notify::new(),
        }
    }

    /// Where tunnel messages go (members of one room on several relays).
    pub fn set_tunnels(&self, tunnels: Arc<crate::tunnel::Tunnels>) {
        let _ = self.tunnels.set(tunnels);
    }

    /// Whether relay `id` is listed now.
    pub fn is_listed(&self, id: &str) -> bool {
        self.state
            .lock()
            .is_ok_and(|state| state.peers.contains_key(id))
    }

    /// Whether relay `id` answers a clock probe sent now within `within`: alive, not merely
    /// listed (a relay killed a moment ago stays listed for up to 1.5 s).
    pub async fn answers(&self, id: &str, within: Duration) -> bool {
        let asked = Instant::now();
        let mut probe_sent = false;
        let probe = PeerMessage::ClockProbe {
            from: self.relay_id.clone(),
            t0: self.now_us(),
        };
        let deadline = asked + within;
        loop {
            // Registered before the check, so a reply in between is not missed.
            let replied = self.replied.notified();
            tokio::pin!(replied);
            replied.as_mut().enable();
            if !probe_sent {
                self.send(id, &probe).await;
                probe_sent = true;
            }
            let heard = self.state.lock().is_ok_and(|state| {
                state
                    .peers
                    .get(id)
                    .and_then(|p| p.last_heard)
                    .is_some_and(|t| t >= asked)
            });
            if heard {
                return true;
            }
            if tokio::time::timeout_at(deadline, replied).await.is_err() {
                return false;
            }
        }
    }

    /// This relay's id.
    pub fn relay_id(&self) -> &str {
        &self.relay_id
    }

    /// The channel relay `id` is reached on.
    pub fn channel_of(id: &str) -> String {
        format!("{NAMESPACE}:relay:{id}")
    }

    /// The other relays listed now, as clients reach them.
    pub fn peers(&self) -> Vec<RelayInfo> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let mut peers: Vec<RelayInfo> = state.peers.values().map(|p| p.info.clone()).collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers
    }

    /// The clock estimate for relay `id`.
    pub fn peer_clock(&self, id: &str) -> Option<ClockEstimate> {
        let state = self.state.lock().ok()?;
        match state.peers.get(id) {
            Some(p) => p.clock.estimate(),
            None => state.departed.get(id).and_then(PeerClock::estimate),
        }
    }

    /// What `/health` says about the cluster.
    pub fn health(&self) -> ClusterHealth {
        let (echo, mut peers) = match self.state.lock() {
            Ok(state) => (
                state.echo,
                state
                    .peers
                    .iter()
                    .map(|(id, p)| {
                        let e = p.clock.estimate();
                        PeerHealth {
                            relay_id: id.clone(),
                            offset_us: e.map(|e| e.offset_us),
                            offset_error_us: e.map(|e| e.error_us),
                            rtt_us: e.map(|e| e.rtt_us),
                        }
                    })
                    .collect(),
            ),
            Err(_) => (None, Vec::new()),
        };
        peers.sort_by(|a: &PeerHealth, b| a.relay_id.cmp(&b.relay_id));
        ClusterHealth {
            relay_id: self.relay_id.clone(),
            backplane: self.backplane.health(),
            echo_ms: echo.map(|e| e.round_trip.as_secs_f64() * 1e3),
            echo_age_secs: echo.map(|e| e.received.elapsed().as_secs()),
            peers,
            tunnelled_out: self.tunnels.get().map_or(0, |t| t.counts().0),
            tunnelled_in: self.tunnels.get().map_or(0, |t| t.counts().1),
        }
    }

    fn now_us(&self) -> u64 {
        self.clock.now().as_micros()
    }

    /// Lists this relay and takes the directory's answer as the set of peers.
    async fn register(&self) {
        let me = (self.info)();
        let listed = self
            .backplane
            .register(
                &format!("{NAMESPACE}:relays"),
                &self.relay_id,
                LISTING_TTL,
                Bytes::from(me.encode()),
            )
            .await;
        let Ok(listed) = listed else {
            // Unreachable: keep the peers known; their clocks stay valid a while.
            return;
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let alive: HashMap<String, RelayInfo> = listed
            .into_iter()
            .filter(|(id, _)| *id != self.relay_id)
            .filter_map(|(id, v)| RelayInfo::decode(&v).map(|info| (id, info)))
            .collect();
        let gone: Vec<String> = state
            .peers
            .keys()
            .filter(|id| !alive.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(peer) = state.peers.remove(&id) {
                if state.departed.len() >= DEPARTED_KEPT
                    && let Some(any) = state.departed.keys().next().cloned()
                {
                    state.departed.remove(&any);
                }
                state.departed.insert(id, peer.clock);
            }
        }
        for (id, info) in alive {
            state
                .peers
                .entry(id)
                .and_modify(|p| p.info = info.clone())
                .or_insert_with(|| Peer {
                    info,
                    clock: PeerClock::new(),
                    last_heard: None,
                });
        }
    }

    async fn send(&self, to: &str, message: &PeerMessage) {
        if let Err(e) = self
            .backplane
            .publish(&Cluster::channel_of(to), Bytes::from(message.encode()))
            .await
        {
            tracing::debug!(error = %e, to, "backplane message not sent");
        }
    }

    /// Echo to itself, a clock probe to every peer.
    async fn probe(&self) {
        self.send(&self.relay_id, &PeerMessage::Echo { t0: self.now_us() })
            .await;
        let peers: Vec<String> = match self.state.lock() {
            Ok(state) => state.peers.keys().cloned().collect(),
            Err(_) => return,
        };
        for peer in peers {
            let probe = PeerMessage::ClockProbe {
                from: self.relay_id.clone(),
                t0: self.now_us(),
            };
            self.send(&peer, &probe).await;
        }
    }

    /// A message on this relay's channel, read at `arrived` (µs, our clock).
    async fn on_message(&self, message: PeerMessage, arrived: u64) {
        match message {
            PeerMessage::Echo { t0 } => {
                let round_trip = Duration::from_micros(arrived.saturating_sub(t0));
                if let Ok(mut state) = self.state.lock() {
                    state.echo = Some(Echo {
                        received: Instant::now(),
                        round_trip,
                    });
                }
            }
            PeerMessage::ClockProbe { from, t0 } => {
                let reply = PeerMessage::ClockReply {
                    from: self.relay_id.clone(),
                    t0,
                    t1: arrived,
                    t2: self.now_us(),
                };
                self.send(&from, &reply).await;
            }
            PeerMessage::ClockReply { from, t0, t1, t2 } => {
                if let Ok(mut state) = self.state.lock()
                    && let Some(peer) = state.peers.get_mut(&from)
                {
                    let t = ServerTime::from_micros;
                    peer.clock.on_reply(t(t0), t(t1), t(t2), t(arrived));
                    peer.last_heard = Some(Instant::now());
                }
                self.replied.notify_waiters();
            }
            tunnel => {
                if let Some(tunnels) = self.tunnels.get() {
                    tunnels.on_message(tunnel).await;
                }
            }
        }
    }
}

/// Subscribes to this relay's channel (again until the backplane takes it), then once a second
/// registers, echoes and probes, and handles what arrives.
pub async fn run(cluster: Arc<Cluster>, mut inbox: mpsc::Receiver<Envelope>) {
    let channel = Cluster::channel_of(&cluster.relay_id);
    // The rounds wait on Redis (slow or away at times): on their own task, so that what
    // arrives, clock replies and rooms' messages, is never held up behind them.
    let _rounds = {
        let (cluster, channel) = (cluster.clone(), channel.clone());
        AbortOnDrop(tokio::spawn(async move {
            let mut subscribed = false;
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if !subscribed {
                    subscribed = cluster.backplane.subscribe(&channel).await.is_ok();
                }
                cluster.register().await;
                if subscribed {
                    cluster.probe().await;
                }
            }
        }))
    };
    while let Some(envelope) = inbox.recv().await {
        let arrived = cluster.clock.at(envelope.received).as_micros();
        if envelope.channel != channel && !crate::tunnel::is_room_channel(&envelope.channel) {
            tracing::debug!(channel = %envelope.channel, "backplane message on an unknown channel");
            continue;
        }
        match PeerMessage::decode(&envelope.payload) {
            Some(message) => cluster.on_message(message, arrived).await,
            None => tracing::debug!("unreadable message from another relay"),
        }
    }
}

/// Stops a task when its owner stops (the relay's tasks are aborted at shutdown: a relay
/// that stopped must not go on listing itself).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
