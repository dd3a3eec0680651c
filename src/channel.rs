//! Pusher's input grammar: socket ids, channel names and their kinds.
//!
//! Pure code, the first thing client input meets. [`SocketId`] and
//! [`ChannelName`] can only be built by `parse`, which refuses anything a
//! Pusher server would not accept. That order matters: the 2015 "format
//! injection" let a socket id such as `1.1:private-x` turn one signature into
//! a valid one for another channel, which these checks make impossible.
//! Nothing here signs, and nothing here knows of HTTP.

use crate::excerpt::Excerpt;

/// Longest channel name Pusher accepts.
pub const MAX_CHANNEL_NAME_LEN: usize = 164;
/// Longest user id Pusher accepts in presence data and user authentication.
pub const MAX_USER_ID_LEN: usize = 128;
/// Largest `user_info`, as serialized JSON, that Pusher accepts.
pub const MAX_USER_INFO_BYTES: usize = 1024;
/// Longest socket id we accept; real ones are two integers of a few digits.
const MAX_SOCKET_ID_LEN: usize = 64;

/// Why a client-supplied value was refused. The message names the field and
/// shows a short, escaped excerpt of what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// `socket_id` is not `DIGITS.DIGITS`.
    #[error(
        "socket_id {0} is not a Pusher socket id (two numbers joined by a dot, such as 1234.5678)"
    )]
    SocketId(Excerpt),
    /// `channel_name` is empty.
    #[error("channel_name is empty")]
    ChannelNameEmpty,
    /// `channel_name` is longer than Pusher allows.
    #[error("channel_name is {0} characters long; Pusher allows at most {MAX_CHANNEL_NAME_LEN}")]
    ChannelNameTooLong(usize),
    /// `channel_name` holds a character outside Pusher's channel-name alphabet.
    #[error(
        "channel_name {name} contains {found:?}; a channel name may only contain A-Z, a-z, 0-9 and _ - = @ , . ;"
    )]
    ChannelNameCharacter {
        /// The offending name, shortened and escaped.
        name: Excerpt,
        /// The first character that is not allowed.
        found: char,
    },
    /// A user id is empty.
    #[error("{field} is empty")]
    UserIdEmpty {
        /// Which field: `user_id` or `user_data.id`.
        field: &'static str,
    },
    /// A user id is longer than Pusher allows.
    #[error("{field} is {len} characters long; Pusher allows at most {MAX_USER_ID_LEN}")]
    UserIdTooLong {
        /// Which field: `user_id` or `user_data.id`.
        field: &'static str,
        /// Its length in characters.
        len: usize,
    },
    /// `user_info` is larger than Pusher allows.
    #[error("user_info is {0} bytes as JSON; Pusher allows at most {MAX_USER_INFO_BYTES}")]
    UserInfoTooLarge(usize),
}

/// A Pusher socket id: `^\d+\.\d+$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketId(String);

impl SocketId {
    /// Accepts only two runs of ASCII digits joined by one dot.
    pub fn parse(input: &str) -> Result<Self, InputError> {
        let valid = input.len() <= MAX_SOCKET_ID_LEN
            && input.split_once('.').is_some_and(|(a, b)| {
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
                digits(a) && digits(b)
            });
        if valid {
            Ok(Self(input.to_owned()))
        } else {
            Err(InputError::SocketId(Excerpt::of(input)))
        }
    }

    /// The id as sent by the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What kind of channel a name denotes, from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// No auth prefix: anyone may subscribe without a signature.
    Public,
    /// `private-` (but not `private-encrypted-`).
    Private,
    /// `private-encrypted-`: end-to-end encrypted, needs a `shared_secret`.
    PrivateEncrypted,
    /// `presence-`: needs `channel_data` describing the member.
    Presence,
}

/// True for the characters Pusher allows in a channel name.
pub fn is_channel_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '@' | ',' | '.' | ';')
}

/// A channel name that passed Pusher's grammar: 1 to 164 characters of
/// `A-Za-z0-9_-=@,.;`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelName(String);

impl ChannelName {
    /// Checks the grammar; the error names the first problem.
    pub fn parse(input: &str) -> Result<Self, InputError> {
        if input.is_empty() {
            return Err(InputError::ChannelNameEmpty);
        }
        if let Some(found) = input.chars().find(|&c| !is_channel_name_char(c)) {
            return Err(InputError::ChannelNameCharacter {
                name: Excerpt::of(input),
                found,
            });
        }
        // Every allowed character is ASCII, so bytes are characters here.
        if input.len() > MAX_CHANNEL_NAME_LEN {
            return Err(InputError::ChannelNameTooLong(input.len()));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind of channel, from its prefix.
    pub fn kind(&self) -> ChannelKind {
        kind_of(&self.0)
    }
}

impl std::fmt::Display for ChannelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of channel a (possibly unvalidated) name or pattern denotes.
pub fn kind_of(name: &str) -> ChannelKind {
    if name.starts_with("private-encrypted-") {
        ChannelKind::PrivateEncrypted
    } else if name.starts_with("private-") {
        ChannelKind::Private
    } else if name.starts_with("presence-") {
        ChannelKind::Presence
    } else {
        ChannelKind::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    #[test]
    fn socket_id_must_be_digits_dot_digits() {
        for good in ["1234.1234", "0.0", "123456789012.987654321"] {
            assert!(SocketId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "1",
            "1.1.1",
            "1.1:private-x",
            "1.1\n",
            " 1.1",
            "a.1",
            "1.a",
            "-1.1",
            "+1.1",
            "１.１", // fullwidth digits
            "1,1",
            &format!("{}.1", "9".repeat(64)),
        ] {
            let err = SocketId::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("socket_id "), "{err}");
        }
    }

    #[test]
    fn channel_name_grammar() {
        assert!(ChannelName::parse("private-a_b-c=d@e,f.g;h").is_ok());
        assert!(ChannelName::parse(&format!("private-{}", "x".repeat(156))).is_ok());
        assert_eq!(
            ChannelName::parse(""),
            Err(InputError::ChannelNameEmpty),
            "empty"
        );
        assert_eq!(
            ChannelName::parse(&format!("private-{}", "x".repeat(157))),
            Err(InputError::ChannelNameTooLong(165))
        );
        for (bad, found) in [
            ("private-a:b", ':'),
            ("private-a b", ' '),
            ("private-a\nb", '\n'),
            ("private-a#b", '#'),
            ("private-a*", '*'),
            ("private-а", 'а'), // Cyrillic a
            ("private-a/b", '/'),
        ] {
            match ChannelName::parse(bad) {
                Err(InputError::ChannelNameCharacter { found: f, .. }) => assert_eq!(f, found),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let err = ChannelName::parse("private-a\nb").unwrap_err().to_string();
        assert!(err.starts_with("channel_name \"private-a\\nb\""), "{err}");
    }

    #[test]
    fn channel_kinds() {
        assert_eq!(channel("private-x").kind(), ChannelKind::Private);
        assert_eq!(
            channel("private-encrypted-x").kind(),
            ChannelKind::PrivateEncrypted
        );
        assert_eq!(channel("presence-x").kind(), ChannelKind::Presence);
        assert_eq!(channel("privatex").kind(), ChannelKind::Public);
        assert_eq!(channel("news").kind(), ChannelKind::Public);
    }
}
