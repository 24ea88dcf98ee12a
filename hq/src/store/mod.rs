//! Storage behind the [`Store`] trait: [`Db`] over a [`Backend`], with [`SqliteStore`] the
//! embedded default and [`PgStore`] for a chain's PostgreSQL, which several HQ processes may
//! share. The rules are written once against [`sql::Sql`]; a backend runs transactions.
//!
//! Invariants every implementation keeps (on PostgreSQL across HQ processes too):
//! - A store token is held as its SHA-256 only ([`crate::token`]); nothing reads it back.
//! - An event is stored at most once, keyed by `event_id`; a re-push changes nothing.
//! - A batch is applied in one transaction: all of its effects (events, balances, flags,
//!   rejections, the store's watermark, change sequence bumps) or none.
//! - An account's balance is always the sum of the `points` of the events stored for it. A
//!   member's balance is its own account plus the `card:<n>` accounts of its attached cards, so a
//!   card credit earned before HQ knew the card counts for the member once the card is attached.
//! - Facts are never erased: overdrafts, refunds without a sale and duplicate once-per-member
//!   gifts are stored and flagged. Only malformed events are refused, and their refusal is kept.
//! - A store's events come from one ledger at a time, in `seq` order with nothing left out;
//!   `stores.watermark` is the last `seq` HQ holds from it (see [`ledgers`]).
//! - No balance leaves the bounds of `loyalty_protocol::bounds`: an event that would take one
//!   out is refused, like a malformed one.
//! - The change sequence only grows; a member, campaign or gift redemption carries the sequence
//!   of its latest change.
//! - What a member is told is written with the fact: an event stored once makes its
//!   `member_feed` row and its webhook queue rows in the same transaction, so a fact is never
//!   announced twice by HQ, nor lost to a crash (delivery may repeat it: at least once).
//! - A bulk import's batch ([`Store::import_members`]) is one transaction, every row or none,
//!   each member saved with its own change sequence number, as a PUT would.
//! - A member's webhook messages go out in feed order: the next waits until the one before it
//!   was delivered or went dead.

mod accounts;
mod admin;
pub mod app;
mod changes;
mod db;
pub mod feed;
mod history;
mod ingest;
mod ledgers;
mod operator;
pub mod plausibility;
pub mod postgres;
mod schema;
pub mod sql;
mod sqlite;
#[cfg(test)]
mod test_db;
pub mod webhooks;

use std::sync::Arc;

use loyalty_protocol::{ChangesPage, Event, EventOutcome, LedgerBinding, LedgerState};
use serde::{Deserialize, Serialize};

pub use db::{Backend, Db, DEFAULT_DEAD_AFTER_MS};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::token::TokenHash;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database: {}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database connection: {0}")]
    Pool(String),
    #[error("reading a column: {0}")]
    Column(String),
    /// Another transaction got there first (another HQ process on the same database); the
    /// backend runs the whole transaction again, and reports this only when it kept colliding.
    #[error("the database stayed busy with the same rows: {0}")]
    Retry(String),
    #[error("the database is at schema version {found}, newer than this HQ knows ({known}): upgrade loyalty-hq")]
    SchemaTooNew { found: i64, known: i64 },
    #[error(
        "cursor {cursor} is ahead of HQ's latest change {latest}: pull again from an empty cursor"
    )]
    CursorAhead { cursor: i64, latest: i64 },
    #[error("store {0:?} is not registered")]
    UnknownStore(String),
    #[error("that token already belongs to another store")]
    TokenTaken,
    #[error("a storage lock was poisoned by an earlier panic")]
    Poisoned,
    #[error("migrating the database: {0}")]
    Migration(String),
    #[error("store {store} pushes from ledger {pushed}, but HQ holds its events from ledger {held}: if this box's ledger was restored or replaced, re-base it (loyalty-agent rebase); if another box uses this store's id and token, stop it")]
    LedgerConflict {
        store: String,
        held: String,
        pushed: String,
    },
    #[error("{0}: nothing was written")]
    SeqGap(String),
    #[error("{0}: nothing was written; if this box's ledger was restored from a backup, re-base it (loyalty-agent rebase)")]
    SeqConflict(String),
    #[error("{0}")]
    BadBinding(String),
}

