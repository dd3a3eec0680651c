//! Rules that would hand a channel to whoever registers the right GitHub name.
//!
//! Anyone can register a free GitHub login, or create an org, be its active
//! member and create any team in it, so `{login}`, `{org}` and `{team}` can
//! be filled with any name an attacker picks. `{id}` cannot be chosen, but
//! every small id belongs to someone: `private-inbox-{id}` beside a team's
//! `private-inbox-1` hands the team's inbox to GitHub's user 1. With
//! `private-user-{login}` beside `private-user-admins`, whoever registers
//! the login `admins` is given the admins' channel. This module finds such
//! pairs before the gateway serves a single request.
//!
//! Two rules A and B collide when some channel matched by both could be
//! produced by filling A's `{login}` or `{org}` with attacker-chosen values
//! that B does not bind to the very same part of the channel. (When B binds
//! the same part, B's channel belongs to the same login or to members of the
//! same org, which the attacker cannot choose to be; `{team}` needs no check
//! of its own, since a team is only chosen freely in an org chosen freely.)
//!
//! The search runs both patterns side by side over one channel, character by
//! character (a product of two small automata), tracking where each
//! placeholder starts and ends, and stops at the first channel that shows the
//! collision: that channel and the attacker's names are the witness shown to
//! the admin. Pure code, like the rest of the rule engine.

use std::collections::{HashMap, VecDeque};

use super::pattern::Segment;
use super::{Pattern, Placeholder};
use crate::channel::{ChannelKind, MAX_CHANNEL_NAME_LEN};

/// The longest GitHub login or organisation name.
const MAX_NAME_LEN: u8 = 39;
/// The longest team slug the gateway accepts from GitHub.
const MAX_SLUG_LEN: u8 = 100;
/// The longest numeric id (`u64::MAX` has 20 digits).
const MAX_ID_LEN: u8 = 20;
/// A `private-` channel that begins with this is of another kind.
const ENCRYPTED: &[u8] = b"private-encrypted-";
/// Every character of a channel name, in the order the search tries them,
/// so that witnesses read naturally (`admins`, `acme-a`, `1`).
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.,;=@";

/// Two rules whose patterns let a chosen GitHub name reach the other's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// Index of the rule whose placeholder an attacker fills.
    pub filled: usize,
    /// Index of the rule whose channel they reach.
    pub other: usize,
    /// An example channel both rules match.
    pub channel: String,
    /// The names that produce it through rule `filled`, such as `{login}` = `admins`.
    pub names: Vec<(Placeholder, String)>,
    /// A pattern for rule `filled` that no longer collides with rule `other`, if one was found.
    pub suggestion: Option<String>,
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .names
            .iter()
            .filter(|(p, _)| *p != Placeholder::Id)
            .map(|(p, v)| format!("{} {v:?}", chosen(*p)))
            .collect();
        let id = self.names.iter().find(|(p, _)| *p == Placeholder::Id);
        let (who, why) = match id {
            None => (
                format!("whoever registers {}", names.join(" and ")),
                "anyone can register a free GitHub login, or create an org and any team in it",
            ),
            Some((_, id)) if names.is_empty() => (
                format!("the GitHub user with id {id}"),
                "every small id belongs to someone",
            ),
            Some((_, id)) => (
                format!(
                    "the GitHub user with id {id}, registering {}",
                    names.join(" and ")
                ),
                "every small id belongs to someone, and anyone can register a free GitHub login, or create an org and any team in it",
            ),
        };
        write!(
            f,
            "{who} gets {:?} through rules[{}], a channel rules[{}] also matches ({why}); give the rules distinct prefixes",
            self.channel, self.filled, self.other
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, ", such as {s:?} for rules[{}]", self.filled)?;
        }
        Ok(())
    }
}

/// What an attacker registers to fill a placeholder, in words.
fn chosen(p: Placeholder) -> &'static str {
    match p {
        Placeholder::Login => "the login",
        Placeholder::Org => "an org named",
        Placeholder::Team => "a team named",
        Placeholder::Id => "the id",
    }
}

