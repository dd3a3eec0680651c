//! Hostile bytes: every parser a stranger can reach, fed arbitrary input and
//! mutations of valid input. None may panic; each answers a 4xx (or a named
//! problem), and a mutated signature never verifies.
//!
//! 10,000 cases per parser here (`cargo test`); `PROPTEST_CASES=N` runs
//! more.

use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, LINK};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use proptest::prelude::*;

use crate::channel::{ChannelName, SocketId};
use crate::config::Config;
use crate::crypto::{Keys, Purpose};
use crate::secret::Secret;
use crate::session::tokens::BearerToken;
use crate::web::auth::{CallbackQuery, PendingLogin, safe_return_to};
use crate::web::device::open_device_code;
use crate::web::form::field;
use crate::web::pusher::parse_request;
use crate::web::webhook::{is_delivery_id, signed, what_to_do};

const CASES: u32 = 10_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // A failure is reported as found; no time spent shrinking it.
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    }
}

/// Arbitrary bytes, mostly short.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

/// `sample` with a few bytes replaced, inserted or removed.
fn mutated(sample: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..6).prop_map(move |edits| {
        let mut out = sample.to_vec();
        for (at, byte, kind) in edits {
            let at = if out.is_empty() { 0 } else { at % out.len() };
            match kind {
                0 if !out.is_empty() => out[at] = byte,
                1 => out.insert(at, byte),
                _ if !out.is_empty() => {
                    out.remove(at);
                }
                _ => out.push(byte),
            }
        }
        out
    })
}

fn either(sample: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![bytes(), mutated(sample)]
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v,
            );
        }
    }
    map
}

fn is_refusal(status: StatusCode) -> bool {
    status.is_client_error()
}

const FORM: &[u8] = b"socket_id=123.456&channel_name=private-team-acme.ops";
const BATCH: &[u8] =
    b"socket_id=123.456&channel_name%5B0%5D=private-a&channel_name%5B1%5D=presence-b";
const JSON: &[u8] = br#"{"socket_id":"123.456","channel_name":["private-a","presence-b"]}"#;
const WEBHOOK: &[u8] =
    br#"{"action":"removed","scope":"team","member":{"id":7,"login":"x"},"team":{"id":3}}"#;
