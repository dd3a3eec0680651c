//! The switches and counters tests steer the stand-in with: consent,
//! memberships and people (silent changes; [`GithubStandIn::announce`]
//! makes announced ones), outages, delays, rate limits, malformed and
//! endless answers, traps, and what was asked of it.

use super::*;

impl GithubStandIn {
    /// `Some(login)`: `GET /login/oauth/authorize` redirects at once with a
    /// code for that person (who must exist in the world when the request
    /// comes); `None`: it shows the consent page.
    pub fn set_auto_consent(&self, login: Option<&str>) {
        self.lock().auto_consent = login.map(str::to_owned);
    }

    /// While on, authorize (`GET` and `POST`) redirects back with
    /// `error=access_denied`, as GitHub does when the person cancels.
    pub fn set_deny_consent(&self, deny: bool) {
        self.lock().deny = deny;
    }

    /// Sets `login`'s membership of `org` to `state`; `None` removes it.
    pub fn set_org_state(&self, login: &str, org: &str, state: Option<MembershipState>) {
        self.lock().db.set_org(login, org, state);
    }

    /// Puts `login` in team `slug` of `org` (a no-op when already there).
    pub fn add_to_team(&self, login: &str, org: &str, slug: &str) {
        self.lock().db.add_team(login, org, slug);
    }

    /// Takes `login` out of team `slug` of `org`.
    pub fn remove_from_team(&self, login: &str, org: &str, slug: &str) {
        self.lock().db.remove_team(login, org, slug);
    }

    /// Adds a person (replacing any person with the same login).
    pub fn add_user(&self, user: UserRecord) {
        self.lock().db.put_user(user);
    }

    /// Renames `old` to `new`, as GitHub lets people do: the same id,
    /// memberships and tokens; the old login is free for anyone to take.
    pub fn rename_user(&self, old: &str, new: &str) {
        let (old_key, new_key) = (old.to_ascii_lowercase(), new.to_ascii_lowercase());
        let mut st = self.lock();
        if let Some(person) = st.db.people.remove(&old_key) {
            if let Some(at) = person.user {
                st.db.users[at].login = new.to_owned();
            }
            st.db.people.insert(new_key.clone(), person);
        }
        for token in st.tokens.values_mut() {
            if token.key == old_key {
                token.key.clone_from(&new_key);
            }
        }
        for token in st.refresh_tokens.values_mut() {
            if token.key == old_key {
                token.key.clone_from(&new_key);
            }
        }
    }

    /// Revokes every token issued to `login` so far: they now get
    /// `401 Bad credentials`. Tokens issued later (after a new login) work.
    pub fn revoke_tokens(&self, login: &str) {
        webhook::revoke(&mut self.lock(), login);
    }

    /// Revokes the one access token `token` (as GitHub does to a person's
    /// oldest token past ten, or when the app revokes it): it then gets
    /// `401 Bad credentials`. False when no such token was issued.
    pub fn revoke_token(&self, token: &str) -> bool {
        self.lock().tokens.remove(token).is_some()
    }

    /// While on, every route answers `503` (API: JSON
    /// `{"message":"Service Unavailable"}`; web: a short page).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Delays every response by `delay` (`Duration::ZERO` for none).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// `Some(reset)`: the API answers `403` "API rate limit exceeded" with
    /// `x-ratelimit-remaining: 0` and `x-ratelimit-reset: reset` (epoch
    /// seconds); `None` lifts it.
    pub fn set_rate_limited(&self, reset: Option<u64>) {
        self.lock().rate_limited = reset;
    }

    /// Spends `login`'s own rate-limit budget, as a person who loops on the
    /// API with their token would: their requests get `403` "API rate
    /// limit exceeded" until the budget's window ends (an hour after their
    /// first request), everyone else's are answered.
    pub fn spend_rate_limit(&self, login: &str) {
        let mut st = self.lock();
        let budget = &mut st.db.person(login).budget;
        budget.roll();
        budget.used = budget.used.max(RATE_LIMIT);
    }

