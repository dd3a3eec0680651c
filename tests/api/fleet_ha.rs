//! A fleet on highly available Redis, against the real thing: three
//! gateways on a Sentinel's service (a master, a replica, a sentinel) and
//! three on a three-master Redis Cluster.
//!
//! `.ci/redis-topologies start` starts both and prints the variables these
//! tests read, `CHANNELGATE_TEST_SENTINEL` and `CHANNELGATE_TEST_CLUSTER`;
//! without them a test says so and does nothing (in CI, where `.ci/run`
//! sets them, it fails instead). The Sentinel test fails the master over,
//! so the master and replica swap roles: nothing here assumes which node is
//! the master, it asks the sentinel. The tests need `redis-cli` beside the
//! servers, and run one at a time (`--test-threads 1`, as `.ci/run` does).

use std::time::{Duration, Instant};

use channelgate::config::{RedisNodes, SessionStore};
use channelgate::room::Room;
use channelgate::room::connect::keep_alive;
use channelgate::room::pubsub::{Heard, Publisher};
use channelgate::secret::Secret;
use channelgate::session::HOLD_FOR;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Browser, PusherStandIn, TestApp, answer, stand_in};

/// The URL in `var`, or `None` (after saying why) when it is not set.
fn topology(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: .ci/run starts the topologies with .ci/redis-topologies")
        }
        Err(_) => {
            eprintln!(
                "skipped: {var} is not set; start the topologies with `eval \"$(.ci/redis-topologies start)\"`"
            );
            None
        }
    }
}

/// Three gateways on `store`, one GitHub and one Pusher behind them.
async fn three_on(store: &str) -> Vec<TestApp> {
    let github = stand_in().await;
    let pusher = PusherStandIn::spawn().await;
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(
            TestApp::new()
                .with_github(github.clone())
                .with_pusher(pusher.clone())
                .with_store(store)
                .spawn()
                .await,
        );
    }
    apps
}

async fn me(browser: &Browser, app: &TestApp) -> (StatusCode, Value) {
    answer(browser.get(&app.url("/auth/me")).await).await
}

