//! Every request observed: an id (the client's `x-request-id` when it is
//! well-formed, else one made here), echoed in the answer and carried by
//! every log line of the request (a `request` span), and the request
//! counted by route template and status. A 503 is logged here, in the
//! gateway's quiet log: one line a minute per kind of outage.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::error::Outage;
use super::state::AppState;

/// The request id header, read and echoed.
pub const REQUEST_ID: &str = "x-request-id";

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
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Some(outage) = response.extensions_mut().remove::<Outage>() {
        let _inside = span.enter();
        state
            .quiet
            .warn("answered 503", &outage.message, outage.cause);
    }
    state
        .metrics
        .http(route, response.status().as_u16(), started.elapsed());
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::memo::RequestIds;

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
