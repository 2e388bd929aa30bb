//! A run: prepare the machine and the relay, connect the fleet, warm up, measure, stop, report.
//!
//! Every scenario is a list of steps (one step for all but `steps`): the fleet grows to the
//! step's client count, the load runs `--warmup` seconds, then a measurement window of
//! `--duration` seconds. A monitor samples the relay and this process once a second, prints a
//! progress line to stderr and keeps the per-second series for the JSON. The whole run is
//! bounded by `--max-wall`; when that or Ctrl-C cuts it short, what was measured is still
//! reported, and the relay this tool started is always stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::cli::Args;
use super::client::{Dialer, source_addrs, sources_needed};
use super::member::{self, Phase, SetUp, Shared};
use super::metrics::{Count, Metrics, Snapshot};
use super::monitor;
use super::procstat::{self, ProcReading};
use super::relay::{self, RelayProcess, Target};
use super::report::{self, ConnectSummary, HELD_SHARE, ProcWindow, RelayCounters, StepResult};
use super::scenario::{self, Plan};
use super::tracker::RoomTracker;
use super::{Context, Error, Result, fdlimit, http};

/// How long members get to close (slow consumers to drain) at the end.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// The clients of a run.
struct Fleet {
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    tasks: Vec<JoinHandle<()>>,
    next: usize,
}

impl Fleet {
    /// Starts clients up to index `to` (hosts of new rooms first, since members join the
    /// rooms they create) and waits until each is in its room or failed.
    async fn grow(&mut self, to: usize) -> ConnectSummary {
        let started = Instant::now();
        let before = self.shared.metrics.snapshot();
        let range = self.next..to.min(self.shared.plan.clients.len());
        self.next = range.end;
        let (hosts, members): (Vec<usize>, Vec<usize>) = range
            .clone()
            .partition(|&i| self.shared.plan.clients[i].host);
        let mut joined = 0;
        for batch in [hosts, members] {
            let (tx, mut rx) = mpsc::channel(1024);
            let n = batch.len();
            for i in batch {
                self.tasks
                    .push(member::spawn(self.shared.clone(), i, tx.clone()));
            }
            drop(tx);
            for _ in 0..n {
                match rx.recv().await {
                    Some(SetUp::Joined) => joined += 1,
                    Some(SetUp::Failed(_)) => {}
                    None => break,
                }
            }
        }
        let wall_s = started.elapsed().as_secs_f64();
        let attempted = range.len();
        let d = self.shared.metrics.snapshot().since(&before);
        ConnectSummary {
            errors_by_code: d.error_codes,
            errors_by_kind: d.error_kinds,
            attempted,
            joined,
            failed: attempted - joined,
            wall_s,
            per_sec: joined as f64 / wall_s.max(1e-3),
            latency: self.shared.metrics.take_connect(),
        }
    }

    fn set_phase(&self, p: Phase) {
        self.phase.send_replace(p);
    }

