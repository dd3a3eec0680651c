//! Logging out ends what a person expects to end: with `everywhere=true`
//! every session and token of theirs on every instance; the GitHub token
//! of what ended is revoked at GitHub unless a bearer token still holds it;
//! and a login past `session.max_per_person` ends the oldest session.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    Browser, OwnRedis, TestApp, capture_json_logs, stand_in, temp_dir, two_sharing,
};

/// `GET /auth/me`'s status for `browser` at `app`.
async fn me(browser: &Browser, app: &TestApp) -> StatusCode {
    browser.get(&app.url("/auth/me")).await.status()
}

/// Logs `login` in with a fresh browser; gives it and the GitHub token
/// its session holds (the one token the stand-in issued meanwhile).
async fn logged_in_with_token(app: &TestApp, login: &str) -> (Browser, String) {
    let before = app.github.issued_token_values();
    let browser = Browser::logged_in_as(app, login).await;
    let mut new: Vec<String> = app
        .github
        .issued_token_values()
        .into_iter()
        .filter(|t| !before.contains(t))
        .collect();
    assert_eq!(new.len(), 1, "one GitHub token for one login");
    (browser, new.remove(0))
}

/// Whether GitHub (the stand-in) still accepts `token`.
async fn github_accepts(app: &TestApp, token: &str) -> bool {
    let status = reqwest::Client::new()
        .get(format!("{}/user", app.github.api_url()))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
        "{status}"
    );
    status == StatusCode::OK
}

