//! Clock synchronisation with the relay: offset *and* skew from the four-timestamp exchange.
//!
//! Owns the client's estimate of the relay's server time (`docs/PROTOCOL.md` §5): when to send
//! a `ping`, which `pong`s to believe, and the line `server = local + offset + skew × Δlocal`
//! fitted through the believable samples. It must not do IO: [`ClockSync`] is a sans-IO state
//! machine in the manner of str0m and quinn-proto. It never reads a clock, opens a socket or
//! spawns a task; the caller passes its monotonic clock in (*local time*, microseconds) and
//! sends what [`ClockSync::poll_ping`] returns. The same inputs always give the same estimate.
//!
//! The run loop around it:
//!
//! ```
//! use lockstep_client::clock::{ClockConfig, ClockSync};
//! use lockstep_client::proto::ServerTime;
//! use lockstep_client::proto::message::Pong;
//!
//! let mut clock = ClockSync::new(ClockConfig::default());
//! // At local time 5 s the first ping of the burst is due at once.
//! let ping = clock.poll_ping(5_000_000).expect("a burst starts at once");
//! assert_eq!(clock.poll_timeout(), Some(5_100_000));
//! // ... send it; the relay (whose clock reads 1 s more) answers; the pong arrives 400 us later.
//! let pong = Pong {
//!     seq: ping.seq,
//!     t0: ping.t0,
//!     t1: ServerTime(6_000_200),
//!     t2: ServerTime(6_000_200),
//! };
//! let sample = clock.on_pong(&pong, 5_000_400).expect("matches the ping");
//! assert_eq!(sample.offset_micros(), 1_000_000);
//! assert_eq!(clock.server_time(5_000_400), Some(ServerTime(6_000_400)));
//! assert_eq!(clock.estimate().map(|e| e.error_bound_us), Some(200));
//! ```
//!
//! # Why offset and skew
//!
//! A sample's offset is exact only when the path is symmetric; otherwise it is off by at most
//! half the round trip, so the sample with the smallest delay is the most trustworthy
//! (Cristian, NTP). That alone is what Jellyfin SyncPlay does. But two crystals disagree on
//! the length of a second by tens to hundreds of parts per million: at 200 ppm the offset
//! moves 200 µs per second, 6 ms in the 30 s a lost run of pings or a sleeping tab can last,
//! more than lockstep's whole ~5 ms budget. So the estimate is a line through the recent
//! low-delay samples, its slope the skew, and it keeps predicting between pings.

use std::collections::VecDeque;

use lockstep_proto::message::{Ping, Pong};
use lockstep_proto::{ClockSample, ServerTime};

/// Fewer accepted samples than this give no skew: a slope through two or three points is
/// mostly their noise.
const MIN_FIT_SAMPLES: usize = 4;

/// A fitted skew is used only when it exceeds this many standard errors.
const SIGNIFICANT_SLOPE: f64 = 3.0;

/// Samples spanning less local time than this give no skew: a 1 s burst with 100 µs of
/// offset noise could fake a 100 ppm slope. (After the burst the next ping widens the span.)
const MIN_FIT_SPAN_US: u64 = 2_000_000;

/// A sample counts as queueing noise when its delay exceeds the minimum by more than
/// `max(min_delay, OUTLIER_MARGIN_FLOOR_US)`: on a loopback path where the minimum is 30 µs a
/// 60 µs sample is still perfectly good, so the margin never shrinks below 1 ms.
const OUTLIER_MARGIN_FLOOR_US: i64 = 1_000;

/// The noise a sample has even with no queueing at all (clock reading granularity, the
/// relay's and the client's scheduling), in microseconds; it keeps the weight of a sample with
/// no excess delay finite.
const WEIGHT_FLOOR_US: f64 = 20.0;

/// Whatever the configuration says, skew is never believed beyond ±10%: no working clock is
/// that far off, and it keeps `1 + skew` well away from zero when converting back.
const SKEW_LIMIT: f64 = 0.1;

/// The fewest sent-but-unanswered pings remembered (more when the burst is longer).
const MIN_OUTSTANDING: usize = 16;

/// The most sent-but-unanswered pings remembered, whatever the burst: a bound on memory.
const MAX_OUTSTANDING: usize = 1_024;

/// Settings of a [`ClockSync`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClockConfig {
    /// Pings in the initial burst (after [`ClockSync::new`] and [`ClockSync::reset`]).
    pub burst_pings: u32,
    /// Local microseconds between the burst's pings.
    pub burst_interval_us: u64,
    /// Local microseconds between pings after the burst; the relay suggests one in
    /// `welcome.limits.ping_interval_ms` (see [`ClockSync::set_interval_us`]).
    pub interval_us: u64,
    /// Accepted samples kept (a bounded ring; the oldest goes first). At least one is always
    /// kept.
    pub window: usize,
    /// Samples whose pong arrived longer ago than this (local microseconds, measured from the
    /// newest pong) are dropped: the line is fitted over recent history only.
    pub max_sample_age_us: u64,
    /// The largest skew believed, in parts per million (either sign); the fit is clamped to
    /// it. Capped at 100 000 (10%) whatever is set here.
    pub max_skew_ppm: f64,
}

