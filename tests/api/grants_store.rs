//! Live grants that outlive the process, watched again while their socket
//! keeps authorizing, and terminations that say what they cannot reach.
//!
//! With a SQLite or Redis session store every grant is kept in the store
//! and taken back at start, so a restart forgets nothing; a grant the store
//! cannot keep gets no signature. A grant is watched again whenever its
//! socket authorizes or signs in. Hosted Pusher's terminate_connections
//! reaches only signed-in sockets: the log line and a metric say when a
//! person's channels sat on sockets that never signed in.

use std::time::Duration;

use github_standin::GithubStandIn;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Browser, OwnRedis, PusherStandIn, SOCKET, TestApp, capture_json_logs, metric, stand_in,
    temp_dir,
};

/// A gateway on `store`, sharing GitHub and Pusher (a restart's new process).
async fn on_store(store: &str, github: &GithubStandIn, pusher: &PusherStandIn) -> TestApp {
    TestApp::new()
        .with_github(github.clone())
        .with_pusher(pusher.clone())
        .with_store(store)
        .with_config(|c| c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap()))
        .spawn()
        .await
}

/// `POST /pusher/auth` for `channel` on socket `socket`.
async fn auth_on(browser: &Browser, app: &TestApp, channel: &str, socket: &str) -> StatusCode {
    browser
        .post_form(
            app,
            "/pusher/auth",
            &[("socket_id", socket), ("channel_name", channel)],
        )
        .await
        .0
}

/// Grants ada a channel on one gateway, restarts on the same store, takes
/// the channel away at GitHub (no webhook, nobody asks): the restarted
/// gateway's sweep ends her connections.
async fn a_restart_forgets_no_grant(store: &str) {
    let github = stand_in().await;
    let pusher = PusherStandIn::spawn().await;
    let first = on_store(store, &github, &pusher).await;
    let ada = Browser::logged_in_as(&first, "ada").await;
    assert_eq!(ada.auth(&first, "private-ops").await.0, StatusCode::OK);
    first.gateway.shutdown().await.unwrap();

    let second = on_store(store, &github, &pusher).await;
    assert!(
        second.state().revocation.is_watched(1),
        "ada's grant was taken back at start"
    );
    github.remove_from_team("ada", "initech", "ops");
    second.pass_the_ttl();
    second.sweep().await;
    assert_eq!(pusher.terminated(), [1], "ended after the restart");
    let me: Value = ada.get(&second.url("/auth/me")).await.json().await.unwrap();
    assert_eq!(me["ended"]["lost"], json!(["private-ops"]), "{me}");
    // What was ended is gone from the store too: a third start has nothing.
    second.gateway.shutdown().await.unwrap();
    let third = on_store(store, &github, &pusher).await;
    assert!(!third.state().revocation.is_watched(1));
}

#[tokio::test]
async fn with_sqlite_a_restart_forgets_no_grant() {
    let dir = temp_dir("grants-restart");
    a_restart_forgets_no_grant(&format!("sqlite://{}", dir.join("sessions.db").display())).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
#[ignore = "needs redis-server on this machine; .ci/run runs it"]
async fn with_redis_a_restart_forgets_no_grant() {
    let port = free_port();
    let _redis = OwnRedis::start(port);
    a_restart_forgets_no_grant(&format!("redis://127.0.0.1:{port}")).await;
}

#[tokio::test]
async fn a_new_grant_the_store_cannot_keep_gets_no_signature() {
    let dir = temp_dir("grants-locked");
    let db = dir.join("sessions.db");
    let app = TestApp::new()
        .with_store(&format!("sqlite://{}", db.display()))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    // Another process holds the file's write lock (a backup, a stuck
    // writer): the store cannot take a write.
    let url = format!("sqlite://{}", db.display());
    let pool = tower_sessions_sqlx_store::sqlx::SqlitePool::connect(&url)
        .await
        .unwrap();
    let mut locker = pool.acquire().await.unwrap();
    tower_sessions_sqlx_store::sqlx::query("begin exclusive")
        .execute(&mut *locker)
        .await
        .unwrap();
    // A channel not signed for her before: no signature the gateway could
    // not take back after a restart.
    let (status, body) = ada.auth(&app, "private-user-ada").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("session store"),
        "{body}"
    );
    assert!(body.get("auth").is_none(), "{body}");
    // Nor a sign-in.
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::SERVICE_UNAVAILABLE);
    // A grant the store already holds is signed again without a write.
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    tower_sessions_sqlx_store::sqlx::query("rollback")
        .execute(&mut *locker)
        .await
        .unwrap();
    assert_eq!(ada.auth(&app, "private-user-ada").await.0, StatusCode::OK);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
