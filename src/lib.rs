//! channelgate: an authorization gateway for Pusher Channels.
//!
//! People log in with GitHub; when the Pusher client asks to join a
//! `private-`, `presence-` or `private-encrypted-` channel, the gateway decides
//! from the person's current GitHub memberships and the rules in
//! `config.toml` whether to sign the subscription.
//!
//! # Layout
//!
//! - [`config`]: `config.toml`, loaded and validated once; every problem reported at once.
//! - [`rules`]: the rule language and the decision engine (pure code).
//! - [`channel`]: Pusher's input grammar: socket ids, channel names, kinds (pure code).
//! - [`signing`]: HMAC-SHA256 signatures of what passed the grammar (pure code).
//! - [`excerpt`]: client input quoted safely in messages and logs.
//! - [`secret`]: a wrapper that keeps secrets out of logs.
//! - [`crypto`]: keys at rest: tokens sealed in stored sessions, the login
//!   cookie, device codes.
//! - [`github`]: the GitHub REST client (user, org memberships, teams) and
//!   the device flow's two calls.
//! - [`clock`]: the clock of every TTL, which tests move instead of waiting.
//! - [`membership`]: a person's active orgs and teams, cached briefly, re-read with ETags.
//! - [`metrics`]: what is counted for Prometheus, every label from a fixed set.
//! - [`pusher_api`]: Pusher's HTTP API, signed: ending a person's connections.
//! - [`revocation`]: live grants: what was signed, re-checked on webhooks,
//!   on a sweep and on rule changes; lost ones end the connections.
//! - [`session`]: the session store chosen by configuration, what a session
//!   holds, and bearer tokens (sessions of their own for apps without a browser).
//! - [`web`]: the HTTP face: state, extractors, errors, handlers, router,
//!   the bounded server. Everything above it is free of HTTP.
//! - [`tasks`]: the background work, owned: stopped on shutdown and when
//!   a gateway is dropped; tests wait on it instead of sleeping.
//! - [`app`]: the composition root: builds every part above from the
//!   configuration, starts the background work, serves; `channelgate serve`.
//! - [`demo`]: `channelgate demo`: the gateway and the GitHub stand-in
//!   (`crates/github-standin`) on one loopback port.
//! - [`cli`]: the `channelgate` command line; `main.rs` only calls [`cli::run`].

pub mod app;
pub mod channel;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
#[cfg(feature = "demo")]
pub mod demo;
pub mod excerpt;
pub mod github;
pub mod membership;
pub mod metrics;
pub mod pusher_api;
pub mod revocation;
pub mod room;
pub mod rules;
pub mod secret;
pub mod session;
pub mod signing;
pub mod tasks;
pub mod web;

#[cfg(test)]
mod hostile;
