//! A person's current, active GitHub memberships, cached briefly.
//!
//! Entries are keyed by GitHub user id and trusted for `cache.membership_ttl`.
//! Each read takes `/user` too, so the login the rules see follows a rename
//! within the TTL, whichever session caused the read.
//! A stale entry is re-read with conditional requests (ETags), so an
//! unchanged membership costs GitHub's rate limit nothing. Concurrent requests
//! for one person wait on one read (moka's per-key compute lock) instead of
//! each calling GitHub.
//!
//! Failure policy, fail closed: a revoked token is reported as such (the
//! caller ends the session); an outage may serve the stale entry within
//! `cache.stale_grace`, a rate limit never (it is the person's own token's,
//! perhaps burnt on purpose); otherwise either is an error. After a failure GitHub is asked
//! again for that person with a back-off from 5 s to a minute, however far
//! off a rate limit's reset. No failure ever produces a membership.

use std::sync::Arc;
use std::time::SystemTime;

mod policy;
mod shared;
use policy::{Before, Slot};
pub use policy::{MAX_BACKOFF, Policy, RETRY_AFTER_FAILURE, backoff};
use shared::Fleet;
pub use shared::Since;

use moka::future::Cache;
use moka::ops::compute::Op;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::CacheConfig;
use crate::crypto::{Keys, SealedToken};
use crate::github::{
    GithubClient, GithubError, GithubUser, OrgMembershipItem, OrgState, PagedList, TeamItem,
    UserRead,
};
use crate::room;
use crate::rules::{Person, TeamRef, is_github_name};
use crate::secret::Secret;

/// What is known of a person, as the rules see it, and how it was read.
#[derive(Debug, Clone)]
pub struct Membership {
    /// Identity and active memberships, ready for the rule engine.
    pub person: Person,
    /// When GitHub last confirmed this (200 or 304).
    pub confirmed_at: Instant,
    /// Who GitHub says the person is now (login, name, avatar).
    user: UserRead,
    orgs: PagedList<OrgMembershipItem>,
    teams: PagedList<TeamItem>,
}

/// Why a membership could not be known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// GitHub refused the token: the session must end.
    #[error("GitHub refused the token: it was revoked or replaced")]
    Revoked,
    /// GitHub cannot be asked now (rate limit, outage, garbage) and no
    /// usable cached answer exists.
    #[error("GitHub membership cannot be read now: {0}")]
    Unavailable(String),
}

/// Hashes GitHub user ids, which are integers GitHub assigns (not chosen by
/// callers), with one multiplication instead of SipHash: the cache is read on
/// every request.
#[derive(Clone, Default)]
struct IdHasher;

impl std::hash::BuildHasher for IdHasher {
    type Hasher = IdHash;
    fn build_hasher(&self) -> IdHash {
        IdHash(0)
    }
}

struct IdHash(u64);

impl std::hash::Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: spreads sequential ids over all the bits.
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The membership cache.
#[derive(Clone)]
pub struct Memberships {
    cache: Cache<u64, Arc<Slot>, IdHasher>,
    github: GithubClient,
    keys: Keys,
    /// Shared by every clone, swapped by a reload.
    policy: Arc<arc_swap::ArcSwap<Policy>>,
    clock: Clock,
    /// Told the id of each person whose membership a read found changed
    /// (or whose token GitHub refused), for live revocation.
    changes: Option<tokio::sync::mpsc::Sender<MembershipChange>>,
    /// Where answers are shared with the other instances, if anywhere
    /// (see [`shared`]).
    room: Option<shared::Shared>,
}

/// How a read treats the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A fresh entry answers; a stale one is re-read.
    Cached,
    /// A re-check (a webhook, the sweep): re-read everything now, unless
    /// another instance shared an answer that `Since` admits.
    Recheck(Since),
}

impl Memberships {
    /// A cache with the configured TTL, grace and size.
    pub fn new(github: GithubClient, keys: Keys, config: &CacheConfig, clock: Clock) -> Self {
        Self {
            // Bounded by size only: an expiry policy would add bookkeeping to
            // every read, and a stale entry still carries the ETags that make
            // its next read free.
            cache: Cache::builder()
                .max_capacity(config.max_entries)
                .build_with_hasher(IdHasher),
            github,
            keys,
            policy: Arc::new(arc_swap::ArcSwap::from_pointee(Policy {
                ttl: config.membership_ttl,
                stale_grace: config.stale_grace,
            })),
            clock,
            changes: None,
            room: None,
        }
    }

