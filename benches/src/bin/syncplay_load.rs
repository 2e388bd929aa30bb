//! `syncplay-load`: the peer of the load benchmark. Debian's `syncplay-server` under
//! lockstep's command load: rooms of 20 clients, a host per room sending seeks and pauses,
//! every member timing its receipt; then idle clients in steps for the memory per client.
//! The method is in `load/syncplay_peer.rs`.
//!
//! ```sh
//! cargo build --release -p lockstep-benches --bin syncplay-load
//! target/release/syncplay-load --rooms 50 --commands-per-sec 1,5,10,15 --duration 20
//! target/release/syncplay-load --rooms 100 --commands-per-sec 10 --idle-steps '' --json
//! ```
//!
//! Needs `syncplay-server` (Debian package; its Python modules are run with
//! `/usr/bin/python3`, see `--python`).

#[allow(unreachable_pub, dead_code)]
#[path = "../load/syncplay_peer.rs"]
mod syncplay_peer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use syncplay_peer::{IdleResult, LoadResult, SyncplayLoadOptions, SyncplayLoadReport, run};

/// Syncplay's server under lockstep's command load.
#[derive(Parser)]
#[command(name = "syncplay-load", version)]
struct Cli {
    /// Rooms under command load.
    #[arg(long, default_value_t = 50)]
    rooms: usize,
    /// Clients per room, the host included.
    #[arg(long, default_value_t = 20)]
    members: usize,
    /// Commands per second in each room; several (comma-separated) run one after another,
    /// each on a fresh server. 0 skips the load phase.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    commands_per_sec: Vec<f64>,
    /// Measured window of each load run, seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Commands before the window, seconds.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Idle clients to hold in turn for the memory per client (comma-separated; '' skips).
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000,2000")]
    idle_steps: Vec<String>,
    /// Seconds each idle step is held before its RSS is read.
    #[arg(long, default_value_t = 6.0)]
    idle_settle: f64,
    /// Python with Syncplay's server modules and Twisted.
    #[arg(long, default_value = "/usr/bin/python3")]
    python: PathBuf,
    /// Print the results as JSON on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
    /// Also write the JSON results here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// Where the server's logs go [default: a folder in the temp dir].
    #[arg(long)]
    log_dir: Option<PathBuf>,
}

/// Everything one invocation measured.
#[derive(Serialize)]
struct Output {
    /// One report per load run (commands per second), the idle phase in the last.
    runs: Vec<SyncplayLoadReport>,
}

fn secs(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("--{what}: {s} is not a duration"))
}

