//! Spawning a gateway beside a GitHub stand-in, and a browser-like client.

use std::sync::Arc;

use channelgate::config::{Config, LimitsConfig};
use channelgate::web::Gateway;
use github_standin::{Endpoint, GithubStandIn, MembershipState, World};
use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::LOCATION;
use tokio::net::TcpListener;

pub const CLIENT_ID: &str = "Iv1.test-client";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const PUSHER_KEY: &str = "278d425bdf160c739803";
pub const PUSHER_SECRET: &str = "7ad3773142a6692b25b8";
pub const MASTER_KEY_BASE64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The session encryption key of every test gateway, so that gateways
/// sharing a SQLite or Redis store read each other's sessions.
pub const SESSION_KEY_BASE64: &str = "c2Vzc2lvbi1rZXktb2YtdGhlLXRlc3RzLTMyLWJ5dGVz";

/// `[session]` with `store` and the tests' encryption key.
pub fn session_store(store: &str) -> String {
    format!("[session]\nstore = \"{store}\"\nencryption_key_base64 = \"{SESSION_KEY_BASE64}\"\n")
}

/// The people of DESIGN.md's worked examples, plus the repo config's team.
pub fn world() -> World {
    World::new()
        .user(1, "ada", Some("Ada Lovelace"))
        .org("ada", "initech", MembershipState::Active)
        .team("ada", "initech", "ops")
        .user(2, "bo", Some("Bo"))
        .org("bo", "initech", MembershipState::Active)
        .user(3, "cy", None)
        .org("cy", "initech", MembershipState::Pending)
        .team("cy", "initech", "ops")
        .user(4, "Dee-Dash", Some("Dee Dash"))
        .org("Dee-Dash", "globex", MembershipState::Active)
        .user(5, "jbloggs", Some("Joe Bloggs"))
        .org("jbloggs", "acme", MembershipState::Active)
        .team("jbloggs", "acme", "secret-agents")
}

pub const RULES: &str = r#"
[[rules]]
channel = "private-ops"
teams = ["initech/ops"]

[[rules]]
channel = "private-user-{login}"

[[rules]]
channel = "presence-org-{org}"

[[rules]]
channel = "private-team-{org}.{team}"

[[rules]]
channel = "private-initech-*"
orgs = ["initech"]

[[rules]]
channel = "private-encrypted-initech-*"
orgs = ["initech"]

[[rules]]
channel = "private-lobby"
everyone = true
"#;

/// The configuration of a test gateway at `public_url` using `github`.
pub fn config(public_url: &str, github: &GithubStandIn, extra: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "{public_url}"

[pusher]
app_id = "1234"
key = "{PUSHER_KEY}"
secret = "{PUSHER_SECRET}"
encryption_master_key_base64 = "{MASTER_KEY_BASE64}"

[github]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
web_url = "{web}"
api_url = "{api}"

{extra}
{signin}
{RULES}
"#,
        signin = if extra.contains("[signin]") {
            ""
        } else {
            "[signin]\norgs = [\"initech\"]\n"
        },
        web = github.web_url(),
        api = github.api_url(),
    );
    let no_env = |_: &str| None;
    Config::parse(&text, "test config", &no_env).unwrap_or_else(|e| panic!("{e}"))
}

/// A gateway and its GitHub stand-in.
pub struct TestApp {
    pub gateway: Gateway,
    pub github: GithubStandIn,
    pub url: String,
}

/// A GitHub stand-in with the people of [`world`].
pub async fn stand_in() -> GithubStandIn {
    stand_in_with(world()).await
}

/// A GitHub stand-in with these people.
pub async fn stand_in_with(world: World) -> GithubStandIn {
    GithubStandIn::spawn(world, CLIENT_ID, CLIENT_SECRET)
        .await
        .expect("stand-in starts")
}

