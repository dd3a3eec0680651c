//! The stand-in's data set: people, their org and team memberships, built
//! with [`World`]'s builder methods.

use std::collections::HashMap;

use super::*;

/// The in-memory data set the stand-in answers from: people, their
/// organization memberships and their team memberships.
///
/// Build it with the chained helpers:
/// `World::new().user(1, "alice", Some("Alice")).org("alice", "acme", MembershipState::Active).team("alice", "acme", "ops")`.
/// Each helper finds what it replaces through an index, so building a world
/// of a hundred thousand people takes a moment, not minutes. The fields may
/// be read and edited directly too (start from [`World::new`] or
/// [`Default`]).
///
/// Logins, organization names and team slugs are compared case-insensitively,
/// as on GitHub; answers use the spelling stored here.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct World {
    /// The people who exist (and who can be chosen on the consent page).
    pub users: Vec<UserRecord>,
    /// Organization memberships, in the order the API lists them.
    pub orgs: Vec<OrgMembership>,
    /// Team memberships, in the order the API lists them.
    pub teams: Vec<TeamMembership>,
    /// Where the builder helpers find existing entries; not part of the
    /// world's value (equal in every world, not shown by `Debug`).
    pub(crate) index: BuilderIndex,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("users", &self.users)
            .field("orgs", &self.orgs)
            .field("teams", &self.teams)
            .finish()
    }
}

impl World {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a person with the default avatar URL for `id` (replacing any
    /// person with the same login).
    pub fn user(self, id: u64, login: &str, name: Option<&str>) -> Self {
        self.with_user(UserRecord::new(id, login, name))
    }

    /// Adds a fully specified person (replacing any person with the same login).
    pub fn with_user(mut self, user: UserRecord) -> Self {
        let key = user.login.to_ascii_lowercase();
        match self.index.users.find(&self.users, &key, user_key) {
            Some(i) => self.users[i] = user,
            None => {
                self.index.users.pushed(key, self.users.len());
                self.users.push(user);
            }
        }
        self
    }

    /// Makes `login` a member of `org` in `state` (replacing an earlier state).
    pub fn org(mut self, login: &str, org: &str, state: MembershipState) -> Self {
        let key = (login.to_ascii_lowercase(), org.to_ascii_lowercase());
        match self.index.orgs.find(&self.orgs, &key, org_key) {
            Some(i) => self.orgs[i].state = state,
            None => {
                self.index.orgs.pushed(key, self.orgs.len());
                self.orgs.push(OrgMembership {
                    login: login.to_owned(),
                    org: org.to_owned(),
                    state,
                });
            }
        }
        self
    }

    /// Puts `login` in team `slug` of `org` (a no-op when already there).
    pub fn team(mut self, login: &str, org: &str, slug: &str) -> Self {
        let key = (
            login.to_ascii_lowercase(),
            org.to_ascii_lowercase(),
            slug.to_ascii_lowercase(),
        );
        if self.index.teams.find(&self.teams, &key, team_key).is_none() {
            self.index.teams.pushed(key, self.teams.len());
            self.teams.push(TeamMembership {
                login: login.to_owned(),
                org: org.to_owned(),
                slug: slug.to_owned(),
            });
        }
        self
    }
}

pub(crate) fn user_key(u: &UserRecord) -> String {
    u.login.to_ascii_lowercase()
}

pub(crate) fn org_key(m: &OrgMembership) -> (String, String) {
    (m.login.to_ascii_lowercase(), m.org.to_ascii_lowercase())
}

pub(crate) fn team_key(t: &TeamMembership) -> (String, String, String) {
    (
        t.login.to_ascii_lowercase(),
        t.org.to_ascii_lowercase(),
        t.slug.to_ascii_lowercase(),
    )
}

/// The [`World`] builder's index of its three lists.
#[derive(Clone, Default)]
pub(crate) struct BuilderIndex {
    pub(crate) users: Positions<String>,
    pub(crate) orgs: Positions<(String, String)>,
    pub(crate) teams: Positions<(String, String, String)>,
}

impl PartialEq for BuilderIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for BuilderIndex {}

/// The first position of each key in a list, learnt as the list grows.
///
/// The list is a public field that may change behind the index's back, so
/// entries appended since the last look are indexed on the next one, a list
/// that shrank is indexed again, and a position whose entry no longer has
/// the key (edited in place) makes the whole index be built again.
#[derive(Clone)]
pub(crate) struct Positions<K> {
    first: HashMap<K, usize>,
    /// How many entries of the list are indexed.
    seen: usize,
}

impl<K> Default for Positions<K> {
    fn default() -> Self {
        Self {
            first: HashMap::new(),
            seen: 0,
        }
    }
}

impl<K: Eq + Hash> Positions<K> {
    /// The position of the first entry of `items` with `key`.
    pub(crate) fn find<T>(&mut self, items: &[T], key: &K, key_of: fn(&T) -> K) -> Option<usize> {
        for _ in 0..2 {
            if self.seen > items.len() {
                self.first.clear();
                self.seen = 0;
            }
            for (i, item) in items.iter().enumerate().skip(self.seen) {
                self.first.entry(key_of(item)).or_insert(i);
            }
            self.seen = items.len();
            match self.first.get(key) {
                None => return None,
                Some(&i) if key_of(&items[i]) == *key => return Some(i),
                Some(_) => {
                    self.first.clear();
                    self.seen = 0;
                }
            }
        }
        None
    }

