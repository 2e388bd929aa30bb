//! The link emulator: impairing UDP and TCP proxies on loopback, because this kernel has no
//! `tc netem`. A client talks to the proxy's loopback address; the proxy forwards to the real
//! server and back, holding every datagram (UDP) or chunk (TCP) for a delay drawn per packet
//! and per direction, and dropping datagrams with a loss probability.
//!
//! What it models, and what it does not:
//!
//! - **Delay**: uniform in `[base - jitter, base + jitter]` (never below 0), drawn
//!   independently for each datagram or chunk, separately for each direction (`up` is
//!   client -> server, `down` server -> client).
//! - **Order is preserved** in each direction: a packet is released at
//!   `max(arrival + delay, release of the previous packet)`, as through one queue. So the
//!   configured distribution holds exactly for sparse traffic (clock pings, 1 s state
//!   messages) and a burst piles up behind its slowest packet. Reordering is not emulated.
//! - **UDP loss**: independent (Bernoulli) per datagram and direction; no burst loss.
//! - **TCP "loss"**: TCP cannot lose bytes, and both legs of the proxy are real loopback TCP.
//!   What a lost segment costs a TCP user is time: the sender retransmits after its
//!   retransmission timeout, at least 200 ms on Linux, and every later byte waits behind it.
//!   So with the loss probability a chunk gets an extra `max(200 ms, 2 * base + 4 * jitter)`
//!   (an RTO estimate for this path) and, order being preserved, later chunks queue behind
//!   it (head-of-line blocking). Fast retransmit, congestion-window cuts and Nagle are not
//!   modelled; a "chunk" is what one `read` returns (both legs use `TCP_NODELAY`).
//! - No bandwidth limit, queue limit, duplication or corruption. TCP connection set-up is not
//!   delayed (the proxy accepts at once and connects upstream at once); UDP and TCP data are.
//! - Timing runs on plain threads with `thread::sleep`, so a release is late by the sleep's
//!   slack (~0.1 ms), not by an async timer's 1 ms tick.
//! - A UDP client is a session keyed by its address, with its own upstream socket, so the
//!   server sees one peer per client (as QUIC expects).
//!
//! Every thread stops when the proxy is dropped or its lifetime runs out, whichever is first:
//! all loops poll at most every 100 ms and are bounded by that deadline.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::prng::XorShift64Star;

/// How often a blocked thread wakes to check whether it should stop.
const POLL: Duration = Duration::from_millis(100);
/// The Linux minimum retransmission timeout (`TCP_RTO_MIN`).
const MIN_RTO: Duration = Duration::from_millis(200);
/// At most this many UDP sessions (clients) or TCP connections per proxy.
const MAX_PEERS: usize = 256;

/// One direction of a link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct LinkProfile {
    /// Mean one-way delay.
    #[serde(rename = "base_ms", serialize_with = "ser_ms")]
    pub(crate) base: Duration,
    /// Half-width of the uniform jitter around `base`.
    #[serde(rename = "jitter_ms", serialize_with = "ser_ms")]
    pub(crate) jitter: Duration,
    /// Loss probability per datagram (UDP) or per chunk, turned into a retransmission delay (TCP).
    pub(crate) loss: f64,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

impl LinkProfile {
    /// No delay, no loss: packets are forwarded as they come.
    pub(crate) const CLEAN: LinkProfile = LinkProfile {
        base: Duration::ZERO,
        jitter: Duration::ZERO,
        loss: 0.0,
    };

    /// `base_ms` +- `jitter_ms`, with `loss` probability.
    pub(crate) fn new(base_ms: f64, jitter_ms: f64, loss: f64) -> Self {
        LinkProfile {
            base: Duration::from_secs_f64(base_ms.max(0.0) / 1e3),
            jitter: Duration::from_secs_f64(jitter_ms.max(0.0) / 1e3),
            loss: loss.clamp(0.0, 1.0),
        }
    }

