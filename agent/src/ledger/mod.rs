//! The ledger: SQLite, one writer, many readers.
//!
//! Guarantees:
//! - **Durable when acknowledged.** A command's answer is sent only after the transaction that
//!   holds it committed with `synchronous=FULL` in WAL mode: a kill -9 or power cut after the
//!   answer cannot lose it. Before the answer, it either committed whole or not at all. Only
//!   sync's bookkeeping (acknowledgements, pulled pages), which a power cut may lose at no cost
//!   but a push or pull again, commits with `synchronous=NORMAL` (see `writer.rs`).
//! - **Once.** Every event carries an idempotency key (`sale:<receipt>`, `refund:<id>`,
//!   `redeem:<id>`) under a UNIQUE constraint; a retried command returns the first answer,
//!   stored with the event, and changes nothing.
//! - **One transaction per effect.** An event row and its effect on balances and sales are
//!   written together; the event is unsynced by having a seq after `sync_state.acked_seq` (the
//!   outbox is the tail of the log).
//! - **Group commit.** The writer takes everything queued (up to [`MAX_BATCH`]) into one
//!   transaction, the commands one after the other. Should one fail (not a refusal: an SQL
//!   error), the transaction is rolled back and the batch runs again with each command in its
//!   own savepoint, so that one failing does not undo the others.
//! - **Tills first.** Sales, refunds, redemptions and QR nonces go before background work
//!   (sync's bookkeeping, presence facts, imports), which is committed in transactions of its
//!   own, a few commands at a time, while no till is waiting.
//! - **Refusing, not losing.** When the disk is full or the file cannot be written, the batch is
//!   rolled back, every caller gets [`LedgerError::Unavailable`], nothing acknowledged is lost,
//!   and the next batch tries again.

pub mod backup;
mod checkpoint;
mod commands;
mod gifts;
pub mod identity;
pub mod outcome;
mod read;
pub mod rebase;
pub mod schema;
mod sync;
mod voids;
mod wal_room;
mod writer;

pub use commands::{
    card_account, Identity, MemberRecord, RedeemRequest, RefundOf, RefundRequest, RewardUse,
    SaleRequest, VoidRequest,
};
pub use gifts::{GiftRedeemRequest, PresenceRequest};
pub use identity::OpenOptions;
pub use loyalty_protocol::MemberProfile;
use outcome::Answer;
pub use outcome::{
    keys, ChangesApplied, GiftHandedOver, GiftsIssued, ImportSummary, IssuedGift, OpenGift,
    PointsRedeemed, PushRecorded, Recorded, Redeemed, RefundOutcome, Refusal, Returned,
    SaleOutcome, VoidOutcome,
};
pub use read::{MemberView, Outbox, Readers, SyncStatus, UnsyncedEvent};
pub use sync::PushAck;
pub use writer::MAX_BATCH;

use crate::engine::Rules;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The command is not allowed (insufficient balance, unknown receipt, ...); nothing written.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Nothing was written; the ledger may accept the same command later. HTTP 503.
    #[error("the ledger cannot record right now: {0}")]
    Unavailable(String),
    #[error("cannot open the ledger at {path}: {message}")]
    Open { path: PathBuf, message: String },
}

fn stopped() -> LedgerError {
    LedgerError::Unavailable("the ledger writer has stopped".into())
}

/// The writer answered with another kind of answer than the command's: a bug, reported as the
/// ledger being unavailable rather than a panic on the caller's task.
fn mismatched() -> LedgerError {
    LedgerError::Unavailable("the ledger writer answered another command's answer".into())
}

pub(crate) enum Command {
    Sale(SaleRequest),
    Refund(RefundRequest),
    Redeem(RedeemRequest),
    Void(VoidRequest),
    Import(Vec<MemberRecord>),
    /// Records an app QR nonce; answers whether it was new.
    SeeNonce {
        nonce: String,
        member_id: String,
        unix: i64,
    },
    PushAcked(PushAck),
    Presence(PresenceRequest),
    RedeemGift(GiftRedeemRequest),
    /// New rules for every command after this one (HQ published or changed a campaign).
    SetRules(Arc<Rules>),
    /// Answers once the writer takes it: proves the writer loop and its write lock are alive.
    Ping,
    ChangesPulled {
        page: loyalty_protocol::ChangesPage,
        skew_ms: Option<i64>,
        at: String,
    },
}

