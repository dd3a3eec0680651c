//! Access taken back live.
//!
//! A Pusher signature is checked once, when a client subscribes; the
//! connection then stays subscribed for as long as it is open. So the
//! gateway remembers, per person (GitHub id), what it signed within
//! `revocation.watch_for` (the *grants*), and re-evaluates those grants
//! whenever it learns the person's membership may have changed:
//!
//! - a request's membership read finds it changed (or the token revoked);
//! - a GitHub webhook names the person, or an org or team they are in
//!   (the webhook is only a hint: the membership is re-read from GitHub);
//! - the sweep, which re-reads every watched person once per
//!   `cache.membership_ttl` even when they make no request;
//! - the rules change ([`Revocation::set_access`]);
//! - another instance says so over Redis (see [`bus`]).
//!
//! When a grant is no longer allowed, the person's Pusher connections are
//! ended through Pusher's HTTP API and the grants signed before the call are
//! forgotten; the client must authorize again, which now fails for what was
//! lost. A membership that cannot be read (GitHub down) ends nothing: the
//! sweep tries again after the read's back-off (seconds, not a TTL). Except after a signed webhook that says someone
//! was removed: their cached membership is made stale past its grace, and if the re-read that
//! should confirm the removal fails, their grants end all the same (fail
//! closed: a person who burns their own rate limit cannot hold it off).
//!
//! Bounds: at most [`MAX_CHANNELS_PER_PERSON`] channels are remembered per
//! person; past that the person is marked *overflowed*, and then any change
//! of their membership or of the rules ends their connections (what they
//! hold beyond the cap is unknown, so every change counts). At most `cache.max_entries`
//! people are watched; past that the one who was signed for longest ago is
//! dropped and their connections ended at once (their client authorizes
//! again and is watched again): a full set fails closed, never open.
//!
//! Re-armed grants: each grant remembers the sockets it was signed for (the
//! [`MAX_SOCKETS_PER_GRANT`] most recent). When a socket authorizes any
//! channel or signs in, every grant of that person held by that socket is
//! watched for another `watch_for`: a connection stays within reach while it
//! keeps authorizing through this gateway, and one idle in authorization for
//! longer than `watch_for` is out of reach.
//!
//! Kept in the store: with a SQLite or Redis session store every grant is
//! written there (see [`crate::session::grants`]) and loaded at start, so a
//! restart forgets nothing. A new grant (a channel, or a socket, not signed
//! for the person before) is in the store before its signature goes out, or
//! the request fails ([`NotKept`]); a re-signed or re-armed grant's new end
//! is written lazily by the sweep, once it is a [`LAZY_FRACTION`]th of
//! `watch_for` later than the stored one.
//!
//! Here: the registry, signing, re-reads and re-evaluation. Beside it:
//! `watched.rs` (what is remembered of a person), `keeping.rs` (the store),
//! `sweep.rs`, `ending.rs` (terminate calls and what follows them),
//! `lost.rs` (what a change takes away), `refresher.rs` and `bus.rs`.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

pub mod bus;
mod cause;
pub use cause::Cause;
mod ending;
mod keeping;
mod lost;
mod refresher;
mod sweep;
mod watched;

use lost::{SIGN_IN, all_grants, lost_grants, unsigned};
pub use lost::{Unsigned, fingerprint};
pub use refresher::{Expiring, RefreshFailed, Refresher};
use sweep::{evict_oldest, spread};
use watched::{
    Held, Record, Sockets, Watched, Write, hold_recent, join_keys, parse_keys, socket_key,
};

use crate::channel::SocketId;
use crate::clock::Clock;
use crate::crypto::SealedToken;
use crate::github::GithubUser;
use crate::membership::{Membership, MembershipChange, MembershipError, Memberships, Since};
use crate::metrics::Metrics;
use crate::pusher_api::PusherApi;
use crate::room::Room;
use crate::room::grants::{self as stored, StoredGrant, StoredPerson};
use crate::rules::{Conditions, RuleSet};
use crate::session::Identity;
use crate::tasks::Tasks;

