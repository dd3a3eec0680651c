//! The GitHub REST client: who a token belongs to, and their memberships.
//!
//! The base URLs are injectable (GitHub Enterprise Server, or the stand-in in
//! tests and the demo). Every request sends a `User-Agent`, GitHub's media
//! type and API version, has timeouts, and never follows redirects: a
//! redirect would carry the person's token to wherever it points. Failures are
//! sorted into the cases callers must treat differently ([`GithubError`]), and
//! none of them ever reads as "member".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, ETAG, HeaderMap, IF_NONE_MATCH, LINK, USER_AGENT};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::secret::Secret;

/// GitHub's REST API version we speak.
const API_VERSION: &str = "2022-11-28";
/// Items per page asked for; GitHub's maximum.
const PER_PAGE: u32 = 100;
/// Most pages read for one list: 5,000 memberships. More means a broken or
/// hostile answer, not a person.
const MAX_PAGES: usize = 50;
/// Largest body read from GitHub.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What went wrong talking to GitHub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GithubError {
    /// 401: the token was revoked or replaced; the person must log in again.
    #[error("GitHub refused the token (401): it was revoked or replaced")]
    Unauthorized,
    /// 403 or 429 with rate-limit headers: no calls before `reset`.
    #[error("GitHub's rate limit is exhausted{}", reset_note(.reset))]
    RateLimited {
        /// When GitHub says calls may resume, if it said.
        reset: Option<SystemTime>,
    },
    /// 403 for another reason (a token without the needed scope, SSO
    /// enforcement). An org that restricts OAuth apps is not a 403: GitHub
    /// leaves it out of the person's lists.
    #[error("GitHub refused access (403): {0}")]
    Forbidden(String),
    /// 404.
    #[error("GitHub has no such resource (404): {0}")]
    NotFound(String),
    /// Connection failure, timeout or 5xx.
    #[error("GitHub is unavailable: {0}")]
    Unavailable(String),
    /// An answer that cannot be understood: bad JSON, a redirect, an endless
    /// or looping pagination, an oversize body.
    #[error("GitHub sent an answer that cannot be used: {0}")]
    Malformed(String),
}

fn reset_note(reset: &Option<SystemTime>) -> String {
    match reset.and_then(|r| r.duration_since(UNIX_EPOCH).ok()) {
        Some(at) => format!(" until {} (Unix time)", at.as_secs()),
        None => String::new(),
    }
}

/// The person a token belongs to, from `GET /user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubUser {
    /// Numeric id; never reassigned.
    pub id: u64,
    /// Login; can be renamed.
    pub login: String,
    /// Display name, when the person set one.
    pub name: Option<String>,
    /// Avatar image URL.
    pub avatar_url: String,
}

/// `GET /user` as last read, kept so the next read can be conditional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRead {
    /// Who the token belongs to.
    pub user: GithubUser,
    /// The answer's ETag, if GitHub sent one.
    pub etag: Option<String>,
}

/// One page of a list as last read, kept so the next read can be conditional.
/// (Its URL is not kept: it is the list's first URL or the page before's
/// `next`, and the cache holds a list per person.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPage<T> {
    /// Its ETag, if GitHub sent one.
    pub etag: Option<String>,
    /// The URL of the next page, from the `Link` header.
    pub next: Option<String>,
    /// The page's items.
    pub items: Vec<T>,
}

/// A whole list as read page by page, with what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagedList<T> {
    /// The pages, in order.
    pub pages: Vec<CachedPage<T>>,
    /// Requests made for this read (not shared: each read counts its own).
    #[serde(skip)]
    pub requests: u32,
    /// How many of them GitHub answered 304 (free of rate limit).
    #[serde(skip)]
    pub not_modified: u32,
}

impl<T> PagedList<T> {
    /// Every item of every page, borrowed.
    pub fn items_iter(&self) -> impl Iterator<Item = &T> {
        self.pages.iter().flat_map(|p| p.items.iter())
    }
}

impl<T: Clone> PagedList<T> {
    /// Every item of every page.
    pub fn items(&self) -> Vec<T> {
        self.pages
            .iter()
            .flat_map(|p| p.items.iter().cloned())
            .collect()
    }

    /// True when every request was answered 304: nothing changed.
    pub fn unchanged(&self) -> bool {
        self.requests > 0 && self.requests == self.not_modified
    }
}

