//! The membership cache's policy, as pure functions of the time: when an
//! entry is fresh, when GitHub may be asked again after a failure, and what
//! a stale entry may still serve. No I/O, so every rule is unit-tested on
//! made-up instants.
//!
//! Fail closed: no failure ever produces a membership; a stale one serves
//! only within `cache.stale_grace` past the TTL, and never while the
//! person's own token is rate-limited (they may have burnt their quota on
//! purpose to keep a membership they lost).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Membership, MembershipError};
use crate::github::GithubError;

/// After a failed read, how long to wait before asking GitHub again for
/// the same person (requests in between are answered from the stale entry
/// within the grace, or refused); doubled after each further failure.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// The longest wait between two reads of a person whose reads fail, a rate
/// limit's included: GitHub's reset may be an hour away, and a membership
/// that counts as unknown must not stay so for longer than this once
/// GitHub answers again. A rate-limited token's read is refused by GitHub
/// at no cost to anyone else's quota.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait after the `failures`-th failure in a row: 5 s, 10 s, 20 s,
/// 40 s, then [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_AFTER_FAILURE
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// A cache slot: the last good membership, if any, and when GitHub may be
/// asked again after a failure.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    /// The last membership GitHub confirmed.
    pub membership: Option<Arc<Membership>>,
    /// No read before this, after a failure.
    pub retry_not_before: Option<Instant>,
    /// Failed reads since the last good one.
    pub failures: u32,
    /// The last failure was the person's own rate limit: no stale answer.
    pub rate_limited: bool,
}

impl Slot {
    /// A slot holding a membership GitHub just confirmed.
    pub fn confirmed(membership: Arc<Membership>) -> Self {
        Self {
            membership: Some(membership),
            ..Self::default()
        }
    }
}

/// What to do with a slot before any read.
#[derive(Debug)]
pub enum Before {
    /// Answer with what the slot holds; no read.
    Answer(Result<Arc<Membership>, MembershipError>),
    /// Ask GitHub.
    Read,
}

/// `cache.membership_ttl` and `cache.stale_grace`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long a read is trusted.
    pub ttl: Duration,
    /// How long past the TTL a stale read may serve while GitHub fails.
    pub stale_grace: Duration,
}

impl Policy {
    /// Whether a read confirmed at `confirmed_at` is still trusted at `now`.
    pub fn is_fresh(&self, confirmed_at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(confirmed_at) < self.ttl
    }

    /// Decides, at `now`, for a caller who started waiting at `started`,
    /// whether the slot answers or GitHub must be asked. `force` (a login)
    /// asks GitHub even when the entry is fresh, unless another caller read
    /// it while this one waited: concurrent callers share one read.
    pub fn before_read(&self, slot: &Slot, now: Instant, started: Instant, force: bool) -> Before {
        if let Some(m) = &slot.membership {
            let read_while_waiting = m.confirmed_at >= started;
            if (self.is_fresh(m.confirmed_at, now) && !force) || read_while_waiting {
                return Before::Answer(Ok(m.clone()));
            }
        }
        match slot.retry_not_before {
            Some(not_before) if now < not_before && slot.rate_limited => {
                Before::Answer(Err(MembershipError::Unavailable(format!(
                    "GitHub rate-limits this person's token; asked again in {}s",
                    not_before.saturating_duration_since(now).as_secs().max(1)
                ))))
            }
            Some(not_before) if now < not_before => Before::Answer(self.stale_or(
                slot,
                now,
                "GitHub is not asked again yet after a failure",
            )),
            _ => Before::Read,
        }
    }

    /// The stale membership if it is within the grace at `now`, else the error.
    pub fn stale_or(
        &self,
        slot: &Slot,
        now: Instant,
        why: &str,
    ) -> Result<Arc<Membership>, MembershipError> {
        match &slot.membership {
            Some(m)
                if now.saturating_duration_since(m.confirmed_at)
                    < self.ttl.saturating_add(self.stale_grace) =>
            {
                tracing::info!(login = %m.person.login, "serving stale membership within the grace: {why}");
                Ok(m.clone())
            }
            _ => Err(MembershipError::Unavailable(why.to_owned())),
        }
    }

