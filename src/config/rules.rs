//! `[[rules]]`: which channels each rule covers and whom it admits, in file
//! order; and the conditions (`users`, `orgs`, `teams`, `everyone`) that
//! rules and `[signin]` share. Two rules a registered name could bridge are
//! refused here, each collision named by its rule.

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::check::{Problems, S};
use crate::rules::{Conditions, Pattern, Rule, RuleSet, TeamRef, is_github_name};

/// One `[[rules]]` table as written; its fields are a rule's known keys.
#[derive(Deserialize, Default)]
struct RawRule {
    channel: Option<S<String>>,
    #[serde(default)]
    users: Vec<S<String>>,
    #[serde(default)]
    orgs: Vec<S<String>>,
    #[serde(default)]
    teams: Vec<S<String>>,
    #[serde(default)]
    everyone: bool,
}

/// `[[rules]]` read, checked and built (none: an empty set, which denies
/// every channel); `None` after a problem.
pub(super) fn read(p: &mut Problems<'_>, value: Option<&S<DeValue<'_>>>) -> Option<RuleSet> {
    let Some(value) = value else {
        return Some(RuleSet::default());
    };
    let Some(array) = value.get_ref().as_array() else {
        p.add(
            "rules",
            Some(value.span()),
            "must be an array of tables, written [[rules]]",
        );
        return None;
    };
    let mut rules = Vec::new();
    let mut spans = Vec::new();
    let mut ok = true;
    for (i, item) in array.iter().enumerate() {
        let raw = p.table::<RawRule>(&format!("rules[{i}]"), item);
        spans.push(
            raw.as_ref()
                .and_then(|r| r.channel.as_ref().map(Spanned::span)),
        );
        match raw.and_then(|raw| rule(p, i, raw)) {
            Some(rule) => rules.push(rule),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    let rules = RuleSet::new(rules);
    let collisions = rules.collisions();
    for c in &collisions {
        let list = rules.rules();
        p.add(
            format!("rules[{}].channel", c.filled),
            spans[c.filled].clone(),
            format!(
                "{:?} collides with rules[{}] {:?}: {c}",
                list[c.filled].pattern.as_str(),
                c.other,
                list[c.other].pattern.as_str()
            ),
        );
    }
    collisions.is_empty().then_some(rules)
}

/// `rules[i]`.
fn rule(p: &mut Problems<'_>, i: usize, raw: RawRule) -> Option<Rule> {
    let key = |field: &str| format!("rules[{i}].{field}");
    let pattern = match &raw.channel {
        None => {
            p.add(
                key("channel"),
                None,
                "is required: the channel pattern this rule covers",
            );
            None
        }
        Some(v) => Pattern::parse(v.get_ref())
            .map_err(|e| p.at(&key("channel"), v, e.to_string()))
            .ok(),
    };
    let conditions = conditions(
        p,
        &format!("rules[{i}]"),
        &raw.users,
        &raw.orgs,
        &raw.teams,
        raw.everyone,
    );
    let span = raw.channel.as_ref().map(Spanned::span);
    let Conditions {
        users,
        orgs,
        teams,
        everyone,
    } = conditions?;
    match Rule::new(pattern?, users, orgs, teams, everyone) {
        Ok(rule) => Some(rule),
        Err(e) => {
            p.add(format!("rules[{i}]"), span, e.to_string());
            None
        }
    }
}

/// `users`, `orgs`, `teams` and `everyone` of a rule or of `[signin]`,
/// each name checked, every bad one reported under `base`.
pub(super) fn conditions(
    p: &mut Problems<'_>,
    base: &str,
    users: &[S<String>],
    orgs: &[S<String>],
    teams: &[S<String>],
    everyone: bool,
) -> Option<Conditions> {
    let names = |p: &mut Problems<'_>, field: &str, list: &[S<String>]| {
        let mut out = Vec::new();
        let mut ok = true;
        for (j, v) in list.iter().enumerate() {
            if is_github_name(v.get_ref()) {
                out.push(v.get_ref().clone());
            } else {
                ok = false;
                p.at(
                    &format!("{base}.{field}[{j}]"),
                    v,
                    format!(
                        "{:?} is not a GitHub name (letters, digits, - and _)",
                        v.get_ref()
                    ),
                );
            }
        }
        ok.then_some(out)
    };
    let users = names(p, "users", users);
    let orgs = names(p, "orgs", orgs);
    let mut team_refs = Some(Vec::new());
    for (j, v) in teams.iter().enumerate() {
        match TeamRef::parse(v.get_ref()) {
            Ok(t) => {
                if let Some(list) = team_refs.as_mut() {
                    list.push(t);
                }
            }
            Err(m) => {
                p.at(&format!("{base}.teams[{j}]"), v, m);
                team_refs = None;
            }
        }
    }
    Some(Conditions {
        users: users?,
        orgs: orgs?,
        teams: team_refs?,
        everyone,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{problems, with_rules};

    #[test]
    fn rule_problems_name_the_rule_index_and_line() {
        let text = with_rules(
            r#"
[[rules]]
channel = "private-ok"
users = ["a"]

[[rules]]
channel = "public-news"
everyone = true

[[rules]]
channel = "private-{user}"

[[rules]]
channel = "private-*-x"
orgs = ["a"]

[[rules]]
channel = "private-team-{org}-{team}"

[[rules]]
channel = "private-x"
teams = ["acme"]

[[rules]]
channel = "private-wide-open"

[[rules]]
users = ["a"]

[[rules]]
channel = "private-y"
users = ["not a login"]
"#,
        );
        let list = problems(&text);
        let got: Vec<(String, Option<usize>)> =
            list.iter().map(|p| (p.key.clone(), p.line)).collect();
        assert_eq!(
            got,
            [
                ("rules[1].channel".to_owned(), Some(17)),
                ("rules[2].channel".to_owned(), Some(21)),
                ("rules[3].channel".to_owned(), Some(24)),
                ("rules[4].channel".to_owned(), Some(28)),
                ("rules[5].teams[0]".to_owned(), Some(32)),
                ("rules[6]".to_owned(), Some(35)),
                ("rules[8].users[0]".to_owned(), Some(42)),
                ("rules[7].channel".to_owned(), None),
            ]
        );
        assert!(list[0].message.contains("must begin with private-"));
        assert!(list[1].message.contains("{user} is not a placeholder"));
        assert!(list[2].message.contains("* may only appear at the end"));
        assert!(
            list[3].message.contains("\"private-team-{org}.{team}\""),
            "{}",
            list[3].message
        );
        assert!(list[4].message.contains("ORG/TEAM-SLUG"));
        assert!(list[5].message.contains("everyone = true"));
    }
}
