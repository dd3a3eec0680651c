//! What the stand-in remembers between requests ([`St`], behind one lock):
//! the world, issued codes and tokens, the switches and the counters.

use super::*;

/// An authorization code waiting to be exchanged.
pub(crate) struct Grant {
    pub(crate) login: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) created: Instant,
}

/// An issued access token.
pub(crate) struct Token {
    /// The person's lowercase login (their key in [`Db::people`]).
    pub(crate) key: String,
    /// The granted scopes, as `x-oauth-scopes` lists them.
    pub(crate) scopes: String,
    /// The person's [`Person::revocations`] when it was issued: it works
    /// while they are still equal.
    pub(crate) generation: u64,
    /// When it stops working (on the stand-in's clock, [`St::now`]);
    /// `None`: never.
    pub(crate) expires_at: Option<Instant>,
}

/// An issued refresh token (single use: spent by the refresh it makes).
pub(crate) struct RefreshToken {
    /// The person's lowercase login.
    pub(crate) key: String,
    pub(crate) scopes: Vec<String>,
    /// As [`Token::generation`]: a revocation kills it too.
    pub(crate) generation: u64,
    /// The access token issued with it, which the refresh kills.
    pub(crate) access: String,
    pub(crate) expires_at: Instant,
}

/// Who a valid token belongs to.
pub(crate) struct SignedIn {
    /// Their lowercase login.
    pub(crate) key: String,
    pub(crate) user: UserRecord,
    pub(crate) scopes: String,
}

/// Everything a stand-in holds that requests read or change.
pub(crate) struct St {
    pub(crate) db: Db,
    pub(crate) base_url: String,
    pub(crate) auto_consent: Option<String>,
    pub(crate) deny: bool,
    pub(crate) codes: HashMap<String, Grant>,
    /// Every code issued, oldest first, with when it was made: the expired
    /// ones are forgotten from the front.
    pub(crate) code_order: VecDeque<(Instant, String)>,
    pub(crate) tokens: HashMap<String, Token>,
    /// The OAuth app's registered callback URLs: GitHub redirects only there.
    pub(crate) callbacks: Vec<Url>,
    pub(crate) issued: usize,
    /// Tokens revoked by the OAuth app through
    /// `DELETE /applications/{client_id}/token`.
    pub(crate) revoked_by_app: usize,
    pub(crate) down: bool,
    pub(crate) delay: Duration,
    pub(crate) rate_limited: Option<u64>,
    pub(crate) secondary: Option<u64>,
    pub(crate) malformed: bool,
    pub(crate) endless: bool,
    pub(crate) page_cap: Option<usize>,
    pub(crate) trap: Option<Trap>,
    pub(crate) calls: HashMap<Endpoint, u64>,
    /// Requests inside their delay now, and the most there have been at once.
    pub(crate) in_delay: usize,
    pub(crate) most_in_delay: usize,
    pub(crate) not_modified: HashMap<Endpoint, u64>,
    /// The budget of requests without a valid token.
    pub(crate) anonymous: Budget,
    /// Where [`GithubStandIn::announce`] sends webhooks.
    pub(crate) webhook: Option<WebhookTarget>,
    /// The last deliveries, oldest first.
    pub(crate) deliveries: VecDeque<Delivery>,
    /// Device codes handed out, by device code.
    pub(crate) devices: HashMap<String, device::Device>,
    /// How new device codes are timed.
    pub(crate) device: device::DeviceSettings,
    /// `Some`: tokens expire after this long and come with a refresh token
    /// (a GitHub App's user tokens); `None`: they never expire.
    pub(crate) token_lifetime: Option<Duration>,
    /// Refresh tokens not yet spent, by value.
    pub(crate) refresh_tokens: HashMap<String, RefreshToken>,
    /// `grant_type=refresh_token` requests received, whatever the answer.
    pub(crate) refreshes: u64,
    /// How far the stand-in's clock is ahead of the real one.
    pub(crate) skew: Duration,
}

