//! What the clients measured: latency histograms, messages by type, event counters, errors.
//!
//! Tens of thousands of client tasks record into this at hundreds of thousands of events a
//! second, so recording must be cheap and must not make the tasks wait on each other: clients
//! record into one of [`SHARDS`] shards (by client index); message counts are relaxed atomics;
//! latencies go into the shard's *interval* histograms, which the once-a-second collector
//! ([`Metrics::collect`]) drains into the run's window histograms (while a measurement window
//! is open) and into the per-second figures the progress line shows. Counters only ever grow;
//! a window's figures are the difference of two snapshots.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use lockstep_proto::MessageType;
use serde::Serialize;

/// Shards clients record into.
pub(crate) const SHARDS: usize = 16;
/// Message types the protocol knows.
pub(crate) const TYPES: usize = MessageType::ALL.len();
/// Largest latency recorded, µs (larger ones are recorded as this).
const MAX_US: u64 = 120_000_000;

const RELAXED: Ordering = Ordering::Relaxed;

/// The latencies measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Latency {
    /// Command sent by the host to the first copy of its `state_update` at a member.
    Command,
    /// Chat line sent to its `chat_message` at a member.
    Chat,
    /// Seek proposal sent to its `proposal` announcement at a member.
    Proposal,
    /// Seek proposal sent to its `decision` at a member.
    Decision,
    /// Clock ping round trip (ping sent to pong received).
    Rtt,
    /// [`Latency::Command`] at members on WebSocket only.
    CommandWs,
    /// [`Latency::Command`] at members on WebTransport only.
    CommandWt,
}

impl Latency {
    /// All of them, in report order.
    pub(crate) const ALL: [Latency; 7] = [
        Latency::Command,
        Latency::Chat,
        Latency::Proposal,
        Latency::Decision,
        Latency::Rtt,
        Latency::CommandWs,
        Latency::CommandWt,
    ];

    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Latency::Command => "command",
            Latency::Chat => "chat",
            Latency::Proposal => "proposal",
            Latency::Decision => "decision",
            Latency::Rtt => "ping_rtt",
            Latency::CommandWs => "command_websocket",
            Latency::CommandWt => "command_webtransport",
        }
    }
}

/// Events counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// Playback commands sent by hosts.
    CommandsSent,
    /// Commands whose timeline came back to their host.
    CommandsApplied,
    /// Commands the relay refused (`error` with the command's `req`).
    CommandsRefused,
    /// Commands whose timeline did not come back to their host within the timeout.
    CommandTimeouts,
    /// Command ticks skipped because the previous command was still in flight.
    CommandsSkipped,
    /// First copies of timelines no command was registered for.
    UpdatesUnknown,
    /// First copies of timelines that do not fit the command registered for their `seq`.
    UpdatesMismatched,
    /// Chat lines sent.
    ChatsSent,
    /// Chat lines received that no send was registered for.
    ChatsUnknown,
    /// Seek proposals sent.
    ProposalsSent,
    /// Votes sent.
    VotesSent,
    /// Votes refused with `proposal_closed` (they crossed the deciding one).
    LateVotes,
    /// Decisions `passed` received.
    DecisionsPassed,
    /// Decisions with any other outcome received.
    DecisionsOther,
    /// Pings sent.
    PingsSent,
    /// Stats sent.
    StatsSent,
    /// Slow clients whose connection ended with a `slow_consumer` reason.
    SlowCut,
    /// Slow clients whose connection ended otherwise (reset, no reason), or still open after
    /// reading for [`DRAIN`](super::member) at the end.
    SlowNotCut,
    /// Connections that closed while the run went on.
    Disconnects,
}

impl Count {
    /// All of them, in report order.
    pub(crate) const ALL: [Count; 19] = [
        Count::CommandsSent,
        Count::CommandsApplied,
        Count::CommandsRefused,
        Count::CommandTimeouts,
        Count::CommandsSkipped,
        Count::UpdatesUnknown,
        Count::UpdatesMismatched,
        Count::ChatsSent,
        Count::ChatsUnknown,
        Count::ProposalsSent,
        Count::VotesSent,
        Count::LateVotes,
        Count::DecisionsPassed,
        Count::DecisionsOther,
        Count::PingsSent,
        Count::StatsSent,
        Count::SlowCut,
        Count::SlowNotCut,
        Count::Disconnects,
    ];

    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Count::CommandsSent => "commands_sent",
            Count::CommandsApplied => "commands_applied",
            Count::CommandsRefused => "commands_refused",
            Count::CommandTimeouts => "command_timeouts",
            Count::CommandsSkipped => "command_ticks_skipped",
            Count::UpdatesUnknown => "timelines_unmatched",
            Count::UpdatesMismatched => "timelines_mismatched",
            Count::ChatsSent => "chats_sent",
            Count::ChatsUnknown => "chats_unmatched",
            Count::ProposalsSent => "proposals_sent",
            Count::VotesSent => "votes_sent",
            Count::LateVotes => "late_votes_refused",
            Count::DecisionsPassed => "decisions_passed",
            Count::DecisionsOther => "decisions_other",
            Count::PingsSent => "pings_sent",
            Count::StatsSent => "stats_sent",
            Count::SlowCut => "slow_clients_closed_as_slow_consumer",
            Count::SlowNotCut => "slow_clients_closed_otherwise_or_open",
            Count::Disconnects => "disconnects",
        }
    }
}

