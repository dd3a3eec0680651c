//! `[revocation]`: how long a signed channel is watched, whether losing it
//! ends the person's Pusher connections, and whether channels are signed
//! only for connections that signed in first (`require_signin`).
//!
//! `require_signin` exists because hosted Pusher's `terminate_connections`
//! reaches only connections that called `pusher.signin()`: a socket that
//! only subscribed keeps its channels for as long as it stays open. It
//! needs `[signin]` (nobody could sign in without it) and a `watch_for`
//! (sign-ins are remembered that long); a rule that admits people
//! `[signin]` does not is a warning (see [`Config::signin_warnings`]).

use std::time::Duration;

use serde::Deserialize;
use toml::de::DeValue;

use super::check::{Problems, S, duration};
use super::{Config, Problem, format_duration};
use crate::rules::{Conditions, Rule};

/// The longest `signin_wait`: pusher-js sends the sign-in and the
/// subscriptions together, so a sign-in later than this is not coming, and
/// a longer wait only holds connections open.
pub const MAX_SIGNIN_WAIT: Duration = Duration::from_secs(60);

/// `[revocation]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationConfig {
    /// How long after signing a channel the gateway keeps checking that its
    /// person may still have it; zero turns live revocation off.
    pub watch_for: Duration,
    /// End the person's Pusher connections when they lose a watched
    /// channel; false only logs what would have been ended.
    pub terminate_connections: bool,
    /// Sign channels only for a socket this gateway signed in (through
    /// `/pusher/user-auth`) as the same person.
    pub require_signin: bool,
    /// With `require_signin`, how long a channel request that arrives
    /// before its socket's sign-in waits for it.
    pub signin_wait: Duration,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self {
            watch_for: Duration::from_secs(86_400),
            terminate_connections: true,
            require_signin: false,
            signin_wait: Duration::from_secs(5),
        }
    }
}

/// `[revocation]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawRevocation {
    watch_for: Option<S<String>>,
    terminate_connections: Option<bool>,
    require_signin: Option<S<bool>>,
    signin_wait: Option<S<String>>,
}

/// `[revocation]` read, checked and built; `None` after a problem.
/// `signin` is `[signin]` as read and `request_timeout` is
/// `server.request_timeout` (each `None` after a problem of its own, then
/// not judged again here).
pub(super) fn read(
    p: &mut Problems<'_>,
    value: Option<&S<DeValue<'_>>>,
    signin: Option<&Option<Conditions>>,
    request_timeout: Option<Duration>,
) -> Option<RevocationConfig> {
    let raw: RawRevocation = p.section("revocation", value)?;
    let defaults = RevocationConfig::default();
    let watch_for = duration(
        p,
        "revocation.watch_for",
        raw.watch_for,
        defaults.watch_for,
        Duration::ZERO,
    );
    let written = raw.signin_wait.is_some();
    let signin_wait = signin_wait(p, raw.signin_wait, defaults.signin_wait, request_timeout);
    let require_signin = require_signin(p, raw.require_signin, signin, watch_for);
    // The default wait must fit the request too, once it is used.
    if let (false, Some(true), Some(wait), Some(timeout)) =
        (written, require_signin, signin_wait, request_timeout)
        && wait >= timeout
    {
        p.add(
            "revocation.signin_wait",
            None,
            format!(
                "its default ({}) is not shorter than server.request_timeout ({}): with require_signin, a request would time out before it is told to sign in first; set signin_wait shorter, or lengthen request_timeout",
                format_duration(wait),
                format_duration(timeout)
            ),
        );
        return None;
    }
    Some(RevocationConfig {
        watch_for: watch_for?,
        terminate_connections: raw
            .terminate_connections
            .unwrap_or(defaults.terminate_connections),
        require_signin: require_signin?,
        signin_wait: signin_wait?,
    })
}

