//! The `channelgate` binary as an admin uses it: check-config and explain.

use std::process::{Command, Output};

fn channelgate(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_channelgate"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for var in [
        "CHANNELGATE_CONFIG",
        "CHANNELGATE_PUSHER_SECRET",
        "CHANNELGATE_PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
        "CHANNELGATE_GITHUB_CLIENT_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_config_accepts_the_example_and_prints_its_rules() {
    let out = channelgate(&["check-config", "--config", "config.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("config.toml: valid\n"), "{text}");
    assert!(text.contains("rules[0] private-supersecretchat"), "{text}");
    assert!(
        text.contains("rules[4] private-team-{org}.{team}"),
        "{text}"
    );
    // The secret is present in the file but never printed.
    assert!(!text.contains("7ad3773142a6692b25b8"), "{text}");
}

#[test]
fn check_config_defaults_to_config_toml_in_the_working_directory() {
    let out = channelgate(&["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn check_config_lists_every_problem_of_a_broken_file() {
    let dir = std::env::temp_dir().join(format!("channelgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken.toml");
    std::fs::write(
        &path,
        r#"[pusher]
app_id = "1"
key = "k"
secret = "s"
encryption_master_key_base64 = "dG9vIHNob3J0"
[github]
client_id = "c"
client_secret = "s"
[cache]
membership_ttl = "forever"
[[rules]]
channel = "private-team-{org}-{team}"
[[rules]]
channel = "private-{nope}"
"#,
    )
    .unwrap();
    let out = channelgate(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("4 problems"), "{err}");
    assert!(
        err.contains("broken.toml:5: pusher.encryption_master_key_base64: decodes to 9 bytes"),
        "{err}"
    );
    assert!(
        err.contains("broken.toml:10: cache.membership_ttl:"),
        "{err}"
    );
    assert!(
        err.contains("broken.toml:12: rules[0].channel:")
            && err.contains("private-team-{org}.{team}"),
        "{err}"
    );
    assert!(
        err.contains("broken.toml:14: rules[1].channel: {nope} is not a placeholder"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_names_a_missing_file() {
    let out = channelgate(&["check-config", "--config", "/nonexistent/channelgate.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/channelgate.toml"));
}

#[test]
fn explain_prints_a_decision_per_channel_and_exits_1_on_any_deny() {
    let out = channelgate(&[
        "explain",
        "--config",
        "config.toml",
        "--login",
        "jbloggs",
        "--team",
        "acme/secret-agents",
        "private-supersecretchat",
        "private-user-jbloggs",
        "private-user-other",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("allow private-supersecretchat"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("rules[0]"), "{}", lines[0]);
    assert!(
        lines[1].starts_with("allow private-user-jbloggs"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("{login} = jbloggs"), "{}", lines[1]);
    assert!(
        lines[2].starts_with("deny  private-user-other"),
        "{}",
        lines[2]
    );
}

#[test]
fn explain_exits_0_when_everything_is_allowed() {
    let out = channelgate(&[
        "explain",
        "--config",
        "config.toml",
        "--login",
        "ada",
        "--id",
        "42",
        "--org",
        "acme",
        "private-acme-roadmap",
        "presence-org-ACME",
        "private-encrypted-inbox-42",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("active member of org acme"));
}

#[test]
fn explain_refuses_bad_input_with_status_2() {
    for args in [
        &[
            "explain",
            "--config",
            "config.toml",
            "--login",
            "a b",
            "private-x",
        ][..],
        &[
            "explain",
            "--config",
            "config.toml",
            "--login",
            "a",
            "--team",
            "acme",
            "private-x",
        ],
        &["explain", "--config", "config.toml", "--login", "a"],
        &[
            "explain",
            "--config",
            "/nonexistent.toml",
            "--login",
            "a",
            "private-x",
        ],
        &[
            "explain",
            "--config",
            "config.toml",
            "--login",
            "a",
            "--id",
            "x",
            "private-x",
        ],
    ] {
        let out = channelgate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn explain_escapes_hostile_channel_names() {
    let out = channelgate(&[
        "explain",
        "--config",
        "config.toml",
        "--login",
        "a",
        "private-x\nallow forged",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("deny  private-x\\nallow forged"), "{text}");
}
