//! `channelgate demo`: the suggested experiments give the documented results.

use channelgate::demo::{self, TRIES};
use reqwest::StatusCode;

use crate::helpers::{Browser, location};

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
    let demo = demo::start(
        "127.0.0.1:0".parse().unwrap(),
        &demo::DEFAULT_PUSHER_HOST.parse().unwrap(),
    )
    .await
    .unwrap();
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
    let demo = demo::start(
        "127.0.0.1:0".parse().unwrap(),
        &demo::DEFAULT_PUSHER_HOST.parse().unwrap(),
    )
    .await
    .unwrap();
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