    /// Gives `login` a fresh rate-limit budget (their window ended).
    pub fn restore_rate_limit(&self, login: &str) {
        self.lock().db.person(login).budget = Budget::default();
    }

    /// `Some(seconds)`: the API answers `429` with `retry-after: seconds` (a
    /// secondary rate limit); `None` lifts it.
    pub fn set_secondary_rate_limited(&self, retry_after: Option<u64>) {
        self.lock().secondary = retry_after;
    }

    /// While on, authenticated API requests get `200` with a truncated body
    /// that is not valid JSON.
    pub fn set_malformed(&self, malformed: bool) {
        self.lock().malformed = malformed;
    }

    /// While on, list endpoints always send a `rel="next"` link (to page + 1,
    /// forever, with no `rel="last"`) and every page repeats the list's data.
    pub fn set_endless_pagination(&self, endless: bool) {
        self.lock().endless = endless;
    }

    /// Sets a trap for clients that follow answers blindly (`None` lifts it):
    /// each would carry the person's token somewhere it must not go.
    pub fn set_trap(&self, trap: Option<Trap>) {
        self.lock().trap = trap;
    }

    /// Caps `per_page` below what the client asks, to force pagination;
    /// `None` (the default) is GitHub's maximum of 100.
    pub fn set_page_size_cap(&self, cap: Option<usize>) {
        self.lock().page_cap = cap.map(|c| c.max(1));
    }

    /// Requests received for `endpoint`, whatever the answer (304s and
    /// failures included).
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.lock().calls.get(&endpoint).copied().unwrap_or(0)
    }

    /// How many of [`calls`](Self::calls) were answered `304 Not Modified`.
    pub fn not_modified(&self, endpoint: Endpoint) -> u64 {
        self.lock()
            .not_modified
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Sets [`calls`](Self::calls) and [`not_modified`](Self::not_modified)
    /// back to zero.
    pub fn reset_counters(&self) {
        let mut st = self.lock();
        st.calls.clear();
        st.not_modified.clear();
        st.most_in_delay = 0;
    }

    /// The most requests that have waited out the delay switch at the same
    /// time since the counters were reset: with a delay set, how many
    /// requests a client had in flight at once.
    pub fn most_at_once(&self) -> usize {
        self.lock().most_in_delay
    }

    /// How many access tokens have been issued in all (revoked ones included).
    pub fn issued_tokens(&self) -> usize {
        self.lock().issued
    }

    /// How many access tokens the OAuth app has revoked through
    /// `DELETE /applications/{client_id}/token` (answered `204`).
    pub fn revoked_by_app(&self) -> usize {
        self.lock().revoked_by_app
    }

    /// `Some(lifetime)`: tokens issued from now on expire after `lifetime`
    /// and come with a single-use refresh token, as a GitHub App's user
    /// tokens do (`ghu_`/`ghr_`, `expires_in`, `refresh_token`,
    /// `refresh_token_expires_in`); `None` (the default): `gho_` tokens that
    /// never expire.
    pub fn set_token_lifetime(&self, lifetime: Option<Duration>) {
        self.lock().token_lifetime = lifetime;
    }

    /// Moves the stand-in's clock `by` forward, so tokens expire without
    /// waiting (the clock of code expiry and rate limits is left alone).
    pub fn advance_clock(&self, by: Duration) {
        self.lock().skew += by;
    }

    /// How many `grant_type=refresh_token` requests the token endpoint has
    /// received, whatever it answered.
    pub fn refreshes(&self) -> u64 {
        self.lock().refreshes
    }

    /// The refresh tokens not yet spent, for tests that check none leaks.
    pub fn refresh_token_values(&self) -> Vec<String> {
        self.lock().refresh_tokens.keys().cloned().collect()
    }

    /// Every access token issued so far, for tests that check none leaks
    /// (into a log, a page, a cookie).
    pub fn issued_token_values(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }
}
