//! What the HTTP face remembers between requests, apart from the handlers
//! that use it (so that [`super::state`] imports no handler): OAuth states
//! already spent, webhook deliveries already handled, device codes being
//! polled, signed webhook bodies already handled, the re-reads webhooks
//! asked for and that still wait, and the prefix of request ids. Each is
//! bounded in size and time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderValue;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use sha2::Digest;
use tokio::time::Instant;

use crate::membership::Group;
use crate::revocation::bus::Change;
use crate::revocation::{Cause, Revocation};
use crate::room::{Room, RoomError};
use crate::tasks::Tasks;

/// How long a login may take between `/auth/login` and `/auth/callback`.
/// GitHub's codes live 10 minutes; so does our `state`.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
/// Deliveries remembered, to answer a repeat without acting twice.
const DELIVERIES_KEPT: u64 = 100_000;
/// How long a delivery id is remembered: GitHub redelivers within 3 days.
const DELIVERIES_KEPT_FOR: Duration = Duration::from_secs(3 * 86_400);

/// OAuth states already presented at the callback, remembered for as long
/// as a login may take, so that a state works once even when its cookie is
/// replayed. Bounded: a flood of logins is limited first by `[limits]`.
/// Kept as SHA-256 digests: a fixed 32 bytes per login, whatever was sent.
///
/// On a Redis store a state is also spent in the store, under its digest
/// (never the state itself), so that a callback replayed at another
/// instance of the fleet finds it spent before GitHub is called.
#[derive(Clone)]
pub struct SpentStates(moka::future::Cache<[u8; 32], ()>);

impl Default for SpentStates {
    fn default() -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LOGIN_TIMEOUT)
                .build(),
        )
    }
}

impl SpentStates {
    /// Records `state` as spent, in this process and, on a Redis `room`,
    /// for the fleet: false when it already was, here or at any instance.
    /// An error says the store could not tell (the login must not go on).
    pub async fn spend(&self, room: &Room, state: &str) -> Result<bool, RoomError> {
        let digest: [u8; 32] = sha2::Sha256::digest(state.as_bytes()).into();
        if !self.0.entry(digest).or_insert(()).await.is_fresh() {
            return Ok(false);
        }
        if !room.is_fleet() {
            return Ok(true);
        }
        room.spend(
            &format!("channelgate:spent:state:{}", hex::encode(digest)),
            LOGIN_TIMEOUT,
        )
        .await
    }
}

/// What the webhook route remembers: delivery ids and signed bodies
/// already handled, the re-reads waiting, and the bodies being read now.
#[derive(Clone)]
pub struct SeenDeliveries {
    ids: moka::sync::Cache<String, ()>,
    /// Signed bodies already handled, by digest.
    pub bodies: SeenBodies,
    /// Re-reads asked for and not begun.
    pub rechecks: Rechecks,
    /// One permit per body being read: at most [`WEBHOOK_READS`] at once.
    pub reading: Arc<tokio::sync::Semaphore>,
}

/// Webhook bodies read at once (each up to 1 MiB); a delivery beyond
/// waits for a turn (see `web::webhook`).
pub const WEBHOOK_READS: usize = 4;

impl Default for SeenDeliveries {
    fn default() -> Self {
        Self {
            ids: moka::sync::Cache::builder()
                .max_capacity(DELIVERIES_KEPT)
                .time_to_live(DELIVERIES_KEPT_FOR)
                .build(),
            bodies: SeenBodies::default(),
            rechecks: Rechecks::default(),
            reading: Arc::new(tokio::sync::Semaphore::new(WEBHOOK_READS)),
        }
    }
}

impl SeenDeliveries {
    /// Records `id`; false when it was already there.
    pub fn first_time(&self, id: &str) -> bool {
        self.ids.entry(id.to_owned()).or_insert(()).is_fresh()
    }
}

/// How long a signed body is remembered once handled: a replay of a
/// captured delivery within this long is answered without effect.
pub const BODIES_KEPT_FOR: Duration = Duration::from_secs(3600);
/// Signed bodies remembered (32 bytes each).
const BODIES_KEPT: u64 = 100_000;

/// Signed webhook bodies already handled, by their SHA-256. Neither
/// `X-GitHub-Delivery` nor `X-GitHub-Event` is signed, so a captured
/// delivery could otherwise be replayed with fresh ids, each replay a
/// re-read from GitHub. (A genuine event whose body is byte for byte one
/// already handled within the hour, such as a second identical removal of
/// the same person, is dropped too: the sweep still re-reads them.)
#[derive(Clone)]
pub struct SeenBodies(moka::sync::Cache<[u8; 32], ()>);

impl Default for SeenBodies {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(BODIES_KEPT)
                .time_to_live(BODIES_KEPT_FOR)
                .build(),
        )
    }
}

impl SeenBodies {
    /// Records the digest of a signed body; false when it was already there.
    pub fn first_time(&self, digest: [u8; 32]) -> bool {
        self.0.entry(digest).or_insert(()).is_fresh()
    }
}

/// Re-reads asked for by webhooks and not begun yet: at most this many.
pub const RECHECKS_QUEUED: usize = 1024;

/// The re-reads webhooks ask for, coalesced: a person, org or team already
/// waiting is not queued twice (a removal upgrades the waiting one's cause),
/// at most [`RECHECKS_QUEUED`] wait, and one job at a time works through
/// them with [`Revocation::apply`]. A change taken off the queue may be
/// queued again while it is applied: the re-read under way may have begun
/// before what the new delivery announces.
#[derive(Clone, Default)]
pub struct Rechecks(Arc<Mutex<Queue>>);

