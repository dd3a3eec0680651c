//! Ending connections: the terminate calls, and what the registry forgets
//! or keeps after them.

use super::*;

impl Revocation {
    /// Ends person `id`'s Pusher connections; counted and logged. True when
    /// Pusher said they were ended.
    pub(super) async fn terminate(&self, id: u64, login: &str) -> bool {
        let unsigned = {
            let registry = self.0.registry.lock().expect("registry lock");
            registry.get(&id).map(unsigned).unwrap_or_default()
        };
        self.terminate_counting(id, login, unsigned).await
    }

    /// [`Revocation::terminate`], for a person whose channels on sockets
    /// that never signed in are `unsigned`: hosted Pusher's
    /// terminate_connections does not reach those sockets, so the log line
    /// says so and `channelgate_terminations_unreachable_total` counts it.
    pub(super) async fn terminate_counting(
        &self,
        id: u64,
        login: &str,
        unsigned: Unsigned,
    ) -> bool {
        let result = self.0.pusher.terminate_connections(id).await;
        self.0.metrics.termination(result.is_ok());
        let Unsigned { sockets, channels } = unsigned;
        match &result {
            Ok(()) if sockets > 0 => {
                self.0.metrics.termination_unreachable();
                tracing::warn!(
                    %login,
                    id,
                    unsigned_sockets = sockets,
                    unsigned_channels = channels,
                    "Pusher connections ended, but {sockets} of their sockets, holding {channels} of their channels, never signed in: hosted Pusher's terminate_connections reaches only sockets that called pusher.signin(), so those stay open until they close; have clients sign in before subscribing (revocation.require_signin)"
                );
            }
            Ok(()) => tracing::info!(
                %login,
                id,
                unsigned_sockets = 0,
                unsigned_channels = 0,
                "Pusher connections ended"
            ),
            Err(e) => tracing::error!(%login, id, error = %e, "could not end Pusher connections"),
        }
        result.is_ok()
    }

    /// Person `id` was dropped from a full watched set: what they hold can
    /// no longer be re-checked, so their connections end now (their client
    /// authorizes again and is watched again). A full set fails closed.
    pub(super) async fn dropped(&self, id: u64, watched: Watched) {
        self.0.metrics.grant_dropped();
        let login = watched.user.login.clone();
        self.unstore(id, watched.stored_names());
        if !self.0.terminate {
            tracing::warn!(%login, id, "watching as many people as cache.max_entries allows: forgot the grants of the one signed for longest ago (revocation.terminate_connections = false, so their connections stay open)");
            return;
        }
        tracing::warn!(%login, id, "watching as many people as cache.max_entries allows: ending the connections of the one signed for longest ago, whose grants can no longer be watched (their client authorizes again)");
        self.0.ended.insert(
            id,
            Arc::new(Ended {
                at: self.0.clock.unix_now(),
                lost: all_grants(&watched),
                reason: "the gateway watches at most cache.max_entries people at once, so your connections were ended to be authorized again".to_owned(),
            }),
        );
        // Nothing is left to retry: they are no longer watched.
        self.terminate_counting(id, &login, unsigned(&watched))
            .await;
    }

    /// After a terminate call: forget what it ended, or let a later
    /// evaluation try again.
    pub(super) fn ended_call(&self, id: u64, started: Instant, ok: bool) {
        let mut registry = self.0.registry.lock().expect("registry lock");
        let Some(watched) = registry.get_mut(&id) else {
            return;
        };
        watched.ending = false;
        if ok {
            // Every connection is gone; what was signed (or re-armed) since
            // may be live.
            let since = started + self.0.watch_for;
            let mut gone = Vec::new();
            watched.channels.retain(|name, held| {
                let live = held.until > since;
                if let (false, Some(until)) = (live, held.stored_until()) {
                    gone.push((name.clone(), until));
                }
                live
            });
            if let Some(held) = watched.signed_in.take_if(|held| held.until <= since)
                && let Some(until) = held.stored_until()
            {
                gone.push((stored::SIGN_IN.to_owned(), until));
            }
            if watched.overflow.take().is_some() {
                watched.record_version += 1;
            }
            if watched.grant_count() == 0 {
                registry.remove(&id);
            }
            drop(registry);
            self.unstore(id, gone);
        } else {
            // Due again soon rather than a whole TTL later.
            watched.next_check = self.0.clock.now() + SWEEP_TICK * 5;
        }
    }

    /// Forgets the grants in `lost` signed before `started`.
    pub(super) fn forget(&self, id: u64, lost: &[String], started: Instant) {
        let since = started + self.0.watch_for;
        let mut gone = Vec::new();
        let mut registry = self.0.registry.lock().expect("registry lock");
        if let Some(watched) = registry.get_mut(&id) {
            for name in lost {
                let (held, stored_name) = if name == SIGN_IN {
                    (
                        watched.signed_in.take_if(|held| held.until <= since),
                        stored::SIGN_IN,
                    )
                } else if watched.channels.get(name).is_some_and(|h| h.until <= since) {
                    (watched.channels.remove(name), name.as_str())
                } else {
                    (None, name.as_str())
                };
                if let Some(until) = held.and_then(|h| h.stored_until()) {
                    gone.push((stored_name.to_owned(), until));
                }
            }
            if watched.overflow.take().is_some() {
                watched.record_version += 1;
            }
            if watched.grant_count() == 0 {
                registry.remove(&id);
            }
        }
        drop(registry);
        self.unstore(id, gone);
    }
}
