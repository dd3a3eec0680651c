//! The cookie sessions of each person, so that a logout can end all of
//! them and a login past `session.max_per_person` can end the oldest.
//!
//! As for bearer tokens (see [`super::tokens`]), a person's sessions are
//! listed in an index record of the session store, found by an id derived
//! from their GitHub id with the gateway's key: every instance sharing the
//! store sees the same list. An entry names a session's record and when it
//! logged in; entries whose session no longer exists (it expired, or was
//! logged out on an instance that then failed to update the index) are
//! pruned whenever the index is written. Changes to one index are
//! serialised across the instances sharing the store (a short claim in the
//! store; in this process for the memory store), so no writer loses
//! another's entry and no session escapes a "log out everywhere". The
//! store, not the index, decides whether a session works.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::{IDENTITY_KEY, Identity, Store};
use crate::crypto::Keys;

/// Session key of a person's list of sessions.
const INDEX_KEY: &str = "channelgate.sessions";
/// Index records are locked per shard of people, in this process.
const LOCKS: usize = 32;

/// The locks of this process for memory stores: one per shard of people.
static INDEX_LOCKS: [tokio::sync::Mutex<()>; LOCKS] =
    [const { tokio::sync::Mutex::const_new(()) }; LOCKS];

/// A person's index, locked until dropped.
#[allow(dead_code, reason = "held for its drop")]
enum Locked {
    Here(tokio::sync::MutexGuard<'static, ()>),
    Fleet(crate::room::Held),
}

/// A session as its person's index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// The session's record id.
    record: i128,
    /// When it logged in (Unix seconds): the oldest goes first.
    logged_in_at: i64,
}

/// A session ended through its person's index: its record id (for this
/// process to forget at once) and the identity it held, if it could be read.
#[derive(Debug)]
pub struct Ended {
    /// The session's record id.
    pub id: Id,
    /// Who it was, with their GitHub token (sealed).
    pub identity: Option<Identity>,
}

/// The sessions of everyone, indexed per person in the session store.
#[derive(Clone)]
pub struct People {
    store: Store,
    keys: Keys,
}

impl People {
    /// The indexes kept in `store`, named with `keys`.
    pub fn new(store: Store, keys: Keys) -> Self {
        Self { store, keys }
    }

    fn index_id(&self, person: u64) -> Id {
        let name = self.keys.name(format!("session-index:{person}").as_bytes());
        let mut half = [0u8; 16];
        half.copy_from_slice(&name[..16]);
        Id(i128::from_le_bytes(half))
    }

    /// Locks `person`'s index: across the instances sharing a SQLite or
    /// Redis store (a claim in the store), or in this process for the
    /// memory store, so that no two writers lose each other's entries.
    async fn lock(&self, person: u64) -> session_store::Result<Locked> {
        if matches!(self.store, Store::Memory(_)) {
            let local = INDEX_LOCKS[(person % LOCKS as u64) as usize].lock().await;
            return Ok(Locked::Here(local));
        }
        let key = format!("channelgate:index-lock:sessions:{person}");
        Ok(Locked::Fleet(self.store.fleet_lock(&key).await?))
    }

    /// Lists session `id` of `person`, logged in at `logged_in_at` (Unix
    /// seconds); the index lives until `until` at least. When the person
    /// then has more than `max` sessions, the oldest are ended (their
    /// records deleted) and given back.
    pub async fn add(
        &self,
        person: u64,
        id: Id,
        logged_in_at: i64,
        until: OffsetDateTime,
        max: usize,
    ) -> session_store::Result<Vec<Ended>> {
        let _guard = self.lock(person).await?;
        let index = self.index(person).await?;
        let mut live = Vec::new();
        if let Some(index) = &index {
            for (entry, identity) in self.live(&index.entries).await? {
                if entry.record != id.0 {
                    live.push((entry, identity));
                }
            }
        }
        live.sort_by_key(|(e, _)| e.logged_in_at);
        let over = (live.len() + 1).saturating_sub(max.max(1));
        let mut ended = Vec::with_capacity(over);
        for (entry, identity) in live.drain(..over) {
            let id = Id(entry.record);
            self.store.delete(&id).await?;
            ended.push(Ended { id, identity });
        }
        let mut entries: Vec<Entry> = live.into_iter().map(|(e, _)| e).collect();
        entries.push(Entry {
            record: id.0,
            logged_in_at,
        });
        let until = index.as_ref().map_or(until, |i| i.expiry.max(until));
        self.write(person, index.is_some(), &entries, until).await?;
        Ok(ended)
    }

