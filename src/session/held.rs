//! Identities decoded from the session store, held in this process for a
//! moment so that a burst of `/pusher/auth` calls from one page does not
//! load and decode the same session record again and again.
//!
//! The store stays the source of truth. An identity is held for at most
//! [`HOLD_FOR`], and never once its session is due to have its expiry
//! pushed back (that takes the store path, which also finds a session that
//! expired or was deleted). This instance forgets a session the moment it
//! logs it out, ends it at `session.max_age` or finds its token revoked,
//! and does not hold it again even for a request that loaded it just
//! before. A logout on another instance sharing a SQLite store is honoured
//! here within [`HOLD_FOR`]; on a Redis store, at once: each instance
//! announces what it forgets on the topic [`TOPIC`] (a session id or a
//! token's record id, the names Redis already keeps them under), and every
//! other forgets it too. An announcement lost to a reconnect falls back to
//! [`HOLD_FOR`]; a forged one only makes an instance read the store again.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tower_sessions::session::Id;

use super::{Identity, renewal_due};
use crate::clock::Clock;
use crate::room::Room;
use crate::room::pubsub::Heard;
use crate::tasks::Tasks;

/// The pub/sub topic on which instances announce what they forget.
pub const TOPIC: &str = "channelgate:forget";
/// Announcements waiting for Redis; past this they are dropped (the
/// others then honour the logout within [`HOLD_FOR`]).
const QUEUE: usize = 4096;

/// How long a decoded identity is used without asking the store again.
pub const HOLD_FOR: Duration = Duration::from_secs(2);

/// Shards of the map, so that the two paths that write (a request that
/// loaded a session, a logout) rarely wait on each other.
const SHARDS: usize = 16;

/// Held identities, by session id: a plain map per shard, read under a
/// read lock. (moka's per-read bookkeeping showed in the profile, and this
/// map needs neither its eviction policy nor its statistics: entries live
/// two seconds.)
#[derive(Clone)]
pub struct HeldIdentities(Arc<Shared>);

struct Shared {
    shards: [RwLock<HashMap<Id, Held>>; SHARDS],
    /// Most entries per shard.
    per_shard: usize,
    /// What a hold is measured by (tests move it instead of waiting).
    clock: Clock,
    /// On a Redis store: what this map is called on [`TOPIC`], and where
    /// its announcements go.
    fleet: OnceLock<(Kind, mpsc::Sender<Announcement>)>,
}

/// An announcement waiting to be published, and who waits for that.
type Announcement = (Wire, Option<oneshot::Sender<()>>);

/// Which map an announcement is for: a cookie's session id never names a
/// token's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// [`HeldIdentities`] of cookie sessions.
    Session,
    /// [`HeldIdentities`] of bearer tokens.
    Token,
}

/// An announcement on [`TOPIC`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Wire {
    /// The instance that forgot it (each ignores its own).
    #[serde(default)]
    from: String,
    /// Which map.
    kind: Kind,
    /// The session id or token record id.
    id: String,
}

/// One held identity, with when its session's expiry was last pushed back
/// (Unix seconds), and until when it may be used. No identity marks a
/// session forgotten: a request that loaded it just before its logout must
/// not hold it again afterwards.
struct Held {
    identity: Option<Arc<Identity>>,
    renewed: i64,
    until: Instant,
}

