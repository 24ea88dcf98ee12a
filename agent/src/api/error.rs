//! The API's error body: `{"error": "<code>", "message": "<human sentence>"}`.

use crate::ledger::{LedgerError, Refusal};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unknown_lane(lane: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_lane",
            format!("lane `{lane}` is not configured in this store"),
        )
    }
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        loyalty_http_edge::errors::error_response(self.status, self.code, self.message)
    }
}
