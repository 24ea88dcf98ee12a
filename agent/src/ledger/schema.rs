//! The ledger schema as an ordered list of migrations, tracked in SQLite's `user_version`.
//!
//! rusqlite_migration would do this, but its releases pin another rusqlite (and so a second
//! bundled SQLite) than the 0.41 our registry resolves; these few lines do the same job.

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
];

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("the ledger is at schema version {found}, newer than this agent knows ({known}): upgrade the agent")]
    TooNew { found: usize, known: usize },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings `conn` to the latest schema, each step in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(MigrationError::TooNew {
            found: current,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
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
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
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