/// Most tokens of a person's other sessions kept to re-read them with.
const MAX_SPARE_TOKENS: usize = 3;
/// Most channels remembered per person; see the module's notes.
pub const MAX_CHANNELS_PER_PERSON: usize = 256;
/// How often the sweep looks for people due a re-read.
pub const SWEEP_TICK: Duration = Duration::from_secs(1);
/// Most re-reads in flight at once, from the sweep or a webhook.
const MAX_READS_IN_FLIGHT: usize = 16;
/// How long the reason a person's access ended is kept for their page.
const ENDED_KEPT_FOR: Duration = Duration::from_secs(3600);
/// Most sockets remembered per channel grant (the most recent): a channel
/// held by a few tabs is re-armed by any of them.
pub const MAX_SOCKETS_PER_GRANT: usize = 4;
/// Most sockets remembered as signed in, per person (the most recent).
pub const MAX_SIGNED_IN_SOCKETS: usize = 16;
/// A re-armed grant's new end is written to the store once it is this
/// fraction of `watch_for` (or more) later than the stored one.
pub const LAZY_FRACTION: u32 = 20;

/// Why a new grant got no signature: it could not be kept in the store, so
/// a restart would forget it and it could never be taken back.
#[derive(Debug, thiserror::Error)]
#[error(
    "the new grant could not be written to the {store} session store (session.store), so it was not signed: {cause}"
)]
pub struct NotKept {
    /// `sqlite` or `redis`.
    pub store: &'static str,
    /// The store's error.
    pub cause: String,
}

/// What the rules are, as grants are re-evaluated against them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// `[[rules]]`.
    pub rules: RuleSet,
    /// `[signin]`.
    pub signin: Option<Conditions>,
}

/// Something signed for a person.
#[derive(Debug, Clone, Copy)]
pub enum Grant<'a> {
    /// A channel subscription.
    Channel(&'a str),
    /// User authentication (`pusher.signin()`).
    SignIn,
}

/// What a person lost, and why, as their page may show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ended {
    /// When (Unix seconds).
    pub at: i64,
    /// What was lost: channel names, and `pusher.signin()` as `"sign-in"`.
    pub lost: Vec<String>,
    /// Why, in words for the person.
    pub reason: String,
}

/// The live-grant registry, its sweep, and the terminate calls. Cheap to clone.
#[derive(Clone)]
pub struct Revocation(Arc<Inner>);

struct Inner {
    watch_for: Duration,
    /// `cache.membership_ttl` in milliseconds; a reload may change it.
    ttl_ms: std::sync::atomic::AtomicU64,
    terminate: bool,
    max_people: usize,
    registry: Mutex<HashMap<u64, Watched>>,
    access: RwLock<Arc<Access>>,
    memberships: Memberships,
    pusher: PusherApi,
    clock: Clock,
    metrics: Metrics,
    reads: Semaphore,
    ended: moka::sync::Cache<u64, Arc<Ended>>,
    /// How the sweep and webhooks refresh an expired token.
    refresher: RwLock<Option<Arc<dyn Refresher>>>,
    bus: RwLock<Option<bus::Publisher>>,
    /// Where the sweep, its re-reads and the terminate calls run.
    tasks: Tasks,
    /// Where grants are kept beyond the process (SQLite, Redis).
    store: OnceLock<Room>,
    /// The sweep's write of re-armed grants is in flight.
    flushing: AtomicBool,
}

/// The settings of a [`Revocation`].
pub struct Settings {
    /// `revocation.watch_for`; zero turns revocation off.
    pub watch_for: Duration,
    /// `revocation.terminate_connections`.
    pub terminate: bool,
    /// `cache.membership_ttl`: how often the sweep re-reads a person.
    pub ttl: Duration,
    /// Most people watched (`cache.max_entries`).
    pub max_people: usize,
}

