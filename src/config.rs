//! `config.toml`: loaded once, validated once, then read-only.
//!
//! Loading collects every problem in the file (unknown keys, bad values, bad
//! rules) instead of stopping at the first, and names each by its key path
//! (`rules[2].channel`) and, where the TOML parser knows it, its line.
//! Secrets may come from environment variables, which take precedence over
//! the file; they are held in [`Secret`] so they never print.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use url::Url;

use crate::rules::{Conditions, Pattern, Rule, RuleSet, TeamRef, is_github_name};
use crate::secret::Secret;

/// Environment variable for `pusher.secret`.
pub const ENV_PUSHER_SECRET: &str = "CHANNELGATE_PUSHER_SECRET";
/// Environment variable for `pusher.encryption_master_key_base64`.
pub const ENV_MASTER_KEY: &str = "CHANNELGATE_PUSHER_ENCRYPTION_MASTER_KEY_BASE64";
/// Environment variable for `github.client_secret`.
pub const ENV_GITHUB_CLIENT_SECRET: &str = "CHANNELGATE_GITHUB_CLIENT_SECRET";
/// Environment variable for `session.encryption_key_base64`.
pub const ENV_SESSION_KEY: &str = "CHANNELGATE_SESSION_ENCRYPTION_KEY_BASE64";
/// Environment variable naming the config file when `--config` is not given.
pub const ENV_CONFIG_PATH: &str = "CHANNELGATE_CONFIG";

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`: where to listen and how browsers reach us.
    pub server: ServerConfig,
    /// `[pusher]`: the Pusher app whose subscriptions we sign.
    pub pusher: PusherConfig,
    /// `[github]`: the OAuth app and the GitHub instance.
    pub github: GithubConfig,
    /// `[session]`: where sessions live and how long.
    pub session: SessionConfig,
    /// `[cache]`: how long membership is trusted.
    pub cache: CacheConfig,
    /// `[limits]`: how often one client or person may ask.
    pub limits: LimitsConfig,
    /// `[signin]`: who may use `pusher.signin()`; `None` refuses everyone.
    pub signin: Option<Conditions>,
    /// `[[rules]]`, in file order.
    pub rules: RuleSet,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// How browsers reach the gateway, without a trailing slash. The OAuth
    /// callback is `{public_url}/auth/callback`.
    pub public_url: String,
    /// Further origins (`scheme://host[:port]`) allowed to call the auth endpoints.
    pub allowed_origins: Vec<String>,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a whole request may take, body included.
    pub request_timeout: Duration,
    /// Most connections served at once; further ones wait for a free slot.
    pub max_connections: usize,
    /// Peers whose `X-Forwarded-For` names the client (reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
    /// The origin of `public_url`, computed once.
    origin: String,
}

impl ServerConfig {
    /// The origin of `public_url` (`scheme://host[:port]`).
    pub fn public_origin(&self) -> &str {
        &self.origin
    }

    /// True when cookies must be marked `Secure`.
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// `[pusher]`.
#[derive(Debug, Clone)]
pub struct PusherConfig {
    /// The app id.
    pub app_id: String,
    /// The app key (public; it prefixes every `auth`).
    pub key: String,
    /// The app secret that signs.
    pub secret: Secret<String>,
    /// The master key for `private-encrypted-` channels, if any.
    pub encryption_master_key: Option<Secret<[u8; 32]>>,
    /// The Pusher cluster clients connect to.
    pub cluster: String,
    /// A self-hosted Pusher-protocol server instead of the cluster.
    pub host: Option<HostPort>,
    /// Whether clients connect with TLS.
    pub tls: bool,
}

/// `HOST` or `HOST:PORT` (an IPv6 address in brackets: `[::1]:6001`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host name or address (IPv6 with its brackets).
    pub host: String,
    /// The port, when one was given.
    pub port: Option<u16>,
}

impl std::str::FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not HOST or HOST:PORT, such as \"127.0.0.1:6001\"");
        if s.is_empty() || s.contains(['/', '@', '?', '#', '\\']) || s.contains(char::is_whitespace)
        {
            return Err(bad());
        }
        let url = Url::parse(&format!("http://{s}")).map_err(|_| bad())?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        // Url drops a port that is the scheme's default; keep what was written.
        let port = match s.rsplit_once(':') {
            Some((_, p)) if !s.ends_with(']') => Some(p.parse::<u16>().map_err(|_| bad())?),
            _ => None,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// `[github]`.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// The OAuth app's client id.
    pub client_id: String,
    /// The OAuth app's client secret.
    pub client_secret: Secret<String>,
    /// Where people log in, without a trailing slash.
    pub web_url: String,
    /// The REST API root, without a trailing slash.
    pub api_url: String,
    /// OAuth scopes requested at login.
    pub scopes: Vec<String>,
}

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
    /// The session cookie's name, as configured (see [`Config::cookie_name`]).
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

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            store: SessionStore::Memory,
            ttl: Duration::from_secs(7 * 86_400),
            max_age: Duration::from_secs(30 * 86_400),
            cookie_name: "channelgate".to_owned(),
            encryption_key: None,
        }
    }
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

impl ServerConfig {
    /// A server at `listen` that browsers reach at `public_url` (an http(s)
    /// URL without a path), with the default bounds and no proxies.
    pub fn new(listen: SocketAddr, public_url: &Url) -> Self {
        Self {
            listen,
            public_url: public_url.as_str().trim_end_matches('/').to_owned(),
            allowed_origins: Vec::new(),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            trusted_proxies: Vec::new(),
            origin: public_url.origin().ascii_serialization(),
        }
    }
}

impl PusherConfig {
    /// The app `app_id` with `key` and `secret`, on the default cluster over TLS.
    pub fn new(app_id: &str, key: &str, secret: Secret<String>) -> Self {
        Self {
            app_id: app_id.to_owned(),
            key: key.to_owned(),
            secret,
            encryption_master_key: None,
            cluster: "mt1".to_owned(),
            host: None,
            tls: true,
        }
    }
}

impl GithubConfig {
    /// The OAuth app `client_id` on github.com, asking for `read:org`.
    pub fn new(client_id: &str, client_secret: Secret<String>) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret,
            web_url: "https://github.com".to_owned(),
            api_url: "https://api.github.com".to_owned(),
            scopes: vec!["read:org".to_owned()],
        }
    }
}

