//! A small seeded generator (SplitMix64): room sizes, roles and timer phases come from the seed,
//! so two runs with the same options load the relay the same way.

/// SplitMix64: fast, tiny, and good enough to spread timers and pick roles.
#[derive(Debug, Clone)]
pub(crate) struct Prng(u64);

impl Prng {
    /// A generator for `stream` under `seed` (each client gets its own stream).
    pub(crate) fn new(seed: u64, stream: u64) -> Prng {
        let mut p = Prng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // Mix once so neighbouring streams do not start correlated.
        p.next_u64();
        p
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi` (`lo` when the range is empty).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_same_numbers() {
        let mut a = Prng::new(7, 3);
        let mut b = Prng::new(7, 3);
        let mut c = Prng::new(7, 4);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..5).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn ranges_stay_inside() {
        let mut p = Prng::new(1, 0);
        for _ in 0..10_000 {
            let r = p.range(5, 10);
            assert!((5..=10).contains(&r));
            let u = p.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(p.range(3, 3), 3);
        assert_eq!(p.range(4, 2), 4);
    }
}
