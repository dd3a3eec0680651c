//! `[github]`: the OAuth app people log in through, the GitHub instance
//! (github.com or an Enterprise server) and how long a call to it may take.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::check::{Problems, S, duration, http_url, required, secret};
use super::{ENV_GITHUB_CLIENT_SECRET, Env};
use crate::secret::Secret;

/// `[github]`.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// The OAuth app's client id.
    pub client_id: String,
    /// The OAuth app's client secret.
    pub client_secret: Secret<String>,
    /// Where people log in, without a trailing slash.
    pub web_url: String,
    /// The REST API root, without a trailing slash.
    pub api_url: String,
    /// OAuth scopes requested at login.
    pub scopes: Vec<String>,
    /// How long one call to GitHub may take.
    pub timeout: Duration,
}

impl GithubConfig {
    /// The OAuth app `client_id` on github.com, asking for `read:org`.
    pub fn new(client_id: &str, client_secret: Secret<String>) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret,
            web_url: "https://github.com".to_owned(),
            api_url: "https://api.github.com".to_owned(),
            scopes: vec!["read:org".to_owned()],
            timeout: Duration::from_secs(10),
        }
    }
}

/// `[github]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawGithub {
    client_id: Option<S<String>>,
    client_secret: Option<S<String>>,
    web_url: Option<S<String>>,
    api_url: Option<S<String>>,
    scopes: Option<Vec<S<String>>>,
    timeout: Option<S<String>>,
}

/// `[github]` read, checked and built, its secret taken from the
/// environment where set; `None` after a problem.
pub(super) fn read(
    p: &mut Problems<'_>,
    value: Option<&S<DeValue<'_>>>,
    env: Env<'_>,
) -> Option<GithubConfig> {
    let raw: RawGithub = p.section("github", value)?;
    let client_id = required(
        p,
        "github.client_id",
        raw.client_id,
        " (the OAuth app's client id)",
    );
    let client_secret = secret(
        p,
        env,
        ENV_GITHUB_CLIENT_SECRET,
        "github.client_secret",
        raw.client_secret,
    );
    let url = |p: &mut Problems<'_>, key, v: Option<S<String>>, default: &str| match v {
        Some(v) => http_url(p, key, &v, true),
        None => Some(default.to_owned()),
    };
    let defaults = GithubConfig::new("", Secret::new(String::new()));
    let web_url = url(p, "github.web_url", raw.web_url, &defaults.web_url);
    let api_url = url(p, "github.api_url", raw.api_url, &defaults.api_url);
    let mut scopes = Vec::new();
    for (i, s) in raw
        .scopes
        .unwrap_or_else(|| vec![Spanned::new(0..0, "read:org".into())])
        .into_iter()
        .enumerate()
    {
        if s.get_ref().is_empty() || s.get_ref().contains(char::is_whitespace) {
            p.at(
                &format!("github.scopes[{i}]"),
                &s,
                format!("{:?} is not an OAuth scope", s.get_ref()),
            );
        } else {
            scopes.push(s.into_inner());
        }
    }
    let timeout = duration(
        p,
        "github.timeout",
        raw.timeout,
        defaults.timeout,
        Duration::from_secs(1),
    );
    Some(GithubConfig {
        timeout: timeout?,
        client_id: client_id?.into_inner(),
        client_secret: client_secret?.into_secret(),
        web_url: web_url?,
        api_url: api_url?,
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{MINIMAL, only_problem, parse};

    #[test]
    fn github_urls_scopes_and_timeout_are_checked() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.github.web_url, "https://github.com");
        assert_eq!(c.github.api_url, "https://api.github.com");
        assert_eq!(c.github.scopes, ["read:org"]);
        for (key, value) in [
            ("web_url", "\"ftp://ghe.example\""),
            ("api_url", "\"https://ghe.example/api?v=3\""),
            ("scopes", "[\"read:org\", \"read user\"]"),
            ("timeout", "\"0s\""),
        ] {
            let text = MINIMAL.replace(
                "client_secret = \"shh\"",
                &format!("client_secret = \"shh\"\n{key} = {value}"),
            );
            let p = only_problem(&text);
            assert!(p.key.starts_with(&format!("github.{key}")), "{key}: {p:?}");
        }
    }
}
