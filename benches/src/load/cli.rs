//! The options of `lockstep-load`, and the defaults that depend on the scenario.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// What load to put on the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// Many rooms of 5-10 members; each room's host sends commands, one member chats.
    SmallRooms,
    /// One room of all clients; its host sends commands.
    BigRoom,
    /// One democratic room: members propose seeks, the others vote; proposal to decision
    /// latency is measured at every member.
    BigRoomDemocratic,
    /// Small rooms with chat, where a fraction of the clients stops reading its socket: the
    /// others' latency and the relay's memory must stay bounded, the slow ones get cut.
    SlowConsumer,
    /// Clients connect, say hello, join and then only ping: memory per client.
    Idle,
    /// Idle (or active) load at growing client counts (`--steps`): RSS per client as the slope
    /// of RSS over clients, and the ceiling (most clients held before p99 passes
    /// `--ceiling-p99-ms`).
    Steps,
}

impl ScenarioKind {
    /// Its name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ScenarioKind::SmallRooms => "small-rooms",
            ScenarioKind::BigRoom => "big-room",
            ScenarioKind::BigRoomDemocratic => "big-room-democratic",
            ScenarioKind::SlowConsumer => "slow-consumer",
            ScenarioKind::Idle => "idle",
            ScenarioKind::Steps => "steps",
        }
    }
}

/// Which transport the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportMix {
    /// WebSocket (binary MessagePack) only.
    Ws,
    /// WebTransport (control stream + datagrams) only.
    Wt,
    /// Every other client over WebTransport.
    Mix,
}

/// What each step of `steps` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepLoad {
    /// Pings only (memory per client).
    Idle,
    /// Rooms of `--room-size` with a host sending `--commands-per-sec` and stats/chat.
    Active,
}

