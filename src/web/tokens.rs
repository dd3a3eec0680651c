//! `POST /auth/tokens`, `GET /auth/tokens`, `DELETE /auth/tokens/{id}`: a
//! logged-in person's tokens for apps and bots (see
//! [`crate::session::tokens`]).
//!
//! These routes take the browser's session cookie only: a bearer token
//! cannot make more tokens or list them. A cookie request that changes
//! something needs this gateway's own `Origin`.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tower_sessions::Session;

use super::error::ApiError;
use super::extract::{Credential, caller};
use super::form;
use super::limits::Key;
use super::state::AppState;
use crate::excerpt::Excerpt;
use crate::session::Identity;
use crate::session::tokens::{CreateError, Kind, Listed, check_name};

/// `POST /auth/tokens` with `name` (form or JSON): 201 `{"id","name","token"}`,
/// the token shown this once.
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    same_origin_cookie(&state, &parts.headers, true)?;
    let body = form::read(body).await?;
    let name = name_of(&parts.headers, &body)?;
    let identity = person(&state, session).await?;
    let limit = state.limits().login.clone();
    if let Err(wait) = limit
        .admit(&state.room, Key::Person(identity.user.id))
        .await
    {
        return Err(ApiError::too_many(wait));
    }
    let config = state.config();
    let made = state
        .tokens
        .create(
            &identity,
            &name,
            Kind::App,
            state.clock.unix_now(),
            (config.session.ttl, config.session.max_age),
        )
        .await
        .map_err(|e| match e {
            CreateError::TooMany => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            CreateError::Store(e) => ApiError::session(e.into()),
        })?;
    tracing::info!(
        login = %identity.user.login,
        token_id = %made.id,
        name = %Excerpt::of(&made.name),
        "app token created"
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": made.id, "name": made.name, "token": made.token.expose() })),
    )
        .into_response())
}

/// `GET /auth/tokens`: `{"tokens":[{"id","name","kind","created_at","last_used_at"}]}`,
/// oldest first; never a token.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    same_origin_cookie(&state, &headers, false)?;
    let identity = person(&state, session).await?;
    // A list reads every token's record: counted like an authorization.
    let limit = state.limits().auth.clone();
    if let Err(wait) = limit
        .admit(&state.room, Key::Person(identity.user.id))
        .await
    {
        return Err(ApiError::too_many(wait));
    }
    let tokens = state
        .tokens
        .list(identity.user.id)
        .await
        .map_err(|e| ApiError::session(e.into()))?;
    let tokens: Vec<_> = tokens.iter().map(shown).collect();
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

/// `DELETE /auth/tokens/{id}`: 204, or 404 when the person has no token by
/// that id. The token stops working here at once, and on other instances
/// at once on a Redis store (within [`crate::session::HOLD_FOR`] on SQLite).
pub async fn revoke(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    same_origin_cookie(&state, &headers, true)?;
    let identity = person(&state, session).await?;
    let revoked = state
        .tokens
        .revoke(identity.user.id, &id)
        .await
        .map_err(|e| ApiError::session(e.into()))?;
    match revoked {
        Some(record) => {
            state.held_tokens.forget_everywhere(&record).await;
            tracing::info!(login = %identity.user.login, token_id = %Excerpt::of(&id), "token revoked");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "you have no token with the id {:?}",
                Excerpt::of(&id).to_string()
            ),
        )),
    }
}

/// A token as the JSON API lists it: times in RFC 3339.
fn shown(t: &Listed) -> serde_json::Value {
    json!({
        "id": t.id,
        "name": t.name,
        "kind": t.kind.as_str(),
        "created_at": rfc3339(t.created_at),
        "last_used_at": t.last_used_at.map(rfc3339),
    })
}

/// `2026-12-01T15:45:16Z`; the bare number for a time RFC 3339 cannot
/// write (before year 0 or after 9999).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Refuses a bearer token (tokens are managed from the browser) and, when
/// `changes`, a request without this gateway's own `Origin`.
fn same_origin_cookie(
    state: &AppState,
    headers: &HeaderMap,
    changes: bool,
) -> Result<(), ApiError> {
    if headers.contains_key(AUTHORIZATION) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tokens are managed from a logged-in browser (the home page), not with a bearer token",
        ));
    }
    if changes {
        let origin = headers.get(ORIGIN).map(|o| o.as_bytes());
        if origin != Some(state.config().server.public_origin().as_bytes()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "tokens may be changed only from this gateway's own pages (the Origin header must be its public_url)",
            ));
        }
    }
    Ok(())
}

/// The logged-in person of the cookie session, or 401.
async fn person(state: &AppState, session: Session) -> Result<std::sync::Arc<Identity>, ApiError> {
    let credential = Credential::Cookie(session);
    let (identity, _) = caller(state, &credential)
        .await
        .map_err(ApiError::session)?
        .person(&credential)?;
    Ok(identity)
}

/// The checked `name` of a form or JSON body.
fn name_of(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let name = form::field(headers, body, "name")?
        .ok_or_else(|| ApiError::bad_request("name is missing"))?;
    check_name(&name)
        .map(str::to_owned)
        .map_err(ApiError::bad_request)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn token_times_are_rfc3339_in_utc_to_the_second() {
        assert_eq!(rfc3339(1_796_139_916), "2026-12-01T15:45:16Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // Past year 9999 RFC 3339 has no form: the number is shown as is.
        assert_eq!(rfc3339(i64::MAX), i64::MAX.to_string());
    }
}
