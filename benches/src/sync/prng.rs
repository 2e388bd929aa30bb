//! A small seeded pseudo-random generator for the link emulator: xorshift64* seeded through
//! splitmix64. Reproducible from a seed, fast, and free of dependencies; not for cryptography.

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators").
#[derive(Debug, Clone)]
pub(crate) struct XorShift64Star {
    state: u64,
}

impl XorShift64Star {
    /// A generator from any seed, including 0 (splitmix64 spreads the seed over the state and
    /// never yields the all-zero state xorshift cannot leave).
    pub(crate) fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift64Star {
            state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z },
        }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high].
    pub(crate) fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// True with probability `p` (clamped to [0, 1]).
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_zero_seed_works() {
        let mut a = XorShift64Star::new(0);
        let mut b = XorShift64Star::new(0);
        let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert!(first.iter().all(|&x| x != 0));
        assert_eq!(first, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut c = XorShift64Star::new(1);
        assert_ne!(first[0], c.next_u64());
    }

    #[test]
    fn uniform_and_chance_have_the_right_moments() {
        let mut r = XorShift64Star::new(42);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| r.uniform(-1.0, 1.0)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        // Uniform on [-1, 1]: variance 1/3.
        assert!((var - 1.0 / 3.0).abs() < 0.01, "variance {var}");
        assert!(xs.iter().all(|x| (-1.0..=1.0).contains(x)));
        let hits = (0..n).filter(|_| r.chance(0.02)).count();
        // 2000 expected, sigma ~44.
        assert!((1800..2200).contains(&hits), "hits {hits}");
    }
}
