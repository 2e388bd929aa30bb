//! The peer in the load benchmark's run (issue 7, §5): Debian's `syncplay-server` under the
//! same command load as lockstep's relay.
//!
//! **Load.** `rooms` rooms of `members` clients (default 20). In each room one host sends a
//! command `commands_per_sec` times a second, alternating a seek and a pause toggle, each to a
//! position that names it (`position = id × 10 s`, ids unique over the run). Every member,
//! the host included, times its receipt of the resulting `State`: the first one the server
//! *forced* (it carries `ignoringOnTheFly.server`) with `setBy` the host and that position.
//! Sender and receivers run in this process and share one [`Instant`] clock, so the figure is
//! the one-way latency through the server. Delivered messages are every line received by
//! every client: the command broadcasts, the server's once-a-second `State` to each client,
//! the `Set`s of joins.
//!
//! **Clients speak the protocol as Syncplay 1.6.9's client does** (`syncplay/protocols.py`):
//! one JSON object per line, lines end in `\r\n` (Twisted's `LineReceiver`); `Hello` with
//! username, room and version, then `Set` file, `List` and `Set` ready as a client with a file
//! loaded does; every `State` from the server is answered at once with a `State` echoing its
//! playstate, its `latencyCalculation` and its `ignoringOnTheFly.server` count (the server
//! keeps ignoring a client's playstate until that count comes back, and drops clients that
//! stay silent for 12.5 s). A host sends its next command only after its previous one came
//! back to it (it must acknowledge that broadcast first, or the server would ignore the
//! command); a command held back this way is counted as late.
//!
//! **Server.** `python3 -c <wrapper>`: the wrapper runs Syncplay's own `ep_server.main` with
//! its two listening endpoints bound to `127.0.0.1` and `::1` instead of every interface (the
//! only change; `syncplay-server` has no option for the address, which is why the sync
//! benchmark puts it in a network namespace), `--isolate-rooms` (joins and leaves are
//! announced to the room only), a fixed salt, no password (`SYNCPLAY_PASSWORD` is removed from
//! its environment), no TLS (no `--tls`), no stats database. It exits when its stdin (a pipe
//! held by this process) closes or its lifetime ends, so it never outlives a run; it is
//! killed at the end of each phase. Port: a free loopback port picked by binding port 0.
//!
//! **Figures.** Latency p50/p99/p99.9 over the measured window's commands; delivered
//! messages/s; the server's RSS (`VmRSS` in `/proc/<pid>/status`) and CPU (`utime + stime`
//! in `/proc/<pid>/stat`) sampled every second, and its CPU time per delivered message over
//! the window. Idle memory: a fresh server, idle clients (joined, answering the server's
//! `State`s) added in steps; RSS per idle client is the least-squares slope of RSS over the
//! steps.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// Seconds between the positions of consecutive command ids: a receiver maps a position back
/// to its id by rounding, which tolerates the server adding up to 5 s (it adds its estimate of
/// the host's one-way delay when playback resumes).
pub const POSITION_SPACING: f64 = 10.0;

/// Longest line accepted from the server (a `List` of a big room is the longest).
const MAX_LINE: usize = 1 << 20;
/// How long a host waits for its own command to come back before giving up on it.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);
/// A host further behind its schedule than this skips the missed commands.
const MAX_BEHIND: Duration = Duration::from_secs(1);
/// Errors kept for the report (the rest are counted).
const MAX_ERRORS: usize = 50;

/// A failed run.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The module's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(Error(message.into()))
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SyncplayLoadOptions {
    /// A Python 3 that can import Syncplay's server and Twisted (Debian: `/usr/bin/python3`,
    /// not a pyenv or virtualenv one).
    pub python: PathBuf,
    /// Rooms under command load (0: no load phase).
    pub rooms: usize,
    /// Clients per room, the host included.
    pub members: usize,
    /// Commands per second in each room (0: no load phase).
    pub commands_per_sec: f64,
    /// Commands before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// After the window, how long deliveries of the window's commands are awaited.
    pub grace: Duration,
    /// Idle clients to hold in turn, ascending, on a fresh server (empty: no idle phase).
    pub idle_steps: Vec<usize>,
    /// How long after reaching an idle step its RSS and CPU are read.
    pub idle_settle: Duration,
    /// Connections being set up at once.
    pub connect_concurrency: usize,
    /// Print a line a second to stderr while running.
    pub progress: bool,
    /// Where the server's output goes (default: a folder under the system's temp dir).
    pub log_dir: Option<PathBuf>,
}

impl Default for SyncplayLoadOptions {
    fn default() -> Self {
        SyncplayLoadOptions {
            python: PathBuf::from("/usr/bin/python3"),
            rooms: 50,
            members: 20,
            commands_per_sec: 1.0,
            warmup: Duration::from_secs(3),
            duration: Duration::from_secs(20),
            grace: Duration::from_secs(2),
            idle_steps: vec![100, 500, 1_000, 2_000],
            idle_settle: Duration::from_secs(5),
            connect_concurrency: 32,
            progress: true,
            log_dir: None,
        }
    }
}

/// The outcome of [`run`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncplayLoadReport {
    /// `"syncplay"`.
    pub system: String,
    /// The server's `realversion`, from its `Hello`.
    pub server_version: Option<String>,
    /// How the server ran.
    pub server_command: String,
    /// The command load, if run.
    pub load: Option<LoadResult>,
    /// The idle-memory steps, if run.
    pub idle: Option<IdleResult>,
}

/// The command-load phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    /// Rooms.
    pub rooms: usize,
    /// Clients per room.
    pub members: usize,
    /// Clients connected.
    pub clients: usize,
    /// Commands per second per room, as asked.
    pub commands_per_sec_per_room: f64,
    /// Seconds it took to connect every client.
    pub connect_secs: f64,
    /// Length of the measured window, seconds.
    pub window_secs: f64,
    /// Commands sent in the window.
    pub commands: u64,
    /// Of those, sent after their slot because the host's previous command had not come
    /// back by then (the host must acknowledge it first).
    pub commands_late: u64,
    /// Largest delay of a command behind its slot, ms (timer slack included, ~1 ms).
    pub max_behind_schedule_ms: f64,
    /// Slots skipped because a host fell more than a second behind.
    pub commands_skipped: u64,
    /// Commands of the window that never came back to their host.
    pub commands_unconfirmed: u64,
    /// Deliveries the window's commands should have made (commands × members).
    pub command_deliveries_expected: u64,
    /// Deliveries seen (each member's first receipt of each command).
    pub command_deliveries: u64,
    /// Command deliveries per second over the window.
    pub command_deliveries_per_sec: f64,
    /// Every line received by every client, per second over the window.
    pub delivered_per_sec: f64,
    /// Lines the clients sent, per second over the window.
    pub sent_per_sec: f64,
    /// One-way latency of command deliveries.
    pub latency_ms: Latency,
    /// The server's use of the machine.
    pub server: ServerUsage,
    /// This process's CPU (the clients) over the window, percent of one core.
    pub load_generator_cpu_percent: f64,
    /// CPU of everything else on the machine over the window (`/proc/stat` user + nice +
    /// system time minus the server's and this process's), percent of one core: well above
    /// 0, the run shared the machine and its latencies are not to be trusted.
    pub other_cpu_percent: f64,
    /// Connections the server closed or lost.
    pub disconnects: u64,
    /// The first errors seen (connections, parsing, server `Error` messages).
    pub errors: Vec<String>,
    /// Errors in all.
    pub error_count: u64,
}

