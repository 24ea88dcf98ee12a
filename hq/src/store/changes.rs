//! The changes feed: current state of every entity whose change sequence is after the cursor.
//!
//! A page is read in one snapshot, so a member's `balance` and the page's `watermark` (its
//! `balance_watermark`) describe the same moment: the agent adds only its own events with a
//! higher seq, and counts nothing twice.

use loyalty_protocol::{
    CampaignRecord, Change, ChangesPage, GiftRedeemedElsewhere, MemberRecord, PROTOCOL_VERSION,
};
use rusqlite::{params, Connection};

use super::accounts::{member_base, member_totals};
use super::StoreError;
use crate::allowance::AllowancePolicy;
use crate::clock;

/// The highest change sequence number handed out so far.
pub fn latest_change(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT MAX(COALESCE((SELECT MAX(change_seq) FROM members), 0),
                    COALESCE((SELECT MAX(change_seq) FROM campaigns), 0),
                    COALESCE((SELECT MAX(change_seq) FROM gift_redemptions), 0))",
        [],
        |r| r.get(0),
    )
}

enum Entity {
    Member,
    Campaign,
    Redemption,
}

pub fn page(
    conn: &mut Connection,
    policy: &AllowancePolicy,
    store_id: &str,
    cursor: i64,
    limit: usize,
) -> Result<ChangesPage, StoreError> {
    let tx = conn.transaction()?;
    let hq_time = clock::now();
    let super::ledgers::Bound {
        ledger_id,
        watermark,
        ..
    } = super::ledgers::bound(&tx, store_id)?;
    let latest = latest_change(&tx)?;
    if cursor > latest {
        return Err(StoreError::CursorAhead { cursor, latest });
    }
    let stores: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM stores")?
        .query_row([], |r| r.get(0))?;

    // One more than asked, to know whether another page follows. A store's own gift
    // redemptions are left out: it already knows them.
    let ids: Vec<(i64, Entity, String)> = tx
        .prepare_cached(
            "SELECT change_seq, 0, member_id FROM members WHERE change_seq > ?1
             UNION ALL SELECT change_seq, 1, campaign_id FROM campaigns WHERE change_seq > ?1
             UNION ALL SELECT change_seq, 2, gift_id FROM gift_redemptions
                       WHERE change_seq > ?1 AND store_id <> ?3
             ORDER BY 1 LIMIT ?2",
        )?
        .query_map(params![cursor, limit as i64 + 1, store_id], |r| {
            let entity = match r.get::<_, i64>(1)? {
                0 => Entity::Member,
                1 => Entity::Campaign,
                _ => Entity::Redemption,
            };
            Ok((r.get(0)?, entity, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let has_more = ids.len() > limit;

    let mut changes = Vec::with_capacity(ids.len().min(limit));
    let mut next = cursor;
    for (seq, entity, id) in ids.into_iter().take(limit) {
        next = seq;
        let change = match entity {
            Entity::Member => {
                let Some(base) = member_base(&tx, &id)? else {
                    continue;
                };
                let (balance, _) = member_totals(&tx, &id)?;
                Change::Member(MemberRecord {
                    member_id: id,
                    profile: base,
                    balance,
                    balance_watermark: watermark,
                    offline_allowance: policy.allowance(balance, stores),
                })
            }
            Entity::Campaign => tx
                .prepare_cached(
                    "SELECT version, body, deleted FROM campaigns WHERE campaign_id = ?1",
                )?
                .query_row([&id], |r| {
                    let body: String = r.get(1)?;
                    Ok(Change::Campaign(CampaignRecord {
                        campaign_id: id.clone(),
                        version: r.get(0)?,
                        // Stored from a parsed JSON value; unreadable only if edited by hand.
                        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                        deleted: r.get(2)?,
                    }))
                })?,
            Entity::Redemption => tx
                .prepare_cached(
                    "SELECT member_id, store_id, event_id FROM gift_redemptions WHERE gift_id = ?1",
                )?
                .query_row([&id], |r| {
                    Ok(Change::RedemptionElsewhere(GiftRedeemedElsewhere {
                        gift_id: id.clone(),
                        member_id: r.get(0)?,
                        store_id: r.get(1)?,
                        event_id: r.get(2)?,
                    }))
                })?,
        };
        changes.push(change);
    }
    Ok(ChangesPage {
        protocol: PROTOCOL_VERSION,
        changes,
        next_cursor: crate::cursor::encode(next),
        has_more,
        hq_time,
        watermark,
        ledger_id,
    })
}
