//! The HTTP server: application state, every route in one place, start-up
//! and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Router, middleware};
use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RedirectUrl, TokenUrl};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::github::GithubClient;
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
        let memberships = Memberships::new(github.clone(), &config.cache);
        Ok(Self(Arc::new(Shared {
            config,
            github,
            oauth,
            signer,
            memberships,
        })))
    }
}

/// Every route of the gateway, with sessions, for the given store.
pub fn router(state: AppState, store: Store) -> Router {
    let sessions = store.layer(&state.config.session, state.config.server.is_https());
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
        .with_state(state)
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

/// Builds the whole application from a configuration, opening the session store.
pub async fn build_app(config: Config) -> Result<Router, StartError> {
    let store = Store::open(&config.session.store).await?;
    Ok(router(AppState::new(config)?, store))
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
        let app = build_app(config).await?;
        Ok(Self::serve(listener, addr, app))
    }

    /// Serves any app (the gateway plus extra routes, as the demo does) on
    /// `listener`, whose address is `addr`.
    pub fn serve(listener: TcpListener, addr: SocketAddr, app: Router) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
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
    let app = build_app(config).await?;
    tracing::info!(%addr, %public_url, "channelgate listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
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
