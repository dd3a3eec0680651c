//! `POST /pusher/auth` and `POST /pusher/user-auth`, as pusher-js calls them.
//!
//! The order of checks is the contract: the origin, then the body (413 past
//! [`MAX_BODY_BYTES`], 400 for anything malformed, naming the field), then
//! the session (401), then the person's current membership (401 if GitHub
//! revoked the token, 503 if it cannot be known), then, with
//! `revocation.require_signin`, the socket's sign-in as that person (403,
//! once per request, after waiting up to `revocation.signin_wait` for it;
//! see [`super::signins`]), then the rules (403), and only then a
//! signature.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CONTENT_TYPE, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tower_sessions::Session;

use super::error::ApiError;
use super::extract::{Credential, caller_with, client_addr_of, current_identity};
use super::form::{self, Format, form_fields, only};
use super::limits::Key;
use super::signins::SignedIn;
use super::state::AppState;
use crate::channel::{ChannelKind, ChannelName, InputError, MAX_USER_INFO_BYTES, SocketId};
use crate::config::Config;
use crate::excerpt::Excerpt;
use crate::github::GithubUser;
use crate::membership::Membership;
use crate::revocation::Grant;
use crate::rules::{Decision, Denial};
use crate::session::Identity;
use crate::signing::{ChannelAuth, PresenceMember, SignError, UserData};

/// Largest request body accepted: a batch of 100 of the longest channel
/// names fits with room to spare.
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Most channels in one batch request.
pub const MAX_BATCH: usize = 100;

/// What was asked: one socket and one or several channels.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AuthRequest {
    socket_id: SocketId,
    channels: Channels,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Channels {
    /// `channel_name`: the answer is the channel's auth itself.
    Single(ChannelName),
    /// `channel_name[N]`: the answer maps each name to its status. Names are
    /// kept raw so each bad one gets its own 400.
    Batch(Vec<String>),
}

/// The body's format, from `Content-Type`: a form (what pusher-js sends)
/// or JSON, and nothing else.
fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    form::format_of(headers).ok_or_else(|| {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ApiError::bad_request(format!(
            "content-type {content_type:?} is not accepted; send application/x-www-form-urlencoded (as pusher-js does) or application/json"
        ))
    })
}

/// What both endpoints check first: the origin, then the body's size. The
/// request is taken whole because the `HeaderMap` extractor copies headers.
/// Also gives the client's address, for the anonymous rate limit, and the
/// configuration the whole request is answered by (loaded once: a reload
/// meanwhile does not change the rules half-way through a batch).
///
/// A request with an `Authorization` header is answered by its bearer
/// token alone (its cookie, if any, is ignored): it carries no ambient
/// credential, so its origin is not checked.
async fn accept(
    state: &AppState,
    session: Session,
    request: Request,
) -> Result<Accepted, ApiError> {
    let config = state.config().clone();
    let (parts, body) = request.into_parts();
    let credential = Credential::of(&parts.headers, session);
    if !credential.is_bearer() {
        check_origin(state, &config, &parts.headers)?;
    }
    let addr = client_addr_of(&parts, state);
    Ok(Accepted {
        body: form::read_up_to(body, MAX_BODY_BYTES).await?,
        headers: parts.headers,
        credential,
        addr,
        config,
    })
}

/// A request [`accept`] let through.
struct Accepted {
    headers: HeaderMap,
    body: Bytes,
    credential: Credential,
    addr: IpAddr,
    config: Arc<Config>,
}

