//! `[limits]`: how often one client may start a login and one person may
//! ask for signatures; who the client is behind a proxy; and a log that a
//! flood of identical refusals cannot flood.
//!
//! Limits are token buckets (GCRA): `N` a minute allows a burst of `N`,
//! then one every `60/N` seconds. Each process keeps its own per key
//! (`governor`), swept of idle keys every minute, so a flood from ever-new
//! addresses costs memory only for about a minute. IPv6 addresses count
//! per /64, since anyone with one address has the whole /64.
//!
//! On a Redis store the limits count for the whole fleet: a request the
//! process's own bucket admits is then counted in the fleet's bucket
//! ([`Room::admit`]), and admitted only if that admits it too. The local
//! bucket goes first, so a flood at one instance is refused without a
//! round trip to Redis. When Redis does not answer, the local bucket's
//! word stands: the limit then holds per instance (at most `N` times the
//! instances a minute), never an allow of unlimited traffic, and requests
//! that need nothing from the store are still answered.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::room::Room;

/// Who a limit counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A client address (IPv6 cut to its /64).
    Addr(IpAddr),
    /// A logged-in person, by GitHub id.
    Person(u64),
}

impl Key {
    /// The key of a client address.
    pub fn addr(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let segments = v6.segments();
                Self::Addr(IpAddr::V6(Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                )))
            }
            IpAddr::V6(v6) => Self::Addr(IpAddr::V4(v6.to_ipv4_mapped().expect("checked"))),
            v4 => Self::Addr(v4),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Addr(ip) => write!(f, "addr:{ip}"),
            Self::Person(id) => write!(f, "person:{id}"),
        }
    }
}

/// How long requests counted ahead in the fleet's bucket stay this
/// instance's to admit; unused, they are lost (the fleet admits fewer, never
/// more). Long enough for a lease to grow to what a busy key asks of one
/// instance in that time, short enough that a key gone quiet gives up little.
const LEASE_FOR: Duration = Duration::from_secs(5);
/// Keys whose leases are kept, at most: beyond, the least recent go (and
/// their next request asks Redis).
const LEASES_KEPT: u64 = 100_000;

/// Requests of one key counted ahead in the fleet's bucket, so that a busy
/// key costs one Redis call per lease rather than per request. A lease
/// starts at one request; it doubles (up to a twentieth of the limit, and
/// 100) each time the last was used up within [`LEASE_FOR`], and halves
/// when requests were left unused: it settles near what the key asks of
/// this instance in [`LEASE_FOR`]. The fleet never admits more
/// than the limit: what a lease holds was counted when it was taken.
#[derive(Debug, Default)]
struct Lease {
    /// Requests left to admit.
    left: u32,
    /// Until when they may be.
    until: Option<tokio::time::Instant>,
    /// The size of the last lease.
    size: u32,
}

impl Lease {
    /// Admits one request from the lease, if it holds one still valid.
    fn take(&mut self, now: tokio::time::Instant) -> bool {
        let valid = self.left > 0 && self.until.is_some_and(|until| until > now);
        if valid {
            self.left -= 1;
        }
        valid
    }

    /// How many requests the next lease asks for, at most `most`.
    fn next_size(&self, now: tokio::time::Instant, most: u32) -> u32 {
        let used_up_in_time = self.left == 0 && self.until.is_some_and(|until| until > now);
        let wasted = self.left > 0;
        if used_up_in_time {
            self.size.saturating_mul(2).clamp(1, most)
        } else if wasted {
            (self.size / 2).clamp(1, most)
        } else {
            self.size.clamp(1, most)
        }
    }
}

/// One limit: so many requests a minute per key, or none (`0`).
#[derive(Clone)]
pub struct Limiter(Option<Arc<On>>);

