//! The file as written: every key of every section, with its position, and
//! the collector that turns what is wrong into [`Problem`]s with lines.
//! Unknown keys are checked against the field lists here rather than with
//! serde's `deny_unknown_fields`, which stops at the first and hides the rest.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::Problem;

pub(super) type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
pub(super) struct RawServer {
    pub(super) listen: Option<S<String>>,
    pub(super) public_url: Option<S<String>>,
    pub(super) allowed_origins: Option<Vec<S<String>>>,
    pub(super) header_timeout: Option<S<String>>,
    pub(super) request_timeout: Option<S<String>>,
    pub(super) max_connections: Option<S<i64>>,
    pub(super) trusted_proxies: Option<Vec<S<String>>>,
    pub(super) metrics_listen: Option<S<String>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawPusher {
    pub(super) app_id: Option<S<String>>,
    pub(super) key: Option<S<String>>,
    pub(super) secret: Option<S<String>>,
    pub(super) encryption_master_key_base64: Option<S<String>>,
    pub(super) cluster: Option<S<String>>,
    pub(super) host: Option<S<String>>,
    pub(super) tls: Option<bool>,
    pub(super) api_url: Option<S<String>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawGithub {
    pub(super) client_id: Option<S<String>>,
    pub(super) client_secret: Option<S<String>>,
    pub(super) web_url: Option<S<String>>,
    pub(super) api_url: Option<S<String>>,
    pub(super) scopes: Option<Vec<S<String>>>,
    pub(super) timeout: Option<S<String>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawSession {
    pub(super) store: Option<S<String>>,
    pub(super) ttl: Option<S<String>>,
    pub(super) max_age: Option<S<String>>,
    pub(super) cookie_name: Option<S<String>>,
    pub(super) encryption_key_base64: Option<S<String>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawCache {
    pub(super) membership_ttl: Option<S<String>>,
    pub(super) stale_grace: Option<S<String>>,
    pub(super) max_entries: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawLimits {
    pub(super) login_per_minute: Option<S<i64>>,
    pub(super) auth_per_minute: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawSignin {
    #[serde(default)]
    pub(super) users: Vec<S<String>>,
    #[serde(default)]
    pub(super) orgs: Vec<S<String>>,
    #[serde(default)]
    pub(super) teams: Vec<S<String>>,
    #[serde(default)]
    pub(super) everyone: bool,
}

#[derive(Deserialize, Default)]
pub(super) struct RawRule {
    pub(super) channel: Option<S<String>>,
    #[serde(default)]
    pub(super) users: Vec<S<String>>,
    #[serde(default)]
    pub(super) orgs: Vec<S<String>>,
    #[serde(default)]
    pub(super) teams: Vec<S<String>>,
    #[serde(default)]
    pub(super) everyone: bool,
}

#[derive(Deserialize, Default)]
pub(super) struct RawLog {
    pub(super) format: Option<S<String>>,
    pub(super) level: Option<S<String>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawWebhooks {
    pub(super) secret: Option<S<String>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawRevocation {
    pub(super) watch_for: Option<S<String>>,
    pub(super) terminate_connections: Option<bool>,
}

// Unknown keys are checked against these lists rather than with serde's
// `deny_unknown_fields`, which stops at the first and hides every other problem.
impl RawServer {
    pub(super) const FIELDS: &[&str] = &[
        "listen",
        "public_url",
        "allowed_origins",
        "header_timeout",
        "request_timeout",
        "max_connections",
        "trusted_proxies",
        "metrics_listen",
    ];
}
impl RawPusher {
    pub(super) const FIELDS: &[&str] = &[
        "app_id",
        "key",
        "secret",
        "encryption_master_key_base64",
        "cluster",
        "host",
        "tls",
        "api_url",
    ];
}
impl RawGithub {
    pub(super) const FIELDS: &[&str] = &[
        "client_id",
        "client_secret",
        "web_url",
        "api_url",
        "scopes",
        "timeout",
    ];
}
impl RawSession {
    pub(super) const FIELDS: &[&str] = &[
        "store",
        "ttl",
        "max_age",
        "cookie_name",
        "encryption_key_base64",
    ];
}
impl RawLimits {
    pub(super) const FIELDS: &[&str] = &["login_per_minute", "auth_per_minute"];
}
impl RawSignin {
    pub(super) const FIELDS: &[&str] = &["users", "orgs", "teams", "everyone"];
}
impl RawLog {
    pub(super) const FIELDS: &[&str] = &["format", "level"];
}
impl RawWebhooks {
    pub(super) const FIELDS: &[&str] = &["secret"];
}
impl RawRevocation {
    pub(super) const FIELDS: &[&str] = &["watch_for", "terminate_connections"];
}
impl RawCache {
    pub(super) const FIELDS: &[&str] = &["membership_ttl", "stale_grace", "max_entries"];
}
impl RawRule {
    pub(super) const FIELDS: &[&str] = &["channel", "users", "orgs", "teams", "everyone"];
}

/// Collects problems with their lines.
pub(super) struct Problems<'a> {
    pub(super) text: &'a str,
    pub(super) list: Vec<Problem>,
}

impl Problems<'_> {
    pub(super) fn add(
        &mut self,
        key: impl Into<String>,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| {
            self.text[..s.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1
        });
        self.list.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }

    pub(super) fn at<T>(&mut self, key: &str, value: &S<T>, message: impl Into<String>) {
        self.add(key, Some(value.span()), message);
    }

    /// Reports each key of `table` that is not in `known`.
    pub(super) fn unknown_keys(&mut self, base: &str, table: &DeTable<'_>, known: &[&str]) {
        for key in table.keys() {
            let name: &str = key.get_ref();
            if !known.contains(&name) {
                let path = if base.is_empty() {
                    name.to_owned()
                } else {
                    format!("{base}.{name}")
                };
                self.add(
                    path,
                    Some(key.span()),
                    format!("unknown key; expected one of {}", known.join(", ")),
                );
            }
        }
    }

    /// Deserializes one table of the document (an absent one is empty),
    /// after reporting its unknown keys. A value of the wrong type is
    /// recorded and the table skipped; unknown keys alone do not stop the
    /// rest of it from being checked.
    pub(super) fn section<'de, T: Deserialize<'de> + Default>(
        &mut self,
        key: &str,
        value: Option<&S<DeValue<'de>>>,
        known: &[&str],
    ) -> Option<T> {
        let Some(value) = value else {
            return Some(T::default());
        };
        let Some(table) = value.get_ref().as_table() else {
            self.add(
                key,
                Some(value.span()),
                format!("must be a table, written [{key}]"),
            );
            return None;
        };
        self.unknown_keys(key, table, known);
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().unwrap_or(value.span());
                let key = key_at(key, value.get_ref(), &span);
                self.add(key, Some(span), e.message().trim_end().to_owned());
                None
            }
        }
    }
}

/// The path of the deepest key in `value` whose key or value covers `span`,
/// so a type error in `[cache]` is reported at `cache.max_entries`.
fn key_at(base: &str, value: &DeValue<'_>, span: &Range<usize>) -> String {
    let covers = |outer: Range<usize>| outer.start <= span.start && span.end <= outer.end;
    match value {
        DeValue::Table(table) => {
            for (k, v) in table {
                let path = format!("{base}.{}", k.get_ref());
                if covers(k.span()) {
                    return path;
                }
                if covers(v.span()) {
                    return key_at(&path, v.get_ref(), span);
                }
            }
        }
        DeValue::Array(array) => {
            for (i, v) in array.iter().enumerate() {
                if covers(v.span()) {
                    return key_at(&format!("{base}[{i}]"), v.get_ref(), span);
                }
            }
        }
        _ => {}
    }
    base.to_owned()
}

/// Where secrets are looked up besides the file; tests pass a fake.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, treating empty variables as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
