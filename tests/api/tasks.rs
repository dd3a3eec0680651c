//! The gateway's background work is owned: a shutdown stops it (a
//! terminate call in flight finishes first), and so does dropping a gateway.

use std::time::Duration;

use github_standin::Change;
use reqwest::StatusCode;

use crate::helpers::{Browser, TestApp};

/// Waits up to two seconds for `done`.
async fn within_two_seconds(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

#[tokio::test]
async fn dropping_a_gateway_stops_its_background_work() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let tasks = app.state().tasks.clone();
    // The sweep, the membership listener, the store's clean-up, maintenance.
    assert!(tasks.running() >= 4, "{} running", tasks.running());
    drop(app);
    assert!(tasks.is_cancelled());
    assert!(
        within_two_seconds(|| tasks.running() == 0).await,
        "{} still running after the gateway was dropped",
        tasks.running()
    );
}

#[tokio::test]
async fn a_shutdown_lets_a_terminate_call_in_flight_finish_and_stops_the_rest() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    // Pusher is slow today: the call that ends ada's connections is still
    // in flight when the gateway is asked to stop.
    app.pusher.set_delay(Duration::from_millis(300));
    app.github
        .announce(Change::RemoveFromTeam {
            login: "ada".into(),
            org: "initech".into(),
            slug: "ops".into(),
        })
        .await
        .unwrap();
    let tasks = app.state().tasks.clone();
    // The webhook's re-read (then the terminate call) is a job in flight.
    assert!(tasks.jobs_in_flight() > 0);
    assert!(app.pusher.calls().is_empty(), "Pusher has not answered yet");
    let TestApp {
        gateway, pusher, ..
    } = app;
    gateway.shutdown().await.unwrap();
    assert_eq!(pusher.terminated(), [1], "the call finished");
    assert_eq!(tasks.running(), 0, "nothing runs after the shutdown");
}
