//! `config.toml`: loaded once, validated once, then read-only.
//!
//! Loading collects every problem in the file (unknown keys, bad values, bad
//! rules) instead of stopping at the first, and names each by its key path
//! (`rules[2].channel`) and, where the TOML parser knows it, its line.
//! Secrets may come from environment variables, which take precedence over
//! the file; they are held in [`Secret`](crate::secret::Secret) so they never print, and a bad one
//! from the environment is blamed on its variable.
//!
//! # Layout
//!
//! - this file: [`Config`], [`Config::load`] and [`Config::parse`], the
//!   environment, and the collected [`Problem`]s;
//! - one file per section, each with its typed form, its raw form as
//!   written (whose fields are the section's known keys) and its checks:
//!   `server`, `pusher`, `github`, `session`, `cache`, `limits`, `signin`,
//!   `webhooks`, `revocation`, `log`, `rules`;
//! - `check`: what the sections share: the problem collector, reading a
//!   table, and the checks of secrets, URLs, durations and counts;
//! - `syntax`: a TOML syntax error's excerpt of its line;
//! - [`duration`]: the duration grammar (`"90s"`, `"5m"`, `"12h"`, `"7d"`);
//! - `summary`: the configuration in words, for `check-config`.

use std::fmt;
use std::io;
use std::path::Path;

use toml::de::DeTable;

use crate::rules::{Conditions, RuleSet};

mod cache;
mod check;
mod device;
pub mod duration;
mod github;
mod limits;
mod log;
mod pusher;
mod revocation;
mod rules;
mod server;
mod session;
mod signin;
mod summary;
mod syntax;
mod warnings;
mod webhooks;

pub use self::cache::CacheConfig;
pub use self::device::DeviceConfig;
pub use self::duration::{format_duration, parse_duration};
pub use self::github::GithubConfig;
pub use self::limits::LimitsConfig;
pub use self::log::{LogConfig, LogFormat};
pub use self::pusher::{HostPort, PusherConfig};
pub use self::revocation::{MAX_SIGNIN_WAIT, RevocationConfig};
pub use self::server::ServerConfig;
pub use self::session::{RedisNodes, SessionConfig, SessionStore, Topology, redact_url};
pub use self::warnings::file_warnings;
pub use self::webhooks::WebhooksConfig;
use check::Problems;

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

