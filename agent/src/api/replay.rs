//! A retried request gets its first answer, before any other check: a POS that lost the answer
//! to a redemption sends it again with the same id and the same QR, which is by then no longer
//! fresh; checking freshness first would answer "refused" for points that were spent. The
//! ledger's writer keeps the same rule inside its transaction; this read only lets the API
//! skip what no longer applies to a retry (identifying, freshness, the lane's session). A sale
//! without an app QR skips this read: nothing before the writer depends on it, and the writer
//! says whether it was a retry (`Ledger::record_sale`), so the lane's session is kept.

use super::{ApiError, AppState};
use crate::ledger::{Readers, Redeemed, RefundOutcome, SaleOutcome};

async fn first<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&Readers) -> rusqlite::Result<Option<T>> + Send + 'static,
) -> Result<Option<T>, ApiError> {
    Ok(state.ledger.readers().run(read).await?)
}

pub async fn sale(state: &AppState, receipt_id: &str) -> Result<Option<SaleOutcome>, ApiError> {
    let id = receipt_id.to_owned();
    first(state, move |r| r.sale_answer(&id)).await
}

pub async fn refund(state: &AppState, refund_id: &str) -> Result<Option<RefundOutcome>, ApiError> {
    let id = refund_id.to_owned();
    first(state, move |r| r.refund_answer(&id)).await
}

pub async fn redemption(
    state: &AppState,
    redemption_id: &str,
) -> Result<Option<Redeemed>, ApiError> {
    let id = redemption_id.to_owned();
    first(state, move |r| r.redemption_answer(&id)).await
}