/// `revocation.signin_wait`: at least a second (the duration grammar's
/// smallest step), at most [`MAX_SIGNIN_WAIT`], and shorter than
/// `request_timeout` (or the request would time out before its refusal).
fn signin_wait(
    p: &mut Problems<'_>,
    value: Option<S<String>>,
    default: Duration,
    request_timeout: Option<Duration>,
) -> Option<Duration> {
    const KEY: &str = "revocation.signin_wait";
    let Some(v) = value else {
        return Some(default);
    };
    let wait = duration(p, KEY, Some(v.clone()), default, Duration::from_secs(1))?;
    if wait > MAX_SIGNIN_WAIT {
        let max = format_duration(MAX_SIGNIN_WAIT);
        p.at(
            KEY,
            &v,
            format!(
                "{:?} is too long: pusher-js signs in as it subscribes, so a sign-in that has not come within {max} is not coming, and a longer wait only holds connections open; keep it at most \"{max}\" (default \"5s\")",
                v.get_ref()
            ),
        );
        return None;
    }
    if let Some(timeout) = request_timeout.filter(|t| wait >= *t) {
        p.at(
            KEY,
            &v,
            format!(
                "{:?} is not shorter than server.request_timeout ({}): a request would time out before it is told to sign in first; shorten signin_wait or lengthen request_timeout",
                v.get_ref(),
                format_duration(timeout)
            ),
        );
        return None;
    }
    Some(wait)
}

/// `revocation.require_signin`, refused when nothing could satisfy it:
/// without `[signin]` nobody can sign in, and with `watch_for = "0s"` no
/// sign-in is remembered (nor would anything end a signed-in connection).
fn require_signin(
    p: &mut Problems<'_>,
    value: Option<S<bool>>,
    signin: Option<&Option<Conditions>>,
    watch_for: Option<Duration>,
) -> Option<bool> {
    const KEY: &str = "revocation.require_signin";
    let Some(v) = value.filter(|v| *v.get_ref()) else {
        return Some(false);
    };
    let mut usable = true;
    if matches!(signin, Some(None)) {
        p.at(
            KEY,
            &v,
            "is true but there is no [signin] section, so nobody could sign in and every channel would be refused; add [signin] naming who may sign in (such as orgs = [\"your-org\"]), or set require_signin = false",
        );
        usable = false;
    }
    if watch_for.is_some_and(|w| w.is_zero()) {
        p.at(
            KEY,
            &v,
            "is true but revocation.watch_for is \"0s\": sign-ins are remembered for watch_for, and with live revocation off nothing would end a signed-in connection anyway; set watch_for (default \"1d\") or require_signin = false",
        );
        usable = false;
    }
    usable.then_some(true)
}

impl Config {
    /// What `check-config` warns about without refusing the file: with
    /// `revocation.require_signin`, each rule that admits people `[signin]`
    /// does not (they could never sign in, so the rule signs nothing for
    /// them). Keyed by the rule (`rules[2]`).
    ///
    /// The check is conservative: it reads only the configuration, never
    /// GitHub, so a rule counts as within `[signin]` only when `[signin]` is
    /// `everyone = true`, or when every condition the rule lists is
    /// admitted by name: a user listed in `[signin].users`, an org in
    /// `[signin].orgs`, a team in `[signin].teams` or whose org is in
    /// `[signin].orgs`. A rule with `everyone = true`, or one that relies on
    /// its placeholders alone (`private-user-{login}`), is outside any
    /// narrower `[signin]`; a user who is in fact a member of a listed org
    /// is still warned about.
    pub(super) fn signin_warnings(&self) -> Vec<Problem> {
        let (true, Some(signin)) = (self.revocation.require_signin, &self.signin) else {
            return Vec::new();
        };
        self.rules
            .rules()
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| {
                let outside = outside_signin(rule, signin)?;
                Some(Problem {
                    key: format!("rules[{i}]"),
                    line: None,
                    message: format!(
                        "{:?} admits {outside}, whom [signin] ({}) does not admit; with revocation.require_signin = true they cannot sign in, so this rule signs no channel for them; add them to [signin] or narrow the rule",
                        rule.pattern.as_str(),
                        signin.describe()
                    ),
                    excerpt: None,
                })
            })
            .collect()
    }
}