fn parse_form(body: &[u8]) -> Result<AuthRequest, ApiError> {
    let fields = form_fields(body);
    let socket_id = socket_id(only(&fields, "socket_id")?)?;
    let single = only(&fields, "channel_name")?;
    let mut batch = BTreeMap::new();
    for (key, value) in &fields {
        let Some(index) = key
            .strip_prefix("channel_name[")
            .and_then(|rest| rest.strip_suffix(']'))
        else {
            continue;
        };
        let index: usize = index
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{key} is not channel_name[N]")))?;
        if batch.insert(index, value.to_string()).is_some() {
            return Err(ApiError::bad_request(format!(
                "{key} appears more than once"
            )));
        }
    }
    let channels = match (single, batch.is_empty()) {
        (Some(name), true) => Channels::Single(ChannelName::parse(name)?),
        (None, false) => Channels::Batch(batch.into_values().collect()),
        (Some(_), false) => {
            return Err(ApiError::bad_request(
                "send either channel_name or channel_name[N], not both",
            ));
        }
        (None, true) => return Err(ApiError::bad_request("channel_name is missing")),
    };
    Ok(AuthRequest {
        socket_id,
        channels,
    })
}

/// A JSON body: `socket_id`, and for channel authorization `channel_name`,
/// one name or a list (a batch).
#[derive(Deserialize)]
struct JsonBody {
    socket_id: Option<String>,
    channel_name: Option<Names>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

impl JsonBody {
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the JSON body cannot be read: {e}")))
    }
}

fn socket_id(value: Option<&str>) -> Result<SocketId, ApiError> {
    let value = value.ok_or_else(|| ApiError::bad_request("socket_id is missing"))?;
    Ok(SocketId::parse(value)?)
}

fn parse_json(body: &[u8]) -> Result<AuthRequest, ApiError> {
    let body = JsonBody::parse(body)?;
    let socket_id = socket_id(body.socket_id.as_deref())?;
    let channels = match body.channel_name {
        Some(Names::One(name)) => Channels::Single(ChannelName::parse(&name)?),
        Some(Names::Many(names)) if !names.is_empty() => Channels::Batch(names),
        _ => return Err(ApiError::bad_request("channel_name is missing")),
    };
    Ok(AuthRequest {
        socket_id,
        channels,
    })
}

pub(crate) fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<AuthRequest, ApiError> {
    let request = match format_of(headers)? {
        Format::Form => parse_form(body)?,
        Format::Json => parse_json(body)?,
    };
    if let Channels::Batch(names) = &request.channels
        && names.len() > MAX_BATCH
    {
        return Err(ApiError::bad_request(format!(
            "{} channels in one request; at most {MAX_BATCH}",
            names.len()
        )));
    }
    Ok(request)
}

/// Refuses a request whose `Origin` is neither `public_url` nor allowed.
fn check_origin(state: &AppState, config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else {
        // Not from a browser's cross-origin-capable fetch; the cookie still decides.
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    if origin == config.server.public_origin() || is_allowed(config, origin) {
        Ok(())
    } else {
        let shown = Excerpt::of(origin).to_string();
        let what = "refused a request from an origin that is not allowed";
        state.quiet.info_with(
            what,
            String::new(),
            || tracing::info!(detail = %shown, "{what}"),
        );
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("origin {origin:?} is not allowed to call this gateway"),
        ))
    }
}

/// Whether `origin` is one of `server.allowed_origins`.
fn is_allowed(config: &Config, origin: &str) -> bool {
    config.server.allowed_origins.iter().any(|o| o == origin)
}

/// CORS for the origins in `server.allowed_origins`: pages there may call
/// the auth endpoints with credentials (a `fetch` with `credentials:
/// "include"`, for example in pusher-js's `customHandler`) or with a
/// bearer token, and read the answer. A bearer request's answer allows no
/// credentials: it needs none. Preflights from other origins are refused;
/// same-origin requests need nothing.
pub async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    cors_for(&state, request, next, Cookies::Allowed, "POST").await
}

/// CORS for `/auth/me` and `/auth/logout`: only bearer requests from
/// `server.allowed_origins` may read the answer; a cookie never travels
/// cross-origin to these.
pub async fn bearer_cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    cors_for(&state, request, next, Cookies::Refused, "GET, POST").await
}

