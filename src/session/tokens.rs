//! Bearer tokens (`Authorization: Bearer cg_...`) for apps without a
//! browser. Each token is a gateway session of its own in the session
//! store: the same identity, membership checks and expiry as a cookie
//! session.
//!
//! A token is `cg_` and 43 characters of URL-safe base64: 256 random bits.
//! The store keeps only their SHA-256. The record's id is the digest's
//! first 16 bytes; the whole digest is kept inside and compared in constant
//! time. The identity sits under its own key, so a cookie that named such a
//! record would find no identity in it.
//!
//! A person's tokens are listed in an index record, found by an id derived
//! from their GitHub id with the gateway's key. A token works only while
//! its person's index lists it. Changes to one index are serialised across
//! the instances sharing the store (a short claim in the store), so no
//! writer loses another's entry; were one lost all the same, its token
//! would stop working rather than work unlisted, where nobody could see or
//! revoke it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::{Identity, RENEWED_KEY, Store, renew_every, renewal_due};
use crate::crypto::{Keys, constant_time_eq};
use crate::secret::Secret;

/// What every token starts with.
pub const PREFIX: &str = "cg_";
/// Characters after the prefix: base64 of 32 bytes, unpadded.
const ENCODED_LEN: usize = 43;
/// Most tokens one person may have at once.
pub const MAX_TOKENS: usize = 100;
/// Longest token name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// How often a used token's "last used" time (and its expiry) is written
/// back, at most: a token is listed with its last use to within this.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);
/// Session key of a token's record.
const RECORD_KEY: &str = "channelgate.bearer";
/// Session key of a person's list of tokens.
const INDEX_KEY: &str = "channelgate.tokens";
/// Index records are locked per shard of people, in this process.
const LOCKS: usize = 32;

/// A token as presented: only its digest is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

/// Why an `Authorization` header does not hold a token of this gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Another scheme (`Basic`, ...), or no scheme at all.
    #[error("only Bearer tokens are accepted in the Authorization header")]
    Scheme,
    /// `Bearer` with something that is not `cg_` and 43 base64 characters.
    #[error("the bearer token is not a channelgate token (cg_ and 43 characters)")]
    Token,
}

impl BearerToken {
    /// The token in an `Authorization` header's value: the scheme `Bearer`
    /// (any case), one or more spaces, then `cg_...`.
    pub fn from_header(value: &[u8]) -> Result<Self, Malformed> {
        let value = std::str::from_utf8(value).map_err(|_| Malformed::Scheme)?;
        let (scheme, rest) = value.split_once(' ').ok_or(Malformed::Scheme)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Malformed::Scheme);
        }
        Self::parse(rest.trim_matches(' '))
    }

    /// A token's text, `cg_...`.
    pub fn parse(text: &str) -> Result<Self, Malformed> {
        let encoded = text.strip_prefix(PREFIX).ok_or(Malformed::Token)?;
        if encoded.len() != ENCODED_LEN {
            return Err(Malformed::Token);
        }
        let bytes = B64.decode(encoded).map_err(|_| Malformed::Token)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| Malformed::Token)?;
        Ok(Self::of(&bytes))
    }

    fn of(secret: &[u8; 32]) -> Self {
        Self {
            digest: Sha256::digest(secret).into(),
        }
    }

    /// A fresh token and its text, to be shown once.
    fn generate() -> (Self, Secret<String>) {
        let secret: [u8; 32] = random();
        let text = format!("{PREFIX}{}", B64.encode(secret));
        (Self::of(&secret), Secret::new(text))
    }

    fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }
}

fn random<const N: usize>() -> [u8; N] {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut bytes = [0u8; N];
    chacha20poly1305::aead::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// How often a token's record is written back when it is used.
pub fn renew_every_bearer(ttl: Duration) -> Duration {
    renew_every(ttl).min(LAST_USED_EVERY)
}

/// How a token came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Made on the home page by a logged-in person.
    App,
    /// Given to a device at the end of GitHub's device flow.
    Device,
}

impl Kind {
    /// `app` or `device`, as the token list shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Device => "device",
        }
    }
}

/// A token's record: whose it is, and the digest it must match.
#[derive(Serialize, Deserialize)]
struct TokenRecord {
    /// SHA-256 of the token, hex.
    digest: String,
    /// The token's public id, as its index lists it.
    id: String,
    /// Who it authenticates; `logged_in_at` is when it was made.
    identity: Identity,
}

