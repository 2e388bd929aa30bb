//! Server time: the one clock every member of a room agrees on.
//!
//! Owns the `ServerTime` value type. It never reads a clock: the relay samples its monotonic
//! clock in its IO shell and passes the value in, so every rule built on time stays
//! deterministic and testable faster than real time.

use serde::{Deserialize, Serialize};

/// A point on the relay's monotonic clock, in microseconds from an origin the relay chose.
///
/// Only differences and the client's estimated offset to it mean anything. Microseconds in a
/// `u64` stay exact in a JavaScript number (below 2^53) for centuries, which is why the wire
/// uses them rather than seconds as a float.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ServerTime(pub u64);

impl ServerTime {
    /// The origin of the relay's clock.
    pub const ZERO: ServerTime = ServerTime(0);

    /// Builds a time from microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        ServerTime(micros)
    }

    /// Microseconds since the relay's origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// `self - earlier` in microseconds, negative when `earlier` is in fact later.
    ///
    /// Signed because a client extrapolating a timeline may ask about a moment just before the
    /// timeline's anchor (a command scheduled in the near future).
    pub fn micros_since(self, earlier: ServerTime) -> i64 {
        let diff = i128::from(self.0) - i128::from(earlier.0);
        diff.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// `self - earlier` in seconds (negative when `earlier` is later).
    pub fn seconds_since(self, earlier: ServerTime) -> f64 {
        self.micros_since(earlier) as f64 / 1_000_000.0
    }

    /// This time moved by `micros` (saturating at the ends of the range).
    pub fn add_micros(self, micros: i64) -> ServerTime {
        ServerTime(self.0.saturating_add_signed(micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_signed() {
        let a = ServerTime(1_000_000);
        let b = ServerTime(1_500_000);
        assert_eq!(b.micros_since(a), 500_000);
        assert_eq!(a.micros_since(b), -500_000);
        assert_eq!(b.seconds_since(a), 0.5);
    }

    #[test]
    fn adding_saturates() {
        assert_eq!(ServerTime(5).add_micros(-10), ServerTime(0));
        assert_eq!(ServerTime(u64::MAX).add_micros(10), ServerTime(u64::MAX));
        assert_eq!(ServerTime(5).add_micros(10), ServerTime(15));
    }

    #[test]
    fn extreme_differences_do_not_overflow() {
        assert_eq!(ServerTime(u64::MAX).micros_since(ServerTime(0)), i64::MAX);
        assert_eq!(ServerTime(0).micros_since(ServerTime(u64::MAX)), i64::MIN);
    }
}
