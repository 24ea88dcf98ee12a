//! A retried request gets its first answer, before any other check: a POS that lost the answer
//! to a redemption sends it again with the same id and the same QR, which is by then no longer
//! fresh; checking freshness first would answer "refused" for points that were spent. The
//! ledger's writer keeps the same rule inside its transaction; this read only lets the API
//! skip what no longer applies to a retry (identifying, freshness, the lane's session).

use super::{ApiError, AppState};
use axum::http::StatusCode;
use rusqlite::OptionalExtension;
use serde_json::Value;

/// The ledger's idempotency keys (`ledger/commands.rs`, `ledger/gifts.rs`).
pub fn sale_key(receipt_id: &str) -> String {
    format!("sale:{receipt_id}")
}

pub fn refund_key(refund_id: &str) -> String {
    format!("refund:{refund_id}")
}

/// Points and gifts share one redemption id space.
pub fn redemption_key(redemption_id: &str) -> String {
    format!("redeem:{redemption_id}")
}

/// The answer recorded for `key`, if the request was already done.
pub async fn first_answer(state: &AppState, key: String) -> Result<Option<Value>, ApiError> {
    let readers = state.ledger.readers().clone();
    let unavailable =
        |e: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ledger_unavailable", e);
    let stored = tokio::task::spawn_blocking(move || {
        readers.with(|c| {
            c.prepare_cached("SELECT response FROM events WHERE idempotency_key = ?1")?
                .query_row([&key], |row| row.get::<_, String>(0))
                .optional()
        })
    })
    .await
    .map_err(|e| unavailable(e.to_string()))?
    .map_err(|e| unavailable(e.to_string()))?;
    Ok(stored.and_then(|s| serde_json::from_str(&s).ok()))
}
