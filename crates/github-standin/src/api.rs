//! GitHub's REST API as the stand-in serves it: `/user`, org memberships
//! and teams, with rate limits, `401`, ETags and `Link` pagination.

use super::*;

impl GithubStandIn {
    /// Who may ask, in GitHub's order: the rate-limit switches, then the
    /// token. `Err` is the refusal to answer; `Ok` the person and the key of
    /// their rate-limit budget. (A refusal is the rare path of test
    /// switches, so its size does not matter.)
    #[allow(clippy::result_large_err)]
    fn admit(
        &self,
        st: &mut St,
        kind: Api,
        headers: &HeaderMap,
    ) -> Result<(SignedIn, Option<String>), Response> {
        let presented = presented_token(headers);
        let person = presented.as_deref().and_then(|t| st.signed_in(t));
        // Whose rate-limit budget the request counts against.
        let key = person.as_ref().map(|p| p.key.clone());
        let key_ref = key.as_deref();
        // Everyone's (the switch), or this person's own budget spent.
        let spent = person.is_some() && st.budget(key_ref).used >= RATE_LIMIT;
        if st.rate_limited.is_some() || spent {
            let message = match &person {
                Some(SignedIn { user, .. }) => format!(
                    "API rate limit exceeded for user ID {}. If you reach out to GitHub Support \
                     for help, please include the request ID {}.",
                    user.id,
                    self.request_id()
                ),
                None => "API rate limit exceeded for 127.0.0.1. (But here's the good news: \
                         Authenticated requests get a higher rate limit. Check out the \
                         documentation for more details.)"
                    .to_owned(),
            };
            let mut r = json_response(
                StatusCode::FORBIDDEN,
                &json!({"message": message, "documentation_url": RATE_LIMIT_DOCS}),
            );
            st.rate_headers(key_ref, r.headers_mut());
            return Err(r);
        }
        if let Some(retry_after) = st.secondary {
            let mut r = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({
                    "message": "You have exceeded a secondary rate limit. Please wait a few \
                                minutes before you try again.",
                    "documentation_url": format!("{RATE_LIMIT_DOCS}#about-secondary-rate-limits"),
                }),
            );
            st.rate_headers(key_ref, r.headers_mut());
            put(r.headers_mut(), "retry-after", &retry_after.to_string());
            return Err(r);
        }
        let unauthorized = match kind {
            // GitHub answers 404 for unknown paths without credentials, but
            // still refuses bad credentials.
            Api::NotFound => presented.is_some() && person.is_none(),
            _ => person.is_none(),
        };
        if unauthorized {
            let mut r = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "Bad credentials", "documentation_url": REST_DOCS, "status": "401"}),
            );
            st.rate_headers(key_ref, r.headers_mut());
            return Err(r);
        }
        match person {
            Some(p) => Ok((p, key)),
            None => {
                let mut r = json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"message": "Not Found", "documentation_url": REST_DOCS, "status": "404"}),
                );
                st.rate_headers(key_ref, r.headers_mut());
                Err(r)
            }
        }
    }

    pub(crate) async fn api(
        &self,
        endpoint: Option<Endpoint>,
        kind: Api,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Response {
        self.arrive(endpoint).await;
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.down {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"message": "Service Unavailable"}),
            );
        }
        let (SignedIn { user, scopes, .. }, key) = match self.admit(st, kind, headers) {
            Ok(admitted) => admitted,
            Err(refusal) => return refusal,
        };
        let key = key.as_deref();
        match &st.trap {
            Some(Trap::Redirect(to)) => {
                let mut r = StatusCode::FOUND.into_response();
                put(r.headers_mut(), "location", to);
                return r;
            }
            Some(Trap::OversizeBody) => {
                let huge = format!("[{}0]", "0,".repeat(5 * 1024 * 1024 / 2));
                return json_text_response(StatusCode::OK, huge);
            }
            _ => {}
        }
        let params = Params::parse(query.unwrap_or(""));
        let answer = match kind {
            Api::User => Ok((user_json(st, &user), None)),
            Api::Orgs => orgs_page(st, &user, &params),
            Api::Teams => Ok(teams_page(st, &user, &params)),
            Api::NotFound => Err((
                StatusCode::NOT_FOUND,
                json!({"message": "Not Found", "documentation_url": REST_DOCS, "status": "404"}),
            )),
        };
        let (body, link) = match answer {
            Ok((body, link)) if kind != Api::User => {
                let here = page_url(&st.api_url(), uri_path(kind), &params, page_of(&params));
                let link = match &st.trap {
                    Some(Trap::ForeignLink(to)) => Some(format!("<{to}>; rel=\"next\"")),
                    Some(Trap::LoopingLink) => Some(format!("<{here}>; rel=\"next\"")),
                    _ => link,
                };
                (body, link)
            }
            Ok(ok) => ok,
            Err((status, body)) => {
                st.budget(key).used += 1;
                let mut r = json_response(status, &body);
                st.rate_headers(key, r.headers_mut());
                return r;
            }
        };
        let text = body.to_string();
        if st.malformed {
            st.budget(key).used += 1;
            let mut cut = text.len() / 2;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut r = json_text_response(StatusCode::OK, text[..cut].to_owned());
            st.rate_headers(key, r.headers_mut());
            put(r.headers_mut(), "x-oauth-scopes", &scopes);
            return r;
        }
        let etag = {
            let mut h = Sha256::new();
            h.update(text.as_bytes());
            h.update(b"\n");
            h.update(link.as_deref().unwrap_or("").as_bytes());
            format!("W/\"{}\"", hex::encode(h.finalize()))
        };
        let mut r = if etag_matches(headers, &etag) {
            if let Some(endpoint) = endpoint {
                *st.not_modified.entry(endpoint).or_default() += 1;
            }
            // A conditional request answered 304 costs no rate limit.
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            st.rate_headers(key, r.headers_mut());
            r
        } else {
            st.budget(key).used += 1;
            let mut r = json_text_response(StatusCode::OK, text);
            st.rate_headers(key, r.headers_mut());
            r
        };
        let h = r.headers_mut();
        put(h, "etag", &etag);
        put(h, "cache-control", "private, max-age=60, s-maxage=60");
        put(h, "vary", "Accept, Authorization, Cookie, X-GitHub-OTP");
        put(h, "x-oauth-scopes", &scopes);
        put(h, "x-accepted-oauth-scopes", "");
        if let Some(link) = link {
            put(h, "link", &link);
        }
        r
    }

    pub(crate) fn request_id(&self) -> String {
        self.random_hex(16).to_uppercase()
    }
}

