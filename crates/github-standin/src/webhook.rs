//! Webhooks: membership changes announced to a receiver as GitHub delivers
//! them (`organization`, `membership` and `github_app_authorization`
//! events, signed with `X-Hub-Signature-256`).

use hmac::{Hmac, Mac};

use super::*;
use crate::api::{org_json, simple_user_json, team_json};

/// How many deliveries [`GithubStandIn::deliveries`] remembers.
const KEPT_DELIVERIES: usize = 100;
/// How long a delivery may take before it counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The `sender` of changes made by an organization's administrator.
const ADMIN_LOGIN: &str = "admin-standin";
/// The administrator's user id.
const ADMIN_ID: u64 = 1;

/// Where [`GithubStandIn::announce`] sends webhooks (see
/// [`GithubStandIn::set_webhook`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The payload URL each delivery is POSTed to.
    pub url: String,
    /// The webhook secret: each body is signed with HMAC-SHA256 under it.
    pub secret: String,
}

/// A membership change that [`GithubStandIn::announce`] makes and sends a
/// webhook about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Makes `login` an active member of `org`; event `organization`,
    /// action `member_added`.
    AddToOrg {
        /// The person's login.
        login: String,
        /// The organization's login.
        org: String,
    },
    /// Takes `login` out of `org` (their teams stay, as with
    /// [`GithubStandIn::set_org_state`]); event `organization`, action
    /// `member_removed`.
    RemoveFromOrg {
        /// The person's login.
        login: String,
        /// The organization's login.
        org: String,
    },
    /// Puts `login` in team `slug` of `org`; event `membership`, action
    /// `added`.
    AddToTeam {
        /// The person's login.
        login: String,
        /// The organization's login.
        org: String,
        /// The team's slug.
        slug: String,
    },
    /// Takes `login` out of team `slug` of `org`; event `membership`,
    /// action `removed`.
    RemoveFromTeam {
        /// The person's login.
        login: String,
        /// The organization's login.
        org: String,
        /// The team's slug.
        slug: String,
    },
    /// Revokes every token issued to `login` so far; event
    /// `github_app_authorization`, action `revoked`, with the person as the
    /// sender.
    RevokeTokens {
        /// The person's login.
        login: String,
    },
}

impl Change {
    /// The login of the person the change is about.
    pub fn login(&self) -> &str {
        match self {
            Change::AddToOrg { login, .. }
            | Change::RemoveFromOrg { login, .. }
            | Change::AddToTeam { login, .. }
            | Change::RemoveFromTeam { login, .. }
            | Change::RevokeTokens { login } => login,
        }
    }
}

/// One webhook delivery: what was sent and how the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The `X-GitHub-Delivery` id (a random UUID).
    pub id: String,
    /// The `X-GitHub-Event` name, e.g. `membership`.
    pub event: String,
    /// The receiver's HTTP status; `None` when the POST failed.
    pub status: Option<u16>,
    /// Why the POST failed (connection refused, timeout, ...); `None` when
    /// the receiver answered, whatever the status.
    pub error: Option<String>,
}

/// The `X-Hub-Signature-256` header value of `body` under `secret`:
/// `sha256=` and the lowercase hex HMAC-SHA256, as GitHub signs webhooks.
pub fn signature_256(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The id the stand-in gives organization `org` (in API answers and
/// webhooks); stable, and the same for any capitalization of `org`.
pub fn org_id(org: &str) -> u64 {
    derived_id("org", org)
}

/// The id the stand-in gives team `slug` of `org` (in API answers and
/// webhooks); stable, and the same for any capitalization.
pub fn team_id(org: &str, slug: &str) -> u64 {
    derived_id("team", &format!("{org}/{slug}"))
}

impl GithubStandIn {
    /// `Some(target)`: [`announce`](Self::announce) sends webhooks to
    /// `target`; `None` (the default): it only makes the changes, as when
    /// GitHub is not told to send any.
    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        self.lock().webhook = target;
    }

    /// The webhook target, if one is set.
    pub fn webhook(&self) -> Option<WebhookTarget> {
        self.lock().webhook.clone()
    }

    /// Makes `change` in the world, then, if a webhook target is set, POSTs
    /// the webhook GitHub sends for it and returns how that went (it never
    /// fails: a refused or timed-out POST is a [`Delivery`] with an
    /// `error`). The webhook is sent even when the change changed nothing
    /// (say, adding someone to a team they are in), so a test can send it
    /// again.
    ///
    /// `None` when no target is set, or when `change` is about a login with
    /// no person in the world: the change is still made (as the silent
    /// switches like [`add_to_team`](Self::add_to_team) make it), but a
    /// webhook must name the person, so nothing is sent.
    ///
    /// The silent switches stay silent: they model changes GitHub makes
    /// without telling anyone.
    pub async fn announce(&self, change: Change) -> Option<Delivery> {
        let (target, event, body) = {
            let mut st = self.lock();
            apply(&mut st, &change);
            let target = st.webhook.clone()?;
            let user = st.db.find_user(change.login())?.clone();
            let (event, body) = payload(&st, &change, &user);
            (target, event, body.to_string())
        };
        // The lock is released: the receiver may call the stand-in.
        let delivery = self.deliver(&target, event, body).await;
        let mut st = self.lock();
        if st.deliveries.len() == KEPT_DELIVERIES {
            st.deliveries.pop_front();
        }
        st.deliveries.push_back(delivery.clone());
        Some(delivery)
    }

    /// The webhook deliveries sent so far, oldest first (only the last 100
    /// are kept).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.iter().cloned().collect()
    }

    /// POSTs one signed webhook to `target`.
    async fn deliver(&self, target: &WebhookTarget, event: &str, body: String) -> Delivery {
        let id = self.delivery_id();
        let signature = signature_256(target.secret.as_bytes(), body.as_bytes());
        let sent = match self.webhook_client() {
            Ok(client) => client
                .post(&target.url)
                .header("content-type", "application/json")
                .header("user-agent", "GitHub-Hookshot/standin")
                .header("x-github-event", event)
                .header("x-github-delivery", &id)
                .header("x-github-hook-id", "1")
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await
                .map_err(|e| error_chain(&e)),
            Err(e) => Err(e),
        };
        let (status, error) = match sent {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) => (None, Some(e)),
        };
        tracing::debug!(%event, %id, ?status, ?error, "GitHub stand-in sent a webhook");
        Delivery {
            id,
            event: event.to_owned(),
            status,
            error,
        }
    }

    /// The HTTP client of webhook deliveries, made on first use.
    fn webhook_client(&self) -> Result<reqwest::Client, String> {
        self.inner
            .webhook_client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(DELIVERY_TIMEOUT)
                    // GitHub does not follow redirects of payload URLs.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| error_chain(&e))
            })
            .clone()
    }

    /// A fresh random delivery id in UUID (version 4) form.
    fn delivery_id(&self) -> String {
        let h = self.random_hex(32);
        format!(
            "{}-{}-4{}-{}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            // The variant bits: 8, 9, a or b.
            ["8", "9", "a", "b"][usize::from(h.as_bytes()[16] % 4)],
            &h[17..20],
            &h[20..32]
        )
    }
}