async fn main_inner(cli: Cli) -> Result<(), String> {
    let idle_steps: Vec<usize> = cli
        .idle_steps
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| format!("--idle-steps: {s} is not a count"))
        })
        .collect::<Result<_, _>>()?;
    let base = SyncplayLoadOptions {
        python: cli.python.clone(),
        rooms: cli.rooms,
        members: cli.members,
        commands_per_sec: 0.0,
        warmup: secs(cli.warmup, "warmup")?,
        duration: secs(cli.duration, "duration")?,
        idle_steps: Vec::new(),
        idle_settle: secs(cli.idle_settle, "idle-settle")?,
        progress: !cli.quiet,
        log_dir: cli.log_dir.clone(),
        ..SyncplayLoadOptions::default()
    };
    let rates: Vec<f64> = cli
        .commands_per_sec
        .iter()
        .copied()
        .filter(|r| *r > 0.0)
        .collect();
    let mut runs = Vec::new();
    let last = rates.len();
    for (i, rate) in rates.iter().enumerate() {
        let opts = SyncplayLoadOptions {
            commands_per_sec: *rate,
            idle_steps: if i + 1 == last {
                idle_steps.clone()
            } else {
                Vec::new()
            },
            ..base.clone()
        };
        runs.push(run(opts).await.map_err(|e| e.to_string())?);
    }
    if rates.is_empty() && !idle_steps.is_empty() {
        let opts = SyncplayLoadOptions {
            idle_steps,
            ..base.clone()
        };
        runs.push(run(opts).await.map_err(|e| e.to_string())?);
    }
    let output = Output { runs };
    let json = serde_json::to_string_pretty(&output).map_err(|e| e.to_string())?;
    if let Some(path) = &cli.out {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        std::fs::write(path, &json).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    if cli.json {
        println!("{json}");
    } else {
        print_tables(&output.runs);
    }
    Ok(())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn print_tables(runs: &[SyncplayLoadReport]) {
    if let Some(r) = runs.first() {
        println!(
            "Syncplay {} ({})",
            r.server_version.as_deref().unwrap_or("?"),
            r.server_command
        );
    }
    let loads: Vec<&LoadResult> = runs.iter().filter_map(|r| r.load.as_ref()).collect();
    if !loads.is_empty() {
        println!(
            "\n| rooms x members | cmd/s/room | commands | delivered/s | cmd deliveries/s | got/expected | p50 ms | p99 ms | p99.9 ms | max ms | server CPU | µs/delivery | RSS MiB | load gen CPU | other CPU | late | disconnects |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for l in &loads {
            println!(
                "| {} x {} | {} | {} | {:.0} | {:.0} | {}/{} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}% | {} | {:.1} | {:.0}% | {:.0}% | {} | {} |",
                l.rooms,
                l.members,
                l.commands_per_sec_per_room,
                l.commands,
                l.delivered_per_sec,
                l.command_deliveries_per_sec,
                l.command_deliveries,
                l.command_deliveries_expected,
                l.latency_ms.p50,
                l.latency_ms.p99,
                l.latency_ms.p999,
                l.latency_ms.max,
                l.server.cpu_percent,
                opt(l.server.cpu_us_per_delivery, 1),
                l.server.rss_kib as f64 / 1024.0,
                l.load_generator_cpu_percent,
                l.other_cpu_percent,
                l.commands_late,
                l.disconnects,
            );
        }
        let best = loads
            .iter()
            .filter(|l| l.latency_ms.samples > 0 && l.latency_ms.p99 <= 10.0)
            .max_by(|a, b| a.delivered_per_sec.total_cmp(&b.delivered_per_sec));
        match best {
            Some(b) => println!(
                "\nMost delivered messages/s at p99 <= 10 ms: {:.0}/s ({} rooms x {} at {} cmd/s/room)",
                b.delivered_per_sec, b.rooms, b.members, b.commands_per_sec_per_room
            ),
            None => println!("\nNo run kept p99 <= 10 ms."),
        }
        for l in &loads {
            if l.error_count > 0 {
                println!(
                    "errors at {} cmd/s/room: {} ({:?})",
                    l.commands_per_sec_per_room, l.error_count, l.errors
                );
            }
        }
    }
    for idle in runs.iter().filter_map(|r| r.idle.as_ref()) {
        print_idle(idle);
    }
}

fn print_idle(idle: &IdleResult) {
    println!(
        "\nIdle clients (rooms of {}), fresh server at {:.1} MiB:",
        idle.members_per_room,
        idle.baseline_rss_kib as f64 / 1024.0
    );
    println!("| idle clients | RSS MiB | server CPU |");
    println!("|---|---|---|");
    for s in &idle.steps {
        println!(
            "| {} | {:.1} | {:.1}% |",
            s.clients,
            s.rss_kib as f64 / 1024.0,
            s.cpu_percent
        );
    }
    println!(
        "RSS per idle client (slope): {} bytes; server CPU per idle client: {} µs/s; disconnects: {}",
        opt(idle.rss_bytes_per_client, 0),
        opt(idle.cpu_us_per_client_second, 1),
        idle.disconnects
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_inner(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syncplay-load: {e}");
            ExitCode::FAILURE
        }
    }
}
