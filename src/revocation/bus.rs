//! Several instances behind one Redis: a change one instance sees (a
//! webhook, a read that found a membership changed) is published on the
//! Redis channel [`CHANNEL`], and every other instance re-checks the people
//! it affects among those whose grants it holds.
//!
//! A message names people or groups only by GitHub id, never a token, and
//! is a hint: each instance re-reads the membership from GitHub before
//! ending anything. One that says a signed webhook reported a removal is
//! acted on as that webhook is: if the re-read fails, the grants end all
//! the same (fail closed). So a forged message can at worst end connections
//! that then authorize again (whoever can write to this Redis can as well
//! forge sessions); it never grants anything.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Cause, Revocation};
use crate::membership::Group;
use crate::room::Room;
use crate::room::pubsub::Heard;
use crate::tasks::Tasks;

/// The Redis pub/sub channel the instances share.
pub const CHANNEL: &str = "channelgate:revocation";
/// Changes waiting to be published; past this they are dropped (each
/// instance's own sweep still finds them within the TTL).
const QUEUE: usize = 4096;

/// A change to publish, whether a signed webhook said it was a removal,
/// and when it was heard (Unix milliseconds).
type News = (Change, bool, i64);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// One person, by GitHub id.
    Person(u64),
    /// Everyone in an organisation or team (renamed or deleted).
    Group(Group),
}

/// A message on [`CHANNEL`].
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Wire {
    /// The instance that published it (each ignores its own).
    from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    person: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    team: Option<u64>,
    /// A signed webhook said someone was removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    removal: bool,
    /// When the publisher heard it (Unix milliseconds): a membership answer
    /// shared by an instance that read it since is news enough.
    #[serde(default)]
    at: i64,
}

impl Wire {
    fn of(from: &str, (change, removal, at): News) -> Self {
        let mut wire = Self {
            from: from.to_owned(),
            person: None,
            org: None,
            team: None,
            removal,
            at,
        };
        match change {
            Change::Person(id) => wire.person = Some(id),
            Change::Group(Group::Org(id)) => wire.org = Some(id),
            Change::Group(Group::Team(id)) => wire.team = Some(id),
        }
        wire
    }

    fn change(&self) -> Option<Change> {
        match (self.person, self.org, self.team) {
            (Some(id), None, None) => Some(Change::Person(id)),
            (None, Some(id), None) => Some(Change::Group(Group::Org(id))),
            (None, None, Some(id)) => Some(Change::Group(Group::Team(id))),
            _ => None,
        }
    }
}

/// Publishes changes without waiting for Redis.
#[derive(Debug, Clone)]
pub struct Publisher {
    queue: mpsc::Sender<News>,
}

impl Publisher {
    /// Queues `change` for the other instances; `removal` when a signed
    /// webhook said someone was removed.
    pub fn publish(&self, change: Change, removal: bool, at: i64) {
        if self.queue.try_send((change, removal, at)).is_err() {
            tracing::warn!(
                ?change,
                "too many changes waiting for Redis; the other instances' sweeps will find this one"
            );
        }
    }
}

/// Subscribes `revocation` to the other instances' changes through the
/// room's pub/sub, and has it publish its own. Nothing to join for a room
/// without pub/sub (one process).
pub async fn join(room: &Room, revocation: &Revocation, tasks: &Tasks) -> Result<(), String> {
    let Some(topic) = room.topic(CHANNEL).await? else {
        return Ok(());
    };
    let (publisher, mut listener) = topic.split();
    let me = crate::room::random_name();
    let own = me.clone();
    let listening = revocation.clone();
    let jobs = tasks.clone();
    tasks.service("changes from the other instances", async move {
        while let Some(heard) = listener.next().await {
            let text = match heard {
                Heard::Text(text) => text,
                Heard::Missed(missed) => {
                    tracing::warn!(
                        missed,
                        "fell behind on the other instances' messages; the sweep will find those changes"
                    );
                    continue;
                }
            };
            match serde_json::from_str::<Wire>(&text) {
                Ok(wire) if wire.from == own => {}
                Ok(wire) => match wire.change() {
                    Some(change) => {
                        tracing::debug!(?change, from = %wire.from, "change from another instance");
                        let revocation = listening.clone();
                        let cause = Cause::Peer {
                            removal: wire.removal,
                            since: (wire.at > 0).then_some(wire.at),
                        };
                        jobs.job("a change from another instance", async move {
                            revocation.apply(change, cause).await;
                        });
                    }
                    None => tracing::warn!("ignoring a malformed message on {CHANNEL}"),
                },
                Err(_) => tracing::warn!("ignoring a malformed message on {CHANNEL}"),
            }
        }
    });

    let (queue, mut changes) = mpsc::channel(QUEUE);
    tasks.service("changes to the other instances", async move {
        while let Some(news) = changes.recv().await {
            let text = serde_json::to_string(&Wire::of(&me, news)).expect("plain JSON");
            let change = news.0;
            if let Err(e) = publisher.publish(text).await {
                tracing::warn!(error = %e, ?change, "could not publish a change to the other instances");
            }
        }
    });
    revocation.publish_to(Publisher { queue });
    tracing::info!(
        store = room.kind(),
        channel = CHANNEL,
        "sharing revocations with the other instances"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_odd_ones_are_refused() {
        for change in [
            Change::Person(1001),
            Change::Group(Group::Org(7)),
            Change::Group(Group::Team(9)),
        ] {
            for removal in [false, true] {
                let text = serde_json::to_string(&Wire::of("a", (change, removal, 1))).unwrap();
                let wire: Wire = serde_json::from_str(&text).unwrap();
                assert_eq!(wire.change(), Some(change), "{text}");
                assert_eq!(wire.removal, removal, "{text}");
            }
        }
        // A message from an instance before the flag existed is no removal.
        let old: Wire = serde_json::from_str(r#"{"from":"b","person":1}"#).unwrap();
        assert!(!old.removal);
        let two: Wire = serde_json::from_str(r#"{"from":"b","person":1,"org":2}"#).unwrap();
        assert_eq!(two.change(), None);
        let none: Wire = serde_json::from_str(r#"{"from":"b"}"#).unwrap();
        assert_eq!(none.change(), None);
    }
}
