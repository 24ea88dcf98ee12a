//! The JSON body of every HQ error answer.

use serde::{Deserialize, Serialize};

/// `{"error": "<code>", "message": "<human sentence>"}`.
///
/// Codes the sync client can act on: `protocol_version` (400, permanent until upgraded),
/// `unauthorized` (401), `forbidden` (403), `batch_too_large` / `body_too_large` (413: split the
/// batch), `bad_request` (400), `bad_cursor` (400: restart the pull from an empty cursor),
/// `internal` (5xx: transient, retry with backoff), and the ledger refusals of [`crate::ledger`]
/// (409 `ledger_conflict`, `seq_gap`, `seq_conflict`: nothing was written; retrying does not
/// help until the operator re-bases the ledger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}
