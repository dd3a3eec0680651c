//! `[revocation] require_signin`: channels are signed only for a socket this
//! gateway signed in (`/pusher/user-auth`) as the same person, because
//! hosted Pusher ends only connections that called `pusher.signin()`. A
//! channel request that arrives before its socket's sign-in waits for it
//! (up to `signin_wait`); one for a socket signed in as someone else is
//! refused at once. Cookies, bearer tokens and batches obey the same.

use std::time::Duration;

use channelgate::config::Config;
use channelgate::web::pusher::SIGN_IN_FIRST;
use channelgate::web::signins::WaitingNow;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Browser, SOCKET, TestApp, metric};

/// A wait no test sits through: a request that comes back signed was woken
/// by its sign-in, and a refusal that comes back at all was not waiting.
const LONG: Duration = Duration::from_secs(30);
/// The wait of tests whose request is refused for want of a sign-in.
const SHORT: Duration = Duration::from_millis(200);

fn requiring_signin(wait: Duration) -> impl FnOnce(&mut Config) + 'static {
    move |c: &mut Config| {
        c.revocation.require_signin = true;
        c.revocation.signin_wait = wait;
        c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    }
}

async fn app_waiting(wait: Duration) -> TestApp {
    TestApp::new()
        .with_config(requiring_signin(wait))
        .spawn()
        .await
}

fn socket() -> channelgate::channel::SocketId {
    channelgate::channel::SocketId::parse(SOCKET).unwrap()
}

/// Waits (on the requests themselves, never a fixed time) until `n`
/// channel requests wait for a sign-in.
async fn until_waiting(app: &TestApp, n: usize) {
    for _ in 0..1_000 {
        if app.state().signins.waiting().requests == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{n} requests never waited: {:?}",
        app.state().signins.waiting()
    );
}

/// `browser`'s request for `channel` on [`SOCKET`], sent now and answered
/// whenever the gateway answers it: status and body.
fn asking_for(
    browser: &Browser,
    app: &TestApp,
    channel: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let (browser, url, channel) = (browser.clone(), app.url("/pusher/auth"), channel.to_owned());
    tokio::spawn(async move {
        let response = browser
            .http
            .post(url)
            .form(&[("socket_id", SOCKET), ("channel_name", channel.as_str())])
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    })
}

fn nobody_waits(app: &TestApp) {
    assert_eq!(
        app.state().signins.waiting(),
        WaitingNow {
            requests: 0,
            sockets: 0,
            people: 0
        }
    );
}

async fn refusals(app: &TestApp, reason: &str) -> f64 {
    metric(
        &app.scrape().await,
        &format!("channelgate_signin_required_refusals_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn a_socket_that_never_signs_in_is_refused_after_signin_wait_telling_what_to_call() {
    let app = app_waiting(SHORT).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (status, body) = ada.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"error": "sign in first: call pusher.signin() before subscribing"})
    );
    assert_eq!(body["error"], SIGN_IN_FIRST);
    assert_eq!(refusals(&app, "late").await, 1.0);
    nobody_waits(&app);
    // Signed in, the same request is signed.
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    let (status, body) = ada.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["auth"].is_string(), "{body}");
}

#[tokio::test]
async fn a_channel_request_that_comes_before_its_sign_in_is_signed_when_the_sign_in_comes() {
    let app = app_waiting(LONG).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let first = asking_for(&ada, &app, "private-ops");
    until_waiting(&app, 1).await;
    let (status, signed_in) = ada.sign_in(&app).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["auth"].is_string(), "{body}");
    assert_eq!(app.state().signins.who(&socket()), Some(1));
    nobody_waits(&app);
}

#[tokio::test]
async fn a_socket_signed_in_as_someone_else_is_refused_at_once() {
    let app = app_waiting(LONG).await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    assert_eq!(bo.sign_in(&app).await.0, StatusCode::OK);
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (status, body) = ada.auth(&app, "private-initech-roadmap").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"],
        "this connection is signed in as another GitHub account: sign in with pusher.signin() on a connection of your own, then subscribe"
    );
    // The registry says whose it is: bo's (GitHub id 2), not ada's.
    assert_eq!(app.state().signins.who(&socket()), Some(2));
    assert_eq!(refusals(&app, "other_person").await, 1.0);
    assert_eq!(refusals(&app, "late").await, 0.0);
    nobody_waits(&app);
    // bo, whose socket it is, is signed for the same channel.
    assert_eq!(
        bo.auth(&app, "private-initech-roadmap").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_person_signin_refuses_is_told_at_once_that_no_channel_can_be_signed() {
    // cy's invitation to initech is pending: [signin] (orgs initech) refuses
    // her, while private-user-{login} admits her to her own channel.
    let app = app_waiting(LONG).await;
    let cy = Browser::logged_in_as(&app, "cy").await;
    assert_eq!(cy.sign_in(&app).await.0, StatusCode::FORBIDDEN);
    let (status, body) = cy.auth(&app, "private-user-cy").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("you may not sign in to this Pusher app ([signin])"),
        "{body}"
    );
    assert_eq!(refusals(&app, "not_admitted").await, 1.0);
    nobody_waits(&app);
}