/// A latency histogram in µs, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 low, 3 digits): this
    // cannot fail, and the unit tests build one.
    #[allow(clippy::expect_used)]
    let h = Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds");
    h
}

/// Percentiles of a latency histogram, in ms.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Percentiles {
    /// Samples.
    pub(crate) count: u64,
    /// Mean.
    pub(crate) mean_ms: f64,
    /// Median.
    pub(crate) p50_ms: f64,
    /// 90th percentile.
    pub(crate) p90_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// 99.9th percentile.
    pub(crate) p999_ms: f64,
    /// Largest.
    pub(crate) max_ms: f64,
}

impl Percentiles {
    /// The percentiles of `h` (µs), `None` without samples.
    pub(crate) fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        })
    }
}

#[derive(Debug)]
struct Shard {
    received: Box<[AtomicU64]>,
    sent: Box<[AtomicU64]>,
    counts: Box<[AtomicU64]>,
    interval: Mutex<Vec<Histogram<u64>>>,
}

impl Shard {
    fn new() -> Shard {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Shard {
            received: zeros(TYPES),
            sent: zeros(TYPES),
            counts: zeros(Count::ALL.len()),
            interval: Mutex::new(Latency::ALL.iter().map(|_| histogram()).collect()),
        }
    }
}

/// Every counter at one moment; differences of two give a window's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// Messages received, by type index.
    pub(crate) received: Vec<u64>,
    /// Messages sent, by type index.
    pub(crate) sent: Vec<u64>,
    /// Events, by [`Count`] index.
    pub(crate) counts: Vec<u64>,
    /// `error` messages from the relay, by code.
    pub(crate) error_codes: BTreeMap<String, u64>,
    /// Client-side failures, by kind.
    pub(crate) error_kinds: BTreeMap<String, u64>,
}

impl Snapshot {
    /// `self - earlier`, field by field.
    pub(crate) fn since(&self, earlier: &Snapshot) -> Snapshot {
        let sub = |a: &[u64], b: &[u64]| {
            a.iter()
                .enumerate()
                .map(|(i, x)| x.saturating_sub(b.get(i).copied().unwrap_or(0)))
                .collect()
        };
        let sub_map = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            a.iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(b.get(k).copied().unwrap_or(0))))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        Snapshot {
            received: sub(&self.received, &earlier.received),
            sent: sub(&self.sent, &earlier.sent),
            counts: sub(&self.counts, &earlier.counts),
            error_codes: sub_map(&self.error_codes, &earlier.error_codes),
            error_kinds: sub_map(&self.error_kinds, &earlier.error_kinds),
        }
    }

    /// All messages received.
    pub(crate) fn received_total(&self) -> u64 {
        self.received.iter().sum()
    }

    /// One event counter.
    pub(crate) fn count(&self, c: Count) -> u64 {
        Count::ALL
            .iter()
            .position(|x| *x == c)
            .and_then(|i| self.counts.get(i).copied())
            .unwrap_or(0)
    }

    /// Messages received of one type.
    #[cfg(test)]
    pub(crate) fn received_of(&self, kind: MessageType) -> u64 {
        self.received.get(kind as usize).copied().unwrap_or(0)
    }

    /// All errors (relay codes and client-side kinds).
    pub(crate) fn errors_total(&self) -> u64 {
        self.error_codes.values().sum::<u64>() + self.error_kinds.values().sum::<u64>()
    }
}

/// Per-second latency figures from [`Metrics::collect`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Interval {
    /// Percentiles of each [`Latency`] recorded in the last interval.
    pub(crate) latency: Vec<Option<Percentiles>>,
}

