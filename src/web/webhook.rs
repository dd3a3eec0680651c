//! `POST /github/webhook`: GitHub's deliveries, when `[webhooks]` is set.
//!
//! The order is the contract, and each step costs a stranger more than the
//! one before:
//!
//! 1. A request without a well-formed `X-Hub-Signature-256` (`sha256=` and
//!    64 hex digits) is answered 401 before a byte of its body is read
//!    (413 first if its `Content-Length` is over [`MAX_BODY_BYTES`]).
//! 2. At most [`WEBHOOK_READS`] bodies are read at once; a delivery beyond
//!    waits up to [`TURN_WAIT`] for its turn, then is answered 503 with
//!    `Retry-After` (GitHub lets a failed delivery be redelivered, and the
//!    sweep re-reads everyone meanwhile). So bodies cannot pile up in
//!    memory: at most [`WEBHOOK_READS`] × [`MAX_BODY_BYTES`] are held.
//! 3. The body is read up to [`MAX_BODY_BYTES`] (413 past it) while its
//!    HMAC and its SHA-256 are computed; the signature is checked in
//!    constant time (401 when wrong) before anything is parsed.
//! 4. A signed body already handled within the hour (by its SHA-256,
//!    whatever its delivery id) answers 200 and does nothing, unless it is
//!    the removal of a person (see the code); so does a delivery id seen
//!    before.
//! 5. The event. A delivery only *names* people or groups by numeric id;
//!    what they may join is always re-read from GitHub, through a bounded
//!    queue that coalesces the re-reads of one person, org or team
//!    ([`super::memo::Rechecks`]).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::error::ApiError;
use super::form;
use super::memo::Offered;
pub use super::memo::WEBHOOK_READS;
use super::state::AppState;
use crate::excerpt::Excerpt;
use crate::membership::Group;
use crate::revocation::Cause;
use crate::revocation::bus::Change;

/// Largest delivery accepted. Membership events are a few KB; GitHub caps
/// payloads at 25 MB, but none this gateway uses comes near 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a delivery waits for one of the [`WEBHOOK_READS`] turns
/// before it is answered 503.
pub const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// What a delivery asks of the gateway.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Re-check a person or group.
    Recheck(Change),
    /// GitHub's hello when the hook is made.
    Pong,
    /// An event or action that changes no access.
    Ignore,
}

