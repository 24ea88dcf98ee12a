//! The changes feed: current state of every entity whose change sequence is after the cursor.
//!
//! A page is read in one snapshot, so a member's `balance` and the page's `watermark` (its
//! `balance_watermark`) describe the same moment: the agent adds only its own events with a
//! higher seq, and counts nothing twice.

use super::accounts::{member_base, member_totals};
use super::sql::{args, Dialect, Sql, SqlExt};
use super::StoreError;
use crate::allowance::AllowancePolicy;
use crate::clock;
use loyalty_protocol::{
    CampaignRecord, Change, ChangesPage, GiftRedeemedElsewhere, MemberRecord, PROTOCOL_VERSION,
};

/// The highest change sequence number handed out so far.
pub fn latest_change(sql: &mut dyn Sql) -> Result<i64, StoreError> {
    let greatest = match sql.dialect() {
        Dialect::Sqlite => "MAX",
        Dialect::Postgres => "GREATEST",
    };
    sql.one(
        &format!(
            "SELECT {greatest}(COALESCE((SELECT MAX(change_seq) FROM members), 0),
                    COALESCE((SELECT MAX(change_seq) FROM campaigns), 0),
                    COALESCE((SELECT MAX(change_seq) FROM gift_redemptions), 0))"
        ),
        &[],
    )?
    .int(0)
}

enum Entity {
    Member,
    Campaign,
    Redemption,
}

pub fn page(
    tx: &mut dyn Sql,
    policy: &AllowancePolicy,
    store_id: &str,
    cursor: i64,
    limit: usize,
) -> Result<ChangesPage, StoreError> {
    let hq_time = clock::now();
    let super::ledgers::Bound {
        ledger_id,
        watermark,
        ..
    } = super::ledgers::bound(tx, store_id)?;
    let latest = latest_change(tx)?;
    if cursor > latest {
        return Err(StoreError::CursorAhead { cursor, latest });
    }
    let stores = tx.one("SELECT COUNT(*) FROM stores", &[])?.int(0)?;

    // One more than asked, to know whether another page follows. A store's own gift
    // redemptions are left out: it already knows them.
    let ids = tx
        .rows(
            "SELECT change_seq, CAST(0 AS BIGINT), member_id FROM members WHERE change_seq > ?1
             UNION ALL SELECT change_seq, 1, campaign_id FROM campaigns WHERE change_seq > ?1
             UNION ALL SELECT change_seq, 2, gift_id FROM gift_redemptions
                       WHERE change_seq > ?1 AND store_id <> ?3
             ORDER BY 1 LIMIT ?2",
            args![cursor, limit as i64 + 1, store_id],
        )?
        .iter()
        .map(|r| {
            let entity = match r.int(1)? {
                0 => Entity::Member,
                1 => Entity::Campaign,
                _ => Entity::Redemption,
            };
            Ok((r.int(0)?, entity, r.text(2)?))
        })
        .collect::<Result<Vec<(i64, Entity, String)>, StoreError>>()?;
    let has_more = ids.len() > limit;

    let mut changes = Vec::with_capacity(ids.len().min(limit));
    let mut next = cursor;
    for (seq, entity, id) in ids.into_iter().take(limit) {
        next = seq;
        let change = match entity {
            Entity::Member => {
                let Some(base) = member_base(tx, &id)? else {
                    continue;
                };
                let (balance, _) = member_totals(tx, &id)?;
                Change::Member(MemberRecord {
                    member_id: id,
                    profile: base,
                    balance,
                    balance_watermark: watermark,
                    offline_allowance: policy.allowance(balance, stores),
                })
            }
            Entity::Campaign => {
                let r = tx.one(
                    "SELECT version, body, deleted FROM campaigns WHERE campaign_id = ?1",
                    args![&id],
                )?;
                Change::Campaign(CampaignRecord {
                    campaign_id: id.clone(),
                    version: r.int(0)?,
                    // Stored from a parsed JSON value; unreadable only if edited by hand.
                    body: serde_json::from_str(&r.text(1)?).unwrap_or(serde_json::Value::Null),
                    deleted: r.bool(2)?,
                })
            }
            Entity::Redemption => {
                let r = tx.one(
                    "SELECT member_id, store_id, event_id FROM gift_redemptions WHERE gift_id = ?1",
                    args![&id],
                )?;
                Change::RedemptionElsewhere(GiftRedeemedElsewhere {
                    gift_id: id.clone(),
                    member_id: r.opt_text(0)?,
                    store_id: r.text(1)?,
                    event_id: r.text(2)?,
                })
            }
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
