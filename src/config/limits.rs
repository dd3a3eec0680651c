//! `[limits]`: how often one client address or one person may ask, in
//! requests per minute; 0 turns a limit off.

use serde::Deserialize;
use toml::de::DeValue;

use super::check::{Problems, S, count};

/// `[limits]`: requests per minute; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `GET /auth/login` per client address.
    pub login_per_minute: u32,
    /// `/pusher/auth` and `/pusher/user-auth` per person (per client
    /// address when nobody is logged in).
    pub auth_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            login_per_minute: 30,
            auth_per_minute: 600,
        }
    }
}

/// `[limits]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawLimits {
    login_per_minute: Option<S<i64>>,
    auth_per_minute: Option<S<i64>>,
}

/// `[limits]` read, checked and built; `None` after a problem.
pub(super) fn read(p: &mut Problems<'_>, value: Option<&S<DeValue<'_>>>) -> Option<LimitsConfig> {
    let raw: RawLimits = p.section("limits", value)?;
    let defaults = LimitsConfig::default();
    let login = per_minute(
        p,
        "limits.login_per_minute",
        raw.login_per_minute,
        defaults.login_per_minute,
    );
    let auth = per_minute(
        p,
        "limits.auth_per_minute",
        raw.auth_per_minute,
        defaults.auth_per_minute,
    );
    Some(LimitsConfig {
        login_per_minute: login?,
        auth_per_minute: auth?,
    })
}

/// A number of requests a minute, 0 for no limit.
fn per_minute(p: &mut Problems<'_>, key: &str, v: Option<S<i64>>, default: u32) -> Option<u32> {
    count(p, key, v, u64::from(default), 0).and_then(|n| match u32::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            p.add(key, None, "is too large");
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{MINIMAL, only_problem};

    #[test]
    fn limits_are_checked() {
        for (key, value) in [
            ("login_per_minute", "-1"),
            ("auth_per_minute", "\"lots\""),
            ("auth_per_minute", "4294967296"),
        ] {
            let p = only_problem(&format!("{MINIMAL}\n[limits]\n{key} = {value}\n"));
            assert_eq!(p.key, format!("limits.{key}"), "{key}: {p:?}");
        }
    }
}
