//! Holding a player on the room's timeline: the decisions, without the IO.
//!
//! Owns the client's view of the room timeline (the one in effect and the one scheduled
//! next), turns player samples into corrections through the [`DriftController`], and knows
//! when to act (the local time a scheduled change takes effect). The caller measures the
//! player, calls [`Follower::step`] and carries out the commands.

use lockstep_proto::{ServerTime, Timeline};

use crate::clock::ClockSync;
use crate::drift::{Correction, DriftConfig, DriftController};
use crate::player::Sample;

/// Something to do to the player.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlayerCommand {
    /// Pause or resume.
    SetPaused(bool),
    /// Seek exactly here (seconds).
    Seek(f64),
    /// Run at this rate.
    SetRate(f64),
}

/// How far a paused player may stand from where the room will start before it is moved
/// there first (about a frame).
const PREPOSITION_US: f64 = 20_000.0;

/// The decisions of a player following a room.
#[derive(Debug)]
pub struct Follower {
    current: Option<Timeline>,
    next: Option<Timeline>,
    drift: DriftController,
    seek_requested_at: Option<ServerTime>,
}

impl Follower {
    /// A follower with these drift settings.
    pub fn new(config: DriftConfig) -> Self {
        Follower {
            current: None,
            next: None,
            drift: DriftController::new(config),
            seek_requested_at: None,
        }
    }

    /// A timeline from the relay (`state_update` or `room_state`). Older and equal sequence
    /// numbers are ignored; `reset` takes it whatever its number (a new room).
    pub fn on_timeline(&mut self, timeline: Timeline, reset: bool) {
        let newest = self.next.or(self.current);
        if !reset && newest.is_some_and(|t| !t.is_older_than(&timeline)) {
            return;
        }
        if reset {
            self.current = Some(timeline);
            self.next = None;
            self.drift.timeline_changed();
        } else {
            self.next = Some(timeline);
        }
    }

    /// Leaves the room: nothing to follow.
    pub fn clear(&mut self) {
        self.current = None;
        self.next = None;
    }

    /// The timeline in effect.
    pub fn timeline(&self) -> Option<Timeline> {
        self.current
    }

    /// When, in local time, the scheduled timeline takes effect (wake up then).
    pub fn next_change_local(&self, clock: &ClockSync) -> Option<u64> {
        self.next.and_then(|t| clock.local_time(t.at))
    }

    /// The player's error against the timeline, µs (for `stats.drift_us`).
    pub fn drift_us(&self) -> i64 {
        self.drift.last_error_us()
    }

    /// Seeks and rate changes made so far.
    pub fn corrections(&self) -> (u64, u64) {
        (self.drift.seeks(), self.drift.rate_changes())
    }

    /// A seek the follower asked for has landed.
    pub fn seek_landed(&mut self, clock: &ClockSync, now_local: u64) {
        if let (Some(asked), Some(now)) =
            (self.seek_requested_at.take(), clock.server_time(now_local))
        {
            self.drift.seek_landed(asked, now);
        }
    }

    /// One control step on a fresh sample: what to tell the player.
    pub fn step(&mut self, clock: &ClockSync, sample: Sample) -> Vec<PlayerCommand> {
        let Some(measured_at) = clock.server_time(sample.at_local) else {
            return Vec::new();
        };
        if let Some(next) = self.next
            && next.at <= measured_at
        {
            self.current = Some(next);
            self.next = None;
            self.drift.timeline_changed();
        }
        let Some(timeline) = self.current else {
            return Vec::new();
        };
        let mut commands = Vec::new();
        // A play scheduled while paused: stand where the room will start, so starting on time
        // is all that remains.
        if let Some(next) = self.next
            && timeline.paused
            && !next.paused
            && sample.paused
        {
            if ((sample.position - next.position).abs() * 1e6) > PREPOSITION_US {
                self.seek_requested_at = Some(measured_at);
                commands.push(PlayerCommand::Seek(next.position));
            }
            // Standing where the room will start: hold there, even when the paused timeline in
            // effect names another position (a seek and a play scheduled within one lead).
            return commands;
        }
        if timeline.paused != sample.paused {
            commands.push(PlayerCommand::SetPaused(timeline.paused));
        }
        let target = timeline.position_at(measured_at);
        match self.drift.update(
            measured_at,
            target,
            timeline.rate,
            timeline.paused,
            sample.position,
            sample.rate,
        ) {
            Correction::Keep => {}
            Correction::SetRate(rate) => commands.push(PlayerCommand::SetRate(rate)),
            Correction::Seek { position } => {
                self.seek_requested_at = Some(measured_at);
                commands.push(PlayerCommand::Seek(position));
            }
        }
        // Back to the room's own rate when nothing else set it (a room rate change).
        if !timeline.paused
            && !commands
                .iter()
                .any(|c| matches!(c, PlayerCommand::SetRate(_)))
            && (sample.rate - timeline.rate).abs() > timeline.rate * 0.06
        {
            commands.push(PlayerCommand::SetRate(timeline.rate));
        }
        commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ClockConfig;
    use lockstep_proto::message::Pong;

    const OFFSET: u64 = 1_000_000_000;

    fn synced_clock() -> ClockSync {
        let mut clock = ClockSync::new(ClockConfig::default());
        let ping = clock.poll_ping(0).unwrap();
        let pong = Pong {
            seq: ping.seq,
            t0: ping.t0,
            t1: ServerTime(OFFSET + 100),
            t2: ServerTime(OFFSET + 110),
        };
        clock.on_pong(&pong, 210);
        assert_eq!(clock.server_time(0), Some(ServerTime(OFFSET)));
        clock
    }

    fn timeline(position: f64, paused: bool, at: u64, seq: u64) -> Timeline {
        Timeline {
            position,
            rate: 1.0,
            paused,
            at: ServerTime(at),
            seq,
        }
    }

    fn paused_at(position: f64, at_local: u64) -> Sample {
        Sample {
            position,
            at_local,
            paused: true,
            rate: 1.0,
        }
    }

    #[test]
    fn a_seek_and_a_play_within_one_lead_wait_where_the_play_starts() {
        let clock = synced_clock();
        let mut follower = Follower::new(DriftConfig::default());
        follower.on_timeline(timeline(10.0, true, OFFSET, 1), true);
        // Seek to 30 s at +1 s, then play from 30 s at +2 s: only the newest is kept.
        follower.on_timeline(timeline(30.0, true, OFFSET + 1_000_000, 2), false);
        follower.on_timeline(timeline(30.0, false, OFFSET + 2_000_000, 3), false);
        assert_eq!(
            follower.step(&clock, paused_at(10.0, 500_000)),
            vec![PlayerCommand::Seek(30.0)]
        );
        follower.seek_landed(&clock, 600_000);
        // Not sent back to the 10 s of the paused timeline still in effect.
        for at_local in [700_000, 1_200_000, 1_900_000] {
            assert_eq!(follower.step(&clock, paused_at(30.0, at_local)), vec![]);
        }
        assert_eq!(
            follower.step(&clock, paused_at(30.0, 2_000_000)),
            vec![PlayerCommand::SetPaused(false)]
        );
    }
}
