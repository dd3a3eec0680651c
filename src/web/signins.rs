//! Which Pusher connections this gateway signed in, and as whom, for
//! `[revocation] require_signin`.
//!
//! Hosted Pusher's `terminate_connections` ends only connections that called
//! `pusher.signin()`. With `require_signin`, `/pusher/auth` signs channels
//! only for a `socket_id` that `/pusher/user-auth` signed in as the same
//! person, so every connection holding a channel can be ended.
//!
//! pusher-js sends the sign-in and the subscriptions together when it
//! connects, in either order, so a channel request may arrive first: it
//! waits (up to `revocation.signin_wait`, on tokio's clock) for its socket's
//! sign-in, woken by the sign-in itself, never by polling.
//!
//! Both halves are bounded, so that no flood grows memory:
//!
//! - sign-ins: at most [`SIGNINS_KEPT`], each forgotten after
//!   `revocation.watch_for` without use (a channel signed for the socket
//!   counts as use); when full, the least recently used goes first, so a
//!   new sign-in is always kept. A forgotten sign-in fails closed: the
//!   socket's next channel request waits and is refused.
//! - waiting requests: at most [`MAX_WAITING`] at once, [`MAX_WAITING_PER_PERSON`]
//!   of one person; past either, a request is refused at once. A waiting
//!   request's entry goes when it ends, whether signed in, timed out, or
//!   dropped because its client went away.
//!
//! With the memory or SQLite store, sign-ins are kept by this process only:
//! behind a balancer, a connection's sign-in and its channel requests must
//! reach the same instance. On a Redis store every instance sees them: a
//! sign-in is kept in the store (under the SHA-256 of its socket id, never
//! the id itself) for `watch_for`, written again when it is used after half
//! of that, and announced on the topic [`TOPIC`], which wakes the requests
//! waiting for it at the other instances. A waiting request also looks in
//! the store once it is counted in, and once more when its wait ends, so a
//! missed announcement (a reconnect) costs at most the wait. A sign-in the
//! store cannot keep is refused (503), as one whose grant it cannot keep.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use moka::policy::EvictionPolicy;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio::sync::{Notify, futures::OwnedNotified};
use tokio::time::Instant;

use crate::channel::SocketId;
use crate::room::pubsub::Heard;
use crate::room::{Room, RoomError};
use crate::tasks::Tasks;

/// Sign-ins remembered at most: as many as `cache.max_entries` keeps
/// people by default. About 290 bytes each (resident memory, measured by
/// `a_flood_of_sign_ins_and_waits_stays_within_its_bounds`), so at most
/// about 29 MB.
pub const SIGNINS_KEPT: u64 = 100_000;
/// Channel requests waiting for a sign-in at once, over everyone.
pub const MAX_WAITING: usize = 10_000;
/// Channel requests of one person waiting at once: pusher-js sends one
/// request per channel, so a page subscribing to many channels on connect
/// has that many waiting for the one sign-in.
pub const MAX_WAITING_PER_PERSON: usize = 100;
/// The shortest time a sign-in is kept (when `watch_for` is shorter, or
/// zero: then `require_signin` cannot be on, see the config's checks).
const KEPT_AT_LEAST: Duration = Duration::from_secs(60);
/// The pub/sub topic on which instances announce their sign-ins.
pub const TOPIC: &str = "channelgate:signins";
/// Announcements waiting for Redis; past this they are dropped (the
/// waiting requests at the other instances find the sign-in in the store
/// when their wait ends).
const QUEUE: usize = 4096;

/// A socket id's SHA-256: what sign-ins are kept under.
type Digest = [u8; 32];

/// What became of a channel request's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedIn {
    /// Signed in as the person who asks, already.
    Same,
    /// Signed in as the person who asks while the request waited: what it
    /// read before waiting may be stale.
    Came,
    /// Signed in as someone else (this GitHub id).
    Other(u64),
    /// Not signed in within the wait.
    Late,
    /// Not signed in, and too many requests wait already to wait for it.
    Busy,
    /// Not signed in here, and the fleet's store did not answer.
    Unsure,
}

