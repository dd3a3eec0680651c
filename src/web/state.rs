//! What every handler can reach: [`AppState`], handles to the parts that
//! [`crate::app`] built, and what the HTTP face itself remembers. Imports
//! nothing of the handlers.

use std::sync::Arc;

use arc_swap::ArcSwap;
use oauth2::basic::BasicClient;
use oauth2::{EndpointNotSet, EndpointSet};

use super::limits::{Limiter, QuietLog};
use super::memo::{DevicePolls, RequestIds, SeenDeliveries, SpentStates, UnknownCredentials};
use super::signins::Signins;
use crate::clock::Clock;
use crate::config::{Config, LimitsConfig};
use crate::crypto::Keys;
use crate::github::GithubClient;
use crate::membership::Memberships;
use crate::metrics::Metrics;
use crate::revocation::Revocation;
use crate::room::Room;
use crate::session::tokens::Tokens;
use crate::session::{HeldIdentities, Store};
use crate::signing::Signer;
use crate::tasks::Tasks;

pub use super::memo::LOGIN_TIMEOUT;

/// The OAuth client with its authorize and token endpoints set.
pub type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The parts [`crate::app::build`] makes and hands to the web layer.
pub struct Parts {
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
    /// The session store.
    pub store: Store,
    /// What the instances sharing the store share beside sessions.
    pub room: Room,
    /// Bearer tokens for apps without a browser, in the session store.
    pub tokens: Tokens,
    /// Seals tokens in stored sessions and the login cookie.
    pub keys: Keys,
    /// The clock of TTLs, grace, back-off, holds and `session.max_age`.
    pub clock: Clock,
    /// The background work, owned by the running gateway.
    pub tasks: Tasks,
}

/// The shared parts of [`AppState`]: the [`Parts`] (reached through
/// `Deref`, so a handler writes `state.github`), and what the web layer
/// keeps of its own.
pub struct Shared {
    /// The validated configuration; a reload swaps it (see [`AppState::config`]).
    config: ArcSwap<Config>,
    /// `[limits]`, swapped by a reload that changes them.
    limits: ArcSwap<Limits>,
    /// What [`crate::app::build`] made.
    parts: Parts,
    /// Ids for requests that come without a usable `x-request-id`.
    pub ids: RequestIds,
    /// Identities of cookie sessions decoded from the store, held a moment
    /// for the next request.
    pub held: HeldIdentities,
    /// The same for bearer tokens, apart: a cookie's session id is the
    /// client's to choose, and must never find a token's identity.
    pub held_tokens: HeldIdentities,
    /// Device codes being polled (`/auth/device/token`).
    pub device_polls: DevicePolls,
    /// OAuth states already presented at the callback.
    pub spent_states: SpentStates,
    /// The session cookie's name as sent (`__Host-` prefixed over https).
    pub session_cookie_name: String,
    /// Refusals, logged once a minute however often they repeat.
    pub quiet: QuietLog,
    /// Unknown bearer credentials, counted per client address.
    pub unknown_credentials: UnknownCredentials,
    /// Webhook deliveries already handled.
    pub deliveries: SeenDeliveries,
    /// GitHub token refreshes done or under way, one per refresh token.
    pub refreshes: super::refresh::Refreshes,
    /// Pusher connections signed in through `/pusher/user-auth`, and the
    /// channel requests waiting for one (`revocation.require_signin`).
    pub signins: Signins,
}

impl std::ops::Deref for Shared {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.parts
    }
}

/// A handle on the state that does not keep it alive, for what the state
/// itself owns (so that no cycle of `Arc`s outlives the gateway).
#[derive(Clone)]
pub struct WeakState(std::sync::Weak<Shared>);

impl WeakState {
    /// The state, unless the gateway is gone.
    pub fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(AppState)
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state of a gateway with `config`, over the parts built for it.
    pub fn new(config: Config, parts: Parts) -> Self {
        let capacity = config.cache.max_entries;
        Self(Arc::new(Shared {
            ids: RequestIds::default(),
            device_polls: DevicePolls::default(),
            held: HeldIdentities::new(capacity, parts.clock.clone()),
            held_tokens: HeldIdentities::new(capacity, parts.clock.clone()),
            spent_states: SpentStates::default(),
            session_cookie_name: config.session.cookie_name(config.server.is_https()),
            limits: ArcSwap::from_pointee(Limits::of(&config.limits)),
            quiet: QuietLog::default(),
            unknown_credentials: UnknownCredentials::default(),
            deliveries: SeenDeliveries::default(),
            refreshes: super::refresh::Refreshes::default(),
            signins: Signins::new(config.revocation.watch_for),
            parts,
            config: ArcSwap::from_pointee(config),
        }))
    }

    /// Lets go of what idle clients left behind: rate-limit keys, held
    /// identities, quiet-log counts (once a minute, from [`crate::app`]).
    pub fn maintain(&self) {
        let limits = self.limits();
        limits.login.sweep();
        limits.callback.sweep();
        limits.auth.sweep();
        self.quiet.flush();
        self.held.prune();
        self.held_tokens.prune();
    }

    /// A handle that does not keep the state alive.
    pub fn downgrade(&self) -> WeakState {
        WeakState(Arc::downgrade(&self.0))
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
    /// `limits.login_per_minute` again, for `GET /auth/callback` (a
    /// bucket of its own), per client address.
    pub callback: Limiter,
    /// `limits.auth_per_minute`, per person (per address when anonymous).
    pub auth: Limiter,
}

impl Limits {
    /// Limiters for `config`.
    pub fn of(config: &LimitsConfig) -> Self {
        Self {
            login: Limiter::per_minute("login", config.login_per_minute),
            callback: Limiter::per_minute("callback", config.login_per_minute),
            auth: Limiter::per_minute("auth", config.auth_per_minute),
        }
    }
}
