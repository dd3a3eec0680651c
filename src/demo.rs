//! `channelgate demo`: the whole gateway on one machine, with no GitHub app,
//! no Pusher account and no secrets.
//!
//! The real gateway runs with the GitHub stand-in mounted beside it at
//! `/_github` (so one loopback URL serves both), a few demo people, and a rule
//! set that uses every rule feature. If a Pusher-protocol server (such as
//! sockudo) listens at the demo's Pusher address with the demo app's
//! credentials, the home page subscribes through it for real.

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use std::time::Duration;

use base64::Engine as _;
use url::Url;

use crate::app::{self, App, Gateway, StartError};
use crate::clock::Clock;
use crate::config::{Config, GithubConfig, HostPort, PusherConfig, ServerConfig, WebhooksConfig};
use crate::rules::{Conditions, Pattern, Rule, RuleSet, TeamRef};
use crate::secret::Secret;
use crate::web::ConnectionLimits;
use github_standin::{GithubStandIn, MembershipState, UserRecord, WebhookTarget, World};

/// Where the stand-in is mounted.
pub const GITHUB_PATH: &str = "/_github";
/// The demo OAuth app.
pub const CLIENT_ID: &str = "Iv1.channelgate-demo";
/// Its secret: the demo's own, known to everyone, used only on loopback.
pub const CLIENT_SECRET: &str = "channelgate-demo-client-secret";
/// The demo Pusher app: start a Pusher-protocol server with these to
/// subscribe for real.
pub const PUSHER_APP_ID: &str = "channelgate-demo";
/// The demo Pusher app key.
pub const PUSHER_KEY: &str = "channelgate-demo-key";
/// The demo Pusher app secret (public: this is a demo on loopback).
pub const PUSHER_SECRET: &str = "channelgate-demo-secret";
/// The demo master key for encrypted channels (32 bytes, public).
pub const MASTER_KEY_BASE64: &str = "Y2hhbm5lbGdhdGUtZGVtby1tYXN0ZXIta2V5LTAwMzI=";
/// The secret the stand-in signs the demo's webhooks with (public: loopback only).
pub const WEBHOOK_SECRET: &str = "channelgate-demo-webhook-secret";
/// Where the demo expects a Pusher-protocol server by default.
pub const DEFAULT_PUSHER_HOST: &str = "127.0.0.1:6001";

/// A demo person.
pub struct DemoPerson {
    /// GitHub id.
    pub id: u64,
    /// Login.
    pub login: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Their memberships, in words.
    pub about: &'static str,
}

/// The demo people.
pub const PEOPLE: &[DemoPerson] = &[
    DemoPerson {
        id: 1001,
        login: "ada",
        name: "Ada Lovelace",
        about: "member of acme and of its team acme/secret-agents",
    },
    DemoPerson {
        id: 1002,
        login: "grace",
        name: "Grace Hopper",
        about: "member of acme, in no team",
    },
    DemoPerson {
        id: 1003,
        login: "alan",
        name: "Alan Turing",
        about: "invited to acme (pending), listed in acme/secret-agents",
    },
    DemoPerson {
        id: 1004,
        login: "linus",
        name: "Linus Pauling",
        about: "in no organisation",
    },
];

/// A suggested experiment and its documented outcome.
pub struct Try {
    /// Who to log in as.
    pub login: &'static str,
    /// The channel to test.
    pub channel: &'static str,
    /// Whether it is allowed.
    pub allowed: bool,
    /// Why, in a few words.
    pub why: &'static str,
}

/// What the banner suggests; the demo's test checks every line through HTTP.
pub const TRIES: &[Try] = &[
    Try {
        login: "ada",
        channel: "private-supersecretchat",
        allowed: true,
        why: "team acme/secret-agents",
    },
    Try {
        login: "ada",
        channel: "presence-team-acme.secret-agents",
        allowed: true,
        why: "{org}.{team} is hers",
    },
    Try {
        login: "ada",
        channel: "private-user-grace",
        allowed: false,
        why: "only grace's own channel",
    },
    Try {
        login: "grace",
        channel: "private-supersecretchat",
        allowed: false,
        why: "not in the team",
    },
    Try {
        login: "grace",
        channel: "private-acme-roadmap",
        allowed: true,
        why: "active member of acme",
    },
    Try {
        login: "alan",
        channel: "private-acme-roadmap",
        allowed: false,
        why: "his invitation is pending",
    },
    Try {
        login: "alan",
        channel: "private-supersecretchat",
        allowed: false,
        why: "a team counts only with its org active",
    },
    Try {
        login: "alan",
        channel: "private-user-alan",
        allowed: true,
        why: "his own channel",
    },
    Try {
        login: "linus",
        channel: "presence-lobby",
        allowed: true,
        why: "everyone = true",
    },
    Try {
        login: "linus",
        channel: "private-user-ada",
        allowed: false,
        why: "only ada's own channel",
    },
    Try {
        login: "linus",
        channel: "private-encrypted-inbox-1004",
        allowed: true,
        why: "{id} is his",
    },
];

