//! `POST /pusher/auth` and `/pusher/user-auth`: what gets signed, and what never does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use github_standin::{Endpoint, MembershipState};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{
    Browser, MASTER_KEY_BASE64, PUSHER_KEY, PUSHER_SECRET, SOCKET, TestApp, stand_in,
    stored_sessions,
};

/// HMAC-SHA256 with the app secret, hex: computed here, not by the gateway's code.
fn expected_auth(message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(PUSHER_SECRET.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{PUSHER_KEY}:{hex}")
}

#[tokio::test]
async fn an_allowed_private_channel_gets_a_signature_that_verifies() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let response = ada.auth_request(&app, "private-ops").await;
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "a signature is never cached"
    );
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["auth"],
        expected_auth(&format!("{SOCKET}:private-ops"))
    );
    assert_eq!(body.as_object().unwrap().len(), 1, "only auth: {body}");
}

#[tokio::test]
async fn a_presence_channel_signs_exactly_the_channel_data_it_returns() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (status, body) = ada.auth(&app, "presence-org-initech").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let channel_data = body["channel_data"].as_str().unwrap();
    assert_eq!(
        body["auth"],
        expected_auth(&format!("{SOCKET}:presence-org-initech:{channel_data}"))
    );
    let member: Value = serde_json::from_str(channel_data).unwrap();
    assert_eq!(member["user_id"], "1");
    assert_eq!(member["user_info"]["login"], "ada");
    assert_eq!(member["user_info"]["name"], "Ada Lovelace");
    assert!(
        member["user_info"]["avatar_url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
}

#[tokio::test]
async fn an_encrypted_channel_gets_its_shared_secret() {
    let app = TestApp::new().spawn().await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    let channel = "private-encrypted-initech-plans";
    let (status, body) = bo.auth(&app, channel).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auth"], expected_auth(&format!("{SOCKET}:{channel}")));
    let master = base64::engine::general_purpose::STANDARD
        .decode(MASTER_KEY_BASE64)
        .unwrap();
    let mut hash = Sha256::new();
    hash.update(channel.as_bytes());
    hash.update(&master);
    let expected = base64::engine::general_purpose::STANDARD.encode(hash.finalize());
    assert_eq!(body["shared_secret"], expected);
}

#[tokio::test]
async fn an_encrypted_channel_without_a_master_key_is_a_clear_server_error() {
    let app = TestApp::new()
        .with_config(|config| {
            config.pusher.encryption_master_key = None;
        })
        .spawn()
        .await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    let (status, body) = bo.auth(&app, "private-encrypted-initech-plans").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no encryption master key"),
        "{body}"
    );
    assert!(body.get("auth").is_none());
}

#[tokio::test]
async fn someone_outside_the_team_gets_403() {
    let app = TestApp::new().spawn().await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    let (status, body) = bo.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.get("auth").is_none());
    // The reason stays in the log; the client learns only the refusal.
    assert!(
        !body["error"].as_str().unwrap().contains("rules["),
        "{body}"
    );
}