impl Config {
    /// A configuration built in code: these three sections, every other
    /// at its default, no `[signin]` and no rules. Fields are public, so set
    /// the rest directly; nothing is validated beyond what the types hold.
    pub fn new(server: ServerConfig, pusher: PusherConfig, github: GithubConfig) -> Self {
        Self {
            server,
            pusher,
            github,
            session: SessionConfig::default(),
            cache: CacheConfig::default(),
            limits: LimitsConfig::default(),
            signin: None,
            rules: RuleSet::default(),
        }
    }
}

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path, such as `cache.membership_ttl` or `rules[2].channel`.
    pub key: String,
    /// 1-based line in the file, where known.
    pub line: Option<usize>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or other source) the problems are in.
    pub source: String,
    /// The problems, in file order where lines are known.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{}",
            self.source,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match p.line {
                Some(line) => writeln!(f, "  {}:{line}: {}: {}", self.source, p.key, p.message)?,
                None => writeln!(f, "  {}: {}: {}", self.source, p.key, p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Parses a duration such as `"90s"`, `"5m"`, `"12h"` or `"7d"`.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{input:?} is not a duration; write a whole number and a unit (s, m, h or d), such as \"90s\", \"5m\", \"12h\" or \"7d\""
        )
    };
    let split = input.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = input.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// Formats a duration the way the config writes them (`"5m"`, `"7d"`).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

// ---- the file as written ------------------------------------------------

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
struct RawServer {
    listen: Option<S<String>>,
    public_url: Option<S<String>>,
    allowed_origins: Option<Vec<S<String>>>,
    header_timeout: Option<S<String>>,
    request_timeout: Option<S<String>>,
    max_connections: Option<S<i64>>,
    trusted_proxies: Option<Vec<S<String>>>,
}

#[derive(Deserialize, Default)]
struct RawPusher {
    app_id: Option<S<String>>,
    key: Option<S<String>>,
    secret: Option<S<String>>,
    encryption_master_key_base64: Option<S<String>>,
    cluster: Option<S<String>>,
    host: Option<S<String>>,
    tls: Option<bool>,
}

#[derive(Deserialize, Default)]
struct RawGithub {
    client_id: Option<S<String>>,
    client_secret: Option<S<String>>,
    web_url: Option<S<String>>,
    api_url: Option<S<String>>,
    scopes: Option<Vec<S<String>>>,
}

#[derive(Deserialize, Default)]
struct RawSession {
    store: Option<S<String>>,
    ttl: Option<S<String>>,
    max_age: Option<S<String>>,
    cookie_name: Option<S<String>>,
    encryption_key_base64: Option<S<String>>,
}

#[derive(Deserialize, Default)]
struct RawCache {
    membership_ttl: Option<S<String>>,
    stale_grace: Option<S<String>>,
    max_entries: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
struct RawLimits {
    login_per_minute: Option<S<i64>>,
    auth_per_minute: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
struct RawSignin {
    #[serde(default)]
    users: Vec<S<String>>,
    #[serde(default)]
    orgs: Vec<S<String>>,
    #[serde(default)]
    teams: Vec<S<String>>,
    #[serde(default)]
    everyone: bool,
}

#[derive(Deserialize, Default)]
struct RawRule {
    channel: Option<S<String>>,
    #[serde(default)]
    users: Vec<S<String>>,
    #[serde(default)]
    orgs: Vec<S<String>>,
    #[serde(default)]
    teams: Vec<S<String>>,
    #[serde(default)]
    everyone: bool,
}

// Unknown keys are checked against these lists rather than with serde's
// `deny_unknown_fields`, which stops at the first and hides every other problem.
impl RawServer {
    const FIELDS: &[&str] = &[
        "listen",
        "public_url",
        "allowed_origins",
        "header_timeout",
        "request_timeout",
        "max_connections",
        "trusted_proxies",
    ];
}
impl RawPusher {
    const FIELDS: &[&str] = &[
        "app_id",
        "key",
        "secret",
        "encryption_master_key_base64",
        "cluster",
        "host",
        "tls",
    ];
}
impl RawGithub {
    const FIELDS: &[&str] = &["client_id", "client_secret", "web_url", "api_url", "scopes"];
}
impl RawSession {
    const FIELDS: &[&str] = &[
        "store",
        "ttl",
        "max_age",
        "cookie_name",
        "encryption_key_base64",
    ];
}
impl RawLimits {
    const FIELDS: &[&str] = &["login_per_minute", "auth_per_minute"];
}
impl RawSignin {
    const FIELDS: &[&str] = &["users", "orgs", "teams", "everyone"];
}
impl RawCache {
    const FIELDS: &[&str] = &["membership_ttl", "stale_grace", "max_entries"];
}
impl RawRule {
    const FIELDS: &[&str] = &["channel", "users", "orgs", "teams", "everyone"];
}

/// Collects problems with their lines.
struct Problems<'a> {
    text: &'a str,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn add(
        &mut self,
        key: impl Into<String>,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| {
            self.text[..s.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1
        });
        self.list.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }

    fn at<T>(&mut self, key: &str, value: &S<T>, message: impl Into<String>) {
        self.add(key, Some(value.span()), message);
    }

    /// Reports each key of `table` that is not in `known`.
    fn unknown_keys(&mut self, base: &str, table: &DeTable<'_>, known: &[&str]) {
        for key in table.keys() {
            let name: &str = key.get_ref();
            if !known.contains(&name) {
                let path = if base.is_empty() {
                    name.to_owned()
                } else {
                    format!("{base}.{name}")
                };
                self.add(
                    path,
                    Some(key.span()),
                    format!("unknown key; expected one of {}", known.join(", ")),
                );
            }
        }
    }

    /// Deserializes one table of the document (an absent one is empty),
    /// after reporting its unknown keys. A value of the wrong type is
    /// recorded and the table skipped; unknown keys alone do not stop the
    /// rest of it from being checked.
    fn section<'de, T: Deserialize<'de> + Default>(
        &mut self,
        key: &str,
        value: Option<&S<DeValue<'de>>>,
        known: &[&str],
    ) -> Option<T> {
        let Some(value) = value else {
            return Some(T::default());
        };
        let Some(table) = value.get_ref().as_table() else {
            self.add(
                key,
                Some(value.span()),
                format!("must be a table, written [{key}]"),
            );
            return None;
        };
        self.unknown_keys(key, table, known);
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().unwrap_or(value.span());
                let key = key_at(key, value.get_ref(), &span);
                self.add(key, Some(span), e.message().trim_end().to_owned());
                None
            }
        }
    }
}

/// The path of the deepest key in `value` whose key or value covers `span`,
/// so a type error in `[cache]` is reported at `cache.max_entries`.
fn key_at(base: &str, value: &DeValue<'_>, span: &Range<usize>) -> String {
    let covers = |outer: Range<usize>| outer.start <= span.start && span.end <= outer.end;
    match value {
        DeValue::Table(table) => {
            for (k, v) in table {
                let path = format!("{base}.{}", k.get_ref());
                if covers(k.span()) {
                    return path;
                }
                if covers(v.span()) {
                    return key_at(&path, v.get_ref(), span);
                }
            }
        }
        DeValue::Array(array) => {
            for (i, v) in array.iter().enumerate() {
                if covers(v.span()) {
                    return key_at(&format!("{base}[{i}]"), v.get_ref(), span);
                }
            }
        }
        _ => {}
    }
    base.to_owned()
}

