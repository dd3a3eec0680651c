//! `/admin`: a page to change memberships by hand and to see the webhooks
//! that went out.
//!
//! Only a demo and test tool: GitHub has no such page (an organization's
//! owner makes these changes in its settings). It has no authentication, so
//! it belongs on loopback only, as the demo serves it; a form posted from
//! another site (a page open in the same browser) is refused by its `Origin`
//! or `Sec-Fetch-Site`, and the page cannot be framed. `GET` changes
//! nothing; each form `POST`s one [`Change`], made through
//! [`GithubStandIn::announce`].

use super::*;

/// How many deliveries the page lists, newest first.
const SHOWN_DELIVERIES: usize = 20;
/// The longest delivery error the `done` message quotes, in bytes.
const QUOTED_ERROR: usize = 200;

/// The admin page.
#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    /// What the last form did.
    done: Option<&'a str>,
    /// The webhook target's URL, if one is set.
    webhook: Option<String>,
    people: Vec<AdminPerson>,
    /// The last deliveries, newest first: event, id, outcome.
    deliveries: Vec<(String, String, String)>,
}

/// A person as the admin page shows them.
struct AdminPerson {
    login: String,
    name: Option<String>,
    id: u64,
    /// Organization memberships: `org (state)`.
    orgs: Vec<String>,
    /// Teams: `org/slug`.
    teams: Vec<String>,
    /// The changes offered for them, one form each.
    actions: Vec<AdminAction>,
}

/// One form of the admin page.
struct AdminAction {
    /// The form's `action` field.
    action: &'static str,
    /// The `org` field (empty: not sent).
    org: String,
    /// The `slug` field (empty: not sent).
    slug: String,
    /// The button's text.
    label: String,
    /// Whether the change takes something away (the button says so).
    remove: bool,
}

/// `GET /admin`: the page, with the `done` message of the last change.
pub(crate) async fn admin_get(State(s): State<GithubStandIn>, uri: Uri) -> Response {
    let params = Params::parse(uri.query().unwrap_or(""));
    s.admin_page(params.get("done").filter(|d| !d.is_empty()))
}

/// `POST /admin`: makes one change, then redirects (`303`) to the page
/// with a message saying what happened; `400` for a form it cannot make
/// sense of (nothing is changed then).
pub(crate) async fn admin_post(
    State(s): State<GithubStandIn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(from) = s.foreign_poster(&headers) {
        return message_page(
            StatusCode::FORBIDDEN,
            "Forbidden · GitHub stand-in",
            "Forbidden",
            "This form may only be posted from the admin page itself.",
            Some(&from),
        );
    }
    let params = Params::parse(&String::from_utf8_lossy(&body));
    let change = match s.admin_change(&params) {
        Ok(change) => change,
        Err((detail, code)) => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Bad request · GitHub stand-in",
                "Bad request",
                detail,
                code.as_deref(),
            );
        }
    };
    let what = describe(&change);
    let done = match s.announce(change).await {
        None => format!("{what} No webhook sent (no target)."),
        Some(Delivery {
            event,
            status: Some(status),
            ..
        }) => format!("{what} Sent a {event} webhook: HTTP {status}."),
        Some(Delivery { event, error, .. }) => {
            let mut error = error.unwrap_or_default();
            if error.len() > QUOTED_ERROR {
                let mut cut = QUOTED_ERROR;
                while !error.is_char_boundary(cut) {
                    cut -= 1;
                }
                error.truncate(cut);
                error.push('…');
            }
            format!("{what} The {event} webhook failed: {error}")
        }
    };
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("done", &done)
        .finish();
    let mut r = StatusCode::SEE_OTHER.into_response();
    put(
        r.headers_mut(),
        "location",
        &format!("{}/admin?{query}", s.base_url()),
    );
    r
}

