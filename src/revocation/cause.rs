//! Why grants are being re-evaluated: for the log, and for which shared
//! membership answers a re-read may take.

use std::fmt;

use crate::membership::Since;

/// Why grants are being re-evaluated, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A webhook delivery.
    Webhook {
        /// `X-GitHub-Delivery`.
        delivery: String,
        /// `X-GitHub-Event`, with the action.
        event: String,
        /// It says someone was removed (from an org or team, or their
        /// authorization revoked): if the re-read that should confirm it
        /// fails, their grants end all the same.
        removal: bool,
    },
    /// The sweep's periodic re-read.
    Sweep,
    /// A request's membership read found a change.
    Request,
    /// The rules changed.
    Rules,
    /// Another instance saw a change.
    Peer {
        /// It heard a signed webhook that says someone was removed.
        removal: bool,
        /// When it heard it (Unix milliseconds), if it said.
        since: Option<i64>,
    },
}

impl Cause {
    /// A signed webhook, heard here or by another instance, that says
    /// someone was removed.
    pub(super) fn is_removal(&self) -> bool {
        matches!(
            self,
            Self::Webhook { removal: true, .. } | Self::Peer { removal: true, .. }
        )
    }

    /// Which shared membership answers a re-read for this cause may take,
    /// when it is heard at `now_ms`: the sweep and a reload any fresh one
    /// (as they would a fresh cached one), news only one read since.
    pub(super) fn since(&self, now_ms: i64) -> Since {
        match self {
            Self::Sweep | Self::Rules => Since::Fresh,
            Self::Peer {
                since: Some(at), ..
            } => Since::After((*at).min(now_ms)),
            Self::Webhook { .. } | Self::Request | Self::Peer { .. } => Since::After(now_ms),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Webhook {
                delivery, event, ..
            } => write!(f, "webhook {event} (delivery {delivery})"),
            Self::Sweep => f.write_str("the sweep's re-read"),
            Self::Request => f.write_str("a re-read on request"),
            Self::Rules => f.write_str("a change of the rules"),
            Self::Peer { removal: false, .. } => f.write_str("a change another instance saw"),
            Self::Peer { removal: true, .. } => {
                f.write_str("a removal another instance heard from GitHub")
            }
        }
    }
}
