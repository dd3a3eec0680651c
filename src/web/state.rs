//! What every handler can reach: [`AppState`], built once from the
//! configuration. Imports nothing of the handlers.

use std::net::SocketAddr;
use std::sync::Arc;

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RedirectUrl, TokenUrl};

use super::limits::{Limiter, QuietLog};
use super::webhook::SeenDeliveries;
use crate::clock::Clock;
use arc_swap::ArcSwap;

use super::device::DevicePolls;
use super::observe::RequestIds;
use crate::config::{Config, LimitsConfig};
use crate::crypto::Keys;
use crate::github::GithubClient;
use crate::membership::Memberships;
use crate::metrics::Metrics;
use crate::pusher_api::PusherApi;
use crate::revocation::{Access, Revocation, Settings};
use crate::session::tokens::Tokens;
use crate::session::{HeldIdentities, Store, StoreError};
use crate::signing::Signer;

/// How long a login may take between `/auth/login` and `/auth/callback`.
/// GitHub's codes live 10 minutes; so does our `state`.
pub const LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The OAuth client with its authorize and token endpoints set.
pub type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The shared parts of [`AppState`].
pub struct Shared {
    /// The validated configuration; a reload swaps it (see [`AppState::config`]).
    config: ArcSwap<Config>,
    /// `[limits]`, swapped by a reload that changes them.
    limits: ArcSwap<Limits>,
    /// The GitHub REST client.
    pub github: GithubClient,
    /// The OAuth web-flow client.
    pub oauth: OAuthClient,
    /// Signs for the Pusher app.
    pub signer: Signer,
    /// People's current memberships, cached briefly.
    pub memberships: Memberships,
    /// What was signed, watched until `revocation.watch_for` passes.
    pub revocation: Revocation,
    /// What is counted for Prometheus.
    pub metrics: Metrics,
    /// Ids for requests that come without a usable `x-request-id`.
    pub ids: RequestIds,
    /// The session store, for readiness checks.
    pub store: Store,
    /// Identities of cookie sessions decoded from the store, held a moment
    /// for the next request.
    pub held: HeldIdentities,
    /// The same for bearer tokens, apart: a cookie's session id is the
    /// client's to choose, and must never find a token's identity.
    pub held_tokens: HeldIdentities,
    /// Bearer tokens for apps without a browser, in the session store.
    pub tokens: Tokens,
    /// Device codes being polled (`/auth/device/token`).
    pub device_polls: DevicePolls,
    /// The clock of TTLs, grace, back-off and `session.max_age`.
    pub clock: Clock,
    /// Seals tokens in stored sessions and the login cookie.
    pub keys: Keys,
    /// OAuth states already presented at the callback.
    pub spent_states: SpentStates,
    /// The session cookie's name as sent (`__Host-` prefixed over https).
    pub session_cookie_name: String,