    /// Learns that an entry with `key` (not in the list) is being appended
    /// at `at`, unless entries before it are yet to be indexed.
    pub(crate) fn pushed(&mut self, key: K, at: usize) {
        if self.seen == at {
            self.first.insert(key, at);
            self.seen = at + 1;
        }
    }
}

/// A person on the stand-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecord {
    /// GitHub's numeric user id.
    pub id: u64,
    /// The login (user name).
    pub login: String,
    /// The display name; `null` in the API when absent.
    pub name: Option<String>,
    /// The avatar image URL.
    pub avatar_url: String,
}

impl UserRecord {
    /// A person with GitHub's usual avatar URL for `id`
    /// (`https://avatars.githubusercontent.com/u/ID?v=4`).
    pub fn new(id: u64, login: &str, name: Option<&str>) -> Self {
        Self {
            id,
            login: login.to_owned(),
            name: name.map(str::to_owned),
            avatar_url: format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        }
    }
}

/// The state of an organization membership, as GitHub reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MembershipState {
    /// A full member (`"active"`).
    Active,
    /// Invited but not yet accepted (`"pending"`).
    Pending,
}

impl MembershipState {
    /// The API spelling: `"active"` or `"pending"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipState::Active => "active",
            MembershipState::Pending => "pending",
        }
    }
}

/// `login` is a member of organization `org` in `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgMembership {
    /// The person's login.
    pub login: String,
    /// The organization's login.
    pub org: String,
    /// Active or pending.
    pub state: MembershipState,
}

/// `login` is in team `slug` of organization `org`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamMembership {
    /// The person's login.
    pub login: String,
    /// The organization's login.
    pub org: String,
    /// The team's slug.
    pub slug: String,
}

/// The routes the stand-in counts requests for (see [`GithubStandIn::calls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET` and `POST /login/oauth/authorize`.
    Authorize,
    /// `POST /login/oauth/access_token`.
    AccessToken,
    /// `POST /login/device/code`.
    DeviceCode,
    /// `DELETE /api/v3/applications/{client_id}/token`.
    RevokeToken,
    /// `GET /api/v3/user`.
    User,
    /// `GET /api/v3/user/memberships/orgs`.
    OrgMemberships,
    /// `GET /api/v3/user/teams`.
    Teams,
}