/// Latency percentiles, milliseconds (nearest rank).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub samples: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// The server process over the measured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerUsage {
    /// CPU (user + system), percent of one core, over the window.
    pub cpu_percent: f64,
    /// Server CPU time per delivered message (every line), µs.
    pub cpu_us_per_delivery: Option<f64>,
    /// Server CPU time per command delivery, µs (all its other work charged to them).
    pub cpu_us_per_command_delivery: Option<f64>,
    /// RSS at the end of the window, KiB.
    pub rss_kib: u64,
    /// Largest RSS sampled, KiB.
    pub rss_kib_max: u64,
    /// One sample a second from the server's start.
    pub samples: Vec<ProcSample>,
}

/// One reading of the server process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ProcSample {
    /// Seconds since the server started.
    pub t_secs: f64,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// CPU since the previous sample, percent of one core.
    pub cpu_percent: f64,
}

/// The idle-memory phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleResult {
    /// Clients per room.
    pub members_per_room: usize,
    /// RSS of the fresh server before any client, KiB.
    pub baseline_rss_kib: u64,
    /// One entry per step.
    pub steps: Vec<IdleStep>,
    /// Least-squares slope of RSS over idle clients, bytes per client.
    pub rss_bytes_per_client: Option<f64>,
    /// The fit's intercept, KiB.
    pub fit_intercept_kib: Option<f64>,
    /// Server CPU per idle client (its once-a-second `State` and the answer), µs per second.
    pub cpu_us_per_client_second: Option<f64>,
    /// Connections lost during the phase.
    pub disconnects: u64,
}

/// One idle step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleStep {
    /// Idle clients connected.
    pub clients: usize,
    /// Server RSS, KiB.
    pub rss_kib: u64,
    /// Server CPU while idle, percent of one core.
    pub cpu_percent: f64,
}

// --- Pure parts: lines, ids, statistics, /proc ------------------------------------------------

/// What the clients read from a server line.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct ServerLine {
    /// The answer to our `Hello`.
    #[serde(rename = "Hello")]
    pub hello: Option<HelloIn>,
    /// A playstate and ping.
    #[serde(rename = "State")]
    pub state: Option<StateIn>,
    /// The server is about to drop us.
    #[serde(rename = "Error")]
    pub error: Option<ErrorIn>,
}

/// The server's `Hello`.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct HelloIn {
    /// The name we got (the server appends `_` to names in use).
    pub username: Option<String>,
    /// The server's version.
    pub realversion: Option<String>,
}

/// The server's `Error`.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct ErrorIn {
    /// Why.
    pub message: Option<String>,
}

/// The server's `State`.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct StateIn {
    /// The room's playback.
    pub playstate: Option<PlaystateIn>,
    /// Latency bookkeeping.
    pub ping: Option<PingIn>,
    /// Present on forced states (a change the server pushes) until acknowledged.
    #[serde(rename = "ignoringOnTheFly")]
    pub ignoring: Option<IgnoringIn>,
}

/// `State.playstate`.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct PlaystateIn {
    /// Seconds.
    pub position: Option<f64>,
    /// Paused.
    pub paused: Option<bool>,
    /// A seek.
    #[serde(rename = "doSeek")]
    pub do_seek: Option<bool>,
    /// Who set it.
    #[serde(rename = "setBy")]
    pub set_by: Option<String>,
}

/// `State.ping`.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct PingIn {
    /// The server's timestamp, echoed back in our answer.
    #[serde(rename = "latencyCalculation")]
    pub latency_calculation: Option<f64>,
    /// Our last timestamp, echoed (plus the server's processing time).
    #[serde(rename = "clientLatencyCalculation")]
    pub client_latency_calculation: Option<f64>,
}

/// `State.ignoringOnTheFly`.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct IgnoringIn {
    /// Forced states the server sent and waits to see acknowledged.
    pub server: Option<u64>,
    /// Ours, echoed.
    pub client: Option<u64>,
}

/// Parses one line from the server (without its line end).
pub fn parse_line(line: &[u8]) -> Result<ServerLine> {
    serde_json::from_slice(line).map_err(|e| {
        let shown = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
        Error(format!("not a Syncplay message ({e}): {shown}"))
    })
}

fn line(value: serde_json::Value) -> String {
    let mut s = value.to_string();
    s.push_str("\r\n");
    s
}

/// The client's `Hello`, as Syncplay 1.6.9's client writes it.
pub fn hello_line(username: &str, room: &str) -> String {
    line(json!({"Hello": {
        "username": username,
        "room": {"name": room},
        "version": "1.2.255",
        "realversion": "1.6.9",
        "features": {
            "sharedPlaylists": true,
            "chat": true,
            "featureList": true,
            "readiness": true,
            "managedRooms": true,
        },
    }}))
}

/// What a client with a file loaded sends after the server's `Hello`: its file, a `List`
/// request, and that it is ready.
pub fn after_hello_lines() -> String {
    let mut s = line(json!({"Set": {"file": {
        "name": "film.mkv",
        "duration": 600.0,
        "size": 734_003_200,
    }}}));
    s.push_str(&line(json!({"List": null})));
    s.push_str(&line(
        json!({"Set": {"ready": {"isReady": true, "manuallyInitiated": false}}}),
    ));
    s
}

/// The answer to a server `State`, as the client sends it: the playstate it now plays (the one
/// received), the server's timestamp echoed, our timestamp, our round trip, and the
/// acknowledgement of the server's forced states. `rtt` is our last round-trip estimate (s).
pub fn reply_line(state: &StateIn, unix_now: f64, rtt: f64) -> String {
    let mut st = serde_json::Map::new();
    if let Some(p) = &state.playstate
        && let (Some(position), Some(paused)) = (p.position, p.paused)
    {
        st.insert(
            "playstate".into(),
            json!({"position": position, "paused": paused}),
        );
    }
    let mut ping = serde_json::Map::new();
    if let Some(lc) = state.ping.as_ref().and_then(|p| p.latency_calculation) {
        ping.insert("latencyCalculation".into(), json!(lc));
    }
    ping.insert("clientLatencyCalculation".into(), json!(unix_now));
    ping.insert("clientRtt".into(), json!(rtt));
    st.insert("ping".into(), serde_json::Value::Object(ping));
    if let Some(n) = state.ignoring.as_ref().and_then(|i| i.server) {
        st.insert("ignoringOnTheFly".into(), json!({"server": n}));
    }
    line(json!({ "State": st }))
}