/// `redis-cli` at `host:port` (with the URL's password, if any): its
/// output, or the failure.
fn cli(nodes: &RedisNodes, (host, port): (&str, u16), args: &[&str]) -> String {
    let mut command = std::process::Command::new("redis-cli");
    command.args(["-h", host, "-p", &port.to_string()]);
    if let Some(password) = &nodes.password {
        command.args(["--no-auth-warning", "-a", password.expose()]);
    }
    let out = command
        .args(args)
        .output()
        .expect("redis-cli runs (apt-get install redis-server)");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The field `name` of an `INFO` answer.
fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Waits for `done` (checked every 100 ms) for at most `within`.
fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Sentinel's service as the tests see it: asked, never assumed.
struct Sentinel {
    nodes: RedisNodes,
}

impl Sentinel {
    fn new(url: &str) -> Self {
        Self {
            nodes: RedisNodes::parse(url).expect("a redis-sentinel:// URL"),
        }
    }

    fn sentinel(&self, args: &[&str]) -> String {
        let (host, port) = &self.nodes.hosts[0];
        cli(&self.nodes, (host, *port), args)
    }

    /// Where the sentinel says the master is now.
    fn master(&self) -> (String, u16) {
        let service = self.nodes.service.as_deref().unwrap();
        let out = self.sentinel(&["SENTINEL", "get-master-addr-by-name", service]);
        let mut lines = out.lines();
        let host = lines.next().unwrap().to_owned();
        let port = lines.next().and_then(|p| p.parse().ok());
        (host, port.unwrap_or_else(|| panic!("no master: {out}")))
    }

    fn info(&self, (host, port): &(String, u16), section: &str) -> String {
        cli(&self.nodes, (host, *port), &["INFO", section])
    }

    /// Waits until the sentinel's master is a master with a replica that
    /// is in sync, and the sentinel knows that replica (so a failover can
    /// pick it): the state a test may start from, and leaves behind.
    fn settled(&self) {
        let service = self.nodes.service.clone().unwrap();
        wait_for(
            "a master with a replica in sync",
            Duration::from_secs(60),
            || {
                let master = self.master();
                let info = self.info(&master, "replication");
                let replica = info_field(&info, "slave0").unwrap_or_default();
                let known = self.sentinel(&["SENTINEL", "replicas", &service]);
                info_field(&info, "role").as_deref() == Some("master")
                    && replica.contains("state=online")
                    && !known.contains("s_down")
                    && known.contains("master-link-status\nok")
            },
        );
    }

    /// Waits until the replica has every write the master took so far.
    fn replicated(&self) {
        let master = self.master();
        let offset = |info: &str| -> i64 {
            info_field(info, "master_repl_offset")
                .and_then(|o| o.parse().ok())
                .unwrap()
        };
        let target = offset(&self.info(&master, "replication"));
        wait_for("the replica caught up", Duration::from_secs(10), || {
            let info = self.info(&master, "replication");
            let acked = info_field(&info, "slave0")
                .and_then(|r| {
                    r.split(',')
                        .find_map(|kv| kv.strip_prefix("offset=")?.parse::<i64>().ok())
                })
                .unwrap_or(-1);
            acked >= target
        });
    }

    /// Stops the master's process (it hangs, as a machine that went away
    /// does) until the guard is dropped.
    fn freeze_master(&self) -> Frozen {
        let master = self.master();
        let pid = info_field(&self.info(&master, "server"), "process_id").unwrap();
        signal("-STOP", &pid);
        Frozen { pid, master }
    }
}

fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

/// A master stopped by [`Sentinel::freeze_master`]: dropped, it runs again
/// (and the sentinel makes it a replica of the new master).
struct Frozen {
    pid: String,
    master: (String, u16),
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", &self.pid);
    }
}

/// A topic's publisher on one room and what its listener on another hears,
/// as two instances hold them: each room's connections with their
/// heartbeat, the listener always waiting (see `revocation::bus`).
async fn topic_between(url: &str, name: &'static str) -> (Publisher, Hearing) {
    let store = SessionStore::Redis(Secret::new(url.to_owned()));
    let here = Room::open(&store).await.unwrap();
    let there = Room::open(&store).await.unwrap();
    // What the gateway runs beside each room (see `Store::open`).
    for room in [&here, &there] {
        if let Room::Redis(redis) = room {
            tokio::spawn(keep_alive(redis.pool().clone()));
        }
    }
    let (publisher, _) = here.topic(name).await.unwrap().unwrap().split();
    let (_, mut listener) = there.topic(name).await.unwrap().unwrap().split();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(heard) = listener.next().await {
            if tx.send(heard).is_err() {
                break;
            }
        }
    });
    (publisher, rx)
}

/// What a topic's listener heard, in order.
type Hearing = tokio::sync::mpsc::UnboundedReceiver<Heard>;

/// Publishes `text` (again, every 200 ms, while it is not heard: what is
/// published while a subscriber reconnects is lost) until it is heard, for
/// at most `within`.
async fn heard(publisher: &Publisher, hearing: &mut Hearing, text: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let _ = publisher.publish(text.to_owned()).await;
        let next = tokio::time::timeout(Duration::from_millis(200), async {
            loop {
                match hearing.recv().await {
                    Some(Heard::Text(t)) if t == text => return true,
                    Some(_) => {}
                    None => return false,
                }
            }
        });
        if next.await == Ok(true) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{text:?} not heard within {within:?}"
        );
    }
}