/// Every colliding pair among `patterns` (in rule order), once per pair.
pub fn find(patterns: &[&Pattern]) -> Vec<Collision> {
    let mut found: Vec<Collision> = Vec::new();
    for (a, pa) in patterns.iter().enumerate() {
        for (b, pb) in patterns.iter().enumerate() {
            if a == b || found.iter().any(|c| c.filled == b && c.other == a) {
                continue;
            }
            if let Some((channel, names)) = witness(pa, pb) {
                found.push(Collision {
                    filled: a,
                    other: b,
                    channel,
                    names,
                    suggestion: suggest(pa, pb),
                });
            }
        }
    }
    found
}

/// A channel that `filled`, with attacker-chosen names (or someone's id),
/// and `other` both match without `other` binding those values to the same
/// places; with the values. `None` when there is none.
pub fn witness(filled: &Pattern, other: &Pattern) -> Option<(String, Vec<(Placeholder, String)>)> {
    let tracked: Vec<Placeholder> = [Placeholder::Login, Placeholder::Org, Placeholder::Id]
        .into_iter()
        .filter(|&p| filled.has(p))
        .collect();
    if tracked.is_empty() || filled.kind() != other.kind() {
        return None;
    }
    Search::new(filled, other, tracked).run()
}

/// A pattern for `filled` that no longer collides with `other`: the `-`
/// before its first chosen placeholder turned into a `.`, which no GitHub
/// name contains (`private-user-{login}` becomes `private-user.{login}`).
fn suggest(filled: &Pattern, other: &Pattern) -> Option<String> {
    let first = filled
        .segments
        .iter()
        .position(|s| matches!(s, Segment::Var(_)))?;
    let mut source = String::new();
    for (i, segment) in filled.segments.iter().enumerate() {
        match segment {
            Segment::Literal(l) if i + 1 == first => match l.strip_suffix('-') {
                // The kind's own dash must stay: `private-{login}` becomes `private-u.{login}`.
                Some(head) if !matches!(head, "private" | "presence" | "private-encrypted") => {
                    source.push_str(head);
                    source.push('.');
                }
                _ => {
                    source.push_str(l);
                    source.push_str("u.");
                }
            },
            Segment::Literal(l) => source.push_str(l),
            Segment::Var(v) => source.push_str(v.name()),
        }
    }
    if filled.star {
        source.push('*');
    }
    let fixed = Pattern::parse(&source).ok()?;
    (witness(&fixed, other).is_none() && witness(other, &fixed).is_none()).then_some(source)
}

/// A channel both patterns match, and the values that fill it.
type Witness = (String, Vec<(Placeholder, String)>);

/// One pattern as a sequence of tokens: a literal character or a placeholder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(u8),
    Var(Placeholder),
}

struct Automaton {
    tokens: Vec<Token>,
    star: bool,
}

/// Where an automaton stands: before token `k`, or inside placeholder
/// token `k` having read `n` characters of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum State {
    At(u16),
    In(u16, u8),
}

/// What a step did to placeholders: one may end, then one may start.
#[derive(Clone, Copy, Default)]
struct Events {
    ended: Option<Placeholder>,
    started: Option<Placeholder>,
}

fn longest(p: Placeholder) -> u8 {
    match p {
        Placeholder::Login | Placeholder::Org => MAX_NAME_LEN,
        Placeholder::Team => MAX_SLUG_LEN,
        Placeholder::Id => MAX_ID_LEN,
    }
}

fn fits(p: Placeholder, c: u8) -> bool {
    p.may_contain(char::from(c))
}

impl Automaton {
    fn of(pattern: &Pattern) -> Self {
        let mut tokens = Vec::new();
        for segment in &pattern.segments {
            match segment {
                Segment::Literal(l) => tokens.extend(l.bytes().map(Token::Char)),
                Segment::Var(v) => tokens.push(Token::Var(*v)),
            }
        }
        Self {
            tokens,
            star: pattern.star,
        }
    }

