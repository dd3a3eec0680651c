//! Who is asking: the client's address, and the logged-in person with their
//! current membership.
//!
//! A request says who is asking with a [`Credential`]: the session cookie,
//! or a bearer token (a session of its own, see [`crate::session::tokens`]).
//! The Pusher endpoints must refuse malformed input before they touch the
//! session, so they call [`current_identity`] and [`caller_with`]
//! themselves after parsing; the rules of a session (`max_age`,
//! revocation, keep-alive) live here once for every route.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tower_sessions::Session;

use super::error::ApiError;
use super::limits;
use super::refresh::{self, RefreshError};
use super::state::AppState;
use crate::config::Config;
use crate::membership::{Membership, MembershipError};
use crate::session::people::People;
use crate::session::tokens::{BearerToken, Malformed, renew_every_bearer};
use crate::session::{Identity, keep_alive, renew_every};

/// The client's address (see [`limits::client_addr`]), from the peer the
/// server saw and, behind a trusted proxy, `X-Forwarded-For`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_addr_of(parts, state)))
    }
}

/// The client's address for a request's parts.
pub fn client_addr_of(parts: &Parts, state: &AppState) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    limits::client_addr(peer, &parts.headers, &state.config().server.trusted_proxies)
}

/// How a request says who is asking.
#[derive(Clone)]
pub enum Credential {
    /// The session cookie (a session without an identity when there is none).
    Cookie(Session),
    /// `Authorization: Bearer cg_...`: a token session of its own.
    Bearer(BearerToken),
    /// An `Authorization` header that holds no token of this gateway.
    Refused(Malformed),
}

impl Credential {
    /// The credential of a request: its `Authorization` header when it has
    /// one (its cookie is then ignored, whatever it holds), else its cookie.
    pub fn of(headers: &HeaderMap, session: Session) -> Self {
        match headers.get(AUTHORIZATION) {
            Some(value) => match BearerToken::from_header(value.as_bytes()) {
                Ok(token) => Self::Bearer(token),
                Err(why) => Self::Refused(why),
            },
            None => Self::Cookie(session),
        }
    }

    /// Whether the request came with an `Authorization` header rather than
    /// the ambient cookie.
    pub fn is_bearer(&self) -> bool {
        !matches!(self, Self::Cookie(_))
    }

    /// The 401 for a request this credential does not authenticate.
    pub fn unauthenticated(&self) -> ApiError {
        match self {
            Self::Cookie(_) => ApiError::logged_out(),
            Self::Bearer(_) => ApiError::bad_token(
                "the bearer token is unknown, revoked or expired: sign in again",
            ),
            Self::Refused(why) => ApiError::bad_token(why.to_string()),
        }
    }

    /// The 401 once GitHub has refused the person's token (the session or
    /// bearer token has just been ended).
    pub fn revoked(&self) -> ApiError {
        match self {
            Self::Cookie(_) => ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "GitHub no longer accepts this login; log in again at /auth/login",
            ),
            _ => ApiError::bad_token(
                "GitHub no longer accepts the login behind this token; it has been revoked: sign in again",
            ),
        }
    }
}

impl Caller {
    /// The person, or the 401 that `credential` earns: not logged in (or
    /// an unknown token), or GitHub no longer accepts their login.
    pub fn person(
        self,
        credential: &Credential,
    ) -> Result<(Arc<Identity>, MembershipNow), ApiError> {
        match self {
            Self::Person {
                identity,
                membership,
            } => Ok((identity, membership)),
            Self::LoggedOut => Err(credential.unauthenticated()),
            Self::Revoked => Err(credential.revoked()),
        }
    }
}

impl FromRequestParts<AppState> for Credential {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, why)| ApiError::internal(format!("no session layer: {why}")))?;
        Ok(Self::of(&parts.headers, session))
    }
}

/// A person's current membership, or why it cannot be known now.
pub type MembershipNow = Result<Arc<Membership>, String>;

/// Who is calling, as every logged-in route needs to know it.
pub enum Caller {
    /// No identity in this session.
    LoggedOut,
    /// GitHub refused the person's token; the session has just been ended.
    Revoked,
    /// A logged-in person.
    Person {
        /// Who they are.
        identity: Arc<Identity>,
        /// Their current membership, or why it cannot be known now.
        membership: MembershipNow,
    },
}

