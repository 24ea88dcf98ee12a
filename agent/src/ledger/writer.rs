//! The single writer thread and its group commit.

use super::commands::{self, Applied};
use super::identity::{self, OpenOptions};
use super::outcome::Answer;
use super::schema;
use super::{Command, Job, LedgerError};
use crate::engine::Rules;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, error, warn};

/// The most commands one transaction holds: large enough to amortise the fsync, small enough
/// that the first caller in a batch is not kept waiting long.
pub const MAX_BATCH: usize = 512;

/// Opens the writer's connection after [`identity::check_before_open`]; returns it with the
/// ledger's id.
pub fn open_writer(path: &Path, options: OpenOptions) -> anyhow::Result<(Connection, String)> {
    use anyhow::Context;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    identity::check_before_open(path, options)?;
    let mut conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    schema::configure(&conn).context("setting pragmas")?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        super::checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
    )
    .context("setting the writer's checkpoint threshold")?;
    if let Some(copy) =
        schema::backup_before_migrating(&conn, path).context("backing up before migrating")?
    {
        tracing::info!(backup = %copy.display(), "Ledger backed up before its schema is upgraded.");
    }
    schema::migrate(&mut conn).context("migrating the schema")?;
    let id = identity::adopt(&conn, path, options).map_err(anyhow::Error::msg)?;
    Ok((conn, id))
}

/// `appended` is poked after every commit that added events: a non-blocking call, so the writer
/// never waits on sync.
pub fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    mut rules: Arc<Rules>,
    appended: &Notify,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // New rules apply to what comes after them; the commands before are committed with the
        // rules they were sent under.
        while let Some(at) = batch
            .iter()
            .position(|j| matches!(j.command, Command::SetRules(_)))
        {
            let mut rest = batch.split_off(at);
            commit_batch(&mut conn, &rules, &mut batch, appended);
            let job = rest.remove(0);
            if let Command::SetRules(new) = job.command {
                rules = new;
            }
            let _ = job.reply.send(Ok(Answer::Done));
            batch = rest;
        }
        commit_batch(&mut conn, &rules, &mut batch, appended);
    }
    // A clean stop leaves everything in ledger.db itself, so a copy of that one file (an
    // operator's backup) holds every sale; the -wal is emptied.
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
        Ok(0) => debug!("Ledger checkpointed on stop."),
        Ok(_) => warn!("A reader kept the last checkpoint from completing; ledger.db-wal still holds part of the ledger."),
        Err(e) => warn!(error = %e, "Checkpoint on stop failed; ledger.db-wal still holds part of the ledger."),
    }
    debug!("Ledger writer stopped: every handle is gone.");
}

/// The log's last seq: `seq` is the rowid, so this reads one B-tree edge.
fn last_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
        .query_row([], |r| r.get(0))
}

fn commit_batch(conn: &mut Connection, rules: &Rules, batch: &mut Vec<Job>, appended: &Notify) {
    if batch.is_empty() {
        return;
    }
    let mut answers: Vec<Result<Answer, LedgerError>> = Vec::with_capacity(batch.len());
    let mut grew = false;
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = last_seq(&tx)?;
        for job in batch.iter() {
            let sp = tx.savepoint()?;
            let applied: Applied = match &job.command {
                Command::Sale(r) => commands::sale(&sp, rules, r),
                Command::Refund(r) => commands::refund(&sp, r),
                Command::Redeem(r) => commands::redeem(&sp, r),
                Command::Void(r) => super::voids::void(&sp, r),
                Command::Import(m) => commands::import(&sp, m),
                Command::SeeNonce {
                    nonce,
                    member_id,
                    unix,
                } => commands::see_nonce(&sp, nonce, member_id, *unix),
                Command::PushAcked(ack) => super::sync::push_acked(&sp, ack),
                Command::Presence(r) => super::gifts::presence(&sp, rules, r),
                Command::RedeemGift(r) => super::gifts::redeem_gift(&sp, r),
                // Taken out of the batch before it is committed (see `run`).
                Command::SetRules(_) => Ok(Ok(Answer::Done)),
                Command::Ping => Ok(Ok(Answer::Done)),
                Command::ChangesPulled { page, skew_ms, at } => {
                    super::sync::changes_pulled(&sp, page, *skew_ms, at)
                }
            };
            match applied {
                Ok(answer) => {
                    sp.commit()?;
                    answers.push(answer);
                }
                Err(e) if is_storage_failure(&e) => return Err(e),
                Err(e) => {
                    // A constraint or logic failure of this one command: undo it alone.
                    drop(sp);
                    warn!(error = %e, "Ledger command failed; others in its batch go on.");
                    answers.push(Err(LedgerError::Unavailable(e.to_string())));
                }
            }
        }
        grew = last_seq(&tx)? > before;
        tx.set_drop_behavior(rusqlite::DropBehavior::Rollback);
        tx.commit()
    })();
    match outcome {
        Ok(()) => {
            if grew {
                appended.notify_one();
            }
            for (job, answer) in batch.drain(..).zip(answers) {
                let _ = job.reply.send(answer);
            }
        }
        Err(e) => {
            let message = describe(&e);
            error!(error = %e, batch = batch.len(), "Ledger batch not committed; nothing in it was acknowledged.");
            for job in batch.drain(..) {
                let _ = job
                    .reply
                    .send(Err(LedgerError::Unavailable(message.clone())));
            }
        }
    }
}

fn is_storage_failure(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::DatabaseBusy
        )
    )
}

fn describe(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => {
            "the disk is full; free space and the agent resumes by itself".into()
        }
        Some(ErrorCode::ReadOnly) => "the ledger file is read-only".into(),
        Some(ErrorCode::SystemIoFailure) => "the disk reported an I/O error".into(),
        _ => e.to_string(),
    }
}
