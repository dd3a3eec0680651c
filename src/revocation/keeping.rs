//! Grants kept in the session store (SQLite, Redis): taken back at start,
//! written before a new grant's signature goes out, re-armed ends written
//! lazily by the sweep, and forgotten with what they held.

use super::*;

impl Revocation {
    /// The clock's Unix time in milliseconds, as the store keeps ends.
    pub(super) fn now_ms(&self) -> i64 {
        i64::try_from(self.0.clock.utc_now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// `until` in the store's terms, read at `now` (`now_ms`).
    pub(super) fn until_ms(until: Instant, now: Instant, now_ms: i64) -> i64 {
        let ahead =
            i64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_add(ahead)
    }

    /// Keeps grants in `store` from now on (when it keeps any: SQLite,
    /// Redis), and watches again what it holds from before a restart: the
    /// freshest people up to `cache.max_entries`, each up to
    /// [`MAX_CHANNELS_PER_PERSON`] channels. Those past the cap of people
    /// are dropped as from a full set (their connections ended). Returns
    /// how many people and grants were taken back.
    pub async fn keep_in(&self, store: Room) -> Result<(usize, usize), String> {
        if !self.is_on() || !store.keeps_grants() {
            return Ok((0, 0));
        }
        let now_ms = self.now_ms();
        let mut people = store.load_grants(now_ms).await.map_err(|e| e.to_string())?;
        let _ = self.0.store.set(store);
        let freshest = |p: &StoredPerson| p.grants.iter().map(|g| g.until_ms).max();
        people.sort_by_key(|p| std::cmp::Reverse(freshest(p)));
        let now = self.0.clock.now();
        let ttl = self.ttl();
        let (mut loaded, mut grants) = (0, 0);
        let mut beyond = Vec::new();
        {
            let mut registry = self.0.registry.lock().expect("registry lock");
            for person in people {
                let id = person.id;
                let Some(watched) = self.watched_from(&person, now, now_ms) else {
                    tracing::warn!(
                        id,
                        "a stored grant's record cannot be read; ending their connections, as its grants cannot be re-checked"
                    );
                    let gone = person.grants.into_iter().map(|g| (g.name, g.until_ms));
                    beyond.push((id, Err(gone.collect::<Vec<_>>())));
                    continue;
                };
                if registry.len() >= self.0.max_people && !registry.contains_key(&id) {
                    beyond.push((id, Ok(watched)));
                    continue;
                }
                let mut watched = watched;
                watched.next_check = now + spread(id, ttl);
                loaded += 1;
                grants += watched.grant_count();
                registry.insert(id, watched);
            }
        }
        for (id, watched) in beyond {
            let this = self.clone();
            self.0.tasks.job(
                format!("dropping {id}, loaded past cache.max_entries"),
                async move {
                    match watched {
                        Ok(watched) => this.dropped(id, watched).await,
                        Err(gone) => {
                            this.unstore(id, gone);
                            this.terminate_counting(id, "?", Unsigned::default()).await;
                        }
                    }
                },
            );
        }
        Ok((loaded, grants))
    }

    /// A person as the store kept them; `None` when their record is unreadable.
    pub(super) fn watched_from(
        &self,
        person: &StoredPerson,
        now: Instant,
        now_ms: i64,
    ) -> Option<Watched> {
        let record: Record = serde_json::from_str(&person.record).ok()?;
        let expiring = match (record.refresh, record.expires_at, record.refresh_at) {
            (Some(refresh), Some(expires_at), Some(refresh_at)) => Some(Expiring {
                refresh,
                expires_at,
                refresh_at,
            }),
            _ => None,
        };
        let mut watched = Watched::new(record.user, record.token, expiring, now);
        watched.overflow = record.overflow;
        watched.record_stored = Some(0);
        let mut grants: Vec<&StoredGrant> = person.grants.iter().collect();
        grants.sort_by_key(|g| std::cmp::Reverse(g.until_ms));
        for grant in grants {
            let ahead = u64::try_from(grant.until_ms.saturating_sub(now_ms)).unwrap_or(0);
            let until = now + Duration::from_millis(ahead).min(self.0.watch_for);
            let held = Held {
                until,
                sockets: Sockets::parse(&grant.sockets),
                version: 0,
                stored: Some((0, grant.until_ms)),
            };
            if grant.name == stored::SIGN_IN {
                for key in parse_keys(&grant.sockets) {
                    hold_recent(&mut watched.signed_sockets, key, MAX_SIGNED_IN_SOCKETS);
                }
                watched.signed_in = Some(held);
            } else if watched.channels.len() < MAX_CHANNELS_PER_PERSON {
                watched.channels.insert(grant.name.clone(), held);
            } else if watched.overflow.is_none() {
                // More were kept than one instance watches: what is beyond
                // the cap is unknown, so any change ends everything (no
                // membership's fingerprint is ever this).
                watched.overflow = Some(0);
            }
        }
        Some(watched)
    }

    /// Writes `write` to the store, and notes what the store now holds.
    pub(super) async fn write(&self, store: &Room, write: Write) -> Result<(), NotKept> {
        store
            .keep_grants(write.id, &write.record.1, &write.grants, self.0.watch_for)
            .await
            .map_err(|e| NotKept {
                store: store.kind(),
                cause: e.to_string(),
            })?;
        let mut registry = self.0.registry.lock().expect("registry lock");
        let Some(watched) = registry.get_mut(&write.id) else {
            return Ok(());
        };
        if watched.record_version == write.record.0 {
            watched.record_stored = Some(write.record.0);
        }
        for (grant, version) in write.grants.iter().zip(write.versions) {
            if let Some(held) = watched.held_mut(&grant.name) {
                // Versions only grow: a later write that landed first stays.
                if held.stored.is_none_or(|(v, _)| v <= version) {
                    let until = held.stored_until().unwrap_or(i64::MIN).max(grant.until_ms);
                    held.stored = Some((version, until));
                }
            }
        }
        Ok(())
    }

    /// Removes `gone` (names and stored ends) of person `id` from the
    /// store, in the background.
    pub(super) fn unstore(&self, id: u64, gone: Vec<(String, i64)>) {
        let Some(store) = self.0.store.get().cloned() else {
            return;
        };
        if gone.is_empty() {
            return;
        }
        self.0
            .tasks
            .job(format!("forgetting grants of {id} in the store"), async move {
                if let Err(e) = store.forget_grants(id, &gone).await {
                    // Kept, they are loaded at the next start and re-checked
                    // then: nothing is lost, a little is re-read.
                    tracing::warn!(id, error = %e, "could not remove ended grants from the session store; they expire there after revocation.watch_for");
                }
            });
    }

    /// Starts writing to the store the grants whose end there lags theirs
    /// by a [`LAZY_FRACTION`]th of `watch_for` or more (re-signed or
    /// re-armed), with records that changed; one write at a time.
    pub(super) fn flush(&self, registry: &HashMap<u64, Watched>, now: Instant) {
        let Some(store) = self.0.store.get() else {
            return;
        };
        if self.0.flushing.load(Ordering::Acquire) {
            return;
        }
        let now_ms = self.now_ms();
        let slack = i64::try_from((self.0.watch_for / LAZY_FRACTION).as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let mut writes = Vec::new();
        for (id, w) in registry {
            if w.ending {
                continue;
            }
            let (mut grants, mut versions) = (Vec::new(), Vec::new());
            let named = w
                .channels
                .iter()
                .map(|(name, held)| (name.as_str(), held))
                .chain(w.signed_in.as_ref().map(|held| (stored::SIGN_IN, held)));
            for (name, held) in named {
                let until_ms = Self::until_ms(held.until, now, now_ms);
                let lags = held
                    .stored_until()
                    .is_none_or(|stored| until_ms - stored >= slack);
                if lags || !held.is_stored() {
                    grants.push(StoredGrant {
                        name: name.to_owned(),
                        until_ms,
                        sockets: w.sockets_text(name, held),
                    });
                    versions.push(held.version);
                }
            }
            // Only what changed is written; the record goes with it.
            if !grants.is_empty() || w.record_changed() {
                writes.push(Write {
                    id: *id,
                    record: w.record_now(),
                    grants,
                    versions,
                });
            }
        }
        if writes.is_empty() {
            return;
        }
        self.0.flushing.store(true, Ordering::Release);
        let (this, store) = (self.clone(), store.clone());
        self.0
            .tasks
            .job("writing re-armed grants to the store", async move {
                for write in writes {
                    let id = write.id;
                    if let Err(e) = this.write(&store, write).await {
                        tracing::warn!(id, error = %e, "could not write re-armed grants; tried again at the next sweep");
                        break;
                    }
                }
                this.0.flushing.store(false, Ordering::Release);
            });
    }
}
