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

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

pub mod bus;
mod lost;
mod refresher;

use lost::{SIGN_IN, all_grants, lost_grants, unsigned};
pub use lost::{Unsigned, fingerprint};
pub use refresher::{Expiring, RefreshFailed, Refresher};

use crate::channel::SocketId;
use crate::clock::Clock;
use crate::crypto::SealedToken;
use crate::github::GithubUser;
use crate::membership::{Membership, MembershipChange, MembershipError, Memberships};
use crate::metrics::Metrics;
use crate::pusher_api::PusherApi;
use crate::rules::{Conditions, RuleSet};
use crate::session::grants::{self as stored, StoredGrant, StoredPerson};
use crate::session::{Identity, Store};
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

/// A socket id as grants remember it: the 64-bit FNV-1a hash of its text,
/// eight bytes and no allocation. Two sockets of one person sharing a hash
/// would only share their re-arming and their count as signed in.
fn socket_key(socket: &str) -> u64 {
    socket.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Makes `key` the most recent of `keys`, forgetting the oldest past
/// `cap`. True when it was not held before.
fn hold_recent(keys: &mut Vec<u64>, key: u64, cap: usize) -> bool {
    if let Some(i) = keys.iter().position(|k| *k == key) {
        keys.remove(i);
        keys.push(key);
        false
    } else {
        if keys.len() >= cap {
            keys.remove(0);
        }
        keys.push(key);
        true
    }
}

/// Socket keys as the store keeps them: hexadecimal, comma-separated.
fn join_keys(keys: &[u64]) -> String {
    keys.iter()
        .map(|k| format!("{k:x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What [`join_keys`] wrote; anything else is skipped.
fn parse_keys(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.split(',')
        .filter_map(|k| u64::from_str_radix(k, 16).ok())
}

/// The sockets a grant was signed for (their keys), the
/// [`MAX_SOCKETS_PER_GRANT`] most recent, the most recent last. Inline: a
/// grant costs no allocation for its sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sockets {
    keys: [u64; MAX_SOCKETS_PER_GRANT],
    len: u8,
}

impl Sockets {
    /// Makes `key` the most recent, forgetting the oldest past the cap.
    /// True when it was not held before.
    fn hold(&mut self, key: u64) -> bool {
        let len = usize::from(self.len);
        if let Some(i) = self.keys[..len].iter().position(|k| *k == key) {
            self.keys[i..len].rotate_left(1);
            false
        } else if len < MAX_SOCKETS_PER_GRANT {
            self.keys[len] = key;
            self.len += 1;
            true
        } else {
            self.keys.rotate_left(1);
            self.keys[MAX_SOCKETS_PER_GRANT - 1] = key;
            true
        }
    }

    fn keys(&self) -> &[u64] {
        &self.keys[..usize::from(self.len)]
    }

    fn contains(&self, key: u64) -> bool {
        self.keys().contains(&key)
    }

    /// Every key of `text` held in turn: the last ones stay.
    fn parse(text: &str) -> Self {
        let mut sockets = Self::default();
        for key in parse_keys(text) {
            sockets.hold(key);
        }
        sockets
    }
}

/// One grant as watched.
struct Held {
    /// When it stops being watched: `watch_for` after it was last signed,
    /// or after one of its sockets last authorized or signed in.
    until: Instant,
    /// The sockets it was signed for.
    sockets: Sockets,
    /// Bumped when `sockets` changes.
    version: u32,
    /// What the store holds: the version written and its end (Unix ms).
    stored: Option<(u32, i64)>,
}

impl Held {
    fn new(until: Instant) -> Self {
        Self {
            until,
            sockets: Sockets::default(),
            version: 0,
            stored: None,
        }
    }

    /// The store holds it with these sockets (perhaps an earlier end).
    fn is_stored(&self) -> bool {
        self.stored.is_some_and(|(v, _)| v == self.version)
    }

    /// The end the store holds, whatever its sockets.
    fn stored_until(&self) -> Option<i64> {
        self.stored.map(|(_, until)| until)
    }
}

/// A person's record as the store keeps it: who, and the sealed token (and
/// sealed refresh data) that re-read them. Never a token in clear.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    user: GithubUser,
    token: SealedToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh: Option<SealedToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overflow: Option<u64>,
}

/// What is written to the store for one person.
struct Write {
    id: u64,
    /// The record, and the version of it.
    record: Option<(u32, String)>,
    grants: Vec<StoredGrant>,
    /// The version of each of `grants`' sockets.
    versions: Vec<u32>,
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

/// Why grants are being re-evaluated, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A webhook delivery.
    Webhook {
        /// `X-GitHub-Delivery`.
        delivery: String,
        /// `X-GitHub-Event`, with the action.
        event: String,
        /// It says someone was removed (from an org or team, or their
        /// authorization revoked): if the re-read that should confirm it
        /// fails, their grants end all the same.
        removal: bool,
    },
    /// The sweep's periodic re-read.
    Sweep,
    /// A request's membership read found a change.
    Request,
    /// The rules changed.
    Rules,
    /// Another instance saw a change.
    Peer {
        /// It heard a signed webhook that says someone was removed.
        removal: bool,
    },
}

impl Cause {
    /// A signed webhook, heard here or by another instance, that says
    /// someone was removed.
    fn is_removal(&self) -> bool {
        matches!(
            self,
            Self::Webhook { removal: true, .. } | Self::Peer { removal: true }
        )
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Webhook {
                delivery, event, ..
            } => write!(f, "webhook {event} (delivery {delivery})"),
            Self::Sweep => f.write_str("the sweep's re-read"),
            Self::Request => f.write_str("a re-read on request"),
            Self::Rules => f.write_str("a change of the rules"),
            Self::Peer { removal: false } => f.write_str("a change another instance saw"),
            Self::Peer { removal: true } => {
                f.write_str("a removal another instance heard from GitHub")
            }
        }
    }
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

/// One person's grants.
struct Watched {
    user: GithubUser,
    token: SealedToken,
    /// The refresh token and due time of `token`, when it expires.
    expiring: Option<Expiring>,
    /// The tokens of the person's other sessions that signed here, the
    /// most recent last (at most [`MAX_SPARE_TOKENS`], in memory only):
    /// when GitHub refuses `token` (that session ended, or GitHub dropped
    /// its oldest token), re-reads go on with one of these, so one dead
    /// token does not end the connections of every device.
    spares: Vec<(SealedToken, Option<Expiring>)>,
    /// Channel name → the grant.
    channels: HashMap<String, Held>,
    /// `pusher.signin()`.
    signed_in: Option<Held>,
    /// The sockets that signed in (keys), the [`MAX_SIGNED_IN_SOCKETS`]
    /// most recent, the most recent last; what the store keeps of the
    /// sign-in's sockets.
    signed_sockets: Vec<u64>,
    /// Set past [`MAX_CHANNELS_PER_PERSON`]: the membership's fingerprint then.
    overflow: Option<u64>,
    /// When the sweep looks at them next.
    next_check: Instant,
    /// The first look, at a point of the TTL spread by id, re-reads
    /// whatever the cache holds; later ones only when nothing else has.
    rephased: bool,
    /// The latest signing.
    last_signed: Instant,
    /// A terminate call is in flight.
    ending: bool,
    /// Bumped when what [`Record`] holds changes.
    record_version: u32,
    /// The version of the record the store holds.
    record_stored: Option<u32>,
}

impl Watched {
    fn new(user: GithubUser, token: SealedToken, expiring: Option<Expiring>, now: Instant) -> Self {
        Self {
            user,
            token,
            expiring,
            spares: Vec::new(),
            channels: HashMap::new(),
            signed_in: None,
            signed_sockets: Vec::new(),
            overflow: None,
            next_check: now,
            rephased: false,
            last_signed: now,
            ending: false,
            record_version: 0,
            record_stored: None,
        }
    }

    fn grant_count(&self) -> usize {
        self.channels.len() + usize::from(self.signed_in.is_some())
    }

    /// Every grant this socket holds is watched until `until` at least.
    fn rearm(&mut self, socket: u64, until: Instant) {
        for held in self.channels.values_mut().chain(self.signed_in.as_mut()) {
            if held.until < until && held.sockets.contains(socket) {
                held.until = until;
            }
        }
    }

    /// The sockets of the grant the store names `name`, as it keeps them.
    fn sockets_text(&self, name: &str, held: &Held) -> String {
        if name == stored::SIGN_IN {
            join_keys(&self.signed_sockets)
        } else {
            join_keys(held.sockets.keys())
        }
    }

    /// The grant the store names `name`.
    fn held_mut(&mut self, name: &str) -> Option<&mut Held> {
        if name == stored::SIGN_IN {
            self.signed_in.as_mut()
        } else {
            self.channels.get_mut(name)
        }
    }

    /// Every grant as the store names it, with its end there (those the
    /// store holds).
    fn stored_names(&self) -> Vec<(String, i64)> {
        let channels = self
            .channels
            .iter()
            .filter_map(|(name, held)| Some((name.clone(), held.stored_until()?)));
        let signed_in = self
            .signed_in
            .as_ref()
            .and_then(|held| Some((stored::SIGN_IN.to_owned(), held.stored_until()?)));
        channels.chain(signed_in).collect()
    }

    fn record(&self) -> String {
        let expiring = self.expiring.as_ref();
        serde_json::to_string(&Record {
            user: self.user.clone(),
            token: self.token.clone(),
            refresh: expiring.map(|e| e.refresh.clone()),
            expires_at: expiring.map(|e| e.expires_at),
            refresh_at: expiring.map(|e| e.refresh_at),
            overflow: self.overflow,
        })
        .expect("a record serializes")
    }

    /// The record, when the store does not hold it as it is.
    /// Re-reads go on with `token` (the latest signing's, or a refresh's):
    /// the one most likely to work. The one it replaces is kept among the
    /// spares in case this one dies first.
    fn replace_token(&mut self, token: &SealedToken, expiring: Option<Expiring>) {
        let before = (
            std::mem::replace(&mut self.token, token.clone()),
            std::mem::replace(&mut self.expiring, expiring),
        );
        self.spares.retain(|(t, _)| t != token && *t != before.0);
        self.spares.push(before);
        if self.spares.len() > MAX_SPARE_TOKENS {
            self.spares.remove(0);
        }
    }

    fn record_due(&self) -> Option<(u32, String)> {
        // Sent with every write, changed or not: the person's record may
        // have gone meanwhile (their last grant forgotten here or by
        // another instance, their Redis key expired), and a grant written
        // without one is a grant no load would find.
        Some((self.record_version, self.record()))
    }
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
    store: OnceLock<Store>,
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

    /// The clock's Unix time in milliseconds, as the store keeps ends.
    fn now_ms(&self) -> i64 {
        i64::try_from(self.0.clock.utc_now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// `until` in the store's terms, read at `now` (`now_ms`).
    fn until_ms(until: Instant, now: Instant, now_ms: i64) -> i64 {
        let ahead =
            i64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_add(ahead)
    }

    /// Keeps grants in `store` from now on (when it keeps any: SQLite,
    /// Redis), and watches again what it holds from before a restart: the
    /// freshest people up to `cache.max_entries`, each up to
    /// [`MAX_CHANNELS_PER_PERSON`] channels. Those past the cap of people
    /// are dropped as from a full set (their connections ended). Returns
    /// how many people and grants were taken back.
    pub async fn keep_in(&self, store: Store) -> Result<(usize, usize), String> {
        if !self.is_on() || !store.keeps_grants() {
            return Ok((0, 0));
        }
        let now_ms = self.now_ms();
        let mut people = store.load_grants(now_ms).await.map_err(|e| e.to_string())?;
        let _ = self.0.store.set(store);
        let freshest = |p: &StoredPerson| p.grants.iter().map(|g| g.until_ms).max();
        people.sort_by_key(|p| std::cmp::Reverse(freshest(p)));
        let now = self.0.clock.now();
        let ttl = self.ttl();
        let (mut loaded, mut grants) = (0, 0);
        let mut beyond = Vec::new();
        {
            let mut registry = self.0.registry.lock().expect("registry lock");
            for person in people {
                let id = person.id;
                let Some(watched) = self.watched_from(&person, now, now_ms) else {
                    tracing::warn!(
                        id,
                        "a stored grant's record cannot be read; ending their connections, as its grants cannot be re-checked"
                    );
                    let gone = person.grants.into_iter().map(|g| (g.name, g.until_ms));
                    beyond.push((id, Err(gone.collect::<Vec<_>>())));
                    continue;
                };
                if registry.len() >= self.0.max_people && !registry.contains_key(&id) {
                    beyond.push((id, Ok(watched)));
                    continue;
                }
                let mut watched = watched;
                watched.next_check = now + spread(id, ttl);
                loaded += 1;
                grants += watched.grant_count();
                registry.insert(id, watched);
            }
        }
        for (id, watched) in beyond {
            let this = self.clone();
            self.0.tasks.job(
                format!("dropping {id}, loaded past cache.max_entries"),
                async move {
                    match watched {
                        Ok(watched) => this.dropped(id, watched).await,
                        Err(gone) => {
                            this.unstore(id, gone);
                            this.terminate_counting(id, "?", Unsigned::default()).await;
                        }
                    }
                },
            );
        }
        Ok((loaded, grants))
    }

    /// A person as the store kept them; `None` when their record is unreadable.
    fn watched_from(&self, person: &StoredPerson, now: Instant, now_ms: i64) -> Option<Watched> {
        let record: Record = serde_json::from_str(&person.record).ok()?;
        let expiring = match (record.refresh, record.expires_at, record.refresh_at) {
            (Some(refresh), Some(expires_at), Some(refresh_at)) => Some(Expiring {
                refresh,
                expires_at,
                refresh_at,
            }),
            _ => None,
        };
        let mut watched = Watched::new(record.user, record.token, expiring, now);
        watched.overflow = record.overflow;
        watched.record_stored = Some(0);
        let mut grants: Vec<&StoredGrant> = person.grants.iter().collect();
        grants.sort_by_key(|g| std::cmp::Reverse(g.until_ms));
        for grant in grants {
            let ahead = u64::try_from(grant.until_ms.saturating_sub(now_ms)).unwrap_or(0);
            let until = now + Duration::from_millis(ahead).min(self.0.watch_for);
            let held = Held {
                until,
                sockets: Sockets::parse(&grant.sockets),
                version: 0,
                stored: Some((0, grant.until_ms)),
            };
            if grant.name == stored::SIGN_IN {
                for key in parse_keys(&grant.sockets) {
                    hold_recent(&mut watched.signed_sockets, key, MAX_SIGNED_IN_SOCKETS);
                }
                watched.signed_in = Some(held);
            } else if watched.channels.len() < MAX_CHANNELS_PER_PERSON {
                watched.channels.insert(grant.name.clone(), held);
            } else if watched.overflow.is_none() {
                // More were kept than one instance watches: what is beyond
                // the cap is unknown, so any change ends everything (no
                // membership's fingerprint is ever this).
                watched.overflow = Some(0);
            }
        }
        Some(watched)
    }

    /// Writes `write` to the store, and notes what the store now holds.
    async fn write(&self, store: &Store, write: Write) -> Result<(), NotKept> {
        store
            .keep_grants(
                write.id,
                write.record.as_ref().map(|(_, r)| r.as_str()),
                &write.grants,
                self.0.watch_for,
            )
            .await
            .map_err(|e| NotKept {
                store: store.kind(),
                cause: e.to_string(),
            })?;
        let mut registry = self.0.registry.lock().expect("registry lock");
        let Some(watched) = registry.get_mut(&write.id) else {
            return Ok(());
        };
        if let Some((version, _)) = write.record
            && watched.record_version == version
        {
            watched.record_stored = Some(version);
        }
        for (grant, version) in write.grants.iter().zip(write.versions) {
            if let Some(held) = watched.held_mut(&grant.name) {
                // Versions only grow: a later write that landed first stays.
                if held.stored.is_none_or(|(v, _)| v <= version) {
                    let until = held.stored_until().unwrap_or(i64::MIN).max(grant.until_ms);
                    held.stored = Some((version, until));
                }
            }
        }
        Ok(())
    }

    /// Removes `gone` (names and stored ends) of person `id` from the
    /// store, in the background.
    fn unstore(&self, id: u64, gone: Vec<(String, i64)>) {
        let Some(store) = self.0.store.get().cloned() else {
            return;
        };
        if gone.is_empty() {
            return;
        }
        self.0
            .tasks
            .job(format!("forgetting grants of {id} in the store"), async move {
                if let Err(e) = store.forget_grants(id, &gone).await {
                    // Kept, they are loaded at the next start and re-checked
                    // then: nothing is lost, a little is re-read.
                    tracing::warn!(id, error = %e, "could not remove ended grants from the session store; they expire there after revocation.watch_for");
                }
            });
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
        let record_due = watched.record_stored != Some(watched.record_version);
        if grant.is_none() && !(past_cap && record_due) {
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
            record: watched.record_due(),
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
        let Some((user, token, expiring)) = target else {
            tracing::debug!(id, %cause, "not watched here: their cached membership is marked stale");
            self.0.memberships.expire(id).await;
            return;
        };
        tracing::debug!(login = %user.login, id, %cause, "re-reading their membership");
        let read = {
            let _permit = self.0.reads.acquire().await;
            let (mut token, mut expiring) = (token, expiring);
            loop {
                let read = self.read_refreshing(&user, token.clone(), expiring).await;
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
    ) -> Result<Arc<Membership>, MembershipError> {
        let refresher = self.0.refresher.read().expect("refresher lock").clone();
        let (Some(expiring), Some(refresher)) = (expiring, refresher) else {
            return self.0.memberships.recheck(user, &token).await;
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
        match self.0.memberships.recheck_with(user, &token, !due).await {
            // Refused before its time: perhaps refreshed by another holder.
            Err(MembershipError::Revoked) if !due => {
                let fresh = refresh(&token).await?;
                self.0.memberships.recheck(user, &fresh).await
            }
            read => read,
        }
    }

    /// Applies news of a change (a webhook's, or a peer's): re-checks the
    /// person, or everyone cached who is in the organisation or team. Unless
    /// it came from a peer, the other instances are told too. Returns how
    /// many people were re-checked.
    pub async fn apply(&self, change: bus::Change, cause: Cause) -> usize {
        if !matches!(cause, Cause::Peer { .. }) {
            self.publish(change, cause.is_removal());
        }
        let ids = match change {
            bus::Change::Person(id) => vec![id],
            bus::Change::Group(group) => self.0.memberships.people_in(group),
        };
        let n = ids.len();
        // Whoever GitHub named, and everyone it said was removed, is never
        // answered from the cache again, stale_grace or not: only a new
        // read decides (with the entry's ETags, so an unchanged answer
        // stays free).
        if matches!(change, bus::Change::Person(_)) || cause.is_removal() {
            for &id in &ids {
                self.0.memberships.expire(id).await;
            }
        }
        let checks = ids.into_iter().map(|id| self.recheck(id, cause.clone()));
        futures_util::future::join_all(checks).await;
        n
    }

    fn publish(&self, change: bus::Change, removal: bool) {
        if let Some(bus) = self.0.bus.read().expect("bus lock").as_ref() {
            bus.publish(change, removal);
        }
    }

    /// A request's membership read found a change.
    async fn membership_changed(&self, change: MembershipChange) {
        // Another instance may watch them even if this one does not.
        self.publish(bus::Change::Person(change.id), false);
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

    /// One pass of the sweep: forgets grants past their end (in the store
    /// too), writes re-armed grants' new ends to the store, and starts a
    /// re-read of each person due one.
    pub fn sweep_once(&self) {
        let now = self.0.clock.now();
        let ttl = self.ttl();
        let mut due = Vec::new();
        let mut gone = Vec::new();
        {
            let mut registry = self.0.registry.lock().expect("registry lock");
            registry.retain(|id, w| {
                let mut ended = Vec::new();
                w.channels.retain(|name, held| {
                    let live = held.until > now;
                    if let (false, Some(until)) = (live, held.stored_until()) {
                        ended.push((name.clone(), until));
                    }
                    live
                });
                if let Some(held) = w.signed_in.take_if(|held| held.until <= now)
                    && let Some(until) = held.stored_until()
                {
                    ended.push((stored::SIGN_IN.to_owned(), until));
                }
                if !ended.is_empty() {
                    gone.push((*id, ended));
                }
                // Past the cap, what they signed beyond it is unknown and
                // may still be held: watched for watch_for after their
                // last signing, whatever expired of what is remembered.
                let past_cap = w.overflow.is_some()
                    && now.saturating_duration_since(w.last_signed) < self.0.watch_for;
                w.grant_count() > 0 || w.ending || past_cap
            });
            self.flush(&registry, now);
            for (id, w) in registry.iter_mut() {
                if w.next_check <= now && !w.ending {
                    w.next_check = now + ttl;
                    due.push((*id, !w.rephased));
                    w.rephased = true;
                }
            }
        }
        for (id, ended) in gone {
            self.unstore(id, ended);
        }
        for (id, force) in due {
            let this = self.clone();
            self.0
                .tasks
                .job(format!("the sweep's re-read of {id}"), async move {
                    this.sweep_check(id, force).await;
                });
        }
    }

    /// The sweep's look at person `id`: a re-read, unless a request has
    /// re-read them within the TTL (then their grants are checked against
    /// that read, and the next look is due when it goes stale). So nobody goes longer than a TTL (and a tick)
    /// unconfirmed, and an active person is not read twice per TTL.
    async fn sweep_check(&self, id: u64, force: bool) {
        if !force && let Some(m) = self.0.memberships.peek(id).await {
            let stale_at = m.confirmed_at + self.ttl();
            if stale_at > self.0.clock.now() {
                if let Some(w) = self.0.registry.lock().expect("registry lock").get_mut(&id) {
                    w.next_check = stale_at;
                }
                // No read, but the grants are checked against that fresh
                // read: a terminate call that failed is tried again, and news
                // of a change that found the channel full is not lost.
                self.evaluate(id, Ok(m), &Cause::Sweep).await;
                return;
            }
        }
        self.recheck(id, Cause::Sweep).await;
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

    /// Ends person `id`'s Pusher connections; counted and logged. True when
    /// Pusher said they were ended.
    async fn terminate(&self, id: u64, login: &str) -> bool {
        let unsigned = {
            let registry = self.0.registry.lock().expect("registry lock");
            registry.get(&id).map(unsigned).unwrap_or_default()
        };
        self.terminate_counting(id, login, unsigned).await
    }

    /// [`Revocation::terminate`], for a person whose channels on sockets
    /// that never signed in are `unsigned`: hosted Pusher's
    /// terminate_connections does not reach those sockets, so the log line
    /// says so and `channelgate_terminations_unreachable_total` counts it.
    async fn terminate_counting(&self, id: u64, login: &str, unsigned: Unsigned) -> bool {
        let result = self.0.pusher.terminate_connections(id).await;
        self.0.metrics.termination(result.is_ok());
        let Unsigned { sockets, channels } = unsigned;
        match &result {
            Ok(()) if sockets > 0 => {
                self.0.metrics.termination_unreachable();
                tracing::warn!(
                    %login,
                    id,
                    unsigned_sockets = sockets,
                    unsigned_channels = channels,
                    "Pusher connections ended, but {sockets} of their sockets, holding {channels} of their channels, never signed in: hosted Pusher's terminate_connections reaches only sockets that called pusher.signin(), so those stay open until they close; have clients sign in before subscribing (revocation.require_signin)"
                );
            }
            Ok(()) => tracing::info!(
                %login,
                id,
                unsigned_sockets = 0,
                unsigned_channels = 0,
                "Pusher connections ended"
            ),
            Err(e) => tracing::error!(%login, id, error = %e, "could not end Pusher connections"),
        }
        result.is_ok()
    }

    /// Person `id` was dropped from a full watched set: what they hold can
    /// no longer be re-checked, so their connections end now (their client
    /// authorizes again and is watched again). A full set fails closed.
    async fn dropped(&self, id: u64, watched: Watched) {
        self.0.metrics.grant_dropped();
        let login = watched.user.login.clone();
        self.unstore(id, watched.stored_names());
        if !self.0.terminate {
            tracing::warn!(%login, id, "watching as many people as cache.max_entries allows: forgot the grants of the one signed for longest ago (revocation.terminate_connections = false, so their connections stay open)");
            return;
        }
        tracing::warn!(%login, id, "watching as many people as cache.max_entries allows: ending the connections of the one signed for longest ago, whose grants can no longer be watched (their client authorizes again)");
        self.0.ended.insert(
            id,
            Arc::new(Ended {
                at: self.0.clock.unix_now(),
                lost: all_grants(&watched),
                reason: "the gateway watches at most cache.max_entries people at once, so your connections were ended to be authorized again".to_owned(),
            }),
        );
        // Nothing is left to retry: they are no longer watched.
        self.terminate_counting(id, &login, unsigned(&watched))
            .await;
    }

    /// After a terminate call: forget what it ended, or let a later
    /// evaluation try again.
    fn ended_call(&self, id: u64, started: Instant, ok: bool) {
        let mut registry = self.0.registry.lock().expect("registry lock");
        let Some(watched) = registry.get_mut(&id) else {
            return;
        };
        watched.ending = false;
        if ok {
            // Every connection is gone; what was signed (or re-armed) since
            // may be live.
            let since = started + self.0.watch_for;
            let mut gone = Vec::new();
            watched.channels.retain(|name, held| {
                let live = held.until > since;
                if let (false, Some(until)) = (live, held.stored_until()) {
                    gone.push((name.clone(), until));
                }
                live
            });
            if let Some(held) = watched.signed_in.take_if(|held| held.until <= since)
                && let Some(until) = held.stored_until()
            {
                gone.push((stored::SIGN_IN.to_owned(), until));
            }
            if watched.overflow.take().is_some() {
                watched.record_version += 1;
            }
            if watched.grant_count() == 0 {
                registry.remove(&id);
            }
            drop(registry);
            self.unstore(id, gone);
        } else {
            // Due again soon rather than a whole TTL later.
            watched.next_check = self.0.clock.now() + SWEEP_TICK * 5;
        }
    }

    /// Forgets the grants in `lost` signed before `started`.
    fn forget(&self, id: u64, lost: &[String], started: Instant) {
        let since = started + self.0.watch_for;
        let mut gone = Vec::new();
        let mut registry = self.0.registry.lock().expect("registry lock");
        if let Some(watched) = registry.get_mut(&id) {
            for name in lost {
                let (held, stored_name) = if name == SIGN_IN {
                    (
                        watched.signed_in.take_if(|held| held.until <= since),
                        stored::SIGN_IN,
                    )
                } else if watched.channels.get(name).is_some_and(|h| h.until <= since) {
                    (watched.channels.remove(name), name.as_str())
                } else {
                    (None, name.as_str())
                };
                if let Some(until) = held.and_then(|h| h.stored_until()) {
                    gone.push((stored_name.to_owned(), until));
                }
            }
            if watched.overflow.take().is_some() {
                watched.record_version += 1;
            }
            if watched.grant_count() == 0 {
                registry.remove(&id);
            }
        }
        drop(registry);
        self.unstore(id, gone);
    }

    /// Starts writing to the store the grants whose end there lags theirs
    /// by a [`LAZY_FRACTION`]th of `watch_for` or more (re-signed or
    /// re-armed), with records that changed; one write at a time.
    fn flush(&self, registry: &HashMap<u64, Watched>, now: Instant) {
        let Some(store) = self.0.store.get() else {
            return;
        };
        if self.0.flushing.load(Ordering::Acquire) {
            return;
        }
        let now_ms = self.now_ms();
        let slack = i64::try_from((self.0.watch_for / LAZY_FRACTION).as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let mut writes = Vec::new();
        for (id, w) in registry {
            if w.ending {
                continue;
            }
            let mut write = Write {
                id: *id,
                record: w.record_due(),
                grants: Vec::new(),
                versions: Vec::new(),
            };
            let named = w
                .channels
                .iter()
                .map(|(name, held)| (name.as_str(), held))
                .chain(w.signed_in.as_ref().map(|held| (stored::SIGN_IN, held)));
            for (name, held) in named {
                let until_ms = Self::until_ms(held.until, now, now_ms);
                let lags = held
                    .stored_until()
                    .is_none_or(|stored| until_ms - stored >= slack);
                if lags || !held.is_stored() {
                    write.grants.push(StoredGrant {
                        name: name.to_owned(),
                        until_ms,
                        sockets: w.sockets_text(name, held),
                    });
                    write.versions.push(held.version);
                }
            }
            if !write.grants.is_empty() || write.record.is_some() {
                writes.push(write);
            }
        }
        if writes.is_empty() {
            return;
        }
        self.0.flushing.store(true, Ordering::Release);
        let (this, store) = (self.clone(), store.clone());
        self.0
            .tasks
            .job("writing re-armed grants to the store", async move {
                for write in writes {
                    let id = write.id;
                    if let Err(e) = this.write(&store, write).await {
                        tracing::warn!(id, error = %e, "could not write re-armed grants; tried again at the next sweep");
                        break;
                    }
                }
                this.0.flushing.store(false, Ordering::Release);
            });
    }
}

/// Spreads people's first re-read over one TTL by their id, so a crowd that
/// logged in together is not re-read together.
fn spread(id: u64, ttl: Duration) -> Duration {
    let fraction = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    ttl.mul_f64(fraction)
}

/// Takes the person signed for longest ago out of the set, to make room.
fn evict_oldest(registry: &mut HashMap<u64, Watched>) -> Option<(u64, Watched)> {
    let id = registry
        .iter()
        .filter(|(_, w)| !w.ending)
        .min_by_key(|(_, w)| w.last_signed)
        .map(|(id, _)| *id)?;
    registry.remove(&id).map(|w| (id, w))
}

#[cfg(test)]
mod tests;
