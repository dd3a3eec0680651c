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
    /// In Redis: shared by several instances. One node (`redis://HOST:PORT`,
    /// or `rediss://` over TLS), a Sentinel's service
    /// (`redis-sentinel://HOST:PORT[,HOST:PORT…]/SERVICE`) or a Cluster
    /// (`redis-cluster://HOST:PORT[,HOST:PORT…]`), TLS variants `rediss-…`:
    /// see [`Topology`]. The URL may hold a password: print it only through
    /// [`SessionStore`]'s `Display`, which hides it.
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

    /// How the Redis store is laid out (from its URL's scheme); `None` for
    /// memory and SQLite.
    pub fn topology(&self) -> Option<Topology> {
        match self {
            Self::Redis(url) => Some(Topology::of(url.expose())),
            _ => None,
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

/// How a Redis store is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One node (`redis://`, `rediss://`).
    Single,
    /// A master and its replicas behind Sentinel (`redis-sentinel://`,
    /// `rediss-sentinel://`): the client asks the sentinels where the
    /// master is, and again after a failover.
    Sentinel,
    /// A Redis Cluster (`redis-cluster://`, `rediss-cluster://`): keys
    /// spread over its masters by hash slot.
    Cluster,
}

impl Topology {
    /// The layout a `session.store` URL's scheme names (`Single` for any
    /// other scheme).
    pub fn of(url: &str) -> Self {
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        match scheme {
            "redis-sentinel" | "rediss-sentinel" => Self::Sentinel,
            "redis-cluster" | "rediss-cluster" => Self::Cluster,
            _ => Self::Single,
        }
    }

    /// `Redis`, `Redis Sentinel` or `Redis Cluster`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "Redis",
            Self::Sentinel => "Redis Sentinel",
            Self::Cluster => "Redis Cluster",
        }
    }

    /// The grammar of this layout's URL, for messages.
    fn grammar(self) -> &'static str {
        match self {
            Self::Single => "redis://[:PASSWORD@]HOST:PORT",
            Self::Sentinel => "redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/SERVICE",
            Self::Cluster => "redis-cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT…]",
        }
    }
}

/// A `redis-sentinel://` or `redis-cluster://` URL (or its `rediss-` TLS
/// variant), read: where to connect first, and as whom.
///
/// `redis-sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]/SERVICE`
/// names the sentinels and the service (master name) they watch;
/// `redis-cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]` names some
/// of the cluster's nodes (the client learns the rest from them). The user
/// and password (percent-encoded in the URL) are sent to every node, the
/// sentinels included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisNodes {
    /// Sentinel or Cluster.
    pub topology: Topology,
    /// Over TLS (`rediss-…`), verified against the system's roots.
    pub tls: bool,
    /// The ACL user, if any.
    pub username: Option<String>,
    /// The password, if any.
    pub password: Option<Secret<String>>,
    /// The sentinels, or the cluster nodes to start from.
    pub hosts: Vec<(String, u16)>,
    /// The service the sentinels watch (Sentinel only).
    pub service: Option<String>,
}

impl RedisNodes {
    /// Reads a Sentinel or Cluster URL; the error says what is wrong, in
    /// words that never quote the password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let topology = Topology::of(url);
        if topology == Topology::Single {
            return Err("is not a redis-sentinel:// or redis-cluster:// URL".to_owned());
        }
        let (scheme, rest) = url.split_once("://").unwrap_or_default();
        let tls = scheme.starts_with("rediss");
        // The password ends at the last `@`, so one holding `/`, `?` or
        // `#` unencoded is still taken whole (and hidden).
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let user = percent_decode(user).ok_or("has a user name that is not UTF-8")?;
                let password = percent_decode(password)
                    .ok_or("has a password that is not percent-encoded UTF-8")?;
                (
                    Some(user).filter(|u| !u.is_empty()),
                    Some(Secret::new(password)).filter(|p| !p.expose().is_empty()),
                )
            }
        };
        if rest.contains(['?', '#']) {
            return Err("takes no query (?…) or fragment (#…)".to_owned());
        }
        let (list, path) = rest.split_once('/').unwrap_or((rest, ""));
        if list.is_empty() {
            return Err("names no HOST:PORT".to_owned());
        }
        let service = match topology {
            Topology::Sentinel => {
                let service_ok =
                    |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && c != '/');
                if !service_ok(path) {
                    return Err(
                        "names no SERVICE after the hosts (the master name the sentinels monitor, as in `sentinel monitor SERVICE …`)"
                            .to_owned(),
                    );
                }
                Some(path.to_owned())
            }
            _ => {
                if !path.is_empty() {
                    return Err(format!(
                        "has a path (/{path}); a cluster has one database and no service"
                    ));
                }
                None
            }
        };
        let hosts = list
            .split(',')
            .map(host_port)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            topology,
            tls,
            username,
            password,
            hosts,
            service,
        })
    }
}

