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
//! - Malformed events are refused and recorded in `rejections`, never stored as facts.

use std::collections::BTreeSet;

use loyalty_protocol::{Event, EventKind, EventOutcome, OutcomeStatus};
use rusqlite::{params, OptionalExtension, Transaction};

use super::accounts::{balance_for_account, member_of};
use super::sqlite::{bump, Writer};
use super::{Incoming, IngestResult, StoreError};
use crate::clock;

pub const OVERDRAFT: &str = "overdraft";
pub const DUPLICATE_GIFT: &str = "duplicate_gift";
pub const REFUND_WITHOUT_SALE: &str = "refund_without_sale";
pub const DUPLICATE_GIFT_REDEMPTION: &str = "duplicate_gift_redemption";

pub fn ingest(
    w: &mut Writer,
    store_id: &str,
    events: Vec<Incoming>,
) -> Result<IngestResult, StoreError> {
    let started = std::time::Instant::now();
    let now = clock::now();
    let Writer { conn, last_change } = w;
    let tx = conn.transaction()?;
    let mut watermark: i64 = tx
        .prepare_cached("SELECT watermark FROM stores WHERE store_id = ?1")?
        .query_row([store_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::UnknownStore(store_id.to_owned()))?;
    let before = watermark;
    let mut touched = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(events.len());
    let (mut accepted, mut duplicates, mut rejected, mut flagged) = (0u32, 0u32, 0u32, 0u32);
    for incoming in events {
        match incoming {
            Incoming::Valid(e) => {
                watermark = watermark.max(e.seq);
                let outcome = apply(&tx, last_change, &now, &e, &mut touched)?;
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
                tx.prepare_cached(
                    "INSERT INTO rejections (event_id, store_id, reason, event, rejected_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )?
                .execute(params![event_id, store_id, reason, raw, now])?;
                tracing::warn!(store = %store_id, event = %event_id, %reason, "Rejected event.");
                rejected += 1;
                outcomes.push(EventOutcome {
                    event_id,
                    status: OutcomeStatus::Rejected { reason },
                    flags: Vec::new(),
                });
            }
        }
    }
    for member in &touched {
        // One sequence number per member: the feed's cursor needs one entity per number.
        let seq = bump(last_change);
        tx.prepare_cached("UPDATE members SET change_seq = ?2 WHERE member_id = ?1")?
            .execute(params![member, seq])?;
    }
    if watermark != before {
        tx.prepare_cached("UPDATE stores SET watermark = ?2 WHERE store_id = ?1")?
            .execute(params![store_id, watermark])?;
    }
    let applied = started.elapsed();
    tx.commit()?;
    // Apply and commit (the fsync) apart: they are what bounds ingestion.
    tracing::info!(
        store = %store_id, accepted, duplicates, rejected, flagged, watermark,
        apply_ms = applied.as_millis() as u64,
        commit_ms = (started.elapsed() - applied).as_millis() as u64,
        "Ingested batch."
    );
    Ok(IngestResult {
        outcomes,
        watermark,
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
    tx: &Transaction<'_>,
    last_change: &mut i64,
    now: &str,
    e: &Event,
    touched: &mut BTreeSet<String>,
) -> Result<EventOutcome, StoreError> {
    let mut flags: Vec<PendingFlag> = Vec::new();
    let member = match &e.account {
        Some(a) => member_of(tx, a)?,
        None => None,
    };
    // Whom a flag names: the member, or the card account nobody holds yet.
    let flag_member = member.clone().or_else(|| e.account.clone());

    let link = if e.kind == EventKind::Refund {
        let receipt = e.payload_str("receipt_id").unwrap_or_default();
        let sale: Option<String> = tx
            .prepare_cached("SELECT event_id FROM sales WHERE store_id = ?1 AND receipt_id = ?2")?
            .query_row(params![e.store_id, receipt], |r| r.get(0))
            .optional()?;
        if sale.is_none() {
            flags.push(PendingFlag::here(
                REFUND_WITHOUT_SALE,
                format!("no sale with receipt {receipt} at store {}", e.store_id),
            ));
        }
        sale
    } else {
        None
    };

    let inserted = tx
        .prepare_cached(
            "INSERT INTO events (event_id, store_id, seq, kind, account, lane, points, payload,
               rule_version, recorded_at, idempotency_key, link_event_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (event_id) DO NOTHING",
        )?
        .execute(params![
            e.event_id,
            e.store_id,
            e.seq,
            e.kind.as_str(),
            e.account,
            e.lane,
            e.points,
            e.payload.to_string(),
            e.rule_version,
            e.recorded_at,
            e.idempotency_key,
            link,
        ])?;
    if inserted == 0 {
        return Ok(EventOutcome {
            event_id: e.event_id.clone(),
            status: OutcomeStatus::Duplicate,
            flags: Vec::new(),
        });
    }

    match e.kind {
        EventKind::Sale => {
            if let Some(receipt) = e.payload_str("receipt_id") {
                tx.prepare_cached(
                    "INSERT INTO sales (store_id, receipt_id, event_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![e.store_id, receipt, e.event_id])?;
            }
        }
        EventKind::GiftIssued
            if e.payload.get("once_per_member").and_then(|v| v.as_bool()) == Some(true) =>
        {
            once_per_member(tx, e, &mut flags)?;
        }
        EventKind::GiftRedeemed => {
            let gift = e.payload_str("gift_id").unwrap_or_default();
            let seq = bump(last_change);
            let fresh = tx
                .prepare_cached(
                    "INSERT INTO gift_redemptions (gift_id, member_id, store_id, event_id, change_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )?
                .execute(params![gift, flag_member, e.store_id, e.event_id, seq])?;
            if fresh == 0 {
                flags.push(PendingFlag::here(
                    DUPLICATE_GIFT_REDEMPTION,
                    format!("gift {gift} was already redeemed"),
                ));
            }
        }
        _ => {}
    }

    if let Some(account) = &e.account {
        tx.prepare_cached(
            "INSERT INTO accounts (account, balance, events) VALUES (?1, ?2, 1)
             ON CONFLICT (account) DO UPDATE SET balance = balance + excluded.balance,
               events = events + 1",
        )?
        .execute(params![account, e.points])?;
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
        tx.prepare_cached(
            "INSERT INTO flags (flag, event_id, store_id, member, reason, flagged_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![flag, event_id, store_id, flag_member, reason, now])?;
        tracing::warn!(flag, event = %event_id, store = %store_id, member = ?flag_member, %reason, "Flagged event.");
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
    tx: &Transaction<'_>,
    e: &Event,
    flags: &mut Vec<PendingFlag>,
) -> Result<(), StoreError> {
    let member = e.payload_str("member_id").unwrap_or_default();
    let campaign = e.payload_str("campaign_id").unwrap_or_default();
    let kept: Option<(String, String, String)> = tx
        .prepare_cached(
            "SELECT recorded_at, event_id, store_id FROM gifts_kept
             WHERE member_id = ?1 AND campaign_id = ?2",
        )?
        .query_row(params![member, campaign], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    match kept {
        None => {
            tx.prepare_cached(
                "INSERT INTO gifts_kept (member_id, campaign_id, recorded_at, event_id, store_id)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                member,
                campaign,
                e.recorded_at,
                e.event_id,
                e.store_id
            ])?;
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
            tx.prepare_cached(
                "UPDATE gifts_kept SET recorded_at = ?3, event_id = ?4, store_id = ?5
                 WHERE member_id = ?1 AND campaign_id = ?2",
            )?
            .execute(params![
                member,
                campaign,
                e.recorded_at,
                e.event_id,
                e.store_id
            ])?;
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
