//! Logging in with GitHub (OAuth web flow with `state` and PKCE S256) and
//! out again.
//!
//! Nothing is stored for a visitor who has not logged in: `/auth/login`
//! keeps the `state`, the PKCE verifier and where to return in a short-lived
//! cookie sealed with the gateway's key (encrypted and authenticated), so
//! anonymous traffic cannot grow the session store.
//!
//! The order in `/auth/callback` is the security of it: the login cookie is
//! cleared on every outcome and its `state` recorded as spent before
//! anything else (so it works once, whatever happens next, 5xx included;
//! on a Redis store, spent for the whole fleet, so that a replay at another
//! instance never reaches GitHub's token endpoint);
//! the `state` is compared *before* the code is redeemed; the session id is
//! renewed before the identity is stored (no fixation); and the redirect
//! goes only to a same-origin path.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use oauth2::basic::BasicErrorResponse;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RequestTokenError, Scope,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use tower_sessions::cookie::{Cookie, SameSite};
use url::Url;

use super::error::{ApiError, PageError};
use super::extract::{ClientAddr, Credential, caller, current_identity, end};
use super::limits::Key;
use super::state::{AppState, LOGIN_TIMEOUT};
use crate::crypto::{Purpose, SealedToken, constant_time_eq};
use crate::excerpt::Excerpt;
use crate::github::{GithubError, GithubUser};
use crate::revocation::Ended;
use crate::secret::Secret;
use crate::session::people::People;
use crate::session::{Identity, expiry, inactivity, keep_alive, refresh_at};

