//! `POST /pusher/auth` and `POST /pusher/user-auth`, as pusher-js calls them.
//!
//! The order of checks is the contract: the origin, then the body (400 for
//! anything malformed, naming the field), then the session (401), then the
//! person's current membership (401 if GitHub revoked the token, 503 if it
//! cannot be known), then the rules (403), and only then a signature.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, CONTENT_TYPE, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tower_sessions::Session;

use crate::auth::{Caller, caller};
use crate::membership::Membership;
use crate::rules::{Decision, Denial};
use crate::server::AppState;
use crate::session::Identity;
use crate::signing::{
    ChannelAuth, ChannelKind, ChannelName, InputError, PresenceMember, SignError, SocketId,
    UserData,
};

/// Largest request body accepted: a batch of 100 of the longest channel
/// names fits with room to spare.
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Most channels in one batch request.
pub const MAX_BATCH: usize = 100;

/// A refusal, as `{"error": "..."}` with its status.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<InputError> for Refusal {
    fn from(e: InputError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// What was asked: one socket and one or several channels.
#[derive(Debug, PartialEq, Eq)]
struct AuthRequest {
    socket_id: SocketId,
    channels: Channels,
}

#[derive(Debug, PartialEq, Eq)]
enum Channels {
    /// `channel_name`: the answer is the channel's auth itself.
    Single(ChannelName),
    /// `channel_name[N]`: the answer maps each name to its status. Names are
    /// kept raw so each bad one gets its own 400.
    Batch(Vec<String>),
}

/// The body's format, from `Content-Type`.
enum Format {
    Form,
    Json,
}

fn format_of(headers: &HeaderMap) -> Result<Format, Refusal> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(Format::Form)
    } else if essence.eq_ignore_ascii_case("application/json") {
        Ok(Format::Json)
    } else {
        Err(Refusal::bad_request(format!(
            "content-type {content_type:?} is not accepted; send application/x-www-form-urlencoded (as pusher-js does) or application/json"
        )))
    }
}

/// What both endpoints check first: the origin, then the body's size. The
/// request is taken whole because the `HeaderMap` extractor copies headers.
async fn accept(state: &AppState, request: Request) -> Result<(HeaderMap, Bytes), Refusal> {
    let (parts, body) = request.into_parts();
    check_origin(state, &parts.headers)?;
    Ok((parts.headers, read_body(body).await?))
}

/// Reads the body up to [`MAX_BODY_BYTES`].
async fn read_body(body: Body) -> Result<Bytes, Refusal> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            Refusal::bad_request(format!("the request body is over {MAX_BODY_BYTES} bytes"))
        })
}

/// A decoded form: borrowed from the body unless a value had escapes.
type Fields<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn form_fields(body: &[u8]) -> Fields<'_> {
    url::form_urlencoded::parse(body).collect()
}

/// The single value of `name` in a form, refusing absent and repeated fields.
fn only<'a>(fields: &'a Fields<'_>, name: &str) -> Result<Option<&'a str>, Refusal> {
    let mut values = fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_ref());
    let first = values.next();
    if values.next().is_some() {
        return Err(Refusal::bad_request(format!(
            "{name} appears more than once"
        )));
    }
    Ok(first)
}

fn required<'a>(fields: &'a Fields<'_>, name: &str) -> Result<&'a str, Refusal> {
    only(fields, name)?.ok_or_else(|| Refusal::bad_request(format!("{name} is missing")))
}

fn parse_form(body: &[u8]) -> Result<AuthRequest, Refusal> {
    let fields = form_fields(body);
    let socket_id = SocketId::parse(required(&fields, "socket_id")?)?;
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
            .map_err(|_| Refusal::bad_request(format!("{key} is not channel_name[N]")))?;
        if batch.insert(index, value.to_string()).is_some() {
            return Err(Refusal::bad_request(format!(
                "{key} appears more than once"
            )));
        }
    }
    let channels = match (single, batch.is_empty()) {
        (Some(name), true) => Channels::Single(ChannelName::parse(name)?),
        (None, false) => Channels::Batch(batch.into_values().collect()),
        (Some(_), false) => {
            return Err(Refusal::bad_request(
                "send either channel_name or channel_name[N], not both",
            ));
        }
        (None, true) => return Err(Refusal::bad_request("channel_name is missing")),
    };
    Ok(AuthRequest {
        socket_id,
        channels,
    })
}

