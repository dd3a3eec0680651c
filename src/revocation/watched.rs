//! What the registry remembers of a person: their grants (channel and
//! sign-in, each with the sockets that hold it and its end), the tokens
//! that re-read them, and the record the store keeps of them.

use super::*;

/// A socket id as grants remember it: the 64-bit FNV-1a hash of its text,
/// eight bytes and no allocation. Two sockets of one person sharing a hash
/// would only share their re-arming and their count as signed in.
pub(super) fn socket_key(socket: &str) -> u64 {
    socket.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Makes `key` the most recent of `keys`, forgetting the oldest past
/// `cap`. True when it was not held before.
pub(super) fn hold_recent(keys: &mut Vec<u64>, key: u64, cap: usize) -> bool {
    if let Some(i) = keys.iter().position(|k| *k == key) {
        keys.remove(i);
        keys.push(key);
        false
    } else {
        if keys.len() >= cap {
            keys.remove(0);
        }
        keys.push(key);
        true
    }
}

/// Socket keys as the store keeps them: hexadecimal, comma-separated.
pub(super) fn join_keys(keys: &[u64]) -> String {
    keys.iter()
        .map(|k| format!("{k:x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What [`join_keys`] wrote; anything else is skipped.
pub(super) fn parse_keys(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.split(',')
        .filter_map(|k| u64::from_str_radix(k, 16).ok())
}

/// The sockets a grant was signed for (their keys), the
/// [`MAX_SOCKETS_PER_GRANT`] most recent, the most recent last. Inline: a
/// grant costs no allocation for its sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sockets {
    pub(super) keys: [u64; MAX_SOCKETS_PER_GRANT],
    pub(super) len: u8,
}

impl Sockets {
    /// Makes `key` the most recent, forgetting the oldest past the cap.
    /// True when it was not held before.
    pub(super) fn hold(&mut self, key: u64) -> bool {
        let len = usize::from(self.len);
        if let Some(i) = self.keys[..len].iter().position(|k| *k == key) {
            self.keys[i..len].rotate_left(1);
            false
        } else if len < MAX_SOCKETS_PER_GRANT {
            self.keys[len] = key;
            self.len += 1;
            true
        } else {
            self.keys.rotate_left(1);
            self.keys[MAX_SOCKETS_PER_GRANT - 1] = key;
            true
        }
    }

    pub(super) fn keys(&self) -> &[u64] {
        &self.keys[..usize::from(self.len)]
    }

    pub(super) fn contains(&self, key: u64) -> bool {
        self.keys().contains(&key)
    }

    /// Every key of `text` held in turn: the last ones stay.
    pub(super) fn parse(text: &str) -> Self {
        let mut sockets = Self::default();
        for key in parse_keys(text) {
            sockets.hold(key);
        }
        sockets
    }
}

/// One grant as watched.
pub(super) struct Held {
    /// When it stops being watched: `watch_for` after it was last signed,
    /// or after one of its sockets last authorized or signed in.
    pub(super) until: Instant,
    /// The sockets it was signed for.
    pub(super) sockets: Sockets,
    /// Bumped when `sockets` changes.
    pub(super) version: u32,
    /// What the store holds: the version written and its end (Unix ms).
    pub(super) stored: Option<(u32, i64)>,
}

impl Held {
    pub(super) fn new(until: Instant) -> Self {
        Self {
            until,
            sockets: Sockets::default(),
            version: 0,
            stored: None,
        }
    }

    /// The store holds it with these sockets (perhaps an earlier end).
    pub(super) fn is_stored(&self) -> bool {
        self.stored.is_some_and(|(v, _)| v == self.version)
    }

    /// The end the store holds, whatever its sockets.
    pub(super) fn stored_until(&self) -> Option<i64> {
        self.stored.map(|(_, until)| until)
    }
}

/// A person's record as the store keeps it: who, and the sealed token (and
/// sealed refresh data) that re-read them. Never a token in clear.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Record {
    pub(super) user: GithubUser,
    pub(super) token: SealedToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) refresh: Option<SealedToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) refresh_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) overflow: Option<u64>,
}

/// What is written to the store for one person.
pub(super) struct Write {
    pub(super) id: u64,
    /// The record, and the version of it.
    pub(super) record: (u32, String),
    pub(super) grants: Vec<StoredGrant>,
    /// The version of each of `grants`' sockets.
    pub(super) versions: Vec<u32>,
}

