//! `channelgate demo`: the suggested experiments give the documented
//! results, a login works from either loopback name, and its decision log
//! lines read alike.

use std::net::SocketAddr;
use std::sync::Arc;

use channelgate::demo::{self, TRIES};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Browser, capture_json_logs, location};

/// A demo on a free port of 127.0.0.1.
async fn start_demo() -> demo::Demo {
    demo::start(
        "127.0.0.1:0".parse().unwrap(),
        &demo::DEFAULT_PUSHER_HOST.parse().unwrap(),
    )
    .await
    .unwrap()
}

/// A browser for which `localhost` is the demo at `addr` (whatever the
/// machine's resolver prefers), keeping cookies; it follows redirects
/// when `follow` is set, as a person's browser does.
fn browser_at_localhost(addr: SocketAddr, follow: bool) -> reqwest::Client {
    let policy = if follow {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .resolve("localhost", addr)
        .redirect(policy)
        .build()
        .unwrap()
}

/// Logs in through the stand-in's consent page, choosing `login` as a person would.
async fn log_in_by_consent(browser: &Browser, url: &str, login: &str) {
    let authorize = location(&browser.get(&format!("{url}/auth/login")).await);
    let page = browser.get(&authorize).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(login), "the consent page offers {login}");
    let mut fields: Vec<(String, String)> = reqwest::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    fields.push(("login".into(), login.into()));
    let action = authorize.split('?').next().unwrap();
    let consented = browser
        .http
        .post(action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(consented.status(), StatusCode::FOUND);
    let callback = browser.get(&location(&consented)).await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER, "login as {login}");
}

#[tokio::test]
async fn every_suggested_experiment_gives_the_documented_result() {
    let demo = start_demo().await;
    let mut logins: Vec<&str> = TRIES.iter().map(|t| t.login).collect();
    logins.dedup();
    assert!(logins.len() >= 2);
    for login in logins {
        let browser = Browser::new();
        log_in_by_consent(&browser, &demo.url, login).await;
        let page = browser
            .get(&format!("{}/", demo.url))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(&format!("<strong>{login}</strong>")),
            "{page}"
        );
        let (mut allowed, mut denied) = (0, 0);
        for t in TRIES.iter().filter(|t| t.login == login) {
            let response = browser
                .http
                .post(format!("{}/pusher/auth", demo.url))
                .form(&[("socket_id", "1.2"), ("channel_name", t.channel)])
                .send()
                .await
                .unwrap();
            let expected = if t.allowed {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(response.status(), expected, "{login} {}", t.channel);
            if t.allowed { allowed += 1 } else { denied += 1 }
        }
        assert!(
            allowed > 0 && denied > 0,
            "{login}: one allowed and one denied at least"
        );
    }
}

#[tokio::test]
async fn the_demo_serves_pusher_js_and_avatars_offline() {
    let demo = start_demo().await;
    let browser = Browser::new();
    let js = browser
        .get(&format!("{}/assets/pusher.min.js", demo.url))
        .await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.text().await.unwrap().contains("Pusher"));
    let avatar = browser
        .get(&format!("{}/_github/avatars/ada.svg", demo.url))
        .await;
    assert_eq!(avatar.headers()["content-type"], "image/svg+xml");
}

#[tokio::test]
async fn a_login_that_starts_at_localhost_ends_logged_in() {
    let demo = start_demo().await;
    let addr = demo.gateway.addr();
    let browser = browser_at_localhost(addr, true);
    let localhost = format!("http://localhost:{}", addr.port());
    let consent = browser
        .get(format!("{localhost}/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        consent.status(),
        StatusCode::OK,
        "the stand-in's consent page"
    );
    let authorize = consent.url().clone();
    let mut fields: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    fields.push(("login".into(), "ada".into()));
    let mut action = authorize;
    action.set_query(None);
    // Consent, then GitHub's redirect to the callback, then the home page.
    let home = browser.post(action).form(&fields).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK, "{}", home.url());
    let page = home.text().await.unwrap();
    assert!(page.contains("<strong>ada</strong>"), "{page}");
}

#[tokio::test]
async fn a_page_opened_at_localhost_is_sent_to_the_demos_one_origin() {
    let demo = start_demo().await;
    let addr = demo.gateway.addr();
    let browser = browser_at_localhost(addr, false);
    let port = addr.port();
    let sent = browser
        .get(format!("http://localhost:{port}/_github/admin?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        location(&sent),
        format!("http://127.0.0.1:{port}/_github/admin?x=1")
    );
    // The one origin itself is served, and a name outside loopback refused.
    let home = browser.get(format!("{}/", demo.url)).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let rebound = browser
        .get(format!("{}/", demo.url))
        .header("host", format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST);
}

/// The `fields` names of the first `authorization` line with `decision`
/// and `kind` in `lines`.
fn decision_fields(lines: &[Value], kind: &str, decision: &str) -> Vec<String> {
    let line = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "authorization"
                && l["fields"]["kind"] == kind
                && l["fields"]["decision"] == decision
        })
        .unwrap_or_else(|| panic!("no {kind} {decision} line in {lines:#?}"));
    assert!(
        line["spans"][0]["request_id"].is_string(),
        "a request id: {line}"
    );
    let mut names: Vec<String> = line["fields"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_denial_is_logged_with_the_fields_of_an_allow() {
    // This test's runtime has one thread: the demo logs through it.
    let (captured, _guard) = capture_json_logs(tracing::Level::INFO);
    let demo = start_demo().await;
    let grace = Browser::new();
    log_in_by_consent(&grace, &demo.url, "grace").await;
    for (channel, expected) in [
        ("private-acme-roadmap", StatusCode::OK),
        ("private-supersecretchat", StatusCode::FORBIDDEN),
    ] {
        let response = grace
            .http
            .post(format!("{}/pusher/auth", demo.url))
            .form(&[("socket_id", "1.2"), ("channel_name", channel)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{channel}");
    }
    // grace is in acme and may sign in; linus, in no organisation, may not.
    let linus = Browser::new();
    log_in_by_consent(&linus, &demo.url, "linus").await;
    for (browser, expected) in [(&grace, StatusCode::OK), (&linus, StatusCode::FORBIDDEN)] {
        let response = browser
            .http
            .post(format!("{}/pusher/user-auth", demo.url))
            .form(&[("socket_id", "1.2")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }

    let log = captured.text();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    let allowed = decision_fields(&lines, "private", "allow");
    assert!(
        ["login", "id", "channel", "reason", "latency_ms"]
            .iter()
            .all(|f| allowed.iter().any(|a| a == f)),
        "{allowed:?}"
    );
    assert_eq!(decision_fields(&lines, "private", "deny"), allowed);
    assert_eq!(
        decision_fields(&lines, "user", "deny"),
        decision_fields(&lines, "user", "allow")
    );
}
