//! Spawning a gateway beside a GitHub stand-in, and a browser-like client.

use std::sync::Arc;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use channelgate::app::Gateway;
use channelgate::clock::Clock;
use channelgate::config::{
    Config, GithubConfig, LimitsConfig, PusherConfig, ServerConfig, SessionStore, WebhooksConfig,
};
use channelgate::rules::{Conditions, Pattern, Rule, RuleSet, TeamRef};
use channelgate::secret::Secret;
use github_standin::{Endpoint, GithubStandIn, MembershipState, World};
use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::LOCATION;
use serde_json::Value;
use tokio::net::TcpListener;

pub use crate::pusher_standin::PusherStandIn;

pub const CLIENT_ID: &str = "Iv1.test-client";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const PUSHER_KEY: &str = "278d425bdf160c739803";
pub const PUSHER_SECRET: &str = "7ad3773142a6692b25b8";
pub const MASTER_KEY_BASE64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// `[webhooks] secret` of the tests' gateways that take webhooks.
pub const WEBHOOK_SECRET: &str = "webhook-secret-of-the-tests-0123";
/// The session encryption key of every test gateway, so that gateways
/// sharing a SQLite or Redis store read each other's sessions.
pub const SESSION_KEY_BASE64: &str = "c2Vzc2lvbi1rZXktb2YtdGhlLXRlc3RzLTMyLWJ5dGVz";

/// The people of the README's worked examples, plus the repo config's team.
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

/// A rule, built in code.
pub fn rule(pattern: &str, orgs: &[&str], teams: &[&str], everyone: bool) -> Rule {
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
    Rule::new(
        Pattern::parse(pattern).unwrap(),
        Vec::new(),
        names(orgs),
        teams.iter().map(|t| TeamRef::parse(t).unwrap()).collect(),
        everyone,
    )
    .unwrap()
}

/// The tests' rules: the README's worked examples and an encrypted prefix.
pub fn rules() -> RuleSet {
    RuleSet::new(vec![
        rule("private-ops", &[], &["initech/ops"], false),
        rule("private-user-{login}", &[], &[], false),
        rule("presence-org-{org}", &[], &[], false),
        rule("private-team-{org}.{team}", &[], &[], false),
        rule("private-initech-*", &["initech"], &[], false),
        rule("private-encrypted-initech-*", &["initech"], &[], false),
        rule("private-lobby", &[], &[], true),
    ])
}

