//! GitHub App user tokens, which expire after eight hours: the gateway
//! refreshes them before use, once however many requests need it, and only
//! GitHub's refusal of a refresh counts as a revocation. Against the
//! stand-in with expiring tokens; time moves on both clocks, no sleeping.

use std::time::Duration;

use channelgate::config::Config;
use reqwest::StatusCode;
use serde_json::Value;

use crate::device::approved_device;
use crate::helpers::{Browser, OwnRedis, TestApp, capture_info_logs, temp_dir, two_sharing};

/// A GitHub App's user-token lifetime.
const EIGHT_HOURS: Duration = Duration::from_secs(8 * 3600);
/// Long enough for a revocation's terminate call on a busy machine.
const SOON: Duration = Duration::from_secs(5);
/// Ada's GitHub id in the helpers' world.
const ADA: u64 = 1;

/// A gateway whose GitHub issues expiring tokens, with metrics on.
async fn app() -> TestApp {
    app_from(TestApp::new()).await
}

async fn app_from(builder: crate::helpers::TestAppBuilder) -> TestApp {
    let app = builder
        .with_config(|c: &mut Config| {
            c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        })
        .spawn()
        .await;
    app.github.set_token_lifetime(Some(EIGHT_HOURS));
    app
}

/// Moves both clocks past the tokens' expiry (and the membership TTL).
fn expire(app: &TestApp) {
    app.clock.advance(EIGHT_HOURS + Duration::from_secs(1));
    app.github
        .advance_clock(EIGHT_HOURS + Duration::from_secs(1));
}

