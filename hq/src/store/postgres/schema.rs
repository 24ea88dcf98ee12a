//! PostgreSQL's schema: versioned migrations in `schema_migrations`, applied in order, each in
//! its own transaction, under an advisory lock so HQ processes starting together migrate once.
//!
//! Migration 1 is SQLite's schema at its version 5 in PostgreSQL's types: BIGINT for every
//! integer (the values HQ binds are 64-bit), BIGSERIAL where SQLite numbers rows itself, and the
//! sequence `change_seq` for the stores' changes feed.

use deadpool_postgres::Object;

use crate::store::StoreError;

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a shipped entry: append.
pub const MIGRATIONS: &[&str] = &[
    r#"
    CREATE SEQUENCE change_seq;
    CREATE TABLE stores (
        store_id           TEXT PRIMARY KEY,
        token_sha256       TEXT NOT NULL UNIQUE,
        watermark          BIGINT NOT NULL DEFAULT 0,
        ledger_id          TEXT,
        previous_ledger_id TEXT
    );
    CREATE TABLE members (
        member_id     TEXT PRIMARY KEY,
        tier          TEXT,
        segments      TEXT NOT NULL DEFAULT '[]',
        qr_public_key TEXT,
        proximity_key TEXT,
        change_seq    BIGINT NOT NULL,
        display_name  TEXT
    );
    CREATE INDEX members_by_change ON members(change_seq);
    CREATE TABLE cards (
        card_number TEXT PRIMARY KEY,
        member_id   TEXT NOT NULL
    );
    CREATE INDEX cards_by_member ON cards(member_id);
    CREATE TABLE campaigns (
        campaign_id TEXT PRIMARY KEY,
        version     BIGINT NOT NULL,
        body        TEXT NOT NULL,
        deleted     BIGINT NOT NULL DEFAULT 0,
        change_seq  BIGINT NOT NULL
    );
    CREATE INDEX campaigns_by_change ON campaigns(change_seq);
    CREATE TABLE events (
        event_id        TEXT PRIMARY KEY,
        store_id        TEXT NOT NULL,
        seq             BIGINT NOT NULL,
        kind            TEXT NOT NULL,
        account         TEXT,
        lane            TEXT,
        points          BIGINT NOT NULL,
        payload         TEXT NOT NULL,
        rule_version    TEXT,
        recorded_at     TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        link_event_id   TEXT
    );
    CREATE TABLE accounts (
        account TEXT PRIMARY KEY,
        balance BIGINT NOT NULL,
        events  BIGINT NOT NULL
    );
    CREATE TABLE sales (
        store_id       TEXT NOT NULL,
        receipt_id     TEXT NOT NULL,
        event_id       TEXT NOT NULL,
        total_cents    BIGINT NOT NULL DEFAULT 0,
        refunded_cents BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (store_id, receipt_id)
    );
    CREATE TABLE gifts_kept (
        member_id   TEXT NOT NULL,
        campaign_id TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        store_id    TEXT NOT NULL,
        PRIMARY KEY (member_id, campaign_id)
    );
    CREATE TABLE gift_redemptions (
        gift_id    TEXT PRIMARY KEY,
        member_id  TEXT,
        store_id   TEXT NOT NULL,
        event_id   TEXT NOT NULL,
        change_seq BIGINT NOT NULL
    );
    CREATE INDEX gift_redemptions_by_change ON gift_redemptions(change_seq);
    CREATE TABLE flags (
        id         BIGSERIAL PRIMARY KEY,
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
    CREATE TABLE ledger_bindings (
        id                 BIGSERIAL PRIMARY KEY,
        store_id           TEXT NOT NULL,
        ledger_id          TEXT NOT NULL,
        after_seq          BIGINT NOT NULL,
        previous_ledger_id TEXT,
        previous_watermark BIGINT NOT NULL,
        reason             TEXT NOT NULL,
        bound_at           TEXT NOT NULL
    );
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
        id         BIGSERIAL PRIMARY KEY,
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
        id              BIGSERIAL PRIMARY KEY,
        endpoint_id     TEXT NOT NULL,
        feed_id         BIGINT NOT NULL,
        member_id       TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending',
        attempts        BIGINT NOT NULL DEFAULT 0,
        next_attempt_ms BIGINT NOT NULL,
        dead_after_ms   BIGINT NOT NULL,
        last_error      TEXT,
        done_ms         BIGINT
    );
    CREATE INDEX webhook_queue_pending ON webhook_queue(endpoint_id, member_id, id) WHERE state = 'pending';
    CREATE INDEX webhook_queue_due ON webhook_queue(next_attempt_ms) WHERE state = 'pending';
    CREATE INDEX webhook_queue_by_endpoint ON webhook_queue(endpoint_id, state, id);
    CREATE TABLE webhook_attempts (
        id          BIGSERIAL PRIMARY KEY,
        message_id  BIGINT NOT NULL,
        at_ms       BIGINT NOT NULL,
        status      BIGINT,
        error       TEXT,
        duration_ms BIGINT NOT NULL
    );
    CREATE INDEX webhook_attempts_by_message ON webhook_attempts(message_id);
    CREATE TABLE app_keys (
        id         BIGSERIAL UNIQUE,
        public_key TEXT PRIMARY KEY,
        member_id  TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX app_keys_by_member ON app_keys(member_id);
    CREATE TABLE app_enrolments (
        code_hash  TEXT PRIMARY KEY,
        member_id  TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        used_ms    BIGINT
    );
    CREATE TABLE app_nonces (
        member_id  TEXT NOT NULL,
        nonce      TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        PRIMARY KEY (member_id, nonce)
    );
"#,
    // 2: SQLite's migration 6, the operator's view. Each store: its last push and pull, the
    // agent version it last said, and the events stored from it on HQ's current UTC day (a
    // counter reset by the first push of a new day, so no index on events is needed to count
    // them); the index a member's history reads, newest first.
    r#"
    ALTER TABLE stores ADD COLUMN last_push_at TEXT;
    ALTER TABLE stores ADD COLUMN last_pull_at TEXT;
    ALTER TABLE stores ADD COLUMN agent_version TEXT;
    ALTER TABLE stores ADD COLUMN events_day TEXT;
    ALTER TABLE stores ADD COLUMN events_on_day BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX events_by_account ON events(account, recorded_at) WHERE account IS NOT NULL;
"#,
];

/// Advisory lock key of the migration runner ("LOYALMIG").
const MIGRATION_LOCK: i64 = 0x4c4f_5941_4c4d_4947;

/// Brings the database to the latest schema.
pub async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client).await;
    // Released whatever happened: a failed migration must not hold every other HQ back.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked?;
    Ok(())
}

