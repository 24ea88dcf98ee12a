//! [`SqliteStore`]: one writer connection behind a mutex, a small pool of reader connections.
//!
//! WAL lets readers (changes pages, admin reads, token checks) run beside the writer on their
//! own snapshots. `synchronous=FULL`: a batch HQ acknowledged survives a power cut, which is
//! what lets the agent drop it from its outbox.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use loyalty_protocol::{ChangesPage, LedgerBinding, LedgerState};
use rusqlite::Connection;

use super::plausibility::Plausibility;
use super::writer::Writer;
use super::{
    admin, app, changes, feed, history, ingest, ledgers, operator, schema, webhooks, EventPosition,
    FeedPosted, HistoryEvent, IngestResult, MemberInput, MemberView, Push, Reconciliation,
    ReconciliationFilter, Store, StoreError, StoreView,
};
use crate::allowance::AllowancePolicy;
use crate::token::TokenHash;

/// Idle reader connections kept open; more are opened on demand and closed after use.
const IDLE_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    allowance: AllowancePolicy,
    plausibility: Plausibility,
    /// How long a webhook message is retried before it is a dead letter.
    dead_after_ms: i64,
}

/// hq.toml `[webhooks] dead_after_secs`'s default: a day.
pub const DEFAULT_DEAD_AFTER_MS: i64 = 24 * 3600 * 1000;

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // A bounded page cache (32 MiB): memory must not grow with the backlog being ingested.
    conn.pragma_update(None, "cache_size", -32_768)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path, allowance: AllowancePolicy) -> Result<Self, StoreError> {
        let mut conn = open_conn(path)?;
        schema::migrate(&mut conn)?;
        let last_change = changes::latest_change(&conn)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(Writer { conn, last_change }),
            readers: Mutex::new(Vec::new()),
            allowance,
            plausibility: Plausibility::default(),
            dead_after_ms: DEFAULT_DEAD_AFTER_MS,
        })
    }

    /// How long a webhook message is retried before it goes dead (`[webhooks]`).
    pub fn with_dead_after(mut self, dead_after: std::time::Duration) -> Self {
        self.dead_after_ms = i64::try_from(dead_after.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// The bounds beyond which HQ flags an event as implausible (hq.toml `[plausibility]`).
    pub fn with_plausibility(mut self, plausibility: Plausibility) -> Self {
        self.plausibility = plausibility;
        self
    }

    fn writer(&self) -> Result<MutexGuard<'_, Writer>, StoreError> {
        self.writer.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` on a reader connection, returned to the pool afterwards.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(|_| StoreError::Poisoned)?.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => open_conn(&self.path)?,
        };
        let out = f(&mut conn);
        let mut pool = self.readers.lock().map_err(|_| StoreError::Poisoned)?;
        if pool.len() < IDLE_READERS {
            pool.push(conn);
        }
        out
    }

    /// Every account whose stored balance differs from the sum of its events' points, as
    /// (account, stored, summed). Empty when the invariant holds; for tests and `doctor`-like
    /// checks, it scans every event.
    pub fn balance_drift(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        self.read(admin::balance_drift)
    }

    /// Every account's stored balance, sorted by account.
    pub fn account_balances(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(admin::account_balances)
    }
}

impl Store for SqliteStore {
    fn put_store(&self, store_id: &str, token: &TokenHash) -> Result<(), StoreError> {
        admin::put_store(&self.writer()?.conn, store_id, token)
    }

    fn store_token(&self, store_id: &str) -> Result<Option<TokenHash>, StoreError> {
        self.read(|conn| admin::store_token(conn, store_id))
    }

    fn store_for_token(&self, token: &TokenHash) -> Result<Option<String>, StoreError> {
        self.read(|conn| admin::store_for_token(conn, token))
    }

    fn put_member(&self, member_id: &str, member: &MemberInput) -> Result<(), StoreError> {
        admin::put_member(&mut *self.writer()?, member_id, member)
    }

    fn import_members(&self, members: &[(String, MemberInput)]) -> Result<(), StoreError> {
        admin::import_members(&mut *self.writer()?, members)
    }

    fn member(&self, member_id: &str) -> Result<Option<MemberView>, StoreError> {
        self.read(|conn| admin::member(conn, member_id))
    }

    fn put_campaign(&self, campaign_id: &str, body: &serde_json::Value) -> Result<i64, StoreError> {
        admin::put_campaign(&mut *self.writer()?, campaign_id, body)
    }

    fn delete_campaign(&self, campaign_id: &str) -> Result<Option<i64>, StoreError> {
        admin::delete_campaign(&mut *self.writer()?, campaign_id)
    }

    fn ingest(&self, store_id: &str, push: Push) -> Result<IngestResult, StoreError> {
        ingest::ingest(
            &mut *self.writer()?,
            &self.plausibility,
            self.dead_after_ms,
            store_id,
            push,
        )
    }

    fn ledger(&self, store_id: &str) -> Result<LedgerState, StoreError> {
        self.read(|conn| ledgers::state(conn, store_id))
    }

    fn rebind_ledger(
        &self,
        store_id: &str,
        binding: &LedgerBinding,
    ) -> Result<LedgerState, StoreError> {
        let mut w = self.writer()?;
        let tx = w.conn.transaction()?;
        let state = ledgers::rebind(&tx, store_id, binding, &crate::clock::now())?;
        tx.commit()?;
        Ok(state)
    }

    fn changes(
        &self,
        store_id: &str,
        cursor: i64,
        limit: usize,
    ) -> Result<ChangesPage, StoreError> {
        let policy = self.allowance;
        self.read(|conn| changes::page(conn, &policy, store_id, cursor, limit))
    }

    fn reconciliation(&self, filter: &ReconciliationFilter) -> Result<Reconciliation, StoreError> {
        self.read(|conn| admin::reconciliation(conn, filter))
    }

    fn member_events(
        &self,
        member_id: &str,
        before: Option<&EventPosition>,
        limit: usize,
    ) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
        self.read(|conn| history::member_events(conn, member_id, before, limit))
    }

    fn note_pull(
        &self,
        store_id: &str,
        at: &str,
        agent_version: Option<&str>,
    ) -> Result<(), StoreError> {
        operator::note_pull(&self.writer()?.conn, store_id, at, agent_version)
    }

    fn stores(&self, now: &str) -> Result<Vec<StoreView>, StoreError> {
        self.read(|conn| operator::stores(conn, now))
    }

    fn app_profile(&self, member_id: &str) -> Result<Option<app::AppProfile>, StoreError> {
        self.read(|conn| app::profile(conn, member_id))
    }

    fn app_gifts(&self, member_id: &str) -> Result<Vec<app::AppGift>, StoreError> {
        self.read(|conn| app::gifts(conn, member_id))
    }

    fn app_keys(&self, member_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.read(|conn| app::keys(conn, member_id))
    }

    fn use_app_nonce(
        &self,
        member_id: &str,
        nonce: &str,
        expires_ms: i64,
    ) -> Result<bool, StoreError> {
        app::use_nonce(
            &self.writer()?.conn,
            member_id,
            nonce,
            expires_ms,
            feed::now_ms(),
        )
    }

    fn create_enrolment(
        &self,
        member_id: &str,
        code_hash: &str,
        expires_ms: i64,
    ) -> Result<bool, StoreError> {
        app::create_enrolment(&self.writer()?.conn, member_id, code_hash, expires_ms)
    }

    fn enrol(
        &self,
        code_hash: &str,
        public_key: &str,
    ) -> Result<Result<String, app::EnrolRefusal>, StoreError> {
        let mut w = self.writer()?;
        let tx = w.conn.transaction()?;
        let out = app::enrol(
            &tx,
            code_hash,
            public_key,
            feed::now_ms(),
            &crate::clock::now(),
        )?;
        tx.commit()?;
        Ok(out)
    }

    fn feed_after(
        &self,
        member_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<feed::FeedItem>, StoreError> {
        self.read(|conn| feed::after(conn, member_id, after, limit))
    }

    fn feed_before(
        &self,
        member_id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<feed::FeedItem>, StoreError> {
        self.read(|conn| feed::before(conn, member_id, before, limit))
    }

    fn feed_latest(&self, member_id: &str) -> Result<i64, StoreError> {
        self.read(|conn| feed::latest(conn, member_id))
    }

    fn expire_gifts(&self) -> Result<Vec<FeedPosted>, StoreError> {
        let mut w = self.writer()?;
        let tx = w.conn.transaction()?;
        let posted = feed::expire(&tx, &crate::clock::now(), self.dead_after_ms)?;
        tx.commit()?;
        Ok(posted)
    }

    fn put_webhook(&self, endpoint: &webhooks::Endpoint) -> Result<(), StoreError> {
        webhooks::put(&self.writer()?.conn, endpoint, &crate::clock::now())
    }

    fn delete_webhook(&self, endpoint_id: &str) -> Result<bool, StoreError> {
        let mut w = self.writer()?;
        let tx = w.conn.transaction()?;
        let gone = webhooks::delete(&tx, endpoint_id)?;
        tx.commit()?;
        Ok(gone)
    }

    fn webhooks(&self) -> Result<Vec<webhooks::EndpointView>, StoreError> {
        self.read(|conn| webhooks::list(conn))
    }

    fn webhook_messages(
        &self,
        endpoint_id: &str,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<webhooks::Message>>, StoreError> {
        self.read(|conn| webhooks::messages(conn, endpoint_id, state, limit))
    }

    fn redeliver(&self, endpoint_id: &str, message_id: i64) -> Result<bool, StoreError> {
        webhooks::redeliver(
            &self.writer()?.conn,
            endpoint_id,
            message_id,
            feed::now_ms(),
            self.dead_after_ms,
        )
    }

    fn webhooks_due(&self, now_ms: i64, limit: usize) -> Result<Vec<webhooks::Due>, StoreError> {
        self.read(|conn| webhooks::due(conn, now_ms, limit))
    }

    fn webhook_heads(&self, limit: usize) -> Result<Vec<(i64, i64)>, StoreError> {
        self.read(|conn| webhooks::heads(conn, limit))
    }

    fn record_deliveries(&self, outcomes: &[webhooks::Outcome]) -> Result<Vec<i64>, StoreError> {
        let mut w = self.writer()?;
        let tx = w.conn.transaction()?;
        let dead = webhooks::record(&tx, outcomes)?;
        tx.commit()?;
        Ok(dead)
    }
}
