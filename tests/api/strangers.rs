//! What a stranger can do to the gateway over the network, from the second
//! security review (issue 25): webhooks that are not GitHub's, log floods,
//! slow clients and the metrics listener. Each test is the attack as
//! requests, measured by counts (log lines, GitHub calls, answers), never
//! by time.

use std::time::Duration;

use github_standin::{Endpoint, signature_256};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{Browser, TestApp, WEBHOOK_SECRET, capture_info_logs};

/// Reads until the head of an answer has arrived; `None` if none came
/// within `patience`, or the connection closed first.
async fn answer_head(stream: &mut TcpStream, patience: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    match tokio::time::timeout(patience, read).await {
        Ok(true) => Some(String::from_utf8_lossy(&got).into_owned()),
        _ => None,
    }
}

/// Reads until the server closes; `None` if it is still open after `patience`.
async fn closed_within(stream: &mut TcpStream, patience: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(patience, read)
        .await
        .ok()
        .map(|()| got)
}

/// A webhook request of 1 MiB whose headers and first KiB are sent, the
/// rest held back; `signature` is sent as `X-Hub-Signature-256` if any.
async fn held_webhook(app: &TestApp, signature: Option<&str>) -> TcpStream {
    let mut stream = TcpStream::connect(app.gateway.addr()).await.unwrap();
    let signature = signature
        .map(|s| format!("X-Hub-Signature-256: {s}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /github/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: membership\r\nX-GitHub-Delivery: d-held\r\n{signature}Content-Length: {}\r\n\r\n",
        1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b' '; 1024]).await.unwrap();
    stream
}

// ---- webhooks -------------------------------------------------------------

#[tokio::test]
async fn an_unsigned_webhook_is_refused_before_its_body_is_read() {
    let app = TestApp::new().with_webhooks().spawn().await;
    // Twenty strangers each start a 1 MiB body without a signature and
    // hold the rest: every one is answered 401 while still sending, so no
    // body is held in memory waiting to be checked.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(held_webhook(&app, None).await);
    }
    for stream in &mut held {
        let head = answer_head(stream, Duration::from_secs(20))
            .await
            .expect("answered before the body was sent");
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    }
    // A malformed signature is no better than none.
    let mut stream = held_webhook(&app, Some("sha256=abc")).await;
    let head = answer_head(&mut stream, Duration::from_secs(20))
        .await
        .expect("answered before the body was sent");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}

