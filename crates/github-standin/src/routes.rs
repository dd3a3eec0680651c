//! The stand-in's routes and their handlers.

use super::*;
use crate::admin::{admin_get, admin_post};

/// The stand-in's routes, before the state is given.
pub(crate) fn routes() -> Router<GithubStandIn> {
    Router::new()
        .route(
            "/login/oauth/authorize",
            get(authorize_get).post(authorize_post),
        )
        .route("/login/oauth/access_token", post(access_token))
        .route("/login/device/code", post(device_code))
        .route("/login/device", get(device_get).post(device_post))
        .route("/admin", get(admin_get).post(admin_post))
        .route("/api/v3/user", get(api_user))
        .route("/api/v3/user/memberships/orgs", get(api_orgs))
        .route("/api/v3/user/teams", get(api_teams))
        .route(
            "/api/v3/applications/{client_id}/token",
            axum::routing::delete(api_revoke_token),
        )
        .route("/api/v3", any(api_not_found))
        .route("/api/v3/", any(api_not_found))
        .route("/api/v3/{*rest}", any(api_not_found))
}

pub(crate) async fn authorize_get(State(s): State<GithubStandIn>, uri: Uri) -> Response {
    let params = Params::parse(uri.query().unwrap_or(""));
    s.web(Some(Endpoint::Authorize), |s| {
        s.authorize(&params, Choice::Switches)
    })
    .await
}

pub(crate) async fn authorize_post(State(s): State<GithubStandIn>, body: Bytes) -> Response {
    let params = Params::parse(&String::from_utf8_lossy(&body));
    s.web(Some(Endpoint::Authorize), |s| {
        let choice = if params.get("cancel").is_some() {
            Choice::Cancel
        } else if let Some(login) = params.get("login").filter(|l| !l.is_empty()) {
            Choice::Person(login.to_owned())
        } else {
            // Nothing chosen: show the page again.
            Choice::Switches
        };
        s.authorize(&params, choice)
    })
    .await
}

pub(crate) async fn access_token(
    State(s): State<GithubStandIn>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let params = posted(&headers, &uri, &body);
    s.web(Some(Endpoint::AccessToken), |s| {
        s.exchange(&headers, &params)
    })
    .await
}

/// The parameters of a web form POST: the query string, then the body
/// (form or JSON), the body's winning.
fn posted(headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Params {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let mut params = Params::parse(uri.query().unwrap_or(""));
    if is_json {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                if let Value::String(v) = v {
                    params.0.push((k, v));
                }
            }
        }
    } else {
        params
            .0
            .extend(Params::parse(&String::from_utf8_lossy(body)).0);
    }
    params.0.reverse();
    params
}

pub(crate) async fn device_code(
    State(s): State<GithubStandIn>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let params = posted(&headers, &uri, &body);
    s.web(Some(Endpoint::DeviceCode), |s| s.device_code(&params))
        .await
}

pub(crate) async fn device_get(State(s): State<GithubStandIn>, uri: Uri) -> Response {
    let params = Params::parse(uri.query().unwrap_or(""));
    s.web(None, |s| s.device_page(params.get("user_code")))
        .await
}

pub(crate) async fn device_post(State(s): State<GithubStandIn>, body: Bytes) -> Response {
    let params = Params::parse(&String::from_utf8_lossy(&body));
    s.web(None, |s| s.device_decide(&params)).await
}

pub(crate) async fn api_user(
    State(s): State<GithubStandIn>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    s.api(Some(Endpoint::User), Api::User, &headers, uri.query())
        .await
}

pub(crate) async fn api_orgs(
    State(s): State<GithubStandIn>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    s.api(
        Some(Endpoint::OrgMemberships),
        Api::Orgs,
        &headers,
        uri.query(),
    )
    .await
}

pub(crate) async fn api_teams(
    State(s): State<GithubStandIn>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    s.api(Some(Endpoint::Teams), Api::Teams, &headers, uri.query())
        .await
}

/// `DELETE /applications/{client_id}/token` with `{"access_token": ...}`:
/// the OAuth app (HTTP Basic with its id and secret) revokes one of its
/// tokens; 204, or 404 for a token it does not know. Without Basic
/// credentials: 401; with another app's (or a wrong secret): 404, as GitHub
/// hides what a caller may not see.
pub(crate) async fn api_revoke_token(
    State(s): State<GithubStandIn>,
    axum::extract::Path(client_id): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.arrive(Some(Endpoint::RevokeToken)).await;
    if s.lock().down {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"message": "Service Unavailable"}),
        );
    }
    let app = basic_credentials(&headers);
    if app.is_none() {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Requires authentication", "documentation_url": REST_DOCS}),
        );
    }
    if client_id != s.inner.client_id
        || app != Some((s.inner.client_id.clone(), s.inner.client_secret.clone()))
    {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"message": "Not Found", "documentation_url": REST_DOCS}),
        );
    }
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("access_token")?.as_str().map(str::to_owned));
    let mut st = s.lock();
    match token.and_then(|t| st.tokens.remove(&t)) {
        Some(_) => {
            st.revoked_by_app += 1;
            StatusCode::NO_CONTENT.into_response()
        }
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"message": "Not Found", "documentation_url": REST_DOCS}),
        ),
    }
}

pub(crate) async fn api_not_found(
    State(s): State<GithubStandIn>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    s.api(None, Api::NotFound, &headers, uri.query()).await
}

pub(crate) async fn web_not_found(State(s): State<GithubStandIn>) -> Response {
    s.web(None, |_| {
        message_page(
            StatusCode::NOT_FOUND,
            "Page not found · GitHub",
            "404",
            "This is not the web page you are looking for.",
            None,
        )
    })
    .await
}
