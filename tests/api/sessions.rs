//! Sessions that survive what people expect them to survive.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Browser, TestApp, stand_in, temp_dir, two_sharing};

async fn me(browser: &Browser, app: &TestApp) -> (StatusCode, Value) {
    let response = browser.get(&app.url("/auth/me")).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn with_sqlite_a_session_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("channelgate-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let github = stand_in().await;

    let first = TestApp::new()
        .with_github(github.clone())
        .with_store(&store)
        .spawn()
        .await;
    let browser = Browser::logged_in_as(&first, "bo").await;
    assert_eq!(me(&browser, &first).await.0, StatusCode::OK);
    first.gateway.shutdown().await.unwrap();

    // A new process on another port; cookies are per host, so the browser
    // presents the same session cookie.
    let second = TestApp::new()
        .with_github(github)
        .with_store(&store)
        .spawn()
        .await;
    let (status, body) = me(&browser, &second).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["login"], "bo");
    second.gateway.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn with_memory_a_restart_ends_sessions() {
    let github = stand_in().await;
    let first = TestApp::new().with_github(github.clone()).spawn().await;
    let browser = Browser::logged_in_as(&first, "bo").await;
    first.gateway.shutdown().await.unwrap();
    let second = TestApp::new().with_github(github).spawn().await;
    assert_eq!(me(&browser, &second).await.0, StatusCode::UNAUTHORIZED);
}

/// Needs a Redis server: `.ci/run` starts one and runs this with
/// `cargo test -- --ignored`; locally, start `redis-server` and set
/// `CHANNELGATE_TEST_REDIS` if it is not at redis://127.0.0.1:6379.
#[tokio::test]
#[ignore = "needs a Redis server; run with --ignored (see the README)"]
async fn with_redis_two_instances_share_one_login() {
    let url = std::env::var("CHANNELGATE_TEST_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let (a, b) = two_sharing(&url).await;

    let browser = Browser::logged_in_as(&a, "ada").await;
    let (status, body) = me(&browser, &b).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "instance b sees the login made on a"
    );
    assert_eq!(body["login"], "ada");

    // Logging out on b ends the session for a too: the old cookie, sent by
    // hand to a (the browser itself forgets it), finds nothing in Redis.
    let cookie = browser.session_cookie(&a.url("/")).unwrap();
    browser.log_out(&b).await;
    let replay = reqwest::Client::new()
        .get(a.url("/auth/me"))
        .header("cookie", format!("channelgate={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
}

/// Needs a Redis server with TLS: `.ci/run` starts one with a certificate
/// of its own, names it in `CHANNELGATE_TEST_REDISS` and points
/// `SSL_CERT_FILE` at the certificate so it is trusted.
#[tokio::test]
#[ignore = "needs a Redis server with TLS; run with --ignored (see .ci/run)"]
async fn with_rediss_sessions_travel_over_tls_and_hold_no_token_in_clear() {
    let url = std::env::var("CHANNELGATE_TEST_REDISS").expect("CHANNELGATE_TEST_REDISS");
    let (a, b) = two_sharing(&url).await;
    let browser = Browser::logged_in_as(&a, "ada").await;
    let (status, body) = me(&browser, &b).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["login"], "ada");
    // What Redis holds for the session has no token in clear.
    let client = tower_sessions_redis_store::fred::prelude::Client::new(
        tower_sessions_redis_store::fred::prelude::Config::from_url(&url).unwrap(),
        None,
        None,
        None,
    );
    use tower_sessions_redis_store::fred::prelude::{ClientLike, KeysInterface};
    client.init().await.unwrap();
    let id = browser.session_cookie(&a.url("/")).unwrap();
    let stored: Vec<u8> = client.get(id).await.unwrap();
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(4).any(|w| w == b"gho_"),
        "a token in clear in Redis"
    );
}

/// The gateway runs on a runtime of its own, dropped the moment
/// `shutdown()` returns, as a process exits: a request still in flight then
/// would die with it. It must have been answered already.
#[test]
fn shutdown_answers_every_request_in_flight_before_it_returns() {
    let server = tokio::runtime::Runtime::new().unwrap();
    let client = tokio::runtime::Runtime::new().unwrap();
    let app = server.block_on(TestApp::new().spawn());
    let browser = Browser::new();
    let callback = client.block_on(async {
        let authorize = browser.start_login(&app, None).await;
        browser.consent(&app, &authorize, "ada").await
    });
    app.github.set_delay(Duration::from_millis(300));
    let in_flight = client.spawn({
        let browser = browser.clone();
        async move { browser.http.get(&callback).send().await.map(|r| r.status()) }
    });
    std::thread::sleep(Duration::from_millis(100));
    let TestApp { gateway, .. } = app;
    server.block_on(gateway.shutdown()).unwrap();
    drop(server);
    let status = client.block_on(in_flight).unwrap();
    assert_eq!(
        status.expect("answered before shutdown returned"),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn an_active_session_still_ends_at_max_age() {
    // On the gateway's clock: no waiting, and no margin for slow machines.
    let app = TestApp::new()
        .with_config(|c| c.session.max_age = Duration::from_secs(3))
        .spawn()
        .await;
    let browser = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(me(&browser, &app).await.0, StatusCode::OK);
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        me(&browser, &app).await.0,
        StatusCode::OK,
        "still within max_age"
    );
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(me(&browser, &app).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_active_session_is_pushed_back_a_twentieth_of_the_ttl_at_a_time() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::logged_in_as(&app, "ada").await;
    let renewed = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("channelgate="))
    };
    // Just after login: no store write, so no new cookie.
    let r = browser.get(&app.url("/auth/me")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!renewed(&r), "no write on every request");
    // A twentieth of the 7-day TTL later (8.4 h), the expiry moves.
    app.clock.advance(Duration::from_secs(7 * 86_400 / 20 + 1));
    let r = browser.get(&app.url("/auth/me")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(renewed(&r), "pushed back");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Max-Age=604800"), "{cookie}");
    // And not again right after.
    assert!(!renewed(&browser.get(&app.url("/auth/me")).await));
}

#[tokio::test]
async fn an_idle_session_ends_after_the_ttl() {
    // The memory store reads the gateway's clock: a week passes at once.
    let app = TestApp::new().spawn().await;
    let browser = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(me(&browser, &app).await.0, StatusCode::OK);
    app.clock.advance(Duration::from_secs(7 * 86_400 + 1));
    // The browser still holds its cookie; the store has let it go.
    assert!(browser.session_cookie(&app.url("/")).is_some());
    assert_eq!(me(&browser, &app).await.0, StatusCode::UNAUTHORIZED);
}

/// `/pusher/auth` as a client replaying a session cookie by hand.
async fn auth_with_cookie(app: &TestApp, cookie: &str) -> StatusCode {
    reqwest::Client::new()
        .post(app.url("/pusher/auth"))
        .header("cookie", format!("channelgate={cookie}"))
        .form(&[("socket_id", "1.2"), ("channel_name", "private-user-ada")])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_logout_ends_the_session_at_once_though_its_identity_was_just_used() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::logged_in_as(&app, "ada").await;
    let cookie = browser.session_cookie(&app.url("/")).unwrap();
    // A burst of auth calls, as a page subscribing to its channels makes:
    // the identity is now held in-process.
    for _ in 0..3 {
        assert_eq!(auth_with_cookie(&app, &cookie).await, StatusCode::OK);
    }
    browser.log_out(&app).await;
    assert_eq!(
        auth_with_cookie(&app, &cookie).await,
        StatusCode::UNAUTHORIZED,
        "a held identity outlived its logout"
    );
}

#[tokio::test]
async fn a_logout_on_another_instance_is_honoured_within_the_hold() {
    let dir = temp_dir("hold");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let (a, b) = two_sharing(&store).await;
    let browser = Browser::logged_in_as(&a, "ada").await;
    let cookie = browser.session_cookie(&a.url("/")).unwrap();
    assert_eq!(auth_with_cookie(&a, &cookie).await, StatusCode::OK);
    browser.log_out(&b).await;
    // Instance a may still use what it decoded a moment ago, never longer.
    a.clock.advance(channelgate::session::HOLD_FOR);
    assert_eq!(
        auth_with_cookie(&a, &cookie).await,
        StatusCode::UNAUTHORIZED,
        "instance a kept a session logged out on b"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
