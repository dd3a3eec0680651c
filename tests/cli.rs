//! The `channelgate` binary as an admin uses it: check-config, explain,
//! serve and demo, their help, their errors, and their output piped.

use std::process::{Command, Output};

fn channelgate(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_channelgate"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for var in [
        "CHANNELGATE_CONFIG",
        "CHANNELGATE_PUSHER_SECRET",
        "CHANNELGATE_PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
        "CHANNELGATE_GITHUB_CLIENT_SECRET",
        "CHANNELGATE_SESSION_ENCRYPTION_KEY_BASE64",
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
        "--id",
        "7",
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
            "--id",
            "1",
            "private-x",
        ][..],
        &[
            "explain",
            "--config",
            "config.toml",
            "--login",
            "a",
            "--id",
            "1",
            "--team",
            "acme",
            "private-x",
        ],
        &[
            "explain",
            "--config",
            "config.toml",
            "--login",
            "a",
            "--id",
            "1",
        ],
        &[
            "explain",
            "--config",
            "/nonexistent.toml",
            "--login",
            "a",
            "--id",
            "1",
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
fn explain_calls_a_name_outside_the_grammar_bad_input() {
    let out = channelgate(&[
        "explain",
        "--config",
        "config.toml",
        "--login",
        "a",
        "--id",
        "1",
        "private-ok",
        "private-x\nallow forged",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "nothing is evaluated");
    let text = stderr(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    // Escaped, so a name cannot forge a line of output.
    assert!(text.contains("private-x\\nallow forged"), "{text}");
}

#[test]
fn check_config_refuses_rules_a_registered_name_could_bridge() {
    let dir = std::env::temp_dir().join(format!("channelgate-cli-bridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bridge.toml");
    let base = std::fs::read_to_string("config.toml").unwrap();
    std::fs::write(
        &path,
        format!(
            "{base}\n[[rules]]\nchannel = \"private-user-admins\"\nteams = [\"acme/admins\"]\n"
        ),
    )
    .unwrap();
    let out = channelgate(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stderr(&out);
    assert!(
        text.contains("rules[1].channel: \"private-user-{login}\" collides with rules[7] \"private-user-admins\""),
        "{text}"
    );
    assert!(text.contains("registers the login \"admins\""), "{text}");
    assert!(text.contains("\"private-user.{login}\""), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_redis_password_is_never_printed() {
    let dir = std::env::temp_dir().join(format!("channelgate-cli-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("redis.toml");
    let base = std::fs::read_to_string("config.toml").unwrap();
    // Nothing listens on port 1: the store cannot be reached.
    let text = base.replace(
        "store = \"memory\"",
        "store = \"redis://:hunter2@127.0.0.1:1\"\nencryption_key_base64 = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"",
    );
    assert_ne!(text, base);
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap();
    let checked = channelgate(&["check-config", "--config", path]);
    assert_eq!(checked.status.code(), Some(0), "{}", stderr(&checked));
    let shown = stdout(&checked);
    assert!(
        shown.contains("redis://") && shown.contains("127.0.0.1:1"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    let served = channelgate(&["serve", "--config", path]);
    assert_ne!(served.status.code(), Some(0));
    let err = stderr(&served);
    assert!(err.contains("Redis session store"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // What, where and how to fix it, in words.
    assert!(
        err.contains(&format!("(session.store in {path}): connection refused")),
        "{err}"
    );
    assert!(err.contains("Start Redis there"), "{err}");
    assert!(!err.contains("Os {") && !err.contains("code:"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_shows_the_wave_two_settings() {
    let out = channelgate(&["check-config", "--config", "config.toml"]);
    let text = stdout(&out);
    for shown in [
        "headers within 10s, requests within 30s, at most 10000 connections",
        "X-Forwarded-For is ignored",
        "logins 30 a minute per client address; Pusher auth 600 a minute per person",
        "signin:  active members of acme",
        "tokens encrypted with a random key of this process",
    ] {
        assert!(text.contains(shown), "{shown:?} in {text}");
    }
}

#[test]
fn bad_command_line_values_exit_2_with_a_message_never_a_panic() {
    for args in [
        &["demo", "--pusher-host", "a b"][..],
        &["demo", "--pusher-host", "host:99999"],
        &["demo", "--listen", "nowhere"],
        &["explain", "--login", "a", "--id", "-1", "private-x"],
        &["serve", "--no-such-flag"],
    ] {
        let out = channelgate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("error"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `channelgate serve` on the repository's `config.toml`, moved to a free
/// port and edited by `edit`, written to a file of its own in `dir`; stderr
/// piped. Returns the child, its port, and the config file.
#[cfg(unix)]
fn serve_repo_config(
    name: &str,
    edit: impl Fn(String) -> String,
) -> (
    std::process::Child,
    u16,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let dir = std::env::temp_dir().join(format!("channelgate-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string("config.toml")
        .unwrap()
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            "public_url = \"http://localhost:8080\"",
            &format!("public_url = \"http://127.0.0.1:{port}\""),
        );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, edit(text)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_channelgate"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (child, port, path, dir)
}

#[cfg(unix)]
#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_cleanly() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let (mut child, port, _, dir) = serve_repo_config("term", |text| text);
    let started = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("the gateway did not start: {e}"),
        }
    };
    let body = "socket_id=1.2&channel_name=private-x";
    write!(
        stream,
        "POST /pusher/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..5]
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(200));
    // The request was in flight when SIGTERM came: it is still answered.
    stream.write_all(&body.as_bytes()[5..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("finishing in-flight requests"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `channelgate serve` with `[log] format = "json"`: a SIGHUP with a good
/// file reloads it and names a key that needs a restart; with a broken file
/// it changes nothing and logs each problem with its key and line; every
/// line of stderr is JSON, and a request's id is echoed.
#[test]
fn sighup_reloads_the_file_and_a_broken_one_changes_nothing() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let (mut child, port, path, dir) = serve_repo_config("hup", |text| {
        let json = text.replace("format = \"text\"", "format = \"json\"");
        assert_ne!(json, text, "config.toml has a [log] format to change");
        json
    });
    let base = std::fs::read_to_string(&path).unwrap();
    let (lines, log) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let line = log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no line with {what:?} in:\n{}", seen.join("\n")));
            let json: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
            seen.push(line.clone());
            if line.contains(what) {
                return json;
            }
        }
    };
    wait_for("channelgate listening");
    let hup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    };

    // A good file, with one rule fewer and a new port (restart needed).
    let fewer = base
        .replace(
            "[[rules]]\nchannel = \"presence-lobby\"\neveryone = true\n",
            "",
        )
        .replace(
            &format!("listen = \"127.0.0.1:{port}\""),
            "listen = \"127.0.0.1:1\"",
        );
    assert_ne!(fewer, base);
    std::fs::write(&path, &fewer).unwrap();
    hup(child.id());
    let restart = wait_for("takes effect only after a restart");
    assert_eq!(restart["fields"]["key"], "server.listen", "{restart}");
    wait_for("configuration reloaded");

    // A broken file: each problem with its key and line; nothing changes.
    std::fs::write(
        &path,
        fewer.replace(
            "channel = \"private-user-{login}\"",
            "channel = \"private-user-{nope}\"",
        ),
    )
    .unwrap();
    hup(child.id());
    let refused = wait_for("reload refused");
    let problem = refused["fields"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("rules[1].channel") && problem.contains(".toml:"),
        "{problem}"
    );

    // Still serving on the old port, with request ids echoed.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nx-request-id: hup-1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-request-id: hup-1"),
        "{answer}"
    );

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `channelgate args` with its stdout a pipe whose reader has gone
/// away, as `channelgate … | head -0` leaves it; returns its stderr and
/// exit status.
fn with_stdout_closed(args: &[&str]) -> (String, Option<i32>) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_channelgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CHANNELGATE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the command has loaded its configuration, let alone
    // printed: every write to stdout then fails with a broken pipe.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (err, child.wait().unwrap().code())
}

#[test]
fn a_command_whose_reader_goes_away_ends_quietly() {
    for (args, status) in [
        (&["check-config", "--config", "config.toml"][..], 0),
        (
            &[
                "explain",
                "--config",
                "config.toml",
                "--login",
                "ada",
                "--id",
                "1",
                "private-user-ada",
                "private-user-bo",
            ],
            1,
        ),
        (&["--help"], 0),
        (&["serve", "--help"], 0),
    ] {
        let (err, code) = with_stdout_closed(args);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(code, Some(status), "{args:?}: {err}");
    }
}

/// A free port of 127.0.0.1 (free when this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` at 127.0.0.1:`port`, as a browser at that origin asks; the
/// whole answer.
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[cfg(unix)]
#[test]
fn the_demo_keeps_serving_after_its_reader_goes_away() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::Duration;

    let port = free_port();
    // `localhost:PORT` is accepted for --listen and means 127.0.0.1:PORT.
    let listen = format!("localhost:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_channelgate"))
        .args(["demo", "--listen", &listen])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let (lines, log) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    // The banner went nowhere; the line logged after it says the demo
    // lived through that.
    let mut seen = Vec::new();
    loop {
        match log.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains("channelgate demo ready") => break,
            Ok(line) => seen.push(line),
            Err(_) => panic!("the demo did not start:\n{}", seen.join("\n")),
        }
    }
    let health = http_get(port, "/healthz").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
    reader.join().unwrap();
    let rest: Vec<String> = log.try_iter().collect();
    let all = [seen, rest].concat().join("\n");
    assert!(!all.contains("panicked"), "{all}");
}

#[test]
fn a_port_in_use_names_the_flag_or_the_key_and_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let next = port.wrapping_add(1).max(1024);

    let demo = channelgate(&["demo", "--listen", &format!("127.0.0.1:{port}")]);
    assert_eq!(demo.status.code(), Some(1), "{}", stderr(&demo));
    let err = stderr(&demo);
    assert!(
        err.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (--listen): the address is already in use"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Stop that process, or choose another port, such as --listen 127.0.0.1:{next}"
        )),
        "{err}"
    );

    let dir = std::env::temp_dir().join(format!("channelgate-cli-inuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("inuse.toml");
    let text = std::fs::read_to_string("config.toml").unwrap().replace(
        "listen = \"127.0.0.1:8080\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&path, text).unwrap();
    let served = channelgate(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(served.status.code(), Some(1), "{}", stderr(&served));
    let err = stderr(&served);
    assert!(
        err.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (server.listen in {}): the address is already in use",
            path.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "set server.listen to another address, such as \"127.0.0.1:{next}\""
        )),
        "{err}"
    );
    assert!(!err.contains("os error"), "no Rust error text: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
    drop(taken);
}

#[test]
fn demo_listen_shows_the_expected_form_of_an_address() {
    let out = channelgate(&["demo", "--listen", "nowhere:8081"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--listen"), "{err}");
    assert!(err.contains("such as --listen 127.0.0.1:8081"), "{err}");
    assert!(!err.contains("invalid socket address syntax"), "{err}");
}

#[test]
fn explain_asks_for_the_id_instead_of_assuming_one() {
    let out = channelgate(&[
        "explain",
        "--config",
        "config.toml",
        "--login",
        "ada",
        "private-encrypted-inbox-1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert_eq!(stdout(&out), "", "nothing is evaluated");
    assert!(stderr(&out).contains("--id <N>"), "{}", stderr(&out));
}

#[test]
fn every_help_says_the_exit_codes_and_serve_help_its_signals_and_environment() {
    for command in [
        &[][..],
        &["serve"],
        &["check-config"],
        &["demo"],
        &["explain"],
    ] {
        let args = [command, &["--help"]].concat();
        let out = channelgate(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = stdout(&out);
        for shown in ["Exit status:", "  0  ", "  1  ", "  2  bad input"] {
            assert!(text.contains(shown), "{args:?}: {shown:?} in {text}");
        }
    }
    let serve = stdout(&channelgate(&["serve", "--help"]));
    for shown in [
        "SIGTERM",
        "SIGINT",
        "SIGHUP",
        "RUST_LOG",
        "CHANNELGATE_CONFIG",
        "CHANNELGATE_PUSHER_SECRET",
        "CHANNELGATE_PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
        "CHANNELGATE_GITHUB_CLIENT_SECRET",
        "CHANNELGATE_GITHUB_WEBHOOK_SECRET",
        "CHANNELGATE_SESSION_ENCRYPTION_KEY_BASE64",
        "default 127.0.0.1:8080",
        "./config.toml",
    ] {
        assert!(serve.contains(shown), "{shown:?} in {serve}");
    }
}

/// The repository's config.toml with `edit` applied, in a file of its own.
fn edited_repo_config(name: &str, edit: impl Fn(&str) -> String) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("channelgate-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    let base = std::fs::read_to_string("config.toml").unwrap();
    let text = edit(&base);
    assert_ne!(text, base, "the edit changed nothing");
    std::fs::write(&path, text).unwrap();
    let shown = path.to_str().unwrap().to_owned();
    (dir, shown)
}

#[test]
fn check_config_and_serve_refuse_require_signin_without_a_signin_section() {
    let (dir, path) = edited_repo_config("signin-missing", |base| {
        base.replace("require_signin = false", "require_signin = true")
            .replace("[signin]\norgs = [\"acme\"]\n", "")
    });
    let out = channelgate(&["check-config", "--config", &path]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("revocation.require_signin: is true but there is no [signin] section"),
        "{err}"
    );
    // A file check-config refuses never runs.
    let served = channelgate(&["serve", "--config", &path]);
    assert_eq!(served.status.code(), Some(1));
    assert!(
        stderr(&served).contains("revocation.require_signin"),
        "{}",
        stderr(&served)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_warns_naming_each_rule_that_admits_people_signin_does_not() {
    let (dir, path) = edited_repo_config("signin-narrow", |base| {
        base.replace("require_signin = false", "require_signin = true")
    });
    let out = channelgate(&["check-config", "--config", &path]);
    // A warning, not a refusal.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("channels signed only for connections signed in as the same person"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    // [signin] admits members of acme: rules[0] also admits jbloggs by
    // name (its team acme/secret-agents is within acme), rules[1] to
    // rules[4] anyone their placeholders fit, rules[6] everyone; rules[5]
    // (orgs = ["acme"]) is within [signin].
    for (rule, who) in [
        (
            "rules[0]: \"private-supersecretchat\"",
            "admits users jbloggs,",
        ),
        (
            "rules[1]: \"private-user-{login}\"",
            "admits anyone its placeholders fit",
        ),
        (
            "rules[6]: \"presence-lobby\"",
            "admits every logged-in person",
        ),
    ] {
        assert!(
            err.contains(&format!("warning: {rule} {who}")),
            "{rule} in {err}"
        );
    }
    assert!(!err.contains("rules[5]"), "{err}");
    let rules = err.lines().filter(|l| l.starts_with("warning: rules["));
    assert_eq!(rules.count(), 6, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn serve_logs_each_signin_warning_as_it_starts() {
    use std::io::{BufRead, BufReader};

    let (mut child, _, _, dir) = serve_repo_config("signin-warn", |text| {
        text.replace("require_signin = false", "require_signin = true")
    });
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let done = line.contains("listening");
        seen.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = seen.join("\n");
    assert!(
        seen.iter().any(|l| l.contains("WARN")
            && l.contains("rules[1]")
            && l.contains("\"private-user-{login}\" admits anyone its placeholders fit")),
        "{log}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn check_config_warns_about_a_file_holding_secrets_that_others_may_read() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = edited_repo_config("readable-secrets", |base| format!("{base}\n# a copy\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = channelgate(&["check-config", "--config", &path]);
    assert_eq!(out.status.code(), Some(0), "a warning, not a refusal");
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("warning: (file): holds pusher.secret"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("mode 644") && line.contains("chmod 600"),
        "{line}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = channelgate(&["check-config", "--config", &path]);
    assert!(
        !stderr(&out).contains("warning: (file)"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
