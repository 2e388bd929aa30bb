//! One simulated viewer: it connects, says hello, creates or joins its room, and then plays its
//! part of the load until the run stops it.
//!
//! Every member pings at its own rate between 1 and 2 Hz (datagrams on WebTransport) and, in the
//! active loads, sends `stats` about once a second. Its plan may add: commands (a host in host
//! mode), chat lines (the chatter), seek proposals (a proposer in a democratic room), yes votes
//! (a voter), or reading nothing at all during the run (a slow consumer). Whatever arrives is
//! counted by type and, where it answers something sent in this process, timed
//! ([`tracker`](super::tracker)).
//!
//! One task per member, waiting on its connection and its timers at once; it never waits on
//! another member.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lockstep_proto::message::{
    Action, Chat, CreateRoom, Hello, JoinRoom, MemberId, Outcome, Pause, Ping, Play, RoomId,
    RoomOptions, Seek, Stats, Transport, Vote,
};
use lockstep_proto::{ErrorCode, Message};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Interval, MissedTickBehavior};

use super::client::{Conn, Dialer, Incoming};
use super::metrics::{Count, Latency, Metrics};
use super::prng::Prng;
use super::scenario::{ClientPlan, Plan};
use super::tracker::{
    CommandKind, FirstCopy, RoomTracker, Sent, UpdateMatch, chat_text, id_of, parse_chat,
    position_of,
};

/// A host that has not seen its command's timeline after this long sends the next one.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// A proposal undecided after this long no longer holds the next one back.
const PROPOSAL_STALE: Duration = Duration::from_secs(10);
/// How long a slow consumer, reading again at the end, may take to reach its close.
const DRAIN: Duration = Duration::from_secs(10);
/// Clock pings: every 500 to 1000 ms (1-2 Hz), a period chosen per member.
const PING_PERIOD_MS: (u64, u64) = (500, 1000);
/// `stats` at most this often.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Where a run is; members watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Clients are connecting: members only ping.
    Connecting,
    /// The load runs: commands, chat, proposals; slow consumers stop reading.
    Running,
    /// The run is over: members close (slow consumers first read to their end).
    Stopping,
}

/// What every member shares.
pub(crate) struct Shared {
    /// Rooms, roles, rates.
    pub(crate) plan: Plan,
    /// Where members record.
    pub(crate) metrics: Metrics,
    /// Per room: send instants.
    pub(crate) trackers: Box<[RoomTracker]>,
    /// Per room: its id, once its host created it.
    pub(crate) room_ids: Box<[OnceLock<RoomId>]>,
    /// Opens connections.
    pub(crate) dialer: Dialer,
    /// The run's phase.
    pub(crate) phase: watch::Receiver<Phase>,
    /// Bounds the set-ups in progress.
    pub(crate) connecting: Semaphore,
    /// Longest set-up.
    pub(crate) connect_timeout: Duration,
    /// Time origin of ping timestamps.
    pub(crate) origin: Instant,
    /// The run's seed.
    pub(crate) seed: u64,
}

/// How a member's set-up ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetUp {
    /// Connected and in its room.
    Joined,
    /// Failed; the kind of failure.
    Failed(String),
}

/// Starts client `index`: it reports its set-up on `done`, then runs until the phase is
/// [`Phase::Stopping`].
pub(crate) fn spawn(
    shared: Arc<Shared>,
    index: usize,
    done: mpsc::Sender<SetUp>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // The set-up's time limit starts when its turn comes, not while it queues.
        let Ok(permit) = shared.connecting.acquire().await else {
            return;
        };
        let setup = tokio::time::timeout(shared.connect_timeout, Member::set_up(&shared, index));
        let setup = setup.await;
        drop(permit);
        match setup {
            Ok(Ok(member)) => {
                shared.metrics.connected(1);
                let _ = done.send(SetUp::Joined).await;
                drop(done);
                member.run().await;
                shared.metrics.connected(-1);
            }
            Ok(Err(kind)) => {
                shared.metrics.error_kind(kind.clone());
                let _ = done.send(SetUp::Failed(kind)).await;
            }
            Err(_) => {
                let kind = "setup: timed out".to_owned();
                shared.metrics.error_kind(kind.clone());
                let _ = done.send(SetUp::Failed(kind)).await;
            }
        }
    })
}

/// Shortens a relay's reason for the error table (they may carry ids and addresses).
fn short(reason: &str) -> String {
    reason.chars().take(60).collect()
}

