//! `lockstep-compare`: lockstep and Debian's `syncplay-server` under the same command load in
//! one run (issue 7, §5), with the ratios. Runs `lockstep-load` and `syncplay-load` one after
//! the other (never together: they would share the cores), one pair of runs per rate of
//! commands, the same rooms, members per room, warm-up and window; then the idle memory of
//! each (clients added in steps, RSS per idle client as the least-squares slope). Reads both
//! JSON results and prints a table per rate and one for the idle memory, each with the ratio
//! lockstep / syncplay and how it reads ("lockstep 3.7× lower").
//!
//! ```sh
//! cargo build --release -p lockstep-relay -p lockstep-benches \
//!     --bin lockstep --bin lockstep-load --bin syncplay-load --bin lockstep-compare
//! target/release/lockstep-compare                  # 100 rooms x 20, 5 and 10 cmd/s, 20 s
//! target/release/lockstep-compare --commands-per-sec 5,10,15 --json target/compare.json
//! target/release/lockstep-compare --rooms 20 --commands-per-sec 5 --duration 5 --warmup 2
//! ```
//!
//! The children are the binaries next to this one (`--lockstep-load`, `--syncplay-load` to
//! override); their progress goes to stderr, their own tables too (stdout is this tool's
//! tables only). Each child is bounded: past its warm-up + window + `--timeout-margin` it is
//! interrupted (SIGINT, so `lockstep-load` stops its relay), then killed. lockstep's clients
//! send no chat here (`--chat-per-sec 0`): Syncplay's load has none; both keep their normal
//! background traffic (lockstep: pings and `stats`; Syncplay: the server's `State` each second
//! and its answer). Needs `syncplay-server` (Debian package) for the Syncplay runs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use lockstep_benches::load::TransportMix;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long an interrupted child gets to stop (and stop its relay) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How often a running child is checked.
const POLL: Duration = Duration::from_millis(200);

/// lockstep and Syncplay's server under the same command load, one after the other, with
/// ratios.
#[derive(Parser, Debug)]
#[command(name = "lockstep-compare", version)]
struct Cli {
    /// Rooms under command load.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Clients per room, the host included (also the room size of the idle steps).
    #[arg(long, default_value_t = 20)]
    members: usize,
    /// Commands per second in each room; one pair of runs (lockstep, then Syncplay) per rate.
    #[arg(long, value_delimiter = ',', default_value = "5,10")]
    commands_per_sec: Vec<f64>,
    /// Measured window of each load run, seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Load before the window, seconds.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// lockstep's transport: ws, wt or mix (passed to `lockstep-load`).
    #[arg(long, value_enum, default_value_t = TransportMix::Ws)]
    transport: TransportMix,
    /// Idle clients for the memory per client, comma-separated and increasing ('' skips the
    /// idle runs).
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000")]
    idle_steps: Vec<String>,
    /// Seconds each idle step is held before the server's RSS is read.
    #[arg(long, default_value_t = 5)]
    idle_settle: u64,
    /// Seconds a child may run past its own warm-up + window (idle: steps × (settle + 5))
    /// before it is interrupted, then killed.
    #[arg(long, default_value_t = 120)]
    timeout_margin: u64,
    /// The `lockstep-load` binary [default: next to this binary].
    #[arg(long)]
    lockstep_load: Option<PathBuf>,
    /// The `syncplay-load` binary [default: next to this binary].
    #[arg(long)]
    syncplay_load: Option<PathBuf>,
    /// Extra argument for every `lockstep-load` run (repeatable), e.g. `--lockstep-arg=--threads=1`.
    #[arg(long, allow_hyphen_values = true)]
    lockstep_arg: Vec<String>,
    /// Extra argument for every `syncplay-load` run (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    syncplay_arg: Vec<String>,
    /// Write everything (figures, ratios, the children's raw JSON) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the folder of the children's JSON files (kept anyway when a run failed).
    #[arg(long)]
    keep_temp: bool,
}

/// The options after checking, as the runs use them.
#[derive(Debug, Clone, Serialize)]
struct Plan {
    rooms: usize,
    members: usize,
    commands_per_sec: Vec<f64>,
    duration_s: u64,
    warmup_s: u64,
    transport: String,
    idle_steps: Vec<usize>,
    idle_settle_s: u64,
    timeout_margin_s: u64,
}

impl Plan {
    fn from_cli(cli: &Cli) -> Result<Plan, String> {
        if cli.rooms == 0 || cli.members == 0 {
            return Err("--rooms and --members must be at least 1".into());
        }
        if cli.duration == 0 {
            return Err("--duration must be at least 1".into());
        }
        if cli.commands_per_sec.is_empty() {
            return Err("--commands-per-sec: give at least one rate".into());
        }
        if let Some(r) = cli
            .commands_per_sec
            .iter()
            .find(|r| !(r.is_finite() && **r > 0.0 && **r <= 1000.0))
        {
            return Err(format!("--commands-per-sec: {r} is not within (0, 1000]"));
        }
        let idle_steps = parse_steps(&cli.idle_steps)?;
        if !idle_steps.is_empty() && cli.idle_settle == 0 {
            return Err("--idle-settle must be at least 1".into());
        }
        Ok(Plan {
            rooms: cli.rooms,
            members: cli.members,
            commands_per_sec: cli.commands_per_sec.clone(),
            duration_s: cli.duration,
            warmup_s: cli.warmup,
            transport: transport_name(cli.transport),
            idle_steps,
            idle_settle_s: cli.idle_settle,
            timeout_margin_s: cli.timeout_margin,
        })
    }

    /// Command deliveries per second the load asks for: every member of every room gets
    /// every command.
    fn offered(&self, rate: f64) -> f64 {
        (self.rooms * self.members) as f64 * rate
    }

    /// The bound of a load run.
    fn load_timeout(&self) -> Duration {
        Duration::from_secs(self.warmup_s + self.duration_s + self.timeout_margin_s)
    }

