//! The duration grammar of `config.toml`: a whole number and a unit.

use std::time::Duration;

/// Parses a duration such as `"90s"`, `"5m"`, `"12h"` or `"7d"`.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{input:?} is not a duration; write a whole number and a unit (s, m, h or d), such as \"90s\", \"5m\", \"12h\" or \"7d\""
        )
    };
    let split = input.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = input.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// Formats a duration the way the config writes them (`"5m"`, `"7d"`).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        for s in ["0s", "90s", "5m", "12h", "7d"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
