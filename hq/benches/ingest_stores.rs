//! Fifty stores pushing at once, into real `loyalty-hq` processes: SQLite, PostgreSQL, and two
//! HQ processes on one PostgreSQL (the stores split between them, as behind a load balancer),
//! printed side by side.
//!
//! `cargo bench -p loyalty-hq --bench ingest_stores` (env: BENCH_STORES, default 50;
//! BENCH_STORE_EVENTS, each store's backlog, default 2,000; BENCH_BATCH, default 100;
//! BENCH_MEMBERS, default 20,000; BENCH_AWAY, the percentage of a store's sales to members of
//! other stores, default 5). Members shop mostly at their home store: each store has its own
//! share of the members. Each store pushes its backlog in seq order, one batch in flight at a
//! time, as the agent does. PostgreSQL is a cluster of its own made for the run
//! (initdb, loyalty-sim's `pg`) with fsync on, as SQLite's `synchronous=FULL`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use loyalty_protocol::{
    Event, EventBatch, EventKind, OutcomeStatus, PushResponse, PROTOCOL_HEADER, PROTOCOL_VERSION,
};
use loyalty_sim::hq_process::HqProcess;
use serde_json::json;

const ADMIN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Who shops at store `s`: its own members, and now and then another store's.
#[derive(Clone, Copy)]
struct Shoppers {
    stores: usize,
    members: usize,
    away_percent: usize,
}

impl Shoppers {
    fn member(&self, s: usize, seq: usize) -> String {
        let spread = seq.wrapping_mul(7919);
        if spread % 100 < self.away_percent {
            return format!("m{}", spread % self.members);
        }
        let own = (self.members / self.stores).max(1);
        format!("m{}", (s * own + spread % own) % self.members)
    }
}

fn batch_body(s: usize, first_seq: i64, n: usize, shoppers: Shoppers) -> Vec<u8> {
    let store = format!("s{s}");
    let store = store.as_str();
    let events = (0..n as i64)
        .map(|i| {
            let seq = first_seq + i;
            let member = shoppers.member(s, seq as usize);
            let receipt = format!("{store}-r{seq}");
            Event {
                event_id: uuid::Uuid::now_v7().to_string(),
                store_id: store.into(),
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
        store_id: store.into(),
        ledger_id: format!("ledger-{store}"),
        after_seq: first_seq - 1,
        events,
    };
    serde_json::to_vec(&batch).expect("a batch serializes")
}

struct Figures {
    events: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }
}

/// Registers the stores and members through the first process, then has every store push its
/// backlog, store `i` to process `i % n`.
async fn run(hqs: &[HqProcess], per_store: usize, batch: usize, shoppers: Shoppers) -> Figures {
    let (stores, members) = (shoppers.stores, shoppers.members);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(stores * 2)
        .build()
        .expect("client");
    let admin = &hqs[0].url;
    let put = |path: String, body: serde_json::Value| {
        let http = http.clone();
        async move {
            let r = http
                .put(path)
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .expect("admin");
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    for s in 0..stores {
        put(
            format!("{admin}/v1/admin/stores/s{s}"),
            json!({"token": format!("s{s}-token-secret")}),
        )
        .await;
    }
    // Registered 32 at a time: setting up is not what is measured.
    let ids: Vec<usize> = (0..members).collect();
    for chunk in ids.chunks(32) {
        let puts = chunk.iter().map(|m| {
            put(
                format!("{admin}/v1/admin/members/m{m}"),
                json!({"tier": "silver"}),
            )
        });
        futures_util::future::join_all(puts).await;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..stores {
        let (http, url) = (http.clone(), hqs[s % hqs.len()].url.clone());
        tasks.push(tokio::spawn(async move {
            let store = format!("s{s}");
            let mut latencies = Vec::new();
            let mut seq = 1i64;
            let mut left = per_store;
            while left > 0 {
                let n = left.min(batch);
                let body = batch_body(s, seq, n, shoppers);
                let sent = Instant::now();
                let r = http
                    .post(format!("{url}/v1/stores/{store}/events"))
                    .bearer_auth(format!("{store}-token-secret"))
                    .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("push");
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                let resp: PushResponse = r.json().await.expect("push answer");
                latencies.push(sent.elapsed());
                assert!(resp
                    .outcomes
                    .iter()
                    .all(|o| o.status == OutcomeStatus::Accepted));
                seq += n as i64;
                left -= n;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("store task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Figures {
        events: stores * per_store,
        elapsed,
        latencies,
    }
}

fn main() {
    let stores = env_or("BENCH_STORES", 50);
    let per_store = env_or("BENCH_STORE_EVENTS", 2_000);
    let batch = env_or("BENCH_BATCH", 100);
    let members = env_or("BENCH_MEMBERS", 20_000);
    let shoppers = Shoppers {
        stores,
        members,
        away_percent: env_or("BENCH_AWAY", 5),
    };
    let cluster = loyalty_sim::pg::Cluster::start(true).expect("a PostgreSQL cluster");
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sqlite = dir.path().join("hq.db");
    let setups: [(&str, String, usize); 3] = [
        (
            "SQLite, 1 HQ process",
            sqlite.to_string_lossy().into_owned(),
            1,
        ),
        (
            "PostgreSQL, 1 HQ process",
            cluster.create_database().expect("database"),
            1,
        ),
        (
            "PostgreSQL, 2 HQ processes",
            cluster.create_database().expect("database"),
            2,
        ),
    ];
    println!(
        "ingest_stores: {stores} stores pushing at once, {per_store} events each in batches of {batch}, {members} members ({}% of sales away from home)",
        shoppers.away_percent
    );
    println!(
        "  {:<28} {:>10} {:>9} {:>10} {:>10}",
        "", "events/s", "time s", "push p50", "push p99"
    );
    for (name, db, processes) in setups {
        let figures = rt.block_on(async {
            let mut hqs = Vec::new();
            for _ in 0..processes {
                hqs.push(
                    HqProcess::start(
                        Path::new(env!("CARGO_BIN_EXE_loyalty-hq")),
                        &db,
                        ADMIN,
                        Stdio::inherit(),
                    )
                    .await
                    .expect("HQ starts"),
                );
            }
            run(&hqs, per_store, batch, shoppers).await
        });
        println!(
            "  {:<28} {:>10.0} {:>9.2} {:>8} ms {:>7} ms",
            name,
            figures.events as f64 / figures.elapsed.as_secs_f64(),
            figures.elapsed.as_secs_f64(),
            figures.percentile(0.50).as_millis(),
            figures.percentile(0.99).as_millis(),
        );
    }
}
