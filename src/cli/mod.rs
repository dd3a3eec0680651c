//! The `channelgate` command line: parses the arguments and hands each
//! command to its own file. `main.rs` only calls [`run`].
//!
//! Exit status: 0 on success; 1 when a configuration is refused, the
//! gateway cannot start or (for `explain`) a channel is denied; 2 for bad command-line input, which clap
//! reports for every value that does not parse. Nothing here may panic on
//! input, nor when the reader of its output goes away (`| head`): Rust
//! ignores SIGPIPE, so a write to a closed pipe fails with `BrokenPipe`, and
//! [`print_out`] and [`print_err`] drop what cannot be written instead of
//! panicking as `println!` does.

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

/// An authorization gateway for Pusher Channels: GitHub login, rules in
/// config.toml, signatures only for what a rule allows.
#[derive(Debug, Parser)]
#[command(name = "channelgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The configuration file [default: $CHANNELGATE_CONFIG, then ./config.toml]
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Load and validate the configuration, then print the rules as understood.
    CheckConfig {
        /// The configuration file [default: $CHANNELGATE_CONFIG, then ./config.toml]
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Run the whole gateway on this machine with a built-in GitHub stand-in
    /// and demo people: no GitHub app, no Pusher account, no secrets.
    #[cfg(feature = "demo")]
    Demo(demo::Args),
    /// Evaluate the rules offline for a described person, one line per channel.
    ///
    /// Exits 0 when every channel is allowed, 1 when any is denied, 2 on
    /// bad input (a channel name outside Pusher's grammar included).
    Explain(explain::Args),
}

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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
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