/// The sign-ins of this gateway, and the channel requests waiting for one.
pub struct Signins {
    /// What this process knows and who waits here.
    here: Arc<Here>,
    /// The fleet's store and topic, on a Redis store.
    fleet: OnceLock<Fleet>,
}

/// This process's half of [`Signins`], shared with the task that hears the
/// other instances.
struct Here {
    /// Socket digest → the sign-in.
    signed: moka::sync::Cache<Digest, Signed>,
    /// The waiting requests.
    waiting: Mutex<Waiting>,
    /// How long a sign-in is kept without use.
    kept_for: Duration,
}

/// One sign-in as this process knows it.
#[derive(Debug, Clone, Copy)]
struct Signed {
    /// The GitHub id it signed in as.
    person: u64,
    /// When the fleet's copy was last written or read by this process.
    shared_at: Instant,
}

/// Where the fleet's sign-ins are.
struct Fleet {
    /// The store.
    room: Room,
    /// Announcements to publish.
    queue: mpsc::Sender<String>,
    /// This instance's name on the topic (each ignores its own).
    me: String,
}

/// An announcement on [`TOPIC`].
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Wire {
    /// The instance that signed the socket in.
    from: String,
    /// The socket id's digest, in hex.
    socket: String,
    /// Whom it signed in as.
    person: u64,
}

/// The requests waiting for a sign-in, counted per socket and per person.
#[derive(Default)]
struct Waiting {
    /// Per socket: what wakes its waiters, and how many there are.
    sockets: HashMap<Digest, (Arc<Notify>, usize)>,
    /// Per person: how many of their requests wait.
    people: HashMap<u64, usize>,
    /// All waiting requests.
    total: usize,
}

/// How many requests wait, for how many sockets and people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingNow {
    /// Requests waiting.
    pub requests: usize,
    /// Distinct sockets they wait for.
    pub sockets: usize,
    /// Distinct people they came from.
    pub people: usize,
}

fn digest(socket: &SocketId) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(b"channelgate sign-in:");
    hasher.update(socket.as_str().as_bytes());
    hasher.finalize().into()
}

/// Where the fleet keeps the sign-in of the socket of digest `digest`.
fn fleet_key(digest: &Digest) -> String {
    format!("channelgate:signin:{}", hex::encode(digest))
}

impl Signins {
    /// A registry whose sign-ins are kept for `kept_for` (`watch_for`)
    /// since their last use.
    pub fn new(kept_for: Duration) -> Self {
        Self::with_capacity(kept_for, SIGNINS_KEPT)
    }

    fn with_capacity(kept_for: Duration, capacity: u64) -> Self {
        let kept_for = kept_for.max(KEPT_AT_LEAST);
        Self {
            here: Arc::new(Here {
                signed: moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_idle(kept_for)
                    .eviction_policy(EvictionPolicy::lru())
                    .build(),
                waiting: Mutex::default(),
                kept_for,
            }),
            fleet: OnceLock::new(),
        }
    }

