//! Token buckets: how many messages a client may send, over time.
//!
//! Sans-IO: the bucket is told the time. Used per connection for control messages and
//! datagrams separately, and per member for chat.

use lockstep_proto::ServerTime;

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Option<ServerTime>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        TokenBucket {
            rate_per_sec: rate_per_sec.max(0.0),
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            last: None,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: ServerTime) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.seconds_since(last).max(0.0);
            self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts a client's violations: a few are answered with errors, persistent abuse closes the
/// connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Strikes {
    count: u32,
    window_start: Option<ServerTime>,
}

impl Strikes {
    /// Violations tolerated within `STRIKE_WINDOW` before the connection is closed.
    pub const LIMIT: u32 = 50;
    const WINDOW_US: i64 = 10_000_000;

    /// Records a violation; true when the client has now exceeded the limit.
    pub fn strike(&mut self, now: ServerTime) -> bool {
        match self.window_start {
            Some(start) if now.micros_since(start) < Self::WINDOW_US => {}
            _ => {
                self.window_start = Some(now);
                self.count = 0;
            }
        }
        self.count += 1;
        self.count > Self::LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = ServerTime::from_micros(1_000_000);
        let mut b = TokenBucket::new(10.0, 3.0);
        assert!(b.try_take(t0) && b.try_take(t0) && b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(
            b.try_take(t0.add_micros(100_000)),
            "0.1 s at 10/s earns one token"
        );
        assert!(!b.try_take(t0.add_micros(100_000)));
        // Long idle refills only up to the burst.
        let later = t0.add_micros(60_000_000);
        assert!(b.try_take(later) && b.try_take(later) && b.try_take(later));
        assert!(!b.try_take(later));
    }

    #[test]
    fn strikes_close_only_persistent_abuse() {
        let t0 = ServerTime::from_micros(0);
        let mut s = Strikes::default();
        for _ in 0..Strikes::LIMIT {
            assert!(!s.strike(t0));
        }
        assert!(s.strike(t0));
        let mut s = Strikes::default();
        for i in 0..200 {
            // Spread out over time: never more than the limit within the window.
            assert!(!s.strike(t0.add_micros(i * 250_000)));
        }
    }
}