#[derive(Default)]
struct Queue {
    waiting: VecDeque<(Change, Cause)>,
    /// A job is working through `waiting`.
    draining: bool,
}

/// What became of a change offered to [`Rechecks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// It waits its turn.
    Queued,
    /// The same person or group was already waiting.
    AlreadyWaiting,
    /// The queue is full: the sweep will re-read them.
    Full,
}

/// Whether two changes name the same person or group.
fn same(a: Change, b: Change) -> bool {
    match (a, b) {
        (Change::Person(a), Change::Person(b)) => a == b,
        (Change::Group(Group::Org(a)), Change::Group(Group::Org(b))) => a == b,
        (Change::Group(Group::Team(a)), Change::Group(Group::Team(b))) => a == b,
        _ => false,
    }
}

fn is_removal(cause: &Cause) -> bool {
    matches!(cause, Cause::Webhook { removal: true, .. })
}

impl Rechecks {
    /// Queues `change`, unless it already waits or the queue is full, and
    /// starts the job that applies the queue if none is running.
    pub fn offer(
        &self,
        change: Change,
        cause: Cause,
        revocation: &Revocation,
        tasks: &Tasks,
    ) -> Offered {
        let mut queue = self.0.lock().expect("never poisoned");
        if let Some((_, waiting)) = queue.waiting.iter_mut().find(|(c, _)| same(*c, change)) {
            if is_removal(&cause) && !is_removal(waiting) {
                *waiting = cause;
            }
            return Offered::AlreadyWaiting;
        }
        if queue.waiting.len() >= RECHECKS_QUEUED {
            return Offered::Full;
        }
        queue.waiting.push_back((change, cause));
        if !queue.draining {
            queue.draining = true;
            let this = self.clone();
            let revocation = revocation.clone();
            tasks.job("re-reads asked for by webhooks", async move {
                this.drain(revocation).await;
            });
        }
        Offered::Queued
    }

    /// Applies the queue until it is empty. However it ends (emptied,
    /// abandoned at shutdown, a panic), the next offer starts a new job.
    async fn drain(&self, revocation: Revocation) {
        struct Done<'a>(&'a Rechecks);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                if let Ok(mut queue) = (self.0).0.lock() {
                    queue.draining = false;
                }
            }
        }
        let done = Done(self);
        loop {
            let (change, cause) = {
                let mut queue = self.0.lock().expect("never poisoned");
                match queue.waiting.pop_front() {
                    Some(next) => next,
                    None => {
                        // In the same lock as the last pop: an offer made
                        // after it starts a new job.
                        queue.draining = false;
                        std::mem::forget(done);
                        return;
                    }
                }
            };
            revocation.apply(change, cause).await;
        }
    }

    /// How many wait now.
    pub fn len(&self) -> usize {
        self.0.lock().expect("never poisoned").waiting.len()
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The device codes being polled, by the SHA-256 of GitHub's code.
#[derive(Clone)]
pub struct DevicePolls(moka::sync::Cache<[u8; 32], Arc<Mutex<Poll>>>);

/// Where the polls of one device code stand. Its times are read off the
/// gateway's [`crate::clock::Clock`].
pub struct Poll {
    /// No poll is passed on to GitHub before this.
    pub next_at: Instant,
    /// The pace GitHub asked for, or ours after a `slow_down`.
    pub interval: Duration,
    /// A poll is with GitHub now.
    pub in_flight: bool,
    /// How it ended, if it has: the answer to every later poll.
    pub ended: Option<&'static str>,
}

impl Default for DevicePolls {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                // GitHub's device codes live 15 minutes.
                .time_to_live(Duration::from_secs(20 * 60))
                .build(),
        )
    }
}

impl DevicePolls {
    /// The polls of the device code whose digest is `key`, begun with
    /// `first` when there are none yet.
    pub fn of(&self, key: [u8; 32], first: impl FnOnce() -> Poll) -> Arc<Mutex<Poll>> {
        self.0.get_with(key, || Arc::new(Mutex::new(first())))
    }
}

/// Makes request ids: a random prefix per process and a counter, so ids
/// are unique across instances without a system call per request.
#[derive(Debug)]
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut bytes = [0u8; 6];
        OsRng.fill_bytes(&mut bytes);
        Self {
            prefix: hex::encode(bytes),
            next: AtomicU64::new(1),
        }
    }
}

impl RequestIds {
    /// The next id.
    pub fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .expect("hex and a dash are a header value")
    }
}

/// Bearer credentials this gateway did not know, counted per client
/// address for a minute from the first: past [`UnknownCredentials::PER_MINUTE`]
/// an address's bearer requests are refused (429) before the token store
/// is read, so random tokens cannot turn into a flood of store reads.
/// Known tokens never count; a bot sharing an address with such a flood
/// gets 429 (never a 401 that would make it drop its token) until the
/// minute ends.
#[derive(Clone)]
pub struct UnknownCredentials(
    moka::sync::Cache<std::net::IpAddr, Arc<std::sync::atomic::AtomicU32>>,
);

impl Default for UnknownCredentials {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        )
    }
}

impl UnknownCredentials {
    /// Unknown bearer credentials one address may present in a minute.
    pub const PER_MINUTE: u32 = 60;

    /// Whether `addr` has presented too many unknown credentials this minute.
    pub fn over(&self, addr: std::net::IpAddr) -> bool {
        self.0
            .get(&addr)
            .is_some_and(|n| n.load(Ordering::Relaxed) >= Self::PER_MINUTE)
    }

    /// `addr` presented one more unknown credential.
    pub fn count(&self, addr: std::net::IpAddr) {
        self.0
            .get_with(addr, Default::default)
            .fetch_add(1, Ordering::Relaxed);
    }
}
