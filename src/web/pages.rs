//! The pages: the home page (who you are, what you may join, a channel
//! tester), the static assets, liveness and the 404.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::error::{ApiError, PageError};
use super::extract::{Caller, Credential, caller};
use super::html::render;
use super::state::AppState;
use super::tokens::rfc3339;
use crate::channel::{ChannelKind, ChannelName};
use crate::config::format_duration;
use crate::github::GithubUser;
use crate::session::tokens::Listed;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    user: Option<&'a GithubUser>,
    app_name: &'a str,
    membership: Option<MembershipView>,
    membership_error: Option<String>,
    /// The rules name an org the person is not listed in: a hint about
    /// orgs that restrict OAuth apps, naming none (a denial reveals
    /// nothing about who a rule admits).
    org_hint: bool,
    grants: Vec<GrantView>,
    channel: &'a str,
    tested: Option<Tested>,
    pusher: PusherView,
    /// The person's app and device tokens, or why they cannot be listed.
    tokens: Result<Vec<TokenView>, String>,
    /// The gateway's public URL, for the snippet shown with a new token.
    public_url: String,
    /// `session.ttl` and `session.max_age`, as the config writes them.
    ttl: String,
    max_age: String,
}

/// A token as the home page lists it.
struct TokenView {
    id: String,
    name: String,
    kind: &'static str,
    created: String,
    last_used: String,
}

impl TokenView {
    fn of(t: Listed) -> Self {
        Self {
            id: t.id,
            name: t.name,
            kind: t.kind.as_str(),
            created: rfc3339(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".to_owned(), rfc3339),
        }
    }
}

/// Where the page's pusher-js connects.
struct PusherView {
    key: String,
    cluster: String,
    /// Host of a self-hosted server, or empty for the cluster.
    host: String,
    port: u16,
    tls: bool,
}

impl PusherView {
    fn of(config: &crate::config::PusherConfig) -> Self {
        let default_port = if config.tls { 443 } else { 80 };
        let (host, port) = match &config.host {
            None => (String::new(), default_port),
            Some(h) => (h.host.clone(), h.port.unwrap_or(default_port)),
        };
        Self {
            key: config.key.clone(),
            cluster: config.cluster.clone(),
            host,
            port,
            tls: config.tls,
        }
    }
}

struct MembershipView {
    orgs: Vec<String>,
    teams: Vec<String>,
}

struct GrantView {
    index: usize,
    pattern: String,
    channels: Vec<String>,
}

struct Tested {
    channel: String,
    allowed: bool,
    reason: String,
    /// A name pusher-js can subscribe to (valid, not public).
    subscribable: bool,
}

/// Query of the home page: a channel name to test.
#[derive(Debug, Deserialize)]
pub struct HomeQuery {
    channel: Option<String>,
}

/// `GET /`: logged out, a way to log in; logged in, who you are, your
/// memberships, the channels you may join, and a channel tester.
pub async fn home(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<HomeQuery>,
) -> Response {
    // The page is the browser's: its cookie decides, never a bearer token.
    let caller = match caller(&state, &Credential::Cookie(session)).await {
        Ok(caller) => caller,
        // The session store is down: a page that says so, not JSON.
        Err(e) => {
            return PageError::Session(ApiError::session(e).message().to_owned()).into_response();
        }
    };
    let app_name = format!("Pusher app {}", state.config().pusher.app_id);
    let channel = query.channel.unwrap_or_default();
    let mut page = HomePage {
        user: None,
        app_name: &app_name,
        membership: None,
        membership_error: None,
        org_hint: false,
        grants: Vec::new(),
        channel: &channel,
        tested: None,
        pusher: PusherView::of(&state.config().pusher),
        tokens: Ok(Vec::new()),
        public_url: state.config().server.public_url.clone(),
        ttl: format_duration(state.config().session.ttl),
        max_age: format_duration(state.config().session.max_age),
    };
    let Caller::Person {
        identity,
        membership,
    } = caller
    else {
        return render(StatusCode::OK, &page);
    };
    let rules = &state.config().rules;
    let tested = |allowed, reason| Tested {
        channel: channel.clone(),
        allowed,
        reason,
        subscribable: subscribable(&channel),
    };
    let user = match &membership {
        // Who GitHub says the person is now, which the rules see too.
        Ok(m) => m.user().clone(),
        Err(_) => identity.user.clone(),
    };
    match membership {
        Ok(m) => {
            let person = &m.person;
            page.membership = Some(MembershipView {
                orgs: person.orgs.clone(),
                teams: person.active_teams().map(ToString::to_string).collect(),
            });
            page.org_hint = !rules.orgs_missing_for(person).is_empty();
            page.grants = rules
                .grants(person)
                .into_iter()
                .map(|(index, pattern, channels)| GrantView {
                    index,
                    pattern: pattern.to_string(),
                    channels,
                })
                .collect();
            if !channel.is_empty() {
                let decision = rules.decide(person, &channel);
                // A denial names the rules that matched but not who they
                // admit: anyone with a GitHub account can use this page.
                page.tested = Some(tested(decision.is_allowed(), decision.for_the_person()));
            }
        }
        Err(_) => {
            page.membership_error = Some(super::auth::MEMBERSHIP_UNKNOWN.into());
            if !channel.is_empty() {
                page.tested = Some(tested(
                    false,
                    "your membership cannot be checked right now".into(),
                ));
            }
        }
    }
    // A listing reads every token's record: counted like GET /auth/tokens.
    let limit = state.limits().auth.clone();
    let limited = limit
        .admit(&state.room, super::limits::Key::Person(identity.user.id))
        .await;
    page.tokens = match limited {
        Err(wait) => Err(format!(
            "your tokens are not listed: too many requests; reload in {}s",
            wait.as_secs().max(1)
        )),
        Ok(()) => match state.tokens.list(identity.user.id).await {
            Ok(tokens) => Ok(tokens.into_iter().map(TokenView::of).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "tokens could not be listed");
                Err(
                    "your tokens cannot be listed right now: the session store did not answer"
                        .into(),
                )
            }
        },
    };
    page.user = Some(&user);
    render(StatusCode::OK, &page)
}

