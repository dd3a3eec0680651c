//! Logging in with GitHub (OAuth web flow with `state` and PKCE S256) and
//! out again.
//!
//! The order in `/auth/callback` is the security of it: the `state` is taken
//! out of this browser's session (so it works once) and compared *before* the
//! code is redeemed; the session id is renewed before the identity is stored
//! (no fixation); and the redirect goes only to a same-origin path.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::Redirect;
use oauth2::basic::BasicErrorResponse;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RequestTokenError, Scope,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use url::Url;

use std::sync::Arc;

use crate::github::{GithubError, GithubUser};
use crate::membership::{Membership, MembershipError};
use crate::secret::Secret;
use crate::server::AppState;
use crate::session::{Identity, PENDING_LOGIN_KEY, PendingLogin, keep_alive};
use crate::web::{ApiError, LoginError};

/// How long a login may take between `/auth/login` and `/auth/callback`.
/// GitHub's codes live 10 minutes; so does our `state`.
const LOGIN_TIMEOUT_SECS: i64 = 600;

/// Query of `/auth/login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// `GET /auth/login`: remembers `state`, the PKCE verifier and where to
/// return in this browser's session, then sends the browser to GitHub.
pub async fn login(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<LoginQuery>,
) -> Result<Redirect, LoginError> {
    let return_to = safe_return_to(query.return_to.as_deref(), &state.config.server.public_url);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = state
        .oauth
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in &state.config.github.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf) = request.url();
    let pending = PendingLogin {
        state: csrf.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        return_to,
        started_at: OffsetDateTime::now_utc().unix_timestamp(),
    };
    session
        .insert(PENDING_LOGIN_KEY, pending)
        .await
        .map_err(LoginError::session)?;
    Ok(Redirect::to(url.as_str()))
}

/// Query of `/auth/callback`, as GitHub sends it.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`: checks `state`, redeems the code, reads the user,
/// renews the session id, stores the identity, and returns to where the
/// login started.
pub async fn callback(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<CallbackQuery>,
) -> Result<Redirect, LoginError> {
    // Taken out, not read: a state works once, whatever happens next.
    let pending: Option<PendingLogin> = session
        .remove(PENDING_LOGIN_KEY)
        .await
        .map_err(LoginError::session)?;
    let Some(pending) = pending else {
        return Err(LoginError::NoLoginInProgress);
    };
    let sent = query.state.as_deref().unwrap_or_default();
    if !constant_time_eq(sent.as_bytes(), pending.state.as_bytes()) {
        tracing::warn!("login refused: OAuth state does not match this browser's login");
        return Err(LoginError::StateMismatch);
    }
    if OffsetDateTime::now_utc().unix_timestamp() - pending.started_at > LOGIN_TIMEOUT_SECS {
        return Err(LoginError::Expired);
    }
    if let Some(error) = query.error {
        tracing::info!(%error, "login ended at GitHub");
        return Err(if error == "access_denied" {
            LoginError::Denied
        } else {
            LoginError::Github(format!(
                "{error}: {}",
                query.error_description.unwrap_or_default()
            ))
        });
    }
    let code = query
        .code
        .filter(|c| !c.is_empty())
        .ok_or(LoginError::MissingCode)?;
    let token = state
        .oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
        .request_async(state.github.http())
        .await
        .map_err(token_error)?;
    let token = Secret::new(token.access_token().secret().clone());
    let user: GithubUser = state.github.user(&token).await.map_err(|e| match e {
        GithubError::Unavailable(_) => LoginError::GithubDown,
        other => LoginError::Github(other.to_string()),
    })?;
    // A new id for the logged-in session: an id fixed before login is now dead.
    session.cycle_id().await.map_err(LoginError::session)?;
    tracing::info!(login = %user.login, id = user.id, "logged in");
    let identity = Identity { user, token };
    // A login re-reads the membership, so a change on GitHub shows at once.
    if let Err(e) = state
        .memberships
        .refresh(&identity.user, &identity.token)
        .await
    {
        tracing::warn!(login = %identity.user.login, error = %e, "membership not read at login");
    }
    identity.save(&session).await.map_err(LoginError::session)?;
    keep_alive(&session, state.config.session.ttl)
        .await
        .map_err(LoginError::session)?;
    Ok(Redirect::to(&pending.return_to))
}

