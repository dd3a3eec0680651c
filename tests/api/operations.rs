//! What an operator sees and does: Prometheus metrics on their own
//! listener, readiness, request ids and JSON logs with no secret in them,
//! and reloading the configuration.

use std::time::Duration;

use channelgate::config::Config;
use channelgate::web::reload::Reloaded;
use github_standin::Change;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    Browser, CLIENT_SECRET, OwnRedis, PUSHER_SECRET, SESSION_KEY_BASE64, TestApp, WEBHOOK_SECRET,
    rule,
};

fn metrics_on() -> impl FnOnce(&mut Config) {
    |c: &mut Config| c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap())
}

/// The value of `series` in a scrape, which must be there.
fn value(text: &str, series: &str) -> f64 {
    assert!(
        text.lines().any(|l| l.starts_with(&format!("{series} "))),
        "no {series} in\n{text}"
    );
    crate::helpers::metric(text, series)
}

#[tokio::test]
async fn every_metric_family_counts_real_traffic() {
    let app = TestApp::new()
        .with_webhooks()
        .with_config(metrics_on())
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(
        ada.auth(&app, "presence-org-initech").await.0,
        StatusCode::OK
    );
    assert_eq!(
        ada.auth(&app, "private-user-bo").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    assert_eq!(ada.get(&app.url("/no/such/page/12345")).await.status(), 404);
    app.github
        .announce(Change::RemoveFromTeam {
            login: "ada".into(),
            org: "initech".into(),
            slug: "ops".into(),
        })
        .await
        .unwrap();
    assert!(
        app.pusher
            .wait_for_terminate(1, Duration::from_secs(5))
            .await
    );
    let state = app.gateway.state().unwrap();
    assert!(matches!(
        state.reload(state.config().as_ref().clone()).await,
        Reloaded::Applied { .. }
    ));
    let broken =
        std::env::temp_dir().join(format!("channelgate-broken-{}.toml", std::process::id()));
    std::fs::write(&broken, "[pusher\n").unwrap();
    assert!(matches!(
        state.reload_from(&broken).await,
        Reloaded::Refused { .. }
    ));
    std::fs::remove_file(&broken).unwrap();

    let text = app.scrape().await;
    for (series, at_least) in [
        (
            "channelgate_http_requests_total{route=\"/pusher/auth\",status=\"200\"}",
            2.0,
        ),
        (
            "channelgate_http_requests_total{route=\"/pusher/auth\",status=\"403\"}",
            1.0,
        ),
        (
            "channelgate_http_requests_total{route=\"/auth/callback\",status=\"303\"}",
            1.0,
        ),
        // A path no route knows is counted as "other", never by its text.
        (
            "channelgate_http_requests_total{route=\"other\",status=\"404\"}",
            1.0,
        ),
        (
            "channelgate_http_request_duration_seconds_count{route=\"/pusher/auth\"}",
            3.0,
        ),
        (
            "channelgate_auth_decisions_total{kind=\"private\",decision=\"allow\"}",
            1.0,
        ),
        (
            "channelgate_auth_decisions_total{kind=\"presence\",decision=\"allow\"}",
            1.0,
        ),
        (
            "channelgate_auth_decisions_total{kind=\"private\",decision=\"deny\"}",
            1.0,
        ),
        (
            "channelgate_auth_decisions_total{kind=\"user\",decision=\"allow\"}",
            1.0,
        ),
        (
            "channelgate_github_requests_total{endpoint=\"access_token\",status=\"200\"}",
            1.0,
        ),
        (
            "channelgate_github_requests_total{endpoint=\"user\",status=\"200\"}",
            1.0,
        ),
        (
            "channelgate_github_requests_total{endpoint=\"teams\",status=\"200\"}",
            2.0,
        ),
        (
            "channelgate_github_requests_total{endpoint=\"orgs\",status=\"304\"}",
            1.0,
        ),
        ("channelgate_membership_cache_entries", 1.0),
        (
            "channelgate_webhook_deliveries_total{event=\"membership\",outcome=\"accepted\"}",
            1.0,
        ),
        ("channelgate_terminations_total{outcome=\"ok\"}", 1.0),
        ("channelgate_config_reloads_total{outcome=\"ok\"}", 1.0),
        ("channelgate_config_reloads_total{outcome=\"failed\"}", 1.0),
    ] {
        assert!(value(&text, series) >= at_least, "{series} in\n{text}");
    }
    let remaining = value(&text, "channelgate_github_rate_limit_remaining");
    assert!((0.0..5000.0).contains(&remaining), "{remaining}");
    assert!(!text.contains("12345"), "no raw path in a label");
    // Never on the public listener.
    assert_eq!(ada.get(&app.url("/metrics")).await.status(), 404);
}

#[tokio::test]
async fn readiness_asks_the_store_and_liveness_asks_nothing() {
    let app = TestApp::new().spawn().await;
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        serde_json::json!({"ready": true})
    );
    let db = std::env::temp_dir().join(format!("channelgate-ready-{}.db", std::process::id()));
    let sqlite = TestApp::new()
        .with_store(&format!("sqlite://{}", db.display()))
        .spawn()
        .await;
    assert_eq!(
        reqwest::get(sqlite.url("/readyz")).await.unwrap().status(),
        200
    );
    assert_eq!(
        reqwest::get(sqlite.url("/healthz")).await.unwrap().status(),
        200
    );
    drop(sqlite);
    let _ = std::fs::remove_file(&db);
}