/// A host's command: a seek (`do_seek`) or a pause change, to the position naming `id`. No
/// `latencyCalculation` (it would be stale and inflate the server's delay estimate).
pub fn command_line(id: u64, paused: bool, do_seek: bool, unix_now: f64, rtt: f64) -> String {
    line(json!({"State": {
        "playstate": {"position": position_of(id), "paused": paused, "doSeek": do_seek},
        "ping": {"clientLatencyCalculation": unix_now, "clientRtt": rtt},
    }}))
}

/// The position a command id is sent with.
pub fn position_of(id: u64) -> f64 {
    id as f64 * POSITION_SPACING
}

/// The command id a received position names (`None` for 0 and below).
pub fn id_of(position: f64) -> Option<u64> {
    let id = (position / POSITION_SPACING).round();
    (1.0..1e15).contains(&id).then_some(id as u64)
}

/// The command id a `State` delivers, if it is a command of `host`: forced by the server,
/// set by the host.
pub fn delivered_command(state: &StateIn, host: &str) -> Option<u64> {
    state.ignoring.as_ref()?.server?;
    let p = state.playstate.as_ref()?;
    (p.set_by.as_deref() == Some(host))
        .then_some(p.position)
        .flatten()
        .and_then(id_of)
}

/// Nearest-rank percentile of sorted values (`q` in 0..=1).
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// p50/p99/p99.9/max/mean of latencies in µs, sorting them.
pub fn latency_summary(micros: &mut [u64]) -> Latency {
    micros.sort_unstable();
    let ms = |q: f64| percentile(micros, q).map_or(0.0, |v| v as f64 / 1_000.0);
    let n = micros.len() as u64;
    Latency {
        samples: n,
        p50: ms(0.5),
        p99: ms(0.99),
        p999: ms(0.999),
        max: ms(1.0),
        mean: if n == 0 {
            0.0
        } else {
            micros.iter().sum::<u64>() as f64 / n as f64 / 1_000.0
        },
    }
}

/// Least-squares line through points: (slope, intercept); `None` for fewer than two distinct
/// x.
pub fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

/// `utime + stime` (clock ticks) from the text of `/proc/<pid>/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` (KiB) from the text of `/proc/<pid>/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

// --- The server ---------------------------------------------------------------------------------

/// Runs Syncplay's server (`ep_server.main`) with its endpoints bound to loopback. argv[1] is
/// the lifetime in seconds; the rest are `syncplay-server`'s arguments. Exits when stdin
/// closes.
const WRAPPER: &str = r#"
import os, sys, threading
def _watch():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
_t = threading.Timer(float(sys.argv[1]), lambda: os._exit(0))
_t.daemon = True
_t.start()
from twisted.internet import endpoints
import syncplay.ep_server as ep
ep.TCP6ServerEndpoint = lambda reactor, port: endpoints.TCP6ServerEndpoint(reactor, port, interface="::1")
ep.TCP4ServerEndpoint = lambda reactor, port: endpoints.TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
sys.argv = ["syncplay-server"] + sys.argv[2:]
ep.main()
"#;

/// CPU and memory of a process at one instant.
#[derive(Debug, Clone, Copy)]
struct Usage {
    at: Instant,
    cpu_ticks: u64,
    rss_kib: u64,
}

struct Server {
    child: Child,
    pid: u32,
    port: u16,
    log: PathBuf,
    started: Instant,
    clk_tck: f64,
    command: String,
}

