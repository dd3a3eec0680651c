//! Against software nobody here wrote: Pusher's official Node SDK as a
//! signature oracle, and pusher-js on sockudo (a Pusher-protocol server).
//! These tests need Node and `npm ci` in `interop/`; plain `cargo test`
//! reports them as ignored, `.ci/run` runs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use channelgate::demo;
use github_standin::{MembershipState, UserRecord, World};
use serde_json::{Value, json};

use crate::helpers::{
    Browser, MASTER_KEY_BASE64, PUSHER_KEY, PUSHER_SECRET, TestApp, stand_in_with,
};

pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Runs `node SCRIPT ARGS` in `interop/` with `env` on a blocking thread (so
/// the gateway, on this test's runtime, keeps serving); panics on failure.
pub async fn node_async(script: &'static str, args: Vec<String>, env: Vec<(&'static str, String)>) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        node(script, &args, &env)
    })
    .await
    .unwrap();
}

/// Runs `node SCRIPT ARGS` in `interop/` with `env`; panics on failure.
pub fn node(script: &str, args: &[&str], env: &[(&str, String)]) {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules").exists(),
        "interop/node_modules is missing: run `npm ci` in interop/ (.ci/run does)"
    );
    let status = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .expect("node runs");
    assert!(status.success(), "node {script} failed: {status}");
}

/// A small deterministic generator, so a failing case can be reproduced.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

const NAMES: &[&str] = &[
    "Zoë Çelik",
    "北京 Wang",
    "Ærø Østergård",
    "José \"Pepe\" Núñez",
    "back\\slash",
    "</script><b>bold</b>",
    "Ünïcödé 🚀 rocket",
    "עברית",
    "Ελληνικά",
    "a/b & c",
    "tab\there",
    "Mr. Channels",
    "emoji 👩‍💻 ZWJ",
    "'single' quotes",
];

