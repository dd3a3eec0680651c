//! What the gateway counts, for Prometheus (`server.metrics_listen`).
//!
//! Every label value comes from a fixed set (route templates, decision
//! kinds, GitHub endpoints, outcome names, HTTP status codes), never from
//! a client's input, so no request can grow the number of series.
//! Counting is a hash lookup and an atomic add; nothing is formatted until
//! a scrape.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `route` and `status` of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route's template, such as `/pusher/auth`.
    pub route: &'static str,
    /// The status answered.
    pub status: u32,
}

/// `route` alone.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The route's template.
    pub route: &'static str,
}

/// An authorization decision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `private`, `presence`, `encrypted` or `user` (sign-in).
    pub kind: &'static str,
    /// `allow`, `deny` or `error`.
    pub decision: &'static str,
}

/// A call to GitHub.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GithubLabels {
    /// `user`, `orgs`, `teams` or `access_token`.
    pub endpoint: &'static str,
    /// The HTTP status (`200`, `304`, `401`, ...), or `error` when there was none.
    pub status: &'static str,
}

/// A webhook delivery.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// The event, one of those the gateway knows, `other`, or `unknown`
    /// when the delivery was not genuine.
    pub event: &'static str,
    /// What became of it.
    pub outcome: &'static str,
}

/// An outcome alone.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok`, `failed`, ...
    pub outcome: &'static str,
}

/// A channel refused under `revocation.require_signin`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SigninRefusalLabel {
    /// `late` (no sign-in within `signin_wait`), `busy` (too many requests
    /// waiting to wait), `other_person` (signed in as someone else) or
    /// `not_admitted` (`[signin]` refuses the person).
    pub reason: &'static str,
}

