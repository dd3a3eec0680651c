//! Every route of the gateway in one place, and the layers around them:
//! sessions, timeouts and the headers every answer carries.

use axum::extract::State;
use axum::http::header::{
    CONTENT_TYPE, REFERRER_POLICY, SET_COOKIE, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Router, middleware};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_sessions::cookie::{Cookie, SameSite};

use super::error::ApiError;
use super::extract::ClientAddr;
use super::state::AppState;
use super::{auth, device, observe, pages, pusher, tokens, webhook};
use crate::session::Store;

/// Every route of the gateway, with sessions, for the given store.
pub fn router(state: AppState, store: Store) -> Router {
    let https = state.config().server.is_https();
    let sessions = store.layer(&state.config().session, https);
    let hsts = https.then(|| HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    let webhooks = if state.config().webhooks.is_some() {
        Router::new().route("/github/webhook", post(webhook::receive))
    } else {
        Router::new()
    };
    Router::new()
        .route("/", get(pages::home))
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(pages::readyz))
        .route("/assets/pusher.min.js", get(pages::pusher_js))
        .route("/assets/home.js", get(pages::home_js))
        .route("/assets/tokens.js", get(pages::tokens_js))
        .route("/auth/login", get(auth::login))
        .route("/auth/callback", get(auth::callback))
        .merge(
            Router::new()
                .route("/auth/device", post(device::start))
                .route("/auth/device/token", post(device::token))
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    device::only_when_enabled,
                )),
        )
        .route("/auth/tokens", get(tokens::list).post(tokens::create))
        .route("/auth/tokens/{id}", delete(tokens::revoke))
        .merge(
            Router::new()
                .route("/auth/logout", post(auth::logout).options(empty))
                .route("/auth/me", get(auth::me).options(empty))
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    pusher::bearer_cors,
                )),
        )
        .merge(
            Router::new()
                .route("/pusher/auth", post(pusher::channel_auth).options(empty))
                .route("/pusher/user-auth", post(pusher::user_auth).options(empty))
                .route_layer(middleware::from_fn_with_state(state.clone(), pusher::cors)),
        )
        .merge(webhooks)
        .fallback(pages::not_found)
        .layer(middleware::map_response(no_store))
        .layer(sessions)
        .layer(middleware::map_response_with_state(
            state.clone(),
            removal_as_set,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            malformed_cookie,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            unknown_credentials,
        ))
        .layer(middleware::map_response(store_failure_is_503))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config().server.request_timeout,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            REFERRER_POLICY,
            |response: &Response| {
                is_html(response).then(|| HeaderValue::from_static("no-referrer"))
            },
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            STRICT_TRANSPORT_SECURITY,
            hsts,
        ))
        // Outermost: ids, spans and counts cover every answer, 408s included.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
}

/// Pages and answers are personal (identities, signatures): no cache may
/// keep them, unless a route said otherwise (the static assets).
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    response
}

/// The session layer answers a bare 500 when it cannot save a session (the
/// store is down or slow): say 503, with a reason, as for any store failure.
/// Every 500 of the gateway's own has a body and a content type.
async fn store_failure_is_503(response: Response) -> Response {
    if response.status() == StatusCode::INTERNAL_SERVER_ERROR
        && !response.headers().contains_key(CONTENT_TYPE)
    {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session store is unavailable; try again shortly",
        )
        .because("the session could not be saved")
        .into_response();
    }
    response
}

/// The session layer removes the session cookie (at logout, or for an
/// unknown session) with only its name and path. A browser ignores a
/// `__Host-` cookie without `Secure`, its removal included, and would keep
/// the dead id: so the removal carries every attribute the cookie was set
/// with.
async fn removal_as_set(State(state): State<AppState>, mut response: Response) -> Response {
    let name = state.session_cookie_name.as_str();
    let is_removal = |value: &HeaderValue| {
        let cookie = value.to_str().ok().and_then(|v| Cookie::parse(v).ok());
        cookie.is_some_and(|c| c.name() == name && c.max_age() == Some(time::Duration::ZERO))
    };
    let headers = response.headers_mut();
    if !headers.get_all(SET_COOKIE).iter().any(is_removal) {
        return response;
    }
    let mut removal = Cookie::build((name.to_owned(), ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config().server.is_https())
        .build();
    removal.make_removal();
    let removal =
        HeaderValue::try_from(removal.to_string()).expect("a cookie name is a valid header");
    let values: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    headers.remove(SET_COOKIE);
    for value in values {
        let value = if is_removal(&value) {
            removal.clone()
        } else {
            value
        };
        headers.append(SET_COOKIE, value);
    }
    response
}

/// A session cookie that is not a session id this gateway could have set
/// (tampered with, or another site's on a shared name): counted, and
/// logged at most once a minute. The session layer then treats it as no
/// session and removes it; its own warning line, one per request, is
/// filtered out of the log (see [`crate::cli::log_filter`]).
async fn malformed_cookie(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let name = state.session_cookie_name.as_str();
    let malformed = request
        .headers()
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(n, value)| n == name && value.parse::<tower_sessions::session::Id>().is_err());
    if malformed {
        state.metrics.malformed_cookie();
        state.quiet.warn(
            "a request carried a malformed session cookie (tampered with, or another site's); it is treated as no session",
            "malformed session cookie",
            String::new(),
        );
    }
    next.run(request).await
}

/// Bearer credentials the gateway does not know are counted per client
/// address; past [`super::memo::UnknownCredentials::PER_MINUTE`] in a minute, that
/// address's bearer requests get 429 before the token store is read.
async fn unknown_credentials(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if !request
        .headers()
        .contains_key(axum::http::header::AUTHORIZATION)
    {
        return next.run(request).await;
    }
    if state.unknown_credentials.over(addr) {
        state.quiet.warn(
            "too many unknown bearer tokens from one address; its bearer requests get 429 for the rest of the minute",
            &addr.to_string(),
            format!("client {addr}"),
        );
        return ApiError::too_many(std::time::Duration::from_secs(60)).into_response();
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        state.unknown_credentials.count(addr);
    }
    response
}

/// OPTIONS on the auth endpoints: the CORS layer answers preflights itself.
async fn empty() -> StatusCode {
    StatusCode::NO_CONTENT
}