#[tokio::test]
#[ignore = "needs Node and interop/node_modules (npm ci in interop/); .ci/run runs it"]
async fn signatures_match_pushers_official_node_sdk() {
    let mut rng = Lcg(20261130);
    let mut world = World::new();
    let mut people = Vec::new();
    for i in 0..40u64 {
        let login = format!("person-{i}");
        let name = (i % 7 != 3).then(|| NAMES[(i as usize) % NAMES.len()]);
        world = world
            .with_user(UserRecord::new(5000 + i, &login, name))
            .org(&login, "initech", MembershipState::Active);
        people.push((5000 + i, login, name));
    }
    let github = stand_in_with(world).await;
    let app = TestApp::new().with_github(github.clone()).spawn().await;

    let mut cases = Vec::new();
    for (id, login, name) in &people {
        let browser = Browser::logged_in_as(&app, login).await;
        let user_info = json!({
            "login": login,
            "name": name,
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        });
        for _ in 0..7 {
            let socket = format!(
                "{}.{}",
                rng.next() % 1_000_000_000,
                rng.next() % 1_000_000_000
            );
            let suffix = format!(
                "{}{}",
                rng.pick(&["a", "B", "_", "-", "=", "@", ",", ".", ";"]),
                rng.next() % 10_000
            );
            let channel = match rng.next() % 4 {
                0 => format!("private-user-{login}"),
                1 => "presence-org-initech".to_owned(),
                2 => format!("private-initech-{suffix}"),
                _ => format!("private-encrypted-initech-{suffix}"),
            };
            let response = browser
                .http
                .post(app.url("/pusher/auth"))
                .form(&[
                    ("socket_id", socket.as_str()),
                    ("channel_name", channel.as_str()),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{login} {channel}");
            cases.push(json!({
                "kind": "channel", "socket_id": socket, "channel": channel,
                "user_id": id.to_string(), "user_info": user_info,
                "body": response.text().await.unwrap(),
            }));
        }
        let socket = format!("{}.{}", rng.next() % 1_000_000, rng.next() % 1_000_000);
        let response = browser
            .http
            .post(app.url("/pusher/user-auth"))
            .form(&[("socket_id", socket.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        cases.push(json!({
            "kind": "user", "socket_id": socket, "user_id": id.to_string(),
            "user_info": user_info, "body": response.text().await.unwrap(),
        }));
    }
    assert!(cases.len() >= 300);
    let file = std::env::temp_dir().join(format!("channelgate-oracle-{}.json", std::process::id()));
    std::fs::write(&file, Value::Array(cases).to_string()).unwrap();
    node(
        "oracle.mjs",
        &[file.to_str().unwrap()],
        &[
            ("PUSHER_APP_ID", "1234".into()),
            ("PUSHER_KEY", PUSHER_KEY.into()),
            ("PUSHER_SECRET", PUSHER_SECRET.into()),
            ("PUSHER_MASTER_KEY_BASE64", MASTER_KEY_BASE64.into()),
        ],
    );
    std::fs::remove_file(&file).unwrap();
}

/// Where `.ci/run` started sockudo, with the demo app's credentials.
fn sockudo_host() -> String {
    std::env::var("CHANNELGATE_TEST_SOCKUDO").unwrap_or_else(|_| demo::DEFAULT_PUSHER_HOST.into())
}

fn demo_pusher_env(sockudo: &str) -> Vec<(&'static str, String)> {
    let (host, port) = sockudo.rsplit_once(':').expect("HOST:PORT");
    vec![
        ("PUSHER_HOST", host.into()),
        ("PUSHER_PORT", port.into()),
        ("PUSHER_APP_ID", demo::PUSHER_APP_ID.into()),
        ("PUSHER_KEY", demo::PUSHER_KEY.into()),
        ("PUSHER_SECRET", demo::PUSHER_SECRET.into()),
        ("PUSHER_MASTER_KEY_BASE64", demo::MASTER_KEY_BASE64.into()),
    ]
}

#[tokio::test]
#[ignore = "needs sockudo with the demo app (CHANNELGATE_TEST_SOCKUDO) and interop/node_modules; .ci/run runs it"]
async fn pusher_js_subscribes_through_sockudo_with_the_gateways_signatures() {
    let sockudo = sockudo_host();
    let demo = demo::start("127.0.0.1:0".parse().unwrap(), &sockudo.parse().unwrap())
        .await
        .unwrap();
    // ada: team acme/secret-agents; grace: org acme only.
    let ada = Browser::new()
        .login_at(&demo.url, &demo.github, "ada")
        .await;
    let grace = Browser::new()
        .login_at(&demo.url, &demo.github, "grace")
        .await;
    let mut env = demo_pusher_env(&sockudo);
    env.extend([
        ("GATEWAY_URL", demo.url.clone()),
        ("COOKIE_AUTHORIZED", format!("channelgate={ada}")),
        ("LOGIN_AUTHORIZED", "ada".into()),
        ("COOKIE_OTHER", format!("channelgate={grace}")),
        ("LOGIN_OTHER", "grace".into()),
        ("CHANNEL_PRIVATE", "private-supersecretchat".into()),
        ("CHANNEL_PRESENCE", "presence-org-acme".into()),
        ("CHANNEL_ENCRYPTED", "private-encrypted-inbox-1001".into()),
        ("CHANNEL_DENIED", "private-user-grace".into()),
    ]);
    node_async("realtime.mjs", vec![], env).await;
}

#[tokio::test]
#[ignore = "needs sockudo with the demo app (CHANNELGATE_TEST_SOCKUDO), interop/node_modules and examples/device-login/node_modules; .ci/run runs it"]
async fn the_device_login_example_subscribes_with_a_bearer_token_and_no_cookie() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/device-login");
    assert!(
        example.join("node_modules").exists(),
        "examples/device-login/node_modules is missing: run `npm ci` there (.ci/run does)"
    );
    let sockudo = sockudo_host();
    // The example signs in before it subscribes, so it works where the
    // gateway signs channels only for connections that did.
    let demo = demo::start_with(
        "127.0.0.1:0".parse().unwrap(),
        &sockudo.parse().unwrap(),
        |c| c.revocation.require_signin = true,
    )
    .await
    .unwrap();
    // The person approves on GitHub at once; the example may poll at once.
    demo.github.set_auto_consent(Some("ada"));
    demo.github.set_device_timing(Duration::from_secs(900), 0);
    let mut env = demo_pusher_env(&sockudo);
    env.extend([
        ("GATEWAY_URL", demo.url.clone()),
        ("LOGIN", "ada".into()),
        ("CHANNEL_ALLOWED", "private-supersecretchat".into()),
        ("CHANNEL_DENIED", "private-user-grace".into()),
    ]);
    node_async("example.mjs", vec![], env).await;
}

#[tokio::test]
#[ignore = "needs sockudo with the demo app (CHANNELGATE_TEST_SOCKUDO), Chromium and interop/node_modules; .ci/run runs it"]
async fn a_real_browser_logs_in_and_its_page_subscribes() {
    let sockudo = sockudo_host();
    // The page signs in before it subscribes, so it works where the gateway
    // signs channels only for connections that did.
    let demo = demo::start_with(
        "127.0.0.1:0".parse().unwrap(),
        &sockudo.parse().unwrap(),
        |c| c.revocation.require_signin = true,
    )
    .await
    .unwrap();
    let mut args = Vec::new();
    if let Ok(path) = std::env::var("CHANNELGATE_SCREENSHOT") {
        args = vec!["--screenshot".to_owned(), path];
    }
    node_async("browser.mjs", args, vec![("DEMO_URL", demo.url.clone())]).await;
}

/// How the removal in [`revocation_through_sockudo`] can be confirmed.
#[derive(PartialEq)]
enum Confirm {
    /// GitHub answers the re-read.
    Answered,
    /// ada has spent her own rate limit: no read of hers succeeds.
    SpentByThePerson,
}

/// Runs `revocation.mjs` against `demo`: ada (in acme/secret-agents) and
/// grace subscribe; ada is taken out of the team on the stand-in's admin
/// page; her connection must end within `deadline`, grace's must stay.
async fn revocation_through_sockudo(
    demo: &demo::Demo,
    sockudo: &str,
    deadline: Duration,
    confirm: Confirm,
) {
    let ada = Browser::new()
        .login_at(&demo.url, &demo.github, "ada")
        .await;
    let grace = Browser::new()
        .login_at(&demo.url, &demo.github, "grace")
        .await;
    let mut env = demo_pusher_env(sockudo);
    if confirm == Confirm::SpentByThePerson {
        // Her memberships were read at login; every read from now fails.
        demo.github.spend_rate_limit("ada");
        env.push(("AFTER", "unknown".into()));
    }
    env.extend([
        ("GATEWAY_URL", demo.url.clone()),
        (
            "ADMIN_URL",
            format!("{}{}/admin", demo.url, demo::GITHUB_PATH),
        ),
        (
            "CHANGE",
            "action=remove-team&login=ada&org=acme&slug=secret-agents".into(),
        ),
        ("COOKIE_LOSER", format!("channelgate={ada}")),
        ("LOGIN_LOSER", "ada".into()),
        ("COOKIE_KEEPER", format!("channelgate={grace}")),
        ("LOGIN_KEEPER", "grace".into()),
        ("LOST", "private-supersecretchat".into()),
        ("KEPT", "presence-org-acme".into()),
        ("DEADLINE_MS", deadline.as_millis().to_string()),
    ]);
    node_async("revocation.mjs", vec![], env).await;
}

#[tokio::test]
#[ignore = "needs sockudo with the demo app (CHANNELGATE_TEST_SOCKUDO) and interop/node_modules; .ci/run runs it"]
async fn a_webhook_disconnects_pusher_js_within_a_second() {
    let sockudo = sockudo_host();
    let demo = demo::start("127.0.0.1:0".parse().unwrap(), &sockudo.parse().unwrap())
        .await
        .unwrap();
    revocation_through_sockudo(&demo, &sockudo, Duration::from_secs(1), Confirm::Answered).await;
}

#[tokio::test]
#[ignore = "needs sockudo with the demo app (CHANNELGATE_TEST_SOCKUDO) and interop/node_modules; .ci/run runs it"]
async fn a_removal_the_person_keeps_github_from_confirming_still_disconnects_pusher_js() {
    // A long grace serves outages; it must not serve the person who burnt
    // their own rate limit to keep a channel they were removed from.
    let sockudo = sockudo_host();
    let demo = demo::start_with(
        "127.0.0.1:0".parse().unwrap(),
        &sockudo.parse().unwrap(),
        |c| c.cache.stale_grace = Duration::from_secs(3600),
    )
    .await
    .unwrap();
    revocation_through_sockudo(
        &demo,
        &sockudo,
        Duration::from_secs(1),
        Confirm::SpentByThePerson,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs sockudo with the demo app (CHANNELGATE_TEST_SOCKUDO) and interop/node_modules; .ci/run runs it"]
async fn without_webhooks_the_sweep_disconnects_pusher_js_within_the_ttl() {
    const TTL: Duration = Duration::from_secs(3);
    let sockudo = sockudo_host();
    let demo = demo::start_with(
        "127.0.0.1:0".parse().unwrap(),
        &sockudo.parse().unwrap(),
        |c| {
            c.webhooks = None;
            c.cache.membership_ttl = TTL;
        },
    )
    .await
    .unwrap();
    // GitHub tells nobody: the admin page's change is silent.
    demo.github.set_webhook(None);
    revocation_through_sockudo(
        &demo,
        &sockudo,
        TTL + Duration::from_secs(3),
        Confirm::Answered,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs sockudo with the demo app (CHANNELGATE_TEST_SOCKUDO) and interop/node_modules; .ci/run runs it"]
async fn pusher_js_stays_connected_across_a_github_token_expiry() {
    // GitHub's (the stand-in's) tokens live 3 s; the sweep re-reads every 2 s.
    const LIFETIME: Duration = Duration::from_secs(3);
    const TTL: Duration = Duration::from_secs(2);
    let sockudo = sockudo_host();
    let demo = demo::start_with(
        "127.0.0.1:0".parse().unwrap(),
        &sockudo.parse().unwrap(),
        |c| c.cache.membership_ttl = TTL,
    )
    .await
    .unwrap();
    demo.github.set_token_lifetime(Some(LIFETIME));
    let ada = Browser::new()
        .login_at(&demo.url, &demo.github, "ada")
        .await;
    let mut env = demo_pusher_env(&sockudo);
    env.extend([
        ("GATEWAY_URL", demo.url.clone()),
        ("COOKIE", format!("channelgate={ada}")),
        ("LOGIN", "ada".into()),
        ("CHANNEL", "private-supersecretchat".into()),
        ("CHANNEL_AFTER", "presence-org-acme".into()),
        (
            "WAIT_MS",
            (LIFETIME + 2 * TTL + Duration::from_secs(2))
                .as_millis()
                .to_string(),
        ),
    ]);
    node_async("expiry.mjs", vec![], env).await;
    assert!(
        demo.github.refreshes() >= 1,
        "the gateway refreshed the token"
    );
}

#[tokio::test]
#[ignore = "needs sockudo with the demo app (CHANNELGATE_TEST_SOCKUDO) and interop/node_modules; .ci/run runs it"]
async fn under_require_signin_pusher_js_subscribes_only_after_signing_in() {
    const WAIT: Duration = Duration::from_secs(1);
    let sockudo = sockudo_host();
    let demo = demo::start_with(
        "127.0.0.1:0".parse().unwrap(),
        &sockudo.parse().unwrap(),
        |c| {
            c.revocation.require_signin = true;
            c.revocation.signin_wait = WAIT;
        },
    )
    .await
    .unwrap();
    // ada: in acme, whom the demo's [signin] admits; team acme/secret-agents.
    let ada = Browser::new()
        .login_at(&demo.url, &demo.github, "ada")
        .await;
    let mut env = demo_pusher_env(&sockudo);
    env.extend([
        ("GATEWAY_URL", demo.url.clone()),
        ("COOKIE", format!("channelgate={ada}")),
        ("LOGIN", "ada".into()),
        ("CHANNEL", "private-supersecretchat".into()),
        ("SIGNIN_WAIT_MS", WAIT.as_millis().to_string()),
    ]);
    node_async("signin.mjs", vec![], env).await;
}
