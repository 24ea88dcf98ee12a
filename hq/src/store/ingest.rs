//! Ingestion of a pushed batch and the reconciliation rules of DESIGN.md.
//!
//! - Idempotent by `event_id` (`INSERT ... ON CONFLICT DO NOTHING`): a duplicate has no effect.
//! - Credits always stand.
//! - A refund links to the sale it reverses (same store, same `receipt_id`); without one it is
//!   stored and flagged `refund_without_sale`.
//! - A debit that leaves the member's HQ balance below zero is stored and flagged `overdraft`.
//! - A once-per-member gift already issued to the member for the campaign: HQ keeps the earlier
//!   by (`recorded_at`, `event_id`) and flags the later `duplicate_gift`, whichever arrives
//!   first. Both stay stored: the later was handed out and counts against the budget.
//! - A gift redeemed twice is flagged `duplicate_gift_redemption` on the second.
//! - Malformed events, and events that would take a balance out of `loyalty_protocol::bounds`,
//!   are refused and recorded in `rejections`, never stored as facts.
//! - What no store could have computed is stored and flagged: a sale earning more than
//!   [`Plausibility`] allows for its total (`implausible_points`), a gift above its bound, a
//!   credit to a member HQ never registered (`unknown_member`: held under that id until the
//!   member exists), an `event_id` pushed again with other content (`conflicting_duplicate`:
//!   the first stands), a receipt a store already sold (`duplicate_receipt`), refunds adding up
//!   to more than their sale (`refund_exceeds_sale`, as after a restored store ledger forgot an
//!   earlier refund).
//! - A batch that does not come from the store's ledger, or does not follow on, is refused
//!   whole before anything is written (see [`super::ledgers`]).

use std::collections::BTreeSet;

use super::accounts::{balance_for_account, member_of};
use super::ledgers;
use super::plausibility::Plausibility;
use super::sql::{args, Sql, SqlExt, Wake};
use super::{FeedPosted, Incoming, IngestResult, Push, StoreError};
use crate::clock;
use loyalty_protocol::{
    bounds, Event, EventKind, EventOutcome, OutcomeStatus, CARD_ACCOUNT_PREFIX,
};

pub const OVERDRAFT: &str = "overdraft";
pub const DUPLICATE_GIFT: &str = "duplicate_gift";
pub const REFUND_WITHOUT_SALE: &str = "refund_without_sale";
pub const DUPLICATE_GIFT_REDEMPTION: &str = "duplicate_gift_redemption";
pub const IMPLAUSIBLE_POINTS: &str = "implausible_points";
pub const UNKNOWN_MEMBER: &str = "unknown_member";
pub const CONFLICTING_DUPLICATE: &str = "conflicting_duplicate";
pub const DUPLICATE_RECEIPT: &str = "duplicate_receipt";
pub const REFUND_EXCEEDS_SALE: &str = "refund_exceeds_sale";

/// Applies a batch in the caller's transaction; the caller commits.
pub fn ingest(
    tx: &mut dyn Sql,
    plausibility: &Plausibility,
    dead_after_ms: i64,
    store_id: &str,
    push: Push,
) -> Result<IngestResult, StoreError> {
    let started = std::time::Instant::now();
    let now = clock::now();
    let mut changed = false;
    let Push {
        ledger_id,
        after_seq,
        events,
        agent_version,
    } = push;
    let mut watermark = ledgers::check_push(tx, store_id, &ledger_id, after_seq, &events, &now)?;
    lock_members(tx, &events)?;
    let before = watermark;
    let mut touched = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(events.len());
    let mut feed = Vec::new();
    let (mut accepted, mut duplicates, mut rejected, mut flagged) = (0u32, 0u32, 0u32, 0u32);
    for incoming in events {
        match incoming {
            Incoming::Valid(e) => {
                watermark = watermark.max(e.seq);
                let outcome = apply(
                    tx,
                    &mut changed,
                    plausibility,
                    &now,
                    &e,
                    &mut touched,
                    (dead_after_ms, &mut feed),
                )?;
                match &outcome.status {
                    OutcomeStatus::Accepted => accepted += 1,
                    OutcomeStatus::Duplicate => duplicates += 1,
                    OutcomeStatus::Rejected { .. } => rejected += 1,
                }
                flagged += u32::from(!outcome.flags.is_empty());
                outcomes.push(outcome);
            }
            Incoming::Invalid {
                event_id,
                seq,
                reason,
                raw,
            } => {
                if let Some(seq) = seq {
                    watermark = watermark.max(seq);
                }
                rejected += 1;
                outcomes.push(reject(tx, store_id, &now, event_id, reason, raw)?);
            }
        }
    }
    if !touched.is_empty() {
        // Numbered last: on PostgreSQL the numbers are handed out under a lock held to the
        // commit, so the shorter that stretch the better.
        let members: Vec<&str> = touched.iter().map(String::as_str).collect();
        tx.renumber_members(&members)?;
        changed = true;
    }
    if watermark > before {
        tx.exec(
            "UPDATE stores SET watermark = ?2 WHERE store_id = ?1",
            args![store_id, watermark],
        )?;
    }
    super::operator::note_push(
        tx,
        store_id,
        &now,
        agent_version.as_deref(),
        i64::from(accepted),
    )?;
    super::feed::announce(tx, &feed);
    if changed {
        tx.announce(Wake::Changes);
    }
    tracing::info!(
        store = %store_id, accepted, duplicates, rejected, flagged, watermark,
        apply_ms = started.elapsed().as_millis() as u64,
        "Ingested batch."
    );
    Ok(IngestResult {
        outcomes,
        watermark,
        feed,
        changed,
    })
}

