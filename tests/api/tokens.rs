//! Bearer tokens for apps and bots: made on the home page, used without a
//! cookie, listed without ever being shown again, revoked at once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    Browser, PUSHER_KEY, SOCKET, TestApp, capture_info_logs, temp_dir, two_sharing,
};

#[tokio::test]
async fn a_token_made_in_the_browser_authorizes_as_its_person_without_a_cookie() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, _) = ada.bot(&app, "build bot").await;

    let (status, body) = bot.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The very signature the browser gets for the same socket and channel.
    assert_eq!(body, ada.auth(&app, "private-ops").await.1);
    assert!(body["auth"].as_str().unwrap().starts_with(PUSHER_KEY));

    let (status, presence) = bot.auth(&app, "presence-org-initech").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        presence["channel_data"]
            .as_str()
            .unwrap()
            .contains("\"login\":\"ada\"")
    );
    assert_eq!(bot.sign_in(&app).await.0, StatusCode::OK);
    let (status, me) = bot.me(&app).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["login"], "ada");
    assert_eq!(me["teams"], serde_json::json!(["initech/ops"]));

    // The rules apply as to the browser: a token is no wider than its person.
    assert_eq!(
        bot.auth(&app, "private-user-bo").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(bot.auth(&app, "private-user-ada").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_list_shows_names_and_times_but_never_a_token() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (first, first_id) = ada.bot(&app, "laptop").await;
    let (second, _) = ada.bot(&app, "build bot").await;
    assert_eq!(first.auth(&app, "private-ops").await.0, StatusCode::OK);

    let (status, body) = ada.tokens(&app).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.to_string();
    for token in [&first.token, &second.token] {
        assert!(!text.contains(token.as_str()), "{text}");
        assert!(!text.contains(&token[3..]), "{text}");
    }
    let tokens = body["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{text}");
    assert_eq!(tokens[0]["id"], first_id.as_str());
    assert_eq!(tokens[0]["name"], "laptop");
    assert_eq!(tokens[0]["kind"], "app");
    assert!(tokens[0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(tokens[0]["last_used_at"].is_string(), "used once: {text}");
    assert_eq!(tokens[1]["name"], "build bot");
    assert!(tokens[1]["last_used_at"].is_null(), "never used: {text}");

    // The home page lists them too, with nothing to copy.
    let page = ada.get(&app.url("/")).await.text().await.unwrap();
    assert!(page.contains("laptop") && page.contains("build bot"));
    assert!(!page.contains(first.token.as_str()));

    // Somebody else's list is their own.
    let bo = Browser::logged_in_as(&app, "bo").await;
    assert_eq!(bo.tokens(&app).await.1["tokens"], serde_json::json!([]));
}

#[tokio::test]
async fn a_revoked_token_stops_at_once_and_only_its_person_may_revoke_it() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, id) = ada.bot(&app, "bot").await;
    assert_eq!(bot.auth(&app, "private-ops").await.0, StatusCode::OK);

    let bo = Browser::logged_in_as(&app, "bo").await;
    assert_eq!(bo.revoke_token(&app, &id).await, StatusCode::NOT_FOUND);
    assert_eq!(
        bot.auth(&app, "private-ops").await.0,
        StatusCode::OK,
        "still ada's"
    );

    assert_eq!(ada.revoke_token(&app, &id).await, StatusCode::NO_CONTENT);
    // Within the moment an identity is held, too: this instance forgets it.
    let response = bot
        .request(reqwest::Method::POST, &app.url("/pusher/auth"))
        .form(&[("socket_id", SOCKET), ("channel_name", "private-ops")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(bot.me(&app).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(ada.revoke_token(&app, &id).await, StatusCode::NOT_FOUND);
    assert_eq!(ada.tokens(&app).await.1["tokens"], serde_json::json!([]));
}

#[tokio::test]
async fn tokens_are_managed_only_from_the_gateways_own_page_with_the_cookie() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, id) = ada.bot(&app, "bot").await;
    let post = |origin: Option<&str>, body: &str, content_type: &str| {
        let mut request = ada
            .http
            .post(app.url("/auth/tokens"))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let own = Some(app.url.as_str());
    for (origin, body, content_type, expected) in [
        (
            None,
            r#"{"name":"x"}"#,
            "application/json",
            StatusCode::FORBIDDEN,
        ),
        (
            Some("https://evil.example"),
            r#"{"name":"x"}"#,
            "application/json",
            StatusCode::FORBIDDEN,
        ),
        (
            own,
            r#"{"name":""}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            own,
            r#"{"name":"  "}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            own,
            r#"{"name":"a\nb"}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            own,
            r#"{"name":7}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (own, r#"{}"#, "application/json", StatusCode::BAD_REQUEST),
        (own, "{", "application/json", StatusCode::BAD_REQUEST),
        (own, "name=x", "text/plain", StatusCode::BAD_REQUEST),
        (
            own,
            "name=a&name=b",
            "application/x-www-form-urlencoded",
            StatusCode::BAD_REQUEST,
        ),
        (
            own,
            "name=from%20a%20form",
            "application/x-www-form-urlencoded",
            StatusCode::CREATED,
        ),
    ] {
        let response = post(origin, body, content_type).await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, expected, "{origin:?} {body}: {answer}");
        if status != StatusCode::CREATED {
            assert!(answer["error"].is_string(), "{answer}");
        }
    }
    let long = format!(r#"{{"name":"{}"}}"#, "x".repeat(101));
    assert_eq!(
        post(own, &long, "application/json").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        ada.tokens(&app).await.1["tokens"].as_array().unwrap().len(),
        2
    );

    // A bearer token cannot make, list or revoke tokens.
    for (method, path) in [
        (reqwest::Method::POST, "/auth/tokens".to_owned()),
        (reqwest::Method::GET, "/auth/tokens".to_owned()),
        (reqwest::Method::DELETE, format!("/auth/tokens/{id}")),
    ] {
        let response = bot
            .request(method.clone(), &app.url(&path))
            .header("origin", &app.url)
            .json(&serde_json::json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }

    // Revoking needs the page's Origin too.
    let foreign = ada
        .http
        .delete(app.url(&format!("/auth/tokens/{id}")))
        .send();
    assert_eq!(foreign.await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(bot.auth(&app, "private-ops").await.0, StatusCode::OK);

    // Logged out: nothing to manage.
    let nobody = Browser::new();
    assert_eq!(nobody.tokens(&app).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        nobody.create_token(&app, "x").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logging_out_with_a_token_revokes_it_and_nothing_else() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, _) = ada.bot(&app, "bot").await;
    let (other, _) = ada.bot(&app, "other").await;
    // No ambient credential: a foreign Origin does not matter.
    let response = bot
        .request(reqwest::Method::POST, &app.url("/auth/logout"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        bot.auth(&app, "private-ops").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        bot.log_out(&app).await,
        StatusCode::UNAUTHORIZED,
        "gone already"
    );
    assert_eq!(other.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    let names: Vec<_> = ada.tokens(&app).await.1["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, ["other"]);
}

#[tokio::test]
async fn a_malformed_unknown_or_foreign_authorization_is_401_never_500() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let unknown = format!("cg_{}", "A".repeat(43));
    let headers = [
        "Basic YWRhOnNlY3JldA==".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a".to_owned(),
        "Bearer cg_!!!".to_owned(),
        format!("Bearer {unknown}"),
        format!("Bearer {unknown}x"),
        format!("Token {unknown}"),
        String::new(),
    ];
    for header in &headers {
        for (method, path) in [
            ("POST", "/pusher/auth"),
            ("POST", "/pusher/user-auth"),
            ("GET", "/auth/me"),
            ("POST", "/auth/logout"),
        ] {
            // The browser's cookie rides along: a request that sends a
            // bearer header is answered by it alone.
            let response = ada
                .http
                .request(method.parse().unwrap(), app.url(path))
                .header("authorization", header)
                .form(&[("socket_id", SOCKET), ("channel_name", "private-ops")])
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {header:?}"
            );
            assert!(response.headers().contains_key("www-authenticate"));
            let body: Value = response.json().await.unwrap();
            assert!(body["error"].is_string(), "{body}");
        }
    }
    assert_eq!(
        ada.auth(&app, "private-ops").await.0,
        StatusCode::OK,
        "the cookie still works alone"
    );
}

#[tokio::test]
async fn a_token_ends_when_github_stops_accepting_its_login() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, _) = ada.bot(&app, "bot").await;
    assert_eq!(bot.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.github.revoke_tokens("ada");
    app.pass_the_ttl();
    let (status, body) = bot.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"].as_str().unwrap().contains("GitHub"), "{body}");
    // Ended for good, not just refused this once.
    assert_eq!(bot.me(&app).await.0, StatusCode::UNAUTHORIZED);
    let again = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(again.tokens(&app).await.1["tokens"], serde_json::json!([]));
}

#[tokio::test]
async fn a_token_follows_membership_changes_within_the_ttl() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, _) = ada.bot(&app, "bot").await;
    assert_eq!(bot.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.github.remove_from_team("ada", "initech", "ops");
    app.pass_the_ttl();
    assert_eq!(bot.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        bot.auth(&app, "presence-org-initech").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_ends_after_session_ttl_unused_and_at_session_max_age() {
    const HOUR: Duration = Duration::from_secs(3600);
    let app = TestApp::new()
        .with_config(|c| {
            c.session.ttl = 24 * HOUR;
            c.session.max_age = 72 * HOUR;
        })
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (idle, _) = ada.bot(&app, "idle").await;
    let (busy, _) = ada.bot(&app, "busy").await;
    for _ in 0..3 {
        app.clock.advance(20 * HOUR);
        assert_eq!(
            busy.auth(&app, "private-ops").await.0,
            StatusCode::OK,
            "in use"
        );
    }
    assert_eq!(
        idle.auth(&app, "private-ops").await.0,
        StatusCode::UNAUTHORIZED,
        "unused for a day"
    );
    app.clock.advance(13 * HOUR);
    assert_eq!(
        busy.auth(&app, "private-ops").await.0,
        StatusCode::UNAUTHORIZED,
        "73 h old"
    );
}

#[tokio::test]
async fn a_token_works_on_every_instance_and_a_revocation_reaches_them_all() {
    let dir = temp_dir("tokens");
    let db = dir.join("sessions.db");
    let (a, b) = two_sharing(&format!("sqlite://{}", db.display())).await;
    let ada = Browser::logged_in_as(&a, "ada").await;
    let (bot, id) = ada.bot(&a, "bot").await;
    assert_eq!(bot.auth(&b, "private-ops").await.0, StatusCode::OK);

    // The files hold the token's index (its public id), never the token.
    // (SQLite may still have the newest rows in its write-ahead log.)
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        bytes.extend(std::fs::read(dir.join(format!("sessions.db{suffix}"))).unwrap_or_default());
    }
    let files = String::from_utf8_lossy(&bytes);
    assert!(files.contains(&id), "the index is not where the test looks");
    assert!(
        !files.contains(&bot.token[3..]),
        "the token is stored in clear"
    );

    assert_eq!(ada.revoke_token(&a, &id).await, StatusCode::NO_CONTENT);
    // b may still use what it decoded a moment ago, never longer.
    b.clock.advance(channelgate::session::HOLD_FOR);
    assert_eq!(
        bot.auth(&b, "private-ops").await.0,
        StatusCode::UNAUTHORIZED
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn cors_lets_allowed_pages_send_a_token_but_never_with_the_cookie_to_me() {
    const PAGE: &str = "https://app.example";
    let app = TestApp::new()
        .with_config(|c| c.server.allowed_origins = vec![PAGE.to_owned()])
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, _) = ada.bot(&app, "page").await;
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for path in [
        "/pusher/auth",
        "/pusher/user-auth",
        "/auth/me",
        "/auth/logout",
    ] {
        let preflight = bot
            .http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", PAGE)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            header(&preflight, "access-control-allow-origin").as_deref(),
            Some(PAGE)
        );
        let allowed = header(&preflight, "access-control-allow-headers").unwrap();
        assert!(allowed.contains("authorization"), "{path}: {allowed}");
        let refused = bot
            .http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // The answer to a bearer request: readable there, credentials not allowed.
    let answer = bot
        .request(reqwest::Method::POST, &app.url("/pusher/auth"))
        .header("origin", PAGE)
        .form(&[("socket_id", SOCKET), ("channel_name", "private-ops")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    assert_eq!(header(&answer, "access-control-allow-credentials"), None);
    let me = bot
        .request(reqwest::Method::GET, &app.url("/auth/me"))
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(
        header(&me, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    assert_eq!(header(&me, "access-control-allow-credentials"), None);
    // The cookie's answers stay as they were: /pusher/auth with credentials,
    // /auth/me not readable by another origin at all.
    let cookie_auth = ada
        .http
        .post(app.url("/pusher/auth"))
        .header("origin", PAGE)
        .form(&[("socket_id", SOCKET), ("channel_name", "private-ops")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&cookie_auth, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let cookie_me = ada
        .http
        .get(app.url("/auth/me"))
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(cookie_me.status(), StatusCode::OK);
    assert_eq!(header(&cookie_me, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn no_token_appears_in_any_log_line() {
    let (logs, _guard) = capture_info_logs();
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, id) = ada.bot(&app, "bot").await;
    bot.auth(&app, "private-ops").await;
    bot.auth(&app, "private-user-bo").await;
    bot.me(&app).await;
    ada.tokens(&app).await;
    ada.revoke_token(&app, &id).await;
    bot.auth(&app, "private-ops").await;
    let (device, _) = crate::device::approved_device(&app, "bo").await;
    device.auth(&app, "private-ops").await;
    device.log_out(&app).await;
    let text = logs.text();
    assert!(text.contains("app token created"), "{text}");
    for token in [&bot.token, &device.token] {
        assert!(!text.contains(&token[3..]), "a token in the log:\n{text}");
    }
    for github in app.github.issued_token_values() {
        assert!(
            !text.contains(&github),
            "a GitHub token in the log:\n{text}"
        );
    }
}

/// The ids a token's record could have in the store: the digest's first
/// half (what its holder can compute) and the id keyed with the tests'
/// session key (what the gateway uses, which only the keeper of that key
/// can compute).
fn record_ids(token: &str) -> Vec<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token[3..])
        .unwrap();
    let digest: [u8; 32] = sha2::Sha256::digest(&secret).into();
    let keys = channelgate::crypto::Keys::new(Some(&channelgate::secret::Secret::new(
        base64::engine::general_purpose::STANDARD
            .decode(crate::helpers::SESSION_KEY_BASE64)
            .unwrap(),
    )));
    let mut named = b"token-record:".to_vec();
    named.extend_from_slice(&digest);
    [digest, keys.name(&named)]
        .iter()
        .map(|d| {
            let half: [u8; 16] = d[..16].try_into().unwrap();
            tower_sessions::session::Id(i128::from_le_bytes(half)).to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_cookie_naming_a_tokens_record_is_nobody() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, _) = ada.bot(&app, "bot").await;
    // Just used: its identity is held by the gateway for a moment.
    assert_eq!(bot.me(&app).await.0, StatusCode::OK);
    let http = reqwest::Client::new();
    for id in record_ids(&bot.token) {
        let cookie = format!("channelgate={id}");
        let me = http
            .get(app.url("/auth/me"))
            .header("cookie", &cookie)
            .send();
        assert_eq!(
            me.await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{cookie}"
        );
        let list = http
            .get(app.url("/auth/tokens"))
            .header("cookie", &cookie)
            .send();
        assert_eq!(
            list.await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{cookie}"
        );
        let made = http
            .post(app.url("/auth/tokens"))
            .header("cookie", &cookie)
            .header("origin", &app.url)
            .json(&serde_json::json!({ "name": "minted from a token" }))
            .send();
        assert_eq!(
            made.await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{cookie}"
        );
    }
    // Nor may the holder end the token's record with a cookie logout (only
    // the keeper of the gateway's key could name it, as above).
    let cookie = format!("channelgate={}", record_ids(&bot.token)[0]);
    let logout = http.post(app.url("/auth/logout")).header("cookie", &cookie);
    logout.send().await.unwrap();
    assert_eq!(bot.me(&app).await.0, StatusCode::OK);
    assert_eq!(
        ada.tokens(&app).await.1["tokens"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn unknown_bearer_tokens_from_one_address_are_refused_before_any_store_read() {
    // Random tokens cost a store read each: past the limit an address's
    // bearer requests get 429 (never a 401 that would make a bot drop a
    // good token) without the store being asked.
    let app = TestApp::new().spawn().await;
    let limit = channelgate::web::memo::UnknownCredentials::PER_MINUTE;
    let http = reqwest::Client::new();
    let me = |token: String| {
        http.get(app.url("/auth/me"))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    for i in 0..limit {
        let token = format!("cg_{:0>43}", i);
        assert_eq!(me(token).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let over = me(format!("cg_{}", "B".repeat(43))).await.unwrap();
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers().contains_key("retry-after"));
    // A browser at the same address, which sends no bearer token, is served.
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.get(&app.url("/auth/me")).await.status(), StatusCode::OK);
}