    /// Takes session `id` out of `person`'s index (it ended); an index
    /// left empty is deleted.
    pub async fn remove(&self, person: u64, id: Id) -> session_store::Result<()> {
        let _guard = self.lock(person).await?;
        let Some(index) = self.index(person).await? else {
            return Ok(());
        };
        if !index.entries.iter().any(|e| e.record == id.0) {
            return Ok(());
        }
        let entries: Vec<Entry> = index
            .entries
            .into_iter()
            .filter(|e| e.record != id.0)
            .collect();
        if entries.is_empty() {
            return self.store.delete(&self.index_id(person)).await;
        }
        self.write(person, true, &entries, index.expiry).await
    }

    /// Ends every session of `person` the index lists: their records and
    /// the index deleted. Gives what was ended.
    pub async fn end_all(&self, person: u64) -> session_store::Result<Vec<Ended>> {
        let _guard = self.lock(person).await?;
        let Some(index) = self.index(person).await? else {
            return Ok(Vec::new());
        };
        let mut ended = Vec::with_capacity(index.entries.len());
        for (entry, identity) in self.live(&index.entries).await? {
            let id = Id(entry.record);
            self.store.delete(&id).await?;
            ended.push(Ended { id, identity });
        }
        // Entries of sessions already gone are deleted with the index.
        self.store.delete(&self.index_id(person)).await?;
        Ok(ended)
    }

    /// The identities of `person`'s sessions that still exist.
    pub async fn identities(&self, person: u64) -> session_store::Result<Vec<Identity>> {
        let Some(index) = self.index(person).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .live(&index.entries)
            .await?
            .into_iter()
            .filter_map(|(_, identity)| identity)
            .collect())
    }

    /// The entries whose sessions still exist, with their identities.
    async fn live(
        &self,
        entries: &[Entry],
    ) -> session_store::Result<Vec<(Entry, Option<Identity>)>> {
        let found =
            futures_util::future::join_all(entries.iter().map(|e| self.load(Id(e.record)))).await;
        let mut live = Vec::with_capacity(entries.len());
        for (entry, record) in entries.iter().zip(found) {
            if let Some(record) = record? {
                live.push((entry.clone(), identity_of(&record)));
            }
        }
        Ok(live)
    }

    async fn load(&self, id: Id) -> session_store::Result<Option<Record>> {
        self.store.load(&id).await
    }

    async fn index(&self, person: u64) -> session_store::Result<Option<Index>> {
        let Some(record) = self.store.load(&self.index_id(person)).await? else {
            return Ok(None);
        };
        let entries = match record.data.get(INDEX_KEY) {
            Some(Value::String(json)) => serde_json::from_str(json)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
            _ => Vec::new(),
        };
        Ok(Some(Index {
            entries,
            expiry: record.expiry_date,
        }))
    }

    /// Writes `person`'s index: updates the one that `exists`, or creates it.
    async fn write(
        &self,
        person: u64,
        exists: bool,
        entries: &[Entry],
        expiry: OffsetDateTime,
    ) -> session_store::Result<()> {
        let json = serde_json::to_string(entries)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let mut record = Record {
            id: self.index_id(person),
            data: HashMap::from([(INDEX_KEY.to_owned(), Value::String(json))]),
            expiry_date: expiry,
        };
        if exists {
            return self.store.save(&record).await;
        }
        let wanted = record.id;
        for _ in 0..2 {
            self.store.create(&mut record).await?;
            if record.id == wanted {
                return Ok(());
            }
            // A record by this id that loading did not find (one that
            // expired and was not swept yet): out of the way, then again.
            self.store.delete(&record.id).await?;
            self.store.delete(&wanted).await?;
            record.id = wanted;
        }
        Err(session_store::Error::Backend(
            "the session index could not be written".into(),
        ))
    }
}

