//! What the security review of the first release found, as attacks that
//! must now fail: one test (or more) per finding, named for what holds.

use std::time::Duration;

use channelgate::config::{LimitsConfig, SessionStore};
use channelgate::rules::RuleSet;
use channelgate::session::Store;
use github_standin::{Endpoint, MembershipState, UserRecord};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore as _;

use crate::helpers::{
    Browser, TestApp, capture_info_logs, location, query_param, rule, stored_sessions, temp_dir,
    token_calls, world,
};

// ---- 1. a channel through a registrable name -------------------------------

#[tokio::test]
async fn a_private_pattern_never_reaches_an_encrypted_channel() {
    // Someone registered the login "encrypted-inbox-1", hoping that
    // private-{login} hands them user 1's encrypted inbox and its key.
    let app = TestApp::new()
        .with_world(world().user(77, "encrypted-inbox-1", None).org(
            "encrypted-inbox-1",
            "initech",
            MembershipState::Active,
        ))
        .with_config(|config| {
            config.rules = RuleSet::new(vec![
                rule("private-{login}", &[], &[], false),
                rule("private-encrypted-inbox-{id}", &[], &[], false),
            ]);
            assert_eq!(
                config.rules.collisions(),
                [],
                "check-config accepts the pair"
            );
        })
        .spawn()
        .await;
    let attacker = Browser::logged_in_as(&app, "encrypted-inbox-1").await;
    let (status, body) = attacker.auth(&app, "private-encrypted-inbox-1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.get("shared_secret").is_none(), "{body}");
    // Their own channels still work.
    let (status, _) = attacker.auth(&app, "private-encrypted-inbox-77").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = attacker.auth(&app, "private-encrypted-inbox-1x").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

// ---- 2. no state for strangers ----------------------------------------------

#[tokio::test]
async fn a_flood_of_anonymous_logins_stores_nothing() {
    let dir = temp_dir("flood");
    let db = dir.join("s.db");
    let app = TestApp::new()
        .with_store(&format!("sqlite://{}", db.display()))
        .spawn()
        .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let padding = "/x".repeat(1000);
    for i in 0..200 {
        let response = http
            .get(app.url("/auth/login"))
            .query(&[("return_to", format!("{padding}/{i}"))])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert!(
            response
                .headers()
                .get_all("set-cookie")
                .iter()
                .all(|c| !c.to_str().unwrap().starts_with("channelgate=")),
            "no session cookie for a visitor"
        );
    }
    let rows = stored_sessions(&db).await;
    assert_eq!(rows, 0, "200 anonymous logins left {rows} stored sessions");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- 3. a state is usable once, whatever the outcome ------------------------

#[tokio::test]
async fn a_state_whose_callback_failed_cannot_be_used_again() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();
    let start = browser.get(&app.url("/auth/login")).await;
    let login_cookie = start.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let callback = browser.consent(&app, &location(&start), "ada").await;
    // GitHub fails while the code is redeemed: a 5xx page.
    app.github.set_down(true);
    let failed = browser.get(&callback).await;
    assert!(failed.status().is_server_error(), "{}", failed.status());
    app.github.set_down(false);
    let calls = token_calls(&app);
    // The browser tries again: its login cookie was cleared with the 5xx.
    let again = browser.get(&callback).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.unwrap().contains("No login in progress"));
    // Someone replays the old cookie by hand: the state is spent.
    let replay = reqwest::Client::new()
        .get(&callback)
        .header("cookie", &login_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(token_calls(&app), calls, "the code is never redeemed twice");
    assert_eq!(
        browser.get(&app.url("/auth/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_tampered_login_cookie_is_no_login_at_all() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();
    let authorize = browser.start_login(&app, None).await;
    let callback = browser.consent(&app, &authorize, "ada").await;
    let state = query_param(&callback, "state");
    let forged = reqwest::Client::new()
        .get(&callback)
        .header("cookie", format!("channelgate-login={state}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert_eq!(token_calls(&app), 0);
}

// ---- 4. slow clients --------------------------------------------------------

/// Reads until the server closes the connection; `None` if it is still
/// open after `patience`.
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

#[tokio::test]
async fn a_client_that_sends_half_its_headers_is_cut_off() {
    let app = TestApp::new()
        .with_config(|config| {
            config.server.header_timeout = Duration::from_secs(1);
        })
        .spawn()
        .await;
    let addr = app.gateway.addr();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(10))
            .await
            .is_some(),
        "still open after 10 s with a 1 s header_timeout"
    );
    // One that sends nothing at all is cut off too.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(10))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_request_whose_body_never_ends_gets_408() {
    let app = TestApp::new()
        .with_config(|config| {
            config.server.request_timeout = Duration::from_secs(1);
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
    let answer = closed_within(&mut stream, Duration::from_secs(10))
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn connections_over_max_connections_wait_for_a_free_slot() {
    let app = TestApp::new()
        .with_config(|config| {
            config.server.max_connections = 2;
        })
        .spawn()
        .await;
    let addr = app.gateway.addr();
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut third, Duration::from_millis(500))
            .await
            .is_none(),
        "the third connection is not served while two are held"
    );
    drop(first);
    let answer = closed_within(&mut third, Duration::from_secs(10))
        .await
        .expect("served once a slot is free");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

// ---- 5. limits ----------------------------------------------------------------

#[tokio::test]
async fn logins_over_the_limit_get_429_with_retry_after() {
    let app = TestApp::new()
        .with_config(|c| c.limits.login_per_minute = 3)
        .spawn()
        .await;
    let browser = Browser::new();
    for _ in 0..3 {
        let r = browser.get(&app.url("/auth/login")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    let r = browser.get(&app.url("/auth/login")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn pusher_auth_is_limited_per_person_and_per_address_when_anonymous() {
    let app = TestApp::new()
        .with_config(|config| {
            config.limits = LimitsConfig {
                login_per_minute: 0,
                auth_per_minute: 5,
            };
        })
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    for _ in 0..5 {
        assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    }
    let (status, _) = ada.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        ada.sign_in(&app).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "one budget for both endpoints"
    );
    // bo has a budget of his own.
    assert_eq!(bo.auth(&app, "private-lobby").await.0, StatusCode::OK);
    // Strangers share their address's.
    let stranger = Browser::new();
    for _ in 0..5 {
        assert_eq!(
            stranger.auth(&app, "private-lobby").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        stranger.auth(&app, "private-lobby").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let limited = |trusted: bool| {
        move |config: &mut channelgate::config::Config| {
            config.limits = LimitsConfig {
                login_per_minute: 1,
                auth_per_minute: 0,
            };
            if trusted {
                config.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            }
        }
    };
    let login_from = |app: &TestApp, client: &'static str| {
        let url = app.url("/auth/login");
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .get(url)
                .header("x-forwarded-for", client)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let behind_proxy = TestApp::new().with_config(limited(true)).spawn().await;
    assert_eq!(
        login_from(&behind_proxy, "203.0.113.1").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login_from(&behind_proxy, "203.0.113.2").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login_from(&behind_proxy, "203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Without trust, the header is the client's word: one peer, one budget.
    let direct = TestApp::new().with_config(limited(false)).spawn().await;
    assert_eq!(
        login_from(&direct, "203.0.113.1").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login_from(&direct, "203.0.113.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ---- 6. sign-in is authorization too -----------------------------------------

#[tokio::test]
async fn without_a_signin_section_nobody_signs_in() {
    let app = TestApp::new()
        .with_config(|config| {
            config.signin = None;
        })
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (status, body) = ada.sign_in(&app).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.get("auth").is_none());
}

#[tokio::test]
async fn signin_admits_only_whom_its_conditions_name() {
    // The tests' [signin] admits active members of initech.
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    for outsider in ["Dee-Dash", "cy"] {
        let browser = Browser::logged_in_as(&app, outsider).await;
        assert_eq!(
            browser.sign_in(&app).await.0,
            StatusCode::FORBIDDEN,
            "{outsider}"
        );
    }
}

// ---- 7. secrets at rest and in output -----------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn a_sqlite_store_is_private_to_its_owner_and_holds_no_token_in_clear() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("at-rest");
    let db = dir.join("sessions.db");
    let app = TestApp::new()
        .with_store(&format!("sqlite://{}", db.display()))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(4).any(|w| w == b"gho_"),
            "a GitHub token in clear in {}",
            path.display()
        );
        files += 1;
    }
    assert!(files >= 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- 8. a renamed login keeps nothing of its old name ------------------------

#[tokio::test]
async fn a_renamed_login_loses_its_old_channels_within_the_ttl() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-user-ada").await.0, StatusCode::OK);
    // ada renames herself; someone else registers the free login.
    app.github.rename_user("ada", "ada-lovelace");
    app.github
        .add_user(UserRecord::new(99, "ada", Some("Not Ada")));
    app.pass_the_ttl();
    app.github.reset_counters();
    assert_eq!(
        ada.auth(&app, "private-user-ada").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ada.auth(&app, "private-user-ada-lovelace").await.0,
        StatusCode::OK
    );
    let me: Value = ada.get(&app.url("/auth/me")).await.json().await.unwrap();
    assert_eq!(me["login"], "ada-lovelace");
    assert_eq!(
        app.github.calls(Endpoint::User),
        1,
        "/user is read with the memberships"
    );
    // The newcomer gets the old name's channel, as the rule says.
    let newcomer = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(
        newcomer.auth(&app, "private-user-ada").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unchanged_user_is_reread_with_a_free_304() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.pass_the_ttl();
    app.github.reset_counters();
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(app.github.calls(Endpoint::User), 1);
    assert_eq!(app.github.not_modified(Endpoint::User), 1);
}

// ---- 9. a deleted session stays deleted --------------------------------------

#[tokio::test]
async fn a_session_deleted_by_logout_is_not_written_back_by_a_request_in_flight() {
    let dir = temp_dir("undead");
    for choice in [SessionStore::Memory, SessionStore::Sqlite(dir.join("s.db"))] {
        let room = channelgate::room::Room::open(&choice).await.unwrap();
        let store = Store::open(&room, Default::default(), &Default::default())
            .await
            .unwrap();
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        store.create(&mut record).await.unwrap();
        // A request loaded the session; the person logs out; the request saves.
        store.delete(&record.id).await.unwrap();
        store.save(&record).await.unwrap();
        assert!(
            store.load(&record.id).await.unwrap().is_none(),
            "{choice}: the logged-out session came back"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- 10. a long display name --------------------------------------------------

#[tokio::test]
async fn a_very_long_display_name_still_joins_presence() {
    let long = "Ünïcödé ".repeat(300);
    let app = TestApp::new()
        .with_world(world().user(50, "verbose", Some(&long)).org(
            "verbose",
            "initech",
            MembershipState::Active,
        ))
        .spawn()
        .await;
    let verbose = Browser::logged_in_as(&app, "verbose").await;
    let (status, body) = verbose.auth(&app, "presence-org-initech").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data: Value = serde_json::from_str(body["channel_data"].as_str().unwrap()).unwrap();
    let info = serde_json::to_vec(&data["user_info"]).unwrap();
    assert!(info.len() <= 1024, "{}", info.len());
    assert!(long.starts_with(data["user_info"]["name"].as_str().unwrap()));
    assert_eq!(verbose.sign_in(&app).await.0, StatusCode::OK);
}

// ---- 11. headers ----------------------------------------------------------------

#[tokio::test]
async fn every_answer_says_nosniff_and_pages_send_no_referrer() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    for path in [
        "/",
        "/healthz",
        "/auth/me",
        "/assets/home.js",
        "/no-such-route",
    ] {
        let r = ada.get(&app.url(path)).await;
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert!(
            r.headers().get("strict-transport-security").is_none(),
            "{path}: plain http"
        );
    }
    let page = ada.get(&app.url("/")).await;
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

#[tokio::test]
async fn over_https_every_answer_asks_for_https_from_now_on() {
    let app = TestApp::new().https().spawn().await;
    let r = Browser::new().get(&app.url("/healthz")).await;
    let hsts = r.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.starts_with("max-age="), "{hsts}");
}

// ---- 12. the demo -----------------------------------------------------------------

#[tokio::test]
async fn the_demo_github_redirects_only_to_the_registered_callback() {
    let demo = channelgate::demo::start(
        "127.0.0.1:0".parse().unwrap(),
        &channelgate::demo::DEFAULT_PUSHER_HOST.parse().unwrap(),
    )
    .await
    .unwrap();
    demo.github.set_auto_consent(Some("ada"));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = location(
        &Browser::new()
            .get(&format!("{}/auth/login", demo.url))
            .await,
    );
    let mut evil = reqwest::Url::parse(&authorize).unwrap();
    let pairs: Vec<(String, String)> = evil.query_pairs().into_owned().collect();
    evil.query_pairs_mut().clear();
    for (k, v) in pairs {
        let v = if k == "redirect_uri" {
            "http://evil.example/steal".to_owned()
        } else {
            v
        };
        evil.query_pairs_mut().append_pair(&k, &v);
    }
    let r = http.get(evil.as_str()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
    // The genuine one still works.
    let r = http.get(&authorize).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn the_demo_answers_only_to_loopback_names() {
    let demo = channelgate::demo::start(
        "127.0.0.1:0".parse().unwrap(),
        &channelgate::demo::DEFAULT_PUSHER_HOST.parse().unwrap(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let origin = demo.url.strip_prefix("http://").unwrap();
    // Another loopback name is sent to the demo's one origin.
    for (host, status) in [
        ("rebound.evil.example", StatusCode::MISDIRECTED_REQUEST),
        ("localhost", StatusCode::TEMPORARY_REDIRECT),
        ("127.0.0.1", StatusCode::TEMPORARY_REDIRECT),
        (origin, StatusCode::OK),
    ] {
        let r = http
            .get(format!("{}/healthz", demo.url))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{host}");
    }
}

// ---- 5. a flood of refusals does not flood the log ----------------------------

#[tokio::test]
async fn a_flood_of_identical_denials_is_logged_once_with_a_count() {
    let (captured, _guard) = capture_info_logs();
    let app = TestApp::new().spawn().await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    for _ in 0..200 {
        assert_eq!(bo.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        bo.auth(&app, "private-user-ada").await.0,
        StatusCode::FORBIDDEN
    );
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    assert_eq!(lines("channel=private-ops"), 1, "{log}");
    assert_eq!(
        lines("channel=private-user-ada"),
        1,
        "a different denial is its own line"
    );
    // The reason still reaches the log, once.
    assert!(
        log.contains("meets none of the conditions of rules[0]"),
        "{log}"
    );
}
