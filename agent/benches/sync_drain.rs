//! A long outage's backlog drained by the agent's own sync loop into a real `loyalty-hq`
//! process over loopback: events/s, time to drain, the agent's and HQ's peak memory.
//!
//! `cargo bench -p loyalty-agent --bench sync_drain` (env BENCH_EVENTS, default 1,000,000).
//! The backlog is written straight into a migrated ledger (a million sales through the API
//! would time the checkout, not the sync), then `sync::run` pushes it in seq order and pulls
//! the changes, exactly as `loyalty-agent run` does.

use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::Ledger;
use loyalty_agent::sync::{self, HqClient, SyncHealth};
use loyalty_sim::hq_process::HqProcess;
use rusqlite::params;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "bench-admin-token-0123456789";
const TOKEN: &str = "bench-store-token";
const MEMBERS: usize = 10_000;

fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn write_backlog(path: &std::path::Path, events: usize) {
    let mut conn = rusqlite::Connection::open(path).expect("ledger");
    let tx = conn.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (event_id, idempotency_key, kind, account, lane, points, payload, response, rule_version, recorded_at)
                 VALUES (?1, ?2, 'sale', ?3, ?4, ?5, ?6, '{}', 'bench-v1', ?7)",
            )
            .expect("prepare");
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for i in 0..events {
            let member = format!("m{}", i % MEMBERS);
            let receipt = format!("R-{i:08}");
            let points = 1 + (i % 40) as i64;
            let payload = format!(
                r#"{{"receipt_id":"{receipt}","total_cents":{},"card":null,"member_id":"{member}"}}"#,
                points * 100
            );
            insert
                .execute(params![
                    uuid::Uuid::now_v7().to_string(),
                    format!("sale:{receipt}"),
                    member,
                    format!("{}", i % 8),
                    points,
                    payload,
                    at
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

fn main() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger_path = dir.path().join("ledger.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Create and migrate the ledger the agent's way, then fill it.
    runtime.block_on(async {
        let (ledger, writer) =
            Ledger::open(&ledger_path, Arc::new(Rules::default())).expect("ledger");
        drop(ledger);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    });
    let t = Instant::now();
    write_backlog(&ledger_path, events);
    println!(
        "backlog: {events} sale events written in {:.1} s ({MEMBERS} members)",
        t.elapsed().as_secs_f64()
    );

    let hq_binary = loyalty_sim::hq_process::build_for_bench().expect("building loyalty-hq");
    let hq = runtime
        .block_on(HqProcess::start(
            &hq_binary,
            &dir.path().join("hq.db").to_string_lossy(),
            ADMIN,
            Stdio::inherit(),
        ))
        .expect("starting loyalty-hq");
    let base = hq.url.clone();
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let put = client
            .put(format!("{base}/v1/admin/stores/s1"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"token": TOKEN}))
            .send();
        if put.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "HQ did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // m1 is registered so HQ's admin view counts its events at the end.
    let put = client
        .put(format!("{base}/v1/admin/members/m1"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"tier": null, "segments": [], "cards": []}))
        .send()
        .expect("registering m1");
    assert!(
        put.status().is_success(),
        "registering m1: {}",
        put.status()
    );
    let agent_pid = std::process::id();
    let hq_pid = hq.pid();
    let drained = runtime.block_on(async {
        let (ledger, writer) =
            Ledger::open(&ledger_path, Arc::new(Rules::default())).expect("ledger");
        let health = Arc::new(SyncHealth::default());
        let stop = CancellationToken::new();
        let hq_client = HqClient::new(&base, "s1", TOKEN, None).expect("client");
        let started = Instant::now();
        let task = tokio::spawn(sync::run(
            hq_client,
            ledger.clone(),
            Arc::new(Rules::default()),
            sync::SyncSettings {
                push_batch: sync::PUSH_BATCH,
                pull_wait: sync::PULL_WAIT,
            },
            health,
            stop.clone(),
        ));
        let mut samples = Vec::new();
        let mut next_sample = 100_000;
        loop {
            let status = ledger.readers().sync_status().expect("status");
            let done = events as i64 - status.depth;
            if done >= next_sample {
                samples.push(format!(
                    "{}k: agent {} MiB / HQ {} MiB",
                    done / 1000,
                    proc_kib(agent_pid, "VmRSS:").unwrap_or(0) / 1024,
                    proc_kib(hq_pid, "VmRSS:").unwrap_or(0) / 1024
                ));
                next_sample += 100_000;
            }
            if status.depth == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = started.elapsed();
        stop.cancel();
        let _ = task.await;
        drop(ledger);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        (took, samples)
    });
    let (took, samples) = drained;
    let held: serde_json::Value = client
        .get(format!("{base}/v1/admin/members/m1"))
        .bearer_auth(ADMIN)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_default();
    println!(
        "drained {events} events to HQ in {:.2} s: {:.0} events/s (batches of {})",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64(),
        sync::PUSH_BATCH
    );
    println!("RSS while draining: {}", samples.join(", "));
    println!(
        "peak RSS (VmHWM): agent process {} MiB (includes writing the backlog), HQ {} MiB",
        proc_kib(agent_pid, "VmHWM:").unwrap_or(0) / 1024,
        proc_kib(hq_pid, "VmHWM:").unwrap_or(0) / 1024
    );
    println!(
        "check: member m1 at HQ has {} events (expected {})",
        held["events"],
        events / MEMBERS
    );
    drop(hq);
}
