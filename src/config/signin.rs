//! `[signin]`: who may use `pusher.signin()`, in the rules' conditions.
//! Without the section, sign-in is refused to everyone.

use serde::Deserialize;
use toml::de::DeValue;

use super::check::{Problems, S};
use super::rules::conditions;
use crate::rules::Conditions;

/// `[signin]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawSignin {
    #[serde(default)]
    users: Vec<S<String>>,
    #[serde(default)]
    orgs: Vec<S<String>>,
    #[serde(default)]
    teams: Vec<S<String>>,
    #[serde(default)]
    everyone: bool,
}

/// `[signin]` read and checked: `Some(None)` when absent (nobody may sign
/// in), `None` after a problem.
pub(super) fn read(
    p: &mut Problems<'_>,
    value: Option<&S<DeValue<'_>>>,
) -> Option<Option<Conditions>> {
    let Some(value) = value else {
        return Some(None);
    };
    let raw: RawSignin = p.table("signin", value)?;
    let conditions = conditions(p, "signin", &raw.users, &raw.orgs, &raw.teams, raw.everyone)?;
    if conditions.everyone && !conditions.lists_nobody() {
        p.add("signin", None, "everyone = true admits every account, so its users, orgs and teams would never matter; keep one or the other");
        return None;
    }
    if !conditions.everyone && conditions.lists_nobody() {
        p.add("signin", None, "admits nobody; list users, orgs or teams, or say everyone = true (leave [signin] out to refuse every sign-in)");
        return None;
    }
    Some(Some(conditions))
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{MINIMAL, only_problem, parse, problems};

    #[test]
    fn signin_takes_the_rule_conditions() {
        let c = parse(&format!("{MINIMAL}\n[signin]\neveryone = true\n")).unwrap();
        assert!(c.signin.unwrap().everyone);
        let p = only_problem(&format!("{MINIMAL}\n[signin]\n"));
        assert_eq!(p.key, "signin");
        assert!(p.message.contains("admits nobody"), "{}", p.message);
        let p = only_problem(&format!("{MINIMAL}\n[signin]\nteams = [\"acme\"]\n"));
        assert_eq!(p.key, "signin.teams[0]");
        let p = only_problem(&format!(
            "{MINIMAL}\n[signin]\nusers = [\"a\"]\neveryone = true\n"
        ));
        assert_eq!(p.key, "signin");
        let list = problems(&format!("{MINIMAL}\n[signin]\nuser = [\"a\"]\n"));
        assert_eq!(list[0].key, "signin.user");
    }
}
