//! Which ledger a store's events come from, and that each push follows on from what HQ holds
//! (see `loyalty_protocol::ledger`).
//!
//! Invariant: `stores.watermark` is the last `seq` HQ holds from `stores.ledger_id`, and HQ holds
//! every event of that ledger up to it. Only a push from that ledger starting at or before the
//! watermark, with consecutive `seq`s, whose events up to the watermark are the ones HQ holds,
//! moves it; a re-base (an operator's explicit step, recorded in `ledger_bindings`) moves it to
//! a new ledger. So the watermark never claims an event HQ was not sent, and an agent that
//! acknowledges only what it sent loses nothing.

use loyalty_protocol::{LedgerBinding, LedgerState, PROTOCOL_VERSION};

use super::sql::{args, Row, Sql, SqlExt};
use super::{Incoming, StoreError};

/// A store's binding as stored.
pub struct Bound {
    pub ledger_id: Option<String>,
    pub watermark: i64,
    pub previous_ledger_id: Option<String>,
}

fn bound_row(r: &Row) -> Result<Bound, StoreError> {
    Ok(Bound {
        ledger_id: r.opt_text(0)?,
        watermark: r.int(1)?,
        previous_ledger_id: r.opt_text(2)?,
    })
}

pub fn bound(sql: &mut dyn Sql, store_id: &str) -> Result<Bound, StoreError> {
    sql.row(
        "SELECT ledger_id, watermark, previous_ledger_id FROM stores WHERE store_id = ?1",
        args![store_id],
    )?
    .map(|r| bound_row(&r))
    .transpose()?
    .ok_or_else(|| StoreError::UnknownStore(store_id.to_owned()))
}

/// [`bound`], holding the store's row until the transaction ends: a store's pushes and
/// re-bases are applied one at a time, whichever HQ process takes them.
fn bound_locked(sql: &mut dyn Sql, store_id: &str) -> Result<Bound, StoreError> {
    let q = format!(
        "SELECT ledger_id, watermark, previous_ledger_id FROM stores WHERE store_id = ?1{}",
        sql.for_update()
    );
    sql.row(&q, args![store_id])?
        .map(|r| bound_row(&r))
        .transpose()?
        .ok_or_else(|| StoreError::UnknownStore(store_id.to_owned()))
}

pub fn state(sql: &mut dyn Sql, store_id: &str) -> Result<LedgerState, StoreError> {
    let b = bound(sql, store_id)?;
    Ok(LedgerState {
        protocol: PROTOCOL_VERSION,
        ledger_id: b.ledger_id,
        watermark: b.watermark,
        previous_ledger_id: b.previous_ledger_id,
    })
}

/// Checks that a push from `ledger_id` following `after_seq` may be applied; binds a store's
/// first ledger. Returns the watermark before the push. Writes nothing else.
pub fn check_push(
    tx: &mut dyn Sql,
    store_id: &str,
    ledger_id: &str,
    after_seq: i64,
    events: &[Incoming],
    now: &str,
) -> Result<i64, StoreError> {
    let b = bound_locked(tx, store_id)?;
    match &b.ledger_id {
        Some(held) if held != ledger_id => {
            return Err(StoreError::LedgerConflict {
                store: store_id.to_owned(),
                held: held.clone(),
                pushed: ledger_id.to_owned(),
            })
        }
        Some(_) => {}
        None => record(
            tx,
            store_id,
            &LedgerBinding {
                protocol: PROTOCOL_VERSION,
                ledger_id: ledger_id.to_owned(),
                after_seq: b.watermark,
                reason: "first push from this store".into(),
            },
            &b,
            now,
        )?,
    }
    if after_seq < 0 || after_seq > b.watermark {
        return Err(StoreError::SeqGap(format!(
            "the batch follows seq {after_seq} but HQ holds this ledger only up to seq {}",
            b.watermark
        )));
    }
    let mut expected = after_seq;
    for (i, e) in events.iter().enumerate() {
        expected += 1;
        let (event_id, seq) = match e {
            Incoming::Valid(e) => (e.event_id.as_str(), Some(e.seq)),
            Incoming::Invalid { event_id, seq, .. } => (event_id.as_str(), *seq),
        };
        if seq != Some(expected) {
            return Err(StoreError::SeqGap(format!(
                "event {i} ({event_id}) has seq {}, where {expected} follows on",
                seq.map_or_else(|| "none".to_owned(), |s| s.to_string())
            )));
        }
        if expected <= b.watermark && !held_at(tx, store_id, event_id, expected)? {
            return Err(StoreError::SeqConflict(format!(
                "HQ holds another event than {event_id} at seq {expected} of this ledger"
            )));
        }
    }
    Ok(b.watermark)
}

/// HQ holds `event_id` as this store's event `seq` (stored, or refused as malformed).
fn held_at(tx: &mut dyn Sql, store_id: &str, event_id: &str, seq: i64) -> Result<bool, StoreError> {
    if let Some(r) = tx.row(
        "SELECT store_id, seq FROM events WHERE event_id = ?1",
        args![event_id],
    )? {
        return Ok(r.text(0)? == store_id && r.int(1)? == seq);
    }
    tx.exists(
        "SELECT 1 FROM rejections WHERE store_id = ?1 AND event_id = ?2",
        args![store_id, event_id],
    )
}

/// The operator's re-base: from now on HQ takes this store's events from `binding.ledger_id`,
/// following `binding.after_seq`.
pub fn rebind(
    tx: &mut dyn Sql,
    store_id: &str,
    binding: &LedgerBinding,
    now: &str,
) -> Result<LedgerState, StoreError> {
    if binding.ledger_id.trim().is_empty() || binding.after_seq < 0 {
        return Err(StoreError::BadBinding(
            "ledger_id must not be empty and after_seq not negative".into(),
        ));
    }
    let b = bound_locked(tx, store_id)?;
    if b.ledger_id.as_deref() == Some(binding.ledger_id.as_str()) {
        // The same request again (an operator who retried): it changes nothing.
        return state(tx, store_id);
    }
    record(tx, store_id, binding, &b, now)?;
    tracing::warn!(
        store = %store_id, ledger = %binding.ledger_id, after_seq = binding.after_seq,
        previous_ledger = b.ledger_id.as_deref().unwrap_or(""), previous_watermark = b.watermark,
        reason = %binding.reason, "Store ledger re-based."
    );
    state(tx, store_id)
}

fn record(
    tx: &mut dyn Sql,
    store_id: &str,
    binding: &LedgerBinding,
    before: &Bound,
    now: &str,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO ledger_bindings (store_id, ledger_id, after_seq, previous_ledger_id,
           previous_watermark, reason, bound_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            store_id,
            &binding.ledger_id,
            binding.after_seq,
            &before.ledger_id,
            before.watermark,
            &binding.reason,
            now
        ],
    )?;
    tx.exec(
        "UPDATE stores SET ledger_id = ?2, watermark = ?3,
           previous_ledger_id = COALESCE(?4, previous_ledger_id) WHERE store_id = ?1",
        args![
            store_id,
            &binding.ledger_id,
            binding.after_seq,
            &before.ledger_id
        ],
    )?;
    Ok(())
}