    /// Shares sign-ins with the other instances on a Redis `room`: keeps
    /// them in it, and hears and publishes announcements on [`TOPIC`].
    /// Nothing to share for a room without pub/sub (one process).
    pub async fn join(&self, room: &Room, tasks: &Tasks) -> Result<(), String> {
        let Some(topic) = room.topic(TOPIC).await? else {
            return Ok(());
        };
        let (publisher, mut listener) = topic.split();
        let me = crate::room::random_name();
        let own = me.clone();
        let here = self.here.clone();
        tasks.service("sign-ins from the other instances", async move {
            while let Some(heard) = listener.next().await {
                let text = match heard {
                    Heard::Text(text) => text,
                    Heard::Missed(missed) => {
                        tracing::warn!(
                            missed,
                            "fell behind on the other instances' sign-ins; requests waiting for them look in the store when their wait ends"
                        );
                        continue;
                    }
                };
                let decoded = serde_json::from_str::<Wire>(&text).ok().and_then(|wire| {
                    let digest: Digest = hex::decode(&wire.socket).ok()?.try_into().ok()?;
                    Some((wire, digest))
                });
                match decoded {
                    Some((wire, _)) if wire.from == own => {}
                    Some((wire, digest)) => here.record(digest, wire.person),
                    None => tracing::warn!("ignoring a malformed message on {TOPIC}"),
                }
            }
        });
        let (queue, mut out) = mpsc::channel::<String>(QUEUE);
        tasks.service("sign-ins to the other instances", async move {
            while let Some(text) = out.recv().await {
                if let Err(e) = publisher.publish(text).await {
                    tracing::warn!(error = %e, "could not announce a sign-in to the other instances");
                }
            }
        });
        let _ = self.fleet.set(Fleet {
            room: room.clone(),
            queue,
            me,
        });
        tracing::info!(
            store = room.kind(),
            channel = TOPIC,
            "sharing sign-ins with the other instances"
        );
        Ok(())
    }

    /// Records that `socket` signed in as `person` (the latest sign-in of a
    /// socket wins), in the fleet's store first when there is one, and
    /// wakes the requests waiting for it here and at the other instances.
    /// An error says the store could not keep it: the socket is then not
    /// signed in.
    pub async fn signed_in(&self, socket: &SocketId, person: u64) -> Result<(), RoomError> {
        let digest = digest(socket);
        if let Some(fleet) = self.fleet.get() {
            fleet
                .room
                .put(&fleet_key(&digest), &person.to_string(), self.here.kept_for)
                .await?;
            let wire = Wire {
                from: fleet.me.clone(),
                socket: hex::encode(digest),
                person,
            };
            let text = serde_json::to_string(&wire).expect("plain JSON");
            if fleet.queue.try_send(text).is_err() {
                tracing::warn!(
                    "too many sign-ins waiting for Redis; the other instances find this one in the store"
                );
            }
        }
        self.here.record(digest, person);
        Ok(())
    }

    /// Whom `socket` signed in as, if this process remembers it.
    pub fn who(&self, socket: &SocketId) -> Option<u64> {
        self.here.signed.get(&digest(socket)).map(|s| s.person)
    }

    /// Whom `socket` signed in as, if it did and is remembered here or,
    /// on a Redis store, by the fleet. An error says the store did not
    /// answer.
    pub async fn who_anywhere(&self, socket: &SocketId) -> Result<Option<u64>, RoomError> {
        let digest = digest(socket);
        if let Some(signed) = self.here.signed.get(&digest) {
            return Ok(Some(signed.person));
        }
        self.in_fleet(&digest).await
    }

    /// Whether `socket` is signed in as `person`, waiting up to `within`
    /// for its sign-in if it has none yet. Answers at once when it is
    /// signed in (as anyone), and when too many requests wait already.
    pub async fn wait(&self, socket: &SocketId, person: u64, within: Duration) -> SignedIn {
        let digest = digest(socket);
        if let Some(now) = self.here.verdict(&digest, person) {
            self.keep_shared(&digest).await;
            return now;
        }
        let mut unsure = false;
        let Some((_counted, notified)) = self.here.enter(digest, person) else {
            return match self.fleet_verdict(&digest, person, &mut unsure).await {
                Some(now) => now,
                None if unsure => SignedIn::Unsure,
                None => SignedIn::Busy,
            };
        };
        // `notified` was registered under the lock `record` takes to
        // wake: a sign-in since the first look is either seen here (or in
        // the fleet's store, written before it is announced) or wakes it.
        if let Some(now) = self.here.verdict(&digest, person) {
            return now;
        }
        if let Some(now) = self.fleet_verdict(&digest, person, &mut unsure).await {
            return now;
        }
        let _ = tokio::time::timeout(within, notified).await;
        let verdict = match self.here.verdict(&digest, person) {
            Some(now) => Some(now),
            None => self.fleet_verdict(&digest, person, &mut unsure).await,
        };
        match verdict {
            Some(SignedIn::Same) => SignedIn::Came,
            Some(verdict) => verdict,
            None if unsure => SignedIn::Unsure,
            None => SignedIn::Late,
        }
    }