impl GithubStandIn {
    /// Where a post came from, when that is another site: an `Origin`
    /// other than the stand-in's own (`null` included), or a browser's
    /// `Sec-Fetch-Site` saying so. Tools that send neither are let through.
    fn foreign_poster(&self, headers: &HeaderMap) -> Option<String> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(site) = header("sec-fetch-site")
            && !matches!(site, "same-origin" | "none")
        {
            return Some(format!("Sec-Fetch-Site: {site}"));
        }
        let origin = header("origin")?;
        let own = url::Url::parse(&self.base_url())
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        (origin != own).then(|| format!("Origin: {origin}"))
    }

    /// The change a form asks for, or why it makes no sense (and the value
    /// at fault).
    fn admin_change(&self, p: &Params) -> Result<Change, (&'static str, Option<String>)> {
        let field = |name: &str, missing: &'static str| {
            p.get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or((missing, None))
        };
        let action = field("action", "The form has no action.")?;
        if !matches!(
            action.as_str(),
            "add-org" | "remove-org" | "add-team" | "remove-team" | "revoke"
        ) {
            return Err(("There is no such action as", Some(action)));
        }
        let login = field("login", "The form has no login.")?;
        let Some(user) = self.lock().db.find_user(&login).cloned() else {
            return Err((
                "There is nobody in the stand-in's world with the login",
                Some(login),
            ));
        };
        let login = user.login;
        let org = || field("org", "The form has no org.");
        let slug = || field("slug", "The form has no slug.");
        Ok(match action.as_str() {
            "add-org" => Change::AddToOrg { login, org: org()? },
            "remove-org" => Change::RemoveFromOrg { login, org: org()? },
            "add-team" => Change::AddToTeam {
                login,
                org: org()?,
                slug: slug()?,
            },
            "remove-team" => Change::RemoveFromTeam {
                login,
                org: org()?,
                slug: slug()?,
            },
            _ => Change::RevokeTokens { login },
        })
    }

    /// Renders the admin page.
    fn admin_page(&self, done: Option<&str>) -> Response {
        let st = self.lock();
        // Every org and team that has had a member, so that one whose last
        // member left can be filled again.
        let orgs: Vec<&String> = st.db.known_orgs.values().collect();
        let teams: Vec<&(String, String)> = st.db.known_teams.values().collect();
        let people = st
            .db
            .users
            .iter()
            .enumerate()
            .map(|(at, user)| {
                let person = st
                    .db
                    .people
                    .get(&user.login.to_ascii_lowercase())
                    // A later record with the same login is not the one
                    // the person's memberships belong to.
                    .filter(|p| p.user == Some(at));
                admin_person(user, person, &orgs, &teams)
            })
            .collect();
        let deliveries = st
            .deliveries
            .iter()
            .rev()
            .take(SHOWN_DELIVERIES)
            .map(|d| {
                let outcome = match (d.status, &d.error) {
                    (Some(status), _) => format!("HTTP {status}"),
                    (None, Some(error)) => error.clone(),
                    (None, None) => String::new(),
                };
                (d.event.clone(), d.id.clone(), outcome)
            })
            .collect();
        let page = AdminPage {
            done,
            webhook: st.webhook.as_ref().map(|t| t.url.clone()),
            people,
            deliveries,
        };
        drop(st);
        html_page(StatusCode::OK, &page)
    }
}

/// `user` and the forms that change their memberships.
fn admin_person(
    user: &UserRecord,
    person: Option<&Person>,
    orgs: &[&String],
    teams: &[&(String, String)],
) -> AdminPerson {
    let my_orgs = person.map_or(&[][..], |p| &p.orgs);
    let my_teams = person.map_or(&[][..], |p| &p.teams);
    let mut actions = Vec::new();
    for &org in orgs {
        let action = |action, label: String, remove| AdminAction {
            action,
            org: org.clone(),
            slug: String::new(),
            label,
            remove,
        };
        match my_orgs.iter().find(|(o, _)| o.eq_ignore_ascii_case(org)) {
            Some((_, MembershipState::Active)) => {
                actions.push(action("remove-org", format!("Remove from {org}"), true));
            }
            Some((_, MembershipState::Pending)) => {
                actions.push(action("add-org", format!("Make active in {org}"), false));
                actions.push(action("remove-org", format!("Remove from {org}"), true));
            }
            None => actions.push(action("add-org", format!("Add to {org}"), false)),
        }
    }
    for (org, slug) in teams {
        let member = my_teams
            .iter()
            .any(|(o, s)| o.eq_ignore_ascii_case(org) && s.eq_ignore_ascii_case(slug));
        let (action, verb) = if member {
            ("remove-team", "Remove from")
        } else {
            ("add-team", "Add to")
        };
        actions.push(AdminAction {
            action,
            org: org.clone(),
            slug: slug.clone(),
            label: format!("{verb} team {org}/{slug}"),
            remove: member,
        });
    }
    actions.push(AdminAction {
        action: "revoke",
        org: String::new(),
        slug: String::new(),
        label: "Revoke their tokens".to_owned(),
        remove: true,
    });
    AdminPerson {
        login: user.login.clone(),
        name: user.name.clone(),
        id: user.id,
        orgs: my_orgs
            .iter()
            .map(|(org, state)| format!("{org} ({})", state.as_str()))
            .collect(),
        teams: my_teams
            .iter()
            .map(|(org, slug)| format!("{org}/{slug}"))
            .collect(),
        actions,
    }
}

/// What `change` did, in a sentence for the `done` message.
fn describe(change: &Change) -> String {
    match change {
        Change::AddToOrg { login, org } => format!("Made {login} an active member of {org}."),
        Change::RemoveFromOrg { login, org } => format!("Removed {login} from {org}."),
        Change::AddToTeam { login, org, slug } => {
            format!("Added {login} to team {org}/{slug}.")
        }
        Change::RemoveFromTeam { login, org, slug } => {
            format!("Removed {login} from team {org}/{slug}.")
        }
        Change::RevokeTokens { login } => format!("Revoked {login}'s tokens."),
    }
}
