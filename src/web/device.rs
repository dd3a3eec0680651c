//! `POST /auth/device` and `POST /auth/device/token`: GitHub's device flow
//! through the gateway, for apps without a browser. At the end the device
//! gets a bearer token (`cg_...`), never GitHub's token.
//!
//! The device code handed out is GitHub's sealed with the gateway's key
//! (with its expiry, its poll interval and the token's name): a device can
//! poll only through the gateway, one forged or changed is refused without
//! asking GitHub, and any instance sharing the key can answer its polls.
//! Polls are paced here: one too soon (or while another for the same code
//! is with GitHub) is told `slow_down` without a call to GitHub, and a code
//! that produced a token is spent, in this process and at GitHub.
//!
//! On a Redis store the pace and the end hold for the fleet: before a poll
//! goes to GitHub, the instance claims the device code's poll in the store
//! for the interval (a poll at any instance within it is told `slow_down`
//! without a call to GitHub), and how a code ended (a token, expired,
//! refused) and the interval GitHub last asked for are kept in the store
//! under the code's digest, read before each poll. When the store does
//! not answer, the poll is not passed on (503: the device polls again).

use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::ClientAddr;
use super::form;
use super::limits::Key;
use super::memo::Poll;
use super::state::AppState;
use crate::crypto::{Keys, Purpose};
use crate::excerpt::Excerpt;
use crate::github::{DevicePoll, GithubError};
use crate::secret::Secret;
use crate::session::tokens::{CreateError, Kind, check_name};
use crate::session::{Identity, expiry, refresh_at};

/// What a device token is called unless the device names it.
const DEFAULT_NAME: &str = "device sign-in";
/// What RFC 8628 adds to the interval after each `slow_down`.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The longest interval kept: GitHub's device codes live 15 minutes. (A
/// bound only against overflow: pacing below what GitHub asks for would
/// earn a `slow_down` on every poll.)
const MAX_INTERVAL: Duration = Duration::from_secs(900);

/// GitHub's device code and what goes with it, sealed into the one the
/// device holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct Sealed {
    /// GitHub's device code.
    code: String,
    /// When it expires (Unix seconds).
    expires_at: i64,
    /// GitHub's poll interval, seconds.
    interval: u64,
    /// The token's name.
    name: String,
}

/// What a device code the gateway handed out holds; none for anything else.
pub(crate) fn open_device_code(keys: &Keys, presented: &str) -> Option<Sealed> {
    let json = keys.open(Purpose::DeviceCode, presented).ok()?;
    serde_json::from_slice(&json).ok()
}

/// The OAuth-style refusal of the token endpoint: 400 `{"error": CODE,
/// "error_description": ...}` (RFC 8628).
fn refusal(code: &'static str, description: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": code, "error_description": description.into() })),
    )
        .into_response()
}

fn slow_down(interval: Duration) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "error": "slow_down",
            "error_description": format!("poll at most every {} seconds", interval.as_secs()),
            "interval": interval.as_secs(),
        })),
    )
        .into_response()
}

/// `POST /auth/device`, optionally with `name` (form or JSON) for the
/// token: 200 `{"device_code","user_code","verification_uri","expires_in","interval"}`.
/// `[device] enabled = false`: the device flow's routes are 404 like any
/// unknown path (read per request, so a reload turns them on or off).
pub async fn only_when_enabled(
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if state.config().device.enabled {
        next.run(request).await
    } else {
        super::pages::not_found().await.into_response()
    }
}

pub async fn start(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let limit = state.limits().login.clone();
    if let Err(wait) = limit.admit(&state.room, Key::addr(addr)).await {
        state.quiet.info(
            "device login refused: over limits.login_per_minute",
            addr.to_string(),
        );
        return Err(ApiError::too_many(wait));
    }
    let body = form::read(body).await?;
    let name = match form::field(&parts.headers, &body, "name")? {
        Some(name) => check_name(&name)
            .map(str::to_owned)
            .map_err(ApiError::bad_request)?,
        None => DEFAULT_NAME.to_owned(),
    };
    let config = state.config();
    let github = &config.github;
    let code = state
        .github
        .device_code(&github.web_url, &github.client_id, &github.scopes)
        .await
        .map_err(|e| github_failure(e, "start a device login"))?;
    let sealed = Sealed {
        code: code.device_code.expose().clone(),
        expires_at: state
            .clock
            .unix_now()
            .saturating_add_unsigned(code.expires_in),
        interval: code.interval,
        name,
    };
    let sealed = state.keys.seal(
        Purpose::DeviceCode,
        &serde_json::to_vec(&sealed).expect("a device code serializes"),
    );
    Ok(Json(json!({
        "device_code": sealed,
        "user_code": code.user_code,
        "verification_uri": code.verification_uri,
        "expires_in": code.expires_in,
        "interval": code.interval,
    }))
    .into_response())
}