    /// One delay draw.
    fn sample_delay(&self, rng: &mut XorShift64Star) -> Duration {
        if self.jitter.is_zero() {
            return self.base;
        }
        let base = self.base.as_secs_f64();
        let jitter = self.jitter.as_secs_f64();
        Duration::from_secs_f64(rng.uniform(base - jitter, base + jitter).max(0.0))
    }

    /// What a lost TCP segment costs: the retransmission timeout, an RTT estimate plus four
    /// times its variation, never below Linux's 200 ms minimum.
    pub(crate) fn tcp_loss_penalty(&self) -> Duration {
        MIN_RTO.max(self.base * 2 + self.jitter * 4)
    }
}

/// Both directions of a link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Link {
    /// Client -> server.
    pub(crate) up: LinkProfile,
    /// Server -> client.
    pub(crate) down: LinkProfile,
}

impl Link {
    /// The same profile both ways.
    pub(crate) fn symmetric(profile: LinkProfile) -> Self {
        Link {
            up: profile,
            down: profile,
        }
    }
}

/// What a proxy did, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct LinkStats {
    /// Datagrams or chunks forwarded client -> server.
    pub(crate) forwarded_up: u64,
    /// Datagrams or chunks forwarded server -> client.
    pub(crate) forwarded_down: u64,
    /// Datagrams dropped client -> server (UDP).
    pub(crate) dropped_up: u64,
    /// Datagrams dropped server -> client (UDP).
    pub(crate) dropped_down: u64,
    /// Chunks held for a retransmission timeout client -> server (TCP).
    pub(crate) stalled_up: u64,
    /// Chunks held for a retransmission timeout server -> client (TCP).
    pub(crate) stalled_down: u64,
}

#[derive(Default)]
struct Counters {
    forwarded: [AtomicU64; 2],
    dropped: [AtomicU64; 2],
    stalled: [AtomicU64; 2],
}

#[derive(Clone, Copy)]
enum Dir {
    Up = 0,
    Down = 1,
}

/// State every thread of one proxy shares.
struct Shared {
    stop: AtomicBool,
    deadline: Instant,
    counters: Counters,
}

