//! Drain a long outage's backlog into a real `loyalty-hq` process over loopback HTTP.
//!
//! `cargo bench -p loyalty-hq --bench ingest` (env: BENCH_EVENTS, default 1,000,000;
//! BENCH_HQ_LOG, HQ's RUST_LOG, default warn;
//! BENCH_BATCH, default 5,000; BENCH_MEMBERS, default 10,000). One store pushes its backlog in
//! seq order, one batch in flight at a time, as the agent does; the next batch is built and
//! serialized on another thread meanwhile. Prints events/s, time to drain, and HQ's resident
//! memory (VmRSS as the backlog drains and VmHWM at the end, from /proc/<pid>/status).

use std::process::Stdio;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use loyalty_protocol::{
    Event, EventBatch, EventKind, OutcomeStatus, PushResponse, PROTOCOL_HEADER, PROTOCOL_VERSION,
};
use loyalty_sim::hq_process::{HqProcess, Options};
use loyalty_sim::process::status_kib;
use serde_json::json;

const ADMIN: &str = "bench-admin-token-0123456789";
const TOKEN: &str = "bench-store-token";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn batch_body(first_seq: i64, n: usize, members: usize) -> Vec<u8> {
    let events = (0..n as i64)
        .map(|i| {
            let seq = first_seq + i;
            let member = format!("m{}", seq as usize % members);
            let receipt = format!("r{seq}");
            Event {
                event_id: uuid::Uuid::now_v7().to_string(),
                store_id: "s1".into(),
                seq,
                kind: EventKind::Sale,
                account: Some(member.clone()),
                lane: Some(format!("{}", seq % 8)),
                points: 1 + seq % 40,
                payload: json!({"receipt_id": receipt, "total_cents": 100 * (1 + seq % 40),
                                "card": null, "member_id": member}),
                rule_version: Some("points-v1".into()),
                recorded_at: "2025-03-01T10:15:00.123Z".into(),
                idempotency_key: receipt,
            }
        })
        .collect();
    let batch = EventBatch {
        protocol: PROTOCOL_VERSION,
        store_id: "s1".into(),
        ledger_id: "bench-ledger".into(),
        after_seq: first_seq - 1,
        events,
    };
    serde_json::to_vec(&batch).expect("a batch serializes")
}

fn main() {
    let total = env_or("BENCH_EVENTS", 1_000_000);
    let batch = env_or("BENCH_BATCH", 5_000);
    let members = env_or("BENCH_MEMBERS", 10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hq = rt
        .block_on(HqProcess::start_with(
            std::path::Path::new(env!("CARGO_BIN_EXE_loyalty-hq")),
            &dir.path().join("hq.db").to_string_lossy(),
            Options {
                log: std::env::var("BENCH_HQ_LOG").unwrap_or_else(|_| "warn".into()),
                ..Options::new(ADMIN, Stdio::inherit())
            },
        ))
        .expect("start loyalty-hq");
    let (url, pid) = (hq.url.clone(), hq.pid());
    let result = rt.block_on(async {
        let http = reqwest::Client::new();
        let put = |path: String, body: serde_json::Value| {
            let http = http.clone();
            async move {
                let r = http
                    .put(path)
                    .bearer_auth(ADMIN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            }
        };
        put(format!("{url}/v1/admin/stores/s1"), json!({"token": TOKEN})).await;
        // Every member the sales credit is registered, as in a real chain: a credit to an
        // unregistered member is flagged (a row and a warning each), not the path measured here.
        for m in 0..members {
            put(
                format!("{url}/v1/admin/members/m{m}"),
                json!({"tier": "silver"}),
            )
            .await;
        }

        let (tx, rx) = sync_channel::<Vec<u8>>(2);
        let producer = std::thread::spawn(move || {
            let mut seq = 1i64;
            let mut left = total;
            while left > 0 {
                let n = left.min(batch);
                if tx.send(batch_body(seq, n, members)).is_err() {
                    return;
                }
                seq += n as i64;
                left -= n;
            }
        });
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));

        let start = Instant::now();
        let mut pushed = 0usize;
        let mut watermark = 0;
        let mut checkpoints = Vec::new();
        let mut next_checkpoint = total / 10;
        loop {
            let rx = rx.clone();
            let Some(body) = tokio::task::spawn_blocking(move || rx.lock().unwrap().recv().ok())
                .await
                .unwrap()
            else {
                break;
            };
            let r = http
                .post(format!("{url}/v1/stores/s1/events"))
                .bearer_auth(TOKEN)
                .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("push");
            assert_eq!(r.status(), 200);
            let resp: PushResponse = r.json().await.expect("push answer");
            assert!(resp
                .outcomes
                .iter()
                .all(|o| o.status == OutcomeStatus::Accepted));
            pushed += resp.outcomes.len();
            watermark = resp.watermark;
            if pushed >= next_checkpoint {
                checkpoints.push((pushed, status_kib(pid, "VmRSS:").unwrap_or(0)));
                next_checkpoint += total / 10;
            }
        }
        let elapsed = start.elapsed();
        producer.join().expect("producer");
        (pushed, watermark, elapsed, checkpoints)
    });
    let (pushed, watermark, elapsed, checkpoints) = result;
    let hwm = status_kib(pid, "VmHWM:").unwrap_or(0);
    drop(hq);

    assert_eq!(pushed, total);
    assert_eq!(watermark, total as i64);
    println!("ingest: {total} events in batches of {batch}, {members} members, one store");
    println!(
        "  drained in {:.2} s: {:.0} events/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let rss: Vec<String> = checkpoints
        .iter()
        .map(|(n, kib)| format!("{}k:{} MiB", n / 1000, kib / 1024))
        .collect();
    println!("  HQ VmRSS while draining: {}", rss.join(", "));
    println!("  HQ peak RSS (VmHWM): {} MiB", hwm / 1024);
    println!(
        "  bench client peak RSS (VmHWM): {} MiB",
        status_kib(std::process::id(), "VmHWM:").unwrap_or(0) / 1024
    );
}
