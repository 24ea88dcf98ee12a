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
use std::time::Instant;
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
    super::wal_room::make_room(path);
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

/// How many background commands (sync's bookkeeping, presence facts, imports) one transaction
/// holds at most: the tills' commands wait for that transaction at worst, so it stays short.
pub const BACKGROUND_BATCH: usize = 32;

/// A background command waits at most this long behind tills that never stop: sync and gifts
/// slow down under a flood of sales, they do not stop.
const BACKGROUND_MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Commands taken off the channel and not yet committed. The tills' commands (sales, refunds,
/// redemptions, QR nonces, and the cheap `SetRules` and `Ping` that must keep their place
/// among them) go first; the rest waits for a moment when no till is waiting.
#[derive(Default)]
struct Queue {
    tills: Vec<Job>,
    /// With when each was taken off the channel.
    background: std::collections::VecDeque<(Instant, Job)>,
}

impl Queue {
    fn push(&mut self, job: Job) {
        if is_for_a_till(&job.command) {
            self.tills.push(job);
        } else {
            self.background.push_back((Instant::now(), job));
        }
    }

    fn len(&self) -> usize {
        self.tills.len() + self.background.len()
    }

    /// The tills' commands, unless background work has waited its longest; then it gets one
    /// transaction, and the tills go next again (`background_just_ran`). Without that turn,
    /// a long queue that became overdue all at once would run whole before a waiting sale.
    fn tills_next(&self, background_just_ran: bool) -> bool {
        let overdue = self
            .background
            .front()
            .is_some_and(|(since, _)| since.elapsed() >= BACKGROUND_MAX_WAIT);
        !self.tills.is_empty() && (!overdue || background_just_ran)
    }
}

/// Whether the commit holding `command` must reach the disk before anyone is answered. Sync's
/// bookkeeping need not: a push's acknowledgement or a pulled page lost to a power cut means
/// the same events are pushed again or the same page pulled again, both idempotent at HQ and
/// here, exactly as when the agent dies between HQ's answer and the commit. Their commits skip
/// the WAL's fsync (`synchronous=NORMAL`), which a drain would otherwise issue a hundred times a
/// second in front of the tills' own. Nothing is reordered: the next durable commit's fsync
/// takes the whole WAL, so a power cut keeps a prefix of the commits, never a later one without
/// an earlier one.
fn must_be_durable(command: &Command) -> bool {
    !matches!(
        command,
        Command::PushAcked(_) | Command::ChangesPulled { .. }
    )
}

/// The connection's `synchronous` setting, changed only between transactions and only when a
/// batch needs the other one.
pub(super) struct Durability {
    full: bool,
}

impl Durability {
    /// The setting [`super::schema::configure`] leaves.
    pub(super) fn full() -> Self {
        Durability { full: true }
    }

    fn ensure(&mut self, conn: &Connection, full: bool) -> rusqlite::Result<()> {
        if self.full != full {
            conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
            self.full = full;
        }
        Ok(())
    }
}

fn is_for_a_till(command: &Command) -> bool {
    matches!(
        command,
        Command::Sale(_)
            | Command::Refund(_)
            | Command::Redeem(_)
            | Command::Void(_)
            | Command::RedeemGift(_)
            | Command::SeeNonce { .. }
            | Command::SetRules(_)
            | Command::Ping
    )
}