/// Where secrets are looked up besides the file; tests pass a fake.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, treating empty variables as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Reads and validates the file at `path`, taking secrets from the
    /// process environment where set.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source: path.display().to_string(),
            problems: vec![Problem {
                key: "(file)".into(),
                line: None,
                message: format!("cannot read it: {e}"),
            }],
        })?;
        Self::parse(&text, &path.display().to_string(), &process_env)
    }

    /// Validates `text`; `source` names it in messages; `env` supplies
    /// environment variables.
    pub fn parse(text: &str, source: &str, env: Env<'_>) -> Result<Self, ConfigError> {
        let mut p = Problems {
            text,
            list: Vec::new(),
        };
        let config = match DeTable::parse(text) {
            Ok(doc) => build(&mut p, doc.get_ref(), env),
            Err(e) => {
                p.add("(syntax)", e.span(), e.message().trim_end().to_owned());
                None
            }
        };
        match config {
            Some(config) if p.list.is_empty() => Ok(config),
            _ => {
                p.list
                    .sort_by_key(|problem| problem.line.unwrap_or(usize::MAX));
                Err(ConfigError {
                    source: source.to_owned(),
                    problems: p.list,
                })
            }
        }
    }

    /// A human summary of the configuration as understood, for `check-config`.
    /// Secrets are reported only as present.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let (server, pusher, github, session, cache) = (
            &self.server,
            &self.pusher,
            &self.github,
            &self.session,
            &self.cache,
        );
        let _ = writeln!(
            s,
            "server:  listens on {}, public URL {}, OAuth callback {}/auth/callback",
            server.listen, server.public_url, server.public_url
        );
        let _ = writeln!(
            s,
            "         headers within {}, requests within {}, at most {} connections",
            format_duration(server.header_timeout),
            format_duration(server.request_timeout),
            server.max_connections
        );
        let proxies: Vec<String> = server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            s,
            "         client address: {}",
            if proxies.is_empty() {
                "the peer's (X-Forwarded-For is ignored)".to_owned()
            } else {
                format!(
                    "from X-Forwarded-For when the peer is in {}",
                    proxies.join(", ")
                )
            }
        );
        if !server.allowed_origins.is_empty() {
            let _ = writeln!(
                s,
                "         also accepts origins {}",
                server.allowed_origins.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "pusher:  app {} key {} via {}; private-encrypted- channels {}",
            pusher.app_id,
            pusher.key,
            pusher.host.as_ref().map_or_else(
                || format!("cluster {}", pusher.cluster),
                ToString::to_string
            ),
            if pusher.encryption_master_key.is_some() {
                "enabled"
            } else {
                "disabled (no master key)"
            }
        );
        let _ = writeln!(
            s,
            "github:  {} (API {}), client {}, scopes {}",
            github.web_url,
            github.api_url,
            github.client_id,
            github.scopes.join(" ")
        );
        let _ = writeln!(
            s,
            "session: {} store, expires after {} idle or {} after login, cookie {}; tokens encrypted with {}",
            session.store,
            format_duration(session.ttl),
            format_duration(session.max_age),
            session.cookie_name(server.is_https()),
            if session.encryption_key.is_some() {
                "the configured key"
            } else {
                "a random key of this process"
            }
        );
        let _ = writeln!(
            s,
            "cache:   membership trusted for {}, stale grace {}, at most {} people",
            format_duration(cache.membership_ttl),
            format_duration(cache.stale_grace),
            cache.max_entries
        );
        let limit = |n: u32, per: &str| match n {
            0 => format!("unlimited {per}"),
            n => format!("{n} a minute {per}"),
        };
        let _ = writeln!(
            s,
            "limits:  logins {}; Pusher auth {}",
            limit(self.limits.login_per_minute, "per client address"),
            limit(self.limits.auth_per_minute, "per person")
        );
        let _ = writeln!(
            s,
            "signin:  {}",
            match &self.signin {
                None => "refused to everyone (no [signin])".to_owned(),
                Some(c) => describe_admitted(c).unwrap_or_default(),
            }
        );
        let rules = self.rules.rules();
        if rules.is_empty() {
            let _ = writeln!(s, "rules:   none: every channel will be denied");
        } else {
            let _ = writeln!(s, "rules:   (the first that allows a channel wins)");
            let width = rules
                .iter()
                .map(|r| r.pattern.as_str().len())
                .max()
                .unwrap_or(0);
            for (i, rule) in rules.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  rules[{i}] {:width$}  {}",
                    rule.pattern.as_str(),
                    describe_rule(rule)
                );
            }
        }
        s
    }
}

/// Who a rule admits, in words.
fn describe_rule(rule: &Rule) -> String {
    match describe_admitted(&rule.conditions) {
        Some(who) if rule.pattern.has_placeholder() => format!("{who}, where the placeholders fit"),
        Some(who) => who,
        None => "anyone the placeholders fit".to_owned(),
    }
}

/// Who conditions admit, in words; `None` when they list nobody.
fn describe_admitted(c: &Conditions) -> Option<String> {
    let mut who = Vec::new();
    if c.everyone {
        who.push("every logged-in person".to_owned());
    }
    if !c.users.is_empty() {
        who.push(format!("users {}", c.users.join(", ")));
    }
    if !c.orgs.is_empty() {
        who.push(format!("active members of {}", c.orgs.join(", ")));
    }
    if !c.teams.is_empty() {
        let teams: Vec<String> = c.teams.iter().map(ToString::to_string).collect();
        who.push(format!("members of {}", teams.join(", ")));
    }
    (!who.is_empty()).then(|| who.join(" or "))
}

