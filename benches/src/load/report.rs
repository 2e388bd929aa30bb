//! Results: what one measurement window showed, the RSS-per-client fit and the ceiling over
//! steps, the human table, and the JSON shape.
//!
//! Definitions (also in the JSON's `method`):
//!
//! - **Deliveries**: every message any client received during the window, counted by type;
//!   per second is the count over the window's length.
//! - **Command latency**: host sends a command, a member receives the first copy of the
//!   timeline it produced (repeats ignored), one sample per member per command; the host is a
//!   member too.
//! - **Commands/s**: commands whose timeline came back to their host, over the window.
//! - **Relay CPU per delivery**: the relay's user + system CPU time in the window over the
//!   deliveries in the window.
//! - **RSS per client** (steps): the slope of the relay's RSS over the clients connected, by
//!   least squares over the steps.
//! - **Ceiling** (steps): the largest step that held all its clients with p99 within the limit,
//!   before the first step that did not.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use lockstep_proto::MessageType;
use serde::Serialize;
use serde_json::json;

use super::cli::{Args, ScenarioKind, StepLoad, TransportMix};
use super::metrics::{Count, Latency, Percentiles, Snapshot};
use super::monitor::Point;
use super::relay::{self, Target};
use super::scenario::Plan;
use super::{Context, Error, Result};
use crate::number::thousands;

/// A step counts as holding its clients when at least this share was set up.
pub(crate) const HELD_SHARE: f64 = 0.99;

/// How the connect phase of a step went.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct ConnectSummary {
    /// Clients started.
    pub(crate) attempted: usize,
    /// Clients in their room.
    pub(crate) joined: usize,
    /// Clients that failed (see the errors by kind).
    pub(crate) failed: usize,
    /// Wall time of the phase, seconds.
    pub(crate) wall_s: f64,
    /// Clients set up per second.
    pub(crate) per_sec: f64,
    /// Set-up time per client: connect, hello, welcome, join, room state.
    pub(crate) latency: Option<Percentiles>,
    /// `error` messages from the relay during the phase, by code.
    pub(crate) errors_by_code: BTreeMap<String, u64>,
    /// Client-side failures during the phase, by kind.
    pub(crate) errors_by_kind: BTreeMap<String, u64>,
}

/// A process over a window.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct ProcWindow {
    /// CPU time used in the window, seconds.
    pub(crate) cpu_s: f64,
    /// CPU use, percent of one core.
    pub(crate) cpu_pct: f64,
    /// RSS at the end of the window, KiB.
    pub(crate) rss_kb: u64,
    /// Peak RSS of the process so far, KiB.
    pub(crate) peak_rss_kb: u64,
    /// Threads.
    pub(crate) threads: u64,
}

/// What the relay's own counters (`/metrics`) moved by during the window.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct RelayCounters {
    /// Messages it queued for clients (all types).
    pub(crate) messages_out: f64,
    /// Messages it received from clients.
    pub(crate) messages_in: f64,
    /// Messages it dropped (pongs past their queue, ...).
    pub(crate) dropped: f64,
    /// Timelines and member stats replaced by a newer one in a client's queue.
    pub(crate) coalesced: f64,
    /// Clients it cut as slow consumers.
    pub(crate) slow_consumer_disconnects: f64,
    /// `error` messages it sent.
    pub(crate) errors: f64,
}

impl RelayCounters {
    /// Sums the `/metrics` values these fields cover.
    pub(crate) fn from_values(values: &[(String, f64)]) -> RelayCounters {
        let sum = |prefix: &str| {
            values
                .iter()
                .filter(|(n, _)| n == prefix || n.starts_with(&format!("{prefix}{{")))
                .map(|(_, v)| v)
                .sum()
        };
        RelayCounters {
            messages_out: sum("lockstep_messages_out_total"),
            messages_in: sum("lockstep_messages_in_total"),
            dropped: sum("lockstep_dropped_total"),
            coalesced: sum("lockstep_coalesced_total"),
            slow_consumer_disconnects: sum("lockstep_slow_consumer_disconnects_total"),
            errors: sum("lockstep_errors_total"),
        }
    }