/// The load benchmark: N clients into M rooms of a lockstep relay, one-way relay latency,
/// deliveries per second, connect rate, errors, and the relay's RSS and CPU.
///
/// By default it starts the release relay (`target/release/lockstep`, build it with `cargo
/// build --release -p lockstep-relay`) on loopback with limits raised so the load is not
/// throttled, and kills it at the end. Results: a table on stdout, JSON with `--json`, a
/// progress line on stderr every second. Every run is bounded by `--max-wall`.
#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "lockstep-load", version, verbatim_doc_comment)]
pub struct Args {
    /// Scenario.
    #[arg(long, value_enum, default_value_t = ScenarioKind::SmallRooms)]
    pub scenario: ScenarioKind,
    /// Clients to open (ignored by `steps`, which takes its counts from --steps).
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Rooms [default: small-rooms: sizes drawn in 5..=10; idle, slow-consumer and steps:
    /// clients / --room-size; big-room*: 1].
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Members per room for idle, slow-consumer and steps.
    #[arg(long, default_value_t = 10)]
    pub room_size: usize,
    /// Transport: ws, wt, or mix (every other client over WebTransport).
    #[arg(long, value_enum, default_value_t = TransportMix::Ws)]
    pub transport: TransportMix,
    /// Playback commands per second per room, from its host (seek with a position that names
    /// the command; every fourth a pause or play) [default: 10; big-room 2; idle 0].
    #[arg(long)]
    pub commands_per_sec: Option<f64>,
    /// Chat lines per second per room, from one member [default: 0.2; slow-consumer 100; idle 0].
    #[arg(long)]
    pub chat_per_sec: Option<f64>,
    /// Chat line length in bytes (padded; up to 500) [default: 0, just the line's number;
    /// slow-consumer 400].
    #[arg(long)]
    pub chat_bytes: Option<usize>,
    /// big-room-democratic: seek proposals per second per room (one open at a time).
    #[arg(long, default_value_t = 0.5)]
    pub proposals_per_sec: f64,
    /// big-room-democratic: members who may propose (taking turns).
    #[arg(long, default_value_t = 4)]
    pub proposers: usize,
    /// big-room-democratic: fraction of members that vote yes on each proposal.
    #[arg(long, default_value_t = 0.6)]
    pub vote_fraction: f64,
    /// slow-consumer: fraction of the members (never a host or a chatter) that stop reading.
    #[arg(long, default_value_t = 0.1)]
    pub slow_fraction: f64,
    /// steps: client counts, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,5000,10000,20000,50000"
    )]
    pub steps: Vec<usize>,
    /// steps: what each step runs.
    #[arg(long, value_enum, default_value_t = StepLoad::Idle)]
    pub step_load: StepLoad,
    /// steps: the p99 that marks the ceiling, ms (command latency when active, ping round
    /// trip when idle).
    #[arg(long, default_value_t = 10.0)]
    pub ceiling_p99_ms: f64,
    /// Seconds measured (per step for steps) [default: 20; slow-consumer 120: the relay's
    /// kernel send buffer (autotuned to megabytes) fills before its own queue does].
    #[arg(long)]
    pub duration: Option<u64>,
    /// Seconds of load after connecting and before measuring (per step for steps).
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Hard cap on the whole run, seconds [default: connect budget + warmup + duration (per
    /// step) + 60].
    #[arg(long)]
    pub max_wall: Option<u64>,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Seconds one client may take to connect, say hello and join before it counts as failed.
    #[arg(long, default_value_t = 20)]
    pub connect_timeout: u64,
    /// Loopback source addresses the clients bind to (127.0.0.2 and up): each gives about
    /// 28,000 ephemeral ports. Raised automatically when too few for the WebSocket clients.
    #[arg(long, default_value_t = 8)]
    pub source_addrs: u8,
    /// QUIC endpoints (UDP sockets) the WebTransport clients share, spread over the source
    /// addresses.
    #[arg(long, default_value_t = 8)]
    pub wt_endpoints: usize,
    /// Use the relay at this URL (http://host:port, its HTTP port) instead of starting one;
    /// `/api/config` gives the WebSocket and WebTransport URLs and certificate hashes. Its
    /// limits must let the load through (see the config file this tool writes otherwise).
    #[arg(long)]
    pub relay: Option<String>,
    /// With --relay: the relay's pid, to sample its RSS and CPU from /proc.
    #[arg(long, requires = "relay")]
    pub relay_pid: Option<u32>,
    /// The relay binary [default: `lockstep` next to this binary, else target/release].
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,
    /// RUST_LOG for the relay it starts (its log goes to a file; chatty logging would be
    /// measured too).
    #[arg(long, default_value = "warn")]
    pub relay_log_level: String,
    /// Write the JSON results here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the temporary folder (relay config and log) even when the run succeeded.
    #[arg(long)]
    pub keep_temp: bool,
    /// Seed of room sizes, roles and timer phases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads of the load generator [default: one per CPU].
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Args {
    /// Commands per second per room for this scenario.
    pub(crate) fn commands_rate(&self) -> f64 {
        self.commands_per_sec.unwrap_or(match self.scenario {
            ScenarioKind::SmallRooms | ScenarioKind::SlowConsumer => 10.0,
            ScenarioKind::BigRoom => 2.0,
            ScenarioKind::BigRoomDemocratic | ScenarioKind::Idle => 0.0,
            ScenarioKind::Steps => match self.step_load {
                StepLoad::Idle => 0.0,
                StepLoad::Active => 1.0,
            },
        })
    }

    /// Seconds measured per step.
    pub(crate) fn duration_secs(&self) -> u64 {
        self.duration.unwrap_or(match self.scenario {
            ScenarioKind::SlowConsumer => 120,
            _ => 20,
        })
    }

    /// Chat line length for this scenario.
    pub(crate) fn chat_len(&self) -> usize {
        self.chat_bytes.unwrap_or(match self.scenario {
            ScenarioKind::SlowConsumer => 400,
            _ => 0,
        })
    }

    /// Chat lines per second per room for this scenario.
    pub(crate) fn chat_rate(&self) -> f64 {
        self.chat_per_sec.unwrap_or(match self.scenario {
            ScenarioKind::SlowConsumer => 100.0,
            ScenarioKind::Idle => 0.0,
            ScenarioKind::Steps if self.step_load == StepLoad::Idle => 0.0,
            _ => 0.2,
        })
    }

    /// The client counts this run reaches, in order.
    pub(crate) fn client_counts(&self) -> Vec<usize> {
        match self.scenario {
            ScenarioKind::Steps => self.steps.clone(),
            _ => vec![self.clients],
        }
    }

    /// The most clients the run opens.
    pub(crate) fn max_clients(&self) -> usize {
        self.client_counts().into_iter().max().unwrap_or(0)
    }

    /// Checks what clap cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        let counts = self.client_counts();
        if counts.is_empty() || counts.contains(&0) {
            return Err("client counts must be at least 1".into());
        }
        if self.scenario == ScenarioKind::Steps && counts.windows(2).any(|w| w[1] <= w[0]) {
            return Err("--steps must be increasing".into());
        }
        if self.room_size == 0 {
            return Err("--room-size must be at least 1".into());
        }
        if self.rooms == Some(0) {
            return Err("--rooms must be at least 1".into());
        }
        for (name, v) in [
            ("--commands-per-sec", self.commands_rate()),
            ("--chat-per-sec", self.chat_rate()),
            ("--proposals-per-sec", self.proposals_per_sec),
        ] {
            if !(0.0..=1000.0).contains(&v) {
                return Err(format!("{name} must be within 0..=1000"));
            }
        }
        for (name, v) in [
            ("--vote-fraction", self.vote_fraction),
            ("--slow-fraction", self.slow_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be within 0..=1"));
            }
        }
        if self.connect_concurrency == 0 || self.wt_endpoints == 0 || self.source_addrs == 0 {
            return Err(
                "--connect-concurrency, --wt-endpoints and --source-addrs must be at least 1"
                    .into(),
            );
        }
        if self.duration_secs() == 0 {
            return Err("--duration must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_scenario() {
        let args = Args::parse_from(["lockstep-load", "--scenario", "big-room"]);
        assert_eq!(args.commands_rate(), 2.0);
        assert_eq!(args.chat_rate(), 0.2);
        let args = Args::parse_from(["lockstep-load", "--scenario", "idle"]);
        assert_eq!(args.commands_rate(), 0.0);
        assert_eq!(args.chat_rate(), 0.0);
        let args = Args::parse_from(["lockstep-load", "--scenario", "steps", "--steps", "10,20"]);
        assert_eq!(args.client_counts(), vec![10, 20]);
        assert_eq!(args.max_clients(), 20);
        assert!(args.check().is_ok());
        let args = Args::parse_from(["lockstep-load", "--scenario", "steps", "--steps", "20,10"]);
        assert!(args.check().is_err());
    }
}
