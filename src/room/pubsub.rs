//! Pub/sub between the instances of a fleet: a topic publishes text to the
//! other instances and hears theirs. Only a Redis room has topics (one
//! process needs none). The subscriber subscribes again by itself after a
//! reconnect or failover; what was published meanwhile is missed, which is
//! why every message is a hint that the sweep would also find.

use fred::clients::SubscriberClient;
use fred::prelude::{Client, EventInterface, PubsubInterface};
use tokio::sync::broadcast::error::RecvError;

use super::{Result, Room, backend, connect};

/// A topic of the fleet's pub/sub.
#[derive(Debug)]
pub struct Topic {
    name: &'static str,
    publisher: Client,
    subscriber: SubscriberClient,
}

/// What a topic heard next.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// A message's text.
    Text(String),
    /// This many messages came faster than they were read and were lost.
    Missed(u64),
}

impl Room {
    /// Subscribes to the topic `name`, or `None` for a room without pub/sub
    /// (memory, SQLite).
    pub async fn topic(&self, name: &'static str) -> std::result::Result<Option<Topic>, String> {
        let Self::Redis(r) = self else {
            return Ok(None);
        };
        let (publisher, subscriber) = connect::pubsub(&r.url, &r.pool).await?;
        subscriber
            .subscribe(name)
            .await
            .map_err(|e| connect::reason(&e))?;
        Ok(Some(Topic {
            name,
            publisher,
            subscriber,
        }))
    }
}

impl Topic {
    /// Splits the topic into a publisher and a listener.
    pub fn split(self) -> (Publisher, Listener) {
        let messages = self.subscriber.message_rx();
        (
            Publisher {
                name: self.name,
                client: self.publisher,
            },
            Listener {
                messages,
                subscriber: self.subscriber,
                beat: connect::heartbeats(),
            },
        )
    }
}

/// Publishes on a topic.
#[derive(Debug, Clone)]
pub struct Publisher {
    name: &'static str,
    client: Client,
}

impl Publisher {
    /// Publishes `text` to every instance subscribed (this one included).
    pub async fn publish(&self, text: String) -> Result<()> {
        self.client
            .publish::<i64, _, _>(self.name, text)
            .await
            .map(|_| ())
            .map_err(backend)
    }
}

/// Hears a topic.
pub struct Listener {
    messages: tokio::sync::broadcast::Receiver<fred::types::Message>,
    /// Keeps the subscription (and its connection) alive with the listener,
    /// and pinged while the listener waits (see [`connect::heartbeat`]).
    subscriber: SubscriberClient,
    /// When to ping next.
    beat: tokio::time::Interval,
}

impl Listener {
    /// The next message, or `None` once the subscription has ended. While
    /// it waits, the subscriber's server is pinged every
    /// [`connect::HEARTBEAT`], so a connection to a master that went away
    /// is made again (to the new master after a failover).
    pub async fn next(&mut self) -> Option<Heard> {
        loop {
            let message = tokio::select! {
                message = self.messages.recv() => message,
                _ = self.beat.tick() => {
                    connect::heartbeat(&self.subscriber).await;
                    continue;
                }
            };
            match message {
                Ok(message) => {
                    if let Some(text) = message.value.as_str() {
                        return Some(Heard::Text(text.into_owned()));
                    }
                }
                Err(RecvError::Lagged(n)) => return Some(Heard::Missed(n)),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