/// An organisation as list items name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRef {
    /// Its login (name).
    pub login: String,
    /// Its numeric id, which webhooks use; 0 if GitHub left it out.
    #[serde(default)]
    pub id: u64,
}

/// An item of `GET /user/memberships/orgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMembershipItem {
    /// Whether the membership counts yet.
    pub state: OrgState,
    /// The organisation.
    #[serde(rename = "organization")]
    pub org: OrgRef,
}

/// The state of an org membership, as GitHub names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgState {
    /// A member.
    Active,
    /// Invited, not yet a member: grants nothing.
    Pending,
    /// Anything GitHub adds later: grants nothing either.
    #[serde(other)]
    Other,
}

/// An item of `GET /user/teams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamItem {
    /// The team's numeric id, which webhooks use; 0 if GitHub left it out.
    #[serde(default)]
    pub id: u64,
    /// The team's slug.
    pub slug: String,
    /// The team's organisation.
    #[serde(rename = "organization")]
    pub org: OrgRef,
}

/// A client for one GitHub instance.
#[derive(Debug, Clone)]
pub struct GithubClient {
    http: reqwest::Client,
    api_url: String,
    metrics: Option<Metrics>,
}

/// The answer to one GET.
enum Got {
    Body { bytes: Vec<u8>, headers: HeaderMap },
    NotModified,
}

impl GithubClient {
    /// A client for the REST API at `api_url` (no trailing slash), with
    /// a 10-second timeout per request.
    pub fn new(api_url: &str) -> Result<Self, reqwest::Error> {
        Self::with_timeout(api_url, Duration::from_secs(10))
    }

