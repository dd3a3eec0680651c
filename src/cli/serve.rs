//! `channelgate serve`: the gateway at `server.listen` until SIGINT or
//! SIGTERM; `SIGHUP` reloads the configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::app;

pub fn run(config: Option<PathBuf>) -> ExitCode {
    let path = super::config_path(config);
    let Some(config) = super::load(Some(path.clone())) else {
        return ExitCode::FAILURE;
    };
    // Each decision is logged at info; `[log]` chooses the format.
    super::init_logging_as(config.log.format, &config.log.level);
    super::on_runtime(|| async {
        app::serve(config, Some(path))
            .await
            .map_err(|e| e.to_string())
    })
}