/// `POST /auth/device/token` with `device_code` (form or JSON): 200
/// `{"access_token":"cg_...","token_type":"Bearer","expires_in":SECONDS}`
/// once the person approved, else 400 with GitHub's `authorization_pending`,
/// `slow_down`, `expired_token` or `access_denied` (or `invalid_grant` for
/// a code this gateway did not issue or that was used already).
pub async fn token(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let limit = state.limits().auth.clone();
    if let Err(wait) = limit.admit(&state.room, Key::addr(addr)).await {
        return Err(ApiError::too_many(wait));
    }
    let (parts, body) = request.into_parts();
    let body = form::read(body).await?;
    let Some(presented) = form::field(&parts.headers, &body, "device_code")? else {
        return Ok(refusal("invalid_request", "device_code is missing"));
    };
    let Some(sealed) = open_device_code(&state.keys, &presented) else {
        return Ok(refusal(
            "invalid_grant",
            "this device_code was not issued by this gateway",
        ));
    };
    // Strictly past: within its last second GitHub has the last word.
    if state.clock.unix_now() > sealed.expires_at {
        return Ok(refusal(
            "expired_token",
            "the device code expired: start again at POST /auth/device",
        ));
    }
    let key: [u8; 32] = Sha256::digest(sealed.code.as_bytes()).into();
    let poll = state.device_polls.of(key, || Poll {
        next_at: state.clock.now(),
        interval: Duration::from_secs(sealed.interval).min(MAX_INTERVAL),
        in_flight: false,
        ended: None,
    });
    // Let through one poll at a time, no sooner than the interval.
    {
        let mut p = poll.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(code) = p.ended {
            return Ok(ended(code));
        }
        let now = state.clock.now();
        if p.in_flight || now < p.next_at {
            p.interval = (p.interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
            p.next_at = now + p.interval;
            return Ok(slow_down(p.interval));
        }
        p.in_flight = true;
        p.next_at = now + p.interval;
    }
    let returned = InFlight(&poll);
    if state.room.is_fleet() {
        let interval = poll.lock().unwrap_or_else(|e| e.into_inner()).interval;
        match fleet_turn(&state, &key, interval).await {
            Ok(Turn::Go) => {}
            Ok(Turn::Ended(code)) => {
                poll.lock().unwrap_or_else(|e| e.into_inner()).ended = Some(code);
                return Ok(ended(code));
            }
            Ok(Turn::Wait(interval)) => {
                let mut p = poll.lock().unwrap_or_else(|e| e.into_inner());
                p.interval = p.interval.max(interval);
                p.next_at = state.clock.now() + p.interval;
                return Ok(slow_down(p.interval));
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the session store is unavailable; poll again shortly",
                )
                .because(format!("device flow: session store: {e}")));
            }
        }
    }
    let config = state.config().clone();
    let answer = state
        .github
        .poll_device(
            &config.github.web_url,
            &config.github.client_id,
            &Secret::new(sealed.code.clone()),
        )
        .await;
    let finish = |end: Option<&'static str>, interval: Option<Duration>| {
        let mut p = poll.lock().unwrap_or_else(|e| e.into_inner());
        p.ended = end;
        if let Some(interval) = interval {
            p.interval = interval.min(MAX_INTERVAL);
            p.next_at = state.clock.now() + p.interval;
        }
    };
    // What the other instances must know of this poll's answer.
    let room = &state.room;
    let tell = |what: Kept| async move {
        if room.is_fleet()
            && let Err(e) = room.put(&fleet_key(&key), &what.text(), DEVICE_KEPT).await
        {
            tracing::warn!(error = %e, "the other instances were not told how a device code's poll ended");
        }
    };
    let answer = match answer {
        Ok(DevicePoll::Token(token)) => {
            finish(Some("invalid_grant"), None);
            tell(Kept::Ended("invalid_grant")).await;
            token
        }
        Ok(DevicePoll::Pending) => {
            return Ok(refusal(
                "authorization_pending",
                "the person has not approved this device yet",
            ));
        }
        Ok(DevicePoll::SlowDown(interval)) => {
            let current = poll.lock().unwrap_or_else(|e| e.into_inner()).interval;
            let interval = interval.map_or(current + SLOW_DOWN_STEP, Duration::from_secs);
            finish(None, Some(interval));
            tell(Kept::Interval(interval.min(MAX_INTERVAL))).await;
            return Ok(slow_down(interval.min(MAX_INTERVAL)));
        }
        Ok(DevicePoll::Expired) => {
            finish(Some("expired_token"), None);
            tell(Kept::Ended("expired_token")).await;
            return Ok(ended("expired_token"));
        }
        Ok(DevicePoll::Denied) => {
            finish(Some("access_denied"), None);
            tell(Kept::Ended("access_denied")).await;
            return Ok(ended("access_denied"));
        }
        Ok(DevicePoll::Refused(code)) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("GitHub refused the device login: {code}{}", hint(&code)),
            )
            .because(format!("device flow: GitHub answered {code}")));
        }
        Err(e) => return Err(github_failure(e, "finish the device login")),
    };
    drop(returned);
    let expires_in = answer.expires_in;
    let refresh = answer.refresh;
    let answer = answer.access;
    let (read, membership) = match state.memberships.login(&answer).await {
        Ok(read) => read,
        Err(e) => {
            give_back(&state, &config, &answer).await;
            return Err(github_failure(
                e,
                "read who approved the device login (start it again)",
            ));
        }
    };
    if let Err(e) = &membership {
        tracing::warn!(login = %read.user.login, error = %e, "membership not read at device login");
    }
    let now = state.clock.unix_now();
    let identity = Identity {
        user: read.user,
        token: state.keys.seal_token(&answer),
        logged_in_at: now,
        refresh: refresh.map(|r| state.keys.seal_token(&r)),
        expires_at: expiry(now, expires_in),
        refresh_at: refresh_at(now, expires_in),
    };
    let made = match state
        .tokens
        .create(
            &identity,
            &sealed.name,
            Kind::Device,
            now,
            (config.session.ttl, config.session.max_age),
        )
        .await
    {
        Ok(made) => made,
        Err(e) => {
            give_back(&state, &config, &answer).await;
            return Err(match e {
                CreateError::TooMany => ApiError::new(StatusCode::CONFLICT, e.to_string()),
                CreateError::Store(e) => ApiError::session(e.into()),
            });
        }
    };
    tracing::info!(
        login = %identity.user.login,
        id = identity.user.id,
        token_id = %made.id,
        name = %Excerpt::of(&made.name),
        "logged in with the device flow"
    );
    Ok(Json(json!({
        "access_token": made.token.expose(),
        "token_type": "Bearer",
        "expires_in": config.session.max_age.as_secs(),
    }))
    .into_response())
}

