//! Access taken back live: what was signed is re-checked when GitHub says
//! something changed (a webhook), on the sweep, and when a token is
//! revoked; a lost grant ends the person's connections through Pusher's
//! HTTP API (here its stand-in, which checks the signature as Pusher does).

use std::time::Duration;

use github_standin::{Change, signature_256, team_id};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Browser, TestApp, WEBHOOK_SECRET};

/// Enough for a webhook's re-read and the terminate call on a busy machine;
/// the interop suite holds the 1 s figure against the real server.
const SOON: Duration = Duration::from_secs(5);

fn change(
    kind: fn(String, String, String) -> Change,
    login: &str,
    org: &str,
    slug: &str,
) -> Change {
    kind(login.into(), org.into(), slug.into())
}

fn remove_from_team(login: String, org: String, slug: String) -> Change {
    Change::RemoveFromTeam { login, org, slug }
}

fn add_to_team(login: String, org: String, slug: String) -> Change {
    Change::AddToTeam { login, org, slug }
}

/// Posts a webhook delivery as GitHub would, signed with `secret`.
pub(crate) async fn deliver(
    app: &TestApp,
    event: &str,
    delivery: &str,
    body: &[u8],
    secret: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(app.url("/github/webhook"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .body(body.to_vec());
    if let Some(secret) = secret {
        request = request.header(
            "x-hub-signature-256",
            signature_256(secret.as_bytes(), body),
        );
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) fn removed_from_team(id: u64) -> Vec<u8> {
    team_membership("removed", id)
}

fn team_membership(action: &str, id: u64) -> Vec<u8> {
    json!({
        "action": action,
        "scope": "team",
        "member": { "login": "ada", "id": id },
        "team": { "id": team_id("initech", "ops"), "slug": "ops", "name": "ops" },
        "organization": { "login": "initech", "id": 1 },
        "sender": { "login": "admin", "id": 99 },
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_webhook_ends_the_connections_of_a_person_removed_from_a_team() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(ada.auth(&app, "private-user-ada").await.0, StatusCode::OK);

    let delivery = app
        .github
        .announce(change(remove_from_team, "ada", "initech", "ops"))
        .await
        .expect("a delivery");
    assert_eq!(delivery.status, Some(202), "{delivery:?}");
    assert!(
        app.pusher.wait_for_terminate(1, SOON).await,
        "ada's connections ended"
    );
    let call = &app.pusher.calls()[0];
    assert_eq!((call.app_id.as_str(), call.body.as_str()), ("1234", "{}"));
    assert!(call.signed, "signed as Pusher checks it");

    // Her client authorizes again: the lost channel is refused, the rest signed.
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
    assert_eq!(ada.auth(&app, "private-user-ada").await.0, StatusCode::OK);
    // And the home page's JSON says what ended and why.
    let me: Value = ada.get(&app.url("/auth/me")).await.json().await.unwrap();
    assert_eq!(me["ended"]["lost"], json!(["private-ops"]), "{me}");
    assert!(
        me["ended"]["reason"]
            .as_str()
            .unwrap()
            .contains("private-ops"),
        "{me}"
    );
}

#[tokio::test]
async fn a_change_that_takes_nothing_away_ends_nothing() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    assert_eq!(
        bo.auth(&app, "private-initech-news").await.0,
        StatusCode::OK
    );
    let delivery = app
        .github
        .announce(change(add_to_team, "bo", "initech", "ops"))
        .await
        .unwrap();
    assert_eq!(delivery.status, Some(202));
    // The re-read happened (bo now gets the team's channel at once, TTL or not)...
    app.settled().await;
    assert_eq!(bo.auth(&app, "private-ops").await.0, StatusCode::OK);
    // ...and nothing was ended.
    assert!(app.pusher.calls().is_empty(), "{:?}", app.pusher.calls());
}

#[tokio::test]
async fn the_sweep_ends_an_idle_persons_lost_channel_without_a_webhook() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(
        bo.auth(&app, "private-initech-news").await.0,
        StatusCode::OK
    );
    // GitHub tells nobody; ada and bo make no request.
    app.github.remove_from_team("ada", "initech", "ops");
    app.github.reset_counters();
    app.pass_the_ttl();
    app.sweep().await;
    assert_eq!(app.pusher.terminated(), [1], "the sweep found it");
    assert!(!app.pusher.terminated().contains(&2), "bo lost nothing");
    // bo's re-read cost nothing: every answer was a 304.
    use github_standin::Endpoint;
    for endpoint in [Endpoint::User, Endpoint::OrgMemberships, Endpoint::Teams] {
        assert_eq!(
            app.github.calls(endpoint),
            app.github.not_modified(endpoint) + u64::from(endpoint == Endpoint::Teams),
            "{endpoint:?}: only ada's changed team list is a 200"
        );
    }
}

#[tokio::test]
async fn the_sweep_does_not_re_read_someone_their_own_requests_keep_fresh() {
    use github_standin::Endpoint;
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    // The sweep's first look, at a point of the TTL spread by id, re-reads.
    app.pass_the_ttl();
    app.sweep().await;
    assert_eq!(
        app.github.calls(Endpoint::Teams),
        2,
        "login, then the sweep"
    );
    // A TTL later ada asks first: her request re-reads, the sweep does not.
    app.pass_the_ttl();
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(app.github.calls(Endpoint::Teams), 3);
    app.sweep().await;
    assert_eq!(app.github.calls(Endpoint::Teams), 3, "one read per TTL");
    // Left idle, she is re-read by the sweep again.
    app.pass_the_ttl();
    app.sweep().await;
    assert_eq!(app.github.calls(Endpoint::Teams), 4);
}

#[tokio::test]
async fn a_revoked_token_ends_everything_the_person_held() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-user-ada").await.0, StatusCode::OK);
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    let delivery = app
        .github
        .announce(Change::RevokeTokens {
            login: "ada".into(),
        })
        .await
        .unwrap();
    assert_eq!(delivery.event, "github_app_authorization");
    assert!(app.pusher.wait_for_terminate(1, SOON).await);
    // The session ended with the token.
    let me = ada.get(&app.url("/auth/me")).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn terminate_calls_are_retried_after_a_5xx() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.pusher.fail_next(&[503, 502]);
    app.github
        .announce(change(remove_from_team, "ada", "initech", "ops"))
        .await
        .unwrap();
    assert!(app.pusher.wait_for_terminate(1, SOON).await);
    let statuses: Vec<u16> = app.pusher.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [503, 502, 200], "two failures, then success");
}

#[tokio::test]
async fn a_refused_terminate_call_is_tried_again_by_the_sweep() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    // The sweep's first look, which always re-reads, is behind us.
    app.pass_the_ttl();
    app.sweep().await;
    // Pusher refuses the first call (a 4xx is not retried at once).
    app.pusher.fail_next(&[401]);
    app.github
        .announce(change(remove_from_team, "ada", "initech", "ops"))
        .await
        .unwrap();
    app.settled().await;
    assert_eq!(app.pusher.calls().len(), 1, "the refused call");
    // Her membership is fresh (just re-read), but the grant is still lost:
    // the sweep's next look tries again, without waiting for the TTL.
    app.clock.advance(Duration::from_secs(6));
    app.sweep().await;
    assert!(app.pusher.terminated().contains(&1), "tried again");
    let statuses: Vec<u16> = app.pusher.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [401, 200]);
}