/// `POST /github/webhook`.
pub async fn receive(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(webhooks) = &state.config().webhooks else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such route"));
    };
    let (parts, body) = request.into_parts();
    let count = |event, outcome| state.metrics.webhook(event, outcome);
    let refuse_unsigned = || {
        count("unknown", "unauthorized");
        // One line a minute however many strangers try: grouped by kind.
        state.quiet.info(
            "refused a webhook delivery without a valid X-Hub-Signature-256",
            "check that [webhooks] secret is the one GitHub has".to_owned(),
        );
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "X-Hub-Signature-256 is missing or does not match the body",
        )
    };
    // 0. A declared length past the limit: 413, as on every route.
    if axum::body::HttpBody::size_hint(&body).lower() > MAX_BODY_BYTES as u64 {
        count("unknown", "too_large");
        return Ok(closing(form::too_large(MAX_BODY_BYTES).into_response()));
    }
    // 1. No well-formed signature: refused before the body is read.
    let Some(given) = signature_of(&parts.headers) else {
        return Ok(closing(refuse_unsigned().into_response()));
    };
    // 2. A turn to read a body.
    let reading = state.deliveries.reading.clone();
    let Ok(Ok(_turn)) = tokio::time::timeout(TURN_WAIT, reading.acquire_owned()).await else {
        count("unknown", "busy");
        state.quiet.info(
            "refused a webhook delivery: too many being read at once",
            String::new(),
        );
        let mut busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many deliveries are being read at once; redeliver shortly",
        )
        .into_response();
        busy.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(TURN_WAIT.as_secs()),
        );
        return Ok(closing(busy));
    };
    // 3. Read, with the HMAC and the digest computed as the body streams.
    let mut mac = Hmac::<Sha256>::new_from_slice(webhooks.secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    let mut digest = Sha256::new();
    let body = form::read_up_to_with(body, MAX_BODY_BYTES, |chunk| {
        mac.update(chunk);
        digest.update(chunk);
    })
    .await
    .inspect_err(|e| {
        let outcome = if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "malformed"
        };
        count("unknown", outcome);
    })?;
    // The crate's own check: constant time (through `subtle`), and false
    // for a digest of another length.
    if mac.verify_slice(&given).is_err() {
        return Err(refuse_unsigned());
    }
    let digest: [u8; 32] = digest.finalize().into();
    let headers = &parts.headers;
    let event_label = event_label(header(headers, "x-github-event").unwrap_or(""));
    let malformed = |problem: String| {
        count(event_label, "malformed");
        ApiError::bad_request(problem)
    };
    let delivery = header(headers, "x-github-delivery")
        .filter(|d| is_delivery_id(d))
        .ok_or_else(|| malformed("X-GitHub-Delivery is missing or not a delivery id".into()))?
        .to_owned();
    let event = header(headers, "x-github-event")
        .filter(|e| {
            !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .ok_or_else(|| malformed("X-GitHub-Event is missing or not an event name".into()))?
        .to_owned();
    let parsed: Value = serde_json::from_slice(&body).map_err(|e| {
        tracing::info!(%delivery, %event, outcome = "malformed", "webhook delivery: {e}");
        malformed(format!("the delivery's JSON cannot be read: {e}"))
    })?;
    let action_name = parsed
        .get("action")
        .and_then(Value::as_str)
        .map(|a| {
            if a.len() <= 64 && a.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                a.to_owned()
            } else {
                Excerpt::of(a).to_string()
            }
        })
        .unwrap_or_default();
    let action = match what_to_do(&event, &parsed) {
        Ok(action) => action,
        Err(problem) => {
            tracing::info!(%delivery, %event, action = %action_name, outcome = "malformed", "webhook delivery: {problem}");
            return Err(malformed(problem));
        }
    };
    // 4. Replays: the same signed body (whatever its unsigned delivery id),
    // or the same delivery id. One exception keeps removals failing
    // closed: GitHub sends byte-identical bodies when a person is removed,
    // added back and removed again within the hour, and each must end
    // what they hold and stop their cached answer if GitHub cannot
    // confirm it, so the removal of a person acts however often its body
    // comes. Replayed, it costs at most one re-read of that person at a
    // time (the queue coalesces) and never grants anything.
    let removal = is_removal(&event, &action_name);
    let replayed = !state.deliveries.bodies.first_time(digest);
    let still_matters = removal && matches!(action, Action::Recheck(Change::Person(_)));
    if (replayed && !still_matters) || !state.deliveries.first_time(&delivery) {
        count(event_label, "duplicate");
        tracing::info!(%delivery, %event, action = %action_name, outcome = "duplicate", "webhook delivery");
        return Ok(answer(
            StatusCode::OK,
            &delivery,
            "duplicate: already handled",
        ));
    }
    let outcome = match action {
        Action::Pong => "pong".to_owned(),
        Action::Ignore => "ignored: it changes no access".to_owned(),
        Action::Recheck(change) => {
            let cause = Cause::Webhook {
                delivery: delivery.clone(),
                event: format!("{event}.{action_name}"),
                removal,
            };
            let what = match change {
                Change::Person(id) => format!("person {id}"),
                Change::Group(Group::Org(id)) => format!("everyone in org {id}"),
                Change::Group(Group::Team(id)) => format!("everyone in team {id}"),
            };
            match state
                .deliveries
                .rechecks
                .offer(change, cause, &state.revocation, &state.tasks)
            {
                Offered::Queued => format!("re-checking {what}"),
                Offered::AlreadyWaiting => format!("re-checking {what} (already queued)"),
                Offered::Full => {
                    state.quiet.info(
                        "webhook re-reads are queued to the limit; the sweep will re-read the rest",
                        String::new(),
                    );
                    format!("re-checking {what} on the next sweep (the queue is full)")
                }
            }
        }
    };
    tracing::info!(%delivery, %event, action = %action_name, %outcome, "webhook delivery");
    count(
        event_label,
        match action {
            Action::Pong => "pong",
            Action::Ignore => "ignored",
            Action::Recheck(_) => "accepted",
        },
    );
    let status = if matches!(action, Action::Recheck(_)) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(answer(status, &delivery, &outcome))
}

