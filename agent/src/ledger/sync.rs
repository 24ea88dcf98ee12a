//! What HQ sync writes: acknowledgements of pushed events and pulled changes, each applied in
//! one transaction with the cursor or watermark it moves, so a crash between the HTTP answer
//! and the commit only means the same page or batch is fetched or pushed again (HQ and this
//! code are both idempotent).
//!
//! Acknowledgement: only a push's answer moves `sync_state.acked_seq`, and only over events that
//! push sent. A pulled page's watermark never does: it may count events this agent never sent
//! (another ledger pushing for this store, a forged push), and trusting it once lost sales that
//! were recorded but never pushed.
//!
//! Balances: the `points` column is the balance this store shows. A pull sets it to HQ's
//! balance at this store's watermark plus the local events HQ had not yet counted (the
//! `pending_*` counters, events after `sync_state.acked_seq`, less those HQ already counted when
//! its page is ahead of our acknowledgement); every local event adds to it as it happens. So an
//! event is counted once whether the next pull comes before or after HQ acknowledges it.

use super::commands::Applied;
use super::outcome::{Answer, ChangesApplied, PushRecorded};
use loyalty_protocol::{bounds, Change, ChangesPage, MemberRecord as HqMember, MAX_BALANCE};
use rusqlite::{params, Connection, OptionalExtension};

/// HQ's answer to one push, as the ledger needs it.
#[derive(Debug, Clone)]
pub struct PushAck {
    /// HQ's watermark: every event up to here is settled (held or rejected).
    pub watermark: i64,
    /// `(seq, event_id, reason)` of events HQ rejected for good.
    pub rejected: Vec<(i64, String, String)>,
    pub skew_ms: Option<i64>,
    pub at: String,
}

