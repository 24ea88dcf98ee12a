//! Exponential backoff with full jitter: after the n-th failure in a row, wait a uniformly
//! random time in `[0, min(cap, base * 2^n))`. Full jitter spreads the stores of a fleet that
//! all lost HQ at once, so they do not all come back in the same second.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling of the wait after `failures` failures in a row (1 = the first).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    pub fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(failures);
        let millis = ceiling.as_millis().min(u128::from(u64::MAX)) as u64;
        Duration::from_millis(rng.gen_range(0..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    const B: Backoff = Backoff {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(60),
    };

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        assert_eq!(B.ceiling(1), Duration::from_millis(500));
        assert_eq!(B.ceiling(2), Duration::from_secs(1));
        assert_eq!(B.ceiling(5), Duration::from_secs(8));
        assert_eq!(B.ceiling(8), Duration::from_secs(60));
        assert_eq!(B.ceiling(200), Duration::from_secs(60));
    }

    #[test]
    fn delays_are_spread_over_the_whole_range() {
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..2000).map(|_| B.delay(6, &mut rng)).collect();
        let ceiling = B.ceiling(6);
        assert!(delays.iter().all(|d| *d <= ceiling));
        let low = delays.iter().filter(|d| **d < ceiling / 4).count();
        let high = delays.iter().filter(|d| **d > ceiling * 3 / 4).count();
        assert!(
            low > 300 && high > 300,
            "low {low}, high {high}: not full jitter"
        );
    }
}
