//! `[limits]` counted for the whole fleet: a GCRA bucket per key in Redis,
//! with `governor`'s semantics (`N` a minute allows a burst of `N`, then
//! one every `60/N` seconds), kept in one key and decided by one script
//! on the server's clock (`TIME`), so that instances whose clocks disagree
//! still count the same.
//!
//! Only a Redis room counts for a fleet; memory and SQLite rooms leave the
//! limits to each process (`web::limits` asks this room only when
//! [`Room::is_fleet`]).
//!
//! Why a script of our own rather than a crate: the one maintained crate
//! for `fred` (`tower-rate-limit-fred`) loads its script with
//! `SCRIPT LOAD` on one node and then calls `EVALSHA` routed by key, which
//! on a Redis Cluster finds `NOSCRIPT` on every other master; this script
//! goes as `EVAL` on its one key (one hash slot), like the room's others.

use std::num::NonZeroU32;
use std::time::Duration;

use super::{Result, Room, RoomError, eval, in_time};

/// The bucket of `KEYS[1]`: its theoretical arrival time, in microseconds
/// of the server's clock. `ARGV[1]` is the interval between requests,
/// `ARGV[2]` the tolerance (the interval times the burst less one), both
/// in microseconds, and `ARGV[3]` how many requests the caller would like
/// counted at once (at least 1). `{k, 0}` admits `k` of them (at least
/// one, at most as many as the bucket holds now); `{0, wait}` refuses, the
/// next request admitted in `wait` microseconds. Numbers stay below 2^53 (exact in
/// Lua's doubles) until the year 2255; the arrival time is written with
/// `%.0f`, since Lua's own conversion would round it.
const GCRA_SCRIPT: &str = "\
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local wanted = math.max(1, math.floor(tonumber(ARGV[3])))
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if tat - now > tolerance then return {0, tat - now - tolerance} end
local held = math.floor((tolerance - (tat - now)) / interval) + 1
local granted = math.min(wanted, held)
local next = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000))
return {granted, 0}";

/// A minute, in microseconds.
const MINUTE_US: u64 = 60_000_000;

impl Room {
    /// Counts up to `wanted` requests against the fleet's bucket `key`,
    /// which allows `per_minute` a minute (a burst of that many, then one
    /// every `60/per_minute` seconds): `Ok(k)` when `k` (at least one) were
    /// counted, else how long until the next one would be. An error says
    /// the store did not answer; the caller decides what that means
    /// (`web::limits` falls back to its process's own bucket). Memory and
    /// SQLite rooms count nothing for a fleet: an error.
    pub async fn admit(
        &self,
        key: &str,
        per_minute: NonZeroU32,
        wanted: u32,
    ) -> Result<std::result::Result<u32, Duration>> {
        let Self::Redis(r) = self else {
            return Err(RoomError(format!(
                "the {} session store keeps no fleet-wide limits: each process counts its own",
                self.kind()
            )));
        };
        let interval = (MINUTE_US / u64::from(per_minute.get())).max(1);
        let tolerance = interval * u64::from(per_minute.get() - 1);
        let answer: Vec<i64> = in_time(
            self.kind(),
            eval(
                &r.pool,
                GCRA_SCRIPT,
                key.to_owned(),
                vec![
                    interval.to_string(),
                    tolerance.to_string(),
                    wanted.max(1).to_string(),
                ],
            ),
        )
        .await?;
        match answer.as_slice() {
            [0, wait] => Ok(Err(Duration::from_micros(
                u64::try_from(*wait).unwrap_or(0),
            ))),
            [granted, _] if *granted > 0 => Ok(Ok(u32::try_from(*granted).unwrap_or(1))),
            other => Err(RoomError(format!(
                "the Redis limit script answered {other:?}, not an admission"
            ))),
        }
    }
}
