//! Error answers: a status and `{"error": "<code>", "message": "<sentence>"}`.

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use loyalty_protocol::{ErrorBody, VersionMismatch, LEDGER_CONFLICT, SEQ_CONFLICT, SEQ_GAP};

use crate::store::StoreError;

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

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "HQ could not complete the request; retry later",
        )
    }

    /// A body the size limit cut off, or one that could not be read.
    pub fn from_body(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body is larger than HQ accepts (max_body_bytes): send fewer events per batch",
            )
        } else {
            Self::bad_request(format!("could not read the request body: {rejection}"))
        }
    }
}

impl From<VersionMismatch> for ApiError {
    fn from(v: VersionMismatch) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "protocol_version",
            format!("agent speaks {}, HQ speaks {}", v.found, v.expected),
        )
    }
}

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
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