impl St {
    /// A fresh state serving `world`, every switch off and every counter
    /// zero, at the placeholder base URL.
    pub(crate) fn new(world: World) -> Self {
        Self {
            db: Db::new(world),
            base_url: UNSET_BASE_URL.to_owned(),
            auto_consent: None,
            deny: false,
            codes: HashMap::new(),
            code_order: VecDeque::new(),
            tokens: HashMap::new(),
            callbacks: Vec::new(),
            issued: 0,
            revoked_by_app: 0,
            down: false,
            delay: Duration::ZERO,
            rate_limited: None,
            secondary: None,
            malformed: false,
            endless: false,
            page_cap: None,
            trap: None,
            calls: HashMap::new(),
            in_delay: 0,
            most_in_delay: 0,
            not_modified: HashMap::new(),
            anonymous: Budget::default(),
            webhook: None,
            deliveries: VecDeque::new(),
            devices: HashMap::new(),
            device: device::DeviceSettings::default(),
            token_lifetime: None,
            refresh_tokens: HashMap::new(),
            refreshes: 0,
            skew: Duration::ZERO,
        }
    }

    /// `key`'s rate-limit budget (the anonymous one for `None` or a
    /// stranger), its window rolled forward if it has ended.
    pub(crate) fn budget(&mut self, key: Option<&str>) -> &mut Budget {
        let budget = match key.and_then(|k| self.db.people.get_mut(k)) {
            Some(person) => &mut person.budget,
            None => &mut self.anonymous,
        };
        budget.roll();
        budget
    }

    pub(crate) fn rate_headers(&mut self, key: Option<&str>, headers: &mut HeaderMap) {
        let (remaining, used, reset) = match self.rate_limited {
            Some(reset) => (0, RATE_LIMIT, reset),
            None => {
                let budget = self.budget(key);
                (
                    RATE_LIMIT.saturating_sub(budget.used),
                    budget.used,
                    budget.reset,
                )
            }
        };
        put(headers, "x-ratelimit-limit", &RATE_LIMIT.to_string());
        put(headers, "x-ratelimit-remaining", &remaining.to_string());
        put(headers, "x-ratelimit-reset", &reset.to_string());
        put(headers, "x-ratelimit-used", &used.to_string());
        put(headers, "x-ratelimit-resource", "core");
    }

    /// Now on the stand-in's clock: the real one plus what
    /// [`GithubStandIn::advance_clock`] added.
    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.skew
    }

    /// The person a token belongs to, unless it is unknown, expired or revoked.
    pub(crate) fn signed_in(&self, token: &str) -> Option<SignedIn> {
        let token = self.tokens.get(token)?;
        let person = self.db.people.get(&token.key)?;
        if person.revocations != token.generation
            || token.expires_at.is_some_and(|at| at <= self.now())
        {
            return None;
        }
        let user = self.db.users.get(person.user?)?.clone();
        Some(SignedIn {
            key: token.key.clone(),
            user,
            scopes: token.scopes.clone(),
        })
    }

    /// Keeps a new code until it is exchanged or expires.
    pub(crate) fn add_code(&mut self, code: String, grant: Grant) {
        self.forget_expired_codes();
        self.code_order.push_back((grant.created, code.clone()));
        self.codes.insert(code, grant);
    }

    /// Drops the codes that have expired unexchanged, in amortized constant
    /// time per code.
    pub(crate) fn forget_expired_codes(&mut self) {
        while let Some((created, _)) = self.code_order.front()
            && created.elapsed() > CODE_LIFETIME
        {
            if let Some((created, code)) = self.code_order.pop_front()
                && self.codes.get(&code).is_some_and(|g| g.created == created)
            {
                self.codes.remove(&code);
            }
        }
        // Exchanged codes wait in the queue until they expire; when they are
        // most of it, drop them (the queue at least doubled since last time).
        if self.code_order.len() > 2 * self.codes.len() + 64 {
            let codes = &self.codes;
            self.code_order
                .retain(|(created, code)| codes.get(code).is_some_and(|g| g.created == *created));
        }
    }

    pub(crate) fn api_url(&self) -> String {
        format!("{}/api/v3", self.base_url)
    }
}
