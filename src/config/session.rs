//! `[session]`: where sessions live, how long they last, the cookie's name,
//! and the key that encrypts the GitHub tokens kept with them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;
use url::Url;

use super::check::{Problems, S, base64_key, duration, key_from};
use super::{ENV_SESSION_KEY, Env};
use crate::secret::Secret;

/// Where sessions are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStore {
    /// In this process only.
    Memory,
    /// In a SQLite file: survives restarts of one node.
    Sqlite(PathBuf),
    /// In Redis: shared by several instances (`redis://HOST:PORT`, or
    /// `rediss://` over TLS). The URL may hold a password: print it only
    /// through [`SessionStore`]'s `Display`, which hides it.
    Redis(Secret<String>),
}

impl SessionStore {
    /// `memory`, `sqlite` or `redis`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite(_) => "sqlite",
            Self::Redis(_) => "redis",
        }
    }
}

impl fmt::Display for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Redis(url) => f.write_str(&redact_url(url.expose())),
        }
    }
}

/// `url` with any password replaced by `[redacted]`, for messages.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("[redacted]"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "[an unreadable URL]".to_owned(),
    }
}

/// `[session]`.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The store.
    pub store: SessionStore,
    /// Expiry after this much inactivity.
    pub ttl: Duration,
    /// Expiry this long after login, however active the session: the login
    /// and token are then renewed through GitHub.
    pub max_age: Duration,
    /// Most sessions one person may have at once (logins beyond it end
    /// their oldest): GitHub keeps ten tokens per person and app and
    /// silently revokes the oldest at the eleventh.
    pub max_per_person: usize,
    /// The session cookie's name, as configured (see [`SessionConfig::cookie_name`]).
    pub cookie_name: String,
    /// Key material (32 bytes or more) that encrypts GitHub tokens in stored
    /// sessions and the login-state cookie. `None` (memory store only): a
    /// random key per process.
    pub encryption_key: Option<Secret<Vec<u8>>>,
}

impl SessionConfig {
    /// The cookie's name as sent: with the `__Host-` prefix when `https`,
    /// so browsers refuse it from any other host or path, or over plain HTTP.
    pub fn cookie_name(&self, https: bool) -> String {
        if https {
            format!("__Host-{}", self.cookie_name)
        } else {
            self.cookie_name.clone()
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            store: SessionStore::Memory,
            ttl: Duration::from_secs(7 * 86_400),
            max_age: Duration::from_secs(30 * 86_400),
            max_per_person: DEFAULT_MAX_PER_PERSON,
            cookie_name: "channelgate".to_owned(),
            encryption_key: None,
        }
    }
}

/// `session.max_per_person` when not set: GitHub keeps at most ten tokens
/// per person and OAuth app.
pub const DEFAULT_MAX_PER_PERSON: usize = 10;
/// The largest `session.max_per_person` accepted.
pub const MOST_PER_PERSON: usize = 100;

/// `[session]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawSession {
    store: Option<S<String>>,
    ttl: Option<S<String>>,
    max_age: Option<S<String>>,
    max_per_person: Option<S<i64>>,
    cookie_name: Option<S<String>>,
    encryption_key_base64: Option<S<String>>,
}

