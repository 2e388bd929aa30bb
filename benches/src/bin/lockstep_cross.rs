//! `lockstep-cross`: what a member pays for talking to another relay than its room's home.
//!
//! Two relay processes (the real `lockstep` binary) share rooms through one `redis-server` the
//! tool starts on loopback (or the one at `--redis`). Each room is created on relay H (its
//! home) by its host; `--members` clients join it through H, and as many through relay O,
//! whose messages are tunnelled through Redis to the home and back. The host alternates
//! pause and play at `--rate` commands a second; every member notes when each command's
//! `state_update` reaches it. One clock in one process, so each one-way latency (host sends →
//! member receives) is exact; they go into one histogram for the members on H ("same relay")
//! and one for those on O ("other relay"). Commands sent during `--warmup` are not counted.
//!
//! Reported: count, p50, p90, p99, p99.9 and max of each, what the cross-relay hop adds (other
//! − same, at p50 and p99), the deliveries per second to each group (those to O all went
//! through Redis), and lost deliveries (expected − received; 0 unless something is wrong).
//!
//! ```sh
//! cargo build --release -p lockstep-relay --bin lockstep
//! cargo build --release -p lockstep-benches --bin lockstep-cross
//! target/release/lockstep-cross --duration 10 --json /tmp/cross-1room.json
//! target/release/lockstep-cross --rooms 20 --members 5 --rate 10 --json /tmp/cross-20rooms.json
//! ```
//!
//! The relays run with `--control-per-sec` raised to twice `--rate` (at least the default
//! 20), so that the host's commands are never rate-limited. Set `LOCKSTEP_BENCH_RELAY_LOG`
//! (e.g. `debug`) to see the relays' logs on stderr.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use lockstep_proto::message::{
    CreateRoom, Hello, JoinRoom, MemberId, Pause, Ping, Play, PolicyMode, Ready, RoomState,
    TimelineReason,
};
use lockstep_proto::{Encoding, Message, decode, encode, limits};
use lockstep_relay::testing::RedisServer;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What a member pays for being on another relay than its room's home.
#[derive(Parser)]
#[command(name = "lockstep-cross", version)]
struct Cli {
    /// Rooms, each with its host on the home relay.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    rooms: u32,
    /// Members per room on each relay (so twice this many members per room, plus the host).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=400))]
    members: u32,
    /// Commands (alternately pause and play) per second per room.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    rate: u32,
    /// Seconds measured (after the warmup).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    duration: u64,
    /// Seconds of commands sent first and not counted.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup: u64,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The relay binary (default: `lockstep` next to this binary).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Use this Redis instead of starting one (`redis://host:port/`).
    #[arg(long)]
    redis: Option<String>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

/// How long one setup step (connect, hello, join, a relay starting) may take.
const STEP: Duration = Duration::from_secs(15);
/// How long the whole setup (every room and member) may take.
const SETUP: Duration = Duration::from_secs(120);
/// How long after the last command the deliveries may still come in.
const DRAIN: Duration = Duration::from_secs(5);
/// Between creating a room and joining it through the other relay: the room's record (with its
/// home) must be in Redis first.
const STORED: Duration = Duration::from_millis(300);
/// Between everyone being ready and the first command: the room settles.
const SETTLE: Duration = Duration::from_millis(500);
/// Members say something this often (the relay closes WebSockets idle for 45 s).
const KEEPALIVE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockstep-cross: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Relay processes

/// A relay process on free loopback ports, killed (SIGKILL) and reaped when dropped.
struct RelayProcess {
    child: Child,
    /// Its HTTP address (WebSocket, `/health`).
    http: SocketAddr,
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The relay binary: `--relay-bin`, or `lockstep` next to this binary.
fn relay_bin(given: Option<&PathBuf>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("this executable has no directory")?
            .join("lockstep"),
    };
    if !path.is_file() {
        return Err(format!(
            "the relay binary {} was not found: build it: cargo build --release -p \
             lockstep-relay --bin lockstep (or pass --relay-bin)",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// Starts the relay on `redis`; waits until it says where it listens.
fn start_relay(bin: &Path, redis: &str, control_per_sec: f64) -> Result<RelayProcess> {
    let log = std::env::var("LOCKSTEP_BENCH_RELAY_LOG").ok();
    let child = Command::new(bin)
        .args([
            "--http",
            "127.0.0.1:0",
            "--webtransport",
            "127.0.0.1:0",
            "--redis",
            redis,
            // Every client comes from 127.0.0.1.
            "--connections-per-ip",
            "100000",
            "--control-per-sec",
            &control_per_sec.to_string(),
        ])
        .env("RUST_LOG", log.as_deref().unwrap_or("warn"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if log.is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    // Owned by the guard from here on: killed on every error path below.
    let mut relay = RelayProcess {
        child,
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let stdout = relay.child.stdout.take().ok_or("the relay has no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads its stdout to the end, so that the relay never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if let Some(url) = line.split("open http://").nth(1) {
                let addr = url.split_whitespace().next().unwrap_or("");
                let _ = tx.send(addr.trim_end_matches('/').to_string());
            }
        }
    });
    let addr = rx.recv_timeout(STEP).map_err(|e| {
        format!(
            "the relay {} never said where it listens ({e}); run with \
             LOCKSTEP_BENCH_RELAY_LOG=info to see why",
            bin.display()
        )
    })?;
    let http: SocketAddr = addr
        .parse()
        .map_err(|e| format!("the relay's address {addr:?}: {e}"))?;
    if !http.ip().is_loopback() {
        return Err(format!("the relay listens on {http}, not on loopback").into());
    }
    relay.http = http;
    Ok(relay)
}

/// The relay's `/health`, as JSON.
async fn health(addr: SocketAddr) -> Result<serde_json::Value> {
    let body = lockstep_benches::http::get(addr, "/health", Duration::from_secs(5)).await?;
    Ok(serde_json::from_str(&body)?)
}

/// Waits until the relay at `addr` lists `peers` other relays, each with a clock estimate.
async fn wait_for_peers(addr: SocketAddr, peers: usize) -> Result<()> {
    let deadline = Instant::now() + STEP;
    loop {
        let h = health(addr).await.unwrap_or_default();
        let measured = h["peers"].as_array().map_or(0, |p| {
            p.iter().filter(|p| p["offset_us"].is_number()).count()
        });
        if measured >= peers {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(
                format!("the relays never met within {STEP:?}: /health of {addr}: {h}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `/health` says of the backplane: the last echo's round trip through Redis, and the
/// peers' clock probes.
fn health_summary(h: &serde_json::Value) -> serde_json::Value {
    json!({
        "echo_ms": h["echo_ms"],
        "peers": h["peers"],
        "status": h["status"],
    })
}

/// `/health`'s `echo_ms`, for people.
fn echo_ms(h: &serde_json::Value) -> String {
    h["echo_ms"]
        .as_f64()
        .map_or_else(|| "?".into(), |v| format!("{v:.3}"))
}

// ---------------------------------------------------------------------------------------------
// Clients

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client speaking MessagePack in binary frames.
struct Client {
    sink: SplitSink<Ws, WsMessage>,
    stream: SplitStream<Ws>,
    /// Its member id.
    you: MemberId,
}

/// A message from the relay and when its frame arrived.
type Arrived = (Message, Instant);

/// One frame from the relay: a message, or none for a WebSocket ping or pong; an error when the
/// connection ends or the frame does not decode.
fn frame(
    next: Option<std::result::Result<WsMessage, impl std::fmt::Display>>,
) -> Result<Option<Arrived>> {
    match next {
        None => Err("the connection ended".into()),
        Some(Err(e)) => Err(format!("the connection failed: {e}").into()),
        Some(Ok(WsMessage::Binary(b))) => {
            let at = Instant::now();
            let m = decode(&b, Encoding::MessagePack, limits::MAX_RELAY_FRAME)
                .map_err(|e| format!("undecodable message from the relay: {e}"))?;
            Ok(Some((m, at)))
        }
        Some(Ok(WsMessage::Close(c))) => Err(format!(
            "the relay closed the connection: {}",
            c.map(|c| c.reason.to_string()).unwrap_or_default()
        )
        .into()),
        Some(Ok(WsMessage::Text(_))) => Err("a text frame from the relay".into()),
        Some(Ok(_)) => Ok(None),
    }
}

impl Client {
    /// Connects to the relay at `addr` and says hello as `name`.
    async fn connect(addr: SocketAddr, name: &str) -> Result<Client> {
        if !addr.ip().is_loopback() {
            return Err(format!("{addr} is not a loopback address").into());
        }
        let (ws, _) = tokio::time::timeout(
            STEP,
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
        )
        .await
        .map_err(|_| format!("{name}: connecting to {addr} timed out"))?
        .map_err(|e| format!("{name}: connecting to {addr}: {e}"))?;
        let (sink, stream) = ws.split();
        let mut c = Client {
            sink,
            stream,
            you: 0,
        };
        c.send(Hello {
            version: 1,
            client: concat!("lockstep-cross/", env!("CARGO_PKG_VERSION")).into(),
            features: vec![],
            token: None,
            name: Some(name.into()),
            resume: None,
        })
        .await?;
        let deadline = tokio::time::Instant::now() + STEP;
        let welcome = c
            .expect(deadline, |m| match m {
                Message::Welcome(w) => Some(w),
                _ => None,
            })
            .await
            .map_err(|e| format!("{name}: hello: {e}"))?;
        c.you = welcome.you;
        Ok(c)
    }

    async fn send(&mut self, m: impl Into<Message>) -> Result<()> {
        let bytes = encode(&m.into(), Encoding::MessagePack)?;
        tokio::time::timeout(STEP, self.sink.send(WsMessage::Binary(bytes.into())))
            .await
            .map_err(|_| "sending to the relay timed out")??;
        Ok(())
    }

    /// The next message `pick` takes, skipping others, before `deadline`; an `error` from the
    /// relay fails it.
    async fn expect<T>(
        &mut self,
        deadline: tokio::time::Instant,
        pick: impl Fn(Message) -> Option<T>,
    ) -> Result<T> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .map_err(|_| "timed out waiting for the relay")?;
            if let Some((m, _)) = frame(next)? {
                if let Message::Error(e) = &m {
                    return Err(format!("error {}: {}", e.code.name(), e.message).into());
                }
                if let Some(t) = pick(m) {
                    return Ok(t);
                }
            }
        }
    }

    /// Joins `room`, retrying while the relay does not know it yet.
    async fn join(&mut self, room: &str) -> Result<RoomState> {
        let deadline = tokio::time::Instant::now() + STEP;
        let mut req = 0;
        loop {
            req += 1;
            self.send(JoinRoom {
                req: Some(req),
                room: room.into(),
                password: None,
            })
            .await?;
            let got = self
                .expect(deadline, |m| match m {
                    Message::RoomState(s) => Some(s),
                    _ => None,
                })
                .await;
            match got {
                Ok(s) => return Ok(s),
                Err(e) if tokio::time::Instant::now() + STORED < deadline => {
                    eprintln!("joining {room}: {e}; again");
                    tokio::time::sleep(STORED).await;
                }
                Err(e) => return Err(format!("joining {room}: {e}").into()),
            }
        }
    }

    async fn ready(&mut self) -> Result<()> {
        self.send(Ready {
            req: None,
            ready: true,
            wait_for_me: true,
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// One room

/// A room set up: its host and its members on each relay, everyone ready.
struct Room {
    host: Client,
    same: Vec<Client>,
    other: Vec<Client>,
}

async fn set_up_room(
    index: u32,
    members: u32,
    home: SocketAddr,
    other: SocketAddr,
) -> Result<Room> {
    let mut host = Client::connect(home, &format!("host-{index}")).await?;
    host.send(CreateRoom {
        req: Some(1),
        name: format!("Cross {index}"),
        password: None,
        media: None,
        mode: PolicyMode::Host,
        options: None,
    })
    .await?;
    let deadline = tokio::time::Instant::now() + STEP;
    let created = host
        .expect(deadline, |m| match m {
            Message::RoomState(s) => Some(s),
            _ => None,
        })
        .await
        .map_err(|e| format!("creating room {index}: {e}"))?;
    let room = created.room.id.as_str().to_string();
    tokio::time::sleep(STORED).await;
    let join = |at: SocketAddr, name: String| {
        let room = room.clone();
        async move {
            let mut c = Client::connect(at, &name).await?;
            c.join(&room).await.map_err(|e| format!("{name}: {e}"))?;
            Ok::<_, Error>(c)
        }
    };
    let same = futures_util::future::try_join_all(
        (0..members).map(|i| join(home, format!("same-{index}-{i}"))),
    )
    .await?;
    let other = futures_util::future::try_join_all(
        (0..members).map(|i| join(other, format!("other-{index}-{i}"))),
    )
    .await?;
    let mut room = Room { host, same, other };
    room.host.ready().await?;
    for c in room.same.iter_mut().chain(room.other.iter_mut()) {
        c.ready().await?;
    }
    Ok(room)
}

/// What a host saw of its commands.
#[derive(Default)]
struct HostRun {
    /// When command k (1, 2, …) was sent, at `k - 1`.
    sent: Vec<Instant>,
    /// The command each timeline `seq` applied, from the host's own copy of the update.
    applied: HashMap<u64, usize>,
    /// When the host's own copy of command k's update arrived.
    echoed: HashMap<usize, Instant>,
    /// Commands the relay refused (`error` with their `req`).
    rejected: u64,
    /// The first refusal's text.
    first_rejection: Option<String>,
    /// Updates by the host that did not match the command expected (its effect, or none left).
    mismatched: u64,
    /// The last `seq` the host's commands applied.
    last_seq: u64,
    /// Why the host stopped early.
    error: Option<String>,
}

/// The host: a command every `period` from `start` (shifted by `offset`) until `end`, then
/// reads until every command is accounted for (or `DRAIN` passed). Returns its connection
/// too, kept open until the members are done.
async fn host_loop(
    mut host: Client,
    start: tokio::time::Instant,
    offset: Duration,
    period: Duration,
    end: Instant,
) -> (HostRun, Client) {
    let mut run = HostRun::default();
    if let Err(e) = drive_host(&mut host, &mut run, start + offset, period, end).await {
        run.error = Some(e.to_string());
    }
    (run, host)
}

async fn drive_host(
    host: &mut Client,
    run: &mut HostRun,
    start: tokio::time::Instant,
    period: Duration,
    end: Instant,
) -> Result<()> {
    let mut tick = tokio::time::interval_at(start, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // Commands sent and not yet seen applied or refused, oldest first.
    let mut pending: VecDeque<usize> = VecDeque::new();
    let you = host.you;
    let see = |run: &mut HostRun, pending: &mut VecDeque<usize>, f: Option<Arrived>| {
        let Some((m, at)) = f else { return };
        match m {
            Message::Error(e) => {
                let Some(k) = e.req else { return };
                if let Some(i) = pending.iter().position(|&p| p == k as usize) {
                    pending.remove(i);
                    run.rejected += 1;
                    run.first_rejection
                        .get_or_insert_with(|| format!("{}: {}", e.code.name(), e.message));
                }
            }
            Message::StateUpdate(u) if u.reason != TimelineReason::Repeat && u.by == Some(you) => {
                match pending.pop_front() {
                    // Odd commands are plays, even ones pauses.
                    Some(k) if u.timeline.paused == (k % 2 == 0) => {
                        run.applied.insert(u.timeline.seq, k);
                        run.echoed.insert(k, at);
                        run.last_seq = run.last_seq.max(u.timeline.seq);
                    }
                    _ => run.mismatched += 1,
                }
            }
            _ => {}
        }
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if Instant::now() >= end {
                    break;
                }
                let k = run.sent.len() + 1;
                let req = Some(u32::try_from(k)?);
                pending.push_back(k);
                run.sent.push(Instant::now());
                if k % 2 == 1 {
                    host.send(Play { req }).await?;
                } else {
                    host.send(Pause { req }).await?;
                }
            }
            next = host.stream.next() => {
                let f = frame(next)?;
                see(run, &mut pending, f);
            }
        }
    }
    let deadline = tokio::time::Instant::now() + DRAIN;
    while !pending.is_empty() {
        let Ok(next) = tokio::time::timeout_at(deadline, host.stream.next()).await else {
            return Err(format!("{} commands never came back", pending.len()).into());
        };
        let f = frame(next)?;
        see(run, &mut pending, f);
    }
    Ok(())
}

/// What a member received.
struct MemberRun {
    /// Each non-repeat `state_update`: its `seq` and when it arrived.
    deliveries: Vec<(u64, Instant)>,
    /// Why it stopped before being told to.
    error: Option<String>,
}

/// A member: notes every update until `stop`; `last_seq` is the highest `seq` it saw.
async fn member_loop(
    mut c: Client,
    mut stop: watch::Receiver<bool>,
    last_seq: Arc<AtomicU64>,
) -> MemberRun {
    let mut run = MemberRun {
        deliveries: Vec::new(),
        error: None,
    };
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut pings = 0u32;
    let result: Result<()> = async {
        loop {
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                _ = keepalive.tick() => {
                    pings += 1;
                    c.send(Ping { seq: pings, t0: 0 }).await?;
                }
                next = c.stream.next() => {
                    if let Some((Message::StateUpdate(u), at)) = frame(next)?
                        && u.reason != TimelineReason::Repeat
                    {
                        run.deliveries.push((u.timeline.seq, at));
                        last_seq.fetch_max(u.timeline.seq, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        run.error = Some(e.to_string());
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), c.sink.close()).await;
    run
}

// ---------------------------------------------------------------------------------------------
// Results

/// Microseconds from 1 µs to a minute, three significant digits.
fn histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1_000.0
}

/// One group of receivers (members on the home, members on the other relay, the host).
struct Group {
    name: &'static str,
    members: u64,
    latency: Histogram<u64>,
    expected: u64,
    received: u64,
    duplicates: u64,
}

impl Group {
    fn new(name: &'static str, members: u64) -> Result<Group> {
        Ok(Group {
            name,
            members,
            latency: histogram()?,
            expected: 0,
            received: 0,
            duplicates: 0,
        })
    }

    fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // Beyond a minute is clamped to a minute (never expected).
        self.latency.saturating_record(us);
        self.received += 1;
    }

    fn lost(&self) -> i64 {
        self.expected as i64 - self.received as i64
    }

    fn json(&self, seconds: f64) -> serde_json::Value {
        let h = &self.latency;
        json!({
            "members": self.members,
            "count": h.len(),
            "p50_ms": ms(h, 0.5),
            "p90_ms": ms(h, 0.9),
            "p99_ms": ms(h, 0.99),
            "p999_ms": ms(h, 0.999),
            "max_ms": if h.is_empty() { 0.0 } else { h.max() as f64 / 1_000.0 },
            "deliveries_per_s": self.received as f64 / seconds,
            "expected": self.expected,
            "received": self.received,
            "lost": self.lost(),
            "duplicates": self.duplicates,
        })
    }

    fn row(&self, seconds: f64) -> String {
        let h = &self.latency;
        format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {} |",
            self.name,
            self.members,
            h.len(),
            ms(h, 0.5),
            ms(h, 0.9),
            ms(h, 0.99),
            ms(h, 0.999),
            if h.is_empty() {
                0.0
            } else {
                h.max() as f64 / 1_000.0
            },
            self.received as f64 / seconds,
            self.lost()
        )
    }
}

/// Puts a member's deliveries of the measured commands into `group`.
fn count_member(
    group: &mut Group,
    run: &MemberRun,
    host: &HostRun,
    measured: &dyn Fn(usize) -> bool,
) {
    let mut seen = HashSet::new();
    for &(seq, at) in &run.deliveries {
        let Some(&k) = host.applied.get(&seq) else {
            continue;
        };
        if !measured(k) {
            continue;
        }
        if !seen.insert(seq) {
            group.duplicates += 1;
            continue;
        }
        if let Some(sent) = host.sent.get(k - 1) {
            group.record(at.saturating_duration_since(*sent));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run(cli: Cli) -> Result<()> {
    let bin = relay_bin(cli.relay_bin.as_ref())?;
    let _server;
    let url = match &cli.redis {
        Some(url) => url.clone(),
        None => {
            _server = RedisServer::start();
            _server.url()
        }
    };
    let control_per_sec = (2.0 * f64::from(cli.rate)).max(20.0);
    let home = start_relay(&bin, &url, control_per_sec)?;
    let other = start_relay(&bin, &url, control_per_sec)?;
    wait_for_peers(home.http, 1).await?;
    wait_for_peers(other.http, 1).await?;
    let health_before = [health(home.http).await?, health(other.http).await?];
    eprintln!(
        "relays: home {} and other {} on {url}; echo through Redis {} / {} ms",
        home.http,
        other.http,
        echo_ms(&health_before[0]),
        echo_ms(&health_before[1])
    );

    eprintln!(
        "setting up {} rooms of 1 host + {} members on each relay",
        cli.rooms, cli.members
    );
    let setups: Vec<JoinHandle<Result<Room>>> = (0..cli.rooms)
        .map(|i| tokio::spawn(set_up_room(i, cli.members, home.http, other.http)))
        .collect();
    let mut rooms = Vec::new();
    let setup_deadline = tokio::time::Instant::now() + SETUP;
    for s in setups {
        let room = tokio::time::timeout_at(setup_deadline, s)
            .await
            .map_err(|_| format!("setting up the rooms took over {SETUP:?}"))??
            .map_err(|e| format!("setting up a room: {e}"))?;
        rooms.push(room);
    }

    // Members listen from now on; the hosts start after the rooms settle.
    let (stop_tx, stop_rx) = watch::channel(false);
    let warmup = Duration::from_secs(cli.warmup);
    let duration = Duration::from_secs(cli.duration);
    let period = Duration::from_secs_f64(1.0 / f64::from(cli.rate));
    let start = Instant::now() + SETTLE;
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let start_tokio = tokio::time::Instant::from_std(start);
    let mut hosts = Vec::new();
    let mut members = Vec::new();
    for (r, room) in rooms.into_iter().enumerate() {
        let spawn_members = |clients: Vec<Client>| {
            clients
                .into_iter()
                .map(|c| {
                    let last = Arc::new(AtomicU64::new(0));
                    let task = tokio::spawn(member_loop(c, stop_rx.clone(), last.clone()));
                    (last, task)
                })
                .collect::<Vec<_>>()
        };
        let same = spawn_members(room.same);
        let other = spawn_members(room.other);
        members.push((same, other));
        // The rooms' commands spread over the period, not all at one instant.
        let offset = period.mul_f64(r as f64 / f64::from(cli.rooms));
        hosts.push(tokio::spawn(host_loop(
            room.host,
            start_tokio,
            offset,
            period,
            end,
        )));
    }
    eprintln!(
        "{} commands/s per room for {warmup:?} of warmup and {duration:?} measured",
        cli.rate
    );

    let mut host_runs = Vec::new();
    let mut host_clients = Vec::new();
    let host_deadline = tokio::time::Instant::from_std(end) + DRAIN + Duration::from_secs(5);
    for h in hosts {
        let (run, client) = tokio::time::timeout_at(host_deadline, h)
            .await
            .map_err(|_| "a host never finished")??;
        host_runs.push(run);
        host_clients.push(client);
    }
    // Until every member has seen its room's last command, or `DRAIN` passed.
    let drain_deadline = Instant::now() + DRAIN;
    loop {
        let behind = members
            .iter()
            .zip(&host_runs)
            .flat_map(|((same, other), h)| {
                same.iter()
                    .chain(other)
                    .filter(move |(last, _)| last.load(Ordering::Relaxed) < h.last_seq)
            })
            .count();
        if behind == 0 || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);

    let mut same_group = Group::new("same relay", u64::from(cli.rooms * cli.members))?;
    let mut other_group = Group::new("other relay", u64::from(cli.rooms * cli.members))?;
    let mut host_group = Group::new("host (own echo)", u64::from(cli.rooms))?;
    let mut errors: Vec<String> = Vec::new();
    let (mut sent, mut measured_commands, mut rejected, mut mismatched) = (0u64, 0u64, 0u64, 0u64);
    let in_window = |at: Instant| at >= measure_from && at < end;
    for (r, ((same, other), host)) in members.into_iter().zip(&host_runs).enumerate() {
        let measured = |k: usize| host.sent.get(k - 1).is_some_and(|&at| in_window(at));
        let applied_measured = host.applied.values().filter(|&&k| measured(k)).count() as u64;
        sent += host.sent.len() as u64;
        measured_commands += host.sent.iter().filter(|&&at| in_window(at)).count() as u64;
        rejected += host.rejected;
        mismatched += host.mismatched;
        if let Some(e) = &host.error {
            errors.push(format!("room {r} host: {e}"));
        }
        if let Some(e) = &host.first_rejection {
            errors.push(format!("room {r} host: refused: {e}"));
        }
        host_group.expected += applied_measured;
        for (&k, &at) in &host.echoed {
            if measured(k)
                && let Some(s) = host.sent.get(k - 1)
            {
                host_group.record(at.saturating_duration_since(*s));
            }
        }
        for (group, tasks) in [(&mut same_group, same), (&mut other_group, other)] {
            for (i, (_, task)) in tasks.into_iter().enumerate() {
                group.expected += applied_measured;
                let run = tokio::time::timeout(Duration::from_secs(5), task)
                    .await
                    .map_err(|_| "a member never stopped")??;
                if let Some(e) = &run.error {
                    errors.push(format!("room {r} {} member {i}: {e}", group.name));
                }
                count_member(group, &run, host, &measured);
            }
        }
    }
    drop(host_clients);
    let health_after = [
        health(home.http).await.unwrap_or_default(),
        health(other.http).await.unwrap_or_default(),
    ];

    let seconds = duration.as_secs_f64();
    let added_p50 = ms(&other_group.latency, 0.5) - ms(&same_group.latency, 0.5);
    let added_p99 = ms(&other_group.latency, 0.99) - ms(&same_group.latency, 0.99);
    println!(
        "{} rooms × (1 host + {} members on the home relay + {} on the other), {} commands/s \
         per room, {} s measured after {} s of warmup",
        cli.rooms, cli.members, cli.members, cli.rate, cli.duration, cli.warmup
    );
    println!(
        "commands: {sent} sent, {measured_commands} measured, {rejected} refused, {mismatched} \
         mismatched"
    );
    println!(
        "Redis echo (relay /health echo_ms): home {} ms, other {} ms",
        echo_ms(&health_after[0]),
        echo_ms(&health_after[1])
    );
    println!();
    println!(
        "| receivers | members | count | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | deliveries/s | lost |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for g in [&same_group, &other_group, &host_group] {
        println!("{}", g.row(seconds));
    }
    println!();
    println!("added by the cross-relay hop: p50 {added_p50:+.3} ms, p99 {added_p99:+.3} ms");
    let lost = same_group.lost() + other_group.lost();
    if lost != 0 || !errors.is_empty() || rejected != 0 || mismatched != 0 {
        println!(
            "WARNING: {lost} deliveries lost, {rejected} commands refused, {mismatched} \
             mismatched, {} errors",
            errors.len()
        );
    }
    for e in errors.iter().take(10) {
        println!("error: {e}");
    }
    if errors.len() > 10 {
        println!("… and {} more errors", errors.len() - 10);
    }

    if let Some(path) = cli.json {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let out = json!({
            "bench": "lockstep-cross",
            "date": lockstep_benches::date::utc_date(unix),
            "unix_time": unix,
            "params": {
                "rooms": cli.rooms,
                "members_per_relay_per_room": cli.members,
                "rate_per_room": cli.rate,
                "duration_s": cli.duration,
                "warmup_s": cli.warmup,
                "relay_control_per_sec": control_per_sec,
                "redis": if cli.redis.is_some() { "given" } else { "started" },
            },
            "relays": {
                "home": {"before": health_summary(&health_before[0]), "after": health_summary(&health_after[0])},
                "other": {"before": health_summary(&health_before[1]), "after": health_summary(&health_after[1])},
            },
            "commands": {
                "sent": sent,
                "measured": measured_commands,
                "refused": rejected,
                "mismatched": mismatched,
            },
            "same_relay": same_group.json(seconds),
            "other_relay": other_group.json(seconds),
            "host_echo": host_group.json(seconds),
            "added_by_cross_relay_ms": {"p50": added_p50, "p99": added_p99},
            "errors": errors,
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&out)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
