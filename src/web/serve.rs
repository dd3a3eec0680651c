//! Serving: the accept loop with its bounds on a client (a connection must
//! send its headers within `server.header_timeout`, a request is answered
//! within `server.request_timeout`, at most `server.max_connections` are
//! served at once and further ones wait in the listen queue), start-up,
//! and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use super::router::router;
use super::state::{AppState, StartError};
use crate::clock::Clock;
use crate::config::{Config, SessionStore};
use crate::revocation;
use crate::session::Store;

/// Builds the whole application from a configuration, opening the session
/// store and starting the sweep of idle rate-limit keys.
pub async fn build_app(config: Config) -> Result<Router, StartError> {
    build_app_with(config, Clock::default()).await
}

/// [`build_app`] on a clock the caller can move (tests).
pub async fn build_app_with(config: Config, clock: Clock) -> Result<Router, StartError> {
    build(config, clock).await.map(|(app, _)| app)
}

/// The application and its state.
async fn build(config: Config, clock: Clock) -> Result<(Router, AppState), StartError> {
    let store = Store::open(&config.session.store, clock.clone()).await?;
    let state = AppState::new(config, clock, store.clone())?;
    if let (SessionStore::Redis(url), true) =
        (&state.config().session.store, state.revocation.is_on())
    {
        revocation::bus::join(url, &state.revocation)
            .await
            .map_err(StartError::Bus)?;
    }
    let sweep = state.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(60));
        loop {
            ticks.tick().await;
            let limits = sweep.limits();
            limits.login.sweep();
            limits.auth.sweep();
            sweep.quiet.flush();
            sweep.held.prune();
            sweep.held_tokens.prune();
            super::error::flush_outages();
        }
    });
    Ok((router(state.clone(), store), state))
}

/// Serves `GET /metrics` for `state` on `listener`, apart from the public
/// listener (so the public can never read it), until the runtime stops.
fn serve_metrics(listener: TcpListener, state: AppState) {
    let app = Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| async move {
                let text = state
                    .metrics
                    .render(state.memberships.count(), state.revocation.grants());
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
            }),
        )
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
}

/// Binds `server.metrics_listen`, if set, and serves metrics there.
async fn start_metrics(state: &AppState) -> Result<Option<SocketAddr>, StartError> {
    let Some(addr) = state.config().server.metrics_listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    serve_metrics(listener, state.clone());
    tracing::info!(addr = %bound, "metrics at /metrics");
    Ok(Some(bound))
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
    state: Option<AppState>,
    metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
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
        let (app, state) = build(config, clock).await?;
        let metrics_addr = start_metrics(&state).await?;
        let mut gateway = Self::serve(listener, addr, app, limits);
        gateway.state = Some(state);
        gateway.metrics_addr = metrics_addr;
        Ok(gateway)
    }

    /// The gateway's state (`None` for an app served with [`Gateway::serve`]).
    pub fn state(&self) -> Option<&AppState> {
        self.state.as_ref()
    }

    /// Where `GET /metrics` is served, when `server.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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
            state: None,
            metrics_addr: None,
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
/// in-flight requests finish. `SIGHUP` reads `path` again (see
/// [`super::reload`]).
pub async fn serve(config: Config, path: Option<PathBuf>) -> Result<(), StartError> {
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let public_url = config.server.public_url.clone();
    let limits = ConnectionLimits::of(&config.server);
    let (app, state) = build(config, Clock::default()).await?;
    start_metrics(&state).await?;
    if let Some(path) = path {
        reload_on_hangup(state, path);
    }
    let stop = shutdown_signal();
    tracing::info!(%addr, %public_url, "channelgate listening");
    serve_connections(listener, app, limits, stop).await;
    tracing::info!("channelgate stopped");
    Ok(())
}

/// Reads `path` again on every `SIGHUP`. The handler is installed before
/// this returns, so a SIGHUP sent once "channelgate listening" is logged
/// reloads rather than ending the process (the default action).
fn reload_on_hangup(state: AppState, path: PathBuf) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload needs a restart");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!(path = %path.display(), "SIGHUP: reading the configuration again");
                state.reload_from(&path).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (state, path);
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when
/// this is called, not when the future is first polled, so a signal sent
/// right after "channelgate listening" is logged still shuts down gracefully.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let received = |stream: Option<tokio::signal::unix::Signal>| async move {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = received(interrupt) => {},
                () = received(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
