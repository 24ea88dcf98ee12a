//! The ledger schema as an ordered list of migrations, applied by `loyalty_sqlite_schema` (the
//! runner HQ's database uses too) and tracked in SQLite's `user_version`.

use rusqlite::Connection;

/// Each entry moves the schema one version up. Never edit a released entry: append.
pub const MIGRATIONS: &[&str] = &[
    // 1: members, cards, the event log with its outbox, balances, sales, QR nonces.
    r#"
    CREATE TABLE members (
        member_id     TEXT PRIMARY KEY,
        tier          TEXT,
        segments      TEXT NOT NULL DEFAULT '[]',
        qr_public_key TEXT,
        proximity_key TEXT,
        updated_at    TEXT NOT NULL
    );
    CREATE TABLE cards (
        card_number TEXT PRIMARY KEY,
        member_id   TEXT NOT NULL REFERENCES members(member_id) ON DELETE CASCADE
    );
    CREATE INDEX cards_by_member ON cards(member_id);
    CREATE TABLE events (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id        TEXT NOT NULL UNIQUE,
        idempotency_key TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,
        account         TEXT,
        lane            TEXT,
        points          INTEGER NOT NULL DEFAULT 0,
        payload         TEXT NOT NULL,
        response        TEXT NOT NULL,
        rule_version    TEXT,
        recorded_at     TEXT NOT NULL
    );
    CREATE INDEX events_by_account ON events(account);
    CREATE TABLE outbox (
        seq         INTEGER PRIMARY KEY REFERENCES events(seq),
        enqueued_at INTEGER NOT NULL
    );
    CREATE TABLE balances (
        account TEXT PRIMARY KEY,
        points  INTEGER NOT NULL CHECK (points >= 0),
        last_visit TEXT
    );
    CREATE TABLE sales (
        receipt_id      TEXT PRIMARY KEY,
        account         TEXT,
        total_cents     INTEGER NOT NULL,
        points_earned   INTEGER NOT NULL,
        refunded_cents  INTEGER NOT NULL DEFAULT 0,
        points_due_back INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE qr_nonces (
        nonce     TEXT PRIMARY KEY,
        member_id TEXT NOT NULL,
        seen_at   INTEGER NOT NULL
    );
    "#,
    // 2: fewer B-tree pages dirtied per event, since the commit's cost is the pages it writes to
    // the WAL. Sales are keyed by their event's seq (appended in order) and found through the
    // event's idempotency key instead of a second random-key index; the per-account index on
    // events gives way to per-account pending counters kept in the balance row the event
    // touches anyway.
    r#"
    DROP INDEX events_by_account;
    ALTER TABLE balances ADD COLUMN pending_points INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE balances ADD COLUMN pending_events INTEGER NOT NULL DEFAULT 0;
    UPDATE balances SET
        pending_points = (SELECT COALESCE(SUM(e.points), 0) FROM outbox o JOIN events e ON e.seq = o.seq WHERE e.account = balances.account),
        pending_events = (SELECT COUNT(*) FROM outbox o JOIN events e ON e.seq = o.seq WHERE e.account = balances.account);
    CREATE TABLE sales_by_seq (
        seq             INTEGER PRIMARY KEY REFERENCES events(seq),
        account         TEXT,
        total_cents     INTEGER NOT NULL,
        points_earned   INTEGER NOT NULL,
        refunded_cents  INTEGER NOT NULL DEFAULT 0,
        points_due_back INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO sales_by_seq (seq, account, total_cents, points_earned, refunded_cents, points_due_back)
        SELECT e.seq, s.account, s.total_cents, s.points_earned, s.refunded_cents, s.points_due_back
        FROM sales s JOIN events e ON e.idempotency_key = 'sale:' || s.receipt_id;
    DROP TABLE sales;
    ALTER TABLE sales_by_seq RENAME TO sales;
    "#,
    // 3: HQ sync. The outbox becomes the tail of the log after `sync_state.acked_seq` (events are
    // pushed in seq order and HQ answers with the highest seq it holds), which saves a page per
    // commit and makes "what is unsynced" one range. Balances lose their `points >= 0` CHECK:
    // HQ may report an overdraft made elsewhere, and the local no-overdraw rule lives in the
    // engine. Members pulled from HQ carry their offline spend allowance.
    r#"
    CREATE TABLE sync_state (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        acked_seq    INTEGER NOT NULL,
        cursor       TEXT NOT NULL DEFAULT '',
        skew_ms      INTEGER,
        last_push_at TEXT,
        last_pull_at TEXT
    );
    INSERT INTO sync_state (id, acked_seq) VALUES (1, COALESCE(
        (SELECT MIN(seq) - 1 FROM outbox),
        (SELECT MAX(seq) FROM events),
        0));
    DROP TABLE outbox;
    CREATE TABLE dead_letters (
        seq         INTEGER PRIMARY KEY REFERENCES events(seq),
        event_id    TEXT NOT NULL,
        reason      TEXT NOT NULL,
        rejected_at TEXT NOT NULL
    );
    CREATE TABLE balances_v3 (
        account           TEXT PRIMARY KEY,
        points            INTEGER NOT NULL,
        last_visit        TEXT,
        pending_points    INTEGER NOT NULL DEFAULT 0,
        pending_events    INTEGER NOT NULL DEFAULT 0,
        pending_spent     INTEGER NOT NULL DEFAULT 0,
        offline_allowance INTEGER
    );
    INSERT INTO balances_v3 (account, points, last_visit, pending_points, pending_events)
        SELECT account, points, last_visit, pending_points, pending_events FROM balances;
    UPDATE balances_v3 SET pending_spent = (SELECT COALESCE(-SUM(e.points), 0) FROM events e
        WHERE e.seq > (SELECT acked_seq FROM sync_state) AND e.kind = 'redemption' AND e.account = balances_v3.account);
    DROP TABLE balances;
    ALTER TABLE balances_v3 RENAME TO balances;
    CREATE TABLE campaigns (
        campaign_id TEXT PRIMARY KEY,
        version     INTEGER NOT NULL,
        body        TEXT NOT NULL,
        deleted     INTEGER NOT NULL DEFAULT 0
    );
    "#,
    // 4: location-triggered gifts and the visits that limit them. A visit lives here, not only
    // in the tracker's memory, so a restart mid-visit does not give a second welcome gift.
    r#"
    CREATE TABLE gifts (
        gift_id          TEXT PRIMARY KEY,
        seq              INTEGER NOT NULL REFERENCES events(seq),
        member_id        TEXT NOT NULL,
        campaign_id      TEXT NOT NULL,
        campaign_version INTEGER NOT NULL,
        gift             TEXT NOT NULL,
        zone             TEXT,
        issued_at        TEXT NOT NULL,
        local_day        TEXT NOT NULL,
        expires_at       TEXT NOT NULL,
        redeemed_at      TEXT,
        redemption_id    TEXT
    );
    CREATE INDEX gifts_by_member ON gifts(member_id, campaign_id, issued_at);
    CREATE INDEX gifts_by_day ON gifts(campaign_id, local_day);
    CREATE TABLE presence (
        member_id     TEXT PRIMARY KEY,
        visit_started TEXT NOT NULL,
        last_seen     TEXT NOT NULL
    );
    "#,
    // 5: when the member was last seen before the open visit began, so "we missed you" measures
    // the absence before this visit, not the door sensor that saw them a second ago.
    r#"
    ALTER TABLE presence ADD COLUMN seen_before_visit TEXT;
    "#,
    // 6: the ledger's identity (see ledger::identity), random at creation, and the record of
    // every re-base (`loyalty-agent rebase`): HQ takes a store's events from one ledger id, in
    // seq order.
    r#"
    CREATE TABLE ledger_meta (
        id                 INTEGER PRIMARY KEY CHECK (id = 1),
        ledger_id          TEXT NOT NULL,
        created_at         TEXT NOT NULL,
        previous_ledger_id TEXT,
        rebased_at         TEXT
    );
    INSERT INTO ledger_meta (id, ledger_id, created_at)
        VALUES (1, lower(hex(randomblob(16))), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    CREATE TABLE rebases (
        id                 INTEGER PRIMARY KEY,
        ledger_id          TEXT NOT NULL,
        previous_ledger_id TEXT NOT NULL,
        after_seq          INTEGER NOT NULL,
        hq_ledger_id       TEXT,
        hq_watermark       INTEGER NOT NULL,
        reason             TEXT NOT NULL,
        rebased_at         TEXT NOT NULL
    );
    "#,
    // 7: what the lane page greets a member by (HQ's profile, or the import).
    r#"
    ALTER TABLE members ADD COLUMN display_name TEXT;
    "#,
    // 8: a sale's basket lines, each with the points it earned and what refunds took back of it.
    r#"
    CREATE TABLE sale_lines (
        sale_seq          INTEGER NOT NULL REFERENCES sales(seq),
        line_no           INTEGER NOT NULL,
        sku               TEXT NOT NULL,
        category          TEXT NOT NULL,
        brand             TEXT,
        quantity          INTEGER NOT NULL,
        unit_cents        INTEGER NOT NULL,
        total_cents       INTEGER NOT NULL,
        points            INTEGER NOT NULL,
        refunded_quantity INTEGER NOT NULL DEFAULT 0,
        points_back       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (sale_seq, line_no)
    ) WITHOUT ROWID;
    "#,
    // 9: rewards the POS applies: a gift's reward, and every redemption's fate (the sale that
    // used it, or the void that gave it back).
    r#"
    ALTER TABLE gifts ADD COLUMN reward TEXT;
    CREATE TABLE redemptions (
        redemption_id TEXT PRIMARY KEY,
        member_id     TEXT NOT NULL,
        points        INTEGER NOT NULL,
        gift_id       TEXT,
        receipt_id    TEXT,
        voided_by     TEXT
    );
    INSERT INTO redemptions (redemption_id, member_id, points, gift_id)
        SELECT substr(idempotency_key, 8), account, -points, json_extract(payload, '$.gift_id')
        FROM events WHERE kind IN ('redemption', 'gift_redeemed') AND account IS NOT NULL;
    "#,
    // 10: two pages fewer per sale's commit (6 to 4), which is what a commit costs in the WAL.
    // `seq` stays the rowid but without AUTOINCREMENT: SQLite then gives MAX(seq) + 1, which is
    // the same number as long as nothing is deleted from the log, and the trigger makes sure
    // nothing ever is (HQ takes seqs in order, consecutive, each once), without the
    // `sqlite_sequence` row every insert rewrote. `event_id` loses its UNIQUE index: nothing
    // looks an event up by it here (a retry is found by `idempotency_key`, still UNIQUE), and
    // a UUIDv7 made by this process does not repeat; HQ keys its copy by it.
    r#"
    CREATE TABLE events_rebuilt (
        seq             INTEGER PRIMARY KEY,
        event_id        TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,
        account         TEXT,
        lane            TEXT,
        points          INTEGER NOT NULL DEFAULT 0,
        payload         TEXT NOT NULL,
        response        TEXT NOT NULL,
        rule_version    TEXT,
        recorded_at     TEXT NOT NULL
    );
    INSERT INTO events_rebuilt (seq, event_id, idempotency_key, kind, account, lane, points, payload, response, rule_version, recorded_at)
        SELECT seq, event_id, idempotency_key, kind, account, lane, points, payload, response, rule_version, recorded_at
        FROM events ORDER BY seq;
    DROP TABLE events;
    ALTER TABLE events_rebuilt RENAME TO events;
    CREATE TRIGGER events_append_only BEFORE DELETE ON events
    BEGIN
        SELECT RAISE(ABORT, 'the event log is append-only: a seq, once given, is never given again');
    END;
    "#,
];

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("the ledger is at schema version {found}, newer than this agent knows ({known}): upgrade the agent")]
    TooNew { found: usize, known: usize },
    #[error("cannot back the ledger up before migrating it: {0}")]
    Backup(String),
    #[error("migrating the ledger: {0}")]
    Schema(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings `conn` to the latest schema, each step in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    match loyalty_sqlite_schema::migrate(conn, MIGRATIONS) {
        Ok(_) => Ok(()),
        Err(loyalty_sqlite_schema::MigrateError::TooNew { found, known }) => {
            Err(MigrationError::TooNew { found, known })
        }
        Err(loyalty_sqlite_schema::MigrateError::Sqlite(e)) => Err(MigrationError::Sqlite(e)),
        Err(e) => Err(MigrationError::Schema(e.to_string())),
    }
}

/// Copies the ledger aside before a migration changes it, as `backups/ledger-v<N>-<UTC time>.db`
/// beside it: an upgrade whose new schema turns out wrong can be undone by putting the copy
/// back and reinstalling the old agent. Nothing to do for a new or current ledger.
pub fn backup_before_migrating(
    conn: &Connection,
    db_path: &std::path::Path,
) -> Result<Option<std::path::PathBuf>, MigrationError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current == 0 || current >= MIGRATIONS.len() {
        return Ok(None);
    }
    let dir = db_path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("backups");
    std::fs::create_dir_all(&dir)
        .map_err(|e| MigrationError::Backup(format!("{}: {e}", dir.display())))?;
    let file = dir.join(format!(
        "ledger-v{current}-{}.db",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    let target = file
        .to_str()
        .ok_or_else(|| MigrationError::Backup(format!("{} is not UTF-8", file.display())))?;
    // VACUUM INTO writes a consistent, compact copy (WAL included) without stopping readers.
    conn.execute("VACUUM INTO ?1", [target])?;
    Ok(Some(file))
}

/// Pragmas every connection sets; kept outside migrations because they are per connection.
pub fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_and_are_idempotent() {
        loyalty_sqlite_schema::check_fresh_then_again(MIGRATIONS.len(), migrate).unwrap();
    }

    #[test]
    fn version_2_keeps_sales_and_counts_pending_events_per_account() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1i64).unwrap();
        conn.execute_batch(
            "INSERT INTO events (event_id, idempotency_key, kind, account, lane, points, payload, response, recorded_at)
             VALUES ('e1', 'sale:R1', 'sale', 'M1', '1', 12, '{}', '{}', 't'),
                    ('e2', 'refund:F1', 'refund', 'M1', '1', -5, '{}', '{}', 't');
             INSERT INTO outbox (seq, enqueued_at) VALUES (2, 0);
             INSERT INTO balances (account, points) VALUES ('M1', 7);
             INSERT INTO sales (receipt_id, account, total_cents, points_earned, refunded_cents, points_due_back)
             VALUES ('R1', 'M1', 1250, 12, 500, 5);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let sale: (i64, i64, i64) = conn
            .query_row(
                "SELECT seq, points_earned, refunded_cents FROM sales",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            sale,
            (1, 12, 500),
            "the sale is found under its event's seq"
        );
        let pending: (i64, i64, i64) = conn
            .query_row(
                "SELECT points, pending_points, pending_events FROM balances WHERE account = 'M1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            pending,
            (7, -5, 1),
            "only the refund was still in the outbox"
        );
    }

    #[test]
    fn a_newer_ledger_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99i64).unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(MigrationError::TooNew { .. })
        ));
    }
}
