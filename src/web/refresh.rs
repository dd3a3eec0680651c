//! Expiring GitHub user tokens (a GitHub App's, or an OAuth app's that opted
//! in), refreshed before use.
//!
//! A token due a refresh (within [`REFRESH_AHEAD`] of its expiry, or a
//! fifth of its life for a short-lived one), or one GitHub refuses
//! while a refresh token is held, is refreshed with `grant_type=refresh_token`
//! before the membership read goes on. A refresh token works once, so in this
//! process one refresh runs per refresh token ([`Refreshes`]: every request
//! holding it waits for that one and takes its result), and the new pair is
//! written to the session store before anyone uses it. The result is kept
//! (under the old refresh token's name) so that a session's app tokens, which
//! hold copies of the old pair, take the new one instead of spending the dead
//! refresh token.
//!
//! Across instances sharing a SQLite or Redis store, the refresh is claimed
//! in the store first and its result recorded there
//! ([`crate::room::Room::claim_refresh`]): the others wait for it and
//! take the recorded pair.

use std::sync::Arc;
use std::time::Duration;

use super::extract::Credential;
use super::state::{AppState, WeakState};
use crate::crypto::SealedToken;
use crate::github::{GithubUser, Refreshed};
use crate::revocation::{Expiring, RefreshFailed, Refresher};
pub use crate::session::REFRESH_AHEAD;
use crate::session::{Identity, expiry, refresh_at};

/// How long a refresh's result is kept for holders of the old pair.
const RESULT_KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a claim on a refresh holds (longer than GitHub's answer takes).
const CLAIM_HOLD: Duration = Duration::from_secs(30);
/// A claim outlasts the GitHub call it covers at least this long.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);
/// How long a request waits for another instance's refresh.
const CLAIM_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting request looks for that refresh's result.
const CLAIM_POLL: Duration = Duration::from_millis(50);
/// Most refresh results kept.
const RESULTS_KEPT: u64 = 100_000;

/// After GitHub could not be asked for a refresh, how long the holders of
/// that pair get a 503 without asking it again (a client looping on
/// `/pusher/auth` during an outage must not become a flood of refreshes).
pub const BACK_OFF: Duration = Duration::from_secs(5);

/// The refreshes done or under way in this process, by the old refresh
/// token's name, and those that failed a moment ago.
#[derive(Clone)]
pub struct Refreshes {
    done: moka::future::Cache<[u8; 32], Arc<Identity>>,
    /// Until when (the gateway's clock) a failed refresh is not tried
    /// again, and why it failed.
    failed: moka::sync::Cache<[u8; 32], (tokio::time::Instant, String)>,
}

impl Default for Refreshes {
    fn default() -> Self {
        Self {
            done: moka::future::Cache::builder()
                .max_capacity(RESULTS_KEPT)
                .time_to_live(RESULT_KEPT_FOR)
                .build(),
            failed: moka::sync::Cache::builder()
                .max_capacity(RESULTS_KEPT)
                .time_to_live(BACK_OFF)
                .build(),
        }
    }
}

/// Why a token could not be refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshError {
    /// GitHub refused the refresh token: the authorization is gone.
    Refused(String),
    /// GitHub could not be asked, or the new pair could not be stored:
    /// nothing is ended, a later request tries again.
    Unavailable(String),
}

/// Whether `identity`'s token is due a refresh at `now` (Unix seconds).
pub fn due(identity: &Identity, now: i64) -> bool {
    identity.refresh.is_some() && identity.refresh_due_at().is_some_and(|at| at <= now)
}

/// `identity` with its token refreshed, the new pair stored in
/// `credential`'s session (or token record) first; with none (a re-read
/// of the sweep), only recorded for the holders of the old pair.
pub async fn refresh(
    state: &AppState,
    credential: Option<&Credential>,
    identity: &Identity,
) -> Result<Arc<Identity>, RefreshError> {
    let Some(sealed) = &identity.refresh else {
        return Err(RefreshError::Refused("no refresh token is held".into()));
    };
    let name = state.keys.name(sealed.sealed_text().as_bytes());
    if let Some((until, why)) = state.refreshes.failed.get(&name)
        && until > state.clock.now()
    {
        return Err(RefreshError::Unavailable(why));
    }
    let mut stored_here = false;
    let fresh = state
        .refreshes
        .done
        .try_get_with(name, async {
            // Once GitHub is asked, its new pair must be recorded and
            // stored even if this request goes away (a closed tab, a
            // timeout): the old refresh token is spent. So the work runs as
            // a job of its own, and this request waits for it.
            let (done, result) = tokio::sync::oneshot::channel();
            let (job_state, job_credential, job_identity) =
                (state.clone(), credential.cloned(), identity.clone());
            state.tasks.job("refreshing a GitHub token", async move {
                let name = hex::encode(name);
                let fresh =
                    once_in_the_store(&job_state, job_credential.as_ref(), &job_identity, &name)
                        .await;
                let _ = done.send(fresh);
            });
            let fresh = result.await.unwrap_or_else(|_| {
                Err(RefreshError::Unavailable("the gateway is stopping".into()))
            })?;
            stored_here = true;
            Ok::<_, RefreshError>(Arc::new(fresh))
        })
        .await
        .map_err(|e| {
            if let RefreshError::Unavailable(why) = &*e {
                let until = state.clock.now() + BACK_OFF;
                state.refreshes.failed.insert(name, (until, why.clone()));
            }
            (*e).clone()
        })?;
    if stored_here {
        return Ok(fresh);
    }
    // Another holder refreshed (a request, a re-read of the sweep); this
    // one's copy of the pair (the same session's, or one of its app
    // tokens') takes the new pair, and keeps its own login time.
    let mine = Arc::new(Identity {
        token: fresh.token.clone(),
        refresh: fresh.refresh.clone(),
        expires_at: fresh.expires_at,
        refresh_at: fresh.refresh_at,
        ..identity.clone()
    });
    store(state, credential, &mine).await?;
    Ok(mine)
}