/// One demo rule: pattern, users, orgs, teams, everyone.
type DemoRule = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    bool,
);

/// The demo rules: every feature of the rule language once.
pub const RULES: &[DemoRule] = &[
    (
        "private-supersecretchat",
        &["octocat"],
        &[],
        &["acme/secret-agents"],
        false,
    ),
    ("private-user-{login}", &[], &[], &[], false),
    ("private-encrypted-inbox-{id}", &[], &[], &[], false),
    ("presence-org-{org}", &[], &[], &[], false),
    ("presence-team-{org}.{team}", &[], &[], &[], false),
    ("private-acme-*", &[], &["acme"], &[], false),
    ("presence-lobby", &[], &[], &[], true),
];

/// The demo rules as a rule set. They are constants, checked by a test.
fn rules() -> RuleSet {
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
    RuleSet::new(
        RULES
            .iter()
            .map(|&(pattern, users, orgs, teams, everyone)| {
                let pattern = Pattern::parse(pattern).expect("a demo pattern is valid");
                let teams = teams
                    .iter()
                    .map(|t| TeamRef::parse(t).expect("a demo team is valid"))
                    .collect();
                Rule::new(pattern, names(users), names(orgs), teams, everyone)
                    .expect("a demo rule is valid")
            })
            .collect(),
    )
}

/// The demo's GitHub: the people above, their avatars served by the demo.
pub fn world(base_url: &str) -> World {
    let mut world = World::new();
    for p in PEOPLE {
        let mut user = UserRecord::new(p.id, p.login, Some(p.name));
        user.avatar_url = format!("{base_url}{GITHUB_PATH}/avatars/{}.svg", p.login);
        world = world.with_user(user);
    }
    world
        .org("ada", "acme", MembershipState::Active)
        .team("ada", "acme", "secret-agents")
        .org("grace", "acme", MembershipState::Active)
        .org("alan", "acme", MembershipState::Pending)
        .team("alan", "acme", "secret-agents")
}

/// The demo's configuration for a gateway at `listen`, reached at
/// `public_url`: built in code, never read from the environment.
pub fn config(listen: SocketAddr, public_url: &Url, pusher_host: &HostPort) -> Config {
    let base = public_url.as_str().trim_end_matches('/');
    let mut pusher = PusherConfig::new(
        PUSHER_APP_ID,
        PUSHER_KEY,
        Secret::new(PUSHER_SECRET.to_owned()),
    );
    let master_key = base64::engine::general_purpose::STANDARD
        .decode(MASTER_KEY_BASE64)
        .ok()
        .and_then(|key| <[u8; 32]>::try_from(key).ok())
        .expect("the demo master key is 32 bytes of base64");
    pusher.encryption_master_key = Some(Secret::new(master_key));
    pusher.host = Some(pusher_host.clone());
    pusher.tls = false;
    let mut github = GithubConfig::new(CLIENT_ID, Secret::new(CLIENT_SECRET.to_owned()));
    github.web_url = format!("{base}{GITHUB_PATH}");
    github.api_url = format!("{base}{GITHUB_PATH}/api/v3");
    let mut config = Config::new(ServerConfig::new(listen, public_url), pusher, github);
    config.cache.membership_ttl = Duration::from_secs(30);
    config.signin = Some(Conditions {
        orgs: vec!["acme".to_owned()],
        ..Conditions::default()
    });
    config.rules = rules();
    // The admin page's changes arrive as GitHub's webhooks would.
    config.webhooks = Some(WebhooksConfig {
        secret: Secret::new(WEBHOOK_SECRET.to_owned()),
    });
    config
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Only loopback addresses are allowed: the demo's secrets are public.
    #[error(
        "the demo listens only on loopback (127.0.0.1 or ::1), because its secrets are public; {0} is not"
    )]
    NotLoopback(SocketAddr),
    /// The gateway did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running demo.
