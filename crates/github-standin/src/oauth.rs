//! GitHub's OAuth web flow as the stand-in serves it: the authorize page
//! and its redirects, and the code-for-token exchange with GitHub's error
//! answers (HTTP 200 with an `error` field).

use super::*;

impl GithubStandIn {
    pub(crate) fn authorize(&self, p: &Params, choice: Choice) -> Response {
        if p.get("client_id") != Some(self.inner.client_id.as_str()) {
            return message_page(
                StatusCode::NOT_FOUND,
                "Page not found · GitHub",
                "404",
                "This is not the web page you are looking for: no OAuth application is registered here with the client_id",
                Some(p.get("client_id").unwrap_or("")),
            );
        }
        let Some(redirect) = p
            .get("redirect_uri")
            .and_then(|r| Url::parse(r).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
        else {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Redirect URI mismatch · GitHub",
                "Be careful!",
                "The redirect_uri is missing or is not an absolute http(s) URL. The redirect_uri \
                 MUST match the registered callback URL for this application.",
                None,
            );
        };
        // GitHub redirects only to the app's callback: same scheme, host
        // and port, and a path at or below the registered one.
        let registered = self.lock().callbacks.iter().any(|cb| {
            cb.scheme() == redirect.scheme()
                && cb.host() == redirect.host()
                && cb.port_or_known_default() == redirect.port_or_known_default()
                && redirect.path().starts_with(cb.path())
        });
        if !registered {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Redirect URI mismatch · GitHub",
                "Be careful!",
                "The redirect_uri is not associated with this application. The redirect_uri \
                 MUST match the registered callback URL for this application.",
                None,
            );
        }
        let state = p.get("state");
        let challenge = p.get("code_challenge").filter(|c| !c.is_empty());
        if let Some(challenge) = challenge {
            if p.get("code_challenge_method") != Some("S256") {
                return error_redirect(
                    &redirect,
                    "invalid_request",
                    "Only code_challenge_method=S256 is supported.",
                    state,
                );
            }
            if !is_s256_challenge(challenge) {
                return error_redirect(
                    &redirect,
                    "invalid_request",
                    "The code_challenge is not a base64url SHA-256 digest.",
                    state,
                );
            }
        }
        let mut st = self.lock();
        if st.deny {
            return access_denied(&redirect, state);
        }
        let login = match choice {
            Choice::Cancel => return access_denied(&redirect, state),
            Choice::Person(login) => login,
            Choice::Switches => match st.auto_consent.clone() {
                Some(login) => login,
                None => return consent_page(&self.inner.client_id, p, &redirect, &st.db.users),
            },
        };
        let Some(user) = st.db.find_user(&login) else {
            return message_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "No such person · GitHub stand-in",
                "No such person",
                "There is nobody in the stand-in's world with the login",
                Some(&login),
            );
        };
        let login = user.login.clone();
        let code = self.random_hex(20);
        st.add_code(
            code.clone(),
            Grant {
                login,
                redirect_uri: p.get("redirect_uri").unwrap_or_default().to_owned(),
                challenge: challenge.map(str::to_owned),
                scopes: split_scopes(p.get("scope").unwrap_or("")),
                created: Instant::now(),
            },
        );
        let mut to = redirect;
        {
            let mut q = to.query_pairs_mut();
            q.append_pair("code", &code);
            if let Some(state) = state {
                q.append_pair("state", state);
            }
        }
        found(&to)
    }

    pub(crate) fn exchange(&self, headers: &HeaderMap, p: &Params) -> Response {
        if p.get("grant_type") == Some(device::DEVICE_GRANT) {
            return self.device_token(p);
        }
        let (client_id, client_secret) = match basic_credentials(headers) {
            Some(pair) => pair,
            None => (
                p.get("client_id").unwrap_or_default().to_owned(),
                p.get("client_secret").unwrap_or_default().to_owned(),
            ),
        };
        let refresh = p.get("grant_type") == Some("refresh_token");
        if refresh {
            self.lock().refreshes += 1;
        }
        if let Some(grant_type) = p.get("grant_type")
            && grant_type != "authorization_code"
            && !refresh
        {
            return token_error(
                "unsupported_grant_type",
                "Only the authorization_code, refresh_token and device_code grants are supported.",
                "",
            );
        }
        if client_id != self.inner.client_id || client_secret != self.inner.client_secret {
            return token_error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
                "#incorrect-client-credentials",
            );
        }
        if refresh {
            return self.refresh(p.get("refresh_token").unwrap_or_default());
        }
        let mut st = self.lock();
        st.forget_expired_codes();
        // A code is spent by any exchange that gets this far, right or wrong.
        let grant = p
            .get("code")
            .and_then(|code| st.codes.remove(code))
            .filter(|g| g.created.elapsed() <= CODE_LIFETIME);
        let Some(grant) = grant else {
            return token_error(
                "bad_verification_code",
                "The code passed is incorrect or expired.",
                "#bad-verification-code",
            );
        };
        if let Some(redirect_uri) = p.get("redirect_uri")
            && redirect_uri != grant.redirect_uri
        {
            return token_error(
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
                "#redirect-uri-mismatch2",
            );
        }
        let verifier = p.get("code_verifier").filter(|v| !v.is_empty());
        let pkce = match (grant.challenge.as_deref(), verifier) {
            (None, None) => Ok(()),
            (Some(_), Some(verifier)) if !is_code_verifier(verifier) => {
                Err("The code_verifier must be 43 to 128 unreserved characters.")
            }
            (Some(challenge), Some(verifier)) => {
                if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge {
                    Ok(())
                } else {
                    Err("The code_verifier does not match the code_challenge.")
                }
            }
            (Some(_), None) => Err("A code_verifier is required for this code."),
            (None, Some(_)) => Err("A code_verifier was sent but no code_challenge was."),
        };
        if let Err(description) = pkce {
            return token_error("invalid_grant", description, "");
        }
        drop(st);
        self.issue_token(&grant.login, &grant.scopes)
    }

    /// Spends `refresh_token` (whatever the outcome) for a new pair; the
    /// access token issued with it dies at once.
    fn refresh(&self, refresh_token: &str) -> Response {
        let mut st = self.lock();
        let now = st.now();
        let spent = st.refresh_tokens.remove(refresh_token).filter(|r| {
            r.expires_at > now
                && st
                    .db
                    .people
                    .get(&r.key)
                    .is_some_and(|p| p.revocations == r.generation)
        });
        let Some(spent) = spent else {
            return token_error(
                "bad_refresh_token",
                "The refresh token passed is incorrect or expired.",
                "#bad-refresh-token",
            );
        };
        st.tokens.remove(&spent.access);
        drop(st);
        self.issue_token(&spent.key, &spent.scopes)
    }

    /// A new token for `login` with `scopes`, as the token endpoint answers
    /// it: with a token lifetime set, an expiring `ghu_` token and its `ghr_`
    /// refresh token.
    pub(crate) fn issue_token(&self, login: &str, scopes: &[String]) -> Response {
        let key = login.to_ascii_lowercase();
        let mut st = self.lock();
        let lifetime = st.token_lifetime;
        let prefix = if lifetime.is_some() { "ghu" } else { "gho" };
        let token = format!("{prefix}_{}", self.random_hex(36));
        tracing::debug!(%login, "GitHub stand-in issued a token");
        let generation = st.db.people.get(&key).map_or(0, |p| p.revocations);
        let now = st.now();
        st.tokens.insert(
            token.clone(),
            Token {
                key: key.clone(),
                scopes: scopes.join(", "),
                generation,
                expires_at: lifetime.map(|l| now + l),
            },
        );
        st.issued += 1;
        let mut answer =
            json!({"access_token": token, "token_type": "bearer", "scope": scopes.join(",")});
        if let Some(lifetime) = lifetime {
            let refresh = format!("ghr_{}", self.random_hex(64));
            st.refresh_tokens.insert(
                refresh.clone(),
                RefreshToken {
                    key,
                    scopes: scopes.to_vec(),
                    generation,
                    access: token,
                    expires_at: now + REFRESH_TOKEN_LIFETIME,
                },
            );
            answer["expires_in"] = json!(lifetime.as_secs());
            answer["refresh_token"] = json!(refresh);
            answer["refresh_token_expires_in"] = json!(REFRESH_TOKEN_LIFETIME.as_secs());
        }
        json_response(StatusCode::OK, &answer)
    }

    // -- API -------------------------------------------------------------------
}