impl Shared {
    fn new(lifetime: Duration) -> Arc<Self> {
        Arc::new(Shared {
            stop: AtomicBool::new(false),
            deadline: Instant::now() + lifetime,
            counters: Counters::default(),
        })
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    fn count(&self, which: &[AtomicU64; 2], dir: Dir) {
        which[dir as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> LinkStats {
        let c = &self.counters;
        let get = |a: &[AtomicU64; 2], d: Dir| a[d as usize].load(Ordering::Relaxed);
        LinkStats {
            forwarded_up: get(&c.forwarded, Dir::Up),
            forwarded_down: get(&c.forwarded, Dir::Down),
            dropped_up: get(&c.dropped, Dir::Up),
            dropped_down: get(&c.dropped, Dir::Down),
            stalled_up: get(&c.stalled, Dir::Up),
            stalled_down: get(&c.stalled, Dir::Down),
        }
    }
}

/// Decides, for one direction, when each packet is released (or that it is lost).
struct Scheduler {
    profile: LinkProfile,
    rng: XorShift64Star,
    last_release: Option<Instant>,
    dir: Dir,
    shared: Arc<Shared>,
}

impl Scheduler {
    fn new(profile: LinkProfile, seed: u64, dir: Dir, shared: Arc<Shared>) -> Self {
        Scheduler {
            profile,
            rng: XorShift64Star::new(seed),
            last_release: None,
            dir,
            shared,
        }
    }

    /// A datagram that arrived `now`: its release time, or `None` if it is lost.
    fn datagram(&mut self, now: Instant) -> Option<Instant> {
        if self.profile.loss > 0.0 && self.rng.chance(self.profile.loss) {
            self.shared.count(&self.shared.counters.dropped, self.dir);
            return None;
        }
        let delay = self.profile.sample_delay(&mut self.rng);
        Some(self.release(now + delay))
    }

    /// A TCP chunk that arrived `now`: its release time (a "lost" one waits an RTO more).
    fn chunk(&mut self, now: Instant) -> Instant {
        let mut delay = self.profile.sample_delay(&mut self.rng);
        if self.profile.loss > 0.0 && self.rng.chance(self.profile.loss) {
            self.shared.count(&self.shared.counters.stalled, self.dir);
            delay += self.profile.tcp_loss_penalty();
        }
        self.release(now + delay)
    }

    /// A TCP end of stream that arrived `now`: travels like data, never lost.
    fn close(&mut self, now: Instant) -> Instant {
        let delay = self.profile.sample_delay(&mut self.rng);
        self.release(now + delay)
    }

    /// Order preserved: never before the previous release.
    fn release(&mut self, at: Instant) -> Instant {
        let at = self.last_release.map_or(at, |last| at.max(last));
        self.last_release = Some(at);
        at
    }
}

enum Item {
    Data(Instant, Vec<u8>),
    Close(Instant),
}

/// Sleeps until `at`, waking at least every [`POLL`] to check the proxy still runs.
/// Returns false if it stopped meanwhile.
fn sleep_until(at: Instant, shared: &Shared) -> bool {
    // Bounded: each round sleeps POLL or finishes, and delays are at most seconds.
    for _ in 0..10_000 {
        if !shared.running() {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        thread::sleep((at - now).min(POLL));
    }
    false
}

/// A thread that releases items at their time, in order, into `sink`; `on_close` on `Close`.
fn spawn_delay_line<S, C>(
    name: &str,
    shared: Arc<Shared>,
    dir: Dir,
    mut sink: S,
    on_close: C,
) -> io::Result<mpsc::Sender<Item>>
where
    S: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
    C: FnOnce() + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Item>();
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            while shared.running() {
                match rx.recv_timeout(POLL) {
                    Ok(Item::Data(at, bytes)) => {
                        if !sleep_until(at, &shared) {
                            break;
                        }
                        shared.count(&shared.counters.forwarded, dir);
                        if sink(&bytes).is_err() {
                            break;
                        }
                    }
                    Ok(Item::Close(at)) => {
                        if sleep_until(at, &shared) {
                            on_close();
                        }
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        })?;
    Ok(tx)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A UDP proxy with an impaired link (see the module doc).
pub(crate) struct UdpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl UdpProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` for at most `lifetime`.
    pub(crate) fn start(
        upstream: SocketAddr,
        link: Link,
        seed: u64,
        lifetime: Duration,
    ) -> io::Result<Self> {
        let front = UdpSocket::bind("127.0.0.1:0")?;
        front.set_read_timeout(Some(POLL))?;
        let addr = front.local_addr()?;
        let shared = Shared::new(lifetime);
        let s = shared.clone();
        thread::Builder::new()
            .name("udp-proxy".into())
            .spawn(move || udp_front(front, upstream, link, seed, s))?;
        Ok(UdpProxy { addr, shared })
    }

    /// Where clients send.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it forwarded and dropped so far.
    pub(crate) fn stats(&self) -> LinkStats {
        self.shared.stats()
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads from clients; opens a session (upstream socket and delay lines) per client address.
fn udp_front(front: UdpSocket, upstream: SocketAddr, link: Link, seed: u64, shared: Arc<Shared>) {
    let mut up = Scheduler::new(link.up, seed ^ 0x5550, Dir::Up, shared.clone());
    let mut sessions: HashMap<SocketAddr, mpsc::Sender<Item>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    while shared.running() {
        let (n, from) = match front.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if is_timeout(&e) => continue,
            // ICMP errors surface here on some kernels; the next datagram may be fine.
            Err(_) => continue,
        };
        let now = Instant::now();
        if !sessions.contains_key(&from) {
            if sessions.len() >= MAX_PEERS {
                continue;
            }
            let index = sessions.len() as u64 + 1;
            match udp_session(&front, from, upstream, link, seed ^ (index << 32), &shared) {
                Ok(tx) => {
                    sessions.insert(from, tx);
                }
                Err(_) => continue,
            }
        }
        let Some(tx) = sessions.get(&from) else {
            continue;
        };
        if let Some(at) = up.datagram(now) {
            let _ = tx.send(Item::Data(at, buf[..n].to_vec()));
        }
    }
}

/// One client's upstream socket: returns the sender of its uplink delay line and starts the
/// downlink reader.
fn udp_session(
    front: &UdpSocket,
    client: SocketAddr,
    upstream: SocketAddr,
    link: Link,
    seed: u64,
    shared: &Arc<Shared>,
) -> io::Result<mpsc::Sender<Item>> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(upstream)?;
    socket.set_read_timeout(Some(POLL))?;
    let to_server = socket.try_clone()?;
    let up_tx = spawn_delay_line(
        "udp-up",
        shared.clone(),
        Dir::Up,
        move |bytes| to_server.send(bytes).map(|_| ()),
        || {},
    )?;
    let to_client = front.try_clone()?;
    let down_tx = spawn_delay_line(
        "udp-down",
        shared.clone(),
        Dir::Down,
        move |bytes| to_client.send_to(bytes, client).map(|_| ()),
        || {},
    )?;
    let mut down = Scheduler::new(link.down, seed ^ 0xD0, Dir::Down, shared.clone());
    let s = shared.clone();
    thread::Builder::new()
        .name("udp-session".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while s.running() {
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if is_timeout(&e) => continue,
                    // ECONNREFUSED from an earlier send: the server may come (back) later.
                    Err(_) => continue,
                };
                if let Some(at) = down.datagram(Instant::now())
                    && down_tx.send(Item::Data(at, buf[..n].to_vec())).is_err()
                {
                    break;
                }
            }
        })?;
    Ok(up_tx)
}

/// Where a TCP proxy connects.
#[derive(Debug, Clone)]
pub(crate) enum Upstream {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path (how we reach a server inside its own network namespace).
    Unix(PathBuf),
}

/// A TCP or Unix stream.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
        })
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(t),
            Conn::Unix(s) => s.set_read_timeout(t),
        }
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(Shutdown::Write),
            Conn::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// A TCP proxy with an impaired link (see the module doc).
pub(crate) struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TcpProxy {
    /// Listens on `127.0.0.1:0` and forwards each connection to `upstream` for at most
    /// `lifetime`.
    pub(crate) fn start(
        upstream: Upstream,
        link: Link,
        seed: u64,
        lifetime: Duration,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Shared::new(lifetime);
        let s = shared.clone();
        thread::Builder::new()
            .name("tcp-proxy".into())
            .spawn(move || tcp_accept(listener, upstream, link, seed, s))?;
        Ok(TcpProxy { addr, shared })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it forwarded and stalled so far.
    pub(crate) fn stats(&self) -> LinkStats {
        self.shared.stats()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

fn tcp_accept(listener: TcpListener, upstream: Upstream, link: Link, seed: u64, s: Arc<Shared>) {
    let mut index = 0u64;
    while s.running() && (index as usize) < MAX_PEERS {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if is_timeout(&e) => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        index += 1;
        let server = match &upstream {
            Upstream::Tcp(addr) => TcpStream::connect_timeout(addr, Duration::from_secs(2))
                .and_then(|t| t.set_nodelay(true).map(|()| Conn::Tcp(t))),
            Upstream::Unix(path) => UnixStream::connect(path).map(Conn::Unix),
        };
        let Ok(server) = server else {
            // Nothing to forward to: the client sees the connection close.
            continue;
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let client = Conn::Tcp(client);
        let seed = seed ^ (index << 32);
        let _ = tcp_pipe(&client, &server, link.up, seed ^ 0x5550, Dir::Up, &s)
            .and_then(|()| tcp_pipe(&server, &client, link.down, seed ^ 0xD0, Dir::Down, &s));
    }
}

/// Forwards `from` -> `to` through a delay line.
fn tcp_pipe(
    from: &Conn,
    to: &Conn,
    profile: LinkProfile,
    seed: u64,
    dir: Dir,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    let mut reader = from.try_clone()?;
    reader.set_read_timeout(Some(POLL))?;
    let mut writer = to.try_clone()?;
    let closer = to.try_clone()?;
    let tx = spawn_delay_line(
        "tcp-delay",
        shared.clone(),
        dir,
        move |bytes| writer.write_all(bytes),
        move || closer.shutdown_write(),
    )?;
    let mut sched = Scheduler::new(profile, seed, dir, shared.clone());
    let s = shared.clone();
    thread::Builder::new()
        .name("tcp-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while s.running() {
                match reader.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Item::Close(sched.close(Instant::now())));
                        break;
                    }
                    Ok(n) => {
                        let at = sched.chunk(Instant::now());
                        if tx.send(Item::Data(at, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => {
                        let _ = tx.send(Item::Close(sched.close(Instant::now())));
                        break;
                    }
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean, standard deviation, min and max in milliseconds.
    fn moments(ms: &[f64]) -> (f64, f64, f64, f64) {
        let n = ms.len() as f64;
        let mean = ms.iter().sum::<f64>() / n;
        let sd = (ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (mean, sd, min, max)
    }

    /// The median.
    fn median(ms: &[f64]) -> f64 {
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    /// Delays measured through real sockets against `base` +- `jitter`. The emulator's draws
    /// are checked exactly in `scheduler_draws_follow_the_profile`; here a release must never
    /// be early, and may be late only by the host's wake-up slack, which on a saturated
    /// 2-core machine reaches a few ms (the allowances below).
    fn assert_through_sockets(ms: &[f64], base: f64, jitter: f64) {
        let (_, _, min, max) = moments(ms);
        assert!(
            min >= base - jitter - 0.05,
            "min {min:.2} ms: released early"
        );
        let median = median(ms);
        assert!(
            (base - 0.5..base + 4.0).contains(&median),
            "median {median:.2} ms, want {base}"
        );
        let late = ms.iter().filter(|&&x| x > base + jitter + 3.0).count();
        assert!(
            late * 5 <= ms.len(),
            "{late} of {} over {} ms (max {max:.2})",
            ms.len(),
            base + jitter
        );
        // The jitter is there: both halves of the range are used.
        let below = ms.iter().filter(|&&x| x < base + 1.0).count() as f64 / ms.len() as f64;
        assert!((0.2..0.8).contains(&below), "{below:.2} below the base");
    }

    #[test]
    fn scheduler_draws_follow_the_profile() {
        let shared = Shared::new(Duration::from_secs(10));
        let profile = LinkProfile::new(50.0, 10.0, 0.01);
        let mut udp = Scheduler::new(profile, 9, Dir::Up, shared.clone());
        let t0 = Instant::now();
        let n = 100_000u32;
        // Arrivals 1 s apart: order preservation never holds one back.
        let delays: Vec<f64> = (0..n)
            .filter_map(|i| {
                let at = t0 + Duration::from_secs(u64::from(i));
                udp.datagram(at).map(|r| (r - at).as_secs_f64() * 1e3)
            })
            .collect();
        let lost = f64::from(n) - delays.len() as f64;
        // 1% of 100,000: 1000, sigma ~31.
        assert!((880.0..1120.0).contains(&lost), "lost {lost}");
        assert_eq!(shared.stats().dropped_up, lost as u64);
        let (mean, sd, min, max) = moments(&delays);
        assert!((mean - 50.0).abs() < 0.1, "mean {mean:.3}");
        assert!((sd - 10.0 / 3f64.sqrt()).abs() < 0.1, "sd {sd:.3}");
        assert!(min >= 40.0 && max <= 60.0, "range {min:.3}..{max:.3}");
        // TCP: every chunk arrives; 1% wait an RTO (200 ms) more.
        let mut tcp = Scheduler::new(profile, 9, Dir::Down, shared.clone());
        let stalls = (0..n)
            .filter(|&i| {
                let at = t0 + Duration::from_secs(u64::from(i));
                tcp.chunk(at) - at >= Duration::from_millis(240)
            })
            .count();
        assert!((880..1120).contains(&stalls), "stalls {stalls}");
        assert_eq!(shared.stats().stalled_down, stalls as u64);
        // Dense arrivals: releases never go backwards (order preserved).
        let mut dense = Scheduler::new(profile, 10, Dir::Up, shared);
        let mut last = t0;
        for i in 0..10_000u64 {
            if let Some(r) = dense.datagram(t0 + Duration::from_micros(i * 100)) {
                assert!(r >= last);
                last = r;
            }
        }
    }

    #[test]
    fn udp_one_way_delay_follows_the_profile() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let link = Link {
            up: LinkProfile::new(20.0, 5.0, 0.0),
            down: LinkProfile::CLEAN,
        };
        let proxy = UdpProxy::start(
            server.local_addr().unwrap(),
            link,
            7,
            Duration::from_secs(10),
        )
        .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let origin = Instant::now();
        // Spaced wider than the jitter range, so order preservation never holds one back.
        let n = 120;
        let sender = thread::spawn(move || {
            for i in 0..n {
                let sent = origin.elapsed().as_nanos() as u64;
                let mut msg = (i as u64).to_be_bytes().to_vec();
                msg.extend_from_slice(&sent.to_be_bytes());
                client.send_to(&msg, proxy.addr()).unwrap();
                thread::sleep(Duration::from_millis(11));
            }
            proxy
        });
        let mut delays = Vec::new();
        let mut seqs = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(16) = server.recv(&mut buf) {
            let now = origin.elapsed().as_nanos() as u64;
            let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
            let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap());
            seqs.push(seq);
            delays.push((now - sent) as f64 / 1e6);
            if seqs.len() == n {
                break;
            }
        }
        let proxy = sender.join().unwrap();
        assert_eq!(delays.len(), n, "no loss configured");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order preserved");
        assert_through_sockets(&delays, 20.0, 5.0);
        let stats = proxy.stats();
        assert_eq!(stats.forwarded_up, n as u64);
        assert_eq!(stats.dropped_up, 0);
    }

    #[test]
    fn udp_loss_rate_and_round_trip_follow_the_profile() {
        // An echo server behind the proxy; 2% loss each way, 3 +- 1 ms each way.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let server_addr = server.local_addr().unwrap();
        let echo = thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let _ = server.send_to(&buf[..n], from);
            }
        });
        let profile = LinkProfile::new(3.0, 1.0, 0.1);
        let proxy = UdpProxy::start(
            server_addr,
            Link::symmetric(profile),
            11,
            Duration::from_secs(10),
        )
        .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let origin = Instant::now();
        let n = 1_000u64;
        let c = client.try_clone().unwrap();
        let to = proxy.addr();
        let sender = thread::spawn(move || {
            for i in 0..n {
                let sent = origin.elapsed().as_nanos() as u64;
                let mut msg = i.to_be_bytes().to_vec();
                msg.extend_from_slice(&sent.to_be_bytes());
                c.send_to(&msg, to).unwrap();
                if i % 10 == 9 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut rtts = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(16) = client.recv(&mut buf) {
            let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap());
            rtts.push((origin.elapsed().as_nanos() as u64 - sent) as f64 / 1e6);
        }
        sender.join().unwrap();
        let stats = proxy.stats();
        drop(proxy);
        echo.join().unwrap();
        // 10% each way: 81% come back; sigma of the count ~12.
        let back = rtts.len() as f64;
        assert!((760.0..860.0).contains(&back), "{back} of {n} came back");
        let dropped_up = stats.dropped_up as f64;
        assert!(
            (60.0..140.0).contains(&dropped_up),
            "dropped up {dropped_up}"
        );
        assert_eq!(stats.forwarded_up + stats.dropped_up, n);
        assert_eq!(stats.forwarded_down, rtts.len() as u64);
        // Round trip >= the two minimum delays; the mean is at least 6 ms (bursts queue).
        let (mean, _, min, _) = moments(&rtts);
        assert!(min >= 4.0 - 0.05, "min rtt {min:.2} ms");
        assert!(mean >= 5.9, "mean rtt {mean:.2} ms");
    }

    #[test]
    fn tcp_delays_chunks_in_order_and_turns_loss_into_rto_stalls() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server_addr = listener.local_addr().unwrap();
        let link = Link {
            up: LinkProfile::new(15.0, 4.0, 0.1),
            down: LinkProfile::CLEAN,
        };
        let proxy =
            TcpProxy::start(Upstream::Tcp(server_addr), link, 3, Duration::from_secs(10)).unwrap();
        let origin = Instant::now();
        let n = 100u64;
        let to = proxy.addr();
        let sender = thread::spawn(move || {
            let mut c = TcpStream::connect(to).unwrap();
            c.set_nodelay(true).unwrap();
            for i in 0..n {
                let sent = origin.elapsed().as_nanos() as u64;
                let mut msg = i.to_be_bytes().to_vec();
                msg.extend_from_slice(&sent.to_be_bytes());
                c.write_all(&msg).unwrap();
                thread::sleep(Duration::from_millis(10));
            }
            c
        });
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut delays = Vec::new();
        let mut msg = [0u8; 16];
        for expected in 0..n {
            s.read_exact(&mut msg).unwrap();
            let now = origin.elapsed().as_nanos() as u64;
            assert_eq!(
                u64::from_be_bytes(msg[..8].try_into().unwrap()),
                expected,
                "byte order kept"
            );
            let sent = u64::from_be_bytes(msg[8..].try_into().unwrap());
            delays.push((now - sent) as f64 / 1e6);
        }
        let client = sender.join().unwrap();
        let stats = proxy.stats();
        // About 10 of 100 chunks stalled (sigma 3); each stall holds >= 200 ms.
        assert!(
            (2..=22).contains(&stats.stalled_up),
            "stalled {}",
            stats.stalled_up
        );
        let (_, _, min, max) = moments(&delays);
        assert!(min >= 11.0 - 0.05, "min {min:.2} ms");
        assert!(max >= 200.0, "a stall shows as >= 200 ms, max {max:.2} ms");
        // Chunks not stuck behind a stall see the plain delay.
        let plain: Vec<f64> = delays.iter().copied().filter(|&d| d < 19.0 + 8.0).collect();
        assert!(plain.len() >= 20, "only {} unstalled chunks", plain.len());
        let (mean, _, _, _) = moments(&plain);
        assert!((mean - 15.0).abs() < 2.0, "mean unstalled {mean:.2} ms");
        // End of stream travels too.
        drop(client);
        assert_eq!(s.read(&mut msg).unwrap(), 0);
    }

    #[test]
    fn tcp_delay_follows_the_profile_both_ways_through_a_unix_upstream() {
        let dir = std::env::temp_dir().join(format!("lockstep-link-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("echo.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let echo = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let proxy = TcpProxy::start(
            Upstream::Unix(path.clone()),
            Link::symmetric(LinkProfile::new(10.0, 3.0, 0.0)),
            5,
            Duration::from_secs(10),
        )
        .unwrap();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_nodelay(true).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut rtts = Vec::new();
        let mut buf = [0u8; 8];
        for i in 0..60u64 {
            let sent = Instant::now();
            c.write_all(&i.to_be_bytes()).unwrap();
            c.read_exact(&mut buf).unwrap();
            assert_eq!(u64::from_be_bytes(buf), i);
            rtts.push(sent.elapsed().as_secs_f64() * 1e3);
        }
        drop(c);
        echo.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // The sum of two uniforms 10 +- 3: 20 +- 6 (triangular), median 20.
        assert_through_sockets(&rtts, 20.0, 6.0);
    }

    #[test]
    fn tcp_loss_penalty_is_an_rto_never_below_200_ms() {
        assert_eq!(
            LinkProfile::new(50.0, 10.0, 0.01).tcp_loss_penalty(),
            MIN_RTO
        );
        assert_eq!(
            LinkProfile::new(150.0, 30.0, 0.02).tcp_loss_penalty(),
            Duration::from_millis(420)
        );
    }
}
