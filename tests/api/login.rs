//! Logging in with GitHub and out again.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Browser, TestApp, location, query_param, token_calls};

#[tokio::test]
async fn login_me_and_logout_round_trip() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();

    let me = browser.get(&app.url("/auth/me")).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);

    let response = browser.login_as(&app, "ada", Some("/welcome")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/welcome");

    let me = browser.get(&app.url("/auth/me")).await;
    assert_eq!(me.status(), StatusCode::OK);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["id"], 1);
    assert_eq!(body["login"], "ada");
    assert_eq!(body["name"], "Ada Lovelace");
    assert!(body["avatar_url"].as_str().unwrap().starts_with("http"));
    assert!(!body.to_string().contains("gho_"), "no token in {body}");

    let home = browser.get(&app.url("/")).await.text().await.unwrap();
    assert!(
        home.contains("Ada Lovelace") && home.contains("Log out"),
        "{home}"
    );

    let out = browser.log_out(&app).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/");
    let me = browser.get(&app.url("/auth/me")).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let home = browser.get(&app.url("/")).await.text().await.unwrap();
    assert!(home.contains("Log in with GitHub"), "{home}");
}

#[tokio::test]
async fn authorize_request_carries_state_and_pkce_s256() {
    let app = TestApp::new().spawn().await;
    let authorize = Browser::new().start_login(&app, None).await;
    let url = reqwest::Url::parse(&authorize).unwrap();
    assert!(authorize.starts_with(&format!("{}/login/oauth/authorize?", app.github.web_url())));
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], crate::helpers::CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 16);
    assert_eq!(q["redirect_uri"], app.url("/auth/callback"));
    assert_eq!(q["scope"], "read:org");
}

#[tokio::test]
async fn a_wrong_state_is_refused_before_any_token_request() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();
    let authorize = browser.start_login(&app, None).await;
    let callback = browser.consent(&app, &authorize, "ada").await;
    let forged = callback.replace("state=", "state=x");
    let response = browser.get(&forged).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("does not belong to this browser"), "{page}");
    assert!(page.contains("Try again"), "{page}");
    assert_eq!(token_calls(&app), 0);
    // The state was used up by the attempt: the genuine callback fails too.
    assert_eq!(
        browser.get(&callback).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(token_calls(&app), 0);
}

#[tokio::test]
async fn a_missing_state_is_refused_before_any_token_request() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();
    let authorize = browser.start_login(&app, None).await;
    let callback = browser.consent(&app, &authorize, "ada").await;
    let mut url = reqwest::Url::parse(&callback).unwrap();
    url.set_query(Some(&format!("code={}", query_param(&callback, "code"))));
    let response = browser.get(url.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(token_calls(&app), 0);
}

#[tokio::test]
async fn a_reused_state_is_refused_without_another_token_request() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();
    let authorize = browser.start_login(&app, None).await;
    let callback = browser.consent(&app, &authorize, "ada").await;
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(token_calls(&app), 1);
    let replay = browser.get(&callback).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(
        replay
            .text()
            .await
            .unwrap()
            .contains("No login in progress")
    );
    assert_eq!(token_calls(&app), 1);
}

