//! The GitHub client against the stand-in: pagination, ETags and failures.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use channelgate::github::{GithubClient, GithubError};
use channelgate::secret::Secret;
use github_standin::{Endpoint, GithubStandIn, Trap};

use crate::helpers::{CLIENT_ID, CLIENT_SECRET, location, query_param, stand_in};

/// A stand-in, a client for it, and a token for `login` from the OAuth flow.
async fn client_and_token(login: &str) -> (GithubStandIn, GithubClient, Secret<String>) {
    let github = stand_in().await;
    let token = Secret::new(github_token(&github, login).await);
    let client = GithubClient::new(&github.api_url()).unwrap();
    (github, client, token)
}

/// Runs the OAuth code flow against the stand-in directly and returns the token.
async fn github_token(github: &GithubStandIn, login: &str) -> String {
    use sha2::{Digest, Sha256};
    let verifier = "v".repeat(43);
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        Sha256::digest(verifier.as_bytes()),
    );
    github.set_auto_consent(Some(login));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:1/auth/callback";
    github.register_callback(redirect);
    let authorize = http
        .get(format!("{}/login/oauth/authorize", github.web_url()))
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", redirect),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    let code = query_param(&location(&authorize), "code");
    let body: serde_json::Value = http
        .post(format!("{}/login/oauth/access_token", github.web_url()))
        .header("accept", "application/json")
        .form(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn lists_follow_every_page_and_rereads_are_free_304s() {
    let (github, client, token) = client_and_token("ada").await;
    github.add_to_team("ada", "initech", "dev");
    github.add_to_team("ada", "initech", "qa");
    github.set_page_size_cap(Some(1));
    github.reset_counters();

    let teams = client.teams(&token, None).await.unwrap();
    let mut slugs: Vec<String> = teams.items().iter().map(|t| t.slug.clone()).collect();
    slugs.sort();
    assert_eq!(slugs, ["dev", "ops", "qa"]);
    assert_eq!(teams.requests, 3);
    assert_eq!(github.calls(Endpoint::Teams), 3);

    let again = client.teams(&token, Some(&teams)).await.unwrap();
    assert!(again.unchanged());
    assert_eq!(github.not_modified(Endpoint::Teams), 3);
    assert_eq!(again.items(), teams.items());

    github.remove_from_team("ada", "initech", "qa");
    let changed = client.teams(&token, Some(&again)).await.unwrap();
    assert!(!changed.unchanged());
    assert_eq!(changed.items().len(), 2);
}

#[tokio::test]
async fn only_active_org_memberships_are_listed() {
    let (_github, client, token) = client_and_token("cy").await;
    let orgs = client.org_memberships(&token, None).await.unwrap();
    assert!(
        orgs.items().is_empty(),
        "cy's initech membership is pending"
    );
}

#[tokio::test]
async fn failures_are_told_apart() {
    let (github, client, token) = client_and_token("bo").await;

    github.set_malformed(true);
    assert!(matches!(
        client.user(&token).await,
        Err(GithubError::Malformed(_))
    ));
    github.set_malformed(false);

    github.set_endless_pagination(true);
    github.set_page_size_cap(Some(1));
    let endless = client.org_memberships(&token, None).await;
    assert!(
        matches!(endless, Err(GithubError::Malformed(_))),
        "{endless:?}"
    );
    github.set_endless_pagination(false);

    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    github.set_rate_limited(Some(reset));
    match client.teams(&token, None).await {
        Err(GithubError::RateLimited { reset: Some(at) }) => {
            assert_eq!(at, UNIX_EPOCH + Duration::from_secs(reset));
        }
        other => panic!("{other:?}"),
    }
    github.set_rate_limited(None);
    github.set_secondary_rate_limited(Some(30));
    assert!(matches!(
        client.teams(&token, None).await,
        Err(GithubError::RateLimited { reset: Some(_) })
    ));
    github.set_secondary_rate_limited(None);

    github.set_down(true);
    assert!(matches!(
        client.user(&token).await,
        Err(GithubError::Unavailable(_))
    ));
    github.set_down(false);

    github.revoke_tokens("bo");
    assert_eq!(client.user(&token).await, Err(GithubError::Unauthorized));
}

#[tokio::test]
async fn a_silent_github_times_out_instead_of_hanging() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client =
        GithubClient::with_timeout(&format!("http://{addr}"), Duration::from_millis(200)).unwrap();
    let result = client.user(&Secret::new("t".into())).await;
    assert_eq!(result, Err(GithubError::Unavailable("timed out".into())));
}