/// Whether a cross-origin request may carry the cookie.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cookies {
    Allowed,
    Refused,
}

async fn cors_for(
    state: &AppState,
    request: Request,
    next: Next,
    cookies: Cookies,
    methods: &'static str,
) -> Response {
    let allowed = request
        .headers()
        .get(ORIGIN)
        .filter(|o| o.to_str().is_ok_and(|o| is_allowed(&state.config(), o)))
        .cloned();
    let bearer = request.headers().contains_key(AUTHORIZATION);
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        match &allowed {
            Some(_) => (
                StatusCode::NO_CONTENT,
                [
                    (ACCESS_CONTROL_ALLOW_METHODS, methods),
                    (ACCESS_CONTROL_ALLOW_HEADERS, "authorization, content-type"),
                    (ACCESS_CONTROL_MAX_AGE, "600"),
                ],
            )
                .into_response(),
            None => ApiError::new(
                StatusCode::FORBIDDEN,
                "this origin may not call this gateway",
            )
            .into_response(),
        }
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.append(VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = allowed {
        // A preflight cannot tell whether the request will carry the
        // cookie; the answer to the request itself says.
        let with_cookie = cookies == Cookies::Allowed && !bearer;
        if with_cookie || bearer || preflight {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        if with_cookie {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    response
}

/// The logged-in person's current membership, or the refusal. Each asks
/// within `limits.auth_per_minute`, counted per person (per client address
/// before login), before any GitHub read is made for it.
async fn who(
    state: &AppState,
    config: &Config,
    credential: &Credential,
    addr: IpAddr,
) -> Result<(Arc<Membership>, Arc<Identity>), ApiError> {
    let identity = current_identity(state, config, credential)
        .await
        .map_err(ApiError::session)?;
    let key = identity
        .as_ref()
        .map_or(Key::addr(addr), |i| Key::Person(i.user.id));
    let limit = state.limits().auth.clone();
    if let Err(wait) = limit.admit(&state.room, key).await {
        let who = identity
            .as_ref()
            .map_or_else(|| addr.to_string(), |i| i.user.login.clone());
        state
            .quiet
            .info("refused: over limits.auth_per_minute", who);
        return Err(ApiError::too_many(wait));
    }
    let Some(identity) = identity else {
        return Err(credential.unauthenticated());
    };
    let (identity, membership) = caller_with(state, credential, identity)
        .await
        .map_err(ApiError::session)?
        .person(credential)?;
    match membership {
        Ok(membership) => Ok((membership, identity)),
        Err(why) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "GitHub membership cannot be checked right now; try again shortly",
        )
        .because(format!(
            "membership of {} unknown: {why}",
            identity.user.login
        ))),
    }
}

/// The presence `user_info` of a person: login, name and avatar, as GitHub
/// last said. A display name too long for Pusher's 1 KB limit is cut at a
/// character boundary, so a long name can never turn a join into an error.
pub fn user_info(user: &GithubUser) -> Value {
    let info = |name: Option<&str>, avatar_url: &str| json!({ "login": user.login, "name": name, "avatar_url": avatar_url });
    let size = |v: &Value| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
    let full = info(user.name.as_deref(), &user.avatar_url);
    if size(&full) <= MAX_USER_INFO_BYTES {
        return full;
    }
    let name = user.name.as_deref().unwrap_or_default();
    // What is left for the name's characters once everything else is in.
    let mut budget = MAX_USER_INFO_BYTES.saturating_sub(size(&info(Some(""), &user.avatar_url)));
    let mut cut = 0;
    for (at, c) in name.char_indices() {
        let cost = json_len(c);
        if cost > budget {
            break;
        }
        budget -= cost;
        cut = at + c.len_utf8();
    }
    let trimmed = info(Some(&name[..cut]), &user.avatar_url);
    if size(&trimmed) <= MAX_USER_INFO_BYTES {
        trimmed
    } else {
        // Only an absurd avatar URL gets here: leave it out.
        info(Some(&name[..cut]), "")
    }
}

/// How many bytes `c` takes inside a JSON string as serde_json writes it.
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// One request's signing: who asks, for which socket. The presence member
/// data is built once, at the first presence channel, however many a batch
/// holds.
struct Signing<'a> {
    state: &'a AppState,
    membership: &'a Membership,
    /// Who is logged in: their sealed token is remembered with each grant
    /// so the revocation sweep can re-read the person.
    identity: &'a Identity,
    /// When the request began, for the decision's log line.
    started: std::time::Instant,
    /// The configuration the request is answered by (see [`accept`]).
    config: Arc<Config>,
    socket_id: &'a SocketId,
    member: OnceLock<Result<PresenceMember, InputError>>,
}

impl Signing<'_> {
    /// Decides and signs one channel.
    async fn authorize(&self, channel: &ChannelName) -> Result<ChannelAuth, ApiError> {
        let login = &self.membership.person.login;
        let decision = self
            .config
            .rules
            .decide_valid(&self.membership.person, channel);
        let kind = kind_label(channel.kind());
        let result = self.sign(channel, &decision).await;
        let outcome = match &result {
            Ok(_) => "allow",
            Err(e) if e.status.is_server_error() => "error",
            Err(_) => "deny",
        };
        self.state.metrics.decision(kind, outcome);
        let line = || {
            tracing::info!(
                %login,
                id = self.membership.person.id,
                %channel,
                kind,
                decision = outcome,
                reason = %decision,
                latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                "authorization"
            );
        };
        if outcome == "deny" {
            // A person's first few denials a minute, each once however
            // often repeated, the rest summed; every allow has its line.
            let (who, text) = (login.to_string(), format!("{login} {channel}: {decision}"));
            self.state
                .quiet
                .info_capped("denied", who, &text, super::limits::DENIALS_LOGGED, line);
        } else {
            line();
        }
        result
    }

    /// Signs `channel` if `decision` allows it.
    async fn sign(
        &self,
        channel: &ChannelName,
        decision: &Decision<'_>,
    ) -> Result<ChannelAuth, ApiError> {
        match decision {
            Decision::Deny(Denial::Public(name)) => Err(ApiError::bad_request(
                SignError::PublicChannel(name.clone()).to_string(),
            )),
            Decision::Deny(_) => {
                // Logged by `authorize`, like an allow.
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("you may not join {channel}"),
                ))
            }
            Decision::Allow { .. } => {
                let member = match channel.kind() {
                    ChannelKind::Presence => Some(self.member()?),
                    _ => None,
                };
                match self
                    .state
                    .signer
                    .authorize_channel(self.socket_id, channel, member)
                {
                    Ok(auth) => {
                        self.state
                            .revocation
                            .signed(
                                self.membership,
                                self.identity,
                                Grant::Channel(channel.as_str()),
                                self.socket_id,
                            )
                            .await
                            .map_err(not_kept)?;
                        Ok(auth)
                    }
                    Err(e @ SignError::NoMasterKey(_)) => Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "this gateway has no encryption master key, so it cannot authorize private-encrypted- channels",
                    )
                    .because(e)),
                    Err(e) => Err(ApiError::bad_request(e.to_string())),
                }
            }
        }
    }

    fn member(&self) -> Result<&PresenceMember, ApiError> {
        let user = self.membership.user();
        let member = self
            .member
            .get_or_init(|| PresenceMember::new(&user.id.to_string(), &user_info(user)));
        member
            .as_ref()
            .map_err(|e| ApiError::internal(format!("presence data of {}: {e}", user.login)))
    }
}