/// Takes every member and account the batch touches at once: two batches sharing members (two
/// stores, two HQ processes) then take turns rather than deadlock.
fn lock_members(tx: &mut dyn Sql, events: &[Incoming]) -> Result<(), StoreError> {
    let mut keys = BTreeSet::new();
    for e in events {
        let Incoming::Valid(e) = e else { continue };
        if let Some(account) = &e.account {
            if account.starts_with(CARD_ACCOUNT_PREFIX) {
                keys.extend(member_of(tx, account)?);
            }
            keys.insert(account.clone());
        }
        if let Some(member) = e.payload_str("member_id") {
            keys.insert(member.to_owned());
        }
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    tx.lock_members(&keys)
}

/// Records a refused event (kept for the admin, never a fact) and its outcome.
fn reject(
    tx: &mut dyn Sql,
    store_id: &str,
    now: &str,
    event_id: String,
    reason: String,
    raw: String,
) -> Result<EventOutcome, StoreError> {
    tx.exec(
        "INSERT INTO rejections (event_id, store_id, reason, event, rejected_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        args![&event_id, store_id, &reason, raw, now],
    )?;
    tracing::warn!(store = %store_id, event = %event_id, %reason, "Rejected event.");
    Ok(EventOutcome {
        event_id,
        status: OutcomeStatus::Rejected { reason },
        flags: Vec::new(),
    })
}

/// A flag raised while applying an event.
struct PendingFlag {
    flag: &'static str,
    reason: String,
    /// `(store_id, event_id)` of an event stored earlier, when the flag lands on it rather than
    /// on the event being applied.
    on_earlier: Option<(String, String)>,
}

impl PendingFlag {
    fn here(flag: &'static str, reason: String) -> Self {
        PendingFlag {
            flag,
            reason,
            on_earlier: None,
        }
    }
}

/// Stores one well-formed event and its effects; returns its outcome.
fn apply(
    tx: &mut dyn Sql,
    changed: &mut bool,
    plausibility: &Plausibility,
    now: &str,
    e: &Event,
    touched: &mut BTreeSet<String>,
    (dead_after_ms, feed): (i64, &mut Vec<FeedPosted>),
) -> Result<EventOutcome, StoreError> {
    let Held {
        stored,
        balance,
        registered,
    } = held(tx, e)?;
    if let Some(stored) = stored {
        return duplicate(tx, now, e, &stored);
    }
    if e.account.is_some() {
        if let Err(why) = bounds::add_to_balance(balance, e.points) {
            let raw = serde_json::to_string(e).unwrap_or_default();
            return reject(
                tx,
                &e.store_id,
                now,
                e.event_id.clone(),
                why.to_string(),
                raw,
            );
        }
    }
    let mut flags: Vec<PendingFlag> = implausible(plausibility, e, registered);
    let member = match &e.account {
        Some(a) => member_of(tx, a)?,
        None => None,
    };
    // Whom a flag names: the member, or the card account nobody holds yet.
    let flag_member = member.clone().or_else(|| e.account.clone());

    let link = if e.kind == EventKind::Refund {
        let receipt = e.payload_str("receipt_id").unwrap_or_default();
        let sale = match tx.row(
            "SELECT event_id, total_cents, refunded_cents FROM sales
             WHERE store_id = ?1 AND receipt_id = ?2",
            args![&e.store_id, receipt],
        )? {
            Some(r) => Some((r.text(0)?, r.int(1)?, r.int(2)?)),
            None => None,
        };
        match &sale {
            None => flags.push(PendingFlag::here(
                REFUND_WITHOUT_SALE,
                format!("no sale with receipt {receipt} at store {}", e.store_id),
            )),
            Some((sale_id, total, refunded)) => {
                let cents = e
                    .payload
                    .get("total_cents")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0);
                let now_refunded = refunded.saturating_add(cents);
                tx.exec(
                    "UPDATE sales SET refunded_cents = ?2 WHERE event_id = ?1",
                    args![sale_id, now_refunded],
                )?;
                if now_refunded > *total {
                    flags.push(PendingFlag::here(
                        REFUND_EXCEEDS_SALE,
                        format!(
                            "refunds of receipt {receipt} at store {} add up to {now_refunded} cents, the sale was {total}",
                            e.store_id
                        ),
                    ));
                }
            }
        }
        sale.map(|(id, _, _)| id)
    } else {
        None
    };

    let fresh = tx.exec(
        "INSERT INTO events (event_id, store_id, seq, kind, account, lane, points, payload,
               rule_version, recorded_at, idempotency_key, link_event_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT DO NOTHING",
        args![
            &e.event_id,
            &e.store_id,
            e.seq,
            e.kind.as_str(),
            &e.account,
            &e.lane,
            e.points,
            e.payload.to_string(),
            &e.rule_version,
            &e.recorded_at,
            &e.idempotency_key,
            link,
        ],
    )?;
    if fresh == 0 {
        // Another transaction stored this event_id after our look-up (another store's push on
        // another HQ process): this batch is applied again from the start, seeing it held.
        return Err(StoreError::Retry(format!(
            "event {} was stored meanwhile",
            e.event_id
        )));
    }

    match e.kind {
        EventKind::Sale => {
            if let Some(receipt) = e.payload_str("receipt_id") {
                let total = e
                    .payload
                    .get("total_cents")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0);
                let fresh = tx.exec(
                    "INSERT INTO sales (store_id, receipt_id, event_id, total_cents)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    args![&e.store_id, receipt, &e.event_id, total],
                )?;
                if fresh == 0 {
                    // A ledger that lost its receipts (replaced, restored) credits a retried
                    // receipt again under a new event id: both stand, a person decides.
                    flags.push(PendingFlag::here(
                        DUPLICATE_RECEIPT,
                        format!(
                            "receipt {receipt} was already credited at store {}",
                            e.store_id
                        ),
                    ));
                }
            }
        }
        EventKind::GiftIssued
            if e.payload.get("once_per_member").and_then(|v| v.as_bool()) == Some(true) =>
        {
            once_per_member(tx, e, &mut flags)?;
        }
        EventKind::GiftRedeemed => {
            let gift = e.payload_str("gift_id").unwrap_or_default();
            let seq = tx.next_change()?;
            *changed = true;
            let fresh = tx.exec(
                "INSERT INTO gift_redemptions (gift_id, member_id, store_id, event_id, change_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                args![gift, &flag_member, &e.store_id, &e.event_id, seq],
            )?;
            if fresh == 0 {
                flags.push(PendingFlag::here(
                    DUPLICATE_GIFT_REDEMPTION,
                    format!("gift {gift} was already redeemed"),
                ));
            }
        }
        // A voided basket's gifts are open again; only this store's own redemption is undone.
        EventKind::RedemptionVoided => {
            let gifts = e
                .payload
                .get("gift_ids")
                .and_then(serde_json::Value::as_array);
            for gift in gifts
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
            {
                tx.exec(
                    "DELETE FROM gift_redemptions WHERE gift_id = ?1 AND store_id = ?2",
                    args![gift, &e.store_id],
                )?;
            }
        }
        _ => {}
    }

    if let Some(account) = &e.account {
        tx.exec(
            "INSERT INTO accounts (account, balance, events) VALUES (?1, ?2, 1)
             ON CONFLICT (account) DO UPDATE SET balance = accounts.balance + excluded.balance,
               events = accounts.events + 1",
            args![account, e.points],
        )?;
        if e.points < 0 {
            let balance = balance_for_account(tx, account)?;
            if balance < 0 {
                flags.push(PendingFlag::here(
                    OVERDRAFT,
                    format!(
                        "{} of {} points leaves the balance at {balance}",
                        e.kind, -e.points
                    ),
                ));
            }
        }
        if e.points != 0 {
            if let Some(m) = &member {
                touched.insert(m.clone());
            }
        }
    }

    super::feed::on_event(tx, e, member.as_deref(), now, dead_after_ms, feed)?;

    let mut names = Vec::with_capacity(flags.len());
    for PendingFlag {
        flag,
        reason,
        on_earlier,
    } in flags
    {
        let here = on_earlier.is_none();
        let (store_id, event_id) =
            on_earlier.unwrap_or_else(|| (e.store_id.clone(), e.event_id.clone()));
        tx.exec(
            "INSERT INTO flags (flag, event_id, store_id, member, reason, flagged_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![flag, &event_id, &store_id, &flag_member, &reason, now],
        )?;
        tracing::warn!(flag, event = %event_id, store = %store_id, member = flag_member.as_deref(), %reason, "Flagged event.");
        if here {
            names.push(flag.to_owned());
        }
    }
    Ok(EventOutcome {
        event_id: e.event_id.clone(),
        status: OutcomeStatus::Accepted,
        flags: names,
    })
}

