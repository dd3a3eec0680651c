//! Small helpers: form parameters, credentials, headers, JSON answers.

use super::*;

/// Decoded `name=value` pairs of a query string or form body, in order.
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(s: &str) -> Self {
        Self(
            url::form_urlencoded::parse(s.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A stable id for an organization or team, from its lowercased name.
pub(crate) fn derived_id(kind: &str, name: &str) -> u64 {
    let digest = Sha256::digest(format!("{kind}:{}", name.to_ascii_lowercase()).as_bytes());
    let n = digest
        .iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    10_000_000 + n % 90_000_000
}

/// A team's display name made from its slug (`tea-party` → `Tea party`), so
/// that clients which confuse name and slug are caught.
pub(crate) fn team_name(slug: &str) -> String {
    let words = slug.replace(['-', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Scopes as requested (space- or comma-separated), without duplicates.
pub(crate) fn split_scopes(raw: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in raw.split([' ', ',']).filter(|s| !s.is_empty()) {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}

/// Whether `c` looks like base64url-no-pad of a SHA-256 digest.
pub(crate) fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43 && URL_SAFE_NO_PAD.decode(c).is_ok_and(|d| d.len() == 32)
}

/// RFC 7636: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub(crate) fn is_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The token from `Authorization: Bearer T` or `Authorization: token T`.
pub(crate) fn presented_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.to_owned())
        .filter(|t| !t.is_empty())
}

/// Client credentials from HTTP Basic auth. Each half is form-urlencoded
/// first (RFC 6749 §2.3.1, as the `oauth2` crate does), so it is decoded.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Decodes one `application/x-www-form-urlencoded` component.
pub(crate) fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether `If-None-Match` names `etag` (weak comparison) or is `*`.
pub(crate) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

pub(crate) fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    json_text_response(status, body.to_string())
}

pub(crate) fn json_text_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, Body::from(body)).into_response();
    let h = r.headers_mut();
    put(h, "content-type", "application/json; charset=utf-8");
    put(h, "x-github-media-type", "github.v3; format=json");
    put(h, "x-github-api-version-selected", "2022-11-28");
    r
}

/// A token-endpoint error: HTTP 200 with an `error` field, as GitHub does.
pub(crate) fn token_error(error: &str, description: &str, anchor: &str) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "error": error,
            "error_description": description,
            "error_uri": format!("{TOKEN_ERRORS}/{anchor}"),
        }),
    )
}

/// `302 Found` to `to`.
pub(crate) fn found(to: &Url) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    put(r.headers_mut(), "location", to.as_str());
    r
}

pub(crate) fn error_redirect(
    redirect: &Url,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Response {
    let mut to = redirect.clone();
    {
        let mut q = to.query_pairs_mut();
        q.append_pair("error", error);
        q.append_pair("error_description", description);
        q.append_pair(
            "error_uri",
            &format!("{AUTHORIZE_ERRORS}/#{}", error.replace('_', "-")),
        );
        if let Some(state) = state {
            q.append_pair("state", state);
        }
    }
    found(&to)
}

pub(crate) fn access_denied(redirect: &Url, state: Option<&str>) -> Response {
    error_redirect(
        redirect,
        "access_denied",
        "The user has denied your application access.",
        state,
    )
}
