//! Admin writes and reads: stores, members and their cards, campaigns, reconciliation.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::accounts::{member_base, member_totals};
use super::writer::{bump, Writer};
use super::{
    Flag, LedgerBindingRecord, MemberInput, MemberView, Reconciliation, ReconciliationFilter,
    Rejection, StoreError,
};
use crate::token::TokenHash;

/// Most recent flags and rejections listed by the reconciliation report.
const REPORT_LIMIT: i64 = 1_000;

pub fn put_store(conn: &Connection, store_id: &str, token: &TokenHash) -> Result<(), StoreError> {
    let hash = token.to_hex();
    let taken: Option<String> = conn
        .prepare_cached("SELECT store_id FROM stores WHERE token_sha256 = ?1 AND store_id <> ?2")?
        .query_row(params![hash, store_id], |r| r.get(0))
        .optional()?;
    if taken.is_some() {
        // A token names exactly one store: that is how HQ knows who is pushing.
        return Err(StoreError::TokenTaken);
    }
    conn.prepare_cached(
        "INSERT INTO stores (store_id, token_sha256) VALUES (?1, ?2)
         ON CONFLICT (store_id) DO UPDATE SET token_sha256 = excluded.token_sha256",
    )?
    .execute(params![store_id, hash])?;
    Ok(())
}

/// The hash of the token `store_id` holds; `None` for a store HQ does not know.
pub fn store_token(conn: &Connection, store_id: &str) -> Result<Option<TokenHash>, StoreError> {
    let hex: Option<String> = conn
        .prepare_cached("SELECT token_sha256 FROM stores WHERE store_id = ?1")?
        .query_row([store_id], |r| r.get(0))
        .optional()?;
    // A value that is not a hash (edited by hand) matches no token.
    Ok(hex.and_then(|h| TokenHash::from_hex(&h)))
}

/// The store whose token hashes to `token`.
pub fn store_for_token(conn: &Connection, token: &TokenHash) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT store_id FROM stores WHERE token_sha256 = ?1")?
        .query_row([token.to_hex()], |r| r.get(0))
        .optional()?)
}

pub fn put_member(w: &mut Writer, member_id: &str, m: &MemberInput) -> Result<(), StoreError> {
    let Writer { conn, last_change } = w;
    let tx = conn.transaction()?;
    put_member_in(&tx, last_change, member_id, m)?;
    tx.commit()?;
    Ok(())
}

/// A bulk import: every member as [`put_member`] saves one, in order, in one transaction.
pub fn import_members(w: &mut Writer, members: &[(String, MemberInput)]) -> Result<(), StoreError> {
    let Writer { conn, last_change } = w;
    let tx = conn.transaction()?;
    for (member_id, m) in members {
        put_member_in(&tx, last_change, member_id, m)?;
    }
    tx.commit()?;
    Ok(())
}

fn put_member_in(
    tx: &Transaction<'_>,
    last_change: &mut i64,
    member_id: &str,
    m: &MemberInput,
) -> Result<(), StoreError> {
    let seq = bump(last_change);
    let segments = serde_json::to_string(&m.segments).unwrap_or_else(|_| "[]".into());
    tx.prepare_cached(
        "INSERT INTO members (member_id, tier, segments, qr_public_key, proximity_key, change_seq, display_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (member_id) DO UPDATE SET tier = excluded.tier, segments = excluded.segments,
           qr_public_key = excluded.qr_public_key, proximity_key = excluded.proximity_key,
           change_seq = excluded.change_seq, display_name = excluded.display_name",
    )?
    .execute(params![
        member_id,
        m.tier,
        segments,
        m.qr_public_key,
        m.proximity_key,
        seq,
        m.display_name
    ])?;
    tx.prepare_cached("DELETE FROM cards WHERE member_id = ?1")?
        .execute([member_id])?;
    for card in &m.cards {
        // A card moves with its points: the member who held it loses them, so it changes too.
        let previous: Option<String> = tx
            .prepare_cached("SELECT member_id FROM cards WHERE card_number = ?1")?
            .query_row([card], |r| r.get(0))
            .optional()?;
        tx.prepare_cached(
            "INSERT INTO cards (card_number, member_id) VALUES (?1, ?2)
             ON CONFLICT (card_number) DO UPDATE SET member_id = excluded.member_id",
        )?
        .execute(params![card, member_id])?;
        if let Some(prev) = previous.filter(|p| p != member_id) {
            // Its own sequence number: the feed's cursor needs one entity per number.
            let prev_seq = bump(last_change);
            tx.prepare_cached("UPDATE members SET change_seq = ?2 WHERE member_id = ?1")?
                .execute(params![prev, prev_seq])?;
            tracing::info!(card = %card, from = %prev, to = %member_id, "Moved card to another member.");
        }
    }
    Ok(())
}

