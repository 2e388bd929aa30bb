//! The load benchmark (`lockstep-load`): how many viewers one relay holds, how fast it relays,
//! and where it breaks (issue 7).
//!
//! One process opens N clients, WebSocket, WebTransport or a mix, into M rooms of a relay it
//! starts itself (or of one at a given URL) and drives them as real viewers would: clock pings
//! at 1-2 Hz, `stats` about once a second, playback commands from each room's host, chat, and
//! in democratic rooms proposals and votes. Senders and receivers share one process and so one
//! monotonic clock: the one-way latency of a command is the instant a member received the
//! resulting `state_update` minus the instant the host sent the command, with no clock
//! estimate in between. Only the protocol is used, never the relay's internals.
//!
//! - [`cli`]: the options, and how they default per scenario.
//! - [`scenario`]: who is in which room with which role, and at which rates.
//! - [`relay`]: the relay under test: its configuration file, start, discovery, `/metrics`,
//!   stop; [`http`]: the two GETs that needs.
//! - [`client`]: one connection (WebSocket or WebTransport) behind one type, and the
//!   [`client::Dialer`] that spreads connections over loopback source addresses.
//! - [`member`]: one simulated viewer: connect, hello, join, then its part of the load.
//! - [`tracker`]: send instants shared between a room's senders and receivers, and how a
//!   received message is matched to the command, chat line or proposal that caused it.
//! - [`metrics`]: latency histograms, counters by message type, errors.
//! - [`procstat`]: RSS and CPU of a process from `/proc`; [`fdlimit`]: the open-files limit.
//! - [`run`]: a run: connect the fleet, warm up, measure, stop; and the `steps` series.
//! - [`monitor`]: once a second: progress line, `/proc` samples, the per-second series.
//! - [`report`]: summaries, the least-squares fit, the table and the JSON results.
//! - [`prng`]: a seeded generator, so a seed gives the same rooms and roles.
//!
//! - [`syncplay_peer`]: the same command load against Debian's `syncplay-server` (issue 7 §5),
//!   run by its own binary, `syncplay-load`.

pub(crate) mod cli;
pub(crate) mod client;
pub(crate) mod fdlimit;
pub(crate) mod http;
pub(crate) mod member;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod prng;
pub(crate) mod procstat;
pub(crate) mod relay;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod scenario;
// Run by its own binary (`syncplay-load` includes the file), so most of it is unused here;
// declared here too so its unit tests run with the library's.
#[allow(dead_code, unreachable_pub)]
pub(crate) mod syncplay_peer;
pub(crate) mod tracker;

use std::io;
use std::process::ExitCode;

pub use cli::{Args, ScenarioKind, StepLoad, TransportMix};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The relay could not be started, found or read.
    #[error("relay: {0}")]
    Relay(String),
    /// The options do not describe a run that can be done.
    #[error("options: {0}")]
    Options(String),
    /// The machine cannot hold the run (open files, ports).
    #[error("machine: {0}")]
    Machine(String),
    /// Anything else, explained.
    #[error("{0}")]
    Other(String),
}

/// The load benchmark's result type.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Adds what was being done to an I/O error.
pub(crate) trait Context<T> {
    /// The error, explained.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

/// Runs `lockstep-load` with parsed options; the process's exit code.
///
/// Builds its own runtime so `--threads` can size it: on a small machine the load generator
/// and the relay share the cores, and how they share them is part of what is measured.
pub fn main(args: Args) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lockstep-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run::main(args));
    // Client tasks still winding down must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("lockstep-load: {e}");
            ExitCode::FAILURE
        }
    }
}