#[ignore = "needs redis-server on this machine; .ci/run runs it"]
async fn with_redis_gone_a_new_grant_gets_no_signature() {
    let port = free_port();
    let dir = temp_dir("grants-redis-gone");
    let mut redis = OwnRedis::start_in(port, Some(&dir));
    let app = TestApp::new()
        .with_store(&format!("redis://127.0.0.1:{port}"))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    redis.stop();
    let (status, body) = ada.auth(&app, "private-user-ada").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.get("auth").is_none(), "{body}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A gateway watching grants for an hour.
async fn watching_for_an_hour() -> TestApp {
    TestApp::new()
        .with_config(|c| c.revocation.watch_for = Duration::from_secs(3600))
        .spawn()
        .await
}

#[tokio::test]
async fn a_socket_that_keeps_authorizing_keeps_its_older_channels_within_reach() {
    let app = watching_for_an_hour().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(
        auth_on(&ada, &app, "private-ops", "1.1").await,
        StatusCode::OK
    );
    // Fifty minutes on, the same connection subscribes to another channel.
    app.clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(
        auth_on(&ada, &app, "private-user-ada", "1.1").await,
        StatusCode::OK
    );
    // Past the first channel's hour, ada leaves the team.
    app.clock.advance(Duration::from_secs(20 * 60));
    app.github.remove_from_team("ada", "initech", "ops");
    app.pass_the_ttl();
    app.sweep().await;
    assert_eq!(app.pusher.terminated(), [1], "private-ops was re-armed");
    let me: Value = ada.get(&app.url("/auth/me")).await.json().await.unwrap();
    assert_eq!(me["ended"]["lost"], json!(["private-ops"]), "{me}");
}

#[tokio::test]
async fn a_channel_whose_socket_never_authorized_again_is_out_of_reach_after_watch_for() {
    let app = watching_for_an_hour().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(
        auth_on(&ada, &app, "private-ops", "1.1").await,
        StatusCode::OK
    );
    app.clock.advance(Duration::from_secs(50 * 60));
    // Another connection's authorization re-arms nothing of the first's.
    assert_eq!(
        auth_on(&ada, &app, "private-user-ada", "2.2").await,
        StatusCode::OK
    );
    app.clock.advance(Duration::from_secs(20 * 60));
    app.github.remove_from_team("ada", "initech", "ops");
    app.pass_the_ttl();
    app.sweep().await;
    assert!(app.pusher.terminated().is_empty(), "watch_for bounds it");
}

#[tokio::test]
async fn a_termination_says_how_many_channels_sat_on_sockets_that_never_signed_in() {
    let (logs, _guard) = capture_json_logs(tracing::Level::INFO);
    let app = TestApp::new()
        .with_config(|c| c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap()))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    // One tab signs in and subscribes; another only subscribes.
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    assert_eq!(
        auth_on(&ada, &app, "private-ops", SOCKET).await,
        StatusCode::OK
    );
    assert_eq!(
        auth_on(&ada, &app, "private-ops", "2.2").await,
        StatusCode::OK
    );
    assert_eq!(
        auth_on(&ada, &app, "private-user-ada", "2.2").await,
        StatusCode::OK
    );
    app.github.remove_from_team("ada", "initech", "ops");
    app.pass_the_ttl();
    app.sweep().await;
    assert_eq!(app.pusher.terminated(), [1]);

    let text = logs.text();
    let line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Pusher connections ended"))
        })
        .unwrap_or_else(|| panic!("no termination line in\n{text}"));
    let fields = &line["fields"];
    assert_eq!(fields["unsigned_sockets"], 1, "{line}");
    assert_eq!(fields["unsigned_channels"], 2, "{line}");
    let message = fields["message"].as_str().unwrap();
    assert!(message.contains("revocation.require_signin"), "{message}");
    assert_eq!(line["level"], "WARN", "{line}");
    let metrics = app.scrape().await;
    assert_eq!(
        metric(&metrics, "channelgate_terminations_unreachable_total"),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_termination_that_reaches_every_socket_is_not_counted_unreachable() {
    let app = TestApp::new()
        .with_config(|c| c.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap()))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.sign_in(&app).await.0, StatusCode::OK);
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    app.github.remove_from_team("ada", "initech", "ops");
    app.pass_the_ttl();
    app.sweep().await;
    assert_eq!(app.pusher.terminated(), [1]);
    let metrics = app.scrape().await;
    assert_eq!(
        metric(&metrics, "channelgate_terminations_unreachable_total"),
        0.0
    );
}

