//! A TOML syntax error shown as compilers show theirs: the line's number,
//! its text and a caret under the place the parser stopped.
//!
//! A line that may hold a secret is never shown: when the statement it
//! belongs to names a secret (`secret`, `client_secret`,
//! `encryption_key_base64`, …) or holds a URL with a password, the excerpt
//! gives only the line's number and its key.

use std::ops::Range;

use toml::de::DeTable;

use super::check::line_of;

/// Words that mark a statement as one that may hold a secret.
const SECRET_WORDS: &[&str] = &["secret", "key_base64", "encryption", "password", "token"];

/// The excerpt for a syntax error at `span` in `text`: three lines, the
/// first and last starting with the gutter, ready to indent.
pub(super) fn excerpt(text: &str, span: &Range<usize>) -> String {
    let start = floor_boundary(text, span.start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[line_start..line_end].trim_end_matches('\r');
    let number = line_of(text, start).to_string();
    let gutter = " ".repeat(number.len());
    if let Some(key) = secret_statement(text, line_start, line_end) {
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("{key} = ")
        };
        return format!(
            "{gutter} |\n{number} | {key}… (not shown: this line may hold a secret)\n{gutter} |"
        );
    }
    // The caret goes under the span's part on this line, at least one column.
    let line_stop = line_start + line.len();
    let from = start.min(line_stop);
    let to = floor_boundary(text, span.end).clamp(from, line_stop);
    // Tabs are kept so the caret lines up under a tab-indented line.
    let pad: String = text[line_start..from]
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let carets = "^".repeat(text[from..to].chars().count().max(1));
    format!(
        "{gutter} |\n{number} | {}\n{gutter} | {pad}{carets}",
        printable(line)
    )
}

/// `offset` within `text`, moved back to a character boundary.
fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut i = offset.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `line` with control characters (a terminal's escapes) replaced.
fn printable(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

/// The key of the statement that the line `line_start..line_end` belongs
/// to, when that statement may hold a secret ("" when its key cannot be
/// shown); `None` when the line may be shown.
///
/// The statement starts at the last line before which the text parses: a
/// line inside a multi-line string or array starts none, so a line in the
/// middle of `secret = """…` is recognised as part of the secret.
fn secret_statement(text: &str, line_start: usize, line_end: usize) -> Option<String> {
    let mut start = line_start;
    while start > 0 && DeTable::parse(&text[..start]).is_err() {
        start = text[..start - 1].rfind('\n').map_or(0, |i| i + 1);
    }
    let statement = text[start..line_end].to_ascii_lowercase();
    let url_with_password = statement
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('@'));
    if !url_with_password && !SECRET_WORDS.iter().any(|w| statement.contains(w)) {
        return None;
    }
    let first = text[start..line_end].lines().next().unwrap_or_default();
    let key = first.split_once('=').map_or("", |(key, _)| key.trim());
    let plain = key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.\" ".contains(c));
    Some(if plain { key.to_owned() } else { String::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_excerpt_shows_the_line_and_a_caret_under_the_span() {
        let text = "[pusher]\napp_id = 1 2\n";
        let at = text.find("2\n").unwrap();
        assert_eq!(
            excerpt(text, &(at..at + 1)),
            "  |\n2 | app_id = 1 2\n  |            ^"
        );
    }

    #[test]
    fn a_line_that_may_hold_a_secret_shows_only_its_number_and_key() {
        for (text, key) in [
            ("[webhooks]\nsecret = \"hunter2\n", "secret = "),
            ("[github]\nclient_secret = hunter2\n", "client_secret = "),
            (
                "[session]\nencryption_key_base64 = hunter2\n",
                "encryption_key_base64 = ",
            ),
            (
                "[session]\nstore = \"redis://:hunter2@cache:6379\" x\n",
                "store = ",
            ),
            // A line inside a multi-line secret belongs to its key.
            ("[webhooks]\nsecret = \"\"\"\nhunter2 = \"x\n", "secret = "),
        ] {
            let at = text.rfind("hunter2").unwrap();
            let shown = excerpt(text, &(at..at + 1));
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains(&format!(
                    "| {key}… (not shown: this line may hold a secret)"
                )),
                "{shown}"
            );
        }
    }

    #[test]
    fn an_excerpt_never_splits_a_character_or_prints_escapes() {
        let text = "name = \"é\u{1b}[31m\n";
        for at in 0..=text.len() + 2 {
            let shown = excerpt(text, &(at..at + 1));
            assert!(!shown.contains('\u{1b}'), "{shown:?}");
        }
    }
}
