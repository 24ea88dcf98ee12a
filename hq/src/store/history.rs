//! A member's history for the operator: the stored events of their accounts (their own and
//! their cards'), newest first, in pages keyed by `(recorded_at, event_id)`.

use super::accounts::member_base;
use super::sql::{args, Sql, Value};
use super::{EventPosition, HistoryEvent, StoreError};

pub fn member_events(
    sql: &mut dyn Sql,
    member_id: &str,
    before: Option<&EventPosition>,
    limit: usize,
) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
    let Some(base) = member_base(sql, member_id)? else {
        return Ok(None);
    };
    let mut accounts = vec![member_id.to_owned()];
    accounts.extend(base.cards.iter().map(|c| loyalty_protocol::card_account(c)));
    let n = accounts.len();
    let marks = (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Row values compare (recorded_at, event_id) as one key: a page ends between two events,
    // never inside a run of events recorded at the same millisecond. The cast tells PostgreSQL
    // the type of a parameter that stands alone.
    let query = format!(
        "SELECT event_id, store_id, seq, kind, account, lane, points, recorded_at, payload
         FROM events WHERE account IN ({marks})
           AND (CAST(?{p1} AS TEXT) IS NULL OR (recorded_at, event_id) < (?{p1}, ?{p2}))
         ORDER BY recorded_at DESC, event_id DESC LIMIT ?{p3}",
        p1 = n + 1,
        p2 = n + 2,
        p3 = n + 3
    );
    let mut values: Vec<Value> = accounts.into_iter().map(Value::Text).collect();
    values.push(before.map_or(Value::Null, |b| Value::Text(b.recorded_at.clone())));
    values.push(before.map_or(Value::Null, |b| Value::Text(b.event_id.clone())));
    values.push(Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    let mut events = sql
        .rows(&query, &values)?
        .iter()
        .map(|r| {
            let payload = r.text(8)?;
            Ok(HistoryEvent {
                event_id: r.text(0)?,
                store_id: r.text(1)?,
                seq: r.int(2)?,
                kind: r.text(3)?,
                account: r.opt_text(4)?,
                lane: r.opt_text(5)?,
                points: r.int(6)?,
                recorded_at: r.text(7)?,
                // Stored from a parsed event; unreadable only if edited by hand.
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                flags: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    for e in &mut events {
        // Every event here has an account (the query asked for theirs), so `=` is enough.
        e.flags = sql
            .rows(
                "SELECT flag FROM flags WHERE member = ?1 AND event_id = ?2 ORDER BY id",
                args![&e.account, &e.event_id],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<_, _>>()?;
    }
    Ok(Some(events))
}
