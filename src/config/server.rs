//! `[server]`: where the gateway listens, how browsers reach it, the bounds
//! on each connection, the proxies it trusts, and where metrics are served.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::de::DeValue;
use url::Url;

use super::check::{Problems, S, count, duration, http_url};

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// How browsers reach the gateway, without a trailing slash. The OAuth
    /// callback is `{public_url}/auth/callback`.
    pub public_url: String,
    /// Further origins (`scheme://host[:port]`) allowed to call the auth endpoints.
    pub allowed_origins: Vec<String>,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a whole request may take, body included.
    pub request_timeout: Duration,
    /// Most connections served at once; further ones wait for a free slot.
    pub max_connections: usize,
    /// Most connections of one peer address (an IPv6 /64) at once; a
    /// connection beyond is closed. Peers in `trusted_proxies` are exempt.
    pub max_connections_per_client: usize,
    /// Peers whose `X-Forwarded-For` names the client (reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
    /// Where Prometheus metrics are served (`GET /metrics`); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// `public_url`, parsed once.
    public: Url,
    /// The origin of `public_url`, computed once.
    origin: String,
}

impl ServerConfig {
    /// A server at `listen` that browsers reach at `public_url` (an http(s)
    /// URL without a path), with the default bounds and no proxies.
    pub fn new(listen: SocketAddr, public_url: &Url) -> Self {
        Self {
            listen,
            public_url: public_url.as_str().trim_end_matches('/').to_owned(),
            allowed_origins: Vec::new(),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_client: 64,
            trusted_proxies: Vec::new(),
            metrics_listen: None,
            public: public_url.clone(),
            origin: public_url.origin().ascii_serialization(),
        }
    }

    /// `public_url`, parsed.
    pub fn public(&self) -> &Url {
        &self.public
    }

    /// The origin of `public_url` (`scheme://host[:port]`).
    pub fn public_origin(&self) -> &str {
        &self.origin
    }

    /// True when cookies must be marked `Secure`.
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// `[server]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawServer {
    listen: Option<S<String>>,
    public_url: Option<S<String>>,
    allowed_origins: Option<Vec<S<String>>>,
    header_timeout: Option<S<String>>,
    request_timeout: Option<S<String>>,
    max_connections: Option<S<i64>>,
    max_connections_per_client: Option<S<i64>>,
    trusted_proxies: Option<Vec<S<String>>>,
    metrics_listen: Option<S<String>>,
}

