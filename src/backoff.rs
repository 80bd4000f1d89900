//! Crash-loop backoff, one type for both supervisors: the emperor restarting a vassal (1 s, 2 s, 4 s ... up
//! to `emperor-max-throttle`, from `emperor-throttle`) and the master respawning a worker (0.2 s doubling, at
//! most 10 s, see [`WORKER`]).
//!
//! Why exponential and capped: a process whose app raises at import would otherwise be restarted as fast as
//! Python can start, burning the CPU its neighbours need (a fork bomb, for workers); the cap keeps a fixed
//! app from waiting long before it comes back. A process that served for a while before dying starts over
//! ([`Backoff::reset`]): for a vassal, after [`HEALTHY_AFTER`], a manual retry (API) or a change of its file;
//! for a worker, after [`WORKER_HEALTHY_AFTER`] or a planned exit (max-requests, reload, ...).

use std::time::Duration;

/// A vassal that stayed up this long before exiting is treated as healthy: its next start is immediate and
/// the backoff starts over.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// A worker that lived this long before crashing is respawned at once and its backoff starts over.
pub const WORKER_HEALTHY_AFTER: Duration = Duration::from_secs(1);

/// The master's respawn backoff for a worker's crash loop: 0.2 s, 0.4 s ... at most 10 s.
pub const WORKER: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// Consecutive failed starts since the last reset.
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max: max.max(base), failures: 0 }
    }

    /// Records one more failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let shift = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        self.base.saturating_mul(1u32 << shift).min(self.max)
    }

    /// Forgets past failures (the vassal served, its file changed, or a human asked to retry now).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let delays: Vec<u64> = (0..6).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.failures(), 6);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn a_crashing_worker_waits_200_ms_doubling_up_to_10_s() {
        let mut backoff = Backoff::new(WORKER.0, WORKER.1);
        let delays: Vec<u128> = (0..9).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
    }

    #[test]
    fn never_overflows() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        for _ in 0..1000 {
            assert!(backoff.next_delay() <= Duration::from_secs(60));
        }
    }
}
