//! [`Db`]: HQ's [`Store`], written once over a [`Backend`] that runs transactions.
//!
//! Everything a method decides (ingestion, flags, the feeds) is in the backend-neutral modules;
//! a backend only opens, retries and commits transactions, so SQLite and PostgreSQL keep the
//! same invariants by running the same code.

use loyalty_protocol::{ChangesPage, LedgerBinding, LedgerState};

use super::plausibility::Plausibility;
use super::sql::Sql;
use super::{
    admin, app, changes, feed, history, ingest, ledgers, operator, webhooks, EventPosition,
    FeedPosted, HistoryEvent, IngestResult, MemberInput, MemberView, Push, Reconciliation,
    ReconciliationFilter, Store, StoreError, StoreView,
};
use crate::allowance::AllowancePolicy;
use crate::token::TokenHash;

/// A database that runs closures in transactions.
pub trait Backend: Send + Sync + 'static {
    /// Runs `f` in a read-only transaction: one snapshot for everything it reads.
    fn read<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;
    /// Runs `f` in a transaction committed when it returns `Ok`. A backend where transactions
    /// can collide (several processes) runs `f` again after a collision, from the start.
    fn write<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;
    /// Wake-ups committed by other HQ processes, taken once by the server.
    fn wakeups(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<super::sql::Wake>> {
        None
    }
}

/// HQ's storage on the backend `B`.
pub struct Db<B> {
    pub(super) backend: B,
    allowance: AllowancePolicy,
    plausibility: Plausibility,
    /// How long a webhook message is retried before it is a dead letter.
    dead_after_ms: i64,
}

/// hq.toml `[webhooks] dead_after_secs`'s default: a day.
pub const DEFAULT_DEAD_AFTER_MS: i64 = 24 * 3600 * 1000;

