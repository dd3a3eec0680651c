//! `[log]`: the log's format and level (`RUST_LOG` wins when set).

use serde::Deserialize;
use toml::de::DeValue;

use super::check::{Problems, S};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// `error`, `warn`, `info`, `debug` or `trace`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `[log]` as written; its fields are the section's known keys.
#[derive(Deserialize, Default)]
struct RawLog {
    format: Option<S<String>>,
    level: Option<S<String>>,
}

/// `[log]` read, checked and built; `None` after a problem.
pub(super) fn read(p: &mut Problems<'_>, value: Option<&S<DeValue<'_>>>) -> Option<LogConfig> {
    let raw: RawLog = p.section("log", value)?;
    let format = match &raw.format {
        None => Some(LogFormat::Text),
        Some(v) => match v.get_ref().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                p.at(
                    "log.format",
                    v,
                    format!("{other:?} is not \"text\" or \"json\""),
                );
                None
            }
        },
    };
    let level = match raw.level {
        None => Some(LogConfig::default().level),
        Some(v) => {
            let level = v.get_ref().to_ascii_lowercase();
            if ["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
                Some(level)
            } else {
                p.at(
                    "log.level",
                    &v,
                    format!(
                        "{:?} is not one of error, warn, info, debug, trace (RUST_LOG takes finer filters)",
                        v.get_ref()
                    ),
                );
                None
            }
        }
    };
    Some(LogConfig {
        format: format?,
        level: level?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{MINIMAL, parse, problems};

    #[test]
    fn log_and_metrics_settings_are_checked() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.log, LogConfig::default());
        assert_eq!(c.server.metrics_listen, None);
        let bad = problems(&format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\nmetrics_listen = \"127.0.0.1:8080\"\n{MINIMAL}\n[log]\nformat = \"xml\"\nlevel = \"loud\"\n"
        ));
        let keys: Vec<&str> = bad.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["server.metrics_listen", "log.format", "log.level"],
            "{bad:?}"
        );
        assert!(
            bad[0].message.contains("public listener"),
            "{}",
            bad[0].message
        );
    }
}