/// A channel kind as a metrics label.
fn kind_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Private => "private",
        ChannelKind::Presence => "presence",
        ChannelKind::PrivateEncrypted => "encrypted",
        ChannelKind::Public => "public",
    }
}

/// What a channel request for a socket that did not sign in in time is
/// told, under `revocation.require_signin`.
pub const SIGN_IN_FIRST: &str = "sign in first: call pusher.signin() before subscribing";

/// With `revocation.require_signin`: refuses the request unless `socket_id`
/// is signed in as the person who asks, waiting up to
/// `revocation.signin_wait` for a sign-in that has not come yet (pusher-js
/// sends it beside the subscriptions, in either order). Once per request,
/// however many channels it holds. A person `[signin]` refuses is told at
/// once: their sign-in can never come. True when it had to wait.
async fn signed_in_first(
    state: &AppState,
    config: &Config,
    membership: &Membership,
    socket_id: &SocketId,
) -> Result<bool, ApiError> {
    let person = &membership.person;
    let admitted = config
        .signin
        .as_ref()
        .is_some_and(|conditions| conditions.admit(person));
    let (reason, message, detail) = if admitted {
        let wait = config.revocation.signin_wait;
        match state.signins.wait(socket_id, person.id, wait).await {
            SignedIn::Same => return Ok(false),
            SignedIn::Came => return Ok(true),
            SignedIn::Other(other) => (
                "other_person",
                "this connection is signed in as another GitHub account: sign in with pusher.signin() on a connection of your own, then subscribe",
                format!("the socket is signed in as GitHub id {other}"),
            ),
            SignedIn::Late => (
                "late",
                SIGN_IN_FIRST,
                "the socket did not sign in within revocation.signin_wait".to_owned(),
            ),
            SignedIn::Unsure => {
                // Not a refusal: the store did not answer; it may ask again.
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the session store is unavailable; try again shortly",
                )
                .because("the fleet's sign-ins could not be read"));
            }
            SignedIn::Busy => {
                state.metrics.signin_refusal("busy");
                // Not the client's fault: it may ask again.
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many channel requests are waiting for sign-ins; try again shortly",
                )
                .retry_after(wait.as_secs()));
            }
        }
    } else {
        (
            "not_admitted",
            "you may not sign in to this Pusher app ([signin]), and this gateway signs channels only for connections that signed in",
            "[signin] refuses them".to_owned(),
        )
    };
    state.metrics.signin_refusal(reason);
    // Once a minute per person and reason, however many sockets.
    state.quiet.info(
        "channels refused: revocation.require_signin",
        format!("{} (id {}): {detail}", person.login, person.id),
    );
    Err(ApiError::new(StatusCode::FORBIDDEN, message))
}

