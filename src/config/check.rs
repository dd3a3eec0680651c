//! What every section's checks share: the collector that turns what is wrong
//! into [`Problem`]s with lines, the reading of one table into a section's raw
//! form (its unknown keys reported first), and the checks of common values:
//! required strings, secrets, URLs, durations, counts and base64 keys.
//!
//! Unknown keys are checked against the raw form's own field names rather
//! than with serde's `deny_unknown_fields`, which stops at the first and
//! hides every other problem.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::Visitor;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use url::Url;

use super::{Env, Problem, format_duration, parse_duration};
use crate::secret::Secret;

/// A value as written, with its place in the file.
pub(super) type S<T> = Spanned<T>;

/// Collects problems with their lines.
pub(super) struct Problems<'a> {
    /// The file's text, to turn byte offsets into lines.
    pub(super) text: &'a str,
    /// What has been found so far.
    pub(super) list: Vec<Problem>,
}

impl Problems<'_> {
    /// Records `message` about `key`, at the line holding `span` when known.
    pub(super) fn add(
        &mut self,
        key: impl Into<String>,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| line_of(self.text, s.start));
        self.list.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
            excerpt: None,
        });
    }

    /// Records `message` about `key`, at the line of `value`.
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

    /// The section `key` read into its raw form `T`; an absent section is
    /// `T::default()`. See [`Problems::table`].
    pub(super) fn section<'de, T: Deserialize<'de> + Default>(
        &mut self,
        key: &str,
        value: Option<&S<DeValue<'de>>>,
    ) -> Option<T> {
        match value {
            None => Some(T::default()),
            Some(value) => self.table(key, value),
        }
    }

    /// One table of the document read into its raw form `T`, after
    /// reporting its keys that are not `T`'s fields. A value of the wrong
    /// type is recorded and the table skipped; unknown keys alone do not
    /// stop the rest of it from being checked.
    pub(super) fn table<'de, T: Deserialize<'de>>(
        &mut self,
        key: &str,
        value: &S<DeValue<'de>>,
    ) -> Option<T> {
        let Some(table) = value.get_ref().as_table() else {
            self.add(
                key,
                Some(value.span()),
                format!("must be a table, written [{key}]"),
            );
            return None;
        };
        self.unknown_keys(key, table, keys_of::<T>());
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().unwrap_or(value.span());
                let key = key_at(key, value.get_ref(), &span);
                self.add(key, Some(span), without_value(e.message().trim_end()));
                None
            }
        }
    }
}

/// serde's type error with the value it found taken out: "invalid type:
/// integer `12345`, expected a string" may be a secret written unquoted,
/// and the message goes to check-config's output, serve's stderr and the
/// reload's log line. The kind found and the kind expected stay.
fn without_value(message: &str) -> String {
    let is_type_error =
        message.starts_with("invalid type: ") || message.starts_with("invalid value: ");
    match message.split_once(", expected ") {
        Some((found, expected)) if is_type_error => {
            let kind = found.split(['`', '"']).next().unwrap_or(found).trim_end();
            format!("{kind}, expected {expected}")
        }
        _ => message.to_owned(),
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
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

/// The keys a raw section accepts: the field names serde's derive passes to
/// `deserialize_struct`, caught by a deserializer that stops right there (the
/// trick `serde_aux::serde_introspect` uses). A section's known keys are thus
/// its raw struct's fields and cannot drift from them.
pub(super) fn keys_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that records a struct's field names and reads nothing.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

/// Why [`FieldNames`] stops: it has what it came for.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stopped after reading the field names")
    }
}

impl std::error::Error for Stop {}

impl serde::de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Self
    }
}

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A string value with surrounding whitespace refused, for ids and names.
pub(super) fn required(
    p: &mut Problems<'_>,
    key: &str,
    value: Option<S<String>>,
    hint: &str,
) -> Option<S<String>> {
    match value {
        Some(v) if v.get_ref().trim().is_empty() => {
            p.at(key, &v, "must not be empty");
            None
        }
        Some(v) => Some(v),
        None => {
            p.add(key, None, format!("is required{hint}"));
            None
        }
    }
}

/// A secret as found: in its environment variable, which wins, or under its
/// key in the file. A problem with it is blamed on the one it came from.
pub(super) struct Found {
    /// The secret's text.
    value: Secret<String>,
    /// The environment variable that may hold it.
    var: &'static str,
    /// Its key in the file.
    key: &'static str,
    /// Where the file holds it; `None` when it came from the environment.
    span: Option<Range<usize>>,
}

impl Found {
    /// The secret's text.
    pub(super) fn expose(&self) -> &str {
        self.value.expose()
    }

    /// The secret, held so it never prints.
    pub(super) fn into_secret(self) -> Secret<String> {
        self.value
    }

    /// True when the secret came from its environment variable.
    pub(super) fn is_from_env(&self) -> bool {
        self.span.is_none()
    }

    /// Records `message` against where the secret came from: the
    /// environment variable by name, or the file's key and line. The
    /// message must not hold the secret; nothing here adds it.
    pub(super) fn blame(&self, p: &mut Problems<'_>, message: impl Into<String>) {
        let message = message.into();
        match &self.span {
            None => p.add(
                self.var,
                None,
                format!(
                    "{message} (set in the environment, which takes precedence over {})",
                    self.key
                ),
            ),
            Some(span) => p.add(self.key, Some(span.clone()), message),
        }
    }
}

