//! The scripted viewer actions and what is measured while the players hold after each.
//!
//! One member (player 1) acts through its mpv IPC, exactly as a viewer pressing keys would:
//! play; seek to 300 s; pause; resume; speed 1.25x. The system under test (Syncplay, or
//! `lockstep-mpv`) sees the change in its mpv and spreads it to the others. After each action
//! the players are left alone for a hold, during which all positions are sampled at about
//! 10 Hz ([`sampler`](super::sampler)); `seek` events and `speed` changes announced by every
//! mpv are collected with their times.
//!
//! The conditions (link and player clocks) are defined here too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::Result;
use super::link::{Link, LinkProfile};
use super::mpv::Mpv;
use super::sampler::{self, PositionSource};

/// Sampling period.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Where the scripted seek goes (the clip is made long enough for the rest of the script).
pub(crate) const SEEK_TO: f64 = 300.0;
/// The scripted rate.
pub(crate) const SPEED: f64 = 1.25;

/// A viewer action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Action {
    /// Unpause at the start.
    Play,
    /// Absolute seek.
    Seek(f64),
    /// Pause.
    Pause,
    /// Unpause after the pause.
    Resume,
    /// Set the playback speed.
    Speed(f64),
}

impl Action {
    /// Its name in the report.
    pub(crate) fn name(&self) -> String {
        match self {
            Action::Play => "play".into(),
            Action::Seek(p) => format!("seek {p:.0} s"),
            Action::Pause => "pause".into(),
            Action::Resume => "resume".into(),
            Action::Speed(r) => format!("speed {r}x"),
        }
    }

    /// Does it to `mpv` over IPC, as a key press would.
    async fn issue(&self, mpv: &Mpv) -> Result<()> {
        match *self {
            Action::Play | Action::Resume => mpv.set("pause", json!(false)).await,
            Action::Pause => mpv.set("pause", json!(true)).await,
            Action::Seek(p) => mpv
                .command(json!(["seek", p, "absolute"]))
                .await
                .map(|_| ()),
            Action::Speed(r) => mpv.set("speed", json!(r)).await,
        }
    }
}

/// An action and how long to hold after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    /// What player 1 does.
    pub(crate) action: Action,
    /// How long everyone is then left alone (and measured).
    pub(crate) hold: Duration,
}

/// The script for `total` seconds of holds: a third of it at 1.25x (the long hold), a short
/// pause, and the rest shared by play, seek and resume.
pub(crate) fn plan(total: Duration) -> Vec<Step> {
    let total = total.as_secs_f64().max(20.0);
    let speed = total / 3.0;
    let pause = (total / 12.0).clamp(4.0, 15.0);
    let each = (total - speed - pause) / 3.0;
    let s = Duration::from_secs_f64;
    vec![
        Step {
            action: Action::Play,
            hold: s(each),
        },
        Step {
            action: Action::Seek(SEEK_TO),
            hold: s(each),
        },
        Step {
            action: Action::Pause,
            hold: s(pause),
        },
        Step {
            action: Action::Resume,
            hold: s(each),
        },
        Step {
            action: Action::Speed(SPEED),
            hold: s(speed),
        },
    ]
}

/// A clip long enough for [`plan`]: the seek target plus every later hold at up to 1.25x,
/// with a minute to spare; at least 10 minutes.
pub(crate) fn clip_seconds(total: Duration) -> u64 {
    (SEEK_TO + total.as_secs_f64() * SPEED + 60.0)
        .max(600.0)
        .ceil() as u64
}

/// A network and player condition.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Condition {
    /// Short name (command line and report).
    pub(crate) name: &'static str,
    /// What it is.
    pub(crate) description: &'static str,
    /// The link between every player and the server.
    pub(crate) link: Link,
    /// Whether the last player's clock runs 0.2% fast (`--ao-null-speed=1.002`).
    pub(crate) fast_player: bool,
}

/// mpv's option for a clock 0.2% fast.
pub(crate) const FAST_CLOCK_ARG: &str = "--ao-null-speed=1.002";

/// Every condition, in report order.
pub(crate) fn conditions() -> Vec<Condition> {
    vec![
        Condition {
            name: "clean",
            description: "loopback through the proxies, no delay or loss",
            link: Link::symmetric(LinkProfile::CLEAN),
            fast_player: false,
        },
        Condition {
            name: "delay50",
            description: "50 +- 10 ms each way, 1% loss",
            link: Link::symmetric(LinkProfile::new(50.0, 10.0, 0.01)),
            fast_player: false,
        },
        Condition {
            name: "delay150",
            description: "150 +- 30 ms each way, 2% loss",
            link: Link::symmetric(LinkProfile::new(150.0, 30.0, 0.02)),
            fast_player: false,
        },
        Condition {
            name: "fast-clock",
            description: "clean link; the last player's clock runs 0.2% fast",
            link: Link::symmetric(LinkProfile::CLEAN),
            fast_player: true,
        },
    ]
}

