//! The JSON body of every HQ error answer.

use serde::{Deserialize, Serialize};

/// `{"error": "<code>", "message": "<human sentence>"}`.
///
/// Codes the sync client can act on: `protocol_version` (400, permanent until upgraded),
/// `unauthorized` (401), `forbidden` (403), `batch_too_large` / `body_too_large` (413: split the
/// batch), `bad_request` (400), `bad_cursor` (400: restart the pull from an empty cursor),
/// `internal` (5xx: transient, retry with backoff).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}