/// The secret for `key`: from the environment variable `var` when set,
/// else from the file; `None` when neither holds one.
pub(super) fn find_secret(
    env: Env<'_>,
    var: &'static str,
    key: &'static str,
    file: Option<S<String>>,
) -> Option<Found> {
    let (value, span) = match (env(var), file) {
        (Some(value), _) => (value, None),
        (None, Some(v)) => {
            let span = v.span();
            (v.into_inner(), Some(span))
        }
        (None, None) => return None,
    };
    Some(Found {
        value: Secret::new(value),
        var,
        key,
        span,
    })
}

/// A required, non-empty secret (see [`find_secret`]).
pub(super) fn secret(
    p: &mut Problems<'_>,
    env: Env<'_>,
    var: &'static str,
    key: &'static str,
    file: Option<S<String>>,
) -> Option<Found> {
    match find_secret(env, var, key, file) {
        Some(found) if found.expose().is_empty() => {
            if found.is_from_env() {
                found.blame(p, "is empty");
            } else {
                found.blame(p, format!("must not be empty (or set {var})"));
            }
            None
        }
        Some(found) => Some(found),
        None => {
            p.add(
                key,
                None,
                format!("is required; set it here or, better, in {var}"),
            );
            None
        }
    }
}

/// An optional key (see [`find_secret`]) read by `parse`: `Some(None)` when
/// neither the environment nor the file gives one, `None` after a problem.
pub(super) fn key_from<T>(
    p: &mut Problems<'_>,
    env: Env<'_>,
    var: &'static str,
    key: &'static str,
    file: Option<S<String>>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<Option<T>> {
    let Some(found) = find_secret(env, var, key, file) else {
        return Some(None);
    };
    match parse(found.expose()) {
        Ok(value) => Some(Some(value)),
        Err(message) => {
            found.blame(p, message);
            None
        }
    }
}

/// The bytes of a base64 key; the message never holds the text.
pub(super) fn base64_key(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| "is not base64; make a key with `openssl rand -base64 32`".to_owned())
}

/// An `http` or `https` URL with nothing after the host but an optional path.
pub(super) fn http_url(
    p: &mut Problems<'_>,
    key: &str,
    value: &S<String>,
    allow_path: bool,
) -> Option<String> {
    let text = value.get_ref();
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            p.at(key, value, format!("{text:?} is not a URL: {e}"));
            return None;
        }
    };
    let problem = if !matches!(url.scheme(), "http" | "https") {
        Some("must start with http:// or https://")
    } else if url.host().is_none() {
        Some("must name a host")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("must not carry a user name or password")
    } else if url.query().is_some() || url.fragment().is_some() {
        Some("must not have a query or fragment")
    } else if !allow_path && url.path() != "/" {
        Some("must not have a path (the gateway serves its routes at the root)")
    } else {
        None
    };
    if let Some(problem) = problem {
        p.at(key, value, format!("{text:?} {problem}"));
        return None;
    }
    Some(url.as_str().trim_end_matches('/').to_owned())
}

/// A duration of at least `min`, `default` when absent.
pub(super) fn duration(
    p: &mut Problems<'_>,
    key: &str,
    v: Option<S<String>>,
    default: Duration,
    min: Duration,
) -> Option<Duration> {
    let Some(v) = v else { return Some(default) };
    match parse_duration(v.get_ref()) {
        Ok(d) if d < min => {
            p.at(
                key,
                &v,
                format!("must be at least {}", format_duration(min)),
            );
            None
        }
        Ok(d) => Some(d),
        Err(m) => {
            p.at(key, &v, m);
            None
        }
    }
}

/// A whole number of at least `min`, `default` when absent.
pub(super) fn count(
    p: &mut Problems<'_>,
    key: &str,
    v: Option<S<i64>>,
    default: u64,
    min: u64,
) -> Option<u64> {
    match v {
        None => Some(default),
        Some(v) => match u64::try_from(*v.get_ref()) {
            Ok(n) if n >= min => Some(n),
            _ => {
                p.at(key, &v, format!("must be a whole number of at least {min}"));
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{MINIMAL, parse};

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        first: Option<String>,
        #[serde(default)]
        second: Vec<String>,
        third: Option<bool>,
    }

    #[test]
    fn known_keys_are_the_raw_forms_fields_in_order() {
        assert_eq!(keys_of::<Sample>(), ["first", "second", "third"]);
    }

    #[test]
    fn a_secret_from_the_environment_is_blamed_on_its_variable() {
        let env = |name: &str| (name == "CG_TEST_SECRET").then(String::new);
        let mut p = Problems {
            text: "",
            list: Vec::new(),
        };
        let file = Some(Spanned::new(0..4, "from-the-file".to_owned()));
        assert!(secret(&mut p, &env, "CG_TEST_SECRET", "test.secret", file).is_none());
        assert_eq!(p.list.len(), 1, "{:?}", p.list);
        assert_eq!(p.list[0].key, "CG_TEST_SECRET");
        assert_eq!(p.list[0].line, None);
        assert_eq!(
            p.list[0].message,
            "is empty (set in the environment, which takes precedence over test.secret)"
        );
    }

    #[test]
    fn empty_secrets_from_the_environment_name_their_variable() {
        use super::super::{ENV_GITHUB_CLIENT_SECRET, ENV_PUSHER_SECRET};
        for var in [ENV_PUSHER_SECRET, ENV_GITHUB_CLIENT_SECRET] {
            let env = |name: &str| (name == var).then(String::new);
            let e = super::super::Config::parse(MINIMAL, "t", &env).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            assert_eq!(e.problems[0].key, var);
            assert!(e.problems[0].message.starts_with("is empty"), "{e}");
        }
        assert!(parse(MINIMAL).is_ok());
    }
}
