//! Membership answers shared by the instances on one store (Redis; SQLite
//! on one host), so that N instances cost GitHub what one does.
//!
//! Each person's latest answer (`/user`, org memberships and teams, with
//! their ETags) is kept in the room under their GitHub id, stamped with the
//! time its read began. An instance whose own cached entry is stale takes
//! the shared answer while it is fresher than `cache.membership_ttl`; when
//! that is stale too, one instance re-reads GitHub (with the shared ETags)
//! under a short claim and the others wait for its answer, or read
//! themselves if its holder dies or takes longer than [`WAIT`]. The
//! in-process cache dates an adopted answer by its stamp, so it never
//! trusts it longer than the shared answer's age allows.
//!
//! A re-check (a webhook, another instance's news) takes only an answer
//! read after the news; a webhook that names a person declares every
//! answer read before it stale (see [`crate::room::Stamped`]), so a failed
//! re-read anywhere can never bring the old answer back. The store failing
//! turns into a read of GitHub, never into an answer.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Membership, Memberships};
use crate::github::{OrgMembershipItem, PagedList, TeamItem, UserRead};
use crate::room::{Claim, Room, Stamped};

/// How long a shared answer is kept: well past the TTL, for its ETags.
const KEEP: Duration = Duration::from_secs(86_400);
/// How long a claim to re-read a person lasts if its holder never
/// releases it (it died): past GitHub's longest answer.
const HOLD: Duration = Duration::from_secs(30);
/// How long an instance waits for another's re-read before reading itself.
const WAIT: Duration = Duration::from_secs(5);
/// The longest pause between two looks at the shared answer while waiting.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Which shared answers a read may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Any fresher than the TTL.
    Fresh,
    /// Only one whose read began at or after this (Unix milliseconds): a
    /// re-check after news of a change.
    After(i64),
}

/// An answer as the room keeps it.
#[derive(Serialize)]
struct AnswerRef<'a> {
    user: &'a UserRead,
    orgs: &'a PagedList<OrgMembershipItem>,
    teams: &'a PagedList<TeamItem>,
}

/// An answer read back from the room.
#[derive(Deserialize)]
pub(super) struct Answer {
    pub(super) user: UserRead,
    pub(super) orgs: PagedList<OrgMembershipItem>,
    pub(super) teams: PagedList<TeamItem>,
}

/// What the room says before a read.
pub(super) enum Fleet {
    /// A usable answer, stamped (Unix milliseconds).
    Answer(Answer, i64),
    /// GitHub must be asked: under this claim (none when the room failed or
    /// the wait ran out), from this base (the shared answer's ETags).
    Read(Option<Claim>, Option<Answer>),
}

/// Where answers are shared: the room, and the prefix of this GitHub's keys.
#[derive(Clone)]
pub(super) struct Shared {
    room: Room,
    prefix: Arc<str>,
}

impl Shared {
    fn answer_key(&self, id: u64) -> String {
        format!("{}:{id}", self.prefix)
    }

    fn read_key(&self, id: u64) -> String {
        format!("{}-read:{id}", self.prefix)
    }

    /// Where a change to a whole organisation or team (renamed, deleted)
    /// declares everyone's answers read before it stale.
    fn everyone_key(&self) -> String {
        format!("{}-everyone", self.prefix)
    }
}

impl Memberships {
    /// Shares answers through `room` when it keeps values (SQLite, Redis).
    /// User ids are GitHub's at `api_url` (github.com and a GitHub
    /// Enterprise Server number people apart), so the keys name it, by
    /// digest.
    pub fn share_in(mut self, room: &Room, api_url: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(api_url.trim_end_matches('/').as_bytes());
        self.room = room.keeps_values().then(|| Shared {
            room: room.clone(),
            prefix: format!("channelgate:membership:{}", hex::encode(&digest[..6])).into(),
        });
        self
    }

