//! Server-side sessions: the store chosen by `session.store`, and what a
//! session holds.
//!
//! The browser holds only a random session id in an HttpOnly cookie; the
//! identity and the GitHub access token stay in the store, the token sealed
//! with the gateway's key (see [`crate::crypto`]). Nothing is stored before
//! a login completes: a login in progress lives in its own sealed cookie.
//!
//! A deleted session stays deleted: saving updates a session that exists
//! and never creates one, so a request still in flight when its session
//! logs out cannot write it back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::Pool;
use tower_sessions_sqlx_store::SqliteStore;
use tower_sessions_sqlx_store::sqlx::query as sqlx_query;
use tower_sessions_sqlx_store::sqlx::sqlite::SqlitePool;

use crate::clock::Clock;
use crate::config::SessionConfig;
use crate::crypto::SealedToken;
use crate::github::GithubUser;
use crate::room::Room;
use crate::tasks::Tasks;

mod held;
pub mod people;
pub mod tokens;
pub use held::{HOLD_FOR, HeldIdentities};

/// Session key of the logged-in [`Identity`].
pub const IDENTITY_KEY: &str = "channelgate.identity";
/// Session key of when the session's expiry was last pushed back.
const RENEWED_KEY: &str = "channelgate.renewed";

/// Who is logged in, as kept in the session (server side only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The GitHub user, as read at login. (The membership cache holds the
    /// latest read, which is what the rules see.)
    pub user: GithubUser,
    /// Their OAuth access token, sealed. Never sent to the browser, never logged.
    pub token: SealedToken,
    /// When they logged in (Unix seconds), for `session.max_age`.
    #[serde(default)]
    pub logged_in_at: i64,
    /// The refresh token of an expiring token (a GitHub App's), sealed.
    /// Sessions stored before tokens could expire have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<SealedToken>,
    /// When `token` expires (Unix seconds), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// When `token` is due a refresh (Unix seconds): a little before
    /// `expires_at` (see [`refresh_at`]). Sessions stored without it go by
    /// [`REFRESH_AHEAD`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_at: Option<i64>,
}

impl Identity {
    /// Stores the identity in the session. It is kept as one compact JSON
    /// string rather than a tree of JSON values: a third of the memory per
    /// session, and one allocation to copy when a request loads it.
    pub async fn save(&self, session: &Session) -> Result<(), tower_sessions::session::Error> {
        let json =
            serde_json::to_string(self).map_err(tower_sessions::session::Error::SerdeJson)?;
        session.insert(IDENTITY_KEY, json).await
    }

    /// The refresh token and expiry of an expiring token, if it is one.
    pub fn expiring(&self) -> Option<crate::revocation::Expiring> {
        Some(crate::revocation::Expiring {
            refresh: self.refresh.clone()?,
            expires_at: self.expires_at?,
            refresh_at: self.refresh_due_at()?,
        })
    }

    /// When the token is due a refresh, if it expires.
    pub fn refresh_due_at(&self) -> Option<i64> {
        self.refresh_at
            .or_else(|| Some(self.expires_at?.saturating_sub(REFRESH_AHEAD)))
    }

    /// The identity stored in the session, if any.
    pub async fn load(session: &Session) -> Result<Option<Self>, tower_sessions::session::Error> {
        match session.get::<String>(IDENTITY_KEY).await? {
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(tower_sessions::session::Error::SerdeJson),
            None => Ok(None),
        }
    }
}

/// How long before its expiry (seconds) an expiring GitHub token is
/// refreshed at most: GitHub's live 8 hours.
pub const REFRESH_AHEAD: i64 = 300;

/// When a token answered `expires_in` seconds after `now` is due a refresh:
/// [`REFRESH_AHEAD`] before its expiry, or a fifth of its life before when
/// that is less, so a short-lived token is not refreshed at every use.
pub fn refresh_at(now: i64, expires_in: Option<u64>) -> Option<i64> {
    let life = i64::try_from(expires_in?).unwrap_or(i64::MAX);
    Some(
        now.saturating_add(life)
            .saturating_sub(REFRESH_AHEAD.min(life / 5)),
    )
}

/// When a token answered `expires_in` seconds after `now` (Unix seconds)
/// expires, if it does.
pub fn expiry(now: i64, expires_in: Option<u64>) -> Option<i64> {
    expires_in.map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX)))
}