    /// `self - earlier`.
    pub(crate) fn since(&self, earlier: &RelayCounters) -> RelayCounters {
        RelayCounters {
            messages_out: self.messages_out - earlier.messages_out,
            messages_in: self.messages_in - earlier.messages_in,
            dropped: self.dropped - earlier.dropped,
            coalesced: self.coalesced - earlier.coalesced,
            slow_consumer_disconnects: self.slow_consumer_disconnects
                - earlier.slow_consumer_disconnects,
            errors: self.errors - earlier.errors,
        }
    }
}

/// One measurement window (a whole run, or one step).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct StepResult {
    /// Clients this step aimed at.
    pub(crate) clients_target: usize,
    /// Clients connected at the end of the window.
    pub(crate) clients_connected: u64,
    /// Rooms in use.
    pub(crate) rooms: usize,
    /// Its connect phase.
    pub(crate) connect: ConnectSummary,
    /// Whether every client of the step was set up.
    pub(crate) held: bool,
    /// Window length, seconds.
    pub(crate) window_s: f64,
    /// Latencies, by name.
    pub(crate) latency: BTreeMap<&'static str, Percentiles>,
    /// Messages received per second, all types.
    pub(crate) deliveries_per_s: f64,
    /// Messages received per second, by type.
    pub(crate) deliveries_by_type: BTreeMap<&'static str, f64>,
    /// Messages sent by the clients per second, all types.
    pub(crate) sent_per_s: f64,
    /// Messages sent per second, by type.
    pub(crate) sent_by_type: BTreeMap<&'static str, f64>,
    /// Commands applied per second (all rooms).
    pub(crate) commands_per_s: f64,
    /// Event counters in the window.
    pub(crate) counts: BTreeMap<&'static str, u64>,
    /// `error` messages from the relay in the window, by code.
    pub(crate) errors_by_code: BTreeMap<String, u64>,
    /// Client-side failures in the window, by kind.
    pub(crate) errors_by_kind: BTreeMap<String, u64>,
    /// The relay process (when its pid is known).
    pub(crate) relay: Option<ProcWindow>,
    /// The load generator's process.
    pub(crate) load: Option<ProcWindow>,
    /// Relay CPU per delivered message, µs.
    pub(crate) relay_cpu_us_per_delivery: Option<f64>,
    /// Relay RSS at the end over clients connected, KiB (includes the relay's baseline).
    pub(crate) relay_rss_kb_per_client: Option<f64>,
    /// The relay's own counters over the window (when `/metrics` could be read).
    pub(crate) relay_counters: Option<RelayCounters>,
}

/// Per-second rates of the nonzero message counts.
pub(crate) fn by_type(counts: &[u64], seconds: f64) -> BTreeMap<&'static str, f64> {
    MessageType::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(t, n)| (t.name(), *n as f64 / seconds.max(1e-9)))
        .collect()
}

/// The event counters of a window, by name (zeros left out).
pub(crate) fn counts(diff: &Snapshot) -> BTreeMap<&'static str, u64> {
    Count::ALL
        .iter()
        .map(|c| (c.name(), diff.count(*c)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The latencies of a window, by name.
pub(crate) fn latencies(
    window: &[(Latency, Option<Percentiles>)],
) -> BTreeMap<&'static str, Percentiles> {
    window
        .iter()
        .filter_map(|(l, p)| Some((l.name(), (*p)?)))
        .collect()
}

/// A least-squares line `y = slope x + intercept`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Fit {
    /// Slope.
    pub(crate) slope: f64,
    /// Intercept.
    pub(crate) intercept: f64,
    /// Coefficient of determination (1: every point on the line).
    pub(crate) r2: f64,
    /// Points fitted.
    pub(crate) points: usize,
}

/// The least-squares line through `points`; `None` with fewer than two distinct x.
pub(crate) fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r2 = if syy > 0.0 {
        (sxy * sxy) / (sxx * syy)
    } else {
        1.0
    };
    Some(Fit {
        slope,
        intercept,
        r2,
        points: points.len(),
    })
}

