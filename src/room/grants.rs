//! Live grants kept in the room, so a restart, crash or deploy
//! forgets nothing that [`crate::revocation`] must be able to take back.
//!
//! What is kept, per person (GitHub id): their record (login, and the
//! sealed token and sealed refresh data that re-read them: see
//! [`crate::crypto`], never a token in clear) and one entry per grant (a
//! channel name, or [`SIGN_IN`]) with the Unix time in milliseconds when it
//! stops being watched and the (keys of the) sockets it was signed for. The revocation
//! module decides what to write and when; this file only speaks each store.
//!
//! - **SQLite**: two tables made when the store opens ([`PEOPLE_TABLE`],
//!   [`GRANTS_TABLE`]), one row per person and one per (person, grant). A
//!   write keeps the later of two ends, so instances sharing the file merge.
//! - **Redis**: one hash per person, `channelgate:grants:{id}`, with the
//!   field [`PERSON`] for the record and one field per grant (`"{end}
//!   {sockets}"`); each write refreshes the key's expiry to
//!   `revocation.watch_for`. Instances sharing one Redis write fields, never
//!   a person's whole hash, through small Lua scripts that keep the later
//!   end of a grant and remove one only if no later end was written since.
//! - **Memory**: nothing; the grants live in the process (and the gateway
//!   says at start that a restart forgets them).
//!
//! Names never clash: a channel name holds none of `#`.

use std::collections::HashMap;
use std::time::Duration;

use fred::interfaces::{ClientLike, HashesInterface};
use futures_util::TryStreamExt;
use tower_sessions_sqlx_store::sqlx::{query as sqlx_query, query_as};

use super::{Result, Room, backend, eval, in_time};

/// The SQLite table of people with grants, made when the store is opened.
pub(super) const PEOPLE_TABLE: &str = "create table if not exists channelgate_grant_people \
    (id integer primary key not null, until integer not null, record text not null)";

/// The SQLite table of grants, made when the store is opened.
pub(super) const GRANTS_TABLE: &str = "create table if not exists channelgate_grants \
    (id integer not null, name text not null, until integer not null, sockets text not null, \
    primary key (id, name)) without rowid";

/// The name under which a sign-in (`pusher.signin()`) is kept.
pub const SIGN_IN: &str = "#sign-in";

/// The Redis field of a person's record.
pub const PERSON: &str = "#person";

/// One grant as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGrant {
    /// The channel name, or [`SIGN_IN`].
    pub name: String,
    /// When it stops being watched (Unix milliseconds).
    pub until_ms: i64,
    /// The sockets it was signed for, as the revocation module writes them
    /// (keys of their ids, comma-separated, the most recent last).
    pub sockets: String,
}

/// One person's grants as the store keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPerson {
    /// GitHub id.
    pub id: u64,
    /// Their record, as the revocation module wrote it (JSON, tokens sealed).
    pub record: String,
    /// Their grants not yet past their end.
    pub grants: Vec<StoredGrant>,
}

/// A GitHub id as SQLite's integer (ids are far below 2^63).
fn sql_id(id: u64) -> Result<i64> {
    i64::try_from(id).map_err(|_| backend(format!("GitHub id {id} does not fit SQLite")))
}

/// The keys of every person's grants, for SCAN.
const GRANTS_PATTERN: &str = "channelgate:grants:*";

fn redis_key(id: u64) -> String {
    format!("channelgate:grants:{id}")
}

/// Writes a person's record (`ARGV[2]`) and grants (pairs of
/// name and value from `ARGV[3]`), each only if no later end is stored for
/// it, then makes the key live at least `ARGV[1]` milliseconds more (never
/// less than another instance asked).
const KEEP_SCRIPT: &str = r"
redis.call('HSET', KEYS[1], '#person', ARGV[2])
for i = 3, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local old_until = old and tonumber(string.match(old, '^%-?%d+'))
  if not old_until or tonumber(string.match(ARGV[i + 1], '^%-?%d+')) >= old_until then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
";