/// A limit that is on.
struct On {
    /// Which limit: the fleet's buckets of two limits never mix.
    name: &'static str,
    /// Requests a minute.
    per_minute: NonZeroU32,
    /// This process's buckets.
    local: DefaultKeyedRateLimiter<Key>,
    /// Requests of the fleet's buckets counted ahead by this instance, per
    /// key (see [`Lease`]).
    leases: moka::sync::Cache<Key, Arc<std::sync::Mutex<Lease>>>,
    /// The most requests one lease counts ahead.
    most_ahead: u32,
    /// When the fleet's buckets last failed to answer and it was logged
    /// (Unix seconds): once a minute at most.
    warned_at: AtomicU64,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(on) => write!(f, "Limiter({}: {} a minute)", on.name, on.per_minute),
            None => f.write_str("Limiter(off)"),
        }
    }
}

impl Limiter {
    /// The limit `name` (its buckets in a fleet's store are its own):
    /// `per_minute` requests a minute per key; 0 turns it off.
    pub fn per_minute(name: &'static str, per_minute: u32) -> Self {
        Self(NonZeroU32::new(per_minute).map(|n| {
            Arc::new(On {
                name,
                per_minute: n,
                local: RateLimiter::keyed(Quota::per_minute(n)),
                leases: moka::sync::Cache::builder()
                    .max_capacity(LEASES_KEPT)
                    .time_to_idle(LEASE_FOR * 2)
                    .build(),
                most_ahead: (n.get() / 20).clamp(1, 100),
                warned_at: AtomicU64::new(0),
            })
        }))
    }

    /// Counts a request for `key`, in this process and, on a Redis `room`,
    /// in the fleet; `Err` says how long until the next is allowed.
    pub async fn admit(&self, room: &Room, key: Key) -> Result<(), Duration> {
        let Some(on) = &self.0 else {
            return Ok(());
        };
        on.local
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))?;
        if !room.is_fleet() {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        let lease = (on.most_ahead > 1).then(|| on.leases.get_with(key, Default::default));
        let wanted = match &lease {
            Some(lease) => {
                let mut lease = lease.lock().expect("lease lock");
                if lease.take(now) {
                    return Ok(());
                }
                lease.next_size(now, on.most_ahead)
            }
            None => 1,
        };
        let name = format!("channelgate:limit:{}:{key}", on.name);
        match room.admit(&name, on.per_minute, wanted).await {
            Ok(Ok(granted)) => {
                if let Some(lease) = lease {
                    let mut lease = lease.lock().expect("lease lock");
                    let now = tokio::time::Instant::now();
                    // A lease another request of this key took meanwhile
                    // keeps what it holds: counted in the fleet, it is ours.
                    let kept = if lease.until.is_some_and(|until| until > now) {
                        lease.left
                    } else {
                        0
                    };
                    *lease = Lease {
                        left: kept + granted - 1,
                        until: Some(now + LEASE_FOR),
                        size: wanted,
                    };
                }
                Ok(())
            }
            Ok(Err(wait)) => Err(wait),
            Err(e) => {
                on.warn(&e);
                Ok(())
            }
        }
    }

    /// Forgets keys that are back to a full bucket, and the memory they took.
    pub fn sweep(&self) {
        if let Some(on) = &self.0 {
            on.local.retain_recent();
            on.local.shrink_to_fit();
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |on| on.local.len())
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl On {
    /// Says, once a minute at most, that the fleet's buckets did not answer.
    fn warn(&self, e: &crate::room::RoomError) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.warned_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 60
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                limit = self.name,
                error = %e,
                "a limit is counted by this instance alone for now: the session store did not answer for the fleet's count"
            );
        }
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy,
/// the address that proxy says it forwarded for: the right-most entry of
/// `X-Forwarded-For` that is not itself a trusted proxy. (Entries further
/// left were written by the client and prove nothing.)
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip.to_canonical()) => continue,
            Ok(ip) => return ip.to_canonical(),
            // Garbage where a proxy should have written an address: trust
            // nothing further left.
            Err(_) => return peer,
        }
    }
    peer
}

/// Distinct denials of one person written a minute; the rest are summed.
pub const DENIALS_LOGGED: u64 = 3;

