//! What the HTTP face remembers between requests, apart from the handlers
//! that use it (so that [`super::state`] imports no handler): OAuth states
//! already spent, webhook deliveries already handled, device codes being
//! polled, and the prefix of request ids. Each is bounded in size and time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderValue;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use sha2::Digest;
use tokio::time::Instant;

/// How long a login may take between `/auth/login` and `/auth/callback`.
/// GitHub's codes live 10 minutes; so does our `state`.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
/// Deliveries remembered, to answer a repeat without acting twice.
const DELIVERIES_KEPT: u64 = 100_000;
/// How long a delivery id is remembered: GitHub redelivers within 3 days.
const DELIVERIES_KEPT_FOR: Duration = Duration::from_secs(3 * 86_400);

/// OAuth states already presented at the callback, remembered for as long
/// as a login may take, so that a state works once even when its cookie is
/// replayed. Bounded: a flood of logins is limited first by `[limits]`.
/// Kept as SHA-256 digests: a fixed 32 bytes per login, whatever was sent.
#[derive(Clone)]
pub struct SpentStates(moka::future::Cache<[u8; 32], ()>);

impl Default for SpentStates {
    fn default() -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LOGIN_TIMEOUT)
                .build(),
        )
    }
}

impl SpentStates {
    /// Records `state` as spent; false when it already was.
    pub async fn spend(&self, state: &str) -> bool {
        let digest: [u8; 32] = sha2::Sha256::digest(state.as_bytes()).into();
        self.0.entry(digest).or_insert(()).await.is_fresh()
    }
}

/// Delivery ids already handled.
#[derive(Clone)]
pub struct SeenDeliveries(moka::sync::Cache<String, ()>);

impl Default for SeenDeliveries {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(DELIVERIES_KEPT)
                .time_to_live(DELIVERIES_KEPT_FOR)
                .build(),
        )
    }
}

impl SeenDeliveries {
    /// Records `id`; false when it was already there.
    pub fn first_time(&self, id: &str) -> bool {
        self.0.entry(id.to_owned()).or_insert(()).is_fresh()
    }
}

/// The device codes being polled, by the SHA-256 of GitHub's code.
#[derive(Clone)]
pub struct DevicePolls(moka::sync::Cache<[u8; 32], Arc<Mutex<Poll>>>);

/// Where the polls of one device code stand. Its times are read off the
/// gateway's [`crate::clock::Clock`].
pub struct Poll {
    /// No poll is passed on to GitHub before this.
    pub next_at: Instant,
    /// The pace GitHub asked for, or ours after a `slow_down`.
    pub interval: Duration,
    /// A poll is with GitHub now.
    pub in_flight: bool,
    /// How it ended, if it has: the answer to every later poll.
    pub ended: Option<&'static str>,
}

impl Default for DevicePolls {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                // GitHub's device codes live 15 minutes.
                .time_to_live(Duration::from_secs(20 * 60))
                .build(),
        )
    }
}

impl DevicePolls {
    /// The polls of the device code whose digest is `key`, begun with
    /// `first` when there are none yet.
    pub fn of(&self, key: [u8; 32], first: impl FnOnce() -> Poll) -> Arc<Mutex<Poll>> {
        self.0.get_with(key, || Arc::new(Mutex::new(first())))
    }
}

/// Makes request ids: a random prefix per process and a counter, so ids
/// are unique across instances without a system call per request.
#[derive(Debug)]
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut bytes = [0u8; 6];
        OsRng.fill_bytes(&mut bytes);
        Self {
            prefix: hex::encode(bytes),
            next: AtomicU64::new(1),
        }
    }
}

impl RequestIds {
    /// The next id.
    pub fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .expect("hex and a dash are a header value")
    }
}