/// Sorts a failed code exchange into what the person should be told.
fn token_error<RE: std::error::Error>(e: RequestTokenError<RE, BasicErrorResponse>) -> LoginError {
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
            LoginError::GithubDown
        }
        RequestTokenError::ServerResponse(r) => LoginError::CodeRefused(r.error().to_string()),
        RequestTokenError::Parse(_, body) => {
            match serde_json::from_slice::<GithubTokenError>(&body) {
                Ok(g) => LoginError::CodeRefused(match g.error_description {
                    Some(d) => format!("{}: {d}", g.error),
                    None => g.error,
                }),
                Err(_) => LoginError::Github("an unreadable answer from the token endpoint".into()),
            }
        }
        RequestTokenError::Other(m) => LoginError::Github(m),
    }
}

/// `POST /auth/logout`: deletes the session from the store, so the old
/// cookie is dead, and returns home.
pub async fn logout(session: Session) -> Result<Redirect, LoginError> {
    session.delete().await.map_err(LoginError::session)?;
    Ok(Redirect::to("/"))
}

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
}

/// `GET /auth/me`: the caller's identity and memberships as JSON, 401 when
/// logged out (or when GitHub revoked the token).
pub async fn me(State(state): State<AppState>, session: Session) -> Result<Json<Me>, ApiError> {
    let identity = current_identity(&session)
        .await?
        .ok_or(ApiError::LoggedOut)?;
    keep_alive(&session, state.config.session.ttl)
        .await
        .map_err(ApiError::session)?;
    let membership = match membership_or_logout(&state, &session, &identity).await {
        Err(MembershipError::Revoked) => return Err(ApiError::LoggedOut),
        other => other,
    };
    let GithubUser {
        id,
        login,
        name,
        avatar_url,
    } = identity.user;
    let (orgs, teams, membership_error) = match membership {
        Ok(m) => (
            Some(m.person.orgs.clone()),
            Some(m.person.active_teams().map(ToString::to_string).collect()),
            None,
        ),
        Err(e) => (None, None, Some(e.to_string())),
    };
    Ok(Json(Me {
        id,
        login,
        name,
        avatar_url,
        orgs,
        teams,
        membership_error,
    }))
}

/// The person's current membership. When GitHub has revoked their token,
/// the session is ended here, so every caller fails closed the same way.
pub async fn membership_or_logout(
    state: &AppState,
    session: &Session,
    identity: &Identity,
) -> Result<Arc<Membership>, MembershipError> {
    let result = state.memberships.get(&identity.user, &identity.token).await;
    if let Err(MembershipError::Revoked) = &result {
        tracing::info!(login = %identity.user.login, "GitHub revoked the token; ending the session");
        state.memberships.forget(identity.user.id).await;
        if let Err(e) = session.delete().await {
            tracing::error!(error = %e, "could not delete the session of a revoked token");
        }
    }
    result
}

/// The logged-in identity of this session, if any.
pub async fn current_identity(session: &Session) -> Result<Option<Identity>, ApiError> {
    Identity::load(session).await.map_err(ApiError::session)
}

/// `return_to` if it is a path on this origin, else `/`. Refuses
/// scheme-relative (`//x`) and backslash (`/\x`) forms, which browsers
/// resolve to other hosts, and anything with control characters.
pub fn safe_return_to(raw: Option<&str>, public_url: &str) -> String {
    let Some(path) = raw else {
        return "/".into();
    };
    let plausible = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= 2048
        && !path.chars().any(char::is_control);
    let same_origin = || {
        let base = Url::parse(public_url).ok()?;
        let joined = base.join(path).ok()?;
        (joined.origin() == base.origin()).then_some(())
    };
    if plausible && same_origin().is_some() {
        path.to_owned()
    } else {
        "/".into()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_keeps_only_same_origin_paths() {
        let base = "http://localhost:8080";
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

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