    /// Like [`GithubClient::new`] with another timeout per request.
    pub fn with_timeout(api_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: http_client(timeout)?,
            api_url: api_url.trim_end_matches('/').to_owned(),
            metrics: None,
        })
    }

    /// The same client, counting its calls in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Counts a call made elsewhere with this client's HTTP client (the
    /// OAuth token exchange).
    pub fn count(&self, endpoint: &'static str, status: Option<u16>) {
        if let Some(m) = &self.metrics {
            m.github(endpoint, status, None);
        }
    }

    /// The HTTP client, shared with the OAuth token exchange.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET /user`: who the token belongs to.
    pub async fn user(&self, token: &Secret<String>) -> Result<GithubUser, GithubError> {
        self.user_read(token, None).await.map(|read| read.user)
    }

    /// `GET /user`, conditional on the previous read's ETag: an unchanged
    /// answer is a free 304 and returns the previous read.
    pub async fn user_read(
        &self,
        token: &Secret<String>,
        previous: Option<&UserRead>,
    ) -> Result<UserRead, GithubError> {
        let url = format!("{}/user", self.api_url);
        let etag = previous.and_then(|p| p.etag.as_deref());
        match self.get(token, "user", &url, etag).await? {
            Got::Body { bytes, headers } => Ok(UserRead {
                user: parse(&bytes)?,
                etag: header(&headers, ETAG),
            }),
            Got::NotModified => previous
                .cloned()
                .ok_or_else(|| GithubError::Malformed("304 without a condition".into())),
        }
    }

    /// `GET /user/memberships/orgs?state=active`, every page. Pass the
    /// previous read to make the requests conditional.
    pub async fn org_memberships(
        &self,
        token: &Secret<String>,
        previous: Option<&PagedList<OrgMembershipItem>>,
    ) -> Result<PagedList<OrgMembershipItem>, GithubError> {
        let first = format!(
            "{}/user/memberships/orgs?state=active&per_page={PER_PAGE}",
            self.api_url
        );
        self.list(token, "orgs", first, previous).await
    }

    /// `GET /user/teams`, every page. Pass the previous read to make the
    /// requests conditional.
    pub async fn teams(
        &self,
        token: &Secret<String>,
        previous: Option<&PagedList<TeamItem>>,
    ) -> Result<PagedList<TeamItem>, GithubError> {
        let first = format!("{}/user/teams?per_page={PER_PAGE}", self.api_url);
        self.list(token, "teams", first, previous).await
    }

    /// Reads a paginated list from `first`, following `Link: rel="next"`
    /// only within the API, at most [`MAX_PAGES`] pages, never the same URL
    /// twice. A page that answers 304 reuses the previous read's copy.
    async fn list<T: DeserializeOwned + Clone>(
        &self,
        token: &Secret<String>,
        endpoint: &'static str,
        first: String,
        previous: Option<&PagedList<T>>,
    ) -> Result<PagedList<T>, GithubError> {
        let mut list = PagedList {
            pages: Vec::new(),
            requests: 0,
            not_modified: 0,
        };
        // Where each page of a list was read from.
        fn urls<'a, T>(
            first: &'a str,
            pages: &'a [CachedPage<T>],
        ) -> impl Iterator<Item = &'a str> {
            std::iter::once(first).chain(pages.iter().filter_map(|p| p.next.as_deref()))
        }
        let mut url = Some(first.clone());
        while let Some(current) = url.take() {
            if list.pages.len() == MAX_PAGES {
                return Err(GithubError::Malformed(format!(
                    "more than {MAX_PAGES} pages"
                )));
            }
            if urls(&first, &list.pages)
                .take(list.pages.len())
                .any(|u| u == current)
            {
                return Err(GithubError::Malformed(format!(
                    "pagination loops back to {current}"
                )));
            }
            let cached = previous.and_then(|prev| {
                urls(&first, &prev.pages)
                    .zip(&prev.pages)
                    .find(|(u, _)| *u == current)
                    .map(|(_, page)| page)
            });
            let etag = cached.and_then(|p| p.etag.as_deref());
            list.requests += 1;
            let page = match self.get(token, endpoint, &current, etag).await? {
                Got::NotModified => {
                    let cached = cached.ok_or_else(|| {
                        GithubError::Malformed("304 for a page never read".into())
                    })?;
                    list.not_modified += 1;
                    cached.clone()
                }
                Got::Body { bytes, headers } => {
                    let mut items: Vec<T> = parse(&bytes)?;
                    items.shrink_to_fit();
                    CachedPage {
                        etag: header(&headers, ETAG),
                        next: next_link(&headers),
                        items,
                    }
                }
            };
            if let Some(next) = &page.next
                && !next.starts_with(&format!("{}/", self.api_url))
            {
                return Err(GithubError::Malformed(format!(
                    "a Link to {next}, outside the API"
                )));
            }
            url = page.next.clone();
            list.pages.push(page);
        }
        // Kept in the cache for every person: no room for pages never read.
        list.pages.shrink_to_fit();
        Ok(list)
    }

    /// One authenticated GET, its status sorted into [`GithubError`].
    async fn get(
        &self,
        token: &Secret<String>,
        endpoint: &'static str,
        url: &str,
        etag: Option<&str>,
    ) -> Result<Got, GithubError> {
        let mut request = self.http.get(url).bearer_auth(token.expose());
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.count(endpoint, None);
                return Err(unavailable(e));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(m) = &self.metrics {
            let remaining = header(&headers, "x-ratelimit-remaining").and_then(|v| v.parse().ok());
            m.github(endpoint, Some(status.as_u16()), remaining);
        }
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Got::NotModified);
        }
        let bytes = read_body(response).await?;
        match status {
            StatusCode::OK => Ok(Got::Body { bytes, headers }),
            StatusCode::UNAUTHORIZED => Err(GithubError::Unauthorized),
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
                match rate_limit_reset(status, &headers) {
                    Some(reset) => Err(GithubError::RateLimited { reset }),
                    None => Err(GithubError::Forbidden(message(&bytes))),
                }
            }
            StatusCode::NOT_FOUND => Err(GithubError::NotFound(url.to_owned())),
            s if s.is_server_error() => Err(GithubError::Unavailable(format!("HTTP {s}"))),
            s if s.is_redirection() => Err(GithubError::Malformed(format!(
                "a redirect (HTTP {s}), which is not followed"
            ))),
            s => Err(GithubError::Malformed(format!("unexpected HTTP {s}"))),
        }
    }
}