    /// The clock's Unix time in milliseconds: stamps of shared answers.
    pub(super) fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.utc_now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// Looks at the room before person `id` is read from GitHub: takes a
    /// usable shared answer, or claims the re-read, or waits for another
    /// instance's.
    pub(super) async fn before_github(&self, shared: &Shared, id: u64, since: Since) -> Fleet {
        let room = &shared.room;
        let key = shared.answer_key(id);
        // A change to a whole organisation or team stales everyone's
        // answers, held by an instance or not.
        let floor = match room.get_stamped(&shared.everyone_key()).await {
            Ok(everyone) => everyone.map_or(0, |e| e.stale_before),
            Err(e) => {
                tracing::warn!(id, error = %e, "shared membership answers cannot be read; reading GitHub");
                return Fleet::Read(None, None);
            }
        };
        let give_up = tokio::time::Instant::now() + WAIT;
        let mut pause = Duration::from_millis(5);
        let mut claim = None;
        loop {
            let kept = match room.get_stamped(&key).await {
                Ok(kept) => kept,
                Err(e) => {
                    tracing::warn!(id, error = %e, "shared membership answers cannot be read; reading GitHub");
                    return Fleet::Read(claim, None);
                }
            };
            if let Some(kept) = &kept
                && kept.stamp >= floor
                && self.usable(kept, since)
                && let Some(answer) = parse(kept)
            {
                if let Some(claim) = claim {
                    let _ = room.release(claim).await;
                }
                return Fleet::Answer(answer, kept.stamp);
            }
            let base = kept.as_ref().and_then(parse);
            if claim.is_some() {
                // Claimed, and still nothing usable written meanwhile.
                return Fleet::Read(claim, base);
            }
            match room.claim(&shared.read_key(id), HOLD).await {
                // Looked at once more: an answer written between the look
                // and the claim is taken rather than read again.
                Ok(Some(held)) => claim = Some(held),
                Ok(None) if tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                Ok(None) => {
                    tracing::info!(id, "another instance's re-read is late; reading GitHub");
                    return Fleet::Read(None, base);
                }
                Err(e) => {
                    tracing::warn!(id, error = %e, "cannot claim a membership re-read; reading GitHub");
                    return Fleet::Read(None, base);
                }
            }
        }
    }

    fn usable(&self, kept: &Stamped, since: Since) -> bool {
        let ttl = self.policy().ttl;
        kept.fresh(self.now_ms(), ttl)
            && match since {
                Since::Fresh => true,
                Since::After(at) => kept.stamp >= at,
            }
    }

    /// Shares `membership`, read from GitHub from `stamp` on, and gives up
    /// `claim`.
    pub(super) async fn share(
        &self,
        shared: &Shared,
        membership: &Membership,
        stamp: i64,
        claim: Option<Claim>,
    ) {
        let answer = AnswerRef {
            user: &membership.user,
            orgs: &membership.orgs,
            teams: &membership.teams,
        };
        let json = serde_json::to_string(&answer).expect("plain JSON");
        let id = membership.person.id;
        let key = shared.answer_key(id);
        if let Err(e) = shared.room.put_stamped(&key, stamp, &json, KEEP).await {
            tracing::warn!(id, error = %e, "a membership answer could not be shared");
        }
        if let Some(claim) = claim {
            self.give_up(shared, claim).await;
        }
    }

    /// Gives up a claim to re-read (the read failed, or was shared).
    pub(super) async fn give_up(&self, shared: &Shared, claim: Claim) {
        if let Err(e) = shared.room.release(claim).await {
            tracing::debug!(error = %e, "a membership re-read's claim lapses by itself");
        }
    }

    /// Declares every shared answer of person `id` read before `at` (Unix
    /// milliseconds) stale.
    pub(super) async fn stale_before(&self, id: u64, at: i64) {
        if let Some(shared) = &self.room
            && let Err(e) = shared
                .room
                .stale_before(&shared.answer_key(id), at, KEEP)
                .await
        {
            tracing::warn!(id, error = %e, "a shared membership answer could not be marked stale");
        }
    }

    /// Declares every shared answer read before `at` (Unix milliseconds)
    /// stale, whoever it is of: an organisation or team was renamed or
    /// deleted, and who was in it is not known here.
    pub async fn expire_everyone(&self, at: i64) {
        if let Some(shared) = &self.room
            && let Err(e) = shared
                .room
                .stale_before(&shared.everyone_key(), at, KEEP)
                .await
        {
            tracing::warn!(error = %e, "shared membership answers could not be marked stale");
        }
    }

    /// A membership from a shared answer stamped `stamp`, dated by it.
    pub(super) fn adopt(&self, answer: Answer, stamp: i64) -> Arc<Membership> {
        let age = u64::try_from(self.now_ms().saturating_sub(stamp)).unwrap_or(0);
        let now = self.clock.now();
        let confirmed_at = now.checked_sub(Duration::from_millis(age)).unwrap_or(now);
        Arc::new(Membership::new(
            answer.user,
            answer.orgs,
            answer.teams,
            confirmed_at,
        ))
    }
}

fn parse(kept: &Stamped) -> Option<Answer> {
    serde_json::from_str(&kept.value).ok()
}