pub fn member(conn: &mut Connection, member_id: &str) -> Result<Option<MemberView>, StoreError> {
    // One snapshot for the profile, the balance and the flags.
    let tx = conn.transaction()?;
    let Some(base) = member_base(&tx, member_id)? else {
        return Ok(None);
    };
    let (balance, events) = member_totals(&tx, member_id)?;
    let cards = base.cards.clone();
    let mut accounts = vec![member_id.to_owned()];
    accounts.extend(cards.iter().map(|c| loyalty_protocol::card_account(c)));
    let mut flags = Vec::new();
    for account in &accounts {
        let mut stmt = tx.prepare_cached(
            "SELECT flag, event_id, store_id, member, reason, flagged_at FROM flags
             WHERE member = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([account], flag_row)?;
        for f in rows {
            let f = f?;
            if !flags.contains(&f) {
                flags.push(f);
            }
        }
    }
    Ok(Some(MemberView {
        member_id: member_id.to_owned(),
        balance,
        tier: base.tier,
        segments: base.segments,
        cards,
        qr_public_key: base.qr_public_key,
        display_name: base.display_name,
        proximity_key: base.proximity_key,
        events,
        flags,
    }))
}

pub fn put_campaign(
    w: &mut Writer,
    campaign_id: &str,
    body: &serde_json::Value,
) -> Result<i64, StoreError> {
    let seq = w.next_change();
    let body = body.to_string();
    let version = w
        .conn
        .prepare_cached(
            "INSERT INTO campaigns (campaign_id, version, body, deleted, change_seq)
             VALUES (?1, 1, ?2, 0, ?3)
             ON CONFLICT (campaign_id) DO UPDATE SET version = version + 1, body = excluded.body,
               deleted = 0, change_seq = excluded.change_seq
             RETURNING version",
        )?
        .query_row(params![campaign_id, body, seq], |r| r.get(0))?;
    Ok(version)
}

pub fn delete_campaign(w: &mut Writer, campaign_id: &str) -> Result<Option<i64>, StoreError> {
    let seq = w.next_change();
    Ok(w.conn
        .prepare_cached(
            "UPDATE campaigns SET version = version + 1, deleted = 1, change_seq = ?2
             WHERE campaign_id = ?1 RETURNING version",
        )?
        .query_row(params![campaign_id, seq], |r| r.get(0))
        .optional()?)
}

fn flag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Flag> {
    Ok(Flag {
        flag: r.get(0)?,
        event_id: r.get(1)?,
        store_id: r.get(2)?,
        member: r.get(3)?,
        reason: r.get(4)?,
        flagged_at: r.get(5)?,
    })
}

/// Each list filtered in SQL (a `NULL` parameter matches everything), so the unfiltered report
/// is the same query it always was.
pub fn reconciliation(
    conn: &mut Connection,
    filter: &ReconciliationFilter,
) -> Result<Reconciliation, StoreError> {
    let tx = conn.transaction()?;
    let ReconciliationFilter {
        store,
        flag,
        since,
        until,
    } = filter;
    let flags = tx
        .prepare_cached(
            "SELECT flag, event_id, store_id, member, reason, flagged_at FROM
               (SELECT * FROM flags
                WHERE (?2 IS NULL OR store_id = ?2) AND (?3 IS NULL OR flag = ?3)
                  AND (?4 IS NULL OR flagged_at >= ?4) AND (?5 IS NULL OR flagged_at < ?5)
                ORDER BY id DESC LIMIT ?1) ORDER BY id",
        )?
        .query_map(params![REPORT_LIMIT, store, flag, since, until], flag_row)?
        .collect::<rusqlite::Result<_>>()?;
    // Rejections and bindings are not flags: a report of one kind of flag has none.
    let others = flag.is_none();
    let rejections = if others {
        tx.prepare_cached(
            "SELECT event_id, store_id, reason, event, rejected_at FROM rejections
             WHERE (?2 IS NULL OR store_id = ?2)
               AND (?3 IS NULL OR rejected_at >= ?3) AND (?4 IS NULL OR rejected_at < ?4)
             ORDER BY rejected_at DESC LIMIT ?1",
        )?
        .query_map(params![REPORT_LIMIT, store, since, until], |r| {
            Ok(Rejection {
                event_id: r.get(0)?,
                store_id: r.get(1)?,
                reason: r.get(2)?,
                event: r.get(3)?,
                rejected_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?
    } else {
        Vec::new()
    };
    let ledger_bindings = if others {
        tx.prepare_cached(
            "SELECT store_id, ledger_id, after_seq, previous_ledger_id, previous_watermark, reason,
               bound_at FROM ledger_bindings
             WHERE (?2 IS NULL OR store_id = ?2)
               AND (?3 IS NULL OR bound_at >= ?3) AND (?4 IS NULL OR bound_at < ?4)
             ORDER BY id DESC LIMIT ?1",
        )?
        .query_map(params![REPORT_LIMIT, store, since, until], |r| {
            Ok(LedgerBindingRecord {
                store_id: r.get(0)?,
                ledger_id: r.get(1)?,
                after_seq: r.get(2)?,
                previous_ledger_id: r.get(3)?,
                previous_watermark: r.get(4)?,
                reason: r.get(5)?,
                bound_at: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?
    } else {
        Vec::new()
    };
    Ok(Reconciliation {
        flags,
        rejections,
        ledger_bindings,
    })
}

pub fn balance_drift(conn: &mut Connection) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT a.account, a.balance, COALESCE(e.total, 0) FROM accounts a
         LEFT JOIN (SELECT account, SUM(points) AS total FROM events
                    WHERE account IS NOT NULL GROUP BY account) e ON e.account = a.account
         WHERE a.balance <> COALESCE(e.total, 0)
         UNION ALL
         SELECT e.account, 0, SUM(e.points) FROM events e
         WHERE e.account IS NOT NULL AND e.account NOT IN (SELECT account FROM accounts)
         GROUP BY e.account HAVING SUM(e.points) <> 0",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn account_balances(conn: &mut Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare("SELECT account, balance FROM accounts ORDER BY account")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}
