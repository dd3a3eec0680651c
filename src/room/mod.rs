//! One room for what instances sharing a store share, beside the sessions:
//! live grants, the refresh ledger, claims (single-flight locks), spent
//! markers, small values with an expiry (membership answers), and pub/sub.
//!
//! The rest of the gateway calls the operations here and never learns which
//! store answers. Each operation has three implementations:
//!
//! - **Memory**: this process only. Claims and markers live in a map; values,
//!   grants and the ledger are not kept (the process's own caches are them).
//! - **SQLite**: one file, per host. Tables made when the room opens; the
//!   file's single writer serialises claims.
//! - **Redis** (single node; Sentinel and Cluster through the client's own
//!   support): one key per claim, marker, value and person's grants, each
//!   operation on one key (so one hash slot on a cluster), and pub/sub
//!   between instances.
//!
//! Every operation is bounded by [`STORE_TIMEOUT`]: past it the caller
//! gets an error (and the request a quick 503), never a hang.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{ClientLike, KeysInterface, Pool};
use fred::types::{Expiration, SetOptions};
use tower_sessions_sqlx_store::sqlx::query as sqlx_query;
use tower_sessions_sqlx_store::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous,
};

use crate::config::{SessionStore as StoreChoice, redact_url};
use crate::secret::Secret;

pub mod connect;
pub mod grants;
mod ledger;
pub use ledger::RefreshClaim;
mod limits;
mod memory;
pub mod pubsub;
mod stamped;
pub use stamped::Stamped;

/// How long one store operation may take. Past it the request gets a quick
/// 503 instead of waiting for a store that went away (Redis restarting or
/// failing over, a locked SQLite file): nothing piles up behind it.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the fleet's shared state lives: the store `session.store` names.
#[derive(Debug, Clone)]
pub enum Room {
    /// This process.
    Memory(Arc<memory::Local>),
    /// A SQLite file.
    Sqlite(SqlitePool),
    /// Redis.
    Redis(Redis),
}

/// A Redis room: the pool it shares with the sessions, and where it is (for
/// pub/sub, which needs connections of its own).
#[derive(Debug, Clone)]
pub struct Redis {
    pool: Pool,
    url: Secret<String>,
}

impl Redis {
    /// The pool the sessions share.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The SQLite file could not be opened or prepared.
    #[error("cannot open the SQLite session store {path}: {reason}")]
    Sqlite {
        /// The file.
        path: String,
        /// The cause.
        reason: String,
    },
    /// Redis could not be reached.
    #[error("cannot reach the Redis session store {url}: {reason}")]
    Redis {
        /// The URL, its password redacted.
        url: String,
        /// The cause.
        reason: String,
    },
}

/// Why an operation failed: the store's words, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RoomError(String);

/// What the room's operations give.
pub type Result<T> = std::result::Result<T, RoomError>;

fn backend(e: impl std::fmt::Display) -> RoomError {
    RoomError(e.to_string())
}

/// A claim held by this caller: [`Room::release`] gives it up, and only
/// this holder's claim is given up (one that lapsed and was claimed by
/// another stays theirs).
#[derive(Debug)]
pub struct Claim {
    key: String,
    holder: String,
}

/// A claim waited for with [`Room::lock`], given up when dropped (in the
/// background: a release that fails lets the claim lapse by itself).
#[derive(Debug)]
pub struct Held {
    room: Option<Room>,
    claim: Option<Claim>,
}