pub(crate) struct Job {
    command: Command,
    reply: oneshot::Sender<Result<Answer, LedgerError>>,
}

/// A presence fact queued in the writer ([`Ledger::queue_presence`]), not yet answered.
pub struct PendingGifts(oneshot::Receiver<Result<Answer, LedgerError>>);

impl PendingGifts {
    /// The gifts the fact issued, once its commit is durable.
    pub async fn answer(self) -> Result<GiftsIssued, LedgerError> {
        match self.0.await.map_err(|_| stopped())?? {
            Answer::Gifts(o) => Ok(o),
            _ => Err(mismatched()),
        }
    }
}

/// A cheap handle to the writer, shareable across tasks.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Job>,
    readers: Readers,
    appended: Arc<tokio::sync::Notify>,
    /// The rules the writer credits with, for quotes: replaced after the writer took them.
    rules: Arc<std::sync::RwLock<Arc<Rules>>>,
}

/// The writer's connection without the writer thread, for operator commands that run while the
/// agent is stopped (they hold the data dir's lock): opened, checked and migrated exactly as the
/// agent opens it. Returns it with the ledger's id.
pub fn writer_connection(
    path: &Path,
    options: OpenOptions,
) -> anyhow::Result<(rusqlite::Connection, String)> {
    writer::open_writer(path, options)
}

impl Ledger {
    /// Opens (creating and migrating) `path` and starts the writer thread. The thread stops when
    /// every handle is dropped, after committing what was queued.
    pub fn open(
        path: &Path,
        rules: Arc<Rules>,
    ) -> Result<(Ledger, std::thread::JoinHandle<()>), LedgerError> {
        Self::open_with(path, rules, OpenOptions::default())
    }

