//! What callers ask the writer to record, and how each is applied inside the transaction.

use super::outcome::{
    keys, Answer, ImportSummary, LinePoints, LineRefunded, PointsRedeemed, Recorded, Redeemed,
    RefundOutcome, Refusal, SaleOutcome,
};
use super::LedgerError;
use crate::engine::{self, BasketLine, LineRecord, MemberProfile, Rules, SaleRecord};
use chrono::{DateTime, SecondsFormat, Utc};
use loyalty_protocol::bounds;
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Who a sale or redemption is for, as the lane knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    Member(String),
    /// A valid card number; it may not (yet) be linked to a member.
    Card(String),
}

#[derive(Debug, Clone)]
pub struct SaleRequest {
    pub lane: String,
    pub receipt_id: String,
    /// With lines, their sum (the API checks it).
    pub total_cents: i64,
    /// Empty: a sale given as a total alone.
    pub lines: Vec<BasketLine>,
    /// Redemptions (rewards, gifts) the POS applied to this sale: no void can give them back.
    pub redemption_ids: Vec<String>,
    pub identity: Option<Identity>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub lane: String,
    pub refund_id: String,
    pub receipt_id: String,
    /// What to refund: an amount, or units of given lines.
    pub what: RefundOf,
    pub at: DateTime<Utc>,
}

/// A refund by amount (proportional points), or of given lines' units (their own points).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOf {
    Cents(i64),
    /// (1-based line number, units).
    Lines(Vec<(usize, i64)>),
}

#[derive(Debug, Clone)]
pub struct RedeemRequest {
    pub lane: String,
    pub redemption_id: String,
    pub member_id: String,
    pub points: i64,
    pub at: DateTime<Utc>,
    /// HQ has not been reached lately: the member's offline spend allowance applies.
    pub offline: bool,
    /// The catalogue item the points buy, with the basket it applies to; `None`: plain points.
    pub reward: Option<RewardUse>,
}

/// A catalogue reward being bought, and the basket its discount lines are computed on.
#[derive(Debug, Clone)]
pub struct RewardUse {
    pub reward_id: String,
    pub text: String,
    pub reward: engine::reward::Reward,
    pub basket: Vec<BasketLine>,
}

/// `POST /v1/lanes/{lane}/voids`: the POS voided a basket; the redemptions made for it come back.
#[derive(Debug, Clone)]
pub struct VoidRequest {
    pub lane: String,
    pub void_id: String,
    pub redemption_ids: Vec<String>,
    pub at: DateTime<Utc>,
}

/// A member as imported: an id and the profile HQ would send (`loyalty_protocol::MemberProfile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    #[serde(flatten)]
    pub profile: loyalty_protocol::MemberProfile,
}

pub(super) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The account a card's points are held under until HQ links the card to a member: the one
/// definition in `loyalty_protocol`, which HQ reads the same way.
pub use loyalty_protocol::card_account;

/// The account points are held in: the member, or the card until HQ links it.
fn resolve_account(
    tx: &Connection,
    identity: &Identity,
) -> rusqlite::Result<(String, Option<String>, Option<String>)> {
    match identity {
        Identity::Member(m) => Ok((m.clone(), Some(m.clone()), None)),
        Identity::Card(card) => {
            let member: Option<String> = tx
                .prepare_cached("SELECT member_id FROM cards WHERE card_number = ?1")?
                .query_row([card], |r| r.get(0))
                .optional()?;
            Ok(match member {
                Some(m) => (m.clone(), Some(m), Some(card.clone())),
                None => (card_account(card), None, Some(card.clone())),
            })
        }
    }
}

pub(super) fn profile(tx: &Connection, member_id: &str) -> rusqlite::Result<Option<MemberProfile>> {
    tx.prepare_cached("SELECT tier, segments FROM members WHERE member_id = ?1")?
        .query_row([member_id], |r| {
            let segments: String = r.get(1)?;
            Ok(MemberProfile {
                tier: r.get(0)?,
                segments: serde_json::from_str(&segments).unwrap_or_default(),
            })
        })
        .optional()
}

