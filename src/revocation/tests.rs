//! The pure parts of re-evaluation: what is lost, and why.

use super::*;
use crate::rules::{Pattern, Person, Rule, TeamRef};

fn person(login: &str, orgs: &[&str], teams: &[(&str, &str)]) -> Person {
    Person {
        id: 1001,
        login: login.into(),
        orgs: orgs.iter().map(|o| (*o).to_owned()).collect(),
        teams: teams
            .iter()
            .map(|(org, slug)| TeamRef {
                org: (*org).into(),
                slug: (*slug).into(),
            })
            .collect(),
    }
}

fn access() -> Access {
    let team = Rule::new(
        Pattern::parse("private-supersecretchat").unwrap(),
        vec![],
        vec![],
        vec![TeamRef::parse("acme/secret-agents").unwrap()],
        false,
    )
    .unwrap();
    let own = Rule::new(
        Pattern::parse("private-user-{login}").unwrap(),
        vec![],
        vec![],
        vec![],
        false,
    )
    .unwrap();
    Access {
        rules: RuleSet::new(vec![team, own]),
        signin: Some(Conditions {
            orgs: vec!["acme".into()],
            ..Conditions::default()
        }),
    }
}

fn watched(channels: &[&str], signed_in: bool) -> Watched {
    let now = Instant::now();
    Watched {
        user: GithubUser {
            id: 1001,
            login: "ada".into(),
            name: None,
            avatar_url: String::new(),
        },
        token: SealedToken::for_test("t"),
        expiring: None,
        channels: channels.iter().map(|c| ((*c).to_owned(), now)).collect(),
        signed_in: signed_in.then_some(now),
        overflow: None,
        next_check: now,
        rephased: false,
        last_signed: now,
        ending: false,
    }
}

#[test]
fn a_person_still_allowed_everything_loses_nothing() {
    let ada = person("ada", &["acme"], &[("acme", "secret-agents")]);
    let w = watched(&["private-supersecretchat", "private-user-ada"], true);
    let (lost, _) = lost_grants(&w, &ada, &access(), false);
    assert!(lost.is_empty(), "{lost:?}");
}

#[test]
fn leaving_a_team_loses_its_channel_and_only_that() {
    let ada = person("ada", &["acme"], &[]);
    let w = watched(&["private-supersecretchat", "private-user-ada"], true);
    let (lost, reason) = lost_grants(&w, &ada, &access(), false);
    assert_eq!(lost, ["private-supersecretchat"]);
    assert!(reason.contains("none of its conditions"), "{reason}");
}

#[test]
fn leaving_the_org_loses_the_team_channel_and_sign_in() {
    // A team counts only while its org membership is active.
    let ada = person("ada", &[], &[("acme", "secret-agents")]);
    let w = watched(&["private-supersecretchat", "private-user-ada"], true);
    let (lost, reason) = lost_grants(&w, &ada, &access(), false);
    assert_eq!(lost, ["private-supersecretchat", "sign-in"]);
    assert!(reason.starts_with("private-supersecretchat: "), "{reason}");
    assert!(
        reason.contains("; sign-in: you no longer meet [signin]"),
        "{reason}"
    );
}

#[test]
fn a_rename_loses_the_channel_of_the_old_login() {
    let renamed = person("ada-lovelace", &["acme"], &[("acme", "secret-agents")]);
    let w = watched(&["private-supersecretchat", "private-user-ada"], false);
    let (lost, _) = lost_grants(&w, &renamed, &access(), false);
    assert_eq!(lost, ["private-user-ada"]);
}

#[test]
fn a_removed_rule_takes_its_channels() {
    let ada = person("ada", &["acme"], &[("acme", "secret-agents")]);
    let w = watched(&["private-supersecretchat", "private-user-ada"], false);
    let mut fewer = access();
    fewer.rules = RuleSet::new(vec![fewer.rules.rules()[1].clone()]);
    let (lost, _) = lost_grants(&w, &ada, &fewer, false);
    assert_eq!(lost, ["private-supersecretchat"]);
}

#[test]
fn past_the_cap_any_change_ends_everything() {
    let ada = person("ada", &["acme"], &[("acme", "secret-agents")]);
    let mut w = watched(&["private-user-ada"], false);
    w.overflow = Some(fingerprint(&ada));
    let (lost, _) = lost_grants(&w, &ada, &access(), false);
    assert!(lost.is_empty(), "unchanged: nothing lost");
    let moved = person("ada", &["acme", "initech"], &[("acme", "secret-agents")]);
    let (lost, reason) = lost_grants(&w, &moved, &access(), false);
    assert_eq!(lost, ["private-user-ada"]);
    assert!(reason.contains("more than"), "{reason}"); // The rules changed, the person did not: everything ends too.
    let (lost, reason) = lost_grants(&w, &ada, &access(), true);
    assert_eq!(lost, ["private-user-ada"]);
    assert!(reason.starts_with("the rules changed"), "{reason}");
}

#[test]
fn first_re_reads_spread_over_one_ttl() {
    let ttl = Duration::from_secs(300);
    let mut buckets = [0u32; 10];
    for id in 1..=10_000u64 {
        let at = spread(id, ttl);
        assert!(at < ttl);
        buckets[(at.as_secs() / 30) as usize] += 1;
    }
    // Sequential ids land evenly: no tenth of the TTL gets twice its share.
    assert!(
        buckets.iter().all(|&n| (500..2000).contains(&n)),
        "{buckets:?}"
    );
}

#[test]
fn at_the_cap_the_person_signed_for_longest_ago_goes() {
    let mut registry = HashMap::new();
    let mut old = watched(&["private-user-ada"], false);
    old.last_signed = Instant::now() - Duration::from_secs(60);
    registry.insert(1, old);
    registry.insert(2, watched(&["private-user-bob"], false));
    evict_oldest(&mut registry);
    assert_eq!(registry.keys().copied().collect::<Vec<_>>(), [2]);
}
