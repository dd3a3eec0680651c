//! A short, escaped copy of client input for messages and log lines.
//!
//! Anything a stranger sent that is quoted back (in an error or a log line)
//! goes through [`Excerpt`], so it can neither forge a log line nor flood one.

/// A short, escaped copy of client input for error messages: at most 40
/// characters, with control characters and quotes escaped, so an error can
/// quote what was sent without letting it forge log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt(String);

impl Excerpt {
    /// The excerpt of `input`.
    pub fn of(input: &str) -> Self {
        const MAX: usize = 40;
        let mut shown: String = input.chars().take(MAX).collect();
        if input.chars().nth(MAX).is_some() {
            shown.push('…');
        }
        Self(format!("{shown:?}"))
    }
}

impl std::fmt::Display for Excerpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
