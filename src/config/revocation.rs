//! `[revocation]`: how long a signed channel is watched, and whether losing
//! it ends the person's Pusher connections.

use std::time::Duration;

use serde::Deserialize;
use toml::de::DeValue;

use super::check::{Problems, S, duration};

/// `[revocation]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationConfig {
    /// How long after signing a channel the gateway keeps checking that its
    /// person may still have it; zero turns live revocation off.
    pub watch_for: Duration,
    /// End the person's Pusher connections when they lose a watched
    /// channel; false only logs what would have been ended.
    pub terminate_connections: bool,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self {
            watch_for: Duration::from_secs(86_400),
            terminate_connections: true,
        }
    }
}

/// `[revocation]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawRevocation {
    watch_for: Option<S<String>>,
    terminate_connections: Option<bool>,
}

/// `[revocation]` read, checked and built; `None` after a problem.
pub(super) fn read(
    p: &mut Problems<'_>,
    value: Option<&S<DeValue<'_>>>,
) -> Option<RevocationConfig> {
    let raw: RawRevocation = p.section("revocation", value)?;
    let defaults = RevocationConfig::default();
    let watch_for = duration(
        p,
        "revocation.watch_for",
        raw.watch_for,
        defaults.watch_for,
        Duration::ZERO,
    );
    Some(RevocationConfig {
        watch_for: watch_for?,
        terminate_connections: raw
            .terminate_connections
            .unwrap_or(defaults.terminate_connections),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::testing::{MINIMAL, only_problem, parse};

    #[test]
    fn live_revocation_is_on_and_webhooks_off_by_default() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.revocation.watch_for, Duration::from_secs(86_400));
        assert!(c.revocation.terminate_connections);
        assert!(c.webhooks.is_none());
        let off = parse(&format!("{MINIMAL}\n[revocation]\nwatch_for = \"0s\"\n")).unwrap();
        assert!(off.revocation.watch_for.is_zero());
        let p = only_problem(&format!("{MINIMAL}\n[revocation]\nwatch_for = \"a day\"\n"));
        assert_eq!(p.key, "revocation.watch_for");
    }
}