async fn apply(client: &mut Object) -> Result<(), StoreError> {
    let found: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        let tx = client.transaction().await?;
        tx.batch_execute(migration).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(to = version, "Migrated HQ's PostgreSQL schema.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, PgStore};

    /// On PostgreSQL runs only (`LOYALTY_HQ_TEST_BACKEND=postgres`, as scripts/test.sh does).
    #[test]
    fn migrations_apply_once_and_a_newer_schema_is_refused() {
        if !loyalty_sim::pg::tests_use_postgres() {
            return;
        }
        let cluster = loyalty_sim::pg::shared().unwrap();
        let url = cluster.create_database().unwrap();
        let allowance = crate::allowance::AllowancePolicy::default();
        drop(PgStore::connect(&url, allowance).unwrap());
        // A second HQ on the same database finds it migrated and changes nothing.
        drop(PgStore::connect(&url, allowance).unwrap());
        let versions = cluster
            .psql(
                &url,
                "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations",
            )
            .unwrap();
        let all: Vec<String> = (1..=MIGRATIONS.len()).map(|v| v.to_string()).collect();
        assert_eq!(versions.trim(), all.join(","));
        cluster
            .psql(&url, "INSERT INTO schema_migrations (version) VALUES (99)")
            .unwrap();
        assert!(matches!(
            Db::connect(&url, allowance),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