/// `POST /auth/logout` as the home page's "Log out everywhere" button sends it.
async fn log_out_everywhere(browser: &Browser, app: &TestApp) -> StatusCode {
    browser
        .http
        .post(app.url("/auth/logout"))
        .form(&[("everywhere", "true")])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn logging_out_everywhere_ends_the_persons_other_sessions_and_tokens_not_anothers() {
    let app = TestApp::new().spawn().await;
    let (here, here_token) = logged_in_with_token(&app, "ada").await;
    let (laptop, laptop_token) = logged_in_with_token(&app, "ada").await;
    let (ci, _) = laptop.bot(&app, "ci").await;
    let (bo, bo_token) = logged_in_with_token(&app, "bo").await;
    let (bo_ci, _) = bo.bot(&app, "ci").await;
    for status in [me(&laptop, &app).await, ci.me(&app).await.0] {
        assert_eq!(status, StatusCode::OK, "used before the logout");
    }
    // The home page offers it as a plain form, which the test posts as is.
    let home = here.get(&app.url("/")).await.text().await.unwrap();
    assert!(
        home.contains(r#"<input type="hidden" name="everywhere" value="true">"#)
            && home.contains("Log out everywhere"),
        "{home}"
    );

    assert_eq!(log_out_everywhere(&here, &app).await, StatusCode::SEE_OTHER);

    assert_eq!(me(&here, &app).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me(&laptop, &app).await,
        StatusCode::UNAUTHORIZED,
        "the other browser"
    );
    assert_eq!(
        ci.me(&app).await.0,
        StatusCode::UNAUTHORIZED,
        "the app token"
    );
    assert_eq!(me(&bo, &app).await, StatusCode::OK, "another person");
    assert_eq!(
        bo_ci.me(&app).await.0,
        StatusCode::OK,
        "another person's token"
    );
    // Every GitHub token of the person is given back; bo's is not.
    assert!(!github_accepts(&app, &here_token).await);
    assert!(!github_accepts(&app, &laptop_token).await);
    assert!(github_accepts(&app, &bo_token).await);
    assert_eq!(app.github.revoked_by_app(), 2);
}

#[tokio::test]
async fn a_bearer_token_logging_out_everywhere_as_json_ends_the_browser_sessions_too() {
    let app = TestApp::new().spawn().await;
    let (browser, token) = logged_in_with_token(&app, "ada").await;
    let (ci, _) = browser.bot(&app, "ci").await;
    let (other, _) = browser.bot(&app, "other").await;
    let status = ci
        .http
        .post(app.url("/auth/logout"))
        .json(&json!({ "everywhere": true }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ci.me(&app).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(other.me(&app).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&browser, &app).await, StatusCode::UNAUTHORIZED);
    assert!(!github_accepts(&app, &token).await);
}

#[tokio::test]
async fn logging_out_everywhere_on_one_instance_ends_sessions_on_another_within_the_hold() {
    let dir = temp_dir("everywhere");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    everywhere_across(&store).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
#[ignore = "needs redis-server on this machine; .ci/run runs it"]
async fn with_redis_logging_out_everywhere_on_one_instance_ends_sessions_on_another() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _redis = OwnRedis::start(port);
    everywhere_across(&format!("redis://127.0.0.1:{port}")).await;
}

/// Two instances sharing `store`: a logout everywhere on one ends the
/// person's sessions and tokens on the other once its hold has passed.
async fn everywhere_across(store: &str) {
    let (a, b) = two_sharing(store).await;
    let here = Browser::logged_in_as(&a, "ada").await;
    let there = Browser::logged_in_as(&b, "ada").await;
    let (ci, _) = there.bot(&b, "ci").await;
    // Instance b holds what it decoded a moment ago.
    assert_eq!(me(&there, &b).await, StatusCode::OK);
    assert_eq!(ci.me(&b).await.0, StatusCode::OK);

    assert_eq!(log_out_everywhere(&here, &a).await, StatusCode::SEE_OTHER);

    // b may use its held identities for HOLD_FOR, never longer.
    b.clock.advance(channelgate::session::HOLD_FOR);
    assert_eq!(
        me(&there, &b).await,
        StatusCode::UNAUTHORIZED,
        "instance b kept a session ended everywhere on a"
    );
    assert_eq!(
        ci.me(&b).await.0,
        StatusCode::UNAUTHORIZED,
        "b kept the token"
    );
    assert_eq!(me(&there, &a).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_logout_revokes_the_sessions_github_token_but_not_one_a_bearer_token_still_holds() {
    let app = TestApp::new().spawn().await;
    let (phone, phone_token) = logged_in_with_token(&app, "ada").await;
    let (laptop, laptop_token) = logged_in_with_token(&app, "ada").await;
    // A token made on the home page holds its session's GitHub token.
    let (ci, _) = laptop.bot(&app, "ci").await;

    assert!(phone.log_out(&app).await.status().is_redirection());
    assert!(
        !github_accepts(&app, &phone_token).await,
        "the phone's GitHub token outlived its logout"
    );
    assert!(
        github_accepts(&app, &laptop_token).await,
        "another session's"
    );
    assert_eq!(me(&laptop, &app).await, StatusCode::OK);

    assert!(laptop.log_out(&app).await.status().is_redirection());
    assert!(
        github_accepts(&app, &laptop_token).await,
        "revoked though the app token still holds it"
    );
    assert_eq!(
        ci.me(&app).await.0,
        StatusCode::OK,
        "the app token works on"
    );
    assert_eq!(app.github.revoked_by_app(), 1);

    // The app token logging out gives nothing back: a bearer token cannot
    // know every browser session that may hold its GitHub token (one that
    // logged in before the per-person index existed is listed nowhere).
    assert_eq!(ci.log_out(&app).await, StatusCode::NO_CONTENT);
    assert!(github_accepts(&app, &laptop_token).await);
    assert_eq!(app.github.revoked_by_app(), 1);
}

#[tokio::test]
async fn a_login_past_max_per_person_ends_the_oldest_session_and_revokes_its_github_token() {
    let app = TestApp::new()
        .with_config(|c| c.session.max_per_person = 2)
        .spawn()
        .await;
    let (oldest, oldest_token) = logged_in_with_token(&app, "ada").await;
    let (older, older_token) = logged_in_with_token(&app, "ada").await;
    let (bo, _) = logged_in_with_token(&app, "bo").await;
    assert_eq!(me(&oldest, &app).await, StatusCode::OK, "two are allowed");

    let (newest, _) = logged_in_with_token(&app, "ada").await;

    assert_eq!(
        me(&oldest, &app).await,
        StatusCode::UNAUTHORIZED,
        "the oldest session outlived a login past session.max_per_person"
    );
    assert!(!github_accepts(&app, &oldest_token).await);
    for browser in [&older, &newest, &bo] {
        assert_eq!(me(browser, &app).await, StatusCode::OK);
    }
    assert!(github_accepts(&app, &older_token).await);
    assert_eq!(app.github.revoked_by_app(), 1);
}

#[tokio::test]
async fn a_logout_succeeds_though_github_cannot_revoke_and_no_github_token_is_logged() {
    let (logs, _guard) = capture_json_logs(tracing::Level::TRACE);
    let github = stand_in().await;
    let app = TestApp::new()
        .with_github(github)
        .with_config(|c| c.session.max_per_person = 1)
        .spawn()
        .await;
    let mut tokens = Vec::new();
    let (first, token) = logged_in_with_token(&app, "ada").await;
    tokens.push(token);
    // Past the most: the first session ends and its token is revoked.
    let (second, token) = logged_in_with_token(&app, "ada").await;
    tokens.push(token);
    assert_eq!(me(&first, &app).await, StatusCode::UNAUTHORIZED);
    let (ci, _) = second.bot(&app, "ci").await;
    let (bo, token) = logged_in_with_token(&app, "bo").await;
    tokens.push(token);

    // GitHub is down: the logout still ends the session, and says why
    // the token was kept.
    app.github.set_down(true);
    assert!(bo.log_out(&app).await.status().is_redirection());
    app.github.set_down(false);
    assert_eq!(me(&bo, &app).await, StatusCode::UNAUTHORIZED);
    assert!(
        logs.text().contains("could not be revoked at GitHub"),
        "{}",
        logs.text()
    );
    assert_eq!(
        log_out_everywhere(&second, &app).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(ci.me(&app).await.0, StatusCode::UNAUTHORIZED);

    let text = logs.text();
    assert!(text.contains("logged out everywhere"), "{text}");
    for token in &tokens {
        assert!(!text.contains(token.as_str()), "a GitHub token in the log");
    }
}

#[tokio::test]
#[ignore = "needs redis-server; .ci/run runs it"]
async fn with_redis_sessions_listed_at_once_by_three_instances_are_all_in_the_index() {
    use channelgate::session::people::People;
    use tower_sessions::SessionStore as _;
    use tower_sessions::session::{Id, Record};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _redis = OwnRedis::start(port);
    let choice = channelgate::config::SessionStore::Redis(channelgate::secret::Secret::new(
        format!("redis://127.0.0.1:{port}"),
    ));
    let key = channelgate::secret::Secret::new(vec![7u8; 32]);
    let tasks = channelgate::tasks::Tasks::default();
    let mut instances = Vec::new();
    for _ in 0..3 {
        let room = channelgate::room::Room::open(&choice).await.unwrap();
        let store = channelgate::session::Store::open(&room, Default::default(), &tasks)
            .await
            .unwrap();
        let keys = channelgate::crypto::Keys::new(Some(&key));
        instances.push((store.clone(), People::new(store, keys)));
    }
    let until = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let mut ids = Vec::new();
    for i in 0..30 {
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: until,
        };
        instances[i % 3].0.create(&mut record).await.unwrap();
        ids.push(record.id);
    }
    // Three instances list one person's sessions at the same moment.
    let adds = ids.iter().enumerate().map(|(i, id)| {
        let people = instances[i % 3].1.clone();
        let id = *id;
        async move { people.add(7, id, i as i64, until, 100).await.unwrap() }
    });
    futures_util::future::join_all(adds).await;
    let ended = instances[0].1.end_all(7).await.unwrap();
    assert_eq!(
        ended.len(),
        30,
        "a session lost from the index escapes a logout everywhere"
    );
}