/// `POST /pusher/auth`: channel authorization, single or batch.
pub async fn channel_auth(
    State(state): State<AppState>,
    session: Session,
    request: Request,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let Accepted {
        headers,
        body,
        credential,
        addr,
        config,
    } = accept(&state, session, request).await?;
    let request = parse_request(&headers, &body)?;
    // A request waiting for its sign-in holds only what it parsed.
    drop((headers, body));
    let (mut membership, mut identity) = who(&state, &config, &credential, addr).await?;
    let mut config = config;
    if config.revocation.require_signin
        && signed_in_first(&state, &config, &membership, &request.socket_id).await?
    {
        // It waited: the rules and the membership it began with may have
        // changed meanwhile (a removal that ended the person's grants, a
        // reload). Decide on today's.
        config = state.config().clone();
        (membership, identity) = who(&state, &config, &credential, addr).await?;
    }
    let signing = Signing {
        state: &state,
        membership: &membership,
        identity: &identity,
        started,
        config,
        socket_id: &request.socket_id,
        member: OnceLock::new(),
    };
    match &request.channels {
        Channels::Single(channel) => Ok(Json(signing.authorize(channel).await?).into_response()),
        Channels::Batch(names) => {
            let mut answer = Map::new();
            for name in names {
                let result = match ChannelName::parse(name) {
                    Ok(channel) => signing.authorize(&channel).await,
                    Err(e) => Err(ApiError::from(e)),
                };
                let entry = match result {
                    Ok(auth) => json!({ "status": 200, "data": auth }),
                    Err(refusal) => json!({ "status": refusal.status.as_u16() }),
                };
                answer.insert(name.clone(), entry);
            }
            Ok(Json(Value::Object(answer)).into_response())
        }
    }
}

