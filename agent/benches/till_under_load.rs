//! The tills under load (issue 17): a lone cashier's sale latency with the agent idle, during a
//! proximity storm through the real pipeline, and while the agent drains a long backlog to a
//! real `loyalty-hq` process; and the process's peak memory over all of it. Each target is
//! printed as a ratio measured in this run.
//!
//! `cargo bench -p loyalty-agent --bench till_under_load`. Environment (defaults in brackets):
//! `BENCH_EVENTS` backlog to drain [300000], `BENCH_PHONES` [1000], `BENCH_SIGHTINGS_PER_PHONE`
//! per second [20], `BENCH_PHASE_SECS` length of the idle and storm phases [8],
//! `BENCH_SALE_EVERY_MS` the probe's pace [5], `BENCH_HQ_NICE` HQ's CPU niceness [19],
//! `BENCH_HQ_DIR` where HQ's database goes [/dev/shm], `BENCH_HQ_SCHED` HQ's scheduling class
//! [idle; `normal`].
//!
//! The agent is `app::run` in this process, as `loyalty-agent run` runs it, with HQ configured:
//! - run 1: idle, then the storm. The storm is a replayed trace (`[proximity] replay`, the same
//!   source the demo and the tests use): every phone heard by the door's two sensors 20 times a
//!   second, so each walks in, gets the welcome gift, and stays; sightings go through the
//!   channel, the resolver (rotating ids), the tracker and the ledger exactly as a sensor
//!   node's would.
//! - between runs: the backlog is written straight into the stopped agent's ledger, as a long
//!   outage leaves it (a sale through the API per event would time the checkout, not the
//!   drain), with the balances' pending counters it would have.
//! - run 2: the agent starts, its sync loop drains the backlog to HQ while the probe sells.
//!
//! The probe is one client posting a sale every `BENCH_SALE_EVERY_MS`, each answer timed; HQ is
//! configured throughout, so every probe sale is pushed as it is recorded, in every phase.
//!
//! HQ is another machine in a real chain; here it shares the store box's two cores, and while
//! it ingests 300,000 events as fast as it can it would take one of them from the agent. So it
//! runs in the SCHED_IDLE class at nice 19 (it gets a core only when nothing else wants it),
//! with its database on a tmpfs (its fsyncs would otherwise queue with the ledger's on the one
//! disk), and the figures are the agent's own: what its drain costs its tills.
//! `BENCH_HQ_SCHED=normal`, `BENCH_HQ_NICE=0` and `BENCH_HQ_DIR` undo each. The machine's dirty
//! pages are written out before each run (`sync`), so no phase pays for the set-up's writes.

use loyalty_agent::app;
use loyalty_agent::config::Config;
use loyalty_agent::proximity::rotating_id::{interval_number, rotating_id, ProximityKey};
use loyalty_sim::hq_process::{HqProcess, Options};
use rusqlite::params;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "bench-admin-token-0123456789";
const TOKEN: &str = "bench-store-token";
const STORE: &str = "s1";
const LANE: &str = "L1";
/// A valid EAN-13 that no member holds: the probe's sales earn under the card.
const CARD: &str = "4006381333931";
const INTERVAL_SECS: u64 = 600;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// This process's resident memory, sampled every 50 ms, so each phase's peak can be told apart
/// (VmHWM is one figure for the whole life).
struct RssSampler {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(kib) = proc_kib(std::process::id(), "VmRSS:") {
                    s.lock().expect("rss samples").push((Instant::now(), kib));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RssSampler { samples, stop }
    }

    /// Peak MiB between two instants.
    fn peak_mib(&self, from: Instant, to: Instant) -> f64 {
        let samples = self.samples.lock().expect("rss samples");
        samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, k)| *k)
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn proximity_key(phone: u64) -> String {
    format!(
        "{:032x}",
        0x5eed_0000_0000_0000_0000u128 + u128::from(phone)
    )
}

