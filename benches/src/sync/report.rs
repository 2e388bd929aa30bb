//! Statistics over the holds, the human table and the JSON results.
//!
//! Definitions (also written into the JSON):
//!
//! - **Inter-player difference**: largest minus smallest position of all players at one
//!   instant ([`sampler`](super::sampler)).
//! - **Steady state**: the samples from [`SETTLE`] after each action to the end of its hold;
//!   p50/p95/max are over those (per hold, and pooled over all holds of a run).
//! - **Convergence time**: seconds from the action until the difference is under
//!   [`CONVERGED_MS`] and stays under it for [`STAY`] (or until the hold ends); "never" if
//!   that does not happen within the hold.
//! - **Seeks / rate changes**: `seek` events and `speed` changes announced by the mpv of
//!   every player; "after settle" counts those at or after [`SETTLE`], i.e. corrections made
//!   in steady state. The scripted seek and speed change themselves fall before it.
//! - Samples whose slowest IPC round trip exceeded [`MAX_RTT_MS`] are discarded (their
//!   instant is too uncertain) and counted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::link::LinkStats;
use super::scenario::{Condition, Hold, Point};

/// Time after each action before samples count as steady state, seconds.
pub(crate) const SETTLE: f64 = 3.0;
/// The difference under which players count as converged, ms.
pub(crate) const CONVERGED_MS: f64 = 20.0;
/// How long the difference must stay under [`CONVERGED_MS`], seconds.
pub(crate) const STAY: f64 = 1.0;
/// Samples with a slower IPC round trip are discarded, ms.
pub(crate) const MAX_RTT_MS: f64 = 5.0;

/// p50, p95 and max of the inter-player difference.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Percentiles {
    /// Median, ms.
    pub(crate) p50_ms: f64,
    /// 95th percentile, ms.
    pub(crate) p95_ms: f64,
    /// Maximum, ms.
    pub(crate) max_ms: f64,
    /// Samples.
    pub(crate) samples: usize,
}

/// Nearest-rank percentiles; `None` without samples.
pub(crate) fn percentiles(values: &[f64]) -> Option<Percentiles> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Percentiles {
        p50_ms: rank(0.50),
        p95_ms: rank(0.95),
        max_ms: v[v.len() - 1],
        samples: v.len(),
    })
}

/// The convergence time (see the module doc) of a hold's samples, seconds.
pub(crate) fn convergence(points: &[Point], hold: f64) -> Option<f64> {
    let mut candidate: Option<f64> = None;
    for p in points {
        if p.spread_ms < CONVERGED_MS {
            let since = *candidate.get_or_insert(p.t);
            if p.t - since >= STAY {
                return candidate;
            }
        } else {
            candidate = None;
        }
    }
    // Under the bound from some point to the end of the hold, if that was shorter than STAY.
    candidate.filter(|&t| hold - t < STAY)
}

/// The results of one hold.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HoldResult {
    /// The action.
    pub(crate) action: String,
    /// Hold length, seconds.
    pub(crate) hold_s: f64,
    /// Convergence time, seconds (`null`: never within the hold).
    pub(crate) convergence_s: Option<f64>,
    /// Steady-state difference.
    pub(crate) steady: Option<Percentiles>,
    /// Samples taken (kept).
    pub(crate) samples: usize,
    /// Samples without a position from some player.
    pub(crate) missing: usize,
    /// Samples discarded for a slow IPC round trip.
    pub(crate) discarded: usize,
    /// `seek` events, all players.
    pub(crate) seeks: usize,
    /// `seek` events after settling.
    pub(crate) seeks_after_settle: usize,
    /// `speed` changes, all players.
    pub(crate) speed_changes: usize,
    /// `speed` changes after settling.
    pub(crate) speed_changes_after_settle: usize,
    /// Each player's speed at the end of the hold.
    pub(crate) final_speeds: Vec<f64>,
    /// Each player's pause state at the end of the hold.
    pub(crate) final_paused: Vec<bool>,
    /// The difference over the hold, one value per sample (ms, with `t` in seconds).
    pub(crate) series: Vec<Point>,
}

