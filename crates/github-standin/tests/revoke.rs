//! `DELETE /applications/{client_id}/token`: the OAuth app revokes one of
//! its tokens, with GitHub's answers for a wrong app or an unknown token.

use github_standin::{GithubStandIn, MembershipState, World};
use reqwest::redirect::Policy;
use serde_json::{Value, json};

const ID: &str = "Iv1.standin";
const SECRET: &str = "s3cret";
const CALLBACK: &str = "http://gateway.test/auth/callback";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn standin() -> GithubStandIn {
    let world =
        World::new()
            .user(1, "alice", None)
            .org("alice", "wonderland", MembershipState::Active);
    let s = GithubStandIn::spawn(world, ID, SECRET).await.unwrap();
    s.register_callback(CALLBACK);
    s
}

/// A token for `login`, through the web flow with auto-consent (no PKCE).
async fn token_for(s: &GithubStandIn, login: &str) -> String {
    s.set_auto_consent(Some(login));
    let r = http()
        .get(format!("{}/login/oauth/authorize", s.web_url()))
        .query(&[
            ("client_id", ID),
            ("redirect_uri", CALLBACK),
            ("state", "st"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let answer: Value = http()
        .post(format!("{}/login/oauth/access_token", s.web_url()))
        .header("accept", "application/json")
        .form(&[
            ("client_id", ID),
            ("client_secret", SECRET),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn user_status(s: &GithubStandIn, token: &str) -> u16 {
    http()
        .get(format!("{}/user", s.api_url()))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn revoke(s: &GithubStandIn, client: &str, auth: Option<(&str, &str)>, token: &str) -> u16 {
    let mut request = http()
        .delete(format!("{}/applications/{client}/token", s.api_url()))
        .json(&json!({ "access_token": token }));
    if let Some((id, secret)) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_app_revokes_its_token_and_the_api_refuses_it_afterwards() {
    let s = standin().await;
    let token = token_for(&s, "alice").await;
    let other = token_for(&s, "alice").await;
    assert_eq!(user_status(&s, &token).await, 200);
    assert_eq!(revoke(&s, ID, Some((ID, SECRET)), &token).await, 204);
    assert_eq!(user_status(&s, &token).await, 401, "a revoked token");
    assert_eq!(user_status(&s, &other).await, 200, "only that token");
    assert_eq!(s.revoked_by_app(), 1);
    // Once gone, GitHub does not know it.
    assert_eq!(revoke(&s, ID, Some((ID, SECRET)), &token).await, 404);
    assert_eq!(s.revoked_by_app(), 1, "a 404 revokes nothing");
}

#[tokio::test]
async fn only_the_app_with_its_secret_may_revoke_its_tokens() {
    let s = standin().await;
    let token = token_for(&s, "alice").await;
    for (client, auth, status) in [
        (ID, None, 401),
        (ID, Some((ID, "wrong")), 404),
        ("Iv1.other", Some(("Iv1.other", SECRET)), 404),
        ("Iv1.other", Some((ID, SECRET)), 404),
    ] {
        assert_eq!(
            revoke(&s, client, auth, &token).await,
            status,
            "{client} {auth:?}"
        );
    }
    assert_eq!(revoke(&s, ID, Some((ID, SECRET)), "gho_unknown").await, 404);
    s.set_down(true);
    assert_eq!(
        revoke(&s, ID, Some((ID, SECRET)), &token).await,
        503,
        "down"
    );
    s.set_down(false);
    assert_eq!(user_status(&s, &token).await, 200, "still valid");
    assert_eq!(s.revoked_by_app(), 0);
}