/// GitHub's answer to `POST {web_url}/login/device/code`.
#[derive(Deserialize)]
pub struct DeviceCode {
    /// What the device polls with. A credential: whoever holds it may
    /// receive the token once the person approves.
    pub device_code: Secret<String>,
    /// What the person types in at `verification_uri`.
    pub user_code: String,
    /// Where the person goes to approve.
    pub verification_uri: String,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

/// A user token as the token endpoint answered it. A GitHub App's (or an
/// OAuth app's that opted in) expires and comes with a single-use refresh
/// token; an OAuth app's classic token has neither.
#[derive(Debug)]
pub struct UserToken {
    /// The access token (`gho_…`, `ghu_…`).
    pub access: Secret<String>,
    /// Seconds until `access` expires, when it does.
    pub expires_in: Option<u64>,
    /// The refresh token (`ghr_…`), when `access` expires.
    pub refresh: Option<Secret<String>>,
}

/// What a refresh came to, GitHub having answered.
#[derive(Debug)]
pub enum Refreshed {
    /// A new pair; the old one no longer works.
    Token(UserToken),
    /// GitHub refused the refresh token (`bad_refresh_token`,
    /// `invalid_grant`, ...): the authorization is gone.
    Refused(String),
}

/// The token endpoint's errors that mean the refresh token is dead (spent,
/// revoked, expired): the person's authorization is gone.
const REFRESH_TOKEN_DEAD: &[&str] = &["bad_refresh_token", "invalid_grant", "expired_token"];

/// What one poll of the token endpoint with a device code came to.
#[derive(Debug)]
pub enum DevicePoll {
    /// Approved: the person's token.
    Token(UserToken),
    /// Not approved yet.
    Pending,
    /// Polled too soon; GitHub may name a longer interval.
    SlowDown(Option<u64>),
    /// The codes expired.
    Expired,
    /// The person said no.
    Denied,
    /// GitHub's other refusals, by their error code (an unknown or spent
    /// device code, device flow turned off for the app, wrong client id).
    Refused(String),
}

/// The token endpoint's answer: GitHub reports errors with HTTP 200 and an
/// `error` field.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<Secret<String>>,
    error: Option<String>,
    interval: Option<u64>,
    expires_in: Option<u64>,
    refresh_token: Option<Secret<String>>,
}

impl TokenAnswer {
    /// The token, if the answer carries one.
    fn token(&mut self) -> Option<UserToken> {
        Some(UserToken {
            access: self.access_token.take()?,
            expires_in: self.expires_in,
            refresh: self.refresh_token.take(),
        })
    }
}

impl GithubClient {
    /// Starts GitHub's device flow for the OAuth app `client_id` at
    /// `web_url` with `scopes`.
    pub async fn device_code(
        &self,
        web_url: &str,
        client_id: &str,
        scopes: &[String],
    ) -> Result<DeviceCode, GithubError> {
        let scope = scopes.join(" ");
        let form = [("client_id", client_id), ("scope", scope.as_str())];
        let bytes = self
            .post_form(web_url, "/login/device/code", "device_code", &form)
            .await?;
        #[derive(Deserialize)]
        struct Refusal {
            error: String,
        }
        if let Ok(refusal) = serde_json::from_slice::<Refusal>(&bytes) {
            return Err(GithubError::Forbidden(
                crate::excerpt::Excerpt::of(&refusal.error).to_string(),
            ));
        }
        parse(&bytes)
    }

    /// Polls the token endpoint once with a device code.
    pub async fn poll_device(
        &self,
        web_url: &str,
        client_id: &str,
        device_code: &Secret<String>,
    ) -> Result<DevicePoll, GithubError> {
        let form = [
            ("client_id", client_id),
            ("device_code", device_code.expose().as_str()),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ];
        let bytes = self
            .post_form(web_url, "/login/oauth/access_token", "access_token", &form)
            .await?;
        let mut answer: TokenAnswer = parse(&bytes)?;
        Ok(match (answer.token(), answer.error.as_deref()) {
            (Some(token), None) => DevicePoll::Token(token),
            (_, Some("authorization_pending")) => DevicePoll::Pending,
            (_, Some("slow_down")) => DevicePoll::SlowDown(answer.interval),
            (_, Some("expired_token")) => DevicePoll::Expired,
            (_, Some("access_denied")) => DevicePoll::Denied,
            (_, Some(other)) => DevicePoll::Refused(crate::excerpt::Excerpt::of(other).to_string()),
            (None, None) => {
                return Err(GithubError::Malformed(
                    "a token answer with neither a token nor an error".into(),
                ));
            }
        })
    }

