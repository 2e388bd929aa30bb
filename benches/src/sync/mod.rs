//! The sync benchmark: N real mpv players kept together by lockstep or by Syncplay, over an
//! emulated link, with the inter-player difference measured from outside.
//!
//! - [`link`]: the link emulator (impairing UDP and TCP proxies; its limits are in its doc).
//! - [`mpv`]: a client of mpv's JSON IPC that also watches seeks and speed changes.
//! - [`sampler`]: the positions of all players at one instant; [`floor`]: its resolution.
//! - [`clip`]: the test clip, generated with ffmpeg.
//! - [`process`]: child processes, their logs and their lines.
//! - [`syncplay`] and [`lockstep`]: start each system's server and players behind the link.
//! - [`scenario`]: the scripted viewer actions and what is measured during each hold.
//! - [`report`]: statistics, the table and the JSON results.
//!
//! Nothing here runs in CI except the unit tests (the link emulator's use real loopback
//! sockets and take about two seconds).

pub(crate) mod clip;
pub(crate) mod floor;
pub(crate) mod link;
pub(crate) mod lockstep;
pub(crate) mod mpv;
pub(crate) mod prng;
pub(crate) mod process;
pub(crate) mod report;
pub(crate) mod sampler;
pub(crate) mod scenario;
pub(crate) mod syncplay;

use std::io;

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
    /// Anything else, explained.
    #[error("{0}")]
    Other(String),
}

/// The benchmark's result type.
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

/// Shorthand for [`Error::Other`].
pub(crate) fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(Error::Other(message.into()))
}