#[tokio::test]
async fn a_callback_from_another_browser_is_refused() {
    let app = TestApp::new().spawn().await;
    let victim = Browser::new();
    let attacker = Browser::new();
    // The attacker starts a login and lures the victim to its callback.
    let authorize = attacker.start_login(&app, None).await;
    let callback = attacker.consent(&app, &authorize, "bo").await;
    let response = victim.get(&callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(token_calls(&app), 0);
    assert_eq!(
        victim.get(&app.url("/auth/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_session_id_changes_at_login_and_the_old_cookie_dies_at_logout() {
    let app = TestApp::new().spawn().await;
    // An attacker plants the id of a session of theirs in the victim's browser.
    let attacker = Browser::logged_in_as(&app, "bo").await;
    let before = attacker.session_cookie(&app.url("/")).unwrap();
    let browser = Browser::new();
    browser.jar.add_cookie_str(
        &format!("channelgate={before}; Path=/"),
        &app.url("/").parse().unwrap(),
    );
    let authorize = browser.start_login(&app, None).await;
    let callback = browser.consent(&app, &authorize, "ada").await;
    browser.get(&callback).await;
    let after = browser
        .session_cookie(&app.url("/"))
        .expect("a cookie after login");
    assert_ne!(before, after, "the session id must change at login");

    // The pre-login id does not reach the logged-in session.
    let fixated = reqwest::Client::new()
        .get(app.url("/auth/me"))
        .header("cookie", format!("channelgate={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(fixated.status(), StatusCode::UNAUTHORIZED);

    browser.log_out(&app).await;
    let replayed = reqwest::Client::new()
        .get(app.url("/auth/me"))
        .header("cookie", format!("channelgate={after}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
}

/// Every `Set-Cookie` of a response.
fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_session_cookie_is_httponly_and_samesite_lax() {
    let app = TestApp::new().spawn().await;
    let response = Browser::new().login_as(&app, "ada", None).await;
    let cookies = set_cookies(&response);
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("channelgate="))
        .unwrap_or_else(|| panic!("{cookies:?}"));
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http gets no Secure: {cookie}"
    );
}

#[tokio::test]
async fn return_to_elsewhere_lands_on_the_home_page() {
    let app = TestApp::new().spawn().await;
    for evil in [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let browser = Browser::new();
        let response = browser.login_as(&app, "ada", Some(evil)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{evil}");
        assert_eq!(location(&response), "/", "{evil}");
    }
}

#[tokio::test]
async fn declining_on_github_shows_a_page_that_offers_to_try_again() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();
    let authorize = browser.start_login(&app, None).await;
    app.github.set_deny_consent(true);
    let callback = crate::helpers::location(&browser.get(&authorize).await);
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("You declined on GitHub") && page.contains("Try again"),
        "{page}"
    );
    assert_eq!(token_calls(&app), 0);
}

#[tokio::test]
async fn a_used_code_is_reported_as_refused_by_github() {
    let app = TestApp::new().spawn().await;
    let first = Browser::new();
    let authorize = first.start_login(&app, None).await;
    let callback = first.consent(&app, &authorize, "ada").await;
    first.get(&callback).await;
    // Another browser with its own login in progress, handed the spent code.
    let second = Browser::new();
    let authorize = second.start_login(&app, None).await;
    let own_state = query_param(&authorize, "state");
    let code = query_param(&callback, "code");
    let mut url = reqwest::Url::parse(&callback).unwrap();
    url.query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", &own_state);
    let response = second.get(url.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("did not accept the login code"), "{page}");
    // The code is spent: GitHub no longer knows it.
    assert!(page.contains("bad_verification_code"), "{page}");
}

#[tokio::test]
async fn github_down_at_login_is_a_502_page_not_a_crash() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();
    let authorize = browser.start_login(&app, None).await;
    let callback = browser.consent(&app, &authorize, "ada").await;
    app.github.set_down(true);
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let page = response.text().await.unwrap();
    assert!(page.contains("Try again"), "{page}");
    assert_eq!(
        browser.get(&app.url("/auth/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn each_login_rereads_the_membership() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let form = [("socket_id", "1.2"), ("channel_name", "private-ops")];
    let auth = |browser: &Browser| {
        browser
            .http
            .post(app.url("/pusher/auth"))
            .form(&form)
            .send()
    };
    assert_eq!(auth(&ada).await.unwrap().status(), StatusCode::OK);
    app.github.remove_from_team("ada", "initech", "ops");
    // Well within the TTL, but a new login reads GitHub again.
    let again = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(auth(&again).await.unwrap().status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::new().spawn().await;
    let response = Browser::new().get(&app.url("/healthz")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn over_https_cookies_are_secure_and_host_prefixed() {
    let app = TestApp::new().https().spawn().await;
    let response = Browser::new().get(&app.url("/auth/login")).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-channelgate-login="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Domain"), "{cookie}");
}

#[tokio::test]
async fn a_login_in_progress_lives_in_a_sealed_cookie_for_as_long_as_a_login_may_take() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();
    let start = browser.get(&app.url("/auth/login")).await;
    let cookies = set_cookies(&start);
    assert_eq!(
        cookies.len(),
        1,
        "no session is made for a visitor: {cookies:?}"
    );
    let cookie = &cookies[0];
    assert!(cookie.starts_with("channelgate-login="), "{cookie}");
    assert!(cookie.contains("Max-Age=600"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    // Sealed: neither the state nor the verifier can be read from it.
    let authorize = location(&start);
    let state = query_param(&authorize, "state");
    assert!(!cookie.contains(&state), "{cookie}");
    let callback = browser.consent(&app, &authorize, "ada").await;
    let done = browser.get(&callback).await;
    let cookies = set_cookies(&done);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("channelgate=") && c.contains("Max-Age=604800")),
        "the full TTL once logged in: {cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("channelgate-login=;") && c.contains("Max-Age=0")),
        "the login cookie is cleared: {cookies:?}"
    );
}

#[tokio::test]
async fn logout_clears_the_cookie_and_refuses_other_origins() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let foreign = ada
        .http
        .post(app.url("/auth/logout"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(ada.get(&app.url("/auth/me")).await.status(), StatusCode::OK);
    let out = ada
        .http
        .post(app.url("/auth/logout"))
        .header("origin", app.url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cookie = out.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("Max-Age=0"),
        "the cookie is removed: {cookie}"
    );
    assert_eq!(
        ada.get(&app.url("/auth/me")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn personal_answers_are_not_cacheable() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    for path in ["/", "/auth/me"] {
        let response = ada.get(&app.url(path)).await;
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    let js = ada.get(&app.url("/assets/home.js")).await;
    assert!(
        js.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
}

#[tokio::test]
async fn the_callback_reads_user_orgs_and_teams_at_once() {
    let app = TestApp::new().spawn().await;
    let browser = Browser::new();
    let authorize = browser.start_login(&app, None).await;
    let callback = browser.consent(&app, &authorize, "ada").await;
    // Every GitHub answer now waits a moment: reads made one after another
    // never overlap, reads made together all do.
    app.github.set_delay(std::time::Duration::from_millis(150));
    app.github.reset_counters();
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.github.most_at_once(),
        3,
        "/user, the org memberships and the teams are read together"
    );
    app.github.set_delay(std::time::Duration::ZERO);
    let me: Value = browser
        .get(&app.url("/auth/me"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["login"], "ada");
    assert!(me["orgs"].is_array(), "{me}");
}

#[tokio::test]
async fn over_https_the_removal_of_the_session_cookie_carries_its_attributes() {
    // Browsers ignore a __Host- cookie without Secure, removal included:
    // a removal that lacks it leaves the dead session id in the browser.
    let app = TestApp::new().https().spawn().await;
    let ended = tower_sessions::session::Id::default();
    let response = Browser::new()
        .http
        .get(app.url("/auth/me"))
        .header("cookie", format!("__Host-channelgate={ended}"))
        .send()
        .await
        .unwrap();
    let removal = removal_carrying(&response, "__Host-channelgate=", &["Secure"]);
    assert!(!removal.contains("Domain"), "{removal}");
}

/// The removal of the cookie `prefix` starts with, among `response`'s
/// `Set-Cookie`s, checked for the attributes the cookie is set with (and
/// `more` of them).
fn removal_carrying(response: &reqwest::Response, prefix: &str, more: &[&str]) -> String {
    let cookies = set_cookies(response);
    let removal = cookies
        .iter()
        .find(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("{prefix} is not removed: {cookies:?}"))
        .clone();
    for attribute in ["Max-Age=0", "HttpOnly", "SameSite=Lax", "Path=/"]
        .iter()
        .chain(more)
    {
        assert!(removal.contains(attribute), "{attribute}: {removal}");
    }
    removal
}

#[tokio::test]
async fn a_logout_removes_the_cookie_as_it_was_set() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let out = ada
        .http
        .post(app.url("/auth/logout"))
        .header("origin", app.url.clone())
        .send()
        .await
        .unwrap();
    let removal = removal_carrying(&out, "channelgate=", &[]);
    assert!(!removal.contains("Secure"), "not over http: {removal}");
}

#[tokio::test]
async fn malformed_session_cookies_are_counted_and_logged_once_a_minute() {
    // Anyone can send a cookie: one log line per request would let a
    // stranger flood the log.
    crate::helpers::ask_every_log_line();
    let captured = crate::helpers::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(channelgate::cli::log_filter("info"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::new()
        .with_config(|c| c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap()))
        .spawn()
        .await;
    for i in 0..30 {
        let response = Browser::new()
            .http
            .get(app.url("/healthz"))
            .header("cookie", format!("channelgate=not-a-session-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let metrics = app.scrape().await;
    assert_eq!(
        crate::helpers::metric(&metrics, "channelgate_malformed_session_cookies_total"),
        30.0,
        "{metrics}"
    );
    let log = captured.text();
    assert_eq!(log.matches("malformed session cookie").count(), 1, "{log}");
    assert!(!log.contains("possibly suspicious activity"), "{log}");
}