/// One event of a pushed batch, already parsed and checked by the HTTP layer.
#[derive(Debug, Clone)]
pub enum Incoming {
    Valid(Event),
    /// Refused; recorded for the admin, never stored as a fact.
    Invalid {
        event_id: String,
        seq: Option<i64>,
        reason: String,
        raw: String,
    },
}

/// A pushed batch: the events of one ledger following `after_seq`.
#[derive(Debug, Clone)]
pub struct Push {
    pub ledger_id: String,
    pub after_seq: i64,
    pub events: Vec<Incoming>,
    /// The agent version the store said (`User-Agent: loyalty-agent/<version>`), recorded for
    /// the operator's view with the push; `None` keeps the one recorded before.
    pub agent_version: Option<String>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct IngestResult {
    pub outcomes: Vec<EventOutcome>,
    pub watermark: i64,
    /// The feed rows the batch wrote, for live feeds and the webhook sender to wake on.
    pub feed: Vec<FeedPosted>,
    /// The batch committed changes of the stores' changes feed (a balance, a gift redemption):
    /// waiting pulls wake on it.
    pub changed: bool,
}

/// A `member_feed` row just committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPosted {
    pub member_id: String,
    pub feed_id: i64,
    /// Some endpoint has a queue row for it.
    pub queued: bool,
}

/// The admin's view of a member: `PUT /v1/admin/members/{id}`, the profile every store gets.
pub type MemberInput = loyalty_protocol::MemberProfile;

/// `GET /v1/admin/members/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    pub member_id: String,
    pub balance: i64,
    pub tier: Option<String>,
    pub segments: Vec<String>,
    pub cards: Vec<String>,
    pub qr_public_key: Option<String>,
    pub proximity_key: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Events counted in `balance` (card accounts included).
    pub events: i64,
    pub flags: Vec<Flag>,
}

/// A reconciliation flag on a stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Flag {
    pub flag: String,
    pub event_id: String,
    pub store_id: String,
    /// The member (or `card:<n>` account) the event touched.
    pub member: Option<String>,
    pub reason: String,
    pub flagged_at: String,
}

/// An event refused at ingestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    pub event_id: String,
    pub store_id: String,
    pub reason: String,
    /// The event as pushed.
    pub event: String,
    pub rejected_at: String,
}

/// `GET /v1/admin/reconciliation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reconciliation {
    pub flags: Vec<Flag>,
    pub rejections: Vec<Rejection>,
    /// Every ledger a store was bound to: its first push and each re-base.
    #[serde(default)]
    pub ledger_bindings: Vec<LedgerBindingRecord>,
}

/// One binding of a store to a ledger, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerBindingRecord {
    pub store_id: String,
    pub ledger_id: String,
    pub after_seq: i64,
    pub previous_ledger_id: Option<String>,
    /// What HQ held from the previous ledger when this one was bound.
    pub previous_watermark: i64,
    pub reason: String,
    pub bound_at: String,
}

/// How a store is opened, beside its database.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub allowance: crate::allowance::AllowancePolicy,
    pub plausibility: plausibility::Plausibility,
    /// How long a webhook message is retried before it goes dead (`[webhooks]`).
    pub dead_after: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allowance: crate::allowance::AllowancePolicy::default(),
            plausibility: plausibility::Plausibility::default(),
            dead_after: std::time::Duration::from_millis(DEFAULT_DEAD_AFTER_MS as u64),
        }
    }
}

/// Opens (creating and migrating) the database `db` names. Blocks: call it off the async
/// threads.
pub fn open(db: &crate::config::Database, options: Options) -> Result<Arc<dyn Store>, StoreError> {
    use crate::config::Database;
    Ok(match db {
        Database::Sqlite(path) => Arc::new(
            SqliteStore::open(path, options.allowance)?
                .with_plausibility(options.plausibility)
                .with_dead_after(options.dead_after),
        ),
        Database::Postgres(url) => Arc::new(
            PgStore::connect(url, options.allowance)?
                .with_plausibility(options.plausibility)
                .with_dead_after(options.dead_after),
        ),
    })
}

/// Which part of the reconciliation report to answer; the default is all of it (the most
/// recent 1,000 of each list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconciliationFilter {
    /// Only this store's flags, rejections and ledger bindings.
    pub store: Option<String>,
    /// Only flags of this kind; rejections and ledger bindings, which are not flags, are then
    /// left out.
    pub flag: Option<String>,
    /// From this time on (RFC 3339, UTC, milliseconds, as HQ writes them): inclusive.
    pub since: Option<String>,
    /// Before this time: exclusive.
    pub until: Option<String>,
}