    /// How many requests wait now.
    pub fn waiting(&self) -> WaitingNow {
        let waiting = self.here.lock();
        WaitingNow {
            requests: waiting.total,
            sockets: waiting.sockets.len(),
            people: waiting.people.len(),
        }
    }

    /// Sign-ins remembered now (after pending evictions are applied).
    pub fn remembered(&self) -> u64 {
        self.here.signed.run_pending_tasks();
        self.here.signed.entry_count()
    }

    /// The fleet's sign-in of the socket of `digest`, remembered here once
    /// read. None without a fleet.
    async fn in_fleet(&self, digest: &Digest) -> Result<Option<u64>, RoomError> {
        let Some(fleet) = self.fleet.get() else {
            return Ok(None);
        };
        let Some(person) = fleet
            .room
            .get(&fleet_key(digest))
            .await?
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return Ok(None);
        };
        self.here.record(*digest, person);
        Ok(Some(person))
    }

    /// [`Here::verdict`] by the fleet's store; a store that did not
    /// answer sets `unsure`.
    async fn fleet_verdict(
        &self,
        digest: &Digest,
        person: u64,
        unsure: &mut bool,
    ) -> Option<SignedIn> {
        match self.in_fleet(digest).await {
            Ok(found) => found.map(|signed| verdict(signed, person)),
            Err(e) => {
                tracing::debug!(error = %e, "the fleet's sign-ins could not be read");
                *unsure = true;
                None
            }
        }
    }

    /// A sign-in used here is used for the fleet too: its copy in the
    /// store is written again once half its time has passed since this
    /// process last wrote or read it, so it lasts as long as it is used.
    async fn keep_shared(&self, digest: &Digest) {
        let Some(fleet) = self.fleet.get() else {
            return;
        };
        let Some(signed) = self.here.signed.get(digest) else {
            return;
        };
        if signed.shared_at.elapsed() < self.here.kept_for / 2 {
            return;
        }
        match fleet
            .room
            .put(
                &fleet_key(digest),
                &signed.person.to_string(),
                self.here.kept_for,
            )
            .await
        {
            Ok(()) => self.here.record(*digest, signed.person),
            Err(e) => {
                tracing::debug!(error = %e, "a sign-in in use was not kept longer in the store")
            }
        }
    }
}

/// A request of `person` for a socket signed in as `signed`.
fn verdict(signed: u64, person: u64) -> SignedIn {
    if signed == person {
        SignedIn::Same
    } else {
        SignedIn::Other(signed)
    }
}