/// `appended` is poked after every commit that added events: a non-blocking call, so the writer
/// never waits on sync.
pub fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    mut rules: Arc<Rules>,
    appended: &Notify,
) {
    let mut queue = Queue::default();
    let mut background_just_ran = false;
    let mut durability = Durability::full();
    loop {
        if queue.len() == 0 {
            match rx.blocking_recv() {
                Some(job) => queue.push(job),
                None => break,
            }
        }
        // Everything already waiting goes into the next commit: that is the group commit. The
        // channel's capacity bounds what one pass takes.
        while queue.len() < MAX_BATCH * 8 {
            match rx.try_recv() {
                Ok(job) => queue.push(job),
                Err(_) => break,
            }
        }
        background_just_ran = if queue.tills_next(background_just_ran) {
            let mut batch: Vec<Job> = if queue.tills.len() > MAX_BATCH {
                queue.tills.drain(..MAX_BATCH).collect()
            } else {
                std::mem::take(&mut queue.tills)
            };
            // New rules apply to what comes after them; the commands before are committed with
            // the rules they were sent under.
            while let Some(at) = batch
                .iter()
                .position(|j| matches!(j.command, Command::SetRules(_)))
            {
                let mut rest = batch.split_off(at);
                commit_batch(&mut conn, &rules, &mut batch, appended, &mut durability);
                let job = rest.remove(0);
                if let Command::SetRules(new) = job.command {
                    rules = new;
                }
                let _ = job.reply.send(Ok(Answer::Done));
                batch = rest;
            }
            commit_batch(&mut conn, &rules, &mut batch, appended, &mut durability);
            false
        } else {
            let take = queue.background.len().min(BACKGROUND_BATCH);
            let mut batch: Vec<Job> = queue.background.drain(..take).map(|(_, j)| j).collect();
            commit_batch(&mut conn, &rules, &mut batch, appended, &mut durability);
            true
        };
    }
    // A clean stop leaves everything in ledger.db itself, so a copy of that one file (an
    // operator's backup) holds every sale; the -wal is emptied.
    match checkpoint_on_stop(&conn) {
        Ok(0) => debug!("Ledger checkpointed on stop."),
        Ok(_) => warn!("A reader kept the last checkpoint from completing; ledger.db-wal still holds part of the ledger."),
        Err(e) => warn!(error = %e, "Checkpoint on stop failed; ledger.db-wal still holds part of the ledger."),
    }
    debug!("Ledger writer stopped: every handle is gone.");
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`, tried again for a moment while a reader is still in a
/// read: a push being read off the log on a blocking thread when sync was stopped finishes
/// within milliseconds, and a stop should still leave the whole ledger in ledger.db.
fn checkpoint_on_stop(conn: &Connection) -> rusqlite::Result<i64> {
    let deadline = Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })?;
        if busy == 0 || Instant::now() >= deadline {
            return Ok(busy);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The log's last seq: `seq` is the rowid, so this reads one B-tree edge.
fn last_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
        .query_row([], |r| r.get(0))
}

fn apply(conn: &Connection, rules: &Rules, command: &Command) -> Applied {
    match command {
        Command::Sale(r) => commands::sale(conn, rules, r),
        Command::Refund(r) => commands::refund(conn, r),
        Command::Redeem(r) => commands::redeem(conn, r),
        Command::Void(r) => super::voids::void(conn, r),
        Command::Import(m) => commands::import(conn, m),
        Command::SeeNonce {
            nonce,
            member_id,
            unix,
        } => commands::see_nonce(conn, nonce, member_id, *unix),
        Command::PushAcked(ack) => super::sync::push_acked(conn, ack),
        Command::Presence(r) => super::gifts::presence(conn, rules, r),
        Command::RedeemGift(r) => super::gifts::redeem_gift(conn, r),
        // Taken out of the batch before it is committed (see `run`).
        Command::SetRules(_) => Ok(Ok(Answer::Done)),
        Command::Ping => Ok(Ok(Answer::Done)),
        Command::ChangesPulled { page, skew_ms, at } => {
            super::sync::changes_pulled(conn, page, *skew_ms, at)
        }
    }
}

/// Why a batch did not commit.
enum NotCommitted {
    /// The disk or the file failed: nothing of the batch is recorded.
    Storage(rusqlite::Error),
    /// One command failed on its own (a constraint, a bug); the batch must be run again with
    /// each command in a savepoint so that only that one is undone.
    CommandFailed,
}

impl From<rusqlite::Error> for NotCommitted {
    fn from(e: rusqlite::Error) -> Self {
        NotCommitted::Storage(e)
    }
}

type Answers = Vec<Result<Answer, LedgerError>>;

/// The batch in one transaction. Without `isolate`, the commands run one after the other with
/// nothing between them: a savepoint per command cost a statement journal in memory per
/// command, whose release (a `free` that trims the heap, an IPI to every core) took a third of
/// the writer's time, for the one case in thousands where a command fails. That case rolls
/// the whole batch back and runs it again with `isolate`.
fn run_batch(
    conn: &mut Connection,
    rules: &Rules,
    batch: &[Job],
    isolate: bool,
) -> Result<(Answers, bool), NotCommitted> {
    let mut answers: Answers = Vec::with_capacity(batch.len());
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let before = last_seq(&tx)?;
    for job in batch {
        if !isolate {
            match apply(&tx, rules, &job.command) {
                Ok(answer) => answers.push(answer),
                Err(e) if is_storage_failure(&e) => return Err(NotCommitted::Storage(e)),
                Err(e) => {
                    debug!(error = %e, "A ledger command failed; its batch runs again, each command on its own.");
                    return Err(NotCommitted::CommandFailed);
                }
            }
            continue;
        }
        let sp = tx.savepoint()?;
        match apply(&sp, rules, &job.command) {
            Ok(answer) => {
                sp.commit()?;
                answers.push(answer);
            }
            Err(e) if is_storage_failure(&e) => return Err(NotCommitted::Storage(e)),
            Err(e) => {
                // A constraint or logic failure of this one command: undo it alone.
                drop(sp);
                warn!(error = %e, "Ledger command failed; others in its batch go on.");
                answers.push(Err(LedgerError::Unavailable(e.to_string())));
            }
        }
    }
    let grew = last_seq(&tx)? > before;
    tx.set_drop_behavior(rusqlite::DropBehavior::Rollback);
    tx.commit()?;
    Ok((answers, grew))
}

fn commit_batch(
    conn: &mut Connection,
    rules: &Rules,
    batch: &mut Vec<Job>,
    appended: &Notify,
    durability: &mut Durability,
) {
    if batch.is_empty() {
        return;
    }
    let durable = batch.iter().any(|j| must_be_durable(&j.command));
    let outcome = match durability.ensure(conn, durable) {
        Err(e) => Err(NotCommitted::Storage(e)),
        Ok(()) => match run_batch(conn, rules, batch, false) {
            Err(NotCommitted::CommandFailed) => run_batch(conn, rules, batch, true),
            other => other,
        },
    };
    match outcome {
        Ok((answers, grew)) => {
            if grew {
                appended.notify_one();
            }
            for (job, answer) in batch.drain(..).zip(answers) {
                let _ = job.reply.send(answer);
            }
        }
        Err(NotCommitted::Storage(e)) => {
            let message = describe(&e);
            error!(error = %e, batch = batch.len(), "Ledger batch not committed; nothing in it was acknowledged.");
            for job in batch.drain(..) {
                let _ = job
                    .reply
                    .send(Err(LedgerError::Unavailable(message.clone())));
            }
        }
        Err(NotCommitted::CommandFailed) => {
            // Only the isolated run reports a command's failure, as that command's answer.
            error!(
                batch = batch.len(),
                "Ledger batch not committed: a command failed even on its own."
            );
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(LedgerError::Unavailable(
                    "the ledger could not record this command".into(),
                )));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Identity, SaleRequest};
    use tokio::sync::oneshot;

    fn sale_job(receipt: &str) -> (Job, oneshot::Receiver<Result<Answer, LedgerError>>) {
        let (reply, answer) = oneshot::channel();
        let command = Command::Sale(SaleRequest {
            lane: "1".into(),
            receipt_id: receipt.into(),
            total_cents: 1000,
            lines: Vec::new(),
            redemption_ids: Vec::new(),
            identity: Some(Identity::Card("4006381333931".into())),
            at: chrono::Utc::now(),
        });
        (Job { command, reply }, answer)
    }

    #[test]
    fn a_command_that_fails_is_undone_alone_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, _) =
            open_writer(&dir.path().join("ledger.db"), OpenOptions::default()).unwrap();
        // A failure no refusal covers: the batch's first run, without savepoints, gives up
        // and runs again with each command on its own.
        conn.execute_batch(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON events
             WHEN NEW.idempotency_key = 'sale:bad'
             BEGIN SELECT RAISE(ABORT, 'boom'); END;",
        )
        .unwrap();
        let (a, a_answer) = sale_job("r1");
        let (b, b_answer) = sale_job("bad");
        let (c, c_answer) = sale_job("r3");
        let appended = Notify::new();
        let mut batch = vec![a, b, c];
        commit_batch(
            &mut conn,
            &Rules::default(),
            &mut batch,
            &appended,
            &mut Durability::full(),
        );
        assert!(matches!(
            a_answer.blocking_recv().unwrap(),
            Ok(Answer::Sale(_))
        ));
        assert!(matches!(
            b_answer.blocking_recv().unwrap(),
            Err(LedgerError::Unavailable(_))
        ));
        assert!(matches!(
            c_answer.blocking_recv().unwrap(),
            Ok(Answer::Sale(_))
        ));
        let recorded: Vec<String> = conn
            .prepare("SELECT idempotency_key FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(recorded, ["sale:r1", "sale:r3"]);
        let balance: i64 = conn
            .query_row(
                "SELECT points FROM balances WHERE account = 'card:4006381333931'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(balance, 20, "the failed sale's credit was undone with it");
    }

    #[test]
    fn sync_bookkeeping_skips_the_fsync_and_every_sale_after_it_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, _) =
            open_writer(&dir.path().join("ledger.db"), OpenOptions::default()).unwrap();
        let mut durability = Durability::full();
        // Commits `jobs` as one batch; answers the `synchronous` it committed with.
        let mut commit = |conn: &mut Connection, jobs: Vec<Job>| -> i64 {
            commit_batch(
                conn,
                &Rules::default(),
                &mut { jobs },
                &Notify::new(),
                &mut durability,
            );
            conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        let ack_job = || {
            let (reply, answer) = oneshot::channel();
            let command = Command::PushAcked(crate::ledger::PushAck {
                watermark: 1,
                rejected: Vec::new(),
                skew_ms: None,
                at: "2026-11-30T08:00:00Z".into(),
            });
            (Job { command, reply }, answer)
        };
        let (full, normal) = (2, 1);

        let (sale, sale_answer) = sale_job("r1");
        assert_eq!(commit(&mut conn, vec![sale]), full);
        assert!(matches!(
            sale_answer.blocking_recv(),
            Ok(Ok(Answer::Sale(_)))
        ));

        let (ack, ack_answer) = ack_job();
        let setting = commit(&mut conn, vec![ack]);
        assert_eq!(setting, normal, "an acknowledgement alone is not fsynced");
        assert!(matches!(
            ack_answer.blocking_recv(),
            Ok(Ok(Answer::Pushed(_)))
        ));

        let (sale, sale_answer) = sale_job("r2");
        let setting = commit(&mut conn, vec![sale]);
        assert_eq!(setting, full, "the sale after it is durable again");
        assert!(matches!(
            sale_answer.blocking_recv(),
            Ok(Ok(Answer::Sale(_)))
        ));

        // Background work that mixes bookkeeping with something a caller is told is recorded (an
        // import) is durable as a whole.
        let (ack, _ack_answer) = ack_job();
        let (reply, _import_answer) = oneshot::channel();
        let import = Job {
            command: Command::Import(Vec::new()),
            reply,
        };
        assert_eq!(commit(&mut conn, vec![ack, import]), full);
        let acked: i64 = conn
            .query_row("SELECT acked_seq FROM sync_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(acked, 1, "the acknowledgement was recorded all the same");
    }

    #[test]
    fn the_tills_go_first_unless_background_work_waited_its_longest() {
        let mut queue = Queue::default();
        let (reply, _answer) = oneshot::channel();
        queue.push(Job {
            command: Command::Import(Vec::new()),
            reply,
        });
        assert!(!queue.tills_next(false), "no till is waiting");
        let (sale, _sale_answer) = sale_job("r1");
        queue.push(sale);
        assert!(
            queue.tills_next(false),
            "a sale goes before the import queued ahead of it"
        );
        if let Some(front) = queue.background.front_mut() {
            front.0 -= BACKGROUND_MAX_WAIT;
        }
        assert!(
            !queue.tills_next(false),
            "background work that waited its longest goes next, tills or not"
        );
        assert!(
            queue.tills_next(true),
            "after one background transaction the waiting tills go again, overdue work or not"
        );
    }
}
