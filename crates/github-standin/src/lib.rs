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
//! | `POST /login/oauth/access_token` | exchanges a code for a `gho_` token; client credentials in the form body or HTTP Basic |
//! | `GET /api/v3/user` | the signed-in person |
//! | `GET /api/v3/user/memberships/orgs` | their organization memberships, `state=active\|pending` filter, paginated |
//! | `GET /api/v3/user/teams` | their teams, paginated |
//! | anything else under `/api/v3` | `404 {"message":"Not Found",...}` |
//!
//! API requests are handled in this order: the outage switch
//! ([`GithubStandIn::set_down`]), then the delay ([`GithubStandIn::set_delay`],
//! which applies to every response, web routes included), then the rate-limit
//! switches, then authentication, then the malformed-body switch, then the
//! normal answer (or `304` when `If-None-Match` matches its `ETag`).
//!
//! Switches and membership changes take effect on the next request. Every
//! request is counted per [`Endpoint`] (see [`GithubStandIn::calls`]).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
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

// ---------------------------------------------------------------------------
// The data set
// ---------------------------------------------------------------------------

/// The in-memory data set the stand-in answers from: people, their
/// organization memberships and their team memberships.
///
/// Build it with the chained helpers:
/// `World::new().user(1, "alice", Some("Alice")).org("alice", "acme", MembershipState::Active).team("alice", "acme", "ops")`.
/// Each helper finds what it replaces through an index, so building a world
/// of a hundred thousand people takes a moment, not minutes. The fields may
/// be read and edited directly too (start from [`World::new`] or
/// [`Default`]).
///
/// Logins, organization names and team slugs are compared case-insensitively,
/// as on GitHub; answers use the spelling stored here.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct World {
    /// The people who exist (and who can be chosen on the consent page).
    pub users: Vec<UserRecord>,
    /// Organization memberships, in the order the API lists them.
    pub orgs: Vec<OrgMembership>,
    /// Team memberships, in the order the API lists them.
    pub teams: Vec<TeamMembership>,
    /// Where the builder helpers find existing entries; not part of the
    /// world's value (equal in every world, not shown by `Debug`).
    index: BuilderIndex,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("users", &self.users)
            .field("orgs", &self.orgs)
            .field("teams", &self.teams)
            .finish()
    }
}

impl World {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a person with the default avatar URL for `id` (replacing any
    /// person with the same login).
    pub fn user(self, id: u64, login: &str, name: Option<&str>) -> Self {
        self.with_user(UserRecord::new(id, login, name))
    }

    /// Adds a fully specified person (replacing any person with the same login).
    pub fn with_user(mut self, user: UserRecord) -> Self {
        let key = user.login.to_ascii_lowercase();
        match self.index.users.find(&self.users, &key, user_key) {
            Some(i) => self.users[i] = user,
            None => {
                self.index.users.pushed(key, self.users.len());
                self.users.push(user);
            }
        }
        self
    }

    /// Makes `login` a member of `org` in `state` (replacing an earlier state).
    pub fn org(mut self, login: &str, org: &str, state: MembershipState) -> Self {
        let key = (login.to_ascii_lowercase(), org.to_ascii_lowercase());
        match self.index.orgs.find(&self.orgs, &key, org_key) {
            Some(i) => self.orgs[i].state = state,
            None => {
                self.index.orgs.pushed(key, self.orgs.len());
                self.orgs.push(OrgMembership {
                    login: login.to_owned(),
                    org: org.to_owned(),
                    state,
                });
            }
        }
        self
    }

    /// Puts `login` in team `slug` of `org` (a no-op when already there).
    pub fn team(mut self, login: &str, org: &str, slug: &str) -> Self {
        let key = (
            login.to_ascii_lowercase(),
            org.to_ascii_lowercase(),
            slug.to_ascii_lowercase(),
        );
        if self.index.teams.find(&self.teams, &key, team_key).is_none() {
            self.index.teams.pushed(key, self.teams.len());
            self.teams.push(TeamMembership {
                login: login.to_owned(),
                org: org.to_owned(),
                slug: slug.to_owned(),
            });
        }
        self
    }
}

fn user_key(u: &UserRecord) -> String {
    u.login.to_ascii_lowercase()
}

fn org_key(m: &OrgMembership) -> (String, String) {
    (m.login.to_ascii_lowercase(), m.org.to_ascii_lowercase())
}

fn team_key(t: &TeamMembership) -> (String, String, String) {
    (
        t.login.to_ascii_lowercase(),
        t.org.to_ascii_lowercase(),
        t.slug.to_ascii_lowercase(),
    )
}

/// The [`World`] builder's index of its three lists.
#[derive(Clone, Default)]
struct BuilderIndex {
    users: Positions<String>,
    orgs: Positions<(String, String)>,
    teams: Positions<(String, String, String)>,
}

impl PartialEq for BuilderIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for BuilderIndex {}

/// The first position of each key in a list, learnt as the list grows.
///
/// The list is a public field that may change behind the index's back, so
/// entries appended since the last look are indexed on the next one, a list
/// that shrank is indexed again, and a position whose entry no longer has
/// the key (edited in place) makes the whole index be built again.
#[derive(Clone)]
struct Positions<K> {
    first: HashMap<K, usize>,
    /// How many entries of the list are indexed.
    seen: usize,
}

impl<K> Default for Positions<K> {
    fn default() -> Self {
        Self {
            first: HashMap::new(),
            seen: 0,
        }
    }
}

impl<K: Eq + Hash> Positions<K> {
    /// The position of the first entry of `items` with `key`.
    fn find<T>(&mut self, items: &[T], key: &K, key_of: fn(&T) -> K) -> Option<usize> {
        for _ in 0..2 {
            if self.seen > items.len() {
                self.first.clear();
                self.seen = 0;
            }
            for (i, item) in items.iter().enumerate().skip(self.seen) {
                self.first.entry(key_of(item)).or_insert(i);
            }
            self.seen = items.len();
            match self.first.get(key) {
                None => return None,
                Some(&i) if key_of(&items[i]) == *key => return Some(i),
                Some(_) => {
                    self.first.clear();
                    self.seen = 0;
                }
            }
        }
        None
    }