/// `response` with `Connection: close`: for a refusal whose body was not
/// read, so the server closes the connection instead of reading the unread
/// body into its buffers to reach a next request.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// An event name as a metrics label: those the gateway uses, else `other`.
fn event_label(event: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "ping",
        "organization",
        "membership",
        "team",
        "github_app_authorization",
    ];
    KNOWN
        .iter()
        .find(|k| **k == event)
        .copied()
        .unwrap_or("other")
}

fn answer(status: StatusCode, delivery: &str, outcome: &str) -> Response {
    (
        status,
        Json(json!({ "delivery": delivery, "outcome": outcome })),
    )
        .into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// GitHub's delivery ids are GUIDs; anything of that alphabet and size will do.
pub(crate) fn is_delivery_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The digest `X-Hub-Signature-256` gives: `sha256=` and 64 hex digits,
/// or none.
fn signature_of(headers: &HeaderMap) -> Option<Vec<u8>> {
    header(headers, "x-hub-signature-256")
        .and_then(|v| v.strip_prefix("sha256="))
        .filter(|digits| digits.len() == 64)
        .and_then(|digits| hex::decode(digits).ok())
}

/// Whether `X-Hub-Signature-256` is `sha256=` and the hex HMAC-SHA256 of
/// `body` under `secret`, compared in constant time.
#[cfg(test)]
pub(crate) fn signed(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> bool {
    let Some(given) = signature_of(headers) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Whether `event` with `action` says someone lost access: removed from an
/// org or team, a team or org deleted, the app's authorization revoked.
fn is_removal(event: &str, action: &str) -> bool {
    matches!(
        (event, action),
        ("organization", "member_removed" | "deleted")
            | ("membership", "removed")
            | ("team", "deleted")
            | ("github_app_authorization", "revoked")
    )
}

/// What a signed delivery of `event` asks, or why it is malformed.
pub(crate) fn what_to_do(event: &str, body: &Value) -> Result<Action, String> {
    let action = body.get("action").and_then(Value::as_str);
    let id_at = |path: &[&str]| -> Result<u64, String> {
        let mut v = body;
        for key in path {
            v = v
                .get(key)
                .ok_or_else(|| format!("{event}.{} is missing", path.join(".")))?;
        }
        v.as_u64()
            .ok_or_else(|| format!("{event}.{} is not a numeric id", path.join(".")))
    };
    let person = |path: &[&str]| id_at(path).map(|id| Action::Recheck(Change::Person(id)));
    let group = |path: &[&str], g: fn(u64) -> Group| {
        id_at(path).map(|id| Action::Recheck(Change::Group(g(id))))
    };
    if !body.is_object() {
        return Err("the delivery is not a JSON object".into());
    }
    match (event, action) {
        ("ping", _) => Ok(Action::Pong),
        ("organization", Some("member_added" | "member_removed")) => {
            person(&["membership", "user", "id"])
        }
        ("organization", Some("renamed" | "deleted")) => group(&["organization", "id"], Group::Org),
        ("membership", Some("added" | "removed")) => {
            match body.get("scope").and_then(Value::as_str) {
                Some("team") => person(&["member", "id"]),
                Some(_) => Ok(Action::Ignore),
                None => Err("membership.scope is missing".into()),
            }
        }
        ("team", Some("deleted")) => group(&["team", "id"], Group::Team),
        ("team", Some("edited")) => {
            let changes = body.get("changes");
            let renamed =
                changes.is_some_and(|c| c.get("slug").is_some() || c.get("name").is_some());
            if renamed {
                group(&["team", "id"], Group::Team)
            } else {
                Ok(Action::Ignore)
            }
        }
        ("github_app_authorization", Some("revoked")) => person(&["sender", "id"]),
        ("organization" | "membership" | "team" | "github_app_authorization", None) => {
            Err(format!("{event} without an action"))
        }
        _ => Ok(Action::Ignore),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    #[test]
    fn removals_are_the_events_that_take_access_away() {
        for (event, action) in [
            ("organization", "member_removed"),
            ("organization", "deleted"),
            ("membership", "removed"),
            ("team", "deleted"),
            ("github_app_authorization", "revoked"),
        ] {
            assert!(is_removal(event, action), "{event}.{action}");
        }
        for (event, action) in [
            ("organization", "member_added"),
            ("organization", "renamed"),
            ("membership", "added"),
            ("team", "edited"),
            ("ping", ""),
        ] {
            assert!(!is_removal(event, action), "{event}.{action}");
        }
    }

    #[test]
    fn githubs_documented_signature_verifies() {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
                .parse()
                .unwrap(),
        );
        let secret = b"It's a Secret to Everybody";
        assert!(signed(
            &headers,
            &Bytes::from_static(b"Hello, World!"),
            secret
        ));
        assert!(!signed(
            &headers,
            &Bytes::from_static(b"Hello, World?"),
            secret
        ));
        assert!(!signed(
            &headers,
            &Bytes::from_static(b"Hello, World!"),
            b"another"
        ));
        for bad in [
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=757107ea",
            "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=é57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        ] {
            headers.insert("x-hub-signature-256", bad.parse().unwrap());
            assert!(
                !signed(&headers, &Bytes::from_static(b"Hello, World!"), secret),
                "{bad}"
            );
        }
    }

    fn todo(event: &str, body: &str) -> Result<Action, String> {
        what_to_do(event, &serde_json::from_str(body).unwrap())
    }

    #[test]
    fn events_name_people_and_groups_by_numeric_id() {
        let person = |id| Ok(Action::Recheck(Change::Person(id)));
        assert_eq!(
            todo(
                "organization",
                r#"{"action":"member_removed","membership":{"user":{"id":7,"login":"x"}}}"#
            ),
            person(7)
        );
        assert_eq!(
            todo(
                "membership",
                r#"{"action":"removed","scope":"team","member":{"id":8},"team":{"id":3,"name":"gone","deleted":true}}"#
            ),
            person(8)
        );
        assert_eq!(
            todo(
                "github_app_authorization",
                r#"{"action":"revoked","sender":{"id":9}}"#
            ),
            person(9)
        );
        assert_eq!(
            todo(
                "organization",
                r#"{"action":"renamed","organization":{"id":5},"changes":{"login":{"from":"old"}}}"#
            ),
            Ok(Action::Recheck(Change::Group(Group::Org(5))))
        );
        assert_eq!(
            todo(
                "team",
                r#"{"action":"edited","team":{"id":6},"changes":{"name":{"from":"Old"}}}"#
            ),
            Ok(Action::Recheck(Change::Group(Group::Team(6))))
        );
        assert_eq!(
            todo(
                "team",
                r#"{"action":"edited","team":{"id":6},"changes":{"description":{"from":""}}}"#
            ),
            Ok(Action::Ignore)
        );
        assert_eq!(
            todo("ping", r#"{"zen":"Keep it logically awesome."}"#),
            Ok(Action::Pong)
        );
        assert_eq!(todo("push", r#"{"ref":"main"}"#), Ok(Action::Ignore));
        assert_eq!(
            todo("organization", r#"{"action":"member_invited"}"#),
            Ok(Action::Ignore)
        );
    }

    #[test]
    fn a_signed_but_malformed_event_names_what_is_wrong() {
        let problem = todo(
            "organization",
            r#"{"action":"member_removed","membership":{"user":{"login":"x"}}}"#,
        )
        .unwrap_err();
        assert!(
            problem.contains("membership.user.id is missing"),
            "{problem}"
        );
        let problem = todo(
            "organization",
            r#"{"action":"member_removed","membership":{"user":{"id":"7"}}}"#,
        )
        .unwrap_err();
        assert!(problem.contains("not a numeric id"), "{problem}");
        assert!(todo("membership", r#"{"action":"added"}"#).is_err());
        assert!(todo("team", r#"{"team":{"id":1}}"#).is_err());
        assert!(todo("organization", "[1,2]").is_err());
    }

    #[test]
    fn delivery_ids_are_guid_like() {
        assert!(is_delivery_id("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
        assert!(!is_delivery_id(""));
        assert!(!is_delivery_id("a b"));
        assert!(!is_delivery_id(&"a".repeat(65)));
    }
}