    /// `cache.membership_ttl` and `cache.stale_grace` now.
    pub fn policy(&self) -> Policy {
        **self.policy.load()
    }

    /// Takes a reloaded `[cache]`'s TTL and grace (its size needs a restart).
    pub fn set_policy(&self, config: &CacheConfig) {
        self.policy.store(Arc::new(Policy {
            ttl: config.membership_ttl,
            stale_grace: config.stale_grace,
        }));
    }

    /// Tells `changes` the id of every person whose re-read membership
    /// differs from what the cache held, or whose token GitHub refused. A
    /// full channel drops the news: the revocation sweep finds it anyway.
    pub fn notify_changes(mut self, changes: tokio::sync::mpsc::Sender<MembershipChange>) -> Self {
        self.changes = Some(changes);
        self
    }

    /// The person's membership: from the cache while fresh, else re-read.
    /// The token is opened only when GitHub has to be asked.
    pub async fn get(
        &self,
        user: &GithubUser,
        token: &SealedToken,
    ) -> Result<Arc<Membership>, MembershipError> {
        self.get_with(user, token, false).await
    }

    /// [`get`](Self::get), but with `refreshable` a refused token is not
    /// news of a revocation yet: the caller holds a refresh token and tries
    /// it first, then tells [`revoked`](Self::revoked) if GitHub refuses.
    pub async fn get_with(
        &self,
        user: &GithubUser,
        token: &SealedToken,
        refreshable: bool,
    ) -> Result<Arc<Membership>, MembershipError> {
        if let Some(slot) = self.cache.get(&user.id).await
            && let Some(m) = &slot.membership
            && self.policy().is_fresh(m.confirmed_at, self.clock.now())
        {
            return Ok(m.clone());
        }
        let sealed = token.key();
        let Ok(token) = self.keys.open_token(token) else {
            // Sealed with another key (one since rotated): log in again.
            return Err(MembershipError::Revoked);
        };
        let seen = UserRead {
            user: user.clone(),
            etag: None,
        };
        self.read(&seen, &token, Mode::Cached, (refreshable, sealed))
            .await
    }

    /// Re-reads the person's membership from GitHub now, however fresh the
    /// cached one (conditional requests: unchanged answers are free), or
    /// takes another instance's answer that `since` admits.
    pub async fn recheck(
        &self,
        user: &GithubUser,
        token: &SealedToken,
        since: Since,
    ) -> Result<Arc<Membership>, MembershipError> {
        self.recheck_with(user, token, false, since).await
    }

    /// [`recheck`](Self::recheck), with `refreshable` as in
    /// [`get_with`](Self::get_with).
    pub async fn recheck_with(
        &self,
        user: &GithubUser,
        token: &SealedToken,
        refreshable: bool,
        since: Since,
    ) -> Result<Arc<Membership>, MembershipError> {
        let sealed = token.key();
        let Ok(token) = self.keys.open_token(token) else {
            return Err(MembershipError::Revoked);
        };
        let seen = UserRead {
            user: user.clone(),
            etag: None,
        };
        self.read(&seen, &token, Mode::Recheck(since), (refreshable, sealed))
            .await
    }

    /// The cached membership of person `id`, fresh or not, without asking GitHub.
    pub async fn peek(&self, id: u64) -> Option<Arc<Membership>> {
        self.cache.get(&id).await.and_then(|s| s.membership.clone())
    }

    /// When GitHub may be asked again for person `id` after failed reads
    /// (None when their last read succeeded).
    pub async fn retry_at(&self, id: u64) -> Option<Instant> {
        self.cache.get(&id).await.and_then(|s| s.retry_not_before)
    }

    /// Marks person `id`'s entry stale past its grace, so their next
    /// request re-reads it and an outage then is a 503, never a stale answer
    /// (keeping its ETags, so an unchanged answer is still free). Shared
    /// answers read before `at` (Unix milliseconds: when the news came) are
    /// stale too, on every instance.
    pub async fn expire(&self, id: u64, at: i64) {
        self.stale_before(id, at).await;
        let policy = self.policy();
        let long_ago = self.clock.now() - policy.ttl - policy.stale_grace;
        self.cache
            .entry(id)
            .and_compute_with(|current| async move {
                match current.map(|e| e.into_value()) {
                    Some(slot) => match &slot.membership {
                        Some(m) if m.confirmed_at > long_ago => {
                            let mut stale = Membership::clone(m);
                            stale.confirmed_at = long_ago;
                            Op::Put(Arc::new(Slot {
                                membership: Some(Arc::new(stale)),
                                ..Slot::clone(&slot)
                            }))
                        }
                        _ => Op::Nop,
                    },
                    None => Op::Nop,
                }
            })
            .await;
    }