impl Interval {
    /// The interval's figures for one latency.
    pub(crate) fn get(&self, l: Latency) -> Option<Percentiles> {
        Latency::ALL
            .iter()
            .position(|x| *x == l)
            .and_then(|i| self.latency.get(i).copied().flatten())
    }
}

/// Everything measured.
#[derive(Debug)]
pub(crate) struct Metrics {
    shards: Box<[Shard]>,
    recording: AtomicBool,
    window: Mutex<Vec<Histogram<u64>>>,
    error_codes: Mutex<BTreeMap<String, u64>>,
    error_kinds: Mutex<BTreeMap<String, u64>>,
    connected: AtomicI64,
    /// Set-up times (connect to room state); at most a few thousand a second, so unsharded.
    connect: Mutex<Histogram<u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            recording: AtomicBool::new(false),
            window: Mutex::new(Latency::ALL.iter().map(|_| histogram()).collect()),
            error_codes: Mutex::default(),
            error_kinds: Mutex::default(),
            connected: AtomicI64::new(0),
            connect: Mutex::new(histogram()),
        }
    }
}

impl Metrics {
    fn shard(&self, client: usize) -> &Shard {
        &self.shards[client % SHARDS]
    }

    /// A message of `kind` arrived at `client`.
    pub(crate) fn received(&self, client: usize, kind: MessageType) {
        if let Some(c) = self.shard(client).received.get(kind as usize) {
            c.fetch_add(1, RELAXED);
        }
    }

    /// `client` sent a message of `kind`.
    pub(crate) fn sent(&self, client: usize, kind: MessageType) {
        if let Some(c) = self.shard(client).sent.get(kind as usize) {
            c.fetch_add(1, RELAXED);
        }
    }

    /// An event at `client`.
    pub(crate) fn count(&self, client: usize, c: Count) {
        if let Some(i) = Count::ALL.iter().position(|x| *x == c) {
            self.shard(client).counts[i].fetch_add(1, RELAXED);
        }
    }

    /// A latency measured at `client`.
    pub(crate) fn latency(&self, client: usize, l: Latency, d: Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        if let (Some(i), Ok(mut h)) = (
            Latency::ALL.iter().position(|x| *x == l),
            self.shard(client).interval.lock(),
        ) {
            h[i].saturating_record(us);
        }
    }

