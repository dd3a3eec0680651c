//! What check-config (and `serve` at start) warns about without refusing
//! the file: each a [`Problem`] printed as a line starting `warning:`.

use std::path::Path;

use toml::de::DeTable;

use super::{Config, Problem};

/// The keys whose values are secrets, as they may be written in the file.
const SECRET_KEYS: &[(&str, &str)] = &[
    ("pusher", "secret"),
    ("pusher", "encryption_master_key_base64"),
    ("github", "client_secret"),
    ("session", "encryption_key_base64"),
    ("webhooks", "secret"),
];

fn warning(key: impl Into<String>, message: String) -> Problem {
    Problem {
        key: key.into(),
        line: None,
        message,
        excerpt: None,
    }
}

impl Config {
    /// Everything about this configuration worth a warning: rules that
    /// `[signin]` leaves no way to use under `require_signin`, and wildcard
    /// patterns open to everyone.
    pub fn warnings(&self) -> Vec<Problem> {
        let mut all = self.signin_warnings();
        for (i, rule) in self.rules.rules().iter().enumerate() {
            if rule.conditions.everyone && rule.pattern.is_wildcard() {
                all.push(warning(
                    format!("rules[{i}]"),
                    format!(
                        "{:?} is open to everyone: every GitHub account may join every channel it matches; narrow the pattern or name users, orgs or teams",
                        rule.pattern.as_str()
                    ),
                ));
            }
        }
        all
    }
}

/// Warnings about the file itself: one that holds secrets (rather than
/// leaving them to environment variables) and that its group or others
/// may read or write.
pub fn file_warnings(path: &Path) -> Vec<Problem> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(doc) = DeTable::parse(&text) else {
        return Vec::new();
    };
    let held: Vec<String> = SECRET_KEYS
        .iter()
        .filter(|(section, key)| {
            doc.get_ref()
                .get(*section)
                .and_then(|s| s.get_ref().as_table())
                .is_some_and(|t| t.contains_key(*key))
        })
        .map(|(section, key)| format!("{section}.{key}"))
        .collect();
    if held.is_empty() {
        return Vec::new();
    }
    match open_to_others(path) {
        Some(mode) => vec![warning(
            "(file)",
            format!(
                "holds {} but its group or others may read or write it (mode {mode:o}): `chmod 600` it, or move the secrets to their environment variables",
                held.join(", ")
            ),
        )],
        None => Vec::new(),
    }
}

/// The file's permission bits when its group or others have any.
#[cfg(unix)]
fn open_to_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn open_to_others(_: &Path) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{MINIMAL, parse, with_rules};

    #[test]
    fn a_wildcard_open_to_everyone_is_warned_about_by_its_rule() {
        let c = parse(&with_rules(
            r#"
[[rules]]
channel = "private-lobby"
everyone = true
[[rules]]
channel = "private-*"
everyone = true
[[rules]]
channel = "private-ops-*"
orgs = ["acme"]
"#,
        ))
        .unwrap();
        let warnings = c.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].key, "rules[1]");
        assert!(
            warnings[0]
                .message
                .contains("\"private-*\" is open to everyone")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_holding_secrets_that_others_may_read_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cg-warn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.toml");
        std::fs::write(&file, MINIMAL).unwrap();
        let chmod =
            |mode| std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        chmod(0o644);
        let w = file_warnings(&file);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].message.contains("pusher.secret, github.client_secret"),
            "{}",
            w[0].message
        );
        assert!(w[0].message.contains("644"), "{}", w[0].message);
        assert!(
            !w[0].message.contains("7ad3773142a6692b25b8"),
            "never the secret"
        );
        chmod(0o600);
        assert!(file_warnings(&file).is_empty());
        // Secrets from the environment only: the file may be readable.
        std::fs::write(&file, "[pusher]\napp_id = \"1\"\n").unwrap();
        chmod(0o644);
        assert!(file_warnings(&file).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
