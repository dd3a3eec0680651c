//! Against software nobody here wrote: Pusher's official Node SDK as a
//! signature oracle. These tests need Node and `npm ci` in `interop/`; plain
//! `cargo test` reports them as ignored, `.ci/run` runs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use channelgate::standin::{GithubStandIn, MembershipState, UserRecord, World};
use serde_json::{Value, json};

use crate::helpers::{
    Browser, CLIENT_ID, CLIENT_SECRET, MASTER_KEY_BASE64, PUSHER_KEY, PUSHER_SECRET, TestApp,
};

pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Runs `node SCRIPT ARGS` in `interop/` with `env`; panics with its output on failure.
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
    let github = GithubStandIn::spawn(world, CLIENT_ID, CLIENT_SECRET)
        .await
        .unwrap();
    let app = TestApp::spawn_with(github.clone(), "").await;

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
