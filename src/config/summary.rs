//! The configuration in words, for `check-config`. Secrets are shown only
//! as present; a password in a store URL is redacted.

use crate::rules::{Conditions, Rule};

use super::{Config, format_duration};

impl Config {
    /// A human summary of the configuration as understood, for `check-config`.
    /// Secrets are reported only as present.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let (server, pusher, github, session, cache) = (
            &self.server,
            &self.pusher,
            &self.github,
            &self.session,
            &self.cache,
        );
        let _ = writeln!(
            s,
            "server:  listens on {}, public URL {}, OAuth callback {}/auth/callback",
            server.listen, server.public_url, server.public_url
        );
        let _ = writeln!(
            s,
            "         headers within {}, requests within {}, at most {} connections",
            format_duration(server.header_timeout),
            format_duration(server.request_timeout),
            server.max_connections
        );
        let proxies: Vec<String> = server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            s,
            "         client address: {}",
            if proxies.is_empty() {
                "the peer's (X-Forwarded-For is ignored)".to_owned()
            } else {
                format!(
                    "from X-Forwarded-For when the peer is in {}",
                    proxies.join(", ")
                )
            }
        );
        if !server.allowed_origins.is_empty() {
            let _ = writeln!(
                s,
                "         also accepts origins {}",
                server.allowed_origins.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "pusher:  app {} key {} via {}; private-encrypted- channels {}",
            pusher.app_id,
            pusher.key,
            pusher.host.as_ref().map_or_else(
                || format!("cluster {}", pusher.cluster),
                ToString::to_string
            ),
            if pusher.encryption_master_key.is_some() {
                "enabled"
            } else {
                "disabled (no master key)"
            }
        );
        let _ = writeln!(
            s,
            "github:  {} (API {}), client {}, scopes {}",
            github.web_url,
            github.api_url,
            github.client_id,
            github.scopes.join(" ")
        );
        let _ = writeln!(
            s,
            "session: {} store, expires after {} idle or {} after login, cookie {}; tokens encrypted with {}",
            session.store,
            format_duration(session.ttl),
            format_duration(session.max_age),
            session.cookie_name(server.is_https()),
            if session.encryption_key.is_some() {
                "the configured key"
            } else {
                "a random key of this process"
            }
        );
        for line in per_process(&session.store) {
            let _ = writeln!(s, "         {line}");
        }
        let _ = writeln!(
            s,
            "cache:   membership trusted for {}, stale grace {}, at most {} people",
            format_duration(cache.membership_ttl),
            format_duration(cache.stale_grace),
            cache.max_entries
        );
        let limit = |n: u32, per: &str| match n {
            0 => format!("unlimited {per}"),
            n => format!("{n} a minute {per}"),
        };
        let _ = writeln!(
            s,
            "limits:  logins {}; Pusher auth {}",
            limit(self.limits.login_per_minute, "per client address"),
            limit(self.limits.auth_per_minute, "per person")
        );
        let _ = writeln!(
            s,
            "signin:  {}",
            match &self.signin {
                None => "refused to everyone (no [signin])".to_owned(),
                Some(c) => describe_admitted(c).unwrap_or_default(),
            }
        );
        let _ = writeln!(
            s,
            "ops:     metrics {}; logs as {} at {} (RUST_LOG wins); SIGHUP reloads the rules",
            server.metrics_listen.map_or_else(
                || "off (no server.metrics_listen)".to_owned(),
                |a| format!("at http://{a}/metrics")
            ),
            match self.log.format {
                super::LogFormat::Text => "text",
                super::LogFormat::Json => "JSON",
            },
            self.log.level
        );
        let revocation = &self.revocation;
        let _ = writeln!(
            s,
            "revoke:  {}; webhooks {}",
            if revocation.watch_for.is_zero() {
                "off: a signed channel is never re-checked (revocation.watch_for = \"0s\")"
                    .to_owned()
            } else {
                format!(
                    "channels signed within {} re-checked every {}; a lost one {} (Pusher API {})",
                    format_duration(revocation.watch_for),
                    format_duration(cache.membership_ttl),
                    if revocation.terminate_connections {
                        "ends the person's connections"
                    } else {
                        "is only logged (terminate_connections = false)"
                    },
                    pusher.api_url()
                )
            },
            if self.webhooks.is_some() {
                "on at POST /github/webhook"
            } else {
                "off (no [webhooks]): changes are seen by the sweep"
            }
        );
        let _ = writeln!(
            s,
            "         {}",
            if revocation.require_signin {
                format!(
                    "channels signed only for connections signed in as the same person (pusher.signin()), awaited up to {}",
                    format_duration(revocation.signin_wait)
                )
            } else {
                "channels signed for connections whether or not they signed in (require_signin = false): hosted Pusher cannot end those that did not".to_owned()
            }
        );
        let rules = self.rules.rules();
        if rules.is_empty() {
            let _ = writeln!(s, "rules:   none: every channel will be denied");
        } else {
            let _ = writeln!(s, "rules:   (the first that allows a channel wins)");
            let width = rules
                .iter()
                .map(|r| r.pattern.as_str().len())
                .max()
                .unwrap_or(0);
            for (i, rule) in rules.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  rules[{i}] {:width$}  {}",
                    rule.pattern.as_str(),
                    describe_rule(rule)
                );
            }
        }
        s
    }
}