struct Index {
    entries: Vec<Entry>,
    expiry: OffsetDateTime,
}

/// The identity a cookie session's record holds, if any.
fn identity_of(record: &Record) -> Option<Identity> {
    match record.data.get(IDENTITY_KEY) {
        Some(Value::String(json)) => serde_json::from_str(json).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::github::GithubUser;
    use crate::session::MemoryStore;

    fn identity(person: u64, at: i64) -> Identity {
        let keys = Keys::new(None);
        Identity {
            user: GithubUser {
                id: person,
                login: format!("person{person}"),
                name: None,
                avatar_url: String::new(),
            },
            token: keys.seal_token(&crate::secret::Secret::new("gho_x".into())),
            logged_in_at: at,
            refresh: None,
            expires_at: None,
            refresh_at: None,
        }
    }

    /// A stored cookie session of `person`, logged in at `at`.
    async fn session(store: &MemoryStore, person: u64, at: i64) -> Id {
        let json = serde_json::to_string(&identity(person, at)).unwrap();
        let mut record = Record {
            id: Id::default(),
            data: HashMap::from([(IDENTITY_KEY.to_owned(), Value::String(json))]),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        store.create(&mut record).await.unwrap();
        record.id
    }

    fn until() -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::days(1)
    }

    #[tokio::test]
    async fn a_login_past_the_most_ends_the_oldest_sessions_of_that_person_only() {
        let store = MemoryStore::on(Clock::default());
        let people = People::new(Store::Memory(store.clone()), Keys::new(None));
        let mut ids = Vec::new();
        for at in [10, 20, 30] {
            let id = session(&store, 1, at).await;
            let ended = people.add(1, id, at, until(), 2).await.unwrap();
            ids.push(id);
            if at == 30 {
                assert_eq!(ended.len(), 1);
                assert_eq!(ended[0].id, ids[0], "the oldest");
                assert_eq!(ended[0].identity.as_ref().unwrap().logged_in_at, 10);
            } else {
                assert!(ended.is_empty());
            }
        }
        let other = session(&store, 2, 5).await;
        assert!(
            people
                .add(2, other, 5, until(), 2)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.load(&ids[0]).await.unwrap().is_none());
        assert_eq!(people.identities(1).await.unwrap().len(), 2);
        // Logged out: out of the index.
        people.remove(1, ids[1]).await.unwrap();
        let left = people.end_all(1).await.unwrap();
        assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[2]]);
        assert!(store.load(&ids[2]).await.unwrap().is_none());
        assert!(people.identities(1).await.unwrap().is_empty());
        assert!(
            store.load(&other).await.unwrap().is_some(),
            "another person's"
        );
    }

    #[tokio::test]
    async fn an_index_whose_last_session_ended_is_deleted() {
        let store = MemoryStore::on(Clock::default());
        let people = People::new(Store::Memory(store.clone()), Keys::new(None));
        let id = session(&store, 1, 10).await;
        people.add(1, id, 10, until(), 2).await.unwrap();
        assert_eq!(store.len(), 2, "the session and its person's index");
        store.delete(&id).await.unwrap();
        people.remove(1, id).await.unwrap();
        assert!(store.is_empty(), "nothing left behind");
    }

    #[tokio::test]
    async fn sessions_that_no_longer_exist_are_pruned_and_do_not_count() {
        let store = MemoryStore::on(Clock::default());
        let people = People::new(Store::Memory(store.clone()), Keys::new(None));
        let gone = session(&store, 1, 10).await;
        people.add(1, gone, 10, until(), 2).await.unwrap();
        store.delete(&gone).await.unwrap();
        let kept = session(&store, 1, 20).await;
        people.add(1, kept, 20, until(), 2).await.unwrap();
        let new = session(&store, 1, 30).await;
        let ended = people.add(1, new, 30, until(), 2).await.unwrap();
        assert!(ended.is_empty(), "the expired one made room");
        let index = people.index(1).await.unwrap().unwrap();
        assert_eq!(
            index.entries.iter().map(|e| e.record).collect::<Vec<_>>(),
            [kept.0, new.0]
        );
    }
}