pub(super) fn balance(tx: &Connection, account: &str) -> rusqlite::Result<i64> {
    Ok(tx
        .prepare_cached("SELECT points FROM balances WHERE account = ?1")?
        .query_row([account], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Applies one event's points to its account's balance and counts it as pending (not yet
/// acknowledged by HQ) in the same row, so the member view needs no index over events.
pub(super) fn add_points(
    tx: &Connection,
    account: &str,
    delta: i64,
    at: Option<&str>,
) -> rusqlite::Result<i64> {
    // UPDATE first: an upsert would check `points >= 0` against the candidate row of a debit.
    // No `RETURNING`: SQLite runs it as a trigger, which gives the statement a journal of its
    // own (a 64 KiB allocation made and freed per sale, and the heap trim that follows).
    let updated = tx
        .prepare_cached(
            "UPDATE balances SET points = points + ?2, pending_points = pending_points + ?2,
             pending_events = pending_events + 1, last_visit = COALESCE(?3, last_visit)
             WHERE account = ?1",
        )?
        .execute(params![account, delta, at])?;
    if updated == 0 {
        tx.prepare_cached(
            "INSERT INTO balances (account, points, last_visit, pending_points, pending_events)
             VALUES (?1, ?2, ?3, ?2, 1)",
        )?
        .execute(params![account, delta, at])?;
        return Ok(delta);
    }
    balance(tx, account)
}

/// The answer stored with the event recorded under `key`, if any.
pub(super) fn first_answer<T: DeserializeOwned>(
    tx: &Connection,
    key: &str,
) -> rusqlite::Result<Option<T>> {
    let stored: Option<String> = tx
        .prepare_cached("SELECT response FROM events WHERE idempotency_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    stored
        .map(|s| {
            serde_json::from_str(&s).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
            })
        })
        .transpose()
}

pub(super) struct NewEvent<'a> {
    pub key: &'a str,
    pub kind: &'a str,
    pub account: Option<&'a str>,
    pub lane: Option<&'a str>,
    pub points: i64,
    pub payload: Value,
    pub response: String,
    pub rule_version: Option<&'a str>,
    pub at: &'a str,
}

pub(super) fn append(tx: &Connection, e: NewEvent<'_>) -> rusqlite::Result<i64> {
    let id = uuid::Uuid::now_v7().to_string();
    tx.prepare_cached(
        "INSERT INTO events (event_id, idempotency_key, kind, account, lane, points, payload, response, rule_version, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        id,
        e.key,
        e.kind,
        e.account,
        e.lane,
        e.points,
        e.payload.to_string(),
        e.response,
        e.rule_version,
        e.at
    ])?;
    // The event is unsynced by being after `sync_state.acked_seq`: no outbox row to write.
    Ok(tx.last_insert_rowid())
}

/// An outcome inside the transaction: an SQL failure undoes this command (its batch runs again,
/// each command in a savepoint); a refusal is an answer that writes nothing.
pub(super) type Applied = Result<Result<Answer, LedgerError>, rusqlite::Error>;

/// A typed answer as stored with its event.
pub(super) fn stored<T: Serialize>(answer: &T) -> rusqlite::Result<String> {
    serde_json::to_string(answer).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

pub(super) fn sale(tx: &Connection, rules: &Rules, r: &SaleRequest) -> Applied {
    let key = keys::sale(&r.receipt_id);
    if let Some(first) = first_answer(tx, &key)? {
        return Ok(Ok(Answer::Sale(Recorded {
            answer: first,
            retry: true,
        })));
    }
    let at = ts(r.at);
    // Checked before anything is written: a refusal's savepoint is committed as it stands.
    for id in &r.redemption_ids {
        let usable = tx
            .prepare_cached(
                "SELECT 1 FROM redemptions
                 WHERE redemption_id = ?1 AND receipt_id IS NULL AND voided_by IS NULL",
            )?
            .exists([id])?;
        if !usable {
            return Ok(Err(Refusal::RedemptionUnusable(format!(
                "redemption {id} is unknown here, voided, or already used by another sale"
            ))
            .into()));
        }
    }
    let resolved = r
        .identity
        .as_ref()
        .map(|i| resolve_account(tx, i))
        .transpose()?;
    let (account, member_id, card) = match &resolved {
        Some((a, m, c)) => (Some(a.as_str()), m.clone(), c.clone()),
        None => (None, None, None),
    };
    let profile = match &member_id {
        Some(m) => profile(tx, m)?,
        None => None,
    };
    let (points, rule_version, balance_after, line_points) = match account {
        Some(account) => {
            let earning = if r.lines.is_empty() {
                engine::earn(rules, profile.as_ref(), r.total_cents, r.at)
            } else {
                engine::earn_basket(rules, profile.as_ref(), &r.lines, r.at)
            };
            // Checked before anything is written: an out-of-bounds credit would poison this
            // member's balance here and at HQ (protocol::bounds).
            if let Err(why) = bounds::add_to_balance(balance(tx, account)?, earning.points) {
                return Ok(Err(Refusal::PointsOutOfBounds(why.to_string()).into()));
            }
            let b = add_points(tx, account, earning.points, Some(&at))?;
            (
                earning.points,
                Some(earning.rule_version),
                Some(b),
                earning.lines,
            )
        }
        None => (0, None, None, Vec::new()),
    };
    // Lines earn nothing when nobody is identified; they are kept all the same, for refunds.
    let line_points: Vec<i64> = (0..r.lines.len())
        .map(|i| line_points.get(i).copied().unwrap_or(0))
        .collect();
    let response = SaleOutcome {
        receipt_id: r.receipt_id.clone(),
        member_id: member_id.clone(),
        card: card.clone(),
        points_earned: points,
        balance: balance_after,
        gifts: match &member_id {
            Some(m) => super::read::open_gifts(tx, m)?,
            None => Vec::new(),
        },
        rule_version: rule_version.clone(),
        lines: r
            .lines
            .iter()
            .zip(&line_points)
            .enumerate()
            .map(|(i, (l, p))| LinePoints {
                line: i + 1,
                sku: l.sku.clone(),
                points: *p,
            })
            .collect(),
    };
    let lines_json: Vec<Value> = r
        .lines
        .iter()
        .zip(&line_points)
        .map(|(l, p)| {
            json!({"sku": l.sku, "category": l.category, "brand": l.brand, "quantity": l.quantity,
                   "unit_cents": l.unit_cents, "total_cents": l.total_cents, "points": p})
        })
        .collect();
    let mut payload = json!({"receipt_id": r.receipt_id, "total_cents": r.total_cents, "card": card, "member_id": member_id});
    if !lines_json.is_empty() {
        payload["lines"] = Value::Array(lines_json);
    }
    if !r.redemption_ids.is_empty() {
        payload["redemption_ids"] = json!(r.redemption_ids);
    }
    for id in &r.redemption_ids {
        tx.prepare_cached("UPDATE redemptions SET receipt_id = ?2 WHERE redemption_id = ?1")?
            .execute(params![id, r.receipt_id])?;
    }
    let seq = append(
        tx,
        NewEvent {
            key: &key,
            kind: "sale",
            account,
            lane: Some(&r.lane),
            points,
            payload,
            response: stored(&response)?,
            rule_version: rule_version.as_deref(),
            at: &at,
        },
    )?;
    tx.prepare_cached(
        "INSERT INTO sales (seq, account, total_cents, points_earned) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![seq, account, r.total_cents, points])?;
    let mut insert_line = tx.prepare_cached(
        "INSERT INTO sale_lines (sale_seq, line_no, sku, category, brand, quantity, unit_cents, total_cents, points)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (i, (l, p)) in r.lines.iter().zip(&line_points).enumerate() {
        insert_line.execute(params![
            seq,
            line_no(i + 1),
            l.sku,
            l.category,
            l.brand,
            l.quantity,
            l.unit_cents,
            l.total_cents,
            p
        ])?;
    }
    Ok(Ok(Answer::Sale(Recorded {
        answer: response,
        retry: false,
    })))
}

pub(super) fn refund(tx: &Connection, r: &RefundRequest) -> Applied {
    let key = keys::refund(&r.refund_id);
    if let Some(first) = first_answer(tx, &key)? {
        return Ok(Ok(Answer::Refund(first)));
    }
    let sale: Option<(i64, Option<String>, SaleRecord)> = tx
        .prepare_cached(
            "SELECT s.seq, s.account, s.total_cents, s.points_earned, s.refunded_cents, s.points_due_back
             FROM events e JOIN sales s ON s.seq = e.seq WHERE e.idempotency_key = ?1",
        )?
        .query_row([keys::sale(&r.receipt_id)], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                SaleRecord {
                    total_cents: row.get(2)?,
                    points_earned: row.get(3)?,
                    refunded_cents: row.get(4)?,
                    points_due_back: row.get(5)?,
                },
            ))
        })
        .optional()?;
    let Some((sale_seq, account, record)) = sale else {
        return Ok(Err(Refusal::UnknownReceipt(r.receipt_id.clone()).into()));
    };
    let current = match &account {
        Some(a) => balance(tx, a)?,
        None => 0,
    };
    let (decision, cents, lines) = match &r.what {
        RefundOf::Cents(cents) => match engine::refund(record, *cents, current) {
            Ok(d) => (d, *cents, Vec::new()),
            Err(e) => return Ok(Err(Refusal::RefundRefused(e.to_string()).into())),
        },
        RefundOf::Lines(requested) => {
            let kept = sale_lines(tx, sale_seq)?;
            if kept.is_empty() {
                return Ok(Err(Refusal::RefundRefused(format!(
                    "sale {} was recorded as a total without lines: refund it by `total_cents`",
                    r.receipt_id
                ))
                .into()));
            }
            match engine::refund_lines(record, &kept, requested, current) {
                Ok(d) => (d.decision, d.cents, d.lines),
                Err(e) => return Ok(Err(Refusal::RefundRefused(e.to_string()).into())),
            }
        }
    };
    let balance_after = match &account {
        Some(a) => Some(add_points(tx, a, -decision.points_taken, None)?),
        None => None,
    };
    tx.prepare_cached(
        "UPDATE sales SET refunded_cents = refunded_cents + ?2, points_due_back = points_due_back + ?3 WHERE seq = ?1",
    )?
    .execute(params![sale_seq, cents, decision.points_due])?;
    let mut update_line = tx.prepare_cached(
        "UPDATE sale_lines SET refunded_quantity = refunded_quantity + ?3, points_back = points_back + ?4
         WHERE sale_seq = ?1 AND line_no = ?2",
    )?;
    for (line, units, _, due) in &lines {
        update_line.execute(params![sale_seq, line_no(*line), units, due])?;
    }
    let response = RefundOutcome {
        refund_id: r.refund_id.clone(),
        receipt_id: r.receipt_id.clone(),
        refunded_cents: cents,
        lines: lines
            .iter()
            .map(|(line, quantity, cents, due)| LineRefunded {
                line: *line,
                quantity: *quantity,
                refunded_cents: *cents,
                points_due: *due,
            })
            .collect(),
        points_taken_back: decision.points_taken,
        points_uncollected: decision.uncollected,
        balance: balance_after,
    };
    let mut payload = json!({"refund_id": r.refund_id, "receipt_id": r.receipt_id, "total_cents": cents, "points_due": decision.points_due, "uncollected": decision.uncollected});
    if !lines.is_empty() {
        payload["lines"] = json!(response.lines);
    }
    append(
        tx,
        NewEvent {
            key: &key,
            kind: "refund",
            account: account.as_deref(),
            lane: Some(&r.lane),
            points: -decision.points_taken,
            payload,
            response: stored(&response)?,
            rule_version: None,
            at: &ts(r.at),
        },
    )?;
    Ok(Ok(Answer::Refund(response)))
}

