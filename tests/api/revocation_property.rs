//! The promise of live revocation, as a property: whatever happens between
//! a signature and now (more grants, membership changes GitHub announces
//! or keeps silent, outages, a person spending their own rate limit, a
//! reload of the rules, a restart on the same store (with the rules of the
//! moment), more people than the watched set holds), once
//! GitHub answers again every person who lost a channel they were signed
//! for has had their connections ended. And while a removal GitHub
//! announced cannot be confirmed, the person gets no new signature.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use github_standin::Change;
use proptest::prelude::*;
use reqwest::StatusCode;

use crate::helpers::{Browser, TestApp, temp_dir};
use crate::pusher_standin::PusherStandIn;

/// Who takes part, all in initech and its team ops at first;
/// `cache.max_entries` is two, so the watched set overflows.
const PEOPLE: [(u64, &str); 3] = [(1, "ada"), (2, "bo"), (3, "cy")];

fn world() -> github_standin::World {
    let mut world = github_standin::World::new();
    for (id, login) in PEOPLE {
        world = world
            .user(id, login, None)
            .org(login, "initech", github_standin::MembershipState::Active)
            .team(login, "initech", "ops");
    }
    world
}

/// Channels the rules allow by team, by org, by login, and to everyone.
fn channel(which: usize, login: &str) -> String {
    match which {
        0 => "private-ops".to_owned(),
        1 => "private-initech-news".to_owned(),
        2 => "presence-org-initech".to_owned(),
        3 => format!("private-user-{login}"),
        _ => "private-lobby".to_owned(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// The person's client authorizes a channel.
    Sign { who: usize, channel: usize },
    /// GitHub takes them out of initech/ops and says so (a webhook).
    LeaveTeamAnnounced { who: usize },
    /// GitHub takes them out of initech without telling anyone.
    LeaveOrgSilently { who: usize },
    /// They are put back (announced).
    Rejoin { who: usize },
    /// GitHub goes down, or comes back.
    GithubDown(bool),
    /// The person spends their own rate limit.
    SpendRateLimit { who: usize },
    /// A TTL passes and the sweep runs.
    Sweep,
    /// The rules lose (or get back) `private-initech-*`.
    Reload { without_news: bool },
    /// The gateway stops and starts again on the same store.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..PEOPLE.len();
    prop_oneof![
        6 => (who.clone(), 0..5usize).prop_map(|(who, channel)| Op::Sign { who, channel }),
        2 => who.clone().prop_map(|who| Op::LeaveTeamAnnounced { who }),
        1 => who.clone().prop_map(|who| Op::LeaveOrgSilently { who }),
        1 => who.clone().prop_map(|who| Op::Rejoin { who }),
        1 => any::<bool>().prop_map(Op::GithubDown),
        1 => who.prop_map(|who| Op::SpendRateLimit { who }),
        1 => Just(Op::Sweep),
        1 => any::<bool>().prop_map(|without_news| Op::Reload { without_news }),
        1 => Just(Op::Restart),
    ]
}

/// What the test knows: which channels each person holds, signed since
/// their connections were last ended.
#[derive(Default)]
struct Held {
    channels: BTreeMap<u64, BTreeSet<String>>,
    /// Terminate calls already accounted for.
    seen: usize,
}

impl Held {
    /// Forgets what each newly ended person held: their connections are gone.
    fn ended(&mut self, app: &TestApp) -> Vec<u64> {
        let terminated = app.pusher.terminated();
        let new = terminated[self.seen..].to_vec();
        self.seen = terminated.len();
        for id in &new {
            self.channels.remove(id);
        }
        new
    }
}

/// The rules, without `private-initech-*` if so.
fn rules(without_news: bool) -> channelgate::rules::RuleSet {
    channelgate::rules::RuleSet::new(
        crate::helpers::rules()
            .rules()
            .iter()
            .filter(|r| !(without_news && r.pattern.as_str() == "private-initech-*"))
            .cloned()
            .collect(),
    )
}

/// A gateway on `store`, sharing the stand-ins and the clock of any before it.
async fn gateway(
    store: &str,
    github: &github_standin::GithubStandIn,
    pusher: &PusherStandIn,
    clock: &channelgate::clock::Clock,
    without_news: bool,
) -> TestApp {
    TestApp::new()
        .with_github(github.clone())
        .with_pusher(pusher.clone())
        .with_clock(clock.clone())
        .with_store(store)
        .with_webhooks()
        .with_config(move |c| {
            c.cache.max_entries = 2;
            c.cache.stale_grace = Duration::from_secs(3600);
            c.rules = rules(without_news);
        })
        .spawn()
        .await
}

static CASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let case = CASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = temp_dir(&format!("revocation-property-{case}"));
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let github = crate::helpers::stand_in_with(world()).await;
    let pusher = PusherStandIn::spawn().await;
    let clock = channelgate::clock::Clock::default();
    let mut without_news = false;
    let mut app = gateway(&store, &github, &pusher, &clock, without_news).await;
    let mut browsers = Vec::new();
    for (_, login) in PEOPLE {
        browsers.push(Browser::logged_in_as(&app, login).await);
    }
    let mut held = Held::default();
    let mut down = false;
    let mut spent = [false; PEOPLE.len()];
    // An announced removal not yet confirmed by a read.
    let mut unconfirmed = [false; PEOPLE.len()];
    for op in ops {
        match op {
            Op::Sign { who, channel: c } => {
                let (id, login) = PEOPLE[who];
                let name = channel(c, login);
                let (status, _) = browsers[who].auth(&app, &name).await;
                let failing = down || spent[who];
                prop_assert!(
                    !(status == StatusCode::OK && unconfirmed[who] && failing),
                    "{login} was signed {name} after a removal GitHub could not confirm"
                );
                if status == StatusCode::OK {
                    held.channels.entry(id).or_default().insert(name);
                }
                if !failing && status != StatusCode::SERVICE_UNAVAILABLE {
                    // GitHub was read (or asked within its back-off): known again.
                    unconfirmed[who] = false;
                }
            }
            Op::LeaveTeamAnnounced { who } => {
                let (id, login) = PEOPLE[who];
                let holds_any = held.channels.get(&id).is_some_and(|c| !c.is_empty());
                app.github
                    .announce(Change::RemoveFromTeam {
                        login: login.into(),
                        org: "initech".into(),
                        slug: "ops".into(),
                    })
                    .await;
                app.settled().await;
                let ended = held.ended(&app);
                if down || spent[who] {
                    unconfirmed[who] = true;
                    prop_assert!(
                        !holds_any || ended.contains(&id),
                        "{login}'s removal could not be confirmed, yet their connections stayed"
                    );
                }
            }
            Op::LeaveOrgSilently { who } => {
                app.github.set_org_state(PEOPLE[who].1, "initech", None);
            }
            Op::Rejoin { who } => {
                let login = PEOPLE[who].1;
                app.github.set_org_state(
                    login,
                    "initech",
                    Some(github_standin::MembershipState::Active),
                );
                app.github
                    .announce(Change::AddToTeam {
                        login: login.into(),
                        org: "initech".into(),
                        slug: "ops".into(),
                    })
                    .await;
                app.settled().await;
                if !(down || spent[who]) {
                    // Re-read, if watched: possibly known again.
                    unconfirmed[who] = false;
                }
            }
            Op::GithubDown(d) => {
                down = d;
                app.github.set_down(d);
            }
            Op::SpendRateLimit { who } => {
                spent[who] = true;
                app.github.spend_rate_limit(PEOPLE[who].1);
            }
            Op::Sweep => {
                app.pass_the_ttl();
                app.sweep().await;
                for (who, unknown) in unconfirmed.iter_mut().enumerate() {
                    // Re-read, if watched: possibly known again.
                    *unknown &= down || spent[who];
                }
            }
            Op::Reload { without_news: w } => {
                without_news = w;
                let state = app.state();
                let mut config = state.config().as_ref().clone();
                config.rules = rules(w);
                state.reload(config).await;
            }
            Op::Restart => {
                app.gateway.shutdown().await.unwrap();
                app = gateway(&store, &github, &pusher, &clock, without_news).await;
                // GitHub's state (down or not) is the stand-in's, kept.
            }
        }
        app.settled().await;
        held.ended(&app);
    }
    // GitHub answers again, for everyone; the back-off and a TTL pass, and
    // the sweep looks at everyone watched.
    app.github.set_down(false);
    for (_, login) in PEOPLE {
        app.github.restore_rate_limit(login);
    }
    app.clock.advance(channelgate::membership::MAX_BACKOFF);
    app.pass_the_ttl();
    app.sweep().await;
    app.settled().await;
    held.ended(&app);
    // Whatever someone still holds without having been ended, they may
    // still have: asking again is signed.
    for (who, (id, login)) in PEOPLE.iter().enumerate() {
        for name in held.channels.get(id).into_iter().flatten() {
            let (status, body) = browsers[who].auth(&app, name).await;
            prop_assert_eq!(
                status,
                StatusCode::OK,
                "{} lost {} ({}) but their connections were never ended",
                login,
                name,
                body
            );
        }
    }
    app.gateway.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn whoever_loses_a_channel_they_hold_is_ended(ops in proptest::collection::vec(op(), 1..28)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(ops))?;
    }
}