pub(crate) fn simple_user_json(st: &St, user: &UserRecord) -> Value {
    let api = st.api_url();
    json!({
        "login": user.login,
        "id": user.id,
        "node_id": STANDARD.encode(format!("04:User{}", user.id)),
        "avatar_url": user.avatar_url,
        "gravatar_id": "",
        "url": format!("{api}/users/{}", user.login),
        "html_url": format!("{}/{}", st.base_url, user.login),
        "type": "User",
        "site_admin": false,
    })
}

pub(crate) fn user_json(st: &St, user: &UserRecord) -> Value {
    let mut v = simple_user_json(st, user);
    if let Value::Object(map) = &mut v {
        let extra = json!({
            "name": user.name,
            "company": null,
            "blog": "",
            "location": null,
            "email": null,
            "hireable": null,
            "bio": null,
            "twitter_username": null,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
        });
        if let Value::Object(extra) = extra {
            map.extend(extra);
        }
    }
    v
}

pub(crate) fn org_json(st: &St, org: &str) -> Value {
    let api = st.api_url();
    let id = derived_id("org", org);
    json!({
        "login": org,
        "id": id,
        "node_id": STANDARD.encode(format!("012:Organization{id}")),
        "url": format!("{api}/orgs/{org}"),
        "repos_url": format!("{api}/orgs/{org}/repos"),
        "events_url": format!("{api}/orgs/{org}/events"),
        "hooks_url": format!("{api}/orgs/{org}/hooks"),
        "issues_url": format!("{api}/orgs/{org}/issues"),
        "members_url": format!("{api}/orgs/{org}/members{{/member}}"),
        "public_members_url": format!("{api}/orgs/{org}/public_members{{/member}}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "description": null,
    })
}

/// The memberships of the person `user` is the record of.
pub(crate) fn person_of<'a>(st: &'a St, user: &UserRecord) -> Option<&'a Person> {
    st.db.people.get(&user.login.to_ascii_lowercase())
}

/// A page of a list and its `Link` header, if any.
pub(crate) type Listing = (Value, Option<String>);

