//! `channelgate serve`: the gateway at `server.listen` until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::web as server;

pub fn run(config: Option<PathBuf>) -> ExitCode {
    let Some(config) = super::load(config) else {
        return ExitCode::FAILURE;
    };
    // Denials are logged at info, each allow at debug.
    super::init_logging("info");
    super::on_runtime(|| async { server::serve(config).await.map_err(|e| e.to_string()) })
}