/// A token as its person's index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// Public id, for `DELETE /auth/tokens/{id}`.
    id: String,
    name: String,
    kind: Kind,
    /// Unix seconds.
    created_at: i64,
    /// The token's record in the store (never shown: only the gateway may
    /// name a record).
    record: i128,
}

/// A token as its person sees it listed: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Public id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `app` or `device`.
    pub kind: Kind,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it was last used (Unix seconds, to within a minute), if ever.
    pub last_used_at: Option<i64>,
}

/// A token just made: its text is shown this once.
#[derive(Debug)]
pub struct Created {
    /// Public id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `cg_...`.
    pub token: Secret<String>,
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The person has [`MAX_TOKENS`] already.
    #[error("you have {MAX_TOKENS} tokens already; revoke one first")]
    TooMany,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] session_store::Error),
}

/// A token that authenticated: who, and when its record was last written.
#[derive(Debug)]
pub struct Found {
    /// Who it authenticates.
    pub identity: Arc<Identity>,
    /// When its expiry was last pushed back (Unix seconds).
    pub renewed: i64,
}

/// The checks of a token name: 1 to [`MAX_NAME_CHARS`] characters after
/// trimming, no control characters.
pub fn check_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name is over {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("name holds a control character".into());
    }
    Ok(name)
}

/// The tokens of everyone, in the session store.
#[derive(Clone)]
pub struct Tokens(Arc<Shared>);

struct Shared {
    store: Store,
    keys: Keys,
    /// Serialises changes to one person's index within this process.
    locks: [tokio::sync::Mutex<()>; LOCKS],
}

impl Tokens {
    /// Tokens kept in `store`, indexes named with `keys`.
    pub fn new(store: Store, keys: Keys) -> Self {
        Self(Arc::new(Shared {
            store,
            keys,
            locks: std::array::from_fn(|_| tokio::sync::Mutex::default()),
        }))
    }

    fn index_id(&self, person: u64) -> Id {
        self.named(format!("token-index:{person}").as_bytes())
    }

    /// The id of `token`'s record in the session store.
    pub fn record_id(&self, token: &BearerToken) -> Id {
        let mut what = b"token-record:".to_vec();
        what.extend_from_slice(&token.digest);
        self.named(&what)
    }

    /// A record id only the gateway can work out.
    fn named(&self, what: &[u8]) -> Id {
        let name = self.0.keys.name(what);
        let mut half = [0u8; 16];
        half.copy_from_slice(&name[..16]);
        Id(i128::from_le_bytes(half))
    }

    /// Locks `person`'s index in this process and across the instances
    /// sharing the store, so that no two writers lose each other's entries.
    async fn lock(
        &self,
        person: u64,
    ) -> session_store::Result<(tokio::sync::MutexGuard<'_, ()>, crate::room::Held)> {
        let local = self.0.locks[(person % LOCKS as u64) as usize].lock().await;
        let key = format!("channelgate:index-lock:tokens:{person}");
        Ok((local, self.0.store.fleet_lock(&key).await?))
    }

    /// Makes a token for `identity`'s person, named `name`, at `now` (Unix
    /// seconds). It lives `ttl` after its last use and `max_age` in all.
    pub async fn create(
        &self,
        identity: &Identity,
        name: &str,
        kind: Kind,
        now: i64,
        (ttl, max_age): (Duration, Duration),
    ) -> Result<Created, CreateError> {
        let person = identity.user.id;
        let _guard = self.lock(person).await?;
        let index = self.index(person).await?;
        let mut entries = index
            .as_ref()
            .map(|i| i.entries.clone())
            .unwrap_or_default();
        if entries.len() >= MAX_TOKENS {
            entries = self.live(entries).await?;
        }
        if entries.len() >= MAX_TOKENS {
            return Err(CreateError::TooMany);
        }
        let public = hex::encode(random::<8>());
        let mut made = None;
        // Another record under a fresh token's id is as likely as guessing
        // a token; still, never overwrite one.
        for _ in 0..3 {
            let (token, text) = BearerToken::generate();
            let record = TokenRecord {
                digest: token.digest_hex(),
                id: public.clone(),
                identity: Identity {
                    logged_in_at: now,
                    ..identity.clone()
                },
            };
            let json = serde_json::to_string(&record)
                .map_err(|e| session_store::Error::Encode(e.to_string()))?;
            let record = Record {
                id: self.record_id(&token),
                data: HashMap::from([(RECORD_KEY.to_owned(), Value::String(json))]),
                expiry_date: at(now) + ttl,
            };
            if self.create_exact(record).await? {
                made = Some((token, text));
                break;
            }
        }
        let (token, text) =
            made.ok_or_else(|| session_store::Error::Backend("no free token id".into()))?;
        entries.push(Entry {
            id: public.clone(),
            name: name.to_owned(),
            kind,
            created_at: now,
            record: self.record_id(&token).0,
        });
        // The index outlives every token it lists.
        let until = (at(now) + max_age).max(index.as_ref().map_or(at(now), |i| i.expiry));
        if let Err(e) = self
            .write_index(person, index.is_some(), entries, until)
            .await
        {
            let _ = self.0.store.delete(&self.record_id(&token)).await;
            return Err(e.into());
        }
        Ok(Created {
            id: public,
            name: name.to_owned(),
            token: text,
        })
    }