impl Held {
    /// Nothing held (one process needs no lock beyond its own).
    pub fn none() -> Self {
        Self {
            room: None,
            claim: None,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let (Some(room), Some(claim)) = (self.room.take(), self.claim.take()) {
            tokio::spawn(async move {
                if let Err(e) = room.release(claim).await {
                    tracing::debug!(error = %e, "a lock lapses by itself");
                }
            });
        }
    }
}

/// The SQLite tables of the room, made when it opens.
const TABLES: [&str; 6] = [
    stamped::TABLE,
    ledger::TABLE,
    grants::PEOPLE_TABLE,
    grants::GRANTS_TABLE,
    "create table if not exists channelgate_claims \
     (name text primary key not null, until integer not null, holder text not null)",
    "create table if not exists channelgate_values \
     (name text primary key not null, until integer not null, value text not null)",
];

/// Deletes a Redis key only if it still holds the caller's value.
const RELEASE_SCRIPT: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

impl Room {
    /// Opens the store `choice` names.
    pub async fn open(choice: &StoreChoice) -> std::result::Result<Self, OpenError> {
        match choice {
            StoreChoice::Memory => Ok(Self::Memory(Arc::default())),
            StoreChoice::Sqlite(path) => {
                let err = |reason: String| OpenError::Sqlite {
                    path: path.display().to_string(),
                    reason,
                };
                owner_only(path).map_err(|e| err(e.to_string()))?;
                // WAL lets readers run beside the one writer, and NORMAL
                // syncs at checkpoints rather than at every login. SQLite
                // gives its -wal and -shm files the database file's mode.
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
                let pool = SqlitePool::connect_with(options)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                tower_sessions_sqlx_store::SqliteStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|e| err(e.to_string()))?;
                for table in TABLES {
                    sqlx_query(table)
                        .execute(&pool)
                        .await
                        .map_err(|e| err(e.to_string()))?;
                }
                Ok(Self::Sqlite(pool))
            }
            StoreChoice::Redis(url) => {
                let pool = connect::pool(url)
                    .await
                    .map_err(|reason| OpenError::Redis {
                        url: redact_url(url.expose()),
                        reason,
                    })?;
                Ok(Self::Redis(Redis {
                    pool,
                    url: url.clone(),
                }))
            }
        }
    }

    /// `memory`, `sqlite` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Sqlite(_) => "sqlite",
            Self::Redis(_) => "redis",
        }
    }

    /// Whether instances on other hosts share this room (Redis): only then
    /// do limits, claims and values reach across a fleet.
    pub fn is_fleet(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// Claims `key` for `hold` unless someone holds it: the claim, or
    /// `None` when another holds it. A lock for single-flight work across
    /// the fleet (the holder releases it when done; a holder that dies
    /// loses it after `hold`), and, never released, a marker that something
    /// was spent once.
    pub async fn claim(&self, key: &str, hold: Duration) -> Result<Option<Claim>> {
        let holder = random_name();
        let claimed = in_time(self.kind(), async {
            match self {
                Self::Memory(local) => Ok(local.claim(key, &holder, hold)),
                Self::Sqlite(pool) => {
                    let now = now_ms();
                    sqlx_query("delete from channelgate_claims where name = ? and until < ?")
                        .bind(key)
                        .bind(now)
                        .execute(pool)
                        .await
                        .map_err(backend)?;
                    let done = sqlx_query(
                        "insert or ignore into channelgate_claims (name, until, holder) values (?, ?, ?)",
                    )
                    .bind(key)
                    .bind(now.saturating_add(ms(hold)))
                    .bind(&holder)
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                    Ok(done.rows_affected() == 1)
                }
                Self::Redis(r) => set_if_absent(&r.pool, key, &holder, hold).await,
            }
        })
        .await?;
        Ok(claimed.then(|| Claim {
            key: key.to_owned(),
            holder,
        }))
    }

    /// Waits (up to `wait`) until this caller holds `key`, for `hold` at
    /// most: a lock across the fleet for a read-modify-write of one record.
    /// The memory room needs none (one process locks in memory) and gives
    /// an empty [`Held`] at once.
    pub async fn lock(&self, key: &str, hold: Duration, wait: Duration) -> Result<Held> {
        if !self.keeps_values() {
            return Ok(Held::none());
        }
        let give_up = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(claim) = self.claim(key, hold).await? {
                return Ok(Held {
                    room: Some(self.clone()),
                    claim: Some(claim),
                });
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(RoomError(format!(
                    "another instance held a lock for more than {}s",
                    wait.as_secs_f32()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Marks `key` spent for `keep`: true for the first caller in the
    /// fleet, false for every later one.
    pub async fn spend(&self, key: &str, keep: Duration) -> Result<bool> {
        Ok(self.claim(key, keep).await?.is_some())
    }

    /// Gives up `claim`, if it is still this holder's.
    pub async fn release(&self, claim: Claim) -> Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(local) => {
                    local.release(&claim.key, &claim.holder);
                    Ok(())
                }
                Self::Sqlite(pool) => {
                    sqlx_query("delete from channelgate_claims where name = ? and holder = ?")
                        .bind(&claim.key)
                        .bind(&claim.holder)
                        .execute(pool)
                        .await
                        .map(|_| ())
                        .map_err(backend)
                }
                Self::Redis(r) => {
                    let _: i64 =
                        eval(&r.pool, RELEASE_SCRIPT, claim.key, vec![claim.holder]).await?;
                    Ok(())
                }
            }
        })
        .await
    }

    /// The value kept under `key`, if any and not expired. The memory room
    /// keeps none (the process's caches are its values).
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(None),
                Self::Sqlite(pool) => {
                    let row: Option<(String,)> = tower_sessions_sqlx_store::sqlx::query_as(
                        "select value from channelgate_values where name = ? and until >= ?",
                    )
                    .bind(key)
                    .bind(now_ms())
                    .fetch_optional(pool)
                    .await
                    .map_err(backend)?;
                    Ok(row.map(|(v,)| v))
                }
                Self::Redis(r) => r.pool.get(key).await.map_err(backend),
            }
        })
        .await
    }

    /// Keeps `value` under `key` for `keep`, replacing what was there.
    pub async fn put(&self, key: &str, value: &str, keep: Duration) -> Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(()),
                Self::Sqlite(pool) => {
                    let now = now_ms();
                    sqlx_query("delete from channelgate_values where until < ?")
                        .bind(now)
                        .execute(pool)
                        .await
                        .map_err(backend)?;
                    sqlx_query(
                        "insert into channelgate_values (name, until, value) values (?, ?, ?) \
                         on conflict (name) do update set until = excluded.until, value = excluded.value",
                    )
                    .bind(key)
                    .bind(now.saturating_add(ms(keep)))
                    .bind(value)
                    .execute(pool)
                    .await
                    .map(|_| ())
                    .map_err(backend)
                }
                Self::Redis(r) => r
                    .pool
                    .set(key, value, Some(Expiration::PX(ms(keep))), None, false)
                    .await
                    .map_err(backend),
            }
        })
        .await
    }

    /// Whether the store answers within `within`: always for memory, a
    /// query for SQLite, `PING` for Redis. The error names what failed.
    pub async fn ready(&self, within: Duration) -> std::result::Result<(), String> {
        let check = async {
            match self {
                Self::Memory(_) => Ok(()),
                Self::Sqlite(pool) => sqlx_query("select 1")
                    .execute(pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the SQLite session store: {e}")),
                Self::Redis(r) => r
                    .pool
                    .ping::<String>(None)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the Redis session store: {}", connect::reason(&e))),
            }
        };
        match tokio::time::timeout(within, check).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the {} session store did not answer within {}s",
                self.kind(),
                within.as_secs_f32()
            )),
        }
    }
}