/// A listener that counts who connects to it: where a leaked token would go.
async fn honeypot() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let visits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = visits.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (url, visits)
}

#[tokio::test]
async fn the_token_never_follows_a_redirect_or_a_link_off_the_api() {
    let (github, client, token) = client_and_token("ada").await;
    let (elsewhere, visits) = honeypot().await;
    github.set_trap(Some(Trap::Redirect(format!("{elsewhere}/steal"))));
    let answer = client.user(&token).await;
    assert!(
        matches!(&answer, Err(GithubError::Malformed(m)) if m.contains("redirect")),
        "{answer:?}"
    );
    github.set_trap(Some(Trap::ForeignLink(format!(
        "{elsewhere}/api/v3/user/teams?page=2"
    ))));
    let answer = client.teams(&token, None).await;
    assert!(
        matches!(&answer, Err(GithubError::Malformed(m)) if m.contains("outside the API")),
        "{answer:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        visits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing went to the other host"
    );
}

#[tokio::test]
async fn a_looping_link_and_an_oversize_body_are_refused() {
    let (github, client, token) = client_and_token("ada").await;
    github.set_trap(Some(Trap::LoopingLink));
    github.reset_counters();
    let answer = client.org_memberships(&token, None).await;
    assert!(
        matches!(&answer, Err(GithubError::Malformed(m)) if m.contains("loops back")),
        "{answer:?}"
    );
    assert!(
        github.calls(Endpoint::OrgMemberships) <= 2,
        "stopped at the loop"
    );
    github.set_trap(Some(Trap::OversizeBody));
    let answer = client.user(&token).await;
    assert!(
        matches!(&answer, Err(GithubError::Malformed(m)) if m.contains("body over")),
        "{answer:?}"
    );
}

#[tokio::test]
async fn only_a_dead_refresh_token_is_a_refusal_and_wrong_app_credentials_are_an_outage() {
    use channelgate::github::Refreshed;
    let github = stand_in().await;
    github.set_token_lifetime(Some(Duration::from_secs(8 * 3600)));
    github_token(&github, "ada").await;
    let [refresh] = github.refresh_token_values().try_into().unwrap();
    let refresh = Secret::new(refresh);
    let client = GithubClient::new(&github.api_url()).unwrap();
    let web = github.web_url();
    // A rotated or mistyped client secret: GitHub says so, and the person's
    // authorization is not in question.
    let wrong = Secret::new("not-the-secret".to_owned());
    let answer = client
        .refresh_token(&web, CLIENT_ID, &wrong, &refresh)
        .await;
    assert!(
        matches!(&answer, Err(GithubError::Unavailable(m)) if m.contains("incorrect_client_credentials")),
        "{answer:?}"
    );
    let secret = Secret::new(CLIENT_SECRET.to_owned());
    let answer = client
        .refresh_token(&web, CLIENT_ID, &secret, &refresh)
        .await;
    assert!(matches!(answer, Ok(Refreshed::Token(_))), "{answer:?}");
    // Spent once: the second use is GitHub's refusal.
    let answer = client
        .refresh_token(&web, CLIENT_ID, &secret, &refresh)
        .await;
    assert!(
        matches!(&answer, Ok(Refreshed::Refused(code)) if code == "bad_refresh_token"),
        "{answer:?}"
    );
}