fn member(phone: u64) -> String {
    format!("m-{phone:05}")
}

/// The storm: from `start_ms`, every phone heard `per_second` times a second for `secs`
/// seconds, in time order, alternately by the door's inside sensor (close: it walks in) and
/// its outside one (far).
fn write_storm_trace(path: &Path, phones: u64, per_second: u64, start_ms: u64, secs: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let interval = interval_number(now, INTERVAL_SECS);
    let tokens: Vec<String> = (0..phones)
        .map(|p| {
            let key: ProximityKey = proximity_key(p).parse().expect("a valid proximity key");
            format!("{:016x}", rotating_id(&key, interval))
        })
        .collect();
    let file = std::fs::File::create(path).expect("creating the trace");
    let mut out = std::io::BufWriter::new(file);
    let step_ms = 1000 / per_second.max(1);
    let mut written = 0;
    for step in 0..(secs * per_second) {
        for (p, token) in tokens.iter().enumerate() {
            let t = start_ms + step * step_ms + (p as u64 * step_ms) / phones;
            let (sensor, rssi) = if (step + p as u64).is_multiple_of(2) {
                ("door-in", -50)
            } else {
                ("door-out", -85)
            };
            writeln!(
                out,
                r#"{{"t_ms":{t},"sensor":"{sensor}","rssi":{rssi},"token":"{token}"}}"#
            )
            .expect("writing the trace");
            written += 1;
        }
    }
    out.flush().expect("writing the trace");
    written
}

fn agent_config(dir: &Path, hq: &str, trace: Option<&Path>) -> Config {
    let mut text = format!(
        "[store]\nid = \"{STORE}\"\ndata_dir = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n\
         [hq]\nurl = \"{hq}\"\ntoken = \"{TOKEN}\"\n\n[[lanes]]\nid = \"{LANE}\"\n",
        dir.join("agent-data").display()
    );
    if let Some(trace) = trace {
        text.push_str(&format!(
            r#"
[proximity]
replay = "{}"

[[proximity.zones]]
name = "door"
min_dwell_secs = 0

[[proximity.sensors]]
name = "door-in"
source = "replay"
zone = "door"
role = "inside"

[[proximity.sensors]]
name = "door-out"
source = "replay"
zone = "door"
role = "outside"

[[gifts]]
id = "welcome"
gift = "Free coffee"
trigger = "entered_store"
limit = "once_per_visit"
valid_for_minutes = 120
"#,
            trace.display()
        ));
    }
    Config::parse(&text, &dir.join("agent.toml")).expect("the bench agent.toml is valid")
}

/// The probe's samples in one phase.
#[derive(Default)]
struct Probe {
    times: Vec<Duration>,
    failures: u64,
    first_failure: Option<String>,
}

impl Probe {
    fn summary(&mut self) -> (Duration, Duration) {
        self.times.sort();
        if self.times.is_empty() {
            return (Duration::ZERO, Duration::ZERO);
        }
        (percentile(&self.times, 0.50), percentile(&self.times, 0.99))
    }

    fn print(&mut self, phase: &str) -> Duration {
        let (p50, p99) = self.summary();
        let max = self.times.last().copied().unwrap_or_default();
        println!(
            "{phase}: {} sales, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} not 200{})",
            self.times.len(),
            ms(p50),
            ms(p99),
            ms(max),
            self.failures,
            self.first_failure
                .as_deref()
                .map(|f| format!("; first: {f}"))
                .unwrap_or_default()
        );
        p99
    }
}