/// Keeps the earlier of two once-per-member gifts and flags the later, whichever came first.
fn once_per_member(
    tx: &mut dyn Sql,
    e: &Event,
    flags: &mut Vec<PendingFlag>,
) -> Result<(), StoreError> {
    let member = e.payload_str("member_id").unwrap_or_default();
    let campaign = e.payload_str("campaign_id").unwrap_or_default();
    // Locked: two stores' gifts for one member, applied at once by two HQ processes, are
    // compared one after the other.
    let q = format!(
        "SELECT recorded_at, event_id, store_id FROM gifts_kept
         WHERE member_id = ?1 AND campaign_id = ?2{}",
        tx.for_update()
    );
    let kept = match tx.row(&q, args![member, campaign])? {
        Some(r) => Some((r.text(0)?, r.text(1)?, r.text(2)?)),
        None => None,
    };
    match kept {
        None => {
            // Taken meanwhile by another transaction: the batch is applied again, seeing it.
            let fresh = tx.exec(
                "INSERT INTO gifts_kept (member_id, campaign_id, recorded_at, event_id, store_id)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                args![member, campaign, &e.recorded_at, &e.event_id, &e.store_id],
            )?;
            if fresh == 0 {
                return Err(StoreError::Retry(format!(
                    "campaign {campaign}'s gift to {member} was kept meanwhile"
                )));
            }
        }
        Some((at, id, store)) if (at.as_str(), id.as_str()) <= (&e.recorded_at, &e.event_id) => {
            flags.push(PendingFlag::here(
                DUPLICATE_GIFT,
                format!(
                    "campaign {campaign} gift already issued to {member} by store {store} (event {id}, {at})"
                ),
            ));
        }
        Some((at, id, store)) => {
            // This one is earlier: it becomes the kept gift, the one stored before is the duplicate.
            tx.exec(
                "UPDATE gifts_kept SET recorded_at = ?3, event_id = ?4, store_id = ?5
                 WHERE member_id = ?1 AND campaign_id = ?2",
                args![member, campaign, &e.recorded_at, &e.event_id, &e.store_id],
            )?;
            flags.push(PendingFlag {
                flag: DUPLICATE_GIFT,
                reason: format!(
                    "campaign {campaign} gift issued earlier to {member} by store {} (event {}, {}); this one was issued at {at}",
                    e.store_id, e.event_id, e.recorded_at
                ),
                on_earlier: Some((store, id)),
            });
        }
    }
    Ok(())
}

