//! Connections to Redis: the pool the room and the sessions share, and the
//! pair of clients pub/sub needs. One place knows how a `session.store` URL
//! becomes a client, and how a client's failure reads in words.
//!
//! One node, a Sentinel's service and a Cluster are all fred's own
//! support (`ServerConfig::Centralized`, `Sentinel`, `Clustered`): the
//! client asks the sentinels for the master whenever it connects, so after
//! a failover too; it follows a cluster's slots and `MOVED` redirections.
//! Nothing here picks a node by hand. What is here keeps a failover short
//! for the callers: a command waits at most [`STORE_TIMEOUT`] (and is then
//! dropped, never sent late); every connection is pinged each
//! [`HEARTBEAT`] and made again when the ping goes unanswered (a master
//! that hung, or whose machine went away, closes nothing); reconnecting
//! retries at least once a second. A failover measured on the tests'
//! Sentinel (down after 1 s): the last 503 came 3 to 4 s after the master
//! stopped.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{
    Client, ClientLike, Config, ConnectionConfig, EventInterface, PerformanceConfig, Pool,
    ReconnectPolicy, ServerConfig,
};
use fred::types::ClientState;
use fred::types::config::UnresponsiveConfig;

use super::STORE_TIMEOUT;
use crate::config::{RedisNodes, Topology, redact_url};
use crate::secret::Secret;

/// Connections in the pool the sessions and the room share.
const POOL_SIZE: usize = 4;
/// How long the first connection may take before the gateway gives up.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// How long making a connection (TCP and TLS) may take, to a node, a
/// sentinel or a master a sentinel named: a host that went away is given
/// up soon enough for the next try to find the new master.
const DIAL_WITHIN: Duration = Duration::from_secs(2);
/// How long fred lets a connection leave a command unanswered, nothing
/// written since, before it closes it and connects again (a master that
/// hangs rather than closes); see [`heartbeat`] for a busy connection.
const UNANSWERED_FOR: Duration = Duration::from_secs(2);

/// How often each pooled connection, and a subscriber waiting for
/// messages, pings its server (see [`heartbeat`], [`keep_alive`]).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Reconnect for ever after Redis restarts, fails over or drops idle
/// connections (without a policy fred never reconnects): quickly at first,
/// then once a second, so a new master is found within a second of the
/// sentinels naming it.
fn reconnect() -> ReconnectPolicy {
    ReconnectPolicy::new_exponential(0, 100, 1_000, 2)
}

/// Commands wait at most [`STORE_TIMEOUT`], as the room's callers do: one
/// that waited longer (queued while Redis failed over) is dropped, not
/// written after the caller was answered 503.
fn performance() -> PerformanceConfig {
    PerformanceConfig {
        default_command_timeout: STORE_TIMEOUT,
        ..PerformanceConfig::default()
    }
}

/// Connections are dialled within [`DIAL_WITHIN`], the client's own
/// commands (`AUTH`, `ROLE`, the sentinels' and the cluster's questions)
/// answered within it too, and an idle connection whose last command went
/// unanswered for [`UNANSWERED_FOR`] is closed.
fn connection() -> ConnectionConfig {
    ConnectionConfig {
        connection_timeout: DIAL_WITHIN,
        internal_command_timeout: DIAL_WITHIN,
        unresponsive: UnresponsiveConfig {
            max_timeout: Some(UNANSWERED_FOR),
            interval: Duration::from_millis(500),
        },
        ..ConnectionConfig::default()
    }
}