const BEARER: &[u8] = b"Bearer cg_q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA";
const CONFIG: &[u8] = br#"[pusher]
app_id = "1"
key = "k"
secret = "s"
[github]
client_id = "c"
client_secret = "s"
[cache]
membership_ttl = "90s"
[[rules]]
channel = "private-team-{org}.{team}"
[[rules]]
channel = "presence-org-{org}"
orgs = ["acme"]
"#;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn auth_bodies_parse_or_get_a_400(
        body in prop_oneof![either(FORM), either(BATCH), either(JSON)],
        json in any::<bool>(),
    ) {
        let content_type: &[u8] = if json { b"application/json" } else { b"application/x-www-form-urlencoded" };
        if let Err(refusal) = parse_request(&headers(&[(CONTENT_TYPE.as_str(), content_type)]), &body) {
            prop_assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
            prop_assert!(!refusal.message().is_empty());
        }
    }

    #[test]
    fn auth_bodies_with_any_content_type_never_panic(
        body in bytes(),
        content_type in bytes(),
    ) {
        if let Err(refusal) = parse_request(&headers(&[(CONTENT_TYPE.as_str(), &content_type)]), &body) {
            prop_assert!(is_refusal(refusal.status));
        }
    }

    #[test]
    fn socket_ids_and_channel_names_parse_or_say_why(
        raw in prop_oneof![either(b"123.456"), either(b"private-encrypted-acme-room_1=@,.;")],
    ) {
        let raw = text(&raw);
        if let Ok(socket) = SocketId::parse(&raw) {
            prop_assert_eq!(socket.as_str(), raw.as_str());
        }
        match ChannelName::parse(&raw) {
            Ok(channel) => prop_assert_eq!(channel.as_str(), raw.as_str()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn webhook_bodies_and_headers_never_panic(
        body in either(WEBHOOK),
        event in either(b"membership"),
        signature in either(b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
        delivery in either(b"72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ) {
        let _ = is_delivery_id(&text(&delivery));
        let h = headers(&[("x-hub-signature-256", &signature)]);
        // Only the exact HMAC of these bytes verifies, and never a mutation of it.
        prop_assert!(!signed(&h, &Bytes::from(body.clone()), b"It's a Secret to Everybody") || body == b"Hello, World!");
        if let Ok(value) = serde_json::from_slice(&body)
            && let Err(problem) = what_to_do(&text(&event), &value)
        {
            prop_assert!(!problem.is_empty());
        }
    }

    #[test]
    fn link_headers_only_ever_name_a_next_page(
        link in either(br#"<https://api.github.com/user/teams?page=2>; rel="next", <https://api.github.com/user/teams?page=9>; rel="last""#),
    ) {
        let h = headers(&[(LINK.as_str(), &link)]);
        if let Some(next) = crate::github::next_link(&h) {
            prop_assert!(text(&link).contains(&next));
        }
        let _ = crate::github::rate_limit_reset(StatusCode::FORBIDDEN, &headers(&[("x-ratelimit-remaining", &link), ("x-ratelimit-reset", &link)]));
    }

    #[test]
    fn login_cookies_open_only_when_sealed_here(raw in bytes(), edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let keys = Keys::new(Some(&Secret::new(vec![7; 32])));
        prop_assert!(PendingLogin::open(&keys, &text(&raw)).is_none());
        // A genuine cookie with any byte changed does not open.
        let genuine = keys.seal(
            Purpose::LoginState,
            br#"{"state":"s","pkce_verifier":"v","return_to":"/","started_at":1}"#,
        );
        prop_assert!(PendingLogin::open(&keys, &genuine).is_some());
        let mut bent = genuine.clone().into_bytes();
        for (at, byte) in edits {
            let at = at % bent.len();
            bent[at] = byte;
        }
        if bent != genuine.as_bytes() {
            prop_assert!(PendingLogin::open(&keys, &text(&bent)).is_none());
        }
    }

    #[test]
    fn bearer_headers_hold_a_token_only_in_the_one_shape(header in either(BEARER)) {
        if let Ok(token) = BearerToken::from_header(&header) {
            let text = text(&header);
            let (scheme, rest) = text.split_once(' ').unwrap();
            prop_assert!(scheme.eq_ignore_ascii_case("bearer"));
            let rest = rest.trim_matches(' ');
            prop_assert!(rest.starts_with("cg_") && rest.len() == 46, "{}", rest);
            prop_assert_eq!(BearerToken::parse(rest), Ok(token));
        }
    }

    #[test]
    fn device_codes_open_only_when_sealed_here(raw in bytes(), edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let keys = Keys::new(Some(&Secret::new(vec![7; 32])));
        prop_assert!(open_device_code(&keys, &text(&raw)).is_none());
        let genuine = keys.seal(
            Purpose::DeviceCode,
            br#"{"code":"3584d83530557fdd1f46af8289938c8ef79f9dc5","expires_at":1,"interval":5,"name":"cli"}"#,
        );
        prop_assert!(open_device_code(&keys, &genuine).is_some());
        let mut bent = genuine.clone().into_bytes();
        for (at, byte) in edits {
            let at = at % bent.len();
            bent[at] = byte;
        }
        if bent != genuine.as_bytes() {
            prop_assert!(open_device_code(&keys, &text(&bent)).is_none());
        }
    }

    #[test]
    fn token_names_and_device_codes_in_bodies_parse_or_get_a_400(
        body in prop_oneof![either(br#"{"name":"build bot"}"#), either(b"device_code=abc&name=x")],
        content_type in prop_oneof![Just(b"application/json".to_vec()), Just(b"application/x-www-form-urlencoded".to_vec()), bytes()],
    ) {
        for name in ["name", "device_code"] {
            if let Err(refusal) = field(&headers(&[(CONTENT_TYPE.as_str(), &content_type)]), &body, name) {
                prop_assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
                prop_assert!(refusal.message().contains(name) || refusal.message().contains("JSON"), "{}", refusal.message());
            }
        }
    }

    #[test]
    fn callback_queries_and_return_paths_never_panic(query in either(b"code=abc&state=xyz&error=access_denied"), path in either(b"/pusher?x=1")) {
        if let Ok(uri) = format!("/auth/callback?{}", text(&query)).parse::<Uri>() {
            let _ = CallbackQuery::parse(&uri);
        }
        let base = url::Url::parse("https://gw.example").unwrap();
        let back = safe_return_to(Some(&text(&path)), &base);
        prop_assert!(back.starts_with('/') && !back.starts_with("//"), "{}", back);
    }

    #[test]
    fn config_files_load_or_name_each_problem(file in either(CONFIG)) {
        match Config::parse(&text(&file), "hostile.toml", &|_| None) {
            Ok(_) => {}
            Err(e) => {
                prop_assert!(!e.problems.is_empty());
                for p in &e.problems {
                    prop_assert!(!p.key.is_empty() && !p.message.is_empty(), "{:?}", p);
                }
            }
        }
    }
}
