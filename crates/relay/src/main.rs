//! `lockstep`, the relay binary.
//!
//! A skeleton until the relay issue lands: it reports what it is and which protocol it speaks,
//! and exits with a non-zero status so nobody mistakes it for a running relay.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "lockstep {}: protocol version {}. The relay's transports are not built yet \
         (see the relay issue); nothing is served.",
        env!("CARGO_PKG_VERSION"),
        lockstep_proto::limits::PROTOCOL_VERSION
    );
    ExitCode::FAILURE
}
