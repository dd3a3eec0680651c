//! `channelgate demo`: the gateway beside the GitHub stand-in, on loopback.
//! Its banner goes to stdout; a reader that goes away (`| head`) does not
//! stop the demo.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{HostPort, format_duration, parse_duration};
use crate::demo::{self, DemoError};
use crate::web as server;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on, as IP:PORT; loopback only (localhost:PORT
    /// means 127.0.0.1:PORT).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = listen_addr)]
    listen: SocketAddr,
    /// A Pusher-protocol server (such as sockudo) the page may subscribe through.
    #[arg(long, value_name = "HOST:PORT", default_value = demo::DEFAULT_PUSHER_HOST)]
    pusher_host: HostPort,
    /// Make the stand-in's user tokens expire after DURATION (such as 60s), as
    /// a GitHub App's do after 8 hours, to watch the gateway refresh them
    /// [default: tokens that never expire, as an OAuth app's]
    #[arg(long, value_name = "DURATION", value_parser = token_lifetime)]
    token_lifetime: Option<Duration>,
    /// Also let a gateway you run yourself log people in through the
    /// demo's GitHub stand-in (at /_github): its callback URL, such as
    /// http://127.0.0.1:8088/auth/callback; loopback only, repeatable.
    /// examples/fleet/run.sh starts three gateways this way.
    #[arg(long = "callback", value_name = "URL", value_parser = loopback_callback)]
    callbacks: Vec<url::Url>,
}

/// `--callback`: an absolute http URL on loopback, ending in /auth/callback.
fn loopback_callback(text: &str) -> Result<url::Url, String> {
    let expected = "expected a loopback URL ending in /auth/callback, such as --callback http://127.0.0.1:8088/auth/callback";
    let url = url::Url::parse(text).map_err(|_| format!("{text:?} is not a URL; {expected}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() != "http" && url.scheme() != "https" || !loopback {
        return Err(format!("{text:?} is not on loopback; {expected}"));
    }
    if url.path() != "/auth/callback" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} is not a gateway's callback; {expected}"));
    }
    Ok(url)
}

/// `--token-lifetime`: a duration such as `60s`, at least 10 seconds.
fn token_lifetime(text: &str) -> Result<Duration, String> {
    let lifetime = parse_duration(text)?;
    if lifetime < Duration::from_secs(10) {
        return Err(format!(
            "{text:?} is too short; at least 10s, such as --token-lifetime 60s"
        ));
    }
    Ok(lifetime)
}

/// `--listen`: `IP:PORT`, or `localhost:PORT` for 127.0.0.1 (the demo
/// needs one address to bind, and names it in every URL it prints).
fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let expected = "expected IP:PORT, such as --listen 127.0.0.1:8081 (or localhost:8081)";
    match text.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => port
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| format!("{port:?} is not a port (0 to 65535); {expected}")),
        _ => Err(expected.to_owned()),
    }
}

pub fn run(
    Args {
        listen,
        pusher_host,
        token_lifetime,
        callbacks,
    }: Args,
) -> ExitCode {
    // The demo shows every decision, allows included.
    super::init_logging("info,channelgate::web::pusher=debug");
    super::on_runtime(|| async move {
        let demo = demo::start(listen, &pusher_host)
            .await
            .map_err(|e| start_error(&e))?;
        demo.github.set_token_lifetime(token_lifetime);
        for callback in &callbacks {
            demo.github.register_callback(callback.as_str());
            tracing::info!(%callback, "the stand-in also logs people in for the gateway there");
        }
        if let Some(lifetime) = token_lifetime {
            tracing::info!(
                lifetime = %format_duration(lifetime),
                "the stand-in's user tokens expire: the gateway refreshes them"
            );
        }
        let stop = server::shutdown_signal();
        super::print_out(&demo::banner(&demo.url, &pusher_host));
        tracing::info!(url = %demo.url, "channelgate demo ready");
        stop.await;
        demo.gateway.shutdown().await.map_err(|e| e.to_string())
    })
}

/// Why the demo did not start, with the flag to change.
fn start_error(e: &DemoError) -> String {
    match e {
        DemoError::Bind { addr, source } => {
            super::listen_error(*addr, source, "--listen", |other| {
                format!("choose another port, such as --listen {other}")
            })
        }
        DemoError::NotLoopback(addr) => format!(
            "{e}. Use --listen 127.0.0.1:{port} (or [::1]:{port})",
            port = addr.port()
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lifetime_is_a_duration_of_ten_seconds_or_more() {
        assert_eq!(token_lifetime("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(token_lifetime("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert!(token_lifetime("5s").unwrap_err().contains("at least 10s"));
        assert!(token_lifetime("soon").is_err());
    }

    #[test]
    fn a_callback_is_a_gateways_on_loopback() {
        for good in [
            "http://127.0.0.1:8088/auth/callback",
            "http://localhost:8088/auth/callback",
            "http://[::1]:8088/auth/callback",
        ] {
            assert!(loopback_callback(good).is_ok(), "{good}");
        }
        for bad in [
            "http://example.com/auth/callback",
            "http://10.0.0.1:8088/auth/callback",
            "http://127.0.0.1:8088/elsewhere",
            "http://127.0.0.1:8088/auth/callback?next=x",
            "ftp://127.0.0.1/auth/callback",
            "127.0.0.1:8088",
        ] {
            let message = loopback_callback(bad).unwrap_err();
            assert!(
                message.contains("--callback http://127.0.0.1:8088"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn listen_takes_an_address_or_localhost_and_shows_the_form_otherwise() {
        assert_eq!(
            listen_addr("127.0.0.1:8081").unwrap().to_string(),
            "127.0.0.1:8081"
        );
        assert_eq!(listen_addr("[::1]:8081").unwrap().to_string(), "[::1]:8081");
        assert_eq!(
            listen_addr("localhost:8081").unwrap().to_string(),
            "127.0.0.1:8081"
        );
        assert_eq!(
            listen_addr("LocalHost:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        for bad in [
            "nowhere",
            "localhost",
            "localhost:http",
            "example.com:80",
            ":8080",
        ] {
            let message = listen_addr(bad).unwrap_err();
            assert!(
                message.contains("--listen 127.0.0.1:8081"),
                "{bad}: {message}"
            );
        }
    }
}
