//! The faults phase of `cargo bench --bench gateway` (`BENCH_ONLY=faults`):
//! the real gateway, the stand-in and a real `redis-server`, each neighbour
//! failing as an operator meets it, reported as figures.

use super::*;

/// One answer as a client saw it.
struct Sample {
    /// When the request was sent.
    at: Instant,
    took: Duration,
    /// The status, or `None` when the connection failed.
    status: Option<u16>,
}

/// One request, never panicking: a broken connection is `None`.
async fn try_send(
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    addr: SocketAddr,
    make: &MakeRequest,
    n: usize,
) -> Option<u16> {
    if sender.is_none() {
        let stream = TcpStream::connect(addr).await.ok()?;
        stream.set_nodelay(true).ok()?;
        let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        *sender = Some(s);
    }
    let s = sender.as_mut()?;
    let answer = async {
        s.ready().await.ok()?;
        let response = s.send_request(request_of(addr, make, n)).await.ok()?;
        let status = response.status().as_u16();
        response.into_body().collect().await.ok()?;
        Some(status)
    };
    let status = tokio::time::timeout(Duration::from_secs(60), answer)
        .await
        .ok()
        .flatten();
    if status.is_none() {
        *sender = None;
    }
    status
}

/// `clients` workers send `make`'s requests back to back until `until`;
/// every answer is kept. `pace`, when set, spaces each worker's requests.
async fn hammer(
    addr: SocketAddr,
    clients: usize,
    make: MakeRequest,
    until: Instant,
    pace: Option<Duration>,
) -> Vec<Sample> {
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = None;
            let mut samples = Vec::new();
            let mut n = worker;
            let mut next = Instant::now();
            while Instant::now() < until {
                if let Some(pace) = pace {
                    tokio::time::sleep_until(next.into()).await;
                    next += pace;
                }
                let at = Instant::now();
                let status = try_send(&mut sender, addr, &make, n).await;
                samples.push(Sample {
                    at,
                    took: at.elapsed(),
                    status,
                });
                n += clients;
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn refs(v: &[Sample]) -> Vec<&Sample> {
    v.iter().collect()
}

fn p99(samples: &[&Sample]) -> f64 {
    let mut ms: Vec<f64> = samples
        .iter()
        .map(|s| s.took.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return f64::NAN;
    }
    ms[((ms.len() - 1) as f64 * 0.99).round() as usize]
}

/// Counts by status: `200 n, 503 n, ...`, connection failures as `dropped`.
fn by_status(samples: &[&Sample]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for s in samples {
        let key = s
            .status
            .map_or_else(|| "dropped".to_owned(), |c| c.to_string());
        *counts.entry(key).or_insert(0u64) += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn post(url: String, body: &str) {
    reqwest::Client::new()
        .post(url)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
}

/// A `redis-server` with an append-only file, killed when dropped.
fn redis(port: u16, dir: &Path) -> Proc {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (apt-get install redis-server)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

fn private_of(cookies: Arc<Vec<String>>, offset: usize) -> MakeRequest {
    Arc::new(move |n| {
        let i = n % cookies.len();
        (
            hyper::Method::POST,
            "/pusher/auth".into(),
            Some(cookies[i].clone()),
            Some(format!(
                "socket_id=1.2&channel_name=private-user-person{}",
                offset + i
            )),
        )
    })
}

fn healthz() -> MakeRequest {
    Arc::new(|_| (hyper::Method::GET, "/healthz".into(), None, None))
}

pub(super) async fn faults_phase(report: &mut Report, dir: &Path, github: &str) {
    report.line("\n### Faults\n");
    redis_away(report, dir, github).await;
    github_hangs(report, dir, github).await;
    github_fails(report, dir, github).await;
    slow_crowd(report, dir, github).await;
    long_run(report, dir, github).await;
}

/// 1. Redis goes away for 5 s under 64 clients, then comes back.
async fn redis_away(report: &mut Report, dir: &Path, github: &str) {
    let people = 200;
    let port = free_port();
    let data = dir.join("redis");
    std::fs::create_dir_all(&data).unwrap();
    let server = redis(port, &data);
    let store = format!("redis://127.0.0.1:{port}");
    let (gateway, addr) = start_gateway(dir, github, &store, "1h").await;
    let cookies = Arc::new(login_all(addr, 0..people, 32).await);
    let begin = Instant::now();
    let until = begin + Duration::from_secs(14);
    let load = tokio::spawn(hammer(
        addr,
        64,
        private_of(cookies.clone(), 0),
        until,
        None,
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(server);
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _server = redis(port, &data);
    let back = Instant::now();
    let samples = load.await.unwrap();
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= stopped && s.at < back)
        .collect();
    let slowest = during.iter().map(|s| s.took).max().unwrap_or_default();
    let first_ok = samples
        .iter()
        .filter(|s| s.at >= back && s.status == Some(200))
        .map(|s| (s.at + s.took).saturating_duration_since(back))
        .min();
    let mut alive = 0;
    let check = private_of(cookies.clone(), 0);
    let mut sender = None;
    for i in 0..people {
        if try_send(&mut sender, addr, &check, i).await == Some(200) {
            alive += 1;
        }
    }
    report.line(
        "**1. Redis away for 5 s** (Redis store, append-only file, 64 clients, 200 people):\n",
    );
    report.line("| answers during the outage | slowest answer during it | Redis back to first 200 | sessions alive after |");
    report.line("| --- | ---: | ---: | ---: |");
    report.line(format!(
        "| {} | {:.0} ms | {} | {alive} of {people} |",
        by_status(&during),
        slowest.as_secs_f64() * 1000.0,
        first_ok.map_or("none".to_owned(), |d| format!(
            "{:.0} ms",
            d.as_secs_f64() * 1000.0
        )),
    ));
    drop(gateway);
}

/// 2. GitHub holds every answer for 30 s while some people's entries are stale.
async fn github_hangs(report: &mut Report, dir: &Path, github: &str) {
    let group = 100;
    let tuning = Tuning {
        github_timeout: "3s",
        ..Tuning::default()
    };
    let (gateway, addr) = start_gateway_with(dir, github, "memory", "8s", tuning).await;
    let stale = Arc::new(login_all(addr, 0..group, 32).await);
    tokio::time::sleep(Duration::from_millis(8500)).await;
    let fresh = Arc::new(login_all(addr, group..2 * group, 32).await);
    // Before: fresh people and /healthz, 1 s.
    let t = Instant::now() + Duration::from_secs(1);
    let (f0, h0) = tokio::join!(
        hammer(addr, 16, private_of(fresh.clone(), group), t, None),
        hammer(addr, 8, healthz(), t, None)
    );
    reset_counters(github).await;
    post(format!("{github}/_bench/delay"), "30000").await;
    let t = Instant::now() + Duration::from_secs(5);
    let (s1, f1, h1) = tokio::join!(
        hammer(addr, 32, private_of(stale.clone(), 0), t, None),
        hammer(addr, 16, private_of(fresh.clone(), group), t, None),
        hammer(addr, 8, healthz(), t, None)
    );
    post(format!("{github}/_bench/delay"), "0").await;
    let c = counters(github).await;
    let reads = c["teams"].as_u64().unwrap();
    let stale_answers = refs(&s1);
    let slowest = s1.iter().map(|s| s.took).max().unwrap_or_default();
    report.line("\n**2. GitHub hangs** (every answer held 30 s; `github.timeout` 3 s; 100 people stale, 100 fresh):\n");
    report.line("| stale people's answers | slowest | GitHub reads started per stale person | fresh p99 before / during | /healthz p99 before / during |");
    report.line("| --- | ---: | ---: | ---: | ---: |");
    report.line(format!(
        "| {} | {:.0} ms | {:.2} | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
        by_status(&stale_answers),
        slowest.as_secs_f64() * 1000.0,
        reads as f64 / group as f64,
        p99(&refs(&f0)),
        p99(&refs(&f1)),
        p99(&refs(&h0)),
        p99(&refs(&h1)),
    ));
    drop(gateway);
}

/// 3. GitHub answers 5xx while entries go stale, under `stale_grace`.
async fn github_fails(report: &mut Report, dir: &Path, github: &str) {
    let tuning = Tuning {
        stale_grace: "4s",
        ..Tuning::default()
    };
    let (gateway, addr) = start_gateway_with(dir, github, "memory", "2s", tuning).await;
    let cookies = Arc::new(login_all(addr, 0..100, 32).await);
    post(format!("{github}/_bench/down"), "1").await;
    let down = Instant::now();
    let samples = hammer(
        addr,
        64,
        private_of(cookies, 0),
        down + Duration::from_secs(9),
        None,
    )
    .await;
    post(format!("{github}/_bench/down"), "0").await;
    let last_stale = samples
        .iter()
        .filter(|s| s.status == Some(200))
        .map(|s| s.at.saturating_duration_since(down))
        .max()
        .unwrap_or_default();
    report.line("\n**3. GitHub fails with 503** for 9 s (TTL 2 s, `stale_grace` 4 s, 64 clients, 100 people logged in just before):\n");
    report.line("| answers | last stale 200, after the failure began |");
    report.line("| --- | ---: |");
    report.line(format!(
        "| {} | {:.1} s (entries were at most 6 s past their last read by then) |",
        by_status(&samples.iter().collect::<Vec<_>>()),
        last_stale.as_secs_f64()
    ));
    drop(gateway);
}

/// 4. 2,000 connections send half their headers.
async fn slow_crowd(report: &mut Report, dir: &Path, github: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let crowd = if quick() { 300 } else { 2000 };
    let tuning = Tuning {
        header_timeout: "2s",
        max_connections: 3000,
        ..Tuning::default()
    };
    let (gateway, addr) = start_gateway_with(dir, github, "memory", "1h", tuning).await;
    let cookies = Arc::new(login_all(addr, 0..100, 32).await);
    let t = Instant::now() + Duration::from_secs(2);
    let before = hammer(addr, 16, private_of(cookies.clone(), 0), t, None).await;
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..crowd {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    let watchers: Vec<_> = slow
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return opened.elapsed(),
                        Ok(_) => {}
                    }
                }
            })
        })
        .collect();
    let t = Instant::now() + Duration::from_secs(3);
    let during = hammer(addr, 16, private_of(cookies, 0), t, None).await;
    let mut closed = Vec::new();
    for w in watchers {
        if let Ok(Ok(at)) = tokio::time::timeout(Duration::from_secs(20), w).await {
            closed.push(at);
        }
    }
    let last_closed = closed.iter().max().copied().unwrap_or_default();
    report.line(format!(
        "\n**4. {crowd} slow clients** (half their headers; `header_timeout` 2 s, `max_connections` 3000; 16 ordinary clients):\n"
    ));
    report.line("| ordinary p99 before / during | ordinary answers during | slow connections closed | last closed after |");
    report.line("| ---: | --- | ---: | ---: |");
    report.line(format!(
        "| {:.2} / {:.2} ms | {} | {} of {crowd} | {:.1} s |",
        p99(&refs(&before)),
        p99(&refs(&during)),
        by_status(&refs(&during)),
        closed.len(),
        last_closed.as_secs_f64()
    ));
    drop(gateway);
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Scenario 5, a long run at about half the measured peak: 10 minutes,
/// or `BENCH_LONG_MINUTES`.
pub(super) async fn long_run(report: &mut Report, dir: &Path, github: &str) {
    let people = if quick() { 1_000 } else { 10_000 };
    let minutes = std::env::var("BENCH_LONG_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(if quick() { 0.5 } else { 10.0 });
    let (gateway, addr) = start_gateway(dir, github, "memory", "10s").await;
    let cookies = Arc::new(login_all(addr, 0..people, 64).await);
    let peak = load(addr, 64, private_of(cookies.clone(), 0), 2.0)
        .await
        .rate();
    let clients = 32;
    let pace = Duration::from_secs_f64(clients as f64 / (peak / 2.0));
    let begin = Instant::now();
    let until = begin + Duration::from_secs_f64(minutes * 60.0);
    let load = tokio::spawn(hammer(
        addr,
        clients,
        private_of(cookies, 0),
        until,
        Some(pace),
    ));
    let mut probes = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(10)).await;
        probes.push((
            begin.elapsed().as_secs_f64(),
            gateway.rss(),
            fds(gateway.pid()),
        ));
    }
    let samples = load.await.unwrap();
    let errors = samples.iter().filter(|s| s.status != Some(200)).count();
    // RSS slope after the first minute (least squares), MiB per minute.
    let warm: Vec<&(f64, u64, usize)> = probes
        .iter()
        .filter(|p| p.0 >= 60.0_f64.min(minutes * 30.0))
        .collect();
    let n = warm.len() as f64;
    let (mx, my) = (
        warm.iter().map(|p| p.0).sum::<f64>() / n,
        warm.iter().map(|p| p.1 as f64).sum::<f64>() / n,
    );
    let slope = warm
        .iter()
        .map(|p| (p.0 - mx) * (p.1 as f64 - my))
        .sum::<f64>()
        / warm
            .iter()
            .map(|p| (p.0 - mx).powi(2))
            .sum::<f64>()
            .max(f64::EPSILON);
    let per_minute: Vec<String> = (0..minutes.ceil() as u64)
        .map(|m| {
            let minute: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.at.saturating_duration_since(begin).as_secs() / 60 == m)
                .collect();
            format!("{:.2}", p99(&minute))
        })
        .collect();
    let mib = |b: u64| b as f64 / 1048576.0;
    report.line(format!(
        "\n**5. A long run**: {minutes} min at about half the peak ({:.0} of {peak:.0} req/s), {people} sessions, TTL 10 s (re-reads and the sweep all the time):\n",
        samples.len() as f64 / (minutes * 60.0)
    ));
    report.line("| requests | errors | RSS first / last | RSS slope after warm-up | open fds min / max | p99 per minute (ms) |");
    report.line("| ---: | ---: | ---: | ---: | ---: | --- |");
    report.line(format!(
        "| {} | {errors} | {:.1} / {:.1} MiB | {:.2} MiB/min | {} / {} | {} |",
        samples.len(),
        mib(probes.first().map_or(0, |p| p.1)),
        mib(probes.last().map_or(0, |p| p.1)),
        slope * 60.0 / 1048576.0,
        probes.iter().map(|p| p.2).min().unwrap_or(0),
        probes.iter().map(|p| p.2).max().unwrap_or(0),
        per_minute.join(", ")
    ));
    drop(gateway);
}