/// The most clients held before p99 passed the limit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Ceiling {
    /// The latency the limit applies to.
    pub(crate) latency: &'static str,
    /// The limit, ms.
    pub(crate) p99_limit_ms: f64,
    /// Clients of the largest good step (`None`: not even the first step was good).
    pub(crate) clients: Option<u64>,
    /// The first step that was not good, and why.
    pub(crate) broke_at: Option<(usize, String)>,
}

/// The ceiling over `steps` for latency `latency` (by name) and `limit_ms`.
pub(crate) fn ceiling(steps: &[StepResult], latency: &'static str, limit_ms: f64) -> Ceiling {
    let mut good = None;
    let mut broke_at = None;
    for s in steps {
        let p99 = s.latency.get(latency).map(|p| p.p99_ms);
        let why = if !s.held {
            Some(format!(
                "{} of {} clients set up",
                s.connect.joined, s.connect.attempted
            ))
        } else {
            match p99 {
                None => Some(format!("no {latency} samples")),
                Some(p) if p > limit_ms => Some(format!("p99 {p:.2} ms")),
                Some(_) => None,
            }
        };
        match why {
            None => good = Some(s.clients_connected),
            Some(why) => {
                broke_at = Some((s.clients_target, why));
                break;
            }
        }
    }
    Ceiling {
        latency,
        p99_limit_ms: limit_ms,
        clients: good,
        broke_at,
    }
}

fn ms(p: Option<&Percentiles>, f: impl Fn(&Percentiles) -> f64) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{:.3}", f(p)))
}

