//! The rule language: which person may join which channel.
//!
//! Pure code: a [`RuleSet`] and a [`Person`] in, a [`Decision`] out, with the
//! reason spelled out for logs and for `channelgate explain`.
//!
//! A rule is a channel [`Pattern`] plus optional conditions (`users`, `orgs`,
//! `teams`). A person may join a channel when some rule's pattern matches the
//! channel *for that person* and the person meets one of the rule's
//! conditions (a rule without conditions relies on its placeholders, or says
//! `everyone = true`). Placeholders are filled only from the person's own
//! identity and active memberships, never read out of the channel name, and
//! GitHub names compare without regard to ASCII case.

use std::fmt;

use crate::channel::{ChannelKind, ChannelName, InputError};

mod collisions;
mod pattern;
pub use collisions::Collision;
pub use pattern::{Binding, Pattern, PatternError, Placeholder};

/// A person as the rules see them: who they are and what they are an
/// *active* member of. Pending invitations must not be put here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Person {
    /// The numeric GitHub user id; unlike the login it is never reassigned.
    pub id: u64,
    /// The GitHub login.
    pub login: String,
    /// Organisations in which the person's membership is active.
    pub orgs: Vec<String>,
    /// Teams of which the person is a member. A team counts only while its
    /// org is in `orgs`; the engine checks that itself.
    pub teams: Vec<TeamRef>,
}

impl Person {
    /// Whether the login is one GitHub could give: only then does it fill
    /// `{login}` or meet a `users` condition.
    pub fn login_is_valid(&self) -> bool {
        is_github_login(&self.login)
    }

    fn has_org(&self, org: &str) -> bool {
        self.orgs.iter().any(|o| o.eq_ignore_ascii_case(org))
    }

    /// Teams that count: those whose org membership is active.
    pub fn active_teams(&self) -> impl Iterator<Item = &TeamRef> {
        self.teams.iter().filter(|t| self.has_org(&t.org))
    }
}

/// A team, as `ORG/SLUG`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TeamRef {
    /// The organisation's login.
    pub org: String,
    /// The team's slug.
    pub slug: String,
}

impl TeamRef {
    /// Parses `ORG/SLUG`; both halves must be GitHub names.
    pub fn parse(input: &str) -> Result<Self, String> {
        match input.split_once('/') {
            Some((org, slug)) if is_github_name(org) && is_github_name(slug) => Ok(Self {
                org: org.to_owned(),
                slug: slug.to_owned(),
            }),
            _ => Err(format!(
                "{input:?} is not a team; write it as ORG/TEAM-SLUG, such as \"acme/secret-agents\""
            )),
        }
    }

    fn matches(&self, other: &TeamRef) -> bool {
        self.org.eq_ignore_ascii_case(&other.org) && self.slug.eq_ignore_ascii_case(&other.slug)
    }
}

impl fmt::Display for TeamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.org, self.slug)
    }
}

/// Characters a GitHub login, organisation name or team slug may contain.
/// (`_` appears in Enterprise Managed User logins and in some team slugs.)
pub(crate) fn is_github_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// True for a plausible GitHub login, org name or team slug.
pub fn is_github_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.chars().all(is_github_name_char)
}

/// True for a login GitHub's grammar can produce: 1 to 39 characters of
/// `A-Za-z0-9-`, not starting with a hyphen, no two hyphens in a row; and
/// `_` (a managed user's `handle_shortcode`). The rules' separators rely on
/// it: a login with a `.` must not fill `private-{login}` into another
/// rule's `private-acme.*`.
pub fn is_github_login(login: &str) -> bool {
    (1..=39).contains(&login.len())
        && login.chars().all(is_github_name_char)
        && !login.starts_with(['-', '_'])
        && !login.contains("--")
}