fn base64_bytes(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// The configuration of a test gateway at `public_url` using `github`:
/// built in code, with the limits off (tests log in many people from one
/// address; the limits have tests of their own).
pub fn config(listen: SocketAddr, public_url: &str, github: &GithubStandIn) -> Config {
    let mut pusher = PusherConfig::new("1234", PUSHER_KEY, Secret::new(PUSHER_SECRET.into()));
    let master: [u8; 32] = base64_bytes(MASTER_KEY_BASE64).try_into().unwrap();
    pusher.encryption_master_key = Some(Secret::new(master));
    let mut gh = GithubConfig::new(CLIENT_ID, Secret::new(CLIENT_SECRET.into()));
    gh.web_url = github.web_url();
    gh.api_url = github.api_url();
    let server = ServerConfig::new(listen, &public_url.parse().unwrap());
    let mut config = Config::new(server, pusher, gh);
    config.session.encryption_key = Some(Secret::new(base64_bytes(SESSION_KEY_BASE64)));
    config.limits = LimitsConfig {
        login_per_minute: 0,
        auth_per_minute: 0,
    };
    config.signin = Some(Conditions {
        orgs: vec!["initech".into()],
        ..Conditions::default()
    });
    config.rules = rules();
    config
}

/// A gateway and its GitHub stand-in, with the gateway's clock.
pub struct TestApp {
    pub gateway: Gateway,
    pub github: GithubStandIn,
    /// Where the gateway's Pusher HTTP API calls go.
    pub pusher: PusherStandIn,
    pub url: String,
    /// The clock of the gateway's TTLs and `session.max_age`.
    pub clock: Clock,
    /// Its `cache.membership_ttl`.
    pub membership_ttl: Duration,
}

/// How a [`TestApp`] is made: `TestApp::new().with_world(..).with_config(|c| ..).spawn()`.
#[must_use]
pub struct TestAppBuilder {
    world: Option<World>,
    github: Option<GithubStandIn>,
    pusher: Option<PusherStandIn>,
    scheme: &'static str,
    edits: Vec<ConfigEdit>,
    clock: Option<Clock>,
}

/// One change to the tests' configuration.
type ConfigEdit = Box<dyn FnOnce(&mut Config)>;

/// How many sessions the SQLite store at `db` holds, read beside the gateway.
pub async fn stored_sessions(db: &std::path::Path) -> i64 {
    let url = format!("sqlite://{}", db.display());
    let pool = tower_sessions_sqlx_store::sqlx::SqlitePool::connect(&url)
        .await
        .unwrap();
    let (rows,): (i64,) =
        tower_sessions_sqlx_store::sqlx::query_as("select count(*) from tower_sessions")
            .fetch_one(&pool)
            .await
            .unwrap();
    rows
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
    /// A gateway with its own stand-in of [`world`] and the tests' config,
    /// to adjust and then `spawn` (a builder, in the manner of the Rust
    /// registry's test harness).
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> TestAppBuilder {
        ask_every_log_line();
        TestAppBuilder {
            world: None,
            github: None,
            pusher: None,
            scheme: "http",
            edits: Vec::new(),
            clock: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Moves the gateway's clock just past the membership TTL: every
    /// cached membership is stale now, without waiting for it.
    pub fn pass_the_ttl(&self) {
        self.clock
            .advance(self.membership_ttl + Duration::from_secs(1));
    }

    /// What the metrics listener serves now (`server.metrics_listen` on).
    pub async fn scrape(&self) -> String {
        let addr = self.gateway.metrics_addr().expect("metrics are on");
        let response = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.text().await.unwrap()
    }

    /// The gateway's state.
    pub fn state(&self) -> &channelgate::web::AppState {
        self.gateway.state().expect("a TestApp owns its state")
    }

    /// Runs a pass of the live-grant sweep now and waits for all it
    /// started (re-reads, terminate calls): a tick without the wait.
    pub async fn sweep(&self) {
        self.state().revocation.sweep_now().await;
    }

    /// Waits until the background work in flight is done: the re-reads a
    /// webhook asked for, and the terminate calls they made.
    pub async fn settled(&self) {
        self.state().tasks.idle().await;
    }
}

impl TestAppBuilder {
    /// The stand-in's people.
    pub fn with_world(mut self, world: World) -> Self {
        self.world = Some(world);
        self
    }

    /// Shares a stand-in (several gateways, one GitHub).
    pub fn with_github(mut self, github: GithubStandIn) -> Self {
        self.github = Some(github);
        self
    }

    /// Shares a Pusher API stand-in (several gateways, one Pusher app).
    pub fn with_pusher(mut self, pusher: PusherStandIn) -> Self {
        self.pusher = Some(pusher);
        self
    }

    /// Turns on `POST /github/webhook` with [`WEBHOOK_SECRET`], and has the
    /// stand-in send its announced changes there.
    pub fn with_webhooks(self) -> Self {
        self.with_config(|c| {
            c.webhooks = Some(WebhooksConfig {
                secret: Secret::new(WEBHOOK_SECRET.to_owned()),
            });
        })
    }

    /// Runs on `clock` (a restart's new process, on the time its
    /// predecessor's clock had reached).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// `public_url` over https (the test still connects over http).
    pub fn https(mut self) -> Self {
        self.scheme = "https";
        self
    }

    /// Edits the configuration before the gateway starts.
    pub fn with_config(mut self, edit: impl FnOnce(&mut Config) + 'static) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    /// Keeps sessions in `store` (the tests' key encrypts them).
    pub fn with_store(self, store: &str) -> Self {
        let store = match store.strip_prefix("sqlite://") {
            Some(path) => SessionStore::Sqlite(path.into()),
            None => SessionStore::Redis(Secret::new(store.to_owned())),
        };
        self.with_config(move |c| c.session.store = store)
    }

    pub async fn spawn(self) -> TestApp {
        let github = match self.github {
            Some(github) => github,
            None => stand_in_with(self.world.unwrap_or_else(world)).await,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let public_url = format!("{}://{addr}", self.scheme);
        github.register_callback(&format!("{public_url}/auth/callback"));
        let pusher = match self.pusher {
            Some(pusher) => pusher,
            None => PusherStandIn::spawn().await,
        };
        let mut config = config(addr, &public_url, &github);
        // Never Pusher's real API: every terminate call goes to the stand-in.
        config.pusher.api_url = Some(pusher.url.clone());
        for edit in self.edits {
            edit(&mut config);
        }
        let clock = self.clock.unwrap_or_default();
        let membership_ttl = config.cache.membership_ttl;
        let takes_webhooks = config.webhooks.is_some();
        let gateway = Gateway::start_with(config, listener, clock.clone())
            .await
            .expect("gateway starts");
        if takes_webhooks {
            // GitHub's deliveries come here, as an org webhook would send them.
            github.set_webhook(Some(github_standin::WebhookTarget {
                url: format!("http://{addr}/github/webhook"),
                secret: WEBHOOK_SECRET.to_owned(),
            }));
        }
        TestApp {
            gateway,
            github,
            pusher,
            url: format!("http://{addr}"),
            clock,
            membership_ttl,
        }
    }
}

/// The socket id the tests' pusher-js would have.
pub const SOCKET: &str = "123456.7890";

/// A browser: keeps cookies, does not follow redirects (tests look at each hop).
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl Browser {
    pub fn new() -> Self {
        Self::sending(reqwest::header::HeaderMap::new())
    }

    /// A browser that sends `headers` with every request.
    fn sending(headers: reqwest::header::HeaderMap) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .default_headers(headers)
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

    /// `POST /auth/logout` on `app`, as the home page's button sends it.
    pub async fn log_out(&self, app: &TestApp) -> reqwest::Response {
        self.http
            .post(app.url("/auth/logout"))
            .send()
            .await
            .unwrap()
    }
}

/// The Pusher endpoints, called as pusher-js calls them.
impl Browser {
    /// Posts a form to `path`; returns the status and JSON body.
    pub async fn post_form(
        &self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(app.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// `POST /pusher/auth` for `channel` on [`SOCKET`], the whole response.
    pub async fn auth_request(&self, app: &TestApp, channel: &str) -> reqwest::Response {
        self.http
            .post(app.url("/pusher/auth"))
            .form(&[("socket_id", SOCKET), ("channel_name", channel)])
            .send()
            .await
            .unwrap()
    }

    /// `POST /pusher/auth` for `channel`: the status and JSON body.
    pub async fn auth(&self, app: &TestApp, channel: &str) -> (StatusCode, Value) {
        self.post_form(
            app,
            "/pusher/auth",
            &[("socket_id", SOCKET), ("channel_name", channel)],
        )
        .await
    }

    /// `POST /pusher/user-auth` (`pusher.signin()`): the status and JSON body.
    pub async fn sign_in(&self, app: &TestApp) -> (StatusCode, Value) {
        self.post_form(app, "/pusher/user-auth", &[("socket_id", SOCKET)])
            .await
    }
}

/// Tokens for apps and bots, as the home page's script manages them.
impl Browser {
    /// `POST /auth/tokens` with `name`, from the gateway's own page.
    pub async fn create_token(&self, app: &TestApp, name: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(app.url("/auth/tokens"))
            .header("origin", &app.url)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// A new token named `name`, as a [`Bot`] that sends it, and its id.
    pub async fn bot(&self, app: &TestApp, name: &str) -> (Bot, String) {
        let (status, body) = self.create_token(app, name).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            Bot::new(body["token"].as_str().unwrap()),
            body["id"].as_str().unwrap().to_owned(),
        )
    }

    /// `GET /auth/tokens`: the status and JSON body.
    pub async fn tokens(&self, app: &TestApp) -> (StatusCode, Value) {
        answer(self.get(&app.url("/auth/tokens")).await).await
    }

    /// `DELETE /auth/tokens/{id}` from the gateway's own page.
    pub async fn revoke_token(&self, app: &TestApp, id: &str) -> StatusCode {
        self.http
            .delete(app.url(&format!("/auth/tokens/{id}")))
            .header("origin", &app.url)
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// An app or bot: no cookies, a bearer token in every request. The Pusher
/// endpoints are called as [`Browser`] calls them (`auth`, `sign_in`,
/// `post_form`), the token going along instead of a cookie.
pub struct Bot {
    client: Browser,
    pub token: String,
}

impl std::ops::Deref for Bot {
    type Target = Browser;
    fn deref(&self) -> &Browser {
        &self.client
    }
}

impl Bot {
    pub fn new(token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        Self {
            client: Browser::sending(headers),
            token: token.to_owned(),
        }
    }

    /// A request to `url` that carries the token.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    /// `GET /auth/me`.
    pub async fn me(&self, app: &TestApp) -> (StatusCode, Value) {
        answer(self.get(&app.url("/auth/me")).await).await
    }

    /// `POST /auth/logout`: revokes the token.
    pub async fn log_out(&self, app: &TestApp) -> StatusCode {
        self.client.log_out(app).await.status()
    }
}

/// A response's status and JSON body (`null` when it has none).
pub async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A directory of this test process under the system's temp directory.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("channelgate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Two gateways on one GitHub and one shared session store.
pub async fn two_sharing(store: &str) -> (TestApp, TestApp) {
    let github = stand_in().await;
    let a = TestApp::new()
        .with_github(github.clone())
        .with_store(store)
        .spawn()
        .await;
    let b = TestApp::new()
        .with_github(github)
        .with_store(store)
        .spawn()
        .await;
    (a, b)
}

/// Three gateways on one GitHub, one Pusher app and one shared store, each
/// configured by `edit`: a fleet behind a balancer.
pub async fn three_sharing(
    store: &str,
    edit: impl Fn(&mut Config) + Clone + 'static,
) -> [TestApp; 3] {
    let first = TestApp::new()
        .with_store(store)
        .with_config(edit.clone())
        .spawn()
        .await;
    let mut others = Vec::new();
    for _ in 0..2 {
        others.push(
            TestApp::new()
                .with_github(first.github.clone())
                .with_pusher(first.pusher.clone())
                .with_store(store)
                .with_config(edit.clone())
                .spawn()
                .await,
        );
    }
    let [second, third]: [TestApp; 2] = others.try_into().ok().expect("two more");
    [first, second, third]
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

/// A log writer the test can read back.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The value of the series `series` (name and labels) in a scrape, 0 when
/// it is not there yet.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A global subscriber that keeps nothing but makes tracing ask the
/// thread's own subscriber about every log line, every time.
///
/// Tests capture logs with a subscriber of their thread. tracing caches, per
/// log line, whether any subscriber wants it; when another test's thread
/// (with no subscriber) reaches a line first while this test's subscriber
/// is being registered, the line can be cached as wanted by nobody and is
/// then lost to the capture. With this global subscriber answering
/// "sometimes" for every line, nothing is cached as "never".
pub fn ask_every_log_line() {
    struct AskEveryTime;
    impl tracing::Subscriber for AskEveryTime {
        fn register_callsite(
            &self,
            _: &'static tracing::Metadata<'static>,
        ) -> tracing::subscriber::Interest {
            tracing::subscriber::Interest::sometimes()
        }
        fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
            Some(tracing::level_filters::LevelFilter::TRACE)
        }
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(AskEveryTime);
    });
}

/// Captures this thread's log at info, as text, until the guard drops.
/// A `#[tokio::test]` runtime has one thread, so the gateway it starts logs
/// through it.
pub fn capture_info_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    ask_every_log_line();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// Captures this thread's log at `level`, as JSON lines with each line's
/// spans (the request id among them), until the guard drops.
pub fn capture_json_logs(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    ask_every_log_line();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .with_max_level(level)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A `redis-server` of this test's own, on a free port, so stopping it
/// disturbs no other test.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    /// A server keeping nothing on disk.
    pub fn start(port: u16) -> Self {
        Self::start_in(port, None)
    }

    /// A server whose append-only file lives in `dir` (`None`: nothing on
    /// disk), so a restart in the same `dir` keeps its data.
    pub fn start_in(port: u16, dir: Option<&std::path::Path>) -> Self {
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
        ];
        match dir {
            Some(dir) => args.extend([
                "--appendonly".into(),
                "yes".into(),
                "--appendfsync".into(),
                "always".into(),
                "--dir".into(),
                dir.display().to_string(),
            ]),
            None => args.extend(["--appendonly".into(), "no".into()]),
        }
        let child = std::process::Command::new("redis-server")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port,
            child: Some(child),
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
