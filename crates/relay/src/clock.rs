//! The relay's server time: microseconds on a monotonic clock.
//!
//! The IO shell's only clock. The origin is the UNIX time at start, so values stay below 2^53
//! and relays on NTP-disciplined hosts roughly agree; after start only the monotonic clock
//! advances it, so it never jumps backwards when the wall clock is stepped.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use lockstep_proto::ServerTime;

/// Reads server time.
#[derive(Debug, Clone, Copy)]
pub struct ServerClock {
    origin: Instant,
    base_us: u64,
}

impl ServerClock {
    /// A clock starting at the current UNIX time.
    pub fn start() -> Self {
        let base_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(0))
            .unwrap_or(0);
        ServerClock {
            origin: Instant::now(),
            base_us,
        }
    }

    /// A clock `skew_us` off the UNIX time: what a relay on a host whose wall clock is that
    /// far off would use (tests of relays that disagree on time).
    pub fn start_skewed(skew_us: i64) -> Self {
        let clock = ServerClock::start();
        ServerClock {
            base_us: clock.base_us.saturating_add_signed(skew_us),
            ..clock
        }
    }

    /// Server time now.
    pub fn now(&self) -> ServerTime {
        let elapsed = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        ServerTime::from_micros(self.base_us.saturating_add(elapsed))
    }

    /// The server time of a monotonic instant (when something happened, read later).
    pub fn at(&self, instant: Instant) -> ServerTime {
        let since = instant.saturating_duration_since(self.origin);
        let us = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
        ServerTime::from_micros(self.base_us.saturating_add(us))
    }

    /// The monotonic instant of a server time (for timers).
    pub fn instant(&self, t: ServerTime) -> Instant {
        let offset = t.as_micros().saturating_sub(self.base_us);
        self.origin + std::time::Duration::from_micros(offset)
    }

    /// Seconds since the UNIX epoch, for JWT expiry (wall clock, as JWTs are).
    pub fn unix_seconds() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}