/// Every file of the SQLite store at `db` (and its WAL), as text.
fn sqlite_files(db: &std::path::Path) -> String {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        let mut file = db.to_path_buf().into_os_string();
        file.push(suffix);
        bytes.extend(std::fs::read(&file).unwrap_or_default());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn a_sqlite_store_keeps_grants_with_their_tokens_sealed() {
    let dir = temp_dir("grants-sealed");
    let db = dir.join("sessions.db");
    let app = TestApp::new()
        .with_store(&format!("sqlite://{}", db.display()))
        .spawn()
        .await;
    // An expiring token: a refresh token goes with the grant's record too.
    app.github
        .set_token_lifetime(Some(Duration::from_secs(8 * 3600)));
    let ada = Browser::logged_in_as(&app, "ada").await;
    assert_eq!(ada.auth(&app, "private-ops").await.0, StatusCode::OK);
    let files = sqlite_files(&db);
    assert!(
        files.contains("private-ops") && files.contains("channelgate_grants"),
        "the grant is not where the test looks"
    );
    for prefix in ["ghu_", "ghr_", "gho_"] {
        assert!(!files.contains(prefix), "{prefix} stored in clear");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Prints what one grant costs in the store: `cargo test --test api
/// bytes_per_grant -- --nocapture`. Not an assertion of size, a figure.
#[tokio::test]
async fn bytes_per_grant_in_sqlite() {
    use tower_sessions_sqlx_store::sqlx::{self, SqlitePool};
    let dir = temp_dir("grants-size");
    let db = dir.join("sessions.db");
    let app = TestApp::new()
        .with_store(&format!("sqlite://{}", db.display()))
        .spawn()
        .await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let bo = Browser::logged_in_as(&app, "bo").await;
    let pool = SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let pages = async || -> i64 {
        sqlx::query("pragma wal_checkpoint(truncate)")
            .execute(&pool)
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as("pragma page_count")
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };
    let before = pages().await;
    let n = channelgate::revocation::MAX_CHANNELS_PER_PERSON;
    for browser in [&ada, &bo] {
        for i in 0..n {
            let channel = format!("private-initech-room-{i:04}");
            assert_eq!(browser.auth(&app, &channel).await.0, StatusCode::OK);
        }
    }
    let after = pages().await;
    let (page,): (i64,) = sqlx::query_as("pragma page_size")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (payload,): (f64,) = sqlx::query_as(
        "select avg(8 + length(name) + 8 + length(sockets)) from channelgate_grants",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let grants = 2 * n;
    let per_grant = ((after - before) * page) as f64 / grants as f64;
    println!(
        "grants in SQLite: {grants} grants (channel names of 25 characters, one socket id each) took {} pages of {page} bytes: {per_grant:.0} bytes per grant on disk ({payload:.0} bytes of payload)",
        after - before
    );
    assert!(after > before, "the grants went to the file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
#[ignore = "needs redis-server on this machine; .ci/run runs it"]
async fn bytes_per_grant_in_redis() {
    use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, HashesInterface};
    use tower_sessions_redis_store::fred::types::CustomCommand;
    let port = free_port();
    let _redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::new().with_store(&url).spawn().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let n = channelgate::revocation::MAX_CHANNELS_PER_PERSON;
    for i in 0..n {
        let channel = format!("private-initech-room-{i:04}");
        assert_eq!(ada.auth(&app, &channel).await.0, StatusCode::OK);
    }
    let client = tower_sessions_redis_store::fred::prelude::Client::new(
        Config::from_url(&url).unwrap(),
        None,
        None,
        None,
    );
    client.init().await.unwrap();
    let key = "channelgate:grants:1";
    let fields: i64 = client.hlen(key).await.unwrap();
    let bytes: i64 = client
        .custom(
            CustomCommand::new_static("MEMORY USAGE", None, false),
            vec![key, "SAMPLES", "0"],
        )
        .await
        .unwrap();
    println!(
        "grants in Redis: {} grants (channel names of 25 characters, one socket id each) and the person's record in {bytes} bytes: {:.0} bytes per grant",
        fields - 1,
        bytes as f64 / (fields - 1) as f64
    );
    assert_eq!(fields as usize, n + 1, "one field per grant and the record");
    let fields: std::collections::HashMap<String, String> = client.hgetall(key).await.unwrap();
    for value in fields.values() {
        assert!(!value.contains("gho_"), "a token in clear in Redis");
    }
}

/// Two instances' writes to one store merge: the later end of a grant
/// stays, a grant is removed only by whoever knows its latest end, and
/// nobody's write replaces another's grants.
async fn two_instances_merge_their_grants(choice: channelgate::config::SessionStore) {
    use channelgate::room::Room;
    use channelgate::room::grants::StoredGrant;
    let store = Room::open(&choice).await.unwrap();
    let keep = Duration::from_secs(3600);
    let now = 1_000_000;
    let grant = |name: &str, until_ms: i64, sockets: &str| StoredGrant {
        name: name.into(),
        until_ms,
        sockets: sockets.into(),
    };
    // Instance a signs private-ops; b signs it later on another socket,
    // and a channel of its own.
    let a = grant("private-ops", now + 100, "1.1");
    let b = grant("private-ops", now + 200, "2.2");
    let own = grant("private-user-ada", now + 150, "2.2");
    store
        .keep_grants(1, "{}", std::slice::from_ref(&a), keep)
        .await
        .unwrap();
    store
        .keep_grants(1, "{}", &[b.clone(), own.clone()], keep)
        .await
        .unwrap();
    // a's lazy refresh of its older end arrives last: b's end stays.
    store
        .keep_grants(1, "{}", std::slice::from_ref(&a), keep)
        .await
        .unwrap();
    let read = |people: Vec<channelgate::room::grants::StoredPerson>| {
        let mut grants = people
            .into_iter()
            .next()
            .map(|p| p.grants)
            .unwrap_or_default();
        grants.sort_by(|x, y| x.name.cmp(&y.name));
        grants
    };
    assert_eq!(
        read(store.load_grants(now).await.unwrap()),
        [b.clone(), own.clone()]
    );
    // a's grant expires for a: b's later one is not a's to remove.
    store
        .forget_grants(1, &[("private-ops".into(), a.until_ms)])
        .await
        .unwrap();
    assert_eq!(
        read(store.load_grants(now).await.unwrap()),
        [b.clone(), own.clone()]
    );
    // b forgets both: nothing of the person is left.
    store
        .forget_grants(
            1,
            &[
                ("private-ops".into(), b.until_ms),
                (own.name.clone(), own.until_ms),
            ],
        )
        .await
        .unwrap();
    assert!(store.load_grants(now).await.unwrap().is_empty());
}

#[tokio::test]
async fn two_instances_on_one_sqlite_file_merge_their_grants() {
    let dir = temp_dir("grants-merge");
    two_instances_merge_their_grants(channelgate::config::SessionStore::Sqlite(
        dir.join("sessions.db"),
    ))
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
#[ignore = "needs redis-server on this machine; .ci/run runs it"]
async fn two_instances_on_one_redis_merge_their_grants() {
    let port = free_port();
    let _redis = OwnRedis::start(port);
    two_instances_merge_their_grants(channelgate::config::SessionStore::Redis(
        channelgate::secret::Secret::new(format!("redis://127.0.0.1:{port}")),
    ))
    .await;
}

#[tokio::test]
async fn a_re_armed_grant_keeps_its_new_end_across_a_restart() {
    let dir = temp_dir("grants-rearmed");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let github = stand_in().await;
    let pusher = PusherStandIn::spawn().await;
    // The restarted process goes on from the time the first one reached.
    let clock = channelgate::clock::Clock::default();
    let spawn = || {
        TestApp::new()
            .with_github(github.clone())
            .with_pusher(pusher.clone())
            .with_store(&store)
            .with_clock(clock.clone())
            .with_config(|c| c.revocation.watch_for = Duration::from_secs(3600))
            .spawn()
    };
    let first = spawn().await;
    let ada = Browser::logged_in_as(&first, "ada").await;
    assert_eq!(
        auth_on(&ada, &first, "private-ops", "1.1").await,
        StatusCode::OK
    );
    first.clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(
        auth_on(&ada, &first, "private-user-ada", "1.1").await,
        StatusCode::OK
    );
    // The sweep writes private-ops' new end (lazily: not on the request).
    first.sweep().await;
    first.gateway.shutdown().await.unwrap();

    let second = spawn().await;
    // Past private-ops' first hour, as the store knew it before the re-arm.
    second.clock.advance(Duration::from_secs(20 * 60));
    github.remove_from_team("ada", "initech", "ops");
    second.pass_the_ttl();
    second.sweep().await;
    assert_eq!(pusher.terminated(), [1], "the re-armed end was kept");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn past_the_per_person_cap_a_restart_still_ends_everything_on_a_change() {
    let dir = temp_dir("grants-overflow");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let github = stand_in().await;
    let pusher = PusherStandIn::spawn().await;
    let first = on_store(&store, &github, &pusher).await;
    let ada = Browser::logged_in_as(&first, "ada").await;
    // More channels than are remembered for one person: what she holds
    // beyond the cap is unknown, and the store must know that too.
    let cap = channelgate::revocation::MAX_CHANNELS_PER_PERSON;
    for i in 0..=cap {
        let channel = format!("private-initech-{i}");
        assert_eq!(ada.auth(&first, &channel).await.0, StatusCode::OK);
    }
    first.gateway.shutdown().await.unwrap();

    let second = on_store(&store, &github, &pusher).await;
    // A change of her memberships that takes none of the remembered
    // channels away may have taken one beyond the cap.
    github.add_to_team("ada", "initech", "design");
    second.pass_the_ttl();
    second.sweep().await;
    assert_eq!(pusher.terminated(), [1]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_stored_grant_whose_record_cannot_be_read_is_ended_at_start() {
    use tower_sessions_sqlx_store::sqlx::{self, SqlitePool};
    let dir = temp_dir("grants-unreadable");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let github = stand_in().await;
    let pusher = PusherStandIn::spawn().await;
    // A first start makes the tables; a grant is then left there with a
    // record nobody can read (written by a later version, or damaged).
    on_store(&store, &github, &pusher)
        .await
        .gateway
        .shutdown()
        .await
        .unwrap();
    let pool = SqlitePool::connect(&store).await.unwrap();
    let later = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        + 3_600_000;
    sqlx::query(
        "insert into channelgate_grant_people (id, until, record) values (7, ?, 'not json')",
    )
    .bind(later)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into channelgate_grants (id, name, until, sockets) values (7, 'private-ops', ?, '1.1')",
    )
    .bind(later)
    .execute(&pool)
    .await
    .unwrap();

    let app = on_store(&store, &github, &pusher).await;
    app.settled().await;
    assert_eq!(
        pusher.terminated(),
        [7],
        "what cannot be re-checked is ended"
    );
    let (left,): (i64,) = sqlx::query_as("select count(*) from channelgate_grants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "and forgotten");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn past_the_cap_a_person_stays_watched_when_what_is_remembered_expires() {
    // 256 throwaway channels on one connection, then, near their end, the
    // channel that matters on another: past the cap, it is not remembered
    // by name. When the throwaways expire she must still be watched.
    let app = watching_for_an_hour().await;
    let ada = Browser::logged_in_as(&app, "ada").await;
    let cap = channelgate::revocation::MAX_CHANNELS_PER_PERSON;
    for i in 0..cap {
        let channel = format!("private-initech-{i}");
        assert_eq!(auth_on(&ada, &app, &channel, "1.1").await, StatusCode::OK);
    }
    app.clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(
        auth_on(&ada, &app, "private-ops", "2.2").await,
        StatusCode::OK
    );
    app.clock.advance(Duration::from_secs(20 * 60));
    app.sweep().await;
    assert!(app.state().revocation.is_watched(1), "still watched");
    app.github.remove_from_team("ada", "initech", "ops");
    app.pass_the_ttl();
    app.sweep().await;
    assert_eq!(app.pusher.terminated(), [1]);
}

#[tokio::test]
async fn with_redis_grants_that_do_not_read_back_are_ended_at_start() {
    // Grants left without their person's record (a race, a partial copy),
    // or with a value that does not read back: nothing can re-check them,
    // so they are ended, never skipped.
    let port = free_port();
    let _redis = OwnRedis::start(port);
    let store = format!("redis://127.0.0.1:{port}");
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    for (id, value) in [(7, format!("{later} 1")), (8, "garbage".to_owned())] {
        let set = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "HSET"])
            .arg(format!("channelgate:grants:{id}"))
            .args(["private-ops", &value])
            .output()
            .expect("redis-cli runs");
        assert!(set.status.success(), "{set:?}");
    }
    let github = stand_in().await;
    let pusher = PusherStandIn::spawn().await;
    let app = on_store(&store, &github, &pusher).await;
    app.settled().await;
    let mut ended = pusher.terminated();
    ended.sort_unstable();
    assert_eq!(ended, [7, 8]);
}

#[tokio::test]
async fn the_memory_store_says_at_start_that_a_restart_forgets_live_grants() {
    let (captured, _guard) = crate::helpers::capture_info_logs();
    let _app = TestApp::new().spawn().await;
    let log = captured.text();
    assert!(
        log.contains("session.store is memory: live grants")
            && log.contains("a restart forgets them"),
        "{log}"
    );
}