impl<B: Backend> Db<B> {
    pub(super) fn new(backend: B, allowance: AllowancePolicy) -> Self {
        Db {
            backend,
            allowance,
            plausibility: Plausibility::default(),
            dead_after_ms: DEFAULT_DEAD_AFTER_MS,
        }
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

    fn read<T>(
        &self,
        mut f: impl FnMut(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.backend.read(&mut f)
    }

    fn write<T>(
        &self,
        mut f: impl FnMut(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.backend.write(&mut f)
    }
}

impl<B: Backend> Store for Db<B> {
    fn put_store(&self, store_id: &str, token: &TokenHash) -> Result<(), StoreError> {
        self.write(|sql| admin::put_store(sql, store_id, token))
    }

    fn store_token(&self, store_id: &str) -> Result<Option<TokenHash>, StoreError> {
        self.read(|sql| admin::store_token(sql, store_id))
    }

    fn store_for_token(&self, token: &TokenHash) -> Result<Option<String>, StoreError> {
        self.read(|sql| admin::store_for_token(sql, token))
    }

    fn put_member(&self, member_id: &str, member: &MemberInput) -> Result<(), StoreError> {
        self.write(|sql| admin::put_member(sql, member_id, member))
    }

    fn import_members(&self, members: &[(String, MemberInput)]) -> Result<(), StoreError> {
        self.write(|sql| admin::import_members(sql, members))
    }

    fn member(&self, member_id: &str) -> Result<Option<MemberView>, StoreError> {
        self.read(|sql| admin::member(sql, member_id))
    }

    fn put_campaign(&self, campaign_id: &str, body: &serde_json::Value) -> Result<i64, StoreError> {
        self.write(|sql| admin::put_campaign(sql, campaign_id, body))
    }

    fn delete_campaign(&self, campaign_id: &str) -> Result<Option<i64>, StoreError> {
        self.write(|sql| admin::delete_campaign(sql, campaign_id))
    }

    fn ingest(&self, store_id: &str, push: Push) -> Result<IngestResult, StoreError> {
        let started = std::time::Instant::now();
        let result = self.write(|sql| {
            ingest::ingest(
                sql,
                &self.plausibility,
                self.dead_after_ms,
                store_id,
                push.clone(),
            )
        });
        tracing::debug!(store = %store_id, ms = started.elapsed().as_millis() as u64, "Push committed.");
        result
    }

    fn ledger(&self, store_id: &str) -> Result<LedgerState, StoreError> {
        self.read(|sql| ledgers::state(sql, store_id))
    }

    fn rebind_ledger(
        &self,
        store_id: &str,
        binding: &LedgerBinding,
    ) -> Result<LedgerState, StoreError> {
        self.write(|sql| ledgers::rebind(sql, store_id, binding, &crate::clock::now()))
    }

    fn changes(
        &self,
        store_id: &str,
        cursor: i64,
        limit: usize,
    ) -> Result<ChangesPage, StoreError> {
        let policy = self.allowance;
        self.read(|sql| changes::page(sql, &policy, store_id, cursor, limit))
    }

    fn reconciliation(&self, filter: &ReconciliationFilter) -> Result<Reconciliation, StoreError> {
        self.read(|sql| admin::reconciliation(sql, filter))
    }

    fn member_events(
        &self,
        member_id: &str,
        before: Option<&EventPosition>,
        limit: usize,
    ) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
        self.read(|sql| history::member_events(sql, member_id, before, limit))
    }

    fn note_pull(
        &self,
        store_id: &str,
        at: &str,
        agent_version: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|sql| operator::note_pull(sql, store_id, at, agent_version))
    }

    fn stores(&self, now: &str) -> Result<Vec<StoreView>, StoreError> {
        self.read(|sql| operator::stores(sql, now))
    }

    fn app_profile(&self, member_id: &str) -> Result<Option<app::AppProfile>, StoreError> {
        self.read(|sql| app::profile(sql, member_id))
    }

    fn app_gifts(&self, member_id: &str) -> Result<Vec<app::AppGift>, StoreError> {
        self.read(|sql| app::gifts(sql, member_id))
    }

    fn app_keys(&self, member_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.read(|sql| app::keys(sql, member_id))
    }

    fn use_app_nonce(
        &self,
        member_id: &str,
        nonce: &str,
        expires_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write(|sql| app::use_nonce(sql, member_id, nonce, expires_ms, feed::now_ms()))
    }

    fn create_enrolment(
        &self,
        member_id: &str,
        code_hash: &str,
        expires_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write(|sql| app::create_enrolment(sql, member_id, code_hash, expires_ms))
    }

    fn enrol(
        &self,
        code_hash: &str,
        public_key: &str,
    ) -> Result<Result<String, app::EnrolRefusal>, StoreError> {
        self.write(|sql| {
            app::enrol(
                sql,
                code_hash,
                public_key,
                feed::now_ms(),
                &crate::clock::now(),
            )
        })
    }

    fn feed_after(
        &self,
        member_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<feed::FeedItem>, StoreError> {
        self.read(|sql| feed::after(sql, member_id, after, limit))
    }

    fn feed_before(
        &self,
        member_id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<feed::FeedItem>, StoreError> {
        self.read(|sql| feed::before(sql, member_id, before, limit))
    }

    fn feed_latest(&self, member_id: &str) -> Result<i64, StoreError> {
        self.read(|sql| feed::latest(sql, member_id))
    }

    fn expire_gifts(&self) -> Result<Vec<FeedPosted>, StoreError> {
        self.write(|sql| feed::expire(sql, &crate::clock::now(), self.dead_after_ms))
    }

    fn put_webhook(&self, endpoint: &webhooks::Endpoint) -> Result<(), StoreError> {
        self.write(|sql| webhooks::put(sql, endpoint, &crate::clock::now()))
    }

    fn delete_webhook(&self, endpoint_id: &str) -> Result<bool, StoreError> {
        self.write(|sql| webhooks::delete(sql, endpoint_id))
    }

    fn webhooks(&self) -> Result<Vec<webhooks::EndpointView>, StoreError> {
        self.read(webhooks::list)
    }

    fn webhook_messages(
        &self,
        endpoint_id: &str,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<webhooks::Message>>, StoreError> {
        self.read(|sql| webhooks::messages(sql, endpoint_id, state, limit))
    }

    fn redeliver(&self, endpoint_id: &str, message_id: i64) -> Result<bool, StoreError> {
        self.write(|sql| {
            webhooks::redeliver(
                sql,
                endpoint_id,
                message_id,
                feed::now_ms(),
                self.dead_after_ms,
            )
        })
    }

    fn webhooks_due(&self, now_ms: i64, limit: usize) -> Result<Vec<webhooks::Due>, StoreError> {
        self.write(|sql| webhooks::due(sql, now_ms, limit))
    }

    fn webhook_heads(&self, limit: usize) -> Result<Vec<(i64, i64)>, StoreError> {
        self.read(|sql| webhooks::heads(sql, limit))
    }

    fn record_deliveries(&self, outcomes: &[webhooks::Outcome]) -> Result<Vec<i64>, StoreError> {
        self.write(|sql| webhooks::record(sql, outcomes))
    }

    fn balance_drift(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        self.read(admin::balance_drift)
    }

    fn account_balances(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(admin::account_balances)
    }

    fn wakeups(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<super::sql::Wake>> {
        self.backend.wakeups()
    }
}
