//! `config.toml`: loaded once, validated once, then read-only.
//!
//! Loading collects every problem in the file (unknown keys, bad values, bad
//! rules) instead of stopping at the first, and names each by its key path
//! (`rules[2].channel`) and, where the TOML parser knows it, its line.
//! Secrets may come from environment variables, which take precedence over
//! the file; they are held in [`Secret`] so they never print.

//!
//! # Layout
//!
//! - this file: the typed configuration, its defaults, and [`Config::load`];
//! - [`duration`]: the duration grammar (`"90s"`, `"5m"`, `"12h"`, `"7d"`);
//! - `raw`: the file as written, key by key, and the collector of problems;
//! - `sections`: each section checked and built, every problem reported;
//! - `summary`: the configuration in words, for `check-config`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::de::DeTable;
use url::Url;

use crate::rules::{Conditions, RuleSet};
use crate::secret::Secret;

pub mod duration;
mod raw;
mod sections;
mod summary;

pub use duration::{format_duration, parse_duration};
use raw::Problems;
pub use raw::{Env, process_env};

/// Environment variable for `pusher.secret`.
pub const ENV_PUSHER_SECRET: &str = "CHANNELGATE_PUSHER_SECRET";
/// Environment variable for `pusher.encryption_master_key_base64`.
pub const ENV_MASTER_KEY: &str = "CHANNELGATE_PUSHER_ENCRYPTION_MASTER_KEY_BASE64";
/// Environment variable for `github.client_secret`.
pub const ENV_GITHUB_CLIENT_SECRET: &str = "CHANNELGATE_GITHUB_CLIENT_SECRET";
/// Environment variable for `session.encryption_key_base64`.
pub const ENV_SESSION_KEY: &str = "CHANNELGATE_SESSION_ENCRYPTION_KEY_BASE64";
/// Environment variable for `webhooks.secret`.
pub const ENV_WEBHOOK_SECRET: &str = "CHANNELGATE_GITHUB_WEBHOOK_SECRET";
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
    /// `[webhooks]`: GitHub's deliveries; `None` leaves `/github/webhook` out.
    pub webhooks: Option<WebhooksConfig>,
    /// `[revocation]`: how long signed channels are watched, and whether
    /// losing one ends the person's Pusher connections.
    pub revocation: RevocationConfig,
    /// `[log]`: the log's format and level.
    pub log: LogConfig,
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
    /// Where Prometheus metrics are served (`GET /metrics`); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// `public_url`, parsed once.
    public: Url,
    /// The origin of `public_url`, computed once.
    origin: String,
}

impl ServerConfig {
    /// `public_url`, parsed.
    pub fn public(&self) -> &Url {
        &self.public
    }

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
    /// Pusher's HTTP API as configured; see [`PusherConfig::api_url`].
    pub api_url: Option<String>,
}

impl PusherConfig {
    /// Pusher's HTTP API root, without a trailing slash: `pusher.api_url`
    /// when given, else `http(s)://{host}` for a self-hosted server, else
    /// `https://api-{cluster}.pusher.com`.
    pub fn api_url(&self) -> String {
        match (&self.api_url, &self.host) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => {
                let scheme = if self.tls { "https" } else { "http" };
                format!("{scheme}://{host}")
            }
            (None, None) => format!("https://api-{}.pusher.com", self.cluster),
        }
    }
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
    /// How long one call to GitHub may take.
    pub timeout: Duration,
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

/// `[webhooks]`.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// The secret GitHub signs each delivery with (`X-Hub-Signature-256`).
    pub secret: Secret<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// `error`, `warn`, `info`, `debug` or `trace`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

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
            metrics_listen: None,
            public: public_url.clone(),
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
            api_url: None,
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
            timeout: Duration::from_secs(10),
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
            webhooks: None,
            revocation: RevocationConfig::default(),
            log: LogConfig::default(),
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
            Ok(doc) => sections::build(&mut p, doc.get_ref(), env),
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
        let text = include_str!("../../config.toml");
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
metrics_listen = "127.0.0.1:9090"
[pusher]
app_id = "1"
key = "k"
secret = "s"
encryption_master_key_base64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
cluster = "eu"
host = "127.0.0.1:6001"
tls = false
api_url = "http://pusher-api.internal:8081"
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
[webhooks]
secret = "0123456789abcdef0123"
[revocation]
watch_for = "2h"
terminate_connections = false
[log]
format = "json"
level = "debug"
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
        assert_eq!(c.pusher.api_url(), "http://pusher-api.internal:8081");
        assert_eq!(
            c.server.metrics_listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert_eq!(
            c.log,
            LogConfig {
                format: LogFormat::Json,
                level: "debug".into()
            }
        );
        assert_eq!(
            c.webhooks.as_ref().map(|w| w.secret.expose().as_str()),
            Some("0123456789abcdef0123")
        );
        assert_eq!(
            c.revocation,
            RevocationConfig {
                watch_for: Duration::from_secs(7200),
                terminate_connections: false
            }
        );
    }

    #[test]
    fn pusher_api_url_follows_cluster_then_host() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.pusher.api_url(), "https://api-mt1.pusher.com");
        let eu = parse(&MINIMAL.replace("[github]", "cluster = \"eu\"\n[github]")).unwrap();
        assert_eq!(eu.pusher.api_url(), "https://api-eu.pusher.com");
        let own = parse(&MINIMAL.replace(
            "[github]",
            "host = \"127.0.0.1:6001\"\ntls = false\n[github]",
        ))
        .unwrap();
        assert_eq!(own.pusher.api_url(), "http://127.0.0.1:6001");
        let p = only_problem(&MINIMAL.replace(
            "[github]",
            "api_url = \"http://pusher.example/apps\"\n[github]",
        ));
        assert_eq!(p.key, "pusher.api_url");
        assert!(p.message.contains("must not have a path"), "{}", p.message);
    }

    #[test]
    fn log_and_metrics_settings_are_checked() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.log, LogConfig::default());
        assert_eq!(c.server.metrics_listen, None);
        let bad = problems(&format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\nmetrics_listen = \"127.0.0.1:8080\"\n{MINIMAL}\n[log]\nformat = \"xml\"\nlevel = \"loud\"\n"
        ));
        let keys: Vec<&str> = bad.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["server.metrics_listen", "log.format", "log.level"],
            "{bad:?}"
        );
        assert!(
            bad[0].message.contains("public listener"),
            "{}",
            bad[0].message
        );
    }

    #[test]
    fn live_revocation_is_on_and_webhooks_off_by_default() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.revocation.watch_for, Duration::from_secs(86_400));
        assert!(c.revocation.terminate_connections);
        assert!(c.webhooks.is_none());
        let off = parse(&format!("{MINIMAL}\n[revocation]\nwatch_for = \"0s\"\n")).unwrap();
        assert!(off.revocation.watch_for.is_zero());
    }

    #[test]
    fn a_webhook_secret_must_be_long_and_never_shows() {
        let short = only_problem(&format!("{MINIMAL}\n[webhooks]\nsecret = \"hunter2\"\n"));
        assert_eq!(short.key, "webhooks.secret");
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
