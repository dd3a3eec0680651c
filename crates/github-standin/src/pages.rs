//! The stand-in's HTML pages, as askama templates.

use super::*;

/// Escapes text for HTML element content and quoted attribute values.
/// A page of text: a heading and a sentence, optionally ending in `code`.
#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    title: &'a str,
    heading: &'a str,
    detail: &'a str,
    code: Option<&'a str>,
}

/// The consent page: who may continue, and the authorize request's fields
/// carried through the form.
#[derive(Template)]
#[template(path = "consent.html")]
pub(crate) struct ConsentPage<'a> {
    client_id: &'a str,
    scopes: Vec<String>,
    hidden: Vec<(&'static str, &'a str)>,
    people: &'a [UserRecord],
    redirect_origin: String,
}

/// A rendered page with GitHub's headers for HTML.
pub(crate) fn html_page(status: StatusCode, page: &impl Template) -> Response {
    let html = page
        .render()
        .unwrap_or_else(|e| format!("the stand-in's page failed to render: {e}"));
    let mut r = (status, Body::from(html)).into_response();
    let h = r.headers_mut();
    put(h, "content-type", "text/html; charset=utf-8");
    put(h, "x-frame-options", "deny");
    put(h, "cache-control", "no-cache");
    r
}

pub(crate) fn message_page(
    status: StatusCode,
    title: &str,
    heading: &str,
    detail: &str,
    code: Option<&str>,
) -> Response {
    html_page(
        status,
        &MessagePage {
            title,
            heading,
            detail,
            code,
        },
    )
}

pub(crate) fn consent_page(
    client_id: &str,
    p: &Params,
    redirect: &Url,
    users: &[UserRecord],
) -> Response {
    let hidden = [
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ]
    .into_iter()
    .filter_map(|name| Some((name, p.get(name)?)))
    .collect();
    html_page(
        StatusCode::OK,
        &ConsentPage {
            client_id,
            scopes: split_scopes(p.get("scope").unwrap_or("")),
            hidden,
            people: users,
            redirect_origin: redirect.origin().ascii_serialization(),
        },
    )
}
