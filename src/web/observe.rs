//! Every request observed: an id (the client's `x-request-id` when it is
//! well-formed, else one made here), echoed in the answer and carried by
//! every log line of the request (a `request` span), and the request
//! counted by route template and status.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use tracing::Instrument;

use super::state::AppState;

/// The request id header, read and echoed.
pub const REQUEST_ID: &str = "x-request-id";

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
    fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .expect("hex and a dash are a header value")
    }
}

/// A client's id is kept when it is 1 to 64 letters, digits, `-`, `_`, `.`
/// or `:` (what proxies and tracing systems send); anything else is replaced,
/// so no client can put arbitrary text in the log.
fn usable(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The route's template as a label from a fixed set: never the raw path.
fn route_label(path: Option<&MatchedPath>) -> &'static str {
    const ROUTES: &[&str] = &[
        "/",
        "/healthz",
        "/readyz",
        "/assets/pusher.min.js",
        "/assets/home.js",
        "/assets/tokens.js",
        "/auth/login",
        "/auth/callback",
        "/auth/logout",
        "/auth/me",
        "/auth/device",
        "/auth/device/token",
        "/auth/tokens",
        "/auth/tokens/{id}",
        "/pusher/auth",
        "/pusher/user-auth",
        "/github/webhook",
    ];
    path.and_then(|p| ROUTES.iter().find(|r| **r == p.as_str()).copied())
        .unwrap_or("other")
}

/// The middleware.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let id = match request.headers().get(REQUEST_ID) {
        Some(given) if usable(given) => given.clone(),
        _ => state.ids.make(),
    };
    let route = route_label(request.extensions().get::<MatchedPath>());
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %request.method(),
        route,
    );
    let mut response = next.run(request).instrument(span).await;
    state
        .metrics
        .http(route, response.status().as_u16(), started.elapsed());
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_kept() {
        for ok in ["abc", "0f3a-12", "req_1.2:3", &"a".repeat(64)] {
            assert!(usable(&HeaderValue::from_str(ok).unwrap()), "{ok}");
        }
        for bad in ["", "a b", "x\"y", "%0a", &"a".repeat(65), "é"] {
            let Ok(v) = HeaderValue::from_str(bad) else {
                continue;
            };
            assert!(!usable(&v), "{bad:?}");
        }
    }

    #[test]
    fn made_ids_are_unique() {
        let ids = RequestIds::default();
        let (a, b) = (ids.make(), ids.make());
        assert_ne!(a, b);
        assert!(usable(&a));
    }
}
