//! The fleet phase of `cargo bench --bench gateway` (`BENCH_ONLY=fleet`):
//! 1, 2 and 3 gateways on one real `redis-server`, behind a round-robin
//! client, with 1,000 people, beside as many gateways on the memory store
//! (each with its own logins: they share nothing). It prints GitHub reads
//! per person per TTL (the goal: 3 instances read as one, at most 1.1x),
//! and auth throughput per instance with its p99 (the goal: a Redis
//! instance within 15% of a memory-store one on the same share of the
//! machine). Reads are counted with a 2-second TTL, so that every answer
//! goes stale several times in the run; throughput is measured twice: with
//! that TTL, and again after a reload to the default TTL (5 minutes), as in
//! production.
//!
//! Needs a Redis server: `CHANNELGATE_TEST_REDIS` (default
//! `redis://127.0.0.1:6379`); the phase uses databases 11 to 13 of it and
//! empties each before use.

use super::*;

/// The TTL of membership answers in this phase, and how many TTLs the
/// load runs: each person's answer goes stale several times.
const TTL_SECONDS: f64 = 2.0;
const TTLS: f64 = 5.0;
/// Connections per instance.
const CONNECTIONS: usize = 16;
/// The TTL of the second throughput run: the default.
const DEFAULT_TTL: &str = "5m";

fn redis_url() -> String {
    std::env::var("CHANNELGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `redis-cli` on database `db` of the bench's Redis, if it answers.
fn flush(db: u32) -> bool {
    let url = reqwest::Url::parse(&redis_url()).expect("CHANNELGATE_TEST_REDIS is a URL");
    Command::new("redis-cli")
        .args([
            "-h",
            url.host_str().unwrap_or("127.0.0.1"),
            "-p",
            &url.port().unwrap_or(6379).to_string(),
            "-n",
            &db.to_string(),
            "flushdb",
        ])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"OK"))
}

/// One configuration's figures.
struct Fleet {
    name: String,
    instances: usize,
    reads_per_person_per_ttl: f64,
    /// Throughput and p99 with the 2-second TTL.
    short: (f64, f64),
    total: f64,
    p99: f64,
    errors: u64,
}

