//! Error answers: a status and `{"error": "<code>", "message": "<sentence>"}`.

use axum::http::StatusCode;
use loyalty_protocol::{LEDGER_CONFLICT, SEQ_CONFLICT, SEQ_GAP};

use crate::store::StoreError;

pub use loyalty_http_edge::ApiError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CursorAhead { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "bad_cursor", e.to_string())
            }
            StoreError::UnknownStore(_) => Self::forbidden(e.to_string()),
            StoreError::TokenTaken => Self::new(StatusCode::CONFLICT, "token_taken", e.to_string()),
            StoreError::LedgerConflict { .. } => {
                tracing::warn!(error = %e, "Push refused: another ledger.");
                Self::new(StatusCode::CONFLICT, LEDGER_CONFLICT, e.to_string())
            }
            StoreError::SeqGap(_) => {
                tracing::warn!(error = %e, "Push refused: it does not follow on.");
                Self::new(StatusCode::CONFLICT, SEQ_GAP, e.to_string())
            }
            StoreError::SeqConflict(_) => {
                tracing::warn!(error = %e, "Push refused: HQ holds other events at its seqs.");
                Self::new(StatusCode::CONFLICT, SEQ_CONFLICT, e.to_string())
            }
            StoreError::BadBinding(_) => Self::bad_request(e.to_string()),
            _ => {
                tracing::error!(error = %e, "Storage failed.");
                Self::internal()
            }
        }
    }
}

/// Runs blocking storage work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "Blocking task failed.");
        ApiError::internal()
    })?
}
