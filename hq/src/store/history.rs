//! A member's history for the operator: the stored events of their accounts (their own and
//! their cards'), newest first, in pages keyed by `(recorded_at, event_id)`.

use rusqlite::{params_from_iter, types::Value, Connection};

use super::accounts::member_base;
use super::{EventPosition, HistoryEvent, StoreError};

pub fn member_events(
    conn: &mut Connection,
    member_id: &str,
    before: Option<&EventPosition>,
    limit: usize,
) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
    let tx = conn.transaction()?;
    let Some(base) = member_base(&tx, member_id)? else {
        return Ok(None);
    };
    let mut accounts = vec![member_id.to_owned()];
    accounts.extend(base.cards.iter().map(|c| loyalty_protocol::card_account(c)));
    let marks = vec!["?"; accounts.len()].join(", ");
    let n = accounts.len();
    // Row values compare (recorded_at, event_id) as one key: a page ends between two events,
    // never inside a run of events recorded at the same millisecond.
    let sql = format!(
        "SELECT event_id, store_id, seq, kind, account, lane, points, recorded_at, payload
         FROM events WHERE account IN ({marks})
           AND (?{p1} IS NULL OR (recorded_at, event_id) < (?{p1}, ?{p2}))
         ORDER BY recorded_at DESC, event_id DESC LIMIT ?{p3}",
        p1 = n + 1,
        p2 = n + 2,
        p3 = n + 3
    );
    let mut values: Vec<Value> = accounts.into_iter().map(Value::Text).collect();
    values.push(before.map_or(Value::Null, |b| Value::Text(b.recorded_at.clone())));
    values.push(before.map_or(Value::Null, |b| Value::Text(b.event_id.clone())));
    values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let mut events: Vec<HistoryEvent> = tx
        .prepare(&sql)?
        .query_map(params_from_iter(values), |r| {
            let payload: String = r.get(8)?;
            Ok(HistoryEvent {
                event_id: r.get(0)?,
                store_id: r.get(1)?,
                seq: r.get(2)?,
                kind: r.get(3)?,
                account: r.get(4)?,
                lane: r.get(5)?,
                points: r.get(6)?,
                recorded_at: r.get(7)?,
                // Stored from a parsed event; unreadable only if edited by hand.
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                flags: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut flags = tx.prepare_cached(
        "SELECT flag FROM flags WHERE member IS ?1 AND event_id = ?2 ORDER BY id",
    )?;
    for e in &mut events {
        e.flags = flags
            .query_map(rusqlite::params![e.account, e.event_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(Some(events))
}
