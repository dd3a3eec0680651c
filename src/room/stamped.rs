//! Stamped values: a value with the wall-clock time (Unix milliseconds) of
//! what it describes, and a time before which anything is stale. Writers
//! that race keep the later stamp, so an answer read earlier never replaces
//! one read later; [`Room::stale_before`] declares everything read before a
//! moment stale (a webhook said something changed then), and a late write
//! of an answer read before that moment stays stale.
//!
//! Kept in Redis as `"{stamp} {stale_before} {value}"` under one key,
//! changed by Lua scripts; in SQLite as a row of `channelgate_stamped`; not
//! at all in memory (one process: its caches are the values).

use std::time::Duration;

use tower_sessions_sqlx_store::sqlx::{query as sqlx_query, query_as};

use super::{Result, Room, backend, eval, in_time, ms};

/// The SQLite table of stamped values, made when the room opens.
pub(super) const TABLE: &str = "create table if not exists channelgate_stamped \
    (name text primary key not null, until integer not null, stamp integer not null, \
    stale_before integer not null, value text not null)";

/// A stamped value as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// When what it describes was true (Unix milliseconds).
    pub stamp: i64,
    /// Anything stamped before this is stale, however recent.
    pub stale_before: i64,
    /// The value.
    pub value: String,
}

impl Stamped {
    /// Whether it may be used at `now_ms` when answers live `ttl`.
    pub fn fresh(&self, now_ms: i64, ttl: Duration) -> bool {
        self.stamp >= self.stale_before && now_ms.saturating_sub(self.stamp) < ms(ttl)
    }
}

/// Writes ARGV[2] stamped ARGV[1] for ARGV[3] ms unless a later stamp is
/// kept; the kept `stale_before` stays.
const PUT_SCRIPT: &str = "\
local old = redis.call('GET', KEYS[1])
local stale = 0
if old then
  local at, before = string.match(old, '^(%-?%d+) (%-?%d+) ')
  if at and tonumber(at) >= tonumber(ARGV[1]) then return 0 end
  if before then stale = tonumber(before) end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. string.format('%d', stale) .. ' ' .. ARGV[2], 'PX', ARGV[3])
return 1";

/// Moves the kept value's `stale_before` up to ARGV[1], keeping its expiry;
/// with nothing kept, keeps an empty value stamped 0 for ARGV[2] ms, so a
/// write of an older read that lands later is stale too.
const STALE_SCRIPT: &str = "\
local old = redis.call('GET', KEYS[1])
if not old then
  redis.call('SET', KEYS[1], '0 ' .. ARGV[1] .. ' ', 'PX', ARGV[2])
  return 1
end
local at, before, rest = string.match(old, '^(%-?%d+) (%-?%d+) (.*)$')
if not at or tonumber(before) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], at .. ' ' .. ARGV[1] .. ' ' .. rest, 'KEEPTTL')
return 1";

fn parse(text: &str) -> Option<Stamped> {
    let (stamp, rest) = text.split_once(' ')?;
    let (stale_before, value) = rest.split_once(' ')?;
    Some(Stamped {
        stamp: stamp.parse().ok()?,
        stale_before: stale_before.parse().ok()?,
        value: value.to_owned(),
    })
}

impl Room {
    /// Whether this room keeps stamped values (SQLite and Redis do).
    pub fn keeps_values(&self) -> bool {
        !matches!(self, Self::Memory(_))
    }

    /// The stamped value under `key`, if any (unreadable ones read as none).
    pub async fn get_stamped(&self, key: &str) -> Result<Option<Stamped>> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(None),
                Self::Sqlite(pool) => {
                    let row: Option<(i64, i64, String)> = query_as(
                        "select stamp, stale_before, value from channelgate_stamped \
                         where name = ? and until >= ?",
                    )
                    .bind(key)
                    .bind(super::now_ms())
                    .fetch_optional(pool)
                    .await
                    .map_err(backend)?;
                    Ok(row.map(|(stamp, stale_before, value)| Stamped {
                        stamp,
                        stale_before,
                        value,
                    }))
                }
                Self::Redis(r) => {
                    use fred::interfaces::KeysInterface;
                    let text: Option<String> = r.pool.get(key).await.map_err(backend)?;
                    Ok(text.as_deref().and_then(parse))
                }
            }
        })
        .await
    }

    /// Keeps `value` stamped `stamp` under `key` for `keep`, unless a value
    /// stamped later is kept: true when written.
    pub async fn put_stamped(
        &self,
        key: &str,
        stamp: i64,
        value: &str,
        keep: Duration,
    ) -> Result<bool> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(false),
                Self::Sqlite(pool) => {
                    let now = super::now_ms();
                    sqlx_query("delete from channelgate_stamped where until < ?")
                        .bind(now)
                        .execute(pool)
                        .await
                        .map_err(backend)?;
                    let done = sqlx_query(
                        "insert into channelgate_stamped (name, until, stamp, stale_before, value) \
                         values (?, ?, ?, 0, ?) on conflict (name) do update set \
                         until = excluded.until, stamp = excluded.stamp, value = excluded.value \
                         where excluded.stamp > channelgate_stamped.stamp",
                    )
                    .bind(key)
                    .bind(now.saturating_add(ms(keep)))
                    .bind(stamp)
                    .bind(value)
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                    Ok(done.rows_affected() == 1)
                }
                Self::Redis(r) => {
                    let args = vec![stamp.to_string(), value.to_owned(), ms(keep).to_string()];
                    let written: i64 = eval(&r.pool, PUT_SCRIPT, key.to_owned(), args).await?;
                    Ok(written == 1)
                }
            }
        })
        .await
    }

    /// Declares the value under `key` stale if stamped before `at`, and so
    /// any value written later with a stamp before `at` (for `keep`, when
    /// nothing is kept yet).
    pub async fn stale_before(&self, key: &str, at: i64, keep: Duration) -> Result<()> {
        in_time(self.kind(), async {
            match self {
                Self::Memory(_) => Ok(()),
                Self::Sqlite(pool) => sqlx_query(
                    "insert into channelgate_stamped (name, until, stamp, stale_before, value) \
                     values (?, ?, 0, ?, '') on conflict (name) do update set \
                     stale_before = max(stale_before, excluded.stale_before)",
                )
                .bind(key)
                .bind(super::now_ms().saturating_add(ms(keep)))
                .bind(at)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(backend),
                Self::Redis(r) => {
                    let args = vec![at.to_string(), ms(keep).to_string()];
                    let _: i64 = eval(&r.pool, STALE_SCRIPT, key.to_owned(), args).await?;
                    Ok(())
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_value_reads_back_and_is_fresh_only_within_its_ttl_and_after_its_staleness() {
        let kept = parse("1000 0 {\"a\": 1} with spaces").unwrap();
        assert_eq!(kept.value, "{\"a\": 1} with spaces");
        let ttl = Duration::from_secs(1);
        assert!(kept.fresh(1999, ttl));
        assert!(!kept.fresh(2000, ttl));
        let stale = parse("1000 1001 x").unwrap();
        assert!(!stale.fresh(1000, ttl));
        assert_eq!(parse("garbage"), None);
    }
}
