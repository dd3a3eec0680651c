//! Server-side sessions: the store chosen by `session.store`, and what a
//! session holds.
//!
//! The browser holds only a random session id in an HttpOnly cookie; the
//! identity and the GitHub access token stay in the store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{
    ClientLike, Config as RedisConfig, Pool, ReconnectPolicy,
};
use tower_sessions_sqlx_store::SqliteStore;
use tower_sessions_sqlx_store::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous,
};

use crate::config::{SessionConfig, SessionStore as StoreChoice};
use crate::github::GithubUser;
use crate::secret::Secret;

/// Session key of the logged-in [`Identity`].
pub const IDENTITY_KEY: &str = "channelgate.identity";
/// Session key of a login in progress ([`PendingLogin`]).
pub const PENDING_LOGIN_KEY: &str = "channelgate.pending_login";
/// Session key of when the session's expiry was last pushed back.
const RENEWED_KEY: &str = "channelgate.renewed";

/// Who is logged in, as kept in the session (server side only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The GitHub user.
    pub user: GithubUser,
    /// Their OAuth access token. Never sent to the browser, never logged.
    pub token: Secret<String>,
    /// When they logged in (Unix seconds), for `session.max_age`.
    #[serde(default)]
    pub logged_in_at: i64,
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

/// A login between `/auth/login` and `/auth/callback`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The OAuth `state`, compared with what GitHub sends back.
    pub state: String,
    /// The PKCE verifier for the code exchange.
    pub pkce_verifier: String,
    /// Where to go after login: a checked same-origin path.
    pub return_to: String,
    /// When the login started (Unix seconds); old attempts are refused.
    pub started_at: i64,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("return_to", &self.return_to)
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
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

/// Pushes the session's expiry back if it was last renewed long enough ago.
/// Call on authenticated requests.
pub async fn keep_alive(
    session: &Session,
    ttl: Duration,
) -> Result<(), tower_sessions::session::Error> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let renewed: Option<i64> = session.get(RENEWED_KEY).await?;
    let interval = i64::try_from((ttl / RENEW_FRACTION).as_secs()).unwrap_or(i64::MAX);
    if renewed.is_none_or(|at| now - at >= interval) {
        session.insert(RENEWED_KEY, now).await?;
    }
    Ok(())
}

/// The session store chosen by configuration.
#[derive(Debug, Clone)]
pub enum Store {
    /// In this process.
    Memory(MemoryStore),
    /// A SQLite file.
    Sqlite(SqliteStore),
    /// Redis.
    Redis(RedisStore<Pool>),
}

/// Why the session store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite file could not be opened or migrated.
    #[error("cannot open the SQLite session store {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// The cause.
        source: tower_sessions_sqlx_store::sqlx::Error,
    },
    /// Redis could not be reached.
    #[error("cannot reach the Redis session store {url}: {reason}")]
    Redis {
        /// The URL.
        url: String,
        /// The cause.
        reason: String,
    },
}

impl Store {
    /// Opens the configured store and starts its clean-up of expired
    /// sessions (Redis expires keys by itself).
    pub async fn open(choice: &StoreChoice) -> Result<Self, StoreError> {
        const SWEEP_EVERY: Duration = Duration::from_secs(60);
        match choice {
            StoreChoice::Memory => {
                let store = MemoryStore::default();
                tokio::spawn(sweep(store.clone(), SWEEP_EVERY));
                Ok(Self::Memory(store))
            }
            StoreChoice::Sqlite(path) => {
                let err = |source| StoreError::Sqlite {
                    path: path.display().to_string(),
                    source,
                };
                // WAL lets readers run beside the one writer, and NORMAL
                // syncs at checkpoints rather than at every login.
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
                let pool = SqlitePool::connect_with(options).await.map_err(err)?;
                let store = SqliteStore::new(pool);
                store.migrate().await.map_err(err)?;
                tokio::spawn(sweep(store.clone(), SWEEP_EVERY));
                Ok(Self::Sqlite(store))
            }
            StoreChoice::Redis(url) => {
                let err = |reason: String| StoreError::Redis {
                    url: url.clone(),
                    reason,
                };
                let config = RedisConfig::from_url(url).map_err(|e| err(e.to_string()))?;
                // Reconnect for ever after Redis restarts or drops idle
                // connections (without a policy fred never reconnects).
                let reconnect = ReconnectPolicy::new_exponential(0, 100, 5_000, 2);
                let pool = Pool::new(config, None, None, Some(reconnect), 4)
                    .map_err(|e| err(e.to_string()))?;
                pool.connect();
                tokio::time::timeout(Duration::from_secs(5), pool.wait_for_connect())
                    .await
                    .map_err(|_| err("no answer within 5s".into()))?
                    .map_err(|e| err(e.to_string()))?;
                Ok(Self::Redis(RedisStore::new(pool)))
            }
        }
    }

    /// The session layer for this store, with the configured cookie.
    pub fn layer(self, config: &SessionConfig, secure: bool) -> SessionManagerLayer<Self> {
        SessionManagerLayer::new(self)
            .with_name(config.cookie_name.clone())
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(secure)
            .with_path("/")
            .with_expiry(inactivity(config.ttl))
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

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Memory(s) => s.create(record).await,
            Self::Sqlite(s) => s.create(record).await,
            Self::Redis(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Memory(s) => s.save(record).await,
            Self::Sqlite(s) => s.save(record).await,
            Self::Redis(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Memory(s) => s.load(id).await,
            Self::Sqlite(s) => s.load(id).await,
            Self::Redis(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Memory(s) => s.delete(id).await,
            Self::Sqlite(s) => s.delete(id).await,
            Self::Redis(s) => s.delete(id).await,
        }
    }
}

/// An in-process store whose expired sessions are swept away. (The
/// `tower-sessions` memory store never removes them, so it grows for ever.)
#[derive(Debug, Clone, Default)]
pub struct MemoryStore(Arc<Mutex<HashMap<Id, Record>>>);

impl MemoryStore {
    /// Sessions held, expired or not.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Record>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let mut map = self.lock();
        while map.contains_key(&record.id) {
            record.id = Id::default();
        }
        map.insert(record.id, record.clone());
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.lock().insert(record.id, record.clone());
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        Ok(self.lock().get(id).filter(|r| r.expiry_date > now).cloned())
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.lock().remove(id);
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for MemoryStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        let now = OffsetDateTime::now_utc();
        self.lock().retain(|_, r| r.expiry_date > now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(store.load(&live.id).await.unwrap().is_some());
        assert!(store.load(&dead.id).await.unwrap().is_none());
        assert_eq!(store.len(), 2);
        store.delete_expired().await.unwrap();
        assert_eq!(store.len(), 1);
        store.delete(&live.id).await.unwrap();
        assert!(store.is_empty());
    }

    #[test]
    fn debug_output_of_session_data_hides_secrets() {
        let identity = Identity {
            user: GithubUser {
                id: 1,
                login: "ada".into(),
                name: None,
                avatar_url: String::new(),
            },
            token: Secret::new("gho_secret".into()),
            logged_in_at: 0,
        };
        assert!(!format!("{identity:?}").contains("gho_secret"));
        let pending = PendingLogin {
            state: "st4te".into(),
            pkce_verifier: "v3rifier".into(),
            return_to: "/".into(),
            started_at: 0,
        };
        let shown = format!("{pending:?}");
        assert!(
            !shown.contains("st4te") && !shown.contains("v3rifier"),
            "{shown}"
        );
    }
}