impl HoldResult {
    /// Summarises a hold.
    pub(crate) fn from_hold(h: &Hold) -> Self {
        let kept: Vec<Point> = h
            .points
            .iter()
            .copied()
            .filter(|p| p.rtt_ms <= MAX_RTT_MS)
            .collect();
        let steady: Vec<f64> = kept
            .iter()
            .filter(|p| p.t >= SETTLE)
            .map(|p| p.spread_ms)
            .collect();
        let hold_s = h.hold.as_secs_f64();
        HoldResult {
            action: h.action.name(),
            hold_s,
            convergence_s: convergence(&kept, hold_s),
            steady: percentiles(&steady),
            samples: kept.len(),
            missing: h.missing,
            discarded: h.points.len() - kept.len(),
            seeks: h.seeks.len(),
            seeks_after_settle: h.seeks.iter().filter(|&&t| t >= SETTLE).count(),
            speed_changes: h.speed_changes.len(),
            speed_changes_after_settle: h.speed_changes.iter().filter(|&&t| t >= SETTLE).count(),
            final_speeds: h.final_speeds.clone(),
            final_paused: h.final_paused.clone(),
            series: kept,
        }
    }
}

/// One system under one condition.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunResult {
    /// `syncplay` or `lockstep`.
    pub(crate) system: String,
    /// The condition's name.
    pub(crate) condition: String,
    /// Players.
    pub(crate) players: usize,
    /// `ok`, or why it failed or was skipped.
    pub(crate) status: String,
    /// `audio-pts` or `time-pos`.
    pub(crate) position_source: Option<String>,
    /// Each hold.
    pub(crate) holds: Vec<HoldResult>,
    /// Steady-state difference pooled over all holds.
    pub(crate) overall: Option<Percentiles>,
    /// Steady-state difference pooled over all holds but the 1.25x one.
    pub(crate) overall_without_speed: Option<Percentiles>,
    /// Seeks after settling, all holds.
    pub(crate) seeks_after_settle: usize,
    /// Speed changes after settling, all holds.
    pub(crate) speed_changes_after_settle: usize,
    /// All seeks, all holds.
    pub(crate) seeks: usize,
    /// All speed changes, all holds.
    pub(crate) speed_changes: usize,
    /// Slowest IPC round trip among kept samples, ms.
    pub(crate) max_sample_rtt_ms: Option<f64>,
    /// What each proxy did (`udp`, `tcp`).
    pub(crate) link: BTreeMap<String, LinkStats>,
    /// System-specific findings (transport, corrections logged, clock error bound).
    pub(crate) details: serde_json::Value,
    /// Wall time of the whole run including set-up, seconds.
    pub(crate) wall_s: f64,
}

impl RunResult {
    /// A run that did not happen or failed before measuring.
    pub(crate) fn not_run(system: &str, condition: &str, players: usize, status: String) -> Self {
        RunResult {
            system: system.into(),
            condition: condition.into(),
            players,
            status,
            position_source: None,
            holds: Vec::new(),
            overall: None,
            overall_without_speed: None,
            seeks_after_settle: 0,
            speed_changes_after_settle: 0,
            seeks: 0,
            speed_changes: 0,
            max_sample_rtt_ms: None,
            link: BTreeMap::new(),
            details: serde_json::Value::Null,
            wall_s: 0.0,
        }
    }

    /// Fills in the holds and the pooled figures.
    pub(crate) fn set_holds(&mut self, holds: &[Hold]) {
        self.holds = holds.iter().map(HoldResult::from_hold).collect();
        let steady = |include_speed: bool| -> Vec<f64> {
            self.holds
                .iter()
                .filter(|h| include_speed || !h.action.starts_with("speed"))
                .flat_map(|h| {
                    h.series
                        .iter()
                        .filter(|p| p.t >= SETTLE)
                        .map(|p| p.spread_ms)
                })
                .collect()
        };
        self.overall = percentiles(&steady(true));
        self.overall_without_speed = percentiles(&steady(false));
        self.seeks_after_settle = self.holds.iter().map(|h| h.seeks_after_settle).sum();
        self.speed_changes_after_settle = self
            .holds
            .iter()
            .map(|h| h.speed_changes_after_settle)
            .sum();
        self.seeks = self.holds.iter().map(|h| h.seeks).sum();
        self.speed_changes = self.holds.iter().map(|h| h.speed_changes).sum();
        self.max_sample_rtt_ms = self
            .holds
            .iter()
            .flat_map(|h| h.series.iter().map(|p| p.rtt_ms))
            .reduce(f64::max);
    }
}