/// A log line that, repeated, is counted instead of written again: the
/// first of a kind is logged at once, the repeats within a minute are
/// summed, and the sum is logged when that minute ends.
///
/// What counts as "the same" is the caller's `detail`, which must be a key
/// a stranger cannot vary at will: a kind and a client address or a
/// person, never text from the request (an `Origin`, a `state`, a channel
/// name), or each new text would be a new line. [`QuietLog::info_capped`]
/// allows a person the first few distinct lines of a kind a minute.
#[derive(Clone)]
pub struct QuietLog(moka::sync::Cache<u64, Arc<Repeats>>);

/// What a summary line needs.
struct Repeats {
    what: &'static str,
    detail: String,
    count: AtomicU64,
    /// Distinct lines written (see [`QuietLog::info_capped`]).
    written: AtomicU64,
}

impl Default for QuietLog {
    fn default() -> Self {
        Self::new(Duration::from_secs(60))
    }
}

impl QuietLog {
    /// Repeats within `window` of the first are summed.
    pub fn new(window: Duration) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(window)
            .eviction_listener(|_, repeats: Arc<Repeats>, _| {
                let n = repeats.count.load(Ordering::Relaxed);
                if n > 0 {
                    tracing::info!(repeats = n, detail = %repeats.detail, "{} (repeated)", repeats.what);
                }
            })
            .build();
        Self(cache)
    }

    /// Logs `what` with `detail` at info, unless the same was logged within
    /// the window: then it is only counted. Returns whether it was written.
    pub fn info(&self, what: &'static str, detail: String) -> bool {
        let key = (what, &detail);
        self.once(
            key,
            what,
            detail.clone(),
            || tracing::info!(%detail, "{what}"),
        )
    }

    /// [`Self::info`] with the caller's own line (`write`), such as one
    /// with structured fields: written unless the same `what` and `detail`
    /// were within the window, and counted then.
    pub fn info_with(&self, what: &'static str, detail: String, write: impl FnOnce()) -> bool {
        let key = (what, &detail);
        self.once(key, what, detail.clone(), write)
    }

    /// Logs `what` with `detail` at warn, unless one with the same `what`
    /// and `key` was logged within the window: then it is only counted.
    pub fn warn(&self, what: &'static str, key: &str, detail: String) -> bool {
        self.once((what, key), what, key.to_owned(), || {
            tracing::warn!(%detail, "{what}");
        })
    }

    /// Writes `line` unless the same `what` and `text` were seen within
    /// the window, or `who` has had `cap` distinct lines of `what` written
    /// in it already. What is not written is counted against `who`, and
    /// the count logged with `who` when the window ends: one summary a
    /// person, however many texts they vary.
    pub fn info_capped(
        &self,
        what: &'static str,
        who: String,
        text: &str,
        cap: u64,
        line: impl FnOnce(),
    ) -> bool {
        let key = |k: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            k(&mut hasher);
            hasher.finish()
        };
        let person = self
            .0
            .entry(key(&|h| (what, "by", &who).hash(h)))
            .or_insert_with(|| {
                Arc::new(Repeats {
                    what,
                    detail: who.clone(),
                    count: AtomicU64::new(0),
                    written: AtomicU64::new(0),
                })
            });
        let person = person.into_value();
        // An identical line is never written twice in a window; its text
        // is remembered, never summarized.
        let text_is_new = self
            .0
            .entry(key(&|h| (what, "text", text).hash(h)))
            .or_insert_with(|| {
                Arc::new(Repeats {
                    what,
                    detail: String::new(),
                    count: AtomicU64::new(0),
                    written: AtomicU64::new(0),
                })
            })
            .is_fresh();
        if text_is_new && person.written.fetch_add(1, Ordering::Relaxed) < cap {
            line();
            true
        } else {
            person.count.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    fn once(
        &self,
        key: impl Hash,
        what: &'static str,
        detail: String,
        write: impl FnOnce(),
    ) -> bool {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let entry = self.0.entry(hasher.finish()).or_insert_with(|| {
            Arc::new(Repeats {
                what,
                detail: detail.clone(),
                count: AtomicU64::new(0),
                written: AtomicU64::new(0),
            })
        });
        if entry.is_fresh() {
            write();
            true
        } else {
            entry.value().count.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Writes the summaries of windows that have ended.
    pub fn flush(&self) {
        self.0.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_doubles_when_used_up_in_time_and_halves_when_wasted() {
        let now = tokio::time::Instant::now();
        let mut lease = Lease::default();
        assert!(!lease.take(now), "an empty lease admits nothing");
        assert_eq!(lease.next_size(now, 5), 1);
        lease = Lease {
            left: 1,
            until: Some(now + LEASE_FOR),
            size: 2,
        };
        assert!(lease.take(now));
        assert!(!lease.take(now), "used up");
        assert_eq!(lease.next_size(now, 5), 4, "used up within its time");
        lease.size = 4;
        assert_eq!(lease.next_size(now, 5), 5, "never past the most");
        let later = now + LEASE_FOR * 2;
        lease.left = 3;
        assert!(!lease.take(later), "an expired lease admits nothing");
        assert_eq!(lease.next_size(later, 5), 2, "requests left unused");
        lease.size = 1;
        assert_eq!(lease.next_size(later, 5), 1, "never below one");
        lease.size = 4;
        lease.left = 0;
        assert_eq!(lease.next_size(later, 5), 4, "used up, but slowly");
    }

    #[tokio::test]
    async fn a_limit_allows_its_burst_then_says_how_long_to_wait() {
        let room = Room::open(&crate::config::SessionStore::Memory)
            .await
            .unwrap();
        let limit = Limiter::per_minute("login", 3);
        let key = Key::Person(1);
        for _ in 0..3 {
            assert_eq!(limit.admit(&room, key).await, Ok(()));
        }
        let wait = limit.admit(&room, key).await.unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Others are not affected.
        assert_eq!(limit.admit(&room, Key::Person(2)).await, Ok(()));
        assert_eq!(limit.len(), 2);
        let off = Limiter::per_minute("login", 0);
        for _ in 0..1000 {
            assert_eq!(off.admit(&room, key).await, Ok(()));
        }
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Key::addr(a), Key::addr(b));
        assert_ne!(Key::addr(a), Key::addr(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Key::addr(mapped), Key::Addr("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.1.1.1".parse().unwrap(),
        );
        let proxy: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        // Behind the proxy: the right-most address it did not add itself.
        assert_eq!(
            client_addr(proxy, &headers, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // Anyone else's header is ignored.
        assert_eq!(client_addr(stranger, &headers, &trusted), stranger.ip());
        assert_eq!(client_addr(proxy, &headers, &[]), proxy.ip());
        headers.insert("x-forwarded-for", "not-an-address".parse().unwrap());
        assert_eq!(client_addr(proxy, &headers, &trusted), proxy.ip());
        assert_eq!(client_addr(proxy, &HeaderMap::new(), &trusted), proxy.ip());
    }

    #[test]
    fn repeated_lines_are_counted_not_written() {
        let log = QuietLog::new(Duration::from_secs(60));
        assert!(log.info("denied", "ada private-x".into()));
        for _ in 0..1000 {
            assert!(!log.info("denied", "ada private-x".into()));
        }
        assert!(log.info("denied", "bo private-x".into()));
    }

    #[test]
    fn a_person_gets_the_first_few_distinct_lines_of_a_kind() {
        let log = QuietLog::new(Duration::from_secs(60));
        let mut written = 0;
        for i in 0..100 {
            if log.info_capped("denied", "bo".into(), &format!("bo private-{i}"), 3, || {}) {
                written += 1;
            }
        }
        assert_eq!(written, 3);
        // Another person has their own few.
        assert!(log.info_capped("denied", "ada".into(), "ada private-1", 3, || {}));
        // An identical repeat is never written.
        assert!(!log.info_capped("denied", "ada".into(), "ada private-1", 3, || {}));
    }
}
