//! Request bodies as the gateway reads them: a form or JSON, told apart
//! by `Content-Type`; a form's fields decoded once, each named one taken
//! only when it appears at most once. The Pusher endpoints parse their own
//! fields with these; the small bodies of the gateway's own routes (token
//! names, device codes) are one string field.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;

use super::error::ApiError;

/// The body's format.
pub enum Format {
    /// `application/x-www-form-urlencoded` (what pusher-js sends).
    Form,
    /// `application/json`.
    Json,
}

/// The format `Content-Type` names (parameters such as `charset` aside),
/// if it is one of the two.
pub fn format_of(headers: &HeaderMap) -> Option<Format> {
    let content_type = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Some(Format::Form)
    } else if essence.eq_ignore_ascii_case("application/json") {
        Some(Format::Json)
    } else {
        None
    }
}

/// A decoded form: borrowed from the body unless a value had escapes.
pub type Fields<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// The fields of a form body.
pub fn form_fields(body: &[u8]) -> Fields<'_> {
    url::form_urlencoded::parse(body).collect()
}

/// The single value of `name` in a form, refusing repeated fields.
pub fn only<'a>(fields: &'a Fields<'_>, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_ref());
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::bad_request(format!(
            "{name} appears more than once"
        )));
    }
    Ok(first)
}

/// Largest body these routes read.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The body, up to [`MAX_BODY_BYTES`].
pub async fn read(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::bad_request(format!("the body is over {MAX_BODY_BYTES} bytes")))
}

/// The single value of `name` in a form or a JSON object (a string), or
/// none; an empty body has none. Anything else is a 400 naming the field.
pub fn field(headers: &HeaderMap, body: &[u8], name: &str) -> Result<Option<String>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    match format_of(headers) {
        Some(Format::Json) => {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the JSON body cannot be read: {e}")))?;
            if !value.is_object() {
                return Err(ApiError::bad_request("the JSON body must be an object"));
            }
            match value.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::bad_request(format!("{name} must be a string"))),
            }
        }
        Some(Format::Form) => Ok(only(&form_fields(body), name)?.map(str::to_owned)),
        None => Err(ApiError::bad_request(format!(
            "send {name} as application/x-www-form-urlencoded or application/json"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn typed(content_type: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h
    }

    #[test]
    fn one_string_field_from_a_form_or_json() {
        let form = typed("application/x-www-form-urlencoded");
        let json = typed("application/json; charset=utf-8");
        assert_eq!(
            field(&form, b"name=a%20b", "name").unwrap().as_deref(),
            Some("a b")
        );
        assert_eq!(
            field(&json, br#"{"name":"a"}"#, "name").unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(field(&json, br#"{"other":1}"#, "name").unwrap(), None);
        assert_eq!(field(&HeaderMap::new(), b"", "name").unwrap(), None);
        for (headers, body) in [
            (&form, &b"name=a&name=b"[..]),
            (&json, br#"{"name":1}"#),
            (&json, br#"["name"]"#),
            (&json, b"{"),
            (&HeaderMap::new(), b"name=a"),
        ] {
            let e = field(headers, body, "name").unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{body:?}");
        }
    }
}
