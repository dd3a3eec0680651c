//! Request bodies as the gateway reads them: read whole up to a route's
//! limit (413 past it, the same on every route), a form or JSON, told apart
//! by `Content-Type`; a form's fields decoded once, each named one taken
//! only when it appears at most once. The Pusher endpoints parse their own
//! fields with these; the small bodies of the gateway's own routes (token
//! names, device codes) are one string field.
//!
//! A body is also paced ([`Paced`], put on every request by
//! [`super::serve`]): it must arrive within `server.header_timeout` of its
//! headers, plus a second for every [`MIN_BODY_RATE`] bytes received, or
//! the answer is 408. A client that trickles a body therefore holds its
//! connection slot for about `header_timeout`, not the whole
//! `request_timeout`.

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt as _;

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

/// Largest body of the gateway's own small routes (token names, device
/// codes).
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The body of one of the small routes, up to [`MAX_BODY_BYTES`] (see
/// [`read_up_to`]).
pub async fn read(body: Body) -> Result<Bytes, ApiError> {
    read_up_to(body, MAX_BODY_BYTES).await
}

/// The body, whole, if it has at most `limit` bytes: every route reads its
/// body through here. Past the limit the answer is 413 naming it, as soon
/// as a `Content-Length` or the bytes received show it; a body that cannot
/// be read (the client hung up, say) is a 400; one that arrives too slowly
/// (see [`Paced`]) a 408.
pub async fn read_up_to(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    read_up_to_with(body, limit, |_| {}).await
}

/// [`read_up_to`], showing each chunk to `seen` as it arrives (the webhook
/// route computes its HMAC so, while the body streams).
pub async fn read_up_to_with(
    body: Body,
    limit: usize,
    mut seen: impl FnMut(&[u8]),
) -> Result<Bytes, ApiError> {
    let too_large = || too_large(limit);
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let unreadable = |e: axum::Error| {
        if is_too_slow(&e) {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body arrived too slowly (server.header_timeout)",
            )
        } else {
            ApiError::bad_request(format!("the request body cannot be read: {e}"))
        }
    };
    let mut stream = body.into_data_stream();
    let (mut chunks, mut total) = (Vec::new(), 0);
    while let Some(chunk) = stream.next().await.transpose().map_err(unreadable)? {
        total += chunk.len();
        if total > limit {
            return Err(too_large());
        }
        seen(&chunk);
        chunks.push(chunk);
    }
    // Most bodies come in one chunk: it is kept as it is, not copied.
    Ok(match chunks.len() {
        1 => chunks.swap_remove(0),
        _ => chunks.concat().into(),
    })
}

/// The 413 for a body over `limit` bytes, the same on every route.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over {limit} bytes, the most this route accepts"),
    )
}

/// Whether a body's error is [`TooSlow`], however wrapped.
fn is_too_slow(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<TooSlow>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Bytes a second a body may arrive at, beyond `server.header_timeout`.
pub const MIN_BODY_RATE: u64 = 16 * 1024;

/// A body that arrived too slowly (see [`Paced`]).
#[derive(Debug)]
pub struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for TooSlow {}

/// A request body with a deadline: `grace` (`server.header_timeout`) from
/// when the request was dispatched, pushed back one second for every
/// [`MIN_BODY_RATE`] bytes that arrive. Past it, the body gives
/// [`TooSlow`] instead of waiting on. Only a body the handler waits for is
/// timed: bytes already received are always handed over.
pub struct Paced<B> {
    inner: B,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Paced<B> {
    /// `inner`, due within `grace` unless it keeps arriving.
    pub fn new(inner: B, grace: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(grace)),
        }
    }
}

impl<B> hyper::body::Body for Paced<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let more = Duration::from_secs_f64(data.len() as f64 / MIN_BODY_RATE as f64);
                    let later = this.deadline.deadline() + more;
                    this.deadline.as_mut().reset(later);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(TooSlow)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
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

    /// A body that arrives in these chunks, with no declared length.
    fn streamed(chunks: Vec<Result<&'static [u8], std::io::Error>>) -> Body {
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn a_body_is_read_whole_up_to_its_limit_and_413_past_it() {
        let whole = read_up_to(streamed(vec![Ok(b"abc"), Ok(b"de")]), 5).await;
        assert_eq!(&whole.unwrap()[..], b"abcde");
        let over = read_up_to(streamed(vec![Ok(b"abc"), Ok(b"def")]), 5)
            .await
            .unwrap_err();
        assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            over.message(),
            "the request body is over 5 bytes, the most this route accepts"
        );
        // A declared length past the limit is refused before anything is read.
        let declared = read_up_to(Body::from(vec![b'x'; 6]), 5).await.unwrap_err();
        assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(read_up_to(Body::empty(), 5).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_body_that_keeps_arriving_is_read_and_one_that_stops_is_408() {
        // 4 KiB every 0.1 s (a quarter second of allowance each) for 2 s:
        // far past a 0.1 s grace, yet steady.
        let steady = futures_util::stream::unfold(0, |n| async move {
            if n == 20 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(900)).await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 16 * 1024])),
                n + 1,
            ))
        });
        let body = Body::new(Paced::new(
            Body::from_stream(steady),
            Duration::from_secs(1),
        ));
        let read = read_up_to(body, 1 << 20).await.unwrap();
        assert_eq!(read.len(), 20 * 16 * 1024);
        // Two bytes, then nothing: cut off, not waited for.
        let stalled =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"ab"))])
                .chain(futures_util::stream::pending());
        let body = Body::new(Paced::new(
            Body::from_stream(stalled),
            Duration::from_secs(1),
        ));
        let e = read_up_to(body, 100).await.unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn a_body_that_breaks_off_is_a_400() {
        let broken = streamed(vec![Ok(b"ab"), Err(std::io::Error::other("reset by peer"))]);
        let e = read_up_to(broken, 5).await.unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message().contains("cannot be read"), "{}", e.message());
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
