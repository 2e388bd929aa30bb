//! `lockstep-sync`: the sync benchmark. N real mpv players are kept together by lockstep
//! (relay + `lockstep-mpv`) and, in the same run and on the same emulated link, by Syncplay;
//! one member plays, seeks, pauses, resumes and sets 1.25x through its mpv; the positions of
//! all players are read at one instant about ten times a second; the inter-player
//! difference, convergence times and corrective seeks and rate changes are reported side by
//! side, as a table on stdout and as JSON.
//!
//! ```sh
//! cargo build --release -p lockstep-relay -p lockstep-client -p lockstep-benches
//! target/release/lockstep-sync                 # 4 conditions x 2 systems x 3 min
//! target/release/lockstep-sync --quick --conditions clean
//! ```
//!
//! Needs `mpv` and `ffmpeg`; the Syncplay runs need `syncplay`, `syncplay-server` and root
//! (for `unshare --net`, see `sync::syncplay`). See docs/BENCHMARKS.md for the method and
//! figures.

#[path = "../sync/mod.rs"]
mod sync;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use serde_json::json;

use sync::process::{on_path, output};
use sync::report::{self, RunResult};
use sync::scenario::{self, Condition, Step};
use sync::{Context, Result, err};

/// The sync benchmark: lockstep vs Syncplay, real mpv players, emulated links.
#[derive(Parser)]
#[command(name = "lockstep-sync", version)]
struct Cli {
    /// Players per room (the last one has the fast clock in `fast-clock`).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=6))]
    players: u8,
    /// Conditions to run: clean, delay50, delay150, fast-clock (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "clean,delay50,delay150,fast-clock"
    )]
    conditions: Vec<String>,
    /// Systems to run: syncplay, lockstep (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "syncplay,lockstep")]
    systems: Vec<String>,
    /// Length of the scripted part of each run (all holds), seconds; set-up comes on top.
    #[arg(long, default_value_t = 180)]
    script_secs: u64,
    /// Smoke run: a 30 s script.
    #[arg(long)]
    quick: bool,
    /// Seed of the link emulator's random delays and losses.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the JSON results [default: target/sync-bench/results.json].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The relay binary [default: `lockstep` next to this binary, else target/{release,debug}].
    #[arg(long)]
    lockstep_bin: Option<PathBuf>,
    /// The `lockstep-mpv` binary [default: found like the relay].
    #[arg(long)]
    lockstep_mpv_bin: Option<PathBuf>,
    /// Force lockstep's transport: `webtransport` or `websocket` (passed to `lockstep-mpv
    /// --transport`) [default: its own choice, WebTransport with WebSocket fallback].
    #[arg(long, value_parser = ["webtransport", "websocket"])]
    lockstep_transport: Option<String>,
    /// Use this clip instead of generating one (it needs audio and >= 10 minutes).
    #[arg(long)]
    clip: Option<PathBuf>,
    /// Keep the temporary folder (logs, sockets, clip) after the run.
    #[arg(long)]
    keep_temp: bool,
    #[command(subcommand)]
    internal: Option<Internal>,
}

#[derive(Subcommand)]
enum Internal {
    /// Runs inside Syncplay's network namespace (see `sync::syncplay`).
    #[command(hide = true)]
    NetnsForward {
        #[arg(long)]
        unix: PathBuf,
        #[arg(long)]
        log: PathBuf,
        #[arg(long)]
        lifetime_secs: u64,
    },
}

/// The lockstep binaries.
pub(crate) struct LockstepBins {
    /// The relay.
    pub(crate) relay: PathBuf,
    /// `lockstep-mpv`.
    pub(crate) mpv: PathBuf,
}

/// Everything one run (one system, one condition) needs.
pub(crate) struct RunContext {
    /// Its own temporary folder's parent.
    pub(crate) dir: PathBuf,
    /// The clip.
    pub(crate) clip: PathBuf,
    /// Players.
    pub(crate) players: usize,
    /// The condition.
    pub(crate) condition: Condition,
    /// The script.
    pub(crate) steps: Vec<Step>,
    /// The link emulator's seed.
    pub(crate) seed: u64,
    /// Prefix of progress lines.
    pub(crate) label: String,
    /// lockstep's binaries, if built.
    pub(crate) lockstep: Option<LockstepBins>,
    /// lockstep's forced transport, if any.
    pub(crate) lockstep_transport: Option<String>,
}