/// Where a page of a member's history ends: the last event's time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPosition {
    pub recorded_at: String,
    pub event_id: String,
}

/// One stored event of a member's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEvent {
    pub event_id: String,
    pub store_id: String,
    pub seq: i64,
    /// `sale`, `refund`, `redemption`, `gift_issued`, ...
    pub kind: String,
    /// The member, or the `card:<n>` account of one of their cards.
    pub account: Option<String>,
    pub lane: Option<String>,
    pub points: i64,
    /// When the store recorded it (the store's clock).
    pub recorded_at: String,
    /// The event's payload as the store sent it.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Reconciliation flags raised on it.
    pub flags: Vec<String>,
}

/// `GET /v1/admin/stores`: one registered store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreView {
    pub store_id: String,
    /// The ledger HQ takes the store's events from; `None` before its first push.
    pub ledger_id: Option<String>,
    /// The last `seq` HQ holds from that ledger.
    pub watermark: i64,
    /// The last push HQ applied (RFC 3339, UTC).
    pub last_push_at: Option<String>,
    /// The last pull, to within 10 s.
    pub last_pull_at: Option<String>,
    /// The agent version the store last sent (`User-Agent: loyalty-agent/<version>`).
    pub agent_version: Option<String>,
    /// Events stored from this store since 00:00 UTC today (duplicates not counted).
    pub events_today: i64,
}

