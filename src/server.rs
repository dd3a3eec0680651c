//! The HTTP server: application state, every route in one place, start-up
//! and graceful shutdown, and what bounds a client: a connection must send
//! its headers within `server.header_timeout` and finish its request within
//! `server.request_timeout`, and at most `server.max_connections` are served
//! at once (further ones wait in the listen queue for a free slot).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{
    CONTENT_TYPE, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, middleware};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RedirectUrl, TokenUrl};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::SpentStates;
use crate::config::Config;
use crate::crypto::Keys;
use crate::github::GithubClient;
use crate::limits::{self, Limiter, QuietLog};
use crate::membership::Memberships;
use crate::session::{Store, StoreError};
use crate::signing::Signer;
use crate::{auth, pusher, web};

/// The OAuth client with its authorize and token endpoints set.
pub type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The shared parts of [`AppState`].
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// The GitHub REST client.
    pub github: GithubClient,
    /// The OAuth web-flow client.
    pub oauth: OAuthClient,
    /// Signs for the Pusher app.
    pub signer: Signer,
    /// People's current memberships, cached briefly.
    pub memberships: Memberships,
    /// Seals tokens in stored sessions and the login cookie.
    pub keys: Keys,
    /// OAuth states already presented at the callback.
    pub spent_states: SpentStates,
    /// The session cookie's name as sent (`__Host-` prefixed over https).
    pub session_cookie_name: String,
    /// `limits.login_per_minute`, per client address.
    pub login_limit: Limiter,
    /// `limits.auth_per_minute`, per person (per address when anonymous).
    pub auth_limit: Limiter,
    /// Refusals, logged once a minute however often they repeat.
    pub quiet: QuietLog,
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
    pub fn new(config: Config) -> Result<Self, StartError> {
        let github = GithubClient::new(&config.github.api_url)?;
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
        let memberships = Memberships::new(github.clone(), keys.clone(), &config.cache);
        let session_cookie_name = config.session.cookie_name(config.server.is_https());
        Ok(Self(Arc::new(Shared {
            github,
            oauth,
            signer,
            memberships,
            keys,
            spent_states: SpentStates::default(),
            session_cookie_name,
            login_limit: Limiter::per_minute(config.limits.login_per_minute),
            auth_limit: Limiter::per_minute(config.limits.auth_per_minute),
            quiet: QuietLog::default(),
            config,
        })))
    }
}

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
    limits::client_addr(peer, &parts.headers, &state.config.server.trusted_proxies)
}

/// Every route of the gateway, with sessions, for the given store.
pub fn router(state: AppState, store: Store) -> Router {
    let https = state.config.server.is_https();
    let sessions = store.layer(&state.config.session, https);
    let hsts = https.then(|| HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    Router::new()
        .route("/", get(web::home))
        .route("/healthz", get(web::healthz))
        .route("/assets/pusher.min.js", get(web::pusher_js))
        .route("/assets/home.js", get(web::home_js))
        .route("/auth/login", get(auth::login))
        .route("/auth/callback", get(auth::callback))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .merge(
            Router::new()
                .route("/pusher/auth", post(pusher::channel_auth).options(empty))
                .route("/pusher/user-auth", post(pusher::user_auth).options(empty))
                .route_layer(middleware::from_fn_with_state(state.clone(), pusher::cors)),
        )
        .fallback(web::not_found)
        .layer(middleware::map_response(no_store))
        .layer(sessions)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.server.request_timeout,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            REFERRER_POLICY,
            |response: &Response| {
                is_html(response).then(|| HeaderValue::from_static("no-referrer"))
            },
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            STRICT_TRANSPORT_SECURITY,
            hsts,
        ))
        .with_state(state)
}

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
}

/// Pages and answers are personal (identities, signatures): no cache may
/// keep them, unless a route said otherwise (the static assets).
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    response
}

/// OPTIONS on the auth endpoints: the CORS layer answers preflights itself.
async fn empty() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Builds the whole application from a configuration, opening the session
/// store and starting the sweep of idle rate-limit keys.
pub async fn build_app(config: Config) -> Result<Router, StartError> {
    let store = Store::open(&config.session.store).await?;
    let state = AppState::new(config)?;
    let sweep = state.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(60));
        loop {
            ticks.tick().await;
            sweep.login_limit.sweep();
            sweep.auth_limit.sweep();
            sweep.quiet.flush();
        }
    });
    Ok(router(state, store))
}

/// What bounds the connections of a server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A client must finish its request headers in this long (idle
    /// keep-alive connections too).
    pub header_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits `[server]` sets.
    pub fn of(server: &crate::config::ServerConfig) -> Self {
        Self {
            header_timeout: server.header_timeout,
            max_connections: server.max_connections,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for in-flight requests to finish. HTTP/1.1 only: the
/// gateway sits behind browsers and proxies that speak it, and every bound
/// on a slow client is an HTTP/1 bound.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Errors here are the client's: a reset, a timeout, bad bytes.
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A running gateway: its address, and a way to stop it gracefully.
pub struct Gateway {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// Serves the gateway on `listener` in a background task. Bind
    /// `127.0.0.1:0` to run many side by side, and set `public_url` to match.
    pub async fn start(config: Config, listener: TcpListener) -> Result<Self, StartError> {
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.server.listen,
            source,
        })?;
        let limits = ConnectionLimits::of(&config.server);
        let app = build_app(config).await?;
        Ok(Self::serve(listener, addr, app, limits))
    }

    /// Serves any app (the gateway plus extra routes, as the demo does) on
    /// `listener`, whose address is `addr`.
    pub fn serve(
        listener: TcpListener,
        addr: SocketAddr,
        app: Router,
        limits: ConnectionLimits,
    ) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_connections(listener, app, limits, async {
                let _ = stopped.await;
            })
            .await;
            Ok(())
        });
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(mut self) -> std::io::Result<()> {
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the gateway at `server.listen` until SIGINT or SIGTERM, then lets
/// in-flight requests finish.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let public_url = config.server.public_url.clone();
    let limits = ConnectionLimits::of(&config.server);
    let app = build_app(config).await?;
    tracing::info!(%addr, %public_url, "channelgate listening");
    serve_connections(listener, app, limits, shutdown_signal()).await;
    tracing::info!("channelgate stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