/// Moves the acknowledged watermark to `up_to` (never backwards, never past the last local
/// event) and takes the newly acknowledged events out of the pending counters.
fn ack_up_to(tx: &Connection, up_to: i64) -> rusqlite::Result<i64> {
    let acked: i64 = tx.query_row("SELECT acked_seq FROM sync_state WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    let last: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
    let target = up_to.min(last);
    if target <= acked {
        return Ok(acked);
    }
    tx.prepare_cached(
        "UPDATE balances SET
             pending_points = pending_points - agg.points,
             pending_events = pending_events - agg.events,
             pending_spent = pending_spent - agg.spent
         FROM (SELECT account, SUM(points) AS points, COUNT(*) AS events,
                      SUM(CASE WHEN kind = 'redemption' THEN -points ELSE 0 END) AS spent
               FROM events WHERE seq > ?1 AND seq <= ?2 AND account IS NOT NULL GROUP BY account) AS agg
         WHERE balances.account = agg.account",
    )?
    .execute(params![acked, target])?;
    tx.prepare_cached("UPDATE sync_state SET acked_seq = ?1 WHERE id = 1")?
        .execute([target])?;
    Ok(target)
}

pub(super) fn push_acked(tx: &Connection, ack: &PushAck) -> Applied {
    for (seq, event_id, reason) in &ack.rejected {
        tx.prepare_cached(
            "INSERT INTO dead_letters (seq, event_id, reason, rejected_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(seq) DO NOTHING",
        )?
        .execute(params![seq, event_id, reason, ack.at])?;
    }
    let acked = ack_up_to(tx, ack.watermark)?;
    tx.prepare_cached(
        "UPDATE sync_state SET last_push_at = ?1, skew_ms = COALESCE(?2, skew_ms) WHERE id = 1",
    )?
    .execute(params![ack.at, ack.skew_ms])?;
    Ok(Ok(Answer::Pushed(PushRecorded {
        acked_seq: acked,
        dead_lettered: ack.rejected.len(),
    })))
}

pub(super) fn changes_pulled(
    tx: &Connection,
    page: &ChangesPage,
    skew_ms: Option<i64>,
    at: &str,
) -> Applied {
    let acked: i64 = tx.query_row("SELECT acked_seq FROM sync_state WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    // HQ's watermark counts this ledger's events only when HQ takes events from this ledger.
    let ours = page.ledger_id.as_deref() == Some(super::identity::ledger_id(tx)?.as_str());
    let mut members = 0;
    let mut skipped = 0;
    let mut campaigns = 0;
    for change in &page.changes {
        match change {
            Change::Member(m) => match member_pulled(tx, m, acked, ours, at)? {
                Ok(()) => members += 1,
                Err(why) => {
                    // One poisoned record must not stop the feed for every other member.
                    tracing::warn!(member = %m.member_id, reason = %why, "Member from HQ not applied.");
                    skipped += 1;
                }
            },
            Change::Campaign(c) => {
                tx.prepare_cached(
                    "INSERT INTO campaigns (campaign_id, version, body, deleted) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(campaign_id) DO UPDATE SET version = ?2, body = ?3, deleted = ?4
                     WHERE excluded.version > campaigns.version
                        OR (excluded.version = campaigns.version
                            AND (campaigns.body, campaigns.deleted) IS NOT (excluded.body, excluded.deleted))",
                )?
                .execute(params![c.campaign_id, c.version, c.body.to_string(), c.deleted])?;
                campaigns += 1;
            }
            Change::RedemptionElsewhere(r) => {
                super::gifts::redeemed_elsewhere(tx, &r.gift_id, &r.store_id, at)?;
            }
        }
    }
    tx.prepare_cached(
        "UPDATE sync_state SET cursor = ?1, last_pull_at = ?2, skew_ms = COALESCE(?3, skew_ms) WHERE id = 1",
    )?
    .execute(params![page.next_cursor, at, skew_ms])?;
    Ok(Ok(Answer::Pulled(ChangesApplied {
        members,
        skipped,
        campaigns,
        cursor: page.next_cursor.clone(),
    })))
}

/// Applies one member from HQ; `Ok(Err(why))` when its balance is out of bounds (nothing of it
/// is applied).
fn member_pulled(
    tx: &Connection,
    m: &HqMember,
    acked: i64,
    ours: bool,
    at: &str,
) -> rusqlite::Result<Result<(), String>> {
    if let Err(e) = bounds::add_to_balance(m.balance, 0) {
        return Ok(Err(e.to_string()));
    }
    if let Err(e) = bounds::add_to_balance(m.offline_allowance, 0) {
        return Ok(Err(format!("offline allowance: {e}")));
    }
    super::commands::upsert_member(tx, &m.member_id, &m.profile, at)?;
    // HQ's card list is the whole truth: cards it no longer lists for this member are unlinked.
    // Only those are deleted, and only changed links written, so an unchanged member writes no
    // page (see `upsert_member`).
    let linked: Vec<String> = tx
        .prepare_cached("SELECT card_number FROM cards WHERE member_id = ?1")?
        .query_map([&m.member_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for card in linked.iter().filter(|c| !m.profile.cards.contains(c)) {
        tx.prepare_cached("DELETE FROM cards WHERE card_number = ?1")?
            .execute([card])?;
    }
    let mut accounts = vec![m.member_id.clone()];
    for card in &m.profile.cards {
        super::commands::link_card(tx, card, &m.member_id)?;
        accounts.push(super::card_account(card));
    }
    // What HQ has not counted: the pending counters (events after `acked`), plus, should HQ's
    // snapshot predate our acknowledgement, the events in between; less, should it be ahead of
    // our acknowledgement (an answer lost on the way), the events it already counts.
    let mut uncounted = 0i64;
    for account in &accounts {
        let pending: i64 = tx
            .prepare_cached("SELECT pending_points FROM balances WHERE account = ?1")?
            .query_row([account], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let sum_between = |from: i64, to: i64| -> rusqlite::Result<i64> {
            tx.prepare_cached(
                "SELECT COALESCE(SUM(points), 0) FROM events WHERE seq > ?1 AND seq <= ?2 AND account = ?3",
            )?
            .query_row(params![from, to, account], |r| r.get(0))
        };
        let between = match m.balance_watermark.cmp(&acked) {
            std::cmp::Ordering::Less => sum_between(m.balance_watermark, acked)?,
            std::cmp::Ordering::Greater if ours => -sum_between(acked, m.balance_watermark)?,
            _ => 0,
        };
        uncounted = uncounted.saturating_add(pending).saturating_add(between);
    }
    let Some(shown) = m
        .balance
        .checked_add(uncounted)
        .filter(|b| b.checked_abs().is_some_and(|b| b <= MAX_BALANCE))
    else {
        return Ok(Err(format!(
            "HQ's balance {} plus {uncounted} pending here leaves the bounds of ±{MAX_BALANCE}",
            m.balance
        )));
    };
    // Card accounts of a known member hold nothing of their own any more: HQ's balance and the
    // member row count their points.
    for card_account in &accounts[1..] {
        tx.prepare_cached("UPDATE balances SET points = 0 WHERE account = ?1 AND points <> 0")?
            .execute([card_account])?;
    }
    tx.prepare_cached(
        "INSERT INTO balances (account, points, offline_allowance) VALUES (?1, ?2, ?3)
         ON CONFLICT(account) DO UPDATE SET points = ?2, offline_allowance = ?3
         WHERE (balances.points, balances.offline_allowance) IS NOT (?2, ?3)",
    )?
    .execute(params![m.member_id, shown, m.offline_allowance])?;
    Ok(Ok(()))
}