impl Revocation {
    /// A registry with nothing remembered yet; call [`Revocation::start`]
    /// to run its sweep.
    pub fn new(
        settings: Settings,
        access: Access,
        memberships: Memberships,
        pusher: PusherApi,
        clock: Clock,
        metrics: Metrics,
        tasks: Tasks,
    ) -> Self {
        Self(Arc::new(Inner {
            watch_for: settings.watch_for,
            ttl_ms: std::sync::atomic::AtomicU64::new(
                u64::try_from(settings.ttl.as_millis()).unwrap_or(u64::MAX),
            ),
            terminate: settings.terminate,
            max_people: settings.max_people.max(1),
            registry: Mutex::new(HashMap::new()),
            access: RwLock::new(Arc::new(access)),
            memberships,
            pusher,
            clock,
            metrics,
            reads: Semaphore::new(MAX_READS_IN_FLIGHT),
            ended: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ENDED_KEPT_FOR)
                .build(),
            refresher: RwLock::new(None),
            bus: RwLock::new(None),
            tasks,
            store: OnceLock::new(),
            flushing: AtomicBool::new(false),
        }))
    }

    /// How often each watched person is re-read.
    fn ttl(&self) -> Duration {
        Duration::from_millis(self.0.ttl_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Takes a reloaded `cache.membership_ttl`.
    pub fn set_ttl(&self, ttl: Duration) {
        self.0.ttl_ms.store(
            u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Whether grants are remembered at all (`watch_for` above zero).
    pub fn is_on(&self) -> bool {
        !self.0.watch_for.is_zero()
    }

    /// Runs the sweep, and re-evaluates the people whose membership reads
    /// report a change on `changes`, until the gateway stops.
    pub fn start(&self, mut changes: mpsc::Receiver<MembershipChange>) {
        if !self.is_on() {
            return;
        }
        let sweeper = self.clone();
        self.0
            .tasks
            .service("the sweep of live grants", async move {
                let mut tick = tokio::time::interval(SWEEP_TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    sweeper.sweep_once();
                }
            });
        let listener = self.clone();
        self.0.tasks.service("membership changes", async move {
            while let Some(change) = changes.recv().await {
                listener.membership_changed(change).await;
            }
        });
    }

    /// Runs one pass of the sweep now and waits until it, and every other
    /// piece of background work (re-reads, terminate calls), is done: the
    /// seam through which tests let a TTL pass without waiting for a tick.
    pub async fn sweep_now(&self) {
        self.sweep_once();
        self.0.tasks.idle().await;
    }

    /// Publishes the changes this instance sees to the other instances.
    pub fn publish_to(&self, publisher: bus::Publisher) {
        *self.0.bus.write().expect("bus lock") = Some(publisher);
    }

    /// Hands in how re-reads refresh an expired token (see [`Refresher`]).
    pub fn refresh_with(&self, refresher: Arc<dyn Refresher>) {
        *self.0.refresher.write().expect("refresher lock") = Some(refresher);
    }

    /// Person `id`'s token was refreshed into `token`: re-reads use it.
    pub fn token_replaced(&self, id: u64, token: &SealedToken, expiring: Option<Expiring>) {
        if let Some(w) = self.0.registry.lock().expect("registry lock").get_mut(&id) {
            if w.token == *token {
                w.expiring = expiring;
            } else {
                w.replace_token(token, expiring);
            }
            w.record_version += 1;
        }
    }

    /// Remembers that `grant` was signed for the person of `membership` on
    /// `socket`, logged in as `identity` (whose token re-reads them,
    /// refreshed when it expires), and watches again every grant of theirs
    /// that `socket` holds. Called after every signature, before it is
    /// answered: with a store that keeps grants, a new one (a channel or a
    /// socket not signed for before) is written first, and if it cannot be
    /// the signature must not go out. Otherwise cheap: no store write.
    pub async fn signed(
        &self,
        membership: &Membership,
        identity: &Identity,
        grant: Grant<'_>,
        socket: &SocketId,
    ) -> Result<(), NotKept> {
        if !self.is_on() {
            return Ok(());
        }
        let Some(write) = self.note(membership, identity, grant, socket.as_str()) else {
            return Ok(());
        };
        match self.0.store.get() {
            Some(store) => self.write(store, write).await,
            None => Ok(()),
        }
    }

    /// [`Revocation::signed`] in memory; what must reach the store before
    /// the signature goes out, if anything.
    fn note(
        &self,
        membership: &Membership,
        identity: &Identity,
        grant: Grant<'_>,
        socket: &str,
    ) -> Option<Write> {
        let user = membership.user();
        let now = self.0.clock.now();
        let until = now + self.0.watch_for;
        let mut registry = self.0.registry.lock().expect("registry lock");
        if !registry.contains_key(&user.id)
            && registry.len() >= self.0.max_people
            && let Some((id, dropped)) = evict_oldest(&mut registry)
        {
            // Ended outside the lock; what follows is this signing's.
            let this = self.clone();
            self.0.tasks.job(
                format!("dropping {id} from a full watched set"),
                async move {
                    this.dropped(id, dropped).await;
                },
            );
        }
        let ttl = self.ttl();
        let token = &identity.token;
        let watched = registry.entry(user.id).or_insert_with(|| {
            let mut w = Watched::new(user.clone(), token.clone(), identity.expiring(), now);
            w.next_check = now + spread(user.id, ttl);
            w
        });
        if watched.token != *token {
            watched.replace_token(token, identity.expiring());
            watched.record_version += 1;
        }
        if watched.user.login != user.login {
            watched.user = user.clone();
            watched.record_version += 1;
        }
        watched.last_signed = now;
        let socket = socket_key(socket);
        watched.rearm(socket, until);
        let (name, held) = match grant {
            Grant::SignIn => {
                if watched.signed_in.is_none() {
                    // Who signed in before it ended signs in again.
                    watched.signed_sockets.clear();
                }
                let held = watched.signed_in.get_or_insert_with(|| Held::new(until));
                held.until = held.until.max(until);
                let recent = held.sockets.hold(socket);
                let new = hold_recent(&mut watched.signed_sockets, socket, MAX_SIGNED_IN_SOCKETS);
                if recent || new {
                    held.version += 1;
                }
                (stored::SIGN_IN, Some(held))
            }
            Grant::Channel(channel) => {
                let room = watched.channels.len() < MAX_CHANNELS_PER_PERSON;
                if !watched.channels.contains_key(channel) && room {
                    watched
                        .channels
                        .insert(channel.to_owned(), Held::new(until));
                } else if !room && watched.overflow.is_none() {
                    tracing::warn!(
                        login = %user.login,
                        id = user.id,
                        "more than {MAX_CHANNELS_PER_PERSON} channels signed within revocation.watch_for: any change of their membership will now end all their connections"
                    );
                    watched.overflow = Some(fingerprint(&membership.person));
                    watched.record_version += 1;
                }
                let mut held = watched.channels.get_mut(channel);
                if let Some(held) = held.as_deref_mut() {
                    held.until = held.until.max(until);
                    if held.sockets.hold(socket) {
                        held.version += 1;
                    }
                }
                (channel, held)
            }
        };
        self.0.store.get()?;
        // Past the cap of channels nothing is held: what the store must
        // know then is the overflow, in the record.
        let past_cap = held.is_none();
        let grant = match held {
            Some(held) if held.is_stored() => None,
            Some(held) if name == stored::SIGN_IN => {
                Some((held.version, join_keys(&watched.signed_sockets)))
            }
            Some(held) => Some((held.version, join_keys(held.sockets.keys()))),
            None => None,
        };
        if grant.is_none() && !(past_cap && watched.record_changed()) {
            // Nothing new. A changed record alone (a new token) and new
            // ends are written lazily, by the sweep.
            return None;
        }
        let now_ms = self.now_ms();
        let (grants, versions) = match grant {
            Some((version, sockets)) => (
                vec![StoredGrant {
                    name: name.to_owned(),
                    until_ms: Self::until_ms(until, now, now_ms),
                    sockets,
                }],
                vec![version],
            ),
            None => (Vec::new(), Vec::new()),
        };
        Some(Write {
            id: user.id,
            record: watched.record_now(),
            grants,
            versions,
        })
    }

    /// How many grants are remembered.
    pub fn grants(&self) -> usize {
        let registry = self.0.registry.lock().expect("registry lock");
        registry.values().map(Watched::grant_count).sum()
    }

    /// Whether person `id` has grants remembered.
    pub fn is_watched(&self, id: u64) -> bool {
        self.0
            .registry
            .lock()
            .expect("registry lock")
            .contains_key(&id)
    }

    /// What person `id` last lost, within the last hour.
    pub fn ended(&self, id: u64) -> Option<Arc<Ended>> {
        self.0.ended.get(&id)
    }

    /// Replaces the rules and re-evaluates every watched person against
    /// their current membership.
    pub async fn set_access(&self, access: Access) {
        {
            let mut current = self.0.access.write().expect("access lock");
            if **current == access {
                // The same rules decide the same: nothing to re-evaluate.
                return;
            }
            *current = Arc::new(access);
        }
        let ids: Vec<u64> = self
            .0
            .registry
            .lock()
            .expect("registry lock")
            .keys()
            .copied()
            .collect();
        for id in ids {
            match self.0.memberships.peek(id).await {
                Some(m) => self.evaluate(id, Ok(m), &Cause::Rules).await,
                None => self.recheck(id, Cause::Rules).await,
            }
        }
    }

    /// Re-reads person `id`'s membership now and re-evaluates their grants;
    /// for a person with none, marks their cached membership stale so their
    /// next request re-reads it.
    pub async fn recheck(&self, id: u64, cause: Cause) {
        let target = {
            let registry = self.0.registry.lock().expect("registry lock");
            registry
                .get(&id)
                .map(|w| (w.user.clone(), w.token.clone(), w.expiring.clone()))
        };
        let since = cause.since(self.now_ms());
        let Some((user, token, expiring)) = target else {
            tracing::debug!(id, %cause, "not watched here: their cached membership is marked stale");
            let at = match since {
                Since::After(at) => at,
                Since::Fresh => self.now_ms(),
            };
            self.0.memberships.expire(id, at).await;
            return;
        };
        tracing::debug!(login = %user.login, id, %cause, "re-reading their membership");
        let read = {
            let _permit = self.0.reads.acquire().await;
            let (mut token, mut expiring) = (token, expiring);
            loop {
                let read = self
                    .read_refreshing(&user, token.clone(), expiring, since)
                    .await;
                if !matches!(read, Err(MembershipError::Revoked)) {
                    break read;
                }
                // That token is dead; go on with another session's, if any.
                let dead = token.clone();
                if !self.drop_token(id, |t| *t == dead) {
                    break read;
                }
                match self.current_token(id) {
                    Some(next) => (token, expiring) = next,
                    None => break read,
                }
            }
        };
        self.evaluate(id, read, &cause).await;
    }

    /// Forgets person `id`'s token that `is_dead` picks: a spare, or the
    /// current one, which the most recent spare then replaces. True when a
    /// token of theirs is left to re-read them with.
    fn drop_token(&self, id: u64, is_dead: impl Fn(&SealedToken) -> bool) -> bool {
        let mut registry = self.0.registry.lock().expect("registry lock");
        let Some(watched) = registry.get_mut(&id) else {
            return false;
        };
        watched.spares.retain(|(t, _)| !is_dead(t));
        if is_dead(&watched.token) {
            let Some((token, expiring)) = watched.spares.pop() else {
                return false;
            };
            watched.token = token;
            watched.expiring = expiring;
            watched.record_version += 1;
        }
        true
    }

    /// The token person `id` is re-read with now.
    fn current_token(&self, id: u64) -> Option<(SealedToken, Option<Expiring>)> {
        let registry = self.0.registry.lock().expect("registry lock");
        registry
            .get(&id)
            .map(|w| (w.token.clone(), w.expiring.clone()))
    }

    /// Re-reads `user`'s membership with `token`, refreshed first when it
    /// is due (or refused before its time while a refresh token is held).
    /// Only GitHub's refusal of the refresh reads as a revocation.
    async fn read_refreshing(
        &self,
        user: &GithubUser,
        token: SealedToken,
        expiring: Option<Expiring>,
        since: Since,
    ) -> Result<Arc<Membership>, MembershipError> {
        let refresher = self.0.refresher.read().expect("refresher lock").clone();
        let (Some(expiring), Some(refresher)) = (expiring, refresher) else {
            return self.0.memberships.recheck(user, &token, since).await;
        };
        let refresh =
            async |token: &SealedToken| match refresher.refresh(user, token, &expiring).await {
                Ok(fresh) => Ok(fresh),
                Err(RefreshFailed::Refused) => {
                    self.0.memberships.revoked(user.id, token).await;
                    Err(MembershipError::Revoked)
                }
                Err(RefreshFailed::Unavailable(why)) => Err(MembershipError::Unavailable(format!(
                    "their GitHub token could not be refreshed: {why}"
                ))),
            };
        let due = expiring.refresh_at <= self.0.clock.unix_now();
        let token = if due { refresh(&token).await? } else { token };
        match self
            .0
            .memberships
            .recheck_with(user, &token, !due, since)
            .await
        {
            // Refused before its time: perhaps refreshed by another holder.
            Err(MembershipError::Revoked) if !due => {
                let fresh = refresh(&token).await?;
                self.0.memberships.recheck(user, &fresh, since).await
            }
            read => read,
        }
    }

    /// Applies news of a change (a webhook's, or a peer's): re-checks the
    /// person, or everyone cached who is in the organisation or team. Unless
    /// it came from a peer, the other instances are told too. Returns how
    /// many people were re-checked.
    pub async fn apply(&self, change: bus::Change, cause: Cause) -> usize {
        let heard = match cause.since(self.now_ms()) {
            Since::After(at) => at,
            Since::Fresh => self.now_ms(),
        };
        if !matches!(cause, Cause::Peer { .. }) {
            self.publish(change, cause.is_removal(), heard);
        }
        let ids = match change {
            bus::Change::Person(id) => vec![id],
            bus::Change::Group(group) => {
                // Answers another instance shared, of people no instance
                // holds now, are stale too.
                self.0.memberships.expire_everyone(heard).await;
                self.0.memberships.people_in(group)
            }
        };
        let n = ids.len();
        // Whoever GitHub named, and everyone it said was removed, is never
        // answered from the cache again, stale_grace or not: only a new
        // read decides (with the entry's ETags, so an unchanged answer
        // stays free).
        if matches!(change, bus::Change::Person(_)) || cause.is_removal() {
            for &id in &ids {
                self.0.memberships.expire(id, heard).await;
            }
        }
        let checks = ids.into_iter().map(|id| self.recheck(id, cause.clone()));
        futures_util::future::join_all(checks).await;
        n
    }

    fn publish(&self, change: bus::Change, removal: bool, at: i64) {
        if let Some(bus) = self.0.bus.read().expect("bus lock").as_ref() {
            bus.publish(change, removal, at);
        }
    }

    /// A request's membership read found a change.
    async fn membership_changed(&self, change: MembershipChange) {
        // Another instance may watch them even if this one does not.
        self.publish(bus::Change::Person(change.id), false, change.at);
        if !self.is_watched(change.id) {
            return;
        }
        let read = if change.revoked {
            if let Some(dead) = change.token
                && self.drop_token(change.id, |t| t.key() == dead)
            {
                // That session's token is dead, another's may not be: the
                // person is re-read with it.
                self.recheck(change.id, Cause::Request).await;
                return;
            }
            Err(MembershipError::Revoked)
        } else {
            match self.0.memberships.peek(change.id).await {
                Some(m) => Ok(m),
                None => return,
            }
        };
        self.evaluate(change.id, read, &Cause::Request).await;
    }

    /// Re-evaluates person `id`'s grants against `read`, and ends their
    /// connections if any is lost.
    async fn evaluate(
        &self,
        id: u64,
        read: Result<Arc<Membership>, MembershipError>,
        cause: &Cause,
    ) {
        let access = self.0.access.read().expect("access lock").clone();
        let started = self.0.clock.now();
        let retry_at = match &read {
            Err(MembershipError::Unavailable(_)) => {
                let after_backoff = started + crate::membership::RETRY_AFTER_FAILURE;
                self.0
                    .memberships
                    .retry_at(id)
                    .await
                    .unwrap_or(after_backoff)
            }
            _ => started,
        };
        let (login, lost, reason) = {
            let mut registry = self.0.registry.lock().expect("registry lock");
            let Some(watched) = registry.get_mut(&id) else {
                return;
            };
            let (lost, reason) = match &read {
                Err(MembershipError::Unavailable(why)) if cause.is_removal() => (
                    all_grants(watched),
                    format!(
                        "GitHub said you were removed ({cause}), and your access could not be confirmed ({why}); it stays unknown until GitHub answers"
                    ),
                ),
                Err(MembershipError::Unavailable(why)) => {
                    tracing::debug!(login = %watched.user.login, %why, "membership unknown; grants kept until it can be read");
                    // Read again as soon as GitHub may be asked, not a TTL on.
                    watched.next_check = watched.next_check.min(retry_at);
                    return;
                }
                Err(MembershipError::Revoked) => (
                    all_grants(watched),
                    "GitHub no longer accepts your login (the token was revoked)".to_owned(),
                ),
                Ok(m) => {
                    watched.user = m.user().clone();
                    lost_grants(watched, &m.person, &access, *cause == Cause::Rules)
                }
            };
            if lost.is_empty() || watched.ending {
                return;
            }
            watched.ending = self.0.terminate;
            (watched.user.login.clone(), lost, reason)
        };
        self.0.ended.insert(
            id,
            Arc::new(Ended {
                at: self.0.clock.unix_now(),
                lost: lost.clone(),
                reason: reason.clone(),
            }),
        );
        if !self.0.terminate {
            tracing::info!(%login, id, lost = ?lost, %reason, %cause, "access lost; connections left open (revocation.terminate_connections = false)");
            self.forget(id, &lost, started);
            return;
        }
        tracing::info!(%login, id, lost = ?lost, %reason, %cause, "access lost; ending their Pusher connections");
        let this = self.clone();
        let what = format!("ending the Pusher connections of {login} ({id})");
        self.0.tasks.job(what, async move {
            let ok = this.terminate(id, &login).await;
            this.ended_call(id, started, ok);
        });
    }
}

#[cfg(test)]
mod tests;