#[tokio::test]
async fn a_batch_waits_once_for_its_sign_in_and_is_refused_whole_without_it() {
    let app = app_waiting(SHORT).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let batch = [
        ("socket_id", SOCKET),
        ("channel_name[0]", "private-initech-roadmap"),
        ("channel_name[1]", "private-ops"),
        ("channel_name[2]", "presence-org-initech"),
    ];
    let (status, body) = ada.post_form(&app, "/pusher/auth", &batch).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, json!({ "error": SIGN_IN_FIRST }));
    assert_eq!(refusals(&app, "late").await, 1.0, "one refusal, not three");

    // Sent before the sign-in, with a wait no test sits through: one
    // request waits for the three channels, and all are signed.
    let app = app_waiting(LONG).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let first = tokio::spawn({
        let (ada, url) = (ada.clone(), app.url("/pusher/auth"));
        async move {
            let response = ada.http.post(url).form(&batch).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    });
    until_waiting(&app, 1).await;
    assert_eq!(app.state().signins.waiting().requests, 1);
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    for name in [
        "private-initech-roadmap",
        "private-ops",
        "presence-org-initech",
    ] {
        assert_eq!(body[name]["status"], 200, "{name}: {body}");
    }
}

#[tokio::test]
async fn a_bearer_token_caller_signs_in_first_like_a_browser() {
    let app = app_waiting(SHORT).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (bot, _) = ada.bot(&app, "build bot").await;
    let (status, body) = bot.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, json!({ "error": SIGN_IN_FIRST }));
    assert_eq!(bot.sign_in(&app).await.0, StatusCode::OK);
    assert_eq!(app.state().signins.who(&socket()), Some(1));
    let (status, body) = bot.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A token of another person cannot use the bot's signed-in socket.
    let bo = Browser::logged_in_as(&app, "bo").await;
    let (bo_bot, _) = bo.bot(&app, "bo's bot").await;
    let (status, body) = bo_bot.auth(&app, "private-initech-roadmap").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("signed in as another GitHub account"),
        "{body}"
    );
}

#[tokio::test]
async fn a_waiting_request_whose_client_goes_away_is_counted_out() {
    let app = app_waiting(LONG).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let gone = ada
        .http
        .post(app.url("/pusher/auth"))
        .form(&[("socket_id", SOCKET), ("channel_name", "private-ops")])
        .send();
    let waiting = tokio::spawn(gone);
    until_waiting(&app, 1).await;
    // The client hangs up; the gateway lets go of the wait.
    waiting.abort();
    until_waiting(&app, 0).await;
    nobody_waits(&app);
}

#[tokio::test]
async fn without_require_signin_a_socket_that_never_signed_in_is_signed_as_before() {
    let app = TestApp::new().spawn().await;
    assert!(!app.state().config().revocation.require_signin);
    let ada = Browser::logged_in_as(&app, "ada").await;
    let (status, body) = ada.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["auth"].is_string(), "{body}");
    assert_eq!(app.state().signins.who(&socket()), None);
    nobody_waits(&app);
}

#[tokio::test]
async fn a_reload_turns_require_signin_on_for_the_next_request() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    let state = app.state();
    let mut next = state.config().as_ref().clone();
    next.revocation.require_signin = true;
    next.revocation.signin_wait = SHORT;
    let channelgate::web::reload::Reloaded::Applied { restart_needed } = state.reload(next).await
    else {
        panic!("the reload was refused");
    };
    assert!(restart_needed.is_empty(), "{restart_needed:?}");
    let (status, body) = ada.auth(&app, "private-ops").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, json!({ "error": SIGN_IN_FIRST }));
}

#[tokio::test]
async fn a_request_that_waited_is_decided_on_the_rules_of_after_its_wait() {
    // While it waited for its sign-in, a reload took the rule away (a
    // removal would do the same): the signature follows today's rules,
    // not those the request began with.
    let app = app_waiting(LONG).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let waiting = asking_for(&ada, &app, "private-ops");
    until_waiting(&app, 1).await;
    let state = app.state();
    let mut config = state.config().as_ref().clone();
    config.rules = channelgate::rules::RuleSet::new(
        config
            .rules
            .rules()
            .iter()
            .filter(|r| r.pattern.as_str() != "private-ops")
            .cloned()
            .collect(),
    );
    state.reload(config).await;
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn a_connection_signed_in_as_someone_cannot_be_signed_in_as_another() {
    // Whoever learns a socket id must not take the connection over and so
    // refuse its owner's channels.
    let app = app_waiting(SHORT).await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    let (status, body) = bo.sign_in(&app).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.state().signins.who(&socket()), Some(1));
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
}