/// `[session]` read, checked and built, its key taken from the environment
/// where set; `None` after a problem.
pub(super) fn read(
    p: &mut Problems<'_>,
    value: Option<&S<DeValue<'_>>>,
    env: Env<'_>,
) -> Option<SessionConfig> {
    let raw: RawSession = p.section("session", value)?;
    let defaults = SessionConfig::default();
    let store = raw
        .store
        .as_ref()
        .map_or(Some(SessionStore::Memory), |v| store(p, v));
    let encryption_key = key_from(
        p,
        env,
        ENV_SESSION_KEY,
        "session.encryption_key_base64",
        raw.encryption_key_base64,
        session_key,
    );
    if let (Some(store @ (SessionStore::Sqlite(_) | SessionStore::Redis(_))), Some(None)) =
        (&store, &encryption_key)
    {
        let span = raw.store.as_ref().map(Spanned::span);
        p.add(
            "session.encryption_key_base64",
            span,
            format!("is required with the {} store, so GitHub tokens are stored encrypted; set it (or {ENV_SESSION_KEY}) to 32 random bytes in base64: `openssl rand -base64 32`", store.kind()),
        );
    }
    let ttl = duration(
        p,
        "session.ttl",
        raw.ttl,
        defaults.ttl,
        Duration::from_secs(60),
    );
    let max_age = duration(
        p,
        "session.max_age",
        raw.max_age,
        defaults.max_age,
        Duration::from_secs(1),
    );
    let max_per_person = match raw.max_per_person {
        None => Some(defaults.max_per_person),
        Some(v) => match usize::try_from(*v.get_ref()) {
            Ok(n) if (1..=MOST_PER_PERSON).contains(&n) => Some(n),
            _ => {
                p.at(
                    "session.max_per_person",
                    &v,
                    format!("must be a whole number from 1 to {MOST_PER_PERSON} (GitHub keeps {DEFAULT_MAX_PER_PERSON} tokens per person and app; {DEFAULT_MAX_PER_PERSON} is the default)"),
                );
                None
            }
        },
    };
    let cookie_name = match raw.cookie_name {
        None => Some(defaults.cookie_name),
        Some(v) => {
            // RFC 6265: a cookie name is an HTTP token.
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if !v.get_ref().is_empty() && v.get_ref().chars().all(token) {
                Some(v.into_inner())
            } else {
                p.at(
                    "session.cookie_name",
                    &v,
                    format!(
                        "{:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
                        v.get_ref()
                    ),
                );
                None
            }
        }
    };
    Some(SessionConfig {
        store: store?,
        ttl: ttl?,
        max_age: max_age?,
        max_per_person: max_per_person?,
        cookie_name: cookie_name?,
        encryption_key: encryption_key?,
    })
}

/// `session.store`: `memory`, `sqlite://PATH`, `redis://…` or `rediss://…`.
fn store(p: &mut Problems<'_>, v: &S<String>) -> Option<SessionStore> {
    let text = v.get_ref();
    let redis = ["redis://", "rediss://"]
        .iter()
        .any(|scheme| text.strip_prefix(scheme).is_some_and(|s| !s.is_empty()));
    if text == "memory" {
        Some(SessionStore::Memory)
    } else if let Some(path) = text.strip_prefix("sqlite://").filter(|s| !s.is_empty()) {
        Some(SessionStore::Sqlite(PathBuf::from(path)))
    } else if redis && Url::parse(text).is_ok_and(|u| u.host().is_some()) {
        Some(SessionStore::Redis(Secret::new(text.clone())))
    } else {
        // The value may hold a password: show it redacted.
        let shown = if redis {
            redact_url(text)
        } else {
            format!("{text:?}")
        };
        p.at("session.store", v, format!("{shown} is not a store; use \"memory\", \"sqlite://PATH\", \"redis://HOST:PORT\" or \"rediss://HOST:PORT\""));
        None
    }
}