    /// Learns that an entry with `key` (not in the list) is being appended
    /// at `at`, unless entries before it are yet to be indexed.
    fn pushed(&mut self, key: K, at: usize) {
        if self.seen == at {
            self.first.insert(key, at);
            self.seen = at + 1;
        }
    }
}

/// A person on the stand-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecord {
    /// GitHub's numeric user id.
    pub id: u64,
    /// The login (user name).
    pub login: String,
    /// The display name; `null` in the API when absent.
    pub name: Option<String>,
    /// The avatar image URL.
    pub avatar_url: String,
}

impl UserRecord {
    /// A person with GitHub's usual avatar URL for `id`
    /// (`https://avatars.githubusercontent.com/u/ID?v=4`).
    pub fn new(id: u64, login: &str, name: Option<&str>) -> Self {
        Self {
            id,
            login: login.to_owned(),
            name: name.map(str::to_owned),
            avatar_url: format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        }
    }
}

/// The state of an organization membership, as GitHub reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MembershipState {
    /// A full member (`"active"`).
    Active,
    /// Invited but not yet accepted (`"pending"`).
    Pending,
}

impl MembershipState {
    /// The API spelling: `"active"` or `"pending"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipState::Active => "active",
            MembershipState::Pending => "pending",
        }
    }
}

/// `login` is a member of organization `org` in `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgMembership {
    /// The person's login.
    pub login: String,
    /// The organization's login.
    pub org: String,
    /// Active or pending.
    pub state: MembershipState,
}

/// `login` is in team `slug` of organization `org`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamMembership {
    /// The person's login.
    pub login: String,
    /// The organization's login.
    pub org: String,
    /// The team's slug.
    pub slug: String,
}

/// The routes the stand-in counts requests for (see [`GithubStandIn::calls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET` and `POST /login/oauth/authorize`.
    Authorize,
    /// `POST /login/oauth/access_token`.
    AccessToken,
    /// `GET /api/v3/user`.
    User,
    /// `GET /api/v3/user/memberships/orgs`.
    OrgMemberships,
    /// `GET /api/v3/user/teams`.
    Teams,
}

// ---------------------------------------------------------------------------
// The stand-in
// ---------------------------------------------------------------------------

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
}

/// An authorization code waiting to be exchanged.
struct Grant {
    login: String,
    redirect_uri: String,
    challenge: Option<String>,
    scopes: Vec<String>,
    created: Instant,
}

/// An issued access token.
struct Token {
    /// The person's lowercase login (their key in [`Db::people`]).
    key: String,
    /// The granted scopes, as `x-oauth-scopes` lists them.
    scopes: String,
    /// The person's [`Person::revocations`] when it was issued: it works
    /// while they are still equal.
    generation: u64,
}

/// A rate-limit budget (GitHub's is per person).
#[derive(Debug, Clone, Copy, Default)]
struct Budget {
    /// Requests counted against the current window.
    used: u64,
    /// When the current window ends (epoch seconds); `0` before the first
    /// request.
    reset: u64,
}

impl Budget {
    fn roll(&mut self) {
        let now = epoch_seconds();
        if now >= self.reset {
            self.used = 0;
            self.reset = now + 3600;
        }
    }
}

/// The world as the stand-in keeps it: indexed by person, so that a request
/// costs the size of that person's data, not the size of the world.
struct Db {
    /// Everyone, in the world's order (the consent page lists them so).
    users: Vec<UserRecord>,
    /// Everyone who has a record, a membership or a token, by lowercase login.
    people: HashMap<String, Person>,
    /// How many team memberships each team has, by lowercase (org, slug).
    team_sizes: HashMap<(String, String), usize>,
}

/// One person's part of the [`Db`].
#[derive(Default)]
struct Person {
    /// Where the person's record is in [`Db::users`] (the first one with
    /// the login).
    user: Option<usize>,
    /// Organization memberships as (org, state), in the order the API lists
    /// them.
    orgs: Vec<(String, MembershipState)>,
    /// Team memberships as (org, slug), in the order the API lists them.
    teams: Vec<(String, String)>,
    /// How many times the person's tokens were revoked.
    revocations: u64,
    budget: Budget,
}

impl Db {
    fn new(world: World) -> Self {
        let World {
            users,
            orgs,
            teams,
            index: _,
        } = world;
        let mut db = Db {
            users: Vec::with_capacity(users.len()),
            people: HashMap::with_capacity(users.len()),
            team_sizes: HashMap::new(),
        };
        for user in users {
            let at = db.users.len();
            db.person(&user.login).user.get_or_insert(at);
            db.users.push(user);
        }
        for m in orgs {
            db.person(&m.login).orgs.push((m.org, m.state));
        }
        for t in teams {
            *db.team_sizes
                .entry((t.org.to_ascii_lowercase(), t.slug.to_ascii_lowercase()))
                .or_default() += 1;
            db.person(&t.login).teams.push((t.org, t.slug));
        }
        db
    }

    fn person(&mut self, login: &str) -> &mut Person {
        self.people.entry(login.to_ascii_lowercase()).or_default()
    }

    fn find_user(&self, login: &str) -> Option<&UserRecord> {
        let at = self.people.get(&login.to_ascii_lowercase())?.user?;
        self.users.get(at)
    }

    fn put_user(&mut self, user: UserRecord) {
        let person = self
            .people
            .entry(user.login.to_ascii_lowercase())
            .or_default();
        match person.user {
            Some(at) => self.users[at] = user,
            None => {
                person.user = Some(self.users.len());
                self.users.push(user);
            }
        }
    }

