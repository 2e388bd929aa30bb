//! The monitor: once a second it drains the clients' interval histograms, samples the relay
//! and this process from `/proc`, prints the progress line to stderr and keeps the point for
//! the JSON's per-second series (which shows, for example, a slow consumer's effect on the
//! others over time).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::member::Shared;
use super::metrics::{Count, Latency, Snapshot};
use super::procstat::Sampler;

/// One second of the run, as the monitor saw it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    /// Seconds since the monitor started.
    t_s: f64,
    /// What the run was doing.
    stage: String,
    /// Clients connected.
    clients: u64,
    /// Messages received per second.
    deliveries_per_s: f64,
    /// Commands applied per second.
    commands_per_s: f64,
    /// Command latency in that second.
    command_p50_ms: Option<f64>,
    /// Command latency in that second.
    command_p99_ms: Option<f64>,
    /// Ping round trip in that second.
    ping_rtt_p99_ms: Option<f64>,
    /// The relay's RSS.
    relay_rss_kb: Option<u64>,
    /// The relay's CPU, percent of one core.
    relay_cpu_pct: Option<f64>,
    /// This process's RSS.
    load_rss_kb: Option<u64>,
    /// This process's CPU, percent of one core.
    load_cpu_pct: Option<f64>,
    /// Errors in that second.
    errors: u64,
}

/// The monitor: once a second, samples, prints progress and records a [`Point`].
pub(crate) struct Monitor {
    shared: Arc<Shared>,
    relay: Option<Sampler>,
    own: Sampler,
    stage: Arc<Mutex<String>>,
    series: Arc<Mutex<Vec<Point>>>,
    started: Instant,
    last: (Instant, Snapshot),
}

impl Monitor {
    fn tick(&mut self) {
        let interval = self.shared.metrics.collect();
        let snap = self.shared.metrics.snapshot();
        let now = Instant::now();
        let secs = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let d = snap.since(&self.last.1);
        self.last = (now, snap);
        let relay = self.relay.as_mut().and_then(Sampler::sample);
        let own = self.own.sample();
        let command = interval.get(Latency::Command);
        let stage = self.stage.lock().map(|s| s.clone()).unwrap_or_default();
        let p = Point {
            t_s: self.started.elapsed().as_secs_f64(),
            stage,
            clients: self.shared.metrics.connected_now(),
            deliveries_per_s: d.received_total() as f64 / secs,
            commands_per_s: d.count(Count::CommandsApplied) as f64 / secs,
            command_p50_ms: command.map(|p| p.p50_ms),
            command_p99_ms: command.map(|p| p.p99_ms),
            ping_rtt_p99_ms: interval.get(Latency::Rtt).map(|p| p.p99_ms),
            relay_rss_kb: relay.map(|r| r.rss_kb),
            relay_cpu_pct: relay.map(|r| r.cpu_pct),
            load_rss_kb: own.map(|r| r.rss_kb),
            load_cpu_pct: own.map(|r| r.cpu_pct),
            errors: d.errors_total(),
        };
        let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        eprintln!(
            "[{:>5.0} s {}] clients {} | deliveries {:.0}/s | commands {:.0}/s | command p50 {} p99 {} ms | ping p99 {} ms | relay {} MiB {}% | load {} MiB {}% | errors {}",
            p.t_s,
            p.stage,
            p.clients,
            p.deliveries_per_s,
            p.commands_per_s,
            opt(p.command_p50_ms),
            opt(p.command_p99_ms),
            opt(p.ping_rtt_p99_ms),
            p.relay_rss_kb
                .map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
            p.relay_cpu_pct.map_or("-".into(), |c| format!("{c:.0}")),
            p.load_rss_kb
                .map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
            p.load_cpu_pct.map_or("-".into(), |c| format!("{c:.0}")),
            p.errors,
        );
        if let Ok(mut s) = self.series.lock() {
            s.push(p);
        }
    }
}

/// The running monitor.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    stage: Arc<Mutex<String>>,
    series: Arc<Mutex<Vec<Point>>>,
}

impl Running {
    /// Names what the run does now, for the progress line.
    pub(crate) fn stage(&self, s: impl Into<String>) {
        if let Ok(mut g) = self.stage.lock() {
            *g = s.into();
        }
    }

    /// Stops the monitor; the series it kept.
    pub(crate) async fn stop(self) -> Vec<Point> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.series.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Starts monitoring `shared`'s clients, the relay (`relay_pid`) and this process.
pub(crate) fn start(shared: Arc<Shared>, relay_pid: Option<u32>, ticks: u64) -> Running {
    let stage = Arc::new(Mutex::new("start".to_owned()));
    let series = Arc::new(Mutex::new(Vec::new()));
    let mut monitor = Monitor {
        last: (Instant::now(), shared.metrics.snapshot()),
        shared,
        relay: relay_pid.map(|p| Sampler::new(Some(p), ticks)),
        own: Sampler::new(None, ticks),
        stage: stage.clone(),
        series: series.clone(),
        started: Instant::now(),
    };
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => monitor.tick(),
                _ = stopped.changed() => break,
            }
        }
    });
    Running {
        stop,
        task,
        stage,
        series,
    }
}
