//! Two real `loyalty-hq` processes on one PostgreSQL database, as behind a load balancer: stores
//! push overlapping and repeated batches to both at once, and HQ holds every event once, every
//! balance right and every flag raised once; a commit in one process wakes the other's waiting
//! pulls (LISTEN/NOTIFY). Always on PostgreSQL: SQLite is one process by design.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{at, event_id, gift, ledger_of, refund, sale, ADMIN};
use loyalty_protocol::{
    Event, EventBatch, OutcomeStatus, PushResponse, PROTOCOL_HEADER, PROTOCOL_VERSION,
};
use loyalty_sim::hq_process::HqProcess;
use serde_json::{json, Value};

/// Two HQ processes on a fresh database of the shared cluster, their logs in `dir`.
async fn two_hqs(dir: &std::path::Path) -> (String, HqProcess, HqProcess) {
    let db = loyalty_sim::pg::shared()
        .unwrap()
        .create_database()
        .unwrap();
    let mut hqs = Vec::new();
    for name in ["a.log", "b.log"] {
        let log = std::fs::File::create(dir.join(name)).unwrap();
        hqs.push(
            HqProcess::start(
                Path::new(env!("CARGO_BIN_EXE_loyalty-hq")),
                &db,
                ADMIN,
                log.into(),
            )
            .await
            .unwrap(),
        );
    }
    let b = hqs.pop().unwrap();
    let a = hqs.pop().unwrap();
    (db, a, b)
}