/// One person's grants.
pub(super) struct Watched {
    pub(super) user: GithubUser,
    pub(super) token: SealedToken,
    /// The refresh token and due time of `token`, when it expires.
    pub(super) expiring: Option<Expiring>,
    /// The tokens of the person's other sessions that signed here, the
    /// most recent last (at most [`MAX_SPARE_TOKENS`], in memory only):
    /// when GitHub refuses `token` (that session ended, or GitHub dropped
    /// its oldest token), re-reads go on with one of these, so one dead
    /// token does not end the connections of every device.
    pub(super) spares: Vec<(SealedToken, Option<Expiring>)>,
    /// Channel name → the grant.
    pub(super) channels: HashMap<String, Held>,
    /// `pusher.signin()`.
    pub(super) signed_in: Option<Held>,
    /// The sockets that signed in (keys), the [`MAX_SIGNED_IN_SOCKETS`]
    /// most recent, the most recent last; what the store keeps of the
    /// sign-in's sockets.
    pub(super) signed_sockets: Vec<u64>,
    /// Set past [`MAX_CHANNELS_PER_PERSON`]: the membership's fingerprint then.
    pub(super) overflow: Option<u64>,
    /// When the sweep looks at them next.
    pub(super) next_check: Instant,
    /// The first look, at a point of the TTL spread by id, re-reads
    /// whatever the cache holds; later ones only when nothing else has.
    pub(super) rephased: bool,
    /// The latest signing.
    pub(super) last_signed: Instant,
    /// A terminate call is in flight.
    pub(super) ending: bool,
    /// Bumped when what [`Record`] holds changes.
    pub(super) record_version: u32,
    /// The version of the record the store holds.
    pub(super) record_stored: Option<u32>,
}

impl Watched {
    pub(super) fn new(
        user: GithubUser,
        token: SealedToken,
        expiring: Option<Expiring>,
        now: Instant,
    ) -> Self {
        Self {
            user,
            token,
            expiring,
            spares: Vec::new(),
            channels: HashMap::new(),
            signed_in: None,
            signed_sockets: Vec::new(),
            overflow: None,
            next_check: now,
            rephased: false,
            last_signed: now,
            ending: false,
            record_version: 0,
            record_stored: None,
        }
    }

    pub(super) fn grant_count(&self) -> usize {
        self.channels.len() + usize::from(self.signed_in.is_some())
    }

    /// Every grant this socket holds is watched until `until` at least.
    pub(super) fn rearm(&mut self, socket: u64, until: Instant) {
        for held in self.channels.values_mut().chain(self.signed_in.as_mut()) {
            if held.until < until && held.sockets.contains(socket) {
                held.until = until;
            }
        }
    }

    /// The sockets of the grant the store names `name`, as it keeps them.
    pub(super) fn sockets_text(&self, name: &str, held: &Held) -> String {
        if name == stored::SIGN_IN {
            join_keys(&self.signed_sockets)
        } else {
            join_keys(held.sockets.keys())
        }
    }

    /// The grant the store names `name`.
    pub(super) fn held_mut(&mut self, name: &str) -> Option<&mut Held> {
        if name == stored::SIGN_IN {
            self.signed_in.as_mut()
        } else {
            self.channels.get_mut(name)
        }
    }

    /// Every grant as the store names it, with its end there (those the
    /// store holds).
    pub(super) fn stored_names(&self) -> Vec<(String, i64)> {
        let channels = self
            .channels
            .iter()
            .filter_map(|(name, held)| Some((name.clone(), held.stored_until()?)));
        let signed_in = self
            .signed_in
            .as_ref()
            .and_then(|held| Some((stored::SIGN_IN.to_owned(), held.stored_until()?)));
        channels.chain(signed_in).collect()
    }

    pub(super) fn record(&self) -> String {
        let expiring = self.expiring.as_ref();
        serde_json::to_string(&Record {
            user: self.user.clone(),
            token: self.token.clone(),
            refresh: expiring.map(|e| e.refresh.clone()),
            expires_at: expiring.map(|e| e.expires_at),
            refresh_at: expiring.map(|e| e.refresh_at),
            overflow: self.overflow,
        })
        .expect("a record serializes")
    }

    /// The record, when the store does not hold it as it is.
    /// Re-reads go on with `token` (the latest signing's, or a refresh's):
    /// the one most likely to work. The one it replaces is kept among the
    /// spares in case this one dies first.
    pub(super) fn replace_token(&mut self, token: &SealedToken, expiring: Option<Expiring>) {
        let before = (
            std::mem::replace(&mut self.token, token.clone()),
            std::mem::replace(&mut self.expiring, expiring),
        );
        self.spares.retain(|(t, _)| t != token && *t != before.0);
        self.spares.push(before);
        if self.spares.len() > MAX_SPARE_TOKENS {
            self.spares.remove(0);
        }
    }

    /// Whether the record changed since the store last took it.
    pub(super) fn record_changed(&self) -> bool {
        self.record_stored != Some(self.record_version)
    }

    /// The record to send with a write, and its version. Sent with every
    /// write, changed or not: the person's record may have gone meanwhile
    /// (their last grant forgotten here or by another instance, their
    /// Redis key expired), and a grant written without one is a grant no
    /// load would find.
    pub(super) fn record_now(&self) -> (u32, String) {
        (self.record_version, self.record())
    }
}
