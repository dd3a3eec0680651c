//! Connections to Redis: the pool the room and the sessions share, and the
//! pair of clients pub/sub needs. One place knows how a `session.store` URL
//! becomes a client, and how a client's failure reads in words.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Client, ClientLike, Config, EventInterface, Pool, ReconnectPolicy};

use crate::config::redact_url;
use crate::secret::Secret;

/// Connections in the pool the sessions and the room share.
const POOL_SIZE: usize = 4;
/// How long the first connection may take before the gateway gives up.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// Reconnect for ever after Redis restarts or drops idle connections
/// (without a policy fred never reconnects).
fn reconnect() -> ReconnectPolicy {
    ReconnectPolicy::new_exponential(0, 100, 5_000, 2)
}

/// The client configuration of `url`. `rediss://` turns on TLS, verified
/// against the system's roots. Errors never quote the password.
pub fn config(url: &Secret<String>) -> Result<Config, String> {
    Config::from_url(url.expose()).map_err(|e| hide(url, &reason(&e)))
}

/// `text` with `url`'s password hidden, should a client message quote it.
fn hide(url: &Secret<String>, text: &str) -> String {
    text.replace(url.expose(), &redact_url(url.expose()))
}

/// A connected pool at `url`, or why not (within [`CONNECT_WITHIN`]).
pub async fn pool(url: &Secret<String>) -> Result<Pool, String> {
    let pool = Pool::new(config(url)?, None, None, Some(reconnect()), POOL_SIZE)
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

/// A connected publisher and subscriber at `url` (pub/sub needs a
/// connection of its own). The subscriber subscribes again by itself after
/// every reconnect.
pub async fn pubsub(url: &Secret<String>) -> Result<(Client, SubscriberClient), String> {
    let config = config(url)?;
    let publisher = Client::new(config.clone(), None, None, Some(reconnect()));
    let subscriber = SubscriberClient::new(config, None, None, Some(reconnect()));
    for client in [publisher.clone(), subscriber.to_client()] {
        client.connect();
        tokio::time::timeout(CONNECT_WITHIN, client.wait_for_connect())
            .await
            .map_err(|_| format!("no answer within {}s", CONNECT_WITHIN.as_secs()))?
            .map_err(|e| hide(url, &reason(&e)))?;
    }
    subscriber.manage_subscriptions();
    Ok((publisher, subscriber))
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
        _ => e.to_string(),
    }
}