/// Makes `change` in the world.
fn apply(st: &mut St, change: &Change) {
    match change {
        Change::AddToOrg { login, org } => st.db.set_org(login, org, Some(MembershipState::Active)),
        Change::RemoveFromOrg { login, org } => st.db.set_org(login, org, None),
        Change::AddToTeam { login, org, slug } => st.db.add_team(login, org, slug),
        Change::RemoveFromTeam { login, org, slug } => st.db.remove_team(login, org, slug),
        Change::RevokeTokens { login } => revoke(st, login),
    }
}

/// Revokes every token issued to `login` so far.
pub(crate) fn revoke(st: &mut St, login: &str) {
    // Tokens remember the count when they were issued; a new count leaves
    // them behind.
    if let Some(person) = st.db.people.get_mut(&login.to_ascii_lowercase()) {
        person.revocations += 1;
    }
}

/// The event name and body GitHub sends for `change` about `user`.
fn payload(st: &St, change: &Change, user: &UserRecord) -> (&'static str, Value) {
    let admin = json!({"login": ADMIN_LOGIN, "id": ADMIN_ID, "type": "User", "site_admin": false});
    match change {
        Change::AddToOrg { org, .. } | Change::RemoveFromOrg { org, .. } => {
            let api = st.api_url();
            let action = match change {
                Change::AddToOrg { .. } => "member_added",
                _ => "member_removed",
            };
            (
                "organization",
                json!({
                    "action": action,
                    "membership": {
                        "url": format!("{api}/orgs/{org}/memberships/{}", user.login),
                        // For member_removed GitHub sends the last state.
                        "state": "active",
                        "role": "member",
                        "organization_url": format!("{api}/orgs/{org}"),
                        "user": simple_user_json(st, user),
                    },
                    "organization": org_json(st, org),
                    "sender": admin,
                }),
            )
        }
        Change::AddToTeam { org, slug, .. } | Change::RemoveFromTeam { org, slug, .. } => {
            let action = match change {
                Change::AddToTeam { .. } => "added",
                _ => "removed",
            };
            (
                "membership",
                json!({
                    "action": action,
                    "scope": "team",
                    "member": simple_user_json(st, user),
                    "team": team_json(st, org, slug),
                    "organization": org_json(st, org),
                    "sender": admin,
                }),
            )
        }
        Change::RevokeTokens { .. } => (
            "github_app_authorization",
            json!({"action": "revoked", "sender": simple_user_json(st, user)}),
        ),
    }
}

/// `e` and its sources, joined with `: ` (reqwest's own message hides why).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_githubs_documented_example() {
        // https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
        assert_eq!(
            signature_256(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn delivery_ids_look_like_random_uuids() {
        let s = GithubStandIn::new(World::new(), "id", "secret");
        let id = s.delivery_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(id, s.delivery_id());
    }

    #[test]
    fn org_and_team_ids_are_the_ones_the_api_uses() {
        assert_eq!(org_id("Acme"), derived_id("org", "acme"));
        assert_eq!(team_id("Acme", "Ops"), derived_id("team", "acme/ops"));
    }
}