/// With inactivity expiry, a session must be written back for its expiry to
/// move. Writing on every request would put a store write on the path of
/// every `/pusher/auth`; instead the expiry is pushed back when a request
/// finds it older than this fraction of the TTL (so a session lives between
/// 95% and 100% of `ttl` after its last use).
const RENEW_FRACTION: u32 = 20;

/// Expiry after `idle` without use.
pub fn inactivity(idle: Duration) -> Expiry {
    Expiry::OnInactivity(time::Duration::seconds(
        i64::try_from(idle.as_secs()).unwrap_or(i64::MAX),
    ))
}

/// How often a cookie session's expiry is pushed back under `ttl`.
pub fn renew_every(ttl: Duration) -> Duration {
    ttl / RENEW_FRACTION
}

/// Whether a session last renewed at `renewed` (Unix seconds) is due to
/// have its expiry pushed back at `now`, renewed `every` so often.
fn renewal_due(renewed: Option<i64>, now: i64, every: Duration) -> bool {
    let interval = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
    renewed.is_none_or(|at| now - at >= interval)
}

/// Pushes the session's expiry back if it was last renewed long enough
/// before `now` (Unix seconds). Call on authenticated requests. Gives when
/// it was last renewed.
pub async fn keep_alive(
    session: &Session,
    ttl: Duration,
    now: i64,
) -> Result<i64, tower_sessions::session::Error> {
    let renewed: Option<i64> = session.get(RENEWED_KEY).await?;
    match renewed {
        Some(at) if !renewal_due(renewed, now, renew_every(ttl)) => Ok(at),
        _ => {
            session.insert(RENEWED_KEY, now).await?;
            Ok(now)
        }
    }
}

/// The session store chosen by configuration.
#[derive(Debug, Clone)]
pub enum Store {
    /// In this process.
    Memory(MemoryStore),
    /// A SQLite file.
    Sqlite(SqliteSessions),
    /// Redis.
    Redis(RedisSessions),
}

/// Why the session store could not be opened.
pub use crate::room::OpenError as StoreError;

impl Store {
    /// Opens the configured store and starts its clean-up of expired
    /// sessions (Redis expires keys by itself; its connections get a
    /// heartbeat instead, so none waits on a master that went away).
    /// The memory store reads `clock`, so a test can let a session expire
    /// without waiting; SQLite and Redis expire sessions on their own time.
    pub async fn open(room: &Room, clock: Clock, tasks: &Tasks) -> Result<Self, StoreError> {
        const SWEEP_EVERY: Duration = Duration::from_secs(60);
        match room {
            Room::Memory(_) => {
                let store = MemoryStore::on(clock);
                tasks.service("expired sessions", sweep(store.clone(), SWEEP_EVERY));
                Ok(Self::Memory(store))
            }
            Room::Sqlite(pool) => {
                // The room made the sessions' table with its own.
                let store = SqliteStore::new(pool.clone());
                tasks.service("expired sessions", sweep(store.clone(), SWEEP_EVERY));
                Ok(Self::Sqlite(SqliteSessions {
                    store,
                    pool: pool.clone(),
                    room: room.clone(),
                }))
            }
            Room::Redis(r) => {
                let pool = r.pool().clone();
                tasks.service(
                    "store heartbeat",
                    crate::room::connect::keep_alive(pool.clone()),
                );
                Ok(Self::Redis(RedisSessions {
                    store: RedisStore::new(pool),
                    room: room.clone(),
                }))
            }
        }
    }

    /// The session layer for this store, with the configured cookie
    /// (`Secure` and `__Host-` prefixed over https).
    pub fn layer(self, config: &SessionConfig, secure: bool) -> SessionManagerLayer<Self> {
        SessionManagerLayer::new(self)
            .with_name(config.cookie_name(secure))
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(secure)
            .with_path("/")
            .with_expiry(inactivity(config.ttl))
    }
}

/// The Redis store, and the room on its connections.
#[derive(Debug, Clone)]
pub struct RedisSessions {
    store: RedisStore<Pool>,
    room: Room,
}