    /// [`Ledger::open`] with what the operator allows (a new ledger where one was held).
    pub fn open_with(
        path: &Path,
        rules: Arc<Rules>,
        options: OpenOptions,
    ) -> Result<(Ledger, std::thread::JoinHandle<()>), LedgerError> {
        let (conn, ledger_id) =
            writer::open_writer(path, options).map_err(|e| LedgerError::Open {
                path: path.to_owned(),
                message: format!("{e:#}"),
            })?;
        tracing::info!(ledger = %path.display(), ledger_id = %ledger_id, "Ledger open.");
        let (tx, rx) = mpsc::channel(4096);
        let appended = Arc::new(tokio::sync::Notify::new());
        let poke = appended.clone();
        let stop_checkpoints = Arc::new(std::sync::atomic::AtomicBool::new(false));
        checkpoint::spawn(path, stop_checkpoints.clone()).map_err(|e| LedgerError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let current_rules = Arc::new(std::sync::RwLock::new(rules.clone()));
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                // Woken by its fsync, with a till waiting for the answer.
                crate::background::wake_first();
                writer::run(conn, rx, rules, &poke);
                stop_checkpoints.store(true, std::sync::atomic::Ordering::Release);
            })
            .map_err(|e| LedgerError::Open {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        Ok((
            Ledger {
                tx,
                readers: Readers::new(path.to_owned()),
                appended,
                rules: current_rules,
            },
            handle,
        ))
    }

    pub fn readers(&self) -> &Readers {
        &self.readers
    }

    /// Notified after a commit that appended events to the log, so sync pushes them at once
    /// rather than at its next idle round. One stored permit: a burst wakes it once.
    pub fn appended(&self) -> Arc<tokio::sync::Notify> {
        self.appended.clone()
    }

    /// Queues `command` in the writer; its answer comes on the receiver.
    async fn enqueue(
        &self,
        command: Command,
    ) -> Result<oneshot::Receiver<Result<Answer, LedgerError>>, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { command, reply })
            .await
            .map_err(|_| stopped())?;
        Ok(answer)
    }

    async fn submit(&self, command: Command) -> Result<Answer, LedgerError> {
        self.enqueue(command).await?.await.map_err(|_| stopped())?
    }

    /// Records a sale; the answer is the first one recorded for the receipt.
    pub async fn sale(&self, request: SaleRequest) -> Result<SaleOutcome, LedgerError> {
        self.record_sale(request).await.map(|r| r.answer)
    }

    /// [`Ledger::sale`], telling a retry (the receipt was already recorded, nothing written)
    /// from a new sale: one trip to the writer where a look-up first would be two.
    pub async fn record_sale(
        &self,
        request: SaleRequest,
    ) -> Result<Recorded<SaleOutcome>, LedgerError> {
        match self.submit(Command::Sale(request)).await? {
            Answer::Sale(o) => Ok(o),
            _ => Err(mismatched()),
        }
    }

    pub async fn refund(&self, request: RefundRequest) -> Result<RefundOutcome, LedgerError> {
        match self.submit(Command::Refund(request)).await? {
            Answer::Refund(o) => Ok(o),
            _ => Err(mismatched()),
        }
    }

    /// Spends points; a retried redemption id answers what it first did (points or a gift).
    /// Gives back the redemptions made for a voided basket; idempotent by `void_id`.
    pub async fn void(&self, request: VoidRequest) -> Result<VoidOutcome, LedgerError> {
        match self.submit(Command::Void(request)).await? {
            Answer::Voided(o) => Ok(o),
            _ => Err(mismatched()),
        }
    }

    pub async fn redeem(&self, request: RedeemRequest) -> Result<Redeemed, LedgerError> {
        match self.submit(Command::Redeem(request)).await? {
            Answer::Redeemed(o) => Ok(o),
            _ => Err(mismatched()),
        }
    }

    /// Inserts or replaces members and their cards.
    pub async fn import_members(
        &self,
        members: Vec<MemberRecord>,
    ) -> Result<ImportSummary, LedgerError> {
        match self.submit(Command::Import(members)).await? {
            Answer::Imported(o) => Ok(o),
            _ => Err(mismatched()),
        }
    }

    /// Records a member's presence and issues the gifts it earns.
    pub async fn presence(&self, request: PresenceRequest) -> Result<GiftsIssued, LedgerError> {
        self.queue_presence(request).await?.answer().await
    }

    /// [`Ledger::presence`] in two steps: queued now (facts queued one after the other are
    /// recorded in that order), answered later. A caller with many facts queues them all and
    /// the writer records those waiting in one commit, instead of a commit each.
    pub async fn queue_presence(
        &self,
        request: PresenceRequest,
    ) -> Result<PendingGifts, LedgerError> {
        Ok(PendingGifts(
            self.enqueue(Command::Presence(request)).await?,
        ))
    }

    /// Round trip through the writer (a transaction that writes nothing).
    pub async fn ping(&self) -> Result<(), LedgerError> {
        self.submit(Command::Ping).await.map(|_| ())
    }

    /// Replaces the rules sales are credited with, from the next command on.
    pub async fn set_rules(&self, rules: Arc<Rules>) -> Result<(), LedgerError> {
        self.submit(Command::SetRules(rules.clone())).await?;
        // The rules hold no invariant a panicking writer of this lock could break half-way.
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = rules;
        Ok(())
    }

    /// The rules sales are credited with now (a quote computes with them; the sale that follows
    /// earns the same unless they change in between).
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Hands over a gift at a lane; idempotent by `redemption_id`.
    pub async fn redeem_gift(&self, request: GiftRedeemRequest) -> Result<Redeemed, LedgerError> {
        match self.submit(Command::RedeemGift(request)).await? {
            Answer::Redeemed(o) => Ok(o),
            _ => Err(mismatched()),
        }
    }

    /// Records HQ's answer to a push: the new watermark and the events it rejected for good.
    pub async fn push_acked(&self, ack: PushAck) -> Result<PushRecorded, LedgerError> {
        match self.submit(Command::PushAcked(ack)).await? {
            Answer::Pushed(o) => Ok(o),
            _ => Err(mismatched()),
        }
    }

    /// Applies one page of HQ changes and moves the cursor, in one transaction.
    pub async fn changes_pulled(
        &self,
        page: loyalty_protocol::ChangesPage,
        skew_ms: Option<i64>,
        at: String,
    ) -> Result<ChangesApplied, LedgerError> {
        match self
            .submit(Command::ChangesPulled { page, skew_ms, at })
            .await?
        {
            Answer::Pulled(o) => Ok(o),
            _ => Err(mismatched()),
        }
    }

    /// True when this QR nonce was never seen before (and is now recorded durably).
    pub async fn see_nonce(
        &self,
        nonce: String,
        member_id: String,
        unix: i64,
    ) -> Result<bool, LedgerError> {
        match self
            .submit(Command::SeeNonce {
                nonce,
                member_id,
                unix,
            })
            .await?
        {
            Answer::Nonce(new) => Ok(new),
            _ => Err(mismatched()),
        }
    }
}