/// `op` within [`STORE_TIMEOUT`], its lateness as an error.
async fn in_time<T>(kind: &str, op: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(STORE_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| {
            Err(RoomError(format!(
                "the {kind} session store did not answer within {}s",
                STORE_TIMEOUT.as_secs()
            )))
        })
}

/// Sets `key` to `value` for `hold` unless it exists (`SET NX PX`): true
/// when set.
async fn set_if_absent(pool: &Pool, key: &str, value: &str, hold: Duration) -> Result<bool> {
    let set: Option<String> = pool
        .set(
            key,
            value,
            Some(Expiration::PX(ms(hold))),
            Some(SetOptions::NX),
            false,
        )
        .await
        .map_err(backend)?;
    Ok(set.is_some())
}

/// Runs `script` on the one key `key` with `args` (`EVAL`, sent as a plain
/// command, routed by its key on a cluster).
async fn eval<T: fred::types::FromValue>(
    pool: &Pool,
    script: &'static str,
    key: String,
    args: Vec<String>,
) -> Result<T> {
    use fred::types::{ClusterHash, CustomCommand};
    let mut command = Vec::with_capacity(args.len() + 3);
    command.extend([script.to_owned(), "1".to_owned(), key]);
    command.extend(args);
    pool.custom(
        CustomCommand::new_static("EVAL", ClusterHash::Offset(2), false),
        command,
    )
    .await
    .map_err(backend)
}

/// Wall-clock Unix milliseconds: instances share the wall clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// A random name: a claim's holder, or an instance on a pub/sub topic
/// (each ignores its own messages by it).
pub fn random_name() -> String {
    use chacha20poly1305::aead::OsRng;
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut bytes = [0u8; 12];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Creates the SQLite file readable and writable by its owner only, or
/// narrows an existing one to that: it holds sessions.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
