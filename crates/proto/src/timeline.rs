//! A room's playback as a timeline: position, rate and paused state anchored at a server time.
//!
//! Owns the timeline value and its math (where playback is at any server time, and what a
//! playback command turns it into). It does not decide *whether* a command applies or *when*:
//! that is the consensus policy's and the room core's job.

use serde::{Deserialize, Serialize};

use crate::time::ServerTime;

/// The room's playback: at server time `at` the media was at `position` seconds, moving at
/// `rate` unless `paused`.
///
/// A timeline rather than a stream of events because a member that joins late, loses a datagram
/// or wakes from sleep needs only the latest one to know where playback is *now*.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Media position in seconds at `at`.
    pub position: f64,
    /// Playback rate (1.0 is normal speed); kept while paused.
    pub rate: f64,
    /// Whether playback is paused.
    pub paused: bool,
    /// Server time the other fields are true at; in the future for a freshly scheduled command.
    pub at: ServerTime,
    /// Increases by one with every change, so receivers keep only the newest.
    pub seq: u64,
}

/// A change to playback that every member applies at the same server time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlaybackCommand {
    /// Start moving from wherever playback is at the effect time.
    Play,
    /// Stop where playback is at the effect time.
    Pause,
    /// Jump to a position (seconds), keeping paused state and rate.
    Seek(f64),
    /// Change the rate from the effect time on.
    SetRate(f64),
}

impl Timeline {
    /// A paused timeline at position zero, normal rate: a new room.
    pub fn new(at: ServerTime) -> Self {
        Timeline {
            position: 0.0,
            rate: 1.0,
            paused: true,
            at,
            seq: 0,
        }
    }

    /// Where playback is at server time `t`, in seconds (never below zero).
    ///
    /// Extrapolates backwards too (for `t` before `at`), which a client needs while a command
    /// scheduled for the future has arrived but not yet taken effect.
    pub fn position_at(&self, t: ServerTime) -> f64 {
        if self.paused {
            return self.position;
        }
        let moved = t.seconds_since(self.at) * self.rate;
        (self.position + moved).max(0.0)
    }

    /// The timeline that results from `command` taking effect at server time `at`.
    ///
    /// Everything is evaluated at the effect time, not at the time the command was issued, so
    /// every member computes the same result whenever the command reaches it.
    pub fn apply(&self, command: PlaybackCommand, at: ServerTime) -> Timeline {
        let here = self.position_at(at);
        let (position, rate, paused) = match command {
            PlaybackCommand::Play => (here, self.rate, false),
            PlaybackCommand::Pause => (here, self.rate, true),
            PlaybackCommand::Seek(position) => (position.max(0.0), self.rate, self.paused),
            PlaybackCommand::SetRate(rate) => (here, rate, self.paused),
        };
        Timeline {
            position,
            rate,
            paused,
            at,
            seq: self.seq.wrapping_add(1),
        }
    }

    /// Whether `other` supersedes this timeline (a higher sequence number).
    pub fn is_older_than(&self, other: &Timeline) -> bool {
        other.seq > self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn playing(position: f64, rate: f64, at: u64) -> Timeline {
        Timeline {
            position,
            rate,
            paused: false,
            at: ServerTime(at),
            seq: 3,
        }
    }

    #[test]
    fn a_playing_timeline_moves_at_its_rate() {
        let t = playing(10.0, 1.5, 100 * S);
        assert_eq!(t.position_at(ServerTime(102 * S)), 13.0);
        // Backwards extrapolation for a command not yet in effect.
        assert_eq!(t.position_at(ServerTime(99 * S)), 8.5);
        // Never below zero.
        assert_eq!(t.position_at(ServerTime(0)), 0.0);
    }

    #[test]
    fn a_paused_timeline_stands_still() {
        let t = Timeline::new(ServerTime(5 * S));
        assert_eq!(t.position_at(ServerTime(500 * S)), 0.0);
    }

    #[test]
    fn pause_freezes_the_position_at_the_effect_time() {
        let t = playing(10.0, 1.0, 0).apply(PlaybackCommand::Pause, ServerTime(4 * S));
        assert!(t.paused);
        assert_eq!(t.position, 14.0);
        assert_eq!(t.at, ServerTime(4 * S));
        assert_eq!(t.seq, 4);
        assert_eq!(t.position_at(ServerTime(100 * S)), 14.0);
    }

    #[test]
    fn play_resumes_from_the_paused_position() {
        let paused = Timeline::new(ServerTime(0)).apply(PlaybackCommand::Seek(30.0), ServerTime(S));
        let t = paused.apply(PlaybackCommand::Play, ServerTime(10 * S));
        assert!(!t.paused);
        assert_eq!(t.position_at(ServerTime(12 * S)), 32.0);
    }

    #[test]
    fn seek_keeps_rate_and_paused_state() {
        let t = playing(10.0, 2.0, 0).apply(PlaybackCommand::Seek(100.0), ServerTime(S));
        assert!(!t.paused);
        assert_eq!(t.rate, 2.0);
        assert_eq!(t.position_at(ServerTime(2 * S)), 102.0);
    }

    #[test]
    fn set_rate_is_continuous_at_the_effect_time() {
        let before = playing(0.0, 1.0, 0);
        let after = before.apply(PlaybackCommand::SetRate(1.25), ServerTime(8 * S));
        assert_eq!(after.position, before.position_at(ServerTime(8 * S)));
        assert_eq!(after.position_at(ServerTime(12 * S)), 13.0);
    }

    #[test]
    fn newer_sequence_supersedes() {
        let a = playing(0.0, 1.0, 0);
        let b = a.apply(PlaybackCommand::Pause, ServerTime(S));
        assert!(a.is_older_than(&b));
        assert!(!b.is_older_than(&a));
    }
}