impl Store {
    /// Whether the store answers within `within`: always for memory, a
    /// query for SQLite, `PING` for Redis. The error names what failed.
    pub async fn ready(&self, within: Duration) -> Result<(), String> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Sqlite(s) => s.room.ready(within).await,
            Self::Redis(s) => s.room.ready(within).await,
        }
    }

    /// Locks `key` across the instances sharing this store (see
    /// [`Room::lock`]) for a read-modify-write of one record; nothing to
    /// lock beyond the process for the memory store.
    pub async fn fleet_lock(&self, key: &str) -> session_store::Result<crate::room::Held> {
        const HOLD: Duration = Duration::from_secs(5);
        let room = match self {
            Self::Memory(_) => return Ok(crate::room::Held::none()),
            Self::Sqlite(s) => &s.room,
            Self::Redis(s) => &s.room,
        };
        room.lock(key, HOLD, STORE_TIMEOUT * 2)
            .await
            .map_err(|e| session_store::Error::Backend(e.to_string()))
    }

    /// `memory`, `sqlite` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Sqlite(_) => "sqlite",
            Self::Redis(_) => "redis",
        }
    }
}

/// The SQLite store, with saving narrowed to updates (see [`Store`]).
#[derive(Debug, Clone)]
pub struct SqliteSessions {
    store: SqliteStore,
    pool: SqlitePool,
    room: Room,
}

impl SqliteSessions {
    /// Updates an existing session; one deleted meanwhile stays deleted.
    /// (The crate's own `save` upserts, which writes a logged-out session back.)
    async fn update(&self, record: &Record) -> session_store::Result<()> {
        let data =
            rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        sqlx_query("update tower_sessions set data = ?, expiry_date = ? where id = ?")
            .bind(data)
            .bind(record.expiry_date)
            .bind(record.id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| session_store::Error::Backend(e.to_string()))?;
        Ok(())
    }
}

async fn sweep<S: ExpiredDeletion>(store: S, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
    }
}

pub use crate::room::STORE_TIMEOUT;

/// `op` within [`STORE_TIMEOUT`], its lateness as a backend error.
async fn in_time<T>(
    kind: &str,
    op: impl Future<Output = session_store::Result<T>>,
) -> session_store::Result<T> {
    tokio::time::timeout(STORE_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| {
            Err(session_store::Error::Backend(format!(
                "the {kind} session store did not answer within {}s",
                STORE_TIMEOUT.as_secs()
            )))
        })
}

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(s) => s.create(record).await,
                Self::Sqlite(s) => s.store.create(record).await,
                Self::Redis(s) => s.store.create(record).await,
            }
        })
        .await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(s) => s.save(record).await,
                Self::Sqlite(s) => s.update(record).await,
                // SET ... XX: only a key that exists is written.
                Self::Redis(s) => s.store.save(record).await,
            }
        })
        .await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(s) => s.load(id).await,
                Self::Sqlite(s) => s.store.load(id).await,
                Self::Redis(s) => s.store.load(id).await,
            }
        })
        .await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(s) => s.delete(id).await,
                Self::Sqlite(s) => s.store.delete(id).await,
                Self::Redis(s) => s.store.delete(id).await,
            }
        })
        .await
    }
}

/// An in-process store whose expired sessions are swept away. (The
/// `tower-sessions` memory store never removes them, so it grows for ever.)
///
/// A session's data is kept encoded (MessagePack, as the SQLite store
/// keeps it) in one allocation, rather than as the map of JSON values a
/// [`Record`] holds: a third of the memory of an idle session. Decoding it
/// costs little because a request that needs an identity finds it held
/// (see [`HeldIdentities`]) most of the time.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    sessions: Arc<Mutex<HashMap<Id, Stored>>>,
    /// What "now" is when expiry is checked.
    clock: Clock,
}

/// A session as the memory store keeps it.
#[derive(Debug)]
struct Stored {
    expiry_date: time::OffsetDateTime,
    data: Box<[u8]>,
}

