//! `channelgate explain`: the rules evaluated offline for a described person.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::channel::ChannelName;
use crate::rules::{Person, TeamRef, is_github_name};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file [default: $CHANNELGATE_CONFIG, then ./config.toml]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The person's GitHub login.
    #[arg(long, value_name = "LOGIN")]
    login: String,
    /// The person's numeric GitHub id (what `{id}` in a rule stands for);
    /// `gh api users/LOGIN --jq .id` prints it.
    #[arg(long, value_name = "N")]
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
}

pub fn run(args: Args) -> ExitCode {
    let person = match describe_person(args.login, args.id, args.orgs, args.teams) {
        Ok(person) => person,
        Err(message) => {
            super::print_err(&format!("error: {message}\n"));
            return ExitCode::from(2);
        }
    };
    // A name outside Pusher's grammar is bad input, not a denial.
    if let Some(e) = args
        .channels
        .iter()
        .find_map(|c| ChannelName::parse(c).err())
    {
        super::print_err(&format!("error: {e}\n"));
        return ExitCode::from(2);
    }
    let Some(config) = super::load(args.config) else {
        return ExitCode::from(2);
    };
    let width = args.channels.iter().map(String::len).max().unwrap_or(0);
    let mut all_allowed = true;
    let mut lines = String::new();
    for channel in &args.channels {
        let decision = config.rules.decide(&person, channel);
        all_allowed &= decision.is_allowed();
        let verdict = if decision.is_allowed() {
            "allow"
        } else {
            "deny "
        };
        let _ = writeln!(lines, "{verdict} {channel:width$}  {decision}");
    }
    super::print_out(&lines);
    if all_allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
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

    #[test]
    fn a_team_implies_its_org() {
        let p = describe_person("a".into(), 1, vec![], vec!["acme/x".into()]).unwrap();
        assert_eq!(p.orgs, ["acme"]);
        assert!(describe_person("a b".into(), 1, vec![], vec![]).is_err());
        assert!(describe_person("a".into(), 1, vec![], vec!["acme".into()]).is_err());
        assert!(describe_person("a".into(), 1, vec!["a/b".into()], vec![]).is_err());
    }
}
