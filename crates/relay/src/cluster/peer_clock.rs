//! How far another relay's server clock is from this one's, and how sure we are.
//!
//! NTP's four timestamps over the backplane: this relay sends a probe at `t0` (its clock), the
//! peer stamps its arrival `t1` and its reply `t2` (the peer's clock), the reply arrives at
//! `t3` (ours). Then `rtt = (t3 − t0) − (t2 − t1)` and `offset = ((t1 − t0) + (t2 − t3)) / 2`
//! (peer − us). The offset is exact when both directions take as long; however lopsided they
//! are, it is off by at most `rtt / 2`, which is the error reported. Of the recent samples
//! the one with the smallest round trip is kept: it was queued least, so its bound is the
//! tightest. Sans-IO: timestamps in, estimate out.

use std::collections::VecDeque;

use lockstep_proto::ServerTime;

/// Samples kept (one probe a second: the last 16 s).
pub const WINDOW: usize = 16;

/// One probe's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Peer clock minus ours, µs.
    pub offset_us: i64,
    /// Round trip without the peer's own handling time, µs.
    pub rtt_us: i64,
    /// When the reply arrived (our clock).
    pub at: ServerTime,
}

/// The current estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockEstimate {
    /// Peer clock minus ours, µs.
    pub offset_us: i64,
    /// The most the offset can be wrong by, µs (half the sample's round trip).
    pub error_us: i64,
    /// The sample's round trip, µs.
    pub rtt_us: i64,
    /// When that sample was taken (our clock).
    pub at: ServerTime,
}

/// The offset to one peer.
#[derive(Debug, Clone, Default)]
pub struct PeerClock {
    samples: VecDeque<ClockSample>,
}

impl PeerClock {
    /// No samples yet.
    pub fn new() -> Self {
        PeerClock::default()
    }

    /// A reply to the probe sent at `t0` (ours), received by the peer at `t1` and answered at
    /// `t2` (the peer's), arrived at `t3` (ours). Impossible timestamps (a negative round
    /// trip, a reply before its probe) are ignored: false.
    pub fn on_reply(
        &mut self,
        t0: ServerTime,
        t1: ServerTime,
        t2: ServerTime,
        t3: ServerTime,
    ) -> bool {
        let (t0, t1, t2, t3) = (us(t0), us(t1), us(t2), us(t3));
        let rtt = (t3 - t0) - (t2 - t1);
        if t3 < t0 || t2 < t1 || rtt < 0 {
            return false;
        }
        let offset = ((t1 - t0) + (t2 - t3)) / 2;
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(ClockSample {
            offset_us: offset,
            rtt_us: rtt,
            at: ServerTime::from_micros(u64::try_from(t3).unwrap_or(0)),
        });
        true
    }

    /// The estimate from the recent sample with the smallest round trip.
    pub fn estimate(&self) -> Option<ClockEstimate> {
        self.samples
            .iter()
            .min_by_key(|s| (s.rtt_us, std::cmp::Reverse(s.at)))
            .map(|s| ClockEstimate {
                offset_us: s.offset_us,
                error_us: (s.rtt_us + 1) / 2,
                rtt_us: s.rtt_us,
                at: s.at,
            })
    }

    /// A peer time in our clock, if there is an estimate.
    pub fn to_local(&self, peer: ServerTime) -> Option<ServerTime> {
        let e = self.estimate()?;
        Some(ServerTime::from_micros(
            u64::try_from(us(peer) - e.offset_us).unwrap_or(0),
        ))
    }

    /// Our time in the peer's clock, if there is an estimate.
    pub fn to_peer(&self, local: ServerTime) -> Option<ServerTime> {
        let e = self.estimate()?;
        Some(ServerTime::from_micros(
            u64::try_from(us(local) + e.offset_us).unwrap_or(0),
        ))
    }
}

fn us(t: ServerTime) -> i64 {
    i64::try_from(t.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: u64) -> ServerTime {
        ServerTime::from_micros(1_700_000_000_000_000 + us)
    }

    /// A probe through a network taking `up` and `down` µs, the peer `offset` µs ahead and
    /// `handling` µs to answer, sent at our `t0`.
    fn probe(c: &mut PeerClock, t0: u64, offset: i64, up: u64, down: u64, handling: u64) -> bool {
        let peer = |local: u64| t(u64::try_from(local as i64 + offset).unwrap());
        let t1 = t0 + up;
        let t2 = t1 + handling;
        c.on_reply(t(t0), peer(t1), peer(t2), t(t2 + down))
    }

    #[test]
    fn symmetric_paths_give_the_exact_offset() {
        let mut c = PeerClock::new();
        assert!(probe(&mut c, 0, 2_500, 300, 300, 40));
        let e = c.estimate().unwrap();
        assert_eq!((e.offset_us, e.rtt_us, e.error_us), (2_500, 600, 300));
        assert_eq!(c.to_local(t(10_000)), Some(t(7_500)));
        assert_eq!(c.to_peer(t(7_500)), Some(t(10_000)));
    }

    #[test]
    fn the_error_bound_holds_however_lopsided_and_the_least_queued_sample_wins() {
        let mut c = PeerClock::new();
        let truth = -1_234;
        // Lopsided and queued: off by (up − down) / 2, within rtt / 2.
        for (i, (up, down)) in [(2_000, 100), (150, 900), (400, 380), (3_000, 3_100)]
            .into_iter()
            .enumerate()
        {
            assert!(probe(&mut c, i as u64 * 1_000_000, truth, up, down, 25));
            let e = c.estimate().unwrap();
            assert!(
                (e.offset_us - truth).abs() <= e.error_us,
                "{e:?} misses {truth} by more than its bound"
            );
        }
        // The least-queued sample (400/380) is the one kept.
        assert_eq!(c.estimate().unwrap().rtt_us, 780);
        // Old samples leave the window.
        for i in 0..WINDOW as u64 {
            probe(&mut c, 10_000_000 + i * 1_000_000, truth, 5_000, 5_000, 25);
        }
        assert_eq!(c.estimate().unwrap().rtt_us, 10_000);
    }

    #[test]
    fn impossible_replies_are_ignored() {
        let mut c = PeerClock::new();
        // Answered before it arrived; arrived back before it left.
        assert!(!c.on_reply(t(100), t(500), t(400), t(900)));
        assert!(!c.on_reply(t(100), t(150), t(160), t(50)));
        assert_eq!(c.estimate(), None);
        assert_eq!(c.to_local(t(1)), None);
    }
}