/// The human table of one window.
pub(crate) fn step_table(s: &StepResult) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "clients {} connected of {} in {} rooms; connect {:.1} s ({} /s, p50 {} p99 {} ms), {} failed",
        s.clients_connected,
        s.clients_target,
        s.rooms,
        s.connect.wall_s,
        thousands(s.connect.per_sec),
        ms(s.connect.latency.as_ref(), |p| p.p50_ms),
        ms(s.connect.latency.as_ref(), |p| p.p99_ms),
        s.connect.failed
    );
    let connect_errors: Vec<String> = s
        .connect
        .errors_by_code
        .iter()
        .map(|(k, v)| format!("code {k}: {v}"))
        .chain(
            s.connect
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k}: {v}")),
        )
        .collect();
    if !connect_errors.is_empty() {
        let _ = writeln!(t, "connect errors: {}", connect_errors.join("; "));
    }
    let _ = writeln!(t, "window {:.1} s", s.window_s);
    let _ = writeln!(
        t,
        "\n| latency | samples | p50 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|"
    );
    for (name, p) in &s.latency {
        let _ = writeln!(
            t,
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            thousands(p.count as f64),
            p.p50_ms,
            p.p99_ms,
            p.p999_ms,
            p.max_ms
        );
    }
    let _ = writeln!(
        t,
        "\ndeliveries {} /s ({}), sent {} /s, commands {} /s",
        thousands(s.deliveries_per_s),
        s.deliveries_by_type
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect::<Vec<_>>()
            .join(", "),
        thousands(s.sent_per_s),
        thousands(s.commands_per_s),
    );
    if let Some(r) = &s.relay {
        let _ = writeln!(
            t,
            "relay: CPU {:.0}% ({:.2} s), RSS {:.1} MiB (peak {:.1}), {} threads{}{}",
            r.cpu_pct,
            r.cpu_s,
            r.rss_kb as f64 / 1024.0,
            r.peak_rss_kb as f64 / 1024.0,
            r.threads,
            s.relay_cpu_us_per_delivery
                .map_or(String::new(), |u| format!(", {u:.2} µs CPU per delivery")),
            s.relay_rss_kb_per_client.map_or(String::new(), |k| format!(
                ", {k:.1} KiB RSS per client (incl. baseline)"
            )),
        );
    }
    if let Some(l) = &s.load {
        let _ = writeln!(
            t,
            "load generator: CPU {:.0}%, RSS {:.1} MiB, {} threads",
            l.cpu_pct,
            l.rss_kb as f64 / 1024.0,
            l.threads
        );
    }
    if let Some(c) = &s.relay_counters {
        let _ = writeln!(
            t,
            "relay counters: out {} /s, in {} /s, coalesced {}, dropped {}, slow-consumer cuts {}, errors {}",
            thousands(c.messages_out / s.window_s.max(1e-9)),
            thousands(c.messages_in / s.window_s.max(1e-9)),
            thousands(c.coalesced),
            thousands(c.dropped),
            thousands(c.slow_consumer_disconnects),
            thousands(c.errors)
        );
    }
    if !s.counts.is_empty() {
        let _ = writeln!(
            t,
            "events: {}",
            s.counts
                .iter()
                .map(|(k, v)| format!("{k} {}", thousands(*v as f64)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let errors: Vec<String> = s
        .errors_by_code
        .iter()
        .map(|(k, v)| format!("code {k}: {v}"))
        .chain(s.errors_by_kind.iter().map(|(k, v)| format!("{k}: {v}")))
        .collect();
    let _ = writeln!(
        t,
        "errors: {}",
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join("; ")
        }
    );
    t
}

/// The human table of a `steps` run.
pub(crate) fn steps_table(
    steps: &[StepResult],
    latency: &'static str,
    rss_fit: Option<&Fit>,
    ceiling: &Ceiling,
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| clients | held | connect /s | relay RSS MiB | RSS/client KiB | relay CPU % | deliveries /s | {latency} p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for s in steps {
        let p = s.latency.get(latency);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(s.clients_connected as f64),
            if s.held { "yes" } else { "no" },
            thousands(s.connect.per_sec),
            s.relay
                .map_or("-".into(), |r| format!("{:.1}", r.rss_kb as f64 / 1024.0)),
            s.relay_rss_kb_per_client
                .map_or("-".into(), |k| format!("{k:.1}")),
            s.relay.map_or("-".into(), |r| format!("{:.0}", r.cpu_pct)),
            thousands(s.deliveries_per_s),
            ms(p, |p| p.p50_ms),
            ms(p, |p| p.p99_ms),
            ms(p, |p| p.p999_ms),
        );
    }
    match rss_fit {
        Some(f) => {
            let _ = writeln!(
                t,
                "\nrelay RSS per client (least-squares slope over {} steps): {:.2} KiB, intercept {:.1} MiB, r² {:.4}",
                f.points,
                f.slope,
                f.intercept / 1024.0,
                f.r2
            );
        }
        None => {
            let _ = writeln!(
                t,
                "\nrelay RSS per client: needs two steps with the relay's RSS"
            );
        }
    }
    let _ = writeln!(
        t,
        "ceiling ({} p99 <= {} ms): {}{}",
        ceiling.latency,
        ceiling.p99_limit_ms,
        ceiling
            .clients
            .map_or("below the first step".into(), |c| format!(
                "{} clients",
                thousands(c as f64)
            )),
        ceiling
            .broke_at
            .as_ref()
            .map_or(", every step held".into(), |(n, why)| format!(
                "; broke at {} ({why})",
                thousands(*n as f64)
            ))
    );
    t
}

/// What the slow consumers of a run saw, and what the relay says it did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct SlowSummary {
    /// Clients that stopped reading.
    pub(crate) slow_clients: usize,
    /// Those whose connection, when they read again at the end, ended with a `slow_consumer`
    /// reason.
    pub(crate) closed_with_slow_consumer_reason: u64,
    /// Those whose connection ended otherwise (see `errors_while_stopping`) or was still open.
    pub(crate) closed_otherwise_or_still_open: u64,
    /// The relay's `lockstep_slow_consumer_disconnects_total` at the end.
    pub(crate) relay_slow_consumer_disconnects: Option<f64>,
}

