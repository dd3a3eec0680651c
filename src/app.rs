//! The composition root: the one place that turns a validated
//! [`Config`] into a running gateway.
//!
//! [`build`] opens the session store, builds the GitHub and OAuth clients,
//! the signer, the membership cache and the live-grant registry, hands them
//! to the web layer as handles ([`AppState`]) and starts the background
//! work, which [`Tasks`] owns. [`Gateway`] serves it on a listener and stops
//! all of it, requests and background work alike; [`serve`] is
//! `channelgate serve`. Nothing in [`crate::web`] builds or spawns these
//! parts: the handlers only see what is handed to them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, ClientSecret, RedirectUrl, TokenUrl};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::Keys;
use crate::github::GithubClient;
use crate::membership::Memberships;
use crate::metrics::Metrics;
use crate::pusher_api::PusherApi;
use crate::revocation::{self, Access, Revocation, Settings};
use crate::room::Room;
use crate::session::tokens::Tokens;
use crate::session::{HeldIdentities, Store, StoreError};
use crate::signing::Signer;
use crate::tasks::Tasks;
use crate::web::serve::{ConnectionLimits, serve_connections, serve_metrics, shutdown_signal};
use crate::web::state::{AppState, Parts};
use crate::web::{OAuthClient, router};

/// How often idle rate-limit keys, held identities and quiet-log counts are
/// let go of.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

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
    /// The live grants kept in the store could not be read.
    #[error(
        "cannot read the live grants kept in the {store} session store (session.store): {reason}; the gateway does not start without them, as it could not take them back"
    )]
    Grants {
        /// `sqlite` or `redis`.
        store: &'static str,
        /// The cause.
        reason: String,
    },
    /// The other instances cannot be reached over Redis pub/sub.
    #[error("cannot share revocations with the other instances: {0}")]
    Bus(String),
    /// Sign-ins and logouts cannot be shared over Redis pub/sub.
    #[error(
        "cannot share sign-ins and logouts with the other instances through the Redis of session.store: {0}; check that Redis answers there"
    )]
    Fleet(String),
    /// Binding or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A gateway built but not yet serving: its routes and its state (whose
/// [`Tasks`] already run its background work).
pub struct App {
    /// Every route, with sessions.
    pub router: Router,
    /// The handles the routes share.
    pub state: AppState,
}

/// Builds the whole gateway from a validated configuration, on `clock`
/// (tests move it instead of waiting), and starts its background work.
/// When it cannot start, what it had started is stopped.
pub async fn build(config: Config, clock: Clock) -> Result<App, StartError> {
    let tasks = Tasks::default();
    let built = assemble(config, clock, &tasks).await;
    if built.is_err() {
        tasks.shutdown().await;
    }
    built
}

/// [`build`]'s parts, in the order each needs the ones before.
async fn assemble(config: Config, clock: Clock, tasks: &Tasks) -> Result<App, StartError> {
    let room = Room::open(&config.session.store).await?;
    let store = Store::open(&room, clock.clone(), tasks).await?;
    let metrics = Metrics::new(config.server.metrics_listen.is_some());
    let github = GithubClient::with_timeout(&config.github.api_url, config.github.timeout)?
        .with_metrics(metrics.clone());
    let keys = Keys::new(config.session.encryption_key.as_ref());
    let (changes, changed) = tokio::sync::mpsc::channel(1024);
    let memberships = Memberships::new(github.clone(), keys.clone(), &config.cache, clock.clone())
        .notify_changes(changes)
        .share_in(&room, &config.github.api_url);
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
        tasks.clone(),
    );
    keep_grants(&revocation, &room).await?;
    revocation.start(changed);
    if revocation.is_on() {
        revocation::bus::join(&room, &revocation, tasks)
            .await
            .map_err(StartError::Bus)?;
    }
    let oauth = oauth_client(&config)?;
    let signer = Signer::new(
        &config.pusher.key,
        &config.pusher.secret,
        config.pusher.encryption_master_key.clone(),
    );
    let state = AppState::new(
        config,
        Parts {
            oauth,
            github,
            signer,
            memberships,
            revocation,
            metrics,
            tokens: Tokens::new(store.clone(), keys.clone()),
            store: store.clone(),
            room: room.clone(),
            keys,
            clock,
            tasks: tasks.clone(),
        },
    );
    // On Redis, sign-ins and logouts hold for every instance at once.
    HeldIdentities::share(&room, &state.held, &state.held_tokens, tasks)
        .await
        .map_err(StartError::Fleet)?;
    state
        .signins
        .join(&room, tasks)
        .await
        .map_err(StartError::Fleet)?;
    // The sweep and webhooks refresh an expired token as requests do.
    state
        .revocation
        .refresh_with(Arc::new(crate::web::refresh::ForReReads(state.downgrade())));
    let maintained = state.clone();
    tasks.service("maintenance", async move {
        let mut ticks = tokio::time::interval(MAINTENANCE_EVERY);
        loop {
            ticks.tick().await;
            maintained.maintain();
        }
    });
    Ok(App {
        router: router(state.clone(), store),
        state,
    })
}

/// Hands the store to the live-grant registry, which takes back the grants
/// it kept before a restart; with the memory store, says what a restart
/// forgets.
async fn keep_grants(revocation: &Revocation, room: &Room) -> Result<(), StartError> {
    if !revocation.is_on() {
        return Ok(());
    }
    if !room.keeps_grants() {
        tracing::warn!(
            "session.store is memory: live grants (revocation.watch_for) are kept in this process only, so a restart forgets them and can no longer end the connections signed before it; set session.store to a SQLite file or Redis to keep them"
        );
        return Ok(());
    }
    let (people, grants) =
        revocation
            .keep_in(room.clone())
            .await
            .map_err(|reason| StartError::Grants {
                store: room.kind(),
                reason,
            })?;
    tracing::info!(
        people,
        grants,
        store = room.kind(),
        "live grants taken back from the session store"
    );
    Ok(())
}

