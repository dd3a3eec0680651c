//! `channelgate check-config`: the configuration as understood, or every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

pub fn run(config: Option<PathBuf>) -> ExitCode {
    let path = super::config_path(config);
    match Config::load(&path) {
        Ok(config) => {
            super::print_out(&format!("{}: valid\n{}", path.display(), config.summary()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            super::print_err(&e.to_string());
            ExitCode::FAILURE
        }
    }
}