/// Everything a run reports.
pub(crate) struct Record<'a> {
    /// The options.
    pub(crate) args: &'a Args,
    /// The plan.
    pub(crate) plan: &'a Plan,
    /// `ok`, or why the run ended early.
    pub(crate) status: &'a str,
    /// When it started.
    pub(crate) started_unix: u64,
    /// The clients' source addresses.
    pub(crate) sources: &'a [IpAddr],
    /// The open-files limit.
    pub(crate) open_files: u64,
    /// The relay.
    pub(crate) target: &'a Target,
    /// Its pid, when known.
    pub(crate) relay_pid: Option<u32>,
    /// The temporary folder, when kept.
    pub(crate) kept_dir: Option<&'a Path>,
    /// The relay's `/metrics` at the end.
    pub(crate) relay_metrics: Option<Vec<(String, f64)>>,
    /// The measured steps.
    pub(crate) steps: &'a [StepResult],
    /// The slow consumers, if any.
    pub(crate) slow: Option<SlowSummary>,
    /// Errors while the clients closed, by code and by kind.
    pub(crate) errors_while_stopping: (BTreeMap<String, u64>, BTreeMap<String, u64>),
    /// The monitor's per-second series.
    pub(crate) series: Vec<Point>,
}

impl Record<'_> {
    /// The latency the ceiling is judged by: the ping round trip in idle loads, the decision
    /// in democratic rooms, the command otherwise.
    fn ceiling_latency(&self) -> &'static str {
        match (self.args.scenario, self.args.step_load) {
            (ScenarioKind::Steps, StepLoad::Idle) | (ScenarioKind::Idle, _) => Latency::Rtt.name(),
            (ScenarioKind::BigRoomDemocratic, _) => Latency::Decision.name(),
            _ => Latency::Command.name(),
        }
    }

    fn rss_fit(&self) -> Option<Fit> {
        let points: Vec<(f64, f64)> = self
            .steps
            .iter()
            .filter_map(|s| Some((s.clients_connected as f64, s.relay?.rss_kb as f64)))
            .collect();
        fit(&points)
    }

    fn ceiling(&self) -> Ceiling {
        ceiling(self.steps, self.ceiling_latency(), self.args.ceiling_p99_ms)
    }

    fn slow(&self) -> Option<SlowSummary> {
        self.slow.clone().map(|mut s| {
            s.relay_slow_consumer_disconnects = self
                .relay_metrics
                .as_ref()
                .map(|v| RelayCounters::from_values(v).slow_consumer_disconnects);
            s
        })
    }
}

/// The human report: a table per step, the steps table, slow consumers, late errors.
pub(crate) fn text(r: &Record) -> String {
    let mut t = String::new();
    let transport = match r.args.transport {
        TransportMix::Ws => "WebSocket",
        TransportMix::Wt => "WebTransport",
        TransportMix::Mix => "WebSocket + WebTransport",
    };
    let _ = writeln!(
        t,
        "\nlockstep-load {} over {transport} ({})",
        r.args.scenario.name(),
        r.status
    );
    for s in r.steps {
        let _ = writeln!(t, "\n{}", step_table(s));
    }
    if r.args.scenario == ScenarioKind::Steps {
        let _ = writeln!(
            t,
            "{}",
            steps_table(
                r.steps,
                r.ceiling_latency(),
                r.rss_fit().as_ref(),
                &r.ceiling()
            )
        );
    }
    if let Some(s) = r.slow() {
        let _ = writeln!(
            t,
            "slow consumers: {} stopped reading; the relay counted {} slow-consumer cuts; \
             reading again at the end, {} saw a slow_consumer close, {} another end or none",
            s.slow_clients,
            s.relay_slow_consumer_disconnects
                .map_or("?".into(), |n| format!("{n:.0}")),
            s.closed_with_slow_consumer_reason,
            s.closed_otherwise_or_still_open
        );
    }
    let (codes, kinds) = &r.errors_while_stopping;
    let late: Vec<String> = codes
        .iter()
        .map(|(k, v)| format!("code {k}: {v}"))
        .chain(kinds.iter().map(|(k, v)| format!("{k}: {v}")))
        .collect();
    if !late.is_empty() {
        let _ = writeln!(t, "while stopping: {}", late.join("; "));
    }
    t
}