    /// The identity `token` authenticates at `now`, if its record exists,
    /// matches it and is listed by its person's index; its record is
    /// written back when its last use is [`renew_every_bearer`] old.
    pub async fn authenticate(
        &self,
        token: &BearerToken,
        now: i64,
        ttl: Duration,
    ) -> session_store::Result<Option<Found>> {
        let id = self.record_id(token);
        let Some(mut record) = self.0.store.load(&id).await? else {
            return Ok(None);
        };
        let Some(stored) = token_record(&record) else {
            return Ok(None);
        };
        if !constant_time_eq(stored.digest.as_bytes(), token.digest_hex().as_bytes()) {
            return Ok(None);
        }
        let person = stored.identity.user.id;
        let listed = self.index(person).await?.is_some_and(|index| {
            index
                .entries
                .iter()
                .any(|e| e.id == stored.id && e.record == id.0)
        });
        if !listed {
            // Fails closed: a token its person cannot see does not work.
            tracing::warn!(
                login = %stored.identity.user.login,
                "a bearer token missing from its person's index was refused and deleted"
            );
            self.0.store.delete(&id).await?;
            return Ok(None);
        }
        let last: Option<i64> = record
            .data
            .get(RENEWED_KEY)
            .and_then(serde_json::Value::as_i64);
        let renewed = if renewal_due(last, now, renew_every_bearer(ttl)) {
            record.data.insert(RENEWED_KEY.to_owned(), now.into());
            record.expiry_date = at(now) + ttl;
            self.0.store.save(&record).await?;
            now
        } else {
            last.unwrap_or(now)
        };
        Ok(Some(Found {
            identity: Arc::new(stored.identity),
            renewed,
        }))
    }

    /// Puts a refreshed GitHub token pair (`fresh`'s `token`, `refresh`,
    /// `expires_at` and `refresh_at`) in `token`'s record, keeping the rest. Gives the
    /// identity now stored, or `None` when the record is gone.
    pub async fn replace_github_token(
        &self,
        token: &BearerToken,
        fresh: &Identity,
    ) -> session_store::Result<Option<Identity>> {
        let id = self.record_id(token);
        let Some(mut record) = self.0.store.load(&id).await? else {
            return Ok(None);
        };
        let Some(mut stored) = token_record(&record) else {
            return Ok(None);
        };
        if !constant_time_eq(stored.digest.as_bytes(), token.digest_hex().as_bytes()) {
            return Ok(None);
        }
        stored.identity.token = fresh.token.clone();
        stored.identity.refresh = fresh.refresh.clone();
        stored.identity.expires_at = fresh.expires_at;
        stored.identity.refresh_at = fresh.refresh_at;
        let json = serde_json::to_string(&stored)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        record
            .data
            .insert(RECORD_KEY.to_owned(), Value::String(json));
        self.0.store.save(&record).await?;
        Ok(Some(stored.identity))
    }

