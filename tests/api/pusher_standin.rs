//! A stand-in for Pusher's HTTP API: records each terminate call and checks
//! its signature the way a Pusher server does (sorted query, body MD5,
//! HMAC-SHA256 with the app secret), independently of the gateway's code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::post;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use tokio::net::TcpListener;

use crate::helpers::{PUSHER_KEY, PUSHER_SECRET};

/// One call as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub app_id: String,
    pub user_id: String,
    pub body: String,
    /// Whether the signature, key and body MD5 checked out.
    pub signed: bool,
    /// The status answered.
    pub status: u16,
}

#[derive(Default)]
struct St {
    calls: Vec<Call>,
    /// Answer this status to the next N calls.
    failures: Vec<u16>,
    /// How long each answer takes.
    delay: Duration,
}

#[derive(Clone)]
pub struct PusherStandIn {
    pub url: String,
    st: Arc<Mutex<St>>,
}

impl PusherStandIn {
    pub async fn spawn() -> Self {
        let st = Arc::new(Mutex::new(St::default()));
        let app = Router::new()
            .route(
                "/apps/{app_id}/users/{user_id}/terminate_connections",
                post(terminate),
            )
            .with_state(st.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, st }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.st.lock().unwrap().calls.clone()
    }

    /// The user ids whose connections were ended (calls answered 200).
    pub fn terminated(&self) -> Vec<u64> {
        self.calls()
            .iter()
            .filter(|c| c.status == 200)
            .map(|c| c.user_id.parse().unwrap())
            .collect()
    }

    /// Answers `statuses` to the next calls, in order.
    /// Every answer from now on takes `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.st.lock().unwrap().delay = delay;
    }

    pub fn fail_next(&self, statuses: &[u16]) {
        self.st.lock().unwrap().failures = statuses.to_vec();
    }

    /// Waits up to `within` for a terminate call for `user`; true if one came.
    pub async fn wait_for_terminate(&self, user: u64, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.terminated().contains(&user) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

async fn terminate(
    State(st): State<Arc<Mutex<St>>>,
    Path((app_id, user_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let path = format!("/apps/{app_id}/users/{user_id}/terminate_connections");
    let signed = check(&path, query.as_deref().unwrap_or(""), &body);
    let delay = st.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let mut st = st.lock().unwrap();
    let (status, answer) = if !st.failures.is_empty() {
        (st.failures.remove(0), "{\"error\":\"try later\"}")
    } else if signed {
        (200, "{\"ok\":true}")
    } else {
        (401, "{\"error\":\"Invalid signature\"}")
    };
    st.calls.push(Call {
        app_id,
        user_id,
        body: String::from_utf8_lossy(&body).into_owned(),
        signed,
        status,
    });
    (StatusCode::from_u16(status).unwrap(), answer)
}

/// Pusher's check: every auth parameter present, the key ours, the body's
/// MD5 right, the signature over the sorted, unescaped query.
fn check(path: &str, query: &str, body: &[u8]) -> bool {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let Some(at) = pairs.iter().position(|(k, _)| k == "auth_signature") else {
        return false;
    };
    let (_, signature) = pairs.remove(at);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let md5: String = Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if get("auth_key").as_deref() != Some(PUSHER_KEY)
        || get("auth_version").as_deref() != Some("1.0")
        || get("body_md5") != Some(md5)
    {
        return false;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let Some(at) = get("auth_timestamp").and_then(|t| t.parse::<u64>().ok()) else {
        return false;
    };
    if now.abs_diff(at) > 600 {
        return false;
    }
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(PUSHER_SECRET.as_bytes()).unwrap();
    mac.update(format!("POST\n{path}\n{}", query.join("&")).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == signature
}