    /// Stops every member, giving them [`STOP_WITHIN`] to close.
    async fn stop(self) {
        self.set_phase(Phase::Stopping);
        let deadline = tokio::time::Instant::now() + STOP_WITHIN;
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}

/// A measurement window being taken.
struct Window {
    started: Instant,
    snap: Snapshot,
    relay: Option<ProcReading>,
    own: Option<ProcReading>,
    counters: Option<RelayCounters>,
}

/// What the run knows about the relay.
struct RelayInfo {
    target: Target,
    pid: Option<u32>,
    ticks: u64,
}

impl RelayInfo {
    async fn counters(&self) -> Option<RelayCounters> {
        relay::metrics(self.target.http)
            .await
            .ok()
            .map(|v| RelayCounters::from_values(&v))
    }
}

fn proc_window(
    a: Option<ProcReading>,
    b: Option<ProcReading>,
    secs: f64,
    ticks: u64,
) -> Option<ProcWindow> {
    let (a, b) = (a?, b?);
    let cpu_s = b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / ticks.max(1) as f64;
    Some(ProcWindow {
        cpu_s,
        cpu_pct: 100.0 * cpu_s / secs.max(1e-3),
        rss_kb: b.rss_kb,
        peak_rss_kb: b.hwm_kb,
        threads: b.threads,
    })
}

async fn open_window(shared: &Shared, relay: &RelayInfo) -> Window {
    let counters = relay.counters().await;
    shared.metrics.start_window();
    Window {
        started: Instant::now(),
        snap: shared.metrics.snapshot(),
        relay: relay.pid.and_then(|p| procstat::read(Some(p))),
        own: procstat::read(None),
        counters,
    }
}

async fn close_window(
    w: Window,
    shared: &Shared,
    relay: &RelayInfo,
    target: usize,
    connect: ConnectSummary,
) -> StepResult {
    let latencies = shared.metrics.end_window();
    let secs = w.started.elapsed().as_secs_f64();
    let d = shared.metrics.snapshot().since(&w.snap);
    let relay_end = relay.pid.and_then(|p| procstat::read(Some(p)));
    let own_end = procstat::read(None);
    let counters = match (w.counters, relay.counters().await) {
        (Some(a), Some(b)) => Some(b.since(&a)),
        _ => None,
    };
    let relay_w = proc_window(w.relay, relay_end, secs, relay.ticks);
    let deliveries = d.received_total();
    let clients = shared.metrics.connected_now();
    StepResult {
        clients_target: target,
        clients_connected: clients,
        rooms: shared.plan.rooms_within(target),
        held: connect.joined as f64 >= HELD_SHARE * connect.attempted as f64,
        connect,
        window_s: secs,
        latency: report::latencies(&latencies),
        deliveries_per_s: deliveries as f64 / secs.max(1e-3),
        deliveries_by_type: report::by_type(&d.received, secs),
        sent_per_s: d.sent.iter().sum::<u64>() as f64 / secs.max(1e-3),
        sent_by_type: report::by_type(&d.sent, secs),
        commands_per_s: d.count(Count::CommandsApplied) as f64 / secs.max(1e-3),
        counts: report::counts(&d),
        errors_by_code: d.error_codes.clone(),
        errors_by_kind: d.error_kinds.clone(),
        relay_cpu_us_per_delivery: relay_w
            .filter(|_| deliveries > 0)
            .map(|r| r.cpu_s * 1e6 / deliveries as f64),
        relay_rss_kb_per_client: relay_w
            .filter(|_| clients > 0)
            .map(|r| r.rss_kb as f64 / clients as f64),
        relay: relay_w,
        load: proc_window(w.own, own_end, secs, relay.ticks),
        relay_counters: counters,
    }
}

/// Sleeps `d`, failing early if the relay process is gone.
async fn hold(d: Duration, relay_pid: Option<u32>) -> Result<()> {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep_until(end.min(tokio::time::Instant::now() + Duration::from_millis(500)))
            .await;
        if let Some(pid) = relay_pid
            && procstat::read(Some(pid)).is_none()
        {
            return Err(Error::Relay(format!("the relay (pid {pid}) is gone")));
        }
    }
    Ok(())
}

/// The steps, appending each step's result as soon as it is measured.
async fn run_steps(
    args: &Args,
    fleet: &mut Fleet,
    relay: &RelayInfo,
    monitor: &monitor::Running,
    steps: &mut Vec<StepResult>,
) -> Result<()> {
    for count in args.client_counts() {
        monitor.stage(format!("connect {count}"));
        let connect = fleet.grow(count).await;
        eprintln!(
            "connected {} of {} new clients in {:.1} s ({:.0}/s), {} failed",
            connect.joined, connect.attempted, connect.wall_s, connect.per_sec, connect.failed
        );
        let held = connect.joined as f64 >= HELD_SHARE * connect.attempted as f64;
        fleet.set_phase(Phase::Running);
        monitor.stage(format!("warmup {count}"));
        hold(Duration::from_secs(args.warmup), relay.pid).await?;
        monitor.stage(format!("measure {count}"));
        let w = open_window(&fleet.shared, relay).await;
        hold(Duration::from_secs(args.duration_secs()), relay.pid).await?;
        let result = close_window(w, &fleet.shared, relay, count, connect).await;
        steps.push(result);
        if !held {
            eprintln!("step {count} did not hold its clients: stopping the steps here");
            break;
        }
    }
    Ok(())
}