/// Why a rule is not acceptable as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Neither conditions nor placeholders: every GitHub account would match.
    #[error(
        "this rule would admit every GitHub account; add users, orgs or teams, use a placeholder such as {{login}}, or say everyone = true if that is really meant"
    )]
    AdmitsEveryone,
    /// `everyone = true` together with conditions that it would make pointless.
    #[error(
        "everyone = true admits every account, so its users, orgs and teams would never matter; keep one or the other"
    )]
    EveryoneWithConditions,
}

/// Who a rule (or `[signin]`) admits: listed logins, active members of
/// listed orgs and teams, or, said explicitly, everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Logins admitted.
    pub users: Vec<String>,
    /// Orgs whose active members are admitted.
    pub orgs: Vec<String>,
    /// Teams whose members (with their org active) are admitted.
    pub teams: Vec<TeamRef>,
    /// Every logged-in person is admitted.
    pub everyone: bool,
}

impl Conditions {
    /// True when no user, org or team is listed (`everyone` aside).
    pub fn lists_nobody(&self) -> bool {
        self.users.is_empty() && self.orgs.is_empty() && self.teams.is_empty()
    }

    /// The first listed condition the person meets, if any.
    pub fn met_by(&self, person: &Person) -> Option<Condition<'_>> {
        if person.login_is_valid()
            && let Some(u) = self
                .users
                .iter()
                .find(|u| u.eq_ignore_ascii_case(&person.login))
        {
            return Some(Condition::User(u));
        }
        if let Some(o) = self.orgs.iter().find(|o| person.has_org(o)) {
            return Some(Condition::Org(o));
        }
        self.teams
            .iter()
            .find(|t| person.active_teams().any(|pt| pt.matches(t)))
            .map(Condition::Team)
    }

    /// Whether the person is admitted: everyone, or a condition met.
    pub fn admit(&self, person: &Person) -> bool {
        self.everyone || self.met_by(person).is_some()
    }

    /// The conditions, for messages: `users: a, b; orgs: c`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.everyone {
            parts.push("everyone".to_owned());
        }
        if !self.users.is_empty() {
            parts.push(format!("users: {}", self.users.join(", ")));
        }
        if !self.orgs.is_empty() {
            parts.push(format!("orgs: {}", self.orgs.join(", ")));
        }
        if !self.teams.is_empty() {
            let teams: Vec<String> = self.teams.iter().map(ToString::to_string).collect();
            parts.push(format!("teams: {}", teams.join(", ")));
        }
        parts.join("; ")
    }
}

/// One rule of `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The channel pattern.
    pub pattern: Pattern,
    /// Who may join when the pattern matches. With none listed and no
    /// `everyone`, the pattern's placeholders alone decide.
    pub conditions: Conditions,
}

impl Rule {
    /// Checks that the rule as a whole makes sense.
    pub fn new(
        pattern: Pattern,
        users: Vec<String>,
        orgs: Vec<String>,
        teams: Vec<TeamRef>,
        everyone: bool,
    ) -> Result<Self, RuleError> {
        let conditions = Conditions {
            users,
            orgs,
            teams,
            everyone,
        };
        if everyone && !conditions.lists_nobody() {
            return Err(RuleError::EveryoneWithConditions);
        }
        if !everyone && conditions.lists_nobody() && !pattern.has_placeholder() {
            return Err(RuleError::AdmitsEveryone);
        }
        Ok(Self {
            pattern,
            conditions,
        })
    }

    fn has_conditions(&self) -> bool {
        !self.conditions.lists_nobody()
    }
}