impl Default for ClockConfig {
    /// Ten pings 100 ms apart, then one every 2 s; 64 samples of at most 2 minutes; ±500 ppm.
    fn default() -> Self {
        ClockConfig {
            burst_pings: 10,
            burst_interval_us: 100_000,
            interval_us: 2_000_000,
            window: 64,
            max_sample_age_us: 120_000_000,
            max_skew_ppm: 500.0,
        }
    }
}

/// The current estimate of the relay's clock against the local one.
///
/// `server(local) = local + offset_us + skew × (local − reference)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockEstimate {
    /// `server − local` at local time `reference`, microseconds.
    pub offset_us: f64,
    /// The local time (microseconds) `offset_us` holds at: the newest sample used.
    pub reference: u64,
    /// How fast the offset changes: d(offset)/d(local), e.g. `200e-6` when the relay's clock
    /// runs 200 ppm faster than the local one. Zero until enough samples span enough time.
    pub skew: f64,
    /// Bound on the offset error: half the best (minimum-delay) sample's delay, microseconds.
    /// This is what path asymmetry can hide; it does not cover skew extrapolated far ahead.
    pub error_bound_us: u64,
    /// The best sample's round-trip delay (without the relay's processing), microseconds.
    pub best_rtt_us: u64,
    /// How many samples the estimate was derived from (those kept after outlier rejection).
    pub samples: usize,
}

/// The sans-IO clock synchroniser: sends pings, takes pongs, estimates server time.
///
/// See the [module documentation](self) for the run loop and the reasoning.
#[derive(Debug, Clone)]
pub struct ClockSync {
    config: ClockConfig,
    /// The `seq` of the next ping. Not reset by [`ClockSync::reset`], so a late pong from the
    /// previous relay can never match a ping sent to the next one.
    next_seq: u32,
    /// Pings of the current burst already sent.
    burst_sent: u32,
    /// Local time the next ping is due.
    next_ping_at: u64,
    /// Local time the last ping was sent, once one was.
    last_ping_at: Option<u64>,
    /// Sent pings not yet answered, `(seq, t0)`, oldest first, bounded.
    outstanding: VecDeque<(u32, u64)>,
    /// Accepted samples, oldest first, at most `window`.
    samples: VecDeque<ClockSample>,
    /// The estimate from `samples`, recomputed whenever they change.
    fit: Option<Fit>,
}

/// The fitted line, kept with an integer part so that a 1.7e15 µs offset (a UNIX-epoch server
/// clock) loses no precision to `f64`.
#[derive(Debug, Clone, PartialEq)]
struct Fit {
    /// Integer part of the offset at `reference`: the best sample's offset.
    base: i64,
    /// The fitted offset at `reference` minus `base`, microseconds.
    residual: f64,
    reference: u64,
    skew: f64,
    error_bound_us: u64,
    best_rtt_us: u64,
    samples: usize,
}

impl ClockSync {
    /// A synchroniser with no samples; its first ping (the burst's start) is due at once.
    pub fn new(config: ClockConfig) -> Self {
        ClockSync {
            config,
            next_seq: 0,
            burst_sent: 0,
            next_ping_at: 0,
            last_ping_at: None,
            outstanding: VecDeque::new(),
            samples: VecDeque::new(),
            fit: None,
        }
    }

