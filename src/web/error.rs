//! The two kinds of error that leave the gateway, each logged in one place
//! (its `into_response`): [`PageError`], an HTML page for a person in a
//! browser that says what happened and offers to try again, and
//! [`ApiError`], a JSON `{"error": ...}` for the Pusher client and scripts.
//! The client gets a safe message; the cause of a 5xx goes to the log only.

use askama::Template;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::html::render;

#[derive(Template)]
#[template(path = "login_error.html")]
struct PageErrorPage<'a> {
    title: &'a str,
    detail: &'a str,
}

/// Why a login did not complete, shown as a page with a "Try again" link.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
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

impl PageError {
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

impl PageError {
    /// Whether it is the client's doing (a 4xx).
    pub fn is_refusal(&self) -> bool {
        self.parts().0.is_client_error()
    }

    /// The page, without the log line [`IntoResponse`] writes: for a caller
    /// that logs it its own way.
    pub fn page(self) -> Response {
        let (status, title, detail) = self.parts();
        render(
            status,
            &PageErrorPage {
                title,
                detail: &detail,
            },
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, detail) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "login failed");
        } else {
            tracing::info!(error = %self, "login refused");
        }
        render(
            status,
            &PageErrorPage {
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
    /// What went wrong, for the log only (5xx).
    cause: Option<String>,
    /// A 401 for a bearer token: says so in `WWW-Authenticate`.
    bearer: bool,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            cause: None,
            bearer: false,
        }
    }

    /// 500: the gateway failed; `cause` goes to the log, never to the client.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the gateway failed to answer; the cause is in its log",
            )
        }
    }

    /// This error with a cause for the log (shown only for a 5xx).
    pub fn because(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// 429: over a `[limits]` rate; `Retry-After` says when to try again.
    /// This answer, with `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

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

    /// 401 for a request whose bearer token does not authenticate anyone,
    /// with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750).
    pub fn bad_token(message: impl Into<String>) -> Self {
        Self {
            bearer: true,
            ..Self::new(StatusCode::UNAUTHORIZED, message)
        }
    }

    /// 503: the session store failed (logged here).
    pub fn session(e: tower_sessions::session::Error) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session store is unavailable; try again shortly",
        )
        .because(format!("session store: {e}"))
    }
}

impl From<crate::channel::InputError> for ApiError {
    fn from(e: crate::channel::InputError) -> Self {
        Self::bad_request(e.to_string())
    }
}

/// A 503's message and cause, handed by the answer to the request's
/// observer ([`super::observe`]), which logs it in the gateway's own quiet
/// log: an outage of GitHub or the store is one line a minute per kind.
#[derive(Debug, Clone)]
pub struct Outage {
    /// What the client was told (the kind).
    pub message: String,
    /// Why, for the log.
    pub cause: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The one place an API error is logged: a 5xx with its cause. A
        // 503 is what an outage of GitHub or the store looks like, for
        // every request at once: it goes to the observer with its cause,
        // which writes the first of a kind each minute and counts the
        // rest. Anything else is a fault of ours.
        let outage = (self.status == StatusCode::SERVICE_UNAVAILABLE).then(|| Outage {
            cause: self.cause.clone().unwrap_or_else(|| self.message.clone()),
            message: self.message.clone(),
        });
        if self.status.is_server_error() && outage.is_none() {
            let cause = self.cause.as_deref().unwrap_or(&self.message);
            tracing::error!(status = self.status.as_u16(), %cause, "answered with a server error");
        }
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response();
        if let Some(outage) = outage {
            response.extensions_mut().insert(outage);
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        if self.bearer {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
        }
        response
    }
}
