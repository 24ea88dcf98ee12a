//! Admin writes and reads: stores, members and their cards, campaigns, reconciliation.

use super::accounts::{member_base, member_totals};
use super::sql::{args, Dialect, Row, Sql, SqlExt, Wake};
use super::{
    Flag, LedgerBindingRecord, MemberInput, MemberView, Reconciliation, ReconciliationFilter,
    Rejection, StoreError,
};
use crate::token::TokenHash;

/// Most recent flags and rejections listed by the reconciliation report.
const REPORT_LIMIT: i64 = 1_000;

pub fn put_store(sql: &mut dyn Sql, store_id: &str, token: &TokenHash) -> Result<(), StoreError> {
    let hash = token.to_hex();
    if sql.exists(
        "SELECT store_id FROM stores WHERE token_sha256 = ?1 AND store_id <> ?2",
        args![&hash, store_id],
    )? {
        // A token names exactly one store: that is how HQ knows who is pushing.
        return Err(StoreError::TokenTaken);
    }
    sql.exec(
        "INSERT INTO stores (store_id, token_sha256) VALUES (?1, ?2)
         ON CONFLICT (store_id) DO UPDATE SET token_sha256 = excluded.token_sha256",
        args![store_id, hash],
    )?;
    Ok(())
}

/// The hash of the token `store_id` holds; `None` for a store HQ does not know.
pub fn store_token(sql: &mut dyn Sql, store_id: &str) -> Result<Option<TokenHash>, StoreError> {
    let hex = sql
        .row(
            "SELECT token_sha256 FROM stores WHERE store_id = ?1",
            args![store_id],
        )?
        .map(|r| r.text(0))
        .transpose()?;
    // A value that is not a hash (edited by hand) matches no token.
    Ok(hex.and_then(|h| TokenHash::from_hex(&h)))
}

/// The store whose token hashes to `token`.
pub fn store_for_token(sql: &mut dyn Sql, token: &TokenHash) -> Result<Option<String>, StoreError> {
    sql.row(
        "SELECT store_id FROM stores WHERE token_sha256 = ?1",
        args![token.to_hex()],
    )?
    .map(|r| r.text(0))
    .transpose()
}

pub fn put_member(sql: &mut dyn Sql, member_id: &str, m: &MemberInput) -> Result<(), StoreError> {
    put_member_in(sql, member_id, m)?;
    sql.announce(Wake::Changes);
    Ok(())
}

/// A bulk import: every member as [`put_member`] saves one, in order, in the caller's one
/// transaction. SQLite runs it row by row (a statement costs no round trip there); PostgreSQL
/// runs a batch as a few set statements ([`import_members_set`]) unless a member or a card
/// comes twice in it, where only the row-by-row order says which row wins.
pub fn import_members(
    sql: &mut dyn Sql,
    members: &[(String, MemberInput)],
) -> Result<(), StoreError> {
    if sql.dialect() == Dialect::Postgres && !repeats(members) {
        import_members_set(sql, members)?;
    } else {
        for (member_id, m) in members {
            put_member_in(sql, member_id, m)?;
        }
    }
    // One wake-up for the batch: pulls read every change it made in one page or more.
    if !members.is_empty() {
        sql.announce(Wake::Changes);
    }
    Ok(())
}

/// A member id or a card number that appears twice in the batch.
fn repeats(members: &[(String, MemberInput)]) -> bool {
    let mut ids = std::collections::HashSet::new();
    let mut cards = std::collections::HashSet::new();
    members.iter().any(|(id, m)| {
        !ids.insert(id.as_str()) || m.cards.iter().any(|c| !cards.insert(c.as_str()))
    })
}

