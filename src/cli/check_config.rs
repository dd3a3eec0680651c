//! `channelgate check-config`: the configuration as understood, or every
//! problem; warnings (see [`Config::warnings`]) go to stderr without
//! refusing the file.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, file_warnings};

pub fn run(config: Option<PathBuf>) -> ExitCode {
    let path = super::config_path(config);
    match Config::load(&path) {
        Ok(config) => {
            super::print_out(&format!("{}: valid\n{}", path.display(), config.summary()));
            // Warnings do not refuse the file; each names its rule (or the
            // file), on a line of its own that starts with `warning:`.
            let shown = super::absolute(&path);
            for w in config.warnings().into_iter().chain(file_warnings(&path)) {
                super::print_err(&format!(
                    "warning: {}: {} (in {})\n",
                    w.key,
                    w.message,
                    shown.display()
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
