//! `[pusher]`: the Pusher app whose subscriptions the gateway signs, where
//! its clients connect, and where its HTTP API is.

use std::fmt;

use serde::Deserialize;
use toml::de::DeValue;
use url::Url;

use super::check::{Problems, S, base64_key, http_url, key_from, required, secret};
use super::{ENV_MASTER_KEY, ENV_PUSHER_SECRET, Env};
use crate::secret::Secret;

/// `[pusher]`.
#[derive(Debug, Clone)]
pub struct PusherConfig {
    /// The app id.
    pub app_id: String,
    /// The app key (public; it prefixes every `auth`).
    pub key: String,
    /// The app secret that signs.
    pub secret: Secret<String>,
    /// The master key for `private-encrypted-` channels, if any.
    pub encryption_master_key: Option<Secret<[u8; 32]>>,
    /// The Pusher cluster clients connect to.
    pub cluster: String,
    /// A self-hosted Pusher-protocol server instead of the cluster.
    pub host: Option<HostPort>,
    /// Whether clients connect with TLS.
    pub tls: bool,
    /// Pusher's HTTP API as configured; see [`PusherConfig::api_url`].
    pub api_url: Option<String>,
}

impl PusherConfig {
    /// The app `app_id` with `key` and `secret`, on the default cluster over TLS.
    pub fn new(app_id: &str, key: &str, secret: Secret<String>) -> Self {
        Self {
            app_id: app_id.to_owned(),
            key: key.to_owned(),
            secret,
            encryption_master_key: None,
            cluster: "mt1".to_owned(),
            host: None,
            tls: true,
            api_url: None,
        }
    }

    /// Pusher's HTTP API root, without a trailing slash: `pusher.api_url`
    /// when given, else `http(s)://{host}` for a self-hosted server, else
    /// `https://api-{cluster}.pusher.com`.
    pub fn api_url(&self) -> String {
        match (&self.api_url, &self.host) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => {
                let scheme = if self.tls { "https" } else { "http" };
                format!("{scheme}://{host}")
            }
            (None, None) => format!("https://api-{}.pusher.com", self.cluster),
        }
    }
}

/// `HOST` or `HOST:PORT` (an IPv6 address in brackets: `[::1]:6001`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host name or address (IPv6 with its brackets).
    pub host: String,
    /// The port, when one was given.
    pub port: Option<u16>,
}

impl std::str::FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not HOST or HOST:PORT, such as \"127.0.0.1:6001\"");
        if s.is_empty() || s.contains(['/', '@', '?', '#', '\\']) || s.contains(char::is_whitespace)
        {
            return Err(bad());
        }
        let url = Url::parse(&format!("http://{s}")).map_err(|_| bad())?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        // Url drops a port that is the scheme's default; keep what was written.
        let port = match s.rsplit_once(':') {
            Some((_, p)) if !s.ends_with(']') => Some(p.parse::<u16>().map_err(|_| bad())?),
            _ => None,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// `[pusher]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawPusher {
    app_id: Option<S<String>>,
    key: Option<S<String>>,
    secret: Option<S<String>>,
    encryption_master_key_base64: Option<S<String>>,
    cluster: Option<S<String>>,
    host: Option<S<String>>,
    tls: Option<bool>,
    api_url: Option<S<String>>,
}

/// `[pusher]` read, checked and built, its secrets taken from the
/// environment where set; `None` after a problem.
pub(super) fn read(
    p: &mut Problems<'_>,
    value: Option<&S<DeValue<'_>>>,
    env: Env<'_>,
) -> Option<PusherConfig> {
    let raw: RawPusher = p.section("pusher", value)?;
    let app_id = required(p, "pusher.app_id", raw.app_id, "");
    let key = required(p, "pusher.key", raw.key, "").filter(|k| {
        let bad = k
            .get_ref()
            .contains(|c: char| c == ':' || c.is_whitespace());
        if bad {
            p.at("pusher.key", k, "must not contain ':' or spaces");
        }
        !bad
    });
    let secret = secret(p, env, ENV_PUSHER_SECRET, "pusher.secret", raw.secret);
    let master_key = key_from(
        p,
        env,
        ENV_MASTER_KEY,
        "pusher.encryption_master_key_base64",
        raw.encryption_master_key_base64,
        master_key,
    );
    let cluster = match raw.cluster {
        Some(c)
            if c.get_ref().is_empty()
                || !c
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            p.at(
                "pusher.cluster",
                &c,
                format!(
                    "{:?} is not a cluster name such as \"mt1\" or \"eu\"",
                    c.get_ref()
                ),
            );
            None
        }
        Some(c) => Some(c.into_inner()),
        None => Some("mt1".to_owned()),
    };
    let host = match &raw.host {
        None => Some(None),
        Some(h) => h
            .get_ref()
            .parse::<HostPort>()
            .map_err(|m| p.at("pusher.host", h, m))
            .ok()
            .map(Some),
    };
    let api_url = match &raw.api_url {
        None => Some(None),
        Some(v) => http_url(p, "pusher.api_url", v, false).map(Some),
    };
    Some(PusherConfig {
        api_url: api_url?,
        app_id: app_id?.into_inner(),
        key: key?.into_inner(),
        secret: secret?.into_secret(),
        encryption_master_key: master_key?,
        cluster: cluster?,
        host: host?,
        tls: raw.tls.unwrap_or(true),
    })
}

