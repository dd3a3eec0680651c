//! The gateway's clock: the real time, plus an offset that only tests move.
//!
//! Everything time-dependent that a test must be able to reach without
//! waiting reads this clock: the membership TTL, stale grace and back-off,
//! and `session.max_age`. [`Clock::advance`] moves it forward; nothing in
//! the product calls it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

/// A clock shared by the parts of one gateway. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Clock(Arc<AtomicU64>);

impl Clock {
    /// How far this clock runs ahead of the real one.
    fn offset(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Relaxed))
    }

    /// The current instant (monotonic).
    pub fn now(&self) -> Instant {
        Instant::now() + self.offset()
    }

    /// The current Unix time in seconds.
    pub fn unix_now(&self) -> i64 {
        let offset = i64::try_from(self.offset().as_secs()).unwrap_or(i64::MAX);
        OffsetDateTime::now_utc()
            .unix_timestamp()
            .saturating_add(offset)
    }

    /// The current date and time.
    pub fn utc_now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset()
    }

    /// Moves the clock forward by `by` (tests only: a TTL passes at once).
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(millis, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_both_readings_and_every_clone() {
        let clock = Clock::default();
        let other = clock.clone();
        let (before, unix_before) = (clock.now(), clock.unix_now());
        other.advance(Duration::from_secs(3600));
        assert!(clock.now() >= before + Duration::from_secs(3600));
        assert!(clock.unix_now() >= unix_before + 3600);
    }
}
