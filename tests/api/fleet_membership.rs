//! Instances sharing a store read GitHub as one: a person's membership
//! answer lives in the store, used by every instance while fresh and
//! re-read by one of them when stale. Needs a Redis server
//! (`CHANNELGATE_TEST_REDIS`); `.ci/run` runs these.

use std::time::Duration;

use channelgate::clock::Clock;
use github_standin::{Endpoint, GithubStandIn};
use reqwest::StatusCode;

use crate::helpers::*;
use crate::revocation::{deliver, removed_from_team};

fn redis() -> String {
    std::env::var("CHANNELGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `n` gateways on one GitHub, one store and one clock.
async fn fleet(github: &GithubStandIn, store: &str, clock: &Clock, n: usize) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(
            TestApp::new()
                .with_github(github.clone())
                .with_store(store)
                .with_clock(clock.clone())
                .with_webhooks()
                .spawn()
                .await,
        );
    }
    apps
}

/// GitHub reads of memberships so far (a read asks for the teams once).
fn reads(github: &GithubStandIn) -> u64 {
    github.calls(Endpoint::Teams)
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn three_instances_read_a_person_once_per_ttl_however_many_are_asked_at_once() {
    let github = stand_in().await;
    let clock = Clock::default();
    let apps = fleet(&github, &redis(), &clock, 3).await;
    let ada = Browser::logged_in_as(&apps[0], "ada").await;
    github.reset_counters();

    // Within the TTL, the other instances take the answer read at login.
    for app in &apps {
        assert_eq!(ada.auth(app, "private-ops").await.0, StatusCode::OK);
    }
    assert_eq!(reads(&github), 0, "the login's read serves the fleet");

    // Past it, 20 requests at once over three instances: one read.
    clock.advance(apps[0].membership_ttl + Duration::from_secs(1));
    let requests = (0..20).map(|i| {
        let (http, url) = (ada.http.clone(), apps[i % 3].url("/pusher/auth"));
        async move {
            let form = [("socket_id", "1234.5678"), ("channel_name", "private-ops")];
            http.post(url).form(&form).send().await.unwrap().status()
        }
    });
    for status in futures_util::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(reads(&github), 1, "one read for the fleet after the TTL");
    assert_eq!(github.calls(Endpoint::OrgMemberships), 1);
    assert_eq!(github.calls(Endpoint::User), 1);
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_restarted_instance_starts_warm() {
    let github = stand_in().await;
    let clock = Clock::default();
    let mut apps = fleet(&github, &redis(), &clock, 2).await;
    let ada = Browser::logged_in_as(&apps[0], "ada").await;
    assert_eq!(ada.auth(&apps[1], "private-ops").await.0, StatusCode::OK);
    let restarted = apps.pop().unwrap();
    restarted.gateway.shutdown().await.unwrap();
    github.reset_counters();

    let again = fleet(&github, &redis(), &clock, 1).await;
    assert_eq!(ada.auth(&again[0], "private-ops").await.0, StatusCode::OK);
    assert_eq!(reads(&github), 0, "a new process takes the fleet's answer");
    assert_eq!(github.calls(Endpoint::User), 0);
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_change_read_by_one_instance_is_what_the_others_answer() {
    let github = stand_in().await;
    let clock = Clock::default();
    let apps = fleet(&github, &redis(), &clock, 3).await;
    let ada = Browser::logged_in_as(&apps[0], "ada").await;
    for app in &apps {
        assert_eq!(ada.auth(app, "private-ops").await.0, StatusCode::OK);
    }
    // Removed silently; after the TTL one instance reads it, and none of
    // the others answers from what it held before.
    github.remove_from_team("ada", "initech", "ops");
    clock.advance(apps[0].membership_ttl + Duration::from_secs(1));
    github.reset_counters();
    for app in &apps {
        assert_eq!(ada.auth(app, "private-ops").await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(reads(&github), 1);
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_webhook_on_one_instance_stales_the_answer_for_all_even_when_its_re_read_fails() {
    let github = stand_in().await;
    let clock = Clock::default();
    let apps = fleet(&github, &redis(), &clock, 3).await;
    let ada = Browser::logged_in_as(&apps[0], "ada").await;
    for app in &apps {
        assert_eq!(ada.auth(app, "private-ops").await.0, StatusCode::OK);
    }
    // GitHub says ada left the team, then goes down: the instance that
    // heard it cannot confirm, and no instance may answer from the shared
    // answer read before the news (stale_grace included).
    github.remove_from_team("ada", "initech", "ops");
    github.set_down(true);
    let (status, _) = deliver(
        &apps[0],
        "membership",
        "d-fleet-1",
        &removed_from_team(1),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert!(status.is_success(), "{status}");
    for app in &apps {
        app.settled().await;
    }
    for app in &apps {
        let (status, _) = ada.auth(app, "private-ops").await;
        assert_ne!(
            status,
            StatusCode::OK,
            "no instance signs from the old answer"
        );
    }
    // GitHub back, and the back-off after the failed reads over: the
    // fleet reads again and refuses.
    github.set_down(false);
    clock.advance(channelgate::membership::MAX_BACKOFF + Duration::from_secs(1));
    github.reset_counters();
    for app in &apps {
        assert_eq!(ada.auth(app, "private-ops").await.0, StatusCode::FORBIDDEN);
    }
    assert!(reads(&github) >= 1);
}
