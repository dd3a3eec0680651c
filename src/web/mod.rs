//! The HTTP face of the gateway.
//!
//! Imports point one way: the handlers ([`auth`], [`pusher`], [`pages`])
//! use the state, the extractors and the errors; those use the domain
//! (configuration, rules, signing, GitHub, membership, sessions); nothing
//! below imports a handler. [`router`] names every route; [`serve`] runs it.
//!
//! - [`state`]: [`AppState`], what every handler can reach: handles to the
//!   parts [`crate::app`] built.
//! - [`memo`]: what the HTTP face remembers between requests (spent OAuth
//!   states, seen deliveries, device polls, request ids).
//! - [`extract`]: the client's address, the [`Credential`] (cookie or bearer
//!   token) and the logged-in person ([`Caller`]).
//! - [`error`]: [`ApiError`] (JSON) and [`PageError`] (HTML), each logged in one place.
//! - [`html`]: askama pages with the content security policy.
//! - [`observe`]: request ids, the request span, HTTP metrics.
//! - [`limits`]: `[limits]`, the client's address behind a proxy, a quiet log.
//! - [`auth`]: GitHub login (OAuth web flow), logout and `/auth/me`.
//! - [`pusher`]: `/pusher/auth` and `/pusher/user-auth`, and their CORS.
//! - [`device`]: GitHub's device flow for apps without a browser.
//! - [`tokens`]: a logged-in person's app tokens.
//! - [`form`]: the small bodies of those routes.
//! - [`pages`]: the home page, assets, liveness.
//! - [`webhook`]: `POST /github/webhook`, GitHub's deliveries.
//! - [`reload`]: `SIGHUP`: the file read again, the rules swapped live.
//! - [`signins`]: which Pusher connections signed in, and as whom, for
//!   `revocation.require_signin`; channel requests waiting for a sign-in.
//! - [`router`]: every route and the layers around them.
//! - [`serve`]: the bounded accept loop, the metrics routes, the signals.

pub mod auth;
pub mod device;
pub mod error;
pub mod extract;
pub mod form;
pub mod html;
pub mod limits;
pub mod memo;
pub mod observe;
pub mod pages;
pub mod pusher;
pub mod refresh;
pub mod reload;
pub mod router;
pub mod serve;
pub mod signins;
pub mod state;
pub mod tokens;
pub mod webhook;

pub use error::{ApiError, PageError};
pub use extract::{Caller, ClientAddr, Credential};
pub use router::router;
pub use serve::{ConnectionLimits, serve_connections, shutdown_signal};
pub use state::{AppState, OAuthClient};
