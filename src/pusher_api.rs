//! Pusher's HTTP API, as the gateway calls it: ending a person's connections
//! (`POST /apps/{app_id}/users/{user_id}/terminate_connections`).
//!
//! Every call is signed as Pusher documents: the query carries `auth_key`,
//! `auth_timestamp`, `auth_version` and `body_md5`, and `auth_signature` is
//! the hex HMAC-SHA256 of `"METHOD\nPATH\nQUERY"` with the keys sorted and
//! the values not escaped. A call that fails with a 5xx or a connection
//! error is tried again with growing waits, for up to [`RETRY_FOR`]; a 4xx
//! (a wrong key, an unknown app) is not, since it would fail again.

use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::config::PusherConfig;
use crate::excerpt::Excerpt;
use crate::secret::Secret;

/// How long one call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a failing call is retried before it is given up.
pub const RETRY_FOR: Duration = Duration::from_secs(60);
/// The first wait between attempts; each later one doubles, up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between attempts.
const MAX_WAIT: Duration = Duration::from_secs(8);

/// The body of a terminate call, and its MD5 as Pusher's docs give it.
const EMPTY_OBJECT: &[u8] = b"{}";

/// The signed query string of a Pusher HTTP API call (without the leading
/// `?`), for `method` on `path` with `body` (empty: no `body_md5`) at Unix
/// time `timestamp`.
pub fn signed_query(
    key: &str,
    secret: &Secret<String>,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
) -> String {
    let mut params = vec![
        ("auth_key", key.to_owned()),
        ("auth_timestamp", timestamp.to_string()),
        ("auth_version", "1.0".to_owned()),
    ];
    if !body.is_empty() {
        params.push(("body_md5", hex::encode(Md5::digest(body))));
    }
    params.sort_by(|a, b| a.0.cmp(b.0));
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let query = query.join("&");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("{method}\n{path}\n{query}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    // The key was checked to hold no ':' or spaces; escape it anyway, the
    // server unescapes before it checks the signature.
    let key_escaped: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
    let query = query.replacen(
        &format!("auth_key={key}"),
        &format!("auth_key={key_escaped}"),
        1,
    );
    format!("{query}&auth_signature={signature}")
}

/// Why a terminate call was given up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Pusher refused the call (4xx): retrying would not help.
    #[error("Pusher refused the call with {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// An excerpt of Pusher's answer.
        message: String,
    },
    /// Every attempt failed with a 5xx, a timeout or a connection error.
    #[error("Pusher's HTTP API did not answer after {attempts} attempts over {}s: {last}", .waited.as_secs())]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// How long they took.
        waited: Duration,
        /// The last failure.
        last: String,
    },
}

/// A client of one Pusher app's HTTP API.
#[derive(Debug, Clone)]
pub struct PusherApi {
    http: reqwest::Client,
    api_url: String,
    app_id: String,
    key: String,
    secret: Secret<String>,
    retry_for: Duration,
}

impl PusherApi {
    /// A client for the app `config` names, at [`PusherConfig::api_url`].
    pub fn new(config: &PusherConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            api_url: config.api_url(),
            app_id: config.app_id.clone(),
            key: config.key.clone(),
            secret: config.secret.clone(),
            retry_for: RETRY_FOR,
        })
    }

    /// The same client, giving up after `retry_for` (tests shorten it).
    pub fn retrying_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// Ends every connection of user `user_id` (a GitHub id, as in presence
    /// data and `pusher.signin()`), retrying 5xx and connection errors.
    pub async fn terminate_connections(&self, user_id: u64) -> Result<(), CallError> {
        let path = format!(
            "/apps/{}/users/{user_id}/terminate_connections",
            url_path_segment(&self.app_id)
        );
        let started = tokio::time::Instant::now();
        let mut wait = FIRST_WAIT;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = match self.post(&path, EMPTY_OBJECT).await {
                Ok(()) => return Ok(()),
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Retry(why)) => why,
            };
            if started.elapsed() + wait > self.retry_for {
                return Err(CallError::GaveUp {
                    attempts,
                    waited: started.elapsed(),
                    last,
                });
            }
            tracing::debug!(user_id, attempts, %last, ?wait, "Pusher API call failed; trying again");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_WAIT);
        }
    }

    /// One signed POST.
    async fn post(&self, path: &str, body: &'static [u8]) -> Result<(), Failure> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let query = signed_query(&self.key, &self.secret, "POST", path, body, timestamp);
        let url = format!("{}{path}?{query}", self.api_url);
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            // Without the URL: its query carries the signature.
            .map_err(|e| Failure::Retry(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let message = Excerpt::of(&text).to_string();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(Failure::Retry(format!("{status}: {message}")))
        } else {
            Err(Failure::Refused(CallError::Refused {
                status: status.as_u16(),
                message,
            }))
        }
    }
}

/// One attempt's failure.
enum Failure {
    Refused(CallError),
    Retry(String),
}

/// `segment` escaped for a URL path (app ids are digits on hosted Pusher,
/// but a self-hosted server may use any name).
fn url_path_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_pushers_documented_example() {
        // https://pusher.com/docs/channels/library_auth_reference/rest-api/#worked-authentication-example
        let secret = Secret::new("7ad3773142a6692b25b8".to_owned());
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let query = signed_query(
            "278d425bdf160c739803",
            &secret,
            "POST",
            "/apps/3/events",
            body,
            1353088179,
        );
        assert_eq!(
            query,
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn a_terminate_body_carries_the_md5_of_an_empty_object() {
        let secret = Secret::new("s".to_owned());
        let query = signed_query(
            "k",
            &secret,
            "POST",
            "/apps/1/users/2/terminate_connections",
            EMPTY_OBJECT,
            1,
        );
        assert!(
            query.contains("body_md5=99914b932bd37a50b983c5e7c90ae93b"),
            "{query}"
        );
        let bare = signed_query("k", &secret, "GET", "/apps/1/channels", b"", 1);
        assert!(!bare.contains("body_md5"), "{bare}");
    }

    #[test]
    fn app_ids_are_escaped_in_the_path() {
        assert_eq!(url_path_segment("1234"), "1234");
        assert_eq!(url_path_segment("demo app/1"), "demo%20app%2F1");
    }
}