pub(super) async fn fleet_phase(report: &mut Report, dir: &Path, github: &str) {
    let people = 1_000;
    report.line(format!(
        "\n### A fleet on one Redis ({people} people, round-robin over the instances, \
         membership TTL {TTL_SECONDS} s, {TTLS} TTLs of load, {CONNECTIONS} connections per instance)\n"
    ));
    if !flush(11) {
        report.line(format!(
            "skipped: no Redis answers at {} (set CHANNELGATE_TEST_REDIS)",
            redis_url()
        ));
        return;
    }
    let mut rows = Vec::new();
    for n in 1..=3usize {
        rows.push(run(dir, github, "memory".into(), "memory", n, people).await);
        let db = 10 + n as u32;
        assert!(flush(db), "redis-cli flushdb {db}");
        let store = format!("{}/{db}", redis_url().trim_end_matches('/'));
        rows.push(run(dir, github, store, "Redis", n, people).await);
    }
    report.line(format!(
        "| store | instances | GitHub reads per person per TTL ({TTL_SECONDS} s) | req/s per instance, TTL {TTL_SECONDS} s | p99 ms | auth req/s, all, TTL {DEFAULT_TTL} | req/s per instance | p99 ms | errors |",
    ));
    report.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for f in &rows {
        report.line(format!(
            "| {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} | {} |",
            f.name,
            f.instances,
            f.reads_per_person_per_ttl,
            f.short.0 / f.instances as f64,
            f.short.1,
            f.total,
            f.total / f.instances as f64,
            f.p99,
            f.errors
        ));
    }
    let find = |name: &str, n: usize| {
        rows.iter()
            .find(|f| f.name == name && f.instances == n)
            .expect("every row ran")
    };
    let ratios = |of: fn(&Fleet) -> f64| -> String {
        (1..=3)
            .map(|n| format!("{:.2}", of(find("Redis", n)) / of(find("memory", n))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    report.line(format!(
        "\nReads per person per TTL on Redis, 3 instances against 1: {:.2}x (goal at most 1.1x). \
         Throughput of Redis instances against as many memory-store instances, for 1, 2 and 3: \
         {} with the TTL of {DEFAULT_TTL}, {} with {TTL_SECONDS} s (goal at least 0.85). \
         All instances share this machine's cores with the load generator, the stand-in and Redis, \
         so throughput per instance falls with the number of instances by that alone.",
        find("Redis", 3).reads_per_person_per_ttl / find("Redis", 1).reads_per_person_per_ttl,
        ratios(|f| f.total),
        ratios(|f| f.short.0),
    ));
}

/// Starts `n` gateways on `store`, logs `people` in (through the first when
/// the store is shared, else on each), then loads all of them round-robin
/// for [`TTLS`] TTLs.
async fn run(
    dir: &Path,
    github: &str,
    store: String,
    name: &str,
    n: usize,
    people: usize,
) -> Fleet {
    let ttl = format!("{TTL_SECONDS}s");
    let mut gateways = Vec::new();
    for _ in 0..n {
        gateways.push(start_gateway(dir, github, &store, &ttl).await);
    }
    let shared = store != "memory";
    let mut cookies = Vec::new();
    for (i, (_, addr)) in gateways.iter().enumerate() {
        if i == 0 || !shared {
            cookies.push(Arc::new(login_all(*addr, 0..people, 64).await));
        }
    }
    reset_counters(github).await;
    let started = Instant::now();
    let seconds = TTL_SECONDS * TTLS;
    let runs = gateways.iter().enumerate().map(|(i, (_, addr))| {
        let own = cookies[if shared { 0 } else { i }].clone();
        let private = auth_request(own, |i| format!("channel_name=private-user-person{i}"));
        load(*addr, CONNECTIONS, private, seconds)
    });
    let runs = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed().as_secs_f64();
    let c = counters(github).await;
    let teams = c["teams"].as_u64().unwrap() as f64;
    let merged = |runs: Vec<Run>, seconds: f64| {
        let mut all = Run {
            latencies: Vec::new(),
            errors: 0,
            seconds,
            answered: 0,
        };
        for r in runs {
            all.latencies.extend(r.latencies);
            all.errors += r.errors;
        }
        all
    };
    let short = merged(runs, seconds);
    // Then as in production: the default TTL, taken by a reload.
    for (gateway, addr) in &gateways {
        let path = dir.join(format!("gateway-{}.toml", addr.port()));
        let config = std::fs::read_to_string(&path).unwrap().replace(
            &format!("membership_ttl = \"{ttl}\""),
            &format!("membership_ttl = \"{DEFAULT_TTL}\""),
        );
        std::fs::write(&path, config).unwrap();
        let hup = Command::new("kill")
            .args(["-HUP", &gateway.pid().to_string()])
            .status()
            .unwrap();
        assert!(hup.success(), "kill -HUP");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs = gateways.iter().enumerate().map(|(i, (_, addr))| {
        let own = cookies[if shared { 0 } else { i }].clone();
        let private = auth_request(own, |i| format!("channel_name=private-user-person{i}"));
        load(*addr, CONNECTIONS, private, load_seconds() * 2.0)
    });
    let all = merged(
        futures_util::future::join_all(runs).await,
        load_seconds() * 2.0,
    );
    let fleet = Fleet {
        name: name.into(),
        instances: n,
        // Every membership read asks for the teams once.
        reads_per_person_per_ttl: teams / people as f64 / (elapsed / TTL_SECONDS),
        short: (short.rate(), short.percentile(99.0)),
        total: all.rate(),
        p99: all.percentile(99.0),
        errors: all.errors + short.errors,
    };
    println!(
        "  {name} x{n}: {:.2} reads per person per TTL, {:.0} req/s",
        fleet.reads_per_person_per_ttl, fleet.total
    );
    fleet
}
