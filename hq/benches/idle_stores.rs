//! What a thousand idle stores cost HQ: every store pulling `/changes` once a second, against
//! every store's pull waiting at HQ (`wait=`), as the agent does now. A figure, not a test.
//!
//! `cargo bench -p loyalty-hq --bench idle_stores` (env: BENCH_STORES, default 1,000;
//! BENCH_WINDOW_SECS, default 30; BENCH_WAIT_SECS, the stores' `wait=`, default 25, the
//! agent's default). Starts a real `loyalty-hq` process with that many registered stores and
//! members, then in one run:
//! 1. every store pulls without waiting, once a second (the agent before waiting pulls);
//! 2. every store's pull waits at HQ and is sent again as soon as it is answered, at least a
//!    second apart (the agent's idle loop).
//!
//! Each phase starts the stores spread over one pull interval, settles, then measures HQ's CPU
//! (utime + stime from /proc/<pid>/stat) and resident memory (VmRSS) over the window. Then
//! one member saved at HQ: how long until every waiting store has it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loyalty_protocol::{ChangesPage, PROTOCOL_HEADER, PROTOCOL_VERSION};
use loyalty_sim::hq_process::HqProcess;
use loyalty_sim::process::status_kib;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time HQ has used, from `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("HQ's /proc stat");
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(100)
}

/// What one phase cost HQ.
struct Figure {
    cpu: Duration,
    window: Duration,
    requests: u64,
    rss_kib: u64,
}

impl Figure {
    fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu.as_secs_f64() / self.window.as_secs_f64()
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<34} HQ CPU {:>6.2} % of a core ({:.2} s in {:.0} s), {:>7.1} requests/s, RSS {:>6.1} MiB",
            self.cpu_percent(),
            self.cpu.as_secs_f64(),
            self.window.as_secs_f64(),
            self.requests as f64 / self.window.as_secs_f64(),
            self.rss_kib as f64 / 1024.0,
        );
    }
}

#[derive(Clone)]
struct Sim {
    http: reqwest::Client,
    url: String,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Sim {
    /// One store's pull loop: from `cursor`, `wait` seconds at HQ (0: none), pulls at least a
    /// second apart, until `stop`. Answers the cursor it reached.
    async fn store(
        self,
        store: usize,
        mut cursor: String,
        wait: u64,
        offset: Duration,
        stop: CancellationToken,
    ) -> String {
        tokio::select! {
            () = stop.cancelled() => return cursor,
            () = tokio::time::sleep(offset) => {}
        }
        let mut next = tokio::time::Instant::now();
        loop {
            next += Duration::from_secs(1);
            let mut request = self
                .http
                .get(format!("{}/v1/stores/s{store}/changes", self.url))
                .bearer_auth(token(store))
                .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                .query(&[("cursor", cursor.as_str()), ("limit", "500")]);
            if wait > 0 {
                request = request.query(&[("wait", wait.to_string())]);
            }
            let answer = tokio::select! {
                () = stop.cancelled() => return cursor,
                answer = request.send() => answer,
            };
            let page = match answer {
                Ok(r) if r.status().is_success() => r.json::<ChangesPage>().await.ok(),
                _ => None,
            };
            match page {
                Some(page) => {
                    self.answered.fetch_add(1, Ordering::Relaxed);
                    cursor = page.next_cursor;
                }
                None => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            let now = tokio::time::Instant::now();
            if next < now {
                next = now;
            }
            tokio::select! {
                () = stop.cancelled() => return cursor,
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }
}

fn token(store: usize) -> String {
    format!("bench-store-{store}-token")
}

/// Runs every store with `wait`, their first pulls spread over `spread`, for `settle` then
/// `window`; HQ's cost over the window.
async fn phase(
    sim: &Sim,
    pid: u32,
    cursors: &mut [String],
    wait: u64,
    spread: Duration,
    settle: Duration,
    window: Duration,
) -> Figure {
    let stop = CancellationToken::new();
    let n = cursors.len();
    let tasks: Vec<_> = cursors
        .iter()
        .enumerate()
        .map(|(i, cursor)| {
            // Spread over one pull's period, as stores started at different times would be.
            let offset = spread.mul_f64(i as f64 / n as f64);
            tokio::spawn(
                sim.clone()
                    .store(i, cursor.clone(), wait, offset, stop.clone()),
            )
        })
        .collect();
    tokio::time::sleep(settle).await;
    let (cpu0, req0, t0) = (
        cpu_time(pid),
        sim.answered.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let figure = Figure {
        cpu: cpu_time(pid) - cpu0,
        window: t0.elapsed(),
        requests: sim.answered.load(Ordering::Relaxed) - req0,
        rss_kib: status_kib(pid, "VmRSS:").unwrap_or(0),
    };
    stop.cancel();
    for (cursor, task) in cursors.iter_mut().zip(tasks) {
        *cursor = task.await.expect("a store task");
    }
    figure
}

fn raise_open_files() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// A `loyalty-hq` process with `stores` stores and as many members registered.
struct Hq {
    /// Declared before its directory: the process is killed before its database is removed.
    _process: HqProcess,
    url: String,
    pid: u32,
    _dir: tempfile::TempDir,
}

async fn start_hq(http: &reqwest::Client, stores: usize) -> Hq {
    let dir = tempfile::tempdir().expect("temp dir");
    let process = HqProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_loyalty-hq")),
        &dir.path().join("hq.db").to_string_lossy(),
        ADMIN,
        std::process::Stdio::inherit(),
    )
    .await
    .expect("start loyalty-hq");
    let hq = Hq {
        url: process.url.clone(),
        pid: process.pid(),
        _process: process,
        _dir: dir,
    };
    for i in 0..stores {
        for (path, body) in [
            (format!("/v1/admin/stores/s{i}"), json!({"token": token(i)})),
            (format!("/v1/admin/members/m{i}"), json!({"tier": "gold"})),
        ] {
            let r = http
                .put(format!("{}{path}", hq.url))
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .expect("admin PUT");
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
    }
    hq
}

fn main() {
    let stores = env_or("BENCH_STORES", 1_000) as usize;
    let window = Duration::from_secs(env_or("BENCH_WINDOW_SECS", 30));
    let wait = env_or("BENCH_WAIT_SECS", 25);
    raise_open_files();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .timeout(Duration::from_secs(wait + 10))
            .build()
            .expect("client");
        println!(
            "{stores} stores and {stores} members registered at a fresh HQ process per phase; each phase settles, then measures {} s",
            window.as_secs()
        );
        let sim = |url: &str| Sim {
            http: http.clone(),
            url: url.to_owned(),
            answered: Arc::default(),
            failed: Arc::default(),
        };

        // 1. Every store polls once a second, without waiting.
        let hq = start_hq(&http, stores).await;
        let idle_cpu = cpu_time(hq.pid);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let baseline = Figure {
            cpu: cpu_time(hq.pid) - idle_cpu,
            window: Duration::from_secs(5),
            requests: 0,
            rss_kib: status_kib(hq.pid, "VmRSS:").unwrap_or(0),
        };
        let polling_sim = sim(&hq.url);
        let mut cursors = vec![String::new(); stores];
        let second = Duration::from_secs(1);
        let polling = phase(&polling_sim, hq.pid, &mut cursors, 0, second, 5 * second, window).await;
        let polling_failed = polling_sim.failed.load(Ordering::Relaxed);
        drop(hq);

        // 2. Every store's pull waits at HQ, as the agent's idle loop does. The stores start
        // spread over one wait and settle for one more, so the waits end spread out too.
        let hq = start_hq(&http, stores).await;
        let waiting_sim = sim(&hq.url);
        let mut cursors = vec![String::new(); stores];
        let spread = Duration::from_secs(wait);
        let settle = Duration::from_secs(2 * wait + 5);
        let waiting = phase(&waiting_sim, hq.pid, &mut cursors, wait, spread, settle, window).await;

        baseline.print("no store connected");
        polling.print(&format!("{stores} stores polling every 1 s"));
        waiting.print(&format!("{stores} stores waiting (wait={wait})"));
        println!(
            "polling costs HQ {:.1}x the CPU of waiting ({:.1}x the requests)",
            polling.cpu.as_secs_f64() / waiting.cpu.as_secs_f64().max(1e-9),
            polling.requests as f64 / (waiting.requests as f64).max(1.0),
        );

        // 3. One change wakes every waiting store.
        let stop = CancellationToken::new();
        let before = waiting_sim.answered.load(Ordering::Relaxed);
        let tasks: Vec<_> = cursors
            .iter()
            .enumerate()
            .map(|(i, c)| {
                tokio::spawn(waiting_sim.clone().store(i, c.clone(), wait, Duration::ZERO, stop.clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let saved = Instant::now();
        let r = http
            .put(format!("{}/v1/admin/members/carla", hq.url))
            .bearer_auth(ADMIN)
            .json(&json!({"tier": "gold"}))
            .send()
            .await
            .expect("admin PUT");
        assert!(r.status().is_success());
        while waiting_sim.answered.load(Ordering::Relaxed) < before + stores as u64 {
            assert!(saved.elapsed() < Duration::from_secs(wait), "not every store heard");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!(
            "a member saved at HQ reached all {stores} waiting stores in {:.0} ms",
            saved.elapsed().as_secs_f64() * 1000.0
        );
        stop.cancel();
        for t in tasks {
            let _ = t.await;
        }
        println!(
            "failed pulls: {polling_failed} polling, {} waiting",
            waiting_sim.failed.load(Ordering::Relaxed)
        );
    });
}
