//! Channel patterns: `private-team-{org}.{team}`, `private-acme-*`.
//!
//! A [`Pattern`] is parsed once and refused when it could be ambiguous: a
//! placeholder followed by another placeholder or by `*` must be followed by
//! a character its values never hold. Matching fills placeholders only from
//! the caller's own identity, never from the channel name, and a pattern
//! matches channels of its own kind only. Pure code.

use std::fmt;

use super::{Person, TeamRef, is_github_name_char};
use crate::channel::{ChannelKind, is_channel_name_char, kind_of};

/// A value taken from the caller's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `{login}`: the caller's login.
    Login,
    /// `{id}`: the caller's numeric id.
    Id,
    /// `{org}`: an org in which the caller is an active member.
    Org,
    /// `{team}`: a team of `{org}` of which the caller is a member.
    Team,
}

impl Placeholder {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Login => "{login}",
            Self::Id => "{id}",
            Self::Org => "{org}",
            Self::Team => "{team}",
        }
    }

    /// Whether a value of this placeholder can contain `c`.
    pub(super) fn may_contain(self, c: char) -> bool {
        match self {
            Self::Id => c.is_ascii_digit(),
            Self::Login | Self::Org | Self::Team => is_github_name_char(c),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Literal(String),
    Var(Placeholder),
}

/// Why a channel pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern does not begin with an authorized prefix.
    #[error(
        "{0:?} must begin with private-, private-encrypted- or presence- (public channels need no gateway)"
    )]
    Prefix(String),
    /// `{name}` is not a placeholder.
    #[error("{0} is not a placeholder; use {{login}}, {{id}}, {{org}} or {{team}}")]
    UnknownPlaceholder(String),
    /// A `{` without its `}`, or a `}` without its `{`.
    #[error("unbalanced brace in {0:?}")]
    Brace(String),
    /// A placeholder used twice.
    #[error("{0} appears twice; each placeholder may appear once")]
    Repeated(&'static str),
    /// `{team}` needs `{org}` to say which org the team belongs to.
    #[error(
        "{{team}} needs {{org}} in the same pattern, such as \"private-team-{{org}}.{{team}}\""
    )]
    TeamWithoutOrg,
    /// `*` somewhere other than the end.
    #[error("* may only appear at the end of a pattern")]
    Star,
    /// A character no channel name may contain.
    #[error("{0:?} cannot appear in a channel name (allowed: A-Z a-z 0-9 _ - = @ , . ;)")]
    Character(char),
    /// A placeholder runs into the next one, or into `*`, with nothing that
    /// marks where it ends.
    #[error(
        "{left} and {right} are not separated by a character that {left} can never contain, so two different people could get the same channel; write {suggestion:?}"
    )]
    Ambiguous {
        /// The placeholder whose end cannot be found.
        left: &'static str,
        /// What follows it: a placeholder or `*`.
        right: &'static str,
        /// The pattern with a `.` separator put in.
        suggestion: String,
    },
}

/// A channel pattern such as `private-team-{org}.{team}` or `private-acme-*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    pub(super) segments: Vec<Segment>,
    /// Ends with `*`: any rest of a valid channel name, including none.
    pub(super) star: bool,
    /// The kind of every channel it matches, fixed by its literal prefix:
    /// a `private-` pattern never matches a `private-encrypted-` channel,
    /// however its placeholders are filled.
    kind: ChannelKind,
}

const PREFIXES: [&str; 3] = ["private-encrypted-", "private-", "presence-"];

