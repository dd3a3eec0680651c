//! The world as the stand-in keeps it ([`Db`]): indexed by person, with
//! each person's memberships, token revocations and rate-limit budget.

use super::*;

/// A rate-limit budget (GitHub's is per person).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Budget {
    /// Requests counted against the current window.
    pub(crate) used: u64,
    /// When the current window ends (epoch seconds); `0` before the first
    /// request.
    pub(crate) reset: u64,
}

impl Budget {
    pub(crate) fn roll(&mut self) {
        let now = epoch_seconds();
        if now >= self.reset {
            self.used = 0;
            self.reset = now + 3600;
        }
    }
}

/// The world as the stand-in keeps it: indexed by person, so that a request
/// costs the size of that person's data, not the size of the world.
pub(crate) struct Db {
    /// Everyone, in the world's order (the consent page lists them so).
    pub(crate) users: Vec<UserRecord>,
    /// Everyone who has a record, a membership or a token, by lowercase login.
    pub(crate) people: HashMap<String, Person>,
    /// How many team memberships each team has, by lowercase (org, slug).
    pub(crate) team_sizes: HashMap<(String, String), usize>,
    /// Every organization that has had a member, by lowercase name, with
    /// the first spelling seen (the admin page offers them all).
    pub(crate) known_orgs: BTreeMap<String, String>,
    /// Every team that has had a member, by lowercase (org, slug), with the
    /// first spelling seen.
    pub(crate) known_teams: BTreeMap<(String, String), (String, String)>,
}

/// One person's part of the [`Db`].
#[derive(Default)]
pub(crate) struct Person {
    /// Where the person's record is in [`Db::users`] (the first one with
    /// the login).
    pub(crate) user: Option<usize>,
    /// Organization memberships as (org, state), in the order the API lists
    /// them.
    pub(crate) orgs: Vec<(String, MembershipState)>,
    /// Team memberships as (org, slug), in the order the API lists them.
    pub(crate) teams: Vec<(String, String)>,
    /// How many times the person's tokens were revoked.
    pub(crate) revocations: u64,
    pub(crate) budget: Budget,
}

impl Db {
    pub(crate) fn new(world: World) -> Self {
        let World {
            users,
            orgs,
            teams,
            index: _,
        } = world;
        let mut db = Db {
            users: Vec::with_capacity(users.len()),
            people: HashMap::with_capacity(users.len()),
            team_sizes: HashMap::new(),
            known_orgs: BTreeMap::new(),
            known_teams: BTreeMap::new(),
        };
        for user in users {
            let at = db.users.len();
            db.person(&user.login).user.get_or_insert(at);
            db.users.push(user);
        }
        for m in orgs {
            db.know(&m.org, None);
            db.person(&m.login).orgs.push((m.org, m.state));
        }
        for t in teams {
            db.know(&t.org, Some(&t.slug));
            *db.team_sizes
                .entry((t.org.to_ascii_lowercase(), t.slug.to_ascii_lowercase()))
                .or_default() += 1;
            db.person(&t.login).teams.push((t.org, t.slug));
        }
        db
    }

    /// Remembers organization `org` and, with `slug`, its team `slug`.
    pub(crate) fn know(&mut self, org: &str, slug: Option<&str>) {
        let org_key = org.to_ascii_lowercase();
        if let Some(slug) = slug {
            self.known_teams
                .entry((org_key.clone(), slug.to_ascii_lowercase()))
                .or_insert_with(|| (org.to_owned(), slug.to_owned()));
        }
        self.known_orgs
            .entry(org_key)
            .or_insert_with(|| org.to_owned());
    }

    pub(crate) fn person(&mut self, login: &str) -> &mut Person {
        self.people.entry(login.to_ascii_lowercase()).or_default()
    }

    pub(crate) fn find_user(&self, login: &str) -> Option<&UserRecord> {
        let at = self.people.get(&login.to_ascii_lowercase())?.user?;
        self.users.get(at)
    }

    pub(crate) fn put_user(&mut self, user: UserRecord) {
        let person = self
            .people
            .entry(user.login.to_ascii_lowercase())
            .or_default();
        match person.user {
            Some(at) => self.users[at] = user,
            None => {
                person.user = Some(self.users.len());
                self.users.push(user);
            }
        }
    }

    pub(crate) fn set_org(&mut self, login: &str, org: &str, state: Option<MembershipState>) {
        match state {
            Some(state) => {
                self.know(org, None);
                let orgs = &mut self.person(login).orgs;
                match orgs.iter_mut().find(|(o, _)| o.eq_ignore_ascii_case(org)) {
                    Some(m) => m.1 = state,
                    None => orgs.push((org.to_owned(), state)),
                }
            }
            None => {
                if let Some(person) = self.people.get_mut(&login.to_ascii_lowercase())
                    && let Some(i) = person
                        .orgs
                        .iter()
                        .position(|(o, _)| o.eq_ignore_ascii_case(org))
                {
                    person.orgs.remove(i);
                }
            }
        }
    }

    pub(crate) fn add_team(&mut self, login: &str, org: &str, slug: &str) {
        self.know(org, Some(slug));
        let teams = &mut self
            .people
            .entry(login.to_ascii_lowercase())
            .or_default()
            .teams;
        if !teams
            .iter()
            .any(|(o, s)| o.eq_ignore_ascii_case(org) && s.eq_ignore_ascii_case(slug))
        {
            teams.push((org.to_owned(), slug.to_owned()));
            *self
                .team_sizes
                .entry((org.to_ascii_lowercase(), slug.to_ascii_lowercase()))
                .or_default() += 1;
        }
    }

    pub(crate) fn remove_team(&mut self, login: &str, org: &str, slug: &str) {
        let Some(person) = self.people.get_mut(&login.to_ascii_lowercase()) else {
            return;
        };
        let before = person.teams.len();
        person
            .teams
            .retain(|(o, s)| !(o.eq_ignore_ascii_case(org) && s.eq_ignore_ascii_case(slug)));
        let removed = before - person.teams.len();
        if removed == 0 {
            return;
        }
        let key = (org.to_ascii_lowercase(), slug.to_ascii_lowercase());
        if let Some(size) = self.team_sizes.get_mut(&key) {
            *size = size.saturating_sub(removed);
            if *size == 0 {
                self.team_sizes.remove(&key);
            }
        }
    }

    /// How many memberships team `slug` of `org` has.
    pub(crate) fn team_size(&self, org: &str, slug: &str) -> usize {
        self.team_sizes
            .get(&(org.to_ascii_lowercase(), slug.to_ascii_lowercase()))
            .copied()
            .unwrap_or(0)
    }
}
