//! Request bodies past a route's limit: every route that reads a body
//! answers 413 naming its limit, whether the client declares the size or
//! streams the body in chunks, and reads no further.

use github_standin::Endpoint;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{Browser, TestApp};

/// The routes that read a body, each with its limit in bytes.
const ROUTES: &[(&str, usize)] = &[
    ("/pusher/auth", 32 * 1024),
    ("/pusher/user-auth", 32 * 1024),
    ("/auth/device", 4 * 1024),
    ("/auth/device/token", 4 * 1024),
    ("/auth/tokens", 4 * 1024),
    ("/github/webhook", 1024 * 1024),
];

/// A form body of exactly `len` bytes.
fn form_of(len: usize) -> String {
    let mut body = "socket_id=1.1&name=".to_owned();
    body.push_str(&"x".repeat(len - body.len()));
    body
}

/// `POST path` with a form body of `len` bytes, sent as the gateway's own
/// page would send it (its `Origin`), from a browser that is not logged in,
/// with the event headers of a webhook delivery (the other routes ignore
/// them).
async fn post_of_size(app: &TestApp, path: &str, len: usize) -> (StatusCode, Value) {
    let response = Browser::new()
        .http
        .post(app.url(path))
        .header("origin", &app.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-github-event", "ping")
        .header("x-github-delivery", "d-413")
        .body(form_of(len))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_body_one_byte_over_the_limit_gets_413_naming_the_limit_on_every_route() {
    let app = TestApp::new().with_webhooks().spawn().await;
    for &(path, limit) in ROUTES {
        let (status, body) = post_of_size(&app, path, limit + 1).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("over {limit} bytes")),
            "{path}: {body}"
        );
    }
    // Refused before any work: no device login was started at GitHub.
    assert_eq!(app.github.calls(Endpoint::DeviceCode), 0);
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_read_and_answered_on_its_merits() {
    let app = TestApp::new().with_webhooks().spawn().await;
    for &(path, limit) in ROUTES {
        let (status, body) = post_of_size(&app, path, limit).await;
        // Each refuses it for what it says (no session, no signature, a
        // name too long...), not for its size.
        assert!(
            status.is_client_error() && status != StatusCode::PAYLOAD_TOO_LARGE,
            "{path}: {status} {body}"
        );
    }
}

/// The status code of the answer to `request`, sent as raw bytes.
async fn raw_status(app: &TestApp, request: &[u8]) -> u16 {
    let addr = app.url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The gateway may answer and close before it has read everything.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    status.parse().unwrap()
}

/// `POST /auth/device/token` with a body of `chunks` chunks of 1000 bytes,
/// chunked: no length is declared.
fn chunked(app: &TestApp, chunks: usize) -> Vec<u8> {
    let mut request = format!(
        "POST /auth/device/token HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        app.url.strip_prefix("http://").unwrap()
    )
    .into_bytes();
    for _ in 0..chunks {
        request.extend_from_slice(b"3e8\r\n");
        request.extend_from_slice(&[b'x'; 1000]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

#[tokio::test]
async fn a_chunked_body_without_a_length_gets_413_once_it_passes_the_limit() {
    let app = TestApp::new().spawn().await;
    // The limit of 4096 bytes is passed in the fifth chunk.
    assert_eq!(raw_status(&app, &chunked(&app, 5)).await, 413);
    // Four fit: the answer is about the missing device code, not the size.
    assert_eq!(raw_status(&app, &chunked(&app, 4)).await, 400);
}
