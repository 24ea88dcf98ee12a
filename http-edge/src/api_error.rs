//! The error both servers answer with: a status, a stable code and a sentence, sent as
//! `{"error": "<code>", "message": "<sentence>"}` ([`loyalty_protocol::ErrorBody`]).
//!
//! One type for the agent's API and HQ's, so both keep the contract the same way; each server
//! adds its own conversions (`From<LedgerError>`, `From<StoreError>`).

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use loyalty_protocol::VersionMismatch;

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

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 with a code that says which value was wrong (`bad_total`, `bad_card` ...).
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
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

    /// 500 `internal`: the cause is logged where it happened, never sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request; retry later",
        )
    }

    /// A body the size limit cut off, or one that could not be read.
    pub fn from_body(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body is larger than this server accepts: send less per request",
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::errors::error_response(self.status, self.code, self.message)
    }
}
