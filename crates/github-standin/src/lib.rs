//! A stand-in for GitHub over real HTTP, for tests and the `demo` command.
//!
//! [`GithubStandIn`] serves the parts of GitHub's OAuth web flow and REST API
//! that channelgate uses, from an in-memory [`World`] of people, organization
//! memberships and team memberships, so that integration tests and the demo run
//! without the internet. It behaves like real GitHub in the details a client
//! depends on: `302` redirects with `code`/`state` or `error=access_denied`,
//! token errors answered as HTTP **200** with an `error` field, single-use codes
//! that expire after ten minutes, PKCE (`S256` only), `401 Bad credentials`,
//! rate-limit headers, weak `ETag`s with `304 Not Modified`, and `Link`
//! pagination headers in GitHub's exact format.
//!
//! The URL layout is GitHub Enterprise Server's: web routes at the root of the
//! stand-in's base URL and API routes under `/api/v3`, so a gateway is
//! configured with `web_url = BASE` and `api_url = BASE/api/v3`
//! ([`GithubStandIn::web_url`], [`GithubStandIn::api_url`]).
//!
//! # Routes
//!
//! | Route | What it does |
//! | --- | --- |
//! | `GET /login/oauth/authorize` | checks `client_id`, `redirect_uri` and PKCE; redirects at once (auto-consent or deny switch) or shows a consent page listing every person of the world |
//! | `POST /login/oauth/authorize` | the consent page's form: `login=<person>` or `cancel`; answers the same redirects |
//! | `POST /login/oauth/access_token` | exchanges a code for a `gho_` token (with [`GithubStandIn::set_token_lifetime`], an expiring `ghu_` token and a `ghr_` refresh token); client credentials in the form body or HTTP Basic. With `grant_type=urn:ietf:params:oauth:grant-type:device_code`, polls a device code instead (no client secret); with `grant_type=refresh_token`, spends a refresh token for a new pair, killing the old pair at once (a spent, unknown, expired or revoked one: `bad_refresh_token`) |
//! | `POST /login/device/code` | starts the device flow: `device_code`, `user_code`, `verification_uri`, `expires_in`, `interval` |
//! | `GET /login/device` | the page where a person enters a user code and continues as someone of the world, or cancels |
//! | `POST /login/device` | its form (`user_code`, `login=<person>` or `cancel`) |
//! | `GET /api/v3/user` | the signed-in person |
//! | `GET /api/v3/user/memberships/orgs` | their organization memberships, `state=active\|pending` filter, paginated |
//! | `GET /api/v3/user/teams` | their teams, paginated |
//! | `DELETE /api/v3/applications/{client_id}/token` | the OAuth app (HTTP Basic) revokes one of its tokens (`{"access_token"}` in the body): `204`, the token then refused (`401`); a token it does not know or another app's credentials: `404`; no credentials: `401`. [`GithubStandIn::revoked_by_app`] counts the revocations |
//! | anything else under `/api/v3` | `404 {"message":"Not Found",...}` |
//! | `GET /admin` | not GitHub's: a demo and test page listing every person's memberships, with forms to change them and the last webhook deliveries |
//! | `POST /admin` | its forms (`action`, `login`, `org`, `slug`): makes the change through [`GithubStandIn::announce`], then `303` back to the page |
//!
//! API requests are handled in this order: the outage switch
//! ([`GithubStandIn::set_down`]), then the delay ([`GithubStandIn::set_delay`],
//! which applies to every response, web routes included), then the rate-limit
//! switches, then authentication, then the malformed-body switch, then the
//! normal answer (or `304` when `If-None-Match` matches its `ETag`).
//!
//! Switches and membership changes take effect on the next request. Every
//! request is counted per [`Endpoint`] (see [`GithubStandIn::calls`]). The
//! admin page is not GitHub's, so the switches leave it alone and it is not
//! counted.
//!
//! # Webhooks
//!
//! Membership changes come in two kinds. The switches
//! ([`GithubStandIn::set_org_state`], [`GithubStandIn::add_to_team`], ...)
//! are silent: they model changes GitHub makes without telling anyone.
//! [`GithubStandIn::announce`] makes a [`Change`] and, once a target is set
//! with [`GithubStandIn::set_webhook`], POSTs the webhook GitHub sends for
//! it (`organization`, `membership` or `github_app_authorization`), signed
//! with `X-Hub-Signature-256` ([`signature_256`]). The ids in payloads are
//! the ones the API answers with: [`UserRecord::id`], [`org_id`] and
//! [`team_id`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askama::Template;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use url::Url;

/// How long a refresh token stays valid (GitHub: about six months).
const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(15_897_600);
/// How long an authorization code stays valid (GitHub: ten minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// GitHub's hourly request budget per person (all their OAuth tokens).
const RATE_LIMIT: u64 = 5000;
/// GitHub's default `per_page`.
const DEFAULT_PER_PAGE: usize = 30;
/// GitHub's largest `per_page`.
const MAX_PER_PAGE: usize = 100;
/// Where GitHub points at in its REST error bodies.
const REST_DOCS: &str = "https://docs.github.com/rest";
/// Where GitHub points at in rate-limit error bodies.
const RATE_LIMIT_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
/// Where GitHub points at for authorization-request errors.
const AUTHORIZE_ERRORS: &str =
    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors";
/// Where GitHub points at for access-token-request errors.
const TOKEN_ERRORS: &str = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors";
/// The placeholder base URL until [`GithubStandIn::spawn`] or
/// [`GithubStandIn::set_base_url`] sets the real one.
const UNSET_BASE_URL: &str = "http://127.0.0.1";

/// A GitHub stand-in serving a [`World`] over HTTP; cheap to clone (all
/// clones share one state).
///
/// Start one with [`GithubStandIn::spawn`] (its own listener on
/// `127.0.0.1`), or build it with [`GithubStandIn::new`] and mount
/// [`GithubStandIn::router`] in another server, then tell it where it lives
/// with [`GithubStandIn::set_base_url`].
#[derive(Clone)]
pub struct GithubStandIn {
    inner: Arc<Inner>,
}

