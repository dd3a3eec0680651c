//! What a person lost, and why: their grants judged against their current
//! membership and the rules (pure code, tested in `super::tests`).

use std::hash::{Hash, Hasher};

use super::{Access, MAX_CHANNELS_PER_PERSON, Watched};
use crate::rules::Person;

/// How a lost `pusher.signin()` is named.
pub(super) const SIGN_IN: &str = "sign-in";

/// Every grant, as lost.
pub(super) fn all_grants(watched: &Watched) -> Vec<String> {
    let mut lost: Vec<String> = watched.channels.keys().cloned().collect();
    lost.sort();
    if watched.signed_in.is_some() {
        lost.push(SIGN_IN.to_owned());
    }
    if watched.overflow.is_some() {
        // What they held past the cap, unnamed: ended all the same.
        lost.push(PAST_THE_CAP.to_owned());
    }
    lost
}

/// How the channels signed past the per-person cap are named among what
/// was lost.
pub(super) const PAST_THE_CAP: &str = "channels past the per-person cap";

/// The grants `person` no longer has under `access`, and why (each reason
/// prefixed by its grant when more than one is lost).
/// `rules_changed`: the rules are new since the grants were signed.
pub(super) fn lost_grants(
    watched: &Watched,
    person: &Person,
    access: &Access,
    rules_changed: bool,
) -> (Vec<String>, String) {
    let mut lost: Vec<(String, String)> = Vec::new();
    let mut names: Vec<&String> = watched.channels.keys().collect();
    names.sort();
    for channel in names {
        let decision = access.rules.decide(person, channel);
        if !decision.is_allowed() {
            lost.push((channel.clone(), decision.for_the_person()));
        }
    }
    if watched.signed_in.is_some() && !access.signin.as_ref().is_some_and(|c| c.admit(person)) {
        lost.push((SIGN_IN.to_owned(), "you no longer meet [signin]".to_owned()));
    }
    // Past the cap, what they hold beyond it is unknown: any change of
    // their memberships or of the rules may have taken some of it away.
    if lost.is_empty()
        && let Some(before) = watched.overflow
        && (rules_changed || before != fingerprint(person))
    {
        let what = if rules_changed {
            "the rules"
        } else {
            "your memberships"
        };
        return (
            all_grants(watched),
            format!(
                "{what} changed while you held more than {MAX_CHANNELS_PER_PERSON} channels, so all were ended"
            ),
        );
    }
    let reason = match lost.as_slice() {
        [(_, why)] => why.clone(),
        many => many
            .iter()
            .map(|(grant, why)| format!("{grant}: {why}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    (lost.into_iter().map(|(grant, _)| grant).collect(), reason)
}

/// A hash of what the rules see of a person.
pub fn fingerprint(person: &Person) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    person.hash(&mut h);
    h.finish()
}

/// A person's channels on sockets that never signed in: hosted Pusher's
/// terminate_connections reaches only signed-in sockets, so these stay open
/// when their connections are ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsigned {
    /// Distinct sockets that hold a channel and never signed in.
    pub sockets: usize,
    /// Channels held by at least one such socket.
    pub channels: usize,
}

/// What of `watched`'s channels sits on sockets that never signed in (as
/// far as the sockets remembered tell).
pub(super) fn unsigned(watched: &Watched) -> Unsigned {
    let signed_in =
        |socket: &u64| watched.signed_in.is_some() && watched.signed_sockets.contains(socket);
    let mut sockets = std::collections::HashSet::new();
    let mut channels = 0;
    for held in watched.channels.values() {
        let mut reached = true;
        for socket in held.sockets.keys().iter().filter(|s| !signed_in(s)) {
            reached = false;
            sockets.insert(*socket);
        }
        channels += usize::from(!reached);
    }
    Unsigned {
        sockets: sockets.len(),
        channels,
    }
}
