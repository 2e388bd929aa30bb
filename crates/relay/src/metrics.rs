//! The relay's metrics: a fixed, lock-free registry and its Prometheus text rendering.
//!
//! Owns every counter, gauge and histogram the relay exports on `/metrics`, and turns them
//! into the Prometheus text exposition format (version 0.0.4). It must not know about
//! sockets, rooms or HTTP: callers report events (`message_in`, `observe_rtt_us`, ...) and
//! the HTTP layer serves whatever [`Metrics::render`] returns.
//!
//! Every update is a single relaxed atomic add or store on a field that exists from the
//! start, so the hot path never allocates, never locks and never hashes a label. That works
//! because every label set is closed and known at compile time: transports, limit classes,
//! message types (`MessageType::ALL`) and error codes (`ErrorCode::ALL` plus `other`).
//! Because every series exists up front, `render` prints all of them, zeros included, so a
//! dashboard sees each series from the relay's first scrape rather than from its first event.
//!
//! Relaxed ordering means a scrape is not an atomic snapshot across series: two counters
//! bumped together may be read one before and one after the bump. Prometheus tolerates that;
//! within one histogram `_count` is derived from the buckets read, so it always equals the
//! `+Inf` bucket.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use lockstep_proto::{ErrorCode, MessageType};

/// Counters only need atomicity, not ordering with other memory.
const RELAXED: Ordering = Ordering::Relaxed;

/// Number of message types, one counter slot each.
const TYPES: usize = MessageType::ALL.len();

/// Number of known error codes, one counter slot each (`Other` has its own).
const CODES: usize = ErrorCode::ALL.len();

// The counters index by `kind as usize`, which is only the position in `ALL` while the enums
// are declared in table order without explicit discriminants. Checked at compile time, so a
// reordering in `proto` breaks the build instead of mislabelling series.
const _: () = {
    let mut i = 0;
    while i < TYPES {
        assert!(MessageType::ALL[i] as usize == i);
        i += 1;
    }
    let mut i = 0;
    while i < CODES {
        assert!(ErrorCode::ALL[i] as usize == i);
        i += 1;
    }
};

/// One observation adds at most this much (one hour) to a histogram's sum, so a single absurd
/// value (a client reporting `u64::MAX`) cannot wrap the sum. It still counts in `+Inf`.
const MAX_OBSERVATION_US: u64 = 3_600_000_000;

/// The transport a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// WebTransport over HTTP/3.
    WebTransport,
    /// The WebSocket fallback.
    WebSocket,
}

impl TransportKind {
    /// Every transport, in rendering order.
    pub const ALL: [TransportKind; 2] = [TransportKind::WebTransport, TransportKind::WebSocket];

    /// The `transport` label value.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::WebTransport => "webtransport",
            TransportKind::WebSocket => "websocket",
        }
    }

    fn index(self) -> usize {
        match self {
            TransportKind::WebTransport => 0,
            TransportKind::WebSocket => 1,
        }
    }
}

/// The rate limit a client hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitClass {
    /// Control-stream messages.
    Control,
    /// Datagrams.
    Datagram,
    /// Chat lines and reactions.
    Chat,
}

impl LimitClass {
    /// Every class, in rendering order.
    pub const ALL: [LimitClass; 3] = [LimitClass::Control, LimitClass::Datagram, LimitClass::Chat];

    /// The `class` label value.
    pub fn label(self) -> &'static str {
        match self {
            LimitClass::Control => "control",
            LimitClass::Datagram => "datagram",
            LimitClass::Chat => "chat",
        }
    }

    fn index(self) -> usize {
        match self {
            LimitClass::Control => 0,
            LimitClass::Datagram => 1,
            LimitClass::Chat => 2,
        }
    }
}

/// A histogram bucket's upper bound: in microseconds for comparing, and as the exact `le`
/// label text in seconds (written out, so rendering never formats a float).
#[derive(Debug, Clone, Copy)]
struct Bound {
    us: u64,
    le: &'static str,
}

const fn bound(us: u64, le: &'static str) -> Bound {
    Bound { us, le }
}