/// Which of a rule's conditions held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// The rule lists the person's login.
    User(&'a str),
    /// The rule lists an org in which the person is active.
    Org(&'a str),
    /// The rule lists a team of the person's, with its org active.
    Team(&'a TeamRef),
}

/// Why a rule allowed a channel. Kept as references and only turned into
/// text when displayed, so an allow on the request path costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason<'a> {
    /// The rule says `everyone = true`.
    pub everyone: bool,
    /// The condition that held, for a rule with conditions.
    pub condition: Option<Condition<'a>>,
    /// The identity values the pattern was matched with.
    pub binding: Binding<'a>,
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.everyone {
            parts.push("everyone = true".to_owned());
        }
        match self.condition {
            Some(Condition::User(u)) => parts.push(format!("user {u}")),
            Some(Condition::Org(o)) => parts.push(format!("active member of org {o}")),
            Some(Condition::Team(t)) => parts.push(format!("member of team {t}, org active")),
            None => {}
        }
        let bound = self.binding.to_string();
        if !bound.is_empty() {
            parts.push(bound);
        }
        f.write_str(&parts.join(", "))
    }
}

/// The outcome of evaluating the rules for a person and a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Some rule allows it.
    Allow {
        /// Index of the rule in `config.toml` (`rules[N]`).
        rule: usize,
        /// The rule's pattern.
        pattern: &'a Pattern,
        /// Why it matched: the condition met, the placeholder values, or both.
        reason: Reason<'a>,
    },
    /// No rule allows it.
    Deny(Denial),
}

impl Decision<'_> {
    /// True when the channel may be signed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// The reason as the person it concerns may see it: a denial names the
    /// rules whose pattern matched but not whom they admit.
    pub fn for_the_person(&self) -> String {
        match self {
            Self::Deny(Denial::ConditionsUnmet { rules, .. }) => {
                let rules: Vec<String> = rules
                    .iter()
                    .map(|(i, p, _)| format!("rules[{i}] {p:?}"))
                    .collect();
                format!(
                    "{} matches this channel, but you meet none of its conditions",
                    rules.join(" and ")
                )
            }
            other => other.to_string(),
        }
    }
}

/// Why a channel was denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The name breaks the channel-name grammar.
    InvalidName(InputError),
    /// A public channel: it needs no gateway and gets no signature.
    Public(String),
    /// No rule's pattern matches the channel for this person.
    NoPattern {
        /// The person's login.
        login: String,
    },
    /// Some patterns matched, but the person meets none of their conditions.
    ConditionsUnmet {
        /// The person's login.
        login: String,
        /// Each matching rule: its index, pattern and conditions.
        rules: Vec<(usize, String, String)>,
    },
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allow {
                rule,
                pattern,
                reason,
            } => write!(f, "rules[{rule}] {:?}: {reason}", pattern.as_str()),
            Self::Deny(d) => d.fmt(f),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName(e) => write!(f, "not a valid channel name: {e}"),
            Self::Public(name) => write!(
                f,
                "{name} is not a private-, private-encrypted- or presence- channel"
            ),
            Self::NoPattern { login } => {
                write!(f, "no rule's pattern matches this channel for {login}")
            }
            Self::ConditionsUnmet { login, rules } => {
                let rules: Vec<String> = rules
                    .iter()
                    .map(|(i, p, c)| format!("rules[{i}] {p:?} ({c})"))
                    .collect();
                write!(
                    f,
                    "{login} meets none of the conditions of {}",
                    rules.join(", ")
                )
            }
        }
    }
}