async fn admin_put(http: &reqwest::Client, url: &str, path: &str, body: Value) {
    let r = http
        .put(format!("{url}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

async fn admin_get(http: &reqwest::Client, url: &str, path: &str) -> Value {
    let r = http
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// Pushes `events` (following `after_seq`) to one process; every batch must be taken.
async fn push(
    http: reqwest::Client,
    url: String,
    store: String,
    after_seq: i64,
    events: Vec<Event>,
) -> PushResponse {
    let batch = EventBatch {
        protocol: PROTOCOL_VERSION,
        store_id: store.clone(),
        ledger_id: ledger_of(&store),
        after_seq,
        events,
    };
    let r = http
        .post(format!("{url}/v1/stores/{store}/events"))
        .bearer_auth(format!("{store}-token-secret"))
        .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
        .json(&batch)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "store {store} after {after_seq}: {body}");
    serde_json::from_value(body).unwrap()
}

const STORES: usize = 6;
const MEMBERS: usize = 5;
const PER_STORE: i64 = 40;

/// A store's log: sales to the members (and one to a member HQ never registered), refunds of
/// its own receipts, and a once-per-member gift of one campaign to every member.
fn log_of(store: &str, s: usize) -> Vec<Event> {
    let mut events = Vec::new();
    for seq in 1..=PER_STORE {
        let member = format!("m{}", (seq as usize + s) % MEMBERS);
        let e = match seq % 10 {
            3 => refund(
                store,
                seq,
                &format!("m{}", (seq as usize - 1 + s) % MEMBERS),
                2,
                &format!("{store}-r{}", seq - 1),
            ),
            5 => gift(
                store,
                seq,
                &format!("m{}", (seq as usize / 10 + s) % MEMBERS),
                "welcome",
                &at((seq as u32 * 7 + s as u32 * 13) % 600),
            ),
            9 if seq == 9 => sale(
                store,
                seq,
                &format!("ghost-{store}"),
                5,
                &format!("{store}-r{seq}"),
            ),
            _ => sale(store, seq, &member, 3 + seq % 7, &format!("{store}-r{seq}")),
        };
        events.push(e);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_hold_each_event_once_with_balances_and_flags_right() {
    let dir = tempfile::tempdir().unwrap();
    let (db, a, b) = two_hqs(dir.path()).await;
    let cluster = loyalty_sim::pg::shared().unwrap();
    let http = reqwest::Client::new();
    for s in 0..STORES {
        let store = format!("s{s}");
        admin_put(
            &http,
            &a.url,
            &format!("/v1/admin/stores/{store}"),
            json!({"token": format!("{store}-token-secret")}),
        )
        .await;
    }
    for m in 0..MEMBERS {
        admin_put(
            &http,
            &b.url,
            &format!("/v1/admin/members/m{m}"),
            json!({"tier": "gold"}),
        )
        .await;
    }

    let logs: Vec<(String, Vec<Event>)> = (0..STORES)
        .map(|s| {
            let store = format!("s{s}");
            let log = log_of(&store, s);
            (store, log)
        })
        .collect();

    // Each store pushes its log in chunks; every chunk goes to both processes at the same
    // moment, overlapping the previous chunk by its last events, and every third chunk is
    // pushed once more afterwards (a retry after a lost answer).
    let mut stores = Vec::new();
    for (s, (store, log)) in logs.iter().cloned().enumerate() {
        let (http, a, b) = (http.clone(), a.url.clone(), b.url.clone());
        stores.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let chunk = 4 + s % 3;
            let mut start = 0usize;
            let mut round = 0;
            while start < log.len() {
                let from = start.saturating_sub(2);
                let end = (start + chunk).min(log.len());
                let events = log[from..end].to_vec();
                let after = from as i64;
                let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
                let one = tokio::spawn(push(
                    http.clone(),
                    first.clone(),
                    store.clone(),
                    after,
                    events.clone(),
                ));
                let two = tokio::spawn(push(
                    http.clone(),
                    second.clone(),
                    store.clone(),
                    after,
                    events.clone(),
                ));
                answers.push(one.await.unwrap());
                answers.push(two.await.unwrap());
                if round % 3 == 0 {
                    answers.push(
                        push(http.clone(), second.clone(), store.clone(), after, events).await,
                    );
                }
                start = end;
                round += 1;
            }
            answers
        }));
    }
    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    for s in stores {
        for answer in s.await.unwrap() {
            for o in answer.outcomes {
                assert!(!matches!(o.status, OutcomeStatus::Rejected { .. }), "{o:?}");
                if o.status == OutcomeStatus::Accepted {
                    *accepted.entry(o.event_id).or_default() += 1;
                }
            }
        }
    }

    // Every event stored once: accepted by exactly one push, one row each.
    let all: Vec<&Event> = logs.iter().flat_map(|(_, l)| l).collect();
    assert_eq!(
        accepted.len(),
        all.len(),
        "every event accepted by some push"
    );
    assert!(
        accepted.values().all(|n| *n == 1),
        "an event was accepted twice: {accepted:?}"
    );
    let held = cluster
        .psql(&db, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events")
        .unwrap();
    assert_eq!(held.trim(), format!("{}|{}", all.len(), all.len()));

    // Balances: the sum of each member's events, read from either process.
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for e in &all {
        *expected.entry(e.account.clone().unwrap()).or_default() += e.points;
    }
    for m in 0..MEMBERS {
        let member = format!("m{m}");
        let via = if m % 2 == 0 { &a.url } else { &b.url };
        let view = admin_get(&http, via, &format!("/v1/admin/members/{member}")).await;
        assert_eq!(
            view["balance"].as_i64(),
            expected.get(&member).copied(),
            "{member}: {view}"
        );
    }

    // Each flag once: every once-per-member gift but the earliest, every credit to the member
    // HQ never registered; nothing else.
    let mut earliest: BTreeMap<String, (String, String)> = BTreeMap::new();
    for e in all
        .iter()
        .filter(|e| e.kind == loyalty_protocol::EventKind::GiftIssued)
    {
        let key = (e.recorded_at.clone(), e.event_id.clone());
        let slot = earliest
            .entry(e.account.clone().unwrap())
            .or_insert_with(|| key.clone());
        if key < *slot {
            *slot = key;
        }
    }
    let mut want: BTreeSet<(String, String)> = all
        .iter()
        .filter(|e| e.kind == loyalty_protocol::EventKind::GiftIssued)
        .filter(|e| earliest[e.account.as_deref().unwrap()].1 != e.event_id)
        .map(|e| ("duplicate_gift".to_owned(), e.event_id.clone()))
        .collect();
    want.extend(
        all.iter()
            .filter(|e| {
                e.account
                    .as_deref()
                    .is_some_and(|a| a.starts_with("ghost-"))
            })
            .map(|e| ("unknown_member".to_owned(), e.event_id.clone())),
    );
    let rec = admin_get(&http, &b.url, "/v1/admin/reconciliation").await;
    let flags: Vec<(String, String)> = rec["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["flag"].as_str().unwrap().to_owned(),
                f["event_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let distinct: BTreeSet<(String, String)> = flags.iter().cloned().collect();
    assert_eq!(
        flags.len(),
        distinct.len(),
        "a flag raised twice: {flags:?}"
    );
    assert_eq!(distinct, want);
    assert!(want.len() > STORES, "the logs raise flags to check");

    // Each store's watermark is its whole log, whichever process took the last batch.
    for (store, log) in &logs {
        let w = cluster
            .psql(
                &db,
                &format!("SELECT watermark FROM stores WHERE store_id = '{store}'"),
            )
            .unwrap();
        assert_eq!(w.trim(), log.len().to_string());
    }
}

#[tokio::test]
async fn a_pull_waiting_at_one_process_wakes_on_a_change_saved_at_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, a, b) = two_hqs(dir.path()).await;
    let http = reqwest::Client::new();
    admin_put(
        &http,
        &a.url,
        "/v1/admin/stores/s1",
        json!({"token": "s1-token-secret"}),
    )
    .await;
    admin_put(
        &http,
        &a.url,
        "/v1/admin/members/m0",
        json!({"tier": "gold"}),
    )
    .await;
    let pull = |url: String, query: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("{url}/v1/stores/s1/changes?{query}"))
                .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                .bearer_auth("s1-token-secret")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let page = pull(b.url.clone(), String::new()).await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();

    let waiting = tokio::spawn(pull(b.url.clone(), format!("cursor={cursor}&wait=20")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the pull answered without a change");
    let saved = Instant::now();
    admin_put(
        &http,
        &a.url,
        "/v1/admin/members/m1",
        json!({"tier": "silver"}),
    )
    .await;
    let page = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the pull at B was not woken by A's commit")
        .unwrap();
    assert!(
        saved.elapsed() < Duration::from_secs(3),
        "woken after {:?}",
        saved.elapsed()
    );
    let ids: Vec<&str> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["member_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["m1"], "{page}");

    // A push at A wakes it too (a balance changed), and a member's id is not made up.
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let waiting = tokio::spawn(pull(b.url.clone(), format!("cursor={cursor}&wait=20")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished());
    let e = sale("s1", 1, "m0", 7, &format!("r-{}", event_id()));
    push(http.clone(), a.url.clone(), "s1".into(), 0, vec![e]).await;
    let page = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the pull at B was not woken by A's push")
        .unwrap();
    let m0 = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["member_id"] == "m0")
        .cloned()
        .unwrap_or_else(|| panic!("{page}"));
    assert_eq!(m0["balance"], 7, "{m0}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_webhook_message_is_sent_by_one_process() {
    use std::sync::{Arc, Mutex};

    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                seen.lock().unwrap().push(id);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let (_db, a, b) = two_hqs(dir.path()).await;
    let http = reqwest::Client::new();
    admin_put(
        &http,
        &a.url,
        "/v1/admin/stores/s1",
        json!({"token": "s1-token-secret"}),
    )
    .await;
    for m in 0..MEMBERS {
        admin_put(
            &http,
            &b.url,
            &format!("/v1/admin/members/m{m}"),
            json!({"tier": "gold"}),
        )
        .await;
    }
    admin_put(
        &http,
        &a.url,
        "/v1/admin/webhooks/crm",
        json!({"url": hook, "event_types": ["points.credited"]}),
    )
    .await;

    // Thirty credits, pushed in turns to both processes: both senders see every message due.
    let sales: Vec<Event> = (1..=30)
        .map(|seq| {
            sale(
                "s1",
                seq,
                &format!("m{}", seq % MEMBERS as i64),
                5,
                &format!("r{seq}"),
            )
        })
        .collect();
    for (i, chunk) in sales.chunks(5).enumerate() {
        let via = if i % 2 == 0 { &a.url } else { &b.url };
        push(
            http.clone(),
            via.clone(),
            "s1".into(),
            chunk[0].seq - 1,
            chunk.to_vec(),
        )
        .await;
    }
    let started = Instant::now();
    loop {
        let distinct: BTreeSet<String> = received.lock().unwrap().iter().cloned().collect();
        if distinct.len() == sales.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {} messages delivered; HQ's logs:\n{}\n{}",
            distinct.len(),
            sales.len(),
            std::fs::read_to_string(dir.path().join("a.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("b.log")).unwrap_or_default(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both senders look again within a second: a message claimed by one is not sent by the other.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let all = received.lock().unwrap().clone();
    assert_eq!(all.len(), sales.len(), "a message was sent twice: {all:?}");
}

#[test]
fn two_processes_expiring_gifts_at_once_announce_each_once() {
    use loyalty_hq::config::Database;
    use loyalty_hq::store::{Incoming, MemberInput, Options, Push};
    use loyalty_hq::token::TokenHash;

    let cluster = loyalty_sim::pg::shared().unwrap();
    let db = Database::Postgres(cluster.create_database().unwrap());
    let one = loyalty_hq::store::open(&db, Options::default()).unwrap();
    let other = loyalty_hq::store::open(&db, Options::default()).unwrap();
    one.put_store("s1", &TokenHash::of("s1-token-secret"))
        .unwrap();
    one.put_member("m0", &MemberInput::default()).unwrap();
    // Gifts valid until 2025-04-01: expired by now.
    let gifts: Vec<Incoming> = (1..=40)
        .map(|seq| Incoming::Valid(gift("s1", seq, "m0", &format!("c{seq}"), &at(seq as u32))))
        .collect();
    one.ingest(
        "s1",
        Push {
            ledger_id: ledger_of("s1"),
            after_seq: 0,
            events: gifts,
            agent_version: None,
        },
    )
    .unwrap();

    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| one.expire_gifts().unwrap().len());
        let b = s.spawn(|| other.expire_gifts().unwrap().len());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a + b, 40, "expired by one process or the other: {a} + {b}");
    let Database::Postgres(url) = &db else {
        unreachable!()
    };
    let announced = cluster
        .psql(
            url,
            "SELECT COUNT(*) FROM member_feed WHERE type = 'gift.expired'",
        )
        .unwrap();
    assert_eq!(announced.trim(), "40");
    assert!(one.expire_gifts().unwrap().is_empty());
}
