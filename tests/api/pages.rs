//! The home page and /auth/me as a logged-in person sees them.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Browser, TestApp, world};

#[tokio::test]
async fn the_home_page_lists_memberships_and_the_channels_they_open() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let page = ada.get(&app.url("/")).await.text().await.unwrap();
    assert!(page.contains("<code>initech</code>"), "{page}");
    assert!(page.contains("<code>initech/ops</code>"), "{page}");
    for channel in [
        "private-ops",
        "private-user-ada",
        "presence-org-initech",
        "private-team-initech.ops",
        "private-initech-*",
        "private-lobby",
    ] {
        assert!(
            page.contains(&format!("<code>{channel}</code>")),
            "{channel} in {page}"
        );
    }
    assert!(
        !page.contains("may restrict third-party OAuth apps"),
        "ada is in initech"
    );
}

#[tokio::test]
async fn the_channel_tester_shows_the_decision_and_its_reason() {
    let app = TestApp::new().spawn().await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    let page = bo
        .get(&app.url("/?channel=private-ops"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<span class="deny">deny</span>"#), "{page}");
    assert!(
        page.contains(
            "rules[0] &#34;private-ops&#34; matches this channel, but you meet none of its conditions"
        ),
        "{page}"
    );
    // Who the rule admits is not shown to everyone who asks.
    assert!(!page.contains("initech/ops"), "{page}");
    let page = bo
        .get(&app.url("/?channel=private-initech-x"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"<span class="allow">allow</span>"#),
        "{page}"
    );
    assert!(page.contains("active member of org initech"), "{page}");
}

#[tokio::test]
async fn the_page_escapes_what_it_echoes() {
    let app = TestApp::new().spawn().await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    let page = bo
        .get(&app.url("/?channel=%3Cscript%3Ealert(1)%3C%2Fscript%3E"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(
        page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
        "{page}"
    );
}

#[tokio::test]
async fn the_home_page_never_names_the_orgs_the_rules_use() {
    // Anyone with a GitHub account can log in and look: a denial must not
    // tell them which org would have admitted them.
    let app = TestApp::new().spawn().await;
    let dee = Browser::logged_in_as(&app, "Dee-Dash").await;
    let page = dee.get(&app.url("/")).await.text().await.unwrap();
    assert!(!page.contains("initech"), "{page}");
    // The hint for an org that restricts OAuth apps stays, naming none.
    assert!(
        page.contains("may restrict third-party OAuth apps"),
        "{page}"
    );
    let page = dee
        .get(&app.url("/?channel=private-ops"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("initech"), "{page}");
}

#[tokio::test]
async fn me_gives_a_membership_error_without_internal_detail() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    app.github.set_down(true);
    app.pass_the_ttl();
    let me: Value = ada.get(&app.url("/auth/me")).await.json().await.unwrap();
    let error = me["membership_error"].as_str().unwrap();
    assert!(
        !error.contains("127.0.0.1") && !error.contains("http"),
        "{error}"
    );
    assert!(!error.contains("503"), "{error}");
    assert!(error.contains("GitHub"), "{error}");
}

#[tokio::test]
async fn me_includes_the_active_memberships() {
    let app = TestApp::new().spawn().await;
    let cy = Browser::logged_in_as(&app, "cy").await;
    let me: Value = cy.get(&app.url("/auth/me")).await.json().await.unwrap();
    assert_eq!(me["login"], "cy");
    assert_eq!(me["orgs"], serde_json::json!([]), "pending is not active");
    assert_eq!(
        me["teams"],
        serde_json::json!([]),
        "a team counts only with its org"
    );
    let ada = Browser::logged_in_as(&app, "ada").await;
    let me: Value = ada.get(&app.url("/auth/me")).await.json().await.unwrap();
    assert_eq!(me["orgs"], serde_json::json!(["initech"]));
    assert_eq!(me["teams"], serde_json::json!(["initech/ops"]));
}

#[tokio::test]
async fn when_github_is_down_the_page_says_so_and_grants_nothing() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    app.github.set_down(true);
    app.pass_the_ttl();
    let response = ada.get(&app.url("/?channel=private-ops")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("cannot be read right now"), "{page}");
    assert!(page.contains(r#"<span class="deny">deny</span>"#), "{page}");
}

#[tokio::test]
async fn names_from_github_that_could_break_a_separator_are_ignored() {
    let app = TestApp::new()
        .with_world(world().team("ada", "initech", "ops.evil"))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let me: Value = ada.get(&app.url("/auth/me")).await.json().await.unwrap();
    assert_eq!(me["teams"], serde_json::json!(["initech/ops"]), "{me}");
}

#[tokio::test]
async fn the_home_page_lists_tokens_within_the_same_limit_as_the_token_list() {
    // Each listing reads every token's record from the store: a page view
    // is counted like GET /auth/tokens, or reloading it is a free flood.
    let app = TestApp::new()
        .with_config(|c| c.limits.auth_per_minute = 2)
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    for _ in 0..2 {
        let page = ada.get(&app.url("/")).await.text().await.unwrap();
        assert!(page.contains("You have no tokens."), "{page}");
    }
    let page = ada.get(&app.url("/")).await;
    assert_eq!(page.status(), StatusCode::OK, "the page itself still shows");
    let page = page.text().await.unwrap();
    assert!(!page.contains("You have no tokens."), "{page}");
    assert!(page.contains("not listed: too many requests"), "{page}");
    let list = ada
        .http
        .get(app.url("/auth/tokens"))
        .header("origin", app.url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::TOO_MANY_REQUESTS, "one budget");
}