/// The fields of a stored event that make it the same fact.
#[derive(PartialEq)]
struct StoredEvent {
    store_id: String,
    seq: i64,
    kind: String,
    account: Option<String>,
    points: i64,
    payload: String,
    recorded_at: String,
    idempotency_key: String,
}

/// What HQ holds that an incoming event is checked against.
struct Held {
    /// The event itself, if HQ holds it already.
    stored: Option<StoredEvent>,
    /// The event's account's balance (0 without one).
    balance: i64,
    /// The account is a registered member's, or a card's.
    registered: bool,
}

/// [`Held`], in one statement: on PostgreSQL every statement is a round trip.
fn held(tx: &mut dyn Sql, e: &Event) -> Result<Held, StoreError> {
    let r = tx.one(
        "SELECT e.store_id, e.seq, e.kind, e.account, e.points, e.payload, e.recorded_at,
                e.idempotency_key,
                (SELECT balance FROM accounts WHERE account = ?2),
                (SELECT COUNT(*) FROM members WHERE member_id = ?2)
         FROM (SELECT 1 AS here) AS one LEFT JOIN events e ON e.event_id = ?1",
        args![&e.event_id, &e.account],
    )?;
    let stored = match r.opt_text(0)? {
        None => None,
        Some(store_id) => Some(StoredEvent {
            store_id,
            seq: r.int(1)?,
            kind: r.text(2)?,
            account: r.opt_text(3)?,
            points: r.int(4)?,
            payload: r.text(5)?,
            recorded_at: r.text(6)?,
            idempotency_key: r.text(7)?,
        }),
    };
    let registered = r.int(9)? > 0
        || e.account
            .as_deref()
            .is_some_and(|a| a.starts_with(CARD_ACCOUNT_PREFIX));
    Ok(Held {
        stored,
        balance: r.opt_int(8)?.unwrap_or(0),
        registered,
    })
}