    /// After a failed read (not a revoked token) at `now`: the slot to keep,
    /// which GitHub is not asked again before the back-off ends, and the
    /// answer. An outage may answer with the stale entry within the grace;
    /// the person's own rate limit never does.
    pub fn after_failure(
        &self,
        slot: &Slot,
        error: &GithubError,
        now: Instant,
        wall_now: SystemTime,
    ) -> (Slot, Result<Arc<Membership>, MembershipError>) {
        let failures = slot.failures.saturating_add(1);
        let rate_limited = matches!(error, GithubError::RateLimited { .. });
        let wait = match error {
            // A reset sooner than the back-off is waited for; a later one
            // is not: the next read costs nobody else's quota.
            GithubError::RateLimited { reset: Some(reset) } => reset
                .duration_since(wall_now)
                .map_or(backoff(failures), |d| d.min(backoff(failures))),
            _ => backoff(failures),
        };
        let answer = if rate_limited {
            Err(MembershipError::Unavailable(error.to_string()))
        } else {
            self.stale_or(slot, now, &error.to_string())
        };
        let kept = Slot {
            membership: slot.membership.clone(),
            retry_not_before: Some(now + wait),
            failures,
            rate_limited,
        };
        (kept, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    fn policy(grace: Duration) -> Policy {
        Policy {
            ttl: TTL,
            stale_grace: grace,
        }
    }

    fn slot_read_at(at: Instant) -> Slot {
        Slot::confirmed(Arc::new(Membership::confirmed_at_for_test(at)))
    }

    fn reads(before: Before) -> bool {
        matches!(before, Before::Read)
    }

    #[test]
    fn an_entry_is_trusted_for_the_ttl_and_reread_after() {
        let t0 = Instant::now();
        let slot = slot_read_at(t0);
        let p = policy(Duration::ZERO);
        let just_before = t0 + TTL - Duration::from_millis(1);
        assert!(!reads(p.before_read(
            &slot,
            just_before,
            just_before,
            false
        )));
        assert!(reads(p.before_read(&slot, t0 + TTL, t0 + TTL, false)));
        // A login reads even a fresh entry...
        let later = t0 + Duration::from_secs(1);
        assert!(reads(p.before_read(&slot, later, later, true)));
        // ...unless someone read it while the login waited for the lock.
        assert!(!reads(p.before_read(&slot, later, t0, true)));
    }

    #[test]
    fn after_an_outage_github_is_left_alone_for_five_seconds() {
        let t0 = Instant::now();
        let p = policy(Duration::ZERO);
        let stale = slot_read_at(t0);
        let failed_at = t0 + TTL;
        let down = GithubError::Unavailable("HTTP 502".into());
        let (slot, answer) = p.after_failure(&stale, &down, failed_at, SystemTime::now());
        assert!(
            matches!(answer, Err(MembershipError::Unavailable(_))),
            "no grace: refused"
        );
        let soon = failed_at + RETRY_AFTER_FAILURE - Duration::from_millis(1);
        match p.before_read(&slot, soon, soon, false) {
            Before::Answer(Err(MembershipError::Unavailable(why))) => {
                assert!(why.contains("not asked again yet"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let then = failed_at + RETRY_AFTER_FAILURE;
        assert!(
            reads(p.before_read(&slot, then, then, false)),
            "calls resume"
        );
    }

    #[test]
    fn failed_reads_back_off_from_five_seconds_to_a_minute() {
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60, 60]);
        // Outage after outage: each failure waits longer, up to the cap.
        let t0 = Instant::now();
        let p = policy(Duration::ZERO);
        let down = GithubError::Unavailable("HTTP 502".into());
        let mut slot = Slot::default();
        let mut at = t0;
        for expected in [5, 10, 20, 40, 60, 60] {
            (slot, _) = p.after_failure(&slot, &down, at, SystemTime::now());
            let wait = slot.retry_not_before.unwrap() - at;
            assert_eq!(wait, Duration::from_secs(expected));
            at += wait;
        }
    }

    #[test]
    fn a_rate_limit_is_retried_within_a_minute_however_far_its_reset() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let p = policy(Duration::ZERO);
        // The person burnt their own quota: GitHub says an hour.
        let an_hour = GithubError::RateLimited {
            reset: Some(wall + Duration::from_secs(3600)),
        };
        let mut slot = Slot::default();
        for _ in 0..10 {
            (slot, _) = p.after_failure(&slot, &an_hour, t0, wall);
        }
        assert_eq!(slot.retry_not_before, Some(t0 + MAX_BACKOFF));
        // A reset sooner than the back-off is waited for, no longer.
        let soon = GithubError::RateLimited {
            reset: Some(wall + Duration::from_secs(2)),
        };
        let (slot, _) = p.after_failure(&Slot::default(), &soon, t0, wall);
        assert_eq!(slot.retry_not_before, Some(t0 + Duration::from_secs(2)));
        // A reset GitHub did not give, or one in the past, waits the back-off.
        for reset in [None, Some(wall - Duration::from_secs(10))] {
            let (slot, _) = p.after_failure(
                &Slot::default(),
                &GithubError::RateLimited { reset },
                t0,
                wall,
            );
            assert_eq!(slot.retry_not_before, Some(t0 + RETRY_AFTER_FAILURE));
        }
    }

    #[test]
    fn a_rate_limited_person_is_never_answered_from_a_stale_entry() {
        let t0 = Instant::now();
        let p = policy(Duration::from_secs(3600));
        let slot = slot_read_at(t0);
        let limited = GithubError::RateLimited { reset: None };
        let past_ttl = t0 + TTL;
        let (slot, answer) = p.after_failure(&slot, &limited, past_ttl, SystemTime::now());
        assert!(
            matches!(answer, Err(MembershipError::Unavailable(_))),
            "well within the grace, still refused"
        );
        let soon = past_ttl + Duration::from_secs(1);
        match p.before_read(&slot, soon, soon, false) {
            Before::Answer(Err(MembershipError::Unavailable(why))) => {
                assert!(why.contains("rate-limits this person's token"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // An outage is another matter: the grace serves.
        let down = GithubError::Unavailable("timed out".into());
        let (_, answer) = p.after_failure(&slot, &down, soon, SystemTime::now());
        assert!(answer.is_ok());
    }

    #[test]
    fn a_stale_entry_serves_within_the_grace_and_not_a_moment_after() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(60);
        let p = policy(grace);
        let slot = slot_read_at(t0);
        let down = GithubError::Unavailable("timed out".into());
        let within = t0 + TTL + grace - Duration::from_millis(1);
        let (_, answer) = p.after_failure(&slot, &down, within, SystemTime::now());
        assert!(answer.is_ok(), "within the grace, the stale entry serves");
        let (_, answer) = p.after_failure(&slot, &down, t0 + TTL + grace, SystemTime::now());
        assert!(
            answer.is_err(),
            "at the end of the grace, it no longer does"
        );
        // Nothing at all cached: an error whatever the grace.
        let (_, answer) = p.after_failure(&Slot::default(), &down, t0, SystemTime::now());
        assert!(answer.is_err());
    }
}