    /// Ids of the people whose cached membership lists the organisation or
    /// team with this numeric id (for renames and deletions).
    pub fn people_in(&self, group: Group) -> Vec<u64> {
        self.cache
            .iter()
            .filter(|(_, slot)| {
                slot.membership.as_ref().is_some_and(|m| match group {
                    Group::Org(id) => m.orgs.items_iter().any(|o| o.org.id == id),
                    Group::Team(id) => m.teams.items_iter().any(|t| t.id == id),
                })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// People in the cache, counted one by one: exact (moka's own count
    /// lags behind), and O(n), so for a scrape rather than a request.
    pub fn count(&self) -> u64 {
        self.cache.iter().count() as u64
    }

    /// At login: reads `/user`, the org memberships and the teams at once
    /// (the person is known only once `/user` answers, so nothing is sent
    /// conditionally) and caches the membership, whatever the cache held.
    /// Gives `/user`, and the membership or why it could not be read (a
    /// login stands without it; the next request reads it again).
    pub async fn login(
        &self,
        token: &Secret<String>,
    ) -> Result<(UserRead, Result<Arc<Membership>, GithubError>), GithubError> {
        let stamp = self.now_ms();
        let (user, orgs, teams) = tokio::join!(
            self.github.user_read(token, None),
            self.github.org_memberships(token, None),
            self.github.teams(token, None),
        );
        let user = user?;
        let (orgs, teams) = match (orgs, teams) {
            (Ok(orgs), Ok(teams)) => (orgs, teams),
            (Err(e), _) | (_, Err(e)) => return Ok((user, Err(e))),
        };
        let id = user.user.id;
        let membership = Arc::new(Membership::new(user.clone(), orgs, teams, self.clock.now()));
        if let Some(room) = &self.room {
            self.share(room, &membership, stamp, None).await;
        }
        let slot = Arc::new(Slot::confirmed(membership.clone()));
        self.cache
            .entry(id)
            .and_compute_with(|current| {
                let before = current.and_then(|e| e.into_value().membership.clone());
                if before.is_some_and(|b| b.person != membership.person) {
                    self.changed(id, stamp);
                }
                std::future::ready(Op::Put(slot))
            })
            .await;
        Ok((user, Ok(membership)))
    }

    /// Reads under the person's key lock, so concurrent callers share one read.
    async fn read(
        &self,
        user: &UserRead,
        token: &Secret<String>,
        mode: Mode,
        (refreshable, sealed): (bool, u64),
    ) -> Result<Arc<Membership>, MembershipError> {
        let user_id = user.user.id;
        let started = self.clock.now();
        let mut outcome = Err(MembershipError::Unavailable("not read".into()));
        self.cache
            .entry(user_id)
            .and_compute_with(|current| {
                let slot = current.map(|e| e.into_value()).unwrap_or_default();
                let outcome = &mut outcome;
                async move {
                    let (op, result) = self
                        .next(slot, user, token, (mode, refreshable, sealed), started)
                        .await;
                    *outcome = result;
                    op
                }
            })
            .await;
        outcome
    }

    /// Decides, holding the key lock, what to answer and what to store.
    async fn next(
        &self,
        slot: Arc<Slot>,
        user: &UserRead,
        token: &Secret<String>,
        (mode, refreshable, sealed): (Mode, bool, u64),
        started: Instant,
    ) -> (Op<Arc<Slot>>, Result<Arc<Membership>, MembershipError>) {
        let now = self.clock.now();
        let force = mode != Mode::Cached;
        if let Before::Answer(answer) = self.policy().before_read(&slot, now, started, force) {
            return (Op::Nop, answer);
        }
        let mut previous = slot.membership.as_deref();
        let (mut claim, base) = match &self.room {
            Some(room) => {
                let since = match mode {
                    Mode::Cached => Since::Fresh,
                    Mode::Recheck(since) => since,
                };
                match self.before_github(room, user.user.id, since).await {
                    Fleet::Answer(answer, stamp) if answer.user.user.id == user.user.id => {
                        let membership = self.adopt(answer, stamp);
                        if previous.is_some_and(|p| p.person != membership.person) {
                            self.changed(user.user.id, stamp);
                        }
                        return (
                            Op::Put(Arc::new(Slot::confirmed(membership.clone()))),
                            Ok(membership),
                        );
                    }
                    Fleet::Answer(..) => (None, None),
                    Fleet::Read(claim, base) => (claim, base.map(|b| self.adopt(b, 0))),
                }
            }
            None => (None, None),
        };
        // The shared answer's ETags go with its content.
        if let Some(base) = &base {
            previous = Some(base);
        }
        let stamp = self.now_ms();
        // /user is re-read with the rest (a free 304 when unchanged).
        let last_user = previous.map(|m| &m.user);
        let (read_user, orgs, teams) = tokio::join!(
            self.github.user_read(token, last_user),
            self.github
                .org_memberships(token, previous.map(|m| &m.orgs)),
            self.github.teams(token, previous.map(|m| &m.teams)),
        );
        let read = read_user.and_then(|u| Ok((u, orgs?, teams?)));
        match read {
            Ok((read_user, orgs, teams)) if read_user.user.id != user.user.id => {
                // The token now belongs to someone else: never mix them up.
                tracing::warn!(
                    expected = user.user.id,
                    got = read_user.user.id,
                    "GitHub token answered for another user id"
                );
                let _ = (orgs, teams);
                self.dead(user.user.id, Some(sealed));
                self.settle(claim.take()).await;
                (Op::Remove, Err(MembershipError::Revoked))
            }
            Ok((read_user, orgs, teams)) => {
                let membership =
                    Arc::new(Membership::new(read_user, orgs, teams, self.clock.now()));
                let before = slot.membership.as_deref();
                if before.is_some_and(|p| p.person != membership.person) {
                    self.changed(user.user.id, stamp);
                }
                if let Some(room) = &self.room {
                    self.share(room, &membership, stamp, claim.take()).await;
                }
                (
                    Op::Put(Arc::new(Slot::confirmed(membership.clone()))),
                    Ok(membership),
                )
            }
            // The entry goes with the token: the next read starts afresh.
            Err(GithubError::Unauthorized) => {
                if !refreshable {
                    self.dead(user.user.id, Some(sealed));
                }
                self.settle(claim.take()).await;
                (Op::Remove, Err(MembershipError::Revoked))
            }
            Err(e) => {
                self.settle(claim.take()).await;
                let (kept, answer) =
                    self.policy()
                        .after_failure(&slot, &e, self.clock.now(), SystemTime::now());
                let retry_in = kept.retry_not_before.map(|t| t - now);
                tracing::warn!(login = %user.user.login, error = %e, ?retry_in, "GitHub membership read failed");
                (Op::Put(Arc::new(kept)), answer)
            }
        }
    }
}

impl Memberships {
    /// Gives up a claim to re-read after a read that shared nothing.
    async fn settle(&self, claim: Option<room::Claim>) {
        if let (Some(shared), Some(claim)) = (&self.room, claim) {
            self.give_up(shared, claim).await;
        }
    }

    /// Passes on the news that person `id`'s access may have changed.
    /// Tells of person `id`'s token refused for good (after
    /// [`get_with`](Self::get_with) left it to the caller).
    ///
    /// Their cached membership goes with the authorization, as it does
    /// when GitHub answers 401: no other credential of theirs is answered
    /// from it while GitHub has not been asked again.
    pub async fn revoked(&self, id: u64, token: &SealedToken) {
        self.cache.invalidate(&id).await;
        self.dead(id, Some(token.key()));
    }

    /// Person `id`'s membership read differs from what the cache held;
    /// the read that found it began at `at` (Unix milliseconds).
    fn changed(&self, id: u64, at: i64) {
        self.send(MembershipChange {
            id,
            revoked: false,
            token: None,
            at,
        });
    }

    /// GitHub refused the token whose [`SealedToken::key`] is `token`.
    fn dead(&self, id: u64, token: Option<u64>) {
        self.send(MembershipChange {
            id,
            revoked: true,
            token,
            at: self.now_ms(),
        });
    }

    fn send(&self, change: MembershipChange) {
        if let Some(changes) = &self.changes {
            // Full: the sweep re-checks everyone watched within the TTL.
            let _ = changes.try_send(change);
        }
    }
}

/// News that a person's access may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipChange {
    /// Their GitHub id.
    pub id: u64,
    /// GitHub refused a token of theirs: that session has ended, and unless
    /// another session's token still works, they have lost everything.
    pub revoked: bool,
    /// Which token GitHub refused ([`SealedToken::key`]), when known.
    pub token: Option<u64>,
    /// When the read that found it began (Unix milliseconds): another
    /// instance's answer read since then is news enough.
    pub at: i64,
}

/// An organisation or team, by the numeric id webhooks name it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// An organisation.
    Org(u64),
    /// A team.
    Team(u64),
}

impl Membership {
    /// Who the person is now, as GitHub last said.
    pub fn user(&self) -> &GithubUser {
        &self.user.user
    }