/// `[server]` read, checked and built; `None` after a problem.
pub(super) fn read(p: &mut Problems<'_>, value: Option<&S<DeValue<'_>>>) -> Option<ServerConfig> {
    let raw: RawServer = p.section("server", value)?;
    let listen = match &raw.listen {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        Some(v) => socket_addr(p, "server.listen", v, "127.0.0.1:8080"),
    };
    let public_url = match &raw.public_url {
        Some(v) => http_url(p, "server.public_url", v, false),
        None => match listen {
            Some(addr) if addr.ip().is_unspecified() => {
                p.add("server.public_url", None, format!("is required when server.listen is {addr}: say how browsers reach the gateway, such as \"https://gateway.example.com\""));
                None
            }
            Some(addr) => Some(format!("http://{addr}")),
            None => None,
        },
    };
    let mut allowed_origins = Vec::new();
    for (i, v) in raw.allowed_origins.unwrap_or_default().iter().enumerate() {
        let key = format!("server.allowed_origins[{i}]");
        if let Some(url) = http_url(p, &key, v, false) {
            allowed_origins.push(url);
        }
    }
    let header_timeout = duration(
        p,
        "server.header_timeout",
        raw.header_timeout,
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    let request_timeout = duration(
        p,
        "server.request_timeout",
        raw.request_timeout,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    let max_connections = count(p, "server.max_connections", raw.max_connections, 10_000, 1);
    let max_per_client = count(
        p,
        "server.max_connections_per_client",
        raw.max_connections_per_client,
        64,
        1,
    );
    let trusted_proxies = trusted_proxies(p, raw.trusted_proxies.unwrap_or_default());
    let metrics_listen = match &raw.metrics_listen {
        None => Some(None),
        Some(v) => socket_addr(p, "server.metrics_listen", v, "127.0.0.1:9090").map(Some),
    };
    if let (Some(Some(metrics)), Some(listen), Some(v)) =
        (metrics_listen, listen, &raw.metrics_listen)
        && metrics == listen
    {
        p.at(
            "server.metrics_listen",
            v,
            "must differ from server.listen: metrics are never served on the public listener",
        );
        return None;
    }
    // Checked by http_url above, so it parses.
    let public = Url::parse(&public_url?).ok()?;
    let mut server = ServerConfig::new(listen?, &public);
    server.allowed_origins = allowed_origins;
    server.header_timeout = header_timeout?;
    server.request_timeout = request_timeout?;
    server.max_connections = max_connections? as usize;
    server.max_connections_per_client = max_per_client? as usize;
    server.trusted_proxies = trusted_proxies?;
    server.metrics_listen = metrics_listen?;
    Some(server)
}

/// An address and port such as `example`.
fn socket_addr(
    p: &mut Problems<'_>,
    key: &str,
    v: &S<String>,
    example: &str,
) -> Option<SocketAddr> {
    v.get_ref()
        .parse::<SocketAddr>()
        .map_err(|_| {
            p.at(
                key,
                v,
                format!(
                    "{:?} is not an address and port, such as \"{example}\"",
                    v.get_ref()
                ),
            );
        })
        .ok()
}

/// `server.trusted_proxies`: networks, a bare address being a network of one.
fn trusted_proxies(p: &mut Problems<'_>, list: Vec<S<String>>) -> Option<Vec<IpNet>> {
    let mut nets = Some(Vec::new());
    for (i, v) in list.iter().enumerate() {
        let text = v.get_ref();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match (net, nets.as_mut()) {
            (Ok(net), Some(list)) => list.push(net.trunc()),
            (Ok(_), None) => {}
            (Err(_), _) => {
                p.at(
                    &format!("server.trusted_proxies[{i}]"),
                    v,
                    format!("{text:?} is not an address or a network such as \"10.0.0.0/8\""),
                );
                nets = None;
            }
        }
    }
    nets
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{MINIMAL, only_problem, parse};

    #[test]
    fn server_addresses_and_urls_are_checked() {
        let p = only_problem(&format!("{MINIMAL}\n[server]\nlisten = \"localhost\"\n"));
        assert_eq!(p.key, "server.listen");
        let p = only_problem(&format!("{MINIMAL}\n[server]\nlisten = \"0.0.0.0:8080\"\n"));
        assert_eq!(p.key, "server.public_url");
        assert!(p.message.contains("is required"));
        for bad in [
            "ftp://x",
            "http://x/app",
            "https://u:p@x",
            "not a url",
            "http://x/?a=1",
        ] {
            let p = only_problem(&format!("{MINIMAL}\n[server]\npublic_url = \"{bad}\"\n"));
            assert_eq!(p.key, "server.public_url", "{bad}");
        }
        let p = only_problem(&format!(
            "{MINIMAL}\n[server]\nallowed_origins = [\"https://ok.example\", \"https://x.example/path\"]\n"
        ));
        assert_eq!(p.key, "server.allowed_origins[1]");
        let c = parse(&format!("{MINIMAL}\n[server]\npublic_url = \"https://gw.example/\"\nallowed_origins = [\"https://app.example:8443\"]\n")).unwrap();
        assert_eq!(c.server.public_url, "https://gw.example");
        assert!(c.server.is_https());
        assert_eq!(c.server.public_origin(), "https://gw.example");
        assert_eq!(c.server.allowed_origins, ["https://app.example:8443"]);
    }

    #[test]
    fn server_bounds_are_checked() {
        for (key, value) in [
            ("max_connections", "0"),
            ("max_connections_per_client", "0"),
            ("header_timeout", "\"0s\""),
            ("request_timeout", "\"soon\""),
            ("trusted_proxies", "[\"10.0.0.0/33\"]"),
        ] {
            let p = only_problem(&format!("{MINIMAL}\n[server]\n{key} = {value}\n"));
            assert!(p.key.starts_with(&format!("server.{key}")), "{key}: {p:?}");
        }
    }
}