pub struct Demo {
    /// The gateway (with the stand-in mounted).
    pub gateway: Gateway,
    /// The stand-in, for tests to inspect or switch.
    pub github: GithubStandIn,
    /// The URL to open.
    pub url: String,
}

/// Binds `listen` (loopback only) and starts the demo there.
pub async fn start(listen: SocketAddr, pusher_host: &HostPort) -> Result<Demo, DemoError> {
    start_with(listen, pusher_host, |_| {}).await
}

/// [`start`] with the demo's configuration edited first (tests shorten
/// its TTL or turn its webhooks off).
pub async fn start_with(
    listen: SocketAddr,
    pusher_host: &HostPort,
    edit: impl FnOnce(&mut Config),
) -> Result<Demo, DemoError> {
    if !listen.ip().is_loopback() {
        return Err(DemoError::NotLoopback(listen));
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| DemoError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| DemoError::Bind {
        addr: listen,
        source,
    })?;
    let url = format!("http://{addr}");
    let github = GithubStandIn::new(world(&url), CLIENT_ID, CLIENT_SECRET);
    github.set_base_url(&format!("{url}{GITHUB_PATH}"));
    github.register_callback(&format!("{url}/auth/callback"));
    github.set_webhook(Some(WebhookTarget {
        url: format!("{url}/github/webhook"),
        secret: WEBHOOK_SECRET.to_owned(),
    }));
    let public_url = Url::parse(&url).expect("http://ADDR is a URL");
    let mut config = config(addr, &public_url, pusher_host);
    edit(&mut config);
    let limits = ConnectionLimits::of(&config.server);
    let App { router, state } = app::build(config, Clock::default()).await?;
    let app = router
        .nest(
            GITHUB_PATH,
            github
                .router()
                .merge(Router::new().route("/avatars/{file}", get(avatar))),
        )
        .layer(middleware::from_fn_with_state(
            Canonical(public_url.clone()),
            one_loopback_origin,
        ));
    Ok(Demo {
        gateway: Gateway::serve(listener, addr, app, limits).owning(state),
        github,
        url,
    })
}

/// The demo's one origin (`http://127.0.0.1:PORT`), where every browser
/// is sent first.
#[derive(Clone)]
struct Canonical(Url);

impl Canonical {
    /// `HOST[:PORT]` as a browser writes it in its `Host` header.
    fn authority(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

/// Refuses a request whose `Host` is not a loopback name, and sends a
/// browser that reached the demo through another loopback name (such as
/// `localhost`) to the demo's one origin. The demo's secrets are public, so
/// a web page must not reach it through a DNS name that an attacker points
/// at 127.0.0.1 (DNS rebinding). And a login must start and end on one
/// origin: its cookie is set for the name the browser used, while GitHub
/// (the stand-in) sends it back to the one callback URL.
async fn one_loopback_origin(
    State(canonical): State<Canonical>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !is_loopback_host(host) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "the channelgate demo answers only to loopback names such as 127.0.0.1 and localhost\n",
        )
            .into_response();
    }
    let authority = canonical.authority();
    let navigation = matches!(*request.method(), Method::GET | Method::HEAD);
    if navigation && !host.eq_ignore_ascii_case(&authority) {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        // Temporary: another demo, or a real gateway, may answer at this
        // name later.
        return Redirect::temporary(&format!("http://{authority}{path}")).into_response();
    }
    next.run(request).await
}

/// `localhost`, `*.localhost` or a loopback address, with any port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:8080
        Some(rest) => rest.split_once(']').map_or("", |(ip, _)| ip),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What to print when the demo starts.