/// `session.encryption_key_base64`: at least 32 bytes.
fn session_key(text: &str) -> Result<Secret<Vec<u8>>, String> {
    let bytes = base64_key(text)?;
    if bytes.len() < 32 {
        return Err(format!(
            "decodes to {} bytes but must be at least 32; make a key with `openssl rand -base64 32`",
            bytes.len()
        ));
    }
    Ok(Secret::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::testing::{MINIMAL, only_problem, parse};

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn stored_sessions_need_an_encryption_key() {
        for store in [
            "sqlite://s.db",
            "redis://127.0.0.1:6379",
            "rediss://cache.example:6380",
        ] {
            let p = only_problem(&format!("{MINIMAL}\n[session]\nstore = \"{store}\"\n"));
            assert_eq!(p.key, "session.encryption_key_base64", "{store}");
            assert!(
                p.message.contains("openssl rand -base64 32"),
                "{}",
                p.message
            );
        }
        let env = |name: &str| (name == ENV_SESSION_KEY).then(|| KEY.to_owned());
        let text = format!("{MINIMAL}\n[session]\nstore = \"rediss://cache.example:6380\"\n");
        assert!(Config::parse(&text, "t", &env).is_ok());
        let p = only_problem(&format!(
            "{MINIMAL}\n[session]\nencryption_key_base64 = \"c2hvcnQ=\"\n"
        ));
        assert!(p.message.contains("at least 32"), "{}", p.message);
    }

    #[test]
    fn a_bad_session_key_from_the_environment_is_blamed_on_its_variable() {
        for (value, why) in [
            ("c2hvcnQ=", "decodes to 5 bytes but must be at least 32"),
            ("not base64!", "is not base64"),
        ] {
            let env = |name: &str| (name == ENV_SESSION_KEY).then(|| value.to_owned());
            // The file's key is fine; the environment's wins and is bad.
            let text = format!("{MINIMAL}\n[session]\nencryption_key_base64 = \"{KEY}\"\n");
            let e = Config::parse(&text, "t", &env).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            let p = &e.problems[0];
            assert_eq!(p.key, ENV_SESSION_KEY);
            assert_eq!(p.line, None);
            assert!(p.message.starts_with(why), "{}", p.message);
            assert!(
                p.message.ends_with(
                    "(set in the environment, which takes precedence over session.encryption_key_base64)"
                ),
                "{}",
                p.message
            );
            assert!(!e.to_string().contains(value), "{e}");
        }
    }

    #[test]
    fn a_password_in_a_store_url_is_never_printed() {
        let text = format!(
            "{MINIMAL}\n[session]\nstore = \"redis://:hunter2@cache.example:6379\"\nencryption_key_base64 = \"{KEY}\"\n"
        );
        let c = parse(&text).unwrap();
        for shown in [c.summary(), c.session.store.to_string(), format!("{c:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(
            c.summary()
                .contains("redis://:%5Bredacted%5D@cache.example:6379")
                || c.summary().contains("[redacted]"),
            "{}",
            c.summary()
        );
        // Nor when the URL is refused.
        let bad = format!("{MINIMAL}\n[session]\nstore = \"redis://:hunter2@\"\n");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn session_settings_are_checked() {
        for (store, ok) in [
            ("memory", true),
            ("sqlite://sessions.db", true),
            ("redis://127.0.0.1:6379", true),
            ("rediss://127.0.0.1:6380", true),
            ("sqlite://", false),
            ("postgres://x", false),
            ("redis://", false),
            ("", false),
        ] {
            let text = format!(
                "{MINIMAL}\n[session]\nstore = \"{store}\"\nencryption_key_base64 = \"{KEY}\"\n"
            );
            match parse(&text) {
                Ok(_) => assert!(ok, "{store}"),
                Err(e) => {
                    assert!(!ok, "{store}: {e}");
                    assert_eq!(e.problems[0].key, "session.store");
                }
            }
        }
        let p = only_problem(&format!("{MINIMAL}\n[session]\ncookie_name = \"a b\"\n"));
        assert_eq!(p.key, "session.cookie_name");
        let p = only_problem(&format!("{MINIMAL}\n[session]\nttl = \"7 days\"\n"));
        assert_eq!(p.key, "session.ttl");
    }

    #[test]
    fn sessions_per_person_are_bounded_from_1_to_100() {
        let at = |n: &str| format!("{MINIMAL}\n[session]\nmax_per_person = {n}\n");
        assert_eq!(parse(MINIMAL).unwrap().session.max_per_person, 10);
        assert_eq!(parse(&at("1")).unwrap().session.max_per_person, 1);
        assert_eq!(parse(&at("100")).unwrap().session.max_per_person, 100);
        for bad in ["0", "-3", "101"] {
            let p = only_problem(&at(bad));
            assert_eq!(p.key, "session.max_per_person", "{bad}");
            assert!(p.message.contains("from 1 to 100"), "{}", p.message);
        }
        let p = only_problem(&at("\"ten\""));
        assert_eq!(p.key, "session.max_per_person");
    }
}
