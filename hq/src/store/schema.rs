//! Schema migrations, applied in order and tracked in `PRAGMA user_version`.
//!
//! Indexes are few on purpose: ingestion writes every event once into `events` and touches one
//! `accounts` row; everything else is keyed lookups.

use rusqlite::Connection;

use super::StoreError;

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a shipped entry: append.
pub const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE stores (
        store_id  TEXT PRIMARY KEY,
        token     TEXT NOT NULL UNIQUE,
        watermark INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE members (
        member_id     TEXT PRIMARY KEY,
        tier          TEXT,
        segments      TEXT NOT NULL DEFAULT '[]',
        qr_public_key TEXT,
        proximity_key TEXT,
        change_seq    INTEGER NOT NULL
    );
    CREATE INDEX members_by_change ON members(change_seq);
    CREATE TABLE cards (
        card_number TEXT PRIMARY KEY,
        member_id   TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX cards_by_member ON cards(member_id);
    CREATE TABLE campaigns (
        campaign_id TEXT PRIMARY KEY,
        version     INTEGER NOT NULL,
        body        TEXT NOT NULL,
        deleted     INTEGER NOT NULL DEFAULT 0,
        change_seq  INTEGER NOT NULL
    );
    CREATE INDEX campaigns_by_change ON campaigns(change_seq);
    -- Every fact, once. UUIDv7 ids arrive nearly sorted, so the key B-tree grows at its edge.
    CREATE TABLE events (
        event_id        TEXT PRIMARY KEY,
        store_id        TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        account         TEXT,
        lane            TEXT,
        points          INTEGER NOT NULL,
        payload         TEXT NOT NULL,
        rule_version    TEXT,
        recorded_at     TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        -- A refund's sale.
        link_event_id   TEXT
    ) WITHOUT ROWID;
    -- Sum and count of events per account, kept in the transaction that stores the events.
    CREATE TABLE accounts (
        account TEXT PRIMARY KEY,
        balance INTEGER NOT NULL,
        events  INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Sales by receipt, so a refund finds the sale it reverses.
    CREATE TABLE sales (
        store_id   TEXT NOT NULL,
        receipt_id TEXT NOT NULL,
        event_id   TEXT NOT NULL,
        PRIMARY KEY (store_id, receipt_id)
    ) WITHOUT ROWID;
    -- The once-per-member gift HQ keeps: the earliest by (recorded_at, event_id).
    CREATE TABLE gifts_kept (
        member_id   TEXT NOT NULL,
        campaign_id TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        store_id    TEXT NOT NULL,
        PRIMARY KEY (member_id, campaign_id)
    ) WITHOUT ROWID;
    CREATE TABLE gift_redemptions (
        gift_id    TEXT PRIMARY KEY,
        member_id  TEXT,
        store_id   TEXT NOT NULL,
        event_id   TEXT NOT NULL,
        change_seq INTEGER NOT NULL
    );
    CREATE INDEX gift_redemptions_by_change ON gift_redemptions(change_seq);
    CREATE TABLE flags (
        id         INTEGER PRIMARY KEY,
        flag       TEXT NOT NULL,
        event_id   TEXT NOT NULL,
        store_id   TEXT NOT NULL,
        member     TEXT,
        reason     TEXT NOT NULL,
        flagged_at TEXT NOT NULL
    );
    CREATE INDEX flags_by_member ON flags(member);
    CREATE TABLE rejections (
        event_id    TEXT NOT NULL,
        store_id    TEXT NOT NULL,
        reason      TEXT NOT NULL,
        event       TEXT NOT NULL,
        rejected_at TEXT NOT NULL,
        PRIMARY KEY (store_id, event_id)
    );
"#,
    // 2: which ledger each store's events come from (protocol::ledger), and the record of every
    // binding and re-base. A store that pushed before this version binds the ledger of its next
    // push. Cards take the canonical text the scanners send (protocol::card): uppercase, UPC-A
    // with a leading 0; a card held twice in two spellings keeps the later row.
    r#"
    ALTER TABLE stores ADD COLUMN ledger_id TEXT;
    ALTER TABLE stores ADD COLUMN previous_ledger_id TEXT;
    CREATE TABLE ledger_bindings (
        id                 INTEGER PRIMARY KEY,
        store_id           TEXT NOT NULL,
        ledger_id          TEXT NOT NULL,
        after_seq          INTEGER NOT NULL,
        previous_ledger_id TEXT,
        previous_watermark INTEGER NOT NULL,
        reason             TEXT NOT NULL,
        bound_at           TEXT NOT NULL
    );
    UPDATE OR REPLACE cards SET card_number = upper(trim(card_number));
    UPDATE OR REPLACE cards SET card_number = '0' || card_number
        WHERE length(card_number) = 12 AND card_number NOT GLOB '*[^0-9]*';
"#,
    // 3: what a sale's refunds add up to, so a refund past the sale's total (a restored store
    // ledger that forgot an earlier refund) is flagged, not silently kept.
    r#"
    ALTER TABLE sales ADD COLUMN total_cents INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sales ADD COLUMN refunded_cents INTEGER NOT NULL DEFAULT 0;
    UPDATE sales SET total_cents = COALESCE(
        (SELECT json_extract(payload, '$.total_cents') FROM events WHERE events.event_id = sales.event_id), 0);
    UPDATE sales SET refunded_cents = COALESCE(
        (SELECT SUM(json_extract(payload, '$.total_cents')) FROM events
         WHERE events.link_event_id = sales.event_id AND events.kind = 'refund'), 0);
"#,
    // 4: what members see (issue 13). `member_gifts` is each gift's state as HQ knows it;
    // `member_feed` the numbered events a member's app and the webhooks are told of, written in
    // the ingesting transaction; `webhook_queue` the durable delivery queue (one row per event
    // and endpoint), `webhook_attempts` its log; app keys enrolled from a browser, one-time
    // enrolment codes (hashed) and the nonces of app signatures already used.
    r#"
    ALTER TABLE members ADD COLUMN display_name TEXT;
    CREATE TABLE member_gifts (
        gift_id     TEXT PRIMARY KEY,
        member_id   TEXT NOT NULL,
        store_id    TEXT NOT NULL,
        campaign_id TEXT NOT NULL,
        gift        TEXT,
        issued_at   TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'open',
        closed_at   TEXT
    );
    CREATE INDEX member_gifts_by_member ON member_gifts(member_id, issued_at);
    CREATE INDEX member_gifts_open_by_expiry ON member_gifts(expires_at) WHERE state = 'open';
    CREATE TABLE member_feed (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        member_id  TEXT NOT NULL,
        type       TEXT NOT NULL,
        body       TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX member_feed_by_member ON member_feed(member_id, id);
    CREATE TABLE webhook_endpoints (
        endpoint_id TEXT PRIMARY KEY,
        url         TEXT NOT NULL,
        secret      TEXT NOT NULL,
        event_types TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE webhook_queue (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        endpoint_id     TEXT NOT NULL,
        feed_id         INTEGER NOT NULL,
        member_id       TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        dead_after_ms   INTEGER NOT NULL,
        last_error      TEXT,
        done_ms         INTEGER
    );
    CREATE INDEX webhook_queue_pending ON webhook_queue(endpoint_id, member_id, id) WHERE state = 'pending';
    -- Only a member's head message is due at a time; the others wait at WAITING (i64::MAX).
    CREATE INDEX webhook_queue_due ON webhook_queue(next_attempt_ms) WHERE state = 'pending';
    CREATE INDEX webhook_queue_by_endpoint ON webhook_queue(endpoint_id, state, id);
    CREATE TABLE webhook_attempts (
        id          INTEGER PRIMARY KEY,
        message_id  INTEGER NOT NULL,
        at_ms       INTEGER NOT NULL,
        status      INTEGER,
        error       TEXT,
        duration_ms INTEGER NOT NULL
    );
    CREATE INDEX webhook_attempts_by_message ON webhook_attempts(message_id);
    CREATE TABLE app_keys (
        public_key TEXT PRIMARY KEY,
        member_id  TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX app_keys_by_member ON app_keys(member_id);
    CREATE TABLE app_enrolments (
        code_hash  TEXT PRIMARY KEY,
        member_id  TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        used_ms    INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE app_nonces (
        member_id  TEXT NOT NULL,
        nonce      TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (member_id, nonce)
    ) WITHOUT ROWID;
"#,
    // 5: store tokens at rest are their SHA-256 (lowercase hex), hashed in place; HQ compares
    // the hash of a presented token (crate::token). The column keeps its UNIQUE index.
    r#"
    ALTER TABLE stores RENAME COLUMN token TO token_sha256;
    UPDATE stores SET token_sha256 = loyalty_sha256_hex(token_sha256);
"#,
    // 6: the operator's view. Each store: its last push and pull, the agent version it last
    // said, and the events stored from it on HQ's current UTC day (a counter reset by the
    // first push of a new day, so no index on events is needed to count them).
    r#"
    ALTER TABLE stores ADD COLUMN last_push_at TEXT;
    ALTER TABLE stores ADD COLUMN last_pull_at TEXT;
    ALTER TABLE stores ADD COLUMN agent_version TEXT;
    ALTER TABLE stores ADD COLUMN events_day TEXT;
    ALTER TABLE stores ADD COLUMN events_on_day INTEGER NOT NULL DEFAULT 0;
    -- A member's history, newest first (GET /v1/admin/members/{id}/events): the one index
    -- ingestion pays for the operator's view.
    CREATE INDEX events_by_account ON events(account, recorded_at) WHERE account IS NOT NULL;
"#,
];

/// `loyalty_sha256_hex(text)`: what migration 5 hashes the stored tokens with, the same
/// digest as [`crate::token::TokenHash`]. Registered on the connection only to migrate.
fn register_sha256(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "loyalty_sha256_hex",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text: String = ctx.get(0)?;
            Ok(crate::token::TokenHash::of(&text).to_hex())
        },
    )
}

/// Brings the database to the latest schema, one transaction per migration
/// (`loyalty_sqlite_schema`, the runner the agent's ledger uses too).
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    use loyalty_sqlite_schema::MigrateError;
    register_sha256(conn)?;
    match loyalty_sqlite_schema::migrate(conn, MIGRATIONS) {
        Ok(applied) => {
            if !applied.is_empty() {
                tracing::info!(
                    from = applied.start,
                    to = applied.end,
                    "Migrated HQ schema."
                );
            }
            Ok(())
        }
        Err(MigrateError::TooNew { found, known }) => Err(StoreError::SchemaTooNew {
            found: i64::try_from(found).unwrap_or(i64::MAX),
            known: i64::try_from(known).unwrap_or(i64::MAX),
        }),
        Err(MigrateError::Sqlite(e)) => Err(StoreError::Sqlite(e)),
        Err(e) => Err(StoreError::Migration(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_and_reapply() {
        loyalty_sqlite_schema::check_fresh_then_again(MIGRATIONS.len(), migrate).unwrap();
    }

    #[test]
    fn plaintext_store_tokens_are_hashed_in_place() {
        let mut conn = Connection::open_in_memory().unwrap();
        register_sha256(&conn).unwrap();
        loyalty_sqlite_schema::migrate(&mut conn, &MIGRATIONS[..4]).unwrap();
        conn.execute_batch(
            "INSERT INTO stores (store_id, token, watermark) VALUES ('s1', 'abc', 7), ('s2', 's2-secret', 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let held: Vec<(String, String, i64)> = conn
            .prepare("SELECT store_id, token_sha256, watermark FROM stores ORDER BY store_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            held,
            vec![
                (
                    "s1".to_string(),
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
                    7
                ),
                (
                    "s2".to_string(),
                    crate::token::TokenHash::of("s2-secret").to_hex(),
                    0
                ),
            ]
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
