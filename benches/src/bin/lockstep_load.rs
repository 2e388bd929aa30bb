//! `lockstep-load`: the load benchmark. N clients (WebSocket, WebTransport or a mix) in M rooms
//! of a lockstep relay, driven like real viewers (clock pings, stats, commands, chat, votes);
//! one-way relay latency measured with one clock, deliveries per second, connect rate, errors,
//! and the relay's RSS and CPU from /proc.
//!
//! ```sh
//! cargo build --release -p lockstep-relay -p lockstep-benches
//! target/release/lockstep-load --scenario small-rooms --clients 1000 --rooms 100
//! target/release/lockstep-load --scenario steps --steps 1000,5000,10000 --json steps.json
//! target/release/lockstep-load --help
//! ```
//!
//! Everything lives in `lockstep_benches::load`; see its module documentation.

use clap::Parser;

fn main() -> std::process::ExitCode {
    lockstep_benches::load::main(lockstep_benches::load::Args::parse())
}