/// Storage of HQ. Methods block: call them off the async threads.
pub trait Store: Send + Sync + 'static {
    /// Registers a store or replaces its token (held as its hash only).
    fn put_store(&self, store_id: &str, token: &TokenHash) -> Result<(), StoreError>;
    /// The hash of `store_id`'s token; `None` for a store HQ does not know.
    fn store_token(&self, store_id: &str) -> Result<Option<TokenHash>, StoreError>;
    /// The store a bearer token (its hash) belongs to.
    fn store_for_token(&self, token: &TokenHash) -> Result<Option<String>, StoreError>;
    /// Creates or replaces a member (cards included: a card on another member moves here).
    fn put_member(&self, member_id: &str, member: &MemberInput) -> Result<(), StoreError>;
    /// A bulk import's batch: each `(member_id, profile)` created or replaced exactly as
    /// [`Store::put_member`] does (cards move), in the order given (a later row for the same
    /// member wins), all in one transaction: every row or none. Each member saved takes its
    /// own change sequence number, so the stores pull imported members like any other change.
    /// Rows come validated (ids, canonical cards, keys); the batch size is the caller's (the
    /// import route sends a few thousand at a time).
    fn import_members(&self, members: &[(String, MemberInput)]) -> Result<(), StoreError>;
    fn member(&self, member_id: &str) -> Result<Option<MemberView>, StoreError>;
    /// Stores a campaign body as-is; returns its new version.
    fn put_campaign(&self, campaign_id: &str, body: &serde_json::Value) -> Result<i64, StoreError>;
    /// Marks a campaign deleted; returns its new version, or `None` if it never existed.
    fn delete_campaign(&self, campaign_id: &str) -> Result<Option<i64>, StoreError>;
    /// Applies a batch pushed by `store_id`, in one transaction; refuses it whole when it does
    /// not come from the store's ledger or does not follow on. The same transaction records the
    /// push for the operator's view ([`StoreView`]: its time, the agent version, the events
    /// stored for the first time counted into today's, HQ's UTC day).
    fn ingest(&self, store_id: &str, push: Push) -> Result<IngestResult, StoreError>;
    /// The ledger HQ takes `store_id`'s events from.
    fn ledger(&self, store_id: &str) -> Result<LedgerState, StoreError>;
    /// Re-bases `store_id` on another ledger (recorded).
    fn rebind_ledger(
        &self,
        store_id: &str,
        binding: &LedgerBinding,
    ) -> Result<LedgerState, StoreError>;
    /// Entities changed after `cursor` (a change sequence number), for `store_id`.
    fn changes(&self, store_id: &str, cursor: i64, limit: usize)
        -> Result<ChangesPage, StoreError>;
    /// The reconciliation report, or the part of it `filter` names; each list newest last,
    /// the most recent 1,000 that match.
    fn reconciliation(&self, filter: &ReconciliationFilter) -> Result<Reconciliation, StoreError>;
    /// A member's events (their own account's and their cards' accounts'), newest first by
    /// `(recorded_at, event_id)`, strictly before `before`; `None`: no such member.
    fn member_events(
        &self,
        member_id: &str,
        before: Option<&EventPosition>,
        limit: usize,
    ) -> Result<Option<Vec<HistoryEvent>>, StoreError>;

    /// Records a store's pull of the changes feed for the operator's view: its time `at`
    /// (RFC 3339, UTC, milliseconds) and the agent version it said (`None` keeps the one
    /// recorded). A pull less than 10 s after the recorded one, from the same version, need not
    /// be written: it would otherwise be HQ's most frequent write. Unknown stores are ignored.
    /// (A push is recorded by [`Store::ingest`], in its transaction.)
    fn note_pull(
        &self,
        store_id: &str,
        at: &str,
        agent_version: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Every registered store with its ledger and contacts, by id; `events_today` counts from
    /// 00:00 UTC of `now` (RFC 3339).
    fn stores(&self, now: &str) -> Result<Vec<StoreView>, StoreError>;

    /// A member's profile for their own app; `None` for a member HQ does not know.
    fn app_profile(&self, member_id: &str) -> Result<Option<app::AppProfile>, StoreError>;
    fn app_gifts(&self, member_id: &str) -> Result<Vec<app::AppGift>, StoreError>;
    /// Keys that may sign for the member (`None`: no such member).
    fn app_keys(&self, member_id: &str) -> Result<Option<Vec<String>>, StoreError>;
    /// Records an app signature's nonce until `expires_ms`; false for a replay.
    fn use_app_nonce(
        &self,
        member_id: &str,
        nonce: &str,
        expires_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Stores a one-time enrolment code (its hash); false for an unknown member.
    fn create_enrolment(
        &self,
        member_id: &str,
        code_hash: &str,
        expires_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Spends an enrolment code, enrolling `public_key` for its member.
    fn enrol(
        &self,
        code_hash: &str,
        public_key: &str,
    ) -> Result<Result<String, app::EnrolRefusal>, StoreError>;
    /// The member's feed after `after`, oldest first.
    fn feed_after(
        &self,
        member_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<feed::FeedItem>, StoreError>;
    /// The member's feed before `before`, newest first (history pages).
    fn feed_before(
        &self,
        member_id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<feed::FeedItem>, StoreError>;
    fn feed_latest(&self, member_id: &str) -> Result<i64, StoreError>;
    /// Expires the open gifts whose validity ended, announcing each.
    fn expire_gifts(&self) -> Result<Vec<FeedPosted>, StoreError>;

    fn put_webhook(&self, endpoint: &webhooks::Endpoint) -> Result<(), StoreError>;
    fn delete_webhook(&self, endpoint_id: &str) -> Result<bool, StoreError>;
    fn webhooks(&self) -> Result<Vec<webhooks::EndpointView>, StoreError>;
    /// `None`: no such endpoint.
    fn webhook_messages(
        &self,
        endpoint_id: &str,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<webhooks::Message>>, StoreError>;
    fn redeliver(&self, endpoint_id: &str, message_id: i64) -> Result<bool, StoreError>;
    fn webhooks_due(&self, now_ms: i64, limit: usize) -> Result<Vec<webhooks::Due>, StoreError>;
    /// Each (endpoint, member) queue's head, soonest due first: `(message id, due at ms)`.
    fn webhook_heads(&self, limit: usize) -> Result<Vec<(i64, i64)>, StoreError>;
    /// Records attempts; returns the messages that went dead.
    fn record_deliveries(&self, outcomes: &[webhooks::Outcome]) -> Result<Vec<i64>, StoreError>;

    /// Every account whose stored balance differs from the sum of its events' points, as
    /// (account, stored, summed). Empty when the invariant holds; for tests and `doctor`-like
    /// checks, it scans every event.
    fn balance_drift(&self) -> Result<Vec<(String, i64, i64)>, StoreError>;
    /// Every account's stored balance, sorted by account.
    fn account_balances(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Wake-ups other HQ processes committed (PostgreSQL's `NOTIFY`), taken once by the server
    /// to pass on to its `FeedHub`; `None` where HQ is the database's only process.
    fn wakeups(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<sql::Wake>> {
        None
    }
}
