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
    admin, changes, ingest, ledgers, schema, IngestResult, MemberInput, MemberView, Push,
    Reconciliation, Store, StoreError,
};
use crate::allowance::AllowancePolicy;

/// Idle reader connections kept open; more are opened on demand and closed after use.
const IDLE_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    allowance: AllowancePolicy,
    plausibility: Plausibility,
}

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
        })
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
    fn put_store(&self, store_id: &str, token: &str) -> Result<(), StoreError> {
        admin::put_store(&self.writer()?.conn, store_id, token)
    }

    fn store_for_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| admin::store_for_token(conn, token))
    }

    fn put_member(&self, member_id: &str, member: &MemberInput) -> Result<(), StoreError> {
        admin::put_member(&mut *self.writer()?, member_id, member)
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
        ingest::ingest(&mut *self.writer()?, &self.plausibility, store_id, push)
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

    fn reconciliation(&self) -> Result<Reconciliation, StoreError> {
        self.read(admin::reconciliation)
    }
}