impl HeldIdentities {
    /// Holds up to about `capacity` sessions, each for [`HOLD_FOR`] of `clock`.
    pub fn new(capacity: u64, clock: Clock) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        Self(Arc::new(Shared {
            shards: std::array::from_fn(|_| RwLock::default()),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            clock,
            fleet: OnceLock::new(),
        }))
    }

    /// Shares what `sessions` and `tokens` forget with the other instances
    /// on a Redis `room`, and forgets what they announce. Nothing to share
    /// for a room without pub/sub (one process, or SQLite, whose other
    /// instances honour a logout within [`HOLD_FOR`]).
    pub async fn share(
        room: &Room,
        sessions: &Self,
        tokens: &Self,
        tasks: &Tasks,
    ) -> Result<(), String> {
        let Some(topic) = room.topic(TOPIC).await? else {
            return Ok(());
        };
        let (publisher, mut listener) = topic.split();
        let me = crate::room::random_name();
        let own = me.clone();
        let (heard_sessions, heard_tokens) = (sessions.clone(), tokens.clone());
        tasks.service("logouts at the other instances", async move {
            while let Some(heard) = listener.next().await {
                let text = match heard {
                    Heard::Text(text) => text,
                    Heard::Missed(missed) => {
                        tracing::warn!(
                            missed,
                            "fell behind on the other instances' logouts; they hold here for at most {}s",
                            HOLD_FOR.as_secs()
                        );
                        continue;
                    }
                };
                let wire = serde_json::from_str::<Wire>(&text).ok();
                match wire.as_ref().map(|w| (w, w.id.parse::<Id>())) {
                    Some((wire, _)) if wire.from == own => {}
                    Some((wire, Ok(id))) => match wire.kind {
                        Kind::Session => heard_sessions.forget_here(&id),
                        Kind::Token => heard_tokens.forget_here(&id),
                    },
                    _ => tracing::warn!("ignoring a malformed message on {TOPIC}"),
                }
            }
        });
        let (queue, mut out) = mpsc::channel::<Announcement>(QUEUE);
        tasks.service("logouts to the other instances", async move {
            while let Some((mut wire, published)) = out.recv().await {
                wire.from.clone_from(&me);
                let text = serde_json::to_string(&wire).expect("plain JSON");
                if let Err(e) = publisher.publish(text).await {
                    tracing::warn!(error = %e, "could not announce a logout to the other instances; they honour it within {}s", HOLD_FOR.as_secs());
                }
                if let Some(published) = published {
                    let _ = published.send(());
                }
            }
        });
        let _ = sessions.0.fleet.set((Kind::Session, queue.clone()));
        let _ = tokens.0.fleet.set((Kind::Token, queue));
        tracing::info!(
            store = room.kind(),
            channel = TOPIC,
            "sharing logouts with the other instances"
        );
        Ok(())
    }

    fn shard(&self, id: &Id) -> &RwLock<HashMap<Id, Held>> {
        // Session ids are random: their low bits spread them evenly.
        &self.0.shards[(id.0 as u64 as usize) % SHARDS]
    }

    /// The identity of session `id`, unless it is not held, was held too
    /// long ago, or its expiry is due to be pushed back at `now` (Unix
    /// seconds), renewed `every` so often (see [`super::renew_every`]).
    pub fn get(&self, id: &Id, now: i64, every: Duration) -> Option<Arc<Identity>> {
        let shard = self.shard(id).read().unwrap_or_else(|p| p.into_inner());
        let held = shard.get(id)?;
        if held.until <= self.0.clock.now() || renewal_due(Some(held.renewed), now, every) {
            return None;
        }
        held.identity.clone()
    }

    /// Holds `identity` for session `id`, last renewed at `renewed`, unless
    /// the session was forgotten within the hold. A full shard first lets
    /// go of what was held too long ago, then of any held identity.
    pub fn hold(&self, id: Id, identity: Arc<Identity>, renewed: i64) {
        self.put(id, Some(identity), renewed);
    }

    fn put(&self, id: Id, identity: Option<Arc<Identity>>, renewed: i64) {
        let now = self.0.clock.now();
        let mut shard = self.shard(&id).write().unwrap_or_else(|p| p.into_inner());
        if identity.is_some()
            && shard
                .get(&id)
                .is_some_and(|held| held.identity.is_none() && held.until > now)
        {
            return;
        }
        if shard.len() >= self.0.per_shard && !shard.contains_key(&id) {
            shard.retain(|_, held| held.until > now);
            // Marks of forgotten sessions go last: they keep a logout whole.
            let victim = shard
                .iter()
                .find(|(_, held)| held.identity.is_some())
                .or_else(|| shard.iter().next())
                .map(|(id, _)| *id);
            if shard.len() >= self.0.per_shard
                && let Some(victim) = victim
            {
                shard.remove(&victim);
            }
        }
        shard.insert(
            id,
            Held {
                identity,
                renewed,
                until: now + HOLD_FOR,
            },
        );
    }

    /// Forgets session `id` (logged out, ended or given a new id), and
    /// refuses to hold it again for as long as a hold lasts: a request that
    /// loaded it before it ended may finish after.
    pub fn forget(&self, id: &Id) {
        self.announce(id, None);
    }

    /// [`Self::forget`], returning once the other instances were told (on
    /// a Redis store; at most [`crate::room::STORE_TIMEOUT`] later): for a
    /// logout or a revocation, whose answer promises that the very next
    /// request anywhere is refused.
    pub async fn forget_everywhere(&self, id: &Id) {
        let (published, told) = oneshot::channel();
        if self.announce(id, Some(published)) {
            let _ = tokio::time::timeout(crate::room::STORE_TIMEOUT, told).await;
        }
    }

    /// Forgets `id` here and queues its announcement, if there is a fleet
    /// to tell: true when it was queued.
    fn announce(&self, id: &Id, published: Option<oneshot::Sender<()>>) -> bool {
        self.forget_here(id);
        let Some((kind, queue)) = self.0.fleet.get() else {
            return false;
        };
        let wire = Wire {
            from: String::new(),
            kind: *kind,
            id: id.to_string(),
        };
        let queued = queue.try_send((wire, published)).is_ok();
        if !queued {
            tracing::warn!(
                "too many logouts waiting for Redis; the other instances honour this one within {}s",
                HOLD_FOR.as_secs()
            );
        }
        queued
    }

    /// [`Self::forget`] in this process only (announced by another).
    fn forget_here(&self, id: &Id) {
        self.put(*id, None, 0);
    }

    /// Lets go of everything held too long ago (called once a minute, so
    /// that the sessions of people gone idle take no memory).
    pub fn prune(&self) {
        let now = self.0.clock.now();
        for shard in &self.0.shards {
            shard
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, held| held.until > now);
        }
    }

    /// Sessions held, for tests and the bench.
    pub fn len(&self) -> usize {
        self.0
            .shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::GithubUser;

    fn identity() -> Arc<Identity> {
        let keys = crate::crypto::Keys::new(None);
        Arc::new(Identity {
            user: GithubUser {
                id: 7,
                login: "ada".into(),
                name: None,
                avatar_url: String::new(),
            },
            token: keys.seal_token(&crate::secret::Secret::new("gho_x".into())),
            logged_in_at: 0,
            refresh: None,
            expires_at: None,
            refresh_at: None,
        })
    }

    #[test]
    fn a_held_identity_is_given_until_its_renewal_is_due_or_it_is_forgotten() {
        let held = HeldIdentities::new(10, Clock::default());
        let every = Duration::from_secs(100);
        let id = Id::default();
        assert!(held.get(&id, 0, every).is_none(), "nothing held yet");
        held.hold(id, identity(), 1000);
        assert_eq!(held.get(&id, 1099, every).unwrap().user.login, "ada");
        assert!(
            held.get(&id, 1100, every).is_none(),
            "renewal due: ask the store"
        );
        assert!(
            held.get(&Id::default(), 1000, every).is_none(),
            "another id"
        );
        held.forget(&id);
        assert!(held.get(&id, 1000, every).is_none(), "forgotten");
        // A request that loaded the session just before its logout finishes
        // after it: what it would hold is refused.
        held.hold(id, identity(), 1000);
        assert!(
            held.get(&id, 1000, every).is_none(),
            "held again after its logout"
        );
    }

    #[test]
    fn a_hold_and_a_logouts_refusal_last_hold_for_on_the_gateways_clock() {
        let clock = Clock::default();
        let held = HeldIdentities::new(10, clock.clone());
        let every = Duration::from_secs(3600);
        let id = Id::default();
        held.hold(id, identity(), 1000);
        clock.advance(HOLD_FOR - Duration::from_millis(100));
        assert!(held.get(&id, 1000, every).is_some(), "still held");
        clock.advance(Duration::from_millis(100));
        assert!(held.get(&id, 1000, every).is_none(), "the hold ran out");
        held.forget(&id);
        held.hold(id, identity(), 1000);
        assert!(
            held.get(&id, 1000, every).is_none(),
            "refused within the hold"
        );
        clock.advance(HOLD_FOR);
        held.hold(id, identity(), 1000);
        assert!(held.get(&id, 1000, every).is_some(), "held again after it");
        held.prune();
        assert_eq!(held.len(), 1);
        clock.advance(HOLD_FOR);
        held.prune();
        assert_eq!(held.len(), 0, "pruned once the clock passed the hold");
    }

    #[test]
    fn a_full_map_stays_within_its_capacity() {
        let held = HeldIdentities::new(32, Clock::default());
        for _ in 0..1000 {
            held.hold(Id::default(), identity(), 0);
        }
        assert!(held.len() <= 32, "{} held", held.len());
        let id = Id::default();
        held.hold(id, identity(), 0);
        assert!(
            held.get(&id, 0, Duration::from_secs(100)).is_some(),
            "the newest is held"
        );
    }
}
