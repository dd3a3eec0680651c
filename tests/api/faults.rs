//! When the gateway's neighbours fail: each fault as an operator meets it,
//! asserting behaviour (what is answered, and that it is answered), not
//! time. `benches/` measures the same faults at scale.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{Browser, OwnRedis, SOCKET, TestApp, capture_info_logs, stand_in};

/// Redis goes away for a few seconds while people keep asking: every
/// request is answered (503 while the store is gone, never a 500 or a
/// dropped connection), none waits for Redis to come back, and once it is
/// back the same sessions work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server on this machine; .ci/run runs it"]
async fn redis_going_away_gets_quick_503s_and_sessions_survive() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("channelgate-redis-fault-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = OwnRedis::start_in(port, Some(&dir));
    let app = Arc::new(
        TestApp::new()
            .with_store(&format!("redis://127.0.0.1:{port}"))
            .spawn()
            .await,
    );
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);

    // Eight clients ask all the time; each answer is recorded with how long it took.
    let outage = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (app, ada, outage, stop) = (app.clone(), ada.clone(), outage.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let during = outage.load(Ordering::Relaxed);
                let t = Instant::now();
                let status = ada
                    .http
                    .post(app.url("/pusher/auth"))
                    .form(&[("socket_id", SOCKET), ("channel_name", "private-ops")])
                    .send()
                    .await
                    .map(|r| r.status());
                seen.push((during, status.map_err(|e| e.to_string()), t.elapsed()));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    redis.stop();
    outage.store(true, Ordering::Relaxed);
    // What the gateway holds decoded runs out at once, so every request
    // needs the store; the outage outlasts the store's 1 s timeout.
    app.clock.advance(channelgate::session::HOLD_FOR);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    outage.store(false, Ordering::Relaxed);
    let _redis = OwnRedis::start_in(port, Some(&dir));
    let back = Instant::now();
    let recovered = loop {
        if ada.auth(&app, "private-ops").await.0 == StatusCode::OK {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "no 200 after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let mut during = Vec::new();
    for client in clients {
        during.extend(client.await.unwrap().into_iter().filter(|(d, _, _)| *d));
    }
    assert!(!during.is_empty());
    for (_, status, took) in &during {
        let status = status
            .as_ref()
            .unwrap_or_else(|e| panic!("a dropped request: {e}"));
        assert!(
            *status == StatusCode::SERVICE_UNAVAILABLE || *status == StatusCode::OK,
            "answered {status} while Redis was away"
        );
        assert!(
            *took < Duration::from_secs(3),
            "an answer took {took:?}: nothing may wait for Redis"
        );
    }
    // The session lived through it (its store keeps an append-only file).
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    eprintln!(
        "faults: {} answers while Redis was away, all 503 or 200 within 3 s; first 200 {recovered:?} after it came back",
        during.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// GitHub hangs while a person's entry is stale: everyone waiting for that
/// person shares one read and its failure, and all are answered 503 within
/// about one GitHub timeout, not one timeout after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_github_is_asked_once_and_its_failure_shared() {
    let github = stand_in().await;
    let app = Arc::new(
        TestApp::new()
            .with_github(github.clone())
            .with_config(|c| c.github.timeout = Duration::from_secs(2))
            .spawn()
            .await,
    );
    let ada = Browser::logged_in_as(&app, "ada").await;
    app.pass_the_ttl();
    github.reset_counters();
    github.set_delay(Duration::from_secs(30));
    let started = Instant::now();
    let mut waiting = Vec::new();
    for _ in 0..20 {
        let (app, ada) = (app.clone(), ada.clone());
        waiting.push(tokio::spawn(async move {
            ada.auth(&app, "private-ops").await.0
        }));
    }
    for w in waiting {
        assert_eq!(w.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "all 20 answered in {took:?}: one shared 2 s timeout"
    );
    use github_standin::Endpoint;
    assert_eq!(
        github.calls(Endpoint::Teams),
        1,
        "one read for everyone waiting"
    );
    // The failure is remembered briefly: a flood right after starts no read.
    for _ in 0..10 {
        assert_eq!(
            ada.auth(&app, "private-ops").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(github.calls(Endpoint::Teams), 1);
    github.set_delay(Duration::ZERO);
}

/// GitHub answers 5xx while entries go stale: within `cache.stale_grace`
/// the last good answer serves; past it, 503. Never an allow from a failure.
#[tokio::test]
async fn github_5xx_serves_stale_answers_within_the_grace_then_503() {
    let (captured, _guard) = capture_info_logs();
    let app = TestApp::new()
        .with_config(|c| {
            c.cache.membership_ttl = Duration::from_secs(60);
            c.cache.stale_grace = Duration::from_secs(120);
        })
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    app.github.set_down(true);
    app.pass_the_ttl();
    let (mut stale, mut refused) = (0, 0);
    for _ in 0..10 {
        match ada.auth(&app, "private-ops").await.0 {
            StatusCode::OK => stale += 1,
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("{other} from a stale entry within the grace"),
        }
        // bo was never allowed private-ops: a failure does not change that.
        assert_eq!(bo.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        (stale, refused),
        (10, 0),
        "within the grace, the stale answer serves"
    );
    // Past TTL + grace: 503, however often asked.
    app.clock.advance(Duration::from_secs(121));
    for _ in 0..10 {
        assert_eq!(
            ada.auth(&app, "private-ops").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            bo.auth(&app, "private-ops").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // Twenty 503s of one kind in a minute are one log line, not twenty.
    let log = captured.text();
    assert_eq!(log.matches("answered 503").count(), 1, "{log}");
    // GitHub back: answers again after the back-off (10 s after the
    // second failure in a row).
    app.github.set_down(false);
    app.clock.advance(Duration::from_secs(11));
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
}

/// A crowd of clients that send half their headers: each is closed by
/// `header_timeout`, and ordinary clients are served meanwhile, within
/// `max_connections`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_slow_clients_is_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SLOW: usize = 300;
    let app = TestApp::new()
        .with_config(|c| {
            c.server.header_timeout = Duration::from_secs(1);
            c.server.max_connections = SLOW + 50;
            // The crowd and the ordinary client share 127.0.0.1.
            c.server.max_connections_per_client = SLOW + 50;
        })
        .spawn()
        .await;
    let addr = app.gateway.addr();
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // Ordinary clients meanwhile.
    let ada = Browser::logged_in_as(&app, "ada").await;
    for _ in 0..20 {
        assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    }
    // Every slow connection is closed by the server.
    let deadline = Instant::now() + Duration::from_secs(15);
    for mut s in slow {
        let mut buf = [0u8; 256];
        let left = deadline.saturating_duration_since(Instant::now());
        let closed = tokio::time::timeout(left, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a slow connection outlived header_timeout");
    }
    assert_eq!(
        reqwest::get(app.url("/healthz")).await.unwrap().status(),
        200
    );
}