pub fn banner(url: &str, pusher_host: &HostPort) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\nchannelgate demo: open {url}/\n");
    let _ = writeln!(
        s,
        "GitHub is simulated at {url}{GITHUB_PATH}; log in as any of these people:"
    );
    for p in PEOPLE {
        let _ = writeln!(s, "  {:<6} {}", p.login, p.about);
    }
    let _ = writeln!(s, "\nThen test channels on the home page, for example:");
    for t in TRIES {
        let verdict = if t.allowed { "allow" } else { "deny " };
        let _ = writeln!(
            s,
            "  as {:<6} {:<34} {verdict}  ({})",
            t.login, t.channel, t.why
        );
    }
    let _ = writeln!(
        s,
        "\nThe page also subscribes for real through a Pusher-protocol server at {pusher_host}, if one runs there \
         with app id {PUSHER_APP_ID}, key {PUSHER_KEY} and secret {PUSHER_SECRET}. With sockudo:\n  \
         SOCKUDO_DEFAULT_APP_ID={PUSHER_APP_ID} SOCKUDO_DEFAULT_APP_KEY={PUSHER_KEY} \
         SOCKUDO_DEFAULT_APP_SECRET={PUSHER_SECRET} SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION=true \
         HOST=127.0.0.1 PORT={} sockudo",
        pusher_host.port.unwrap_or(80)
    );
    let _ = writeln!(
        s,
        "\nTake access away live: subscribe as ada to private-supersecretchat on the home page, then at \
         {url}{GITHUB_PATH}/admin remove ada from acme/secret-agents. The change reaches the gateway as a signed \
         webhook, and the gateway ends her Pusher connection (through the server above); her page says what \
         ended and why."
    );
    let _ = writeln!(
        s,
        "\nWithout a browser: make a token on the home page, or sign in a program with the device flow \
         (examples/device-login):\n  GATEWAY_URL={url} PUSHER_KEY={PUSHER_KEY} PUSHER_HOST={} PUSHER_PORT={} \
         node client.mjs private-supersecretchat\nand enter its code at {url}{GITHUB_PATH}/login/device.",
        pusher_host.host,
        pusher_host.port.unwrap_or(80)
    );
    let _ = writeln!(s, "\nEach decision is logged below. Ctrl-C stops the demo.");
    s
}

/// `GET /_github/avatars/{login}.svg`: a generated avatar, so the demo
/// needs no network.
async fn avatar(Path(file): Path<String>) -> impl IntoResponse {
    let login = file.strip_suffix(".svg").unwrap_or(&file);
    let initial = login
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .filter(char::is_ascii_alphanumeric)
        .unwrap_or('?');
    let hue = login
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96"><rect width="96" height="96" fill="hsl({hue},55%,45%)"/><text x="48" y="62" font-family="system-ui,sans-serif" font-size="44" font-weight="600" fill="#fff" text-anchor="middle">{initial}</text></svg>"##
    );
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_is_valid_and_every_rule_is_used() {
        let config = config(
            "127.0.0.1:8080".parse().unwrap(),
            &Url::parse("http://127.0.0.1:8080").unwrap(),
            &DEFAULT_PUSHER_HOST.parse().unwrap(),
        );
        assert_eq!(config.rules.rules().len(), 7);
        assert_eq!(
            config.rules.collisions(),
            [],
            "no demo rule bridges another"
        );
        assert_eq!(config.server.public_origin(), "http://127.0.0.1:8080");
        assert!(config.pusher.encryption_master_key.is_some());
        assert_eq!(
            config.github.api_url,
            "http://127.0.0.1:8080/_github/api/v3"
        );
    }

    #[tokio::test]
    async fn the_demo_refuses_addresses_other_than_loopback() {
        let err = start(
            "0.0.0.0:0".parse().unwrap(),
            &DEFAULT_PUSHER_HOST.parse().unwrap(),
        )
        .await
        .err()
        .expect("refused");
        assert!(err.to_string().contains("only on loopback"), "{err}");
    }

    #[test]
    fn only_loopback_names_are_answered() {
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:1",
            "[::1]:8080",
            "127.1.2.3:9",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:8080",
            "[::2]:8080",
            "[::1",
            "0.0.0.0:8080",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_banner_lists_every_person_and_experiment() {
        let text = banner(
            "http://127.0.0.1:8080",
            &DEFAULT_PUSHER_HOST.parse().unwrap(),
        );
        for p in PEOPLE {
            assert!(text.contains(p.login));
        }
        for t in TRIES {
            assert!(text.contains(t.channel));
        }
        assert!(text.contains("SOCKUDO_DEFAULT_APP_KEY=channelgate-demo-key"));
    }
}