/// The value of `name` in the query of `url`.
pub fn query_param(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .1
        .into_owned()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::configured("").await
    }

    /// A gateway with its own stand-in and `extra` config sections.
    pub async fn configured(extra: &str) -> Self {
        Self::spawn_with(stand_in().await, extra).await
    }

    /// A gateway on a new port, sharing `github`, with `extra` config sections.
    pub async fn spawn_with(github: GithubStandIn, extra: &str) -> Self {
        Self::spawn_edited(github, "http", extra, |_| {}).await
    }

    /// Like [`TestApp::spawn_with`], with `public_url` in `scheme` and
    /// `edit` applied to the configuration (for what TOML sections here
    /// cannot say, such as `[server]` settings).
    pub async fn spawn_edited(
        github: GithubStandIn,
        scheme: &str,
        extra: &str,
        edit: impl FnOnce(&mut Config),
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let public_url = format!("{scheme}://{addr}");
        github.register_callback(&format!("{public_url}/auth/callback"));
        let mut config = config(&public_url, &github, extra);
        if !extra.contains("[limits]") {
            // Tests log in many people from one address; the limits have tests of their own.
            config.limits = LimitsConfig {
                login_per_minute: 0,
                auth_per_minute: 0,
            };
        }
        edit(&mut config);
        let url = format!("http://{addr}");
        let gateway = Gateway::start(config, listener)
            .await
            .expect("gateway starts");
        Self {
            gateway,
            github,
            url,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// A browser: keeps cookies, does not follow redirects (tests look at each hop).
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl Browser {
    pub fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { http, jar }
    }

    /// The session cookie's value as this browser holds it for `url`.
    pub fn session_cookie(&self, url: &str) -> Option<String> {
        let header = self.jar.cookies(&url.parse().unwrap())?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|c| c.strip_prefix("channelgate="))
            .map(str::to_owned)
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    /// Logs in as `login` at the gateway at `base`, whose GitHub is `github`
    /// (auto-consent), and returns the session cookie's value.
    pub async fn login_at(&self, base: &str, github: &GithubStandIn, login: &str) -> String {
        let start = self.get(&format!("{base}/auth/login")).await;
        github.set_auto_consent(Some(login));
        let consent = self.get(&location(&start)).await;
        let callback = self.get(&location(&consent)).await;
        assert_eq!(callback.status(), StatusCode::SEE_OTHER, "login as {login}");
        self.session_cookie(base).expect("a session cookie")
    }

    /// Starts a login at the gateway and returns the stand-in's authorize URL.
    pub async fn start_login(&self, app: &TestApp, return_to: Option<&str>) -> String {
        let mut url = reqwest::Url::parse(&app.url("/auth/login")).unwrap();
        if let Some(r) = return_to {
            url.query_pairs_mut().append_pair("return_to", r);
        }
        let response = self.get(url.as_str()).await;
        assert!(response.status().is_redirection(), "{}", response.status());
        location(&response)
    }

    /// Visits GitHub's authorize URL with auto-consent as `login` and returns
    /// the gateway callback URL GitHub redirects to.
    pub async fn consent(&self, app: &TestApp, authorize: &str, login: &str) -> String {
        app.github.set_auto_consent(Some(login));
        let response = self.get(authorize).await;
        assert_eq!(response.status(), StatusCode::FOUND, "authorize");
        location(&response)
    }

    /// The whole login as `login`; returns the callback's response.
    pub async fn login_as(
        &self,
        app: &TestApp,
        login: &str,
        return_to: Option<&str>,
    ) -> reqwest::Response {
        let authorize = self.start_login(app, return_to).await;
        let callback = self.consent(app, &authorize, login).await;
        self.get(&callback).await
    }

    /// Logs in and checks the login succeeded.
    pub async fn logged_in_as(app: &TestApp, login: &str) -> Self {
        let browser = Self::new();
        let response = browser.login_as(app, login, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "login as {login}");
        browser
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn token_calls(app: &TestApp) -> u64 {
    app.github.calls(Endpoint::AccessToken)
}
