//! Small request bodies of the gateway's own routes (token names, device
//! codes): one named string field, in a form or a JSON object.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;

use super::error::ApiError;

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
    let essence = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => {
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
        "application/x-www-form-urlencoded" => {
            let mut values = url::form_urlencoded::parse(body).filter(|(k, _)| k == name);
            let first = values.next().map(|(_, v)| v.into_owned());
            if values.next().is_some() {
                return Err(ApiError::bad_request(format!(
                    "{name} appears more than once"
                )));
            }
            Ok(first)
        }
        _ => Err(ApiError::bad_request(format!(
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