/// All rules of a configuration, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Rules in the order they were written.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Pairs of rules through which a GitHub name anyone can register
    /// reaches another rule's channel (see [`collisions`]). A configuration
    /// with any is refused.
    pub fn collisions(&self) -> Vec<Collision> {
        let patterns: Vec<&Pattern> = self.rules.iter().map(|r| &r.pattern).collect();
        collisions::find(&patterns)
    }

    /// What `person` may join, rule by rule: each rule whose conditions they
    /// meet, with its pattern filled in from their identity (`*` kept).
    /// Rules whose placeholders nothing of theirs fills are left out.
    pub fn grants(&self, person: &Person) -> Vec<(usize, &Pattern, Vec<String>)> {
        let mut grants = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.has_conditions() && rule.conditions.met_by(person).is_none() {
                continue;
            }
            let channels = rule.pattern.render(person);
            if !channels.is_empty() {
                grants.push((index, &rule.pattern, channels));
            }
        }
        grants
    }

    /// Organisations the rules name (in `orgs` and in `teams`) in which
    /// `person` is not an active member, sorted, once each. GitHub leaves out
    /// an org that restricts OAuth apps, so these are the ones to explain.
    pub fn orgs_missing_for(&self, person: &Person) -> Vec<String> {
        let mut orgs: Vec<String> = self
            .rules
            .iter()
            .flat_map(|r| {
                let c = &r.conditions;
                c.orgs.iter().chain(c.teams.iter().map(|t| &t.org))
            })
            .filter(|org| !person.has_org(org))
            .cloned()
            .collect();
        orgs.sort_by_key(|o| o.to_ascii_lowercase());
        orgs.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        orgs
    }

    /// Decides whether `person` may join the channel named `channel`.
    pub fn decide<'a>(&'a self, person: &'a Person, channel: &str) -> Decision<'a> {
        match ChannelName::parse(channel) {
            Ok(name) => self.decide_valid(person, &name),
            Err(e) => Decision::Deny(Denial::InvalidName(e)),
        }
    }

    /// Like [`RuleSet::decide`] for a name that already passed the grammar.
    pub fn decide_valid<'a>(&'a self, person: &'a Person, channel: &ChannelName) -> Decision<'a> {
        if channel.kind() == ChannelKind::Public {
            return Decision::Deny(Denial::Public(channel.to_string()));
        }
        let mut unmet = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let Some(binding) = rule.pattern.matches(channel.as_str(), person) else {
                continue;
            };
            let condition = rule.conditions.met_by(person);
            let everyone = rule.conditions.everyone;
            if everyone || !rule.has_conditions() || condition.is_some() {
                return Decision::Allow {
                    rule: index,
                    pattern: &rule.pattern,
                    reason: Reason {
                        everyone,
                        condition,
                        binding,
                    },
                };
            }
            unmet.push((index, rule.pattern.to_string(), rule.conditions.describe()));
        }
        let login = person.login.clone();
        Decision::Deny(if unmet.is_empty() {
            Denial::NoPattern { login }
        } else {
            Denial::ConditionsUnmet {
                login,
                rules: unmet,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn team(s: &str) -> TeamRef {
        TeamRef::parse(s).unwrap()
    }

    fn person(login: &str, id: u64, orgs: &[&str], teams: &[&str]) -> Person {
        Person {
            id,
            login: login.into(),
            orgs: orgs.iter().map(|s| s.to_string()).collect(),
            teams: teams.iter().map(|t| team(t)).collect(),
        }
    }

    #[test]
    fn logins_follow_githubs_grammar() {
        for ok in [
            "a",
            "ada",
            "Dee-Dash",
            "a1-b2-c3",
            "jdoe_acme",
            &"x".repeat(39),
        ] {
            assert!(is_github_login(ok), "{ok}");
        }
        for bad in [
            "",
            &"x".repeat(40),
            "-ada",
            "_ada",
            "a--b",
            "acme.evil",
            "a b",
            "ada/ops",
            "ädä",
        ] {
            assert!(!is_github_login(bad), "{bad}");
        }
    }

    #[test]
    fn a_login_outside_the_grammar_meets_no_users_condition_and_fills_nothing() {
        let odd = person("acme.evil", 78, &["initech"], &[]);
        let named = Conditions {
            users: vec!["acme.evil".into()],
            ..Conditions::default()
        };
        assert!(!named.admit(&odd));
        let own = rule("private-{login}", &[], &[], &[], false);
        assert!(own.pattern.matches("private-acme.evil", &odd).is_none());
        assert!(own.pattern.render(&odd).is_empty());
        // The org still counts: it was checked on its own.
        let org = Conditions {
            orgs: vec!["initech".into()],
            ..Conditions::default()
        };
        assert!(org.admit(&odd));
    }

    fn rule(pattern: &str, users: &[&str], orgs: &[&str], teams: &[&str], everyone: bool) -> Rule {
        Rule::new(
            Pattern::parse(pattern).unwrap(),
            users.iter().map(|s| s.to_string()).collect(),
            orgs.iter().map(|s| s.to_string()).collect(),
            teams.iter().map(|t| team(t)).collect(),
            everyone,
        )
        .unwrap()
    }

    /// The rules of the worked examples in the README's "Rules" section.
    fn design_rules() -> RuleSet {
        RuleSet::new(vec![
            rule("private-ops", &[], &[], &["initech/ops"], false),
            rule("private-user-{login}", &[], &[], &[], false),
            rule("presence-org-{org}", &[], &[], &[], false),
            rule("private-team-{org}.{team}", &[], &[], &[], false),
            rule("private-initech-*", &[], &["initech"], &[], false),
            rule("private-lobby", &[], &[], &[], true),
        ])
    }

    #[test]
    fn design_worked_examples() {
        let ada = person("ada", 1, &["initech"], &["initech/ops"]);
        let bo = person("bo", 2, &["initech"], &[]);
        // cy's org membership is pending, so it is not among the active orgs.
        let cy = person("cy", 3, &[], &["initech/ops"]);
        let dee = person("Dee-Dash", 4, &["globex"], &[]);
        let rules = design_rules();
        let table = [
            (&ada, "private-ops", true),
            (&bo, "private-ops", false),
            (&cy, "private-ops", false),
            (&ada, "private-user-ada", true),
            (&ada, "private-user-ADA", true),
            (&bo, "private-user-ada", false),
            (&dee, "private-user-dee-dash", true),
            (&ada, "presence-org-initech", true),
            (&ada, "presence-org-globex", false),
            (&ada, "private-team-initech.ops", true),
            (&bo, "private-team-initech.ops", false),
            (&bo, "private-initech-roadmap", true),
            (&dee, "private-initech-roadmap", false),
            (&dee, "private-lobby", true),
            (&ada, "public-news", false),
        ];
        for (who, channel, allowed) in table {
            let decision = rules.decide(who, channel);
            assert_eq!(
                decision.is_allowed(),
                allowed,
                "{} {channel}: {decision}",
                who.login
            );
        }
    }

    #[test]
    fn grants_list_what_a_person_may_join() {
        let rules = design_rules();
        let ada = person("ada", 1, &["initech"], &["initech/ops"]);
        let channels: Vec<String> = rules
            .grants(&ada)
            .into_iter()
            .flat_map(|(_, _, c)| c)
            .collect();
        assert_eq!(
            channels,
            [
                "private-ops",
                "private-user-ada",
                "presence-org-initech",
                "private-team-initech.ops",
                "private-initech-*",
                "private-lobby"
            ]
        );
        // Everything listed (with * filled) is allowed: the listing and the
        // engine agree.
        for c in &channels {
            let c = c.replace('*', "x");
            assert!(rules.decide(&ada, &c).is_allowed(), "{c}");
        }
        let cy = person("cy", 3, &[], &["initech/ops"]);
        let channels: Vec<String> = rules
            .grants(&cy)
            .into_iter()
            .flat_map(|(_, _, c)| c)
            .collect();
        assert_eq!(channels, ["private-user-cy", "private-lobby"]);
        assert_eq!(rules.orgs_missing_for(&ada), [] as [&str; 0]);
        assert_eq!(rules.orgs_missing_for(&cy), ["initech"]);
    }

    #[test]
    fn reasons_name_the_rule_and_the_condition() {
        let rules = design_rules();
        let ada = person("ada", 1, &["initech"], &["initech/ops"]);
        assert_eq!(
            rules.decide(&ada, "private-ops").to_string(),
            r#"rules[0] "private-ops": member of team initech/ops, org active"#
        );
        assert_eq!(
            rules.decide(&ada, "private-user-ADA").to_string(),
            r#"rules[1] "private-user-{login}": {login} = ada"#
        );
        assert_eq!(
            rules.decide(&ada, "private-team-initech.ops").to_string(),
            r#"rules[3] "private-team-{org}.{team}": {org} = initech, {team} = ops"#
        );
        assert_eq!(
            rules.decide(&ada, "private-lobby").to_string(),
            r#"rules[5] "private-lobby": everyone = true"#
        );
        let bo = person("bo", 2, &["initech"], &[]);
        assert_eq!(
            rules.decide(&bo, "private-ops").to_string(),
            r#"bo meets none of the conditions of rules[0] "private-ops" (teams: initech/ops)"#
        );
        assert_eq!(
            rules.decide(&bo, "private-user-ada").to_string(),
            "no rule's pattern matches this channel for bo"
        );
        assert!(
            rules
                .decide(&bo, "public-news")
                .to_string()
                .contains("not a private-")
        );
        assert!(
            rules
                .decide(&bo, "private-a:b")
                .to_string()
                .starts_with("not a valid channel name: channel_name")
        );
    }

    #[test]
    fn users_and_orgs_conditions_ignore_case() {
        let rules = RuleSet::new(vec![
            rule("private-a", &["JBloggs"], &[], &[], false),
            rule("private-b", &[], &["ACME"], &[], false),
            rule("private-c", &[], &[], &["Acme/Secret-Agents"], false),
        ]);
        let p = person("jbloggs", 9, &["acme"], &["acme/secret-agents"]);
        for c in ["private-a", "private-b", "private-c"] {
            assert!(rules.decide(&p, c).is_allowed(), "{c}");
        }
    }

    #[test]
    fn team_counts_only_with_its_org_active() {
        let rules = RuleSet::new(vec![
            rule("private-c", &[], &[], &["acme/x"], false),
            rule("private-t-{org}.{team}", &[], &[], &[], false),
        ]);
        let pending = person("p", 1, &["other"], &["acme/x"]);
        assert!(!rules.decide(&pending, "private-c").is_allowed());
        assert!(!rules.decide(&pending, "private-t-acme.x").is_allowed());
        let active = person("p", 1, &["acme"], &["acme/x"]);
        assert!(rules.decide(&active, "private-t-acme.x").is_allowed());
    }

    #[test]
    fn team_before_org_in_a_pattern_binds_the_same_org() {
        let rules = RuleSet::new(vec![rule("private-{team}.{org}", &[], &[], &[], false)]);
        let p = person("p", 1, &["a", "b"], &["a/x", "b/y"]);
        assert!(rules.decide(&p, "private-x.a").is_allowed());
        assert!(rules.decide(&p, "private-y.b").is_allowed());
        assert!(!rules.decide(&p, "private-x.b").is_allowed());
    }

    #[test]
    fn id_placeholder_and_conditions_together() {
        let rules = RuleSet::new(vec![rule("private-inbox-{id}", &[], &["acme"], &[], false)]);
        let member = person("m", 42, &["acme"], &[]);
        let outsider = person("o", 42, &[], &[]);
        assert_eq!(
            rules.decide(&member, "private-inbox-42").to_string(),
            r#"rules[0] "private-inbox-{id}": active member of org acme, {id} = 42"#
        );
        assert!(!rules.decide(&member, "private-inbox-43").is_allowed());
        assert!(!rules.decide(&member, "private-inbox-420").is_allowed());
        assert!(!rules.decide(&outsider, "private-inbox-42").is_allowed());
    }

    #[test]
    fn star_matches_any_rest_but_literals_are_exact() {
        let rules = RuleSet::new(vec![rule("private-acme-*", &[], &["acme"], &[], false)]);
        let p = person("p", 1, &["acme"], &[]);
        assert!(rules.decide(&p, "private-acme-").is_allowed());
        assert!(rules.decide(&p, "private-acme-a.b=c").is_allowed());
        assert!(!rules.decide(&p, "private-ACME-a").is_allowed());
        assert!(!rules.decide(&p, "private-acm").is_allowed());
    }

    #[test]
    fn pattern_errors() {
        let err = |p: &str| Pattern::parse(p).unwrap_err();
        assert!(matches!(err("public-{login}"), PatternError::Prefix(_)));
        assert!(matches!(err("private{login}"), PatternError::Prefix(_)));
        assert!(matches!(err("{login}-private-"), PatternError::Prefix(_)));
        assert!(matches!(err("presence"), PatternError::Prefix(_)));
        assert_eq!(
            err("private-{user}"),
            PatternError::UnknownPlaceholder("{user}".into())
        );
        assert!(matches!(err("private-{login"), PatternError::Brace(_)));
        assert!(matches!(err("private-login}"), PatternError::Brace(_)));
        assert!(matches!(err("private-{{login}}"), PatternError::Brace(_)));
        assert_eq!(err("private-*-x"), PatternError::Star);
        assert_eq!(err("private-**"), PatternError::Star);
        assert_eq!(err("private-a:b"), PatternError::Character(':'));
        assert_eq!(err("private-{team}"), PatternError::TeamWithoutOrg);
        assert_eq!(
            err("private-{login}.{login}"),
            PatternError::Repeated("{login}")
        );
        assert!(Pattern::parse("private-encrypted-{login}").is_ok());
        assert!(Pattern::parse("presence-*").is_ok());
    }

    #[test]
    fn ambiguous_placeholders_are_refused_with_a_fix() {
        let suggestion = |p: &str| match Pattern::parse(p) {
            Err(PatternError::Ambiguous { suggestion, .. }) => suggestion,
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(
            suggestion("private-team-{org}-{team}"),
            "private-team-{org}.{team}"
        );
        assert_eq!(suggestion("private-{org}-*"), "private-{org}.*");
        assert_eq!(suggestion("private-{org}*"), "private-{org}.*");
        assert_eq!(suggestion("private-{login}{id}"), "private-{login}.{id}");
        assert_eq!(
            suggestion("private-{org}x-{team}"),
            "private-{org}.x-{team}"
        );
        // Suggestions are themselves valid.
        for p in [
            "private-team-{org}.{team}",
            "private-{org}.*",
            "private-{org}.x-{team}",
        ] {
            assert!(Pattern::parse(p).is_ok(), "{p}");
        }
        // An id is digits only, so a dash does end it; a lone placeholder
        // followed by literals is never ambiguous.
        assert!(Pattern::parse("private-{id}-*").is_ok());
        assert!(Pattern::parse("private-{login}-chat").is_ok());
        let msg = Pattern::parse("private-{org}-*").unwrap_err().to_string();
        assert!(msg.contains("{org} and *"), "{msg}");
    }

    #[test]
    fn rules_that_admit_everyone_need_to_say_so() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        assert_eq!(
            Rule::new(p("private-x"), vec![], vec![], vec![], false),
            Err(RuleError::AdmitsEveryone)
        );
        assert_eq!(
            Rule::new(p("private-*"), vec![], vec![], vec![], false),
            Err(RuleError::AdmitsEveryone)
        );
        assert_eq!(
            Rule::new(p("private-x"), vec!["a".into()], vec![], vec![], true),
            Err(RuleError::EveryoneWithConditions)
        );
        assert!(Rule::new(p("private-x"), vec![], vec![], vec![], true).is_ok());
        assert!(Rule::new(p("private-{login}"), vec![], vec![], vec![], false).is_ok());
    }

    #[test]
    fn team_refs() {
        assert_eq!(team("acme/secret-agents").to_string(), "acme/secret-agents");
        for bad in ["acme", "acme/", "/x", "a/b/c", "acme/secret agents", ""] {
            assert!(TeamRef::parse(bad).is_err(), "{bad}");
        }
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9][a-zA-Z0-9-]{0,12}"
    }

    proptest! {
        /// Someone who meets no rule's conditions and whose identity no
        /// placeholder pattern names gets nothing, whatever the channel.
        #[test]
        fn nobody_is_allowed_by_rules_they_do_not_meet(channel in "[a-z]{0,3}[a-zA-Z0-9_=@,.;-]{0,40}",
                                                      login in name()) {
            let rules = RuleSet::new(vec![
                rule("private-ops", &["someone-else"], &[], &["initech/ops"], false),
                rule("private-initech-*", &[], &["initech"], &[], false),
                rule("presence-org-{org}", &[], &[], &[], false),
                rule("private-team-{org}.{team}", &[], &[], &[], false),
            ]);
            prop_assume!(!login.eq_ignore_ascii_case("someone-else"));
            let outsider = person(&login, 7, &[], &["initech/ops"]);
            for prefix in ["", "private-", "presence-", "private-initech-", "presence-org-", "private-team-initech."] {
                let channel = format!("{prefix}{channel}");
                prop_assert!(!rules.decide(&outsider, &channel).is_allowed(), "{}", channel);
            }
        }

        /// `private-user-{login}` admits its owner and nobody else, wherever
        /// dashes fall in either login.
        #[test]
        fn user_channels_admit_only_their_owner(owner in name(), other in name(), suffix in "(-[a-z0-9]{1,4}){0,2}") {
            let owner_login = format!("{owner}{suffix}");
            prop_assume!(is_github_login(&owner_login) && is_github_login(&other));
            prop_assume!(!owner_login.eq_ignore_ascii_case(&other));
            let rules = RuleSet::new(vec![rule("private-user-{login}", &[], &[], &[], false)]);
            let channel = format!("private-user-{owner}{suffix}");
            let owner_person = person(&owner_login, 1, &[], &[]);
            prop_assert!(rules.decide(&owner_person, &channel).is_allowed());
            let other_person = person(&other, 2, &["acme"], &["acme/x"]);
            prop_assert!(!rules.decide(&other_person, &channel).is_allowed());
            // The login that is a dash-prefix of the owner's gets nothing either.
            if !suffix.is_empty() {
                let prefix_person = person(&owner, 3, &[], &[]);
                prop_assert!(!rules.decide(&prefix_person, &channel).is_allowed());
            }
        }

        /// `{org}.{team}` channels: a person gets exactly their own teams' channels.
        #[test]
        fn team_channels_are_never_shared_across_dashes(a in name(), b in name(), c in name()) {
            let rules = RuleSet::new(vec![rule("private-team-{org}.{team}", &[], &[], &[], false)]);
            let p = person("p", 1, &[&a], &[&format!("{a}/{b}-{c}")]);
            let own = format!("private-team-{a}.{b}-{c}");
            prop_assert!(rules.decide(&p, &own).is_allowed());
            let shifted = format!("private-team-{a}-{b}.{c}");
            prop_assert!(!rules.decide(&p, &shifted).is_allowed());
        }

        /// Anything outside the channel-name grammar is denied, even by a rule
        /// that would allow every valid name.
        #[test]
        fn names_outside_the_grammar_are_denied(body in "[a-z]{0,5}", bad in "[^A-Za-z0-9_=@,.;-]", tail in ".{0,5}") {
            let rules = RuleSet::new(vec![rule("private-*", &[], &[], &[], true)]);
            let p = person("p", 1, &[], &[]);
            let channel = format!("private-{body}{bad}{tail}");
            prop_assert!(matches!(rules.decide(&p, &channel), Decision::Deny(Denial::InvalidName(_))));
        }

        #[test]
        fn overlong_names_are_denied(len in 165usize..400) {
            let rules = RuleSet::new(vec![rule("private-*", &[], &[], &[], true)]);
            let channel = format!("private-{}", "x".repeat(len - 8));
            prop_assert!(matches!(
                rules.decide(&person("p", 1, &[], &[]), &channel),
                Decision::Deny(Denial::InvalidName(InputError::ChannelNameTooLong(_)))
            ));
        }
    }
}