/// Revokes at GitHub the token of a device login that could not finish:
/// nothing holds it, and GitHub keeps only ten per person and app.
async fn give_back(state: &AppState, config: &crate::config::Config, token: &Secret<String>) {
    let github = &config.github;
    match state
        .github
        .revoke_token(&github.client_id, &github.client_secret, token)
        .await
    {
        Ok(()) => tracing::info!("the GitHub token of an unfinished device login was revoked"),
        Err(e) => tracing::warn!(
            error = %e,
            "the GitHub token of an unfinished device login could not be revoked"
        ),
    }
}

/// How long the fleet keeps what it knows of a device code: GitHub's
/// device codes live 15 minutes.
const DEVICE_KEPT: Duration = Duration::from_secs(20 * 60);

/// Where the fleet keeps how the device code of digest `key` ended, or the
/// interval GitHub last asked for (never the code itself).
fn fleet_key(key: &[u8; 32]) -> String {
    format!("channelgate:device:{}", hex::encode(key))
}

/// What the fleet keeps of a device code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// Its flow ended: every later poll's answer.
    Ended(&'static str),
    /// GitHub asked for this interval.
    Interval(Duration),
}

impl Kept {
    fn text(self) -> String {
        match self {
            Self::Ended(code) => format!("ended:{code}"),
            Self::Interval(interval) => format!("interval:{}", interval.as_secs()),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        if let Some(code) = text.strip_prefix("ended:") {
            return ["invalid_grant", "expired_token", "access_denied"]
                .into_iter()
                .find(|c| *c == code)
                .map(Self::Ended);
        }
        let seconds = text.strip_prefix("interval:")?.parse().ok()?;
        Some(Self::Interval(Duration::from_secs(seconds)))
    }
}

/// Whether a poll may go to GitHub, by what the fleet knows.
enum Turn {
    /// It may: this instance holds the code's poll for the interval.
    Go,
    /// The code's flow ended at some instance.
    Ended(&'static str),
    /// Another poll went within the interval (this one, at least).
    Wait(Duration),
}

/// Asks the fleet whether a poll of the code of digest `key`, paced at
/// `interval` here, may go to GitHub: not when its flow ended at any
/// instance, nor within the interval (GitHub's latest, as any instance
/// heard it) of another poll at any instance.
async fn fleet_turn(
    state: &AppState,
    key: &[u8; 32],
    interval: Duration,
) -> Result<Turn, crate::room::RoomError> {
    let kept = state.room.get(&fleet_key(key)).await?;
    let interval = match kept.as_deref().and_then(Kept::parse) {
        Some(Kept::Ended(code)) => return Ok(Turn::Ended(code)),
        Some(Kept::Interval(asked)) => interval.max(asked).min(MAX_INTERVAL),
        None => interval,
    };
    let poll = format!("{}:poll", fleet_key(key));
    Ok(match state.room.claim(&poll, interval).await? {
        // Never released: it lapses when the interval has passed.
        Some(_) => Turn::Go,
        None => Turn::Wait(interval),
    })
}

/// Marks a poll back from GitHub however the request ends (a client that
/// hangs up mid-poll included).
struct InFlight<'a>(&'a Mutex<Poll>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).in_flight = false;
    }
}

