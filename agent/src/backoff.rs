//! Exponential backoff, one for the whole agent: after the n-th failure in a row the ceiling is
//! `min(cap, base * 2^(n-1))`.
//!
//! - [`Backoff::delay`], full jitter (a uniformly random wait up to the ceiling): the stores of
//!   a fleet that all lost HQ at once do not all come back in the same second.
//! - [`Backoff::equal_jitter`] (half the ceiling plus a random half): serial devices that went
//!   away together retry spread out, and none sooner than half its step.

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

    /// Half the ceiling plus a uniformly random part of the other half.
    pub fn equal_jitter(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let half = self.ceiling(failures) / 2;
        let millis = half.as_millis().min(u128::from(u64::MAX)) as u64;
        half + Duration::from_millis(rng.gen_range(0..=millis))
    }

    /// Full jitter: a uniformly random wait up to the ceiling.
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

    #[test]
    fn serial_devices_back_off_from_250_ms_to_10_s_never_below_half_a_step() {
        let b = Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(10),
        };
        let steps: Vec<u128> = (1..=8).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(steps, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(b.ceiling(0), Duration::from_millis(250));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in [1, 3, 10, u32::MAX] {
            let step = b.ceiling(attempt);
            for _ in 0..50 {
                let d = b.equal_jitter(attempt, &mut rng);
                assert!(d >= step / 2 && d <= step, "{attempt}: {d:?}");
            }
        }
    }
}