    /// One client's set-up time (connect, hello, welcome, join, room state).
    pub(crate) fn connect_latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        if let Ok(mut h) = self.connect.lock() {
            h.saturating_record(us);
        }
    }

    /// The set-up times recorded since the last call.
    pub(crate) fn take_connect(&self) -> Option<Percentiles> {
        let mut h = self.connect.lock().ok()?;
        let p = Percentiles::of(&h);
        h.reset();
        p
    }

    /// An `error` message from the relay.
    pub(crate) fn error_code(&self, code: &str) {
        if let Ok(mut m) = self.error_codes.lock() {
            *m.entry(code.to_owned()).or_insert(0) += 1;
        }
    }

    /// A client-side failure (connect, send, unexpected close, ...).
    pub(crate) fn error_kind(&self, kind: impl Into<String>) {
        if let Ok(mut m) = self.error_kinds.lock() {
            *m.entry(kind.into()).or_insert(0) += 1;
        }
    }

    /// A client finished its set-up (`+1`) or lost its connection (`-1`).
    pub(crate) fn connected(&self, delta: i64) {
        self.connected.fetch_add(delta, RELAXED);
    }

    /// Clients connected now.
    pub(crate) fn connected_now(&self) -> u64 {
        u64::try_from(self.connected.load(RELAXED)).unwrap_or(0)
    }

    /// All counters now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let sum = |f: &dyn Fn(&Shard) -> &[AtomicU64], n: usize| -> Vec<u64> {
            (0..n)
                .map(|i| {
                    self.shards
                        .iter()
                        .map(|s| f(s).get(i).map_or(0, |a| a.load(RELAXED)))
                        .sum()
                })
                .collect()
        };
        Snapshot {
            received: sum(&|s| &s.received, TYPES),
            sent: sum(&|s| &s.sent, TYPES),
            counts: sum(&|s| &s.counts, Count::ALL.len()),
            error_codes: self
                .error_codes
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
            error_kinds: self
                .error_kinds
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }

    /// Drains the shards' interval histograms: into the window when one is open, and into the
    /// returned per-interval figures. Call about once a second.
    pub(crate) fn collect(&self) -> Interval {
        let mut merged: Vec<Histogram<u64>> = Latency::ALL.iter().map(|_| histogram()).collect();
        for shard in self.shards.iter() {
            if let Ok(mut hs) = shard.interval.lock() {
                for (m, h) in merged.iter_mut().zip(hs.iter_mut()) {
                    // Same bounds on both sides: adding cannot fail.
                    let _ = m.add(&*h);
                    h.reset();
                }
            }
        }
        if self.recording.load(RELAXED)
            && let Ok(mut window) = self.window.lock()
        {
            for (w, m) in window.iter_mut().zip(merged.iter()) {
                let _ = w.add(m);
            }
        }
        Interval {
            latency: merged.iter().map(Percentiles::of).collect(),
        }
    }

    /// Opens a measurement window: latencies from now on count.
    pub(crate) fn start_window(&self) {
        // What was recorded before belongs to the warm-up.
        let _ = self.collect();
        if let Ok(mut window) = self.window.lock() {
            window.iter_mut().for_each(Histogram::reset);
        }
        self.recording.store(true, RELAXED);
    }

    /// Closes the window; the percentiles of each [`Latency`] in it.
    pub(crate) fn end_window(&self) -> Vec<(Latency, Option<Percentiles>)> {
        let _ = self.collect();
        self.recording.store(false, RELAXED);
        let window = self.window.lock();
        Latency::ALL
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let p = window
                    .as_ref()
                    .ok()
                    .and_then(|w| w.get(i))
                    .and_then(Percentiles::of);
                (*l, p)
            })
            .collect()
    }

    /// Whether a measurement window is open.
    #[cfg(test)]
    pub(crate) fn recording(&self) -> bool {
        self.recording.load(RELAXED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = histogram();
        // 1..=1000 µs, once each.
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 0.5).abs() < 0.001, "{p:?}");
        assert!((p.p99_ms - 0.99).abs() < 0.001, "{p:?}");
        assert!((p.p999_ms - 0.999).abs() < 0.001, "{p:?}");
        assert!((p.max_ms - 1.0).abs() < 0.001, "{p:?}");
        assert!((p.mean_ms - 0.5005).abs() < 0.001, "{p:?}");
        assert_eq!(Percentiles::of(&histogram()), None);
    }

    #[test]
    fn a_tail_shows_in_p99_and_not_in_p50() {
        let mut h = histogram();
        for _ in 0..980 {
            h.record(200).unwrap();
        }
        for _ in 0..20 {
            h.record(15_000).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        assert!((p.p50_ms - 0.2).abs() < 0.001);
        assert!((p.p99_ms - 15.0).abs() < 0.02, "{p:?}");
    }

    #[test]
    fn windows_hold_only_what_was_recorded_while_open() {
        let m = Metrics::default();
        m.latency(0, Latency::Command, Duration::from_millis(50));
        m.start_window();
        m.latency(1, Latency::Command, Duration::from_micros(300));
        m.latency(17, Latency::Command, Duration::from_micros(300));
        let interval = m.collect();
        assert_eq!(interval.get(Latency::Command).map(|p| p.count), Some(2));
        m.latency(2, Latency::Rtt, Duration::from_secs(500));
        let window = m.end_window();
        let command = window[0].1.unwrap();
        assert_eq!(command.count, 2);
        assert!((command.max_ms - 0.3).abs() < 0.001);
        // Clamped at the top (within the histogram's 3 significant digits).
        let max = window[4].1.unwrap().max_ms;
        assert!((max - 120_000.0).abs() < 120.0, "{max}");
        m.connect_latency(Duration::from_millis(3));
        assert_eq!(m.take_connect().map(|p| p.count), Some(1));
        assert_eq!(m.take_connect(), None);
        m.latency(3, Latency::Command, Duration::from_millis(1));
        let _ = m.collect();
        assert!(!m.recording());
    }

    #[test]
    fn snapshots_subtract() {
        let m = Metrics::default();
        m.received(3, MessageType::StateUpdate);
        m.count(4, Count::ChatsSent);
        m.error_code("rate_limited");
        let a = m.snapshot();
        m.received(5, MessageType::StateUpdate);
        m.received(21, MessageType::Pong);
        m.error_code("rate_limited");
        m.error_kind("connect: refused");
        let d = m.snapshot().since(&a);
        assert_eq!(d.received_of(MessageType::StateUpdate), 1);
        assert_eq!(d.received_of(MessageType::Pong), 1);
        assert_eq!(d.received_total(), 2);
        assert_eq!(d.count(Count::ChatsSent), 0);
        assert_eq!(d.errors_total(), 2);
        assert_eq!(d.error_codes.get("rate_limited"), Some(&1));
    }
}