    fn set_org(&mut self, login: &str, org: &str, state: Option<MembershipState>) {
        match state {
            Some(state) => {
                let orgs = &mut self.person(login).orgs;
                match orgs.iter_mut().find(|(o, _)| o.eq_ignore_ascii_case(org)) {
                    Some(m) => m.1 = state,
                    None => orgs.push((org.to_owned(), state)),
                }
            }
            None => {
                if let Some(person) = self.people.get_mut(&login.to_ascii_lowercase())
                    && let Some(i) = person
                        .orgs
                        .iter()
                        .position(|(o, _)| o.eq_ignore_ascii_case(org))
                {
                    person.orgs.remove(i);
                }
            }
        }
    }

    fn add_team(&mut self, login: &str, org: &str, slug: &str) {
        let teams = &mut self
            .people
            .entry(login.to_ascii_lowercase())
            .or_default()
            .teams;
        if !teams
            .iter()
            .any(|(o, s)| o.eq_ignore_ascii_case(org) && s.eq_ignore_ascii_case(slug))
        {
            teams.push((org.to_owned(), slug.to_owned()));
            *self
                .team_sizes
                .entry((org.to_ascii_lowercase(), slug.to_ascii_lowercase()))
                .or_default() += 1;
        }
    }

    fn remove_team(&mut self, login: &str, org: &str, slug: &str) {
        let Some(person) = self.people.get_mut(&login.to_ascii_lowercase()) else {
            return;
        };
        let before = person.teams.len();
        person
            .teams
            .retain(|(o, s)| !(o.eq_ignore_ascii_case(org) && s.eq_ignore_ascii_case(slug)));
        let removed = before - person.teams.len();
        if removed == 0 {
            return;
        }
        let key = (org.to_ascii_lowercase(), slug.to_ascii_lowercase());
        if let Some(size) = self.team_sizes.get_mut(&key) {
            *size = size.saturating_sub(removed);
            if *size == 0 {
                self.team_sizes.remove(&key);
            }
        }
    }

    /// How many memberships team `slug` of `org` has.
    fn team_size(&self, org: &str, slug: &str) -> usize {
        self.team_sizes
            .get(&(org.to_ascii_lowercase(), slug.to_ascii_lowercase()))
            .copied()
            .unwrap_or(0)
    }
}

/// Who a valid token belongs to.
struct SignedIn {
    /// Their lowercase login.
    key: String,
    user: UserRecord,
    scopes: String,
}

struct St {
    db: Db,
    base_url: String,
    auto_consent: Option<String>,
    deny: bool,
    codes: HashMap<String, Grant>,
    /// Every code issued, oldest first, with when it was made: the expired
    /// ones are forgotten from the front.
    code_order: VecDeque<(Instant, String)>,
    tokens: HashMap<String, Token>,
    /// The OAuth app's registered callback URLs: GitHub redirects only there.
    callbacks: Vec<Url>,
    issued: usize,
    down: bool,
    delay: Duration,
    rate_limited: Option<u64>,
    secondary: Option<u64>,
    malformed: bool,
    endless: bool,
    page_cap: Option<usize>,
    calls: HashMap<Endpoint, u64>,
    not_modified: HashMap<Endpoint, u64>,
    /// The budget of requests without a valid token.
    anonymous: Budget,
}

impl St {
    /// `key`'s rate-limit budget (the anonymous one for `None` or a
    /// stranger), its window rolled forward if it has ended.
    fn budget(&mut self, key: Option<&str>) -> &mut Budget {
        let budget = match key.and_then(|k| self.db.people.get_mut(k)) {
            Some(person) => &mut person.budget,
            None => &mut self.anonymous,
        };
        budget.roll();
        budget
    }

    fn rate_headers(&mut self, key: Option<&str>, headers: &mut HeaderMap) {
        let (remaining, used, reset) = match self.rate_limited {
            Some(reset) => (0, RATE_LIMIT, reset),
            None => {
                let budget = self.budget(key);
                (
                    RATE_LIMIT.saturating_sub(budget.used),
                    budget.used,
                    budget.reset,
                )
            }
        };
        put(headers, "x-ratelimit-limit", &RATE_LIMIT.to_string());
        put(headers, "x-ratelimit-remaining", &remaining.to_string());
        put(headers, "x-ratelimit-reset", &reset.to_string());
        put(headers, "x-ratelimit-used", &used.to_string());
        put(headers, "x-ratelimit-resource", "core");
    }

    /// The person a token belongs to, unless it is unknown or revoked.
    fn signed_in(&self, token: &str) -> Option<SignedIn> {
        let token = self.tokens.get(token)?;
        let person = self.db.people.get(&token.key)?;
        if person.revocations != token.generation {
            return None;
        }
        let user = self.db.users.get(person.user?)?.clone();
        Some(SignedIn {
            key: token.key.clone(),
            user,
            scopes: token.scopes.clone(),
        })
    }

    /// Keeps a new code until it is exchanged or expires.
    fn add_code(&mut self, code: String, grant: Grant) {
        self.forget_expired_codes();
        self.code_order.push_back((grant.created, code.clone()));
        self.codes.insert(code, grant);
    }

    /// Drops the codes that have expired unexchanged, in amortized constant
    /// time per code.
    fn forget_expired_codes(&mut self) {
        while let Some((created, _)) = self.code_order.front()
            && created.elapsed() > CODE_LIFETIME
        {
            if let Some((created, code)) = self.code_order.pop_front()
                && self.codes.get(&code).is_some_and(|g| g.created == created)
            {
                self.codes.remove(&code);
            }
        }
        // Exchanged codes wait in the queue until they expire; when they are
        // most of it, drop them (the queue at least doubled since last time).
        if self.code_order.len() > 2 * self.codes.len() + 64 {
            let codes = &self.codes;
            self.code_order
                .retain(|(created, code)| codes.get(code).is_some_and(|g| g.created == *created));
        }
    }

    fn api_url(&self) -> String {
        format!("{}/api/v3", self.base_url)
    }
}

impl std::fmt::Debug for GithubStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubStandIn")
            .field("base_url", &self.base_url())
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