    fn new(
        user: UserRead,
        orgs: PagedList<OrgMembershipItem>,
        teams: PagedList<TeamItem>,
        confirmed_at: Instant,
    ) -> Self {
        // Asked for state=active, but checked again: a pending membership
        // must never count. Names are checked too: the rules' separators
        // (`.` between {org} and {team}) rely on GitHub names never holding
        // them, so a name that does is left out rather than trusted.
        let login = &user.user.login;
        if !crate::rules::is_github_login(login) {
            tracing::warn!(
                %login,
                id = user.user.id,
                "GitHub gave a login outside its own grammar: it fills no {{login}} and meets no users condition"
            );
        }
        let named = |kind: &str, name: &str| {
            let ok = is_github_name(name);
            if !ok {
                tracing::warn!(%login, "ignoring {kind} {name:?} from GitHub: not a GitHub name");
            }
            ok
        };
        let mut active_orgs: Vec<String> = orgs
            .items()
            .into_iter()
            .filter(|m| m.state == OrgState::Active && named("org", &m.org.login))
            .map(|m| m.org.login)
            .collect();
        let mut teams_of_person: Vec<TeamRef> = teams
            .items()
            .iter()
            .filter(|t| named("org", &t.org.login) && named("team", &t.slug))
            .map(|t| TeamRef {
                org: t.org.login.clone(),
                slug: t.slug.clone(),
            })
            .collect();
        // Kept for every cached person: no spare room.
        active_orgs.shrink_to_fit();
        teams_of_person.shrink_to_fit();
        Self {
            person: Person {
                id: user.user.id,
                login: user.user.login.clone(),
                orgs: active_orgs,
                teams: teams_of_person,
            },
            confirmed_at,
            user,
            orgs,
            teams,
        }
    }
}

#[cfg(test)]
impl Membership {
    /// A membership of nobody in particular, confirmed at `at`.
    pub(crate) fn confirmed_at_for_test(at: Instant) -> Self {
        fn empty<T>() -> PagedList<T> {
            PagedList {
                pages: Vec::new(),
                requests: 0,
                not_modified: 0,
            }
        }
        let user = UserRead {
            user: GithubUser {
                id: 1,
                login: "ada".into(),
                name: None,
                avatar_url: String::new(),
            },
            etag: None,
        };
        Self::new(user, empty(), empty(), at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::{CachedPage, OrgRef};

    fn page<T>(items: Vec<T>) -> PagedList<T> {
        PagedList {
            pages: vec![CachedPage {
                etag: None,
                next: None,
                items,
            }],
            requests: 1,
            not_modified: 0,
        }
    }

    #[test]
    fn only_active_memberships_and_github_names_reach_the_rules() {
        // The gateway checks state itself, whatever GitHub filtered.
        let orgs = page(vec![
            OrgMembershipItem {
                state: OrgState::Active,
                org: OrgRef {
                    login: "acme".into(),
                    id: 7,
                },
            },
            OrgMembershipItem {
                state: OrgState::Pending,
                org: OrgRef {
                    login: "initech".into(),
                    id: 7,
                },
            },
            OrgMembershipItem {
                state: OrgState::Active,
                org: OrgRef {
                    login: "evil.org".into(),
                    id: 8,
                },
            },
        ]);
        let teams = page(vec![
            TeamItem {
                id: 9,
                slug: "ops".into(),
                org: OrgRef {
                    login: "acme".into(),
                    id: 7,
                },
            },
            TeamItem {
                id: 9,
                slug: "ops.evil".into(),
                org: OrgRef {
                    login: "acme".into(),
                    id: 7,
                },
            },
        ]);
        let mut m = Membership::confirmed_at_for_test(Instant::now());
        m = Membership::new(m.user.clone(), orgs, teams, m.confirmed_at);
        assert_eq!(m.person.orgs, ["acme"]);
        let teams: Vec<String> = m.person.active_teams().map(ToString::to_string).collect();
        assert_eq!(teams, ["acme/ops"]);
    }
}