/// `POST /pusher/user-auth`: user authentication for `pusher.signin()`. The
/// person must be logged in with a token GitHub still accepts.
pub async fn user_auth(
    State(state): State<AppState>,
    session: Session,
    request: Request,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let Accepted {
        headers,
        body,
        credential,
        addr,
        config,
    } = accept(&state, session, request).await?;
    let socket_id = match format_of(&headers)? {
        Format::Form => socket_id(only(&form_fields(&body), "socket_id")?)?,
        Format::Json => socket_id(JsonBody::parse(&body)?.socket_id.as_deref())?,
    };
    let (membership, identity) = who(&state, &config, &credential, addr).await?;
    // Sign-in is authorization too: a GitHub account alone is not enough.
    let person = &membership.person;
    let admitted = config
        .signin
        .as_ref()
        .is_some_and(|conditions| conditions.admit(person));
    if !admitted {
        let reason = match &config.signin {
            None => "no [signin] section: sign-in is refused to everyone".to_owned(),
            Some(c) => format!("meets none of [signin] ({})", c.describe()),
        };
        state.metrics.decision("user", "deny");
        // The allow's line, once a minute per person however often repeated.
        state.quiet.info_with(
            "sign-in denied",
            format!("{} (id {}): {reason}", person.login, person.id),
            || {
                tracing::info!(
                    login = %person.login,
                    id = person.id,
                    kind = "user",
                    decision = "deny",
                    %reason,
                    latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "authorization"
                );
            },
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "you may not sign in to this Pusher app",
        ));
    }
    // A connection signed in as someone else stays theirs: whoever learns
    // its socket id cannot take it over, and refuse its owner's channels.
    if let Some(other) = state
        .signins
        .who_anywhere(&socket_id)
        .await
        .map_err(store_down)?
        && other != person.id
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this connection is signed in as another GitHub account",
        ));
    }
    let user = membership.user();
    let data = UserData::new(&user.id.to_string(), Some(&user_info(user)))
        .map_err(|e| ApiError::internal(format!("user data of {}: {e}", user.login)))?;
    let answer = state.signer.authenticate_user(&socket_id, &data);
    // Kept first: a sign-in the store could not keep is neither an allow
    // nor a socket signed in.
    state
        .revocation
        .signed(&membership, &identity, Grant::SignIn, &socket_id)
        .await
        .map_err(not_kept)?;
    state
        .signins
        .signed_in(&socket_id, person.id)
        .await
        .map_err(store_down)?;
    state.metrics.decision("user", "allow");
    tracing::info!(
        login = %person.login,
        id = person.id,
        kind = "user",
        decision = "allow",
        reason = "meets [signin]",
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "authorization"
    );
    Ok(Json(answer).into_response())
}

/// 503 for a sign-in the fleet's store could not read or keep.
fn store_down(e: crate::room::RoomError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the session store is unavailable; try again shortly",
    )
    .because(format!("sign-ins: session store: {e}"))
}