/// A 1-based line number as stored (a basket has at most a few hundred lines).
fn line_no(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A sale's lines as kept for refunds, in line order.
fn sale_lines(tx: &Connection, sale_seq: i64) -> rusqlite::Result<Vec<LineRecord>> {
    tx.prepare_cached(
        "SELECT quantity, total_cents, points, refunded_quantity, points_back FROM sale_lines
         WHERE sale_seq = ?1 ORDER BY line_no",
    )?
    .query_map([sale_seq], |row| {
        Ok(LineRecord {
            quantity: row.get(0)?,
            total_cents: row.get(1)?,
            points: row.get(2)?,
            refunded_quantity: row.get(3)?,
            points_back: row.get(4)?,
        })
    })?
    .collect()
}

pub(super) fn redeem(tx: &Connection, r: &RedeemRequest) -> Applied {
    let key = keys::redemption(&r.redemption_id);
    if let Some(first) = first_answer(tx, &key)? {
        return Ok(Ok(Answer::Redeemed(first)));
    }
    let (current, allowance, spent): (i64, Option<i64>, i64) = tx
        .prepare_cached(
            "SELECT points, offline_allowance, pending_spent FROM balances WHERE account = ?1",
        )?
        .query_row([&r.member_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?
        .unwrap_or((0, None, 0));
    if let Err(e) = engine::redeem(current, r.points) {
        return Ok(Err(Refusal::InsufficientBalance(e.to_string()).into()));
    }
    // Checked before anything is spent: a reward that does not apply costs nothing.
    let discounts = match &r.reward {
        Some(u) => match engine::reward::apply(&u.reward, &u.text, &u.basket) {
            Ok(d) => d,
            Err(e) => return Ok(Err(Refusal::RewardNotApplicable(e.to_string()).into())),
        },
        None => Vec::new(),
    };
    if r.offline {
        if let Some(allowance) = allowance {
            if spent.saturating_add(r.points) > allowance {
                return Ok(Err(Refusal::OfflineAllowance { allowance, spent }.into()));
            }
        }
    }
    let balance_after = add_points(tx, &r.member_id, -r.points, None)?;
    tx.prepare_cached("UPDATE balances SET pending_spent = pending_spent + ?2 WHERE account = ?1")?
        .execute(params![r.member_id, r.points])?;
    let response = Redeemed::Points(PointsRedeemed {
        redemption_id: r.redemption_id.clone(),
        member_id: r.member_id.clone(),
        points_spent: r.points,
        balance: balance_after,
        reward_id: r.reward.as_ref().map(|u| u.reward_id.clone()),
        discounts,
    });
    record_redemption(tx, &r.redemption_id, &r.member_id, r.points, None)?;
    let mut payload = json!({"redemption_id": r.redemption_id, "points": r.points});
    if let Redeemed::Points(p) = &response {
        if let Some(id) = &p.reward_id {
            payload["reward_id"] = json!(id);
            payload["discounts"] = json!(p.discounts);
        }
    }
    append(
        tx,
        NewEvent {
            key: &key,
            kind: "redemption",
            account: Some(&r.member_id),
            lane: Some(&r.lane),
            points: -r.points,
            payload,
            response: stored(&response)?,
            rule_version: None,
            at: &ts(r.at),
        },
    )?;
    Ok(Ok(Answer::Redeemed(response)))
}

/// Notes a redemption's points (or gift) so that a void can give it back and a sale can use it.
pub(super) fn record_redemption(
    tx: &Connection,
    redemption_id: &str,
    member_id: &str,
    points: i64,
    gift_id: Option<&str>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO redemptions (redemption_id, member_id, points, gift_id) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![redemption_id, member_id, points, gift_id])?;
    Ok(())
}

/// Writes a member's profile as imported or pulled from HQ: the fields, not the cards. A profile
/// equal to the stored one is left alone, `updated_at` included: the proximity resolver is
/// rebuilt only for a real change, and a pulled page that repeats what the ledger holds adds
/// nothing to the WAL for a till's next fsync to carry.
pub(super) fn upsert_member(
    tx: &Connection,
    member_id: &str,
    m: &loyalty_protocol::MemberProfile,
    at: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO members (member_id, tier, segments, qr_public_key, proximity_key, display_name, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(member_id) DO UPDATE SET tier = ?2, segments = ?3, qr_public_key = ?4, proximity_key = ?5, display_name = ?6, updated_at = ?7
         WHERE (members.tier, members.segments, members.qr_public_key, members.proximity_key, members.display_name)
            IS NOT (excluded.tier, excluded.segments, excluded.qr_public_key, excluded.proximity_key, excluded.display_name)",
    )?
    .execute(params![
        member_id,
        m.tier,
        serde_json::to_string(&m.segments).unwrap_or_else(|_| "[]".into()),
        m.qr_public_key,
        m.proximity_key,
        m.display_name,
        at
    ])?;
    Ok(())
}

/// Links `card` to `member_id` (moving it from another member if need be).
pub(super) fn link_card(tx: &Connection, card: &str, member_id: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO cards (card_number, member_id) VALUES (?1, ?2)
         ON CONFLICT(card_number) DO UPDATE SET member_id = ?2 WHERE cards.member_id IS NOT ?2",
    )?
    .execute(params![card, member_id])?;
    Ok(())
}

pub(super) fn import(tx: &Connection, members: &[MemberRecord]) -> Applied {
    let now = ts(Utc::now());
    let mut cards = 0;
    for m in members {
        upsert_member(tx, &m.member_id, &m.profile, &now)?;
        for card in &m.profile.cards {
            link_card(tx, card, &m.member_id)?;
        }
        cards += m.profile.cards.len();
    }
    Ok(Ok(Answer::Imported(ImportSummary {
        members: members.len(),
        cards,
    })))
}

pub(super) fn see_nonce(tx: &Connection, nonce: &str, member_id: &str, unix: i64) -> Applied {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO qr_nonces (nonce, member_id, seen_at) VALUES (?1, ?2, ?3) ON CONFLICT(nonce) DO NOTHING",
        )?
        .execute(params![nonce, member_id, unix])?;
    Ok(Ok(Answer::Nonce(inserted == 1)))
}