/// Which API route a request was for.
#[derive(Clone, Copy)]
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
                state: Mutex::new(St {
                    db: Db::new(world),
                    base_url: UNSET_BASE_URL.to_owned(),
                    auto_consent: None,
                    deny: false,
                    codes: HashMap::new(),
                    code_order: VecDeque::new(),
                    tokens: HashMap::new(),
                    callbacks: Vec::new(),
                    issued: 0,
                    down: false,
                    delay: Duration::ZERO,
                    rate_limited: None,
                    secondary: None,
                    malformed: false,
                    endless: false,
                    page_cap: None,
                    calls: HashMap::new(),
                    not_modified: HashMap::new(),
                    anonymous: Budget::default(),
                }),
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

    /// `Some(login)`: `GET /login/oauth/authorize` redirects at once with a
    /// code for that person (who must exist in the world when the request
    /// comes); `None`: it shows the consent page.
    pub fn set_auto_consent(&self, login: Option<&str>) {
        self.lock().auto_consent = login.map(str::to_owned);
    }

    /// While on, authorize (`GET` and `POST`) redirects back with
    /// `error=access_denied`, as GitHub does when the person cancels.
    pub fn set_deny_consent(&self, deny: bool) {
        self.lock().deny = deny;
    }

    /// Sets `login`'s membership of `org` to `state`; `None` removes it.
    pub fn set_org_state(&self, login: &str, org: &str, state: Option<MembershipState>) {
        self.lock().db.set_org(login, org, state);
    }

    /// Puts `login` in team `slug` of `org` (a no-op when already there).
    pub fn add_to_team(&self, login: &str, org: &str, slug: &str) {
        self.lock().db.add_team(login, org, slug);
    }

    /// Takes `login` out of team `slug` of `org`.
    pub fn remove_from_team(&self, login: &str, org: &str, slug: &str) {
        self.lock().db.remove_team(login, org, slug);
    }

    /// Adds a person (replacing any person with the same login).
    pub fn add_user(&self, user: UserRecord) {
        self.lock().db.put_user(user);
    }

    /// Renames `old` to `new`, as GitHub lets people do: the same id,
    /// memberships and tokens; the old login is free for anyone to take.
    pub fn rename_user(&self, old: &str, new: &str) {
        let (old_key, new_key) = (old.to_ascii_lowercase(), new.to_ascii_lowercase());
        let mut st = self.lock();
        if let Some(person) = st.db.people.remove(&old_key) {
            if let Some(at) = person.user {
                st.db.users[at].login = new.to_owned();
            }
            st.db.people.insert(new_key.clone(), person);
        }
        for token in st.tokens.values_mut() {
            if token.key == old_key {
                token.key.clone_from(&new_key);
            }
        }
    }

    /// Revokes every token issued to `login` so far: they now get
    /// `401 Bad credentials`. Tokens issued later (after a new login) work.
    pub fn revoke_tokens(&self, login: &str) {
        // Tokens remember the count when they were issued; a new count
        // leaves them behind.
        if let Some(person) = self.lock().db.people.get_mut(&login.to_ascii_lowercase()) {
            person.revocations += 1;
        }
    }

    /// While on, every route answers `503` (API: JSON
    /// `{"message":"Service Unavailable"}`; web: a short page).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Delays every response by `delay` (`Duration::ZERO` for none).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// `Some(reset)`: the API answers `403` "API rate limit exceeded" with
    /// `x-ratelimit-remaining: 0` and `x-ratelimit-reset: reset` (epoch
    /// seconds); `None` lifts it.
    pub fn set_rate_limited(&self, reset: Option<u64>) {
        self.lock().rate_limited = reset;
    }

    /// `Some(seconds)`: the API answers `429` with `retry-after: seconds` (a
    /// secondary rate limit); `None` lifts it.
    pub fn set_secondary_rate_limited(&self, retry_after: Option<u64>) {
        self.lock().secondary = retry_after;
    }

    /// While on, authenticated API requests get `200` with a truncated body
    /// that is not valid JSON.
    pub fn set_malformed(&self, malformed: bool) {
        self.lock().malformed = malformed;
    }

    /// While on, list endpoints always send a `rel="next"` link (to page + 1,
    /// forever, with no `rel="last"`) and every page repeats the list's data.
    pub fn set_endless_pagination(&self, endless: bool) {
        self.lock().endless = endless;
    }

    /// Caps `per_page` below what the client asks, to force pagination;
    /// `None` (the default) is GitHub's maximum of 100.
    pub fn set_page_size_cap(&self, cap: Option<usize>) {
        self.lock().page_cap = cap.map(|c| c.max(1));
    }

    /// Requests received for `endpoint`, whatever the answer (304s and
    /// failures included).
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.lock().calls.get(&endpoint).copied().unwrap_or(0)
    }

    /// How many of [`calls`](Self::calls) were answered `304 Not Modified`.
    pub fn not_modified(&self, endpoint: Endpoint) -> u64 {
        self.lock()
            .not_modified
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Sets [`calls`](Self::calls) and [`not_modified`](Self::not_modified)
    /// back to zero.
    pub fn reset_counters(&self) {
        let mut st = self.lock();
        st.calls.clear();
        st.not_modified.clear();
    }

    /// How many access tokens have been issued in all (revoked ones included).
    pub fn issued_tokens(&self) -> usize {
        self.lock().issued
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
        let mut out = hex(&rand::random::<[u8; 32]>());
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
            st.delay
        };
        if !delay.is_zero() {
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

    // -- OAuth web flow ------------------------------------------------------

    fn authorize(&self, p: &Params, choice: Choice) -> Response {
        if p.get("client_id") != Some(self.inner.client_id.as_str()) {
            return message_page(
                StatusCode::NOT_FOUND,
                "Page not found · GitHub",
                "404",
                "This is not the web page you are looking for: no OAuth application is registered here with the client_id",
                Some(p.get("client_id").unwrap_or("")),
            );
        }
        let Some(redirect) = p
            .get("redirect_uri")
            .and_then(|r| Url::parse(r).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
        else {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Redirect URI mismatch · GitHub",
                "Be careful!",
                "The redirect_uri is missing or is not an absolute http(s) URL. The redirect_uri \
                 MUST match the registered callback URL for this application.",
                None,
            );
        };
        // GitHub redirects only to the app's callback: same scheme, host
        // and port, and a path at or below the registered one.
        let registered = self.lock().callbacks.iter().any(|cb| {
            cb.scheme() == redirect.scheme()
                && cb.host() == redirect.host()
                && cb.port_or_known_default() == redirect.port_or_known_default()
                && redirect.path().starts_with(cb.path())
        });
        if !registered {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Redirect URI mismatch · GitHub",
                "Be careful!",
                "The redirect_uri is not associated with this application. The redirect_uri \
                 MUST match the registered callback URL for this application.",
                None,
            );
        }
        let state = p.get("state");
        let challenge = p.get("code_challenge").filter(|c| !c.is_empty());
        if let Some(challenge) = challenge {
            if p.get("code_challenge_method") != Some("S256") {
                return error_redirect(
                    &redirect,
                    "invalid_request",
                    "Only code_challenge_method=S256 is supported.",
                    state,
                );
            }
            if !is_s256_challenge(challenge) {
                return error_redirect(
                    &redirect,
                    "invalid_request",
                    "The code_challenge is not a base64url SHA-256 digest.",
                    state,
                );
            }
        }
        let mut st = self.lock();
        if st.deny {
            return access_denied(&redirect, state);
        }
        let login = match choice {
            Choice::Cancel => return access_denied(&redirect, state),
            Choice::Person(login) => login,
            Choice::Switches => match st.auto_consent.clone() {
                Some(login) => login,
                None => return consent_page(&self.inner.client_id, p, &redirect, &st.db.users),
            },
        };
        let Some(user) = st.db.find_user(&login) else {
            return message_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "No such person · GitHub stand-in",
                "No such person",
                "There is nobody in the stand-in's world with the login",
                Some(&login),
            );
        };
        let login = user.login.clone();
        let code = self.random_hex(20);
        st.add_code(
            code.clone(),
            Grant {
                login,
                redirect_uri: p.get("redirect_uri").unwrap_or_default().to_owned(),
                challenge: challenge.map(str::to_owned),
                scopes: split_scopes(p.get("scope").unwrap_or("")),
                created: Instant::now(),
            },
        );
        let mut to = redirect;
        {
            let mut q = to.query_pairs_mut();
            q.append_pair("code", &code);
            if let Some(state) = state {
                q.append_pair("state", state);
            }
        }
        found(&to)
    }

    fn exchange(&self, headers: &HeaderMap, p: &Params) -> Response {
        let (client_id, client_secret) = match basic_credentials(headers) {
            Some(pair) => pair,
            None => (
                p.get("client_id").unwrap_or_default().to_owned(),
                p.get("client_secret").unwrap_or_default().to_owned(),
            ),
        };
        if let Some(grant_type) = p.get("grant_type")
            && grant_type != "authorization_code"
        {
            return token_error(
                "unsupported_grant_type",
                "Only the authorization_code grant is supported.",
                "",
            );
        }
        if client_id != self.inner.client_id || client_secret != self.inner.client_secret {
            return token_error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
                "#incorrect-client-credentials",
            );
        }
        let mut st = self.lock();
        st.forget_expired_codes();
        // A code is spent by any exchange that gets this far, right or wrong.
        let grant = p
            .get("code")
            .and_then(|code| st.codes.remove(code))
            .filter(|g| g.created.elapsed() <= CODE_LIFETIME);
        let Some(grant) = grant else {
            return token_error(
                "bad_verification_code",
                "The code passed is incorrect or expired.",
                "#bad-verification-code",
            );
        };
        if let Some(redirect_uri) = p.get("redirect_uri")
            && redirect_uri != grant.redirect_uri
        {
            return token_error(
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
                "#redirect-uri-mismatch2",
            );
        }
        let verifier = p.get("code_verifier").filter(|v| !v.is_empty());
        let pkce = match (grant.challenge.as_deref(), verifier) {
            (None, None) => Ok(()),
            (Some(_), Some(verifier)) if !is_code_verifier(verifier) => {
                Err("The code_verifier must be 43 to 128 unreserved characters.")
            }
            (Some(challenge), Some(verifier)) => {
                if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge {
                    Ok(())
                } else {
                    Err("The code_verifier does not match the code_challenge.")
                }
            }
            (Some(_), None) => Err("A code_verifier is required for this code."),
            (None, Some(_)) => Err("A code_verifier was sent but no code_challenge was."),
        };
        if let Err(description) = pkce {
            return token_error("invalid_grant", description, "");
        }
        let token = format!("gho_{}", self.random_hex(36));
        let scope = grant.scopes.join(",");
        tracing::debug!(login = %grant.login, "GitHub stand-in issued a token");
        let key = grant.login.to_ascii_lowercase();
        let generation = st.db.people.get(&key).map_or(0, |p| p.revocations);
        st.tokens.insert(
            token.clone(),
            Token {
                key,
                scopes: grant.scopes.join(", "),
                generation,
            },
        );
        st.issued += 1;
        json_response(
            StatusCode::OK,
            &json!({"access_token": token, "token_type": "bearer", "scope": scope}),
        )
    }

    // -- API -------------------------------------------------------------------

    async fn api(
        &self,
        endpoint: Option<Endpoint>,
        kind: Api,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Response {
        self.arrive(endpoint).await;
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.down {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"message": "Service Unavailable"}),
            );
        }
        let presented = presented_token(headers);
        let person = presented.as_deref().and_then(|t| st.signed_in(t));
        // Whose rate-limit budget the request counts against.
        let key = person.as_ref().map(|p| p.key.clone());
        let key = key.as_deref();
        if st.rate_limited.is_some() {
            let message = match &person {
                Some(SignedIn { user, .. }) => format!(
                    "API rate limit exceeded for user ID {}. If you reach out to GitHub Support \
                     for help, please include the request ID {}.",
                    user.id,
                    self.request_id()
                ),
                None => "API rate limit exceeded for 127.0.0.1. (But here's the good news: \
                         Authenticated requests get a higher rate limit. Check out the \
                         documentation for more details.)"
                    .to_owned(),
            };
            let mut r = json_response(
                StatusCode::FORBIDDEN,
                &json!({"message": message, "documentation_url": RATE_LIMIT_DOCS}),
            );
            st.rate_headers(key, r.headers_mut());
            return r;
        }
        if let Some(retry_after) = st.secondary {
            let mut r = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({
                    "message": "You have exceeded a secondary rate limit. Please wait a few \
                                minutes before you try again.",
                    "documentation_url": format!("{RATE_LIMIT_DOCS}#about-secondary-rate-limits"),
                }),
            );
            st.rate_headers(key, r.headers_mut());
            put(r.headers_mut(), "retry-after", &retry_after.to_string());
            return r;
        }
        let unauthorized = match kind {
            // GitHub answers 404 for unknown paths without credentials, but
            // still refuses bad credentials.
            Api::NotFound => presented.is_some() && person.is_none(),
            _ => person.is_none(),
        };
        if unauthorized {
            let mut r = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "Bad credentials", "documentation_url": REST_DOCS, "status": "401"}),
            );
            st.rate_headers(key, r.headers_mut());
            return r;
        }
        let SignedIn { user, scopes, .. } = match person {
            Some(p) => p,
            None => {
                let mut r = json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"message": "Not Found", "documentation_url": REST_DOCS, "status": "404"}),
                );
                st.rate_headers(key, r.headers_mut());
                return r;
            }
        };
        let params = Params::parse(query.unwrap_or(""));
        let answer = match kind {
            Api::User => Ok((user_json(st, &user), None)),
            Api::Orgs => orgs_page(st, &user, &params),
            Api::Teams => Ok(teams_page(st, &user, &params)),
            Api::NotFound => Err((
                StatusCode::NOT_FOUND,
                json!({"message": "Not Found", "documentation_url": REST_DOCS, "status": "404"}),
            )),
        };
        let (body, link) = match answer {
            Ok(ok) => ok,
            Err((status, body)) => {
                st.budget(key).used += 1;
                let mut r = json_response(status, &body);
                st.rate_headers(key, r.headers_mut());
                return r;
            }
        };
        let text = body.to_string();
        if st.malformed {
            st.budget(key).used += 1;
            let mut cut = text.len() / 2;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut r = json_text_response(StatusCode::OK, text[..cut].to_owned());
            st.rate_headers(key, r.headers_mut());
            put(r.headers_mut(), "x-oauth-scopes", &scopes);
            return r;
        }
        let etag = {
            let mut h = Sha256::new();
            h.update(text.as_bytes());
            h.update(b"\n");
            h.update(link.as_deref().unwrap_or("").as_bytes());
            format!("W/\"{}\"", hex(&h.finalize()))
        };
        let mut r = if etag_matches(headers, &etag) {
            if let Some(endpoint) = endpoint {
                *st.not_modified.entry(endpoint).or_default() += 1;
            }
            // A conditional request answered 304 costs no rate limit.
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            st.rate_headers(key, r.headers_mut());
            r
        } else {
            st.budget(key).used += 1;
            let mut r = json_text_response(StatusCode::OK, text);
            st.rate_headers(key, r.headers_mut());
            r
        };
        let h = r.headers_mut();
        put(h, "etag", &etag);
        put(h, "cache-control", "private, max-age=60, s-maxage=60");
        put(h, "vary", "Accept, Authorization, Cookie, X-GitHub-OTP");
        put(h, "x-oauth-scopes", &scopes);
        put(h, "x-accepted-oauth-scopes", "");
        if let Some(link) = link {
            put(h, "link", &link);
        }
        r
    }

    fn request_id(&self) -> String {
        self.random_hex(16).to_uppercase()
    }
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/// The stand-in's routes, before the state is given.
fn routes() -> Router<GithubStandIn> {
    Router::new()
        .route(
            "/login/oauth/authorize",
            get(authorize_get).post(authorize_post),
        )
        .route("/login/oauth/access_token", post(access_token))
        .route("/api/v3/user", get(api_user))
        .route("/api/v3/user/memberships/orgs", get(api_orgs))
        .route("/api/v3/user/teams", get(api_teams))
        .route("/api/v3", any(api_not_found))
        .route("/api/v3/", any(api_not_found))
        .route("/api/v3/{*rest}", any(api_not_found))
}

