//! The `channelgate` command line: parses the arguments and hands each
//! command to its own file. `main.rs` only calls [`run`].
//!
//! Exit status: 0 on success; 1 when a configuration is refused, the
//! gateway cannot start or (for `explain`) a channel is denied; 2 for bad
//! command-line input, which clap reports for every value that does not
//! parse. Nothing here may panic on input, nor when the reader of its
//! output goes away (`| head`): Rust ignores SIGPIPE, so a write to a closed
//! pipe fails with `BrokenPipe`, and [`print_out`] and [`print_err`] drop
//! what cannot be written instead of panicking as `println!` does.

use std::io::{ErrorKind, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ENV_CONFIG_PATH, LogFormat};

mod check_config;
#[cfg(feature = "demo")]
mod demo;
mod explain;
mod serve;

/// The end of the top-level `--help`.
const TOP_HELP: &str = "\
Start with `channelgate demo` (no GitHub app, no Pusher account), then
`channelgate serve --config config.toml`. Each command has its own --help.

Exit status:
  0  success
  1  a configuration refused, the gateway unable to start, or (explain) a channel denied
  2  bad input: an unknown flag or a value that does not parse";

/// An authorization gateway for Pusher Channels: GitHub login, rules in
/// config.toml, signatures only for what a rule allows.
#[derive(Debug, Parser)]
#[command(name = "channelgate", version, after_help = TOP_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: GitHub login, and Pusher signatures for what the rules allow.
    #[command(
        long_about = "Run the gateway: browsers log in with GitHub at /auth/login, and \
            POST /pusher/auth signs a Pusher channel only when a rule of the configuration \
            allows it to that person. Listens at server.listen (default 127.0.0.1:8080) \
            until stopped; logs to stderr as [log] says (default: text at info).",
        after_help = SERVE_HELP
    )]
    Serve {
        /// The configuration file [default: $CHANNELGATE_CONFIG, then ./config.toml]
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Load and validate the configuration, then print the rules as understood.
    #[command(
        long_about = "Load and validate the configuration, then print the rules and settings \
            as understood (secrets never shown). A refused file is reported with every \
            problem at once, each with its key and line.",
        after_help = CHECK_CONFIG_HELP
    )]
    CheckConfig {
        /// The configuration file [default: $CHANNELGATE_CONFIG, then ./config.toml]
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Run the whole gateway on this machine with a built-in GitHub stand-in
    /// and demo people: no GitHub app, no Pusher account, no secrets.
    #[cfg(feature = "demo")]
    #[command(after_help = DEMO_HELP)]
    Demo(demo::Args),
    /// Evaluate the rules offline for a described person, one line per channel.
    #[command(after_help = EXPLAIN_HELP)]
    Explain(explain::Args),
}

/// The end of `serve --help`: signals, environment, exit status.
const SERVE_HELP: &str = "\
Signals:
  SIGTERM, SIGINT  stop gracefully: stop accepting, let requests in flight finish, stop the
                   sweeps (a call ending someone's Pusher connections gets up to 5 s), exit 0
  SIGHUP           read the configuration file again; a broken file changes nothing

Environment:
  CHANNELGATE_CONFIG                                the configuration file when --config is not given
  CHANNELGATE_PUSHER_SECRET                         pusher.secret
  CHANNELGATE_PUSHER_ENCRYPTION_MASTER_KEY_BASE64   pusher.encryption_master_key_base64
  CHANNELGATE_GITHUB_CLIENT_SECRET                  github.client_secret
  CHANNELGATE_GITHUB_WEBHOOK_SECRET                 webhooks.secret
  CHANNELGATE_SESSION_ENCRYPTION_KEY_BASE64         session.encryption_key_base64
  RUST_LOG                                          log filter, overriding log.level (such as info,channelgate=debug)
  A secret set in the environment wins over the file, so the file need not hold it.

Exit status:
  0  stopped by a signal after finishing the requests in flight
  1  the configuration refused, or the gateway unable to start (a port in use, a store out of reach)
  2  bad input: an unknown flag or a value that does not parse";

/// The end of `check-config --help`.
const CHECK_CONFIG_HELP: &str = "\
Environment:
  CHANNELGATE_CONFIG and the secret variables listed in `channelgate serve --help` are read
  as serve reads them.

Exit status:
  0  the configuration is valid (warnings, if any, are printed to stderr)
  1  the configuration is refused (every problem is printed to stderr)
  2  bad input: an unknown flag or a value that does not parse";

/// The end of `demo --help`.
#[cfg(feature = "demo")]
const DEMO_HELP: &str = "\
Open the printed URL (http://127.0.0.1:8080/ by default; http://localhost:8080/ is sent there)
and log in as one of the demo people. Ctrl-C (SIGINT) or SIGTERM stops the demo.
RUST_LOG overrides the demo's log filter (info,channelgate::web::pusher=debug).

Exit status:
  0  stopped by a signal
  1  the demo could not start (such as a port in use)
  2  bad input: an unknown flag or a value that does not parse";

/// The end of `explain --help`.
const EXPLAIN_HELP: &str = "\
Example:
  channelgate explain --config config.toml --login ada --id 1001 --team acme/secret-agents \\
      private-supersecretchat private-user-ada

Exit status:
  0  every channel is allowed
  1  some channel is denied
  2  bad input: a flag, a channel name outside Pusher's grammar, or a configuration that
     cannot be loaded";

/// Parses the arguments and runs the command.
pub fn run() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => serve::run(config),
        Command::CheckConfig { config } => check_config::run(config),
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::run(args),
        Command::Explain(args) => explain::run(args),
    }
}