/// A login between `/auth/login` and `/auth/callback`, as its sealed
/// cookie holds it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    /// The OAuth `state`, compared with what GitHub sends back.
    state: String,
    /// The PKCE verifier for the code exchange.
    pkce_verifier: String,
    /// Where to go after login: a checked same-origin path.
    return_to: String,
    /// When the login started (Unix seconds); old attempts are refused.
    started_at: i64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("return_to", &self.return_to)
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    /// The login a cookie's value holds, if it was sealed by this gateway
    /// for a login and holds one.
    pub(crate) fn open(keys: &crate::crypto::Keys, sealed: &str) -> Option<Self> {
        let json = keys.open(Purpose::LoginState, sealed).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// The login cookie's name: beside the session cookie's, `__Host-` too over https.
fn login_cookie_name(state: &AppState) -> String {
    format!("{}-login", state.session_cookie_name)
}

/// The `Set-Cookie` value of the login cookie: `value` for `max_age`, or
/// an empty value that expires it at once.
fn login_cookie(state: &AppState, value: String, max_age: Duration) -> HeaderValue {
    let cookie = Cookie::build((login_cookie_name(state), value))
        .http_only(true)
        // Lax: the browser sends it on the top-level GET back from GitHub.
        .same_site(SameSite::Lax)
        .secure(state.config().server.is_https())
        .path("/")
        .max_age(time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    HeaderValue::try_from(cookie.to_string()).expect("a cookie of base64 is a valid header")
}

/// The login cookie's value in the request, if any.
fn login_cookie_value(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let name = login_cookie_name(state);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Query of `/auth/login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// `GET /auth/login`: seals `state`, the PKCE verifier and where to return
/// into a 10-minute cookie, then sends the browser to GitHub. Stores nothing.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Query(query): Query<LoginQuery>,
) -> Response {
    let limit = state.limits().login.clone();
    if let Err(wait) = limit.admit(&state.room, Key::addr(addr)).await {
        state.quiet.info(
            "login refused: over limits.login_per_minute",
            addr.to_string(),
        );
        return ApiError::too_many(wait).into_response();
    }
    let return_to = safe_return_to(query.return_to.as_deref(), state.config().server.public());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = state
        .oauth
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in &state.config().github.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf) = request.url();
    let pending = PendingLogin {
        state: csrf.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        return_to,
        started_at: OffsetDateTime::now_utc().unix_timestamp(),
    };
    let json = serde_json::to_vec(&pending).expect("a login state serializes");
    let sealed = state.keys.seal(Purpose::LoginState, &json);
    (
        AppendHeaders([(SET_COOKIE, login_cookie(&state, sealed, LOGIN_TIMEOUT))]),
        Redirect::to(url.as_str()),
    )
        .into_response()
}

/// The query of `/auth/callback`, as GitHub sends it: the first value of
/// each field, read by hand so that no query, however odd, skips the
/// clearing of the login cookie.
#[derive(Debug, Default)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl CallbackQuery {
    pub(crate) fn parse(uri: &Uri) -> Self {
        let mut q = Self::default();
        for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            let slot = match k.as_ref() {
                "code" => &mut q.code,
                "state" => &mut q.state,
                "error" => &mut q.error,
                "error_description" => &mut q.error_description,
                _ => continue,
            };
            slot.get_or_insert_with(|| v.into_owned());
        }
        q
    }
}

/// `GET /auth/callback`: clears the login cookie whatever happens, spends
/// its `state`, checks it, redeems the code, reads the user, renews the
/// session id, stores the identity, and returns to where the login started.
///
/// Anyone can call it with any `code` and `state`: it counts against
/// `limits.login_per_minute` per client address (a bucket of its own, so a
/// login costs one from each), and its refusals are logged once a minute
/// per address, whatever text they carry.
pub async fn callback(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    session: Session,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let clear = login_cookie(&state, String::new(), Duration::ZERO);
    let limit = state.limits().callback.clone();
    if let Err(wait) = limit.admit(&state.room, Key::addr(addr)).await {
        state.quiet.info(
            "login callback refused: over limits.login_per_minute",
            addr.to_string(),
        );
        return (
            AppendHeaders([(SET_COOKIE, clear)]),
            ApiError::too_many(wait),
        )
            .into_response();
    }
    let outcome = match finish_login(&state, &session, &headers, CallbackQuery::parse(&uri)).await {
        Err(refused) if refused.is_refusal() => {
            let what = "login refused";
            let why = refused.to_string();
            state.quiet.info_with(what, addr.to_string(), || {
                tracing::info!(error = %why, client = %addr, "{what}");
            });
            refused.page()
        }
        other => other.into_response(),
    };
    (AppendHeaders([(SET_COOKIE, clear)]), outcome).into_response()
}

async fn finish_login(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    query: CallbackQuery,
) -> Result<Redirect, PageError> {
    let pending = login_cookie_value(state, headers)
        .and_then(|sealed| PendingLogin::open(&state.keys, &sealed))
        .ok_or(PageError::NoLoginInProgress)?;
    // A state works once, whatever happens next: even a replay of the
    // cookie itself finds it spent, at this instance or any other sharing
    // the store. When the store cannot say, the login does not go on.
    let fresh = state
        .spent_states
        .spend(&state.room, &pending.state)
        .await
        .map_err(|e| {
            PageError::session(tower_sessions::session::Error::Store(
                tower_sessions::session_store::Error::Backend(e.to_string()),
            ))
        })?;
    if !fresh {
        return Err(PageError::NoLoginInProgress);
    }
    let sent = query.state.as_deref().unwrap_or_default();
    if !constant_time_eq(sent.as_bytes(), pending.state.as_bytes()) {
        tracing::warn!("login refused: OAuth state does not match this browser's login");
        return Err(PageError::StateMismatch);
    }
    let elapsed = OffsetDateTime::now_utc().unix_timestamp() - pending.started_at;
    if elapsed.unsigned_abs() > LOGIN_TIMEOUT.as_secs() {
        return Err(PageError::Expired);
    }
    if let Some(error) = query.error {
        // Anyone can call the callback with their own state: what GitHub is
        // said to have sent goes to the log escaped and shortened.
        let denied = error == "access_denied";
        let error = Excerpt::of(&error);
        tracing::info!(%error, "login ended at GitHub");
        return Err(if denied {
            PageError::Denied
        } else {
            PageError::Github(format!(
                "{error}: {}",
                Excerpt::of(&query.error_description.unwrap_or_default())
            ))
        });
    }
    let code = query
        .code
        .filter(|c| !c.is_empty())
        .ok_or(PageError::MissingCode)?;
    let token = state
        .oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
        .request_async(state.github.http())
        .await;
    state.github.count(
        "access_token",
        match &token {
            Ok(_) => Some(200),
            Err(oauth2::RequestTokenError::ServerResponse(_)) => Some(400),
            Err(_) => None,
        },
    );
    let token = token.map_err(token_error)?;
    let expires_in = token.expires_in().map(|d| d.as_secs());
    let refresh = token
        .refresh_token()
        .map(|r| Secret::new(r.secret().clone()));
    let token = Secret::new(token.access_token().secret().clone());
    // /user, the org memberships and the teams, read at once: a login
    // re-reads the membership, so a change on GitHub shows at once.
    let (read, membership) = state.memberships.login(&token).await.map_err(|e| match e {
        GithubError::Unavailable(_) => PageError::GithubDown,
        other => PageError::Github(other.to_string()),
    })?;
    // A new id for the logged-in session: an id fixed before login is now dead.
    if let Some(old) = session.id() {
        state.held.forget(&old);
    }
    session.cycle_id().await.map_err(PageError::session)?;
    session.set_expiry(Some(inactivity(state.config().session.ttl)));
    tracing::info!(login = %read.user.login, id = read.user.id, "logged in");
    match membership {
        Ok(m) => {
            // An org that restricts OAuth apps hides itself from the lists:
            // say so where an admin will look.
            let missing = state.config().rules.orgs_missing_for(&m.person);
            if !missing.is_empty() {
                tracing::info!(
                    login = %read.user.login,
                    orgs = ?missing,
                    "GitHub lists no active membership in these orgs named by the rules; an org that restricts OAuth apps may need to approve this app"
                );
            }
        }
        Err(e) => {
            tracing::warn!(login = %read.user.login, error = %e, "membership not read at login");
        }
    }
    let identity = Identity {
        user: read.user,
        token: state.keys.seal_token(&token),
        logged_in_at: state.clock.unix_now(),
        refresh: refresh.map(|r| state.keys.seal_token(&r)),
        expires_at: expiry(state.clock.unix_now(), expires_in),
        refresh_at: refresh_at(state.clock.unix_now(), expires_in),
    };
    identity.save(session).await.map_err(PageError::session)?;
    keep_alive(session, state.config().session.ttl, state.clock.unix_now())
        .await
        .map_err(PageError::session)?;
    list_login(state, session, &identity).await?;
    Ok(Redirect::to(&pending.return_to))
}

/// Lists the session just logged in in its person's index, saved first to
/// learn its final id; a login past `session.max_per_person` ends the
/// person's oldest sessions and gives their GitHub tokens back. (GitHub
/// keeps ten tokens per person and app, and silently revokes the oldest at
/// the eleventh: better to end that session here than to have it fail
/// later.)
async fn list_login(
    state: &AppState,
    session: &Session,
    identity: &Identity,
) -> Result<(), PageError> {
    session.save().await.map_err(PageError::session)?;
    let Some(id) = session.id() else {
        return Err(PageError::session(tower_sessions::session::Error::Store(
            tower_sessions::session_store::Error::Backend("the session was not saved".into()),
        )));
    };
    let config = arc_swap::Guard::into_inner(state.config());
    let person = identity.user.id;
    let ended = people(state)
        .add(
            person,
            id,
            identity.logged_in_at,
            state.clock.utc_now() + config.session.max_age,
            config.session.max_per_person,
        )
        .await;
    let ended = match ended {
        Ok(ended) => ended,
        Err(e) => {
            // Unlisted, "log out everywhere" could not reach it: no login.
            state.held.forget(&id);
            let _ = session.flush().await;
            return Err(PageError::session(tower_sessions::session::Error::Store(e)));
        }
    };
    if ended.is_empty() {
        return Ok(());
    }
    tracing::info!(
        login = %identity.user.login,
        ended = ended.len(),
        max = config.session.max_per_person,
        "a login past session.max_per_person ended the person's oldest sessions"
    );
    let mut given_up = Vec::with_capacity(ended.len());
    for old in ended {
        state.held.forget(&old.id);
        given_up.extend(old.identity.map(|i| i.token));
    }
    give_back(state, &identity.user, given_up).await;
    Ok(())
}

/// The per-person session indexes of this gateway's store.
fn people(state: &AppState) -> People {
    People::new(state.store.clone(), state.keys.clone())
}

/// Revokes at GitHub the tokens in `given_up` (of sessions and tokens of
/// `user` that just ended) that no remaining session or bearer token of
/// theirs still holds: a bearer token made on the home page holds its
/// session's GitHub token. GitHub keeps ten tokens per person and app, and
/// a token nothing holds should not outlive its login. A failure is
/// logged (never the token) and ends nothing else: the gateway's sessions
/// are already gone.
async fn give_back(state: &AppState, user: &GithubUser, given_up: Vec<SealedToken>) {
    if given_up.is_empty() {
        return;
    }
    let people = people(state);
    let (sessions, tokens) =
        tokio::join!(people.identities(user.id), state.tokens.identities(user.id));
    let held = match (sessions, tokens) {
        (Ok(mut sessions), Ok(tokens)) => {
            sessions.extend(tokens);
            sessions
        }
        (Err(e), _) | (_, Err(e)) => {
            // Unsure whether a token is still used: keep it.
            tracing::warn!(login = %user.login, error = %e, "GitHub tokens not revoked: the session store could not say whether they are still used");
            return;
        }
    };
    let held: Vec<Secret<String>> = held
        .iter()
        .filter_map(|i| state.keys.open_token(&i.token).ok())
        .collect();
    let mut revoke: Vec<Secret<String>> = Vec::new();
    for sealed in &given_up {
        let Ok(token) = state.keys.open_token(sealed) else {
            continue;
        };
        let same = |other: &Secret<String>| {
            constant_time_eq(other.expose().as_bytes(), token.expose().as_bytes())
        };
        if !held.iter().any(same) && !revoke.iter().any(same) {
            revoke.push(token);
        }
    }
    // Held across the calls: a full handle, not the swap's guard.
    let config = arc_swap::Guard::into_inner(state.config());
    let github = &config.github;
    let calls = revoke.iter().map(|token| {
        state
            .github
            .revoke_token(&github.client_id, &github.client_secret, token)
    });
    let answers =
        tokio::time::timeout(GIVE_BACK_WITHIN, futures_util::future::join_all(calls)).await;
    let Ok(answers) = answers else {
        tracing::warn!(login = %user.login, "GitHub tokens of a logout may not be revoked: GitHub did not answer within {}s", GIVE_BACK_WITHIN.as_secs());
        return;
    };
    let mut revoked = 0;
    for answer in answers {
        match answer {
            // 404: GitHub no longer knows it (revoked already).
            Ok(()) | Err(GithubError::NotFound(_)) => revoked += 1,
            Err(e) => {
                tracing::warn!(login = %user.login, error = %e, "a GitHub token of a logout could not be revoked at GitHub");
            }
        }
    }
    if revoked > 0 {
        tracing::info!(login = %user.login, revoked, "GitHub tokens of a logout revoked at GitHub");
    }
}

/// How long a logout waits for GitHub to revoke its tokens.
const GIVE_BACK_WITHIN: Duration = Duration::from_secs(5);

/// Sorts a failed code exchange into what the person should be told.
fn token_error<RE: std::error::Error>(e: RequestTokenError<RE, BasicErrorResponse>) -> PageError {
    /// GitHub reports token errors with HTTP 200 and an `error` field, which
    /// the oauth2 crate sees as an unparsable token response.
    #[derive(Deserialize)]
    struct GithubTokenError {
        error: String,
        error_description: Option<String>,
    }
    match e {
        RequestTokenError::Request(e) => {
            tracing::warn!(error = %e, "GitHub's token endpoint could not be reached");
            PageError::GithubDown
        }
        RequestTokenError::ServerResponse(r) => PageError::CodeRefused(r.error().to_string()),
        RequestTokenError::Parse(_, body) => {
            match serde_json::from_slice::<GithubTokenError>(&body) {
                Ok(g) => PageError::CodeRefused(match g.error_description {
                    Some(d) => format!("{}: {d}", g.error),
                    None => g.error,
                }),
                Err(_) => PageError::Github("an unreadable answer from the token endpoint".into()),
            }
        }
        RequestTokenError::Other(m) => PageError::Github(m),
    }
}

/// `POST /auth/logout`: ends the session (its data, its record in the
/// store and the cookie) and returns home. Only pages of this gateway may
/// log someone out. With a bearer token, revokes that token (204); an
/// unknown one is 401. With `everywhere=true` (a form field, or JSON
/// `{"everywhere": true}`), ends every session and token of the person
/// too, on every instance sharing the store. The GitHub tokens of what
/// ended are revoked at GitHub unless a remaining session or token holds
/// them.
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let everywhere = wants_everywhere(&headers, &body);
    let credential = Credential::of(&headers, session);
    if credential.is_bearer() {
        return match current_identity(&state, &state.config(), &credential).await {
            Ok(None) => credential.unauthenticated().into_response(),
            Ok(Some(identity)) => match log_out(&state, &credential, &identity, everywhere).await {
                Ok(()) => {
                    tracing::info!(login = %identity.user.login, everywhere, "bearer token revoked by its holder");
                    StatusCode::NO_CONTENT.into_response()
                }
                Err(e) => ApiError::session(e).into_response(),
            },
            Err(e) => ApiError::session(e).into_response(),
        };
    }
    if let Some(origin) = headers.get(ORIGIN)
        && origin.as_bytes() != state.config().server.public_origin().as_bytes()
    {
        return PageError::ForeignOrigin.into_response();
    }
    let ended = match current_identity(&state, &state.config(), &credential).await {
        Ok(Some(identity)) => log_out(&state, &credential, &identity, everywhere).await,
        Ok(None) => end(&state, &credential).await,
        Err(e) => Err(e),
    };
    match ended {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => PageError::session(e).into_response(),
    }
}

/// Whether a logout's body asks to end every session: `everywhere=true`
/// in a form, or `{"everywhere": true}` in JSON.
fn wants_everywhere(headers: &HeaderMap, body: &[u8]) -> bool {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if json {
        return serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("everywhere").cloned())
            .is_some_and(|v| v == serde_json::Value::Bool(true) || v == "true");
    }
    url::form_urlencoded::parse(body).any(|(k, v)| k == "everywhere" && v == "true")
}

/// Ends `credential` (the session or token of `identity`), and with
/// `everywhere` every other session and token of the person; then gives
/// back at GitHub what no longer holds a GitHub token.
async fn log_out(
    state: &AppState,
    credential: &Credential,
    identity: &Identity,
    everywhere: bool,
) -> Result<(), tower_sessions::session::Error> {
    use tower_sessions::session::Error::Store as InStore;
    let person = identity.user.id;
    // A cookie session's GitHub token is its own (its login made it). A
    // bearer token's may be a browser session's, and the session may be
    // one no index lists (logged in before the index existed): a bearer
    // logout alone gives nothing back at GitHub, rather than revoke a
    // token a live session still uses.
    let mut given_up = match credential {
        Credential::Cookie(_) => vec![identity.token.clone()],
        _ => Vec::new(),
    };
    if everywhere {
        let sessions = people(state).end_all(person).await.map_err(InStore)?;
        let tokens = state.tokens.end_all(person).await.map_err(InStore)?;
        for ended in &sessions {
            state.held.forget_everywhere(&ended.id).await;
        }
        for (id, _) in &tokens {
            state.held_tokens.forget_everywhere(id).await;
        }
        tracing::info!(
            login = %identity.user.login,
            sessions = sessions.len(),
            tokens = tokens.len(),
            "logged out everywhere: every session and token of the person ended"
        );
        given_up.extend(
            sessions
                .into_iter()
                .filter_map(|e| e.identity.map(|i| i.token)),
        );
        given_up.extend(tokens.into_iter().filter_map(|(_, i)| i.map(|i| i.token)));
        given_up.push(identity.token.clone());
    }
    // The caller's own last: a failure above leaves it able to try again.
    // A cookie session leaves its person's index as it ends.
    end(state, credential).await?;
    give_back(state, &identity.user, given_up).await;
    Ok(())
}

/// Why memberships are not shown, in words for the person: the cause (which
/// may name the GitHub API's URL or a private host) goes to the log only.
pub const MEMBERSHIP_UNKNOWN: &str = "GitHub did not answer or refused to answer for now (an outage or a rate limit); try again shortly";

/// The identity as `/auth/me` shows it: everything but the token, and the
/// memberships the rules see.
#[derive(Debug, Serialize)]
pub struct Me {
    /// GitHub id.
    pub id: u64,
    /// GitHub login.
    pub login: String,
    /// Display name.
    pub name: Option<String>,
    /// Avatar URL.
    pub avatar_url: String,
    /// Active organisations, when GitHub could be asked.
    pub orgs: Option<Vec<String>>,
    /// Teams (`ORG/SLUG`) whose org membership is active, when known.
    pub teams: Option<Vec<String>>,
    /// Why the memberships are missing, if they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub membership_error: Option<String>,
    /// What access the gateway last took back live, and why (within the
    /// last hour), so a page whose connection was ended can say so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<Arc<Ended>>,
}

/// `GET /auth/me`: the caller's identity and memberships as JSON, 401 when
/// logged out (or when GitHub revoked the token). A bearer token works too.
pub async fn me(
    State(state): State<AppState>,
    credential: Credential,
) -> Result<Json<Me>, ApiError> {
    let (identity, membership) = caller(&state, &credential)
        .await
        .map_err(ApiError::session)?
        .person(&credential)?;
    let (user, orgs, teams, membership_error) = match membership {
        Ok(m) => (
            m.user().clone(),
            Some(m.person.orgs.clone()),
            Some(m.person.active_teams().map(ToString::to_string).collect()),
            None,
        ),
        Err(why) => {
            // The cause (a URL, a host name) is for the log, not the caller.
            tracing::debug!(login = %identity.user.login, %why, "memberships not shown");
            (
                identity.user.clone(),
                None,
                None,
                Some(MEMBERSHIP_UNKNOWN.to_owned()),
            )
        }
    };
    let GithubUser {
        id,
        login,
        name,
        avatar_url,
    } = user;
    Ok(Json(Me {
        ended: state.revocation.ended(id),
        id,
        login,
        name,
        avatar_url,
        orgs,
        teams,
        membership_error,
    }))
}

/// `return_to` if it is a path on this origin, else `/`. Refuses
/// scheme-relative (`//x`) and backslash (`/\x`) forms, which browsers
/// resolve to other hosts, and anything with control characters.
pub fn safe_return_to(raw: Option<&str>, base: &Url) -> String {
    let Some(path) = raw else {
        return "/".into();
    };
    let plausible = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= 2048
        && !path.chars().any(char::is_control);
    let same_origin = || {
        let joined = base.join(path).ok()?;
        (joined.origin() == base.origin()).then_some(())
    };
    if plausible && same_origin().is_some() {
        path.to_owned()
    } else {
        "/".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_everywhere_true_logs_out_everywhere() {
        let typed = |content_type: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
            headers
        };
        let form = typed("application/x-www-form-urlencoded");
        let json = typed("application/json; charset=utf-8");
        for (headers, body, wanted) in [
            (&form, "everywhere=true", true),
            (&form, "a=b&everywhere=true", true),
            (&HeaderMap::new(), "everywhere=true", true),
            (&form, "everywhere=false", false),
            (&form, "everywhere=TRUE&x", false),
            (&form, "", false),
            (&json, r#"{"everywhere": true}"#, true),
            (&json, r#"{"everywhere": "true"}"#, true),
            (&json, r#"{"everywhere": false}"#, false),
            (&json, r#"{"everywhere": 1}"#, false),
            (&json, "everywhere=true", false),
            (&form, r#"{"everywhere": true}"#, false),
        ] {
            assert_eq!(wants_everywhere(headers, body.as_bytes()), wanted, "{body}");
        }
    }

    #[test]
    fn return_to_keeps_only_same_origin_paths() {
        let base = &Url::parse("http://localhost:8080").unwrap();
        for good in ["/", "/channels", "/a/b?c=d#e", "/%2F%2Fx"] {
            assert_eq!(safe_return_to(Some(good), base), good);
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/\t/evil.example",
            "/\n",
            "http://localhost:8080/x",
        ] {
            assert_eq!(safe_return_to(Some(bad), base), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None, base), "/");
    }
}