/// The client configuration of `url`: one node (`redis://`, `rediss://`,
/// read by fred), a Sentinel's service or a Cluster (our own grammar, see
/// [`RedisNodes`]). `rediss…` turns on TLS, verified against the system's
/// roots. Errors never quote the password.
pub fn config(url: &Secret<String>) -> Result<Config, String> {
    if Topology::of(url.expose()) == Topology::Single {
        return Config::from_url_centralized(url.expose()).map_err(|e| hide(url, &reason(&e)));
    }
    let nodes = RedisNodes::parse(url.expose())
        .map_err(|why| format!("{} {why}", redact_url(url.expose())))?;
    let server = match nodes.service {
        Some(service) => ServerConfig::new_sentinel(nodes.hosts, service),
        None => ServerConfig::new_clustered(nodes.hosts),
    };
    let tls = if nodes.tls {
        let connector = fred::types::config::TlsConnector::default_rustls()
            .map_err(|e| hide(url, &reason(&e)))?;
        Some(connector.into())
    } else {
        None
    };
    Ok(Config {
        server,
        username: nodes.username,
        password: nodes.password.map(|p| p.expose().clone()),
        tls,
        ..Config::default()
    })
}

/// `text` with `url`'s password hidden, should a client message quote it.
fn hide(url: &Secret<String>, text: &str) -> String {
    text.replace(url.expose(), &redact_url(url.expose()))
}

/// A connected pool at `url`, or why not (within [`CONNECT_WITHIN`]).
pub async fn pool(url: &Secret<String>) -> Result<Pool, String> {
    let pool = Pool::new(
        config(url)?,
        Some(performance()),
        Some(connection()),
        Some(reconnect()),
        POOL_SIZE,
    )
    .map_err(|e| hide(url, &reason(&e)))?;
    // The first failure to connect is the answer: with a reconnect policy,
    // wait_for_connect alone may keep trying until the timeout and lose why.
    let mut failures = pool.next().error_rx();
    pool.connect();
    let failed = async move {
        match failures.recv().await {
            Ok((e, _)) => reason(&e),
            Err(_) => "the connection failed".to_owned(),
        }
    };
    tokio::select! {
        connected = pool.wait_for_connect() => connected.map_err(|e| hide(url, &reason(&e)))?,
        why = failed => return Err(hide(url, &why)),
        () = tokio::time::sleep(CONNECT_WITHIN) => {
            return Err(format!("no answer within {}s", CONNECT_WITHIN.as_secs()));
        }
    }
    Ok(pool)
}

/// A publisher (a connection of `pool`, whose [`keep_alive`] keeps it
/// following the master) and a connected subscriber at `url` (a subscriber
/// needs a connection of its own; the [`Listener`](super::pubsub::Listener)
/// gives it its [`heartbeat`]). The subscriber subscribes again by itself
/// after every reconnect.
pub async fn pubsub(
    url: &Secret<String>,
    pool: &Pool,
) -> Result<(Client, SubscriberClient), String> {
    let subscriber = SubscriberClient::new(
        config(url)?,
        Some(performance()),
        Some(connection()),
        Some(reconnect()),
    );
    subscriber.connect();
    tokio::time::timeout(CONNECT_WITHIN, subscriber.wait_for_connect())
        .await
        .map_err(|_| format!("no answer within {}s", CONNECT_WITHIN.as_secs()))?
        .map_err(|e| hide(url, &reason(&e)))?;
    subscriber.manage_subscriptions();
    Ok((pool.next().clone(), subscriber))
}

/// The ticks of [`heartbeat`]: every [`HEARTBEAT`] from now on, a late
/// one not made up for.
pub fn heartbeats() -> tokio::time::Interval {
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat
}

/// Pings `client`'s server, and connects again when the PING fails while
/// the client believes itself connected: its master hung, or its machine
/// went away without closing the connection. (fred's own check,
/// `unresponsive`, measures from the last write, which a steady stream of
/// commands keeps fresh: alone, it finds idle connections only.)
/// Reconnecting is fred's: through the sentinels, to the master they name
/// now; a subscriber then subscribes again by itself.
pub async fn heartbeat<C: ClientLike>(client: &C) {
    if client.state() != ClientState::Connected {
        // Already connecting again: that is fred's business.
        return;
    }
    // Bounded by the commands' timeout, STORE_TIMEOUT.
    let answered = client.ping::<fred::types::Value>(None).await.is_ok();
    if !answered && client.state() == ClientState::Connected {
        tracing::warn!(
            "the Redis session store did not answer a ping within {}s; connecting again",
            STORE_TIMEOUT.as_secs()
        );
        let _ = tokio::time::timeout(DIAL_WITHIN, client.force_reconnection()).await;
    }
}