/// Removes the grants named in pairs of name and end, each only if its
/// stored end is no later; then the person's key if only the record is left.
const FORGET_SCRIPT: &str = r"
for i = 1, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local old_until = old and tonumber(string.match(old, '^%-?%d+'))
  if old_until and old_until <= tonumber(ARGV[i + 1]) then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
if redis.call('HLEN', KEYS[1]) == 1 and redis.call('HEXISTS', KEYS[1], '#person') == 1 then
  redis.call('DEL', KEYS[1])
end
return 1
";

/// A grant's Redis value: its end and its sockets.
fn redis_value(grant: &StoredGrant) -> String {
    format!("{} {}", grant.until_ms, grant.sockets)
}

fn parse_redis_value(name: String, value: &str) -> Option<StoredGrant> {
    let (until, sockets) = value.split_once(' ')?;
    Some(StoredGrant {
        name,
        until_ms: until.parse().ok()?,
        sockets: sockets.to_owned(),
    })
}

impl Room {
    /// Whether this store keeps grants at all (SQLite and Redis do).
    pub fn keeps_grants(&self) -> bool {
        !matches!(self, Self::Memory(_))
    }

    /// Writes person `id`'s `record` and `grants`, each kept
    /// until its end (Redis: the person's key for `keep` after this write).
    /// Of two ends written for one grant the later stays, with its sockets.
    pub async fn keep_grants(
        &self,
        id: u64,
        record: &str,
        grants: &[StoredGrant],
        keep: Duration,
    ) -> Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(()),
                Self::Sqlite(pool) => {
                    let sid = sql_id(id)?;
                    let until = grants.iter().map(|g| g.until_ms).max().unwrap_or(0);
                    let mut tx = pool.begin().await.map_err(backend)?;
                    sqlx_query(
                        "insert into channelgate_grant_people (id, until, record) values (?, ?, ?) \
                         on conflict (id) do update set until = max(until, excluded.until), \
                         record = excluded.record",
                    )
                    .bind(sid)
                    .bind(until)
                    .bind(record)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                    for grant in grants {
                        sqlx_query(
                            "insert into channelgate_grants (id, name, until, sockets) values (?, ?, ?, ?) \
                             on conflict (id, name) do update set until = max(until, excluded.until), \
                             sockets = case when excluded.until >= until then excluded.sockets else sockets end",
                        )
                        .bind(sid)
                        .bind(&grant.name)
                        .bind(grant.until_ms)
                        .bind(&grant.sockets)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                    }
                    tx.commit().await.map_err(backend)
                }
                Self::Redis(s) => {
                    let ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
                    let mut args = vec![ms.to_string(), record.to_owned()];
                    for grant in grants {
                        args.push(grant.name.clone());
                        args.push(redis_value(grant));
                    }
                    eval::<i64>(&s.pool, KEEP_SCRIPT, redis_key(id), args).await.map(|_| ())
                }
            }
        })
        .await
    }

    /// Forgets person `id`'s grants named in `gone`, each only if the store
    /// holds it with an end no later than the one given (one signed again
    /// since, by another instance, stays). A person left with no grant is
    /// forgotten too.
    pub async fn forget_grants(&self, id: u64, gone: &[(String, i64)]) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(()),
                Self::Sqlite(pool) => {
                    let sid = sql_id(id)?;
                    let mut tx = pool.begin().await.map_err(backend)?;
                    for (name, until) in gone {
                        sqlx_query(
                            "delete from channelgate_grants where id = ? and name = ? and until <= ?",
                        )
                        .bind(sid)
                        .bind(name)
                        .bind(until)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                    }
                    sqlx_query(
                        "delete from channelgate_grant_people where id = ? \
                         and not exists (select 1 from channelgate_grants where id = ?)",
                    )
                    .bind(sid)
                    .bind(sid)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                    tx.commit().await.map_err(backend)
                }
                Self::Redis(s) => {
                    let args = gone
                        .iter()
                        .flat_map(|(name, until)| [name.clone(), until.to_string()])
                        .collect();
                    eval::<i64>(&s.pool, FORGET_SCRIPT, redis_key(id), args).await.map(|_| ())
                }
            }
        })
        .await
    }

    /// Every person with a grant whose end is after `now_ms`, with those
    /// grants. What has ended is dropped from the store on the way (SQLite;
    /// Redis expires it). Not bounded here: the caller keeps what its caps
    /// allow. Read without [`STORE_TIMEOUT`](super::STORE_TIMEOUT): it runs
    /// once, at start.
    pub async fn load_grants(&self, now_ms: i64) -> Result<Vec<StoredPerson>> {
        match self {
            Self::Memory(_) => Ok(Vec::new()),
            Self::Sqlite(pool) => {
                sqlx_query("delete from channelgate_grants where until <= ?")
                    .bind(now_ms)
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                sqlx_query(
                    "delete from channelgate_grant_people where \
                     not exists (select 1 from channelgate_grants g where g.id = channelgate_grant_people.id)",
                )
                .execute(pool)
                .await
                .map_err(backend)?;
                let people: Vec<(i64, String)> =
                    query_as("select id, record from channelgate_grant_people")
                        .fetch_all(pool)
                        .await
                        .map_err(backend)?;
                let rows: Vec<(i64, String, i64, String)> =
                    query_as("select id, name, until, sockets from channelgate_grants")
                        .fetch_all(pool)
                        .await
                        .map_err(backend)?;
                let mut grants: HashMap<i64, Vec<StoredGrant>> = HashMap::new();
                for (id, name, until_ms, sockets) in rows {
                    grants.entry(id).or_default().push(StoredGrant {
                        name,
                        until_ms,
                        sockets,
                    });
                }
                Ok(people
                    .into_iter()
                    .filter_map(|(id, record)| {
                        Some(StoredPerson {
                            id: u64::try_from(id).ok()?,
                            record,
                            grants: grants.remove(&id)?,
                        })
                    })
                    .collect())
            }
            Self::Redis(s) => {
                // A cluster spreads people over its masters: SCAN every one
                // of them (SCAN on one client reaches one node only).
                let client = s.pool.next();
                let keys: Vec<_> = if client.is_clustered() {
                    client
                        .scan_cluster_buffered(GRANTS_PATTERN, Some(1000), None)
                        .try_collect()
                        .await
                } else {
                    client
                        .scan_buffered(GRANTS_PATTERN, Some(1000), None)
                        .try_collect()
                        .await
                }
                .map_err(backend)?;
                let mut people = Vec::new();
                for key in keys {
                    let Some(id) = key
                        .as_str()
                        .and_then(|k| k.strip_prefix("channelgate:grants:"))
                        .and_then(|id| id.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    let mut fields: HashMap<String, String> =
                        s.pool.hgetall(&key).await.map_err(backend)?;
                    // Grants without their person's record, or one that does
                    // not read back, cannot be re-checked: given with an
                    // empty record, they are ended at start, never skipped.
                    let mut record = fields.remove(PERSON).unwrap_or_default();
                    let mut unreadable = false;
                    let grants: Vec<StoredGrant> = fields
                        .into_iter()
                        .filter_map(|(name, value)| {
                            let grant = parse_redis_value(name, &value);
                            unreadable |= grant.is_none();
                            grant
                        })
                        .filter(|g| g.until_ms > now_ms)
                        .collect();
                    if unreadable {
                        record.clear();
                    }
                    if !grants.is_empty() || unreadable {
                        people.push(StoredPerson { id, record, grants });
                    }
                }
                Ok(people)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_value_reads_back_as_written() {
        let grant = StoredGrant {
            name: "private-ops".into(),
            until_ms: 1_700_000_000_123,
            sockets: "1.2,3.4".into(),
        };
        let back = parse_redis_value(grant.name.clone(), &redis_value(&grant));
        assert_eq!(back, Some(grant));
        assert_eq!(parse_redis_value("x".into(), "garbage"), None);
    }

    #[test]
    fn the_reserved_names_are_no_channel_names() {
        for name in [SIGN_IN, PERSON] {
            assert!(crate::channel::ChannelName::parse(name).is_err(), "{name}");
        }
    }
}