fn parse_json(body: &[u8]) -> Result<AuthRequest, Refusal> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        One(String),
        Many(Vec<String>),
    }
    #[derive(Deserialize)]
    struct Body {
        socket_id: Option<String>,
        channel_name: Option<Names>,
    }
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| Refusal::bad_request(format!("the JSON body cannot be read: {e}")))?;
    let socket_id = SocketId::parse(
        &body
            .socket_id
            .ok_or_else(|| Refusal::bad_request("socket_id is missing"))?,
    )?;
    let channels = match body.channel_name {
        Some(Names::One(name)) => Channels::Single(ChannelName::parse(&name)?),
        Some(Names::Many(names)) if !names.is_empty() => Channels::Batch(names),
        _ => return Err(Refusal::bad_request("channel_name is missing")),
    };
    Ok(AuthRequest {
        socket_id,
        channels,
    })
}

fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<AuthRequest, Refusal> {
    let request = match format_of(headers)? {
        Format::Form => parse_form(body)?,
        Format::Json => parse_json(body)?,
    };
    if let Channels::Batch(names) = &request.channels
        && names.len() > MAX_BATCH
    {
        return Err(Refusal::bad_request(format!(
            "{} channels in one request; at most {MAX_BATCH}",
            names.len()
        )));
    }
    Ok(request)
}

/// Refuses a request whose `Origin` is neither `public_url` nor allowed.
fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(origin) = headers.get(ORIGIN) else {
        // Not from a browser's cross-origin-capable fetch; the cookie still decides.
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    if origin == state.config.server.public_origin() || allowed_origin(state, headers).is_some() {
        Ok(())
    } else {
        tracing::warn!(%origin, "refused a request from an origin that is not allowed");
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("origin {origin:?} is not allowed to call this gateway"),
        ))
    }
}

/// The request's `Origin` when it is one of `server.allowed_origins`.
fn allowed_origin(state: &AppState, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    let text = origin.to_str().ok()?;
    state
        .config
        .server
        .allowed_origins
        .iter()
        .any(|o| o == text)
        .then(|| origin.clone())
}

/// CORS for the origins in `server.allowed_origins`: pages there may call
/// the auth endpoints with credentials (a `fetch` with `credentials:
/// "include"`, for example in pusher-js's `customHandler`) and read the
/// answer. Preflights from other origins are refused; same-origin requests
/// need nothing.
pub async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let allowed = allowed_origin(&state, request.headers());
    let mut response = if request.method() == Method::OPTIONS {
        match &allowed {
            Some(_) => (
                StatusCode::NO_CONTENT,
                [
                    (ACCESS_CONTROL_ALLOW_METHODS, "POST"),
                    (ACCESS_CONTROL_ALLOW_HEADERS, "content-type"),
                    (ACCESS_CONTROL_MAX_AGE, "600"),
                ],
            )
                .into_response(),
            None => Refusal::new(
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
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// The logged-in person and their current membership, or the refusal.
async fn who(state: &AppState, session: &Session) -> Result<(Identity, Arc<Membership>), Refusal> {
    let caller = caller(state, session).await.map_err(|e| {
        tracing::error!(error = %e, "session store failed");
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session store is unavailable; try again shortly",
        )
    })?;
    match caller {
        Caller::LoggedOut => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "not logged in: log in with GitHub at /auth/login",
        )),
        Caller::Revoked => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "GitHub no longer accepts this login; log in again at /auth/login",
        )),
        Caller::Person {
            identity,
            membership: Ok(membership),
        } => Ok((identity, membership)),
        Caller::Person {
            identity,
            membership: Err(why),
        } => {
            tracing::warn!(login = %identity.user.login, %why, "membership unknown; refusing");
            Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "GitHub membership cannot be checked right now; try again shortly",
            ))
        }
    }
}