/// The OAuth web-flow client for GitHub, its callback under
/// `server.public_url`.
fn oauth_client(config: &Config) -> Result<OAuthClient, StartError> {
    let url_err = |e: oauth2::url::ParseError| StartError::Url(e.to_string());
    let web = &config.github.web_url;
    Ok(
        BasicClient::new(ClientId::new(config.github.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                config.github.client_secret.expose().clone(),
            ))
            .set_auth_uri(AuthUrl::new(format!("{web}/login/oauth/authorize")).map_err(url_err)?)
            .set_token_uri(
                TokenUrl::new(format!("{web}/login/oauth/access_token")).map_err(url_err)?,
            )
            // GitHub documents the client credentials in the form body.
            .set_auth_type(oauth2::AuthType::RequestBody)
            .set_redirect_uri(
                RedirectUrl::new(format!("{}/auth/callback", config.server.public_url))
                    .map_err(url_err)?,
            ),
    )
}

/// A running gateway: its address, a way to stop it gracefully, and the
/// background work it owns. Dropping it stops everything.
pub struct Gateway {
    addr: SocketAddr,
    state: Option<AppState>,
    metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Gateway {
    /// Serves the gateway on `listener` in a background task. Bind
    /// `127.0.0.1:0` to run many side by side, and set `public_url` to match.
    pub async fn start(config: Config, listener: TcpListener) -> Result<Self, StartError> {
        Self::start_with(config, listener, Clock::default()).await
    }

    /// [`Gateway::start`] on `clock`, which a test advances instead of
    /// waiting for a TTL to pass.
    pub async fn start_with(
        config: Config,
        listener: TcpListener,
        clock: Clock,
    ) -> Result<Self, StartError> {
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.server.listen,
            source,
        })?;
        let limits = ConnectionLimits::of(&config.server);
        let App { router, state } = build(config, clock).await?;
        let metrics_addr = start_metrics(&state).await?;
        let mut gateway = Self::serve(listener, addr, router, limits).owning(state);
        gateway.metrics_addr = metrics_addr;
        Ok(gateway)
    }

    /// Serves any router (the gateway's plus extra routes, as the demo's)
    /// on `listener`, whose address is `addr`.
    pub fn serve(
        listener: TcpListener,
        addr: SocketAddr,
        router: Router,
        limits: ConnectionLimits,
    ) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_connections(listener, router, limits, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            addr,
            state: None,
            metrics_addr: None,
            stop: Some(stop),
            task,
        }
    }

    /// This gateway now owns `state`'s background work: its shutdown
    /// stops it, and so does dropping it.
    pub fn owning(mut self, state: AppState) -> Self {
        self.state = Some(state);
        self
    }

    /// The gateway's state (`None` for a router served without one).
    pub fn state(&self) -> Option<&AppState> {
        self.state.as_ref()
    }

    /// Where `GET /metrics` is served, when `server.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, waits for in-flight requests to
    /// finish, then stops the background work (jobs get
    /// [`crate::tasks::JOB_GRACE`]).
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.task).await.map_err(std::io::Error::other);
        if let Some(state) = &self.state {
            state.tasks.shutdown().await;
        }
        served
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(state) = &self.state {
            state.tasks.cancel();
        }
    }
}

/// Binds `server.metrics_listen`, if set, and serves `GET /metrics` there,
/// apart from the public listener (so the public can never read it).
/// When it cannot, the gateway's background work is stopped.
async fn start_metrics(state: &AppState) -> Result<Option<SocketAddr>, StartError> {
    let Some(addr) = state.config().server.metrics_listen else {
        return Ok(None);
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(source) => {
            state.tasks.shutdown().await;
            return Err(StartError::Listen { addr, source });
        }
    };
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    state
        .tasks
        .service("metrics listener", serve_metrics(listener, state.clone()));
    tracing::info!(addr = %bound, "metrics at /metrics");
    Ok(Some(bound))
}

/// `channelgate serve`: the gateway at `server.listen` until SIGINT or
/// SIGTERM, then in-flight requests finish and the background work stops.
/// `SIGHUP` reads `path` again (see [`crate::web::reload`]).
pub async fn serve(config: Config, path: Option<PathBuf>) -> Result<(), StartError> {
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let public_url = config.server.public_url.clone();
    let limits = ConnectionLimits::of(&config.server);
    let App { router, state } = build(config, Clock::default()).await?;
    start_metrics(&state).await?;
    if let Some(path) = path {
        reload_on_hangup(&state, path);
    }
    let stop = shutdown_signal();
    tracing::info!(%addr, %public_url, "channelgate listening");
    serve_connections(listener, router, limits, stop).await;
    state.tasks.shutdown().await;
    tracing::info!("channelgate stopped");
    Ok(())
}

/// Reads `path` again on every `SIGHUP`. The handler is installed before
/// this returns, so a SIGHUP sent once "channelgate listening" is logged
/// reloads rather than ending the process (the default action).
fn reload_on_hangup(state: &AppState, path: PathBuf) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload needs a restart");
            return;
        };
        let reloading = state.clone();
        state.tasks.service("SIGHUP reloads", async move {
            while hangups.recv().await.is_some() {
                tracing::info!(path = %path.display(), "SIGHUP: reading the configuration again");
                reloading.reload_from(&path).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (state, path);
}