impl Pattern {
    /// Parses and checks a pattern.
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        let (body, star) = match source.strip_suffix('*') {
            Some(body) => (body, true),
            None => (source, false),
        };
        if body.contains('*') {
            return Err(PatternError::Star);
        }
        let mut segments = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let (name, after) = after
                    .split_once('}')
                    .ok_or_else(|| PatternError::Brace(source.to_owned()))?;
                let var = match name {
                    "login" => Placeholder::Login,
                    "id" => Placeholder::Id,
                    "org" => Placeholder::Org,
                    "team" => Placeholder::Team,
                    _ if name.contains('{') => return Err(PatternError::Brace(source.to_owned())),
                    _ => return Err(PatternError::UnknownPlaceholder(format!("{{{name}}}"))),
                };
                if segments.contains(&Segment::Var(var)) {
                    return Err(PatternError::Repeated(var.name()));
                }
                segments.push(Segment::Var(var));
                rest = after;
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let literal = &rest[..end];
                if literal.contains('}') {
                    return Err(PatternError::Brace(source.to_owned()));
                }
                if let Some(c) = literal.chars().find(|&c| !is_channel_name_char(c)) {
                    return Err(PatternError::Character(c));
                }
                segments.push(Segment::Literal(literal.to_owned()));
                rest = &rest[end..];
            }
        }
        let literal_prefix = match segments.first() {
            Some(Segment::Literal(l)) => l.as_str(),
            _ => "",
        };
        if !PREFIXES.iter().any(|p| literal_prefix.starts_with(p)) {
            return Err(PatternError::Prefix(source.to_owned()));
        }
        let has = |v| segments.contains(&Segment::Var(v));
        if has(Placeholder::Team) && !has(Placeholder::Org) {
            return Err(PatternError::TeamWithoutOrg);
        }
        let kind = kind_of(literal_prefix);
        let pattern = Self {
            source: source.to_owned(),
            segments,
            star,
            kind,
        };
        pattern.check_separators()?;
        Ok(pattern)
    }

    /// Every placeholder followed by another placeholder or by `*` must be
    /// followed by a literal holding a character that placeholder's values
    /// never contain. Then the first such character marks where the value
    /// ends, and no two identities can render the same channel.
    fn check_separators(&self) -> Result<(), PatternError> {
        for (i, seg) in self.segments.iter().enumerate() {
            let Segment::Var(left) = *seg else { continue };
            let (between, right) = match &self.segments[i + 1..] {
                [] if self.star => ("", "*"),
                [] => continue,
                [Segment::Var(r), ..] => ("", r.name()),
                [Segment::Literal(l)] if self.star => (l.as_str(), "*"),
                [Segment::Literal(_)] => continue,
                [Segment::Literal(l), Segment::Var(r), ..] => (l.as_str(), r.name()),
                [Segment::Literal(_), Segment::Literal(_), ..] => unreachable!("literals merge"),
            };
            if between.chars().all(|c| left.may_contain(c)) {
                return Err(PatternError::Ambiguous {
                    left: left.name(),
                    right,
                    suggestion: self.with_separator_after(i),
                });
            }
        }
        Ok(())
    }

    /// The source with a `.` put after segment `i`, replacing a leading `-`
    /// or `_` of the literal that follows: `{org}-{team}` becomes `{org}.{team}`.
    fn with_separator_after(&self, i: usize) -> String {
        let mut out = String::new();
        for (j, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Var(v) => out.push_str(v.name()),
                Segment::Literal(l) if j == i + 1 => match l.strip_prefix(['-', '_']) {
                    Some(rest) => {
                        out.push('.');
                        out.push_str(rest);
                    }
                    None => {
                        out.push('.');
                        out.push_str(l);
                    }
                },
                Segment::Literal(l) => out.push_str(l),
            }
            if j == i && !matches!(self.segments.get(i + 1), Some(Segment::Literal(_))) {
                out.push('.');
            }
        }
        if self.star {
            out.push('*');
        }
        out
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern holds a placeholder (and so depends on the caller).
    pub fn has_placeholder(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Var(_)))
    }

    /// Whether the pattern ends with `*`.
    pub fn is_wildcard(&self) -> bool {
        self.star
    }

    /// Whether the pattern holds `placeholder`.
    pub fn has(&self, placeholder: Placeholder) -> bool {
        self.segments.contains(&Segment::Var(placeholder))
    }

    /// The kind of channel it matches (never [`ChannelKind::Public`]).
    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// Matches `channel` for `person`, filling placeholders from the person's
    /// identity only. Returns the values used, or `None`. A channel of
    /// another kind never matches, so `private-{login}` cannot be filled into
    /// `private-encrypted-...` by a login such as `encrypted-inbox-1`.
    pub(super) fn matches<'p>(&self, channel: &str, person: &'p Person) -> Option<Binding<'p>> {
        if kind_of(channel) != self.kind {
            return None;
        }
        let mut binding = Binding::default();
        self.match_from(&self.segments, channel, person, &mut binding)
            .then_some(binding)
    }

    fn match_from<'p>(
        &self,
        segments: &[Segment],
        rest: &str,
        person: &'p Person,
        binding: &mut Binding<'p>,
    ) -> bool {
        let Some((first, more)) = segments.split_first() else {
            return self.star || rest.is_empty();
        };
        let next = |value: &str, ignore_case: bool, binding: &mut Binding<'p>| {
            strip_prefix(rest, value, ignore_case)
                .is_some_and(|after| self.match_from(more, after, person, binding))
        };
        match first {
            Segment::Literal(l) => next(l, false, binding),
            Segment::Var(Placeholder::Login) if person.login_is_valid() => {
                binding.login = Some(&person.login);
                next(&person.login, true, binding)
            }
            Segment::Var(Placeholder::Login) => false,
            Segment::Var(Placeholder::Id) => {
                binding.id = Some(person.id);
                next(&person.id.to_string(), false, binding)
            }
            Segment::Var(Placeholder::Org) => {
                let bound = binding.org;
                for org in &person.orgs {
                    if bound.is_some_and(|b| !b.eq_ignore_ascii_case(org)) {
                        continue;
                    }
                    binding.org = Some(org);
                    if next(org, true, binding) {
                        return true;
                    }
                }
                binding.org = bound;
                false
            }
            Segment::Var(Placeholder::Team) => {
                let bound = binding.org;
                for team in person.active_teams() {
                    if bound.is_some_and(|b| !b.eq_ignore_ascii_case(&team.org)) {
                        continue;
                    }
                    binding.org = Some(&team.org);
                    binding.team = Some(team);
                    if next(&team.slug, true, binding) {
                        return true;
                    }
                }
                binding.org = bound;
                binding.team = None;
                false
            }
        }
    }
}