/// `GET /auth/me` as `browser`, given up after 10 s (a hang is a failure,
/// not a stuck test): the status and how long it took.
async fn timed_me(browser: &Browser, app: &TestApp) -> (Result<StatusCode, String>, Duration) {
    let started = Instant::now();
    let status = browser
        .http
        .get(app.url("/auth/me"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status())
        .map_err(|e| e.to_string());
    (status, started.elapsed())
}

/// The master stops answering (its process is stopped) while people keep
/// asking three instances: every request is answered 503 at once while no
/// master answers (never a hang, a 500 or a dropped request), the sentinel
/// promotes the replica, and within seconds every instance answers with
/// the sessions written before, pub/sub included. The old master comes back
/// as the replica. Then a planned failover (`SENTINEL FAILOVER`) is
/// followed too: writes succeed on all three again, quick 503s meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis Sentinel (CHANNELGATE_TEST_SENTINEL, from .ci/redis-topologies); .ci/run runs it"]
async fn on_sentinel_a_failover_keeps_sessions_and_answers_503_at_once_meanwhile() {
    let Some(url) = topology("CHANNELGATE_TEST_SENTINEL") else {
        return;
    };
    let sentinel = Sentinel::new(&url);
    sentinel.settled();
    let (publisher, mut hearing) = topic_between(&url, "channelgate-test-failover").await;
    heard(&publisher, &mut hearing, "before", Duration::from_secs(5)).await;

    let apps = three_on(&url).await;
    let ada = Browser::logged_in_as(&apps[0], "ada").await;
    let bo = Browser::logged_in_as(&apps[1], "bo").await;
    for app in &apps {
        assert_eq!(me(&ada, app).await.1["login"], "ada");
        assert_eq!(me(&bo, app).await.1["login"], "bo");
        assert_eq!(ada.auth(app, "private-ops").await.0, StatusCode::OK);
    }
    sentinel.replicated();

    let frozen = sentinel.freeze_master();
    let since = Instant::now();
    // Every instance is asked in turn, ada's and bo's sessions read from
    // the store each time (nothing held from before), until all have
    // answered only 200 for two seconds.
    let mut answers = Vec::new();
    let mut last_refusal = since;
    while last_refusal.elapsed() < Duration::from_secs(2) || answers.is_empty() {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no failover within 30 s: {answers:?}"
        );
        for (i, app) in apps.iter().enumerate() {
            for who in [&ada, &bo] {
                app.clock.advance(HOLD_FOR);
                let (status, took) = timed_me(who, app).await;
                if status != Ok(StatusCode::OK) {
                    last_refusal = Instant::now();
                }
                answers.push((i, status, took));
            }
        }
    }
    let back = last_refusal - since;
    for (i, status, took) in &answers {
        let status = status
            .as_ref()
            .unwrap_or_else(|e| panic!("instance {i}: no answer during the failover: {e}"));
        assert!(
            *status == StatusCode::OK || *status == StatusCode::SERVICE_UNAVAILABLE,
            "instance {i} answered {status} during the failover"
        );
        assert!(
            *took < Duration::from_secs(3),
            "instance {i} took {took:?} to answer during the failover"
        );
    }
    assert!(
        answers
            .iter()
            .any(|(_, s, _)| *s == Ok(StatusCode::SERVICE_UNAVAILABLE)),
        "no 503 while the master was stopped: {answers:?}"
    );
    let new_master = sentinel.master();
    assert_ne!(
        new_master, frozen.master,
        "the sentinel promoted the replica"
    );

    // The sessions written before the failover, on every instance.
    for app in &apps {
        app.clock.advance(HOLD_FOR);
        let (status, body) = me(&ada, app).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["login"], "ada");
        let (status, body) = me(&bo, app).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["login"], "bo");
    }
    // Pub/sub followed the master.
    heard(&publisher, &mut hearing, "after", Duration::from_secs(10)).await;
    eprintln!(
        "fleet_ha: master stopped; {} answers meanwhile (all 200 or 503 within 3 s, slowest {:?}); the last 503 {back:?} after the stop",
        answers.len(),
        answers.iter().map(|(_, _, t)| *t).max().unwrap()
    );

    // The old master runs again, as the new master's replica: the
    // topology is as the test found it, roles swapped.
    drop(frozen);
    sentinel.settled();

    // A planned failover (`SENTINEL FAILOVER`: the master is demoted, its
    // clients disconnected) is followed the same way.
    let before = sentinel.master();
    sentinel.replicated();
    let service = sentinel.nodes.service.clone().unwrap();
    sentinel.sentinel(&["SENTINEL", "FAILOVER", &service]);
    let since = Instant::now();
    let mut settled = false;
    while !settled {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no planned failover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        settled = sentinel.master() != before;
        for app in &apps {
            // A write: a replica (the demoted master) refuses it.
            app.clock.advance(HOLD_FOR);
            let started = Instant::now();
            let (status, body) = ada.create_token(app, "probe").await;
            let took = started.elapsed();
            assert!(
                status == StatusCode::CREATED || status == StatusCode::SERVICE_UNAVAILABLE,
                "{status} during the planned failover: {body}"
            );
            assert!(
                took < Duration::from_secs(3),
                "{took:?} during the failover"
            );
            if status == StatusCode::CREATED {
                ada.revoke_token(app, body["id"].as_str().unwrap()).await;
            }
            settled &= status == StatusCode::CREATED;
        }
    }
    for app in &apps {
        app.clock.advance(HOLD_FOR);
        assert_eq!(me(&bo, app).await.1["login"], "bo");
    }
    heard(
        &publisher,
        &mut hearing,
        "after the planned one",
        Duration::from_secs(10),
    )
    .await;
    eprintln!(
        "fleet_ha: planned failover followed by all three instances {:?} after SENTINEL FAILOVER",
        since.elapsed()
    );
    sentinel.settled();
    for app in apps {
        app.gateway.shutdown().await.unwrap();
    }
}

