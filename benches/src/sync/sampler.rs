//! The positions of all players "at one instant".
//!
//! Each player is asked for its position over IPC, all requests written back to back. A
//! reading is taken to be from the midpoint of its request's round trip on the bench's
//! monotonic clock (so its time is uncertain by half that round trip, ~0.05 ms while mpv
//! plays). Every reading is then extrapolated to one reference instant (the last reply's
//! arrival) at the player's `speed`, or not at all if it is paused. The inter-player
//! difference of a sample is the largest minus the smallest extrapolated position.
//!
//! The position is `audio-pts` when the clip has audio (it follows the audio clock to
//! ~0.01 ms with `--ao=null`) and `time-pos` otherwise (quantised to video frames).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Result;
use super::mpv::Mpv;

/// Which property is the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PositionSource {
    /// `audio-pts`: the audio clock.
    AudioPts,
    /// `time-pos`: the last video frame's time.
    TimePos,
}

impl PositionSource {
    /// The mpv property.
    pub(crate) fn property(self) -> &'static str {
        match self {
            PositionSource::AudioPts => "audio-pts",
            PositionSource::TimePos => "time-pos",
        }
    }

    /// `audio-pts` if the loaded file has an audio track, else `time-pos`.
    pub(crate) async fn detect(player: &Mpv) -> Result<PositionSource> {
        let reply = player
            .request(json!(["get_property", "current-tracks/audio/id"]))
            .await?;
        Ok(if reply.ok() {
            PositionSource::AudioPts
        } else {
            PositionSource::TimePos
        })
    }
}

/// The positions of all players at one instant.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// The reference instant.
    pub(crate) at: Instant,
    /// Each player's position at `at`, seconds.
    pub(crate) positions: Vec<f64>,
    /// The slowest IPC round trip among the readings (their time uncertainty is half of it).
    pub(crate) max_rtt: Duration,
}

impl Sample {
    /// Largest minus smallest position, milliseconds.
    pub(crate) fn spread_ms(&self) -> f64 {
        let max = self
            .positions
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let min = self.positions.iter().copied().fold(f64::INFINITY, f64::min);
        (max - min) * 1e3
    }
}

/// Reads every player's position and extrapolates them to one instant; `None` when a player
/// has no position right now (during a seek, or a reply took over a second).
pub(crate) async fn sample(players: &[Arc<Mpv>], source: PositionSource) -> Result<Option<Sample>> {
    let mut asked = Vec::with_capacity(players.len());
    for p in players {
        // Paused, `audio-pts` lags the frame on screen by the audio buffer (tens of ms, and
        // not the same on every player); `time-pos` is what is shown.
        let property = if p.observed().paused {
            "time-pos"
        } else {
            source.property()
        };
        asked.push(p.send(json!(["get_property", property])).await?);
    }
    let mut readings = Vec::with_capacity(players.len());
    for ((sent, rx), player) in asked.into_iter().zip(players) {
        let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(1), rx).await else {
            return Ok(None);
        };
        let Some(position) = reply.data.as_f64().filter(|_| reply.ok()) else {
            return Ok(None);
        };
        let observed = player.observed();
        let rate = if observed.paused { 0.0 } else { observed.speed };
        let rtt = reply.received.saturating_duration_since(sent);
        readings.push((sent + rtt / 2, position, rate, rtt));
    }
    let Some(at) = readings.iter().map(|r| r.0).max() else {
        return Ok(None);
    };
    let positions = readings
        .iter()
        .map(|&(when, position, rate, _)| position + (at - when).as_secs_f64() * rate)
        .collect();
    let max_rtt = readings.iter().map(|r| r.3).max().unwrap_or_default();
    Ok(Some(Sample {
        at,
        positions,
        max_rtt,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_max_minus_min_in_ms() {
        let s = Sample {
            at: Instant::now(),
            positions: vec![10.002, 10.0, 10.0015],
            max_rtt: Duration::ZERO,
        };
        assert!((s.spread_ms() - 2.0).abs() < 1e-6);
    }
}