impl Stored {
    fn of(record: &Record) -> session_store::Result<Self> {
        let data = rmp_serde::to_vec(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        Ok(Self {
            expiry_date: record.expiry_date,
            data: data.into_boxed_slice(),
        })
    }

    fn record(&self, id: Id) -> session_store::Result<Record> {
        Ok(Record {
            id,
            data: rmp_serde::from_slice(&self.data)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: self.expiry_date,
        })
    }
}

impl MemoryStore {
    /// Sessions held, expired or not.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty store that reads `clock`.
    pub fn on(clock: Clock) -> Self {
        Self {
            sessions: Arc::default(),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Stored>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let stored = Stored::of(record)?;
        let mut map = self.lock();
        while map.contains_key(&record.id) {
            record.id = Id::default();
        }
        map.insert(record.id, stored);
        Ok(())
    }

    /// Updates a live session; a deleted or expired one is not written back.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let stored = Stored::of(record)?;
        let now = self.clock.utc_now();
        if let Some(held) = self.lock().get_mut(&record.id)
            && held.expiry_date > now
        {
            *held = stored;
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = self.clock.utc_now();
        let map = self.lock();
        match map.get(id).filter(|s| s.expiry_date > now) {
            Some(stored) => stored.record(*id).map(Some),
            None => Ok(None),
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.lock().remove(id);
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for MemoryStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        let now = self.clock.utc_now();
        self.lock().retain(|_, s| s.expiry_date > now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_due_a_refresh_five_minutes_ahead_or_a_fifth_of_its_life_when_short() {
        assert_eq!(refresh_at(1000, Some(28_800)), Some(1000 + 28_800 - 300));
        assert_eq!(refresh_at(1000, Some(60)), Some(1000 + 60 - 12));
        assert_eq!(refresh_at(1000, Some(3)), Some(1003), "at its expiry");
        assert_eq!(refresh_at(1000, None), None, "a token that never expires");
    }
    use time::OffsetDateTime;

    fn record(expires_in: time::Duration) -> Record {
        Record {
            id: Id::default(),
            data: HashMap::new(),
            expiry_date: OffsetDateTime::now_utc() + expires_in,
        }
    }

    #[tokio::test]
    async fn memory_store_hides_and_sweeps_expired_sessions() {
        let store = MemoryStore::default();
        let mut live = record(time::Duration::hours(1));
        let mut dead = record(time::Duration::seconds(-1));
        store.create(&mut live).await.unwrap();
        store.create(&mut dead).await.unwrap();
        live.data.insert("who".into(), serde_json::json!("ada"));
        live.data
            .insert("renewed".into(), serde_json::json!(1_700_000_000));
        store.save(&live).await.unwrap();
        let loaded = store.load(&live.id).await.unwrap().expect("live");
        assert_eq!(loaded.data, live.data, "the data comes back as it went in");
        assert_eq!(loaded.expiry_date, live.expiry_date);
        assert!(store.load(&dead.id).await.unwrap().is_none());
        assert_eq!(store.len(), 2);
        store.delete_expired().await.unwrap();
        assert_eq!(store.len(), 1);
        store.delete(&live.id).await.unwrap();
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn a_deleted_session_is_never_saved_back() {
        let store = MemoryStore::default();
        let mut live = record(time::Duration::hours(1));
        store.create(&mut live).await.unwrap();
        store.delete(&live.id).await.unwrap();
        // A request that loaded the session before the logout saves it.
        store.save(&live).await.unwrap();
        assert!(store.load(&live.id).await.unwrap().is_none());
        assert!(store.is_empty());
    }

    #[test]
    fn an_identity_stored_before_tokens_could_expire_still_decodes() {
        let old = r#"{"user":{"id":1,"login":"ada","name":null,"avatar_url":""},"token":"sealed","logged_in_at":5}"#;
        let identity: Identity = serde_json::from_str(old).unwrap();
        assert_eq!(identity.user.login, "ada");
        assert_eq!((&identity.refresh, identity.expires_at), (&None, None));
        // And one without an expiring token is stored as before.
        let again = serde_json::to_string(&identity).unwrap();
        assert_eq!(again, old);
    }

    #[test]
    fn debug_output_of_session_data_hides_secrets() {
        let keys = crate::crypto::Keys::new(None);
        let identity = Identity {
            user: GithubUser {
                id: 1,
                login: "ada".into(),
                name: None,
                avatar_url: String::new(),
            },
            token: keys.seal_token(&crate::secret::Secret::new("gho_secret".into())),
            logged_in_at: 0,
            refresh: None,
            expires_at: None,
            refresh_at: None,
        };
        assert!(!format!("{identity:?}").contains("gho_secret"));
        let stored = serde_json::to_string(&identity).unwrap();
        assert!(!stored.contains("gho_secret"), "{stored}");
    }
}