/// The cluster's nodes the URL names, and its password.
fn cluster_nodes(url: &str) -> RedisNodes {
    RedisNodes::parse(url).expect("a redis-cluster:// URL")
}

/// A message published on any node of the cluster reaches a subscriber,
/// whichever node it is connected to (each of the three nodes publishes
/// once: at least two of them are not the subscriber's).
#[tokio::test]
#[ignore = "needs Redis Cluster (CHANNELGATE_TEST_CLUSTER, from .ci/redis-topologies); .ci/run runs it"]
async fn on_a_cluster_a_topic_reaches_every_instance_from_every_node() {
    let Some(url) = topology("CHANNELGATE_TEST_CLUSTER") else {
        return;
    };
    let (publisher, mut hearing) = topic_between(&url, "channelgate-test-cluster").await;
    heard(
        &publisher,
        &mut hearing,
        "from a room",
        Duration::from_secs(5),
    )
    .await;
    let nodes = cluster_nodes(&url);
    assert_eq!(nodes.hosts.len(), 3, "a three-master cluster");
    for (host, port) in &nodes.hosts {
        let text = format!("from {host}:{port}");
        cli(
            &nodes,
            (host, *port),
            &["PUBLISH", "channelgate-test-cluster", &text],
        );
        let heard_it = async {
            // Earlier messages (a republished one) may come first.
            while let Some(heard) = hearing.recv().await {
                if heard == Heard::Text(text.clone()) {
                    return;
                }
            }
            panic!("the listener stopped");
        };
        tokio::time::timeout(Duration::from_secs(5), heard_it)
            .await
            .unwrap_or_else(|_| panic!("nothing heard of {text}"));
    }
}