/// One sample: seconds since the action, inter-player difference and IPC round trip in ms.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Point {
    /// Seconds since the action was issued.
    pub(crate) t: f64,
    /// Largest minus smallest position, ms.
    pub(crate) spread_ms: f64,
    /// Slowest IPC round trip of the sample, ms.
    pub(crate) rtt_ms: f64,
}

/// What happened during one hold.
#[derive(Debug, Clone)]
pub(crate) struct Hold {
    /// The action before it.
    pub(crate) action: Action,
    /// Its length.
    pub(crate) hold: Duration,
    /// The samples.
    pub(crate) points: Vec<Point>,
    /// Samples with no position from some player (mid-seek).
    pub(crate) missing: usize,
    /// Seconds (since the action) of every `seek` event, all players.
    pub(crate) seeks: Vec<f64>,
    /// Seconds (since the action) of every `speed` change, all players.
    pub(crate) speed_changes: Vec<f64>,
    /// Each player's speed at the end.
    pub(crate) final_speeds: Vec<f64>,
    /// Each player's pause state at the end.
    pub(crate) final_paused: Vec<bool>,
}

/// Runs the script: player 1 acts, everyone is sampled. `label` prefixes progress lines.
pub(crate) async fn drive(
    label: &str,
    players: &[Arc<Mpv>],
    steps: &[Step],
    source: PositionSource,
) -> Result<Vec<Hold>> {
    let Some(control) = players.first() else {
        return Ok(Vec::new());
    };
    let mut holds = Vec::with_capacity(steps.len());
    for step in steps {
        let started = Instant::now();
        step.action.issue(control).await?;
        let end = started + step.hold;
        let mut points = Vec::new();
        let mut missing = 0;
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut next_progress = started + Duration::from_secs(15);
        let rounds = (step.hold.as_millis() / SAMPLE_EVERY.as_millis()) as usize + 2;
        for _ in 0..rounds {
            tick.tick().await;
            if Instant::now() >= end {
                break;
            }
            match sampler::sample(players, source).await? {
                Some(s) => points.push(Point {
                    t: s.at.saturating_duration_since(started).as_secs_f64(),
                    spread_ms: s.spread_ms(),
                    rtt_ms: s.max_rtt.as_secs_f64() * 1e3,
                }),
                None => missing += 1,
            }
            if Instant::now() >= next_progress {
                next_progress += Duration::from_secs(15);
                if let Some(p) = points.last() {
                    println!(
                        "{label}   {} +{:.0} s: players {:.1} ms apart",
                        step.action.name(),
                        p.t,
                        p.spread_ms
                    );
                }
            }
        }
        let since = |i: Instant| i.checked_duration_since(started).map(|d| d.as_secs_f64());
        let before_end = |t: &f64| *t < step.hold.as_secs_f64();
        let mut seeks = Vec::new();
        let mut speed_changes = Vec::new();
        let mut final_speeds = Vec::new();
        let mut final_paused = Vec::new();
        for p in players {
            let o = p.observed();
            seeks.extend(o.seeks.iter().filter_map(|&i| since(i)).filter(before_end));
            speed_changes.extend(
                o.speed_changes
                    .iter()
                    .filter_map(|&(i, _)| since(i))
                    .filter(before_end),
            );
            final_speeds.push(o.speed);
            final_paused.push(o.paused);
        }
        seeks.sort_by(f64::total_cmp);
        speed_changes.sort_by(f64::total_cmp);
        holds.push(Hold {
            action: step.action,
            hold: step.hold,
            points,
            missing,
            seeks,
            speed_changes,
            final_speeds,
            final_paused,
        });
    }
    Ok(holds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_fills_the_script_time_and_the_clip_is_long_enough() {
        for secs in [30u64, 180, 600] {
            let total = Duration::from_secs(secs);
            let steps = plan(total);
            let sum: f64 = steps.iter().map(|s| s.hold.as_secs_f64()).sum();
            assert!((sum - secs as f64).abs() < 1e-6, "{secs}: {sum}");
            assert!(steps.iter().all(|s| s.hold >= Duration::from_millis(2_500)));
            // Seek target + resume and speed holds at up to 1.25x fit in the clip.
            let after_seek: f64 = steps[1..].iter().map(|s| s.hold.as_secs_f64()).sum();
            assert!(SEEK_TO + after_seek * SPEED < clip_seconds(total) as f64);
        }
    }
}
