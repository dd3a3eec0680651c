//! Each section of `config.toml` checked and built. A bad value is a
//! [`Problem`](super::Problem) naming its key and line; every section is
//! checked even when another failed, so one run reports everything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use url::Url;

use super::raw::{
    Env, Problems, RawCache, RawGithub, RawLimits, RawLog, RawPusher, RawRevocation, RawRule,
    RawServer, RawSession, RawSignin, RawWebhooks, S,
};
use super::*;
use crate::rules::{Pattern, Rule, TeamRef, is_github_name};

pub(super) fn build(p: &mut Problems<'_>, doc: &DeTable<'_>, env: Env<'_>) -> Option<Config> {
    const TOP: &[&str] = &[
        "server",
        "pusher",
        "github",
        "session",
        "cache",
        "limits",
        "signin",
        "webhooks",
        "revocation",
        "log",
        "rules",
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
    let webhooks = match get("webhooks") {
        None => Some(None),
        value => p
            .section::<RawWebhooks>("webhooks", value, RawWebhooks::FIELDS)
            .map(Some),
    };
    let revocation = p.section("revocation", get("revocation"), RawRevocation::FIELDS);
    let log = p.section("log", get("log"), RawLog::FIELDS);
    let server = server.and_then(|raw| build_server(p, raw));
    let pusher = pusher.and_then(|raw| build_pusher(p, raw, env));
    let github = github.and_then(|raw| build_github(p, raw, env));
    let session = session.and_then(|raw| build_session(p, raw, env));
    let cache = cache.and_then(|raw| build_cache(p, raw));
    let limits = limits.and_then(|raw| build_limits(p, raw));
    let signin = signin.and_then(|raw| build_signin(p, raw));
    let webhooks = webhooks.and_then(|raw| build_webhooks(p, raw, env));
    let revocation = revocation.and_then(|raw| build_revocation(p, raw));
    let log = log.and_then(|raw| build_log(p, raw));
    let rules = build_rules(p, get("rules"));
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
        log: log?,
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
    let metrics_listen = match &raw.metrics_listen {
        None => Some(None),
        Some(v) => v
            .get_ref()
            .parse::<SocketAddr>()
            .map_err(|_| {
                p.at(
                    "server.metrics_listen",
                    v,
                    format!(
                        "{:?} is not an address and port, such as \"127.0.0.1:9090\"",
                        v.get_ref()
                    ),
                );
            })
            .ok()
            .map(Some),
    };
    if let (Some(Some(metrics)), Some(listen), Some(v)) =
        (metrics_listen, listen, &raw.metrics_listen)
        && metrics == listen
    {
        p.at(
            "server.metrics_listen",
            v,
            "must differ from server.listen: metrics are never served on the public listener",
        );
        return None;
    }
    // Checked by http_url above, so it parses.
    let public = Url::parse(&public_url?).ok()?;
    let mut server = ServerConfig::new(listen?, &public);
    server.allowed_origins = allowed_origins;
    server.header_timeout = header_timeout?;
    server.request_timeout = request_timeout?;
    server.max_connections = max_connections? as usize;
    server.trusted_proxies = trusted_proxies?;
    server.metrics_listen = metrics_listen?;
    Some(server)
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
    let master_key = key_from(
        p,
        env,
        ENV_MASTER_KEY,
        "pusher.encryption_master_key_base64",
        &raw.encryption_master_key_base64,
        master_key,
    );
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
    let api_url = match &raw.api_url {
        None => Some(None),
        Some(v) => http_url(p, "pusher.api_url", v, false).map(Some),
    };
    Some(PusherConfig {
        api_url: api_url?,
        app_id: app_id?.into_inner(),
        key: key?.into_inner(),
        secret: secret??,
        encryption_master_key: master_key?,
        cluster: cluster?,
        host: host?,
        tls: raw.tls.unwrap_or(true),
    })
}

/// A key from its environment variable, else from the file, read by
/// `parse`; `Some(None)` when neither gives one, `None` after a problem.
fn key_from<T>(
    p: &mut Problems<'_>,
    env: Env<'_>,
    var: &str,
    key: &str,
    file: &Option<S<String>>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<Option<T>> {
    match (env(var), file) {
        (Some(text), _) => parse(&text).map_err(|m| p.add(var, None, m)).ok().map(Some),
        (None, Some(v)) => parse(v.get_ref())
            .map_err(|m| p.at(key, v, m))
            .ok()
            .map(Some),
        (None, None) => Some(None),
    }
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
    let timeout = duration(
        p,
        "github.timeout",
        raw.timeout,
        defaults.timeout,
        Duration::from_secs(1),
    );
    Some(GithubConfig {
        timeout: timeout?,
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
    let encryption_key = key_from(
        p,
        env,
        ENV_SESSION_KEY,
        "session.encryption_key_base64",
        &raw.encryption_key_base64,
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

/// The shortest webhook secret accepted: anyone who guesses it can make the
/// gateway re-read people at will.
const MIN_WEBHOOK_SECRET: usize = 16;

/// `[webhooks]`; also on when only its environment variable is set.
fn build_webhooks(
    p: &mut Problems<'_>,
    raw: Option<RawWebhooks>,
    env: Env<'_>,
) -> Option<Option<WebhooksConfig>> {
    if raw.is_none() && env(ENV_WEBHOOK_SECRET).is_none() {
        return Some(None);
    }
    let raw = raw.unwrap_or_default();
    let span = raw.secret.as_ref().map(Spanned::span);
    let secret = secret(
        p,
        "webhooks.secret",
        ENV_WEBHOOK_SECRET,
        raw.secret,
        env,
        true,
    )??;
    if secret.expose().len() < MIN_WEBHOOK_SECRET {
        p.add(
            "webhooks.secret",
            span,
            format!(
                "is {} bytes; use at least {MIN_WEBHOOK_SECRET} random ones, such as `openssl rand -hex 32`, and give GitHub the same",
                secret.expose().len()
            ),
        );
        return None;
    }
    Some(Some(WebhooksConfig { secret }))
}

fn build_log(p: &mut Problems<'_>, raw: RawLog) -> Option<LogConfig> {
    let format = match &raw.format {
        None => Some(LogFormat::Text),
        Some(v) => match v.get_ref().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                p.at(
                    "log.format",
                    v,
                    format!("{other:?} is not \"text\" or \"json\""),
                );
                None
            }
        },
    };
    let level = match raw.level {
        None => Some(LogConfig::default().level),
        Some(v) => {
            let level = v.get_ref().to_ascii_lowercase();
            if ["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
                Some(level)
            } else {
                p.at(
                    "log.level",
                    &v,
                    format!(
                        "{:?} is not one of error, warn, info, debug, trace (RUST_LOG takes finer filters)",
                        v.get_ref()
                    ),
                );
                None
            }
        }
    };
    Some(LogConfig {
        format: format?,
        level: level?,
    })
}

fn build_revocation(p: &mut Problems<'_>, raw: RawRevocation) -> Option<RevocationConfig> {
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
