//! The operator's view of the stores: each store's contacts with HQ (last push, last pull,
//! agent version, events stored today) beside its ledger identity. A push is recorded in the
//! ingest transaction ([`note_push`]), a pull on its own ([`note_pull`]).

use chrono::{DateTime, Duration, Utc};

use super::sql::{args, Sql};
use super::{StoreError, StoreView};

/// A pull this soon after the recorded one is not written: with stores pulling every second a
/// write (and its fsync) per pull would be HQ's busiest work.
pub const PULL_RESOLUTION_SECS: i64 = 10;

/// HQ's day of `at` (RFC 3339, UTC): its first ten characters.
fn day(at: &str) -> &str {
    at.get(..10).unwrap_or(at)
}

/// In the push's transaction: its time, the version, and the events it stored counted into
/// the day's. On PostgreSQL the push already holds the store's row (`FOR UPDATE`), so two HQ
/// processes never count over each other.
pub fn note_push(
    sql: &mut dyn Sql,
    store_id: &str,
    at: &str,
    agent_version: Option<&str>,
    events_stored: i64,
) -> Result<(), StoreError> {
    sql.exec(
        "UPDATE stores SET last_push_at = ?2, agent_version = COALESCE(?3, agent_version),
           events_on_day = CASE WHEN events_day = ?4 THEN events_on_day + ?5 ELSE ?5 END,
           events_day = ?4
         WHERE store_id = ?1",
        args![store_id, at, agent_version, day(at), events_stored],
    )?;
    Ok(())
}

pub fn note_pull(
    sql: &mut dyn Sql,
    store_id: &str,
    at: &str,
    agent_version: Option<&str>,
) -> Result<(), StoreError> {
    let recent = DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&Utc) - Duration::seconds(PULL_RESOLUTION_SECS))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    // Matches no row, and so writes nothing, when the recorded pull is recent and the version
    // unchanged. `IS DISTINCT FROM` is both databases' null-safe comparison (SQLite's `IS NOT`
    // is not PostgreSQL's); `?3` is cast so PostgreSQL knows its type where it stands alone.
    sql.exec(
        "UPDATE stores SET last_pull_at = ?2, agent_version = COALESCE(?3, agent_version)
         WHERE store_id = ?1 AND (last_pull_at IS NULL OR last_pull_at < ?4
           OR (CAST(?3 AS TEXT) IS NOT NULL AND agent_version IS DISTINCT FROM ?3))",
        args![store_id, at, agent_version, recent],
    )?;
    Ok(())
}

pub fn stores(sql: &mut dyn Sql, now: &str) -> Result<Vec<StoreView>, StoreError> {
    sql.rows(
        "SELECT store_id, ledger_id, watermark, last_push_at, last_pull_at, agent_version,
           CASE WHEN events_day = ?1 THEN events_on_day ELSE 0 END
         FROM stores ORDER BY store_id",
        args![day(now)],
    )?
    .iter()
    .map(|r| {
        Ok(StoreView {
            store_id: r.text(0)?,
            ledger_id: r.opt_text(1)?,
            watermark: r.int(2)?,
            last_push_at: r.opt_text(3)?,
            last_pull_at: r.opt_text(4)?,
            agent_version: r.opt_text(5)?,
            events_today: r.int(6)?,
        })
    })
    .collect()
}
