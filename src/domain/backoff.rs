//! The one exponential backoff of the operator: registry hosts after transient failures, distinct
//! tags after failed imports, streams and workloads after failed reconciles, and cross-namespace
//! access rechecks all wait `base · 2^attempt`, capped.

use std::time::Duration;

/// An exponential backoff: the first retry waits `base`, each further one twice as long, never
/// longer than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The wait before retry number `attempt` (0 for the first retry): `base · 2^attempt`, at most
    /// `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.min(31))
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_retry_waits_twice_as_long_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(300));
        let delays: Vec<u64> = (0..8).map(|a| backoff.delay(a).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.delay(u32::MAX), backoff.max);
    }

    #[test]
    fn a_huge_base_saturates_at_the_cap_instead_of_overflowing() {
        let backoff = Backoff::new(Duration::MAX / 2, Duration::from_secs(60));
        assert_eq!(backoff.delay(30), Duration::from_secs(60));
    }
}