impl Server {
    async fn start(opts: &SyncplayLoadOptions, lifetime: Duration) -> Result<Server> {
        let dir = match &opts.log_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!("syncplay-load-{}", std::process::id())),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error(format!("create {}: {e}", dir.display())))?;
        let port = free_port()?;
        let log = dir.join(format!("syncplay-server-{port}.log"));
        let out = std::fs::File::create(&log)
            .map_err(|e| Error(format!("create {}: {e}", log.display())))?;
        let out2 = out
            .try_clone()
            .map_err(|e| Error(format!("log file: {e}")))?;
        let args = [
            "--port".to_string(),
            port.to_string(),
            "--isolate-rooms".into(),
            "--salt".into(),
            "LOCKSTEPBENCH".into(),
        ];
        let mut cmd = Command::new(&opts.python);
        cmd.arg("-u")
            .arg("-c")
            .arg(WRAPPER)
            .arg(lifetime.as_secs().max(1).to_string())
            .args(&args)
            .env_remove("SYNCPLAY_PASSWORD")
            .env_remove("SYNCPLAY_SALT")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(out2))
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            Error(format!(
                "start {} (Syncplay's server): {e}",
                opts.python.display()
            ))
        })?;
        let started = Instant::now();
        let pid = child
            .id()
            .ok_or_else(|| Error("syncplay-server exited at once".into()))?;
        let deadline = started + Duration::from_secs(20);
        // Bounded by the deadline.
        loop {
            if let Ok(Ok(s)) = tokio::time::timeout(
                Duration::from_secs(1),
                TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            {
                drop(s);
                break;
            }
            if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() >= deadline {
                let _ = child.start_kill();
                return err(format!(
                    "syncplay-server did not listen on 127.0.0.1:{port}; see {}",
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Server {
            child,
            pid,
            port,
            log,
            started,
            clk_tck: clock_ticks_per_sec().await,
            command: format!(
                "{} -c <ep_server.main bound to 127.0.0.1/::1> syncplay-server {}",
                opts.python.display(),
                args.join(" ")
            ),
        })
    }

    fn usage(&self) -> Result<Usage> {
        let read = |f: &str| {
            std::fs::read_to_string(format!("/proc/{}/{f}", self.pid)).map_err(|e| {
                Error(format!(
                    "read /proc/{}/{f} (did syncplay-server exit? see {}): {e}",
                    self.pid,
                    self.log.display()
                ))
            })
        };
        let at = Instant::now();
        let stat = read("stat")?;
        let status = read("status")?;
        match (parse_stat_cpu_ticks(&stat), parse_status_rss_kib(&status)) {
            (Some(cpu_ticks), Some(rss_kib)) => Ok(Usage {
                at,
                cpu_ticks,
                rss_kib,
            }),
            _ => err(format!("unexpected /proc/{}/stat or status", self.pid)),
        }
    }

    /// CPU between two readings, percent of one core.
    fn cpu_percent(&self, a: &Usage, b: &Usage) -> f64 {
        let secs = b.at.duration_since(a.at).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / self.clk_tck / secs * 100.0
    }

    fn cpu_secs(&self, a: &Usage, b: &Usage) -> f64 {
        b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / self.clk_tck
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Time all CPUs spent running processes (user, nice, system; not interrupts, whose
/// loopback TCP work is the run's own, nor idle, iowait or steal), clock ticks, from the text
/// of `/proc/stat`.
pub fn parse_proc_stat_busy(stat: &str) -> Option<u64> {
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    (fields.len() >= 4).then(|| fields.iter().take(3).sum())
}

fn machine_busy_ticks() -> Option<u64> {
    parse_proc_stat_busy(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// This process's `utime + stime`, clock ticks.
fn own_cpu_ticks() -> Option<u64> {
    parse_stat_cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error(format!("find a free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error(format!("find a free port: {e}")))
}

async fn clock_ticks_per_sec() -> f64 {
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        Command::new("getconf").arg("CLK_TCK").output(),
    )
    .await;
    match out {
        Ok(Ok(o)) => String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(100.0),
        _ => 100.0,
    }
}

/// Samples the server once a second until `stop`, printing progress if asked.
fn spawn_sampler(
    server: Arc<Server>,
    shared: Arc<Shared>,
    progress: Option<String>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<Vec<ProcSample>> {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last: Option<(Usage, u64)> = None;
        // Ends with `stop` (the run's phases are bounded) or when the server is gone.
        while samples.len() < 100_000 {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let Ok(u) = server.usage() else { break };
            let lines = shared.lines_in.load(Ordering::Relaxed);
            if let Some((prev, prev_lines)) = last {
                let cpu = server.cpu_percent(&prev, &u);
                samples.push(ProcSample {
                    t_secs: u.at.duration_since(server.started).as_secs_f64(),
                    rss_kib: u.rss_kib,
                    cpu_percent: cpu,
                });
                if let Some(label) = &progress {
                    let secs = u.at.duration_since(prev.at).as_secs_f64().max(1e-3);
                    eprintln!(
                        "[{label}] t={:>4.0}s delivered/s={:>8.0} cpu={:>5.1}% rss={:>7.1} MiB disconnects={}",
                        u.at.duration_since(server.started).as_secs_f64(),
                        lines.saturating_sub(prev_lines) as f64 / secs,
                        cpu,
                        u.rss_kib as f64 / 1024.0,
                        shared.disconnects.load(Ordering::Relaxed),
                    );
                }
            }
            last = Some((u, lines));
        }
        samples
    })
}

// --- Clients ------------------------------------------------------------------------------------

/// Counters every client updates.
#[derive(Default)]
struct Shared {
    lines_in: AtomicU64,
    lines_out: AtomicU64,
    disconnects: AtomicU64,
    error_count: AtomicU64,
    errors: Mutex<Vec<String>>,
    server_version: Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, e: impl Into<String>) {
        self.error_count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut v) = self.errors.lock()
            && v.len() < MAX_ERRORS
        {
            v.push(e.into());
        }
    }
}

/// A host's commands: when each was due and sent, and whether it came back.
#[derive(Debug, Clone, Copy)]
struct SentCommand {
    id: u64,
    due: Instant,
    sent: Instant,
    /// Sent late because the previous command had not come back by `due`.
    held: bool,
    echoed: bool,
}

/// A host's part: its room's index and the schedule.
#[derive(Debug, Clone, Copy)]
struct HostPlan {
    room: u64,
    rooms: u64,
    period: Duration,
    /// Offset of this room's first command from the common start.
    offset: Duration,
}

/// What a client task returns.
#[derive(Debug, Default)]
struct ClientOutcome {
    /// (command id, when it arrived), first receipt of each.
    receipts: Vec<(u64, Instant)>,
    /// The host's commands.
    sent: Vec<SentCommand>,
    skipped: u64,
}

/// A connected client, past its `Hello`.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
}

/// Reads one line into `buf` (appending; cancel safe: a partial line stays in `buf`), at most
/// `MAX_LINE` bytes. Returns false at the end of the stream.
async fn read_line(reader: &mut BufReader<OwnedReadHalf>, buf: &mut Vec<u8>) -> Result<bool> {
    let room = MAX_LINE.saturating_sub(buf.len()) as u64;
    let n = (&mut *reader)
        .take(room)
        .read_until(b'\n', buf)
        .await
        .map_err(|e| Error(format!("read: {e}")))?;
    if buf.last() == Some(&b'\n') {
        return Ok(true);
    }
    if n == 0 || buf.len() < MAX_LINE {
        return Ok(false);
    }
    err(format!("a line from the server over {MAX_LINE} bytes"))
}

fn trim_line(buf: &[u8]) -> &[u8] {
    let mut s = buf;
    while let [rest @ .., b'\n' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Connects, says `Hello`, waits for the server's, then sends what a client sends next.
async fn connect(port: u16, name: &str, room: &str, shared: &Shared) -> Result<Conn> {
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .map_err(|_| Error("connect: timed out".into()))?
    .map_err(|e| Error(format!("connect: {e}")))?;
    stream
        .set_nodelay(true)
        .map_err(|e| Error(format!("nodelay: {e}")))?;
    let (r, w) = stream.into_split();
    let mut conn = Conn {
        reader: BufReader::with_capacity(16 * 1024, r),
        writer: BufWriter::with_capacity(4 * 1024, w),
    };
    send(&mut conn.writer, &hello_line(name, room), shared).await?;
    conn.writer
        .flush()
        .await
        .map_err(|e| Error(format!("write: {e}")))?;
    let mut buf = Vec::new();
    let hello = tokio::time::timeout(Duration::from_secs(15), async {
        // Bounded by the timeout; the server's `Hello` comes first or close behind.
        loop {
            if !read_line(&mut conn.reader, &mut buf).await? {
                return err("the server closed the connection before its Hello");
            }
            shared.lines_in.fetch_add(1, Ordering::Relaxed);
            let parsed = parse_line(trim_line(&buf))?;
            buf.clear();
            if let Some(e) = parsed.error {
                return err(format!("server error: {}", e.message.unwrap_or_default()));
            }
            if let Some(h) = parsed.hello {
                return Ok(h);
            }
        }
    })
    .await
    .map_err(|_| Error("no Hello from the server within 15 s".into()))??;
    if hello.username.as_deref() != Some(name) {
        return err(format!(
            "asked for the name {name}, got {:?}",
            hello.username
        ));
    }
    if let Ok(mut v) = shared.server_version.lock()
        && v.is_none()
    {
        *v = hello.realversion;
    }
    send(&mut conn.writer, &after_hello_lines(), shared).await?;
    shared.lines_out.fetch_add(2, Ordering::Relaxed);
    conn.writer
        .flush()
        .await
        .map_err(|e| Error(format!("write: {e}")))?;
    Ok(conn)
}

async fn send(w: &mut BufWriter<OwnedWriteHalf>, s: &str, shared: &Shared) -> Result<()> {
    shared.lines_out.fetch_add(1, Ordering::Relaxed);
    w.write_all(s.as_bytes())
        .await
        .map_err(|e| Error(format!("write: {e}")))
}

/// A client's life after `Hello`: answers every `State`, records command receipts and, for
/// the host, sends commands from the start `go` gives until `end`. Ends on `stop`.
async fn client_loop(
    mut conn: Conn,
    host_name: String,
    plan: Option<HostPlan>,
    max_receipts: usize,
    shared: Arc<Shared>,
    mut go: watch::Receiver<Option<(Instant, Instant)>>,
    mut stop: watch::Receiver<bool>,
) -> ClientOutcome {
    let mut out = ClientOutcome::default();
    let mut buf = Vec::with_capacity(1024);
    let mut rtt = 0.0_f64;
    let mut last_id = 0_u64;
    // The host's state.
    let mut schedule: Option<(Instant, Instant)> = None; // (next due, end)
    let mut k: u64 = 0;
    let mut paused = true;
    let mut awaiting: Option<(u64, Instant)> = None;
    // When the last command came back (or was given up on).
    let mut released = Instant::now();
    let mut go_open = plan.is_some();
    // Ends on `stop` (every phase is bounded) or when the connection ends.
    loop {
        let timer = match (&schedule, &awaiting) {
            (_, Some((_, since))) => Some(*since + ECHO_TIMEOUT),
            (Some((due, end)), None) if *due < *end => Some(*due),
            _ => None,
        };
        let wake = tokio::time::Instant::from_std(timer.unwrap_or_else(Instant::now));
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            changed = go.changed(), if go_open => {
                if changed.is_err() {
                    go_open = false;
                    continue;
                }
                if let (Some((start, end)), Some(p)) = (*go.borrow_and_update(), plan) {
                    schedule = Some((start + p.offset, end));
                    go_open = false;
                }
            }
            r = read_line(&mut conn.reader, &mut buf) => {
                match r {
                    Ok(true) => {}
                    Ok(false) => {
                        shared.disconnects.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        shared.disconnects.fetch_add(1, Ordering::Relaxed);
                        shared.error(e.0);
                        break;
                    }
                }
                let now = Instant::now();
                shared.lines_in.fetch_add(1, Ordering::Relaxed);
                let parsed = parse_line(trim_line(&buf));
                buf.clear();
                let parsed = match parsed {
                    Ok(p) => p,
                    Err(e) => {
                        shared.error(e.0);
                        continue;
                    }
                };
                if let Some(e) = parsed.error {
                    shared.error(format!("server error: {}", e.message.unwrap_or_default()));
                }
                if let Some(state) = parsed.state {
                    let unix = unix_now();
                    if let Some(c) = state.ping.as_ref().and_then(|p| p.client_latency_calculation) {
                        rtt = (unix - c).max(0.0);
                    }
                    if let Some(p) = state.playstate.as_ref().and_then(|p| p.paused) {
                        paused = p;
                    }
                    if let Some(id) = delivered_command(&state, &host_name)
                        && id != last_id
                    {
                        last_id = id;
                        if out.receipts.len() < max_receipts {
                            out.receipts.push((id, now));
                        }
                        if awaiting.is_some_and(|(a, _)| a == id) {
                            awaiting = None;
                            released = now;
                            if let Some(s) = out.sent.last_mut() {
                                s.echoed = true;
                            }
                        }
                    }
                    if let Err(e) = send(&mut conn.writer, &reply_line(&state, unix, rtt), &shared).await {
                        shared.error(e.0);
                        break;
                    }
                }
                if conn.reader.buffer().is_empty()
                    && let Err(e) = conn.writer.flush().await
                {
                    shared.error(format!("write: {e}"));
                    break;
                }
            }
            () = tokio::time::sleep_until(wake), if timer.is_some() => {
                let now = Instant::now();
                if let Some((_, since)) = awaiting {
                    if now >= since + ECHO_TIMEOUT {
                        awaiting = None;
                        released = now;
                    }
                    continue;
                }
                let (Some(p), Some((due, end))) = (plan, schedule) else { continue };
                let mut due = due;
                // Fell behind: skip what cannot be caught up.
                while now > due + MAX_BEHIND && due < end {
                    due += p.period;
                    k += 1;
                    out.skipped += 1;
                }
                if due >= end {
                    schedule = Some((due, end));
                    continue;
                }
                let id = k * p.rooms + p.room + 1;
                let seek = k.is_multiple_of(2);
                let line = command_line(id, if seek { paused } else { !paused }, seek, unix_now(), rtt);
                let sent = Instant::now();
                let r = send(&mut conn.writer, &line, &shared).await;
                let r = match r {
                    Ok(()) => conn.writer.flush().await.map_err(|e| Error(format!("write: {e}"))),
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    shared.error(e.0);
                    break;
                }
                if out.sent.len() < max_receipts {
                    out.sent.push(SentCommand { id, due, sent, held: released > due, echoed: false });
                }
                awaiting = Some((id, sent));
                k += 1;
                schedule = Some((due + p.period, end));
            }
        }
    }
    out
}

/// Clients being connected and run.
struct Fleet {
    port: u16,
    shared: Arc<Shared>,
    go_tx: watch::Sender<Option<(Instant, Instant)>>,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<ClientOutcome>>,
    connected: usize,
}

impl Fleet {
    fn new(port: u16) -> Fleet {
        Fleet {
            port,
            shared: Arc::new(Shared::default()),
            go_tx: watch::channel(None).0,
            stop_tx: watch::channel(false).0,
            tasks: Vec::new(),
            connected: 0,
        }
    }

    /// Connects clients `from..to` (client `i` is member `i % members` of room `i / members`;
    /// member 0 hosts when `plan` (rate per room, rooms) is given), `concurrency` at a time.
    #[allow(clippy::too_many_arguments)]
    async fn connect(
        &mut self,
        from: usize,
        to: usize,
        members: usize,
        plan: Option<(f64, u64)>,
        max_receipts: usize,
        concurrency: usize,
        prefix: &str,
    ) -> Result<()> {
        let sem = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut pending = Vec::new();
        for i in from..to {
            let room = (i / members) as u64;
            let member = i % members;
            let room_name = format!("{prefix}-room-{room}");
            let name = format!("{prefix}-{room}-{member}");
            let host_name = format!("{prefix}-{room}-0");
            let host_plan = plan.filter(|_| member == 0).map(|(rate, rooms)| HostPlan {
                room,
                rooms,
                period: Duration::from_secs_f64(1.0 / rate),
                offset: Duration::from_secs_f64(room as f64 / rooms as f64 / rate),
            });
            let permit = sem
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error("semaphore closed".into()))?;
            let (port, shared) = (self.port, self.shared.clone());
            let (go, stop) = (self.go_tx.subscribe(), self.stop_tx.subscribe());
            pending.push(tokio::spawn(async move {
                let conn = connect(port, &name, &room_name, &shared).await;
                drop(permit);
                let conn = conn.map_err(|e| Error(format!("{name}: {e}")))?;
                let task = tokio::spawn(client_loop(
                    conn,
                    host_name,
                    host_plan,
                    max_receipts,
                    shared,
                    go,
                    stop,
                ));
                Ok::<_, Error>(task)
            }));
        }
        let mut first_error = None;
        for p in pending {
            match p.await {
                Ok(Ok(task)) => {
                    self.tasks.push(task);
                    self.connected += 1;
                }
                Ok(Err(e)) => {
                    self.shared.error(e.0.clone());
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(Error(format!("client task: {e}")));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops every client; returns their outcomes.
    async fn stop(self) -> Vec<ClientOutcome> {
        let _ = self.stop_tx.send(true);
        let mut outcomes = Vec::new();
        for task in self.tasks {
            if let Ok(Ok(o)) = tokio::time::timeout(Duration::from_secs(10), task).await {
                outcomes.push(o);
            }
        }
        outcomes
    }
}

// --- Phases -------------------------------------------------------------------------------------

/// Runs the load phase and then the idle phase (each on its own fresh server), as `opts` asks.
pub async fn run(opts: SyncplayLoadOptions) -> Result<SyncplayLoadReport> {
    if opts.members == 0 {
        return err("members must be at least 1");
    }
    let mut report = SyncplayLoadReport {
        system: "syncplay".into(),
        server_version: None,
        server_command: String::new(),
        load: None,
        idle: None,
    };
    if opts.rooms > 0 && opts.commands_per_sec > 0.0 {
        if !(opts.commands_per_sec.is_finite() && opts.commands_per_sec <= 1_000.0) {
            return err("commands per second per room must be in (0, 1000]");
        }
        let clients = opts.rooms * opts.members;
        let budget = Duration::from_secs(60 + clients as u64 / 20)
            + opts.warmup
            + opts.duration
            + opts.grace;
        let server = Server::start(&opts, budget + Duration::from_secs(30)).await?;
        report.server_command = server.command.clone();
        let server = Arc::new(server);
        let outcome = tokio::time::timeout(budget, load_phase(&opts, server.clone())).await;
        stop_server(server).await;
        let (load, version) = outcome.map_err(|_| {
            Error(format!(
                "the load phase did not finish within {budget:?}; stopped"
            ))
        })??;
        report.server_version = version;
        report.load = Some(load);
    }
    if !opts.idle_steps.is_empty() {
        let max = opts.idle_steps.iter().copied().max().unwrap_or(0);
        let budget = Duration::from_secs(60 + max as u64 / 20)
            + (opts.idle_settle + Duration::from_secs(5)) * opts.idle_steps.len() as u32;
        let server = Server::start(&opts, budget + Duration::from_secs(30)).await?;
        if report.server_command.is_empty() {
            report.server_command = server.command.clone();
        }
        let server = Arc::new(server);
        let outcome = tokio::time::timeout(budget, idle_phase(&opts, server.clone())).await;
        stop_server(server).await;
        let (idle, version) = outcome.map_err(|_| {
            Error(format!(
                "the idle phase did not finish within {budget:?}; stopped"
            ))
        })??;
        report.server_version = report.server_version.or(version);
        report.idle = Some(idle);
    }
    Ok(report)
}

async fn stop_server(server: Arc<Server>) {
    // The sampler's clone is gone once its task ended; wait briefly for that.
    let mut server = server;
    for _ in 0..50 {
        match Arc::try_unwrap(server) {
            Ok(s) => return s.stop().await,
            Err(s) => server = s,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still shared: dropping the last clone kills it (kill_on_drop) and its stdin closes.
}

async fn load_phase(
    opts: &SyncplayLoadOptions,
    server: Arc<Server>,
) -> Result<(LoadResult, Option<String>)> {
    let clients = opts.rooms * opts.members;
    let rooms = opts.rooms as u64;
    let rate = opts.commands_per_sec;
    let per_room = ((opts.warmup + opts.duration).as_secs_f64() * rate * 1.2) as usize + 16;
    let mut fleet = Fleet::new(server.port);
    let (sampler_stop, sampler_rx) = watch::channel(false);
    let sampler = spawn_sampler(
        server.clone(),
        fleet.shared.clone(),
        opts.progress.then(|| "syncplay load".to_string()),
        sampler_rx,
    );
    let t0 = Instant::now();
    if opts.progress {
        eprintln!(
            "[syncplay load] connecting {clients} clients ({} rooms of {}) to 127.0.0.1:{}",
            opts.rooms, opts.members, server.port
        );
    }
    let connected = fleet
        .connect(
            0,
            clients,
            opts.members,
            Some((rate, rooms)),
            per_room,
            opts.connect_concurrency,
            "l",
        )
        .await;
    let connect_secs = t0.elapsed().as_secs_f64();
    if let Err(e) = connected {
        let _ = sampler_stop.send(true);
        fleet.stop().await;
        return Err(e);
    }
    // Let the joins' announcements settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = Instant::now() + Duration::from_millis(100);
    let window_start = start + opts.warmup;
    let window_end = window_start + opts.duration;
    let _ = fleet.go_tx.send(Some((start, window_end)));
    tokio::time::sleep_until(tokio::time::Instant::from_std(window_start)).await;
    let u0 = server.usage()?;
    let me0 = own_cpu_ticks();
    let machine0 = machine_busy_ticks();
    let lines0 = fleet.shared.lines_in.load(Ordering::Relaxed);
    let sent0 = fleet.shared.lines_out.load(Ordering::Relaxed);
    tokio::time::sleep_until(tokio::time::Instant::from_std(window_end)).await;
    let u1 = server.usage()?;
    let me1 = own_cpu_ticks();
    let machine1 = machine_busy_ticks();
    let lines1 = fleet.shared.lines_in.load(Ordering::Relaxed);
    let sent1 = fleet.shared.lines_out.load(Ordering::Relaxed);
    tokio::time::sleep(opts.grace).await;
    let shared = fleet.shared.clone();
    let outcomes = fleet.stop().await;
    let _ = sampler_stop.send(true);
    let samples = sampler.await.unwrap_or_default();

    // Commands of the window, per room: id -> (sent, echoed).
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let (mut commands, mut late, mut skipped, mut unconfirmed) = (0, 0, 0, 0);
    let mut behind = Duration::ZERO;
    for o in &outcomes {
        skipped += o.skipped;
        for c in &o.sent {
            if c.sent >= window_start && c.sent < window_end {
                commands += 1;
                late += u64::from(c.held);
                behind = behind.max(c.sent.saturating_duration_since(c.due));
                unconfirmed += u64::from(!c.echoed);
                sent.insert(c.id, c.sent);
            }
        }
    }
    let mut micros = Vec::new();
    for o in &outcomes {
        for (id, at) in &o.receipts {
            if let Some(s) = sent.get(id) {
                micros.push(at.saturating_duration_since(*s).as_micros() as u64);
            }
        }
    }
    let window = u1.at.duration_since(u0.at).as_secs_f64();
    let delivered = lines1.saturating_sub(lines0);
    let cpu_secs = server.cpu_secs(&u0, &u1);
    let command_deliveries = micros.len() as u64;
    let per = |n: u64| (n > 0).then(|| cpu_secs * 1e6 / n as f64);
    let ticks_percent = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / server.clk_tck / window * 100.0,
        _ => 0.0,
    };
    let result = LoadResult {
        rooms: opts.rooms,
        members: opts.members,
        clients,
        commands_per_sec_per_room: rate,
        connect_secs,
        window_secs: window,
        commands,
        commands_late: late,
        max_behind_schedule_ms: behind.as_secs_f64() * 1e3,
        commands_skipped: skipped,
        commands_unconfirmed: unconfirmed,
        command_deliveries_expected: commands * opts.members as u64,
        command_deliveries,
        command_deliveries_per_sec: command_deliveries as f64 / window,
        delivered_per_sec: delivered as f64 / window,
        sent_per_sec: sent1.saturating_sub(sent0) as f64 / window,
        latency_ms: latency_summary(&mut micros),
        server: ServerUsage {
            cpu_percent: server.cpu_percent(&u0, &u1),
            cpu_us_per_delivery: per(delivered),
            cpu_us_per_command_delivery: per(command_deliveries),
            rss_kib: u1.rss_kib,
            rss_kib_max: samples
                .iter()
                .map(|s| s.rss_kib)
                .max()
                .unwrap_or(0)
                .max(u1.rss_kib),
            samples,
        },
        load_generator_cpu_percent: ticks_percent(me0, me1),
        other_cpu_percent: match (machine0, machine1, me0, me1) {
            (Some(m0), Some(m1), Some(a), Some(b)) => {
                let other = m1.saturating_sub(m0) as f64
                    - b.saturating_sub(a) as f64
                    - u1.cpu_ticks.saturating_sub(u0.cpu_ticks) as f64;
                (other / server.clk_tck / window * 100.0).max(0.0)
            }
            _ => 0.0,
        },
        disconnects: shared.disconnects.load(Ordering::Relaxed),
        errors: shared.errors.lock().map(|e| e.clone()).unwrap_or_default(),
        error_count: shared.error_count.load(Ordering::Relaxed),
    };
    let version = shared.server_version.lock().ok().and_then(|v| v.clone());
    Ok((result, version))
}

async fn idle_phase(
    opts: &SyncplayLoadOptions,
    server: Arc<Server>,
) -> Result<(IdleResult, Option<String>)> {
    let mut steps: Vec<usize> = opts.idle_steps.clone();
    steps.sort_unstable();
    steps.dedup();
    let mut fleet = Fleet::new(server.port);
    let (sampler_stop, sampler_rx) = watch::channel(false);
    let sampler = spawn_sampler(
        server.clone(),
        fleet.shared.clone(),
        opts.progress.then(|| "syncplay idle".to_string()),
        sampler_rx,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = server.usage()?.rss_kib;
    let mut out = Vec::new();
    let mut cpu_points = Vec::new();
    let mut result = Ok(());
    for &n in &steps {
        if opts.progress {
            eprintln!("[syncplay idle] {n} idle clients");
        }
        let have = fleet.connected;
        if let Err(e) = fleet
            .connect(
                have,
                n,
                opts.members,
                None,
                16,
                opts.connect_concurrency,
                "i",
            )
            .await
        {
            result = Err(e);
            break;
        }
        // Joins settle, then CPU is read over the rest of the settle time.
        let settle = opts.idle_settle.max(Duration::from_secs(2));
        tokio::time::sleep(settle / 2).await;
        let a = server.usage()?;
        tokio::time::sleep(settle / 2).await;
        let b = server.usage()?;
        let cpu = server.cpu_percent(&a, &b);
        cpu_points.push((n as f64, cpu));
        out.push(IdleStep {
            clients: n,
            rss_kib: b.rss_kib,
            cpu_percent: cpu,
        });
    }
    let shared = fleet.shared.clone();
    fleet.stop().await;
    let _ = sampler_stop.send(true);
    let _ = sampler.await;
    result?;
    let points: Vec<(f64, f64)> = out
        .iter()
        .map(|s| (s.clients as f64, s.rss_kib as f64 * 1024.0))
        .collect();
    let fit = fit_line(&points);
    // % of a core per client → µs of CPU per client per second.
    let cpu_fit = fit_line(&cpu_points);
    let version = shared.server_version.lock().ok().and_then(|v| v.clone());
    Ok((
        IdleResult {
            members_per_room: opts.members,
            baseline_rss_kib: baseline,
            steps: out,
            rss_bytes_per_client: fit.map(|f| f.0),
            fit_intercept_kib: fit.map(|f| f.1 / 1024.0),
            cpu_us_per_client_second: cpu_fit.map(|f| f.0 * 1e4),
            disconnects: shared.disconnects.load(Ordering::Relaxed),
        },
        version,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_lines() {
        let forced = br#"{"State": {"ping": {"latencyCalculation": 1700000000.25, "serverRtt": 0.001, "clientLatencyCalculation": 1700000000.1}, "playstate": {"position": 120.0, "paused": true, "doSeek": true, "setBy": "l-3-0"}, "ignoringOnTheFly": {"server": 1}}}"#;
        let s = parse_line(forced).unwrap().state.unwrap();
        assert_eq!(s.ignoring.as_ref().unwrap().server, Some(1));
        assert_eq!(
            s.ping.as_ref().unwrap().latency_calculation,
            Some(1_700_000_000.25)
        );
        assert_eq!(delivered_command(&s, "l-3-0"), Some(12));
        assert_eq!(delivered_command(&s, "l-4-0"), None, "another host");

        // The periodic state: not forced, so not a delivery even with the host's name.
        let periodic = br#"{"State": {"ping": {"latencyCalculation": 1.5, "serverRtt": 0}, "playstate": {"position": 120, "paused": false, "doSeek": false, "setBy": "l-3-0"}}}"#;
        let s = parse_line(periodic).unwrap().state.unwrap();
        assert_eq!(s.playstate.as_ref().unwrap().position, Some(120.0));
        assert_eq!(delivered_command(&s, "l-3-0"), None);

        // setBy null, position 0 (a fresh room), other messages.
        let fresh = br#"{"State": {"ping": {"latencyCalculation": 1.5, "serverRtt": 0}, "playstate": {"position": 0, "paused": true, "doSeek": true, "setBy": null}, "ignoringOnTheFly": {"server": 1}}}"#;
        let s = parse_line(fresh).unwrap().state.unwrap();
        assert_eq!(delivered_command(&s, "l-3-0"), None);
        let hello = br#"{"Hello": {"username": "i-0-1", "room": {"name": "r"}, "version": "1.2.255", "realversion": "1.6.9", "motd": "", "features": {"isolateRooms": true}}}"#;
        let h = parse_line(hello).unwrap().hello.unwrap();
        assert_eq!(h.username.as_deref(), Some("i-0-1"));
        assert_eq!(h.realversion.as_deref(), Some("1.6.9"));
        let set = br#"{"Set": {"ready": {"username": "a", "isReady": true, "manuallyInitiated": false}}}"#;
        assert_eq!(parse_line(set).unwrap(), ServerLine::default());
        let e = parse_line(br#"{"Error": {"message": "bye"}}"#).unwrap();
        assert_eq!(e.error.unwrap().message.as_deref(), Some("bye"));
        assert!(parse_line(b"not json").is_err());
        assert_eq!(trim_line(b"{}\r\n"), b"{}");
        assert_eq!(trim_line(b"{}"), b"{}");
    }

    fn value(line: &str) -> serde_json::Value {
        assert!(
            line.ends_with("\r\n"),
            "Twisted's LineReceiver splits on CRLF"
        );
        assert_eq!(line.matches('\n').count(), 1, "one object per line");
        serde_json::from_str(line.trim_end()).unwrap()
    }

    #[test]
    fn builds_client_lines() {
        let h = value(&hello_line("l-0-1", "l-room-0"));
        assert_eq!(h["Hello"]["username"], "l-0-1");
        assert_eq!(h["Hello"]["room"]["name"], "l-room-0");
        assert_eq!(h["Hello"]["version"], "1.2.255");
        assert_eq!(h["Hello"]["realversion"], "1.6.9");

        let after = after_hello_lines();
        let lines: Vec<&str> = after.split_inclusive("\r\n").collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(value(lines[0])["Set"]["file"]["duration"], 600.0);
        assert!(value(lines[1])["List"].is_null());
        assert_eq!(value(lines[2])["Set"]["ready"]["isReady"], true);

        let c = value(&command_line(7, false, true, 1_700_000_000.5, 0.002));
        assert_eq!(c["State"]["playstate"]["position"], 70.0);
        assert_eq!(c["State"]["playstate"]["paused"], false);
        assert_eq!(c["State"]["playstate"]["doSeek"], true);
        assert!(c["State"]["ping"].get("latencyCalculation").is_none());
        assert_eq!(c["State"]["ping"]["clientRtt"], 0.002);
        assert!(c["State"].get("ignoringOnTheFly").is_none());

        // The answer to a forced state echoes playstate, server timestamp and count.
        let forced = parse_line(br#"{"State": {"ping": {"latencyCalculation": 12.5, "serverRtt": 0}, "playstate": {"position": 70.0, "paused": true, "doSeek": true, "setBy": "h"}, "ignoringOnTheFly": {"server": 3}}}"#)
            .unwrap()
            .state
            .unwrap();
        let r = value(&reply_line(&forced, 99.0, 0.001));
        assert_eq!(r["State"]["playstate"]["position"], 70.0);
        assert_eq!(r["State"]["playstate"]["paused"], true);
        assert!(r["State"]["playstate"].get("doSeek").is_none());
        assert_eq!(r["State"]["ping"]["latencyCalculation"], 12.5);
        assert_eq!(r["State"]["ping"]["clientLatencyCalculation"], 99.0);
        assert_eq!(r["State"]["ignoringOnTheFly"]["server"], 3);
        let periodic = StateIn::default();
        let r = value(&reply_line(&periodic, 99.0, 0.0));
        assert!(r["State"].get("ignoringOnTheFly").is_none());
        assert!(r["State"].get("playstate").is_none());
    }

    #[test]
    fn ids_and_positions() {
        for id in [1, 2, 99, 123_456] {
            assert_eq!(id_of(position_of(id)), Some(id));
            // The server adds its delay estimate on resume: up to half a spacing is fine.
            assert_eq!(id_of(position_of(id) + 4.9), Some(id));
            assert_eq!(id_of(position_of(id) - 4.9), Some(id));
        }
        assert_eq!(id_of(0.0), None);
        assert_eq!(id_of(3.0), None);
        assert_eq!(id_of(-50.0), None);
        assert_eq!(id_of(f64::NAN), None);
    }

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.999), Some(7));
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), Some(500));
        assert_eq!(percentile(&v, 0.99), Some(990));
        assert_eq!(percentile(&v, 0.999), Some(999));
        assert_eq!(percentile(&v, 1.0), Some(1000));
        assert_eq!(percentile(&v, 0.0), Some(1));
        let mut us = vec![3_000, 1_000, 2_000, 4_000];
        let l = latency_summary(&mut us);
        assert_eq!(l.samples, 4);
        assert_eq!(l.p50, 2.0);
        assert_eq!(l.p99, 4.0);
        assert_eq!(l.max, 4.0);
        assert_eq!(l.mean, 2.5);
        assert_eq!(latency_summary(&mut []), Latency::default());
    }

    #[test]
    fn slope() {
        let pts = [(100.0, 1_500.0), (500.0, 3_500.0), (1_000.0, 6_000.0)];
        let (m, b) = fit_line(&pts).unwrap();
        assert!((m - 5.0).abs() < 1e-9, "{m}");
        assert!((b - 1_000.0).abs() < 1e-6, "{b}");
        // Noise around a slope of 5,000 bytes per client.
        let pts = [
            (100.0, 10.5e6),
            (500.0, 12.4e6),
            (1_000.0, 15.1e6),
            (2_000.0, 19.9e6),
        ];
        let (m, _) = fit_line(&pts).unwrap();
        assert!((m - 4_950.0).abs() < 100.0, "{m}");
        assert_eq!(fit_line(&[(1.0, 2.0)]), None);
        assert_eq!(fit_line(&[(1.0, 2.0), (1.0, 3.0)]), None);
    }

    #[test]
    fn proc_files() {
        let stat = "4242 (python3 -u x) S 1 4242 4242 0 -1 4194560 2411 0 0 0 157 23 0 0 20 0 3 0 1234 40000000 5000 18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(180));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        let status = "Name:\tpython3\nVmPeak:\t  40000 kB\nVmRSS:\t   21480 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss_kib(status), Some(21_480));
        assert_eq!(parse_status_rss_kib("Name: x\n"), None);
        // This process's own files parse.
        let me = std::process::id();
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{me}/status")).unwrap();
        assert!(parse_stat_cpu_ticks(&stat).is_some());
        assert!(parse_status_rss_kib(&status).unwrap() > 0);
        let stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 0 1 1 0 0\n";
        assert_eq!(parse_proc_stat_busy(stat), Some(155));
        assert_eq!(parse_proc_stat_busy("intr 1 2"), None);
        let stat = std::fs::read_to_string("/proc/stat").unwrap();
        assert!(parse_proc_stat_busy(&stat).is_some());
    }
}