/// Ticks if there is a timer, never otherwise.
async fn tick(timer: &mut Option<Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A timer firing `per_sec` times a second from a random phase, or none at rate 0.
fn timer(per_sec: f64, rng: &mut Prng) -> Option<Interval> {
    if per_sec <= 0.0 {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / per_sec);
    let first = tokio::time::Instant::now() + period.mul_f64(rng.unit());
    let mut t = tokio::time::interval_at(first, period);
    // After a stall, carry on at the rate instead of catching up in a burst.
    t.set_missed_tick_behavior(MissedTickBehavior::Skip);
    Some(t)
}

/// A command in flight: the `seq` it will produce, when it left, its `req`.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    at: Instant,
    req: u32,
}

struct Member {
    shared: Arc<Shared>,
    index: usize,
    plan: ClientPlan,
    conn: Conn,
    rng: Prng,
    me: MemberId,
    room_id: RoomId,
    first: FirstCopy,
    paused: bool,
    in_flight: Option<InFlight>,
    commands: u64,
    chats: u64,
    ping_seq: u32,
    last_rtt_us: u32,
    last_stats: Instant,
    last_proposal: u32,
}

impl Member {
    fn tracker(&self) -> Option<&RoomTracker> {
        self.shared.trackers.get(self.plan.room)
    }

    /// Connect, hello, create or join: a member in its room, or the kind of failure.
    async fn set_up(shared: &Arc<Shared>, index: usize) -> Result<Member, String> {
        let plan = shared
            .plan
            .clients
            .get(index)
            .cloned()
            .ok_or_else(|| "setup: no such client".to_owned())?;
        let started = Instant::now();
        let conn = shared
            .dialer
            .connect(index, plan.transport, plan.slow)
            .await
            .map_err(|e| format!("connect: {}: {}", e.kind, short(&e.detail)))?;
        let mut m = Member {
            shared: shared.clone(),
            index,
            rng: Prng::new(shared.seed, index as u64),
            plan,
            conn,
            me: 0,
            room_id: RoomId::new(""),
            first: FirstCopy::default(),
            paused: true,
            in_flight: None,
            commands: 0,
            chats: 0,
            ping_seq: 0,
            last_rtt_us: 0,
            last_stats: Instant::now(),
            last_proposal: 0,
        };
        m.send(
            Hello {
                version: lockstep_proto::limits::PROTOCOL_VERSION,
                client: "lockstep-load/0.1".into(),
                features: Vec::new(),
                token: None,
                name: Some(format!("load {index}")),
                resume: None,
            }
            .into(),
        )
        .await
        .map_err(|e| format!("hello: send: {}", short(&e)))?;
        m.me = m
            .reply("hello", |msg| match msg {
                Message::Welcome(w) => Some(w.you),
                _ => None,
            })
            .await?;
        let room = m.plan.room;
        let state = if m.plan.host {
            let mode = shared
                .plan
                .rooms
                .get(room)
                .map(|r| r.mode)
                .unwrap_or_default();
            let options = RoomOptions {
                // Play applies at once: load members never report `ready`.
                ready_timeout_ms: 0,
                ..RoomOptions::default()
            };
            m.send(
                CreateRoom {
                    req: Some(1),
                    name: format!("load {room}"),
                    password: None,
                    media: None,
                    mode,
                    options: Some(options),
                }
                .into(),
            )
            .await
            .map_err(|e| format!("create_room: send: {}", short(&e)))?;
            let state = m.reply("create_room", room_state).await?;
            if let Some(slot) = shared.room_ids.get(room) {
                let _ = slot.set(state.0.clone());
            }
            state
        } else {
            let Some(id) = shared.room_ids.get(room).and_then(OnceLock::get).cloned() else {
                return Err("join: the room's host failed".into());
            };
            m.send(
                JoinRoom {
                    req: Some(1),
                    room: id.as_str().to_owned(),
                    password: None,
                }
                .into(),
            )
            .await
            .map_err(|e| format!("join_room: send: {}", short(&e)))?;
            m.reply("join_room", room_state).await?
        };
        (m.room_id, m.first, m.paused) = (state.0, FirstCopy::new(state.1), state.2);
        shared.metrics.connect_latency(started.elapsed());
        Ok(m)
    }