/// Gives every connection of `pool` a [`heartbeat`] every [`HEARTBEAT`],
/// for as long as it runs (the gateway runs it as a service). A connection
/// that no request used since its master hung or went away would otherwise
/// wait there, and fail the request that next takes it, however long after
/// a failover.
pub async fn keep_alive(pool: Pool) {
    let mut beat = heartbeats();
    loop {
        beat.tick().await;
        futures_util::future::join_all(pool.clients().iter().map(heartbeat)).await;
    }
}

/// A Redis error in words. fred keeps an I/O error only as its `Debug`
/// text (`Os { code: 111, kind: ConnectionRefused, message: "Connection
/// refused" }`), so its message is read back from that text.
pub fn reason(e: &fred::error::Error) -> String {
    let quoted = |field: &str| {
        let (_, rest) = e.details().split_once(field)?;
        let (text, _) = rest.split_once('"')?;
        let mut chars = text.chars();
        let first = chars.next()?;
        Some(first.to_lowercase().chain(chars).collect::<String>())
    };
    match e.kind() {
        fred::error::ErrorKind::IO => quoted("message: \"")
            .or_else(|| quoted("error: \""))
            .unwrap_or_else(|| "the connection failed".to_owned()),
        fred::error::ErrorKind::Sentinel if e.details().starts_with("Missing primary") => {
            "the sentinels know no master by that service name (SERVICE, after the last /, \
             must be the name of their `sentinel monitor SERVICE …` line)"
                .to_owned()
        }
        fred::error::ErrorKind::Sentinel if e.details().starts_with("Failed to connect") => {
            "no sentinel answered (check the HOST:PORT list; with a password in the URL, \
             the sentinels need the same requirepass)"
                .to_owned()
        }
        _ => e.to_string().trim_end_matches('.').to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::error::{Error, ErrorKind};

    #[test]
    fn a_sentinel_failure_says_what_to_check() {
        let unknown = Error::new(
            ErrorKind::Sentinel,
            "Missing primary address in response from sentinel node.",
        );
        assert!(
            reason(&unknown).contains("service name"),
            "{}",
            reason(&unknown)
        );
        let none = Error::new(
            ErrorKind::Sentinel,
            "Failed to connect to all sentinel nodes.",
        );
        assert!(
            reason(&none).contains("no sentinel answered"),
            "{}",
            reason(&none)
        );
        // Other errors keep their words, without a doubled full stop.
        let auth = Error::new(ErrorKind::Auth, "NOAUTH Authentication required.");
        assert!(!reason(&auth).ends_with('.'), "{}", reason(&auth));
    }

    #[test]
    fn a_cluster_or_sentinel_url_becomes_fred_s_own_topology() {
        let url = |u: &str| Secret::new(u.to_owned());
        let sentinel = config(&url("redis-sentinel://:pw@s1:26379,s2:26380/mymaster")).unwrap();
        assert_eq!(
            sentinel.server,
            ServerConfig::new_sentinel(vec![("s1", 26379), ("s2", 26380)], "mymaster")
        );
        assert_eq!(sentinel.password.as_deref(), Some("pw"));
        let cluster = config(&url("redis-cluster://n1:7000,n2:7001")).unwrap();
        assert_eq!(
            cluster.server,
            ServerConfig::new_clustered(vec![("n1", 7000), ("n2", 7001)])
        );
        assert!(cluster.tls.is_none());
        let single = config(&url("redis://127.0.0.1:6379")).unwrap();
        assert!(!single.server.is_clustered() && !single.server.is_sentinel());
        // A refused URL is described without its password.
        let e = config(&url("redis-cluster://:hunter2@n1")).unwrap_err();
        assert!(
            !e.contains("hunter2") && e.contains("without a port"),
            "{e}"
        );
    }
}