/// A login on one instance, and an app token made on one, work on the
/// others; the token's revocation on one holds on the others, and so does
/// a logout.
#[tokio::test]
#[ignore = "needs Redis Cluster (CHANNELGATE_TEST_CLUSTER, from .ci/redis-topologies); .ci/run runs it"]
async fn on_a_cluster_three_instances_share_logins_and_app_tokens() {
    let Some(url) = topology("CHANNELGATE_TEST_CLUSTER") else {
        return;
    };
    let apps = three_on(&url).await;
    let ada = Browser::logged_in_as(&apps[0], "ada").await;
    for app in &apps {
        let (status, body) = me(&ada, app).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["login"], "ada");
    }
    let (bot, id) = ada.bot(&apps[1], "deploy-bot").await;
    for app in &apps {
        assert_eq!(bot.auth(app, "private-ops").await.0, StatusCode::OK);
    }
    assert_eq!(
        ada.revoke_token(&apps[2], &id).await,
        StatusCode::NO_CONTENT
    );
    for app in &apps {
        // An instance may use what it decoded a moment ago, never longer.
        app.clock.advance(HOLD_FOR);
        assert_eq!(
            bot.auth(app, "private-ops").await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(me(&ada, app).await.0, StatusCode::OK, "the login stays");
    }
    // Logging out on one ends the login on all: the old cookie, sent by
    // hand (the browser itself forgets it), finds nothing.
    let cookie = ada.session_cookie(&apps[0].url("/")).unwrap();
    ada.log_out(&apps[1]).await;
    for app in &apps {
        app.clock.advance(HOLD_FOR);
        let replay = reqwest::Client::new()
            .get(app.url("/auth/me"))
            .header("cookie", format!("channelgate={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    }
    for app in apps {
        app.gateway.shutdown().await.unwrap();
    }
}

/// People whose grants live on different masters (their keys hash to
/// slots of all three): a new instance takes back every one of them at
/// start, not only those of the node one SCAN would reach.
#[tokio::test]
#[ignore = "needs Redis Cluster (CHANNELGATE_TEST_CLUSTER, from .ci/redis-topologies); .ci/run runs it"]
async fn on_a_cluster_a_new_instance_takes_back_grants_from_every_node() {
    let Some(url) = topology("CHANNELGATE_TEST_CLUSTER") else {
        return;
    };
    let nodes = cluster_nodes(&url);
    let (host, port) = &nodes.hosts[0];
    // GitHub ids 1 (ada), 2 (bo) and 4 (Dee-Dash): their keys hash to
    // slots 12345, 90 and 8348, one on each master of a three-master cluster.
    let people = [
        (1, "ada", "private-ops"),
        (2, "bo", "private-lobby"),
        (4, "Dee-Dash", "private-user-Dee-Dash"),
    ];
    let key = |id: u64| format!("channelgate:grants:{id}");
    for (id, _, _) in people {
        // Nothing left from an earlier run: what is taken back is this run's.
        cli(&nodes, (host, *port), &["-c", "DEL", &key(id)]);
    }

    let apps = three_on(&url).await;
    for ((_, login, channel), app) in people.iter().zip(&apps) {
        let browser = Browser::logged_in_as(app, login).await;
        let (status, body) = browser.auth(app, channel).await;
        assert_eq!(status, StatusCode::OK, "{login} on {channel}: {body}");
    }
    // Each node holds one of them (SCAN on a node lists its own keys).
    for (host, port) in &nodes.hosts {
        let here = cli(
            &nodes,
            (host, *port),
            &["--scan", "--pattern", "channelgate:grants:*"],
        );
        let ours = people
            .iter()
            .filter(|(id, _, _)| here.lines().any(|k| k == key(*id)))
            .count();
        assert_eq!(ours, 1, "{host}:{port} holds one person's grants: {here}");
    }
    let github = apps[0].github.clone();
    for app in apps {
        app.gateway.shutdown().await.unwrap();
    }

    let fresh = TestApp::new()
        .with_github(github)
        .with_store(&url)
        .spawn()
        .await;
    for (id, login, _) in people {
        assert!(
            fresh.state().revocation.is_watched(id),
            "{login}'s grant was taken back at start"
        );
    }
    fresh.gateway.shutdown().await.unwrap();
}