/// The web layer's refresh, for re-reads that no request of the person
/// makes (the sweep's, a webhook's): nothing of a session is at hand, so
/// the new pair is recorded for the sessions that hold the old one, which
/// take it at their next request. Holds the state weakly: the state owns
/// the revocation that holds this.
pub struct ForReReads(pub WeakState);

#[async_trait::async_trait]
impl Refresher for ForReReads {
    async fn refresh(
        &self,
        user: &GithubUser,
        token: &SealedToken,
        expiring: &Expiring,
    ) -> Result<SealedToken, RefreshFailed> {
        let Some(state) = self.0.upgrade() else {
            return Err(RefreshFailed::Unavailable("the gateway is stopping".into()));
        };
        let identity = Identity {
            user: user.clone(),
            token: token.clone(),
            // Not stored anywhere from here: sessions keep their own.
            logged_in_at: 0,
            refresh: Some(expiring.refresh.clone()),
            expires_at: Some(expiring.expires_at),
            refresh_at: Some(expiring.refresh_at),
        };
        match refresh(&state, None, &identity).await {
            Ok(fresh) => Ok(fresh.token.clone()),
            Err(RefreshError::Refused(_)) => Err(RefreshFailed::Refused),
            Err(RefreshError::Unavailable(why)) => Err(RefreshFailed::Unavailable(why)),
        }
    }
}

/// The refresh named `name`, once among the instances sharing the store:
/// the pair another recorded, else this one's (claimed, spent, stored in
/// `credential`, then recorded), else, while another holds the claim, a
/// wait for its result.
async fn once_in_the_store(
    state: &AppState,
    credential: Option<&Credential>,
    identity: &Identity,
    name: &str,
) -> Result<Identity, RefreshError> {
    let unavailable = |e: crate::room::RoomError| {
        RefreshError::Unavailable(format!("the session store failed: {e}"))
    };
    let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
    // The claim must outlive the GitHub call it covers, or a second
    // instance could claim and spend the same refresh token meanwhile.
    let hold = CLAIM_HOLD.max(state.config().github.timeout + CLAIM_MARGIN);
    loop {
        if let Some(recorded) = state.room.refresh_result(name).await.map_err(unavailable)? {
            if recorded == REFUSED {
                return Err(RefreshError::Refused("refused to another instance".into()));
            }
            let pair: Pair = serde_json::from_str(&recorded)
                .map_err(|e| RefreshError::Unavailable(format!("a recorded refresh: {e}")))?;
            let fresh = Identity {
                token: pair.token,
                refresh: pair.refresh,
                expires_at: pair.expires_at,
                refresh_at: pair.refresh_at,
                ..identity.clone()
            };
            store(state, credential, &fresh).await?;
            return Ok(fresh);
        }
        if let Some(claim) = state
            .room
            .claim_refresh(name, hold)
            .await
            .map_err(unavailable)?
        {
            let fresh = match ask_github(state, identity).await {
                Ok(fresh) => fresh,
                Err(e) => {
                    // A refusal is final for everyone; an outage lets
                    // another try.
                    let done = match e {
                        RefreshError::Refused(_) => {
                            state
                                .room
                                .finish_refresh(claim, REFUSED, RESULT_KEPT_FOR)
                                .await
                        }
                        RefreshError::Unavailable(_) => state.room.release_refresh(claim).await,
                    };
                    if let Err(why) = done {
                        tracing::warn!(error = %why, "a refresh's claim could not be settled; it lapses by itself");
                    }
                    return Err(e);
                }
            };
            // Recorded first: a credential whose store write fails then
            // still finds the pair, rather than spending the dead token.
            let pair = Pair {
                token: fresh.token.clone(),
                refresh: fresh.refresh.clone(),
                expires_at: fresh.expires_at,
                refresh_at: fresh.refresh_at,
            };
            let recorded = serde_json::to_string(&pair).unwrap_or_default();
            if let Err(e) = state
                .room
                .finish_refresh(claim, &recorded, RESULT_KEPT_FOR)
                .await
            {
                tracing::warn!(login = %fresh.user.login, error = %e, "a refreshed pair could not be recorded for the other instances");
            }
            store(state, credential, &fresh).await?;
            return Ok(fresh);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RefreshError::Unavailable(
                "another instance is refreshing this GitHub token".into(),
            ));
        }
        tokio::time::sleep(CLAIM_POLL).await;
    }
}

