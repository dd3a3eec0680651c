//! Webhooks the stand-in sends on `announce`, and the `/admin` page that
//! makes changes through it, checked with a real HTTP receiver.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use github_standin::{
    Change, Delivery, GithubStandIn, MembershipState, WebhookTarget, World, org_id, team_id,
};
use hmac::{Hmac, Mac};
use reqwest::redirect::Policy;
use serde_json::Value;
use sha2::Sha256;

const ID: &str = "Iv1.standin";
const SECRET: &str = "s3cret";
const CALLBACK: &str = "http://gateway.test/auth/callback";
const HOOK_SECRET: &str = "hook secret";

fn world() -> World {
    World::new()
        .user(1, "alice", Some("Alice <Liddell>"))
        .user(2, "bob", None)
        .user(7, "carol", Some("Carol"))
        .org("alice", "wonderland", MembershipState::Active)
        .org("bob", "wonderland", MembershipState::Active)
        .org("bob", "looking-glass", MembershipState::Pending)
        .team("alice", "wonderland", "tea-party")
        .team("alice", "wonderland", "croquet")
        .team("bob", "looking-glass", "chess")
}

async fn standin() -> GithubStandIn {
    let s = GithubStandIn::spawn(world(), ID, SECRET).await.unwrap();
    s.register_callback(CALLBACK);
    s
}

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A webhook receiver on a free loopback port: its `/hook` URL and what it
/// got. It answers `202 Accepted`.
async fn receiver() -> (String, Inbox) {
    async fn hook(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
        inbox.lock().unwrap().push(Received { headers, body });
        StatusCode::ACCEPTED
    }
    let inbox = Inbox::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), inbox)
}

fn target(url: &str) -> Option<WebhookTarget> {
    Some(WebhookTarget {
        url: url.to_owned(),
        secret: HOOK_SECRET.to_owned(),
    })
}

fn received(inbox: &Inbox) -> Vec<Received> {
    inbox.lock().unwrap().clone()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// A token for `login`, through the OAuth flow (auto-consent, no PKCE).
async fn token_for(s: &GithubStandIn, login: &str) -> String {
    s.set_auto_consent(Some(login));
    let r = http()
        .get(format!("{}/login/oauth/authorize", s.web_url()))
        .query(&[("client_id", ID), ("redirect_uri", CALLBACK)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = to
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let answer: Value = http()
        .post(format!("{}/login/oauth/access_token", s.web_url()))
        .header("accept", "application/json")
        .form(&[
            ("client_id", ID),
            ("client_secret", SECRET),
            ("code", &code),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

/// `GET /api/v3{path}` with `token`: the status and the JSON body.
async fn api_get(s: &GithubStandIn, token: &str, path: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{}{path}", s.api_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The `org/slug` of every team `token`'s person is in.
async fn teams(s: &GithubStandIn, token: &str) -> Vec<String> {
    let (status, body) = api_get(s, token, "/user/teams").await;
    assert_eq!(status, 200);
    body.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                t["organization"]["login"].as_str().unwrap(),
                t["slug"].as_str().unwrap()
            )
        })
        .collect()
}

/// The `org (state)` of every organization membership of `token`'s person.
async fn orgs(s: &GithubStandIn, token: &str) -> Vec<String> {
    let (status, body) = api_get(s, token, "/user/memberships/orgs").await;
    assert_eq!(status, 200);
    body.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} ({})",
                m["organization"]["login"].as_str().unwrap(),
                m["state"].as_str().unwrap()
            )
        })
        .collect()
}