fn subscribable(channel: &str) -> bool {
    ChannelName::parse(channel).is_ok_and(|c| c.kind() != ChannelKind::Public)
}

/// The vendored pusher-js (8.6.0, MIT; see `assets/vendor/README.md`).
const PUSHER_JS: &str = include_str!("../../assets/vendor/pusher-with-encryption.min.js");
/// The home page's script.
const HOME_JS: &str = include_str!("../../assets/home.js");
/// The home page's tokens.
const TOKENS_JS: &str = include_str!("../../assets/tokens.js");

/// How long the session store may take to answer a readiness check.
pub const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET /readyz`: 200 `{"ready":true}` when the session store answers
/// within a second, else 503 naming what failed. Checked anew each time,
/// so it recovers by itself when the store comes back.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ready(READY_WITHIN).await {
        Ok(()) => axum::Json(serde_json::json!({ "ready": true })).into_response(),
        Err(why) => {
            // The detail (which may quote the store's own words) goes to the
            // log; the public answer only names the store.
            tracing::warn!(%why, "not ready");
            let error = format!("the {} session store is not answering", state.store.kind());
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "ready": false, "error": error })),
            )
                .into_response()
        }
    }
}

/// `GET /assets/pusher.min.js`: pusher-js, served here so pages work offline.
pub async fn pusher_js() -> Response {
    javascript(PUSHER_JS)
}

/// `GET /assets/home.js`.
pub async fn home_js() -> Response {
    javascript(HOME_JS)
}

/// `GET /assets/tokens.js`.
pub async fn tokens_js() -> Response {
    javascript(TOKENS_JS)
}

fn javascript(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `GET /healthz`: liveness.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Anything else.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}