/// Text log lines to stderr; `RUST_LOG` overrides `default` (such as `info`).
pub fn init_logging(default: &str) {
    init_logging_as(LogFormat::Text, default);
}

/// Log lines to stderr in `format`; `RUST_LOG`, when set, overrides `level`.
/// JSON lines carry each request's `request_id` in their `spans` list
/// (the `request` span, outermost).
pub fn init_logging_as(format: LogFormat, level: &str) {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref().unwrap_or(level));
    // A log line that cannot be written (stderr closed) is dropped: the
    // subscriber's own report of it would go to the same closed stderr
    // through `eprintln!`, which panics.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}

/// The log's filter for `directives` (`RUST_LOG`, else `log.level`). The
/// session layer's warning about a malformed session id, one line per
/// request that anyone can send, is left out: the gateway counts those and
/// logs them at most once a minute itself.
pub fn log_filter(directives: &str) -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    filter.add_directive(
        "tower_sessions::service=error"
            .parse()
            .expect("a valid directive"),
    )
}

/// `--config`, else `$CHANNELGATE_CONFIG`, else `./config.toml`.
fn config_path(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os(ENV_CONFIG_PATH).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config.toml"))
}

/// Loads the configuration, printing every problem when it is refused.
fn load(arg: Option<PathBuf>) -> Option<Config> {
    Config::load(&config_path(arg))
        .map_err(|e| print_err(&e.to_string()))
        .ok()
}

/// `path` as an absolute path, for messages that tell where to look.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Why `addr` could not be bound, in words: `setting` says where it was
/// chosen (`server.listen in FILE`, `--listen`), and `choose` turns an
/// address to try instead into the advice to choose it.
fn listen_error(
    addr: SocketAddr,
    source: &std::io::Error,
    setting: &str,
    choose: impl Fn(SocketAddr) -> String,
) -> String {
    let with_port = |port| SocketAddr::new(addr.ip(), port);
    let (why, fix) = match source.kind() {
        ErrorKind::AddrInUse => (
            "the address is already in use by another process".to_owned(),
            format!(
                "Stop that process, or {}",
                choose(with_port(addr.port().wrapping_add(1).max(1024)))
            ),
        ),
        ErrorKind::PermissionDenied => (
            "this user may not listen there (ports below 1024 need privileges)".to_owned(),
            format!("Run with the privilege, or {}", choose(with_port(8080))),
        ),
        ErrorKind::AddrNotAvailable => (
            "no network interface of this machine has that address".to_owned(),
            format!(
                "Use an address of this machine: {}",
                choose(SocketAddr::from(([127, 0, 0, 1], addr.port())))
            ),
        ),
        _ => (
            source.to_string(),
            format!("Check that address, or {}", choose(with_port(8080))),
        ),
    };
    format!("cannot listen on {addr} ({setting}): {why}. {fix}.")
}

/// Writes `text` to stdout. When the reader has gone away (`| head`),
/// the rest of the output has nobody to read it: it is dropped, and the
/// command ends with the status it would have had.
fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Writes `text` to stderr, dropping it when stderr is closed.
fn print_err(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Runs `job` on a new multi-threaded runtime; an error is printed and is
/// exit status 1.
fn on_runtime<F: Future<Output = Result<(), String>>>(job: impl FnOnce() -> F) -> ExitCode {
    let ran = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(job()));
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_err(&format!("error: {e}\n"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