/// The JSON results.
pub(crate) fn json(r: &Record) -> serde_json::Value {
    let plan = r.plan;
    let (ws, wt) = plan.transports();
    let ceiling_latency = r.ceiling_latency();
    json!({
        "bench": "lockstep-load",
        "status": r.status,
        "date_utc": crate::date::utc_date(r.started_unix),
        "started_unix": r.started_unix,
        "machine": machine(),
        "options": r.args,
        "plan": {
            "clients": plan.clients.len(),
            "websocket_clients": ws,
            "webtransport_clients": wt,
            "rooms": plan.rooms.len(),
            "room_sizes": {
                "min": plan.rooms.iter().map(|x| x.len).min(),
                "max": plan.rooms.iter().map(|x| x.len).max(),
            },
            "commands_per_sec_per_room": plan.rates.commands_per_sec,
            "chat_per_sec_per_room": plan.rates.chat_per_sec,
            "chat_bytes": plan.rates.chat_len,
            "proposals_per_sec_per_room": plan.rates.proposals_per_sec,
            "stats": plan.rates.stats,
            "source_addresses": r.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "open_files_limit": r.open_files,
        },
        "relay": {
            "http": r.target.http.to_string(),
            "websocket": r.target.ws_url,
            "webtransport": r.target.wt_url,
            "pid": r.relay_pid,
            "config": r.kept_dir.map(|d| d.join("relay.toml")),
            "log": r.kept_dir.map(|d| d.join("relay.log")),
            // Nonzero counters and gauges (histogram sums and counts left out).
            "metrics_at_end": r.relay_metrics.as_ref().map(|v| v
                .iter()
                .filter(|(n, x)| *x != 0.0 && !n.ends_with("_sum") && !n.ends_with("_count"))
                .cloned()
                .collect::<BTreeMap<_, _>>()),
        },
        "method": {
            "command_latency": "host sends a command (seek to a position naming it, every fourth a pause/play); each member's first copy of the resulting state_update (repeats ignored) minus the send instant, one process, one monotonic clock",
            "chat_latency": "chat line sent to its chat_message at each member",
            "proposal_latency": "seek proposal sent to its proposal announcement at each member",
            "decision_latency": "seek proposal sent to its decision at each member",
            "ping_rtt": "ping sent to its pong, at the client",
            "deliveries": "every message every client received in the window, by type",
            "relay_rss_per_client": "least-squares slope of the relay's RSS over clients connected, over the steps",
            "ceiling": format!("most clients held (>= {:.0}% set up) before {ceiling_latency} p99 passed {} ms", HELD_SHARE * 100.0, r.args.ceiling_p99_ms),
            "relay_limits": relay::config_toml(),
        },
        "steps": r.steps,
        "rss_fit_kb_per_client": r.rss_fit(),
        "ceiling": r.ceiling(),
        "slow_consumers": r.slow(),
        "errors_while_stopping": {
            "by_code": r.errors_while_stopping.0,
            "by_kind": r.errors_while_stopping.1,
        },
        "series": r.series,
    })
}