/// The caller of this request: their identity from the session and their
/// current membership. A token GitHub revoked ends the session here, for
/// every route alike.
pub async fn caller(
    state: &AppState,
    credential: &Credential,
) -> Result<Caller, tower_sessions::session::Error> {
    match current_identity(state, &state.config(), credential).await? {
        None => Ok(Caller::LoggedOut),
        Some(identity) => caller_with(state, credential, identity).await,
    }
}

/// The identity of this session, unless it is past `session.max_age` (then
/// the session is ended here). A live session has its expiry pushed back.
///
/// The identity is taken from [`AppState::held`] when this process decoded
/// it a moment ago and the session is not due for renewal; otherwise it is
/// loaded from the store (which also finds a session that expired or was
/// logged out elsewhere) and held for the next request. `config` is the
/// one the request is answered by. A bearer token is a session of its own,
/// held and renewed the same way (its "last used" time more often), in a
/// map of its own: a cookie can never name a held token.
pub async fn current_identity(
    state: &AppState,
    config: &Config,
    credential: &Credential,
) -> Result<Option<Arc<Identity>>, tower_sessions::session::Error> {
    let now = state.clock.unix_now();
    let ttl = config.session.ttl;
    // Where the identity came from, and so what a live one still needs.
    enum Found {
        Held,
        /// A cookie session's store record: its expiry is pushed back.
        Stored,
        /// A token's record (already renewed), by record id.
        Token(tower_sessions::session::Id, i64),
    }
    let (identity, found) = match credential {
        Credential::Refused(_) => return Ok(None),
        Credential::Cookie(session) => {
            match session
                .id()
                .and_then(|id| state.held.get(&id, now, renew_every(ttl)))
            {
                Some(identity) => (identity, Found::Held),
                None => match Identity::load(session).await? {
                    Some(identity) => (Arc::new(identity), Found::Stored),
                    None => return Ok(None),
                },
            }
        }
        Credential::Bearer(token) => {
            let id = state.tokens.record_id(token);
            match state.held_tokens.get(&id, now, renew_every_bearer(ttl)) {
                Some(identity) => (identity, Found::Held),
                None => match state
                    .tokens
                    .authenticate(token, now, ttl)
                    .await
                    .map_err(tower_sessions::session::Error::Store)?
                {
                    Some(t) => (t.identity, Found::Token(id, t.renewed)),
                    None => return Ok(None),
                },
            }
        }
    };
    if past_max_age(config, &identity, now) {
        tracing::info!(login = %identity.user.login, "session reached session.max_age; ending it");
        end(state, credential).await?;
        return Ok(None);
    }
    match (found, credential) {
        (Found::Stored, Credential::Cookie(session)) => {
            let renewed = keep_alive(session, ttl, now).await?;
            if let Some(id) = session.id() {
                state.held.hold(id, identity.clone(), renewed);
            }
        }
        (Found::Token(id, renewed), _) => state.held_tokens.hold(id, identity.clone(), renewed),
        _ => {}
    }
    Ok(Some(identity))
}

/// However active, a session ends `max_age` after login (a token, after it
/// was made): the login (which GitHub lets people rename) and the token are
/// then read afresh. (Clocks of several instances may disagree a little: a
/// login "in the future" counts as just now.)
fn past_max_age(config: &Config, identity: &Identity, now: i64) -> bool {
    let age = now
        .saturating_sub(identity.logged_in_at)
        .max(0)
        .unsigned_abs();
    age >= config.session.max_age.as_secs()
}

/// Ends the session: forgotten by this process, deleted from the store,
/// its cookie removed; a bearer token is revoked.
pub async fn end(
    state: &AppState,
    credential: &Credential,
) -> Result<(), tower_sessions::session::Error> {
    match credential {
        Credential::Cookie(session) => {
            if let Some(id) = session.id() {
                state.held.forget_everywhere(&id).await;
            }
            let person = Identity::load(session).await.ok().flatten();
            let id = session.id();
            // flush, not delete: delete would leave the data in the
            // request's session, to be saved again if anything touched it.
            session.flush().await?;
            // And out of its person's index (see crate::session::people).
            if let (Some(identity), Some(id)) = (person, id) {
                People::new(state.store.clone(), state.keys.clone())
                    .remove(identity.user.id, id)
                    .await
                    .map_err(tower_sessions::session::Error::Store)?;
            }
            Ok(())
        }
        Credential::Bearer(token) => {
            state
                .held_tokens
                .forget_everywhere(&state.tokens.record_id(token))
                .await;
            state
                .tokens
                .end(token)
                .await
                .map_err(tower_sessions::session::Error::Store)
        }
        Credential::Refused(_) => Ok(()),
    }
}