    /// Ends `token`: out of its person's index, its record deleted. Nothing
    /// happens to a token that does not exist.
    pub async fn end(&self, token: &BearerToken) -> session_store::Result<()> {
        let id = self.record_id(token);
        let Some(record) = self.0.store.load(&id).await? else {
            return Ok(());
        };
        match token_record(&record) {
            Some(stored)
                if constant_time_eq(stored.digest.as_bytes(), token.digest_hex().as_bytes()) =>
            {
                self.revoke(stored.identity.user.id, &stored.id).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Revokes `person`'s token with public id `public`: false when they
    /// have none by that id. Gives the revoked token's record id, so this
    /// process can forget it at once.
    pub async fn revoke(&self, person: u64, public: &str) -> session_store::Result<Option<Id>> {
        let _guard = self.lock(person).await?;
        let Some(index) = self.index(person).await? else {
            return Ok(None);
        };
        let Some(gone) = index.entries.iter().find(|e| e.id == public).cloned() else {
            return Ok(None);
        };
        let rest = index
            .entries
            .into_iter()
            .filter(|e| e.id != public)
            .collect();
        // Out of the index first: from then on it fails, whatever happens next.
        self.write_index(person, true, rest, index.expiry).await?;
        let record = Id(gone.record);
        self.0.store.delete(&record).await?;
        Ok(Some(record))
    }

    /// The identities `person`'s tokens hold (GitHub tokens included),
    /// of the tokens whose records still exist.
    pub async fn identities(&self, person: u64) -> session_store::Result<Vec<Identity>> {
        let Some(index) = self.index(person).await? else {
            return Ok(Vec::new());
        };
        let records =
            futures_util::future::join_all(index.entries.iter().map(|e| self.load(Id(e.record))))
                .await;
        let mut identities = Vec::with_capacity(records.len());
        for record in records {
            if let Some(stored) = record?.as_ref().and_then(token_record) {
                identities.push(stored.identity);
            }
        }
        Ok(identities)
    }

    /// Ends every token of `person`, app and device alike: the index goes
    /// first (from then on none works), then their records. Gives each
    /// ended token's record id, so this process can forget it at once,
    /// with the identity it held when it could be read.
    pub async fn end_all(&self, person: u64) -> session_store::Result<Vec<(Id, Option<Identity>)>> {
        let _guard = self.lock(person).await?;
        let Some(index) = self.index(person).await? else {
            return Ok(Vec::new());
        };
        self.0.store.delete(&self.index_id(person)).await?;
        let mut ended = Vec::with_capacity(index.entries.len());
        for entry in index.entries {
            let id = Id(entry.record);
            let identity = self
                .load(id)
                .await?
                .as_ref()
                .and_then(token_record)
                .map(|t| t.identity);
            self.0.store.delete(&id).await?;
            ended.push((id, identity));
        }
        Ok(ended)
    }

    /// `person`'s tokens, oldest first; tokens that expired are dropped
    /// from the index on the way.
    pub async fn list(&self, person: u64) -> session_store::Result<Vec<Listed>> {
        let Some(index) = self.index(person).await? else {
            return Ok(Vec::new());
        };
        let records =
            futures_util::future::join_all(index.entries.iter().map(|e| self.load(Id(e.record))))
                .await;
        let mut listed = Vec::with_capacity(index.entries.len());
        let mut gone = Vec::new();
        for (entry, record) in index.entries.iter().zip(records) {
            match record? {
                Some(record) => listed.push(Listed {
                    id: entry.id.clone(),
                    name: entry.name.clone(),
                    kind: entry.kind,
                    created_at: entry.created_at,
                    last_used_at: record.data.get(RENEWED_KEY).and_then(Value::as_i64),
                }),
                None => gone.push(entry.record),
            }
        }
        if !gone.is_empty() {
            // Read again under the lock: a token made meanwhile stays.
            let _guard = self.lock(person).await?;
            if let Some(index) = self.index(person).await? {
                let mut entries = index.entries;
                entries.retain(|e| !gone.contains(&e.record));
                self.write_index(person, true, entries, index.expiry)
                    .await?;
            }
        }
        Ok(listed)
    }

    /// The entries whose records still exist.
    async fn live(&self, entries: Vec<Entry>) -> session_store::Result<Vec<Entry>> {
        let found =
            futures_util::future::join_all(entries.iter().map(|e| self.load(Id(e.record)))).await;
        let mut live = Vec::with_capacity(entries.len());
        for (entry, record) in entries.into_iter().zip(found) {
            if record?.is_some() {
                live.push(entry);
            }
        }
        Ok(live)
    }

    async fn load(&self, id: Id) -> session_store::Result<Option<Record>> {
        self.0.store.load(&id).await
    }

    async fn index(&self, person: u64) -> session_store::Result<Option<Index>> {
        let Some(record) = self.0.store.load(&self.index_id(person)).await? else {
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
    async fn write_index(
        &self,
        person: u64,
        exists: bool,
        entries: Vec<Entry>,
        expiry: OffsetDateTime,
    ) -> session_store::Result<()> {
        let json = serde_json::to_string(&entries)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let record = Record {
            id: self.index_id(person),
            data: HashMap::from([(INDEX_KEY.to_owned(), Value::String(json))]),
            expiry_date: expiry,
        };
        if exists {
            return self.0.store.save(&record).await;
        }
        for _ in 0..2 {
            if self.create_exact(record.clone()).await? {
                return Ok(());
            }
            // A record by this id that loading did not find: one that
            // expired and was not swept yet (or one another instance made
            // a moment ago, whose entries then fail closed).
            self.0.store.delete(&record.id).await?;
        }
        Err(session_store::Error::Backend(
            "the token index could not be written".into(),
        ))
    }

    /// Creates `record` under its own id; false, and nothing kept, when the
    /// store had a record by that id already.
    async fn create_exact(&self, mut record: Record) -> session_store::Result<bool> {
        let wanted = record.id;
        self.0.store.create(&mut record).await?;
        if record.id == wanted {
            Ok(true)
        } else {
            self.0.store.delete(&record.id).await?;
            Ok(false)
        }
    }
}

struct Index {
    entries: Vec<Entry>,
    expiry: OffsetDateTime,
}

fn token_record(record: &Record) -> Option<TokenRecord> {
    match record.data.get(RECORD_KEY) {
        Some(Value::String(json)) => serde_json::from_str(json).ok(),
        _ => None,
    }
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::github::GithubUser;
    use crate::session::MemoryStore;

    const DAY: Duration = Duration::from_secs(86_400);

    fn identity(id: u64) -> Identity {
        let keys = Keys::new(None);
        Identity {
            user: GithubUser {
                id,
                login: format!("person{id}"),
                name: None,
                avatar_url: String::new(),
            },
            token: keys.seal_token(&Secret::new("gho_x".into())),
            logged_in_at: 0,
            refresh: None,
            expires_at: None,
            refresh_at: None,
        }
    }

    fn tokens() -> (Tokens, MemoryStore) {
        let store = MemoryStore::on(Clock::default());
        (
            Tokens::new(Store::Memory(store.clone()), Keys::new(None)),
            store,
        )
    }

    fn now() -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    /// A fresh token of person 1, and it as presented.
    async fn made(tokens: &Tokens, name: &str) -> (Created, BearerToken) {
        let made = tokens
            .create(&identity(1), name, Kind::App, now(), (DAY, 30 * DAY))
            .await
            .unwrap();
        let token = BearerToken::parse(made.token.expose()).unwrap();
        (made, token)
    }

    async fn works(tokens: &Tokens, token: &BearerToken) -> bool {
        tokens
            .authenticate(token, now(), DAY)
            .await
            .unwrap()
            .is_some()
    }

    #[test]
    fn a_header_holds_a_token_only_in_the_bearer_scheme() {
        let (_, text) = BearerToken::generate();
        let text = text.expose();
        assert_eq!(text.len(), PREFIX.len() + ENCODED_LEN);
        let token = BearerToken::parse(text).unwrap();
        for header in [
            format!("Bearer {text}"),
            format!("bearer {text}"),
            format!("BEARER  {text} "),
        ] {
            assert_eq!(
                BearerToken::from_header(header.as_bytes()),
                Ok(token.clone()),
                "{header}"
            );
        }
        for (header, why) in [
            (format!("Basic {text}"), Malformed::Scheme),
            (text.to_owned(), Malformed::Scheme),
            ("Bearer".to_owned(), Malformed::Scheme),
            ("Bearer ".to_owned(), Malformed::Token),
            ("Bearer gho_abc".to_owned(), Malformed::Token),
            (
                format!("Bearer {}", &text[..text.len() - 1]),
                Malformed::Token,
            ),
            (format!("Bearer {text}A"), Malformed::Token),
            (
                format!("Bearer {}", text.replace("cg_", "CG_")),
                Malformed::Token,
            ),
            (format!("Bearer {text} {text}"), Malformed::Token),
        ] {
            assert_eq!(
                BearerToken::from_header(header.as_bytes()),
                Err(why),
                "{header}"
            );
        }
        assert_eq!(
            BearerToken::from_header(&[0xff, b' ', b'x']),
            Err(Malformed::Scheme)
        );
        assert_eq!(format!("{token:?}"), "BearerToken([redacted])");
    }

    #[tokio::test]
    async fn a_token_authenticates_until_revoked_and_the_store_holds_no_token() {
        let (tokens, store) = tokens();
        let (made, token) = made(&tokens, "ci").await;
        let found = tokens.authenticate(&token, now(), DAY).await.unwrap();
        assert_eq!(found.unwrap().identity.user.login, "person1");
        // The record and the index: neither holds the token's text.
        assert_eq!(store.len(), 2);
        let secret = &made.token.expose()[PREFIX.len()..];
        for id in [tokens.record_id(&token), tokens.index_id(1)] {
            let record = store.load(&id).await.unwrap().unwrap();
            let stored = serde_json::to_string(&record.data).unwrap();
            assert!(!stored.contains(secret), "{stored}");
        }
        let listed = tokens.list(1).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "ci");
        assert!(listed[0].last_used_at.is_some(), "used once");
        assert!(tokens.list(2).await.unwrap().is_empty(), "another person");
        assert_eq!(
            tokens.revoke(2, &made.id).await.unwrap(),
            None,
            "not theirs"
        );
        assert!(tokens.revoke(1, &made.id).await.unwrap().is_some());
        assert!(!works(&tokens, &token).await);
        assert!(tokens.list(1).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_list_drops_tokens_that_expired_and_keeps_the_rest() {
        let (tokens, store) = tokens();
        let (_, gone) = made(&tokens, "gone").await;
        let (_, kept) = made(&tokens, "kept").await;
        // As if it expired: the store no longer has it.
        store.delete(&tokens.record_id(&gone)).await.unwrap();
        let names = |listed: Vec<Listed>| listed.into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(names(tokens.list(1).await.unwrap()), ["kept"]);
        let index = tokens.index(1).await.unwrap().unwrap();
        assert_eq!(index.entries.len(), 1, "the index forgot it too");
        assert!(works(&tokens, &kept).await);
    }

    #[tokio::test]
    async fn a_token_its_index_does_not_list_fails_and_is_deleted() {
        let (tokens, store) = tokens();
        let (_, token) = made(&tokens, "ci").await;
        // As if another instance wrote the index without this entry.
        tokens
            .write_index(1, true, Vec::new(), at(now()) + DAY)
            .await
            .unwrap();
        assert!(!works(&tokens, &token).await);
        assert!(
            store
                .load(&tokens.record_id(&token))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn one_person_has_at_most_max_tokens() {
        let (tokens, _) = tokens();
        let ada = identity(1);
        for n in 0..MAX_TOKENS {
            tokens
                .create(&ada, &format!("t{n}"), Kind::App, now(), (DAY, DAY))
                .await
                .unwrap();
        }
        let over = tokens
            .create(&ada, "one more", Kind::App, now(), (DAY, DAY))
            .await;
        assert!(matches!(over, Err(CreateError::TooMany)), "{over:?}");
        assert_eq!(tokens.list(1).await.unwrap().len(), MAX_TOKENS);
    }

    #[tokio::test]
    async fn a_new_token_works_though_an_expired_index_was_not_swept_yet() {
        let clock = Clock::default();
        let store = MemoryStore::on(clock.clone());
        let tokens = Tokens::new(Store::Memory(store), Keys::new(None));
        let ada = identity(1);
        tokens
            .create(&ada, "old", Kind::App, clock.unix_now(), (DAY, DAY))
            .await
            .unwrap();
        clock.advance(2 * DAY);
        let now = clock.unix_now();
        let made = tokens
            .create(&ada, "new", Kind::App, now, (DAY, DAY))
            .await
            .unwrap();
        let token = BearerToken::parse(made.token.expose()).unwrap();
        assert!(
            tokens
                .authenticate(&token, now, DAY)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn ending_all_tokens_of_a_person_leaves_anothers() {
        let (tokens, _) = tokens();
        let (_, one) = made(&tokens, "one").await;
        let (_, two) = made(&tokens, "two").await;
        let bo = tokens
            .create(&identity(2), "bo", Kind::App, now(), (DAY, DAY))
            .await
            .unwrap();
        let bo = BearerToken::parse(bo.token.expose()).unwrap();
        assert_eq!(tokens.identities(1).await.unwrap().len(), 2);
        let ended = tokens.end_all(1).await.unwrap();
        assert_eq!(ended.len(), 2);
        assert!(ended.iter().all(|(_, i)| i.as_ref().unwrap().user.id == 1));
        assert!(!works(&tokens, &one).await && !works(&tokens, &two).await);
        assert!(tokens.identities(1).await.unwrap().is_empty());
        assert!(works(&tokens, &bo).await, "another person's token");
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("  laptop "), Ok("laptop"));
        assert!(check_name("   ").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
    }
}