/// An `event_id` HQ already holds: no effect. Sent again with other content, the first stands
/// and the stored event is flagged, so a store that rewrote a fact is seen.
fn duplicate(
    tx: &mut dyn Sql,
    now: &str,
    e: &Event,
    stored: &StoredEvent,
) -> Result<EventOutcome, StoreError> {
    let resent = StoredEvent {
        store_id: e.store_id.clone(),
        seq: e.seq,
        kind: e.kind.as_str().to_owned(),
        account: e.account.clone(),
        points: e.points,
        payload: e.payload.to_string(),
        recorded_at: e.recorded_at.clone(),
        idempotency_key: e.idempotency_key.clone(),
    };
    let mut flags = Vec::new();
    if resent != *stored {
        let reason = format!(
            "event {} sent again by store {} with other content ({} points for {:?}, held: {} points for {:?}); the first stands",
            e.event_id, e.store_id, e.points, e.account, stored.points, stored.account
        );
        tx.exec(
            "INSERT INTO flags (flag, event_id, store_id, member, reason, flagged_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![
                CONFLICTING_DUPLICATE,
                &e.event_id,
                &stored.store_id,
                &stored.account,
                &reason,
                now
            ],
        )?;
        tracing::warn!(flag = CONFLICTING_DUPLICATE, event = %e.event_id, store = %e.store_id, %reason, "Flagged event.");
        flags.push(CONFLICTING_DUPLICATE.to_owned());
    }
    Ok(EventOutcome {
        event_id: e.event_id.clone(),
        status: OutcomeStatus::Duplicate,
        flags,
    })
}

/// Flags for what no store could have computed; the event is stored all the same.
fn implausible(plausibility: &Plausibility, e: &Event, registered: bool) -> Vec<PendingFlag> {
    let mut flags = Vec::new();
    match e.kind {
        EventKind::Sale => {
            let total = e
                .payload
                .get("total_cents")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            let most = plausibility.max_sale_points(total);
            if e.points > most {
                flags.push(PendingFlag::here(
                    IMPLAUSIBLE_POINTS,
                    format!(
                        "{} points for a sale of {total} cents; at most {most} are plausible",
                        e.points
                    ),
                ));
            }
        }
        EventKind::GiftIssued if e.points > plausibility.max_gift_points => {
            flags.push(PendingFlag::here(
                IMPLAUSIBLE_POINTS,
                format!(
                    "a gift of {} points; at most {} are plausible",
                    e.points, plausibility.max_gift_points
                ),
            ));
        }
        _ => {}
    }
    if let Some(account) = e.account.as_deref().filter(|_| e.points > 0 && !registered) {
        flags.push(PendingFlag::here(
            UNKNOWN_MEMBER,
            format!("credit to {account}, a member HQ never registered; held under that id"),
        ));
    }
    flags
}
