//! The gateway's HTTP surface, driven like a browser and like pusher-js,
//! against the GitHub stand-in over real HTTP. One test binary (with modules)
//! so the tests link once.

mod bodies;
mod demo;
mod device;
mod faults;
mod fleet;
mod fleet_ha;
mod fleet_membership;
mod fleet_review;
mod github_client;
mod grants_store;
mod hardening;
mod helpers;
mod interop;
mod login;
mod logout;
mod operations;
mod pages;
mod pusher_auth;
mod pusher_standin;
mod refresh;
mod revocation;
mod revocation_property;
mod sessions;
mod signin_first;
mod strangers;
mod tasks;
mod tokens;
