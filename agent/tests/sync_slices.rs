//! Sync records HQ's answers in slices, each a short transaction of its own behind the tills'
//! commands, against a real HQ: a push of more events than one acknowledgement slice
//! (`sync::ACK_SLICE`) settles every event once (the watermark reaches the last, an event HQ
//! rejects in a later slice is dead-lettered, the pending counters come back to zero), and a
//! page of more changes than one pull slice (`sync::PULL_SLICE`) is applied whole.

use chrono::Utc;
use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::{Identity, Ledger, OpenOptions, SaleRequest};
use loyalty_agent::sync::{self, HqClient, SyncHealth, SyncSettings, ACK_SLICE};
use loyalty_sim::hq::LocalHq;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "slices-admin-token-0123";
const TOKEN: &str = "store-s1-token";
const CARD: &str = "4006381333931";

async fn sales(ledger: &Ledger, from: usize, to: usize) {
    for i in from..to {
        ledger
            .sale(SaleRequest {
                lane: "1".into(),
                receipt_id: format!("R-{i}"),
                total_cents: 1000,
                lines: Vec::new(),
                redemption_ids: Vec::new(),
                identity: Some(Identity::Card(CARD.into())),
                at: Utc::now(),
            })
            .await
            .unwrap();
    }
}

async fn open(path: &Path) -> (Ledger, std::thread::JoinHandle<()>) {
    Ledger::open(path, Arc::new(Rules::default())).unwrap()
}

async fn stop(ledger: Ledger, writer: std::thread::JoinHandle<()>) {
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_acknowledged_in_slices_settles_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let hq = LocalHq::start(
        "127.0.0.1:0".parse().unwrap(),
        &dir.path().join("hq.db"),
        ADMIN,
        |_| {},
    )
    .await
    .unwrap();
    let (status, body) = hq
        .admin_put("/v1/admin/stores/s1", serde_json::json!({"token": TOKEN}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    let path = dir.path().join("ledger.db");
    let before = ACK_SLICE + 150;
    let (ledger, writer) = open(&path).await;
    sales(&ledger, 0, before).await;
    stop(ledger, writer).await;
    // An event HQ refuses for good (more points than any event may move), in the second slice,
    // counted as pending like any event the writer records.
    let (conn, _) =
        loyalty_agent::ledger::writer_connection(&path, OpenOptions::default()).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO events (event_id, idempotency_key, kind, account, lane, points, payload, response, rule_version, recorded_at)
         VALUES ('{}', 'sale:R-huge', 'sale', 'card:{CARD}', '1', 2000000000, '{{\"receipt_id\":\"R-huge\",\"total_cents\":1}}', '{{}}', 'default', '{}');
         UPDATE balances SET pending_points = pending_points + 2000000000, pending_events = pending_events + 1
         WHERE account = 'card:{CARD}';",
        uuid::Uuid::now_v7(),
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    ))
    .unwrap();
    drop(conn);
    let (ledger, writer) = open(&path).await;
    sales(&ledger, before, 2 * ACK_SLICE + 100).await;
    let total = (2 * ACK_SLICE + 101) as i64;
    let huge = (before + 1) as i64;
    assert_eq!(ledger.readers().sync_status().unwrap().depth, total);

    let stop_sync = CancellationToken::new();
    let task = tokio::spawn(sync::run(
        HqClient::new(&hq.url, "s1", TOKEN, None).unwrap(),
        ledger.clone(),
        Arc::new(Rules::default()),
        SyncSettings {
            push_batch: sync::PUSH_BATCH,
            pull_wait: Duration::ZERO,
        },
        Arc::new(SyncHealth::default()),
        stop_sync.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ledger.readers().sync_status().unwrap().depth > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the push did not settle"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_sync.cancel();
    task.await.unwrap();

    let status = ledger.readers().sync_status().unwrap();
    assert_eq!((status.acked_seq, status.dead_letters), (total, 1));
    let (dead, pending): (i64, (i64, i64)) = ledger
        .readers()
        .with(|c| {
            Ok((
                c.query_row("SELECT seq FROM dead_letters", [], |r| r.get(0))?,
                c.query_row(
                    "SELECT pending_points, pending_events FROM balances WHERE account = ?1",
                    [format!("card:{CARD}")],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?,
            ))
        })
        .unwrap();
    assert_eq!(dead, huge, "the rejected event is dead-lettered");
    assert_eq!(
        pending,
        (0, 0),
        "every event left the pending counters once"
    );
    stop(ledger, writer).await;
    hq.stop().await.unwrap();
}

/// A page of more changes than one slice (`sync::PULL_SLICE`) is applied whole, the cursor
/// moved by its last slice only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_applied_in_slices_holds_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let hq = LocalHq::start(
        "127.0.0.1:0".parse().unwrap(),
        &dir.path().join("hq.db"),
        ADMIN,
        |_| {},
    )
    .await
    .unwrap();
    let (status, body) = hq
        .admin_put("/v1/admin/stores/s1", serde_json::json!({"token": TOKEN}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let members = 3 * sync::PULL_SLICE + 7;
    for m in 0..members {
        let (status, body) = hq
            .admin_put(
                &format!("/v1/admin/members/m{m}"),
                serde_json::json!({"tier": "gold"}),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (ledger, writer) = open(&dir.path().join("ledger.db")).await;
    let stop_sync = CancellationToken::new();
    let task = tokio::spawn(sync::run(
        HqClient::new(&hq.url, "s1", TOKEN, None).unwrap(),
        ledger.clone(),
        Arc::new(Rules::default()),
        SyncSettings {
            push_batch: sync::PUSH_BATCH,
            pull_wait: Duration::ZERO,
        },
        Arc::new(SyncHealth::default()),
        stop_sync.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (held, cursor): (i64, String) = ledger
            .readers()
            .with(|c| {
                c.query_row(
                    "SELECT (SELECT COUNT(*) FROM members WHERE tier = 'gold'), cursor FROM sync_state",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .unwrap();
        if held == members as i64 && !cursor.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{held} of {members} members pulled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_sync.cancel();
    task.await.unwrap();
    stop(ledger, writer).await;
    hq.stop().await.unwrap();
}