/// [`caller`] for an identity already loaded: their current membership,
/// or the session ended when GitHub revoked the token. An expiring token is
/// refreshed first when due, or when GitHub refuses it (see
/// [`super::refresh`]); only GitHub's refusal of the refresh, or of a token
/// just refreshed, counts as a revocation.
pub async fn caller_with(
    state: &AppState,
    credential: &Credential,
    identity: Arc<Identity>,
) -> Result<Caller, tower_sessions::session::Error> {
    let mut identity = identity;
    // Due: refreshed. A kept result may be a pair itself refreshed since
    // (by an app token's session, by the sweep) and expired: the chain is
    // followed while the pair in hand has expired. A pair still valid is
    // used, so a request asks GitHub once at most, however short-lived the
    // tokens.
    let mut hops = 0;
    while needs_refresh(&identity, hops, state.clock.unix_now()) {
        if hops == MAX_REFRESH_HOPS {
            // Never a revocation for want of hops: try again later.
            return Ok(Caller::Person {
                identity,
                membership: Err(
                    "the GitHub token could not be refreshed: too many refreshes to follow".into(),
                ),
            });
        }
        hops += 1;
        match refresh::refresh(state, Some(credential), &identity).await {
            Ok(fresh) => identity = fresh,
            Err(RefreshError::Refused(_)) => return revoked(state, credential, &identity).await,
            Err(RefreshError::Unavailable(why)) => {
                return Ok(Caller::Person {
                    identity,
                    membership: Err(format!("the GitHub token could not be refreshed: {why}")),
                });
            }
        }
    }
    let mut read = state
        .memberships
        .get_with(&identity.user, &identity.token, identity.refresh.is_some())
        .await;
    if matches!(read, Err(MembershipError::Revoked)) && identity.refresh.is_some() {
        // Refused: the pair may have been refreshed by another holder since
        // (a pair taken from the chain above included). One refresh, then
        // GitHub's word is final.
        match refresh::refresh(state, Some(credential), &identity).await {
            Ok(fresh) => {
                identity = fresh;
                read = state
                    .memberships
                    .get_with(&identity.user, &identity.token, true)
                    .await;
            }
            Err(RefreshError::Refused(_)) => return revoked(state, credential, &identity).await,
            Err(RefreshError::Unavailable(why)) => {
                return Ok(Caller::Person {
                    identity,
                    membership: Err(format!("the GitHub token could not be refreshed: {why}")),
                });
            }
        }
    }
    let membership = match read {
        Ok(m) => Ok(m),
        Err(MembershipError::Revoked) => return revoked(state, credential, &identity).await,
        Err(MembershipError::Unavailable(why)) => Err(why),
    };
    Ok(Caller::Person {
        identity,
        membership,
    })
}

/// Whether `identity`'s token is refreshed before use, `hops` refreshes
/// into a request: at first when it is due, later only when the pair in
/// hand (a recorded one) has itself expired.
fn needs_refresh(identity: &Identity, hops: usize, now: i64) -> bool {
    if hops == 0 {
        return refresh::due(identity, now);
    }
    identity.refresh.is_some() && identity.expires_at.is_some_and(|at| at <= now)
}

/// Most refreshes one request follows: about three a day are recorded,
/// each kept for a week.
const MAX_REFRESH_HOPS: usize = 32;

/// GitHub took the person's authorization back: their grants are
/// re-evaluated (and so ended) and this session or token is ended.
async fn revoked(
    state: &AppState,
    credential: &Credential,
    identity: &Identity,
) -> Result<Caller, tower_sessions::session::Error> {
    tracing::info!(login = %identity.user.login, "GitHub revoked the token; ending the session");
    if identity.refresh.is_some() {
        // get_with left the news to us.
        state
            .memberships
            .revoked(identity.user.id, &identity.token)
            .await;
    }
    end(state, credential).await?;
    Ok(Caller::Revoked)
}