/// One sale every `every` until `stop`, each answer timed.
async fn probe(
    client: reqwest::Client,
    base: String,
    phase: &'static str,
    every: Duration,
    stop: CancellationToken,
) -> Probe {
    let mut result = Probe::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return result,
            _ = tick.tick() => {}
        }
        n += 1;
        let receipt = format!("{phase}-{n}");
        let started = Instant::now();
        let answer = client
            .post(format!("{base}/v1/lanes/{LANE}/sales"))
            .json(&serde_json::json!({"receipt_id": receipt, "total_cents": 1250, "card": CARD}))
            .send()
            .await;
        let outcome = match answer {
            Ok(r) => {
                let status = r.status();
                match r.bytes().await {
                    Ok(_) if status == reqwest::StatusCode::OK => Ok(()),
                    Ok(body) => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let took = started.elapsed();
        match outcome {
            Ok(()) => result.times.push(took),
            Err(e) => {
                result.failures += 1;
                result.first_failure.get_or_insert(e);
            }
        }
    }
}

/// Runs the probe from now until `until`.
async fn probe_until(
    client: &reqwest::Client,
    base: &str,
    phase: &'static str,
    every: Duration,
    until: Instant,
) -> Probe {
    let stop = CancellationToken::new();
    let task = tokio::spawn(probe(
        client.clone(),
        base.to_owned(),
        phase,
        every,
        stop.clone(),
    ));
    tokio::time::sleep_until(until.into()).await;
    stop.cancel();
    task.await.expect("the probe panicked")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the agent did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the agent on a free port: its URL, shutdown token and task.
async fn start_agent(
    config: Config,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app::run(config, listener, shutdown.clone()));
    (base, shutdown, task)
}

async fn stop_agent(
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    shutdown.cancel();
    task.await
        .expect("the agent task panicked")
        .expect("the agent stopped with an error");
}

async fn import_phones(ledger_path: &Path, phones: u64) {
    use loyalty_agent::ledger::{Ledger, MemberProfile, MemberRecord};
    let (ledger, writer) = Ledger::open(
        ledger_path,
        Arc::new(loyalty_agent::engine::Rules::default()),
    )
    .expect("opening the ledger");
    let members = (0..phones)
        .map(|p| MemberRecord {
            member_id: member(p),
            profile: MemberProfile {
                proximity_key: Some(proximity_key(p)),
                ..MemberProfile::default()
            },
        })
        .collect();
    ledger
        .import_members(members)
        .await
        .expect("importing the phones' members");
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .expect("joining the writer")
        .expect("the writer stopped cleanly");
}

/// Events the ledger holds that HQ has not acknowledged.
fn backlog(ledger: &Path) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("opening the ledger to read its backlog");
    conn.query_row(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events) - acked_seq FROM sync_state",
        [],
        |r| r.get(0),
    )
    .expect("reading the backlog")
}

/// A long outage's sales, appended to the stopped agent's ledger with the pending counters the
/// writer would have kept for them.
fn write_backlog(ledger: &Path, events: u64, phones: u64) {
    let mut conn = rusqlite::Connection::open(ledger).expect("opening the ledger");
    let tx = conn.transaction().expect("a transaction");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (event_id, idempotency_key, kind, account, lane, points, payload, response, rule_version, recorded_at)
                 VALUES (?1, ?2, 'sale', ?3, ?4, ?5, ?6, ?7, 'default', ?8)",
            )
            .expect("preparing the backlog insert");
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for i in 0..events {
            let account = member(i % phones.max(1));
            let receipt = format!("OUTAGE-{i:08}");
            let points = 1 + (i % 40) as i64;
            let payload = format!(
                r#"{{"receipt_id":"{receipt}","total_cents":{},"card":null,"member_id":"{account}"}}"#,
                points * 100
            );
            let response = format!(
                r#"{{"receipt_id":"{receipt}","member_id":"{account}","points_earned":{points},"balance":null,"gifts":[]}}"#
            );
            insert
                .execute(params![
                    uuid::Uuid::now_v7().to_string(),
                    format!("sale:{receipt}"),
                    account,
                    format!("{}", i % 8),
                    points,
                    payload,
                    response,
                    at
                ])
                .expect("inserting a backlog event");
        }
    }
    tx.execute(
        "INSERT INTO balances (account, points, pending_points, pending_events)
         SELECT account, SUM(points), SUM(points), COUNT(*) FROM events
         WHERE idempotency_key LIKE 'sale:OUTAGE-%' GROUP BY account
         ON CONFLICT(account) DO UPDATE SET points = points + excluded.points,
             pending_points = pending_points + excluded.pending_points,
             pending_events = pending_events + excluded.pending_events",
        [],
    )
    .expect("counting the backlog in the balances");
    tx.commit().expect("committing the backlog");
    // A real outage's backlog builds up over hours with the checkpointer copying the WAL into
    // the database as it goes; written in one go here, it would leave a WAL of hundreds of
    // megabytes for the agent's checkpointer to copy during the drain, a disk load no outage
    // produces.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpointing the backlog");
}