/// What the ledger records for a refresh GitHub refused.
const REFUSED: &str = "refused";

/// A refreshed pair as the ledger records it (sealed).
#[derive(serde::Serialize, serde::Deserialize)]
struct Pair {
    token: crate::crypto::SealedToken,
    refresh: Option<crate::crypto::SealedToken>,
    expires_at: Option<i64>,
    #[serde(default)]
    refresh_at: Option<i64>,
}

/// Spends `identity`'s refresh token at GitHub; counted and logged.
async fn ask_github(state: &AppState, identity: &Identity) -> Result<Identity, RefreshError> {
    let user = &identity.user;
    let sealed = identity.refresh.as_ref().expect("checked by the caller");
    let Ok(refresh_token) = state.keys.open_token(sealed) else {
        // Sealed with a key since rotated: as good as refused.
        state.metrics.token_refresh("refused");
        tracing::info!(login = %user.login, id = user.id, "GitHub token not refreshed: its refresh token was sealed with another key");
        return Err(RefreshError::Refused(
            "the refresh token was sealed with another key".into(),
        ));
    };
    let config = state.config();
    let answer = state
        .github
        .refresh_token(
            &config.github.web_url,
            &config.github.client_id,
            &config.github.client_secret,
            &refresh_token,
        )
        .await;
    match answer {
        Ok(Refreshed::Token(token)) => {
            let now = state.clock.unix_now();
            let fresh = Identity {
                token: state.keys.seal_token(&token.access),
                refresh: token.refresh.map(|r| state.keys.seal_token(&r)),
                expires_at: expiry(now, token.expires_in),
                refresh_at: refresh_at(now, token.expires_in),
                ..identity.clone()
            };
            state.metrics.token_refresh("ok");
            tracing::info!(login = %user.login, id = user.id, expires_at = ?fresh.expires_at, "GitHub token refreshed");
            Ok(fresh)
        }
        Ok(Refreshed::Refused(code)) => {
            state.metrics.token_refresh("refused");
            tracing::info!(login = %user.login, id = user.id, %code, "GitHub refused to refresh the token: the authorization is gone");
            Err(RefreshError::Refused(code))
        }
        Err(e) => {
            state.metrics.token_refresh("error");
            tracing::warn!(login = %user.login, id = user.id, error = %e, "GitHub token not refreshed; nothing ended, the next request tries again");
            Err(RefreshError::Unavailable(e.to_string()))
        }
    }
}

/// Writes `fresh`'s pair where `credential` keeps its identity, now, and
/// lets go of held copies of the old one; re-reads of the person's
/// grants use the new token.
async fn store(
    state: &AppState,
    credential: Option<&Credential>,
    fresh: &Identity,
) -> Result<(), RefreshError> {
    let failed = |e: tower_sessions::session::Error| {
        tracing::error!(login = %fresh.user.login, error = %e, "a refreshed GitHub token could not be stored");
        RefreshError::Unavailable(format!("the session store failed: {e}"))
    };
    match credential {
        Some(Credential::Cookie(session)) => {
            let current = Identity::load(session).await.map_err(failed)?;
            if current.as_ref().is_some_and(|c| c.token != fresh.token) {
                fresh.save(session).await.map_err(failed)?;
                session.save().await.map_err(failed)?;
            }
            if let Some(id) = session.id() {
                state.held.forget(&id);
            }
        }
        Some(Credential::Bearer(token)) => {
            state
                .tokens
                .replace_github_token(token, fresh)
                .await
                .map_err(|e| failed(tower_sessions::session::Error::Store(e)))?;
            state.held_tokens.forget(&state.tokens.record_id(token));
        }
        Some(Credential::Refused(_)) | None => {}
    }
    state
        .revocation
        .token_replaced(fresh.user.id, &fresh.token, fresh.expiring());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keys;
    use crate::github::GithubUser;
    use crate::secret::Secret;

    fn identity(expires_at: Option<i64>, refresh: bool) -> Identity {
        let keys = Keys::new(None);
        Identity {
            user: GithubUser {
                id: 1,
                login: "ada".into(),
                name: None,
                avatar_url: String::new(),
            },
            token: keys.seal_token(&Secret::new("ghu_x".into())),
            logged_in_at: 0,
            refresh: refresh.then(|| keys.seal_token(&Secret::new("ghr_x".into()))),
            expires_at,
            refresh_at: None,
        }
    }

    #[test]
    fn a_token_is_due_a_refresh_within_five_minutes_of_expiry_and_only_with_a_refresh_token() {
        assert!(!due(&identity(Some(1000), true), 1000 - REFRESH_AHEAD - 1));
        assert!(due(&identity(Some(1000), true), 1000 - REFRESH_AHEAD));
        assert!(due(&identity(Some(1000), true), 5000), "long expired");
        assert!(
            !due(&identity(Some(1000), false), 5000),
            "nothing to refresh with"
        );
        assert!(
            !due(&identity(None, false), 5000),
            "a token that never expires"
        );
    }
}