    /// Waits for the reply `pick` recognises, counting what else arrives; an `error` or a
    /// close is the failure `step: ...`.
    async fn reply<T>(
        &mut self,
        step: &str,
        pick: impl Fn(&Message) -> Option<T>,
    ) -> Result<T, String> {
        loop {
            match self.conn.recv().await {
                Incoming::Message(m) => {
                    self.shared.metrics.received(self.index, m.kind());
                    if let Some(t) = pick(&m) {
                        return Ok(t);
                    }
                    if let Message::Error(e) = *m {
                        self.shared.metrics.error_code(e.code.name());
                        return Err(format!("{step}: error {}", e.code.name()));
                    }
                }
                Incoming::Undecodable(e) => {
                    self.shared
                        .metrics
                        .error_kind(format!("undecodable: {}", short(&e)));
                }
                Incoming::Closed(why) => return Err(format!("{step}: closed: {}", short(&why))),
            }
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), String> {
        let kind = message.kind();
        self.conn.send(&message).await?;
        self.shared.metrics.sent(self.index, kind);
        Ok(())
    }

    async fn send_datagram(&mut self, message: Message) -> Result<(), String> {
        let kind = message.kind();
        self.conn.send_datagram(&message).await?;
        self.shared.metrics.sent(self.index, kind);
        Ok(())
    }

    /// The member's life after its set-up.
    async fn run(mut self) {
        let mut phase = self.shared.phase.clone();
        let rates = self.shared.plan.rates.clone();
        let period = Duration::from_millis(self.rng.range(PING_PERIOD_MS.0, PING_PERIOD_MS.1));
        let mut ping = timer(1.0 / period.as_secs_f64(), &mut self.rng);
        let mut command = if self.plan.host {
            timer(rates.commands_per_sec, &mut self.rng)
        } else {
            None
        };
        let mut chat = if self.plan.chatter {
            timer(rates.chat_per_sec, &mut self.rng)
        } else {
            None
        };
        let mut propose = match self.plan.proposer {
            Some(_) => timer(
                rates.proposals_per_sec / rates.proposers as f64,
                &mut self.rng,
            ),
            None => None,
        };
        // One pass per phase: the phase's change future lives as long as the phase, instead of
        // being made again for every message (it registers with the watch each time).
        'phases: loop {
            let now = *phase.borrow_and_update();
            if now == Phase::Stopping {
                break;
            }
            let running = now == Phase::Running;
            let reading = !(self.plan.slow && running);
            let changed = phase.changed();
            tokio::pin!(changed);
            loop {
                let outcome = tokio::select! {
                    changed = &mut changed => match changed {
                        Ok(()) => continue 'phases,
                        Err(_) => break 'phases,
                    },
                    incoming = self.conn.recv(), if reading => self.on_incoming(incoming).await,
                    _ = tick(&mut ping) => self.on_ping().await,
                    _ = tick(&mut command), if running => self.on_command().await,
                    _ = tick(&mut chat), if running => self.on_chat().await,
                    _ = tick(&mut propose), if running => self.on_propose().await,
                };
                if let Err(why) = outcome {
                    if self.plan.slow {
                        self.slow_closed(&why);
                    } else if !why.is_empty() {
                        self.shared.metrics.error_kind(why);
                        self.shared.metrics.count(self.index, Count::Disconnects);
                    }
                    return;
                }
            }
        }
        if self.plan.slow {
            self.drain().await;
        }
        self.conn.close().await;
    }

    /// A slow consumer reads again until its connection ends: did the relay cut it?
    async fn drain(&mut self) {
        let deadline = tokio::time::Instant::now() + DRAIN;
        loop {
            match tokio::time::timeout_at(deadline, self.conn.recv()).await {
                Ok(Incoming::Closed(why)) => return self.slow_closed(&why),
                Ok(_) => {}
                Err(_) => {
                    self.shared.metrics.count(self.index, Count::SlowNotCut);
                    return;
                }
            }
        }
    }

    fn slow_closed(&self, why: &str) {
        if why.contains("slow_consumer") {
            self.shared.metrics.count(self.index, Count::SlowCut);
        } else {
            self.shared.metrics.count(self.index, Count::SlowNotCut);
            self.shared
                .metrics
                .error_kind(format!("slow client closed: {}", short(why)));
        }
    }