fn build(p: &mut Problems<'_>, doc: &DeTable<'_>, env: Env<'_>) -> Option<Config> {
    const TOP: &[&str] = &[
        "server", "pusher", "github", "session", "cache", "limits", "signin", "rules",
    ];
    p.unknown_keys("", doc, TOP);
    let get = |name: &str| doc.get(name);
    let server = p.section("server", get("server"), RawServer::FIELDS);
    let pusher = p.section("pusher", get("pusher"), RawPusher::FIELDS);
    let github = p.section("github", get("github"), RawGithub::FIELDS);
    let session = p.section("session", get("session"), RawSession::FIELDS);
    let cache = p.section("cache", get("cache"), RawCache::FIELDS);
    let limits = p.section("limits", get("limits"), RawLimits::FIELDS);
    let signin = match get("signin") {
        None => Some(None),
        value => p
            .section::<RawSignin>("signin", value, RawSignin::FIELDS)
            .map(Some),
    };
    let server = server.and_then(|raw| build_server(p, raw));
    let pusher = pusher.and_then(|raw| build_pusher(p, raw, env));
    let github = github.and_then(|raw| build_github(p, raw, env));
    let session = session.and_then(|raw| build_session(p, raw, env));
    let cache = cache.and_then(|raw| build_cache(p, raw));
    let limits = limits.and_then(|raw| build_limits(p, raw));
    let signin = signin.and_then(|raw| build_signin(p, raw));
    let rules = build_rules(p, get("rules"));
    Some(Config {
        server: server?,
        pusher: pusher?,
        github: github?,
        session: session?,
        cache: cache?,
        limits: limits?,
        signin: signin?,
        rules: rules?,
    })
}

fn build_rules(p: &mut Problems<'_>, value: Option<&S<DeValue<'_>>>) -> Option<RuleSet> {
    let Some(value) = value else {
        return Some(RuleSet::default());
    };
    let Some(array) = value.get_ref().as_array() else {
        p.add(
            "rules",
            Some(value.span()),
            "must be an array of tables, written [[rules]]",
        );
        return None;
    };
    let mut rules = Vec::new();
    let mut spans = Vec::new();
    let mut ok = true;
    for (i, item) in array.iter().enumerate() {
        let key = format!("rules[{i}]");
        let raw = p.section::<RawRule>(&key, Some(item), RawRule::FIELDS);
        spans.push(
            raw.as_ref()
                .and_then(|r| r.channel.as_ref().map(Spanned::span)),
        );
        match raw.and_then(|raw| build_rule(p, i, raw)) {
            Some(rule) => rules.push(rule),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    let rules = RuleSet::new(rules);
    let collisions = rules.collisions();
    for c in &collisions {
        let list = rules.rules();
        p.add(
            format!("rules[{}].channel", c.filled),
            spans[c.filled].clone(),
            format!(
                "{:?} collides with rules[{}] {:?}: {c}",
                list[c.filled].pattern.as_str(),
                c.other,
                list[c.other].pattern.as_str()
            ),
        );
    }
    collisions.is_empty().then_some(rules)
}

/// A string value with surrounding whitespace refused, for ids and names.
fn required(
    p: &mut Problems<'_>,
    key: &str,
    value: Option<S<String>>,
    hint: &str,
) -> Option<S<String>> {
    match value {
        Some(v) if v.get_ref().trim().is_empty() => {
            p.at(key, &v, "must not be empty");
            None
        }
        Some(v) => Some(v),
        None => {
            p.add(key, None, format!("is required{hint}"));
            None
        }
    }
}

/// A secret from its environment variable, else from the file.
fn secret(
    p: &mut Problems<'_>,
    key: &str,
    var: &str,
    file: Option<S<String>>,
    env: Env<'_>,
    required_: bool,
) -> Option<Option<Secret<String>>> {
    if let Some(value) = env(var) {
        return Some(Some(Secret::new(value)));
    }
    match file {
        Some(v) if v.get_ref().is_empty() => {
            p.at(key, &v, format!("must not be empty (or set {var})"));
            None
        }
        Some(v) => Some(Some(Secret::new(v.into_inner()))),
        None if required_ => {
            p.add(
                key,
                None,
                format!("is required; set it here or, better, in {var}"),
            );
            None
        }
        None => Some(None),
    }
}

/// An `http` or `https` URL with nothing after the host but an optional path.
fn http_url(
    p: &mut Problems<'_>,
    key: &str,
    value: &S<String>,
    allow_path: bool,
) -> Option<String> {
    let text = value.get_ref();
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            p.at(key, value, format!("{text:?} is not a URL: {e}"));
            return None;
        }
    };
    let problem = if !matches!(url.scheme(), "http" | "https") {
        Some("must start with http:// or https://")
    } else if url.host().is_none() {
        Some("must name a host")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("must not carry a user name or password")
    } else if url.query().is_some() || url.fragment().is_some() {
        Some("must not have a query or fragment")
    } else if !allow_path && url.path() != "/" {
        Some("must not have a path (the gateway serves its routes at the root)")
    } else {
        None
    };
    if let Some(problem) = problem {
        p.at(key, value, format!("{text:?} {problem}"));
        return None;
    }
    Some(url.as_str().trim_end_matches('/').to_owned())
}