impl RunContext {
    /// The longest a run may take: its script plus four minutes of set-up and tear-down.
    pub(crate) fn lifetime(&self) -> Duration {
        self.steps.iter().map(|s| s.hold).sum::<Duration>() + Duration::from_secs(240)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lockstep-sync: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Internal::NetnsForward {
        unix,
        log,
        lifetime_secs,
    }) = &cli.internal
    {
        let r = runtime.block_on(sync::syncplay::serve_in_namespace(
            unix,
            log,
            Duration::from_secs(*lifetime_secs),
        ));
        if let Err(e) = &r {
            eprintln!("lockstep-sync netns-forward: {e}");
        }
        // Do not wait for the thread blocked on stdin.
        std::process::exit(i32::from(r.is_err()));
    }
    let result = runtime.block_on(async {
        tokio::select! {
            r = bench(cli) => r,
            _ = tokio::signal::ctrl_c() => err("interrupted"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockstep-sync: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `target/` of this workspace: this binary's grandparent if it sits in `target/<profile>/`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let profile = exe.parent()?;
            let target = profile.parent()?;
            (target.file_name()? == "target").then(|| target.to_owned())
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// A lockstep binary: given, or next to this one, or in target/release, or target/debug.
fn find_bin(given: Option<&PathBuf>, name: &str) -> Option<PathBuf> {
    if let Some(p) = given {
        return p.is_file().then(|| p.clone());
    }
    let here = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned));
    let target = target_dir();
    [
        here,
        Some(target.join("release")),
        Some(target.join("debug")),
    ]
    .into_iter()
    .flatten()
    .map(|d| d.join(name))
    .find(|p| p.is_file())
}

/// Why Syncplay cannot run here, if it cannot.
async fn syncplay_missing() -> Option<String> {
    let missing: Vec<&str> = ["syncplay", "syncplay-server"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "skipped: install {} (apt-get install -y {})",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    for tool in ["unshare", "setpriv", "ip"] {
        if !on_path(tool) {
            return Some(format!("skipped: {tool} not found (util-linux / iproute2)"));
        }
    }
    if let Err(e) = output("unshare", &["--net", "true"], Duration::from_secs(5)).await {
        return Some(format!(
            "skipped: cannot create a network namespace ({e}); run as root"
        ));
    }
    None
}

async fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines().find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
    });
    let first_line = |s: Result<String>| s.ok().and_then(|s| s.lines().next().map(str::to_owned));
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        // Others' work on the machine skews timing: the load when the results were written.
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|l| l.trim().to_owned()),
        "cpu": cpu,
        "kernel": first_line(output("uname", &["-r"], Duration::from_secs(5)).await),
        "mpv": first_line(output("mpv", &["--version"], Duration::from_secs(10)).await),
        "syncplay": first_line(output("dpkg-query", &["-W", "-f", "${Version}", "syncplay"], Duration::from_secs(10)).await),
    })
}