/// The answer to a poll of a code whose flow has ended.
fn ended(code: &'static str) -> Response {
    let description = match code {
        "expired_token" => "the device code expired: start again at POST /auth/device",
        "access_denied" => "the person refused this device",
        _ => "this device code was used already",
    };
    refusal(code, description)
}

/// What to do about GitHub's refusal `code`, if anything is known.
fn hint(code: &str) -> &'static str {
    match code {
        "device_flow_disabled" => " (turn on Device Flow in the OAuth app's settings on GitHub)",
        "incorrect_client_credentials" | "unauthorized_client" => {
            " (github.client_id is not an OAuth app GitHub knows)"
        }
        _ => "",
    }
}

/// A GitHub failure while trying `to`: 503 when GitHub is down or rate
/// limited, else 502.
fn github_failure(e: GithubError, to: &str) -> ApiError {
    let status = match e {
        GithubError::Unavailable(_) | GithubError::RateLimited { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::BAD_GATEWAY,
    };
    let code = match &e {
        GithubError::Forbidden(code) => format!(": {code}{}", hint(code)),
        _ => String::new(),
    };
    ApiError::new(status, format!("GitHub could not {to}{code}")).because(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_fleet_keeps_of_a_device_code_reads_back_and_nothing_else_does() {
        for kept in [
            Kept::Ended("invalid_grant"),
            Kept::Ended("expired_token"),
            Kept::Ended("access_denied"),
            Kept::Interval(Duration::from_secs(10)),
        ] {
            assert_eq!(Kept::parse(&kept.text()), Some(kept));
        }
        for odd in [
            "",
            "ended:",
            "ended:anything",
            "interval:",
            "interval:-1",
            "7",
        ] {
            assert_eq!(Kept::parse(odd), None, "{odd}");
        }
        // The key names the code's digest, never the code.
        let key = fleet_key(&Sha256::digest(b"gh-device-code").into());
        assert!(!key.contains("gh-device-code"), "{key}");
    }
}
