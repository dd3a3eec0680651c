//! The memory room's claims and markers: a map of keys to their holder and
//! end, pruned of ended claims as it grows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Claims in this process.
#[derive(Debug, Default)]
pub struct Local {
    claims: Mutex<Claims>,
}

#[derive(Debug, Default)]
struct Claims {
    held: HashMap<String, (String, Instant)>,
    /// Size after the last prune: the next prune comes at twice it.
    pruned_at: usize,
}

impl Local {
    /// Claims `key` for `holder` until `hold` from now, unless a claim
    /// that has not ended holds it.
    pub fn claim(&self, key: &str, holder: &str, hold: Duration) -> bool {
        let now = Instant::now();
        let mut claims = self.claims.lock().expect("claims lock");
        if claims.held.len() >= (claims.pruned_at * 2).max(1024) {
            claims.held.retain(|_, (_, until)| *until > now);
            claims.pruned_at = claims.held.len();
        }
        match claims.held.get(key) {
            Some((_, until)) if *until > now => false,
            _ => {
                claims
                    .held
                    .insert(key.to_owned(), (holder.to_owned(), now + hold));
                true
            }
        }
    }

    /// Gives up `key` if `holder` holds it.
    pub fn release(&self, key: &str, holder: &str) {
        let mut claims = self.claims.lock().expect("claims lock");
        if claims.held.get(key).is_some_and(|(h, _)| h == holder) {
            claims.held.remove(key);
        }
    }
}