    /// Refusals, logged once a minute however often they repeat.
    pub quiet: QuietLog,
    /// Webhook deliveries already handled.
    pub deliveries: SeenDeliveries,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The session store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A URL built from the configuration is invalid.
    #[error("invalid URL in the configuration: {0}")]
    Url(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The other instances cannot be reached over Redis pub/sub.
    #[error("cannot share revocations with the other instances: {0}")]
    Bus(String),
    /// Binding or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

impl AppState {
    /// Builds the state from a validated configuration.
    pub fn new(config: Config, clock: Clock, store: Store) -> Result<Self, StartError> {
        let metrics = Metrics::new(config.server.metrics_listen.is_some());
        let github = GithubClient::with_timeout(&config.github.api_url, config.github.timeout)?
            .with_metrics(metrics.clone());
        let url_err = |e: oauth2::url::ParseError| StartError::Url(e.to_string());
        let oauth = BasicClient::new(ClientId::new(config.github.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                config.github.client_secret.expose().clone(),
            ))
            .set_auth_uri(
                AuthUrl::new(format!("{}/login/oauth/authorize", config.github.web_url))
                    .map_err(url_err)?,
            )
            .set_token_uri(
                TokenUrl::new(format!(
                    "{}/login/oauth/access_token",
                    config.github.web_url
                ))
                .map_err(url_err)?,
            )
            // GitHub documents the client credentials in the form body.
            .set_auth_type(oauth2::AuthType::RequestBody)
            .set_redirect_uri(
                RedirectUrl::new(format!("{}/auth/callback", config.server.public_url))
                    .map_err(url_err)?,
            );
        let signer = Signer::new(
            &config.pusher.key,
            &config.pusher.secret,
            config.pusher.encryption_master_key.clone(),
        );
        let keys = Keys::new(config.session.encryption_key.as_ref());
        let (changes, changed) = tokio::sync::mpsc::channel(1024);
        let memberships =
            Memberships::new(github.clone(), keys.clone(), &config.cache, clock.clone())
                .notify_changes(changes);
        let revocation = Revocation::new(
            Settings {
                watch_for: config.revocation.watch_for,
                terminate: config.revocation.terminate_connections,
                ttl: config.cache.membership_ttl,
                max_people: usize::try_from(config.cache.max_entries).unwrap_or(usize::MAX),
            },
            Access {
                rules: config.rules.clone(),
                signin: config.signin.clone(),
            },
            memberships.clone(),
            PusherApi::new(&config.pusher)?,
            clock.clone(),
            metrics.clone(),
        );
        revocation.start(changed);
        let session_cookie_name = config.session.cookie_name(config.server.is_https());
        Ok(Self(Arc::new(Shared {
            github,
            oauth,
            signer,
            memberships,
            revocation,
            metrics,
            ids: RequestIds::default(),
            tokens: Tokens::new(store.clone(), keys.clone()),
            device_polls: DevicePolls::default(),
            store,
            held: HeldIdentities::new(config.cache.max_entries),
            held_tokens: HeldIdentities::new(config.cache.max_entries),
            keys,
            clock,
            spent_states: SpentStates::default(),
            session_cookie_name,
            limits: ArcSwap::from_pointee(Limits::of(&config.limits)),
            quiet: QuietLog::default(),
            deliveries: SeenDeliveries::default(),
            config: ArcSwap::from_pointee(config),
        })))
    }

    /// The configuration now. A request that loads it once sees one
    /// consistent set of rules even if a reload swaps them meanwhile.
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.0.config.load()
    }

    /// The rate limits now.
    pub fn limits(&self) -> arc_swap::Guard<Arc<Limits>> {
        self.0.limits.load()
    }

    /// Puts a reloaded configuration in force (see [`super::reload`]).
    pub(super) fn swap_config(&self, config: Arc<Config>) {
        self.0.config.store(config);
    }

    /// Puts reloaded limits in force.
    pub(super) fn swap_limits(&self, limits: Limits) {
        self.0.limits.store(Arc::new(limits));
    }
}

/// `[limits]` as limiters.
pub struct Limits {
    /// `limits.login_per_minute`, per client address.
    pub login: Limiter,
    /// `limits.auth_per_minute`, per person (per address when anonymous).
    pub auth: Limiter,
}

impl Limits {
    /// Limiters for `config`.
    pub fn of(config: &LimitsConfig) -> Self {
        Self {
            login: Limiter::per_minute(config.login_per_minute),
            auth: Limiter::per_minute(config.auth_per_minute),
        }
    }
}

/// OAuth states already presented at the callback, remembered for as long
/// as a login may take, so that a state works once even when its cookie is
/// replayed. Bounded: a flood of logins is limited first by `[limits]`.
/// Kept as SHA-256 digests: a fixed 32 bytes per login, whatever was sent.
#[derive(Clone)]
pub struct SpentStates(moka::future::Cache<[u8; 32], ()>);

impl Default for SpentStates {
    fn default() -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LOGIN_TIMEOUT)
                .build(),
        )
    }
}

impl SpentStates {
    /// Records `state` as spent; false when it already was.
    pub async fn spend(&self, state: &str) -> bool {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(state.as_bytes()).into();
        self.0.entry(digest).or_insert(()).await.is_fresh()
    }
}