async fn authorize_get(State(s): State<GithubStandIn>, uri: Uri) -> Response {
    let params = Params::parse(uri.query().unwrap_or(""));
    s.web(Some(Endpoint::Authorize), |s| {
        s.authorize(&params, Choice::Switches)
    })
    .await
}

async fn authorize_post(State(s): State<GithubStandIn>, body: Bytes) -> Response {
    let params = Params::parse(&String::from_utf8_lossy(&body));
    s.web(Some(Endpoint::Authorize), |s| {
        let choice = if params.get("cancel").is_some() {
            Choice::Cancel
        } else if let Some(login) = params.get("login").filter(|l| !l.is_empty()) {
            Choice::Person(login.to_owned())
        } else {
            // Nothing chosen: show the page again.
            Choice::Switches
        };
        s.authorize(&params, choice)
    })
    .await
}

async fn access_token(
    State(s): State<GithubStandIn>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    // GitHub also takes the parameters from the query string.
    let mut params = Params::parse(uri.query().unwrap_or(""));
    if is_json {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
            for (k, v) in map {
                if let Value::String(v) = v {
                    params.0.push((k, v));
                }
            }
        }
    } else {
        params
            .0
            .extend(Params::parse(&String::from_utf8_lossy(&body)).0);
    }
    // Later sources (the body) win over the query string.
    params.0.reverse();
    s.web(Some(Endpoint::AccessToken), |s| {
        s.exchange(&headers, &params)
    })
    .await
}