/// Someone else spends the one refresh token issued so far (ada's).
async fn someone_else_spends_the_refresh_token(app: &TestApp) {
    let [stolen] = app.github.refresh_token_values().try_into().unwrap();
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/login/oauth/access_token", app.github.web_url()))
        .header("accept", "application/json")
        .form(&[
            ("client_id", crate::helpers::CLIENT_ID),
            ("client_secret", crate::helpers::CLIENT_SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", stolen.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["access_token"].is_string(), "{answer}");
}

fn refreshes_counted(text: &str, outcome: &str) -> f64 {
    crate::helpers::metric(
        text,
        &format!("channelgate_github_token_refreshes_total{{outcome=\"{outcome}\"}}"),
    )
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_person_notices_nothing() {
    let app = app().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);

    expire(&app);
    let (status, body) = ada.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me = ada.get(&app.url("/auth/me")).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(app.github.refreshes(), 1);

    // The sweep re-reads her with the new token: nothing is ended.
    app.pass_the_ttl();
    app.sweep().await;
    app.settled().await;
    assert!(app.pusher.terminated().is_empty(), "no connection ended");
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(refreshes_counted(&app.scrape().await, "ok"), 1.0);
}

#[tokio::test]
async fn the_sweep_refreshes_an_idle_persons_expired_token_and_ends_nothing() {
    let app = app().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    expire(&app);
    // Her browser holds its connection and asks nothing: the sweep must
    // still be able to read her membership, so it refreshes her token.
    app.sweep().await;
    assert_eq!(app.github.refreshes(), 1, "the sweep refreshed");
    assert!(app.pusher.terminated().is_empty(), "no connection ended");
    // Her session takes the pair the sweep got; no second refresh.
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(ada.get(&app.url("/auth/me")).await.status(), StatusCode::OK);
    assert_eq!(app.github.refreshes(), 1);
    // And the next expiry rotates from that pair.
    expire(&app);
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(app.github.refreshes(), 2);
}

#[tokio::test]
async fn a_removal_ends_an_idle_persons_grants_though_their_token_expired() {
    let app = app_from(TestApp::new().with_webhooks()).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    expire(&app);
    // Idle for longer than her token lives, then removed from the team:
    // the webhook's re-read refreshes her token and finds the loss.
    app.github
        .announce(github_standin::Change::RemoveFromTeam {
            login: "ada".into(),
            org: "initech".into(),
            slug: "ops".into(),
        })
        .await
        .unwrap();
    app.settled().await;
    assert_eq!(app.pusher.terminated(), [ADA], "her connections were ended");
    assert_eq!(app.github.refreshes(), 1);
    // She is still logged in (an expiry is not a revocation), without the team's channel.
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
    assert_eq!(ada.get(&app.url("/auth/me")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_token_refused_to_the_sweep_ends_the_idle_persons_grants() {
    let app = app().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    someone_else_spends_the_refresh_token(&app).await;
    expire(&app);
    app.sweep().await;
    assert_eq!(app.pusher.terminated(), [ADA], "a refusal is a revocation");
    assert_eq!(
        ada.get(&app.url("/auth/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_authorization_revoked_before_expiry_still_ends_connections_at_once() {
    let app = app_from(TestApp::new().with_webhooks()).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    let delivery = app
        .github
        .announce(github_standin::Change::RevokeTokens {
            login: "ada".into(),
        })
        .await
        .unwrap();
    assert_eq!(delivery.event, "github_app_authorization");
    assert!(app.pusher.wait_for_terminate(ADA, SOON).await);
    assert_eq!(
        ada.get(&app.url("/auth/me")).await.status(),
        StatusCode::UNAUTHORIZED,
        "the refresh token died with the authorization"
    );
}

#[tokio::test]
async fn twenty_requests_at_once_after_expiry_make_exactly_one_refresh() {
    let app = app().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    expire(&app);
    // Slow GitHub down so that every request arrives while the first
    // refresh is still under way.
    app.github.set_delay(Duration::from_millis(200));
    let answers =
        futures_util::future::join_all((0..20).map(|_| ada.auth(&app, "private-ops"))).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    assert_eq!(app.github.refreshes(), 1);
    app.github.set_delay(Duration::ZERO);
    app.settled().await;
    assert!(app.pusher.terminated().is_empty());
}

#[tokio::test]
async fn each_refresh_uses_the_refresh_token_the_last_one_gave() {
    let app = app().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    for round in 1..=3 {
        expire(&app);
        let (status, body) = ada.auth(&app, "private-ops").await;
        assert_eq!(status, StatusCode::OK, "expiry {round}: {body}");
        assert_eq!(app.github.refreshes(), round);
    }
    let me: Value = ada.get(&app.url("/auth/me")).await.json().await.unwrap();
    assert_eq!(me["login"], "ada", "{me}");
    assert!(app.pusher.terminated().is_empty());
}

#[tokio::test]
async fn a_refresh_token_github_refuses_ends_the_session_its_app_tokens_and_connections() {
    let app = app().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, _) = ada.bot(&app, "ci").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    someone_else_spends_the_refresh_token(&app).await;

    expire(&app);
    assert_eq!(
        ada.auth(&app, "private-ops").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ada.get(&app.url("/auth/me")).await.status(),
        StatusCode::UNAUTHORIZED,
        "the session is ended"
    );
    assert_eq!(
        bot.me(&app).await.0,
        StatusCode::UNAUTHORIZED,
        "and its app token"
    );
    assert!(
        app.pusher.wait_for_terminate(ADA, SOON).await,
        "her connections are ended"
    );
    assert_eq!(refreshes_counted(&app.scrape().await, "refused"), 2.0);
}

#[tokio::test]
async fn github_down_during_a_refresh_answers_503_and_ends_nothing() {
    let app = app().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    expire(&app);
    app.github.set_down(true);
    let (status, body) = ada.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(refreshes_counted(&app.scrape().await, "error"), 1.0);
    // A client that keeps asking does not become a flood of refreshes.
    for _ in 0..5 {
        assert_eq!(
            ada.auth(&app, "private-ops").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(
        refreshes_counted(&app.scrape().await, "error"),
        1.0,
        "backed off"
    );

    app.github.set_down(false);
    app.clock.advance(channelgate::web::refresh::BACK_OFF);
    let (status, body) = ada.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::OK, "the session survived: {body}");
    assert_eq!(refreshes_counted(&app.scrape().await, "ok"), 1.0);
    app.settled().await;
    assert!(app.pusher.terminated().is_empty());
}

#[tokio::test]
async fn a_device_login_token_is_refreshed_and_keeps_working() {
    let app = app().await;
    let (device, _) = approved_device(&app, "ada").await;
    for round in 1..=2 {
        expire(&app);
        let (status, me) = device.me(&app).await;
        assert_eq!(status, StatusCode::OK, "expiry {round}: {me}");
        assert_eq!(me["login"], "ada");
        assert_eq!(app.github.refreshes(), round);
    }
}

#[tokio::test]
async fn an_app_token_takes_the_pair_its_session_refreshed() {
    let app = app().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, _) = ada.bot(&app, "ci").await;
    expire(&app);
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    let (status, me) = bot.me(&app).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        app.github.refreshes(),
        1,
        "the dead refresh token is not spent again"
    );
    // Both hold the new pair and its due time: neither refreshes again.
    app.clock.advance(channelgate::session::HOLD_FOR);
    assert_eq!(bot.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(bot.me(&app).await.0, StatusCode::OK);
    assert_eq!(app.github.refreshes(), 1);
}

#[tokio::test]
async fn no_github_token_or_refresh_token_reaches_a_log() {
    let (logs, _guard) = capture_info_logs();
    let app = app().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    expire(&app);
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    let (bo, _) = (Browser::logged_in_as(&app, "bo").await, ());
    app.github.revoke_tokens("bo");
    expire(&app);
    assert_eq!(
        bo.get(&app.url("/auth/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.settled().await;

    let text = logs.text();
    assert!(text.contains("GitHub token refreshed"), "{text}");
    assert!(
        text.contains("GitHub refused to refresh the token"),
        "{text}"
    );
    for secret in ["ghu_", "ghr_"] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
    let metrics = app.scrape().await;
    assert!(!metrics.contains("ghu_") && !metrics.contains("ghr_"));
}

/// Two instances on `store`, one session used on both at once, three
/// expiries in a row: every request is answered 200, GitHub sees exactly
/// one refresh per expiry, and no connection is ended.
async fn two_instances_refresh_once_between_them(store: &str) {
    let (a, b) = two_sharing(store).await;
    a.github.set_token_lifetime(Some(EIGHT_HOURS));
    let ada = Browser::logged_in_as(&a, "ada").await;
    assert_eq!(ada.auth(&b, "private-ops").await.0, StatusCode::OK);
    for round in 1..=3 {
        let later = EIGHT_HOURS + Duration::from_secs(1);
        a.clock.advance(later);
        b.clock.advance(later);
        a.github.advance_clock(later);
        // Slow enough that both instances ask while the refresh is under way.
        a.github.set_delay(Duration::from_millis(200));
        let on_a = futures_util::future::join_all((0..10).map(|_| ada.auth(&a, "private-ops")));
        let on_b = futures_util::future::join_all((0..10).map(|_| ada.auth(&b, "private-ops")));
        let (on_a, on_b) = tokio::join!(on_a, on_b);
        a.github.set_delay(Duration::ZERO);
        for (status, body) in on_a.iter().chain(&on_b) {
            assert_eq!(*status, StatusCode::OK, "expiry {round}: {body}");
        }
        assert_eq!(a.github.refreshes(), round, "one refresh per expiry");
    }
    a.settled().await;
    b.settled().await;
    assert!(a.pusher.terminated().is_empty() && b.pusher.terminated().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_sqlite_file_refresh_once_between_them_three_times() {
    let db = temp_dir("refresh").join("sessions.db");
    two_instances_refresh_once_between_them(&format!("sqlite://{}", db.display())).await;
    // The sessions and the refresh ledger hold every pair sealed: no
    // GitHub token or refresh token in clear in the file or its log.
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        let mut file = db.clone().into_os_string();
        file.push(suffix);
        bytes.extend(std::fs::read(&file).unwrap_or_default());
    }
    let files = String::from_utf8_lossy(&bytes);
    assert!(
        files.contains("channelgate_refreshes"),
        "the ledger is not where the test looks"
    );
    for prefix in ["ghu_", "ghr_"] {
        assert!(!files.contains(prefix), "{prefix} stored in clear");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server on this machine; .ci/run runs it"]
async fn two_instances_on_one_redis_refresh_once_between_them_three_times() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _redis = OwnRedis::start(port);
    two_instances_refresh_once_between_them(&format!("redis://127.0.0.1:{port}")).await;
}

#[tokio::test]
async fn a_refused_refresh_sends_the_persons_other_logins_back_to_github() {
    let app = app().await;
    let laptop = Browser::logged_in_as(&app, "ada").await;
    app.clock.advance(Duration::from_secs(3600));
    app.github.advance_clock(Duration::from_secs(3600));
    let phone = Browser::logged_in_as(&app, "ada").await;
    // The laptop's token is past its expiry; the phone's has an hour left,
    // and the phone has just read her membership.
    app.clock
        .advance(EIGHT_HOURS - Duration::from_secs(3600) + Duration::from_secs(1));
    app.github
        .advance_clock(EIGHT_HOURS - Duration::from_secs(3600) + Duration::from_secs(1));
    assert_eq!(phone.auth(&app, "private-ops").await.0, StatusCode::OK);
    // She revokes the app's authorization on GitHub (no webhook here).
    app.github.revoke_tokens("ada");
    assert_eq!(
        laptop.auth(&app, "private-ops").await.0,
        StatusCode::UNAUTHORIZED,
        "the laptop's refresh was refused"
    );
    // The phone's answer does not come from the membership read just
    // before: GitHub is asked again, and refuses.
    assert_eq!(
        phone.auth(&app, "private-ops").await.0,
        StatusCode::UNAUTHORIZED
    );
}