/// What a store that is not shared by a fleet (memory, SQLite) leaves to
/// each process, one line each; nothing for Redis, which shares it all.
fn per_process(store: &super::SessionStore) -> Vec<String> {
    if !matches!(
        store,
        super::SessionStore::Memory | super::SessionStore::Sqlite(_)
    ) {
        return Vec::new();
    }
    let kind = store.kind();
    [
        "[limits] are counted by each instance alone",
        "a login's state and a device code are spent, and device polls paced, at one instance only",
        "a sign-in (pusher.signin()) is seen only by the instance that signed it: with require_signin behind a balancer, a connection's requests must reach that instance",
    ]
    .into_iter()
    .map(|what| format!("per process ({kind} store): {what}; a Redis store shares this across a fleet"))
    .collect()
}

/// Who a rule admits, in words.
fn describe_rule(rule: &Rule) -> String {
    match describe_admitted(&rule.conditions) {
        Some(who) if rule.pattern.has_placeholder() => format!("{who}, where the placeholders fit"),
        Some(who) => who,
        None => "anyone the placeholders fit".to_owned(),
    }
}

/// Who conditions admit, in words; `None` when they list nobody.
fn describe_admitted(c: &Conditions) -> Option<String> {
    let mut who = Vec::new();
    if c.everyone {
        who.push("every logged-in person".to_owned());
    }
    if !c.users.is_empty() {
        who.push(format!("users {}", c.users.join(", ")));
    }
    if !c.orgs.is_empty() {
        who.push(format!("active members of {}", c.orgs.join(", ")));
    }
    if !c.teams.is_empty() {
        let teams: Vec<String> = c.teams.iter().map(ToString::to_string).collect();
        who.push(format!("members of {}", teams.join(", ")));
    }
    (!who.is_empty()).then(|| who.join(" or "))
}

#[cfg(test)]
mod tests {
    use crate::config::SessionStore;
    use crate::config::testing::{MINIMAL, parse};
    use crate::secret::Secret;

    #[test]
    fn memory_and_sqlite_stores_say_what_each_process_keeps_for_itself() {
        let mut c = parse(MINIMAL).unwrap();
        for store in [
            SessionStore::Memory,
            SessionStore::Sqlite("/var/lib/cg.db".into()),
        ] {
            let kind = store.kind();
            c.session.store = store;
            let summary = c.summary();
            let lines: Vec<&str> = summary
                .lines()
                .filter(|l| l.contains(&format!("per process ({kind} store)")))
                .collect();
            assert_eq!(lines.len(), 3, "{summary}");
            for what in ["[limits]", "a login's state and a device code", "a sign-in"] {
                assert_eq!(
                    lines.iter().filter(|l| l.contains(what)).count(),
                    1,
                    "{what}: {summary}"
                );
            }
        }
        c.session.store = SessionStore::Redis(Secret::new("redis://127.0.0.1:6379".into()));
        assert!(!c.summary().contains("per process"), "{}", c.summary());
    }
}