#[tokio::test]
async fn only_a_few_webhook_bodies_are_read_at_once() {
    let app = TestApp::new().with_webhooks().spawn().await;
    // Well-formed signatures that will not match: each body must be read
    // to know it. Four are read at once; the fifth is turned away (503,
    // Retry-After) instead of adding its megabyte to memory.
    let wrong = format!("sha256={}", "0".repeat(64));
    let mut held = Vec::new();
    for _ in 0..channelgate::web::webhook::WEBHOOK_READS {
        held.push(held_webhook(&app, Some(&wrong)).await);
    }
    let mut fifth = held_webhook(&app, Some(&wrong)).await;
    let head = answer_head(&mut fifth, Duration::from_secs(20))
        .await
        .expect("the fifth is answered, not left waiting for its body to be read");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    // Once the held ones go, a genuine delivery is read and handled.
    drop(held);
    let body = json!({"zen": "Keep it logically awesome."}).to_string();
    let response = reqwest::Client::new()
        .post(app.url("/github/webhook"))
        .header("x-github-event", "ping")
        .header("x-github-delivery", "d-ping")
        .header(
            "x-hub-signature-256",
            signature_256(WEBHOOK_SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Posts `body`, signed, as delivery `delivery` of `membership`.
async fn deliver_signed(app: &TestApp, delivery: &str, body: &str) -> StatusCode {
    reqwest::Client::new()
        .post(app.url("/github/webhook"))
        .header("content-type", "application/json")
        .header("x-github-event", "membership")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            signature_256(WEBHOOK_SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
}

/// A signed-looking `membership.added` for ada (id 1), told apart by `n`.
fn ada_added(n: u64) -> String {
    json!({
        "action": "added",
        "scope": "team",
        "member": { "login": "ada", "id": 1 },
        "team": { "id": github_standin::team_id("initech", "ops"), "slug": "ops" },
        "organization": { "login": "initech", "id": 1 },
        "sender": { "login": "admin", "id": 1000 + n },
    })
    .to_string()
}

fn reads(app: &TestApp) -> u64 {
    app.github.calls(Endpoint::User)
        + app.github.calls(Endpoint::OrgMemberships)
        + app.github.calls(Endpoint::Teams)
}

#[tokio::test]
async fn a_signed_body_replayed_with_fresh_delivery_ids_causes_no_reread() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    let body = ada_added(0);
    assert_eq!(
        deliver_signed(&app, "d-first", &body).await,
        StatusCode::ACCEPTED
    );
    app.settled().await;
    let after_first = reads(&app);
    // Someone captured that delivery: the id and the event are not signed,
    // so they replay it with new ids.
    for i in 0..50 {
        let status = deliver_signed(&app, &format!("d-replay-{i}"), &body).await;
        assert_eq!(status, StatusCode::OK, "a replay is a 2xx with no effect");
    }
    app.settled().await;
    assert_eq!(reads(&app), after_first, "no GitHub read for a replay");
}

#[tokio::test]
async fn webhooks_naming_one_person_are_coalesced_into_few_rereads() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    // GitHub answers slowly; thirty genuine (distinct, signed) deliveries
    // name ada meanwhile.
    app.github.set_delay(Duration::from_millis(400));
    let before = app.github.calls(Endpoint::User);
    for i in 0..30 {
        let status = deliver_signed(&app, &format!("d-{i}"), &ada_added(i)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    app.settled().await;
    let rereads = app.github.calls(Endpoint::User) - before;
    assert!(
        (1..=3).contains(&rereads),
        "30 deliveries for one person made {rereads} re-reads"
    );
}

// ---- logs -----------------------------------------------------------------

#[tokio::test]
async fn distinct_origins_do_not_make_distinct_log_lines() {
    let (captured, _guard) = capture_info_logs();
    let app = TestApp::new().spawn().await;
    let http = reqwest::Client::new();
    for i in 0..100 {
        let response = http
            .post(app.url("/pusher/auth"))
            .header("origin", format!("https://evil-{i}.example"))
            .form(&[("socket_id", "1.2"), ("channel_name", "private-ops")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let log = captured.text();
    let lines = log.lines().filter(|l| l.contains("origin")).count();
    assert_eq!(lines, 1, "{log}");
}

#[tokio::test]
async fn callbacks_are_limited_per_address_and_logged_once_a_minute() {
    let (captured, _guard) = capture_info_logs();
    let app = TestApp::new()
        .with_config(|c| c.limits.login_per_minute = 5)
        .spawn()
        .await;
    let http = reqwest::Client::new();
    let mut refused = 0;
    for i in 0..100 {
        let response = http
            .get(app.url(&format!("/auth/callback?code=c{i}&state=s{i}")))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
            assert!(response.headers().contains_key("retry-after"));
        }
    }
    assert!(refused >= 90, "only {refused} of 100 callbacks refused");
    let log = captured.text();
    let lines = log.lines().filter(|l| l.contains("login refused")).count();
    assert!(lines <= 2, "{lines} lines for 100 callbacks:\n{log}");
}

#[tokio::test]
async fn denials_of_many_channels_are_summarized_per_person() {
    let (captured, _guard) = capture_info_logs();
    let app = TestApp::new().spawn().await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    for i in 0..200 {
        let (status, _) = bo.auth(&app, &format!("private-ops-{i}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    app.state().quiet.flush();
    let log = captured.text();
    let lines = log
        .lines()
        .filter(|l| l.contains("decision=\"deny\"") || l.contains("decision=deny"))
        .count();
    assert!(lines <= 5, "{lines} denial lines for 200 channels:\n{log}");
}

// ---- slow clients ---------------------------------------------------------

#[tokio::test]
async fn a_slow_body_does_not_hold_its_slot_for_the_request_timeout() {
    let app = TestApp::new()
        .with_config(|c| {
            c.server.header_timeout = Duration::from_secs(1);
            c.server.request_timeout = Duration::from_secs(3600);
        })
        .spawn()
        .await;
    let mut stream = TcpStream::connect(app.gateway.addr()).await.unwrap();
    stream
        .write_all(
            b"POST /pusher/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nsocket_id=1",
        )
        .await
        .unwrap();
    let head = answer_head(&mut stream, Duration::from_secs(30))
        .await
        .expect("a body that stops arriving is answered long before request_timeout");
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
}

/// A connection to `app` from the loopback address `from`.
async fn connect_from(app: &TestApp, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(app.gateway.addr()).await.unwrap()
}

#[tokio::test]
async fn one_address_holds_at_most_max_connections_per_client() {
    // The default, 64: one address opens that many and holds them.
    let app = TestApp::new().spawn().await;
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(connect_from(&app, "127.0.0.1").await);
    }
    // Its 65th is closed unanswered...
    let mut extra = connect_from(&app, "127.0.0.1").await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let got = closed_within(&mut extra, Duration::from_secs(20))
        .await
        .expect("closed");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    // ...while another client is served at once.
    let mut healthy = connect_from(&app, "127.0.0.2").await;
    healthy
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let head = answer_head(&mut healthy, Duration::from_secs(20))
        .await
        .expect("served");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // And the first client, once it lets one go, is served again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = connect_from(&app, "127.0.0.1").await;
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let head = answer_head(&mut again, Duration::from_secs(20))
        .await
        .expect("served");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

// ---- the metrics listener -------------------------------------------------

#[tokio::test]
async fn the_metrics_listener_cuts_off_half_sent_requests() {
    let app = TestApp::new()
        .with_config(|c| {
            c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
            c.server.header_timeout = Duration::from_secs(1);
        })
        .spawn()
        .await;
    let addr = app.gateway.metrics_addr().unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(20))
            .await
            .is_some(),
        "a half-sent request to the metrics listener is still open"
    );
}

#[tokio::test]
async fn the_metrics_listener_serves_a_bounded_number_of_connections() {
    let app = TestApp::new()
        .with_config(|c| c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap()))
        .spawn()
        .await;
    let addr = app.gateway.metrics_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..channelgate::web::serve::METRICS_CONNECTIONS {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Beyond its cap, a connection waits in the listen queue and holds no
    // descriptor of the process.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    extra
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        answer_head(&mut extra, Duration::from_millis(500))
            .await
            .is_none(),
        "served beyond the metrics listener's cap"
    );
    drop(held);
    let head = answer_head(&mut extra, Duration::from_secs(20))
        .await
        .expect("served once a slot is free");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
