//! What the configuration's unit tests share: the smallest valid file and
//! ways to parse a variant of it without the process environment.

use super::{Config, ConfigError, Problem};

/// The smallest valid file: `[pusher]` and `[github]` with their required keys.
pub(super) const MINIMAL: &str = r#"
[pusher]
app_id = "1234"
key = "278d425bdf160c739803"
secret = "7ad3773142a6692b25b8"

[github]
client_id = "Iv1.abc"
client_secret = "shh"
"#;

/// An environment with nothing set.
pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

/// `text` parsed as `test.toml`, with nothing from the environment.
pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", &no_env)
}

/// The problems of `text`, which must be refused.
pub(super) fn problems(text: &str) -> Vec<Problem> {
    parse(text).expect_err("should be refused").problems
}

/// [`MINIMAL`] followed by `rules`.
pub(super) fn with_rules(rules: &str) -> String {
    format!("{MINIMAL}\n{rules}")
}

/// The problem of `text`, which must be the only one.
pub(super) fn only_problem(text: &str) -> Problem {
    let mut list = problems(text);
    assert_eq!(list.len(), 1, "{list:#?}");
    list.remove(0)
}