/// `pusher.encryption_master_key_base64`: exactly 32 bytes.
fn master_key(text: &str) -> Result<Secret<[u8; 32]>, String> {
    let bytes = base64_key(text)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map(Secret::new).map_err(|_| {
        format!(
            "decodes to {} bytes but must be exactly 32; make a key with `openssl rand -base64 32`",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::testing::{MINIMAL, only_problem, parse};

    #[test]
    fn a_secret_of_the_wrong_type_is_never_echoed() {
        for (written, kind) in [
            ("12345", "integer"),
            ("1234.5", "floating point"),
            ("true", "boolean"),
        ] {
            let p = only_problem(&MINIMAL.replace(
                "secret = \"7ad3773142a6692b25b8\"",
                &format!("secret = {written}"),
            ));
            assert_eq!(p.key, "pusher.secret");
            assert!(!p.message.contains(written), "{written}: {}", p.message);
            assert!(p.message.contains(kind), "{}", p.message);
            assert!(p.message.contains("expected a string"), "{}", p.message);
        }
        let p = only_problem(&MINIMAL.replace("[github]", "tls = \"yes-please\"\n[github]"));
        assert!(!p.message.contains("yes-please"), "{}", p.message);
    }

    #[test]
    fn pusher_api_url_follows_cluster_then_host() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.pusher.api_url(), "https://api-mt1.pusher.com");
        let eu = parse(&MINIMAL.replace("[github]", "cluster = \"eu\"\n[github]")).unwrap();
        assert_eq!(eu.pusher.api_url(), "https://api-eu.pusher.com");
        let own = parse(&MINIMAL.replace(
            "[github]",
            "host = \"127.0.0.1:6001\"\ntls = false\n[github]",
        ))
        .unwrap();
        assert_eq!(own.pusher.api_url(), "http://127.0.0.1:6001");
        let p = only_problem(&MINIMAL.replace(
            "[github]",
            "api_url = \"http://pusher.example/apps\"\n[github]",
        ));
        assert_eq!(p.key, "pusher.api_url");
        assert!(p.message.contains("must not have a path"), "{}", p.message);
    }

    #[test]
    fn host_and_port_parse_as_written() {
        for (text, host, port) in [
            ("127.0.0.1:6001", "127.0.0.1", Some(6001)),
            ("ws.example", "ws.example", None),
            ("ws.example:80", "ws.example", Some(80)),
            ("[::1]:6001", "[::1]", Some(6001)),
            ("[::1]", "[::1]", None),
        ] {
            let parsed: HostPort = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((parsed.host.as_str(), parsed.port), (host, port), "{text}");
            assert_eq!(parsed.to_string(), text);
        }
        for bad in ["", "a b", "a/b", "a:b", "a:99999", "u@h:1", ":80", "[::1"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        let key = |v: &str| {
            only_problem(&MINIMAL.replace(
                "secret = \"7ad",
                &format!("encryption_master_key_base64 = \"{v}\"\nsecret = \"7ad"),
            ))
        };
        let p = key("not base64!");
        assert_eq!(p.key, "pusher.encryption_master_key_base64");
        assert_eq!(p.line, Some(5));
        assert!(p.message.contains("not base64"));
        let p = key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==");
        assert!(p.message.contains("decodes to 31 bytes"), "{}", p.message);
    }

    #[test]
    fn a_bad_master_key_from_the_environment_is_blamed_on_its_variable() {
        let env = |name: &str| (name == ENV_MASTER_KEY).then(|| "c2hvcnQ=".to_owned());
        let e = Config::parse(MINIMAL, "t", &env).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        let p = &e.problems[0];
        assert_eq!(p.key, ENV_MASTER_KEY);
        assert_eq!(p.line, None);
        assert_eq!(
            p.message,
            "decodes to 5 bytes but must be exactly 32; make a key with `openssl rand -base64 32` \
             (set in the environment, which takes precedence over pusher.encryption_master_key_base64)"
        );
        assert!(!e.to_string().contains("c2hvcnQ"), "{e}");
    }
}
