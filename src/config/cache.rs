//! `[cache]`: how long a person's membership is trusted, how long a stale
//! one may serve while GitHub is unreachable, and how many are kept.

use std::time::Duration;

use serde::Deserialize;
use toml::de::DeValue;

use super::check::{Problems, S, duration};

/// `[cache]`.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// How long a person's membership is trusted before it is re-read.
    pub membership_ttl: Duration,
    /// How long past the TTL a stale entry may serve while GitHub is unreachable.
    pub stale_grace: Duration,
    /// Most people kept in the membership cache.
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            membership_ttl: Duration::from_secs(300),
            stale_grace: Duration::ZERO,
            max_entries: 100_000,
        }
    }
}

/// `[cache]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawCache {
    membership_ttl: Option<S<String>>,
    stale_grace: Option<S<String>>,
    max_entries: Option<S<i64>>,
}

/// `[cache]` read, checked and built; `None` after a problem.
pub(super) fn read(p: &mut Problems<'_>, value: Option<&S<DeValue<'_>>>) -> Option<CacheConfig> {
    let raw: RawCache = p.section("cache", value)?;
    let defaults = CacheConfig::default();
    let membership_ttl = duration(
        p,
        "cache.membership_ttl",
        raw.membership_ttl,
        defaults.membership_ttl,
        Duration::from_secs(1),
    );
    let stale_grace = duration(
        p,
        "cache.stale_grace",
        raw.stale_grace,
        defaults.stale_grace,
        Duration::ZERO,
    );
    let max_entries = match raw.max_entries {
        None => Some(defaults.max_entries),
        Some(v) if *v.get_ref() >= 1 => Some(*v.get_ref() as u64),
        Some(v) => {
            p.at("cache.max_entries", &v, "must be at least 1");
            None
        }
    };
    Some(CacheConfig {
        membership_ttl: membership_ttl?,
        stale_grace: stale_grace?,
        max_entries: max_entries?,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{MINIMAL, only_problem, parse};

    #[test]
    fn cache_size_must_be_positive() {
        let p = only_problem(&format!("{MINIMAL}\n[cache]\nmax_entries = 0\n"));
        assert_eq!(p.key, "cache.max_entries");
    }

    #[test]
    fn bad_durations_name_their_key() {
        for (bad, why) in [
            ("5", "is not a duration"),
            ("5 m", "is not a duration"),
            ("1w", "is not a duration"),
            ("-5m", "is not a duration"),
            ("0s", "at least 1s"),
        ] {
            let p = only_problem(&format!("{MINIMAL}\n[cache]\nmembership_ttl = \"{bad}\"\n"));
            assert_eq!(p.key, "cache.membership_ttl");
            assert_eq!(p.line, Some(12));
            assert!(p.message.contains(why), "{bad}: {}", p.message);
        }
        assert!(parse(&format!("{MINIMAL}\n[cache]\nstale_grace = \"0s\"\n")).is_ok());
    }
}