    /// Every way to read `c` from `state`.
    fn step(&self, state: State, c: u8, out: &mut Vec<(State, Events)>) {
        match state {
            State::At(k) => self.enter(k, c, Events::default(), out),
            State::In(k, n) => {
                let Token::Var(p) = self.tokens[usize::from(k)] else {
                    unreachable!("inside a placeholder token")
                };
                if n < longest(p) && fits(p, c) {
                    out.push((State::In(k, n + 1), Events::default()));
                }
                let ended = Events {
                    ended: Some(p),
                    started: None,
                };
                self.enter(k + 1, c, ended, out);
            }
        }
    }

    /// Reads `c` standing before token `k`.
    fn enter(&self, k: u16, c: u8, mut events: Events, out: &mut Vec<(State, Events)>) {
        match self.tokens.get(usize::from(k)) {
            None if self.star => out.push((State::At(k), events)),
            None => {}
            Some(Token::Char(l)) if *l == c => out.push((State::At(k + 1), events)),
            Some(Token::Char(_)) => {}
            // An id never starts with a zero.
            Some(Token::Var(Placeholder::Id)) if c == b'0' => {}
            Some(Token::Var(p)) if fits(*p, c) => {
                events.started = Some(*p);
                out.push((State::In(k, 1), events));
            }
            Some(Token::Var(_)) => {}
        }
    }

    /// Whether the channel may end here, and what ending it closes.
    fn accepts(&self, state: State) -> Option<Events> {
        let end = u16::try_from(self.tokens.len()).expect("patterns are short");
        match state {
            State::At(k) if k == end => Some(Events::default()),
            State::In(k, _) if k + 1 == end => {
                let Token::Var(p) = self.tokens[usize::from(k)] else {
                    unreachable!("inside a placeholder token")
                };
                Some(Events {
                    ended: Some(p),
                    started: None,
                })
            }
            _ => None,
        }
    }
}

/// A value as GitHub would give it: a name with no `-` or `_` at either
/// end (an id's leading zero is never read at all).
fn plausible((p, value): &(Placeholder, String)) -> bool {
    let edge = ['-', '_'];
    *p == Placeholder::Id || !value.starts_with(edge) && !value.ends_with(edge)
}

/// Whether `other` can read `channel` as someone else's than the one the
/// `names` fill in: some reading of it binds a named placeholder to
/// another value, or not at all. (The search tracks where values start
/// and end, not what they are: `a{login}` and `{login}a` both read `aa`
/// with the login `a`, which is no witness; `aba` is.)
fn someone_elses(other: &Pattern, channel: &str, names: &[(Placeholder, String)]) -> bool {
    readings(other, channel).iter().any(|reading| {
        names
            .iter()
            .any(|(p, v)| reading.get(p).is_none_or(|w| !w.eq_ignore_ascii_case(v)))
    })
}