#[tokio::test]
async fn with_watch_for_zero_nothing_is_watched_or_ended() {
    let app = TestApp::new()
        .with_webhooks()
        .with_config(|c| c.revocation.watch_for = Duration::ZERO)
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.github
        .announce(change(remove_from_team, "ada", "initech", "ops"))
        .await
        .unwrap();
    app.settled().await;
    assert!(app.pusher.calls().is_empty());
    // The webhook still made the cached membership stale: no signature for
    // the lost channel, TTL or not.
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn with_terminate_connections_off_nothing_is_called() {
    let app = TestApp::new()
        .with_webhooks()
        .with_config(|c| c.revocation.terminate_connections = false)
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.github.remove_from_team("ada", "initech", "ops");
    let (status, _) = deliver(
        &app,
        "membership",
        "d-1",
        &removed_from_team(1),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.settled().await;
    assert!(app.pusher.calls().is_empty());
    let me: Value = ada.get(&app.url("/auth/me")).await.json().await.unwrap();
    assert_eq!(me["ended"]["lost"], json!(["private-ops"]), "{me}");
}

#[tokio::test]
async fn webhook_deliveries_that_are_not_genuine_change_nothing() {
    let app = TestApp::new().with_webhooks().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.github.remove_from_team("ada", "initech", "ops");
    app.github.reset_counters();
    let body = removed_from_team(1);

    // Unsigned, or signed with another secret: 401.
    assert_eq!(
        deliver(&app, "membership", "d-1", &body, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let forged = deliver(
        &app,
        "membership",
        "d-2",
        &body,
        Some("not-the-secret-0123456"),
    )
    .await;
    assert_eq!(forged.0, StatusCode::UNAUTHORIZED);
    // Signed for another body: 401.
    let mut request = reqwest::Client::new()
        .post(app.url("/github/webhook"))
        .header("x-github-event", "membership")
        .header("x-github-delivery", "d-3")
        .header(
            "x-hub-signature-256",
            signature_256(WEBHOOK_SECRET.as_bytes(), b"{}"),
        )
        .body(body.clone());
    assert_eq!(
        request.send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Over the size limit: 413, before any signature work.
    let huge = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(
        deliver(&app, "membership", "d-4", &huge, Some(WEBHOOK_SECRET))
            .await
            .0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Signed but malformed: 400, naming what is wrong.
    let (status, answer) = deliver(
        &app,
        "membership",
        "d-5",
        b"{\"action\":\"removed\",\"scope\":\"team\"}",
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"].as_str().unwrap().contains("member"),
        "{answer}"
    );
    assert_eq!(
        deliver(&app, "membership", "d-6", b"not json", Some(WEBHOOK_SECRET))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    request = reqwest::Client::new()
        .post(app.url("/github/webhook"))
        .header("x-github-event", "membership")
        .header(
            "x-hub-signature-256",
            signature_256(WEBHOOK_SECRET.as_bytes(), &body),
        )
        .body(body.clone());
    assert_eq!(
        request.send().await.unwrap().status(),
        StatusCode::BAD_REQUEST,
        "no delivery id"
    );
    // An event that changes no access: 2xx, ignored.
    let (status, answer) = deliver(
        &app,
        "push",
        "d-7",
        b"{\"ref\":\"main\"}",
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        answer["outcome"].as_str().unwrap().starts_with("ignored"),
        "{answer}"
    );
    assert_eq!(
        deliver(
            &app,
            "ping",
            "d-8",
            b"{\"zen\":\"hi\"}",
            Some(WEBHOOK_SECRET)
        )
        .await
        .0,
        StatusCode::OK
    );

    // None of that read GitHub or ended anything.
    app.settled().await;
    use github_standin::Endpoint;
    assert_eq!(app.github.calls(Endpoint::Teams), 0);
    assert!(app.pusher.calls().is_empty());

    // The genuine delivery works once; a replay of its id does nothing.
    let (status, _) = deliver(&app, "membership", "d-9", &body, Some(WEBHOOK_SECRET)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(app.pusher.wait_for_terminate(1, SOON).await);
    let reads = app.github.calls(Endpoint::Teams);
    let (status, answer) = deliver(&app, "membership", "d-9", &body, Some(WEBHOOK_SECRET)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        answer["outcome"].as_str().unwrap().starts_with("duplicate"),
        "{answer}"
    );
    app.settled().await;
    assert_eq!(
        app.github.calls(Endpoint::Teams),
        reads,
        "no second re-read"
    );
    assert_eq!(app.pusher.calls().len(), 1);
}

#[tokio::test]
async fn without_a_webhooks_section_the_route_does_not_exist() {
    let app = TestApp::new().spawn().await;
    let (status, _) = deliver(&app, "ping", "d-1", b"{}", Some(WEBHOOK_SECRET)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_webhook_to_one_instance_ends_connections_signed_by_another() {
    let redis =
        std::env::var("CHANNELGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let first = TestApp::new()
        .with_webhooks()
        .with_store(&redis)
        .spawn()
        .await;
    let second = TestApp::new()
        .with_github(first.github.clone())
        .with_pusher(first.pusher.clone())
        .with_store(&redis)
        .spawn()
        .await;
    // ada's channel is signed by the second instance only.
    let ada = Browser::logged_in_as(&second, "ada").await;
    assert_eq!(ada.auth(&second, "private-ops").await.0, StatusCode::OK);
    // GitHub tells the first.
    let delivery = first
        .github
        .announce(change(remove_from_team, "ada", "initech", "ops"))
        .await
        .unwrap();
    assert_eq!(delivery.status, Some(202));
    assert!(
        first.pusher.wait_for_terminate(1, SOON).await,
        "the second instance heard it over Redis and ended ada's connections"
    );
    assert_eq!(first.pusher.terminated(), [1], "exactly once");
}

#[tokio::test]
async fn a_full_watched_set_ends_the_connections_of_the_person_it_drops() {
    let app = TestApp::new()
        .with_config(|c| {
            c.cache.max_entries = 2;
            c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        })
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    let dee = Browser::logged_in_as(&app, "Dee-Dash").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(bo.auth(&app, "private-user-bo").await.0, StatusCode::OK);
    assert!(app.pusher.calls().is_empty());
    // A third person: the set is full, and the one signed for longest ago
    // can no longer be watched, so her connections end now (her client
    // authorizes again and is watched again) rather than outlive a removal.
    assert_eq!(
        dee.auth(&app, "private-user-Dee-Dash").await.0,
        StatusCode::OK
    );
    app.settled().await;
    assert_eq!(app.pusher.terminated(), [1], "ada was dropped and ended");
    let metrics = app.scrape().await;
    assert_eq!(
        crate::helpers::metric(&metrics, "channelgate_grants_dropped_total"),
        1.0,
        "{metrics}"
    );
    // She authorizes again and is watched again.
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert!(app.state().revocation.is_watched(1));
}

#[tokio::test]
async fn a_removal_whose_re_read_fails_ends_the_grants_and_serves_no_stale_answer() {
    let app = TestApp::new()
        .with_webhooks()
        .with_config(|c| c.cache.stale_grace = Duration::from_secs(3600))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    // GitHub says ada was removed, but cannot be asked to confirm it (an
    // outage, or ada burnt her own rate limit on purpose).
    app.github.remove_from_team("ada", "initech", "ops");
    app.github.set_down(true);
    let (status, _) = deliver(
        &app,
        "membership",
        "d-removed",
        &removed_from_team(1),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.settled().await;
    assert_eq!(app.pusher.terminated(), [1], "ended at once: fail closed");
    // Her access is unknown until GitHub answers: no stale answer within
    // stale_grace, no new signature.
    assert_eq!(
        ada.auth(&app, "private-ops").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // GitHub back, and its back-off past: the read decides.
    app.github.set_down(false);
    app.clock.advance(Duration::from_secs(6));
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn past_the_per_person_cap_a_change_of_the_rules_ends_everything() {
    use channelgate::web::reload::Reloaded;
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    // More channels than the gateway remembers for one person: what she
    // holds beyond the cap is unknown.
    let cap = channelgate::revocation::MAX_CHANNELS_PER_PERSON;
    for i in 0..=cap {
        let channel = format!("private-initech-{i}");
        assert_eq!(ada.auth(&app, &channel).await.0, StatusCode::OK);
    }
    // A reload takes a rule away; whatever it allowed among the unknown
    // channels must end, so everything of hers does.
    let state = app.state();
    let mut config = state.config().as_ref().clone();
    config.rules = channelgate::rules::RuleSet::new(
        config
            .rules
            .rules()
            .iter()
            .filter(|r| !r.pattern.to_string().starts_with("private-encrypted"))
            .cloned()
            .collect(),
    );
    assert!(matches!(
        state.reload(config).await,
        Reloaded::Applied { .. }
    ));
    app.settled().await;
    assert_eq!(app.pusher.terminated(), [1]);
}

#[tokio::test]
async fn a_webhook_naming_a_person_drops_their_cached_answer() {
    let app = TestApp::new()
        .with_webhooks()
        .with_config(|c| c.cache.stale_grace = Duration::from_secs(3600))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    // GitHub names ada, then cannot be asked about her: her fresh cached
    // answer no longer serves, and neither does the grace.
    app.github.set_down(true);
    let (status, _) = deliver(
        &app,
        "membership",
        "d-added",
        &team_membership("added", 1),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.settled().await;
    assert_eq!(
        ada.auth(&app, "private-ops").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        app.pusher.terminated().is_empty(),
        "not a removal: nothing ended while GitHub is down"
    );
    app.github.set_down(false);
    app.clock.advance(Duration::from_secs(11));
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
}

#[tokio::test]
async fn after_a_failed_re_read_the_sweep_tries_again_within_seconds() {
    let app = TestApp::new().spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    // The sweep's re-read meets an outage: nothing is ended on a guess...
    app.github.set_down(true);
    app.pass_the_ttl();
    app.sweep().await;
    assert!(app.pusher.terminated().is_empty());
    // ...and the removal GitHub answers with a few seconds later is found
    // then, not a whole TTL later.
    app.github.set_down(false);
    app.github.remove_from_team("ada", "initech", "ops");
    app.clock.advance(Duration::from_secs(6));
    app.sweep().await;
    assert_eq!(app.pusher.terminated(), [1]);
}

#[tokio::test]
#[ignore = "needs redis-server (CHANNELGATE_TEST_REDIS); .ci/run runs it"]
async fn a_removal_heard_by_another_instance_fails_closed_there_too() {
    let redis =
        std::env::var("CHANNELGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let first = TestApp::new()
        .with_webhooks()
        .with_store(&redis)
        .spawn()
        .await;
    let second = TestApp::new()
        .with_github(first.github.clone())
        .with_pusher(first.pusher.clone())
        .with_store(&redis)
        .with_config(|c| c.cache.stale_grace = Duration::from_secs(3600))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&second, "ada").await;
    assert_eq!(ada.auth(&second, "private-ops").await.0, StatusCode::OK);
    // The first instance hears GitHub say ada was removed; GitHub cannot
    // be asked to confirm it, by either instance.
    first.github.remove_from_team("ada", "initech", "ops");
    first.github.set_down(true);
    let (status, _) = deliver(
        &first,
        "membership",
        "d-removed-peer",
        &removed_from_team(1),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        first.pusher.wait_for_terminate(1, SOON).await,
        "the second instance, which signed ada's channel, ended it"
    );
    assert_eq!(
        ada.auth(&second, "private-ops").await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "and gives her no stale answer"
    );
}

#[tokio::test]
async fn one_dead_token_ends_its_session_not_the_persons_other_connections() {
    let app = TestApp::new().spawn().await;
    let laptop = Browser::logged_in_as(&app, "ada").await;
    let laptop_token = app.github.issued_token_values();
    let phone = Browser::logged_in_as(&app, "ada").await;
    let phone_token: Vec<String> = app
        .github
        .issued_token_values()
        .into_iter()
        .filter(|t| !laptop_token.contains(t))
        .collect();
    assert_eq!((laptop_token.len(), phone_token.len()), (1, 1));
    assert_eq!(laptop.auth(&app, "private-ops").await.0, StatusCode::OK);
    assert_eq!(phone.auth(&app, "private-user-ada").await.0, StatusCode::OK);
    // GitHub drops the phone's token (the person revoked that device, or
    // it was their oldest past ten): that session ends...
    assert!(app.github.revoke_token(&phone_token[0]));
    app.pass_the_ttl();
    assert_eq!(
        phone.auth(&app, "private-user-ada").await.0,
        StatusCode::UNAUTHORIZED
    );
    app.settled().await;
    // ...but ada's access is what the laptop's token reads: nothing ends.
    assert!(
        app.pusher.terminated().is_empty(),
        "{:?}",
        app.pusher.calls()
    );
    assert_eq!(laptop.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.pass_the_ttl();
    app.sweep().await;
    assert!(app.pusher.terminated().is_empty());
    // With every token of hers dead, everything she holds ends.
    assert!(app.github.revoke_token(&laptop_token[0]));
    app.pass_the_ttl();
    app.sweep().await;
    assert_eq!(app.pusher.terminated(), [1]);
}
