//! `channelgate serve`: the gateway at `server.listen` until SIGINT or
//! SIGTERM; `SIGHUP` reloads the configuration file. A gateway that cannot
//! start says why in words, with the key to change and where.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::app::{self, StartError};
use crate::config::file_warnings;
use crate::session::StoreError;

pub fn run(config: Option<PathBuf>) -> ExitCode {
    let path = super::config_path(config);
    let Some(config) = super::load(Some(path.clone())) else {
        return ExitCode::FAILURE;
    };
    // Each decision is logged at info; `[log]` chooses the format.
    super::init_logging_as(config.log.format, &config.log.level);
    for w in config.warnings().into_iter().chain(file_warnings(&path)) {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
    let file = super::absolute(&path);
    let metrics_listen = config.server.metrics_listen;
    super::on_runtime(|| async move {
        app::serve(config, Some(path))
            .await
            .map_err(|e| start_error(&e, &file, metrics_listen))
    })
}

/// Why the gateway did not start, naming the key in `file` that decides it
/// and how to fix it. `metrics_listen` tells which key an address came from.
fn start_error(e: &StartError, file: &Path, metrics_listen: Option<SocketAddr>) -> String {
    let file = file.display();
    match e {
        StartError::Listen { addr, source } => {
            let key = if metrics_listen == Some(*addr) {
                "server.metrics_listen"
            } else {
                "server.listen"
            };
            super::listen_error(*addr, source, &format!("{key} in {file}"), |other| {
                format!("set {key} to another address, such as \"{other}\"")
            })
        }
        StartError::Store(StoreError::Redis { url, reason }) => format!(
            "cannot reach the Redis session store at {url} (session.store in {file}): {reason}. \
             Start Redis there, or correct session.store; store = \"memory\" needs no server \
             (sessions are then kept by this process only)."
        ),
        StartError::Store(StoreError::Sqlite { path, reason }) => format!(
            "cannot open the SQLite session store {path} (session.store in {file}): {reason}. \
             Check that its directory exists and that this user may write there, or correct \
             session.store."
        ),
        StartError::Bus(reason) => format!(
            "cannot share revocations with the other instances through the Redis of \
             session.store in {file}: {reason}. Check that Redis answers there."
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_names_the_key_the_file_and_the_fix() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let e = StartError::Listen {
            addr,
            source: std::io::ErrorKind::AddrInUse.into(),
        };
        let text = start_error(&e, Path::new("/etc/channelgate/config.toml"), None);
        assert!(
            text.starts_with(
                "cannot listen on 127.0.0.1:8080 (server.listen in /etc/channelgate/config.toml)"
            ),
            "{text}"
        );
        assert!(text.contains("already in use"), "{text}");
        assert!(text.contains("\"127.0.0.1:8081\""), "{text}");
        let metrics = start_error(&e, Path::new("/c.toml"), Some(addr));
        assert!(
            metrics.contains("server.metrics_listen in /c.toml"),
            "{metrics}"
        );
    }
}
