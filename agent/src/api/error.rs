//! The API's error body: `{"error": "<code>", "message": "<human sentence>"}`.

use crate::ledger::{LedgerError, Refusal};
use axum::http::StatusCode;

pub use loyalty_http_edge::ApiError;

/// 404 `unknown_lane`.
pub fn unknown_lane(lane: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_lane",
        format!("lane `{lane}` is not configured in this store"),
    )
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Refused(refusal) => {
                let status = match &refusal {
                    Refusal::UnknownReceipt(_) => StatusCode::NOT_FOUND,
                    Refusal::PointsOutOfBounds(_) => StatusCode::UNPROCESSABLE_ENTITY,
                    _ => StatusCode::CONFLICT,
                };
                ApiError::new(status, refusal.code(), refusal.to_string())
            }
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                format!("{other}; nothing was recorded, retry with the same id"),
            ),
        }
    }
}
