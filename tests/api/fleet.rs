//! A fleet: three instances on one Redis behind a balancer that sends each
//! request wherever it likes. What one instance counts, spends, signs in or
//! logs out holds at the others: `[limits]` count for the fleet, a login
//! callback or a device code works once across it (a replay never reaches
//! GitHub), device polls are paced per code across it, a socket signed in
//! at one instance is signed in at all, and a logout or a revoked token is
//! refused by the very next request anywhere.
//!
//! Needs a Redis server: `.ci/run` starts one and runs these with
//! `cargo test -- --ignored`; locally, start `redis-server` and set
//! `CHANNELGATE_TEST_REDIS` if it is not at redis://127.0.0.1:6379.
//! Whatever a test leaves in that Redis is named by this run's own random
//! addresses, sockets and codes, so runs and tests never meet.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use channelgate::config::Config;
use github_standin::Endpoint;
use reqwest::StatusCode;
use reqwest::cookie::CookieStore;
use serde_json::{Value, json};

use crate::helpers::{Browser, OwnRedis, TestApp, answer, three_sharing, token_calls};

fn redis() -> String {
    std::env::var("CHANNELGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Random enough that no other run or test shares it.
fn random() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut x = u64::from(nanos) ^ (u64::from(std::process::id()) << 32);
    // One step of splitmix64, so that close seeds differ everywhere.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A client address of this test alone (a /64 of its own), as a trusted
/// proxy in front of the fleet reports it.
fn client_address() -> String {
    let r = random();
    format!("2001:db8:{:x}:{:x}::1", (r >> 16) & 0xffff, r & 0xffff)
}

/// A Pusher socket id of this test alone.
fn own_socket() -> String {
    let r = random();
    format!("{}.{}", r % 1_000_000_000, (r >> 32) % 1_000_000_000)
}

/// `[limits] login_per_minute = 5`, behind a proxy on loopback that
/// names the client in `X-Forwarded-For`.
fn five_logins_a_minute(c: &mut Config) {
    c.limits.login_per_minute = 5;
    c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// `GET /auth/login` at `app` for the client at `address`: its status.
async fn start_login_from(app: &TestApp, address: &str) -> StatusCode {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/auth/login"))
        .header("x-forwarded-for", address)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_login_limit_of_five_a_minute_admits_five_across_three_instances() {
    let fleet = three_sharing(&redis(), five_logins_a_minute).await;
    let address = client_address();
    let mut admitted = 0;
    let mut refused = 0;
    for attempt in 0..15 {
        match start_login_from(&fleet[attempt % 3], &address).await {
            StatusCode::SEE_OTHER => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    assert_eq!((admitted, refused), (5, 10), "5 a minute for the fleet");
    // As governor says it: the next one in 60/5 seconds, whichever instance.
    let refusal = reqwest::Client::new()
        .get(fleet[2].url("/auth/login"))
        .header("x-forwarded-for", &address)
        .send()
        .await
        .unwrap();
    assert_eq!(refusal.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refusal.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    // Another client has its own five.
    assert_eq!(
        start_login_from(&fleet[1], &client_address()).await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
#[ignore = "needs redis-server; run with --ignored (see .ci/run)"]
async fn when_redis_stops_answering_each_instance_still_holds_the_login_limit_itself() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start(port);
    let app = TestApp::new()
        .with_store(&format!("redis://127.0.0.1:{port}"))
        .with_config(five_logins_a_minute)
        .spawn()
        .await;
    let address = client_address();
    assert_eq!(
        start_login_from(&app, &address).await,
        StatusCode::SEE_OTHER
    );
    redis.stop();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(start_login_from(&app, &address).await);
    }
    // Counted by the instance's own bucket: 4 more of its 5, then refused.
    // Never unlimited, and no 503 for a login that needs no store.
    assert_eq!(
        statuses,
        [
            [StatusCode::SEE_OTHER; 4].as_slice(),
            &[StatusCode::TOO_MANY_REQUESTS; 3]
        ]
        .concat()
    );
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_login_callback_replayed_at_another_instance_never_reaches_github() {
    let [a, b, c] = three_sharing(&redis(), |_| {}).await;
    let browser = Browser::new();
    let authorize = browser.start_login(&a, None).await;
    let callback = browser.consent(&a, &authorize, "ada").await;
    // What an attacker who saw the browser's traffic replays: the login
    // cookie and the callback's query.
    let login_cookie = browser
        .jar
        .cookies(&a.url("/").parse().unwrap())
        .expect("the login cookie");
    let query = callback.split_once('?').expect("a query").1.to_owned();
    assert_eq!(
        browser.get(&callback).await.status(),
        StatusCode::SEE_OTHER,
        "the login itself"
    );
    let redeemed = token_calls(&a);
    assert_eq!(redeemed, 1);
    for other in [&b, &c, &a] {
        let replay = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(other.url(&format!("/auth/callback?{query}")))
            .header("cookie", login_cookie.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "{}", other.url);
        assert!(
            replay
                .text()
                .await
                .unwrap()
                .contains("No login in progress"),
            "refused as spent"
        );
    }
    assert_eq!(
        token_calls(&a),
        redeemed,
        "no replay reached GitHub's token endpoint"
    );
}

/// `POST path` with a JSON body at `app`, as a device (no cookies).
async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn poll(app: &TestApp, device_code: &Value) -> (StatusCode, Value) {
    post(
        app,
        "/auth/device/token",
        json!({ "device_code": device_code }),
    )
    .await
}

fn error_of((status, body): (StatusCode, Value)) -> (StatusCode, Value) {
    (status, body["error"].clone())
}

/// Three instances with the device flow on, GitHub's codes polled at most
/// every `interval` seconds.
async fn device_fleet(interval: u64) -> [TestApp; 3] {
    let fleet = three_sharing(&redis(), |c| c.device.enabled = true).await;
    fleet[0]
        .github
        .set_device_timing(Duration::from_secs(900), interval);
    fleet[0].github.set_auto_consent(None);
    fleet
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_device_code_that_produced_a_token_is_spent_for_the_whole_fleet() {
    let [a, b, c] = device_fleet(0).await;
    let (status, started) = post(&a, "/auth/device", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert!(
        a.github
            .approve_device(started["user_code"].as_str().unwrap(), "ada")
    );
    let (status, body) = poll(&b, &started["device_code"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let calls = a.github.calls(Endpoint::AccessToken);
    for other in [&a, &c, &b] {
        assert_eq!(
            error_of(poll(other, &started["device_code"]).await),
            (StatusCode::BAD_REQUEST, json!("invalid_grant")),
            "{}",
            other.url
        );
    }
    assert_eq!(
        a.github.calls(Endpoint::AccessToken),
        calls,
        "answered without GitHub"
    );
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_device_polling_another_instance_within_its_interval_is_slowed_down_without_github() {
    let [a, b, c] = device_fleet(5).await;
    let (status, started) = post(&a, "/auth/device", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(
        error_of(poll(&a, &started["device_code"]).await),
        (StatusCode::BAD_REQUEST, json!("authorization_pending"))
    );
    let calls = a.github.calls(Endpoint::AccessToken);
    for other in [&b, &c] {
        let (status, body) = poll(other, &started["device_code"]).await;
        assert_eq!(
            (status, body["error"].clone()),
            (StatusCode::BAD_REQUEST, json!("slow_down")),
            "{}: {body}",
            other.url
        );
        assert!(body["interval"].as_u64().unwrap() >= 5, "{body}");
    }
    assert_eq!(
        a.github.calls(Endpoint::AccessToken),
        calls,
        "no poll within the interval reached GitHub"
    );
}

/// Under `revocation.require_signin`, waiting for a sign-in up to `wait`.
fn requiring_signin(wait: Duration) -> impl Fn(&mut Config) + Clone + 'static {
    move |c: &mut Config| {
        c.revocation.require_signin = true;
        c.revocation.signin_wait = wait;
    }
}

/// `POST path` at `app` for `socket` (and `channel`), as pusher-js sends it.
async fn for_socket(
    browser: &Browser,
    app: &TestApp,
    path: &str,
    socket: &str,
    channel: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![("socket_id", socket)];
    if let Some(channel) = channel {
        form.push(("channel_name", channel));
    }
    browser.post_form(app, path, &form).await
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_socket_signed_in_at_one_instance_is_signed_in_at_the_others() {
    let [a, b, c] = three_sharing(&redis(), requiring_signin(Duration::from_millis(300))).await;
    let ada = Browser::logged_in_as(&a, "ada").await;
    let socket = own_socket();
    let (status, body) = for_socket(&ada, &a, "/pusher/user-auth", &socket, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for other in [&b, &c] {
        let (status, body) =
            for_socket(&ada, other, "/pusher/auth", &socket, Some("private-ops")).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", other.url);
    }
    // Nobody else takes the connection over at another instance.
    let bo = Browser::logged_in_as(&c, "bo").await;
    let (status, body) = for_socket(&bo, &b, "/pusher/user-auth", &socket, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = for_socket(&bo, &c, "/pusher/auth", &socket, Some("private-lobby")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_channel_request_waiting_at_one_instance_is_woken_by_a_sign_in_at_another() {
    // A wait no test sits through: the answer must come well before it ends.
    let wait = Duration::from_secs(20);
    let [a, b, _] = three_sharing(&redis(), requiring_signin(wait)).await;
    let ada = Browser::logged_in_as(&a, "ada").await;
    let socket = own_socket();
    let asking = {
        let (ada, url, socket) = (ada.clone(), b.url("/pusher/auth"), socket.clone());
        tokio::spawn(async move {
            let response = ada
                .http
                .post(url)
                .form(&[
                    ("socket_id", socket.as_str()),
                    ("channel_name", "private-ops"),
                ])
                .send()
                .await
                .unwrap();
            response.status()
        })
    };
    for _ in 0..1_000 {
        if b.state().signins.waiting().requests == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.state().signins.waiting().requests, 1, "the request waits");
    let (status, body) = for_socket(&ada, &a, "/pusher/user-auth", &socket, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answered = tokio::time::timeout(wait / 2, asking)
        .await
        .expect("woken by the sign-in at the other instance, not by the end of its wait")
        .unwrap();
    assert_eq!(answered, StatusCode::OK);
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_logout_at_one_instance_refuses_the_very_next_request_at_another() {
    let [a, b, c] = three_sharing(&redis(), |_| {}).await;
    let ada = Browser::logged_in_as(&a, "ada").await;
    let cookie = ada.session_cookie(&a.url("/")).unwrap();
    let me_at = |app: &TestApp| {
        reqwest::Client::new()
            .get(app.url("/auth/me"))
            .header("cookie", format!("channelgate={cookie}"))
            .send()
    };
    // Each instance holds the identity it just loaded.
    for app in [&b, &c, &b, &c] {
        assert_eq!(me_at(app).await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(ada.log_out(&a).await.status(), StatusCode::SEE_OTHER);
    for app in [&b, &c] {
        assert_eq!(
            me_at(app).await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            app.url
        );
    }
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_revoked_app_token_is_refused_by_the_very_next_request_at_another_instance() {
    let [a, b, c] = three_sharing(&redis(), |_| {}).await;
    let ada = Browser::logged_in_as(&a, "ada").await;
    let (bot, id) = ada.bot(&a, "ci").await;
    let (other_bot, _) = ada.bot(&a, "deploys").await;
    for app in [&b, &c, &b, &c] {
        assert_eq!(bot.me(app).await.0, StatusCode::OK);
        assert_eq!(other_bot.me(app).await.0, StatusCode::OK);
    }
    // Revoked from the home page at one instance...
    assert_eq!(ada.revoke_token(&a, &id).await, StatusCode::NO_CONTENT);
    for app in [&b, &c] {
        assert_eq!(bot.me(app).await.0, StatusCode::UNAUTHORIZED, "{}", app.url);
    }
    // ...or by the app itself at another.
    assert_eq!(other_bot.log_out(&c).await, StatusCode::NO_CONTENT);
    for app in [&b, &a] {
        assert_eq!(
            other_bot.me(app).await.0,
            StatusCode::UNAUTHORIZED,
            "{}",
            app.url
        );
    }
}

#[tokio::test]
#[ignore = "needs redis-server; run with --ignored (see .ci/run)"]
async fn a_busy_persons_auth_limit_holds_for_the_fleet_with_requests_counted_ahead() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _redis = OwnRedis::start(port);
    let fleet = three_sharing(&format!("redis://127.0.0.1:{port}"), |c| {
        c.limits.auth_per_minute = 100;
    })
    .await;
    let ada = Browser::logged_in_as(&fleet[0], "ada").await;
    // Each instance counts a busy key's requests ahead in leases (up to
    // five at a time here): never more than the fleet's 100, and few lost.
    let mut admitted = 0;
    for attempt in 0..150 {
        match ada.auth(&fleet[attempt % 3], "private-ops").await.0 {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    assert!(
        admitted <= 100,
        "{admitted} admitted: over the fleet's limit"
    );
    assert!(admitted >= 80, "{admitted} admitted: leases lost too many");
}