/// Syncplay's figures beside lockstep's for one hold (or a pool of holds) of one condition.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Comparison {
    /// The condition.
    pub(crate) condition: String,
    /// The hold's action, or `all holds` / `all but 1.25x` for the pooled rows.
    pub(crate) hold: String,
    /// Syncplay's steady-state difference.
    pub(crate) syncplay: Option<Percentiles>,
    /// lockstep's steady-state difference.
    pub(crate) lockstep: Option<Percentiles>,
    /// Syncplay p95 / lockstep p95: how many times closer lockstep holds the players.
    pub(crate) p95_ratio: Option<f64>,
    /// Syncplay p50 / lockstep p50.
    pub(crate) p50_ratio: Option<f64>,
    /// Syncplay's convergence time, seconds (per hold only; `null`: never or pooled).
    pub(crate) syncplay_convergence_s: Option<f64>,
    /// lockstep's convergence time, seconds.
    pub(crate) lockstep_convergence_s: Option<f64>,
}

/// The pooled row without the 1.25x hold: Syncplay does not share playback speed, so that
/// hold mostly measures that.
pub(crate) const WITHOUT_SPEED: &str = "all but 1.25x";
/// The pooled row over every hold.
pub(crate) const ALL_HOLDS: &str = "all holds";

/// Compares the two systems per condition and hold, where both ran.
pub(crate) fn compare(conditions: &[Condition], runs: &[RunResult]) -> Vec<Comparison> {
    let run = |system: &str, condition: &str| {
        runs.iter()
            .find(|r| r.system == system && r.condition == condition && !r.holds.is_empty())
    };
    let ratio = |a: Option<Percentiles>, b: Option<Percentiles>, f: fn(&Percentiles) -> f64| {
        a.zip(b)
            .and_then(|(a, b)| (f(&b) > 0.0).then(|| f(&a) / f(&b)))
    };
    let row = |condition: &str,
               hold: &str,
               s: Option<Percentiles>,
               l: Option<Percentiles>,
               sc: Option<f64>,
               lc: Option<f64>| Comparison {
        condition: condition.into(),
        hold: hold.into(),
        syncplay: s,
        lockstep: l,
        p95_ratio: ratio(s, l, |p| p.p95_ms),
        p50_ratio: ratio(s, l, |p| p.p50_ms),
        syncplay_convergence_s: sc,
        lockstep_convergence_s: lc,
    };
    let mut rows = Vec::new();
    for c in conditions {
        let (Some(s), Some(l)) = (run("syncplay", c.name), run("lockstep", c.name)) else {
            continue;
        };
        for (sh, lh) in s.holds.iter().zip(&l.holds) {
            rows.push(row(
                c.name,
                &sh.action,
                sh.steady,
                lh.steady,
                sh.convergence_s,
                lh.convergence_s,
            ));
        }
        rows.push(row(
            c.name,
            WITHOUT_SPEED,
            s.overall_without_speed,
            l.overall_without_speed,
            None,
            None,
        ));
        rows.push(row(c.name, ALL_HOLDS, s.overall, l.overall, None, None));
    }
    rows
}

fn ms(p: Option<Percentiles>, f: impl Fn(Percentiles) -> f64) -> String {
    p.map_or("-".into(), |p| format!("{:.1}", f(p)))
}

fn secs(s: Option<f64>) -> String {
    s.map_or("never".into(), |s| format!("{s:.1}"))
}