impl Here {
    /// Remembers that the socket of `digest` signed in as `person`, and
    /// wakes the requests waiting for it.
    fn record(&self, digest: Digest, person: u64) {
        self.signed.insert(
            digest,
            Signed {
                person,
                shared_at: Instant::now(),
            },
        );
        let notify = self
            .lock()
            .sockets
            .get(&digest)
            .map(|(notify, _)| notify.clone());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    fn verdict(&self, digest: &Digest, person: u64) -> Option<SignedIn> {
        self.signed
            .get(digest)
            .map(|signed| verdict(signed.person, person))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // The counts stay consistent whatever panicked: each change is
        // made whole under the lock.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a waiting request in, unless there are too many: the guard
    /// counts it out, the future completes when the socket signs in.
    fn enter(&self, digest: Digest, person: u64) -> Option<(Waiter<'_>, OwnedNotified)> {
        let mut waiting = self.lock();
        let mine = waiting.people.get(&person).copied().unwrap_or(0);
        if waiting.total >= MAX_WAITING || mine >= MAX_WAITING_PER_PERSON {
            return None;
        }
        let notify = match waiting.sockets.entry(digest) {
            Entry::Occupied(mut e) => {
                e.get_mut().1 += 1;
                e.get().0.clone()
            }
            Entry::Vacant(e) => e.insert((Arc::new(Notify::new()), 1)).0.clone(),
        };
        *waiting.people.entry(person).or_default() += 1;
        waiting.total += 1;
        let waiter = Waiter {
            here: self,
            digest,
            person,
        };
        Some((waiter, notify.notified_owned()))
    }
}

/// One waiting request, counted out when dropped (answered, timed out, or
/// abandoned by its client).
struct Waiter<'a> {
    /// Where it is counted.
    here: &'a Here,
    /// The socket it waits for.
    digest: Digest,
    /// Who asks.
    person: u64,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut waiting = self.here.lock();
        waiting.total -= 1;
        if let Entry::Occupied(mut e) = waiting.sockets.entry(self.digest) {
            e.get_mut().1 -= 1;
            if e.get().1 == 0 {
                e.remove();
            }
        }
        if let Entry::Occupied(mut e) = waiting.people.entry(self.person) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn socket(n: u64) -> SocketId {
        SocketId::parse(&format!("{n}.{}", n * 7 + 1)).unwrap()
    }

    fn nobody_waits(signins: &Signins) {
        assert_eq!(
            signins.waiting(),
            WaitingNow {
                requests: 0,
                sockets: 0,
                people: 0
            }
        );
    }

    /// Lets the spawned waiters run until `n` requests wait.
    async fn until_waiting(signins: &Signins, n: usize) {
        for _ in 0..100_000 {
            if signins.waiting().requests == n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("{n} requests never waited: {:?}", signins.waiting());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_request_is_woken_by_its_sockets_sign_in() {
        let signins = Arc::new(Signins::new(WAIT));
        let waiting = {
            let signins = signins.clone();
            tokio::spawn(async move { signins.wait(&socket(1), 7, WAIT).await })
        };
        until_waiting(&signins, 1).await;
        let before = tokio::time::Instant::now();
        signins.signed_in(&socket(1), 7).await.unwrap();
        assert_eq!(waiting.await.unwrap(), SignedIn::Came);
        // Woken by the sign-in, not by the clock: no time passed.
        assert_eq!(tokio::time::Instant::now(), before);
        nobody_waits(&signins);
        // Signed in already: answered without waiting.
        assert_eq!(signins.wait(&socket(1), 7, WAIT).await, SignedIn::Same);
        assert_eq!(signins.wait(&socket(1), 8, WAIT).await, SignedIn::Other(7));
        assert_eq!(tokio::time::Instant::now(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sign_in_as_someone_else_wakes_the_waiter_with_a_refusal() {
        let signins = Arc::new(Signins::new(WAIT));
        let waiting = {
            let signins = signins.clone();
            tokio::spawn(async move { signins.wait(&socket(2), 7, WAIT).await })
        };
        until_waiting(&signins, 1).await;
        signins.signed_in(&socket(2), 9).await.unwrap();
        assert_eq!(waiting.await.unwrap(), SignedIn::Other(9));
        nobody_waits(&signins);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_after_signin_wait_and_leaves_nothing_behind() {
        let signins = Signins::new(WAIT);
        let before = tokio::time::Instant::now();
        assert_eq!(signins.wait(&socket(3), 7, WAIT).await, SignedIn::Late);
        assert_eq!(tokio::time::Instant::now() - before, WAIT);
        nobody_waits(&signins);
        assert_eq!(signins.remembered(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_client_went_away_is_counted_out() {
        let signins = Arc::new(Signins::new(WAIT));
        let tasks: Vec<_> = (0..3)
            .map(|n| {
                let signins = signins.clone();
                tokio::spawn(async move { signins.wait(&socket(4), n, WAIT).await })
            })
            .collect();
        until_waiting(&signins, 3).await;
        assert_eq!(
            signins.waiting(),
            WaitingNow {
                requests: 3,
                sockets: 1,
                people: 3
            }
        );
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            assert!(task.await.unwrap_err().is_cancelled());
        }
        nobody_waits(&signins);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_caps_a_request_is_refused_at_once() {
        let signins = Arc::new(Signins::new(WAIT));
        let spawn = |socket_n: u64, person: u64| {
            let signins = signins.clone();
            tokio::spawn(async move { signins.wait(&socket(socket_n), person, WAIT).await })
        };
        // One person: MAX_WAITING_PER_PERSON wait, the next does not.
        let mine: Vec<_> = (0..MAX_WAITING_PER_PERSON as u64)
            .map(|n| spawn(n, 1))
            .collect();
        until_waiting(&signins, MAX_WAITING_PER_PERSON).await;
        assert_eq!(
            signins.wait(&socket(999_999), 1, WAIT).await,
            SignedIn::Busy
        );
        // Everyone: MAX_WAITING wait, the next does not.
        let others: Vec<_> = (MAX_WAITING_PER_PERSON..MAX_WAITING)
            .map(|n| spawn(n as u64, 1_000 + n as u64))
            .collect();
        until_waiting(&signins, MAX_WAITING).await;
        let before = tokio::time::Instant::now();
        assert_eq!(
            signins.wait(&socket(999_998), 2, WAIT).await,
            SignedIn::Busy
        );
        assert_eq!(tokio::time::Instant::now(), before, "refused at once");
        for task in mine.into_iter().chain(others) {
            assert_eq!(task.await.unwrap(), SignedIn::Late);
        }
        nobody_waits(&signins);
    }

    #[tokio::test]
    async fn a_flood_of_sign_ins_keeps_the_newest_within_the_bound() {
        let signins = Signins::with_capacity(WAIT, 1_000);
        for n in 0..5_000 {
            signins.signed_in(&socket(n), n).await.unwrap();
        }
        assert!(signins.remembered() <= 1_000, "{}", signins.remembered());
        // The latest sign-in is always kept (least recently used goes first).
        assert_eq!(signins.who(&socket(4_999)), Some(4_999));
        assert_eq!(signins.who_anywhere(&socket(0)).await, Ok(None));
    }

    /// Resident memory of this process, in bytes (Linux).
    fn resident() -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }

    /// Prints what 10,000 waiting requests for sockets that never sign in
    /// (each from its own person, so that all of them wait), and a full
    /// set of sign-ins, cost. Figures, not assertions on them: the test
    /// binary runs other tests beside this one, which adds noise.
    #[test]
    fn a_flood_of_sign_ins_and_waits_stays_within_its_bounds() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let signins = Arc::new(Signins::new(WAIT));
            let start = resident();
            let tasks: Vec<_> = (0..10_000u64)
                .map(|n| {
                    let signins = signins.clone();
                    tokio::spawn(async move { signins.wait(&socket(n), n, WAIT).await })
                })
                .collect();
            until_waiting(&signins, MAX_WAITING).await;
            let waiting = signins.waiting();
            let during = resident();
            for task in tasks {
                assert_eq!(task.await.unwrap(), SignedIn::Late);
            }
            nobody_waits(&signins);
            assert_eq!(waiting.requests, MAX_WAITING);
            if let (Some(start), Some(during)) = (start, during) {
                println!(
                    "signins: {} requests waiting for {} sockets of {} people: resident memory +{} KiB ({} bytes a request, task included)",
                    waiting.requests,
                    waiting.sockets,
                    waiting.people,
                    during.saturating_sub(start) / 1024,
                    during.saturating_sub(start) / waiting.requests as u64
                );
            }

            let start = resident();
            for n in 0..SIGNINS_KEPT {
                signins.signed_in(&socket(n), n).await.unwrap();
            }
            let kept = signins.remembered();
            let during = resident();
            assert!(kept <= SIGNINS_KEPT);
            if let (Some(start), Some(during)) = (start, during) {
                println!(
                    "signins: {kept} sign-ins remembered: resident memory +{} KiB ({} bytes a sign-in)",
                    during.saturating_sub(start) / 1024,
                    during.saturating_sub(start) / kept.max(1)
                );
            }
        });
    }
}