/// One `HOST:PORT` (an IPv6 address in brackets: `[::1]:6379`).
fn host_port(item: &str) -> Result<(String, u16), String> {
    let item = item.trim();
    let (host, port) = if let Some(v6) = item.strip_prefix('[') {
        let (host, port) = v6
            .split_once(']')
            .ok_or_else(|| format!("has `{item}`, an IPv6 address without its closing ]"))?;
        (host, port.strip_prefix(':'))
    } else {
        match item.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (item, None),
        }
    };
    if host.is_empty() {
        return Err(format!(
            "has `{item}`, with no host (an empty entry between commas, or `:PORT` alone)"
        ));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
    {
        return Err(format!(
            "has `{item}`, whose host is not a host name or address"
        ));
    }
    let port = port
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("has `{item}`, without a port from 1 to 65535 (HOST:PORT)"))?;
    Ok((host.to_owned(), port))
}

/// `text` with its `%XX` escapes decoded, if that is UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match (b, tail) {
            (b'%', [h, l, tail @ ..]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                bytes.push(hex(*h) * 16 + hex(*l));
                rest = tail;
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

/// `url` with any password replaced by `[redacted]`, for messages. The
/// password is what lies between the first `:` after `://` and the last
/// `@` (as [`RedisNodes::parse`] reads it), so an unencoded `/` or `@` in
/// it is hidden too.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[an unreadable URL]".to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
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

/// `session.store`: `memory`, `sqlite://PATH`, `redis://…`, `rediss://…`,
/// or a Sentinel or Cluster URL (`redis-sentinel://…`, `redis-cluster://…`
/// and their `rediss-` variants).
fn store(p: &mut Problems<'_>, v: &S<String>) -> Option<SessionStore> {
    let text = v.get_ref();
    let single = ["redis://", "rediss://"]
        .iter()
        .any(|scheme| text.strip_prefix(scheme).is_some_and(|s| !s.is_empty()));
    let topology = Topology::of(text);
    if text == "memory" {
        Some(SessionStore::Memory)
    } else if let Some(path) = text.strip_prefix("sqlite://").filter(|s| !s.is_empty()) {
        Some(SessionStore::Sqlite(PathBuf::from(path)))
    } else if single && Url::parse(text).is_ok_and(|u| u.host().is_some()) {
        Some(SessionStore::Redis(Secret::new(text.clone())))
    } else if topology != Topology::Single {
        match RedisNodes::parse(text) {
            Ok(_) => Some(SessionStore::Redis(Secret::new(text.clone()))),
            Err(why) => {
                p.at(
                    "session.store",
                    v,
                    format!(
                        "{} {why}; a {} store is written \"{}\" (rediss-… for TLS)",
                        redact_url(text),
                        topology.name(),
                        topology.grammar()
                    ),
                );
                None
            }
        }
    } else {
        // The value may hold a password: show it redacted.
        let shown = if single || text.contains('@') {
            redact_url(text)
        } else {
            format!("{text:?}")
        };
        p.at(
            "session.store",
            v,
            format!(
                "{shown} is not a store; use \"memory\", \"sqlite://PATH\", \"{}\" (one node), \"{}\" or \"{}\" (rediss… for TLS)",
                Topology::Single.grammar(),
                Topology::Sentinel.grammar(),
                Topology::Cluster.grammar()
            ),
        );
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
    fn sentinel_and_cluster_urls_name_their_topology_hosts_and_service() {
        let store = |url: &str| {
            let text = format!(
                "{MINIMAL}\n[session]\nstore = \"{url}\"\nencryption_key_base64 = \"{KEY}\"\n"
            );
            parse(&text)
                .unwrap_or_else(|e| panic!("{url}: {e}"))
                .session
                .store
        };
        let sentinel =
            store("redis-sentinel://:pa%40ss@10.0.0.1:26379,sentinel-b:26380,[::1]:26381/mymaster");
        assert_eq!(sentinel.kind(), "redis");
        assert_eq!(sentinel.topology(), Some(Topology::Sentinel));
        let SessionStore::Redis(url) = &sentinel else {
            unreachable!()
        };
        let nodes = RedisNodes::parse(url.expose()).unwrap();
        assert_eq!(
            nodes.hosts,
            [
                ("10.0.0.1".to_owned(), 26379),
                ("sentinel-b".to_owned(), 26380),
                ("::1".to_owned(), 26381)
            ]
        );
        assert_eq!(nodes.service.as_deref(), Some("mymaster"));
        assert_eq!(
            nodes.password.as_ref().map(|p| p.expose().as_str()),
            Some("pa@ss")
        );
        assert_eq!(nodes.username, None);
        assert!(!nodes.tls);

        let cluster = store("rediss-cluster://app:secret@n1:7000,n2:7001");
        assert_eq!(cluster.topology(), Some(Topology::Cluster));
        let SessionStore::Redis(url) = &cluster else {
            unreachable!()
        };
        let nodes = RedisNodes::parse(url.expose()).unwrap();
        assert!(nodes.tls);
        assert_eq!(nodes.username.as_deref(), Some("app"));
        assert_eq!(nodes.service, None);
        assert_eq!(nodes.hosts.len(), 2);

        assert_eq!(
            store("rediss-sentinel://s:26379/m").topology(),
            Some(Topology::Sentinel)
        );
        assert_eq!(
            store("redis-cluster://n1:7000").topology(),
            Some(Topology::Cluster)
        );
        assert_eq!(
            store("redis://127.0.0.1:6379").topology(),
            Some(Topology::Single)
        );
        assert_eq!(SessionStore::Memory.topology(), None);
    }

    #[test]
    fn a_malformed_sentinel_or_cluster_url_is_refused_naming_session_store() {
        for (url, why) in [
            ("redis-sentinel://", "names no HOST:PORT"),
            ("redis-sentinel:///mymaster", "names no HOST:PORT"),
            ("redis-sentinel://h:26379", "names no SERVICE"),
            ("redis-sentinel://h:26379/", "names no SERVICE"),
            ("redis-sentinel://h:26379/a/b", "names no SERVICE"),
            ("redis-sentinel://h/mymaster", "without a port"),
            ("redis-sentinel://h:0/mymaster", "without a port"),
            ("redis-sentinel://h:99999/mymaster", "without a port"),
            ("redis-sentinel://h:26379,,i:26379/mymaster", "with no host"),
            ("redis-sentinel://:26379/mymaster", "with no host"),
            ("redis-cluster://", "names no HOST:PORT"),
            ("redis-cluster://n1:7000,n2:x", "`n2:x`, without a port"),
            ("redis-cluster://n1:7000,", "with no host"),
            ("redis-cluster://n1:7000/0", "has a path"),
            ("redis-cluster://n1:7000?node=n2:7001", "takes no query"),
            ("rediss-cluster://n 1:7000", "is not a host name"),
            ("redis-cluster://[::1:7000", "without its closing ]"),
        ] {
            let text = format!(
                "{MINIMAL}\n[session]\nstore = \"{url}\"\nencryption_key_base64 = \"{KEY}\"\n"
            );
            let e = parse(&text).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{url}: {e}");
            let p = &e.problems[0];
            assert_eq!(p.key, "session.store", "{url}");
            assert!(p.message.contains(why), "{url}: {}", p.message);
            let grammar = if url.contains("sentinel") {
                "redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/SERVICE"
            } else {
                "redis-cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT…]"
            };
            assert!(p.message.contains(grammar), "{url}: {}", p.message);
        }
    }

    #[test]
    fn a_password_in_a_sentinel_or_cluster_url_is_never_printed() {
        for url in [
            "redis-sentinel://:hunter2@s1:26379,s2:26379/mymaster",
            "rediss-cluster://app:hunter2@n1:7000,n2:7001",
            // Unencoded `/` and `@` in the password: still hidden whole.
            "redis-cluster://:hun/ter@2@n1:7000",
        ] {
            let text = format!(
                "{MINIMAL}\n[session]\nstore = \"{url}\"\nencryption_key_base64 = \"{KEY}\"\n"
            );
            let c = parse(&text).unwrap_or_else(|e| panic!("{url}: {e}"));
            let summary = c.summary();
            for shown in [
                summary.clone(),
                c.session.store.to_string(),
                format!("{c:?}"),
            ] {
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(!shown.contains("hun/ter"), "{shown}");
            }
            assert!(summary.contains(":[redacted]@"), "{summary}");
            assert!(
                summary.contains("7000") || summary.contains("s2:26379"),
                "{summary}"
            );
        }
        // Nor when the URL is refused, whatever is wrong with it.
        for bad in [
            "redis-sentinel://:hunter2@s1:26379",
            "redis-sentinel://:hunter2@/mymaster",
            "redis-cluster://:hunter2@n1:x",
            "redis-cluster://:hunter2@",
            "redis-cluster://:hun/ter2@n1",
            "postgres://:hunter2@db",
        ] {
            let text = format!("{MINIMAL}\n[session]\nstore = \"{bad}\"\n");
            let e = parse(&text).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(!e.contains("hun/ter"), "{e}");
            assert!(e.contains("session.store"), "{e}");
        }
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
