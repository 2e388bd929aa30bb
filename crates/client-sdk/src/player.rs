//! What the SDK needs from a player, so any player can be adapted.
//!
//! An adapter reports precise positions with the local time they were measured at, obeys
//! commands, and reports the viewer's own actions, never mistaking the echo of a command it
//! was given for one (the SDK would otherwise feed its own corrections back into the room).

use std::future::Future;

use thiserror::Error;

/// A position reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Media position, seconds.
    pub position: f64,
    /// Local monotonic time the position was true at, microseconds.
    pub at_local: u64,
    /// Whether the player is paused.
    pub paused: bool,
    /// The rate the player runs at.
    pub rate: f64,
}

/// Something the viewer did in the player, or the player's own state change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlayerEvent {
    /// The viewer paused (true) or resumed (false).
    UserPaused(bool),
    /// The viewer sought to a position (seconds).
    UserSeeked(f64),
    /// The viewer changed the speed.
    UserRate(f64),
    /// The player started (true) or stopped (false) buffering.
    Buffering(bool),
    /// A seek the SDK asked for has landed.
    SeekLanded,
    /// The player went away.
    Closed,
}

/// Why a player command failed.
#[derive(Debug, Error)]
pub enum PlayerError {
    /// The player is not reachable any more.
    #[error("player gone: {0}")]
    Gone(String),
    /// The player refused or failed a command.
    #[error("player command failed: {0}")]
    Command(String),
}

/// A player the SDK can hold on a room's timeline.
pub trait Player {
    /// The current position, measured as precisely as the player allows.
    fn sample(&mut self) -> impl Future<Output = Result<Sample, PlayerError>> + Send;
    /// Pauses or resumes.
    fn set_paused(&mut self, paused: bool) -> impl Future<Output = Result<(), PlayerError>> + Send;
    /// Seeks exactly to `position` seconds.
    fn seek(&mut self, position: f64) -> impl Future<Output = Result<(), PlayerError>> + Send;
    /// Sets the playback rate.
    fn set_rate(&mut self, rate: f64) -> impl Future<Output = Result<(), PlayerError>> + Send;
    /// The next event; `None` when the player is gone.
    fn next_event(&mut self) -> impl Future<Output = Option<PlayerEvent>> + Send;
}
