//! How re-reads that no request of the person makes (the sweep's, a
//! webhook's) refresh an expiring GitHub token: the web layer does it, and
//! hands [`super::Revocation`] a [`Refresher`].

use crate::crypto::SealedToken;
use crate::github::GithubUser;

/// An expiring token's refresh token and expiry (Unix seconds).
#[derive(Debug, Clone)]
pub struct Expiring {
    /// The sealed refresh token.
    pub refresh: SealedToken,
    /// When the access token expires.
    pub expires_at: i64,
    /// When it is due a refresh.
    pub refresh_at: i64,
}

/// Why a re-read's refresh did not give a new token.
#[derive(Debug, Clone)]
pub enum RefreshFailed {
    /// GitHub refused the refresh token: the authorization is gone.
    Refused,
    /// GitHub or the store could not be asked: nothing is known.
    Unavailable(String),
}

/// Refreshes an expiring token for a re-read that no request of its person
/// makes (the sweep's, a webhook's), once with every other holder of the
/// same pair and recorded where the person's session finds it. The web
/// layer's is handed in by [`crate::app`].
#[async_trait::async_trait]
pub trait Refresher: Send + Sync {
    /// `user`'s `token` refreshed with `expiring`'s refresh token: the new
    /// token (re-reads use it from then on), or why not.
    async fn refresh(
        &self,
        user: &GithubUser,
        token: &SealedToken,
        expiring: &Expiring,
    ) -> Result<SealedToken, RefreshFailed>;
}