/// Buckets for round-trip times and clock-offset errors: 100 µs to 2.5 s.
const LATENCY_BOUNDS: [Bound; 14] = [
    bound(100, "0.0001"),
    bound(250, "0.00025"),
    bound(500, "0.0005"),
    bound(1_000, "0.001"),
    bound(2_500, "0.0025"),
    bound(5_000, "0.005"),
    bound(10_000, "0.01"),
    bound(25_000, "0.025"),
    bound(50_000, "0.05"),
    bound(100_000, "0.1"),
    bound(250_000, "0.25"),
    bound(500_000, "0.5"),
    bound(1_000_000, "1"),
    bound(2_500_000, "2.5"),
];

/// Buckets for absolute playback drift: 0.5 ms to 5 s.
const DRIFT_BOUNDS: [Bound; 13] = [
    bound(500, "0.0005"),
    bound(1_000, "0.001"),
    bound(2_000, "0.002"),
    bound(5_000, "0.005"),
    bound(10_000, "0.01"),
    bound(20_000, "0.02"),
    bound(50_000, "0.05"),
    bound(100_000, "0.1"),
    bound(200_000, "0.2"),
    bound(500_000, "0.5"),
    bound(1_000_000, "1"),
    bound(2_000_000, "2"),
    bound(5_000_000, "5"),
];

/// A histogram of durations in microseconds, rendered in seconds.
///
/// Each bucket counts only the observations that landed in it (not cumulatively), so an
/// observation is one add; `render` accumulates.
#[derive(Debug)]
struct Histogram<const N: usize> {
    bounds: &'static [Bound; N],
    buckets: [AtomicU64; N],
    /// Observations above the last bound.
    overflow: AtomicU64,
    sum_us: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    const fn new(bounds: &'static [Bound; N]) -> Self {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            overflow: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    fn observe(&self, us: u64) {
        self.sum_us.fetch_add(us.min(MAX_OBSERVATION_US), RELAXED);
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            if us <= bound.us {
                bucket.fetch_add(1, RELAXED);
                return;
            }
        }
        self.overflow.fetch_add(1, RELAXED);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) -> fmt::Result {
        header(out, name, help, "histogram")?;
        let mut cumulative = 0u64;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative = cumulative.wrapping_add(bucket.load(RELAXED));
            writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", bound.le)?;
        }
        cumulative = cumulative.wrapping_add(self.overflow.load(RELAXED));
        writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}")?;
        let sum = self.sum_us.load(RELAXED);
        writeln!(out, "{name}_sum {}.{:06}", sum / 1_000_000, sum % 1_000_000)?;
        writeln!(out, "{name}_count {cumulative}")
    }
}