struct Inner {
    client_id: String,
    client_secret: String,
    state: Mutex<St>,
    /// The HTTP client of webhook deliveries, made on first use (or why it
    /// could not be).
    webhook_client: OnceLock<Result<reqwest::Client, String>>,
}

impl std::fmt::Debug for GithubStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubStandIn")
            .field("base_url", &self.base_url())
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

/// Answers that would leak a token to a client that followed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trap {
    /// Every authenticated API answer is a `302` to this URL.
    Redirect(String),
    /// List pages link `rel="next"` to this URL (another host).
    ForeignLink(String),
    /// List pages link `rel="next"` back to the page itself.
    LoopingLink,
    /// Every authenticated API answer is `200` with a 5 MiB body.
    OversizeBody,
}

/// Which API route a request was for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    User,
    Orgs,
    Teams,
    NotFound,
}

/// What the person did on the consent page (or the switches decide).
enum Choice {
    /// `GET`: the switches decide, else the consent page is shown.
    Switches,
    /// `POST` with `cancel`.
    Cancel,
    /// `POST` with `login`.
    Person(String),
}

impl GithubStandIn {
    /// A stand-in serving `world` to the single OAuth app `client_id` /
    /// `client_secret`. Its base URL is a placeholder until
    /// [`set_base_url`](Self::set_base_url) (use [`spawn`](Self::spawn) to
    /// serve it on its own port).
    pub fn new(world: World, client_id: &str, client_secret: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                client_id: client_id.to_owned(),
                client_secret: client_secret.to_owned(),
                state: Mutex::new(St::new(world)),
                webhook_client: OnceLock::new(),
            }),
        }
    }

    /// The stand-in's routes, with no fallback, to mount in another server at
    /// the root or nested under a prefix (then call
    /// [`set_base_url`](Self::set_base_url) with the URL of that prefix).
    pub fn router(&self) -> Router {
        routes().with_state(self.clone())
    }

    /// Starts a stand-in on `127.0.0.1` at a free port, served by a tokio task
    /// for as long as the runtime lives; its base URL is set to
    /// `http://127.0.0.1:PORT`. Unknown web paths answer a `404` page.
    pub async fn spawn(
        world: World,
        client_id: &str,
        client_secret: &str,
    ) -> std::io::Result<Self> {
        let standin = Self::new(world, client_id, client_secret);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        standin.set_base_url(&format!("http://{addr}"));
        let app = routes().fallback(web_not_found).with_state(standin.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "GitHub stand-in stopped serving");
            }
        });
        tracing::debug!(%addr, "GitHub stand-in listening");
        Ok(standin)
    }

    /// The URL the stand-in is reachable at, without a trailing slash, e.g.
    /// `http://127.0.0.1:PORT` (a placeholder until [`spawn`](Self::spawn) or
    /// [`set_base_url`](Self::set_base_url)).
    pub fn base_url(&self) -> String {
        self.lock().base_url.clone()
    }

    /// Registers a callback URL of the OAuth app: authorize redirects only
    /// to a registered one (as GitHub does), so register each gateway's
    /// `{public_url}/auth/callback`.
    ///
    /// # Panics
    /// If `url` is not an absolute URL.
    pub fn register_callback(&self, url: &str) {
        let url = Url::parse(url).expect("a callback URL is absolute");
        self.lock().callbacks.push(url);
    }

    /// Tells the stand-in where it is mounted (used in `Link` headers and API
    /// URLs in bodies); a trailing slash is dropped.
    pub fn set_base_url(&self, url: &str) {
        self.lock().base_url = url.trim_end_matches('/').to_owned();
    }

    /// The gateway's `web_url`: the same as [`base_url`](Self::base_url).
    pub fn web_url(&self) -> String {
        self.base_url()
    }

    /// The gateway's `api_url`: [`base_url`](Self::base_url) + `/api/v3`.
    pub fn api_url(&self) -> String {
        self.lock().api_url()
    }

    // -- internals ----------------------------------------------------------

    fn lock(&self) -> MutexGuard<'_, St> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `len` lowercase hex digits that nobody can guess (at most 64), from
    /// the operating system's randomness.
    fn random_hex(&self, len: usize) -> String {
        let mut out = hex::encode(rand::random::<[u8; 32]>());
        out.truncate(len);
        out
    }

    /// Counts the request, then waits out the delay switch.
    async fn arrive(&self, endpoint: Option<Endpoint>) {
        let delay = {
            let mut st = self.lock();
            if let Some(endpoint) = endpoint {
                *st.calls.entry(endpoint).or_default() += 1;
            }
            if !st.delay.is_zero() {
                st.in_delay += 1;
                st.most_in_delay = st.most_in_delay.max(st.in_delay);
            }
            st.delay
        };
        if !delay.is_zero() {
            /// Leaves the count however the wait ends (a client may hang up).
            struct Leave<'a>(&'a GithubStandIn);
            impl Drop for Leave<'_> {
                fn drop(&mut self) {
                    self.0.lock().in_delay -= 1;
                }
            }
            let _leave = Leave(self);
            tokio::time::sleep(delay).await;
        }
    }

    /// The common path of web routes: count, delay, outage page, else `f`.
    async fn web(&self, endpoint: Option<Endpoint>, f: impl FnOnce(&Self) -> Response) -> Response {
        self.arrive(endpoint).await;
        if self.lock().down {
            return message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unicorn! · GitHub",
                "No server is currently available to service your request.",
                "Sorry about that. Please try refreshing and contact us if the problem persists.",
                None,
            );
        }
        f(self)
    }
}

mod admin;
mod api;
mod db;
mod device;
mod oauth;
mod pages;
mod routes;
mod state;
mod switches;
mod util;
mod webhook;
mod world;