fn build_server(p: &mut Problems<'_>, raw: RawServer) -> Option<ServerConfig> {
    let listen = match &raw.listen {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        Some(v) => v
            .get_ref()
            .parse::<SocketAddr>()
            .map_err(|_| {
                p.at(
                    "server.listen",
                    v,
                    format!(
                        "{:?} is not an address and port, such as \"127.0.0.1:8080\"",
                        v.get_ref()
                    ),
                );
            })
            .ok(),
    };
    let public_url = match &raw.public_url {
        Some(v) => http_url(p, "server.public_url", v, false),
        None => match listen {
            Some(addr) if addr.ip().is_unspecified() => {
                p.add("server.public_url", None, format!("is required when server.listen is {addr}: say how browsers reach the gateway, such as \"https://gateway.example.com\""));
                None
            }
            Some(addr) => Some(format!("http://{addr}")),
            None => None,
        },
    };
    let mut allowed_origins = Vec::new();
    for (i, v) in raw.allowed_origins.unwrap_or_default().iter().enumerate() {
        let key = format!("server.allowed_origins[{i}]");
        if let Some(url) = http_url(p, &key, v, false) {
            allowed_origins.push(url);
        }
    }
    let header_timeout = duration(
        p,
        "server.header_timeout",
        raw.header_timeout,
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    let request_timeout = duration(
        p,
        "server.request_timeout",
        raw.request_timeout,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    let max_connections = count(p, "server.max_connections", raw.max_connections, 10_000, 1);
    let mut trusted_proxies = Some(Vec::new());
    for (i, v) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        let text = v.get_ref();
        // A bare address is a network of one.
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match (net, trusted_proxies.as_mut()) {
            (Ok(net), Some(list)) => list.push(net.trunc()),
            (Ok(_), None) => {}
            (Err(_), _) => {
                p.at(
                    &format!("server.trusted_proxies[{i}]"),
                    v,
                    format!("{text:?} is not an address or a network such as \"10.0.0.0/8\""),
                );
                trusted_proxies = None;
            }
        }
    }
    let public_url = public_url?;
    let origin = Url::parse(&public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    Some(ServerConfig {
        listen: listen?,
        public_url,
        allowed_origins,
        header_timeout: header_timeout?,
        request_timeout: request_timeout?,
        max_connections: max_connections? as usize,
        trusted_proxies: trusted_proxies?,
        origin,
    })
}

fn build_pusher(p: &mut Problems<'_>, raw: RawPusher, env: Env<'_>) -> Option<PusherConfig> {
    let app_id = required(p, "pusher.app_id", raw.app_id, "");
    let key = required(p, "pusher.key", raw.key, "").filter(|k| {
        let bad = k
            .get_ref()
            .contains(|c: char| c == ':' || c.is_whitespace());
        if bad {
            p.at("pusher.key", k, "must not contain ':' or spaces");
        }
        !bad
    });
    let secret = secret(p, "pusher.secret", ENV_PUSHER_SECRET, raw.secret, env, true);
    let master_key = match env(ENV_MASTER_KEY) {
        Some(text) => master_key(&text)
            .map_err(|m| p.add(ENV_MASTER_KEY, None, m))
            .ok()
            .map(Some),
        None => match &raw.encryption_master_key_base64 {
            Some(v) => master_key(v.get_ref())
                .map_err(|m| p.at("pusher.encryption_master_key_base64", v, m))
                .ok()
                .map(Some),
            None => Some(None),
        },
    };
    let cluster = match raw.cluster {
        Some(c)
            if c.get_ref().is_empty()
                || !c
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            p.at(
                "pusher.cluster",
                &c,
                format!(
                    "{:?} is not a cluster name such as \"mt1\" or \"eu\"",
                    c.get_ref()
                ),
            );
            None
        }
        Some(c) => Some(c.into_inner()),
        None => Some("mt1".to_owned()),
    };
    let host = match &raw.host {
        None => Some(None),
        Some(h) => h
            .get_ref()
            .parse::<HostPort>()
            .map_err(|m| p.at("pusher.host", h, m))
            .ok()
            .map(Some),
    };
    Some(PusherConfig {
        app_id: app_id?.into_inner(),
        key: key?.into_inner(),
        secret: secret??,
        encryption_master_key: master_key?,
        cluster: cluster?,
        host: host?,
        tls: raw.tls.unwrap_or(true),
    })
}

fn master_key(text: &str) -> Result<Secret<[u8; 32]>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| "is not base64; make a key with `openssl rand -base64 32`".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map(Secret::new).map_err(|_| {
        format!(
            "decodes to {} bytes but must be exactly 32; make a key with `openssl rand -base64 32`",
            bytes.len()
        )
    })
}

fn build_github(p: &mut Problems<'_>, raw: RawGithub, env: Env<'_>) -> Option<GithubConfig> {
    let client_id = required(
        p,
        "github.client_id",
        raw.client_id,
        " (the OAuth app's client id)",
    );
    let client_secret = secret(
        p,
        "github.client_secret",
        ENV_GITHUB_CLIENT_SECRET,
        raw.client_secret,
        env,
        true,
    );
    let url = |p: &mut Problems<'_>, key, v: Option<S<String>>, default: &str| match v {
        Some(v) => http_url(p, key, &v, true),
        None => Some(default.to_owned()),
    };
    let defaults = GithubConfig::new("", Secret::new(String::new()));
    let web_url = url(p, "github.web_url", raw.web_url, &defaults.web_url);
    let api_url = url(p, "github.api_url", raw.api_url, &defaults.api_url);
    let mut scopes = Vec::new();
    for (i, s) in raw
        .scopes
        .unwrap_or_else(|| vec![Spanned::new(0..0, "read:org".into())])
        .into_iter()
        .enumerate()
    {
        if s.get_ref().is_empty() || s.get_ref().contains(char::is_whitespace) {
            p.at(
                &format!("github.scopes[{i}]"),
                &s,
                format!("{:?} is not an OAuth scope", s.get_ref()),
            );
        } else {
            scopes.push(s.into_inner());
        }
    }
    Some(GithubConfig {
        client_id: client_id?.into_inner(),
        client_secret: client_secret??,
        web_url: web_url?,
        api_url: api_url?,
        scopes,
    })
}

fn duration(
    p: &mut Problems<'_>,
    key: &str,
    v: Option<S<String>>,
    default: Duration,
    min: Duration,
) -> Option<Duration> {
    let Some(v) = v else { return Some(default) };
    match parse_duration(v.get_ref()) {
        Ok(d) if d < min => {
            p.at(
                key,
                &v,
                format!("must be at least {}", format_duration(min)),
            );
            None
        }
        Ok(d) => Some(d),
        Err(m) => {
            p.at(key, &v, m);
            None
        }
    }
}

fn build_session(p: &mut Problems<'_>, raw: RawSession, env: Env<'_>) -> Option<SessionConfig> {
    let store = match &raw.store {
        None => Some(SessionStore::Memory),
        Some(v) => {
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
    };
    let encryption_key = match env(ENV_SESSION_KEY) {
        Some(text) => session_key(&text)
            .map_err(|m| p.add(ENV_SESSION_KEY, None, m))
            .ok()
            .map(Some),
        None => match &raw.encryption_key_base64 {
            Some(v) => session_key(v.get_ref())
                .map_err(|m| p.at("session.encryption_key_base64", v, m))
                .ok()
                .map(Some),
            None => Some(None),
        },
    };
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
        SessionConfig::default().ttl,
        Duration::from_secs(60),
    );
    let max_age = duration(
        p,
        "session.max_age",
        raw.max_age,
        SessionConfig::default().max_age,
        Duration::from_secs(1),
    );
    let cookie_name = match raw.cookie_name {
        None => Some(SessionConfig::default().cookie_name),
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
        cookie_name: cookie_name?,
        encryption_key: encryption_key?,
    })
}

fn session_key(text: &str) -> Result<Secret<Vec<u8>>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| "is not base64; make a key with `openssl rand -base64 32`".to_owned())?;
    if bytes.len() < 32 {
        return Err(format!(
            "decodes to {} bytes but must be at least 32; make a key with `openssl rand -base64 32`",
            bytes.len()
        ));
    }
    Ok(Secret::new(bytes))
}

/// A whole number of at least `min`, `default` when absent.
fn count(
    p: &mut Problems<'_>,
    key: &str,
    v: Option<S<i64>>,
    default: u64,
    min: u64,
) -> Option<u64> {
    match v {
        None => Some(default),
        Some(v) => match u64::try_from(*v.get_ref()) {
            Ok(n) if n >= min => Some(n),
            _ => {
                p.at(key, &v, format!("must be a whole number of at least {min}"));
                None
            }
        },
    }
}

fn build_limits(p: &mut Problems<'_>, raw: RawLimits) -> Option<LimitsConfig> {
    let defaults = LimitsConfig::default();
    let per_minute = |p: &mut Problems<'_>, key, v, default: u32| {
        count(p, key, v, u64::from(default), 0).and_then(|n| match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                p.add(key, None, "is too large");
                None
            }
        })
    };
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