    /// Spends `refresh_token` at GitHub's token endpoint
    /// (`grant_type=refresh_token`) for a new pair, as the app `client_id`.
    pub async fn refresh_token(
        &self,
        web_url: &str,
        client_id: &str,
        client_secret: &Secret<String>,
        refresh_token: &Secret<String>,
    ) -> Result<Refreshed, GithubError> {
        let form = [
            ("client_id", client_id),
            ("client_secret", client_secret.expose().as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose().as_str()),
        ];
        let bytes = self
            .post_form(web_url, "/login/oauth/access_token", "refresh_token", &form)
            .await?;
        let mut answer: TokenAnswer = parse(&bytes)?;
        match (answer.token(), answer.error) {
            // Only these say the refresh token itself is dead. Any other
            // error (`incorrect_client_credentials` after a secret was
            // rotated, `unauthorized_client`, ...) is the gateway's own
            // problem: it must not log everyone out.
            (_, Some(error)) if REFRESH_TOKEN_DEAD.contains(&error.as_str()) => {
                Ok(Refreshed::Refused(error))
            }
            (_, Some(error)) => Err(GithubError::Unavailable(format!(
                "GitHub refused the gateway's refresh request: {}; check github.client_id and github.client_secret",
                crate::excerpt::Excerpt::of(&error)
            ))),
            (Some(token), None) => Ok(Refreshed::Token(token)),
            (None, None) => Err(GithubError::Malformed(
                "a token answer with neither a token nor an error".into(),
            )),
        }
    }

    /// Revokes `token` at GitHub, as the OAuth app `client_id` (with its
    /// secret): `DELETE /applications/{client_id}/token`. For a token the
    /// gateway was given but cannot use.
    pub async fn revoke_token(
        &self,
        client_id: &str,
        client_secret: &Secret<String>,
        token: &Secret<String>,
    ) -> Result<(), GithubError> {
        let mut url = url::Url::parse(&self.api_url)
            .map_err(|e| GithubError::Malformed(format!("api_url: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| GithubError::Malformed("api_url cannot take a path".into()))?
            .extend(["applications", client_id, "token"]);
        let response = self
            .http
            .delete(url)
            .basic_auth(client_id, Some(client_secret.expose()))
            .json(&serde_json::json!({ "access_token": token.expose() }))
            .send()
            .await;
        let status = response.as_ref().ok().map(|r| r.status().as_u16());
        self.count("revoke_token", status);
        match response.map_err(unavailable)?.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(GithubError::NotFound("the token".into())),
            s if s.is_server_error() => Err(GithubError::Unavailable(format!("HTTP {s}"))),
            s => Err(GithubError::Malformed(format!("unexpected HTTP {s}"))),
        }
    }

    /// POSTs `form` to `{web_url}{path}` asking for JSON; the body of a 2xx.
    async fn post_form(
        &self,
        web_url: &str,
        path: &str,
        endpoint: &'static str,
        form: &[(&str, &str)],
    ) -> Result<Vec<u8>, GithubError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(format!("{}{path}", web_url.trim_end_matches('/')))
            .header(ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.count(endpoint, None);
                return Err(unavailable(e));
            }
        };
        let status = response.status();
        self.count(endpoint, Some(status.as_u16()));
        match status {
            s if s.is_success() => read_body(response).await,
            s if s.is_server_error() => Err(GithubError::Unavailable(format!("HTTP {s}"))),
            StatusCode::TOO_MANY_REQUESTS => Err(GithubError::RateLimited { reset: None }),
            s => Err(GithubError::Malformed(format!(
                "unexpected HTTP {s} from {path}"
            ))),
        }
    }
}

