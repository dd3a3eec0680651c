//! GitHub's device flow through the gateway: a device without a browser
//! gets a bearer token once its person approves on GitHub.

use std::time::Duration;

use github_standin::Endpoint;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Bot, Browser, TestApp, answer};

/// `POST path` with a JSON body, as a device (no cookies).
async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// Starts a device login (polls may follow at once).
async fn start(app: &TestApp) -> Value {
    app.github.set_device_timing(Duration::from_secs(900), 0);
    let (status, body) = post(app, "/auth/device", json!({ "name": "cli on my laptop" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn poll(app: &TestApp, device_code: &Value) -> (StatusCode, Value) {
    post(
        app,
        "/auth/device/token",
        json!({ "device_code": device_code }),
    )
    .await
}

/// A device logged in as `login` through the whole flow.
pub async fn approved_device(app: &TestApp, login: &str) -> (Bot, Value) {
    // Approved by hand, not by the switch a browser login leaves on.
    app.github.set_auto_consent(None);
    let started = start(app).await;
    assert!(
        app.github
            .approve_device(started["user_code"].as_str().unwrap(), login)
    );
    let (status, body) = poll(app, &started["device_code"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (Bot::new(body["access_token"].as_str().unwrap()), body)
}

#[tokio::test]
async fn a_device_waits_for_approval_then_gets_a_token_once() {
    let app = TestApp::new().spawn().await;
    let started = start(&app).await;
    for field in ["device_code", "user_code", "verification_uri"] {
        assert!(started[field].is_string(), "{field}: {started}");
    }
    assert_eq!(started["expires_in"], 900);
    assert_eq!(started["interval"], 0);
    assert_eq!(
        started["verification_uri"],
        format!("{}/login/device", app.github.web_url())
    );
    // Not GitHub's code: only the gateway can poll with it.
    let code = started["device_code"].as_str().unwrap();
    assert!(code.len() > 100, "{code}");

    let (status, body) = poll(&app, &started["device_code"]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("authorization_pending"))
    );

    assert!(
        app.github
            .approve_device(started["user_code"].as_str().unwrap(), "ada")
    );
    let (status, body) = poll(&app, &started["device_code"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 30 * 86_400, "session.max_age");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("cg_") && token.len() == 46, "{token}");
    assert!(
        !app.github
            .issued_token_values()
            .iter()
            .any(|g| body.to_string().contains(g))
    );

    let device = Bot::new(token);
    assert_eq!(device.me(&app).await.1["login"], "ada");
    assert_eq!(device.auth(&app, "private-ops").await.0, StatusCode::OK);

    // The code worked once.
    let calls = app.github.calls(Endpoint::AccessToken);
    let (status, body) = poll(&app, &started["device_code"]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    assert_eq!(
        app.github.calls(Endpoint::AccessToken),
        calls,
        "answered without GitHub"
    );

    // Its person sees it, named as the device asked, and can revoke it.
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (_, list) = ada.tokens(&app).await;
    assert_eq!(list["tokens"][0]["name"], "cli on my laptop");
    assert_eq!(list["tokens"][0]["kind"], "device");
    let id = list["tokens"][0]["id"].as_str().unwrap();
    assert_eq!(ada.revoke_token(&app, id).await, StatusCode::NO_CONTENT);
    assert_eq!(device.me(&app).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refused_device_is_told_access_denied_for_good() {
    let app = TestApp::new().spawn().await;
    let started = start(&app).await;
    assert!(
        app.github
            .deny_device(started["user_code"].as_str().unwrap())
    );
    for _ in 0..2 {
        let (status, body) = poll(&app, &started["device_code"]).await;
        assert_eq!(
            (status, body["error"].clone()),
            (StatusCode::BAD_REQUEST, json!("access_denied"))
        );
    }
    assert_eq!(app.github.calls(Endpoint::AccessToken), 1);
}

#[tokio::test]
async fn an_expired_device_code_is_told_expired_token() {
    let app = TestApp::new().spawn().await;
    // Expired at GitHub first: GitHub's answer is passed on.
    app.github.set_device_timing(Duration::from_millis(20), 0);
    let (_, started) = post(&app, "/auth/device", json!({})).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (status, body) = poll(&app, &started["device_code"]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("expired_token"))
    );
    assert_eq!(app.github.calls(Endpoint::AccessToken), 1);
    // Past its expires_in by the gateway's clock: answered without GitHub.
    let started = start(&app).await;
    app.clock.advance(Duration::from_secs(901));
    let (status, body) = poll(&app, &started["device_code"]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("expired_token"))
    );
    assert_eq!(app.github.calls(Endpoint::AccessToken), 1);
}

#[tokio::test]
async fn a_device_that_polls_too_fast_is_slowed_down_without_asking_github() {
    let app = TestApp::new().spawn().await;
    app.github.set_device_timing(Duration::from_secs(900), 5);
    let (_, started) = post(&app, "/auth/device", json!({})).await;
    assert_eq!(started["interval"], 5);
    let (_, first) = poll(&app, &started["device_code"]).await;
    assert_eq!(first["error"], "authorization_pending");
    let (status, second) = poll(&app, &started["device_code"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(second["error"], "slow_down");
    assert_eq!(second["interval"], 10, "5 more seconds, as RFC 8628 says");
    assert_eq!(app.github.calls(Endpoint::AccessToken), 1);
}

#[tokio::test]
async fn a_code_the_gateway_did_not_issue_is_refused_without_asking_github() {
    let app = TestApp::new().spawn().await;
    // Instances that share session.encryption_key_base64 answer each
    // other's codes; this one has a key of its own.
    let other = TestApp::new()
        .with_config(|c| c.session.encryption_key = None)
        .spawn()
        .await;
    let foreign = start(&other).await["device_code"].clone();
    for code in [
        json!("abc"),
        json!("3584d83530557fdd1f46af8289938c8ef79f9dc5"),
        foreign,
        json!(""),
    ] {
        let (status, body) = poll(&app, &code).await;
        assert_eq!(
            (status, body["error"].clone()),
            (StatusCode::BAD_REQUEST, json!("invalid_grant")),
            "{code}"
        );
    }
    let (status, body) = post(&app, "/auth/device/token", json!({})).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    let (status, body) = post(&app, "/auth/device/token", json!({ "device_code": 7 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let text = reqwest::Client::new()
        .post(app.url("/auth/device/token"))
        .header("content-type", "text/plain")
        .body("device_code=x")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.github.calls(Endpoint::AccessToken), 0);
    let (status, _) = post(&app, "/auth/device", json!({ "name": "a\u{7}b" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_device_login_fails_closed_when_github_is_down() {
    let app = TestApp::new().spawn().await;
    app.github.set_down(true);
    let (status, body) = post(&app, "/auth/device", json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    app.github.set_down(false);
    let started = start(&app).await;
    assert!(
        app.github
            .approve_device(started["user_code"].as_str().unwrap(), "ada")
    );
    app.github.set_down(true);
    let (status, body) = poll(&app, &started["device_code"]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.get("access_token").is_none());
    // Once GitHub is back the same code still works.
    app.github.set_down(false);
    let (status, body) = poll(&app, &started["device_code"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_stand_in_page_lets_a_person_approve_a_device() {
    let app = TestApp::new().spawn().await;
    let started = start(&app).await;
    let page = reqwest::get(started["verification_uri"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Device activation"));
    // As a person types it: lower case, no dash.
    let typed = started["user_code"]
        .as_str()
        .unwrap()
        .replace('-', "")
        .to_lowercase();
    let approved = reqwest::Client::new()
        .post(started["verification_uri"].as_str().unwrap())
        .form(&[("user_code", typed.as_str()), ("login", "bo")])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
    assert!(approved.text().await.unwrap().contains("connected"));
    let (status, body) = poll(&app, &started["device_code"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let device = Bot::new(body["access_token"].as_str().unwrap());
    assert_eq!(device.me(&app).await.1["login"], "bo");
}

#[tokio::test]
async fn a_device_login_that_cannot_finish_gives_githubs_token_back() {
    let app = TestApp::new().spawn().await;
    let started = start(&app).await;
    assert!(
        app.github
            .approve_device(started["user_code"].as_str().unwrap(), "ada")
    );
    // GitHub issues the token, then its API answers garbage: the gateway
    // cannot learn who approved, so it makes no token of its own.
    app.github.set_malformed(true);
    let (status, body) = poll(&app, &started["device_code"]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.get("access_token").is_none());
    app.github.set_malformed(false);
    assert_eq!(app.github.calls(Endpoint::RevokeToken), 1);
    // The token GitHub issued no longer works there.
    assert!(
        app.github.issued_token_values().is_empty(),
        "revoked at GitHub"
    );
}

#[tokio::test]
async fn with_the_device_flow_off_its_routes_do_not_exist() {
    let app = TestApp::new()
        .with_config(|c| c.device.enabled = false)
        .spawn()
        .await;
    let (status, body) = post(&app, "/auth/device", json!({ "name": "cli" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "no such route");
    let (status, _) = post(
        &app,
        "/auth/device/token",
        json!({ "device_code": "x".repeat(40) }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A reload turns it back on.
    let state = app.state();
    let mut config = state.config().as_ref().clone();
    config.device.enabled = true;
    state.reload(config).await;
    let (status, body) = post(&app, "/auth/device", json!({ "name": "cli" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