async fn api_user(State(s): State<GithubStandIn>, headers: HeaderMap, uri: Uri) -> Response {
    s.api(Some(Endpoint::User), Api::User, &headers, uri.query())
        .await
}

async fn api_orgs(State(s): State<GithubStandIn>, headers: HeaderMap, uri: Uri) -> Response {
    s.api(
        Some(Endpoint::OrgMemberships),
        Api::Orgs,
        &headers,
        uri.query(),
    )
    .await
}

async fn api_teams(State(s): State<GithubStandIn>, headers: HeaderMap, uri: Uri) -> Response {
    s.api(Some(Endpoint::Teams), Api::Teams, &headers, uri.query())
        .await
}

async fn api_not_found(State(s): State<GithubStandIn>, headers: HeaderMap, uri: Uri) -> Response {
    s.api(None, Api::NotFound, &headers, uri.query()).await
}

async fn web_not_found(State(s): State<GithubStandIn>) -> Response {
    s.web(None, |_| {
        message_page(
            StatusCode::NOT_FOUND,
            "Page not found · GitHub",
            "404",
            "This is not the web page you are looking for.",
            None,
        )
    })
    .await
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Decoded `name=value` pairs of a query string or form body, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(s: &str) -> Self {
        Self(
            url::form_urlencoded::parse(s.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A stable id for an organization or team, from its lowercased name.
fn derived_id(kind: &str, name: &str) -> u64 {
    let digest = Sha256::digest(format!("{kind}:{}", name.to_ascii_lowercase()).as_bytes());
    let n = digest
        .iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    10_000_000 + n % 90_000_000
}

/// A team's display name made from its slug (`tea-party` → `Tea party`), so
/// that clients which confuse name and slug are caught.
fn team_name(slug: &str) -> String {
    let words = slug.replace(['-', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Scopes as requested (space- or comma-separated), without duplicates.
fn split_scopes(raw: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in raw.split([' ', ',']).filter(|s| !s.is_empty()) {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}

/// Whether `c` looks like base64url-no-pad of a SHA-256 digest.
fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43 && URL_SAFE_NO_PAD.decode(c).is_ok_and(|d| d.len() == 32)
}

/// RFC 7636: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The token from `Authorization: Bearer T` or `Authorization: token T`.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.to_owned())
        .filter(|t| !t.is_empty())
}

/// Client credentials from HTTP Basic auth. Each half is form-urlencoded
/// first (RFC 6749 §2.3.1, as the `oauth2` crate does), so it is decoded.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether `If-None-Match` names `etag` (weak comparison) or is `*`.
fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    json_text_response(status, body.to_string())
}

fn json_text_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, Body::from(body)).into_response();
    let h = r.headers_mut();
    put(h, "content-type", "application/json; charset=utf-8");
    put(h, "x-github-media-type", "github.v3; format=json");
    put(h, "x-github-api-version-selected", "2022-11-28");
    r
}

/// A token-endpoint error: HTTP 200 with an `error` field, as GitHub does.
fn token_error(error: &str, description: &str, anchor: &str) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "error": error,
            "error_description": description,
            "error_uri": format!("{TOKEN_ERRORS}/{anchor}"),
        }),
    )
}