#[tokio::test]
#[ignore = "needs redis-server on this machine; .ci/run runs it"]
async fn readiness_fails_while_redis_is_down_and_recovers_by_itself() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start(port);
    let app = TestApp::new()
        .with_store(&format!("redis://127.0.0.1:{}", redis.port))
        .spawn()
        .await;
    let ready = || async { reqwest::get(app.url("/readyz")).await.unwrap() };
    assert_eq!(ready().await.status(), StatusCode::OK);

    redis.stop();
    let started = std::time::Instant::now();
    let down = ready().await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered within about a second"
    );
    let body: Value = down.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert!(body["error"].as_str().unwrap().contains("redis"), "{body}");
    // Liveness does not depend on the store.
    assert_eq!(
        reqwest::get(app.url("/healthz")).await.unwrap().status(),
        200
    );

    let _redis = OwnRedis::start(port);
    let started = std::time::Instant::now();
    loop {
        if ready().await.status() == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "readiness did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn request_ids_are_echoed_and_only_plain_ones_kept() {
    let app = TestApp::new().spawn().await;
    let http = reqwest::Client::new();
    let given = http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-42.a_b");
    let odd = http
        .get(app.url("/healthz"))
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    let made = odd.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(made, "two words");
    let other = http.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(
        other.headers()["x-request-id"].to_str().unwrap(),
        made,
        "unique"
    );
}