#[tokio::test]
async fn a_pending_org_membership_grants_nothing() {
    let app = TestApp::new().spawn().await;
    // cy's initech membership is pending; the initech/ops team is listed.
    let cy = Browser::logged_in_as(&app, "cy").await;
    for channel in [
        "private-ops",
        "presence-org-initech",
        "private-team-initech.ops",
        "private-initech-roadmap",
    ] {
        assert_eq!(
            cy.auth(&app, channel).await.0,
            StatusCode::FORBIDDEN,
            "{channel}"
        );
    }
    // Only their own channel and the open one.
    assert_eq!(cy.auth(&app, "private-user-cy").await.0, StatusCode::OK);
    assert_eq!(cy.auth(&app, "private-lobby").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_pending_team_org_turns_active_only_when_github_says_so() {
    let app = TestApp::new().spawn().await;
    let cy = Browser::logged_in_as(&app, "cy").await;
    assert_eq!(cy.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
    app.github
        .set_org_state("cy", "initech", Some(MembershipState::Active));
    app.pass_the_ttl();
    assert_eq!(cy.auth(&app, "private-ops").await.0, StatusCode::OK);
}

#[tokio::test]
async fn another_persons_user_channel_gets_403() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(
        ada.auth(&app, "private-user-bo").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ada.auth(&app, "private-user-ada-x").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(ada.auth(&app, "private-user-ADA").await.0, StatusCode::OK);
    let dee = Browser::logged_in_as(&app, "Dee-Dash").await;
    assert_eq!(
        dee.auth(&app, "private-user-dee-dash").await.0,
        StatusCode::OK
    );
    assert_eq!(
        dee.auth(&app, "private-user-dee").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_logged_out_caller_gets_401() {
    let app = TestApp::new().spawn().await;
    let (status, body) = Browser::new().auth(&app, "private-lobby").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("log in"), "{body}");
    let (status, _) = Browser::new().sign_in(&app).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hostile_inputs_get_400_and_nothing_is_signed() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let form = "application/x-www-form-urlencoded";
    let long = format!("private-{}", "a".repeat(157));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "format injection in socket_id",
            "socket_id=1.1%3Aprivate-ops&channel_name=private-ops".into(),
            form,
        ),
        (
            "socket_id with a newline",
            "socket_id=1.1%0A&channel_name=private-ops".into(),
            form,
        ),
        (
            "socket_id with a space",
            "socket_id=1.1%20&channel_name=private-ops".into(),
            form,
        ),
        (
            "socket_id not numbers",
            "socket_id=abc.def&channel_name=private-ops".into(),
            form,
        ),
        (
            "socket_id one number",
            "socket_id=11&channel_name=private-ops".into(),
            form,
        ),
        (
            "socket_id fullwidth digits",
            "socket_id=%EF%BC%91.%EF%BC%91&channel_name=private-ops".into(),
            form,
        ),
        (
            "socket_id empty",
            "socket_id=&channel_name=private-ops".into(),
            form,
        ),
        ("socket_id missing", "channel_name=private-ops".into(), form),
        (
            "socket_id repeated",
            "socket_id=1.1&socket_id=2.2&channel_name=private-ops".into(),
            form,
        ),
        (
            "channel_name with a newline",
            "socket_id=1.1&channel_name=private-ops%0Aprivate-x".into(),
            form,
        ),
        (
            "channel_name with a colon",
            "socket_id=1.1&channel_name=private-ops%3Ax".into(),
            form,
        ),
        (
            "channel_name Cyrillic look-alike",
            "socket_id=1.1&channel_name=private-%D0%BEps".into(),
            form,
        ),
        (
            "channel_name with NUL",
            "socket_id=1.1&channel_name=private-ops%00".into(),
            form,
        ),
        (
            "channel_name with a space",
            "socket_id=1.1&channel_name=private+ops".into(),
            form,
        ),
        (
            "channel_name with a hash",
            "socket_id=1.1&channel_name=private-ops%23x".into(),
            form,
        ),
        (
            "channel_name 165 characters",
            format!("socket_id=1.1&channel_name={long}"),
            form,
        ),
        (
            "channel_name empty",
            "socket_id=1.1&channel_name=".into(),
            form,
        ),
        ("channel_name missing", "socket_id=1.1".into(), form),
        (
            "channel_name repeated",
            "socket_id=1.1&channel_name=private-ops&channel_name=private-lobby".into(),
            form,
        ),
        (
            "channel_name and a batch",
            "socket_id=1.1&channel_name=private-ops&channel_name%5B0%5D=private-lobby".into(),
            form,
        ),
        (
            "invalid UTF-8",
            "socket_id=1.1&channel_name=private-%FF".into(),
            form,
        ),
        (
            "a public channel",
            "socket_id=1.1&channel_name=news".into(),
            form,
        ),
        (
            "wrong content type",
            "socket_id=1.1&channel_name=private-ops".into(),
            "text/plain",
        ),
        (
            "no content type",
            "socket_id=1.1&channel_name=private-ops".into(),
            "",
        ),
        (
            "JSON declared, form sent",
            "socket_id=1.1&channel_name=private-ops".into(),
            "application/json",
        ),
        (
            "JSON with a bad socket_id",
            r#"{"socket_id":"1.1:x","channel_name":"private-ops"}"#.into(),
            "application/json",
        ),
        (
            "JSON with a repeated key",
            r#"{"socket_id":"1.1","channel_name":"private-ops","channel_name":"private-lobby"}"#
                .into(),
            "application/json",
        ),
        (
            "JSON with a number",
            r#"{"socket_id":1.1,"channel_name":"private-ops"}"#.into(),
            "application/json",
        ),
    ];
    assert!(cases.len() >= 20);
    for (what, body, content_type) in cases {
        let mut request = ada.http.post(app.url("/pusher/auth")).body(body);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {text}");
        let json: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
        assert!(json["error"].is_string(), "{what}: {text}");
        assert!(
            !text.contains(PUSHER_KEY),
            "{what}: something was signed: {text}"
        );
    }
}

#[tokio::test]
async fn errors_name_the_field() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (_, body) = ada
        .post_form(
            &app,
            "/pusher/auth",
            &[
                ("socket_id", "1.1:private-ops"),
                ("channel_name", "private-ops"),
            ],
        )
        .await;
    assert!(
        body["error"].as_str().unwrap().starts_with("socket_id"),
        "{body}"
    );
    let (_, body) = ada.auth(&app, "private-ops\n").await;
    assert!(
        body["error"].as_str().unwrap().starts_with("channel_name"),
        "{body}"
    );
}

#[tokio::test]
async fn json_bodies_are_accepted_too() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let response = ada
        .http
        .post(app.url("/pusher/auth"))
        .json(&serde_json::json!({"socket_id": SOCKET, "channel_name": "private-ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["auth"],
        expected_auth(&format!("{SOCKET}:private-ops"))
    );
}

#[tokio::test]
async fn the_batch_form_answers_each_channel_with_its_status() {
    let app = TestApp::new().spawn().await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    let (status, body) = bo
        .post_form(
            &app,
            "/pusher/auth",
            &[
                ("socket_id", SOCKET),
                ("channel_name[0]", "private-initech-roadmap"),
                ("channel_name[1]", "private-ops"),
                ("channel_name[2]", "presence-org-initech"),
                ("channel_name[3]", "private-bad:name"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["private-initech-roadmap"]["status"], 200);
    assert_eq!(
        body["private-initech-roadmap"]["data"]["auth"],
        expected_auth(&format!("{SOCKET}:private-initech-roadmap"))
    );
    assert_eq!(body["private-ops"], serde_json::json!({"status": 403}));
    assert_eq!(body["presence-org-initech"]["status"], 200);
    let data = body["presence-org-initech"]["data"]["channel_data"]
        .as_str()
        .unwrap();
    assert_eq!(
        body["presence-org-initech"]["data"]["auth"],
        expected_auth(&format!("{SOCKET}:presence-org-initech:{data}"))
    );
    assert_eq!(body["private-bad:name"], serde_json::json!({"status": 400}));
}

#[tokio::test]
async fn user_authentication_signs_the_github_identity() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (status, body) = ada.sign_in(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user_data = body["user_data"].as_str().unwrap();
    assert_eq!(
        body["auth"],
        expected_auth(&format!("{SOCKET}::user::{user_data}"))
    );
    let user: Value = serde_json::from_str(user_data).unwrap();
    assert_eq!(user["id"], "1");
    assert_eq!(user["user_info"]["login"], "ada");
    let (status, _) = ada
        .post_form(&app, "/pusher/user-auth", &[("socket_id", "1.1:x")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn requests_from_other_origins_are_refused() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let post = |origin: String| {
        ada.http
            .post(app.url("/pusher/auth"))
            .header("origin", origin)
            .form(&[("socket_id", SOCKET), ("channel_name", "private-ops")])
            .send()
    };
    assert_eq!(
        post("https://evil.example".into()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post("null".into()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // pusher.signin() too.
    let signin = ada
        .http
        .post(app.url("/pusher/user-auth"))
        .header("origin", "https://evil.example")
        .form(&[("socket_id", SOCKET)])
        .send()
        .await
        .unwrap();
    assert_eq!(signin.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        post(app.url.clone()).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_allowed_origin_may_call() {
    let app = TestApp::new()
        .with_config(|config| {
            config.server.allowed_origins = vec!["https://app.example".into()];
        })
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let response = ada
        .http
        .post(app.url("/pusher/auth"))
        .header("origin", "https://app.example")
        .form(&[("socket_id", SOCKET), ("channel_name", "private-ops")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // With CORS headers, so the page there may read the answer.
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );

    let preflight = |origin: &'static str| {
        ada.http
            .request(reqwest::Method::OPTIONS, app.url("/pusher/auth"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(ok.headers()["access-control-allow-methods"], "POST");
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn leaving_a_team_on_github_is_a_403_after_the_ttl() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.github.remove_from_team("ada", "initech", "ops");
    app.pass_the_ttl();
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn concurrent_first_requests_make_one_github_read() {
    // Log in on one gateway, then hit a second one (fresh cache, same
    // sessions through SQLite, the answer they share gone stale) with 100
    // requests at once.
    let dir = std::env::temp_dir().join(format!("channelgate-flight-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("s.db").display());
    let github = stand_in().await;
    let first = TestApp::new()
        .with_github(github.clone())
        .with_store(&store)
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&first, "ada").await;
    let second = TestApp::new()
        .with_github(github.clone())
        .with_store(&store)
        // One client with 100 connections at once: over the default 64.
        .with_config(|c| c.server.max_connections_per_client = 128)
        .spawn()
        .await;
    github.reset_counters();
    second.pass_the_ttl();

    let url = second.url("/pusher/auth");
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (http, url) = (ada.http.clone(), url.clone());
            tokio::spawn(async move {
                let form = [("socket_id", SOCKET), ("channel_name", "private-ops")];
                http.post(url).form(&form).send().await.unwrap().status()
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(github.calls(Endpoint::OrgMemberships), 1);
    assert_eq!(github.calls(Endpoint::Teams), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_unchanged_membership_is_refreshed_with_free_304s() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    app.github.reset_counters();
    app.pass_the_ttl();
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(app.github.calls(Endpoint::OrgMemberships), 1);
    assert_eq!(app.github.not_modified(Endpoint::OrgMemberships), 1);
    assert_eq!(app.github.not_modified(Endpoint::Teams), 1);
}

#[tokio::test]
async fn a_revoked_token_gives_401_and_ends_the_session() {
    let dir = std::env::temp_dir().join(format!("channelgate-revoked-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("s.db");
    let app = TestApp::new()
        .with_store(&format!("sqlite://{}", db.display()))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let cookie = ada.session_cookie(&app.url("/")).unwrap();
    app.github.revoke_tokens("ada");
    app.pass_the_ttl();
    let response = ada.auth_request(&app, "private-ops").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Really ended: the cookie is cleared and the record is gone, so even
    // the old cookie sent by hand finds nothing (GitHub refusing the token
    // again would also give 401, and prove nothing).
    let cleared = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cleared.starts_with("channelgate=") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let rows = stored_sessions(&db).await;
    assert_eq!(rows, 0, "the session record is deleted");
    app.github.reset_counters();
    let replay = reqwest::Client::new()
        .get(app.url("/auth/me"))
        .header("cookie", format!("channelgate={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.github.calls(Endpoint::User),
        0,
        "no session left to ask GitHub for"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn github_down_gives_503_without_a_grace() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    app.github.set_down(true);
    app.pass_the_ttl();
    let (status, body) = ada.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.get("auth").is_none());
}

#[tokio::test]
async fn github_down_serves_the_stale_answer_within_the_grace() {
    let app = TestApp::new()
        .with_config(|c| c.cache.stale_grace = Duration::from_secs(60))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    app.github.set_down(true);
    app.pass_the_ttl();
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    // The stale answer still only grants what it granted.
    assert_eq!(
        ada.auth(&app, "private-user-bo").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_person_who_burns_their_own_rate_limit_gets_no_stale_answer_and_is_asked_again_within_a_minute()
 {
    // A long grace: an outage would be served from the cache, but a rate
    // limit is the person's own token's, perhaps burnt on purpose to keep
    // a membership they lost.
    let app = TestApp::new()
        .with_config(|c| c.cache.stale_grace = Duration::from_secs(3600))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let an_hour_on = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    app.github.set_rate_limited(Some(an_hour_on));
    app.pass_the_ttl();
    app.github.reset_counters();
    let reads = || app.github.calls(Endpoint::OrgMemberships) + app.github.calls(Endpoint::Teams);
    assert_eq!(
        ada.auth(&app, "private-ops").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let after_first = reads();
    assert!(after_first >= 1);
    for _ in 0..5 {
        assert_eq!(
            ada.auth(&app, "private-ops").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(reads(), after_first, "no calls within the back-off");
    // Asked again after the back-off, not at the reset an hour away.
    app.clock.advance(Duration::from_secs(6));
    assert_eq!(
        ada.auth(&app, "private-ops").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(reads() > after_first, "asked again after 5 s");
    // However many failures, a read within a minute once GitHub answers.
    app.github.set_rate_limited(None);
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
}

#[tokio::test]
async fn malformed_github_answers_never_allow() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    app.github.set_malformed(true);
    app.pass_the_ttl();
    assert_eq!(
        ada.auth(&app, "private-ops").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn endless_pagination_does_not_hang_a_request() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    app.github.set_endless_pagination(true);
    app.github.set_page_size_cap(Some(1));
    app.pass_the_ttl();
    assert_eq!(
        ada.auth(&app, "private-ops").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_login_outside_githubs_grammar_fills_no_placeholder() {
    // GitHub (or an Enterprise server, or a proxy in front of it) answers
    // /user with a login GitHub could never give: a dot in it would fill
    // private-{login} into the namespace of another rule.
    let app = TestApp::new()
        .with_world(crate::helpers::world().user(78, "acme.evil", None).org(
            "acme.evil",
            "initech",
            MembershipState::Active,
        ))
        .with_config(|config| {
            config.rules = channelgate::rules::RuleSet::new(vec![
                crate::helpers::rule("private-{login}", &[], &[], false),
                crate::helpers::rule("private-acme.*", &[], &["initech/ops"], false),
                crate::helpers::rule("presence-lobby", &[], &[], true),
            ]);
            assert_eq!(config.rules.collisions(), [], "check-config accepts it");
        })
        .spawn()
        .await;
    let odd = Browser::logged_in_as(&app, "acme.evil").await;
    let (status, body) = odd.auth(&app, "private-acme.evil").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // What does not rest on the login still works.
    assert_eq!(odd.auth(&app, "presence-lobby").await.0, StatusCode::OK);
}