/// `302 Found` to `to`.
fn found(to: &Url) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    put(r.headers_mut(), "location", to.as_str());
    r
}

fn error_redirect(redirect: &Url, error: &str, description: &str, state: Option<&str>) -> Response {
    let mut to = redirect.clone();
    {
        let mut q = to.query_pairs_mut();
        q.append_pair("error", error);
        q.append_pair("error_description", description);
        q.append_pair(
            "error_uri",
            &format!("{AUTHORIZE_ERRORS}/#{}", error.replace('_', "-")),
        );
        if let Some(state) = state {
            q.append_pair("state", state);
        }
    }
    found(&to)
}

fn access_denied(redirect: &Url, state: Option<&str>) -> Response {
    error_redirect(
        redirect,
        "access_denied",
        "The user has denied your application access.",
        state,
    )
}

/// Escapes text for HTML element content and quoted attribute values.
/// A page of text: a heading and a sentence, optionally ending in `code`.
#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    heading: &'a str,
    detail: &'a str,
    code: Option<&'a str>,
}

/// The consent page: who may continue, and the authorize request's fields
/// carried through the form.
#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_id: &'a str,
    scopes: Vec<String>,
    hidden: Vec<(&'static str, &'a str)>,
    people: &'a [UserRecord],
    redirect_origin: String,
}

/// A rendered page with GitHub's headers for HTML.
fn html_page(status: StatusCode, page: &impl Template) -> Response {
    let html = page
        .render()
        .unwrap_or_else(|e| format!("the stand-in's page failed to render: {e}"));
    let mut r = (status, Body::from(html)).into_response();
    let h = r.headers_mut();
    put(h, "content-type", "text/html; charset=utf-8");
    put(h, "x-frame-options", "deny");
    put(h, "cache-control", "no-cache");
    r
}

fn message_page(
    status: StatusCode,
    title: &str,
    heading: &str,
    detail: &str,
    code: Option<&str>,
) -> Response {
    html_page(
        status,
        &MessagePage {
            title,
            heading,
            detail,
            code,
        },
    )
}

fn consent_page(client_id: &str, p: &Params, redirect: &Url, users: &[UserRecord]) -> Response {
    let hidden = [
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ]
    .into_iter()
    .filter_map(|name| Some((name, p.get(name)?)))
    .collect();
    html_page(
        StatusCode::OK,
        &ConsentPage {
            client_id,
            scopes: split_scopes(p.get("scope").unwrap_or("")),
            hidden,
            people: users,
            redirect_origin: redirect.origin().ascii_serialization(),
        },
    )
}