/// Runs a whole session (login, allow, deny, sign-in, a webhook, logout)
/// with every log line captured as JSON at `trace`.
#[tokio::test]
async fn json_logs_carry_request_ids_and_never_a_secret() {
    // This test's runtime has one thread: the gateway logs through it.
    let (captured, _guard) = crate::helpers::capture_json_logs(tracing::Level::TRACE);
    let app = TestApp::new().with_webhooks().spawn().await;
    let ada = Browser::new();
    let callback = {
        let authorize = ada.start_login(&app, None).await;
        ada.consent(&app, &authorize, "ada").await
    };
    assert_eq!(ada.get(&callback).await.status(), 303);
    let cookie = ada.session_cookie(&app.url).expect("a session cookie");
    let response = ada
        .http
        .post(app.url("/pusher/auth"))
        .header("x-request-id", "req-allow-1")
        .form(&[("socket_id", "1.2"), ("channel_name", "private-ops")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        ada.auth(&app, "private-user-bo").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    app.github
        .announce(Change::RemoveFromTeam {
            login: "ada".into(),
            org: "initech".into(),
            slug: "ops".into(),
        })
        .await
        .unwrap();
    assert!(
        app.pusher
            .wait_for_terminate(1, Duration::from_secs(5))
            .await
    );
    let logout = ada.log_out(&app).await;
    assert!(logout.status().is_redirection() || logout.status().is_success());

    let log = captured.text();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    let allow = lines
        .iter()
        .find(|l| l["fields"]["message"] == "authorization" && l["fields"]["decision"] == "allow")
        .unwrap_or_else(|| panic!("no authorization line in\n{log}"));
    assert_eq!(allow["spans"][0]["request_id"], "req-allow-1", "{allow}");
    // Every line written while a request was served carries its id.
    for line in &lines {
        if let Some(spans) = line["spans"].as_array().filter(|s| !s.is_empty()) {
            assert!(spans[0]["request_id"].is_string(), "{line}");
        }
    }
    assert_eq!(allow["fields"]["login"], "ada");
    assert_eq!(allow["fields"]["id"], 1);
    assert_eq!(allow["fields"]["channel"], "private-ops");
    assert_eq!(allow["fields"]["kind"], "private");
    assert!(
        allow["fields"]["reason"]
            .as_str()
            .unwrap()
            .contains("rules[0]"),
        "{allow}"
    );
    assert!(allow["fields"]["latency_ms"].as_f64().is_some(), "{allow}");
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "webhook delivery"
                && l["fields"]["event"] == "membership"),
        "{log}"
    );

    // What must never be written, whatever the level.
    let code = crate::helpers::query_param(&callback, "code");
    let state_param = crate::helpers::query_param(&callback, "state");
    let mut secrets = vec![
        cookie.clone(),
        code,
        state_param,
        CLIENT_SECRET.to_owned(),
        PUSHER_SECRET.to_owned(),
        WEBHOOK_SECRET.to_owned(),
        SESSION_KEY_BASE64.to_owned(),
        "gho_".to_owned(),
    ];
    secrets.extend(app.github.issued_token_values());
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "{secret} is in the log");
    }
}

#[tokio::test]
async fn a_reload_swaps_the_rules_and_a_removed_rule_ends_its_subscriptions() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(ada.auth(&app, "private-user-ada").await.0, StatusCode::OK);
    let state = app.gateway.state().unwrap();

    // Without rules[0] (private-ops), and one new rule; and a new port,
    // which needs a restart.
    let mut next = state.config().as_ref().clone();
    let mut rules: Vec<_> = next.rules.rules()[1..].to_vec();
    rules.push(rule("private-new-{login}", &[], &[], false));
    next.rules = channelgate::rules::RuleSet::new(rules);
    next.server.listen = "127.0.0.1:1".parse().unwrap();
    let Reloaded::Applied { restart_needed } = state.reload(next).await else {
        panic!("refused");
    };
    assert_eq!(restart_needed, ["server.listen"]);
    assert!(
        app.pusher
            .wait_for_terminate(1, Duration::from_secs(5))
            .await,
        "ada's grant ended"
    );
    // The same session, no new login: the new rules answer.
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
    assert_eq!(ada.auth(&app, "private-new-ada").await.0, StatusCode::OK);
    assert_eq!(ada.auth(&app, "private-user-ada").await.0, StatusCode::OK);
    assert_eq!(
        state.config().server.listen,
        app.gateway.addr(),
        "kept until a restart"
    );
}

#[tokio::test]
async fn a_broken_file_changes_nothing_and_names_each_problem() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let state = app.gateway.state().unwrap();
    let path = std::env::temp_dir().join(format!("channelgate-reload-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[pusher]\napp_id = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[github]\nclient_id = \"c\"\nclient_secret = \"s\"\n[[rules]]\nchannel = \"private-{nope}\"\n[cache]\nmembership_ttl = \"soon\"\n",
    )
    .unwrap();
    let Reloaded::Refused { problems } = state.reload_from(&path).await else {
        panic!("a broken file was applied");
    };
    std::fs::remove_file(&path).unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains(":9: rules[0].channel"), "{problems:?}");
    assert!(
        problems[1].contains(":11: cache.membership_ttl"),
        "{problems:?}"
    );
    assert_eq!(
        ada.auth(&app, "private-ops").await.0,
        StatusCode::OK,
        "the old rules still answer"
    );
    assert!(app.pusher.calls().is_empty());
}
