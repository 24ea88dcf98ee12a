//! Schema 10 (issue 17): the event log rebuilt without AUTOINCREMENT and without the UNIQUE
//! index on `event_id`. A ledger the previous agent wrote (schema 6) keeps every event with its
//! seq and id, a retried sale still gets its first answer, new events continue the seqs with no
//! gap, and the log refuses deletes, so a seq once given is never given again.

use chrono::Utc;
use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::schema::{self, MIGRATIONS};
use loyalty_agent::ledger::{Identity, Ledger, OpenOptions, SaleOutcome, SaleRequest};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Arc;

const CARD: &str = "4006381333931";
const OTHER_CARD: &str = "5901234123457";

/// Every column of every event, in seq order.
type EventRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
    String,
    Option<String>,
    String,
);

fn events(conn: &Connection) -> Vec<EventRow> {
    let mut stmt = conn
        .prepare(
            "SELECT seq, event_id, idempotency_key, kind, account, lane, points, payload, response, rule_version, recorded_at
             FROM events ORDER BY seq",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// A ledger as the schema 6 agent left it: 40 sales of member m1 by card (the first 30
/// acknowledged by HQ), a refund, a gift, a dead letter.
fn schema_6_ledger(path: &Path) -> Vec<EventRow> {
    let mut conn = Connection::open(path).unwrap();
    schema::configure(&conn).unwrap();
    loyalty_sqlite_schema::migrate(&mut conn, &MIGRATIONS[..6]).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(&format!(
        "INSERT INTO members (member_id, updated_at) VALUES ('m1', 't');
         INSERT INTO cards (card_number, member_id) VALUES ('{CARD}', 'm1');"
    ))
    .unwrap();
    let at = "2026-11-01T10:00:00.000Z";
    let mut balance = 0;
    for i in 1..=40i64 {
        balance += i;
        let receipt = format!("R-{i}");
        let answer = SaleOutcome {
            receipt_id: receipt.clone(),
            member_id: Some("m1".into()),
            card: Some(CARD.into()),
            points_earned: i,
            balance: Some(balance),
            gifts: vec![],
            rule_version: None,
            lines: vec![],
        };
        // As the schema 6 writer did: the seq comes from AUTOINCREMENT.
        tx.execute(
            "INSERT INTO events (event_id, idempotency_key, kind, account, lane, points, payload, response, rule_version, recorded_at)
             VALUES (?1, ?2, 'sale', 'm1', '1', ?3, ?4, ?5, 'default', ?6)",
            params![
                uuid::Uuid::now_v7().to_string(),
                format!("sale:{receipt}"),
                i,
                format!(r#"{{"receipt_id":"{receipt}","total_cents":{},"card":"{CARD}","member_id":"m1"}}"#, i * 100),
                serde_json::to_string(&answer).unwrap(),
                at
            ],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO sales (seq, account, total_cents, points_earned) VALUES (?1, 'm1', ?2, ?3)",
            params![tx.last_insert_rowid(), i * 100, i],
        )
        .unwrap();
    }
    tx.execute_batch(&format!(
        "INSERT INTO events (event_id, idempotency_key, kind, account, lane, points, payload, response, recorded_at)
         VALUES ('{}', 'refund:F-1', 'refund', 'm1', '1', -1, '{{}}', '{{}}', '{at}');
         INSERT INTO events (event_id, idempotency_key, kind, account, points, payload, response, recorded_at)
         VALUES ('{}', 'gift:G-1', 'gift', 'm1', 0, '{{}}', '{{}}', '{at}');
         INSERT INTO gifts (gift_id, seq, member_id, campaign_id, campaign_version, gift, issued_at, local_day, expires_at)
         VALUES ('G-1', 42, 'm1', 'welcome', 1, 'Free coffee', '{at}', '2026-11-01', '2099-01-01T00:00:00.000Z');
         INSERT INTO dead_letters (seq, event_id, reason, rejected_at)
         SELECT seq, event_id, 'bench', '{at}' FROM events WHERE seq = 3;
         UPDATE sync_state SET acked_seq = 30;
         INSERT INTO balances (account, points, pending_points, pending_events)
         VALUES ('m1', {}, {}, 12);",
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        balance - 1,
        (31..=40).sum::<i64>() - 1,
    ))
    .unwrap();
    tx.commit().unwrap();
    let autoincrement: i64 = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        autoincrement, 42,
        "a schema 6 log numbers with AUTOINCREMENT"
    );
    events(&conn)
}

fn sale(receipt: &str, cents: i64, card: &str) -> SaleRequest {
    SaleRequest {
        lane: "1".into(),
        receipt_id: receipt.into(),
        total_cents: cents,
        lines: Vec::new(),
        redemption_ids: Vec::new(),
        identity: Some(Identity::Card(card.into())),
        at: Utc::now(),
    }
}

async fn stop(ledger: Ledger, writer: std::thread::JoinHandle<()>) {
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_schema_6_ledger_keeps_every_event_its_seq_and_its_first_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let before = schema_6_ledger(&path);
    assert_eq!(before.len(), 42);

    let (ledger, writer) = Ledger::open(&path, Arc::new(Rules::default())).unwrap();
    let read = Connection::open(&path).unwrap();
    assert_eq!(events(&read), before, "every event, column for column");

    // A retry of an old receipt, even with another card and total, answers what was recorded.
    let again = ledger
        .record_sale(sale("R-7", 99_999, OTHER_CARD))
        .await
        .unwrap();
    assert!(again.retry);
    assert_eq!(again.answer.points_earned, 7);
    assert_eq!(again.answer.member_id.as_deref(), Some("m1"));
    assert_eq!(events(&read).len(), 42, "a retry writes nothing");

    // New events follow on: 43, 44, with no gap for HQ to refuse.
    let new = ledger
        .record_sale(sale("R-new-1", 1000, CARD))
        .await
        .unwrap();
    assert!(!new.retry);
    ledger.sale(sale("R-new-2", 500, CARD)).await.unwrap();
    let outbox = ledger.readers().unsynced(100).unwrap();
    assert_eq!(outbox.after_seq, 30);
    let seqs: Vec<i64> = outbox.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (31..=44).collect::<Vec<_>>());
    for (pushed, old) in outbox.events.iter().zip(&before[30..]) {
        assert_eq!(
            (pushed.seq, &pushed.event_id),
            (old.0, &old.1),
            "the outbox sends the old events under their old ids"
        );
    }
    let status = ledger.readers().sync_status().unwrap();
    assert_eq!((status.last_seq, status.depth), (44, 14));
    stop(ledger, writer).await;

    // The log is append-only: the last seq cannot be taken back and given again.
    let (conn, _) =
        loyalty_agent::ledger::writer_connection(&path, OpenOptions::default()).unwrap();
    let refused = conn.execute("DELETE FROM events WHERE seq = 44", []);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("append-only")),
        "{refused:?}"
    );
    let table: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!table.contains("AUTOINCREMENT"), "{table}");
    let unique_indexes: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_list('events') WHERE \"unique\" = 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(unique_indexes.len(), 1, "{unique_indexes:?}");
    let indexed: String = conn
        .query_row(
            "SELECT name FROM pragma_index_info(?1)",
            [&unique_indexes[0]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, "idempotency_key");
    let dangling: i64 = conn
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        dangling, 0,
        "sales, gifts and dead letters still point at their events"
    );
    let enforced: bool = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert!(enforced);
    drop(conn);

    // After a restart the next sale is 45.
    let (ledger, writer) = Ledger::open(&path, Arc::new(Rules::default())).unwrap();
    ledger.sale(sale("R-new-3", 500, CARD)).await.unwrap();
    assert_eq!(ledger.readers().sync_status().unwrap().last_seq, 45);
    stop(ledger, writer).await;
}
