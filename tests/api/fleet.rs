//! A fleet: three instances on one Redis behind a balancer that sends each
//! request wherever it likes. What one instance counts holds at the
//! others: `[limits]` count for the fleet.
//!
//! Needs a Redis server: `.ci/run` starts one and runs these with
//! `cargo test -- --ignored`; locally, start `redis-server` and set
//! `CHANNELGATE_TEST_REDIS` if it is not at redis://127.0.0.1:6379.
//! Whatever a test leaves in that Redis is named by this run's own random
//! addresses, so runs and tests never meet.

use std::time::{SystemTime, UNIX_EPOCH};

use channelgate::config::Config;
use reqwest::StatusCode;

use crate::helpers::{OwnRedis, TestApp, three_sharing};

fn redis() -> String {
    std::env::var("CHANNELGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Random enough that no other run or test shares it.
fn random() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut x = u64::from(nanos) ^ (u64::from(std::process::id()) << 32);
    // One step of splitmix64, so that close seeds differ everywhere.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A client address of this test alone (a /64 of its own), as a trusted
/// proxy in front of the fleet reports it.
fn client_address() -> String {
    let r = random();
    format!("2001:db8:{:x}:{:x}::1", (r >> 16) & 0xffff, r & 0xffff)
}

/// `[limits] login_per_minute = 5`, behind a proxy on loopback that
/// names the client in `X-Forwarded-For`.
fn five_logins_a_minute(c: &mut Config) {
    c.limits.login_per_minute = 5;
    c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// `GET /auth/login` at `app` for the client at `address`: its status.
async fn start_login_from(app: &TestApp, address: &str) -> StatusCode {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/auth/login"))
        .header("x-forwarded-for", address)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_login_limit_of_five_a_minute_admits_five_across_three_instances() {
    let fleet = three_sharing(&redis(), five_logins_a_minute).await;
    let address = client_address();
    let mut admitted = 0;
    let mut refused = 0;
    for attempt in 0..15 {
        match start_login_from(&fleet[attempt % 3], &address).await {
            StatusCode::SEE_OTHER => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    assert_eq!((admitted, refused), (5, 10), "5 a minute for the fleet");
    // Another client has its own five.
    assert_eq!(
        start_login_from(&fleet[1], &client_address()).await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
#[ignore = "needs redis-server; run with --ignored (see .ci/run)"]
async fn when_redis_stops_answering_each_instance_still_holds_the_login_limit_itself() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start(port);
    let app = TestApp::new()
        .with_store(&format!("redis://127.0.0.1:{port}"))
        .with_config(five_logins_a_minute)
        .spawn()
        .await;
    let address = client_address();
    assert_eq!(
        start_login_from(&app, &address).await,
        StatusCode::SEE_OTHER
    );
    redis.stop();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(start_login_from(&app, &address).await);
    }
    // Counted by the instance's own bucket: 4 more of its 5, then refused.
    // Never unlimited, and no 503 for a login that needs no store.
    assert_eq!(
        statuses,
        [
            [StatusCode::SEE_OTHER; 4].as_slice(),
            &[StatusCode::TOO_MANY_REQUESTS; 3]
        ]
        .concat()
    );
}