/// PostgreSQL's import of a batch with no member and no card twice: the same end state as
/// [`put_member_in`] row by row (each member its own change number, a card moved from another
/// member renumbering that member), in five statements instead of several per member. The
/// batch travels as one JSON text parameter.
fn import_members_set(
    sql: &mut dyn Sql,
    members: &[(String, MemberInput)],
) -> Result<(), StoreError> {
    let batch = serde_json::Value::Array(
        members
            .iter()
            .map(|(id, m)| {
                serde_json::json!({
                    "member_id": id,
                    "tier": m.tier,
                    "segments": serde_json::to_string(&m.segments).unwrap_or_else(|_| "[]".into()),
                    "qr_public_key": m.qr_public_key,
                    "proximity_key": m.proximity_key,
                    "display_name": m.display_name,
                    "cards": m.cards,
                })
            })
            .collect(),
    )
    .to_string();
    // Taken first: the change-number lock, held to the commit as for any change.
    sql.next_change()?;
    // Members outside the batch losing a card to it: they change too (their balance).
    let losers: Vec<String> = sql
        .rows(
            "SELECT DISTINCT c.member_id FROM cards c
             JOIN (SELECT b.m->>'member_id' AS member_id, jsonb_array_elements_text(b.m->'cards') AS card
                   FROM jsonb_array_elements(CAST(CAST(?1 AS TEXT) AS jsonb)) AS b(m)) AS moved
               ON moved.card = c.card_number
             WHERE c.member_id NOT IN
               (SELECT b.m->>'member_id' FROM jsonb_array_elements(CAST(CAST(?1 AS TEXT) AS jsonb)) AS b(m))",
            args![&batch],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<_, _>>()?;
    sql.exec(
        "INSERT INTO members (member_id, tier, segments, qr_public_key, proximity_key, change_seq, display_name)
         SELECT b.m->>'member_id', b.m->>'tier', b.m->>'segments', b.m->>'qr_public_key',
           b.m->>'proximity_key', nextval('change_seq'), b.m->>'display_name'
         FROM jsonb_array_elements(CAST(CAST(?1 AS TEXT) AS jsonb)) WITH ORDINALITY AS b(m, i)
         ORDER BY b.i
         ON CONFLICT (member_id) DO UPDATE SET tier = excluded.tier, segments = excluded.segments,
           qr_public_key = excluded.qr_public_key, proximity_key = excluded.proximity_key,
           change_seq = excluded.change_seq, display_name = excluded.display_name",
        args![&batch],
    )?;
    sql.exec(
        "DELETE FROM cards WHERE member_id IN
           (SELECT b.m->>'member_id' FROM jsonb_array_elements(CAST(CAST(?1 AS TEXT) AS jsonb)) AS b(m))",
        args![&batch],
    )?;
    sql.exec(
        "INSERT INTO cards (card_number, member_id)
         SELECT c.card, b.m->>'member_id'
         FROM jsonb_array_elements(CAST(CAST(?1 AS TEXT) AS jsonb)) AS b(m),
           jsonb_array_elements_text(b.m->'cards') AS c(card)
         ON CONFLICT (card_number) DO UPDATE SET member_id = excluded.member_id",
        args![&batch],
    )?;
    if !losers.is_empty() {
        tracing::info!(members = losers.len(), "Moved cards from other members.");
        let losers: Vec<&str> = losers.iter().map(String::as_str).collect();
        sql.renumber_members(&losers)?;
    }
    Ok(())
}

fn put_member_in(sql: &mut dyn Sql, member_id: &str, m: &MemberInput) -> Result<(), StoreError> {
    let seq = sql.next_change()?;
    let segments = serde_json::to_string(&m.segments).unwrap_or_else(|_| "[]".into());
    sql.exec(
        "INSERT INTO members (member_id, tier, segments, qr_public_key, proximity_key, change_seq, display_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (member_id) DO UPDATE SET tier = excluded.tier, segments = excluded.segments,
           qr_public_key = excluded.qr_public_key, proximity_key = excluded.proximity_key,
           change_seq = excluded.change_seq, display_name = excluded.display_name",
        args![
            member_id,
            &m.tier,
            segments,
            &m.qr_public_key,
            &m.proximity_key,
            seq,
            &m.display_name
        ],
    )?;
    sql.exec("DELETE FROM cards WHERE member_id = ?1", args![member_id])?;
    for card in &m.cards {
        // A card moves with its points: the member who held it loses them, so it changes too.
        let previous = sql
            .row(
                "SELECT member_id FROM cards WHERE card_number = ?1",
                args![card],
            )?
            .map(|r| r.text(0))
            .transpose()?;
        sql.exec(
            "INSERT INTO cards (card_number, member_id) VALUES (?1, ?2)
             ON CONFLICT (card_number) DO UPDATE SET member_id = excluded.member_id",
            args![card, member_id],
        )?;
        if let Some(prev) = previous.filter(|p| p != member_id) {
            // Its own sequence number: the feed's cursor needs one entity per number.
            let prev_seq = sql.next_change()?;
            sql.exec(
                "UPDATE members SET change_seq = ?2 WHERE member_id = ?1",
                args![&prev, prev_seq],
            )?;
            tracing::info!(card = %card, from = %prev, to = %member_id, "Moved card to another member.");
        }
    }
    Ok(())
}

pub fn member(sql: &mut dyn Sql, member_id: &str) -> Result<Option<MemberView>, StoreError> {
    let Some(base) = member_base(sql, member_id)? else {
        return Ok(None);
    };
    let (balance, events) = member_totals(sql, member_id)?;
    let cards = base.cards.clone();
    let mut accounts = vec![member_id.to_owned()];
    accounts.extend(cards.iter().map(|c| loyalty_protocol::card_account(c)));
    let mut flags = Vec::new();
    for account in &accounts {
        for r in sql.rows(
            "SELECT flag, event_id, store_id, member, reason, flagged_at FROM flags
             WHERE member = ?1 ORDER BY id",
            args![account],
        )? {
            let f = flag_row(&r)?;
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
    sql: &mut dyn Sql,
    campaign_id: &str,
    body: &serde_json::Value,
) -> Result<i64, StoreError> {
    let seq = sql.next_change()?;
    let version = sql
        .one(
            "INSERT INTO campaigns (campaign_id, version, body, deleted, change_seq)
             VALUES (?1, 1, ?2, 0, ?3)
             ON CONFLICT (campaign_id) DO UPDATE SET version = campaigns.version + 1,
               body = excluded.body, deleted = 0, change_seq = excluded.change_seq
             RETURNING version",
            args![campaign_id, body.to_string(), seq],
        )?
        .int(0)?;
    sql.announce(Wake::Changes);
    Ok(version)
}

pub fn delete_campaign(sql: &mut dyn Sql, campaign_id: &str) -> Result<Option<i64>, StoreError> {
    let seq = sql.next_change()?;
    let version = sql
        .row(
            "UPDATE campaigns SET version = version + 1, deleted = 1, change_seq = ?2
             WHERE campaign_id = ?1 RETURNING version",
            args![campaign_id, seq],
        )?
        .map(|r| r.int(0))
        .transpose()?;
    if version.is_some() {
        sql.announce(Wake::Changes);
    }
    Ok(version)
}

fn flag_row(r: &Row) -> Result<Flag, StoreError> {
    Ok(Flag {
        flag: r.text(0)?,
        event_id: r.text(1)?,
        store_id: r.text(2)?,
        member: r.opt_text(3)?,
        reason: r.text(4)?,
        flagged_at: r.text(5)?,
    })
}

/// Each list filtered in SQL (a `NULL` parameter matches everything), so the unfiltered report
/// is the same query it always was. Parameters are cast to TEXT where they stand alone: else
/// PostgreSQL cannot tell their type from `?N IS NULL`.
pub fn reconciliation(
    sql: &mut dyn Sql,
    filter: &ReconciliationFilter,
) -> Result<Reconciliation, StoreError> {
    let ReconciliationFilter {
        store,
        flag,
        since,
        until,
    } = filter;
    let flags = sql
        .rows(
            "SELECT flag, event_id, store_id, member, reason, flagged_at FROM
               (SELECT * FROM flags
                WHERE (CAST(?2 AS TEXT) IS NULL OR store_id = ?2)
                  AND (CAST(?3 AS TEXT) IS NULL OR flag = ?3)
                  AND (CAST(?4 AS TEXT) IS NULL OR flagged_at >= ?4)
                  AND (CAST(?5 AS TEXT) IS NULL OR flagged_at < ?5)
                ORDER BY id DESC LIMIT ?1) AS recent ORDER BY id",
            args![REPORT_LIMIT, store, flag, since, until],
        )?
        .iter()
        .map(flag_row)
        .collect::<Result<_, _>>()?;
    // Rejections and bindings are not flags: a report of one kind of flag has none.
    let others = flag.is_none();
    let rejections = if others {
        sql.rows(
            "SELECT event_id, store_id, reason, event, rejected_at FROM rejections
             WHERE (CAST(?2 AS TEXT) IS NULL OR store_id = ?2)
               AND (CAST(?3 AS TEXT) IS NULL OR rejected_at >= ?3)
               AND (CAST(?4 AS TEXT) IS NULL OR rejected_at < ?4)
             ORDER BY rejected_at DESC LIMIT ?1",
            args![REPORT_LIMIT, store, since, until],
        )?
        .iter()
        .map(|r| {
            Ok(Rejection {
                event_id: r.text(0)?,
                store_id: r.text(1)?,
                reason: r.text(2)?,
                event: r.text(3)?,
                rejected_at: r.text(4)?,
            })
        })
        .collect::<Result<_, StoreError>>()?
    } else {
        Vec::new()
    };
    let ledger_bindings = if others {
        sql.rows(
            "SELECT store_id, ledger_id, after_seq, previous_ledger_id, previous_watermark, reason,
               bound_at FROM ledger_bindings
             WHERE (CAST(?2 AS TEXT) IS NULL OR store_id = ?2)
               AND (CAST(?3 AS TEXT) IS NULL OR bound_at >= ?3)
               AND (CAST(?4 AS TEXT) IS NULL OR bound_at < ?4)
             ORDER BY id DESC LIMIT ?1",
            args![REPORT_LIMIT, store, since, until],
        )?
        .iter()
        .map(|r| {
            Ok(LedgerBindingRecord {
                store_id: r.text(0)?,
                ledger_id: r.text(1)?,
                after_seq: r.int(2)?,
                previous_ledger_id: r.opt_text(3)?,
                previous_watermark: r.int(4)?,
                reason: r.text(5)?,
                bound_at: r.text(6)?,
            })
        })
        .collect::<Result<_, StoreError>>()?
    } else {
        Vec::new()
    };
    Ok(Reconciliation {
        flags,
        rejections,
        ledger_bindings,
    })
}

pub fn balance_drift(sql: &mut dyn Sql) -> Result<Vec<(String, i64, i64)>, StoreError> {
    sql.rows(
        "SELECT a.account, a.balance, CAST(COALESCE(e.total, 0) AS BIGINT) FROM accounts a
         LEFT JOIN (SELECT account, SUM(points) AS total FROM events
                    WHERE account IS NOT NULL GROUP BY account) e ON e.account = a.account
         WHERE a.balance <> COALESCE(e.total, 0)
         UNION ALL
         SELECT e.account, CAST(0 AS BIGINT), CAST(SUM(e.points) AS BIGINT) FROM events e
         WHERE e.account IS NOT NULL AND e.account NOT IN (SELECT account FROM accounts)
         GROUP BY e.account HAVING SUM(e.points) <> 0",
        &[],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, r.int(1)?, r.int(2)?)))
    .collect()
}

pub fn account_balances(sql: &mut dyn Sql) -> Result<Vec<(String, i64)>, StoreError> {
    sql.rows(
        "SELECT account, balance FROM accounts ORDER BY account",
        &[],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, r.int(1)?)))
    .collect()
}
