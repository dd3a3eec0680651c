//! `SIGHUP`: the configuration file read again, and what can change
//! without a restart swapped in at once.
//!
//! An invalid file changes nothing; each of its problems is logged with its
//! key and line. A valid one replaces `[[rules]]`, `[signin]`, `[limits]`,
//! `cache.membership_ttl`, `cache.stale_grace`, `server.allowed_origins`,
//! `revocation.require_signin` and `revocation.signin_wait` in one atomic
//! swap: a request in flight finishes on the configuration it
//! began with, and no connection or session is dropped. Every other key
//! keeps its running value until a restart, and each that changed is named
//! in the log. Then live grants are re-evaluated, so a removed rule ends
//! the subscriptions it allowed.

use std::path::Path;
use std::sync::Arc;

use super::state::{AppState, Limits};
use crate::config::Config;
use crate::revocation::Access;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The new rules (and the rest that can change live) are in force; these
    /// changed keys wait for a restart.
    Applied {
        /// Keys whose new value needs a restart.
        restart_needed: Vec<&'static str>,
    },
    /// The file is invalid (or unreadable): nothing changed.
    Refused {
        /// Every problem, as `check-config` prints it.
        problems: Vec<String>,
    },
}

impl AppState {
    /// Reads `path` again and applies it (see the module's notes), logging
    /// what happened.
    pub async fn reload_from(&self, path: &Path) -> Reloaded {
        match Config::load(path) {
            Ok(config) => self.reload(config).await,
            Err(e) => {
                let problems: Vec<String> = e
                    .problems
                    .iter()
                    .map(|p| match p.line {
                        Some(line) => format!("{}:{line}: {}: {}", e.source, p.key, p.message),
                        None => format!("{}: {}: {}", e.source, p.key, p.message),
                    })
                    .collect();
                for problem in &problems {
                    tracing::error!(%problem, "reload refused; the running configuration is unchanged");
                }
                self.metrics.reload(false);
                Reloaded::Refused { problems }
            }
        }
    }

    /// Applies `new` (already validated), as [`AppState::reload_from`] does.
    pub async fn reload(&self, new: Config) -> Reloaded {
        let old = self.config();
        let restart_needed = restart_needed(&old, &new);
        let mut next = Config::clone(&old);
        next.rules = new.rules;
        next.signin = new.signin;
        next.limits = new.limits;
        next.cache.membership_ttl = new.cache.membership_ttl;
        next.cache.stale_grace = new.cache.stale_grace;
        next.server.allowed_origins = new.server.allowed_origins;
        next.device = new.device;
        // The file was checked against its own watch_for and
        // request_timeout, which take effect only at a restart: these two
        // must also fit the running ones, or they keep their values.
        if new.revocation.require_signin && old.revocation.watch_for.is_zero() {
            tracing::warn!(
                "revocation.require_signin = true waits for a restart: the running revocation.watch_for is \"0s\", so no sign-in would be remembered"
            );
        } else if new.revocation.signin_wait >= old.server.request_timeout {
            tracing::warn!(
                "revocation.signin_wait keeps its running value until a restart: the new one is not shorter than the running server.request_timeout"
            );
            next.revocation.require_signin = new.revocation.require_signin;
        } else {
            next.revocation.require_signin = new.revocation.require_signin;
            next.revocation.signin_wait = new.revocation.signin_wait;
        }
        let limits_changed = next.limits != old.limits;
        drop(old);
        let next = Arc::new(next);
        // Rate counts start afresh only when the limits changed.
        if limits_changed {
            self.swap_limits(Limits::of(&next.limits));
        }
        self.memberships.set_policy(&next.cache);
        self.revocation.set_ttl(next.cache.membership_ttl);
        self.swap_config(next.clone());
        for w in next.warnings() {
            tracing::warn!(key = %w.key, "{}", w.message);
        }
        for key in &restart_needed {
            tracing::warn!(
                key,
                "changed in the file, but takes effect only after a restart"
            );
        }
        tracing::info!(
            rules = next.rules.rules().len(),
            restart_needed = restart_needed.len(),
            "configuration reloaded"
        );
        self.metrics.reload(true);
        // A removed rule takes its channels away live.
        self.revocation
            .set_access(Access {
                rules: next.rules.clone(),
                signin: next.signin.clone(),
            })
            .await;
        Reloaded::Applied { restart_needed }
    }
}

/// The keys that differ between `old` and `new` but are read only at start.
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (old, new);
    let secret = |a: &crate::secret::Secret<String>, b: &crate::secret::Secret<String>| {
        a.expose() != b.expose()
    };
    let checks: [(&'static str, bool); 26] = [
        ("server.listen", o.server.listen != n.server.listen),
        (
            "server.public_url",
            o.server.public_url != n.server.public_url,
        ),
        (
            "server.header_timeout",
            o.server.header_timeout != n.server.header_timeout,
        ),
        (
            "server.request_timeout",
            o.server.request_timeout != n.server.request_timeout,
        ),
        (
            "server.max_connections",
            o.server.max_connections != n.server.max_connections,
        ),
        (
            "server.trusted_proxies",
            o.server.trusted_proxies != n.server.trusted_proxies,
        ),
        (
            "server.metrics_listen",
            o.server.metrics_listen != n.server.metrics_listen,
        ),
        ("pusher.app_id", o.pusher.app_id != n.pusher.app_id),
        ("pusher.key", o.pusher.key != n.pusher.key),
        ("pusher.secret", secret(&o.pusher.secret, &n.pusher.secret)),
        (
            "pusher.encryption_master_key_base64",
            o.pusher.encryption_master_key.as_ref().map(|k| *k.expose())
                != n.pusher.encryption_master_key.as_ref().map(|k| *k.expose()),
        ),
        (
            "pusher.cluster, host, tls or api_url",
            o.pusher.cluster != n.pusher.cluster
                || o.pusher.host != n.pusher.host
                || o.pusher.tls != n.pusher.tls
                || o.pusher.api_url() != n.pusher.api_url(),
        ),
        ("github.client_id", o.github.client_id != n.github.client_id),
        (
            "github.client_secret",
            secret(&o.github.client_secret, &n.github.client_secret),
        ),
        (
            "github.web_url, api_url, scopes or timeout",
            o.github.web_url != n.github.web_url
                || o.github.api_url != n.github.api_url
                || o.github.scopes != n.github.scopes
                || o.github.timeout != n.github.timeout,
        ),
        ("session.store", o.session.store != n.session.store),
        ("session.ttl", o.session.ttl != n.session.ttl),
        ("session.max_age", o.session.max_age != n.session.max_age),
        (
            "session.cookie_name",
            o.session.cookie_name != n.session.cookie_name,
        ),
        (
            "session.encryption_key_base64",
            o.session
                .encryption_key
                .as_ref()
                .map(|k| k.expose().clone())
                != n.session
                    .encryption_key
                    .as_ref()
                    .map(|k| k.expose().clone()),
        ),
        (
            "cache.max_entries",
            o.cache.max_entries != n.cache.max_entries,
        ),
        (
            "webhooks",
            o.webhooks.as_ref().map(|w| w.secret.expose().clone())
                != n.webhooks.as_ref().map(|w| w.secret.expose().clone()),
        ),
        (
            "revocation.watch_for",
            o.revocation.watch_for != n.revocation.watch_for,
        ),
        (
            "revocation.terminate_connections",
            o.revocation.terminate_connections != n.revocation.terminate_connections,
        ),
        ("log.format", o.log.format != n.log.format),
        ("log.level", o.log.level != n.log.level),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key)
        .collect()
}