/// Writes the JSON results to `path`.
pub(crate) fn write_json(path: &Path, results: &serde_json::Value) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).context(|| format!("create {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(results)
        .map_err(|e| Error::Other(format!("serialise results: {e}")))?;
    std::fs::write(path, text).context(|| format!("write {}", path.display()))
}

/// The machine, for the JSON: CPUs, model, kernel, load.
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines().find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned());
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu": cpu,
        "kernel": kernel,
        // Others' work on the machine skews timing: the load when the results were written.
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|l| l.trim().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_fitted_exactly() {
        let f = fit(&[(1000.0, 12_000.0), (5000.0, 44_000.0), (10_000.0, 84_000.0)]).unwrap();
        assert!((f.slope - 8.0).abs() < 1e-9, "{f:?}");
        assert!((f.intercept - 4000.0).abs() < 1e-6);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        assert_eq!(f.points, 3);
    }

    #[test]
    fn noisy_points_fit_by_least_squares() {
        // Worked by hand: mean (1.5, 4), Sxx 5, Sxy 8: slope 1.6, intercept 1.6.
        let f = fit(&[(0.0, 2.0), (1.0, 2.0), (2.0, 6.0), (3.0, 6.0)]).unwrap();
        assert!((f.slope - 1.6).abs() < 1e-9, "{f:?}");
        assert!((f.intercept - 1.6).abs() < 1e-9);
        assert!(f.r2 < 1.0 && f.r2 > 0.7);
        assert_eq!(fit(&[(1.0, 1.0)]), None);
        assert_eq!(fit(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    fn step(clients: usize, held: bool, p99: Option<f64>) -> StepResult {
        let mut latency = BTreeMap::new();
        if let Some(p) = p99 {
            latency.insert(
                "command",
                Percentiles {
                    count: 100,
                    mean_ms: p / 2.0,
                    p50_ms: p / 2.0,
                    p90_ms: p,
                    p99_ms: p,
                    p999_ms: p,
                    max_ms: p,
                },
            );
        }
        StepResult {
            clients_target: clients,
            clients_connected: clients as u64,
            rooms: clients / 10,
            connect: ConnectSummary {
                attempted: clients,
                joined: if held { clients } else { clients / 2 },
                failed: 0,
                wall_s: 1.0,
                per_sec: 1.0,
                latency: None,
                errors_by_code: BTreeMap::new(),
                errors_by_kind: BTreeMap::new(),
            },
            held,
            window_s: 10.0,
            latency,
            deliveries_per_s: 0.0,
            deliveries_by_type: BTreeMap::new(),
            sent_per_s: 0.0,
            sent_by_type: BTreeMap::new(),
            commands_per_s: 0.0,
            counts: BTreeMap::new(),
            errors_by_code: BTreeMap::new(),
            errors_by_kind: BTreeMap::new(),
            relay: None,
            load: None,
            relay_cpu_us_per_delivery: None,
            relay_rss_kb_per_client: None,
            relay_counters: None,
        }
    }

    #[test]
    fn the_ceiling_is_the_last_good_step_before_the_first_bad_one() {
        let steps = vec![
            step(1000, true, Some(1.0)),
            step(5000, true, Some(4.0)),
            step(10_000, true, Some(12.0)),
            step(20_000, true, Some(3.0)),
        ];
        let c = ceiling(&steps, "command", 10.0);
        assert_eq!(c.clients, Some(5000));
        assert_eq!(c.broke_at, Some((10_000, "p99 12.00 ms".into())));
        let c = ceiling(&steps[..2], "command", 10.0);
        assert_eq!(c.clients, Some(5000));
        assert_eq!(c.broke_at, None);
        let c = ceiling(&[step(1000, false, Some(1.0))], "command", 10.0);
        assert_eq!(c.clients, None);
        let c = ceiling(&[step(1000, true, None)], "command", 10.0);
        assert_eq!(c.broke_at.map(|b| b.1), Some("no command samples".into()));
        assert!(
            steps_table(&steps, "command", None, &ceiling(&steps, "command", 10.0))
                .contains("5,000 clients")
        );
        assert!(step_table(&steps[0]).contains("| command | 100 |"));
    }

    #[test]
    fn relay_counters_sum_their_labels() {
        let v = vec![
            (
                "lockstep_messages_out_total{type=\"pong\"}".to_owned(),
                10.0,
            ),
            (
                "lockstep_messages_out_total{type=\"state_update\"}".to_owned(),
                5.0,
            ),
            ("lockstep_messages_out_totally".to_owned(), 99.0),
            ("lockstep_slow_consumer_disconnects_total".to_owned(), 2.0),
        ];
        let c = RelayCounters::from_values(&v);
        assert_eq!(c.messages_out, 15.0);
        assert_eq!(c.slow_consumer_disconnects, 2.0);
        let d = c.since(&RelayCounters::default());
        assert_eq!(d, c);
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(12.0), "12");
    }
}
