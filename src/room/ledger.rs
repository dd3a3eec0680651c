//! The refresh ledger: how instances sharing a session store refresh a
//! GitHub token once between them.
//!
//! A refresh token works once, so before spending one an instance claims
//! its name in the store (Redis `SET NX PX`; SQLite a row inserted in one
//! statement, which SQLite's single writer serializes) under a random
//! holder's name, then records the new pair (sealed) under the same name,
//! or releases its claim; either only while the claim is still its own. Others that need the same refresh
//! find the claim, wait, and take the recorded pair instead of asking GitHub.
//! The in-process memory store needs no ledger: one process, one flight.
//!
//! Times are the wall clock's (Unix milliseconds): instances share it.

use std::time::Duration;

use fred::interfaces::KeysInterface;

use tower_sessions_sqlx_store::sqlx::query as sqlx_query;

use super::{Result, Room, backend, eval, in_time, ms, now_ms, random_name, set_if_absent};

/// The SQLite table of claims and results, made when the store is opened.
/// A claim is a row whose `result` is its holder (`claim:` and a random
/// name; a row from before holders were named has none), a result any
/// other text.
pub(super) const TABLE: &str = "create table if not exists channelgate_refreshes \
    (name text primary key not null, until integer not null, result text)";

/// What a claim's value starts with; results (JSON, or the refusal's word)
/// never do.
const CLAIM: &str = "claim:";

/// Records ARGV[1] for ARGV[3] ms if the key is still the claim ARGV[2] or
/// has lapsed: a late holder never replaces another's claim or result.
const FINISH_SCRIPT: &str = "\
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1";

/// Deletes the key if it is still the claim ARGV[1].
const RELEASE_SCRIPT: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

fn redis_key(name: &str) -> String {
    format!("channelgate:refresh:{name}")
}

/// A claim of one refresh, held by this caller: only it finishes or
/// releases it.
#[derive(Debug)]
pub struct RefreshClaim {
    name: String,
    value: String,
}

impl Room {
    /// Claims the refresh named `name` for `hold`: the claim when this
    /// caller may spend the refresh token (nobody holds a claim, and no
    /// result is recorded). Always granted by the memory store.
    pub async fn claim_refresh(&self, name: &str, hold: Duration) -> Result<Option<RefreshClaim>> {
        let value = format!("{CLAIM}{}", random_name());
        let claimed = in_time(self.kind(), async {
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
                         values (?, ?, ?)",
                    )
                    .bind(name)
                    .bind(now.saturating_add(ms(hold)))
                    .bind(&value)
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                    Ok(done.rows_affected() == 1)
                }
                Self::Redis(s) => set_if_absent(&s.pool, &redis_key(name), &value, hold).await,
            }
        })
        .await?;
        Ok(claimed.then(|| RefreshClaim {
            name: name.to_owned(),
            value,
        }))
    }

    /// The result recorded for the refresh named `name`, if any.
    pub async fn refresh_result(&self, name: &str) -> Result<Option<String>> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(None),
                Self::Sqlite(pool) => {
                    let row: Option<(Option<String>,)> = tower_sessions_sqlx_store::sqlx::query_as(
                        "select result from channelgate_refreshes where name = ? and until >= ?",
                    )
                    .bind(name)
                    .bind(now_ms())
                    .fetch_optional(pool)
                    .await
                    .map_err(backend)?;
                    Ok(row.and_then(|(r,)| r).filter(|r| !r.starts_with(CLAIM)))
                }
                Self::Redis(s) => {
                    let value: Option<String> =
                        s.pool.get(redis_key(name)).await.map_err(backend)?;
                    Ok(value.filter(|v| !v.is_empty() && !v.starts_with(CLAIM)))
                }
            }
        })
        .await
    }

    /// Records `result` for the refresh `claim` names, kept for `keep`,
    /// unless the claim lapsed and another caller claimed or finished it.
    pub async fn finish_refresh(
        &self,
        claim: RefreshClaim,
        result: &str,
        keep: Duration,
    ) -> Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(()),
                Self::Sqlite(pool) => {
                    sqlx_query(
                        "insert into channelgate_refreshes (name, until, result) values (?, ?, ?) \
                         on conflict (name) do update set until = excluded.until, \
                         result = excluded.result where result = ?",
                    )
                    .bind(&claim.name)
                    .bind(now_ms().saturating_add(ms(keep)))
                    .bind(result)
                    .bind(&claim.value)
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                    Ok(())
                }
                Self::Redis(s) => {
                    let args = vec![result.to_owned(), claim.value, ms(keep).to_string()];
                    let _: i64 = eval(&s.pool, FINISH_SCRIPT, redis_key(&claim.name), args).await?;
                    Ok(())
                }
            }
        })
        .await
    }

    /// Gives up `claim` (GitHub could not be asked): another may try. A
    /// claim that lapsed and was taken by another stays theirs.
    pub async fn release_refresh(&self, claim: RefreshClaim) -> Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(()),
                Self::Sqlite(pool) => {
                    sqlx_query("delete from channelgate_refreshes where name = ? and result = ?")
                        .bind(&claim.name)
                        .bind(&claim.value)
                        .execute(pool)
                        .await
                        .map_err(backend)?;
                    Ok(())
                }
                Self::Redis(s) => {
                    let _: i64 = eval(
                        &s.pool,
                        RELEASE_SCRIPT,
                        redis_key(&claim.name),
                        vec![claim.value],
                    )
                    .await?;
                    Ok(())
                }
            }
        })
        .await
    }
}