    /// The bound of an idle run.
    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(
            self.idle_steps.len() as u64 * (self.idle_settle_s + 5) + self.timeout_margin_s,
        )
    }

    /// `lockstep-load`'s arguments for one load run.
    fn lockstep_load_args(&self, rate: f64, json: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = [
            "--scenario".to_owned(),
            "small-rooms".into(),
            "--clients".into(),
            (self.rooms * self.members).to_string(),
            "--rooms".into(),
            self.rooms.to_string(),
            "--room-size".into(),
            self.members.to_string(),
            "--commands-per-sec".into(),
            rate.to_string(),
            "--chat-per-sec".into(),
            "0".into(),
            "--duration".into(),
            self.duration_s.to_string(),
            "--warmup".into(),
            self.warmup_s.to_string(),
            "--transport".into(),
            self.transport.clone(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        a.push("--json".into());
        a.push(json.into());
        a
    }

    /// `syncplay-load`'s arguments for one load run.
    fn syncplay_load_args(&self, rate: f64, json: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = [
            "--rooms".to_owned(),
            self.rooms.to_string(),
            "--members".into(),
            self.members.to_string(),
            "--commands-per-sec".into(),
            rate.to_string(),
            "--duration".into(),
            self.duration_s.to_string(),
            "--warmup".into(),
            self.warmup_s.to_string(),
            "--idle-steps".into(),
            String::new(),
            "--quiet".into(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        a.push("--out".into());
        a.push(json.into());
        a
    }

    /// `lockstep-load`'s arguments for the idle steps: each step's RSS is read `idle_settle`
    /// seconds after it is reached, as Syncplay's.
    fn lockstep_idle_args(&self, json: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = [
            "--scenario".to_owned(),
            "steps".into(),
            "--step-load".into(),
            "idle".into(),
            "--steps".into(),
            join(&self.idle_steps),
            "--room-size".into(),
            self.members.to_string(),
            "--warmup".into(),
            "0".into(),
            "--duration".into(),
            self.idle_settle_s.to_string(),
            "--transport".into(),
            self.transport.clone(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        a.push("--json".into());
        a.push(json.into());
        a
    }

    /// `syncplay-load`'s arguments for the idle steps.
    fn syncplay_idle_args(&self, json: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = [
            "--members".to_owned(),
            self.members.to_string(),
            "--commands-per-sec".into(),
            "0".into(),
            "--idle-steps".into(),
            join(&self.idle_steps),
            "--idle-settle".into(),
            self.idle_settle_s.to_string(),
            "--quiet".into(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        a.push("--out".into());
        a.push(json.into());
        a
    }
}

fn join(steps: &[usize]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_steps(raw: &[String]) -> Result<Vec<usize>, String> {
    let steps: Vec<usize> = raw
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("--idle-steps: {s} is not a client count"))
        })
        .collect::<Result<_, _>>()?;
    if steps.windows(2).any(|w| w[1] <= w[0]) {
        return Err("--idle-steps must be increasing".into());
    }
    if steps.len() == 1 {
        return Err("--idle-steps: the slope needs at least two steps".into());
    }
    Ok(steps)
}

fn transport_name(t: TransportMix) -> String {
    t.to_possible_value()
        .map_or_else(|| "ws".to_owned(), |v| v.get_name().to_owned())
}

fn transport_label(name: &str) -> &'static str {
    match name {
        "wt" => "WebTransport",
        "mix" => "WebSocket + WebTransport",
        _ => "WebSocket",
    }
}

// --- Children ----------------------------------------------------------------------------------

/// One child run and what came of it.
#[derive(Debug, Clone, Serialize)]
struct ChildRun {
    /// The command line.
    command: String,
    /// Wall time, seconds.
    wall_s: f64,
    /// Its exit code (`None`: killed by a signal or never started).
    exit_code: Option<i32>,
    /// Why its figures are missing or doubtful.
    error: Option<String>,
    /// Its JSON results, as written.
    raw: Option<Value>,
}

impl ChildRun {
    fn usable(&self) -> Option<&Value> {
        self.raw.as_ref()
    }
}

fn shell_words(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| {
            let s = a.to_string_lossy();
            if s.is_empty() {
                "''".to_owned()
            } else if s.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", s.replace('\'', r"'\''"))
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args` to its end or to `timeout`, its stdout onto this process's stderr;
/// then reads the JSON it wrote to `out`.
fn run_child(
    label: &str,
    program: &Path,
    args: Vec<OsString>,
    out: &Path,
    timeout: Duration,
) -> ChildRun {
    let command = shell_words(program, &args);
    eprintln!(
        "\n[lockstep-compare] {label}: {command} (timeout {} s)",
        timeout.as_secs()
    );
    let mut run = ChildRun {
        command,
        wall_s: 0.0,
        exit_code: None,
        error: None,
        raw: None,
    };
    // The children's own tables go to stderr with their progress: stdout is ours.
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let started = Instant::now();
    let mut child = match Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            run.error = Some(format!("cannot start {}: {e}", program.display()));
            return run;
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("cannot wait for it: {e}"));
            }
        }
        if started.elapsed() >= timeout {
            eprintln!(
                "[lockstep-compare] {label}: still running after {} s: interrupting it",
                timeout.as_secs()
            );
            // SIGINT first: lockstep-load then stops its clients and its relay.
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let until = Instant::now() + STOP_GRACE;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < until => std::thread::sleep(POLL),
                    _ => {
                        eprintln!("[lockstep-compare] {label}: killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
            break Err(format!("timed out after {} s", timeout.as_secs()));
        }
        std::thread::sleep(POLL);
    };
    run.wall_s = started.elapsed().as_secs_f64();
    match status {
        Err(e) => run.error = Some(e),
        Ok(status) => {
            run.exit_code = status.code();
            let read = read_json(out);
            match (status.success(), read) {
                (true, Ok(v)) => run.raw = Some(v),
                (true, Err(e)) => run.error = Some(e),
                // lockstep-load exits with 2 when a run was cut short, after writing what it
                // measured: keep the figures, say so.
                (false, Ok(v)) => {
                    run.error = Some(format!("exited with {status}; its JSON was read"));
                    run.raw = Some(v);
                }
                (false, Err(_)) => run.error = Some(format!("exited with {status}, no results")),
            }
        }
    }
    eprintln!(
        "[lockstep-compare] {label}: {} in {:.1} s",
        run.error.as_deref().unwrap_or("done"),
        run.wall_s
    );
    run
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))
}

// --- The children's JSON: only what the tables need ---------------------------------------------

/// `lockstep-load --json` (`load/report.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LockstepOut {
    status: String,
    steps: Vec<LockstepStep>,
    rss_fit_kb_per_client: Option<LockstepFit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LockstepStep {
    clients_connected: u64,
    window_s: f64,
    latency: BTreeMap<String, LockstepPercentiles>,
    deliveries_per_s: f64,
    relay: Option<LockstepProc>,
    load: Option<LockstepProc>,
    relay_cpu_us_per_delivery: Option<f64>,
    errors_by_code: BTreeMap<String, u64>,
    errors_by_kind: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LockstepPercentiles {
    count: u64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LockstepProc {
    cpu_s: f64,
    cpu_pct: f64,
    rss_kb: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LockstepFit {
    slope: f64,
    intercept: f64,
    r2: f64,
}

/// `syncplay-load --out` (`load/syncplay_peer.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SyncplayOut {
    runs: Vec<SyncplayRun>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SyncplayRun {
    server_version: Option<String>,
    load: Option<SyncplayLoad>,
    idle: Option<SyncplayIdle>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SyncplayLoad {
    command_deliveries_per_sec: f64,
    delivered_per_sec: f64,
    latency_ms: SyncplayLatency,
    server: SyncplayServer,
    load_generator_cpu_percent: f64,
    disconnects: u64,
    error_count: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SyncplayLatency {
    samples: u64,
    p50: f64,
    p99: f64,
    p999: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SyncplayServer {
    cpu_percent: f64,
    cpu_us_per_delivery: Option<f64>,
    cpu_us_per_command_delivery: Option<f64>,
    rss_kib: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SyncplayIdle {
    steps: Vec<SyncplayIdleStep>,
    rss_bytes_per_client: Option<f64>,
    fit_intercept_kib: Option<f64>,
    disconnects: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SyncplayIdleStep {
    clients: usize,
    rss_kib: u64,
}

/// One system's figures under command load, in the same units for both.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
struct LoadFigures {
    /// Each member's first receipt of each command, per second.
    command_deliveries_per_s: Option<f64>,
    /// Every message every client received, per second.
    delivered_per_s: Option<f64>,
    /// Command latency percentiles, ms.
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    p999_ms: Option<f64>,
    /// Server CPU over the window, percent of one core.
    server_cpu_pct: Option<f64>,
    /// Server CPU time per delivered message (every message), µs.
    server_cpu_us_per_delivery: Option<f64>,
    /// Server CPU time per command delivery (all its work charged to them), µs.
    server_cpu_us_per_command_delivery: Option<f64>,
    /// Server RSS at the end of the window, MiB.
    server_rss_mib: Option<f64>,
    /// The load generator's CPU, percent of one core.
    load_generator_cpu_pct: Option<f64>,
    /// Errors and lost connections.
    errors: u64,
    /// `ok`, or why the child said its run was not.
    status: String,
}

/// One system's idle memory.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
struct IdleFigures {
    /// Least-squares slope of RSS over idle clients, KiB per client.
    rss_kib_per_client: Option<f64>,
    /// The fit's intercept, MiB.
    intercept_mib: Option<f64>,
    /// (clients, RSS MiB) at the largest step.
    largest: Option<(u64, f64)>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn lockstep_load_figures(raw: &Value) -> Result<LoadFigures, String> {
    let out: LockstepOut = serde_json::from_value(raw.clone())
        .map_err(|e| format!("unexpected lockstep-load JSON: {e}"))?;
    let step = out
        .steps
        .first()
        .ok_or("lockstep-load measured no window")?;
    let command = step.latency.get("command");
    let window = step.window_s.max(1e-9);
    let errors =
        step.errors_by_code.values().sum::<u64>() + step.errors_by_kind.values().sum::<u64>();
    let command_deliveries = command.map(|p| p.count);
    Ok(LoadFigures {
        command_deliveries_per_s: Some(command_deliveries.unwrap_or(0) as f64 / window),
        delivered_per_s: Some(step.deliveries_per_s),
        p50_ms: command.map(|p| p.p50_ms),
        p99_ms: command.map(|p| p.p99_ms),
        p999_ms: command.map(|p| p.p999_ms),
        server_cpu_pct: step.relay.as_ref().map(|r| r.cpu_pct),
        server_cpu_us_per_delivery: step.relay_cpu_us_per_delivery,
        server_cpu_us_per_command_delivery: step
            .relay
            .as_ref()
            .zip(command_deliveries.filter(|n| *n > 0))
            .map(|(r, n)| r.cpu_s * 1e6 / n as f64),
        server_rss_mib: step.relay.as_ref().map(|r| mib(r.rss_kb)),
        load_generator_cpu_pct: step.load.as_ref().map(|l| l.cpu_pct),
        errors,
        status: if out.status.is_empty() {
            "?".into()
        } else {
            out.status
        },
    })
}

fn syncplay_out(raw: &Value) -> Result<SyncplayOut, String> {
    serde_json::from_value(raw.clone()).map_err(|e| format!("unexpected syncplay-load JSON: {e}"))
}

fn syncplay_load_figures(raw: &Value) -> Result<LoadFigures, String> {
    let out = syncplay_out(raw)?;
    let l = out
        .runs
        .iter()
        .find_map(|r| r.load.as_ref())
        .ok_or("syncplay-load reported no load run")?;
    let measured = l.latency_ms.samples > 0;
    Ok(LoadFigures {
        command_deliveries_per_s: Some(l.command_deliveries_per_sec),
        delivered_per_s: Some(l.delivered_per_sec),
        p50_ms: measured.then_some(l.latency_ms.p50),
        p99_ms: measured.then_some(l.latency_ms.p99),
        p999_ms: measured.then_some(l.latency_ms.p999),
        server_cpu_pct: Some(l.server.cpu_percent),
        server_cpu_us_per_delivery: l.server.cpu_us_per_delivery,
        server_cpu_us_per_command_delivery: l.server.cpu_us_per_command_delivery,
        server_rss_mib: Some(mib(l.server.rss_kib)),
        load_generator_cpu_pct: Some(l.load_generator_cpu_percent),
        errors: l.error_count + l.disconnects,
        status: "ok".into(),
    })
}

fn lockstep_idle_figures(raw: &Value) -> Result<IdleFigures, String> {
    let out: LockstepOut = serde_json::from_value(raw.clone())
        .map_err(|e| format!("unexpected lockstep-load JSON: {e}"))?;
    Ok(IdleFigures {
        rss_kib_per_client: out.rss_fit_kb_per_client.as_ref().map(|f| f.slope),
        intercept_mib: out
            .rss_fit_kb_per_client
            .as_ref()
            .map(|f| f.intercept / 1024.0),
        largest: out
            .steps
            .last()
            .and_then(|s| Some((s.clients_connected, mib(s.relay.as_ref()?.rss_kb)))),
    })
}

fn syncplay_idle_figures(raw: &Value) -> Result<IdleFigures, String> {
    let out = syncplay_out(raw)?;
    let idle = out
        .runs
        .iter()
        .find_map(|r| r.idle.as_ref())
        .ok_or("syncplay-load reported no idle run")?;
    Ok(IdleFigures {
        rss_kib_per_client: idle.rss_bytes_per_client.map(|b| b / 1024.0),
        intercept_mib: idle.fit_intercept_kib.map(|k| k / 1024.0),
        largest: idle
            .steps
            .last()
            .map(|s| (s.clients as u64, mib(s.rss_kib))),
    })
}

/// The server version Syncplay reported, if any run has it.
fn syncplay_version(raw: &Value) -> Option<String> {
    syncplay_out(raw)
        .ok()?
        .runs
        .into_iter()
        .find_map(|r| r.server_version)
}

/// The idle runs' fit quality and losses, for a note under the table.
fn idle_notes(lockstep: Option<&Value>, syncplay: Option<&Value>) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(f) = lockstep
        .and_then(|v| serde_json::from_value::<LockstepOut>(v.clone()).ok())
        .and_then(|o| o.rss_fit_kb_per_client)
    {
        notes.push(format!("lockstep fit r² {:.4}", f.r2));
    }
    if let Some(idle) = syncplay
        .and_then(|v| syncplay_out(v).ok())
        .and_then(|o| o.runs.into_iter().find_map(|r| r.idle))
        && idle.disconnects > 0
    {
        notes.push(format!(
            "syncplay lost {} idle connections",
            idle.disconnects
        ));
    }
    notes
}

// --- Ratios and tables -------------------------------------------------------------------------

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
    /// Context only: no ratio.
    Neither,
}

/// One row of a comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
struct Row {
    figure: String,
    lockstep: Option<f64>,
    syncplay: Option<f64>,
    /// lockstep / syncplay.
    lockstep_over_syncplay: Option<f64>,
    /// How the ratio reads ("lockstep 3.72× lower").
    reads: String,
    #[serde(skip)]
    digits: usize,
}

/// `a / b`, when both are finite, `a` non-negative and `b` positive.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (a.is_finite() && b.is_finite() && a >= 0.0 && b > 0.0).then(|| a / b)
}

/// A factor for reading: 3.72×, 37.2×, 372×.
fn factor(f: f64) -> String {
    if f < 10.0 {
        format!("{f:.2}×")
    } else if f < 100.0 {
        format!("{f:.1}×")
    } else {
        format!("{f:.0}×")
    }
}

/// "lockstep 3.72× lower" or "syncplay 1.90× lower": the larger over the smaller, named by
/// which system is better; "about equal" within 1 %.
fn reading(lockstep: Option<f64>, syncplay: Option<f64>, better: Better) -> String {
    let (Some(l), Some(s)) = (lockstep, syncplay) else {
        return String::new();
    };
    if better == Better::Neither || !(l.is_finite() && s.is_finite()) || l < 0.0 || s < 0.0 {
        return String::new();
    }
    let (hi, lo) = if l >= s { (l, s) } else { (s, l) };
    if hi == 0.0 || (lo > 0.0 && hi / lo < 1.01) {
        return "about equal".into();
    }
    let word = if better == Better::Lower {
        "lower"
    } else {
        "higher"
    };
    let lockstep_better = (better == Better::Lower) == (l < s);
    let who = if lockstep_better {
        "lockstep"
    } else {
        "syncplay"
    };
    if lo == 0.0 {
        return format!("{who} {word} (0 vs {})", number(hi, 2));
    }
    format!("{who} {} {word}", factor(hi / lo))
}

fn row(
    figure: &str,
    lockstep: Option<f64>,
    syncplay: Option<f64>,
    better: Better,
    digits: usize,
) -> Row {
    Row {
        figure: figure.to_owned(),
        lockstep,
        syncplay,
        lockstep_over_syncplay: if better == Better::Neither {
            None
        } else {
            ratio(lockstep, syncplay)
        },
        reads: reading(lockstep, syncplay, better),
        digits,
    }
}

/// `x` with `digits` decimals; with none, thousands separated by commas.
fn number(x: f64, digits: usize) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if digits > 0 {
        return format!("{x:.digits$}");
    }
    lockstep_benches::number::thousands(x)
}

fn cell(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |x| number(x, digits))
}

fn load_rows(l: Option<&LoadFigures>, s: Option<&LoadFigures>) -> Vec<Row> {
    let get = |f: fn(&LoadFigures) -> Option<f64>| (l.and_then(f), s.and_then(f));
    let mut rows = Vec::new();
    let mut add = |name: &str, f: fn(&LoadFigures) -> Option<f64>, better, digits| {
        let (a, b) = get(f);
        rows.push(row(name, a, b, better, digits));
    };
    add(
        "command messages delivered/s",
        |f| f.command_deliveries_per_s,
        Better::Higher,
        0,
    );
    add(
        "all messages delivered/s",
        |f| f.delivered_per_s,
        Better::Neither,
        0,
    );
    add("command latency p50, ms", |f| f.p50_ms, Better::Lower, 3);
    add("command latency p99, ms", |f| f.p99_ms, Better::Lower, 3);
    add("command latency p99.9, ms", |f| f.p999_ms, Better::Lower, 3);
    add(
        "server CPU, % of one core",
        |f| f.server_cpu_pct,
        Better::Lower,
        1,
    );
    add(
        "server µs CPU per delivered message",
        |f| f.server_cpu_us_per_delivery,
        Better::Lower,
        2,
    );
    add(
        "server µs CPU per command delivery",
        |f| f.server_cpu_us_per_command_delivery,
        Better::Lower,
        2,
    );
    add("server RSS, MiB", |f| f.server_rss_mib, Better::Lower, 1);
    add(
        "load generator CPU, % of one core",
        |f| f.load_generator_cpu_pct,
        Better::Neither,
        0,
    );
    add(
        "errors + lost connections",
        |f| Some(f.errors as f64),
        Better::Neither,
        0,
    );
    rows
}

fn idle_rows(l: Option<&IdleFigures>, s: Option<&IdleFigures>) -> Vec<Row> {
    let largest = |f: Option<&IdleFigures>| f.and_then(|f| f.largest);
    let clients = largest(l)
        .or(largest(s))
        .map_or_else(|| "the largest step".into(), |(n, _)| number(n as f64, 0));
    vec![
        row(
            "RSS per idle client (slope), KiB",
            l.and_then(|f| f.rss_kib_per_client),
            s.and_then(|f| f.rss_kib_per_client),
            Better::Lower,
            2,
        ),
        row(
            "RSS fit intercept, MiB",
            l.and_then(|f| f.intercept_mib),
            s.and_then(|f| f.intercept_mib),
            Better::Lower,
            1,
        ),
        row(
            &format!("RSS at {clients} idle clients, MiB"),
            largest(l).map(|x| x.1),
            largest(s).map(|x| x.1),
            Better::Lower,
            1,
        ),
    ]
}

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| figure | lockstep | syncplay | lockstep / syncplay | reads |\n|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            r.figure,
            cell(r.lockstep, r.digits),
            cell(r.syncplay, r.digits),
            cell(r.lockstep_over_syncplay, 3),
            r.reads
        );
    }
    t
}

// --- The run -----------------------------------------------------------------------------------

/// The binary `name` next to this one, or `given`.
fn find_bin(given: Option<&PathBuf>, name: &str) -> Result<PathBuf, String> {
    let path = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this binary's folder: {e}"))?
            .parent()
            .ok_or("this binary has no folder")?
            .join(name),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found; build it: cargo build --release -p lockstep-relay -p lockstep-benches \
             --bin lockstep --bin lockstep-load --bin syncplay-load --bin lockstep-compare \
             (or give --{name} PATH)",
            path.display()
        ))
    }
}

/// Both systems' runs at one rate.
#[derive(Debug, Serialize)]
struct RatePair {
    commands_per_sec_per_room: f64,
    offered_command_deliveries_per_s: f64,
    lockstep: ChildRun,
    syncplay: ChildRun,
    lockstep_figures: Option<LoadFigures>,
    syncplay_figures: Option<LoadFigures>,
    rows: Vec<Row>,
}

/// Both systems' idle runs.
#[derive(Debug, Serialize)]
struct IdlePair {
    lockstep: ChildRun,
    syncplay: ChildRun,
    lockstep_figures: Option<IdleFigures>,
    syncplay_figures: Option<IdleFigures>,
    rows: Vec<Row>,
}

/// Figures from a child's JSON, an extraction failure recorded as the run's error.
fn figures<T>(run: &mut ChildRun, extract: fn(&Value) -> Result<T, String>) -> Option<T> {
    let result = extract(run.usable()?);
    match result {
        Ok(f) => Some(f),
        Err(e) => {
            run.error = Some(
                run.error
                    .take()
                    .map_or(e.clone(), |old| format!("{old}; {e}")),
            );
            None
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.trim().to_owned())
}

fn main_inner(cli: Cli) -> Result<bool, String> {
    let plan = Plan::from_cli(&cli)?;
    let lockstep_bin = find_bin(cli.lockstep_load.as_ref(), "lockstep-load")?;
    let syncplay_bin = find_bin(cli.syncplay_load.as_ref(), "syncplay-load")?;
    let started_unix = unix_now();
    let loadavg_start = loadavg();
    let dir = std::env::temp_dir().join(format!("lockstep-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let with_extra = |mut args: Vec<OsString>, extra: &[String]| {
        args.extend(extra.iter().map(OsString::from));
        args
    };
    let runs = plan.commands_per_sec.len() * 2 + if plan.idle_steps.is_empty() { 0 } else { 2 };
    let mut n = 0;
    let mut label = |what: String| {
        n += 1;
        format!("[{n}/{runs}] {what}")
    };

    let mut pairs = Vec::new();
    for &rate in &plan.commands_per_sec {
        let tag = rate.to_string().replace('.', "_");
        let l_out = dir.join(format!("lockstep-{tag}.json"));
        let s_out = dir.join(format!("syncplay-{tag}.json"));
        let mut lockstep = run_child(
            &label(format!("lockstep, {rate} cmd/s per room")),
            &lockstep_bin,
            with_extra(plan.lockstep_load_args(rate, &l_out), &cli.lockstep_arg),
            &l_out,
            plan.load_timeout(),
        );
        let mut syncplay = run_child(
            &label(format!("syncplay, {rate} cmd/s per room")),
            &syncplay_bin,
            with_extra(plan.syncplay_load_args(rate, &s_out), &cli.syncplay_arg),
            &s_out,
            plan.load_timeout(),
        );
        let lockstep_figures = figures(&mut lockstep, lockstep_load_figures);
        let syncplay_figures = figures(&mut syncplay, syncplay_load_figures);
        let rows = load_rows(lockstep_figures.as_ref(), syncplay_figures.as_ref());
        pairs.push(RatePair {
            commands_per_sec_per_room: rate,
            offered_command_deliveries_per_s: plan.offered(rate),
            lockstep,
            syncplay,
            lockstep_figures,
            syncplay_figures,
            rows,
        });
    }

    let idle = if plan.idle_steps.is_empty() {
        None
    } else {
        let l_out = dir.join("lockstep-idle.json");
        let s_out = dir.join("syncplay-idle.json");
        let mut lockstep = run_child(
            &label("lockstep, idle steps".into()),
            &lockstep_bin,
            with_extra(plan.lockstep_idle_args(&l_out), &cli.lockstep_arg),
            &l_out,
            plan.idle_timeout(),
        );
        let mut syncplay = run_child(
            &label("syncplay, idle steps".into()),
            &syncplay_bin,
            with_extra(plan.syncplay_idle_args(&s_out), &cli.syncplay_arg),
            &s_out,
            plan.idle_timeout(),
        );
        let lockstep_figures = figures(&mut lockstep, lockstep_idle_figures);
        let syncplay_figures = figures(&mut syncplay, syncplay_idle_figures);
        let rows = idle_rows(lockstep_figures.as_ref(), syncplay_figures.as_ref());
        Some(IdlePair {
            lockstep,
            syncplay,
            lockstep_figures,
            syncplay_figures,
            rows,
        })
    };

    let version = pairs
        .iter()
        .map(|p| &p.syncplay)
        .chain(idle.as_ref().map(|i| &i.syncplay))
        .find_map(|r| r.raw.as_ref().and_then(syncplay_version));
    print!("{}", text(&plan, &pairs, idle.as_ref(), version.as_deref()));

    let failed: Vec<&ChildRun> = pairs
        .iter()
        .flat_map(|p| [&p.lockstep, &p.syncplay])
        .chain(idle.iter().flat_map(|i| [&i.lockstep, &i.syncplay]))
        .filter(|r| r.error.is_some())
        .collect();
    let ok = failed.is_empty();
    if let Some(path) = &cli.json {
        let out = json!({
            "bench": "lockstep-compare",
            "ok": ok,
            "date_utc": lockstep_benches::date::utc_date(started_unix),
            "started_unix": started_unix,
            "options": plan,
            "machine": {
                "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
                "loadavg_at_start": loadavg_start,
                "loadavg_at_end": loadavg(),
            },
            "syncplay_server_version": version,
            "method": {
                "order": "per rate: lockstep-load, then syncplay-load, never at once; then both idle runs",
                "command_messages_delivered": "each member's first receipt of each command (lockstep: command latency samples over the window; syncplay: command_deliveries_per_sec)",
                "cpu_per_delivered_message": "server CPU time in the window over every message every client received (the message mixes differ: lockstep pongs and stats, Syncplay's State each second)",
                "cpu_per_command_delivery": "server CPU time in the window over the command deliveries",
                "idle_rss_per_client": "least-squares slope of server RSS over idle clients; each step read idle_settle_s after it was reached",
                "lockstep_chat": "none (--chat-per-sec 0), as Syncplay's load has none",
            },
            "load": pairs,
            "idle": idle,
        });
        let text = serde_json::to_string_pretty(&out).map_err(|e| format!("serialise: {e}"))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        println!("\nresults: {}", path.display());
    }
    if ok && !cli.keep_temp {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!(
            "[lockstep-compare] the children's JSON is kept in {}",
            dir.display()
        );
    }
    for r in &failed {
        eprintln!(
            "[lockstep-compare] failed: {}: {}",
            r.command,
            r.error.as_deref().unwrap_or("")
        );
    }
    Ok(ok)
}

/// The tables, as printed.
fn text(plan: &Plan, pairs: &[RatePair], idle: Option<&IdlePair>, version: Option<&str>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nlockstep vs Syncplay {} under the same command load, one after the other on this machine",
        version.unwrap_or("(version unknown)")
    );
    for p in pairs {
        let _ = writeln!(
            t,
            "\n### {} cmd/s per room: {} rooms × {} members, lockstep over {}, {} s window after {} s warm-up (offered: {} command messages/s)\n",
            p.commands_per_sec_per_room,
            plan.rooms,
            plan.members,
            transport_label(&plan.transport),
            plan.duration_s,
            plan.warmup_s,
            number(p.offered_command_deliveries_per_s, 0)
        );
        t.push_str(&table(&p.rows));
        for (who, run) in [("lockstep", &p.lockstep), ("syncplay", &p.syncplay)] {
            if let Some(e) = &run.error {
                let _ = writeln!(t, "{who}: {e}");
            }
        }
        if let Some(f) = &p.lockstep_figures
            && f.status != "ok"
        {
            let _ = writeln!(t, "lockstep run status: {}", f.status);
        }
    }
    if let Some(i) = idle {
        let _ = writeln!(
            t,
            "\n### Idle memory: rooms of {}, steps {} clients, each read {} s after it was reached (lockstep over {})\n",
            plan.members,
            join(&plan.idle_steps),
            plan.idle_settle_s,
            transport_label(&plan.transport)
        );
        t.push_str(&table(&i.rows));
        let notes = idle_notes(i.lockstep.raw.as_ref(), i.syncplay.raw.as_ref());
        if !notes.is_empty() {
            let _ = writeln!(t, "{}", notes.join("; "));
        }
        for (who, run) in [("lockstep", &i.lockstep), ("syncplay", &i.syncplay)] {
            if let Some(e) = &run.error {
                let _ = writeln!(t, "{who}: {e}");
            }
        }
    }
    t
}

fn main() -> ExitCode {
    match main_inner(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("lockstep-compare: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_read_as_which_system_is_better() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(f64::NAN), Some(1.0)), None);
        assert_eq!(
            reading(Some(10.2), Some(38.0), Better::Lower),
            "lockstep 3.73× lower"
        );
        assert_eq!(
            reading(Some(11.1), Some(5.5), Better::Lower),
            "syncplay 2.02× lower"
        );
        assert_eq!(
            reading(Some(118_000.0), Some(18_000.0), Better::Higher),
            "lockstep 6.56× higher"
        );
        assert_eq!(
            reading(Some(10_000.0), Some(9_990.0), Better::Higher),
            "about equal"
        );
        assert_eq!(
            reading(Some(0.2), Some(60.0), Better::Lower),
            "lockstep 300× lower"
        );
        assert_eq!(
            reading(Some(0.0), Some(3.0), Better::Lower),
            "lockstep lower (0 vs 3.00)"
        );
        assert_eq!(reading(Some(0.0), Some(0.0), Better::Lower), "about equal");
        assert_eq!(reading(Some(1.0), Some(2.0), Better::Neither), "");
        assert_eq!(reading(None, Some(2.0), Better::Lower), "");
        assert_eq!(factor(37.24), "37.2×");
    }

    #[test]
    fn numbers_and_cells() {
        assert_eq!(number(1_234_567.4, 0), "1,234,567");
        assert_eq!(number(-1_234.0, 0), "-1,234");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(0.23456, 3), "0.235");
        assert_eq!(number(f64::NAN, 1), "-");
        assert_eq!(cell(None, 2), "-");
        let r = row("p50, ms", Some(0.25), Some(0.75), Better::Lower, 3);
        let t = table(&[r]);
        assert!(
            t.contains("| p50, ms | 0.250 | 0.750 | 0.333 | lockstep 3.00× lower |"),
            "{t}"
        );
        let r = row("load", Some(50.0), Some(25.0), Better::Neither, 0);
        assert_eq!(r.lockstep_over_syncplay, None);
        assert!(table(&[r]).contains("| load | 50 | 25 | - |  |"));
    }

    const LOCKSTEP_LOAD: &str = r#"{
        "bench": "lockstep-load", "status": "ok",
        "steps": [{
            "clients_target": 2000, "clients_connected": 2000, "rooms": 100,
            "window_s": 20.0,
            "latency": {
                "command": {"count": 200000, "mean_ms": 0.3, "p50_ms": 0.25, "p90_ms": 0.5,
                            "p99_ms": 0.9, "p999_ms": 2.5, "max_ms": 9.0},
                "ping_rtt": {"count": 1, "mean_ms": 1, "p50_ms": 1, "p90_ms": 1, "p99_ms": 1,
                             "p999_ms": 1, "max_ms": 1}
            },
            "deliveries_per_s": 16000.0,
            "deliveries_by_type": {"state_update": 10000.0, "pong": 6000.0},
            "relay": {"cpu_s": 2.0, "cpu_pct": 10.0, "rss_kb": 40960, "peak_rss_kb": 50000,
                      "threads": 3},
            "load": {"cpu_s": 8.0, "cpu_pct": 40.0, "rss_kb": 1, "peak_rss_kb": 1, "threads": 3},
            "relay_cpu_us_per_delivery": 6.25,
            "errors_by_code": {"rate_limited": 2},
            "errors_by_kind": {"closed": 1},
            "something_new": [1, 2, 3]
        }],
        "rss_fit_kb_per_client": null
    }"#;

    const SYNCPLAY_LOAD: &str = r#"{"runs": [{
        "system": "syncplay", "server_version": "1.7.0", "server_command": "python3 ...",
        "load": {
            "rooms": 100, "members": 20, "clients": 2000, "commands_per_sec_per_room": 5.0,
            "window_secs": 20.0, "commands": 10000,
            "command_deliveries": 199000, "command_deliveries_expected": 200000,
            "command_deliveries_per_sec": 9950.0, "delivered_per_sec": 12000.0,
            "latency_ms": {"samples": 199000, "p50": 0.7, "p99": 2.5, "p999": 8.0,
                           "max": 20.0, "mean": 0.9},
            "server": {"cpu_percent": 50.0, "cpu_us_per_delivery": 41.7,
                       "cpu_us_per_command_delivery": 50.25, "rss_kib": 102400,
                       "rss_kib_max": 102400, "samples": []},
            "load_generator_cpu_percent": 30.0, "other_cpu_percent": 2.0,
            "disconnects": 1, "errors": ["x"], "error_count": 1
        },
        "idle": null
    }]}"#;

    #[test]
    fn load_figures_come_from_both_jsons() {
        let v: Value = serde_json::from_str(LOCKSTEP_LOAD).unwrap();
        let l = lockstep_load_figures(&v).unwrap();
        assert_eq!(l.command_deliveries_per_s, Some(10_000.0));
        assert_eq!(l.delivered_per_s, Some(16_000.0));
        assert_eq!(
            (l.p50_ms, l.p99_ms, l.p999_ms),
            (Some(0.25), Some(0.9), Some(2.5))
        );
        assert_eq!(l.server_cpu_pct, Some(10.0));
        assert_eq!(l.server_cpu_us_per_delivery, Some(6.25));
        assert_eq!(l.server_cpu_us_per_command_delivery, Some(10.0));
        assert_eq!(l.server_rss_mib, Some(40.0));
        assert_eq!(l.load_generator_cpu_pct, Some(40.0));
        assert_eq!(l.errors, 3);
        assert_eq!(l.status, "ok");

        let v: Value = serde_json::from_str(SYNCPLAY_LOAD).unwrap();
        let s = syncplay_load_figures(&v).unwrap();
        assert_eq!(s.command_deliveries_per_s, Some(9_950.0));
        assert_eq!(
            (s.p50_ms, s.p99_ms, s.p999_ms),
            (Some(0.7), Some(2.5), Some(8.0))
        );
        assert_eq!(s.server_cpu_us_per_command_delivery, Some(50.25));
        assert_eq!(s.server_rss_mib, Some(100.0));
        assert_eq!(s.errors, 2);
        assert_eq!(syncplay_version(&v).as_deref(), Some("1.7.0"));
        assert!(syncplay_idle_figures(&v).is_err());

        let rows = load_rows(Some(&l), Some(&s));
        let p50 = rows.iter().find(|r| r.figure.contains("p50")).unwrap();
        assert_eq!(p50.reads, "lockstep 2.80× lower");
        let t = table(&rows);
        assert!(
            t.contains("| command messages delivered/s | 10,000 | 9,950 | 1.005 | about equal |"),
            "{t}"
        );
        assert!(t.contains("| server µs CPU per command delivery | 10.00 | 50.25 | 0.199 | lockstep 5.03× lower |"), "{t}");
    }

    #[test]
    fn idle_figures_come_from_both_jsons() {
        let v = json!({
            "status": "ok",
            "steps": [
                {"clients_connected": 500, "relay": {"cpu_s": 0.1, "cpu_pct": 1.0, "rss_kb": 20480}},
                {"clients_connected": 1000, "relay": {"cpu_s": 0.1, "cpu_pct": 1.0, "rss_kb": 25600}}
            ],
            "rss_fit_kb_per_client": {"slope": 10.24, "intercept": 15360.0, "r2": 1.0, "points": 2}
        });
        let l = lockstep_idle_figures(&v).unwrap();
        assert_eq!(l.rss_kib_per_client, Some(10.24));
        assert_eq!(l.intercept_mib, Some(15.0));
        assert_eq!(l.largest, Some((1000, 25.0)));
        assert_eq!(idle_notes(Some(&v), None), vec!["lockstep fit r² 1.0000"]);

        let v = json!({"runs": [{"server_version": "1.7.0", "load": null, "idle": {
            "members_per_room": 20, "baseline_rss_kib": 59904,
            "steps": [{"clients": 500, "rss_kib": 62464, "cpu_percent": 1.0},
                      {"clients": 1000, "rss_kib": 65024, "cpu_percent": 2.0}],
            "rss_bytes_per_client": 5120.0, "fit_intercept_kib": 59904.0,
            "cpu_us_per_client_second": 20.0, "disconnects": 0
        }}]});
        let s = syncplay_idle_figures(&v).unwrap();
        assert_eq!(s.rss_kib_per_client, Some(5.0));
        assert_eq!(s.intercept_mib, Some(58.5));
        assert_eq!(s.largest, Some((1000, 63.5)));
        assert!(syncplay_load_figures(&v).is_err());

        let rows = idle_rows(Some(&l), Some(&s));
        assert_eq!(rows[0].reads, "syncplay 2.05× lower");
        assert_eq!(rows[2].figure, "RSS at 1,000 idle clients, MiB");
        // Missing one side: no ratio, no reading.
        let rows = idle_rows(None, Some(&s));
        assert_eq!(rows[0].lockstep_over_syncplay, None);
        assert_eq!(rows[0].reads, "");
    }

    #[test]
    fn missing_fields_are_tolerated_and_empty_results_refused() {
        let l = lockstep_load_figures(&json!({"steps": [{}]})).unwrap();
        assert_eq!(l.p50_ms, None);
        assert_eq!(l.command_deliveries_per_s, Some(0.0));
        assert_eq!(l.status, "?");
        assert!(lockstep_load_figures(&json!({"steps": []})).is_err());
        assert!(lockstep_load_figures(&json!({"steps": "no"})).is_err());
        assert!(syncplay_load_figures(&json!({})).is_err());
        let s = syncplay_load_figures(&json!({"runs": [{"load": {}}]})).unwrap();
        assert_eq!(s.p50_ms, None);
    }

    #[test]
    fn options_become_the_childrens_arguments() {
        let cli = Cli::parse_from([
            "lockstep-compare",
            "--rooms",
            "20",
            "--commands-per-sec",
            "5,2.5",
            "--duration",
            "5",
            "--warmup",
            "2",
        ]);
        let plan = Plan::from_cli(&cli).unwrap();
        assert_eq!(plan.idle_steps, vec![500, 1000, 2000]);
        assert_eq!(plan.offered(5.0), 2000.0);
        assert_eq!(plan.load_timeout(), Duration::from_secs(127));
        assert_eq!(plan.idle_timeout(), Duration::from_secs(3 * 10 + 120));
        let words = |a: Vec<OsString>| shell_words(Path::new("x"), &a);
        assert_eq!(
            words(plan.lockstep_load_args(2.5, Path::new("/t/l.json"))),
            "x --scenario small-rooms --clients 400 --rooms 20 --room-size 20 \
             --commands-per-sec 2.5 --chat-per-sec 0 --duration 5 --warmup 2 --transport ws \
             --json /t/l.json"
        );
        assert_eq!(
            words(plan.syncplay_load_args(5.0, Path::new("/t/s.json"))),
            "x --rooms 20 --members 20 --commands-per-sec 5 --duration 5 --warmup 2 \
             --idle-steps '' --quiet --out /t/s.json"
        );
        assert_eq!(
            words(plan.lockstep_idle_args(Path::new("/t/li.json"))),
            "x --scenario steps --step-load idle --steps 500,1000,2000 --room-size 20 \
             --warmup 0 --duration 5 --transport ws --json /t/li.json"
        );
        assert_eq!(
            words(plan.syncplay_idle_args(Path::new("/t/si.json"))),
            "x --members 20 --commands-per-sec 0 --idle-steps 500,1000,2000 --idle-settle 5 \
             --quiet --out /t/si.json"
        );
        // The generated lockstep-load arguments parse as lockstep-load's own.
        let mut argv = vec![OsString::from("lockstep-load")];
        argv.extend(plan.lockstep_idle_args(Path::new("/t/li.json")));
        assert!(lockstep_benches::load::Args::try_parse_from(argv).is_ok());
        let mut argv = vec![OsString::from("lockstep-load")];
        argv.extend(plan.lockstep_load_args(5.0, Path::new("/t/l.json")));
        assert!(lockstep_benches::load::Args::try_parse_from(argv).is_ok());
    }

    #[test]
    fn bad_options_are_refused() {
        let plan = |args: &[&str]| {
            let mut v = vec!["lockstep-compare"];
            v.extend_from_slice(args);
            Plan::from_cli(&Cli::parse_from(v))
        };
        assert!(plan(&["--commands-per-sec", "0"]).is_err());
        assert!(plan(&["--rooms", "0"]).is_err());
        assert!(plan(&["--duration", "0"]).is_err());
        assert!(plan(&["--idle-steps", "1000,500"]).is_err());
        assert!(plan(&["--idle-steps", "1000"]).is_err());
        assert!(plan(&["--idle-steps", "x,2"]).is_err());
        assert_eq!(
            plan(&["--idle-steps", ""]).unwrap().idle_steps,
            Vec::<usize>::new()
        );
        assert_eq!(
            plan(&["--transport", "wt"]).unwrap().transport,
            "wt".to_owned()
        );
        let with_extra = Cli::parse_from([
            "lockstep-compare",
            "--lockstep-arg",
            "--threads=1",
            "--lockstep-arg=--seed=2",
        ]);
        assert_eq!(with_extra.lockstep_arg, vec!["--threads=1", "--seed=2"]);
    }
}
