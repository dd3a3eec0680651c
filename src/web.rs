//! Pages and error responses.
//!
//! Two kinds of error leave the gateway: [`LoginError`], an HTML page for a
//! person in a browser that says what happened and offers to try again, and
//! [`ApiError`], a JSON `{"error": ...}` for the Pusher client. Both give
//! 4xx/5xx statuses with a safe message; causes go to the log.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::auth::{Caller, caller};
use crate::channel::{ChannelKind, ChannelName};
use crate::github::GithubUser;
use crate::server::AppState;

/// Renders a template, or a plain 500 if the template itself fails.
fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    user: Option<&'a GithubUser>,
    app_name: &'a str,
    membership: Option<MembershipView>,
    membership_error: Option<String>,
    missing_orgs: Vec<String>,
    grants: Vec<GrantView>,
    channel: &'a str,
    tested: Option<Tested>,
    pusher: PusherView,
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
    let caller = match caller(&state, &session).await {
        Ok(caller) => caller,
        Err(e) => return LoginError::session(e).into_response(),
    };
    let app_name = format!("Pusher app {}", state.config.pusher.app_id);
    let channel = query.channel.unwrap_or_default();
    let mut page = HomePage {
        user: None,
        app_name: &app_name,
        membership: None,
        membership_error: None,
        missing_orgs: Vec::new(),
        grants: Vec::new(),
        channel: &channel,
        tested: None,
        pusher: PusherView::of(&state.config.pusher),
    };
    let Caller::Person {
        identity,
        membership,
    } = caller
    else {
        return render(StatusCode::OK, &page);
    };
    let rules = &state.config.rules;
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
            page.missing_orgs = rules.orgs_missing_for(person);
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
            page.membership_error = Some(
                "GitHub did not answer or refused to answer for now (an outage or a rate limit)."
                    .into(),
            );
            if !channel.is_empty() {
                page.tested = Some(tested(
                    false,
                    "your membership cannot be checked right now".into(),
                ));
            }
        }
    }
    page.user = Some(&user);
    render(StatusCode::OK, &page)
}

fn subscribable(channel: &str) -> bool {
    ChannelName::parse(channel).is_ok_and(|c| c.kind() != ChannelKind::Public)
}

/// The vendored pusher-js (8.6.0, MIT; see `assets/vendor/README.md`).
const PUSHER_JS: &str = include_str!("../assets/vendor/pusher-with-encryption.min.js");
/// The home page's script.
const HOME_JS: &str = include_str!("../assets/home.js");

/// `GET /assets/pusher.min.js`: pusher-js, served here so pages work offline.
pub async fn pusher_js() -> Response {
    javascript(PUSHER_JS)
}

/// `GET /assets/home.js`.
pub async fn home_js() -> Response {
    javascript(HOME_JS)
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

/// The policy for every page: scripts only from here, connections only to
/// here and to a Pusher server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// `GET /healthz`: liveness.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Anything else.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

#[derive(Template)]
#[template(path = "login_error.html")]
struct LoginErrorPage<'a> {
    title: &'a str,
    detail: &'a str,
}

/// Why a login did not complete, shown as a page with a "Try again" link.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The callback arrived but this browser has no login in progress.
    #[error("no login in progress")]
    NoLoginInProgress,
    /// The `state` does not match this browser's login.
    #[error("state mismatch")]
    StateMismatch,
    /// The login took too long.
    #[error("login expired")]
    Expired,
    /// The person declined on GitHub.
    #[error("access denied at GitHub")]
    Denied,
    /// GitHub sent no code.
    #[error("no code")]
    MissingCode,
    /// GitHub refused to redeem the code.
    #[error("code refused: {0}")]
    CodeRefused(String),
    /// GitHub could not be reached.
    #[error("GitHub unreachable")]
    GithubDown,
    /// GitHub answered something unusable.
    #[error("GitHub error: {0}")]
    Github(String),
    /// The session store failed.
    #[error("session store: {0}")]
    Session(String),
    /// A logout posted from a page of another origin.
    #[error("logout from another origin")]
    ForeignOrigin,
}

impl LoginError {
    /// A session-store failure.
    pub fn session(e: tower_sessions::session::Error) -> Self {
        Self::Session(e.to_string())
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::NoLoginInProgress => (
                StatusCode::BAD_REQUEST,
                "No login in progress",
                "This browser has no GitHub login in progress: the link was already used, it belongs to another browser, or the session expired.".into(),
            ),
            Self::StateMismatch => (
                StatusCode::BAD_REQUEST,
                "This login link does not belong to this browser",
                "The login was refused because its state did not match the one this browser started with. This protects you from someone else's login being slipped into your browser.".into(),
            ),
            Self::Expired => (
                StatusCode::BAD_REQUEST,
                "The login took too long",
                "A login has to be completed within 10 minutes.".into(),
            ),
            Self::Denied => (
                StatusCode::FORBIDDEN,
                "You declined on GitHub",
                "GitHub says access was not granted, so you are not logged in. The gateway only reads your identity and memberships.".into(),
            ),
            Self::MissingCode => (
                StatusCode::BAD_REQUEST,
                "GitHub sent no login code",
                "The callback carried no authorization code.".into(),
            ),
            Self::CodeRefused(why) => (
                StatusCode::BAD_REQUEST,
                "GitHub did not accept the login code",
                format!("The code may have expired or been used already. GitHub said: {why}"),
            ),
            Self::GithubDown => (
                StatusCode::BAD_GATEWAY,
                "GitHub could not be reached",
                "GitHub did not answer in time. Please try again in a moment.".into(),
            ),
            Self::Github(_) => (
                StatusCode::BAD_GATEWAY,
                "GitHub sent an unexpected answer",
                "The login could not be completed because of an unexpected answer from GitHub. Please try again.".into(),
            ),
            Self::Session(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Your session is not available",
                "The gateway's session store is not available right now. Please try again in a moment.".into(),
            ),
            Self::ForeignOrigin => (
                StatusCode::FORBIDDEN,
                "Not logged out",
                "The logout came from a page of another site, so it was ignored. Use the Log out button on this gateway's home page.".into(),
            ),
        }
    }
}

impl IntoResponse for LoginError {
    fn into_response(self) -> Response {
        let (status, title, detail) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "login failed");
        } else {
            tracing::info!(error = %self, "login refused");
        }
        render(
            status,
            &LoginErrorPage {
                title,
                detail: &detail,
            },
        )
    }
}

/// An error for the JSON endpoints (`/auth/me`, `/pusher/*`, unknown
/// routes): `{"error": "..."}` with its status. The message is safe to show;
/// causes go to the log where the error is made.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    message: String,
    /// For a 429: whole seconds until a retry may succeed.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429: over a `[limits]` rate; `Retry-After` says when to try again.
    pub fn too_many(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests; try again after the time in Retry-After",
            )
        }
    }

    /// The message the client gets.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400: malformed input; the message names the field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no logged-in session.
    pub fn logged_out() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not logged in: log in with GitHub at /auth/login",
        )
    }

    /// 503: the session store failed (logged here).
    pub fn session(e: tower_sessions::session::Error) -> Self {
        tracing::error!(error = %e, "session store failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session store is unavailable; try again shortly",
        )
    }
}

impl From<crate::channel::InputError> for ApiError {
    fn from(e: crate::channel::InputError) -> Self {
        Self::bad_request(e.to_string())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}