use db::{Budget, Db, Person};
use pages::*;
use routes::*;
use state::{Grant, RefreshToken, SignedIn, St, Token};
use util::*;
pub use webhook::{Change, Delivery, WebhookTarget, org_id, signature_256, team_id};
pub use world::{Endpoint, MembershipState, OrgMembership, TeamMembership, UserRecord, World};

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::redirect::Policy;

    const ID: &str = "Iv1.standin";
    const SECRET: &str = "s3cret:with&odd=chars";
    const CALLBACK: &str = "http://gateway.test/auth/callback?from=test";

    fn world() -> World {
        World::new()
            .user(1, "alice", Some("Alice <Liddell> & \"Co\""))
            .user(2, "bob", None)
            .org("alice", "wonderland", MembershipState::Active)
            .org("alice", "looking-glass", MembershipState::Pending)
            .org("bob", "wonderland", MembershipState::Active)
            .team("alice", "wonderland", "tea-party")
            .team("alice", "wonderland", "croquet")
            .team("alice", "looking-glass", "chess")
            .team("alice", "wonderland", "court")
            .team("alice", "wonderland", "garden")
    }

    async fn standin() -> GithubStandIn {
        let s = GithubStandIn::spawn(world(), ID, SECRET).await.unwrap();
        s.register_callback(CALLBACK);
        s
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap()
    }

    /// A PKCE verifier made from `seed` and its S256 challenge.
    fn pkce(seed: &str) -> (String, String) {
        let verifier = format!("{seed:-<50}");
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        (verifier, challenge)
    }

    fn location(r: &reqwest::Response) -> Url {
        let raw = r.headers()[reqwest::header::LOCATION].to_str().unwrap();
        Url::parse(raw).unwrap()
    }

    fn query_value(url: &Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    async fn authorize(s: &GithubStandIn, params: &[(&str, &str)]) -> reqwest::Response {
        http()
            .get(format!("{}/login/oauth/authorize", s.web_url()))
            .query(params)
            .send()
            .await
            .unwrap()
    }

    /// A code for `login` (by auto-consent), bound to `challenge`.
    async fn code_for(s: &GithubStandIn, login: &str, challenge: &str) -> String {
        s.set_auto_consent(Some(login));
        let r = authorize(
            s,
            &[
                ("client_id", ID),
                ("redirect_uri", CALLBACK),
                ("scope", "read:org"),
                ("state", "st"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
        assert_eq!(r.status(), 302);
        query_value(&location(&r), "code").expect("a code")
    }

    async fn exchange(s: &GithubStandIn, form: &[(&str, &str)]) -> Value {
        let r = http()
            .post(format!("{}/login/oauth/access_token", s.web_url()))
            .header("accept", "application/json")
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GitHub answers token errors with 200 too");
        r.json().await.unwrap()
    }

    async fn exchange_code(s: &GithubStandIn, code: &str, verifier: &str) -> Value {
        exchange(
            s,
            &[
                ("client_id", ID),
                ("client_secret", SECRET),
                ("code", code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", verifier),
                ("grant_type", "authorization_code"),
            ],
        )
        .await
    }

    async fn token_for(s: &GithubStandIn, login: &str) -> String {
        let (verifier, challenge) = pkce(login);
        let code = code_for(s, login, &challenge).await;
        let answer = exchange_code(s, &code, &verifier).await;
        answer["access_token"].as_str().unwrap().to_owned()
    }

    async fn refresh_with(s: &GithubStandIn, refresh_token: &str) -> Value {
        exchange(
            s,
            &[
                ("client_id", ID),
                ("client_secret", SECRET),
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    #[tokio::test]
    async fn expiring_tokens_refresh_once_into_a_new_pair_that_kills_the_old_one() {
        let s = standin().await;
        s.set_token_lifetime(Some(Duration::from_secs(28_800)));
        let (verifier, challenge) = pkce("alice");
        let code = code_for(&s, "alice", &challenge).await;
        let first = exchange_code(&s, &code, &verifier).await;
        let access = first["access_token"].as_str().unwrap().to_owned();
        let refresh = first["refresh_token"].as_str().unwrap().to_owned();
        assert!(access.starts_with("ghu_"), "{first}");
        assert!(refresh.starts_with("ghr_"), "{first}");
        assert_eq!(first["expires_in"], 28_800);
        assert_eq!(first["refresh_token_expires_in"], 15_897_600);
        assert_eq!(api_get(&s, &access, "/user").await.status(), 200);

        s.advance_clock(Duration::from_secs(28_800));
        assert_eq!(
            api_get(&s, &access, "/user").await.status(),
            401,
            "an expired token is refused"
        );

        let second = refresh_with(&s, &refresh).await;
        let new_access = second["access_token"].as_str().unwrap().to_owned();
        let new_refresh = second["refresh_token"].as_str().unwrap().to_owned();
        assert!(new_access.starts_with("ghu_") && new_access != access);
        assert!(new_refresh.starts_with("ghr_") && new_refresh != refresh);
        assert_eq!(api_get(&s, &new_access, "/user").await.status(), 200);
        assert_eq!(s.refreshes(), 1);

        let reused = refresh_with(&s, &refresh).await;
        assert_eq!(reused["error"], "bad_refresh_token", "{reused}");
        assert!(reused.get("access_token").is_none());
        assert_eq!(s.refreshes(), 2, "every refresh request is counted");

        // A refresh before expiry kills the access token issued with it.
        let third = refresh_with(&s, &new_refresh).await;
        assert!(third["access_token"].as_str().unwrap().starts_with("ghu_"));
        assert_eq!(api_get(&s, &new_access, "/user").await.status(), 401);

        // A revocation kills the refresh token too.
        s.revoke_tokens("alice");
        let revoked = refresh_with(&s, third["refresh_token"].as_str().unwrap()).await;
        assert_eq!(revoked["error"], "bad_refresh_token");
    }

    #[tokio::test]
    async fn tokens_without_a_lifetime_carry_no_refresh_token_and_never_expire() {
        let s = standin().await;
        let (verifier, challenge) = pkce("alice");
        let code = code_for(&s, "alice", &challenge).await;
        let answer = exchange_code(&s, &code, &verifier).await;
        assert!(answer["access_token"].as_str().unwrap().starts_with("gho_"));
        assert!(answer.get("refresh_token").is_none() && answer.get("expires_in").is_none());
        s.advance_clock(Duration::from_secs(10 * 365 * 86_400));
        let token = answer["access_token"].as_str().unwrap();
        assert_eq!(api_get(&s, token, "/user").await.status(), 200);
    }

    async fn api_get(s: &GithubStandIn, token: &str, path: &str) -> reqwest::Response {
        http()
            .get(format!("{}{path}", s.api_url()))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
    }

    fn header(r: &reqwest::Response, name: &str) -> String {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_authorize_and_token_flow_with_pkce_signs_the_person_in() {
        let s = standin().await;
        assert_eq!(s.api_url(), format!("{}/api/v3", s.web_url()));
        let (verifier, challenge) = pkce("flow");
        s.set_auto_consent(Some("alice"));
        let r = authorize(
            &s,
            &[
                ("client_id", ID),
                ("redirect_uri", CALLBACK),
                ("scope", "read:org"),
                ("state", "xyz 1/2"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
        assert_eq!(r.status(), 302);
        let to = location(&r);
        assert!(
            to.as_str().starts_with(&format!("{CALLBACK}&code=")),
            "{to}"
        );
        assert_eq!(query_value(&to, "from").as_deref(), Some("test"));
        assert_eq!(query_value(&to, "state").as_deref(), Some("xyz 1/2"));
        let code = query_value(&to, "code").unwrap();

        let answer = exchange_code(&s, &code, &verifier).await;
        let token = answer["access_token"].as_str().unwrap();
        assert!(token.starts_with("gho_") && token.len() == 40, "{token}");
        assert_eq!(answer["token_type"], "bearer");
        assert_eq!(answer["scope"], "read:org");
        assert_eq!(s.issued_tokens(), 1);

        let r = api_get(&s, token, "/user").await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "content-type"),
            "application/json; charset=utf-8"
        );
        assert!(header(&r, "etag").starts_with("W/\""));
        let user: Value = r.json().await.unwrap();
        assert_eq!(user["login"], "alice");
        assert_eq!(user["id"], 1);
        assert_eq!(user["name"], "Alice <Liddell> & \"Co\"");
        assert_eq!(user["type"], "User");
        assert_eq!(user["node_id"], "MDQ6VXNlcjE=");

        let bob = token_for(&s, "bob").await;
        let user: Value = api_get(&s, &bob, "/user").await.json().await.unwrap();
        assert_eq!(user["login"], "bob");
        assert_eq!(user["name"], Value::Null);
        assert_ne!(bob, token, "tokens are unique");
    }

    #[tokio::test]
    async fn a_code_can_be_exchanged_only_once() {
        let s = standin().await;
        let (verifier, challenge) = pkce("once");
        let code = code_for(&s, "alice", &challenge).await;
        assert!(exchange_code(&s, &code, &verifier).await["access_token"].is_string());
        let again = exchange_code(&s, &code, &verifier).await;
        assert_eq!(again["error"], "bad_verification_code");
        assert_eq!(
            again["error_description"],
            "The code passed is incorrect or expired."
        );
        assert_eq!(
            exchange_code(&s, "not-a-code", &verifier).await["error"],
            "bad_verification_code"
        );
        assert_eq!(s.issued_tokens(), 1);
    }

    /// `POST /login/device/code`: GitHub's answer.
    async fn device_code(s: &GithubStandIn) -> Value {
        http()
            .post(format!("{}/login/device/code", s.web_url()))
            .header("accept", "application/json")
            .form(&[("client_id", ID), ("scope", "read:org")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn poll_device(s: &GithubStandIn, client_id: &str, device_code: &Value) -> Value {
        exchange(
            s,
            &[
                ("client_id", client_id),
                ("device_code", device_code.as_str().unwrap()),
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ],
        )
        .await
    }

    #[tokio::test]
    async fn the_device_flow_answers_as_github_does() {
        let s = standin().await;
        s.set_device_timing(Duration::from_secs(900), 1);
        let slow = device_code(&s).await;
        assert_eq!(slow["interval"], 1);
        assert_eq!(slow["expires_in"], 900);
        assert_eq!(
            slow["verification_uri"],
            format!("{}/login/device", s.web_url())
        );
        let code = &slow["device_code"];
        assert_eq!(
            poll_device(&s, ID, code).await["error"],
            "authorization_pending"
        );
        let fast = poll_device(&s, ID, code).await;
        assert_eq!(fast["error"], "slow_down");
        assert_eq!(fast["interval"], 6, "5 seconds more each time");
        assert_eq!(
            poll_device(&s, "someone-else", code).await["error"],
            "incorrect_client_credentials"
        );

        s.set_device_timing(Duration::from_secs(900), 0);
        let started = device_code(&s).await;
        let user_code = started["user_code"].as_str().unwrap();
        assert!(
            user_code.len() == 9 && user_code.as_bytes()[4] == b'-',
            "{user_code}"
        );
        assert!(!s.approve_device("BCDF-GHJK", "alice"), "no such code");
        // As a person types it: any case, with or without the dash.
        assert!(s.approve_device(&user_code.to_lowercase().replace('-', ""), "alice"));
        assert!(!s.deny_device(user_code), "decided already");
        let token = poll_device(&s, ID, &started["device_code"]).await;
        assert!(
            token["access_token"].as_str().unwrap().starts_with("gho_"),
            "{token}"
        );
        let again = poll_device(&s, ID, &started["device_code"]).await;
        assert_eq!(again["error"], "incorrect_device_code", "spent");
    }

    #[tokio::test]
    async fn a_wrong_or_missing_code_verifier_is_refused() {
        let s = standin().await;
        let (_, challenge) = pkce("right");
        let (wrong, _) = pkce("wrong");
        let code = code_for(&s, "alice", &challenge).await;
        let answer = exchange_code(&s, &code, &wrong).await;
        assert_eq!(answer["error"], "invalid_grant");
        assert!(answer.get("access_token").is_none());

        let code = code_for(&s, "alice", &challenge).await;
        let answer = exchange(
            &s,
            &[
                ("client_id", ID),
                ("client_secret", SECRET),
                ("code", &code),
            ],
        )
        .await;
        assert_eq!(answer["error"], "invalid_grant");
        assert_eq!(s.issued_tokens(), 0);
    }

    #[tokio::test]
    async fn client_credentials_may_come_as_basic_auth_and_are_checked() {
        let s = standin().await;
        let (verifier, challenge) = pkce("basic");
        let code = code_for(&s, "alice", &challenge).await;
        // As the oauth2 crate does: each half form-urlencoded, then Basic.
        let encode =
            |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let r = http()
            .post(format!("{}/login/oauth/access_token", s.web_url()))
            .basic_auth(encode(ID), Some(encode(SECRET)))
            .form(&[
                ("code", code.as_str()),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            .unwrap();
        let answer: Value = r.json().await.unwrap();
        assert!(answer["access_token"].is_string(), "{answer}");

        let code = code_for(&s, "alice", &challenge).await;
        let answer = exchange(
            &s,
            &[
                ("client_id", ID),
                ("client_secret", "wrong"),
                ("code", &code),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        assert_eq!(answer["error"], "incorrect_client_credentials");

        let answer = exchange(
            &s,
            &[
                ("client_id", ID),
                ("client_secret", SECRET),
                ("code", &code),
                ("redirect_uri", "http://elsewhere.test/cb"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        assert_eq!(answer["error"], "redirect_uri_mismatch");
    }

    #[tokio::test]
    async fn the_consent_page_lists_everyone_escaped_and_posts_a_choice() {
        let s = standin().await;
        let (verifier, challenge) = pkce("consent");
        let r = authorize(
            &s,
            &[
                ("client_id", ID),
                ("redirect_uri", CALLBACK),
                ("scope", "read:org"),
                ("state", "\"><script>"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
        assert_eq!(r.status(), 200);
        assert!(header(&r, "content-type").starts_with("text/html"));
        let page = r.text().await.unwrap();
        assert!(page.contains("Authorize"));
        assert!(page.contains("value=\"alice\""));
        assert!(page.contains("value=\"bob\""));
        assert!(
            page.contains("Alice &#60;Liddell&#62; &#38; &#34;Co&#34;"),
            "{page}"
        );
        assert!(
            page.contains("value=\"&#34;&#62;&#60;script&#62;\""),
            "{page}"
        );
        assert!(!page.contains("<script>"));
        assert!(page.contains("name=\"cancel\""));

        let r = http()
            .post(format!("{}/login/oauth/authorize", s.web_url()))
            .form(&[
                ("client_id", ID),
                ("redirect_uri", CALLBACK),
                ("scope", "read:org"),
                ("state", "\"><script>"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("login", "bob"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        let to = location(&r);
        assert_eq!(query_value(&to, "state").as_deref(), Some("\"><script>"));
        let code = query_value(&to, "code").unwrap();
        let token = exchange_code(&s, &code, &verifier).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let user: Value = api_get(&s, &token, "/user").await.json().await.unwrap();
        assert_eq!(user["login"], "bob");
    }

    #[tokio::test]
    async fn cancel_and_the_deny_switch_redirect_with_access_denied() {
        let s = standin().await;
        let form = [
            ("client_id", ID),
            ("redirect_uri", CALLBACK),
            ("state", "st"),
            ("cancel", "1"),
        ];
        let r = http()
            .post(format!("{}/login/oauth/authorize", s.web_url()))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        let to = location(&r);
        assert_eq!(query_value(&to, "error").as_deref(), Some("access_denied"));
        assert_eq!(
            query_value(&to, "error_description").as_deref(),
            Some("The user has denied your application access.")
        );
        assert!(query_value(&to, "error_uri").is_some());
        assert_eq!(query_value(&to, "state").as_deref(), Some("st"));
        assert!(
            to.as_str()
                .contains("error_description=The+user+has+denied")
        );

        s.set_auto_consent(Some("alice"));
        s.set_deny_consent(true);
        let r = authorize(
            &s,
            &[
                ("client_id", ID),
                ("redirect_uri", CALLBACK),
                ("state", "st"),
            ],
        )
        .await;
        assert_eq!(r.status(), 302);
        let to = location(&r);
        assert_eq!(query_value(&to, "error").as_deref(), Some("access_denied"));
        assert_eq!(query_value(&to, "code"), None);
    }

    #[tokio::test]
    async fn unknown_clients_and_plain_pkce_are_refused() {
        let s = standin().await;
        s.set_auto_consent(Some("alice"));
        let r = authorize(
            &s,
            &[("client_id", "someone-else"), ("redirect_uri", CALLBACK)],
        )
        .await;
        assert_eq!(r.status(), 404);

        let r = authorize(
            &s,
            &[
                ("client_id", ID),
                ("redirect_uri", CALLBACK),
                (
                    "code_challenge",
                    "plain-challenge-plain-challenge-plain-chall",
                ),
                ("code_challenge_method", "plain"),
            ],
        )
        .await;
        assert_eq!(r.status(), 302);
        assert_eq!(
            query_value(&location(&r), "error").as_deref(),
            Some("invalid_request")
        );

        s.set_auto_consent(Some("nobody"));
        let r = authorize(&s, &[("client_id", ID), ("redirect_uri", CALLBACK)]).await;
        assert_eq!(r.status(), 422);
    }

    #[tokio::test]
    async fn teams_are_paginated_across_three_pages_with_github_link_headers() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        s.set_page_size_cap(Some(2));
        let api = s.api_url();
        let page = |n: usize| format!("{api}/user/teams?per_page=100&page={n}");

        let r = api_get(&s, &token, "/user/teams?per_page=100").await;
        assert_eq!(
            header(&r, "link"),
            format!("<{}>; rel=\"next\", <{}>; rel=\"last\"", page(2), page(3))
        );
        let mut slugs = Vec::new();
        let first: Vec<Value> = r.json().await.unwrap();
        slugs.extend(first.iter().map(|t| t["slug"].as_str().unwrap().to_owned()));

        let r = api_get(&s, &token, "/user/teams?per_page=100&page=2").await;
        assert_eq!(
            header(&r, "link"),
            format!(
                "<{}>; rel=\"prev\", <{}>; rel=\"next\", <{}>; rel=\"last\", <{}>; rel=\"first\"",
                page(1),
                page(3),
                page(3),
                page(1)
            )
        );
        let second: Vec<Value> = r.json().await.unwrap();
        slugs.extend(
            second
                .iter()
                .map(|t| t["slug"].as_str().unwrap().to_owned()),
        );

        let r = api_get(&s, &token, "/user/teams?per_page=100&page=3").await;
        assert_eq!(
            header(&r, "link"),
            format!("<{}>; rel=\"prev\", <{}>; rel=\"first\"", page(2), page(1))
        );
        let third: Vec<Value> = r.json().await.unwrap();
        slugs.extend(third.iter().map(|t| t["slug"].as_str().unwrap().to_owned()));

        assert_eq!(slugs, ["tea-party", "croquet", "chess", "court", "garden"]);
        assert_eq!(second[1]["name"], "Court");
        assert_eq!(third[0]["organization"]["login"], "wonderland");
        assert_eq!(first[0]["privacy"], "closed");
        assert_eq!(s.calls(Endpoint::Teams), 3);

        // Without the cap and without per_page, GitHub's default of 30 fits all.
        s.set_page_size_cap(None);
        let r = api_get(&s, &token, "/user/teams").await;
        assert_eq!(header(&r, "link"), "");
        assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 5);
    }

    #[tokio::test]
    async fn endless_pagination_always_links_to_a_next_page() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        s.set_endless_pagination(true);
        let r = api_get(&s, &token, "/user/teams?per_page=100&page=7").await;
        let link = header(&r, "link");
        assert!(
            link.contains(&format!(
                "<{}/user/teams?per_page=100&page=8>; rel=\"next\"",
                s.api_url()
            )),
            "{link}"
        );
        assert!(!link.contains("rel=\"last\""));
        assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 5);
    }

    #[tokio::test]
    async fn an_unchanged_list_answers_304_to_its_etag_until_it_changes() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        let path = format!("{}/user/memberships/orgs", s.api_url());
        let r = api_get(&s, &token, "/user/memberships/orgs").await;
        let etag = header(&r, "etag");
        let used = header(&r, "x-ratelimit-used");
        let orgs: Vec<Value> = r.json().await.unwrap();
        assert_eq!(orgs.len(), 2);
        assert_eq!(orgs[0]["organization"]["login"], "wonderland");
        assert_eq!(orgs[0]["state"], "active");
        assert_eq!(orgs[1]["state"], "pending");

        let r = http()
            .get(&path)
            .header("authorization", format!("token {token}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        assert_eq!(header(&r, "etag"), etag);
        assert_eq!(header(&r, "x-ratelimit-used"), used, "a 304 is free");
        assert!(r.bytes().await.unwrap().is_empty());
        assert_eq!(s.calls(Endpoint::OrgMemberships), 2);
        assert_eq!(s.not_modified(Endpoint::OrgMemberships), 1);

        s.set_org_state("alice", "looking-glass", Some(MembershipState::Active));
        let r = http()
            .get(&path)
            .bearer_auth(&token)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_ne!(header(&r, "etag"), etag);
        assert_eq!(s.not_modified(Endpoint::OrgMemberships), 1);

        let before = header(&api_get(&s, &token, "/user/teams").await, "etag");
        s.remove_from_team("alice", "wonderland", "court");
        let after = header(&api_get(&s, &token, "/user/teams").await, "etag");
        assert_ne!(before, after);
    }

    #[tokio::test]
    async fn org_memberships_are_filtered_by_state() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        let r = api_get(&s, &token, "/user/memberships/orgs?state=pending").await;
        let orgs: Vec<Value> = r.json().await.unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0]["organization"]["login"], "looking-glass");
        assert_eq!(orgs[0]["user"]["login"], "alice");

        s.set_org_state("alice", "looking-glass", None);
        let r = api_get(&s, &token, "/user/memberships/orgs?state=pending").await;
        assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 0);

        let r = api_get(&s, &token, "/user/memberships/orgs?state=bogus").await;
        assert_eq!(r.status(), 422);
    }

    #[tokio::test]
    async fn revoked_and_missing_tokens_get_bad_credentials() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        assert_eq!(api_get(&s, &token, "/user").await.status(), 200);
        s.revoke_tokens("alice");
        let r = api_get(&s, &token, "/user").await;
        assert_eq!(r.status(), 401);
        assert!(!header(&r, "x-ratelimit-limit").is_empty());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Bad credentials");
        assert!(body["documentation_url"].is_string());

        let r = http()
            .get(format!("{}/user/teams", s.api_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);

        let fresh = token_for(&s, "alice").await;
        assert_eq!(api_get(&s, &fresh, "/user").await.status(), 200);
    }

    #[tokio::test]
    async fn a_person_who_spent_their_budget_is_refused_and_nobody_else() {
        let s = standin().await;
        let alice = token_for(&s, "alice").await;
        let bob = token_for(&s, "bob").await;
        s.spend_rate_limit("alice");
        let r = api_get(&s, &alice, "/user").await;
        assert_eq!(r.status(), 403);
        assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
        assert!(header(&r, "x-ratelimit-reset").parse::<u64>().unwrap() > epoch_seconds());
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("API rate limit exceeded for user ID 1."),
            "{body}"
        );
        assert_eq!(api_get(&s, &bob, "/user").await.status(), 200);
    }

    #[tokio::test]
    async fn api_answers_carry_rate_limit_headers_and_the_switches_exhaust_them() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        let r = api_get(&s, &token, "/user").await;
        assert_eq!(header(&r, "x-ratelimit-limit"), "5000");
        assert_eq!(header(&r, "x-ratelimit-remaining"), "4999");
        assert_eq!(header(&r, "x-ratelimit-used"), "1");
        assert_eq!(header(&r, "x-ratelimit-resource"), "core");
        assert!(header(&r, "x-ratelimit-reset").parse::<u64>().unwrap() > epoch_seconds());

        s.set_rate_limited(Some(1_900_000_000));
        let r = api_get(&s, &token, "/user").await;
        assert_eq!(r.status(), 403);
        assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
        assert_eq!(header(&r, "x-ratelimit-used"), "5000");
        assert_eq!(header(&r, "x-ratelimit-reset"), "1900000000");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("API rate limit exceeded for user ID 1.")
        );
        assert_eq!(
            body["documentation_url"],
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
        );

        s.set_rate_limited(None);
        s.set_secondary_rate_limited(Some(30));
        let r = api_get(&s, &token, "/user").await;
        assert_eq!(r.status(), 429);
        assert_eq!(header(&r, "retry-after"), "30");

        s.set_secondary_rate_limited(None);
        assert_eq!(api_get(&s, &token, "/user").await.status(), 200);
    }

    #[tokio::test]
    async fn a_down_stand_in_answers_503_everywhere() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        s.set_down(true);
        let r = api_get(&s, &token, "/user/teams").await;
        assert_eq!(r.status(), 503);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Service Unavailable");

        let r = authorize(&s, &[("client_id", ID), ("redirect_uri", CALLBACK)]).await;
        assert_eq!(r.status(), 503);
        assert!(header(&r, "content-type").starts_with("text/html"));
        let r = http()
            .post(format!("{}/login/oauth/access_token", s.web_url()))
            .form(&[("code", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);

        s.set_down(false);
        assert_eq!(api_get(&s, &token, "/user/teams").await.status(), 200);
    }

    #[tokio::test]
    async fn the_malformed_switch_sends_a_body_that_is_not_json() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        s.set_malformed(true);
        for path in ["/user", "/user/teams", "/user/memberships/orgs"] {
            let r = api_get(&s, &token, path).await;
            assert_eq!(r.status(), 200);
            let text = r.text().await.unwrap();
            assert!(!text.is_empty());
            assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
        }
    }

    #[tokio::test]
    async fn the_delay_switch_slows_every_response() {
        let s = standin().await;
        s.set_delay(Duration::from_millis(150));
        let started = std::time::Instant::now();
        let r = http()
            .get(format!("{}/user", s.api_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn counters_count_every_request_per_endpoint_until_reset() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        assert_eq!(s.calls(Endpoint::Authorize), 1);
        assert_eq!(s.calls(Endpoint::AccessToken), 1);
        api_get(&s, &token, "/user").await;
        api_get(&s, "bogus", "/user").await;
        s.set_down(true);
        api_get(&s, &token, "/user/teams").await;
        s.set_down(false);
        assert_eq!(s.calls(Endpoint::User), 2);
        assert_eq!(s.calls(Endpoint::Teams), 1);
        assert_eq!(s.calls(Endpoint::OrgMemberships), 0);
        api_get(&s, &token, "/nothing/here").await;
        assert_eq!(s.calls(Endpoint::User), 2);

        s.reset_counters();
        for endpoint in [
            Endpoint::Authorize,
            Endpoint::AccessToken,
            Endpoint::User,
            Endpoint::OrgMemberships,
            Endpoint::Teams,
        ] {
            assert_eq!(s.calls(endpoint), 0);
            assert_eq!(s.not_modified(endpoint), 0);
        }
        assert_eq!(s.issued_tokens(), 1);
    }

    #[tokio::test]
    async fn unknown_api_paths_are_not_found_and_unknown_web_paths_too() {
        let s = standin().await;
        let token = token_for(&s, "alice").await;
        let r = api_get(&s, &token, "/repos/octo/hello").await;
        assert_eq!(r.status(), 404);
        assert_eq!(
            header(&r, "content-type"),
            "application/json; charset=utf-8"
        );
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Not Found");
        let r = http()
            .get(format!("{}/orgs/acme", s.api_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = http()
            .get(format!("{}/alice", s.web_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }

    #[tokio::test]
    async fn membership_changes_and_new_people_show_on_the_next_call() {
        let s = standin().await;
        s.add_user(UserRecord::new(3, "carol", Some("Carol")));
        s.add_to_team("carol", "wonderland", "garden");
        s.set_org_state("carol", "wonderland", Some(MembershipState::Pending));
        let token = token_for(&s, "carol").await;
        let teams: Vec<Value> = api_get(&s, &token, "/user/teams")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(teams.len(), 1);
        assert_eq!(teams[0]["slug"], "garden");
        let orgs: Vec<Value> = api_get(&s, &token, "/user/memberships/orgs?state=active")
            .await
            .json()
            .await
            .unwrap();
        assert!(orgs.is_empty());
        s.remove_from_team("carol", "wonderland", "garden");
        let teams: Vec<Value> = api_get(&s, &token, "/user/teams")
            .await
            .json()
            .await
            .unwrap();
        assert!(teams.is_empty());
    }

    #[tokio::test]
    async fn a_router_mounted_under_a_prefix_links_to_its_base_url() {
        let s = GithubStandIn::new(world(), ID, SECRET);
        s.register_callback(CALLBACK);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().nest("/github", s.router());
        tokio::spawn(async move { axum::serve(listener, app).await });
        s.set_base_url(&format!("http://{addr}/github/"));
        assert_eq!(s.api_url(), format!("http://{addr}/github/api/v3"));

        let token = token_for(&s, "alice").await;
        s.set_page_size_cap(Some(2));
        let r = api_get(&s, &token, "/user/teams").await;
        assert_eq!(r.status(), 200);
        assert!(
            header(&r, "link").starts_with(&format!(
                "<http://{addr}/github/api/v3/user/teams?page=2>; rel=\"next\""
            )),
            "{}",
            header(&r, "link")
        );
    }

    #[tokio::test]
    async fn a_world_of_a_hundred_thousand_people_answers_for_one_of_them() {
        let mut world = World::new();
        for i in 0..100_000u64 {
            let login = format!("person{i}");
            world = world
                .user(100_000 + i, &login, Some("Bench Person"))
                .org(&login, "acme", MembershipState::Active)
                .team(&login, "acme", "secret-agents");
        }
        assert_eq!(world.users.len(), 100_000);
        let s = GithubStandIn::spawn(world, ID, SECRET).await.unwrap();
        s.register_callback(CALLBACK);
        let token = token_for(&s, "Person77777").await;

        let user: Value = api_get(&s, &token, "/user").await.json().await.unwrap();
        assert_eq!(user["login"], "person77777");
        assert_eq!(user["id"], 177_777);
        let orgs: Vec<Value> = api_get(&s, &token, "/user/memberships/orgs?state=active")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0]["organization"]["login"], "acme");
        let teams: Vec<Value> = api_get(&s, &token, "/user/teams")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(teams.len(), 1);
        assert_eq!(teams[0]["slug"], "secret-agents");
        assert_eq!(teams[0]["members_count"], 100_000);

        s.remove_from_team("PERSON1", "ACME", "Secret-Agents");
        s.add_to_team("newcomer", "acme", "secret-agents");
        s.add_to_team("person2", "acme", "secret-agents");
        let teams: Vec<Value> = api_get(&s, &token, "/user/teams")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(teams[0]["members_count"], 100_000);
        s.set_org_state("person77777", "acme", Some(MembershipState::Pending));
        let orgs: Vec<Value> = api_get(&s, &token, "/user/memberships/orgs")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(orgs[0]["state"], "pending");
        s.revoke_tokens("person77777");
        assert_eq!(api_get(&s, &token, "/user").await.status(), 401);
    }

    #[tokio::test]
    async fn each_person_has_their_own_rate_limit_budget() {
        let s = standin().await;
        let alice = token_for(&s, "alice").await;
        let bob = token_for(&s, "bob").await;
        for _ in 0..3 {
            api_get(&s, &alice, "/user").await;
        }
        let r = api_get(&s, &alice, "/user").await;
        assert_eq!(header(&r, "x-ratelimit-used"), "4");
        assert_eq!(header(&r, "x-ratelimit-remaining"), "4996");
        let r = api_get(&s, &bob, "/user/teams").await;
        assert_eq!(header(&r, "x-ratelimit-used"), "1");
        assert_eq!(header(&r, "x-ratelimit-remaining"), "4999");
        // A second token of the same person shares the budget.
        let again = token_for(&s, "alice").await;
        let r = api_get(&s, &again, "/user").await;
        assert_eq!(header(&r, "x-ratelimit-used"), "5");
        // Requests without a valid token count against nobody's.
        let r = api_get(&s, "bogus", "/user").await;
        assert_eq!(r.status(), 401);
        assert_eq!(header(&r, "x-ratelimit-used"), "0");
        assert_eq!(header(&r, "x-ratelimit-limit"), "5000");
    }

    #[test]
    fn expired_and_exchanged_codes_are_forgotten() {
        let s = GithubStandIn::new(world(), ID, SECRET);
        let grant = |created| Grant {
            login: "alice".to_owned(),
            redirect_uri: CALLBACK.to_owned(),
            challenge: None,
            scopes: Vec::new(),
            created,
        };
        let mut st = s.lock();
        let now = Instant::now();
        if let Some(old) = now.checked_sub(CODE_LIFETIME + Duration::from_secs(1)) {
            st.add_code("old".to_owned(), grant(old));
            assert!(st.codes.contains_key("old"));
            // The next code (or exchange) forgets it.
            st.add_code("fresh".to_owned(), grant(now));
            assert!(!st.codes.contains_key("old"));
            assert!(st.codes.contains_key("fresh"));
            assert_eq!(st.code_order.len(), 1);
        }
        // Codes that were exchanged (removed from the map) leave the queue
        // too, long before they would have expired.
        for i in 0..1000 {
            let code = format!("c{i}");
            st.add_code(code.clone(), grant(now));
            st.codes.remove(&code);
        }
        assert!(st.code_order.len() <= 2 * st.codes.len() + 65);
    }

    #[test]
    fn the_world_builder_replaces_in_place_and_follows_edits_of_its_fields() {
        let mut w = World::new()
            .user(1, "alice", None)
            .user(2, "bob", None)
            .user(3, "ALICE", Some("Alice"))
            .org("alice", "acme", MembershipState::Pending)
            .org("Alice", "ACME", MembershipState::Active)
            .team("alice", "acme", "ops")
            .team("ALICE", "Acme", "OPS");
        assert_eq!(
            w.users.iter().map(|u| u.id).collect::<Vec<_>>(),
            [3, 2],
            "replaced where it was"
        );
        assert_eq!(w.orgs.len(), 1);
        assert_eq!(w.orgs[0].state, MembershipState::Active);
        assert_eq!(w.orgs[0].org, "acme");
        assert_eq!(w.teams.len(), 1);
        assert_eq!(
            w,
            World {
                users: w.users.clone(),
                orgs: w.orgs.clone(),
                teams: w.teams.clone(),
                ..World::default()
            }
        );
        assert!(format!("{w:?}").ends_with("slug: \"ops\" }] }"), "{w:?}");

        w.users.remove(0);
        w.teams[0].slug = "dev".to_owned();
        let w = w.user(4, "alice", None).team("alice", "acme", "ops");
        assert_eq!(w.users.iter().map(|u| u.id).collect::<Vec<_>>(), [2, 4]);
        assert_eq!(w.teams.len(), 2);
        let w = w.user(5, "Bob", None);
        assert_eq!(w.users.iter().map(|u| u.id).collect::<Vec<_>>(), [5, 4]);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(derived_id("org", "Acme"), derived_id("org", "acme"));
        assert_ne!(derived_id("org", "acme"), derived_id("org", "acme2"));
        assert_ne!(
            derived_id("team", "acme/ops"),
            derived_id("team", "acme/dev")
        );
    }

    #[test]
    fn form_components_decode_percent_escapes_and_plus() {
        assert_eq!(form_decode("a%3Ab+c%26d%3D"), "a:b c&d=");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz"), "%zz");
    }
}