/// Where secrets are looked up besides the file; tests pass a fake.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, treating empty variables as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The sections of `config.toml`, each read by its own file.
const SECTIONS: &[&str] = &[
    "server",
    "pusher",
    "github",
    "session",
    "cache",
    "limits",
    "signin",
    "webhooks",
    "revocation",
    "device",
    "log",
    "rules",
];

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
    /// `[device]`: whether GitHub's device flow is offered.
    pub device: DeviceConfig,
    /// `[log]`: the log's format and level.
    pub log: LogConfig,
    /// `[[rules]]`, in file order.
    pub rules: RuleSet,
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
            device: DeviceConfig::default(),
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
    /// For a syntax error, the line as written with a caret under the
    /// place the parser stopped (see [`Config::parse`]).
    pub excerpt: Option<String>,
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
            for line in p.excerpt.iter().flat_map(|e| e.lines()) {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates the file at `path`, taking secrets from the
    /// process environment where set. Problems name the file by its
    /// absolute path (a relative `path` is resolved against the current
    /// directory).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = std::path::absolute(path)
            .unwrap_or_else(|_| path.to_owned())
            .display()
            .to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source: source.clone(),
            problems: vec![Problem {
                key: "(file)".into(),
                line: None,
                message: unreadable(&e),
                excerpt: None,
            }],
        })?;
        Self::parse(&text, &source, &process_env)
    }

    /// Validates `text`; `source` names it in messages; `env` supplies
    /// environment variables. A syntax error carries an excerpt of its
    /// line, unless the line may hold a secret.
    pub fn parse(text: &str, source: &str, env: Env<'_>) -> Result<Self, ConfigError> {
        let mut p = Problems {
            text,
            list: Vec::new(),
        };
        let config = match DeTable::parse(text) {
            Ok(doc) => build(&mut p, doc.get_ref(), env),
            Err(e) => {
                p.add("(syntax)", e.span(), e.message().trim_end().to_owned());
                if let (Some(span), Some(problem)) = (e.span(), p.list.last_mut()) {
                    problem.excerpt = Some(syntax::excerpt(text, &span));
                }
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

/// Every section read, checked and built. Each is checked even when another
/// failed, so one run reports every problem.
fn build(p: &mut Problems<'_>, doc: &DeTable<'_>, env: Env<'_>) -> Option<Config> {
    p.unknown_keys("", doc, SECTIONS);
    let get = |name: &str| doc.get(name);
    let server = server::read(p, get("server"));
    let pusher = pusher::read(p, get("pusher"), env);
    let github = github::read(p, get("github"), env);
    let session = session::read(p, get("session"), env);
    let cache = cache::read(p, get("cache"));
    let limits = limits::read(p, get("limits"));
    let signin = signin::read(p, get("signin"));
    let webhooks = webhooks::read(p, get("webhooks"), env);
    let revocation = revocation::read(
        p,
        get("revocation"),
        signin.as_ref(),
        server.as_ref().map(|s| s.request_timeout),
    );
    let device = device::read(p, get("device"));
    let log = self::log::read(p, get("log"));
    let rules = rules::read(p, get("rules"));
    Some(Config {
        server: server?,
        pusher: pusher?,
        github: github?,
        session: session?,
        cache: cache?,
        limits: limits?,
        signin: signin?,
        webhooks: webhooks?,
        revocation: revocation?,
        device: device?,
        log: log?,
        rules: rules?,
    })
}

/// Why the config file could not be read, and what to do.
fn unreadable(e: &io::Error) -> String {
    let name_it = format!(
        "pass `--config PATH` or set {ENV_CONFIG_PATH} to name the config file, or try `channelgate demo` for a gateway that needs no config"
    );
    match e.kind() {
        io::ErrorKind::NotFound => format!("no such file; {name_it}"),
        io::ErrorKind::IsADirectory => format!("is a directory, not a file; {name_it}"),
        io::ErrorKind::PermissionDenied => "cannot be read: permission denied; let the gateway's user read it (and, as it may hold secrets, nobody else)".to_owned(),
        io::ErrorKind::InvalidData => "is not UTF-8 text".to_owned(),
        _ => format!("cannot be read: {e}"),
    }
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::testing::{MINIMAL, only_problem, parse, problems, with_rules};

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
require_signin = true
signin_wait = "3s"
[device]
enabled = false
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
        assert!(!c.device.enabled);
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
                terminate_connections: false,
                require_signin: true,
                signin_wait: Duration::from_secs(3),
            }
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
    fn syntax_errors_name_the_line() {
        let p = only_problem("[pusher]\napp_id = \"1\nkey = 2\n");
        assert_eq!(p.key, "(syntax)");
        assert_eq!(p.line, Some(2));
    }

    #[test]
    fn a_syntax_error_shows_its_line_with_a_caret() {
        let e = parse(&format!("{MINIMAL}\n[cache]\nmembership_ttl = 5m\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.toml: 1 problem\n\
             \x20 test.toml:12: (syntax): string values must be quoted, expected literal string\n\
             \x20      |\n\
             \x20   12 | membership_ttl = 5m\n\
             \x20      |                  ^^\n"
        );
    }

    #[test]
    fn a_syntax_error_on_a_secret_line_hides_the_line() {
        let text = MINIMAL.replace(
            "secret = \"7ad3773142a6692b25b8\"",
            "secret = \"7ad3773142a6692b25b8",
        );
        let e = parse(&text).unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains("7ad3773142a6692b25b8"), "{shown}");
        assert!(
            shown.contains("    5 | secret = … (not shown: this line may hold a secret)\n"),
            "{shown}"
        );
    }

    /// A file of its own in the temporary directory, holding `contents`.
    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("channelgate-config-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_missing_file_is_named_by_its_absolute_path_with_a_way_forward() {
        let e = Config::load(Path::new("no-such-dir/channelgate.toml")).unwrap_err();
        let absolute = std::env::current_dir()
            .unwrap()
            .join("no-such-dir/channelgate.toml")
            .display()
            .to_string();
        assert_eq!(e.source, absolute);
        assert_eq!(
            e.to_string(),
            format!(
                "{absolute}: 1 problem\n  {absolute}: (file): no such file; pass `--config PATH` \
                 or set CHANNELGATE_CONFIG to name the config file, or try `channelgate demo` \
                 for a gateway that needs no config\n"
            )
        );
    }

    #[test]
    fn other_read_errors_name_the_absolute_path_too() {
        let dir = std::env::temp_dir();
        let e = Config::load(&dir).unwrap_err();
        assert_eq!(e.source, dir.display().to_string());
        assert!(
            e.problems[0]
                .message
                .starts_with("is a directory, not a file; pass `--config PATH`"),
            "{e}"
        );
        let binary = temp_file("binary.toml", b"\xff\xfe");
        let e = Config::load(&binary).unwrap_err();
        std::fs::remove_file(&binary).unwrap();
        assert_eq!(e.source, binary.display().to_string());
        assert_eq!(e.problems[0].message, "is not UTF-8 text");
    }

    #[test]
    fn problems_in_a_loaded_file_name_it_by_its_absolute_path() {
        let path = temp_file("broken.toml", b"[servre]\n");
        let e = Config::load(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(path.is_absolute());
        assert!(
            e.to_string()
                .contains(&format!("  {}:1: servre: unknown key", path.display())),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_are_errors() {
        let p = only_problem(&format!("{MINIMAL}\n[cache]\nmax_entries = \"lots\"\n"));
        assert_eq!(p.key, "cache.max_entries");
        assert_eq!(p.line, Some(12));
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
