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
    let mut w = Watched::new(
        GithubUser {
            id: 1001,
            login: "ada".into(),
            name: None,
            avatar_url: String::new(),
        },
        SealedToken::for_test("t"),
        None,
        now,
    );
    w.channels = channels
        .iter()
        .map(|c| ((*c).to_owned(), Held::new(now)))
        .collect();
    w.signed_in = signed_in.then(|| Held::new(now));
    w
}

/// `channel` as signed on `sockets`, in that order.
fn on_sockets(w: &mut Watched, channel: &str, sockets: &[&str]) {
    let held = w.channels.get_mut(channel).expect("a channel of the test");
    for socket in sockets {
        held.sockets.hold(socket_key(socket));
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
    // What was held past the cap is named as such: ended all the same.
    let everything = ["private-user-ada", super::lost::PAST_THE_CAP];
    let (lost, reason) = lost_grants(&w, &moved, &access(), false);
    assert_eq!(lost, everything);
    assert!(reason.contains("more than"), "{reason}");
    // The rules changed, the person did not: everything ends too.
    let (lost, reason) = lost_grants(&w, &ada, &access(), true);
    assert_eq!(lost, everything);
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

#[test]
fn a_grant_remembers_its_four_most_recent_sockets() {
    let key = |s: &str| socket_key(s);
    let mut sockets = Sockets::default();
    for s in ["1.1", "1.2", "1.3", "1.4"] {
        assert!(sockets.hold(key(s)), "{s} is new");
    }
    // A socket signing again becomes the most recent, and is not new.
    assert!(!sockets.hold(key("1.1")));
    // A fifth pushes out the least recent, now 1.2.
    assert!(sockets.hold(key("1.5")));
    let order: Vec<u64> = ["1.3", "1.4", "1.1", "1.5"].map(key).to_vec();
    assert_eq!(sockets.keys(), order);
    assert!(!sockets.contains(key("1.2")));
    // As the store gives them back: the last four, anything else skipped.
    let text = format!("{:x},x,,{}", key("9.9"), join_keys(&order));
    assert_eq!(Sockets::parse(&text), sockets);
    // Sign-ins keep more: the sixteen most recent.
    let mut signed = Vec::new();
    for i in 0..20u64 {
        hold_recent(&mut signed, i, MAX_SIGNED_IN_SOCKETS);
    }
    assert_eq!(signed, (4..20).collect::<Vec<_>>());
}

#[test]
fn socket_keys_are_fnv_1a_and_tell_ids_apart() {
    // The published FNV-1a test vectors: keys survive a restart and an
    // upgrade of Rust, as the store keeps them.
    assert_eq!(socket_key(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(socket_key("a"), 0xaf63_dc4c_8601_ec8c);
    assert_ne!(socket_key("123.456"), socket_key("123.465"));
}

#[test]
fn a_socket_that_authorizes_again_re_arms_every_grant_it_holds_and_no_other() {
    let mut w = watched(&["private-a", "private-b", "private-c"], true);
    on_sockets(&mut w, "private-a", &["1.1"]);
    on_sockets(&mut w, "private-b", &["2.2", "1.1"]);
    on_sockets(&mut w, "private-c", &["2.2"]);
    w.signed_in
        .as_mut()
        .unwrap()
        .sockets
        .hold(socket_key("1.1"));
    let before = w.channels["private-c"].until;
    let later = before + Duration::from_secs(3600);
    w.rearm(socket_key("1.1"), later);
    assert_eq!(w.channels["private-a"].until, later);
    assert_eq!(w.channels["private-b"].until, later, "held by two tabs");
    assert_eq!(w.signed_in.as_ref().unwrap().until, later, "its sign-in");
    assert_eq!(w.channels["private-c"].until, before, "another socket's");
    // Re-arming never shortens a watch.
    w.rearm(socket_key("1.1"), before);
    assert_eq!(w.channels["private-a"].until, later);
}

#[test]
fn channels_on_sockets_that_never_signed_in_are_counted() {
    let mut w = watched(&["private-a", "private-b", "private-c"], true);
    w.signed_sockets.push(socket_key("1.1"));
    on_sockets(&mut w, "private-a", &["1.1"]);
    on_sockets(&mut w, "private-b", &["1.1", "2.2"]);
    on_sockets(&mut w, "private-c", &["2.2", "3.3"]);
    assert_eq!(
        unsigned(&w),
        Unsigned {
            sockets: 2,
            channels: 2
        },
        "2.2 and 3.3 never signed in; b and c sit on them"
    );
    // Without a sign-in, every socket is out of terminate's reach.
    w.signed_in = None;
    assert_eq!(unsigned(&w).channels, 3);
}

#[test]
fn a_stored_record_holds_its_token_sealed_and_reads_back() {
    let mut w = watched(&["private-a"], false);
    w.expiring = Some(Expiring {
        refresh: SealedToken::for_test("sealed-refresh"),
        expires_at: 10,
        refresh_at: 5,
    });
    let record: Record = serde_json::from_str(&w.record()).unwrap();
    assert_eq!(record.user.login, "ada");
    assert_eq!(record.token.sealed_text(), "t");
    assert_eq!(record.refresh.unwrap().sealed_text(), "sealed-refresh");
    assert_eq!((record.expires_at, record.refresh_at), (Some(10), Some(5)));
}

#[test]
fn a_replaced_token_is_kept_as_a_spare_and_the_spares_are_bounded() {
    let mut w = watched(&["private-user-ada"], false);
    for n in 1..=5 {
        w.replace_token(&SealedToken::for_test(&format!("t{n}")), None);
    }
    assert_eq!(w.token.sealed_text(), "t5");
    let spares: Vec<&str> = w.spares.iter().map(|(t, _)| t.sealed_text()).collect();
    assert_eq!(spares, ["t2", "t3", "t4"], "the most recent, newest last");
    // Back to one already kept: moved, not doubled.
    w.replace_token(&SealedToken::for_test("t3"), None);
    let spares: Vec<&str> = w.spares.iter().map(|(t, _)| t.sealed_text()).collect();
    assert_eq!(spares, ["t2", "t4", "t5"]);
}