/// The human table: the sampler's floor, one line per run, a line per hold, then the
/// comparison.
pub(crate) fn table(
    floor: Option<Percentiles>,
    runs: &[RunResult],
    comparisons: &[Comparison],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nsampler floor (one mpv read as if it were every player): p50 {} p95 {} max {} ms",
        ms(floor, |p| p.p50_ms),
        ms(floor, |p| p.p95_ms),
        ms(floor, |p| p.max_ms)
    );
    let _ = writeln!(
        out,
        "\n{:<11} {:<9} {:>7} {:>8} {:>8} {:>8}  {:>6} {:>8} {:>9}  status",
        "condition",
        "system",
        "players",
        "p50 ms",
        "p95 ms",
        "max ms",
        "seeks*",
        "rate ch*",
        "clock ms"
    );
    for r in runs {
        let _ = writeln!(
            out,
            "{:<11} {:<9} {:>7} {:>8} {:>8} {:>8}  {:>6} {:>8} {:>9}  {}",
            r.condition,
            r.system,
            r.players,
            ms(r.overall, |p| p.p50_ms),
            ms(r.overall, |p| p.p95_ms),
            ms(r.overall, |p| p.max_ms),
            r.seeks_after_settle,
            r.speed_changes_after_settle,
            r.details
                .pointer("/clock_offset_error_bound/mean_ms")
                .and_then(serde_json::Value::as_f64)
                .map_or("-".into(), |m| format!("{m:.2}")),
            r.status
        );
        for h in &r.holds {
            let _ = writeln!(
                out,
                "    {:<13} converged {:>6} s  p50 {:>8} p95 {:>8} max {:>8} ms  seeks {}/{} rate changes {}/{}  speeds {:?}",
                h.action,
                secs(h.convergence_s),
                ms(h.steady, |p| p.p50_ms),
                ms(h.steady, |p| p.p95_ms),
                ms(h.steady, |p| p.max_ms),
                h.seeks_after_settle,
                h.seeks,
                h.speed_changes_after_settle,
                h.speed_changes,
                h.final_speeds
            );
        }
    }
    let _ = writeln!(
        out,
        "\n* after settling ({SETTLE} s after each action); per hold: after settling / all. \
         Converged: under {CONVERGED_MS} ms for {STAY} s. Clock: the mean clock-offset error \
         bound lockstep's players reported (half their best ping round trip)."
    );
    if !comparisons.is_empty() {
        let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.0}x"));
        let _ = writeln!(
            out,
            "\nSyncplay vs lockstep, steady-state difference (ms) and convergence (s)\n\
             {:<11} {:<14} {:>13} {:>13} {:>9} {:>13} {:>13} {:>9} {:>9}",
            "condition",
            "hold",
            "Syncplay p50",
            "lockstep p50",
            "p50 ratio",
            "Syncplay p95",
            "lockstep p95",
            "p95 ratio",
            "conv S/L"
        );
        for c in comparisons {
            let conv = if c.hold == ALL_HOLDS || c.hold == WITHOUT_SPEED {
                String::new()
            } else {
                format!(
                    "{}/{}",
                    secs(c.syncplay_convergence_s),
                    secs(c.lockstep_convergence_s)
                )
            };
            let _ = writeln!(
                out,
                "{:<11} {:<14} {:>13} {:>13} {:>9} {:>13} {:>13} {:>9} {:>9}",
                c.condition,
                c.hold,
                ms(c.syncplay, |p| p.p50_ms),
                ms(c.lockstep, |p| p.p50_ms),
                ratio(c.p50_ratio),
                ms(c.syncplay, |p| p.p95_ms),
                ms(c.lockstep, |p| p.p95_ms),
                ratio(c.p95_ratio),
                conv
            );
        }
        let _ = writeln!(
            out,
            "ratio = Syncplay / lockstep. Syncplay does not share playback speed: only the member \
             who set 1.25x plays at it."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(spreads: &[f64]) -> Vec<Point> {
        spreads
            .iter()
            .enumerate()
            .map(|(i, &s)| Point {
                t: i as f64 * 0.1,
                spread_ms: s,
                rtt_ms: 0.1,
            })
            .collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = percentiles(&v).unwrap();
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.max_ms, p.samples),
            (50.0, 95.0, 100.0, 100)
        );
        assert!(percentiles(&[]).is_none());
        assert_eq!(percentiles(&[7.0]).unwrap().p95_ms, 7.0);
    }

    #[test]
    fn convergence_needs_a_second_under_the_bound() {
        // Dips under 20 ms at 0.2 s for one sample, then from 0.5 s on.
        let mut s = vec![100.0, 50.0, 10.0, 30.0, 25.0];
        s.extend(std::iter::repeat_n(5.0, 20));
        assert_eq!(convergence(&points(&s), 10.0), Some(0.5));
        // Never under the bound.
        assert_eq!(convergence(&points(&[30.0; 30]), 10.0), None);
        // Under it only in the last half second of a hold: counts (the hold ended).
        let mut late = vec![30.0; 25];
        late.extend([5.0; 5]);
        assert_eq!(convergence(&points(&late), 3.0), Some(2.5));
        assert_eq!(convergence(&points(&late), 10.0), None);
    }
}
