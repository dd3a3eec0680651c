//! Who is asking: the client's address, and the logged-in person with their
//! current membership.
//!
//! [`Caller`] is an extractor for the routes that need the person first
//! (`/`, `/auth/me`). The Pusher endpoints must refuse malformed input
//! before they touch the session, so they call [`current_identity`] and
//! [`caller_with`] themselves after parsing; the rules of a session
//! (`max_age`, revocation, keep-alive) live here once for both.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use tower_sessions::Session;

use super::error::ApiError;
use super::limits;
use super::state::AppState;
use crate::config::Config;
use crate::membership::{Membership, MembershipError};
use crate::session::{Identity, keep_alive};

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
        membership: Result<Arc<Membership>, String>,
    },
}

/// The caller of this request: their identity from the session and their
/// current membership. A token GitHub revoked ends the session here, for
/// every route alike.
pub async fn caller(
    state: &AppState,
    session: &Session,
) -> Result<Caller, tower_sessions::session::Error> {
    match current_identity(state, &state.config(), session).await? {
        None => Ok(Caller::LoggedOut),
        Some(identity) => caller_with(state, session, identity).await,
    }
}

/// The identity of this session, unless it is past `session.max_age` (then
/// the session is ended here). A live session has its expiry pushed back.
///
/// The identity is taken from [`AppState::held`] when this process decoded
/// it a moment ago and the session is not due for renewal; otherwise it is
/// loaded from the store (which also finds a session that expired or was
/// logged out elsewhere) and held for the next request. `config` is the
/// one the request is answered by.
pub async fn current_identity(
    state: &AppState,
    config: &Config,
    session: &Session,
) -> Result<Option<Arc<Identity>>, tower_sessions::session::Error> {
    let now = state.clock.unix_now();
    let held = session
        .id()
        .and_then(|id| state.held.get(&id, now, config.session.ttl));
    let from_store = held.is_none();
    let identity = match held {
        Some(identity) => identity,
        None => match Identity::load(session).await? {
            Some(identity) => Arc::new(identity),
            None => return Ok(None),
        },
    };
    // However active, a session ends `max_age` after login: the login (which
    // GitHub lets people rename) and the token are then read afresh.
    // (Clocks of several instances may disagree a little: a login "in the
    // future" counts as just now.)
    let age = now
        .saturating_sub(identity.logged_in_at)
        .max(0)
        .unsigned_abs();
    if age >= config.session.max_age.as_secs() {
        tracing::info!(login = %identity.user.login, "session reached session.max_age; ending it");
        end(state, session).await?;
        return Ok(None);
    }
    if from_store {
        let renewed = keep_alive(session, config.session.ttl, now).await?;
        if let Some(id) = session.id() {
            state.held.hold(id, identity.clone(), renewed);
        }
    }
    Ok(Some(identity))
}

/// Ends the session: forgotten by this process, deleted from the store,
/// its cookie removed.
pub async fn end(
    state: &AppState,
    session: &Session,
) -> Result<(), tower_sessions::session::Error> {
    if let Some(id) = session.id() {
        state.held.forget(&id);
    }
    // flush, not delete: delete would leave the data in the request's
    // session, to be saved again if anything touched it.
    session.flush().await
}

/// [`caller`] for an identity already loaded: their current membership,
/// or the session ended when GitHub revoked the token.
pub async fn caller_with(
    state: &AppState,
    session: &Session,
    identity: Arc<Identity>,
) -> Result<Caller, tower_sessions::session::Error> {
    let membership = match state.memberships.get(&identity.user, &identity.token).await {
        Ok(m) => Ok(m),
        Err(MembershipError::Revoked) => {
            tracing::info!(login = %identity.user.login, "GitHub revoked the token; ending the session");
            end(state, session).await?;
            return Ok(Caller::Revoked);
        }
        Err(MembershipError::Unavailable(why)) => Err(why),
    };
    Ok(Caller::Person {
        identity,
        membership,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, why)| ApiError::internal(format!("no session layer: {why}")))?;
        caller(state, &session).await.map_err(ApiError::session)
    }
}