/// Every way `pattern` reads `channel` for *some* person: the values of
/// its placeholders, by plain backtracking over GitHub's alphabets.
fn readings(pattern: &Pattern, channel: &str) -> Vec<HashMap<Placeholder, String>> {
    fn go(
        segs: &[Segment],
        star: bool,
        rest: &str,
        got: &mut HashMap<Placeholder, String>,
        out: &mut Vec<HashMap<Placeholder, String>>,
    ) {
        let Some((first, more)) = segs.split_first() else {
            if star || rest.is_empty() {
                out.push(got.clone());
            }
            return;
        };
        match first {
            Segment::Literal(l) => {
                if let Some(after) = rest.strip_prefix(l.as_str()) {
                    go(more, star, after, got, out);
                }
            }
            Segment::Var(p) => {
                for len in 1..=rest.len().min(usize::from(longest(*p))) {
                    let value = &rest[..len];
                    if !value.chars().all(|c| p.may_contain(c)) {
                        break;
                    }
                    got.insert(*p, value.to_owned());
                    go(more, star, &rest[len..], got, out);
                    got.remove(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    if crate::channel::kind_of(channel) == pattern.kind() {
        go(
            &pattern.segments,
            pattern.star,
            channel,
            &mut HashMap::new(),
            &mut out,
        );
    }
    out
}

/// How a tracked placeholder of the filled pattern stands against the other.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Mirror {
    /// Not started yet.
    Before,
    /// Started at the same character in both; not ended yet.
    Together,
    /// Started and ended at the same characters in both: the same value.
    Same,
    /// Spans differ, or the other pattern does not bind it: a chosen name.
    Free,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Node {
    a: State,
    b: State,
    /// Characters of `private-encrypted-` matched so far; `u8::MAX` once
    /// the channel left that prefix. Only for `private-` patterns.
    encrypted: u8,
    mirror: [Mirror; 3],
}

struct Search {
    /// The other pattern, to check a witness's values.
    other: Pattern,
    a: Automaton,
    b: Automaton,
    tracked: Vec<Placeholder>,
    kind: ChannelKind,
}

impl Search {
    fn new(filled: &Pattern, other: &Pattern, tracked: Vec<Placeholder>) -> Self {
        Self {
            other: other.clone(),
            a: Automaton::of(filled),
            b: Automaton::of(other),
            tracked,
            kind: filled.kind(),
        }
    }

    fn update(&self, mirror: &mut [Mirror; 3], a: Events, b: Events) {
        for (i, &p) in self.tracked.iter().enumerate() {
            let m = &mut mirror[i];
            let (a_end, b_end) = (a.ended == Some(p), b.ended == Some(p));
            if *m == Mirror::Together && (a_end || b_end) {
                *m = if a_end && b_end {
                    Mirror::Same
                } else {
                    Mirror::Free
                };
            }
            let (a_start, b_start) = (a.started == Some(p), b.started == Some(p));
            if a_start && b_start {
                *m = Mirror::Together;
            } else if a_start || b_start {
                *m = Mirror::Free;
            }
        }
    }

    /// A witness: the first real one of a search in the alphabet's order,
    /// then of one starting at its second letter. (The search merges
    /// channels that leave both automata in the same state, so `aaa` can
    /// hide `aba`; another order finds that one first.) The pair is refused
    /// whatever the witness; only the example shown depends on this.
    fn run(&self) -> Option<Witness> {
        let mut rotated = ALPHABET.to_vec();
        rotated.rotate_left(1);
        match self.search(ALPHABET) {
            Some((found, true)) => Some(found),
            Some((found, false)) => match self.search(&rotated) {
                Some((better, true)) => Some(better),
                _ => Some(found),
            },
            None => None,
        }
    }

    /// Breadth-first over the product, so the witness is a shortest channel;
    /// with whether it is a real one.
    fn search(&self, alphabet: &[u8]) -> Option<(Witness, bool)> {
        let start = Node {
            a: State::At(0),
            b: State::At(0),
            encrypted: if self.kind == ChannelKind::Private {
                0
            } else {
                u8::MAX
            },
            mirror: [Mirror::Before; 3],
        };
        // How each node was first reached: its parent, the character read
        // and what the filled pattern did with it.
        let mut parent: HashMap<Node, (Node, u8, Events)> = HashMap::new();
        let mut depth: HashMap<Node, usize> = HashMap::from([(start, 0)]);
        let mut queue = VecDeque::from([start]);
        let (mut a_moves, mut b_moves) = (Vec::new(), Vec::new());
        // A witness GitHub could not give (a name that begins or ends with
        // `-` or `_`, an id with a leading zero), or one the other pattern
        // reads as the same person's, is kept only in case no other turns up:
        // the pair is refused either way, but the message shows a real one.
        let mut awkward = None;
        while let Some(node) = queue.pop_front() {
            if let Some(found) = self.accepted(node, &parent) {
                if found.1.iter().all(plausible) && someone_elses(&self.other, &found.0, &found.1) {
                    return Some((found, true));
                }
                awkward.get_or_insert(found);
            }
            if depth[&node] == MAX_CHANNEL_NAME_LEN {
                continue;
            }
            for &c in alphabet {
                let encrypted = match node.encrypted {
                    u8::MAX => u8::MAX,
                    n if ENCRYPTED[usize::from(n)] == c => n + 1,
                    _ => u8::MAX,
                };
                if usize::from(encrypted) == ENCRYPTED.len() {
                    continue; // a private-encrypted- channel: another kind
                }
                a_moves.clear();
                b_moves.clear();
                self.a.step(node.a, c, &mut a_moves);
                self.b.step(node.b, c, &mut b_moves);
                for &(a, ea) in &a_moves {
                    for &(b, eb) in &b_moves {
                        let mut mirror = node.mirror;
                        self.update(&mut mirror, ea, eb);
                        let next = Node {
                            a,
                            b,
                            encrypted,
                            mirror,
                        };
                        if !depth.contains_key(&next) {
                            depth.insert(next, depth[&node] + 1);
                            parent.insert(next, (node, c, ea));
                            queue.push_back(next);
                        }
                    }
                }
            }
        }
        awkward.map(|found| (found, false))
    }

    /// At an accepting node that shows a chosen name, the channel and names.
    fn accepted(
        &self,
        node: Node,
        parent: &HashMap<Node, (Node, u8, Events)>,
    ) -> Option<(String, Vec<(Placeholder, String)>)> {
        let (ea, eb) = (self.a.accepts(node.a)?, self.b.accepts(node.b)?);
        let mut mirror = node.mirror;
        self.update(&mut mirror, ea, eb);
        if !mirror[..self.tracked.len()].contains(&Mirror::Free) {
            return None;
        }
        // Walk back to the start, then read the names off the filled
        // pattern's placeholder events.
        let mut steps = Vec::new();
        let mut at = node;
        while let Some(&(prev, c, events)) = parent.get(&at) {
            steps.push((c, events));
            at = prev;
        }
        steps.reverse();
        let channel: String = steps.iter().map(|&(c, _)| char::from(c)).collect();
        let mut names: Vec<(Placeholder, String)> = Vec::new();
        let mut open: Option<(Placeholder, usize)> = None;
        let mut close = |open: &mut Option<(Placeholder, usize)>, end: usize| {
            if let Some((p, from)) = open.take() {
                names.push((p, channel[from..end].to_owned()));
            }
        };
        for (i, (_, events)) in steps.iter().enumerate() {
            if events.ended.is_some() {
                close(&mut open, i);
            }
            if let Some(p) = events.started {
                open = Some((p, i));
            }
        }
        close(&mut open, channel.len());
        Some((channel, names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::kind_of;
    use proptest::prelude::*;

    fn pattern(s: &str) -> Pattern {
        Pattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn collides(a: &str, b: &str) -> Option<Collision> {
        find(&[&pattern(a), &pattern(b)]).into_iter().next()
    }

    #[test]
    fn the_design_refuses_pairs_a_chosen_name_can_bridge() {
        for (a, b, channel, names) in [
            (
                "private-user-{login}",
                "private-user-admins",
                "private-user-admins",
                "{login} admins",
            ),
            (
                "private-user-{login}",
                "private-user-{id}",
                "private-user-1",
                "{login} 1",
            ),
            (
                "private-{login}",
                "private-supersecretchat",
                "private-supersecretchat",
                "{login} supersecretchat",
            ),
            (
                "presence-org-{org}",
                "presence-org-acme-*",
                "presence-org-acme-a",
                "{org} acme-a",
            ),
            (
                "private-{team}.{org}",
                "private-acme.*",
                "private-acme.a",
                "{team} acme, {org} a",
            ),
        ] {
            let c = collides(a, b).unwrap_or_else(|| panic!("{a} beside {b} is refused"));
            assert_eq!((c.filled, c.other), (0, 1), "{a} / {b}");
            assert_eq!(c.channel, channel, "{a} / {b}");
            let shown: Vec<String> = c
                .names
                .iter()
                .map(|(p, v)| format!("{} {v}", p.name()))
                .collect();
            assert_eq!(shown.join(", "), names, "{a} / {b}");
            // Whichever order the rules come in.
            assert!(collides(b, a).is_some(), "{b} / {a}");
        }
    }

    #[test]
    fn the_design_accepts_pairs_no_name_can_bridge() {
        for (a, b) in [
            ("private-user-{login}", "private-acme-*"),
            ("private-acme-*", "private-acme-roadmap"),
            ("private-user-{login}", "private-user-{login}"),
            ("presence-org-{org}", "presence-org-{org}"),
            ("private-team-{org}.{team}", "private-team-{org}.*"),
            ("private-{login}", "private-encrypted-inbox-{id}"),
            ("private-{login}", "private-encrypted-supersecretchat"),
            ("private-user.{login}", "private-user-admins"),
            ("private-inbox-{id}", "private-inbox-admins"),
            // No GitHub id has a leading zero.
            ("private-inbox-{id}", "private-inbox-05"),
            ("private-inbox-{id}", "private-inbox-{id}"),
        ] {
            assert_eq!(collides(a, b), None, "{a} beside {b}");
        }
    }

    #[test]
    fn a_renamed_member_cannot_take_a_colleagues_channel() {
        // Inside one org, {login} is still chosen freely by each member.
        assert!(collides("private-{org}.{login}", "private-{org}.admins").is_some());
        // A name longer than GitHub allows cannot be registered.
        let long = format!("private-{}", "a".repeat(40));
        assert_eq!(collides("private-{login}", &long), None);
        let fits = format!("private-{}", "a".repeat(39));
        assert!(collides("private-{login}", &fits).is_some());
    }

    #[test]
    fn an_id_beside_a_number_it_could_be_is_refused() {
        // GitHub's user 5 would get the team's inbox.
        let c = collides("private-inbox-{id}", "private-inbox-5").expect("refused");
        assert_eq!(
            (c.filled, c.other, c.channel.as_str()),
            (0, 1, "private-inbox-5")
        );
        assert_eq!(
            c.to_string(),
            r#"the GitHub user with id 5 gets "private-inbox-5" through rules[0], a channel rules[1] also matches (every small id belongs to someone); give the rules distinct prefixes, such as "private-inbox.{id}" for rules[0]"#
        );
        assert!(collides("private-{id}.inbox", "private-1*").is_some());
    }

    #[test]
    fn a_witness_is_someone_elses_channel_not_the_shortest_reading() {
        // Both read "private-encrypted-aa" as the login "a"'s: no witness.
        let c = collides("private-encrypted-a{login}", "private-encrypted-{login}a").unwrap();
        let other = pattern("private-encrypted-{login}a");
        assert!(
            someone_elses(&other, &c.channel, &c.names),
            "{} with {:?}",
            c.channel,
            c.names
        );
    }

    #[test]
    fn the_message_names_both_rules_the_name_and_a_fix() {
        let c = collides("private-user-{login}", "private-user-admins").unwrap();
        assert_eq!(
            c.to_string(),
            r#"whoever registers the login "admins" gets "private-user-admins" through rules[0], a channel rules[1] also matches (anyone can register a free GitHub login, or create an org and any team in it); give the rules distinct prefixes, such as "private-user.{login}" for rules[0]"#
        );
        let c = collides("private-{login}", "private-x").unwrap();
        assert_eq!(c.suggestion.as_deref(), Some("private-u.{login}"));
    }

    // ---- an independent oracle for the property test ----------------------

    /// A channel the attacker gets through `filled` by choosing `names`
    /// that `other` grants to someone bound otherwise.
    fn attack(filled: &Pattern, other: &Pattern, names: &[&str; 3], tail: &str) -> Option<String> {
        let mut channel = String::new();
        let mut chosen = HashMap::new();
        for segment in &filled.segments {
            match segment {
                Segment::Literal(l) => channel.push_str(l),
                Segment::Var(p) => {
                    let value = match p {
                        Placeholder::Login => names[0],
                        Placeholder::Org => names[1],
                        Placeholder::Team => names[2],
                        Placeholder::Id => "7",
                    };
                    chosen.insert(*p, value.to_owned());
                    channel.push_str(value);
                }
            }
        }
        if filled.star {
            channel.push_str(tail);
        }
        if kind_of(&channel) != filled.kind() || channel.len() > MAX_CHANNEL_NAME_LEN {
            return None; // the gateway never grants it through `filled`
        }
        let same = |reading: &HashMap<Placeholder, String>, p: Placeholder| {
            !filled.has(p)
                || reading
                    .get(&p)
                    .is_some_and(|v| v.eq_ignore_ascii_case(&chosen[&p]))
        };
        readings(other, &channel)
            .iter()
            .any(|r| {
                !(same(r, Placeholder::Login)
                    && same(r, Placeholder::Org)
                    && same(r, Placeholder::Id))
            })
            .then_some(channel)
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a",
            "b",
            "ab",
            "-",
            ".",
            "1",
            "a-b",
            "-a",
            "{login}",
            "{org}",
            "{team}",
            "{id}",
            "encrypted-",
        ])
    }

    fn generated() -> impl Strategy<Value = Pattern> {
        (
            prop::sample::select(vec!["private-", "presence-", "private-encrypted-"]),
            prop::collection::vec(piece(), 0..4),
            any::<bool>(),
        )
            .prop_filter_map("not a valid pattern", |(kind, pieces, star)| {
                let source = format!("{kind}{}{}", pieces.concat(), if star { "*" } else { "" });
                Pattern::parse(&source).ok()
            })
    }

    const NAMES: &[&str] = &["a", "b", "1", "ab", "a-b", "b-1", "-", "encrypted-x"];
    const TAILS: &[&str] = &["", "a", "1", ".a", "-b", "b.a"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// For every pair of rules check-config accepts, no choice of short
        /// names fills one rule into a channel the other grants to someone else.
        #[test]
        fn accepted_pairs_give_no_chosen_name_another_rules_channel(a in generated(), b in generated()) {
            prop_assume!(find(&[&a, &b]).is_empty());
            for login in NAMES {
                for org in NAMES {
                    for team in NAMES {
                        for tail in TAILS {
                            for (filled, other) in [(&a, &b), (&b, &a)] {
                                let hit = attack(filled, other, &[login, org, team], tail);
                                prop_assert!(hit.is_none(), "{} beside {}: {:?}", filled, other, hit);
                            }
                        }
                    }
                }
            }
        }

        /// Every refusal comes with a witness that really is such a channel.
        #[test]
        fn every_refusal_shows_a_real_witness(a in generated(), b in generated()) {
            for c in find(&[&a, &b]) {
                let (filled, other) = if c.filled == 0 { (&a, &b) } else { (&b, &a) };
                prop_assert!(readings(filled, &c.channel).iter().any(|r| {
                    c.names.iter().all(|(p, v)| r.get(p) == Some(v))
                }), "{} does not read {} with {:?}", filled, c.channel, c.names);
                let names: HashMap<Placeholder, &String> = c.names.iter().map(|(p, v)| (*p, v)).collect();
                prop_assert!(readings(other, &c.channel).iter().any(|r| {
                    [Placeholder::Login, Placeholder::Org, Placeholder::Id].iter().any(|p| {
                        names.get(p).is_some_and(|v| r.get(p).is_none_or(|w| !w.eq_ignore_ascii_case(v)))
                    })
                }), "{} beside {}: {} is no witness", filled, other, c.channel);
            }
        }
    }
}