/// Writes every dirty page on the machine to disk. The compiler's output (the bench binary is
/// hundreds of megabytes with its debug info) and the backlog written just above would
/// otherwise be flushed by the kernel during a phase, 30 s after they were written, and the
/// tills' fsyncs would queue behind a flush no store makes: a backlog builds up over hours and
/// is long on disk when the connection returns.
fn settle_disk() {
    match Command::new("sync").status() {
        Ok(s) if s.success() => {}
        other => eprintln!(
            "`sync` did not run ({other:?}); the phases may see the set-up's writes flushed"
        ),
    }
}

fn main() -> ExitCode {
    let events = env_or("BENCH_EVENTS", 300_000);
    let phones = env_or("BENCH_PHONES", 1000);
    let per_phone = env_or("BENCH_SIGHTINGS_PER_PHONE", 20);
    let phase = Duration::from_secs(env_or("BENCH_PHASE_SECS", 8));
    let every = Duration::from_millis(env_or("BENCH_SALE_EVERY_MS", 5).max(1));

    let dir = tempfile::Builder::new()
        .prefix("till-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temp dir under the target tmp dir");
    println!("till under load: files under {}", dir.path().display());
    let rss = RssSampler::start();
    let bench_started = Instant::now();

    // HQ, a separate process on this machine, with the store, and the phones' members.
    let hq_nice = env_or("BENCH_HQ_NICE", 19).min(19);
    // Nice 19 is not enough to model another machine (`HqProcess`'s `idle_class` says why).
    // `BENCH_HQ_SCHED=normal` keeps it in the normal class.
    let hq_idle_class = std::env::var("BENCH_HQ_SCHED").map_or(true, |v| v != "normal");
    // HQ's disk is another machine's too: its fsyncs (300,000 events ingested with
    // synchronous=FULL) would queue with the ledger's on this one disk. `BENCH_HQ_DIR` puts its
    // database elsewhere; by default a tmpfs where there is one.
    let hq_dir = match std::env::var_os("BENCH_HQ_DIR") {
        Some(d) => PathBuf::from(d),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => dir.path().to_owned(),
    };
    let hq_db = tempfile::Builder::new()
        .prefix("till-bench-hq-")
        .tempdir_in(&hq_dir)
        .expect("a directory for HQ's database");
    println!(
        "HQ runs beside the agent at nice {hq_nice}{}, its database in {}",
        if hq_idle_class {
            " in the SCHED_IDLE class"
        } else {
            ""
        },
        hq_db.path().display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let hq_binary = loyalty_sim::hq_process::build_for_bench().expect("building loyalty-hq");
    let hq = runtime
        .block_on(HqProcess::start_with(
            &hq_binary,
            &hq_db.path().join("hq.db").to_string_lossy(),
            Options {
                log: "error".to_owned(),
                nice: i32::try_from(hq_nice).expect("at most 19"),
                idle_class: hq_idle_class,
                ..Options::new(ADMIN, Stdio::inherit())
            },
        ))
        .expect("starting loyalty-hq");
    let hq_url = hq.url.clone();
    let admin = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let put = admin
            .put(format!("{hq_url}/v1/admin/stores/{STORE}"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"token": TOKEN}))
            .send();
        if put.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "HQ did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in 0..phones {
        let put = admin
            .put(format!("{hq_url}/v1/admin/members/{}", member(p)))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"proximity_key": proximity_key(p)}))
            .send()
            .expect("registering a member at HQ");
        assert!(put.status().is_success(), "registering a member at HQ");
    }

    // The replay starts with the agent: idle until `storm_at`, then the storm.
    let settle = Duration::from_secs(3);
    let storm_at = settle + phase + Duration::from_millis(500);
    let trace = dir.path().join("storm.jsonl");
    let sightings = write_storm_trace(
        &trace,
        phones,
        per_phone,
        storm_at.as_millis() as u64,
        phase.as_secs(),
    );
    println!(
        "HQ up with {phones} members; storm trace: {sightings} sightings ({phones} phones x {per_phone}/s x {} s)",
        phase.as_secs()
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building the HTTP client");

    // Run 1: idle, then the storm. The phones' members are in the ledger before it starts, as
    // a store that pulled them from HQ earlier holds them: the resolver knows them at once.
    let config = agent_config(dir.path(), &hq_url, Some(&trace));
    let ledger_path = config.ledger_path();
    runtime.block_on(import_phones(&ledger_path, phones));
    settle_disk();
    let (mut idle, mut storm, idle_window, storm_window, tracking) = runtime.block_on(async {
        let started = Instant::now();
        let (base, shutdown, task) = start_agent(config).await;
        wait_ready(&client, &base).await;
        // Warm-up: connections, statement caches, the first pushes.
        tokio::time::sleep_until((started + Duration::from_secs(1)).into()).await;
        let _ = probe_until(&client, &base, "warm", every, started + settle).await;
        let idle_from = Instant::now();
        let idle = probe_until(&client, &base, "idle", every, started + settle + phase).await;
        let idle_to = Instant::now();
        tokio::time::sleep_until((started + storm_at).into()).await;
        let storm_from = Instant::now();
        let storm = probe_until(&client, &base, "storm", every, started + storm_at + phase).await;
        let storm_to = Instant::now();
        // Facts still queued when the storm ends are recorded after it (the tills went first).
        let mut health = serde_json::Value::Null;
        let settle_by = Instant::now() + Duration::from_secs(20);
        loop {
            let now: serde_json::Value = client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .expect("healthz")
                .json()
                .await
                .expect("healthz JSON");
            let recorded = |h: &serde_json::Value| {
                h["components"]["proximity"]["tracking"]["facts_recorded"].clone()
            };
            let settled = recorded(&now) == recorded(&health);
            health = now;
            if settled || Instant::now() > settle_by {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        stop_agent(shutdown, task).await;
        (
            idle,
            storm,
            (idle_from, idle_to),
            (storm_from, storm_to),
            health["components"]["proximity"]["tracking"].clone(),
        )
    });
    idle.print("idle");
    let storm_p99 = storm.print("proximity storm");
    println!(
        "storm through the pipeline: {} sightings taken ({} resolved) of {sightings} sent, {} presence facts recorded ({} dropped), {} welcome gifts issued for {phones} phones",
        tracking["sightings"], tracking["resolved"], tracking["facts_recorded"], tracking["facts_dropped"], tracking["gifts_issued"]
    );

    // The outage's backlog, then run 2: the drain.
    let t = Instant::now();
    write_backlog(&ledger_path, events, phones);
    settle_disk();
    let queued = backlog(&ledger_path);
    println!(
        "backlog: {events} sale events written in {:.1} s; {queued} events queued for HQ",
        t.elapsed().as_secs_f64()
    );
    let config = agent_config(dir.path(), &hq_url, None);
    let hq_pid = hq.pid();
    let (mut drain, drain_window, drained_in, mut after) = runtime.block_on(async {
        let started = Instant::now();
        let (base, shutdown, task) = start_agent(config).await;
        wait_ready(&client, &base).await;
        let stop = CancellationToken::new();
        let probe_task = tokio::spawn(probe(
            client.clone(),
            base.clone(),
            "drain",
            every,
            stop.clone(),
        ));
        let drain_from = Instant::now();
        let deadline = started + Duration::from_secs(600);
        loop {
            let path = ledger_path.clone();
            let left = tokio::task::spawn_blocking(move || backlog(&path))
                .await
                .expect("reading the backlog");
            if left == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the backlog did not drain in 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let drained_in = started.elapsed();
        stop.cancel();
        let drain = probe_task.await.expect("the probe panicked");
        let drain_to = Instant::now();
        let after = probe_until(&client, &base, "after", every, Instant::now() + phase).await;
        stop_agent(shutdown, task).await;
        (drain, (drain_from, drain_to), drained_in, after)
    });
    let drain_p99 = drain.print("drain");
    after.print("idle again after the drain");
    // The reference of (3a) and (3b): both idle phases, before the storm and after the drain.
    // One phase's p99 rests on its 16 slowest sales and moved from 0.60 to 0.99 ms between runs
    // of the same build; twice the sales halve that lottery.
    let mut idle_both = Probe {
        times: [idle.times.as_slice(), after.times.as_slice()].concat(),
        ..Probe::default()
    };
    let idle_p99 = idle_both.print("idle, both idle phases");
    println!(
        "drained {queued} events to HQ in {:.1} s: {:.0} events/s",
        drained_in.as_secs_f64(),
        queued as f64 / drained_in.as_secs_f64()
    );
    let hq_hwm = proc_kib(hq_pid, "VmHWM:").unwrap_or(0);
    drop(hq);

    let hwm = proc_kib(std::process::id(), "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    println!(
        "resident memory (this process: the agent and the probe), peak per phase: idle {:.0} MiB, storm {:.0} MiB, drain {:.0} MiB; VmHWM over the whole run {hwm:.0} MiB (the backlog written in-process included); HQ's VmHWM {} MiB",
        rss.peak_mib(idle_window.0, idle_window.1),
        rss.peak_mib(storm_window.0, storm_window.1),
        rss.peak_mib(drain_window.0, drain_window.1),
        hq_hwm / 1024
    );
    let peak_agent = [idle_window, storm_window, drain_window]
        .iter()
        .map(|(a, b)| rss.peak_mib(*a, *b))
        .fold(0.0, f64::max);
    println!("bench took {:.0} s", bench_started.elapsed().as_secs_f64());

    println!("== against the targets ==");
    let mut met = true;
    met &= report(
        "(3a) sale p99 during the drain / idle p99",
        ms(drain_p99) / ms(idle_p99),
        2.0,
    );
    met &= report(
        "(3b) sale p99 during the proximity storm / idle p99",
        ms(storm_p99) / ms(idle_p99),
        2.0,
    );
    met &= report(
        "(4) peak resident MiB during idle, storm and drain / 150 MB",
        peak_agent * 1024.0 * 1024.0 / 150e6,
        1.0,
    );
    let failures = idle.failures + storm.failures + drain.failures + after.failures;
    if failures > 0 {
        println!("FAILED: {failures} probe sales were not answered 200");
        return ExitCode::FAILURE;
    }
    if met {
        println!("targets met");
    } else {
        println!("TARGET MISSED");
    }
    ExitCode::SUCCESS
}

/// Prints a ratio against its upper bound; true when within it.
fn report(what: &str, ratio: f64, at_most: f64) -> bool {
    let met = ratio <= at_most;
    println!(
        "{what}: {ratio:.2} (target <= {at_most:.1}) -> {}",
        if met { "target met" } else { "target missed" }
    );
    met
}
