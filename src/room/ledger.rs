//! The refresh ledger: how instances sharing a session store refresh a
//! GitHub token once between them.
//!
//! A refresh token works once, so before spending one an instance claims
//! its name in the store (Redis `SET NX PX`; SQLite a row inserted in one
//! statement, which SQLite's single writer serializes), then records the
//! new pair (sealed) under the same name. Others that need the same refresh
//! find the claim, wait, and take the recorded pair instead of asking GitHub.
//! The in-process memory store needs no ledger: one process, one flight.
//!
//! Times are the wall clock's (Unix milliseconds): instances share it.

use std::time::Duration;

use fred::interfaces::KeysInterface;
use fred::types::{Expiration, SetOptions};
use tower_sessions_sqlx_store::sqlx::query as sqlx_query;

use super::{Result, Room, backend, eval, in_time, ms, now_ms};

/// The SQLite table of claims and results, made when the store is opened.
pub(super) const TABLE: &str = "create table if not exists channelgate_refreshes \
    (name text primary key not null, until integer not null, result text)";

/// Deletes a claim that holds no result yet.
const UNFINISHED_SCRIPT: &str = "\
if redis.call('GET', KEYS[1]) == '' then return redis.call('DEL', KEYS[1]) end
return 0";

fn redis_key(name: &str) -> String {
    format!("channelgate:refresh:{name}")
}

impl Room {
    /// Claims the refresh named `name` for `hold`: true when this caller
    /// may spend the refresh token (nobody holds a claim, and no result is
    /// recorded). Always true for the memory store.
    pub async fn claim_refresh(&self, name: &str, hold: Duration) -> Result<bool> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(true),
                Self::Sqlite(pool) => {
                    let now = now_ms();
                    sqlx_query("delete from channelgate_refreshes where until < ?")
                        .bind(now)
                        .execute(pool)
                        .await
                        .map_err(backend)?;
                    let done = sqlx_query(
                        "insert or ignore into channelgate_refreshes (name, until, result) \
                         values (?, ?, null)",
                    )
                    .bind(name)
                    .bind(now.saturating_add(ms(hold)))
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                    Ok(done.rows_affected() == 1)
                }
                Self::Redis(s) => {
                    let set: Option<String> = s
                        .pool
                        .set(
                            redis_key(name),
                            "",
                            Some(Expiration::PX(ms(hold))),
                            Some(SetOptions::NX),
                            false,
                        )
                        .await
                        .map_err(backend)?;
                    Ok(set.is_some())
                }
            }
        })
        .await
    }

    /// The result recorded for the refresh named `name`, if any.
    pub async fn refresh_result(&self, name: &str) -> Result<Option<String>> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(None),
                Self::Sqlite(pool) => {
                    let row: Option<(String,)> = tower_sessions_sqlx_store::sqlx::query_as(
                        "select result from channelgate_refreshes \
                         where name = ? and result is not null and until >= ?",
                    )
                    .bind(name)
                    .bind(now_ms())
                    .fetch_optional(pool)
                    .await
                    .map_err(backend)?;
                    Ok(row.map(|(r,)| r))
                }
                Self::Redis(s) => {
                    let value: Option<String> =
                        s.pool.get(redis_key(name)).await.map_err(backend)?;
                    Ok(value.filter(|v| !v.is_empty()))
                }
            }
        })
        .await
    }

    /// Records `result` for the refresh named `name` (claimed by this
    /// caller), kept for `keep`.
    pub async fn finish_refresh(&self, name: &str, result: &str, keep: Duration) -> Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(()),
                Self::Sqlite(pool) => {
                    sqlx_query(
                        "insert into channelgate_refreshes (name, until, result) values (?, ?, ?) \
                         on conflict (name) do update set until = excluded.until, \
                         result = excluded.result",
                    )
                    .bind(name)
                    .bind(now_ms().saturating_add(ms(keep)))
                    .bind(result)
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                    Ok(())
                }
                Self::Redis(s) => {
                    let () = s
                        .pool
                        .set(
                            redis_key(name),
                            result,
                            Some(Expiration::PX(ms(keep))),
                            None,
                            false,
                        )
                        .await
                        .map_err(backend)?;
                    Ok(())
                }
            }
        })
        .await
    }

    /// Gives up this caller's claim of the refresh named `name` (GitHub
    /// could not be asked): another may try.
    pub async fn release_refresh(&self, name: &str) -> Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(()),
                Self::Sqlite(pool) => {
                    sqlx_query(
                        "delete from channelgate_refreshes where name = ? and result is null",
                    )
                    .bind(name)
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                    Ok(())
                }
                // Only an unfinished claim: a result recorded meanwhile
                // (the claim had lapsed and another finished) stays.
                Self::Redis(s) => {
                    let _: i64 =
                        eval(&s.pool, UNFINISHED_SCRIPT, redis_key(name), Vec::new()).await?;
                    Ok(())
                }
            }
        })
        .await
    }
}