    /// The ping to send now (local time `now`), if one is due.
    ///
    /// A burst of `burst_pings` pings `burst_interval_us` apart comes first, so an estimate
    /// exists within about a second; then one ping per `interval_us`. The ping's `t0` is `now`
    /// and `seq` increments with every ping. The next one is scheduled from `now`, so a caller
    /// that polls late gets one ping, not a catch-up flurry.
    pub fn poll_ping(&mut self, now: u64) -> Option<Ping> {
        if now < self.next_ping_at {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let gap = if self.burst_sent < self.config.burst_pings {
            self.burst_sent += 1;
            if self.burst_sent < self.config.burst_pings {
                self.config.burst_interval_us
            } else {
                self.config.interval_us
            }
        } else {
            self.config.interval_us
        };
        // A zero gap would hand out pings forever at one instant.
        self.next_ping_at = now.saturating_add(gap.max(1));
        self.last_ping_at = Some(now);

        let cap = usize::try_from(self.config.burst_pings)
            .unwrap_or(MAX_OUTSTANDING)
            .saturating_add(4)
            .clamp(MIN_OUTSTANDING, MAX_OUTSTANDING);
        while self.outstanding.len() >= cap {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((seq, now));
        Some(Ping { seq, t0: now })
    }

    /// When the next ping is due (local µs). Always some: pings never stop.
    pub fn poll_timeout(&self) -> Option<u64> {
        Some(self.next_ping_at)
    }

    /// A pong arrived at local time `t3`; returns the sample it made, if accepted.
    ///
    /// Ignored (`None`): a `seq` matching no unanswered ping (unknown, or already answered), a
    /// `t0` other than the ping's (the ping stays unanswered then), and impossible timestamps
    /// (`t3 < t0`, `t2 < t1`, or the relay holding the ping longer than the whole round trip).
    /// An accepted sample may still be an outlier that the estimate does not use.
    pub fn on_pong(&mut self, pong: &Pong, t3: u64) -> Option<ClockSample> {
        let idx = self
            .outstanding
            .iter()
            .position(|&(seq, _)| seq == pong.seq)?;
        let (_, t0) = self.outstanding[idx];
        if t0 != pong.t0 {
            return None;
        }
        let sample = ClockSample {
            t0,
            t1: pong.t1.as_micros(),
            t2: pong.t2.as_micros(),
            t3,
        };
        if t3 < t0 || sample.t2 < sample.t1 || sample.delay_micros() < 0 {
            return None;
        }
        self.outstanding.remove(idx);

        while self.samples.len() >= self.config.window.max(1) {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        let max_age = self.config.max_sample_age_us;
        self.samples.retain(|s| t3.saturating_sub(s.t3) <= max_age);
        self.fit = fit(&self.samples, self.skew_limit());
        Some(sample)
    }

    /// The current estimate, once at least one sample exists.
    pub fn estimate(&self) -> Option<ClockEstimate> {
        self.fit.as_ref().map(|f| ClockEstimate {
            offset_us: f.base as f64 + f.residual,
            reference: f.reference,
            skew: f.skew,
            error_bound_us: f.error_bound_us,
            best_rtt_us: f.best_rtt_us,
            samples: f.samples,
        })
    }

    /// Server time at local time `local` (offset and skew applied), once estimated.
    ///
    /// Saturates at the ends of the `u64` range.
    pub fn server_time(&self, local: u64) -> Option<ServerTime> {
        let f = self.fit.as_ref()?;
        let since = i128::from(local) - i128::from(f.reference);
        let fraction = f.residual + f.skew * since as f64;
        let server = i128::from(local) + i128::from(f.base) + round_to_i128(fraction);
        Some(ServerTime(saturate_u64(server)))
    }

    /// Local time at which the server clock reads `server`, once estimated.
    ///
    /// The inverse of [`server_time`](Self::server_time) (to within a microsecond of
    /// rounding); saturates at the ends of the `u64` range.
    pub fn local_time(&self, server: ServerTime) -> Option<u64> {
        let f = self.fit.as_ref()?;
        // server = ref + base + residual + (1 + skew)(local - ref)
        let at_reference = i128::from(f.reference) + i128::from(f.base);
        let beyond = (i128::from(server.as_micros()) - at_reference) as f64 - f.residual;
        let since = round_to_i128(beyond / (1.0 + f.skew));
        Some(saturate_u64(i128::from(f.reference) + since))
    }

    /// Forgets every sample and unanswered ping (after reconnecting to another relay, whose
    /// clock is another clock); pings restart with a burst due at `now`.
    ///
    /// The interval adopted with [`set_interval_us`](Self::set_interval_us) is kept, and so is
    /// the `seq` counter, so that late pongs from the old relay match nothing.
    pub fn reset(&mut self, now: u64) {
        self.burst_sent = 0;
        self.next_ping_at = now;
        self.last_ping_at = None;
        self.outstanding.clear();
        self.samples.clear();
        self.fit = None;
    }

    /// Adopts the relay's suggested interval between pings (`welcome.limits.ping_interval_ms`
    /// × 1000). After the burst, the next ping is rescheduled to the new interval after the
    /// last one. Zero is ignored.
    pub fn set_interval_us(&mut self, interval_us: u64) {
        if interval_us == 0 {
            return;
        }
        self.config.interval_us = interval_us;
        if self.burst_sent >= self.config.burst_pings
            && let Some(last) = self.last_ping_at
        {
            self.next_ping_at = last.saturating_add(interval_us);
        }
    }

    /// The configured skew limit as a fraction, sanitised (never NaN, at most [`SKEW_LIMIT`]).
    fn skew_limit(&self) -> f64 {
        let limit = self.config.max_skew_ppm.abs() * 1e-6;
        if limit.is_nan() {
            0.0
        } else {
            limit.min(SKEW_LIMIT)
        }
    }
}

/// Fits the line through `samples`, or `None` when there are none.
///
/// 1. The best sample is the one with the smallest delay: its offset error is at most half
///    its delay (path asymmetry can hide no more), so it gives the error bound, the integer
///    base of the offset, and the fallback estimate.
/// 2. Samples whose delay exceeds `min + max(min, 1 ms)` waited in some queue; queueing is
///    rarely symmetric, so their offsets can be off by up to half that wait. They are dropped.
/// 3. With at least [`MIN_FIT_SAMPLES`] left spanning at least [`MIN_FIT_SPAN_US`], offset is
///    fitted against local time by weighted least squares. A sample's delay above the
///    minimum (its *excess*) is jitter split between the two directions in some unknown way,
///    so its offset error is spread over ±excess/2: weighting by the inverse of that error's
///    variance, `1 / (excess² + floor²)`, lets near-minimum samples carry the line while the
///    others still help find its slope. The slope (skew) is clamped to `±skew_limit`, and the
///    offset is refitted at that slope.
/// 4. Otherwise skew is zero and the offset is the best sample's.
fn fit(samples: &VecDeque<ClockSample>, skew_limit: f64) -> Option<Fit> {
    let best = samples.iter().min_by_key(|s| s.delay_micros())?;
    let min_delay = best.delay_micros().max(0);
    let threshold = min_delay.saturating_add(min_delay.max(OUTLIER_MARGIN_FLOOR_US));
    let base = best.offset_micros();
    let error_bound_us = best.error_bound_micros().unsigned_abs();
    let best_rtt_us = min_delay.unsigned_abs();

    let kept: Vec<&ClockSample> = samples
        .iter()
        .filter(|s| s.delay_micros() <= threshold)
        .collect();
    let fallback = Fit {
        base,
        residual: 0.0,
        reference: midpoint(best),
        skew: 0.0,
        error_bound_us,
        best_rtt_us,
        samples: kept.len(),
    };

    let first = kept.iter().map(|s| midpoint(s)).min().unwrap_or(0);
    let last = kept.iter().map(|s| midpoint(s)).max().unwrap_or(0);
    if kept.len() < MIN_FIT_SAMPLES || last.saturating_sub(first) < MIN_FIT_SPAN_US {
        return Some(fallback);
    }

    // The newest sample used is the reference; x and y are small numbers relative to it and
    // to the best offset, so f64 keeps sub-microsecond precision.
    let reference = kept.last().map_or(fallback.reference, |s| midpoint(s));
    let points: Vec<(f64, f64, f64)> = kept
        .iter()
        .map(|s| {
            let x = (i128::from(midpoint(s)) - i128::from(reference)) as f64;
            let y = (i128::from(s.offset_micros()) - i128::from(base)) as f64;
            let excess = s.delay_micros().saturating_sub(min_delay) as f64;
            let w = 1.0 / (excess * excess + WEIGHT_FLOOR_US * WEIGHT_FLOOR_US);
            (x, y, w)
        })
        .collect();
    let sum_w: f64 = points.iter().map(|&(_, _, w)| w).sum();
    let mean_x = points.iter().map(|&(x, _, w)| w * x).sum::<f64>() / sum_w;
    let mean_y = points.iter().map(|&(_, y, w)| w * y).sum::<f64>() / sum_w;
    let (sxx, sxy) = points.iter().fold((0.0, 0.0), |(sxx, sxy), &(x, y, w)| {
        let dx = x - mean_x;
        (sxx + w * dx * dx, sxy + w * dx * (y - mean_y))
    });
    let mut slope = sxy / sxx;
    if !slope.is_finite() || !mean_x.is_finite() || !mean_y.is_finite() {
        return Some(fallback);
    }
    // Keep the slope only where the data show it. On a jittery path the offsets of even the
    // best samples scatter by milliseconds (the two directions' jitter differs), and a slope
    // fitted over a few seconds of that is noise that extrapolation would multiply: its
    // standard error, from the residuals themselves, must be well below the slope.
    let sum_w2: f64 = points.iter().map(|&(_, _, w)| w * w).sum();
    let n_eff = sum_w * sum_w / sum_w2;
    let residual_var = points
        .iter()
        .map(|&(x, y, w)| {
            let r = y - (mean_y + slope * (x - mean_x));
            w * r * r
        })
        .sum::<f64>()
        / sum_w;
    let x_var = sxx / sum_w;
    let standard_error = (residual_var / (x_var * (n_eff - 2.0).max(1.0))).sqrt();
    if standard_error.is_finite() && slope.abs() < SIGNIFICANT_SLOPE * standard_error {
        slope = 0.0;
    }
    let skew = if slope > skew_limit {
        skew_limit
    } else if slope < -skew_limit {
        -skew_limit
    } else {
        slope
    };
    // The weighted least-squares line passes through the weighted mean point; at a clamped
    // slope that is still the best intercept.
    let residual = mean_y - skew * mean_x;
    if !residual.is_finite() {
        return Some(fallback);
    }
    Some(Fit {
        base,
        residual,
        reference,
        skew,
        error_bound_us,
        best_rtt_us,
        samples: kept.len(),
    })
}

/// The local time a sample's offset describes: halfway between sending and receiving.
fn midpoint(s: &ClockSample) -> u64 {
    let sum = u128::from(s.t0) + u128::from(s.t3);
    u64::try_from(sum / 2).unwrap_or(u64::MAX)
}

/// Rounds to the nearest integer; NaN gives 0 and infinities saturate.
fn round_to_i128(v: f64) -> i128 {
    v.round() as i128
}

fn saturate_u64(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: a tiny deterministic PRNG, enough for a simulated network.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in (0, 1].
        fn unit(&mut self) -> f64 {
            ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
        }

        fn chance(&mut self, p: f64) -> bool {
            self.unit() <= p
        }

        fn exponential(&mut self, mean: f64) -> f64 {
            -mean * self.unit().ln()
        }
    }

    /// A network between the client and the relay, and the relay's clock.
    #[derive(Clone)]
    struct Net {
        /// Server clock = local × (1 + skew) + offset.
        skew: f64,
        offset: i128,
        /// Fixed one-way delays, µs (different: the path is asymmetric).
        base_out: f64,
        base_back: f64,
        /// Mean of the exponential jitter per direction, µs.
        jitter: f64,
        /// Probability that a datagram is lost, per direction.
        loss: f64,
        /// Probability of a 50 ms queueing spike, per direction.
        spike: f64,
        /// Jitter uniform in ±`jitter` (the sync benchmark's link emulator) rather than
        /// exponential.
        uniform: bool,
    }

    impl Net {
        fn server_at(&self, local: f64) -> i128 {
            self.offset + (local * (1.0 + self.skew)).floor() as i128
        }

        fn true_server(&self, local: u64) -> i128 {
            self.server_at(local as f64)
        }

        fn one_way(&self, rng: &mut Rng, base: f64) -> Option<f64> {
            if rng.chance(self.loss) {
                return None;
            }
            let spike = if rng.chance(self.spike) {
                50_000.0
            } else {
                0.0
            };
            let jitter = if self.uniform {
                self.jitter * (2.0 * rng.unit() - 1.0)
            } else {
                rng.exponential(self.jitter)
            };
            Some(base + jitter + spike)
        }

        fn wan(skew_ppm: f64) -> Net {
            Net {
                skew: skew_ppm * 1e-6,
                offset: 1_700_000_000_000_000,
                base_out: 9_000.0,
                base_back: 6_000.0,
                jitter: 400.0,
                loss: 0.03,
                spike: 0.03,
                uniform: false,
            }
        }

        fn loopback(skew_ppm: f64) -> Net {
            Net {
                skew: skew_ppm * 1e-6,
                offset: 1_700_000_000_000_000,
                base_out: 45.0,
                base_back: 45.0,
                jitter: 5.0,
                loss: 0.01,
                spike: 0.0,
                uniform: false,
            }
        }
    }

    /// Drives a `ClockSync` over a `Net`, faster than real time.
    struct Sim {
        net: Net,
        rng: Rng,
        clock: ClockSync,
        now: u64,
        /// Pongs in flight: (arrival local time, pong).
        in_flight: Vec<(u64, Pong)>,
        /// Local time of the last ping sent.
        last_ping: u64,
    }

    const START: u64 = 3_000_000;

    impl Sim {
        fn new(net: Net, seed: u64) -> Sim {
            Sim {
                net,
                rng: Rng(seed),
                clock: ClockSync::new(ClockConfig::default()),
                now: START,
                in_flight: Vec::new(),
                last_ping: 0,
            }
        }

        /// Runs until local time `until`, calling `check` after every event.
        fn run(&mut self, until: u64, pinging: bool, mut check: impl FnMut(&Sim)) {
            loop {
                let next_ping = if pinging {
                    self.clock.poll_timeout().unwrap_or(u64::MAX)
                } else {
                    u64::MAX
                };
                let next_pong = self.in_flight.iter().map(|(at, _)| *at).min();
                let next = next_ping.min(next_pong.unwrap_or(u64::MAX)).max(self.now);
                if next > until {
                    self.now = until;
                    return;
                }
                self.now = next;
                if let Some(i) = self.in_flight.iter().position(|(at, _)| *at == next) {
                    let (at, pong) = self.in_flight.swap_remove(i);
                    self.clock.on_pong(&pong, at);
                } else if let Some(ping) = self.clock.poll_ping(self.now) {
                    self.last_ping = self.now;
                    self.send(ping);
                }
                check(self);
            }
        }

        fn send(&mut self, ping: Ping) {
            let Some(out) = self.net.one_way(&mut self.rng, self.net.base_out) else {
                return;
            };
            let arrive = ping.t0 as f64 + out;
            let held = 10.0 + self.rng.unit() * 40.0;
            let Some(back) = self.net.one_way(&mut self.rng, self.net.base_back) else {
                return;
            };
            let t1 = self.net.server_at(arrive) as u64;
            let t2 = self.net.server_at(arrive + held) as u64;
            let t3 = (arrive + held + back).ceil() as u64;
            let pong = Pong {
                seq: ping.seq,
                t0: ping.t0,
                t1: ServerTime(t1),
                t2: ServerTime(t2),
            };
            self.in_flight.push((t3, pong));
        }

        /// |estimated − true| server time at local time `at`, µs.
        fn error_at(&self, at: u64) -> Option<u64> {
            let est = self.clock.server_time(at)?;
            Some((i128::from(est.as_micros()) - self.net.true_server(at)).unsigned_abs() as u64)
        }
    }

    const SEEDS: [u64; 4] = [0x9E37_79B9_7F4A_7C15, 42, 0xDEAD_BEEF, 7];
    const SKEWS_PPM: [f64; 3] = [0.0, 200.0, -200.0];

    #[test]
    fn the_burst_gives_an_estimate_within_a_second() {
        for skew in SKEWS_PPM {
            for seed in SEEDS {
                let mut sim = Sim::new(Net::wan(skew), seed);
                sim.run(START + 1_000_000, true, |_| {});
                let est = sim.clock.estimate().expect("estimated after 1 s");
                assert!(est.samples >= 5, "{est:?}");
                // At least the 20 ms that make up the path: a wrong offset would be way off.
                assert!(sim.error_at(sim.now).unwrap() < 10_000);
            }
        }
    }

    /// After the burst, the error of `server_time` stays within the estimate's own bound.
    #[test]
    fn error_stays_within_the_bound_on_a_lossy_jittery_path() {
        for skew in SKEWS_PPM {
            for seed in SEEDS {
                let mut sim = Sim::new(Net::wan(skew), seed);
                let mut worst = 0;
                let mut worst_margin = i64::MIN;
                sim.run(START + 180_000_000, true, |sim| {
                    if sim.now < START + 1_000_000 {
                        return;
                    }
                    let est = sim.clock.estimate().expect("estimated");
                    let err = sim.error_at(sim.now).unwrap();
                    worst = worst.max(err);
                    worst_margin = worst_margin.max(err as i64 - est.error_bound_us as i64);
                    assert!(
                        err <= est.error_bound_us + TOLERANCE_US,
                        "skew {skew} seed {seed} at {}: error {err} > bound {}",
                        sim.now - START,
                        est.error_bound_us
                    );
                });
                println!("wan skew {skew} seed {seed}: worst {worst} us, margin {worst_margin}");
            }
        }
    }

    const TOLERANCE_US: u64 = 20;

    /// A long jittery path (the sync benchmark's 50 ms link): the best samples' offsets
    /// scatter by milliseconds, and a slope fitted to that scatter would be extrapolated into
    /// tens of milliseconds. Without a real skew, none may be invented.
    #[test]
    fn a_jittery_path_does_not_invent_a_skew() {
        for seed in SEEDS {
            let net = Net {
                skew: 0.0,
                offset: 1_700_000_000_000_000,
                base_out: 40_000.0,
                base_back: 40_000.0,
                jitter: 10_000.0,
                loss: 0.01,
                spike: 0.0,
                uniform: true,
            };
            let mut sim = Sim::new(net, seed);
            let mut worst = 0;
            sim.run(START + 60_000_000, true, |sim| {
                if sim.now >= START + 1_000_000 {
                    worst = worst.max(sim.error_at(sim.now).unwrap());
                }
            });
            let est = sim.clock.estimate().unwrap();
            assert!(
                est.skew.abs() < 50e-6,
                "seed {seed}: invented skew {}",
                est.skew
            );
            // 30 s on without pings, still within a few ms.
            let later = sim.now + 30_000_000;
            let drifted = sim.error_at(later).unwrap();
            assert!(drifted < 5_000, "seed {seed}: {drifted} us off 30 s later");
            assert!(worst < 10_000, "seed {seed}: worst {worst} us");
        }
    }

    #[test]
    fn a_loopback_path_is_accurate_to_tens_of_microseconds() {
        for skew in SKEWS_PPM {
            for seed in SEEDS {
                let mut sim = Sim::new(Net::loopback(skew), seed);
                let mut worst = 0;
                // With skew, the first 2 s hold no slope yet (at 200 ppm the burst's best
                // sample ages 200 us per second); from the fit on, it is as good as without.
                let from = if skew == 0.0 { 1_000_000 } else { 5_000_000 };
                sim.run(START + 120_000_000, true, |sim| {
                    if sim.now < START + from {
                        return;
                    }
                    let err = sim.error_at(sim.now).unwrap();
                    worst = worst.max(err);
                    let bound = sim.clock.estimate().unwrap().error_bound_us;
                    assert!(err <= bound + TOLERANCE_US, "{err} > {bound}");
                    assert!(err < 50, "skew {skew} seed {seed} at {}: {err}", sim.now);
                });
                let est = sim.clock.estimate().unwrap();
                assert!(est.best_rtt_us <= 120, "{est:?}");
                assert!(est.error_bound_us <= 60, "{est:?}");
                println!("loopback skew {skew} seed {seed}: worst {worst} us");
            }
        }
    }

    #[test]
    fn skew_keeps_the_estimate_right_between_pings() {
        for skew in [200.0, -200.0] {
            for seed in SEEDS {
                // A jittery, lossy, spiky path with symmetric base delays, so that what is
                // measured is the extrapolation, not the (unknowable) asymmetry.
                let net = Net {
                    base_out: 7_500.0,
                    base_back: 7_500.0,
                    ..Net::wan(skew)
                };
                let mut sim = Sim::new(net, seed);
                sim.run(START + 60_000_000, true, |_| {});
                let at_last_ping = sim.error_at(sim.last_ping).unwrap();
                // No more pings: 30 s of silence (lost pongs, a sleeping tab).
                let until = sim.last_ping + 30_000_000;
                sim.run(until, false, |_| {});
                let est = sim.clock.estimate().unwrap();
                assert!((est.skew * 1e6 - skew).abs() < 5.0, "{est:?}");
                let err = sim.error_at(until).unwrap();
                assert!(
                    err < 1_000,
                    "skew {skew} seed {seed}: {err} us off after 30 s"
                );
                // The same offset without skew would be 6 ms off by now.
                let skew_free = est.offset_us.round() as i128 + i128::from(until);
                let skew_free_err = (skew_free - sim.net.true_server(until)).unsigned_abs();
                assert!(skew_free_err > 5_000, "{skew_free_err}");
                println!(
                    "skew {skew} seed {seed}: fitted {:.1} ppm; {at_last_ping} us off at the \
                     last ping, {err} us 30 s later, {skew_free_err} us without skew",
                    est.skew * 1e6
                );
            }
        }
    }

    /// Sends the due ping at `now` and answers it through a path of `out` + `back` µs with
    /// the server clock at `now + offset` (no skew); returns what `on_pong` said.
    fn exchange(
        clock: &mut ClockSync,
        now: u64,
        offset: u64,
        out: u64,
        back: u64,
    ) -> Option<ClockSample> {
        let ping = clock.poll_ping(now).expect("a ping is due");
        let t1 = ServerTime(now + out + offset);
        let pong = Pong {
            seq: ping.seq,
            t0: ping.t0,
            t1,
            t2: t1,
        };
        clock.on_pong(&pong, now + out + back)
    }

    const OFFSET: u64 = 1_700_000_000_000_000;

    #[test]
    fn outliers_do_not_move_the_estimate() {
        let mut clock = ClockSync::new(ClockConfig::default());
        let mut now = START;
        for i in 0..20 {
            let jitter = (i * 37) % 100;
            exchange(
                &mut clock,
                now,
                OFFSET,
                5_000 + jitter,
                5_000 + (i * 53) % 100,
            );
            now = clock.poll_timeout().unwrap();
        }
        let before = clock.estimate().unwrap();
        assert_eq!(before.samples, 20);
        // 50 ms of queueing on the way out, none back: the sample's offset is 25 ms off.
        let spike = exchange(&mut clock, now, OFFSET, 55_000, 5_000).expect("accepted");
        assert_eq!(spike.offset_micros(), OFFSET as i64 + 25_000);
        assert_eq!(clock.estimate(), Some(before.clone()));
        // Just over the margin (min delay 10 ms + 10 ms) is out too; just under counts.
        now = clock.poll_timeout().unwrap();
        exchange(&mut clock, now, OFFSET, 15_001, 5_000).expect("accepted");
        assert_eq!(clock.estimate(), Some(before.clone()));
        now = clock.poll_timeout().unwrap();
        exchange(&mut clock, now, OFFSET, 14_900, 5_000).expect("accepted");
        assert_eq!(clock.estimate().unwrap().samples, 21);
    }

    #[test]
    fn a_sample_with_little_delay_beats_the_rest() {
        let mut clock = ClockSync::new(ClockConfig::default());
        exchange(&mut clock, START, OFFSET, 3_000, 1_000);
        let first = clock.estimate().unwrap();
        assert_eq!(first.error_bound_us, 2_000);
        assert_eq!(first.best_rtt_us, 4_000);
        assert_eq!(first.skew, 0.0);
        // Better: 200 us each way, symmetric.
        exchange(&mut clock, START + 100_000, OFFSET, 200, 200);
        let est = clock.estimate().unwrap();
        assert_eq!(est.error_bound_us, 200);
        assert_eq!(est.best_rtt_us, 400);
        assert_eq!(est.offset_us, OFFSET as f64);
        // The first sample's 4 ms exceeds 400 us + 1 ms: queueing, not used any more.
        assert_eq!(est.samples, 1);
        let local = START + 500_000;
        assert_eq!(clock.server_time(local), Some(ServerTime(local + OFFSET)));
    }

    #[test]
    fn bad_pongs_are_ignored() {
        let mut clock = ClockSync::new(ClockConfig::default());
        let ping = clock.poll_ping(START).unwrap();
        let good = Pong {
            seq: ping.seq,
            t0: ping.t0,
            t1: ServerTime(OFFSET + START + 500),
            t2: ServerTime(OFFSET + START + 520),
        };
        // Unknown seq.
        let unknown = Pong {
            seq: ping.seq + 1000,
            ..good.clone()
        };
        assert_eq!(clock.on_pong(&unknown, START + 1_000), None);
        // A t0 other than the ping's (a forgery or a confused relay): ignored, ping still open.
        let wrong_t0 = Pong {
            t0: ping.t0 + 1,
            ..good.clone()
        };
        assert_eq!(clock.on_pong(&wrong_t0, START + 1_000), None);
        // Impossible: arrived before it was sent; the relay sent before it received; the
        // relay held it longer than the whole round trip.
        assert_eq!(clock.on_pong(&good, START - 1), None);
        let backwards = Pong {
            t2: ServerTime(OFFSET + START + 400),
            ..good.clone()
        };
        assert_eq!(clock.on_pong(&backwards, START + 1_000), None);
        let held_too_long = Pong {
            t2: ServerTime(OFFSET + START + 5_000),
            ..good.clone()
        };
        assert_eq!(clock.on_pong(&held_too_long, START + 1_000), None);
        assert_eq!(clock.estimate(), None);
        // The real answer is still taken, once.
        let sample = clock.on_pong(&good, START + 1_020).expect("the real pong");
        assert_eq!(sample.delay_micros(), 1_000);
        assert_eq!(clock.on_pong(&good, START + 1_020), None);
        assert_eq!(clock.on_pong(&good, START + 900), None);
        assert_eq!(clock.estimate().unwrap().samples, 1);
    }

    #[test]
    fn pongs_from_before_a_reset_are_ignored() {
        let mut clock = ClockSync::new(ClockConfig::default());
        let old = clock.poll_ping(START).unwrap();
        exchange(&mut clock, START + 100_000, OFFSET, 100, 100);
        assert!(clock.estimate().is_some());
        clock.reset(START + 200_000);
        assert_eq!(clock.estimate(), None);
        assert_eq!(clock.server_time(START), None);
        assert_eq!(clock.local_time(ServerTime(OFFSET)), None);
        let late = Pong {
            seq: old.seq,
            t0: old.t0,
            t1: ServerTime(OFFSET),
            t2: ServerTime(OFFSET),
        };
        assert_eq!(clock.on_pong(&late, START + 200_100), None);
        // A fresh burst with fresh seqs.
        let first = clock.poll_ping(START + 200_000).unwrap();
        assert!(first.seq > 1);
        assert_eq!(clock.poll_timeout(), Some(START + 300_000));
    }

    #[test]
    fn local_time_inverts_server_time() {
        for skew in SKEWS_PPM {
            let mut sim = Sim::new(Net::wan(skew), 1);
            sim.run(START + 30_000_000, true, |_| {});
            let est = sim.clock.estimate().unwrap();
            assert!((est.skew * 1e6 - skew).abs() < 20.0, "{est:?}");
            for x in [
                0,
                1,
                START,
                sim.now,
                sim.now + 1,
                sim.now + 3_600_000_000,
                1 << 52,
            ] {
                let server = sim.clock.server_time(x).unwrap();
                let back = sim.clock.local_time(server).unwrap();
                assert!(
                    back.abs_diff(x) <= 1,
                    "skew {skew}: {x} -> {server:?} -> {back}"
                );
            }
        }
    }

    #[test]
    fn pings_come_in_a_burst_then_at_the_interval() {
        let mut clock = ClockSync::new(ClockConfig::default());
        assert_eq!(clock.poll_timeout(), Some(0));
        let mut sent = Vec::new();
        let mut now = START;
        while now < START + 10_000_000 {
            if let Some(ping) = clock.poll_ping(now) {
                assert_eq!(ping.t0, now);
                assert_eq!(clock.poll_ping(now), None, "one ping per due time");
                sent.push(ping);
            }
            now += 10_000;
        }
        let times: Vec<u64> = sent.iter().map(|p| p.t0 - START).collect();
        assert_eq!(
            times,
            [
                0, 100_000, 200_000, 300_000, 400_000, 500_000, 600_000, 700_000, 800_000, 900_000,
                2_900_000, 4_900_000, 6_900_000, 8_900_000
            ]
        );
        let seqs: Vec<u32> = sent.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, (0..14).collect::<Vec<u32>>());

        // The relay suggests 5 s: the next ping moves to 5 s after the last.
        clock.set_interval_us(5_000_000);
        assert_eq!(clock.poll_timeout(), Some(START + 13_900_000));
        clock.set_interval_us(0);
        assert_eq!(clock.poll_timeout(), Some(START + 13_900_000));
        // Polled late: one ping, the next an interval after it, no catch-up.
        assert!(clock.poll_ping(START + 20_000_000).is_some());
        assert_eq!(clock.poll_ping(START + 20_000_000), None);
        assert_eq!(clock.poll_timeout(), Some(START + 25_000_000));

        // A reset starts a new burst; the adopted interval stays.
        clock.reset(START + 30_000_000);
        assert_eq!(clock.poll_timeout(), Some(START + 30_000_000));
        for i in 0..10 {
            let at = START + 30_000_000 + i * 100_000;
            assert!(clock.poll_ping(at).is_some());
        }
        assert_eq!(clock.poll_timeout(), Some(START + 30_900_000 + 5_000_000));
    }

    #[test]
    fn skew_is_clamped_and_old_samples_age_out() {
        let config = ClockConfig {
            window: 8,
            max_sample_age_us: 10_000_000,
            ..ClockConfig::default()
        };
        let mut clock = ClockSync::new(config);
        // A relay clock gaining 2000 ppm (2 ms per second) on a clean path.
        let mut now = START;
        for _ in 0..30 {
            let drift = (now - START) / 500;
            exchange(&mut clock, now, OFFSET + drift, 100, 100);
            now = clock.poll_timeout().unwrap();
        }
        let est = clock.estimate().unwrap();
        assert_eq!(est.skew, 500e-6);
        assert!(est.samples <= 6, "10 s at one ping per 2 s: {est:?}");
        assert_eq!(clock.samples.len(), est.samples);
        // Window of 8 holds: the burst alone is 10.
        let mut clock = ClockSync::new(ClockConfig {
            window: 8,
            ..ClockConfig::default()
        });
        for i in 0..10 {
            exchange(&mut clock, START + i * 100_000, OFFSET, 100, 100);
        }
        assert_eq!(clock.samples.len(), 8);
        assert_eq!(clock.estimate().unwrap().samples, 8);
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let configs = [
            ClockConfig::default(),
            ClockConfig {
                burst_pings: u32::MAX,
                burst_interval_us: 0,
                interval_us: 0,
                window: 0,
                max_sample_age_us: 0,
                max_skew_ppm: f64::NAN,
            },
            ClockConfig {
                burst_pings: 0,
                burst_interval_us: u64::MAX,
                interval_us: u64::MAX,
                window: usize::MAX,
                max_sample_age_us: u64::MAX,
                max_skew_ppm: f64::INFINITY,
            },
        ];
        let times = [0, 1, u64::MAX / 2, u64::MAX - 1, u64::MAX];
        for config in configs {
            let mut clock = ClockSync::new(config);
            for &t0 in &times {
                for &t1 in &times {
                    for &t2 in &times {
                        for &t3 in &times {
                            let Some(ping) = clock.poll_ping(t0) else {
                                clock.reset(t0);
                                continue;
                            };
                            let pong = Pong {
                                seq: ping.seq,
                                t0: ping.t0,
                                t1: ServerTime(t1),
                                t2: ServerTime(t2),
                            };
                            clock.on_pong(&pong, t3);
                            let _ = clock.estimate();
                            for &x in &times {
                                let _ = clock.server_time(x);
                                let _ = clock.local_time(ServerTime(x));
                            }
                            clock.set_interval_us(t3);
                            let _ = clock.poll_timeout();
                        }
                    }
                }
            }
        }
        // Extreme but possible samples give saturated, not wrapped, times.
        let mut clock = ClockSync::new(ClockConfig::default());
        let ping = clock.poll_ping(0).unwrap();
        let pong = Pong {
            seq: ping.seq,
            t0: 0,
            t1: ServerTime(u64::MAX),
            t2: ServerTime(u64::MAX),
        };
        assert!(clock.on_pong(&pong, 0).is_some());
        assert_eq!(clock.server_time(u64::MAX), Some(ServerTime(u64::MAX)));
        assert_eq!(clock.local_time(ServerTime(0)), Some(0));
    }
}
