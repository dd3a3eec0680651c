//! The `channelgate` command line.
//!
//! Exit status: 0 on success; 1 when a configuration is refused or (for
//! `explain`) a channel is denied; 2 for bad command-line input.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ENV_CONFIG_PATH};
use crate::rules::{Person, TeamRef, is_github_name};
use crate::signing::ChannelName;
use crate::{demo, server};

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
    Demo {
        /// Address to listen on; loopback only.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// A Pusher-protocol server (such as sockudo) the page may subscribe through.
        #[arg(long, value_name = "HOST:PORT", default_value = demo::DEFAULT_PUSHER_HOST)]
        pusher_host: String,
    },
    /// Evaluate the rules offline for a described person, one line per channel.
    ///
    /// Exits 0 when every channel is allowed, 1 when any is denied.
    Explain {
        /// The configuration file [default: $CHANNELGATE_CONFIG, then ./config.toml]
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// The person's GitHub login.
        #[arg(long, value_name = "LOGIN")]
        login: String,
        /// The person's numeric GitHub id.
        #[arg(long, value_name = "N", default_value_t = 1)]
        id: u64,
        /// An org in which the person's membership is active (repeatable).
        #[arg(long = "org", value_name = "ORG")]
        orgs: Vec<String>,
        /// A team the person is an active member of, as ORG/SLUG (repeatable);
        /// implies an active membership of ORG.
        #[arg(long = "team", value_name = "ORG/SLUG")]
        teams: Vec<String>,
        /// Channel names to evaluate.
        #[arg(required = true, value_name = "CHANNEL")]
        channels: Vec<String>,
    },
}

/// Parses the arguments and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let Some(config) = load(config) else {
                return ExitCode::FAILURE;
            };
            // Denials are logged at info, each allow at debug.
            init_logging("info");
            let served = tokio::runtime::Runtime::new()
                .map_err(|e| e.to_string())
                .and_then(|rt| {
                    rt.block_on(server::serve(config))
                        .map_err(|e| e.to_string())
                });
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo {
            listen,
            pusher_host,
        } => {
            // The demo shows every decision, allows included.
            init_logging("info,channelgate::pusher=debug");
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let ran = runtime.block_on(async {
                let demo = demo::start(listen, &pusher_host)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("{}", demo::banner(&demo.url, &pusher_host));
                server::shutdown_signal().await;
                demo.gateway.shutdown().await.map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            });
            match ran {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { config } => {
            let path = config_path(config);
            match Config::load(&path) {
                Ok(config) => {
                    println!("{}: valid", path.display());
                    print!("{}", config.summary());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprint!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Explain {
            config,
            login,
            id,
            orgs,
            teams,
            channels,
        } => {
            let person = match describe_person(login, id, orgs, teams) {
                Ok(person) => person,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(2);
                }
            };
            // A name outside Pusher's grammar is bad input, not a denial.
            if let Some(e) = channels.iter().find_map(|c| ChannelName::parse(c).err()) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            let Some(config) = load(config) else {
                return ExitCode::from(2);
            };
            let width = channels.iter().map(String::len).max().unwrap_or(0);
            let mut all_allowed = true;
            for channel in &channels {
                let decision = config.rules.decide(&person, channel);
                all_allowed &= decision.is_allowed();
                let verdict = if decision.is_allowed() {
                    "allow"
                } else {
                    "deny "
                };
                // Channel names can hold anything here; print them escaped.
                let shown = format!("{channel:?}");
                let shown = shown.trim_matches('"');
                println!("{verdict} {shown:width$}  {decision}");
            }
            if all_allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Log lines to stderr; `RUST_LOG` overrides `default` (such as `info`).
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn config_path(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os(ENV_CONFIG_PATH).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config.toml"))
}

/// Loads the configuration, printing every problem when it is refused.
fn load(arg: Option<PathBuf>) -> Option<Config> {
    Config::load(&config_path(arg))
        .map_err(|e| eprint!("{e}"))
        .ok()
}

/// The person `explain` evaluates for, from its flags.
fn describe_person(
    login: String,
    id: u64,
    mut orgs: Vec<String>,
    teams: Vec<String>,
) -> Result<Person, String> {
    if !is_github_name(&login) {
        return Err(format!("--login {login:?} is not a GitHub login"));
    }
    if let Some(bad) = orgs.iter().find(|o| !is_github_name(o)) {
        return Err(format!("--org {bad:?} is not a GitHub organisation name"));
    }
    let teams = teams
        .iter()
        .map(|t| TeamRef::parse(t).map_err(|e| format!("--team {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    for team in &teams {
        if !orgs.iter().any(|o| o.eq_ignore_ascii_case(&team.org)) {
            orgs.push(team.org.clone());
        }
    }
    Ok(Person {
        id,
        login,
        orgs,
        teams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_team_implies_its_org() {
        let p = describe_person("a".into(), 1, vec![], vec!["acme/x".into()]).unwrap();
        assert_eq!(p.orgs, ["acme"]);
        assert!(describe_person("a b".into(), 1, vec![], vec![]).is_err());
        assert!(describe_person("a".into(), 1, vec![], vec!["acme".into()]).is_err());
        assert!(describe_person("a".into(), 1, vec!["a/b".into()], vec![]).is_err());
    }
}
