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
//! Kept by this process only: behind a balancer, a connection's sign-in and
//! its channel requests must reach the same instance.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moka::policy::EvictionPolicy;
use tokio::sync::{Notify, futures::OwnedNotified};

use crate::channel::SocketId;

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
}

/// The sign-ins of this gateway, and the channel requests waiting for one.
pub struct Signins {
    /// Socket id → the GitHub id it signed in as.
    signed: moka::sync::Cache<Box<str>, u64>,
    /// The waiting requests.
    waiting: Mutex<Waiting>,
}

/// The requests waiting for a sign-in, counted per socket and per person.
#[derive(Default)]
struct Waiting {
    /// Per socket: what wakes its waiters, and how many there are.
    sockets: HashMap<Box<str>, (Arc<Notify>, usize)>,
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

impl Signins {
    /// A registry whose sign-ins are kept for `kept_for` (`watch_for`)
    /// since their last use.
    pub fn new(kept_for: Duration) -> Self {
        Self::with_capacity(kept_for, SIGNINS_KEPT)
    }

    fn with_capacity(kept_for: Duration, capacity: u64) -> Self {
        Self {
            signed: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(kept_for.max(KEPT_AT_LEAST))
                .eviction_policy(EvictionPolicy::lru())
                .build(),
            waiting: Mutex::default(),
        }
    }

    /// Records that `socket` signed in as `person` (the latest sign-in of a
    /// socket wins), and wakes the requests waiting for it.
    pub fn signed_in(&self, socket: &SocketId, person: u64) {
        self.signed.insert(socket.as_str().into(), person);
        let notify = self
            .lock()
            .sockets
            .get(socket.as_str())
            .map(|(notify, _)| notify.clone());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// Whom `socket` signed in as, if it did and is remembered.
    pub fn who(&self, socket: &SocketId) -> Option<u64> {
        self.signed.get(socket.as_str())
    }

    /// Whether `socket` is signed in as `person`, waiting up to `within`
    /// for its sign-in if it has none yet. Answers at once when it is
    /// signed in (as anyone), and when too many requests wait already.
    pub async fn wait(&self, socket: &SocketId, person: u64, within: Duration) -> SignedIn {
        if let Some(now) = self.verdict(socket, person) {
            return now;
        }
        let Some((_counted, notified)) = self.enter(socket, person) else {
            return SignedIn::Busy;
        };
        // `notified` was registered under the lock `signed_in` takes to
        // wake: a sign-in since the first look is either seen here or wakes it.
        if let Some(now) = self.verdict(socket, person) {
            return now;
        }
        let _ = tokio::time::timeout(within, notified).await;
        match self.verdict(socket, person) {
            Some(SignedIn::Same) => SignedIn::Came,
            verdict => verdict.unwrap_or(SignedIn::Late),
        }
    }

    /// How many requests wait now.
    pub fn waiting(&self) -> WaitingNow {
        let waiting = self.lock();
        WaitingNow {
            requests: waiting.total,
            sockets: waiting.sockets.len(),
            people: waiting.people.len(),
        }
    }

    /// Sign-ins remembered now (after pending evictions are applied).
    pub fn remembered(&self) -> u64 {
        self.signed.run_pending_tasks();
        self.signed.entry_count()
    }

    fn verdict(&self, socket: &SocketId, person: u64) -> Option<SignedIn> {
        self.who(socket).map(|signed| {
            if signed == person {
                SignedIn::Same
            } else {
                SignedIn::Other(signed)
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // The counts stay consistent whatever panicked: each change is
        // made whole under the lock.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a waiting request in, unless there are too many: the guard
    /// counts it out, the future completes when the socket signs in.
    fn enter(&self, socket: &SocketId, person: u64) -> Option<(Waiter<'_>, OwnedNotified)> {
        let mut waiting = self.lock();
        let mine = waiting.people.get(&person).copied().unwrap_or(0);
        if waiting.total >= MAX_WAITING || mine >= MAX_WAITING_PER_PERSON {
            return None;
        }
        let notify = match waiting.sockets.entry(socket.as_str().into()) {
            Entry::Occupied(mut e) => {
                e.get_mut().1 += 1;
                e.get().0.clone()
            }
            Entry::Vacant(e) => e.insert((Arc::new(Notify::new()), 1)).0.clone(),
        };
        *waiting.people.entry(person).or_default() += 1;
        waiting.total += 1;
        let waiter = Waiter {
            signins: self,
            socket: socket.as_str().into(),
            person,
        };
        Some((waiter, notify.notified_owned()))
    }
}

/// One waiting request, counted out when dropped (answered, timed out, or
/// abandoned by its client).
struct Waiter<'a> {
    /// Where it is counted.
    signins: &'a Signins,
    /// The socket it waits for.
    socket: Box<str>,
    /// Who asks.
    person: u64,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut waiting = self.signins.lock();
        waiting.total -= 1;
        if let Entry::Occupied(mut e) = waiting.sockets.entry(std::mem::take(&mut self.socket)) {
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
        signins.signed_in(&socket(1), 7);
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
        signins.signed_in(&socket(2), 9);
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

    #[test]
    fn a_flood_of_sign_ins_keeps_the_newest_within_the_bound() {
        let signins = Signins::with_capacity(WAIT, 1_000);
        for n in 0..5_000 {
            signins.signed_in(&socket(n), n);
        }
        assert!(signins.remembered() <= 1_000, "{}", signins.remembered());
        // The latest sign-in is always kept (least recently used goes first).
        assert_eq!(signins.who(&socket(4_999)), Some(4_999));
        assert_eq!(signins.who(&socket(0)), None);
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
                signins.signed_in(&socket(n), n);
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