async fn bench(cli: Cli) -> Result<()> {
    let script = Duration::from_secs(if cli.quick {
        30
    } else {
        cli.script_secs.max(20)
    });
    let steps = scenario::plan(script);
    let all = scenario::conditions();
    let mut conditions = Vec::new();
    for name in &cli.conditions {
        match all.iter().find(|c| c.name == name.as_str()) {
            Some(c) => conditions.push(c.clone()),
            None => {
                return err(format!(
                    "unknown condition {name:?} (clean, delay50, delay150, fast-clock)"
                ));
            }
        }
    }
    for s in &cli.systems {
        if s != "syncplay" && s != "lockstep" {
            return err(format!("unknown system {s:?} (syncplay, lockstep)"));
        }
    }
    for tool in ["mpv", "ffmpeg"] {
        if !on_path(tool) {
            return err(format!("{tool} not found: apt-get install -y mpv ffmpeg"));
        }
    }
    let syncplay_skip = if cli.systems.iter().any(|s| s == "syncplay") {
        syncplay_missing().await
    } else {
        None
    };
    let lockstep = match (
        find_bin(cli.lockstep_bin.as_ref(), "lockstep"),
        find_bin(cli.lockstep_mpv_bin.as_ref(), "lockstep-mpv"),
    ) {
        (Some(relay), Some(mpv)) => Some(LockstepBins { relay, mpv }),
        _ => None,
    };
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("lockstep-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
    let clip = match &cli.clip {
        Some(c) => c.clone(),
        None => {
            let seconds = scenario::clip_seconds(script);
            println!(
                "generating a {seconds} s test clip with ffmpeg in {}",
                dir.display()
            );
            let t = Instant::now();
            let clip = sync::clip::generate(&dir, seconds).await?;
            println!("  done in {:.0} s", t.elapsed().as_secs_f64());
            clip
        }
    };
    let floor_length = Duration::from_secs(if cli.quick { 6 } else { 20 });
    println!(
        "sampler floor: {} IPC clients on one mpv for {} s ...",
        cli.players,
        floor_length.as_secs()
    );
    let floor = sync::floor::measure(&dir, &clip, usize::from(cli.players), floor_length).await?;
    println!(
        "  p95 {} ms",
        floor.map_or("-".into(), |p| format!("{:.3}", p.p95_ms))
    );
    let total_runs = conditions.len() * cli.systems.len();
    println!(
        "{total_runs} runs ({} players, {} s script each): {}",
        cli.players,
        script.as_secs(),
        steps
            .iter()
            .map(|s| format!("{} +{:.0} s", s.action.name(), s.hold.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut runs = Vec::new();
    for condition in &conditions {
        for system in &cli.systems {
            let label = format!("[{system} {}]", condition.name);
            let players = usize::from(cli.players);
            let skip = match system.as_str() {
                "syncplay" => syncplay_skip.clone(),
                _ if lockstep.is_none() => Some(
                    "skipped: lockstep or lockstep-mpv not built \
                     (cargo build --release -p lockstep-relay -p lockstep-client)"
                        .to_owned(),
                ),
                _ => None,
            };
            if let Some(why) = skip {
                println!("{label} {why}");
                runs.push(RunResult::not_run(system, condition.name, players, why));
                continue;
            }
            println!("{label} {} ...", condition.description);
            let ctx = RunContext {
                dir: dir.clone(),
                clip: clip.clone(),
                players,
                condition: condition.clone(),
                steps: steps.clone(),
                seed: cli.seed,
                label: label.clone(),
                lockstep: lockstep.as_ref().map(|b| LockstepBins {
                    relay: b.relay.clone(),
                    mpv: b.mpv.clone(),
                }),
                lockstep_transport: cli.lockstep_transport.clone(),
            };
            let mut result = RunResult::not_run(system, condition.name, players, "ok".into());
            let t = Instant::now();
            let outcome = tokio::time::timeout(ctx.lifetime(), async {
                if system == "syncplay" {
                    sync::syncplay::run(&ctx, &mut result).await
                } else {
                    sync::lockstep::run(&ctx, &mut result).await
                }
            })
            .await;
            result.wall_s = t.elapsed().as_secs_f64();
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result.status = format!("failed: {e}"),
                Err(_) => result.status = format!("failed: over {:?}", ctx.lifetime()),
            }
            let o = result.overall;
            println!(
                "{label} {}: p50 {} p95 {} max {} ms, seeks after settle {}, rate changes after settle {} ({:.0} s)",
                result.status,
                o.map_or("-".into(), |p| format!("{:.1}", p.p50_ms)),
                o.map_or("-".into(), |p| format!("{:.1}", p.p95_ms)),
                o.map_or("-".into(), |p| format!("{:.1}", p.max_ms)),
                result.seeks_after_settle,
                result.speed_changes_after_settle,
                result.wall_s
            );
            runs.push(result);
        }
    }
    let comparisons = report::compare(&conditions, &runs);
    print!("{}", report::table(floor, &runs, &comparisons));
    let out = cli
        .out
        .unwrap_or_else(|| target_dir().join("sync-bench").join("results.json"));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).context(|| format!("create {}", parent.display()))?;
    }
    let results = json!({
        "bench": "lockstep-sync",
        "date_utc": lockstep_benches::date::utc_date(started),
        "started_unix": started,
        "machine": machine().await,
        "options": {
            "players": cli.players,
            "script_s": script.as_secs(),
            "seed": cli.seed,
            "steps": steps.iter().map(|s| json!({ "action": s.action.name(), "hold_s": s.hold.as_secs_f64() })).collect::<Vec<_>>(),
            "lockstep": lockstep.as_ref().map(|b| json!({ "relay": b.relay, "lockstep_mpv": b.mpv })),
            "lockstep_transport": cli.lockstep_transport.as_deref().unwrap_or("auto"),
        },
        "method": {
            "difference": "max - min of all players' positions (audio-pts) read over IPC and extrapolated to one instant",
            "sample_period_s": scenario::SAMPLE_EVERY.as_secs_f64(),
            "settle_s": report::SETTLE,
            "converged_below_ms": report::CONVERGED_MS,
            "converged_for_s": report::STAY,
            "discard_sample_if_ipc_rtt_over_ms": report::MAX_RTT_MS,
            "link_emulator": "own UDP and TCP proxies on loopback (benches/src/sync/link.rs): uniform delay base +- jitter per packet and direction, order preserved, Bernoulli loss for UDP, loss as a retransmission stall of max(200 ms, 2 base + 4 jitter) for TCP",
        },
        "sampler_floor": floor,
        "conditions": conditions,
        "runs": runs,
        "comparison": comparisons,
    });
    let text = serde_json::to_string_pretty(&results)
        .or_else(|e| err(format!("serialise results: {e}")))?;
    std::fs::write(&out, text).context(|| format!("write {}", out.display()))?;
    println!("\nresults: {}", out.display());
    let failed = runs.iter().any(|r| r.status.starts_with("failed"));
    if cli.keep_temp || failed {
        println!("logs and sockets kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