/// The presence `user_info` of a person: login, name and avatar.
pub fn user_info(identity: &Identity) -> Value {
    json!({
        "login": identity.user.login,
        "name": identity.user.name,
        "avatar_url": identity.user.avatar_url,
    })
}

/// Decides and signs one channel for a person: the status and body.
fn authorize_one(
    state: &AppState,
    identity: &Identity,
    membership: &Membership,
    socket_id: &SocketId,
    channel: &ChannelName,
) -> Result<ChannelAuth, Refusal> {
    let login = &identity.user.login;
    match state.config.rules.decide_valid(&membership.person, channel) {
        Decision::Deny(Denial::Public(_)) => Err(Refusal::bad_request(format!(
            "{channel} is a public channel; only private-, private-encrypted- and presence- channels are authorized"
        ))),
        deny @ Decision::Deny(_) => {
            tracing::info!(%login, %channel, reason = %deny, "denied");
            Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("you may not join {channel}"),
            ))
        }
        allow @ Decision::Allow { .. } => {
            let member = match channel.kind() {
                ChannelKind::Presence => Some(
                    PresenceMember::new(&identity.user.id.to_string(), &user_info(identity))
                        .map_err(|e| {
                            tracing::error!(%login, error = %e, "cannot build presence data");
                            Refusal::new(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "cannot build presence data for this person",
                            )
                        })?,
                ),
                _ => None,
            };
            match state
                .signer
                .authorize_channel(socket_id, channel, member.as_ref())
            {
                Ok(auth) => {
                    tracing::debug!(%login, %channel, reason = %allow, "allowed");
                    Ok(auth)
                }
                Err(e @ SignError::NoMasterKey(_)) => {
                    tracing::error!(%channel, "cannot authorize: {e}");
                    Err(Refusal::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "this gateway has no encryption master key, so it cannot authorize private-encrypted- channels",
                    ))
                }
                Err(e) => Err(Refusal::bad_request(e.to_string())),
            }
        }
    }
}

/// `POST /pusher/auth`: channel authorization, single or batch.
pub async fn channel_auth(
    State(state): State<AppState>,
    session: Session,
    request: Request,
) -> Result<Response, Refusal> {
    let (headers, body) = accept(&state, request).await?;
    let request = parse_request(&headers, &body)?;
    let (identity, membership) = who(&state, &session).await?;
    let socket = &request.socket_id;
    match &request.channels {
        Channels::Single(channel) => {
            let auth = authorize_one(&state, &identity, &membership, socket, channel)?;
            Ok(Json(auth).into_response())
        }
        Channels::Batch(names) => {
            let mut answer = Map::new();
            for name in names {
                let result = ChannelName::parse(name)
                    .map_err(Refusal::from)
                    .and_then(|channel| {
                        authorize_one(&state, &identity, &membership, socket, &channel)
                    });
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
) -> Result<Response, Refusal> {
    let (headers, body) = accept(&state, request).await?;
    let socket_id = match format_of(&headers)? {
        Format::Form => {
            let fields = form_fields(&body);
            SocketId::parse(required(&fields, "socket_id")?)?
        }
        Format::Json => {
            #[derive(Deserialize)]
            struct Body {
                socket_id: Option<String>,
            }
            let body: Body = serde_json::from_slice(&body)
                .map_err(|e| Refusal::bad_request(format!("the JSON body cannot be read: {e}")))?;
            SocketId::parse(
                &body
                    .socket_id
                    .ok_or_else(|| Refusal::bad_request("socket_id is missing"))?,
            )?
        }
    };
    let (identity, _membership) = who(&state, &session).await?;
    let user = UserData::new(&identity.user.id.to_string(), Some(&user_info(&identity)))
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(state.signer.authenticate_user(&socket_id, &user)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<AuthRequest, Refusal> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        parse_request(&headers, body.as_bytes())
    }

    fn json_body(body: &str) -> Result<AuthRequest, Refusal> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        parse_request(&headers, body.as_bytes())
    }

    fn message(r: Result<AuthRequest, Refusal>) -> String {
        let refusal = r.expect_err("should be refused");
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        refusal.message
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
