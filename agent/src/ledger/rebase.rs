//! The ledger's side of a re-base (`loyalty-agent rebase`): a new identity that continues after
//! the last event HQ holds, recorded in the ledger itself.
//!
//! When HQ holds fewer of this ledger's events than the ledger believes (HQ itself was restored
//! from a backup), the acknowledged watermark moves back so the events HQ lost are pushed again;
//! HQ takes each event once by its id, so nothing is doubled either way.

use rusqlite::{params, Connection};

/// What the re-base recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebased {
    pub previous_ledger_id: String,
    pub ledger_id: String,
    /// The next push follows this seq.
    pub after_seq: i64,
    /// Events that will now be pushed.
    pub queued: i64,
}

/// Gives the ledger `new_id`, continuing after `after_seq` (at most the current watermark).
pub fn rebase(
    conn: &mut Connection,
    new_id: &str,
    after_seq: i64,
    hq_ledger_id: Option<&str>,
    hq_watermark: i64,
    reason: &str,
    at: &str,
) -> rusqlite::Result<Rebased> {
    let tx = conn.transaction()?;
    let previous = super::identity::ledger_id(&tx)?;
    let (acked, last): (i64, i64) = tx.query_row(
        "SELECT acked_seq, (SELECT COALESCE(MAX(seq), 0) FROM events) FROM sync_state WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let after_seq = after_seq.clamp(0, acked);
    if after_seq < acked {
        // The pending counters hold exactly the events after the watermark; rebuild them.
        tx.execute_batch(
            "UPDATE balances SET pending_points = 0, pending_events = 0, pending_spent = 0",
        )?;
        tx.prepare(
            "UPDATE balances SET
                 pending_points = agg.points, pending_events = agg.events, pending_spent = agg.spent
             FROM (SELECT account, SUM(points) AS points, COUNT(*) AS events,
                          SUM(CASE WHEN kind = 'redemption' THEN -points ELSE 0 END) AS spent
                   FROM events WHERE seq > ?1 AND account IS NOT NULL GROUP BY account) AS agg
             WHERE balances.account = agg.account",
        )?
        .execute([after_seq])?;
        tx.execute(
            "UPDATE sync_state SET acked_seq = ?1 WHERE id = 1",
            [after_seq],
        )?;
    }
    tx.execute(
        "UPDATE ledger_meta SET ledger_id = ?1, previous_ledger_id = ?2, rebased_at = ?3 WHERE id = 1",
        params![new_id, previous, at],
    )?;
    tx.execute(
        "INSERT INTO rebases (ledger_id, previous_ledger_id, after_seq, hq_ledger_id, hq_watermark, reason, rebased_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![new_id, previous, after_seq, hq_ledger_id, hq_watermark, reason, at],
    )?;
    tx.commit()?;
    Ok(Rebased {
        previous_ledger_id: previous,
        ledger_id: new_id.to_owned(),
        after_seq,
        queued: last - after_seq,
    })
}