/// The HTTP client for everything that talks to GitHub.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        "application/vnd.github+json".parse().expect("valid header"),
    );
    headers.insert(
        "x-github-api-version",
        API_VERSION.parse().expect("valid header"),
    );
    headers.insert(
        USER_AGENT,
        concat!("channelgate/", env!("CARGO_PKG_VERSION"))
            .parse()
            .expect("valid header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        // Following a redirect would hand the token to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .build()
}

fn unavailable(e: reqwest::Error) -> GithubError {
    if e.is_timeout() {
        GithubError::Unavailable("timed out".into())
    } else {
        GithubError::Unavailable(format!("request failed: {e}"))
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, GithubError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(GithubError::Malformed(format!(
                "a body over {MAX_BODY_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GithubError> {
    serde_json::from_slice(bytes).map_err(|e| GithubError::Malformed(format!("bad JSON: {e}")))
}

/// GitHub's `message` field, shortened, for logs.
fn message(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    serde_json::from_slice::<Message>(bytes)
        .map(|m| m.message.chars().take(200).collect())
        .unwrap_or_else(|_| "no message".into())
}

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// For a 403 or 429: `Some(reset)` when it is a rate limit (primary, with
/// `x-ratelimit-remaining: 0`, or secondary, with `retry-after` or a 429),
/// `None` for an ordinary refusal.
pub(crate) fn rate_limit_reset(
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Option<SystemTime>> {
    let number = |name: &str| header(headers, name).and_then(|v| v.trim().parse::<u64>().ok());
    // Absurd values must not overflow: a reset that cannot be represented
    // counts as unknown, and callers cap the wait anyway.
    if let Some(seconds) = number("retry-after") {
        return Some(SystemTime::now().checked_add(Duration::from_secs(seconds)));
    }
    if number("x-ratelimit-remaining") == Some(0) {
        return Some(
            number("x-ratelimit-reset")
                .and_then(|t| UNIX_EPOCH.checked_add(Duration::from_secs(t))),
        );
    }
    (status == StatusCode::TOO_MANY_REQUESTS).then_some(None)
}

/// The `rel="next"` URL of a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = header(headers, LINK)?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn next_link_reads_githubs_link_header() {
        let h = headers(&[(
            "link",
            r#"<https://api.github.com/user/teams?per_page=100&page=2>; rel="next", <https://api.github.com/user/teams?per_page=100&page=5>; rel="last""#,
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/user/teams?per_page=100&page=2")
        );
        let last = headers(&[(
            "link",
            r#"<https://x/a?page=1>; rel="prev", <https://x/a?page=1>; rel="first""#,
        )]);
        assert_eq!(next_link(&last), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn rate_limits_are_told_apart_from_refusals() {
        let primary = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000000"),
        ]);
        assert_eq!(
            rate_limit_reset(StatusCode::FORBIDDEN, &primary),
            Some(Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)))
        );
        let secondary = headers(&[("retry-after", "60")]);
        assert!(matches!(
            rate_limit_reset(StatusCode::TOO_MANY_REQUESTS, &secondary),
            Some(Some(_))
        ));
        let absurd = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "18446744073709551615"),
        ]);
        assert_eq!(rate_limit_reset(StatusCode::FORBIDDEN, &absurd), Some(None));
        let absurd = headers(&[("retry-after", "18446744073709551615")]);
        assert_eq!(
            rate_limit_reset(StatusCode::TOO_MANY_REQUESTS, &absurd),
            Some(None)
        );
        let refused = headers(&[("x-ratelimit-remaining", "4999")]);
        assert_eq!(rate_limit_reset(StatusCode::FORBIDDEN, &refused), None);
        assert_eq!(
            rate_limit_reset(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new()),
            Some(None)
        );
    }

    #[test]
    fn items_parse_from_githubs_shapes() {
        let orgs: Vec<OrgMembershipItem> = parse(
            br#"[{"url":"u","state":"active","role":"member","organization":{"login":"acme","id":1}}]"#,
        )
        .unwrap();
        assert_eq!((orgs[0].org.login.as_str(), orgs[0].org.id), ("acme", 1));
        assert_eq!(orgs[0].state, OrgState::Active);
        let odd: Vec<OrgMembershipItem> =
            parse(br#"[{"state":"suspended","organization":{"login":"x"}}]"#).unwrap();
        assert_eq!(odd[0].state, OrgState::Other);
        let teams: Vec<TeamItem> =
            parse(br#"[{"id":1,"name":"Secret Agents","slug":"secret-agents","organization":{"login":"acme"}}]"#)
                .unwrap();
        assert_eq!(
            (
                teams[0].org.login.as_str(),
                teams[0].slug.as_str(),
                teams[0].id
            ),
            ("acme", "secret-agents", 1)
        );
        assert!(matches!(
            parse::<Vec<TeamItem>>(b"[{\"slug\":"),
            Err(GithubError::Malformed(_))
        ));
    }
}