fn simple_user_json(st: &St, user: &UserRecord) -> Value {
    let api = st.api_url();
    json!({
        "login": user.login,
        "id": user.id,
        "node_id": STANDARD.encode(format!("04:User{}", user.id)),
        "avatar_url": user.avatar_url,
        "gravatar_id": "",
        "url": format!("{api}/users/{}", user.login),
        "html_url": format!("{}/{}", st.base_url, user.login),
        "type": "User",
        "site_admin": false,
    })
}

fn user_json(st: &St, user: &UserRecord) -> Value {
    let mut v = simple_user_json(st, user);
    if let Value::Object(map) = &mut v {
        let extra = json!({
            "name": user.name,
            "company": null,
            "blog": "",
            "location": null,
            "email": null,
            "hireable": null,
            "bio": null,
            "twitter_username": null,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
        });
        if let Value::Object(extra) = extra {
            map.extend(extra);
        }
    }
    v
}

fn org_json(st: &St, org: &str) -> Value {
    let api = st.api_url();
    let id = derived_id("org", org);
    json!({
        "login": org,
        "id": id,
        "node_id": STANDARD.encode(format!("012:Organization{id}")),
        "url": format!("{api}/orgs/{org}"),
        "repos_url": format!("{api}/orgs/{org}/repos"),
        "events_url": format!("{api}/orgs/{org}/events"),
        "hooks_url": format!("{api}/orgs/{org}/hooks"),
        "issues_url": format!("{api}/orgs/{org}/issues"),
        "members_url": format!("{api}/orgs/{org}/members{{/member}}"),
        "public_members_url": format!("{api}/orgs/{org}/public_members{{/member}}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "description": null,
    })
}

/// The memberships of the person `user` is the record of.
fn person_of<'a>(st: &'a St, user: &UserRecord) -> Option<&'a Person> {
    st.db.people.get(&user.login.to_ascii_lowercase())
}

/// A page of a list and its `Link` header, if any.
type Listing = (Value, Option<String>);

/// The person's organization memberships, filtered by `state`, one page.
fn orgs_page(st: &St, user: &UserRecord, params: &Params) -> Result<Listing, (StatusCode, Value)> {
    let filter = match params.get("state") {
        None | Some("") => None,
        Some("active") => Some(MembershipState::Active),
        Some("pending") => Some(MembershipState::Pending),
        Some(_) => {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "message": "Validation Failed",
                    "errors": [{"resource": "OrgMembership", "field": "state", "code": "invalid"}],
                    "documentation_url": REST_DOCS,
                    "status": "422",
                }),
            ));
        }
    };
    let api = st.api_url();
    let items: Vec<Value> = person_of(st, user)
        .map_or(&[][..], |p| &p.orgs)
        .iter()
        .filter(|(_, state)| filter.is_none_or(|f| *state == f))
        .map(|(org, state)| {
            json!({
                "url": format!("{api}/orgs/{org}/memberships/{}", user.login),
                "state": state.as_str(),
                "role": "member",
                "organization_url": format!("{api}/orgs/{org}"),
                "organization": org_json(st, org),
                "user": simple_user_json(st, user),
            })
        })
        .collect();
    Ok(paginate(st, items, "/user/memberships/orgs", params))
}

/// The person's teams, one page.
fn teams_page(st: &St, user: &UserRecord, params: &Params) -> Listing {
    let api = st.api_url();
    let items: Vec<Value> = person_of(st, user)
        .map_or(&[][..], |p| &p.teams)
        .iter()
        .map(|(org, slug)| {
            let org_id = derived_id("org", org);
            let id = derived_id("team", &format!("{org}/{slug}"));
            json!({
                "id": id,
                "node_id": STANDARD.encode(format!("04:Team{id}")),
                "url": format!("{api}/organizations/{org_id}/team/{id}"),
                "html_url": format!("{}/orgs/{org}/teams/{slug}", st.base_url),
                "name": team_name(slug),
                "slug": slug,
                "description": null,
                "privacy": "closed",
                "notification_setting": "notifications_enabled",
                "permission": "pull",
                "members_url": format!("{api}/organizations/{org_id}/team/{id}/members{{/member}}"),
                "repositories_url": format!("{api}/organizations/{org_id}/team/{id}/repos"),
                "parent": null,
                "members_count": st.db.team_size(org, slug),
                "repos_count": 0,
                "created_at": "2020-01-01T00:00:00Z",
                "updated_at": "2020-01-01T00:00:00Z",
                "organization": org_json(st, org),
            })
        })
        .collect();
    paginate(st, items, "/user/teams", params)
}

/// One page of `items` and its `Link` header, GitHub style.
fn paginate(st: &St, items: Vec<Value>, path: &str, params: &Params) -> Listing {
    let asked = params
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_PER_PAGE);
    let per_page = asked
        .min(MAX_PER_PAGE)
        .min(st.page_cap.unwrap_or(MAX_PER_PAGE));
    let page = params
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let last = items.len().div_ceil(per_page).max(1);
    // In endless mode every page repeats the data of a real page.
    let shown = if st.endless {
        (page - 1) % last + 1
    } else {
        page
    };
    let start = (shown - 1).saturating_mul(per_page).min(items.len());
    let end = start.saturating_add(per_page).min(items.len());
    let body = Value::Array(items[start..end].to_vec());

    let url = |n: usize| page_url(&st.api_url(), path, params, n);
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
    }
    if st.endless || page < last {
        links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
    }
    if !st.endless && page < last {
        links.push(format!("<{}>; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", url(1)));
    }
    let link = (!links.is_empty()).then(|| links.join(", "));
    (body, link)
}

/// `api/path?<the request's query with page=n>`, keeping the order of the
/// request's parameters as GitHub does.
fn page_url(api: &str, path: &str, params: &Params, n: usize) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut replaced = false;
    for (k, v) in &params.0 {
        if k == "page" {
            if !replaced {
                query.append_pair("page", &n.to_string());
                replaced = true;
            }
        } else {
            query.append_pair(k, v);
        }
    }
    if !replaced {
        query.append_pair("page", &n.to_string());
    }
    format!("{api}{path}?{}", query.finish())
}

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