/// The person's organization memberships, filtered by `state`, one page.
pub(crate) fn orgs_page(
    st: &St,
    user: &UserRecord,
    params: &Params,
) -> Result<Listing, (StatusCode, Value)> {
    let filter = match params.get("state") {
        None | Some("") => None,
        Some("active") => Some(MembershipState::Active),
        Some("pending") => Some(MembershipState::Pending),
        Some(_) => {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "message": "Validation Failed",
                    "errors": [{"resource": "OrgMembership", "field": "state", "code": "invalid"}],
                    "documentation_url": REST_DOCS,
                    "status": "422",
                }),
            ));
        }
    };
    let api = st.api_url();
    let items: Vec<Value> = person_of(st, user)
        .map_or(&[][..], |p| &p.orgs)
        .iter()
        .filter(|(_, state)| filter.is_none_or(|f| *state == f))
        .map(|(org, state)| {
            json!({
                "url": format!("{api}/orgs/{org}/memberships/{}", user.login),
                "state": state.as_str(),
                "role": "member",
                "organization_url": format!("{api}/orgs/{org}"),
                "organization": org_json(st, org),
                "user": simple_user_json(st, user),
            })
        })
        .collect();
    Ok(paginate(st, items, "/user/memberships/orgs", params))
}

/// The person's teams, one page.
pub(crate) fn teams_page(st: &St, user: &UserRecord, params: &Params) -> Listing {
    let items: Vec<Value> = person_of(st, user)
        .map_or(&[][..], |p| &p.teams)
        .iter()
        .map(|(org, slug)| {
            let mut team = team_json(st, org, slug);
            if let Value::Object(map) = &mut team {
                map.insert("members_count".into(), st.db.team_size(org, slug).into());
                map.insert("repos_count".into(), 0.into());
                map.insert("created_at".into(), "2020-01-01T00:00:00Z".into());
                map.insert("updated_at".into(), "2020-01-01T00:00:00Z".into());
                map.insert("organization".into(), org_json(st, org));
            }
            team
        })
        .collect();
    paginate(st, items, "/user/teams", params)
}

/// Team `slug` of `org` as GitHub describes a team inside other objects
/// (webhooks; the API's team lists add counts, dates and the organization).
pub(crate) fn team_json(st: &St, org: &str, slug: &str) -> Value {
    let api = st.api_url();
    let org_id = derived_id("org", org);
    let id = derived_id("team", &format!("{org}/{slug}"));
    json!({
        "id": id,
        "node_id": STANDARD.encode(format!("04:Team{id}")),
        "url": format!("{api}/organizations/{org_id}/team/{id}"),
        "html_url": format!("{}/orgs/{org}/teams/{slug}", st.base_url),
        "name": team_name(slug),
        "slug": slug,
        "description": null,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "members_url": format!("{api}/organizations/{org_id}/team/{id}/members{{/member}}"),
        "repositories_url": format!("{api}/organizations/{org_id}/team/{id}/repos"),
        "parent": null,
    })
}

/// One page of `items` and its `Link` header, GitHub style.
pub(crate) fn paginate(st: &St, items: Vec<Value>, path: &str, params: &Params) -> Listing {
    let asked = params
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_PER_PAGE);
    let per_page = asked
        .min(MAX_PER_PAGE)
        .min(st.page_cap.unwrap_or(MAX_PER_PAGE));
    let page = params
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let last = items.len().div_ceil(per_page).max(1);
    // In endless mode every page repeats the data of a real page.
    let shown = if st.endless {
        (page - 1) % last + 1
    } else {
        page
    };
    let start = (shown - 1).saturating_mul(per_page).min(items.len());
    let end = start.saturating_add(per_page).min(items.len());
    let body = Value::Array(items[start..end].to_vec());

    let url = |n: usize| page_url(&st.api_url(), path, params, n);
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
    }
    if st.endless || page < last {
        links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
    }
    if !st.endless && page < last {
        links.push(format!("<{}>; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", url(1)));
    }
    let link = (!links.is_empty()).then(|| links.join(", "));
    (body, link)
}

/// `api/path?<the request's query with page=n>`, keeping the order of the
/// request's parameters as GitHub does.
pub(crate) fn page_url(api: &str, path: &str, params: &Params, n: usize) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut replaced = false;
    for (k, v) in &params.0 {
        if k == "page" {
            if !replaced {
                query.append_pair("page", &n.to_string());
                replaced = true;
            }
        } else {
            query.append_pair(k, v);
        }
    }
    if !replaced {
        query.append_pair("page", &n.to_string());
    }
    format!("{api}{path}?{}", query.finish())
}

/// The API path of a list endpoint.
fn uri_path(kind: Api) -> &'static str {
    match kind {
        Api::Orgs => "/user/memberships/orgs",
        _ => "/user/teams",
    }
}

/// The `page` a request asks for (1 when it does not say).
fn page_of(params: &Params) -> usize {
    params
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}