/// Checks what every webhook carries, recomputing the signature.
fn check_delivery(got: &Received, delivery: &Delivery, event: &str) {
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(got.header("user-agent"), "GitHub-Hookshot/standin");
    assert_eq!(got.header("x-github-event"), event);
    assert_eq!(got.header("x-github-hook-id"), "1");
    let id = got.header("x-github-delivery");
    assert_eq!(
        id.split('-').map(str::len).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{id}"
    );
    assert!(
        id.bytes()
            .all(|b| b == b'-' || matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&got.body);
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(
        got.header("x-hub-signature-256"),
        format!("sha256={expected}")
    );
    assert_eq!(
        got.header("x-hub-signature-256"),
        github_standin::signature_256(HOOK_SECRET.as_bytes(), &got.body)
    );
    assert_eq!(delivery.id, id);
    assert_eq!(delivery.event, event);
    assert_eq!(delivery.status, Some(202));
    assert_eq!(delivery.error, None);
}

#[tokio::test]
async fn announce_makes_the_change_and_sends_a_signed_webhook() {
    let s = standin().await;
    let (url, inbox) = receiver().await;
    s.set_webhook(target(&url));
    let carol = token_for(&s, "carol").await;

    // Organization member added.
    let d = s
        .announce(Change::AddToOrg {
            login: "carol".into(),
            org: "wonderland".into(),
        })
        .await
        .expect("a delivery");
    let got = received(&inbox);
    assert_eq!(got.len(), 1);
    check_delivery(&got[0], &d, "organization");
    let body = got[0].json();
    assert_eq!(body["action"], "member_added");
    assert_eq!(body["membership"]["state"], "active");
    assert_eq!(body["membership"]["role"], "member");
    assert_eq!(body["membership"]["user"]["login"], "carol");
    assert_eq!(body["membership"]["user"]["id"], 7);
    assert_eq!(
        body["membership"]["url"],
        format!("{}/orgs/wonderland/memberships/carol", s.api_url())
    );
    assert_eq!(
        body["membership"]["organization_url"],
        format!("{}/orgs/wonderland", s.api_url())
    );
    assert_eq!(body["organization"]["login"], "wonderland");
    assert_eq!(body["organization"]["id"], org_id("wonderland"));
    assert_eq!(body["sender"]["login"], "admin-standin");
    assert_eq!(body["sender"]["id"], 1);
    assert_eq!(orgs(&s, &carol).await, ["wonderland (active)"]);

    // Team member added: the team's id is the one the API answers with.
    let d = s
        .announce(Change::AddToTeam {
            login: "carol".into(),
            org: "wonderland".into(),
            slug: "tea-party".into(),
        })
        .await
        .unwrap();
    let got = received(&inbox);
    check_delivery(&got[1], &d, "membership");
    let body = got[1].json();
    assert_eq!(body["action"], "added");
    assert_eq!(body["scope"], "team");
    assert_eq!(body["member"]["login"], "carol");
    assert_eq!(body["member"]["id"], 7);
    assert_eq!(body["team"]["id"], team_id("wonderland", "tea-party"));
    assert_eq!(body["team"]["slug"], "tea-party");
    assert_eq!(body["team"]["name"], "Tea party");
    assert_eq!(body["organization"]["login"], "wonderland");
    assert_eq!(body["organization"]["id"], org_id("wonderland"));
    assert_eq!(body["sender"]["login"], "admin-standin");
    let (_, listed) = api_get(&s, &carol, "/user/teams").await;
    assert_eq!(listed[0]["id"], body["team"]["id"]);
    assert_eq!(listed[0]["organization"]["id"], body["organization"]["id"]);

    // Team member removed.
    let d = s
        .announce(Change::RemoveFromTeam {
            login: "CAROL".into(),
            org: "Wonderland".into(),
            slug: "Tea-Party".into(),
        })
        .await
        .unwrap();
    let got = received(&inbox);
    check_delivery(&got[2], &d, "membership");
    let body = got[2].json();
    assert_eq!(body["action"], "removed");
    assert_eq!(body["member"]["login"], "carol", "the stored spelling");
    assert_eq!(body["team"]["id"], team_id("wonderland", "tea-party"));
    assert!(teams(&s, &carol).await.is_empty());

    // Organization member removed.
    let d = s
        .announce(Change::RemoveFromOrg {
            login: "carol".into(),
            org: "wonderland".into(),
        })
        .await
        .unwrap();
    let got = received(&inbox);
    check_delivery(&got[3], &d, "organization");
    let body = got[3].json();
    assert_eq!(body["action"], "member_removed");
    assert_eq!(body["membership"]["user"]["id"], 7);
    assert_eq!(body["organization"]["id"], org_id("wonderland"));
    assert!(orgs(&s, &carol).await.is_empty());

    // Authorization revoked: the person is the sender.
    let d = s
        .announce(Change::RevokeTokens {
            login: "carol".into(),
        })
        .await
        .unwrap();
    let got = received(&inbox);
    check_delivery(&got[4], &d, "github_app_authorization");
    let body = got[4].json();
    assert_eq!(body["action"], "revoked");
    assert_eq!(body["sender"]["login"], "carol");
    assert_eq!(body["sender"]["id"], 7);
    assert_eq!(api_get(&s, &carol, "/user").await.0, 401);

    // Every delivery is remembered, oldest first, each with its own id.
    let deliveries = s.deliveries();
    assert_eq!(
        deliveries
            .iter()
            .map(|d| d.event.as_str())
            .collect::<Vec<_>>(),
        [
            "organization",
            "membership",
            "membership",
            "organization",
            "github_app_authorization"
        ]
    );
    let ids: Vec<&str> = got.iter().map(|r| r.header("x-github-delivery")).collect();
    assert_eq!(
        deliveries.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ids
    );
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

#[tokio::test]
async fn add_to_org_makes_a_pending_membership_active() {
    let s = standin().await;
    let bob = token_for(&s, "bob").await;
    assert_eq!(
        orgs(&s, &bob).await,
        ["wonderland (active)", "looking-glass (pending)"]
    );
    let none = s
        .announce(Change::AddToOrg {
            login: "bob".into(),
            org: "looking-glass".into(),
        })
        .await;
    assert_eq!(none, None, "no target, no delivery");
    assert_eq!(
        orgs(&s, &bob).await,
        ["wonderland (active)", "looking-glass (active)"]
    );
    assert!(s.deliveries().is_empty());
}

#[tokio::test]
async fn the_silent_switches_send_nothing() {
    let s = standin().await;
    let (url, inbox) = receiver().await;
    s.set_webhook(target(&url));
    s.add_to_team("carol", "wonderland", "croquet");
    s.remove_from_team("alice", "wonderland", "croquet");
    s.set_org_state("carol", "wonderland", Some(MembershipState::Active));
    s.revoke_tokens("alice");
    assert!(received(&inbox).is_empty());
    assert!(s.deliveries().is_empty());

    // Once the target is unset, announce is silent too.
    s.set_webhook(None);
    let none = s
        .announce(Change::RevokeTokens {
            login: "alice".into(),
        })
        .await;
    assert_eq!(none, None);
    assert!(received(&inbox).is_empty());
}

#[tokio::test]
async fn a_failed_delivery_is_reported_not_raised() {
    let s = standin().await;
    // A port nobody listens on any more.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    s.set_webhook(target(&format!("http://{addr}/hook")));
    let d = s
        .announce(Change::RemoveFromTeam {
            login: "alice".into(),
            org: "wonderland".into(),
            slug: "croquet".into(),
        })
        .await
        .expect("a delivery");
    assert_eq!(d.event, "membership");
    assert_eq!(d.status, None);
    assert!(d.error.as_deref().is_some_and(|e| !e.is_empty()), "{d:?}");
    assert_eq!(s.deliveries(), [d]);
    // The change was made all the same.
    let alice = token_for(&s, "alice").await;
    assert_eq!(teams(&s, &alice).await, ["wonderland/tea-party"]);
}

#[tokio::test]
async fn a_change_about_nobody_is_made_but_not_announced() {
    let s = standin().await;
    let (url, inbox) = receiver().await;
    s.set_webhook(target(&url));
    let none = s
        .announce(Change::AddToTeam {
            login: "nobody".into(),
            org: "wonderland".into(),
            slug: "croquet".into(),
        })
        .await;
    assert_eq!(none, None);
    assert!(received(&inbox).is_empty());
}

#[tokio::test]
async fn only_the_last_hundred_deliveries_are_kept() {
    let s = standin().await;
    let (url, inbox) = receiver().await;
    s.set_webhook(target(&url));
    let mut last = None;
    for _ in 0..105 {
        last = s
            .announce(Change::RevokeTokens {
                login: "bob".into(),
            })
            .await;
    }
    let deliveries = s.deliveries();
    assert_eq!(deliveries.len(), 100);
    assert_eq!(deliveries.last(), last.as_ref());
    let got = received(&inbox);
    assert_eq!(got.len(), 105);
    assert_eq!(deliveries[0].id, got[5].header("x-github-delivery"));
}

// ---------------------------------------------------------------------------
// The admin page
// ---------------------------------------------------------------------------

async fn admin_get(s: &GithubStandIn, query: &str) -> (u16, String) {
    let r = http()
        .get(format!("{}/admin{query}", s.web_url()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    (status, r.text().await.unwrap())
}

async fn admin_post(s: &GithubStandIn, form: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(format!("{}/admin", s.web_url()))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_admin_page_lists_people_memberships_and_forms() {
    let s = standin().await;
    let (status, page) = admin_get(&s, "").await;
    assert_eq!(status, 200);
    for text in [
        "<strong>alice</strong>",
        "Alice &#60;Liddell&#62;",
        "<strong>bob</strong>",
        "<strong>carol</strong>",
        "<td>7</td>",
        "wonderland (active)",
        "looking-glass (pending)",
        "wonderland/tea-party",
        "looking-glass/chess",
        "No webhook target: changes are silent",
        r#"action="admin""#,
        r#"name="action" value="remove-team""#,
        r#"name="action" value="add-team""#,
        r#"name="action" value="add-org""#,
        r#"name="action" value="remove-org""#,
        r#"name="action" value="revoke""#,
        "Remove from team wonderland/tea-party",
        "Add to team looking-glass/chess",
        "Make active in looking-glass",
        "Revoke their tokens",
    ] {
        assert!(page.contains(text), "{text} not in {page}");
    }
    assert!(!page.contains("<Liddell>"), "escaped");

    let (url, _inbox) = receiver().await;
    s.set_webhook(target(&url));
    let (_, page) = admin_get(&s, "?done=%3Cb%3Ehi").await;
    assert!(page.contains(&format!(
        "Changes here are sent as signed webhooks to <code>{url}</code>"
    )));
    assert!(page.contains("&#60;b&#62;hi"), "the message, escaped");
}

#[tokio::test]
async fn an_admin_post_makes_the_change_announces_it_and_redirects_back() {
    let s = standin().await;
    let (url, inbox) = receiver().await;
    s.set_webhook(target(&url));
    let alice = token_for(&s, "alice").await;
    assert_eq!(
        teams(&s, &alice).await,
        ["wonderland/tea-party", "wonderland/croquet"]
    );

    let r = admin_post(
        &s,
        &[
            ("action", "remove-team"),
            ("login", "Alice"),
            ("org", "wonderland"),
            ("slug", "tea-party"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/admin?done=", s.web_url())),
        "{location}"
    );
    assert_eq!(teams(&s, &alice).await, ["wonderland/croquet"]);

    let got = received(&inbox);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-github-event"), "membership");
    let body = got[0].json();
    assert_eq!(body["action"], "removed");
    assert_eq!(body["member"]["login"], "alice");
    assert_eq!(body["team"]["slug"], "tea-party");
    let id = got[0].header("x-github-delivery").to_owned();
    assert_eq!(s.deliveries()[0].id, id);

    // The page it redirects to says what happened and lists the delivery.
    let r = http().get(&location).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Removed alice from team wonderland/tea-party."),
        "{page}"
    );
    assert!(page.contains("Sent a membership webhook: HTTP 202."));
    assert!(page.contains(&id));
    assert!(page.contains("Add to team wonderland/tea-party"));

    // The other forms.
    for form in [
        &[
            ("action", "add-org"),
            ("login", "alice"),
            ("org", "looking-glass"),
        ][..],
        &[
            ("action", "remove-org"),
            ("login", "alice"),
            ("org", "wonderland"),
        ],
        &[
            ("action", "add-team"),
            ("login", "alice"),
            ("org", "looking-glass"),
            ("slug", "chess"),
        ],
        &[("action", "revoke"), ("login", "alice")],
    ] {
        assert_eq!(admin_post(&s, form).await.status(), 303, "{form:?}");
    }
    let events: Vec<String> = received(&inbox)
        .iter()
        .map(|r| r.header("x-github-event").to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "membership",
            "organization",
            "organization",
            "membership",
            "github_app_authorization"
        ]
    );
    assert_eq!(api_get(&s, &alice, "/user").await.0, 401);
    let alice = token_for(&s, "alice").await;
    assert_eq!(orgs(&s, &alice).await, ["looking-glass (active)"]);
    assert_eq!(
        teams(&s, &alice).await,
        ["wonderland/croquet", "looking-glass/chess"]
    );
}

#[tokio::test]
async fn without_a_target_an_admin_post_says_nothing_was_sent() {
    let s = standin().await;
    let r = admin_post(&s, &[("action", "revoke"), ("login", "bob")]).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let page = http()
        .get(&location)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Revoked bob&#39;s tokens. No webhook sent (no target)."),
        "{page}"
    );
}

#[tokio::test]
async fn a_bad_admin_post_is_refused_and_changes_nothing() {
    let s = standin().await;
    let (url, inbox) = receiver().await;
    s.set_webhook(target(&url));
    let alice = token_for(&s, "alice").await;
    for form in [
        &[
            ("login", "alice"),
            ("org", "wonderland"),
            ("slug", "tea-party"),
        ][..],
        &[("action", "explode"), ("login", "alice")],
        &[
            ("action", "remove-team"),
            ("login", "mallory"),
            ("org", "wonderland"),
            ("slug", "tea-party"),
        ],
        &[
            ("action", "remove-team"),
            ("org", "wonderland"),
            ("slug", "tea-party"),
        ],
        &[
            ("action", "remove-team"),
            ("login", "alice"),
            ("slug", "tea-party"),
        ],
        &[
            ("action", "remove-team"),
            ("login", "alice"),
            ("org", "wonderland"),
        ],
        &[
            ("action", "remove-team"),
            ("login", "alice"),
            ("org", "wonderland"),
            ("slug", ""),
        ],
        &[("action", "remove-org"), ("login", "alice")],
        &[("action", "revoke"), ("login", "")],
    ] {
        let r = admin_post(&s, form).await;
        assert_eq!(r.status(), 400, "{form:?}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(r.text().await.unwrap().contains("Bad request"));
    }
    // A GET with a form's fields changes nothing either.
    let (status, _) = admin_get(&s, "?action=revoke&login=alice").await;
    assert_eq!(status, 200);

    assert!(received(&inbox).is_empty());
    assert!(s.deliveries().is_empty());
    assert_eq!(api_get(&s, &alice, "/user").await.0, 200);
    assert_eq!(
        teams(&s, &alice).await,
        ["wonderland/tea-party", "wonderland/croquet"]
    );
    assert_eq!(orgs(&s, &alice).await, ["wonderland (active)"]);
}

#[tokio::test]
async fn a_nested_admin_page_redirects_under_its_prefix() {
    let s = GithubStandIn::new(world(), ID, SECRET);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().nest("/_github", s.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    s.set_base_url(&format!("http://{addr}/_github"));

    let (status, page) = admin_get(&s, "").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<form method="post" action="admin">"#));
    let r = admin_post(&s, &[("action", "revoke"), ("login", "bob")]).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("http://{addr}/_github/admin?done=Revoked+bob")),
        "{location}"
    );
}

#[tokio::test]
async fn an_admin_post_from_another_site_is_refused_and_changes_nothing() {
    // A page open in the browser of someone running the demo must not be
    // able to change memberships (and fire signed webhooks) by posting a
    // form here: browsers say where a form post comes from.
    let s = standin().await;
    let (url, inbox) = receiver().await;
    s.set_webhook(target(&url));
    let alice = token_for(&s, "alice").await;
    let form = [
        ("action", "remove-team"),
        ("login", "alice"),
        ("org", "wonderland"),
        ("slug", "tea-party"),
    ];
    for (origin, fetch_site) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (None, Some("cross-site")),
        (Some("https://evil.example"), Some("cross-site")),
    ] {
        let mut request = http().post(format!("{}/admin", s.web_url())).form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 403, "{origin:?} {fetch_site:?}");
    }
    assert_eq!(
        teams(&s, &alice).await,
        ["wonderland/tea-party", "wonderland/croquet"]
    );
    assert!(received(&inbox).is_empty(), "no webhook went out");
    // Its own page's forms, and tools that send no Origin, still work.
    let own = reqwest::Url::parse(&s.web_url())
        .unwrap()
        .origin()
        .ascii_serialization();
    let r = http()
        .post(format!("{}/admin", s.web_url()))
        .header("origin", own)
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(teams(&s, &alice).await, ["wonderland/croquet"]);
}