    /// Handles what arrived; `Err` ends the member (with the error kind to count, empty for
    /// none).
    async fn on_incoming(&mut self, incoming: Incoming) -> Result<(), String> {
        let message = match incoming {
            Incoming::Message(m) => *m,
            Incoming::Undecodable(e) => {
                self.shared
                    .metrics
                    .error_kind(format!("undecodable: {}", short(&e)));
                return Ok(());
            }
            Incoming::Closed(why) => return Err(format!("closed: {}", short(&why))),
        };
        let now = Instant::now();
        let metrics = &self.shared.metrics;
        metrics.received(self.index, message.kind());
        match message {
            Message::StateUpdate(u) if u.room == self.room_id => {
                let t = u.timeline;
                let Some(tracker) = self.shared.trackers.get(self.plan.room) else {
                    return Ok(());
                };
                match tracker.match_update(&mut self.first, t.seq, t.position, u.reason) {
                    UpdateMatch::Command(sent) => {
                        metrics.latency(self.index, Latency::Command, now - sent.at);
                        let by_transport = match self.plan.transport {
                            Transport::Websocket => Latency::CommandWs,
                            Transport::Webtransport => Latency::CommandWt,
                        };
                        metrics.latency(self.index, by_transport, now - sent.at);
                    }
                    UpdateMatch::Mismatch => metrics.count(self.index, Count::UpdatesMismatched),
                    // Democratic rooms register proposals, not timelines.
                    UpdateMatch::Unknown if self.shared.plan.rates.commands_per_sec > 0.0 => {
                        metrics.count(self.index, Count::UpdatesUnknown);
                    }
                    UpdateMatch::Unknown | UpdateMatch::Repeat => {}
                }
                if t.seq >= self.first.last() {
                    self.paused = t.paused;
                }
                if let Some(f) = self.in_flight
                    && t.seq >= f.seq
                {
                    self.in_flight = None;
                    metrics.count(self.index, Count::CommandsApplied);
                }
            }
            Message::Pong(p) => {
                let now_us = self.micros();
                if p.t0 <= now_us {
                    let rtt = now_us - p.t0;
                    self.last_rtt_us = u32::try_from(rtt).unwrap_or(u32::MAX);
                    metrics.latency(self.index, Latency::Rtt, Duration::from_micros(rtt));
                }
            }
            Message::ChatMessage(c) if c.room == self.room_id => {
                let sent = parse_chat(&c.text)
                    .filter(|(room, _)| *room == self.plan.room)
                    .and_then(|(_, n)| self.tracker()?.chat(n));
                match sent {
                    Some(at) => metrics.latency(self.index, Latency::Chat, now - at),
                    None => metrics.count(self.index, Count::ChatsUnknown),
                }
            }
            Message::Proposal(p) if p.room == self.room_id => {
                let proposal = p.proposal;
                if proposal.id > self.last_proposal {
                    self.last_proposal = proposal.id;
                    if let Action::Seek { position } = proposal.action
                        && let Some(at) =
                            id_of(position).and_then(|id| self.tracker()?.proposal(id))
                    {
                        metrics.latency(self.index, Latency::Proposal, now - at);
                    }
                    if self.plan.voter
                        && proposal.proposer != self.me
                        && proposal.yes < proposal.needed
                    {
                        self.send(
                            Vote {
                                req: None,
                                proposal: proposal.id,
                                yes: true,
                            }
                            .into(),
                        )
                        .await?;
                        self.shared.metrics.count(self.index, Count::VotesSent);
                    }
                }
            }
            Message::Decision(d) if d.room == self.room_id => {
                if let Action::Seek { position } = d.action
                    && let Some(id) = id_of(position)
                    && let Some(tracker) = self.tracker()
                {
                    if let Some(at) = tracker.proposal(id) {
                        metrics.latency(self.index, Latency::Decision, now - at);
                    }
                    tracker.proposal_closed(id);
                }
                let c = if d.outcome == Outcome::Passed {
                    Count::DecisionsPassed
                } else {
                    Count::DecisionsOther
                };
                metrics.count(self.index, c);
            }
            // Votes that arrive after their proposal was decided: expected in a big room,
            // where the deciding vote and the late ones cross.
            Message::Error(e) if e.code == ErrorCode::ProposalClosed && self.plan.voter => {
                metrics.count(self.index, Count::LateVotes);
            }
            Message::Error(e) => {
                metrics.error_code(e.code.name());
                if let (Some(req), Some(f)) = (e.req, self.in_flight)
                    && req == f.req
                {
                    self.in_flight = None;
                    if let Some(t) = self.tracker() {
                        t.command_refused(f.seq);
                    }
                    metrics.count(self.index, Count::CommandsRefused);
                }
                if let (Some(req), Some(_)) = (e.req, self.plan.proposer)
                    && let Some(t) = self.tracker()
                {
                    t.proposal_closed(u64::from(req));
                }
            }
            Message::RoomClosed(_) => return Err("room closed".into()),
            Message::MemberLeft(l) if l.member == self.me => {
                return Err(format!("left the room: {:?}", l.reason));
            }
            _ => {}
        }
        Ok(())
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.shared.origin.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    async fn on_ping(&mut self) -> Result<(), String> {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        let ping = Ping {
            seq: self.ping_seq,
            t0: self.micros(),
        };
        self.send_datagram(ping.into())
            .await
            .map_err(|e| format!("send: {}", short(&e)))?;
        self.shared.metrics.count(self.index, Count::PingsSent);
        if self.shared.plan.rates.stats && self.last_stats.elapsed() >= STATS_EVERY {
            self.last_stats = Instant::now();
            let drift = self.rng.range(0, 4_000) as i64 - 2_000;
            let stats = Stats {
                rtt_us: self.last_rtt_us,
                offset_us: 0,
                offset_error_us: self.last_rtt_us / 2,
                drift_us: drift,
                position: None,
                at: None,
            };
            self.send_datagram(stats.into())
                .await
                .map_err(|e| format!("send: {}", short(&e)))?;
            self.shared.metrics.count(self.index, Count::StatsSent);
        }
        Ok(())
    }

    /// A host's command tick: the next command, unless the previous one is still in flight.
    async fn on_command(&mut self) -> Result<(), String> {
        let shared = Arc::clone(&self.shared);
        let Some(tracker) = shared.trackers.get(self.plan.room) else {
            return Ok(());
        };
        if let Some(f) = self.in_flight {
            if f.at.elapsed() < COMMAND_TIMEOUT {
                shared.metrics.count(self.index, Count::CommandsSkipped);
                return Ok(());
            }
            shared.metrics.count(self.index, Count::CommandTimeouts);
            tracker.command_refused(f.seq);
            self.in_flight = None;
        }
        let id = tracker.next_id();
        self.commands += 1;
        let kind = match (self.commands.is_multiple_of(4), self.paused) {
            (false, _) => CommandKind::Seek,
            (true, true) => CommandKind::Play,
            (true, false) => CommandKind::Pause,
        };
        let seq = self.first.last() + 1;
        let req = u32::try_from(id % u64::from(u32::MAX)).unwrap_or(0);
        let at = Instant::now();
        // Registered before it leaves, so no member can see its timeline first.
        tracker.command_sent(seq, Sent { at, kind, id });
        self.in_flight = Some(InFlight { seq, at, req });
        let message: Message = match kind {
            CommandKind::Seek => Seek {
                req: Some(req),
                position: position_of(id),
            }
            .into(),
            CommandKind::Pause => Pause { req: Some(req) }.into(),
            CommandKind::Play => Play { req: Some(req) }.into(),
        };
        self.send(message)
            .await
            .map_err(|e| format!("send: {}", short(&e)))?;
        self.shared.metrics.count(self.index, Count::CommandsSent);
        Ok(())
    }

    async fn on_chat(&mut self) -> Result<(), String> {
        self.chats += 1;
        let n = self.chats;
        if let Some(t) = self.tracker() {
            t.chat_sent(n, Instant::now());
        }
        let chat = Chat {
            req: None,
            text: chat_text(self.plan.room, n, self.shared.plan.rates.chat_len),
        };
        self.send(chat.into())
            .await
            .map_err(|e| format!("send: {}", short(&e)))?;
        self.shared.metrics.count(self.index, Count::ChatsSent);
        Ok(())
    }

    /// A proposer's tick: a seek proposal, unless one is open.
    async fn on_propose(&mut self) -> Result<(), String> {
        let shared = Arc::clone(&self.shared);
        let Some(tracker) = shared.trackers.get(self.plan.room) else {
            return Ok(());
        };
        let id = tracker.next_id();
        if !tracker.try_open_proposal(id, Instant::now(), PROPOSAL_STALE) {
            return Ok(());
        }
        let seek = Seek {
            req: Some(u32::try_from(id).unwrap_or(u32::MAX)),
            position: position_of(id),
        };
        self.send(seek.into())
            .await
            .map_err(|e| format!("send: {}", short(&e)))?;
        self.shared.metrics.count(self.index, Count::ProposalsSent);
        Ok(())
    }
}

/// The room id, timeline `seq` and paused state of a `room_state` reply.
fn room_state(m: &Message) -> Option<(RoomId, u64, bool)> {
    match m {
        Message::RoomState(s) if s.req == Some(1) => {
            Some((s.room.id.clone(), s.timeline.seq, s.timeline.paused))
        }
        _ => None,
    }
}