/// 503 for a signature withheld because its grant could not be kept.
fn not_kept(e: crate::revocation::NotKept) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the session store is unavailable, so nothing is signed that a restart could not take back; try again shortly",
    )
    .because(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person_named(name: &str) -> GithubUser {
        GithubUser {
            id: 1,
            login: "ada".into(),
            name: Some(name.into()),
            avatar_url: "https://avatars.githubusercontent.com/u/1?v=4".into(),
        }
    }

    #[test]
    fn a_long_display_name_is_cut_to_fit_pushers_limit() {
        for unit in ["x", "é", "北", "👩‍💻", "\"", "\u{1}"] {
            let long = person_named(&unit.repeat(2000));
            let info = user_info(&long);
            let size = serde_json::to_vec(&info).unwrap().len();
            assert!(size <= MAX_USER_INFO_BYTES, "{unit:?}: {size}");
            assert!(
                size > MAX_USER_INFO_BYTES - 12,
                "{unit:?}: cut no more than needed: {size}"
            );
            let name = info["name"].as_str().unwrap();
            assert!(long.name.as_deref().unwrap().starts_with(name), "{unit:?}");
            // The cut name is still good presence data.
            assert!(PresenceMember::new("1", &info).is_ok());
            assert!(UserData::new("1", Some(&info)).is_ok());
        }
        let short = person_named("Ada Lovelace");
        assert_eq!(user_info(&short)["name"], "Ada Lovelace");
    }

    fn form(body: &str) -> Result<AuthRequest, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        parse_request(&headers, body.as_bytes())
    }

    fn json_body(body: &str) -> Result<AuthRequest, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        parse_request(&headers, body.as_bytes())
    }

    fn message(r: Result<AuthRequest, ApiError>) -> String {
        let refusal = r.expect_err("should be refused");
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        refusal.message().to_owned()
    }

    #[test]
    fn single_and_batch_forms_parse() {
        let single = form("socket_id=1.2&channel_name=private-a").unwrap();
        assert_eq!(
            single.channels,
            Channels::Single(ChannelName::parse("private-a").unwrap())
        );
        let batch =
            form("socket_id=1.2&channel_name%5B1%5D=private-b&channel_name%5B0%5D=private-a")
                .unwrap();
        assert_eq!(
            batch.channels,
            Channels::Batch(vec!["private-a".into(), "private-b".into()])
        );
        let json = json_body(r#"{"socket_id":"1.2","channel_name":"presence-x"}"#).unwrap();
        assert_eq!(json.socket_id.as_str(), "1.2");
        let extra = form("socket_id=1.2&channel_name=private-a&custom=param").unwrap();
        assert_eq!(extra.socket_id.as_str(), "1.2");
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        assert!(message(form("channel_name=private-a")).contains("socket_id is missing"));
        assert!(message(form("socket_id=1.2")).contains("channel_name is missing"));
        assert!(
            message(form("socket_id=1.2&socket_id=1.3&channel_name=private-a"))
                .contains("socket_id appears more than once")
        );
        assert!(
            message(form(
                "socket_id=1.2&channel_name=private-a&channel_name=private-b"
            ))
            .contains("channel_name appears more than once")
        );
        assert!(
            message(form(
                "socket_id=1.2&channel_name=private-a&channel_name%5B0%5D=private-b"
            ))
            .contains("not both")
        );
        assert!(
            message(form("socket_id=1.2&channel_name%5Bx%5D=private-b"))
                .contains("channel_name[x]")
        );
        assert!(
            message(form("socket_id=1.1%3Aprivate-x&channel_name=private-a"))
                .starts_with("socket_id")
        );
        assert!(
            message(form("socket_id=1.2&channel_name=private-a%0A")).starts_with("channel_name")
        );
        assert!(
            message(json_body(
                r#"{"socket_id":"1.2","socket_id":"1.3","channel_name":"private-a"}"#
            ))
            .contains("duplicate")
        );
        assert!(message(json_body("{")).contains("JSON"));
        let mut plain = HeaderMap::new();
        plain.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(
            message(parse_request(
                &plain,
                b"socket_id=1.2&channel_name=private-a"
            ))
            .contains("content-type")
        );
        let many: String = (0..=MAX_BATCH)
            .map(|i| format!("&channel_name%5B{i}%5D=private-{i}"))
            .collect();
        assert!(message(form(&format!("socket_id=1.2{many}"))).contains("at most 100"));
    }
}
