//! The four-timestamp clock exchange (NTP style) between a client and the relay.
//!
//! Owns the arithmetic of one sample. Choosing among samples (minimum delay, skew, outliers)
//! is the client SDK's job; this module only turns one exchange into an offset and a delay so
//! that every implementation computes them identically.

/// One completed ping/pong exchange.
///
/// `t0` and `t3` are on the client's monotonic clock, `t1` and `t2` on the relay's, all in
/// microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Client time the ping was sent.
    pub t0: u64,
    /// Relay time the ping arrived.
    pub t1: u64,
    /// Relay time the pong was sent.
    pub t2: u64,
    /// Client time the pong arrived.
    pub t3: u64,
}

impl ClockSample {
    /// Estimated `server - client` clock offset in microseconds.
    ///
    /// Exact when the path is symmetric; otherwise off by at most half the round-trip delay,
    /// which is why the sample with the smallest delay is the best one.
    pub fn offset_micros(&self) -> i64 {
        let out = i128::from(self.t1) - i128::from(self.t0);
        let back = i128::from(self.t2) - i128::from(self.t3);
        saturate((out + back) / 2)
    }

    /// Round-trip network delay in microseconds, excluding the relay's own processing time.
    pub fn delay_micros(&self) -> i64 {
        let total = i128::from(self.t3) - i128::from(self.t0);
        let held = i128::from(self.t2) - i128::from(self.t1);
        saturate(total - held)
    }

    /// Bound on the offset error: half the delay.
    pub fn error_bound_micros(&self) -> i64 {
        self.delay_micros().max(0) / 2
    }
}

fn saturate(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_path_gives_the_exact_offset() {
        // Server is 1_000 us ahead; 200 us each way; 50 us processing.
        let s = ClockSample {
            t0: 10_000,
            t1: 11_200,
            t2: 11_250,
            t3: 10_450,
        };
        assert_eq!(s.offset_micros(), 1_000);
        assert_eq!(s.delay_micros(), 400);
        assert_eq!(s.error_bound_micros(), 200);
    }

    #[test]
    fn asymmetric_path_errs_by_at_most_half_the_delay() {
        // True offset 0; 300 us out, 100 us back.
        let s = ClockSample {
            t0: 0,
            t1: 300,
            t2: 300,
            t3: 400,
        };
        let true_offset = 0;
        let err = (s.offset_micros() - true_offset).abs();
        assert!(err <= s.error_bound_micros(), "{err}");
        assert_eq!(err, 100);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let s = ClockSample {
            t0: 0,
            t1: u64::MAX,
            t2: u64::MAX,
            t3: 0,
        };
        assert_eq!(s.offset_micros(), i64::MAX);
        assert_eq!(s.delay_micros(), 0);
        let backwards = ClockSample {
            t0: u64::MAX,
            t1: 0,
            t2: u64::MAX,
            t3: 0,
        };
        assert_eq!(backwards.delay_micros(), i64::MIN);
        assert_eq!(backwards.error_bound_micros(), 0);
    }
}
