//! `[webhooks]`: GitHub's deliveries to `POST /github/webhook`, signed with
//! a shared secret. On when the section is present or when only
//! `CHANNELGATE_GITHUB_WEBHOOK_SECRET` is set.

use serde::Deserialize;
use toml::de::DeValue;

use super::check::{Problems, S, secret};
use super::{ENV_WEBHOOK_SECRET, Env};
use crate::secret::Secret;

/// `[webhooks]`.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// The secret GitHub signs each delivery with (`X-Hub-Signature-256`).
    pub secret: Secret<String>,
}

/// The shortest webhook secret accepted: anyone who guesses it can make the
/// gateway re-read people at will.
const MIN_WEBHOOK_SECRET: usize = 16;

/// `[webhooks]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawWebhooks {
    secret: Option<S<String>>,
}

/// `[webhooks]` read, checked and built: `Some(None)` when neither the
/// section nor its environment variable is there, `None` after a problem.
pub(super) fn read(
    p: &mut Problems<'_>,
    value: Option<&S<DeValue<'_>>>,
    env: Env<'_>,
) -> Option<Option<WebhooksConfig>> {
    let raw: RawWebhooks = match value {
        None if env(ENV_WEBHOOK_SECRET).is_none() => return Some(None),
        None => RawWebhooks::default(),
        Some(value) => p.table("webhooks", value)?,
    };
    let secret = secret(p, env, ENV_WEBHOOK_SECRET, "webhooks.secret", raw.secret)?;
    let len = secret.expose().len();
    if len < MIN_WEBHOOK_SECRET {
        secret.blame(
            p,
            format!(
                "is {len} bytes; use at least {MIN_WEBHOOK_SECRET} random ones, such as `openssl rand -hex 32`, and give GitHub the same"
            ),
        );
        return None;
    }
    Some(Some(WebhooksConfig {
        secret: secret.into_secret(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::testing::{MINIMAL, only_problem, problems};

    #[test]
    fn a_webhook_secret_must_be_long_and_never_shows() {
        let short = only_problem(&format!("{MINIMAL}\n[webhooks]\nsecret = \"hunter2\"\n"));
        assert_eq!(short.key, "webhooks.secret");
        assert_eq!(short.line, Some(12));
        assert!(short.message.contains("at least 16"), "{}", short.message);
        assert!(!short.message.contains("hunter2"));
        let empty = only_problem(&format!("{MINIMAL}\n[webhooks]\n"));
        assert_eq!(empty.key, "webhooks.secret");
        assert!(
            empty.message.contains(ENV_WEBHOOK_SECRET),
            "{}",
            empty.message
        );
        // The environment alone turns webhooks on, and wins over the file.
        let env = |name: &str| {
            (name == ENV_WEBHOOK_SECRET).then(|| "from-the-environment-0123".to_owned())
        };
        let c = Config::parse(MINIMAL, "t", &env).unwrap();
        let secret = c.webhooks.map(|w| w.secret.expose().clone());
        assert_eq!(secret.as_deref(), Some("from-the-environment-0123"));
        let bad = problems(&format!("{MINIMAL}\n[webhooks]\nsecrets = \"x\"\n"));
        assert!(bad.iter().any(|p| p.key == "webhooks.secrets"), "{bad:?}");
    }

    #[test]
    fn a_short_webhook_secret_from_the_environment_is_blamed_on_its_variable() {
        let env = |name: &str| (name == ENV_WEBHOOK_SECRET).then(|| "hunter2".to_owned());
        // With and without a good secret in the file: the environment's wins.
        for file in ["", "\n[webhooks]\nsecret = \"0123456789abcdef0123\"\n"] {
            let e = Config::parse(&format!("{MINIMAL}{file}"), "t.toml", &env).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            let p = &e.problems[0];
            assert_eq!(p.key, "CHANNELGATE_GITHUB_WEBHOOK_SECRET");
            assert_eq!(p.line, None);
            assert_eq!(
                p.message,
                "is 7 bytes; use at least 16 random ones, such as `openssl rand -hex 32`, \
                 and give GitHub the same (set in the environment, which takes precedence over \
                 webhooks.secret)"
            );
            let shown = e.to_string();
            assert!(
                shown.contains("  t.toml: CHANNELGATE_GITHUB_WEBHOOK_SECRET: is 7 bytes"),
                "{shown}"
            );
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