/// The gateway's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    /// Off when no `server.metrics_listen` would ever show them: then
    /// counting is one branch.
    on: bool,
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    auth_decisions: Family<DecisionLabels, Counter>,
    github_requests: Family<GithubLabels, Counter>,
    github_rate_limit_remaining: Gauge,
    membership_cache_entries: Gauge,
    live_grants: Gauge,
    webhook_deliveries: Family<WebhookLabels, Counter>,
    terminations: Family<OutcomeLabel, Counter>,
    config_reloads: Family<OutcomeLabel, Counter>,
    grants_dropped: Counter,
    malformed_cookies: Counter,
    terminations_unreachable: Counter,
    token_refreshes: Family<OutcomeLabel, Counter>,
    signin_refusals: Family<SigninRefusalLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Every family, registered and at zero; `on` false counts nothing.
    pub fn new(on: bool) -> Self {
        let mut registry = Registry::with_prefix("channelgate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            http_requests.clone(),
        );
        // 0.1 ms to about 15 s.
        let http_duration: Family<RouteLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.5, 14)));
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            http_duration.clone(),
        );
        let auth_decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "auth_decisions",
            "Authorization decisions, by kind (private, presence, encrypted, user) and decision (allow, deny, error)",
            auth_decisions.clone(),
        );
        let github_requests = Family::<GithubLabels, Counter>::default();
        registry.register(
            "github_requests",
            "Calls to GitHub, by endpoint and status (or error)",
            github_requests.clone(),
        );
        let github_rate_limit_remaining = Gauge::default();
        github_rate_limit_remaining.set(-1);
        registry.register(
            "github_rate_limit_remaining",
            "x-ratelimit-remaining of GitHub's latest answer (-1 before any); each token has its own budget",
            github_rate_limit_remaining.clone(),
        );
        let membership_cache_entries = Gauge::default();
        registry.register(
            "membership_cache_entries",
            "People whose membership is cached",
            membership_cache_entries.clone(),
        );
        let live_grants = Gauge::default();
        registry.register(
            "live_grants",
            "Signed channels and sign-ins watched for live revocation",
            live_grants.clone(),
        );
        let webhook_deliveries = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "GitHub webhook deliveries, by event and outcome",
            webhook_deliveries.clone(),
        );
        let terminations = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "terminations",
            "Calls to Pusher's terminate_connections, by outcome (ok, failed)",
            terminations.clone(),
        );
        let config_reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads on SIGHUP, by outcome (ok, failed)",
            config_reloads.clone(),
        );
        let grants_dropped = Counter::default();
        registry.register(
            "grants_dropped",
            "People dropped from a full watched set (cache.max_entries), their connections ended",
            grants_dropped.clone(),
        );
        let malformed_cookies = Counter::default();
        registry.register(
            "malformed_session_cookies",
            "Requests whose session cookie is not a session id this gateway could have set",
            malformed_cookies.clone(),
        );
        let terminations_unreachable = Counter::default();
        registry.register(
            "terminations_unreachable",
            "Connections ended while some of the person's sockets holding channels never signed in (pusher.signin()): hosted Pusher's terminate_connections leaves those open",
            terminations_unreachable.clone(),
        );
        let token_refreshes = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "github_token_refreshes",
            "Refreshes of expiring GitHub user tokens, by outcome (ok, refused, error)",
            token_refreshes.clone(),
        );
        let signin_refusals = Family::<SigninRefusalLabel, Counter>::default();
        registry.register(
            "signin_required_refusals",
            "Channel requests refused under revocation.require_signin, by reason (late, busy, other_person, not_admitted)",
            signin_refusals.clone(),
        );
        Self(Arc::new(Inner {
            on,
            registry,
            http_requests,
            http_duration,
            auth_decisions,
            github_requests,
            github_rate_limit_remaining,
            membership_cache_entries,
            live_grants,
            webhook_deliveries,
            terminations,
            config_reloads,
            grants_dropped,
            malformed_cookies,
            terminations_unreachable,
            token_refreshes,
            signin_refusals,
        }))
    }

    /// One answered request.
    pub fn http(&self, route: &'static str, status: u16, took: Duration) {
        if !self.0.on {
            return;
        }
        self.0
            .http_requests
            .get_or_create(&HttpLabels {
                route,
                status: u32::from(status),
            })
            .inc();
        self.0
            .http_duration
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    /// One authorization decision.
    pub fn decision(&self, kind: &'static str, decision: &'static str) {
        if !self.0.on {
            return;
        }
        self.0
            .auth_decisions
            .get_or_create(&DecisionLabels { kind, decision })
            .inc();
    }

    /// One call to GitHub; `remaining` is its `x-ratelimit-remaining`.
    pub fn github(&self, endpoint: &'static str, status: Option<u16>, remaining: Option<i64>) {
        if !self.0.on {
            return;
        }
        self.0
            .github_requests
            .get_or_create(&GithubLabels {
                endpoint,
                status: status.map_or("error", status_label),
            })
            .inc();
        if let Some(remaining) = remaining {
            self.0.github_rate_limit_remaining.set(remaining);
        }
    }

    /// One webhook delivery.
    pub fn webhook(&self, event: &'static str, outcome: &'static str) {
        if !self.0.on {
            return;
        }
        self.0
            .webhook_deliveries
            .get_or_create(&WebhookLabels { event, outcome })
            .inc();
    }

    /// A request with a malformed session cookie.
    pub fn malformed_cookie(&self) {
        if self.0.on {
            self.0.malformed_cookies.inc();
        }
    }

    /// A person dropped from a full watched set.
    pub fn grant_dropped(&self) {
        if self.0.on {
            self.0.grants_dropped.inc();
        }
    }

    /// A terminate call that succeeded but left sockets that never signed in.
    pub fn termination_unreachable(&self) {
        if self.0.on {
            self.0.terminations_unreachable.inc();
        }
    }

    /// One terminate call, given up or done.
    pub fn termination(&self, ok: bool) {
        if !self.0.on {
            return;
        }
        let outcome = if ok { "ok" } else { "failed" };
        self.0
            .terminations
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// One refresh of a GitHub user token: `ok`, `refused` (GitHub took
    /// the authorization back) or `error` (GitHub could not be asked).
    pub fn token_refresh(&self, outcome: &'static str) {
        if !self.0.on {
            return;
        }
        self.0
            .token_refreshes
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// One channel request refused under `revocation.require_signin`.
    pub fn signin_refusal(&self, reason: &'static str) {
        if !self.0.on {
            return;
        }
        self.0
            .signin_refusals
            .get_or_create(&SigninRefusalLabel { reason })
            .inc();
    }

    /// One reload.
    pub fn reload(&self, ok: bool) {
        if !self.0.on {
            return;
        }
        let outcome = if ok { "ok" } else { "failed" };
        self.0
            .config_reloads
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, cache_entries: u64, grants: usize) -> String {
        self.0
            .membership_cache_entries
            .set(i64::try_from(cache_entries).unwrap_or(i64::MAX));
        self.0
            .live_grants
            .set(i64::try_from(grants).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.0.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// A status code as a label value, from a fixed table (no allocation per call).
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_with_its_labels() {
        let m = Metrics::new(true);
        m.http("/pusher/auth", 200, Duration::from_millis(2));
        m.decision("private", "allow");
        m.github("teams", Some(304), Some(4999));
        m.github("user", None, None);
        m.webhook("membership", "accepted");
        m.termination(true);
        m.termination_unreachable();
        m.reload(false);
        m.token_refresh("refused");
        let text = m.render(3, 7);
        for line in [
            "channelgate_http_requests_total{route=\"/pusher/auth\",status=\"200\"} 1",
            "channelgate_http_request_duration_seconds_count{route=\"/pusher/auth\"} 1",
            "channelgate_auth_decisions_total{kind=\"private\",decision=\"allow\"} 1",
            "channelgate_github_requests_total{endpoint=\"teams\",status=\"304\"} 1",
            "channelgate_github_requests_total{endpoint=\"user\",status=\"error\"} 1",
            "channelgate_github_rate_limit_remaining 4999",
            "channelgate_membership_cache_entries 3",
            "channelgate_live_grants 7",
            "channelgate_webhook_deliveries_total{event=\"membership\",outcome=\"accepted\"} 1",
            "channelgate_terminations_total{outcome=\"ok\"} 1",
            "channelgate_terminations_unreachable_total 1",
            "channelgate_config_reloads_total{outcome=\"failed\"} 1",
            "channelgate_github_token_refreshes_total{outcome=\"refused\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