/// Whom `rule` admits that `signin` may not, in words; `None` when every
/// condition of the rule is admitted by name (see [`Config::signin_warnings`]).
fn outside_signin(rule: &Rule, signin: &Conditions) -> Option<String> {
    if signin.everyone {
        return None;
    }
    let c = &rule.conditions;
    if c.everyone {
        return Some("every logged-in person".to_owned());
    }
    if c.lists_nobody() {
        return Some("anyone its placeholders fit".to_owned());
    }
    let same = |a: &String, b: &String| a.eq_ignore_ascii_case(b);
    let mut outside = Vec::new();
    let users: Vec<&str> = c
        .users
        .iter()
        .filter(|u| !signin.users.iter().any(|s| same(s, u)))
        .map(String::as_str)
        .collect();
    if !users.is_empty() {
        outside.push(format!("users {}", users.join(", ")));
    }
    let orgs: Vec<&str> = c
        .orgs
        .iter()
        .filter(|o| !signin.orgs.iter().any(|s| same(s, o)))
        .map(String::as_str)
        .collect();
    if !orgs.is_empty() {
        outside.push(format!("members of {}", orgs.join(", ")));
    }
    let teams: Vec<String> = c
        .teams
        .iter()
        .filter(|t| {
            !signin.orgs.iter().any(|s| same(s, &t.org))
                && !signin
                    .teams
                    .iter()
                    .any(|s| same(&s.org, &t.org) && same(&s.slug, &t.slug))
        })
        .map(ToString::to_string)
        .collect();
    if !teams.is_empty() {
        outside.push(format!("members of {}", teams.join(", ")));
    }
    (!outside.is_empty()).then(|| outside.join(" and "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::testing::{MINIMAL, only_problem, parse, problems, with_rules};

    #[test]
    fn live_revocation_is_on_and_webhooks_off_by_default() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.revocation.watch_for, Duration::from_secs(86_400));
        assert!(c.revocation.terminate_connections);
        assert!(c.webhooks.is_none());
        let off = parse(&format!("{MINIMAL}\n[revocation]\nwatch_for = \"0s\"\n")).unwrap();
        assert!(off.revocation.watch_for.is_zero());
        let p = only_problem(&format!("{MINIMAL}\n[revocation]\nwatch_for = \"a day\"\n"));
        assert_eq!(p.key, "revocation.watch_for");
    }

    const SIGNIN: &str = "[signin]\norgs = [\"acme\"]\n";

    #[test]
    fn signin_is_not_required_by_default_and_waits_five_seconds_when_it_is() {
        let c = parse(MINIMAL).unwrap();
        assert!(!c.revocation.require_signin);
        assert_eq!(c.revocation.signin_wait, Duration::from_secs(5));
        let c = parse(&format!(
            "{MINIMAL}\n{SIGNIN}[revocation]\nrequire_signin = true\nsignin_wait = \"2s\"\n"
        ))
        .unwrap();
        assert!(c.revocation.require_signin);
        assert_eq!(c.revocation.signin_wait, Duration::from_secs(2));
        assert!(
            c.signin_warnings().is_empty(),
            "no rules, nothing to warn about"
        );
    }

    #[test]
    fn a_signin_wait_of_nothing_or_of_minutes_is_refused_by_name() {
        for (wait, says) in [
            ("0s", "must be at least 1s"),
            ("2m", "\"2m\" is too long"),
            ("soon", "is not a duration"),
        ] {
            let p = only_problem(&format!(
                "{MINIMAL}\n[revocation]\nsignin_wait = \"{wait}\"\n"
            ));
            assert_eq!(p.key, "revocation.signin_wait");
            assert!(p.message.contains(says), "{wait}: {}", p.message);
        }
        let p = only_problem(&format!("{MINIMAL}\n[revocation]\nsignin_wait = \"30s\"\n"));
        assert!(
            p.message
                .contains("not shorter than server.request_timeout (30s)"),
            "{}",
            p.message
        );
        let c = parse(&format!(
            "{MINIMAL}\n[server]\nrequest_timeout = \"2m\"\n[revocation]\nsignin_wait = \"1m\"\n"
        ))
        .unwrap();
        assert_eq!(c.revocation.signin_wait, Duration::from_secs(60));
    }

    #[test]
    fn require_signin_without_a_signin_section_is_refused_naming_both() {
        let p = only_problem(&format!("{MINIMAL}\n[revocation]\nrequire_signin = true\n"));
        assert_eq!(p.key, "revocation.require_signin");
        assert_eq!(p.line, Some(12));
        assert!(p.message.contains("no [signin] section"), "{}", p.message);
        // Said false, it needs nothing.
        assert!(
            parse(&format!(
                "{MINIMAL}\n[revocation]\nrequire_signin = false\n"
            ))
            .is_ok()
        );
        // A broken [signin] is reported once, as itself.
        let list = problems(&format!(
            "{MINIMAL}\n[signin]\n[revocation]\nrequire_signin = true\n"
        ));
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].key, "signin");
    }

    #[test]
    fn require_signin_with_revocation_off_is_refused() {
        let p = only_problem(&format!(
            "{MINIMAL}\n{SIGNIN}[revocation]\nrequire_signin = true\nwatch_for = \"0s\"\n"
        ));
        assert_eq!(p.key, "revocation.require_signin");
        assert!(p.message.contains("watch_for is \"0s\""), "{}", p.message);
    }

    #[test]
    fn rules_that_admit_people_signin_does_not_are_warned_about_by_name() {
        let text = with_rules(&format!(
            r#"{SIGNIN}
[[rules]]
channel = "private-acme-*"
orgs = ["ACME"]
[[rules]]
channel = "private-ops"
teams = ["acme/ops", "globex/ops"]
[[rules]]
channel = "private-user-{{login}}"
[[rules]]
channel = "presence-lobby"
everyone = true
[[rules]]
channel = "private-x"
users = ["octocat"]
orgs = ["acme"]
[revocation]
require_signin = true
"#
        ));
        let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let warned: Vec<(String, String)> = c
            .signin_warnings()
            .into_iter()
            .map(|w| (w.key, w.message))
            .collect();
        let keys: Vec<&str> = warned.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["rules[1]", "rules[2]", "rules[3]", "rules[4]"],
            "{warned:#?}"
        );
        assert!(warned[0].1.starts_with("\"private-ops\" admits members of globex/ops, whom [signin] (orgs: acme) does not admit"), "{}", warned[0].1);
        assert!(
            warned[1].1.contains("anyone its placeholders fit"),
            "{}",
            warned[1].1
        );
        assert!(
            warned[2].1.contains("every logged-in person"),
            "{}",
            warned[2].1
        );
        assert!(
            warned[3].1.contains("admits users octocat,"),
            "{}",
            warned[3].1
        );
        // Without require_signin, nothing to warn about.
        let off = parse(&text.replace("require_signin = true", "require_signin = false")).unwrap();
        assert!(off.signin_warnings().is_empty());
        // [signin] everyone = true admits whoever any rule does.
        let everyone = parse(&text.replace(SIGNIN, "[signin]\neveryone = true\n")).unwrap();
        assert!(everyone.signin_warnings().is_empty());
        // Teams are admitted by their org or by name.
        let teams = parse(&text.replace(
            SIGNIN,
            "[signin]\norgs = [\"acme\"]\nteams = [\"Globex/OPS\"]\nusers = [\"octocat\"]\n",
        ))
        .unwrap();
        let keys: Vec<String> = teams.signin_warnings().into_iter().map(|w| w.key).collect();
        assert_eq!(keys, ["rules[2]", "rules[3]"]);
    }
}
