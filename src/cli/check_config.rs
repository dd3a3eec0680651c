//! `channelgate check-config`: the configuration as understood, or every
//! problem; warnings (see [`Config::warnings`]) go to stderr without
//! refusing the file.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

pub fn run(config: Option<PathBuf>) -> ExitCode {
    let path = super::config_path(config);
    match Config::load(&path) {
        Ok(config) => {
            super::print_out(&format!("{}: valid\n{}", path.display(), config.summary()));
            // Warnings do not refuse the file; each names its rule.
            for w in config.warnings() {
                super::print_err(&format!(
                    "{}: warning: {}: {}\n",
                    path.display(),
                    w.key,
                    w.message
                ));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            super::print_err(&e.to_string());
            ExitCode::FAILURE
        }
    }
}