impl Pattern {
    /// Every channel (or, with `*`, channel prefix followed by `*`) this
    /// pattern names for `person`.
    pub(super) fn render(&self, person: &Person) -> Vec<String> {
        let mut out = vec![(String::new(), None::<&str>)];
        for segment in &self.segments {
            let mut next = Vec::new();
            for (text, org) in out {
                match segment {
                    Segment::Literal(l) => next.push((text + l, org)),
                    Segment::Var(Placeholder::Login) => {
                        if person.login_is_valid() {
                            next.push((text + &person.login, org));
                        }
                    }
                    Segment::Var(Placeholder::Id) => {
                        next.push((text + &person.id.to_string(), org))
                    }
                    Segment::Var(Placeholder::Org) => {
                        for o in &person.orgs {
                            if org.is_none_or(|b| b.eq_ignore_ascii_case(o)) {
                                next.push((text.clone() + o, Some(o.as_str())));
                            }
                        }
                    }
                    Segment::Var(Placeholder::Team) => {
                        for t in person.active_teams() {
                            if org.is_none_or(|b| b.eq_ignore_ascii_case(&t.org)) {
                                next.push((text.clone() + &t.slug, Some(t.org.as_str())));
                            }
                        }
                    }
                }
            }
            out = next;
        }
        out.into_iter()
            .map(|(mut text, _)| {
                if self.star {
                    text.push('*');
                }
                text
            })
            .collect()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn strip_prefix<'a>(s: &'a str, prefix: &str, ignore_case: bool) -> Option<&'a str> {
    let head = s.as_bytes().get(..prefix.len())?;
    let same = if ignore_case {
        head.eq_ignore_ascii_case(prefix.as_bytes())
    } else {
        head == prefix.as_bytes()
    };
    // An ASCII prefix that compared equal ends on a character boundary.
    same.then(|| &s[prefix.len()..])
}

/// The identity values a pattern was matched with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding<'p> {
    pub(super) login: Option<&'p str>,
    pub(super) id: Option<u64>,
    pub(super) org: Option<&'p str>,
    pub(super) team: Option<&'p TeamRef>,
}

impl fmt::Display for Binding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(login) = self.login {
            parts.push(format!("{{login}} = {login}"));
        }
        if let Some(id) = self.id {
            parts.push(format!("{{id}} = {id}"));
        }
        if let Some(org) = self.org {
            parts.push(format!("{{org}} = {org}"));
        }
        if let Some(team) = self.team {
            parts.push(format!("{{team}} = {}", team.slug));
        }
        f.write_str(&parts.join(", "))
    }
}
