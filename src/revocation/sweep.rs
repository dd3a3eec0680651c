//! The sweep: once a tick, forgets grants past their end and re-reads each
//! watched person due a look (once per `cache.membership_ttl`).

use super::*;

impl Revocation {
    /// One pass of the sweep: forgets grants past their end (in the store
    /// too), writes re-armed grants' new ends to the store, and starts a
    /// re-read of each person due one.
    pub fn sweep_once(&self) {
        let now = self.0.clock.now();
        let ttl = self.ttl();
        let mut due = Vec::new();
        let mut gone = Vec::new();
        {
            let mut registry = self.0.registry.lock().expect("registry lock");
            registry.retain(|id, w| {
                let mut ended = Vec::new();
                w.channels.retain(|name, held| {
                    let live = held.until > now;
                    if let (false, Some(until)) = (live, held.stored_until()) {
                        ended.push((name.clone(), until));
                    }
                    live
                });
                if let Some(held) = w.signed_in.take_if(|held| held.until <= now)
                    && let Some(until) = held.stored_until()
                {
                    ended.push((stored::SIGN_IN.to_owned(), until));
                }
                if !ended.is_empty() {
                    gone.push((*id, ended));
                }
                // Past the cap, what they signed beyond it is unknown and
                // may still be held: watched for watch_for after their
                // last signing, whatever expired of what is remembered.
                let past_cap = w.overflow.is_some()
                    && now.saturating_duration_since(w.last_signed) < self.0.watch_for;
                w.grant_count() > 0 || w.ending || past_cap
            });
            self.flush(&registry, now);
            for (id, w) in registry.iter_mut() {
                if w.next_check <= now && !w.ending {
                    w.next_check = now + ttl;
                    due.push((*id, !w.rephased));
                    w.rephased = true;
                }
            }
        }
        for (id, ended) in gone {
            self.unstore(id, ended);
        }
        for (id, force) in due {
            let this = self.clone();
            self.0
                .tasks
                .job(format!("the sweep's re-read of {id}"), async move {
                    this.sweep_check(id, force).await;
                });
        }
    }

    /// The sweep's look at person `id`: a re-read, unless a request has
    /// re-read them within the TTL (then their grants are checked against
    /// that read, and the next look is due when it goes stale; so too after
    /// a re-read that took an answer another instance shared). So nobody goes longer than a TTL (and a tick)
    /// unconfirmed, and an active person is not read twice per TTL.
    pub(super) async fn sweep_check(&self, id: u64, force: bool) {
        if !force && let Some(m) = self.0.memberships.peek(id).await {
            let stale_at = m.confirmed_at + self.ttl();
            if stale_at > self.0.clock.now() {
                if let Some(w) = self.0.registry.lock().expect("registry lock").get_mut(&id) {
                    w.next_check = stale_at;
                }
                // No read, but the grants are checked against that fresh
                // read: a terminate call that failed is tried again, and news
                // of a change that found the channel full is not lost.
                self.evaluate(id, Ok(m), &Cause::Sweep).await;
                return;
            }
        }
        self.recheck(id, Cause::Sweep).await;
        // The re-read may have taken an answer another instance shared,
        // read up to a TTL ago: the next look is due when it goes stale.
        if let Some(m) = self.0.memberships.peek(id).await
            && m.confirmed_at + self.ttl() > self.0.clock.now()
            && let Some(w) = self.0.registry.lock().expect("registry lock").get_mut(&id)
        {
            w.next_check = w.next_check.min(m.confirmed_at + self.ttl());
        }
    }
}

/// Spreads people's first re-read over one TTL by their id, so a crowd that
/// logged in together is not re-read together.
pub(super) fn spread(id: u64, ttl: Duration) -> Duration {
    let fraction = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    ttl.mul_f64(fraction)
}

/// Takes the person signed for longest ago out of the set, to make room.
pub(super) fn evict_oldest(registry: &mut HashMap<u64, Watched>) -> Option<(u64, Watched)> {
    let id = registry
        .iter()
        .filter(|(_, w)| !w.ending)
        .min_by_key(|(_, w)| w.last_signed)
        .map(|(id, _)| *id)?;
    registry.remove(&id).map(|w| (id, w))
}
