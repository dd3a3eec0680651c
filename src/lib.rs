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
//! - [`signing`]: Pusher's input grammar and HMAC-SHA256 signatures (pure code).
//! - [`secret`]: a wrapper that keeps secrets out of logs.
//! - [`cli`]: the `channelgate` command line; `main.rs` only calls [`cli::run`].

pub mod cli;
pub mod config;
pub mod rules;
pub mod secret;
pub mod signing;
