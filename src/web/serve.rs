//! Serving: the accept loop with its bounds on a client, the metrics
//! listener, and the signals that start a graceful shutdown. What is served
//! is built in [`crate::app`].
//!
//! The bounds: a connection must send its headers within
//! `server.header_timeout` (an idle keep-alive connection too); a request
//! body must follow within `header_timeout` or keep arriving at
//! [`form::MIN_BODY_RATE`] ([`form::Paced`], else 408); a request is
//! answered within `server.request_timeout`; at most `server.max_connections`
//! are served at once and further ones wait in the listen queue; and one
//! peer address (an IPv6 /64) holds at most
//! `server.max_connections_per_client` of them: a connection beyond is
//! closed as soon as it is accepted. That last bound is on the *peer*, the
//! only address known when a connection is accepted: a peer in
//! `server.trusted_proxies` is not bounded by it (all its clients share
//! its address; the proxy must bound them), and `/auth/login`,
//! `/auth/callback` and `/pusher/auth` still count per client behind it.
//!
//! The metrics listener is served by the same loop, with the same header
//! timeout and its own cap of [`METRICS_CONNECTIONS`]: whoever reaches it
//! cannot use up the process's file descriptors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use super::form;
use super::limits::{Key, QuietLog};
use super::state::AppState;

/// The most a connection buffers of what it reads (see [`serve_connections`]).
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// Most connections the metrics listener serves at once (a scraper needs
/// one or two); further ones wait in the listen queue.
pub const METRICS_CONNECTIONS: usize = 16;

/// The metrics listener's one route, `GET /metrics`, for `state`: served
/// apart from the public listener, so the public can never read it.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
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
        .with_state(state)
}

/// What bounds the connections of a server.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// A client must finish its request headers in this long (idle
    /// keep-alive connections too), and start its body in this long.
    pub header_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Most connections of one peer address (IPv6: one /64).
    pub max_per_client: usize,
    /// Peers not bounded by `max_per_client`: the proxies whose clients
    /// all share their address.
    pub trusted_proxies: Vec<IpNet>,
}

impl ConnectionLimits {
    /// The limits `[server]` sets.
    pub fn of(server: &crate::config::ServerConfig) -> Self {
        Self {
            header_timeout: server.header_timeout,
            max_connections: server.max_connections,
            max_per_client: server.max_connections_per_client,
            trusted_proxies: server.trusted_proxies.clone(),
        }
    }

    /// The metrics listener's: `[server]`'s header timeout, and at most
    /// [`METRICS_CONNECTIONS`] in all.
    pub fn metrics(server: &crate::config::ServerConfig) -> Self {
        Self {
            header_timeout: server.header_timeout,
            max_connections: METRICS_CONNECTIONS,
            max_per_client: METRICS_CONNECTIONS,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The connections each peer holds now.
#[derive(Default, Clone)]
struct PerPeer(Arc<Mutex<HashMap<Key, usize>>>);

impl PerPeer {
    /// Counts a connection of `key`, unless it already holds `max`.
    fn admit(&self, key: Key, max: usize) -> Option<PeerSlot> {
        let mut held = self.0.lock().expect("never poisoned");
        let n = held.entry(key).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot(self.clone(), key))
    }
}

/// One connection counted against its peer, until dropped.
struct PeerSlot(PerPeer, Key);

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = (self.0).0.lock().expect("never poisoned");
        if let Some(n) = held.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.1);
            }
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
    let per_peer = PerPeer::default();
    let quiet = QuietLog::default();
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // A connection's read buffer: headers must fit (browsers send a
        // few KiB), and a body is read through it in pieces of at most
        // this. hyper's default, about 400 KiB, let 300 connections whose
        // unread bodies were being drained hold over 100 MiB.
        .max_buf_size(MAX_BUF_BYTES);
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
        let ip: IpAddr = peer.ip().to_canonical();
        let peer_slot = if limits.trusted_proxies.iter().any(|net| net.contains(&ip)) {
            None
        } else {
            let key = Key::addr(ip);
            match per_peer.admit(key, limits.max_per_client) {
                Some(counted) => Some(counted),
                None => {
                    quiet.warn(
                        "closed a connection: its address holds server.max_connections_per_client already",
                        &ip.to_string(),
                        format!("{ip} holds {} connections", limits.max_per_client),
                    );
                    drop(stream);
                    continue;
                }
            }
        };
        let grace = limits.header_timeout;
        let service = TowerToHyperService::new(app.clone().map_request(
            move |request: axum::extract::Request<hyper::body::Incoming>| {
                let mut request =
                    request.map(|body| axum::body::Body::new(form::Paced::new(body, grace)));
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
            drop(peer_slot);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves the metrics listener's routes on `listener`, bounded as
/// [`ConnectionLimits::metrics`] says, until the gateway stops it.
pub async fn serve_metrics(listener: TcpListener, state: AppState) {
    let limits = ConnectionLimits::metrics(&state.config().server);
    serve_connections(
        listener,
        metrics_router(state),
        limits,
        std::future::pending(),
    )
    .await;
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