fn build_cache(p: &mut Problems<'_>, raw: RawCache) -> Option<CacheConfig> {
    let membership_ttl = duration(
        p,
        "cache.membership_ttl",
        raw.membership_ttl,
        CacheConfig::default().membership_ttl,
        Duration::from_secs(1),
    );
    let stale_grace = duration(
        p,
        "cache.stale_grace",
        raw.stale_grace,
        Duration::ZERO,
        Duration::ZERO,
    );
    let max_entries = match raw.max_entries {
        None => Some(CacheConfig::default().max_entries),
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

fn build_rule(p: &mut Problems<'_>, i: usize, raw: RawRule) -> Option<Rule> {
    let key = |field: &str| format!("rules[{i}].{field}");
    let pattern = match &raw.channel {
        None => {
            p.add(
                key("channel"),
                None,
                "is required: the channel pattern this rule covers",
            );
            None
        }
        Some(v) => Pattern::parse(v.get_ref())
            .map_err(|e| p.at(&key("channel"), v, e.to_string()))
            .ok(),
    };
    let conditions = build_conditions(
        p,
        &format!("rules[{i}]"),
        &raw.users,
        &raw.orgs,
        &raw.teams,
        raw.everyone,
    );
    let span = raw.channel.as_ref().map(Spanned::span);
    let Conditions {
        users,
        orgs,
        teams,
        everyone,
    } = conditions?;
    match Rule::new(pattern?, users, orgs, teams, everyone) {
        Ok(rule) => Some(rule),
        Err(e) => {
            p.add(format!("rules[{i}]"), span, e.to_string());
            None
        }
    }
}

/// `users`, `orgs`, `teams` and `everyone` of a rule or of `[signin]`,
/// each name checked, every bad one reported under `base`.
fn build_conditions(
    p: &mut Problems<'_>,
    base: &str,
    users: &[S<String>],
    orgs: &[S<String>],
    teams: &[S<String>],
    everyone: bool,
) -> Option<Conditions> {
    let names = |p: &mut Problems<'_>, field: &str, list: &[S<String>]| {
        let mut out = Vec::new();
        let mut ok = true;
        for (j, v) in list.iter().enumerate() {
            if is_github_name(v.get_ref()) {
                out.push(v.get_ref().clone());
            } else {
                ok = false;
                p.at(
                    &format!("{base}.{field}[{j}]"),
                    v,
                    format!(
                        "{:?} is not a GitHub name (letters, digits, - and _)",
                        v.get_ref()
                    ),
                );
            }
        }
        ok.then_some(out)
    };
    let users = names(p, "users", users);
    let orgs = names(p, "orgs", orgs);
    let mut team_refs = Some(Vec::new());
    for (j, v) in teams.iter().enumerate() {
        match TeamRef::parse(v.get_ref()) {
            Ok(t) => {
                if let Some(list) = team_refs.as_mut() {
                    list.push(t);
                }
            }
            Err(m) => {
                p.at(&format!("{base}.teams[{j}]"), v, m);
                team_refs = None;
            }
        }
    }
    Some(Conditions {
        users: users?,
        orgs: orgs?,
        teams: team_refs?,
        everyone,
    })
}

fn build_signin(p: &mut Problems<'_>, raw: Option<RawSignin>) -> Option<Option<Conditions>> {
    let Some(raw) = raw else {
        return Some(None);
    };
    let conditions =
        build_conditions(p, "signin", &raw.users, &raw.orgs, &raw.teams, raw.everyone)?;
    if conditions.everyone && !conditions.lists_nobody() {
        p.add("signin", None, "everyone = true admits every account, so its users, orgs and teams would never matter; keep one or the other");
        return None;
    }
    if !conditions.everyone && conditions.lists_nobody() {
        p.add("signin", None, "admits nobody; list users, orgs or teams, or say everyone = true (leave [signin] out to refuse every sign-in)");
        return None;
    }
    Some(Some(conditions))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[pusher]
app_id = "1234"
key = "278d425bdf160c739803"
secret = "7ad3773142a6692b25b8"

[github]
client_id = "Iv1.abc"
client_secret = "shh"
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", &no_env)
    }

    fn problems(text: &str) -> Vec<Problem> {
        parse(text).expect_err("should be refused").problems
    }

    fn with_rules(rules: &str) -> String {
        format!("{MINIMAL}\n{rules}")
    }

    /// The problem for `key`, which must be the only one.
    fn only_problem(text: &str) -> Problem {
        let mut list = problems(text);
        assert_eq!(list.len(), 1, "{list:#?}");
        list.remove(0)
    }

    #[test]
    fn the_repository_config_is_valid() {
        let text = include_str!("../config.toml");
        let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.rules.rules().len() >= 4);
        assert!(config.pusher.encryption_master_key.is_some());
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.github.web_url, "https://github.com");
        assert_eq!(c.github.api_url, "https://api.github.com");
        assert_eq!(c.github.scopes, ["read:org"]);
        assert_eq!(c.session.store, SessionStore::Memory);
        assert_eq!(c.session.ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(c.session.max_age, Duration::from_secs(30 * 86_400));
        assert_eq!(c.session.cookie_name, "channelgate");
        assert_eq!(c.cache.membership_ttl, Duration::from_secs(300));
        assert_eq!(c.cache.stale_grace, Duration::ZERO);
        assert_eq!(c.cache.max_entries, 100_000);
        assert_eq!(c.pusher.cluster, "mt1");
        assert!(c.pusher.encryption_master_key.is_none());
        assert!(c.rules.rules().is_empty());
    }

    #[test]
    fn environment_secrets_win_over_the_file() {
        let env = |name: &str| match name {
            ENV_PUSHER_SECRET => Some("from-env".to_owned()),
            ENV_GITHUB_CLIENT_SECRET => Some("gh-env".to_owned()),
            ENV_MASTER_KEY => Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned()),
            _ => None,
        };
        let c = Config::parse(MINIMAL, "t", &env).unwrap();
        assert_eq!(c.pusher.secret.expose(), "from-env");
        assert_eq!(c.github.client_secret.expose(), "gh-env");
        assert_eq!(c.pusher.encryption_master_key.unwrap().expose()[31], 31);
        // And without the file's secrets at all.
        let bare = "[pusher]\napp_id = \"1\"\nkey = \"k\"\n[github]\nclient_id = \"c\"\n";
        assert!(Config::parse(bare, "t", &env).is_ok());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = parse(MINIMAL).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("7ad3773142a6692b25b8"), "{shown}");
        assert!(!shown.contains("shh"), "{shown}");
    }

    #[test]
    fn missing_required_keys_are_all_reported() {
        let list = problems("");
        let keys: Vec<&str> = list.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "pusher.app_id",
                "pusher.key",
                "pusher.secret",
                "github.client_id",
                "github.client_secret"
            ]
        );
        assert!(list[2].message.contains(ENV_PUSHER_SECRET));
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let p = only_problem(&format!(
            "{MINIMAL}\n[server]\nlisten = \"127.0.0.1:1\"\nlistne = \"x\"\n"
        ));
        assert_eq!(p.key, "server.listne");
        assert!(
            p.message
                .starts_with("unknown key; expected one of listen, public_url"),
            "{}",
            p.message
        );
        assert_eq!(p.line, Some(13));
        let p = only_problem(&format!("{MINIMAL}\n[servre]\n"));
        assert_eq!(p.key, "servre");
        assert_eq!(p.line, Some(11));
        let p = only_problem(&with_rules(
            "[[rules]]\nchannel = \"private-x\"\neveryone = true\nteam = [\"a/b\"]\n",
        ));
        assert_eq!(p.key, "rules[0].team");
        assert!(
            p.message.contains("channel, users, orgs, teams, everyone"),
            "{}",
            p.message
        );
    }

    #[test]
    fn unknown_keys_do_not_hide_other_problems() {
        let list = problems(&MINIMAL.replace(
            "[pusher]\n",
            "[pusher]\ncolour = 1\nsecert = \"x\"\ncluster = \"\"\n",
        ));
        let keys: Vec<&str> = list.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["pusher.colour", "pusher.secert", "pusher.cluster"]);
    }

    #[test]
    fn every_key_of_every_section_is_accepted() {
        let text = r#"
[server]
listen = "127.0.0.1:9000"
public_url = "https://gw.example"
allowed_origins = ["https://app.example"]
header_timeout = "5s"
request_timeout = "1m"
max_connections = 500
trusted_proxies = ["10.0.0.0/8", "::1", "192.168.1.7"]
[pusher]
app_id = "1"
key = "k"
secret = "s"
encryption_master_key_base64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
cluster = "eu"
host = "127.0.0.1:6001"
tls = false
[github]
client_id = "c"
client_secret = "s"
web_url = "https://ghe.example"
api_url = "https://ghe.example/api/v3"
scopes = ["read:org", "read:user"]
[session]
store = "sqlite://sessions.db"
ttl = "12h"
max_age = "14d"
cookie_name = "cg"
encryption_key_base64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[cache]
membership_ttl = "90s"
stale_grace = "1m"
max_entries = 10
[limits]
login_per_minute = 0
auth_per_minute = 100
[signin]
orgs = ["b"]
teams = ["b/c"]
[[rules]]
channel = "private-x"
users = ["a"]
orgs = ["b"]
teams = ["b/c"]
[[rules]]
channel = "presence-y"
everyone = true
"#;
        let c = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.pusher.host,
            Some(HostPort {
                host: "127.0.0.1".into(),
                port: Some(6001)
            })
        );
        assert!(!c.pusher.tls);
        assert_eq!(c.github.api_url, "https://ghe.example/api/v3");
        assert_eq!(c.session.store, SessionStore::Sqlite("sessions.db".into()));
        assert_eq!(c.cache.stale_grace, Duration::from_secs(60));
        assert_eq!(c.rules.rules().len(), 2);
        assert_eq!(c.server.header_timeout, Duration::from_secs(5));
        assert_eq!(c.server.request_timeout, Duration::from_secs(60));
        assert_eq!(c.server.max_connections, 500);
        let proxies: Vec<String> = c
            .server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1/128", "192.168.1.7/32"]);
        assert_eq!(
            c.session.encryption_key.as_ref().map(|k| k.expose().len()),
            Some(32)
        );
        assert_eq!(c.session.cookie_name(c.server.is_https()), "__Host-cg");
        assert_eq!(
            c.limits,
            LimitsConfig {
                login_per_minute: 0,
                auth_per_minute: 100
            }
        );
        assert_eq!(
            c.signin.as_ref().map(|s| s.orgs.clone()),
            Some(vec!["b".to_owned()])
        );
    }

    #[test]
    fn wave_two_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.header_timeout, Duration::from_secs(10));
        assert_eq!(c.server.request_timeout, Duration::from_secs(30));
        assert_eq!(c.server.max_connections, 10_000);
        assert!(c.server.trusted_proxies.is_empty());
        assert_eq!(c.limits, LimitsConfig::default());
        assert_eq!(c.limits.login_per_minute, 30);
        assert_eq!(c.limits.auth_per_minute, 600);
        assert!(c.signin.is_none(), "without [signin], sign-in is refused");
        assert!(c.session.encryption_key.is_none());
        assert_eq!(c.session.cookie_name(false), "channelgate");
    }

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
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let env = |name: &str| (name == ENV_SESSION_KEY).then(|| key.to_owned());
        let text = format!("{MINIMAL}\n[session]\nstore = \"rediss://cache.example:6380\"\n");
        assert!(Config::parse(&text, "t", &env).is_ok());
        let p = only_problem(&format!(
            "{MINIMAL}\n[session]\nencryption_key_base64 = \"c2hvcnQ=\"\n"
        ));
        assert!(p.message.contains("at least 32"), "{}", p.message);
    }

    #[test]
    fn a_password_in_a_store_url_is_never_printed() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let text = format!(
            "{MINIMAL}\n[session]\nstore = \"redis://:hunter2@cache.example:6379\"\nencryption_key_base64 = \"{key}\"\n"
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
    fn signin_takes_the_rule_conditions() {
        let c = parse(&format!("{MINIMAL}\n[signin]\neveryone = true\n")).unwrap();
        assert!(c.signin.unwrap().everyone);
        let p = only_problem(&format!("{MINIMAL}\n[signin]\n"));
        assert_eq!(p.key, "signin");
        assert!(p.message.contains("admits nobody"), "{}", p.message);
        let p = only_problem(&format!("{MINIMAL}\n[signin]\nteams = [\"acme\"]\n"));
        assert_eq!(p.key, "signin.teams[0]");
        let p = only_problem(&format!(
            "{MINIMAL}\n[signin]\nusers = [\"a\"]\neveryone = true\n"
        ));
        assert_eq!(p.key, "signin");
        let list = problems(&format!("{MINIMAL}\n[signin]\nuser = [\"a\"]\n"));
        assert_eq!(list[0].key, "signin.user");
    }

    #[test]
    fn limits_and_server_bounds_are_checked() {
        for (section, key, value) in [
            ("limits", "login_per_minute", "-1"),
            ("limits", "auth_per_minute", "\"lots\""),
            ("server", "max_connections", "0"),
            ("server", "header_timeout", "\"0s\""),
            ("server", "request_timeout", "\"soon\""),
            ("server", "trusted_proxies", "[\"10.0.0.0/33\"]"),
        ] {
            let p = only_problem(&format!("{MINIMAL}\n[{section}]\n{key} = {value}\n"));
            assert!(
                p.key.starts_with(&format!("{section}.{key}")),
                "{key}: {p:?}"
            );
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let p = only_problem("[pusher]\napp_id = \"1\nkey = 2\n");
        assert_eq!(p.key, "(syntax)");
        assert_eq!(p.line, Some(2));
    }

    #[test]
    fn wrong_types_are_errors() {
        let p = only_problem(&format!("{MINIMAL}\n[cache]\nmax_entries = \"lots\"\n"));
        assert_eq!(p.key, "cache.max_entries");
        assert_eq!(p.line, Some(12));
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
        let p = only_problem(&format!("{MINIMAL}\n[session]\nttl = \"7 days\"\n"));
        assert_eq!(p.key, "session.ttl");
    }

    #[test]
    fn host_and_port_parse_as_written() {
        for (text, host, port) in [
            ("127.0.0.1:6001", "127.0.0.1", Some(6001)),
            ("ws.example", "ws.example", None),
            ("ws.example:80", "ws.example", Some(80)),
            ("[::1]:6001", "[::1]", Some(6001)),
            ("[::1]", "[::1]", None),
        ] {
            let parsed: HostPort = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((parsed.host.as_str(), parsed.port), (host, port), "{text}");
            assert_eq!(parsed.to_string(), text);
        }
        for bad in ["", "a b", "a/b", "a:b", "a:99999", "u@h:1", ":80", "[::1"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        for s in ["0s", "90s", "5m", "12h", "7d"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        let key = |v: &str| {
            only_problem(&MINIMAL.replace(
                "secret = \"7ad",
                &format!("encryption_master_key_base64 = \"{v}\"\nsecret = \"7ad"),
            ))
        };
        let p = key("not base64!");
        assert_eq!(p.key, "pusher.encryption_master_key_base64");
        assert_eq!(p.line, Some(5));
        assert!(p.message.contains("not base64"));
        let p = key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==");
        assert!(p.message.contains("decodes to 31 bytes"), "{}", p.message);
        let env = |name: &str| (name == ENV_MASTER_KEY).then(|| "c2hvcnQ=".to_owned());
        let p = Config::parse(MINIMAL, "t", &env)
            .unwrap_err()
            .problems
            .remove(0);
        assert_eq!(p.key, ENV_MASTER_KEY);
    }

    #[test]
    fn server_addresses_and_urls_are_checked() {
        let p = only_problem(&format!("{MINIMAL}\n[server]\nlisten = \"localhost\"\n"));
        assert_eq!(p.key, "server.listen");
        let p = only_problem(&format!("{MINIMAL}\n[server]\nlisten = \"0.0.0.0:8080\"\n"));
        assert_eq!(p.key, "server.public_url");
        assert!(p.message.contains("is required"));
        for bad in [
            "ftp://x",
            "http://x/app",
            "https://u:p@x",
            "not a url",
            "http://x/?a=1",
        ] {
            let p = only_problem(&format!("{MINIMAL}\n[server]\npublic_url = \"{bad}\"\n"));
            assert_eq!(p.key, "server.public_url", "{bad}");
        }
        let p = only_problem(&format!(
            "{MINIMAL}\n[server]\nallowed_origins = [\"https://ok.example\", \"https://x.example/path\"]\n"
        ));
        assert_eq!(p.key, "server.allowed_origins[1]");
        let c = parse(&format!("{MINIMAL}\n[server]\npublic_url = \"https://gw.example/\"\nallowed_origins = [\"https://app.example:8443\"]\n")).unwrap();
        assert_eq!(c.server.public_url, "https://gw.example");
        assert!(c.server.is_https());
        assert_eq!(c.server.public_origin(), "https://gw.example");
        assert_eq!(c.server.allowed_origins, ["https://app.example:8443"]);
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
                "{MINIMAL}\n[session]\nstore = \"{store}\"\nencryption_key_base64 = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n"
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
    }

    #[test]
    fn cache_size_must_be_positive() {
        let p = only_problem(&format!("{MINIMAL}\n[cache]\nmax_entries = 0\n"));
        assert_eq!(p.key, "cache.max_entries");
    }

    #[test]
    fn rule_problems_name_the_rule_index_and_line() {
        let text = with_rules(
            r#"
[[rules]]
channel = "private-ok"
users = ["a"]

[[rules]]
channel = "public-news"
everyone = true

[[rules]]
channel = "private-{user}"

[[rules]]
channel = "private-*-x"
orgs = ["a"]

[[rules]]
channel = "private-team-{org}-{team}"

[[rules]]
channel = "private-x"
teams = ["acme"]

[[rules]]
channel = "private-wide-open"

[[rules]]
users = ["a"]

[[rules]]
channel = "private-y"
users = ["not a login"]
"#,
        );
        let list = problems(&text);
        let got: Vec<(String, Option<usize>)> =
            list.iter().map(|p| (p.key.clone(), p.line)).collect();
        assert_eq!(
            got,
            [
                ("rules[1].channel".to_owned(), Some(17)),
                ("rules[2].channel".to_owned(), Some(21)),
                ("rules[3].channel".to_owned(), Some(24)),
                ("rules[4].channel".to_owned(), Some(28)),
                ("rules[5].teams[0]".to_owned(), Some(32)),
                ("rules[6]".to_owned(), Some(35)),
                ("rules[8].users[0]".to_owned(), Some(42)),
                ("rules[7].channel".to_owned(), None),
            ]
        );
        assert!(list[0].message.contains("must begin with private-"));
        assert!(list[1].message.contains("{user} is not a placeholder"));
        assert!(list[2].message.contains("* may only appear at the end"));
        assert!(
            list[3].message.contains("\"private-team-{org}.{team}\""),
            "{}",
            list[3].message
        );
        assert!(list[4].message.contains("ORG/TEAM-SLUG"));
        assert!(list[5].message.contains("everyone = true"));
    }

    #[test]
    fn errors_print_one_line_per_problem() {
        let e = parse(&format!(
            "{MINIMAL}\n[cache]\nmembership_ttl = \"soon\"\nmax_entries = 0\n"
        ))
        .unwrap_err();
        let shown = e.to_string();
        assert!(shown.starts_with("test.toml: 2 problems\n"), "{shown}");
        assert!(
            shown.contains("  test.toml:12: cache.membership_ttl: \"soon\" is not a duration"),
            "{shown}"
        );
        assert!(
            shown.contains("  test.toml:13: cache.max_entries: must be at least 1"),
            "{shown}"
        );
    }
}