/// The default hard cap: a connect budget of 100 clients a second, every step's warm-up and
/// window, the stop, and a minute of margin.
fn default_cap(args: &Args) -> Duration {
    let steps = args.client_counts().len() as u64;
    let connect = args.max_clients() as u64 / 100;
    Duration::from_secs(
        60 + connect + steps * (args.warmup + args.duration_secs()) + STOP_WITHIN.as_secs(),
    )
}

/// Runs the benchmark; `Ok(true)` when every step ran to its end.
pub(crate) async fn main(args: Args) -> Result<bool> {
    args.check().map_err(Error::Options)?;
    let plan = scenario::plan(&args);
    let (ws, _) = plan.transports();
    // One socket per WebSocket client here and one in the relay (which inherits this limit),
    // plus a few hundred for everything else (QUIC endpoints, logs, /proc, the runtime).
    let fd = fdlimit::raise((ws + 512) as u64)?;
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("lockstep-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;

    let (relay_proc, http_addr, pid) = match &args.relay {
        Some(url) => (None, http::resolve(url).await?, args.relay_pid),
        None => {
            let bin = relay::find_bin(args.relay_bin.as_ref())?;
            let (p, addr) = RelayProcess::start(&bin, &dir, &args.relay_log_level).await?;
            let pid = p.pid();
            eprintln!(
                "relay {} (pid {pid}) at http://{addr}, config {}, log {}",
                bin.display(),
                p.config.display(),
                p.log.display()
            );
            (Some(p), addr, Some(pid))
        }
    };
    let prepared = Prepared {
        http: http_addr,
        pid,
        fd,
        dir: dir.clone(),
        started_unix,
    };
    let outcome = with_relay(&args, plan, &prepared).await;
    let log = relay_proc.as_ref().map(|p| p.log.clone());
    if let Some(p) = relay_proc {
        p.stop().await;
    }
    let ok = matches!(outcome, Ok(true));
    if ok && !args.keep_temp {
        let _ = std::fs::remove_dir_all(&dir);
    } else if let Some(log) = log {
        eprintln!("relay log kept: {}", log.display());
    }
    outcome
}

/// What [`main`] prepared before the relay could be used.
struct Prepared {
    /// The relay's HTTP address.
    http: SocketAddr,
    /// The relay's pid, when known.
    pid: Option<u32>,
    /// The open-files limit.
    fd: fdlimit::Raised,
    /// The run's temporary folder.
    dir: PathBuf,
    /// When the run started.
    started_unix: u64,
}

/// The run itself, against a relay that is up.
async fn with_relay(args: &Args, plan: Plan, prepared: &Prepared) -> Result<bool> {
    let (ws, wt) = plan.transports();
    let pid = prepared.pid;
    let fd = prepared.fd;
    let target = relay::discover(prepared.http).await?;
    let mut sources = source_addrs(target.ws_addr, args.source_addrs.max(sources_needed(ws)));
    if sources.is_empty() && ws > 25_000 {
        eprintln!(
            "warning: the relay is not on 127.0.0.1, so clients cannot spread over loopback \
             source addresses; {ws} WebSocket clients may exhaust the ephemeral ports"
        );
    }
    sources.truncate(250);
    let dialer = Dialer::new(
        &target,
        sources.clone(),
        if wt > 0 { args.wt_endpoints } else { 0 },
    )?;
    let rooms = plan.rooms.len();
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    let shared = Arc::new(Shared {
        trackers: (0..rooms).map(|_| RoomTracker::default()).collect(),
        room_ids: (0..rooms).map(|_| OnceLock::new()).collect(),
        plan,
        metrics: Metrics::default(),
        dialer,
        phase: phase_rx,
        connecting: Semaphore::new(args.connect_concurrency),
        connect_timeout: Duration::from_secs(args.connect_timeout),
        origin: Instant::now(),
        seed: args.seed,
    });
    let ticks = procstat::clock_ticks();
    let info = RelayInfo { target, pid, ticks };
    let monitor = monitor::start(shared.clone(), pid, ticks);

    let cap = args
        .max_wall
        .map_or_else(|| default_cap(args), Duration::from_secs);
    eprintln!(
        "{}: {} clients ({ws} WebSocket, {wt} WebTransport) in {} rooms, {} source addresses, \
         open-files limit {} (was {}), hard cap {} s",
        args.scenario.name(),
        args.max_clients(),
        shared.plan.rooms.len(),
        sources.len().max(1),
        fd.now,
        fd.before,
        cap.as_secs()
    );
    let mut fleet = Fleet {
        shared: shared.clone(),
        phase: phase_tx,
        tasks: Vec::new(),
        next: 0,
    };
    let mut steps = Vec::new();
    let status = tokio::select! {
        r = tokio::time::timeout(cap, run_steps(args, &mut fleet, &info, &monitor, &mut steps)) => match r {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => format!("failed: {e}"),
            Err(_) => format!("hard cap of {} s reached", cap.as_secs()),
        },
        _ = tokio::signal::ctrl_c() => "interrupted".to_owned(),
    };
    monitor.stage("stop");
    let fleet_reached = fleet.next;
    let before_stop = shared.metrics.snapshot();
    fleet.stop().await;
    let after_stop = shared.metrics.snapshot();
    let final_metrics = relay::metrics(info.target.http).await.ok();
    let series = monitor.stop().await;

    let slow_clients = shared
        .plan
        .clients
        .iter()
        .take(fleet_reached)
        .filter(|c| c.slow)
        .count();
    let stop_diff = after_stop.since(&before_stop);
    let record = report::Record {
        args,
        plan: &shared.plan,
        status: &status,
        started_unix: prepared.started_unix,
        sources: &sources,
        open_files: prepared.fd.now,
        target: &info.target,
        relay_pid: pid,
        // Kept when the run failed or with --keep-temp (removed otherwise).
        kept_dir: (args.relay.is_none() && (args.keep_temp || status != "ok"))
            .then_some(prepared.dir.as_path()),
        relay_metrics: final_metrics,
        steps: &steps,
        slow: (slow_clients > 0).then(|| report::SlowSummary {
            slow_clients,
            closed_with_slow_consumer_reason: after_stop.count(Count::SlowCut),
            closed_otherwise_or_still_open: after_stop.count(Count::SlowNotCut),
            relay_slow_consumer_disconnects: None,
        }),
        errors_while_stopping: (stop_diff.error_codes, stop_diff.error_kinds),
        series,
    };
    print!("{}", report::text(&record));
    if let Some(path) = &args.json {
        report::write_json(path, &report::json(&record))?;
        println!("results: {}", path.display());
    }
    Ok(status == "ok")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_cap_covers_every_step() {
        let args = Args::parse_from([
            "lockstep-load",
            "--scenario",
            "steps",
            "--steps",
            "1000,5000",
            "--warmup",
            "5",
            "--duration",
            "10",
        ]);
        assert_eq!(default_cap(&args), Duration::from_secs(60 + 50 + 30 + 15));
    }

    #[test]
    fn proc_windows_turn_ticks_into_cpu() {
        let a = ProcReading {
            rss_kb: 100,
            hwm_kb: 100,
            cpu_ticks: 1000,
            threads: 4,
        };
        let b = ProcReading {
            rss_kb: 200,
            hwm_kb: 250,
            cpu_ticks: 1150,
            threads: 5,
        };
        let w = proc_window(Some(a), Some(b), 2.0, 100).unwrap();
        assert!((w.cpu_s - 1.5).abs() < 1e-9);
        assert!((w.cpu_pct - 75.0).abs() < 1e-9);
        assert_eq!((w.rss_kb, w.peak_rss_kb, w.threads), (200, 250, 5));
        assert_eq!(proc_window(None, Some(b), 2.0, 100), None);
    }
}