/// The relay's metrics registry; share it as `Arc<Metrics>`.
///
/// Every method takes `&self` and is a handful of relaxed atomic operations.
#[derive(Debug)]
pub struct Metrics {
    connections: [AtomicI64; 2],
    connections_total: [AtomicU64; 2],
    rooms: AtomicU64,
    members: AtomicU64,
    messages_in: [AtomicU64; TYPES],
    messages_out: [AtomicU64; TYPES],
    dropped: [AtomicU64; TYPES],
    coalesced: [AtomicU64; TYPES],
    errors: [AtomicU64; CODES],
    errors_other: AtomicU64,
    rtt: Histogram<14>,
    clock_offset_error: Histogram<14>,
    drift: Histogram<13>,
    seeks: AtomicU64,
    rate_changes: AtomicU64,
    proposals: AtomicU64,
    votes: AtomicU64,
    auth_failures: AtomicU64,
    rate_limited: [AtomicU64; 3],
    slow_consumer_disconnects: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Adds `n` to the slot `index`, if it exists (every caller passes an in-range index).
fn add_at<const N: usize>(slots: &[AtomicU64; N], index: usize, n: u64) {
    if let Some(slot) = slots.get(index) {
        slot.fetch_add(n, RELAXED);
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a family.
fn header(out: &mut String, name: &str, help: &str, kind: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// Writes a family without labels.
fn write_single(out: &mut String, name: &str, help: &str, kind: &str, value: u64) -> fmt::Result {
    header(out, name, help, kind)?;
    writeln!(out, "{name} {value}")
}

/// Writes a counter family with one series per message type, labelled by wire name.
fn write_by_type(
    out: &mut String,
    name: &str,
    help: &str,
    slots: &[AtomicU64; TYPES],
) -> fmt::Result {
    header(out, name, help, "counter")?;
    for (kind, slot) in MessageType::ALL.iter().zip(slots) {
        writeln!(
            out,
            "{name}{{type=\"{}\"}} {}",
            kind.name(),
            slot.load(RELAXED)
        )?;
    }
    Ok(())
}

impl Metrics {
    /// A registry with every series at zero.
    pub const fn new() -> Self {
        Metrics {
            connections: [const { AtomicI64::new(0) }; 2],
            connections_total: [const { AtomicU64::new(0) }; 2],
            rooms: AtomicU64::new(0),
            members: AtomicU64::new(0),
            messages_in: [const { AtomicU64::new(0) }; TYPES],
            messages_out: [const { AtomicU64::new(0) }; TYPES],
            dropped: [const { AtomicU64::new(0) }; TYPES],
            coalesced: [const { AtomicU64::new(0) }; TYPES],
            errors: [const { AtomicU64::new(0) }; CODES],
            errors_other: AtomicU64::new(0),
            rtt: Histogram::new(&LATENCY_BOUNDS),
            clock_offset_error: Histogram::new(&LATENCY_BOUNDS),
            drift: Histogram::new(&DRIFT_BOUNDS),
            seeks: AtomicU64::new(0),
            rate_changes: AtomicU64::new(0),
            proposals: AtomicU64::new(0),
            votes: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            rate_limited: [const { AtomicU64::new(0) }; 3],
            slow_consumer_disconnects: AtomicU64::new(0),
        }
    }

    /// A connection opened: raises `lockstep_connections` and counts it in
    /// `lockstep_connections_total`.
    pub fn connection_opened(&self, t: TransportKind) {
        if let Some(open) = self.connections.get(t.index()) {
            open.fetch_add(1, RELAXED);
        }
        add_at(&self.connections_total, t.index(), 1);
    }

    /// A connection closed: lowers `lockstep_connections`. Call once per `connection_opened`.
    pub fn connection_closed(&self, t: TransportKind) {
        if let Some(open) = self.connections.get(t.index()) {
            open.fetch_sub(1, RELAXED);
        }
    }

    /// Sets `lockstep_rooms`, the number of open rooms.
    pub fn set_rooms(&self, n: u64) {
        self.rooms.store(n, RELAXED);
    }

    /// Sets `lockstep_members`, the number of members across all rooms.
    pub fn set_members(&self, n: u64) {
        self.members.store(n, RELAXED);
    }

    /// A message of this type was received and decoded.
    pub fn message_in(&self, kind: MessageType) {
        add_at(&self.messages_in, kind as usize, 1);
    }

    /// `copies` messages of this type were sent (one per recipient of a broadcast).
    pub fn message_out(&self, kind: MessageType, copies: u64) {
        add_at(&self.messages_out, kind as usize, copies);
    }

    /// An outgoing message of this type was dropped (a full datagram queue).
    pub fn dropped(&self, kind: MessageType) {
        add_at(&self.dropped, kind as usize, 1);
    }

    /// An outgoing message of this type was replaced by a newer one before it was sent.
    pub fn coalesced(&self, kind: MessageType) {
        add_at(&self.coalesced, kind as usize, 1);
    }

    /// A client's input failed with this code.
    pub fn decode_error(&self, code: ErrorCode) {
        match code {
            ErrorCode::Other => {
                self.errors_other.fetch_add(1, RELAXED);
            }
            known => add_at(&self.errors, known as usize, 1),
        }
    }

    /// Records a measured round-trip time, in microseconds.
    pub fn observe_rtt_us(&self, us: u64) {
        self.rtt.observe(us);
    }

    /// Records the error bound of a clock-offset estimate, in microseconds.
    pub fn observe_clock_offset_error_us(&self, us: u64) {
        self.clock_offset_error.observe(us);
    }

    /// Records a member's playback drift, in microseconds; the sign is dropped.
    pub fn observe_drift_us(&self, us: i64) {
        self.drift.observe(us.unsigned_abs());
    }

    /// A seek was applied.
    pub fn seek(&self) {
        self.seeks.fetch_add(1, RELAXED);
    }

    /// A rate change was applied.
    pub fn rate_change(&self) {
        self.rate_changes.fetch_add(1, RELAXED);
    }

    /// A proposal was opened.
    pub fn proposal(&self) {
        self.proposals.fetch_add(1, RELAXED);
    }

    /// A vote was cast.
    pub fn vote(&self) {
        self.votes.fetch_add(1, RELAXED);
    }

    /// A token or password check failed.
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, RELAXED);
    }

    /// A client hit this rate limit.
    pub fn rate_limited(&self, c: LimitClass) {
        add_at(&self.rate_limited, c.index(), 1);
    }

    /// A client was disconnected because its control queue overflowed.
    pub fn slow_consumer_disconnect(&self) {
        self.slow_consumer_disconnects.fetch_add(1, RELAXED);
    }

    /// Every family in Prometheus text exposition format 0.0.4, each series present.
    ///
    /// Serve it with `Content-Type: text/plain; version=0.0.4`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a `String` cannot fail; the `Result` only comes from `fmt::Write`.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> fmt::Result {
        let name = "lockstep_connections";
        header(out, name, "Open client connections.", "gauge")?;
        for (t, open) in TransportKind::ALL.iter().zip(&self.connections) {
            let value = open.load(RELAXED);
            writeln!(out, "{name}{{transport=\"{}\"}} {value}", t.label())?;
        }

        let name = "lockstep_connections_total";
        header(out, name, "Client connections accepted.", "counter")?;
        for (t, total) in TransportKind::ALL.iter().zip(&self.connections_total) {
            let value = total.load(RELAXED);
            writeln!(out, "{name}{{transport=\"{}\"}} {value}", t.label())?;
        }

        write_single(
            out,
            "lockstep_rooms",
            "Open rooms.",
            "gauge",
            self.rooms.load(RELAXED),
        )?;
        write_single(
            out,
            "lockstep_members",
            "Members across all rooms.",
            "gauge",
            self.members.load(RELAXED),
        )?;

        write_by_type(
            out,
            "lockstep_messages_in_total",
            "Messages received from clients, by type.",
            &self.messages_in,
        )?;
        write_by_type(
            out,
            "lockstep_messages_out_total",
            "Messages sent to clients, by type (one per recipient).",
            &self.messages_out,
        )?;
        write_by_type(
            out,
            "lockstep_dropped_total",
            "Outgoing messages dropped from a full queue, by type.",
            &self.dropped,
        )?;
        write_by_type(
            out,
            "lockstep_coalesced_total",
            "Outgoing messages replaced by a newer one before sending, by type.",
            &self.coalesced,
        )?;

        let name = "lockstep_errors_total";
        header(out, name, "Client errors, by wire error code.", "counter")?;
        for (code, count) in ErrorCode::ALL.iter().zip(&self.errors) {
            let value = count.load(RELAXED);
            writeln!(out, "{name}{{code=\"{}\"}} {value}", code.name())?;
        }
        let other = self.errors_other.load(RELAXED);
        writeln!(
            out,
            "{name}{{code=\"{}\"}} {other}",
            ErrorCode::Other.name()
        )?;

        self.rtt.write(
            out,
            "lockstep_rtt_seconds",
            "Round-trip time of clock probes.",
        )?;
        self.clock_offset_error.write(
            out,
            "lockstep_clock_offset_error_seconds",
            "Error bound of clients' clock-offset estimates.",
        )?;
        self.drift.write(
            out,
            "lockstep_drift_seconds",
            "Absolute playback drift reported by members.",
        )?;

        let singles = [
            ("lockstep_seeks_total", "Seeks applied.", &self.seeks),
            (
                "lockstep_rate_changes_total",
                "Rate changes applied.",
                &self.rate_changes,
            ),
            (
                "lockstep_proposals_total",
                "Proposals opened.",
                &self.proposals,
            ),
            ("lockstep_votes_total", "Votes cast.", &self.votes),
            (
                "lockstep_auth_failures_total",
                "Failed token or password checks.",
                &self.auth_failures,
            ),
        ];
        for (name, help, count) in singles {
            write_single(out, name, help, "counter", count.load(RELAXED))?;
        }

        let name = "lockstep_rate_limited_total";
        header(out, name, "Rate limits hit, by limit class.", "counter")?;
        for (class, count) in LimitClass::ALL.iter().zip(&self.rate_limited) {
            let value = count.load(RELAXED);
            writeln!(out, "{name}{{class=\"{}\"}} {value}", class.label())?;
        }

        write_single(
            out,
            "lockstep_slow_consumer_disconnects_total",
            "Clients disconnected because their control queue overflowed.",
            "counter",
            self.slow_consumer_disconnects.load(RELAXED),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;

    use super::*;

    /// Every family and its Prometheus type.
    const FAMILIES: &[(&str, &str)] = &[
        ("lockstep_connections", "gauge"),
        ("lockstep_connections_total", "counter"),
        ("lockstep_rooms", "gauge"),
        ("lockstep_members", "gauge"),
        ("lockstep_messages_in_total", "counter"),
        ("lockstep_messages_out_total", "counter"),
        ("lockstep_dropped_total", "counter"),
        ("lockstep_coalesced_total", "counter"),
        ("lockstep_errors_total", "counter"),
        ("lockstep_rtt_seconds", "histogram"),
        ("lockstep_clock_offset_error_seconds", "histogram"),
        ("lockstep_drift_seconds", "histogram"),
        ("lockstep_seeks_total", "counter"),
        ("lockstep_rate_changes_total", "counter"),
        ("lockstep_proposals_total", "counter"),
        ("lockstep_votes_total", "counter"),
        ("lockstep_auth_failures_total", "counter"),
        ("lockstep_rate_limited_total", "counter"),
        ("lockstep_slow_consumer_disconnects_total", "counter"),
    ];

    /// One parsed sample line.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    fn is_name_start(c: char) -> bool {
        c.is_ascii_alphabetic() || c == '_' || c == ':'
    }

    fn is_name_char(c: char) -> bool {
        is_name_start(c) || c.is_ascii_digit()
    }

    /// Parses `name{k="v",...} value` or `name value`; `Err` says what is wrong.
    fn parse_sample(line: &str) -> Result<Sample, String> {
        let mut chars = line.char_indices().peekable();
        let mut name = String::new();
        while let Some(&(_, c)) = chars.peek() {
            let ok = if name.is_empty() {
                is_name_start(c)
            } else {
                is_name_char(c)
            };
            if !ok {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            return Err(format!("no metric name: {line:?}"));
        }
        let mut labels = Vec::new();
        if let Some(&(_, '{')) = chars.peek() {
            chars.next();
            loop {
                let mut key = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if !is_name_char(c) {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                if key.is_empty() || !key.starts_with(is_name_start) {
                    return Err(format!("bad label name: {line:?}"));
                }
                if chars.next().map(|(_, c)| c) != Some('=') {
                    return Err(format!("expected '=': {line:?}"));
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("expected '\"': {line:?}"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        None => return Err(format!("unterminated label value: {line:?}")),
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c @ ('\\' | '"')) => value.push(c),
                            _ => return Err(format!("bad escape: {line:?}")),
                        },
                        Some(c) => value.push(c),
                    }
                }
                labels.push((key, value));
                match chars.next().map(|(_, c)| c) {
                    Some(',') => continue,
                    Some('}') => break,
                    _ => return Err(format!("expected ',' or '}}': {line:?}")),
                }
            }
        }
        if chars.next().map(|(_, c)| c) != Some(' ') {
            return Err(format!("expected one space before the value: {line:?}"));
        }
        let rest: String = chars.map(|(_, c)| c).collect();
        let value = match rest.as_str() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse::<f64>()
                .map_err(|e| format!("bad value {v:?} ({e}): {line:?}"))?,
        };
        Ok(Sample {
            name,
            labels,
            value,
        })
    }

    /// Parses a whole exposition, checking every line; comments must be HELP or TYPE.
    fn parse(text: &str) -> Vec<Sample> {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                assert!(
                    line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                    "unexpected comment: {line:?}"
                );
                continue;
            }
            assert!(!line.is_empty(), "empty line in exposition");
            match parse_sample(line) {
                Ok(sample) => samples.push(sample),
                Err(e) => panic!("{e}"),
            }
        }
        samples
    }

    /// The value of the one series with this name and labels.
    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = parse(text)
            .into_iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
            .collect();
        assert_eq!(found.len(), 1, "series {name}{labels:?} in:\n{text}");
        found[0]
    }

    #[test]
    fn every_family_has_help_and_type() {
        let text = Metrics::new().render();
        for (name, kind) in FAMILIES {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} ")) && l.len() > name.len() + 8),
                "no HELP for {name}"
            );
            assert!(
                text.lines().any(|l| l == format!("# TYPE {name} {kind}")),
                "no TYPE {kind} for {name}"
            );
        }
        // No family is rendered that the list above does not know.
        let typed = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(typed, FAMILIES.len());
    }

    #[test]
    fn every_sample_parses_and_belongs_to_a_typed_family() {
        let text = Metrics::new().render();
        let mut typed: HashMap<&str, &str> = HashMap::new();
        let mut seen = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                    panic!("bad TYPE line {line:?}");
                };
                assert!(typed.insert(name, kind).is_none(), "{name} typed twice");
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line).unwrap_or_else(|e| panic!("{e}"));
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = sample.name.strip_suffix(suffix)?;
                    (typed.get(base) == Some(&"histogram")).then_some(base)
                })
                .unwrap_or(sample.name.as_str());
            assert!(
                typed.contains_key(family),
                "{line:?} comes before its TYPE line or has none"
            );
            assert_eq!(sample.value, 0.0, "fresh registry is not zero: {line:?}");
            let series = line.rsplit_once(' ').map(|(s, _)| s.to_owned());
            assert!(seen.insert(series), "duplicate series {line:?}");
        }
    }

    #[test]
    fn the_parser_rejects_malformed_lines() {
        for bad in [
            "",
            "1abc 1",
            "abc",
            "abc  1",
            "abc one",
            "abc{x=\"1\" 1",
            "abc{x=1} 1",
            "abc{=\"1\"} 1",
        ] {
            assert!(parse_sample(bad).is_err(), "accepted {bad:?}");
        }
        let ok = parse_sample("a_b:c{x=\"1\",y=\"q\\\"\"} 2.5").unwrap();
        assert_eq!(ok.name, "a_b:c");
        assert_eq!(ok.labels.len(), 2);
        assert_eq!(ok.value, 2.5);
        assert_eq!(parse_sample("x +Inf").unwrap().value, f64::INFINITY);
    }

    #[test]
    fn every_label_value_is_present_with_its_wire_name() {
        let text = Metrics::new().render();
        let samples = parse(&text);
        for family in [
            "lockstep_messages_in_total",
            "lockstep_messages_out_total",
            "lockstep_dropped_total",
            "lockstep_coalesced_total",
        ] {
            let types: Vec<&str> = samples
                .iter()
                .filter(|s| s.name == family)
                .map(|s| s.labels[0].1.as_str())
                .collect();
            let expected: Vec<&str> = MessageType::ALL.iter().map(|t| t.name()).collect();
            assert_eq!(types, expected, "{family}");
        }
        let codes: Vec<&str> = samples
            .iter()
            .filter(|s| s.name == "lockstep_errors_total")
            .map(|s| s.labels[0].1.as_str())
            .collect();
        let mut expected: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        expected.push("other");
        assert_eq!(codes, expected);

        for t in ["webtransport", "websocket"] {
            value(&text, "lockstep_connections", &[("transport", t)]);
            value(&text, "lockstep_connections_total", &[("transport", t)]);
        }
        for c in ["control", "datagram", "chat"] {
            value(&text, "lockstep_rate_limited_total", &[("class", c)]);
        }
        value(
            &text,
            "lockstep_messages_in_total",
            &[("type", "state_update")],
        );
        value(&text, "lockstep_errors_total", &[("code", "rate_limited")]);
    }

    #[test]
    fn indices_are_positions_in_all() {
        for (i, kind) in MessageType::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
        }
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i);
        }
        for (i, t) in TransportKind::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
        for (i, c) in LimitClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn counters_count() {
        let m = Metrics::new();
        m.message_in(MessageType::Ping);
        m.message_in(MessageType::Ping);
        m.message_in(MessageType::Hello);
        m.message_out(MessageType::StateUpdate, 7);
        m.message_out(MessageType::StateUpdate, 3);
        m.dropped(MessageType::StateUpdate);
        m.coalesced(MessageType::StateUpdate);
        m.coalesced(MessageType::StateUpdate);
        m.decode_error(ErrorCode::Malformed);
        m.decode_error(ErrorCode::Internal);
        m.decode_error(ErrorCode::Other);
        m.decode_error(ErrorCode::Other);
        m.seek();
        m.rate_change();
        m.rate_change();
        m.proposal();
        m.vote();
        m.vote();
        m.vote();
        m.auth_failure();
        m.rate_limited(LimitClass::Chat);
        m.rate_limited(LimitClass::Chat);
        m.rate_limited(LimitClass::Datagram);
        m.slow_consumer_disconnect();
        let text = m.render();

        let by_type = |name: &str, t: &str| value(&text, name, &[("type", t)]);
        assert_eq!(by_type("lockstep_messages_in_total", "ping"), 2.0);
        assert_eq!(by_type("lockstep_messages_in_total", "hello"), 1.0);
        assert_eq!(by_type("lockstep_messages_in_total", "pong"), 0.0);
        assert_eq!(by_type("lockstep_messages_out_total", "state_update"), 10.0);
        assert_eq!(by_type("lockstep_dropped_total", "state_update"), 1.0);
        assert_eq!(by_type("lockstep_coalesced_total", "state_update"), 2.0);
        let code = |c: &str| value(&text, "lockstep_errors_total", &[("code", c)]);
        assert_eq!(code("malformed"), 1.0);
        assert_eq!(code("internal"), 1.0);
        assert_eq!(code("other"), 2.0);
        assert_eq!(code("too_large"), 0.0);
        assert_eq!(value(&text, "lockstep_seeks_total", &[]), 1.0);
        assert_eq!(value(&text, "lockstep_rate_changes_total", &[]), 2.0);
        assert_eq!(value(&text, "lockstep_proposals_total", &[]), 1.0);
        assert_eq!(value(&text, "lockstep_votes_total", &[]), 3.0);
        assert_eq!(value(&text, "lockstep_auth_failures_total", &[]), 1.0);
        let class = |c: &str| value(&text, "lockstep_rate_limited_total", &[("class", c)]);
        assert_eq!(class("chat"), 2.0);
        assert_eq!(class("datagram"), 1.0);
        assert_eq!(class("control"), 0.0);
        assert_eq!(
            value(&text, "lockstep_slow_consumer_disconnects_total", &[]),
            1.0
        );
    }

    #[test]
    fn gauges_go_up_and_down() {
        let m = Metrics::default();
        m.connection_opened(TransportKind::WebSocket);
        m.connection_opened(TransportKind::WebSocket);
        m.connection_opened(TransportKind::WebTransport);
        m.connection_closed(TransportKind::WebSocket);
        m.set_rooms(5);
        m.set_members(12);
        m.set_rooms(3);
        m.set_members(0);
        let text = m.render();
        let open = |t: &str| value(&text, "lockstep_connections", &[("transport", t)]);
        let total = |t: &str| value(&text, "lockstep_connections_total", &[("transport", t)]);
        assert_eq!(open("websocket"), 1.0);
        assert_eq!(open("webtransport"), 1.0);
        assert_eq!(total("websocket"), 2.0);
        assert_eq!(total("webtransport"), 1.0);
        assert_eq!(value(&text, "lockstep_rooms", &[]), 3.0);
        assert_eq!(value(&text, "lockstep_members", &[]), 0.0);

        m.connection_closed(TransportKind::WebSocket);
        m.connection_closed(TransportKind::WebTransport);
        let text = m.render();
        assert_eq!(
            value(&text, "lockstep_connections", &[("transport", "websocket")]),
            0.0
        );
        assert_eq!(
            value(
                &text,
                "lockstep_connections_total",
                &[("transport", "websocket")]
            ),
            2.0
        );
    }

    /// The buckets of a histogram as `(le, cumulative count)`, in rendering order.
    fn buckets(text: &str, name: &str) -> Vec<(String, f64)> {
        let bucket = format!("{name}_bucket");
        parse(text)
            .into_iter()
            .filter(|s| s.name == bucket)
            .map(|s| {
                assert_eq!(s.labels.len(), 1);
                assert_eq!(s.labels[0].0, "le");
                (s.labels[0].1.clone(), s.value)
            })
            .collect()
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        for us in [50, 100, 101, 3_000_000] {
            m.observe_rtt_us(us);
        }
        m.observe_clock_offset_error_us(2_000);
        m.observe_drift_us(-1_500);
        m.observe_drift_us(1_500);
        m.observe_drift_us(10_000_000);
        let text = m.render();

        let rtt = buckets(&text, "lockstep_rtt_seconds");
        let le: Vec<&str> = rtt.iter().map(|(le, _)| le.as_str()).collect();
        assert_eq!(
            le,
            [
                "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                "0.1", "0.25", "0.5", "1", "2.5", "+Inf"
            ]
        );
        // Bounds are inclusive: 100 µs lands in le="0.0001".
        assert_eq!(rtt[0].1, 2.0);
        assert_eq!(rtt[1].1, 3.0);
        assert_eq!(rtt[13].1, 3.0);
        assert_eq!(rtt[14].1, 4.0);
        assert_eq!(value(&text, "lockstep_rtt_seconds_count", &[]), 4.0);
        assert_eq!(value(&text, "lockstep_rtt_seconds_sum", &[]), 3.000251);

        let offset = buckets(&text, "lockstep_clock_offset_error_seconds");
        assert_eq!(offset[3].1, 0.0);
        assert_eq!(offset[4], ("0.0025".to_owned(), 1.0));

        let drift = buckets(&text, "lockstep_drift_seconds");
        let le: Vec<&str> = drift.iter().map(|(le, _)| le.as_str()).collect();
        assert_eq!(
            le,
            [
                "0.0005", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5",
                "1", "2", "5", "+Inf"
            ]
        );
        assert_eq!(drift[1].1, 0.0);
        assert_eq!(drift[2].1, 2.0, "negative drift counts by magnitude");
        assert_eq!(drift[12].1, 2.0);
        assert_eq!(drift[13].1, 3.0);
        assert_eq!(value(&text, "lockstep_drift_seconds_sum", &[]), 10.003);

        for (name, _) in FAMILIES.iter().filter(|(_, kind)| *kind == "histogram") {
            let b = buckets(&text, name);
            assert!(
                b.windows(2).all(|w| w[0].1 <= w[1].1),
                "{name} not cumulative"
            );
            let inf = b.last().map(|(_, v)| *v);
            let count = value(&text, &format!("{name}_count"), &[]);
            assert_eq!(inf, Some(count), "{name}: _count differs from +Inf");
            let bounds: Vec<f64> = b.iter().map(|(le, _)| le.parse().unwrap()).collect();
            assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{name} bounds");
        }
    }

    #[test]
    fn bound_labels_match_their_microseconds() {
        for b in LATENCY_BOUNDS.iter().chain(&DRIFT_BOUNDS) {
            let seconds: f64 = b.le.parse().unwrap();
            assert_eq!((seconds * 1e6).round() as u64, b.us, "{}", b.le);
        }
    }

    #[test]
    fn absurd_observations_do_not_wrap_the_sum() {
        let m = Metrics::new();
        m.observe_rtt_us(u64::MAX);
        m.observe_rtt_us(u64::MAX);
        m.observe_drift_us(i64::MIN);
        let text = m.render();
        assert_eq!(value(&text, "lockstep_rtt_seconds_sum", &[]), 7200.0);
        assert_eq!(value(&text, "lockstep_rtt_seconds_count", &[]), 2.0);
        assert_eq!(value(&text, "lockstep_drift_seconds_sum", &[]), 3600.0);
        assert_eq!(
            value(&text, "lockstep_drift_seconds_bucket", &[("le", "+Inf")]),
            1.0
        );
    }

    #[test]
    fn concurrent_updates_add_up() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 10_000;
        let m = Arc::new(Metrics::new());
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        m.message_in(MessageType::Ping);
                        m.message_out(MessageType::Pong, 2);
                        m.connection_opened(TransportKind::WebTransport);
                        m.rate_limited(LimitClass::Datagram);
                        m.decode_error(ErrorCode::Other);
                        m.observe_rtt_us(i % 3_000);
                        m.observe_drift_us(-1);
                        m.vote();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let total = (THREADS * PER_THREAD) as f64;
        let text = m.render();
        let ty = |name: &str, t: &str| value(&text, name, &[("type", t)]);
        assert_eq!(ty("lockstep_messages_in_total", "ping"), total);
        assert_eq!(ty("lockstep_messages_out_total", "pong"), 2.0 * total);
        assert_eq!(
            value(
                &text,
                "lockstep_connections",
                &[("transport", "webtransport")]
            ),
            total
        );
        assert_eq!(
            value(
                &text,
                "lockstep_connections_total",
                &[("transport", "webtransport")]
            ),
            total
        );
        assert_eq!(
            value(
                &text,
                "lockstep_rate_limited_total",
                &[("class", "datagram")]
            ),
            total
        );
        assert_eq!(
            value(&text, "lockstep_errors_total", &[("code", "other")]),
            total
        );
        assert_eq!(value(&text, "lockstep_votes_total", &[]), total);
        assert_eq!(value(&text, "lockstep_rtt_seconds_count", &[]), total);
        assert_eq!(value(&text, "lockstep_drift_seconds_count", &[]), total);
        let rtt_sum_us: u64 = THREADS * (0..PER_THREAD).map(|i| i % 3_000).sum::<u64>();
        assert_eq!(
            value(&text, "lockstep_rtt_seconds_sum", &[]),
            rtt_sum_us as f64 / 1e6
        );
    }
}
